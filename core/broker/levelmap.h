/* levelmap.h: a trie node's children, keyed by topic level.
 *
 * Both broker tries (subtree.c: subscriptions, retain.c: retained messages) have one node per
 * topic level and reach a node's literal children through this table: one slot in place while
 * there is at most one child (the chain case, which allocates nothing), a power-of-two array
 * beyond it, linear probing, and deletion by backward shift, so there are no tombstones and
 * misses stay short however many removals there have been. The module also owns the seeded
 * hash the table is keyed by and the two helpers both matchers slice topics into levels with.
 *
 * The table is intrusive. A child node embeds a cx_levelmap_entry_t (the level's hash and
 * length) as the member just before its flexible `char key[]` (the level's bytes), and the
 * table holds pointers to those entries; the tree gets its node back with offsetof. Put
 * CX_LEVELMAP_CHECK_LAYOUT(node type, entry member, key member) beside the node type so the
 * compiler checks that placement. The table never owns, allocates or frees entries.
 *
 * The hash is seeded per tree: each tree draws its own seed once (cx_levelmap_seed) and gives
 * it to every cx_levelmap_hash, so clients cannot precompute levels that pile into one table.
 * The table itself never hashes: an entry carries its hash (so tables grow without rehashing
 * keys) and lookups are given the hash of the level sought.
 *
 * Lookup, iteration and hashing are inline: they are the match path, and a match costs what
 * it did when each trie had its own static copy of this code. Insertion, removal and
 * destruction are in levelmap.c. No locking here: callers hold their tree's lock (read for
 * find and next, write for the rest). */
#ifndef CX_LEVELMAP_H
#define CX_LEVELMAP_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "util/str.h"

/* One child's key. Its bytes follow the struct directly: see CX_LEVELMAP_CHECK_LAYOUT. */
typedef struct cx_levelmap_entry {
    uint32_t hash;   /* cx_levelmap_hash of the key under the tree's seed */
    uint16_t keylen; /* a level is at most 65535 bytes since a whole topic is */
} cx_levelmap_entry_t;

/* A node's children. All bytes zero is the empty map, so a memset node needs no init. */
typedef struct cx_levelmap {
    union {
        cx_levelmap_entry_t *one;  /* bits == 0: a single slot in place, the chain case */
        cx_levelmap_entry_t **tab; /* bits > 0: 2^bits slots */
    } slots;
    uint32_t n; /* entries (a slot cursor while the map is drained) */
    uint8_t bits;
} cx_levelmap_t;

/* Checks at compile time that `key` (the node's flexible array of level bytes) directly
 * follows `entry` (its cx_levelmap_entry_t) in `type`. Use at file scope. */
#define CX_LEVELMAP_CHECK_LAYOUT(type, entry, key)                                                 \
    _Static_assert(offsetof(type, key) == offsetof(type, entry) + sizeof(cx_levelmap_entry_t),     \
                   #type "." #key " must directly follow " #type "." #entry)

/* ---- levels ---------------------------------------------------------------------------- */

/* End of the level starting at off: the index of the next '/' or s.len. */
static inline size_t cx_levelmap_level_end(cx_str_t s, size_t off)
{
    if (off >= s.len)
        return s.len;
    const uint8_t *q = memchr(s.p + off, '/', s.len - off);
    return q ? (size_t)(q - s.p) : s.len;
}

/* `off` is where the level after some level L starts (s.len + 1 if L is the last one);
 * returns where L starts. Matchers backtrack with this instead of keeping offsets on a
 * stack. */
static inline size_t cx_levelmap_level_start_before(cx_str_t s, size_t off)
{
    size_t i = off - 1;
    while (i > 0 && s.p[i - 1] != '/')
        i--;
    return i;
}

/* A seeded word-at-a-time hash of one level. Not cryptographic, but the seed goes through
 * every multiplication, so a client cannot precompute levels that collide the way it could
 * with a fixed FNV. */
static inline uint32_t cx_levelmap_hash(uint64_t seed, const uint8_t *p, size_t len)
{
    const uint64_t k = 0x9e3779b97f4a7c15ULL;
    uint64_t h = seed ^ ((uint64_t)len * k);
    while (len >= 8) {
        uint64_t w;
        memcpy(&w, p, 8);
        h = (h ^ w) * k;
        h ^= h >> 29;
        p += 8;
        len -= 8;
    }
    if (len) {
        /* The last 1-7 bytes in at most two loads: a memcpy of a variable length into a
         * zeroed word becomes a byte loop whose stores the next 8-byte load must wait for
         * (a failed store forward), which once cost a fifth of all matching time. Both
         * forms cover every byte, so with the length mixed in above no two levels of
         * one length share a word. */
        uint64_t w;
        if (len >= 4) {
            uint32_t a, b;
            memcpy(&a, p, 4);
            memcpy(&b, p + len - 4, 4);
            w = (uint64_t)a << 32 | b;
        } else {
            w = (uint64_t)p[0] << 16 | (uint64_t)p[len >> 1] << 8 | p[len - 1];
        }
        h = (h ^ w) * k;
    }
    h ^= h >> 32;
    h *= 0xd6e8feb86659fd93ULL;
    h ^= h >> 32;
    return (uint32_t)h;
}

/* A fresh seed for one tree, from getrandom, or from the clock and `salt` (the tree's
 * address, say) when that fails. */
uint64_t cx_levelmap_seed(const void *salt);

/* ---- the table ------------------------------------------------------------------------- */

/* The level bytes of e (keylen of them). */
static inline const uint8_t *cx_levelmap_key(const cx_levelmap_entry_t *e)
{
    return (const uint8_t *)(e + 1);
}

/* Sets e's hash and length and copies the level's bytes into the node's key[] behind it.
 * The node must have room for len key bytes. */
static inline void cx_levelmap_entry_init(cx_levelmap_entry_t *e, const uint8_t *key, size_t len,
                                          uint32_t h)
{
    e->hash = h;
    e->keylen = (uint16_t)len;
    if (len)
        memcpy((uint8_t *)(e + 1), key, len);
}

static inline uint32_t cx_levelmap_count(const cx_levelmap_t *m)
{
    return m->n;
}

/* The slot array and its index mask; for the functions here and in levelmap.c. */
static inline cx_levelmap_entry_t **cx_levelmap_slots(const cx_levelmap_t *m)
{
    return m->bits ? m->slots.tab : (cx_levelmap_entry_t **)&m->slots.one;
}

static inline size_t cx_levelmap_mask(const cx_levelmap_t *m)
{
    return ((size_t)1 << m->bits) - 1;
}

/* The entry whose key is key[0..len), h being cx_levelmap_hash of it, or NULL. */
static inline cx_levelmap_entry_t *cx_levelmap_find(const cx_levelmap_t *m, const uint8_t *key,
                                                    size_t len, uint32_t h)
{
    cx_levelmap_entry_t **s = cx_levelmap_slots(m);
    size_t mask = cx_levelmap_mask(m);
    for (size_t i = h & mask, probes = 0; probes <= mask; i = (i + 1) & mask, probes++) {
        cx_levelmap_entry_t *e = s[i];
        if (!e)
            return NULL;
        if (e->hash == h && e->keylen == len &&
            (len == 0 || memcmp(cx_levelmap_key(e), key, len) == 0))
            return e;
    }
    return NULL;
}

/* The entry after e in slot order, e == NULL giving the first; NULL after the last. e must
 * be in m. Read-only, so walks may run concurrently under a read lock; the order changes
 * when the map is written. */
static inline cx_levelmap_entry_t *cx_levelmap_next(const cx_levelmap_t *m,
                                                    const cx_levelmap_entry_t *e)
{
    cx_levelmap_entry_t **s = cx_levelmap_slots(m);
    size_t mask = cx_levelmap_mask(m), i = 0;
    if (e) {
        i = e->hash & mask;
        while (s[i] != e)
            i = (i + 1) & mask;
        i++;
    }
    for (; i <= mask; i++)
        if (s[i])
            return s[i];
    return NULL;
}

/* Adds e, whose hash, keylen and key bytes are set and whose key no entry of m has yet,
 * growing the table when needed. Returns CX_OK or CX_ENOMEM (m unchanged). */
int cx_levelmap_insert(cx_levelmap_t *m, cx_levelmap_entry_t *e);

/* Removes e, which must be in m, and shrinks the table once it is sparse. Never fails: a
 * shrink that cannot allocate keeps the larger table, and going back to the in-place slot
 * allocates nothing. */
void cx_levelmap_remove(cx_levelmap_t *m, cx_levelmap_entry_t *e);

/* Stackless destruction of a trie: cx_levelmap_drain_begin turns the count into a slot
 * cursor, then each cx_levelmap_drain takes one entry out (NULL once none is left), so a
 * tree can descend into each child as it is detached and resume the parent's scan where it
 * stopped. After drain_begin only drain and fini may be called. */
void cx_levelmap_drain_begin(cx_levelmap_t *m);
cx_levelmap_entry_t *cx_levelmap_drain(cx_levelmap_t *m);

/* Frees the slot array (not the entries) and leaves m empty. */
void cx_levelmap_fini(cx_levelmap_t *m);

#endif
