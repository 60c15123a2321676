/* filter_ws.c: the WebSocket layer of `protocol websockets` listeners (RFC 6455; ws.h has
 * the parsing and framing). Reads the HTTP upgrade request, answers 101 (or an HTTP error
 * and closes), then unframes binary frames into c->in and frames c->out into binary
 * frames. Pings are answered, a close frame is echoed and the connection closed after the
 * bytes before it were handled. Any path is accepted; the subprotocol is "mqtt" (or
 * "mqttv3.1"), or none for old clients that offer none. */
#include <string.h>

#include "filter.h"
#include "listener.h"
#include "util/err.h"
#include "util/log.h"

static int lower(int ch)
{
    return ch >= 'A' && ch <= 'Z' ? ch + 32 : ch;
}

/* Origins are compared whole, ignoring ASCII case (scheme and host are case-insensitive,
 * RFC 6454 serialises them in lower case). */
static bool origin_allowed(const cx_transport_t *tp, cx_str_t origin)
{
    if (!tp->ws_norigins)
        return true;
    if (!origin.p)
        return false;
    for (size_t i = 0; i < tp->ws_norigins; i++) {
        const char *o = tp->ws_origins[i];
        size_t n = strlen(o), k = 0;
        if (n != origin.len)
            continue;
        while (k < n && lower((unsigned char)o[k]) == lower(origin.p[k]))
            k++;
        if (k == n)
            return true;
    }
    return false;
}

static int refuse(cx_conn_t *c, int status)
{
    cx_xport_t *x = c->x;
    cx_buf_reset(&x->wire);
    if (cx_ws_response_error(status, &x->wire) == CX_OK)
        cx_conn_wrote(c);
    cx_conn_close(c, CX_EPROTO);
    return CX_EPROTO;
}

static int handshake(cx_conn_t *c)
{
    cx_xport_t *x = c->x;
    const cx_transport_t *tp = x->tp;
    const char *where = c->listener ? c->listener->desc : "?";
    int rc = cx_ws_request_parse(&x->req, cx_buf_head(&x->ws_in), cx_buf_used(&x->ws_in),
                                 tp->ws_headers_max, CX_WS_ALLOW_NO_SUBPROTOCOL);
    if (rc == CX_EAGAIN)
        return 0;
    if (rc != CX_OK) {
        if (!x->req.websocket && rc == CX_EPROTO) {
            /* http_dir is not supported: a plain HTTP request gets 400. */
            cx_log(CX_LOG_NOTICE, "HTTP request from %s on %s is not a WebSocket upgrade (%s); "
                   "answered 400.", c->peer, where, x->req.error ? x->req.error : "malformed");
            return refuse(c, 400);
        }
        cx_log(CX_LOG_NOTICE, "WebSocket handshake from %s on %s refused: %s (HTTP %d).",
               c->peer, where, x->req.error ? x->req.error : "malformed request",
               x->req.status);
        return refuse(c, x->req.status ? x->req.status : 400);
    }
    if (!origin_allowed(tp, x->req.origin)) {
        if (x->req.origin.p)
            cx_log(CX_LOG_NOTICE, "WebSocket handshake from %s on %s refused: Origin %.*s is "
                   "not in websockets_origin (HTTP 403).", c->peer, where,
                   (int)(x->req.origin.len > 200 ? 200 : x->req.origin.len),
                   (const char *)x->req.origin.p);
        else
            cx_log(CX_LOG_NOTICE, "WebSocket handshake from %s on %s refused: no Origin header "
                   "and websockets_origin is set (HTTP 403).", c->peer, where);
        return refuse(c, 403);
    }
    if (cx_ws_response_accept(&x->req, &x->wire) != CX_OK) {
        cx_log(CX_LOG_ERR, "Out of memory answering the WebSocket handshake of %s.", c->peer);
        cx_conn_close(c, CX_ENOMEM);
        return CX_ENOMEM;
    }
    cx_log(CX_LOG_WEBSOCKETS, "WebSocket connection from %s on %s, path %.*s, subprotocol %s.",
           c->peer, where, (int)(x->req.path.len > 200 ? 200 : x->req.path.len),
           (const char *)x->req.path.p, x->req.subprotocol ? x->req.subprotocol : "(none)");
    cx_buf_consume(&x->ws_in, x->req.header_len, 0);
    x->ws_open = true;
    x->stage = CX_XS_OPEN;
    cx_ws_rx_init(&x->rx, tp->ws_max_frame, tp->ws_max_message,
                  CX_WS_RX_BINARY_ONLY | CX_WS_RX_STREAM);
    cx_conn_wrote(c);
    return 0;
}

static int protocol_error(cx_conn_t *c, const cx_ws_error_t *err, int rc)
{
    cx_xport_t *x = c->x;
    cx_log(CX_LOG_NOTICE, "WebSocket protocol error from %s: %s; closing (code %u).", c->peer,
           err->msg ? err->msg : "malformed frame", err->close_code);
    if (!x->ws_close_sent &&
        cx_ws_close_encode(&x->wire, err->close_code, err->msg) == CX_OK) {
        x->ws_close_sent = true;
        cx_conn_wrote(c);
    }
    cx_conn_close(c, rc);
    return rc;
}

int cx_xws_input(cx_conn_t *c)
{
    cx_xport_t *x = c->x;
    if (!x->ws_open) {
        int rc = handshake(c);
        if (rc < 0 || !x->ws_open)
            return rc;
    }
    while (cx_buf_used(&x->ws_in) && !x->ws_peer_closed) {
        cx_ws_frame_t f;
        cx_ws_error_t err = {0};
        int rc = cx_ws_decode(&x->rx, cx_buf_head(&x->ws_in), cx_buf_used(&x->ws_in), &f, NULL,
                              &err);
        if (rc == CX_EAGAIN)
            break;
        if (rc != CX_OK)
            return protocol_error(c, &err, rc == CX_ETOOBIG ? CX_ETOOBIG : CX_EPROTO);
        switch (f.opcode) {
        case CX_WS_OP_CONT:
        case CX_WS_OP_BINARY:
            if (f.len && cx_buf_append(&c->in, f.payload, f.len) != CX_OK) {
                cx_log(CX_LOG_ERR, "Out of memory reading from %s; closing it.", c->peer);
                cx_conn_close(c, CX_ENOMEM);
                return CX_ENOMEM;
            }
            break;
        case CX_WS_OP_PING:
            if (!x->ws_close_sent && cx_ws_pong_encode(&x->wire, f.payload, f.len) == CX_OK)
                cx_conn_wrote(c);
            break;
        case CX_WS_OP_CLOSE:
            /* Echo the code, then close once the bytes before the frame are handled. */
            cx_log(CX_LOG_WEBSOCKETS, "WebSocket close from %s (code %u).", c->peer,
                   f.close_code);
            if (!x->ws_close_sent) {
                uint16_t code = f.close_code == CX_WS_CLOSE_NO_STATUS ? 0 : f.close_code;
                if (cx_ws_close_encode(&x->wire, code, NULL) == CX_OK)
                    cx_conn_wrote(c);
                x->ws_close_sent = true;
            }
            x->ws_peer_closed = true;
            break;
        default: /* pong: nothing to do */
            break;
        }
        cx_buf_consume(&x->ws_in, f.consumed, 0);
    }
    if (x->ws_peer_closed)
        cx_buf_reset(&x->ws_in); /* nothing may follow a close frame */
    return 0;
}

int cx_xws_frame_out(cx_conn_t *c)
{
    cx_xport_t *x = c->x;
    size_t n = cx_buf_used(&c->out);
    uint8_t hdr[CX_WS_SERVER_HEADER_MAX];
    size_t hl = cx_ws_header_encode(hdr, CX_WS_OP_BINARY, true, n);
    if (cx_buf_reserve(&x->wire, hl + n) != CX_OK)
        return CX_ENOMEM;
    memcpy(cx_buf_tail(&x->wire), hdr, hl);
    memcpy(cx_buf_tail(&x->wire) + hl, cx_buf_head(&c->out), n);
    x->wire.len += hl + n;
    cx_buf_consume(&c->out, n, 1);
    return CX_OK;
}

void cx_xws_closing(cx_conn_t *c)
{
    cx_xport_t *x = c->x;
    if (!x->ws_open || x->ws_close_sent)
        return;
    uint16_t code = c->close_reason == CX_ENOMEM ? CX_WS_CLOSE_INTERNAL : CX_WS_CLOSE_NORMAL;
    /* What the MQTT layer queued goes first, in its own frame. */
    if (cx_buf_used(&c->out) && cx_xws_frame_out(c) != CX_OK)
        return;
    if (cx_ws_close_encode(&x->wire, code, NULL) == CX_OK)
        x->ws_close_sent = true;
}
