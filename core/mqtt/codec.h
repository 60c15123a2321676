/* codec.h: the MQTT codec, the public surface of core/mqtt.
 *
 * Pure functions over byte buffers: no I/O, no globals, no broker semantics. Decoding is
 * zero-copy: every cx_str_t in a decoded packet points into the caller's packet bytes, and
 * variable-length arrays (subscription entries, user properties, subscription identifiers)
 * are placed in the caller's arena. Both stay valid only until the caller reuses the packet
 * buffer or resets the arena.
 *
 * Decoding validates everything the specs (MQTT 3.1, 3.1.1 and 5.0) make a protocol error
 * that can be seen in one packet: lengths, reserved flags, property identifiers allowed per
 * packet type, duplicate properties, value ranges, UTF-8 rules, topic name/filter syntax,
 * packet identifier 0 at QoS > 0, QoS 3, and so on. State-dependent checks (topic alias
 * ranges, receive maximum, packet order) belong to the broker.
 *
 * Encoding appends whole packets to a cx_buf_t and never fails except for CX_ENOMEM /
 * CX_ETOOBIG from the buffer. Properties are written only for MQTT 5. */
#ifndef CX_MQTT_CODEC_H
#define CX_MQTT_CODEC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../util/arena.h"
#include "../util/buf.h"
#include "../util/str.h"

typedef enum cx_mqtt_version {
    CX_MQTT_V31 = 3,
    CX_MQTT_V311 = 4,
    CX_MQTT_V5 = 5,
} cx_mqtt_version;

typedef enum cx_mqtt_type {
    CX_MQTT_CONNECT = 1,
    CX_MQTT_CONNACK = 2,
    CX_MQTT_PUBLISH = 3,
    CX_MQTT_PUBACK = 4,
    CX_MQTT_PUBREC = 5,
    CX_MQTT_PUBREL = 6,
    CX_MQTT_PUBCOMP = 7,
    CX_MQTT_SUBSCRIBE = 8,
    CX_MQTT_SUBACK = 9,
    CX_MQTT_UNSUBSCRIBE = 10,
    CX_MQTT_UNSUBACK = 11,
    CX_MQTT_PINGREQ = 12,
    CX_MQTT_PINGRESP = 13,
    CX_MQTT_DISCONNECT = 14,
    CX_MQTT_AUTH = 15,
} cx_mqtt_type;

/* MQTT 5 reason codes. For 3.1/3.1.1 the broker maps them (cx_mqtt_rc_to_v3_connack). */
typedef enum cx_mqtt_rc {
    CX_RC_SUCCESS = 0x00, /* also: normal disconnection, granted QoS 0 */
    CX_RC_GRANTED_QOS1 = 0x01,
    CX_RC_GRANTED_QOS2 = 0x02,
    CX_RC_DISCONNECT_WITH_WILL = 0x04,
    CX_RC_NO_MATCHING_SUBSCRIBERS = 0x10,
    CX_RC_NO_SUBSCRIPTION_EXISTED = 0x11,
    CX_RC_CONTINUE_AUTH = 0x18,
    CX_RC_REAUTHENTICATE = 0x19,
    CX_RC_UNSPECIFIED = 0x80,
    CX_RC_MALFORMED_PACKET = 0x81,
    CX_RC_PROTOCOL_ERROR = 0x82,
    CX_RC_IMPL_SPECIFIC = 0x83,
    CX_RC_UNSUPPORTED_PROTOCOL_VERSION = 0x84,
    CX_RC_CLIENT_ID_NOT_VALID = 0x85,
    CX_RC_BAD_USERNAME_OR_PASSWORD = 0x86,
    CX_RC_NOT_AUTHORIZED = 0x87,
    CX_RC_SERVER_UNAVAILABLE = 0x88,
    CX_RC_SERVER_BUSY = 0x89,
    CX_RC_BANNED = 0x8A,
    CX_RC_SERVER_SHUTTING_DOWN = 0x8B,
    CX_RC_BAD_AUTH_METHOD = 0x8C,
    CX_RC_KEEP_ALIVE_TIMEOUT = 0x8D,
    CX_RC_SESSION_TAKEN_OVER = 0x8E,
    CX_RC_TOPIC_FILTER_INVALID = 0x8F,
    CX_RC_TOPIC_NAME_INVALID = 0x90,
    CX_RC_PACKET_ID_IN_USE = 0x91,
    CX_RC_PACKET_ID_NOT_FOUND = 0x92,
    CX_RC_RECEIVE_MAX_EXCEEDED = 0x93,
    CX_RC_TOPIC_ALIAS_INVALID = 0x94,
    CX_RC_PACKET_TOO_LARGE = 0x95,
    CX_RC_MESSAGE_RATE_TOO_HIGH = 0x96,
    CX_RC_QUOTA_EXCEEDED = 0x97,
    CX_RC_ADMINISTRATIVE_ACTION = 0x98,
    CX_RC_PAYLOAD_FORMAT_INVALID = 0x99,
    CX_RC_RETAIN_NOT_SUPPORTED = 0x9A,
    CX_RC_QOS_NOT_SUPPORTED = 0x9B,
    CX_RC_USE_ANOTHER_SERVER = 0x9C,
    CX_RC_SERVER_MOVED = 0x9D,
    CX_RC_SHARED_SUBS_NOT_SUPPORTED = 0x9E,
    CX_RC_CONNECTION_RATE_EXCEEDED = 0x9F,
    CX_RC_MAX_CONNECT_TIME = 0xA0,
    CX_RC_SUB_IDS_NOT_SUPPORTED = 0xA1,
    CX_RC_WILDCARD_SUBS_NOT_SUPPORTED = 0xA2,
} cx_mqtt_rc;

/* MQTT 3.1/3.1.1 CONNACK return codes. */
enum {
    CX_V3_CONNACK_ACCEPTED = 0,
    CX_V3_CONNACK_BAD_PROTOCOL = 1,
    CX_V3_CONNACK_ID_REJECTED = 2,
    CX_V3_CONNACK_SERVER_UNAVAILABLE = 3,
    CX_V3_CONNACK_BAD_CREDENTIALS = 4,
    CX_V3_CONNACK_NOT_AUTHORIZED = 5,
};

/* Property identifiers (MQTT 5 §2.2.2.2). */
typedef enum cx_mqtt_prop_id {
    CX_PROP_PAYLOAD_FORMAT = 0x01,
    CX_PROP_MESSAGE_EXPIRY = 0x02,
    CX_PROP_CONTENT_TYPE = 0x03,
    CX_PROP_RESPONSE_TOPIC = 0x08,
    CX_PROP_CORRELATION_DATA = 0x09,
    CX_PROP_SUBSCRIPTION_ID = 0x0B,
    CX_PROP_SESSION_EXPIRY = 0x11,
    CX_PROP_ASSIGNED_CLIENT_ID = 0x12,
    CX_PROP_SERVER_KEEPALIVE = 0x13,
    CX_PROP_AUTH_METHOD = 0x15,
    CX_PROP_AUTH_DATA = 0x16,
    CX_PROP_REQUEST_PROBLEM_INFO = 0x17,
    CX_PROP_WILL_DELAY = 0x18,
    CX_PROP_REQUEST_RESPONSE_INFO = 0x19,
    CX_PROP_RESPONSE_INFO = 0x1A,
    CX_PROP_SERVER_REFERENCE = 0x1C,
    CX_PROP_REASON_STRING = 0x1F,
    CX_PROP_RECEIVE_MAX = 0x21,
    CX_PROP_TOPIC_ALIAS_MAX = 0x22,
    CX_PROP_TOPIC_ALIAS = 0x23,
    CX_PROP_MAX_QOS = 0x24,
    CX_PROP_RETAIN_AVAILABLE = 0x25,
    CX_PROP_USER_PROPERTY = 0x26,
    CX_PROP_MAX_PACKET_SIZE = 0x27,
    CX_PROP_WILDCARD_SUB_AVAILABLE = 0x28,
    CX_PROP_SUB_ID_AVAILABLE = 0x29,
    CX_PROP_SHARED_SUB_AVAILABLE = 0x2A,
} cx_mqtt_prop_id;

#define CX_PROP_BIT(id) (1ULL << (id))
/* The PUBLISH properties a broker forwards unchanged from publisher to subscriber. */
#define CX_PROPS_PUBLISH_PASSTHROUGH                                                      \
    (CX_PROP_BIT(CX_PROP_PAYLOAD_FORMAT) | CX_PROP_BIT(CX_PROP_CONTENT_TYPE) |           \
     CX_PROP_BIT(CX_PROP_RESPONSE_TOPIC) | CX_PROP_BIT(CX_PROP_CORRELATION_DATA) |       \
     CX_PROP_BIT(CX_PROP_USER_PROPERTY))

typedef struct cx_mqtt_user_prop {
    cx_str_t key;
    cx_str_t value;
} cx_mqtt_user_prop_t;

/* Every MQTT 5 property. `present` has CX_PROP_BIT(id) set for each property that was
 * decoded or is to be encoded; a field whose bit is clear is meaningless. */
typedef struct cx_mqtt_props {
    uint64_t present;
    uint8_t payload_format;
    uint32_t message_expiry;
    cx_str_t content_type;
    cx_str_t response_topic;
    cx_str_t correlation_data;
    uint32_t session_expiry;
    cx_str_t assigned_client_id;
    uint16_t server_keepalive;
    cx_str_t auth_method;
    cx_str_t auth_data;
    uint8_t request_problem_info;
    uint32_t will_delay;
    uint8_t request_response_info;
    cx_str_t response_info;
    cx_str_t server_reference;
    cx_str_t reason_string;
    uint16_t receive_max;
    uint16_t topic_alias_max;
    uint16_t topic_alias;
    uint8_t max_qos;
    uint8_t retain_available;
    uint32_t max_packet_size;
    uint8_t wildcard_sub_available;
    uint8_t sub_id_available;
    uint8_t shared_sub_available;
    /* Subscription identifiers: one in SUBSCRIBE, any number in a PUBLISH sent to a client. */
    const uint32_t *sub_ids;
    size_t sub_id_count;
    const cx_mqtt_user_prop_t *user_props;
    size_t user_prop_count;
} cx_mqtt_props_t;

static inline bool cx_mqtt_props_has(const cx_mqtt_props_t *p, cx_mqtt_prop_id id)
{
    return (p->present & CX_PROP_BIT(id)) != 0;
}

typedef struct cx_mqtt_connect {
    cx_str_t protocol_name;  /* "MQTT" or "MQIsdp" */
    uint8_t protocol_level;  /* 3, 4 or 5 (== cx_mqtt_version) */
    bool clean_start;        /* clean session (3.x) / clean start (5) */
    bool will_flag;
    uint8_t will_qos;
    bool will_retain;
    bool has_username;
    bool has_password;
    uint16_t keepalive;
    cx_mqtt_props_t props;
    cx_str_t client_id;
    cx_mqtt_props_t will_props;
    cx_str_t will_topic;
    cx_str_t will_payload;
    cx_str_t username;
    cx_str_t password;
    /* Added: the protocol level byte had its top bit set (0x83/0x84), which Mosquitto
     * bridges send with try_private; protocol_level holds the level without that bit. The
     * encoder sets the bit when this is true. */
    bool bridge;
} cx_mqtt_connect_t;

typedef struct cx_mqtt_connack {
    bool session_present;
    uint8_t rc; /* v5 reason code or v3 return code */
    cx_mqtt_props_t props;
} cx_mqtt_connack_t;

typedef struct cx_mqtt_publish {
    uint8_t qos;
    bool retain;
    bool dup;
    cx_str_t topic;      /* may be empty in v5 when a topic alias is used */
    uint16_t packet_id;  /* 0 at QoS 0 */
    cx_mqtt_props_t props;
    cx_str_t payload;
} cx_mqtt_publish_t;

/* PUBACK, PUBREC, PUBREL, PUBCOMP. */
typedef struct cx_mqtt_ack {
    uint16_t packet_id;
    uint8_t rc; /* CX_RC_SUCCESS when absent */
    cx_mqtt_props_t props;
} cx_mqtt_ack_t;

typedef struct cx_mqtt_sub_entry {
    cx_str_t filter;
    uint8_t qos;
    bool no_local;           /* v5 */
    bool retain_as_published; /* v5 */
    uint8_t retain_handling;  /* v5: 0, 1 or 2 */
} cx_mqtt_sub_entry_t;

typedef struct cx_mqtt_subscribe {
    uint16_t packet_id;
    cx_mqtt_props_t props;
    const cx_mqtt_sub_entry_t *entries;
    size_t count; /* >= 1 */
} cx_mqtt_subscribe_t;

/* SUBACK and UNSUBACK (UNSUBACK has reason codes only in v5). */
typedef struct cx_mqtt_suback {
    uint16_t packet_id;
    cx_mqtt_props_t props;
    const uint8_t *rcs;
    size_t count;
} cx_mqtt_suback_t;

typedef struct cx_mqtt_unsubscribe {
    uint16_t packet_id;
    cx_mqtt_props_t props;
    const cx_str_t *filters;
    size_t count; /* >= 1 */
} cx_mqtt_unsubscribe_t;

/* DISCONNECT and AUTH. */
typedef struct cx_mqtt_reason {
    uint8_t rc;
    cx_mqtt_props_t props;
} cx_mqtt_reason_t;

typedef struct cx_mqtt_packet {
    cx_mqtt_type type;
    uint8_t flags; /* low nibble of the first byte */
    union {
        cx_mqtt_connect_t connect;
        cx_mqtt_connack_t connack;
        cx_mqtt_publish_t publish;
        cx_mqtt_ack_t ack;
        cx_mqtt_subscribe_t subscribe;
        cx_mqtt_suback_t suback; /* also UNSUBACK */
        cx_mqtt_unsubscribe_t unsubscribe;
        cx_mqtt_reason_t reason; /* DISCONNECT, AUTH */
    } u;
} cx_mqtt_packet_t;

/* Why a decode failed: the reason code to send (v5 DISCONNECT or CONNACK) and a static,
 * human-readable message for the log ("SUBSCRIBE: topic filter has '#' not at the end"). */
typedef struct cx_mqtt_error {
    uint8_t rc;
    const char *msg;
} cx_mqtt_error_t;

/* Largest remaining length MQTT can express. */
#define CX_MQTT_MAX_REMAINING 268435455u

/* Reads the fixed header at buf[0..len).
 * Returns CX_OK and sets *hdr_len (2..5) and *rem_len; CX_EAGAIN when more bytes are needed;
 * CX_EPROTO (err filled) when the variable byte integer is malformed. */
int cx_mqtt_frame(const uint8_t *buf, size_t len, size_t *hdr_len, uint32_t *rem_len,
                  cx_mqtt_error_t *err);

/* Decodes one whole packet pkt[0..len) (fixed header included), sent by a client
 * (is_server = false: CONNECT, PUBLISH, acks, SUBSCRIBE, UNSUBSCRIBE, PINGREQ, DISCONNECT,
 * AUTH) or by a server (is_server = true: CONNACK, PUBLISH, acks, SUBACK, UNSUBACK,
 * PINGRESP, DISCONNECT, AUTH). `version` is the connection's protocol version; it is
 * ignored for CONNECT, which carries its own.
 * Returns CX_OK, CX_EPROTO (err filled; for an unknown CONNECT protocol level,
 * err->rc == CX_RC_UNSUPPORTED_PROTOCOL_VERSION and out->u.connect.protocol_level /
 * protocol_name are set so the caller can answer in the right version) or CX_ENOMEM
 * (arena exhausted). */
int cx_mqtt_decode(const uint8_t *pkt, size_t len, cx_mqtt_version version, bool is_server,
                   cx_arena_t *arena, cx_mqtt_packet_t *out, cx_mqtt_error_t *err);

/* Encoders. Each appends one whole packet to `out`. */
int cx_mqtt_encode_connect(cx_buf_t *out, const cx_mqtt_connect_t *c);
int cx_mqtt_encode_connack(cx_buf_t *out, cx_mqtt_version v, const cx_mqtt_connack_t *c);
/* *pid_offset (may be NULL) receives the offset of the packet identifier from the start of
 * the packet, so a cached encoding can be re-sent with another identifier. */
int cx_mqtt_encode_publish(cx_buf_t *out, cx_mqtt_version v, const cx_mqtt_publish_t *p,
                           size_t *pid_offset);
/* type is PUBACK, PUBREC, PUBREL or PUBCOMP. In v5 the reason code and properties are
 * omitted when rc is 0 and there are no properties (§3.4.2.1). */
int cx_mqtt_encode_ack(cx_buf_t *out, cx_mqtt_version v, cx_mqtt_type type,
                       const cx_mqtt_ack_t *a);
int cx_mqtt_encode_subscribe(cx_buf_t *out, cx_mqtt_version v, const cx_mqtt_subscribe_t *s);
/* type is SUBACK or UNSUBACK; an UNSUBACK in 3.x carries no reason codes. */
int cx_mqtt_encode_suback(cx_buf_t *out, cx_mqtt_version v, cx_mqtt_type type,
                          const cx_mqtt_suback_t *s);
int cx_mqtt_encode_unsubscribe(cx_buf_t *out, cx_mqtt_version v,
                               const cx_mqtt_unsubscribe_t *u);
/* type is PINGREQ or PINGRESP. */
int cx_mqtt_encode_ping(cx_buf_t *out, cx_mqtt_type type);
/* type is DISCONNECT or AUTH. A 3.x DISCONNECT is two bytes; a v5 one with rc 0 and no
 * properties is two bytes too. */
int cx_mqtt_encode_reason(cx_buf_t *out, cx_mqtt_version v, cx_mqtt_type type,
                          const cx_mqtt_reason_t *r);

/* Encoded size of the property block (length prefix included) for the properties in
 * p->present & mask. */
size_t cx_mqtt_props_size(const cx_mqtt_props_t *p, uint64_t mask);
/* Appends only the property bytes (no length prefix) for p->present & mask. */
int cx_mqtt_props_encode(cx_buf_t *out, const cx_mqtt_props_t *p, uint64_t mask);

/* Variable byte integer helpers. */
size_t cx_mqtt_varint_size(uint32_t v);
/* Writes v at dst (which has room for 4 bytes); returns the bytes written. */
size_t cx_mqtt_varint_write(uint8_t *dst, uint32_t v);

/* validate.c */
/* Well-formed UTF-8, no U+0000, no surrogates (MQTT §1.5.4). */
bool cx_mqtt_utf8_is_valid(cx_str_t s);
/* A topic name for PUBLISH: non-empty, valid UTF-8, no '+' or '#'. */
bool cx_mqtt_topic_name_is_valid(cx_str_t s);
/* A topic filter: non-empty, valid UTF-8, '+' and '#' occupy whole levels, '#' last.
 * Shared subscriptions are checked by cx_mqtt_shared_parse. */
bool cx_mqtt_topic_filter_is_valid(cx_str_t s);
/* If filter starts with "$share/", splits it into group and filter and returns 1;
 * returns 0 for an ordinary filter; returns -1 (CX_EPROTO) for a malformed shared
 * subscription (empty group, '+'/'#' in the group, missing or invalid filter). */
int cx_mqtt_shared_parse(cx_str_t filter, cx_str_t *group, cx_str_t *real_filter);

/* reason.c */
/* Maps a v5 CONNACK reason code to the nearest 3.x CONNACK return code. */
uint8_t cx_mqtt_rc_to_v3_connack(uint8_t rc);
/* Short name of a reason code ("Session taken over"), for logs. Never NULL. */
const char *cx_mqtt_rc_name(uint8_t rc);
const char *cx_mqtt_type_name(cx_mqtt_type t);

#endif
