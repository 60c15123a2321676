/* alloc.c: malloc wrappers that count bytes with malloc_usable_size, so no header is
 * prepended and the figures match what the C library really holds. */
#include "alloc.h"

#include <malloc.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

static _Atomic size_t used_bytes;
static _Atomic size_t peak_bytes;
static _Atomic size_t limit_bytes;

static void account_add(size_t n)
{
    size_t now = atomic_fetch_add_explicit(&used_bytes, n, memory_order_relaxed) + n;
    size_t peak = atomic_load_explicit(&peak_bytes, memory_order_relaxed);
    while (now > peak &&
           !atomic_compare_exchange_weak_explicit(&peak_bytes, &peak, now, memory_order_relaxed,
                                                  memory_order_relaxed)) {
    }
}

static void account_sub(size_t n)
{
    atomic_fetch_sub_explicit(&used_bytes, n, memory_order_relaxed);
}

static int over_limit(size_t extra)
{
    size_t limit = atomic_load_explicit(&limit_bytes, memory_order_relaxed);
    return limit && atomic_load_explicit(&used_bytes, memory_order_relaxed) + extra > limit;
}

void *cx_malloc(size_t n)
{
    if (over_limit(n))
        return NULL;
    void *p = malloc(n ? n : 1);
    if (p)
        account_add(malloc_usable_size(p));
    return p;
}

void *cx_calloc(size_t count, size_t size)
{
    if (size && count > (size_t)-1 / size)
        return NULL;
    if (over_limit(count * size))
        return NULL;
    void *p = calloc(count ? count : 1, size ? size : 1);
    if (p)
        account_add(malloc_usable_size(p));
    return p;
}

void *cx_realloc(void *p, size_t n)
{
    if (!p)
        return cx_malloc(n);
    size_t old = malloc_usable_size(p);
    if (n > old && over_limit(n - old))
        return NULL;
    void *q = realloc(p, n ? n : 1);
    if (!q)
        return NULL;
    account_sub(old);
    account_add(malloc_usable_size(q));
    return q;
}

void cx_free(void *p)
{
    if (!p)
        return;
    account_sub(malloc_usable_size(p));
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
