/* err.c: text for cx_err codes and the assertion failure path. */
#include "err.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const struct {
    int code;
    const char *name;
    const char *text;
} own_errors[] = {
    {CX_OK, "CX_OK", "success"},
    {CX_ENOMEM, "CX_ENOMEM", "out of memory"},
    {CX_EAGAIN, "CX_EAGAIN", "resource temporarily unavailable"},
    {CX_EPROTO, "CX_EPROTO", "protocol error"},
    {CX_ETOOBIG, "CX_ETOOBIG", "too large"},
    {CX_EIO, "CX_EIO", "input/output error"},
    {CX_ECLOSED, "CX_ECLOSED", "closed"},
    {CX_ECONFIG, "CX_ECONFIG", "invalid configuration"},
    {CX_EINVAL, "CX_EINVAL", "invalid argument"},
    {CX_ENOTFOUND, "CX_ENOTFOUND", "not found"},
    {CX_EEXIST, "CX_EEXIST", "already exists"},
    {CX_EUNSUPPORTED, "CX_EUNSUPPORTED", "not supported"},
    {CX_EFORMAT, "CX_EFORMAT", "unrecognised file format"},
};

const char *cx_strerror(int err)
{
    for (size_t i = 0; i < sizeof own_errors / sizeof own_errors[0]; i++)
        if (own_errors[i].code == err)
            return own_errors[i].text;
    if (err < 0 && err > -4096)
        return strerror(-err);
    return "unknown error";
}

const char *cx_errname(int err)
{
    for (size_t i = 0; i < sizeof own_errors / sizeof own_errors[0]; i++)
        if (own_errors[i].code == err)
            return own_errors[i].name;
    if (err < 0 && err > -4096) {
        const char *n = strerrorname_np(-err);
        return n ? n : "E?";
    }
    return "CX_E?";
}

void cx_assert_fail(const char *expr, const char *file, int line)
{
    fprintf(stderr, "culex: assertion failed: %s (%s:%d)\n", expr, file, line);
    abort();
}
