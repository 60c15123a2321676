/* test_alloc.c: the accounted allocator under several threads: memory_limit is never passed
 * and the count stays equal to what the C library holds. */
#include "cx_test.h"
#include "util/alloc.h"

#include <malloc.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#define THREADS 4
#define SLOTS 128
#define OPS 200000

typedef struct hammer {
    size_t limit;
    uint64_t rng;
    void *slot[SLOTS];
    size_t over;     /* times cx_alloc_current() was seen above the limit */
    size_t refused;  /* allocations that failed at the limit */
    size_t done;     /* allocations that succeeded */
} hammer_t;

static atomic_bool go;

static uint64_t next_rand(hammer_t *h)
{
    h->rng ^= h->rng << 13;
    h->rng ^= h->rng >> 7;
    h->rng ^= h->rng << 17;
    return h->rng;
}

/* Mostly small blocks (the hot path), some of a few KiB, and a few large enough for glibc
 * to mmap them. */
static size_t random_size(hammer_t *h)
{
    uint64_t r = next_rand(h);
    switch (r % 20) {
    case 0:
        return 64 * 1024 + (size_t)(r >> 8) % (192 * 1024);
    case 1: case 2: case 3: case 4: case 5:
        return 1024 + (size_t)(r >> 8) % (31 * 1024);
    default:
        return 1 + (size_t)(r >> 8) % 1024;
    }
}

static void *hammer_run(void *arg)
{
    hammer_t *h = arg;
    while (!atomic_load(&go)) {
    }
    for (int i = 0; i < OPS; i++) {
        uint64_t r = next_rand(h);
        void **s = &h->slot[r % SLOTS];
        void *p;
        switch ((r >> 16) % 4) {
        case 0: /* free */
            cx_free_null(*s);
            continue;
        case 1: /* grow (or allocate) */
            p = cx_realloc(*s, *s ? malloc_usable_size(*s) * 2 : random_size(h));
            break;
        case 2:
            cx_free_null(*s);
            p = cx_calloc(1, random_size(h));
            break;
        default:
            cx_free_null(*s);
            p = cx_malloc(random_size(h));
            break;
        }
        if (p) {
            *s = p;
            h->done++;
        } else {
            h->refused++;
        }
        if (cx_alloc_current() > h->limit)
            h->over++;
    }
    return NULL;
}

static void test_limit_holds_under_threads(void)
{
    size_t base = cx_alloc_current();
    /* Far above what the process held before, and far below what the threads ask for
     * (about 4 x 128 blocks of 13 KiB on average, and blocks that double). */
    size_t limit = cx_alloc_maximum() + (4 << 20);
    cx_alloc_set_limit(limit);
    static hammer_t h[THREADS];
    pthread_t t[THREADS];
    for (int i = 0; i < THREADS; i++) {
        h[i] = (hammer_t){.limit = limit, .rng = 0x9e3779b97f4a7c15ULL * (uint64_t)(i + 1)};
        CHECK(pthread_create(&t[i], NULL, hammer_run, &h[i]) == 0);
    }
    atomic_store(&go, true);
    size_t refused = 0, done = 0, over = 0;
    for (int i = 0; i < THREADS; i++) {
        CHECK(pthread_join(t[i], NULL) == 0);
        refused += h[i].refused;
        done += h[i].done;
        over += h[i].over;
    }
    size_t held = 0;
    for (int i = 0; i < THREADS; i++)
        for (int j = 0; j < SLOTS; j++)
            if (h[i].slot[j])
                held += malloc_usable_size(h[i].slot[j]);
    printf("%zu allocations, %zu refused at the limit; peak %zu of limit %zu\n", done,
           refused, cx_alloc_maximum() - base, limit - base);
    CHECK(refused > 0); /* the limit was reached */
    CHECK(done > refused);
    CHECK_INT_EQ(over, 0);
    CHECK(cx_alloc_maximum() <= limit);
    /* The count is exactly what the blocks hold: every correction after malloc and realloc
     * was right. */
    CHECK_INT_EQ(cx_alloc_current() - base, held);
    for (int i = 0; i < THREADS; i++)
        for (int j = 0; j < SLOTS; j++)
            cx_free(h[i].slot[j]);
    CHECK_INT_EQ(cx_alloc_current(), base);
    cx_alloc_set_limit(0);
}

/* A block that fits exactly under the limit is given; one byte more is refused, for each
 * entry point (the reservation covers what malloc_usable_size will report). */
static void test_limit_exact(void)
{
    size_t base = cx_alloc_current();
    void *p = cx_malloc(1000);
    CHECK(p != NULL);
    size_t one = cx_alloc_current() - base;
    CHECK_INT_EQ(one, malloc_usable_size(p));
    cx_free(p);
    cx_alloc_set_limit(base + one);
    p = cx_malloc(1000);
    CHECK(p != NULL);
    CHECK(cx_malloc(1) == NULL);
    CHECK(cx_calloc(1, 1) == NULL);
    CHECK(cx_realloc(p, 1 << 20) == NULL);
    CHECK(cx_alloc_current() <= base + one);
    cx_free(p);
    CHECK_INT_EQ(cx_alloc_current(), base);
    cx_alloc_set_limit(0);
}

CX_TEST_MAIN(
    CX_TEST(limit_holds_under_threads),
    CX_TEST(limit_exact),
)
