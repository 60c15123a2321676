/* fuzz_ws_frames.c: the WebSocket frame decoder (core/net/ws.c, cx_ws_decode) over a
 * client byte stream, and the server frame encoders.
 *
 * Input: three control bytes, then the bytes of the stream.
 *   b0 & 0x01   CX_WS_RX_STREAM
 *   b0 & 0x02   CX_WS_RX_BINARY_ONLY
 *   b1          max_frame (low nibble) and max_message (high nibble) from a table of small
 *               limits (0 .. 65536) and UINT64_MAX, so that the 1009 paths run
 *   b2          the chunking: b2 & 3 picks the largest chunk (1, 5, 64 or 4096 bytes), the
 *               whole byte (with b0) seeds the generator of chunk sizes
 *
 * The stream is decoded twice with the same settings: given whole, and arriving in chunks.
 * Like filter_ws.c, each run decodes until CX_EAGAIN, drops what a frame consumed and
 * appends the next chunk. The unconsumed input is always a heap block of exactly its size
 * (rebuilt from the original bytes: the decoder writes only inside payloads it returns),
 * so a read past it is an ASan error. Checked on every call:
 *  - consumed <= available, the payload lies inside what was consumed, pieces and frames
 *    within their lengths and limits; control frames whole, <= 125 bytes, FIN; a close
 *    code that may be on the wire and a UTF-8 reason; BINARY_ONLY never yields text;
 *  - the decoded payload bytes never exceed the bytes fed;
 *  - a finished text message is valid UTF-8; cx_ws_rx_in_message follows message_end;
 *  - after a close frame, more bytes are CX_ECLOSED;
 *  - after an error, decoding the same bytes again gives the same error: those errors are
 *    found before the receive state moves. Not after a 1007 (bad UTF-8 in a data frame):
 *    by then the decoder has taken the frame into its message and UTF-8 state (and in
 *    streaming mode its frame position), so a second call reads the bytes differently and
 *    may even succeed (regressions/ws_frames/utf8-error-then-retry-accepted). ws.h says the
 *    connection closes after any error, and filter_ws.c does; the retry only has to be
 *    memory-safe.
 * Then both runs must tell the same story: the same frames (opcode, FIN, lengths, message
 * ends, close codes), the same payload bytes, the same final result. With an error in
 * streaming mode the chunked run may have delivered a valid beginning of the refused frame
 * first, so there the whole run's bytes need only be a prefix of the chunked run's.
 * Every frame the whole run returned is re-encoded with the server encoders
 * (cx_ws_frame_encode, cx_ws_close_encode, cx_ws_header_encode), masked as a client would,
 * and must decode to the same opcode and payload. */
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

static const uint64_t limits[16] = {0,   1,   2,   3,   5,    8,     16,    100,
                                    125, 126, 127, 200, 1000, 65535, 65536, UINT64_MAX};

static uint8_t *dup_exact(const uint8_t *p, size_t n)
{
    uint8_t *c = malloc(n ? n : 1);
    FUZZ_CHECK(c != NULL);
    if (n)
        memcpy(c, p, n);
    return c;
}

/* cx_buf_head of a buffer that never held anything is NULL + 0, which UBSan (clang)
 * reports as pointer arithmetic on NULL: read empty buffers through this. */
static const uint8_t *head(const cx_buf_t *b)
{
    static const uint8_t none[1] = {0};
    return cx_buf_used(b) ? cx_buf_head(b) : none;
}

static uint32_t next_rand(uint32_t *s)
{
    uint32_t x = *s;
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    *s = x;
    return x;
}

/* What a run saw: all payload bytes in order, one record per finished frame, and how it
 * ended (CX_EAGAIN: ran out of input; else the error and its close code). */
typedef struct story {
    cx_buf_t bytes;
    cx_buf_t frames;
    int rc;
    uint16_t code;
} story_t;

typedef struct frame_rec {
    uint8_t opcode, msg_opcode, fin, message_end;
    uint16_t close_code;
    uint64_t frame_len;
    uint64_t end; /* bytes.used after the frame's payload */
} frame_rec_t;

typedef struct settings {
    unsigned flags;
    uint64_t max_frame, max_message;
} settings_t;

static void check_utf8_text(const uint8_t *p, size_t n)
{
    FUZZ_CHECK(cx_ws_utf8_is_valid(p, n));
}

/* Decodes data[0..n) arriving in chunks (chunk_cap 0: all at once). */
static void run(const settings_t *st, const uint8_t *data, size_t n, size_t chunk_cap,
                uint32_t seed, story_t *out)
{
    cx_ws_rx_t rx;
    cx_ws_rx_init(&rx, st->max_frame, st->max_message, st->flags);
    bool stream = (st->flags & CX_WS_RX_STREAM) != 0;
    size_t fed = 0, done = 0; /* bytes given to the decoder so far / consumed by it */
    uint64_t delivered = 0;
    size_t frame_start = 0;
    bool mid_frame = false;
    cx_buf_t msg; /* the data message in progress, to check a text message whole */
    cx_buf_init(&msg, 0);
    out->rc = CX_EAGAIN;
    out->code = 0;
    for (;;) {
        size_t step = chunk_cap ? 1 + next_rand(&seed) % chunk_cap : n;
        fed = step < n - fed ? fed + step : n;
        for (;;) {
            size_t avail = fed - done;
            uint8_t *buf = dup_exact(data + done, avail);
            cx_ws_frame_t f;
            size_t need = 12345;
            cx_ws_error_t err = {0, NULL};
            bool was_closed = rx.closed;
            int rc = cx_ws_decode(&rx, buf, avail, &f, &need, &err);
            if (rc == CX_EAGAIN) {
                FUZZ_CHECK(need >= 1);
                free(buf);
                break;
            }
            if (rc != CX_OK) {
                FUZZ_CHECK(rc == CX_EPROTO || rc == CX_ETOOBIG || rc == CX_ECLOSED);
                FUZZ_CHECK(err.msg != NULL && *err.msg != '\0');
                if (rc == CX_ETOOBIG)
                    FUZZ_CHECK(err.close_code == CX_WS_CLOSE_TOO_BIG);
                else if (rc == CX_ECLOSED)
                    FUZZ_CHECK(was_closed && avail > 0);
                else
                    FUZZ_CHECK(err.close_code == CX_WS_CLOSE_PROTOCOL ||
                               err.close_code == CX_WS_CLOSE_UNSUPPORTED ||
                               err.close_code == CX_WS_CLOSE_BAD_DATA);
                if (err.close_code == CX_WS_CLOSE_UNSUPPORTED)
                    FUZZ_CHECK(st->flags & CX_WS_RX_BINARY_ONLY);
                out->rc = rc;
                out->code = err.close_code;
                free(buf);
                cx_buf_free(&msg);
                /* Again, on the same original bytes (the first try unmasked some). */
                buf = dup_exact(data + done, avail);
                cx_ws_error_t err2 = {0, NULL};
                int rc2 = cx_ws_decode(&rx, buf, avail, &f, &need, &err2);
                if (err.close_code != CX_WS_CLOSE_BAD_DATA)
                    FUZZ_CHECK(rc2 == rc && err2.close_code == err.close_code);
                free(buf);
                return;
            }
            FUZZ_CHECK(!was_closed);
            /* Where things are. */
            FUZZ_CHECK(f.consumed >= 1 && f.consumed <= avail);
            FUZZ_CHECK(f.len <= f.consumed && f.len <= f.frame_len);
            if (f.len) {
                FUZZ_CHECK(f.payload >= buf && f.payload + f.len <= buf + f.consumed);
            }
            FUZZ_CHECK(f.frame_len <= st->max_frame);
            bool control = (f.opcode & 0x8) != 0;
            if (control) {
                FUZZ_CHECK(f.opcode == CX_WS_OP_CLOSE || f.opcode == CX_WS_OP_PING ||
                           f.opcode == CX_WS_OP_PONG);
                FUZZ_CHECK(!mid_frame && f.fin && f.frame_end && !f.message_end);
                FUZZ_CHECK(f.msg_opcode == 0 && f.len == f.frame_len && f.len <= 125);
                if (f.opcode == CX_WS_OP_CLOSE) {
                    FUZZ_CHECK(rx.closed);
                    if (f.len == 0) {
                        FUZZ_CHECK(f.close_code == CX_WS_CLOSE_NO_STATUS);
                    } else {
                        FUZZ_CHECK(cx_ws_close_code_is_valid(f.close_code));
                        FUZZ_CHECK(f.close_reason.p == f.payload + 2 &&
                                   f.close_reason.len == f.len - 2);
                        check_utf8_text(f.close_reason.p, f.close_reason.len);
                    }
                }
            } else {
                FUZZ_CHECK(f.opcode == CX_WS_OP_CONT || f.opcode == CX_WS_OP_TEXT ||
                           f.opcode == CX_WS_OP_BINARY);
                FUZZ_CHECK(f.msg_opcode == CX_WS_OP_TEXT || f.msg_opcode == CX_WS_OP_BINARY);
                if (f.opcode != CX_WS_OP_CONT)
                    FUZZ_CHECK(f.msg_opcode == f.opcode);
                if (st->flags & CX_WS_RX_BINARY_ONLY)
                    FUZZ_CHECK(f.msg_opcode == CX_WS_OP_BINARY);
                if (!stream)
                    FUZZ_CHECK(f.frame_end && f.len == f.frame_len);
                FUZZ_CHECK(!f.message_end || (f.fin && f.frame_end));
                FUZZ_CHECK(cx_ws_rx_in_message(&rx) == !f.message_end);
            }
            if (!mid_frame) {
                frame_start = cx_buf_used(&out->bytes);
                if (!control && f.opcode != CX_WS_OP_CONT)
                    cx_buf_reset(&msg);
            }
            if (f.len) {
                FUZZ_CHECK(cx_buf_append(&out->bytes, f.payload, f.len) == CX_OK);
                if (!control)
                    FUZZ_CHECK(cx_buf_append(&msg, f.payload, f.len) == CX_OK);
            }
            delivered += f.len;
            FUZZ_CHECK(delivered <= done + f.consumed && done + f.consumed <= fed);
            size_t used = cx_buf_used(&out->bytes);
            FUZZ_CHECK(used - frame_start <= f.frame_len);
            mid_frame = !f.frame_end;
            if (f.frame_end) {
                FUZZ_CHECK(used - frame_start == f.frame_len);
                if (f.message_end && f.msg_opcode == CX_WS_OP_TEXT)
                    check_utf8_text(head(&msg), cx_buf_used(&msg));
                frame_rec_t r;
                memset(&r, 0, sizeof r);
                r.opcode = f.opcode;
                r.msg_opcode = f.msg_opcode;
                r.fin = f.fin;
                r.message_end = f.message_end;
                r.close_code = f.close_code;
                r.frame_len = f.frame_len;
                r.end = used;
                FUZZ_CHECK(cx_buf_append(&out->frames, &r, sizeof r) == CX_OK);
            }
            done += f.consumed;
            free(buf);
        }
        if (fed == n) {
            cx_buf_free(&msg);
            return;
        }
    }
}

/* Turns a server frame (unmasked) at s[0..n) into the client frame a peer would send: mask
 * bit, key, masked payload. */
static uint8_t *to_client(const uint8_t *s, size_t n, const uint8_t key[4], size_t *out_len)
{
    FUZZ_CHECK(n >= 2);
    size_t hl = (s[1] & 0x7F) == 127 ? 10 : (s[1] & 0x7F) == 126 ? 4 : 2;
    FUZZ_CHECK(n >= hl);
    uint8_t *c = malloc(n + 4);
    FUZZ_CHECK(c != NULL);
    memcpy(c, s, hl);
    c[1] |= 0x80;
    memcpy(c + hl, key, 4);
    memcpy(c + hl + 4, s + hl, n - hl);
    cx_ws_mask(c + hl + 4, n - hl, key, 0);
    *out_len = n + 4;
    return c;
}

/* Encodes one frame the way the server would, and decodes it back. */
static void roundtrip(const frame_rec_t *r, const uint8_t *p, size_t len, unsigned idx)
{
    cx_buf_t b;
    cx_buf_init(&b, 0);
    uint8_t want_op = r->opcode;
    uint16_t want_code = 0;
    const uint8_t *want_p = p;
    size_t want_len = len;
    if (r->opcode == CX_WS_OP_CLOSE) {
        if (len == 0) {
            FUZZ_CHECK(cx_ws_close_encode(&b, 0, NULL) == CX_OK);
            want_code = CX_WS_CLOSE_NO_STATUS;
        } else if (!memchr(p + 2, 0, len - 2)) {
            char reason[CX_WS_CLOSE_REASON_MAX + 1];
            FUZZ_CHECK(len - 2 <= CX_WS_CLOSE_REASON_MAX);
            memcpy(reason, p + 2, len - 2);
            reason[len - 2] = '\0';
            FUZZ_CHECK(cx_ws_close_encode(&b, r->close_code, reason) == CX_OK);
            want_code = r->close_code;
        } else {
            FUZZ_CHECK(cx_ws_frame_encode(&b, CX_WS_OP_CLOSE, p, len) == CX_OK);
            want_code = r->close_code;
        }
    } else if (r->opcode == CX_WS_OP_PING) {
        FUZZ_CHECK(cx_ws_ping_encode(&b, p, len) == CX_OK);
    } else if (r->opcode == CX_WS_OP_PONG) {
        FUZZ_CHECK(cx_ws_pong_encode(&b, p, len) == CX_OK);
    } else if (r->opcode == CX_WS_OP_TEXT && r->fin) {
        FUZZ_CHECK(cx_ws_frame_encode(&b, CX_WS_OP_TEXT, p, len) == CX_OK);
    } else if (idx & 1) {
        /* a fragment (maybe of a text message, maybe split inside a character): binary */
        want_op = CX_WS_OP_BINARY;
        FUZZ_CHECK(cx_ws_binary_encode(&b, p, len) == CX_OK);
    } else {
        want_op = CX_WS_OP_BINARY;
        uint8_t hdr[CX_WS_SERVER_HEADER_MAX];
        size_t hl = cx_ws_header_encode(hdr, CX_WS_OP_BINARY, true, len);
        FUZZ_CHECK(hl == (len < 126 ? 2u : len <= 0xFFFF ? 4u : 10u));
        FUZZ_CHECK(cx_buf_append(&b, hdr, hl) == CX_OK);
        FUZZ_CHECK(cx_buf_append(&b, p, len) == CX_OK);
    }
    size_t hl = len < 126 ? 2 : len <= 0xFFFF ? 4 : 10;
    FUZZ_CHECK(cx_buf_used(&b) == hl + len);
    /* Server frames are never masked. */
    FUZZ_CHECK((cx_buf_head(&b)[1] & 0x80) == 0);

    const uint8_t key[4] = {(uint8_t)idx, 0xA5, (uint8_t)(len >> 3), 0x3C};
    size_t n;
    uint8_t *c = to_client(cx_buf_head(&b), cx_buf_used(&b), key, &n);
    cx_ws_rx_t rx;
    cx_ws_rx_init(&rx, UINT64_MAX, UINT64_MAX, 0);
    cx_ws_frame_t f;
    cx_ws_error_t err = {0, NULL};
    int rc = cx_ws_decode(&rx, c, n, &f, NULL, &err);
    FUZZ_CHECK(rc == CX_OK);
    FUZZ_CHECK(f.consumed == n && f.opcode == want_op && f.fin && f.frame_end);
    FUZZ_CHECK(f.len == want_len && (!want_len || memcmp(f.payload, want_p, want_len) == 0));
    if (want_op == CX_WS_OP_CLOSE)
        FUZZ_CHECK(f.close_code == want_code);
    if (want_op == CX_WS_OP_TEXT || want_op == CX_WS_OP_BINARY)
        FUZZ_CHECK(f.message_end && f.msg_opcode == want_op);
    free(c);
    cx_buf_free(&b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 3)
        return 0;
    settings_t st;
    st.flags = ((data[0] & 1) ? CX_WS_RX_STREAM : 0) | ((data[0] & 2) ? CX_WS_RX_BINARY_ONLY : 0);
    st.max_frame = limits[data[1] & 15];
    st.max_message = limits[data[1] >> 4];
    static const size_t max_chunk[] = {1, 5, 64, 4096};
    size_t chunk_cap = max_chunk[data[2] & 3];
    uint32_t seed = 0x2545F491u ^ (uint32_t)data[2] << 8 ^ data[0];
    data += 3;
    size = size - 3;

    story_t whole, chunked;
    cx_buf_init(&whole.bytes, 0);
    cx_buf_init(&whole.frames, 0);
    cx_buf_init(&chunked.bytes, 0);
    cx_buf_init(&chunked.frames, 0);
    run(&st, data, size, 0, 0, &whole);
    run(&st, data, size, chunk_cap, seed, &chunked);

    FUZZ_CHECK(whole.rc == chunked.rc && whole.code == chunked.code);
    size_t wf = cx_buf_used(&whole.frames);
    FUZZ_CHECK(wf == cx_buf_used(&chunked.frames));
    FUZZ_CHECK(memcmp(head(&whole.frames), head(&chunked.frames), wf) == 0);
    size_t wn = cx_buf_used(&whole.bytes), cn = cx_buf_used(&chunked.bytes);
    bool loose = (st.flags & CX_WS_RX_STREAM) && whole.rc != CX_EAGAIN;
    FUZZ_CHECK(loose ? wn <= cn : wn == cn);
    FUZZ_CHECK(memcmp(head(&whole.bytes), head(&chunked.bytes), wn) == 0);

    /* Round trip every whole frame of the whole run. */
    size_t nf = cx_buf_used(&whole.frames) / sizeof(frame_rec_t);
    uint64_t start = 0;
    for (size_t i = 0; i < nf; i++) {
        frame_rec_t r;
        memcpy(&r, head(&whole.frames) + i * sizeof r, sizeof r);
        FUZZ_CHECK(r.end >= start && r.end - start == r.frame_len);
        roundtrip(&r, head(&whole.bytes) + start, (size_t)r.frame_len, (unsigned)i);
        start = r.end;
    }

    cx_buf_free(&whole.bytes);
    cx_buf_free(&whole.frames);
    cx_buf_free(&chunked.bytes);
    cx_buf_free(&chunked.frames);
    return 0;
}
