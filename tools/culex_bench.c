/* culex_bench — the MQTT load generator shipped with culex: the command line, the set-up of
 * connections and threads, and the exit status. The phases of a run are driven by
 * culex_bench_run.c, the connections by culex_bench_conn.c on the threads of
 * culex_bench_worker.c; culex_bench.1 is the manual.
 *
 * Exit status: 0 when the run completed without a connection error, 1 when connections
 * failed or were lost (the summary says which), 2 for a usage error or when no connection
 * succeeded at all. Lost or duplicated messages are reported, not turned into a status:
 * at QoS 0 losses are legitimate, and scripts read them from --json. */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <math.h>
#include <netdb.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "culex_bench.h"
#include "util/alloc.h"
#include "util/err.h"

#ifndef CULEX_VERSION
#define CULEX_VERSION "dev"
#endif

int cx_bench_run(cx_bench_run_t *run, cx_bench_result_t *res);

static void usage(FILE *out)
{
    fprintf(
        out,
        "culex_bench %s: an MQTT load generator (MQTT 3.1.1 and 5.0, QoS 0/1/2, TLS).\n"
        "\n"
        "Usage: culex_bench SCENARIO [options]\n"
        "\n"
        "Scenarios:\n"
        "  fan-in        P publishers -> S subscribers on one topic (default 10 -> 1)\n"
        "  fan-out       1 publisher -> S subscribers on one topic (default 1 -> 10)\n"
        "  pairs         N independent publisher/subscriber pairs, one topic each (default 10)\n"
        "  connections   open C idle connections, hold them for --duration (default 1000)\n"
        "\n"
        "Broker:\n"
        "  -h, --host HOST          broker address (default 127.0.0.1)\n"
        "  -p, --port PORT          broker port (default 1883, 8883 with --tls)\n"
        "  -V, --mqtt-version V     3.1.1 (default) or 5\n"
        "  -u, --username NAME      username in every CONNECT\n"
        "  -P, --password PASS      password in every CONNECT\n"
        "      --tls                connect with TLS (OpenSSL)\n"
        "      --cafile FILE        CA certificates to verify the broker (default: system)\n"
        "      --cert FILE          client certificate (PEM), with --key\n"
        "      --key FILE           client private key (PEM)\n"
        "      --insecure           do not verify the broker's certificate or name\n"
        "\n"
        "Load:\n"
        "      --publishers P       fan-in publishers\n"
        "      --subscribers S      fan-in and fan-out subscribers\n"
        "      --pairs N            pairs\n"
        "      --connections C      idle connections\n"
        "  -q, --qos Q              0 (default), 1 or 2, for PUBLISH and SUBSCRIBE\n"
        "      --payload BYTES      payload size, at least %u (default 64)\n"
        "      --rate MSGS          total messages/s over all publishers (default: flat out)\n"
        "      --duration S         publish (or hold connections) for S seconds\n"
        "      --count N            publish N messages in total; without --duration, the run\n"
        "                           ends when they are sent (default: --duration 10)\n"
        "      --drain S            after the run, wait for what is still on its way until\n"
        "                           nothing arrived for S s (default 2)\n"
        "      --inflight N         unacknowledged messages per publisher at QoS 1/2\n"
        "                           (default 100; never above the broker's Receive Maximum)\n"
        "      --threads N          generator threads, each with its own epoll loop (default 1)\n"
        "      --connect-rate R     new connections/s over all threads (default: as fast as\n"
        "                           the broker accepts, %d handshakes in flight per thread)\n"
        "      --connect-timeout S  limit for each TCP/TLS connect, CONNACK and SUBACK (default "
        "10)\n"
        "      --keepalive S        MQTT keepalive (default 60; PINGREQ sent at half of it)\n"
        "      --topic PREFIX       topic prefix (default culex-bench)\n"
        "      --client-prefix STR  client identifier prefix (default cxb)\n"
        "      --source-addresses N bind connections round-robin to 127.0.0.1 .. 127.0.0.N,\n"
        "                           ports chosen by culex_bench (automatic for a loopback\n"
        "                           broker from 2048 connections; 0 never binds)\n"
        "\n"
        "Output:\n"
        "      --json               print the results as one JSON object\n"
        "      --quiet              no progress lines on stderr\n"
        "      --help               this text\n"
        "      --version            the version\n"
        "\n"
        "Examples:\n"
        "  culex_bench fan-in --publishers 100 --subscribers 1 --qos 0 --duration 10\n"
        "  culex_bench fan-out --subscribers 1000 --rate 1000 --duration 10\n"
        "  culex_bench pairs --pairs 100 --qos 1 --count 1000000 --json\n"
        "  culex_bench connections --connections 19000 --connect-rate 5000 --duration 30\n"
        "\n"
        "See culex_bench(1) for what every figure means.\n",
        CULEX_VERSION, CX_BENCH_HDR_LEN, 256);
}

static _Noreturn void die_usage(const char *fmt, const char *arg)
{
    fprintf(stderr, "culex_bench: ");
    fprintf(stderr, fmt, arg);
    fprintf(stderr, "\nTry 'culex_bench --help'.\n");
    exit(2);
}

static uint64_t parse_u64(const char *opt, const char *s, uint64_t min, uint64_t max)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || end == s || *end || s[0] == '-' || v < min || v > max) {
        char msg[160];
        snprintf(msg, sizeof msg, "%s: '%%s' is not a whole number in %llu..%llu", opt,
                 (unsigned long long)min, (unsigned long long)max);
        die_usage(msg, s);
    }
    return v;
}

static double parse_double(const char *opt, const char *s, double min)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end || !isfinite(v) || v < min) {
        char msg[160];
        snprintf(msg, sizeof msg, "%s: '%%s' is not a number >= %g", opt, min);
        die_usage(msg, s);
    }
    return v;
}

static cx_mqtt_version parse_version(const char *s)
{
    if (!strcmp(s, "3.1.1") || !strcmp(s, "311") || !strcmp(s, "4") || !strcmp(s, "mqttv311"))
        return CX_MQTT_V311;
    if (!strcmp(s, "5") || !strcmp(s, "5.0") || !strcmp(s, "mqttv5"))
        return CX_MQTT_V5;
    die_usage("--mqtt-version: '%s' is not 3.1.1 or 5", s);
}

static bool parse_scenario(const char *s, cx_bench_scenario *out)
{
    static const struct {
        const char *name;
        cx_bench_scenario s;
    } names[] = {{"fan-in", CX_BENCH_FAN_IN},
                 {"fan-out", CX_BENCH_FAN_OUT},
                 {"pairs", CX_BENCH_PAIRS},
                 {"connections", CX_BENCH_CONNECTIONS}};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        if (!strcmp(s, names[i].name)) {
            *out = names[i].s;
            return true;
        }
    }
    return false;
}

enum {
    OPT_PUBLISHERS = 256,
    OPT_SUBSCRIBERS,
    OPT_PAIRS,
    OPT_CONNECTIONS,
    OPT_PAYLOAD,
    OPT_RATE,
    OPT_DURATION,
    OPT_COUNT,
    OPT_DRAIN,
    OPT_INFLIGHT,
    OPT_THREADS,
    OPT_CONNECT_RATE,
    OPT_CONNECT_TIMEOUT,
    OPT_KEEPALIVE,
    OPT_TOPIC,
    OPT_CLIENT_PREFIX,
    OPT_SOURCES,
    OPT_TLS,
    OPT_CAFILE,
    OPT_CERT,
    OPT_KEY,
    OPT_INSECURE,
    OPT_JSON,
    OPT_QUIET,
    OPT_HELP,
    OPT_VERSION,
    OPT_SCENARIO,
};

static const struct option long_opts[] = {
    {"host", required_argument, NULL, 'h'},
    {"port", required_argument, NULL, 'p'},
    {"mqtt-version", required_argument, NULL, 'V'},
    {"qos", required_argument, NULL, 'q'},
    {"username", required_argument, NULL, 'u'},
    {"password", required_argument, NULL, 'P'},
    {"scenario", required_argument, NULL, OPT_SCENARIO},
    {"publishers", required_argument, NULL, OPT_PUBLISHERS},
    {"subscribers", required_argument, NULL, OPT_SUBSCRIBERS},
    {"pairs", required_argument, NULL, OPT_PAIRS},
    {"connections", required_argument, NULL, OPT_CONNECTIONS},
    {"payload", required_argument, NULL, OPT_PAYLOAD},
    {"rate", required_argument, NULL, OPT_RATE},
    {"duration", required_argument, NULL, OPT_DURATION},
    {"count", required_argument, NULL, OPT_COUNT},
    {"drain", required_argument, NULL, OPT_DRAIN},
    {"inflight", required_argument, NULL, OPT_INFLIGHT},
    {"threads", required_argument, NULL, OPT_THREADS},
    {"connect-rate", required_argument, NULL, OPT_CONNECT_RATE},
    {"connect-timeout", required_argument, NULL, OPT_CONNECT_TIMEOUT},
    {"keepalive", required_argument, NULL, OPT_KEEPALIVE},
    {"topic", required_argument, NULL, OPT_TOPIC},
    {"client-prefix", required_argument, NULL, OPT_CLIENT_PREFIX},
    {"source-addresses", required_argument, NULL, OPT_SOURCES},
    {"tls", no_argument, NULL, OPT_TLS},
    {"cafile", required_argument, NULL, OPT_CAFILE},
    {"cert", required_argument, NULL, OPT_CERT},
    {"key", required_argument, NULL, OPT_KEY},
    {"insecure", no_argument, NULL, OPT_INSECURE},
    {"json", no_argument, NULL, OPT_JSON},
    {"quiet", no_argument, NULL, OPT_QUIET},
    {"help", no_argument, NULL, OPT_HELP},
    {"version", no_argument, NULL, OPT_VERSION},
    {NULL, 0, NULL, 0},
};

/* Fills cfg from argv; exits on a usage error. */
static void parse_args(int argc, char **argv, cx_bench_config_t *cfg)
{
    long publishers = -1, subscribers = -1, pairs = -1, connections = -1, sources = -1;
    long port = -1;
    bool have_scenario = false;
    memset(cfg, 0, sizeof *cfg);
    cfg->host = "127.0.0.1";
    cfg->version = CX_MQTT_V311;
    cfg->payload = 64;
    cfg->drain = 2;
    cfg->threads = 1;
    cfg->inflight = 100;
    cfg->connect_timeout = 10;
    cfg->keepalive = 60;
    cfg->topic = "culex-bench";
    cfg->client_prefix = "cxb";
    double duration = -1;
    int ch;
    /* getopt_long permutes argv, so the scenario may come before or after the options. */
    while ((ch = getopt_long(argc, argv, "h:p:V:q:u:P:", long_opts, NULL)) != -1) {
        switch (ch) {
        case 'h':
            cfg->host = optarg;
            break;
        case 'p':
            port = (long)parse_u64("--port", optarg, 1, 65535);
            break;
        case 'V':
            cfg->version = parse_version(optarg);
            break;
        case 'q':
            cfg->qos = (int)parse_u64("--qos", optarg, 0, 2);
            break;
        case 'u':
            cfg->username = optarg;
            break;
        case 'P':
            cfg->password = optarg;
            break;
        case OPT_SCENARIO:
            if (!parse_scenario(optarg, &cfg->scenario))
                die_usage("unknown scenario '%s'", optarg);
            have_scenario = true;
            break;
        case OPT_PUBLISHERS:
            publishers = (long)parse_u64("--publishers", optarg, 1, 1000000);
            break;
        case OPT_SUBSCRIBERS:
            subscribers = (long)parse_u64("--subscribers", optarg, 0, 1000000);
            break;
        case OPT_PAIRS:
            pairs = (long)parse_u64("--pairs", optarg, 1, 1000000);
            break;
        case OPT_CONNECTIONS:
            connections = (long)parse_u64("--connections", optarg, 1, 10000000);
            break;
        case OPT_PAYLOAD:
            cfg->payload = parse_u64("--payload", optarg, CX_BENCH_HDR_LEN, 256u << 20);
            break;
        case OPT_RATE:
            cfg->rate = parse_double("--rate", optarg, 0);
            break;
        case OPT_DURATION:
            duration = parse_double("--duration", optarg, 0);
            break;
        case OPT_COUNT:
            cfg->count = parse_u64("--count", optarg, 1, UINT64_MAX / 2);
            break;
        case OPT_DRAIN:
            cfg->drain = parse_double("--drain", optarg, 0);
            break;
        case OPT_INFLIGHT:
            cfg->inflight = (unsigned)parse_u64("--inflight", optarg, 1, 65535);
            break;
        case OPT_THREADS:
            cfg->threads = (unsigned)parse_u64("--threads", optarg, 1, 1024);
            break;
        case OPT_CONNECT_RATE:
            cfg->connect_rate = parse_double("--connect-rate", optarg, 0);
            break;
        case OPT_CONNECT_TIMEOUT:
            cfg->connect_timeout = parse_double("--connect-timeout", optarg, 0.001);
            break;
        case OPT_KEEPALIVE:
            cfg->keepalive = (unsigned)parse_u64("--keepalive", optarg, 0, 65535);
            break;
        case OPT_TOPIC:
            cfg->topic = optarg;
            break;
        case OPT_CLIENT_PREFIX:
            cfg->client_prefix = optarg;
            break;
        case OPT_SOURCES:
            sources = (long)parse_u64("--source-addresses", optarg, 0, 254);
            break;
        case OPT_TLS:
            cfg->tls = true;
            break;
        case OPT_CAFILE:
            cfg->cafile = optarg;
            break;
        case OPT_CERT:
            cfg->cert = optarg;
            break;
        case OPT_KEY:
            cfg->key = optarg;
            break;
        case OPT_INSECURE:
            cfg->insecure = true;
            break;
        case OPT_JSON:
            cfg->json = true;
            break;
        case OPT_QUIET:
            cfg->quiet = true;
            break;
        case OPT_HELP:
            usage(stdout);
            exit(0);
        case OPT_VERSION:
            printf("culex_bench %s\n", CULEX_VERSION);
            exit(0);
        default:
            fprintf(stderr, "Try 'culex_bench --help'.\n");
            exit(2);
        }
    }
    for (int i = optind; i < argc; i++) {
        if (have_scenario)
            die_usage("unexpected argument '%s'", argv[i]);
        if (!parse_scenario(argv[i], &cfg->scenario))
            die_usage("unknown scenario '%s' (fan-in, fan-out, pairs, connections)", argv[i]);
        have_scenario = true;
    }
    if (!have_scenario)
        die_usage("%s", "no scenario given (fan-in, fan-out, pairs, connections)");
    cfg->port = (uint16_t)(port > 0 ? port : cfg->tls ? 8883 : 1883);
    if ((cfg->cert != NULL) != (cfg->key != NULL) && !cfg->cert)
        die_usage("%s", "--key needs --cert");
    if ((cfg->cafile || cfg->cert || cfg->insecure) && !cfg->tls)
        die_usage("%s", "--cafile, --cert, --key and --insecure need --tls");
    switch (cfg->scenario) {
    case CX_BENCH_FAN_IN:
        cfg->publishers = publishers > 0 ? (unsigned)publishers : 10;
        cfg->subscribers = subscribers >= 0 ? (unsigned)subscribers : 1;
        if (pairs >= 0 || connections >= 0)
            die_usage("%s", "fan-in takes --publishers and --subscribers");
        break;
    case CX_BENCH_FAN_OUT:
        if (publishers > 1)
            die_usage("%s", "fan-out has one publisher (use fan-in for more)");
        if (pairs >= 0 || connections >= 0)
            die_usage("%s", "fan-out takes --subscribers");
        cfg->publishers = 1;
        cfg->subscribers = subscribers >= 0 ? (unsigned)subscribers : 10;
        break;
    case CX_BENCH_PAIRS:
        if (publishers >= 0 || subscribers >= 0 || connections >= 0)
            die_usage("%s", "pairs takes --pairs");
        cfg->publishers = cfg->subscribers = pairs > 0 ? (unsigned)pairs : 10;
        break;
    case CX_BENCH_CONNECTIONS:
        if (publishers >= 0 || subscribers >= 0 || pairs >= 0)
            die_usage("%s", "connections takes --connections");
        cfg->connections = connections > 0 ? (unsigned)connections : 1000;
        if (cfg->count)
            die_usage("%s", "connections holds idle connections: use --duration, not --count");
        break;
    }
    if (duration >= 0)
        cfg->duration = duration;
    else if (!cfg->count)
        cfg->duration = 10;
    if (cfg->duration <= 0 && !cfg->count && cfg->scenario != CX_BENCH_CONNECTIONS)
        die_usage("%s", "--duration 0 needs --count");
    cfg->source_addrs = sources >= 0 ? (unsigned)sources : UINT_MAX; /* UINT_MAX: automatic */
}

/* Resolves the broker's address once; every connection reuses it. */
static int resolve(cx_bench_config_t *cfg)
{
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_family = AF_UNSPEC};
    struct addrinfo *ai = NULL;
    char port[8];
    snprintf(port, sizeof port, "%u", cfg->port);
    int rc = getaddrinfo(cfg->host, port, &hints, &ai);
    if (rc != 0) {
        fprintf(stderr, "culex_bench: %s: %s\n", cfg->host, gai_strerror(rc));
        return -1;
    }
    memcpy(&cfg->addr, ai->ai_addr, ai->ai_addrlen);
    cfg->addrlen = ai->ai_addrlen;
    freeaddrinfo(ai);
    return 0;
}

static bool is_loopback4(const cx_bench_config_t *cfg)
{
    if (cfg->addr.ss_family != AF_INET)
        return false;
    const struct sockaddr_in *a = (const struct sockaddr_in *)&cfg->addr;
    return (ntohl(a->sin_addr.s_addr) >> 24) == 127;
}

/* The ephemeral port range: [*lo, *lo + *n). */
static void ephemeral_ports(uint32_t *lo, uint32_t *n)
{
    unsigned a = 32768, b = 60999;
    FILE *f = fopen("/proc/sys/net/ipv4/ip_local_port_range", "re");
    if (f) {
        if (fscanf(f, "%u %u", &a, &b) != 2 || b < a || b > 65535) {
            a = 32768;
            b = 60999;
        }
        fclose(f);
    }
    *lo = a;
    *n = b - a + 1;
}

/* Above this many connections to a loopback broker, source ports are chosen here rather
 * than by connect() (culex_bench_conn.c says why). */
#define AUTO_BIND_MIN 2048

/* Decides the source addresses: explicit, or automatic for a loopback broker with many
 * connections: as many addresses as it takes to keep each at 90 % of the ephemeral range
 * (room for TIME_WAIT leftovers of earlier runs). */
static int plan_sources(cx_bench_config_t *cfg, size_t total, uint32_t range)
{
    if (cfg->source_addrs == UINT_MAX) {
        size_t usable = (size_t)range * 9 / 10;
        cfg->source_addrs = 0;
        if (total >= AUTO_BIND_MIN && is_loopback4(cfg))
            cfg->source_addrs = (unsigned)((total + usable - 1) / usable);
        if (cfg->source_addrs > 254)
            cfg->source_addrs = 254;
        if (cfg->source_addrs && !cfg->quiet)
            fprintf(stderr, "culex_bench: %zu connections: binding to 127.0.0.1 .. 127.0.0.%u\n",
                    total, cfg->source_addrs);
    } else if (cfg->source_addrs && !is_loopback4(cfg)) {
        fprintf(stderr, "culex_bench: --source-addresses binds 127.0.0.x, so the broker "
                        "must be on an IPv4 loopback address\n");
        return -1;
    }
    return 0;
}

/* Takes the hard file limit; warns when even that is too small. */
static void raise_nofile(const cx_bench_config_t *cfg, size_t total)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
        return;
    if (rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        (void)setrlimit(RLIMIT_NOFILE, &rl);
        (void)getrlimit(RLIMIT_NOFILE, &rl);
    }
    if (rl.rlim_cur != RLIM_INFINITY && total + 32 > rl.rlim_cur && !cfg->quiet)
        fprintf(stderr,
                "culex_bench: warning: %zu connections but only %llu file descriptors "
                "(ulimit -Hn); the rest will fail\n",
                total, (unsigned long long)rl.rlim_cur);
}

/* Creates the connections, their role state and the threads' shares. */
static int setup(cx_bench_run_t *run, cx_bench_config_t *cfg)
{
    size_t n[CX_BENCH_ROLES] = {0};
    n[CX_BENCH_SUB] = cfg->scenario == CX_BENCH_CONNECTIONS ? 0 : cfg->subscribers;
    n[CX_BENCH_PUB] = cfg->scenario == CX_BENCH_CONNECTIONS ? 0 : cfg->publishers;
    n[CX_BENCH_IDLE] = cfg->scenario == CX_BENCH_CONNECTIONS ? cfg->connections : 0;
    unsigned T = cfg->threads;
    run->threads = cx_calloc(T, sizeof *run->threads);
    if (!run->threads)
        return CX_ENOMEM;
    for (unsigned i = 0; i < T; i++) {
        cx_bench_thread_t *t = &run->threads[i];
        t->run = run;
        t->index = i;
        t->epfd = -1;
        t->scratch_len = 256 * 1024;
        t->scratch = cx_malloc(t->scratch_len);
        t->hist = cx_calloc(1, sizeof *t->hist);
        cx_arena_init(&t->arena, 1u << 20);
        if (!t->scratch || !t->hist)
            return CX_ENOMEM;
    }
    char id[256], topic[512];
    for (int r = 0; r < CX_BENCH_ROLES; r++) {
        run->nconns[r] = n[r];
        if (!n[r])
            continue;
        run->conns[r] = cx_calloc(n[r], sizeof *run->conns[r]);
        if (!run->conns[r])
            return CX_ENOMEM;
        for (unsigned i = 0; i < T; i++) {
            cx_bench_thread_t *t = &run->threads[i];
            size_t share = n[r] / T + (i < n[r] % T);
            t->conns[r] = cx_calloc(share ? share : 1, sizeof *t->conns[r]);
            if (!t->conns[r])
                return CX_ENOMEM;
        }
        static const char tag[CX_BENCH_ROLES] = {'s', 'p', 'c'};
        for (size_t k = 0; k < n[r]; k++) {
            cx_bench_thread_t *t = &run->threads[k % T];
            cx_bench_conn_t *c = &run->conns[r][k];
            t->conns[r][t->nconns[r]++] = c;
            snprintf(id, sizeof id, "%s-%08x-%c%zu", cfg->client_prefix, cfg->run_id, tag[r], k);
            int rc = cx_bench_conn_init(c, (cx_bench_role)r, (uint32_t)k, t, id);
            if (rc)
                return rc;
        }
    }
    /* Topics: one for fan-in and fan-out, one per pair. The run id keeps two generators
     * on one broker (or a leftover subscriber) from hearing each other. */
    for (size_t k = 0; k < n[CX_BENCH_PUB]; k++) {
        if (cfg->scenario == CX_BENCH_PAIRS)
            snprintf(topic, sizeof topic, "%s/%08x/pair/%zu", cfg->topic, cfg->run_id, k);
        else
            snprintf(topic, sizeof topic, "%s/%08x/all", cfg->topic, cfg->run_id);
        uint64_t quota = UINT64_MAX;
        if (cfg->count)
            quota = cfg->count / n[CX_BENCH_PUB] + (k < cfg->count % n[CX_BENCH_PUB]);
        cx_bench_pub_t *p = cx_calloc(1, sizeof *p);
        if (!p)
            return CX_ENOMEM;
        int rc = cx_bench_client_init_pub(&run->conns[CX_BENCH_PUB][k], p, topic, quota);
        if (rc)
            return rc;
        if (quota == 0) { /* more publishers than messages: some have nothing to do */
            p->finished = true;
            run->conns[CX_BENCH_PUB][k].thread->pubs_finished++;
        }
    }
    for (size_t k = 0; k < n[CX_BENCH_SUB]; k++) {
        uint32_t base = 0, count = (uint32_t)n[CX_BENCH_PUB];
        if (cfg->scenario == CX_BENCH_PAIRS) {
            snprintf(topic, sizeof topic, "%s/%08x/pair/%zu", cfg->topic, cfg->run_id, k);
            base = (uint32_t)k;
            count = 1;
        } else {
            snprintf(topic, sizeof topic, "%s/%08x/all", cfg->topic, cfg->run_id);
        }
        cx_bench_sub_t *s = cx_calloc(1, sizeof *s);
        if (!s)
            return CX_ENOMEM;
        int rc = cx_bench_client_init_sub(&run->conns[CX_BENCH_SUB][k], s, topic, base, count);
        if (rc)
            return rc;
    }
    /* Rates: each thread takes its share of the total, in proportion to its connections. */
    for (unsigned i = 0; i < T; i++) {
        cx_bench_thread_t *t = &run->threads[i];
        size_t mine = 0, all = 0;
        for (int r = 0; r < CX_BENCH_ROLES; r++) {
            mine += t->nconns[r];
            all += n[r];
        }
        if (cfg->connect_rate > 0 && all)
            t->connect_rate = cfg->connect_rate * (double)mine / (double)all;
        if (cfg->rate > 0 && n[CX_BENCH_PUB]) {
            t->msg_rate = cfg->rate * (double)t->nconns[CX_BENCH_PUB] / (double)n[CX_BENCH_PUB];
            /* Tokens saved up while the loop was busy may go out at once, up to 20 ms
             * worth (or one per publisher): a turn slowed by a thousand readable
             * subscribers still reaches the rate, and nothing larger goes out as a burst. */
            t->msg_burst = fmax(t->msg_rate * 0.020, (double)t->nconns[CX_BENCH_PUB]);
            t->msg_burst = fmax(t->msg_burst, 1.0);
        }
    }
    return CX_OK;
}

static void teardown(cx_bench_run_t *run)
{
    for (int r = 0; r < CX_BENCH_ROLES; r++) {
        for (size_t k = 0; k < run->nconns[r]; k++) {
            cx_bench_conn_t *c = &run->conns[r][k];
            cx_bench_pub_t *p = c->pub;
            cx_bench_sub_t *s = c->sub;
            cx_bench_conn_free(c);
            cx_free(p);
            cx_free(s);
        }
        cx_free(run->conns[r]);
    }
    if (run->threads) {
        for (unsigned i = 0; i < run->cfg->threads; i++) {
            cx_bench_thread_t *t = &run->threads[i];
            for (int r = 0; r < CX_BENCH_ROLES; r++)
                cx_free(t->conns[r]);
            cx_free(t->dirty);
            cx_free(t->scratch);
            cx_free(t->hist);
            cx_arena_free(&t->arena);
        }
        cx_free(run->threads);
    }
    cx_free(run->sources);
    if (run->tls_ctx)
        cx_bench_tls_ctx_free(run->tls_ctx);
}

int main(int argc, char **argv)
{
    cx_bench_config_t cfg;
    parse_args(argc, argv, &cfg);
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    cfg.run_id = (uint32_t)getpid() * 2654435761u ^ (uint32_t)ts.tv_nsec ^ (uint32_t)ts.tv_sec;
    if (resolve(&cfg) != 0)
        return 2;
    size_t total = cfg.scenario == CX_BENCH_CONNECTIONS ? cfg.connections
                                                        : (size_t)cfg.publishers + cfg.subscribers;
    uint32_t port_lo, port_range;
    ephemeral_ports(&port_lo, &port_range);
    if (plan_sources(&cfg, total, port_range) != 0)
        return 2;
    raise_nofile(&cfg, total);
    /* Writes to a socket the broker closed must fail with EPIPE, not kill the generator
     * (OpenSSL writes without MSG_NOSIGNAL). */
    signal(SIGPIPE, SIG_IGN);

    cx_bench_run_t run;
    memset(&run, 0, sizeof run);
    run.cfg = &cfg;
    int status = 2;
    if (cfg.tls) {
        run.tls_ctx = cx_bench_tls_ctx_new(&cfg);
        if (!run.tls_ctx)
            goto out;
    }
    if (cfg.source_addrs) {
        run.sources = cx_calloc(cfg.source_addrs, sizeof *run.sources);
        if (!run.sources)
            goto oom;
        run.port_lo = port_lo;
        run.port_range = port_range;
        run.port_start = cfg.run_id % port_range;
        for (unsigned i = 0; i < cfg.source_addrs; i++) {
            run.sources[i].sin_family = AF_INET;
            run.sources[i].sin_addr.s_addr = htonl(0x7f000001u + i);
        }
    }
    if (setup(&run, &cfg) != CX_OK)
        goto oom;
    for (unsigned i = 0; i < cfg.threads; i++) {
        cx_bench_thread_t *t = &run.threads[i];
        size_t mine = 0;
        for (int r = 0; r < CX_BENCH_ROLES; r++)
            mine += t->nconns[r];
        /* Room for every connection of the thread: each is queued at most once a turn. */
        t->dirty = cx_calloc(mine ? mine : 1, sizeof *t->dirty);
        if (!t->dirty)
            goto oom;
    }
    cx_bench_result_t res;
    memset(&res, 0, sizeof res);
    status = cx_bench_run(&run, &res);
    if (res.hist) {
        if (cfg.json)
            cx_bench_report_json(&cfg, &res);
        else
            cx_bench_report_text(&cfg, &res);
        cx_free(res.hist);
    }
    goto out;
oom:
    fprintf(stderr, "culex_bench: out of memory\n");
    status = 2;
out:
    teardown(&run);
    return status;
}
