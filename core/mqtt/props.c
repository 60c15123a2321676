/* props.c: MQTT 5 properties (§2.2.2): decoding with every per-packet rule, sizing and
 * encoding.
 *
 * Decoding is one validating pass over the block. User properties and subscription
 * identifiers can repeat, so their arrays are sized by that pass and filled by a second,
 * non-validating walk that starts at the first of them (usually the tail of a short
 * block). Everything else is stored straight into the zeroed cx_mqtt_props_t. */
#include <string.h>

#include "codec_internal.h"

/* Value types (§2.2.2.2). The identifier is a variable byte integer, but every defined one
 * is below 0x80, so a first byte >= 0x80 can only start an unknown identifier. */
enum { T_NONE, T_BYTE, T_U16, T_U32, T_VAR, T_STR, T_BIN, T_PAIR };

#define PROP_ID_MAX 0x2A

static const uint8_t prop_type[PROP_ID_MAX + 1] = {
    [CX_PROP_PAYLOAD_FORMAT] = T_BYTE,
    [CX_PROP_MESSAGE_EXPIRY] = T_U32,
    [CX_PROP_CONTENT_TYPE] = T_STR,
    [CX_PROP_RESPONSE_TOPIC] = T_STR,
    [CX_PROP_CORRELATION_DATA] = T_BIN,
    [CX_PROP_SUBSCRIPTION_ID] = T_VAR,
    [CX_PROP_SESSION_EXPIRY] = T_U32,
    [CX_PROP_ASSIGNED_CLIENT_ID] = T_STR,
    [CX_PROP_SERVER_KEEPALIVE] = T_U16,
    [CX_PROP_AUTH_METHOD] = T_STR,
    [CX_PROP_AUTH_DATA] = T_BIN,
    [CX_PROP_REQUEST_PROBLEM_INFO] = T_BYTE,
    [CX_PROP_WILL_DELAY] = T_U32,
    [CX_PROP_REQUEST_RESPONSE_INFO] = T_BYTE,
    [CX_PROP_RESPONSE_INFO] = T_STR,
    [CX_PROP_SERVER_REFERENCE] = T_STR,
    [CX_PROP_REASON_STRING] = T_STR,
    [CX_PROP_RECEIVE_MAX] = T_U16,
    [CX_PROP_TOPIC_ALIAS_MAX] = T_U16,
    [CX_PROP_TOPIC_ALIAS] = T_U16,
    [CX_PROP_MAX_QOS] = T_BYTE,
    [CX_PROP_RETAIN_AVAILABLE] = T_BYTE,
    [CX_PROP_USER_PROPERTY] = T_PAIR,
    [CX_PROP_MAX_PACKET_SIZE] = T_U32,
    [CX_PROP_WILDCARD_SUB_AVAILABLE] = T_BYTE,
    [CX_PROP_SUB_ID_AVAILABLE] = T_BYTE,
    [CX_PROP_SHARED_SUB_AVAILABLE] = T_BYTE,
};

/* Per context: allowed identifiers, and those that may appear more than once. The User
 * Property may always repeat; the Subscription Identifier only in a PUBLISH sent to a
 * client (§3.3.2.3.8), never in SUBSCRIBE (§3.8.2.1.2). */
static const struct {
    uint64_t allowed;
    uint64_t multi;
} pctx_info[CX_PCTX_COUNT] = {
    [CX_PCTX_CONNECT] = {CX_PROPS_CONNECT, CX_P_(USER_PROPERTY)},
    [CX_PCTX_WILL] = {CX_PROPS_WILL, CX_P_(USER_PROPERTY)},
    [CX_PCTX_CONNACK] = {CX_PROPS_CONNACK, CX_P_(USER_PROPERTY)},
    /* [MQTT-3.3.4-6] a client must not send a Subscription Identifier. */
    [CX_PCTX_PUBLISH_C] = {CX_PROPS_PUBLISH & ~CX_P_(SUBSCRIPTION_ID), CX_P_(USER_PROPERTY)},
    [CX_PCTX_PUBLISH_S] = {CX_PROPS_PUBLISH, CX_P_(USER_PROPERTY) | CX_P_(SUBSCRIPTION_ID)},
    [CX_PCTX_PUBACK] = {CX_PROPS_ACK, CX_P_(USER_PROPERTY)},
    [CX_PCTX_PUBREC] = {CX_PROPS_ACK, CX_P_(USER_PROPERTY)},
    [CX_PCTX_PUBREL] = {CX_PROPS_ACK, CX_P_(USER_PROPERTY)},
    [CX_PCTX_PUBCOMP] = {CX_PROPS_ACK, CX_P_(USER_PROPERTY)},
    [CX_PCTX_SUBSCRIBE] = {CX_PROPS_SUBSCRIBE, CX_P_(USER_PROPERTY)},
    [CX_PCTX_SUBACK] = {CX_PROPS_ACK, CX_P_(USER_PROPERTY)},
    [CX_PCTX_UNSUBSCRIBE] = {CX_PROPS_UNSUBSCRIBE, CX_P_(USER_PROPERTY)},
    [CX_PCTX_UNSUBACK] = {CX_PROPS_ACK, CX_P_(USER_PROPERTY)},
    [CX_PCTX_DISCONNECT_C] = {CX_PROPS_DISCONNECT, CX_P_(USER_PROPERTY)},
    /* [MQTT-3.14.2-2] the Server must not send a Session Expiry Interval in DISCONNECT. */
    [CX_PCTX_DISCONNECT_S] = {CX_PROPS_DISCONNECT & ~CX_P_(SESSION_EXPIRY),
                              CX_P_(USER_PROPERTY)},
    [CX_PCTX_AUTH] = {CX_PROPS_AUTH, CX_P_(USER_PROPERTY)},
};

/* ---- error messages: one static string per (problem, context) ----------------------- */

#define PCTX_NAMES(X, t)                                                                  \
    X("CONNECT", t) X("CONNECT will", t) X("CONNACK", t) X("PUBLISH", t) X("PUBLISH", t)  \
    X("PUBACK", t) X("PUBREC", t) X("PUBREL", t) X("PUBCOMP", t) X("SUBSCRIBE", t)        \
    X("SUBACK", t) X("UNSUBSCRIBE", t) X("UNSUBACK", t) X("DISCONNECT", t)                \
    X("DISCONNECT", t) X("AUTH", t)
#define PMSG_(name, t) name ": " t,
#define PMSGS(t) {PCTX_NAMES(PMSG_, t)}

enum {
    PM_LEN_BAD,
    PM_LEN_OVER,
    PM_TRUNC,
    PM_UNKNOWN,
    PM_NOT_ALLOWED,
    PM_DUP,
    PM_UTF8,
    PM_PFI,
    PM_RPI,
    PM_RRI,
    PM_MAX_QOS,
    PM_FLAG,
    PM_RECV_MAX,
    PM_MAX_PKT,
    PM_ALIAS0,
    PM_SUBID0,
    PM_SUBID_CLIENT,
    PM_RESP_TOPIC,
    PM_SESS_SERVER,
    PM_NOMEM,
    PM_COUNT
};

static const char *const pmsg[PM_COUNT][CX_PCTX_COUNT] = {
    [PM_LEN_BAD] = PMSGS("malformed property length"),
    [PM_LEN_OVER] = PMSGS("property length exceeds the packet"),
    [PM_TRUNC] = PMSGS("property value runs past the property block"),
    [PM_UNKNOWN] = PMSGS("unknown property identifier"),
    [PM_NOT_ALLOWED] = PMSGS("property not allowed in this packet"),
    [PM_DUP] = PMSGS("property included more than once"),
    [PM_UTF8] = PMSGS("property string is not valid UTF-8"),
    [PM_PFI] = PMSGS("payload format indicator not 0 or 1"),
    [PM_RPI] = PMSGS("request problem information not 0 or 1"),
    [PM_RRI] = PMSGS("request response information not 0 or 1"),
    [PM_MAX_QOS] = PMSGS("maximum QoS not 0 or 1"),
    [PM_FLAG] = PMSGS("availability flag property not 0 or 1"),
    [PM_RECV_MAX] = PMSGS("receive maximum is 0"),
    [PM_MAX_PKT] = PMSGS("maximum packet size is 0"),
    [PM_ALIAS0] = PMSGS("topic alias is 0"),
    [PM_SUBID0] = PMSGS("subscription identifier is 0"),
    [PM_SUBID_CLIENT] = PMSGS("subscription identifier sent by a client"),
    [PM_RESP_TOPIC] = PMSGS("response topic is not a valid topic name"),
    [PM_SESS_SERVER] = PMSGS("session expiry interval sent by the server"),
    [PM_NOMEM] = PMSGS("out of decode memory"),
};

static int perr(cx_mqtt_error_t *err, uint8_t rc, int pm, cx_pctx ctx)
{
    return cx_mqtt_fail(err, rc, pmsg[pm][ctx]);
}

#define MALFORMED(pm) perr(err, CX_RC_MALFORMED_PACKET, (pm), ctx)
#define PROTOCOL(pm) perr(err, CX_RC_PROTOCOL_ERROR, (pm), ctx)

/* ---- decoding ------------------------------------------------------------------------- */

/* The cx_str_t field of a string or binary property (identifiers of type T_STR/T_BIN). */
static cx_str_t *str_field(cx_mqtt_props_t *o, uint8_t id)
{
    switch (id) {
    case CX_PROP_CONTENT_TYPE: return &o->content_type;
    case CX_PROP_RESPONSE_TOPIC: return &o->response_topic;
    case CX_PROP_CORRELATION_DATA: return &o->correlation_data;
    case CX_PROP_ASSIGNED_CLIENT_ID: return &o->assigned_client_id;
    case CX_PROP_AUTH_METHOD: return &o->auth_method;
    case CX_PROP_AUTH_DATA: return &o->auth_data;
    case CX_PROP_RESPONSE_INFO: return &o->response_info;
    case CX_PROP_SERVER_REFERENCE: return &o->server_reference;
    case CX_PROP_REASON_STRING: return &o->reason_string;
    default: return NULL;
    }
}

static const cx_str_t *cstr_field(const cx_mqtt_props_t *o, uint8_t id)
{
    return str_field((cx_mqtt_props_t *)o, id); /* same switch; the cast only reads */
}

/* Second pass: the block is known to be well formed from `p` on; collect the arrays. */
static void collect(const uint8_t *p, const uint8_t *end, cx_mqtt_user_prop_t *up,
                    uint32_t *sid)
{
    while (p < end) {
        uint8_t id = *p++;
        uint32_t v = 0;
        switch (prop_type[id]) {
        case T_BYTE: p += 1; break;
        case T_U16: p += 2; break;
        case T_U32: p += 4; break;
        case T_VAR:
            p += cx_varint_get(p, (size_t)(end - p), &v);
            *sid++ = v; /* only the Subscription Identifier is a varint */
            break;
        case T_STR:
        case T_BIN: p += 2 + cx_get16(p); break;
        case T_PAIR:
            up->key = (cx_str_t){p + 2, cx_get16(p)};
            p += 2 + up->key.len;
            up->value = (cx_str_t){p + 2, cx_get16(p)};
            p += 2 + up->value.len;
            up++;
            break;
        default: return; /* unreachable: validated */
        }
    }
}

int cx_mqtt_props_read(cx_rd_t *r, cx_pctx ctx, cx_arena_t *arena, cx_mqtt_props_t *o,
                       cx_mqtt_error_t *err)
{
    uint32_t plen;
    if (!cx_rd_varint(r, &plen))
        return MALFORMED(PM_LEN_BAD);
    if (plen > cx_rd_left(r))
        return MALFORMED(PM_LEN_OVER);
    const uint8_t *p = r->p, *end = p + plen;
    r->p = end;
    if (plen == 0)
        return CX_OK;

    const uint64_t allowed = pctx_info[ctx].allowed, multi = pctx_info[ctx].multi;
    uint64_t seen = 0;
    size_t n_up = 0, n_sid = 0;
    const uint8_t *first_arr = NULL;

    while (p < end) {
        const uint8_t *start = p;
        uint8_t id = *p++;
        int t = id <= PROP_ID_MAX ? prop_type[id] : T_NONE;
        if (t == T_NONE)
            return MALFORMED(PM_UNKNOWN);
        uint64_t bit = CX_PROP_BIT(id);
        if (!(allowed & bit)) {
            if (ctx == CX_PCTX_PUBLISH_C && id == CX_PROP_SUBSCRIPTION_ID)
                return PROTOCOL(PM_SUBID_CLIENT);
            if (ctx == CX_PCTX_DISCONNECT_S && id == CX_PROP_SESSION_EXPIRY)
                return PROTOCOL(PM_SESS_SERVER);
            return PROTOCOL(PM_NOT_ALLOWED);
        }
        /* §2.2.2.2: "It is a Protocol Error to include <property> more than once". */
        if ((seen & bit) && !(multi & bit))
            return PROTOCOL(PM_DUP);
        seen |= bit;

        size_t left = (size_t)(end - p);
        switch (t) {
        case T_BYTE: {
            if (left < 1)
                return MALFORMED(PM_TRUNC);
            uint8_t v = *p++;
            switch (id) {
            case CX_PROP_PAYLOAD_FORMAT:
                if (v > 1)
                    return PROTOCOL(PM_PFI);
                o->payload_format = v;
                break;
            case CX_PROP_REQUEST_PROBLEM_INFO:
                if (v > 1)
                    return PROTOCOL(PM_RPI);
                o->request_problem_info = v;
                break;
            case CX_PROP_REQUEST_RESPONSE_INFO:
                if (v > 1)
                    return PROTOCOL(PM_RRI);
                o->request_response_info = v;
                break;
            case CX_PROP_MAX_QOS:
                if (v > 1)
                    return PROTOCOL(PM_MAX_QOS);
                o->max_qos = v;
                break;
            default:
                if (v > 1)
                    return PROTOCOL(PM_FLAG);
                if (id == CX_PROP_RETAIN_AVAILABLE)
                    o->retain_available = v;
                else if (id == CX_PROP_WILDCARD_SUB_AVAILABLE)
                    o->wildcard_sub_available = v;
                else if (id == CX_PROP_SUB_ID_AVAILABLE)
                    o->sub_id_available = v;
                else
                    o->shared_sub_available = v;
                break;
            }
            break;
        }
        case T_U16: {
            if (left < 2)
                return MALFORMED(PM_TRUNC);
            uint16_t v = cx_get16(p);
            p += 2;
            switch (id) {
            case CX_PROP_SERVER_KEEPALIVE: o->server_keepalive = v; break;
            case CX_PROP_RECEIVE_MAX:
                if (v == 0) /* §3.1.2.11.3 / §3.2.2.3.3 */
                    return PROTOCOL(PM_RECV_MAX);
                o->receive_max = v;
                break;
            case CX_PROP_TOPIC_ALIAS_MAX: o->topic_alias_max = v; break;
            default: /* CX_PROP_TOPIC_ALIAS */
                if (v == 0) /* [MQTT-3.3.2-8]; v5 names 0x94 for a bad alias */
                    return perr(err, CX_RC_TOPIC_ALIAS_INVALID, PM_ALIAS0, ctx);
                o->topic_alias = v;
                break;
            }
            break;
        }
        case T_U32: {
            if (left < 4)
                return MALFORMED(PM_TRUNC);
            uint32_t v = cx_get32(p);
            p += 4;
            switch (id) {
            case CX_PROP_MESSAGE_EXPIRY: o->message_expiry = v; break;
            case CX_PROP_SESSION_EXPIRY: o->session_expiry = v; break;
            case CX_PROP_WILL_DELAY: o->will_delay = v; break;
            default: /* CX_PROP_MAX_PACKET_SIZE */
                if (v == 0) /* §3.1.2.11.4 / §3.2.2.3.6 */
                    return PROTOCOL(PM_MAX_PKT);
                o->max_packet_size = v;
                break;
            }
            break;
        }
        case T_VAR: { /* only CX_PROP_SUBSCRIPTION_ID */
            uint32_t v;
            size_t k = cx_varint_get(p, left, &v);
            if (!k)
                return MALFORMED(PM_TRUNC);
            p += k;
            if (v == 0) /* §3.8.2.1.2: 1 to 268,435,455; 0 is a Protocol Error */
                return PROTOCOL(PM_SUBID0);
            if (!first_arr)
                first_arr = start;
            n_sid++;
            break;
        }
        case T_STR:
        case T_BIN: {
            if (left < 2 || left - 2 < cx_get16(p))
                return MALFORMED(PM_TRUNC);
            cx_str_t s = {p + 2, cx_get16(p)};
            p += 2 + s.len;
            if (t == T_STR) {
                if (!cx_mqtt_utf8_is_valid(s)) /* [MQTT-1.5.4-1]: malformed */
                    return MALFORMED(PM_UTF8);
                /* [MQTT-3.3.2-14]: a Response Topic (also in will properties) is a
                 * topic name: non-empty, no wildcards. */
                if (id == CX_PROP_RESPONSE_TOPIC && !cx_mqtt_topic_name_is_valid(s))
                    return PROTOCOL(PM_RESP_TOPIC);
            }
            *str_field(o, id) = s;
            break;
        }
        default: { /* T_PAIR: CX_PROP_USER_PROPERTY */
            if (left < 2 || left - 2 < cx_get16(p))
                return MALFORMED(PM_TRUNC);
            cx_str_t k = {p + 2, cx_get16(p)};
            p += 2 + k.len;
            left = (size_t)(end - p);
            if (left < 2 || left - 2 < cx_get16(p))
                return MALFORMED(PM_TRUNC);
            cx_str_t v = {p + 2, cx_get16(p)};
            p += 2 + v.len;
            if (!cx_mqtt_utf8_is_valid(k) || !cx_mqtt_utf8_is_valid(v))
                return MALFORMED(PM_UTF8);
            if (!first_arr)
                first_arr = start;
            n_up++;
            break;
        }
        }
    }
    o->present = seen;

    if (first_arr) {
        cx_mqtt_user_prop_t *up = NULL;
        uint32_t *sid = NULL;
        if (n_up) {
            up = arena ? cx_arena_alloc(arena, n_up * sizeof *up) : NULL;
            if (!up)
                goto nomem;
        }
        if (n_sid) {
            sid = arena ? cx_arena_alloc(arena, n_sid * sizeof *sid) : NULL;
            if (!sid)
                goto nomem;
        }
        collect(first_arr, end, up, sid);
        o->user_props = up;
        o->user_prop_count = n_up;
        o->sub_ids = sid;
        o->sub_id_count = n_sid;
    }
    return CX_OK;

nomem:
    perr(err, CX_RC_IMPL_SPECIFIC, PM_NOMEM, ctx);
    return CX_ENOMEM;
}

/* ---- sizing and encoding -------------------------------------------------------------- */

#define STR_MAX 65535u

size_t cx_mqtt_props_body_len(const cx_mqtt_props_t *p, uint64_t mask)
{
    if (!p)
        return 0;
    uint64_t m = p->present & mask;
    size_t n = 0;
    while (m) {
        unsigned id = (unsigned)__builtin_ctzll(m);
        m &= m - 1;
        if (id > PROP_ID_MAX)
            continue;
        switch (prop_type[id]) {
        case T_BYTE: n += 2; break;
        case T_U16: n += 3; break;
        case T_U32: n += 5; break;
        case T_VAR:
            for (size_t i = 0; i < p->sub_id_count; i++) {
                if (p->sub_ids[i] > CX_MQTT_MAX_REMAINING)
                    return SIZE_MAX;
                n += 1 + cx_mqtt_varint_size(p->sub_ids[i]);
            }
            break;
        case T_STR:
        case T_BIN: {
            size_t len = cstr_field(p, (uint8_t)id)->len;
            if (len > STR_MAX)
                return SIZE_MAX;
            n += 3 + len;
            break;
        }
        case T_PAIR:
            for (size_t i = 0; i < p->user_prop_count; i++) {
                const cx_mqtt_user_prop_t *u = &p->user_props[i];
                if (u->key.len > STR_MAX || u->value.len > STR_MAX)
                    return SIZE_MAX;
                n += 5 + u->key.len + u->value.len;
            }
            break;
        default: break; /* not a property identifier: ignored */
        }
    }
    return n > CX_MQTT_MAX_REMAINING ? SIZE_MAX : n;
}

uint8_t *cx_mqtt_props_write(uint8_t *d, const cx_mqtt_props_t *p, uint64_t mask)
{
    if (!p)
        return d;
    uint64_t m = p->present & mask;
    while (m) {
        unsigned id = (unsigned)__builtin_ctzll(m);
        m &= m - 1;
        if (id > PROP_ID_MAX)
            continue;
        switch (prop_type[id]) {
        case T_BYTE: {
            uint8_t v;
            switch (id) {
            case CX_PROP_PAYLOAD_FORMAT: v = p->payload_format; break;
            case CX_PROP_REQUEST_PROBLEM_INFO: v = p->request_problem_info; break;
            case CX_PROP_REQUEST_RESPONSE_INFO: v = p->request_response_info; break;
            case CX_PROP_MAX_QOS: v = p->max_qos; break;
            case CX_PROP_RETAIN_AVAILABLE: v = p->retain_available; break;
            case CX_PROP_WILDCARD_SUB_AVAILABLE: v = p->wildcard_sub_available; break;
            case CX_PROP_SUB_ID_AVAILABLE: v = p->sub_id_available; break;
            default: v = p->shared_sub_available; break;
            }
            *d++ = (uint8_t)id;
            *d++ = v;
            break;
        }
        case T_U16: {
            uint16_t v;
            switch (id) {
            case CX_PROP_SERVER_KEEPALIVE: v = p->server_keepalive; break;
            case CX_PROP_RECEIVE_MAX: v = p->receive_max; break;
            case CX_PROP_TOPIC_ALIAS_MAX: v = p->topic_alias_max; break;
            default: v = p->topic_alias; break;
            }
            *d++ = (uint8_t)id;
            d = cx_put16(d, v);
            break;
        }
        case T_U32: {
            uint32_t v;
            switch (id) {
            case CX_PROP_MESSAGE_EXPIRY: v = p->message_expiry; break;
            case CX_PROP_SESSION_EXPIRY: v = p->session_expiry; break;
            case CX_PROP_WILL_DELAY: v = p->will_delay; break;
            default: v = p->max_packet_size; break;
            }
            *d++ = (uint8_t)id;
            d = cx_put32(d, v);
            break;
        }
        case T_VAR:
            for (size_t i = 0; i < p->sub_id_count; i++) {
                *d++ = (uint8_t)id;
                d = cx_put_varint(d, p->sub_ids[i]);
            }
            break;
        case T_STR:
        case T_BIN:
            *d++ = (uint8_t)id;
            d = cx_put_str(d, *cstr_field(p, (uint8_t)id));
            break;
        case T_PAIR:
            for (size_t i = 0; i < p->user_prop_count; i++) {
                *d++ = (uint8_t)id;
                d = cx_put_str(d, p->user_props[i].key);
                d = cx_put_str(d, p->user_props[i].value);
            }
            break;
        default: break;
        }
    }
    return d;
}

size_t cx_mqtt_props_size(const cx_mqtt_props_t *p, uint64_t mask)
{
    size_t n = cx_mqtt_props_body_len(p, mask);
    if (n == SIZE_MAX)
        return SIZE_MAX;
    return cx_mqtt_varint_size((uint32_t)n) + n;
}

int cx_mqtt_props_encode(cx_buf_t *out, const cx_mqtt_props_t *p, uint64_t mask)
{
    size_t n = cx_mqtt_props_body_len(p, mask);
    if (n == SIZE_MAX)
        return CX_ETOOBIG;
    int rc = cx_buf_reserve(out, n);
    if (rc)
        return rc;
    uint8_t *end = cx_mqtt_props_write(cx_buf_tail(out), p, mask);
    CX_ASSERT((size_t)(end - cx_buf_tail(out)) == n);
    out->len += n;
    return CX_OK;
}
