/* levelmap.c: the writing side of a trie node's child table (levelmap.h has the layout and
 * the inline read side): growth and shrinking, insertion, removal by backward shift, the
 * draining used to free a trie without a stack, and the per-tree hash seed. */
#include "levelmap.h"

#include <stdbool.h>
#include <sys/random.h>
#include <time.h>

#include "util/alloc.h"
#include "util/err.h"

uint64_t cx_levelmap_seed(const void *salt)
{
    uint64_t s = 0;
    if (getrandom(&s, sizeof s, GRND_NONBLOCK) != (ssize_t)sizeof s) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        s = ((uint64_t)ts.tv_nsec << 32) ^ (uint64_t)ts.tv_sec ^ (uint64_t)(uintptr_t)salt;
    }
    return s;
}

/* How many entries 2^bits slots may hold: tiny tables may fill up (a probe sequence is at
 * most four long anyway), larger ones stay at 3/4 so that misses end quickly. */
static size_t room(unsigned bits)
{
    size_t cap = (size_t)1 << bits;
    return bits <= 2 ? cap : cap / 4 * 3;
}

static void place(cx_levelmap_entry_t **s, size_t mask, cx_levelmap_entry_t *e)
{
    size_t i = e->hash & mask;
    while (s[i])
        i = (i + 1) & mask;
    s[i] = e;
}

static int resize(cx_levelmap_t *m, unsigned bits)
{
    cx_levelmap_entry_t **old = cx_levelmap_slots(m), *one = NULL, **tab = &one;
    size_t oldcap = cx_levelmap_mask(m) + 1;
    if (bits) {
        tab = cx_calloc((size_t)1 << bits, sizeof *tab);
        if (!tab)
            return CX_ENOMEM;
    }
    for (size_t i = 0; i < oldcap; i++)
        if (old[i])
            place(tab, ((size_t)1 << bits) - 1, old[i]);
    if (m->bits)
        cx_free(old);
    m->bits = (uint8_t)bits;
    if (bits)
        m->slots.tab = tab;
    else
        m->slots.one = one;
    return CX_OK;
}

int cx_levelmap_insert(cx_levelmap_t *m, cx_levelmap_entry_t *e)
{
    if (m->n + 1 > room(m->bits)) {
        unsigned bits = m->bits + 1u;
        while (m->n + 1 > room(bits))
            bits++;
        int rc = resize(m, bits);
        if (rc != CX_OK)
            return rc;
    }
    place(cx_levelmap_slots(m), cx_levelmap_mask(m), e);
    m->n++;
    return CX_OK;
}

void cx_levelmap_remove(cx_levelmap_t *m, cx_levelmap_entry_t *e)
{
    cx_levelmap_entry_t **s = cx_levelmap_slots(m);
    size_t mask = cx_levelmap_mask(m), i = e->hash & mask;
    while (s[i] != e)
        i = (i + 1) & mask;
    s[i] = NULL;
    for (size_t j = (i + 1) & mask; s[j]; j = (j + 1) & mask) {
        size_t home = s[j]->hash & mask;
        /* s[j] must stay if its home lies cyclically in (i, j]; else it fills the hole. */
        bool stays = i <= j ? (home > i && home <= j) : (home > i || home <= j);
        if (!stays) {
            s[i] = s[j];
            s[j] = NULL;
            i = j;
        }
    }
    m->n--;
    if (m->bits && m->n <= 1) {
        (void)resize(m, 0); /* cannot fail: no allocation */
    } else if (m->bits >= 3 && (size_t)m->n * 8 <= mask + 1) {
        unsigned bits = 1;
        while (room(bits) < (size_t)m->n * 2)
            bits++;
        (void)resize(m, bits); /* a failed shrink keeps the larger table */
    }
}

void cx_levelmap_drain_begin(cx_levelmap_t *m)
{
    m->n = 0;
}

cx_levelmap_entry_t *cx_levelmap_drain(cx_levelmap_t *m)
{
    cx_levelmap_entry_t *e = NULL, **s = cx_levelmap_slots(m);
    while (!e && m->n <= cx_levelmap_mask(m)) {
        e = s[m->n];
        s[m->n++] = NULL;
    }
    return e;
}

void cx_levelmap_fini(cx_levelmap_t *m)
{
    if (m->bits)
        cx_free(m->slots.tab);
    m->slots.one = NULL;
    m->n = 0;
    m->bits = 0;
}
