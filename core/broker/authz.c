/* authz.c: plugin chains for one client, waits and replays. */
#include "authz.h"

#include "broker/client.h"
#include "broker/worker.h"
#include "util/alloc.h"
#include "util/log.h"

/* One pending decision. Worker-owned; two references: the client's (dropped when the
 * verdict is used or the client goes) and the completion's (dropped when its post is
 * handled, or by whoever cancels the ticket before it completes). */
struct cx_wait {
    int refs;
    cx_worker_t *worker;
    cx_client_t *client;   /* NULL once the client went away */
    cx_ticket_t *ticket;
    cx_timer_t timer;
};

typedef struct verdict_post {
    cx_post_t base;
    cx_wait_t *wait;
} verdict_post_t;

static void wait_unref(cx_wait_t *wt)
{
    if (--wt->refs > 0)
        return;
    if (wt->ticket)
        cx_ticket_release(wt->ticket);
    cx_free(wt);
}

/* Any thread: the ticket finished; hand it to the worker that waits. */
static void ticket_done(cx_ticket_t *t, void *ud)
{
    cx_wait_t *wt = ud;
    verdict_post_t *p = cx_malloc(sizeof *p);
    if (!p) {
        /* Cannot tell the worker: the timeout will deny. */
        cx_log(CX_LOG_ERR, "Out of memory delivering a plugin verdict.");
        return;
    }
    p->base.kind = CX_POST_VERDICT;
    p->wait = wt;
    cx_loop_post(wt->worker->loop, &p->base);
}

static int push_answer(cx_client_t *cl, int verdict)
{
    cx_client_rare_t *r = cx_client_rare(cl);
    if (!r)
        return CX_ENOMEM;
    if (r->nchecks == r->checks_cap) {
        uint32_t cap = r->checks_cap ? r->checks_cap * 2 : 8;
        int *n = cx_realloc(r->checks, cap * sizeof *n);
        if (!n)
            return CX_ENOMEM;
        r->checks = n;
        r->checks_cap = cap;
    }
    r->checks[r->nchecks++] = verdict;
    return CX_OK;
}

static void resume(cx_client_t *cl, int verdict)
{
    cx_wait_t *wt = cl->wait;
    cl->wait = NULL;
    if (push_answer(cl, verdict) != CX_OK) {
        cx_conn_close(cl->conn, CX_ENOMEM);
        wait_unref(wt);
        return;
    }
    if (wt->ticket) { /* push_answer made cl->rare */
        cx_phost_free_mem(cl->rare->auth_out);
        cl->rare->auth_out = cx_ticket_take_out(wt->ticket, &cl->rare->auth_out_len);
    }
    cx_timer_stop(cl->worker->loop, &wt->timer);
    wt->client = NULL;
    wait_unref(wt);
    cx_conn_resume_read(cl->conn);
    cx_client_replay(cl);
}

static void timeout_cb(cx_loop_t *loop, cx_timer_t *t)
{
    cx_wait_t *wt = cx_container_of(t, cx_wait_t, timer);
    cx_client_t *cl = wt->client;
    if (!cl || !cx_ticket_cancel(wt->ticket))
        return; /* the verdict is on its way */
    cx_log(CX_LOG_WARNING, "Plugin %s did not answer for client %s within %u ms: denied.",
           cx_ticket_plugin_name(wt->ticket), cl->pc ? cl->pc->id : cl->conn->peer,
           cx_ticket_timeout_ms(wt->ticket));
    wait_unref(wt); /* the completion's reference: it will never post */
    resume(cl, CULEX_DENY);
}

int cx_authz_check(cx_client_t *cl, int event, void *ev, bool nonblocking)
{
    /* Without plugins every check defers, the same on a replay: nothing to record. */
    if (!cl->chain)
        return CULEX_DEFER;
    cx_client_rare_t *r = cl->rare;
    if (!nonblocking && r && r->check_idx < r->nchecks)
        return r->checks[r->check_idx++]; /* answered before this replay */
    cx_ticket_t *ticket = NULL;
    cx_wait_t *wt = NULL;
    if (!nonblocking) {
        wt = cx_calloc(1, sizeof *wt);
        if (!wt)
            return CULEX_DENY;
        wt->refs = 2;
        wt->worker = cl->worker;
        wt->client = cl;
        cx_timer_init(&wt->timer, timeout_cb);
    }
    int v = cx_chain_run(cl->chain, event, ev, nonblocking, &ticket, ticket_done, wt);
    if (v != CX_CHAIN_PENDING) {
        cx_free(wt);
        if (!nonblocking) {
            if (push_answer(cl, v) != CX_OK)
                return CULEX_DENY;
            cl->rare->check_idx++;
        }
        return v;
    }
    wt->ticket = ticket;
    cl->wait = wt;
    cx_conn_pause_read(cl->conn);
    cx_timer_start(cl->worker->loop, &wt->timer, cx_ticket_timeout_ms(ticket));
    return CX_CHAIN_PENDING;
}

void cx_authz_packet_done(cx_client_t *cl)
{
    /* The answers matter only until the packet is done. Their array stays for the next
     * packets (a publisher checked by an ACL plugin allocates nothing per message); the
     * worker tick gives it back (cx_authz_idle), so an idle client holds none. */
    cx_client_rare_t *r = cl->rare;
    if (!r)
        return;
    r->nchecks = 0;
    r->check_idx = 0;
    cx_client_rare_trim(cl);
}

void cx_authz_idle(cx_client_t *cl)
{
    cx_client_rare_t *r = cl->rare;
    if (!r || cl->wait || r->nchecks)
        return;
    cx_free_null(r->checks);
    r->checks_cap = 0;
    cx_client_rare_trim(cl);
}

void cx_authz_client_gone(cx_client_t *cl)
{
    cx_wait_t *wt = cl->wait;
    if (!wt)
        return;
    cl->wait = NULL;
    cx_timer_stop(cl->worker->loop, &wt->timer);
    wt->client = NULL;
    if (cx_ticket_cancel(wt->ticket))
        wait_unref(wt); /* the completion will never post */
    wait_unref(wt);     /* the client's */
}

void cx_authz_on_verdict(cx_worker_t *w, cx_post_t *p)
{
    cx_wait_t *wt = ((verdict_post_t *)p)->wait;
    cx_free(p);
    cx_client_t *cl = wt->client;
    if (cl && cl->wait == wt)
        resume(cl, cx_ticket_verdict(wt->ticket));
    wait_unref(wt); /* the completion's */
}

uint8_t *cx_authz_take_out(cx_client_t *cl, size_t *len)
{
    cx_client_rare_t *r = cl->rare;
    if (!r) {
        *len = 0;
        return NULL;
    }
    uint8_t *o = r->auth_out;
    *len = r->auth_out_len;
    r->auth_out = NULL;
    r->auth_out_len = 0;
    return o;
}
