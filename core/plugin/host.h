/* host.h: the plugin host — loads plugins, keeps their hook chains, runs them.
 *
 * This module knows plugins and nothing of MQTT sessions: the broker calls it at the points
 * where a decision or a notification is due (CONNECT, PUBLISH, SUBSCRIBE, delivery, ...) and
 * gives it a small table of services (kick, publish) at start. It depends on util/ only.
 * (ARCHITECTURE.md draws plugin/ above broker/; the dependency is inverted here so that the
 * broker can call chains directly without a plugin ever seeing broker types.)
 *
 * Chains: one per listener, holding the global plugins' hooks and that listener's own
 * (per_listener_settings), sorted by priority, ties in load order. First non-defer verdict
 * wins; the caller applies the fallback when every hook defers.
 *
 * Slow plugins: a hook flagged CULEX_HOOK_BLOCKING runs on the host's thread pool, and a
 * callback may return CULEX_PENDING and answer later with pending_done(). Either way
 * cx_chain_run returns CX_CHAIN_PENDING with a ticket; the final verdict is delivered
 * through the ticket's `done` callback, from any thread. The caller arms a timeout and
 * cancels the ticket if the client goes away. */
#ifndef CX_PLUGIN_HOST_H
#define CX_PLUGIN_HOST_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "culex/plugin.h"

typedef struct cx_phost cx_phost_t;
typedef struct cx_chain cx_chain_t;
typedef struct cx_ticket cx_ticket_t;

/* What the broker offers plugins (host->kick, host->publish). Called from any thread. */
typedef struct cx_phost_services {
    void *ud;
    int (*kick)(void *ud, const char *client_id);
    int (*publish)(void *ud, const char *topic, const void *payload, size_t len, int qos,
                   bool retain);
} cx_phost_services_t;

/* The client as plugins see it. The broker creates it when a connection sends CONNECT,
 * fills the immutable fields, and drops its reference when the connection ends; pending
 * work holds its own reference, so accessors stay valid on pool threads. */
struct culex_client {
    atomic_int refs;
    char *id;
    char *username;
    char address[64];
    int protocol;
    int port;
    char *cert;            /* transport identity, "name\0value\0..." (client_cert_field) */
    size_t cert_len;
    struct cx_pdata *data; /* per-plugin data (client_data_set) */
    size_t ndata;
};

culex_client *cx_pclient_new(const char *id, size_t id_len, const char *username,
                             size_t username_len, const char *address, int protocol, int port);
/* Copies the transport's identity fields (certificate CN, subject, ..., as
 * "name\0value\0..." of len bytes; see cx_conn_field) for client_cert_field. Before the
 * client is shared with plugins. */
int cx_pclient_set_cert(culex_client *c, const char *fields, size_t len);
/* Replaces the client id (assigned or taken-over ids are known only after auth). */
int cx_pclient_set_id(culex_client *c, const char *id, size_t len);
void cx_pclient_ref(culex_client *c);
void cx_pclient_unref(culex_client *c);

/* Chain verdicts: CULEX_ALLOW, CULEX_DENY, CULEX_DEFER (all deferred), CULEX_CONTINUE
 * (extended auth), or CX_CHAIN_PENDING. CULEX_ERROR is folded into CULEX_DENY. */
#define CX_CHAIN_PENDING CULEX_PENDING

/* Called once with the final verdict of a pending chain run, from any thread. */
typedef void (*cx_ticket_done_cb)(cx_ticket_t *t, void *ud);

cx_phost_t *cx_phost_new(const cx_phost_services_t *svc, size_t nlisteners,
                         unsigned pool_threads);
/* Where an instance's hooks apply. */
typedef struct cx_pscope {
    int listener;        /* -1: every listener; >= 0: that one; -2: the listeners in uses[] */
    const int *uses;
    size_t nuses;
    bool deny_special_chars; /* refuse ACL checks for ids/usernames with '+' or '#' */
} cx_pscope_t;

/* Loads one plugin instance (dlopen + entry point). Returns 0, or CX_ECONFIG with err naming
 * the file and the reason. Main thread, before start. */
int cx_phost_load(cx_phost_t *h, const char *path, const culex_option *opts, size_t nopts,
                  const cx_pscope_t *scope, char *err, size_t errlen);
/* Replaces the options of instance `index` (load order), for the next CULEX_EV_RELOAD.
 * Main thread. */
int cx_phost_set_options(cx_phost_t *h, size_t index, const culex_option *opts, size_t nopts);
/* Builds the per-listener chains; call after every load. */
int cx_phost_finish(cx_phost_t *h);
/* Starts the blocking pool. */
int cx_phost_start(cx_phost_t *h);
/* Stops the pool, waiting for running callbacks (their verdicts are posted before this
 * returns). Idempotent. */
void cx_phost_stop(cx_phost_t *h);
/* Stops the pool, calls every plugin's cleanup, unloads. */
void cx_phost_free(cx_phost_t *h);
size_t cx_phost_count(const cx_phost_t *h);

cx_chain_t *cx_phost_chain(cx_phost_t *h, int listener);
/* True if any hook of `event` is in the chain (e.g. an ACL source is configured). */
bool cx_chain_has(const cx_chain_t *c, int event);
/* True if a hook of `event` that does not block is in the chain. */
bool cx_chain_has_nonblocking(const cx_chain_t *c, int event);

/* Runs the chain for an auth/ACL/message event. `ev` is the event struct (size filled by
 * the caller). For RECEIVE ACL checks and notifications pass nonblocking = true: blocking
 * hooks are skipped. Returns a verdict, or CX_CHAIN_PENDING with *ticket set; the event
 * was then copied, so the caller's buffers may change. */
int cx_chain_run(cx_chain_t *c, int event, void *ev, bool nonblocking, cx_ticket_t **ticket,
                 cx_ticket_done_cb done, void *done_ud);
/* Notifications to every hook of `event` (connect, disconnect, tick, worker start/stop). */
void cx_chain_notify(cx_chain_t *c, int event, void *ev);
/* Notifies every plugin instance once (tick, reload, worker start/stop). */
void cx_phost_notify_all(cx_phost_t *h, int event, void *ev);
/* True if any instance hooks `event` (e.g. a persistence store is loaded). */
bool cx_phost_has(const cx_phost_t *h, int event);
/* Runs every CULEX_EV_PERSIST_RESTORE hook with ev. CX_OK, or CX_EIO if one refused. Main
 * thread, before the workers start. */
int cx_phost_restore(cx_phost_t *h, culex_ev_persist_restore *ev);
/* Sends CULEX_EV_RELOAD with each instance's options. Main thread. */
void cx_phost_reload(cx_phost_t *h);

/* Tickets: the final verdict and extended-auth output once done. */
int cx_ticket_verdict(const cx_ticket_t *t);
/* Takes the out data (from host alloc; free with cx_phost_free_mem). */
uint8_t *cx_ticket_take_out(cx_ticket_t *t, size_t *len);
/* Gives up on a ticket (timeout or client gone): the plugin's cancel callback runs, a later
 * answer is ignored. Returns true if this call cancelled it, false if it had finished. */
bool cx_ticket_cancel(cx_ticket_t *t);
/* Drops the caller's reference (after the result was used or the ticket cancelled). */
void cx_ticket_release(cx_ticket_t *t);
/* The hook timeout of the ticket's current step, in ms. */
unsigned cx_ticket_timeout_ms(const cx_ticket_t *t);
/* Logs which plugin and event timed out. */
const char *cx_ticket_plugin_name(const cx_ticket_t *t);

void cx_phost_free_mem(void *p);

#endif
