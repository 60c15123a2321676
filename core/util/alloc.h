/* alloc.h: the accounted allocator.
 *
 * Every heap allocation in culex goes through these wrappers so that the broker knows how
 * much memory it holds (the $SYS heap figures) and can enforce mosquitto's `memory_limit`:
 * when an allocation would take the total past the limit it fails with NULL, and the caller
 * drops that packet or connection. The counters are process-wide atomics: this is the one
 * deliberate piece of global state, as in Redis's zmalloc. */
#ifndef CX_ALLOC_H
#define CX_ALLOC_H

#include <stddef.h>

void *cx_malloc(size_t n);
void *cx_calloc(size_t count, size_t size);
void *cx_realloc(void *p, size_t n);
void cx_free(void *p);
char *cx_strndup(const char *s, size_t n);
char *cx_strdup(const char *s);

#define cx_free_null(p)                                                                 \
    do {                                                                                \
        cx_free(p);                                                                     \
        (p) = NULL;                                                                     \
    } while (0)

/* Bytes currently allocated, and the high-water mark. */
size_t cx_alloc_current(void);
size_t cx_alloc_maximum(void);
/* 0 = unlimited. Takes effect for the next allocation. */
void cx_alloc_set_limit(size_t limit);

#endif
