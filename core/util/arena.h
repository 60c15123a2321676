/* arena.h: a scratch bump allocator for decode temporaries (the nginx pool idea).
 *
 * The codec puts variable-length arrays (subscription entries, user properties) here.
 * Everything is released at once by cx_arena_reset(); nothing allocated in an arena may
 * outlive the packet it was decoded from. */
#ifndef CX_ARENA_H
#define CX_ARENA_H

#include <stddef.h>

typedef struct cx_arena_chunk cx_arena_chunk_t;

typedef struct cx_arena {
    cx_arena_chunk_t *head; /* newest chunk first */
    size_t max;             /* cap on total bytes handed out; 0 = unlimited */
    size_t used;
} cx_arena_t;

void cx_arena_init(cx_arena_t *a, size_t max);
/* Returns zeroed, max_align_t-aligned memory, or NULL (out of memory or over the cap). */
void *cx_arena_alloc(cx_arena_t *a, size_t n);
/* Releases everything but the first chunk, which is kept for the next packet. */
void cx_arena_reset(cx_arena_t *a);
void cx_arena_free(cx_arena_t *a);

#endif
