/* sys.c: $SYS topics. Counters are summed over the workers' relaxed atomics; load figures
 * are exponentially decaying per-minute rates over 1, 5 and 15 minutes, as Mosquitto's. */
#include "sys.h"

#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "broker/registry.h"
#include "broker/router.h"
#include "util/alloc.h"
#include "util/log.h"
#include "util/time.h"

enum { L_MSG_RX, L_MSG_TX, L_BYTES_RX, L_BYTES_TX, L_PUB_RX, L_PUB_TX, L_PUB_DROP, L_CONN, L_N };

static const char *const load_names[L_N] = {
    "messages/received", "messages/sent", "bytes/received", "bytes/sent",
    "publish/received", "publish/sent", "publish/dropped", "connections",
};

/* State kept by worker 0 only (b->sys). */
struct cx_sys {
    uint64_t last[L_N];
    double avg[L_N][3];
    int64_t last_ms;
};

static void publish(cx_worker_t *w, const char *topic, const char *value)
{
    cx_str_t t = cx_str_from_cstr(topic);
    cx_msg_t *m = cx_msg_new(t, cx_str_from_cstr(value), NULL, 0, true, NULL,
                             (int64_t)cx_loop_now(w->loop));
    if (!m)
        return;
    cx_route_retain(w, m);
    cx_route_publish(w, m, NULL);
    cx_msg_unref(m);
}

static void publish_u64(cx_worker_t *w, const char *topic, uint64_t v)
{
    char buf[32];
    snprintf(buf, sizeof buf, "%llu", (unsigned long long)v);
    publish(w, topic, buf);
}

/* Sum of one counter over every worker; `off` is the counter's offset in cx_counters_t. */
static uint64_t sum_counter(const cx_broker_t *b, size_t off)
{
    uint64_t total = 0;
    for (size_t i = 0; i < b->nworkers; i++) {
        const atomic_uint_fast64_t *c =
            (const atomic_uint_fast64_t *)((const char *)&b->workers[i].ctr + off);
        total += atomic_load_explicit(c, memory_order_relaxed);
    }
    return total;
}

#define SUM(field) sum_counter(b, offsetof(cx_counters_t, field))

void cx_sys_init(cx_broker_t *b)
{
    /* Static, so retained before the first client can subscribe. */
    char v[96];
    snprintf(v, sizeof v, "culex version %s", b->version);
    cx_msg_t *m = cx_msg_new(CX_STR_LIT("$SYS/broker/version"), cx_str_from_cstr(v), NULL, 0,
                             true, NULL, 0);
    if (m) {
        cx_retain_set(b->retained, m->topic, m);
        cx_msg_unref(m);
    }
}

void cx_sys_free(cx_broker_t *b)
{
    cx_free_null(b->sys);
}

void cx_sys_tick(cx_worker_t *w)
{
    cx_broker_t *b = w->broker;
    int interval = w->limits.sys_interval;
    if (!b->sys) {
        b->sys = cx_calloc(1, sizeof *b->sys);
        if (!b->sys)
            return;
        b->sys->last_ms = (int64_t)cx_loop_now(w->loop);
    }
    if (interval <= 0 || w->seconds % (uint64_t)interval != 0)
        return;

    int64_t connected = 0, sessions = 0;
    for (size_t i = 0; i < b->nworkers; i++) {
        connected += atomic_load_explicit(&b->workers[i].ctr.clients_connected, memory_order_relaxed);
        sessions += atomic_load_explicit(&b->workers[i].ctr.sessions_total, memory_order_relaxed);
    }
    int max = atomic_load(&b->clients_maximum);
    if (connected > max)
        atomic_store(&b->clients_maximum, (int)connected), max = (int)connected;

    char buf[64];
    snprintf(buf, sizeof buf, "%lld seconds", (long long)(cx_time_wall_s() - b->start_wall));
    publish(w, "$SYS/broker/uptime", buf);
    int64_t disconnected = sessions - connected > 0 ? sessions - connected : 0;
    publish_u64(w, "$SYS/broker/clients/connected", (uint64_t)connected);
    publish_u64(w, "$SYS/broker/clients/active", (uint64_t)connected);
    publish_u64(w, "$SYS/broker/clients/disconnected", (uint64_t)disconnected);
    publish_u64(w, "$SYS/broker/clients/inactive", (uint64_t)disconnected);
    publish_u64(w, "$SYS/broker/clients/total", (uint64_t)sessions);
    publish_u64(w, "$SYS/broker/clients/maximum", (uint64_t)max);
    publish_u64(w, "$SYS/broker/clients/expired", SUM(sessions_expired));

    uint64_t now_vals[L_N] = {
        SUM(msgs_received), SUM(msgs_sent), SUM(bytes_received), SUM(bytes_sent),
        SUM(pub_received), SUM(pub_sent), SUM(msgs_dropped), SUM(connections),
    };
    publish_u64(w, "$SYS/broker/messages/received", now_vals[L_MSG_RX]);
    publish_u64(w, "$SYS/broker/messages/sent", now_vals[L_MSG_TX]);
    publish_u64(w, "$SYS/broker/bytes/received", now_vals[L_BYTES_RX]);
    publish_u64(w, "$SYS/broker/bytes/sent", now_vals[L_BYTES_TX]);
    publish_u64(w, "$SYS/broker/publish/messages/received", now_vals[L_PUB_RX]);
    publish_u64(w, "$SYS/broker/publish/messages/sent", now_vals[L_PUB_TX]);
    publish_u64(w, "$SYS/broker/publish/messages/dropped", now_vals[L_PUB_DROP]);
    publish_u64(w, "$SYS/broker/publish/bytes/received", SUM(pub_bytes_received));
    publish_u64(w, "$SYS/broker/publish/bytes/sent", SUM(pub_bytes_sent));
    publish_u64(w, "$SYS/broker/subscriptions/count", cx_subtree_count(b->subs));
    publish_u64(w, "$SYS/broker/shared_subscriptions/count", cx_subtree_shared_count(b->subs));
    publish_u64(w, "$SYS/broker/retained messages/count", cx_retain_count(b->retained));
    publish_u64(w, "$SYS/broker/heap/current", cx_alloc_current());
    publish_u64(w, "$SYS/broker/heap/maximum", cx_alloc_maximum());
    publish_u64(w, "$SYS/broker/log/dropped", cx_log_dropped());

    /* Load: per-minute rates, decayed over 1, 5 and 15 minutes. */
    int64_t now_ms = (int64_t)cx_loop_now(w->loop);
    double dt = (double)(now_ms - b->sys->last_ms) / 1000.0;
    if (dt <= 0)
        dt = interval;
    static const int windows[3] = {1, 5, 15};
    static const char *const wnames[3] = {"1min", "5min", "15min"};
    for (int k = 0; k < L_N; k++) {
        double rate = (double)(now_vals[k] - b->sys->last[k]) * 60.0 / dt;
        b->sys->last[k] = now_vals[k];
        for (int j = 0; j < 3; j++) {
            double f = exp(-dt / (60.0 * windows[j]));
            b->sys->avg[k][j] = b->sys->avg[k][j] * f + rate * (1.0 - f);
            char topic[96], val[32];
            snprintf(topic, sizeof topic, "$SYS/broker/load/%s/%s", load_names[k], wnames[j]);
            snprintf(val, sizeof val, "%.2f", b->sys->avg[k][j]);
            publish(w, topic, val);
        }
    }
    b->sys->last_ms = now_ms;
}
