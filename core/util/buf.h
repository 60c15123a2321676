/* buf.h: a capped, growable byte buffer (curl's dynbuf).
 *
 * The cap is fixed at init (max packet size, max queued bytes, ...); growth past it fails
 * with CX_ETOOBIG instead of eating memory. Data lives in [off, len): consuming from the
 * front only moves `off`, and the bytes are compacted when the buffer next grows.
 *
 * Offsets and sizes are 32-bit, so a buffer holds less than 4 GiB (CX_BUF_LIMIT; more is
 * CX_ETOOBIG, as past the cap) and costs 24 bytes: every connection has two. */
#ifndef CX_BUF_H
#define CX_BUF_H

#include <stddef.h>
#include <stdint.h>

#include "str.h"

typedef struct cx_buf {
    uint8_t *data;
    uint32_t off;  /* first unconsumed byte */
    uint32_t len;  /* end of valid bytes */
    uint32_t cap;  /* allocated size */
    uint32_t max;  /* hard cap on allocated size; 0 = CX_BUF_LIMIT */
} cx_buf_t;

#define CX_BUF_LIMIT UINT32_MAX

/* A max of 0 or above CX_BUF_LIMIT means CX_BUF_LIMIT. */
void cx_buf_init(cx_buf_t *b, size_t max);
/* Frees the storage; the buffer is empty and reusable afterwards. */
void cx_buf_free(cx_buf_t *b);

static inline size_t cx_buf_used(const cx_buf_t *b) { return b->len - b->off; }
static inline uint8_t *cx_buf_head(const cx_buf_t *b) { return b->data + b->off; }
static inline cx_str_t cx_buf_str(const cx_buf_t *b)
{
    return (cx_str_t){b->data + b->off, b->len - b->off};
}

/* Makes room for at least n more bytes at the tail; returns CX_OK, CX_ENOMEM or CX_ETOOBIG. */
int cx_buf_reserve(cx_buf_t *b, size_t n);
/* Pointer to the free tail (valid until the next reserve) and its size. */
static inline uint8_t *cx_buf_tail(const cx_buf_t *b) { return b->data + b->len; }
static inline size_t cx_buf_room(const cx_buf_t *b) { return b->cap - b->len; }

int cx_buf_append(cx_buf_t *b, const void *p, size_t n);
int cx_buf_append_byte(cx_buf_t *b, uint8_t c);
/* Drops n bytes from the front. Frees the storage when the buffer becomes empty and
 * `release` is set, so idle connections hold no buffer memory. */
void cx_buf_consume(cx_buf_t *b, size_t n, int release);
void cx_buf_reset(cx_buf_t *b);

#endif
