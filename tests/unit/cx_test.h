/* cx_test.h: the tiny unit-test runner (libuv style).
 *
 * A test file defines functions `static void test_name(void)` and a table:
 *
 *     CX_TEST_MAIN(
 *         CX_TEST(frame_short),
 *         CX_TEST(frame_bad_varint),
 *     )
 *
 * Each test runs in a forked child, so a crash fails one test and not the file. Asserts
 * print both sides. `./test_x name` runs one test without forking (for gdb). */
#ifndef CX_TEST_H
#define CX_TEST_H

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

typedef struct cx_test_case {
    const char *name;
    void (*fn)(void);
} cx_test_case_t;

#define CX_TEST(name) {#name, test_##name}

#define CX_FAIL_(...)                                                                   \
    do {                                                                                \
        fprintf(stderr, "%s:%d: ", __FILE__, __LINE__);                                 \
        fprintf(stderr, __VA_ARGS__);                                                   \
        fprintf(stderr, "\n");                                                          \
        exit(1);                                                                        \
    } while (0)

#define CHECK(cond)                                                                     \
    do {                                                                                \
        if (!(cond))                                                                    \
            CX_FAIL_("CHECK(%s) failed", #cond);                                        \
    } while (0)

#define CHECK_INT_EQ(a, b)                                                              \
    do {                                                                                \
        long long a_ = (long long)(a), b_ = (long long)(b);                             \
        if (a_ != b_)                                                                   \
            CX_FAIL_("%s == %s failed: %lld != %lld", #a, #b, a_, b_);                  \
    } while (0)

#define CHECK_STR_EQ(a, b)                                                              \
    do {                                                                                \
        const char *a_ = (a), *b_ = (b);                                                \
        if (!a_ || !b_ || strcmp(a_, b_) != 0)                                          \
            CX_FAIL_("%s == %s failed: \"%s\" != \"%s\"", #a, #b, a_ ? a_ : "(null)",   \
                     b_ ? b_ : "(null)");                                               \
    } while (0)

/* Compares a cx_str_t with a C string. */
#define CHECK_SLICE_EQ(s, cstr)                                                         \
    do {                                                                                \
        cx_str_t s_ = (s);                                                              \
        const char *c_ = (cstr);                                                        \
        if (s_.len != strlen(c_) || (s_.len && memcmp(s_.p, c_, s_.len) != 0))          \
            CX_FAIL_("%s == \"%s\" failed: got \"%.*s\"", #s, c_, (int)s_.len,          \
                     s_.p ? (const char *)s_.p : "");                                   \
    } while (0)

static inline int cx_test_run(const cx_test_case_t *cases, size_t n, int argc, char **argv)
{
    if (argc > 1) {
        for (size_t i = 0; i < n; i++)
            if (strcmp(cases[i].name, argv[1]) == 0) {
                cases[i].fn();
                printf("ok %s\n", cases[i].name);
                return 0;
            }
        fprintf(stderr, "no test named %s\n", argv[1]);
        return 2;
    }
    int failed = 0;
    for (size_t i = 0; i < n; i++) {
        fflush(stdout);
        pid_t pid = fork();
        if (pid == 0) {
            cases[i].fn();
            exit(0);
        }
        int st = 0;
        waitpid(pid, &st, 0);
        int ok = WIFEXITED(st) && WEXITSTATUS(st) == 0;
        printf("%s %zu - %s", ok ? "ok" : "not ok", i + 1, cases[i].name);
        if (WIFSIGNALED(st))
            printf(" (signal %d)", WTERMSIG(st));
        printf("\n");
        failed += !ok;
    }
    printf("%zu tests, %d failed\n", n, failed);
    return failed ? 1 : 0;
}

#define CX_TEST_MAIN(...)                                                               \
    int main(int argc, char **argv)                                                     \
    {                                                                                   \
        static const cx_test_case_t cases_[] = {__VA_ARGS__};                           \
        return cx_test_run(cases_, sizeof cases_ / sizeof cases_[0], argc, argv);       \
    }

#endif
