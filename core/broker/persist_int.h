/* persist_int.h: what persist.c and persist_restore.c share. Not for other modules. */
#ifndef CX_BROKER_PERSIST_INT_H
#define CX_BROKER_PERSIST_INT_H

#include <pthread.h>
#include <stdatomic.h>

#include "broker/persist.h"
#include "store/store.h"

/* culex's own file name, so that Mosquitto's mosquitto.db in the same directory is never
 * mistaken for it (persistence_file overrides it). */
#define CX_PERSIST_DEFAULT_FILE "culex.db"

struct cx_persist {
    cx_broker_t *b;
    cx_store_t *store;     /* the default store, or NULL (a plugin is the store) */
    char *path;
    bool plugin_events;    /* some plugin hooks CULEX_EV_PERSIST */
    bool always;           /* persistence_sync always: acknowledgements wait */
    /* The store's directory did not exist at start (Mosquitto starts anyway): opening is
     * retried by cx_persist_maintain, with these options. */
    bool open_retry;
    cx_store_opts_t opts;
    int64_t last_open_try_ms;
    atomic_bool frozen;    /* shutting down: nothing more is recorded */
    atomic_bool failed_logged;
    /* Retained messages: the in-memory set and its record are one step, so that two
     * workers setting one topic leave the log in the order memory saw. */
    pthread_mutex_t retain_lock;
    atomic_uint_fast64_t next_gen, next_msg_id, next_order;
};

/* A small map from non-zero 64-bit ids to pointers (open addressing). */
typedef struct cx_u64map {
    uint64_t *keys;
    void **vals;
    size_t cap, n;
} cx_u64map_t;

void cx_u64map_init(cx_u64map_t *m);
void cx_u64map_free(cx_u64map_t *m);
int cx_u64map_put(cx_u64map_t *m, uint64_t key, void *val);
void *cx_u64map_get(const cx_u64map_t *m, uint64_t key);

/* Restore: records are collected (any order, last one wins per key), then the state is
 * built in dependency order. Retained messages go straight into the retained store. */
typedef struct cx_prestore cx_prestore_t;
typedef struct cx_prestore_stats {
    size_t retained, sessions, subs, queued, skipped, expired;
    uint64_t max_gen, max_msg_id, max_order;
} cx_prestore_stats_t;

cx_prestore_t *cx_prestore_new(cx_broker_t *b);
/* One record (replay callback). CX_OK, or CX_ENOMEM. Damaged records are counted and
 * skipped, not errors. */
int cx_prestore_record(cx_prestore_t *r, uint8_t kind, bool del, cx_str_t key, cx_str_t val);
/* Builds sessions, subscriptions and queues, and frees r. */
int cx_prestore_finish(cx_prestore_t *r, cx_prestore_stats_t *st);
void cx_prestore_free(cx_prestore_t *r);

/* Retained set + record under one lock (no-op without persistence). */
void cx_persist_retain_lock(cx_broker_t *b, bool lock);
/* A delivery routing had recorded was dropped before it became a queue entry. */
void cx_persist_routed_dropped(cx_session_t *s, cx_msg_t *msg, uint64_t store_gen);

#endif
