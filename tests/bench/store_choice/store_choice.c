/* store_choice.c: the measurement that chooses culex's default persistence store (issue 4).
 *
 * Two candidate designs run the broker's persistence workload on a dedicated writer thread with
 * group commit: a producer thread (standing for the workers) hands each "loop turn" of
 * operations to the writer, and the writer makes everything that is pending durable with one
 * commit. The designs:
 *   sqlite  SQLite in WAL mode, prepared statements, one transaction per batch;
 *           synchronous=FULL for `always` and `batch`, NORMAL for `batch-normal`, OFF for `none`.
 *   log     an append-only log of length-prefixed records, CRC32C per record, one write() and
 *           one fdatasync() per batch, compaction by rewriting the live set into a new file
 *           (fsync, rename, fsync of the directory) when the file is twice the live size.
 * Durability: `always` commits whatever arrived as soon as the writer is free and the producer
 * waits for durability (at most -w messages, default 1024, not yet durable: e.g. 1024 publishers
 * with one QoS 1 message in flight each); `batch` and `none` commit every 10 ms and the producer
 * waits only when -q messages (default 16384) are queued and not yet durable (the store's
 * back-pressure). The producer is faster than either store, so every figure is at saturation.
 * Workloads: qos1 (a message stored for one session, acknowledged LAG messages later: insert +
 * delete, 256-byte payloads), retained (set/overwrite on 100k topics, prefilled), restart
 * (load 1,000,000 retained messages into memory from a cleanly closed store).
 *
 * Not a test: printed figures only, no assertions. Not registered in ctest.
 * Usage: bench_store_choice [-d dir] [-t seconds] [-r runs] [-n restart_count] [-c cases]
 *                           [-w always_window] [-q batch_queue_bound]
 *        cases: any of "qrs" (qos1, retained, restart); default all. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>
#if defined(__x86_64__)
#include <nmmintrin.h>
#endif

#define PAYLOAD_LEN 256
#define TURN_MSGS 64         /* messages per producer "loop turn" */
#define QOS1_LAG 256         /* a message is acknowledged this many messages after it was stored */
#define RET_TOPICS 100000    /* retained workload key space */
#define BATCH_TICK_S 0.010   /* `batch` and `none` commit period */
#define RING_CAP (1u << 17)  /* writer queue, in operations */
#define MAX_RUNS 9

enum design { S_SQLITE, S_LOG };
enum dura { D_ALWAYS, D_BATCH, D_BATCH_NORMAL, D_NONE };
enum work { W_QOS1, W_RETAIN };
enum opkind { OP_STORE = 1, OP_ACK = 2, OP_SET = 3 };

static const char *design_name[] = {"sqlite", "log"};
static const char *dura_name[] = {"always", "batch", "batch-normal", "none"};

static void die(const char *what, const char *detail)
{
    fprintf(stderr, "bench_store_choice: %s: %s\n", what, detail ? detail : strerror(errno));
    exit(1);
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void *xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p)
        die("malloc", "out of memory");
    return p;
}

/* ---- CRC32C (Castagnoli): SSE4.2 instruction when present, table otherwise ---- */

static uint32_t crc_table[256];
static bool crc_hw;

static void crc_init(void)
{
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++)
            c = (c & 1) ? (c >> 1) ^ 0x82F63B78u : c >> 1;
        crc_table[i] = c;
    }
#if defined(__x86_64__)
    __builtin_cpu_init();
    crc_hw = __builtin_cpu_supports("sse4.2");
#endif
}

#if defined(__x86_64__)
__attribute__((target("sse4.2"))) static uint32_t crc_update_hw(uint32_t c, const uint8_t *p,
                                                                 size_t n)
{
    uint64_t c64 = c;
    while (n >= 8) {
        uint64_t v;
        memcpy(&v, p, 8);
        c64 = _mm_crc32_u64(c64, v);
        p += 8;
        n -= 8;
    }
    c = (uint32_t)c64;
    while (n--)
        c = _mm_crc32_u8(c, *p++);
    return c;
}
#endif

static uint32_t crc_update(uint32_t c, const void *data, size_t n)
{
    const uint8_t *p = data;
#if defined(__x86_64__)
    if (crc_hw)
        return crc_update_hw(c, p, n);
#endif
    while (n--)
        c = crc_table[(c ^ *p++) & 0xff] ^ (c >> 8);
    return c;
}

/* ---- a hash map of byte keys to blobs: linear probing, backward-shift delete ---- */
/* blob layout: u32 klen, u32 vlen, key bytes, value bytes */

typedef struct {
    uint64_t h; /* 0 = empty */
    uint8_t *blob;
} slot_t;

typedef struct {
    slot_t *s;
    size_t cap, n;
    uint64_t vbytes; /* sum of value lengths */
} map_t;

static uint64_t hash_bytes(const void *p, size_t n)
{
    const uint8_t *b = p;
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < n; i++)
        h = (h ^ b[i]) * 0x100000001b3ull;
    h ^= h >> 29;
    return h ? h : 1;
}

static uint32_t blob_klen(const uint8_t *b) { uint32_t v; memcpy(&v, b, 4); return v; }
static uint32_t blob_vlen(const uint8_t *b) { uint32_t v; memcpy(&v, b + 4, 4); return v; }
static const uint8_t *blob_val(const uint8_t *b) { return b + 8 + blob_klen(b); }

static void map_init(map_t *m, size_t expect)
{
    size_t cap = 1024;
    while (cap < expect * 2)
        cap <<= 1;
    m->s = calloc(cap, sizeof(slot_t));
    if (!m->s)
        die("calloc", "out of memory");
    m->cap = cap;
    m->n = 0;
    m->vbytes = 0;
}

static void map_free(map_t *m)
{
    for (size_t i = 0; i < m->cap; i++)
        free(m->s[i].blob);
    free(m->s);
    memset(m, 0, sizeof(*m));
}

static size_t map_find(const map_t *m, uint64_t h, const void *key, uint32_t klen)
{
    size_t mask = m->cap - 1, i = h & mask;
    while (m->s[i].h) {
        if (m->s[i].h == h && blob_klen(m->s[i].blob) == klen &&
            memcmp(m->s[i].blob + 8, key, klen) == 0)
            return i;
        i = (i + 1) & mask;
    }
    return i; /* empty slot */
}

static void map_grow(map_t *m)
{
    slot_t *old = m->s;
    size_t oldcap = m->cap;
    m->cap *= 2;
    m->s = calloc(m->cap, sizeof(slot_t));
    if (!m->s)
        die("calloc", "out of memory");
    for (size_t i = 0; i < oldcap; i++) {
        if (!old[i].h)
            continue;
        size_t j = old[i].h & (m->cap - 1);
        while (m->s[j].h)
            j = (j + 1) & (m->cap - 1);
        m->s[j] = old[i];
    }
    free(old);
}

static void map_put(map_t *m, const void *key, uint32_t klen, const void *val, uint32_t vlen)
{
    if ((m->n + 1) * 2 > m->cap)
        map_grow(m);
    uint64_t h = hash_bytes(key, klen);
    size_t i = map_find(m, h, key, klen);
    uint8_t *b = xmalloc(8 + (size_t)klen + vlen);
    memcpy(b, &klen, 4);
    memcpy(b + 4, &vlen, 4);
    memcpy(b + 8, key, klen);
    memcpy(b + 8 + klen, val, vlen);
    if (m->s[i].h) {
        m->vbytes -= blob_vlen(m->s[i].blob);
        free(m->s[i].blob);
    } else {
        m->n++;
    }
    m->s[i].h = h;
    m->s[i].blob = b;
    m->vbytes += vlen;
}

static void map_del(map_t *m, const void *key, uint32_t klen)
{
    size_t mask = m->cap - 1;
    size_t i = map_find(m, hash_bytes(key, klen), key, klen);
    if (!m->s[i].h)
        return;
    m->vbytes -= blob_vlen(m->s[i].blob);
    free(m->s[i].blob);
    m->n--;
    for (size_t j = (i + 1) & mask; m->s[j].h; j = (j + 1) & mask) {
        size_t home = m->s[j].h & mask;
        /* move j into the hole at i unless its home lies cyclically in (i, j] */
        bool stays = (i <= j) ? (home > i && home <= j) : (home > i || home <= j);
        if (!stays) {
            m->s[i] = m->s[j];
            i = j;
        }
    }
    m->s[i].h = 0;
    m->s[i].blob = NULL;
}

/* ---- the simulated broker data ---- */

static uint8_t payload_base[PAYLOAD_LEN];

static void make_payload(uint8_t *out, uint64_t id)
{
    memcpy(out, payload_base, PAYLOAD_LEN);
    memcpy(out, &id, sizeof(id));
}

static int msg_topic(char *out, size_t cap, uint64_t id)
{
    return snprintf(out, cap, "plant/%03u/line/%02u/telemetry", (unsigned)(id % 1000),
                    (unsigned)(id % 17));
}

static int msg_session(char *out, size_t cap, uint64_t id)
{
    return snprintf(out, cap, "client-%05u", (unsigned)(id % 1000));
}

static int ret_topic(char *out, size_t cap, uint32_t key)
{
    return snprintf(out, cap, "plant/%03u/line/%02u/sensor/%07u", key % 1000, key % 17, key);
}

struct op {
    uint8_t kind;
    uint32_t key; /* retained topic number */
    uint64_t id;  /* message id */
    double ts;    /* submitted (for ack latency) */
};

/* ---- SQLite store ---- */

struct sq {
    sqlite3 *db;
    sqlite3_stmt *ins_msg, *ins_q, *del_q, *del_msg, *set_ret, *sel_ret;
    bool in_txn;
};

static void sq_exec(struct sq *s, const char *sql)
{
    char *err = NULL;
    if (sqlite3_exec(s->db, sql, NULL, NULL, &err) != SQLITE_OK)
        die(sql, err);
}

static sqlite3_stmt *sq_prep(struct sq *s, const char *sql)
{
    sqlite3_stmt *st;
    if (sqlite3_prepare_v3(s->db, sql, -1, SQLITE_PREPARE_PERSISTENT, &st, NULL) != SQLITE_OK)
        die(sql, sqlite3_errmsg(s->db));
    return st;
}

static void sq_open(struct sq *s, const char *path, enum dura d)
{
    memset(s, 0, sizeof(*s));
    int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX;
    if (sqlite3_open_v2(path, &s->db, flags, NULL) != SQLITE_OK)
        die("sqlite3_open", sqlite3_errmsg(s->db));
    sq_exec(s, "PRAGMA journal_mode=WAL");
    sq_exec(s, "PRAGMA cache_size=-65536"); /* 64 MiB page cache; the default 2 MiB thrashes */
    sq_exec(s, d == D_NONE ? "PRAGMA synchronous=OFF"
               : d == D_BATCH_NORMAL ? "PRAGMA synchronous=NORMAL"
                                     : "PRAGMA synchronous=FULL");
    sq_exec(s, "CREATE TABLE IF NOT EXISTS msg(id INTEGER PRIMARY KEY, topic TEXT NOT NULL,"
               " qos INTEGER NOT NULL, retain INTEGER NOT NULL DEFAULT 0, expiry INTEGER,"
               " props BLOB, payload BLOB NOT NULL)");
    sq_exec(s, "CREATE TABLE IF NOT EXISTS queue(session TEXT NOT NULL, msg_id INTEGER NOT NULL,"
               " state INTEGER NOT NULL, PRIMARY KEY(session, msg_id)) WITHOUT ROWID");
    sq_exec(s, "CREATE TABLE IF NOT EXISTS retained(topic TEXT PRIMARY KEY, qos INTEGER NOT NULL,"
               " expiry INTEGER, props BLOB, payload BLOB NOT NULL) WITHOUT ROWID");
    s->ins_msg = sq_prep(s, "INSERT INTO msg(id, topic, qos, payload) VALUES(?1, ?2, ?3, ?4)");
    s->ins_q = sq_prep(s, "INSERT INTO queue(session, msg_id, state) VALUES(?1, ?2, 0)");
    s->del_q = sq_prep(s, "DELETE FROM queue WHERE session = ?1 AND msg_id = ?2");
    s->del_msg = sq_prep(s, "DELETE FROM msg WHERE id = ?1");
    s->set_ret = sq_prep(s, "INSERT OR REPLACE INTO retained(topic, qos, payload)"
                            " VALUES(?1, ?2, ?3)");
    s->sel_ret = sq_prep(s, "SELECT topic, payload FROM retained");
}

static void sq_step(struct sq *s, sqlite3_stmt *st)
{
    if (sqlite3_step(st) != SQLITE_DONE)
        die("sqlite3_step", sqlite3_errmsg(s->db));
    sqlite3_reset(st);
}

static void sq_apply(struct sq *s, const struct op *op)
{
    char topic[96], sess[32];
    uint8_t pl[PAYLOAD_LEN];
    if (!s->in_txn) {
        sq_exec(s, "BEGIN");
        s->in_txn = true;
    }
    switch (op->kind) {
    case OP_STORE: {
        int tl = msg_topic(topic, sizeof(topic), op->id);
        int sl = msg_session(sess, sizeof(sess), op->id);
        make_payload(pl, op->id);
        sqlite3_bind_int64(s->ins_msg, 1, (sqlite3_int64)op->id);
        sqlite3_bind_text(s->ins_msg, 2, topic, tl, SQLITE_STATIC);
        sqlite3_bind_int(s->ins_msg, 3, 1);
        sqlite3_bind_blob(s->ins_msg, 4, pl, PAYLOAD_LEN, SQLITE_STATIC);
        sq_step(s, s->ins_msg);
        sqlite3_bind_text(s->ins_q, 1, sess, sl, SQLITE_STATIC);
        sqlite3_bind_int64(s->ins_q, 2, (sqlite3_int64)op->id);
        sq_step(s, s->ins_q);
        break;
    }
    case OP_ACK: {
        int sl = msg_session(sess, sizeof(sess), op->id);
        sqlite3_bind_text(s->del_q, 1, sess, sl, SQLITE_STATIC);
        sqlite3_bind_int64(s->del_q, 2, (sqlite3_int64)op->id);
        sq_step(s, s->del_q);
        /* one subscriber per message here; the broker deletes when the last reference goes */
        sqlite3_bind_int64(s->del_msg, 1, (sqlite3_int64)op->id);
        sq_step(s, s->del_msg);
        break;
    }
    case OP_SET: {
        int tl = ret_topic(topic, sizeof(topic), op->key);
        make_payload(pl, op->id);
        sqlite3_bind_text(s->set_ret, 1, topic, tl, SQLITE_STATIC);
        sqlite3_bind_int(s->set_ret, 2, 1);
        sqlite3_bind_blob(s->set_ret, 3, pl, PAYLOAD_LEN, SQLITE_STATIC);
        sq_step(s, s->set_ret);
        break;
    }
    }
}

static void sq_commit(struct sq *s)
{
    if (s->in_txn)
        sq_exec(s, "COMMIT");
    s->in_txn = false;
}

static void sq_close(struct sq *s)
{
    sqlite3_stmt *all[] = {s->ins_msg, s->ins_q, s->del_q, s->del_msg, s->set_ret, s->sel_ret};
    for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++)
        sqlite3_finalize(all[i]);
    if (sqlite3_close(s->db) != SQLITE_OK)
        die("sqlite3_close", sqlite3_errmsg(s->db));
    s->db = NULL;
}

/* ---- append-only log store ----
 * File: 16-byte header "CXLOG\0v1" + 8 reserved, then records:
 *   u32 crc32c(len bytes + body), u32 len, body[len]
 * body: u8 type, then per type (little-endian):
 *   1 MSG  u64 id, u8 qos, u16 tlen, topic, u16 slen, session, u32 plen, payload
 *   2 ACK  u64 id, u16 slen, session
 *   3 RET  u8 qos, u16 tlen, topic, u32 plen, payload
 * Reading stops at the first record that is short or fails its CRC: that is a torn tail. */

#define LOG_MAGIC "CXLOG\0v1"
#define LOG_HDR 16
#define LOG_MAX_REC (1u << 20)
#define LOG_COMPACT_MIN (8u << 20)

struct lg {
    int fd;
    char path[600], tmp[600], dir[512];
    uint8_t *buf;
    size_t len, cap;
    uint64_t size;
    bool sync, keep_live;
    map_t live; /* key -> the record's bytes, for compaction */
    int compactions;
    double compact_s;
};

static void put_all(int fd, const uint8_t *p, size_t n)
{
    while (n) {
        ssize_t w = write(fd, p, n);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            die("write", NULL); /* ENOSPC lands here: see docs/persistence-design.md */
        }
        p += w;
        n -= (size_t)w;
    }
}

static void fsync_dir(const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY);
    if (fd < 0 || fsync(fd) < 0)
        die("fsync dir", NULL);
    close(fd);
}

static void lg_reserve(struct lg *l, size_t more)
{
    if (l->len + more <= l->cap)
        return;
    size_t cap = l->cap ? l->cap : 1 << 16;
    while (cap < l->len + more)
        cap *= 2;
    uint8_t *nb = realloc(l->buf, cap);
    if (!nb)
        die("realloc", "out of memory");
    l->buf = nb;
    l->cap = cap;
}

static void lg_open(struct lg *l, const char *dir, enum dura d, bool keep_live)
{
    memset(l, 0, sizeof(*l));
    snprintf(l->dir, sizeof(l->dir), "%s", dir);
    snprintf(l->path, sizeof(l->path), "%s/store.log", dir);
    snprintf(l->tmp, sizeof(l->tmp), "%s/store.log.compact", dir);
    l->fd = open(l->path, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC, 0600);
    if (l->fd < 0)
        die(l->path, NULL);
    uint8_t hdr[LOG_HDR] = {0};
    memcpy(hdr, LOG_MAGIC, 8);
    put_all(l->fd, hdr, LOG_HDR);
    if (fsync(l->fd) < 0)
        die("fsync", NULL);
    fsync_dir(dir);
    l->size = LOG_HDR;
    l->sync = d != D_NONE;
    l->keep_live = keep_live;
    if (keep_live)
        map_init(&l->live, 1 << 16);
}

/* Appends one framed record: body is built by the caller at buf+len+8, blen bytes. */
static void lg_frame(struct lg *l, uint32_t blen, const uint8_t *key, uint32_t klen, bool live)
{
    uint8_t *r = l->buf + l->len;
    memcpy(r + 4, &blen, 4);
    uint32_t crc = ~crc_update(~0u, r + 4, 4 + (size_t)blen);
    memcpy(r, &crc, 4);
    if (l->keep_live) {
        if (live)
            map_put(&l->live, key, klen, r, 8 + blen);
        else
            map_del(&l->live, key, klen);
    }
    l->len += 8 + (size_t)blen;
}

#define W8(p, v)  (*(p)++ = (uint8_t)(v))
#define WN(p, src, n) (memcpy((p), (src), (n)), (p) += (n))

static void lg_apply(struct lg *l, const struct op *op)
{
    char topic[96], sess[32];
    uint8_t key[1 + 96];
    lg_reserve(l, 8 + 1 + 8 + 1 + 2 + 96 + 2 + 32 + 4 + PAYLOAD_LEN);
    uint8_t *body = l->buf + l->len + 8, *p = body;
    switch (op->kind) {
    case OP_STORE: {
        uint16_t tl = (uint16_t)msg_topic(topic, sizeof(topic), op->id);
        uint16_t sl = (uint16_t)msg_session(sess, sizeof(sess), op->id);
        uint32_t pl = PAYLOAD_LEN;
        W8(p, 1);
        WN(p, &op->id, 8);
        W8(p, 1);
        WN(p, &tl, 2);
        WN(p, topic, tl);
        WN(p, &sl, 2);
        WN(p, sess, sl);
        WN(p, &pl, 4);
        make_payload(p, op->id);
        p += PAYLOAD_LEN;
        key[0] = 'M';
        memcpy(key + 1, &op->id, 8);
        lg_frame(l, (uint32_t)(p - body), key, 9, true);
        break;
    }
    case OP_ACK: {
        uint16_t sl = (uint16_t)msg_session(sess, sizeof(sess), op->id);
        W8(p, 2);
        WN(p, &op->id, 8);
        WN(p, &sl, 2);
        WN(p, sess, sl);
        key[0] = 'M';
        memcpy(key + 1, &op->id, 8);
        lg_frame(l, (uint32_t)(p - body), key, 9, false);
        break;
    }
    case OP_SET: {
        uint16_t tl = (uint16_t)ret_topic(topic, sizeof(topic), op->key);
        uint32_t pl = PAYLOAD_LEN;
        W8(p, 3);
        W8(p, 1);
        WN(p, &tl, 2);
        WN(p, topic, tl);
        WN(p, &pl, 4);
        make_payload(p, op->id);
        p += PAYLOAD_LEN;
        key[0] = 'R';
        memcpy(key + 1, topic, tl);
        lg_frame(l, (uint32_t)(p - body), key, 1u + tl, true);
        break;
    }
    }
}

/* Rewrites the live records into a new file, makes it durable, renames it over the log and
 * makes the rename durable. A crash at any point leaves either the old or the new file. */
static void lg_compact(struct lg *l)
{
    double t0 = now_s();
    int fd = open(l->tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0)
        die(l->tmp, NULL);
    size_t cap = 1 << 20, n = 0;
    uint8_t *out = xmalloc(cap);
    memset(out, 0, LOG_HDR);
    memcpy(out, LOG_MAGIC, 8);
    n = LOG_HDR;
    uint64_t size = 0;
    for (size_t i = 0; i < l->live.cap; i++) {
        if (!l->live.s[i].h)
            continue;
        const uint8_t *b = l->live.s[i].blob;
        uint32_t vl = blob_vlen(b);
        if (n + vl > cap) {
            put_all(fd, out, n);
            size += n;
            n = 0;
        }
        memcpy(out + n, blob_val(b), vl);
        n += vl;
    }
    put_all(fd, out, n);
    size += n;
    free(out);
    if (fdatasync(fd) < 0)
        die("fdatasync", NULL);
    if (rename(l->tmp, l->path) < 0)
        die("rename", NULL);
    fsync_dir(l->dir);
    close(l->fd);
    close(fd);
    l->fd = open(l->path, O_WRONLY | O_APPEND | O_CLOEXEC);
    if (l->fd < 0)
        die(l->path, NULL);
    l->size = size;
    l->compactions++;
    l->compact_s += now_s() - t0;
}

static void lg_commit(struct lg *l)
{
    if (l->len) {
        put_all(l->fd, l->buf, l->len);
        l->size += l->len;
        l->len = 0;
    }
    if (l->sync && fdatasync(l->fd) < 0)
        die("fdatasync", NULL); /* after a failed fsync the page cache state is unknown: stop */
    if (l->keep_live && l->size > LOG_COMPACT_MIN && l->size > 2 * (l->live.vbytes + LOG_HDR))
        lg_compact(l);
}

static void lg_close(struct lg *l)
{
    lg_commit(l);
    if (fsync(l->fd) < 0)
        die("fsync", NULL);
    close(l->fd);
    free(l->buf);
    if (l->keep_live)
        map_free(&l->live);
}

/* ---- the writer thread and the producer ---- */

struct bench {
    enum design design;
    enum dura dura;
    enum work work;
    const char *dir;
    double seconds;
    unsigned window, qbound;
    struct sq sq;
    struct lg lg;
    struct op *ring;
    uint64_t head, tail, msgs_sub, msgs_dur;
    bool stop;
    pthread_mutex_t mu;
    pthread_cond_t cv_w, cv_p;
    double *clat, *alat;
    size_t nclat, nalat, capclat, capalat;
    double t_end;
};

static void apply(struct bench *b, const struct op *op)
{
    if (b->design == S_SQLITE)
        sq_apply(&b->sq, op);
    else
        lg_apply(&b->lg, op);
}

static void commit(struct bench *b)
{
    if (b->design == S_SQLITE)
        sq_commit(&b->sq);
    else
        lg_commit(&b->lg);
}

static void sleep_until(double t)
{
    struct timespec ts;
    ts.tv_sec = (time_t)t;
    ts.tv_nsec = (long)((t - (double)ts.tv_sec) * 1e9);
    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR)
        ;
}

static void *writer_main(void *arg)
{
    struct bench *b = arg;
    double next = now_s();
    for (;;) {
        if (b->dura != D_ALWAYS) {
            next += BATCH_TICK_S;
            double t = now_s();
            if (next > t)
                sleep_until(next);
            else
                next = t; /* fell behind: commit now, do not try to catch up */
        }
        pthread_mutex_lock(&b->mu);
        while (b->dura == D_ALWAYS && b->head == b->tail && !b->stop)
            pthread_cond_wait(&b->cv_w, &b->mu);
        uint64_t from = b->tail, to = b->head;
        bool stop = b->stop;
        pthread_mutex_unlock(&b->mu);
        if (from == to) {
            if (stop)
                break;
            continue;
        }
        double t0 = now_s();
        for (uint64_t i = from; i < to; i++)
            apply(b, &b->ring[i % RING_CAP]);
        commit(b);
        double t1 = now_s();
        if (b->nclat < b->capclat)
            b->clat[b->nclat++] = t1 - t0;
        uint64_t msgs = 0;
        for (uint64_t i = from; i < to; i++) {
            const struct op *op = &b->ring[i % RING_CAP];
            if (op->kind == OP_ACK)
                continue;
            msgs++;
            if (b->nalat < b->capalat)
                b->alat[b->nalat++] = t1 - op->ts;
        }
        pthread_mutex_lock(&b->mu);
        b->tail = to;
        b->msgs_dur += msgs;
        pthread_cond_broadcast(&b->cv_p);
        pthread_mutex_unlock(&b->mu);
    }
    b->t_end = now_s();
    return NULL;
}

static uint64_t rng_state = 0x9E3779B97F4A7C15ull;

static uint64_t rng_next(void)
{
    uint64_t x = rng_state;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return rng_state = x;
}

static void produce(struct bench *b, double deadline, uint64_t first_id)
{
    struct op turn[2 * TURN_MSGS];
    uint64_t id = first_id;
    while (now_s() < deadline) {
        size_t n = 0;
        for (int k = 0; k < TURN_MSGS; k++, id++) {
            if (b->work == W_QOS1) {
                turn[n++] = (struct op){.kind = OP_STORE, .id = id};
                if (id >= first_id + QOS1_LAG)
                    turn[n++] = (struct op){.kind = OP_ACK, .id = id - QOS1_LAG};
            } else {
                uint32_t key = (uint32_t)(rng_next() % RET_TOPICS);
                turn[n++] = (struct op){.kind = OP_SET, .id = id, .key = key};
            }
        }
        pthread_mutex_lock(&b->mu);
        unsigned bound = b->dura == D_ALWAYS ? b->window : b->qbound;
        while (b->head - b->tail + n > RING_CAP || b->msgs_sub - b->msgs_dur + TURN_MSGS > bound)
            pthread_cond_wait(&b->cv_p, &b->mu);
        double ts = now_s();
        for (size_t i = 0; i < n; i++) {
            turn[i].ts = ts;
            b->ring[(b->head + i) % RING_CAP] = turn[i];
        }
        b->head += n;
        b->msgs_sub += TURN_MSGS;
        pthread_cond_signal(&b->cv_w);
        pthread_mutex_unlock(&b->mu);
    }
    pthread_mutex_lock(&b->mu);
    b->stop = true;
    pthread_cond_signal(&b->cv_w);
    pthread_mutex_unlock(&b->mu);
}

/* ---- measurement helpers ---- */

static void proc_io(uint64_t *wchar, uint64_t *wbytes)
{
    FILE *f = fopen("/proc/self/io", "r");
    char line[128];
    *wchar = *wbytes = 0;
    if (!f)
        return;
    while (fgets(line, sizeof(line), f)) {
        unsigned long long v;
        if (sscanf(line, "wchar: %llu", &v) == 1)
            *wchar = v;
        else if (sscanf(line, "write_bytes: %llu", &v) == 1)
            *wbytes = v;
    }
    fclose(f);
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double pct(double *v, size_t n, double p)
{
    if (!n)
        return 0;
    qsort(v, n, sizeof(*v), cmp_double);
    size_t i = (size_t)(p * (double)(n - 1) + 0.5);
    return v[i];
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof(*v), cmp_double);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static uint64_t file_size(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 ? (uint64_t)st.st_size : 0;
}

static char g_dir[512];

static void path_in(char *out, size_t cap, const char *name)
{
    snprintf(out, cap, "%s/%s", g_dir, name);
}

static uint64_t store_bytes(enum design d)
{
    char p[600];
    uint64_t n = 0;
    const char *names[] = {"store.db", "store.db-wal", "store.db-shm", "store.log"};
    for (size_t i = 0; i < 4; i++) {
        if ((d == S_LOG) != (i == 3))
            continue;
        path_in(p, sizeof(p), names[i]);
        n += file_size(p);
    }
    return n;
}

static void remove_files(void)
{
    const char *names[] = {"store.db", "store.db-wal", "store.db-shm", "store.log",
                           "store.log.compact"};
    char p[600];
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        path_in(p, sizeof(p), names[i]);
        unlink(p);
    }
}

static void drop_cache(const char *name)
{
    char p[600];
    path_in(p, sizeof(p), name);
    int fd = open(p, O_RDONLY);
    if (fd < 0)
        return;
    posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
    close(fd);
}

/* ---- one timed run of qos1 or retained ---- */

enum { F_OPS, F_C50, F_C99, F_A50, F_A99, F_WCHAR, F_DEV, F_MB, F_COMP, F_N };

static void open_store(struct bench *b, bool keep_live)
{
    char p[600];
    if (b->design == S_SQLITE) {
        path_in(p, sizeof(p), "store.db");
        sq_open(&b->sq, p, b->dura);
    } else {
        lg_open(&b->lg, g_dir, b->dura, keep_live);
    }
}

static void close_store(struct bench *b)
{
    if (b->design == S_SQLITE)
        sq_close(&b->sq);
    else
        lg_close(&b->lg);
}

static unsigned g_qbound = 16384;

static void run_once(enum design d, enum dura du, enum work w, double seconds, unsigned window,
                     double f[F_N])
{
    struct bench *b = calloc(1, sizeof(*b));
    if (!b)
        die("calloc", "out of memory");
    b->design = d;
    b->dura = du;
    b->work = w;
    b->seconds = seconds;
    b->window = window;
    b->qbound = g_qbound;
    b->ring = xmalloc(sizeof(struct op) * RING_CAP);
    b->capclat = 1 << 20;
    b->capalat = 1 << 23;
    b->clat = xmalloc(sizeof(double) * b->capclat);
    b->alat = xmalloc(sizeof(double) * b->capalat);
    pthread_mutex_init(&b->mu, NULL);
    pthread_cond_init(&b->cv_w, NULL);
    pthread_cond_init(&b->cv_p, NULL);
    remove_files();
    open_store(b, true);

    uint64_t first_id = 1;
    if (w == W_RETAIN) { /* prefill every topic, untimed, so the run is pure overwrite */
        for (uint32_t k = 0; k < RET_TOPICS; k++) {
            struct op op = {.kind = OP_SET, .id = k, .key = k};
            apply(b, &op);
            if (k % 10000 == 9999)
                commit(b);
        }
        commit(b);
        first_id = RET_TOPICS;
    }
    int comp0 = d == S_LOG ? b->lg.compactions : 0;

    uint64_t wc0, wb0, wc1, wb1;
    proc_io(&wc0, &wb0);
    double t0 = now_s();
    pthread_t wt;
    if (pthread_create(&wt, NULL, writer_main, b) != 0)
        die("pthread_create", "failed");
    produce(b, t0 + seconds, first_id);
    pthread_join(wt, NULL);
    proc_io(&wc1, &wb1);

    double el = b->t_end - t0;
    double msgs = (double)b->msgs_dur;
    f[F_OPS] = msgs / el;
    f[F_C50] = pct(b->clat, b->nclat, 0.50) * 1e3;
    f[F_C99] = pct(b->clat, b->nclat, 0.99) * 1e3;
    f[F_A50] = pct(b->alat, b->nalat, 0.50) * 1e3;
    f[F_A99] = pct(b->alat, b->nalat, 0.99) * 1e3;
    f[F_WCHAR] = msgs > 0 ? (double)(wc1 - wc0) / msgs : 0;
    f[F_DEV] = msgs > 0 ? (double)(wb1 - wb0) / msgs : 0;
    f[F_COMP] = d == S_LOG ? (double)(b->lg.compactions - comp0) : 0;
    close_store(b);
    f[F_MB] = (double)store_bytes(d) / 1e6;
    remove_files();
    pthread_mutex_destroy(&b->mu);
    pthread_cond_destroy(&b->cv_w);
    pthread_cond_destroy(&b->cv_p);
    free(b->ring);
    free(b->clat);
    free(b->alat);
    free(b);
}

static void run_case(enum design d, enum dura du, enum work w, double seconds, unsigned window,
                     int runs)
{
    double all[F_N][MAX_RUNS], med[F_N];
    for (int r = 0; r < runs; r++) {
        double f[F_N];
        run_once(d, du, w, seconds, window, f);
        for (int i = 0; i < F_N; i++)
            all[i][r] = f[i];
    }
    for (int i = 0; i < F_N; i++)
        med[i] = median(all[i], runs);
    printf("| %-8s | %-6s | %-12s | %9.0f | %7.2f | %7.2f | %7.2f | %7.2f | %7.0f | %7.0f |"
           " %7.1f | %4.0f |\n",
           w == W_QOS1 ? "qos1" : "retained", design_name[d], dura_name[du], med[F_OPS],
           med[F_C50], med[F_C99], med[F_A50], med[F_A99], med[F_WCHAR], med[F_DEV], med[F_MB],
           med[F_COMP]);
    fflush(stdout);
}

/* ---- restart: build a store of N retained messages, then load it into memory ---- */

static double build_retained(enum design d, uint32_t n)
{
    struct bench b = {.design = d, .dura = D_BATCH};
    remove_files();
    open_store(&b, false);
    double t0 = now_s();
    for (uint32_t k = 0; k < n; k++) {
        struct op op = {.kind = OP_SET, .id = k, .key = k};
        apply(&b, &op);
        if (k % 20000 == 19999)
            commit(&b);
    }
    commit(&b);
    close_store(&b); /* SQLite checkpoints the WAL into the database and removes it here */
    return now_s() - t0;
}

static size_t restore_sqlite(void)
{
    char p[600];
    struct sq s;
    path_in(p, sizeof(p), "store.db");
    sq_open(&s, p, D_BATCH);
    map_t m;
    map_init(&m, 1 << 20);
    int rc;
    while ((rc = sqlite3_step(s.sel_ret)) == SQLITE_ROW) {
        const void *t = sqlite3_column_text(s.sel_ret, 0);
        uint32_t tl = (uint32_t)sqlite3_column_bytes(s.sel_ret, 0);
        const void *pl = sqlite3_column_blob(s.sel_ret, 1);
        uint32_t plen = (uint32_t)sqlite3_column_bytes(s.sel_ret, 1);
        map_put(&m, t, tl, pl, plen);
    }
    if (rc != SQLITE_DONE)
        die("restore select", sqlite3_errmsg(s.db));
    sqlite3_reset(s.sel_ret);
    sq_close(&s);
    size_t n = m.n;
    map_free(&m);
    return n;
}

static uint16_t rd16(const uint8_t *p) { uint16_t v; memcpy(&v, p, 2); return v; }
static uint32_t rd32(const uint8_t *p) { uint32_t v; memcpy(&v, p, 4); return v; }

/* Replays the log into a map. Returns records kept; *torn_at is the offset of the first record
 * that is short or fails its CRC (the broker would truncate there), or 0 when the file is whole.
 */
static size_t restore_log(uint64_t *torn_at)
{
    char p[600];
    path_in(p, sizeof(p), "store.log");
    int fd = open(p, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        die(p, NULL);
    posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
    size_t cap = 4u << 20, have = 0, pos = 0;
    uint8_t *buf = xmalloc(cap);
    uint64_t off = 0; /* file offset of buf[0] */
    bool eof = false, hdr = false;
    map_t m;
    map_init(&m, 1 << 20);
    *torn_at = 0;
    for (;;) {
        if (!eof && have - pos < LOG_MAX_REC + 8) { /* refill */
            memmove(buf, buf + pos, have - pos);
            off += pos;
            have -= pos;
            pos = 0;
            while (have < cap) {
                ssize_t r = read(fd, buf + have, cap - have);
                if (r < 0 && errno == EINTR)
                    continue;
                if (r < 0)
                    die("read", NULL);
                if (r == 0) {
                    eof = true;
                    break;
                }
                have += (size_t)r;
            }
        }
        if (!hdr) {
            if (have < LOG_HDR || memcmp(buf, LOG_MAGIC, 8) != 0)
                die("restore", "not a culex log");
            pos = LOG_HDR;
            hdr = true;
            continue;
        }
        if (have - pos == 0)
            break;
        if (have - pos < 8) {
            *torn_at = off + pos;
            break;
        }
        const uint8_t *r = buf + pos;
        uint32_t crc = rd32(r), len = rd32(r + 4);
        if (len == 0 || len > LOG_MAX_REC || have - pos - 8 < len ||
            ~crc_update(~0u, r + 4, 4 + (size_t)len) != crc) {
            *torn_at = off + pos;
            break;
        }
        const uint8_t *b = r + 8;
        uint8_t key[1 + 65536];
        switch (b[0]) {
        case 1: /* MSG */
            key[0] = 'M';
            memcpy(key + 1, b + 1, 8);
            map_put(&m, key, 9, b, len);
            break;
        case 2: /* ACK */
            key[0] = 'M';
            memcpy(key + 1, b + 1, 8);
            map_del(&m, key, 9);
            break;
        case 3: { /* RET */
            uint16_t tl = rd16(b + 2);
            uint32_t pl = rd32(b + 4 + tl);
            map_put(&m, b + 4, tl, b + 8 + tl, pl);
            break;
        }
        default:
            *torn_at = off + pos;
            goto out;
        }
        pos += 8 + (size_t)len;
    }
out:
    close(fd);
    free(buf);
    size_t n = m.n;
    map_free(&m);
    return n;
}

/* A torn tail (a crash inside a write) and a flipped byte in the middle: what replay keeps. */
static void damage_log_checks(uint32_t n)
{
    char p[600];
    path_in(p, sizeof(p), "store.log");
    uint64_t size = file_size(p), torn;
    if (truncate(p, (off_t)(size - 100)) < 0)
        die("truncate", NULL);
    size_t got = restore_log(&torn);
    printf("  log, last 100 bytes cut off: %zu of %u records kept, replay stops at offset %" PRIu64
           " (the broker truncates there)\n", got, n, torn);
    int fd = open(p, O_RDWR);
    uint8_t c;
    off_t mid = (off_t)(size / 2);
    if (fd < 0 || pread(fd, &c, 1, mid) != 1)
        die("pread", NULL);
    c ^= 0x40;
    if (pwrite(fd, &c, 1, mid) != 1)
        die("pwrite", NULL);
    close(fd);
    got = restore_log(&torn);
    printf("  log, one byte flipped at offset %lld: CRC catches it at record offset %" PRIu64
           ", %zu records before it kept\n", (long long)mid, torn, got);
}

static void run_restart(enum design d, uint32_t n, int runs)
{
    double build = build_retained(d, n);
    double mb = (double)store_bytes(d) / 1e6;
    double secs[MAX_RUNS];
    size_t got = 0;
    uint64_t torn = 0;
    for (int r = 0; r < runs; r++) {
        drop_cache(d == S_LOG ? "store.log" : "store.db");
        drop_cache("store.db-wal");
        double t0 = now_s();
        got = d == S_LOG ? restore_log(&torn) : restore_sqlite();
        secs[r] = now_s() - t0;
    }
    printf("| restart  | %-6s | %9u | %8.2f | %8.1f | %6.1f | %8.2f |%s\n", design_name[d], n,
           median(secs, runs), mb, mb * 1e6 / n, build,
           got == n && torn == 0 ? "" : " LOAD MISMATCH");
    if (d == S_LOG)
        damage_log_checks(n);
    fflush(stdout);
    remove_files();
}

int main(int argc, char **argv)
{
    double seconds = 2.0;
    int runs = 3, opt;
    unsigned window = 1024;
    uint32_t restart_n = 1000000;
    const char *cases = "qrs", *dir = NULL;
    while ((opt = getopt(argc, argv, "d:t:r:n:c:w:q:")) != -1) {
        switch (opt) {
        case 'd': dir = optarg; break;
        case 't': seconds = strtod(optarg, NULL); break;
        case 'r': runs = (int)strtol(optarg, NULL, 10); break;
        case 'n': restart_n = (uint32_t)strtoul(optarg, NULL, 10); break;
        case 'c': cases = optarg; break;
        case 'w': window = (unsigned)strtoul(optarg, NULL, 10); break;
        case 'q': g_qbound = (unsigned)strtoul(optarg, NULL, 10); break;
        default:
            fprintf(stderr, "usage: %s [-d dir] [-t seconds] [-r runs] [-n restart_count]"
                            " [-c qrs] [-w window] [-q queue_bound]\n", argv[0]);
            return 2;
        }
    }
    if (runs < 1 || runs > MAX_RUNS || seconds <= 0 || window < TURN_MSGS ||
        g_qbound < TURN_MSGS || g_qbound > RING_CAP / 2)
        die("arguments", "runs 1..9, seconds > 0, 64 <= window, 64 <= queue bound <= 65536");
    crc_init();
    for (size_t i = 0; i < PAYLOAD_LEN; i++)
        payload_base[i] = (uint8_t)rng_next();

    if (dir) {
        snprintf(g_dir, sizeof(g_dir), "%s", dir);
        if (mkdir(g_dir, 0700) < 0 && errno != EEXIST)
            die(g_dir, NULL);
    } else {
        snprintf(g_dir, sizeof(g_dir), "/tmp/cx_store_choice.XXXXXX");
        if (!mkdtemp(g_dir))
            die("mkdtemp", NULL);
    }
    struct statvfs vfs;
    if (statvfs(g_dir, &vfs) == 0 && (double)vfs.f_bavail * (double)vfs.f_frsize < 3e9)
        die(g_dir, "needs 3 GB free");

    printf("store_choice: dir %s, %.1f s per run, median of %d runs, SQLite %s, crc32c %s\n\n",
           g_dir, seconds, runs, sqlite3_libversion(), crc_hw ? "sse4.2" : "table");
    static const enum dura sq_d[] = {D_ALWAYS, D_BATCH, D_BATCH_NORMAL, D_NONE};
    static const enum dura lg_d[] = {D_ALWAYS, D_BATCH, D_NONE};
    if (strchr(cases, 'q') || strchr(cases, 'r')) {
        printf("| workload | store  | durability   |  msgs/s   | c50 ms  | c99 ms  | a50 ms  |"
               " a99 ms  | wchar/op| dev B/op| file MB | cmp  |\n");
        printf("|----------|--------|--------------|-----------|---------|---------|---------|"
               "---------|---------|---------|---------|------|\n");
        for (int wi = 0; wi < 2; wi++) {
            enum work w = wi == 0 ? W_QOS1 : W_RETAIN;
            if (!strchr(cases, w == W_QOS1 ? 'q' : 'r'))
                continue;
            for (size_t i = 0; i < 4; i++)
                run_case(S_SQLITE, sq_d[i], w, seconds, window, runs);
            for (size_t i = 0; i < 3; i++)
                run_case(S_LOG, lg_d[i], w, seconds, window, runs);
        }
        printf("\nc = commit (apply + commit of one batch, writer side); a = ack latency"
               " (submitted -> durable); wchar = bytes through write(2) per message;\n"
               "dev = bytes the kernel accounted to storage per message; file MB at the end"
               " of the run; cmp = log compactions during the run.\n\n");
    }
    if (strchr(cases, 's')) {
        printf("| workload | store  |  records  | load s   | file MB  | B/rec  | build s  |\n");
        printf("|----------|--------|-----------|----------|----------|--------|----------|\n");
        run_restart(S_SQLITE, restart_n, runs);
        run_restart(S_LOG, restart_n, runs);
        printf("\nload = open + read + verify + insert into an in-memory hash map, page cache for"
               " the file dropped first (POSIX_FADV_DONTNEED).\n");
    }
    remove_files();
    if (!dir)
        rmdir(g_dir);
    return 0;
}
