/* client.c: the MQTT protocol state machine of one connection.
 *
 * on_read frames and decodes every whole packet in the read buffer and dispatches it;
 * handlers turn packets into session actions and acknowledgements. Everything here runs on
 * the worker that owns the connection. */
#include "client.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "broker/authz.h"
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

/* --- sending --- */

static cx_buf_t *outbuf(cx_client_t *cl)
{
    return cx_conn_outbuf(cl->conn);
}

static void sent(cx_client_t *cl, size_t before)
{
    size_t n = cx_buf_used(outbuf(cl)) - before;
    atomic_fetch_add_explicit(&cl->worker->ctr.bytes_sent, n, memory_order_relaxed);
    atomic_fetch_add_explicit(&cl->worker->ctr.msgs_sent, 1, memory_order_relaxed);
    cx_conn_wrote(cl->conn);
}

static void fail_oom(cx_client_t *cl)
{
    cx_log(CX_LOG_ERR, "Out of memory (memory_limit) handling client %s; disconnecting it.",
           cl->session ? cl->session->client_id : cl->conn->peer);
    cx_conn_close(cl->conn, CX_ENOMEM);
}

static cx_str_t strip_mount(const cx_client_t *cl, cx_str_t topic)
{
    const char *mp = cl->lconf->mount_point;
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
    char *t = topic.len < sizeof buf ? buf : cx_malloc(topic.len + 1);
    if (!t)
        return false;
    memcpy(t, topic.p, topic.len);
    t[topic.len] = '\0';
    culex_ev_acl ev = {.size = sizeof ev, .client = cl->pc, .access = CULEX_ACCESS_RECEIVE,
                       .topic = t, .qos = qos, .retain = retain, .payload = msg->payload.p,
                       .payload_len = msg->payload.len};
    int v = cx_authz_check(cl, CULEX_EV_ACL, &ev, true);
    if (t != buf)
        cx_free(t);
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
        if (cl->alias_out) {
            bool found;
            alias_slot_t *slot = alias_find(cl->alias_out, pub.topic, &found);
            if (found) {
                pub.props.present |= CX_PROP_BIT(CX_PROP_TOPIC_ALIAS);
                pub.props.topic_alias = slot->alias;
                pub.topic = CX_STR_NULL;
            } else if (cl->alias_out->used < cl->alias_out->max) {
                pub.props.present |= CX_PROP_BIT(CX_PROP_TOPIC_ALIAS);
                pub.props.topic_alias = (uint16_t)(cl->alias_out->used + 1);
                new_alias = slot;
            }
        }
    }
    cx_buf_t *b = outbuf(cl);
    size_t before = cx_buf_used(b), old_len = b->len;
    if (cx_mqtt_encode_publish(b, (cx_mqtt_version)cl->version, &pub, NULL) != CX_OK) {
        fail_oom(cl);
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
            cl->alias_out->used++;
        } else {
            /* Could not remember it: the client has seen the alias with its topic, so any
             * later message simply repeats both. Mapping stays consistent. */
        }
    }
    sent(cl, before);
    atomic_fetch_add_explicit(&cl->worker->ctr.pub_sent, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&cl->worker->ctr.pub_bytes_sent, msg->payload.len,
                              memory_order_relaxed);
    return true;
}

static void props_reason(cx_client_t *cl, cx_mqtt_props_t *props, const char *reason);

void cx_client_send_ack(cx_client_t *cl, cx_mqtt_type type, uint16_t pid, uint8_t rc)
{
    cx_mqtt_ack_t a = {.packet_id = pid, .rc = rc};
    if (rc >= 0x80 && cl->version == CX_MQTT_V5)
        props_reason(cl, &a.props, cx_mqtt_rc_name(rc));
    size_t before = cx_buf_used(outbuf(cl));
    if (cx_mqtt_encode_ack(outbuf(cl), (cx_mqtt_version)cl->version, type, &a) != CX_OK) {
        fail_oom(cl);
        return;
    }
    sent(cl, before);
}

static void props_reason(cx_client_t *cl, cx_mqtt_props_t *props, const char *reason)
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
    if (cl->version == CX_MQTT_V5 && cl->state == CX_CL_CONNECTED) {
        cx_mqtt_reason_t r = {.rc = rc};
        props_reason(cl, &r.props, reason);
        size_t before = cx_buf_used(outbuf(cl));
        if (cx_mqtt_encode_reason(outbuf(cl), CX_MQTT_V5, CX_MQTT_DISCONNECT, &r) == CX_OK)
            sent(cl, before);
    }
    cl->state = CX_CL_CLOSING;
    cx_conn_close(cl->conn, CX_EPROTO);
}

static void send_connack(cx_client_t *cl, uint8_t rc, bool present, cx_mqtt_props_t *props)
{
    cx_mqtt_connack_t ca = {.session_present = present, .rc = rc};
    if (cl->version == CX_MQTT_V5) {
        if (props)
            ca.props = *props;
    } else {
        ca.rc = cx_mqtt_rc_to_v3_connack(rc);
        if (rc == CX_RC_SUCCESS)
            ca.rc = CX_V3_CONNACK_ACCEPTED;
    }
    size_t before = cx_buf_used(outbuf(cl));
    if (cx_mqtt_encode_connack(outbuf(cl), (cx_mqtt_version)cl->version, &ca) != CX_OK) {
        fail_oom(cl);
        return;
    }
    sent(cl, before);
}

/* Refuses a CONNECT: CONNACK with the reason, then close [MQTT-3.2.2-6]. */
static void refuse(cx_client_t *cl, uint8_t rc, const char *why)
{
    cx_mqtt_props_t props = {0};
    props_reason(cl, &props, why);
    send_connack(cl, rc, false, &props);
    cx_log(CX_LOG_NOTICE, "Client connection from %s refused: %s (%s).", cl->conn->peer, why,
           cx_mqtt_rc_name(rc));
    cl->state = CX_CL_CLOSING;
    cx_conn_close(cl->conn, CX_EPROTO);
}

/* --- session attach / detach --- */

static void detach_session(cx_client_t *cl)
{
    cx_session_t *s = cl->session;
    if (!s)
        return;
    cx_worker_t *w = cl->worker;
    int64_t now = (int64_t)cx_loop_now(w->loop);
    s->client = NULL;
    atomic_store_explicit(&s->online, false, memory_order_relaxed);
    s->disconnected_at_ms = now;
    if (s->will) {
        if (cl->will_suppressed || w->broker->shutting_down) {
            cx_msg_unref(s->will); /* normal disconnection: no will [MQTT-3.1.2-10] */
            s->will = NULL;
        } else if (s->will_delay == 0 || s->expiry_interval == 0) {
            cx_session_publish_will(s);
        } else {
            s->will_due_ms = now + (int64_t)s->will_delay * 1000;
        }
    }
    if (s->expiry_interval == 0)
        cx_session_end(s);
    cl->session = NULL;
    cx_session_unref(s);
    atomic_fetch_sub_explicit(&w->ctr.clients_connected, 1, memory_order_relaxed);
}

/* --- CONNECT --- */

static bool make_client_id(cx_client_t *cl, char *out, size_t outlen)
{
    static _Atomic uint64_t seq;
    uint64_t n = atomic_fetch_add(&seq, 1);
    const char *prefix =
        cl->lconf->listener_auto_id_prefix ? cl->lconf->listener_auto_id_prefix : "auto-";
    /* Unique within the process, hard to guess across restarts. */
    uint64_t r = cl->conn->id * 0x9E3779B97F4A7C15ull ^ (uint64_t)cx_loop_now(cl->worker->loop);
    int len = snprintf(out, outlen, "%s%08" PRIX64 "-%04" PRIX64 "-%012" PRIX64, prefix,
                       (uint64_t)(r >> 32), (uint64_t)(n & 0xffff),
                       (uint64_t)((r ^ (n << 16)) & 0xffffffffffffull));
    return len > 0 && (size_t)len < outlen;
}

/* Prefixes a topic or filter with the listener's mount_point, in buf or, when it does not
 * fit, on the heap (returned in *heap, freed by the caller). {NULL, 0} when out of memory. */
static cx_str_t mounted(const cx_client_t *cl, cx_str_t f, char *buf, size_t buflen, char **heap)
{
    const char *mp = cl->lconf->mount_point;
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

static cx_msg_t *make_will(cx_client_t *cl, const cx_mqtt_connect_t *c, cx_session_t *origin)
{
    char buf[512], *heap;
    cx_str_t topic = mounted(cl, c->will_topic, buf, sizeof buf, &heap);
    if (!topic.p)
        return NULL;
    cx_msg_t *m =
        cx_msg_new(topic, c->will_payload, cl->version == CX_MQTT_V5 ? &c->will_props : NULL,
                   c->will_qos, c->will_retain, origin, (int64_t)cx_loop_now(cl->worker->loop));
    cx_free(heap);
    return m;
}

static int ext_auth_step(cx_client_t *cl, int event, cx_str_t method, cx_str_t data,
                         bool reauth);

/* Moves the connection to the worker owning its session. After an enhanced-authentication
 * exchange the CONNECT is no longer in the read buffer, so it cannot move: the rare client
 * whose session appeared on another worker meanwhile is asked to retry. */
static void move_to(cx_client_t *cl, cx_worker_t *owner)
{
    if (cl->ext_auth_ok) {
        refuse(cl, CX_RC_SERVER_BUSY, "session moved during authentication; retry");
        return;
    }
    cl->handover = owner;
}

static void handle_connect(cx_client_t *cl, const cx_mqtt_connect_t *c)
{
    cx_worker_t *w = cl->worker;
    const cx_listener_conf_t *lc = cl->lconf;
    const cx_limits_t *lim = &w->limits;
    bool v5 = c->protocol_level == CX_MQTT_V5;
    cl->version = c->protocol_level;
    cl->request_problem_info = true;
    if (v5 && cx_mqtt_props_has(&c->props, CX_PROP_REQUEST_PROBLEM_INFO))
        cl->request_problem_info = c->props.request_problem_info != 0;

    if (!(lc->accept_protocol_versions & (1u << c->protocol_level))) {
        refuse(cl, CX_RC_UNSUPPORTED_PROTOCOL_VERSION,
               "protocol version not accepted on this listener");
        return;
    }
    bool ext_auth = v5 && cx_mqtt_props_has(&c->props, CX_PROP_AUTH_METHOD);
    if (ext_auth && !cx_chain_has(cl->chain, CULEX_EV_AUTH_EXT_START)) {
        refuse(cl, CX_RC_BAD_AUTH_METHOD, "no plugin offers this authentication method");
        return;
    }

    /* Client identifier [MQTT-3.1.3]. */
    char idbuf[128];
    cx_str_t id = c->client_id;
    bool assigned = false;
    if (lc->use_username_as_clientid && c->has_username)
        id = c->username;
    if (id.len == 0) {
        if (c->protocol_level == CX_MQTT_V31) {
            refuse(cl, CX_RC_CLIENT_ID_NOT_VALID, "MQTT 3.1 requires a client id");
            return;
        }
        if (c->protocol_level == CX_MQTT_V311 && !c->clean_start) {
            refuse(cl, CX_RC_CLIENT_ID_NOT_VALID, "empty client id requires clean session");
            return;
        } /* [MQTT-3.1.3-8] */
        if (!lc->allow_zero_length_clientid) {
            refuse(cl, CX_RC_CLIENT_ID_NOT_VALID, "empty client id not allowed");
            return;
        }
        if (!cl->assigned_id) {
            if (!make_client_id(cl, idbuf, sizeof idbuf)) {
                refuse(cl, CX_RC_CLIENT_ID_NOT_VALID, "auto_id_prefix too long");
                return;
            }
            cl->assigned_id = cx_strdup(idbuf);
            if (!cl->assigned_id) {
                fail_oom(cl);
                return;
            }
        }
        id = cx_str_from_cstr(cl->assigned_id);
        assigned = true;
    } else if (c->protocol_level == CX_MQTT_V31 && id.len > 23) {
        refuse(cl, CX_RC_CLIENT_ID_NOT_VALID, "MQTT 3.1 client id longer than 23");
        return;
    }

    /* Keep alive: a v5 client is told the server's value; a 3.x client is refused. */
    uint16_t keepalive = c->keepalive;
    bool server_ka = false;
    if (lim->max_keepalive > 0 && lim->max_keepalive < 65535 &&
        (keepalive > lim->max_keepalive || (keepalive == 0 && v5))) {
        if (!v5) {
            refuse(cl, CX_RC_CLIENT_ID_NOT_VALID, "keepalive above max_keepalive");
            return;
        }
        keepalive = (uint16_t)lim->max_keepalive;
        server_ka = true;
    }

    /* A session living on another worker: move there before asking any plugin, so that a
     * slow backend is asked once. */
    cx_session_t *elsewhere = cx_registry_get(w->broker->registry, id);
    if (elsewhere) {
        cx_worker_t *owner = elsewhere->worker;
        cx_session_unref(elsewhere);
        if (owner != w) {
            move_to(cl, owner);
            return;
        }
    }

    /* Authentication: the plugin chain, then the listener's allow_anonymous when every
     * plugin defers [MQTT-3.1.4-2]. */
    if (!cl->pc) {
        cl->pc = cx_pclient_new((const char *)id.p, id.len,
                                c->has_username ? (const char *)c->username.p : NULL,
                                c->username.len, cl->conn->peer, c->protocol_level,
                                lc->port);
        if (!cl->pc) {
            refuse(cl, CX_RC_SERVER_UNAVAILABLE, "out of memory");
            return;
        }
    }
    int verdict;
    if (ext_auth && cl->ext_auth_ok) {
        verdict = CULEX_ALLOW; /* the AUTH exchange that followed this CONNECT succeeded */
    } else if (ext_auth) {
        verdict = ext_auth_step(cl, CULEX_EV_AUTH_EXT_START, c->props.auth_method,
                                c->props.auth_data, false);
        if (verdict != CULEX_ALLOW)
            return; /* pending, continuing with AUTH, or refused */
    } else {
        culex_ev_auth_basic aev = {
            .size = sizeof aev, .client = cl->pc, .client_id = cl->pc->id,
            .username = cl->pc->username,
            .password = c->has_password ? c->password.p : NULL, .password_len = c->password.len,
        };
        verdict = cx_authz_check(cl, CULEX_EV_AUTH_BASIC, &aev, false);
    }
    if (verdict == CX_CHAIN_PENDING)
        return; /* replayed when the plugin answers */
    if (verdict == CULEX_DEFER)
        verdict = lc->allow_anonymous ? CULEX_ALLOW : CULEX_DENY;
    if (verdict != CULEX_ALLOW) {
        if (v5 && c->has_username)
            refuse(cl, CX_RC_BAD_USERNAME_OR_PASSWORD, "bad user name or password");
        else
            refuse(cl, CX_RC_NOT_AUTHORIZED, "not authorised");
        return;
    }

    const char *prefix = w->broker->cfg->clientid_prefixes;
    if (prefix && !cx_str_has_prefix(id, prefix)) {
        refuse(cl, CX_RC_NOT_AUTHORIZED, "client id does not match clientid_prefixes");
        return;
    }

    int gmax = w->broker->cfg->global_max_clients;
    if (gmax >= 0) {
        int connected = 0;
        for (size_t i = 0; i < w->broker->nworkers; i++)
            connected += atomic_load_explicit(&w->broker->workers[i].ctr.clients_connected,
                                              memory_order_relaxed);
        if (connected >= gmax) {
            refuse(cl, CX_RC_QUOTA_EXCEEDED, "global_max_clients reached");
            return;
        }
    }

    if (c->will_flag) {
        if (c->will_qos > lc->max_qos) {
            refuse(cl, CX_RC_QOS_NOT_SUPPORTED, "will QoS above max_qos");
            return;
        }
        if (c->will_retain && !lim->retain_available) {
            refuse(cl, CX_RC_RETAIN_NOT_SUPPORTED, "retain not available");
            return;
        }
    }

    /* Find or create the session; a session owned by another worker gets this connection
     * handed over, and CONNECT is read again there. */
    cx_registry_t *reg = w->broker->registry;
    cx_session_t *s = NULL;
    bool created = false;
    for (int attempt = 0; attempt < 4 && !s; attempt++) {
        cx_session_t *found = cx_registry_get(reg, id);
        if (found && found->worker != w) {
            cx_worker_t *owner = found->worker;
            cx_session_unref(found);
            move_to(cl, owner);
            return;
        }
        if (found && found->client) {
            /* Takeover: the existing connection is closed with 0x8E [MQTT-3.1.4-3]. Its
             * session may end right here (expiry 0); then a new one is made below. */
            cx_client_t *old = found->client;
            cx_log(CX_LOG_NOTICE, "Client %s already connected, closing old connection.",
                   found->client_id);
            cx_client_disconnect(old, CX_RC_SESSION_TAKEN_OVER, "session taken over");
            detach_session(old);
        }
        if (found && found->dead) {
            cx_session_unref(found);
            found = NULL;
        }
        if (found) {
            s = found;
            break;
        }
        cx_session_t *fresh = cx_session_new(w, id);
        if (!fresh) {
            refuse(cl, CX_RC_SERVER_UNAVAILABLE, "out of memory");
            return;
        }
        cx_session_t *holder = cx_registry_insert(reg, fresh);
        if (holder == fresh) {
            s = holder; /* refs: the alive one from cx_session_new, ours from the insert */
            created = true;
            break;
        }
        /* Lost a race with another worker for the same new id: retry the lookup. */
        fresh->dead = true;
        cx_list_remove(&fresh->worker_link);
        atomic_fetch_sub_explicit(&w->ctr.sessions_total, 1, memory_order_relaxed);
        cx_session_unref(fresh);
        if (holder)
            cx_session_unref(holder);
    }
    if (!s) {
        refuse(cl, CX_RC_SERVER_UNAVAILABLE, "client id registry busy");
        return;
    }

    bool present = false;
    if (c->clean_start) {
        if (!created)
            cx_session_clear(s);
        if (s->will)
            cx_session_publish_will(s); /* the old session ends here */
    } else if (!created) {
        present = true;
        /* A delayed will of the previous connection is cancelled by the new one
         * [MQTT-3.1.3-9]. */
        if (s->will) {
            cx_msg_unref(s->will);
            s->will = NULL;
            s->will_due_ms = 0;
        }
    }

    s->client = cl;
    s->version = c->protocol_level;
    atomic_store_explicit(&s->online, true, memory_order_relaxed);
    cl->session = s; /* the reference from the registry lookup */
    if (v5) {
        s->expiry_interval =
            cx_mqtt_props_has(&c->props, CX_PROP_SESSION_EXPIRY) ? c->props.session_expiry : 0;
    } else if (c->clean_start) {
        s->expiry_interval = 0;
    } else {
        int64_t pce = lim->persistent_client_expiration;
        s->expiry_interval = pce > 0
                                 ? (pce >= CX_EXPIRY_NEVER ? CX_EXPIRY_NEVER - 1 : (uint32_t)pce)
                                 : CX_EXPIRY_NEVER;
    }
    if (c->will_flag) {
        s->will = make_will(cl, c, s);
        s->will_delay = v5 && cx_mqtt_props_has(&c->will_props, CX_PROP_WILL_DELAY)
                            ? c->will_props.will_delay
                            : 0;
        if (!s->will)
            cx_log(CX_LOG_ERR, "Out of memory storing the will of %s.", s->client_id);
    }
    if (c->has_username)
        cl->username = cx_strndup((const char *)c->username.p, c->username.len);

    cl->keepalive = keepalive;
    cl->recv_max_out = 65535;
    cl->server_recv_max = lim->max_inflight_messages > 0 && lim->max_inflight_messages < 65535
                              ? (uint16_t)lim->max_inflight_messages
                              : 65535;
    cx_mqtt_props_t props = {0};
    if (v5) {
        if (cx_mqtt_props_has(&c->props, CX_PROP_RECEIVE_MAX))
            cl->recv_max_out = c->props.receive_max;
        if (cx_mqtt_props_has(&c->props, CX_PROP_MAX_PACKET_SIZE))
            cl->max_packet_out = c->props.max_packet_size;
        uint16_t client_alias_max =
            cx_mqtt_props_has(&c->props, CX_PROP_TOPIC_ALIAS_MAX) ? c->props.topic_alias_max : 0;
        uint16_t broker_max =
            lc->max_topic_alias_broker > 0 ? (uint16_t)lc->max_topic_alias_broker : 0;
        cl->alias_out_max = client_alias_max < broker_max ? client_alias_max : broker_max;
        if (cl->alias_out_max) {
            cl->alias_out = cx_calloc(1, sizeof *cl->alias_out);
            size_t n = 16;
            while (n < 2u * cl->alias_out_max)
                n *= 2;
            if (cl->alias_out && (cl->alias_out->slots = cx_calloc(n, sizeof(alias_slot_t)))) {
                cl->alias_out->nslots = n;
                cl->alias_out->max = cl->alias_out_max;
            } else {
                cx_free_null(cl->alias_out);
                cl->alias_out_max = 0;
            }
        }
        cl->alias_in_max = lc->max_topic_alias > 0 ? (uint16_t)lc->max_topic_alias : 0;

        if (assigned) {
            props.present |= CX_PROP_BIT(CX_PROP_ASSIGNED_CLIENT_ID);
            props.assigned_client_id = id;
        }
        if (cl->server_recv_max != 65535) {
            props.present |= CX_PROP_BIT(CX_PROP_RECEIVE_MAX);
            props.receive_max = cl->server_recv_max;
        }
        if (cl->alias_in_max) {
            props.present |= CX_PROP_BIT(CX_PROP_TOPIC_ALIAS_MAX);
            props.topic_alias_max = cl->alias_in_max;
        }
        if (lc->max_qos < 2) {
            props.present |= CX_PROP_BIT(CX_PROP_MAX_QOS);
            props.max_qos = (uint8_t)lc->max_qos;
        }
        if (!lim->retain_available) {
            props.present |= CX_PROP_BIT(CX_PROP_RETAIN_AVAILABLE);
            props.retain_available = 0;
        }
        if (lim->max_packet_size && lim->max_packet_size < CX_MQTT_MAX_REMAINING) {
            props.present |= CX_PROP_BIT(CX_PROP_MAX_PACKET_SIZE);
            props.max_packet_size = (uint32_t)lim->max_packet_size;
        }
        if (server_ka) {
            props.present |= CX_PROP_BIT(CX_PROP_SERVER_KEEPALIVE);
            props.server_keepalive = keepalive;
        }
        if (ext_auth) {
            props.present |= CX_PROP_BIT(CX_PROP_AUTH_METHOD);
            props.auth_method = c->props.auth_method;
            if (cl->auth_out) {
                props.present |= CX_PROP_BIT(CX_PROP_AUTH_DATA);
                props.auth_data = (cx_str_t){cl->auth_out, cl->auth_out_len};
            }
        }
    }
    if (assigned && cx_pclient_set_id(cl->pc, (const char *)id.p, id.len) != CX_OK) {
        fail_oom(cl);
        return;
    }
    send_connack(cl, CX_RC_SUCCESS, present, &props);
    cl->state = CX_CL_CONNECTED;
    cx_phost_free_mem(cl->auth_out);
    cl->auth_out = NULL;
    cx_free_null(cl->saved_connect);
    if (cl->chain) {
        culex_ev_client cev = {.size = sizeof cev, .client = cl->pc, .reason = 0};
        cx_chain_notify(cl->chain, CULEX_EV_CONNECT, &cev);
    }
    int now_connected =
        atomic_fetch_add_explicit(&w->ctr.clients_connected, 1, memory_order_relaxed) + 1;
    (void)now_connected;
    if (lim->connection_messages)
        cx_log(CX_LOG_NOTICE, "New client connected from %s as %s (p%d, c%d, k%d%s%.*s).",
               cl->conn->peer, s->client_id,
               c->protocol_level == CX_MQTT_V5 ? 5 : c->protocol_level - 2, c->clean_start ? 1 : 0,
               keepalive, c->has_username ? ", u'" : "",
               c->has_username ? (int)c->username.len + 1 : 0,
               c->has_username ? cl->username ? cl->username : "" : "");
    if (present)
        cx_session_resend(s);
    cx_session_pump(s);
}

/* --- PUBLISH and acknowledgements --- */

/* Takes a message interceptor's new user properties into props (copied into the worker's
 * arena, which lives until the packet is done). False if they are not valid UTF-8. */
static bool replace_user_props(cx_client_t *cl, cx_mqtt_props_t *props,
                               const culex_ev_message *mev)
{
    props->present &= ~CX_PROP_BIT(CX_PROP_USER_PROPERTY);
    props->user_props = NULL;
    props->user_prop_count = 0;
    if (!mev->new_user_prop_count)
        return true;
    cx_mqtt_user_prop_t *up =
        cx_arena_alloc(&cl->worker->arena, mev->new_user_prop_count * sizeof *up);
    if (!up)
        return false;
    for (size_t i = 0; i < mev->new_user_prop_count; i++) {
        const culex_user_property *u = &mev->new_user_props[i];
        up[i].key = (cx_str_t){(const uint8_t *)u->key, u->key_len};
        up[i].value = (cx_str_t){(const uint8_t *)u->value, u->value_len};
        if ((u->key_len && !u->key) || (u->value_len && !u->value) ||
            !cx_mqtt_utf8_is_valid(up[i].key) || !cx_mqtt_utf8_is_valid(up[i].value)) {
            cx_log(CX_LOG_WARNING, "A plugin set an invalid user property: message dropped.");
            return false;
        }
    }
    props->present |= CX_PROP_BIT(CX_PROP_USER_PROPERTY);
    props->user_props = up;
    props->user_prop_count = mev->new_user_prop_count;
    return true;
}

/* Frees what a message interceptor handed over (all from host->alloc). The message copies
 * it first, so this runs once the PUBLISH is handled. */
static void release_plugin_output(char *topic, uint8_t *payload, culex_user_property *up,
                                  size_t n)
{
    cx_phost_free_mem(topic);
    cx_phost_free_mem(payload);
    for (size_t i = 0; up && i < n; i++) {
        cx_phost_free_mem((char *)up[i].key);
        cx_phost_free_mem((char *)up[i].value);
    }
    cx_phost_free_mem(up);
}

/* A PUBLISH that is not routed (size limit, denied, dropped by a plugin) is still
 * acknowledged, with rc where MQTT 5 can say why; a 3.x QoS 2 flow is completed normally. */
static void drop_publish(cx_client_t *cl, const cx_mqtt_publish_t *p, uint8_t rc_v5)
{
    cx_worker_t *w = cl->worker;
    bool v5 = cl->version == CX_MQTT_V5;
    uint8_t rc = v5 ? rc_v5 : CX_RC_SUCCESS;
    atomic_fetch_add_explicit(&w->ctr.msgs_dropped, 1, memory_order_relaxed);
    if (p->qos == 1) {
        cx_client_send_ack(cl, CX_MQTT_PUBACK, p->packet_id, rc);
    } else if (p->qos == 2) {
        if (rc < 0x80 && cx_session_qos2_in_add(cl->session, p->packet_id) < 0) {
            fail_oom(cl);
            return;
        }
        cx_client_send_ack(cl, CX_MQTT_PUBREC, p->packet_id, rc);
    }
}

static void handle_publish(cx_client_t *cl, const cx_mqtt_publish_t *p)
{
    cx_worker_t *w = cl->worker;
    cx_session_t *s = cl->session;
    const cx_listener_conf_t *lc = cl->lconf;
    bool v5 = cl->version == CX_MQTT_V5;

    if (p->qos > lc->max_qos) {
        cx_client_disconnect(cl, CX_RC_QOS_NOT_SUPPORTED, "QoS above max_qos");
        return;
    }
    if (p->retain && !w->limits.retain_available) {
        cx_client_disconnect(cl, CX_RC_RETAIN_NOT_SUPPORTED, "retain not available");
        return;
    }

    cx_str_t topic = p->topic;
    if (v5 && cx_mqtt_props_has(&p->props, CX_PROP_TOPIC_ALIAS)) {
        uint16_t a = p->props.topic_alias;
        if (a == 0 || a > cl->alias_in_max) {
            cx_client_disconnect(cl, CX_RC_TOPIC_ALIAS_INVALID, "topic alias out of range");
            return;
        }
        if (!cl->alias_in) {
            cl->alias_in = cx_calloc(cl->alias_in_max + 1u, sizeof(char *));
            if (!cl->alias_in) {
                fail_oom(cl);
                return;
            }
        }
        if (topic.len == 0) {
            if (!cl->alias_in[a]) {
                cx_client_disconnect(cl, CX_RC_PROTOCOL_ERROR, "unknown topic alias");
                return;
            }
            topic = cx_str_from_cstr(cl->alias_in[a]);
        } else {
            char *t = cx_strndup((const char *)topic.p, topic.len);
            if (!t) {
                fail_oom(cl);
                return;
            }
            cx_free(cl->alias_in[a]);
            cl->alias_in[a] = t;
        }
    }
    if (topic.len == 0) {
        cx_client_disconnect(cl, CX_RC_PROTOCOL_ERROR, "empty topic without alias");
        return;
    }

    /* message_size_limit (deprecated, still common): the message is dropped but
     * acknowledged, with 0x95 where the protocol can say so; the client stays connected. */
    size_t msl = w->limits.message_size_limit;
    if (msl && p->payload.len > msl) {
        cx_log(CX_LOG_NOTICE, "Dropped a %zu byte message from %s: over message_size_limit.",
               p->payload.len, s->client_id);
        drop_publish(cl, p, CX_RC_PACKET_TOO_LARGE);
        return;
    }
    if (p->qos == 2 && cx_session_qos2_in_has(s, p->packet_id)) {
        /* Already received, not yet released: acknowledge again, deliver once
         * [MQTT-4.3.3-10]. */
        cx_client_send_ack(cl, CX_MQTT_PUBREC, p->packet_id, CX_RC_SUCCESS);
        return;
    }

    /* Plugins: may this client publish here, and does an interceptor change or drop it? */
    cx_str_t payload = p->payload;
    cx_mqtt_props_t props = p->props; /* user properties may be replaced by a plugin */
    char *new_topic = NULL;
    uint8_t *new_payload = NULL;
    culex_user_property *new_props = NULL;
    size_t new_nprops = 0;
    bool intercepted = false; /* dropped by a message interceptor: acknowledged as normal */
    if (cl->chain) {
        char tbuf[512];
        char *tcopy = topic.len < sizeof tbuf ? tbuf : cx_malloc(topic.len + 1);
        if (!tcopy) {
            fail_oom(cl);
            return;
        }
        memcpy(tcopy, topic.p, topic.len);
        tcopy[topic.len] = '\0';
        culex_ev_acl aev = {.size = sizeof aev, .client = cl->pc, .access = CULEX_ACCESS_PUBLISH,
                            .topic = tcopy, .qos = p->qos, .retain = p->retain,
                            .payload = p->payload.p, .payload_len = p->payload.len};
        int v = cx_authz_check(cl, CULEX_EV_ACL, &aev, false);
        if (v == CULEX_DEFER)
            v = cx_chain_has(cl->chain, CULEX_EV_ACL) ? CULEX_DENY : CULEX_ALLOW;
        if (v == CULEX_ALLOW && cx_chain_has(cl->chain, CULEX_EV_MESSAGE)) {
            culex_ev_message mev = {.size = sizeof mev, .client = cl->pc, .topic = tcopy,
                                    .payload = p->payload.p, .payload_len = p->payload.len,
                                    .qos = p->qos, .retain = p->retain};
            if (v5 && p->props.user_prop_count &&
                cx_mqtt_props_has(&p->props, CX_PROP_USER_PROPERTY)) {
                culex_user_property *up =
                    cx_arena_alloc(&w->arena, p->props.user_prop_count * sizeof *up);
                if (!up) {
                    fail_oom(cl);
                    return;
                }
                for (size_t i = 0; i < p->props.user_prop_count; i++) {
                    const cx_mqtt_user_prop_t *u = &p->props.user_props[i];
                    up[i] = (culex_user_property){(const char *)u->key.p, u->key.len,
                                                  (const char *)u->value.p, u->value.len};
                }
                mev.user_props = up;
                mev.user_prop_count = p->props.user_prop_count;
            }
            cx_ticket_t *none = NULL;
            int mv = cx_chain_run(cl->chain, CULEX_EV_MESSAGE, &mev, true, &none, NULL, NULL);
            new_topic = mev.new_topic;
            new_payload = mev.new_payload;
            new_props = mev.new_user_props;
            new_nprops = mev.new_user_prop_count;
            if (mev.replace_user_props && mv != CULEX_DENY &&
                !replace_user_props(cl, &props, &mev))
                intercepted = true; /* the plugin's list was invalid: dropped, logged */
            if (mv == CULEX_DENY) {
                intercepted = true;
            } else if (new_payload) {
                payload = (cx_str_t){new_payload, mev.new_payload_len};
            }
            if (new_topic && !cx_mqtt_topic_name_is_valid(cx_str_from_cstr(new_topic))) {
                cx_log(CX_LOG_WARNING, "A plugin rewrote a topic to the invalid '%s': dropped.",
                       new_topic);
                intercepted = true;
            }
        }
        if (tcopy != tbuf)
            cx_free(tcopy);
        if (v == CX_CHAIN_PENDING)
            return; /* replayed when the plugin answers */
        if (v != CULEX_ALLOW || intercepted) {
            if (v != CULEX_ALLOW)
                cx_log(CX_LOG_NOTICE, "Denied PUBLISH from %s to '%.*s'.", s->client_id,
                       (int)topic.len, (const char *)topic.p);
            drop_publish(cl, p, v != CULEX_ALLOW ? CX_RC_NOT_AUTHORIZED : CX_RC_SUCCESS);
            release_plugin_output(new_topic, new_payload, new_props, new_nprops);
            return;
        }
        if (new_topic)
            topic = cx_str_from_cstr(new_topic);
    }

    if (p->qos == 2) {
        if (cx_session_qos2_in_add(s, p->packet_id) < 0) {
            fail_oom(cl);
            goto out;
        }
        if (s->qos2_in_count > cl->server_recv_max) {
            cx_client_disconnect(cl, CX_RC_RECEIVE_MAX_EXCEEDED, "receive maximum exceeded");
            goto out;
        } /* [MQTT-3.3.4-9] */
    }

    atomic_fetch_add_explicit(&w->ctr.pub_received, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&w->ctr.pub_bytes_received, p->payload.len, memory_order_relaxed);

    /* Clients may not inject into the broker's own $SYS tree. */
    bool deliver = !cx_str_has_prefix(topic, "$SYS");
    size_t matched = 0;
    if (deliver) {
        char buf[512], *heap;
        topic = mounted(cl, topic, buf, sizeof buf, &heap);
        if (!topic.p) {
            fail_oom(cl);
            goto out;
        }
        cx_msg_t *m = cx_msg_new(topic, payload, v5 ? &props : NULL, p->qos, p->retain, s,
                                 (int64_t)cx_loop_now(w->loop));
        cx_free(heap);
        if (!m) {
            fail_oom(cl);
            goto out;
        }
        if (p->retain)
            cx_route_retain(w, m);
        matched = cx_route_publish(w, m, s);
        cx_msg_unref(m);
    }
    uint8_t rc = v5 && matched == 0 ? CX_RC_NO_MATCHING_SUBSCRIBERS : CX_RC_SUCCESS;
    if (p->qos == 1)
        cx_client_send_ack(cl, CX_MQTT_PUBACK, p->packet_id, rc);
    else if (p->qos == 2)
        cx_client_send_ack(cl, CX_MQTT_PUBREC, p->packet_id, rc);
out:
    release_plugin_output(new_topic, new_payload, new_props, new_nprops);
}

static void handle_ack(cx_client_t *cl, cx_mqtt_type type, const cx_mqtt_ack_t *a)
{
    cx_session_t *s = cl->session;
    if (type == CX_MQTT_PUBREL) {
        bool known = cx_session_qos2_in_release(s, a->packet_id);
        cx_client_send_ack(cl, CX_MQTT_PUBCOMP, a->packet_id,
                           known ? CX_RC_SUCCESS : CX_RC_PACKET_ID_NOT_FOUND);
        return;
    }
    if (!cx_session_ack(s, type, a->packet_id, a->rc) && type == CX_MQTT_PUBREC)
        cx_client_send_ack(cl, CX_MQTT_PUBREL, a->packet_id, CX_RC_PACKET_ID_NOT_FOUND);
}

/* --- SUBSCRIBE / UNSUBSCRIBE --- */

typedef struct retained_ctx {
    cx_session_t *s;
    uint8_t qos;
    uint32_t sub_id;
} retained_ctx_t;

static void retained_cb(void *ud, cx_str_t topic, void *value)
{
    retained_ctx_t *rc = ud;
    cx_msg_t *m = value;
    uint8_t qos = m->qos < rc->qos ? m->qos : rc->qos;
    /* Retained messages sent because of a subscription keep retain = 1 [MQTT-3.3.1-8]. */
    cx_session_deliver(rc->s, m, qos, true, 0, rc->sub_id ? &rc->sub_id : NULL, rc->sub_id ? 1 : 0);
}

/* Asks the ACL chain whether the client may (un)subscribe `filter` (as the client wrote
 * it). Returns CULEX_ALLOW, CULEX_DENY or CX_CHAIN_PENDING. Every hook deferring means
 * deny once any ACL source is configured, allow otherwise. */
static int acl_filter(cx_client_t *cl, int access, cx_str_t filter, uint8_t qos)
{
    if (!cl->chain || !cx_chain_has(cl->chain, CULEX_EV_ACL))
        return CULEX_ALLOW;
    char buf[512];
    char *f = filter.len < sizeof buf ? buf : cx_malloc(filter.len + 1);
    if (!f)
        return CULEX_DENY;
    memcpy(f, filter.p, filter.len);
    f[filter.len] = '\0';
    culex_ev_acl ev = {.size = sizeof ev, .client = cl->pc, .access = access, .topic = f,
                       .qos = qos};
    int v = cx_authz_check(cl, CULEX_EV_ACL, &ev, false);
    if (f != buf)
        cx_free(f);
    if (v == CULEX_DEFER)
        v = CULEX_DENY;
    return v == CX_CHAIN_PENDING || v == CULEX_ALLOW ? v : CULEX_DENY;
}

static void handle_subscribe(cx_client_t *cl, const cx_mqtt_subscribe_t *sub)
{
    cx_worker_t *w = cl->worker;
    cx_session_t *s = cl->session;
    uint8_t rcs_small[32];
    uint8_t *rcs = sub->count <= 32 ? rcs_small : cx_arena_alloc(&w->arena, sub->count);
    uint8_t *send_retained = cx_arena_alloc(&w->arena, sub->count);
    uint8_t *denied = cx_arena_alloc(&w->arena, sub->count);
    if (!rcs || !send_retained || !denied) {
        fail_oom(cl);
        return;
    }
    /* Every check before the first change, so that a replay after a slow plugin's answer
     * starts from a clean state. */
    for (size_t i = 0; i < sub->count; i++) {
        int v = acl_filter(cl, CULEX_ACCESS_SUBSCRIBE, sub->entries[i].filter,
                           sub->entries[i].qos);
        if (v == CX_CHAIN_PENDING)
            return;
        denied[i] = v != CULEX_ALLOW;
    }
    uint32_t sub_id =
        cx_mqtt_props_has(&sub->props, CX_PROP_SUBSCRIPTION_ID) && sub->props.sub_id_count
            ? sub->props.sub_ids[0]
            : 0;
    for (size_t i = 0; i < sub->count; i++) {
        const cx_mqtt_sub_entry_t *e = &sub->entries[i];
        cx_str_t group = CX_STR_NULL, real = e->filter;
        int shared = cx_mqtt_shared_parse(e->filter, &group, &real);
        if (shared < 0) {
            rcs[i] = CX_RC_TOPIC_FILTER_INVALID;
            continue;
        }
        if (denied[i]) {
            rcs[i] = CX_RC_NOT_AUTHORIZED;
            cx_log(CX_LOG_NOTICE, "Denied SUBSCRIBE from %s to '%.*s'.", s->client_id,
                   (int)e->filter.len, (const char *)e->filter.p);
            continue;
        }
        char buf[512], *heap;
        cx_str_t full = mounted(cl, real, buf, sizeof buf, &heap);
        if (!full.p) {
            rcs[i] = CX_RC_UNSPECIFIED;
            continue;
        }
        uint8_t granted = e->qos < cl->lconf->max_qos ? e->qos : (uint8_t)cl->lconf->max_qos;
        cx_sub_opts_t opts = {.qos = granted,
                              .no_local = e->no_local,
                              .retain_as_published = e->retain_as_published,
                              .retain_handling = e->retain_handling,
                              .sub_id = sub_id};
        int r = cx_subtree_add(w->broker->subs, full, group, s, &opts);
        if (r >= 0 && cx_session_sub_add(s, full, group, &opts) < 0) {
            cx_subtree_remove(w->broker->subs, full, group, s);
            r = CX_ENOMEM;
        }
        cx_free(heap);
        if (r < 0) {
            rcs[i] = CX_RC_UNSPECIFIED;
            continue;
        }
        rcs[i] = granted;
        /* Retain Handling: 0 = always, 1 = only for a new subscription, 2 = never
         * [MQTT-3.3.1-9..11]. Shared subscriptions never get retained messages. */
        send_retained[i] =
            !shared && (e->retain_handling == 0 || (e->retain_handling == 1 && r == 1));
        cx_log(CX_LOG_SUBSCRIBE, "%s %d %.*s", s->client_id, granted, (int)e->filter.len,
               (const char *)e->filter.p);
    }
    cx_mqtt_suback_t sa = {.packet_id = sub->packet_id, .rcs = rcs, .count = sub->count};
    for (size_t i = 0; i < sub->count && cl->version == CX_MQTT_V5; i++)
        if (rcs[i] >= 0x80) {
            props_reason(cl, &sa.props, "some subscriptions were refused");
            break;
        }
    size_t before = cx_buf_used(outbuf(cl));
    if (cx_mqtt_encode_suback(outbuf(cl), (cx_mqtt_version)cl->version, CX_MQTT_SUBACK, &sa)) {
        fail_oom(cl);
        return;
    }
    sent(cl, before);

    for (size_t i = 0; i < sub->count; i++) {
        if (!send_retained[i])
            continue;
        char buf[512], *heap;
        cx_str_t full = mounted(cl, sub->entries[i].filter, buf, sizeof buf, &heap);
        if (!full.p)
            continue;
        retained_ctx_t rc = {.s = s, .qos = rcs[i], .sub_id = sub_id};
        cx_retain_match(w->broker->retained, full, retained_cb, &rc);
        cx_free(heap);
    }
}

static void handle_unsubscribe(cx_client_t *cl, const cx_mqtt_unsubscribe_t *u)
{
    cx_worker_t *w = cl->worker;
    cx_session_t *s = cl->session;
    uint8_t *rcs = cx_arena_alloc(&w->arena, u->count);
    if (!rcs) {
        fail_oom(cl);
        return;
    }
    for (size_t i = 0; i < u->count; i++) {
        int v = acl_filter(cl, CULEX_ACCESS_UNSUBSCRIBE, u->filters[i], 0);
        if (v == CX_CHAIN_PENDING)
            return;
        rcs[i] = v == CULEX_ALLOW ? CX_RC_SUCCESS : CX_RC_NOT_AUTHORIZED;
    }
    for (size_t i = 0; i < u->count; i++) {
        cx_str_t group = CX_STR_NULL, real = u->filters[i];
        if (rcs[i] == CX_RC_NOT_AUTHORIZED)
            continue;
        if (cx_mqtt_shared_parse(u->filters[i], &group, &real) < 0) {
            rcs[i] = CX_RC_TOPIC_FILTER_INVALID;
            continue;
        }
        char buf[512], *heap;
        cx_str_t full = mounted(cl, real, buf, sizeof buf, &heap);
        if (!full.p) {
            rcs[i] = CX_RC_UNSPECIFIED;
            continue;
        }
        int r = cx_subtree_remove(w->broker->subs, full, group, s);
        cx_session_sub_remove(s, full, group);
        cx_free(heap);
        rcs[i] = r == CX_OK ? CX_RC_SUCCESS : CX_RC_NO_SUBSCRIPTION_EXISTED;
        cx_log(CX_LOG_UNSUBSCRIBE, "%s %.*s", s->client_id, (int)u->filters[i].len,
               (const char *)u->filters[i].p);
    }
    cx_mqtt_suback_t ua = {.packet_id = u->packet_id, .rcs = rcs, .count = u->count};
    size_t before = cx_buf_used(outbuf(cl));
    if (cx_mqtt_encode_suback(outbuf(cl), (cx_mqtt_version)cl->version, CX_MQTT_UNSUBACK, &ua)) {
        fail_oom(cl);
        return;
    }
    sent(cl, before);
}

static void handle_disconnect(cx_client_t *cl, const cx_mqtt_reason_t *r)
{
    cx_session_t *s = cl->session;
    if (cl->version == CX_MQTT_V5 && cx_mqtt_props_has(&r->props, CX_PROP_SESSION_EXPIRY)) {
        /* A session that was to end at disconnect cannot be extended [MQTT-3.14.2-2]. */
        if (s->expiry_interval == 0 && r->props.session_expiry != 0) {
            cx_client_disconnect(cl, CX_RC_PROTOCOL_ERROR,
                                 "session expiry set on DISCONNECT after 0 on CONNECT");
            return;
        }
        s->expiry_interval = r->props.session_expiry;
    }
    /* 0x04 asks for the will; anything else from the client is a normal end. */
    cl->will_suppressed = !(cl->version == CX_MQTT_V5 && r->rc == CX_RC_DISCONNECT_WITH_WILL);
    if (cl->worker->limits.connection_messages)
        cx_log(CX_LOG_NOTICE, "Client %s disconnected.", s->client_id);
    cl->state = CX_CL_CLOSING;
    cx_conn_close(cl->conn, CX_OK);
}

static void send_auth(cx_client_t *cl, uint8_t rc, const uint8_t *data, size_t len)
{
    cx_mqtt_reason_t r = {.rc = rc};
    r.props.present = CX_PROP_BIT(CX_PROP_AUTH_METHOD);
    r.props.auth_method = cx_str_from_cstr(cl->auth_method);
    if (data) {
        r.props.present |= CX_PROP_BIT(CX_PROP_AUTH_DATA);
        r.props.auth_data = (cx_str_t){data, len};
    }
    size_t before = cx_buf_used(outbuf(cl));
    if (cx_mqtt_encode_reason(outbuf(cl), CX_MQTT_V5, CX_MQTT_AUTH, &r) != CX_OK) {
        fail_oom(cl);
        return;
    }
    sent(cl, before);
}

/* One step of an enhanced-authentication exchange (MQTT 5 §4.12): CONNECT with a method
 * (EXT_START), an AUTH 0x18 (continue) or 0x19 (re-authenticate) (EXT_CONTINUE). Returns
 * CULEX_ALLOW when the exchange succeeded (for CONNECT: go on with it); anything else means
 * this function already answered (AUTH sent, refused, disconnected) or a plugin is deciding
 * (CX_CHAIN_PENDING). */
static int ext_auth_step(cx_client_t *cl, int event, cx_str_t method, cx_str_t data,
                         bool reauth)
{
    bool connecting = cl->state != CX_CL_CONNECTED;
    if (!cl->auth_method) {
        cl->auth_method = cx_strndup((const char *)method.p, method.len);
        if (!cl->auth_method) {
            fail_oom(cl);
            return CULEX_DENY;
        }
    } else if (!cx_str_eq_cstr(method, cl->auth_method)) {
        /* The method may not change within a connection [MQTT-4.12.0-5]. */
        cx_client_disconnect(cl, CX_RC_PROTOCOL_ERROR, "authentication method changed");
        return CULEX_DENY;
    }
    culex_ev_auth_ext ev = {.size = sizeof ev, .client = cl->pc, .method = cl->auth_method,
                            .data = data.len ? data.p : NULL, .data_len = data.len,
                            .reauth = reauth};
    int v = cx_authz_check(cl, event, &ev, false);
    if (v == CX_CHAIN_PENDING)
        return v;
    if (ev.out_data) { /* answered at once: the output is in the event */
        cx_phost_free_mem(cl->auth_out);
        cl->auth_out = ev.out_data;
        cl->auth_out_len = ev.out_data_len;
    }
    if (v == CULEX_CONTINUE) {
        if (connecting && !cl->saved_connect) {
            /* CONNECT is handled again once the exchange succeeds: keep its bytes. */
            cl->saved_connect = cx_malloc(cl->cur_len);
            if (!cl->saved_connect) {
                fail_oom(cl);
                return CULEX_DENY;
            }
            memcpy(cl->saved_connect, cl->cur_pkt, cl->cur_len);
            cl->saved_connect_len = cl->cur_len;
            cl->state = CX_CL_AUTH;
        }
        if (!connecting)
            cl->reauthenticating = true;
        size_t n;
        uint8_t *out = cx_authz_take_out(cl, &n);
        send_auth(cl, CX_RC_CONTINUE_AUTH, out, n);
        cx_phost_free_mem(out);
        return CULEX_CONTINUE;
    }
    if (v == CULEX_ALLOW) {
        if (!connecting) {
            cl->reauthenticating = false;
            size_t n;
            uint8_t *out = cx_authz_take_out(cl, &n);
            send_auth(cl, CX_RC_SUCCESS, out, n); /* re-authentication succeeded */
            cx_phost_free_mem(out);
        }
        return CULEX_ALLOW;
    }
    /* Denied, or no plugin knew the method. */
    uint8_t rc = v == CULEX_DEFER ? CX_RC_BAD_AUTH_METHOD : CX_RC_NOT_AUTHORIZED;
    if (connecting)
        refuse(cl, rc, "enhanced authentication failed");
    else
        cx_client_disconnect(cl, rc, "re-authentication failed");
    return CULEX_DENY;
}

/* An AUTH packet: continues the exchange of CONNECT, or starts/continues a
 * re-authentication. AUTH outside of these is a protocol error [MQTT-4.12.0-1]. */
static void handle_auth(cx_client_t *cl, const cx_mqtt_reason_t *r)
{
    bool known = cl->auth_method != NULL;
    bool ok_rc = (cl->state == CX_CL_AUTH && r->rc == CX_RC_CONTINUE_AUTH) ||
                 (cl->state == CX_CL_CONNECTED &&
                  (r->rc == CX_RC_REAUTHENTICATE ||
                   (r->rc == CX_RC_CONTINUE_AUTH && cl->reauthenticating)));
    if (!known || !ok_rc || !cx_mqtt_props_has(&r->props, CX_PROP_AUTH_METHOD)) {
        if (cl->state == CX_CL_AUTH)
            refuse(cl, CX_RC_PROTOCOL_ERROR, "unexpected AUTH");
        else
            cx_client_disconnect(cl, CX_RC_PROTOCOL_ERROR, "AUTH without an exchange");
        return;
    }
    int v = ext_auth_step(cl, CULEX_EV_AUTH_EXT_CONTINUE, r->props.auth_method,
                          r->props.auth_data, cl->state == CX_CL_CONNECTED);
    if (v != CULEX_ALLOW || cl->state != CX_CL_AUTH)
        return;
    /* The exchange that began with CONNECT succeeded: handle that CONNECT now. */
    cx_mqtt_packet_t p;
    cx_mqtt_error_t err = {0};
    cl->ext_auth_ok = true;
    cl->state = CX_CL_NEW;
    if (cx_mqtt_decode(cl->saved_connect, cl->saved_connect_len, CX_MQTT_V5, false,
                       &cl->worker->arena, &p, &err) != CX_OK) {
        refuse(cl, CX_RC_UNSPECIFIED, "saved CONNECT unreadable");
        return;
    }
    handle_connect(cl, &p.u.connect);
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
    cl->cur_pkt = pkt;
    cl->cur_len = len;
    int rc = cx_mqtt_decode(pkt, len, ver, false, &w->arena, &p, &err);
    const char *who = cl->session ? cl->session->client_id : cl->conn->peer;
    if (rc == CX_ENOMEM) {
        fail_oom(cl);
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
                refuse(cl, err.rc, "unsupported protocol version");
                return;
            }
            if (is_connect && p.u.connect.protocol_level == CX_MQTT_V5) {
                /* v5 lets the server say why before closing [MQTT-3.2.2-6]; 3.x has no
                 * code for a malformed CONNECT, so it is just closed [MQTT-3.1.4-1]. */
                cl->version = CX_MQTT_V5;
                refuse(cl, err.rc, err.msg ? err.msg : "malformed CONNECT");
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
            handle_auth(cl, &p.u.reason);
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
        handle_connect(cl, &p.u.connect);
        return;
    }
    switch (p.type) {
    case CX_MQTT_CONNECT: {
        cx_client_disconnect(cl, CX_RC_PROTOCOL_ERROR, "second CONNECT");
        return;
    } /* [MQTT-3.1.0-2] */
    case CX_MQTT_PUBLISH: {
        handle_publish(cl, &p.u.publish);
        return;
    }
    case CX_MQTT_PUBACK:
    case CX_MQTT_PUBREC:
    case CX_MQTT_PUBREL:
    case CX_MQTT_PUBCOMP: {
        handle_ack(cl, p.type, &p.u.ack);
        return;
    }
    case CX_MQTT_SUBSCRIBE: {
        handle_subscribe(cl, &p.u.subscribe);
        return;
    }
    case CX_MQTT_UNSUBSCRIBE: {
        handle_unsubscribe(cl, &p.u.unsubscribe);
        return;
    }
    case CX_MQTT_PINGREQ: {
        size_t before = cx_buf_used(outbuf(cl));
        if (cx_mqtt_encode_ping(outbuf(cl), CX_MQTT_PINGRESP)) {
            fail_oom(cl);
            return;
        }
        sent(cl, before);
        return;
    }
    case CX_MQTT_DISCONNECT: {
        handle_disconnect(cl, &p.u.reason);
        return;
    }
    case CX_MQTT_AUTH:
        handle_auth(cl, &p.u.reason);
        return;
    default: {
        cx_client_disconnect(cl, CX_RC_PROTOCOL_ERROR, "unexpected packet type");
        return;
    }
    }
}

static void client_free(cx_client_t *cl)
{
    if (cx_list_linked(&cl->worker_link))
        cx_list_remove(&cl->worker_link);
    if (cl->alias_in) {
        for (size_t i = 0; i <= cl->alias_in_max; i++)
            cx_free(cl->alias_in[i]);
        cx_free(cl->alias_in);
    }
    alias_out_free(cl->alias_out);
    cx_pclient_unref(cl->pc);
    cx_free(cl->checks);
    cx_phost_free_mem(cl->auth_out);
    cx_free(cl->assigned_id);
    cx_free(cl->auth_method);
    cx_free(cl->saved_connect);
    cx_free(cl->username);
    cx_free(cl);
}

static void on_read(cx_conn_t *c)
{
    cx_client_t *cl = c->proto;
    cx_worker_t *w = cl->worker;
    size_t maxp = w->limits.max_packet_size;
    cl->last_rx_ms = (int64_t)cx_loop_now(w->loop);
    while (!c->closing && !cl->wait) {
        size_t avail = cx_buf_used(&c->in);
        if (!avail)
            break;
        if (cl->state == CX_CL_NEW && cx_buf_head(&c->in)[0] != (CX_MQTT_CONNECT << 4)) {
            /* Not MQTT, or not starting with CONNECT: no need to wait for a whole packet
             * [MQTT-3.1.0-1]. */
            cx_log(CX_LOG_NOTICE, "Connection from %s did not start with CONNECT; closing.",
                   c->peer);
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
        atomic_fetch_add_explicit(&w->ctr.bytes_received, total, memory_order_relaxed);
        handle_packet(cl, cx_buf_head(&c->in), total);
        cx_arena_reset(&w->arena);
        if (cl->wait)
            return; /* a plugin is deciding: the packet stays, to be handled again */
        cx_authz_packet_done(cl);
        if (cl->handover) {
            /* The session lives on another worker: the connection moves there with its
             * CONNECT still unread, and this client state goes away. */
            cx_worker_t *to = cl->handover;
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
    if (cl->session && !cl->will_suppressed && cl->worker->limits.connection_messages &&
        !cl->worker->broker->shutting_down)
        cx_log(CX_LOG_NOTICE, "Client %s closed its connection.", cl->session->client_id);
    cx_authz_client_gone(cl);
    if (cl->chain && cl->pc && cl->session) {
        culex_ev_client ev = {.size = sizeof ev, .client = cl->pc,
                              .reason = cl->will_suppressed ? 0 : CX_RC_UNSPECIFIED};
        cx_chain_notify(cl->chain, CULEX_EV_DISCONNECT, &ev);
    }
    detach_session(cl);
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
    cl->lconf = c->listener->conf;
    cl->state = CX_CL_NEW;
    cl->version = CX_MQTT_V311;
    cl->request_problem_info = true;
    cl->last_rx_ms = (int64_t)cx_loop_now(w->loop);
    const cx_config_t *cfg = w->broker->cfg;
    cl->chain = cx_phost_chain(w->broker->plugins, (int)(cl->lconf - cfg->listeners));
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
    /* A client waiting for a plugin cannot be read, so its pings are not seen yet. */
    if (cl->conn->closing || cl->wait)
        return;
    if (cl->state == CX_CL_NEW || cl->state == CX_CL_AUTH) {
        if (now - cl->last_rx_ms > CONNECT_TIMEOUT_MS) {
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
