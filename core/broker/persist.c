/* persist.c: the records the broker writes about its state, the acknowledgements that wait
 * for them under `persistence_sync always`, snapshots, and start-up/shutdown.
 *
 * What is recorded, and by whom (persist.h has the generation scheme):
 *   retained set/clear         the worker that handled the PUBLISH, under retain_lock
 *   session put/drop           the session's worker (CONNECT, disconnect, end, clean start)
 *   subscription put/del       the session's worker (SUBSCRIBE, UNSUBSCRIBE)
 *   message + queue entry      the worker that matched the PUBLISH (cx_persist_route), so
 *                              that its publisher's PUBACK can wait for them
 *   queue entry state/done     the session's worker (sent, PUBREC, acknowledged, dropped)
 *   incoming QoS 2 ids         the session's worker
 * Messages are never deleted one by one: a message that no live queue entry names is
 * garbage, ignored by restore and dropped by the next snapshot. */
#include "persist.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "broker/client_int.h"
#include "broker/persist_int.h"
#include "broker/persist_rec.h"
#include "broker/worker.h"
#include "store/store.h"
#include "util/alloc.h"
#include "util/log.h"
#include "util/time.h"

/* A store whose directory is missing at start is looked for again this often. */
#define OPEN_RETRY_MS 5000

/* An acknowledgement held until the records before it are durable: a PUBACK, PUBREC or
 * PUBCOMP by its fields, or a SUBACK/UNSUBACK as encoded bytes (type 0). */
typedef struct cx_held_ack {
    cx_client_t *cl; /* NULL once the client went away */
    uint64_t seq;
    uint8_t *pkt;
    uint32_t pkt_len;
    uint16_t pid;
    uint8_t type;
    uint8_t rc;
} cx_held_ack_t;

/* --- emitting records --- */

static bool recording(const cx_persist_t *p)
{
    return p && !atomic_load_explicit(&p->frozen, memory_order_relaxed);
}

static void store_failed(cx_persist_t *p, int rc)
{
    if (atomic_exchange(&p->failed_logged, true))
        return;
    cx_log(CX_LOG_ERR,
           "persistence: cannot write %s: %s. Serving from memory; changes are not durable "
           "until the store recovers (retried every 10 s)%s.",
           p->path ? p->path : "the store", cx_strerror(rc),
           p->always ? "; QoS 1 and 2 PUBLISH are refused meanwhile (persistence_sync always)"
                     : "");
}

/* Sends one record to the store and to plugins that observe persistence. */
static void emit(cx_persist_t *p, uint64_t *wseq, culex_ev_persist *ev, cx_str_t key,
                 cx_str_t val)
{
    if (p->store) {
        uint64_t seq = 0;
        int rc = ev->deleted ? cx_store_del(p->store, (uint8_t)ev->kind, key, &seq)
                             : cx_store_put(p->store, (uint8_t)ev->kind, key, val, &seq);
        if (rc != CX_OK)
            store_failed(p, rc);
        else if (wseq && seq > *wseq)
            *wseq = seq;
    }
    if (p->plugin_events) {
        ev->size = sizeof *ev;
        ev->key = key.p;
        ev->key_len = key.len;
        ev->value = ev->deleted ? NULL : val.p;
        ev->value_len = ev->deleted ? 0 : val.len;
        cx_phost_notify_all(p->b->plugins, CULEX_EV_PERSIST, ev);
    }
}

static uint64_t next_id(atomic_uint_fast64_t *ctr)
{
    return atomic_fetch_add_explicit(ctr, 1, memory_order_relaxed);
}

/* The message's store id; the first caller assigns it and writes the MSG record. */
static uint64_t msg_id(cx_persist_t *p, cx_worker_t *w, cx_msg_t *m, int64_t now_mono)
{
    uint_fast64_t id = atomic_load_explicit(&m->store_id, memory_order_acquire);
    if (id)
        return id;
    uint_fast64_t fresh = next_id(&p->next_msg_id);
    if (!atomic_compare_exchange_strong(&m->store_id, &id, fresh))
        return id; /* another worker won; it writes the record */
    cx_penc_t k, v;
    cx_penc_init(&k);
    cx_penc_init(&v);
    cx_prec_key_msg(&k, fresh);
    cx_prec_msg(&v, m, now_mono, cx_time_wall_ms());
    if (k.oom || v.oom) {
        store_failed(p, CX_ENOMEM);
    } else {
        culex_ev_persist ev = {.kind = CULEX_PERSIST_MSG,
                               .topic = (const char *)m->topic.p,
                               .payload = m->payload.p,
                               .payload_len = m->payload.len,
                               .msg_id = fresh,
                               .qos = m->qos};
        emit(p, w ? &w->persist_seq : NULL, &ev, cx_penc_str(&k), cx_penc_str(&v));
    }
    cx_penc_free(&k);
    cx_penc_free(&v);
    return fresh;
}

/* $SYS is the broker's own, rebuilt every sys_interval: never worth a record. */
static bool is_sys(cx_str_t topic)
{
    return cx_str_has_prefix(topic, "$SYS");
}

void cx_persist_retain(cx_worker_t *w, cx_str_t topic, const cx_msg_t *msg)
{
    cx_persist_t *p = w->broker->persist;
    if (!recording(p) || is_sys(topic))
        return;
    cx_penc_t v;
    cx_penc_init(&v);
    culex_ev_persist ev = {.kind = CULEX_PERSIST_RETAIN, .deleted = msg == NULL,
                           .topic = (const char *)topic.p};
    if (msg) {
        cx_prec_msg(&v, msg, (int64_t)cx_loop_now(w->loop), cx_time_wall_ms());
        ev.payload = msg->payload.p;
        ev.payload_len = msg->payload.len;
        ev.qos = msg->qos;
    }
    if (v.oom)
        store_failed(p, CX_ENOMEM);
    else
        emit(p, &w->persist_seq, &ev, topic, cx_penc_str(&v));
    cx_penc_free(&v);
}

void cx_persist_retain_lock(cx_broker_t *b, bool lock)
{
    if (b->persist) {
        if (lock)
            pthread_mutex_lock(&b->persist->retain_lock);
        else
            pthread_mutex_unlock(&b->persist->retain_lock);
    }
}

static void put_session_rec(cx_persist_t *p, cx_session_t *s, uint64_t gen)
{
    cx_worker_t *w = s->worker;
    int64_t now_mono = (int64_t)cx_loop_now(w->loop);
    cx_prec_session_t rec = {
        .protocol = s->version,
        .expiry = s->expiry_interval,
        .gen = gen,
        .disconnected_wall =
            s->client ? 0 : cx_time_wall_ms() - (now_mono - s->disconnected_at_ms),
    };
    cx_penc_t v;
    cx_penc_init(&v);
    cx_prec_session(&v, &rec);
    culex_ev_persist ev = {.kind = CULEX_PERSIST_SESSION, .client_id = s->client_id,
                           .generation = gen};
    emit(p, &w->persist_seq, &ev, (cx_str_t){(const uint8_t *)s->client_id, s->client_id_len},
         cx_penc_str(&v));
    cx_penc_free(&v);
}

void cx_persist_session(cx_session_t *s)
{
    cx_persist_t *p = s->worker->broker->persist;
    if (!recording(p) || s->dead)
        return;
    if (s->expiry_interval == 0) {
        cx_persist_session_drop(s);
        return;
    }
    uint64_t gen = atomic_load_explicit(&s->store_gen, memory_order_relaxed);
    bool fresh = gen == 0;
    if (fresh) {
        gen = next_id(&p->next_gen);
        atomic_store_explicit(&s->store_gen, gen, memory_order_release);
    }
    put_session_rec(p, s, gen);
    if (!fresh)
        return;
    /* A session that becomes persistent with state already in it (a takeover raising the
     * expiry): record that state under the new generation. */
    for (size_t i = 0; i < s->nsubs; i++)
        cx_persist_sub(s, &s->subs[i], false);
    cx_list_t *heads[2] = {&s->inflight, &s->queue};
    for (int h = 0; h < 2; h++) {
        cx_list_t *it;
        cx_list_foreach(it, heads[h]) cx_persist_entry(s, cx_container_of(it, cx_qentry_t, link));
    }
    for (size_t i = 0; i < s->qos2_in_count; i++)
        cx_persist_qos2_in(s, s->qos2_in[i], false);
}

void cx_persist_session_drop(cx_session_t *s)
{
    cx_persist_t *p = s->worker->broker->persist;
    uint64_t gen = atomic_load_explicit(&s->store_gen, memory_order_relaxed);
    if (!recording(p) || !gen)
        return;
    atomic_store_explicit(&s->store_gen, 0, memory_order_release);
    culex_ev_persist ev = {.kind = CULEX_PERSIST_SESSION, .deleted = true,
                           .client_id = s->client_id, .generation = gen};
    emit(p, &s->worker->persist_seq, &ev,
         (cx_str_t){(const uint8_t *)s->client_id, s->client_id_len}, CX_STR_NULL);
}

void cx_persist_sub(cx_session_t *s, const cx_sess_sub_t *ss, bool removed)
{
    cx_persist_t *p = s->worker->broker->persist;
    uint64_t gen = atomic_load_explicit(&s->store_gen, memory_order_relaxed);
    if (!recording(p) || !gen)
        return;
    cx_penc_t k, v;
    cx_penc_init(&k);
    cx_penc_init(&v);
    cx_str_t group = ss->group ? cx_str_from_cstr(ss->group) : CX_STR_NULL;
    cx_prec_key_sub(&k, gen, group, cx_str_from_cstr(ss->filter));
    if (!removed)
        cx_prec_sub(&v, &ss->opts);
    culex_ev_persist ev = {.kind = CULEX_PERSIST_SUB, .deleted = removed, .topic = ss->filter,
                           .generation = gen, .qos = ss->opts.qos};
    if (k.oom || v.oom)
        store_failed(p, CX_ENOMEM);
    else
        emit(p, &s->worker->persist_seq, &ev, cx_penc_str(&k), cx_penc_str(&v));
    cx_penc_free(&k);
    cx_penc_free(&v);
}

static void put_queue_rec(cx_persist_t *p, uint64_t *wseq, uint64_t gen, uint64_t id,
                          const cx_prec_queue_t *q)
{
    cx_penc_t k, v;
    cx_penc_init(&k);
    cx_penc_init(&v);
    cx_prec_key_queue(&k, gen, id);
    cx_prec_queue(&v, q);
    culex_ev_persist ev = {.kind = CULEX_PERSIST_QUEUE, .generation = gen, .msg_id = id,
                           .packet_id = q->packet_id, .qos = q->qos};
    if (k.oom || v.oom)
        store_failed(p, CX_ENOMEM);
    else
        emit(p, wseq, &ev, cx_penc_str(&k), cx_penc_str(&v));
    cx_penc_free(&k);
    cx_penc_free(&v);
}

static void del_queue_rec(cx_persist_t *p, uint64_t *wseq, uint64_t gen, uint64_t id)
{
    cx_penc_t k;
    cx_penc_init(&k);
    cx_prec_key_queue(&k, gen, id);
    culex_ev_persist ev = {.kind = CULEX_PERSIST_QUEUE, .deleted = true, .generation = gen,
                           .msg_id = id};
    emit(p, wseq, &ev, cx_penc_str(&k), CX_STR_NULL);
    cx_penc_free(&k);
}

void cx_persist_route(cx_worker_t *w, cx_msg_t *msg, cx_target_t *t)
{
    cx_persist_t *p = w->broker->persist;
    t->store_gen = 0;
    t->store_order = 0;
    if (!recording(p) || t->qos == 0)
        return;
    uint64_t gen = atomic_load_explicit(&t->session->store_gen, memory_order_acquire);
    if (!gen)
        return;
    uint64_t id = msg_id(p, w, msg, (int64_t)cx_loop_now(w->loop));
    cx_prec_queue_t q = {.qos = t->qos,
                         .retain = t->retain,
                         .state = CX_QE_QUEUED,
                         .order = next_id(&p->next_order),
                         .share_hash = t->share_hash,
                         .nsub = t->nsub,
                         .sub_ids = t->nsub > 1 ? t->sub_ids : &t->sub_id};
    put_queue_rec(p, &w->persist_seq, gen, id, &q);
    t->store_gen = gen;
    t->store_order = q.order;
}

/* The QUEUE value of a queue entry as it stands. */
static cx_prec_queue_t queue_rec_of(const cx_qentry_t *e)
{
    return (cx_prec_queue_t){.qos = e->qos,
                             .retain = e->retain,
                             .state = e->state,
                             .packet_id = e->state == CX_QE_QUEUED ? 0 : e->packet_id,
                             .order = e->store_order,
                             .share_hash = e->share_hash,
                             .nsub = e->nsub_ids,
                             .sub_ids = e->sub_ids};
}

void cx_persist_entry(cx_session_t *s, cx_qentry_t *e)
{
    cx_persist_t *p = s->worker->broker->persist;
    uint64_t gen = atomic_load_explicit(&s->store_gen, memory_order_relaxed);
    if (!recording(p) || !gen || e->qos == 0)
        return;
    if (e->store_gen != gen) {
        e->store_gen = gen; /* not recorded for this generation yet */
        e->store_order = next_id(&p->next_order);
    } else if (e->qos == 1 && e->state == CX_QE_WAIT_ACK) {
        /* A QoS 1 message is simply sent again after a restart, under any packet id: its
         * queued record is enough, and the busiest path writes one record fewer. */
        return;
    }
    uint64_t id = msg_id(p, s->worker, e->msg, (int64_t)cx_loop_now(s->worker->loop));
    cx_prec_queue_t q = queue_rec_of(e);
    put_queue_rec(p, &s->worker->persist_seq, gen, id, &q);
}

void cx_persist_entry_done(cx_session_t *s, cx_qentry_t *e)
{
    cx_persist_t *p = s->worker->broker->persist;
    if (!recording(p) || !e->store_gen)
        return;
    uint64_t id = atomic_load_explicit(&e->msg->store_id, memory_order_acquire);
    if (id)
        del_queue_rec(p, &s->worker->persist_seq, e->store_gen, id);
    e->store_gen = 0;
}

void cx_persist_routed_dropped(cx_session_t *s, cx_msg_t *msg, uint64_t store_gen)
{
    cx_persist_t *p = s->worker->broker->persist;
    if (!recording(p) || !store_gen)
        return;
    uint64_t id = atomic_load_explicit(&msg->store_id, memory_order_acquire);
    if (id)
        del_queue_rec(p, &s->worker->persist_seq, store_gen, id);
}

void cx_persist_qos2_in(cx_session_t *s, uint16_t pid, bool released)
{
    cx_persist_t *p = s->worker->broker->persist;
    uint64_t gen = atomic_load_explicit(&s->store_gen, memory_order_relaxed);
    if (!recording(p) || !gen)
        return;
    cx_penc_t k;
    cx_penc_init(&k);
    cx_prec_key_qos2(&k, gen, pid);
    culex_ev_persist ev = {.kind = CULEX_PERSIST_QOS2IN, .deleted = released, .generation = gen,
                           .packet_id = pid};
    emit(p, &s->worker->persist_seq, &ev, cx_penc_str(&k), CX_STR_NULL);
    cx_penc_free(&k);
}

/* --- acknowledgements under `always` --- */

bool cx_persist_accepting(cx_worker_t *w)
{
    cx_persist_t *p = w->broker->persist;
    if (!p || !p->always)
        return true;
    int st = p->store ? cx_store_status(p->store) : CX_EIO;
    if (st != CX_OK && p->store)
        store_failed(p, st);
    return st == CX_OK;
}

/* True when an acknowledgement to cl must wait: `always`, and either something this worker
 * recorded is not durable yet or an earlier acknowledgement to cl is still waiting. */
static bool must_hold(cx_client_t *cl)
{
    cx_worker_t *w = cl->worker;
    cx_persist_t *p = w->broker->persist;
    return p && p->always && p->store &&
           (cl->nheld || w->persist_seq > cx_store_durable(p->store));
}

static bool held_push(cx_client_t *cl, cx_held_ack_t h)
{
    cx_worker_t *w = cl->worker;
    if (w->held_len == w->held_cap) {
        size_t cap = w->held_cap ? w->held_cap * 2 : 64;
        cx_held_ack_t *n = cx_malloc(cap * sizeof *n);
        if (!n) {
            cx_client_fail_oom(cl);
            return false;
        }
        for (size_t i = 0; i < w->held_len; i++)
            n[i] = w->held[(w->held_head + i) % w->held_cap];
        cx_free(w->held);
        w->held = n;
        w->held_head = 0;
        w->held_cap = cap;
    }
    h.cl = cl;
    h.seq = w->persist_seq;
    w->held[(w->held_head + w->held_len) % w->held_cap] = h;
    w->held_len++;
    cl->nheld++;
    return true;
}

void cx_persist_ack(cx_client_t *cl, cx_mqtt_type type, uint16_t pid, uint8_t rc)
{
    if (!must_hold(cl)) {
        cx_client_send_ack(cl, type, pid, rc);
        return;
    }
    held_push(cl, (cx_held_ack_t){.pid = pid, .type = (uint8_t)type, .rc = rc});
}

void cx_persist_hold_output(cx_client_t *cl, size_t before)
{
    if (!must_hold(cl)) {
        cx_client_sent(cl, before);
        return;
    }
    /* Take the packet just encoded back out of the output buffer, to send it later. */
    cx_buf_t *out = cx_client_outbuf(cl);
    size_t len = cx_buf_used(out) - before;
    uint8_t *pkt = cx_malloc(len ? len : 1);
    if (!pkt) {
        cx_client_fail_oom(cl);
        return;
    }
    memcpy(pkt, cx_buf_head(out) + before, len);
    out->len = out->off + before;
    if (!held_push(cl, (cx_held_ack_t){.pkt = pkt, .pkt_len = (uint32_t)len}))
        cx_free(pkt);
}

static void send_held_packet(cx_client_t *cl, const cx_held_ack_t *h)
{
    cx_buf_t *out = cx_client_outbuf(cl);
    size_t before = cx_buf_used(out);
    if (cx_buf_append(out, h->pkt, h->pkt_len) != CX_OK)
        cx_client_fail_oom(cl);
    else
        cx_client_sent(cl, before);
}

static void release_front(cx_worker_t *w, bool failed)
{
    cx_held_ack_t h = w->held[w->held_head];
    w->held_head = (w->held_head + 1) % w->held_cap;
    w->held_len--;
    cx_client_t *cl = h.cl;
    if (!cl) {
        cx_free(h.pkt);
        return;
    }
    cl->nheld--;
    if (h.pkt) {
        /* SUBACK/UNSUBACK: the subscription works from memory either way; if the store
         * failed, it is simply not durable (only QoS 1/2 PUBLISH is refused). */
        send_held_packet(cl, &h);
        cx_free(h.pkt);
        return;
    }
    if (failed && h.type != CX_MQTT_PUBCOMP) {
        /* Not durable and never will be: the publisher must not believe it is. MQTT 5 can
         * say so; a 3.x client can only be disconnected (it sends the message again). */
        if (cl->version == CX_MQTT_V5)
            cx_client_send_ack(cl, (cx_mqtt_type)h.type, h.pid, CX_RC_UNSPECIFIED);
        else if (cl->state == CX_CL_CONNECTED)
            cx_client_disconnect(cl, CX_RC_UNSPECIFIED, "persistence failed");
        return;
    }
    cx_client_send_ack(cl, (cx_mqtt_type)h.type, h.pid, h.rc);
}

void cx_persist_on_durable(cx_worker_t *w)
{
    atomic_store(&w->durable_posted, false);
    cx_persist_t *p = w->broker->persist;
    while (w->held_len && p->store) {
        uint64_t durable = cx_store_durable(p->store);
        while (w->held_len && w->held[w->held_head].seq <= durable)
            release_front(w, false);
        /* Publish what we wait for, then look again: the writer reads held_wait after
         * advancing durable, we read durable after writing held_wait, so one of the two
         * sees the other and no wake-up is lost. */
        atomic_store(&w->held_wait, w->held_len ? w->held[w->held_head].seq : 0);
        if (!w->held_len || cx_store_durable(p->store) < w->held[w->held_head].seq)
            break;
    }
    if (!w->held_len)
        atomic_store(&w->held_wait, 0);
}

void cx_persist_tick(cx_worker_t *w)
{
    cx_persist_t *p = w->broker->persist;
    if (!p || !p->always || !w->held_len || (p->store && cx_store_status(p->store) == CX_OK))
        return;
    while (w->held_len)
        release_front(w, true);
    atomic_store(&w->held_wait, 0);
}

void cx_persist_forget_client(cx_client_t *cl)
{
    cx_worker_t *w = cl->worker;
    for (size_t i = 0; cl->nheld && i < w->held_len; i++) {
        cx_held_ack_t *h = &w->held[(w->held_head + i) % w->held_cap];
        if (h->cl == cl) {
            h->cl = NULL;
            cl->nheld--;
        }
    }
}

void cx_persist_worker_free(cx_worker_t *w)
{
    for (size_t i = 0; i < w->held_len; i++)
        cx_free(w->held[(w->held_head + i) % w->held_cap].pkt);
    cx_free(w->held);
    w->held = NULL;
    w->held_len = w->held_cap = w->held_head = 0;
}

/* Writer thread: wake the workers whose oldest held acknowledgement is now durable. */
static void on_durable(void *ud, uint64_t durable)
{
    cx_broker_t *b = ud;
    if (atomic_load(&b->shutting_down))
        return;
    for (size_t i = 0; i < b->nworkers; i++) {
        cx_worker_t *w = &b->workers[i];
        uint64_t waiting = atomic_load(&w->held_wait);
        if (!waiting || waiting > durable || atomic_exchange(&w->durable_posted, true))
            continue;
        cx_post_t *post = cx_malloc(sizeof *post);
        if (!post) {
            atomic_store(&w->durable_posted, false); /* the next commit tries again */
            continue;
        }
        post->kind = CX_POST_DURABLE;
        cx_loop_post(w->loop, post);
    }
}

/* --- snapshots --- */

typedef struct snap_ctx {
    cx_persist_t *p;
    cx_store_log_compactor_t *c;
    cx_u64map_t written; /* message ids already in the snapshot */
    int64_t now_mono, now_wall;
    int rc;
    size_t records;
} snap_ctx_t;

static void snap_put(snap_ctx_t *sc, uint8_t kind, cx_str_t key, const cx_penc_t *v)
{
    if (sc->rc != CX_OK)
        return;
    if (v && v->oom) {
        sc->rc = CX_ENOMEM;
        return;
    }
    cx_str_t val = v ? cx_penc_str(v) : CX_STR_NULL;
    sc->rc = cx_store_log_compact_put(sc->c, kind, key.p, key.len, val.p, val.len);
    sc->records++;
}

static void snap_retained(void *ud, cx_str_t topic, void *value)
{
    snap_ctx_t *sc = ud;
    const cx_msg_t *m = value;
    if (cx_msg_is_expired(m, sc->now_mono) || is_sys(topic))
        return;
    cx_penc_t v;
    cx_penc_init(&v);
    cx_prec_msg(&v, m, sc->now_mono, sc->now_wall);
    snap_put(sc, CX_REC_RETAIN, topic, &v);
    cx_penc_free(&v);
}

static void snap_entry(snap_ctx_t *sc, cx_session_t *s, uint64_t gen, cx_qentry_t *e)
{
    cx_persist_t *p = sc->p;
    if (e->qos == 0 || cx_msg_is_expired(e->msg, sc->now_mono))
        return;
    uint64_t id = atomic_load(&e->msg->store_id);
    if (!id) {
        id = next_id(&p->next_msg_id);
        atomic_store(&e->msg->store_id, id);
    }
    cx_penc_t k, v;
    cx_penc_init(&k);
    cx_penc_init(&v);
    if (!cx_u64map_get(&sc->written, id)) {
        if (cx_u64map_put(&sc->written, id, e->msg) != CX_OK) {
            sc->rc = CX_ENOMEM;
            return;
        }
        cx_prec_key_msg(&k, id);
        cx_prec_msg(&v, e->msg, sc->now_mono, sc->now_wall);
        snap_put(sc, CX_REC_MSG, cx_penc_str(&k), &v);
        cx_penc_free(&k);
        cx_penc_free(&v);
    }
    if (e->store_gen != gen) {
        e->store_gen = gen;
        e->store_order = next_id(&p->next_order);
    }
    cx_prec_queue_t q = queue_rec_of(e);
    cx_prec_key_queue(&k, gen, id);
    cx_prec_queue(&v, &q);
    snap_put(sc, CX_REC_QUEUE, cx_penc_str(&k), &v);
    cx_penc_free(&k);
    cx_penc_free(&v);
}

static void snap_session(snap_ctx_t *sc, cx_session_t *s)
{
    uint64_t gen = atomic_load(&s->store_gen);
    if (!gen || s->dead)
        return;
    cx_prec_session_t rec = {
        .protocol = s->version,
        .expiry = s->expiry_interval,
        .gen = gen,
        .disconnected_wall =
            s->client ? 0 : sc->now_wall - (sc->now_mono - s->disconnected_at_ms),
    };
    cx_penc_t k, v;
    cx_penc_init(&k);
    cx_penc_init(&v);
    cx_prec_session(&v, &rec);
    snap_put(sc, CX_REC_SESSION, (cx_str_t){(const uint8_t *)s->client_id, s->client_id_len},
             &v);
    cx_penc_free(&v);
    for (size_t i = 0; i < s->nsubs; i++) {
        const cx_sess_sub_t *ss = &s->subs[i];
        cx_prec_key_sub(&k, gen, ss->group ? cx_str_from_cstr(ss->group) : CX_STR_NULL,
                        cx_str_from_cstr(ss->filter));
        cx_prec_sub(&v, &ss->opts);
        snap_put(sc, CX_REC_SUB, cx_penc_str(&k), &v);
        cx_penc_free(&k);
        cx_penc_free(&v);
    }
    cx_list_t *heads[2] = {&s->inflight, &s->queue};
    for (int h = 0; h < 2; h++) {
        cx_list_t *it;
        cx_list_foreach(it, heads[h]) snap_entry(sc, s, gen, cx_container_of(it, cx_qentry_t, link));
    }
    for (size_t i = 0; i < s->qos2_in_count; i++) {
        cx_prec_key_qos2(&k, gen, s->qos2_in[i]);
        snap_put(sc, CX_REC_QOS2IN, cx_penc_str(&k), NULL);
        cx_penc_free(&k);
    }
}

/* A delivery routing recorded that has not reached its session's queue yet (in the routing
 * worker's outbox, or in the target worker's inbox): the snapshot must keep its records, or
 * the publisher's acknowledgement would outlive them. */
static void snap_in_transit(snap_ctx_t *sc, const cx_post_deliver_t *p)
{
    for (size_t i = 0; p && i < p->count && sc->rc == CX_OK; i++) {
        const cx_target_t *t = &p->items[i].t;
        cx_session_t *s = t->session;
        if (!t->store_gen || s->dead || atomic_load(&s->store_gen) != t->store_gen)
            continue;
        size_t nsub = t->nsub;
        cx_qentry_t *e = cx_malloc(sizeof *e + nsub * sizeof(uint32_t));
        if (!e) {
            sc->rc = CX_ENOMEM;
            return;
        }
        *e = (cx_qentry_t){.msg = p->items[i].msg,
                           .qos = t->qos,
                           .retain = t->retain,
                           .share_hash = t->share_hash,
                           .state = CX_QE_QUEUED,
                           .store_gen = t->store_gen,
                           .store_order = t->store_order,
                           .nsub_ids = (uint16_t)nsub};
        if (nsub)
            memcpy(e->sub_ids, nsub > 1 ? t->sub_ids : &t->sub_id, nsub * sizeof(uint32_t));
        snap_entry(sc, s, t->store_gen, e);
        cx_free(e);
    }
}

static void snap_inbox_post(void *ud, cx_post_t *post)
{
    if (post->kind == CX_POST_DELIVER)
        snap_in_transit(ud, (const cx_post_deliver_t *)post);
}

static int snap_live(void *ud, cx_store_log_compactor_t *c)
{
    snap_ctx_t *sc = ud;
    sc->c = c;
    cx_broker_t *b = sc->p->b;
    cx_retain_walk(b->retained, snap_retained, sc);
    for (size_t i = 0; i < b->nworkers && sc->rc == CX_OK; i++) {
        cx_worker_t *w = &b->workers[i];
        for (size_t k = 0; w->outbox && k < b->nworkers; k++)
            snap_in_transit(sc, w->outbox[k]);
        if (w->loop)
            cx_loop_inbox_walk(w->loop, snap_inbox_post, sc);
    }
    for (size_t i = 0; i < b->nworkers && sc->rc == CX_OK; i++) {
        cx_list_t *it;
        cx_list_foreach(it, &b->workers[i].sessions)
        {
            snap_session(sc, cx_container_of(it, cx_session_t, worker_link));
            if (sc->rc != CX_OK)
                break;
        }
    }
    return sc->rc;
}

/* Writes the whole live state. Every worker must be parked (or stopped, or not started). */
static int snapshot(cx_persist_t *p)
{
    int64_t t0 = (int64_t)cx_time_mono_ms();
    snap_ctx_t sc = {.p = p, .now_mono = t0, .now_wall = cx_time_wall_ms()};
    cx_u64map_init(&sc.written);
    int rc = cx_store_snapshot(p->store, snap_live, &sc, t0);
    cx_u64map_free(&sc.written);
    int64_t ms = (int64_t)cx_time_mono_ms() - t0;
    if (rc == CX_OK) {
        if (atomic_exchange(&p->failed_logged, false))
            cx_log(CX_LOG_NOTICE, "persistence: %s is writable again.", p->path);
        cx_log(CX_LOG_INFO, "persistence: wrote a snapshot of %zu records to %s in %" PRId64 " ms.",
               sc.records, p->path, ms);
    } else {
        cx_log(CX_LOG_ERR, "persistence: writing a snapshot to %s failed: %s.", p->path,
               cx_strerror(rc));
    }
    return rc;
}

static int snapshot_parked(cx_broker_t *b, void *ud)
{
    (void)ud;
    return snapshot(b->persist);
}

void cx_persist_save(cx_broker_t *b)
{
    cx_persist_t *p = b->persist;
    if (!p || !p->store) {
        cx_log(CX_LOG_NOTICE, "SIGUSR1: persistence is off; nothing to save.");
        return;
    }
    cx_broker_parked(b, snapshot_parked, NULL);
}

static int count_records(void *ud, uint8_t kind, bool del, cx_str_t key, cx_str_t val)
{
    (void)kind, (void)del, (void)key, (void)val;
    (*(size_t *)ud)++;
    return CX_OK;
}

/* With the workers parked: the store's directory may exist now. */
static int retry_open(cx_broker_t *b, void *ud)
{
    (void)ud;
    cx_persist_t *p = b->persist;
    size_t found = 0;
    int rc = CX_OK;
    cx_store_t *s = cx_store_open(&p->opts, count_records, &found, NULL, &rc);
    if (!s)
        return rc;
    if (found) {
        /* Someone else put a store there meanwhile: not ours to overwrite. */
        cx_store_close(s);
        cx_log(CX_LOG_ERR, "persistence: %s appeared with %zu records while culex was "
                           "running; it is left alone. Restart culex to load it.", p->path, found);
        p->open_retry = false;
        return CX_EEXIST;
    }
    p->store = s;
    p->open_retry = false;
    /* What changed while there was no store goes in first; only then is it durable. */
    rc = snapshot(p);
    if (rc == CX_OK)
        cx_log(CX_LOG_NOTICE, "persistence: %s is open; the state is durable from now on.",
               p->path);
    return rc;
}

void cx_persist_maintain(cx_broker_t *b)
{
    cx_persist_t *p = b->persist;
    if (p && p->open_retry) {
        int64_t now = (int64_t)cx_time_mono_ms();
        if (now - p->last_open_try_ms >= OPEN_RETRY_MS) {
            p->last_open_try_ms = now;
            cx_broker_parked(b, retry_open, NULL);
        }
        return;
    }
    if (!p || !p->store)
        return;
    int st = cx_store_status(p->store);
    if (st != CX_OK)
        store_failed(p, st); /* the writer failed between two appends: say it once */
    if (cx_store_snapshot_due(p->store, (int64_t)cx_time_mono_ms()))
        cx_broker_parked(b, snapshot_parked, NULL);
}

/* --- start-up and shutdown --- */

static char *store_path(const cx_config_t *cfg)
{
    const char *dir = cfg->persistence_location ? cfg->persistence_location : "";
    const char *file = cfg->persistence_file ? cfg->persistence_file : CX_PERSIST_DEFAULT_FILE;
    size_t dl = strlen(dir), fl = strlen(file);
    bool slash = dl && dir[dl - 1] != '/';
    char *path = cx_malloc(dl + slash + fl + 1);
    if (!path)
        return NULL;
    memcpy(path, dir, dl);
    if (slash)
        path[dl] = '/';
    memcpy(path + dl + slash, file, fl + 1);
    return path;
}

/* Mosquitto users keep `persistence_location` and with it Mosquitto's own file: say that it
 * is not read, so that nobody believes their retained messages came along. */
static void warn_mosquitto_db(const cx_config_t *cfg, const char *path)
{
    if (cfg->persistence_file)
        return;
    const char *dir = cfg->persistence_location ? cfg->persistence_location : "";
    size_t dl = strlen(dir);
    char mpath[4096];
    int n = snprintf(mpath, sizeof mpath, "%s%smosquitto.db", dir,
                     dl && dir[dl - 1] != '/' ? "/" : "");
    struct stat st;
    if (n > 0 && (size_t)n < sizeof mpath && stat(mpath, &st) == 0)
        cx_log(CX_LOG_WARNING,
               "persistence: %s (Mosquitto's database) is not read by culex; its retained "
               "messages and sessions are not restored. culex keeps its own store in %s.",
               mpath, path);
}

static int restore_put(void *ctx, int kind, const void *key, size_t klen, const void *val,
                       size_t vlen)
{
    if (kind <= 0 || kind > CX_REC_KIND_MAX)
        return -1;
    return cx_prestore_record(ctx, (uint8_t)kind, false, (cx_str_t){key, klen},
                              (cx_str_t){val, vlen}) == CX_OK
               ? 0
               : -1;
}

static int replay_cb(void *ud, uint8_t kind, bool del, cx_str_t key, cx_str_t val)
{
    return cx_prestore_record(ud, kind, del, key, val);
}

static void persist_free(cx_persist_t *p)
{
    if (!p)
        return;
    pthread_mutex_destroy(&p->retain_lock);
    cx_free(p->path);
    cx_free(p);
}

int cx_persist_open(cx_broker_t *b, char *err, size_t errlen)
{
    const cx_config_t *cfg = b->cfg;
    bool plugin_store = cx_phost_has(b->plugins, CULEX_EV_PERSIST_RESTORE);
    bool plugin_events = cx_phost_has(b->plugins, CULEX_EV_PERSIST);
    if (!cfg->persistence && !plugin_store && !plugin_events)
        return CX_OK;
    cx_persist_t *p = cx_calloc(1, sizeof *p);
    if (!p)
        return CX_ENOMEM;
    p->b = b;
    p->plugin_events = plugin_events;
    pthread_mutex_init(&p->retain_lock, NULL);
    atomic_init(&p->frozen, false);
    atomic_init(&p->failed_logged, false);
    int64_t t0 = (int64_t)cx_time_mono_ms();
    cx_prestore_t *r = cx_prestore_new(b);
    if (!r) {
        persist_free(p);
        return CX_ENOMEM;
    }
    int rc = CX_OK;
    cx_store_recovery_t rec;
    memset(&rec, 0, sizeof rec);
    if (plugin_store) {
        culex_ev_persist_restore ev = {.size = sizeof ev, .ctx = r, .put = restore_put};
        rc = cx_phost_restore(b->plugins, &ev);
        if (rc) {
            snprintf(err, errlen, "persistence: a store plugin could not restore its state");
            goto fail;
        }
        if (cfg->persistence)
            cx_log(CX_LOG_NOTICE, "persistence: a store plugin is loaded; culex's own store is "
                                  "not used.");
    } else if (cfg->persistence) {
        p->path = store_path(cfg);
        if (!p->path) {
            rc = CX_ENOMEM;
            goto fail;
        }
        warn_mosquitto_db(cfg, p->path);
        cx_store_opts_t so = {.path = p->path,
                              .sync = (cx_store_sync_t)cfg->persistence_sync,
                              .batch_ms = (unsigned)cfg->persistence_batch_ms,
                              .autosave_interval = cfg->autosave_interval,
                              .autosave_on_changes = cfg->autosave_on_changes,
                              .on_durable = on_durable,
                              .ud = b};
        p->opts = so;
        p->always = so.sync == CX_STORE_SYNC_ALWAYS;
        p->store = cx_store_open(&so, replay_cb, r, &rec, &rc);
        if (!p->store && rc == -ENOENT) {
            /* Mosquitto starts without its directory (and fails at its first save): so do
             * we, loudly, and open the store as soon as the directory appears. */
            cx_log(CX_LOG_ERR,
                   "persistence: the directory of %s does not exist. Serving from memory; "
                   "nothing is durable until it exists (checked every 5 s)%s.",
                   p->path,
                   p->always ? "; QoS 1 and 2 PUBLISH are refused meanwhile" : "");
            p->open_retry = true;
            p->last_open_try_ms = t0;
        } else if (!p->store) {
            if (rec.mosquitto_db)
                snprintf(err, errlen,
                         "persistence: %s is a Mosquitto database, which culex cannot read; it "
                         "was left untouched. Move it away or set persistence_file to another "
                         "name.",
                         p->path);
            else if (rc == CX_EFORMAT)
                snprintf(err, errlen,
                         "persistence: %s is not a culex store; it was left untouched. Move it "
                         "away or set persistence_file to another name.",
                         p->path);
            else
                snprintf(err, errlen, "persistence: cannot open %s: %s%s%s%s", p->path,
                         cx_strerror(rc), rc == -EACCES ? " (culex runs as user '" : "",
                         rc == -EACCES ? cfg->user : "",
                         rc == -EACCES ? "' once started: that user needs to write there)"
                                       : "");
            goto fail;
        }
    }
    cx_prestore_stats_t st;
    rc = cx_prestore_finish(r, &st);
    r = NULL;
    if (rc) {
        snprintf(err, errlen, "persistence: restoring the state failed: %s", cx_strerror(rc));
        goto fail;
    }
    atomic_init(&p->next_gen, st.max_gen + 1);
    atomic_init(&p->next_msg_id, st.max_msg_id + 1);
    atomic_init(&p->next_order, st.max_order + 1);
    b->persist = p;
    cx_log(CX_LOG_NOTICE,
           "persistence: restored %zu retained message%s, %zu session%s, %zu subscription%s and "
           "%zu queued message%s%s%s in %" PRId64 " ms.",
           st.retained, st.retained == 1 ? "" : "s", st.sessions, st.sessions == 1 ? "" : "s",
           st.subs, st.subs == 1 ? "" : "s", st.queued, st.queued == 1 ? "" : "s",
           p->path ? " from " : "", p->path ? p->path : "",
           (int64_t)cx_time_mono_ms() - t0);
    if (st.skipped)
        cx_log(CX_LOG_WARNING, "persistence: %zu damaged or unreadable record%s skipped.",
               st.skipped, st.skipped == 1 ? "" : "s");
    if (rec.corrupt)
        cx_log(CX_LOG_WARNING,
               "persistence: %s was damaged; a copy of it was kept beside it and every "
               "readable record was restored.",
               p->path);
    /* A damaged region stays in the file until it is rewritten: do it now, before any
     * client can connect (no worker runs yet). */
    if (p->store && (rec.rewrite_needed || st.skipped) && snapshot(p) != CX_OK)
        cx_log(CX_LOG_WARNING, "persistence: the damaged store could not be rewritten yet.");
    return CX_OK;
fail:
    if (r)
        cx_prestore_free(r);
    cx_store_close(p->store);
    persist_free(p);
    return rc ? rc : CX_EIO;
}

void cx_persist_freeze(cx_broker_t *b)
{
    if (b->persist)
        atomic_store(&b->persist->frozen, true);
}

void cx_persist_close(cx_broker_t *b)
{
    cx_persist_t *p = b->persist;
    if (!p)
        return;
    if (p->store) {
        snapshot(p);
        int rc = cx_store_close(p->store);
        if (rc != CX_OK)
            cx_log(CX_LOG_ERR, "persistence: closing %s: %s.", p->path, cx_strerror(rc));
    }
    b->persist = NULL;
    persist_free(p);
}
