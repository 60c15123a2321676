/* culex_bench_report.c: the summary, as text for people or as one JSON object for scripts.
 * Both print the same figures under the same names (culex_bench.1 explains each). */
#include <stdio.h>
#include <string.h>

#include "culex_bench.h"

/* Above this share of its threads' CPU the generator, not the broker, may be the limit. */
#define GENERATOR_BOUND 0.90

const char *cx_bench_scenario_name(cx_bench_scenario s)
{
    switch (s) {
    case CX_BENCH_FAN_IN:
        return "fan-in";
    case CX_BENCH_FAN_OUT:
        return "fan-out";
    case CX_BENCH_PAIRS:
        return "pairs";
    case CX_BENCH_CONNECTIONS:
        return "connections";
    }
    return "?";
}

const char *cx_bench_errkind_name(cx_bench_errkind k)
{
    static const char *const names[CX_BENCH_ERR_COUNT] = {
        [CX_BENCH_ERR_CONNECT] = "connect",
        [CX_BENCH_ERR_TIMEOUT] = "timeout",
        [CX_BENCH_ERR_TLS] = "tls",
        [CX_BENCH_ERR_CONNACK] = "connack_refused",
        [CX_BENCH_ERR_SUBACK] = "suback_refused",
        [CX_BENCH_ERR_CLOSED] = "closed_by_broker",
        [CX_BENCH_ERR_DISCONNECT] = "disconnect_by_broker",
        [CX_BENCH_ERR_PROTOCOL] = "protocol",
    };
    return (unsigned)k < CX_BENCH_ERR_COUNT ? names[k] : "?";
}

typedef struct figures {
    uint64_t attempted, connected, failed, errors;
    double connect_rate, sent_rate, recv_rate, cpu, cpu_share, thread_share;
    bool bound;
} figures_t;

static void derive(const cx_bench_config_t *cfg, const cx_bench_result_t *r, figures_t *f)
{
    memset(f, 0, sizeof *f);
    for (int i = 0; i < CX_BENCH_ROLES; i++) {
        f->attempted += r->attempted[i];
        f->connected += r->c.connected[i];
    }
    for (int e = 0; e < CX_BENCH_ERR_COUNT; e++)
        f->errors += r->c.errors[e];
    f->failed = f->errors - r->c.dropped;
    if (r->connect_s > 0)
        f->connect_rate = (double)f->connected / r->connect_s;
    if (r->run_s > 0)
        f->sent_rate = (double)r->c.sent / r->run_s;
    if (r->rx_s > 0)
        f->recv_rate = (double)r->c.received / r->rx_s;
    f->cpu = r->cpu_user + r->cpu_sys;
    if (r->cpu_wall > 0) {
        f->cpu_share = f->cpu / r->cpu_wall;
        f->thread_share = f->cpu_share / cfg->threads;
    }
    f->bound = f->thread_share >= GENERATOR_BOUND;
}

static const char *version_name(const cx_bench_config_t *cfg)
{
    return cfg->version == CX_MQTT_V5 ? "5" : "3.1.1";
}

static const char *drain_text(const char *end)
{
    if (!strcmp(end, "complete"))
        return "everything arrived";
    if (!strcmp(end, "quiet"))
        return "nothing more arrived";
    if (!strcmp(end, "limit"))
        return "cut while messages still arrived (lost may still be queued in the broker)";
    return "cut by a signal";
}

/* Microseconds with three significant-ish digits. */
static void put_us(uint64_t ns)
{
    double us = (double)ns / 1000.0;
    if (us >= 10000)
        printf("%.1f ms", us / 1000.0);
    else if (us >= 100)
        printf("%.0f us", us);
    else
        printf("%.1f us", us);
}

void cx_bench_report_text(const cx_bench_config_t *cfg, const cx_bench_result_t *r)
{
    figures_t f;
    derive(cfg, r, &f);
    const cx_bench_counters_t *c = &r->c;
    printf("culex_bench %s: MQTT %s, QoS %d, %zu-byte payload, ",
           cx_bench_scenario_name(cfg->scenario), version_name(cfg), cfg->qos, cfg->payload);
    switch (cfg->scenario) {
    case CX_BENCH_FAN_IN:
        printf("%u publisher%s -> %u subscriber%s", cfg->publishers,
               cfg->publishers == 1 ? "" : "s", cfg->subscribers, cfg->subscribers == 1 ? "" : "s");
        break;
    case CX_BENCH_FAN_OUT:
        printf("1 publisher -> %u subscriber%s", cfg->subscribers,
               cfg->subscribers == 1 ? "" : "s");
        break;
    case CX_BENCH_PAIRS:
        printf("%u pairs", cfg->publishers);
        break;
    case CX_BENCH_CONNECTIONS:
        printf("%u connections", cfg->connections);
        break;
    }
    printf(", %u thread%s, %s%s\n", cfg->threads, cfg->threads == 1 ? "" : "s",
           cfg->tls ? "TLS, " : "", cfg->rate > 0 ? "rate-limited" : "flat out");
    printf("  ended by     %s after %.2f s", r->ended_by, r->run_s);
    if (r->drain_end)
        printf("; drain %.2f s, %s", r->drain_s, drain_text(r->drain_end));
    printf("\n");
    printf("  connections  %llu attempted, %llu connected, %llu failed, %llu dropped; "
           "connect rate %.0f/s\n",
           (unsigned long long)f.attempted, (unsigned long long)f.connected,
           (unsigned long long)f.failed, (unsigned long long)c->dropped, f.connect_rate);
    if (cfg->scenario != CX_BENCH_CONNECTIONS) {
        printf("  messages     sent %llu, acknowledged %llu, expected %llu, received %llu\n",
               (unsigned long long)c->sent, (unsigned long long)c->acked,
               (unsigned long long)r->expected, (unsigned long long)c->received);
        printf("               lost %llu, duplicated %llu, out of order %llu, unexpected %llu"
               "%s",
               (unsigned long long)r->lost, (unsigned long long)c->duplicated,
               (unsigned long long)c->out_of_order, (unsigned long long)c->unexpected,
               cfg->qos ? "" : "\n");
        if (cfg->qos)
            printf(", unacknowledged %llu, refused %llu\n", (unsigned long long)r->unacked,
                   (unsigned long long)c->refused);
        printf("  throughput   sent %.0f msg/s, received %.0f msg/s\n", f.sent_rate, f.recv_rate);
        if (cfg->rate > 0 && f.sent_rate < cfg->rate * 0.95 && r->run_s > 0.5)
            printf("  note         the requested %.0f msg/s was not reached: the broker pushed "
                   "back (window, socket) or the generator is busy\n",
                   cfg->rate);
        printf("  latency      ");
        if (r->hist->count) {
            static const struct {
                const char *name;
                double q;
            } qs[] = {{"p50", 0.5}, {"p90", 0.9}, {"p99", 0.99}, {"p99.9", 0.999}};
            for (size_t i = 0; i < sizeof qs / sizeof qs[0]; i++) {
                printf("%s ", qs[i].name);
                put_us(cx_bench_hist_quantile(r->hist, qs[i].q));
                printf(", ");
            }
            printf("max ");
            put_us(r->hist->max);
            printf("\n");
        } else {
            printf("no messages received\n");
        }
        if (cfg->qos && r->granted_qos_min < (unsigned)cfg->qos && r->expected)
            printf("  note         the broker granted QoS %u to some subscribers\n",
                   r->granted_qos_min);
    }
    printf("  generator    CPU %.2f s (user %.2f, sys %.2f) over %.2f s %s: %.0f %% of %u "
           "thread%s%s\n",
           f.cpu, r->cpu_user, r->cpu_sys, r->cpu_wall,
           cfg->scenario == CX_BENCH_CONNECTIONS ? "of connecting" : "of run and drain",
           f.thread_share * 100, cfg->threads, cfg->threads == 1 ? "" : "s",
           f.bound ? " -- the generator may be the limit (try --threads)" : "");
    if (f.errors) {
        printf("  errors      ");
        for (int e = 0; e < CX_BENCH_ERR_COUNT; e++)
            if (c->errors[e])
                printf(" %s %llu", cx_bench_errkind_name((cx_bench_errkind)e),
                       (unsigned long long)c->errors[e]);
        printf("\n  first error  %s\n", c->first_error);
    }
}

static void json_str(const char *s)
{
    putchar('"');
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch == '"' || ch == '\\')
            printf("\\%c", ch);
        else if (ch < 0x20)
            printf("\\u%04x", ch);
        else
            putchar(ch);
    }
    putchar('"');
}

void cx_bench_report_json(const cx_bench_config_t *cfg, const cx_bench_result_t *r)
{
    figures_t f;
    derive(cfg, r, &f);
    const cx_bench_counters_t *c = &r->c;
    printf("{\"scenario\":\"%s\",\"mqtt\":\"%s\",\"qos\":%d,\"payload\":%zu,"
           "\"publishers\":%u,\"subscribers\":%u,\"connections_requested\":%u,"
           "\"threads\":%u,\"tls\":%s,\"rate\":%.3f,\"duration_s\":%.3f,\"count\":%llu,"
           "\"ended_by\":",
           cx_bench_scenario_name(cfg->scenario), version_name(cfg), cfg->qos, cfg->payload,
           cfg->scenario == CX_BENCH_CONNECTIONS ? 0 : cfg->publishers,
           cfg->scenario == CX_BENCH_CONNECTIONS ? 0 : cfg->subscribers, cfg->connections,
           cfg->threads, cfg->tls ? "true" : "false", cfg->rate, cfg->duration,
           (unsigned long long)cfg->count);
    json_str(r->ended_by);
    printf(",\"run_s\":%.6f,\"drain_s\":%.6f,\"drain_ended_by\":", r->run_s, r->drain_s);
    json_str(r->drain_end ? r->drain_end : "none");
    printf(",");
    printf("\"connections\":{\"attempted\":%llu,\"connected\":%llu,\"failed\":%llu,"
           "\"dropped\":%llu,\"connect_s\":%.6f,\"connect_rate\":%.1f,\"errors\":{",
           (unsigned long long)f.attempted, (unsigned long long)f.connected,
           (unsigned long long)f.failed, (unsigned long long)c->dropped, r->connect_s,
           f.connect_rate);
    for (int e = 0; e < CX_BENCH_ERR_COUNT; e++)
        printf("%s\"%s\":%llu", e ? "," : "", cx_bench_errkind_name((cx_bench_errkind)e),
               (unsigned long long)c->errors[e]);
    printf("},\"first_error\":");
    json_str(c->first_error);
    printf("},\"messages\":{\"sent\":%llu,\"acked\":%llu,\"refused\":%llu,\"unacked\":%llu,"
           "\"expected\":%llu,\"received\":%llu,\"lost\":%llu,\"duplicated\":%llu,"
           "\"out_of_order\":%llu,\"unexpected\":%llu,\"granted_qos_min\":%u},",
           (unsigned long long)c->sent, (unsigned long long)c->acked,
           (unsigned long long)c->refused, (unsigned long long)r->unacked,
           (unsigned long long)r->expected, (unsigned long long)c->received,
           (unsigned long long)r->lost, (unsigned long long)c->duplicated,
           (unsigned long long)c->out_of_order, (unsigned long long)c->unexpected,
           r->granted_qos_min);
    printf("\"rates\":{\"sent_per_s\":%.1f,\"received_per_s\":%.1f,\"rx_s\":%.6f},", f.sent_rate,
           f.recv_rate, r->rx_s);
    const cx_bench_hist_t *h = r->hist;
    printf("\"latency_us\":{\"count\":%llu,\"mean\":%.3f,\"p50\":%.3f,\"p90\":%.3f,"
           "\"p99\":%.3f,\"p999\":%.3f,\"max\":%.3f},",
           (unsigned long long)h->count, h->count ? h->sum / (double)h->count / 1000.0 : 0.0,
           (double)cx_bench_hist_quantile(h, 0.5) / 1000.0,
           (double)cx_bench_hist_quantile(h, 0.9) / 1000.0,
           (double)cx_bench_hist_quantile(h, 0.99) / 1000.0,
           (double)cx_bench_hist_quantile(h, 0.999) / 1000.0, (double)h->max / 1000.0);
    printf("\"bytes\":{\"in\":%llu,\"out\":%llu},", (unsigned long long)c->bytes_in,
           (unsigned long long)c->bytes_out);
    printf("\"cpu\":{\"user_s\":%.3f,\"sys_s\":%.3f,\"wall_s\":%.3f,\"share\":%.4f,"
           "\"thread_share\":%.4f,\"generator_bound\":%s}}\n",
           r->cpu_user, r->cpu_sys, r->cpu_wall, f.cpu_share, f.thread_share,
           f.bound ? "true" : "false");
}
