/* test_proxy.c: PROXY protocol v1/v2 header parser (core/net/proxy.c).
 *
 * Layout: CRC32C; v1 valid lines and every malformed form; v2 for each command and family,
 * TLVs (nested SSL with CN, CRC32C, limits, overruns); version selection and garbage;
 * truncation at every byte; a fixed-seed mutation loop for the sanitizers.
 *
 * Inputs are copied into exactly-sized heap blocks so that AddressSanitizer catches any
 * read past the end. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/un.h>

#include "cx_test.h"
#include "net/proxy.h"
#include "util/err.h"

/* ---- helpers -------------------------------------------------------------------------- */

#define RING 64
static uint8_t *ring[RING];
static size_t ring_pos;

static uint8_t *keep(const void *p, size_t n)
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

static const unsigned BOTH = CX_PROXY_V1 | CX_PROXY_V2;

static int parse(const void *p, size_t n, unsigned versions, cx_proxy_info_t *info,
                 const char **err)
{
    return cx_proxy_parse(keep(p, n), n, versions, info, err);
}

/* "addr port" of a parsed AF_INET/AF_INET6 address, or "unix:<path>". */
static const char *fmt(const struct sockaddr_storage *ss, socklen_t len)
{
    static char out[4][160];
    static int slot;
    char *o = out[slot++ % 4];
    char a[INET6_ADDRSTRLEN];
    if (ss->ss_family == AF_INET) {
        const struct sockaddr_in *s = (const struct sockaddr_in *)ss;
        CHECK_INT_EQ(len, sizeof *s);
        inet_ntop(AF_INET, &s->sin_addr, a, sizeof a);
        snprintf(o, 160, "%s %u", a, ntohs(s->sin_port));
    } else if (ss->ss_family == AF_INET6) {
        const struct sockaddr_in6 *s = (const struct sockaddr_in6 *)ss;
        CHECK_INT_EQ(len, sizeof *s);
        inet_ntop(AF_INET6, &s->sin6_addr, a, sizeof a);
        snprintf(o, 160, "%s %u", a, ntohs(s->sin6_port));
    } else if (ss->ss_family == AF_UNIX) {
        const struct sockaddr_un *s = (const struct sockaddr_un *)ss;
        size_t n = len - offsetof(struct sockaddr_un, sun_path);
        snprintf(o, 160, "unix:%.*s", (int)n, s->sun_path[0] ? s->sun_path : s->sun_path + 1);
    } else {
        snprintf(o, 160, "family %d", ss->ss_family);
    }
    return o;
}

static void expect_fail(int line, const void *p, size_t n, unsigned versions)
{
    cx_proxy_info_t info;
    const char *err = NULL;
    int rc = parse(p, n, versions, &info, &err);
    if (rc != CX_EPROTO)
        CX_FAIL_("line %d: want CX_EPROTO, got %s", line, cx_errname(rc));
    if (!err || !*err)
        CX_FAIL_("line %d: no error message", line);
}

#define EXPECT_FAIL(p, n) expect_fail(__LINE__, p, n, BOTH)
#define EXPECT_FAIL_S(s) expect_fail(__LINE__, s, strlen(s), BOTH)

/* Every strict prefix of a valid header is EAGAIN; the whole gives rc. */
static void check_prefixes(const uint8_t *p, size_t n, unsigned versions)
{
    for (size_t k = 0; k < n; k++) {
        cx_proxy_info_t info;
        const char *err = NULL;
        int rc = parse(p, k, versions, &info, &err);
        if (rc != CX_EAGAIN)
            CX_FAIL_("prefix %zu of %zu: %s (%s)", k, n, cx_errname(rc), err ? err : "");
    }
}

/* ---- v2 builder ----------------------------------------------------------------------- */

typedef struct hdr {
    uint8_t b[70000];
    size_t len;
} hdr_t;

static const uint8_t sig[12] = {0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D,
                                0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A};

static void put(hdr_t *h, const void *p, size_t n)
{
    CHECK(h->len + n <= sizeof h->b);
    memcpy(h->b + h->len, p, n);
    h->len += n;
}

static void put16(hdr_t *h, uint16_t v)
{
    uint8_t b[2] = {(uint8_t)(v >> 8), (uint8_t)v};
    put(h, b, 2);
}

static void put32(hdr_t *h, uint32_t v)
{
    uint8_t b[4] = {(uint8_t)(v >> 24), (uint8_t)(v >> 16), (uint8_t)(v >> 8), (uint8_t)v};
    put(h, b, 4);
}

/* Starts a header: signature, ver_cmd, fam; the length is set by finish(). */
static void start(hdr_t *h, uint8_t ver_cmd, uint8_t fam)
{
    h->len = 0;
    put(h, sig, 12);
    uint8_t b[2] = {ver_cmd, fam};
    put(h, b, 2);
    put16(h, 0);
}

static void inet4(hdr_t *h, const char *src, const char *dst, uint16_t sp, uint16_t dp)
{
    uint8_t a[4];
    CHECK(inet_pton(AF_INET, src, a) == 1);
    put(h, a, 4);
    CHECK(inet_pton(AF_INET, dst, a) == 1);
    put(h, a, 4);
    put16(h, sp);
    put16(h, dp);
}

static void inet6(hdr_t *h, const char *src, const char *dst, uint16_t sp, uint16_t dp)
{
    uint8_t a[16];
    CHECK(inet_pton(AF_INET6, src, a) == 1);
    put(h, a, 16);
    CHECK(inet_pton(AF_INET6, dst, a) == 1);
    put(h, a, 16);
    put16(h, sp);
    put16(h, dp);
}

static void unix2(hdr_t *h, const void *src, size_t sn, const void *dst, size_t dn)
{
    uint8_t a[108];
    memset(a, 0, sizeof a);
    memcpy(a, src, sn);
    put(h, a, 108);
    memset(a, 0, sizeof a);
    memcpy(a, dst, dn);
    put(h, a, 108);
}

static void tlv(hdr_t *h, uint8_t type, const void *v, size_t n)
{
    put(h, &type, 1);
    put16(h, (uint16_t)n);
    put(h, v, n);
}

static void finish(hdr_t *h)
{
    CHECK(h->len >= 16 && h->len - 16 <= 0xFFFF);
    h->b[14] = (uint8_t)((h->len - 16) >> 8);
    h->b[15] = (uint8_t)(h->len - 16);
}

/* Adds a CRC32C TLV last and fills it in (the header length must include it first). */
static void add_crc(hdr_t *h)
{
    tlv(h, 0x03, "\0\0\0\0", 4);
    finish(h);
    uint32_t c = cx_proxy_crc32c(0, h->b, h->len);
    uint8_t *v = h->b + h->len - 4;
    v[0] = (uint8_t)(c >> 24);
    v[1] = (uint8_t)(c >> 16);
    v[2] = (uint8_t)(c >> 8);
    v[3] = (uint8_t)c;
}

/* An SSL TLV value: client, verify, then sub-TLVs. */
static void ssl_value(hdr_t *v, uint8_t client, uint32_t verify)
{
    v->len = 0;
    put(v, &client, 1);
    put32(v, verify);
}

static hdr_t H, V;

/* ---- CRC32C --------------------------------------------------------------------------- */

static uint32_t crc_bitwise(const uint8_t *p, size_t n)
{
    uint32_t c = 0xFFFFFFFF;
    for (size_t i = 0; i < n; i++) {
        c ^= p[i];
        for (int k = 0; k < 8; k++)
            c = (c >> 1) ^ (0x82F63B78 & (0u - (c & 1)));
    }
    return ~c;
}

static void test_crc32c(void)
{
    CHECK_INT_EQ(cx_proxy_crc32c(0, (const uint8_t *)"123456789", 9), 0xE3069283);
    CHECK_INT_EQ(cx_proxy_crc32c(0, NULL, 0), 0);
    /* RFC 3720 B.4 test patterns: 32 zero bytes and 32 0xFF bytes. */
    uint8_t z[32];
    memset(z, 0, sizeof z);
    CHECK_INT_EQ(cx_proxy_crc32c(0, z, 32), 0x8A9136AA);
    memset(z, 0xFF, sizeof z);
    CHECK_INT_EQ(cx_proxy_crc32c(0, z, 32), 0x62A8AB43);
    uint8_t d[1000];
    for (size_t i = 0; i < sizeof d; i++)
        d[i] = (uint8_t)(i * 131 + 7);
    for (size_t n = 0; n < sizeof d; n += 37) {
        CHECK_INT_EQ(cx_proxy_crc32c(0, d, n), crc_bitwise(d, n));
        size_t cut = n / 3;
        CHECK_INT_EQ(cx_proxy_crc32c(cx_proxy_crc32c(0, d, cut), d + cut, n - cut),
                     crc_bitwise(d, n));
    }
}

/* ---- v1 ------------------------------------------------------------------------------- */

static void expect_v1(int line, const char *s, const char *src, const char *dst)
{
    size_t n = strlen(s);
    /* With client bytes after the header, which must not be consumed. */
    uint8_t buf[256];
    CHECK(n + 8 <= sizeof buf);
    memcpy(buf, s, n);
    memcpy(buf + n, "\x10\x0c\x00\x04MQTT", 8);
    cx_proxy_info_t info;
    const char *err = NULL;
    int rc = parse(buf, n + 8, BOTH, &info, &err);
    if (rc != CX_OK)
        CX_FAIL_("line %d: %s (%s)", line, cx_errname(rc), err ? err : "");
    CHECK_INT_EQ(info.version, 1);
    CHECK_INT_EQ(info.header_len, n);
    if (!src) {
        CHECK(info.local);
        CHECK_INT_EQ(info.src_len, 0);
        CHECK_INT_EQ(info.dst_len, 0);
    } else {
        CHECK(!info.local);
        CHECK_STR_EQ(fmt(&info.src, info.src_len), src);
        CHECK_STR_EQ(fmt(&info.dst, info.dst_len), dst);
    }
    CHECK(!info.ssl && !info.tls && info.alpn.p == NULL);
    check_prefixes((const uint8_t *)s, n, BOTH);
    check_prefixes((const uint8_t *)s, n, CX_PROXY_V1);
}

#define EXPECT_V1(s, src, dst) expect_v1(__LINE__, s, src, dst)

static void test_v1_tcp4(void)
{
    EXPECT_V1("PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\n", "192.168.0.1 56324",
              "192.168.0.11 443");
    EXPECT_V1("PROXY TCP4 0.0.0.0 255.255.255.255 0 65535\r\n", "0.0.0.0 0",
              "255.255.255.255 65535");
    EXPECT_V1("PROXY TCP4 10.0.0.1 10.0.0.2 1 1883\r\n", "10.0.0.1 1", "10.0.0.2 1883");
}

static void test_v1_tcp6(void)
{
    EXPECT_V1("PROXY TCP6 2001:db8::1 2001:db8::2 50000 8883\r\n", "2001:db8::1 50000",
              "2001:db8::2 8883");
    EXPECT_V1("PROXY TCP6 ::1 :: 1 2\r\n", "::1 1", ":: 2");
    EXPECT_V1("PROXY TCP6 ::ffff:10.1.2.3 FE80::A:b:C:d 9 10\r\n", "::ffff:10.1.2.3 9",
              "fe80::a:b:c:d 10");
    EXPECT_V1("PROXY TCP6 1:2:3:4:5:6:7:8 1:2:3:4:5:6:1.2.3.4 9 10\r\n", "1:2:3:4:5:6:7:8 9",
              "1:2:3:4:5:6:102:304 10");
    EXPECT_V1("PROXY TCP6 1:: 1:2:3:4:5:6:7:: 9 10\r\n", "1:: 9", "1:2:3:4:5:6:7:0 10");
    /* The longest TCP6 line of the spec: 104 bytes. */
    const char *max6 = "PROXY TCP6 ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff "
                       "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 65535\r\n";
    CHECK_INT_EQ(strlen(max6), 104);
    EXPECT_V1(max6, "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535",
              "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535");
    EXPECT_V1("PROXY TCP6 0000:0000:0000:0000:0000:0000:0000:0001 0:0:0:0:0:0:0:0 1 2\r\n", "::1 1",
              ":: 2");
}

static void test_v1_unknown(void)
{
    EXPECT_V1("PROXY UNKNOWN\r\n", NULL, NULL);
    EXPECT_V1("PROXY UNKNOWN 1.2.3.4 5.6.7.8 1 2\r\n", NULL, NULL);
    EXPECT_V1("PROXY UNKNOWN whatever  the sender\tputs here\r\n", NULL, NULL);
    /* The worst case of the spec is exactly 107 bytes. */
    const char *max = "PROXY UNKNOWN ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff "
                      "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 65535\r\n";
    CHECK_INT_EQ(strlen(max), 107);
    EXPECT_V1(max, NULL, NULL);
    /* One more byte and the CRLF is past the limit. */
    const char *over = "PROXY UNKNOWN ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff "
                       "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 655355\r\n";
    EXPECT_FAIL_S(over);
    /* ... and it fails as soon as 107 bytes without CRLF are there. */
    EXPECT_FAIL(over, 107);
    cx_proxy_info_t info;
    CHECK_INT_EQ(parse(over, 106, BOTH, &info, NULL), CX_EAGAIN);
}

static void test_v1_malformed(void)
{
    const char *bad[] = {
        /* syntax of the line */
        "PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n",  /* LF without CR */
        "PROXY TCP4 1.2.3.4 5.6.7.8 1 2\rX", /* CR without LF */
        "PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\r\n",
        "PROXY TCP4 1.2.3.4\n5.6.7.8 1 2\r\n",
        "PROXY  TCP4 1.2.3.4 5.6.7.8 1 2\r\n", /* extra spaces */
        "PROXY TCP4  1.2.3.4 5.6.7.8 1 2\r\n",
        "PROXY TCP4 1.2.3.4  5.6.7.8 1 2\r\n",
        "PROXY TCP4 1.2.3.4 5.6.7.8  1 2\r\n",
        "PROXY TCP4 1.2.3.4 5.6.7.8 1  2\r\n",
        "PROXY TCP4 1.2.3.4 5.6.7.8 1 2 \r\n",
        "PROXY TCP4 1.2.3.4 5.6.7.8 1 2 3\r\n", /* extra field */
        "PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n",     /* missing fields */
        "PROXY TCP4 1.2.3.4 5.6.7.8\r\n",
        "PROXY TCP4\r\n",
        "PROXY \r\n",
        "PROXY\tTCP4 1.2.3.4 5.6.7.8 1 2\r\n",
        "PROXY TCP4\t1.2.3.4 5.6.7.8 1 2\r\n",
        "PROXYTCP4 1.2.3.4 5.6.7.8 1 2\r\n",
        "proxy TCP4 1.2.3.4 5.6.7.8 1 2\r\n",
        /* protocol */
        "PROXY tcp4 1.2.3.4 5.6.7.8 1 2\r\n",
        "PROXY TCP5 1.2.3.4 5.6.7.8 1 2\r\n",
        "PROXY UDP4 1.2.3.4 5.6.7.8 1 2\r\n",
        "PROXY UNKNOWNX\r\n",
        "PROXY UNKNOWN\n",
        /* IPv4 */
        "PROXY TCP4 256.2.3.4 5.6.7.8 1 2\r\n",
        "PROXY TCP4 1.2.3.4 5.6.7.999 1 2\r\n",
        "PROXY TCP4 01.2.3.4 5.6.7.8 1 2\r\n", /* leading zero */
        "PROXY TCP4 1.2.3.00 5.6.7.8 1 2\r\n",
        "PROXY TCP4 1.2.3 5.6.7.8 1 2\r\n",
        "PROXY TCP4 1.2.3.4.5 5.6.7.8 1 2\r\n",
        "PROXY TCP4 1.2.3.4. 5.6.7.8 1 2\r\n",
        "PROXY TCP4 .1.2.3 5.6.7.8 1 2\r\n",
        "PROXY TCP4 1..2.3 5.6.7.8 1 2\r\n",
        "PROXY TCP4 1.2.3.a 5.6.7.8 1 2\r\n",
        "PROXY TCP4 1.2.3.-4 5.6.7.8 1 2\r\n",
        "PROXY TCP4 1234.2.3.4 5.6.7.8 1 2\r\n",
        "PROXY TCP4 ::1 5.6.7.8 1 2\r\n", /* family mismatch */
        "PROXY TCP4 1.2.3.4 ::1 1 2\r\n",
        /* IPv6 */
        "PROXY TCP6 1.2.3.4 ::1 1 2\r\n",
        "PROXY TCP6 ::1 5.6.7.8 1 2\r\n",
        "PROXY TCP6 1:2:3:4:5:6:7 ::1 1 2\r\n", /* 7 groups, no :: */
        "PROXY TCP6 1:2:3:4:5:6:7:8:9 ::1 1 2\r\n",
        "PROXY TCP6 1::2::3 ::1 1 2\r\n",
        "PROXY TCP6 ::: ::1 1 2\r\n",
        "PROXY TCP6 :1:2:3:4:5:6:7 ::1 1 2\r\n",
        "PROXY TCP6 1:2:3:4:5:6:7: ::1 1 2\r\n",
        "PROXY TCP6 12345:: ::1 1 2\r\n",
        "PROXY TCP6 g:: ::1 1 2\r\n",
        "PROXY TCP6 ::1:2:3:4:5:6:7:8 ::1 1 2\r\n",
        "PROXY TCP6 1:2:3:4:5:6:7:8:: ::1 1 2\r\n",
        "PROXY TCP6 1:2:3:4:5:6:7:1.2.3.4 ::1 1 2\r\n",
        "PROXY TCP6 ::1.2.3.4:5 ::1 1 2\r\n",
        "PROXY TCP6 ::ffff:1.2.3.256 ::1 1 2\r\n",
        "PROXY TCP6 [::1] ::1 1 2\r\n",
        "PROXY TCP6 fe80::1%eth0 ::1 1 2\r\n",
        /* ports */
        "PROXY TCP4 1.2.3.4 5.6.7.8 65536 2\r\n",
        "PROXY TCP4 1.2.3.4 5.6.7.8 1 99999\r\n",
        "PROXY TCP4 1.2.3.4 5.6.7.8 100000 2\r\n",
        "PROXY TCP4 1.2.3.4 5.6.7.8 01 2\r\n", /* leading zero */
        "PROXY TCP4 1.2.3.4 5.6.7.8 1 00\r\n",
        "PROXY TCP4 1.2.3.4 5.6.7.8 +1 2\r\n",
        "PROXY TCP4 1.2.3.4 5.6.7.8 -1 2\r\n",
        "PROXY TCP4 1.2.3.4 5.6.7.8 1a 2\r\n",
        "PROXY TCP4 1.2.3.4 5.6.7.8 0x10 2\r\n",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        cx_proxy_info_t info;
        const char *err = NULL;
        int rc = parse(bad[i], strlen(bad[i]), BOTH, &info, &err);
        if (rc != CX_EPROTO || !err)
            CX_FAIL_("case %zu \"%s\": %s", i, bad[i], cx_errname(rc));
    }
    /* No CRLF at all within 107 bytes. */
    char line[200];
    memset(line, '1', sizeof line);
    memcpy(line, "PROXY TCP4 ", 11);
    EXPECT_FAIL(line, 107);
    EXPECT_FAIL(line, 200);
    cx_proxy_info_t info;
    CHECK_INT_EQ(parse(line, 106, BOTH, &info, NULL), CX_EAGAIN);
    /* CR as the 107th byte: the LF would be the 108th. */
    line[106] = '\r';
    EXPECT_FAIL(line, 107);
}

/* ---- v2 ------------------------------------------------------------------------------- */

static void ok_v2(int line, const hdr_t *h, cx_proxy_info_t *info)
{
    /* Client bytes follow the header and are not consumed. */
    static uint8_t buf[sizeof H.b + 8];
    memcpy(buf, h->b, h->len);
    memcpy(buf + h->len, "\x10\x0c\x00\x04MQTT", 8);
    const char *err = NULL;
    int rc = parse(buf, h->len + 8, BOTH, info, &err);
    if (rc != CX_OK)
        CX_FAIL_("line %d: %s (%s)", line, cx_errname(rc), err ? err : "");
    CHECK_INT_EQ(info->version, 2);
    CHECK_INT_EQ(info->header_len, h->len);
    CHECK_INT_EQ(parse(h->b, h->len, CX_PROXY_V2, info, &err), CX_OK);
}

#define OK_V2(h, info) ok_v2(__LINE__, h, info)

static void fail_v2(int line, const hdr_t *h)
{
    expect_fail(line, h->b, h->len, BOTH);
}

#define FAIL_V2(h) fail_v2(__LINE__, h)

static void test_v2_local(void)
{
    cx_proxy_info_t info;
    start(&H, 0x20, 0x00);
    finish(&H);
    OK_V2(&H, &info);
    CHECK(info.local);
    CHECK_INT_EQ(info.header_len, 16);
    CHECK_INT_EQ(info.src_len, 0);
    check_prefixes(H.b, H.len, BOTH);
    /* A LOCAL header with a family, addresses and even TLVs: all skipped unread (the spec:
     * "discard the protocol block including the family"). */
    start(&H, 0x20, 0x11);
    inet4(&H, "1.2.3.4", "5.6.7.8", 1, 2);
    tlv(&H, 0x01, "mqtt", 4);
    tlv(&H, 0x03, "\xde\xad\xbe\xef", 4); /* a wrong CRC is not even looked at */
    finish(&H);
    OK_V2(&H, &info);
    CHECK(info.local);
    CHECK(info.alpn.p == NULL && !info.crc32c);
    CHECK_INT_EQ(info.header_len, 16 + 12 + 7 + 7);
    start(&H, 0x20, 0xFF); /* even a family byte that PROXY would refuse */
    put(&H, "junk", 4);
    finish(&H);
    OK_V2(&H, &info);
    CHECK(info.local);
}

static void test_v2_inet(void)
{
    cx_proxy_info_t info;
    start(&H, 0x21, 0x11);
    inet4(&H, "203.0.113.7", "192.0.2.1", 51234, 1883);
    finish(&H);
    OK_V2(&H, &info);
    CHECK(!info.local);
    CHECK_STR_EQ(fmt(&info.src, info.src_len), "203.0.113.7 51234");
    CHECK_STR_EQ(fmt(&info.dst, info.dst_len), "192.0.2.1 1883");
    CHECK(!info.ssl && !info.crc32c && info.alpn.p == NULL);
    check_prefixes(H.b, H.len, BOTH);
    /* Extra bytes after the addresses that are not TLVs are refused... */
    start(&H, 0x21, 0x11);
    inet4(&H, "203.0.113.7", "192.0.2.1", 51234, 1883);
    put(&H, "\x00", 1);
    finish(&H);
    FAIL_V2(&H);
    /* ... and a block shorter than the family's addresses too. */
    start(&H, 0x21, 0x11);
    inet4(&H, "203.0.113.7", "192.0.2.1", 51234, 1883);
    H.len--;
    finish(&H);
    FAIL_V2(&H);
}

static void test_v2_inet6(void)
{
    cx_proxy_info_t info;
    start(&H, 0x21, 0x21);
    inet6(&H, "2001:db8::17", "2001:db8:1::1", 65535, 8883);
    finish(&H);
    OK_V2(&H, &info);
    CHECK_STR_EQ(fmt(&info.src, info.src_len), "2001:db8::17 65535");
    CHECK_STR_EQ(fmt(&info.dst, info.dst_len), "2001:db8:1::1 8883");
    check_prefixes(H.b, H.len, BOTH);
    start(&H, 0x21, 0x21);
    inet4(&H, "1.2.3.4", "5.6.7.8", 1, 2); /* 12 bytes where 36 are needed */
    finish(&H);
    FAIL_V2(&H);
}

static void test_v2_unix(void)
{
    cx_proxy_info_t info;
    start(&H, 0x21, 0x31);
    unix2(&H, "/run/lb.sock", 12, "/run/culex.sock", 15);
    finish(&H);
    OK_V2(&H, &info);
    CHECK_INT_EQ(info.src.ss_family, AF_UNIX);
    CHECK_STR_EQ(fmt(&info.src, info.src_len), "unix:/run/lb.sock");
    CHECK_INT_EQ(info.src_len, offsetof(struct sockaddr_un, sun_path) + 13);
    CHECK_STR_EQ(((struct sockaddr_un *)&info.dst)->sun_path, "/run/culex.sock");
    check_prefixes(H.b, H.len, BOTH);
    /* Abstract names, a 108-byte path without NUL, an unnamed socket. */
    char longp[108];
    memset(longp, 'p', sizeof longp);
    longp[0] = '/';
    start(&H, 0x21, 0x31);
    unix2(&H, "\0abstract", 9, longp, 108);
    finish(&H);
    OK_V2(&H, &info);
    CHECK_INT_EQ(info.src_len, offsetof(struct sockaddr_un, sun_path) + 9);
    CHECK_STR_EQ(fmt(&info.src, info.src_len), "unix:abstract");
    CHECK_INT_EQ(info.dst_len, offsetof(struct sockaddr_un, sun_path) + 108);
    start(&H, 0x21, 0x31);
    unix2(&H, "", 0, "/x", 2);
    finish(&H);
    OK_V2(&H, &info);
    CHECK_INT_EQ(info.src_len, offsetof(struct sockaddr_un, sun_path));
    start(&H, 0x21, 0x31);
    inet6(&H, "::1", "::1", 1, 2);
    finish(&H);
    FAIL_V2(&H);
}

static void test_v2_unspec(void)
{
    /* PROXY with UNSPEC: keep the real endpoints (the one combination every receiver must
     * accept); the block is skipped. */
    cx_proxy_info_t info;
    start(&H, 0x21, 0x00);
    put(&H, "whatever", 8);
    finish(&H);
    OK_V2(&H, &info);
    CHECK(info.local);
    CHECK_INT_EQ(info.header_len, 24);
}

static void test_v2_bad_fixed_header(void)
{
    const uint8_t bad_vc[] = {0x11, 0x31, 0x01, 0xF1, 0x22, 0x2F, 0x23};
    for (size_t i = 0; i < sizeof bad_vc; i++) {
        start(&H, bad_vc[i], 0x11);
        inet4(&H, "1.2.3.4", "5.6.7.8", 1, 2);
        finish(&H);
        FAIL_V2(&H);
        expect_fail(__LINE__, H.b, 13, BOTH); /* at the 13th byte already */
    }
    const uint8_t bad_fam[] = {0x41, 0xF1, 0x13, 0x1F, 0x12, 0x22,
                               0x32, 0x10, 0x20, 0x30, 0x01, 0x02};
    for (size_t i = 0; i < sizeof bad_fam; i++) {
        start(&H, 0x21, bad_fam[i]);
        unix2(&H, "a", 1, "b", 1);
        finish(&H);
        FAIL_V2(&H);
    }
    /* The signature with one byte wrong fails at that byte. */
    for (size_t k = 0; k < 12; k++) {
        start(&H, 0x21, 0x11);
        inet4(&H, "1.2.3.4", "5.6.7.8", 1, 2);
        finish(&H);
        H.b[k] ^= 0x40;
        expect_fail(__LINE__, H.b, k + 1, BOTH);
        FAIL_V2(&H);
    }
}

static void test_v2_tlvs(void)
{
    cx_proxy_info_t info;
    uint8_t uid[128];
    memset(uid, 0xAB, sizeof uid);
    start(&H, 0x21, 0x11);
    inet4(&H, "198.51.100.9", "192.0.2.1", 40000, 8883);
    tlv(&H, 0x04, "", 0);                    /* NOOP, empty */
    tlv(&H, 0x01, "mqtt", 4);                /* ALPN */
    tlv(&H, 0x02, "broker.example.com", 18); /* AUTHORITY */
    tlv(&H, 0x04, "\0\0\0\0\0", 5);          /* NOOP again */
    tlv(&H, 0x05, uid, sizeof uid);          /* UNIQUE_ID, the maximum */
    tlv(&H, 0x30, "blue", 4);                /* NETNS */
    tlv(&H, 0xE0, "custom", 6);              /* application range: skipped */
    tlv(&H, 0xE0, "custom", 6);              /* ... repeatable */
    tlv(&H, 0xF7, "", 0);                    /* experimental */
    tlv(&H, 0x22, "not-a-cn", 8);            /* an SSL sub-type out of place: skipped */
    tlv(&H, 0x06, "future", 6);              /* unassigned: skipped */
    add_crc(&H);
    OK_V2(&H, &info);
    CHECK_STR_EQ(fmt(&info.src, info.src_len), "198.51.100.9 40000");
    CHECK_SLICE_EQ(info.alpn, "mqtt");
    CHECK_SLICE_EQ(info.authority, "broker.example.com");
    CHECK_INT_EQ(info.unique_id.len, 128);
    CHECK(memcmp(info.unique_id.p, uid, 128) == 0);
    CHECK_SLICE_EQ(info.netns, "blue");
    CHECK(info.crc32c);
    CHECK(!info.ssl && !info.has_cn);
    check_prefixes(H.b, H.len, BOTH);
    /* Slices point into the caller's buffer. */
    uint8_t *c = keep(H.b, H.len);
    CHECK_INT_EQ(cx_proxy_parse(c, H.len, BOTH, &info, NULL), CX_OK);
    CHECK(info.alpn.p > c && info.alpn.p + info.alpn.len <= c + H.len);
    /* An empty ALPN is present (p != NULL). */
    start(&H, 0x21, 0x11);
    inet4(&H, "1.2.3.4", "5.6.7.8", 1, 2);
    tlv(&H, 0x01, "", 0);
    finish(&H);
    OK_V2(&H, &info);
    CHECK(info.alpn.p != NULL && info.alpn.len == 0);
}

static void test_v2_ssl_nested(void)
{
    cx_proxy_info_t info;
    ssl_value(&V, CX_PP2_CLIENT_SSL | CX_PP2_CLIENT_CERT_CONN | CX_PP2_CLIENT_CERT_SESS, 0);
    tlv(&V, 0x21, "TLSv1.3", 7);
    tlv(&V, 0x22, "device-42.example.com", 21);
    tlv(&V, 0x23, "TLS_AES_256_GCM_SHA384", 22);
    tlv(&V, 0x24, "RSA-SHA256", 10);
    tlv(&V, 0x25, "RSA2048", 7);
    tlv(&V, 0x2F, "unknown sub", 11);
    start(&H, 0x21, 0x21);
    inet6(&H, "2001:db8::5", "2001:db8::1", 1234, 8883);
    tlv(&H, 0x01, "mqtt", 4);
    tlv(&H, 0x20, V.b, V.len);
    add_crc(&H);
    OK_V2(&H, &info);
    CHECK(info.ssl && info.tls && info.cert_verified);
    CHECK_INT_EQ(info.ssl_client, 7);
    CHECK_INT_EQ(info.ssl_verify, 0);
    CHECK(info.has_tls_version && info.has_cn);
    CHECK_STR_EQ(info.tls_version, "TLSv1.3");
    CHECK_STR_EQ(info.tls_cn, "device-42.example.com");
    CHECK_SLICE_EQ(info.tls_cipher, "TLS_AES_256_GCM_SHA384");
    CHECK_SLICE_EQ(info.tls_sig_alg, "RSA-SHA256");
    CHECK_SLICE_EQ(info.tls_key_alg, "RSA2048");
    CHECK_SLICE_EQ(info.alpn, "mqtt");
    CHECK(info.crc32c);
    check_prefixes(H.b, H.len, BOTH);
    /* The copied strings outlive the input. */
    uint8_t *c = malloc(H.len);
    CHECK(c != NULL);
    memcpy(c, H.b, H.len);
    CHECK_INT_EQ(cx_proxy_parse(c, H.len, BOTH, &info, NULL), CX_OK);
    memset(c, 0, H.len);
    free(c);
    CHECK_STR_EQ(info.tls_cn, "device-42.example.com");

    struct {
        uint8_t client;
        uint32_t verify;
        bool tls, verified;
    } cases[] = {
        {CX_PP2_CLIENT_SSL | CX_PP2_CLIENT_CERT_CONN, 0, true, true},
        {CX_PP2_CLIENT_SSL | CX_PP2_CLIENT_CERT_SESS, 0, true, true},
        {CX_PP2_CLIENT_SSL | CX_PP2_CLIENT_CERT_CONN, 1, true, false},
        {CX_PP2_CLIENT_SSL, 0, true, false},        /* TLS without a certificate */
        {CX_PP2_CLIENT_CERT_CONN, 0, false, false}, /* a certificate without TLS? no */
        {0, 0, false, false},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        ssl_value(&V, cases[i].client, cases[i].verify);
        start(&H, 0x21, 0x11);
        inet4(&H, "1.2.3.4", "5.6.7.8", 1, 2);
        tlv(&H, 0x20, V.b, V.len);
        finish(&H);
        OK_V2(&H, &info);
        CHECK(info.ssl);
        CHECK_INT_EQ(info.tls, cases[i].tls);
        CHECK_INT_EQ(info.cert_verified, cases[i].verified);
        CHECK(!info.has_cn && !info.has_tls_version);
    }
    /* Limits of the copied strings. */
    char cn[300];
    memset(cn, 'c', sizeof cn);
    for (size_t n = 255; n <= 257; n++) {
        ssl_value(&V, 3, 0);
        tlv(&V, 0x22, cn, n);
        start(&H, 0x21, 0x11);
        inet4(&H, "1.2.3.4", "5.6.7.8", 1, 2);
        tlv(&H, 0x20, V.b, V.len);
        finish(&H);
        if (n <= CX_PROXY_CN_MAX) {
            OK_V2(&H, &info);
            CHECK_INT_EQ(strlen(info.tls_cn), n);
        } else {
            FAIL_V2(&H);
        }
    }
    ssl_value(&V, 3, 0);
    tlv(&V, 0x21, cn, 32);
    start(&H, 0x21, 0x11);
    inet4(&H, "1.2.3.4", "5.6.7.8", 1, 2);
    tlv(&H, 0x20, V.b, V.len);
    finish(&H);
    FAIL_V2(&H);
}

static void test_v2_bad_crc(void)
{
    start(&H, 0x21, 0x11);
    inet4(&H, "1.2.3.4", "5.6.7.8", 1, 2);
    tlv(&H, 0x01, "mqtt", 4);
    add_crc(&H);
    cx_proxy_info_t info;
    OK_V2(&H, &info);
    CHECK(info.crc32c);
    /* Any single bit flipped after the signature and version (which fail on their own)
     * breaks the checksum, except in the CRC TLV's own type byte: a header whose CRC TLV
     * has become another TLV is a valid header without a checksum (the protocol cannot
     * tell). */
    size_t crc_type = H.len - 7;
    for (size_t byte = 13; byte < H.len; byte++) {
        if (byte == crc_type)
            continue;
        for (int bit = 0; bit < 8; bit++) {
            H.b[byte] ^= (uint8_t)(1u << bit);
            const char *err = NULL;
            int rc = parse(H.b, H.len, BOTH, &info, &err);
            if (rc == CX_EAGAIN && byte >= 14 && byte <= 15)
                rc = CX_EPROTO; /* a longer announced length: waits for bytes that never come */
            if (rc != CX_EPROTO)
                CX_FAIL_("byte %zu bit %d: %s", byte, bit, cx_errname(rc));
            H.b[byte] ^= (uint8_t)(1u << bit);
        }
    }
    /* The CRC TLV must be 4 bytes. */
    start(&H, 0x21, 0x11);
    inet4(&H, "1.2.3.4", "5.6.7.8", 1, 2);
    tlv(&H, 0x03, "\0\0\0", 3);
    finish(&H);
    FAIL_V2(&H);
    /* A CRC over a header with the CRC TLV not last, and a zero CRC that is wrong. */
    start(&H, 0x21, 0x11);
    inet4(&H, "1.2.3.4", "5.6.7.8", 1, 2);
    tlv(&H, 0x03, "\0\0\0\0", 4);
    tlv(&H, 0x02, "host", 4);
    finish(&H);
    FAIL_V2(&H);
    uint32_t c = cx_proxy_crc32c(0, H.b, H.len);
    uint8_t *v = H.b + 16 + 12 + 3;
    v[0] = (uint8_t)(c >> 24);
    v[1] = (uint8_t)(c >> 16);
    v[2] = (uint8_t)(c >> 8);
    v[3] = (uint8_t)c;
    OK_V2(&H, &info);
    CHECK(info.crc32c);
    CHECK_SLICE_EQ(info.authority, "host");
}

static void test_v2_tlv_errors(void)
{
    /* A TLV longer than what is left of the header. */
    start(&H, 0x21, 0x11);
    inet4(&H, "1.2.3.4", "5.6.7.8", 1, 2);
    tlv(&H, 0x01, "mqtt", 4);
    H.b[H.len - 5] = 5; /* announced 5, 4 present */
    finish(&H);
    FAIL_V2(&H);
    /* 1 or 2 bytes left: not even a TLV header. */
    for (size_t k = 1; k <= 2; k++) {
        start(&H, 0x21, 0x11);
        inet4(&H, "1.2.3.4", "5.6.7.8", 1, 2);
        put(&H, "\x04\x00", k);
        finish(&H);
        FAIL_V2(&H);
    }
    /* A sub-TLV overrunning the SSL TLV (though not the header). */
    ssl_value(&V, 1, 0);
    tlv(&V, 0x22, "cn", 2);
    V.b[V.len - 3] = 3; /* sub-TLV length 3, 2 bytes left in its parent */
    start(&H, 0x21, 0x11);
    inet4(&H, "1.2.3.4", "5.6.7.8", 1, 2);
    tlv(&H, 0x20, V.b, V.len);
    tlv(&H, 0x04, "pad", 3);
    finish(&H);
    FAIL_V2(&H);
    /* A truncated sub-TLV header, and an SSL TLV too short for client + verify. */
    ssl_value(&V, 1, 0);
    put(&V, "\x22\x00", 2);
    start(&H, 0x21, 0x11);
    inet4(&H, "1.2.3.4", "5.6.7.8", 1, 2);
    tlv(&H, 0x20, V.b, V.len);
    finish(&H);
    FAIL_V2(&H);
    for (size_t n = 0; n < 5; n++) {
        start(&H, 0x21, 0x11);
        inet4(&H, "1.2.3.4", "5.6.7.8", 1, 2);
        tlv(&H, 0x20, "\x01\0\0\0\0", n);
        finish(&H);
        FAIL_V2(&H);
    }
    /* UNIQUE_ID over 128 bytes. */
    uint8_t uid[129];
    memset(uid, 1, sizeof uid);
    start(&H, 0x21, 0x11);
    inet4(&H, "1.2.3.4", "5.6.7.8", 1, 2);
    tlv(&H, 0x05, uid, 129);
    finish(&H);
    FAIL_V2(&H);
    /* Repeated known TLVs and sub-TLVs. */
    const uint8_t types[] = {0x01, 0x02, 0x05, 0x30};
    for (size_t i = 0; i < sizeof types; i++) {
        start(&H, 0x21, 0x11);
        inet4(&H, "1.2.3.4", "5.6.7.8", 1, 2);
        tlv(&H, types[i], "a", 1);
        tlv(&H, types[i], "b", 1);
        finish(&H);
        FAIL_V2(&H);
    }
    ssl_value(&V, 1, 0);
    start(&H, 0x21, 0x11);
    inet4(&H, "1.2.3.4", "5.6.7.8", 1, 2);
    tlv(&H, 0x20, V.b, V.len);
    tlv(&H, 0x20, V.b, V.len);
    finish(&H);
    FAIL_V2(&H);
    start(&H, 0x21, 0x11);
    inet4(&H, "1.2.3.4", "5.6.7.8", 1, 2);
    tlv(&H, 0x03, "\0\0\0\0", 4);
    tlv(&H, 0x03, "\0\0\0\0", 4);
    finish(&H);
    FAIL_V2(&H);
    for (uint8_t st = 0x21; st <= 0x25; st++) {
        ssl_value(&V, 3, 0);
        tlv(&V, st, "x", 1);
        tlv(&V, st, "y", 1);
        start(&H, 0x21, 0x11);
        inet4(&H, "1.2.3.4", "5.6.7.8", 1, 2);
        tlv(&H, 0x20, V.b, V.len);
        finish(&H);
        FAIL_V2(&H);
    }
    /* A CN with a NUL byte would be cut short as a C string: refused. */
    ssl_value(&V, 3, 0);
    tlv(&V, 0x22, "admin\0.evil.example", 19);
    start(&H, 0x21, 0x11);
    inet4(&H, "1.2.3.4", "5.6.7.8", 1, 2);
    tlv(&H, 0x20, V.b, V.len);
    finish(&H);
    FAIL_V2(&H);
}

/* The largest header: 16 + 65535, mostly NOOP padding; waits until complete. */
static void test_v2_largest(void)
{
    static uint8_t pad[65535];
    start(&H, 0x21, 0x11);
    inet4(&H, "1.2.3.4", "5.6.7.8", 1, 2);
    tlv(&H, 0x04, pad, 65535 - 12 - 3 - 7);
    add_crc(&H); /* 7 more bytes: 16 + 65535 in all */
    CHECK_INT_EQ(H.len, CX_PROXY_V2_MAX);
    cx_proxy_info_t info;
    OK_V2(&H, &info);
    CHECK_INT_EQ(info.header_len, CX_PROXY_V2_MAX);
    CHECK(info.crc32c);
    /* Some prefixes (all of them would copy 2 GB): the start and the end. */
    for (size_t k = 0; k < H.len; k += k < 100 || k > H.len - 100 ? 1 : 4099) {
        const char *err = NULL;
        int rc = parse(H.b, k, BOTH, &info, &err);
        if (rc != CX_EAGAIN)
            CX_FAIL_("prefix %zu: %s (%s)", k, cx_errname(rc), err ? err : "");
    }
}

/* ---- version selection and garbage ---------------------------------------------------- */

static void test_versions(void)
{
    const char *v1 = "PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\n";
    start(&H, 0x21, 0x11);
    inet4(&H, "1.2.3.4", "5.6.7.8", 1, 2);
    finish(&H);
    cx_proxy_info_t info;
    CHECK_INT_EQ(parse(v1, strlen(v1), CX_PROXY_V1, &info, NULL), CX_OK);
    CHECK_INT_EQ(parse(H.b, H.len, CX_PROXY_V2, &info, NULL), CX_OK);
    /* The other version is refused from its first byte. */
    for (size_t k = 1; k <= strlen(v1); k++)
        expect_fail(__LINE__, v1, k, CX_PROXY_V2);
    for (size_t k = 1; k <= H.len; k++)
        expect_fail(__LINE__, H.b, k, CX_PROXY_V1);
    /* Nothing accepted: everything refused. */
    expect_fail(__LINE__, v1, 1, 0);
    expect_fail(__LINE__, H.b, 1, 0);
    CHECK_INT_EQ(parse("", 0, BOTH, &info, NULL), CX_EAGAIN);
}

static void test_garbage(void)
{
    const char *bad[] = {
        "GET / HTTP/1.1\r\nHost: a\r\n\r\n",
        "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", /* TLS ClientHello */
        "\x10\x0c\x00\x04MQTT\x04\x02\x00\x3c\x00\x00", /* MQTT CONNECT */
        "PROXZ TCP4",
        "PROX\r\n",
        "\r\n\r\n\x00\r\nQUIX\n",
        "\r\n\r\n",
        " PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\n",
    };
    size_t lens[] = {27, 11, 14, 10, 6, 12, 4, 33};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        cx_proxy_info_t info;
        const char *err = NULL;
        int rc = parse(bad[i], lens[i], BOTH, &info, &err);
        if (rc == CX_EAGAIN && i == 6)
            continue; /* "\r\n\r\n" is a valid start of a v2 signature */
        if (rc != CX_EPROTO || !err)
            CX_FAIL_("case %zu: %s", i, cx_errname(rc));
    }
    /* Every first byte but 'P' and '\r' fails at once. */
    for (int b = 0; b < 256; b++) {
        uint8_t c = (uint8_t)b;
        cx_proxy_info_t info;
        int rc = parse(&c, 1, BOTH, &info, NULL);
        CHECK_INT_EQ(rc, (b == 'P' || b == '\r') ? CX_EAGAIN : CX_EPROTO);
    }
}

/* ---- robustness ----------------------------------------------------------------------- */

static uint64_t rng_state = 0x2545F4914F6CDD1DULL;

static uint32_t rnd(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (uint32_t)rng_state;
}

static void test_mutation_loop(void)
{
    hdr_t *seeds[3];
    for (int i = 0; i < 3; i++) {
        seeds[i] = malloc(sizeof(hdr_t));
        CHECK(seeds[i] != NULL);
    }
    ssl_value(&V, 7, 0);
    tlv(&V, 0x21, "TLSv1.2", 7);
    tlv(&V, 0x22, "cn", 2);
    start(seeds[0], 0x21, 0x11);
    inet4(seeds[0], "1.2.3.4", "5.6.7.8", 1, 2);
    tlv(seeds[0], 0x20, V.b, V.len);
    tlv(seeds[0], 0x01, "mqtt", 4);
    add_crc(seeds[0]);
    start(seeds[1], 0x21, 0x21);
    inet6(seeds[1], "::1", "::2", 3, 4);
    tlv(seeds[1], 0x20, V.b, V.len);
    finish(seeds[1]);
    seeds[2]->len = 0;
    const char *v1 = "PROXY TCP6 2001:db8::1 ::ffff:1.2.3.4 65535 1\r\n";
    put(seeds[2], v1, strlen(v1));
    for (int iter = 0; iter < 30000; iter++) {
        hdr_t *s = seeds[iter % 3];
        uint8_t buf[256];
        CHECK(s->len <= sizeof buf);
        memcpy(buf, s->b, s->len);
        int flips = 1 + (int)(rnd() % 3);
        for (int k = 0; k < flips; k++) {
            if (rnd() % 2)
                buf[rnd() % s->len] ^= (uint8_t)(1u << (rnd() % 8));
            else
                buf[rnd() % s->len] = (uint8_t)rnd();
        }
        size_t cut = rnd() % (s->len + 1);
        cx_proxy_info_t info;
        const char *err = NULL;
        int rc = parse(buf, cut, BOTH, &info, &err);
        if (rc == CX_OK) {
            CHECK(info.header_len <= cut);
            CHECK(info.version == 1 || info.version == 2);
        } else if (rc != CX_EAGAIN) {
            CHECK_INT_EQ(rc, CX_EPROTO);
            CHECK(err != NULL);
        }
    }
    for (int i = 0; i < 3; i++)
        free(seeds[i]);
}

/* One test per line. */
/* clang-format off */
CX_TEST_MAIN(
    CX_TEST(crc32c),
    CX_TEST(v1_tcp4),
    CX_TEST(v1_tcp6),
    CX_TEST(v1_unknown),
    CX_TEST(v1_malformed),
    CX_TEST(v2_local),
    CX_TEST(v2_inet),
    CX_TEST(v2_inet6),
    CX_TEST(v2_unix),
    CX_TEST(v2_unspec),
    CX_TEST(v2_bad_fixed_header),
    CX_TEST(v2_tlvs),
    CX_TEST(v2_ssl_nested),
    CX_TEST(v2_bad_crc),
    CX_TEST(v2_tlv_errors),
    CX_TEST(v2_largest),
    CX_TEST(versions),
    CX_TEST(garbage),
    CX_TEST(mutation_loop),
)
/* clang-format on */
