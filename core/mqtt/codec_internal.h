/* codec_internal.h: helpers shared by the codec's source files (decode, encode, props,
 * validate). Not part of the codec's public surface: only the core/mqtt sources include it.
 *
 * The reader (cx_rd_t) is a [p, end) window over the packet; every read checks the bytes
 * left before touching memory, so a decoder built from these helpers cannot read past the
 * packet whatever the input. */
#ifndef CX_MQTT_CODEC_INTERNAL_H
#define CX_MQTT_CODEC_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "../util/err.h"
#include "codec.h"

/* ---- big-endian loads and stores ------------------------------------------------------ */

static inline uint16_t cx_get16(const uint8_t *p)
{
    return (uint16_t)((uint16_t)p[0] << 8 | p[1]);
}

static inline uint32_t cx_get32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static inline uint8_t *cx_put16(uint8_t *d, uint32_t v)
{
    d[0] = (uint8_t)(v >> 8);
    d[1] = (uint8_t)v;
    return d + 2;
}

static inline uint8_t *cx_put32(uint8_t *d, uint32_t v)
{
    d[0] = (uint8_t)(v >> 24);
    d[1] = (uint8_t)(v >> 16);
    d[2] = (uint8_t)(v >> 8);
    d[3] = (uint8_t)v;
    return d + 4;
}

/* A two-byte-length-prefixed string or binary field. */
static inline uint8_t *cx_put_str(uint8_t *d, cx_str_t s)
{
    d = cx_put16(d, (uint32_t)s.len);
    if (s.len)
        memcpy(d, s.p, s.len);
    return d + s.len;
}

static inline uint8_t *cx_put_varint(uint8_t *d, uint32_t v)
{
    return d + cx_mqtt_varint_write(d, v);
}

/* ---- variable byte integers ----------------------------------------------------------- */

/* Reads a variable byte integer from p[0..n). Returns the number of bytes used (1..4), or 0
 * when the input ends inside the integer or a fifth byte would be needed (both make the
 * packet malformed: callers only use it inside a packet whose length is known).
 *
 * Non-minimal encodings (0x80 0x00 for 0) are accepted: [MQTT-1.5.5-1] ("The encoded value
 * MUST use the minimum number of bytes necessary") binds the sender, the value is
 * unambiguous, and 3.1.1 §2.2.3 has no such rule at all. Our encoder always writes the
 * minimum. */
static inline size_t cx_varint_get(const uint8_t *p, size_t n, uint32_t *v)
{
    if (n && p[0] < 0x80) {
        *v = p[0];
        return 1;
    }
    uint32_t val = 0;
    size_t lim = n < 4 ? n : 4;
    for (size_t i = 0; i < lim; i++) {
        val |= (uint32_t)(p[i] & 0x7F) << (7 * i);
        if (!(p[i] & 0x80)) {
            *v = val;
            return i + 1;
        }
    }
    return 0;
}

/* ---- bounded reader ------------------------------------------------------------------- */

typedef struct cx_rd {
    const uint8_t *p;
    const uint8_t *end;
} cx_rd_t;

static inline size_t cx_rd_left(const cx_rd_t *r)
{
    return (size_t)(r->end - r->p);
}

static inline bool cx_rd_u8(cx_rd_t *r, uint8_t *v)
{
    if (r->p >= r->end)
        return false;
    *v = *r->p++;
    return true;
}

static inline bool cx_rd_u16(cx_rd_t *r, uint16_t *v)
{
    if (cx_rd_left(r) < 2)
        return false;
    *v = cx_get16(r->p);
    r->p += 2;
    return true;
}

/* A length-prefixed string or binary field, as a slice into the packet. */
static inline bool cx_rd_str(cx_rd_t *r, cx_str_t *s)
{
    size_t left = cx_rd_left(r);
    if (left < 2)
        return false;
    size_t n = cx_get16(r->p);
    if (left - 2 < n)
        return false;
    s->p = r->p + 2;
    s->len = n;
    r->p += 2 + n;
    return true;
}

static inline bool cx_rd_varint(cx_rd_t *r, uint32_t *v)
{
    size_t k = cx_varint_get(r->p, cx_rd_left(r), v);
    r->p += k;
    return k != 0;
}

/* ---- errors --------------------------------------------------------------------------- */

static inline int cx_mqtt_fail(cx_mqtt_error_t *err, uint8_t rc, const char *msg)
{
    err->rc = rc;
    err->msg = msg;
    return CX_EPROTO;
}

/* ---- properties (props.c) ------------------------------------------------------------- */

#define CX_P_(x) CX_PROP_BIT(CX_PROP_##x)

/* Properties allowed per packet type (MQTT 5 §2.2.2.2 table). */
#define CX_PROPS_CONNECT                                                                  \
    (CX_P_(SESSION_EXPIRY) | CX_P_(RECEIVE_MAX) | CX_P_(MAX_PACKET_SIZE) |                \
     CX_P_(TOPIC_ALIAS_MAX) | CX_P_(REQUEST_RESPONSE_INFO) | CX_P_(REQUEST_PROBLEM_INFO) | \
     CX_P_(USER_PROPERTY) | CX_P_(AUTH_METHOD) | CX_P_(AUTH_DATA))
#define CX_PROPS_WILL                                                                     \
    (CX_P_(WILL_DELAY) | CX_P_(PAYLOAD_FORMAT) | CX_P_(MESSAGE_EXPIRY) |                  \
     CX_P_(CONTENT_TYPE) | CX_P_(RESPONSE_TOPIC) | CX_P_(CORRELATION_DATA) |              \
     CX_P_(USER_PROPERTY))
#define CX_PROPS_CONNACK                                                                  \
    (CX_P_(SESSION_EXPIRY) | CX_P_(RECEIVE_MAX) | CX_P_(MAX_QOS) |                        \
     CX_P_(RETAIN_AVAILABLE) | CX_P_(MAX_PACKET_SIZE) | CX_P_(ASSIGNED_CLIENT_ID) |       \
     CX_P_(TOPIC_ALIAS_MAX) | CX_P_(REASON_STRING) | CX_P_(USER_PROPERTY) |               \
     CX_P_(WILDCARD_SUB_AVAILABLE) | CX_P_(SUB_ID_AVAILABLE) |                            \
     CX_P_(SHARED_SUB_AVAILABLE) | CX_P_(SERVER_KEEPALIVE) | CX_P_(RESPONSE_INFO) |       \
     CX_P_(SERVER_REFERENCE) | CX_P_(AUTH_METHOD) | CX_P_(AUTH_DATA))
#define CX_PROPS_PUBLISH                                                                  \
    (CX_P_(PAYLOAD_FORMAT) | CX_P_(MESSAGE_EXPIRY) | CX_P_(CONTENT_TYPE) |                \
     CX_P_(RESPONSE_TOPIC) | CX_P_(CORRELATION_DATA) | CX_P_(SUBSCRIPTION_ID) |           \
     CX_P_(TOPIC_ALIAS) | CX_P_(USER_PROPERTY))
#define CX_PROPS_ACK (CX_P_(REASON_STRING) | CX_P_(USER_PROPERTY))
#define CX_PROPS_SUBSCRIBE (CX_P_(SUBSCRIPTION_ID) | CX_P_(USER_PROPERTY))
#define CX_PROPS_UNSUBSCRIBE (CX_P_(USER_PROPERTY))
#define CX_PROPS_DISCONNECT                                                               \
    (CX_P_(SESSION_EXPIRY) | CX_P_(REASON_STRING) | CX_P_(USER_PROPERTY) |                \
     CX_P_(SERVER_REFERENCE))
#define CX_PROPS_AUTH                                                                     \
    (CX_P_(AUTH_METHOD) | CX_P_(AUTH_DATA) | CX_P_(REASON_STRING) | CX_P_(USER_PROPERTY))

/* Where a property block sits: decides the allowed set, which properties may repeat, and
 * the packet named in error messages. _C = sent by a client, _S = sent by a server. */
typedef enum cx_pctx {
    CX_PCTX_CONNECT,
    CX_PCTX_WILL,
    CX_PCTX_CONNACK,
    CX_PCTX_PUBLISH_C,
    CX_PCTX_PUBLISH_S,
    CX_PCTX_PUBACK,
    CX_PCTX_PUBREC,
    CX_PCTX_PUBREL,
    CX_PCTX_PUBCOMP,
    CX_PCTX_SUBSCRIBE,
    CX_PCTX_SUBACK,
    CX_PCTX_UNSUBSCRIBE,
    CX_PCTX_UNSUBACK,
    CX_PCTX_DISCONNECT_C,
    CX_PCTX_DISCONNECT_S,
    CX_PCTX_AUTH,
    CX_PCTX_COUNT
} cx_pctx;

/* Empties a property set without touching the value fields: codec.h makes a field whose
 * `present` bit is clear meaningless, and zeroing the whole struct (~250 bytes) is the
 * largest single cost of decoding a small PUBLISH. */
static inline void cx_mqtt_props_clear(cx_mqtt_props_t *p)
{
    p->present = 0;
    p->sub_ids = NULL;
    p->sub_id_count = 0;
    p->user_props = NULL;
    p->user_prop_count = 0;
}

/* Reads a property block (length prefix included) at r and advances r past it. `out` must
 * be cleared (cx_mqtt_props_clear or zeroed) by the caller. Arrays (user properties,
 * subscription identifiers) go to the arena. Returns CX_OK, CX_EPROTO or CX_ENOMEM, with
 * err filled on failure. */
int cx_mqtt_props_read(cx_rd_t *r, cx_pctx ctx, cx_arena_t *arena, cx_mqtt_props_t *out,
                       cx_mqtt_error_t *err);

/* Length of the property bytes (no length prefix) for p->present & mask; SIZE_MAX when a
 * field cannot be encoded (string over 65535 bytes, subscription identifier out of range,
 * block over the remaining-length limit). p may be NULL (no properties). */
size_t cx_mqtt_props_body_len(const cx_mqtt_props_t *p, uint64_t mask);
/* Writes exactly cx_mqtt_props_body_len(p, mask) bytes at d; returns the end. */
uint8_t *cx_mqtt_props_write(uint8_t *d, const cx_mqtt_props_t *p, uint64_t mask);

/* ---- topic filters (validate.c) -------------------------------------------------------- */

/* Why a topic filter is invalid, so decode errors can say it precisely. */
typedef enum cx_filter_problem {
    CX_FILTER_OK = 0,
    CX_FILTER_EMPTY,
    CX_FILTER_UTF8,       /* ill-formed UTF-8 or U+0000: a malformed packet */
    CX_FILTER_PLUS,       /* '+' does not occupy a whole level */
    CX_FILTER_HASH,       /* '#' is not a whole level or not the last one */
    CX_FILTER_SHARE_NAME, /* "$share/" with an empty or missing ShareName */
    CX_FILTER_SHARE_WILD, /* ShareName contains '+' or '#' */
    CX_FILTER_SHARE_EMPTY /* nothing after "$share/{ShareName}/" */
} cx_filter_problem;

/* Checks a filter as SUBSCRIBE/UNSUBSCRIBE carry it, shared-subscription syntax included;
 * *shared says whether it is a "$share/" filter. */
cx_filter_problem cx_mqtt_filter_check(cx_str_t filter, bool *shared);

#endif
