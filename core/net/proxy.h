/* proxy.h: the PROXY protocol header (HAProxy's spec, versions 1 and 2), receiver side.
 *
 * For `enable_proxy_protocol` listeners: a trusted load balancer prefixes each connection
 * with the client's real addresses (and, in v2, TLS facts in TLVs). cx_proxy_parse() reads
 * that header from the first bytes of the connection; the caller then drops
 * info.header_len bytes and hands the rest to the next layer (TLS, WebSocket or MQTT).
 * Pure: no I/O, no state between calls (the header is at most 16 + 65535 bytes and each
 * call costs O(1) for v2 until the whole header is there, O(107) for v1).
 *
 * The spec forbids guessing: a listener configured for the protocol drops a connection
 * that does not start with a valid header, and one not configured never looks for one. */
#ifndef CX_NET_PROXY_H
#define CX_NET_PROXY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "util/str.h"

/* Versions a listener accepts (bit mask for cx_proxy_parse). The spec recommends that a
 * v2 receiver also accept v1, so `enable_proxy_protocol 2` would pass both bits. */
enum {
    CX_PROXY_V1 = 1u << 0,
    CX_PROXY_V2 = 1u << 1,
};

/* Longest v1 line, CRLF included (spec §2.1), and longest v2 header. */
#define CX_PROXY_V1_MAX 107
#define CX_PROXY_V2_MAX (16 + 65535)

/* PP2_TYPE_SSL client bits (spec §2.2.6). */
enum {
    CX_PP2_CLIENT_SSL = 0x01,       /* the client connected over TLS */
    CX_PP2_CLIENT_CERT_CONN = 0x02, /* it presented a certificate on this connection */
    CX_PP2_CLIENT_CERT_SESS = 0x04, /* ... at least once in this TLS session */
};

#define CX_PROXY_TLS_VERSION_MAX 31
#define CX_PROXY_CN_MAX 256 /* 64 characters (X.520 ub-common-name) of up to 4 UTF-8 bytes */

typedef struct cx_proxy_info {
    size_t header_len; /* CX_OK: bytes of the header; what follows is the client's stream */
    uint8_t version;   /* 1 or 2 */
    /* true: keep the socket's own addresses (v2 LOCAL, i.e. a health check from the proxy;
     * v1 UNKNOWN; v2 PROXY with the UNSPEC family). src/dst are then unset (len 0). */
    bool local;
    struct sockaddr_storage src, dst; /* AF_INET, AF_INET6 or AF_UNIX, ports set */
    socklen_t src_len, dst_len;

    /* v2 TLVs. Slices borrow the caller's header bytes: valid until the caller reuses or
     * frees them, i.e. copy what must outlive the header's buffer. p == NULL: absent. */
    cx_str_t alpn;      /* PP2_TYPE_ALPN */
    cx_str_t authority; /* PP2_TYPE_AUTHORITY (SNI host name) */
    cx_str_t unique_id; /* PP2_TYPE_UNIQUE_ID (at most 128 bytes) */
    cx_str_t netns;     /* PP2_TYPE_NETNS */
    bool crc32c;        /* a PP2_TYPE_CRC32C was present (and matched: else CX_EPROTO) */

    /* PP2_TYPE_SSL. The strings the broker keeps (version, CN) are copied, NUL-terminated. */
    bool ssl;            /* the SSL TLV was present */
    uint8_t ssl_client;  /* CX_PP2_CLIENT_* bits as sent */
    uint32_t ssl_verify; /* as sent: 0 = the client certificate verified */
    bool tls;            /* ssl && (ssl_client & CX_PP2_CLIENT_SSL) */
    bool cert_verified;  /* tls, a certificate was presented (CERT_CONN or CERT_SESS) and
                          * ssl_verify == 0 */
    bool has_tls_version, has_cn;
    char tls_version[CX_PROXY_TLS_VERSION_MAX + 1]; /* PP2_SUBTYPE_SSL_VERSION ("TLSv1.3") */
    char tls_cn[CX_PROXY_CN_MAX + 1];               /* PP2_SUBTYPE_SSL_CN */
    cx_str_t tls_cipher, tls_sig_alg, tls_key_alg;  /* sub-TLVs, borrowed like the above */
} cx_proxy_info_t;

/* Parses the PROXY header at buf[0..len), the first bytes of a connection, accepting the
 * versions in `versions` (CX_PROXY_V1 | CX_PROXY_V2). info is cleared on every call.
 * Returns:
 *   CX_OK      a complete, valid header; see info (info->header_len bytes consumed).
 *   CX_EAGAIN  what is there is a valid beginning; call again with more bytes.
 *   CX_EPROTO  not a PROXY header of an accepted version, or a malformed one (including a
 *              CRC32C mismatch): drop the connection. *err (if err is not NULL) is a
 *              static message for the log.
 * Garbage fails at the first byte that cannot begin an accepted header.
 * v1 is parsed strictly (exactly one space between fields, no leading zeros in numbers,
 * CRLF only); IPv6 addresses may use "::" and an embedded IPv4 tail, as inet_ntop writes
 * them. v2 LOCAL skips the address block and TLVs unread, as the spec says ("discard the
 * protocol block including the family"). A TLV that overruns the header or its parent
 * (SSL) is an error; unknown TLV types are skipped; a known TLV type that appears twice is
 * an error, since which one counts would be ambiguous. */
int cx_proxy_parse(const uint8_t *buf, size_t len, unsigned versions, cx_proxy_info_t *info,
                   const char **err);

/* CRC32C (Castagnoli, RFC 4960 appendix B) of p[0..n), continuing from crc (start at 0). */
uint32_t cx_proxy_crc32c(uint32_t crc, const uint8_t *p, size_t n);

#endif
