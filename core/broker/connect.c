/* connect.c: the beginning and end of an MQTT connection: CONNECT validation, enhanced
 * authentication (AUTH), finding or creating the session (takeover, clean start, handover to
 * the session's worker), CONNACK, and DISCONNECT. */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "broker/authz.h"
#include "broker/client.h"
#include "broker/client_int.h"
#include "broker/registry.h"
#include "broker/router.h"
#include "broker/persist.h"
#include "broker/session.h"
#include "broker/worker.h"
#include "util/alloc.h"
#include "util/log.h"

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
    size_t before = cx_buf_used(cx_client_outbuf(cl));
    if (cx_mqtt_encode_connack(cx_client_outbuf(cl), (cx_mqtt_version)cl->version, &ca) != CX_OK) {
        cx_client_fail_oom(cl);
        return;
    }
    cx_client_sent(cl, before);
}

/* Refuses a CONNECT: CONNACK with the reason, then close [MQTT-3.2.2-6]. */
void cx_client_refuse(cx_client_t *cl, uint8_t rc, const char *why)
{
    cx_mqtt_props_t props = {0};
    cx_client_props_reason(cl, &props, why);
    send_connack(cl, rc, false, &props);
    cx_log(CX_LOG_NOTICE, "Client connection from %s refused: %s (%s).", cl->conn->peer, why,
           cx_mqtt_rc_name(rc));
    cl->state = CX_CL_CLOSING;
    cx_conn_close(cl->conn, CX_EPROTO);
}

/* --- session attach / detach --- */

void cx_client_detach_session(cx_client_t *cl)
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
    else
        cx_persist_session(s); /* when it went offline, and its expiry as it now is */
    cl->session = NULL;
    cx_session_unref(s);
    atomic_fetch_sub_explicit(&w->ctr.clients_connected, 1, memory_order_relaxed);
}

/* --- CONNECT --- */

static bool make_client_id(cx_client_t *cl, char *out, size_t outlen)
{
    static _Atomic uint64_t seq;
    uint64_t n = atomic_fetch_add(&seq, 1);
    const char *prefix = cx_client_lconf(cl)->listener_auto_id_prefix;
    if (!prefix)
        prefix = "auto-";
    /* Unique within the process, hard to guess across restarts. */
    uint64_t r = cl->conn->id * 0x9E3779B97F4A7C15ull ^ (uint64_t)cx_loop_now(cl->worker->loop);
    int len = snprintf(out, outlen, "%s%08" PRIX64 "-%04" PRIX64 "-%012" PRIX64, prefix,
                       (uint64_t)(r >> 32), (uint64_t)(n & 0xffff),
                       (uint64_t)((r ^ (n << 16)) & 0xffffffffffffull));
    return len > 0 && (size_t)len < outlen;
}

static cx_msg_t *make_will(cx_client_t *cl, const cx_mqtt_connect_t *c, cx_session_t *origin)
{
    char buf[512], *heap;
    cx_str_t topic = cx_client_mounted(cl, c->will_topic, buf, sizeof buf, &heap);
    if (!topic.p)
        return NULL;
    cx_msg_t *m =
        cx_msg_new(topic, c->will_payload, cl->version == CX_MQTT_V5 ? &c->will_props : NULL,
                   c->will_qos, c->will_retain, origin, (int64_t)cx_loop_now(cl->worker->loop));
    cx_free(heap);
    return m;
}

static int ext_auth_step(cx_client_t *cl, int event, cx_str_t method, cx_str_t data, bool reauth);

/* Moves the connection to the worker owning its session. After an enhanced-authentication
 * exchange the CONNECT is no longer in the read buffer, so it cannot move: the rare client
 * whose session appeared on another worker meanwhile is asked to retry. */
static void move_to(cx_client_t *cl, cx_worker_t *owner)
{
    if (cl->rare && cl->rare->ext_auth_ok) {
        cx_client_refuse(cl, CX_RC_SERVER_BUSY, "session moved during authentication; retry");
        return;
    }
    cx_client_rare_t *r = cx_client_rare(cl);
    if (!r) {
        cx_client_fail_oom(cl);
        return;
    }
    r->handover = owner;
}

/* MQTT 5: the client's limits from its CONNECT (Receive Maximum, Maximum Packet Size, Topic
 * Alias Maximum) and the CONNACK properties that tell it ours. */
static void v5_limits_and_props(cx_client_t *cl, const cx_mqtt_connect_t *c, cx_str_t assigned_id,
                                bool server_ka, bool ext_auth, cx_mqtt_props_t *props)
{
    const cx_listener_conf_t *lc = cx_client_lconf(cl);
    const cx_limits_t *lim = &cl->worker->limits;
    if (cx_mqtt_props_has(&c->props, CX_PROP_RECEIVE_MAX))
        cl->recv_max_out = c->props.receive_max;
    if (cx_mqtt_props_has(&c->props, CX_PROP_MAX_PACKET_SIZE))
        cl->max_packet_out = c->props.max_packet_size;
    uint16_t client_alias_max =
        cx_mqtt_props_has(&c->props, CX_PROP_TOPIC_ALIAS_MAX) ? c->props.topic_alias_max : 0;
    uint16_t broker_max = lc->max_topic_alias_broker > 0 ? (uint16_t)lc->max_topic_alias_broker : 0;
    cx_client_alias_out_init(cl, client_alias_max < broker_max ? client_alias_max : broker_max);
    cl->alias_in_max = lc->max_topic_alias > 0 ? (uint16_t)lc->max_topic_alias : 0;

    if (assigned_id.len) {
        props->present |= CX_PROP_BIT(CX_PROP_ASSIGNED_CLIENT_ID);
        props->assigned_client_id = assigned_id;
    }
    if (cl->server_recv_max != 65535) {
        props->present |= CX_PROP_BIT(CX_PROP_RECEIVE_MAX);
        props->receive_max = cl->server_recv_max;
    }
    if (cl->alias_in_max) {
        props->present |= CX_PROP_BIT(CX_PROP_TOPIC_ALIAS_MAX);
        props->topic_alias_max = cl->alias_in_max;
    }
    if (lc->max_qos < 2) {
        props->present |= CX_PROP_BIT(CX_PROP_MAX_QOS);
        props->max_qos = (uint8_t)lc->max_qos;
    }
    if (!lim->retain_available) {
        props->present |= CX_PROP_BIT(CX_PROP_RETAIN_AVAILABLE);
        props->retain_available = 0;
    }
    if (lim->max_packet_size && lim->max_packet_size < CX_MQTT_MAX_REMAINING) {
        props->present |= CX_PROP_BIT(CX_PROP_MAX_PACKET_SIZE);
        props->max_packet_size = (uint32_t)lim->max_packet_size;
    }
    if (server_ka) {
        props->present |= CX_PROP_BIT(CX_PROP_SERVER_KEEPALIVE);
        props->server_keepalive = cl->keepalive;
    }
    if (ext_auth) {
        props->present |= CX_PROP_BIT(CX_PROP_AUTH_METHOD);
        props->auth_method = c->props.auth_method;
        if (cl->rare && cl->rare->auth_out) {
            props->present |= CX_PROP_BIT(CX_PROP_AUTH_DATA);
            props->auth_data = (cx_str_t){cl->rare->auth_out, cl->rare->auth_out_len};
        }
    }
}

/* Finds or creates the session for client id `id`, taking over a connected one. Returns it
 * with a reference for the client, or NULL when the CONNECT was refused or the connection is
 * moving to the worker that owns the session (CONNECT is read again there). */
static cx_session_t *acquire_session(cx_client_t *cl, cx_str_t id, bool *created)
{
    cx_worker_t *w = cl->worker;
    cx_registry_t *reg = w->broker->registry;
    cx_session_t *s = NULL;
    for (int attempt = 0; attempt < 4 && !s; attempt++) {
        cx_session_t *found = cx_registry_get(reg, id);
        if (found && found->worker != w) {
            cx_worker_t *owner = found->worker;
            cx_session_unref(found);
            move_to(cl, owner);
            return NULL;
        }
        if (found && found->client) {
            /* Takeover: the existing connection is closed with 0x8E [MQTT-3.1.4-3]. Its
             * session may end right here (expiry 0); then a new one is made below. */
            cx_client_t *old = found->client;
            cx_log(CX_LOG_NOTICE, "Client %s already connected, closing old connection.",
                   found->client_id);
            cx_client_disconnect(old, CX_RC_SESSION_TAKEN_OVER, "session taken over");
            cx_client_detach_session(old);
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
            cx_client_refuse(cl, CX_RC_SERVER_UNAVAILABLE, "out of memory");
            return NULL;
        }
        cx_session_t *holder = cx_registry_insert(reg, fresh);
        if (holder == fresh) {
            s = holder; /* refs: the alive one from cx_session_new, ours from the insert */
            *created = true;
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
    if (!s)
        cx_client_refuse(cl, CX_RC_SERVER_UNAVAILABLE, "client id registry busy");
    return s;
}

void cx_client_on_connect(cx_client_t *cl, const cx_mqtt_connect_t *c)
{
    cx_worker_t *w = cl->worker;
    const cx_listener_conf_t *lc = cx_client_lconf(cl);
    const cx_limits_t *lim = &w->limits;
    bool v5 = c->protocol_level == CX_MQTT_V5;
    cl->version = c->protocol_level;
    cl->request_problem_info = true;
    if (v5 && cx_mqtt_props_has(&c->props, CX_PROP_REQUEST_PROBLEM_INFO))
        cl->request_problem_info = c->props.request_problem_info != 0;

    if (!(lc->accept_protocol_versions & (1u << c->protocol_level))) {
        cx_client_refuse(cl, CX_RC_UNSUPPORTED_PROTOCOL_VERSION,
                         "protocol version not accepted on this listener");
        return;
    }
    bool ext_auth = v5 && cx_mqtt_props_has(&c->props, CX_PROP_AUTH_METHOD);
    if (ext_auth && !cx_chain_has(cl->chain, CULEX_EV_AUTH_EXT_START)) {
        cx_client_refuse(cl, CX_RC_BAD_AUTH_METHOD, "no plugin offers this authentication method");
        return;
    }

    /* use_identity_as_username / use_subject_as_username: the client certificate (or the
     * PSK identity, or the CN a TLS-terminating proxy vouched for) names the user. As in
     * mosquitto, the CONNECT's username and password are ignored and no password check is
     * made: the certificate authenticated the client. */
    bool cert_user = lc->use_identity_as_username || lc->use_subject_as_username;
    bool has_username = c->has_username;
    cx_str_t username = c->username;
    if (cert_user) {
        const char *name = lc->use_subject_as_username ? cx_conn_field(cl->conn, "subject")
                           : cx_conn_field(cl->conn, "psk_identity")
                               ? cx_conn_field(cl->conn, "psk_identity")
                               : cx_conn_field(cl->conn, "CN");
        if (!name || !*name) {
            bool cert = cx_conn_field(cl->conn, "sha256") != NULL;
            if (cert)
                cx_client_refuse(cl, CX_RC_NOT_AUTHORIZED,
                                 "the client certificate has no usable CN for "
                                 "use_identity_as_username");
            else
                cx_client_refuse(cl, CX_RC_BAD_USERNAME_OR_PASSWORD,
                                 "no client certificate, needed by use_identity_as_username");
            return;
        }
        username = cx_str_from_cstr(name);
        has_username = true;
    }

    /* Client identifier [MQTT-3.1.3]. */
    char idbuf[128];
    cx_str_t id = c->client_id;
    bool assigned = false;
    if (lc->use_username_as_clientid && has_username)
        id = username;
    if (id.len == 0) {
        if (c->protocol_level == CX_MQTT_V31) {
            cx_client_refuse(cl, CX_RC_CLIENT_ID_NOT_VALID, "MQTT 3.1 requires a client id");
            return;
        }
        if (c->protocol_level == CX_MQTT_V311 && !c->clean_start) {
            cx_client_refuse(cl, CX_RC_CLIENT_ID_NOT_VALID,
                             "empty client id requires clean session");
            return;
        } /* [MQTT-3.1.3-8] */
        if (!lc->allow_zero_length_clientid) {
            cx_client_refuse(cl, CX_RC_CLIENT_ID_NOT_VALID, "empty client id not allowed");
            return;
        }
        cx_client_rare_t *r = cx_client_rare(cl);
        if (!r) {
            cx_client_fail_oom(cl);
            return;
        }
        if (!r->assigned_id) {
            if (!make_client_id(cl, idbuf, sizeof idbuf)) {
                cx_client_refuse(cl, CX_RC_CLIENT_ID_NOT_VALID, "auto_id_prefix too long");
                return;
            }
            r->assigned_id = cx_strdup(idbuf);
            if (!r->assigned_id) {
                cx_client_fail_oom(cl);
                return;
            }
        }
        id = cx_str_from_cstr(r->assigned_id);
        assigned = true;
    } else if (c->protocol_level == CX_MQTT_V31 && id.len > 23) {
        cx_client_refuse(cl, CX_RC_CLIENT_ID_NOT_VALID, "MQTT 3.1 client id longer than 23");
        return;
    }

    /* Keep alive: a v5 client is told the server's value; a 3.x client is refused. */
    uint16_t keepalive = c->keepalive;
    bool server_ka = false;
    if (lim->max_keepalive > 0 && lim->max_keepalive < 65535 &&
        (keepalive > lim->max_keepalive || (keepalive == 0 && v5))) {
        if (!v5) {
            cx_client_refuse(cl, CX_RC_CLIENT_ID_NOT_VALID, "keepalive above max_keepalive");
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
     * plugin defers [MQTT-3.1.4-2]. The plugins' view of the client exists only when a
     * plugin can see it (a chain on this listener): an idle connection without plugins
     * does not pay for it. */
    if (cl->chain && !cl->pc) {
        size_t flen = 0;
        const char *fields = cx_conn_fields(cl->conn, &flen);
        cl->pc = cx_pclient_new((const char *)id.p, id.len,
                                has_username ? (const char *)username.p : NULL, username.len,
                                cl->conn->peer, c->protocol_level, lc->port);
        if (cl->pc && flen && cx_pclient_set_cert(cl->pc, fields, flen) != CX_OK) {
            cx_pclient_unref(cl->pc);
            cl->pc = NULL;
        }
        if (!cl->pc) {
            cx_client_refuse(cl, CX_RC_SERVER_UNAVAILABLE, "out of memory");
            return;
        }
    }
    int verdict;
    if (ext_auth && cl->rare && cl->rare->ext_auth_ok) {
        verdict = CULEX_ALLOW; /* the AUTH exchange that followed this CONNECT succeeded */
    } else if (ext_auth) {
        verdict = ext_auth_step(cl, CULEX_EV_AUTH_EXT_START, c->props.auth_method,
                                c->props.auth_data, false);
        if (verdict != CULEX_ALLOW)
            return; /* pending, continuing with AUTH, or refused */
    } else if (cert_user) {
        verdict = CULEX_ALLOW;
    } else if (!cl->chain) {
        verdict = CULEX_DEFER;
    } else {
        culex_ev_auth_basic aev = {
            .size = sizeof aev,
            .client = cl->pc,
            .client_id = cl->pc->id,
            .username = cl->pc->username,
            .password = c->has_password ? c->password.p : NULL,
            .password_len = c->password.len,
        };
        verdict = cx_authz_check(cl, CULEX_EV_AUTH_BASIC, &aev, false);
    }
    if (verdict == CX_CHAIN_PENDING)
        return; /* replayed when the plugin answers */
    if (verdict == CULEX_DEFER)
        verdict = lc->allow_anonymous ? CULEX_ALLOW : CULEX_DENY;
    if (verdict != CULEX_ALLOW) {
        if (v5 && c->has_username)
            cx_client_refuse(cl, CX_RC_BAD_USERNAME_OR_PASSWORD, "bad user name or password");
        else
            cx_client_refuse(cl, CX_RC_NOT_AUTHORIZED, "not authorised");
        return;
    }

    const char *prefix = w->broker->cfg->clientid_prefixes;
    if (prefix && !cx_str_has_prefix(id, prefix)) {
        cx_client_refuse(cl, CX_RC_NOT_AUTHORIZED, "client id does not match clientid_prefixes");
        return;
    }

    int gmax = w->broker->cfg->global_max_clients;
    if (gmax >= 0) {
        int connected = 0;
        for (size_t i = 0; i < w->broker->nworkers; i++)
            connected += atomic_load_explicit(&w->broker->workers[i].ctr.clients_connected,
                                              memory_order_relaxed);
        if (connected >= gmax) {
            cx_client_refuse(cl, CX_RC_QUOTA_EXCEEDED, "global_max_clients reached");
            return;
        }
    }

    if (c->will_flag) {
        if (c->will_qos > lc->max_qos) {
            cx_client_refuse(cl, CX_RC_QOS_NOT_SUPPORTED, "will QoS above max_qos");
            return;
        }
        if (c->will_retain && !lim->retain_available) {
            cx_client_refuse(cl, CX_RC_RETAIN_NOT_SUPPORTED, "retain not available");
            return;
        }
    }

    bool created = false;
    cx_session_t *s = acquire_session(cl, id, &created);
    if (!s)
        return; /* refused, or moving to the session's worker */

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
    if (has_username)
        cl->username = cx_strndup((const char *)username.p, username.len);
    cx_persist_session(s);

    cl->keepalive = keepalive;
    cl->recv_max_out = 65535;
    cl->server_recv_max = lim->max_inflight_messages > 0 && lim->max_inflight_messages < 65535
                              ? (uint16_t)lim->max_inflight_messages
                              : 65535;
    cx_mqtt_props_t props = {0};
    if (v5)
        v5_limits_and_props(cl, c, assigned ? id : CX_STR_NULL, server_ka, ext_auth, &props);
    if (assigned && cl->pc && cx_pclient_set_id(cl->pc, (const char *)id.p, id.len) != CX_OK) {
        cx_client_fail_oom(cl);
        return;
    }
    send_connack(cl, CX_RC_SUCCESS, present, &props);
    cl->state = CX_CL_CONNECTED;
    cl->last_rx_ms = (int64_t)cx_loop_now(w->loop); /* the CONNECT was just read */
    if (cl->rare) { /* the id is in the session now; the CONNECT is answered */
        cx_phost_free_mem(cl->rare->auth_out);
        cl->rare->auth_out = NULL;
        cx_free_null(cl->rare->saved_connect);
        cx_free_null(cl->rare->assigned_id);
    }
    if (cl->chain) {
        culex_ev_client cev = {.size = sizeof cev, .client = cl->pc, .reason = 0};
        cx_chain_notify(cl->chain, CULEX_EV_CONNECT, &cev);
    }
    int now_connected =
        atomic_fetch_add_explicit(&w->ctr.clients_connected, 1, memory_order_relaxed) + 1;
    (void)now_connected;
    if (lim->connection_messages)
        cx_log(CX_LOG_NOTICE, "New client connected from %s as %s (p%d, c%d, k%d%s%s%s).",
               cl->conn->peer, s->client_id,
               c->protocol_level == CX_MQTT_V5 ? 5 : c->protocol_level - 2, c->clean_start ? 1 : 0,
               keepalive, has_username ? ", u'" : "",
               has_username && cl->username ? cl->username : "", has_username ? "'" : "");
    if (present)
        cx_session_resend(s);
    cx_session_pump(s);
}

/* --- PUBLISH and acknowledgements --- */

void cx_client_on_disconnect(cx_client_t *cl, const cx_mqtt_reason_t *r)
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
    r.props.auth_method = cx_str_from_cstr(cl->rare->auth_method); /* in an exchange */
    if (data) {
        r.props.present |= CX_PROP_BIT(CX_PROP_AUTH_DATA);
        r.props.auth_data = (cx_str_t){data, len};
    }
    size_t before = cx_buf_used(cx_client_outbuf(cl));
    if (cx_mqtt_encode_reason(cx_client_outbuf(cl), CX_MQTT_V5, CX_MQTT_AUTH, &r) != CX_OK) {
        cx_client_fail_oom(cl);
        return;
    }
    cx_client_sent(cl, before);
}

/* One step of an enhanced-authentication exchange (MQTT 5 §4.12): CONNECT with a method
 * (EXT_START), an AUTH 0x18 (continue) or 0x19 (re-authenticate) (EXT_CONTINUE). Returns
 * CULEX_ALLOW when the exchange succeeded (for CONNECT: go on with it); anything else means
 * this function already answered (AUTH sent, refused, disconnected) or a plugin is deciding
 * (CX_CHAIN_PENDING). */
static int ext_auth_step(cx_client_t *cl, int event, cx_str_t method, cx_str_t data, bool reauth)
{
    bool connecting = cl->state != CX_CL_CONNECTED;
    cx_client_rare_t *r = cx_client_rare(cl);
    if (!r) {
        cx_client_fail_oom(cl);
        return CULEX_DENY;
    }
    if (!r->auth_method) {
        r->auth_method = cx_strndup((const char *)method.p, method.len);
        if (!r->auth_method) {
            cx_client_fail_oom(cl);
            return CULEX_DENY;
        }
    } else if (!cx_str_eq_cstr(method, r->auth_method)) {
        /* The method may not change within a connection [MQTT-4.12.0-5]. */
        cx_client_disconnect(cl, CX_RC_PROTOCOL_ERROR, "authentication method changed");
        return CULEX_DENY;
    }
    culex_ev_auth_ext ev = {.size = sizeof ev,
                            .client = cl->pc,
                            .method = r->auth_method,
                            .data = data.len ? data.p : NULL,
                            .data_len = data.len,
                            .reauth = reauth};
    int v = cx_authz_check(cl, event, &ev, false);
    if (v == CX_CHAIN_PENDING)
        return v;
    if (ev.out_data) { /* answered at once: the output is in the event */
        cx_phost_free_mem(r->auth_out);
        r->auth_out = ev.out_data;
        r->auth_out_len = ev.out_data_len;
    }
    if (v == CULEX_CONTINUE) {
        if (connecting && !r->saved_connect) {
            /* CONNECT is handled again once the exchange succeeds: keep its bytes. */
            cx_worker_t *w = cl->worker;
            r->saved_connect = cx_malloc(w->cur_len);
            if (!r->saved_connect) {
                cx_client_fail_oom(cl);
                return CULEX_DENY;
            }
            memcpy(r->saved_connect, w->cur_pkt, w->cur_len);
            r->saved_connect_len = w->cur_len;
            cl->state = CX_CL_AUTH;
            cl->last_rx_ms = (int64_t)cx_loop_now(cl->worker->loop);
        }
        if (!connecting)
            r->reauthenticating = true;
        size_t n;
        uint8_t *out = cx_authz_take_out(cl, &n);
        send_auth(cl, CX_RC_CONTINUE_AUTH, out, n);
        cx_phost_free_mem(out);
        return CULEX_CONTINUE;
    }
    if (v == CULEX_ALLOW) {
        if (!connecting) {
            r->reauthenticating = false;
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
        cx_client_refuse(cl, rc, "enhanced authentication failed");
    else
        cx_client_disconnect(cl, rc, "re-authentication failed");
    return CULEX_DENY;
}

/* An AUTH packet: continues the exchange of CONNECT, or starts/continues a
 * re-authentication. AUTH outside of these is a protocol error [MQTT-4.12.0-1]. */
void cx_client_on_auth(cx_client_t *cl, const cx_mqtt_reason_t *r)
{
    cx_client_rare_t *rare = cl->rare;
    bool known = rare && rare->auth_method;
    bool reauthenticating = rare && rare->reauthenticating;
    bool ok_rc =
        (cl->state == CX_CL_AUTH && r->rc == CX_RC_CONTINUE_AUTH) ||
        (cl->state == CX_CL_CONNECTED &&
         (r->rc == CX_RC_REAUTHENTICATE || (r->rc == CX_RC_CONTINUE_AUTH && reauthenticating)));
    if (!known || !ok_rc || !cx_mqtt_props_has(&r->props, CX_PROP_AUTH_METHOD)) {
        if (cl->state == CX_CL_AUTH)
            cx_client_refuse(cl, CX_RC_PROTOCOL_ERROR, "unexpected AUTH");
        else
            cx_client_disconnect(cl, CX_RC_PROTOCOL_ERROR, "AUTH without an exchange");
        return;
    }
    int v = ext_auth_step(cl, CULEX_EV_AUTH_EXT_CONTINUE, r->props.auth_method, r->props.auth_data,
                          cl->state == CX_CL_CONNECTED);
    if (v != CULEX_ALLOW || cl->state != CX_CL_AUTH)
        return;
    /* The exchange that began with CONNECT succeeded: handle that CONNECT now. */
    cx_mqtt_packet_t p;
    cx_mqtt_error_t err = {0};
    rare->ext_auth_ok = true;
    cl->state = CX_CL_NEW;
    if (cx_mqtt_decode(rare->saved_connect, rare->saved_connect_len, CX_MQTT_V5, false,
                       &cl->worker->arena, &p, &err) != CX_OK) {
        cx_client_refuse(cl, CX_RC_UNSPECIFIED, "saved CONNECT unreadable");
        return;
    }
    cx_client_on_connect(cl, &p.u.connect);
}
