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

/* The watcher of one listening socket on one worker's loop. */
typedef struct accept_io {
    cx_io_t io;
    cx_listener_t *l;
    cx_netctx_t *net;
} accept_io_t;

static int add_socket(cx_listener_t *l, int fd)
{
    cx_listen_sock_t *s = cx_realloc(l->socks, (l->nsocks + 1) * sizeof *s);
    if (!s)
        return CX_ENOMEM;
    l->socks = s;
    s[l->nsocks].fd = fd;
    s[l->nsocks].ios = NULL;
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
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            if (errno == EMFILE || errno == ENFILE)
                cx_log(CX_LOG_ERR, "accept on %s: %s", l->desc, strerror(errno));
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
        aio->net = net;
        cx_loop_io_init(&aio->io, s->fd, accept_cb);
        aio->io.exclusive = true;
        int rc = cx_loop_io_set(net->loop, &aio->io, CX_IO_READ);
        if (rc)
            return rc;
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
