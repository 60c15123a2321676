/* worker.h: worker threads, their inbox messages and their periodic tick. */
#ifndef CX_BROKER_WORKER_H
#define CX_BROKER_WORKER_H

#include "broker/broker.h"

enum {
    CX_POST_CONN = 1,   /* a connection handed to this worker */
    CX_POST_DELIVER,    /* a batch of deliveries to sessions this worker owns */
    CX_POST_PAUSE,      /* hold still while the main thread changes the configuration */
    CX_POST_STOP,
    CX_POST_VERDICT,    /* a plugin verdict for a waiting client (authz.c) */
    CX_POST_KICK,       /* a plugin asks to disconnect a client of this worker */
    CX_POST_PUBLISH,    /* a plugin publishes a message (routed by worker 0) */
    CX_POST_DURABLE,    /* the store made more records durable (persist.c) */
    CX_POST_FLOW,       /* a session drained: release held-back publishers (flow.c) */
};

typedef struct cx_post_kick {
    cx_post_t base;
    char client_id[];
} cx_post_kick_t;

typedef struct cx_post_publish {
    cx_post_t base;
    cx_msg_t *msg;
} cx_post_publish_t;

typedef struct cx_post_conn {
    cx_post_t base;
    cx_conn_t *conn;
    bool adopt;         /* handed over after CONNECT was read: re-run CONNECT here */
} cx_post_conn_t;

/* One delivery handed to another worker: the target and a reference on its message. */
typedef struct cx_delivery {
    cx_msg_t *msg;
    cx_target_t t;
} cx_delivery_t;

/* Every delivery one worker routed to another during one loop turn, posted once before the
 * routing worker sleeps: one wake-up per turn and target worker, not one per message. */
typedef struct cx_post_deliver {
    cx_post_t base;
    size_t count, cap;
    cx_delivery_t items[];
} cx_post_deliver_t;

/* A rendezvous: every worker parks in it while the main thread rewrites the live
 * configuration (SIGHUP), so no worker ever reads a setting that is being replaced. */
typedef struct cx_pause {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    size_t arrived;
    size_t left;
    bool go;
} cx_pause_t;

typedef struct cx_post_pause {
    cx_post_t base;
    cx_pause_t *pause;
} cx_post_pause_t;

/* Posts the deliveries this turn routed to other workers (before sleeping). */
void cx_worker_flush_outbox(cx_worker_t *w);

int cx_worker_init(cx_worker_t *w, cx_broker_t *b, size_t index);
int cx_worker_start(cx_worker_t *w);
void cx_worker_join(cx_worker_t *w);
void cx_worker_destroy(cx_worker_t *w);
/* The accept callback of every listener (net -> broker). */
void cx_worker_on_accept(cx_netctx_t *net, cx_listener_t *l, int fd, const char *peer);
/* Hands a connection to another worker (its CONNECT will be read again there). Reading
 * stops now; the move happens at the end of the loop turn, when no callback of this
 * worker can touch the connection any more. */
void cx_worker_handover(cx_worker_t *from, cx_worker_t *to, cx_conn_t *c);

#endif
