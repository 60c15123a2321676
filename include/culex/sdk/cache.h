/* culex/sdk/cache.h — a thread-safe TTL cache for auth and ACL results (libculex-plugin).
 *
 * Keys are byte strings (copied), values are ints (a verdict, a flag set). The cache holds
 * at most `max_entries` entries and evicts the least recently used one to make room.
 * Positive and negative results have separate time-to-live values, measured on the
 * monotonic clock; an expired entry is a miss and is dropped when seen. Every operation is
 * O(1) on average and takes the one mutex inside, so any thread may call any function.
 *
 * Typical use in an auth plugin: key = username + '\0' + password (or a digest of them),
 * value = CULEX_ALLOW/CULEX_DENY; a short negative TTL keeps a password change from being
 * refused for long, culex_cache_clear() on reload. */
#ifndef CULEX_SDK_CACHE_H
#define CULEX_SDK_CACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct culex_cache culex_cache;

/* A cache of at most `max_entries` (>= 1) entries; positive results live `positive_ttl_ms`,
 * negative ones `negative_ttl_ms` milliseconds (0 = do not cache that kind). NULL when out
 * of memory or max_entries is 0. */
culex_cache *culex_cache_new(size_t max_entries, uint64_t positive_ttl_ms,
                             uint64_t negative_ttl_ms);

/* Looks up `key`: returns 1 and sets *value on a live hit (the entry becomes the most
 * recently used), 0 on a miss. */
int culex_cache_get(culex_cache *c, const void *key, size_t keylen, int *value);

/* Stores `value` under `key` (replacing an older entry) with the positive or negative TTL.
 * Returns 0, 1 when that kind is not cached (TTL 0), or -ENOMEM. */
int culex_cache_put(culex_cache *c, const void *key, size_t keylen, int value, bool positive);

/* Removes `key`; returns 1 if it was there, else 0. */
int culex_cache_invalidate(culex_cache *c, const void *key, size_t keylen);

/* Removes every entry. */
void culex_cache_clear(culex_cache *c);

/* Entries held now (expired ones not yet seen included). */
size_t culex_cache_count(culex_cache *c);

/* Hit and miss counters since creation (either pointer may be NULL). */
void culex_cache_stats(culex_cache *c, uint64_t *hits, uint64_t *misses);

/* Frees the cache (NULL is fine). No other thread may be using it. */
void culex_cache_free(culex_cache *c);

#ifdef __cplusplus
}
#endif

#endif
