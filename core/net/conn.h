/* conn.h: a client's transport connection: socket, read buffer, output buffer.
 *
 * Knows nothing of MQTT. The protocol layer above registers a cx_conn_ops table; net calls
 * on_read after draining the socket (every whole packet is then handled in one go), and
 * on_close once before the connection is freed.
 *
 * Output is appended with cx_conn_write() during the turn and flushed once per loop turn
 * from cx_net_flush() (called before the loop sleeps), so a busy connection gets one
 * syscall for many packets and a lone packet still leaves at once. A write interest is
 * registered only when the socket would block.
 *
 * Closing is deferred (Redis's freeClientAsync): cx_conn_close() marks the connection,
 * stops reading and frees it at the end of the turn, so no callback ever sees a freed
 * connection.
 *
 * Transport filters: on listeners with a PROXY header, TLS or WebSockets, `x` holds the
 * connection's filter stack (filter.h) and the read and flush paths run it, so c->in and
 * c->out carry plain MQTT bytes whatever the transport. Plain TCP connections have x ==
 * NULL and take the direct path, with no extra copy. */
#ifndef CX_NET_CONN_H
#define CX_NET_CONN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "loop/loop.h"
#include "util/buf.h"
#include "util/list.h"

typedef struct cx_conn cx_conn_t;
typedef struct cx_xport cx_xport_t;
typedef struct cx_netctx cx_netctx_t;
typedef struct cx_listener cx_listener_t;

typedef struct cx_conn_ops {
    /* New bytes are in c->in, which may be the worker's read buffer lent for the call:
     * consume what was handled with cx_buf_consume(..., 0) and never free or grow it. */
    void (*on_read)(cx_conn_t *c);
    /* The connection is about to be freed (peer closed, error, or cx_conn_close). */
    void (*on_close)(cx_conn_t *c);
} cx_conn_ops_t;

struct cx_conn {
    cx_io_t io;
    cx_netctx_t *net;          /* the owning worker's context */
    const cx_conn_ops_t *ops;
    void *proto;               /* protocol state owned by the layer above */
    cx_listener_t *listener;
    cx_xport_t *x;             /* filter stack; NULL for plain TCP (filter.h) */
    cx_buf_t in;
    cx_buf_t out;
    uint64_t id;
    cx_list_t flush_link;      /* on net->flush_list while output is pending */
    cx_list_t all_link;        /* on net->conns */
    int close_reason;          /* cx_err or -errno that closed it, for the log */
    bool closing;
    bool read_paused;
    bool eof;
    /* "address:port" or "unix", allocated with the connection: its exact length, or
     * CX_CONN_PEER_MAX bytes on a listener with a PROXY header (the real client's address
     * replaces the proxy's). */
    char peer[];
};

/* The longest peer string, with its NUL ("[IPv6]:port" fits). */
#define CX_CONN_PEER_MAX 64

/* Per-worker network context. */
struct cx_netctx {
    cx_loop_t *loop;
    cx_list_t flush_list;
    cx_list_t close_list;
    cx_list_t conns;
    size_t conn_count;
    size_t read_chunk;         /* bytes reserved per read() */
    void *ud;                  /* the worker that owns this context */
    cx_list_t again_list;      /* filtered connections with input no socket event announces */
    cx_timer_t again_timer;    /* runs again_list on the next turn */
    cx_list_t accepts;         /* this worker's listening socket watchers (listener.c) */
    /* Lent as c->in to a plain TCP connection with nothing buffered while it reads (conn.c
     * do_read); what is left after on_read is copied into the connection's own buffer. */
    uint8_t rbuf[16384];
};

/* After this many bytes in one turn a connection yields to the others. */
#define CX_NET_READ_BUDGET (256 * 1024)

void cx_net_init(cx_netctx_t *n, cx_loop_t *loop, void *ud);
/* Marks every connection closed (on shutdown); cx_net_flush frees them. */
void cx_net_close_all(cx_netctx_t *n);

/* Wraps an accepted, non-blocking socket. The connection is not yet on any loop. */
cx_conn_t *cx_conn_new(int fd, cx_listener_t *l, const char *peer);
/* Puts c on the loop of net and starts reading. Used for new connections and for a
 * connection handed over from another worker. */
int cx_conn_attach(cx_conn_t *c, cx_netctx_t *net, const cx_conn_ops_t *ops);
/* Takes c off its loop so another worker can attach it (its buffers travel with it). */
void cx_conn_detach(cx_conn_t *c);

/* Appends bytes to the output buffer; returns CX_OK or CX_ENOMEM. */
int cx_conn_write(cx_conn_t *c, const void *p, size_t n);
/* The output buffer, for encoders that append in place; call cx_conn_wrote() after. */
static inline cx_buf_t *cx_conn_outbuf(cx_conn_t *c) { return &c->out; }
void cx_conn_wrote(cx_conn_t *c);
size_t cx_xport_pending(const cx_conn_t *c);
/* Bytes waiting to be written (in c->out and, framed, in the filters). */
static inline size_t cx_conn_pending(const cx_conn_t *c)
{
    return cx_buf_used(&c->out) + (c->x ? cx_xport_pending(c) : 0);
}

/* Stops/resumes reading (back-pressure, waiting for a slow answer). */
void cx_conn_pause_read(cx_conn_t *c);
void cx_conn_resume_read(cx_conn_t *c);

/* Deferred close: flushes what can be written without blocking, then frees at the end of
 * the turn. `reason` is kept for the log. Safe to call more than once. */
void cx_conn_close(cx_conn_t *c, int reason);

/* Writes pending output of every connection and frees closed connections. Called once per
 * loop turn before sleeping. */
void cx_net_flush(cx_netctx_t *n);

/* The handshake a filtered connection is still in ("TLS handshake", "WebSocket handshake",
 * "PROXY protocol header"), or NULL once application bytes flow (and for plain TCP). */
const char *cx_conn_handshake(const cx_conn_t *c);
/* True once a TLS handshake has completed on c. */
bool cx_conn_is_tls(const cx_conn_t *c);
/* Identity facts of the transport, for plugins (client_cert_field) and
 * use_identity_as_username; NULL when absent. Names: "CN", "O", "OU", ... (each subject
 * attribute by its short name, the first of each), "subject", "issuer" (RFC 2253),
 * "serial" (hex), "sha256" (certificate fingerprint, hex), "tls_version", "cipher",
 * "psk_identity"; behind a TLS-terminating proxy (PROXY v2): "CN" when the proxy verified
 * the client certificate, "tls_version", and "verified_by" = "proxy". */
const char *cx_conn_field(const cx_conn_t *c, const char *name);
/* All of them as "name\0value\0..." (len bytes), or NULL. */
const char *cx_conn_fields(const cx_conn_t *c, size_t *len);

#endif
