/* cache.c — the TTL + LRU result cache of culex/sdk/cache.h: a fixed bucket array (sized
 * for max_entries at creation, never rehashed) with a keyed hash, a doubly linked
 * recency list, and one mutex around both. */
#include <culex/sdk/cache.h>

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "sdk_internal.h"

/* Recency list links, kept apart from the entry so that the cache's sentinel is not a struct
 * with a flexible array member (a GNU extension). `link` is the first member of an entry. */
typedef struct lru_link {
    struct lru_link *prev, *next;
} lru_link;

typedef struct entry {
    lru_link link;             /* recency list, most recent first; must stay first */
    struct entry *hnext;       /* bucket chain */
    uint64_t hash;
    uint64_t expires_ns;
    int value;
    size_t keylen;
    unsigned char key[];
} entry;

struct culex_cache {
    pthread_mutex_t lock;
    uint64_t key[2];
    entry **buckets;
    size_t mask;
    lru_link lru; /* sentinel: lru.next = most recent, lru.prev = least recent */
    size_t count, max;
    uint64_t pos_ttl_ns, neg_ttl_ns;
    uint64_t hits, misses;
};

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static uint64_t ms_to_ns(uint64_t ms)
{
    return ms > UINT64_MAX / 1000000u ? UINT64_MAX : ms * 1000000u;
}

culex_cache *culex_cache_new(size_t max_entries, uint64_t positive_ttl_ms,
                             uint64_t negative_ttl_ms)
{
    if (max_entries == 0 || max_entries > ((size_t)1 << 40))
        return NULL;
    culex_cache *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    size_t nb = 8;
    while (nb < max_entries)
        nb <<= 1;
    c->buckets = calloc(nb, sizeof *c->buckets);
    if (!c->buckets || pthread_mutex_init(&c->lock, NULL) != 0) {
        free(c->buckets);
        free(c);
        return NULL;
    }
    c->mask = nb - 1;
    c->max = max_entries;
    c->lru.next = c->lru.prev = &c->lru;
    c->pos_ttl_ns = ms_to_ns(positive_ttl_ms);
    c->neg_ttl_ns = ms_to_ns(negative_ttl_ms);
    culex__hash_key(c->key);
    return c;
}

static entry *link_entry(lru_link *l)
{
    return (entry *)l; /* link is the first member */
}

static void lru_unlink(entry *e)
{
    e->link.prev->next = e->link.next;
    e->link.next->prev = e->link.prev;
}

static void lru_push_front(culex_cache *c, entry *e)
{
    e->link.prev = &c->lru;
    e->link.next = c->lru.next;
    c->lru.next->prev = &e->link;
    c->lru.next = &e->link;
}

/* Finds key; *slot receives the link that points at the entry (for removal). */
static entry *lookup(culex_cache *c, uint64_t h, const void *key, size_t keylen,
                     entry ***slot)
{
    entry **pp = &c->buckets[h & c->mask];
    for (entry *e = *pp; e; pp = &e->hnext, e = e->hnext)
        if (e->hash == h && e->keylen == keylen &&
            (keylen == 0 || memcmp(e->key, key, keylen) == 0)) {
            *slot = pp;
            return e;
        }
    return NULL;
}

static void remove_entry(culex_cache *c, entry **slot, entry *e)
{
    *slot = e->hnext;
    lru_unlink(e);
    c->count--;
    free(e);
}

/* Drops the least recently used entry. */
static void evict_one(culex_cache *c)
{
    if (c->lru.prev == &c->lru)
        return;
    entry *victim = link_entry(c->lru.prev);
    entry **slot;
    if (lookup(c, victim->hash, victim->key, victim->keylen, &slot) == victim)
        remove_entry(c, slot, victim);
}

int culex_cache_get(culex_cache *c, const void *key, size_t keylen, int *value)
{
    if (!c || (!key && keylen))
        return 0;
    uint64_t h = culex__siphash(c->key, key, keylen);
    int hit = 0;
    pthread_mutex_lock(&c->lock);
    entry **slot;
    entry *e = lookup(c, h, key, keylen, &slot);
    if (e && e->expires_ns <= now_ns()) {
        remove_entry(c, slot, e);
        e = NULL;
    }
    if (e) {
        lru_unlink(e);
        lru_push_front(c, e);
        if (value)
            *value = e->value;
        hit = 1;
        c->hits++;
    } else {
        c->misses++;
    }
    pthread_mutex_unlock(&c->lock);
    return hit;
}

int culex_cache_put(culex_cache *c, const void *key, size_t keylen, int value, bool positive)
{
    if (!c || (!key && keylen))
        return -EINVAL;
    uint64_t ttl = positive ? c->pos_ttl_ns : c->neg_ttl_ns;
    if (ttl == 0)
        return 1;
    uint64_t h = culex__siphash(c->key, key, keylen);
    uint64_t now = now_ns();
    uint64_t expires = ttl > UINT64_MAX - now ? UINT64_MAX : now + ttl;

    pthread_mutex_lock(&c->lock);
    entry **slot;
    entry *e = lookup(c, h, key, keylen, &slot);
    if (e) {
        e->value = value;
        e->expires_ns = expires;
        lru_unlink(e);
        lru_push_front(c, e);
        pthread_mutex_unlock(&c->lock);
        return 0;
    }
    pthread_mutex_unlock(&c->lock);

    /* Allocate outside the lock; another thread may insert the same key meanwhile. */
    entry *n = malloc(sizeof *n + keylen);
    if (!n)
        return -ENOMEM;
    if (keylen)
        memcpy(n->key, key, keylen);
    n->keylen = keylen;
    n->hash = h;
    n->value = value;
    n->expires_ns = expires;

    pthread_mutex_lock(&c->lock);
    e = lookup(c, h, key, keylen, &slot);
    if (e) {
        e->value = value;
        e->expires_ns = expires;
        lru_unlink(e);
        lru_push_front(c, e);
        pthread_mutex_unlock(&c->lock);
        free(n);
        return 0;
    }
    while (c->count >= c->max)
        evict_one(c);
    n->hnext = c->buckets[h & c->mask];
    c->buckets[h & c->mask] = n;
    lru_push_front(c, n);
    c->count++;
    pthread_mutex_unlock(&c->lock);
    return 0;
}

int culex_cache_invalidate(culex_cache *c, const void *key, size_t keylen)
{
    if (!c || (!key && keylen))
        return 0;
    uint64_t h = culex__siphash(c->key, key, keylen);
    pthread_mutex_lock(&c->lock);
    entry **slot;
    entry *e = lookup(c, h, key, keylen, &slot);
    if (e)
        remove_entry(c, slot, e);
    pthread_mutex_unlock(&c->lock);
    return e != NULL;
}

static void clear_locked(culex_cache *c)
{
    lru_link *l = c->lru.next;
    while (l != &c->lru) {
        lru_link *next = l->next;
        free(link_entry(l));
        l = next;
    }
    memset(c->buckets, 0, (c->mask + 1) * sizeof *c->buckets);
    c->lru.next = c->lru.prev = &c->lru;
    c->count = 0;
}

void culex_cache_clear(culex_cache *c)
{
    if (!c)
        return;
    pthread_mutex_lock(&c->lock);
    clear_locked(c);
    pthread_mutex_unlock(&c->lock);
}

size_t culex_cache_count(culex_cache *c)
{
    if (!c)
        return 0;
    pthread_mutex_lock(&c->lock);
    size_t n = c->count;
    pthread_mutex_unlock(&c->lock);
    return n;
}

void culex_cache_stats(culex_cache *c, uint64_t *hits, uint64_t *misses)
{
    if (!c)
        return;
    pthread_mutex_lock(&c->lock);
    if (hits)
        *hits = c->hits;
    if (misses)
        *misses = c->misses;
    pthread_mutex_unlock(&c->lock);
}

void culex_cache_free(culex_cache *c)
{
    if (!c)
        return;
    clear_locked(c);
    pthread_mutex_destroy(&c->lock);
    free(c->buckets);
    free(c);
}
