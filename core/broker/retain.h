/* retain.h: the retained-message store, shared by every worker.
 *
 * Maps topic names to one opaque, refcounted value each (the retained message). The store
 * knows nothing of the value but how to take and drop a reference, through the callbacks
 * given at creation. Lookups go by subscription filter: a new subscriber's "sensors/+/temp"
 * or "#" walks only the branches of the topic tree it can match, and an exact filter costs
 * one hash probe per level.
 *
 * Threading: every function may be called from any thread. A pthread rwlock inside lets
 * match, get and walk run concurrently with each other and serialises set. Callbacks run
 * under the read lock: they must not call into the same store, and a value they want to keep
 * past the call needs its own reference. The ref/unref callbacks may be called from any
 * thread; unref is never called with the lock held, so it may free the value.
 *
 * Topics and filters must already be valid (mqtt/codec.h validators); filters here are never
 * shared ($share is meaningless for retained messages). Slices are borrowed for the call. */
#ifndef CX_RETAIN_H
#define CX_RETAIN_H

#include <stddef.h>

#include "util/str.h"

typedef struct cx_retain cx_retain_t;

typedef void (*cx_retain_ref_cb)(void *value);
typedef void (*cx_retain_unref_cb)(void *value);

/* Returns an empty store, or NULL if out of memory. ref and unref are required. */
cx_retain_t *cx_retain_new(cx_retain_ref_cb ref, cx_retain_unref_cb unref);

/* Drops the store's reference on every value and frees the store. No other thread may be
 * using it. NULL is a no-op. */
void cx_retain_free(cx_retain_t *s);

/* Retains value on topic, replacing what was there; value NULL clears the topic (an MQTT
 * retained message with an empty payload) and frees the nodes left empty. The store takes
 * its own reference (ref) and drops the one on the value it replaces (unref, after the lock
 * is released); the caller keeps its own reference either way. Returns CX_OK, CX_ENOMEM
 * (store unchanged) or CX_EINVAL (topic over 65535 bytes). Clearing an absent topic is CX_OK.
 * Takes the write lock. */
int cx_retain_set(cx_retain_t *s, cx_str_t topic, void *value);

/* Returns the value retained on exactly topic with a new reference the caller must drop with
 * unref, or NULL. Takes the read lock. */
void *cx_retain_get(cx_retain_t *s, cx_str_t topic);

/* Receives one retained message: topic is borrowed for the call; value is borrowed too
 * (call ref on it to keep it). */
typedef void (*cx_retain_match_cb)(void *ud, cx_str_t topic, void *value);

/* Calls cb for every retained topic that filter matches, with the MQTT wildcard rules ('+'
 * one level, empty ones included; '#' the parent level and everything below; no first-level
 * wildcard matches a topic starting with '$'). The cost is the part of the tree the filter
 * can reach, never a scan of all topics. Order is unspecified. Runs under the read lock.
 * Returns CX_OK, or CX_ENOMEM if a path buffer for very long topics (over 256 bytes) could
 * not be allocated (nothing was visited then). */
int cx_retain_match(cx_retain_t *s, cx_str_t filter, cx_retain_match_cb cb, void *ud);

/* Calls cb for every retained message, '$' topics included (persistence, dumps). Same
 * locking and return values as cx_retain_match. */
int cx_retain_walk(cx_retain_t *s, cx_retain_match_cb cb, void *ud);

/* Number of retained topics. Lock-free. */
size_t cx_retain_count(cx_retain_t *s);

#endif
