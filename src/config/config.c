/* Option parsing. No allocation and no stdio: this runs inside the first malloc call. */
#include "config/config.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "superslab/os.h"

HK_HIDDEN const hk_opt_desc_t hk_opt_table[HK_OPT_COUNT] = {
#define HAK_OPT(ID, TYPE, DEF, MIN, MAX, CHOICES, DOC) {#ID, HK_OPT_##TYPE, DEF, MIN, MAX, CHOICES, DOC},
#include "config/options.def"
#undef HAK_OPT
};

typedef struct hk_preset { int mode, opt; long long value; } hk_preset_t;
static const hk_preset_t hk_presets[] = {
#define HAK_PRESET(MODE, ID, VALUE) {MODE, HK_OPT_##ID, VALUE},
#include "config/modes.def"
#undef HAK_PRESET
};

#define HK_STR_MAX 256
static long long hk_opt_val[HK_OPT_COUNT];
static uint8_t hk_opt_src[HK_OPT_COUNT];
static char hk_opt_str[HK_OPT_COUNT][HK_STR_MAX];

HK_HIDDEN hk_knobs_t hk_knobs;

/* ---- tiny helpers ----------------------------------------------------------------------------- */
size_t hk_fmt_u64(char *buf, uint64_t v) {
    char tmp[24];
    size_t n = 0;
    do { tmp[n++] = (char)('0' + v % 10); v /= 10; } while (v);
    for (size_t i = 0; i < n; i++) buf[i] = tmp[n - 1 - i];
    buf[n] = 0;
    return n;
}

size_t hk_strlcpy(char *dst, const char *src, size_t len) {
    size_t i = 0;
    if (len == 0) return 0;
    for (; src[i] && i + 1 < len; i++) dst[i] = src[i];
    dst[i] = 0;
    return i;
}

/* One line on stderr built from up to five pieces (NULL pieces skipped). */
void hk_log_line(const char *a, const char *b, const char *c, const char *d, const char *e) {
    char line[512];
    size_t n = 0;
    const char *parts[5] = {a, b, c, d, e};
    for (int i = 0; i < 5; i++)
        if (parts[i]) n += hk_strlcpy(line + n, parts[i], sizeof line - 1 - n);
    line[n++] = '\n';
    hk_os_write_all(2, line, n);
}

static int hk_lower(int c) { return (c >= 'A' && c <= 'Z') ? c + 32 : c; }

static int hk_ieq(const char *a, const char *b) {
    while (*a && *b && hk_lower((unsigned char)*a) == hk_lower((unsigned char)*b)) a++, b++;
    return *a == 0 && *b == 0;
}

static int hk_ieq_n(const char *a, const char *b, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (hk_lower((unsigned char)a[i]) != hk_lower((unsigned char)b[i]) || a[i] == 0) return 0;
    return 1;
}

/* ---- parsing ------------------------------------------------------------------------------------ */
static int hk_parse_bool(const char *s, long long *out) {
    static const char *yes[] = {"1", "true", "yes", "on"}, *no[] = {"0", "false", "no", "off"};
    for (int i = 0; i < 4; i++) {
        if (hk_ieq(s, yes[i])) { *out = 1; return 0; }
        if (hk_ieq(s, no[i])) { *out = 0; return 0; }
    }
    return -1;
}

static int hk_parse_int(const char *s, long long *out) {
    const char *p = s;
    int neg = 0;
    if (*p == '-') { neg = 1; p++; }
    if (*p < '0' || *p > '9') return -1;
    unsigned long long v = 0;
    for (; *p >= '0' && *p <= '9'; p++) {
        if (v > (unsigned long long)(INT64_MAX / 10)) return -1;
        v = v * 10 + (unsigned)(*p - '0');
    }
    unsigned shift = 0;
    switch (hk_lower((unsigned char)*p)) {
    case 'k': shift = 10; p++; break;
    case 'm': shift = 20; p++; break;
    case 'g': shift = 30; p++; break;
    default: break;
    }
    if (shift && hk_lower((unsigned char)*p) == 'b') p++; /* accept KB / MB / GB as well */
    if (*p != 0) return -1;
    if (shift && v > ((unsigned long long)INT64_MAX >> shift)) return -1;
    v <<= shift;
    if (v > (unsigned long long)INT64_MAX) return -1;
    *out = neg ? -(long long)v : (long long)v;
    return 0;
}

static int hk_parse_enum(const char *s, const char *choices, long long *out) {
    long long idx = 0;
    const char *c = choices;
    size_t slen = strlen(s);
    while (*c) {
        const char *end = c;
        while (*end && *end != '|') end++;
        if ((size_t)(end - c) == slen && hk_ieq_n(c, s, slen)) { *out = idx; return 0; }
        idx++;
        c = *end ? end + 1 : end;
    }
    return -1;
}

/* Validates HAKMEM_TINY_TLS_CLASS_OVERRIDE: "C<n>:<cap>:<batch>[,...]" (batch optional). When
 * apply is set, writes caps into the knobs. */
static int hk_parse_class_override(const char *s, int apply) {
    const char *p = s;
    while (*p) {
        if (*p != 'C' && *p != 'c') return -1;
        p++;
        long long cls = 0, cap = 0, batch = 0;
        int digits = 0;
        while (*p >= '0' && *p <= '9') { cls = cls * 10 + (*p++ - '0'); if (++digits > 3) return -1; }
        if (!digits || cls >= HK_NCLASSES || *p != ':') return -1;
        p++;
        digits = 0;
        while (*p >= '0' && *p <= '9') { cap = cap * 10 + (*p++ - '0'); if (++digits > 6) return -1; }
        if (!digits || cap > 65536) return -1;
        if (*p == ':') {
            p++;
            digits = 0;
            while (*p >= '0' && *p <= '9') { batch = batch * 10 + (*p++ - '0'); if (++digits > 6) return -1; }
            if (!digits || batch < 1 || batch > 65536) return -1;
        }
        if (*p == ',') p++;
        else if (*p != 0) return -1;
        if (apply) {
            hk_knobs.tcache_cap[cls] = (uint32_t)cap;
            if (batch) hk_knobs.tcache_batch[cls] = (uint32_t)batch;
        }
    }
    return 0;
}

static const char *hk_accepted(const hk_opt_desc_t *d, char *buf, size_t len) {
    switch (d->type) {
    case HK_OPT_BOOL: return "1/true/yes/on or 0/false/no/off";
    case HK_OPT_ENUM: return d->choices;
    case HK_OPT_STR:
        if (d - hk_opt_table == HK_OPT_TINY_TLS_CLASS_OVERRIDE) return "a list like C0:256:16,C3:192:12 (class:cap[:batch], classes C0..C44)";
        return "a text of at most 255 bytes";
    case HK_OPT_INT: {
        size_t n = hk_strlcpy(buf, "an integer from ", len);
        n += hk_fmt_u64(buf + n, (uint64_t)d->min);
        n += hk_strlcpy(buf + n, " to ", len - n);
        n += hk_fmt_u64(buf + n, (uint64_t)d->max);
        hk_strlcpy(buf + n, " (K/M/G suffixes allowed)", len - n);
        return buf;
    }
    }
    return "";
}

static int hk_strict_on(void) { return hk_opt_val[HK_OPT_STRICT] != 0; }

static void hk_bad_value(const hk_opt_desc_t *d, const char *value) {
    char acc[128], def[64], line[480];
    hk_config_format((hk_opt_id_t)(d - hk_opt_table), def, sizeof def);
    size_t n = hk_strlcpy(line, "hakmem: HAKMEM_", sizeof line);
    n += hk_strlcpy(line + n, d->name, sizeof line - n);
    n += hk_strlcpy(line + n, "=\"", sizeof line - n);
    n += hk_strlcpy(line + n, value, HK_MIN(sizeof line - n, (size_t)64));
    n += hk_strlcpy(line + n, "\" is not valid (accepted: ", sizeof line - n);
    n += hk_strlcpy(line + n, hk_accepted(d, acc, sizeof acc), sizeof line - n);
    hk_log_line(line, hk_strict_on() ? "); HAKMEM_STRICT=1: aborting" : "); using ", hk_strict_on() ? "" : def, NULL, NULL);
    if (hk_strict_on()) abort();
}

int hk_config_find(const char *name) {
    if (hk_ieq_n(name, "HAKMEM_", 7)) name += 7;
    for (int i = 0; i < HK_OPT_COUNT; i++)
        if (hk_ieq(name, hk_opt_table[i].name)) return i;
    return -1;
}

static int hk_parse_value(const hk_opt_desc_t *d, const char *value, long long *out) {
    long long v = 0;
    int rc = -1;
    switch (d->type) {
    case HK_OPT_BOOL: rc = hk_parse_bool(value, &v); break;
    case HK_OPT_INT: rc = hk_parse_int(value, &v); break;
    case HK_OPT_ENUM: rc = hk_parse_enum(value, d->choices, &v); break;
    case HK_OPT_STR: /* each STR option has its own syntax; the free-text ones only a length limit */
        rc = strlen(value) < HK_STR_MAX ? 0 : -1;
        if (rc == 0 && d - hk_opt_table == HK_OPT_TINY_TLS_CLASS_OVERRIDE) rc = hk_parse_class_override(value, 0);
        break;
    }
    if (rc != 0) return -1;
    if (d->type != HK_OPT_STR && (v < d->min || v > d->max)) return -1;
    *out = v;
    return 0;
}

static void hk_knobs_derive(void);

int hk_config_set(const char *name, const char *value, hk_opt_source_t src, int warn) {
    int id = hk_config_find(name);
    if (id < 0 || value == NULL) { errno = EINVAL; return -1; }
    const hk_opt_desc_t *d = &hk_opt_table[id];
    long long v;
    if (hk_parse_value(d, value, &v) != 0) {
        if (warn) hk_bad_value(d, value);
        errno = EINVAL;
        return -1;
    }
    if (d->type == HK_OPT_STR) hk_strlcpy(hk_opt_str[id], value, HK_STR_MAX);
    else __atomic_store_n(&hk_opt_val[id], v, __ATOMIC_RELAXED);
    hk_opt_src[id] = (uint8_t)src;
    if (id == HK_OPT_MODE) {
        /* A new mode re-applies its presets to every option not set by a variable or the API. */
        for (int i = 0; i < HK_OPT_COUNT; i++)
            if (i != HK_OPT_MODE && hk_opt_src[i] <= HK_SRC_MODE) {
                hk_opt_val[i] = hk_opt_table[i].def;
                hk_opt_src[i] = HK_SRC_DEFAULT;
            }
        for (size_t i = 0; i < sizeof hk_presets / sizeof hk_presets[0]; i++)
            if (hk_presets[i].mode == v && hk_opt_src[hk_presets[i].opt] == HK_SRC_DEFAULT) {
                hk_opt_val[hk_presets[i].opt] = hk_presets[i].value;
                hk_opt_src[hk_presets[i].opt] = HK_SRC_MODE;
            }
    }
    if (src != HK_SRC_ENV) hk_knobs_derive(); /* init derives once after reading everything */
    return 0;
}

long long hk_config_get(hk_opt_id_t id) { return __atomic_load_n(&hk_opt_val[id], __ATOMIC_RELAXED); }
const char *hk_config_get_str(hk_opt_id_t id) { return hk_opt_str[id]; }
hk_opt_source_t hk_config_source(hk_opt_id_t id) { return (hk_opt_source_t)hk_opt_src[id]; }

void hk_config_format(hk_opt_id_t id, char *buf, size_t len) {
    const hk_opt_desc_t *d = &hk_opt_table[id];
    long long v = hk_opt_val[id];
    if (d->type == HK_OPT_STR) { hk_strlcpy(buf, hk_opt_str[id][0] ? hk_opt_str[id] : "(none)", len); return; }
    if (d->type == HK_OPT_ENUM) {
        const char *c = d->choices;
        for (long long i = 0; i < v && *c; i++) { while (*c && *c != '|') c++; if (*c) c++; }
        size_t n = 0;
        while (c[n] && c[n] != '|' && n + 1 < len) { buf[n] = c[n]; n++; }
        buf[n] = 0;
        return;
    }
    if (len >= 24) hk_fmt_u64(buf, (uint64_t)v);
}

const char *hk_mode_name_of(int m) {
    static const char *names[] = {"minimal", "fast", "balanced", "learning", "adaptive", "tight", "lean", "research"};
    return (m >= 0 && m < HK_MODE_COUNT) ? names[m] : "fast";
}

const char *hk_mode_name(void) { return hk_mode_name_of((int)hk_config_get(HK_OPT_MODE)); }

int hk_config_preset(int m, hk_opt_id_t id, long long *value) {
    for (size_t i = 0; i < sizeof hk_presets / sizeof hk_presets[0]; i++)
        if (hk_presets[i].mode == m && hk_presets[i].opt == (int)id) {
            *value = hk_presets[i].value;
            return 1;
        }
    return 0;
}

/* ---- knobs ---------------------------------------------------------------------------------------- */
/* Built-in thread-cache cap per class: about 32 KiB of blocks for tiny classes, 128 KiB for mid ones,
 * clamped; the refill batch is half the cap. */
static uint32_t hk_default_cap(int cls, size_t bsize) {
    size_t budget = cls < HK_TINY_CLASSES ? 32768 : 131072;
    size_t cap = budget / bsize;
    size_t lo = cls < HK_TINY_CLASSES ? 16 : 4, hi = cls < HK_TINY_CLASSES ? 256 : 32;
    return (uint32_t)HK_MAX(lo, HK_MIN(hi, cap));
}

extern HK_HIDDEN size_t hk_class_size_of(int cls);

static void hk_knobs_derive(void) {
    hk_knobs_t k = hk_knobs;
    long long lean = hk_opt_val[HK_OPT_SS_MEM_LEAN] || hk_opt_val[HK_OPT_MODE] == HK_MODE_LEAN;
    long long pct = hk_opt_val[HK_OPT_TINY_CAP_PCT];
    if (lean && hk_opt_src[HK_OPT_TINY_CAP_PCT] < HK_SRC_ENV) pct = HK_MIN(pct, 50);
    for (int c = 0; c < HK_NCLASSES; c++) {
        uint32_t cap = (uint32_t)((hk_default_cap(c, hk_class_size_of(c)) * (uint64_t)pct + 99) / 100);
        k.tcache_cap[c] = HK_MAX(cap, 2u);
        k.tcache_batch[c] = HK_MAX(k.tcache_cap[c] / 2, 1u);
    }
    k.mode = (int)hk_opt_val[HK_OPT_MODE];
    k.debug_level = (int)hk_opt_val[HK_OPT_DEBUG_LEVEL];
    k.stats = (int)hk_opt_val[HK_OPT_STATS_ENABLE];
    k.os_stats = (int)hk_opt_val[HK_OPT_SS_OS_STATS];
    k.thp = hk_opt_val[HK_OPT_THP] == 1 ? -1 : (int)(hk_opt_val[HK_OPT_THP] / 2);
    k.bigcache_entries = hk_opt_val[HK_OPT_BIGCACHE] ? (int)hk_opt_val[HK_OPT_BIGCACHE_ENTRIES] : 0;
    k.bigcache_max_bytes = (size_t)hk_opt_val[HK_OPT_BIGCACHE_MAX_MB] << 20;
    k.madvise_batch = (int)hk_opt_val[HK_OPT_MADVISE_BATCH];
    k.ss_reuse = (int)hk_opt_val[HK_OPT_SUPERSLAB_REUSE];
    k.prewarm = (int)hk_opt_val[HK_OPT_SUPERSLAB_PREWARM];
    k.lean = (int)lean;
    k.decommit = HK_DECOMMIT_DONTNEED;
    k.lean_target_bytes = (size_t)hk_opt_val[HK_OPT_SS_MEM_LEAN_TARGET_MB] << 20;
    if (lean) {
        /* Lean overrides what a preset chose, but not what a variable or the API set explicitly. */
        if (hk_opt_src[HK_OPT_SUPERSLAB_PREWARM] < HK_SRC_ENV) k.prewarm = 0;
        if (hk_opt_src[HK_OPT_SUPERSLAB_REUSE] < HK_SRC_ENV) k.ss_reuse = 0;
        if (hk_opt_src[HK_OPT_MADVISE_BATCH] < HK_SRC_ENV) k.madvise_batch = 0;
        k.decommit = (hk_decommit_t)hk_opt_val[HK_OPT_SS_MEM_LEAN_DECOMMIT];
        if (hk_opt_src[HK_OPT_BIGCACHE_MAX_MB] < HK_SRC_ENV) k.bigcache_max_bytes = HK_MIN(k.bigcache_max_bytes, k.lean_target_bytes / 4);
        if (hk_opt_src[HK_OPT_BIGCACHE_ENTRIES] < HK_SRC_ENV) k.bigcache_entries = HK_MIN(k.bigcache_entries, 4);
    }
    if (hk_opt_str[HK_OPT_TINY_TLS_CLASS_OVERRIDE][0]) {
        hk_knobs_t saved = hk_knobs;
        hk_knobs = k;
        (void)hk_parse_class_override(hk_opt_str[HK_OPT_TINY_TLS_CLASS_OVERRIDE], 1);
        k = hk_knobs;
        hk_knobs = saved;
        for (int c = 0; c < HK_NCLASSES; c++) k.tcache_batch[c] = HK_MAX(1u, HK_MIN(k.tcache_batch[c], HK_MAX(k.tcache_cap[c], 1u)));
    }
    k.epoch = hk_knobs.epoch + 1;
    /* Publish field by field with relaxed stores; readers only need each value to be one that was valid. */
    _Static_assert(sizeof k % sizeof(uint64_t) == 0, "knobs are published in 64-bit words");
    for (size_t i = 0; i < sizeof k / sizeof(uint64_t); i++)
        __atomic_store_n((uint64_t *)(void *)&hk_knobs + i, ((uint64_t *)(void *)&k)[i], __ATOMIC_RELAXED);
    __atomic_store_n(&hk_knobs.epoch, k.epoch, __ATOMIC_RELEASE);
}

/* Edit distance on short names, for "did you mean". */
static int hk_distance(const char *a, const char *b) {
    int row[64], la = (int)strlen(a), lb = (int)strlen(b);
    if (la > 62 || lb > 62) return 99;
    for (int j = 0; j <= lb; j++) row[j] = j;
    for (int i = 1; i <= la; i++) {
        int prev = row[0];
        row[0] = i;
        for (int j = 1; j <= lb; j++) {
            int cur = row[j];
            int sub = prev + (hk_lower((unsigned char)a[i - 1]) != hk_lower((unsigned char)b[j - 1]));
            row[j] = HK_MIN(HK_MIN(row[j] + 1, row[j - 1] + 1), sub);
            prev = cur;
        }
    }
    return row[lb];
}

extern char **environ;

static void hk_warn_unknown(void) {
    if (environ == NULL) return;
    for (char **e = environ; *e; e++) {
        if (strncmp(*e, "HAKMEM_", 7) != 0) continue;
        char name[96];
        size_t n = 0;
        const char *s = *e + 7;
        while (s[n] && s[n] != '=' && n + 1 < sizeof name) { name[n] = s[n]; n++; }
        name[n] = 0;
        if (hk_config_find(name) >= 0) continue;
        /* Variables read by tools and test programs of the project itself are not the allocator's. */
        if (strncmp(name, "TEST_", 5) == 0) continue;
        int best = -1, bestd = 4;
        for (int i = 0; i < HK_OPT_COUNT; i++) {
            int d = hk_distance(name, hk_opt_table[i].name);
            if (d < bestd) { bestd = d; best = i; }
        }
        hk_log_line("hakmem: unknown variable HAKMEM_", name, best >= 0 ? " ignored; did you mean HAKMEM_" : " ignored",
                    best >= 0 ? hk_opt_table[best].name : "", best >= 0 ? "?" : "");
        if (hk_strict_on()) { hk_log_line("hakmem: HAKMEM_STRICT=1: aborting", NULL, NULL, NULL, NULL); abort(); }
    }
}

static void hk_config_from_env(hk_opt_id_t id) {
    char var[96];
    size_t n = hk_strlcpy(var, "HAKMEM_", sizeof var);
    hk_strlcpy(var + n, hk_opt_table[id].name, sizeof var - n);
    const char *v = secure_getenv(var);
    if (v != NULL) (void)hk_config_set(var, v, HK_SRC_ENV, 1);
}

void hk_config_init(void) {
    for (int i = 0; i < HK_OPT_COUNT; i++) {
        hk_opt_val[i] = hk_opt_table[i].def;
        hk_opt_src[i] = HK_SRC_DEFAULT;
    }
    /* STRICT first so it governs how the others are reported; MODE next so its presets become the
     * defaults that individual variables then override. */
    hk_config_from_env(HK_OPT_STRICT);
    hk_config_from_env(HK_OPT_MODE);
    for (int i = 0; i < HK_OPT_COUNT; i++)
        if (i != HK_OPT_STRICT && i != HK_OPT_MODE) hk_config_from_env((hk_opt_id_t)i);
    hk_warn_unknown();
    hk_knobs_derive();
}
