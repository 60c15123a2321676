/* broker.h: the broker's shared state, its workers, sessions and clients.
 *
 * Ownership (ARCHITECTURE.md, "Threads and ownership"):
 * - A worker owns its loop, its connections (cx_client_t) and its sessions. Only that
 *   worker's thread reads or writes them. Session ownership never moves: a connection
 *   whose CONNECT names a session of another worker is handed over to that worker.
 * - The subscription trie, the retained store and the client-id registry are shared and
 *   locked inside their own interfaces.
 * - Workers talk only through cx_loop_post(): deliveries, handed-over connections,
 *   takeover/kick requests, reloads.
 * - A message is matched once, on the worker that received it; deliveries are then
 *   posted per target worker. */
#ifndef CX_BROKER_H
#define CX_BROKER_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "broker/msg.h"
#include "broker/retain.h"
#include "broker/subtree.h"
#include "config/config.h"
#include "loop/loop.h"
#include "mqtt/codec.h"
#include "net/conn.h"
#include "net/listener.h"
#include "plugin/host.h"
#include "util/arena.h"
#include "util/err.h"
#include "util/list.h"

typedef struct cx_broker cx_broker_t;
typedef struct cx_worker cx_worker_t;
typedef struct cx_session cx_session_t;
typedef struct cx_client cx_client_t;
typedef struct cx_registry cx_registry_t;

/* Limits a worker applies: a copy per worker of the reloadable limits, refreshed from the
 * live config while the workers are parked for a reload (cx_broker_reload). */
typedef struct cx_limits {
    int max_inflight_messages;  /* 0 = unlimited */
    size_t max_inflight_bytes;
    int max_queued_messages;    /* 0 = unlimited */
    size_t max_queued_bytes;
    int max_keepalive;
    size_t max_packet_size;     /* 0 = unlimited */
    size_t message_size_limit;  /* payloads above it are dropped (acknowledged); 0 = none */
    bool queue_qos0_messages;
    bool retain_available;
    bool upgrade_outgoing_qos;
    bool connection_messages;
    int64_t persistent_client_expiration; /* seconds, 0 = never */
    int sys_interval;
    size_t memory_limit;        /* 0 = none; enforced by util/alloc, read for backlogs */
} cx_limits_t;

/* Per-worker counters; each written only by its worker, read by the $SYS publisher with
 * relaxed atomics (the figures only need to be roughly current). */
typedef struct cx_counters {
    atomic_uint_fast64_t msgs_received, msgs_sent, msgs_dropped;
    atomic_uint_fast64_t pub_received, pub_sent, pub_bytes_received, pub_bytes_sent;
    atomic_uint_fast64_t bytes_received, bytes_sent;
    atomic_uint_fast64_t connections; /* connections accepted */
    atomic_int clients_connected;
    atomic_int sessions_total;        /* sessions owned, connected or not */
    atomic_uint_fast64_t sessions_expired;
} cx_counters_t;

/* One target of a routed message, collected while the trie is read-locked. */
typedef struct cx_target {
    cx_session_t *session; /* referenced */
    uint8_t qos;
    bool retain;           /* retain flag to send */
    uint16_t nsub;         /* subscription identifiers */
    uint32_t share_hash;   /* 0 = not through a shared subscription */
    uint32_t sub_id;       /* the identifier when nsub == 1 */
    uint32_t *sub_ids;     /* allocated when nsub > 1 */
    uint64_t store_gen;    /* recorded by routing for this session generation (persist.c) */
    uint64_t store_order;  /* its place in the session's queue, when recorded */
    uint32_t epoch;        /* the session's epoch when routing matched it (cx_session_t) */
    bool fc;               /* counted in the session's flow-control backlog (flow.h) */
} cx_target_t;

static inline const uint32_t *cx_target_ids(const cx_target_t *t)
{
    return t->nsub > 1 ? t->sub_ids : t->nsub ? &t->sub_id : NULL;
}

/* Per-worker slot in each session, used while routing one message to merge overlapping
 * subscriptions of the same session into one delivery. Each worker writes only its own
 * slot, so no lock is needed. */
typedef struct cx_route_mark {
    uint64_t seq;
    uint32_t target;
} cx_route_mark_t;

struct cx_worker {
    size_t index;
    cx_broker_t *broker;
    cx_loop_t *loop;
    cx_netctx_t net;
    pthread_t thread;
    cx_timer_t tick;
    cx_list_t sessions;        /* every session this worker owns */
    cx_list_t clients;         /* every connected (post-CONNECT) client */
    cx_arena_t arena;          /* decode scratch, reset after every packet */
    cx_limits_t limits;
    cx_counters_t ctr;
    const uint8_t *cur_pkt;    /* the packet being handled, and its length (client.c) */
    size_t cur_len;
    cx_target_t *targets;      /* routing scratch */
    size_t ntargets, targets_cap;
    uint64_t route_seq;
    uint64_t tick_count;
    uint64_t seconds;          /* whole seconds of ticks, for once-a-second work */
    struct cx_handover *handovers; /* connections leaving at the end of this turn */
    size_t nhandovers, handovers_cap;
    struct cx_post_deliver **outbox; /* per target worker: deliveries routed this turn */
    /* persistence (persist.c) */
    uint64_t persist_seq;      /* last store sequence number this worker appended */
    struct cx_held_ack *held;  /* `always`: acknowledgements waiting for durability, FIFO */
    size_t held_head, held_len, held_cap;
    atomic_uint_fast64_t held_wait; /* sequence number the oldest held ack waits for, 0 = none */
    atomic_bool durable_posted;     /* a CX_POST_DURABLE is on its way to this worker */
    /* flow control (flow.c) */
    cx_session_t *fc_block;    /* a congested session the last routing met (referenced) */
    cx_list_t fc_paused;       /* publishers held back, on cx_client_t.fc_link */
    cx_timer_t fc_timer;       /* rechecks them while there are any */
    atomic_bool fc_wake_posted; /* a CX_POST_FLOW is on its way to this worker */
};

struct cx_broker {
    cx_config_t *cfg;
    cx_worker_t *workers;
    size_t nworkers;
    cx_listener_t *listeners;
    size_t nlisteners;
    cx_subtree_t *subs;
    cx_retain_t *retained;
    cx_registry_t *registry;
    atomic_size_t next_worker;  /* round-robin placement of new connections */
    int64_t start_wall;         /* for $SYS uptime */
    atomic_int clients_maximum;
    atomic_bool shutting_down;
    char version[64];
    struct cx_sys *sys;         /* $SYS state, used by worker 0 only */
    cx_phost_t *plugins;        /* loaded plugins and their chains (NULL: none) */
    struct cx_persist *persist; /* NULL: nothing is persisted */
};

/* The MQTT session: outlives connections. Owned by exactly one worker.
 *
 * One allocation per session (cx_session_new): the struct, then the per-worker route marks
 * (`marks`), then the client id, so an idle session costs one malloc chunk. Fields are
 * ordered to leave 2 bytes of padding; counts are 32-bit (a session never holds 4 G of
 * anything: packet ids are 16-bit, and 4 G queued messages would not fit in memory). */
struct cx_session {
    atomic_uint refs;        /* one for being alive, one per delivery in transit */
    /* Bumped by a clean start after its subscriptions left the tree. Routing reads it while
     * the tree's read lock is held, so a delivery matched against the old subscriptions
     * carries the old epoch and is dropped on arrival, however long it was in transit
     * between workers [MQTT-3.1.2-4]. */
    atomic_uint epoch;
    atomic_bool online;      /* read by other workers when picking a shared-group member */
    bool dead;               /* ended: deliveries to it are dropped */
    uint8_t version;         /* protocol level of the last connection */
    atomic_bool fc_stalled;  /* flow control, below */
    uint16_t next_packet_id;
    uint32_t client_id_len;
    uint32_t reg_hash;       /* the registry's hash of the client id, and its chain: */
    struct cx_session *reg_next; /* registry.c */
    cx_worker_t *worker;     /* the owner, fixed for life */
    char *client_id;         /* NUL-terminated, stored after marks[] */
    cx_client_t *client;     /* attached connection, NULL while offline */
    cx_list_t worker_link;
    /* persistence generation (persist.h); 0 = not persisted. Written by the owner, read by
     * routing workers. */
    atomic_uint_fast64_t store_gen;
    /* Flow control (flow.c): QoS 1/2 deliveries routed to it and not yet arrived, its queue
     * length as the owner last published it, the workers holding publishers back for it (a
     * bit each), when its queue last shrank or began (monotonic ms), and whether it stopped
     * reading for so long that it no longer holds publishers back (fc_stalled, above). */
    atomic_int fc_transit;
    atomic_int fc_queued;
    atomic_uint_fast64_t fc_waiters;
    atomic_int_fast64_t fc_progress_ms;
    /* QoS 0 to it from other workers (router.c): bytes on their way, and until when
     * (monotonic ms) its output is known to be full, so that they drop rather than post. */
    atomic_size_t qos0_transit;
    atomic_int_fast64_t qos0_full_until;
    uint32_t expiry_interval;  /* seconds; UINT32_MAX = never */
    uint32_t will_delay;
    int64_t disconnected_at_ms; /* monotonic, while offline */

    /* subscriptions, kept here too so that they can be removed when the session ends */
    struct cx_sess_sub *subs;
    uint32_t nsubs, subs_cap;

    /* outgoing QoS 1/2 messages sent and not yet acknowledged, in send order */
    cx_list_t inflight;
    uint32_t inflight_count;
    /* messages waiting for the inflight window or for the client to come back */
    uint32_t queue_count;
    size_t inflight_bytes;
    cx_list_t queue;
    size_t queue_bytes;

    /* incoming QoS 2 packet identifiers received and not yet released (PUBREL) */
    uint16_t *qos2_in;
    uint32_t qos2_in_count, qos2_in_cap;

    /* the will, from the last CONNECT; published when the session's connection ends
     * abnormally, after will_delay (capped by the session's expiry) */
    cx_msg_t *will;
    int64_t will_due_ms;     /* 0 = not scheduled */

    cx_route_mark_t marks[]; /* one per worker, then the client id */
};

/* Broker-wide functions (broker.c). */
cx_broker_t *cx_broker_new(cx_config_t *cfg, char *err, size_t errlen);
/* Opens the listening sockets (before privileges are dropped: ports below 1024). */
int cx_broker_open(cx_broker_t *b, char *err, size_t errlen);
/* Loads plugins and starts the worker threads (after the privilege drop). */
int cx_broker_start(cx_broker_t *b, char *err, size_t errlen);
/* Stops every worker and waits for them (clean shutdown). */
void cx_broker_stop(cx_broker_t *b);
void cx_broker_free(cx_broker_t *b);
/* Applies the reloadable part of a freshly loaded config (SIGHUP) to the live one while
 * every worker is parked, then lets them re-read their limits. Takes no ownership of
 * fresh. Returns CX_OK or CX_ENOMEM (the live config is then unchanged or partly updated
 * but consistent). Main thread only. */
int cx_broker_reload(cx_broker_t *b, const cx_config_t *fresh);
/* Runs fn on the calling (main) thread while every worker is parked, and returns its
 * result (CX_ENOMEM without running it if a worker could not be told). */
int cx_broker_parked(cx_broker_t *b, int (*fn)(cx_broker_t *b, void *ud), void *ud);
/* Logs the subscription tree (SIGUSR2). */
void cx_broker_dump_subscriptions(cx_broker_t *b);
void cx_limits_from_config(cx_limits_t *l, const cx_config_t *cfg);

#endif
