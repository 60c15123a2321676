/* store.c: durability levels and snapshot policy over the log engine. */
#include "store.h"

#include <stdatomic.h>

#include "util/alloc.h"
#include "util/err.h"
#include "util/log.h"

/* A log smaller than this is never compacted: rewriting it would cost more than it saves. */
#define COMPACT_MIN_BYTES (8u * 1024 * 1024)
/* A failed store retries a full snapshot this often. */
#define RETRY_MS 10000

struct cx_store {
    cx_store_log_t *log;
    cx_store_sync_t sync;
    int autosave_interval;
    bool autosave_on_changes;
    atomic_uint_fast64_t changes; /* NONE: records since the last snapshot */
    int64_t last_snapshot_ms;     /* 0 = never this run */
    int64_t last_try_ms;
    bool snapshot_failed;         /* the last snapshot failed: retry every RETRY_MS */
};

typedef struct replay_ctx {
    cx_store_replay_cb cb;
    void *ud;
} replay_ctx_t;

static int replay_one(void *ud, const cx_store_log_rec_t *r)
{
    replay_ctx_t *rc = ud;
    uint8_t kind = r->type & (uint8_t)~CX_REC_DEL;
    if (kind == 0 || kind > CX_REC_KIND_MAX) {
        /* A record of a later culex: not ours to judge, but not ours to load either. */
        cx_log(CX_LOG_WARNING, "persistence: skipping a record of unknown kind %u.", r->type);
        return CX_OK;
    }
    return rc->cb ? rc->cb(rc->ud, kind, (r->type & CX_REC_DEL) != 0, r->key, r->val) : CX_OK;
}

cx_store_t *cx_store_open(const cx_store_opts_t *o, cx_store_replay_cb cb, void *ud,
                          cx_store_recovery_t *rec, int *err)
{
    cx_store_t *s = cx_calloc(1, sizeof *s);
    if (!s) {
        *err = CX_ENOMEM;
        return NULL;
    }
    s->sync = o->sync;
    s->autosave_interval = o->autosave_interval;
    s->autosave_on_changes = o->autosave_on_changes;
    atomic_init(&s->changes, 0);
    cx_store_log_opts_t lo = {
        .sync = o->sync == CX_STORE_SYNC_ALWAYS ? CX_STORE_LOG_SYNC_ALWAYS : CX_STORE_LOG_SYNC_BATCH,
        .batch_ms = o->batch_ms,
        .on_commit = o->on_durable,
        .on_commit_ud = o->ud,
    };
    replay_ctx_t rc = {cb, ud};
    s->log = cx_store_log_open(o->path, &lo, replay_one, &rc, rec, err);
    if (!s->log) {
        cx_free(s);
        return NULL;
    }
    return s;
}

int cx_store_close(cx_store_t *s)
{
    if (!s)
        return CX_OK;
    int rc = cx_store_log_close(s->log);
    cx_free(s);
    return rc;
}

int cx_store_put(cx_store_t *s, uint8_t kind, cx_str_t key, cx_str_t val, uint64_t *seq)
{
    if (s->sync == CX_STORE_SYNC_NONE) {
        atomic_fetch_add_explicit(&s->changes, 1, memory_order_relaxed);
        if (seq)
            *seq = 0;
        return CX_OK;
    }
    return cx_store_log_append(s->log, kind, key.p, key.len, val.p, val.len, seq);
}

int cx_store_del(cx_store_t *s, uint8_t kind, cx_str_t key, uint64_t *seq)
{
    return cx_store_put(s, (uint8_t)(kind | CX_REC_DEL), key, CX_STR_NULL, seq);
}

cx_store_sync_t cx_store_sync_mode(const cx_store_t *s)
{
    return s->sync;
}

uint64_t cx_store_durable(cx_store_t *s)
{
    cx_store_log_stats_t st;
    cx_store_log_stats(s->log, &st);
    return st.durable_seq;
}

int cx_store_status(cx_store_t *s)
{
    return cx_store_log_status(s->log);
}

bool cx_store_snapshot_due(cx_store_t *s, int64_t now_ms)
{
    if (!s->last_snapshot_ms)
        s->last_snapshot_ms = now_ms;
    if (s->snapshot_failed || cx_store_log_status(s->log) != CX_OK)
        return now_ms - s->last_try_ms >= RETRY_MS;
    if (s->sync == CX_STORE_SYNC_NONE) {
        uint64_t changes = atomic_load_explicit(&s->changes, memory_order_relaxed);
        if (s->autosave_interval <= 0 || changes == 0)
            return false;
        if (s->autosave_on_changes)
            return changes >= (uint64_t)s->autosave_interval;
        return now_ms - s->last_snapshot_ms >= (int64_t)s->autosave_interval * 1000;
    }
    cx_store_log_stats_t st;
    cx_store_log_stats(s->log, &st);
    return st.file_size > COMPACT_MIN_BYTES && st.file_size > 2 * st.base_size;
}

int cx_store_snapshot(cx_store_t *s, cx_store_log_live_cb live, void *ud, int64_t now_ms)
{
    s->last_try_ms = now_ms;
    /* Changes counted from here on belong to the next snapshot (the caller has stopped
     * every writer of the state, so none is counted twice or missed). */
    atomic_store_explicit(&s->changes, 0, memory_order_relaxed);
    int rc = cx_store_log_compact(s->log, live, ud);
    s->snapshot_failed = rc != CX_OK;
    if (rc == CX_OK)
        s->last_snapshot_ms = now_ms;
    return rc;
}
