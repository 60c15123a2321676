/* test_util.c: capped buffers, arenas, the accounted allocator and error names. */
#include "cx_test.h"
#include "util/alloc.h"
#include "util/arena.h"
#include "util/buf.h"
#include "util/err.h"

#include <errno.h>

static void test_buf_append_consume(void)
{
    cx_buf_t b;
    cx_buf_init(&b, 0);
    CHECK_INT_EQ(cx_buf_append(&b, "hello", 5), CX_OK);
    CHECK_INT_EQ(cx_buf_append(&b, " world", 6), CX_OK);
    CHECK_SLICE_EQ(cx_buf_str(&b), "hello world");
    cx_buf_consume(&b, 6, 0);
    CHECK_SLICE_EQ(cx_buf_str(&b), "world");
    cx_buf_consume(&b, 5, 1);
    CHECK_INT_EQ(cx_buf_used(&b), 0);
    CHECK(b.data == NULL); /* released when drained */
    cx_buf_free(&b);
}

static void test_buf_cap(void)
{
    cx_buf_t b;
    cx_buf_init(&b, 16);
    CHECK_INT_EQ(cx_buf_append(&b, "0123456789abcdef", 16), CX_OK);
    CHECK_INT_EQ(cx_buf_append(&b, "x", 1), CX_ETOOBIG);
    cx_buf_consume(&b, 8, 0);
    /* Room at the front is reused by compaction, within the cap. */
    CHECK_INT_EQ(cx_buf_append(&b, "ABCDEFGH", 8), CX_OK);
    CHECK_SLICE_EQ(cx_buf_str(&b), "89abcdefABCDEFGH");
    CHECK(b.cap <= 16);
    cx_buf_free(&b);
}

static void test_buf_growth_keeps_data(void)
{
    cx_buf_t b;
    cx_buf_init(&b, 0);
    for (int i = 0; i < 10000; i++)
        CHECK_INT_EQ(cx_buf_append_byte(&b, (uint8_t)(i & 0xff)), CX_OK);
    cx_buf_consume(&b, 3, 0);
    CHECK_INT_EQ(cx_buf_reserve(&b, 100000), CX_OK);
    CHECK_INT_EQ(cx_buf_used(&b), 9997);
    for (int i = 0; i < 9997; i++)
        CHECK_INT_EQ(cx_buf_head(&b)[i], (i + 3) & 0xff);
    cx_buf_free(&b);
}

static void test_arena_alloc_reset(void)
{
    cx_arena_t a;
    cx_arena_init(&a, 0);
    char *p = cx_arena_alloc(&a, 10);
    CHECK(p != NULL);
    CHECK_INT_EQ(((uintptr_t)p) % _Alignof(max_align_t), 0);
    for (int i = 0; i < 10; i++)
        CHECK_INT_EQ(p[i], 0);
    void *big = cx_arena_alloc(&a, 100000);
    CHECK(big != NULL);
    cx_arena_reset(&a);
    CHECK_INT_EQ(a.used, 0);
    CHECK(cx_arena_alloc(&a, 16) != NULL);
    cx_arena_free(&a);
}

static void test_arena_cap(void)
{
    cx_arena_t a;
    cx_arena_init(&a, 64);
    CHECK(cx_arena_alloc(&a, 32) != NULL);
    CHECK(cx_arena_alloc(&a, 64) == NULL);
    cx_arena_free(&a);
}

static void test_alloc_accounting_and_limit(void)
{
    size_t base = cx_alloc_current();
    void *p = cx_malloc(1000);
    CHECK(p != NULL);
    CHECK(cx_alloc_current() >= base + 1000);
    CHECK(cx_alloc_maximum() >= cx_alloc_current());
    cx_alloc_set_limit(cx_alloc_current() + 100);
    CHECK(cx_malloc(10000) == NULL);
    CHECK(cx_realloc(p, 100000) == NULL);
    cx_alloc_set_limit(0);
    p = cx_realloc(p, 100000);
    CHECK(p != NULL);
    cx_free(p);
    CHECK_INT_EQ(cx_alloc_current(), base);
    CHECK(cx_calloc((size_t)-1, 16) == NULL); /* overflow */
}

static void test_str_cstr(void)
{
    char buf[8];
    char *c = cx_str_cstr(CX_STR_LIT("abc"), buf, sizeof buf);
    CHECK(c == buf);
    CHECK_STR_EQ(c, "abc");
    cx_str_cstr_free(c, buf);
    c = cx_str_cstr(CX_STR_LIT("longer than eight"), buf, sizeof buf);
    CHECK(c != NULL && c != buf); /* too long for buf: on the heap */
    CHECK_STR_EQ(c, "longer than eight");
    cx_str_cstr_free(c, buf);
    c = cx_str_cstr(CX_STR_NULL, buf, sizeof buf);
    CHECK_STR_EQ(c, "");
}

static void test_err_names(void)
{
    CHECK_STR_EQ(cx_errname(CX_ENOMEM), "CX_ENOMEM");
    CHECK_STR_EQ(cx_strerror(CX_ETOOBIG), "too large");
    CHECK_STR_EQ(cx_errname(-ECONNRESET), "ECONNRESET");
    CHECK(cx_strerror(-12345678) != NULL);
}

CX_TEST_MAIN(
    CX_TEST(buf_append_consume),
    CX_TEST(buf_cap),
    CX_TEST(buf_growth_keeps_data),
    CX_TEST(arena_alloc_reset),
    CX_TEST(arena_cap),
    CX_TEST(alloc_accounting_and_limit),
    CX_TEST(str_cstr),
    CX_TEST(err_names),
)
