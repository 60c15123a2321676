/* Persistence records (broker/persist_rec.c): every value survives its round trip, and
 * every decoder refuses truncated, padded and lying input without reading past it. */
#include "broker/persist_rec.h"

#include "broker/session.h"
#include "cx_test.h"
#include "util/alloc.h"
#include "util/err.h"

static cx_msg_t *sample_msg(bool props)
{
    cx_mqtt_props_t pr;
    memset(&pr, 0, sizeof pr);
    cx_mqtt_user_prop_t up[2] = {{cx_str_from_cstr("k1"), cx_str_from_cstr("v1")},
                                 {cx_str_from_cstr("k2"), cx_str_from_cstr("")}};
    if (props) {
        pr.present = CX_PROP_BIT(CX_PROP_PAYLOAD_FORMAT) | CX_PROP_BIT(CX_PROP_MESSAGE_EXPIRY) |
                     CX_PROP_BIT(CX_PROP_CONTENT_TYPE) | CX_PROP_BIT(CX_PROP_RESPONSE_TOPIC) |
                     CX_PROP_BIT(CX_PROP_CORRELATION_DATA) | CX_PROP_BIT(CX_PROP_USER_PROPERTY);
        pr.payload_format = 1;
        pr.message_expiry = 60;
        pr.content_type = cx_str_from_cstr("text/plain");
        pr.response_topic = cx_str_from_cstr("reply/here");
        pr.correlation_data = cx_str_from_cstr("\x01\x02");
        pr.user_props = up;
        pr.user_prop_count = 2;
    }
    return cx_msg_new(cx_str_from_cstr("a/b/c"), cx_str_from_cstr("payload"), props ? &pr : NULL,
                      2, true, NULL, 1000);
}

static void test_msg_round_trip(void)
{
    for (int props = 0; props < 2; props++) {
        cx_msg_t *m = sample_msg(props);
        cx_penc_t e;
        cx_penc_init(&e);
        cx_prec_msg(&e, m, 1000, 5000000);
        CHECK(!e.oom);
        /* decoded 10 s of wall time later, on a new monotonic clock */
        cx_msg_t *d = NULL;
        CHECK_INT_EQ(cx_prec_msg_decode(cx_penc_str(&e), 77, 5010000, &d), CX_OK);
        CHECK(d != NULL);
        CHECK_SLICE_EQ(d->topic, "a/b/c");
        CHECK_SLICE_EQ(d->payload, "payload");
        CHECK_INT_EQ(d->qos, 2);
        CHECK(d->retain);
        CHECK_INT_EQ(d->has_expiry, props);
        if (props) {
            CHECK_INT_EQ(d->expiry, 50);              /* 60 s minus the 10 s that passed */
            CHECK_INT_EQ(d->expire_at_ms, 77 + 50000);
            CHECK_SLICE_EQ(d->content_type, "text/plain");
            CHECK_SLICE_EQ(d->response_topic, "reply/here");
            CHECK_INT_EQ(d->correlation_data.len, 2);
            CHECK_INT_EQ(d->payload_format, 1);
            CHECK_INT_EQ(d->user_prop_count, 2);
            CHECK_SLICE_EQ(d->user_props[1].key, "k2");
            CHECK_INT_EQ(d->user_props[1].value.len, 0);
        }
        /* every truncation and one byte too many are refused */
        cx_str_t full = cx_penc_str(&e);
        for (size_t n = 0; n < full.len; n++) {
            cx_msg_t *x = NULL;
            int rc = cx_prec_msg_decode((cx_str_t){full.p, n}, 77, 5010000, &x);
            CHECK(rc == CX_EFORMAT);
            CHECK(x == NULL);
        }
        uint8_t *longer = cx_malloc(full.len + 1);
        memcpy(longer, full.p, full.len);
        longer[full.len] = 0;
        cx_msg_t *x = NULL;
        CHECK_INT_EQ(cx_prec_msg_decode((cx_str_t){longer, full.len + 1}, 77, 5010000, &x),
                     CX_EFORMAT);
        cx_free(longer);
        cx_msg_unref(d);
        cx_msg_unref(m);
        cx_penc_free(&e);
    }
}

static void test_msg_expired_and_lies(void)
{
    cx_msg_t *m = sample_msg(true);
    cx_penc_t e;
    cx_penc_init(&e);
    cx_prec_msg(&e, m, 1000, 5000000);
    cx_msg_t *d = NULL;
    /* 61 s later it has expired */
    CHECK_INT_EQ(cx_prec_msg_decode(cx_penc_str(&e), 0, 5061000, &d), CX_ENOTFOUND);
    CHECK(d == NULL);
    /* a user-property count far beyond what the bytes hold */
    uint8_t *b = cx_malloc(e.len);
    memcpy(b, e.p, e.len);
    /* format, flags, payload format, deadline, topic, payload, content type, response
     * topic, correlation data: then the count */
    size_t off = 1 + 1 + 1 + 8 + (4 + 5) + (4 + 7) + (4 + 10) + (4 + 10) + (4 + 2);
    b[off] = 0xff, b[off + 1] = 0xff, b[off + 2] = 0xff, b[off + 3] = 0x7f;
    CHECK_INT_EQ(cx_prec_msg_decode((cx_str_t){b, e.len}, 0, 5000000, &d), CX_EFORMAT);
    /* QoS 3, an unknown format byte, an invalid topic */
    memcpy(b, e.p, e.len);
    b[1] |= 3;
    CHECK_INT_EQ(cx_prec_msg_decode((cx_str_t){b, e.len}, 0, 5000000, &d), CX_EFORMAT);
    memcpy(b, e.p, e.len);
    b[0] = 9;
    CHECK_INT_EQ(cx_prec_msg_decode((cx_str_t){b, e.len}, 0, 5000000, &d), CX_EFORMAT);
    cx_free(b);
    cx_penc_free(&e);
    cx_msg_unref(m);
    cx_msg_t *w = cx_msg_new(cx_str_from_cstr("a/#"), cx_str_from_cstr("x"), NULL, 0, false,
                             NULL, 0);
    cx_prec_msg(&e, w, 0, 0);
    CHECK_INT_EQ(cx_prec_msg_decode(cx_penc_str(&e), 0, 0, &d), CX_EFORMAT);
    cx_penc_free(&e);
    cx_msg_unref(w);
}

static void test_session_sub_queue_round_trip(void)
{
    cx_penc_t e;
    cx_penc_init(&e);
    cx_prec_session_t s = {.protocol = 5, .expiry = 3600, .gen = 42, .disconnected_wall = 123};
    cx_prec_session(&e, &s);
    cx_prec_session_t s2;
    CHECK_INT_EQ(cx_prec_session_decode(cx_penc_str(&e), &s2), CX_OK);
    CHECK(s2.protocol == 5 && s2.expiry == 3600 && s2.gen == 42 && s2.disconnected_wall == 123);
    for (size_t n = 0; n < e.len; n++)
        CHECK_INT_EQ(cx_prec_session_decode((cx_str_t){e.p, n}, &s2), CX_EFORMAT);
    cx_penc_free(&e);

    cx_sub_opts_t o = {.qos = 2, .no_local = true, .retain_as_published = true,
                       .retain_handling = 2, .sub_id = 268435455};
    cx_prec_sub(&e, &o);
    cx_sub_opts_t o2;
    CHECK_INT_EQ(cx_prec_sub_decode(cx_penc_str(&e), &o2), CX_OK);
    CHECK(o2.qos == 2 && o2.no_local && o2.retain_as_published && o2.retain_handling == 2 &&
          o2.sub_id == 268435455);
    cx_penc_free(&e);

    cx_prec_key_sub(&e, 7, cx_str_from_cstr("grp"), cx_str_from_cstr("x/+/y"));
    uint64_t gen;
    cx_str_t g, f;
    CHECK_INT_EQ(cx_prec_sub_key_decode(cx_penc_str(&e), &gen, &g, &f), CX_OK);
    CHECK_INT_EQ(gen, 7);
    CHECK_SLICE_EQ(g, "grp");
    CHECK_SLICE_EQ(f, "x/+/y");
    CHECK_INT_EQ(cx_prec_sub_key_decode((cx_str_t){e.p, 12}, &gen, &g, &f), CX_EFORMAT);
    cx_penc_free(&e);

    uint32_t ids[3] = {1, 2, 99};
    cx_prec_queue_t q = {.qos = 2, .retain = true, .state = CX_QE_WAIT_COMP, .packet_id = 9,
                         .order = 1234, .share_hash = 77, .nsub = 3, .sub_ids = ids};
    cx_prec_queue(&e, &q);
    cx_prec_queue_t q2;
    CHECK_INT_EQ(cx_prec_queue_decode(cx_penc_str(&e), &q2), CX_OK);
    CHECK(q2.qos == 2 && q2.retain && q2.state == CX_QE_WAIT_COMP && q2.packet_id == 9 &&
          q2.order == 1234 && q2.share_hash == 77 && q2.nsub == 3);
    CHECK_INT_EQ(cx_prec_queue_sub_id(&q2, 2), 99);
    for (size_t n = 0; n < e.len; n++)
        CHECK_INT_EQ(cx_prec_queue_decode((cx_str_t){e.p, n}, &q2), CX_EFORMAT);
    cx_penc_free(&e);
    /* impossible states: WAIT_COMP for QoS 1, a sent entry without packet id, QoS 0 */
    cx_prec_queue_t bad[3] = {
        {.qos = 1, .state = CX_QE_WAIT_COMP, .packet_id = 1},
        {.qos = 2, .state = CX_QE_WAIT_ACK, .packet_id = 0},
        {.qos = 0, .state = CX_QE_QUEUED},
    };
    for (int i = 0; i < 3; i++) {
        cx_prec_queue(&e, &bad[i]);
        CHECK_INT_EQ(cx_prec_queue_decode(cx_penc_str(&e), &q2), CX_EFORMAT);
        cx_penc_free(&e);
    }
}

static void test_big_value_spills_to_heap(void)
{
    cx_penc_t e;
    cx_penc_init(&e);
    static char big[100000];
    memset(big, 'x', sizeof big);
    cx_msg_t *m = cx_msg_new(cx_str_from_cstr("t"), (cx_str_t){(const uint8_t *)big, sizeof big},
                             NULL, 1, false, NULL, 0);
    cx_prec_msg(&e, m, 0, 0);
    CHECK(!e.oom);
    CHECK(e.p != e.local);
    cx_msg_t *d = NULL;
    CHECK_INT_EQ(cx_prec_msg_decode(cx_penc_str(&e), 0, 0, &d), CX_OK);
    CHECK_INT_EQ(d->payload.len, sizeof big);
    cx_msg_unref(d);
    cx_msg_unref(m);
    cx_penc_free(&e);
}

CX_TEST_MAIN(
    CX_TEST(msg_round_trip),
    CX_TEST(msg_expired_and_lies),
    CX_TEST(session_sub_queue_round_trip),
    CX_TEST(big_value_spills_to_heap),
)
