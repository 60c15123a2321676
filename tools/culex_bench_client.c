/* culex_bench_client.c: the MQTT client on a benchmark connection — CONNECT, SUBSCRIBE,
 * PUBLISH at QoS 0/1/2 with its packet identifiers and window, both sides of the QoS 1 and 2
 * acknowledgements, PINGREQ, DISCONNECT — and the subscriber's checks of every message
 * (sequence number per publisher, latency). Transport and buffers are culex_bench_conn.c's;
 * everything here only appends to the connection's output.
 *
 * A protocol surprise (an ack for an unknown packet identifier, a packet out of place) is
 * counted and closes that connection; it never stops the run. */
#include <stdio.h>
#include <string.h>

#include "culex_bench.h"
#include "util/alloc.h"
#include "util/err.h"

/* A publisher stops adding messages to a turn's output once this much is queued: large
 * enough that one write() carries hundreds of small messages, small enough that a broker
 * that reads slowly pushes back within a turn instead of growing our buffer. */
#define PUB_HIWAT (64u * 1024u)

void cx_bench_client_connect(cx_bench_conn_t *c, uint64_t now)
{
    const cx_bench_config_t *cfg = c->thread->run->cfg;
    cx_mqtt_connect_t m;
    memset(&m, 0, sizeof m);
    m.protocol_name = CX_STR_LIT("MQTT");
    m.protocol_level = (uint8_t)cfg->version;
    m.clean_start = true;
    m.keepalive = (uint16_t)cfg->keepalive;
    m.client_id = cx_str_from_cstr(c->client_id);
    if (cfg->username) {
        m.has_username = true;
        m.username = cx_str_from_cstr(cfg->username);
    }
    if (cfg->password) {
        m.has_password = true;
        m.password = cx_str_from_cstr(cfg->password);
    }
    c->state = CX_BENCH_ST_CONNACK;
    c->deadline_ns = now + (uint64_t)(cfg->connect_timeout * 1e9);
    cx_bench_conn_queued(c, cx_mqtt_encode_connect(&c->out, &m));
}

static void send_subscribe(cx_bench_conn_t *c, uint64_t now)
{
    const cx_bench_config_t *cfg = c->thread->run->cfg;
    cx_mqtt_sub_entry_t e;
    memset(&e, 0, sizeof e);
    e.filter = cx_str_from_cstr(c->sub->topic);
    e.qos = (uint8_t)cfg->qos;
    cx_mqtt_subscribe_t s;
    memset(&s, 0, sizeof s);
    s.packet_id = 1;
    s.entries = &e;
    s.count = 1;
    c->state = CX_BENCH_ST_SUBACK;
    c->deadline_ns = now + (uint64_t)(cfg->connect_timeout * 1e9);
    cx_bench_conn_queued(c, cx_mqtt_encode_subscribe(&c->out, cfg->version, &s));
}

/* ---- incoming packets ----------------------------------------------------------------- */

static void send_ack(cx_bench_conn_t *c, cx_mqtt_type type, uint16_t pid)
{
    cx_mqtt_ack_t a;
    memset(&a, 0, sizeof a);
    a.packet_id = pid;
    cx_bench_conn_queued(c, cx_mqtt_encode_ack(&c->out, c->thread->run->cfg->version, type, &a));
}

/* Checks one received payload: header, sequence number, latency. */
static void on_message(cx_bench_conn_t *c, cx_str_t payload, uint64_t rx_ns)
{
    cx_bench_thread_t *t = c->thread;
    cx_bench_counters_t *k = &t->c;
    k->received++;
    if (!k->first_rx_ns)
        k->first_rx_ns = rx_ns;
    k->last_rx_ns = rx_ns;
    const uint8_t *p = payload.p;
    if (payload.len < CX_BENCH_HDR_LEN || cx_bench_get32(p) != CX_BENCH_MAGIC ||
        cx_bench_get32(p + 4) != t->run->cfg->run_id || !c->sub) {
        k->unexpected++;
        return;
    }
    uint32_t pub = cx_bench_get32(p + 8);
    uint64_t seq = cx_bench_get64(p + 12);
    uint64_t ts = cx_bench_get64(p + 20);
    cx_bench_sub_t *s = c->sub;
    if (pub < s->pub_base || pub - s->pub_base >= s->pub_count) {
        k->unexpected++;
        return;
    }
    cx_bench_seq_t *q = &s->seq[pub - s->pub_base];
    if (seq >= q->next) {
        uint64_t shift = seq - q->next + 1;
        q->window = shift >= 64 ? 1 : (q->window << shift) | 1;
        q->next = seq + 1;
        q->unique++;
        t->unique++;
    } else {
        uint64_t d = q->next - 1 - seq;
        if (d < 64 && (q->window >> d) & 1) {
            k->duplicated++;
            return; /* its latency would be that of the first copy's resend */
        }
        /* Late: its successors came first. Beyond the window a duplicate cannot be told
         * from a late arrival; it is counted as late. */
        if (d < 64)
            q->window |= 1ULL << d;
        k->out_of_order++;
        q->unique++;
        t->unique++;
    }
    if (rx_ns >= ts)
        cx_bench_hist_record(t->hist, rx_ns - ts);
}

static int pid_test(const uint64_t *bm, uint16_t pid)
{
    return (bm[pid >> 6] >> (pid & 63)) & 1;
}
static void pid_set(uint64_t *bm, uint16_t pid)
{
    bm[pid >> 6] |= 1ULL << (pid & 63);
}
static void pid_clear(uint64_t *bm, uint16_t pid)
{
    bm[pid >> 6] &= ~(1ULL << (pid & 63));
}

static void pub_done(cx_bench_conn_t *c, uint16_t pid, uint8_t rc)
{
    cx_bench_pub_t *p = c->pub;
    pid_clear(p->pid_used, pid);
    if (p->pid_rel)
        pid_clear(p->pid_rel, pid);
    p->inflight--;
    p->acked++;
    c->thread->c.acked++;
    if (rc >= 0x80)
        c->thread->c.refused++;
}

static void on_ack(cx_bench_conn_t *c, const cx_mqtt_packet_t *pk)
{
    cx_bench_pub_t *p = c->pub;
    uint16_t pid = pk->u.ack.packet_id;
    uint8_t rc = pk->u.ack.rc;
    switch (pk->type) {
    case CX_MQTT_PUBACK:
        if (!p || !pid_test(p->pid_used, pid) || p->pid_rel)
            break;
        pub_done(c, pid, rc);
        return;
    case CX_MQTT_PUBREC:
        if (!p || !p->pid_rel || !pid_test(p->pid_used, pid))
            break;
        if (rc >= 0x80) { /* the flow ends here (MQTT 5 §4.3.3) */
            pub_done(c, pid, rc);
            return;
        }
        if (!pid_test(p->pid_rel, pid))
            pid_set(p->pid_rel, pid);
        send_ack(c, CX_MQTT_PUBREL, pid);
        return;
    case CX_MQTT_PUBCOMP:
        if (!p || !p->pid_rel || !pid_test(p->pid_rel, pid))
            break;
        pub_done(c, pid, rc);
        return;
    case CX_MQTT_PUBREL:
        send_ack(c, CX_MQTT_PUBCOMP, pid);
        return;
    default:
        break;
    }
    cx_bench_conn_fail(c, CX_BENCH_ERR_PROTOCOL, "%s for unknown packet id %u",
                       cx_mqtt_type_name(pk->type), pid);
}

static void on_connack(cx_bench_conn_t *c, const cx_mqtt_connack_t *a, uint64_t rx_ns)
{
    cx_bench_thread_t *t = c->thread;
    const cx_bench_config_t *cfg = t->run->cfg;
    if (a->rc != 0) {
        cx_bench_conn_fail(c, CX_BENCH_ERR_CONNACK, "CONNACK refused: %s (0x%02x)",
                           cfg->version == CX_MQTT_V5 ? cx_mqtt_rc_name(a->rc) : "return code",
                           a->rc);
        return;
    }
    if (cfg->version == CX_MQTT_V5) {
        if (cx_mqtt_props_has(&a->props, CX_PROP_RECEIVE_MAX))
            c->server_recv_max = a->props.receive_max;
        if (cx_mqtt_props_has(&a->props, CX_PROP_SERVER_KEEPALIVE))
            c->keepalive = a->props.server_keepalive;
    }
    t->c.connected[c->role]++;
    t->c.conn_last_ns[c->role] = rx_ns;
    if (c->role == CX_BENCH_SUB) {
        send_subscribe(c, rx_ns);
        return;
    }
    if (c->pub) {
        unsigned w = cfg->inflight;
        if (w > c->server_recv_max)
            w = c->server_recv_max; /* never more than the broker lets us have */
        c->pub->window = w ? w : 1;
    }
    c->state = CX_BENCH_ST_READY;
    cx_bench_conn_resolve(c, true);
}

static void on_suback(cx_bench_conn_t *c, const cx_mqtt_suback_t *s, uint64_t rx_ns)
{
    if (s->count < 1 || s->rcs[0] >= 0x80) {
        cx_bench_conn_fail(c, CX_BENCH_ERR_SUBACK, "SUBACK refused: 0x%02x",
                           s->count ? s->rcs[0] : 0);
        return;
    }
    c->sub->granted = s->rcs[0];
    c->sub->ready = true;
    c->thread->c.conn_last_ns[c->role] = rx_ns;
    c->state = CX_BENCH_ST_READY;
    cx_bench_conn_resolve(c, true);
}

void cx_bench_client_on_packet(cx_bench_conn_t *c, const uint8_t *pkt, size_t len, uint64_t rx_ns)
{
    cx_bench_thread_t *t = c->thread;
    cx_mqtt_packet_t pk;
    cx_mqtt_error_t err = {0, NULL};
    cx_arena_reset(&t->arena);
    int rc = cx_mqtt_decode(pkt, len, t->run->cfg->version, true, &t->arena, &pk, &err);
    if (rc != CX_OK) {
        cx_bench_conn_fail(c, CX_BENCH_ERR_PROTOCOL, "undecodable packet: %s",
                           err.msg ? err.msg : cx_strerror(rc));
        return;
    }
    bool expected = true;
    switch (pk.type) {
    case CX_MQTT_PUBLISH:
        if (c->state != CX_BENCH_ST_READY && c->state != CX_BENCH_ST_CLOSING &&
            c->state != CX_BENCH_ST_SUBACK) {
            expected = false;
            break;
        }
        on_message(c, pk.u.publish.payload, rx_ns);
        if (pk.u.publish.qos == 1)
            send_ack(c, CX_MQTT_PUBACK, pk.u.publish.packet_id);
        else if (pk.u.publish.qos == 2)
            send_ack(c, CX_MQTT_PUBREC, pk.u.publish.packet_id);
        break;
    case CX_MQTT_PUBACK:
    case CX_MQTT_PUBREC:
    case CX_MQTT_PUBREL:
    case CX_MQTT_PUBCOMP:
        on_ack(c, &pk);
        break;
    case CX_MQTT_CONNACK:
        if (c->state != CX_BENCH_ST_CONNACK)
            expected = false;
        else
            on_connack(c, &pk.u.connack, rx_ns);
        break;
    case CX_MQTT_SUBACK:
        if (c->state != CX_BENCH_ST_SUBACK)
            expected = false;
        else
            on_suback(c, &pk.u.suback, rx_ns);
        break;
    case CX_MQTT_PINGRESP:
        break;
    case CX_MQTT_DISCONNECT:
        cx_bench_conn_fail(c, CX_BENCH_ERR_DISCONNECT, "DISCONNECT from the broker: %s",
                           cx_mqtt_rc_name(pk.u.reason.rc));
        break;
    default:
        expected = false;
        break;
    }
    if (!expected)
        cx_bench_conn_fail(c, CX_BENCH_ERR_PROTOCOL, "unexpected %s", cx_mqtt_type_name(pk.type));
}

bool cx_bench_client_can_publish(const cx_bench_conn_t *c)
{
    const cx_bench_pub_t *p = c->pub;
    return c->state == CX_BENCH_ST_READY && !c->blocked && p->sent < p->quota &&
           (p->window == 0 || p->inflight < p->window) && cx_buf_used(&c->out) < PUB_HIWAT;
}

bool cx_bench_client_publish(cx_bench_conn_t *c, uint64_t now)
{
    if (!cx_bench_client_can_publish(c))
        return false;
    cx_bench_pub_t *p = c->pub;
    cx_bench_thread_t *t = c->thread;
    size_t n = cx_buf_used(&p->tmpl);
    int rc = cx_buf_reserve(&c->out, n);
    if (rc != CX_OK) {
        cx_bench_conn_fail(c, CX_BENCH_ERR_PROTOCOL, "output buffer: %s", cx_strerror(rc));
        return false;
    }
    uint8_t *d = cx_buf_tail(&c->out);
    memcpy(d, cx_buf_head(&p->tmpl), n);
    if (p->pid_used) {
        uint16_t pid = p->next_pid;
        while (pid == 0 || pid_test(p->pid_used, pid))
            pid++; /* wraps to 0, which is skipped; the window keeps a free id in reach */
        p->next_pid = (uint16_t)(pid + 1);
        pid_set(p->pid_used, pid);
        p->inflight++;
        d[p->pid_off] = (uint8_t)(pid >> 8);
        d[p->pid_off + 1] = (uint8_t)pid;
    }
    cx_bench_put64(d + p->hdr_off + 12, p->seq);
    cx_bench_put64(d + p->hdr_off + 20, now);
    c->out.len += n;
    p->seq++;
    p->sent++;
    t->c.sent++;
    t->expected += p->receivers;
    if (p->sent == p->quota && !p->finished) {
        p->finished = true;
        t->pubs_finished++;
    }
    cx_bench_thread_mark_dirty(t, c);
    return true;
}

void cx_bench_client_ping(cx_bench_conn_t *c, uint64_t now)
{
    if (c->state != CX_BENCH_ST_READY || c->keepalive == 0)
        return;
    if (now - c->last_tx_ns < (uint64_t)c->keepalive * 500000000u)
        return;
    c->last_tx_ns = now; /* once per half keepalive, even if the write waits */
    cx_bench_conn_queued(c, cx_mqtt_encode_ping(&c->out, CX_MQTT_PINGREQ));
}

void cx_bench_client_disconnect(cx_bench_conn_t *c, uint64_t now)
{
    if (c->state == CX_BENCH_ST_DEAD || c->state == CX_BENCH_ST_CLOSING)
        return;
    if (c->state != CX_BENCH_ST_READY) {
        /* Still connecting when the run ends: not an error of the broker. */
        if (cx_bench_conn_is_connecting(c->state))
            cx_bench_conn_resolve(c, false);
        cx_bench_conn_close(c);
        return;
    }
    cx_mqtt_reason_t r;
    memset(&r, 0, sizeof r);
    c->state = CX_BENCH_ST_CLOSING;
    c->blocked = false;
    cx_bench_conn_queued(
        c, cx_mqtt_encode_reason(&c->out, c->thread->run->cfg->version, CX_MQTT_DISCONNECT, &r));
    (void)now;
}

int cx_bench_client_init_pub(cx_bench_conn_t *c, cx_bench_pub_t *p, const char *topic,
                             uint64_t quota)
{
    const cx_bench_config_t *cfg = c->thread->run->cfg;
    c->pub = p;
    p->id = c->index;
    p->quota = quota;
    p->next_pid = 1;
    p->window = cfg->qos ? cfg->inflight : 0;
    cx_buf_init(&p->tmpl, 0);
    if (cfg->qos > 0) {
        p->pid_used = cx_calloc(65536 / 64, sizeof(uint64_t));
        if (!p->pid_used)
            return CX_ENOMEM;
        if (cfg->qos == 2) {
            p->pid_rel = cx_calloc(65536 / 64, sizeof(uint64_t));
            if (!p->pid_rel)
                return CX_ENOMEM;
        }
    }
    /* The whole packet is encoded once; each message copies it and patches the packet
     * identifier, the sequence number and the timestamp (the rest of the header and the
     * padding never change). */
    uint8_t *payload = cx_calloc(1, cfg->payload);
    if (!payload)
        return CX_ENOMEM;
    cx_bench_put32(payload, CX_BENCH_MAGIC);
    cx_bench_put32(payload + 4, cfg->run_id);
    cx_bench_put32(payload + 8, p->id);
    for (size_t i = CX_BENCH_HDR_LEN; i < cfg->payload; i++)
        payload[i] = (uint8_t)('a' + i % 26);
    cx_mqtt_publish_t m;
    memset(&m, 0, sizeof m);
    m.qos = (uint8_t)cfg->qos;
    m.topic = cx_str_from_cstr(topic);
    m.packet_id = cfg->qos ? 1 : 0;
    m.payload = (cx_str_t){payload, cfg->payload};
    size_t pid_off = 0;
    int rc = cx_mqtt_encode_publish(&p->tmpl, cfg->version, &m, &pid_off);
    cx_free(payload);
    if (rc != CX_OK)
        return rc;
    p->pid_off = pid_off;
    p->hdr_off = cx_buf_used(&p->tmpl) - cfg->payload;
    return CX_OK;
}

int cx_bench_client_init_sub(cx_bench_conn_t *c, cx_bench_sub_t *s, const char *topic,
                             uint32_t pub_base, uint32_t pub_count)
{
    c->sub = s;
    s->pub_base = pub_base;
    s->pub_count = pub_count;
    s->topic = cx_strdup(topic);
    s->seq = cx_calloc(pub_count ? pub_count : 1, sizeof *s->seq);
    return s->topic && s->seq ? CX_OK : CX_ENOMEM;
}
