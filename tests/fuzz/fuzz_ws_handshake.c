/* fuzz_ws_handshake.c: the WebSocket opening handshake parser (core/net/ws.c,
 * cx_ws_request_parse) fed as a connection would feed it.
 *
 * Input: two control bytes, then the bytes the client sends.
 *   b0 & 0x01   CX_WS_ALLOW_NO_SUBPROTOCOL
 *   b0 >> 1     the size cap (`max`): 8192 (the default) or one of 16 .. 4096, so the 431
 *               path runs on short inputs
 *   b1          the chunking: b1 & 3 picks the largest chunk (1, 8, 64 or 1024 bytes), the
 *               whole byte seeds the generator of chunk sizes
 *
 * The request is parsed twice: once whole, and once the way filter_ws.c does it, the same
 * cx_ws_request_t called again with a longer prefix after every CX_EAGAIN. Every call gets
 * a heap block of exactly the prefix's size, so a read past the bytes given is an ASan
 * error. Checked:
 *  - both ways reach the same verdict (rc, status, websocket, error text, header_len, and
 *    the same slices at the same offsets);
 *  - CX_OK: header_len <= input length and <= max, the head ends with the blank line, the
 *    slices lie inside the head, the key is 24 base64 characters, the subprotocol is one we
 *    speak (or none, only with the flag), and cx_ws_response_accept builds a 101 that
 *    carries cx_ws_accept_key of the key;
 *  - errors: status 400 or 426 for CX_EPROTO, 431 exactly for CX_ETOOBIG, a message, and
 *    cx_ws_response_error accepts the status; CX_EAGAIN only below the cap. */
#include <string.h>

#include "fuzz.h"
#include "net/ws.h"
#include "util/buf.h"
#include "util/err.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    return 0;
}

/* Index 0 stands for CX_WS_REQUEST_MAX_DEFAULT. */
static const size_t caps[16] = {0,   16,  24,  48,  64,  100,  128,  160,
                                200, 256, 300, 512, 700, 1024, 2048, 4096};

static uint8_t *dup_exact(const uint8_t *p, size_t n)
{
    uint8_t *c = malloc(n ? n : 1);
    FUZZ_CHECK(c != NULL);
    if (n)
        memcpy(c, p, n);
    return c;
}

static uint32_t next_rand(uint32_t *s)
{
    /* xorshift32: any fixed generator will do, the point is reproducible chunking */
    uint32_t x = *s;
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    *s = x;
    return x;
}

/* A slice as an offset into the block it came from, so that two parses of the same bytes
 * in different blocks compare. */
static void check_slice(cx_str_t s, const uint8_t *base, size_t len, size_t *off)
{
    if (!s.p) {
        FUZZ_CHECK(s.len == 0);
        *off = SIZE_MAX;
        return;
    }
    FUZZ_CHECK(s.p >= base && s.len <= len && (size_t)(s.p - base) <= len - s.len);
    *off = (size_t)(s.p - base);
}

typedef struct verdict {
    int rc;
    int status;
    bool websocket;
    const char *error;
    size_t header_len;
    size_t target, path, host, origin; /* offsets (SIZE_MAX: absent or static) */
    size_t target_len, path_len, host_len, origin_len;
    char key[25];
    const char *subprotocol;
} verdict_t;

static bool is_b64(char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+' ||
           c == '/';
}

/* Checks one parse result against the rules of ws.h and fills v. buf/len is the block the
 * successful call saw. */
static void check_result(int rc, const cx_ws_request_t *req, const uint8_t *buf, size_t len,
                         size_t max, unsigned flags, verdict_t *v)
{
    memset(v, 0, sizeof *v);
    v->rc = rc;
    v->status = req->status;
    v->websocket = req->websocket;
    v->error = req->error;
    v->target = v->path = v->host = v->origin = SIZE_MAX;
    switch (rc) {
    case CX_OK: {
        size_t n = req->header_len;
        FUZZ_CHECK(n >= 4 && n <= len && n <= max);
        FUZZ_CHECK(memcmp(buf + n - 4, "\r\n\r\n", 4) == 0);
        FUZZ_CHECK(req->status == 0 && req->error == NULL && req->websocket);
        check_slice(req->target, buf, n, &v->target);
        check_slice(req->host, buf, n, &v->host);
        check_slice(req->origin, buf, n, &v->origin);
        FUZZ_CHECK(v->target != SIZE_MAX && req->target.len > 0);
        FUZZ_CHECK(v->host != SIZE_MAX && req->host.len > 0);
        /* The path is inside the target, or the static "/" of an absolute URI without one. */
        FUZZ_CHECK(req->path.p && req->path.len > 0 && req->path.p[0] == '/');
        if (req->path.p >= req->target.p && req->path.p < req->target.p + req->target.len) {
            check_slice(req->path, req->target.p, req->target.len, &v->path);
            v->path += v->target;
        } else {
            FUZZ_CHECK(req->path.len == 1);
        }
        v->target_len = req->target.len;
        v->path_len = req->path.len;
        v->host_len = req->host.len;
        v->origin_len = req->origin.len;
        FUZZ_CHECK(req->key[24] == '\0' && req->key[22] == '=' && req->key[23] == '=');
        for (size_t i = 0; i < 22; i++)
            FUZZ_CHECK(is_b64(req->key[i]));
        memcpy(v->key, req->key, sizeof v->key);
        v->subprotocol = req->subprotocol;
        if (req->subprotocol)
            FUZZ_CHECK(strcmp(req->subprotocol, "mqtt") == 0 ||
                       strcmp(req->subprotocol, "mqttv3.1") == 0);
        else
            FUZZ_CHECK(flags & CX_WS_ALLOW_NO_SUBPROTOCOL);
        v->header_len = n;

        cx_buf_t out;
        cx_buf_init(&out, 0);
        FUZZ_CHECK(cx_ws_response_accept(req, &out) == CX_OK);
        char accept[29];
        FUZZ_CHECK(cx_ws_accept_key(req->key, 24, accept) == CX_OK);
        FUZZ_CHECK(strlen(accept) == 28);
        size_t m = cx_buf_used(&out);
        const char *r = (const char *)cx_buf_head(&out);
        FUZZ_CHECK(m > 40 && memcmp(r, "HTTP/1.1 101 ", 13) == 0);
        FUZZ_CHECK(memcmp(r + m - 4, "\r\n\r\n", 4) == 0);
        /* the accept value appears once, on its own header line */
        char line[64];
        int k = snprintf(line, sizeof line, "Sec-WebSocket-Accept: %s\r\n", accept);
        FUZZ_CHECK(k > 0 && (size_t)k < sizeof line);
        bool found = false;
        for (size_t i = 0; i + (size_t)k <= m; i++)
            if (memcmp(r + i, line, (size_t)k) == 0)
                found = true;
        FUZZ_CHECK(found);
        cx_buf_free(&out);
        break;
    }
    case CX_EAGAIN:
        FUZZ_CHECK(len < max);
        break;
    case CX_EPROTO:
    case CX_ETOOBIG: {
        FUZZ_CHECK(req->error != NULL && *req->error != '\0');
        if (rc == CX_ETOOBIG)
            FUZZ_CHECK(req->status == 431 && len >= max);
        else
            FUZZ_CHECK(req->status == 400 || req->status == 426);
        cx_buf_t out;
        cx_buf_init(&out, 0);
        FUZZ_CHECK(cx_ws_response_error(req->status, &out) == CX_OK);
        FUZZ_CHECK(cx_buf_used(&out) > 0);
        cx_buf_free(&out);
        break;
    }
    default:
        FUZZ_CHECK(!"unexpected return code");
    }
}

static bool same_verdict(const verdict_t *a, const verdict_t *b)
{
    return a->rc == b->rc && a->status == b->status && a->websocket == b->websocket &&
           a->error == b->error && a->header_len == b->header_len && a->target == b->target &&
           a->path == b->path && a->host == b->host && a->origin == b->origin &&
           a->target_len == b->target_len && a->path_len == b->path_len &&
           a->host_len == b->host_len && a->origin_len == b->origin_len &&
           memcmp(a->key, b->key, sizeof a->key) == 0 && a->subprotocol == b->subprotocol;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    unsigned flags = (data[0] & 1) ? CX_WS_ALLOW_NO_SUBPROTOCOL : 0;
    size_t max = caps[(data[0] >> 1) & 15];
    if (max == 0)
        max = CX_WS_REQUEST_MAX_DEFAULT;
    static const size_t max_chunk[] = {1, 8, 64, 1024};
    size_t chunk_cap = max_chunk[data[1] & 3];
    uint32_t seed = 0x9E3779B9u ^ data[1] ^ (uint32_t)data[0] << 8;
    data += 2;
    size_t n = size - 2;

    /* Whole. */
    cx_ws_request_t whole;
    cx_ws_request_init(&whole);
    uint8_t *c = dup_exact(data, n);
    int rc = cx_ws_request_parse(&whole, c, n, max, flags);
    verdict_t vw;
    check_result(rc, &whole, c, n, max, flags, &vw);
    free(c);

    /* In chunks, resuming the same request. An empty start is a legal first call too. */
    cx_ws_request_t inc;
    cx_ws_request_init(&inc);
    size_t have = 0;
    verdict_t vi;
    for (;;) {
        c = dup_exact(data, have);
        rc = cx_ws_request_parse(&inc, c, have, max, flags);
        check_result(rc, &inc, c, have, max, flags, &vi);
        free(c);
        if (rc != CX_EAGAIN || have == n)
            break;
        size_t step = 1 + next_rand(&seed) % chunk_cap;
        have = step < n - have ? have + step : n;
    }
    FUZZ_CHECK(same_verdict(&vw, &vi));
    return 0;
}
