/* filter.h: the per-connection transport filter stack (internal to core/net).
 *
 * A connection on a plain listener has no filter state (c->x == NULL) and conn.c reads
 * and writes the socket directly into and out of c->in / c->out. On a listener with a PROXY
 * header, TLS or WebSockets, c->x holds the state of each layer, and conn.c hands reading
 * and flushing to cx_xport_read() / cx_xport_flush(), which run the layers in order:
 *
 *     read:   socket -> [PROXY header, consumed first] -> [TLS decrypt]
 *                    -> [WebSocket handshake, then unframe] -> c->in -> on_read
 *     flush:  c->out -> [WebSocket frame] -> [TLS encrypt] -> socket
 *
 * so the MQTT layer above sees plain bytes either way. Each handshake (PROXY header, TLS,
 * WebSocket upgrade) is a stage that advances only on socket events: nothing blocks, and a
 * stalled peer holds nothing but its own connection (client.c closes connections that have
 * not sent CONNECT 20 s after accept, handshakes included; cx_conn_handshake() names the
 * stage for the log).
 *
 * Invariants:
 *  - Layers keep no complete input they could deliver: after a read stops, the bytes held
 *    in `pre`, in OpenSSL or in `ws_in` are an incomplete PROXY header / TLS record /
 *    WebSocket frame header, except when the read stopped early (read paused, handover,
 *    the per-turn budget). Then `rx_more` is set and the connection is put on its worker's
 *    "again" list when it may read again, since no socket event would announce those bytes.
 *  - All state lives in the cx_xport, owned by the connection: cx_conn_detach/attach move
 *    it to another worker with the connection, untouched.
 *  - Output is written only once the handshakes below it are complete; the WebSocket layer
 *    frames c->out into `wire` (one copy) and writes from there, other stacks write c->out
 *    in place (TLS encrypts from it directly). */
#ifndef CX_NET_FILTER_H
#define CX_NET_FILTER_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "conn.h"
#include "transport.h"
#include "util/buf.h"
#include "ws.h"

struct ssl_st;
struct ssl_ctx_st;

/* Stages, in the order a connection goes through them (skipped when not configured). */
enum {
    CX_XS_PROXY = 0, /* reading the PROXY protocol header */
    CX_XS_TLS,       /* TLS handshake */
    CX_XS_WS,        /* WebSocket upgrade request */
    CX_XS_OPEN,      /* application bytes */
};

struct cx_tls_ctx {
    atomic_int refs;
    struct ssl_ctx_st *ssl_ctx;
    struct psk_entry *psk; /* psk_file entries */
    size_t npsk;
    bool psk_listener;
    struct engine_st *engine; /* tls_engine: a functional reference, or NULL */
};

typedef struct cx_xport {
    cx_conn_t *conn;
    cx_transport_t *tp;    /* the listener's (listeners outlive their connections) */
    uint8_t stage;         /* CX_XS_* */
    bool rx_more;          /* the last read stopped before the layers ran dry */
    bool need_write;       /* a layer waits for writability to go on reading (TLS) */
    bool raw_eof;          /* the socket said EOF */
    int io_errno;          /* errno of the last failed socket call under TLS, for the log */
    cx_list_t again_link;  /* on net->again_list */
    cx_buf_t pre;          /* bytes read with (past) the PROXY header, not yet used */

    /* PROXY protocol: what the header said beyond the addresses. */
    uint8_t proxy_version; /* 0 = no header */
    bool proxy_tls;        /* the client used TLS to the proxy */

    /* TLS */
    cx_tls_ctx_t *tctx;    /* reference held while the connection lives */
    struct ssl_st *ssl;
    bool tls_done;         /* handshake complete */
    bool tls_dead;         /* fatal error: no close_notify may be sent */
    uint8_t first[4];      /* first bytes the client sent, to explain a failed handshake */
    uint8_t nfirst;
    char psk_identity[129]; /* the identity whose key the PSK callback gave, "" = none */

    /* WebSocket */
    bool ws;
    bool ws_open;          /* the 101 answer is queued: frames from here on */
    bool ws_close_sent;
    bool ws_peer_closed;   /* a close frame came: close once what preceded it is handled */
    cx_ws_request_t req;
    cx_ws_rx_t rx;
    cx_buf_t ws_in;        /* bytes from below that are not unframed yet */
    cx_buf_t wire;         /* framed output (and the HTTP answer) waiting for the socket */

    /* Identity for plugins and use_identity_as_username: "name\0value\0..." */
    char *fields;
    size_t fields_len;
} cx_xport_t;

/* Creates the filter state of a new connection on a listener with a non-plain transport.
 * NULL when out of memory (logged). */
cx_xport_t *cx_xport_new(cx_conn_t *c, cx_transport_t *tp);
void cx_xport_free(cx_xport_t *x);

/* The read path of a filtered connection: runs the stages, delivers application bytes to
 * c->in and calls on_read. `budget`: bytes it may read before yielding. */
void cx_xport_read(cx_conn_t *c, size_t budget);
/* Writes what can be written without blocking: >0 progressed (or nothing to do), 0 would
 * block, <0 error. */
ssize_t cx_xport_flush(cx_conn_t *c);
/* The connection is closing: queue the WebSocket close frame and TLS close_notify, and
 * make one last attempt to send everything. */
void cx_xport_closing(cx_conn_t *c);
/* Bytes framed and waiting in the filters (counted by cx_conn_pending). */
size_t cx_xport_pending(const cx_conn_t *c);
bool cx_xport_wants_write(const cx_conn_t *c);

/* The read may go on (read resumed, connection attached): put it on the "again" list if
 * its filters hold input. */
void cx_xport_resume(cx_conn_t *c);
/* Takes the connection off its worker's "again" list (detach, free). */
void cx_xport_detach(cx_conn_t *c);
/* The netctx timer that runs the "again" list on the next loop turn. */
void cx_xport_again_cb(cx_loop_t *loop, cx_timer_t *t);

/* Layers (filter_*.c). Steps return >0 progressed, 0 would block, <0 failed (and have
 * closed the connection, having logged why). */
ssize_t cx_xraw_recv(cx_xport_t *x, uint8_t *p, size_t n);  /* CX_ECLOSED on EOF */
ssize_t cx_xraw_sock_recv(cx_xport_t *x, uint8_t *p, size_t n); /* the socket only */
ssize_t cx_xraw_send(cx_xport_t *x, const uint8_t *p, size_t n);
ssize_t cx_xproxy_step(cx_conn_t *c);
int cx_xtls_init(cx_xport_t *x);
void cx_xtls_free(cx_xport_t *x);
ssize_t cx_xtls_handshake(cx_conn_t *c);
ssize_t cx_xtls_recv(cx_conn_t *c, uint8_t *p, size_t n); /* CX_ECLOSED on EOF */
ssize_t cx_xtls_send(cx_conn_t *c, const uint8_t *p, size_t n);
void cx_xtls_shutdown(cx_conn_t *c);
/* Handles the bytes in ws_in: the upgrade request, then frames into c->in. 0 or <0. */
int cx_xws_input(cx_conn_t *c);
/* Frames c->out into wire. 0 or CX_ENOMEM. */
int cx_xws_frame_out(cx_conn_t *c);
void cx_xws_closing(cx_conn_t *c);

/* Re-registers the connection's socket interest (after need_write changed). conn.c. */
void cx_conn_io_update(cx_conn_t *c);

/* Appends name=value to x->fields. */
int cx_xport_add_field(cx_xport_t *x, const char *name, const char *value, size_t len);
/* OpenSSL's reason for the last error (and clears the queue). */
const char *cx_tls_reason(char *buf, size_t len);

#endif
