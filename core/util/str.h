/* str.h: byte slices. A cx_str_t borrows bytes it does not own and is never assumed to be
 * NUL-terminated. */
#ifndef CX_STR_H
#define CX_STR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

typedef struct cx_str {
    const uint8_t *p;
    size_t len;
} cx_str_t;

#define CX_STR_NULL ((cx_str_t){NULL, 0})
#define CX_STR_LIT(s) ((cx_str_t){(const uint8_t *)(s), sizeof(s) - 1})

static inline cx_str_t cx_str_from_cstr(const char *s)
{
    return (cx_str_t){(const uint8_t *)s, s ? strlen(s) : 0};
}

static inline bool cx_str_eq(cx_str_t a, cx_str_t b)
{
    return a.len == b.len && (a.len == 0 || memcmp(a.p, b.p, a.len) == 0);
}

static inline bool cx_str_eq_cstr(cx_str_t a, const char *s)
{
    return cx_str_eq(a, cx_str_from_cstr(s));
}

static inline bool cx_str_has_prefix(cx_str_t a, const char *prefix)
{
    size_t n = strlen(prefix);
    return a.len >= n && memcmp(a.p, prefix, n) == 0;
}

/* A NUL-terminated copy of s, for APIs that take C strings: in buf when it fits, else on the
 * heap (cx_malloc). Returns NULL when out of memory; free with cx_str_cstr_free. */
char *cx_str_cstr(cx_str_t s, char *buf, size_t buflen);
void cx_str_cstr_free(char *copy, const char *buf);

/* FNV-1a: cheap, good enough for hash maps keyed by topics and client ids. */
static inline uint64_t cx_str_hash(cx_str_t s)
{
    uint64_t h = 1469598103934665603ULL;
    for (size_t i = 0; i < s.len; i++) {
        h ^= s.p[i];
        h *= 1099511628211ULL;
    }
    return h;
}

/* The value of one hexadecimal digit (either case), or -1. */
static inline int cx_hexval(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

#endif
