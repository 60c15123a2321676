/* store.h: the persistence interface the broker calls, over the default log store.
 *
 * The store keeps *records*: a kind (retained message, session, subscription, message,
 * queue entry, incoming QoS 2 id), a key and a value, with "last one wins" per (kind, key)
 * and deletions as tombstones. What the bytes mean is the broker's business (broker/persist.c
 * encodes them; docs/persistence.md documents them for store plugins). The store decides
 * how durable a record is:
 *
 *   ALWAYS  every record is made durable by the writer thread as soon as it is free (group
 *           commit); the broker holds a publisher's acknowledgement until cx_store_durable()
 *           reaches the record's sequence number (it is told by on_durable).
 *   BATCH   durable within batch_ms of being put; nobody waits.
 *   NONE    nothing is written per record: puts only count changes, and the broker writes
 *           a whole snapshot every autosave_interval (seconds or changes) and at exit,
 *           as Mosquitto does.
 *
 * A snapshot rewrites the file as the live state the caller enumerates (the log engine's
 * compaction). It is also how the log is kept small under ALWAYS and BATCH, and how a store
 * that failed (disk full, EIO) recovers: a successful snapshot clears the failure. */
#ifndef CX_STORE_H
#define CX_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "store/store_log.h"

typedef struct cx_store cx_store_t;

/* Record kinds. Values are on disk and in the plugin ABI (culex_persist_kind): fixed. */
enum {
    CX_REC_RETAIN = 1,  /* key: topic                       value: message */
    CX_REC_SESSION = 2, /* key: client id                   value: session */
    CX_REC_SUB = 3,     /* key: generation, group, filter   value: options */
    CX_REC_MSG = 4,     /* key: message id                  value: message */
    CX_REC_QUEUE = 5,   /* key: generation, message id      value: delivery state */
    CX_REC_QOS2IN = 6,  /* key: generation, packet id       value: empty */
    CX_REC_KIND_MAX = 6,
};
/* The log's type byte for a deletion of (kind, key). */
#define CX_REC_DEL 0x80u

typedef enum cx_store_sync {
    CX_STORE_SYNC_ALWAYS = 0,
    CX_STORE_SYNC_BATCH = 1,
    CX_STORE_SYNC_NONE = 2,
} cx_store_sync_t;

typedef struct cx_store_opts {
    const char *path;
    cx_store_sync_t sync;
    unsigned batch_ms;            /* BATCH: bound on the time to durability; 0 = 100 */
    int autosave_interval;        /* NONE: seconds (or changes) between snapshots; 0 = exit only */
    bool autosave_on_changes;
    /* Called on the writer thread after each commit with the highest durable sequence
     * number (ALWAYS and BATCH). Must be quick and must not call back into the store. */
    void (*on_durable)(void *ud, uint64_t durable_seq);
    void *ud;
} cx_store_opts_t;

/* One record replayed at open. Slices are borrowed for the callback. */
typedef int (*cx_store_replay_cb)(void *ud, uint8_t kind, bool del, cx_str_t key, cx_str_t val);

typedef cx_store_log_recovery_t cx_store_recovery_t;

/* Opens the store at opts->path, replays every record through cb, and starts the writer.
 * NULL with *err set on failure (CX_EFORMAT: the file is not a culex store; rec->mosquitto_db
 * tells whether it is a Mosquitto database); the reason is logged. */
cx_store_t *cx_store_open(const cx_store_opts_t *opts, cx_store_replay_cb cb, void *ud,
                          cx_store_recovery_t *rec, int *err);
/* Commits what is pending and closes. NULL is a no-op. */
int cx_store_close(cx_store_t *s);

/* Puts or deletes a record (any thread). *seq (may be NULL) receives its sequence number,
 * 0 under NONE. Returns CX_OK or the store's failure. */
int cx_store_put(cx_store_t *s, uint8_t kind, cx_str_t key, cx_str_t val, uint64_t *seq);
int cx_store_del(cx_store_t *s, uint8_t kind, cx_str_t key, uint64_t *seq);

cx_store_sync_t cx_store_sync_mode(const cx_store_t *s);
/* Every record up to this sequence number is durable. */
uint64_t cx_store_durable(cx_store_t *s);
/* CX_OK or the error that failed the store (appends refused until a snapshot succeeds). */
int cx_store_status(cx_store_t *s);

/* True when a snapshot is due: NONE's autosave, the log grown to twice its size after the
 * last snapshot, or a failed store to retry (every 10 s). now_ms is monotonic. */
bool cx_store_snapshot_due(cx_store_t *s, int64_t now_ms);
/* Rewrites the store as the records `live` supplies (cx_store_log_compact_put with the
 * kinds above). The caller makes sure the state does not change meanwhile. */
int cx_store_snapshot(cx_store_t *s, cx_store_log_live_cb live, void *ud, int64_t now_ms);

#endif
