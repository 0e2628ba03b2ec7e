/* Options: the table (options.def), the mode presets (modes.def), parsing and the derived knobs.
 *
 * Precedence: built-in default < mode preset < environment variable < API call
 * (hak_debug_set_option). Every value records its source.
 * The fast path never reads this table: slow paths read hk_knobs through HK_KNOB(), and each thread
 * copies its cache caps when the knob epoch changes.
 */
#ifndef HK_CONFIG_H
#define HK_CONFIG_H

#include "common.h"
#include "superslab/os.h"

typedef enum hk_opt_id {
#define HAK_OPT(ID, TYPE, DEF, MIN, MAX, CHOICES, DOC) HK_OPT_##ID,
#include "config/options.def"
#undef HAK_OPT
    HK_OPT_COUNT
} hk_opt_id_t;

typedef enum hk_opt_type { HK_OPT_BOOL, HK_OPT_INT, HK_OPT_ENUM, HK_OPT_STR } hk_opt_type_t;
typedef enum hk_opt_source { HK_SRC_DEFAULT, HK_SRC_MODE, HK_SRC_ENV, HK_SRC_API } hk_opt_source_t;

typedef struct hk_opt_desc {
    const char *name; /* without the HAKMEM_ prefix */
    hk_opt_type_t type;
    long long def, min, max;
    const char *choices;
    const char *doc;
} hk_opt_desc_t;

extern HK_HIDDEN const hk_opt_desc_t hk_opt_table[HK_OPT_COUNT];

enum { HK_MODE_MINIMAL, HK_MODE_FAST, HK_MODE_BALANCED, HK_MODE_LEARNING, HK_MODE_ADAPTIVE, HK_MODE_TIGHT,
       HK_MODE_LEAN, HK_MODE_RESEARCH, HK_MODE_COUNT };

/* Knobs derived from the options; read on slow paths with HK_KNOB(field). */
typedef struct hk_knobs {
    uint32_t epoch; /* bumped on every change */
    uint32_t tcache_cap[HK_NCLASSES];
    uint32_t tcache_batch[HK_NCLASSES];
    int mode;
    int debug_level, stats, os_stats;
    int thp;                /* -1 leave, 0 off, 1 on */
    int bigcache_entries;   /* 0 = BigCache off */
    size_t bigcache_max_bytes;
    int madvise_batch;      /* units; 0 = decommit at once */
    int ss_reuse, prewarm;
    int lean;
    hk_decommit_t decommit; /* how released slab memory goes back */
    size_t lean_target_bytes;
} hk_knobs_t;

extern HK_HIDDEN hk_knobs_t hk_knobs;
#define HK_KNOB(field) __atomic_load_n(&hk_knobs.field, __ATOMIC_RELAXED)

/* Reads the environment (no allocation, no stdio) and derives the knobs. Called once by init. */
HK_HIDDEN void hk_config_init(void);
/* Sets one option from text with the given source. Returns 0, or -1 (bad name or value: nothing changed). */
HK_HIDDEN int hk_config_set(const char *name, const char *value, hk_opt_source_t src, int warn);
HK_HIDDEN long long hk_config_get(hk_opt_id_t id);
HK_HIDDEN const char *hk_config_get_str(hk_opt_id_t id);
HK_HIDDEN hk_opt_source_t hk_config_source(hk_opt_id_t id);
HK_HIDDEN int hk_config_find(const char *name); /* accepts with or without HAKMEM_, any case; -1 if unknown */
HK_HIDDEN const char *hk_mode_name(void);
/* The name of mode index m (as in the MODE option's choices). */
HK_HIDDEN const char *hk_mode_name_of(int m);
/* Whether mode m presets option id; the preset value goes to *value. */
HK_HIDDEN int hk_config_preset(int m, hk_opt_id_t id, long long *value);
/* Formats the value of an option into buf (for listings). */
HK_HIDDEN void hk_config_format(hk_opt_id_t id, char *buf, size_t len);

/* Small formatting helpers that never allocate (used where stdio is off limits). */
HK_HIDDEN size_t hk_fmt_u64(char *buf, uint64_t v);
HK_HIDDEN size_t hk_strlcpy(char *dst, const char *src, size_t len);
HK_HIDDEN void hk_log_line(const char *a, const char *b, const char *c, const char *d, const char *e);

#endif
