/* buf.c: capped growable buffer. */
#include "buf.h"

#include <string.h>

#include "alloc.h"
#include "err.h"

void cx_buf_init(cx_buf_t *b, size_t max)
{
    b->data = NULL;
    b->off = b->len = b->cap = 0;
    b->max = max && max < CX_BUF_LIMIT ? (uint32_t)max : 0;
}

void cx_buf_free(cx_buf_t *b)
{
    cx_free(b->data);
    b->data = NULL;
    b->off = b->len = b->cap = 0;
}

int cx_buf_reserve(cx_buf_t *b, size_t n)
{
    if (b->cap - b->len >= n)
        return CX_OK;
    size_t used = b->len - b->off;
    size_t max = b->max ? b->max : CX_BUF_LIMIT;
    if (n > max - used)
        return CX_ETOOBIG;
    /* Compact first: reading consumes from the front, so space is often there already. */
    if (b->off && b->cap - used >= n) {
        memmove(b->data, b->data + b->off, used);
        b->off = 0;
        b->len = (uint32_t)used;
        return CX_OK;
    }
    /* A first allocation of 128 bytes (a 144-byte malloc chunk) holds a CONNACK, a ping
     * response or a small PUBLISH, and is no larger than the objects a connection keeps:
     * the chunks of output buffers freed after a flush are then reused whole by the next
     * buffers, instead of being split for a new connection's objects and leaving holes
     * nothing fits in (256 bytes here left 60 B of holes per idle connection). */
    size_t want = b->cap ? b->cap : 128;
    while (want < used + n)
        want *= 2;
    if (want > max)
        want = max;
    if (b->off) {
        memmove(b->data, b->data + b->off, used);
        b->off = 0;
        b->len = (uint32_t)used;
    }
    uint8_t *p = cx_realloc(b->data, want);
    if (!p)
        return CX_ENOMEM;
    b->data = p;
    b->cap = (uint32_t)want;
    return CX_OK;
}

int cx_buf_append(cx_buf_t *b, const void *p, size_t n)
{
    int rc = cx_buf_reserve(b, n);
    if (rc)
        return rc;
    if (n)
        memcpy(b->data + b->len, p, n);
    b->len += (uint32_t)n;
    return CX_OK;
}

int cx_buf_append_byte(cx_buf_t *b, uint8_t c)
{
    return cx_buf_append(b, &c, 1);
}

void cx_buf_consume(cx_buf_t *b, size_t n, int release)
{
    b->off += (uint32_t)n;
    if (b->off >= b->len) {
        b->off = b->len = 0;
        if (release)
            cx_buf_free(b);
    }
}

void cx_buf_reset(cx_buf_t *b)
{
    b->off = b->len = 0;
}
