/* encode.c: every control packet, MQTT 3.1, 3.1.1 and 5.0.
 *
 * Each encoder computes the exact remaining length first, reserves the whole packet once,
 * and writes it with plain stores into the buffer's tail: no per-field buffer calls.
 * Properties are masked to the set allowed for the packet type (codec_internal.h), so a
 * stray field in a reused cx_mqtt_props_t can never produce a packet the peer rejects.
 *
 * Errors: CX_ENOMEM / CX_ETOOBIG from the buffer; CX_ETOOBIG as well for input that cannot
 * be represented (a string over 65535 bytes, a packet over 268435455 bytes); CX_EINVAL
 * for a type or version the call does not cover (AUTH before v5, a QoS above 2). */
#include <string.h>

#include "codec_internal.h"

#define STR_MAX 65535u

size_t cx_mqtt_varint_size(uint32_t v)
{
    return v < 128u ? 1 : v < 16384u ? 2 : v < 2097152u ? 3 : 4;
}

size_t cx_mqtt_varint_write(uint8_t *dst, uint32_t v)
{
    size_t n = 0;
    do {
        uint8_t b = v & 0x7F;
        v >>= 7;
        if (v)
            b |= 0x80;
        dst[n++] = b;
    } while (v && n < 4);
    return n;
}

/* Reserves the whole packet (fixed header included) and writes the fixed header.
 * Returns CX_OK with *d at the first byte after the header. */
static int begin(cx_buf_t *out, uint8_t b0, size_t rem, uint8_t **d, size_t *total)
{
    if (rem > CX_MQTT_MAX_REMAINING)
        return CX_ETOOBIG;
    size_t n = 1 + cx_mqtt_varint_size((uint32_t)rem) + rem;
    int rc = cx_buf_reserve(out, n);
    if (rc)
        return rc;
    uint8_t *p = cx_buf_tail(out);
    *p++ = b0;
    p = cx_put_varint(p, (uint32_t)rem);
    *d = p;
    *total = n;
    return CX_OK;
}

static void finish(cx_buf_t *out, const uint8_t *end, size_t total)
{
    CX_ASSERT((size_t)(end - cx_buf_tail(out)) == total);
    out->len += total;
}

/* Size of a property block with its length prefix, or SIZE_MAX. */
static size_t block_size(const cx_mqtt_props_t *p, uint64_t mask, size_t *body)
{
    size_t n = cx_mqtt_props_body_len(p, mask);
    *body = n;
    if (n == SIZE_MAX)
        return SIZE_MAX;
    return cx_mqtt_varint_size((uint32_t)n) + n;
}

static uint8_t *put_block(uint8_t *d, const cx_mqtt_props_t *p, uint64_t mask, size_t body)
{
    d = cx_put_varint(d, (uint32_t)body);
    return cx_mqtt_props_write(d, p, mask);
}

/* ---- CONNECT -------------------------------------------------------------------------- */

int cx_mqtt_encode_connect(cx_buf_t *out, const cx_mqtt_connect_t *c)
{
    uint8_t level = c->protocol_level;
    bool v5 = level == CX_MQTT_V5;
    cx_str_t name = c->protocol_name;
    if (!name.len)
        name = level == CX_MQTT_V31 ? CX_STR_LIT("MQIsdp") : CX_STR_LIT("MQTT");

    size_t big = name.len | c->client_id.len;
    size_t rem = 2 + name.len + 1 + 1 + 2 + 2 + c->client_id.len;
    size_t pbody = 0, wbody = 0;
    if (v5) {
        size_t n = block_size(&c->props, CX_PROPS_CONNECT, &pbody);
        if (n == SIZE_MAX)
            return CX_ETOOBIG;
        rem += n;
    }
    if (c->will_flag) {
        if (v5) {
            size_t n = block_size(&c->will_props, CX_PROPS_WILL, &wbody);
            if (n == SIZE_MAX)
                return CX_ETOOBIG;
            rem += n;
        }
        rem += 4 + c->will_topic.len + c->will_payload.len;
        big |= c->will_topic.len | c->will_payload.len;
    }
    if (c->has_username) {
        rem += 2 + c->username.len;
        big |= c->username.len;
    }
    if (c->has_password) {
        rem += 2 + c->password.len;
        big |= c->password.len;
    }
    if (big > STR_MAX)
        return CX_ETOOBIG;
    if (c->will_flag && c->will_qos > 2)
        return CX_EINVAL;

    uint8_t flags = (uint8_t)((c->clean_start ? 0x02 : 0) | (c->has_password ? 0x40 : 0) |
                              (c->has_username ? 0x80 : 0));
    if (c->will_flag)
        flags |= (uint8_t)(0x04 | c->will_qos << 3 | (c->will_retain ? 0x20 : 0));

    uint8_t *d;
    size_t total;
    int rc = begin(out, CX_MQTT_CONNECT << 4, rem, &d, &total);
    if (rc)
        return rc;
    d = cx_put_str(d, name);
    *d++ = (uint8_t)(level | (c->bridge ? 0x80 : 0));
    *d++ = flags;
    d = cx_put16(d, c->keepalive);
    if (v5)
        d = put_block(d, &c->props, CX_PROPS_CONNECT, pbody);
    d = cx_put_str(d, c->client_id);
    if (c->will_flag) {
        if (v5)
            d = put_block(d, &c->will_props, CX_PROPS_WILL, wbody);
        d = cx_put_str(d, c->will_topic);
        d = cx_put_str(d, c->will_payload);
    }
    if (c->has_username)
        d = cx_put_str(d, c->username);
    if (c->has_password)
        d = cx_put_str(d, c->password);
    finish(out, d, total);
    return CX_OK;
}

/* ---- CONNACK -------------------------------------------------------------------------- */

/* 3.x: c->rc should already be a 3.x return code; a v5 code (> 5) is mapped with
 * cx_mqtt_rc_to_v3_connack so a 3.x client never sees a value it cannot interpret. 3.1 has
 * no session present flag. */
int cx_mqtt_encode_connack(cx_buf_t *out, cx_mqtt_version v, const cx_mqtt_connack_t *c)
{
    bool v5 = v == CX_MQTT_V5;
    size_t rem = 2, body = 0;
    if (v5) {
        size_t n = block_size(&c->props, CX_PROPS_CONNACK, &body);
        if (n == SIZE_MAX)
            return CX_ETOOBIG;
        rem += n;
    }
    uint8_t *d;
    size_t total;
    int rc = begin(out, CX_MQTT_CONNACK << 4, rem, &d, &total);
    if (rc)
        return rc;
    *d++ = (c->session_present && v != CX_MQTT_V31) ? 1 : 0;
    *d++ = v5 ? c->rc : cx_mqtt_rc_to_v3_connack(c->rc);
    if (v5)
        d = put_block(d, &c->props, CX_PROPS_CONNACK, body);
    finish(out, d, total);
    return CX_OK;
}

/* ---- PUBLISH -------------------------------------------------------------------------- */

/* *pid_offset is 0 for QoS 0 (no packet identifier). DUP is written only at QoS > 0
 * ([MQTT-3.3.1-2]). */
int cx_mqtt_encode_publish(cx_buf_t *out, cx_mqtt_version v, const cx_mqtt_publish_t *p,
                           size_t *pid_offset)
{
    if (p->qos > 2)
        return CX_EINVAL;
    if (p->topic.len > STR_MAX)
        return CX_ETOOBIG;
    bool v5 = v == CX_MQTT_V5;
    size_t rem = 2 + p->topic.len + (p->qos ? 2 : 0) + p->payload.len, body = 0;
    if (v5) {
        size_t n = block_size(&p->props, CX_PROPS_PUBLISH, &body);
        if (n == SIZE_MAX)
            return CX_ETOOBIG;
        rem += n;
    }
    uint8_t b0 = (uint8_t)(CX_MQTT_PUBLISH << 4 | p->qos << 1 | (p->retain ? 1 : 0));
    if (p->qos && p->dup)
        b0 |= 0x08;
    uint8_t *d;
    size_t total;
    int rc = begin(out, b0, rem, &d, &total);
    if (rc)
        return rc;
    uint8_t *start = cx_buf_tail(out);
    d = cx_put_str(d, p->topic);
    if (pid_offset)
        *pid_offset = p->qos ? (size_t)(d - start) : 0;
    if (p->qos)
        d = cx_put16(d, p->packet_id);
    if (v5)
        d = put_block(d, &p->props, CX_PROPS_PUBLISH, body);
    if (p->payload.len) {
        memcpy(d, p->payload.p, p->payload.len);
        d += p->payload.len;
    }
    finish(out, d, total);
    return CX_OK;
}

/* ---- PUBACK, PUBREC, PUBREL, PUBCOMP -------------------------------------------------- */

int cx_mqtt_encode_ack(cx_buf_t *out, cx_mqtt_version v, cx_mqtt_type type,
                       const cx_mqtt_ack_t *a)
{
    if (type < CX_MQTT_PUBACK || type > CX_MQTT_PUBCOMP)
        return CX_EINVAL;
    size_t rem = 2, body = 0, n = 0;
    bool with_rc = false, with_props = false;
    if (v == CX_MQTT_V5) {
        n = block_size(&a->props, CX_PROPS_ACK, &body);
        if (n == SIZE_MAX)
            return CX_ETOOBIG;
        /* v5 §3.4.2.1: omit reason code and properties for Success without properties;
         * §3.4.2.2: omit only the property length when there are no properties. */
        with_props = body != 0;
        with_rc = with_props || a->rc != CX_RC_SUCCESS;
        rem += (with_rc ? 1 : 0) + (with_props ? n : 0);
    }
    uint8_t b0 = (uint8_t)(type << 4 | (type == CX_MQTT_PUBREL ? 0x2 : 0));
    uint8_t *d;
    size_t total;
    int rc = begin(out, b0, rem, &d, &total);
    if (rc)
        return rc;
    d = cx_put16(d, a->packet_id);
    if (with_rc)
        *d++ = a->rc;
    if (with_props)
        d = put_block(d, &a->props, CX_PROPS_ACK, body);
    finish(out, d, total);
    return CX_OK;
}

/* ---- SUBSCRIBE ------------------------------------------------------------------------ */

int cx_mqtt_encode_subscribe(cx_buf_t *out, cx_mqtt_version v, const cx_mqtt_subscribe_t *s)
{
    bool v5 = v == CX_MQTT_V5;
    size_t rem = 2, body = 0;
    if (v5) {
        size_t n = block_size(&s->props, CX_PROPS_SUBSCRIBE, &body);
        if (n == SIZE_MAX)
            return CX_ETOOBIG;
        rem += n;
    }
    for (size_t i = 0; i < s->count; i++) {
        if (s->entries[i].filter.len > STR_MAX)
            return CX_ETOOBIG;
        rem += 3 + s->entries[i].filter.len;
    }
    uint8_t *d;
    size_t total;
    int rc = begin(out, CX_MQTT_SUBSCRIBE << 4 | 0x2, rem, &d, &total);
    if (rc)
        return rc;
    d = cx_put16(d, s->packet_id);
    if (v5)
        d = put_block(d, &s->props, CX_PROPS_SUBSCRIBE, body);
    for (size_t i = 0; i < s->count; i++) {
        const cx_mqtt_sub_entry_t *e = &s->entries[i];
        d = cx_put_str(d, e->filter);
        uint8_t o = e->qos & 3;
        if (v5)
            o |= (uint8_t)((e->no_local ? 0x04 : 0) | (e->retain_as_published ? 0x08 : 0) |
                           (e->retain_handling & 3) << 4);
        *d++ = o;
    }
    finish(out, d, total);
    return CX_OK;
}

/* ---- SUBACK, UNSUBACK ----------------------------------------------------------------- */

/* 3.x SUBACK knows only 0, 1, 2 and 0x80 (failure): every v5 failure code (>= 0x80) is
 * sent as 0x80. */
int cx_mqtt_encode_suback(cx_buf_t *out, cx_mqtt_version v, cx_mqtt_type type,
                          const cx_mqtt_suback_t *s)
{
    if (type != CX_MQTT_SUBACK && type != CX_MQTT_UNSUBACK)
        return CX_EINVAL;
    bool v5 = v == CX_MQTT_V5;
    bool with_codes = v5 || type == CX_MQTT_SUBACK;
    uint64_t mask = CX_PROPS_ACK;
    size_t rem = 2 + (with_codes ? s->count : 0), body = 0;
    if (v5) {
        size_t n = block_size(&s->props, mask, &body);
        if (n == SIZE_MAX)
            return CX_ETOOBIG;
        rem += n;
    }
    uint8_t *d;
    size_t total;
    int rc = begin(out, (uint8_t)(type << 4), rem, &d, &total);
    if (rc)
        return rc;
    d = cx_put16(d, s->packet_id);
    if (v5) {
        d = put_block(d, &s->props, mask, body);
        if (s->count)
            memcpy(d, s->rcs, s->count);
        d += s->count;
    } else if (with_codes) {
        for (size_t i = 0; i < s->count; i++)
            *d++ = s->rcs[i] >= 0x80 ? 0x80 : s->rcs[i];
    }
    finish(out, d, total);
    return CX_OK;
}

/* ---- UNSUBSCRIBE ---------------------------------------------------------------------- */

int cx_mqtt_encode_unsubscribe(cx_buf_t *out, cx_mqtt_version v,
                               const cx_mqtt_unsubscribe_t *u)
{
    bool v5 = v == CX_MQTT_V5;
    size_t rem = 2, body = 0;
    if (v5) {
        size_t n = block_size(&u->props, CX_PROPS_UNSUBSCRIBE, &body);
        if (n == SIZE_MAX)
            return CX_ETOOBIG;
        rem += n;
    }
    for (size_t i = 0; i < u->count; i++) {
        if (u->filters[i].len > STR_MAX)
            return CX_ETOOBIG;
        rem += 2 + u->filters[i].len;
    }
    uint8_t *d;
    size_t total;
    int rc = begin(out, CX_MQTT_UNSUBSCRIBE << 4 | 0x2, rem, &d, &total);
    if (rc)
        return rc;
    d = cx_put16(d, u->packet_id);
    if (v5)
        d = put_block(d, &u->props, CX_PROPS_UNSUBSCRIBE, body);
    for (size_t i = 0; i < u->count; i++)
        d = cx_put_str(d, u->filters[i]);
    finish(out, d, total);
    return CX_OK;
}

/* ---- PINGREQ, PINGRESP ---------------------------------------------------------------- */

int cx_mqtt_encode_ping(cx_buf_t *out, cx_mqtt_type type)
{
    if (type != CX_MQTT_PINGREQ && type != CX_MQTT_PINGRESP)
        return CX_EINVAL;
    uint8_t b[2] = {(uint8_t)(type << 4), 0};
    return cx_buf_append(out, b, 2);
}

/* ---- DISCONNECT, AUTH ----------------------------------------------------------------- */

int cx_mqtt_encode_reason(cx_buf_t *out, cx_mqtt_version v, cx_mqtt_type type,
                          const cx_mqtt_reason_t *r)
{
    if (type != CX_MQTT_DISCONNECT && type != CX_MQTT_AUTH)
        return CX_EINVAL;
    bool v5 = v == CX_MQTT_V5;
    if (!v5) {
        if (type == CX_MQTT_AUTH)
            return CX_EINVAL; /* AUTH does not exist before MQTT 5 */
        uint8_t b[2] = {CX_MQTT_DISCONNECT << 4, 0};
        return cx_buf_append(out, b, 2);
    }
    uint64_t mask = type == CX_MQTT_AUTH ? CX_PROPS_AUTH : CX_PROPS_DISCONNECT;
    size_t body = 0;
    size_t n = block_size(&r->props, mask, &body);
    if (n == SIZE_MAX)
        return CX_ETOOBIG;
    /* v5 §3.14.2.1 / §3.15.2.1: rc 0 and no properties -> remaining length 0; no
     * properties -> the reason code alone. */
    bool with_props = body != 0;
    bool with_rc = with_props || r->rc != CX_RC_SUCCESS;
    size_t rem = (with_rc ? 1 : 0) + (with_props ? n : 0);
    uint8_t *d;
    size_t total;
    int rc = begin(out, (uint8_t)(type << 4), rem, &d, &total);
    if (rc)
        return rc;
    if (with_rc)
        *d++ = r->rc;
    if (with_props)
        d = put_block(d, &r->props, mask, body);
    finish(out, d, total);
    return CX_OK;
}
