/* router.h: publish routing: match once on the receiving worker, deliver locally or post
 * one batch per target worker. */
#ifndef CX_BROKER_ROUTER_H
#define CX_BROKER_ROUTER_H

#include "broker/broker.h"

/* Routes msg (the caller keeps its reference). origin is the publishing session for
 * No Local (may be NULL). Returns the number of subscriptions it was delivered to. */
size_t cx_route_publish(cx_worker_t *w, cx_msg_t *msg, const cx_session_t *origin);
/* Sets or clears the retained message for msg's topic (empty payload clears). */
void cx_route_retain(cx_worker_t *w, cx_msg_t *msg);
/* Sends a message whose shared-subscription member left to another member of the same
 * group (share_hash identifies it); returns false if there is none. */
bool cx_route_shared_redeliver(cx_worker_t *w, cx_session_t *leaving, cx_msg_t *msg,
                               uint8_t qos, uint32_t share_hash);
/* Hash of a $share group name and its filter (never 0). */
uint32_t cx_route_share_hash(cx_str_t group, cx_str_t filter);

/* Removes retained messages whose message expiry has passed (retain_expiry_interval).
 * Returns how many were removed. Expired ones are never delivered even before a sweep. */
size_t cx_route_retain_sweep(cx_worker_t *w);

struct cx_post_deliver;
/* Handles a batch of deliveries posted by another worker (frees it). */
void cx_route_deliver_post(cx_worker_t *w, struct cx_post_deliver *p);

#endif
