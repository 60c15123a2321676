/* listener.c: bind, listen, accept. */
#include "listener.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "conn.h"
#include "util/alloc.h"
#include "util/err.h"
#include "util/log.h"

/* While accept() fails for want of descriptors (EMFILE, ENFILE) or kernel memory (ENOBUFS,
 * ENOMEM), the connection stays in the listen queue and the socket stays readable: a
 * level-triggered watcher would wake its worker again at once, for ever. So the worker stops
 * watching that socket and looks again after this back-off, or as soon as it closes a
 * descriptor of its own (cx_listener_fd_freed), whichever comes first. No descriptor is kept
 * in reserve (the accept-and-close trick): the clients wait in the queue, as they would for
 * a slow server, and are served as soon as a descriptor is free. */
#define ACCEPT_BACKOFF_MS 100

/* The watcher of one listening socket on one worker's loop. */
typedef struct accept_io {
    cx_io_t io;
    cx_listener_t *l;
    cx_listen_sock_t *sock;
    cx_netctx_t *net;
    cx_timer_t backoff;    /* armed while the socket is not watched (paused) */
    cx_list_t net_link;    /* on net->accepts while watched */
    bool paused;
} accept_io_t;

static int add_socket(cx_listener_t *l, int fd)
{
    cx_listen_sock_t *s = cx_realloc(l->socks, (l->nsocks + 1) * sizeof *s);
    if (!s)
        return CX_ENOMEM;
    l->socks = s;
    s[l->nsocks].fd = fd;
    s[l->nsocks].ios = NULL;
    atomic_init(&s[l->nsocks].starved_since, 0);
    l->nsocks++;
    return CX_OK;
}

static int open_unix(cx_listener_t *l, const char *path, char *err, size_t errlen)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    if (strlen(path) >= sizeof sa.sun_path) {
        snprintf(err, errlen, "unix socket path too long: %s", path);
        return -ENAMETOOLONG;
    }
    memcpy(sa.sun_path, path, strlen(path) + 1);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        goto fail;
    unlink(path); /* a stale socket file from an earlier run would make bind fail */
    if (bind(fd, (struct sockaddr *)&sa, sizeof sa) < 0 || listen(fd, 1024) < 0)
        goto fail;
    snprintf(l->desc, sizeof l->desc, "%s", path);
    return add_socket(l, fd);
fail:;
    int e = errno;
    snprintf(err, errlen, "unix socket %s: %s", path, strerror(e));
    if (fd >= 0)
        close(fd);
    return -e;
}

int cx_listener_open(cx_listener_t *l, const char *host, int port, const char *unix_path,
                     int family, const char *interface, char *err, size_t errlen)
{
    atomic_init(&l->connections, 0);
    cx_transport_init(&l->tp);
    if (unix_path)
        return open_unix(l, unix_path, err, errlen);

    char portstr[16];
    snprintf(portstr, sizeof portstr, "%d", port);
    struct addrinfo hints = {.ai_family = family, .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_PASSIVE | AI_ADDRCONFIG};
    struct addrinfo *res = NULL;
    int gai = getaddrinfo(host, portstr, &hints, &res);
    if (gai == EAI_NONAME || gai == EAI_ADDRFAMILY || gai == EAI_NODATA) {
        /* AI_ADDRCONFIG hides ::1 on hosts whose only IPv6 is loopback; retry without. */
        hints.ai_flags = AI_PASSIVE;
        gai = getaddrinfo(host, portstr, &hints, &res);
    }
    if (gai != 0) {
        snprintf(err, errlen, "cannot resolve %s: %s", host ? host : "*", gai_strerror(gai));
        return CX_EINVAL;
    }
    snprintf(l->desc, sizeof l->desc, "%s:%d", host ? host : "*", port);
    int rc = CX_OK;
    for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
        int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0) {
            rc = -errno;
            continue;
        }
        int one = 1;
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        if (ai->ai_family == AF_INET6)
            setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
        if (interface &&
            setsockopt(fd, SOL_SOCKET, SO_BINDTODEVICE, interface, (socklen_t)strlen(interface)) < 0) {
            rc = -errno;
            snprintf(err, errlen, "bind_interface %s: %s", interface, strerror(errno));
            close(fd);
            break;
        }
        if (bind(fd, ai->ai_addr, ai->ai_addrlen) < 0 || listen(fd, 1024) < 0) {
            rc = -errno;
            char a[INET6_ADDRSTRLEN] = "?";
            void *src = ai->ai_family == AF_INET
                            ? (void *)&((struct sockaddr_in *)ai->ai_addr)->sin_addr
                            : (void *)&((struct sockaddr_in6 *)ai->ai_addr)->sin6_addr;
            inet_ntop(ai->ai_family, src, a, sizeof a);
            snprintf(err, errlen, "cannot listen on %s port %d: %s", a, port, strerror(errno));
            close(fd);
            /* Mosquitto fails only if no address at all could be bound; but a port that is
             * in use is always fatal, as the user asked for that listener. */
            if (rc == -EADDRINUSE || rc == -EACCES)
                break;
            continue;
        }
        rc = add_socket(l, fd);
        if (rc) {
            close(fd);
            break;
        }
    }
    freeaddrinfo(res);
    if (rc == -EADDRINUSE || rc == -EACCES || rc == CX_ENOMEM || l->nsocks == 0) {
        if (rc == CX_OK)
            rc = CX_EIO;
        cx_listener_close(l);
        return rc;
    }
    return CX_OK;
}

void cx_net_format_addr(const struct sockaddr_storage *ss, char *out, size_t len)
{
    char a[INET6_ADDRSTRLEN] = "?";
    if (ss->ss_family == AF_INET) {
        const struct sockaddr_in *s = (const struct sockaddr_in *)ss;
        inet_ntop(AF_INET, &s->sin_addr, a, sizeof a);
        snprintf(out, len, "%s:%u", a, ntohs(s->sin_port));
    } else if (ss->ss_family == AF_INET6) {
        const struct sockaddr_in6 *s = (const struct sockaddr_in6 *)ss;
        inet_ntop(AF_INET6, &s->sin6_addr, a, sizeof a);
        snprintf(out, len, "[%s]:%u", a, ntohs(s->sin6_port));
    } else {
        snprintf(out, len, "unix");
    }
}

/* Connections waiting in the listen queue of a TCP socket, or -1 if unknown (unix). For a
 * listening socket Linux reports the accept queue length in tcpi_unacked. */
static long listen_queue_length(int fd)
{
    struct tcp_info ti;
    socklen_t len = sizeof ti;
    if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &len) < 0 || len < sizeof ti)
        return -1;
    return (long)ti.tcpi_unacked;
}

static void starve_begin(cx_loop_t *loop, accept_io_t *aio, int err)
{
    uint64_t now = cx_loop_now(loop), zero = 0;
    if (!atomic_compare_exchange_strong(&aio->sock->starved_since, &zero, now ? now : 1))
        return; /* another worker (or an earlier attempt) logged this episode */
    /* Often 0: the attempt after the last descriptor was taken fails even with nobody
     * waiting. Still worth saying: whoever comes now waits. */
    long queued = listen_queue_length(aio->io.fd);
    const char *what = err == EMFILE || err == ENFILE ? "out of file descriptors"
                                                      : "out of kernel memory";
    char n[48] = "";
    if (queued >= 0)
        snprintf(n, sizeof n, " (%ld now)", queued);
    cx_log(CX_LOG_ERR, "accept on %s: %s (%s); new connections wait in the listen queue%s. "
           "Retrying every %d ms and whenever a connection closes.", aio->l->desc, what,
           cx_errname(-err), n, ACCEPT_BACKOFF_MS);
}

/* The listen queue is empty (EAGAIN): whatever waited has been accepted. */
static void starve_end(cx_loop_t *loop, accept_io_t *aio)
{
    uint64_t since = atomic_load_explicit(&aio->sock->starved_since, memory_order_relaxed);
    if (since == 0 || !atomic_compare_exchange_strong(&aio->sock->starved_since, &since, 0))
        return;
    uint64_t now = cx_loop_now(loop);
    cx_log(CX_LOG_NOTICE, "accept on %s: accepting connections again after %.1f s.",
           aio->l->desc, now > since ? (double)(now - since) / 1000 : 0.0);
}

static void pause_accept(cx_loop_t *loop, accept_io_t *aio)
{
    /* Without a timer the socket would only be looked at again when this worker closes a
     * connection, which may be never: then keep watching (and spinning) rather than stall. */
    if (cx_timer_start(loop, &aio->backoff, ACCEPT_BACKOFF_MS) != CX_OK)
        return;
    if (cx_loop_io_set(loop, &aio->io, 0) != CX_OK) {
        cx_timer_stop(loop, &aio->backoff);
        return;
    }
    aio->paused = true;
}

static void accept_cb(cx_loop_t *loop, cx_io_t *io, unsigned events);

/* The back-off is over, or a descriptor was freed: watch the socket again and try at once.
 * Trying, not only watching, matters: epoll reports a queue that is not empty, but the
 * episode ends on the EAGAIN of an empty one, and a watcher that EPOLLEXCLUSIVE did not
 * wake would not hear of the waiting connections at all. */
static void backoff_cb(cx_loop_t *loop, cx_timer_t *t)
{
    accept_io_t *aio = cx_container_of(t, accept_io_t, backoff);
    if (aio->paused) {
        if (cx_loop_io_set(loop, &aio->io, CX_IO_READ) != CX_OK) {
            (void)cx_timer_start(loop, &aio->backoff, ACCEPT_BACKOFF_MS);
            return;
        }
        aio->paused = false;
    }
    accept_cb(loop, &aio->io, CX_IO_READ);
}

void cx_listener_fd_freed(cx_netctx_t *net)
{
    cx_list_t *it;
    cx_list_foreach(it, &net->accepts)
    {
        accept_io_t *aio = cx_container_of(it, accept_io_t, net_link);
        /* On the next turn, not from inside the close path. Restarting an armed timer
         * cannot fail (it leaves the heap first); if an unarmed one fails, the socket is
         * still watched. */
        if (atomic_load_explicit(&aio->sock->starved_since, memory_order_relaxed))
            (void)cx_timer_start(net->loop, &aio->backoff, 0);
    }
}

static void accept_cb(cx_loop_t *loop, cx_io_t *io, unsigned events)
{
    accept_io_t *aio = (accept_io_t *)io;
    cx_listener_t *l = aio->l;
    /* Bounded so that a connection storm cannot starve the rest of the loop. */
    for (int i = 0; i < 64; i++) {
        struct sockaddr_storage ss;
        socklen_t sl = sizeof ss;
        int fd = accept4(io->fd, (struct sockaddr *)&ss, &sl, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            int e = errno;
            if (e == EINTR || e == ECONNABORTED)
                continue;
            if (e == EMFILE || e == ENFILE || e == ENOBUFS || e == ENOMEM) {
                starve_begin(loop, aio, e);
                pause_accept(loop, aio);
            } else if (e == EAGAIN || e == EWOULDBLOCK) {
                starve_end(loop, aio);
            }
            return;
        }
        char peer[64];
        cx_net_format_addr(&ss, peer, sizeof peer);
        if (l->max_connections >= 0 && atomic_load(&l->connections) >= l->max_connections) {
            cx_log(CX_LOG_NOTICE, "Client connection from %s denied: max_connections exceeded.",
                   peer);
            close(fd);
            continue;
        }
        if (ss.ss_family != AF_UNIX) {
            int one = 1;
            setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        }
        atomic_fetch_add(&l->connections, 1);
        l->on_accept(aio->net, l, fd, peer);
    }
}

int cx_listener_watch(cx_listener_t *l, cx_netctx_t *net, size_t wi, size_t nworkers)
{
    for (size_t i = 0; i < l->nsocks; i++) {
        cx_listen_sock_t *s = &l->socks[i];
        if (!s->ios) {
            s->ios = cx_calloc(nworkers, sizeof(accept_io_t));
            if (!s->ios)
                return CX_ENOMEM;
        }
        accept_io_t *aio = &((accept_io_t *)s->ios)[wi];
        aio->l = l;
        aio->sock = s;
        aio->net = net;
        aio->paused = false;
        cx_loop_io_init(&aio->io, s->fd, accept_cb);
        aio->io.exclusive = true;
        cx_timer_init(&aio->backoff, backoff_cb);
        cx_list_init(&aio->net_link);
        int rc = cx_loop_io_set(net->loop, &aio->io, CX_IO_READ);
        if (rc)
            return rc;
        cx_list_insert_tail(&net->accepts, &aio->net_link);
    }
    return CX_OK;
}

void cx_listener_unwatch(cx_listener_t *l, cx_netctx_t *net, size_t wi)
{
    for (size_t i = 0; i < l->nsocks; i++) {
        if (!l->socks[i].ios)
            continue;
        accept_io_t *aio = &((accept_io_t *)l->socks[i].ios)[wi];
        if (aio->io.events)
            cx_loop_io_set(net->loop, &aio->io, 0);
        if (aio->io.cb) { /* watched once: its timer and link were initialised */
            cx_timer_stop(net->loop, &aio->backoff);
            cx_list_remove(&aio->net_link);
        }
    }
}

void cx_listener_close(cx_listener_t *l)
{
    for (size_t i = 0; i < l->nsocks; i++) {
        close(l->socks[i].fd);
        cx_free(l->socks[i].ios);
    }
    cx_free(l->socks);
    l->socks = NULL;
    l->nsocks = 0;
    cx_transport_destroy(&l->tp);
}
