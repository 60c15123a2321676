/* ws.h: WebSocket (RFC 6455), server side, as pure functions over byte buffers.
 *
 * Used by `protocol websockets` listeners for MQTT over WebSockets. Nothing here does I/O
 * or knows MQTT beyond the subprotocol names and the "binary frames only" policy flag:
 *
 *  - Opening handshake: cx_ws_request_parse() reads the client's HTTP/1.1 upgrade request
 *    from the start of the connection's input (incrementally, capped), validates it, and
 *    cx_ws_response_accept() / cx_ws_response_error() append the answer to an output
 *    buffer.
 *  - Frames from the client: cx_ws_decode() takes one frame (or, in streaming mode, the part
 *    of a data frame that is there) from the input, checks every RFC 6455 rule that can be
 *    seen on the receiving side, and unmasks the payload in place. The fragmentation state
 *    lives in a small cx_ws_rx_t per connection.
 *  - Frames to the client (never masked): cx_ws_header_encode() for writev(header, payload),
 *    and helpers for binary, ping, pong and close frames.
 *
 * Errors: every decode error is CX_EPROTO or CX_ETOOBIG with the close code to send and a
 * static message; the connection then closes. */
#ifndef CX_NET_WS_H
#define CX_NET_WS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/buf.h"
#include "util/str.h"

/* ---- opening handshake ---------------------------------------------------------------- */

/* Default cap on the request's header block (request line to the blank line included). */
#define CX_WS_REQUEST_MAX_DEFAULT 8192

/* Flags for cx_ws_request_parse. */
enum {
    /* Accept a request without Sec-WebSocket-Protocol (the 101 then names none). MQTT
     * requires clients to offer "mqtt" (v5 §6, 3.1.1 §6); a few old clients do not. */
    CX_WS_ALLOW_NO_SUBPROTOCOL = 1u << 0,
};

/* The parsed upgrade request. Slices (target, path, host, origin) borrow the caller's input
 * bytes and stay valid while those bytes are unchanged; key and subprotocol are copies, so
 * the 101 can be built after the input has been consumed. */
typedef struct cx_ws_request {
    size_t header_len;       /* CX_OK: bytes of the request, "\r\n\r\n" included; what follows
                              * belongs to the WebSocket stream */
    cx_str_t target;         /* request-target as sent ("/mqtt?x=1" or "http://h/mqtt") */
    cx_str_t path;           /* its path, without query: "/mqtt" */
    cx_str_t host;           /* Host value, OWS trimmed */
    cx_str_t origin;         /* Origin value; p == NULL when absent (non-browser clients) */
    char key[25];            /* Sec-WebSocket-Key, 24 base64 characters + NUL */
    const char *subprotocol; /* static "mqtt" or "mqttv3.1", or NULL (none offered, allowed
                              * only with CX_WS_ALLOW_NO_SUBPROTOCOL) */
    /* On failure: */
    int status;        /* HTTP status to answer with: 400, 426 or 431 */
    bool websocket;    /* the request asked for a WebSocket upgrade (Upgrade: websocket).
                        * false with CX_EPROTO = a plain HTTP request, not a bad handshake */
    const char *error; /* static text for the log */
    size_t scan_;      /* private: where the search for the blank line resumes */
} cx_ws_request_t;

/* Prepares req for a new connection (or after an error, for reuse). */
void cx_ws_request_init(cx_ws_request_t *req);

/* Parses the upgrade request at buf[0..len). Call again with the same req and more bytes
 * (same start, longer len) after CX_EAGAIN; the search resumes where it stopped.
 * Returns:
 *   CX_OK      a valid WebSocket upgrade; answer with cx_ws_response_accept().
 *   CX_EAGAIN  the header block is not complete yet.
 *   CX_EPROTO  a bad or non-WebSocket request; answer req->status (400 or 426) with
 *              cx_ws_response_error() and close. req->websocket tells a plain HTTP request
 *              (which the caller may route elsewhere) from a broken handshake.
 *   CX_ETOOBIG no blank line within `max` bytes; req->status is 431.
 * The caller checks req->path (404) and req->origin (403) against its configuration.
 * Bytes that are not allowed in an HTTP header (control characters other than CR, LF, HT)
 * fail at once, so a TLS hello or other binary garbage is not buffered up to `max`. */
int cx_ws_request_parse(cx_ws_request_t *req, const uint8_t *buf, size_t len, size_t max,
                        unsigned flags);

/* Sec-WebSocket-Accept for a key: base64(SHA-1(key + GUID)), 28 characters + NUL.
 * Returns CX_OK, or CX_EIO if the digest failed. */
int cx_ws_accept_key(const char *key, size_t key_len, char out[29]);

/* Appends the "101 Switching Protocols" answer to req to out, all or nothing.
 * Returns CX_OK, CX_ENOMEM / CX_ETOOBIG from the buffer, or CX_EIO (digest failure). */
int cx_ws_response_accept(const cx_ws_request_t *req, cx_buf_t *out);

/* Appends an error answer (with "Connection: close" and a one-line text body) to out, all
 * or nothing. status: 400, 403, 404, 426 (adds "Sec-WebSocket-Version: 13") or 431;
 * anything else is CX_EINVAL. */
int cx_ws_response_error(int status, cx_buf_t *out);

/* ---- frames --------------------------------------------------------------------------- */

typedef enum cx_ws_opcode {
    CX_WS_OP_CONT = 0x0,
    CX_WS_OP_TEXT = 0x1,
    CX_WS_OP_BINARY = 0x2,
    CX_WS_OP_CLOSE = 0x8,
    CX_WS_OP_PING = 0x9,
    CX_WS_OP_PONG = 0xA,
} cx_ws_opcode;

/* Close codes used by this module (RFC 6455 §7.4.1). */
enum {
    CX_WS_CLOSE_NORMAL = 1000,
    CX_WS_CLOSE_GOING_AWAY = 1001,
    CX_WS_CLOSE_PROTOCOL = 1002,
    CX_WS_CLOSE_UNSUPPORTED = 1003, /* a data type the endpoint cannot accept (text) */
    CX_WS_CLOSE_NO_STATUS = 1005,   /* never on the wire: a close frame without a code */
    CX_WS_CLOSE_BAD_DATA = 1007,    /* invalid UTF-8 */
    CX_WS_CLOSE_POLICY = 1008,
    CX_WS_CLOSE_TOO_BIG = 1009,
    CX_WS_CLOSE_INTERNAL = 1011,
};

/* Largest control-frame payload and close reason (RFC 6455 §5.5). */
#define CX_WS_CONTROL_MAX 125
#define CX_WS_CLOSE_REASON_MAX 123
/* Largest frame header a client can send (2 + 8 length + 4 mask) / a server writes. */
#define CX_WS_CLIENT_HEADER_MAX 14
#define CX_WS_SERVER_HEADER_MAX 10

/* Flags for cx_ws_rx_init. */
enum {
    /* MQTT policy (MQTT v5 §6: "MQTT Control Packets MUST be sent in WebSocket binary data
     * frames"): a text frame fails at its header with close code 1003. */
    CX_WS_RX_BINARY_ONLY = 1u << 0,
    /* Deliver data-frame payload as soon as any of it is there, in pieces, instead of
     * waiting for the whole frame: the input buffer then never has to hold a whole frame,
     * and MQTT bytes can be appended to the MQTT input as they arrive. Control frames are
     * always delivered whole. */
    CX_WS_RX_STREAM = 1u << 1,
};

/* Receive state of one connection: the limits, the open fragmented message and, in
 * streaming mode, the frame whose payload is being delivered. Fields are private; read
 * them through the functions below. */
typedef struct cx_ws_rx {
    uint64_t max_frame;   /* payload bytes per frame (1009 past it) */
    uint64_t max_message; /* payload bytes per data message, all fragments (1009) */
    unsigned flags;
    /* the data message in progress (after a data frame without FIN) */
    bool in_message;
    uint8_t msg_opcode; /* CX_WS_OP_TEXT or CX_WS_OP_BINARY */
    uint64_t msg_len;
    /* streaming: the frame whose payload is partly delivered */
    bool in_frame;
    bool frame_fin;
    uint8_t frame_opcode;
    uint8_t mask[4];
    uint64_t frame_len;
    uint64_t frame_done;
    /* UTF-8 validation of a text message across fragments */
    uint8_t u8_need, u8_lo, u8_hi;
    bool closed; /* a close frame was received: nothing may follow */
    int failed;  /* the error every call returns after the first one (0: none) */
    uint16_t failed_code;
} cx_ws_rx_t;

/* Limits are payload bytes; UINT64_MAX means none. max_message also bounds a single
 * unfragmented message. In whole-frame mode the caller's input buffer must be able to
 * hold max_frame + CX_WS_CLIENT_HEADER_MAX bytes. */
void cx_ws_rx_init(cx_ws_rx_t *rx, uint64_t max_frame, uint64_t max_message, unsigned flags);

/* True while a fragmented data message is open (a FIN frame has not closed it yet). */
static inline bool cx_ws_rx_in_message(const cx_ws_rx_t *rx)
{
    return rx->in_message;
}

/* One decoded frame, or in streaming mode one piece of a data frame. */
typedef struct cx_ws_frame {
    uint8_t opcode;        /* the frame's opcode; CX_WS_OP_CONT for continuation frames */
    uint8_t msg_opcode;    /* data frames: TEXT or BINARY, also for continuations; else 0 */
    bool fin;              /* the frame's FIN bit */
    bool frame_end;        /* this payload ends the frame (always, unless streaming) */
    bool message_end;      /* data frames: this payload ends the message */
    uint8_t *payload;      /* unmasked in place, inside the caller's buffer */
    size_t len;            /* payload bytes in this piece */
    uint64_t frame_len;    /* the frame's whole payload length */
    size_t consumed;       /* input bytes this call used (header + payload): drop them */
    uint16_t close_code;   /* CLOSE: the peer's code, or CX_WS_CLOSE_NO_STATUS if none */
    cx_str_t close_reason; /* CLOSE: valid UTF-8, inside payload */
} cx_ws_frame_t;

typedef struct cx_ws_error {
    uint16_t close_code; /* the close code to send before closing */
    const char *msg;     /* static text for the log */
} cx_ws_error_t;

/* Decodes from buf[0..len), the unconsumed input. The caller drops f->consumed bytes after
 * CX_OK before the next call.
 * Returns:
 *   CX_OK       f describes a frame (or a piece of one); its payload has been unmasked in
 *               place. A piece may have len 0 (a streamed frame whose payload has not
 *               arrived yet, or an empty frame).
 *   CX_EAGAIN   *need = how many more bytes are needed at least: to complete the header, a
 *               control frame, or (whole-frame mode) the frame. In streaming mode, inside a
 *               frame's payload, it is the bytes left in that frame, any of which makes
 *               progress.
 *   CX_EPROTO   a protocol error; err->close_code is 1002, 1003 (text refused by policy) or
 *               1007 (bad UTF-8).
 *   CX_ETOOBIG  a frame or message over the limits; err->close_code is 1009.
 *   CX_ECLOSED  input after the peer's close frame.
 * buf is written to only inside the payload of the frame being decoded (after an error too:
 * a close reason or text that fails UTF-8 has been unmasked). `need` and `err` may be
 * NULL. Receivers do not require minimal length encodings (RFC 6455 §5.2 asks it of
 * senders), so non-minimal 16/64-bit lengths are accepted. */
int cx_ws_decode(cx_ws_rx_t *rx, uint8_t *buf, size_t len, cx_ws_frame_t *f, size_t *need,
                 cx_ws_error_t *err);

/* XORs p[0..n) with the masking key, starting at payload offset `offset` (so a payload can
 * be unmasked in pieces). Its own inverse. */
void cx_ws_mask(uint8_t *p, size_t n, const uint8_t key[4], uint64_t offset);

/* A close code that may appear on the wire (RFC 6455 §7.4): 1000-1003, 1007-1011 and
 * 3000-4999. */
bool cx_ws_close_code_is_valid(uint16_t code);

/* True if p[0..n) is well-formed UTF-8 (RFC 3629: no overlongs, surrogates or values above
 * U+10FFFF). */
bool cx_ws_utf8_is_valid(const uint8_t *p, size_t n);

/* ---- server frames (unmasked) --------------------------------------------------------- */

/* Writes the header of a server frame with the given opcode, FIN bit and payload length to
 * out and returns its length (2, 4 or 10), so the caller can writev header + payload. */
size_t cx_ws_header_encode(uint8_t out[CX_WS_SERVER_HEADER_MAX], uint8_t opcode, bool fin,
                           uint64_t len);

/* Appends a whole unfragmented frame (header + payload) to out, all or nothing.
 * Control frames (close, ping, pong) must have len <= 125 (else CX_EINVAL). payload must
 * not point into out (the buffer may move when it grows).
 * Returns CX_OK, CX_EINVAL, or CX_ENOMEM / CX_ETOOBIG from the buffer. */
int cx_ws_frame_encode(cx_buf_t *out, uint8_t opcode, const void *payload, size_t len);

static inline int cx_ws_binary_encode(cx_buf_t *out, const void *p, size_t n)
{
    return cx_ws_frame_encode(out, CX_WS_OP_BINARY, p, n);
}
static inline int cx_ws_ping_encode(cx_buf_t *out, const void *p, size_t n)
{
    return cx_ws_frame_encode(out, CX_WS_OP_PING, p, n);
}
static inline int cx_ws_pong_encode(cx_buf_t *out, const void *p, size_t n)
{
    return cx_ws_frame_encode(out, CX_WS_OP_PONG, p, n);
}

/* Appends a close frame. code 0 sends an empty payload (no code, no reason); otherwise code
 * must pass cx_ws_close_code_is_valid (CX_EINVAL if not). reason (may be NULL) is cut to
 * 123 bytes at a UTF-8 character boundary. */
int cx_ws_close_encode(cx_buf_t *out, uint16_t code, const char *reason);

#endif
