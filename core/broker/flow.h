/* flow.h: flow control towards publishers.
 *
 * A subscriber that reads slower than its publishers write used to lose acknowledged QoS 1/2
 * messages once max_queued_messages filled up. Instead, a publisher whose message meets a
 * congested session stops being read (TCP slows it down, and what it sent meanwhile is not
 * acknowledged, so it also runs out of its in-flight window) until that session has
 * drained to half its high-water mark. The queue limit stays as the last resort.
 *
 * A session's backlog is its queue length plus the QoS 1/2 deliveries routed to it and not
 * yet arrived (counted by the routing worker, so deliveries in transit between workers are
 * seen at once). It is congested when the backlog reaches half max_queued_messages (1000
 * when the queue is unlimited) while it is connected.
 *
 * Two guards keep a reader from holding publishers forever: a publisher is never held back
 * for its own session (its acknowledgements would sit in the input it no longer reads), and
 * a session that makes no progress for CX_FLOW_STALL_MS (its queue never shrinks: it stopped
 * reading) stops holding anybody back until it has drained; its messages are then dropped at
 * max_queued_messages, as without flow control. */
#ifndef CX_BROKER_FLOW_H
#define CX_BROKER_FLOW_H

#include "broker/broker.h"
#include "broker/client.h"

#define CX_FLOW_STALL_MS 2000
#define CX_FLOW_CHECK_MS 50

/* Routing (any worker): counts a delivery in t->session's backlog when it is QoS 1/2 to a
 * connected session, setting t->fc, and notes a congested session other than origin in
 * w->fc_block for the publisher being handled. */
void cx_flow_route(cx_worker_t *w, cx_target_t *t, const cx_session_t *origin);
/* Routing: forgets a congested session noted by an earlier routing that had no publisher
 * to hold back (a will, a plugin's message). */
void cx_flow_route_begin(cx_worker_t *w);

/* Owner: a counted delivery arrived (before it is queued or sent). */
void cx_flow_arrived(cx_session_t *s);
/* Owner: the session's queue may have changed length; publishes it and wakes the workers
 * holding publishers back once the backlog is low enough. */
void cx_flow_settle(cx_session_t *s);

/* After cl's PUBLISH was routed: holds cl back if routing met a congested session. */
void cx_flow_after_publish(cx_client_t *cl);
/* Whether cl is held back (its reads are paused). */
static inline bool cx_flow_holding(const cx_client_t *cl) { return cl->fc != NULL; }
/* The client is going away. */
void cx_flow_client_gone(cx_client_t *cl);

/* Worker: a CX_POST_FLOW arrived; releases the publishers that may go on. */
void cx_flow_on_wake(cx_worker_t *w);
void cx_flow_worker_init(cx_worker_t *w);
void cx_flow_worker_destroy(cx_worker_t *w);

#endif
