/* session.h: MQTT sessions: subscriptions, outgoing queue and inflight window, incoming
 * QoS 2 state, the will, expiry. All functions run on the session's owner worker, except
 * cx_session_ref/unref. */
#ifndef CX_BROKER_SESSION_H
#define CX_BROKER_SESSION_H

#include "broker/broker.h"

/* A subscription as the session remembers it. */
typedef struct cx_sess_sub {
    char *filter;       /* as stored in the trie (mount point included), NUL-terminated */
    char *group;        /* $share group, or NULL */
    cx_sub_opts_t opts;
} cx_sess_sub_t;

/* An outgoing message for this session: queued, or sent and awaiting its acknowledgement. */
typedef struct cx_qentry {
    cx_list_t link;
    cx_msg_t *msg;        /* referenced */
    uint8_t qos;          /* granted QoS for this delivery */
    bool retain;          /* retain flag to send */
    uint32_t share_hash;  /* hash of the $share group it came through, 0 = not shared */
    uint8_t state;        /* CX_QE_* */
    uint16_t packet_id;
    uint16_t nsub_ids;
    uint64_t store_gen;   /* the session generation it is recorded under, 0 = not recorded */
    uint64_t store_order; /* its place in the queue as recorded */
    uint32_t sub_ids[];
} cx_qentry_t;

enum {
    CX_QE_QUEUED = 0,
    CX_QE_WAIT_ACK = 1,   /* PUBLISH sent; waiting for PUBACK (QoS 1) or PUBREC (QoS 2) */
    CX_QE_WAIT_COMP = 2,  /* PUBREL sent; waiting for PUBCOMP */
};

#define CX_EXPIRY_NEVER UINT32_MAX

/* New session with one reference, on worker w's list. NULL when out of memory. */
cx_session_t *cx_session_new(cx_worker_t *w, cx_str_t client_id);
static inline cx_session_t *cx_session_ref(cx_session_t *s)
{
    atomic_fetch_add_explicit(&s->refs, 1, memory_order_relaxed);
    return s;
}
void cx_session_unref(cx_session_t *s);

/* Queues or sends msg to t->session as routing decided in t (QoS, retain, share, its
 * subscription identifiers, the queue entry routing already recorded: store_gen/store_order,
 * persist.h). Takes its own reference on msg; t stays the caller's. Dropped when the session
 * was cleaned since routing matched it (t->epoch). */
void cx_session_deliver(cx_msg_t *msg, const cx_target_t *t);
/* Start-up restore: appends a recorded entry (queue, or inflight with its packet id). */
int cx_session_restore_entry(cx_session_t *s, cx_msg_t *msg, uint8_t qos, bool retain,
                             uint32_t share_hash, uint8_t state, uint16_t pid,
                             const uint32_t *sub_ids, size_t nsub, uint64_t store_gen,
                             uint64_t store_order);
/* Moves queued messages into the inflight window and sends them, while the client is
 * connected and the window is open. */
void cx_session_pump(cx_session_t *s);
/* After a reconnect: resends unacknowledged PUBLISH with DUP and pending PUBREL. */
void cx_session_resend(cx_session_t *s);
/* Handles PUBACK, PUBREC or PUBCOMP from the client. Returns false if the packet
 * identifier is unknown. For PUBREC, sends PUBREL. */
bool cx_session_ack(cx_session_t *s, cx_mqtt_type type, uint16_t pid, uint8_t rc);

/* Incoming QoS 2: remembers pid until PUBREL. Returns 1 if new, 0 if already known. */
int cx_session_qos2_in_add(cx_session_t *s, uint16_t pid);
bool cx_session_qos2_in_release(cx_session_t *s, uint16_t pid);
bool cx_session_qos2_in_has(const cx_session_t *s, uint16_t pid);

/* Subscriptions. filter/group are as stored in the trie. Returns 1 new, 0 replaced. */
int cx_session_sub_add(cx_session_t *s, cx_str_t filter, cx_str_t group,
                       const cx_sub_opts_t *opts);
/* Returns CX_OK or CX_ENOTFOUND. */
int cx_session_sub_remove(cx_session_t *s, cx_str_t filter, cx_str_t group);

/* Drops all state (subscriptions, queue, inflight, QoS 2 ids): clean start. Wills are
 * handled by the caller. */
void cx_session_clear(cx_session_t *s);
/* Publishes the pending will now (if any). */
void cx_session_publish_will(cx_session_t *s);
/* Ends the session: publishes a pending will, clears it, unregisters it and drops the
 * alive reference. Messages unacknowledged by a shared-subscription member go to another
 * member of the group. */
void cx_session_end(cx_session_t *s);
/* Periodic checks for an offline session: will delay and session expiry. */
void cx_session_tick(cx_session_t *s, int64_t now_ms);

#endif
