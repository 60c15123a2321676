/* router.c: one trie match per PUBLISH on the receiving worker, then delivery: directly to
 * this worker's sessions, and as one posted batch per other worker. */
#include "router.h"

#include <string.h>

#include "broker/flow.h"
#include "broker/persist.h"
#include "broker/persist_int.h"
#include "broker/session.h"
#include "broker/worker.h"
#include "util/alloc.h"
#include "util/log.h"

typedef struct route_ctx {
    cx_worker_t *w;
    const cx_msg_t *msg;
    const cx_session_t *origin;   /* for No Local */
    const cx_session_t *exclude;  /* shared redelivery: the leaving member */
    uint32_t only_share;          /* shared redelivery: the group wanted */
    bool oom;
} route_ctx_t;

uint32_t cx_route_share_hash(cx_str_t group, cx_str_t filter)
{
    uint64_t h = cx_str_hash(group) * 31 + cx_str_hash(filter);
    uint32_t v = (uint32_t)(h ^ (h >> 32));
    return v ? v : 1;
}

static cx_target_t *new_target(cx_worker_t *w)
{
    if (w->ntargets == w->targets_cap) {
        size_t cap = w->targets_cap ? w->targets_cap * 2 : 64;
        cx_target_t *n = cx_realloc(w->targets, cap * sizeof *n);
        if (!n)
            return NULL;
        w->targets = n;
        w->targets_cap = cap;
    }
    return &w->targets[w->ntargets++];
}

static bool add_sub_id(cx_target_t *t, uint32_t id)
{
    if (!id)
        return true;
    if (t->nsub == 0) {
        t->sub_id = id;
        t->nsub = 1;
        return true;
    }
    uint32_t *n = cx_realloc(t->sub_ids, (t->nsub + 1u) * sizeof *n);
    if (!n)
        return false;
    if (t->nsub == 1)
        n[0] = t->sub_id;
    n[t->nsub++] = id;
    t->sub_ids = n;
    return true;
}

static void match_cb(void *ud, void *owner, const cx_sub_opts_t *opts, cx_str_t group)
{
    route_ctx_t *rc = ud;
    cx_worker_t *w = rc->w;
    cx_session_t *s = owner;
    const cx_msg_t *m = rc->msg;
    uint32_t share = group.len ? cx_route_share_hash(group, CX_STR_NULL) : 0;

    if (rc->only_share) {
        if (share != rc->only_share || s == rc->exclude)
            return;
    } else if (opts->no_local && s == rc->origin && !share) {
        return; /* [MQTT-3.8.3-3] */
    }
    uint8_t qos = w->limits.upgrade_outgoing_qos ? opts->qos : (m->qos < opts->qos ? m->qos : opts->qos);
    bool retain = opts->retain_as_published ? m->retain : false;

    /* Overlapping non-shared subscriptions of one session: one copy, highest QoS, every
     * subscription identifier [MQTT-3.3.4-2], [MQTT-3.3.4-3]. */
    cx_route_mark_t *mark = &s->marks[w->index];
    if (!share && mark->seq == w->route_seq) {
        cx_target_t *t = &w->targets[mark->target];
        if (qos > t->qos)
            t->qos = qos;
        t->retain = t->retain || retain;
        if (!add_sub_id(t, opts->sub_id))
            rc->oom = true;
        return;
    }
    cx_target_t *t = new_target(w);
    if (!t) {
        rc->oom = true;
        return;
    }
    t->session = cx_session_ref(s);
    t->qos = qos;
    t->retain = retain;
    t->share_hash = share;
    t->nsub = 0;
    t->sub_id = 0;
    t->sub_ids = NULL;
    t->store_gen = 0;
    t->store_order = 0;
    /* Read under the tree's read lock: see cx_session_t.epoch. */
    t->epoch = atomic_load_explicit(&s->epoch, memory_order_acquire);
    add_sub_id(t, opts->sub_id);
    if (!share) {
        mark->seq = w->route_seq;
        mark->target = (uint32_t)(w->ntargets - 1);
    }
}

static bool pick_cb(void *ud, void *owner)
{
    route_ctx_t *rc = ud;
    cx_session_t *s = owner;
    return s != rc->exclude && atomic_load_explicit(&s->online, memory_order_relaxed);
}

/* Appends one delivery to the batch this turn builds for worker wi. False when out of
 * memory (the caller drops the delivery). */
static bool outbox_add(cx_worker_t *w, size_t wi, cx_msg_t *msg, const cx_target_t *t)
{
    cx_post_deliver_t *p = w->outbox[wi];
    if (!p || p->count == p->cap) {
        size_t cap = p ? p->cap * 2 : 16;
        cx_post_deliver_t *n = cx_realloc(p, sizeof *n + cap * sizeof(cx_delivery_t));
        if (!n)
            return false;
        if (!p) {
            n->base.kind = CX_POST_DELIVER;
            n->count = 0;
        }
        n->cap = cap;
        w->outbox[wi] = p = n;
    }
    p->items[p->count++] = (cx_delivery_t){cx_msg_ref(msg), *t};
    return true;
}

void cx_worker_flush_outbox(cx_worker_t *w)
{
    cx_broker_t *b = w->broker;
    for (size_t wi = 0; wi < b->nworkers; wi++) {
        cx_post_deliver_t *p = w->outbox[wi];
        if (!p)
            continue;
        w->outbox[wi] = NULL;
        /* From here the other worker owns the batch and may free its sessions at once. */
        cx_loop_post(b->workers[wi].loop, &p->base);
    }
}

/* QoS 0 messages on their way to a reader on another worker may not pile up between the
 * workers while its worker is slow to take them (a fast publisher would otherwise fill the
 * heap with messages its output cap then drops): at most this many bytes per reader. */
#define QOS0_TRANSIT_MAX (8u * 1024 * 1024)

/* Counts a QoS 0 delivery on its way to s; false when it is better dropped here: beyond
 * QOS0_TRANSIT_MAX, or while s's output was full a moment ago (its worker would only drop
 * it, at a higher price). */
static bool qos0_transit_add(cx_session_t *s, const cx_msg_t *msg, int64_t now)
{
    if (now < atomic_load_explicit(&s->qos0_full_until, memory_order_relaxed))
        return false;
    size_t in = atomic_fetch_add_explicit(&s->qos0_transit, msg->size, memory_order_relaxed);
    if (in + msg->size <= QOS0_TRANSIT_MAX)
        return true;
    atomic_fetch_sub_explicit(&s->qos0_transit, msg->size, memory_order_relaxed);
    return false;
}

static void qos0_transit_done(cx_session_t *s, const cx_msg_t *msg)
{
    atomic_fetch_sub_explicit(&s->qos0_transit, msg->size, memory_order_relaxed);
}

static void deliver_targets(cx_worker_t *w, cx_msg_t *msg, const cx_session_t *origin)
{
    size_t n = w->ntargets;
    if (!n)
        return;
    for (size_t i = 0; i < n; i++)
        cx_flow_route(w, &w->targets[i], origin);
    /* Record QoS 1/2 deliveries to persistent sessions here, before anything is handed on,
     * so that the publisher's acknowledgement can wait for exactly these records. */
    if (cx_persist_on(w))
        for (size_t i = 0; i < n; i++)
            cx_persist_route(w, msg, &w->targets[i]);

    /* Other workers: into this turn's batch for each (cx_worker_flush_outbox). */
    int64_t now = (int64_t)cx_loop_now(w->loop);
    for (size_t i = 0; i < n; i++) {
        cx_target_t *t = &w->targets[i];
        size_t wi = t->session->worker->index;
        if (wi == w->index)
            continue;
        if (t->qos == 0 && !qos0_transit_add(t->session, msg, now)) {
            atomic_fetch_add_explicit(&w->ctr.msgs_dropped, 1, memory_order_relaxed);
            cx_free(t->sub_ids);
            cx_session_unref(t->session);
            t->session = NULL;
            continue;
        }
        if (!outbox_add(w, wi, msg, t)) {
            if (t->qos == 0)
                qos0_transit_done(t->session, msg);
            cx_log(CX_LOG_ERR, "Out of memory routing a message on %s.", msg->topic.p);
            cx_free(t->sub_ids);
            cx_session_unref(t->session);
        }
        t->session = NULL; /* owned by the batch now (or dropped) */
    }
    /* This worker: deliver now. */
    for (size_t i = 0; i < n; i++) {
        cx_target_t *t = &w->targets[i];
        if (!t->session || t->session->worker != w)
            continue;
        cx_session_deliver(msg, t);
        cx_free(t->sub_ids);
        cx_session_unref(t->session);
    }
    w->ntargets = 0;
}

size_t cx_route_publish(cx_worker_t *w, cx_msg_t *msg, const cx_session_t *origin)
{
    route_ctx_t rc = {.w = w, .msg = msg, .origin = origin};
    cx_flow_route_begin(w);
    w->ntargets = 0;
    w->route_seq++;
    cx_subtree_match(w->broker->subs, msg->topic, match_cb, pick_cb, &rc);
    if (rc.oom)
        cx_log(CX_LOG_ERR, "Out of memory: message on %s not delivered to every subscriber.",
               msg->topic.p);
    size_t n = w->ntargets;
    deliver_targets(w, msg, origin);
    return n;
}

bool cx_route_shared_redeliver(cx_worker_t *w, cx_session_t *leaving, cx_msg_t *msg,
                               uint8_t qos, uint32_t share_hash)
{
    route_ctx_t rc = {.w = w, .msg = msg, .exclude = leaving, .only_share = share_hash};
    cx_flow_route_begin(w);
    w->ntargets = 0;
    w->route_seq++;
    cx_subtree_match(w->broker->subs, msg->topic, match_cb, pick_cb, &rc);
    /* Keep the QoS it had been granted for the leaving member. */
    for (size_t i = 0; i < w->ntargets; i++)
        if (w->targets[i].qos > qos)
            w->targets[i].qos = qos;
    size_t n = w->ntargets;
    deliver_targets(w, msg, leaving);
    return n > 0;
}

void cx_route_deliver_post(cx_worker_t *w, cx_post_deliver_t *p)
{
    (void)w;
    for (size_t i = 0; i < p->count; i++) {
        cx_delivery_t *d = &p->items[i];
        cx_target_t *t = &d->t;
        if (t->qos == 0)
            qos0_transit_done(t->session, d->msg);
        cx_session_deliver(d->msg, t);
        cx_free(t->sub_ids);
        cx_session_unref(t->session);
        cx_msg_unref(d->msg);
    }
    cx_free(p);
}

void cx_route_retain(cx_worker_t *w, cx_msg_t *msg)
{
    cx_retain_t *r = w->broker->retained;
    bool clear = msg->payload.len == 0; /* [MQTT-3.3.1-6] */
    cx_persist_retain_lock(w->broker, true);
    int rc = cx_retain_set(r, msg->topic, clear ? NULL : msg);
    if (rc >= 0)
        cx_persist_retain(w, msg->topic, clear ? NULL : msg);
    cx_persist_retain_lock(w->broker, false);
}

typedef struct sweep_ctx {
    int64_t now;
    cx_msg_t **expired;
    size_t n, cap;
} sweep_ctx_t;

static void sweep_cb(void *ud, cx_str_t topic, void *value)
{
    sweep_ctx_t *sc = ud;
    cx_msg_t *m = value;
    if (!cx_msg_is_expired(m, sc->now))
        return;
    if (sc->n == sc->cap) {
        size_t cap = sc->cap ? sc->cap * 2 : 64;
        cx_msg_t **n = cx_realloc(sc->expired, cap * sizeof *n);
        if (!n)
            return; /* the next sweep gets it */
        sc->expired = n;
        sc->cap = cap;
    }
    sc->expired[sc->n++] = cx_msg_ref(m);
}

size_t cx_route_retain_sweep(cx_worker_t *w)
{
    cx_retain_t *r = w->broker->retained;
    sweep_ctx_t sc = {.now = (int64_t)cx_loop_now(w->loop)};
    /* Collect under the read lock, clear afterwards: the store cannot change while walked. */
    cx_retain_walk(r, sweep_cb, &sc);
    size_t cleared = 0;
    for (size_t i = 0; i < sc.n; i++) {
        cx_msg_t *m = sc.expired[i];
        cx_msg_t *cur = cx_retain_get(r, m->topic);
        if (cur == m) { /* not replaced meanwhile */
            cx_retain_set(r, m->topic, NULL);
            cleared++;
        }
        if (cur)
            cx_msg_unref(cur);
        cx_msg_unref(m);
    }
    cx_free(sc.expired);
    return cleared;
}
