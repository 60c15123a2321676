/* test_levelmap.c: a trie node's child table. Most cases pick entry hashes by hand so that
 * collisions, wrap-around probes and backward-shift deletions happen where the test wants
 * them; after every change the whole table is checked against its invariants. */
#include "broker/levelmap.h"

#include <stdbool.h>
#include <stdlib.h>

#include "cx_test.h"
#include "util/alloc.h"
#include "util/err.h"

typedef struct tnode {
    int id;
    cx_levelmap_entry_t lv;
    char key[];
} tnode_t;
CX_LEVELMAP_CHECK_LAYOUT(tnode_t, lv, key);

static const uint64_t seed = 0x0123456789abcdefULL;

static tnode_t *tnode_of(cx_levelmap_entry_t *e)
{
    return e ? (tnode_t *)((char *)e - offsetof(tnode_t, lv)) : NULL;
}

static uint32_t hash_of(const char *key)
{
    return cx_levelmap_hash(seed, (const uint8_t *)key, strlen(key));
}

/* Test nodes come from malloc, not cx_malloc, so that allocation limits hit the table only.
 * Their keys get a NUL the table neither needs nor sees, so that tests can print them. */
static tnode_t *mk(int id, const char *key, uint32_t hash)
{
    size_t len = strlen(key);
    tnode_t *n = malloc(sizeof *n + len + 1);
    CHECK(n != NULL);
    n->id = id;
    cx_levelmap_entry_init(&n->lv, (const uint8_t *)key, len, hash);
    n->key[len] = '\0';
    CHECK(n->lv.hash == hash && n->lv.keylen == len && memcmp(n->key, key, len) == 0);
    CHECK(cx_levelmap_key(&n->lv) == (const uint8_t *)n->key);
    return n;
}

static tnode_t *find(const cx_levelmap_t *m, const char *key, uint32_t hash)
{
    return tnode_of(cx_levelmap_find(m, (const uint8_t *)key, strlen(key), hash));
}

static void insert_ok(cx_levelmap_t *m, tnode_t *n)
{
    CHECK_INT_EQ(cx_levelmap_insert(m, &n->lv), CX_OK);
}

/* add()'s hash argument that asks for the key's real hash. */
#define REAL_HASH (-1LL)

/* Makes the entry "<prefix><id>" with hash h (REAL_HASH: the key's own), inserts it into m
 * and appends it to live[*n]. */
static void add(cx_levelmap_t *m, tnode_t **live, size_t *n, const char *prefix, int id,
                long long h)
{
    char k[32];
    snprintf(k, sizeof k, "%s%d", prefix, id);
    tnode_t *t = mk(id, k, h == REAL_HASH ? hash_of(k) : (uint32_t)h);
    insert_ok(m, t);
    live[(*n)++] = t;
}

/* levelmap.c's load limit, restated: tiny tables may fill, larger ones stay at 3/4. */
static size_t room(unsigned bits)
{
    size_t cap = (size_t)1 << bits;
    return bits <= 2 ? cap : cap / 4 * 3;
}

/* Checks every invariant of m, whose entries must be exactly live[0..n) (ids below 4096):
 * the count, the load limit, the in-place slot for at most one entry (and only then), every entry
 * reachable from its home slot without crossing an empty slot, every live entry found by its key
 * and hash, and iteration visiting each entry once. */
static void check_map(const cx_levelmap_t *m, tnode_t **live, size_t n)
{
    static unsigned char seen[4096];
    CHECK_INT_EQ(cx_levelmap_count(m), n);
    CHECK(m->bits == 0 ? n <= 1 : n >= 2 && n <= room(m->bits));
    cx_levelmap_entry_t **s = cx_levelmap_slots(m);
    size_t mask = cx_levelmap_mask(m), used = 0;
    for (size_t i = 0; i <= mask; i++) {
        if (!s[i])
            continue;
        used++;
        for (size_t j = s[i]->hash & mask; j != i; j = (j + 1) & mask)
            CHECK(s[j] != NULL);
    }
    CHECK_INT_EQ(used, n);
    memset(seen, 0, sizeof seen);
    for (size_t i = 0; i < n; i++) {
        CHECK(live[i]->id >= 0 && live[i]->id < (int)sizeof seen);
        CHECK(find(m, live[i]->key, live[i]->lv.hash) == live[i]);
        seen[live[i]->id] = 1;
    }
    size_t visited = 0;
    for (cx_levelmap_entry_t *e = cx_levelmap_next(m, NULL); e; e = cx_levelmap_next(m, e)) {
        tnode_t *t = tnode_of(e);
        CHECK(t->id >= 0 && t->id < (int)sizeof seen);
        CHECK_INT_EQ(seen[t->id], 1); /* live, and not visited yet */
        seen[t->id] = 2;
        visited++;
    }
    CHECK_INT_EQ(visited, n);
}

/* Removes live[i] from m and from live (moving the last one into its place). */
static void remove_at(cx_levelmap_t *m, tnode_t **live, size_t *n, size_t i)
{
    tnode_t *t = live[i];
    cx_levelmap_remove(m, &t->lv);
    live[i] = live[--*n];
    free(t);
    check_map(m, live, *n);
}

static void free_all(cx_levelmap_t *m, tnode_t **live, size_t n)
{
    cx_levelmap_fini(m);
    for (size_t i = 0; i < n; i++)
        free(live[i]);
}

/* ---- cases ----------------------------------------------------------------------------- */

static void test_empty(void)
{
    cx_levelmap_t m = {0};
    check_map(&m, NULL, 0);
    CHECK(find(&m, "a", hash_of("a")) == NULL);
    CHECK(find(&m, "", hash_of("")) == NULL);
    cx_levelmap_drain_begin(&m);
    CHECK(cx_levelmap_drain(&m) == NULL);
    cx_levelmap_fini(&m);
    CHECK_INT_EQ(m.bits, 0);
}

static void test_one_in_place(void)
{
    cx_levelmap_t m = {0};
    tnode_t *a = mk(1, "sensors", hash_of("sensors"));
    size_t before = cx_alloc_current();
    insert_ok(&m, a);
    CHECK_INT_EQ(cx_alloc_current(), before); /* the chain case allocates nothing */
    CHECK_INT_EQ(m.bits, 0);
    CHECK(m.slots.one == &a->lv);
    check_map(&m, &a, 1);
    CHECK(find(&m, "sensor", hash_of("sensor")) == NULL);
    CHECK(find(&m, "sensorz", a->lv.hash) == NULL);     /* same hash, other bytes */
    CHECK(find(&m, "sensors", a->lv.hash ^ 1) == NULL); /* same bytes, other hash */
    cx_levelmap_remove(&m, &a->lv);
    check_map(&m, NULL, 0);
    free(a);

    /* The empty level ("a//b", "/a") is a key like any other. */
    tnode_t *e = mk(2, "", hash_of(""));
    insert_ok(&m, e);
    CHECK(find(&m, "", hash_of("")) == e);
    tnode_t *x = mk(3, "x", hash_of("x"));
    insert_ok(&m, x);
    tnode_t *live[] = {e, x};
    check_map(&m, live, 2);
    CHECK(m.bits > 0);
    free_all(&m, live, 2);
}

static void test_grow_and_shrink(void)
{
    enum { N = 3000 };
    static tnode_t *live[N];
    cx_levelmap_t m = {0};
    size_t n = 0;
    unsigned last_bits = 0;
    for (int i = 0; i < N; i++) {
        add(&m, live, &n, "device-", i, REAL_HASH);
        CHECK(m.bits >= last_bits); /* insertion never shrinks */
        last_bits = m.bits;
        if (n < 70 || (n & (n - 1)) == 0 || n == N)
            check_map(&m, live, n);
    }
    CHECK(room(m.bits) >= N && room(m.bits - 1) < N); /* grew no further than needed */

    /* Remove in a scrambled order: the table shrinks as it empties, back to the slot in
     * place once one entry is left. */
    srand(7);
    unsigned max_bits = m.bits;
    while (n > 0) {
        size_t i = (size_t)rand() % n;
        if (n < 70 || (n & (n - 1)) == 0) {
            remove_at(&m, live, &n, i);
        } else {
            tnode_t *t = live[i];
            cx_levelmap_remove(&m, &t->lv);
            live[i] = live[--n];
            free(t);
        }
        CHECK(m.bits <= max_bits);
        max_bits = m.bits;
        /* sparse tables shrink: never under 1/8 full beyond 8 slots */
        CHECK(m.bits < 3 || (size_t)n * 8 > cx_levelmap_mask(&m) + 1);
    }
    CHECK_INT_EQ(m.bits, 0);
    cx_levelmap_fini(&m);
}

/* Every entry has the same hash: one long probe chain, found by comparing bytes. */
static void test_collisions_same_hash(void)
{
    enum { N = 48 };
    tnode_t *live[N + 2];
    size_t n = 0;
    cx_levelmap_t m = {0};
    for (int i = 100; i < 100 + N; i++) { /* "k100".."k147": all the same length, too */
        add(&m, live, &n, "k", i, 0x5);
        check_map(&m, live, n);
    }
    CHECK(find(&m, "k999", 0x5u) == NULL); /* a miss walks the whole chain and stops */
    CHECK(find(&m, "k10", 0x5u) == NULL);  /* a prefix of stored keys */
    CHECK(find(&m, "k1000", 0x5u) == NULL);
    /* Keys differing only in length, under one hash. */
    live[n] = mk(1, "k", 0x5u);
    insert_ok(&m, live[n++]);
    live[n] = mk(2, "", 0x5u);
    insert_ok(&m, live[n++]);
    check_map(&m, live, n);
    /* Remove from the middle of the chain, then the head, then the tail: the hole left each
     * time must be filled by backward shift or later entries become unreachable. */
    remove_at(&m, live, &n, 20);
    remove_at(&m, live, &n, 0);
    remove_at(&m, live, &n, n - 1);
    while (n > 0)
        remove_at(&m, live, &n, n / 2);
    CHECK_INT_EQ(m.bits, 0);
    cx_levelmap_fini(&m);
}

/* Homes at the last slot so that probe sequences wrap around to slot 0, mixed with entries
 * whose home is slot 0, and entries that collide modulo the mask only (differing in high
 * bits), so that deletion has to decide cyclically which entries may move back. */
static void test_collisions_wraparound(void)
{
    enum { N = 60 };
    tnode_t *live[N];
    size_t n = 0;
    cx_levelmap_t m = {0};
    for (int i = 0; i < N; i++) {
        add(&m, live, &n, "w", i, i % 3 == 0 ? 0xffffffffu : i % 3 == 1 ? 0u : (uint32_t)i << 16);
        check_map(&m, live, n);
    }
    srand(11);
    for (int round = 0; round < 3; round++) {
        while (n > N / 4)
            remove_at(&m, live, &n, (size_t)rand() % n);
        for (int i = N + round * N; n < N; i++) {
            add(&m, live, &n, "w", i, i % 2 ? 0xffffffffu : 0u);
            check_map(&m, live, n);
        }
    }
    free_all(&m, live, n);
}

/* next() follows slot order from any entry, whatever its probe distance. */
static void test_iteration(void)
{
    enum { N = 200 };
    tnode_t *live[N];
    size_t n = 0;
    cx_levelmap_t m = {0};
    for (int i = 0; i < N; i++)
        add(&m, live, &n, "i", i, i % 5 == 0 ? 3 : REAL_HASH); /* some long chains too */
    check_map(&m, live, N);
    cx_levelmap_entry_t **s = cx_levelmap_slots(&m);
    size_t mask = cx_levelmap_mask(&m);
    cx_levelmap_entry_t *e = cx_levelmap_next(&m, NULL);
    for (size_t i = 0; i <= mask; i++) {
        if (!s[i])
            continue;
        CHECK(e == s[i]);
        e = cx_levelmap_next(&m, e);
    }
    CHECK(e == NULL);
    free_all(&m, live, N);

    /* In place: one entry, then none after it. */
    cx_levelmap_t one = {0};
    tnode_t *a = mk(0, "a", hash_of("a"));
    insert_ok(&one, a);
    CHECK(cx_levelmap_next(&one, NULL) == &a->lv);
    CHECK(cx_levelmap_next(&one, &a->lv) == NULL);
    free_all(&one, &a, 1);
}

static void test_drain(void)
{
    enum { N = 300 };
    tnode_t *live[N];
    unsigned char seen[N] = {0};
    size_t n = 0;
    cx_levelmap_t m = {0};
    for (int i = 0; i < N; i++)
        add(&m, live, &n, "d", i, REAL_HASH);
    cx_levelmap_drain_begin(&m);
    int got = 0;
    for (cx_levelmap_entry_t *e; (e = cx_levelmap_drain(&m)) != NULL; got++) {
        tnode_t *t = tnode_of(e);
        CHECK(!seen[t->id]);
        seen[t->id] = 1;
        free(t);
    }
    CHECK_INT_EQ(got, N);
    CHECK(cx_levelmap_drain(&m) == NULL); /* stays done */
    cx_levelmap_fini(&m);
    CHECK_INT_EQ(m.bits, 0);
    CHECK_INT_EQ(cx_levelmap_count(&m), 0);

    /* The in-place slot drains too. */
    tnode_t *a = mk(0, "a", hash_of("a"));
    insert_ok(&m, a);
    cx_levelmap_drain_begin(&m);
    CHECK(cx_levelmap_drain(&m) == &a->lv);
    CHECK(cx_levelmap_drain(&m) == NULL);
    cx_levelmap_fini(&m);
    free(a);
}

/* A growth that cannot allocate leaves the map as it was; a shrink that cannot allocate
 * keeps the larger table, still valid. */
static void test_out_of_memory(void)
{
    enum { N = 64 };
    tnode_t *live[N];
    size_t n = 0;
    cx_levelmap_t m = {0};
    while (n < room(3)) /* fill 8 slots to their limit of 6 */
        add(&m, live, &n, "o", (int)n, REAL_HASH);
    CHECK_INT_EQ(m.bits, 3);
    tnode_t *extra = mk((int)n, "extra", hash_of("extra"));
    cx_alloc_set_limit(cx_alloc_current());
    CHECK_INT_EQ(cx_levelmap_insert(&m, &extra->lv), CX_ENOMEM);
    cx_alloc_set_limit(0);
    CHECK_INT_EQ(m.bits, 3);
    check_map(&m, live, n);
    CHECK(find(&m, extra->key, extra->lv.hash) == NULL);
    insert_ok(&m, extra);
    live[n++] = extra;
    while (n < N)
        add(&m, live, &n, "o", (int)n, REAL_HASH);
    check_map(&m, live, n);
    unsigned bits = m.bits;
    cx_alloc_set_limit(cx_alloc_current());
    while (n > 2) {
        remove_at(&m, live, &n, n - 1);
        CHECK_INT_EQ(m.bits, bits); /* every shrink failed */
    }
    remove_at(&m, live, &n, 0); /* back to the in-place slot: needs no allocation */
    CHECK_INT_EQ(m.bits, 0);
    cx_alloc_set_limit(0);
    free_all(&m, live, n);
}

static void test_hash(void)
{
    const uint8_t *p = (const uint8_t *)"0123456789abcdefXYZ";
    /* Deterministic for a seed; every length (across the 8-byte word boundary) differs. */
    for (size_t len = 0; len <= 19; len++) {
        CHECK(cx_levelmap_hash(seed, p, len) == cx_levelmap_hash(seed, p, len));
        for (size_t other = 0; other < len; other++)
            CHECK(cx_levelmap_hash(seed, p, len) != cx_levelmap_hash(seed, p, other));
    }
    /* A zero byte still counts: "a" and "a\0" differ, and so do "" and "\0". */
    CHECK(cx_levelmap_hash(seed, (const uint8_t *)"a\0", 1) !=
          cx_levelmap_hash(seed, (const uint8_t *)"a\0", 2));
    CHECK(cx_levelmap_hash(seed, (const uint8_t *)"\0", 0) !=
          cx_levelmap_hash(seed, (const uint8_t *)"\0", 1));

    /* The seed changes where keys land: keys sharing a bucket of 1024 under one seed are
     * spread under another, so colliding levels cannot be precomputed. */
    uint64_t other = seed ^ 0x9e3779b97f4a7c15ULL;
    char k[32];
    int same_bucket = 0, still_same = 0;
    uint32_t b0 = hash_of("t0") & 1023;
    for (int i = 0; i < 200000; i++) {
        snprintf(k, sizeof k, "t%d", i);
        if ((hash_of(k) & 1023) != b0)
            continue;
        same_bucket++;
        uint32_t h = cx_levelmap_hash(other, (const uint8_t *)k, strlen(k));
        still_same += (h & 1023) == (cx_levelmap_hash(other, (const uint8_t *)"t0", 2) & 1023);
    }
    CHECK(same_bucket >= 100);
    CHECK(still_same * 20 < same_bucket);

    /* Each tree gets its own seed. */
    int a, b;
    CHECK(cx_levelmap_seed(&a) != cx_levelmap_seed(&b));
}

static void test_levels(void)
{
    cx_str_t s = cx_str_from_cstr("a//bc/");
    CHECK_INT_EQ(cx_levelmap_level_end(s, 0), 1);
    CHECK_INT_EQ(cx_levelmap_level_end(s, 2), 2); /* empty level */
    CHECK_INT_EQ(cx_levelmap_level_end(s, 3), 5);
    CHECK_INT_EQ(cx_levelmap_level_end(s, 6), 6); /* the empty last level */
    CHECK_INT_EQ(cx_levelmap_level_end(s, 7), 6);
    /* Backwards from where the next level starts (len + 1 after the last). */
    CHECK_INT_EQ(cx_levelmap_level_start_before(s, 7), 6);
    CHECK_INT_EQ(cx_levelmap_level_start_before(s, 6), 3);
    CHECK_INT_EQ(cx_levelmap_level_start_before(s, 3), 2);
    CHECK_INT_EQ(cx_levelmap_level_start_before(s, 2), 0);
    cx_str_t one = cx_str_from_cstr("abc");
    CHECK_INT_EQ(cx_levelmap_level_end(one, 0), 3);
    CHECK_INT_EQ(cx_levelmap_level_start_before(one, 4), 0);
}

CX_TEST_MAIN(
    CX_TEST(empty),
    CX_TEST(one_in_place),
    CX_TEST(grow_and_shrink),
    CX_TEST(collisions_same_hash),
    CX_TEST(collisions_wraparound),
    CX_TEST(iteration),
    CX_TEST(drain),
    CX_TEST(out_of_memory),
    CX_TEST(hash),
    CX_TEST(levels),
)
