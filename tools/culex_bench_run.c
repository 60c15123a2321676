/* culex_bench_run.c: the phases of a run, driven from the main thread, and the sums at the
 * end.
 *
 * The main thread sleeps in sigtimedwait (so SIGINT and SIGTERM end the run cleanly, with a
 * report, and no signal handler or global flag is needed) and every 2 ms reads the threads'
 * progress atomics to decide whether the phase is over:
 *   SUBS   until every subscriber (and idle connection) is subscribed or has failed;
 *   PUBS   until every publisher is connected or has failed;
 *   RUN    until --duration, or every publisher has sent its share of --count, or every
 *          publisher (or every subscriber) is gone, or nothing moved for STALL_NS;
 *   DRAIN  until everything expected was received and acknowledged (or nothing more can
 *          arrive), or nothing arrived for --drain seconds, or DRAIN_LIMIT_NS (10 x --drain
 *          if longer) went by with messages still trickling in;
 *          nothing more can arrive;
 *   STOP   the threads send DISCONNECT, wait briefly for the broker to close, and exit.
 * Every phase is bounded, so a broker that dies or hangs ends the run with a report. */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "culex_bench.h"
#include "util/alloc.h"

#define TICK_NS 2000000L
/* With --count and no --duration, a run that makes no progress for this long is over. */
#define STALL_NS 10000000000ULL
/* The longest a drain may last while messages keep arriving, unless 10 x --drain is more. */
#define DRAIN_LIMIT_NS 30000000000ULL

int cx_bench_run(cx_bench_run_t *run, cx_bench_result_t *res);

typedef struct sums {
    uint64_t resolved[CX_BENCH_ROLES], ready[CX_BENCH_ROLES], alive[CX_BENCH_ROLES];
    uint64_t sent, acked, unique, expected, pubs_finished;
    bool all_exited;
} sums_t;

static void sum(const cx_bench_run_t *run, sums_t *s)
{
    memset(s, 0, sizeof *s);
    s->all_exited = true;
    for (unsigned i = 0; i < run->cfg->threads; i++) {
        cx_bench_thread_t *t = &run->threads[i];
        for (int r = 0; r < CX_BENCH_ROLES; r++) {
            s->resolved[r] += atomic_load_explicit(&t->p_resolved[r], memory_order_acquire);
            s->ready[r] += atomic_load_explicit(&t->p_ready[r], memory_order_acquire);
            s->alive[r] += atomic_load_explicit(&t->p_alive[r], memory_order_acquire);
        }
        s->pubs_finished += atomic_load_explicit(&t->p_pubs_finished, memory_order_acquire);
        s->sent += atomic_load_explicit(&t->p_sent, memory_order_relaxed);
        s->acked += atomic_load_explicit(&t->p_acked, memory_order_relaxed);
        s->unique += atomic_load_explicit(&t->p_unique, memory_order_relaxed);
        s->expected += atomic_load_explicit(&t->p_expected, memory_order_relaxed);
        s->all_exited = s->all_exited && atomic_load_explicit(&t->p_exited, memory_order_acquire);
    }
}

/* Sleeps one tick; returns true when SIGINT or SIGTERM arrived. */
static bool tick(const sigset_t *sigs)
{
    struct timespec ts = {0, TICK_NS};
    int sig = sigtimedwait(sigs, NULL, &ts);
    return sig == SIGINT || sig == SIGTERM;
}

static double cpu_s(const struct rusage *ru, bool user)
{
    const struct timeval *tv = user ? &ru->ru_utime : &ru->ru_stime;
    return (double)tv->tv_sec + (double)tv->tv_usec / 1e6;
}

static void progress(const cx_bench_config_t *cfg, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void progress(const cx_bench_config_t *cfg, const char *fmt, ...)
{
    if (cfg->quiet)
        return;
    va_list ap;
    va_start(ap, fmt);
    fputs("culex_bench: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

static void set_phase(cx_bench_run_t *run, cx_bench_phase p)
{
    atomic_store_explicit(&run->phase, (int)p, memory_order_release);
}

/* Tells each publisher how many subscribers are listening, so the threads can add up what
 * is expected as they send. Runs before PH_PUBS is published; the subscribers' `ready` flags
 * were written before their threads released p_resolved, which sum() acquired. */
static void count_receivers(cx_bench_run_t *run)
{
    const cx_bench_config_t *cfg = run->cfg;
    size_t ready_subs = 0;
    for (size_t k = 0; k < run->nconns[CX_BENCH_SUB]; k++)
        ready_subs += run->conns[CX_BENCH_SUB][k].sub->ready;
    for (size_t k = 0; k < run->nconns[CX_BENCH_PUB]; k++) {
        cx_bench_pub_t *p = run->conns[CX_BENCH_PUB][k].pub;
        if (cfg->scenario == CX_BENCH_PAIRS)
            p->receivers = run->conns[CX_BENCH_SUB][k].sub->ready;
        else
            p->receivers = (uint32_t)ready_subs;
    }
}

/* Waits until the roles of a connecting phase are all resolved. Returns false on a signal. */
static bool wait_resolved(cx_bench_run_t *run, const sigset_t *sigs, cx_bench_role a,
                          cx_bench_role b, sums_t *s)
{
    for (;;) {
        sum(run, s);
        if (s->resolved[a] >= run->nconns[a] && s->resolved[b] >= run->nconns[b])
            return true;
        if (tick(sigs))
            return false;
    }
}

static void totals(cx_bench_run_t *run, cx_bench_result_t *res)
{
    const cx_bench_config_t *cfg = run->cfg;
    cx_bench_counters_t *c = &res->c;
    res->granted_qos_min = 2;
    for (unsigned i = 0; i < cfg->threads; i++) {
        const cx_bench_counters_t *k = &run->threads[i].c;
        c->sent += k->sent;
        c->acked += k->acked;
        c->refused += k->refused;
        c->received += k->received;
        c->duplicated += k->duplicated;
        c->out_of_order += k->out_of_order;
        c->unexpected += k->unexpected;
        c->bytes_in += k->bytes_in;
        c->bytes_out += k->bytes_out;
        c->dropped += k->dropped;
        for (int e = 0; e < CX_BENCH_ERR_COUNT; e++)
            c->errors[e] += k->errors[e];
        for (int r = 0; r < CX_BENCH_ROLES; r++) {
            c->connected[r] += k->connected[r];
            if (k->conn_first_ns[r] &&
                (!c->conn_first_ns[r] || k->conn_first_ns[r] < c->conn_first_ns[r]))
                c->conn_first_ns[r] = k->conn_first_ns[r];
            if (k->conn_last_ns[r] > c->conn_last_ns[r])
                c->conn_last_ns[r] = k->conn_last_ns[r];
        }
        if (k->last_rx_ns > c->last_rx_ns)
            c->last_rx_ns = k->last_rx_ns;
        if (k->first_rx_ns && (!c->first_rx_ns || k->first_rx_ns < c->first_rx_ns))
            c->first_rx_ns = k->first_rx_ns;
        if (!c->first_error[0] && k->first_error[0])
            memcpy(c->first_error, k->first_error, sizeof c->first_error);
        cx_bench_hist_merge(res->hist, run->threads[i].hist);
    }
    for (int r = 0; r < CX_BENCH_ROLES; r++) {
        res->attempted[r] = 0;
        for (unsigned i = 0; i < cfg->threads; i++)
            res->attempted[r] += run->threads[i].next_connect[r];
        if (c->conn_last_ns[r] > c->conn_first_ns[r])
            res->connect_s += (double)(c->conn_last_ns[r] - c->conn_first_ns[r]) / 1e9;
    }
    /* Expected and lost, pair by pair: what each publisher sent, for every subscriber that
     * was subscribed before the publishers started. */
    for (size_t k = 0; k < run->nconns[CX_BENCH_SUB]; k++) {
        const cx_bench_sub_t *s = run->conns[CX_BENCH_SUB][k].sub;
        if (!s->ready)
            continue;
        if (s->granted < res->granted_qos_min)
            res->granted_qos_min = s->granted;
        for (uint32_t j = 0; j < s->pub_count; j++) {
            uint64_t sent = run->conns[CX_BENCH_PUB][s->pub_base + j].pub->sent;
            uint64_t got = s->seq[j].unique;
            res->expected += sent;
            if (got < sent)
                res->lost += sent - got;
        }
    }
    if (cfg->qos > 0)
        res->unacked = c->sent - c->acked;
}

int cx_bench_run(cx_bench_run_t *run, cx_bench_result_t *res)
{
    const cx_bench_config_t *cfg = run->cfg;
    res->hist = cx_calloc(1, sizeof *res->hist);
    if (!res->hist)
        return 2;
    /* Block the signals in every thread; the main thread takes them in sigtimedwait. */
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    set_phase(run, CX_BENCH_PH_SUBS);
    unsigned started = 0;
    for (unsigned i = 0; i < cfg->threads; i++) {
        cx_bench_thread_t *t = &run->threads[i];
        t->epfd = epoll_create1(EPOLL_CLOEXEC);
        if (t->epfd < 0 || pthread_create(&t->tid, NULL, cx_bench_thread_main, t) != 0) {
            fprintf(stderr, "culex_bench: cannot start thread %u: %s\n", i, strerror(errno));
            break;
        }
        started++;
    }
    sums_t s;
    bool interrupted = started < cfg->threads;
    const char *ended_by = interrupted ? "error" : NULL;
    uint64_t t0 = cx_bench_now_ns();
    struct rusage ru_t0, ru0, ru1;
    getrusage(RUSAGE_SELF, &ru_t0);
    ru0 = ru1 = ru_t0;
    uint64_t run_start = 0, cpu_end = 0;

    size_t nsub = run->nconns[CX_BENCH_SUB], npub = run->nconns[CX_BENCH_PUB];
    size_t nidle = run->nconns[CX_BENCH_IDLE];
    if (!interrupted && nsub + nidle > 0) {
        if (nidle)
            progress(cfg, "opening %zu connections", nidle);
        else
            progress(cfg, "connecting %zu subscribers", nsub);
        interrupted = !wait_resolved(run, &sigs, CX_BENCH_SUB, CX_BENCH_IDLE, &s);
        if (interrupted)
            ended_by = "signal";
        else if (nsub && s.ready[CX_BENCH_SUB] == 0)
            ended_by = "no subscriber";
        else if (nidle && s.ready[CX_BENCH_IDLE] == 0)
            ended_by = "no connection";
        else if (nsub)
            progress(cfg, "%llu of %zu subscribers subscribed",
                     (unsigned long long)s.ready[CX_BENCH_SUB], nsub);
    }
    if (!ended_by && npub > 0) {
        count_receivers(run);
        set_phase(run, CX_BENCH_PH_PUBS);
        progress(cfg, "connecting %zu publishers", npub);
        if (!wait_resolved(run, &sigs, CX_BENCH_PUB, CX_BENCH_PUB, &s))
            ended_by = "signal";
        else if (s.ready[CX_BENCH_PUB] == 0)
            ended_by = "no publisher";
    }
    if (!ended_by) {
        /* The run: publish, or hold the idle connections. */
        getrusage(RUSAGE_SELF, &ru0);
        run_start = cx_bench_now_ns();
        if (nidle) {
            ru1 = ru0; /* connecting is the work measured: t0 .. run_start */
            ru0 = ru_t0;
            progress(cfg, "holding %llu connections for %g s",
                     (unsigned long long)s.ready[CX_BENCH_IDLE], cfg->duration);
        } else if (cfg->duration > 0) {
            progress(cfg, "publishing for %g s%s", cfg->duration,
                     cfg->count ? " (or until --count is reached)" : "");
        } else {
            progress(cfg, "publishing %llu messages", (unsigned long long)cfg->count);
        }
        set_phase(run, CX_BENCH_PH_RUN);
        uint64_t last_moved = run_start, last_mark = 0;
        for (;;) {
            if (tick(&sigs)) {
                ended_by = "signal";
                break;
            }
            uint64_t now = cx_bench_now_ns();
            sum(run, &s);
            if (cfg->duration > 0 && now - run_start >= (uint64_t)(cfg->duration * 1e9)) {
                ended_by = "duration";
                break;
            }
            if (nidle) {
                if (s.alive[CX_BENCH_IDLE] == 0) {
                    ended_by = "connections lost";
                    break;
                }
                continue;
            }
            if (s.pubs_finished >= npub) {
                ended_by = s.alive[CX_BENCH_PUB] ? "count" : "publishers lost";
                break;
            }
            if (nsub && s.alive[CX_BENCH_SUB] == 0) {
                ended_by = "subscribers lost";
                break;
            }
            uint64_t mark = s.sent + s.acked + s.unique;
            if (mark != last_mark) {
                last_mark = mark;
                last_moved = now;
            } else if (cfg->duration <= 0 && now - last_moved > STALL_NS) {
                ended_by = "stalled";
                break;
            }
        }
        if (!nidle)
            getrusage(RUSAGE_SELF, &ru1);
        cpu_end = cx_bench_now_ns();
        res->run_s = (double)(cpu_end - run_start) / 1e9;
        if (npub && cfg->drain > 0) {
            /* Drain: no new messages; the CPU window grows while deliveries still arrive.
             * After a first SIGINT too, so that its figures are right; a second one ends
             * the drain. */
            set_phase(run, CX_BENCH_PH_DRAIN);
            uint64_t drain_start = cx_bench_now_ns(), last_arrival = drain_start;
            uint64_t quiet = (uint64_t)(cfg->drain * 1e9);
            uint64_t limit = quiet * 10 > DRAIN_LIMIT_NS ? quiet * 10 : DRAIN_LIMIT_NS;
            uint64_t drain_mark = s.acked + s.unique;
            res->drain_end = "quiet";
            for (;;) {
                if (tick(&sigs)) {
                    res->drain_end = "signal";
                    break;
                }
                uint64_t now = cx_bench_now_ns();
                sum(run, &s);
                uint64_t mark = s.acked + s.unique;
                if (mark != drain_mark) {
                    drain_mark = mark;
                    last_arrival = now;
                    getrusage(RUSAGE_SELF, &ru1);
                    cpu_end = now;
                }
                bool received_all =
                    nsub == 0 || s.alive[CX_BENCH_SUB] == 0 || s.unique >= s.expected;
                bool acked_all = cfg->qos == 0 || s.alive[CX_BENCH_PUB] == 0 || s.acked >= s.sent;
                if (received_all && acked_all) {
                    res->drain_end = "complete";
                    break;
                }
                if (now - last_arrival >= quiet)
                    break;
                if (now - drain_start >= limit) {
                    res->drain_end = "limit";
                    break;
                }
            }
            res->drain_s = (double)(cx_bench_now_ns() - drain_start) / 1e9;
        }
    }
    set_phase(run, CX_BENCH_PH_STOP);
    for (unsigned i = 0; i < started; i++)
        pthread_join(run->threads[i].tid, NULL);
    for (unsigned i = 0; i < cfg->threads; i++)
        if (run->threads[i].epfd >= 0)
            close(run->threads[i].epfd);
    if (!run_start) { /* never got to run: account the connecting time */
        getrusage(RUSAGE_SELF, &ru1);
        run_start = t0;
        cpu_end = cx_bench_now_ns();
    }
    res->cpu_user = cpu_s(&ru1, true) - cpu_s(&ru0, true);
    res->cpu_sys = cpu_s(&ru1, false) - cpu_s(&ru0, false);
    if (nidle && run_start != t0) {
        /* Connections: CPU of the whole connect phase against its wall time. */
        res->cpu_wall = (double)(run_start - t0) / 1e9;
        res->run_s = (double)(cpu_end - run_start) / 1e9;
    } else {
        res->cpu_wall = (double)(cpu_end - run_start) / 1e9;
    }
    res->ended_by = ended_by ? ended_by : "error";
    totals(run, res);
    if (res->c.last_rx_ns > run_start)
        res->rx_s = (double)(res->c.last_rx_ns - run_start) / 1e9;

    uint64_t connected = 0, errors = 0;
    for (int r = 0; r < CX_BENCH_ROLES; r++)
        connected += res->c.connected[r];
    for (int e = 0; e < CX_BENCH_ERR_COUNT; e++)
        errors += res->c.errors[e];
    if (connected == 0)
        return 2;
    if (errors || !strcmp(res->ended_by, "stalled") || !strcmp(res->ended_by, "error") ||
        strstr(res->ended_by, "lost") || !strncmp(res->ended_by, "no ", 3))
        return 1;
    return 0;
}
