/* persist.h: what the broker records so that a restart loses nothing, and how it restores it.
 *
 * The broker's live state stays in memory; persistence is a stream of records about it
 * (store/store.h): retained messages, sessions, subscriptions, messages, queue entries and
 * incoming QoS 2 packet ids. The records go to the default log store, to plugins that hook
 * CULEX_EV_PERSIST, or to both; a plugin that hooks CULEX_EV_PERSIST_RESTORE *is* the store
 * and the default log is not opened.
 *
 * Session generations. A session that persists gets a store-wide unique generation number;
 * its subscriptions, queue entries and QoS 2 ids are keyed by that generation, not by the
 * client id. Ending or cleaning a session deletes only its session record: everything keyed
 * by the old generation is then garbage that restore ignores and the next snapshot drops.
 * That keeps cleanup to one record and makes races with deliveries in flight harmless.
 *
 * Threads: the record functions run on the worker owning the session (or, for routing, on
 * the worker that matched the message) and cost one branch when persistence is off.
 * cx_persist_open/close/maintain run on the main thread. */
#ifndef CX_BROKER_PERSIST_H
#define CX_BROKER_PERSIST_H

#include "broker/session.h"

typedef struct cx_persist cx_persist_t;

/* Start-up, main thread, after plugins are loaded and before the workers start: opens the
 * store (when `persistence true` or a store plugin is loaded) and restores the state it
 * holds. Returns CX_OK (b->persist may stay NULL: nothing to do) or an error with err set. */
int cx_persist_open(cx_broker_t *b, char *err, size_t errlen);
/* From here on nothing is recorded: the broker is shutting down and tearing its state down
 * is not a change to remember. */
void cx_persist_freeze(cx_broker_t *b);
/* After the workers have stopped: writes the final snapshot and closes the store. */
void cx_persist_close(cx_broker_t *b);
/* Main thread, about once a second: takes a snapshot when one is due (autosave, log
 * compaction, retry after a failure), with the workers parked. */
void cx_persist_maintain(cx_broker_t *b);

/* SIGUSR1: writes a snapshot now (Mosquitto saves its database on SIGUSR1). */
void cx_persist_save(cx_broker_t *b);

static inline bool cx_persist_on(const cx_worker_t *w)
{
    return w->broker->persist != NULL;
}

/* --- records (worker threads) --- */

/* A retained message was set (msg) or cleared (msg NULL) on topic. */
void cx_persist_retain(cx_worker_t *w, cx_str_t topic, const cx_msg_t *msg);
/* The session is (still) persistent: records it, giving it a generation the first time.
 * A session whose expiry is 0 is not recorded (and its record is deleted if it had one). */
void cx_persist_session(cx_session_t *s);
/* The session ended or was cleaned: its record goes, and with it everything of its
 * generation. */
void cx_persist_session_drop(cx_session_t *s);
void cx_persist_sub(cx_session_t *s, const cx_sess_sub_t *ss, bool removed);
/* Routing, on the matching worker: records the queue entry of a QoS 1/2 delivery to a
 * persistent session before it is handed to the session's worker, so that the publisher's
 * acknowledgement can wait for it. Fills t->store_gen and t->store_order (0 if nothing was
 * recorded). */
void cx_persist_route(cx_worker_t *w, cx_msg_t *msg, cx_target_t *t);
/* A queue entry of s changed state (queued, sent, released) or appeared without having
 * been recorded by routing. */
void cx_persist_entry(cx_session_t *s, cx_qentry_t *e);
/* A queue entry of s is done: acknowledged, dropped or expired. */
void cx_persist_entry_done(cx_session_t *s, cx_qentry_t *e);
void cx_persist_qos2_in(cx_session_t *s, uint16_t pid, bool released);

/* --- acknowledgements under `persistence_sync always` --- */

/* False when QoS 1/2 work must be refused: `always` and the store has failed. */
bool cx_persist_accepting(cx_worker_t *w);
/* Sends PUBACK/PUBREC/PUBCOMP to a publisher once everything this worker recorded so far
 * is durable (at once, unless `always`). Keeps the order of the client's acknowledgements. */
void cx_persist_ack(cx_client_t *cl, cx_mqtt_type type, uint16_t pid, uint8_t rc);
/* A SUBACK or UNSUBACK was just encoded into cl's output buffer from `before` on: send it,
 * or hold it the same way until the subscription records are durable. */
void cx_persist_hold_output(cx_client_t *cl, size_t before);
/* The writer made more records durable: release what waited for them (worker inbox). */
void cx_persist_on_durable(cx_worker_t *w);
/* The worker tick: acknowledgements that can never be honoured (the store failed). */
void cx_persist_tick(cx_worker_t *w);
/* A client goes away: forget its held acknowledgements. */
void cx_persist_forget_client(cx_client_t *cl);
/* Frees the worker's held-acknowledgement queue (worker teardown). */
void cx_persist_worker_free(cx_worker_t *w);

#endif
