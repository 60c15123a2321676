/* persist_rec.c: encoding and validated decoding of persistence records. */
#include "persist_rec.h"

#include <string.h>

#include "broker/session.h"
#include "util/alloc.h"
#include "util/err.h"

#define FORMAT 1
#define MAX_PAYLOAD 268435455u /* MQTT's largest payload */

/* --- writer --- */

void cx_penc_init(cx_penc_t *e)
{
    e->p = e->local;
    e->len = 0;
    e->cap = sizeof e->local;
    e->oom = false;
}

void cx_penc_free(cx_penc_t *e)
{
    if (e->p != e->local)
        cx_free(e->p);
    cx_penc_init(e);
}

static bool reserve(cx_penc_t *e, size_t n)
{
    if (e->oom)
        return false;
    if (e->cap - e->len >= n)
        return true;
    size_t cap = e->cap * 2;
    while (cap - e->len < n)
        cap *= 2;
    uint8_t *np = e->p == e->local ? cx_malloc(cap) : cx_realloc(e->p, cap);
    if (!np) {
        e->oom = true;
        return false;
    }
    if (e->p == e->local)
        memcpy(np, e->local, e->len);
    e->p = np;
    e->cap = cap;
    return true;
}

static void put_bytes(cx_penc_t *e, const void *d, size_t n)
{
    if (n && reserve(e, n)) {
        memcpy(e->p + e->len, d, n);
        e->len += n;
    }
}

static void put_uint(cx_penc_t *e, uint64_t v, size_t n)
{
    uint8_t b[8];
    for (size_t i = 0; i < n; i++)
        b[i] = (uint8_t)(v >> (8 * i));
    put_bytes(e, b, n);
}

static void put_u8(cx_penc_t *e, uint8_t v) { put_uint(e, v, 1); }
static void put_u16(cx_penc_t *e, uint16_t v) { put_uint(e, v, 2); }
static void put_u32(cx_penc_t *e, uint32_t v) { put_uint(e, v, 4); }
static void put_u64(cx_penc_t *e, uint64_t v) { put_uint(e, v, 8); }

static void put_str(cx_penc_t *e, cx_str_t s)
{
    put_u32(e, (uint32_t)s.len);
    put_bytes(e, s.p, s.len);
}

/* --- reader --- */

typedef struct dec {
    const uint8_t *p;
    size_t len, off;
    bool bad;
} dec_t;

static uint64_t get_uint(dec_t *d, size_t n)
{
    if (d->bad || d->len - d->off < n) {
        d->bad = true;
        return 0;
    }
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++)
        v |= (uint64_t)d->p[d->off + i] << (8 * i);
    d->off += n;
    return v;
}

static uint8_t get_u8(dec_t *d) { return (uint8_t)get_uint(d, 1); }
static uint16_t get_u16(dec_t *d) { return (uint16_t)get_uint(d, 2); }
static uint32_t get_u32(dec_t *d) { return (uint32_t)get_uint(d, 4); }
static uint64_t get_u64(dec_t *d) { return get_uint(d, 8); }

static cx_str_t get_bytes(dec_t *d, size_t n)
{
    if (d->bad || d->len - d->off < n) {
        d->bad = true;
        return CX_STR_NULL;
    }
    cx_str_t s = {d->p + d->off, n};
    d->off += n;
    return s;
}

static cx_str_t get_str(dec_t *d, size_t max)
{
    uint32_t n = get_u32(d);
    if (n > max) {
        d->bad = true;
        return CX_STR_NULL;
    }
    return get_bytes(d, n);
}

static dec_t dec_of(cx_str_t s)
{
    return (dec_t){s.p, s.len, 0, false};
}

/* A whole value read, nothing left over, format known. */
static int dec_done(const dec_t *d)
{
    return d->bad || d->off != d->len ? CX_EFORMAT : CX_OK;
}

/* --- keys --- */

void cx_prec_key_gen(cx_penc_t *e, uint64_t gen)
{
    put_u64(e, gen);
}

void cx_prec_key_sub(cx_penc_t *e, uint64_t gen, cx_str_t group, cx_str_t filter)
{
    put_u64(e, gen);
    put_u16(e, (uint16_t)group.len);
    put_bytes(e, group.p, group.len);
    put_bytes(e, filter.p, filter.len);
}

void cx_prec_key_queue(cx_penc_t *e, uint64_t gen, uint64_t msg_id)
{
    put_u64(e, gen);
    put_u64(e, msg_id);
}

void cx_prec_key_qos2(cx_penc_t *e, uint64_t gen, uint16_t pid)
{
    put_u64(e, gen);
    put_u16(e, pid);
}

void cx_prec_key_msg(cx_penc_t *e, uint64_t msg_id)
{
    put_u64(e, msg_id);
}

int cx_prec_key_u64(cx_str_t key, uint64_t *out)
{
    dec_t d = dec_of(key);
    *out = get_u64(&d);
    return d.bad ? CX_EFORMAT : CX_OK;
}

int cx_prec_sub_key_decode(cx_str_t key, uint64_t *gen, cx_str_t *group, cx_str_t *filter)
{
    dec_t d = dec_of(key);
    *gen = get_u64(&d);
    uint16_t glen = get_u16(&d);
    *group = get_bytes(&d, glen);
    *filter = get_bytes(&d, d.bad ? 0 : d.len - d.off);
    if (d.bad || filter->len == 0 || filter->len > 65535)
        return CX_EFORMAT;
    return CX_OK;
}

int cx_prec_key_queue_decode(cx_str_t key, uint64_t *gen, uint64_t *msg_id)
{
    dec_t d = dec_of(key);
    *gen = get_u64(&d);
    *msg_id = get_u64(&d);
    return dec_done(&d);
}

int cx_prec_key_qos2_decode(cx_str_t key, uint64_t *gen, uint16_t *pid)
{
    dec_t d = dec_of(key);
    *gen = get_u64(&d);
    *pid = get_u16(&d);
    return dec_done(&d) == CX_OK && *pid ? CX_OK : CX_EFORMAT;
}

/* --- messages --- */

enum {
    MF_RETAIN = 1u << 2,
    MF_EXPIRY = 1u << 3,
    MF_PFORMAT = 1u << 4,
    MF_CTYPE = 1u << 5,
    MF_RTOPIC = 1u << 6,
    MF_CDATA = 1u << 7,
};

void cx_prec_msg(cx_penc_t *e, const cx_msg_t *m, int64_t now_mono, int64_t now_wall)
{
    uint8_t f = (uint8_t)(m->qos & 3u);
    f |= m->retain ? MF_RETAIN : 0;
    f |= m->has_expiry ? MF_EXPIRY : 0;
    f |= m->has_payload_format ? MF_PFORMAT : 0;
    f |= m->has_content_type ? MF_CTYPE : 0;
    f |= m->has_response_topic ? MF_RTOPIC : 0;
    f |= m->has_correlation_data ? MF_CDATA : 0;
    put_u8(e, FORMAT);
    put_u8(e, f);
    put_u8(e, m->payload_format);
    if (m->has_expiry)
        put_u64(e, (uint64_t)(now_wall + (m->expire_at_ms - now_mono)));
    put_str(e, m->topic);
    put_str(e, m->payload);
    if (m->has_content_type)
        put_str(e, m->content_type);
    if (m->has_response_topic)
        put_str(e, m->response_topic);
    if (m->has_correlation_data)
        put_str(e, m->correlation_data);
    put_u32(e, (uint32_t)m->user_prop_count);
    for (size_t i = 0; i < m->user_prop_count; i++) {
        put_str(e, m->user_props[i].key);
        put_str(e, m->user_props[i].value);
    }
}

int cx_prec_msg_decode(cx_str_t val, int64_t now_mono, int64_t now_wall, cx_msg_t **out)
{
    *out = NULL;
    dec_t d = dec_of(val);
    if (get_u8(&d) != FORMAT)
        return CX_EFORMAT;
    uint8_t f = get_u8(&d);
    uint8_t pformat = get_u8(&d);
    cx_mqtt_props_t props;
    memset(&props, 0, sizeof props);
    int64_t deadline = 0;
    if (f & MF_EXPIRY)
        deadline = (int64_t)get_u64(&d);
    cx_str_t topic = get_str(&d, 65535);
    cx_str_t payload = get_str(&d, MAX_PAYLOAD);
    if (f & MF_CTYPE) {
        props.present |= CX_PROP_BIT(CX_PROP_CONTENT_TYPE);
        props.content_type = get_str(&d, 65535);
    }
    if (f & MF_RTOPIC) {
        props.present |= CX_PROP_BIT(CX_PROP_RESPONSE_TOPIC);
        props.response_topic = get_str(&d, 65535);
    }
    if (f & MF_CDATA) {
        props.present |= CX_PROP_BIT(CX_PROP_CORRELATION_DATA);
        props.correlation_data = get_str(&d, 65535);
    }
    uint32_t nup = get_u32(&d);
    /* Each property takes at least 8 bytes: a count beyond that is a lie. */
    if (d.bad || (f & 3u) > 2 || topic.len == 0 || nup > (d.len - d.off) / 8)
        return CX_EFORMAT;
    cx_mqtt_user_prop_t *up = NULL;
    if (nup) {
        up = cx_malloc(nup * sizeof *up);
        if (!up)
            return CX_ENOMEM;
        for (uint32_t i = 0; i < nup; i++) {
            up[i].key = get_str(&d, 65535);
            up[i].value = get_str(&d, 65535);
        }
        props.present |= CX_PROP_BIT(CX_PROP_USER_PROPERTY);
        props.user_props = up;
        props.user_prop_count = nup;
    }
    int rc = dec_done(&d);
    if (rc == CX_OK && !cx_mqtt_topic_name_is_valid(topic))
        rc = CX_EFORMAT;
    if (rc == CX_OK && (f & MF_EXPIRY)) {
        int64_t left = deadline - now_wall;
        if (left <= 0)
            rc = CX_ENOTFOUND;
        props.present |= CX_PROP_BIT(CX_PROP_MESSAGE_EXPIRY);
        props.message_expiry = left >= (int64_t)UINT32_MAX * 1000 ? UINT32_MAX - 1
                                                                   : (uint32_t)((left + 999) / 1000);
    }
    if (f & MF_PFORMAT) {
        props.present |= CX_PROP_BIT(CX_PROP_PAYLOAD_FORMAT);
        props.payload_format = pformat;
    }
    if (rc == CX_OK) {
        *out = cx_msg_new(topic, payload, &props, (uint8_t)(f & 3u), (f & MF_RETAIN) != 0, NULL,
                          now_mono);
        if (!*out)
            rc = CX_ENOMEM;
    }
    cx_free(up);
    return rc;
}

/* --- sessions, subscriptions, queue entries --- */

void cx_prec_session(cx_penc_t *e, const cx_prec_session_t *s)
{
    put_u8(e, FORMAT);
    put_u8(e, s->protocol);
    put_u32(e, s->expiry);
    put_u64(e, s->gen);
    put_u64(e, (uint64_t)s->disconnected_wall);
}

int cx_prec_session_decode(cx_str_t val, cx_prec_session_t *out)
{
    dec_t d = dec_of(val);
    if (get_u8(&d) != FORMAT)
        return CX_EFORMAT;
    out->protocol = get_u8(&d);
    out->expiry = get_u32(&d);
    out->gen = get_u64(&d);
    out->disconnected_wall = (int64_t)get_u64(&d);
    if (out->gen == 0 || out->protocol < CX_MQTT_V31 || out->protocol > CX_MQTT_V5)
        return CX_EFORMAT;
    return dec_done(&d);
}

enum { SF_NO_LOCAL = 1, SF_RAP = 2 };

void cx_prec_sub(cx_penc_t *e, const cx_sub_opts_t *o)
{
    put_u8(e, FORMAT);
    put_u8(e, o->qos);
    put_u8(e, (uint8_t)((o->no_local ? SF_NO_LOCAL : 0) | (o->retain_as_published ? SF_RAP : 0)));
    put_u8(e, o->retain_handling);
    put_u32(e, o->sub_id);
}

int cx_prec_sub_decode(cx_str_t val, cx_sub_opts_t *out)
{
    dec_t d = dec_of(val);
    if (get_u8(&d) != FORMAT)
        return CX_EFORMAT;
    memset(out, 0, sizeof *out);
    out->qos = get_u8(&d);
    uint8_t f = get_u8(&d);
    out->no_local = f & SF_NO_LOCAL;
    out->retain_as_published = f & SF_RAP;
    out->retain_handling = get_u8(&d);
    out->sub_id = get_u32(&d);
    if (out->qos > 2 || out->retain_handling > 2 || out->sub_id > 268435455u)
        return CX_EFORMAT;
    return dec_done(&d);
}

void cx_prec_queue(cx_penc_t *e, const cx_prec_queue_t *q)
{
    put_u8(e, FORMAT);
    put_u8(e, q->qos);
    put_u8(e, q->retain ? 1 : 0);
    put_u8(e, q->state);
    put_u16(e, q->packet_id);
    put_u64(e, q->order);
    put_u32(e, q->share_hash);
    put_u16(e, q->nsub);
    for (size_t i = 0; i < q->nsub; i++)
        put_u32(e, q->sub_ids[i]);
}

int cx_prec_queue_decode(cx_str_t val, cx_prec_queue_t *out)
{
    dec_t d = dec_of(val);
    if (get_u8(&d) != FORMAT)
        return CX_EFORMAT;
    memset(out, 0, sizeof *out);
    out->qos = get_u8(&d);
    out->retain = get_u8(&d) & 1;
    out->state = get_u8(&d);
    out->packet_id = get_u16(&d);
    out->order = get_u64(&d);
    out->share_hash = get_u32(&d);
    out->nsub = get_u16(&d);
    out->raw_ids = get_bytes(&d, (size_t)out->nsub * 4);
    if (out->qos < 1 || out->qos > 2 || out->state > CX_QE_WAIT_COMP ||
        (out->state != CX_QE_QUEUED && out->packet_id == 0) ||
        (out->state == CX_QE_WAIT_COMP && out->qos != 2))
        return CX_EFORMAT;
    return dec_done(&d);
}

uint32_t cx_prec_queue_sub_id(const cx_prec_queue_t *q, size_t i)
{
    const uint8_t *b = q->raw_ids.p + i * 4;
    return (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
}
