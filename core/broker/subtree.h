/* subtree.h: the subscription trie, shared by every worker.
 *
 * One tree per broker maps topic filters to the subscriptions made on them, and answers
 * "who receives a PUBLISH to this topic" once per message on the receiving worker.
 * Filters and topics handed in must already be valid (cx_mqtt_topic_filter_is_valid and
 * friends in mqtt/codec.h); shared subscriptions arrive split by cx_mqtt_shared_parse, so
 * the tree sees the bare filter plus the $share group name.
 *
 * Threading: every function may be called from any thread. A pthread rwlock inside
 * serialises writers (add, remove) against readers (match, walk, which run concurrently
 * with each other); the counts are atomics and take no lock. Callbacks run while the lock is
 * held, so they must not call back into the same tree and should be quick.
 *
 * Owners are opaque, non-NULL pointers (a session, typically) compared by identity; the tree
 * never dereferences them. Byte slices passed in are borrowed for the call and copied. */
#ifndef CX_SUBTREE_H
#define CX_SUBTREE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/str.h"

typedef struct cx_subtree cx_subtree_t;

/* The per-subscription options of SUBSCRIBE (MQTT 5 names; 3.1.1 uses only qos). */
typedef struct cx_sub_opts {
    uint8_t qos;
    bool no_local;
    bool retain_as_published;
    uint8_t retain_handling;
    uint32_t sub_id; /* subscription identifier, 0 = none */
} cx_sub_opts_t;

/* Returns an empty tree, or NULL if out of memory. */
cx_subtree_t *cx_subtree_new(void);

/* Frees the tree and every subscription in it (owners are not touched). No other thread may
 * be using the tree. NULL is a no-op. */
void cx_subtree_free(cx_subtree_t *t);

/* Adds owner's subscription to filter, or replaces its options if owner already holds one on
 * the same filter in the same group. `group` empty (len 0) means a non-shared subscription;
 * otherwise it is the group name of "$share/<group>/<filter>", and the same owner may hold a
 * non-shared and any number of shared subscriptions on one filter. opts is copied.
 * Returns 1 if the subscription is new, 0 if it replaced one, CX_ENOMEM (the tree is then
 * unchanged) or CX_EINVAL (filter or group longer than 65535 bytes, which MQTT cannot carry).
 * Takes the write lock. */
int cx_subtree_add(cx_subtree_t *t, cx_str_t filter, cx_str_t group, void *owner,
                   const cx_sub_opts_t *opts);

/* Removes owner's subscription to filter in group (empty = non-shared) and frees the nodes it
 * leaves empty. Returns CX_OK or CX_ENOTFOUND. Takes the write lock; never allocates. */
int cx_subtree_remove(cx_subtree_t *t, cx_str_t filter, cx_str_t group, void *owner);

/* Receives one matching subscription. opts points into the tree and is valid only during the
 * call; group is empty for a non-shared subscription, else the group name (also borrowed). */
typedef void (*cx_subtree_match_cb)(void *ud, void *owner, const cx_sub_opts_t *opts,
                                    cx_str_t group);
/* Asked during matching whether a member of a shared group may receive now (connected, send
 * quota left, ...). Called under the read lock like the match callback. */
typedef bool (*cx_subtree_pick_cb)(void *ud, void *owner);

/* Finds the subscriptions matching topic (a topic name: no wildcards) with MQTT rules: '+'
 * matches one level, empty ones included; '#' matches the parent level and any number of
 * child levels; a topic starting with '$' is not matched by a filter whose first level is a
 * wildcard [MQTT-4.7.2-1]. Calls cb once per matching non-shared subscription and once per
 * matching shared group (filter + group), with one member chosen round-robin among those
 * for which pick returns true, or round-robin among all when none does (pick NULL = all
 * eligible; pick is asked members in turn until one accepts, so usually once). An owner whose several filters match gets one call per filter: de-duplicating
 * is the caller's job (MQTT 5 wants the sub_ids of every match anyway).
 * Cost: one hash probe per topic level and per wildcard branch present; subscriptions on
 * non-matching branches are never visited. Never allocates, never fails. Runs under the read
 * lock: cb and pick must not call into this tree. */
void cx_subtree_match(cx_subtree_t *t, cx_str_t topic, cx_subtree_match_cb cb,
                      cx_subtree_pick_cb pick, void *ud);

/* Receives one subscription of a walk; filter (the bare filter, without $share) and group
 * are borrowed for the call. */
typedef void (*cx_subtree_walk_cb)(void *ud, cx_str_t filter, cx_str_t group, void *owner,
                                   const cx_sub_opts_t *opts);

/* Calls cb for every subscription, shared group members included (SIGUSR2 dump,
 * persistence). Order is unspecified. Runs under the read lock, which stalls subscribers
 * but not publishers: cb should copy what it needs and return. Returns CX_OK, or CX_ENOMEM
 * if the path buffer could not be allocated (nothing was visited then). */
int cx_subtree_walk(cx_subtree_t *t, cx_subtree_walk_cb cb, void *ud);

/* Number of subscriptions, shared ones (each group member counts once) included. Lock-free. */
size_t cx_subtree_count(cx_subtree_t *t);
/* Number of shared subscriptions (group members). Lock-free. */
size_t cx_subtree_shared_count(cx_subtree_t *t);

#endif
