/* decode.c: the fixed header and every control packet, MQTT 3.1, 3.1.1 and 5.0.
 *
 * One pass over the packet with a bounded reader (codec_internal.h): every field is
 * length-checked before it is read, strings are slices into the packet, and arrays go to
 * the caller's arena. All one-packet rules of the specs are checked here (see codec.h);
 * normative statement numbers are 3.1.1's [MQTT-x] unless marked v5.
 *
 * Error codes: what cannot be parsed is CX_RC_MALFORMED_PACKET; what parses but is not
 * allowed is CX_RC_PROTOCOL_ERROR; the specs' specific codes (0x84, 0x8F, 0x90) where they
 * name one. For 3.x connections the code only selects the log line and the CONNACK
 * return code; the connection is closed either way. */
#include <string.h>

#include "codec_internal.h"

/* ---- messages ------------------------------------------------------------------------- */

#define TYPE_NAMES(X, t)                                                                  \
    X("RESERVED", t) X("CONNECT", t) X("CONNACK", t) X("PUBLISH", t) X("PUBACK", t)       \
    X("PUBREC", t) X("PUBREL", t) X("PUBCOMP", t) X("SUBSCRIBE", t) X("SUBACK", t)        \
    X("UNSUBSCRIBE", t) X("UNSUBACK", t) X("PINGREQ", t) X("PINGRESP", t)                 \
    X("DISCONNECT", t) X("AUTH", t)
#define TMSG_(name, t) name ": " t,
#define TMSGS(t) {TYPE_NAMES(TMSG_, t)}

static const char *const m_flags[16] = TMSGS("invalid fixed header flags");
static const char *const m_dir_c[16] = TMSGS("not allowed from a client");
static const char *const m_dir_s[16] = TMSGS("not allowed from a server");
static const char *const m_short[16] = TMSGS("packet too short");
static const char *const m_extra[16] = TMSGS("unexpected bytes after the end of the packet");
static const char *const m_pid0[16] = TMSGS("packet identifier is 0");
static const char *const m_rc[16] = TMSGS("reason code not allowed in this packet");

/* ---- reason-code sets (MQTT 5 tables per packet) ------------------------------------- */

enum {
    S_CONNACK = 1 << 0,
    S_PUBACK = 1 << 1, /* PUBACK and PUBREC */
    S_PUBREL = 1 << 2, /* PUBREL and PUBCOMP */
    S_SUBACK = 1 << 3,
    S_UNSUBACK = 1 << 4,
    S_DISC_C = 1 << 5, /* DISCONNECT sent by a client (Table 3-10 "Sent by") */
    S_DISC_S = 1 << 6, /* DISCONNECT sent by a server */
    S_AUTH = 1 << 7,
};

#define S_DISC (S_DISC_C | S_DISC_S)

static const uint8_t rc_sets[256] = {
    [0x00] = S_CONNACK | S_PUBACK | S_PUBREL | S_SUBACK | S_UNSUBACK | S_DISC | S_AUTH,
    [0x01] = S_SUBACK,
    [0x02] = S_SUBACK,
    [0x04] = S_DISC_C,
    [0x10] = S_PUBACK,
    [0x11] = S_UNSUBACK,
    [0x18] = S_AUTH,
    [0x19] = S_AUTH,
    [0x80] = S_CONNACK | S_PUBACK | S_SUBACK | S_UNSUBACK | S_DISC,
    [0x81] = S_CONNACK | S_DISC,
    [0x82] = S_CONNACK | S_DISC,
    [0x83] = S_CONNACK | S_PUBACK | S_SUBACK | S_UNSUBACK | S_DISC,
    [0x84] = S_CONNACK,
    [0x85] = S_CONNACK,
    [0x86] = S_CONNACK,
    [0x87] = S_CONNACK | S_PUBACK | S_SUBACK | S_UNSUBACK | S_DISC_S,
    [0x88] = S_CONNACK,
    [0x89] = S_CONNACK | S_DISC_S,
    [0x8A] = S_CONNACK,
    [0x8B] = S_DISC_S,
    [0x8C] = S_CONNACK,
    [0x8D] = S_DISC_S,
    [0x8E] = S_DISC_S,
    [0x8F] = S_SUBACK | S_UNSUBACK | S_DISC_S,
    [0x90] = S_CONNACK | S_PUBACK | S_DISC,
    [0x91] = S_PUBACK | S_SUBACK | S_UNSUBACK,
    [0x92] = S_PUBREL,
    [0x93] = S_DISC,
    [0x94] = S_DISC,
    [0x95] = S_CONNACK | S_DISC,
    [0x96] = S_DISC,
    [0x97] = S_CONNACK | S_PUBACK | S_SUBACK | S_DISC,
    [0x98] = S_DISC,
    [0x99] = S_CONNACK | S_PUBACK | S_DISC,
    [0x9A] = S_CONNACK | S_DISC_S,
    [0x9B] = S_CONNACK | S_DISC_S,
    [0x9C] = S_CONNACK | S_DISC_S,
    [0x9D] = S_CONNACK | S_DISC_S,
    [0x9E] = S_SUBACK | S_DISC_S,
    [0x9F] = S_CONNACK | S_DISC_S,
    [0xA0] = S_DISC_S,
    [0xA1] = S_SUBACK | S_DISC_S,
    [0xA2] = S_SUBACK | S_DISC_S,
};

/* ---- decoder state -------------------------------------------------------------------- */

typedef struct dec {
    cx_rd_t r;
    bool v5;
    bool v31;
    bool server; /* the packet was sent by a server */
    cx_arena_t *arena;
    cx_mqtt_error_t *err;
} dec_t;

#define FAIL(code, msg) return cx_mqtt_fail(d->err, (code), (msg))
#define MALFORMED(msg) FAIL(CX_RC_MALFORMED_PACKET, msg)
#define PROTOCOL(msg) FAIL(CX_RC_PROTOCOL_ERROR, msg)
#define TRY(expr)                                                                         \
    do {                                                                                  \
        int rc_ = (expr);                                                                 \
        if (rc_)                                                                          \
            return rc_;                                                                   \
    } while (0)

/* ---- fixed header --------------------------------------------------------------------- */

/* The remaining length is a variable byte integer of at most four bytes; a fourth byte
 * with its continuation bit set makes the packet malformed (v5 §1.5.5, 3.1.1 §2.2.3).
 * Non-minimal encodings are accepted: see cx_varint_get. */
int cx_mqtt_frame(const uint8_t *buf, size_t len, size_t *hdr_len, uint32_t *rem_len,
                  cx_mqtt_error_t *err)
{
    if (len < 2)
        return CX_EAGAIN;
    uint8_t b = buf[1];
    if (b < 0x80) {
        *hdr_len = 2;
        *rem_len = b;
        return CX_OK;
    }
    uint32_t v = b & 0x7F;
    for (size_t i = 2; i < 5; i++) {
        if (i >= len)
            return CX_EAGAIN;
        b = buf[i];
        v |= (uint32_t)(b & 0x7F) << (7 * (i - 1));
        if (b < 0x80) {
            *hdr_len = i + 1;
            *rem_len = v;
            return CX_OK;
        }
    }
    if (err) {
        err->rc = CX_RC_MALFORMED_PACKET;
        err->msg = "fixed header: remaining length longer than 4 bytes";
    }
    return CX_EPROTO;
}

/* ---- CONNECT -------------------------------------------------------------------------- */

static int dec_connect(dec_t *d, cx_mqtt_connect_t *c)
{
    cx_rd_t *r = &d->r;
    memset(c, 0, sizeof *c);

    if (!cx_rd_str(r, &c->protocol_name))
        MALFORMED("CONNECT: truncated protocol name");
    uint8_t level;
    if (!cx_rd_u8(r, &level))
        MALFORMED("CONNECT: truncated protocol level");
    /* Mosquitto bridges with try_private set the top bit of the level to say "I am a
     * bridge"; accept it and report it in c->bridge. */
    c->bridge = (level & 0x80) != 0;
    level &= 0x7F;
    c->protocol_level = level;

    /* [MQTT-3.1.2-1] protocol name, [MQTT-3.1.2-2] level: 3.1 is "MQIsdp" level 3, 3.1.1
     * and 5 are "MQTT" levels 4 and 5. Anything else is answered, in the client's version
     * where the caller can tell it, with "unsupported protocol version" (v5 §3.1.2.1/2). */
    bool is_mqtt = cx_str_eq(c->protocol_name, CX_STR_LIT("MQTT"));
    bool is_isdp = cx_str_eq(c->protocol_name, CX_STR_LIT("MQIsdp"));
    if (!is_mqtt && !is_isdp)
        FAIL(CX_RC_UNSUPPORTED_PROTOCOL_VERSION, "CONNECT: unknown protocol name");
    if (level != CX_MQTT_V31 && level != CX_MQTT_V311 && level != CX_MQTT_V5)
        FAIL(CX_RC_UNSUPPORTED_PROTOCOL_VERSION, "CONNECT: unsupported protocol level");
    if (is_isdp != (level == CX_MQTT_V31))
        FAIL(CX_RC_UNSUPPORTED_PROTOCOL_VERSION,
             "CONNECT: protocol name does not match the protocol level");
    d->v5 = level == CX_MQTT_V5;
    d->v31 = level == CX_MQTT_V31;

    uint8_t f;
    if (!cx_rd_u8(r, &f))
        MALFORMED("CONNECT: truncated connect flags");
    if (f & 0x01) /* [MQTT-3.1.2-3], v5 [MQTT-3.1.2-3] */
        MALFORMED("CONNECT: reserved connect flag is set");
    c->clean_start = (f & 0x02) != 0;
    c->will_flag = (f & 0x04) != 0;
    c->will_qos = (f >> 3) & 3;
    c->will_retain = (f & 0x20) != 0;
    c->has_password = (f & 0x40) != 0;
    c->has_username = (f & 0x80) != 0;
    if (c->will_flag) {
        if (c->will_qos == 3) /* [MQTT-3.1.2-14], v5 [MQTT-3.1.2-12] */
            MALFORMED("CONNECT: will QoS is 3");
    } else if (c->will_qos || c->will_retain) {
        /* [MQTT-3.1.2-13] [MQTT-3.1.2-15], v5 [MQTT-3.1.2-11] [MQTT-3.1.2-13] */
        MALFORMED("CONNECT: will QoS or will retain set without a will");
    }
    /* [MQTT-3.1.2-22]: 3.x forbids a password without a user name; v5 allows it. */
    if (!d->v5 && c->has_password && !c->has_username)
        PROTOCOL("CONNECT: password flag set without user name flag");

    if (!cx_rd_u16(r, &c->keepalive))
        MALFORMED("CONNECT: truncated keep alive");

    if (d->v5) {
        TRY(cx_mqtt_props_read(r, CX_PCTX_CONNECT, d->arena, &c->props, d->err));
        /* v5 §3.1.2.11.10: Authentication Data without a method is a Protocol Error. */
        if (cx_mqtt_props_has(&c->props, CX_PROP_AUTH_DATA) &&
            !cx_mqtt_props_has(&c->props, CX_PROP_AUTH_METHOD))
            PROTOCOL("CONNECT: authentication data without authentication method");
    }

    /* Payload, in order: client id, will properties/topic/payload, user name, password
     * [MQTT-3.1.3-1]. */
    if (!cx_rd_str(r, &c->client_id))
        MALFORMED("CONNECT: truncated client identifier");
    if (!cx_mqtt_utf8_is_valid(c->client_id)) /* [MQTT-3.1.3-4], [MQTT-1.5.3-1] */
        MALFORMED("CONNECT: client identifier is not valid UTF-8");

    if (c->will_flag) {
        if (d->v5)
            TRY(cx_mqtt_props_read(r, CX_PCTX_WILL, d->arena, &c->will_props, d->err));
        if (!cx_rd_str(r, &c->will_topic))
            MALFORMED("CONNECT: truncated will topic");
        if (!cx_mqtt_topic_name_is_valid(c->will_topic)) { /* [MQTT-3.1.3-10] */
            if (!cx_mqtt_utf8_is_valid(c->will_topic))
                MALFORMED("CONNECT: will topic is not valid UTF-8");
            FAIL(CX_RC_TOPIC_NAME_INVALID, "CONNECT: will topic is empty or has wildcards");
        }
        if (!cx_rd_str(r, &c->will_payload))
            MALFORMED("CONNECT: truncated will payload");
    }

    /* MQTT 3.1 clients were allowed to set the user name / password flags and then leave
     * the field out (3.1 §3.1 says the fields are optional); accept that for 3.1 only, when
     * the packet simply ends there. */
    if (c->has_username) {
        if (d->v31 && cx_rd_left(r) == 0) {
            c->has_username = c->has_password = false;
        } else {
            if (!cx_rd_str(r, &c->username))
                MALFORMED("CONNECT: truncated user name");
            if (!cx_mqtt_utf8_is_valid(c->username)) /* [MQTT-3.1.3-11] */
                MALFORMED("CONNECT: user name is not valid UTF-8");
        }
    }
    if (c->has_password) {
        if (d->v31 && cx_rd_left(r) == 0) {
            c->has_password = false;
        } else if (!cx_rd_str(r, &c->password)) {
            MALFORMED("CONNECT: truncated password");
        }
    }
    if (cx_rd_left(r))
        MALFORMED(m_extra[CX_MQTT_CONNECT]);
    return CX_OK;
}

/* ---- CONNACK -------------------------------------------------------------------------- */

static int dec_connack(dec_t *d, cx_mqtt_connack_t *c)
{
    cx_rd_t *r = &d->r;
    memset(c, 0, sizeof *c);
    uint8_t flags;
    if (!cx_rd_u8(r, &flags) || !cx_rd_u8(r, &c->rc))
        MALFORMED(m_short[CX_MQTT_CONNACK]);
    if (d->v31) {
        /* 3.1: the first byte is reserved and unused; no session present flag. */
    } else {
        if (flags & 0xFE) /* [MQTT-3.2.2-1] v5 §3.2.2.1: bits 7-1 reserved */
            MALFORMED("CONNACK: reserved acknowledge flags set");
        c->session_present = flags & 1;
    }
    if (d->v5) {
        if (!(rc_sets[c->rc] & S_CONNACK))
            PROTOCOL(m_rc[CX_MQTT_CONNACK]);
        TRY(cx_mqtt_props_read(r, CX_PCTX_CONNACK, d->arena, &c->props, d->err));
    } else if (c->rc > CX_V3_CONNACK_NOT_AUTHORIZED) {
        PROTOCOL("CONNACK: unknown return code");
    }
    /* [MQTT-3.2.2-4], v5 [MQTT-3.2.2-6]: no session present with a refusal. */
    if (c->session_present && c->rc != 0)
        PROTOCOL("CONNACK: session present set with a non-zero return code");
    if (cx_rd_left(r))
        MALFORMED(m_extra[CX_MQTT_CONNACK]);
    return CX_OK;
}

/* ---- PUBLISH -------------------------------------------------------------------------- */

static int dec_publish(dec_t *d, uint8_t flags, cx_mqtt_publish_t *p)
{
    cx_rd_t *r = &d->r;
    /* Hot path: fields are set one by one instead of zeroing the struct. */
    cx_mqtt_props_clear(&p->props);
    p->packet_id = 0;
    p->qos = (flags >> 1) & 3;
    p->dup = (flags & 0x08) != 0;
    p->retain = flags & 0x01;
    if (p->qos == 3) /* [MQTT-3.3.1-4] */
        MALFORMED("PUBLISH: QoS 3");
    if (p->dup && p->qos == 0) /* [MQTT-3.3.1-2] */
        MALFORMED("PUBLISH: DUP flag set at QoS 0");

    if (!cx_rd_str(r, &p->topic))
        MALFORMED("PUBLISH: truncated topic name");
    if (p->qos) {
        if (!cx_rd_u16(r, &p->packet_id))
            MALFORMED("PUBLISH: truncated packet identifier");
        if (!p->packet_id) /* [MQTT-2.3.1-1], v5 [MQTT-2.2.1-3] */
            PROTOCOL("PUBLISH: packet identifier is 0 at QoS > 0");
    }
    if (d->v5)
        TRY(cx_mqtt_props_read(r, d->server ? CX_PCTX_PUBLISH_S : CX_PCTX_PUBLISH_C,
                               d->arena, &p->props, d->err));

    if (p->topic.len == 0) {
        /* v5 §3.3.2.1: a zero-length topic needs a Topic Alias; 3.x [MQTT-4.7.3-1]. */
        if (!d->v5)
            PROTOCOL("PUBLISH: empty topic name");
        if (!cx_mqtt_props_has(&p->props, CX_PROP_TOPIC_ALIAS))
            PROTOCOL("PUBLISH: empty topic name without a topic alias");
    } else if (!cx_mqtt_topic_name_is_valid(p->topic)) {
        if (!cx_mqtt_utf8_is_valid(p->topic)) /* [MQTT-1.5.3-1], v5 [MQTT-1.5.4-1] */
            MALFORMED("PUBLISH: topic name is not valid UTF-8");
        /* [MQTT-3.3.2-2] no wildcards; v5 names 0x90 Topic Name invalid for this. */
        FAIL(CX_RC_TOPIC_NAME_INVALID, "PUBLISH: wildcard in topic name");
    }
    p->payload.p = r->p;
    p->payload.len = cx_rd_left(r);
    return CX_OK;
}

/* ---- PUBACK, PUBREC, PUBREL, PUBCOMP -------------------------------------------------- */

static int dec_ack(dec_t *d, cx_mqtt_type type, cx_mqtt_ack_t *a)
{
    cx_rd_t *r = &d->r;
    cx_mqtt_props_clear(&a->props);
    a->rc = CX_RC_SUCCESS;
    if (!cx_rd_u16(r, &a->packet_id))
        MALFORMED(m_short[type]);
    if (!a->packet_id) /* [MQTT-2.3.1-1], v5 [MQTT-2.2.1-3] */
        PROTOCOL(m_pid0[type]);
    if (d->v5 && cx_rd_left(r)) {
        /* v5 §3.4.2.1: remaining length 2 means Success and no properties; below 4 there
         * is no property length (§3.4.2.2). */
        (void)cx_rd_u8(r, &a->rc);
        int set = (type == CX_MQTT_PUBACK || type == CX_MQTT_PUBREC) ? S_PUBACK : S_PUBREL;
        if (!(rc_sets[a->rc] & set))
            PROTOCOL(m_rc[type]);
        if (cx_rd_left(r)) {
            cx_pctx ctx = (cx_pctx)(CX_PCTX_PUBACK + (type - CX_MQTT_PUBACK));
            TRY(cx_mqtt_props_read(r, ctx, d->arena, &a->props, d->err));
        }
    }
    if (cx_rd_left(r))
        MALFORMED(m_extra[type]);
    return CX_OK;
}

/* ---- SUBSCRIBE ------------------------------------------------------------------------ */

/* Messages for a filter problem, for SUBSCRIBE (index 0) and UNSUBSCRIBE (index 1). */
static const char *const m_filter[2][8] = {
    {
        [CX_FILTER_EMPTY] = "SUBSCRIBE: empty topic filter",
        [CX_FILTER_UTF8] = "SUBSCRIBE: topic filter is not valid UTF-8",
        [CX_FILTER_PLUS] = "SUBSCRIBE: topic filter has '+' not occupying a whole level",
        [CX_FILTER_HASH] = "SUBSCRIBE: topic filter has '#' not alone at the end",
        [CX_FILTER_SHARE_NAME] = "SUBSCRIBE: shared subscription with an empty share name",
        [CX_FILTER_SHARE_WILD] = "SUBSCRIBE: shared subscription name has '+' or '#'",
        [CX_FILTER_SHARE_EMPTY] = "SUBSCRIBE: shared subscription without a topic filter",
    },
    {
        [CX_FILTER_EMPTY] = "UNSUBSCRIBE: empty topic filter",
        [CX_FILTER_UTF8] = "UNSUBSCRIBE: topic filter is not valid UTF-8",
        [CX_FILTER_PLUS] = "UNSUBSCRIBE: topic filter has '+' not occupying a whole level",
        [CX_FILTER_HASH] = "UNSUBSCRIBE: topic filter has '#' not alone at the end",
        [CX_FILTER_SHARE_NAME] = "UNSUBSCRIBE: shared subscription with an empty share name",
        [CX_FILTER_SHARE_WILD] = "UNSUBSCRIBE: shared subscription name has '+' or '#'",
        [CX_FILTER_SHARE_EMPTY] = "UNSUBSCRIBE: shared subscription without a topic filter",
    },
};

/* A filter with ill-formed UTF-8, misplaced wildcards or bad $share syntax is not "correctly
 * formed", so the whole packet is malformed (0x81): v5's 0x8F in SUBACK is reserved for a
 * correctly formed filter the server will not allow (MQTT 5 §3.9.3, §4.7.1). */
static int check_filter(dec_t *d, int which, cx_str_t f, bool *shared)
{
    cx_filter_problem pb = cx_mqtt_filter_check(f, shared);
    if (pb == CX_FILTER_OK)
        return CX_OK;
    FAIL(CX_RC_MALFORMED_PACKET, m_filter[which][pb]);
}

static int dec_subscribe(dec_t *d, cx_mqtt_subscribe_t *s)
{
    cx_rd_t *r = &d->r;
    memset(s, 0, sizeof *s);
    if (!cx_rd_u16(r, &s->packet_id))
        MALFORMED(m_short[CX_MQTT_SUBSCRIBE]);
    if (!s->packet_id) /* [MQTT-2.3.1-1] */
        PROTOCOL(m_pid0[CX_MQTT_SUBSCRIBE]);
    if (d->v5)
        TRY(cx_mqtt_props_read(r, CX_PCTX_SUBSCRIBE, d->arena, &s->props, d->err));
    if (!cx_rd_left(r)) /* [MQTT-3.8.3-3], v5 [MQTT-3.8.3-2] */
        PROTOCOL("SUBSCRIBE: no topic filters");

    /* Pass 1: validate and count. */
    const uint8_t *payload = r->p;
    size_t count = 0;
    while (cx_rd_left(r)) {
        cx_str_t f;
        uint8_t o;
        if (!cx_rd_str(r, &f))
            MALFORMED("SUBSCRIBE: truncated topic filter");
        if (!cx_rd_u8(r, &o))
            MALFORMED("SUBSCRIBE: missing subscription options");
        bool shared;
        TRY(check_filter(d, 0, f, &shared));
        if (d->v5) {
            if (o & 0xC0) /* v5 [MQTT-3.8.3-5] */
                MALFORMED("SUBSCRIBE: reserved subscription option bits set");
            if ((o & 3) == 3) /* v5 §3.8.3.1 */
                PROTOCOL("SUBSCRIBE: maximum QoS 3");
            if (((o >> 4) & 3) == 3) /* v5 §3.8.3.1 */
                PROTOCOL("SUBSCRIBE: retain handling 3");
            if (shared && (o & 0x04)) /* v5 [MQTT-3.8.3-4] */
                PROTOCOL("SUBSCRIBE: no local set on a shared subscription");
        } else {
            if (o & 0xFC) /* [MQTT-3.8.3-4] */
                MALFORMED("SUBSCRIBE: reserved bits set in requested QoS byte");
            if (o == 3) /* [MQTT-3.8.3-4] */
                MALFORMED("SUBSCRIBE: requested QoS 3");
        }
        count++;
    }

    /* Pass 2: fill, no checks needed. */
    cx_mqtt_sub_entry_t *e = d->arena ? cx_arena_alloc(d->arena, count * sizeof *e) : NULL;
    if (!e) {
        cx_mqtt_fail(d->err, CX_RC_IMPL_SPECIFIC, "SUBSCRIBE: out of decode memory");
        return CX_ENOMEM;
    }
    const uint8_t *p = payload;
    for (size_t i = 0; i < count; i++) {
        size_t n = cx_get16(p);
        e[i].filter = (cx_str_t){p + 2, n};
        uint8_t o = p[2 + n];
        p += 3 + n;
        e[i].qos = o & 3;
        e[i].no_local = (o & 0x04) != 0;
        e[i].retain_as_published = (o & 0x08) != 0;
        e[i].retain_handling = (o >> 4) & 3;
    }
    s->entries = e;
    s->count = count;
    return CX_OK;
}

/* ---- UNSUBSCRIBE ---------------------------------------------------------------------- */

static int dec_unsubscribe(dec_t *d, cx_mqtt_unsubscribe_t *u)
{
    cx_rd_t *r = &d->r;
    memset(u, 0, sizeof *u);
    if (!cx_rd_u16(r, &u->packet_id))
        MALFORMED(m_short[CX_MQTT_UNSUBSCRIBE]);
    if (!u->packet_id) /* [MQTT-2.3.1-1] */
        PROTOCOL(m_pid0[CX_MQTT_UNSUBSCRIBE]);
    if (d->v5)
        TRY(cx_mqtt_props_read(r, CX_PCTX_UNSUBSCRIBE, d->arena, &u->props, d->err));
    if (!cx_rd_left(r)) /* [MQTT-3.10.3-2], v5 [MQTT-3.10.3-2] */
        PROTOCOL("UNSUBSCRIBE: no topic filters");

    const uint8_t *payload = r->p;
    size_t count = 0;
    while (cx_rd_left(r)) {
        cx_str_t f;
        bool shared;
        if (!cx_rd_str(r, &f))
            MALFORMED("UNSUBSCRIBE: truncated topic filter");
        TRY(check_filter(d, 1, f, &shared));
        count++;
    }
    cx_str_t *fs = d->arena ? cx_arena_alloc(d->arena, count * sizeof *fs) : NULL;
    if (!fs) {
        cx_mqtt_fail(d->err, CX_RC_IMPL_SPECIFIC, "UNSUBSCRIBE: out of decode memory");
        return CX_ENOMEM;
    }
    const uint8_t *p = payload;
    for (size_t i = 0; i < count; i++) {
        size_t n = cx_get16(p);
        fs[i] = (cx_str_t){p + 2, n};
        p += 2 + n;
    }
    u->filters = fs;
    u->count = count;
    return CX_OK;
}

/* ---- SUBACK, UNSUBACK ----------------------------------------------------------------- */

static int dec_suback(dec_t *d, cx_mqtt_type type, cx_mqtt_suback_t *s)
{
    cx_rd_t *r = &d->r;
    memset(s, 0, sizeof *s);
    if (!cx_rd_u16(r, &s->packet_id))
        MALFORMED(m_short[type]);
    if (!s->packet_id)
        PROTOCOL(m_pid0[type]);
    if (type == CX_MQTT_UNSUBACK && !d->v5) {
        /* 3.x UNSUBACK is the packet identifier only. */
        if (cx_rd_left(r))
            MALFORMED(m_extra[type]);
        return CX_OK;
    }
    if (d->v5)
        TRY(cx_mqtt_props_read(r, type == CX_MQTT_SUBACK ? CX_PCTX_SUBACK : CX_PCTX_UNSUBACK,
                               d->arena, &s->props, d->err));
    s->rcs = r->p;
    s->count = cx_rd_left(r);
    if (!s->count) /* one code per filter, and there was at least one filter */
        PROTOCOL(type == CX_MQTT_SUBACK ? "SUBACK: no return codes"
                                        : "UNSUBACK: no reason codes");
    if (d->v5) {
        int set = type == CX_MQTT_SUBACK ? S_SUBACK : S_UNSUBACK;
        for (size_t i = 0; i < s->count; i++)
            if (!(rc_sets[s->rcs[i]] & set))
                PROTOCOL(m_rc[type]);
    } else {
        /* [MQTT-3.9.3-2]: 0x00, 0x01, 0x02, 0x80. (3.1 had no 0x80 but brokers send it.) */
        for (size_t i = 0; i < s->count; i++)
            if (s->rcs[i] > 2 && s->rcs[i] != 0x80)
                PROTOCOL("SUBACK: return code not 0, 1, 2 or 0x80");
    }
    return CX_OK;
}

/* ---- DISCONNECT, AUTH (v5 forms) ------------------------------------------------------ */

static int dec_reason(dec_t *d, cx_mqtt_type type, cx_mqtt_reason_t *m)
{
    cx_rd_t *r = &d->r;
    cx_mqtt_props_clear(&m->props);
    m->rc = CX_RC_SUCCESS;
    /* v5 §3.14.2.1 / §3.15.2.1: remaining length 0 means Success and no properties; 1
     * means a reason code and no property length. */
    if (!cx_rd_u8(r, &m->rc))
        return CX_OK;
    int set;
    cx_pctx ctx;
    if (type == CX_MQTT_AUTH) {
        set = S_AUTH;
        ctx = CX_PCTX_AUTH;
    } else {
        set = d->server ? S_DISC_S : S_DISC_C;
        ctx = d->server ? CX_PCTX_DISCONNECT_S : CX_PCTX_DISCONNECT_C;
    }
    if (!(rc_sets[m->rc] & set)) /* [MQTT-3.14.2-1], [MQTT-3.15.2-1] */
        PROTOCOL(m_rc[type]);
    if (cx_rd_left(r))
        TRY(cx_mqtt_props_read(r, ctx, d->arena, &m->props, d->err));
    if (cx_rd_left(r))
        MALFORMED(m_extra[type]);
    /* v5 §3.15.2.2.2: "It is a Protocol Error to omit the Authentication Method"; only the
     * remaining-length-0 form (Success, no properties, handled above) goes without. */
    if (type == CX_MQTT_AUTH && !cx_mqtt_props_has(&m->props, CX_PROP_AUTH_METHOD))
        PROTOCOL("AUTH: no authentication method");
    return CX_OK;
}

/* ---- entry point ---------------------------------------------------------------------- */

/* Types each side may send: bit n = packet type n. */
#define TB(t) (1u << CX_MQTT_##t)
#define FROM_CLIENT                                                                       \
    (TB(CONNECT) | TB(PUBLISH) | TB(PUBACK) | TB(PUBREC) | TB(PUBREL) | TB(PUBCOMP) |     \
     TB(SUBSCRIBE) | TB(UNSUBSCRIBE) | TB(PINGREQ) | TB(DISCONNECT) | TB(AUTH))
#define FROM_SERVER                                                                       \
    (TB(CONNACK) | TB(PUBLISH) | TB(PUBACK) | TB(PUBREC) | TB(PUBREL) | TB(PUBCOMP) |     \
     TB(SUBACK) | TB(UNSUBACK) | TB(PINGRESP) | TB(DISCONNECT) | TB(AUTH))

int cx_mqtt_decode(const uint8_t *pkt, size_t len, cx_mqtt_version version, bool is_server,
                   cx_arena_t *arena, cx_mqtt_packet_t *out, cx_mqtt_error_t *err)
{
    cx_mqtt_error_t dummy;
    if (!err)
        err = &dummy;

    size_t hl = 0;
    uint32_t rl = 0;
    int rc = cx_mqtt_frame(pkt, len, &hl, &rl, err);
    if (rc == CX_EAGAIN)
        return cx_mqtt_fail(err, CX_RC_MALFORMED_PACKET, "fixed header: truncated");
    if (rc)
        return rc;
    if ((size_t)rl != len - hl)
        return cx_mqtt_fail(err, CX_RC_MALFORMED_PACKET,
                            "fixed header: remaining length does not match the packet size");

    uint8_t type = pkt[0] >> 4, flags = pkt[0] & 0x0F;
    out->type = (cx_mqtt_type)type;
    out->flags = flags;

    dec_t dd = {
        .r = {pkt + hl, pkt + len},
        .v5 = version == CX_MQTT_V5,
        .v31 = version == CX_MQTT_V31,
        .server = is_server,
        .arena = arena,
        .err = err,
    };
    dec_t *d = &dd;

    /* Type 0 is reserved in every version, 15 before v5 (3.1.1 §2.2.1). */
    if (type == 0 || (type == CX_MQTT_AUTH && !d->v5))
        MALFORMED("fixed header: reserved packet type");
    if (!((is_server ? FROM_SERVER : FROM_CLIENT) & (1u << type)))
        PROTOCOL(is_server ? m_dir_s[type] : m_dir_c[type]);
    /* 3.1.1 §2.2.2 / v5 §2.1.3: reserved flags must be as listed; PUBREL, SUBSCRIBE and
     * UNSUBSCRIBE carry 0x2 [MQTT-3.6.1-1] [MQTT-3.8.1-1] [MQTT-3.10.1-1]. MQTT 3.1 let a
     * sender set DUP on those three when retrying, so 0xA is accepted for 3.1. */
    if (type != CX_MQTT_PUBLISH) {
        bool two = type == CX_MQTT_PUBREL || type == CX_MQTT_SUBSCRIBE ||
                   type == CX_MQTT_UNSUBSCRIBE;
        uint8_t want = two ? 0x2 : 0x0;
        if (flags != want && !(two && d->v31 && flags == 0xA))
            MALFORMED(m_flags[type]);
    }

    switch ((cx_mqtt_type)type) {
    case CX_MQTT_CONNECT: return dec_connect(d, &out->u.connect);
    case CX_MQTT_CONNACK: return dec_connack(d, &out->u.connack);
    case CX_MQTT_PUBLISH: return dec_publish(d, flags, &out->u.publish);
    case CX_MQTT_PUBACK:
    case CX_MQTT_PUBREC:
    case CX_MQTT_PUBREL:
    case CX_MQTT_PUBCOMP: return dec_ack(d, (cx_mqtt_type)type, &out->u.ack);
    case CX_MQTT_SUBSCRIBE: return dec_subscribe(d, &out->u.subscribe);
    case CX_MQTT_SUBACK:
    case CX_MQTT_UNSUBACK: return dec_suback(d, (cx_mqtt_type)type, &out->u.suback);
    case CX_MQTT_UNSUBSCRIBE: return dec_unsubscribe(d, &out->u.unsubscribe);
    case CX_MQTT_PINGREQ:
    case CX_MQTT_PINGRESP:
        if (cx_rd_left(&d->r)) /* §3.12.1 / §3.13.1: remaining length 0 */
            MALFORMED(m_extra[type]);
        return CX_OK;
    case CX_MQTT_DISCONNECT:
        if (!d->v5) {
            /* 3.x: only a client sends DISCONNECT, and it has no variable header. */
            if (is_server)
                PROTOCOL("DISCONNECT: not allowed from a server before MQTT 5");
            cx_mqtt_props_clear(&out->u.reason.props);
            out->u.reason.rc = CX_RC_SUCCESS;
            if (cx_rd_left(&d->r))
                MALFORMED(m_extra[type]);
            return CX_OK;
        }
        return dec_reason(d, CX_MQTT_DISCONNECT, &out->u.reason);
    case CX_MQTT_AUTH: return dec_reason(d, CX_MQTT_AUTH, &out->u.reason);
    }
    MALFORMED("fixed header: reserved packet type"); /* unreachable */
}
