/* sdk_internal.c — small helpers shared by the SDK's source files (not installed). */
#include "sdk_internal.h"

#include <stdarg.h>
#include <stdio.h>

void culex__set_err(char *err, size_t errlen, const char *fmt, ...)
{
    if (!err || !errlen)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}
