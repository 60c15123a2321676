/* test_codec.c: MQTT codec (decode.c, encode.c, props.c).
 *
 * Layout: fixed header and varints; hand-written packets as real clients send them;
 * round trips for every packet type in every version; one test per malformed or forbidden
 * case (checking the reason code); encoder specifics; truncation of every valid packet at
 * every length; and a fixed-seed mutation loop meant to run under ASan/UBSan.
 *
 * Packets under test are copied into exactly-sized heap blocks so that any read past the
 * end is caught by AddressSanitizer. */
#include "cx_test.h"
#include "mqtt/codec.h"
#include "mqtt/codec_internal.h"
#include "util/err.h"

/* ---- helpers -------------------------------------------------------------------------- */

static cx_arena_t arena;

/* Heap copies stay alive for a while (decoded slices point into them) and are reachable
 * from here, so LeakSanitizer stays quiet. */
#define RING 256
static uint8_t *ring[RING];
static size_t ring_pos;

static uint8_t *keep(const uint8_t *p, size_t n)
{
    uint8_t *c = malloc(n ? n : 1);
    CHECK(c != NULL);
    if (n)
        memcpy(c, p, n);
    free(ring[ring_pos]);
    ring[ring_pos] = c;
    ring_pos = (ring_pos + 1) % RING;
    return c;
}

static size_t put_varint(uint8_t *d, size_t v)
{
    return cx_mqtt_varint_write(d, (uint32_t)v);
}

/* Builds b0 + remaining length + body in an exactly-sized heap block. */
static uint8_t *framed(uint8_t b0, const uint8_t *body, size_t n, size_t *len)
{
    uint8_t tmp[5];
    tmp[0] = b0;
    size_t h = 1 + put_varint(tmp + 1, n);
    uint8_t *c = malloc(h + n);
    CHECK(c != NULL);
    memcpy(c, tmp, h);
    if (n)
        memcpy(c + h, body, n);
    free(ring[ring_pos]);
    ring[ring_pos] = c;
    ring_pos = (ring_pos + 1) % RING;
    *len = h + n;
    return c;
}

static int decode_raw(const uint8_t *p, size_t n, int ver, bool server, cx_mqtt_packet_t *pkt,
                      cx_mqtt_error_t *err)
{
    const uint8_t *c = keep(p, n);
    return cx_mqtt_decode(c, n, (cx_mqtt_version)ver, server, &arena, pkt, err);
}

static void expect_err(int line, int ver, bool server, int want, uint8_t b0,
                       const uint8_t *body, size_t n)
{
    size_t len;
    uint8_t *p = framed(b0, body, n, &len);
    cx_mqtt_packet_t pkt;
    cx_mqtt_error_t err = {0, NULL};
    int rc = cx_mqtt_decode(p, len, (cx_mqtt_version)ver, server, &arena, &pkt, &err);
    if (rc != CX_EPROTO || err.rc != want)
        CX_FAIL_("line %d: want EPROTO rc 0x%02x, got %d rc 0x%02x (%s)", line, want, rc,
                 err.rc, err.msg ? err.msg : "no message");
    if (!err.msg || !*err.msg)
        CX_FAIL_("line %d: no error message", line);
}

static void expect_ok(int line, int ver, bool server, cx_mqtt_packet_t *pkt, uint8_t b0,
                      const uint8_t *body, size_t n)
{
    size_t len;
    uint8_t *p = framed(b0, body, n, &len);
    cx_mqtt_error_t err = {0, NULL};
    int rc = cx_mqtt_decode(p, len, (cx_mqtt_version)ver, server, &arena, pkt, &err);
    if (rc != CX_OK)
        CX_FAIL_("line %d: want OK, got %d rc 0x%02x (%s)", line, rc, err.rc,
                 err.msg ? err.msg : "");
}

#define BODY(...) (const uint8_t[]){__VA_ARGS__}, sizeof((const uint8_t[]){__VA_ARGS__})
#define ERR(ver, srv, want, b0, ...) expect_err(__LINE__, ver, srv, want, b0, BODY(__VA_ARGS__))
#define ERR0(ver, srv, want, b0) expect_err(__LINE__, ver, srv, want, b0, NULL, 0)
#define OKP(ver, srv, pkt, b0, ...) expect_ok(__LINE__, ver, srv, pkt, b0, BODY(__VA_ARGS__))
#define OK0(ver, srv, pkt, b0) expect_ok(__LINE__, ver, srv, pkt, b0, NULL, 0)

#define V31 CX_MQTT_V31
#define V311 CX_MQTT_V311
#define V5 CX_MQTT_V5
#define CLI false
#define SRV true

#define MAL CX_RC_MALFORMED_PACKET
#define PROTO CX_RC_PROTOCOL_ERROR

/* Common v3.1.1 / v5 CONNECT prefixes. */
#define MQTT4 0x00, 0x04, 'M', 'Q', 'T', 'T', 0x04
#define MQTT5 0x00, 0x04, 'M', 'Q', 'T', 'T', 0x05
#define ISDP3 0x00, 0x06, 'M', 'Q', 'I', 's', 'd', 'p', 0x03

static void setup(void)
{
    cx_arena_init(&arena, 0);
}

/* Encodes any decoded packet back (the inverse of cx_mqtt_decode). */
static int encode_any(cx_buf_t *b, int ver, const cx_mqtt_packet_t *p)
{
    cx_mqtt_version v = (cx_mqtt_version)ver;
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

/* The version a decoded packet speaks (CONNECT carries its own). */
static int pkt_version(int ver, const cx_mqtt_packet_t *p)
{
    return p->type == CX_MQTT_CONNECT ? p->u.connect.protocol_level : ver;
}

/* ---- corpus of valid packets --------------------------------------------------------- */

typedef struct sample {
    uint8_t *p;
    size_t n;
    int ver;
    bool server;
} sample_t;

#define CORPUS_MAX 256
static sample_t corpus[CORPUS_MAX];
static size_t corpus_n;

static void add_sample(cx_buf_t *b, int ver, bool server)
{
    CHECK(corpus_n < CORPUS_MAX);
    sample_t *s = &corpus[corpus_n++];
    s->n = cx_buf_used(b);
    s->p = malloc(s->n);
    CHECK(s->p != NULL);
    memcpy(s->p, cx_buf_head(b), s->n);
    s->ver = ver;
    s->server = server;
    cx_buf_reset(b);
}

#define ADD(call, ver, server)                                                            \
    do {                                                                                  \
        CHECK_INT_EQ((call), CX_OK);                                                      \
        add_sample(&b, ver, server);                                                      \
    } while (0)

static void build_corpus(void)
{
    if (corpus_n)
        return;
    cx_buf_t b;
    cx_buf_init(&b, 0);
    cx_mqtt_user_prop_t ups[2] = {{CX_STR_LIT("k1"), CX_STR_LIT("v1")},
                                  {CX_STR_LIT("key two"), CX_STR_LIT("")}};
    uint32_t sids[3] = {1, 300, CX_MQTT_MAX_REMAINING};

    for (int ver = V31; ver <= V5; ver++) {
        bool v5 = ver == V5;
        cx_mqtt_version v = (cx_mqtt_version)ver;

        /* CONNECT: minimal, empty client id, and everything set. */
        cx_mqtt_connect_t c = {0};
        c.protocol_level = (uint8_t)ver;
        c.clean_start = true;
        c.keepalive = 60;
        c.client_id = CX_STR_LIT("c");
        ADD(cx_mqtt_encode_connect(&b, &c), ver, CLI);
        c.client_id = CX_STR_LIT("");
        c.clean_start = false;
        ADD(cx_mqtt_encode_connect(&b, &c), ver, CLI);
        c.client_id = CX_STR_LIT("client-\xc3\xa9");
        c.will_flag = true;
        c.will_qos = 2;
        c.will_retain = true;
        c.will_topic = CX_STR_LIT("will/topic");
        c.will_payload = CX_STR_LIT("bye\0bin");
        c.has_username = c.has_password = true;
        c.username = CX_STR_LIT("user");
        c.password = CX_STR_LIT("p\0w");
        c.keepalive = 65535;
        c.bridge = ver != V5;
        if (v5) {
            cx_mqtt_props_t *p = &c.props;
            p->present = CX_PROP_BIT(CX_PROP_SESSION_EXPIRY) | CX_PROP_BIT(CX_PROP_RECEIVE_MAX) |
                         CX_PROP_BIT(CX_PROP_MAX_PACKET_SIZE) |
                         CX_PROP_BIT(CX_PROP_TOPIC_ALIAS_MAX) |
                         CX_PROP_BIT(CX_PROP_REQUEST_RESPONSE_INFO) |
                         CX_PROP_BIT(CX_PROP_REQUEST_PROBLEM_INFO) |
                         CX_PROP_BIT(CX_PROP_USER_PROPERTY) | CX_PROP_BIT(CX_PROP_AUTH_METHOD) |
                         CX_PROP_BIT(CX_PROP_AUTH_DATA);
            p->session_expiry = 0xFFFFFFFF;
            p->receive_max = 100;
            p->max_packet_size = 1 << 20;
            p->topic_alias_max = 10;
            p->request_response_info = 1;
            p->request_problem_info = 0;
            p->user_props = ups;
            p->user_prop_count = 2;
            p->auth_method = CX_STR_LIT("SCRAM-SHA-1");
            p->auth_data = CX_STR_LIT("\x01\x02");
            cx_mqtt_props_t *w = &c.will_props;
            w->present = CX_PROP_BIT(CX_PROP_WILL_DELAY) | CX_PROP_BIT(CX_PROP_PAYLOAD_FORMAT) |
                         CX_PROP_BIT(CX_PROP_MESSAGE_EXPIRY) |
                         CX_PROP_BIT(CX_PROP_CONTENT_TYPE) |
                         CX_PROP_BIT(CX_PROP_RESPONSE_TOPIC) |
                         CX_PROP_BIT(CX_PROP_CORRELATION_DATA) |
                         CX_PROP_BIT(CX_PROP_USER_PROPERTY);
            w->will_delay = 30;
            w->payload_format = 1;
            w->message_expiry = 3600;
            w->content_type = CX_STR_LIT("text/plain");
            w->response_topic = CX_STR_LIT("resp/x");
            w->correlation_data = CX_STR_LIT("\0\1");
            w->user_props = ups;
            w->user_prop_count = 1;
        }
        ADD(cx_mqtt_encode_connect(&b, &c), ver, CLI);
        if (v5) { /* v5 allows a password without a user name */
            c.has_username = false;
            ADD(cx_mqtt_encode_connect(&b, &c), ver, CLI);
        }

        /* CONNACK */
        cx_mqtt_connack_t ca = {0};
        ADD(cx_mqtt_encode_connack(&b, v, &ca), ver, SRV);
        ca.session_present = true;
        ADD(cx_mqtt_encode_connack(&b, v, &ca), ver, SRV);
        ca.session_present = false;
        ca.rc = v5 ? CX_RC_NOT_AUTHORIZED : CX_V3_CONNACK_BAD_CREDENTIALS;
        if (v5) {
            cx_mqtt_props_t *p = &ca.props;
            p->present = CX_PROPS_CONNACK;
            p->session_expiry = 7;
            p->receive_max = 65535;
            p->max_qos = 1;
            p->retain_available = 0;
            p->max_packet_size = 268435460;
            p->assigned_client_id = CX_STR_LIT("auto-1");
            p->topic_alias_max = 5;
            p->reason_string = CX_STR_LIT("nope");
            p->user_props = ups;
            p->user_prop_count = 2;
            p->wildcard_sub_available = 1;
            p->sub_id_available = 0;
            p->shared_sub_available = 1;
            p->server_keepalive = 20;
            p->response_info = CX_STR_LIT("ri");
            p->server_reference = CX_STR_LIT("other:1883");
            p->auth_method = CX_STR_LIT("m");
            p->auth_data = CX_STR_LIT("d");
        }
        ADD(cx_mqtt_encode_connack(&b, v, &ca), ver, SRV);

        /* PUBLISH, both directions */
        for (int srv = 0; srv < 2; srv++) {
            cx_mqtt_publish_t pb = {0};
            pb.topic = CX_STR_LIT("a/b");
            pb.payload = CX_STR_LIT("hello");
            ADD(cx_mqtt_encode_publish(&b, v, &pb, NULL), ver, srv);
            pb.qos = 1;
            pb.dup = true;
            pb.retain = true;
            pb.packet_id = 1;
            pb.payload = CX_STR_LIT("");
            ADD(cx_mqtt_encode_publish(&b, v, &pb, NULL), ver, srv);
            pb.qos = 2;
            pb.dup = false;
            pb.packet_id = 65535;
            pb.topic = CX_STR_LIT("caf\xc3\xa9/\xf0\x9f\x98\x80");
            pb.payload = CX_STR_LIT("\0\1\2\3 payload");
            if (v5) {
                cx_mqtt_props_t *p = &pb.props;
                p->present = CX_PROPS_PUBLISH & ~CX_PROP_BIT(CX_PROP_SUBSCRIPTION_ID);
                p->payload_format = 0;
                p->message_expiry = 10;
                p->content_type = CX_STR_LIT("application/json");
                p->response_topic = CX_STR_LIT("reply/here");
                p->correlation_data = CX_STR_LIT("\xff\x00");
                p->topic_alias = 3;
                p->user_props = ups;
                p->user_prop_count = 2;
                if (srv) {
                    p->present |= CX_PROP_BIT(CX_PROP_SUBSCRIPTION_ID);
                    p->sub_ids = sids;
                    p->sub_id_count = 3;
                }
            }
            ADD(cx_mqtt_encode_publish(&b, v, &pb, NULL), ver, srv);
            if (v5) { /* empty topic with a topic alias */
                pb.topic = CX_STR_LIT("");
                ADD(cx_mqtt_encode_publish(&b, v, &pb, NULL), ver, srv);
            }

            /* acks */
            for (int t = CX_MQTT_PUBACK; t <= CX_MQTT_PUBCOMP; t++) {
                cx_mqtt_ack_t a = {0};
                a.packet_id = 42;
                ADD(cx_mqtt_encode_ack(&b, v, (cx_mqtt_type)t, &a), ver, srv);
                if (v5) {
                    a.rc = (t == CX_MQTT_PUBACK || t == CX_MQTT_PUBREC) ? 0x10 : 0x92;
                    ADD(cx_mqtt_encode_ack(&b, v, (cx_mqtt_type)t, &a), ver, srv);
                    a.props.present = CX_PROP_BIT(CX_PROP_REASON_STRING) |
                                      CX_PROP_BIT(CX_PROP_USER_PROPERTY);
                    a.props.reason_string = CX_STR_LIT("why");
                    a.props.user_props = ups;
                    a.props.user_prop_count = 1;
                    ADD(cx_mqtt_encode_ack(&b, v, (cx_mqtt_type)t, &a), ver, srv);
                    a.rc = 0;
                    ADD(cx_mqtt_encode_ack(&b, v, (cx_mqtt_type)t, &a), ver, srv);
                }
            }
        }

        /* SUBSCRIBE */
        cx_mqtt_sub_entry_t ents[4] = {
            {CX_STR_LIT("a/+/c"), 0, false, false, 0},
            {CX_STR_LIT("#"), 1, v5, v5, v5 ? 2 : 0},
            {CX_STR_LIT("$share/grp/x/#"), 2, false, v5, v5 ? 1 : 0},
            {CX_STR_LIT("\xc3\xa9/+"), 1, false, false, 0},
        };
        cx_mqtt_subscribe_t sb = {0};
        sb.packet_id = 7;
        sb.entries = ents;
        sb.count = 1;
        ADD(cx_mqtt_encode_subscribe(&b, v, &sb), ver, CLI);
        sb.count = 4;
        if (v5) {
            sb.props.present = CX_PROP_BIT(CX_PROP_SUBSCRIPTION_ID) |
                               CX_PROP_BIT(CX_PROP_USER_PROPERTY);
            sb.props.sub_ids = sids + 1;
            sb.props.sub_id_count = 1;
            sb.props.user_props = ups;
            sb.props.user_prop_count = 2;
        }
        ADD(cx_mqtt_encode_subscribe(&b, v, &sb), ver, CLI);

        /* SUBACK / UNSUBACK */
        static const uint8_t rcs5[] = {0x00, 0x01, 0x02, 0x80, 0x8F, 0x9E, 0xA2};
        static const uint8_t rcs3[] = {0x00, 0x01, 0x02, 0x80};
        static const uint8_t urcs[] = {0x00, 0x11, 0x87};
        cx_mqtt_suback_t sa = {0};
        sa.packet_id = 7;
        sa.rcs = v5 ? rcs5 : rcs3;
        sa.count = v5 ? sizeof rcs5 : sizeof rcs3;
        if (v5) {
            sa.props.present = CX_PROP_BIT(CX_PROP_REASON_STRING);
            sa.props.reason_string = CX_STR_LIT("partly");
        }
        ADD(cx_mqtt_encode_suback(&b, v, CX_MQTT_SUBACK, &sa), ver, SRV);
        sa.rcs = urcs;
        sa.count = sizeof urcs;
        ADD(cx_mqtt_encode_suback(&b, v, CX_MQTT_UNSUBACK, &sa), ver, SRV);

        /* UNSUBSCRIBE */
        cx_str_t fs[3] = {CX_STR_LIT("a/b"), CX_STR_LIT("+/#"), CX_STR_LIT("$share/g/t")};
        cx_mqtt_unsubscribe_t us = {0};
        us.packet_id = 9;
        us.filters = fs;
        us.count = 3;
        if (v5) {
            us.props.present = CX_PROP_BIT(CX_PROP_USER_PROPERTY);
            us.props.user_props = ups;
            us.props.user_prop_count = 1;
        }
        ADD(cx_mqtt_encode_unsubscribe(&b, v, &us), ver, CLI);

        ADD(cx_mqtt_encode_ping(&b, CX_MQTT_PINGREQ), ver, CLI);
        ADD(cx_mqtt_encode_ping(&b, CX_MQTT_PINGRESP), ver, SRV);

        /* DISCONNECT */
        cx_mqtt_reason_t r = {0};
        ADD(cx_mqtt_encode_reason(&b, v, CX_MQTT_DISCONNECT, &r), ver, CLI);
        if (v5) {
            r.rc = CX_RC_DISCONNECT_WITH_WILL;
            ADD(cx_mqtt_encode_reason(&b, v, CX_MQTT_DISCONNECT, &r), ver, CLI);
            r.props.present = CX_PROP_BIT(CX_PROP_SESSION_EXPIRY) |
                              CX_PROP_BIT(CX_PROP_REASON_STRING);
            r.props.session_expiry = 0;
            r.props.reason_string = CX_STR_LIT("bye");
            ADD(cx_mqtt_encode_reason(&b, v, CX_MQTT_DISCONNECT, &r), ver, CLI);
            cx_mqtt_reason_t rs = {0};
            rs.rc = CX_RC_SERVER_MOVED;
            rs.props.present = CX_PROP_BIT(CX_PROP_SERVER_REFERENCE) |
                               CX_PROP_BIT(CX_PROP_USER_PROPERTY);
            rs.props.server_reference = CX_STR_LIT("elsewhere");
            rs.props.user_props = ups;
            rs.props.user_prop_count = 2;
            ADD(cx_mqtt_encode_reason(&b, v, CX_MQTT_DISCONNECT, &rs), ver, SRV);
            rs.rc = CX_RC_SESSION_TAKEN_OVER;
            rs.props.present = 0;
            ADD(cx_mqtt_encode_reason(&b, v, CX_MQTT_DISCONNECT, &rs), ver, SRV);

            /* AUTH */
            cx_mqtt_reason_t au = {0};
            ADD(cx_mqtt_encode_reason(&b, v, CX_MQTT_AUTH, &au), ver, SRV);
            au.rc = CX_RC_CONTINUE_AUTH;
            au.props.present = CX_PROP_BIT(CX_PROP_AUTH_METHOD) | CX_PROP_BIT(CX_PROP_AUTH_DATA);
            au.props.auth_method = CX_STR_LIT("SCRAM-SHA-1");
            au.props.auth_data = CX_STR_LIT("n,,n=user,r=abc");
            ADD(cx_mqtt_encode_reason(&b, v, CX_MQTT_AUTH, &au), ver, CLI);
            ADD(cx_mqtt_encode_reason(&b, v, CX_MQTT_AUTH, &au), ver, SRV);
            au.rc = CX_RC_REAUTHENTICATE;
            ADD(cx_mqtt_encode_reason(&b, v, CX_MQTT_AUTH, &au), ver, CLI);
        }
    }
    cx_buf_free(&b);
}

/* ---- fixed header and variable byte integers ------------------------------------------ */

static void test_varint_boundaries(void)
{
    static const struct {
        uint32_t v;
        size_t n;
        uint8_t b[4];
    } t[] = {
        {0, 1, {0x00}},
        {127, 1, {0x7F}},
        {128, 2, {0x80, 0x01}},
        {16383, 2, {0xFF, 0x7F}},
        {16384, 3, {0x80, 0x80, 0x01}},
        {2097151, 3, {0xFF, 0xFF, 0x7F}},
        {2097152, 4, {0x80, 0x80, 0x80, 0x01}},
        {268435455, 4, {0xFF, 0xFF, 0xFF, 0x7F}},
    };
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
        uint8_t d[4] = {0};
        CHECK_INT_EQ(cx_mqtt_varint_size(t[i].v), t[i].n);
        CHECK_INT_EQ(cx_mqtt_varint_write(d, t[i].v), t[i].n);
        CHECK(memcmp(d, t[i].b, t[i].n) == 0);
        uint8_t f[5] = {0x30};
        memcpy(f + 1, t[i].b, t[i].n);
        size_t hl = 0;
        uint32_t rl = 0;
        CHECK_INT_EQ(cx_mqtt_frame(f, 1 + t[i].n, &hl, &rl, NULL), CX_OK);
        CHECK_INT_EQ(hl, 1 + t[i].n);
        CHECK_INT_EQ(rl, t[i].v);
    }
}

static void test_frame_needs_more(void)
{
    size_t hl;
    uint32_t rl;
    cx_mqtt_error_t err;
    static const uint8_t b[] = {0x30, 0x80, 0x80, 0x80, 0x01};
    CHECK_INT_EQ(cx_mqtt_frame(b, 0, &hl, &rl, &err), CX_EAGAIN);
    CHECK_INT_EQ(cx_mqtt_frame(b, 1, &hl, &rl, &err), CX_EAGAIN);
    CHECK_INT_EQ(cx_mqtt_frame(b, 2, &hl, &rl, &err), CX_EAGAIN);
    CHECK_INT_EQ(cx_mqtt_frame(b, 3, &hl, &rl, &err), CX_EAGAIN);
    CHECK_INT_EQ(cx_mqtt_frame(b, 4, &hl, &rl, &err), CX_EAGAIN);
    CHECK_INT_EQ(cx_mqtt_frame(b, 5, &hl, &rl, &err), CX_OK);
    CHECK_INT_EQ(hl, 5);
    CHECK_INT_EQ(rl, 2097152);
}

static void test_frame_fifth_byte_malformed(void)
{
    size_t hl;
    uint32_t rl;
    cx_mqtt_error_t err = {0, NULL};
    static const uint8_t b[] = {0x30, 0xFF, 0xFF, 0xFF, 0xFF, 0x01};
    CHECK_INT_EQ(cx_mqtt_frame(b, 5, &hl, &rl, &err), CX_EPROTO);
    CHECK_INT_EQ(err.rc, MAL);
    CHECK(err.msg != NULL);
    CHECK_INT_EQ(cx_mqtt_frame(b, 6, &hl, &rl, NULL), CX_EPROTO);
    static const uint8_t z[] = {0x30, 0x80, 0x80, 0x80, 0x80, 0x00};
    CHECK_INT_EQ(cx_mqtt_frame(z, sizeof z, &hl, &rl, &err), CX_EPROTO);
    cx_mqtt_packet_t pkt;
    setup();
    CHECK_INT_EQ(decode_raw(z, sizeof z, V311, CLI, &pkt, &err), CX_EPROTO);
    CHECK_INT_EQ(err.rc, MAL);
}

/* [MQTT-1.5.5-1] binds the sender; we accept non-minimal encodings (see decode.c). */
static void test_frame_non_minimal_accepted(void)
{
    setup();
    size_t hl;
    uint32_t rl;
    static const uint8_t ping[] = {0xC0, 0x80, 0x00};
    CHECK_INT_EQ(cx_mqtt_frame(ping, sizeof ping, &hl, &rl, NULL), CX_OK);
    CHECK_INT_EQ(hl, 3);
    CHECK_INT_EQ(rl, 0);
    cx_mqtt_packet_t pkt;
    cx_mqtt_error_t err;
    CHECK_INT_EQ(decode_raw(ping, sizeof ping, V311, CLI, &pkt, &err), CX_OK);
    CHECK_INT_EQ(pkt.type, CX_MQTT_PINGREQ);
    static const uint8_t pub[] = {0x30, 0x85, 0x80, 0x00, 0x00, 0x01, 't', 'h', 'i'};
    CHECK_INT_EQ(decode_raw(pub, sizeof pub, V311, CLI, &pkt, &err), CX_OK);
    CHECK_SLICE_EQ(pkt.u.publish.topic, "t");
    CHECK_SLICE_EQ(pkt.u.publish.payload, "hi");
    /* v5 property length encoded as 0x80 0x00 */
    static const uint8_t pub5[] = {0x30, 0x07, 0x00, 0x01, 't', 0x80, 0x00, 'h', 'i'};
    CHECK_INT_EQ(decode_raw(pub5, sizeof pub5, V5, CLI, &pkt, &err), CX_OK);
    CHECK_SLICE_EQ(pkt.u.publish.payload, "hi");
}

static void test_remaining_length_mismatch(void)
{
    setup();
    cx_mqtt_packet_t pkt;
    cx_mqtt_error_t err;
    static const uint8_t longer[] = {0xC0, 0x00, 0x00};
    CHECK_INT_EQ(decode_raw(longer, sizeof longer, V311, CLI, &pkt, &err), CX_EPROTO);
    CHECK_INT_EQ(err.rc, MAL);
    static const uint8_t shorter[] = {0x30, 0x05, 0x00, 0x01, 't'};
    CHECK_INT_EQ(decode_raw(shorter, sizeof shorter, V311, CLI, &pkt, &err), CX_EPROTO);
    CHECK_INT_EQ(err.rc, MAL);
    CHECK_INT_EQ(decode_raw(shorter, 1, V311, CLI, &pkt, &err), CX_EPROTO);
    CHECK_INT_EQ(decode_raw(shorter, 0, V311, CLI, &pkt, &err), CX_EPROTO);
    /* err may be NULL */
    CHECK_INT_EQ(decode_raw(shorter, 0, V311, CLI, &pkt, NULL), CX_EPROTO);
}

/* ---- packets as real clients send them ------------------------------------------------ */

static void test_known_mosquitto_pub_311(void)
{
    setup();
    cx_mqtt_packet_t pkt;
    cx_mqtt_error_t err;
    /* mosquitto_pub -i mosq-abcdef -t test -m hello (3.1.1, clean session, keepalive 60) */
    static const uint8_t conn[] = {0x10, 0x17, 0x00, 0x04, 'M',  'Q',  'T',  'T', 0x04,
                                   0x02, 0x00, 0x3c, 0x00, 0x0b, 'm',  'o',  's', 'q',
                                   '-',  'a',  'b',  'c',  'd',  'e',  'f'};
    CHECK_INT_EQ(decode_raw(conn, sizeof conn, V5 /* ignored */, CLI, &pkt, &err), CX_OK);
    CHECK_INT_EQ(pkt.type, CX_MQTT_CONNECT);
    cx_mqtt_connect_t *c = &pkt.u.connect;
    CHECK_SLICE_EQ(c->protocol_name, "MQTT");
    CHECK_INT_EQ(c->protocol_level, 4);
    CHECK(c->clean_start);
    CHECK(!c->will_flag && !c->has_username && !c->has_password && !c->bridge);
    CHECK_INT_EQ(c->keepalive, 60);
    CHECK_SLICE_EQ(c->client_id, "mosq-abcdef");
    CHECK_INT_EQ(c->props.present, 0);

    static const uint8_t pub[] = {0x30, 0x0b, 0x00, 0x04, 't', 'e', 's',
                                  't',  'h',  'e',  'l',  'l', 'o'};
    CHECK_INT_EQ(decode_raw(pub, sizeof pub, V311, CLI, &pkt, &err), CX_OK);
    CHECK_INT_EQ(pkt.type, CX_MQTT_PUBLISH);
    CHECK_INT_EQ(pkt.u.publish.qos, 0);
    CHECK(!pkt.u.publish.retain && !pkt.u.publish.dup);
    CHECK_SLICE_EQ(pkt.u.publish.topic, "test");
    CHECK_SLICE_EQ(pkt.u.publish.payload, "hello");
    CHECK_INT_EQ(pkt.u.publish.packet_id, 0);

    static const uint8_t disc[] = {0xe0, 0x00};
    CHECK_INT_EQ(decode_raw(disc, sizeof disc, V311, CLI, &pkt, &err), CX_OK);
    CHECK_INT_EQ(pkt.type, CX_MQTT_DISCONNECT);

    /* and the broker's answers, encoded by us */
    cx_buf_t b;
    cx_buf_init(&b, 0);
    cx_mqtt_connack_t ca = {0};
    CHECK_INT_EQ(cx_mqtt_encode_connack(&b, V311, &ca), CX_OK);
    CHECK_INT_EQ(cx_buf_used(&b), 4);
    CHECK(memcmp(cx_buf_head(&b), "\x20\x02\x00\x00", 4) == 0);
    cx_buf_free(&b);
}

static void test_known_mosquitto_pub_v5(void)
{
    setup();
    cx_mqtt_packet_t pkt;
    cx_mqtt_error_t err;
    static const uint8_t conn[] = {0x10, 0x18, 0x00, 0x04, 'M', 'Q', 'T', 'T', 0x05,
                                   0x02, 0x00, 0x3c, 0x00, 0x00, 0x0b, 'm', 'o', 's',
                                   'q',  '-',  'a',  'b',  'c',  'd',  'e', 'f'};
    CHECK_INT_EQ(decode_raw(conn, sizeof conn, V311 /* ignored */, CLI, &pkt, &err), CX_OK);
    CHECK_INT_EQ(pkt.u.connect.protocol_level, 5);
    CHECK_SLICE_EQ(pkt.u.connect.client_id, "mosq-abcdef");
    CHECK_INT_EQ(pkt.u.connect.props.present, 0);

    /* mosquitto_pub -V 5 -q 1 -t a/b -m hi -D publish user-property k v */
    static const uint8_t pub[] = {0x32, 0x11, 0x00, 0x03, 'a',  '/',  'b',  0x00, 0x01, 0x07,
                                  0x26, 0x00, 0x01, 'k',  0x00, 0x01, 'v',  'h',  'i'};
    CHECK_INT_EQ(decode_raw(pub, sizeof pub, V5, CLI, &pkt, &err), CX_OK);
    cx_mqtt_publish_t *p = &pkt.u.publish;
    CHECK_INT_EQ(p->qos, 1);
    CHECK_INT_EQ(p->packet_id, 1);
    CHECK_SLICE_EQ(p->topic, "a/b");
    CHECK_SLICE_EQ(p->payload, "hi");
    CHECK_INT_EQ(p->props.present, CX_PROP_BIT(CX_PROP_USER_PROPERTY));
    CHECK_INT_EQ(p->props.user_prop_count, 1);
    CHECK_SLICE_EQ(p->props.user_props[0].key, "k");
    CHECK_SLICE_EQ(p->props.user_props[0].value, "v");

    /* PUBACK short form from the broker */
    static const uint8_t puback[] = {0x40, 0x02, 0x00, 0x01};
    CHECK_INT_EQ(decode_raw(puback, sizeof puback, V5, SRV, &pkt, &err), CX_OK);
    CHECK_INT_EQ(pkt.u.ack.packet_id, 1);
    CHECK_INT_EQ(pkt.u.ack.rc, 0);

    /* CONNACK with topic alias maximum 10 and receive maximum 20 */
    static const uint8_t connack[] = {0x20, 0x09, 0x00, 0x00, 0x06, 0x22,
                                      0x00, 0x0a, 0x21, 0x00, 0x14};
    CHECK_INT_EQ(decode_raw(connack, sizeof connack, V5, SRV, &pkt, &err), CX_OK);
    CHECK_INT_EQ(pkt.u.connack.rc, 0);
    CHECK(!pkt.u.connack.session_present);
    CHECK(cx_mqtt_props_has(&pkt.u.connack.props, CX_PROP_TOPIC_ALIAS_MAX));
    CHECK_INT_EQ(pkt.u.connack.props.topic_alias_max, 10);
    CHECK_INT_EQ(pkt.u.connack.props.receive_max, 20);
}

static void test_known_v31_connect(void)
{
    setup();
    cx_mqtt_packet_t pkt;
    cx_mqtt_error_t err;
    static const uint8_t conn[] = {0x10, 0x11, 0x00, 0x06, 'M',  'Q',  'I', 's', 'd', 'p',
                                   0x03, 0x02, 0x00, 0x3c, 0x00, 0x03, 'a', 'b', 'c'};
    CHECK_INT_EQ(decode_raw(conn, sizeof conn, V311, CLI, &pkt, &err), CX_OK);
    CHECK_SLICE_EQ(pkt.u.connect.protocol_name, "MQIsdp");
    CHECK_INT_EQ(pkt.u.connect.protocol_level, 3);
    CHECK_SLICE_EQ(pkt.u.connect.client_id, "abc");
    /* 3.1 CONNACK: first byte unused */
    static const uint8_t connack[] = {0x20, 0x02, 0x00, 0x02};
    CHECK_INT_EQ(decode_raw(connack, sizeof connack, V31, SRV, &pkt, &err), CX_OK);
    CHECK_INT_EQ(pkt.u.connack.rc, 2);
}

static void test_known_subscribe(void)
{
    setup();
    cx_mqtt_packet_t pkt;
    cx_mqtt_error_t err;
    /* mosquitto_sub -t 'a/#' (3.1.1) */
    static const uint8_t sub[] = {0x82, 0x08, 0x00, 0x01, 0x00, 0x03, 'a', '/', '#', 0x00};
    CHECK_INT_EQ(decode_raw(sub, sizeof sub, V311, CLI, &pkt, &err), CX_OK);
    CHECK_INT_EQ(pkt.u.subscribe.packet_id, 1);
    CHECK_INT_EQ(pkt.u.subscribe.count, 1);
    CHECK_SLICE_EQ(pkt.u.subscribe.entries[0].filter, "a/#");
    CHECK_INT_EQ(pkt.u.subscribe.entries[0].qos, 0);
    static const uint8_t suback[] = {0x90, 0x03, 0x00, 0x01, 0x00};
    CHECK_INT_EQ(decode_raw(suback, sizeof suback, V311, SRV, &pkt, &err), CX_OK);
    CHECK_INT_EQ(pkt.u.suback.count, 1);
    CHECK_INT_EQ(pkt.u.suback.rcs[0], 0);

    /* v5: qos 1, no local, retain as published, retain handling 1 */
    static const uint8_t sub5[] = {0x82, 0x09, 0x00, 0x01, 0x00, 0x00,
                                   0x03, 'a',  '/',  '#',  0x1d};
    CHECK_INT_EQ(decode_raw(sub5, sizeof sub5, V5, CLI, &pkt, &err), CX_OK);
    const cx_mqtt_sub_entry_t *e = &pkt.u.subscribe.entries[0];
    CHECK_INT_EQ(e->qos, 1);
    CHECK(e->no_local);
    CHECK(e->retain_as_published);
    CHECK_INT_EQ(e->retain_handling, 1);
}

/* ---- round trips ------------------------------------------------------------------------ */

static cx_mqtt_packet_t *roundtrip(cx_buf_t *b, int ver, bool server)
{
    static cx_mqtt_packet_t pkt;
    cx_mqtt_error_t err = {0, NULL};
    int rc = decode_raw(cx_buf_head(b), cx_buf_used(b), ver, server, &pkt, &err);
    if (rc != CX_OK)
        CX_FAIL_("roundtrip decode failed: %d %s", rc, err.msg ? err.msg : "");
    cx_buf_reset(b);
    return &pkt;
}

static void test_roundtrip_connect(void)
{
    setup();
    cx_buf_t b;
    cx_buf_init(&b, 0);
    cx_mqtt_user_prop_t ups[2] = {{CX_STR_LIT("a"), CX_STR_LIT("1")},
                                  {CX_STR_LIT("a"), CX_STR_LIT("2")}};
    for (int ver = V31; ver <= V5; ver++) {
        cx_mqtt_connect_t c = {0};
        c.protocol_level = (uint8_t)ver;
        c.clean_start = true;
        c.will_flag = true;
        c.will_qos = 1;
        c.will_retain = true;
        c.has_username = c.has_password = true;
        c.keepalive = 1234;
        c.client_id = CX_STR_LIT("cid");
        c.will_topic = CX_STR_LIT("w/t");
        c.will_payload = CX_STR_LIT("wp");
        c.username = CX_STR_LIT("u");
        c.password = CX_STR_LIT("pw");
        c.props.present = CX_PROP_BIT(CX_PROP_SESSION_EXPIRY) |
                          CX_PROP_BIT(CX_PROP_USER_PROPERTY) |
                          CX_PROP_BIT(CX_PROP_MESSAGE_EXPIRY); /* not for CONNECT: masked */
        c.props.session_expiry = 99;
        c.props.user_props = ups;
        c.props.user_prop_count = 2;
        c.will_props.present = CX_PROP_BIT(CX_PROP_WILL_DELAY);
        c.will_props.will_delay = 5;
        CHECK_INT_EQ(cx_mqtt_encode_connect(&b, &c), CX_OK);
        cx_mqtt_connect_t *d = &roundtrip(&b, V311, CLI)->u.connect;
        CHECK_SLICE_EQ(d->protocol_name, ver == V31 ? "MQIsdp" : "MQTT");
        CHECK_INT_EQ(d->protocol_level, ver);
        CHECK(d->clean_start && d->will_flag && d->will_retain);
        CHECK(d->has_username && d->has_password && !d->bridge);
        CHECK_INT_EQ(d->will_qos, 1);
        CHECK_INT_EQ(d->keepalive, 1234);
        CHECK_SLICE_EQ(d->client_id, "cid");
        CHECK_SLICE_EQ(d->will_topic, "w/t");
        CHECK_SLICE_EQ(d->will_payload, "wp");
        CHECK_SLICE_EQ(d->username, "u");
        CHECK_SLICE_EQ(d->password, "pw");
        if (ver == V5) {
            CHECK_INT_EQ(d->props.present, CX_PROP_BIT(CX_PROP_SESSION_EXPIRY) |
                                               CX_PROP_BIT(CX_PROP_USER_PROPERTY));
            CHECK_INT_EQ(d->props.session_expiry, 99);
            CHECK_INT_EQ(d->props.user_prop_count, 2);
            CHECK_SLICE_EQ(d->props.user_props[0].key, "a");
            CHECK_SLICE_EQ(d->props.user_props[0].value, "1");
            CHECK_SLICE_EQ(d->props.user_props[1].value, "2");
            CHECK_INT_EQ(d->will_props.present, CX_PROP_BIT(CX_PROP_WILL_DELAY));
            CHECK_INT_EQ(d->will_props.will_delay, 5);
        } else {
            CHECK_INT_EQ(d->props.present, 0);
            CHECK_INT_EQ(d->will_props.present, 0);
        }
        /* no will, no credentials */
        cx_mqtt_connect_t m = {0};
        m.protocol_level = (uint8_t)ver;
        CHECK_INT_EQ(cx_mqtt_encode_connect(&b, &m), CX_OK);
        d = &roundtrip(&b, V311, CLI)->u.connect;
        CHECK(!d->will_flag && !d->has_username && !d->has_password && !d->clean_start);
        CHECK_INT_EQ(d->client_id.len, 0);
        /* bridge bit */
        m.bridge = true;
        CHECK_INT_EQ(cx_mqtt_encode_connect(&b, &m), CX_OK);
        CHECK_INT_EQ(cx_buf_head(&b)[ver == V31 ? 10 : 8], 0x80 | ver);
        d = &roundtrip(&b, V311, CLI)->u.connect;
        CHECK(d->bridge);
        CHECK_INT_EQ(d->protocol_level, ver);
    }
    cx_buf_free(&b);
}

static void test_roundtrip_connack(void)
{
    setup();
    cx_buf_t b;
    cx_buf_init(&b, 0);
    for (int ver = V31; ver <= V5; ver++) {
        cx_mqtt_connack_t c = {0};
        c.session_present = true;
        c.props.present = CX_PROP_BIT(CX_PROP_ASSIGNED_CLIENT_ID) |
                          CX_PROP_BIT(CX_PROP_MAX_QOS) | CX_PROP_BIT(CX_PROP_SERVER_KEEPALIVE);
        c.props.assigned_client_id = CX_STR_LIT("auto");
        c.props.max_qos = 1;
        c.props.server_keepalive = 30;
        CHECK_INT_EQ(cx_mqtt_encode_connack(&b, (cx_mqtt_version)ver, &c), CX_OK);
        cx_mqtt_connack_t *d = &roundtrip(&b, ver, SRV)->u.connack;
        CHECK_INT_EQ(d->session_present, ver != V31);
        CHECK_INT_EQ(d->rc, 0);
        if (ver == V5) {
            CHECK_SLICE_EQ(d->props.assigned_client_id, "auto");
            CHECK_INT_EQ(d->props.max_qos, 1);
            CHECK_INT_EQ(d->props.server_keepalive, 30);
        }
        c.session_present = false;
        c.rc = CX_RC_BAD_USERNAME_OR_PASSWORD; /* mapped to 4 in 3.x */
        CHECK_INT_EQ(cx_mqtt_encode_connack(&b, (cx_mqtt_version)ver, &c), CX_OK);
        d = &roundtrip(&b, ver, SRV)->u.connack;
        CHECK_INT_EQ(d->rc, ver == V5 ? 0x86 : 4);
    }
    cx_buf_free(&b);
}

static void test_roundtrip_publish(void)
{
    setup();
    cx_buf_t b;
    cx_buf_init(&b, 0);
    uint32_t sids[2] = {5, 268435455};
    for (int ver = V31; ver <= V5; ver++) {
        for (int qos = 0; qos <= 2; qos++) {
            cx_mqtt_publish_t p = {0};
            p.qos = (uint8_t)qos;
            p.retain = qos == 1;
            p.dup = qos == 2;
            p.packet_id = qos ? (uint16_t)(100 + qos) : 0;
            p.topic = CX_STR_LIT("t/1");
            p.payload = CX_STR_LIT("data");
            p.props.present = CX_PROP_BIT(CX_PROP_MESSAGE_EXPIRY) |
                              CX_PROP_BIT(CX_PROP_SUBSCRIPTION_ID) |
                              CX_PROP_BIT(CX_PROP_SESSION_EXPIRY); /* masked out */
            p.props.message_expiry = 77;
            p.props.sub_ids = sids;
            p.props.sub_id_count = 2;
            size_t off = 999;
            CHECK_INT_EQ(cx_mqtt_encode_publish(&b, (cx_mqtt_version)ver, &p, &off), CX_OK);
            CHECK_INT_EQ(off, qos ? 2 + 2 + 3 : 0);
            cx_mqtt_publish_t *d = &roundtrip(&b, ver, SRV)->u.publish;
            CHECK_INT_EQ(d->qos, qos);
            CHECK_INT_EQ(d->retain, qos == 1);
            CHECK_INT_EQ(d->dup, qos == 2);
            CHECK_INT_EQ(d->packet_id, p.packet_id);
            CHECK_SLICE_EQ(d->topic, "t/1");
            CHECK_SLICE_EQ(d->payload, "data");
            if (ver == V5) {
                CHECK_INT_EQ(d->props.present, CX_PROP_BIT(CX_PROP_MESSAGE_EXPIRY) |
                                                   CX_PROP_BIT(CX_PROP_SUBSCRIPTION_ID));
                CHECK_INT_EQ(d->props.message_expiry, 77);
                CHECK_INT_EQ(d->props.sub_id_count, 2);
                CHECK_INT_EQ(d->props.sub_ids[0], 5);
                CHECK_INT_EQ(d->props.sub_ids[1], 268435455);
            } else {
                CHECK_INT_EQ(d->props.present, 0);
            }
        }
    }
    cx_buf_free(&b);
}

static void test_roundtrip_acks(void)
{
    setup();
    cx_buf_t b;
    cx_buf_init(&b, 0);
    for (int ver = V31; ver <= V5; ver++)
        for (int t = CX_MQTT_PUBACK; t <= CX_MQTT_PUBCOMP; t++)
            for (int srv = 0; srv < 2; srv++) {
                cx_mqtt_ack_t a = {0};
                a.packet_id = 513;
                a.rc = ver == V5 ? (t <= CX_MQTT_PUBREC ? 0x91 : 0x92) : 0;
                a.props.present = CX_PROP_BIT(CX_PROP_REASON_STRING);
                a.props.reason_string = CX_STR_LIT("r");
                CHECK_INT_EQ(cx_mqtt_encode_ack(&b, (cx_mqtt_version)ver, (cx_mqtt_type)t, &a),
                             CX_OK);
                CHECK_INT_EQ(cx_buf_head(&b)[0], t << 4 | (t == CX_MQTT_PUBREL ? 2 : 0));
                cx_mqtt_packet_t *p = roundtrip(&b, ver, srv);
                CHECK_INT_EQ(p->type, t);
                CHECK_INT_EQ(p->u.ack.packet_id, 513);
                CHECK_INT_EQ(p->u.ack.rc, a.rc);
                if (ver == V5)
                    CHECK_SLICE_EQ(p->u.ack.props.reason_string, "r");
            }
    cx_buf_free(&b);
}

static void test_roundtrip_subscribe(void)
{
    setup();
    cx_buf_t b;
    cx_buf_init(&b, 0);
    for (int ver = V31; ver <= V5; ver++) {
        bool v5 = ver == V5;
        cx_mqtt_sub_entry_t e[3] = {
            {CX_STR_LIT("a/b"), 2, v5, false, 0},
            {CX_STR_LIT("+/x/#"), 1, false, v5, v5 ? 2 : 0},
            {CX_STR_LIT("$share/g/s"), 0, false, false, v5 ? 1 : 0},
        };
        uint32_t sid = 12345;
        cx_mqtt_subscribe_t s = {0};
        s.packet_id = 3;
        s.entries = e;
        s.count = 3;
        s.props.present = CX_PROP_BIT(CX_PROP_SUBSCRIPTION_ID);
        s.props.sub_ids = &sid;
        s.props.sub_id_count = 1;
        CHECK_INT_EQ(cx_mqtt_encode_subscribe(&b, (cx_mqtt_version)ver, &s), CX_OK);
        cx_mqtt_subscribe_t *d = &roundtrip(&b, ver, CLI)->u.subscribe;
        CHECK_INT_EQ(d->packet_id, 3);
        CHECK_INT_EQ(d->count, 3);
        for (int i = 0; i < 3; i++) {
            CHECK(cx_str_eq(d->entries[i].filter, e[i].filter));
            CHECK_INT_EQ(d->entries[i].qos, e[i].qos);
            CHECK_INT_EQ(d->entries[i].no_local, e[i].no_local);
            CHECK_INT_EQ(d->entries[i].retain_as_published, e[i].retain_as_published);
            CHECK_INT_EQ(d->entries[i].retain_handling, e[i].retain_handling);
        }
        if (v5) {
            CHECK_INT_EQ(d->props.sub_id_count, 1);
            CHECK_INT_EQ(d->props.sub_ids[0], 12345);
        }
    }
    cx_buf_free(&b);
}

static void test_roundtrip_suback_unsuback(void)
{
    setup();
    cx_buf_t b;
    cx_buf_init(&b, 0);
    static const uint8_t rcs[] = {0x00, 0x02, 0x87};
    static const uint8_t urcs[] = {0x00, 0x11};
    for (int ver = V31; ver <= V5; ver++) {
        cx_mqtt_suback_t s = {0};
        s.packet_id = 11;
        s.rcs = rcs;
        s.count = 3;
        CHECK_INT_EQ(cx_mqtt_encode_suback(&b, (cx_mqtt_version)ver, CX_MQTT_SUBACK, &s),
                     CX_OK);
        cx_mqtt_suback_t *d = &roundtrip(&b, ver, SRV)->u.suback;
        CHECK_INT_EQ(d->packet_id, 11);
        CHECK_INT_EQ(d->count, 3);
        CHECK_INT_EQ(d->rcs[0], 0);
        CHECK_INT_EQ(d->rcs[1], 2);
        CHECK_INT_EQ(d->rcs[2], ver == V5 ? 0x87 : 0x80);
        s.rcs = urcs;
        s.count = 2;
        CHECK_INT_EQ(cx_mqtt_encode_suback(&b, (cx_mqtt_version)ver, CX_MQTT_UNSUBACK, &s),
                     CX_OK);
        CHECK_INT_EQ(cx_buf_used(&b), ver == V5 ? 2 + 2 + 1 + 2 : 4);
        d = &roundtrip(&b, ver, SRV)->u.suback;
        CHECK_INT_EQ(d->packet_id, 11);
        CHECK_INT_EQ(d->count, ver == V5 ? 2 : 0);
        if (ver == V5)
            CHECK_INT_EQ(d->rcs[1], 0x11);
    }
    cx_buf_free(&b);
}

static void test_roundtrip_unsubscribe(void)
{
    setup();
    cx_buf_t b;
    cx_buf_init(&b, 0);
    cx_str_t fs[2] = {CX_STR_LIT("a/#"), CX_STR_LIT("b")};
    for (int ver = V31; ver <= V5; ver++) {
        cx_mqtt_unsubscribe_t u = {0};
        u.packet_id = 65535;
        u.filters = fs;
        u.count = 2;
        CHECK_INT_EQ(cx_mqtt_encode_unsubscribe(&b, (cx_mqtt_version)ver, &u), CX_OK);
        CHECK_INT_EQ(cx_buf_head(&b)[0], 0xA2);
        cx_mqtt_unsubscribe_t *d = &roundtrip(&b, ver, CLI)->u.unsubscribe;
        CHECK_INT_EQ(d->packet_id, 65535);
        CHECK_INT_EQ(d->count, 2);
        CHECK_SLICE_EQ(d->filters[0], "a/#");
        CHECK_SLICE_EQ(d->filters[1], "b");
    }
    cx_buf_free(&b);
}

static void test_roundtrip_ping(void)
{
    setup();
    cx_buf_t b;
    cx_buf_init(&b, 0);
    for (int ver = V31; ver <= V5; ver++) {
        CHECK_INT_EQ(cx_mqtt_encode_ping(&b, CX_MQTT_PINGREQ), CX_OK);
        CHECK(memcmp(cx_buf_head(&b), "\xc0\x00", 2) == 0);
        CHECK_INT_EQ(roundtrip(&b, ver, CLI)->type, CX_MQTT_PINGREQ);
        CHECK_INT_EQ(cx_mqtt_encode_ping(&b, CX_MQTT_PINGRESP), CX_OK);
        CHECK(memcmp(cx_buf_head(&b), "\xd0\x00", 2) == 0);
        CHECK_INT_EQ(roundtrip(&b, ver, SRV)->type, CX_MQTT_PINGRESP);
    }
    CHECK_INT_EQ(cx_mqtt_encode_ping(&b, CX_MQTT_PUBACK), CX_EINVAL);
    cx_buf_free(&b);
}

static void test_roundtrip_disconnect_auth(void)
{
    setup();
    cx_buf_t b;
    cx_buf_init(&b, 0);
    cx_mqtt_reason_t r = {0};
    for (int ver = V31; ver <= V311; ver++) {
        CHECK_INT_EQ(cx_mqtt_encode_reason(&b, (cx_mqtt_version)ver, CX_MQTT_DISCONNECT, &r),
                     CX_OK);
        CHECK_INT_EQ(cx_buf_used(&b), 2);
        CHECK_INT_EQ(roundtrip(&b, ver, CLI)->type, CX_MQTT_DISCONNECT);
        CHECK_INT_EQ(cx_mqtt_encode_reason(&b, (cx_mqtt_version)ver, CX_MQTT_AUTH, &r),
                     CX_EINVAL);
    }
    r.rc = CX_RC_SERVER_SHUTTING_DOWN;
    r.props.present = CX_PROP_BIT(CX_PROP_REASON_STRING);
    r.props.reason_string = CX_STR_LIT("maintenance");
    CHECK_INT_EQ(cx_mqtt_encode_reason(&b, V5, CX_MQTT_DISCONNECT, &r), CX_OK);
    cx_mqtt_reason_t *d = &roundtrip(&b, V5, SRV)->u.reason;
    CHECK_INT_EQ(d->rc, 0x8B);
    CHECK_SLICE_EQ(d->props.reason_string, "maintenance");

    cx_mqtt_reason_t a = {0};
    a.rc = CX_RC_CONTINUE_AUTH;
    a.props.present = CX_PROP_BIT(CX_PROP_AUTH_METHOD) | CX_PROP_BIT(CX_PROP_AUTH_DATA);
    a.props.auth_method = CX_STR_LIT("PLAIN");
    a.props.auth_data = CX_STR_LIT("\0u\0p");
    CHECK_INT_EQ(cx_mqtt_encode_reason(&b, V5, CX_MQTT_AUTH, &a), CX_OK);
    cx_mqtt_packet_t *p = roundtrip(&b, V5, CLI);
    CHECK_INT_EQ(p->type, CX_MQTT_AUTH);
    CHECK_INT_EQ(p->u.reason.rc, 0x18);
    CHECK_SLICE_EQ(p->u.reason.props.auth_method, "PLAIN");
    CHECK_INT_EQ(p->u.reason.props.auth_data.len, 4);
    cx_buf_free(&b);
}

/* Every corpus packet decodes, and re-encoding the decoded form gives the same bytes. */
static void test_roundtrip_corpus_bytes(void)
{
    setup();
    build_corpus();
    CHECK(corpus_n > 100);
    cx_buf_t b;
    cx_buf_init(&b, 0);
    for (size_t i = 0; i < corpus_n; i++) {
        sample_t *s = &corpus[i];
        cx_mqtt_packet_t pkt;
        cx_mqtt_error_t err = {0, NULL};
        int rc = decode_raw(s->p, s->n, s->ver, s->server, &pkt, &err);
        if (rc != CX_OK)
            CX_FAIL_("sample %zu (v%d %s, type %d): %d %s", i, s->ver,
                     s->server ? "server" : "client", s->p[0] >> 4, rc, err.msg);
        cx_buf_reset(&b);
        CHECK_INT_EQ(encode_any(&b, pkt_version(s->ver, &pkt), &pkt), CX_OK);
        if (cx_buf_used(&b) != s->n || memcmp(cx_buf_head(&b), s->p, s->n) != 0)
            CX_FAIL_("sample %zu (v%d type %d) re-encodes differently", i, s->ver,
                     s->p[0] >> 4);
        cx_arena_reset(&arena);
    }
    cx_buf_free(&b);
}

/* ---- fixed header rules --------------------------------------------------------------- */

static void test_reserved_type_0(void)
{
    setup();
    ERR0(V311, CLI, MAL, 0x00);
    ERR0(V5, SRV, MAL, 0x00);
}

static void test_auth_type_before_v5(void)
{
    setup();
    ERR0(V311, CLI, MAL, 0xF0);
    ERR0(V31, SRV, MAL, 0xF0);
}

static void test_wrong_direction(void)
{
    setup();
    ERR(V311, CLI, PROTO, 0x20, 0x00, 0x00);                /* CONNACK from a client */
    ERR(V311, SRV, PROTO, 0x10, MQTT4, 0x02, 0x00, 0x3c, 0x00, 0x00); /* CONNECT from server */
    ERR(V311, SRV, PROTO, 0x82, 0x00, 0x01, 0x00, 0x01, 'a', 0x00);  /* SUBSCRIBE */
    ERR(V311, CLI, PROTO, 0x90, 0x00, 0x01, 0x00);          /* SUBACK from a client */
    ERR(V311, SRV, PROTO, 0xA2, 0x00, 0x01, 0x00, 0x01, 'a'); /* UNSUBSCRIBE */
    ERR(V311, CLI, PROTO, 0xB0, 0x00, 0x01);                /* UNSUBACK from a client */
    ERR0(V311, SRV, PROTO, 0xC0);                           /* PINGREQ from a server */
    ERR0(V311, CLI, PROTO, 0xD0);                           /* PINGRESP from a client */
    ERR0(V311, SRV, PROTO, 0xE0);                           /* 3.x DISCONNECT from server */
}

static void test_bad_fixed_header_flags(void)
{
    setup();
    ERR(V311, CLI, MAL, 0x11, MQTT4, 0x02, 0x00, 0x3c, 0x00, 0x00); /* CONNECT */
    ERR(V311, SRV, MAL, 0x21, 0x00, 0x00);                          /* CONNACK */
    ERR(V311, CLI, MAL, 0x42, 0x00, 0x01);                          /* PUBACK */
    ERR(V311, CLI, MAL, 0x58, 0x00, 0x01);                          /* PUBREC */
    ERR(V311, CLI, MAL, 0x60, 0x00, 0x01);                          /* PUBREL must be 2 */
    ERR(V311, CLI, MAL, 0x63, 0x00, 0x01);
    ERR(V311, CLI, MAL, 0x72, 0x00, 0x01);                          /* PUBCOMP */
    ERR(V311, CLI, MAL, 0x80, 0x00, 0x01, 0x00, 0x01, 'a', 0x00);   /* SUBSCRIBE must be 2 */
    ERR(V311, SRV, MAL, 0x92, 0x00, 0x01, 0x00);                    /* SUBACK */
    ERR(V311, CLI, MAL, 0xA0, 0x00, 0x01, 0x00, 0x01, 'a');         /* UNSUBSCRIBE */
    ERR(V311, SRV, MAL, 0xB1, 0x00, 0x01);                          /* UNSUBACK */
    ERR0(V311, CLI, MAL, 0xC4);                                     /* PINGREQ */
    ERR0(V311, SRV, MAL, 0xD8);                                     /* PINGRESP */
    ERR0(V311, CLI, MAL, 0xE1);                                     /* DISCONNECT */
    ERR0(V5, CLI, MAL, 0xF1);                                       /* AUTH */
    ERR(V5, CLI, MAL, 0x6A, 0x00, 0x01);                            /* DUP on PUBREL, v5 */
}

static void test_v31_dup_on_pubrel_subscribe(void)
{
    setup();
    cx_mqtt_packet_t pkt;
    OKP(V31, CLI, &pkt, 0x6A, 0x00, 0x01);
    OKP(V31, CLI, &pkt, 0x8A, 0x00, 0x01, 0x00, 0x01, 'a', 0x00);
    OKP(V31, CLI, &pkt, 0xAA, 0x00, 0x01, 0x00, 0x01, 'a');
    ERR(V311, CLI, MAL, 0x6A, 0x00, 0x01);
    ERR(V311, CLI, MAL, 0x8A, 0x00, 0x01, 0x00, 0x01, 'a', 0x00);
}

/* ---- PUBLISH --------------------------------------------------------------------------- */

static void test_publish_qos3(void)
{
    setup();
    ERR(V311, CLI, MAL, 0x36, 0x00, 0x01, 't', 0x00, 0x01); /* [MQTT-3.3.1-4] */
    ERR(V5, SRV, MAL, 0x36, 0x00, 0x01, 't', 0x00, 0x01, 0x00);
}

static void test_publish_dup_qos0(void)
{
    setup();
    ERR(V311, CLI, MAL, 0x38, 0x00, 0x01, 't'); /* [MQTT-3.3.1-2] */
    ERR(V5, CLI, MAL, 0x39, 0x00, 0x01, 't', 0x00);
    cx_mqtt_packet_t pkt;
    OKP(V311, CLI, &pkt, 0x3A, 0x00, 0x01, 't', 0x00, 0x01); /* DUP at QoS 1 is fine */
    CHECK(pkt.u.publish.dup);
}

static void test_publish_packet_id_0(void)
{
    setup();
    ERR(V311, CLI, PROTO, 0x32, 0x00, 0x01, 't', 0x00, 0x00);
    ERR(V31, CLI, PROTO, 0x34, 0x00, 0x01, 't', 0x00, 0x00);
    ERR(V5, SRV, PROTO, 0x34, 0x00, 0x01, 't', 0x00, 0x00, 0x00);
}

static void test_publish_truncated(void)
{
    setup();
    ERR(V311, CLI, MAL, 0x30, 0x00);
    ERR(V311, CLI, MAL, 0x30, 0x00, 0x05, 'a', 'b');
    ERR(V311, CLI, MAL, 0x32, 0x00, 0x01, 't', 0x00);   /* half a packet id */
    ERR(V5, CLI, MAL, 0x30, 0x00, 0x01, 't');           /* no property length */
    ERR(V5, CLI, MAL, 0x30, 0x00, 0x01, 't', 0x05, 0x01); /* property length too big */
    ERR(V5, CLI, MAL, 0x30, 0x00, 0x01, 't', 0x80, 0x80, 0x80, 0x80, 0x01); /* 5-byte */
}

static void test_publish_wildcard_topic(void)
{
    setup();
    ERR(V311, CLI, CX_RC_TOPIC_NAME_INVALID, 0x30, 0x00, 0x03, 'a', '/', '+');
    ERR(V311, CLI, CX_RC_TOPIC_NAME_INVALID, 0x30, 0x00, 0x01, '#');
    ERR(V5, SRV, CX_RC_TOPIC_NAME_INVALID, 0x30, 0x00, 0x03, 'a', '#', 'b', 0x00);
}

static void test_publish_topic_bad_utf8(void)
{
    setup();
    ERR(V311, CLI, MAL, 0x30, 0x00, 0x02, 'a', 0xFF);
    ERR(V311, CLI, MAL, 0x30, 0x00, 0x03, 'a', 0x00, 'b');          /* U+0000 */
    ERR(V5, CLI, MAL, 0x30, 0x00, 0x03, 0xED, 0xA0, 0x80, 0x00);    /* surrogate */
    ERR(V5, CLI, MAL, 0x30, 0x00, 0x02, 0xC0, 0xAF, 0x00);          /* overlong '/' */
}

static void test_publish_empty_topic(void)
{
    setup();
    ERR(V311, CLI, PROTO, 0x30, 0x00, 0x00, 'x');
    ERR(V31, SRV, PROTO, 0x30, 0x00, 0x00);
    ERR(V5, CLI, PROTO, 0x30, 0x00, 0x00, 0x00, 'x'); /* v5, no topic alias */
    cx_mqtt_packet_t pkt;
    OKP(V5, CLI, &pkt, 0x30, 0x00, 0x00, 0x03, 0x23, 0x00, 0x07, 'x');
    CHECK_INT_EQ(pkt.u.publish.topic.len, 0);
    CHECK_INT_EQ(pkt.u.publish.props.topic_alias, 7);
    CHECK_SLICE_EQ(pkt.u.publish.payload, "x");
}

static void test_publish_sub_id_from_client(void)
{
    setup();
    ERR(V5, CLI, PROTO, 0x30, 0x00, 0x01, 't', 0x02, 0x0B, 0x01); /* [MQTT-3.3.4-6] */
    cx_mqtt_packet_t pkt;
    OKP(V5, SRV, &pkt, 0x30, 0x00, 0x01, 't', 0x02, 0x0B, 0x01);
    CHECK_INT_EQ(pkt.u.publish.props.sub_id_count, 1);
}

static void test_publish_sub_id_repeats_from_server(void)
{
    setup();
    cx_mqtt_packet_t pkt;
    OKP(V5, SRV, &pkt, 0x30, 0x00, 0x01, 't', 0x0A, 0x0B, 0x01, 0x0B, 0x80, 0x01, 0x0B, 0xFF,
        0xFF, 0xFF, 0x7F);
    CHECK_INT_EQ(pkt.u.publish.props.sub_id_count, 3);
    CHECK_INT_EQ(pkt.u.publish.props.sub_ids[0], 1);
    CHECK_INT_EQ(pkt.u.publish.props.sub_ids[1], 128);
    CHECK_INT_EQ(pkt.u.publish.props.sub_ids[2], 268435455);
}

static void test_publish_sub_id_0(void)
{
    setup();
    ERR(V5, SRV, PROTO, 0x30, 0x00, 0x01, 't', 0x02, 0x0B, 0x00);
}

static void test_publish_sub_id_5_bytes(void)
{
    setup();
    ERR(V5, SRV, MAL, 0x30, 0x00, 0x01, 't', 0x06, 0x0B, 0x80, 0x80, 0x80, 0x80, 0x01);
    ERR(V5, SRV, MAL, 0x30, 0x00, 0x01, 't', 0x02, 0x0B, 0x80); /* runs off the block */
}

static void test_publish_topic_alias_0(void)
{
    setup();
    ERR(V5, CLI, CX_RC_TOPIC_ALIAS_INVALID, 0x30, 0x00, 0x01, 't', 0x03, 0x23, 0x00, 0x00);
    ERR(V5, SRV, CX_RC_TOPIC_ALIAS_INVALID, 0x30, 0x00, 0x00, 0x03, 0x23, 0x00, 0x00);
}

static void test_publish_duplicate_property(void)
{
    setup();
    ERR(V5, CLI, PROTO, 0x30, 0x00, 0x01, 't', 0x04, 0x01, 0x00, 0x01, 0x01);
    ERR(V5, CLI, PROTO, 0x30, 0x00, 0x01, 't', 0x06, 0x23, 0x00, 0x01, 0x23, 0x00, 0x02);
    ERR(V5, SRV, PROTO, 0x30, 0x00, 0x01, 't', 0x0A, 0x02, 0, 0, 0, 1, 0x02, 0, 0, 0, 1);
    ERR(V5, CLI, PROTO, 0x30, 0x00, 0x01, 't', 0x08, 0x09, 0x00, 0x01, 'a', 0x09, 0x00, 0x01,
        'b');
}

static void test_publish_user_props_repeat(void)
{
    setup();
    cx_mqtt_packet_t pkt;
    OKP(V5, CLI, &pkt, 0x30, 0x00, 0x01, 't', 0x0F, 0x26, 0x00, 0x01, 'a', 0x00, 0x01, '1',
        0x01, 0x01, 0x26, 0x00, 0x01, 'a', 0x00, 0x00, 'P');
    cx_mqtt_props_t *p = &pkt.u.publish.props;
    CHECK_INT_EQ(p->user_prop_count, 2);
    CHECK_SLICE_EQ(p->user_props[0].key, "a");
    CHECK_SLICE_EQ(p->user_props[0].value, "1");
    CHECK_SLICE_EQ(p->user_props[1].key, "a");
    CHECK_SLICE_EQ(p->user_props[1].value, "");
    CHECK_INT_EQ(p->payload_format, 1);
    CHECK_SLICE_EQ(pkt.u.publish.payload, "P");
}

static void test_publish_payload_format_range(void)
{
    setup();
    ERR(V5, CLI, PROTO, 0x30, 0x00, 0x01, 't', 0x02, 0x01, 0x02);
}

static void test_publish_unknown_property(void)
{
    setup();
    ERR(V5, CLI, MAL, 0x30, 0x00, 0x01, 't', 0x02, 0x05, 0x00);
    ERR(V5, CLI, MAL, 0x30, 0x00, 0x01, 't', 0x02, 0x00, 0x00);
    ERR(V5, CLI, MAL, 0x30, 0x00, 0x01, 't', 0x02, 0x2B, 0x00);
    ERR(V5, CLI, MAL, 0x30, 0x00, 0x01, 't', 0x03, 0x81, 0x01, 0x00); /* 2-byte identifier */
}

static void test_publish_property_not_allowed(void)
{
    setup();
    ERR(V5, CLI, PROTO, 0x30, 0x00, 0x01, 't', 0x05, 0x11, 0, 0, 0, 1); /* session expiry */
    ERR(V5, SRV, PROTO, 0x30, 0x00, 0x01, 't', 0x02, 0x24, 0x01);       /* maximum QoS */
    ERR(V5, CLI, PROTO, 0x30, 0x00, 0x01, 't', 0x04, 0x1F, 0x00, 0x01, 'r'); /* reason */
}

static void test_publish_property_truncated(void)
{
    setup();
    ERR(V5, CLI, MAL, 0x30, 0x00, 0x01, 't', 0x01, 0x01);
    ERR(V5, CLI, MAL, 0x30, 0x00, 0x01, 't', 0x02, 0x23, 0x00);
    ERR(V5, CLI, MAL, 0x30, 0x00, 0x01, 't', 0x04, 0x02, 0x00, 0x00, 0x00);
    ERR(V5, CLI, MAL, 0x30, 0x00, 0x01, 't', 0x03, 0x03, 0x00, 0x05);
    ERR(V5, CLI, MAL, 0x30, 0x00, 0x01, 't', 0x05, 0x26, 0x00, 0x01, 'k', 0x00);
    ERR(V5, CLI, MAL, 0x30, 0x00, 0x01, 't', 0x07, 0x26, 0x00, 0x01, 'k', 0x00, 0x02, 'v');
}

static void test_publish_response_topic_wildcard(void)
{
    setup();
    ERR(V5, CLI, PROTO, 0x30, 0x00, 0x01, 't', 0x06, 0x08, 0x00, 0x03, 'r', '/', '#');
    ERR(V5, CLI, PROTO, 0x30, 0x00, 0x01, 't', 0x03, 0x08, 0x00, 0x00);
    cx_mqtt_packet_t pkt;
    OKP(V5, CLI, &pkt, 0x30, 0x00, 0x01, 't', 0x06, 0x08, 0x00, 0x03, 'r', '/', 's');
    CHECK_SLICE_EQ(pkt.u.publish.props.response_topic, "r/s");
}

static void test_publish_property_bad_utf8(void)
{
    setup();
    ERR(V5, CLI, MAL, 0x30, 0x00, 0x01, 't', 0x04, 0x03, 0x00, 0x01, 0xFF); /* content type */
    ERR(V5, CLI, MAL, 0x30, 0x00, 0x01, 't', 0x07, 0x26, 0x00, 0x01, 0x00, 0x00, 0x01, 'v');
    ERR(V5, CLI, MAL, 0x30, 0x00, 0x01, 't', 0x08, 0x26, 0x00, 0x01, 'k', 0x00, 0x02, 0xC3,
        0x28);
    /* correlation data is binary: anything goes */
    cx_mqtt_packet_t pkt;
    OKP(V5, CLI, &pkt, 0x30, 0x00, 0x01, 't', 0x05, 0x09, 0x00, 0x02, 0xFF, 0x00);
    CHECK_INT_EQ(pkt.u.publish.props.correlation_data.len, 2);
}

/* ---- CONNECT --------------------------------------------------------------------------- */

static void test_connect_reserved_flag(void)
{
    setup();
    ERR(V311, CLI, MAL, 0x10, MQTT4, 0x03, 0x00, 0x3c, 0x00, 0x01, 'c'); /* [MQTT-3.1.2-3] */
    ERR(V5, CLI, MAL, 0x10, MQTT5, 0x01, 0x00, 0x3c, 0x00, 0x00, 0x01, 'c');
}

static void test_connect_will_qos_without_will(void)
{
    setup();
    ERR(V311, CLI, MAL, 0x10, MQTT4, 0x0A, 0x00, 0x3c, 0x00, 0x01, 'c');
    ERR(V311, CLI, MAL, 0x10, MQTT4, 0x12, 0x00, 0x3c, 0x00, 0x01, 'c');
    ERR(V5, CLI, MAL, 0x10, MQTT5, 0x08, 0x00, 0x3c, 0x00, 0x00, 0x01, 'c');
}

static void test_connect_will_retain_without_will(void)
{
    setup();
    ERR(V311, CLI, MAL, 0x10, MQTT4, 0x22, 0x00, 0x3c, 0x00, 0x01, 'c');
    ERR(V5, CLI, MAL, 0x10, MQTT5, 0x20, 0x00, 0x3c, 0x00, 0x00, 0x01, 'c');
}

static void test_connect_will_qos3(void)
{
    setup();
    ERR(V311, CLI, MAL, 0x10, MQTT4, 0x1E, 0x00, 0x3c, 0x00, 0x01, 'c', 0x00, 0x01, 't', 0x00,
        0x00);
}

static void test_connect_password_without_username(void)
{
    setup();
    /* [MQTT-3.1.2-22]: a protocol error in 3.1.1 and 3.1 ... */
    ERR(V311, CLI, PROTO, 0x10, MQTT4, 0x42, 0x00, 0x3c, 0x00, 0x01, 'c', 0x00, 0x02, 'p', 'w');
    ERR(V311, CLI, PROTO, 0x10, ISDP3, 0x42, 0x00, 0x3c, 0x00, 0x01, 'c', 0x00, 0x02, 'p', 'w');
    /* ... allowed in v5 (§3.1.2.9) */
    cx_mqtt_packet_t pkt;
    OKP(V5, CLI, &pkt, 0x10, MQTT5, 0x42, 0x00, 0x3c, 0x00, 0x00, 0x01, 'c', 0x00, 0x02, 'p',
        'w');
    CHECK(pkt.u.connect.has_password && !pkt.u.connect.has_username);
    CHECK_SLICE_EQ(pkt.u.connect.password, "pw");
}

static void test_connect_unknown_level(void)
{
    setup();
    size_t len;
    uint8_t *p = framed(0x10, BODY(0x00, 0x04, 'M', 'Q', 'T', 'T', 0x06, 0x02, 0x00, 0x3c,
                                   0x00, 0x01, 'c'),
                        &len);
    cx_mqtt_packet_t pkt;
    cx_mqtt_error_t err = {0, NULL};
    CHECK_INT_EQ(cx_mqtt_decode(p, len, V311, CLI, &arena, &pkt, &err), CX_EPROTO);
    CHECK_INT_EQ(err.rc, CX_RC_UNSUPPORTED_PROTOCOL_VERSION);
    CHECK_INT_EQ(pkt.type, CX_MQTT_CONNECT);
    CHECK_INT_EQ(pkt.u.connect.protocol_level, 6);
    CHECK_SLICE_EQ(pkt.u.connect.protocol_name, "MQTT");
    ERR(V311, CLI, CX_RC_UNSUPPORTED_PROTOCOL_VERSION, 0x10, 0x00, 0x04, 'M', 'Q', 'T', 'T',
        0x02, 0x02, 0x00, 0x3c, 0x00, 0x01, 'c');
    ERR(V311, CLI, CX_RC_UNSUPPORTED_PROTOCOL_VERSION, 0x10, 0x00, 0x04, 'M', 'Q', 'T', 'T',
        0x00);
}

static void test_connect_name_level_mismatch(void)
{
    setup();
    ERR(V311, CLI, CX_RC_UNSUPPORTED_PROTOCOL_VERSION, 0x10, 0x00, 0x04, 'M', 'Q', 'T', 'T',
        0x03, 0x02, 0x00, 0x3c, 0x00, 0x01, 'c');
    ERR(V311, CLI, CX_RC_UNSUPPORTED_PROTOCOL_VERSION, 0x10, 0x00, 0x06, 'M', 'Q', 'I', 's',
        'd', 'p', 0x04, 0x02, 0x00, 0x3c, 0x00, 0x01, 'c');
    ERR(V311, CLI, CX_RC_UNSUPPORTED_PROTOCOL_VERSION, 0x10, 0x00, 0x06, 'M', 'Q', 'I', 's',
        'd', 'p', 0x05, 0x02, 0x00, 0x3c, 0x00, 0x00, 0x01, 'c');
}

static void test_connect_unknown_name(void)
{
    setup();
    size_t len;
    uint8_t *p = framed(0x10, BODY(0x00, 0x04, 'M', 'Q', 'T', 'X', 0x04, 0x02, 0x00, 0x3c,
                                   0x00, 0x01, 'c'),
                        &len);
    cx_mqtt_packet_t pkt;
    cx_mqtt_error_t err = {0, NULL};
    CHECK_INT_EQ(cx_mqtt_decode(p, len, V311, CLI, &arena, &pkt, &err), CX_EPROTO);
    CHECK_INT_EQ(err.rc, CX_RC_UNSUPPORTED_PROTOCOL_VERSION);
    CHECK_SLICE_EQ(pkt.u.connect.protocol_name, "MQTX");
    CHECK_INT_EQ(pkt.u.connect.protocol_level, 4);
    ERR(V311, CLI, CX_RC_UNSUPPORTED_PROTOCOL_VERSION, 0x10, 0x00, 0x00, 0x04);
}

static void test_connect_truncated_header(void)
{
    setup();
    ERR(V311, CLI, MAL, 0x10, 0x00, 0x04, 'M', 'Q');
    ERR(V311, CLI, MAL, 0x10, 0x00, 0x04, 'M', 'Q', 'T', 'T');
    ERR(V311, CLI, MAL, 0x10, MQTT4);
    ERR(V311, CLI, MAL, 0x10, MQTT4, 0x02, 0x00);
    ERR(V311, CLI, MAL, 0x10, MQTT4, 0x02, 0x00, 0x3c);
    ERR(V311, CLI, MAL, 0x10, MQTT4, 0x02, 0x00, 0x3c, 0x00, 0x02, 'c');
    ERR(V5, CLI, MAL, 0x10, MQTT5, 0x02, 0x00, 0x3c);
    ERR(V311, CLI, MAL, 0x10, MQTT4, 0x06, 0x00, 0x3c, 0x00, 0x01, 'c', 0x00, 0x01, 't');
    ERR(V311, CLI, MAL, 0x10, MQTT4, 0x82, 0x00, 0x3c, 0x00, 0x01, 'c', 0x00, 0x05, 'u');
    ERR(V311, CLI, MAL, 0x10, MQTT4, 0xC2, 0x00, 0x3c, 0x00, 0x01, 'c', 0x00, 0x01, 'u');
    ERR(V5, CLI, MAL, 0x10, MQTT5, 0x06, 0x00, 0x3c, 0x00, 0x00, 0x01, 'c'); /* no will props */
}

static void test_connect_trailing_bytes(void)
{
    setup();
    ERR(V311, CLI, MAL, 0x10, MQTT4, 0x02, 0x00, 0x3c, 0x00, 0x01, 'c', 0x00);
    ERR(V5, CLI, MAL, 0x10, MQTT5, 0x02, 0x00, 0x3c, 0x00, 0x00, 0x01, 'c', 0x00, 0x00);
}

static void test_connect_bridge_bit(void)
{
    setup();
    cx_mqtt_packet_t pkt;
    OKP(V311, CLI, &pkt, 0x10, 0x00, 0x04, 'M', 'Q', 'T', 'T', 0x84, 0x02, 0x00, 0x3c, 0x00,
        0x01, 'c');
    CHECK(pkt.u.connect.bridge);
    CHECK_INT_EQ(pkt.u.connect.protocol_level, 4);
    OKP(V311, CLI, &pkt, 0x10, 0x00, 0x06, 'M', 'Q', 'I', 's', 'd', 'p', 0x83, 0x02, 0x00, 0x3c,
        0x00, 0x01, 'c');
    CHECK(pkt.u.connect.bridge);
    CHECK_INT_EQ(pkt.u.connect.protocol_level, 3);
}

static void test_connect_client_id_bad_utf8(void)
{
    setup();
    ERR(V311, CLI, MAL, 0x10, MQTT4, 0x02, 0x00, 0x3c, 0x00, 0x01, 0xFF);
    ERR(V311, CLI, MAL, 0x10, MQTT4, 0x02, 0x00, 0x3c, 0x00, 0x02, 'a', 0x00);
    ERR(V5, CLI, MAL, 0x10, MQTT5, 0x02, 0x00, 0x3c, 0x00, 0x00, 0x03, 0xED, 0xB0, 0x80);
}

static void test_connect_will_topic_invalid(void)
{
    setup();
    ERR(V311, CLI, CX_RC_TOPIC_NAME_INVALID, 0x10, MQTT4, 0x06, 0x00, 0x3c, 0x00, 0x01, 'c',
        0x00, 0x03, 'a', '/', '#', 0x00, 0x01, 'x');
    ERR(V311, CLI, CX_RC_TOPIC_NAME_INVALID, 0x10, MQTT4, 0x06, 0x00, 0x3c, 0x00, 0x01, 'c',
        0x00, 0x00, 0x00, 0x01, 'x');
    ERR(V311, CLI, MAL, 0x10, MQTT4, 0x06, 0x00, 0x3c, 0x00, 0x01, 'c', 0x00, 0x01, 0x80, 0x00,
        0x01, 'x');
}

static void test_connect_username_bad_utf8(void)
{
    setup();
    ERR(V311, CLI, MAL, 0x10, MQTT4, 0x82, 0x00, 0x3c, 0x00, 0x01, 'c', 0x00, 0x01, 0xC0);
}

static void test_connect_v31_missing_credentials(void)
{
    setup();
    cx_mqtt_packet_t pkt;
    /* 3.1 only: flags say user name and password, the packet ends after the client id. */
    OKP(V31, CLI, &pkt, 0x10, ISDP3, 0xC2, 0x00, 0x3c, 0x00, 0x01, 'c');
    CHECK(!pkt.u.connect.has_username && !pkt.u.connect.has_password);
    OKP(V31, CLI, &pkt, 0x10, ISDP3, 0xC2, 0x00, 0x3c, 0x00, 0x01, 'c', 0x00, 0x01, 'u');
    CHECK(pkt.u.connect.has_username && !pkt.u.connect.has_password);
    CHECK_SLICE_EQ(pkt.u.connect.username, "u");
    /* not in 3.1.1 */
    ERR(V311, CLI, MAL, 0x10, MQTT4, 0xC2, 0x00, 0x3c, 0x00, 0x01, 'c');
    ERR(V311, CLI, MAL, 0x10, MQTT4, 0xC2, 0x00, 0x3c, 0x00, 0x01, 'c', 0x00, 0x01, 'u');
}

static void test_connect_v5_receive_max_0(void)
{
    setup();
    ERR(V5, CLI, PROTO, 0x10, MQTT5, 0x02, 0x00, 0x3c, 0x03, 0x21, 0x00, 0x00, 0x00, 0x01, 'c');
}

static void test_connect_v5_max_packet_size_0(void)
{
    setup();
    ERR(V5, CLI, PROTO, 0x10, MQTT5, 0x02, 0x00, 0x3c, 0x05, 0x27, 0, 0, 0, 0, 0x00, 0x01, 'c');
}

static void test_connect_v5_request_info_range(void)
{
    setup();
    ERR(V5, CLI, PROTO, 0x10, MQTT5, 0x02, 0x00, 0x3c, 0x02, 0x17, 0x02, 0x00, 0x01, 'c');
    ERR(V5, CLI, PROTO, 0x10, MQTT5, 0x02, 0x00, 0x3c, 0x02, 0x19, 0x02, 0x00, 0x01, 'c');
    cx_mqtt_packet_t pkt;
    OKP(V5, CLI, &pkt, 0x10, MQTT5, 0x02, 0x00, 0x3c, 0x04, 0x17, 0x00, 0x19, 0x01, 0x00, 0x01,
        'c');
    CHECK_INT_EQ(pkt.u.connect.props.request_problem_info, 0);
    CHECK_INT_EQ(pkt.u.connect.props.request_response_info, 1);
}

static void test_connect_v5_duplicate_property(void)
{
    setup();
    ERR(V5, CLI, PROTO, 0x10, MQTT5, 0x02, 0x00, 0x3c, 0x0A, 0x11, 0, 0, 0, 1, 0x11, 0, 0, 0, 2,
        0x00, 0x01, 'c');
    ERR(V5, CLI, PROTO, 0x10, MQTT5, 0x02, 0x00, 0x3c, 0x08, 0x15, 0x00, 0x01, 'a', 0x15, 0x00,
        0x01, 'b', 0x00, 0x01, 'c');
}

static void test_connect_v5_auth_data_without_method(void)
{
    setup();
    ERR(V5, CLI, PROTO, 0x10, MQTT5, 0x02, 0x00, 0x3c, 0x04, 0x16, 0x00, 0x01, 0xAA, 0x00, 0x01,
        'c');
}

static void test_connect_v5_property_not_allowed(void)
{
    setup();
    ERR(V5, CLI, PROTO, 0x10, MQTT5, 0x02, 0x00, 0x3c, 0x03, 0x23, 0x00, 0x01, 0x00, 0x01, 'c');
    ERR(V5, CLI, PROTO, 0x10, MQTT5, 0x02, 0x00, 0x3c, 0x05, 0x18, 0, 0, 0, 1, 0x00, 0x01, 'c');
}

static void test_connect_v5_will_property_not_allowed(void)
{
    setup();
    /* Session Expiry Interval among the will properties */
    ERR(V5, CLI, PROTO, 0x10, MQTT5, 0x06, 0x00, 0x3c, 0x00, 0x00, 0x01, 'c', 0x05, 0x11, 0, 0,
        0, 1, 0x00, 0x01, 't', 0x00, 0x00);
    /* payload format indicator out of range */
    ERR(V5, CLI, PROTO, 0x10, MQTT5, 0x06, 0x00, 0x3c, 0x00, 0x00, 0x01, 'c', 0x02, 0x01, 0x07,
        0x00, 0x01, 't', 0x00, 0x00);
    /* wildcard response topic */
    ERR(V5, CLI, PROTO, 0x10, MQTT5, 0x06, 0x00, 0x3c, 0x00, 0x00, 0x01, 'c', 0x04, 0x08, 0x00,
        0x01, '+', 0x00, 0x01, 't', 0x00, 0x00);
    cx_mqtt_packet_t pkt;
    OKP(V5, CLI, &pkt, 0x10, MQTT5, 0x06, 0x00, 0x3c, 0x00, 0x00, 0x01, 'c', 0x05, 0x18, 0, 0,
        1, 0, 0x00, 0x01, 't', 0x00, 0x00);
    CHECK_INT_EQ(pkt.u.connect.will_props.will_delay, 256);
}

/* ---- CONNACK --------------------------------------------------------------------------- */

static void test_connack_reserved_flags(void)
{
    setup();
    ERR(V311, SRV, MAL, 0x20, 0x02, 0x00); /* [MQTT-3.2.2-1] */
    ERR(V5, SRV, MAL, 0x20, 0x80, 0x00, 0x00);
    cx_mqtt_packet_t pkt;
    OKP(V31, SRV, &pkt, 0x20, 0xFF, 0x00); /* unused in 3.1 */
    CHECK(!pkt.u.connack.session_present);
}

static void test_connack_v3_unknown_rc(void)
{
    setup();
    ERR(V311, SRV, PROTO, 0x20, 0x00, 0x06);
    ERR(V31, SRV, PROTO, 0x20, 0x00, 0x80);
}

static void test_connack_session_present_with_error(void)
{
    setup();
    ERR(V311, SRV, PROTO, 0x20, 0x01, 0x05);
    ERR(V5, SRV, PROTO, 0x20, 0x01, 0x87, 0x00);
}

static void test_connack_v5_rc_not_allowed(void)
{
    setup();
    ERR(V5, SRV, PROTO, 0x20, 0x00, 0x10, 0x00);
    ERR(V5, SRV, PROTO, 0x20, 0x00, 0x01, 0x00);
    ERR(V5, SRV, PROTO, 0x20, 0x00, 0x8B, 0x00);
    cx_mqtt_packet_t pkt;
    OKP(V5, SRV, &pkt, 0x20, 0x00, 0x9F, 0x00);
}

static void test_connack_v5_property_ranges(void)
{
    setup();
    ERR(V5, SRV, PROTO, 0x20, 0x00, 0x00, 0x02, 0x24, 0x02); /* maximum QoS */
    ERR(V5, SRV, PROTO, 0x20, 0x00, 0x00, 0x02, 0x25, 0x02); /* retain available */
    ERR(V5, SRV, PROTO, 0x20, 0x00, 0x00, 0x02, 0x28, 0x02); /* wildcard available */
    ERR(V5, SRV, PROTO, 0x20, 0x00, 0x00, 0x02, 0x29, 0x05); /* sub ids available */
    ERR(V5, SRV, PROTO, 0x20, 0x00, 0x00, 0x02, 0x2A, 0xFF); /* shared available */
    ERR(V5, SRV, PROTO, 0x20, 0x00, 0x00, 0x03, 0x21, 0x00, 0x00);
    ERR(V5, SRV, PROTO, 0x20, 0x00, 0x00, 0x05, 0x27, 0, 0, 0, 0);
    ERR(V5, SRV, PROTO, 0x20, 0x00, 0x00, 0x02, 0x17, 0x01); /* CONNECT-only property */
}

static void test_connack_v5_missing_properties(void)
{
    setup();
    ERR(V5, SRV, MAL, 0x20, 0x00, 0x00);
    ERR(V311, SRV, MAL, 0x20, 0x00);
    ERR(V311, SRV, MAL, 0x20, 0x00, 0x00, 0x00); /* 3.x: exactly 2 bytes */
}

/* ---- acks ------------------------------------------------------------------------------ */

static void test_ack_packet_id_0(void)
{
    setup();
    for (int ver = V31; ver <= V5; ver++) {
        ERR(ver, CLI, PROTO, 0x40, 0x00, 0x00);
        ERR(ver, SRV, PROTO, 0x50, 0x00, 0x00);
        ERR(ver, CLI, PROTO, 0x62, 0x00, 0x00);
        ERR(ver, SRV, PROTO, 0x70, 0x00, 0x00);
    }
}

static void test_ack_v3_length(void)
{
    setup();
    ERR(V311, CLI, MAL, 0x40, 0x00, 0x01, 0x00);
    ERR(V311, CLI, MAL, 0x40, 0x00);
    ERR0(V311, CLI, MAL, 0x40);
    ERR(V31, SRV, MAL, 0x70, 0x00, 0x01, 0x00, 0x00);
}

static void test_ack_v5_short_forms(void)
{
    setup();
    cx_mqtt_packet_t pkt;
    OKP(V5, CLI, &pkt, 0x40, 0x00, 0x05);
    CHECK_INT_EQ(pkt.u.ack.packet_id, 5);
    CHECK_INT_EQ(pkt.u.ack.rc, 0);
    OKP(V5, CLI, &pkt, 0x50, 0x00, 0x05, 0x10);
    CHECK_INT_EQ(pkt.u.ack.rc, 0x10);
    CHECK_INT_EQ(pkt.u.ack.props.present, 0);
    OKP(V5, CLI, &pkt, 0x62, 0x00, 0x05, 0x92, 0x00);
    CHECK_INT_EQ(pkt.u.ack.rc, 0x92);
    OKP(V5, SRV, &pkt, 0x70, 0x00, 0x05, 0x00, 0x04, 0x1F, 0x00, 0x01, 'r');
    CHECK_SLICE_EQ(pkt.u.ack.props.reason_string, "r");
}

static void test_ack_v5_rc_not_allowed(void)
{
    setup();
    ERR(V5, CLI, PROTO, 0x40, 0x00, 0x01, 0x92);
    ERR(V5, CLI, PROTO, 0x50, 0x00, 0x01, 0x01);
    ERR(V5, CLI, PROTO, 0x62, 0x00, 0x01, 0x10);
    ERR(V5, SRV, PROTO, 0x70, 0x00, 0x01, 0x80);
    ERR(V5, SRV, PROTO, 0x40, 0x00, 0x01, 0x81);
}

static void test_ack_v5_properties(void)
{
    setup();
    ERR(V5, CLI, PROTO, 0x40, 0x00, 0x01, 0x00, 0x05, 0x11, 0, 0, 0, 1); /* not allowed */
    ERR(V5, CLI, MAL, 0x40, 0x00, 0x01, 0x00, 0x05, 0x1F, 0x00, 0x09, 'r'); /* truncated */
    ERR(V5, CLI, MAL, 0x40, 0x00, 0x01, 0x00, 0x00, 0x00);                /* trailing */
    ERR(V5, CLI, PROTO, 0x40, 0x00, 0x01, 0x00, 0x08, 0x1F, 0x00, 0x01, 'r', 0x1F, 0x00, 0x01,
        's');
}

/* ---- SUBSCRIBE ------------------------------------------------------------------------- */

static void test_subscribe_no_filters(void)
{
    setup();
    ERR(V311, CLI, PROTO, 0x82, 0x00, 0x01);
    ERR(V5, CLI, PROTO, 0x82, 0x00, 0x01, 0x00);
}

static void test_subscribe_packet_id_0(void)
{
    setup();
    ERR(V311, CLI, PROTO, 0x82, 0x00, 0x00, 0x00, 0x01, 'a', 0x00);
    ERR(V311, CLI, MAL, 0x82, 0x00);
}

static void test_subscribe_v3_reserved_bits(void)
{
    setup();
    ERR(V311, CLI, MAL, 0x82, 0x00, 0x01, 0x00, 0x01, 'a', 0x04); /* [MQTT-3.8.3-4] */
    ERR(V311, CLI, MAL, 0x82, 0x00, 0x01, 0x00, 0x01, 'a', 0x80);
    ERR(V31, CLI, MAL, 0x82, 0x00, 0x01, 0x00, 0x01, 'a', 0x10);
}

static void test_subscribe_v3_qos3(void)
{
    setup();
    ERR(V311, CLI, MAL, 0x82, 0x00, 0x01, 0x00, 0x01, 'a', 0x03);
}

static void test_subscribe_v5_reserved_bits(void)
{
    setup();
    ERR(V5, CLI, MAL, 0x82, 0x00, 0x01, 0x00, 0x00, 0x01, 'a', 0x40); /* [MQTT-3.8.3-5] */
    ERR(V5, CLI, MAL, 0x82, 0x00, 0x01, 0x00, 0x00, 0x01, 'a', 0x80);
}

static void test_subscribe_v5_qos3(void)
{
    setup();
    ERR(V5, CLI, PROTO, 0x82, 0x00, 0x01, 0x00, 0x00, 0x01, 'a', 0x03);
}

static void test_subscribe_v5_retain_handling_3(void)
{
    setup();
    ERR(V5, CLI, PROTO, 0x82, 0x00, 0x01, 0x00, 0x00, 0x01, 'a', 0x30);
}

static void test_subscribe_v5_no_local_shared(void)
{
    setup();
    ERR(V5, CLI, PROTO, 0x82, 0x00, 0x01, 0x00, 0x00, 0x0A, '$', 's', 'h', 'a', 'r', 'e', '/',
        'g', '/', 'a', 0x04); /* [MQTT-3.8.3-4] */
    cx_mqtt_packet_t pkt;
    OKP(V5, CLI, &pkt, 0x82, 0x00, 0x01, 0x00, 0x00, 0x01, 'a', 0x04);
    CHECK(pkt.u.subscribe.entries[0].no_local);
}

static void test_subscribe_invalid_filter(void)
{
    setup();
    ERR(V311, CLI, CX_RC_MALFORMED_PACKET, 0x82, 0x00, 0x01, 0x00, 0x05, 'a', '/', '#', '/',
        'b', 0x00);
    ERR(V311, CLI, CX_RC_MALFORMED_PACKET, 0x82, 0x00, 0x01, 0x00, 0x02, 'a', '+', 0x00);
    ERR(V311, CLI, CX_RC_MALFORMED_PACKET, 0x82, 0x00, 0x01, 0x00, 0x00, 0x00);
    ERR(V5, CLI, CX_RC_MALFORMED_PACKET, 0x82, 0x00, 0x01, 0x00, 0x00, 0x02, '#', '#',
        0x00);
    /* an invalid filter after a valid one */
    ERR(V311, CLI, CX_RC_MALFORMED_PACKET, 0x82, 0x00, 0x01, 0x00, 0x01, 'a', 0x00, 0x00,
        0x02, '+', 'x', 0x01);
}

static void test_subscribe_filter_bad_utf8(void)
{
    setup();
    ERR(V311, CLI, MAL, 0x82, 0x00, 0x01, 0x00, 0x02, 'a', 0xFE, 0x00);
    ERR(V5, CLI, MAL, 0x82, 0x00, 0x01, 0x00, 0x00, 0x01, 0x00, 0x00);
}

static void test_subscribe_invalid_shared(void)
{
    setup();
    ERR(V5, CLI, CX_RC_MALFORMED_PACKET, 0x82, 0x00, 0x01, 0x00, 0x00, 0x09, '$', 's', 'h',
        'a', 'r', 'e', '/', '/', 'a', 0x00);
    ERR(V5, CLI, CX_RC_MALFORMED_PACKET, 0x82, 0x00, 0x01, 0x00, 0x00, 0x08, '$', 's', 'h',
        'a', 'r', 'e', '/', 'g', 0x00);
    ERR(V311, CLI, CX_RC_MALFORMED_PACKET, 0x82, 0x00, 0x01, 0x00, 0x0A, '$', 's', 'h', 'a',
        'r', 'e', '/', '+', '/', 'a', 0x00);
    ERR(V311, CLI, CX_RC_MALFORMED_PACKET, 0x82, 0x00, 0x01, 0x00, 0x09, '$', 's', 'h', 'a',
        'r', 'e', '/', 'g', '/', 0x00);
}

static void test_subscribe_truncated_entry(void)
{
    setup();
    ERR(V311, CLI, MAL, 0x82, 0x00, 0x01, 0x00, 0x01, 'a');             /* no options */
    ERR(V311, CLI, MAL, 0x82, 0x00, 0x01, 0x00, 0x03, 'a');             /* short filter */
    ERR(V311, CLI, MAL, 0x82, 0x00, 0x01, 0x00, 0x01, 'a', 0x00, 0x00); /* half length */
}

static void test_subscribe_v5_sub_id_rules(void)
{
    setup();
    ERR(V5, CLI, PROTO, 0x82, 0x00, 0x01, 0x04, 0x0B, 0x01, 0x0B, 0x02, 0x00, 0x01, 'a', 0x00);
    ERR(V5, CLI, PROTO, 0x82, 0x00, 0x01, 0x02, 0x0B, 0x00, 0x00, 0x01, 'a', 0x00);
    ERR(V5, CLI, PROTO, 0x82, 0x00, 0x01, 0x04, 0x1F, 0x00, 0x01, 'r', 0x00, 0x01, 'a', 0x00);
    cx_mqtt_packet_t pkt;
    OKP(V5, CLI, &pkt, 0x82, 0x00, 0x01, 0x03, 0x0B, 0xFF, 0x01, 0x00, 0x01, 'a', 0x00);
    CHECK_INT_EQ(pkt.u.subscribe.props.sub_id_count, 1);
    CHECK_INT_EQ(pkt.u.subscribe.props.sub_ids[0], 255);
}

/* ---- UNSUBSCRIBE ----------------------------------------------------------------------- */

static void test_unsubscribe_no_filters(void)
{
    setup();
    ERR(V311, CLI, PROTO, 0xA2, 0x00, 0x01);
    ERR(V5, CLI, PROTO, 0xA2, 0x00, 0x01, 0x00);
}

static void test_unsubscribe_packet_id_0(void)
{
    setup();
    ERR(V311, CLI, PROTO, 0xA2, 0x00, 0x00, 0x00, 0x01, 'a');
}

static void test_unsubscribe_invalid_filter(void)
{
    setup();
    ERR(V311, CLI, CX_RC_MALFORMED_PACKET, 0xA2, 0x00, 0x01, 0x00, 0x02, '#', 'a');
    ERR(V5, CLI, CX_RC_MALFORMED_PACKET, 0xA2, 0x00, 0x01, 0x00, 0x00, 0x00);
    ERR(V5, CLI, MAL, 0xA2, 0x00, 0x01, 0x00, 0x00, 0x01, 0xFF);
    ERR(V311, CLI, MAL, 0xA2, 0x00, 0x01, 0x00, 0x05, 'a');
}

static void test_unsubscribe_v5_property_not_allowed(void)
{
    setup();
    ERR(V5, CLI, PROTO, 0xA2, 0x00, 0x01, 0x02, 0x0B, 0x01, 0x00, 0x01, 'a');
}

/* ---- SUBACK / UNSUBACK ----------------------------------------------------------------- */

static void test_suback_rc_rules(void)
{
    setup();
    ERR(V311, SRV, PROTO, 0x90, 0x00, 0x01, 0x03);
    ERR(V311, SRV, PROTO, 0x90, 0x00, 0x01, 0x00, 0x87);
    ERR(V5, SRV, PROTO, 0x90, 0x00, 0x01, 0x00, 0x10);
    ERR(V5, SRV, PROTO, 0x90, 0x00, 0x01, 0x00, 0x00, 0x92);
    ERR(V311, SRV, PROTO, 0x90, 0x00, 0x00, 0x00); /* packet id 0 */
    cx_mqtt_packet_t pkt;
    OKP(V5, SRV, &pkt, 0x90, 0x00, 0x01, 0x00, 0x9E, 0xA1, 0xA2, 0x01);
    CHECK_INT_EQ(pkt.u.suback.count, 4);
    OKP(V311, SRV, &pkt, 0x90, 0x00, 0x01, 0x80, 0x02);
}

static void test_suback_no_codes(void)
{
    setup();
    ERR(V311, SRV, PROTO, 0x90, 0x00, 0x01);
    ERR(V5, SRV, PROTO, 0x90, 0x00, 0x01, 0x00);
    ERR(V5, SRV, PROTO, 0xB0, 0x00, 0x01, 0x00);
}

static void test_unsuback_rules(void)
{
    setup();
    ERR(V311, SRV, MAL, 0xB0, 0x00, 0x01, 0x00);
    ERR(V5, SRV, PROTO, 0xB0, 0x00, 0x01, 0x00, 0x10);
    ERR(V5, SRV, PROTO, 0xB0, 0x00, 0x00, 0x00, 0x00);
    cx_mqtt_packet_t pkt;
    OKP(V311, SRV, &pkt, 0xB0, 0x00, 0x01);
    CHECK_INT_EQ(pkt.u.suback.count, 0);
    OKP(V5, SRV, &pkt, 0xB0, 0x00, 0x01, 0x00, 0x11, 0x8F);
    CHECK_INT_EQ(pkt.u.suback.count, 2);
}

/* ---- PINGREQ / PINGRESP ---------------------------------------------------------------- */

static void test_ping_with_body(void)
{
    setup();
    ERR(V311, CLI, MAL, 0xC0, 0x00);
    ERR(V5, SRV, MAL, 0xD0, 0x00);
}

/* ---- DISCONNECT / AUTH ----------------------------------------------------------------- */

static void test_disconnect_v3_with_body(void)
{
    setup();
    ERR(V311, CLI, MAL, 0xE0, 0x00);
}

static void test_disconnect_v5_forms(void)
{
    setup();
    cx_mqtt_packet_t pkt;
    OK0(V5, CLI, &pkt, 0xE0);
    CHECK_INT_EQ(pkt.u.reason.rc, 0);
    CHECK_INT_EQ(pkt.u.reason.props.present, 0);
    OKP(V5, CLI, &pkt, 0xE0, 0x04);
    CHECK_INT_EQ(pkt.u.reason.rc, 4);
    OKP(V5, CLI, &pkt, 0xE0, 0x00, 0x05, 0x11, 0, 0, 0, 9);
    CHECK_INT_EQ(pkt.u.reason.props.session_expiry, 9);
    OKP(V5, SRV, &pkt, 0xE0, 0x9C, 0x04, 0x1C, 0x00, 0x01, 'h');
    CHECK_SLICE_EQ(pkt.u.reason.props.server_reference, "h");
}

static void test_disconnect_v5_rc_by_sender(void)
{
    setup();
    ERR(V5, CLI, PROTO, 0xE0, 0x8B); /* server shutting down: server only */
    ERR(V5, CLI, PROTO, 0xE0, 0x8E);
    ERR(V5, SRV, PROTO, 0xE0, 0x04); /* with will: client only */
    ERR(V5, SRV, PROTO, 0xE0, 0x10);
    ERR(V5, CLI, PROTO, 0xE0, 0x01);
    cx_mqtt_packet_t pkt;
    OKP(V5, SRV, &pkt, 0xE0, 0x8E);
    OKP(V5, CLI, &pkt, 0xE0, 0x93);
}

static void test_disconnect_v5_session_expiry_from_server(void)
{
    setup();
    ERR(V5, SRV, PROTO, 0xE0, 0x00, 0x05, 0x11, 0, 0, 0, 9); /* [MQTT-3.14.2-2] */
}

static void test_disconnect_v5_trailing(void)
{
    setup();
    ERR(V5, CLI, MAL, 0xE0, 0x00, 0x00, 0x00);
    ERR(V5, CLI, MAL, 0xE0, 0x00, 0x05, 0x11);
}

static void test_auth_v5(void)
{
    setup();
    cx_mqtt_packet_t pkt;
    OK0(V5, SRV, &pkt, 0xF0);
    CHECK_INT_EQ(pkt.type, CX_MQTT_AUTH);
    CHECK_INT_EQ(pkt.u.reason.rc, 0);
    OKP(V5, CLI, &pkt, 0xF0, 0x19, 0x04, 0x15, 0x00, 0x01, 'm');
    CHECK_SLICE_EQ(pkt.u.reason.props.auth_method, "m");
    ERR(V5, CLI, PROTO, 0xF0, 0x04);
    ERR(V5, CLI, PROTO, 0xF0, 0x18, 0x05, 0x11, 0, 0, 0, 1);
    /* the Authentication Method may only be left out in the remaining-length-0 form */
    ERR(V5, CLI, PROTO, 0xF0, 0x18);
    ERR(V5, SRV, PROTO, 0xF0, 0x18, 0x00);
    ERR(V5, SRV, PROTO, 0xF0, 0x00, 0x05, 0x16, 0x00, 0x02, 'd', 'd');
    ERR(V5, CLI, PROTO, 0xF0, 0x18, 0x08, 0x15, 0x00, 0x01, 'm', 0x15, 0x00, 0x01, 'n');
}

/* ---- arena ------------------------------------------------------------------------------ */

static void test_arena_exhausted(void)
{
    cx_arena_init(&arena, 16); /* smaller than one aligned allocation of two entries */
    size_t len;
    uint8_t *p = framed(0x82, BODY(0x00, 0x01, 0x00, 0x01, 'a', 0x00, 0x00, 0x01, 'b', 0x01),
                        &len);
    cx_mqtt_packet_t pkt;
    cx_mqtt_error_t err = {0, NULL};
    CHECK_INT_EQ(cx_mqtt_decode(p, len, V311, CLI, &arena, &pkt, &err), CX_ENOMEM);
    CHECK(err.msg != NULL);
    CHECK_INT_EQ(cx_mqtt_decode(p, len, V311, CLI, NULL, &pkt, &err), CX_ENOMEM);
    p = framed(0x30, BODY(0x00, 0x01, 't', 0x07, 0x26, 0x00, 0x01, 'k', 0x00, 0x01, 'v'), &len);
    CHECK_INT_EQ(cx_mqtt_decode(p, len, V5, CLI, NULL, &pkt, &err), CX_ENOMEM);
    /* no arrays needed: no arena needed */
    p = framed(0x30, BODY(0x00, 0x01, 't', 0x00), &len);
    CHECK_INT_EQ(cx_mqtt_decode(p, len, V5, CLI, NULL, &pkt, &err), CX_OK);
    cx_arena_free(&arena);
}

/* ---- encoder specifics ----------------------------------------------------------------- */

#define EXPECT_BYTES(b, ...)                                                              \
    do {                                                                                  \
        static const uint8_t want_[] = {__VA_ARGS__};                                     \
        if (cx_buf_used(b) != sizeof want_ ||                                             \
            memcmp(cx_buf_head(b), want_, sizeof want_) != 0) {                           \
            fprintf(stderr, "got:");                                                      \
            for (size_t i_ = 0; i_ < cx_buf_used(b); i_++)                                \
                fprintf(stderr, " %02x", cx_buf_head(b)[i_]);                             \
            fprintf(stderr, "\n");                                                        \
            CX_FAIL_("encoded bytes differ");                                             \
        }                                                                                 \
        cx_buf_reset(b);                                                                  \
    } while (0)

static void test_encode_ack_forms(void)
{
    cx_buf_t b;
    cx_buf_init(&b, 0);
    cx_mqtt_ack_t a = {0};
    a.packet_id = 0x0102;
    CHECK_INT_EQ(cx_mqtt_encode_ack(&b, V5, CX_MQTT_PUBACK, &a), CX_OK);
    EXPECT_BYTES(&b, 0x40, 0x02, 0x01, 0x02);
    a.rc = 0x10;
    CHECK_INT_EQ(cx_mqtt_encode_ack(&b, V5, CX_MQTT_PUBREC, &a), CX_OK);
    EXPECT_BYTES(&b, 0x50, 0x03, 0x01, 0x02, 0x10);
    a.rc = 0;
    a.props.present = CX_PROP_BIT(CX_PROP_REASON_STRING);
    a.props.reason_string = CX_STR_LIT("x");
    CHECK_INT_EQ(cx_mqtt_encode_ack(&b, V5, CX_MQTT_PUBREL, &a), CX_OK);
    EXPECT_BYTES(&b, 0x62, 0x08, 0x01, 0x02, 0x00, 0x04, 0x1F, 0x00, 0x01, 'x');
    /* 3.x: always two bytes, reason code and properties dropped */
    a.rc = 0x92;
    CHECK_INT_EQ(cx_mqtt_encode_ack(&b, V311, CX_MQTT_PUBCOMP, &a), CX_OK);
    EXPECT_BYTES(&b, 0x70, 0x02, 0x01, 0x02);
    /* a property not allowed in acks is not written: short form again */
    a.rc = 0;
    a.props.present = CX_PROP_BIT(CX_PROP_SESSION_EXPIRY);
    CHECK_INT_EQ(cx_mqtt_encode_ack(&b, V5, CX_MQTT_PUBACK, &a), CX_OK);
    EXPECT_BYTES(&b, 0x40, 0x02, 0x01, 0x02);
    /* user property bit with no entries: nothing to write */
    a.props.present = CX_PROP_BIT(CX_PROP_USER_PROPERTY);
    CHECK_INT_EQ(cx_mqtt_encode_ack(&b, V5, CX_MQTT_PUBACK, &a), CX_OK);
    EXPECT_BYTES(&b, 0x40, 0x02, 0x01, 0x02);
    CHECK_INT_EQ(cx_mqtt_encode_ack(&b, V5, CX_MQTT_SUBACK, &a), CX_EINVAL);
    cx_buf_free(&b);
}

static void test_encode_disconnect_forms(void)
{
    cx_buf_t b;
    cx_buf_init(&b, 0);
    cx_mqtt_reason_t r = {0};
    CHECK_INT_EQ(cx_mqtt_encode_reason(&b, V5, CX_MQTT_DISCONNECT, &r), CX_OK);
    EXPECT_BYTES(&b, 0xE0, 0x00);
    r.rc = CX_RC_SESSION_TAKEN_OVER;
    CHECK_INT_EQ(cx_mqtt_encode_reason(&b, V5, CX_MQTT_DISCONNECT, &r), CX_OK);
    EXPECT_BYTES(&b, 0xE0, 0x01, 0x8E);
    CHECK_INT_EQ(cx_mqtt_encode_reason(&b, V311, CX_MQTT_DISCONNECT, &r), CX_OK);
    EXPECT_BYTES(&b, 0xE0, 0x00);
    r.rc = 0;
    r.props.present = CX_PROP_BIT(CX_PROP_SESSION_EXPIRY);
    r.props.session_expiry = 0x01020304;
    CHECK_INT_EQ(cx_mqtt_encode_reason(&b, V5, CX_MQTT_DISCONNECT, &r), CX_OK);
    EXPECT_BYTES(&b, 0xE0, 0x07, 0x00, 0x05, 0x11, 0x01, 0x02, 0x03, 0x04);
    /* session expiry is not an AUTH property */
    CHECK_INT_EQ(cx_mqtt_encode_reason(&b, V5, CX_MQTT_AUTH, &r), CX_OK);
    EXPECT_BYTES(&b, 0xF0, 0x00);
    CHECK_INT_EQ(cx_mqtt_encode_reason(&b, V5, CX_MQTT_PINGREQ, &r), CX_EINVAL);
    cx_buf_free(&b);
}

static void test_encode_suback_v3_mapping(void)
{
    cx_buf_t b;
    cx_buf_init(&b, 0);
    static const uint8_t rcs[] = {0x00, 0x01, 0x02, 0x80, 0x87, 0x8F, 0xA2};
    cx_mqtt_suback_t s = {0};
    s.packet_id = 1;
    s.rcs = rcs;
    s.count = sizeof rcs;
    CHECK_INT_EQ(cx_mqtt_encode_suback(&b, V311, CX_MQTT_SUBACK, &s), CX_OK);
    EXPECT_BYTES(&b, 0x90, 0x09, 0x00, 0x01, 0x00, 0x01, 0x02, 0x80, 0x80, 0x80, 0x80);
    CHECK_INT_EQ(cx_mqtt_encode_suback(&b, V5, CX_MQTT_SUBACK, &s), CX_OK);
    EXPECT_BYTES(&b, 0x90, 0x0A, 0x00, 0x01, 0x00, 0x00, 0x01, 0x02, 0x80, 0x87, 0x8F, 0xA2);
    CHECK_INT_EQ(cx_mqtt_encode_suback(&b, V311, CX_MQTT_UNSUBACK, &s), CX_OK);
    EXPECT_BYTES(&b, 0xB0, 0x02, 0x00, 0x01);
    CHECK_INT_EQ(cx_mqtt_encode_suback(&b, V31, CX_MQTT_UNSUBACK, &s), CX_OK);
    EXPECT_BYTES(&b, 0xB0, 0x02, 0x00, 0x01);
    CHECK_INT_EQ(cx_mqtt_encode_suback(&b, V5, CX_MQTT_PUBACK, &s), CX_EINVAL);
    cx_buf_free(&b);
}

static void test_encode_connack_v3(void)
{
    cx_buf_t b;
    cx_buf_init(&b, 0);
    cx_mqtt_connack_t c = {0};
    c.session_present = true;
    CHECK_INT_EQ(cx_mqtt_encode_connack(&b, V311, &c), CX_OK);
    EXPECT_BYTES(&b, 0x20, 0x02, 0x01, 0x00);
    CHECK_INT_EQ(cx_mqtt_encode_connack(&b, V31, &c), CX_OK);
    EXPECT_BYTES(&b, 0x20, 0x02, 0x00, 0x00);
    c.session_present = false;
    c.rc = CX_RC_UNSUPPORTED_PROTOCOL_VERSION;
    CHECK_INT_EQ(cx_mqtt_encode_connack(&b, V311, &c), CX_OK);
    EXPECT_BYTES(&b, 0x20, 0x02, 0x00, 0x01);
    c.rc = CX_V3_CONNACK_NOT_AUTHORIZED;
    CHECK_INT_EQ(cx_mqtt_encode_connack(&b, V31, &c), CX_OK);
    EXPECT_BYTES(&b, 0x20, 0x02, 0x00, 0x05);
    c.rc = CX_RC_BANNED;
    CHECK_INT_EQ(cx_mqtt_encode_connack(&b, V5, &c), CX_OK);
    EXPECT_BYTES(&b, 0x20, 0x03, 0x00, 0x8A, 0x00);
    cx_buf_free(&b);
}

static void test_encode_publish_pid_offset(void)
{
    setup();
    cx_buf_t b;
    cx_buf_init(&b, 0);
    char big[300];
    memset(big, 'p', sizeof big);
    cx_mqtt_publish_t p = {0};
    p.qos = 1;
    p.packet_id = 1;
    p.topic = CX_STR_LIT("x/y");
    p.payload = (cx_str_t){(const uint8_t *)big, sizeof big}; /* 2-byte remaining length */
    p.props.present = CX_PROP_BIT(CX_PROP_CONTENT_TYPE);
    p.props.content_type = CX_STR_LIT("c");
    for (int ver = V31; ver <= V5; ver++) {
        size_t off = 0;
        CHECK_INT_EQ(cx_mqtt_encode_publish(&b, (cx_mqtt_version)ver, &p, &off), CX_OK);
        CHECK_INT_EQ(off, 1 + 2 + 2 + 3);
        uint8_t *d = cx_buf_head(&b);
        CHECK_INT_EQ(d[off], 0x00);
        CHECK_INT_EQ(d[off + 1], 0x01);
        d[off] = 0xAB; /* re-send with another packet identifier */
        d[off + 1] = 0xCD;
        cx_mqtt_publish_t *q = &roundtrip(&b, ver, CLI)->u.publish;
        CHECK_INT_EQ(q->packet_id, 0xABCD);
        CHECK_INT_EQ(q->payload.len, sizeof big);
    }
    /* QoS 0: no packet identifier, and DUP is never written */
    p.qos = 0;
    p.dup = true;
    size_t off = 99;
    CHECK_INT_EQ(cx_mqtt_encode_publish(&b, V311, &p, &off), CX_OK);
    CHECK_INT_EQ(off, 0);
    CHECK_INT_EQ(cx_buf_head(&b)[0], 0x30);
    cx_buf_reset(&b);
    p.qos = 3;
    CHECK_INT_EQ(cx_mqtt_encode_publish(&b, V311, &p, &off), CX_EINVAL);
    cx_buf_free(&b);
}

static void test_encode_publish_v5_bytes(void)
{
    cx_buf_t b;
    cx_buf_init(&b, 0);
    cx_mqtt_user_prop_t up = {CX_STR_LIT("k"), CX_STR_LIT("v")};
    uint32_t sid = 200;
    cx_mqtt_publish_t p = {0};
    p.qos = 2;
    p.retain = true;
    p.packet_id = 7;
    p.topic = CX_STR_LIT("t");
    p.payload = CX_STR_LIT("P");
    p.props.present = CX_PROP_BIT(CX_PROP_PAYLOAD_FORMAT) | CX_PROP_BIT(CX_PROP_TOPIC_ALIAS) |
                      CX_PROP_BIT(CX_PROP_USER_PROPERTY) | CX_PROP_BIT(CX_PROP_SUBSCRIPTION_ID) |
                      CX_PROP_BIT(CX_PROP_RECEIVE_MAX) /* not a PUBLISH property */;
    p.props.payload_format = 1;
    p.props.topic_alias = 0x0102;
    p.props.user_props = &up;
    p.props.user_prop_count = 1;
    p.props.sub_ids = &sid;
    p.props.sub_id_count = 1;
    p.props.receive_max = 9;
    CHECK_INT_EQ(cx_mqtt_encode_publish(&b, V5, &p, NULL), CX_OK);
    EXPECT_BYTES(&b, 0x35, 0x16, 0x00, 0x01, 't', 0x00, 0x07, 0x0F, 0x01, 0x01, 0x0B, 0xC8,
                 0x01, 0x23, 0x01, 0x02, 0x26, 0x00, 0x01, 'k', 0x00, 0x01, 'v', 'P');
    cx_buf_free(&b);
}

static void test_props_size_and_encode_mask(void)
{
    cx_mqtt_props_t p = {0};
    CHECK_INT_EQ(cx_mqtt_props_size(&p, ~0ULL), 1);
    CHECK_INT_EQ(cx_mqtt_props_size(NULL, ~0ULL), 1);
    p.present = CX_PROP_BIT(CX_PROP_PAYLOAD_FORMAT) | CX_PROP_BIT(CX_PROP_SESSION_EXPIRY) |
                CX_PROP_BIT(CX_PROP_CONTENT_TYPE);
    p.payload_format = 1;
    p.session_expiry = 60;
    p.content_type = CX_STR_LIT("abc");
    CHECK_INT_EQ(cx_mqtt_props_size(&p, ~0ULL), 1 + 2 + 5 + 6);
    CHECK_INT_EQ(cx_mqtt_props_size(&p, CX_PROPS_PUBLISH_PASSTHROUGH), 1 + 2 + 6);
    cx_buf_t b;
    cx_buf_init(&b, 0);
    CHECK_INT_EQ(cx_mqtt_props_encode(&b, &p, CX_PROPS_PUBLISH_PASSTHROUGH), CX_OK);
    EXPECT_BYTES(&b, 0x01, 0x01, 0x03, 0x00, 0x03, 'a', 'b', 'c');
    CHECK_INT_EQ(cx_mqtt_props_encode(&b, &p, CX_PROP_BIT(CX_PROP_SESSION_EXPIRY)), CX_OK);
    EXPECT_BYTES(&b, 0x11, 0x00, 0x00, 0x00, 0x3C);
    CHECK_INT_EQ(cx_mqtt_props_encode(&b, &p, 0), CX_OK);
    CHECK_INT_EQ(cx_buf_used(&b), 0);
    /* a 200-byte block needs a 2-byte length */
    char big[200];
    memset(big, 'z', sizeof big);
    p.present = CX_PROP_BIT(CX_PROP_REASON_STRING);
    p.reason_string = (cx_str_t){(const uint8_t *)big, sizeof big};
    CHECK_INT_EQ(cx_mqtt_props_size(&p, ~0ULL), 2 + 3 + 200);
    /* bits that are not property identifiers are ignored */
    p.present = CX_PROP_BIT(0x04) | CX_PROP_BIT(0x30) | CX_PROP_BIT(0);
    CHECK_INT_EQ(cx_mqtt_props_size(&p, ~0ULL), 1);
    cx_buf_free(&b);
}

static void test_encode_too_big(void)
{
    cx_buf_t b;
    cx_buf_init(&b, 0);
    size_t n = 70000;
    uint8_t *big = calloc(1, n);
    CHECK(big != NULL);
    cx_mqtt_publish_t p = {0};
    p.topic = (cx_str_t){big, n};
    CHECK_INT_EQ(cx_mqtt_encode_publish(&b, V311, &p, NULL), CX_ETOOBIG);
    p.topic = CX_STR_LIT("t");
    p.props.present = CX_PROP_BIT(CX_PROP_CONTENT_TYPE);
    p.props.content_type = (cx_str_t){big, n};
    CHECK_INT_EQ(cx_mqtt_encode_publish(&b, V5, &p, NULL), CX_ETOOBIG);
    CHECK_INT_EQ(cx_mqtt_encode_publish(&b, V311, &p, NULL), CX_OK); /* no props in 3.x */
    cx_buf_reset(&b);
    uint32_t sid = CX_MQTT_MAX_REMAINING + 1;
    p.props.present = CX_PROP_BIT(CX_PROP_SUBSCRIPTION_ID);
    p.props.sub_ids = &sid;
    p.props.sub_id_count = 1;
    CHECK_INT_EQ(cx_mqtt_encode_publish(&b, V5, &p, NULL), CX_ETOOBIG);
    cx_mqtt_connect_t c = {0};
    c.protocol_level = 4;
    c.client_id = (cx_str_t){big, n};
    CHECK_INT_EQ(cx_mqtt_encode_connect(&b, &c), CX_ETOOBIG);
    /* payload over the remaining-length limit (not allocated: checked before copying) */
    p.props.present = 0;
    p.payload = (cx_str_t){big, (size_t)CX_MQTT_MAX_REMAINING};
    CHECK_INT_EQ(cx_mqtt_encode_publish(&b, V311, &p, NULL), CX_ETOOBIG);
    CHECK_INT_EQ(cx_buf_used(&b), 0);
    free(big);
    /* the buffer's own cap */
    cx_buf_t small;
    cx_buf_init(&small, 8);
    cx_mqtt_publish_t q = {0};
    q.topic = CX_STR_LIT("topic");
    q.payload = CX_STR_LIT("payload");
    CHECK_INT_EQ(cx_mqtt_encode_publish(&small, V311, &q, NULL), CX_ETOOBIG);
    CHECK_INT_EQ(cx_buf_used(&small), 0);
    cx_buf_free(&small);
    cx_buf_free(&b);
}

static void test_encode_appends(void)
{
    setup();
    cx_buf_t b;
    cx_buf_init(&b, 0);
    CHECK_INT_EQ(cx_mqtt_encode_ping(&b, CX_MQTT_PINGRESP), CX_OK);
    cx_mqtt_ack_t a = {0};
    a.packet_id = 3;
    CHECK_INT_EQ(cx_mqtt_encode_ack(&b, V311, CX_MQTT_PUBACK, &a), CX_OK);
    cx_mqtt_publish_t p = {0};
    p.topic = CX_STR_LIT("a");
    size_t off;
    p.qos = 1;
    p.packet_id = 9;
    CHECK_INT_EQ(cx_mqtt_encode_publish(&b, V311, &p, &off), CX_OK);
    CHECK_INT_EQ(off, 5); /* from the start of the packet, not of the buffer */
    EXPECT_BYTES(&b, 0xD0, 0x00, 0x40, 0x02, 0x00, 0x03, 0x32, 0x05, 0x00, 0x01, 'a', 0x00,
                 0x09);
    cx_buf_free(&b);
}

/* ---- truncation ------------------------------------------------------------------------- */

/* Every prefix of every valid packet: frame() asks for more until the header is complete,
 * decode() fails cleanly. Then every shorter body with a consistent header (so the body
 * parser itself meets the truncation) must not crash and must not claim success for a
 * packet that needed the missing bytes... which we cannot know in general, so only
 * OK/EPROTO are accepted. */
static void test_truncation_every_length(void)
{
    setup();
    build_corpus();
    for (size_t i = 0; i < corpus_n; i++) {
        sample_t *s = &corpus[i];
        size_t hl;
        uint32_t rl;
        CHECK_INT_EQ(cx_mqtt_frame(s->p, s->n, &hl, &rl, NULL), CX_OK);
        for (size_t k = 0; k < s->n; k++) {
            uint8_t *c = keep(s->p, k);
            size_t h2;
            uint32_t r2;
            int frc = cx_mqtt_frame(c, k, &h2, &r2, NULL);
            CHECK_INT_EQ(frc, k < hl ? CX_EAGAIN : CX_OK);
            cx_mqtt_packet_t pkt;
            cx_mqtt_error_t err = {0, NULL};
            int rc = cx_mqtt_decode(c, k, (cx_mqtt_version)s->ver, s->server, &arena, &pkt,
                                    &err);
            if (rc != CX_EPROTO || err.rc != MAL)
                CX_FAIL_("sample %zu prefix %zu: rc %d 0x%02x", i, k, rc, err.rc);
        }
        for (size_t m = 0; m < rl; m++) {
            size_t len;
            uint8_t *c = framed(s->p[0], s->p + hl, m, &len);
            cx_mqtt_packet_t pkt;
            cx_mqtt_error_t err = {0, NULL};
            int rc = cx_mqtt_decode(c, len, (cx_mqtt_version)s->ver, s->server, &arena, &pkt,
                                    &err);
            if (rc != CX_OK && rc != CX_EPROTO)
                CX_FAIL_("sample %zu body %zu: rc %d", i, m, rc);
            if (rc == CX_EPROTO && (!err.msg || !err.rc))
                CX_FAIL_("sample %zu body %zu: no error filled", i, m);
        }
        cx_arena_reset(&arena);
    }
}

/* ---- mutation loop ---------------------------------------------------------------------- */

static uint64_t rng_state = 0x9E3779B97F4A7C15ULL;

static uint32_t rnd(void)
{
    /* xorshift64* */
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return (uint32_t)((rng_state * 0x2545F4914F6CDD1DULL) >> 32);
}

static const uint8_t interesting[] = {0x00, 0x01, 0x02, 0x03, 0x0B, 0x23, 0x26, 0x7F,
                                      0x80, 0x81, 0xFF, 0xFE, '+', '#', '/', 0xC0,
                                      0xED, 0xF4, 0x11, 0x1F};

/* A decoded packet must re-encode, the re-encoding must decode, and encoding that again
 * must give the same bytes (decode and encode are inverse on everything decode accepts). */
static void check_reencode(cx_mqtt_packet_t *pkt, int ver, bool server, cx_buf_t *b1,
                           cx_buf_t *b2, size_t iter)
{
    int v = pkt_version(ver, pkt);
    cx_buf_reset(b1);
    int rc = encode_any(b1, v, pkt);
    if (rc != CX_OK)
        CX_FAIL_("iteration %zu: re-encode of type %d failed: %d", iter, pkt->type, rc);
    cx_mqtt_packet_t p2;
    cx_mqtt_error_t err = {0, NULL};
    uint8_t *c = keep(cx_buf_head(b1), cx_buf_used(b1));
    rc = cx_mqtt_decode(c, cx_buf_used(b1), (cx_mqtt_version)v, server, &arena, &p2, &err);
    if (rc != CX_OK)
        CX_FAIL_("iteration %zu: re-encoded type %d does not decode: %s", iter, pkt->type,
                 err.msg);
    cx_buf_reset(b2);
    CHECK_INT_EQ(encode_any(b2, pkt_version(v, &p2), &p2), CX_OK);
    if (cx_buf_used(b1) != cx_buf_used(b2) ||
        memcmp(cx_buf_head(b1), cx_buf_head(b2), cx_buf_used(b1)) != 0)
        CX_FAIL_("iteration %zu: encode(decode(x)) is not stable for type %d", iter,
                 pkt->type);
}

static void test_mutation_loop(void)
{
    setup();
    build_corpus();
    cx_arena_t small;
    cx_arena_init(&small, 64);
    cx_buf_t b1, b2;
    cx_buf_init(&b1, 0);
    cx_buf_init(&b2, 0);
    uint8_t work[1024];
    size_t accepted = 0, rejected = 0, nomem = 0;
    const size_t iterations = 200000;
    for (size_t it = 0; it < iterations; it++) {
        sample_t *s = &corpus[rnd() % corpus_n];
        CHECK(s->n + 64 <= sizeof work);
        memcpy(work, s->p, s->n);
        size_t n = s->n;
        size_t hl;
        uint32_t rl;
        CHECK_INT_EQ(cx_mqtt_frame(work, n, &hl, &rl, NULL), CX_OK);
        bool reframe = false;
        int rounds = 1 + (int)(rnd() % 3);
        for (int r = 0; r < rounds && n > 0; r++) {
            switch (rnd() % 7) {
            case 0: /* random byte anywhere */
                work[rnd() % n] = (uint8_t)rnd();
                break;
            case 1: /* flip a bit anywhere */
                work[rnd() % n] ^= (uint8_t)(1u << (rnd() % 8));
                break;
            case 2: /* an interesting byte in the body */
                if (n > hl) {
                    work[hl + rnd() % (n - hl)] = interesting[rnd() % sizeof interesting];
                    reframe = true;
                }
                break;
            case 3: /* truncate, header left as is */
                n = rnd() % (n + 1);
                break;
            case 4: /* truncate the body, header fixed up */
                if (n > hl) {
                    n = hl + rnd() % (n - hl + 1);
                    reframe = true;
                }
                break;
            case 5: /* insert bytes in the body, header fixed up */
                if (n >= hl && n + 8 <= sizeof work - 8) {
                    size_t at = hl + (n > hl ? rnd() % (n - hl + 1) : 0);
                    size_t k = 1 + rnd() % 4;
                    memmove(work + at + k, work + at, n - at);
                    for (size_t j = 0; j < k; j++)
                        work[at + j] = (rnd() & 1) ? interesting[rnd() % sizeof interesting]
                                                   : (uint8_t)rnd();
                    n += k;
                    reframe = true;
                }
                break;
            default: /* fixed-header flags */
                if (n)
                    work[0] = (uint8_t)((work[0] & 0xF0) | (rnd() & 0x0F));
                break;
            }
        }
        size_t len = n;
        const uint8_t *pkt_bytes = work;
        if (reframe && n >= hl) {
            /* rebuild a consistent header around the mutated body */
            pkt_bytes = framed(work[0], work + hl, n - hl, &len);
        } else {
            pkt_bytes = keep(work, n);
        }
        int ver = (rnd() % 8 == 0) ? (int)(V31 + rnd() % 3) : s->ver;
        bool server = (rnd() % 8 == 0) ? !s->server : s->server;
        cx_arena_t *a = (rnd() % 16 == 0) ? &small : &arena;
        cx_mqtt_packet_t pkt;
        cx_mqtt_error_t err = {0, NULL};
        int rc = cx_mqtt_decode(pkt_bytes, len, (cx_mqtt_version)ver, server, a, &pkt, &err);
        if (rc == CX_OK) {
            accepted++;
            check_reencode(&pkt, ver, server, &b1, &b2, it);
        } else if (rc == CX_EPROTO) {
            rejected++;
            if (!err.msg || !err.rc)
                CX_FAIL_("iteration %zu: EPROTO without an error", it);
        } else if (rc == CX_ENOMEM) {
            nomem++;
        } else {
            CX_FAIL_("iteration %zu: unexpected rc %d", it, rc);
        }
        cx_arena_reset(&arena);
        cx_arena_reset(&small);
    }
    printf("# mutation: %zu accepted, %zu rejected, %zu out of memory\n", accepted, rejected,
           nomem);
    CHECK(accepted > iterations / 20);
    CHECK(rejected > iterations / 4);
    cx_arena_free(&small);
    cx_buf_free(&b1);
    cx_buf_free(&b2);
}

CX_TEST_MAIN(
    CX_TEST(varint_boundaries),
    CX_TEST(frame_needs_more),
    CX_TEST(frame_fifth_byte_malformed),
    CX_TEST(frame_non_minimal_accepted),
    CX_TEST(remaining_length_mismatch),
    CX_TEST(known_mosquitto_pub_311),
    CX_TEST(known_mosquitto_pub_v5),
    CX_TEST(known_v31_connect),
    CX_TEST(known_subscribe),
    CX_TEST(roundtrip_connect),
    CX_TEST(roundtrip_connack),
    CX_TEST(roundtrip_publish),
    CX_TEST(roundtrip_acks),
    CX_TEST(roundtrip_subscribe),
    CX_TEST(roundtrip_suback_unsuback),
    CX_TEST(roundtrip_unsubscribe),
    CX_TEST(roundtrip_ping),
    CX_TEST(roundtrip_disconnect_auth),
    CX_TEST(roundtrip_corpus_bytes),
    CX_TEST(reserved_type_0),
    CX_TEST(auth_type_before_v5),
    CX_TEST(wrong_direction),
    CX_TEST(bad_fixed_header_flags),
    CX_TEST(v31_dup_on_pubrel_subscribe),
    CX_TEST(publish_qos3),
    CX_TEST(publish_dup_qos0),
    CX_TEST(publish_packet_id_0),
    CX_TEST(publish_truncated),
    CX_TEST(publish_wildcard_topic),
    CX_TEST(publish_topic_bad_utf8),
    CX_TEST(publish_empty_topic),
    CX_TEST(publish_sub_id_from_client),
    CX_TEST(publish_sub_id_repeats_from_server),
    CX_TEST(publish_sub_id_0),
    CX_TEST(publish_sub_id_5_bytes),
    CX_TEST(publish_topic_alias_0),
    CX_TEST(publish_duplicate_property),
    CX_TEST(publish_user_props_repeat),
    CX_TEST(publish_payload_format_range),
    CX_TEST(publish_unknown_property),
    CX_TEST(publish_property_not_allowed),
    CX_TEST(publish_property_truncated),
    CX_TEST(publish_response_topic_wildcard),
    CX_TEST(publish_property_bad_utf8),
    CX_TEST(connect_reserved_flag),
    CX_TEST(connect_will_qos_without_will),
    CX_TEST(connect_will_retain_without_will),
    CX_TEST(connect_will_qos3),
    CX_TEST(connect_password_without_username),
    CX_TEST(connect_unknown_level),
    CX_TEST(connect_name_level_mismatch),
    CX_TEST(connect_unknown_name),
    CX_TEST(connect_truncated_header),
    CX_TEST(connect_trailing_bytes),
    CX_TEST(connect_bridge_bit),
    CX_TEST(connect_client_id_bad_utf8),
    CX_TEST(connect_will_topic_invalid),
    CX_TEST(connect_username_bad_utf8),
    CX_TEST(connect_v31_missing_credentials),
    CX_TEST(connect_v5_receive_max_0),
    CX_TEST(connect_v5_max_packet_size_0),
    CX_TEST(connect_v5_request_info_range),
    CX_TEST(connect_v5_duplicate_property),
    CX_TEST(connect_v5_auth_data_without_method),
    CX_TEST(connect_v5_property_not_allowed),
    CX_TEST(connect_v5_will_property_not_allowed),
    CX_TEST(connack_reserved_flags),
    CX_TEST(connack_v3_unknown_rc),
    CX_TEST(connack_session_present_with_error),
    CX_TEST(connack_v5_rc_not_allowed),
    CX_TEST(connack_v5_property_ranges),
    CX_TEST(connack_v5_missing_properties),
    CX_TEST(ack_packet_id_0),
    CX_TEST(ack_v3_length),
    CX_TEST(ack_v5_short_forms),
    CX_TEST(ack_v5_rc_not_allowed),
    CX_TEST(ack_v5_properties),
    CX_TEST(subscribe_no_filters),
    CX_TEST(subscribe_packet_id_0),
    CX_TEST(subscribe_v3_reserved_bits),
    CX_TEST(subscribe_v3_qos3),
    CX_TEST(subscribe_v5_reserved_bits),
    CX_TEST(subscribe_v5_qos3),
    CX_TEST(subscribe_v5_retain_handling_3),
    CX_TEST(subscribe_v5_no_local_shared),
    CX_TEST(subscribe_invalid_filter),
    CX_TEST(subscribe_filter_bad_utf8),
    CX_TEST(subscribe_invalid_shared),
    CX_TEST(subscribe_truncated_entry),
    CX_TEST(subscribe_v5_sub_id_rules),
    CX_TEST(unsubscribe_no_filters),
    CX_TEST(unsubscribe_packet_id_0),
    CX_TEST(unsubscribe_invalid_filter),
    CX_TEST(unsubscribe_v5_property_not_allowed),
    CX_TEST(suback_rc_rules),
    CX_TEST(suback_no_codes),
    CX_TEST(unsuback_rules),
    CX_TEST(ping_with_body),
    CX_TEST(disconnect_v3_with_body),
    CX_TEST(disconnect_v5_forms),
    CX_TEST(disconnect_v5_rc_by_sender),
    CX_TEST(disconnect_v5_session_expiry_from_server),
    CX_TEST(disconnect_v5_trailing),
    CX_TEST(auth_v5),
    CX_TEST(arena_exhausted),
    CX_TEST(encode_ack_forms),
    CX_TEST(encode_disconnect_forms),
    CX_TEST(encode_suback_v3_mapping),
    CX_TEST(encode_connack_v3),
    CX_TEST(encode_publish_pid_offset),
    CX_TEST(encode_publish_v5_bytes),
    CX_TEST(props_size_and_encode_mask),
    CX_TEST(encode_too_big),
    CX_TEST(encode_appends),
    CX_TEST(truncation_every_length),
    CX_TEST(mutation_loop),
)
