/* flow.c: flow control towards publishers (see flow.h for the policy).
 *
 * The owner of a session and the workers holding publishers back for it meet in two
 * atomics, in the manner of Dekker: the owner lowers the backlog and then reads the waiter
 * bits; a worker sets its bit and then reads the backlog. With sequentially consistent
 * operations at least one of them sees the other, so a drained session never leaves a
 * publisher waiting for a wake-up that was not sent. The periodic recheck (CX_FLOW_CHECK_MS)
 * covers what no wake-up announces: a session going offline or stalling. */
#include "flow.h"

#include "broker/client.h"
#include "broker/session.h"
#include "broker/worker.h"
#include "net/conn.h"
#include "util/alloc.h"
#include "util/log.h"

/* One publisher held back: allocated only while it is, so idle clients pay a pointer. */
typedef struct cx_fc_wait {
    cx_list_t link;          /* on worker->fc_paused */
    cx_client_t *client;
    cx_session_t *session;   /* the congested session (referenced) */
} cx_fc_wait_t;

static int high_water(const cx_worker_t *w)
{
    int q = w->limits.max_queued_messages;
    if (q <= 0)
        return 1000;
    return q >= 2 ? q / 2 : 1;
}

static int backlog(cx_session_t *s)
{
    return atomic_load(&s->fc_transit) + atomic_load(&s->fc_queued);
}

void cx_flow_route_begin(cx_worker_t *w)
{
    if (w->fc_block) {
        cx_session_unref(w->fc_block);
        w->fc_block = NULL;
    }
}

/* Whether s has been congested without progress for so long that it counts as stalled
 * (then it holds nobody back until it drains); says so once. */
static bool stalled(cx_session_t *s, int64_t now)
{
    if (atomic_load_explicit(&s->fc_stalled, memory_order_relaxed))
        return true;
    /* Without a queue the backlog is in transit to the owner, which is not the reader's
     * doing; the stall clock runs from when the queue began or last shrank. */
    if (!atomic_load(&s->fc_queued) ||
        now - atomic_load_explicit(&s->fc_progress_ms, memory_order_relaxed) < CX_FLOW_STALL_MS)
        return false;
    if (!atomic_exchange(&s->fc_stalled, true))
        cx_log(CX_LOG_NOTICE, "Client %s has read nothing for %d s with %d messages waiting: "
               "publishers are no longer held back for it, and what passes "
               "max_queued_messages is dropped.", s->client_id, CX_FLOW_STALL_MS / 1000,
               backlog(s));
    return true;
}

void cx_flow_route(cx_worker_t *w, cx_target_t *t, const cx_session_t *origin)
{
    cx_session_t *s = t->session;
    t->fc = false;
    if (t->qos == 0 || !atomic_load_explicit(&s->online, memory_order_relaxed) ||
        atomic_load_explicit(&s->fc_stalled, memory_order_relaxed))
        return;
    t->fc = true;
    int n = atomic_fetch_add(&s->fc_transit, 1) + 1 + atomic_load(&s->fc_queued);
    if (n >= high_water(w) && s != origin && !w->fc_block &&
        !stalled(s, (int64_t)cx_loop_now(w->loop)))
        w->fc_block = cx_session_ref(s);
}

void cx_flow_arrived(cx_session_t *s)
{
    atomic_fetch_sub(&s->fc_transit, 1);
}

static void post_wake(cx_worker_t *w)
{
    if (atomic_exchange(&w->fc_wake_posted, true))
        return; /* one is on its way: it will look at every held publisher */
    cx_post_t *p = cx_malloc(sizeof *p);
    if (!p) {
        /* The periodic recheck releases them a little later. */
        atomic_store(&w->fc_wake_posted, false);
        return;
    }
    p->kind = CX_POST_FLOW;
    cx_loop_post(w->loop, p);
}

void cx_flow_settle(cx_session_t *s)
{
    int queued = (int)s->queue_count;
    int before = atomic_load_explicit(&s->fc_queued, memory_order_relaxed);
    if (queued != before) {
        atomic_store(&s->fc_queued, queued);
        /* Progress, or the start of a backlog: either way the stall clock starts here. */
        if (queued < before || before == 0)
            atomic_store_explicit(&s->fc_progress_ms, (int64_t)cx_loop_now(s->worker->loop),
                                  memory_order_relaxed);
    }
    if (backlog(s) > high_water(s->worker) / 2)
        return;
    if (atomic_load_explicit(&s->fc_stalled, memory_order_relaxed))
        atomic_store_explicit(&s->fc_stalled, false, memory_order_relaxed);
    if (!atomic_load(&s->fc_waiters))
        return;
    uint64_t mask = atomic_exchange(&s->fc_waiters, 0);
    cx_broker_t *b = s->worker->broker;
    for (size_t i = 0; mask && i < b->nworkers; i++, mask >>= 1)
        if (mask & 1)
            post_wake(&b->workers[i]);
}

/* Whether a publisher held back for s may go on. */
static bool may_go(cx_worker_t *w, cx_session_t *s, int64_t now)
{
    return !atomic_load_explicit(&s->online, memory_order_relaxed) ||
           backlog(s) <= high_water(w) / 2 || stalled(s, now);
}

static void release(cx_fc_wait_t *fw)
{
    cx_client_t *cl = fw->client;
    cl->fc = NULL;
    cx_session_unref(fw->session);
    cx_free(fw);
    cx_conn_resume_read(cl->conn);
    cx_client_replay(cl); /* the packets read before it was held back */
}

static void recheck(cx_worker_t *w)
{
    /* Released publishers are replayed, which may hold them back again (onto fc_paused):
     * walk a detached copy of the list. */
    cx_list_t todo;
    cx_list_init(&todo);
    while (!cx_list_empty(&w->fc_paused)) {
        cx_list_t *n = w->fc_paused.next;
        cx_list_remove(n);
        cx_list_insert_tail(&todo, n);
    }
    int64_t now = (int64_t)cx_loop_now(w->loop);
    while (!cx_list_empty(&todo)) {
        cx_fc_wait_t *fw = cx_container_of(todo.next, cx_fc_wait_t, link);
        cx_list_remove(&fw->link);
        /* The owner's wake-up cleared our bit: set it again before looking (see the top). */
        atomic_fetch_or(&fw->session->fc_waiters, UINT64_C(1) << w->index);
        if (!may_go(w, fw->session, now)) {
            cx_list_insert_tail(&w->fc_paused, &fw->link);
            continue;
        }
        release(fw);
    }
    if (!cx_list_empty(&w->fc_paused) && !cx_timer_is_armed(&w->fc_timer))
        cx_timer_start(w->loop, &w->fc_timer, CX_FLOW_CHECK_MS);
}

static void timer_cb(cx_loop_t *loop, cx_timer_t *t)
{
    (void)loop;
    recheck(cx_container_of(t, cx_worker_t, fc_timer));
}

void cx_flow_on_wake(cx_worker_t *w)
{
    atomic_store(&w->fc_wake_posted, false);
    recheck(w);
}

void cx_flow_after_publish(cx_client_t *cl)
{
    cx_worker_t *w = cl->worker;
    cx_session_t *s = w->fc_block;
    if (!s)
        return;
    w->fc_block = NULL;
    if (cl->fc || cl->conn->closing) {
        cx_session_unref(s);
        return;
    }
    cx_fc_wait_t *fw = cx_malloc(sizeof *fw);
    if (!fw) {
        cx_session_unref(s); /* not held back: the queue limit still bounds the session */
        return;
    }
    fw->client = cl;
    fw->session = s;
    /* Say we wait, then look again (see the top of the file). */
    atomic_fetch_or(&s->fc_waiters, UINT64_C(1) << w->index);
    if (backlog(s) <= high_water(w) / 2) {
        cx_session_unref(s);
        cx_free(fw);
        return;
    }
    cl->fc = fw;
    cx_list_insert_tail(&w->fc_paused, &fw->link);
    /* Still read, for its acknowledgements (client.c held_read). */
    if (!cx_timer_is_armed(&w->fc_timer))
        cx_timer_start(w->loop, &w->fc_timer, CX_FLOW_CHECK_MS);
}

void cx_flow_client_gone(cx_client_t *cl)
{
    cx_fc_wait_t *fw = cl->fc;
    if (!fw)
        return;
    cl->fc = NULL;
    cx_list_remove(&fw->link);
    cx_session_unref(fw->session);
    cx_free(fw);
}

void cx_flow_worker_init(cx_worker_t *w)
{
    w->fc_block = NULL;
    cx_list_init(&w->fc_paused);
    cx_timer_init(&w->fc_timer, timer_cb);
    atomic_init(&w->fc_wake_posted, false);
}

void cx_flow_worker_destroy(cx_worker_t *w)
{
    cx_flow_route_begin(w);
    while (!cx_list_empty(&w->fc_paused))
        cx_flow_client_gone(cx_container_of(w->fc_paused.next, cx_fc_wait_t, link)->client);
}
