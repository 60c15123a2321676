/* worker.c: a worker thread: its loop, its inbox handlers, the once-a-second tick, and the
 * placement of new connections. */
#include "worker.h"

#include <errno.h>
#include <signal.h>
#include <string.h>
#include <unistd.h>

#include "broker/authz.h"
#include "broker/client.h"
#include "broker/flow.h"
#include "broker/persist.h"
#include "broker/router.h"
#include "broker/session.h"
#include "broker/sys.h"
#include "util/alloc.h"
#include "util/log.h"

/* Keep-alive deadlines are checked every tick; sessions (will delay, expiry) and $SYS once a
 * second. A quarter second keeps a 1.5 x keepalive deadline precise to within 0.25 s. */
#define TICK_MS 250
#define TICKS_PER_SECOND (1000 / TICK_MS)

typedef struct cx_handover {
    cx_conn_t *conn;
    cx_worker_t *to;
} cx_handover_t;

/* After a reload, clients the new settings would refuse are disconnected, as Mosquitto does:
 * turning allow_anonymous off must not leave anonymous clients connected. */
static void recheck_clients(cx_worker_t *w)
{
    const char *prefix = w->broker->cfg->clientid_prefixes;
    cx_list_t *it, *tmp;
    cx_list_foreach_safe(it, tmp, &w->clients)
    {
        cx_client_t *cl = cx_container_of(it, cx_client_t, worker_link);
        if (cl->state != CX_CL_CONNECTED || !cl->session)
            continue;
        bool anonymous_refused = !cl->username && !cx_client_lconf(cl)->allow_anonymous;
        bool prefix_refused = prefix && strncmp(cl->session->client_id, prefix, strlen(prefix));
        if (anonymous_refused || prefix_refused) {
            cx_log(CX_LOG_NOTICE, "Client %s no longer allowed after reload; disconnecting.",
                   cl->session->client_id);
            cx_client_disconnect(cl, CX_RC_NOT_AUTHORIZED, "not authorised after reload");
        }
    }
}

static void on_post(cx_loop_t *loop, cx_post_t *p, void *ud)
{
    cx_worker_t *w = ud;
    switch (p->kind) {
    case CX_POST_CONN: {
        cx_post_conn_t *pc = (cx_post_conn_t *)p;
        cx_conn_t *c = pc->conn;
        cx_free(pc);
        if (w->broker->shutting_down) {
            /* Not attached anywhere: close it here. */
            c->net = NULL;
            cx_conn_attach(c, &w->net, &cx_client_conn_ops);
            cx_conn_close(c, CX_ECLOSED);
            break;
        }
        cx_client_adopt(w, c);
        break;
    }
    case CX_POST_DELIVER:
        cx_route_deliver_post(w, (cx_post_deliver_t *)p);
        break;
    case CX_POST_PAUSE: {
        cx_pause_t *pz = ((cx_post_pause_t *)p)->pause;
        cx_free(p);
        pthread_mutex_lock(&pz->lock);
        pz->arrived++;
        pthread_cond_broadcast(&pz->cond);
        while (!pz->go)
            pthread_cond_wait(&pz->cond, &pz->lock);
        pthread_mutex_unlock(&pz->lock);
        cx_limits_from_config(&w->limits, w->broker->cfg);
        recheck_clients(w);
        pthread_mutex_lock(&pz->lock);
        pz->left--;
        pthread_cond_broadcast(&pz->cond);
        pthread_mutex_unlock(&pz->lock);
        break;
    }
    case CX_POST_VERDICT:
        cx_authz_on_verdict(w, p);
        break;
    case CX_POST_KICK:
        cx_client_kick(w, ((cx_post_kick_t *)p)->client_id);
        cx_free(p);
        break;
    case CX_POST_PUBLISH: {
        cx_msg_t *m = ((cx_post_publish_t *)p)->msg;
        cx_free(p);
        if (m->retain)
            cx_route_retain(w, m);
        cx_route_publish(w, m, NULL);
        cx_msg_unref(m);
        break;
    }
    case CX_POST_DURABLE:
        cx_free(p);
        cx_persist_on_durable(w);
        break;
    case CX_POST_FLOW:
        cx_free(p);
        cx_flow_on_wake(w);
        break;
    case CX_POST_STOP:
        cx_free(p);
        cx_net_close_all(&w->net);
        cx_loop_stop(loop);
        break;
    default:
        CX_ASSERT(!"unknown post kind");
    }
}

static void before_sleep(cx_loop_t *loop, void *ud)
{
    cx_worker_t *w = ud;
    cx_worker_flush_outbox(w);
    /* Hand-overs first: a connection on its way out must not be touched by the flush. */
    for (size_t i = 0; i < w->nhandovers; i++) {
        cx_conn_t *c = w->handovers[i].conn;
        if (c->closing)
            continue; /* freed by the flush below */
        cx_post_conn_t *p = cx_malloc(sizeof *p);
        if (!p) {
            cx_conn_close(c, CX_ENOMEM);
            continue;
        }
        cx_conn_detach(c);
        c->read_paused = false;
        p->base.kind = CX_POST_CONN;
        p->conn = c;
        p->adopt = true;
        cx_loop_post(w->handovers[i].to->loop, &p->base);
    }
    w->nhandovers = 0;
    if (w->held_len)
        cx_persist_on_durable(w); /* acknowledgements whose records are durable already */
    cx_net_flush(&w->net);
}

void cx_worker_handover(cx_worker_t *from, cx_worker_t *to, cx_conn_t *c)
{
    if (from->nhandovers == from->handovers_cap) {
        size_t cap = from->handovers_cap ? from->handovers_cap * 2 : 16;
        cx_handover_t *n = cx_realloc(from->handovers, cap * sizeof *n);
        if (!n) {
            cx_conn_close(c, CX_ENOMEM);
            return;
        }
        from->handovers = n;
        from->handovers_cap = cap;
    }
    cx_conn_pause_read(c);
    from->handovers[from->nhandovers++] = (cx_handover_t){c, to};
}

static void tick_cb(cx_loop_t *loop, cx_timer_t *t)
{
    cx_worker_t *w = cx_container_of(t, cx_worker_t, tick);
    int64_t now = (int64_t)cx_loop_now(loop);
    cx_list_t *it, *tmp;
    cx_list_foreach_safe(it, tmp, &w->clients)
    {
        cx_client_tick(cx_container_of(it, cx_client_t, worker_link), now);
    }
    cx_persist_tick(w);
    if (++w->tick_count % TICKS_PER_SECOND == 0) {
        cx_list_foreach_safe(it, tmp, &w->sessions)
        {
            cx_session_tick(cx_container_of(it, cx_session_t, worker_link), now);
        }
        w->seconds++;
        if (w->index == 0) {
            cx_sys_tick(w);
            culex_ev_tick tev = {.size = sizeof tev, .now_ms = now};
            cx_phost_notify_all(w->broker->plugins, CULEX_EV_TICK, &tev);
            int64_t rei = w->broker->cfg->retain_expiry_interval;
            if (rei > 0 && w->seconds % (uint64_t)rei == 0)
                cx_route_retain_sweep(w);
        }
    }
    cx_timer_start(loop, &w->tick, TICK_MS);
}

void cx_worker_on_accept(cx_netctx_t *net, cx_listener_t *l, int fd, const char *peer)
{
    cx_worker_t *w = net->ud;
    cx_broker_t *b = w->broker;
    int gmax = b->cfg->global_max_connections;
    if (gmax >= 0) {
        int open = 0;
        for (size_t i = 0; i < b->nlisteners; i++)
            open += atomic_load_explicit(&b->listeners[i].connections, memory_order_relaxed);
        /* This connection is already counted by its listener. */
        if (open > gmax) {
            cx_log(CX_LOG_NOTICE, "Client connection from %s denied: global_max_connections "
                                  "exceeded.", peer);
            atomic_fetch_sub(&l->connections, 1);
            close(fd);
            return;
        }
    }
    cx_conn_t *c = cx_conn_new(fd, l, peer);
    if (!c) {
        cx_log(CX_LOG_ERR, "Out of memory accepting a connection from %s.", peer);
        atomic_fetch_sub(&l->connections, 1);
        close(fd);
        return;
    }
    atomic_fetch_add_explicit(&w->ctr.connections, 1, memory_order_relaxed);
    if (w->limits.connection_messages)
        cx_log(CX_LOG_NOTICE, "New connection from %s on %s.", peer, l->desc);
    size_t target = atomic_fetch_add_explicit(&b->next_worker, 1, memory_order_relaxed) %
                    b->nworkers;
    if (target == w->index) {
        cx_client_adopt(w, c);
        return;
    }
    cx_post_conn_t *p = cx_malloc(sizeof *p);
    if (!p) {
        cx_client_adopt(w, c);
        return;
    }
    p->base.kind = CX_POST_CONN;
    p->conn = c;
    p->adopt = false;
    cx_loop_post(b->workers[target].loop, &p->base);
}

static void *thread_main(void *arg)
{
    cx_worker_t *w = arg;
    char name[16];
    snprintf(name, sizeof name, "culex-w%zu", w->index);
    pthread_setname_np(pthread_self(), name);
    cx_timer_start(w->loop, &w->tick, TICK_MS);
    culex_ev_worker wev = {.size = sizeof wev, .index = (unsigned)w->index};
    cx_phost_notify_all(w->broker->plugins, CULEX_EV_WORKER_START, &wev);
    int rc = cx_loop_run(w->loop);
    if (rc)
        cx_log(CX_LOG_ERR, "Worker %zu event loop failed: %s.", w->index, cx_strerror(rc));
    /* Connections closed by the stop request are freed here, outside any event batch. */
    cx_net_flush(&w->net);
    cx_phost_notify_all(w->broker->plugins, CULEX_EV_WORKER_STOP, &wev);
    return NULL;
}

int cx_worker_init(cx_worker_t *w, cx_broker_t *b, size_t index)
{
    memset(w, 0, sizeof *w);
    w->index = index;
    w->broker = b;
    cx_flow_worker_init(w);
    w->loop = cx_loop_new(on_post, w);
    if (!w->loop)
        return -errno;
    cx_loop_set_before_sleep(w->loop, before_sleep);
    w->outbox = cx_calloc(b->nworkers, sizeof *w->outbox);
    if (!w->outbox)
        return CX_ENOMEM;
    cx_net_init(&w->net, w->loop, w);
    cx_list_init(&w->sessions);
    cx_list_init(&w->clients);
    cx_arena_init(&w->arena, 0);
    cx_timer_init(&w->tick, tick_cb);
    cx_limits_from_config(&w->limits, b->cfg);
    return CX_OK;
}

int cx_worker_start(cx_worker_t *w)
{
    /* Signals are for the main thread (sigwait); workers block them all. */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &old);
    int rc = pthread_create(&w->thread, NULL, thread_main, w);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    return rc ? -rc : CX_OK;
}

void cx_worker_join(cx_worker_t *w)
{
    pthread_join(w->thread, NULL);
}

void cx_worker_destroy(cx_worker_t *w)
{
    /* Sessions that outlived their connections end here (no wills at shutdown). */
    while (!cx_list_empty(&w->sessions)) {
        cx_session_t *s = cx_container_of(w->sessions.next, cx_session_t, worker_link);
        cx_msg_unref(s->will);
        s->will = NULL;
        cx_session_end(s);
    }
    cx_net_flush(&w->net);
    cx_flow_worker_destroy(w);
    cx_free(w->targets);
    cx_free(w->handovers);
    cx_persist_worker_free(w);
    /* Deliveries routed in the last turn before the stop and never posted. */
    for (size_t i = 0; w->outbox && i < w->broker->nworkers; i++) {
        cx_post_deliver_t *p = w->outbox[i];
        for (size_t k = 0; p && k < p->count; k++) {
            cx_free(p->items[k].t.sub_ids);
            cx_session_unref(p->items[k].t.session);
            cx_msg_unref(p->items[k].msg);
        }
        cx_free(p);
    }
    cx_free(w->outbox);
    cx_arena_free(&w->arena);
    cx_loop_free(w->loop);
    w->loop = NULL;
}
