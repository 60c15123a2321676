/* session.c: session state and the outgoing message flow:
 *
 *   deliver -> [queue] -> pump -> [inflight: WAIT_ACK] -> PUBACK            -> done
 *                                                     -> PUBREC -> WAIT_COMP -> PUBCOMP -> done
 *
 * QoS 0 messages to a connected client bypass both lists. The inflight window is the
 * smaller of the client's Receive Maximum and max_inflight_messages/bytes; the queue is
 * bounded by max_queued_messages/bytes, and what does not fit is dropped and counted. */
#include "session.h"

#include <string.h>

#include "broker/client.h"
#include "broker/flow.h"
#include "broker/persist.h"
#include "broker/persist_int.h"
#include "broker/registry.h"
#include "broker/router.h"
#include "util/alloc.h"
#include "util/log.h"

cx_session_t *cx_session_new(cx_worker_t *w, cx_str_t client_id)
{
    size_t marks = w->broker->nworkers * sizeof(cx_route_mark_t);
    cx_session_t *s = cx_calloc(1, sizeof *s + marks + client_id.len + 1);
    if (!s)
        return NULL;
    s->client_id = (char *)s->marks + marks;
    if (client_id.len)
        memcpy(s->client_id, client_id.p, client_id.len);
    s->client_id_len = (uint32_t)client_id.len;
    atomic_init(&s->refs, 1);
    atomic_init(&s->online, false);
    atomic_init(&s->store_gen, 0);
    atomic_init(&s->epoch, 0);
    atomic_init(&s->fc_transit, 0);
    atomic_init(&s->fc_queued, 0);
    atomic_init(&s->fc_waiters, 0);
    atomic_init(&s->fc_progress_ms, 0);
    atomic_init(&s->fc_stalled, false);
    atomic_init(&s->qos0_transit, 0);
    atomic_init(&s->qos0_full_until, 0);
    s->worker = w;
    cx_list_init(&s->inflight);
    cx_list_init(&s->queue);
    cx_list_insert_tail(&w->sessions, &s->worker_link);
    s->next_packet_id = 1;
    s->expiry_interval = 0;
    atomic_fetch_add_explicit(&w->ctr.sessions_total, 1, memory_order_relaxed);
    return s;
}

static void entry_free(cx_qentry_t *e)
{
    cx_msg_unref(e->msg);
    cx_free(e);
}

/* A queue entry is finished (acknowledged, dropped, expired): its record goes too. */
static void entry_done(cx_session_t *s, cx_qentry_t *e)
{
    cx_persist_entry_done(s, e);
    entry_free(e);
}

static void drop_list(cx_list_t *head)
{
    while (!cx_list_empty(head)) {
        cx_qentry_t *e = cx_container_of(head->next, cx_qentry_t, link);
        cx_list_remove(&e->link);
        entry_free(e);
    }
}

void cx_session_unref(cx_session_t *s)
{
    if (atomic_fetch_sub_explicit(&s->refs, 1, memory_order_acq_rel) != 1)
        return;
    /* Last reference: the session has ended (cx_session_end) and no delivery points at it. */
    drop_list(&s->inflight);
    drop_list(&s->queue);
    cx_msg_unref(s->will);
    for (size_t i = 0; i < s->nsubs; i++) {
        cx_free(s->subs[i].filter);
        cx_free(s->subs[i].group);
    }
    cx_free(s->subs);
    cx_free(s->qos2_in);
    cx_free(s);
}

static size_t window(const cx_session_t *s)
{
    const cx_limits_t *lim = &s->worker->limits;
    size_t win = s->client ? s->client->recv_max_out : 0;
    if (lim->max_inflight_messages > 0 && (size_t)lim->max_inflight_messages < win)
        win = (size_t)lim->max_inflight_messages;
    return win;
}

static bool window_open(const cx_session_t *s, const cx_msg_t *m)
{
    if (!s->client || s->client->state != CX_CL_CONNECTED)
        return false;
    if (s->inflight_count >= window(s))
        return false;
    size_t maxb = s->worker->limits.max_inflight_bytes;
    if (maxb && s->inflight_count && s->inflight_bytes + m->payload.len > maxb)
        return false;
    return true;
}

static bool pid_in_use(const cx_session_t *s, uint16_t pid)
{
    cx_list_t *it;
    cx_list_foreach(it, &s->inflight)
    {
        if (cx_container_of(it, cx_qentry_t, link)->packet_id == pid)
            return true;
    }
    return false;
}

static uint16_t next_pid(cx_session_t *s)
{
    for (;;) {
        uint16_t pid = s->next_packet_id++;
        if (s->next_packet_id == 0)
            s->next_packet_id = 1;
        if (pid && !pid_in_use(s, pid))
            return pid;
    }
}

static void count_dropped(cx_session_t *s)
{
    atomic_fetch_add_explicit(&s->worker->ctr.msgs_dropped, 1, memory_order_relaxed);
}

/* Sends e (moving it into the inflight list). */
static void send_entry(cx_session_t *s, cx_qentry_t *e)
{
    e->packet_id = next_pid(s);
    e->state = CX_QE_WAIT_ACK;
    cx_list_insert_tail(&s->inflight, &e->link);
    s->inflight_count++;
    s->inflight_bytes += e->msg->payload.len;
    if (!cx_client_send_publish(s->client, e->msg, e->qos, e->retain, e->packet_id, false,
                                e->sub_ids, e->nsub_ids)) {
        /* Too large for this client: discarded as if delivered [MQTT-3.1.2-25]. */
        cx_list_remove(&e->link);
        s->inflight_count--;
        s->inflight_bytes -= e->msg->payload.len;
        entry_done(s, e);
        count_dropped(s);
        return;
    }
    cx_persist_entry(s, e);
}

static cx_qentry_t *entry_new(cx_msg_t *msg, uint8_t qos, bool retain, uint32_t share_hash,
                              const uint32_t *sub_ids, size_t nsub, uint64_t store_gen,
                              uint64_t store_order)
{
    cx_qentry_t *e = cx_malloc(sizeof *e + nsub * sizeof(uint32_t));
    if (!e)
        return NULL;
    cx_list_init(&e->link);
    e->msg = cx_msg_ref(msg);
    e->qos = qos;
    e->retain = retain;
    e->share_hash = share_hash;
    e->state = CX_QE_QUEUED;
    e->packet_id = 0;
    e->store_gen = store_gen;
    e->store_order = store_order;
    e->nsub_ids = (uint16_t)nsub;
    if (nsub)
        memcpy(e->sub_ids, sub_ids, nsub * sizeof(uint32_t));
    return e;
}

/* Output a slow reader may accumulate before QoS 0 messages to it are dropped. */
#define QOS0_BACKLOG_LIMIT (8u * 1024 * 1024)
/* Backlog any reader may have whatever the memory pressure: a few messages in flight. */
#define QOS0_BACKLOG_FREE (64u * 1024)
/* How long other workers drop QoS 0 messages for a reader found full before they post one
 * again to find out (cx_session_t.qos0_full_until, router.c). */
#define QOS0_FULL_HINT_MS 2

/* Whether a QoS 0 message of `add` bytes may join `pending` bytes of output. The message
 * must fit under the cap, not merely find the backlog below it: the output buffer doubles
 * when it grows, so a backlog just over a power of two would double the memory the cap
 * promises. Under memory_limit, once the heap is above three quarters of it a reader that
 * is already behind gets no more: the last quarter is kept for the clients that hold no
 * backlog (publishers, readers that keep up, new connections), so the stalled subscriber
 * loses messages instead of the others losing their connections. */
static bool qos0_backlog_allowed(const cx_session_t *s, size_t pending, size_t add)
{
    if (pending + add > QOS0_BACKLOG_LIMIT)
        return false;
    size_t limit = s->worker->limits.memory_limit;
    if (!limit || pending < QOS0_BACKLOG_FREE)
        return true;
    return cx_alloc_current() + add <= limit / 4 * 3;
}

/* A delivery that does not become a queue entry: counted, and its routed record (if any)
 * deleted. */
static void drop_delivery(cx_session_t *s, cx_msg_t *msg, uint64_t store_gen)
{
    count_dropped(s);
    cx_persist_routed_dropped(s, msg, store_gen);
}

static void deliver(cx_msg_t *msg, const cx_target_t *t)
{
    cx_session_t *s = t->session;
    uint8_t qos = t->qos;
    bool retain = t->retain;
    uint32_t share_hash = t->share_hash;
    const uint32_t *sub_ids = cx_target_ids(t);
    size_t nsub = t->nsub;
    uint64_t store_gen = t->store_gen, store_order = t->store_order;
    if (s->dead) {
        cx_persist_routed_dropped(s, msg, store_gen);
        return;
    }
    if (t->epoch != atomic_load_explicit(&s->epoch, memory_order_relaxed)) {
        /* Matched against subscriptions a clean start has since removed: not this
         * session's message (not counted as dropped either: nobody subscribed lost it). */
        cx_persist_routed_dropped(s, msg, store_gen);
        return;
    }
    const cx_limits_t *lim = &s->worker->limits;
    int64_t now = (int64_t)cx_loop_now(s->worker->loop);
    if (cx_msg_is_expired(msg, now)) {
        drop_delivery(s, msg, store_gen);
        return;
    }
    bool online = s->client && s->client->state == CX_CL_CONNECTED;
    if (qos == 0 && online) {
        if (!qos0_backlog_allowed(s, cx_conn_pending(s->client->conn), msg->size)) {
            atomic_store_explicit(&s->qos0_full_until, now + QOS0_FULL_HINT_MS,
                                  memory_order_relaxed);
            count_dropped(s);
            return;
        }
        if (!cx_client_send_publish(s->client, msg, 0, retain, 0, false, sub_ids, nsub))
            count_dropped(s);
        return;
    }
    if (qos == 0 && !lim->queue_qos0_messages) {
        count_dropped(s);
        return;
    }
    /* Routing recorded this delivery for the session's generation of that moment; if the
     * session was cleaned since, the record is garbage and the entry is recorded anew. */
    uint64_t gen = atomic_load_explicit(&s->store_gen, memory_order_relaxed);
    uint64_t rec_gen = store_gen && store_gen == gen ? store_gen : 0;
    if (store_gen && !rec_gen)
        cx_persist_routed_dropped(s, msg, store_gen);
    if (online && cx_list_empty(&s->queue) && window_open(s, msg)) {
        cx_qentry_t *e = entry_new(msg, qos, retain, share_hash, sub_ids, nsub, rec_gen,
                                   store_order);
        if (!e) {
            drop_delivery(s, msg, rec_gen);
            return;
        }
        send_entry(s, e);
        return;
    }
    if ((lim->max_queued_messages > 0 && s->queue_count >= (size_t)lim->max_queued_messages) ||
        (lim->max_queued_bytes && s->queue_bytes + msg->payload.len > lim->max_queued_bytes)) {
        drop_delivery(s, msg, rec_gen);
        cx_log(CX_LOG_DEBUG, "Outgoing messages are being dropped for client %s.", s->client_id);
        return;
    }
    cx_qentry_t *e = entry_new(msg, qos, retain, share_hash, sub_ids, nsub, rec_gen, store_order);
    if (!e) {
        drop_delivery(s, msg, rec_gen);
        return;
    }
    cx_list_insert_tail(&s->queue, &e->link);
    s->queue_count++;
    s->queue_bytes += msg->payload.len;
    if (!rec_gen)
        cx_persist_entry(s, e);
}

void cx_session_deliver(cx_msg_t *msg, const cx_target_t *t)
{
    cx_session_t *s = t->session;
    size_t queued = s->queue_count;
    if (t->fc)
        cx_flow_arrived(s);
    deliver(msg, t);
    if (t->fc || s->queue_count != queued)
        cx_flow_settle(s);
}

int cx_session_restore_entry(cx_session_t *s, cx_msg_t *msg, uint8_t qos, bool retain,
                             uint32_t share_hash, uint8_t state, uint16_t pid,
                             const uint32_t *sub_ids, size_t nsub, uint64_t store_gen,
                             uint64_t store_order)
{
    cx_qentry_t *e = entry_new(msg, qos, retain, share_hash, sub_ids, nsub, store_gen,
                               store_order);
    if (!e)
        return CX_ENOMEM;
    /* A QoS 1 message that was sent is simply sent again, as a new delivery; QoS 2 keeps
     * its packet id and state, which the client remembers too. */
    if (state == CX_QE_QUEUED || qos == 1 || pid_in_use(s, pid)) {
        cx_list_insert_tail(&s->queue, &e->link);
        s->queue_count++;
        s->queue_bytes += msg->payload.len;
        return CX_OK;
    }
    e->state = state;
    e->packet_id = pid;
    cx_list_insert_tail(&s->inflight, &e->link);
    s->inflight_count++;
    s->inflight_bytes += msg->payload.len;
    if (pid >= s->next_packet_id)
        s->next_packet_id = pid == UINT16_MAX ? 1 : (uint16_t)(pid + 1);
    return CX_OK;
}

static void pump(cx_session_t *s)
{
    int64_t now = (int64_t)cx_loop_now(s->worker->loop);
    while (!cx_list_empty(&s->queue)) {
        cx_qentry_t *e = cx_container_of(s->queue.next, cx_qentry_t, link);
        bool online = s->client && s->client->state == CX_CL_CONNECTED;
        if (!online)
            return;
        if (e->qos > 0 && !window_open(s, e->msg))
            return;
        cx_list_remove(&e->link);
        s->queue_count--;
        s->queue_bytes -= e->msg->payload.len;
        if (cx_msg_is_expired(e->msg, now)) {
            entry_done(s, e);
            count_dropped(s);
            continue;
        }
        if (e->qos == 0) {
            cx_client_send_publish(s->client, e->msg, 0, e->retain, 0, false, e->sub_ids,
                                   e->nsub_ids);
            entry_free(e);
            continue;
        }
        send_entry(s, e);
    }
}

void cx_session_pump(cx_session_t *s)
{
    size_t queued = s->queue_count;
    pump(s);
    if (s->queue_count != queued)
        cx_flow_settle(s);
}

void cx_session_resend(cx_session_t *s)
{
    cx_list_t *it, *tmp;
    cx_list_foreach_safe(it, tmp, &s->inflight)
    {
        cx_qentry_t *e = cx_container_of(it, cx_qentry_t, link);
        if (e->state == CX_QE_WAIT_COMP) {
            cx_client_send_ack(s->client, CX_MQTT_PUBREL, e->packet_id, CX_RC_SUCCESS);
        } else if (!cx_client_send_publish(s->client, e->msg, e->qos, e->retain, e->packet_id,
                                           true, e->sub_ids, e->nsub_ids)) {
            cx_list_remove(&e->link);
            s->inflight_count--;
            s->inflight_bytes -= e->msg->payload.len;
            entry_done(s, e);
        }
    }
}

static cx_qentry_t *find_inflight(cx_session_t *s, uint16_t pid)
{
    cx_list_t *it;
    cx_list_foreach(it, &s->inflight)
    {
        cx_qentry_t *e = cx_container_of(it, cx_qentry_t, link);
        if (e->packet_id == pid)
            return e;
    }
    return NULL;
}

static void inflight_done(cx_session_t *s, cx_qentry_t *e)
{
    cx_list_remove(&e->link);
    s->inflight_count--;
    s->inflight_bytes -= e->msg->payload.len;
    entry_done(s, e);
}

bool cx_session_ack(cx_session_t *s, cx_mqtt_type type, uint16_t pid, uint8_t rc)
{
    cx_qentry_t *e = find_inflight(s, pid);
    if (!e)
        return false;
    switch (type) {
    case CX_MQTT_PUBACK:
        if (e->qos != 1 || e->state != CX_QE_WAIT_ACK)
            return false;
        inflight_done(s, e);
        break;
    case CX_MQTT_PUBREC:
        if (e->qos != 2 || e->state != CX_QE_WAIT_ACK)
            return false;
        if (rc >= 0x80) {
            /* The receiver refused it: the exchange ends here [MQTT-4.3.3]. */
            inflight_done(s, e);
            break;
        }
        e->state = CX_QE_WAIT_COMP;
        cx_persist_entry(s, e);
        cx_client_send_ack(s->client, CX_MQTT_PUBREL, pid, CX_RC_SUCCESS);
        break;
    case CX_MQTT_PUBCOMP:
        if (e->state != CX_QE_WAIT_COMP)
            return false;
        inflight_done(s, e);
        break;
    default:
        return false;
    }
    cx_session_pump(s);
    return true;
}

int cx_session_qos2_in_add(cx_session_t *s, uint16_t pid)
{
    for (size_t i = 0; i < s->qos2_in_count; i++)
        if (s->qos2_in[i] == pid)
            return 0;
    if (s->qos2_in_count == s->qos2_in_cap) {
        size_t cap = s->qos2_in_cap ? s->qos2_in_cap * 2 : 8;
        uint16_t *n = cx_realloc(s->qos2_in, cap * sizeof *n);
        if (!n)
            return CX_ENOMEM;
        s->qos2_in = n;
        s->qos2_in_cap = cap;
    }
    s->qos2_in[s->qos2_in_count++] = pid;
    cx_persist_qos2_in(s, pid, false);
    return 1;
}

bool cx_session_qos2_in_has(const cx_session_t *s, uint16_t pid)
{
    for (size_t i = 0; i < s->qos2_in_count; i++)
        if (s->qos2_in[i] == pid)
            return true;
    return false;
}

bool cx_session_qos2_in_release(cx_session_t *s, uint16_t pid)
{
    for (size_t i = 0; i < s->qos2_in_count; i++)
        if (s->qos2_in[i] == pid) {
            s->qos2_in[i] = s->qos2_in[--s->qos2_in_count];
            cx_persist_qos2_in(s, pid, true);
            return true;
        }
    return false;
}

static bool same_sub(const cx_sess_sub_t *ss, cx_str_t filter, cx_str_t group)
{
    if (!cx_str_eq_cstr(filter, ss->filter))
        return false;
    if (!group.len)
        return ss->group == NULL;
    return ss->group && cx_str_eq_cstr(group, ss->group);
}

int cx_session_sub_add(cx_session_t *s, cx_str_t filter, cx_str_t group,
                       const cx_sub_opts_t *opts)
{
    for (size_t i = 0; i < s->nsubs; i++)
        if (same_sub(&s->subs[i], filter, group)) {
            s->subs[i].opts = *opts;
            cx_persist_sub(s, &s->subs[i], false);
            return 0;
        }
    if (s->nsubs == s->subs_cap) {
        size_t cap = s->subs_cap ? s->subs_cap * 2 : 4;
        cx_sess_sub_t *n = cx_realloc(s->subs, cap * sizeof *n);
        if (!n)
            return CX_ENOMEM;
        s->subs = n;
        s->subs_cap = cap;
    }
    cx_sess_sub_t *ss = &s->subs[s->nsubs];
    ss->filter = cx_strndup((const char *)filter.p, filter.len);
    ss->group = group.len ? cx_strndup((const char *)group.p, group.len) : NULL;
    if (!ss->filter || (group.len && !ss->group)) {
        cx_free(ss->filter);
        cx_free(ss->group);
        return CX_ENOMEM;
    }
    ss->opts = *opts;
    s->nsubs++;
    cx_persist_sub(s, ss, false);
    return 1;
}

int cx_session_sub_remove(cx_session_t *s, cx_str_t filter, cx_str_t group)
{
    for (size_t i = 0; i < s->nsubs; i++)
        if (same_sub(&s->subs[i], filter, group)) {
            cx_persist_sub(s, &s->subs[i], true);
            cx_free(s->subs[i].filter);
            cx_free(s->subs[i].group);
            s->subs[i] = s->subs[--s->nsubs];
            return CX_OK;
        }
    return CX_ENOTFOUND;
}

static void unsubscribe_all(cx_session_t *s)
{
    cx_subtree_t *t = s->worker->broker->subs;
    for (size_t i = 0; i < s->nsubs; i++) {
        cx_str_t g = s->subs[i].group ? cx_str_from_cstr(s->subs[i].group) : CX_STR_NULL;
        cx_subtree_remove(t, cx_str_from_cstr(s->subs[i].filter), g, s);
        cx_free(s->subs[i].filter);
        cx_free(s->subs[i].group);
    }
    s->nsubs = 0;
}

void cx_session_clear(cx_session_t *s)
{
    cx_persist_session_drop(s); /* everything below goes with its generation */
    unsubscribe_all(s);
    /* After the subscriptions left the tree: see cx_session_t.epoch. */
    atomic_fetch_add_explicit(&s->epoch, 1, memory_order_release);
    drop_list(&s->inflight);
    drop_list(&s->queue);
    s->inflight_count = s->queue_count = 0;
    s->inflight_bytes = s->queue_bytes = 0;
    s->qos2_in_count = 0;
    cx_flow_settle(s);
}

void cx_session_publish_will(cx_session_t *s)
{
    cx_msg_t *will = s->will;
    if (!will)
        return;
    s->will = NULL;
    s->will_due_ms = 0;
    if (will->retain)
        cx_route_retain(s->worker, will);
    cx_route_publish(s->worker, will, s);
    cx_msg_unref(will);
}

/* A member of a shared subscription is leaving for good: what it had not acknowledged goes
 * to another member of the group (MQTT 5 §4.8.2). */
static void hand_shared_to_others(cx_session_t *s, cx_list_t *head)
{
    cx_list_t *it;
    cx_list_foreach(it, head)
    {
        cx_qentry_t *e = cx_container_of(it, cx_qentry_t, link);
        if (e->share_hash && e->state != CX_QE_WAIT_COMP)
            cx_route_shared_redeliver(s->worker, s, e->msg, e->qos, e->share_hash);
    }
}

void cx_session_end(cx_session_t *s)
{
    if (s->dead)
        return;
    cx_persist_session_drop(s);
    s->dead = true;
    cx_worker_t *w = s->worker;
    unsubscribe_all(s);
    /* At shutdown nothing is routed any more: other workers may already be gone. */
    if (!atomic_load_explicit(&w->broker->shutting_down, memory_order_relaxed)) {
        hand_shared_to_others(s, &s->inflight);
        hand_shared_to_others(s, &s->queue);
        cx_session_publish_will(s);
    }
    cx_registry_remove(w->broker->registry, s);
    cx_list_remove(&s->worker_link);
    atomic_fetch_sub_explicit(&w->ctr.sessions_total, 1, memory_order_relaxed);
    cx_session_unref(s);
}

void cx_session_tick(cx_session_t *s, int64_t now_ms)
{
    if (s->client)
        return;
    if (s->will_due_ms && now_ms >= s->will_due_ms)
        cx_session_publish_will(s);
    if (s->expiry_interval != CX_EXPIRY_NEVER &&
        now_ms - s->disconnected_at_ms >= (int64_t)s->expiry_interval * 1000) {
        atomic_fetch_add_explicit(&s->worker->ctr.sessions_expired, 1, memory_order_relaxed);
        if (s->expiry_interval > 0)
            cx_log(CX_LOG_NOTICE, "Expiring client %s due to timeout.", s->client_id);
        cx_session_end(s);
    }
}
