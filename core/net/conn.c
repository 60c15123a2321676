/* conn.c: connection read path, output buffering and deferred close. Connections with a
 * transport filter stack (c->x) hand reading and writing to filter.c. */
#include "conn.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "filter.h"
#include "listener.h"
#include "util/alloc.h"
#include "util/err.h"
#include "util/log.h"

#define READ_CHUNK 16384
/* After this many bytes in one turn a connection yields to the others; level-triggered
 * epoll brings it back next turn (and the "again" list, for bytes held by filters). Keeps
 * one fast publisher from starving the loop. */
#define READ_BUDGET CX_NET_READ_BUDGET

static void conn_io_cb(cx_loop_t *loop, cx_io_t *io, unsigned events);

void cx_net_init(cx_netctx_t *n, cx_loop_t *loop, void *ud)
{
    n->loop = loop;
    cx_list_init(&n->flush_list);
    cx_list_init(&n->close_list);
    cx_list_init(&n->conns);
    n->conn_count = 0;
    n->read_chunk = READ_CHUNK;
    n->ud = ud;
    cx_list_init(&n->again_list);
    cx_timer_init(&n->again_timer, cx_xport_again_cb);
    cx_list_init(&n->accepts);
}

cx_conn_t *cx_conn_new(int fd, cx_listener_t *l, const char *peer)
{
    static _Atomic uint64_t next_id = 1;
    size_t plen = strnlen(peer, CX_CONN_PEER_MAX - 1);
    size_t room = l && l->tp.proxy_versions ? CX_CONN_PEER_MAX : plen + 1;
    cx_conn_t *c = cx_calloc(1, sizeof *c + room);
    if (!c)
        return NULL;
    cx_loop_io_init(&c->io, fd, conn_io_cb);
    cx_buf_init(&c->in, 0);
    cx_buf_init(&c->out, 0);
    c->listener = l;
    c->id = next_id++;
    cx_list_init(&c->flush_link);
    cx_list_init(&c->all_link);
    memcpy(c->peer, peer, plen);
    c->peer[plen] = '\0';
    if (l && !cx_transport_is_plain(&l->tp)) {
        c->x = cx_xport_new(c, &l->tp);
        if (!c->x) {
            cx_free(c);
            return NULL;
        }
    }
    return c;
}

int cx_conn_attach(cx_conn_t *c, cx_netctx_t *net, const cx_conn_ops_t *ops)
{
    c->net = net;
    c->ops = ops;
    cx_list_insert_tail(&net->conns, &c->all_link);
    net->conn_count++;
    int rc = cx_loop_io_set(net->loop, &c->io, c->read_paused ? 0 : CX_IO_READ);
    if (rc)
        return rc;
    if (cx_conn_pending(c))
        cx_list_insert_tail(&net->flush_list, &c->flush_link);
    if (c->x)
        cx_xport_resume(c);
    return CX_OK;
}

void cx_conn_detach(cx_conn_t *c)
{
    cx_loop_io_set(c->net->loop, &c->io, 0);
    if (cx_list_linked(&c->flush_link))
        cx_list_remove(&c->flush_link);
    cx_list_remove(&c->all_link);
    c->net->conn_count--;
    if (c->x)
        cx_xport_detach(c);
    c->net = NULL;
}

static void schedule_flush(cx_conn_t *c)
{
    if (c->net && !cx_list_linked(&c->flush_link))
        cx_list_insert_tail(&c->net->flush_list, &c->flush_link);
}

int cx_conn_write(cx_conn_t *c, const void *p, size_t n)
{
    if (c->closing && c->eof)
        return CX_ECLOSED;
    int rc = cx_buf_append(&c->out, p, n);
    if (rc == CX_OK)
        schedule_flush(c);
    return rc;
}

void cx_conn_wrote(cx_conn_t *c)
{
    if (cx_conn_pending(c))
        schedule_flush(c);
}

static bool wants_write(const cx_conn_t *c)
{
    return cx_buf_used(&c->out) || (c->x && cx_xport_wants_write(c));
}

static void update_interest(cx_conn_t *c)
{
    if (!c->net)
        return;
    unsigned ev = 0;
    if (!c->read_paused && !c->closing)
        ev |= CX_IO_READ;
    if (wants_write(c) && (c->io.events & CX_IO_WRITE || (c->x && c->x->need_write)))
        ev |= CX_IO_WRITE; /* keep waiting for writability until drained */
    cx_loop_io_set(c->net->loop, &c->io, ev);
}

void cx_conn_io_update(cx_conn_t *c)
{
    update_interest(c);
}

void cx_conn_pause_read(cx_conn_t *c)
{
    c->read_paused = true;
    update_interest(c);
}

void cx_conn_resume_read(cx_conn_t *c)
{
    c->read_paused = false;
    update_interest(c);
    if (c->x)
        cx_xport_resume(c);
}

void cx_conn_close(cx_conn_t *c, int reason)
{
    if (c->closing)
        return;
    c->closing = true;
    c->close_reason = reason;
    if (c->net) {
        if (cx_list_linked(&c->flush_link))
            cx_list_remove(&c->flush_link);
        cx_list_insert_tail(&c->net->close_list, &c->flush_link);
        update_interest(c);
    }
}

/* Returns >0 progressed, 0 would block, <0 error. */
static ssize_t flush_out(cx_conn_t *c)
{
    if (c->x)
        return cx_xport_flush(c);
    ssize_t total = 0;
    while (cx_buf_used(&c->out)) {
        ssize_t n = send(c->io.fd, cx_buf_head(&c->out), cx_buf_used(&c->out), MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                return total;
            return -errno;
        }
        cx_buf_consume(&c->out, (size_t)n, 1);
        total += n;
    }
    return total ? total : 1;
}

static void flush_one(cx_conn_t *c)
{
    ssize_t r = flush_out(c);
    if (r < 0) {
        c->eof = true;
        cx_conn_close(c, (int)r);
        return;
    }
    unsigned ev = c->io.events;
    if (wants_write(c))
        ev |= CX_IO_WRITE;
    else
        ev &= ~(unsigned)CX_IO_WRITE;
    if (ev != c->io.events)
        cx_loop_io_set(c->net->loop, &c->io, ev);
}

static void conn_free(cx_conn_t *c)
{
    if (c->ops && c->ops->on_close)
        c->ops->on_close(c);
    if (c->net) {
        cx_loop_io_set(c->net->loop, &c->io, 0);
        cx_list_remove(&c->all_link);
        c->net->conn_count--;
    }
    if (c->listener)
        atomic_fetch_sub(&c->listener->connections, 1);
    cx_xport_free(c->x);
    close(c->io.fd);
    /* A listener that ran out of descriptors can accept one now. */
    if (c->net)
        cx_listener_fd_freed(c->net);
    cx_buf_free(&c->in);
    cx_buf_free(&c->out);
    cx_free(c);
}

void cx_net_flush(cx_netctx_t *n)
{
    cx_list_t *it, *tmp;
    cx_list_foreach_safe(it, tmp, &n->flush_list)
    {
        cx_conn_t *c = cx_container_of(it, cx_conn_t, flush_link);
        cx_list_remove(&c->flush_link);
        flush_one(c);
    }
    /* Closing connections get one last non-blocking attempt to send what is queued (a
     * CONNACK with an error code, a DISCONNECT with a reason) before the socket closes. */
    while (!cx_list_empty(&n->close_list)) {
        cx_conn_t *c = cx_container_of(n->close_list.next, cx_conn_t, flush_link);
        cx_list_remove(&c->flush_link);
        if (c->x)
            cx_xport_closing(c);
        else if (!c->eof && cx_buf_used(&c->out))
            (void)flush_out(c);
        conn_free(c);
    }
}

void cx_net_close_all(cx_netctx_t *n)
{
    cx_list_t *it, *tmp;
    cx_list_foreach_safe(it, tmp, &n->conns)
    {
        cx_conn_close(cx_container_of(it, cx_conn_t, all_link), CX_ECLOSED);
    }
}

/* Ends the loan of the worker's read buffer: what is left in it (a partial packet, or
 * packets waiting for a plugin or for flow control) is copied into c's own buffer. */
static int keep_input(cx_conn_t *c)
{
    cx_buf_t lent = c->in;
    c->in.data = NULL;
    c->in.off = c->in.len = c->in.cap = 0;
    if (!cx_buf_used(&lent))
        return CX_OK;
    return cx_buf_append(&c->in, cx_buf_head(&lent), cx_buf_used(&lent));
}

static void do_read(cx_conn_t *c)
{
    size_t budget = READ_BUDGET;
    if (c->x) {
        cx_xport_read(c, budget);
        return;
    }
    /* With nothing buffered, read into the worker's buffer, lent for this call, so that an
     * idle connection woken by a small packet allocates nothing. */
    cx_netctx_t *net = c->net;
    bool lent = !c->in.data && net->read_chunk <= sizeof net->rbuf;
    if (lent) {
        c->in.data = net->rbuf;
        c->in.off = c->in.len = 0;
        c->in.cap = (uint32_t)sizeof net->rbuf;
    }
    while (!c->closing && !c->read_paused && budget) {
        if (lent && cx_buf_room(&c->in) < net->read_chunk) {
            lent = false; /* a partial packet needs more room than the loan has */
            if (keep_input(c) != CX_OK) {
                cx_conn_close(c, CX_ENOMEM);
                break;
            }
        }
        if (!lent && cx_buf_reserve(&c->in, net->read_chunk) != CX_OK) {
            cx_conn_close(c, CX_ENOMEM);
            break;
        }
        ssize_t n = recv(c->io.fd, cx_buf_tail(&c->in), cx_buf_room(&c->in), 0);
        if (n > 0) {
            c->in.len += (size_t)n;
            budget = (size_t)n >= budget ? 0 : budget - (size_t)n;
            /* Hand over after every chunk so a huge backlog is never buffered whole. */
            c->ops->on_read(c);
            continue;
        }
        if (n == 0) {
            c->eof = true;
            cx_conn_close(c, CX_ECLOSED);
            break;
        }
        if (errno == EINTR)
            continue;
        if (errno != EAGAIN && errno != EWOULDBLOCK) {
            c->eof = true;
            cx_conn_close(c, -errno);
        }
        break;
    }
    if (lent && keep_input(c) != CX_OK)
        cx_conn_close(c, CX_ENOMEM);
    /* Give idle connections' read buffers back. */
    if (!cx_buf_used(&c->in))
        cx_buf_free(&c->in);
}

static void conn_io_cb(cx_loop_t *loop, cx_io_t *io, unsigned events)
{
    cx_conn_t *c = cx_container_of(io, cx_conn_t, io);
    if (c->closing)
        return;
    if ((events & CX_IO_WRITE) && c->x && c->x->need_write) {
        /* A TLS handshake (or a read) waited for room to write: go on with it. */
        c->x->need_write = false;
        cx_xport_read(c, READ_BUDGET);
        if (c->closing)
            return;
    }
    if (events & CX_IO_WRITE)
        flush_one(c);
    if ((events & CX_IO_READ) && !c->closing)
        do_read(c);
}
