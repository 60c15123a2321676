/* pubsub.c: PUBLISH from a client (ACL, message interceptors, QoS 2 reception, routing),
 * acknowledgements of the broker's messages, SUBSCRIBE (retained messages) and
 * UNSUBSCRIBE. */
#include <string.h>

#include "broker/authz.h"
#include "broker/client.h"
#include "broker/client_int.h"
#include "broker/router.h"
#include "broker/flow.h"
#include "broker/persist.h"
#include "broker/session.h"
#include "util/alloc.h"
#include "util/log.h"

/* Takes a message interceptor's new user properties into props (copied into the worker's
 * arena, which lives until the packet is done). False if they are not valid UTF-8. */
static bool replace_user_props(cx_client_t *cl, cx_mqtt_props_t *props, const culex_ev_message *mev)
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
static void release_plugin_output(char *topic, uint8_t *payload, culex_user_property *up, size_t n)
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
        cx_persist_ack(cl, CX_MQTT_PUBACK, p->packet_id, rc);
    } else if (p->qos == 2) {
        if (rc < 0x80 && cx_session_qos2_in_add(cl->session, p->packet_id) < 0) {
            cx_client_fail_oom(cl);
            return;
        }
        cx_persist_ack(cl, CX_MQTT_PUBREC, p->packet_id, rc);
    }
}

void cx_client_on_publish(cx_client_t *cl, const cx_mqtt_publish_t *p)
{
    cx_worker_t *w = cl->worker;
    cx_session_t *s = cl->session;
    const cx_listener_conf_t *lc = cx_client_lconf(cl);
    bool v5 = cl->version == CX_MQTT_V5;

    if (p->qos > lc->max_qos) {
        cx_client_disconnect(cl, CX_RC_QOS_NOT_SUPPORTED, "QoS above max_qos");
        return;
    }
    if (p->retain && !w->limits.retain_available) {
        cx_client_disconnect(cl, CX_RC_RETAIN_NOT_SUPPORTED, "retain not available");
        return;
    }
    if (p->qos > 0 && !cx_persist_accepting(w)) {
        /* persistence_sync always, and the store cannot write: acknowledging would promise
         * what cannot be kept. MQTT 5 can refuse the message; 3.x can only disconnect. */
        if (v5)
            cx_client_send_ack(cl, p->qos == 1 ? CX_MQTT_PUBACK : CX_MQTT_PUBREC, p->packet_id,
                               CX_RC_UNSPECIFIED);
        else
            cx_client_disconnect(cl, CX_RC_UNSPECIFIED, "persistence is failing");
        return;
    }

    cx_str_t topic = p->topic;
    if (v5 && cx_mqtt_props_has(&p->props, CX_PROP_TOPIC_ALIAS)) {
        uint16_t a = p->props.topic_alias;
        if (a == 0 || a > cl->alias_in_max) {
            cx_client_disconnect(cl, CX_RC_TOPIC_ALIAS_INVALID, "topic alias out of range");
            return;
        }
        cx_client_rare_t *r = cx_client_rare(cl);
        if (r && !r->alias_in)
            r->alias_in = cx_calloc(cl->alias_in_max + 1u, sizeof(char *));
        if (!r || !r->alias_in) {
            cx_client_fail_oom(cl);
            return;
        }
        char **alias_in = r->alias_in;
        if (topic.len == 0) {
            if (!alias_in[a]) {
                cx_client_disconnect(cl, CX_RC_PROTOCOL_ERROR, "unknown topic alias");
                return;
            }
            topic = cx_str_from_cstr(alias_in[a]);
        } else {
            char *t = cx_strndup((const char *)topic.p, topic.len);
            if (!t) {
                cx_client_fail_oom(cl);
                return;
            }
            cx_free(alias_in[a]);
            alias_in[a] = t;
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
        cx_persist_ack(cl, CX_MQTT_PUBREC, p->packet_id, CX_RC_SUCCESS);
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
        char *tcopy = cx_str_cstr(topic, tbuf, sizeof tbuf);
        if (!tcopy) {
            cx_client_fail_oom(cl);
            return;
        }
        culex_ev_acl aev = {.size = sizeof aev,
                            .client = cl->pc,
                            .access = CULEX_ACCESS_PUBLISH,
                            .topic = tcopy,
                            .qos = p->qos,
                            .retain = p->retain,
                            .payload = p->payload.p,
                            .payload_len = p->payload.len};
        int v = cx_authz_check(cl, CULEX_EV_ACL, &aev, false);
        if (v == CULEX_DEFER)
            v = cx_chain_has(cl->chain, CULEX_EV_ACL) ? CULEX_DENY : CULEX_ALLOW;
        if (v == CULEX_ALLOW && cx_chain_has(cl->chain, CULEX_EV_MESSAGE)) {
            culex_ev_message mev = {.size = sizeof mev,
                                    .client = cl->pc,
                                    .topic = tcopy,
                                    .payload = p->payload.p,
                                    .payload_len = p->payload.len,
                                    .qos = p->qos,
                                    .retain = p->retain};
            if (v5 && p->props.user_prop_count &&
                cx_mqtt_props_has(&p->props, CX_PROP_USER_PROPERTY)) {
                culex_user_property *up =
                    cx_arena_alloc(&w->arena, p->props.user_prop_count * sizeof *up);
                if (!up) {
                    cx_client_fail_oom(cl);
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
            if (mev.replace_user_props && mv != CULEX_DENY && !replace_user_props(cl, &props, &mev))
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
        cx_str_cstr_free(tcopy, tbuf);
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
            cx_client_fail_oom(cl);
            goto out;
        }
        /* Only an MQTT 5 client was told our Receive Maximum [MQTT-3.3.4-9]; a 3.x client
         * is bounded by its 65535 packet ids alone, as with Mosquitto. */
        if (v5 && s->qos2_in_count > cl->server_recv_max) {
            cx_client_disconnect(cl, CX_RC_RECEIVE_MAX_EXCEEDED, "receive maximum exceeded");
            goto out;
        }
    }

    atomic_fetch_add_explicit(&w->ctr.pub_received, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&w->ctr.pub_bytes_received, p->payload.len, memory_order_relaxed);

    /* Clients may not inject into the broker's own $SYS tree. */
    bool deliver = !cx_str_has_prefix(topic, "$SYS");
    size_t matched = 0;
    if (deliver) {
        char buf[512], *heap;
        topic = cx_client_mounted(cl, topic, buf, sizeof buf, &heap);
        if (!topic.p) {
            cx_client_fail_oom(cl);
            goto out;
        }
        cx_msg_t *m = cx_msg_new(topic, payload, v5 ? &props : NULL, p->qos, p->retain, s,
                                 (int64_t)cx_loop_now(w->loop));
        cx_free(heap);
        if (!m) {
            cx_client_fail_oom(cl);
            goto out;
        }
        if (p->retain)
            cx_route_retain(w, m);
        matched = cx_route_publish(w, m, s);
        cx_msg_unref(m);
        cx_flow_after_publish(cl); /* held back if a receiver is congested */
    }
    uint8_t rc = v5 && matched == 0 ? CX_RC_NO_MATCHING_SUBSCRIBERS : CX_RC_SUCCESS;
    if (p->qos == 1)
        cx_persist_ack(cl, CX_MQTT_PUBACK, p->packet_id, rc);
    else if (p->qos == 2)
        cx_persist_ack(cl, CX_MQTT_PUBREC, p->packet_id, rc);
out:
    release_plugin_output(new_topic, new_payload, new_props, new_nprops);
}

void cx_client_on_ack(cx_client_t *cl, cx_mqtt_type type, const cx_mqtt_ack_t *a)
{
    cx_session_t *s = cl->session;
    if (type == CX_MQTT_PUBREL) {
        bool known = cx_session_qos2_in_release(s, a->packet_id);
        cx_persist_ack(cl, CX_MQTT_PUBCOMP, a->packet_id,
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
    cx_target_t t = {.session = rc->s, .qos = qos, .retain = true,
                     .nsub = rc->sub_id ? 1 : 0, .sub_id = rc->sub_id,
                     .epoch = atomic_load_explicit(&rc->s->epoch, memory_order_relaxed)};
    cx_session_deliver(m, &t);
}

/* Asks the ACL chain whether the client may (un)subscribe `filter` (as the client wrote
 * it). Returns CULEX_ALLOW, CULEX_DENY or CX_CHAIN_PENDING. Every hook deferring means
 * deny once any ACL source is configured, allow otherwise. */
static int acl_filter(cx_client_t *cl, int access, cx_str_t filter, uint8_t qos)
{
    if (!cl->chain || !cx_chain_has(cl->chain, CULEX_EV_ACL))
        return CULEX_ALLOW;
    char buf[512];
    char *f = cx_str_cstr(filter, buf, sizeof buf);
    if (!f)
        return CULEX_DENY;
    culex_ev_acl ev = {
        .size = sizeof ev, .client = cl->pc, .access = access, .topic = f, .qos = qos};
    int v = cx_authz_check(cl, CULEX_EV_ACL, &ev, false);
    cx_str_cstr_free(f, buf);
    if (v == CULEX_DEFER)
        v = CULEX_DENY;
    return v == CX_CHAIN_PENDING || v == CULEX_ALLOW ? v : CULEX_DENY;
}

void cx_client_on_subscribe(cx_client_t *cl, const cx_mqtt_subscribe_t *sub)
{
    cx_worker_t *w = cl->worker;
    cx_session_t *s = cl->session;
    uint8_t rcs_small[32];
    uint8_t *rcs = sub->count <= 32 ? rcs_small : cx_arena_alloc(&w->arena, sub->count);
    uint8_t *send_retained = cx_arena_alloc(&w->arena, sub->count);
    uint8_t *denied = cx_arena_alloc(&w->arena, sub->count);
    if (!rcs || !send_retained || !denied) {
        cx_client_fail_oom(cl);
        return;
    }
    /* Every check before the first change, so that a replay after a slow plugin's answer
     * starts from a clean state. */
    for (size_t i = 0; i < sub->count; i++) {
        int v = acl_filter(cl, CULEX_ACCESS_SUBSCRIBE, sub->entries[i].filter, sub->entries[i].qos);
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
        cx_str_t full = cx_client_mounted(cl, real, buf, sizeof buf, &heap);
        if (!full.p) {
            rcs[i] = CX_RC_UNSPECIFIED;
            continue;
        }
        int max_qos = cx_client_lconf(cl)->max_qos;
        uint8_t granted = e->qos < max_qos ? e->qos : (uint8_t)max_qos;
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
            cx_client_props_reason(cl, &sa.props, "some subscriptions were refused");
            break;
        }
    size_t before = cx_buf_used(cx_client_outbuf(cl));
    if (cx_mqtt_encode_suback(cx_client_outbuf(cl), (cx_mqtt_version)cl->version, CX_MQTT_SUBACK,
                              &sa)) {
        cx_client_fail_oom(cl);
        return;
    }
    cx_persist_hold_output(cl, before);

    for (size_t i = 0; i < sub->count; i++) {
        if (!send_retained[i])
            continue;
        char buf[512], *heap;
        cx_str_t full = cx_client_mounted(cl, sub->entries[i].filter, buf, sizeof buf, &heap);
        if (!full.p)
            continue;
        retained_ctx_t rc = {.s = s, .qos = rcs[i], .sub_id = sub_id};
        cx_retain_match(w->broker->retained, full, retained_cb, &rc);
        cx_free(heap);
    }
}

void cx_client_on_unsubscribe(cx_client_t *cl, const cx_mqtt_unsubscribe_t *u)
{
    cx_worker_t *w = cl->worker;
    cx_session_t *s = cl->session;
    uint8_t *rcs = cx_arena_alloc(&w->arena, u->count);
    if (!rcs) {
        cx_client_fail_oom(cl);
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
        cx_str_t full = cx_client_mounted(cl, real, buf, sizeof buf, &heap);
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
    size_t before = cx_buf_used(cx_client_outbuf(cl));
    if (cx_mqtt_encode_suback(cx_client_outbuf(cl), (cx_mqtt_version)cl->version, CX_MQTT_UNSUBACK,
                              &ua)) {
        cx_client_fail_oom(cl);
        return;
    }
    cx_persist_hold_output(cl, before);
}
