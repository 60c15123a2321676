/* alloc.c: malloc wrappers that count bytes with malloc_usable_size, so no header is
 * prepended and the figures match what the C library really holds.
 *
 * memory_limit holds with any number of threads: an allocation first reserves its bytes in
 * used_bytes with a compare-and-swap that fails if the total would pass the limit, and only
 * then calls malloc. Checking and adding in two steps (as this file once did) let workers
 * allocating at the same moment all pass the check.
 *
 * What is reserved must cover malloc_usable_size() of the block, which is what cx_free()
 * subtracts. glibc (malloc.c) gives a request of n bytes a chunk of n + 8 rounded up to 16,
 * at least 32, of which chunk - 8 is usable: usable_fit(n). That is exact for a block from
 * tcache or a bin of its size, the hot path, so malloc/calloc reserve it and are done in one
 * atomic operation. The block can be larger: carved from a bigger free chunk whose
 * remainder would be under 32 bytes (16 more), or mmapped (from M_MMAP_THRESHOLD, 128 KiB
 * by default: rounded up to a page); ASan's allocator gives exactly n. So after the malloc
 * the reservation is corrected to the real size: surplus given back, a shortfall reserved
 * with the same check, and if that fails the block is freed and the call fails. The total
 * never passes the limit, whatever the allocator does.
 *
 * realloc cannot undo a realloc that moved the block, so it reserves the worst case of its
 * growth up front: usable_max(n) - old, with the 16 bytes of a split and, from
 * MMAP_SLACK_FROM, a page for mmap rounding (mremap of an mmapped block rounds the same
 * way). The correction after it then only gives back. Only an allocator that rounds up more
 * than glibc with 4 KiB pages (huge pages for mmapped chunks, glibc.malloc.mmap_threshold
 * below MMAP_SLACK_FROM) could need more; that excess is accounted (the figures stay true)
 * even if it passes the limit, since the block exists. */
#include "alloc.h"

#include <malloc.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static _Atomic size_t used_bytes;
static _Atomic size_t peak_bytes;
static _Atomic size_t limit_bytes;

#define MMAP_SLACK_FROM (64 * 1024)
#define PAGE_SLACK 4096

/* glibc's usable size for a request of n bytes served by a chunk of exactly its size. */
static inline size_t usable_fit(size_t n)
{
    size_t chunk = (n + 8 + 15) & ~(size_t)15;
    return (chunk < 32 ? 32 : chunk) - 8;
}

/* The most glibc gives for n bytes (see the top of the file). */
static inline size_t usable_max(size_t n)
{
    return usable_fit(n) + 16 + (n >= MMAP_SLACK_FROM ? PAGE_SLACK : 0);
}

static inline void note_peak(size_t now)
{
    size_t peak = atomic_load_explicit(&peak_bytes, memory_order_relaxed);
    while (now > peak &&
           !atomic_compare_exchange_weak_explicit(&peak_bytes, &peak, now, memory_order_relaxed,
                                                  memory_order_relaxed)) {
    }
}

/* Adds n to the total unless that would pass the limit. */
static inline bool reserve(size_t n)
{
    size_t limit = atomic_load_explicit(&limit_bytes, memory_order_relaxed);
    size_t now;
    if (!limit) {
        now = atomic_fetch_add_explicit(&used_bytes, n, memory_order_relaxed) + n;
    } else {
        size_t cur = atomic_load_explicit(&used_bytes, memory_order_relaxed);
        do {
            if (n > limit || cur > limit - n)
                return false;
            now = cur + n;
        } while (!atomic_compare_exchange_weak_explicit(&used_bytes, &cur, now,
                                                        memory_order_relaxed,
                                                        memory_order_relaxed));
    }
    note_peak(now);
    return true;
}

static inline void release(size_t n)
{
    atomic_fetch_sub_explicit(&used_bytes, n, memory_order_relaxed);
}

/* A block of `reserved` bytes was reserved for p: makes it malloc_usable_size(p). False (and
 * the reservation given back) if the block is larger and the rest would pass the limit. */
static inline bool settle(void *p, size_t reserved)
{
    size_t real = malloc_usable_size(p);
    if (real == reserved)
        return true;
    if (real < reserved) {
        release(reserved - real);
        return true;
    }
    if (reserve(real - reserved))
        return true;
    release(reserved);
    return false;
}

/* The end of cx_malloc and cx_calloc: `reserved` bytes are held for p, fresh from the C
 * library (or NULL). */
static void *take_new(void *p, size_t reserved)
{
    if (!p) {
        release(reserved);
        return NULL;
    }
    if (!settle(p, reserved)) {
        free(p);
        return NULL;
    }
    return p;
}

void *cx_malloc(size_t n)
{
    if (n > (size_t)PTRDIFF_MAX)
        return NULL;
    size_t r = usable_fit(n);
    if (!reserve(r))
        return NULL;
    return take_new(malloc(n ? n : 1), r);
}

void *cx_calloc(size_t count, size_t size)
{
    if (size && count > (size_t)PTRDIFF_MAX / size)
        return NULL;
    size_t r = usable_fit(count * size);
    if (!reserve(r))
        return NULL;
    return take_new(calloc(count ? count : 1, size ? size : 1), r);
}

void *cx_realloc(void *p, size_t n)
{
    if (!p)
        return cx_malloc(n);
    if (n > (size_t)PTRDIFF_MAX)
        return NULL;
    size_t old = malloc_usable_size(p);
    size_t max = usable_max(n);
    size_t growth = max > old ? max - old : 0;
    if (growth && !reserve(growth))
        return NULL;
    void *q = realloc(p, n ? n : 1);
    if (!q) {
        release(growth);
        return NULL;
    }
    /* The block went from old to real bytes; growth is reserved already. */
    size_t real = malloc_usable_size(q);
    size_t held = old + growth;
    if (real < held) {
        release(held - real);
    } else if (real > held) {
        size_t more = real - held;
        if (!reserve(more)) { /* beyond glibc's rounding: see the top of the file */
            atomic_fetch_add_explicit(&used_bytes, more, memory_order_relaxed);
            note_peak(atomic_load_explicit(&used_bytes, memory_order_relaxed));
        }
    }
    return q;
}

void cx_free(void *p)
{
    if (!p)
        return;
    release(malloc_usable_size(p));
    free(p);
}

char *cx_strndup(const char *s, size_t n)
{
    char *d = cx_malloc(n + 1);
    if (d) {
        memcpy(d, s, n);
        d[n] = '\0';
    }
    return d;
}

char *cx_strdup(const char *s)
{
    return cx_strndup(s, strlen(s));
}

size_t cx_alloc_current(void)
{
    return atomic_load_explicit(&used_bytes, memory_order_relaxed);
}

size_t cx_alloc_maximum(void)
{
    return atomic_load_explicit(&peak_bytes, memory_order_relaxed);
}

void cx_alloc_set_limit(size_t limit)
{
    atomic_store_explicit(&limit_bytes, limit, memory_order_relaxed);
}
