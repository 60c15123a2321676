/* test_ws.c: WebSocket handshake, frame decoder and encoder (core/net/ws.c).
 *
 * Layout: the RFC 6455 examples; the opening handshake (valid requests as curl and
 * browsers send them, each required field missing, wrong values, HTTP syntax errors,
 * split at every byte, over the cap); the frame decoder (length forms, fragmentation,
 * every rule broken once, byte-by-byte feeding compared with one buffer, streaming mode);
 * the encoder; a fixed-seed mutation loop for the sanitizers.
 *
 * Inputs are copied into exactly-sized heap blocks so that AddressSanitizer catches any
 * read past the end. */
#include <stdarg.h>

#include "cx_test.h"
#include "net/ws.h"
#include "util/err.h"

/* ---- helpers -------------------------------------------------------------------------- */

#define RING 64
static uint8_t *ring[RING];
static size_t ring_pos;

/* Heap copies stay reachable from the ring, so LeakSanitizer stays quiet. */
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

#define CHECK_MEM_EQ(p, n, q, m)                                                                   \
    do {                                                                                           \
        size_t n_ = (n), m_ = (m);                                                                 \
        if (n_ != m_ || (n_ && memcmp((p), (q), n_) != 0))                                         \
            CX_FAIL_("%s (%zu bytes) != %s (%zu bytes)", #p, n_, #q, m_);                          \
    } while (0)

static const uint8_t key0[4] = {0x37, 0xfa, 0x21, 0x3d};

enum { LEN_MIN = 0, LEN_16 = 16, LEN_64 = 64 };

/* Builds a client frame: b0 (FIN/RSV/opcode) as given, masked with `key` unless key is
 * NULL, the length in its minimal form or forced to the 16/64-bit form. */
static uint8_t *mkframe(uint8_t b0, const uint8_t *key, int form, const void *payload, size_t n,
                        size_t *out_len)
{
    size_t cap = 14 + n;
    uint8_t *f = malloc(cap);
    CHECK(f != NULL);
    size_t i = 0;
    f[i++] = b0;
    uint8_t m = key ? 0x80 : 0;
    if (form == LEN_MIN && n < 126) {
        f[i++] = m | (uint8_t)n;
    } else if ((form == LEN_MIN && n <= 0xFFFF) || form == LEN_16) {
        f[i++] = m | 126;
        f[i++] = (uint8_t)(n >> 8);
        f[i++] = (uint8_t)n;
    } else {
        f[i++] = m | 127;
        for (int s = 56; s >= 0; s -= 8)
            f[i++] = (uint8_t)((uint64_t)n >> s);
    }
    if (key) {
        memcpy(f + i, key, 4);
        i += 4;
    }
    if (n)
        memcpy(f + i, payload, n);
    if (key)
        for (size_t j = 0; j < n; j++)
            f[i + j] ^= key[j & 3];
    *out_len = i + n;
    uint8_t *c = keep(f, i + n);
    free(f);
    return c;
}

static uint8_t *frame(uint8_t b0, const void *payload, size_t n, size_t *out_len)
{
    return mkframe(b0, key0, LEN_MIN, payload, n, out_len);
}

/* Frames concatenated into one exactly-sized heap block, owned by the test (stream_free). */
typedef struct stream {
    uint8_t *p;
    size_t len;
} stream_t;

static void add(stream_t *s, const uint8_t *p, size_t n)
{
    s->p = realloc(s->p, s->len + n);
    CHECK(s->p != NULL);
    memcpy(s->p + s->len, p, n);
    s->len += n;
}

static void stream_free(stream_t *s)
{
    free(s->p);
    s->p = NULL;
    s->len = 0;
}

static void add_mk(stream_t *s, uint8_t b0, const uint8_t *key, int form, const void *payload,
                   size_t n)
{
    size_t l;
    uint8_t *f = mkframe(b0, key, form, payload, n, &l);
    add(s, f, l);
}

static void add_frame(stream_t *s, uint8_t b0, const void *payload, size_t n)
{
    size_t l;
    uint8_t *f = frame(b0, payload, n, &l);
    add(s, f, l);
}

static void rx_default(cx_ws_rx_t *rx, unsigned flags)
{
    cx_ws_rx_init(rx, 1 << 20, 1 << 20, flags);
}

/* Decodes one frame from an exact heap copy. */
static int dec1(cx_ws_rx_t *rx, const uint8_t *p, size_t n, cx_ws_frame_t *f, size_t *need,
                cx_ws_error_t *err)
{
    uint8_t *c = keep(p, n);
    return cx_ws_decode(rx, c, n, f, need, err);
}

static void expect_fail(int line, const uint8_t *p, size_t n, unsigned flags, int want_rc,
                        uint16_t want_code)
{
    cx_ws_rx_t rx;
    rx_default(&rx, flags);
    cx_ws_frame_t f;
    cx_ws_error_t err = {0, NULL};
    size_t need;
    int rc = dec1(&rx, p, n, &f, &need, &err);
    if (rc != want_rc || err.close_code != want_code)
        CX_FAIL_("line %d: want %s/%u, got %s/%u (%s)", line, cx_errname(want_rc), want_code,
                 cx_errname(rc), err.close_code, err.msg ? err.msg : "no message");
    if (!err.msg || !*err.msg)
        CX_FAIL_("line %d: no error message", line);
}

#define EXPECT_FAIL(p, n, flags, rc, code) expect_fail(__LINE__, p, n, flags, rc, code)

/* ---- logs: what a decoder made of a stream, to compare feeding patterns --------------- */

typedef struct log {
    char frames[8192]; /* one line per frame (whole-frame mode only) */
    char msgs[8192];   /* one line per message or control frame */
    size_t fl, ml;
    uint8_t *msg; /* current data message */
    size_t msg_len;
    int rc; /* the last decode result: CX_EAGAIN at the end of a good stream */
    cx_ws_error_t err;
} log_t;

static uint64_t fnv(const uint8_t *p, size_t n)
{
    return cx_str_hash((cx_str_t){p, n});
}

static void logf_(char *dst, size_t *pos, size_t cap, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void logf_(char *dst, size_t *pos, size_t cap, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(dst + *pos, cap - *pos, fmt, ap);
    va_end(ap);
    CHECK(n > 0 && (size_t)n < cap - *pos);
    *pos += (size_t)n;
}

static void log_free(log_t *lg)
{
    free(lg->msg);
    lg->msg = NULL;
}

/* Feeds s `step` bytes at a time (0 = all at once). Each decode sees exactly the
 * unconsumed bytes in a fresh heap block, and after each success the bytes past the
 * returned piece must be unchanged (the decoder writes only inside the payload). */
static void run(const stream_t *s, size_t step, unsigned flags, uint64_t maxf, uint64_t maxm,
                log_t *lg)
{
    memset(lg, 0, sizeof *lg);
    cx_ws_rx_t rx;
    cx_ws_rx_init(&rx, maxf, maxm, flags);
    size_t have = 0, off = 0;
    size_t wait_for = 0; /* whole-frame mode: do not call again before `need` more bytes */
    for (;;) {
        have = step == 0 ? s->len : (have + step > s->len ? s->len : have + step);
        for (;;) {
            size_t n = have - off;
            if (!(flags & CX_WS_RX_STREAM) && n < wait_for)
                break;
            uint8_t *w = malloc(n ? n : 1);
            CHECK(w != NULL);
            if (n)
                memcpy(w, s->p + off, n);
            cx_ws_frame_t f;
            size_t need = 0;
            lg->rc = cx_ws_decode(&rx, w, n, &f, &need, &lg->err);
            if (lg->rc == CX_EAGAIN) {
                CHECK(need > 0);
                wait_for = n + need;
                free(w);
                break;
            }
            wait_for = 0;
            if (lg->rc != CX_OK) {
                free(w);
                return;
            }
            CHECK(f.consumed <= n);
            CHECK(f.consumed > 0);
            if (f.consumed < n)
                CHECK(memcmp(w + f.consumed, s->p + off + f.consumed, n - f.consumed) == 0);
            if (f.len)
                CHECK(f.payload >= w && f.payload + f.len <= w + f.consumed);
            if (!(flags & CX_WS_RX_STREAM))
                logf_(lg->frames, &lg->fl, sizeof lg->frames,
                      "op=%u mop=%u fin=%d len=%zu flen=%llu h=%016llx\n", f.opcode, f.msg_opcode,
                      f.fin, f.len, (unsigned long long)f.frame_len,
                      (unsigned long long)fnv(f.payload, f.len));
            if (f.opcode & 8) {
                CHECK(f.frame_end);
                logf_(lg->msgs, &lg->ml, sizeof lg->msgs, "ctl op=%u len=%zu h=%016llx code=%u\n",
                      f.opcode, f.len, (unsigned long long)fnv(f.payload, f.len), f.close_code);
            } else {
                lg->msg = realloc(lg->msg, lg->msg_len + f.len + 1);
                CHECK(lg->msg != NULL);
                if (f.len)
                    memcpy(lg->msg + lg->msg_len, f.payload, f.len);
                lg->msg_len += f.len;
                CHECK(!f.message_end || (f.frame_end && f.fin));
                if (f.message_end) {
                    logf_(lg->msgs, &lg->ml, sizeof lg->msgs, "msg op=%u len=%zu h=%016llx\n",
                          f.msg_opcode, lg->msg_len, (unsigned long long)fnv(lg->msg, lg->msg_len));
                    lg->msg_len = 0;
                }
            }
            off += f.consumed;
            free(w);
        }
        if (have == s->len)
            break;
    }
}

/* Every feeding pattern gives the same frames (whole-frame mode) and messages (both
 * modes) as one buffer, and ends cleanly. */
static void check_feeds(const stream_t *s, unsigned flags)
{
    static log_t whole, part;
    run(s, 0, flags, UINT64_MAX, UINT64_MAX, &whole);
    CHECK_INT_EQ(whole.rc, CX_EAGAIN);
    size_t steps[] = {1, 2, 3, 7, 13, 64, 1000};
    for (size_t i = 0; i < sizeof steps / sizeof steps[0]; i++) {
        for (unsigned stream = 0; stream < 2; stream++) {
            unsigned fl = flags | (stream ? CX_WS_RX_STREAM : 0);
            run(s, steps[i], fl, UINT64_MAX, UINT64_MAX, &part);
            if (part.rc != CX_EAGAIN)
                CX_FAIL_("step %zu stream %u: %s (%s)", steps[i], stream, cx_errname(part.rc),
                         part.err.msg);
            if (!stream && strcmp(whole.frames, part.frames) != 0)
                CX_FAIL_("step %zu: frames differ:\n%s---\n%s", steps[i], whole.frames,
                         part.frames);
            if (strcmp(whole.msgs, part.msgs) != 0)
                CX_FAIL_("step %zu stream %u: messages differ:\n%s---\n%s", steps[i], stream,
                         whole.msgs, part.msgs);
            log_free(&part);
        }
    }
    log_free(&whole);
}

/* ---- RFC 6455 examples ---------------------------------------------------------------- */

static void test_rfc_accept_key(void)
{
    char out[29];
    const char *key = "dGhlIHNhbXBsZSBub25jZQ==";
    CHECK_INT_EQ(cx_ws_accept_key(key, strlen(key), out), CX_OK);
    CHECK_STR_EQ(out, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
}

static const uint8_t hello_masked[] = {0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d,
                                       0x7f, 0x9f, 0x4d, 0x51, 0x58};

/* Decoder level: the masked "Hello" text frame of RFC 6455 §5.7. */
static void test_rfc_hello_decoder(void)
{
    cx_ws_rx_t rx;
    rx_default(&rx, 0);
    cx_ws_frame_t f;
    size_t need;
    CHECK_INT_EQ(dec1(&rx, hello_masked, sizeof hello_masked, &f, &need, NULL), CX_OK);
    CHECK_INT_EQ(f.opcode, CX_WS_OP_TEXT);
    CHECK_INT_EQ(f.msg_opcode, CX_WS_OP_TEXT);
    CHECK(f.fin && f.frame_end && f.message_end);
    CHECK_INT_EQ(f.consumed, sizeof hello_masked);
    CHECK_SLICE_EQ(((cx_str_t){f.payload, f.len}), "Hello");
    CHECK(!cx_ws_rx_in_message(&rx));
}

/* Policy level: MQTT refuses text frames with 1003, at the header. */
static void test_rfc_hello_mqtt_policy(void)
{
    EXPECT_FAIL(hello_masked, sizeof hello_masked, CX_WS_RX_BINARY_ONLY, CX_EPROTO, 1003);
    EXPECT_FAIL(hello_masked, 1, CX_WS_RX_BINARY_ONLY, CX_EPROTO, 1003);
    EXPECT_FAIL(hello_masked, 2, CX_WS_RX_BINARY_ONLY | CX_WS_RX_STREAM, CX_EPROTO, 1003);
}

/* The unmasked examples are server frames: a server must refuse them from a client. */
static void test_rfc_unmasked_refused(void)
{
    static const uint8_t hello[] = {0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f};
    EXPECT_FAIL(hello, sizeof hello, 0, CX_EPROTO, 1002);
    EXPECT_FAIL(hello, 2, 0, CX_EPROTO, 1002);
    static const uint8_t ping[] = {0x89, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f};
    EXPECT_FAIL(ping, sizeof ping, 0, CX_EPROTO, 1002);
}

/* The fragmented "Hel" + "lo" and the masked pong of §5.7, masked as a client would. */
static void test_rfc_fragments_and_pong(void)
{
    cx_ws_rx_t rx;
    rx_default(&rx, 0);
    cx_ws_frame_t f;
    size_t n;
    uint8_t *p = frame(0x01, "Hel", 3, &n);
    CHECK_INT_EQ(cx_ws_decode(&rx, p, n, &f, NULL, NULL), CX_OK);
    CHECK(!f.fin && f.frame_end && !f.message_end);
    CHECK_SLICE_EQ(((cx_str_t){f.payload, f.len}), "Hel");
    CHECK(cx_ws_rx_in_message(&rx));
    static const uint8_t pong[] = {0x8a, 0x85, 0x37, 0xfa, 0x21, 0x3d,
                                   0x7f, 0x9f, 0x4d, 0x51, 0x58};
    CHECK_INT_EQ(dec1(&rx, pong, sizeof pong, &f, NULL, NULL), CX_OK);
    CHECK_INT_EQ(f.opcode, CX_WS_OP_PONG);
    CHECK_SLICE_EQ(((cx_str_t){f.payload, f.len}), "Hello");
    p = frame(0x80, "lo", 2, &n);
    CHECK_INT_EQ(cx_ws_decode(&rx, p, n, &f, NULL, NULL), CX_OK);
    CHECK_INT_EQ(f.opcode, CX_WS_OP_CONT);
    CHECK_INT_EQ(f.msg_opcode, CX_WS_OP_TEXT);
    CHECK(f.fin && f.message_end);
    CHECK_SLICE_EQ(((cx_str_t){f.payload, f.len}), "lo");
    CHECK(!cx_ws_rx_in_message(&rx));
}

/* 256 bytes (16-bit length) and 64 KiB (64-bit length), as in §5.7, masked. */
static void test_rfc_length_forms(void)
{
    static uint8_t data[65536];
    for (size_t i = 0; i < sizeof data; i++)
        data[i] = (uint8_t)(i * 7 + 3);
    struct {
        size_t n;
        int form;
        size_t hl;
    } cases[] = {
        {0, LEN_MIN, 6},   {1, LEN_MIN, 6},     {125, LEN_MIN, 6},    {126, LEN_MIN, 8},
        {256, LEN_MIN, 8}, {65535, LEN_MIN, 8}, {65536, LEN_MIN, 14}, {0, LEN_16, 8},
        {5, LEN_16, 8},    {5, LEN_64, 14},     {256, LEN_64, 14},    {65535, LEN_64, 14},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        size_t n;
        uint8_t *p = mkframe(0x82, key0, cases[i].form, data, cases[i].n, &n);
        CHECK_INT_EQ(n, cases[i].hl + cases[i].n);
        if (cases[i].n == 256 && cases[i].form == LEN_MIN)
            CHECK(p[1] == (0x80 | 0x7E) && p[2] == 0x01 && p[3] == 0x00);
        if (cases[i].n == 65536)
            CHECK(p[1] == 0xFF && p[7] == 0x01 && p[8] == 0 && p[9] == 0);
        cx_ws_rx_t rx;
        rx_default(&rx, 0);
        cx_ws_frame_t f;
        size_t need = 0;
        /* One byte short: EAGAIN and exactly one more needed. */
        CHECK_INT_EQ(cx_ws_decode(&rx, p, n - 1, &f, &need, NULL), CX_EAGAIN);
        CHECK_INT_EQ(need, 1);
        CHECK_INT_EQ(cx_ws_decode(&rx, p, n, &f, &need, NULL), CX_OK);
        CHECK_INT_EQ(f.opcode, CX_WS_OP_BINARY);
        CHECK_INT_EQ(f.frame_len, cases[i].n);
        CHECK_INT_EQ(f.consumed, n);
        CHECK_MEM_EQ(f.payload, f.len, data, cases[i].n);
    }
}

/* ---- opening handshake ---------------------------------------------------------------- */

static const char req_curl[] = "GET /mqtt HTTP/1.1\r\n"
                               "Host: localhost:8080\r\n"
                               "User-Agent: curl/8.5.0\r\n"
                               "Accept: */*\r\n"
                               "Connection: Upgrade\r\n"
                               "Upgrade: websocket\r\n"
                               "Sec-WebSocket-Version: 13\r\n"
                               "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                               "Sec-WebSocket-Protocol: mqtt\r\n"
                               "\r\n";

static const char req_chrome[] =
    "GET /mqtt?client=web HTTP/1.1\r\n"
    "Host: broker.example.com\r\n"
    "Connection: Upgrade\r\n"
    "Pragma: no-cache\r\n"
    "Cache-Control: no-cache\r\n"
    "User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/120.0.0.0 Safari/537.36\r\n"
    "Upgrade: websocket\r\n"
    "Origin: https://app.example.com\r\n"
    "Sec-WebSocket-Version: 13\r\n"
    "Accept-Encoding: gzip, deflate, br\r\n"
    "Accept-Language: en-US,en;q=0.9\r\n"
    "Sec-WebSocket-Key: x3JJHMbDL1EzLkh9GBhXDw==\r\n"
    "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n"
    "Sec-WebSocket-Protocol: mqtt\r\n"
    "\r\n";

static const char req_firefox[] = "GET / HTTP/1.1\r\n"
                                  "Host: 127.0.0.1:9001\r\n"
                                  "User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:121.0) "
                                  "Gecko/20100101 Firefox/121.0\r\n"
                                  "Accept: */*\r\n"
                                  "Sec-WebSocket-Version: 13\r\n"
                                  "Origin: http://localhost:3000\r\n"
                                  "Sec-WebSocket-Protocol: mqttv3.1\r\n"
                                  "Sec-WebSocket-Extensions: permessage-deflate\r\n"
                                  "Sec-WebSocket-Key: AQIDBAUGBwgJCgsMDQ4PEA==\r\n"
                                  "Connection: keep-alive, Upgrade\r\n"
                                  "Sec-Fetch-Dest: empty\r\n"
                                  "Pragma: no-cache\r\n"
                                  "Upgrade: websocket\r\n"
                                  "\r\n";

static int parse_str(cx_ws_request_t *req, const char *s, size_t max, unsigned flags)
{
    cx_ws_request_init(req);
    size_t n = strlen(s);
    return cx_ws_request_parse(req, keep(s, n), n, max, flags);
}

static void expect_hs(int line, const char *s, unsigned flags, int want_rc, int want_status,
                      bool want_ws)
{
    cx_ws_request_t req;
    int rc = parse_str(&req, s, CX_WS_REQUEST_MAX_DEFAULT, flags);
    if (rc != want_rc || (rc != CX_OK && (req.status != want_status || req.websocket != want_ws)))
        CX_FAIL_("line %d: want %s/%d/ws=%d, got %s/%d/ws=%d (%s)", line, cx_errname(want_rc),
                 want_status, want_ws, cx_errname(rc), req.status, req.websocket,
                 req.error ? req.error : "no message");
    if (rc != CX_OK && rc != CX_EAGAIN && (!req.error || !*req.error))
        CX_FAIL_("line %d: no error message", line);
}

#define EXPECT_HS(s, flags, rc, status, ws) expect_hs(__LINE__, s, flags, rc, status, ws)

static void test_hs_curl(void)
{
    cx_ws_request_t req;
    CHECK_INT_EQ(parse_str(&req, req_curl, CX_WS_REQUEST_MAX_DEFAULT, 0), CX_OK);
    CHECK_INT_EQ(req.header_len, strlen(req_curl));
    CHECK_SLICE_EQ(req.target, "/mqtt");
    CHECK_SLICE_EQ(req.path, "/mqtt");
    CHECK_SLICE_EQ(req.host, "localhost:8080");
    CHECK(req.origin.p == NULL && req.origin.len == 0);
    CHECK_STR_EQ(req.key, "dGhlIHNhbXBsZSBub25jZQ==");
    CHECK_STR_EQ(req.subprotocol, "mqtt");

    cx_buf_t out;
    cx_buf_init(&out, 0);
    CHECK_INT_EQ(cx_ws_response_accept(&req, &out), CX_OK);
    const char *want = "HTTP/1.1 101 Switching Protocols\r\n"
                       "Upgrade: websocket\r\n"
                       "Connection: Upgrade\r\n"
                       "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"
                       "Sec-WebSocket-Protocol: mqtt\r\n"
                       "\r\n";
    CHECK_SLICE_EQ(cx_buf_str(&out), want);
    cx_buf_free(&out);
}

static void test_hs_browsers(void)
{
    cx_ws_request_t req;
    CHECK_INT_EQ(parse_str(&req, req_chrome, CX_WS_REQUEST_MAX_DEFAULT, 0), CX_OK);
    CHECK_SLICE_EQ(req.target, "/mqtt?client=web");
    CHECK_SLICE_EQ(req.path, "/mqtt");
    CHECK_SLICE_EQ(req.host, "broker.example.com");
    CHECK_SLICE_EQ(req.origin, "https://app.example.com");
    CHECK_STR_EQ(req.subprotocol, "mqtt");
    char acc[29];
    CHECK_INT_EQ(cx_ws_accept_key(req.key, 24, acc), CX_OK);
    CHECK_STR_EQ(acc, "HSmrc0sMlYUkAGmm5OPpG2HaGWk="); /* checked with openssl dgst + base64 */

    CHECK_INT_EQ(parse_str(&req, req_firefox, CX_WS_REQUEST_MAX_DEFAULT, 0), CX_OK);
    CHECK_SLICE_EQ(req.path, "/");
    CHECK_SLICE_EQ(req.origin, "http://localhost:3000");
    CHECK_STR_EQ(req.subprotocol, "mqttv3.1");
    cx_buf_t out;
    cx_buf_init(&out, 0);
    CHECK_INT_EQ(cx_ws_response_accept(&req, &out), CX_OK);
    cx_str_t s = cx_buf_str(&out);
    CHECK(memmem(s.p, s.len, "Sec-WebSocket-Protocol: mqttv3.1\r\n", 34) != NULL);
    cx_buf_free(&out);
}

/* Replaces the first occurrence of `from` (a whole header line with its CRLF) with `to`. */
static const char *edit(const char *base, const char *from, const char *to)
{
    static char out[16][4096];
    static int slot;
    char *o = out[slot++ % 16];
    const char *at = strstr(base, from);
    CHECK(at != NULL);
    int n = snprintf(o, 4096, "%.*s%s%s", (int)(at - base), base, to, at + strlen(from));
    CHECK(n > 0 && n < 4096);
    return o;
}

static void test_hs_missing_each(void)
{
    const char *r = req_curl;
    EXPECT_HS(edit(r, "Host: localhost:8080\r\n", ""), 0, CX_EPROTO, 400, true);
    EXPECT_HS(edit(r, "Upgrade: websocket\r\n", ""), 0, CX_EPROTO, 400, false);
    EXPECT_HS(edit(r, "Connection: Upgrade\r\n", ""), 0, CX_EPROTO, 400, true);
    EXPECT_HS(edit(r, "Sec-WebSocket-Version: 13\r\n", ""), 0, CX_EPROTO, 426, true);
    EXPECT_HS(edit(r, "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n", ""), 0, CX_EPROTO, 400,
              true);
    EXPECT_HS(edit(r, "Sec-WebSocket-Protocol: mqtt\r\n", ""), 0, CX_EPROTO, 400, true);
    /* ... which the flag allows, answering without a subprotocol. */
    cx_ws_request_t req;
    CHECK_INT_EQ(parse_str(&req, edit(r, "Sec-WebSocket-Protocol: mqtt\r\n", ""),
                           CX_WS_REQUEST_MAX_DEFAULT, CX_WS_ALLOW_NO_SUBPROTOCOL),
                 CX_OK);
    CHECK(req.subprotocol == NULL);
    cx_buf_t out;
    cx_buf_init(&out, 0);
    CHECK_INT_EQ(cx_ws_response_accept(&req, &out), CX_OK);
    cx_str_t s = cx_buf_str(&out);
    CHECK(memmem(s.p, s.len, "Sec-WebSocket-Protocol", 22) == NULL);
    cx_buf_free(&out);
}

static void test_hs_version(void)
{
    const char *r = req_curl;
    EXPECT_HS(edit(r, "Version: 13\r\n", "Version: 8\r\n"), 0, CX_EPROTO, 426, true);
    EXPECT_HS(edit(r, "Version: 13\r\n", "Version: 130\r\n"), 0, CX_EPROTO, 426, true);
    EXPECT_HS(edit(r, "Version: 13\r\n", "Version: 13, 8\r\n"), 0, CX_EPROTO, 426, true);
    EXPECT_HS(edit(r, "Version: 13\r\n", "Version: 13\r\nSec-WebSocket-Version: 13\r\n"), 0,
              CX_EPROTO, 400, true);
    EXPECT_HS(edit(r, "Version: 13\r\n", "Version:13 \r\n"), 0, CX_OK, 0, true);
    cx_buf_t out;
    cx_buf_init(&out, 0);
    CHECK_INT_EQ(cx_ws_response_error(426, &out), CX_OK);
    CHECK_SLICE_EQ(cx_buf_str(&out), "HTTP/1.1 426 Upgrade Required\r\n"
                                     "Connection: Upgrade, close\r\n"
                                     "Upgrade: websocket\r\n"
                                     "Sec-WebSocket-Version: 13\r\n"
                                     "Content-Type: text/plain\r\n"
                                     "Content-Length: 17\r\n"
                                     "\r\n"
                                     "Upgrade Required\n");
    cx_buf_free(&out);
}

static void test_hs_key(void)
{
    const char *k = "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n";
    const char *bad[] = {
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ=\r\n",   /* 23 chars */
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ===\r\n", /* 25 chars */
        "Sec-WebSocket-Key: AAAAAAAAAAAAAAAAAAAA\r\n",      /* 15 bytes */
        "Sec-WebSocket-Key: AAAAAAAAAAAAAAAAAAAAAAAA\r\n",  /* 18 bytes */
        "Sec-WebSocket-Key: AAAAAAAAAAAAAAAAAAAAAA=\r\n",   /* 17 bytes, no pad */
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ\r\n",    /* no padding */
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25j*Q==\r\n",  /* bad character */
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZ===\r\n",  /* pad too early */
        "Sec-WebSocket-Key: dGhlIHNhbXBs ZSBub25jZQ==\r\n", /* inner space */
        "Sec-WebSocket-Key:\r\n",                           /* empty */
        ("Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
         "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"), /* twice */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        cx_ws_request_t req;
        int rc = parse_str(&req, edit(req_curl, k, bad[i]), CX_WS_REQUEST_MAX_DEFAULT, 0);
        if (rc != CX_EPROTO || req.status != 400)
            CX_FAIL_("case %zu: %s/%d", i, cx_errname(rc), req.status);
    }
    /* OWS around the key is not part of it. */
    cx_ws_request_t req;
    CHECK_INT_EQ(
        parse_str(&req, edit(req_curl, k, "Sec-WebSocket-Key: \t dGhlIHNhbXBsZSBub25jZQ==\t\r\n"),
                  CX_WS_REQUEST_MAX_DEFAULT, 0),
        CX_OK);
    CHECK_STR_EQ(req.key, "dGhlIHNhbXBsZSBub25jZQ==");
}

static void test_hs_subprotocol(void)
{
    const char *p = "Sec-WebSocket-Protocol: mqtt\r\n";
    struct {
        const char *line;
        const char *want; /* NULL = refused */
    } cases[] = {
        {"Sec-WebSocket-Protocol: wamp\r\n", NULL},
        {"Sec-WebSocket-Protocol: MQTT\r\n", NULL},
        {"Sec-WebSocket-Protocol: mqttv5\r\n", NULL},
        {"Sec-WebSocket-Protocol: mqtt2\r\n", NULL},
        {"Sec-WebSocket-Protocol: \r\n", NULL},
        {"Sec-WebSocket-Protocol: wamp, mqtt\r\n", "mqtt"},
        {"Sec-WebSocket-Protocol: mqttv3.1, mqtt\r\n", "mqttv3.1"},
        {"Sec-WebSocket-Protocol: mqtt,mqttv3.1\r\n", "mqtt"},
        {"Sec-WebSocket-Protocol: ,, mqtt ,\r\n", "mqtt"},
        {"Sec-WebSocket-Protocol: wamp\r\nSec-WebSocket-Protocol: mqtt\r\n", "mqtt"},
        {"Sec-WebSocket-Protocol: mqttv3.1\r\nSec-WebSocket-Protocol: mqtt\r\n", "mqttv3.1"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        for (unsigned fl = 0; fl < 2; fl++) {
            cx_ws_request_t req;
            int rc = parse_str(&req, edit(req_curl, p, cases[i].line), CX_WS_REQUEST_MAX_DEFAULT,
                               fl ? CX_WS_ALLOW_NO_SUBPROTOCOL : 0);
            if (cases[i].want) {
                if (rc != CX_OK)
                    CX_FAIL_("case %zu: %s (%s)", i, cx_errname(rc), req.error);
                CHECK_STR_EQ(req.subprotocol, cases[i].want);
            } else if (rc != CX_EPROTO || req.status != 400) {
                CX_FAIL_("case %zu flag %u: %s", i, fl, cx_errname(rc));
            }
        }
    }
}

static void test_hs_header_case_and_ows(void)
{
    static const char lower_req[] = "GET /mqtt HTTP/1.1\r\n"
                                    "host: a\r\n"
                                    "upgrade: websocket\r\n"
                                    "connection: upgrade\r\n"
                                    "sec-websocket-version: 13\r\n"
                                    "sec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                                    "sec-websocket-protocol: mqtt\r\n"
                                    "\r\n";
    static const char upper_req[] = "GET /mqtt HTTP/1.1\r\n"
                                    "HOST: a\r\n"
                                    "UPGRADE: WEBSOCKET\r\n"
                                    "CONNECTION: UPGRADE\r\n"
                                    "SEC-WEBSOCKET-VERSION: 13\r\n"
                                    "SEC-WEBSOCKET-KEY: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                                    "SEC-WEBSOCKET-PROTOCOL: mqtt\r\n"
                                    "\r\n";
    static const char ows_req[] = "GET /mqtt HTTP/1.1\r\n"
                                  "Host:a\r\n"
                                  "Upgrade: \t WebSocket \t \r\n"
                                  "Connection:\tkeep-alive ,  UpGrade\r\n"
                                  "Sec-WebSocket-Version:13\r\n"
                                  "Sec-WebSocket-Key:dGhlIHNhbXBsZSBub25jZQ==\r\n"
                                  "Sec-WebSocket-Protocol:  mqtt  \r\n"
                                  "X-Empty:\r\n"
                                  "\r\n";
    const char *reqs[] = {lower_req, upper_req, ows_req};
    for (size_t i = 0; i < 3; i++) {
        cx_ws_request_t req;
        int rc = parse_str(&req, reqs[i], CX_WS_REQUEST_MAX_DEFAULT, 0);
        if (rc != CX_OK)
            CX_FAIL_("request %zu: %s (%s)", i, cx_errname(rc), req.error);
        CHECK_SLICE_EQ(req.host, "a");
        CHECK_STR_EQ(req.subprotocol, "mqtt");
    }
    /* Lists: several Upgrade / Connection fields, tokens among others. */
    EXPECT_HS(edit(req_curl, "Upgrade: websocket\r\n", "Upgrade: h2c\r\nUpgrade: websocket\r\n"), 0,
              CX_OK, 0, true);
    EXPECT_HS(edit(req_curl, "Connection: Upgrade\r\n",
                   "Connection: keep-alive\r\nConnection: Upgrade\r\n"),
              0, CX_OK, 0, true);
    /* Tokens are whole list elements, not substrings. */
    EXPECT_HS(edit(req_curl, "Connection: Upgrade\r\n", "Connection: Upgraded\r\n"), 0, CX_EPROTO,
              400, true);
    EXPECT_HS(edit(req_curl, "Upgrade: websocket\r\n", "Upgrade: websockets\r\n"), 0, CX_EPROTO,
              400, false);
    EXPECT_HS(edit(req_curl, "Upgrade: websocket\r\n", "Upgrade: websocket/13\r\n"), 0, CX_EPROTO,
              400, false);
}

static void test_hs_not_websocket(void)
{
    /* A plain HTTP GET: the caller answers 400 (or serves it some other way). */
    EXPECT_HS("GET / HTTP/1.1\r\nHost: a\r\n\r\n", 0, CX_EPROTO, 400, false);
    EXPECT_HS("GET /index.html HTTP/1.1\r\nHost: a\r\nConnection: keep-alive\r\n\r\n", 0, CX_EPROTO,
              400, false);
    EXPECT_HS("POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n", 0, CX_EPROTO, 400, false);
    /* Upgrades with the wrong method or HTTP version. */
    EXPECT_HS(edit(req_curl, "GET ", "POST "), 0, CX_EPROTO, 400, true);
    EXPECT_HS(edit(req_curl, "GET ", "get "), 0, CX_EPROTO, 400, true);
    EXPECT_HS(edit(req_curl, "HTTP/1.1\r\n", "HTTP/1.0\r\n"), 0, CX_EPROTO, 400, true);
    EXPECT_HS(edit(req_curl, "HTTP/1.1\r\n", "HTTP/2.0\r\n"), 0, CX_EPROTO, 400, true);
    EXPECT_HS(edit(req_curl, "HTTP/1.1\r\n", "HTTP/1.2\r\n"), 0, CX_OK, 0, true);
}

static void test_hs_syntax(void)
{
    const char *r = req_curl;
    struct {
        const char *from, *to;
    } bad[] = {
        {"GET /mqtt HTTP/1.1\r\n", "GET  /mqtt HTTP/1.1\r\n"},
        {"GET /mqtt HTTP/1.1\r\n", "GET /mqtt  HTTP/1.1\r\n"},
        {"GET /mqtt HTTP/1.1\r\n", "GET /mqtt\r\n"},
        {"GET /mqtt HTTP/1.1\r\n", "GET /mqtt HTTP/1.1 \r\n"},
        {"GET /mqtt HTTP/1.1\r\n", "GET /mqtt HTTP/11\r\n"},
        {"GET /mqtt HTTP/1.1\r\n", "GET /mqtt http/1.1\r\n"},
        {"GET /mqtt HTTP/1.1\r\n", "GET /mqtt HTTP/1.1x\r\n"},
        {"GET /mqtt HTTP/1.1\r\n", " GET /mqtt HTTP/1.1\r\n"},
        {"GET /mqtt HTTP/1.1\r\n", "\r\nGET /mqtt HTTP/1.1\r\n"},
        {"GET /mqtt HTTP/1.1\r\n", "GET * HTTP/1.1\r\n"},
        {"GET /mqtt HTTP/1.1\r\n", "GET mqtt HTTP/1.1\r\n"},
        {"GET /mqtt HTTP/1.1\r\n", "GET ftp://a/mqtt HTTP/1.1\r\n"},
        {"GET /mqtt HTTP/1.1\r\n", "GET /mq\x80tt HTTP/1.1\r\n"},
        {"Accept: */*\r\n", "Accept : */*\r\n"}, /* space before the colon */
        {"Accept: */*\r\n", "Accept\t: */*\r\n"},
        {"Accept: */*\r\n", "Accept */*\r\n"},        /* no colon */
        {"Accept: */*\r\n", ": */*\r\n"},             /* no name */
        {"Accept: */*\r\n", "Acc(ept: */*\r\n"},      /* not a token */
        {"Accept: */*\r\n", "Accept: */*\r\n x\r\n"}, /* obsolete folding */
        {"Accept: */*\r\n", "Accept: */*\r\n\tx\r\n"},
        {"Accept: */*\r\n", "Accept: */*\n"},     /* bare LF */
        {"Accept: */*\r\n", "Accept: */*\r\r\n"}, /* CR without LF */
        {"Accept: */*\r\n", "Accept: *\r/*\r\n"},
        {"Accept: */*\r\n", "Accept: *\x01/*\r\n"}, /* control character */
        {"Accept: */*\r\n", "Accept: *\x7f/*\r\n"},
        {"Accept: */*\r\n", "Content-Length: 5\r\n"}, /* a body */
        {"Accept: */*\r\n", "Transfer-Encoding: chunked\r\n"},
        {"Host: localhost:8080\r\n", "Host: a\r\nHost: b\r\n"},
        {"Host: localhost:8080\r\n", "Host:\r\n"},
        {"Accept: */*\r\n", "Origin: http://a\r\nOrigin: http://b\r\n"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        cx_ws_request_t req;
        int rc = parse_str(&req, edit(r, bad[i].from, bad[i].to), CX_WS_REQUEST_MAX_DEFAULT, 0);
        if (rc != CX_EPROTO || req.status != 400 || !req.error)
            CX_FAIL_("case %zu: %s/%d", i, cx_errname(rc), req.status);
    }
    /* Allowed: Content-Length 0, obs-text in a value, an empty value. */
    EXPECT_HS(edit(r, "Accept: */*\r\n", "Content-Length: 0\r\n"), 0, CX_OK, 0, true);
    EXPECT_HS(edit(r, "Accept: */*\r\n", "X-Name: caf\xc3\xa9\r\n"), 0, CX_OK, 0, true);
    EXPECT_HS(edit(r, "Accept: */*\r\n", "X-Empty:\r\n"), 0, CX_OK, 0, true);

    /* Binary garbage fails at the first byte, without waiting for a blank line. */
    static const uint8_t tls_hello[] = {0x16, 0x03, 0x01, 0x02, 0x00};
    cx_ws_request_t req;
    cx_ws_request_init(&req);
    CHECK_INT_EQ(cx_ws_request_parse(&req, keep(tls_hello, 1), 1, 8192, 0), CX_EPROTO);
    CHECK_INT_EQ(req.status, 400);
    CHECK(!req.websocket);
    static const uint8_t nul[] = {'G', 'E', 'T', 0};
    cx_ws_request_init(&req);
    CHECK_INT_EQ(cx_ws_request_parse(&req, keep(nul, 4), 4, 8192, 0), CX_EPROTO);
    /* A bare CR or LF fails as soon as it is seen, not when the head is complete. */
    const char *early[] = {"GET /mqtt HTTP/1.1\rX", "GET /mqtt HTTP/1.1\n", "\n"};
    for (size_t i = 0; i < 3; i++) {
        cx_ws_request_init(&req);
        size_t n = strlen(early[i]);
        CHECK_INT_EQ(cx_ws_request_parse(&req, keep(early[i], n), n, 8192, 0), CX_EPROTO);
        CHECK_INT_EQ(req.status, 400);
    }
}

static void test_hs_absolute_target(void)
{
    struct {
        const char *target, *path;
    } cases[] = {
        {"http://broker.example.com/mqtt", "/mqtt"},
        {"HTTPS://broker.example.com:443/a/b?x=/y", "/a/b"},
        {"ws://broker", "/"},
        {"wss://broker?q", "/"},
        {"/", "/"},
        {"/?a", "/"},
        {"/mqtt/", "/mqtt/"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char line[256];
        snprintf(line, sizeof line, "GET %s HTTP/1.1\r\n", cases[i].target);
        cx_ws_request_t req;
        int rc = parse_str(&req, edit(req_curl, "GET /mqtt HTTP/1.1\r\n", line),
                           CX_WS_REQUEST_MAX_DEFAULT, 0);
        if (rc != CX_OK)
            CX_FAIL_("case %zu: %s (%s)", i, cx_errname(rc), req.error);
        CHECK_SLICE_EQ(req.target, cases[i].target);
        CHECK_SLICE_EQ(req.path, cases[i].path);
    }
}

/* Every prefix of a request is EAGAIN (or, for a bad request, EAGAIN until the byte that
 * makes it bad) and the full request then gives the same result as one buffer. The same
 * req is reused across calls, as a connection would. Bytes after the head (the first
 * WebSocket frame) are not part of it. */
static void split_check(const char *s, unsigned flags)
{
    size_t n = strlen(s);
    cx_ws_request_t whole;
    int want = parse_str(&whole, s, CX_WS_REQUEST_MAX_DEFAULT, flags);
    char whole_path[256] = "";
    if (want == CX_OK)
        snprintf(whole_path, sizeof whole_path, "%.*s", (int)whole.path.len, whole.path.p);
    uint8_t *tail = malloc(n + 8);
    CHECK(tail != NULL);
    memcpy(tail, s, n);
    memcpy(tail + n, "\x82\x80\x01\x02\x03\x04xx", 8);
    for (size_t step = 1; step <= 3; step++) {
        cx_ws_request_t req;
        cx_ws_request_init(&req);
        int rc = CX_EAGAIN;
        size_t len = 0;
        while (rc == CX_EAGAIN && len < n + 8) {
            len = len + step > n + 8 ? n + 8 : len + step;
            uint8_t *c = keep(tail, len);
            rc = cx_ws_request_parse(&req, c, len, CX_WS_REQUEST_MAX_DEFAULT, flags);
            if (want == CX_OK && rc == CX_EAGAIN)
                CHECK(len < n);
        }
        CHECK_INT_EQ(rc, want);
        CHECK_INT_EQ(req.status, whole.status);
        CHECK_INT_EQ(req.websocket, whole.websocket);
        if (rc == CX_OK) {
            CHECK_INT_EQ(req.header_len, n);
            CHECK_SLICE_EQ(req.path, whole_path);
            CHECK_STR_EQ(req.key, whole.key);
            CHECK_STR_EQ(req.subprotocol, whole.subprotocol);
        }
    }
    free(tail);
}

static void test_hs_split_every_byte(void)
{
    split_check(req_curl, 0);
    split_check(req_chrome, 0);
    split_check(req_firefox, 0);
    split_check("GET / HTTP/1.1\r\nHost: a\r\n\r\n", 0);
    split_check(edit(req_curl, "Sec-WebSocket-Version: 13\r\n", ""), 0);
    split_check(edit(req_curl, "Accept: */*\r\n", "Accept: */*\n"), 0);
}

static void test_hs_oversize(void)
{
    /* Exactly the cap is fine, one byte over is not. */
    size_t n = strlen(req_curl);
    cx_ws_request_t req;
    CHECK_INT_EQ(parse_str(&req, req_curl, n, 0), CX_OK);
    CHECK_INT_EQ(parse_str(&req, req_curl, n - 1, 0), CX_ETOOBIG);
    CHECK_INT_EQ(req.status, 431);
    CHECK(req.error != NULL);

    /* A 9 KiB request against the default 8 KiB cap, fed in pieces: EAGAIN until 8 KiB
     * are there, then ETOOBIG. */
    size_t big = 9 * 1024;
    char *s = malloc(big + 1);
    CHECK(s != NULL);
    size_t head = strlen("GET /mqtt HTTP/1.1\r\nX-Pad: ");
    memcpy(s, "GET /mqtt HTTP/1.1\r\nX-Pad: ", head);
    memset(s + head, 'a', big - head);
    s[big] = '\0';
    cx_ws_request_init(&req);
    int rc = CX_EAGAIN;
    size_t len = 0;
    while (rc == CX_EAGAIN) {
        len += 1000;
        CHECK(len <= big);
        rc = cx_ws_request_parse(&req, keep(s, len), len, CX_WS_REQUEST_MAX_DEFAULT, 0);
    }
    CHECK_INT_EQ(rc, CX_ETOOBIG);
    CHECK_INT_EQ(len, 9000);
    CHECK_INT_EQ(req.status, 431);
    free(s);

    /* The 431 answer. */
    cx_buf_t out;
    cx_buf_init(&out, 0);
    CHECK_INT_EQ(cx_ws_response_error(431, &out), CX_OK);
    CHECK(cx_str_has_prefix(cx_buf_str(&out), "HTTP/1.1 431 Request Header Fields Too Large\r\n"));
    cx_buf_free(&out);
}

static void test_hs_error_responses(void)
{
    struct {
        int status;
        const char *want;
    } cases[] = {
        {400, "HTTP/1.1 400 Bad Request\r\nConnection: close\r\nContent-Type: text/plain\r\n"
              "Content-Length: 12\r\n\r\nBad Request\n"},
        {403, "HTTP/1.1 403 Forbidden\r\nConnection: close\r\nContent-Type: text/plain\r\n"
              "Content-Length: 10\r\n\r\nForbidden\n"},
        {404, "HTTP/1.1 404 Not Found\r\nConnection: close\r\nContent-Type: text/plain\r\n"
              "Content-Length: 10\r\n\r\nNot Found\n"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        cx_buf_t out;
        cx_buf_init(&out, 0);
        CHECK_INT_EQ(cx_ws_response_error(cases[i].status, &out), CX_OK);
        CHECK_SLICE_EQ(cx_buf_str(&out), cases[i].want);
        cx_buf_free(&out);
    }
    cx_buf_t out;
    cx_buf_init(&out, 0);
    CHECK_INT_EQ(cx_ws_response_error(500, &out), CX_EINVAL);
    CHECK_INT_EQ(cx_ws_response_error(101, &out), CX_EINVAL);
    CHECK_INT_EQ(cx_buf_used(&out), 0);
    cx_buf_free(&out);
    /* A capped buffer that cannot take the whole answer gets none of it. */
    cx_buf_init(&out, 32);
    CHECK_INT_EQ(cx_buf_append(&out, "xx", 2), CX_OK);
    CHECK_INT_EQ(cx_ws_response_error(400, &out), CX_ETOOBIG);
    CHECK_SLICE_EQ(cx_buf_str(&out), "xx");
    cx_ws_request_t req;
    CHECK_INT_EQ(parse_str(&req, req_curl, CX_WS_REQUEST_MAX_DEFAULT, 0), CX_OK);
    CHECK_INT_EQ(cx_ws_response_accept(&req, &out), CX_ETOOBIG);
    CHECK_SLICE_EQ(cx_buf_str(&out), "xx");
    cx_buf_free(&out);
}

/* The parsed request does not depend on the input once the key and subprotocol are
 * copied: the 101 can be built after the input buffer is reused. */
static void test_hs_answer_after_input_gone(void)
{
    size_t n = strlen(req_curl);
    uint8_t *c = malloc(n);
    CHECK(c != NULL);
    memcpy(c, req_curl, n);
    cx_ws_request_t req;
    cx_ws_request_init(&req);
    CHECK_INT_EQ(cx_ws_request_parse(&req, c, n, CX_WS_REQUEST_MAX_DEFAULT, 0), CX_OK);
    memset(c, 'z', n);
    free(c);
    cx_buf_t out;
    cx_buf_init(&out, 0);
    CHECK_INT_EQ(cx_ws_response_accept(&req, &out), CX_OK);
    cx_str_t s = cx_buf_str(&out);
    CHECK(memmem(s.p, s.len, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=", 28) != NULL);
    cx_buf_free(&out);
}

/* ---- frame decoder -------------------------------------------------------------------- */

static void test_frame_fragmented_binary(void)
{
    stream_t s = {0};
    add_frame(&s, 0x02, "\x10\x0c\x00\x04", 4);
    add_frame(&s, 0x00, "MQTT\x04\x02", 6);
    add_frame(&s, 0x80, "\x00\x3c\x00\x00", 4);
    cx_ws_rx_t rx;
    rx_default(&rx, CX_WS_RX_BINARY_ONLY);
    uint8_t *p = keep(s.p, s.len);
    size_t off = 0;
    uint8_t mqtt[64];
    size_t mlen = 0;
    int frames = 0;
    while (off < s.len) {
        cx_ws_frame_t f;
        CHECK_INT_EQ(cx_ws_decode(&rx, p + off, s.len - off, &f, NULL, NULL), CX_OK);
        CHECK_INT_EQ(f.msg_opcode, CX_WS_OP_BINARY);
        CHECK_INT_EQ(f.opcode, frames == 0 ? CX_WS_OP_BINARY : CX_WS_OP_CONT);
        CHECK_INT_EQ(f.message_end, frames == 2);
        CHECK_INT_EQ(cx_ws_rx_in_message(&rx), frames != 2);
        memcpy(mqtt + mlen, f.payload, f.len);
        mlen += f.len;
        off += f.consumed;
        frames++;
    }
    CHECK_MEM_EQ(mqtt, mlen, "\x10\x0c\x00\x04MQTT\x04\x02\x00\x3c\x00\x00", 14);
    check_feeds(&s, CX_WS_RX_BINARY_ONLY);
    stream_free(&s);
}

/* Control frames may come between the fragments of a message (RFC 6455 §5.4). */
static void test_frame_ping_inside_fragments(void)
{
    stream_t s = {0};
    add_frame(&s, 0x02, "abc", 3);
    add_frame(&s, 0x89, "ping!", 5);
    add_frame(&s, 0x00, "def", 3);
    add_frame(&s, 0x8A, "", 0);
    add_frame(&s, 0x00, "", 0);
    add_frame(&s, 0x80, "ghi", 3);
    add_frame(&s, 0x82, "one", 3);
    add_frame(&s, 0x88,
              "\x03\xe8"
              "bye",
              5);
    log_t lg;
    run(&s, 0, CX_WS_RX_BINARY_ONLY, 1 << 20, 1 << 20, &lg);
    CHECK_INT_EQ(lg.rc, CX_EAGAIN);
    CHECK(strstr(lg.msgs, "ctl op=9 len=5") != NULL);
    CHECK(strstr(lg.msgs, "msg op=2 len=9") != NULL);
    CHECK(strstr(lg.msgs, "msg op=2 len=3") != NULL);
    CHECK(strstr(lg.msgs, "ctl op=8 len=5") != NULL && strstr(lg.msgs, "code=1000") != NULL);
    /* The ping comes before the message it interrupts is complete. */
    CHECK(strstr(lg.msgs, "ctl op=9") < strstr(lg.msgs, "msg op=2 len=9"));
    log_free(&lg);
    check_feeds(&s, CX_WS_RX_BINARY_ONLY);
    stream_free(&s);
}

/* A mix of everything valid, fed in every pattern, both modes. */
static void test_frame_feeds_equal(void)
{
    static uint8_t big[70000];
    for (size_t i = 0; i < sizeof big; i++)
        big[i] = (uint8_t)(i ^ (i >> 8));
    stream_t s = {0};
    add_frame(&s, 0x82, "x", 1);
    add_frame(&s, 0x82, "", 0);
    add_frame(&s, 0x82, big, 125);
    add_frame(&s, 0x82, big, 126);
    add_frame(&s, 0x82, big, 65535);
    add_frame(&s, 0x82, big, 65536);
    add_mk(&s, 0x82, key0, LEN_16, "short", 5);
    add_mk(&s, 0x82, key0, LEN_64, "short", 5);
    add_mk(&s, 0x02, (const uint8_t *)"\0\0\0\0", LEN_64, big, 300);
    add_mk(&s, 0x80, (const uint8_t *)"\xff\x01\x80\x7f", LEN_MIN, big + 5, 9);
    add_frame(&s, 0x81, "h\xc3\xa9llo \xe2\x82\xac \xf0\x9f\x98\x80", 15);
    add_frame(&s, 0x01, "\xe2", 1); /* a character split across fragments */
    add_frame(&s, 0x89, "", 0);
    add_frame(&s, 0x00, "\x82", 1);
    add_frame(&s, 0x80, "\xac!", 2);
    add_frame(&s, 0x8A, big, 125);
    add_frame(&s, 0x88, "", 0);
    CHECK(s.len > 131000);
    check_feeds(&s, 0);
    stream_free(&s);
}

static void test_frame_need(void)
{
    cx_ws_rx_t rx;
    rx_default(&rx, 0);
    cx_ws_frame_t f;
    size_t need = 0;
    size_t n;
    static uint8_t data[300];
    uint8_t *p = frame(0x82, data, 300, &n); /* 2 + 2 + 4 + 300 */
    CHECK_INT_EQ(n, 308);
    size_t want[] = {2, 1, 6, 5, 4, 3, 2, 1, 300};
    for (size_t len = 0; len < 9; len++) {
        CHECK_INT_EQ(cx_ws_decode(&rx, p, len, &f, &need, NULL), CX_EAGAIN);
        CHECK_INT_EQ(need, want[len]);
    }
    CHECK_INT_EQ(cx_ws_decode(&rx, p, 200, &f, &need, NULL), CX_EAGAIN);
    CHECK_INT_EQ(need, 108);
    /* The state did not move: the same call with everything succeeds. */
    CHECK_INT_EQ(cx_ws_decode(&rx, p, n, &f, &need, NULL), CX_OK);
    CHECK_INT_EQ(need, 0);
    /* Streaming: the header alone is already a (zero-length) piece. */
    rx_default(&rx, CX_WS_RX_STREAM);
    p = frame(0x82, data, 300, &n);
    CHECK_INT_EQ(cx_ws_decode(&rx, p, 8, &f, &need, NULL), CX_OK);
    CHECK_INT_EQ(f.consumed, 8);
    CHECK_INT_EQ(f.len, 0);
    CHECK(!f.frame_end);
    CHECK_INT_EQ(cx_ws_decode(&rx, p + 8, 0, &f, &need, NULL), CX_EAGAIN);
    CHECK_INT_EQ(need, 300);
    CHECK_INT_EQ(cx_ws_decode(&rx, p + 8, 100, &f, &need, NULL), CX_OK);
    CHECK_INT_EQ(f.len, 100);
    CHECK(!f.frame_end && !f.message_end);
    CHECK_INT_EQ(cx_ws_decode(&rx, p + 108, 200, &f, &need, NULL), CX_OK);
    CHECK(f.frame_end && f.message_end);
    CHECK_INT_EQ(f.len, 200);
    CHECK_INT_EQ(f.frame_len, 300);
}

/* Streaming delivers the payload in pieces, unmasked with the right key offset, without
 * the input ever holding the whole frame; a text message may split a character across
 * pieces. */
static void test_frame_streaming(void)
{
    static uint8_t data[1000];
    for (size_t i = 0; i < sizeof data; i++)
        data[i] = (uint8_t)(i * 31);
    size_t n;
    uint8_t *p = frame(0x82, data, sizeof data, &n);
    cx_ws_rx_t rx;
    cx_ws_rx_init(&rx, 1000, 1000, CX_WS_RX_STREAM | CX_WS_RX_BINARY_ONLY);
    uint8_t got[1000];
    size_t glen = 0, off = 0;
    size_t chunk = 37; /* as reads would deliver it, consumed at once */
    while (off < n) {
        size_t len = n - off < chunk ? n - off : chunk;
        uint8_t *c = keep(p + off, len);
        cx_ws_frame_t f;
        CHECK_INT_EQ(cx_ws_decode(&rx, c, len, &f, NULL, NULL), CX_OK);
        CHECK_INT_EQ(f.consumed, len);
        memcpy(got + glen, f.payload, f.len);
        glen += f.len;
        off += f.consumed;
        CHECK_INT_EQ(f.message_end, off == n);
    }
    CHECK_MEM_EQ(got, glen, data, sizeof data);

    /* Text: "é" split between two pieces is fine; a bad byte fails in the piece it is in. */
    cx_ws_rx_init(&rx, 100, 100, CX_WS_RX_STREAM);
    p = frame(0x81, "ab\xc3\xa9", 4, &n);
    cx_ws_frame_t f;
    CHECK_INT_EQ(cx_ws_decode(&rx, keep(p, 9), 9, &f, NULL, NULL), CX_OK);
    CHECK_INT_EQ(f.len, 3);
    CHECK_INT_EQ(cx_ws_decode(&rx, keep(p + 9, 1), 1, &f, NULL, NULL), CX_OK);
    CHECK(f.message_end);
    cx_ws_rx_init(&rx, 100, 100, CX_WS_RX_STREAM);
    p = frame(0x81, "ab\xc3(x", 5, &n);
    CHECK_INT_EQ(cx_ws_decode(&rx, keep(p, 9), 9, &f, NULL, NULL), CX_OK);
    cx_ws_error_t err = {0, NULL};
    CHECK_INT_EQ(cx_ws_decode(&rx, keep(p + 9, 2), 2, &f, NULL, &err), CX_EPROTO);
    CHECK_INT_EQ(err.close_code, 1007);
}

static void test_frame_rsv_opcode_mask(void)
{
    size_t n;
    for (uint8_t rsv = 0x10; rsv <= 0x40; rsv <<= 1) {
        uint8_t *p = frame((uint8_t)(0x82 | rsv), "x", 1, &n);
        EXPECT_FAIL(p, n, 0, CX_EPROTO, 1002);
        EXPECT_FAIL(p, 1, 0, CX_EPROTO, 1002); /* from the first byte on */
        p = frame((uint8_t)(0x89 | rsv), "", 0, &n);
        EXPECT_FAIL(p, n, 0, CX_EPROTO, 1002);
    }
    for (uint8_t op = 3; op <= 0xF; op++) {
        if (op >= 8 && op <= 0xA)
            continue;
        uint8_t *p = frame((uint8_t)(0x80 | op), "", 0, &n);
        EXPECT_FAIL(p, n, 0, CX_EPROTO, 1002);
        EXPECT_FAIL(p, 1, 0, CX_EPROTO, 1002);
    }
    uint8_t *p = mkframe(0x82, NULL, LEN_MIN, "abc", 3, &n);
    EXPECT_FAIL(p, n, 0, CX_EPROTO, 1002);
    EXPECT_FAIL(p, 2, CX_WS_RX_STREAM, CX_EPROTO, 1002);
    p = mkframe(0x88, NULL, LEN_MIN, "", 0, &n);
    EXPECT_FAIL(p, n, 0, CX_EPROTO, 1002);
}

static void test_frame_control_rules(void)
{
    static uint8_t data[200];
    size_t n;
    /* Control frames must not be fragmented. */
    const uint8_t ops[] = {CX_WS_OP_CLOSE, CX_WS_OP_PING, CX_WS_OP_PONG};
    for (size_t i = 0; i < 3; i++) {
        uint8_t *p = frame(ops[i], "", 0, &n);
        EXPECT_FAIL(p, n, 0, CX_EPROTO, 1002);
        EXPECT_FAIL(p, 1, 0, CX_EPROTO, 1002);
        /* ... nor longer than 125 bytes, in any length form. */
        p = frame((uint8_t)(0x80 | ops[i]), data, 126, &n);
        EXPECT_FAIL(p, n, 0, CX_EPROTO, 1002);
        EXPECT_FAIL(p, 2, 0, CX_EPROTO, 1002);
        p = mkframe((uint8_t)(0x80 | ops[i]), key0, LEN_16, data, 5, &n);
        EXPECT_FAIL(p, n, 0, CX_EPROTO, 1002);
        p = mkframe((uint8_t)(0x80 | ops[i]), key0, LEN_64, data, 5, &n);
        EXPECT_FAIL(p, n, 0, CX_EPROTO, 1002);
        /* 125 is fine. */
        if (ops[i] != CX_WS_OP_CLOSE) {
            cx_ws_rx_t rx;
            rx_default(&rx, 0);
            cx_ws_frame_t f;
            p = frame((uint8_t)(0x80 | ops[i]), data, 125, &n);
            CHECK_INT_EQ(cx_ws_decode(&rx, p, n, &f, NULL, NULL), CX_OK);
            CHECK_INT_EQ(f.len, 125);
        }
    }
}

static void test_frame_length_top_bit(void)
{
    uint8_t p[14] = {0x82, 0xFF, 0x80, 0, 0, 0, 0, 0, 0, 5, 1, 2, 3, 4};
    EXPECT_FAIL(p, sizeof p, 0, CX_EPROTO, 1002);
    EXPECT_FAIL(p, sizeof p, CX_WS_RX_STREAM, CX_EPROTO, 1002);
    p[2] = 0xFF;
    EXPECT_FAIL(p, sizeof p, 0, CX_EPROTO, 1002);
}

/* A huge announced length fails on the header alone, before any payload is waited for. */
static void test_frame_huge_length(void)
{
    uint8_t p[14] = {0x82, 0xFF, 0x40, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4}; /* 2^62 */
    EXPECT_FAIL(p, sizeof p, 0, CX_ETOOBIG, 1009);
    EXPECT_FAIL(p, sizeof p, CX_WS_RX_STREAM, CX_ETOOBIG, 1009);
    p[2] = 0x7F; /* just under 2^63 */
    p[9] = 0xFF;
    EXPECT_FAIL(p, sizeof p, 0, CX_ETOOBIG, 1009);
    /* Without limits the whole-frame decoder waits (and says how long), or refuses a length
     * it cannot address. */
    cx_ws_rx_t rx;
    cx_ws_rx_init(&rx, UINT64_MAX, UINT64_MAX, 0);
    cx_ws_frame_t f;
    size_t need = 0;
    cx_ws_error_t err = {0, NULL};
    p[2] = 0x00;
    p[3] = 0x00;
    p[4] = 0x01; /* 2^40 + 255 */
    int rc = dec1(&rx, p, sizeof p, &f, &need, &err);
    if (SIZE_MAX > UINT32_MAX) {
        CHECK_INT_EQ(rc, CX_EAGAIN);
        CHECK_INT_EQ(need, (1ULL << 40) + 0xFF);
    } else {
        CHECK_INT_EQ(rc, CX_ETOOBIG);
    }
}

static void test_frame_size_limits(void)
{
    static uint8_t data[2000];
    size_t n;
    uint8_t *p = frame(0x82, data, 1001, &n);
    for (unsigned fl = 0; fl < 4; fl++) {
        cx_ws_rx_t rx;
        cx_ws_rx_init(&rx, 1000, 5000, fl);
        cx_ws_frame_t f;
        cx_ws_error_t err = {0, NULL};
        CHECK_INT_EQ(dec1(&rx, p, 8, &f, NULL, &err), CX_ETOOBIG);
        CHECK_INT_EQ(err.close_code, 1009);
    }
    /* The per-message limit sums the fragments; control frames do not count. */
    stream_t s = {0};
    add_frame(&s, 0x02, data, 600);
    add_frame(&s, 0x89, data, 100);
    add_frame(&s, 0x00, data, 400);
    add_frame(&s, 0x80, data, 1);
    for (unsigned fl = 0; fl < 2; fl++) {
        log_t lg;
        unsigned flags = fl ? CX_WS_RX_STREAM : 0;
        run(&s, 0, flags, 1000, 1001, &lg);
        CHECK_INT_EQ(lg.rc, CX_EAGAIN);
        log_free(&lg);
        run(&s, 0, flags, 1000, 1000, &lg);
        CHECK_INT_EQ(lg.rc, CX_ETOOBIG);
        CHECK_INT_EQ(lg.err.close_code, 1009);
        CHECK(strstr(lg.msgs, "ctl op=9") != NULL); /* it failed at the last fragment */
        log_free(&lg);
    }
    /* An unfragmented message over max_message (with a larger max_frame). */
    cx_ws_rx_t rx;
    cx_ws_rx_init(&rx, 5000, 1000, 0);
    cx_ws_frame_t f;
    cx_ws_error_t err = {0, NULL};
    CHECK_INT_EQ(dec1(&rx, p, n, &f, NULL, &err), CX_ETOOBIG);
    CHECK_INT_EQ(err.close_code, 1009);
    /* Limits are inclusive. */
    cx_ws_rx_init(&rx, 1001, 1001, 0);
    CHECK_INT_EQ(dec1(&rx, p, n, &f, NULL, &err), CX_OK);
    stream_free(&s);
}

static void test_frame_fragmentation_rules(void)
{
    size_t n;
    /* A continuation without a message. */
    uint8_t *p = frame(0x80, "x", 1, &n);
    EXPECT_FAIL(p, n, 0, CX_EPROTO, 1002);
    EXPECT_FAIL(p, 1, 0, CX_EPROTO, 1002);
    p = frame(0x00, "x", 1, &n);
    EXPECT_FAIL(p, n, CX_WS_RX_STREAM, CX_EPROTO, 1002);
    /* A new data frame inside a fragmented message, and a continuation after a message
     * has ended. */
    const uint8_t second[] = {0x82, 0x02, 0x81, 0x01};
    for (size_t i = 0; i < sizeof second; i++) {
        for (unsigned fl = 0; fl < 2; fl++) {
            stream_t s = {0};
            add_frame(&s, 0x02, "ab", 2);
            add_frame(&s, second[i], "c", 1);
            log_t lg;
            run(&s, 0, fl ? CX_WS_RX_STREAM : 0, 100, 100, &lg);
            CHECK_INT_EQ(lg.rc, CX_EPROTO);
            CHECK_INT_EQ(lg.err.close_code, 1002);
            log_free(&lg);
            stream_free(&s);
        }
    }
    stream_t s = {0};
    add_frame(&s, 0x82, "ab", 2);
    add_frame(&s, 0x80, "c", 1);
    log_t lg;
    run(&s, 0, 0, 100, 100, &lg);
    CHECK_INT_EQ(lg.rc, CX_EPROTO);
    CHECK_INT_EQ(lg.err.close_code, 1002);
    log_free(&lg);
    stream_free(&s);
}

static void test_frame_close_payload(void)
{
    size_t n;
    cx_ws_rx_t rx;
    cx_ws_frame_t f;
    /* Empty: no code (1005 to the caller). */
    rx_default(&rx, 0);
    uint8_t *p = frame(0x88, "", 0, &n);
    CHECK_INT_EQ(cx_ws_decode(&rx, p, n, &f, NULL, NULL), CX_OK);
    CHECK_INT_EQ(f.close_code, 1005);
    CHECK_INT_EQ(f.close_reason.len, 0);
    /* A 1-byte payload. */
    p = frame(0x88, "\x03", 1, &n);
    EXPECT_FAIL(p, n, 0, CX_EPROTO, 1002);
    /* Every code: valid ones decode, others are 1002. */
    for (uint32_t code = 0; code <= 0xFFFF; code++) {
        uint8_t pl[2] = {(uint8_t)(code >> 8), (uint8_t)code};
        bool valid = (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1011) ||
                     (code >= 3000 && code <= 4999);
        CHECK_INT_EQ(cx_ws_close_code_is_valid((uint16_t)code), valid);
        if (code % 7 != 0 && !(code >= 990 && code <= 1020) && !(code >= 2990 && code <= 3010) &&
            !(code >= 4990 && code <= 5010))
            continue; /* a sample of the 65536 codes, all the borders */
        p = frame(0x88, pl, 2, &n);
        rx_default(&rx, 0);
        cx_ws_error_t err = {0, NULL};
        int rc = cx_ws_decode(&rx, p, n, &f, NULL, &err);
        if (valid) {
            CHECK_INT_EQ(rc, CX_OK);
            CHECK_INT_EQ(f.close_code, code);
        } else {
            CHECK_INT_EQ(rc, CX_EPROTO);
            CHECK_INT_EQ(err.close_code, 1002);
        }
    }
    /* Reason: valid UTF-8 is returned, anything else is 1007. */
    rx_default(&rx, 0);
    p = frame(0x88,
              "\x0f\xa0"
              "caf\xc3\xa9",
              7, &n);
    CHECK_INT_EQ(cx_ws_decode(&rx, p, n, &f, NULL, NULL), CX_OK);
    CHECK_INT_EQ(f.close_code, 4000);
    CHECK_SLICE_EQ(f.close_reason, "caf\xc3\xa9");
    p = frame(0x88,
              "\x03\xe8"
              "caf\xc3",
              6, &n);
    EXPECT_FAIL(p, n, 0, CX_EPROTO, 1007);
    p = frame(0x88, "\x03\xe8\xed\xa0\x80", 5, &n);
    EXPECT_FAIL(p, n, 0, CX_EPROTO, 1007);
    /* Nothing may follow a close frame. */
    stream_t s = {0};
    add_frame(&s, 0x88, "\x03\xe8", 2);
    add_frame(&s, 0x82, "x", 1);
    log_t lg;
    run(&s, 0, 0, 100, 100, &lg);
    CHECK_INT_EQ(lg.rc, CX_ECLOSED);
    log_free(&lg);
    stream_free(&s);
}

static void test_frame_text_utf8(void)
{
    size_t n;
    const char *bad[] = {"\xc0\x80",         "\xff", "\xed\xa0\x80",
                         "\xf4\x90\x80\x80", "\x80", "a\xe2\x82"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        uint8_t *p = frame(0x81, bad[i], strlen(bad[i]), &n);
        EXPECT_FAIL(p, n, 0, CX_EPROTO, 1007);
    }
    /* A text message ending inside a character, over fragments. */
    stream_t s = {0};
    add_frame(&s, 0x01, "ok\xe2\x82", 4);
    add_frame(&s, 0x80, "", 0);
    for (unsigned fl = 0; fl < 2; fl++) {
        log_t lg;
        run(&s, 0, fl ? CX_WS_RX_STREAM : 0, 100, 100, &lg);
        CHECK_INT_EQ(lg.rc, CX_EPROTO);
        CHECK_INT_EQ(lg.err.close_code, 1007);
        log_free(&lg);
    }
    stream_free(&s);
    /* Binary payloads are not checked. */
    cx_ws_rx_t rx;
    rx_default(&rx, 0);
    cx_ws_frame_t f;
    uint8_t *p = frame(0x82, "\xff\xfe", 2, &n);
    CHECK_INT_EQ(cx_ws_decode(&rx, p, n, &f, NULL, NULL), CX_OK);
}

static void test_utf8_validator(void)
{
    struct {
        const char *s;
        size_t n;
        bool ok;
    } cases[] = {
        {"", 0, true},
        {"plain ascii", 11, true},
        {"\x00", 1, true},
        {"\xc2\x80", 2, true},         /* U+0080 */
        {"\xdf\xbf", 2, true},         /* U+07FF */
        {"\xe0\xa0\x80", 3, true},     /* U+0800 */
        {"\xed\x9f\xbf", 3, true},     /* U+D7FF */
        {"\xee\x80\x80", 3, true},     /* U+E000 */
        {"\xef\xbf\xbf", 3, true},     /* U+FFFF */
        {"\xf0\x90\x80\x80", 4, true}, /* U+10000 */
        {"\xf4\x8f\xbf\xbf", 4, true}, /* U+10FFFF */
        {"\xc0\xaf", 2, false},        /* overlong '/' */
        {"\xc1\xbf", 2, false},
        {"\xe0\x9f\xbf", 3, false},     /* overlong */
        {"\xf0\x8f\xbf\xbf", 4, false}, /* overlong */
        {"\xed\xa0\x80", 3, false},     /* surrogate D800 */
        {"\xed\xbf\xbf", 3, false},     /* surrogate DFFF */
        {"\xf4\x90\x80\x80", 4, false}, /* U+110000 */
        {"\xf5\x80\x80\x80", 4, false},
        {"\xf8\x88\x80\x80\x80", 5, false},
        {"\xfe", 1, false},
        {"\x80", 1, false},
        {"\xc2", 1, false}, /* truncated */
        {"\xe2\x82", 2, false},
        {"\xc2\x41", 2, false}, /* lead without continuation */
        {"\xe2\x28\xa1", 3, false},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        if (cx_ws_utf8_is_valid((const uint8_t *)cases[i].s, cases[i].n) != cases[i].ok)
            CX_FAIL_("case %zu", i);
}

static void test_mask_pieces(void)
{
    uint8_t key[4] = {0xde, 0xad, 0xbe, 0xef};
    uint8_t a[100], b[100];
    for (size_t i = 0; i < 100; i++)
        a[i] = b[i] = (uint8_t)i;
    cx_ws_mask(a, 100, key, 0);
    for (size_t i = 0; i < 100; i++)
        CHECK_INT_EQ(a[i], (uint8_t)(i ^ key[i & 3]));
    /* In pieces of odd sizes, with offsets. */
    size_t off = 0, sizes[] = {1, 2, 3, 9, 17, 5, 63};
    for (size_t k = 0; off < 100; k++) {
        size_t n = sizes[k % 7];
        if (n > 100 - off)
            n = 100 - off;
        cx_ws_mask(b + off, n, key, off);
        off += n;
    }
    CHECK_MEM_EQ(a, 100, b, 100);
    cx_ws_mask(a, 100, key, 0);
    for (size_t i = 0; i < 100; i++)
        CHECK_INT_EQ(a[i], i);
}

/* ---- encoder -------------------------------------------------------------------------- */

static void test_encode_headers(void)
{
    uint8_t h[CX_WS_SERVER_HEADER_MAX];
    CHECK_INT_EQ(cx_ws_header_encode(h, CX_WS_OP_BINARY, true, 0), 2);
    CHECK_MEM_EQ(h, 2, "\x82\x00", 2);
    CHECK_INT_EQ(cx_ws_header_encode(h, CX_WS_OP_BINARY, true, 125), 2);
    CHECK_MEM_EQ(h, 2, "\x82\x7d", 2);
    CHECK_INT_EQ(cx_ws_header_encode(h, CX_WS_OP_BINARY, true, 126), 4);
    CHECK_MEM_EQ(h, 4, "\x82\x7e\x00\x7e", 4);
    CHECK_INT_EQ(cx_ws_header_encode(h, CX_WS_OP_BINARY, true, 256), 4);
    CHECK_MEM_EQ(h, 4, "\x82\x7e\x01\x00", 4); /* RFC 6455 §5.7 */
    CHECK_INT_EQ(cx_ws_header_encode(h, CX_WS_OP_BINARY, true, 65535), 4);
    CHECK_MEM_EQ(h, 4, "\x82\x7e\xff\xff", 4);
    CHECK_INT_EQ(cx_ws_header_encode(h, CX_WS_OP_BINARY, true, 65536), 10);
    CHECK_MEM_EQ(h, 10, "\x82\x7f\x00\x00\x00\x00\x00\x01\x00\x00", 10); /* §5.7 */
    CHECK_INT_EQ(cx_ws_header_encode(h, CX_WS_OP_CONT, false, 0x0102030405ULL), 10);
    CHECK_MEM_EQ(h, 10, "\x00\x7f\x00\x00\x00\x01\x02\x03\x04\x05", 10);
    CHECK_INT_EQ(cx_ws_header_encode(h, CX_WS_OP_BINARY, false, 3), 2);
    CHECK_MEM_EQ(h, 2, "\x02\x03", 2);
}

static void test_encode_frames(void)
{
    cx_buf_t out;
    cx_buf_init(&out, 0);
    CHECK_INT_EQ(cx_ws_frame_encode(&out, CX_WS_OP_TEXT, "Hello", 5), CX_OK);
    CHECK_MEM_EQ(cx_buf_head(&out), cx_buf_used(&out), "\x81\x05Hello", 7); /* §5.7 */
    cx_buf_reset(&out);
    CHECK_INT_EQ(cx_ws_ping_encode(&out, "Hello", 5), CX_OK);
    CHECK_MEM_EQ(cx_buf_head(&out), cx_buf_used(&out), "\x89\x05Hello", 7); /* §5.7 */
    cx_buf_reset(&out);
    CHECK_INT_EQ(cx_ws_pong_encode(&out, "", 0), CX_OK);
    CHECK_MEM_EQ(cx_buf_head(&out), cx_buf_used(&out), "\x8a\x00", 2);
    cx_buf_reset(&out);
    static uint8_t big[300];
    CHECK_INT_EQ(cx_ws_binary_encode(&out, big, 300), CX_OK);
    CHECK_INT_EQ(cx_buf_used(&out), 304);
    CHECK_MEM_EQ(cx_buf_head(&out), 4, "\x82\x7e\x01\x2c", 4);
    cx_buf_reset(&out);
    CHECK_INT_EQ(cx_ws_ping_encode(&out, big, 126), CX_EINVAL);
    CHECK_INT_EQ(cx_ws_pong_encode(&out, big, 125), CX_OK);
    cx_buf_reset(&out);
    CHECK_INT_EQ(cx_ws_frame_encode(&out, CX_WS_OP_CONT, "x", 1), CX_EINVAL);
    CHECK_INT_EQ(cx_ws_frame_encode(&out, 3, "x", 1), CX_EINVAL);
    CHECK_INT_EQ(cx_buf_used(&out), 0);
    /* All or nothing with a capped buffer. */
    cx_buf_free(&out);
    cx_buf_init(&out, 100);
    CHECK_INT_EQ(cx_ws_binary_encode(&out, big, 99), CX_ETOOBIG);
    CHECK_INT_EQ(cx_buf_used(&out), 0);
    CHECK_INT_EQ(cx_ws_binary_encode(&out, big, 98), CX_OK);
    cx_buf_free(&out);
}

static void test_encode_close(void)
{
    cx_buf_t out;
    cx_buf_init(&out, 0);
    CHECK_INT_EQ(cx_ws_close_encode(&out, 1000, "bye"), CX_OK);
    CHECK_MEM_EQ(cx_buf_head(&out), cx_buf_used(&out),
                 "\x88\x05\x03\xe8"
                 "bye",
                 7);
    cx_buf_reset(&out);
    CHECK_INT_EQ(cx_ws_close_encode(&out, 0, "ignored"), CX_OK);
    CHECK_MEM_EQ(cx_buf_head(&out), cx_buf_used(&out), "\x88\x00", 2);
    cx_buf_reset(&out);
    CHECK_INT_EQ(cx_ws_close_encode(&out, 1009, NULL), CX_OK);
    CHECK_MEM_EQ(cx_buf_head(&out), cx_buf_used(&out), "\x88\x02\x03\xf1", 4);
    cx_buf_reset(&out);
    const uint16_t never[] = {999, 1004, 1005, 1006, 1015, 2000, 5000};
    for (size_t i = 0; i < sizeof never / sizeof never[0]; i++)
        CHECK_INT_EQ(cx_ws_close_encode(&out, never[i], "x"), CX_EINVAL);
    CHECK_INT_EQ(cx_buf_used(&out), 0);
    /* A long reason is cut to 123 bytes, never inside a character. */
    char reason[200];
    memset(reason, 'r', sizeof reason);
    reason[199] = '\0';
    CHECK_INT_EQ(cx_ws_close_encode(&out, 1011, reason), CX_OK);
    CHECK_INT_EQ(cx_buf_used(&out), 2 + 125);
    CHECK_INT_EQ(cx_buf_head(&out)[1], 125);
    cx_buf_reset(&out);
    memset(reason, 'r', sizeof reason);
    memcpy(reason + 121, "\xe2\x82\xac", 3); /* "€" over bytes 121..123 */
    reason[199] = '\0';
    CHECK_INT_EQ(cx_ws_close_encode(&out, 1011, reason), CX_OK);
    CHECK_INT_EQ(cx_buf_head(&out)[1], 2 + 121);
    CHECK(cx_ws_utf8_is_valid(cx_buf_head(&out) + 4, 121));
    cx_buf_free(&out);
}

/* What the server sends, masked as a client would, decodes to the same thing: the encoder
 * and the decoder agree on every length form. */
static void test_encode_decode_agree(void)
{
    static uint8_t data[70000];
    for (size_t i = 0; i < sizeof data; i++)
        data[i] = (uint8_t)(i * 13);
    size_t lens[] = {0, 1, 125, 126, 65535, 65536, 70000};
    for (size_t i = 0; i < sizeof lens / sizeof lens[0]; i++) {
        cx_buf_t out;
        cx_buf_init(&out, 0);
        CHECK_INT_EQ(cx_ws_binary_encode(&out, data, lens[i]), CX_OK);
        uint8_t *s = cx_buf_head(&out);
        size_t hl = cx_buf_used(&out) - lens[i];
        /* Insert a mask key after the header and mask the payload. */
        uint8_t *c = malloc(hl + 4 + lens[i]);
        CHECK(c != NULL);
        memcpy(c, s, hl);
        c[1] |= 0x80;
        memcpy(c + hl, key0, 4);
        memcpy(c + hl + 4, s + hl, lens[i]);
        cx_ws_mask(c + hl + 4, lens[i], key0, 0);
        cx_ws_rx_t rx;
        cx_ws_rx_init(&rx, UINT64_MAX, UINT64_MAX, CX_WS_RX_BINARY_ONLY);
        cx_ws_frame_t f;
        CHECK_INT_EQ(cx_ws_decode(&rx, c, hl + 4 + lens[i], &f, NULL, NULL), CX_OK);
        CHECK_MEM_EQ(f.payload, f.len, data, lens[i]);
        free(c);
        cx_buf_free(&out);
    }
}

/* ---- robustness ----------------------------------------------------------------------- */

static uint64_t rng_state = 0x9E3779B97F4A7C15ULL;

static uint32_t rnd(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (uint32_t)rng_state;
}

/* Mutated streams and requests: no crash, no read past the end (ASan), and the decoder
 * either progresses, waits or fails with a close code. */
static void test_mutation_loop(void)
{
    stream_t s = {0};
    add_frame(&s, 0x02, "abc", 3);
    add_frame(&s, 0x89, "p", 1);
    add_frame(&s, 0x80, "defgh", 5);
    add_frame(&s, 0x81, "t\xc3\xa9xt", 5);
    add_frame(&s, 0x88, "\x03\xe8ok", 4);
    for (int iter = 0; iter < 20000; iter++) {
        uint8_t buf[64];
        size_t n = s.len;
        memcpy(buf, s.p, n);
        int flips = 1 + (int)(rnd() % 4);
        for (int k = 0; k < flips; k++)
            buf[rnd() % n] ^= (uint8_t)(1u << (rnd() % 8));
        size_t cut = rnd() % (n + 1);
        uint8_t *c = keep(buf, cut);
        cx_ws_rx_t rx;
        cx_ws_rx_init(&rx, 64, 64, rnd() % 2 ? CX_WS_RX_STREAM : 0);
        size_t off = 0;
        for (int guard = 0; guard < 100; guard++) {
            cx_ws_frame_t f;
            cx_ws_error_t err = {0, NULL};
            int rc = cx_ws_decode(&rx, c + off, cut - off, &f, NULL, &err);
            if (rc == CX_OK) {
                CHECK(f.consumed <= cut - off);
                off += f.consumed;
                continue;
            }
            if (rc != CX_EAGAIN)
                CHECK(err.msg != NULL && cx_ws_close_code_is_valid(err.close_code));
            break;
        }
    }
    size_t rn = strlen(req_chrome);
    for (int iter = 0; iter < 5000; iter++) {
        char buf[1024];
        memcpy(buf, req_chrome, rn);
        buf[rnd() % rn] = (char)rnd();
        size_t cut = rnd() % (rn + 1);
        cx_ws_request_t req;
        cx_ws_request_init(&req);
        int rc = cx_ws_request_parse(&req, keep(buf, cut), cut, 1000, 0);
        if (rc == CX_EPROTO || rc == CX_ETOOBIG)
            CHECK(req.error != NULL && req.status >= 400);
    }
    stream_free(&s);
}

/* One test per line. */
/* clang-format off */
/* Found by fuzz_ws_frames: a 1007 (bad UTF-8) is found after the message state moved, so
 * offering the same frame again used to be accepted. Every decode error is final now. */
static void test_error_is_final(void)
{
    cx_ws_rx_t rx;
    cx_ws_rx_init(&rx, 1024, 4096, 0);
    uint8_t first[] = {0x01, 0x81, 0, 0, 0, 0, 0xE2};  /* text, not FIN, half a character */
    uint8_t second[] = {0x80, 0x81, 0, 0, 0, 0, 0x94}; /* continuation, FIN, still not UTF-8 */
    cx_ws_frame_t f;
    size_t need;
    cx_ws_error_t err = {0};
    CHECK_INT_EQ(cx_ws_decode(&rx, first, sizeof first, &f, &need, &err), CX_OK);
    uint8_t again[sizeof second];
    memcpy(again, second, sizeof second);
    int rc = cx_ws_decode(&rx, second, sizeof second, &f, &need, &err);
    CHECK(rc != CX_OK && rc != CX_EAGAIN);
    CHECK_INT_EQ(err.close_code, CX_WS_CLOSE_BAD_DATA);
    cx_ws_error_t err2 = {0};
    CHECK_INT_EQ(cx_ws_decode(&rx, again, sizeof again, &f, &need, &err2), rc);
    CHECK_INT_EQ(err2.close_code, CX_WS_CLOSE_BAD_DATA);
}

CX_TEST_MAIN(
    CX_TEST(error_is_final),
    CX_TEST(rfc_accept_key),
    CX_TEST(rfc_hello_decoder),
    CX_TEST(rfc_hello_mqtt_policy),
    CX_TEST(rfc_unmasked_refused),
    CX_TEST(rfc_fragments_and_pong),
    CX_TEST(rfc_length_forms),
    CX_TEST(hs_curl),
    CX_TEST(hs_browsers),
    CX_TEST(hs_missing_each),
    CX_TEST(hs_version),
    CX_TEST(hs_key),
    CX_TEST(hs_subprotocol),
    CX_TEST(hs_header_case_and_ows),
    CX_TEST(hs_not_websocket),
    CX_TEST(hs_syntax),
    CX_TEST(hs_absolute_target),
    CX_TEST(hs_split_every_byte),
    CX_TEST(hs_oversize),
    CX_TEST(hs_error_responses),
    CX_TEST(hs_answer_after_input_gone),
    CX_TEST(frame_fragmented_binary),
    CX_TEST(frame_ping_inside_fragments),
    CX_TEST(frame_feeds_equal),
    CX_TEST(frame_need),
    CX_TEST(frame_streaming),
    CX_TEST(frame_rsv_opcode_mask),
    CX_TEST(frame_control_rules),
    CX_TEST(frame_length_top_bit),
    CX_TEST(frame_huge_length),
    CX_TEST(frame_size_limits),
    CX_TEST(frame_fragmentation_rules),
    CX_TEST(frame_close_payload),
    CX_TEST(frame_text_utf8),
    CX_TEST(utf8_validator),
    CX_TEST(mask_pieces),
    CX_TEST(encode_headers),
    CX_TEST(encode_frames),
    CX_TEST(encode_close),
    CX_TEST(encode_decode_agree),
    CX_TEST(mutation_loop),
)
/* clang-format on */
