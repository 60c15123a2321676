/* fuzz_proxy.c: the PROXY protocol header parser (core/net/proxy.c, cx_proxy_parse).
 *
 * Input: one control byte, then the first bytes of a connection.
 *   b0 % 3      the versions the listener accepts: v1, v2 or both
 *
 * The parser is stateless and filter_proxy.c calls it again on the whole buffer each time
 * more bytes arrive, so the target calls it on every prefix of the input, shortest first,
 * and on the whole. Each prefix is copied to the end of a heap block of exactly the input's
 * size, so reading past the prefix is an ASan error. Checked:
 *  - results only CX_OK, CX_EAGAIN or CX_EPROTO (with a message); once a prefix is not
 *    CX_EAGAIN, every longer one gives the same result: no valid header is refused because
 *    it arrived in pieces, and the first CX_OK comes exactly at header_len bytes, with
 *    every shorter prefix CX_EAGAIN;
 *  - CX_OK: header_len <= the bytes given; an accepted version; v1 ends with CRLF within
 *    107 bytes, v2 is 16 + its length field; local means no addresses, else both
 *    addresses of one family with the right sizes; the slices lie inside the header's
 *    TLV area; the copied TLS version and CN are NUL-terminated, within their limits and
 *    set only with their flags; tls and cert_verified follow from the SSL fields;
 *  - the result for the exact header and for the whole input is the same (slices compared
 *    as offsets). */
#include <string.h>
#include <sys/un.h>
#include <netinet/in.h>

#include "fuzz.h"
#include "net/proxy.h"
#include "util/err.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    return 0;
}

/* Replaces a borrowed slice by its offset from base (+1, so absent stays 0). */
static void slice_off(cx_str_t *s, const uint8_t *base, size_t lo, size_t hi)
{
    if (!s->p) {
        FUZZ_CHECK(s->len == 0);
        return;
    }
    FUZZ_CHECK(s->p >= base + lo && s->len <= hi - lo && (size_t)(s->p - base) <= hi - s->len);
    s->p = (const uint8_t *)(uintptr_t)(s->p - base + 1);
}

static void check_str(const char *s, size_t cap, bool has)
{
    size_t n = strnlen(s, cap);
    FUZZ_CHECK(n < cap); /* NUL-terminated inside the field */
    if (!has)
        FUZZ_CHECK(n == 0);
}

/* Checks a CX_OK result and turns its slices into offsets (info is changed). */
static void check_ok(cx_proxy_info_t *info, const uint8_t *buf, size_t len, unsigned versions)
{
    size_t n = info->header_len;
    FUZZ_CHECK(n > 0 && n <= len);
    if (info->version == 1) {
        FUZZ_CHECK(versions & CX_PROXY_V1);
        FUZZ_CHECK(n <= CX_PROXY_V1_MAX && n >= 8 && memcmp(buf, "PROXY ", 6) == 0);
        FUZZ_CHECK(buf[n - 2] == '\r' && buf[n - 1] == '\n');
        FUZZ_CHECK(!memchr(buf, '\n', n - 1));
    } else {
        FUZZ_CHECK(info->version == 2 && (versions & CX_PROXY_V2));
        FUZZ_CHECK(n >= 16 && n == 16 + (size_t)(buf[14] << 8 | buf[15]));
    }
    if (info->local) {
        FUZZ_CHECK(info->src_len == 0 && info->dst_len == 0);
    } else {
        int fam = info->src.ss_family;
        FUZZ_CHECK(fam == info->dst.ss_family);
        if (fam == AF_INET) {
            FUZZ_CHECK(info->src_len == sizeof(struct sockaddr_in) &&
                       info->dst_len == sizeof(struct sockaddr_in));
        } else if (fam == AF_INET6) {
            FUZZ_CHECK(info->src_len == sizeof(struct sockaddr_in6) &&
                       info->dst_len == sizeof(struct sockaddr_in6));
        } else {
            FUZZ_CHECK(fam == AF_UNIX && info->version == 2);
            FUZZ_CHECK(info->src_len >= offsetof(struct sockaddr_un, sun_path) &&
                       info->src_len <= sizeof(struct sockaddr_un));
            FUZZ_CHECK(info->dst_len >= offsetof(struct sockaddr_un, sun_path) &&
                       info->dst_len <= sizeof(struct sockaddr_un));
        }
    }
    /* TLV facts exist only in v2 PROXY headers, after the 16 bytes of the fixed part. */
    bool tlvs = info->version == 2 && !info->local;
    if (!tlvs)
        FUZZ_CHECK(!info->alpn.p && !info->authority.p && !info->unique_id.p && !info->netns.p &&
                   !info->crc32c && !info->ssl);
    size_t lo = 16;
    slice_off(&info->alpn, buf, lo, n);
    slice_off(&info->authority, buf, lo, n);
    slice_off(&info->unique_id, buf, lo, n);
    slice_off(&info->netns, buf, lo, n);
    slice_off(&info->tls_cipher, buf, lo, n);
    slice_off(&info->tls_sig_alg, buf, lo, n);
    slice_off(&info->tls_key_alg, buf, lo, n);
    FUZZ_CHECK(info->unique_id.len <= 128);
    check_str(info->tls_version, sizeof info->tls_version, info->has_tls_version);
    check_str(info->tls_cn, sizeof info->tls_cn, info->has_cn);
    if (!info->ssl)
        FUZZ_CHECK(!info->has_tls_version && !info->has_cn && !info->tls_cipher.p &&
                   !info->tls_sig_alg.p && !info->tls_key_alg.p && !info->ssl_client &&
                   !info->ssl_verify);
    FUZZ_CHECK(info->tls == (info->ssl && (info->ssl_client & CX_PP2_CLIENT_SSL)));
    FUZZ_CHECK(info->cert_verified ==
               (info->tls && info->ssl_verify == 0 &&
                (info->ssl_client & (CX_PP2_CLIENT_CERT_CONN | CX_PP2_CLIENT_CERT_SESS))));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    static const unsigned vers[3] = {CX_PROXY_V1, CX_PROXY_V2, CX_PROXY_V1 | CX_PROXY_V2};
    unsigned versions = vers[data[0] % 3];
    data++;
    size--;

    uint8_t *block = malloc(size ? size : 1);
    FUZZ_CHECK(block != NULL);
    int first_rc = CX_EAGAIN;
    cx_proxy_info_t first, info;
    memset(&first, 0, sizeof first);
    for (size_t k = 0; k <= size; k++) {
        uint8_t *p = block + (size - k);
        if (k)
            memcpy(p, data, k);
        const char *err = "not set";
        memset(&info, 0x5A, sizeof info);
        int rc = cx_proxy_parse(p, k, versions, &info, &err);
        if (rc == CX_EPROTO) {
            FUZZ_CHECK(err != NULL && *err != '\0');
        } else {
            FUZZ_CHECK(rc == CX_OK || rc == CX_EAGAIN);
            FUZZ_CHECK(err == NULL);
        }
        if (rc == CX_OK)
            check_ok(&info, p, k, versions);
        if (first_rc == CX_EAGAIN) {
            if (rc == CX_OK)
                FUZZ_CHECK(info.header_len == k); /* not a byte later than needed */
            first_rc = rc;
            if (rc == CX_OK)
                first = info;
        } else {
            FUZZ_CHECK(rc == first_rc);
            if (rc == CX_OK)
                FUZZ_CHECK(memcmp(&info, &first, sizeof info) == 0);
        }
    }
    free(block);
    return 0;
}
