/* msg.h: application messages: immutable, refcounted, shared by every subscriber.
 *
 * A message is one allocation holding its topic, payload and the PUBLISH properties that
 * pass through the broker unchanged. Any worker may hold a reference; the last unref frees
 * it. Fields are never written after cx_msg_new() returns, except store_id. */
#ifndef CX_BROKER_MSG_H
#define CX_BROKER_MSG_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "mqtt/codec.h"

typedef struct cx_msg {
    atomic_uint refs;
    uint8_t qos;
    bool retain;
    bool has_expiry;
    uint8_t payload_format;
    bool has_payload_format;
    uint32_t expiry;          /* message expiry interval as received, seconds */
    int64_t expire_at_ms;     /* monotonic deadline when has_expiry */
    const void *origin;       /* publishing session, compared for No Local; never dereferenced */
    cx_str_t topic;           /* NUL-terminated inside the allocation */
    cx_str_t payload;
    cx_str_t content_type;
    cx_str_t response_topic;
    cx_str_t correlation_data;
    bool has_content_type, has_response_topic, has_correlation_data;
    cx_mqtt_user_prop_t *user_props;
    size_t user_prop_count;
    size_t size;              /* bytes held, for memory limits and $SYS */
    /* The message's id in the store once recorded (persist.c), 0 before. The one field
     * written after cx_msg_new(): set once, by compare-and-swap. */
    atomic_uint_fast64_t store_id;
} cx_msg_t;

/* Copies topic, payload and the pass-through properties of props (may be NULL) into a new
 * message with one reference. now_ms is the monotonic receive time (for expiry). NULL when
 * out of memory. */
cx_msg_t *cx_msg_new(cx_str_t topic, cx_str_t payload, const cx_mqtt_props_t *props,
                     uint8_t qos, bool retain, const void *origin, int64_t now_ms);

static inline cx_msg_t *cx_msg_ref(cx_msg_t *m)
{
    atomic_fetch_add_explicit(&m->refs, 1, memory_order_relaxed);
    return m;
}
void cx_msg_unref(cx_msg_t *m);

static inline bool cx_msg_is_expired(const cx_msg_t *m, int64_t now_ms)
{
    return m->has_expiry && now_ms >= m->expire_at_ms;
}
/* Remaining expiry interval in whole seconds (rounded up, at least 1 while not expired). */
uint32_t cx_msg_expiry_left(const cx_msg_t *m, int64_t now_ms);

/* Fills props with the pass-through properties of m (slices borrow from m). */
void cx_msg_props(const cx_msg_t *m, cx_mqtt_props_t *props);

#endif
