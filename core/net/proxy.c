/* proxy.c: PROXY protocol v1 and v2 header parser (see proxy.h), written from HAProxy's
 * "The PROXY protocol, Versions 1 & 2" (2020/03/05).
 *
 * Version detection follows spec §2.2: the 12-byte binary signature means v2, "PROXY"
 * means v1, anything else is refused; each accepted prefix is compared as bytes arrive so
 * that garbage fails at once rather than after a timeout. Every length is checked before
 * the bytes it covers are read. */
#include "proxy.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stddef.h>
#include <string.h>
#include <sys/un.h>

#include "util/err.h"
#include "util/str.h"

static const uint8_t v2_sig[12] = {0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D,
                                   0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A};
static const char v1_sig[] = "PROXY ";

enum {
    PP2_CMD_LOCAL = 0x0,
    PP2_CMD_PROXY = 0x1,
    PP2_AF_UNSPEC = 0x0,
    PP2_AF_INET = 0x1,
    PP2_AF_INET6 = 0x2,
    PP2_AF_UNIX = 0x3,
    PP2_PROTO_UNSPEC = 0x0,
    PP2_PROTO_STREAM = 0x1,
    PP2_PROTO_DGRAM = 0x2,
};

enum {
    PP2_TYPE_ALPN = 0x01,
    PP2_TYPE_AUTHORITY = 0x02,
    PP2_TYPE_CRC32C = 0x03,
    PP2_TYPE_NOOP = 0x04,
    PP2_TYPE_UNIQUE_ID = 0x05,
    PP2_TYPE_SSL = 0x20,
    PP2_SUBTYPE_SSL_VERSION = 0x21,
    PP2_SUBTYPE_SSL_CN = 0x22,
    PP2_SUBTYPE_SSL_CIPHER = 0x23,
    PP2_SUBTYPE_SSL_SIG_ALG = 0x24,
    PP2_SUBTYPE_SSL_KEY_ALG = 0x25,
    PP2_TYPE_NETNS = 0x30,
};

#define UNIQUE_ID_MAX 128

static int fail(const char **err, const char *msg)
{
    if (err)
        *err = msg;
    return CX_EPROTO;
}

#define FAIL(msg) return fail(err, (msg))

/* ---- CRC32C --------------------------------------------------------------------------- */

/* Reflected polynomial 0x82F63B78, one entry per byte value (generated, then checked by the
 * unit test against a bitwise computation and the "123456789" check value 0xE3069283). */
static const uint32_t crc32c_table[256] = {
    0x00000000, 0xf26b8303, 0xe13b70f7, 0x1350f3f4, 0xc79a971f, 0x35f1141c, 0x26a1e7e8, 0xd4ca64eb,
    0x8ad958cf, 0x78b2dbcc, 0x6be22838, 0x9989ab3b, 0x4d43cfd0, 0xbf284cd3, 0xac78bf27, 0x5e133c24,
    0x105ec76f, 0xe235446c, 0xf165b798, 0x030e349b, 0xd7c45070, 0x25afd373, 0x36ff2087, 0xc494a384,
    0x9a879fa0, 0x68ec1ca3, 0x7bbcef57, 0x89d76c54, 0x5d1d08bf, 0xaf768bbc, 0xbc267848, 0x4e4dfb4b,
    0x20bd8ede, 0xd2d60ddd, 0xc186fe29, 0x33ed7d2a, 0xe72719c1, 0x154c9ac2, 0x061c6936, 0xf477ea35,
    0xaa64d611, 0x580f5512, 0x4b5fa6e6, 0xb93425e5, 0x6dfe410e, 0x9f95c20d, 0x8cc531f9, 0x7eaeb2fa,
    0x30e349b1, 0xc288cab2, 0xd1d83946, 0x23b3ba45, 0xf779deae, 0x05125dad, 0x1642ae59, 0xe4292d5a,
    0xba3a117e, 0x4851927d, 0x5b016189, 0xa96ae28a, 0x7da08661, 0x8fcb0562, 0x9c9bf696, 0x6ef07595,
    0x417b1dbc, 0xb3109ebf, 0xa0406d4b, 0x522bee48, 0x86e18aa3, 0x748a09a0, 0x67dafa54, 0x95b17957,
    0xcba24573, 0x39c9c670, 0x2a993584, 0xd8f2b687, 0x0c38d26c, 0xfe53516f, 0xed03a29b, 0x1f682198,
    0x5125dad3, 0xa34e59d0, 0xb01eaa24, 0x42752927, 0x96bf4dcc, 0x64d4cecf, 0x77843d3b, 0x85efbe38,
    0xdbfc821c, 0x2997011f, 0x3ac7f2eb, 0xc8ac71e8, 0x1c661503, 0xee0d9600, 0xfd5d65f4, 0x0f36e6f7,
    0x61c69362, 0x93ad1061, 0x80fde395, 0x72966096, 0xa65c047d, 0x5437877e, 0x4767748a, 0xb50cf789,
    0xeb1fcbad, 0x197448ae, 0x0a24bb5a, 0xf84f3859, 0x2c855cb2, 0xdeeedfb1, 0xcdbe2c45, 0x3fd5af46,
    0x7198540d, 0x83f3d70e, 0x90a324fa, 0x62c8a7f9, 0xb602c312, 0x44694011, 0x5739b3e5, 0xa55230e6,
    0xfb410cc2, 0x092a8fc1, 0x1a7a7c35, 0xe811ff36, 0x3cdb9bdd, 0xceb018de, 0xdde0eb2a, 0x2f8b6829,
    0x82f63b78, 0x709db87b, 0x63cd4b8f, 0x91a6c88c, 0x456cac67, 0xb7072f64, 0xa457dc90, 0x563c5f93,
    0x082f63b7, 0xfa44e0b4, 0xe9141340, 0x1b7f9043, 0xcfb5f4a8, 0x3dde77ab, 0x2e8e845f, 0xdce5075c,
    0x92a8fc17, 0x60c37f14, 0x73938ce0, 0x81f80fe3, 0x55326b08, 0xa759e80b, 0xb4091bff, 0x466298fc,
    0x1871a4d8, 0xea1a27db, 0xf94ad42f, 0x0b21572c, 0xdfeb33c7, 0x2d80b0c4, 0x3ed04330, 0xccbbc033,
    0xa24bb5a6, 0x502036a5, 0x4370c551, 0xb11b4652, 0x65d122b9, 0x97baa1ba, 0x84ea524e, 0x7681d14d,
    0x2892ed69, 0xdaf96e6a, 0xc9a99d9e, 0x3bc21e9d, 0xef087a76, 0x1d63f975, 0x0e330a81, 0xfc588982,
    0xb21572c9, 0x407ef1ca, 0x532e023e, 0xa145813d, 0x758fe5d6, 0x87e466d5, 0x94b49521, 0x66df1622,
    0x38cc2a06, 0xcaa7a905, 0xd9f75af1, 0x2b9cd9f2, 0xff56bd19, 0x0d3d3e1a, 0x1e6dcdee, 0xec064eed,
    0xc38d26c4, 0x31e6a5c7, 0x22b65633, 0xd0ddd530, 0x0417b1db, 0xf67c32d8, 0xe52cc12c, 0x1747422f,
    0x49547e0b, 0xbb3ffd08, 0xa86f0efc, 0x5a048dff, 0x8ecee914, 0x7ca56a17, 0x6ff599e3, 0x9d9e1ae0,
    0xd3d3e1ab, 0x21b862a8, 0x32e8915c, 0xc083125f, 0x144976b4, 0xe622f5b7, 0xf5720643, 0x07198540,
    0x590ab964, 0xab613a67, 0xb831c993, 0x4a5a4a90, 0x9e902e7b, 0x6cfbad78, 0x7fab5e8c, 0x8dc0dd8f,
    0xe330a81a, 0x115b2b19, 0x020bd8ed, 0xf0605bee, 0x24aa3f05, 0xd6c1bc06, 0xc5914ff2, 0x37faccf1,
    0x69e9f0d5, 0x9b8273d6, 0x88d28022, 0x7ab90321, 0xae7367ca, 0x5c18e4c9, 0x4f48173d, 0xbd23943e,
    0xf36e6f75, 0x0105ec76, 0x12551f82, 0xe03e9c81, 0x34f4f86a, 0xc69f7b69, 0xd5cf889d, 0x27a40b9e,
    0x79b737ba, 0x8bdcb4b9, 0x988c474d, 0x6ae7c44e, 0xbe2da0a5, 0x4c4623a6, 0x5f16d052, 0xad7d5351,
};

uint32_t cx_proxy_crc32c(uint32_t crc, const uint8_t *p, size_t n)
{
    uint32_t c = ~crc;
    for (size_t i = 0; i < n; i++)
        c = crc32c_table[(c ^ p[i]) & 0xFF] ^ (c >> 8);
    return ~c;
}

/* ---- v1: "PROXY TCP4 1.2.3.4 5.6.7.8 1234 80\r\n" ------------------------------------- */

static bool is_digit(uint8_t c)
{
    return c >= '0' && c <= '9';
}

/* A decimal number of 1..digits digits, no leading zero unless it is "0", at most max. */
static bool parse_dec(cx_str_t s, size_t digits, uint32_t max, uint32_t *out)
{
    if (s.len == 0 || s.len > digits || (s.len > 1 && s.p[0] == '0'))
        return false;
    uint32_t v = 0;
    for (size_t i = 0; i < s.len; i++) {
        if (!is_digit(s.p[i]))
            return false;
        v = v * 10 + (uint32_t)(s.p[i] - '0');
    }
    if (v > max)
        return false;
    *out = v;
    return true;
}

/* Dotted quad: exactly four numbers 0..255, no leading zeros (spec §2.1: they could be read
 * as octal). */
static bool parse_ip4(cx_str_t s, uint8_t out[4])
{
    size_t i = 0;
    for (int part = 0; part < 4; part++) {
        size_t j = i;
        while (j < s.len && s.p[j] != '.')
            j++;
        if ((part < 3) != (j < s.len))
            return false; /* too few or too many dots */
        uint32_t v;
        if (!parse_dec((cx_str_t){s.p + i, j - i}, 3, 255, &v))
            return false;
        out[part] = (uint8_t)v;
        i = j + 1;
    }
    return true;
}

/* IPv6 text form (RFC 4291 §2.2): eight groups of 1..4 hex digits, at most one "::" for one
 * or more zero groups, optionally ending in a dotted quad for the last 32 bits. */
static bool parse_ip6(cx_str_t s, uint8_t out[16])
{
    uint16_t g[8];
    int ng = 0, gap = -1;
    size_t i = 0;
    if (s.len >= 2 && s.p[0] == ':' && s.p[1] == ':') {
        gap = 0;
        i = 2;
    } else if (s.len == 0 || s.p[0] == ':') {
        return false;
    }
    while (i < s.len) {
        size_t j = i;
        while (j < s.len && s.p[j] != ':')
            j++;
        cx_str_t tok = {s.p + i, j - i};
        if (memchr(tok.p, '.', tok.len)) {
            uint8_t v4[4];
            if (j != s.len || ng > 6 || !parse_ip4(tok, v4))
                return false;
            g[ng++] = (uint16_t)(v4[0] << 8 | v4[1]);
            g[ng++] = (uint16_t)(v4[2] << 8 | v4[3]);
            break;
        }
        if (tok.len == 0 || tok.len > 4 || ng == 8)
            return false;
        uint16_t v = 0;
        for (size_t k = 0; k < tok.len; k++) {
            int h = cx_hexval(tok.p[k]);
            if (h < 0)
                return false;
            v = (uint16_t)(v << 4 | h);
        }
        g[ng++] = v;
        if (j == s.len)
            break;
        if (j + 1 < s.len && s.p[j + 1] == ':') {
            if (gap >= 0)
                return false; /* a second "::" */
            gap = ng;
            i = j + 2;
        } else {
            i = j + 1;
            if (i == s.len)
                return false; /* trailing single ':' */
        }
    }
    if (gap < 0 ? ng != 8 : ng > 7)
        return false;
    memset(out, 0, 16);
    int tail = gap < 0 ? 0 : ng - gap;
    for (int k = 0; k < ng; k++) {
        int pos = (gap < 0 || k < gap) ? k : 8 - tail + (k - gap);
        out[2 * pos] = (uint8_t)(g[k] >> 8);
        out[2 * pos + 1] = (uint8_t)g[k];
    }
    return true;
}

static void set_in4(struct sockaddr_storage *ss, socklen_t *len, const uint8_t a[4], uint16_t port)
{
    struct sockaddr_in *sin = (struct sockaddr_in *)ss;
    sin->sin_family = AF_INET;
    sin->sin_port = htons(port);
    memcpy(&sin->sin_addr, a, 4);
    *len = sizeof *sin;
}

static void set_in6(struct sockaddr_storage *ss, socklen_t *len, const uint8_t a[16], uint16_t port)
{
    struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;
    sin6->sin6_family = AF_INET6;
    sin6->sin6_port = htons(port);
    memcpy(&sin6->sin6_addr, a, 16);
    *len = sizeof *sin6;
}

/* buf starts with "PROXY " (len >= 6). */
static int parse_v1(const uint8_t *buf, size_t len, cx_proxy_info_t *info, const char **err)
{
    /* Find the CRLF within the first 107 bytes; a lone CR or LF is refused (spec §2.1). */
    size_t lim = len < CX_PROXY_V1_MAX ? len : CX_PROXY_V1_MAX;
    size_t end = 0;
    for (size_t i = 0; i < lim; i++) {
        if (buf[i] == '\n')
            FAIL("PROXY v1: LF without CR");
        if (buf[i] == '\r') {
            if (i + 1 == CX_PROXY_V1_MAX)
                FAIL("PROXY v1: no CRLF in the first 107 bytes");
            if (i + 1 == len)
                return CX_EAGAIN;
            if (buf[i + 1] != '\n')
                FAIL("PROXY v1: CR without LF");
            end = i;
            break;
        }
    }
    if (end == 0)
        return len >= CX_PROXY_V1_MAX ? fail(err, "PROXY v1: no CRLF in the first 107 bytes")
                                      : CX_EAGAIN;

    /* Split the line at single spaces: PROXY proto src dst sport dport. */
    cx_str_t f[6];
    size_t nf = 0, i = 0;
    while (i <= end) {
        size_t j = i;
        while (j < end && buf[j] != ' ')
            j++;
        if (nf == 6)
            break; /* more fields: refused below (or ignored for UNKNOWN) */
        f[nf++] = (cx_str_t){buf + i, j - i};
        i = j + 1;
    }
    info->version = 1;
    info->header_len = end + 2;
    /* UNKNOWN: "the receiver must ignore anything presented before the CRLF". */
    if (nf >= 2 && cx_str_eq_cstr(f[1], "UNKNOWN")) {
        info->local = true;
        return CX_OK;
    }
    bool v4 = nf >= 2 && cx_str_eq_cstr(f[1], "TCP4");
    bool v6 = nf >= 2 && cx_str_eq_cstr(f[1], "TCP6");
    if (!v4 && !v6)
        FAIL("PROXY v1: protocol is not TCP4, TCP6 or UNKNOWN");
    if (nf != 6 || i <= end)
        FAIL("PROXY v1: wrong number of fields (or not exactly one space between them)");
    for (size_t k = 2; k < 6; k++)
        if (f[k].len == 0)
            FAIL("PROXY v1: empty field (two spaces in a row)");
    uint32_t sport, dport;
    if (!parse_dec(f[4], 5, 65535, &sport) || !parse_dec(f[5], 5, 65535, &dport))
        FAIL("PROXY v1: bad port");
    if (v4) {
        uint8_t s[4], d[4];
        if (!parse_ip4(f[2], s) || !parse_ip4(f[3], d))
            FAIL("PROXY v1: bad IPv4 address");
        set_in4(&info->src, &info->src_len, s, (uint16_t)sport);
        set_in4(&info->dst, &info->dst_len, d, (uint16_t)dport);
    } else {
        uint8_t s[16], d[16];
        if (!parse_ip6(f[2], s) || !parse_ip6(f[3], d))
            FAIL("PROXY v1: bad IPv6 address");
        set_in6(&info->src, &info->src_len, s, (uint16_t)sport);
        set_in6(&info->dst, &info->dst_len, d, (uint16_t)dport);
    }
    return CX_OK;
}

/* ---- v2 ------------------------------------------------------------------------------- */

static uint16_t be16(const uint8_t *p)
{
    return (uint16_t)(p[0] << 8 | p[1]);
}

static uint32_t be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static bool set_unix(struct sockaddr_storage *ss, socklen_t *len, const uint8_t p[108])
{
    struct sockaddr_un *sun = (struct sockaddr_un *)ss;
    sun->sun_family = AF_UNIX;
    /* A path name ends at its NUL; an abstract name (first byte NUL) has no terminator, so
     * its length is taken up to its last non-NUL byte (senders pad with NULs); all NULs
     * is an unnamed socket. */
    size_t n;
    if (p[0]) {
        n = 1;
        while (n < 108 && p[n])
            n++;
        if (n < 108)
            n++; /* keep the NUL */
    } else {
        n = 108;
        while (n > 0 && !p[n - 1])
            n--;
    }
    if (n > sizeof sun->sun_path)
        return false;
    memcpy(sun->sun_path, p, n);
    *len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n);
    return true;
}

/* Copies a sub-TLV string into a NUL-terminated field. Embedded NULs are refused: a C
 * string would silently be cut there (a CN "admin\0.evil.example" must not become
 * "admin"), and the spec's strings are US-ASCII or UTF-8 text. */
static bool copy_str(char *dst, size_t cap, const uint8_t *v, size_t n)
{
    if (n >= cap || memchr(v, 0, n))
        return false;
    memcpy(dst, v, n);
    dst[n] = '\0';
    return true;
}

static int parse_ssl(const uint8_t *v, size_t n, cx_proxy_info_t *info, const char **err)
{
    if (n < 5)
        FAIL("PROXY v2: SSL TLV shorter than its client and verify fields");
    info->ssl = true;
    info->ssl_client = v[0];
    info->ssl_verify = be32(v + 1);
    uint32_t seen = 0;
    size_t off = 5;
    while (off < n) {
        if (n - off < 3)
            FAIL("PROXY v2: truncated sub-TLV in the SSL TLV");
        uint8_t type = v[off];
        size_t tlen = be16(v + off + 1);
        if (tlen > n - off - 3)
            FAIL("PROXY v2: sub-TLV overruns the SSL TLV");
        const uint8_t *sv = v + off + 3;
        cx_str_t s = {sv, tlen};
        if (type >= PP2_SUBTYPE_SSL_VERSION && type <= PP2_SUBTYPE_SSL_KEY_ALG) {
            uint32_t bit = 1u << (type - PP2_SUBTYPE_SSL_VERSION);
            if (seen & bit)
                FAIL("PROXY v2: repeated sub-TLV in the SSL TLV");
            seen |= bit;
        }
        switch (type) {
        case PP2_SUBTYPE_SSL_VERSION:
            if (!copy_str(info->tls_version, sizeof info->tls_version, sv, tlen))
                FAIL("PROXY v2: TLS version too long or with a NUL byte");
            info->has_tls_version = true;
            break;
        case PP2_SUBTYPE_SSL_CN:
            if (!copy_str(info->tls_cn, sizeof info->tls_cn, sv, tlen))
                FAIL("PROXY v2: client certificate CN too long or with a NUL byte");
            info->has_cn = true;
            break;
        case PP2_SUBTYPE_SSL_CIPHER:
            info->tls_cipher = s;
            break;
        case PP2_SUBTYPE_SSL_SIG_ALG:
            info->tls_sig_alg = s;
            break;
        case PP2_SUBTYPE_SSL_KEY_ALG:
            info->tls_key_alg = s;
            break;
        default:
            break; /* unknown sub-TLVs are skipped */
        }
        off += 3 + tlen;
    }
    info->tls = (info->ssl_client & CX_PP2_CLIENT_SSL) != 0;
    info->cert_verified =
        info->tls &&
        (info->ssl_client & (CX_PP2_CLIENT_CERT_CONN | CX_PP2_CLIENT_CERT_SESS)) != 0 &&
        info->ssl_verify == 0;
    return CX_OK;
}

/* TLVs in hdr[off..total); hdr is the whole header (for the CRC). */
static int parse_tlvs(const uint8_t *hdr, size_t off, size_t total, cx_proxy_info_t *info,
                      const char **err)
{
    uint64_t seen = 0;
    size_t crc_at = 0;
    while (off < total) {
        if (total - off < 3)
            FAIL("PROXY v2: truncated TLV");
        uint8_t type = hdr[off];
        size_t tlen = be16(hdr + off + 1);
        if (tlen > total - off - 3)
            FAIL("PROXY v2: TLV overruns the header");
        const uint8_t *v = hdr + off + 3;
        cx_str_t s = {v, tlen};
        if (type != PP2_TYPE_NOOP && type <= PP2_TYPE_NETNS) {
            /* Every known type but NOOP is in 0x01..0x30: one bit each in a uint64_t. */
            uint64_t bit = 1ULL << type;
            bool known =
                type <= PP2_TYPE_UNIQUE_ID || type == PP2_TYPE_SSL || type == PP2_TYPE_NETNS;
            if (known && (seen & bit))
                FAIL("PROXY v2: repeated TLV");
            seen |= bit;
        }
        switch (type) {
        case PP2_TYPE_ALPN:
            info->alpn = s;
            break;
        case PP2_TYPE_AUTHORITY:
            info->authority = s;
            break;
        case PP2_TYPE_CRC32C:
            if (tlen != 4)
                FAIL("PROXY v2: CRC32C TLV is not 4 bytes");
            crc_at = off + 3;
            break;
        case PP2_TYPE_UNIQUE_ID:
            if (tlen > UNIQUE_ID_MAX)
                FAIL("PROXY v2: UNIQUE_ID longer than 128 bytes");
            info->unique_id = s;
            break;
        case PP2_TYPE_SSL: {
            int rc = parse_ssl(v, tlen, info, err);
            if (rc)
                return rc;
            break;
        }
        case PP2_TYPE_NETNS:
            info->netns = s;
            break;
        default:
            break; /* NOOP, SSL sub-types out of place, custom, experimental: skipped */
        }
        off += 3 + tlen;
    }
    if (crc_at) {
        /* Spec §2.2.3: the checksum of the whole header with the checksum field zeroed. */
        static const uint8_t zero[4] = {0, 0, 0, 0};
        uint32_t c = cx_proxy_crc32c(0, hdr, crc_at);
        c = cx_proxy_crc32c(c, zero, 4);
        c = cx_proxy_crc32c(c, hdr + crc_at + 4, total - crc_at - 4);
        if (c != be32(hdr + crc_at))
            FAIL("PROXY v2: CRC32C mismatch");
        info->crc32c = true;
    }
    return CX_OK;
}

/* buf starts with the 12-byte signature. */
static int parse_v2(const uint8_t *buf, size_t len, cx_proxy_info_t *info, const char **err)
{
    if (len < 13)
        return CX_EAGAIN;
    if ((buf[12] >> 4) != 2)
        FAIL("PROXY v2: version is not 2");
    uint8_t cmd = buf[12] & 0x0F;
    if (cmd != PP2_CMD_LOCAL && cmd != PP2_CMD_PROXY)
        FAIL("PROXY v2: unknown command");
    if (len < 16)
        return CX_EAGAIN;
    size_t total = 16 + (size_t)be16(buf + 14);
    if (len < total)
        return CX_EAGAIN;
    info->version = 2;
    info->header_len = total;
    if (cmd == PP2_CMD_LOCAL) {
        info->local = true;
        return CX_OK;
    }

    uint8_t fam = buf[13] >> 4, proto = buf[13] & 0x0F;
    if (fam > PP2_AF_UNIX || proto > PP2_PROTO_DGRAM)
        FAIL("PROXY v2: unknown address family or transport");
    if (fam == PP2_AF_UNSPEC && proto == PP2_PROTO_UNSPEC) {
        /* The one mandatory combination: keep the real endpoints, ignore the block (its
         * contents, TLVs included, are in no format we could rely on). */
        info->local = true;
        return CX_OK;
    }
    if (fam == PP2_AF_UNSPEC || proto == PP2_PROTO_UNSPEC)
        FAIL("PROXY v2: family and transport must both be UNSPEC or both be set");
    if (proto != PP2_PROTO_STREAM)
        FAIL("PROXY v2: datagram connection on a stream listener");
    const uint8_t *a = buf + 16;
    size_t alen = total - 16, need;
    switch (fam) {
    case PP2_AF_INET:
        need = 12;
        if (alen < need)
            FAIL("PROXY v2: address block too short for AF_INET");
        set_in4(&info->src, &info->src_len, a, be16(a + 8));
        set_in4(&info->dst, &info->dst_len, a + 4, be16(a + 10));
        break;
    case PP2_AF_INET6:
        need = 36;
        if (alen < need)
            FAIL("PROXY v2: address block too short for AF_INET6");
        set_in6(&info->src, &info->src_len, a, be16(a + 32));
        set_in6(&info->dst, &info->dst_len, a + 16, be16(a + 34));
        break;
    default: /* PP2_AF_UNIX */
        need = 216;
        if (alen < need)
            FAIL("PROXY v2: address block too short for AF_UNIX");
        if (!set_unix(&info->src, &info->src_len, a) ||
            !set_unix(&info->dst, &info->dst_len, a + 108))
            FAIL("PROXY v2: unix socket path too long for this system");
        break;
    }
    return parse_tlvs(buf, 16 + need, total, info, err);
}

int cx_proxy_parse(const uint8_t *buf, size_t len, unsigned versions, cx_proxy_info_t *info,
                   const char **err)
{
    memset(info, 0, sizeof *info);
    if (err)
        *err = NULL;
    if (len == 0)
        return CX_EAGAIN;
    size_t n2 = len < sizeof v2_sig ? len : sizeof v2_sig;
    size_t n1 = len < sizeof v1_sig - 1 ? len : sizeof v1_sig - 1;
    bool is_v2 = memcmp(buf, v2_sig, n2) == 0;
    bool is_v1 = memcmp(buf, v1_sig, n1) == 0;
    if (is_v2) {
        if (!(versions & CX_PROXY_V2))
            FAIL("PROXY v2 header on a listener that accepts only v1");
        return len < sizeof v2_sig ? CX_EAGAIN : parse_v2(buf, len, info, err);
    }
    if (is_v1) {
        if (!(versions & CX_PROXY_V1))
            FAIL("PROXY v1 header on a listener that accepts only v2");
        return len < sizeof v1_sig - 1 ? CX_EAGAIN : parse_v1(buf, len, info, err);
    }
    FAIL("not a PROXY protocol header");
}
