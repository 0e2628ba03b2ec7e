/* The test framework seen by the test sources: criterion, or, where criterion cannot run, a small
 * compatible runner with the same macros.
 *
 * Criterion cannot start under ThreadSanitizer (its inheritable arena mapping fails with EAGAIN:
 * criterion issue #274), so TSan builds define HAK_TEST_NO_CRITERION and get this runner. It keeps
 * criterion's model: each test runs in its own forked process (a crash fails that test only), a failed
 * cr_assert ends the test, a failed cr_expect marks it failed and continues, and the program ends
 * with criterion's "Synthesis:" line and a non-zero exit status if anything failed. Only the subset of
 * the criterion API the tests use is provided: Test(), cr_assert, cr_expect, cr_assert_fail,
 * cr_assert_not_null, cr_assert_str_eq, cr_expect_str_eq, cr_assert_{eq,neq,gt,geq,lt,leq}. Options: --filter=SUITE/NAME (exact or SUITE/ *), others
 * accepted and ignored.
 */
#ifndef HAK_TESTS_TEST_RUNNER_H
#define HAK_TESTS_TEST_RUNNER_H

#ifndef HAK_TEST_NO_CRITERION
#include <criterion/criterion.h>
#else

#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

typedef struct ht_test {
    const char *suite, *name;
    void (*fn)(void);
} ht_test_t;

static ht_test_t ht_tests[128];
static int ht_ntests;
static int ht_expect_failed; /* set in the test's process by a failed cr_expect */

static void ht_register(const char *suite, const char *name, void (*fn)(void)) {
    if (ht_ntests < (int)(sizeof ht_tests / sizeof ht_tests[0])) ht_tests[ht_ntests++] = (ht_test_t){suite, name, fn};
}

/* Reports a failed check. fatal: end the test's process now (the parent reports it). The format has
 * a trailing "" argument appended by the macros so that a check without a message still has one. */
static void ht_fail(int fatal, const char *file, int line, const char *expr, const char *fmt, ...) {
    fprintf(stderr, "[----] %s:%d: %s\n", file, line, fatal ? "Assertion Failed" : "Expectation Failed");
    if (fmt != NULL && fmt[0] != '\0') {
        va_list ap;
        va_start(ap, fmt);
        fputs("[----]   ", stderr);
        vfprintf(stderr, fmt, ap);
        fputc('\n', stderr);
        va_end(ap);
    } else if (expr != NULL && expr[0] != '\0') {
        fprintf(stderr, "[----]   The expression %s is false.\n", expr);
    }
    fflush(stderr);
    if (fatal) _exit(1);
    ht_expect_failed = 1;
}

#define Test(suite, name)                                                                               \
    static void ht_##suite##_##name(void);                                                              \
    __attribute__((constructor)) static void ht_reg_##suite##_##name(void) {                           \
        ht_register(#suite, #name, ht_##suite##_##name);                                                \
    }                                                                                                   \
    static void ht_##suite##_##name(void)

#define HT_CHECK_(fatal, cond, expr, ...)                                                               \
    do {                                                                                                \
        if (!(cond)) ht_fail(fatal, __FILE__, __LINE__, expr, __VA_ARGS__);                             \
    } while (0)
#define HT_CHECK1_(fatal, cond, ...) HT_CHECK_(fatal, cond, #cond, __VA_ARGS__)
#define HT_NN_(fatal, p, ...) HT_CHECK_(fatal, (p) != NULL, #p " is not NULL", __VA_ARGS__)
#define HT_STREQ_(fatal, a, b, ...) HT_CHECK_(fatal, strcmp((a), (b)) == 0, #a " == " #b, __VA_ARGS__)

#define cr_assert(...) HT_CHECK1_(1, __VA_ARGS__, "")
#define cr_expect(...) HT_CHECK1_(0, __VA_ARGS__, "")
#define cr_assert_not_null(...) HT_NN_(1, __VA_ARGS__, "")
#define cr_assert_str_eq(...) HT_STREQ_(1, __VA_ARGS__, "")
#define cr_assert_fail(...) ht_fail(1, __FILE__, __LINE__, "", __VA_ARGS__, "")
#define HT_CMP_(fatal, op, a, b, ...) HT_CHECK_(fatal, (a) op (b), #a " " #op " " #b, __VA_ARGS__)
#define cr_assert_eq(...) HT_CMP_(1, ==, __VA_ARGS__, "")
#define cr_assert_neq(...) HT_CMP_(1, !=, __VA_ARGS__, "")
#define cr_assert_gt(...) HT_CMP_(1, >, __VA_ARGS__, "")
#define cr_assert_geq(...) HT_CMP_(1, >=, __VA_ARGS__, "")
#define cr_assert_lt(...) HT_CMP_(1, <, __VA_ARGS__, "")
#define cr_assert_leq(...) HT_CMP_(1, <=, __VA_ARGS__, "")
#define cr_expect_str_eq(...) HT_STREQ_(0, __VA_ARGS__, "")

static int ht_selected(const char *filter, const ht_test_t *t) {
    if (filter == NULL) return 1;
    char full[256];
    snprintf(full, sizeof full, "%s/%s", t->suite, t->name);
    size_t n = strlen(filter);
    if (n > 0 && filter[n - 1] == '*') return strncmp(full, filter, n - 1) == 0;
    return strcmp(full, filter) == 0;
}

int main(int argc, char **argv) {
    const char *filter = NULL;
    for (int i = 1; i < argc; i++) {
        if (strncmp(argv[i], "--filter=", 9) == 0) filter = argv[i] + 9;
        else if (strcmp(argv[i], "--filter") == 0 && i + 1 < argc) filter = argv[++i];
    }
    int tested = 0, passing = 0, failing = 0, crashing = 0;
    for (int i = 0; i < ht_ntests; i++) {
        const ht_test_t *t = &ht_tests[i];
        if (!ht_selected(filter, t)) continue;
        tested++;
        fflush(NULL);
        pid_t pid = fork();
        if (pid < 0) {
            perror("fork");
            return 2;
        }
        if (pid == 0) {
            alarm(600); /* a hung test becomes a crash report, not a hung run */
            t->fn();
            /* exit, not _exit: sanitizer runtimes turn reports into the exit status at exit time
             * (TSan exits 66 after a race report) */
            exit(ht_expect_failed ? 1 : 0);
        }
        int status = 0;
        while (waitpid(pid, &status, 0) < 0) {
        }
        if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
            passing++;
        } else if (WIFSIGNALED(status)) {
            crashing++;
            failing++;
            fprintf(stderr, "[FAIL] %s::%s: CRASH! (signal %d, %s)\n", t->suite, t->name, WTERMSIG(status),
                    strsignal(WTERMSIG(status)));
        } else {
            failing++;
            fprintf(stderr, "[FAIL] %s::%s\n", t->suite, t->name);
        }
    }
    fprintf(stderr, "[====] Synthesis: Tested: %d | Passing: %d | Failing: %d | Crashing: %d \n", tested, passing,
            failing, crashing);
    return failing != 0;
}

#endif /* HAK_TEST_NO_CRITERION */
#endif /* HAK_TESTS_TEST_RUNNER_H */
