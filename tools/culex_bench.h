/* culex_bench.h: types shared by the files of the load generator (tools/culex_bench_*.c).
 *
 * One process, T worker threads, each with its own epoll loop and its share of the
 * connections (connection k of a role belongs to thread k % T). The main thread only
 * coordinates: it moves the run through its phases (connect subscribers, connect publishers,
 * run, drain, stop) by storing `run->phase`, and watches the per-thread progress atomics to
 * decide when a phase is over. Everything else a thread touches is its own, so the hot path
 * takes no locks and does no atomic read-modify-write; the main thread reads the per-thread
 * counters only after joining the threads.
 *
 * Every payload starts with a header (cx_bench_hdr_*) carrying the publisher's index, its
 * sequence number and the CLOCK_MONOTONIC send time, which is how subscribers count loss,
 * duplicates, reordering and end-to-end latency without any shared state. */
#ifndef CX_BENCH_H
#define CX_BENCH_H

#include <endian.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>

#include "mqtt/codec.h"
#include "util/arena.h"
#include "util/buf.h"

/* ---- configuration -------------------------------------------------------------------- */

typedef enum cx_bench_scenario {
    CX_BENCH_FAN_IN,      /* P publishers -> S subscribers, one topic */
    CX_BENCH_FAN_OUT,     /* 1 publisher -> S subscribers, one topic */
    CX_BENCH_PAIRS,       /* N pairs, one topic each */
    CX_BENCH_CONNECTIONS, /* C idle connections, held */
} cx_bench_scenario;

typedef struct cx_bench_config {
    cx_bench_scenario scenario;
    const char *host;
    uint16_t port;
    struct sockaddr_storage addr; /* resolved once, at start */
    socklen_t addrlen;
    cx_mqtt_version version;
    int qos;
    size_t payload;
    double rate;     /* messages/s over all publishers; 0 = flat out */
    double duration; /* seconds; 0 = until --count is reached */
    uint64_t count;  /* messages over all publishers; 0 = until --duration */
    double drain;    /* seconds to wait for the last messages after the run */
    unsigned threads;
    unsigned inflight; /* unacknowledged messages per publisher at QoS 1/2 */
    unsigned publishers;
    unsigned subscribers;
    unsigned connections; /* CX_BENCH_CONNECTIONS */
    double connect_rate;  /* connections/s over all threads; 0 = as fast as accepted */
    double connect_timeout;
    unsigned keepalive;
    const char *username;
    const char *password;
    const char *topic; /* topic prefix */
    const char *client_prefix;
    bool tls;
    const char *cafile;
    const char *cert;
    const char *key;
    bool insecure;
    unsigned source_addrs; /* bind round-robin to 127.0.0.1..N; 0 = don't bind */
    bool json;
    bool quiet;
    uint32_t run_id; /* in every payload, so foreign messages are told apart */
} cx_bench_config_t;

/* ---- payload header ------------------------------------------------------------------- */

#define CX_BENCH_MAGIC 0x31425843u /* "CXB1" */
/* magic u32, run id u32, publisher u32, sequence u64, send time u64 (little endian). */
#define CX_BENCH_HDR_LEN 28u

/* ---- latency histogram ---------------------------------------------------------------- */

/* Log-linear: values below 2^SUB are exact; above, each power of two is cut into 2^SUB
 * linear buckets, so every bucket is within 1/2^SUB (0.8 %) of its values. Fixed size, so
 * recording never allocates. Covers up to 2^TOP ns (about 18 minutes). */
#define CX_BENCH_HIST_SUB 7
#define CX_BENCH_HIST_TOP 40
#define CX_BENCH_HIST_BUCKETS (((CX_BENCH_HIST_TOP - CX_BENCH_HIST_SUB) + 1) << CX_BENCH_HIST_SUB)

typedef struct cx_bench_hist {
    uint64_t count;
    uint64_t max;
    double sum;
    uint64_t b[CX_BENCH_HIST_BUCKETS];
} cx_bench_hist_t;

void cx_bench_hist_record(cx_bench_hist_t *h, uint64_t v);
void cx_bench_hist_merge(cx_bench_hist_t *into, const cx_bench_hist_t *from);
/* The value at quantile q (0..1): the upper bound of its bucket, capped at the maximum. */
uint64_t cx_bench_hist_quantile(const cx_bench_hist_t *h, double q);

/* ---- sequence checking ---------------------------------------------------------------- */

/* What one subscriber saw of one publisher. `next` is one past the highest sequence number
 * received; bit i of `window` says whether next-1-i was received, which separates a
 * duplicate from a late (out-of-order) arrival for the last 64 numbers. */
typedef struct cx_bench_seq {
    uint64_t next;
    uint64_t window;
    uint64_t unique;
} cx_bench_seq_t;

/* ---- counters ------------------------------------------------------------------------- */

typedef enum cx_bench_errkind {
    CX_BENCH_ERR_CONNECT,    /* TCP connect failed (refused, unreachable, no ports) */
    CX_BENCH_ERR_TIMEOUT,    /* connect, CONNACK or SUBACK did not come in time */
    CX_BENCH_ERR_TLS,        /* TLS handshake or TLS I/O failed */
    CX_BENCH_ERR_CONNACK,    /* CONNACK refused the connection */
    CX_BENCH_ERR_SUBACK,     /* SUBACK refused the subscription */
    CX_BENCH_ERR_CLOSED,     /* the broker closed or reset an established connection */
    CX_BENCH_ERR_DISCONNECT, /* the broker sent DISCONNECT (MQTT 5) */
    CX_BENCH_ERR_PROTOCOL,   /* a packet we could not decode, or one out of place */
    CX_BENCH_ERR_COUNT
} cx_bench_errkind;

typedef enum cx_bench_role {
    CX_BENCH_SUB,
    CX_BENCH_PUB,
    CX_BENCH_IDLE,
    CX_BENCH_ROLES
} cx_bench_role;

typedef struct cx_bench_counters {
    uint64_t sent;     /* PUBLISH packets queued for the socket */
    uint64_t acked;    /* PUBACK / PUBCOMP received */
    uint64_t refused;  /* acks with a failure reason code (MQTT 5) */
    uint64_t received; /* PUBLISH packets received, duplicates included */
    uint64_t duplicated;
    uint64_t out_of_order;
    uint64_t unexpected; /* payloads without our header, or from an unknown publisher */
    uint64_t bytes_out, bytes_in;
    uint64_t errors[CX_BENCH_ERR_COUNT];
    uint64_t dropped; /* established connections lost before the end */
    /* Connect timing per role: first attempt, last CONNACK (or SUBACK), successes. */
    uint64_t conn_first_ns[CX_BENCH_ROLES];
    uint64_t conn_last_ns[CX_BENCH_ROLES];
    uint64_t connected[CX_BENCH_ROLES];
    uint64_t first_rx_ns, last_rx_ns;
    uint64_t last_tx_ns;
    char first_error[160];
} cx_bench_counters_t;

/* ---- connections ---------------------------------------------------------------------- */

typedef enum cx_bench_state {
    CX_BENCH_ST_IDLE,    /* not started */
    CX_BENCH_ST_TCP,     /* non-blocking connect() in progress */
    CX_BENCH_ST_TLS,     /* TLS handshake */
    CX_BENCH_ST_CONNACK, /* CONNECT sent */
    CX_BENCH_ST_SUBACK,  /* SUBSCRIBE sent */
    CX_BENCH_ST_READY,
    CX_BENCH_ST_CLOSING, /* DISCONNECT sent, waiting for the broker to close */
    CX_BENCH_ST_DEAD,
} cx_bench_state;

typedef struct cx_bench_thread cx_bench_thread_t;

typedef struct cx_bench_pub {
    uint32_t id;    /* index among publishers: goes into every payload */
    uint64_t seq;   /* next sequence number */
    uint64_t quota; /* messages to send; UINT64_MAX = unlimited */
    uint64_t sent, acked;
    unsigned inflight, window;
    uint16_t next_pid;
    uint64_t *pid_used; /* 65536-bit bitmaps, QoS 1/2 only */
    uint64_t *pid_rel;  /* QoS 2: PUBREL sent */
    cx_buf_t tmpl;      /* the whole PUBLISH, re-sent with a new id and header */
    size_t pid_off, hdr_off;
    uint32_t receivers; /* subscribers ready when the run started (set by main) */
    bool finished;      /* quota sent, or dead: counted once in pubs_finished */
} cx_bench_pub_t;

typedef struct cx_bench_sub {
    uint32_t pub_base, pub_count; /* the publishers this subscriber hears */
    cx_bench_seq_t *seq;          /* pub_count entries */
    char *topic;
    bool ready;      /* got its SUBACK (read by main after the phase) */
    uint8_t granted; /* QoS granted by the SUBACK */
} cx_bench_sub_t;

typedef struct cx_bench_conn {
    int fd;
    cx_bench_role role;
    cx_bench_state state;
    uint32_t index;      /* within its role */
    bool epollout;       /* EPOLLOUT registered */
    bool dirty;          /* on the thread's flush list */
    bool blocked;        /* the last write would block */
    bool tls_want_write; /* an SSL_read needs the socket writable */
    void *ssl;           /* SSL *, when --tls */
    cx_bench_thread_t *thread;
    cx_buf_t in, out;
    uint64_t deadline_ns;     /* for the current connecting step */
    uint64_t last_tx_ns;      /* for keepalive */
    unsigned keepalive;       /* as granted (MQTT 5 Server Keep Alive) */
    uint16_t server_recv_max; /* MQTT 5; 65535 when absent */
    char *client_id;
    cx_bench_pub_t *pub; /* CX_BENCH_PUB */
    cx_bench_sub_t *sub; /* CX_BENCH_SUB */
} cx_bench_conn_t;

/* ---- threads and the run -------------------------------------------------------------- */

typedef enum cx_bench_phase {
    CX_BENCH_PH_SUBS,  /* connect subscribers (and idle connections), wait for SUBACKs */
    CX_BENCH_PH_PUBS,  /* connect publishers */
    CX_BENCH_PH_RUN,   /* publish (or hold idle connections) */
    CX_BENCH_PH_DRAIN, /* no new messages; wait for acks and deliveries */
    CX_BENCH_PH_STOP,  /* DISCONNECT everything, close, exit the thread */
} cx_bench_phase;

typedef struct cx_bench_run cx_bench_run_t;

struct cx_bench_thread {
    cx_bench_run_t *run;
    unsigned index;
    pthread_t tid;
    int epfd;
    bool no_pwait2; /* the kernel lacks epoll_pwait2: millisecond timeouts */
    cx_bench_conn_t **conns[CX_BENCH_ROLES];
    size_t nconns[CX_BENCH_ROLES];
    size_t next_connect[CX_BENCH_ROLES];
    size_t connecting; /* handshakes in progress */
    double connect_tokens, connect_rate;
    double msg_tokens, msg_rate, msg_burst;
    size_t rr; /* round-robin cursor among publishers */
    uint64_t last_ns, last_periodic_ns;
    cx_bench_conn_t **dirty;
    size_t ndirty;
    uint8_t *scratch;
    size_t scratch_len;
    cx_arena_t arena;
    cx_bench_hist_t *hist;
    cx_bench_counters_t c;
    /* Tallies behind the progress atomics, kept by this thread alone. */
    uint64_t resolved[CX_BENCH_ROLES], ready[CX_BENCH_ROLES], alive[CX_BENCH_ROLES];
    uint64_t unique, expected, pubs_finished;
    /* Progress the main thread watches (relaxed stores once per loop turn). */
    _Atomic uint64_t p_resolved[CX_BENCH_ROLES]; /* connections ready or failed */
    _Atomic uint64_t p_ready[CX_BENCH_ROLES];
    _Atomic uint64_t p_alive[CX_BENCH_ROLES]; /* ready and not dead */
    _Atomic uint64_t p_sent, p_acked, p_unique, p_expected, p_pubs_finished;
    _Atomic bool p_exited;
};

struct cx_bench_run {
    const cx_bench_config_t *cfg;
    _Atomic int phase;
    void *tls_ctx; /* SSL_CTX * */
    cx_bench_thread_t *threads;
    cx_bench_conn_t *conns[CX_BENCH_ROLES];
    size_t nconns[CX_BENCH_ROLES];
    struct sockaddr_in *sources;  /* cfg->source_addrs entries */
    _Atomic uint64_t next_source; /* next (address, port) slot to try */
    uint32_t port_lo, port_range; /* the ephemeral port range, where source ports go */
    uint32_t port_start;          /* random first slot, away from the last run's ports */
};

/* ---- culex_bench_conn.c: one connection's transport ----------------------------------- */

/* Set-up, on the main thread before the threads start: CX_OK or CX_ENOMEM. */
int cx_bench_conn_init(cx_bench_conn_t *c, cx_bench_role role, uint32_t index, cx_bench_thread_t *t,
                       const char *client_id);
/* Starts a non-blocking connect. Returns 0, or a negative errno (the connection is then
 * dead and the error counted). */
int cx_bench_conn_start(cx_bench_conn_t *c, uint64_t now);
/* Handles readiness from epoll. */
void cx_bench_conn_on_event(cx_bench_conn_t *c, uint32_t events, uint64_t now);
/* Writes the queued output once. */
void cx_bench_conn_flush(cx_bench_conn_t *c, uint64_t now);
/* After appending to c->out: queues the connection for the turn's flush, or fails it when
 * the append failed (rc != CX_OK). */
void cx_bench_conn_queued(cx_bench_conn_t *c, int rc);
/* Leaves the connecting states, ready or not: the phase counters move here only. */
void cx_bench_conn_resolve(cx_bench_conn_t *c, bool ready);
bool cx_bench_conn_is_connecting(cx_bench_state s);
/* Counts the error (once per connection) and closes. */
void cx_bench_conn_fail(cx_bench_conn_t *c, cx_bench_errkind kind, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void cx_bench_conn_close(cx_bench_conn_t *c);
/* Frees the buffers and role state (after the thread has exited). */
void cx_bench_conn_free(cx_bench_conn_t *c);

/* ---- culex_bench_client.c: the MQTT client on a connection ---------------------------- */

/* Set-up of a publisher (its PUBLISH template, packet-id bitmaps) and of a subscriber (its
 * topic, its per-publisher sequence state). CX_OK, CX_ENOMEM, or an encoder error. */
int cx_bench_client_init_pub(cx_bench_conn_t *c, cx_bench_pub_t *p, const char *topic,
                             uint64_t quota);
int cx_bench_client_init_sub(cx_bench_conn_t *c, cx_bench_sub_t *s, const char *topic,
                             uint32_t pub_base, uint32_t pub_count);
/* Transport is up (TCP, TLS): sends CONNECT. */
void cx_bench_client_connect(cx_bench_conn_t *c, uint64_t now);
/* Handles one whole packet received at rx_ns. May fail the connection. */
void cx_bench_client_on_packet(cx_bench_conn_t *c, const uint8_t *pkt, size_t len, uint64_t rx_ns);
/* True when a publisher can take another message now (ready, socket not blocked, window
 * and quota open, output under its high-water mark). */
bool cx_bench_client_can_publish(const cx_bench_conn_t *c);
/* Queues one PUBLISH stamped `now` if the publisher may send; returns true if it did. */
bool cx_bench_client_publish(cx_bench_conn_t *c, uint64_t now);
/* PINGREQ when nothing was written for half the keepalive. */
void cx_bench_client_ping(cx_bench_conn_t *c, uint64_t now);
/* Sends DISCONNECT and enters CLOSING (a connection still connecting is just closed). */
void cx_bench_client_disconnect(cx_bench_conn_t *c, uint64_t now);

/* ---- culex_bench_worker.c ------------------------------------------------------------- */

void *cx_bench_thread_main(void *arg);
/* Queues conn for the end-of-turn flush. */
void cx_bench_thread_mark_dirty(cx_bench_thread_t *t, cx_bench_conn_t *c);

/* ---- culex_bench_tls.c ---------------------------------------------------------------- */

/* Builds the shared client context. Returns NULL and prints why on failure. */
void *cx_bench_tls_ctx_new(const cx_bench_config_t *cfg);
void cx_bench_tls_ctx_free(void *ctx);
/* Attaches a TLS session to fd. Returns NULL on failure. */
void *cx_bench_tls_new(void *ctx, int fd, const char *host, bool verify_host);
void cx_bench_tls_free(void *ssl);
/* Tri-state progress functions: >0 done/progressed, 0 would block (*want_write says on
 * what), <0 failed (msg says why). */
int cx_bench_tls_handshake(void *ssl, bool *want_write, const char **msg);
long cx_bench_tls_read(void *ssl, void *buf, size_t n, bool *want_write, const char **msg);
long cx_bench_tls_write(void *ssl, const void *buf, size_t n, bool *want_write, const char **msg);

/* ---- culex_bench_report.c ------------------------------------------------------------- */

typedef struct cx_bench_result {
    cx_bench_counters_t c; /* sums over the threads */
    cx_bench_hist_t *hist;
    uint64_t expected, lost, unacked;
    uint64_t attempted[CX_BENCH_ROLES];
    double run_s;                       /* publishing (or holding) wall time */
    double rx_s;                        /* from the run's start to the last message received */
    double connect_s;                   /* time spent connecting, over the roles */
    double cpu_user, cpu_sys, cpu_wall; /* whole process, from the first connect to exit */
    const char *ended_by;               /* "duration", "count", "publishers lost", "signal", ... */
    const char *drain_end;              /* "complete", "quiet", "limit", "signal"; NULL: no drain */
    double drain_s;
    unsigned granted_qos_min; /* lowest QoS a SUBACK granted */
} cx_bench_result_t;

void cx_bench_report_text(const cx_bench_config_t *cfg, const cx_bench_result_t *r);
void cx_bench_report_json(const cx_bench_config_t *cfg, const cx_bench_result_t *r);
const char *cx_bench_scenario_name(cx_bench_scenario s);
const char *cx_bench_errkind_name(cx_bench_errkind k);

/* ---- helpers -------------------------------------------------------------------------- */

uint64_t cx_bench_now_ns(void);

/* Little-endian fields of the payload header. memcpy and the byte-order macros compile to
 * one load or store; a loop over bytes did not, and showed at 20 % of a receiving profile. */
static inline void cx_bench_put32(uint8_t *p, uint32_t v)
{
    v = htole32(v);
    memcpy(p, &v, sizeof v);
}
static inline void cx_bench_put64(uint8_t *p, uint64_t v)
{
    v = htole64(v);
    memcpy(p, &v, sizeof v);
}
static inline uint32_t cx_bench_get32(const uint8_t *p)
{
    uint32_t v;
    memcpy(&v, p, sizeof v);
    return le32toh(v);
}
static inline uint64_t cx_bench_get64(const uint8_t *p)
{
    uint64_t v;
    memcpy(&v, p, sizeof v);
    return le64toh(v);
}

#endif
