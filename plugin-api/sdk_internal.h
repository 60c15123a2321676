/* sdk_internal.h — helpers shared by the SDK's source files; not installed.
 * Symbols are `culex__`-prefixed (internal) and hidden like the rest of the library. */
#ifndef CULEX_SDK_INTERNAL_H
#define CULEX_SDK_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

/* SipHash-2-4 of `len` bytes under a 128-bit key: a keyed hash, so clients that choose
 * usernames or topics cannot aim for one hash chain. */
uint64_t culex__siphash(const uint64_t key[2], const void *data, size_t len);

/* Fills key[2] from the kernel's random source (falls back to time and address bits). */
void culex__hash_key(uint64_t key[2]);

/* Formats an error message into err[errlen] (nothing when err is NULL or errlen 0). */
void culex__set_err(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif
