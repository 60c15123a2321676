/* msg.c: message construction in one allocation. */
#include "msg.h"

#include <string.h>

#include "util/alloc.h"

static uint8_t *copy_slice(uint8_t *dst, cx_str_t src, cx_str_t *out, bool nul)
{
    if (src.len)
        memcpy(dst, src.p, src.len);
    out->p = dst;
    out->len = src.len;
    dst += src.len;
    if (nul)
        *dst++ = '\0';
    return dst;
}

cx_msg_t *cx_msg_new(cx_str_t topic, cx_str_t payload, const cx_mqtt_props_t *props,
                     uint8_t qos, bool retain, const void *origin, int64_t now_ms)
{
    size_t nup = props ? props->user_prop_count : 0;
    size_t size = sizeof(cx_msg_t) + nup * sizeof(cx_mqtt_user_prop_t) + topic.len + 1 +
                  payload.len;
    if (props) {
        if (cx_mqtt_props_has(props, CX_PROP_CONTENT_TYPE))
            size += props->content_type.len;
        if (cx_mqtt_props_has(props, CX_PROP_RESPONSE_TOPIC))
            size += props->response_topic.len;
        if (cx_mqtt_props_has(props, CX_PROP_CORRELATION_DATA))
            size += props->correlation_data.len;
        for (size_t i = 0; i < nup; i++)
            size += props->user_props[i].key.len + props->user_props[i].value.len;
    }
    cx_msg_t *m = cx_malloc(size);
    if (!m)
        return NULL;
    memset(m, 0, sizeof *m);
    atomic_init(&m->refs, 1);
    atomic_init(&m->store_id, 0);
    m->qos = qos;
    m->retain = retain;
    m->origin = origin;
    m->size = size;
    uint8_t *p = (uint8_t *)(m + 1);
    m->user_props = nup ? (cx_mqtt_user_prop_t *)p : NULL;
    m->user_prop_count = nup;
    p += nup * sizeof(cx_mqtt_user_prop_t);
    p = copy_slice(p, topic, &m->topic, true);
    p = copy_slice(p, payload, &m->payload, false);
    if (props) {
        if (cx_mqtt_props_has(props, CX_PROP_PAYLOAD_FORMAT)) {
            m->has_payload_format = true;
            m->payload_format = props->payload_format;
        }
        if (cx_mqtt_props_has(props, CX_PROP_MESSAGE_EXPIRY)) {
            m->has_expiry = true;
            m->expiry = props->message_expiry;
            m->expire_at_ms = now_ms + (int64_t)props->message_expiry * 1000;
        }
        if ((m->has_content_type = cx_mqtt_props_has(props, CX_PROP_CONTENT_TYPE)))
            p = copy_slice(p, props->content_type, &m->content_type, false);
        if ((m->has_response_topic = cx_mqtt_props_has(props, CX_PROP_RESPONSE_TOPIC)))
            p = copy_slice(p, props->response_topic, &m->response_topic, false);
        if ((m->has_correlation_data = cx_mqtt_props_has(props, CX_PROP_CORRELATION_DATA)))
            p = copy_slice(p, props->correlation_data, &m->correlation_data, false);
        for (size_t i = 0; i < nup; i++) {
            p = copy_slice(p, props->user_props[i].key, &m->user_props[i].key, false);
            p = copy_slice(p, props->user_props[i].value, &m->user_props[i].value, false);
        }
    }
    return m;
}

void cx_msg_unref(cx_msg_t *m)
{
    if (m && atomic_fetch_sub_explicit(&m->refs, 1, memory_order_acq_rel) == 1)
        cx_free(m);
}

uint32_t cx_msg_expiry_left(const cx_msg_t *m, int64_t now_ms)
{
    int64_t left = m->expire_at_ms - now_ms;
    if (left <= 0)
        return 0;
    return (uint32_t)((left + 999) / 1000);
}

void cx_msg_props(const cx_msg_t *m, cx_mqtt_props_t *pr)
{
    memset(pr, 0, sizeof *pr);
    if (m->has_payload_format) {
        pr->present |= CX_PROP_BIT(CX_PROP_PAYLOAD_FORMAT);
        pr->payload_format = m->payload_format;
    }
    if (m->has_content_type) {
        pr->present |= CX_PROP_BIT(CX_PROP_CONTENT_TYPE);
        pr->content_type = m->content_type;
    }
    if (m->has_response_topic) {
        pr->present |= CX_PROP_BIT(CX_PROP_RESPONSE_TOPIC);
        pr->response_topic = m->response_topic;
    }
    if (m->has_correlation_data) {
        pr->present |= CX_PROP_BIT(CX_PROP_CORRELATION_DATA);
        pr->correlation_data = m->correlation_data;
    }
    if (m->user_prop_count) {
        pr->present |= CX_PROP_BIT(CX_PROP_USER_PROPERTY);
        pr->user_props = m->user_props;
        pr->user_prop_count = m->user_prop_count;
    }
}
