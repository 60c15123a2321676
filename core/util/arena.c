/* arena.c: bump allocator in growing chunks. */
#include "arena.h"

#include <stdalign.h>
#include <stddef.h>
#include <string.h>

#include "alloc.h"

struct cx_arena_chunk {
    cx_arena_chunk_t *next;
    size_t size;
    size_t used;
    alignas(max_align_t) unsigned char mem[];
};

#define ARENA_MIN_CHUNK 1024

void cx_arena_init(cx_arena_t *a, size_t max)
{
    a->head = NULL;
    a->max = max;
    a->used = 0;
}

void *cx_arena_alloc(cx_arena_t *a, size_t n)
{
    size_t align = alignof(max_align_t);
    n = (n + align - 1) & ~(align - 1);
    if (n == 0)
        n = align;
    if (a->max && a->used + n > a->max)
        return NULL;
    cx_arena_chunk_t *c = a->head;
    if (!c || c->size - c->used < n) {
        size_t size = c ? c->size * 2 : ARENA_MIN_CHUNK;
        while (size < n)
            size *= 2;
        cx_arena_chunk_t *nc = cx_malloc(sizeof *nc + size);
        if (!nc)
            return NULL;
        nc->next = c;
        nc->size = size;
        nc->used = 0;
        a->head = c = nc;
    }
    void *p = c->mem + c->used;
    c->used += n;
    a->used += n;
    memset(p, 0, n);
    return p;
}

void cx_arena_reset(cx_arena_t *a)
{
    cx_arena_chunk_t *c = a->head;
    if (!c)
        return;
    /* Keep the oldest chunk (the tail of the list) and free the rest. */
    while (c->next) {
        cx_arena_chunk_t *next = c->next;
        cx_free(c);
        c = next;
    }
    c->used = 0;
    a->head = c;
    a->used = 0;
}

void cx_arena_free(cx_arena_t *a)
{
    cx_arena_chunk_t *c = a->head;
    while (c) {
        cx_arena_chunk_t *next = c->next;
        cx_free(c);
        c = next;
    }
    a->head = NULL;
    a->used = 0;
}
