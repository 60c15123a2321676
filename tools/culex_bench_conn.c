/* culex_bench_conn.c: one benchmark connection's transport — the non-blocking connect (with
 * its source address), the TLS handshake, the socket (or TLS session), its input and output
 * buffers, and the error bookkeeping. The MQTT client on top is culex_bench_client.c.
 *
 * All of it runs on the thread that owns the connection. Output is only appended here; the
 * thread writes each connection's buffer once per loop turn (cx_bench_conn_flush). Input is
 * read into the thread's scratch buffer and every whole packet in it is handled before the
 * next read; only the tail of a packet cut by the read is copied into the connection's own
 * buffer, so an idle connection holds no buffer memory.
 *
 * Errors are counted, never fatal: a connection that fails is closed and marked dead, its
 * error kind counted once, and the run goes on with the others. */
#include <errno.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "culex_bench.h"
#include "util/alloc.h"
#include "util/err.h"

/* Output we queue for one connection before calling it stuck (acks to a broker that no
 * longer reads, a huge payload at most). */
#define OUT_MAX (256u * 1024u * 1024u)
/* Bytes read from one connection per event, so one busy socket cannot starve the others;
 * epoll is level-triggered, so what is left is read on the next turn. */
#define READ_BUDGET (4u * 1024u * 1024u)

static const char *role_name(cx_bench_role r)
{
    return r == CX_BENCH_SUB ? "subscriber" : r == CX_BENCH_PUB ? "publisher" : "connection";
}

static void set_events(cx_bench_conn_t *c, bool out)
{
    if (c->epollout == out || c->fd < 0)
        return;
    struct epoll_event ev = {.events = EPOLLIN | (out ? EPOLLOUT : 0), .data.ptr = c};
    if (epoll_ctl(c->thread->epfd, EPOLL_CTL_MOD, c->fd, &ev) == 0)
        c->epollout = out;
}

bool cx_bench_conn_is_connecting(cx_bench_state s)
{
    return s == CX_BENCH_ST_TCP || s == CX_BENCH_ST_TLS || s == CX_BENCH_ST_CONNACK ||
           s == CX_BENCH_ST_SUBACK;
}

/* Leaves the connecting states, either way: the phase counters move here only. */
void cx_bench_conn_resolve(cx_bench_conn_t *c, bool ready)
{
    cx_bench_thread_t *t = c->thread;
    t->connecting--;
    t->resolved[c->role]++;
    if (ready) {
        t->ready[c->role]++;
        t->alive[c->role]++;
    }
}

void cx_bench_conn_close(cx_bench_conn_t *c)
{
    if (c->state == CX_BENCH_ST_DEAD)
        return;
    cx_bench_thread_t *t = c->thread;
    if (c->state == CX_BENCH_ST_READY || c->state == CX_BENCH_ST_CLOSING)
        t->alive[c->role]--;
    if (c->pub && !c->pub->finished) {
        c->pub->finished = true;
        t->pubs_finished++;
    }
    if (c->ssl) {
        cx_bench_tls_free(c->ssl);
        c->ssl = NULL;
    }
    if (c->fd >= 0)
        close(c->fd);
    c->fd = -1;
    c->state = CX_BENCH_ST_DEAD;
    cx_buf_free(&c->in);
    cx_buf_reset(&c->out);
}

void cx_bench_conn_fail(cx_bench_conn_t *c, cx_bench_errkind kind, const char *fmt, ...)
{
    if (c->state == CX_BENCH_ST_DEAD)
        return;
    cx_bench_counters_t *k = &c->thread->c;
    if (c->state == CX_BENCH_ST_CLOSING && (kind == CX_BENCH_ERR_CLOSED)) {
        /* The broker closing after our DISCONNECT is the normal end. */
        cx_bench_conn_close(c);
        return;
    }
    k->errors[kind]++;
    if (c->state == CX_BENCH_ST_READY || c->state == CX_BENCH_ST_CLOSING)
        k->dropped++;
    if (cx_bench_conn_is_connecting(c->state) || c->state == CX_BENCH_ST_IDLE)
        cx_bench_conn_resolve(c, false);
    if (!k->first_error[0]) {
        char msg[128];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(msg, sizeof msg, fmt, ap);
        va_end(ap);
        snprintf(k->first_error, sizeof k->first_error, "%s %u: %s", role_name(c->role), c->index,
                 msg);
    }
    cx_bench_conn_close(c);
}

void cx_bench_conn_queued(cx_bench_conn_t *c, int rc)
{
    if (rc != CX_OK) {
        cx_bench_conn_fail(c, CX_BENCH_ERR_PROTOCOL, "output buffer: %s", cx_strerror(rc));
        return;
    }
    cx_bench_thread_mark_dirty(c->thread, c);
}

/* ---- connect -------------------------------------------------------------------------- */

/* Binds fd to the next (address, port) of the run's plan: addresses round-robin, ports
 * counting through the ephemeral range. Choosing the port here matters for speed, not only
 * for count: when most of the range is in use towards one destination, the kernel's own
 * search in connect() walks the used ports one by one (it took 86 % of the generator's CPU
 * and held 19 000 connections to under 1000/s), while a bind to a given port is one hash
 * lookup. A port still held (another program, TIME_WAIT without reuse) is skipped. */
static int bind_source(int fd, cx_bench_run_t *run)
{
    const cx_bench_config_t *cfg = run->cfg;
    int one = 1;
    /* A port in TIME_WAIT from an earlier run may be taken again (tcp_tw_reuse applies to
     * loopback by default). */
    (void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    for (int tries = 0; tries < 4096; tries++) {
        uint64_t i = atomic_fetch_add_explicit(&run->next_source, 1, memory_order_relaxed);
        struct sockaddr_in src = run->sources[i % cfg->source_addrs];
        uint64_t slot = i / cfg->source_addrs + run->port_start;
        src.sin_port = htons((uint16_t)(run->port_lo + slot % run->port_range));
        if (bind(fd, (const struct sockaddr *)&src, sizeof src) == 0)
            return 0;
        if (errno != EADDRINUSE)
            return -errno;
    }
    return -EADDRINUSE;
}

int cx_bench_conn_start(cx_bench_conn_t *c, uint64_t now)
{
    cx_bench_thread_t *t = c->thread;
    cx_bench_run_t *run = t->run;
    const cx_bench_config_t *cfg = run->cfg;
    cx_bench_counters_t *k = &t->c;
    if (!k->conn_first_ns[c->role])
        k->conn_first_ns[c->role] = now;
    t->connecting++;
    c->state = CX_BENCH_ST_TCP;
    c->deadline_ns = now + (uint64_t)(cfg->connect_timeout * 1e9);
    c->fd = socket(cfg->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (c->fd < 0) {
        int e = errno;
        cx_bench_conn_fail(c, CX_BENCH_ERR_CONNECT, "socket: %s", strerror(e));
        return -e;
    }
    int one = 1;
    /* Messages must leave when the turn writes them, not when Nagle decides. */
    (void)setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (run->sources) {
        int rc = bind_source(c->fd, run);
        if (rc != 0) {
            cx_bench_conn_fail(c, CX_BENCH_ERR_CONNECT, "bind: %s", strerror(-rc));
            return rc;
        }
    }
    if (connect(c->fd, (const struct sockaddr *)&cfg->addr, cfg->addrlen) != 0 &&
        errno != EINPROGRESS) {
        int e = errno;
        cx_bench_conn_fail(c, CX_BENCH_ERR_CONNECT, "connect: %s", strerror(e));
        return -e;
    }
    struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT, .data.ptr = c};
    if (epoll_ctl(t->epfd, EPOLL_CTL_ADD, c->fd, &ev) != 0) {
        int e = errno;
        cx_bench_conn_fail(c, CX_BENCH_ERR_CONNECT, "epoll_ctl: %s", strerror(e));
        return -e;
    }
    c->epollout = true;
    return 0;
}

static void tls_step(cx_bench_conn_t *c, uint64_t now)
{
    bool want_write = false;
    const char *msg = NULL;
    int rc = cx_bench_tls_handshake(c->ssl, &want_write, &msg);
    if (rc < 0) {
        cx_bench_conn_fail(c, CX_BENCH_ERR_TLS, "TLS handshake: %s", msg);
        return;
    }
    if (rc == 0) {
        set_events(c, want_write);
        return;
    }
    set_events(c, false);
    cx_bench_client_connect(c, now);
}

static void tcp_connected(cx_bench_conn_t *c, uint64_t now)
{
    int err = 0;
    socklen_t len = sizeof err;
    if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0)
        err = errno;
    if (err) {
        cx_bench_conn_fail(c, CX_BENCH_ERR_CONNECT, "connect: %s", strerror(err));
        return;
    }
    const cx_bench_run_t *run = c->thread->run;
    if (run->tls_ctx) {
        c->ssl = cx_bench_tls_new(run->tls_ctx, c->fd, run->cfg->host, !run->cfg->insecure);
        if (!c->ssl) {
            cx_bench_conn_fail(c, CX_BENCH_ERR_TLS, "cannot create a TLS session");
            return;
        }
        c->state = CX_BENCH_ST_TLS;
        tls_step(c, now);
        return;
    }
    set_events(c, false);
    cx_bench_client_connect(c, now);
}

/* Handles every whole packet in p[0..len); returns the bytes consumed, or -1 when the
 * connection died on the way. */
static long parse(cx_bench_conn_t *c, const uint8_t *p, size_t len, uint64_t rx_ns)
{
    size_t off = 0;
    while (off < len) {
        size_t hl;
        uint32_t rl;
        cx_mqtt_error_t err = {0, NULL};
        int rc = cx_mqtt_frame(p + off, len - off, &hl, &rl, &err);
        if (rc == CX_EAGAIN)
            break;
        if (rc != CX_OK) {
            cx_bench_conn_fail(c, CX_BENCH_ERR_PROTOCOL, "bad fixed header: %s",
                               err.msg ? err.msg : "?");
            return -1;
        }
        if (len - off < hl + rl)
            break;
        cx_bench_client_on_packet(c, p + off, hl + rl, rx_ns);
        if (c->state == CX_BENCH_ST_DEAD)
            return -1;
        off += hl + rl;
    }
    return (long)off;
}

/* One read from the transport: >0 bytes, 0 would block, CX_ECLOSED at EOF, other <0 error. */
static long transport_read(cx_bench_conn_t *c, uint8_t *buf, size_t n, const char **msg)
{
    if (c->ssl) {
        bool want_write = false;
        long r = cx_bench_tls_read(c->ssl, buf, n, &want_write, msg);
        c->tls_want_write = r == 0 && want_write;
        return r;
    }
    for (;;) {
        ssize_t r = read(c->fd, buf, n);
        if (r > 0)
            return (long)r;
        if (r == 0)
            return CX_ECLOSED;
        if (errno == EINTR)
            continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK)
            return 0;
        *msg = strerror(errno);
        return -errno;
    }
}

static void do_read(cx_bench_conn_t *c)
{
    cx_bench_thread_t *t = c->thread;
    size_t total = 0;
    while (total < READ_BUDGET && c->state != CX_BENCH_ST_DEAD) {
        const char *msg = "?";
        long n;
        bool into_conn = cx_buf_used(&c->in) > 0;
        if (into_conn) {
            /* A packet is already cut: read straight behind it. */
            int rc = cx_buf_reserve(&c->in, t->scratch_len);
            if (rc != CX_OK) {
                cx_bench_conn_fail(c, CX_BENCH_ERR_PROTOCOL, "input buffer: %s", cx_strerror(rc));
                return;
            }
            n = transport_read(c, cx_buf_tail(&c->in), t->scratch_len, &msg);
        } else {
            n = transport_read(c, t->scratch, t->scratch_len, &msg);
        }
        if (n == 0)
            break;
        if (n == CX_ECLOSED) {
            cx_bench_conn_fail(c, CX_BENCH_ERR_CLOSED, "connection closed by the broker");
            return;
        }
        if (n < 0) {
            cx_bench_conn_fail(c, c->ssl ? CX_BENCH_ERR_TLS : CX_BENCH_ERR_CLOSED, "read: %s", msg);
            return;
        }
        /* One timestamp per read: every packet in it arrived together. */
        uint64_t rx_ns = cx_bench_now_ns();
        t->c.bytes_in += (uint64_t)n;
        total += (size_t)n;
        if (into_conn) {
            c->in.len += (size_t)n;
            long used = parse(c, cx_buf_head(&c->in), cx_buf_used(&c->in), rx_ns);
            if (used < 0)
                return;
            cx_buf_consume(&c->in, (size_t)used, 1);
        } else {
            long used = parse(c, t->scratch, (size_t)n, rx_ns);
            if (used < 0)
                return;
            if ((size_t)used < (size_t)n) {
                int rc = cx_buf_append(&c->in, t->scratch + used, (size_t)n - (size_t)used);
                if (rc != CX_OK) {
                    cx_bench_conn_fail(c, CX_BENCH_ERR_PROTOCOL, "input buffer: %s",
                                       cx_strerror(rc));
                    return;
                }
            }
        }
        /* A short plain read means the socket was empty at that instant: the read that
         * would return EAGAIN is skipped (epoll is level-triggered, nothing is lost). TLS
         * must read on until OpenSSL says it wants more, as records may be buffered. */
        if (!c->ssl && (size_t)n < t->scratch_len)
            break;
    }
}

void cx_bench_conn_on_event(cx_bench_conn_t *c, uint32_t events, uint64_t now)
{
    switch (c->state) {
    case CX_BENCH_ST_DEAD:
    case CX_BENCH_ST_IDLE:
        return;
    case CX_BENCH_ST_TCP:
        tcp_connected(c, now);
        return;
    case CX_BENCH_ST_TLS:
        tls_step(c, now);
        return;
    default:
        break;
    }
    if (c->ssl && c->blocked && (events & EPOLLIN)) {
        c->blocked = false; /* a TLS write that waited for input may go on */
        cx_bench_thread_mark_dirty(c->thread, c);
    }
    if (events & EPOLLOUT) {
        c->blocked = false;
        if (cx_buf_used(&c->out))
            cx_bench_thread_mark_dirty(c->thread, c);
        else
            set_events(c, false);
    }
    if (events & (EPOLLIN | EPOLLERR | EPOLLHUP) || (c->tls_want_write && events & EPOLLOUT))
        do_read(c);
}

/* ---- output --------------------------------------------------------------------------- */

void cx_bench_conn_flush(cx_bench_conn_t *c, uint64_t now)
{
    c->dirty = false;
    if (c->state == CX_BENCH_ST_DEAD || c->state == CX_BENCH_ST_TCP || c->state == CX_BENCH_ST_TLS)
        return;
    size_t n = cx_buf_used(&c->out);
    if (n == 0 || c->blocked)
        return;
    long w;
    const char *msg = "?";
    bool want_write = true;
    if (c->ssl) {
        w = cx_bench_tls_write(c->ssl, cx_buf_head(&c->out), n, &want_write, &msg);
    } else {
        ssize_t r;
        do
            r = send(c->fd, cx_buf_head(&c->out), n, MSG_NOSIGNAL);
        while (r < 0 && errno == EINTR);
        if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            r = 0;
        else if (r < 0)
            msg = strerror(errno);
        w = r;
    }
    if (w < 0) {
        cx_bench_conn_fail(c, c->ssl ? CX_BENCH_ERR_TLS : CX_BENCH_ERR_CLOSED, "write: %s", msg);
        return;
    }
    if (w > 0) {
        c->last_tx_ns = now;
        c->thread->c.bytes_out += (uint64_t)w;
        /* Idle connections give their buffer back; busy ones keep it for the next turn. */
        cx_buf_consume(&c->out, (size_t)w, c->role == CX_BENCH_IDLE);
    }
    if (cx_buf_used(&c->out)) {
        c->blocked = true;
        set_events(c, want_write);
    }
}

void cx_bench_conn_free(cx_bench_conn_t *c)
{
    cx_bench_conn_close(c);
    cx_buf_free(&c->in);
    cx_buf_free(&c->out);
    if (c->pub) {
        cx_free_null(c->pub->pid_used);
        cx_free_null(c->pub->pid_rel);
        cx_buf_free(&c->pub->tmpl);
    }
    if (c->sub) {
        cx_free_null(c->sub->topic);
        cx_free_null(c->sub->seq);
    }
    cx_free_null(c->client_id);
}

/* ---- set-up (main thread, before the threads start) ----------------------------------- */

int cx_bench_conn_init(cx_bench_conn_t *c, cx_bench_role role, uint32_t index, cx_bench_thread_t *t,
                       const char *client_id)
{
    memset(c, 0, sizeof *c);
    c->fd = -1;
    c->role = role;
    c->index = index;
    c->thread = t;
    c->state = CX_BENCH_ST_IDLE;
    c->keepalive = t->run->cfg->keepalive;
    c->server_recv_max = 65535;
    cx_buf_init(&c->in, CX_MQTT_MAX_REMAINING + 5);
    cx_buf_init(&c->out, OUT_MAX);
    c->client_id = cx_strdup(client_id);
    return c->client_id ? CX_OK : CX_ENOMEM;
}
