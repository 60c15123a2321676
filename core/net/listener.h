/* listener.h: listening sockets.
 *
 * One socket per bound address, shared by every worker's loop with EPOLLEXCLUSIVE so that
 * a new connection wakes one worker. The worker that accepts hands the connection to the
 * next worker in round-robin order (cx_listener_ops.on_accept decides), which spreads
 * connections evenly whatever the kernel's wake-up order.
 *
 * Out of descriptors (EMFILE/ENFILE) or kernel memory, a worker stops watching the socket
 * for 100 ms or until it closes a connection, and the episode is logged once: connections
 * wait in the listen queue meanwhile, and no worker spins on a socket it cannot accept. */
#ifndef CX_NET_LISTENER_H
#define CX_NET_LISTENER_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "loop/loop.h"
#include "transport.h"

struct sockaddr_storage;

typedef struct cx_listener cx_listener_t;
typedef struct cx_netctx cx_netctx_t;

/* Called on the accepting worker with a new non-blocking socket. */
typedef void (*cx_accept_cb)(cx_netctx_t *net, cx_listener_t *l, int fd, const char *peer);

typedef struct cx_listen_sock {
    int fd;
    cx_io_t *ios;       /* one watcher per worker loop */
    /* Monotonic ms at which accept() first failed for want of descriptors or memory, 0
     * while accepting normally: one log line per episode, whichever worker hits it. */
    _Atomic uint64_t starved_since;
} cx_listen_sock_t;

struct cx_listener {
    const void *conf;   /* the cx_listener_conf_t it was made from (net does not read it) */
    char desc[128];     /* "127.0.0.1:1883" for logs */
    cx_listen_sock_t *socks;
    size_t nsocks;
    atomic_int connections;  /* open connections, for max_connections */
    int max_connections;     /* -1 = unlimited */
    cx_accept_cb on_accept;
    cx_transport_t tp;       /* PROXY / TLS / WebSocket layers; set up by the owner after
                              * cx_listener_open, before the workers start */
};

/* Binds every address of host:port (host NULL = all; family AF_UNSPEC/AF_INET/AF_INET6),
 * or the unix socket at unix_path. Returns CX_OK or -errno with err describing the failure.
 * `interface` (may be NULL) binds to a network device (SO_BINDTODEVICE). */
int cx_listener_open(cx_listener_t *l, const char *host, int port, const char *unix_path,
                     int family, const char *interface, char *err, size_t errlen);
/* Starts accepting on a worker's loop. */
int cx_listener_watch(cx_listener_t *l, cx_netctx_t *net, size_t worker_index,
                      size_t nworkers);
void cx_listener_unwatch(cx_listener_t *l, cx_netctx_t *net, size_t worker_index);
/* A descriptor of this worker was closed: the worker's watchers of listening sockets that
 * ran out of descriptors look at their listen queue again now rather than at the end of
 * their back-off. Cheap when no listener is starved (conn.c calls it on every close). */
void cx_listener_fd_freed(cx_netctx_t *net);
void cx_listener_close(cx_listener_t *l);

/* "1.2.3.4:5", "[::1]:5" or "unix", for logs. */
void cx_net_format_addr(const struct sockaddr_storage *ss, char *out, size_t len);

#endif
