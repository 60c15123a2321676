/* persist_restore.c: rebuilding sessions, subscriptions, queues and retained messages from
 * the persisted records at start-up (main thread, before the workers run).
 *
 * Records arrive in file order from the log, or in any order from a store plugin. Retained
 * messages are applied at once (set and clear are idempotent per topic). Everything else is
 * collected in a map keyed by (kind, key), last one wins, and built at the end: sessions
 * first, then what hangs off their generations. Anything that refers to a generation or a
 * message that is not there is garbage from an ended session and is skipped. */
#include <stdlib.h>
#include <string.h>

#include "broker/persist_int.h"
#include "broker/persist_rec.h"
#include "broker/registry.h"
#include "util/alloc.h"
#include "util/log.h"
#include "util/time.h"

/* --- u64 map --- */

void cx_u64map_init(cx_u64map_t *m)
{
    memset(m, 0, sizeof *m);
}

void cx_u64map_free(cx_u64map_t *m)
{
    cx_free(m->keys);
    cx_free(m->vals);
    cx_u64map_init(m);
}

static size_t slot_of(uint64_t k, size_t cap)
{
    k ^= k >> 33;
    k *= 0xff51afd7ed558ccdull;
    k ^= k >> 33;
    return (size_t)k & (cap - 1);
}

static int grow(cx_u64map_t *m)
{
    size_t cap = m->cap ? m->cap * 2 : 64;
    uint64_t *keys = cx_calloc(cap, sizeof *keys);
    void **vals = cx_calloc(cap, sizeof *vals);
    if (!keys || !vals) {
        cx_free(keys);
        cx_free(vals);
        return CX_ENOMEM;
    }
    for (size_t i = 0; i < m->cap; i++) {
        if (!m->keys[i])
            continue;
        size_t j = slot_of(m->keys[i], cap);
        while (keys[j])
            j = (j + 1) & (cap - 1);
        keys[j] = m->keys[i];
        vals[j] = m->vals[i];
    }
    cx_free(m->keys);
    cx_free(m->vals);
    m->keys = keys;
    m->vals = vals;
    m->cap = cap;
    return CX_OK;
}

int cx_u64map_put(cx_u64map_t *m, uint64_t key, void *val)
{
    if ((m->n + 1) * 4 > m->cap * 3 && grow(m) != CX_OK)
        return CX_ENOMEM;
    size_t j = slot_of(key, m->cap);
    while (m->keys[j] && m->keys[j] != key)
        j = (j + 1) & (m->cap - 1);
    if (!m->keys[j])
        m->n++;
    m->keys[j] = key;
    m->vals[j] = val;
    return CX_OK;
}

void *cx_u64map_get(const cx_u64map_t *m, uint64_t key)
{
    if (!m->cap || !key)
        return NULL;
    size_t j = slot_of(key, m->cap);
    while (m->keys[j]) {
        if (m->keys[j] == key)
            return m->vals[j];
        j = (j + 1) & (m->cap - 1);
    }
    return NULL;
}

/* --- the record map: (kind, key) -> value, chained --- */

typedef struct rent {
    struct rent *next;
    uint64_t hash;
    uint8_t kind;
    uint32_t klen, vlen;
    uint8_t data[]; /* key, then value */
} rent_t;

struct cx_prestore {
    cx_broker_t *b;
    rent_t **buckets;
    size_t nbuckets, n;
    int64_t now_mono, now_wall;
    cx_prestore_stats_t st;
    size_t next_worker;
};

static uint64_t rec_hash(uint8_t kind, cx_str_t key)
{
    uint64_t h = 1469598103934665603ull ^ kind;
    for (size_t i = 0; i < key.len; i++) {
        h ^= key.p[i];
        h *= 1099511628211ull;
    }
    return h;
}

static cx_str_t rent_key(const rent_t *e)
{
    return (cx_str_t){e->data, e->klen};
}

static cx_str_t rent_val(const rent_t *e)
{
    return (cx_str_t){e->data + e->klen, e->vlen};
}

static int rehash(cx_prestore_t *r)
{
    size_t nb = r->nbuckets * 2;
    rent_t **b = cx_calloc(nb, sizeof *b);
    if (!b)
        return CX_ENOMEM;
    for (size_t i = 0; i < r->nbuckets; i++) {
        rent_t *e = r->buckets[i];
        while (e) {
            rent_t *next = e->next;
            e->next = b[e->hash & (nb - 1)];
            b[e->hash & (nb - 1)] = e;
            e = next;
        }
    }
    cx_free(r->buckets);
    r->buckets = b;
    r->nbuckets = nb;
    return CX_OK;
}

cx_prestore_t *cx_prestore_new(cx_broker_t *b)
{
    cx_prestore_t *r = cx_calloc(1, sizeof *r);
    if (!r)
        return NULL;
    r->b = b;
    r->nbuckets = 1024;
    r->buckets = cx_calloc(r->nbuckets, sizeof *r->buckets);
    if (!r->buckets) {
        cx_free(r);
        return NULL;
    }
    r->now_mono = (int64_t)cx_time_mono_ms();
    r->now_wall = cx_time_wall_ms();
    return r;
}

void cx_prestore_free(cx_prestore_t *r)
{
    if (!r)
        return;
    for (size_t i = 0; i < r->nbuckets; i++) {
        rent_t *e = r->buckets[i];
        while (e) {
            rent_t *next = e->next;
            cx_free(e);
            e = next;
        }
    }
    cx_free(r->buckets);
    cx_free(r);
}

static void skipped(cx_prestore_t *r, const char *what)
{
    if (r->st.skipped++ < 5)
        cx_log(CX_LOG_WARNING, "persistence: skipping a damaged %s record.", what);
}

static void note_max(uint64_t *max, uint64_t v)
{
    if (v > *max)
        *max = v;
}

/* Generations and ids seen anywhere, even in garbage, are never handed out again: an old
 * record of a reused generation would come back to life. */
static void note_ids(cx_prestore_t *r, uint8_t kind, cx_str_t key)
{
    uint64_t a = 0, b = 0;
    switch (kind) {
    case CX_REC_SUB:
    case CX_REC_QOS2IN:
        if (cx_prec_key_u64(key, &a) == CX_OK)
            note_max(&r->st.max_gen, a);
        break;
    case CX_REC_QUEUE:
        if (cx_prec_key_queue_decode(key, &a, &b) == CX_OK) {
            note_max(&r->st.max_gen, a);
            note_max(&r->st.max_msg_id, b);
        }
        break;
    case CX_REC_MSG:
        if (cx_prec_key_u64(key, &a) == CX_OK)
            note_max(&r->st.max_msg_id, a);
        break;
    default:
        break;
    }
}

static int apply_retained(cx_prestore_t *r, bool del, cx_str_t topic, cx_str_t val)
{
    cx_retain_t *ret = r->b->retained;
    if (topic.len == 0 || topic.len > 65535) {
        skipped(r, "retained message");
        return CX_OK;
    }
    if (del) {
        cx_retain_set(ret, topic, NULL);
        return CX_OK;
    }
    cx_msg_t *m = NULL;
    int rc = cx_prec_msg_decode(val, r->now_mono, r->now_wall, &m);
    if (rc == CX_ENOMEM)
        return rc;
    if (rc == CX_ENOTFOUND) { /* expired while the broker was down */
        cx_retain_set(ret, topic, NULL);
        return CX_OK;
    }
    if (rc != CX_OK || !cx_str_eq(topic, m->topic)) {
        cx_msg_unref(m);
        skipped(r, "retained message");
        return CX_OK;
    }
    rc = cx_retain_set(ret, topic, m);
    cx_msg_unref(m);
    return rc < 0 ? rc : CX_OK;
}

int cx_prestore_record(cx_prestore_t *r, uint8_t kind, bool del, cx_str_t key, cx_str_t val)
{
    if (kind == CX_REC_RETAIN)
        return apply_retained(r, del, key, val);
    if (key.len > UINT32_MAX || val.len > UINT32_MAX) {
        skipped(r, "oversized");
        return CX_OK;
    }
    note_ids(r, kind, key);
    uint64_t h = rec_hash(kind, key);
    rent_t **pp = &r->buckets[h & (r->nbuckets - 1)];
    while (*pp) {
        rent_t *e = *pp;
        if (e->hash == h && e->kind == kind && cx_str_eq(rent_key(e), key)) {
            *pp = e->next;
            cx_free(e);
            r->n--;
            break;
        }
        pp = &(*pp)->next;
    }
    if (del)
        return CX_OK;
    rent_t *e = cx_malloc(sizeof *e + key.len + val.len);
    if (!e)
        return CX_ENOMEM;
    e->hash = h;
    e->kind = kind;
    e->klen = (uint32_t)key.len;
    e->vlen = (uint32_t)val.len;
    if (key.len)
        memcpy(e->data, key.p, key.len);
    if (val.len)
        memcpy(e->data + key.len, val.p, val.len);
    size_t bi = h & (r->nbuckets - 1);
    e->next = r->buckets[bi];
    r->buckets[bi] = e;
    if (++r->n > r->nbuckets * 2 && rehash(r) != CX_OK)
        return CX_ENOMEM;
    return CX_OK;
}

/* --- building --- */

typedef void (*visit_cb)(cx_prestore_t *r, rent_t *e, void *ud);

static void each(cx_prestore_t *r, uint8_t kind, visit_cb cb, void *ud)
{
    for (size_t i = 0; i < r->nbuckets; i++)
        for (rent_t *e = r->buckets[i]; e; e = e->next)
            if (e->kind == kind)
                cb(r, e, ud);
}

typedef struct build {
    cx_u64map_t sessions; /* generation -> session */
    cx_u64map_t msgs;     /* message id -> rent (raw), then decoded message */
    cx_u64map_t decoded;  /* message id -> cx_msg_t (one reference held here) */
    struct qitem {
        cx_session_t *s;
        cx_msg_t *m;
        cx_prec_queue_t q;
        uint64_t gen;
    } *queue;
    size_t nqueue, queue_cap;
    int rc;
} build_t;

static void build_session(cx_prestore_t *r, rent_t *e, void *ud)
{
    build_t *bd = ud;
    cx_prec_session_t rec;
    cx_str_t cid = rent_key(e);
    if (bd->rc || cx_prec_session_decode(rent_val(e), &rec) != CX_OK || cid.len > 65535 ||
        memchr(cid.p, 0, cid.len)) {
        if (!bd->rc)
            skipped(r, "session");
        return;
    }
    note_max(&r->st.max_gen, rec.gen);
    int64_t away_ms = rec.disconnected_wall ? r->now_wall - rec.disconnected_wall : 0;
    if (away_ms < 0)
        away_ms = 0; /* the clock went back: count from now */
    if (rec.expiry != CX_EXPIRY_NEVER && away_ms >= (int64_t)rec.expiry * 1000) {
        r->st.expired++;
        return;
    }
    cx_broker_t *b = r->b;
    cx_worker_t *w = &b->workers[r->next_worker++ % b->nworkers];
    cx_session_t *s = cx_session_new(w, cid);
    if (!s) {
        bd->rc = CX_ENOMEM;
        return;
    }
    s->version = rec.protocol;
    s->expiry_interval = rec.expiry;
    s->disconnected_at_ms = r->now_mono - away_ms;
    atomic_store(&s->store_gen, rec.gen);
    cx_session_t *holder = cx_registry_insert(b->registry, s);
    if (holder != s) {
        /* Two records for one client id cannot come from one map; a plugin store could
         * still hand over nonsense. Keep the first. */
        if (holder)
            cx_session_unref(holder);
        cx_session_end(s);
        skipped(r, "duplicate session");
        return;
    }
    cx_session_unref(holder); /* the registry lookup's reference; the alive one stays */
    if (cx_u64map_put(&bd->sessions, rec.gen, s) != CX_OK) {
        bd->rc = CX_ENOMEM;
        return;
    }
    r->st.sessions++;
}

static void build_sub(cx_prestore_t *r, rent_t *e, void *ud)
{
    build_t *bd = ud;
    uint64_t gen;
    cx_str_t group, filter;
    cx_sub_opts_t opts;
    if (bd->rc)
        return;
    if (cx_prec_sub_key_decode(rent_key(e), &gen, &group, &filter) != CX_OK ||
        cx_prec_sub_decode(rent_val(e), &opts) != CX_OK) {
        skipped(r, "subscription");
        return;
    }
    cx_session_t *s = cx_u64map_get(&bd->sessions, gen);
    if (!s)
        return; /* garbage of an ended session */
    int rc = cx_subtree_add(r->b->subs, filter, group, s, &opts);
    if (rc == CX_EINVAL) {
        skipped(r, "subscription");
        return;
    }
    if (rc < 0 || cx_session_sub_add(s, filter, group, &opts) < 0) {
        bd->rc = CX_ENOMEM;
        return;
    }
    r->st.subs++;
}

static void collect_msg(cx_prestore_t *r, rent_t *e, void *ud)
{
    build_t *bd = ud;
    uint64_t id;
    if (bd->rc)
        return;
    if (cx_prec_key_u64(rent_key(e), &id) != CX_OK || rent_key(e).len != 8 || !id) {
        skipped(r, "message");
        return;
    }
    if (cx_u64map_put(&bd->msgs, id, e) != CX_OK)
        bd->rc = CX_ENOMEM;
}

/* The message with this id, decoded on first use; NULL if missing, damaged or expired. */
static cx_msg_t *message(cx_prestore_t *r, build_t *bd, uint64_t id)
{
    cx_msg_t *m = cx_u64map_get(&bd->decoded, id);
    if (m)
        return m;
    rent_t *e = cx_u64map_get(&bd->msgs, id);
    if (!e)
        return NULL;
    int rc = cx_prec_msg_decode(rent_val(e), r->now_mono, r->now_wall, &m);
    if (rc == CX_ENOMEM) {
        bd->rc = rc;
        return NULL;
    }
    if (rc != CX_OK) {
        if (rc == CX_EFORMAT)
            skipped(r, "message");
        cx_u64map_put(&bd->msgs, id, NULL); /* do not decode it again */
        return NULL;
    }
    atomic_store(&m->store_id, id);
    if (cx_u64map_put(&bd->decoded, id, m) != CX_OK) {
        cx_msg_unref(m);
        bd->rc = CX_ENOMEM;
        return NULL;
    }
    return m;
}

static void collect_queue(cx_prestore_t *r, rent_t *e, void *ud)
{
    build_t *bd = ud;
    uint64_t gen, id;
    cx_prec_queue_t q;
    if (bd->rc)
        return;
    if (cx_prec_key_queue_decode(rent_key(e), &gen, &id) != CX_OK ||
        cx_prec_queue_decode(rent_val(e), &q) != CX_OK) {
        skipped(r, "queue");
        return;
    }
    note_max(&r->st.max_order, q.order);
    cx_session_t *s = cx_u64map_get(&bd->sessions, gen);
    if (!s)
        return;
    cx_msg_t *m = message(r, bd, id);
    if (!m)
        return;
    if (bd->nqueue == bd->queue_cap) {
        size_t cap = bd->queue_cap ? bd->queue_cap * 2 : 256;
        struct qitem *n = cx_realloc(bd->queue, cap * sizeof *n);
        if (!n) {
            bd->rc = CX_ENOMEM;
            return;
        }
        bd->queue = n;
        bd->queue_cap = cap;
    }
    bd->queue[bd->nqueue++] = (struct qitem){s, m, q, gen};
}

static void build_qos2(cx_prestore_t *r, rent_t *e, void *ud)
{
    build_t *bd = ud;
    uint64_t gen;
    uint16_t pid;
    if (bd->rc)
        return;
    if (cx_prec_key_qos2_decode(rent_key(e), &gen, &pid) != CX_OK) {
        skipped(r, "QoS 2");
        return;
    }
    cx_session_t *s = cx_u64map_get(&bd->sessions, gen);
    if (s && cx_session_qos2_in_add(s, pid) < 0)
        bd->rc = CX_ENOMEM;
}

static int by_order(const void *a, const void *b)
{
    uint64_t x = ((const struct qitem *)a)->q.order, y = ((const struct qitem *)b)->q.order;
    return x < y ? -1 : x > y;
}

int cx_prestore_finish(cx_prestore_t *r, cx_prestore_stats_t *st)
{
    build_t bd;
    memset(&bd, 0, sizeof bd);
    each(r, CX_REC_SESSION, build_session, &bd);
    each(r, CX_REC_SUB, build_sub, &bd);
    each(r, CX_REC_MSG, collect_msg, &bd);
    each(r, CX_REC_QUEUE, collect_queue, &bd);
    each(r, CX_REC_QOS2IN, build_qos2, &bd);
    /* Queues in the order their entries were first recorded, per session. */
    if (bd.nqueue)
        qsort(bd.queue, bd.nqueue, sizeof *bd.queue, by_order);
    for (size_t i = 0; i < bd.nqueue && bd.rc == CX_OK; i++) {
        struct qitem *it = &bd.queue[i];
        uint32_t ids[64];
        uint32_t *sub_ids = it->q.nsub <= 64 ? ids : cx_malloc(it->q.nsub * sizeof *sub_ids);
        if (!sub_ids) {
            bd.rc = CX_ENOMEM;
            break;
        }
        for (size_t k = 0; k < it->q.nsub; k++)
            sub_ids[k] = cx_prec_queue_sub_id(&it->q, k);
        if (cx_session_restore_entry(it->s, it->m, it->q.qos, it->q.retain, it->q.share_hash,
                                     it->q.state, it->q.packet_id, sub_ids, it->q.nsub, it->gen,
                                     it->q.order) != CX_OK)
            bd.rc = CX_ENOMEM;
        else
            r->st.queued++;
        if (sub_ids != ids)
            cx_free(sub_ids);
    }
    for (size_t i = 0; i < bd.decoded.cap; i++)
        if (bd.decoded.keys[i])
            cx_msg_unref(bd.decoded.vals[i]);
    cx_u64map_free(&bd.decoded);
    cx_u64map_free(&bd.msgs);
    cx_u64map_free(&bd.sessions);
    cx_free(bd.queue);
    r->st.retained = cx_retain_count(r->b->retained);
    *st = r->st;
    cx_prestore_free(r);
    return bd.rc;
}
