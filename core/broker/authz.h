/* authz.h: the broker side of plugin decisions — runs a client's hook chain, and when a
 * plugin needs time, parks the connection and replays its packet once the verdict is in.
 *
 * Replay: a packet whose decision is pending stays unconsumed at the head of the read
 * buffer and reads are paused, so packet order is kept and nothing is copied. When the
 * verdict arrives the packet is decoded and handled again; the checks already answered for
 * it are served from a per-packet list in order, so a packet with several checks (one per
 * SUBSCRIBE entry) resumes where it stopped. Handlers therefore make all their checks
 * before their first side effect. */
#ifndef CX_BROKER_AUTHZ_H
#define CX_BROKER_AUTHZ_H

#include "broker/broker.h"

typedef struct cx_wait cx_wait_t;

/* Runs `event` for client cl (its listener's chain). Returns CULEX_ALLOW, CULEX_DENY,
 * CULEX_DEFER (every hook deferred), CULEX_CONTINUE (extended auth), or CX_CHAIN_PENDING:
 * the client now waits; the caller stops handling the packet and returns. With nonblocking
 * (deliveries), blocking hooks are skipped and the answer is immediate. */
int cx_authz_check(cx_client_t *cl, int event, void *ev, bool nonblocking);
/* The packet was handled to the end: forget its answered checks. */
void cx_authz_packet_done(cx_client_t *cl);
/* From the worker tick: gives back what a client between packets keeps of its checks. */
void cx_authz_idle(cx_client_t *cl);
/* The connection is going away: cancel what it waits for. */
void cx_authz_client_gone(cx_client_t *cl);
/* Worker inbox: a verdict arrived. */
void cx_authz_on_verdict(cx_worker_t *w, cx_post_t *p);
/* Extended-auth output carried by the last verdict (from the plugin; free with
 * cx_phost_free_mem). */
uint8_t *cx_authz_take_out(cx_client_t *cl, size_t *len);

#endif
