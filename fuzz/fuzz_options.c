/* fuzz_options: the option parser (hak_debug_set_option / hak_debug_get_option) on arbitrary strings.
 *
 * Input: records, each
 *   sel            byte; bit 0 set: the name is an option of the table (next byte picks it) with a
 *                  prefix and case picked by bits 1..3; bit 0 clear: the name is the raw bytes up to
 *                  '=' or NUL; (sel & 0xE0) == 0xE0: the value is a NULL pointer
 *   [idx]          table index (bit 0 set)
 *   value bytes    up to the next NUL (the record separator) or the end
 *
 * For every record the harness computes what the option table (src/config/options.def, the one list
 * the parser is generated from) says the answer must be — a model written from the documented grammar:
 * names with or without a HAKMEM_ prefix, any case; BOOL 1/true/yes/on 0/false/no/off; INT decimal with
 * an optional '-' and K/M/G[B] suffix (x1024^n), at most INT64_MAX, within [min, max]; ENUM one of the
 * choices, any case; STR shorter than 256 bytes, and for TINY_TLS_CLASS_OVERRIDE "C<cls>:<cap>[:<batch>]"
 * items (cls < 45 in at most 3 digits, cap <= 65536 and batch 1..65536 in at most 6 digits) separated by
 * ',' — and checks that
 *   - set returns 0, or -1 with errno EINVAL, exactly as the model says (never crashes, never another
 *     errno); the same call made twice answers the same;
 *   - an accepted numeric value reads back through hak_debug_get_option; get of an unknown name is
 *     -1/EINVAL (the string option has no numeric read-back: its value is not checked);
 *   - after every accepted change, a few allocations of each size range work and the TLS-SLL and heap
 *     checkers pass (every accepted value must be safe at once).
 * Options are restored to their start-up values after each input.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fz.h"
#include "hakmem_debug.h"

typedef enum fo_type { FO_BOOL, FO_INT, FO_ENUM, FO_STR } fo_type_t;

typedef struct fo_opt {
    const char *name; /* without HAKMEM_ */
    fo_type_t type;
    long long min, max;
    const char *choices;
    long long saved;    /* value at start-up (numeric types) */
    char saved_str[256];/* value at start-up (STR: from the environment) */
} fo_opt_t;

static fo_opt_t fo_table[] = {
#define HAK_OPT(ID, TYPE, DEF, MIN, MAX, CHOICES, DOC) {#ID, FO_##TYPE, MIN, MAX, CHOICES, 0, ""},
#include "config/options.def"
#undef HAK_OPT
};
#define FO_N (sizeof fo_table / sizeof fo_table[0])

static int lower(int c)
{
    return (c >= 'A' && c <= 'Z') ? c + 32 : c;
}

static int ieq(const char *a, const char *b)
{
    for (; *a && *b; a++, b++)
        if (lower((unsigned char)*a) != lower((unsigned char)*b))
            return 0;
    return *a == 0 && *b == 0;
}

/* ---- the model ---------------------------------------------------------------------------------- */

static int model_find(const char *name)
{
    if (strlen(name) >= 7) {
        static const char pre[] = "hakmem_";
        int has = 1;
        for (int i = 0; i < 7; i++)
            if (lower((unsigned char)name[i]) != pre[i])
                has = 0;
        if (has)
            name += 7;
    }
    for (size_t i = 0; i < FO_N; i++)
        if (ieq(name, fo_table[i].name))
            return (int)i;
    return -1;
}

static int model_int(const char *s, long long *out)
{
    const char *p = s;
    int neg = 0;
    if (*p == '-') {
        neg = 1;
        p++;
    }
    if (*p < '0' || *p > '9')
        return -1;
    unsigned __int128 v = 0;
    for (; *p >= '0' && *p <= '9'; p++) {
        v = v * 10 + (unsigned)(*p - '0');
        if (v > (unsigned __int128)INT64_MAX)
            return -1;
    }
    unsigned shift = 0;
    switch (lower((unsigned char)*p)) {
    case 'k': shift = 10; p++; break;
    case 'm': shift = 20; p++; break;
    case 'g': shift = 30; p++; break;
    default: break;
    }
    if (shift && lower((unsigned char)*p) == 'b')
        p++;
    if (*p)
        return -1;
    v <<= shift;
    if (v > (unsigned __int128)INT64_MAX)
        return -1;
    *out = neg ? -(long long)v : (long long)v;
    return 0;
}

static int model_override(const char *s)
{
    if (strlen(s) >= 256)
        return -1;
    const char *p = s;
    while (*p) {
        if (*p != 'C' && *p != 'c')
            return -1;
        p++;
        long long cls = 0, cap = 0, batch = 0;
        unsigned d = 0;
        for (; *p >= '0' && *p <= '9'; p++, d++)
            if (d < 7)
                cls = cls * 10 + (*p - '0');
        if (d == 0 || d > 3 || cls >= 45 || *p != ':')
            return -1;
        p++;
        d = 0;
        for (; *p >= '0' && *p <= '9'; p++, d++)
            if (d < 7)
                cap = cap * 10 + (*p - '0');
        if (d == 0 || d > 6 || cap > 65536)
            return -1;
        if (*p == ':') {
            p++;
            d = 0;
            for (; *p >= '0' && *p <= '9'; p++, d++)
                if (d < 7)
                    batch = batch * 10 + (*p - '0');
            if (d == 0 || d > 6 || batch < 1 || batch > 65536)
                return -1;
        }
        if (*p == ',')
            p++;
        else if (*p)
            return -1;
    }
    return 0;
}

/* What set(name, value) must do: 0 accept (*v = the value read back, STR: 0), -1 reject. */
static int model_set(const char *name, const char *value, long long *v)
{
    int id = model_find(name);
    if (id < 0 || value == NULL)
        return -1;
    const fo_opt_t *o = &fo_table[id];
    long long x = 0;
    switch (o->type) {
    case FO_BOOL: {
        static const char *yes[] = {"1", "true", "yes", "on"}, *no[] = {"0", "false", "no", "off"};
        int found = 0;
        for (int i = 0; i < 4 && !found; i++) {
            if (ieq(value, yes[i])) { x = 1; found = 1; }
            else if (ieq(value, no[i])) { x = 0; found = 1; }
        }
        if (!found)
            return -1;
        break;
    }
    case FO_INT:
        if (model_int(value, &x) != 0)
            return -1;
        break;
    case FO_ENUM: {
        const char *c = o->choices;
        size_t vl = strlen(value);
        long long idx = 0;
        int found = 0;
        while (*c && !found) {
            size_t n = strcspn(c, "|");
            char buf[64];
            if (n < sizeof buf) {
                memcpy(buf, c, n);
                buf[n] = 0;
                if (n == vl && ieq(buf, value)) {
                    x = idx;
                    found = 1;
                }
            }
            idx++;
            c += n;
            if (*c)
                c++;
        }
        if (!found)
            return -1;
        break;
    }
    case FO_STR:
        /* the class-override list has a syntax; the other strings (a trace path) only a length limit */
        if (strcmp(o->name, "TINY_TLS_CLASS_OVERRIDE") == 0 ? model_override(value) != 0 : strlen(value) >= 256)
            return -1;
        *v = 0;
        return 0;
    }
    if (x < o->min || x > o->max)
        return -1;
    *v = x;
    return 0;
}

/* ---- the harness ---------------------------------------------------------------------------------- */

static void fo_restore(const uint8_t *touched)
{
    for (size_t i = 0; i < FO_N; i++) {
        if (!touched[i])
            continue;
        char name[96], v[300];
        snprintf(name, sizeof name, "HAKMEM_%s", fo_table[i].name);
        if (fo_table[i].type == FO_STR) {
            snprintf(v, sizeof v, "%s", fo_table[i].saved_str);
        } else if (fo_table[i].type == FO_ENUM) {
            const char *c = fo_table[i].choices;
            for (long long k = 0; k < fo_table[i].saved && *c; k++) {
                c += strcspn(c, "|");
                if (*c)
                    c++;
            }
            snprintf(v, sizeof v, "%.*s", (int)strcspn(c, "|"), c);
        } else {
            snprintf(v, sizeof v, "%lld", fo_table[i].saved);
        }
        if (hak_debug_set_option(name, v) != 0)
            fz_crashf("restore: hak_debug_set_option(%s, \"%s\") rejected the value it held at start-up", name, v);
    }
}

/* Allocations of each range after an accepted change: the new value must be safe at once. */
static void fo_exercise(const char *name, const char *value)
{
    static const size_t sizes[] = {8, 24, 600, 1024, 3000, 40000, 70000};
    void *p[sizeof sizes / sizeof sizes[0]];
    for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
        p[k] = hak_malloc(sizes[k]);
        if (!p[k])
            fz_crashf("workload: hak_malloc(%zu) failed after %s=\"%s\"", sizes[k], name, value);
        memset(p[k], 0xa5, sizes[k]);
    }
    for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++)
        hak_free(p[k]);
    hk_verify_failure_t f;
    if (fz_check_now(&f))
        fz_crashf("%s after %s=\"%s\": %s", f.check, name, value, f.msg);
}

static void fo_check(const char *name, const char *value, uint8_t *touched)
{
    long long want = 0;
    int expect = model_set(name, value, &want);
    errno = 0;
    int rc = hak_debug_set_option(name, value);
    int e = errno;
    if (fz_printing())
        fprintf(stderr, "--- set(\"%s\", %s%s%s) = %d (model %d)\n", name, value ? "\"" : "", value ? value : "NULL",
                value ? "\"" : "", rc, expect);
    if (rc != 0 && rc != -1)
        fz_crashf("set-rc hak_debug_set_option(\"%s\", \"%s\") returned %d (only 0 or -1 are allowed)", name,
                  value ? value : "(null)", rc);
    if (rc == -1 && e != EINVAL)
        fz_crashf("set-errno hak_debug_set_option(\"%s\", \"%s\") failed with errno %d, not EINVAL", name,
                  value ? value : "(null)", e);
    if (rc != expect)
        fz_crashf("set-model hak_debug_set_option(\"%s\", \"%s\") returned %d; the option table says %s", name,
                  value ? value : "(null)", rc, expect == 0 ? "it is valid (0)" : "it is invalid (-1 EINVAL)");
    int id = model_find(name);
    if (rc == 0) {
        touched[id] = 1;
        errno = 0;
        long long got = hak_debug_get_option(name);
        if (fo_table[id].type != FO_STR && got != want)
            fz_crashf("readback hak_debug_get_option(\"%s\") = %lld after setting \"%s\" (expected %lld)", name, got,
                      value, want);
        /* the same call again: same answer */
        if (hak_debug_set_option(name, value) != 0)
            fz_crashf("repeat hak_debug_set_option(\"%s\", \"%s\") accepted once, rejected the second time", name, value);
        fo_exercise(name, value);
    } else {
        if (hak_debug_set_option(name, value) != -1)
            fz_crashf("repeat hak_debug_set_option(\"%s\", \"%s\") rejected once, accepted the second time", name,
                      value ? value : "(null)");
        errno = 0;
        long long got = hak_debug_get_option(name);
        int ge = errno;
        if (id < 0 && (got != -1 || ge != EINVAL))
            fz_crashf("get-unknown hak_debug_get_option(\"%s\") = %lld errno %d for an unknown name", name, got, ge);
        if (id >= 0 && got == -1 && ge == EINVAL)
            fz_crashf("get-known hak_debug_get_option(\"%s\") says EINVAL for a known option", name);
    }
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    fz_init("fuzz_options");
    for (size_t i = 0; i < FO_N; i++) {
        char name[96];
        snprintf(name, sizeof name, "HAKMEM_%s", fo_table[i].name);
        if (fo_table[i].type == FO_STR) {
            const char *s = getenv(name);
            snprintf(fo_table[i].saved_str, sizeof fo_table[i].saved_str, "%s", s ? s : "");
        } else {
            fo_table[i].saved = hak_debug_get_option(name);
        }
    }
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int ready;
    if (!ready) {
        LLVMFuzzerInitialize(NULL, NULL);
        ready = 1;
    }
    fz_count_exec(); /* no mode of its own: the records set whatever they set */
    uint8_t touched[FO_N];
    memset(touched, 0, sizeof touched);
    size_t pos = 0;
    unsigned records = 0;
    while (pos < size && records < 64) {
        char name[160], value[320];
        uint8_t sel = data[pos++];
        int null_value = (sel & 0xE0) == 0xE0;
        if (sel & 1) {
            size_t idx = pos < size ? data[pos++] : 0;
            static const char *const pre[4] = {"", "HAKMEM_", "hakmem_", "HaKmEm_"};
            snprintf(name, sizeof name, "%s%s", pre[(sel >> 1) & 3], fo_table[idx % FO_N].name);
            if (sel & 8)
                for (char *c = name; *c; c++)
                    *c = (char)lower((unsigned char)*c);
        } else {
            size_t n = 0;
            while (pos < size && data[pos] != '=' && data[pos] != 0 && n + 1 < sizeof name)
                name[n++] = (char)data[pos++];
            name[n] = 0;
            if (pos < size && data[pos] == '=')
                pos++;
        }
        size_t n = 0;
        while (pos < size && data[pos] != 0 && n + 1 < sizeof value)
            value[n++] = (char)data[pos++];
        value[n] = 0;
        if (pos < size && data[pos] == 0)
            pos++;
        fo_check(name, null_value ? NULL : value, touched);
        records++;
    }
    fo_restore(touched);
    return 0;
}
