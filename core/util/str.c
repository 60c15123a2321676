/* str.c: slice helpers that allocate. */
#include "str.h"

#include "alloc.h"

char *cx_str_cstr(cx_str_t s, char *buf, size_t buflen)
{
    char *c = s.len < buflen ? buf : cx_malloc(s.len + 1);
    if (!c)
        return NULL;
    if (s.len)
        memcpy(c, s.p, s.len);
    c[s.len] = '\0';
    return c;
}

void cx_str_cstr_free(char *copy, const char *buf)
{
    if (copy != buf)
        cx_free(copy);
}
