/* hash.c — the SDK's keyed hash (SipHash-2-4, written from the published algorithm) used by
 * the ACL user index and the TTL cache. */
#include "sdk_internal.h"

#include <string.h>
#include <sys/random.h>
#include <time.h>

#define ROTL(x, b) (uint64_t)(((x) << (b)) | ((x) >> (64 - (b))))

#define SIPROUND                                                                        \
    do {                                                                                \
        v0 += v1;                                                                       \
        v1 = ROTL(v1, 13);                                                              \
        v1 ^= v0;                                                                       \
        v0 = ROTL(v0, 32);                                                              \
        v2 += v3;                                                                       \
        v3 = ROTL(v3, 16);                                                              \
        v3 ^= v2;                                                                       \
        v0 += v3;                                                                       \
        v3 = ROTL(v3, 21);                                                              \
        v3 ^= v0;                                                                       \
        v2 += v1;                                                                       \
        v1 = ROTL(v1, 17);                                                              \
        v1 ^= v2;                                                                       \
        v2 = ROTL(v2, 32);                                                              \
    } while (0)

static uint64_t load_le64(const unsigned char *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
}

uint64_t culex__siphash(const uint64_t key[2], const void *data, size_t len)
{
    const unsigned char *p = data;
    uint64_t v0 = 0x736f6d6570736575ULL ^ key[0];
    uint64_t v1 = 0x646f72616e646f6dULL ^ key[1];
    uint64_t v2 = 0x6c7967656e657261ULL ^ key[0];
    uint64_t v3 = 0x7465646279746573ULL ^ key[1];
    size_t whole = len & ~(size_t)7;

    for (size_t i = 0; i < whole; i += 8) {
        uint64_t m = load_le64(p + i);
        v3 ^= m;
        SIPROUND;
        SIPROUND;
        v0 ^= m;
    }
    uint64_t b = (uint64_t)len << 56;
    for (size_t i = 0; i < (len & 7); i++)
        b |= (uint64_t)p[whole + i] << (8 * i);
    v3 ^= b;
    SIPROUND;
    SIPROUND;
    v0 ^= b;
    v2 ^= 0xff;
    SIPROUND;
    SIPROUND;
    SIPROUND;
    SIPROUND;
    return v0 ^ v1 ^ v2 ^ v3;
}

void culex__hash_key(uint64_t key[2])
{
    unsigned char buf[16];
    if (getrandom(buf, sizeof buf, GRND_NONBLOCK) == (ssize_t)sizeof buf) {
        memcpy(key, buf, sizeof buf);
        return;
    }
    /* No entropy yet (very early boot): still distinct per process and object. */
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    key[0] = (uint64_t)ts.tv_nsec * 0x9e3779b97f4a7c15ULL ^ (uint64_t)ts.tv_sec;
    key[1] = (uint64_t)(uintptr_t)key * 0xbf58476d1ce4e5b9ULL ^ (uint64_t)ts.tv_nsec;
}
