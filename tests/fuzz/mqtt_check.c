/* mqtt_check.c: invariants of decoded MQTT packets and the decode/encode round trip, shared
 * by the codec fuzz targets (see mqtt_check.h for the promises checked). */
#include "mqtt_check.h"

#include <string.h>

#include "fuzz.h"
#include "util/err.h"

#define BIT(x) CX_PROP_BIT(CX_PROP_##x)

uint8_t *fz_dup(const uint8_t *p, size_t n)
{
    uint8_t *c = malloc(n ? n : 1);
    FUZZ_CHECK(c != NULL);
    if (n)
        memcpy(c, p, n);
    return c;
}

uint64_t fz_pctx_allowed(cx_pctx ctx)
{
    switch (ctx) {
    case CX_PCTX_CONNECT: return CX_PROPS_CONNECT;
    case CX_PCTX_WILL: return CX_PROPS_WILL;
    case CX_PCTX_CONNACK: return CX_PROPS_CONNACK;
    case CX_PCTX_PUBLISH_C: return CX_PROPS_PUBLISH & ~BIT(SUBSCRIPTION_ID);
    case CX_PCTX_PUBLISH_S: return CX_PROPS_PUBLISH;
    case CX_PCTX_PUBACK:
    case CX_PCTX_PUBREC:
    case CX_PCTX_PUBREL:
    case CX_PCTX_PUBCOMP:
    case CX_PCTX_SUBACK:
    case CX_PCTX_UNSUBACK: return CX_PROPS_ACK;
    case CX_PCTX_SUBSCRIBE: return CX_PROPS_SUBSCRIBE;
    case CX_PCTX_UNSUBSCRIBE: return CX_PROPS_UNSUBSCRIBE;
    case CX_PCTX_DISCONNECT_C: return CX_PROPS_DISCONNECT;
    case CX_PCTX_DISCONNECT_S: return CX_PROPS_DISCONNECT & ~BIT(SESSION_EXPIRY);
    case CX_PCTX_AUTH: return CX_PROPS_AUTH;
    case CX_PCTX_COUNT: break;
    }
    FUZZ_CHECK(!"unknown property context");
    return 0;
}

cx_pctx fz_packet_pctx(const cx_mqtt_packet_t *p, bool is_server)
{
    switch (p->type) {
    case CX_MQTT_CONNECT: return CX_PCTX_CONNECT;
    case CX_MQTT_CONNACK: return CX_PCTX_CONNACK;
    case CX_MQTT_PUBLISH: return is_server ? CX_PCTX_PUBLISH_S : CX_PCTX_PUBLISH_C;
    case CX_MQTT_PUBACK: return CX_PCTX_PUBACK;
    case CX_MQTT_PUBREC: return CX_PCTX_PUBREC;
    case CX_MQTT_PUBREL: return CX_PCTX_PUBREL;
    case CX_MQTT_PUBCOMP: return CX_PCTX_PUBCOMP;
    case CX_MQTT_SUBSCRIBE: return CX_PCTX_SUBSCRIBE;
    case CX_MQTT_SUBACK: return CX_PCTX_SUBACK;
    case CX_MQTT_UNSUBSCRIBE: return CX_PCTX_UNSUBSCRIBE;
    case CX_MQTT_UNSUBACK: return CX_PCTX_UNSUBACK;
    case CX_MQTT_DISCONNECT: return is_server ? CX_PCTX_DISCONNECT_S : CX_PCTX_DISCONNECT_C;
    case CX_MQTT_AUTH: return CX_PCTX_AUTH;
    default: return CX_PCTX_COUNT; /* PINGREQ, PINGRESP: no properties */
    }
}

/* ---- slices and strings ------------------------------------------------------------------ */

/* Compared as integers: the slice and the window may be unrelated objects when the
 * decoder is wrong, which is exactly what this is looking for. */
static bool inside(cx_str_t s, const uint8_t *lo, const uint8_t *hi)
{
    if (s.len == 0)
        return true;
    uintptr_t p = (uintptr_t)s.p, l = (uintptr_t)lo, h = (uintptr_t)hi;
    return s.p != NULL && p >= l && p <= h && s.len <= h - p;
}

static void check_utf8(cx_str_t s, const uint8_t *lo, const uint8_t *hi)
{
    FUZZ_CHECK(inside(s, lo, hi));
    FUZZ_CHECK(cx_mqtt_utf8_is_valid(s));
}

/* A topic filter SUBSCRIBE or UNSUBSCRIBE accepted: the public validators agree. */
static void check_filter(cx_str_t f, const uint8_t *lo, const uint8_t *hi, bool *shared)
{
    FUZZ_CHECK(inside(f, lo, hi));
    FUZZ_CHECK(f.len > 0);
    cx_str_t group, real;
    int s = cx_mqtt_shared_parse(f, &group, &real);
    FUZZ_CHECK(s == 0 || s == 1);
    if (s == 1) {
        FUZZ_CHECK(group.len > 0 && inside(group, f.p, f.p + f.len));
        FUZZ_CHECK(memchr(group.p, '/', group.len) == NULL);
        FUZZ_CHECK(inside(real, f.p, f.p + f.len));
        FUZZ_CHECK(cx_mqtt_topic_filter_is_valid(real));
        FUZZ_CHECK(cx_mqtt_utf8_is_valid(f));
    } else {
        FUZZ_CHECK(group.len == 0 && cx_str_eq(real, f));
        FUZZ_CHECK(cx_mqtt_topic_filter_is_valid(f));
    }
    *shared = s == 1;
}

/* ---- properties ------------------------------------------------------------------------- */

void fz_check_props(const cx_mqtt_props_t *p, cx_pctx ctx, const uint8_t *lo,
                    const uint8_t *hi)
{
    uint64_t m = p->present;
    FUZZ_CHECK((m & ~fz_pctx_allowed(ctx)) == 0);
    if (m & BIT(PAYLOAD_FORMAT))
        FUZZ_CHECK(p->payload_format <= 1);
    if (m & BIT(REQUEST_PROBLEM_INFO))
        FUZZ_CHECK(p->request_problem_info <= 1);
    if (m & BIT(REQUEST_RESPONSE_INFO))
        FUZZ_CHECK(p->request_response_info <= 1);
    if (m & BIT(MAX_QOS))
        FUZZ_CHECK(p->max_qos <= 1);
    if (m & BIT(RETAIN_AVAILABLE))
        FUZZ_CHECK(p->retain_available <= 1);
    if (m & BIT(WILDCARD_SUB_AVAILABLE))
        FUZZ_CHECK(p->wildcard_sub_available <= 1);
    if (m & BIT(SUB_ID_AVAILABLE))
        FUZZ_CHECK(p->sub_id_available <= 1);
    if (m & BIT(SHARED_SUB_AVAILABLE))
        FUZZ_CHECK(p->shared_sub_available <= 1);
    if (m & BIT(RECEIVE_MAX))
        FUZZ_CHECK(p->receive_max != 0);
    if (m & BIT(TOPIC_ALIAS))
        FUZZ_CHECK(p->topic_alias != 0);
    if (m & BIT(MAX_PACKET_SIZE))
        FUZZ_CHECK(p->max_packet_size != 0);
    /* UTF-8 string properties; binary ones only have to lie inside the packet. */
    if (m & BIT(CONTENT_TYPE))
        check_utf8(p->content_type, lo, hi);
    if (m & BIT(RESPONSE_TOPIC)) {
        check_utf8(p->response_topic, lo, hi);
        FUZZ_CHECK(cx_mqtt_topic_name_is_valid(p->response_topic));
    }
    if (m & BIT(ASSIGNED_CLIENT_ID))
        check_utf8(p->assigned_client_id, lo, hi);
    if (m & BIT(AUTH_METHOD))
        check_utf8(p->auth_method, lo, hi);
    if (m & BIT(RESPONSE_INFO))
        check_utf8(p->response_info, lo, hi);
    if (m & BIT(SERVER_REFERENCE))
        check_utf8(p->server_reference, lo, hi);
    if (m & BIT(REASON_STRING))
        check_utf8(p->reason_string, lo, hi);
    if (m & BIT(CORRELATION_DATA))
        FUZZ_CHECK(inside(p->correlation_data, lo, hi));
    if (m & BIT(AUTH_DATA))
        FUZZ_CHECK(inside(p->auth_data, lo, hi));

    if (m & BIT(SUBSCRIPTION_ID)) {
        FUZZ_CHECK(p->sub_id_count >= 1 && p->sub_ids != NULL);
        /* Repeats only in a PUBLISH sent to a client (MQTT 5 §3.3.2.3.8). */
        FUZZ_CHECK(p->sub_id_count == 1 || ctx == CX_PCTX_PUBLISH_S);
        for (size_t i = 0; i < p->sub_id_count; i++)
            FUZZ_CHECK(p->sub_ids[i] >= 1 && p->sub_ids[i] <= CX_MQTT_MAX_REMAINING);
    } else {
        FUZZ_CHECK(p->sub_id_count == 0);
    }
    if (m & BIT(USER_PROPERTY)) {
        FUZZ_CHECK(p->user_prop_count >= 1 && p->user_props != NULL);
        for (size_t i = 0; i < p->user_prop_count; i++) {
            check_utf8(p->user_props[i].key, lo, hi);
            check_utf8(p->user_props[i].value, lo, hi);
        }
    } else {
        FUZZ_CHECK(p->user_prop_count == 0);
    }
}

bool fz_props_equal(const cx_mqtt_props_t *a, const cx_mqtt_props_t *b)
{
    if (a->present != b->present)
        return false;
    uint64_t m = a->present;
#define SAME(id, f)                                                                       \
    if ((m & BIT(id)) && a->f != b->f)                                                    \
        return false;
#define SAME_STR(id, f)                                                                   \
    if ((m & BIT(id)) && !cx_str_eq(a->f, b->f))                                          \
        return false;
    SAME(PAYLOAD_FORMAT, payload_format)
    SAME(MESSAGE_EXPIRY, message_expiry)
    SAME_STR(CONTENT_TYPE, content_type)
    SAME_STR(RESPONSE_TOPIC, response_topic)
    SAME_STR(CORRELATION_DATA, correlation_data)
    SAME(SESSION_EXPIRY, session_expiry)
    SAME_STR(ASSIGNED_CLIENT_ID, assigned_client_id)
    SAME(SERVER_KEEPALIVE, server_keepalive)
    SAME_STR(AUTH_METHOD, auth_method)
    SAME_STR(AUTH_DATA, auth_data)
    SAME(REQUEST_PROBLEM_INFO, request_problem_info)
    SAME(WILL_DELAY, will_delay)
    SAME(REQUEST_RESPONSE_INFO, request_response_info)
    SAME_STR(RESPONSE_INFO, response_info)
    SAME_STR(SERVER_REFERENCE, server_reference)
    SAME_STR(REASON_STRING, reason_string)
    SAME(RECEIVE_MAX, receive_max)
    SAME(TOPIC_ALIAS_MAX, topic_alias_max)
    SAME(TOPIC_ALIAS, topic_alias)
    SAME(MAX_QOS, max_qos)
    SAME(RETAIN_AVAILABLE, retain_available)
    SAME(MAX_PACKET_SIZE, max_packet_size)
    SAME(WILDCARD_SUB_AVAILABLE, wildcard_sub_available)
    SAME(SUB_ID_AVAILABLE, sub_id_available)
    SAME(SHARED_SUB_AVAILABLE, shared_sub_available)
#undef SAME
#undef SAME_STR
    if (a->sub_id_count != b->sub_id_count || a->user_prop_count != b->user_prop_count)
        return false;
    for (size_t i = 0; i < a->sub_id_count; i++)
        if (a->sub_ids[i] != b->sub_ids[i])
            return false;
    for (size_t i = 0; i < a->user_prop_count; i++)
        if (!cx_str_eq(a->user_props[i].key, b->user_props[i].key) ||
            !cx_str_eq(a->user_props[i].value, b->user_props[i].value))
            return false;
    return true;
}

/* ---- packets ---------------------------------------------------------------------------- */

/* Packet types each side may send (bit n = type n), as decode.c's FROM_CLIENT/FROM_SERVER. */
#define TB(t) (1u << CX_MQTT_##t)
#define SENT_BY_CLIENT                                                                    \
    (TB(CONNECT) | TB(PUBLISH) | TB(PUBACK) | TB(PUBREC) | TB(PUBREL) | TB(PUBCOMP) |     \
     TB(SUBSCRIBE) | TB(UNSUBSCRIBE) | TB(PINGREQ) | TB(DISCONNECT) | TB(AUTH))
#define SENT_BY_SERVER                                                                    \
    (TB(CONNACK) | TB(PUBLISH) | TB(PUBACK) | TB(PUBREC) | TB(PUBREL) | TB(PUBCOMP) |     \
     TB(SUBACK) | TB(UNSUBACK) | TB(PINGRESP) | TB(DISCONNECT) | TB(AUTH))

static void check_connect(const cx_mqtt_connect_t *c, const uint8_t *lo, const uint8_t *hi)
{
    uint8_t lv = c->protocol_level;
    FUZZ_CHECK(lv == CX_MQTT_V31 || lv == CX_MQTT_V311 || lv == CX_MQTT_V5);
    FUZZ_CHECK(inside(c->protocol_name, lo, hi));
    FUZZ_CHECK(cx_str_eq(c->protocol_name, lv == CX_MQTT_V31 ? CX_STR_LIT("MQIsdp")
                                                             : CX_STR_LIT("MQTT")));
    check_utf8(c->client_id, lo, hi);
    if (c->will_flag) {
        FUZZ_CHECK(c->will_qos <= 2);
        check_utf8(c->will_topic, lo, hi);
        FUZZ_CHECK(cx_mqtt_topic_name_is_valid(c->will_topic));
        FUZZ_CHECK(inside(c->will_payload, lo, hi));
    } else {
        FUZZ_CHECK(c->will_qos == 0 && !c->will_retain);
        FUZZ_CHECK(c->will_topic.len == 0 && c->will_payload.len == 0);
    }
    if (c->has_username)
        check_utf8(c->username, lo, hi);
    else
        FUZZ_CHECK(c->username.len == 0);
    if (c->has_password)
        FUZZ_CHECK(inside(c->password, lo, hi));
    else
        FUZZ_CHECK(c->password.len == 0);
    if (lv != CX_MQTT_V5) {
        FUZZ_CHECK(!c->has_password || c->has_username); /* [MQTT-3.1.2-22] */
        FUZZ_CHECK(c->props.present == 0 && c->will_props.present == 0);
    } else {
        fz_check_props(&c->props, CX_PCTX_CONNECT, lo, hi);
        if (cx_mqtt_props_has(&c->props, CX_PROP_AUTH_DATA))
            FUZZ_CHECK(cx_mqtt_props_has(&c->props, CX_PROP_AUTH_METHOD));
        if (c->will_flag)
            fz_check_props(&c->will_props, CX_PCTX_WILL, lo, hi);
        else
            FUZZ_CHECK(c->will_props.present == 0);
    }
}

void fz_check_packet(const cx_mqtt_packet_t *p, const uint8_t *pkt, size_t len,
                     cx_mqtt_version version, bool is_server)
{
    const uint8_t *lo = pkt, *hi = pkt + len;
    bool v5 = version == CX_MQTT_V5;
    FUZZ_CHECK(len >= 2);
    FUZZ_CHECK((unsigned)p->type == (unsigned)(pkt[0] >> 4));
    FUZZ_CHECK(p->flags == (pkt[0] & 0x0F));
    FUZZ_CHECK(((is_server ? SENT_BY_SERVER : SENT_BY_CLIENT) >> p->type) & 1);
    FUZZ_CHECK(cx_mqtt_type_name(p->type) != NULL);
    cx_pctx ctx = fz_packet_pctx(p, is_server);

    switch (p->type) {
    case CX_MQTT_CONNECT: check_connect(&p->u.connect, lo, hi); break;
    case CX_MQTT_CONNACK: {
        const cx_mqtt_connack_t *c = &p->u.connack;
        FUZZ_CHECK(!c->session_present || c->rc == 0);
        if (v5)
            fz_check_props(&c->props, ctx, lo, hi);
        else
            FUZZ_CHECK(c->rc <= CX_V3_CONNACK_NOT_AUTHORIZED && c->props.present == 0);
        if (version == CX_MQTT_V31)
            FUZZ_CHECK(!c->session_present);
        FUZZ_CHECK(cx_mqtt_rc_to_v3_connack(c->rc) <= CX_V3_CONNACK_NOT_AUTHORIZED);
        FUZZ_CHECK(cx_mqtt_rc_name(c->rc) != NULL);
        break;
    }
    case CX_MQTT_PUBLISH: {
        const cx_mqtt_publish_t *pb = &p->u.publish;
        FUZZ_CHECK(pb->qos <= 2);
        FUZZ_CHECK(!pb->dup || pb->qos > 0);
        FUZZ_CHECK((pb->packet_id != 0) == (pb->qos > 0));
        FUZZ_CHECK(pb->qos == ((p->flags >> 1) & 3) && pb->retain == (p->flags & 1) &&
                   pb->dup == ((p->flags & 8) != 0));
        FUZZ_CHECK(inside(pb->topic, lo, hi));
        if (pb->topic.len) {
            FUZZ_CHECK(cx_mqtt_topic_name_is_valid(pb->topic));
        } else {
            FUZZ_CHECK(v5 && cx_mqtt_props_has(&pb->props, CX_PROP_TOPIC_ALIAS));
        }
        /* The payload is the rest of the packet. */
        FUZZ_CHECK(inside(pb->payload, lo, hi));
        FUZZ_CHECK(pb->payload.len == 0 || pb->payload.p + pb->payload.len == hi);
        if (v5)
            fz_check_props(&pb->props, ctx, lo, hi);
        else
            FUZZ_CHECK(pb->props.present == 0);
        break;
    }
    case CX_MQTT_PUBACK:
    case CX_MQTT_PUBREC:
    case CX_MQTT_PUBREL:
    case CX_MQTT_PUBCOMP: {
        const cx_mqtt_ack_t *a = &p->u.ack;
        FUZZ_CHECK(a->packet_id != 0);
        if (v5)
            fz_check_props(&a->props, ctx, lo, hi);
        else
            FUZZ_CHECK(a->rc == 0 && a->props.present == 0);
        FUZZ_CHECK(cx_mqtt_rc_name(a->rc) != NULL);
        break;
    }
    case CX_MQTT_SUBSCRIBE: {
        const cx_mqtt_subscribe_t *s = &p->u.subscribe;
        FUZZ_CHECK(s->packet_id != 0);
        FUZZ_CHECK(s->count >= 1 && s->entries != NULL);
        for (size_t i = 0; i < s->count; i++) {
            const cx_mqtt_sub_entry_t *e = &s->entries[i];
            bool shared;
            check_filter(e->filter, lo, hi, &shared);
            FUZZ_CHECK(e->qos <= 2);
            if (v5) {
                FUZZ_CHECK(e->retain_handling <= 2);
                FUZZ_CHECK(!(shared && e->no_local));
            } else {
                FUZZ_CHECK(!e->no_local && !e->retain_as_published && !e->retain_handling);
            }
        }
        if (v5)
            fz_check_props(&s->props, ctx, lo, hi);
        else
            FUZZ_CHECK(s->props.present == 0);
        break;
    }
    case CX_MQTT_SUBACK:
    case CX_MQTT_UNSUBACK: {
        const cx_mqtt_suback_t *s = &p->u.suback;
        FUZZ_CHECK(s->packet_id != 0);
        if (p->type == CX_MQTT_UNSUBACK && !v5) {
            FUZZ_CHECK(s->count == 0);
        } else {
            FUZZ_CHECK(s->count >= 1);
            FUZZ_CHECK(inside((cx_str_t){s->rcs, s->count}, lo, hi));
            for (size_t i = 0; i < s->count; i++) {
                FUZZ_CHECK(cx_mqtt_rc_name(s->rcs[i]) != NULL);
                if (!v5)
                    FUZZ_CHECK(s->rcs[i] <= 2 || s->rcs[i] == 0x80);
            }
        }
        if (v5)
            fz_check_props(&s->props, ctx, lo, hi);
        else
            FUZZ_CHECK(s->props.present == 0);
        break;
    }
    case CX_MQTT_UNSUBSCRIBE: {
        const cx_mqtt_unsubscribe_t *u = &p->u.unsubscribe;
        FUZZ_CHECK(u->packet_id != 0);
        FUZZ_CHECK(u->count >= 1 && u->filters != NULL);
        for (size_t i = 0; i < u->count; i++) {
            bool shared;
            check_filter(u->filters[i], lo, hi, &shared);
        }
        if (v5)
            fz_check_props(&u->props, ctx, lo, hi);
        else
            FUZZ_CHECK(u->props.present == 0);
        break;
    }
    case CX_MQTT_PINGREQ:
    case CX_MQTT_PINGRESP: FUZZ_CHECK(len == 2 || (pkt[1] & 0x80)); break;
    case CX_MQTT_DISCONNECT:
    case CX_MQTT_AUTH: {
        const cx_mqtt_reason_t *r = &p->u.reason;
        if (!v5) {
            FUZZ_CHECK(p->type == CX_MQTT_DISCONNECT && !is_server);
            FUZZ_CHECK(r->rc == 0 && r->props.present == 0);
            break;
        }
        fz_check_props(&r->props, ctx, lo, hi);
        /* Only the remaining-length-0 AUTH goes without a method (v5 §3.15.2.2.2). */
        if (p->type == CX_MQTT_AUTH && (r->rc != 0 || r->props.present != 0))
            FUZZ_CHECK(cx_mqtt_props_has(&r->props, CX_PROP_AUTH_METHOD));
        FUZZ_CHECK(cx_mqtt_rc_name(r->rc) != NULL);
        break;
    }
    default: FUZZ_CHECK(!"decode accepted a reserved packet type");
    }
}

int fz_encode_any(cx_buf_t *b, cx_mqtt_version v, const cx_mqtt_packet_t *p)
{
    switch (p->type) {
    case CX_MQTT_CONNECT: return cx_mqtt_encode_connect(b, &p->u.connect);
    case CX_MQTT_CONNACK: return cx_mqtt_encode_connack(b, v, &p->u.connack);
    case CX_MQTT_PUBLISH: return cx_mqtt_encode_publish(b, v, &p->u.publish, NULL);
    case CX_MQTT_PUBACK:
    case CX_MQTT_PUBREC:
    case CX_MQTT_PUBREL:
    case CX_MQTT_PUBCOMP: return cx_mqtt_encode_ack(b, v, p->type, &p->u.ack);
    case CX_MQTT_SUBSCRIBE: return cx_mqtt_encode_subscribe(b, v, &p->u.subscribe);
    case CX_MQTT_SUBACK:
    case CX_MQTT_UNSUBACK: return cx_mqtt_encode_suback(b, v, p->type, &p->u.suback);
    case CX_MQTT_UNSUBSCRIBE: return cx_mqtt_encode_unsubscribe(b, v, &p->u.unsubscribe);
    case CX_MQTT_PINGREQ:
    case CX_MQTT_PINGRESP: return cx_mqtt_encode_ping(b, p->type);
    case CX_MQTT_DISCONNECT:
    case CX_MQTT_AUTH: return cx_mqtt_encode_reason(b, v, p->type, &p->u.reason);
    }
    return CX_EINVAL;
}

static bool connect_equal(const cx_mqtt_connect_t *a, const cx_mqtt_connect_t *b)
{
    return cx_str_eq(a->protocol_name, b->protocol_name) &&
           a->protocol_level == b->protocol_level && a->clean_start == b->clean_start &&
           a->will_flag == b->will_flag && a->will_qos == b->will_qos &&
           a->will_retain == b->will_retain && a->has_username == b->has_username &&
           a->has_password == b->has_password && a->keepalive == b->keepalive &&
           a->bridge == b->bridge && fz_props_equal(&a->props, &b->props) &&
           cx_str_eq(a->client_id, b->client_id) &&
           fz_props_equal(&a->will_props, &b->will_props) &&
           cx_str_eq(a->will_topic, b->will_topic) &&
           cx_str_eq(a->will_payload, b->will_payload) &&
           cx_str_eq(a->username, b->username) && cx_str_eq(a->password, b->password);
}

bool fz_packet_equal(const cx_mqtt_packet_t *a, const cx_mqtt_packet_t *b)
{
    if (a->type != b->type)
        return false;
    switch (a->type) {
    case CX_MQTT_CONNECT: return connect_equal(&a->u.connect, &b->u.connect);
    case CX_MQTT_CONNACK:
        return a->u.connack.session_present == b->u.connack.session_present &&
               a->u.connack.rc == b->u.connack.rc &&
               fz_props_equal(&a->u.connack.props, &b->u.connack.props);
    case CX_MQTT_PUBLISH: {
        /* PUBLISH flags are all meaning (QoS, DUP, RETAIN); the other types' reserved
         * flags are not compared: 3.1's DUP on PUBREL/SUBSCRIBE/UNSUBSCRIBE is accepted
         * and not re-encoded. */
        const cx_mqtt_publish_t *x = &a->u.publish, *y = &b->u.publish;
        return a->flags == b->flags && x->qos == y->qos && x->retain == y->retain &&
               x->dup == y->dup && cx_str_eq(x->topic, y->topic) &&
               x->packet_id == y->packet_id && fz_props_equal(&x->props, &y->props) &&
               cx_str_eq(x->payload, y->payload);
    }
    case CX_MQTT_PUBACK:
    case CX_MQTT_PUBREC:
    case CX_MQTT_PUBREL:
    case CX_MQTT_PUBCOMP:
        return a->u.ack.packet_id == b->u.ack.packet_id && a->u.ack.rc == b->u.ack.rc &&
               fz_props_equal(&a->u.ack.props, &b->u.ack.props);
    case CX_MQTT_SUBSCRIBE: {
        const cx_mqtt_subscribe_t *x = &a->u.subscribe, *y = &b->u.subscribe;
        if (x->packet_id != y->packet_id || x->count != y->count ||
            !fz_props_equal(&x->props, &y->props))
            return false;
        for (size_t i = 0; i < x->count; i++) {
            const cx_mqtt_sub_entry_t *e = &x->entries[i], *f = &y->entries[i];
            if (!cx_str_eq(e->filter, f->filter) || e->qos != f->qos ||
                e->no_local != f->no_local || e->retain_as_published != f->retain_as_published ||
                e->retain_handling != f->retain_handling)
                return false;
        }
        return true;
    }
    case CX_MQTT_SUBACK:
    case CX_MQTT_UNSUBACK: {
        const cx_mqtt_suback_t *x = &a->u.suback, *y = &b->u.suback;
        return x->packet_id == y->packet_id && x->count == y->count &&
               (x->count == 0 || memcmp(x->rcs, y->rcs, x->count) == 0) &&
               fz_props_equal(&x->props, &y->props);
    }
    case CX_MQTT_UNSUBSCRIBE: {
        const cx_mqtt_unsubscribe_t *x = &a->u.unsubscribe, *y = &b->u.unsubscribe;
        if (x->packet_id != y->packet_id || x->count != y->count ||
            !fz_props_equal(&x->props, &y->props))
            return false;
        for (size_t i = 0; i < x->count; i++)
            if (!cx_str_eq(x->filters[i], y->filters[i]))
                return false;
        return true;
    }
    case CX_MQTT_PINGREQ:
    case CX_MQTT_PINGRESP: return true;
    case CX_MQTT_DISCONNECT:
    case CX_MQTT_AUTH:
        return a->u.reason.rc == b->u.reason.rc &&
               fz_props_equal(&a->u.reason.props, &b->u.reason.props);
    }
    return false;
}

void fz_check_roundtrip(const cx_mqtt_packet_t *p, size_t orig_len, cx_mqtt_version version,
                        bool is_server, cx_arena_t *arena)
{
    cx_mqtt_version v =
        p->type == CX_MQTT_CONNECT ? (cx_mqtt_version)p->u.connect.protocol_level : version;
    cx_buf_t b1, b2;
    cx_buf_init(&b1, 0);
    cx_buf_init(&b2, 0);

    FUZZ_CHECK(fz_encode_any(&b1, v, p) == CX_OK);
    size_t n = cx_buf_used(&b1);
    FUZZ_CHECK(n >= 2 && n <= orig_len);
    uint8_t *c = fz_dup(cx_buf_head(&b1), n);

    /* A different fill than the first decode's, so a field the decoder forgot to set
     * cannot compare equal by accident. */
    cx_mqtt_packet_t q;
    memset(&q, 0x5A, sizeof q);
    cx_mqtt_error_t err = {0, NULL};
    int rc = cx_mqtt_decode(c, n, v, is_server, arena, &q, &err);
    if (rc != CX_OK)
        fprintf(stderr, "re-encoded %s does not decode: %s\n", cx_mqtt_type_name(p->type),
                err.msg ? err.msg : "?");
    FUZZ_CHECK(rc == CX_OK);
    fz_check_packet(&q, c, n, v, is_server);
    FUZZ_CHECK(fz_packet_equal(p, &q));

    FUZZ_CHECK(fz_encode_any(&b2, v, &q) == CX_OK);
    FUZZ_CHECK(cx_buf_used(&b2) == n && memcmp(cx_buf_head(&b2), c, n) == 0);

    /* A cached PUBLISH encoding is re-sent with another identifier at pid_offset. */
    if (p->type == CX_MQTT_PUBLISH) {
        size_t off = 99;
        cx_buf_reset(&b2);
        FUZZ_CHECK(cx_mqtt_encode_publish(&b2, v, &p->u.publish, &off) == CX_OK);
        if (p->u.publish.qos) {
            FUZZ_CHECK(off + 2 <= cx_buf_used(&b2));
            FUZZ_CHECK(cx_get16(cx_buf_head(&b2) + off) == p->u.publish.packet_id);
        } else {
            FUZZ_CHECK(off == 0);
        }
    }
    free(c);
    cx_buf_free(&b1);
    cx_buf_free(&b2);
}
