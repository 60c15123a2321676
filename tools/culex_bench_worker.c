/* culex_bench_worker.c: one generator thread's event loop.
 *
 * A turn: wait in epoll (with a timeout set by the next rate token or connect token), handle
 * every ready connection (reads until the socket is empty, every whole packet handled, acks
 * appended to output), write the subscribers' acks, start the connections the connect rate
 * allows, add the messages the message rate (or, flat out, the sockets) allow, then write
 * each publisher with pending output. Every connection is written at most once a turn. Then
 * publish this thread's progress for the main thread.
 *
 * Rates are token buckets per thread: the thread's share of the total rate is its share of
 * the publishers (or connections), and the tokens of a turn are spread round-robin over its
 * publishers, one message each per pass, so every publisher gets the same rate. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "culex_bench.h"
#include "util/alloc.h"

/* Handshakes (TCP + CONNACK + SUBACK) one thread keeps in progress at once. Above a few
 * hundred, a broker's accept backlog overflows and connects stall in SYN retransmits for a
 * second or more, which measures the kernel rather than the broker. */
#define MAX_CONNECTING 256
#define IDLE_WAIT_NS 5000000u      /* longest sleep: how soon a phase change is seen */
#define PERIODIC_NS 100000000u     /* timeouts and keepalive scan */
#define STOP_LINGER_NS 1000000000u /* after DISCONNECT, wait this long for the broker's close */
#define MAX_EVENTS 512

void cx_bench_thread_mark_dirty(cx_bench_thread_t *t, cx_bench_conn_t *c)
{
    if (c->dirty)
        return;
    c->dirty = true;
    t->dirty[t->ndirty++] = c;
}

static void flush_all(cx_bench_thread_t *t, uint64_t now)
{
    /* A flush can fail the connection, which never adds to the list: iterate by index. */
    for (size_t i = 0; i < t->ndirty; i++)
        cx_bench_conn_flush(t->dirty[i], now);
    t->ndirty = 0;
}

/* Writes what the events of this turn queued on connections that do not publish
 * (subscribers' acks, PINGREQs), before the publishing step: a subscriber's PUBACK must not
 * wait behind a turn that writes megabytes for the publishers, or the broker's window
 * towards it (20 messages for Mosquitto) closes once per turn and the generator, not the
 * broker, sets the delivered rate. Publishers keep their single write at the end of the
 * turn, with their PUBRELs in it. */
static void flush_receivers(cx_bench_thread_t *t, uint64_t now)
{
    size_t keep = 0;
    for (size_t i = 0; i < t->ndirty; i++) {
        cx_bench_conn_t *c = t->dirty[i];
        if (c->role == CX_BENCH_PUB)
            t->dirty[keep++] = c;
        else
            cx_bench_conn_flush(c, now);
    }
    t->ndirty = keep;
}

/* Roles whose connections are started in this phase. */
static bool role_connects(cx_bench_role r, int phase)
{
    if (r == CX_BENCH_PUB)
        return phase == CX_BENCH_PH_PUBS;
    return phase == CX_BENCH_PH_SUBS;
}

/* Starts what the connect bucket allows; returns ns until the next start is due
 * (UINT64_MAX: nothing left to start in this phase). */
static uint64_t start_connects(cx_bench_thread_t *t, int phase, uint64_t now, double dt)
{
    bool pending = false;
    for (int r = 0; r < CX_BENCH_ROLES; r++)
        if (role_connects(r, phase) && t->next_connect[r] < t->nconns[r])
            pending = true;
    if (!pending)
        return UINT64_MAX;
    if (t->connect_rate > 0) {
        t->connect_tokens += dt * t->connect_rate;
        double burst = 1.0 + t->connect_rate * 0.01;
        if (t->connect_tokens > burst)
            t->connect_tokens = burst;
    }
    for (int r = 0; r < CX_BENCH_ROLES; r++) {
        if (!role_connects(r, phase))
            continue;
        while (t->next_connect[r] < t->nconns[r] && t->connecting < MAX_CONNECTING) {
            if (t->connect_rate > 0) {
                if (t->connect_tokens < 1.0)
                    break;
                t->connect_tokens -= 1.0;
            }
            cx_bench_conn_t *c = t->conns[r][t->next_connect[r]++];
            cx_bench_conn_start(c, now);
        }
    }
    if (t->connecting >= MAX_CONNECTING)
        return IDLE_WAIT_NS; /* a CONNACK will wake us */
    if (t->connect_rate <= 0)
        return 0;
    return (uint64_t)((1.0 - t->connect_tokens) / t->connect_rate * 1e9) + 1;
}

/* Adds messages; returns ns until it wants to run again (UINT64_MAX: waits for events). */
static uint64_t publish(cx_bench_thread_t *t, uint64_t now, double dt)
{
    size_t n = t->nconns[CX_BENCH_PUB];
    cx_bench_conn_t **pubs = t->conns[CX_BENCH_PUB];
    if (n == 0)
        return UINT64_MAX;
    if (t->msg_rate <= 0) {
        /* Flat out: each publisher fills its output up to the high-water mark, its window
         * or its quota; whether to come straight back is decided after the flush. */
        for (size_t i = 0; i < n; i++)
            while (cx_bench_client_publish(pubs[i], now))
                ;
        return UINT64_MAX;
    }
    t->msg_tokens += dt * t->msg_rate;
    if (t->msg_tokens > t->msg_burst)
        t->msg_tokens = t->msg_burst;
    size_t misses = 0;
    while (t->msg_tokens >= 1.0 && misses < n) {
        cx_bench_conn_t *c = pubs[t->rr];
        t->rr = (t->rr + 1) % n;
        if (cx_bench_client_publish(c, now)) {
            t->msg_tokens -= 1.0;
            misses = 0;
        } else {
            misses++;
        }
    }
    if (misses >= n)
        return UINT64_MAX; /* every publisher is waiting on its socket or its window */
    return (uint64_t)((1.0 - t->msg_tokens) / t->msg_rate * 1e9) + 1;
}

static void periodic(cx_bench_thread_t *t, uint64_t now)
{
    for (int r = 0; r < CX_BENCH_ROLES; r++) {
        for (size_t i = 0; i < t->nconns[r]; i++) {
            cx_bench_conn_t *c = t->conns[r][i];
            switch (c->state) {
            case CX_BENCH_ST_TCP:
            case CX_BENCH_ST_TLS:
            case CX_BENCH_ST_CONNACK:
            case CX_BENCH_ST_SUBACK:
                if (now > c->deadline_ns)
                    cx_bench_conn_fail(c, CX_BENCH_ERR_TIMEOUT, "no %s within %.1f s",
                                       c->state == CX_BENCH_ST_TCP       ? "TCP connection"
                                       : c->state == CX_BENCH_ST_TLS     ? "TLS handshake"
                                       : c->state == CX_BENCH_ST_CONNACK ? "CONNACK"
                                                                         : "SUBACK",
                                       t->run->cfg->connect_timeout);
                break;
            case CX_BENCH_ST_READY:
                cx_bench_client_ping(c, now);
                break;
            default:
                break;
            }
        }
    }
}

static void report_progress(cx_bench_thread_t *t)
{
    for (int r = 0; r < CX_BENCH_ROLES; r++) {
        atomic_store_explicit(&t->p_ready[r], t->ready[r], memory_order_release);
        atomic_store_explicit(&t->p_alive[r], t->alive[r], memory_order_release);
        /* Last: main reads it first, then the state it covers (sub->ready). */
        atomic_store_explicit(&t->p_resolved[r], t->resolved[r], memory_order_release);
    }
    atomic_store_explicit(&t->p_sent, t->c.sent, memory_order_relaxed);
    atomic_store_explicit(&t->p_acked, t->c.acked, memory_order_relaxed);
    atomic_store_explicit(&t->p_unique, t->unique, memory_order_relaxed);
    atomic_store_explicit(&t->p_expected, t->expected, memory_order_relaxed);
    atomic_store_explicit(&t->p_pubs_finished, t->pubs_finished, memory_order_release);
}

static bool any_can_publish(const cx_bench_thread_t *t)
{
    for (size_t i = 0; i < t->nconns[CX_BENCH_PUB]; i++)
        if (cx_bench_client_can_publish(t->conns[CX_BENCH_PUB][i]))
            return true;
    return false;
}

static bool any_open(const cx_bench_thread_t *t)
{
    for (int r = 0; r < CX_BENCH_ROLES; r++)
        for (size_t i = 0; i < t->nconns[r]; i++)
            if (t->conns[r][i]->state != CX_BENCH_ST_DEAD &&
                t->conns[r][i]->state != CX_BENCH_ST_IDLE)
                return true;
    return false;
}

static int wait_events(cx_bench_thread_t *t, struct epoll_event *ev, uint64_t timeout_ns)
{
    if (!t->no_pwait2) {
        struct timespec ts = {(time_t)(timeout_ns / 1000000000u), (long)(timeout_ns % 1000000000u)};
        int n = epoll_pwait2(t->epfd, ev, MAX_EVENTS, &ts, NULL);
        if (n >= 0 || errno != ENOSYS)
            return n;
        t->no_pwait2 = true;
    }
    /* Rounded up, so a rate-limited loop sleeps a little long rather than spinning. */
    int ms = (int)((timeout_ns + 999999u) / 1000000u);
    return epoll_wait(t->epfd, ev, MAX_EVENTS, ms);
}

void *cx_bench_thread_main(void *arg)
{
    cx_bench_thread_t *t = arg;
    struct epoll_event ev[MAX_EVENTS];
    bool stopping = false;
    uint64_t stop_deadline = 0;
    t->last_ns = cx_bench_now_ns();
    t->last_periodic_ns = t->last_ns;
    for (;;) {
        int phase = atomic_load_explicit(&t->run->phase, memory_order_acquire);
        uint64_t now = cx_bench_now_ns();
        double dt = (double)(now - t->last_ns) / 1e9;
        t->last_ns = now;
        if (phase == CX_BENCH_PH_STOP && !stopping) {
            stopping = true;
            stop_deadline = now + STOP_LINGER_NS;
            for (int r = 0; r < CX_BENCH_ROLES; r++)
                for (size_t i = 0; i < t->nconns[r]; i++)
                    cx_bench_client_disconnect(t->conns[r][i], now);
        }
        uint64_t wait = IDLE_WAIT_NS;
        if (!stopping) {
            uint64_t w = start_connects(t, phase, now, dt);
            if (w < wait)
                wait = w;
            if (phase == CX_BENCH_PH_RUN) {
                w = publish(t, now, dt);
                if (w < wait)
                    wait = w;
            }
        }
        flush_all(t, now);
        if (!stopping && phase == CX_BENCH_PH_RUN && t->msg_rate <= 0 && wait > 0 &&
            any_can_publish(t))
            wait = 0; /* a socket took everything: more right away, no sleep */
        if (now - t->last_periodic_ns >= PERIODIC_NS) {
            t->last_periodic_ns = now;
            if (!stopping)
                periodic(t, now);
            flush_all(t, now);
        }
        report_progress(t);
        if (stopping && (!any_open(t) || now > stop_deadline))
            break;
        int n = wait_events(t, ev, wait);
        if (n < 0 && errno != EINTR) {
            fprintf(stderr, "culex_bench: epoll: %s\n", strerror(errno));
            break;
        }
        now = cx_bench_now_ns();
        for (int i = 0; i < n; i++)
            cx_bench_conn_on_event(ev[i].data.ptr, ev[i].events, now);
        flush_receivers(t, now);
    }
    for (int r = 0; r < CX_BENCH_ROLES; r++)
        for (size_t i = 0; i < t->nconns[r]; i++)
            cx_bench_conn_close(t->conns[r][i]);
    report_progress(t);
    atomic_store_explicit(&t->p_exited, true, memory_order_release);
    return NULL;
}
