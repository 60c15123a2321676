/* test_validate.c: UTF-8, topic names, topic filters, $share parsing, reason codes. */
#include "cx_test.h"
#include "mqtt/codec.h"
#include "mqtt/codec_internal.h"

static cx_str_t S(const char *s)
{
    return cx_str_from_cstr(s);
}

static cx_str_t B(const void *p, size_t n)
{
    return (cx_str_t){(const uint8_t *)p, n};
}

static void test_utf8_ascii(void)
{
    CHECK(cx_mqtt_utf8_is_valid(S("")));
    CHECK(cx_mqtt_utf8_is_valid(S("a")));
    CHECK(cx_mqtt_utf8_is_valid(S("hello/world/this/is/a/longer/ascii/string")));
    /* Control characters other than U+0000 are discouraged but legal (§1.5.4). */
    CHECK(cx_mqtt_utf8_is_valid(S("\x01\x1f\x7f")));
}

static void test_utf8_nul_rejected(void)
{
    /* [MQTT-1.5.4-2] U+0000 at every position, short and inside the 8-byte fast path. */
    char buf[40];
    for (size_t len = 1; len < sizeof buf; len++)
        for (size_t pos = 0; pos < len; pos++) {
            memset(buf, 'a', len);
            buf[pos] = 0;
            CHECK(!cx_mqtt_utf8_is_valid(B(buf, len)));
        }
}

static void test_utf8_multibyte_valid(void)
{
    CHECK(cx_mqtt_utf8_is_valid(S("caf\xc3\xa9")));              /* é */
    CHECK(cx_mqtt_utf8_is_valid(S("\xe2\x82\xac")));             /* € */
    CHECK(cx_mqtt_utf8_is_valid(S("\xf0\x9f\x98\x80")));         /* 😀 */
    CHECK(cx_mqtt_utf8_is_valid(S("\xef\xbb\xbf")));             /* BOM U+FEFF stays */
    CHECK(cx_mqtt_utf8_is_valid(S("\xc2\x80")));                 /* U+0080 lowest 2-byte */
    CHECK(cx_mqtt_utf8_is_valid(S("\xe0\xa0\x80")));             /* U+0800 lowest 3-byte */
    CHECK(cx_mqtt_utf8_is_valid(S("\xed\x9f\xbf")));             /* U+D7FF just below */
    CHECK(cx_mqtt_utf8_is_valid(S("\xee\x80\x80")));             /* U+E000 just above */
    CHECK(cx_mqtt_utf8_is_valid(S("\xf0\x90\x80\x80")));         /* U+10000 */
    CHECK(cx_mqtt_utf8_is_valid(S("\xf4\x8f\xbf\xbf")));         /* U+10FFFF */
    CHECK(cx_mqtt_utf8_is_valid(S("\xef\xbf\xbf")));             /* U+FFFF noncharacter */
    CHECK(cx_mqtt_utf8_is_valid(S("abcdefgh\xc3\xa9ijklmnop"))); /* mixed with fast path */
}

static void test_utf8_surrogates_rejected(void)
{
    CHECK(!cx_mqtt_utf8_is_valid(S("\xed\xa0\x80"))); /* U+D800 */
    CHECK(!cx_mqtt_utf8_is_valid(S("\xed\xbf\xbf"))); /* U+DFFF */
    CHECK(!cx_mqtt_utf8_is_valid(S("abcdefghij\xed\xb0\x80")));
}

static void test_utf8_overlongs_rejected(void)
{
    CHECK(!cx_mqtt_utf8_is_valid(S("\xc0\x80")));         /* overlong NUL */
    CHECK(!cx_mqtt_utf8_is_valid(S("\xc1\xbf")));         /* overlong 0x7F */
    CHECK(!cx_mqtt_utf8_is_valid(S("\xe0\x80\xaf")));     /* overlong '/' */
    CHECK(!cx_mqtt_utf8_is_valid(S("\xe0\x9f\xbf")));     /* overlong U+07FF */
    CHECK(!cx_mqtt_utf8_is_valid(S("\xf0\x80\x80\xaf"))); /* overlong '/' */
    CHECK(!cx_mqtt_utf8_is_valid(S("\xf0\x8f\xbf\xbf"))); /* overlong U+FFFF */
}

static void test_utf8_bad_sequences_rejected(void)
{
    CHECK(!cx_mqtt_utf8_is_valid(S("\x80")));             /* lone continuation */
    CHECK(!cx_mqtt_utf8_is_valid(S("\xbf")));
    CHECK(!cx_mqtt_utf8_is_valid(S("\xc3")));             /* truncated 2-byte */
    CHECK(!cx_mqtt_utf8_is_valid(S("\xe2\x82")));         /* truncated 3-byte */
    CHECK(!cx_mqtt_utf8_is_valid(S("\xf0\x9f\x98")));     /* truncated 4-byte */
    CHECK(!cx_mqtt_utf8_is_valid(S("\xc3\x28")));         /* bad continuation */
    CHECK(!cx_mqtt_utf8_is_valid(S("\xe2\x28\xa1")));
    CHECK(!cx_mqtt_utf8_is_valid(S("\xe2\x82\x28")));
    CHECK(!cx_mqtt_utf8_is_valid(S("\xf0\x9f\x28\x80")));
    CHECK(!cx_mqtt_utf8_is_valid(S("\xf4\x90\x80\x80"))); /* above U+10FFFF */
    CHECK(!cx_mqtt_utf8_is_valid(S("\xf5\x80\x80\x80")));
    CHECK(!cx_mqtt_utf8_is_valid(S("\xff")));
    CHECK(!cx_mqtt_utf8_is_valid(S("\xfe")));
    CHECK(!cx_mqtt_utf8_is_valid(S("abcdefghijklmnop\xff")));
}

/* A reference UTF-8 decoder, byte by byte, to cross-check the fast one on every 1- and
 * 2-byte input and on random longer inputs. */
static bool ref_utf8(const uint8_t *p, size_t n)
{
    size_t i = 0;
    while (i < n) {
        uint32_t c = p[i], cp;
        size_t k;
        if (c < 0x80) {
            cp = c;
            k = 1;
        } else if ((c & 0xE0) == 0xC0) {
            cp = c & 0x1F;
            k = 2;
        } else if ((c & 0xF0) == 0xE0) {
            cp = c & 0x0F;
            k = 3;
        } else if ((c & 0xF8) == 0xF0) {
            cp = c & 0x07;
            k = 4;
        } else {
            return false;
        }
        if (i + k > n)
            return false;
        for (size_t j = 1; j < k; j++) {
            if ((p[i + j] & 0xC0) != 0x80)
                return false;
            cp = cp << 6 | (p[i + j] & 0x3F);
        }
        static const uint32_t min[5] = {0, 0, 0x80, 0x800, 0x10000};
        if (cp < min[k] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF) || cp == 0)
            return false;
        i += k;
    }
    return true;
}

static void test_utf8_matches_reference(void)
{
    uint8_t b[4];
    for (unsigned x = 0; x < 256; x++) {
        b[0] = (uint8_t)x;
        CHECK_INT_EQ(cx_mqtt_utf8_is_valid(B(b, 1)), ref_utf8(b, 1));
        for (unsigned y = 0; y < 256; y++) {
            b[1] = (uint8_t)y;
            CHECK_INT_EQ(cx_mqtt_utf8_is_valid(B(b, 2)), ref_utf8(b, 2));
        }
    }
    /* All 3-byte sequences starting with E0..F4 and a handful of 4-byte ones. */
    for (unsigned x = 0xE0; x <= 0xF4; x++)
        for (unsigned y = 0x70; y < 0xD0; y++)
            for (unsigned z = 0x70; z < 0xD0; z++) {
                b[0] = (uint8_t)x, b[1] = (uint8_t)y, b[2] = (uint8_t)z, b[3] = 0x80;
                CHECK_INT_EQ(cx_mqtt_utf8_is_valid(B(b, 3)), ref_utf8(b, 3));
                CHECK_INT_EQ(cx_mqtt_utf8_is_valid(B(b, 4)), ref_utf8(b, 4));
            }
    uint32_t s = 12345;
    uint8_t buf[64];
    for (int it = 0; it < 200000; it++) {
        size_t n = 0;
        s = s * 1103515245u + 12345u;
        size_t len = (s >> 16) % sizeof buf;
        for (; n < len; n++) {
            s = s * 1103515245u + 12345u;
            unsigned r = s >> 16;
            /* Mostly ASCII, some high bytes, so both paths are exercised. */
            buf[n] = (r & 7) ? (uint8_t)(0x20 + (r >> 3) % 0x5F) : (uint8_t)(r >> 8);
        }
        CHECK_INT_EQ(cx_mqtt_utf8_is_valid(B(buf, len)), ref_utf8(buf, len));
    }
}

/* The last (< 8) bytes are checked with one overlapping word load; cover multi-byte
 * characters straddling that word and bad bytes inside it. */
static void test_utf8_tail_word(void)
{
    CHECK(cx_mqtt_utf8_is_valid(S("abcdefghij\xc3\xa9")));
    CHECK(cx_mqtt_utf8_is_valid(S("abcdefgh\xe2\x82\xac")));
    CHECK(cx_mqtt_utf8_is_valid(S("abcdefghijklmn\xf0\x9f\x98\x80")));
    CHECK(cx_mqtt_utf8_is_valid(S("abcdefg\xc3\xa9xyz")));
    CHECK(!cx_mqtt_utf8_is_valid(S("abcdefghij\xc3")));
    CHECK(!cx_mqtt_utf8_is_valid(S("abcdefghij\x80")));
    CHECK(!cx_mqtt_utf8_is_valid(S("abcdefghijklmn\xf0\x9f\x98")));
    CHECK(!cx_mqtt_utf8_is_valid(B("abcdefghijk\0m", 13)));
    CHECK(cx_mqtt_topic_name_is_valid(S("abcdefghij\xc3\xa9")));
    CHECK(!cx_mqtt_topic_name_is_valid(S("abcdefghij\xc3\xa9+")));
    CHECK(!cx_mqtt_topic_name_is_valid(S("abcdefgh\xe2\x82\xac#")));
    CHECK(!cx_mqtt_topic_name_is_valid(S("abcdefghi+")));
    /* every length 8..40, a bad byte at every position of the last 8 */
    char buf[41];
    for (size_t len = 8; len <= 40; len++)
        for (size_t pos = len - 8; pos < len; pos++) {
            memset(buf, 'q', len);
            buf[pos] = '#';
            CHECK(!cx_mqtt_topic_name_is_valid(B(buf, len)));
            CHECK(cx_mqtt_utf8_is_valid(B(buf, len)));
            buf[pos] = (char)0xFF;
            CHECK(!cx_mqtt_utf8_is_valid(B(buf, len)));
        }
}

static void test_topic_name(void)
{
    CHECK(cx_mqtt_topic_name_is_valid(S("a")));
    CHECK(cx_mqtt_topic_name_is_valid(S("/")));
    CHECK(cx_mqtt_topic_name_is_valid(S("//")));
    CHECK(cx_mqtt_topic_name_is_valid(S("sport/tennis/player1")));
    CHECK(cx_mqtt_topic_name_is_valid(S("$SYS/broker/uptime")));
    CHECK(cx_mqtt_topic_name_is_valid(S(" ")));
    CHECK(cx_mqtt_topic_name_is_valid(S("caf\xc3\xa9/x")));
    CHECK(!cx_mqtt_topic_name_is_valid(S("")));
    CHECK(!cx_mqtt_topic_name_is_valid(S("+")));
    CHECK(!cx_mqtt_topic_name_is_valid(S("#")));
    CHECK(!cx_mqtt_topic_name_is_valid(S("a/+/b")));
    CHECK(!cx_mqtt_topic_name_is_valid(S("a/b#")));
    CHECK(!cx_mqtt_topic_name_is_valid(S("abcdefghijklmnop+q")));
    CHECK(!cx_mqtt_topic_name_is_valid(S("abcdefghijklmnopq#")));
    CHECK(!cx_mqtt_topic_name_is_valid(B("a\0b", 3)));
    CHECK(!cx_mqtt_topic_name_is_valid(S("a\xed\xa0\x80")));
    /* '+'/'#' at every position of a long name */
    char buf[33];
    for (size_t pos = 0; pos < 32; pos++) {
        memset(buf, 'x', 32);
        buf[32] = 0;
        buf[pos] = '+';
        CHECK(!cx_mqtt_topic_name_is_valid(S(buf)));
        buf[pos] = '#';
        CHECK(!cx_mqtt_topic_name_is_valid(S(buf)));
    }
}

static void test_topic_filter_valid(void)
{
    static const char *const ok[] = {
        "a", "#", "+", "/", "+/+", "/+", "+/", "a/#", "a/+/b", "a/+/#", "+/#", "/#",
        "sport/tennis/+", "sport/+/player1", "$SYS/#", "a//b", "abcdefghijklmnop/+/#",
        "$share", "$shared/x", "caf\xc3\xa9/+",
    };
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++)
        if (!cx_mqtt_topic_filter_is_valid(S(ok[i])))
            CX_FAIL_("filter \"%s\" rejected", ok[i]);
}

static void test_topic_filter_invalid(void)
{
    static const char *const bad[] = {
        "", "a+", "+a", "a/b+", "a/+b", "a/b+/c", "##", "#/", "a/#/b", "a#", "a/b#",
        "sport/tennis#", "++", "+#", "a/++", "abcdefghijklmnop/x+", "abcdefghijklmnop#",
        "\xc0\x80",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        if (cx_mqtt_topic_filter_is_valid(S(bad[i])))
            CX_FAIL_("filter \"%s\" accepted", bad[i]);
    CHECK(!cx_mqtt_topic_filter_is_valid(B("a/\0", 3)));
}

static void test_shared_parse(void)
{
    cx_str_t g, f;
    CHECK_INT_EQ(cx_mqtt_shared_parse(S("$share/grp/a/b"), &g, &f), 1);
    CHECK_SLICE_EQ(g, "grp");
    CHECK_SLICE_EQ(f, "a/b");
    CHECK_INT_EQ(cx_mqtt_shared_parse(S("$share/g/#"), &g, &f), 1);
    CHECK_SLICE_EQ(g, "g");
    CHECK_SLICE_EQ(f, "#");
    CHECK_INT_EQ(cx_mqtt_shared_parse(S("$share/g/+/x/#"), &g, &f), 1);
    CHECK_SLICE_EQ(f, "+/x/#");
    CHECK_INT_EQ(cx_mqtt_shared_parse(S("$share/g//"), &g, &f), 1);
    CHECK_SLICE_EQ(f, "/");
    CHECK_INT_EQ(cx_mqtt_shared_parse(S("a/b"), &g, &f), 0);
    CHECK_SLICE_EQ(f, "a/b");
    CHECK_INT_EQ(g.len, 0);
    CHECK_INT_EQ(cx_mqtt_shared_parse(S("$share"), &g, &f), 0);
    CHECK_INT_EQ(cx_mqtt_shared_parse(S("$SHARE/g/x"), &g, &f), 0);
    CHECK_INT_EQ(cx_mqtt_shared_parse(S("$share/g/x"), NULL, NULL), 1);

    /* [MQTT-4.8.2-1] / [MQTT-4.8.2-2] */
    CHECK_INT_EQ(cx_mqtt_shared_parse(S("$share/"), &g, &f), -1);
    CHECK_INT_EQ(cx_mqtt_shared_parse(S("$share//x"), &g, &f), -1);
    CHECK_INT_EQ(cx_mqtt_shared_parse(S("$share/g"), &g, &f), -1);
    CHECK_INT_EQ(cx_mqtt_shared_parse(S("$share/g/"), &g, &f), -1);
    CHECK_INT_EQ(cx_mqtt_shared_parse(S("$share/g+/x"), &g, &f), -1);
    CHECK_INT_EQ(cx_mqtt_shared_parse(S("$share/+/x"), &g, &f), -1);
    CHECK_INT_EQ(cx_mqtt_shared_parse(S("$share/#/x"), &g, &f), -1);
    CHECK_INT_EQ(cx_mqtt_shared_parse(S("$share/g/a/#/b"), &g, &f), -1);
    CHECK_INT_EQ(cx_mqtt_shared_parse(S("$share/g/a+"), &g, &f), -1);
    CHECK_INT_EQ(cx_mqtt_shared_parse(S("$share/\xff/a"), &g, &f), -1);
}

static void test_filter_check_problems(void)
{
    bool sh;
    CHECK_INT_EQ(cx_mqtt_filter_check(S("a/b"), &sh), CX_FILTER_OK);
    CHECK(!sh);
    CHECK_INT_EQ(cx_mqtt_filter_check(S("$share/g/a"), &sh), CX_FILTER_OK);
    CHECK(sh);
    CHECK_INT_EQ(cx_mqtt_filter_check(S(""), &sh), CX_FILTER_EMPTY);
    CHECK_INT_EQ(cx_mqtt_filter_check(S("\xff"), &sh), CX_FILTER_UTF8);
    CHECK_INT_EQ(cx_mqtt_filter_check(S("a+"), &sh), CX_FILTER_PLUS);
    CHECK_INT_EQ(cx_mqtt_filter_check(S("a/#/b"), &sh), CX_FILTER_HASH);
    CHECK_INT_EQ(cx_mqtt_filter_check(S("$share//a"), &sh), CX_FILTER_SHARE_NAME);
    CHECK_INT_EQ(cx_mqtt_filter_check(S("$share/g"), &sh), CX_FILTER_SHARE_NAME);
    CHECK_INT_EQ(cx_mqtt_filter_check(S("$share/g#/a"), &sh), CX_FILTER_SHARE_WILD);
    CHECK_INT_EQ(cx_mqtt_filter_check(S("$share/g/"), &sh), CX_FILTER_SHARE_EMPTY);
    CHECK_INT_EQ(cx_mqtt_filter_check(S("$share/g/a#"), &sh), CX_FILTER_HASH);
}

static void test_rc_to_v3(void)
{
    CHECK_INT_EQ(cx_mqtt_rc_to_v3_connack(CX_RC_SUCCESS), CX_V3_CONNACK_ACCEPTED);
    CHECK_INT_EQ(cx_mqtt_rc_to_v3_connack(0x84), CX_V3_CONNACK_BAD_PROTOCOL);
    CHECK_INT_EQ(cx_mqtt_rc_to_v3_connack(0x85), CX_V3_CONNACK_ID_REJECTED);
    CHECK_INT_EQ(cx_mqtt_rc_to_v3_connack(0x86), CX_V3_CONNACK_BAD_CREDENTIALS);
    CHECK_INT_EQ(cx_mqtt_rc_to_v3_connack(0x87), CX_V3_CONNACK_NOT_AUTHORIZED);
    CHECK_INT_EQ(cx_mqtt_rc_to_v3_connack(0x88), CX_V3_CONNACK_SERVER_UNAVAILABLE);
    CHECK_INT_EQ(cx_mqtt_rc_to_v3_connack(0x89), CX_V3_CONNACK_SERVER_UNAVAILABLE);
    CHECK_INT_EQ(cx_mqtt_rc_to_v3_connack(0x8A), CX_V3_CONNACK_NOT_AUTHORIZED);
    CHECK_INT_EQ(cx_mqtt_rc_to_v3_connack(0x8C), CX_V3_CONNACK_BAD_CREDENTIALS);
    CHECK_INT_EQ(cx_mqtt_rc_to_v3_connack(0x80), CX_V3_CONNACK_SERVER_UNAVAILABLE);
    CHECK_INT_EQ(cx_mqtt_rc_to_v3_connack(0x97), CX_V3_CONNACK_SERVER_UNAVAILABLE);
    CHECK_INT_EQ(cx_mqtt_rc_to_v3_connack(0x9C), CX_V3_CONNACK_SERVER_UNAVAILABLE);
    CHECK_INT_EQ(cx_mqtt_rc_to_v3_connack(0x90), CX_V3_CONNACK_NOT_AUTHORIZED);
    for (unsigned i = 0; i <= 5; i++) /* idempotent on 3.x codes */
        CHECK_INT_EQ(cx_mqtt_rc_to_v3_connack((uint8_t)i), i);
    for (unsigned i = 0; i < 256; i++)
        CHECK(cx_mqtt_rc_to_v3_connack((uint8_t)i) <= 5);
}

static void test_names(void)
{
    CHECK_STR_EQ(cx_mqtt_rc_name(0x8E), "Session taken over");
    CHECK_STR_EQ(cx_mqtt_rc_name(0x00), "Success");
    CHECK_STR_EQ(cx_mqtt_rc_name(0xA2), "Wildcard Subscriptions not supported");
    CHECK_STR_EQ(cx_mqtt_rc_name(0x55), "Unknown reason code");
    for (unsigned i = 0; i < 256; i++)
        CHECK(cx_mqtt_rc_name((uint8_t)i) != NULL);
    CHECK_STR_EQ(cx_mqtt_type_name(CX_MQTT_CONNECT), "CONNECT");
    CHECK_STR_EQ(cx_mqtt_type_name(CX_MQTT_UNSUBACK), "UNSUBACK");
    CHECK_STR_EQ(cx_mqtt_type_name(CX_MQTT_AUTH), "AUTH");
    CHECK_STR_EQ(cx_mqtt_type_name((cx_mqtt_type)0), "RESERVED");
    CHECK_STR_EQ(cx_mqtt_type_name((cx_mqtt_type)99), "UNKNOWN");
}

CX_TEST_MAIN(
    CX_TEST(utf8_ascii),
    CX_TEST(utf8_nul_rejected),
    CX_TEST(utf8_multibyte_valid),
    CX_TEST(utf8_surrogates_rejected),
    CX_TEST(utf8_overlongs_rejected),
    CX_TEST(utf8_bad_sequences_rejected),
    CX_TEST(utf8_matches_reference),
    CX_TEST(utf8_tail_word),
    CX_TEST(topic_name),
    CX_TEST(topic_filter_valid),
    CX_TEST(topic_filter_invalid),
    CX_TEST(shared_parse),
    CX_TEST(filter_check_problems),
    CX_TEST(rc_to_v3),
    CX_TEST(names),
)
