/* filter.c: the filter stack's driver (stages, read and flush paths) and its lowest layer,
 * the socket with the bytes left over from the PROXY header in front of it. The layers
 * themselves are filter_proxy.c, filter_tls.c and filter_ws.c. */
#include "filter.h"

#include <errno.h>
#include <string.h>
#include <sys/socket.h>

#include "proxy.h"
#include "util/alloc.h"
#include "util/err.h"
#include "util/log.h"

cx_xport_t *cx_xport_new(cx_conn_t *c, cx_transport_t *tp)
{
    cx_xport_t *x = cx_calloc(1, sizeof *x);
    if (!x)
        return NULL;
    x->conn = c;
    x->tp = tp;
    cx_list_init(&x->again_link);
    cx_buf_init(&x->pre, tp->proxy_versions ? CX_PROXY_V2_MAX + 65536 : 0);
    cx_buf_init(&x->ws_in, 0);
    cx_buf_init(&x->wire, 0);
    x->ws = tp->websockets;
    if (x->ws)
        cx_ws_request_init(&x->req);
    if (tp->has_tls && cx_xtls_init(x) != CX_OK) {
        cx_xport_free(x);
        return NULL;
    }
    x->stage = tp->proxy_versions ? CX_XS_PROXY : x->ssl ? CX_XS_TLS : x->ws ? CX_XS_WS
                                                                             : CX_XS_OPEN;
    return x;
}

void cx_xport_free(cx_xport_t *x)
{
    if (!x)
        return;
    if (cx_list_linked(&x->again_link))
        cx_list_remove(&x->again_link);
    cx_xtls_free(x);
    cx_buf_free(&x->pre);
    cx_buf_free(&x->ws_in);
    cx_buf_free(&x->wire);
    cx_free(x->fields);
    cx_free(x);
}

size_t cx_xport_pending(const cx_conn_t *c)
{
    return cx_buf_used(&c->x->wire);
}

bool cx_xport_wants_write(const cx_conn_t *c)
{
    return c->x->need_write || cx_buf_used(&c->x->wire);
}

int cx_xport_add_field(cx_xport_t *x, const char *name, const char *value, size_t len)
{
    size_t nl = strlen(name);
    char *n = cx_realloc(x->fields, x->fields_len + nl + len + 2);
    if (!n)
        return CX_ENOMEM;
    memcpy(n + x->fields_len, name, nl + 1);
    memcpy(n + x->fields_len + nl + 1, value, len);
    n[x->fields_len + nl + 1 + len] = '\0';
    x->fields = n;
    x->fields_len += nl + len + 2;
    return CX_OK;
}

/* ---- the lowest layer ----------------------------------------------------------------- */

ssize_t cx_xraw_recv(cx_xport_t *x, uint8_t *p, size_t n)
{
    size_t have = cx_buf_used(&x->pre);
    if (have) {
        size_t m = have < n ? have : n;
        memcpy(p, cx_buf_head(&x->pre), m);
        cx_buf_consume(&x->pre, m, 1);
        return (ssize_t)m;
    }
    return cx_xraw_sock_recv(x, p, n);
}

ssize_t cx_xraw_sock_recv(cx_xport_t *x, uint8_t *p, size_t n)
{
    for (;;) {
        ssize_t r = recv(x->conn->io.fd, p, n, 0);
        if (r > 0)
            return r;
        if (r == 0) {
            x->raw_eof = true;
            return CX_ECLOSED;
        }
        if (errno == EINTR)
            continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK)
            return 0;
        return -errno;
    }
}

ssize_t cx_xraw_send(cx_xport_t *x, const uint8_t *p, size_t n)
{
    for (;;) {
        ssize_t r = send(x->conn->io.fd, p, n, MSG_NOSIGNAL);
        if (r >= 0)
            return r;
        if (errno == EINTR)
            continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK)
            return 0;
        return -errno;
    }
}

/* ---- read path ------------------------------------------------------------------------ */

/* Application bytes: from TLS or the socket, into c->in directly, or into ws_in for the
 * WebSocket layer to unframe. */
static ssize_t data_step(cx_conn_t *c, size_t *budget)
{
    cx_xport_t *x = c->x;
    cx_buf_t *dst = x->ws ? &x->ws_in : &c->in;
    if (cx_buf_reserve(dst, c->net->read_chunk) != CX_OK) {
        cx_log(CX_LOG_ERR, "Out of memory reading from %s; closing it.", c->peer);
        cx_conn_close(c, CX_ENOMEM);
        return CX_ENOMEM;
    }
    ssize_t n = x->ssl ? cx_xtls_recv(c, cx_buf_tail(dst), cx_buf_room(dst))
                       : cx_xraw_recv(x, cx_buf_tail(dst), cx_buf_room(dst));
    if (n <= 0) {
        if (n < 0) {
            c->eof = true;
            cx_conn_close(c, (int)n);
        }
        return n;
    }
    dst->len += (size_t)n;
    *budget = (size_t)n >= *budget ? 0 : *budget - (size_t)n;
    if (!x->ws) {
        c->ops->on_read(c);
        return n;
    }
    size_t before = cx_buf_used(&c->in);
    int rc = cx_xws_input(c);
    if (rc < 0)
        return rc;
    if (!cx_buf_used(&x->ws_in))
        cx_buf_free(&x->ws_in);
    if (cx_buf_used(&c->in) != before && !c->closing)
        c->ops->on_read(c);
    if (x->ws_peer_closed && !c->closing) {
        cx_conn_close(c, CX_ECLOSED);
        return CX_ECLOSED;
    }
    return n;
}

static void schedule_again(cx_conn_t *c)
{
    cx_netctx_t *n = c->net;
    if (!n || cx_list_linked(&c->x->again_link))
        return;
    cx_list_insert_tail(&n->again_list, &c->x->again_link);
    if (!cx_timer_is_armed(&n->again_timer))
        cx_timer_start(n->loop, &n->again_timer, 0);
}

void cx_xport_read(cx_conn_t *c, size_t budget)
{
    cx_xport_t *x = c->x;
    x->rx_more = false;
    for (;;) {
        if (c->closing)
            return;
        if (c->read_paused || !budget) {
            x->rx_more = true;
            break;
        }
        ssize_t r;
        switch (x->stage) {
        case CX_XS_PROXY: r = cx_xproxy_step(c); break;
        case CX_XS_TLS: r = cx_xtls_handshake(c); break;
        default: r = data_step(c, &budget); break;
        }
        if (r < 0)
            return; /* closed by the layer, which said why */
        if (r == 0)
            break;
    }
    if (!cx_buf_used(&c->in))
        cx_buf_free(&c->in);
    if (x->rx_more && !c->read_paused)
        schedule_again(c);
}

/* The "again" list: connections whose filters hold input no socket event will announce. */
void cx_xport_again_cb(cx_loop_t *loop, cx_timer_t *t)
{
    (void)loop;
    cx_netctx_t *n = cx_container_of(t, cx_netctx_t, again_timer);
    cx_list_t todo;
    cx_list_init(&todo);
    while (!cx_list_empty(&n->again_list)) {
        cx_list_t *it = n->again_list.next;
        cx_list_remove(it);
        cx_list_insert_tail(&todo, it);
    }
    while (!cx_list_empty(&todo)) {
        cx_xport_t *x = cx_container_of(todo.next, cx_xport_t, again_link);
        cx_list_remove(&x->again_link);
        cx_conn_t *c = x->conn;
        if (!c->closing && !c->read_paused)
            cx_xport_read(c, CX_NET_READ_BUDGET);
    }
}

void cx_xport_resume(cx_conn_t *c)
{
    if (c->x->rx_more && !c->read_paused && !c->closing)
        schedule_again(c);
}

void cx_xport_detach(cx_conn_t *c)
{
    if (cx_list_linked(&c->x->again_link))
        cx_list_remove(&c->x->again_link);
}

/* ---- write path ----------------------------------------------------------------------- */

ssize_t cx_xport_flush(cx_conn_t *c)
{
    cx_xport_t *x = c->x;
    /* Nothing is written before the layers below are ready (the TLS handshake writes its
     * own records from its step). */
    if (x->stage < CX_XS_WS)
        return 1;
    if (x->ws && x->ws_open && cx_buf_used(&c->out) && cx_xws_frame_out(c) != CX_OK)
        return CX_ENOMEM;
    cx_buf_t *b = x->ws ? &x->wire : &c->out;
    ssize_t total = 0;
    while (cx_buf_used(b)) {
        ssize_t n = x->ssl ? cx_xtls_send(c, cx_buf_head(b), cx_buf_used(b))
                           : cx_xraw_send(x, cx_buf_head(b), cx_buf_used(b));
        if (n < 0)
            return n;
        if (n == 0)
            return total;
        cx_buf_consume(b, (size_t)n, 1);
        total += n;
    }
    return total ? total : 1;
}

void cx_xport_closing(cx_conn_t *c)
{
    cx_xport_t *x = c->x;
    if (c->eof || x->raw_eof)
        return;
    if (x->ws)
        cx_xws_closing(c);
    (void)cx_xport_flush(c);
    if (x->ssl)
        cx_xtls_shutdown(c);
}

const char *cx_conn_handshake(const cx_conn_t *c)
{
    if (!c->x)
        return NULL;
    switch (c->x->stage) {
    case CX_XS_PROXY: return "PROXY protocol header";
    case CX_XS_TLS: return "TLS handshake";
    case CX_XS_WS: return "WebSocket handshake";
    default: return NULL;
    }
}

const char *cx_conn_field(const cx_conn_t *c, const char *name)
{
    if (!c->x || !c->x->fields)
        return NULL;
    const char *p = c->x->fields, *end = p + c->x->fields_len;
    while (p < end) {
        const char *v = p + strlen(p) + 1;
        if (strcmp(p, name) == 0)
            return v;
        p = v + strlen(v) + 1;
    }
    return NULL;
}

const char *cx_conn_fields(const cx_conn_t *c, size_t *len)
{
    *len = c->x ? c->x->fields_len : 0;
    return c->x ? c->x->fields : NULL;
}

bool cx_conn_is_tls(const cx_conn_t *c)
{
    return c->x && c->x->ssl && c->x->tls_done;
}
