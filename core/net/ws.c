/* ws.c: WebSocket (RFC 6455) server side: the opening handshake, the client frame decoder
 * and the server frame encoder (see ws.h).
 *
 * The handshake parser searches for the end of the header block first (resuming where the
 * previous call stopped, so a request trickling in byte by byte costs O(n) in all) and
 * parses the block only once it is whole. HTTP syntax follows RFC 7230 §3 strictly where
 * laxness has been a source of request smuggling: CRLF line ends only, no obsolete line
 * folding, no whitespace before the colon, no body.
 *
 * The frame decoder validates a frame header from its first two bytes on (reserved bits,
 * opcode, mask bit and the control-frame rules need nothing more), so garbage fails before
 * any length is trusted; lengths are checked against the limits before any payload is
 * waited for. The receive state changes only when a frame (or a streamed piece) is
 * returned, so a call that ends in CX_EAGAIN can simply be repeated with more bytes. */
#include "ws.h"

#include <stdio.h>
#include <string.h>

#include <openssl/evp.h>

#include "util/err.h"

/* ---- small helpers -------------------------------------------------------------------- */

static const char ws_guid[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

static int lower(int c)
{
    return c >= 'A' && c <= 'Z' ? c + ('a' - 'A') : c;
}

static bool str_ieq(cx_str_t s, const char *lit)
{
    size_t n = strlen(lit);
    if (s.len != n)
        return false;
    for (size_t i = 0; i < n; i++)
        if (lower(s.p[i]) != lower((unsigned char)lit[i]))
            return false;
    return true;
}

static bool is_ows(uint8_t c)
{
    return c == ' ' || c == '\t';
}

static cx_str_t trim_ows(cx_str_t s)
{
    while (s.len && is_ows(s.p[0])) {
        s.p++;
        s.len--;
    }
    while (s.len && is_ows(s.p[s.len - 1]))
        s.len--;
    return s;
}

/* tchar (RFC 7230 §3.2.6). */
static bool is_tchar(uint8_t c)
{
    if ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'))
        return true;
    return c && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

/* Bytes that may not appear anywhere in a request head. CR and LF are checked as line
 * ends; HT is whitespace. */
static bool is_forbidden_ctl(uint8_t c)
{
    return (c < 0x20 && c != '\r' && c != '\n' && c != '\t') || c == 0x7F;
}

/* Calls fn on each non-empty element of a comma-separated list (RFC 7230 §7: empty
 * elements and OWS around elements are allowed). Stops when fn returns true. */
typedef bool (*list_fn)(cx_str_t elem, void *ud);

static bool list_any(cx_str_t v, list_fn fn, void *ud)
{
    size_t i = 0;
    while (i <= v.len) {
        size_t j = i;
        while (j < v.len && v.p[j] != ',')
            j++;
        cx_str_t e = trim_ows((cx_str_t){v.p + i, j - i});
        if (e.len && fn(e, ud))
            return true;
        i = j + 1;
    }
    return false;
}

static bool elem_ieq(cx_str_t e, void *lit)
{
    return str_ieq(e, lit);
}

static bool b64_char(uint8_t c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+' ||
           c == '/';
}

/* A Sec-WebSocket-Key must base64-decode to 16 bytes (RFC 6455 §4.1 item 7): exactly 22
 * alphabet characters and "==". */
static bool key_is_valid(cx_str_t k)
{
    if (k.len != 24 || k.p[22] != '=' || k.p[23] != '=')
        return false;
    for (size_t i = 0; i < 22; i++)
        if (!b64_char(k.p[i]))
            return false;
    return true;
}

/* ---- opening handshake ---------------------------------------------------------------- */

void cx_ws_request_init(cx_ws_request_t *req)
{
    memset(req, 0, sizeof *req);
}

static int hs_fail(cx_ws_request_t *req, int rc, int status, const char *msg)
{
    req->status = status;
    req->error = msg;
    return rc;
}

#define HS_BAD(msg) return hs_fail(req, CX_EPROTO, 400, (msg))

/* What the header fields said, gathered before any semantic check so that the checks can
 * run in a fixed order whatever the order of the fields. */
typedef struct hs_fields {
    int host_n, key_n, version_n, origin_n, proto_n;
    cx_str_t host, key, version, origin;
    bool upgrade_ws;
    bool conn_upgrade;
    bool has_body;
    const char *subprotocol;
} hs_fields_t;

/* Sec-WebSocket-Protocol: the first offered name we speak wins (the client lists them in
 * its order of preference). Names are compared exactly: the browser fails the connection
 * unless the answer repeats one of its offers byte for byte. */
static bool pick_proto(cx_str_t e, void *ud)
{
    const char **chosen = ud;
    if (cx_str_eq_cstr(e, "mqtt"))
        *chosen = "mqtt";
    else if (cx_str_eq_cstr(e, "mqttv3.1"))
        *chosen = "mqttv3.1";
    return *chosen != NULL;
}

static void hs_field(hs_fields_t *h, cx_str_t name, cx_str_t value)
{
    if (str_ieq(name, "host")) {
        h->host_n++;
        h->host = value;
    } else if (str_ieq(name, "upgrade")) {
        h->upgrade_ws |= list_any(value, elem_ieq, "websocket");
    } else if (str_ieq(name, "connection")) {
        h->conn_upgrade |= list_any(value, elem_ieq, "upgrade");
    } else if (str_ieq(name, "sec-websocket-key")) {
        h->key_n++;
        h->key = value;
    } else if (str_ieq(name, "sec-websocket-version")) {
        h->version_n++;
        h->version = value;
    } else if (str_ieq(name, "sec-websocket-protocol")) {
        /* May be repeated (RFC 6455 §11.3.4); the fields form one list. */
        h->proto_n++;
        if (!h->subprotocol)
            list_any(value, pick_proto, &h->subprotocol);
    } else if (str_ieq(name, "origin")) {
        h->origin_n++;
        h->origin = value;
    } else if (str_ieq(name, "content-length")) {
        if (!cx_str_eq_cstr(value, "0"))
            h->has_body = true;
    } else if (str_ieq(name, "transfer-encoding")) {
        h->has_body = true;
    }
}

/* request-target: origin-form ("/path?query") or absolute-form ("http://host/path"). */
static int hs_target(cx_ws_request_t *req, cx_str_t t)
{
    req->target = t;
    size_t start;
    if (t.p[0] == '/') {
        start = 0;
    } else {
        static const char *const schemes[] = {"http://", "https://", "ws://", "wss://"};
        size_t i, n = 0;
        for (i = 0; i < sizeof schemes / sizeof schemes[0]; i++) {
            n = strlen(schemes[i]);
            if (t.len > n && str_ieq((cx_str_t){t.p, n}, schemes[i]))
                break;
        }
        if (i == sizeof schemes / sizeof schemes[0])
            HS_BAD("request target is neither a path nor an absolute URI");
        start = n;
        while (start < t.len && t.p[start] != '/' && t.p[start] != '?')
            start++;
        if (start == t.len || t.p[start] == '?') {
            req->path = CX_STR_LIT("/");
            return CX_OK;
        }
    }
    size_t end = start;
    while (end < t.len && t.p[end] != '?')
        end++;
    req->path = (cx_str_t){t.p + start, end - start};
    return CX_OK;
}

/* Parses the whole head buf[0..n), which ends with "\r\n\r\n" and holds no forbidden
 * control characters, no bare CR and no bare LF (the scan checked). */
static int hs_parse(cx_ws_request_t *req, const uint8_t *buf, size_t n, unsigned flags)
{
    /* request-line = method SP request-target SP HTTP-version CRLF */
    size_t i = 0;
    while (i < n && is_tchar(buf[i]))
        i++;
    if (i == 0 || buf[i] != ' ')
        HS_BAD("malformed request line (method)");
    cx_str_t method = {buf, i};
    size_t t0 = ++i;
    while (i < n && buf[i] > 0x20 && buf[i] < 0x7F)
        i++;
    if (i == t0 || buf[i] != ' ')
        HS_BAD("malformed request line (target)");
    cx_str_t target = {buf + t0, i - t0};
    i++;
    if (n - i < 10 || memcmp(buf + i, "HTTP/", 5) != 0 || buf[i + 5] < '0' || buf[i + 5] > '9' ||
        buf[i + 6] != '.' || buf[i + 7] < '0' || buf[i + 7] > '9' || buf[i + 8] != '\r')
        HS_BAD("malformed request line (version)");
    int major = buf[i + 5] - '0', minor = buf[i + 7] - '0';
    i += 10;

    hs_fields_t h;
    memset(&h, 0, sizeof h);
    for (;;) {
        if (buf[i] == '\r') /* the empty line: the scan guarantees buf[i + 1] == '\n' */
            break;
        if (is_ows(buf[i]))
            HS_BAD("obsolete line folding in a header field");
        size_t k = i;
        while (is_tchar(buf[k]))
            k++;
        if (k == i || buf[k] != ':')
            HS_BAD("malformed header field name");
        cx_str_t name = {buf + i, k - i};
        size_t v0 = ++k;
        while (buf[k] != '\r')
            k++;
        hs_field(&h, name, trim_ows((cx_str_t){buf + v0, k - v0}));
        i = k + 2;
    }

    /* Semantic checks, most general first, so that a plain HTTP request is reported as
     * such and not as whichever WebSocket field it happens to lack first. */
    req->websocket = h.upgrade_ws;
    if (!h.upgrade_ws)
        HS_BAD("not a WebSocket upgrade request (no \"Upgrade: websocket\")");
    if (!cx_str_eq_cstr(method, "GET"))
        HS_BAD("WebSocket upgrade with a method other than GET");
    if (major != 1 || minor < 1)
        HS_BAD("WebSocket upgrade needs HTTP/1.1");
    if (hs_target(req, target))
        return CX_EPROTO;
    if (h.host_n != 1 || h.host.len == 0)
        HS_BAD(h.host_n > 1 ? "more than one Host header" : "no Host header");
    if (!h.conn_upgrade)
        HS_BAD("Connection header without the \"upgrade\" option");
    if (h.has_body)
        HS_BAD("WebSocket upgrade request with a body");
    if (h.version_n > 1)
        HS_BAD("more than one Sec-WebSocket-Version header");
    if (h.version_n == 0 || !cx_str_eq_cstr(h.version, "13"))
        return hs_fail(req, CX_EPROTO, 426, "Sec-WebSocket-Version is not 13");
    if (h.key_n != 1)
        HS_BAD(h.key_n ? "more than one Sec-WebSocket-Key header" : "no Sec-WebSocket-Key");
    if (!key_is_valid(h.key))
        HS_BAD("Sec-WebSocket-Key does not decode to 16 bytes");
    if (h.origin_n > 1)
        HS_BAD("more than one Origin header");
    if (!h.subprotocol && (h.proto_n || !(flags & CX_WS_ALLOW_NO_SUBPROTOCOL)))
        HS_BAD("no \"mqtt\" or \"mqttv3.1\" WebSocket subprotocol offered");

    req->host = h.host;
    req->origin = h.origin_n ? h.origin : CX_STR_NULL;
    memcpy(req->key, h.key.p, 24);
    req->key[24] = '\0';
    req->subprotocol = h.subprotocol;
    req->header_len = n;
    req->status = 0;
    req->error = NULL;
    return CX_OK;
}

int cx_ws_request_parse(cx_ws_request_t *req, const uint8_t *buf, size_t len, size_t max,
                        unsigned flags)
{
    size_t lim = len < max ? len : max;
    for (size_t i = req->scan_; i < lim; i++) {
        uint8_t c = buf[i];
        if (is_forbidden_ctl(c))
            return hs_fail(req, CX_EPROTO, 400, "control character in the request head");
        if (i > 0 && buf[i - 1] == '\r' && c != '\n')
            return hs_fail(req, CX_EPROTO, 400, "CR without LF in the request head");
        if (c == '\n') {
            if (i == 0 || buf[i - 1] != '\r')
                return hs_fail(req, CX_EPROTO, 400, "bare LF in the request head");
            if (i >= 3 && buf[i - 2] == '\n') {
                req->scan_ = i + 1;
                return hs_parse(req, buf, i + 1, flags);
            }
        }
    }
    req->scan_ = lim;
    if (len >= max)
        return hs_fail(req, CX_ETOOBIG, 431, "request head larger than the limit");
    return CX_EAGAIN;
}

int cx_ws_accept_key(const char *key, size_t key_len, char out[29])
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int md_len = 0;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    if (!ctx)
        return CX_EIO;
    int ok = EVP_DigestInit_ex(ctx, EVP_sha1(), NULL) && EVP_DigestUpdate(ctx, key, key_len) &&
             EVP_DigestUpdate(ctx, ws_guid, sizeof ws_guid - 1) &&
             EVP_DigestFinal_ex(ctx, md, &md_len) && md_len == 20;
    EVP_MD_CTX_free(ctx);
    if (!ok)
        return CX_EIO;
    /* 20 bytes -> 28 characters, NUL-terminated by EVP_EncodeBlock. */
    EVP_EncodeBlock((unsigned char *)out, md, 20);
    return CX_OK;
}

int cx_ws_response_accept(const cx_ws_request_t *req, cx_buf_t *out)
{
    char accept[29];
    int rc = cx_ws_accept_key(req->key, strlen(req->key), accept);
    if (rc)
        return rc;
    char resp[256];
    int n = snprintf(resp, sizeof resp,
                     "HTTP/1.1 101 Switching Protocols\r\n"
                     "Upgrade: websocket\r\n"
                     "Connection: Upgrade\r\n"
                     "Sec-WebSocket-Accept: %s\r\n"
                     "%s%s%s"
                     "\r\n",
                     accept, req->subprotocol ? "Sec-WebSocket-Protocol: " : "",
                     req->subprotocol ? req->subprotocol : "", req->subprotocol ? "\r\n" : "");
    CX_ASSERT(n > 0 && (size_t)n < sizeof resp);
    return cx_buf_append(out, resp, (size_t)n);
}

int cx_ws_response_error(int status, cx_buf_t *out)
{
    const char *reason, *extra = "", *conn = "close";
    switch (status) {
    case 400:
        reason = "Bad Request";
        break;
    case 403:
        reason = "Forbidden";
        break;
    case 404:
        reason = "Not Found";
        break;
    case 426:
        /* RFC 7231 §6.5.15 wants Upgrade in a 426, RFC 7230 §6.7 then wants Connection to
         * name it; RFC 6455 §4.4 wants the versions we speak. */
        reason = "Upgrade Required";
        extra = "Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\n";
        conn = "Upgrade, close";
        break;
    case 431:
        reason = "Request Header Fields Too Large";
        break;
    default:
        return CX_EINVAL;
    }
    char resp[384];
    int n = snprintf(resp, sizeof resp,
                     "HTTP/1.1 %d %s\r\n"
                     "Connection: %s\r\n"
                     "%s"
                     "Content-Type: text/plain\r\n"
                     "Content-Length: %zu\r\n"
                     "\r\n"
                     "%s\n",
                     status, reason, conn, extra, strlen(reason) + 1, reason);
    CX_ASSERT(n > 0 && (size_t)n < sizeof resp);
    return cx_buf_append(out, resp, (size_t)n);
}

/* ---- UTF-8 ---------------------------------------------------------------------------- */

/* Incremental validator (RFC 3629 §4 table). `need` is the number of continuation bytes
 * still expected and [lo, hi] the range allowed for the next one; the first continuation
 * byte's range excludes overlongs (E0, F0), surrogates (ED) and values past U+10FFFF
 * (F4). Returns false at the first bad byte. */
static bool utf8_feed(uint8_t *need, uint8_t *lo, uint8_t *hi, const uint8_t *p, size_t n)
{
    uint8_t nd = *need, l = *lo, h = *hi;
    for (size_t i = 0; i < n; i++) {
        uint8_t c = p[i];
        if (nd) {
            if (c < l || c > h)
                return false;
            nd--;
            l = 0x80;
            h = 0xBF;
        } else if (c < 0x80) {
            continue;
        } else if (c < 0xC2) {
            return false; /* continuation byte without a lead, or overlong 2-byte */
        } else if (c < 0xE0) {
            nd = 1;
            l = 0x80;
            h = 0xBF;
        } else if (c < 0xF0) {
            nd = 2;
            l = c == 0xE0 ? 0xA0 : 0x80;
            h = c == 0xED ? 0x9F : 0xBF;
        } else if (c < 0xF5) {
            nd = 3;
            l = c == 0xF0 ? 0x90 : 0x80;
            h = c == 0xF4 ? 0x8F : 0xBF;
        } else {
            return false;
        }
    }
    *need = nd;
    *lo = l;
    *hi = h;
    return true;
}

bool cx_ws_utf8_is_valid(const uint8_t *p, size_t n)
{
    uint8_t need = 0, lo = 0, hi = 0;
    return utf8_feed(&need, &lo, &hi, p, n) && need == 0;
}

/* ---- frames --------------------------------------------------------------------------- */

bool cx_ws_close_code_is_valid(uint16_t code)
{
    return (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1011) ||
           (code >= 3000 && code <= 4999);
}

void cx_ws_mask(uint8_t *p, size_t n, const uint8_t key[4], uint64_t offset)
{
    /* Eight key bytes rotated to the offset, so whole words can be XORed; memcpy keeps the
     * word accesses legal at any alignment and compiles to plain loads and stores. */
    uint8_t k[8];
    for (size_t i = 0; i < 8; i++)
        k[i] = key[(offset + i) & 3];
    uint64_t kw;
    memcpy(&kw, k, 8);
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t w;
        memcpy(&w, p + i, 8);
        w ^= kw;
        memcpy(p + i, &w, 8);
    }
    for (; i < n; i++)
        p[i] ^= k[i & 7];
}

void cx_ws_rx_init(cx_ws_rx_t *rx, uint64_t max_frame, uint64_t max_message, unsigned flags)
{
    memset(rx, 0, sizeof *rx);
    rx->max_frame = max_frame;
    rx->max_message = max_message;
    rx->flags = flags;
}

static int ws_fail(cx_ws_error_t *err, int rc, uint16_t code, const char *msg)
{
    if (err) {
        err->close_code = code;
        err->msg = msg;
    }
    return rc;
}

#define PROTO(msg) return ws_fail(err, CX_EPROTO, CX_WS_CLOSE_PROTOCOL, (msg))

static int again(size_t *need, size_t n)
{
    if (need)
        *need = n;
    return CX_EAGAIN;
}

static bool is_control(uint8_t op)
{
    return (op & 0x8) != 0;
}

/* Validates a close frame's (unmasked) payload (RFC 6455 §5.5.1, §7.4). */
static int close_payload(cx_ws_frame_t *f, cx_ws_error_t *err)
{
    f->close_code = CX_WS_CLOSE_NO_STATUS;
    f->close_reason = CX_STR_NULL;
    if (f->len == 0)
        return CX_OK;
    if (f->len == 1)
        PROTO("close frame with a 1-byte payload");
    uint16_t code = (uint16_t)(f->payload[0] << 8 | f->payload[1]);
    if (!cx_ws_close_code_is_valid(code))
        PROTO("close frame with a code that is not allowed on the wire");
    f->close_code = code;
    f->close_reason = (cx_str_t){f->payload + 2, f->len - 2};
    if (!cx_ws_utf8_is_valid(f->close_reason.p, f->close_reason.len))
        return ws_fail(err, CX_EPROTO, CX_WS_CLOSE_BAD_DATA, "close reason is not UTF-8");
    return CX_OK;
}

/* Unmasks and checks one piece of data payload of the current frame, then moves the
 * message state on when the piece ends the frame. */
static int data_piece(cx_ws_rx_t *rx, cx_ws_frame_t *f, const uint8_t mask[4], uint64_t offset,
                      cx_ws_error_t *err)
{
    cx_ws_mask(f->payload, f->len, mask, offset);
    if (f->msg_opcode == CX_WS_OP_TEXT &&
        !utf8_feed(&rx->u8_need, &rx->u8_lo, &rx->u8_hi, f->payload, f->len))
        return ws_fail(err, CX_EPROTO, CX_WS_CLOSE_BAD_DATA, "text message is not UTF-8");
    if (f->frame_end && f->fin) {
        if (f->msg_opcode == CX_WS_OP_TEXT && rx->u8_need)
            return ws_fail(err, CX_EPROTO, CX_WS_CLOSE_BAD_DATA,
                           "text message ends inside a UTF-8 character");
        f->message_end = true;
        rx->in_message = false;
        rx->msg_len = 0;
        rx->u8_need = 0;
    }
    return CX_OK;
}

/* Streaming mode: more payload of the frame whose header was returned earlier. */
static int stream_more(cx_ws_rx_t *rx, uint8_t *buf, size_t len, cx_ws_frame_t *f, size_t *need,
                       cx_ws_error_t *err)
{
    uint64_t left = rx->frame_len - rx->frame_done;
    if (len == 0)
        return again(need, left > SIZE_MAX ? SIZE_MAX : (size_t)left);
    size_t n = left < len ? (size_t)left : len;
    f->opcode = rx->frame_opcode;
    f->msg_opcode = rx->msg_opcode;
    f->fin = rx->frame_fin;
    f->frame_len = rx->frame_len;
    f->payload = buf;
    f->len = n;
    f->consumed = n;
    f->frame_end = n == left;
    uint64_t offset = rx->frame_done;
    rx->frame_done += n;
    if (f->frame_end)
        rx->in_frame = false;
    return data_piece(rx, f, rx->mask, offset, err);
}

static int decode_one(cx_ws_rx_t *rx, uint8_t *buf, size_t len, cx_ws_frame_t *f, size_t *need,
                      cx_ws_error_t *err);

/* A decode error is final: some (a bad UTF-8 sequence, 1007) are found after the message
 * state moved, so decoding on could accept what was just refused. */
int cx_ws_decode(cx_ws_rx_t *rx, uint8_t *buf, size_t len, cx_ws_frame_t *f, size_t *need,
                 cx_ws_error_t *err)
{
    if (rx->failed) {
        memset(f, 0, sizeof *f);
        if (need)
            *need = 0;
        return ws_fail(err, rx->failed, rx->failed_code, "the stream already failed");
    }
    cx_ws_error_t mine = {0};
    int rc = decode_one(rx, buf, len, f, need, err ? err : &mine);
    if (rc != CX_OK && rc != CX_EAGAIN) {
        rx->failed = rc;
        rx->failed_code = (err ? err : &mine)->close_code;
    }
    return rc;
}

static int decode_one(cx_ws_rx_t *rx, uint8_t *buf, size_t len, cx_ws_frame_t *f, size_t *need,
                      cx_ws_error_t *err)
{
    memset(f, 0, sizeof *f);
    if (need)
        *need = 0;
    if (rx->in_frame)
        return stream_more(rx, buf, len, f, need, err);
    if (rx->closed) {
        if (len == 0)
            return again(need, 1);
        return ws_fail(err, CX_ECLOSED, CX_WS_CLOSE_PROTOCOL, "data after the close frame");
    }
    if (len < 1)
        return again(need, 2);

    /* First byte: FIN, RSV1-3, opcode. */
    uint8_t b0 = buf[0];
    bool fin = (b0 & 0x80) != 0;
    uint8_t op = b0 & 0x0F;
    if (b0 & 0x70)
        PROTO("reserved bits set in a frame (no extension was negotiated)");
    switch (op) {
    case CX_WS_OP_CONT:
    case CX_WS_OP_TEXT:
    case CX_WS_OP_BINARY:
    case CX_WS_OP_CLOSE:
    case CX_WS_OP_PING:
    case CX_WS_OP_PONG:
        break;
    default:
        PROTO("frame with an unknown opcode");
    }
    bool control = is_control(op);
    if (control && !fin)
        PROTO("fragmented control frame");
    if (!control) {
        if (op == CX_WS_OP_CONT && !rx->in_message)
            PROTO("continuation frame without a message to continue");
        if (op != CX_WS_OP_CONT && rx->in_message)
            PROTO("new data frame inside a fragmented message");
        if (op == CX_WS_OP_TEXT && (rx->flags & CX_WS_RX_BINARY_ONLY))
            return ws_fail(err, CX_EPROTO, CX_WS_CLOSE_UNSUPPORTED,
                           "text frame (MQTT over WebSocket uses binary frames)");
    }
    if (len < 2)
        return again(need, 1);

    /* Second byte: MASK, 7-bit length. */
    uint8_t b1 = buf[1];
    if (!(b1 & 0x80))
        PROTO("client frame is not masked");
    uint64_t plen = b1 & 0x7F;
    if (control && plen > CX_WS_CONTROL_MAX)
        PROTO("control frame payload longer than 125 bytes");
    size_t hl = 2 + (plen == 126 ? 2 : plen == 127 ? 8 : 0) + 4;
    if (len < hl)
        return again(need, hl - len);
    if (plen == 126) {
        plen = (uint64_t)buf[2] << 8 | buf[3];
    } else if (plen == 127) {
        if (buf[2] & 0x80)
            PROTO("64-bit frame length with the most significant bit set");
        plen = 0;
        for (size_t i = 2; i < 10; i++)
            plen = plen << 8 | buf[i];
    }
    const uint8_t *mask = buf + hl - 4;

    if (plen > rx->max_frame)
        return ws_fail(err, CX_ETOOBIG, CX_WS_CLOSE_TOO_BIG, "frame larger than the limit");
    uint8_t msg_op = 0;
    if (!control) {
        uint64_t base = op == CX_WS_OP_CONT ? rx->msg_len : 0;
        if (plen > rx->max_message || base > rx->max_message - plen)
            return ws_fail(err, CX_ETOOBIG, CX_WS_CLOSE_TOO_BIG, "message larger than the limit");
        msg_op = op == CX_WS_OP_CONT ? rx->msg_opcode : op;
    }

    f->opcode = op;
    f->msg_opcode = msg_op;
    f->fin = fin;
    f->frame_len = plen;
    f->payload = buf + hl;

    if (!control && (rx->flags & CX_WS_RX_STREAM)) {
        /* Streaming: take the header now, with whatever payload is there. */
        size_t avail = len - hl;
        size_t n = plen < avail ? (size_t)plen : avail;
        f->len = n;
        f->consumed = hl + n;
        f->frame_end = n == plen;
        if (op != CX_WS_OP_CONT) {
            rx->msg_opcode = op;
            rx->msg_len = 0;
            rx->u8_need = 0;
        }
        rx->in_message = true;
        rx->msg_len += plen;
        if (!f->frame_end) {
            rx->in_frame = true;
            rx->frame_fin = fin;
            rx->frame_opcode = op;
            memcpy(rx->mask, mask, 4);
            rx->frame_len = plen;
            rx->frame_done = n;
        }
        return data_piece(rx, f, mask, 0, err);
    }

    /* Whole frame. */
    if (plen > SIZE_MAX - hl)
        return ws_fail(err, CX_ETOOBIG, CX_WS_CLOSE_TOO_BIG, "frame larger than memory");
    size_t total = hl + (size_t)plen;
    if (len < total)
        return again(need, total - len);
    f->len = (size_t)plen;
    f->consumed = total;
    f->frame_end = true;
    if (control) {
        cx_ws_mask(f->payload, f->len, mask, 0);
        if (op == CX_WS_OP_CLOSE) {
            int rc = close_payload(f, err);
            if (rc)
                return rc;
            rx->closed = true;
        }
        return CX_OK;
    }
    /* The message state moves only now that the frame is returned. */
    if (op != CX_WS_OP_CONT) {
        rx->msg_opcode = op;
        rx->msg_len = 0;
        rx->u8_need = 0;
    }
    rx->in_message = true;
    rx->msg_len += plen;
    return data_piece(rx, f, mask, 0, err);
}

/* ---- server frames -------------------------------------------------------------------- */

size_t cx_ws_header_encode(uint8_t out[CX_WS_SERVER_HEADER_MAX], uint8_t opcode, bool fin,
                           uint64_t len)
{
    CX_ASSERT(len <= INT64_MAX); /* RFC 6455 §5.2: the most significant bit must be 0 */
    out[0] = (uint8_t)((fin ? 0x80 : 0) | (opcode & 0x0F));
    if (len < 126) {
        out[1] = (uint8_t)len;
        return 2;
    }
    if (len <= 0xFFFF) {
        out[1] = 126;
        out[2] = (uint8_t)(len >> 8);
        out[3] = (uint8_t)len;
        return 4;
    }
    out[1] = 127;
    for (size_t i = 0; i < 8; i++)
        out[2 + i] = (uint8_t)(len >> (56 - 8 * i));
    return 10;
}

int cx_ws_frame_encode(cx_buf_t *out, uint8_t opcode, const void *payload, size_t len)
{
    switch (opcode) {
    case CX_WS_OP_TEXT:
    case CX_WS_OP_BINARY:
        break;
    case CX_WS_OP_CLOSE:
    case CX_WS_OP_PING:
    case CX_WS_OP_PONG:
        if (len > CX_WS_CONTROL_MAX)
            return CX_EINVAL;
        break;
    default:
        return CX_EINVAL;
    }
    uint8_t hdr[CX_WS_SERVER_HEADER_MAX];
    size_t hl = cx_ws_header_encode(hdr, opcode, true, len);
    if (len > SIZE_MAX - hl)
        return CX_ETOOBIG;
    /* Reserve once so that the two appends cannot fail half way. */
    int rc = cx_buf_reserve(out, hl + len);
    if (rc)
        return rc;
    cx_buf_append(out, hdr, hl);
    cx_buf_append(out, payload, len);
    return CX_OK;
}

int cx_ws_close_encode(cx_buf_t *out, uint16_t code, const char *reason)
{
    if (code == 0)
        return cx_ws_frame_encode(out, CX_WS_OP_CLOSE, NULL, 0);
    if (!cx_ws_close_code_is_valid(code))
        return CX_EINVAL;
    uint8_t p[2 + CX_WS_CLOSE_REASON_MAX];
    p[0] = (uint8_t)(code >> 8);
    p[1] = (uint8_t)code;
    size_t n = reason ? strlen(reason) : 0;
    if (n > CX_WS_CLOSE_REASON_MAX) {
        /* Cut before a continuation byte so that a character is never split. */
        n = CX_WS_CLOSE_REASON_MAX;
        while (n > 0 && ((uint8_t)reason[n] & 0xC0) == 0x80)
            n--;
    }
    if (n)
        memcpy(p + 2, reason, n);
    return cx_ws_frame_encode(out, CX_WS_OP_CLOSE, p, 2 + n);
}
