/* test_cache.c — culex/sdk/cache.h: hits and misses, separate TTLs on the monotonic clock,
 * LRU eviction at the size bound, invalidate/clear, binary keys, and many threads at once. */
#include <culex/sdk/cache.h>

#include <errno.h>
#include <pthread.h>
#include <time.h>

#include "cx_test.h"

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0)
        ;
}

static void test_get_put(void)
{
    culex_cache *c = culex_cache_new(16, 60000, 60000);
    int v = -1;
    CHECK(c != NULL);
    CHECK_INT_EQ(culex_cache_get(c, "alice", 5, &v), 0);
    CHECK_INT_EQ(culex_cache_put(c, "alice", 5, 1, true), 0);
    CHECK_INT_EQ(culex_cache_get(c, "alice", 5, &v), 1);
    CHECK_INT_EQ(v, 1);
    CHECK_INT_EQ(culex_cache_put(c, "alice", 5, 2, false), 0); /* replaces */
    CHECK_INT_EQ(culex_cache_get(c, "alice", 5, &v), 1);
    CHECK_INT_EQ(v, 2);
    CHECK_INT_EQ(culex_cache_count(c), 1);
    CHECK_INT_EQ(culex_cache_get(c, "alic", 4, &v), 0);
    /* binary keys with NUL bytes; the empty key */
    CHECK_INT_EQ(culex_cache_put(c, "u\0p1", 4, 10, true), 0);
    CHECK_INT_EQ(culex_cache_put(c, "u\0p2", 4, 20, true), 0);
    CHECK_INT_EQ(culex_cache_put(c, "", 0, 30, true), 0);
    CHECK_INT_EQ(culex_cache_get(c, "u\0p1", 4, &v), 1);
    CHECK_INT_EQ(v, 10);
    CHECK_INT_EQ(culex_cache_get(c, "u\0p2", 4, &v), 1);
    CHECK_INT_EQ(v, 20);
    CHECK_INT_EQ(culex_cache_get(c, NULL, 0, &v), 1);
    CHECK_INT_EQ(v, 30);
    uint64_t hits, misses;
    culex_cache_stats(c, &hits, &misses);
    CHECK_INT_EQ(hits, 5);
    CHECK_INT_EQ(misses, 2);
    culex_cache_free(c);
    CHECK(culex_cache_new(0, 1, 1) == NULL);
}

static void test_ttls(void)
{
    culex_cache *c = culex_cache_new(16, 400, 60);
    int v;
    CHECK_INT_EQ(culex_cache_put(c, "pos", 3, 1, true), 0);
    CHECK_INT_EQ(culex_cache_put(c, "neg", 3, 0, false), 0);
    CHECK_INT_EQ(culex_cache_get(c, "neg", 3, &v), 1);
    sleep_ms(120);
    CHECK_INT_EQ(culex_cache_get(c, "neg", 3, &v), 0); /* negative TTL passed */
    CHECK_INT_EQ(culex_cache_get(c, "pos", 3, &v), 1);
    CHECK_INT_EQ(culex_cache_count(c), 1); /* the expired entry was dropped when seen */
    sleep_ms(400);
    CHECK_INT_EQ(culex_cache_get(c, "pos", 3, &v), 0);
    culex_cache_free(c);

    /* TTL 0: that kind is not cached */
    c = culex_cache_new(4, 1000, 0);
    CHECK_INT_EQ(culex_cache_put(c, "n", 1, 0, false), 1);
    CHECK_INT_EQ(culex_cache_get(c, "n", 1, &v), 0);
    culex_cache_free(c);
}

static void test_lru_eviction(void)
{
    culex_cache *c = culex_cache_new(3, 60000, 60000);
    int v;
    culex_cache_put(c, "a", 1, 1, true);
    culex_cache_put(c, "b", 1, 2, true);
    culex_cache_put(c, "c", 1, 3, true);
    CHECK_INT_EQ(culex_cache_get(c, "a", 1, &v), 1); /* a is now the most recent */
    culex_cache_put(c, "d", 1, 4, true);              /* evicts b */
    CHECK_INT_EQ(culex_cache_count(c), 3);
    CHECK_INT_EQ(culex_cache_get(c, "b", 1, &v), 0);
    CHECK_INT_EQ(culex_cache_get(c, "a", 1, &v), 1);
    CHECK_INT_EQ(culex_cache_get(c, "c", 1, &v), 1);
    CHECK_INT_EQ(culex_cache_get(c, "d", 1, &v), 1);
    culex_cache_put(c, "c", 1, 33, true); /* update refreshes recency: a is the oldest */
    culex_cache_put(c, "e", 1, 5, true);
    CHECK_INT_EQ(culex_cache_get(c, "a", 1, &v), 0);
    CHECK_INT_EQ(culex_cache_get(c, "c", 1, &v), 1);
    CHECK_INT_EQ(v, 33);
    /* a long run never grows past the bound */
    char key[16];
    for (int i = 0; i < 10000; i++) {
        snprintf(key, sizeof key, "k%d", i);
        CHECK_INT_EQ(culex_cache_put(c, key, strlen(key), i, true), 0);
    }
    CHECK_INT_EQ(culex_cache_count(c), 3);
    CHECK_INT_EQ(culex_cache_get(c, "k9999", 5, &v), 1);
    CHECK_INT_EQ(v, 9999);
    CHECK_INT_EQ(culex_cache_get(c, "k9996", 5, &v), 0);
    culex_cache_free(c);
}

static void test_invalidate_clear(void)
{
    culex_cache *c = culex_cache_new(8, 60000, 60000);
    int v;
    culex_cache_put(c, "x", 1, 1, true);
    culex_cache_put(c, "y", 1, 2, false);
    CHECK_INT_EQ(culex_cache_invalidate(c, "x", 1), 1);
    CHECK_INT_EQ(culex_cache_invalidate(c, "x", 1), 0);
    CHECK_INT_EQ(culex_cache_get(c, "x", 1, &v), 0);
    CHECK_INT_EQ(culex_cache_get(c, "y", 1, &v), 1);
    culex_cache_clear(c);
    CHECK_INT_EQ(culex_cache_count(c), 0);
    CHECK_INT_EQ(culex_cache_get(c, "y", 1, &v), 0);
    culex_cache_put(c, "z", 1, 3, true); /* usable after clear */
    CHECK_INT_EQ(culex_cache_get(c, "z", 1, &v), 1);
    culex_cache_free(c);
    culex_cache_free(NULL);
}

static culex_cache *shared;

static void *worker(void *arg)
{
    int id = (int)(intptr_t)arg;
    char key[32];
    int v;
    for (int i = 0; i < 20000; i++) {
        snprintf(key, sizeof key, "k%d", (i * 7 + id) % 500);
        if (culex_cache_get(shared, key, strlen(key), &v) && v != (int)strlen(key))
            return (void *)1;
        culex_cache_put(shared, key, strlen(key), (int)strlen(key), i % 3 != 0);
        if (i % 101 == 0)
            culex_cache_invalidate(shared, key, strlen(key));
        if (id == 0 && i % 5000 == 0)
            culex_cache_clear(shared);
    }
    return NULL;
}

static void test_threads(void)
{
    shared = culex_cache_new(128, 60000, 5);
    pthread_t t[8];
    for (int i = 0; i < 8; i++)
        CHECK_INT_EQ(pthread_create(&t[i], NULL, worker, (void *)(intptr_t)i), 0);
    for (int i = 0; i < 8; i++) {
        void *r;
        pthread_join(t[i], &r);
        CHECK(r == NULL);
    }
    CHECK(culex_cache_count(shared) <= 128);
    culex_cache_free(shared);
}

CX_TEST_MAIN(CX_TEST(get_put), CX_TEST(ttls), CX_TEST(lru_eviction), CX_TEST(invalidate_clear),
             CX_TEST(threads), )
