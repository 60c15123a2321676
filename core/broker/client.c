/* client.c: the MQTT protocol state machine of one connection.
 *
 * on_read frames and decodes every whole packet in the read buffer and dispatches it;
 * handlers turn packets into session actions and acknowledgements. Everything here runs on
 * the worker that owns the connection. */
#include "client.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "broker/persist.h"
#include "broker/authz.h"
#include "broker/flow.h"
#include "broker/client_int.h"
#include "broker/registry.h"
#include "broker/router.h"
#include "broker/session.h"
#include "broker/worker.h"
#include "util/alloc.h"
#include "util/log.h"

/* A connection must send CONNECT within this time [MQTT-3.1.4]. */
#define CONNECT_TIMEOUT_MS 20000

/* --- broker-assigned topic aliases (client side of the map lives in alias_in) --- */

typedef struct alias_slot {
    char *topic;
    size_t len;
    uint16_t alias;
} alias_slot_t;

struct cx_alias_out {
    alias_slot_t *slots;
    size_t nslots; /* power of two, >= 2 * max */
    uint16_t used;
    uint16_t max;
};

static alias_slot_t *alias_find(cx_alias_out_t *a, cx_str_t topic, bool *found)
{
    size_t mask = a->nslots - 1;
    for (size_t i = cx_str_hash(topic) & mask;; i = (i + 1) & mask) {
        alias_slot_t *s = &a->slots[i];
        if (!s->topic) {
            *found = false;
            return s;
        }
        if (s->len == topic.len && memcmp(s->topic, topic.p, topic.len) == 0) {
            *found = true;
            return s;
        }
    }
}

static void alias_out_free(cx_alias_out_t *a)
{
    if (!a)
        return;
    for (size_t i = 0; i < a->nslots; i++)
        cx_free(a->slots[i].topic);
    cx_free(a->slots);
    cx_free(a);
}

int cx_client_alias_out_init(cx_client_t *cl, uint16_t max)
{
    cl->alias_out_max = 0;
    if (!max)
        return CX_OK;
    size_t n = 16;
    while (n < 2u * max)
        n *= 2;
    cx_client_rare_t *r = cx_client_rare(cl);
    if (!r)
        return CX_ENOMEM;
    r->alias_out = cx_calloc(1, sizeof *r->alias_out);
    if (!r->alias_out || !(r->alias_out->slots = cx_calloc(n, sizeof(alias_slot_t)))) {
        cx_free_null(r->alias_out);
        return CX_ENOMEM; /* the client simply gets no broker-assigned aliases */
    }
    r->alias_out->nslots = n;
    r->alias_out->max = max;
    cl->alias_out_max = max;
    return CX_OK;
}

/* --- sending --- */

cx_buf_t *cx_client_outbuf(cx_client_t *cl)
{
    return cx_conn_outbuf(cl->conn);
}

void cx_client_sent(cx_client_t *cl, size_t before)
{
    size_t n = cx_buf_used(cx_client_outbuf(cl)) - before;
    atomic_fetch_add_explicit(&cl->worker->ctr.bytes_sent, n, memory_order_relaxed);
    atomic_fetch_add_explicit(&cl->worker->ctr.msgs_sent, 1, memory_order_relaxed);
    cx_conn_wrote(cl->conn);
}

void cx_client_fail_oom(cx_client_t *cl)
{
    if (cl->conn->closing)
        return; /* said once: every delivery still routed to it would fail the same way */
    cx_log(CX_LOG_ERR, "Out of memory (memory_limit) handling client %s; disconnecting it.",
           cl->session ? cl->session->client_id : cl->conn->peer);
    cx_conn_close(cl->conn, CX_ENOMEM);
}

static cx_str_t strip_mount(const cx_client_t *cl, cx_str_t topic)
{
    const char *mp = cx_client_lconf(cl)->mount_point;
    if (mp && cx_str_has_prefix(topic, mp)) {
        size_t n = strlen(mp);
        topic.p += n;
        topic.len -= n;
    }
    return topic;
}

/* RECEIVE check for a delivery: only hooks that answer at once are asked (a delivery never
 * waits for a backend); when all of them defer, the delivery is denied. */
static bool receive_allowed(cx_client_t *cl, const cx_msg_t *msg, uint8_t qos, bool retain,
                            cx_str_t topic)
{
    char buf[512];
    char *t = cx_str_cstr(topic, buf, sizeof buf);
    if (!t)
        return false;
    culex_ev_acl ev = {.size = sizeof ev,
                       .client = cl->pc,
                       .access = CULEX_ACCESS_RECEIVE,
                       .topic = t,
                       .qos = qos,
                       .retain = retain,
                       .payload = msg->payload.p,
                       .payload_len = msg->payload.len};
    int v = cx_authz_check(cl, CULEX_EV_ACL, &ev, true);
    cx_str_cstr_free(t, buf);
    return v == CULEX_ALLOW;
}

bool cx_client_send_publish(cx_client_t *cl, const cx_msg_t *msg, uint8_t qos, bool retain,
                            uint16_t pid, bool dup, const uint32_t *sub_ids, size_t nsub)
{
    cx_mqtt_publish_t pub = {
        .qos = qos,
        .retain = retain,
        .dup = dup,
        .packet_id = pid,
        .topic = strip_mount(cl, msg->topic),
        .payload = msg->payload,
    };
    if (cl->chain && !dup && cx_chain_has_nonblocking(cl->chain, CULEX_EV_ACL) &&
        !receive_allowed(cl, msg, qos, retain, pub.topic))
        return false; /* dropped as if delivered, like an oversize message */
    alias_slot_t *new_alias = NULL;
    if (cl->version == CX_MQTT_V5) {
        cx_msg_props(msg, &pub.props);
        if (msg->has_expiry) {
            /* Forwarded with the time it has left [MQTT-3.3.2-6]. */
            pub.props.present |= CX_PROP_BIT(CX_PROP_MESSAGE_EXPIRY);
            pub.props.message_expiry =
                cx_msg_expiry_left(msg, (int64_t)cx_loop_now(cl->worker->loop));
        }
        if (nsub) {
            pub.props.present |= CX_PROP_BIT(CX_PROP_SUBSCRIPTION_ID);
            pub.props.sub_ids = sub_ids;
            pub.props.sub_id_count = nsub;
        }
        cx_alias_out_t *ao = cl->rare ? cl->rare->alias_out : NULL;
        if (ao) {
            bool found;
            alias_slot_t *slot = alias_find(ao, pub.topic, &found);
            if (found) {
                pub.props.present |= CX_PROP_BIT(CX_PROP_TOPIC_ALIAS);
                pub.props.topic_alias = slot->alias;
                pub.topic = CX_STR_NULL;
            } else if (ao->used < ao->max) {
                pub.props.present |= CX_PROP_BIT(CX_PROP_TOPIC_ALIAS);
                pub.props.topic_alias = (uint16_t)(ao->used + 1);
                new_alias = slot;
            }
        }
    }
    cx_buf_t *b = cx_client_outbuf(cl);
    size_t before = cx_buf_used(b), old_len = b->len;
    if (cx_mqtt_encode_publish(b, (cx_mqtt_version)cl->version, &pub, NULL) != CX_OK) {
        cx_client_fail_oom(cl);
        return true;
    }
    if (cl->max_packet_out && b->len - old_len > cl->max_packet_out) {
        b->len = old_len;
        return false;
    }
    if (new_alias) {
        new_alias->topic = cx_strndup((const char *)pub.topic.p, pub.topic.len);
        if (new_alias->topic) {
            new_alias->len = pub.topic.len;
            new_alias->alias = pub.props.topic_alias;
            cl->rare->alias_out->used++;
        } else {
            /* Could not remember it: the client has seen the alias with its topic, so any
             * later message simply repeats both. Mapping stays consistent. */
        }
    }
    cx_client_sent(cl, before);
    atomic_fetch_add_explicit(&cl->worker->ctr.pub_sent, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&cl->worker->ctr.pub_bytes_sent, msg->payload.len,
                              memory_order_relaxed);
    return true;
}

void cx_client_send_ack(cx_client_t *cl, cx_mqtt_type type, uint16_t pid, uint8_t rc)
{
    cx_mqtt_ack_t a = {.packet_id = pid, .rc = rc};
    if (rc >= 0x80 && cl->version == CX_MQTT_V5)
        cx_client_props_reason(cl, &a.props, cx_mqtt_rc_name(rc));
    size_t before = cx_buf_used(cx_client_outbuf(cl));
    if (cx_mqtt_encode_ack(cx_client_outbuf(cl), (cx_mqtt_version)cl->version, type, &a) != CX_OK) {
        cx_client_fail_oom(cl);
        return;
    }
    cx_client_sent(cl, before);
}

void cx_client_props_reason(cx_client_t *cl, cx_mqtt_props_t *props, const char *reason)
{
    /* Reason strings only go to clients that did not opt out [MQTT-3.1.2-29]. */
    if (reason && cl->request_problem_info) {
        props->present |= CX_PROP_BIT(CX_PROP_REASON_STRING);
        props->reason_string = cx_str_from_cstr(reason);
    }
}

void cx_client_disconnect(cx_client_t *cl, uint8_t rc, const char *reason)
{
    if (cl->conn->closing)
        return;
    if (cl->session && cl->worker->limits.connection_messages)
        cx_log(CX_LOG_NOTICE, "Client %s disconnected by the broker: %s.",
               cl->session->client_id, reason ? reason : cx_mqtt_rc_name(rc));
    cl->server_closed = true;
    if (cl->version == CX_MQTT_V5 && cl->state == CX_CL_CONNECTED) {
        cx_mqtt_reason_t r = {.rc = rc};
        cx_client_props_reason(cl, &r.props, reason);
        size_t before = cx_buf_used(cx_client_outbuf(cl));
        if (cx_mqtt_encode_reason(cx_client_outbuf(cl), CX_MQTT_V5, CX_MQTT_DISCONNECT, &r) ==
            CX_OK)
            cx_client_sent(cl, before);
    }
    cl->state = CX_CL_CLOSING;
    cx_conn_close(cl->conn, CX_EPROTO);
}

/* Prefixes a topic or filter with the listener's mount_point, in buf or, when it does not
 * fit, on the heap (returned in *heap, freed by the caller). {NULL, 0} when out of memory. */
cx_str_t cx_client_mounted(const cx_client_t *cl, cx_str_t f, char *buf, size_t buflen, char **heap)
{
    const char *mp = cx_client_lconf(cl)->mount_point;
    *heap = NULL;
    if (!mp)
        return f;
    size_t n = strlen(mp);
    char *dst = n + f.len <= buflen ? buf : (*heap = cx_malloc(n + f.len));
    if (!dst)
        return CX_STR_NULL;
    memcpy(dst, mp, n);
    memcpy(dst + n, f.p, f.len);
    return (cx_str_t){(const uint8_t *)dst, n + f.len};
}

/* --- packet dispatch --- */

static void handle_packet(cx_client_t *cl, const uint8_t *pkt, size_t len)
{
    cx_worker_t *w = cl->worker;
    cx_mqtt_packet_t p;
    cx_mqtt_error_t err = {0};
    cx_mqtt_version ver = cl->state == CX_CL_NEW ? CX_MQTT_V5 : (cx_mqtt_version)cl->version;
    if (cl->state == CX_CL_NEW)
        memset(&p, 0, sizeof p); /* a failed CONNECT decode may leave the level unset */
    w->cur_pkt = pkt;
    w->cur_len = len;
    int rc = cx_mqtt_decode(pkt, len, ver, false, &w->arena, &p, &err);
    const char *who = cl->session ? cl->session->client_id : cl->conn->peer;
    if (rc == CX_ENOMEM) {
        cx_client_fail_oom(cl);
        return;
    }
    if (rc != CX_OK) {
        if (cl->state == CX_CL_NEW) {
            /* Answer a CONNECT we can read the version of; anything else just closes
             * [MQTT-3.1.2-2], [MQTT-4.8.0-1]. */
            bool is_connect = (pkt[0] >> 4) == CX_MQTT_CONNECT;
            if (is_connect && err.rc == CX_RC_UNSUPPORTED_PROTOCOL_VERSION) {
                /* Answered in the version the client asked for if we know it, else 3.1.1
                 * (return code 1) [MQTT-3.1.2-2]. */
                cl->version = p.u.connect.protocol_level == CX_MQTT_V5 ? CX_MQTT_V5 : CX_MQTT_V311;
                cx_client_refuse(cl, err.rc, "unsupported protocol version");
                return;
            }
            if (is_connect && p.u.connect.protocol_level == CX_MQTT_V5) {
                /* v5 lets the server say why before closing [MQTT-3.2.2-6]; 3.x has no
                 * code for a malformed CONNECT, so it is just closed [MQTT-3.1.4-1]. */
                cl->version = CX_MQTT_V5;
                cx_client_refuse(cl, err.rc, err.msg ? err.msg : "malformed CONNECT");
                return;
            }
            cx_log(CX_LOG_NOTICE, "Bad first packet from %s: %s.", cl->conn->peer,
                   err.msg ? err.msg : "malformed");
            cl->state = CX_CL_CLOSING;
            cx_conn_close(cl->conn, CX_EPROTO);
            return;
        }
        cx_log(CX_LOG_NOTICE, "Client %s disconnected: %s (%s).", who,
               err.msg ? err.msg : "malformed packet", cx_mqtt_rc_name(err.rc));
        cx_client_disconnect(cl, err.rc ? err.rc : CX_RC_MALFORMED_PACKET, err.msg);
        return;
    }
    atomic_fetch_add_explicit(&w->ctr.msgs_received, 1, memory_order_relaxed);
    if (cl->state == CX_CL_AUTH) {
        if (p.type == CX_MQTT_AUTH) {
            cx_client_on_auth(cl, &p.u.reason);
        } else {
            cx_log(CX_LOG_NOTICE, "Client from %s sent %s during authentication; closing.",
                   cl->conn->peer, cx_mqtt_type_name(p.type));
            cl->state = CX_CL_CLOSING;
            cx_conn_close(cl->conn, CX_EPROTO);
        }
        return;
    }
    if (cl->state == CX_CL_NEW) {
        if (p.type != CX_MQTT_CONNECT) {
            cx_log(CX_LOG_NOTICE, "Client from %s sent %s before CONNECT; closing.", cl->conn->peer,
                   cx_mqtt_type_name(p.type));
            cl->state = CX_CL_CLOSING;
            cx_conn_close(cl->conn, CX_EPROTO); /* [MQTT-3.1.0-1] */
            return;
        }
        cx_client_on_connect(cl, &p.u.connect);
        return;
    }
    switch (p.type) {
    case CX_MQTT_CONNECT: {
        cx_client_disconnect(cl, CX_RC_PROTOCOL_ERROR, "second CONNECT");
        return;
    } /* [MQTT-3.1.0-2] */
    case CX_MQTT_PUBLISH: {
        cx_client_on_publish(cl, &p.u.publish);
        return;
    }
    case CX_MQTT_PUBACK:
    case CX_MQTT_PUBREC:
    case CX_MQTT_PUBREL:
    case CX_MQTT_PUBCOMP: {
        cx_client_on_ack(cl, p.type, &p.u.ack);
        return;
    }
    case CX_MQTT_SUBSCRIBE: {
        cx_client_on_subscribe(cl, &p.u.subscribe);
        return;
    }
    case CX_MQTT_UNSUBSCRIBE: {
        cx_client_on_unsubscribe(cl, &p.u.unsubscribe);
        return;
    }
    case CX_MQTT_PINGREQ: {
        size_t before = cx_buf_used(cx_client_outbuf(cl));
        if (cx_mqtt_encode_ping(cx_client_outbuf(cl), CX_MQTT_PINGRESP)) {
            cx_client_fail_oom(cl);
            return;
        }
        cx_client_sent(cl, before);
        return;
    }
    case CX_MQTT_DISCONNECT: {
        cx_client_on_disconnect(cl, &p.u.reason);
        return;
    }
    case CX_MQTT_AUTH:
        cx_client_on_auth(cl, &p.u.reason);
        return;
    default: {
        cx_client_disconnect(cl, CX_RC_PROTOCOL_ERROR, "unexpected packet type");
        return;
    }
    }
}

static void client_free(cx_client_t *cl)
{
    if (cl->nheld)
        cx_persist_forget_client(cl);
    if (cx_list_linked(&cl->worker_link))
        cx_list_remove(&cl->worker_link);
    cx_pclient_unref(cl->pc);
    cx_client_rare_t *r = cl->rare;
    if (r) {
        if (r->alias_in) {
            for (size_t i = 0; i <= cl->alias_in_max; i++)
                cx_free(r->alias_in[i]);
            cx_free(r->alias_in);
        }
        alias_out_free(r->alias_out);
        cx_free(r->checks);
        cx_phost_free_mem(r->auth_out);
        cx_free(r->assigned_id);
        cx_free(r->auth_method);
        cx_free(r->saved_connect);
        cx_free(r);
    }
    cx_free(cl->username);
    cx_free(cl);
}

cx_client_rare_t *cx_client_rare(cx_client_t *cl)
{
    if (!cl->rare)
        cl->rare = cx_calloc(1, sizeof *cl->rare);
    return cl->rare;
}

void cx_client_rare_trim(cx_client_t *cl)
{
    cx_client_rare_t *r = cl->rare;
    if (r && !r->checks && !r->auth_out && !r->assigned_id && !r->auth_method &&
        !r->saved_connect && !r->ext_auth_ok && !r->reauthenticating && !r->handover &&
        !r->alias_in && !r->alias_out)
        cx_free_null(cl->rare);
}

/* What a connection that does not start with CONNECT probably is, for the log. */
static const char *first_bytes_hint(const uint8_t *p, size_t n)
{
    if (p[0] == 0x16)
        return " (a TLS handshake: this listener has no TLS)";
    if (n >= 5 && memcmp(p, "PROXY", 5) == 0)
        return " (a PROXY protocol v1 header: enable_proxy_protocol is not set here)";
    if (n >= 4 && memcmp(p, "\r\n\r\n", 4) == 0)
        return " (a PROXY protocol v2 header: enable_proxy_protocol is not set here)";
    if (n >= 4 && (memcmp(p, "GET ", 4) == 0 || memcmp(p, "POST", 4) == 0))
        return " (an HTTP request: this listener is not `protocol websockets`)";
    return "";
}

/* Handles one whole packet of the input (read path and held-back path alike). */
static void dispatch(cx_client_t *cl, const uint8_t *pkt, size_t len)
{
    atomic_fetch_add_explicit(&cl->worker->ctr.bytes_received, len, memory_order_relaxed);
    handle_packet(cl, pkt, len);
    cx_arena_reset(&cl->worker->arena);
}

/* Input a held-back publisher may accumulate while its acknowledgements are picked out. */
#define HELD_INPUT_MAX (64u * 1024)

static bool passes_hold(uint8_t type)
{
    return type == CX_MQTT_PUBACK || type == CX_MQTT_PUBREC || type == CX_MQTT_PUBREL ||
           type == CX_MQTT_PUBCOMP || type == CX_MQTT_PINGREQ;
}

/* A publisher held back by flow control (flow.h) is still read, up to HELD_INPUT_MAX: its
 * acknowledgements and pings are handled at once and everything else stays in the buffer,
 * in order, until it is released. Otherwise two clients that each publish to the other
 * and read slowly would hold each other back for good: each waits for a session that
 * waits for acknowledgements sitting in the other's unread input. Handling an
 * acknowledgement ahead of a PUBLISH sent before it is harmless: they belong to
 * independent flows. */
static void held_read(cx_client_t *cl)
{
    cx_conn_t *c = cl->conn;
    size_t maxp = cl->worker->limits.max_packet_size;
    size_t off = 0;
    while (!c->closing && !cl->wait && cx_flow_holding(cl) && off < cx_buf_used(&c->in)) {
        uint8_t *p = cx_buf_head(&c->in) + off;
        size_t avail = cx_buf_used(&c->in) - off, hl;
        uint32_t rl;
        cx_mqtt_error_t err = {0};
        if (cx_mqtt_frame(p, avail, &hl, &rl, &err) != CX_OK)
            break; /* incomplete, or an error reported once it is released */
        size_t total = hl + rl;
        if (total > avail || (maxp && total > maxp))
            break;
        if (!passes_hold((uint8_t)(p[0] >> 4))) {
            off += total;
            continue;
        }
        dispatch(cl, p, total);
        cx_authz_packet_done(cl);
        /* Cut it out of the buffer (what is before it waits, what is after moves up). */
        memmove(p, p + total, avail - total);
        c->in.len -= total;
    }
    if (cx_flow_holding(cl) && cx_buf_used(&c->in) >= HELD_INPUT_MAX)
        cx_conn_pause_read(c); /* until released: TCP holds the rest */
}

static void on_read(cx_conn_t *c)
{
    cx_client_t *cl = c->proto;
    cx_worker_t *w = cl->worker;
    size_t maxp = w->limits.max_packet_size;
    if (cl->state != CX_CL_NEW)
        cl->last_rx_ms = (int64_t)cx_loop_now(w->loop);
    while (!c->closing && !cl->wait) {
        if (cx_flow_holding(cl)) {
            held_read(cl);
            return;
        }
        size_t avail = cx_buf_used(&c->in);
        if (!avail)
            break;
        if (cl->state == CX_CL_NEW && cx_buf_head(&c->in)[0] != (CX_MQTT_CONNECT << 4)) {
            /* Not MQTT, or not starting with CONNECT: no need to wait for a whole packet
             * [MQTT-3.1.0-1]. The first byte often says what the client meant. */
            const char *hint = first_bytes_hint(cx_buf_head(&c->in), avail);
            cx_log(CX_LOG_NOTICE, "Connection from %s did not start with CONNECT%s; closing.",
                   c->peer, hint);
            cl->state = CX_CL_CLOSING;
            cx_conn_close(c, CX_EPROTO);
            return;
        }
        size_t hl;
        uint32_t rl;
        cx_mqtt_error_t err = {0};
        int rc = cx_mqtt_frame(cx_buf_head(&c->in), avail, &hl, &rl, &err);
        if (rc == CX_EAGAIN)
            break;
        if (rc != CX_OK) {
            cx_log(CX_LOG_NOTICE, "Client %s sent a malformed packet: %s.",
                   cl->session ? cl->session->client_id : c->peer,
                   err.msg ? err.msg : "bad length");
            cx_client_disconnect(cl, CX_RC_MALFORMED_PACKET, err.msg);
            return;
        }
        size_t total = hl + rl;
        if (maxp && total > maxp) {
            /* [MQTT-3.2.2-15]: the server closes with 0x95 on a packet over its maximum. */
            cx_log(CX_LOG_NOTICE, "Client %s sent a packet of %zu bytes, over max_packet_size.",
                   cl->session ? cl->session->client_id : c->peer, total);
            cx_client_disconnect(cl, CX_RC_PACKET_TOO_LARGE, "packet too large");
            return;
        }
        if (total > avail)
            break;
        dispatch(cl, cx_buf_head(&c->in), total);
        if (cl->wait)
            return; /* a plugin is deciding: the packet stays, to be handled again */
        cx_authz_packet_done(cl);
        if (cl->rare && cl->rare->handover) {
            /* The session lives on another worker: the connection moves there with its
             * CONNECT still unread, and this client state goes away. */
            cx_worker_t *to = cl->rare->handover;
            c->proto = NULL;
            client_free(cl);
            cx_worker_handover(w, to, c);
            return;
        }
        cx_buf_consume(&c->in, total, 0);
    }
}

static void on_close(cx_conn_t *c)
{
    cx_client_t *cl = c->proto;
    if (!cl)
        return;
    if (cl->session && !cl->will_suppressed && !cl->server_closed &&
        cl->worker->limits.connection_messages && !cl->worker->broker->shutting_down)
        cx_log(CX_LOG_NOTICE, "Client %s closed its connection.", cl->session->client_id);
    cx_authz_client_gone(cl);
    cx_flow_client_gone(cl);
    if (cl->chain && cl->pc && cl->session) {
        culex_ev_client ev = {.size = sizeof ev,
                              .client = cl->pc,
                              .reason = cl->will_suppressed ? 0 : CX_RC_UNSPECIFIED};
        cx_chain_notify(cl->chain, CULEX_EV_DISCONNECT, &ev);
    }
    cx_client_detach_session(cl);
    c->proto = NULL;
    client_free(cl);
}

const cx_conn_ops_t cx_client_conn_ops = {.on_read = on_read, .on_close = on_close};

cx_client_t *cx_client_new(cx_worker_t *w, cx_conn_t *c)
{
    cx_client_t *cl = cx_calloc(1, sizeof *cl);
    if (!cl)
        return NULL;
    cl->conn = c;
    cl->worker = w;
    cl->state = CX_CL_NEW;
    cl->version = CX_MQTT_V311;
    cl->request_problem_info = true;
    cl->last_rx_ms = (int64_t)cx_loop_now(w->loop);
    const cx_config_t *cfg = w->broker->cfg;
    cl->chain = cx_phost_chain(w->broker->plugins, (int)(cx_client_lconf(cl) - cfg->listeners));
    cx_list_insert_tail(&w->clients, &cl->worker_link);
    c->proto = cl;
    return cl;
}

void cx_client_replay(cx_client_t *cl)
{
    on_read(cl->conn);
}

void cx_client_kick(cx_worker_t *w, const char *client_id)
{
    cx_session_t *s = cx_registry_get(w->broker->registry, cx_str_from_cstr(client_id));
    if (!s)
        return;
    if (s->worker == w && s->client) {
        cx_log(CX_LOG_NOTICE, "Client %s disconnected by a plugin.", s->client_id);
        cx_client_disconnect(s->client, CX_RC_ADMINISTRATIVE_ACTION, "disconnected by a plugin");
    }
    cx_session_unref(s);
}

void cx_client_adopt(cx_worker_t *w, cx_conn_t *c)
{
    if (cx_conn_attach(c, &w->net, &cx_client_conn_ops) != CX_OK || !cx_client_new(w, c)) {
        cx_conn_close(c, CX_ENOMEM);
        return;
    }
    on_read(c);
}

void cx_client_tick(cx_client_t *cl, int64_t now)
{
    /* A client waiting for a plugin or held back by flow control is not read, so its pings
     * are not seen yet. */
    if (cl->conn->closing || cl->wait || cx_flow_holding(cl))
        return;
    cx_authz_idle(cl);
    if (cl->state == CX_CL_NEW || cl->state == CX_CL_AUTH) {
        /* CONNECT (and the handshakes before it) must be complete within the timeout of
         * the connection's arrival: a sender trickling one byte a second gets no more
         * time for it. An enhanced-auth exchange gets the timeout per AUTH packet. */
        if (now - cl->last_rx_ms > CONNECT_TIMEOUT_MS) {
            /* The transport's handshakes (PROXY header, TLS, WebSocket upgrade) count
             * against the same time: a stalled one holds only its own connection. */
            const char *hs = cx_conn_handshake(cl->conn);
            if (hs)
                cx_log(CX_LOG_NOTICE, "Client %s did not complete its %s in time; closing.",
                       cl->conn->peer, hs);
            else
                cx_log(CX_LOG_NOTICE, "Client %s did not send CONNECT in time; closing.",
                       cl->conn->peer);
            cl->state = CX_CL_CLOSING;
            cx_conn_close(cl->conn, CX_ECLOSED);
        }
        return;
    }
    /* [MQTT-3.1.2-24]: one and a half times the keep alive without a packet. */
    if (cl->keepalive && now - cl->last_rx_ms > (int64_t)cl->keepalive * 1500) {
        cx_log(CX_LOG_NOTICE, "Client %s has exceeded timeout, disconnecting.",
               cl->session ? cl->session->client_id : cl->conn->peer);
        cx_client_disconnect(cl, CX_RC_KEEP_ALIVE_TIMEOUT, "keep alive timeout");
    }
}
