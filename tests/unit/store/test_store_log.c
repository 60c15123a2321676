/* test_store_log.c: the append-only log engine against real files in a temp directory:
 * the file header and foreign files, round trip, group commit under several producers,
 * torn tails at every offset, damage in the middle (skipped, copied aside, compacted away),
 * compaction with concurrent appends, and a write failure (RLIMIT_FSIZE). */
#include "cx_test.h"
#include "store/store_log.h"
#include "util/err.h"
#include "util/log.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>

/* --- helpers ----------------------------------------------------------------------- */

static char tmpdir[64];
static char logpath[128];

static void setup(void)
{
    snprintf(tmpdir, sizeof tmpdir, "/tmp/cx_store_test_XXXXXX");
    CHECK(mkdtemp(tmpdir) != NULL);
    snprintf(logpath, sizeof logpath, "%s/culex.log", tmpdir);
}

static void teardown(void)
{
    DIR *d = opendir(tmpdir);
    if (!d)
        return;
    struct dirent *e;
    char p[512];
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.' && (!e->d_name[1] || (e->d_name[1] == '.' && !e->d_name[2])))
            continue;
        snprintf(p, sizeof p, "%s/%s", tmpdir, e->d_name);
        if (unlink(p) != 0)
            rmdir(p);
    }
    closedir(d);
    rmdir(tmpdir);
}

static long long file_size(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 ? (long long)st.st_size : -1;
}

static int count_files_with_prefix(const char *prefix)
{
    DIR *d = opendir(tmpdir);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        n += strncmp(e->d_name, prefix, strlen(prefix)) == 0;
    closedir(d);
    return n;
}

/* The whole file, malloc'ed; *len receives its size. */
static uint8_t *slurp(const char *path, size_t *len)
{
    long long n = file_size(path);
    CHECK(n >= 0);
    uint8_t *p = malloc((size_t)n + 1);
    CHECK(p != NULL);
    int fd = open(path, O_RDONLY);
    CHECK(fd >= 0);
    CHECK(read(fd, p, (size_t)n) == n);
    close(fd);
    *len = (size_t)n;
    return p;
}

static void write_file(const char *path, const void *p, size_t n)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    CHECK(fd >= 0);
    CHECK(write(fd, p, n) == (ssize_t)n);
    close(fd);
}

/* Log lines, captured through the topic sink (which carries every line, without the
 * time stamp), so that tests can check that a refusal names the file. */
static char logged[8192];

static void capture_log(void *ud, unsigned type, const char *line, size_t len)
{
    size_t have = strlen(logged);
    if (have + len + 2 < sizeof logged) {
        memcpy(logged + have, line, len);
        logged[have + len] = '\n';
        logged[have + len + 1] = 0;
    }
}

static void capture_start(void)
{
    logged[0] = 0;
    cx_log_settings_t ls = {.types = CX_LOG_ALL, .dests = CX_LOGDEST_STDERR | CX_LOGDEST_TOPIC,
                            .timestamp = true};
    CHECK_INT_EQ(cx_log_configure(&ls), 0);
    cx_log_set_topic_sink(capture_log, NULL);
}

static const uint8_t good_header[CX_STORE_LOG_HEADER_LEN] = {
    'C', 'U', 'L', 'E', 'X', 'L', 'O', 'G', 1, 0, 0, 0, 0, 0, 0, 0};

static void expected_header(uint8_t out[CX_STORE_LOG_HEADER_LEN])
{
    memcpy(out, good_header, 12);
    uint32_t c = cx_store_crc32c(0, out, 12);
    for (int i = 0; i < 4; i++)
        out[12 + i] = (uint8_t)(c >> (8 * i));
}

#define MAXREC 5000

/* What a replay saw, in order. */
typedef struct seen {
    int n;
    uint8_t type[MAXREC];
    char key[MAXREC][32];
    size_t vlen[MAXREC];
    uint32_t vsum[MAXREC]; /* a checksum of the value, to compare without storing it */
    uint64_t off[MAXREC];
} seen_t;

static uint32_t sum(const void *p, size_t n)
{
    return cx_store_crc32c(0, p, n);
}

static int collect_ret = CX_OK; /* what collect returns: a positive value must not abort */

static int collect(void *ud, const cx_store_log_rec_t *r)
{
    seen_t *s = ud;
    if (!s)
        return collect_ret;
    CHECK(s->n < MAXREC);
    CHECK(r->key.len < 32);
    s->type[s->n] = r->type;
    memcpy(s->key[s->n], r->key.p, r->key.len);
    s->key[s->n][r->key.len] = 0;
    s->vlen[s->n] = r->val.len;
    s->vsum[s->n] = sum(r->val.p, r->val.len);
    s->off[s->n] = r->off;
    s->n++;
    return collect_ret;
}

static seen_t *reopen(cx_store_log_recovery_t *rec)
{
    static seen_t seen;
    memset(&seen, 0, sizeof seen);
    int err = 1;
    cx_store_log_t *s = cx_store_log_open(logpath, NULL, collect, &seen, rec, &err);
    CHECK_INT_EQ(err, CX_OK);
    CHECK(s != NULL);
    CHECK_INT_EQ(cx_store_log_close(s), CX_OK);
    return &seen;
}

static cx_store_log_t *open_ok(const cx_store_log_opts_t *o)
{
    int err = 1;
    cx_store_log_t *s = cx_store_log_open(logpath, o, NULL, NULL, NULL, &err);
    CHECK_INT_EQ(err, CX_OK);
    CHECK(s != NULL);
    return s;
}

static int append_kv(cx_store_log_t *s, uint8_t type, const char *key, const char *val,
                     uint64_t *seq)
{
    return cx_store_log_append(s, type, key, strlen(key), val, val ? strlen(val) : 0, seq);
}

/* Writes n records "k<i>" = "value-<i>" and returns the offset of the last one. */
static uint64_t write_n(int n)
{
    cx_store_log_t *s = open_ok(NULL);
    char k[32], v[64];
    for (int i = 0; i < n; i++) {
        snprintf(k, sizeof k, "k%d", i);
        snprintf(v, sizeof v, "value-%d", i);
        CHECK_INT_EQ(append_kv(s, 1, k, v, NULL), CX_OK);
    }
    CHECK_INT_EQ(cx_store_log_sync(s), CX_OK);
    CHECK_INT_EQ(cx_store_log_close(s), CX_OK);
    cx_store_log_recovery_t rec;
    seen_t *seen = reopen(&rec);
    CHECK_INT_EQ(seen->n, n);
    return seen->off[n - 1];
}

/* --- tests ------------------------------------------------------------------------- */

static void test_crc32c_vector(void)
{
    CHECK_INT_EQ(cx_store_crc32c(0, "123456789", 9), 0xE3069283u);
    /* Incremental equals one-shot. */
    CHECK_INT_EQ(cx_store_crc32c(cx_store_crc32c(0, "1234", 4), "56789", 5), 0xE3069283u);
}

static uint64_t xorshift(uint64_t *st)
{
    uint64_t x = *st;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return *st = x;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* The dispatching CRC (SSE4.2 where the CPU has it) against the table, on random bytes at
 * every alignment and many lengths, one-shot and continued from a running value. */
static void test_crc32c_hw_matches_sw(void)
{
    CHECK_INT_EQ(cx_store_crc32c_sw(0, "123456789", 9), 0xE3069283u);
#if defined(__x86_64__)
    printf("# crc32c: %s\n", __builtin_cpu_supports("sse4.2") ? "sse4.2" : "table only");
#endif
    static uint8_t buf[8192 + 64];
    uint64_t st = 0x9E3779B97F4A7C15ull;
    for (size_t i = 0; i < sizeof buf; i++)
        buf[i] = (uint8_t)xorshift(&st);
    for (size_t align = 0; align < 16; align++)
        for (size_t len = 0; len <= 300; len++) {
            const uint8_t *p = buf + align;
            CHECK_INT_EQ(cx_store_crc32c(0, p, len), cx_store_crc32c_sw(0, p, len));
            uint32_t seed = (uint32_t)xorshift(&st);
            CHECK_INT_EQ(cx_store_crc32c(seed, p, len), cx_store_crc32c_sw(seed, p, len));
        }
    for (int i = 0; i < 2000; i++) {
        size_t off = (size_t)(xorshift(&st) % 64), len = (size_t)(xorshift(&st) % 8192);
        uint32_t a = cx_store_crc32c(0, buf + off, len);
        CHECK_INT_EQ(a, cx_store_crc32c_sw(0, buf + off, len));
        size_t cut = len ? (size_t)(xorshift(&st) % len) : 0; /* split anywhere */
        CHECK_INT_EQ(cx_store_crc32c(cx_store_crc32c(0, buf + off, cut), buf + off + cut,
                                     len - cut), a);
    }
    /* Throughput, for the record (not checked). */
    enum { MB = 1 << 20, ROUNDS = 8 };
    uint8_t *big = malloc(MB);
    CHECK(big != NULL);
    memset(big, 0x5a, MB);
    uint32_t c1 = 0, c2 = 0;
    double t0 = now_s();
    for (int r = 0; r < ROUNDS; r++)
        c1 = cx_store_crc32c_sw(c1, big, MB);
    double t1 = now_s();
    for (int r = 0; r < ROUNDS * 16; r++)
        c2 = cx_store_crc32c(c2, big, MB);
    double t2 = now_s();
    printf("# crc32c throughput: table %.0f MB/s, cx_store_crc32c %.0f MB/s (%x %x)\n",
           ROUNDS / (t1 - t0), ROUNDS * 16 / (t2 - t1), c1, c2);
    free(big);
}

static void test_roundtrip(void)
{
    setup();
    static uint8_t big[100000];
    for (size_t i = 0; i < sizeof big; i++)
        big[i] = (uint8_t)(i * 7);
    cx_store_log_t *s = open_ok(NULL);
    char k[32], v[64];
    uint64_t seq = 0;
    for (int i = 0; i < 100; i++) {
        snprintf(k, sizeof k, "topic/%d", i);
        snprintf(v, sizeof v, "payload %d", i);
        CHECK_INT_EQ(append_kv(s, (uint8_t)(i % 7), k, v, &seq), CX_OK);
        CHECK_INT_EQ(seq, i + 1);
    }
    CHECK_INT_EQ(cx_store_log_append(s, 200, "", 0, NULL, 0, NULL), CX_OK); /* empty */
    CHECK_INT_EQ(cx_store_log_append(s, 201, "big", 3, big, sizeof big, &seq), CX_OK);
    CHECK_INT_EQ(cx_store_log_commit_wait(s, seq), CX_OK);
    CHECK_INT_EQ(cx_store_log_commit_wait(s, seq + 1), CX_EINVAL); /* not handed out */
    cx_store_log_stats_t st;
    cx_store_log_stats(s, &st);
    CHECK_INT_EQ(st.durable_seq, 102);
    CHECK_INT_EQ(st.file_size, file_size(logpath));
    CHECK_INT_EQ(cx_store_log_close(s), CX_OK);

    cx_store_log_recovery_t rec;
    seen_t *seen = reopen(&rec);
    CHECK_INT_EQ(rec.records, 102);
    CHECK_INT_EQ(rec.bytes_dropped, 0);
    CHECK(!rec.corrupt);
    CHECK_INT_EQ(seen->n, 102);
    for (int i = 0; i < 100; i++) {
        snprintf(k, sizeof k, "topic/%d", i);
        snprintf(v, sizeof v, "payload %d", i);
        CHECK_INT_EQ(seen->type[i], i % 7);
        CHECK_STR_EQ(seen->key[i], k);
        CHECK_INT_EQ(seen->vsum[i], sum(v, strlen(v)));
    }
    CHECK_INT_EQ(seen->type[100], 200);
    CHECK_INT_EQ(seen->vlen[100], 0);
    CHECK_STR_EQ(seen->key[100], "");
    CHECK_INT_EQ(seen->vlen[101], sizeof big);
    CHECK_INT_EQ(seen->vsum[101], sum(big, sizeof big));

    /* Appends after a reopen continue the file. */
    s = open_ok(NULL);
    CHECK_INT_EQ(append_kv(s, 9, "after", "reopen", NULL), CX_OK);
    CHECK_INT_EQ(cx_store_log_close(s), CX_OK); /* close commits what is pending */
    seen = reopen(&rec);
    CHECK_INT_EQ(seen->n, 103);
    CHECK_STR_EQ(seen->key[102], "after");
    teardown();
}

static void test_replay_callback_return(void)
{
    setup();
    write_n(3);
    collect_ret = 1; /* positive: carry on */
    cx_store_log_recovery_t rec;
    seen_t *seen = reopen(&rec);
    CHECK_INT_EQ(seen->n, 3);
    collect_ret = CX_ENOMEM; /* negative: abort, file untouched */
    long long before = file_size(logpath);
    int err = 0;
    static seen_t s2;
    CHECK(cx_store_log_open(logpath, NULL, collect, &s2, &rec, &err) == NULL);
    CHECK_INT_EQ(err, CX_ENOMEM);
    CHECK_INT_EQ(s2.n, 1);
    CHECK_INT_EQ(file_size(logpath), before);
    collect_ret = CX_OK;
    teardown();
}

static void test_record_too_big(void)
{
    setup();
    cx_store_log_opts_t o = {.max_record = 16};
    int err;
    cx_store_log_t *s = cx_store_log_open(logpath, &o, NULL, NULL, NULL, &err);
    CHECK(s != NULL);
    CHECK_INT_EQ(append_kv(s, 1, "0123456789", "0123456", NULL), CX_ETOOBIG);
    CHECK_INT_EQ(append_kv(s, 1, "0123456789", "012345", NULL), CX_OK);
    CHECK_INT_EQ(cx_store_log_close(s), CX_OK);
    teardown();
}

#define PRODUCERS 4
#define PER_PRODUCER 400

typedef struct producer {
    cx_store_log_t *s;
    int id;
    bool wait;
} producer_t;

static void *produce(void *arg)
{
    producer_t *p = arg;
    char k[32], v[64];
    for (int i = 0; i < PER_PRODUCER; i++) {
        snprintf(k, sizeof k, "p%d-%d", p->id, i);
        snprintf(v, sizeof v, "message %d from producer %d", i, p->id);
        uint64_t seq;
        CHECK_INT_EQ(append_kv(p->s, (uint8_t)p->id, k, v, &seq), CX_OK);
        if (p->wait) /* `always`: hold the ack until durable */
            CHECK_INT_EQ(cx_store_log_commit_wait(p->s, seq), CX_OK);
    }
    return NULL;
}

static void check_producers_replayed(void)
{
    cx_store_log_recovery_t rec;
    seen_t *seen = reopen(&rec);
    CHECK_INT_EQ(seen->n, PRODUCERS * PER_PRODUCER);
    int next[PRODUCERS] = {0};
    char k[32];
    for (int i = 0; i < seen->n; i++) {
        int id = seen->type[i];
        CHECK(id >= 0 && id < PRODUCERS);
        /* Each producer's records are complete and in its own order. */
        snprintf(k, sizeof k, "p%d-%d", id, next[id]++);
        CHECK_STR_EQ(seen->key[i], k);
    }
    for (int id = 0; id < PRODUCERS; id++)
        CHECK_INT_EQ(next[id], PER_PRODUCER);
}

static void test_group_commit_always(void)
{
    setup();
    cx_store_log_t *s = open_ok(NULL);
    pthread_t t[PRODUCERS];
    producer_t p[PRODUCERS];
    for (int i = 0; i < PRODUCERS; i++) {
        p[i] = (producer_t){s, i, true};
        CHECK_INT_EQ(pthread_create(&t[i], NULL, produce, &p[i]), 0);
    }
    for (int i = 0; i < PRODUCERS; i++)
        pthread_join(t[i], NULL);
    cx_store_log_stats_t st;
    cx_store_log_stats(s, &st);
    CHECK_INT_EQ(st.durable_seq, PRODUCERS * PER_PRODUCER);
    /* Waiters that arrive while a commit runs share the next one. */
    printf("# always: %d records in %llu commits\n", PRODUCERS * PER_PRODUCER,
           (unsigned long long)st.batches);
    CHECK(st.batches < PRODUCERS * PER_PRODUCER);
    CHECK_INT_EQ(cx_store_log_close(s), CX_OK);
    check_producers_replayed();
    teardown();
}

static void test_group_commit_batch_timer(void)
{
    setup();
    cx_store_log_opts_t o = {.sync = CX_STORE_LOG_SYNC_BATCH, .batch_ms = 20};
    cx_store_log_t *s = open_ok(&o);
    pthread_t t[PRODUCERS];
    producer_t p[PRODUCERS];
    for (int i = 0; i < PRODUCERS; i++) {
        p[i] = (producer_t){s, i, false};
        CHECK_INT_EQ(pthread_create(&t[i], NULL, produce, &p[i]), 0);
    }
    for (int i = 0; i < PRODUCERS; i++)
        pthread_join(t[i], NULL);
    /* Nobody waits: the tick alone must make everything durable. */
    cx_store_log_stats_t st;
    for (int tries = 0; tries < 200; tries++) {
        cx_store_log_stats(s, &st);
        if (st.durable_seq == PRODUCERS * PER_PRODUCER)
            break;
        usleep(10000);
    }
    CHECK_INT_EQ(st.durable_seq, PRODUCERS * PER_PRODUCER);
    printf("# batch: %d records in %llu commits\n", PRODUCERS * PER_PRODUCER,
           (unsigned long long)st.batches);
    CHECK_INT_EQ(cx_store_log_close(s), CX_OK);
    check_producers_replayed();
    teardown();
}

static void copy_prefix(const char *from, const char *to, long long n)
{
    int in = open(from, O_RDONLY), out = open(to, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    CHECK(in >= 0 && out >= 0);
    static char buf[1 << 16];
    while (n > 0) {
        ssize_t r = read(in, buf, n < (long long)sizeof buf ? (size_t)n : sizeof buf);
        CHECK(r > 0);
        CHECK(write(out, buf, (size_t)r) == r);
        n -= r;
    }
    close(in);
    close(out);
}

static void test_torn_tail_every_offset(void)
{
    setup();
    const int n = 20;
    uint64_t last = write_n(n);
    long long full = file_size(logpath);
    char orig[160];
    snprintf(orig, sizeof orig, "%s/orig", tmpdir);
    CHECK_INT_EQ(rename(logpath, orig), 0);
    for (long long cut = (long long)last; cut < full; cut++) {
        copy_prefix(orig, logpath, cut);
        cx_store_log_recovery_t rec;
        seen_t *seen = reopen(&rec);
        CHECK_INT_EQ(seen->n, n - 1);
        CHECK_INT_EQ(rec.bytes_kept, last);
        CHECK_INT_EQ(rec.bytes_dropped, cut - (long long)last);
        CHECK(!rec.corrupt); /* a short tail is a crash mid-write, not corruption */
        CHECK_INT_EQ(file_size(logpath), last);
        /* Appending continues right after the last good record. */
        cx_store_log_t *s = open_ok(NULL);
        CHECK_INT_EQ(append_kv(s, 1, "again", "x", NULL), CX_OK);
        CHECK_INT_EQ(cx_store_log_close(s), CX_OK);
        seen = reopen(&rec);
        CHECK_INT_EQ(seen->n, n);
        CHECK_STR_EQ(seen->key[n - 1], "again");
        CHECK_STR_EQ(seen->key[n - 2], "k18");
        CHECK_INT_EQ(rec.bytes_dropped, 0);
    }
    CHECK_INT_EQ(count_files_with_prefix("culex.log.corrupt"), 0);
    teardown();
}

static void flip_byte_mask(long long off, uint8_t mask)
{
    int fd = open(logpath, O_RDWR);
    CHECK(fd >= 0);
    uint8_t b;
    CHECK(pread(fd, &b, 1, off) == 1);
    b ^= mask;
    CHECK(pwrite(fd, &b, 1, off) == 1);
    close(fd);
}

/* --- corruption in the middle ------------------------------------------------------ */

#define NMAX 64

/* Writes n records "k<i>" = "value-<i>", fills off[] with their offsets and returns the
 * file size. */
static long long write_n_offsets(int n, uint64_t off[NMAX])
{
    CHECK(n <= NMAX);
    write_n(n);
    cx_store_log_recovery_t rec;
    seen_t *seen = reopen(&rec);
    CHECK_INT_EQ(seen->n, n);
    memcpy(off, seen->off, (size_t)n * sizeof off[0]);
    return file_size(logpath);
}

static void overwrite(long long off, const void *p, size_t n)
{
    int fd = open(logpath, O_RDWR);
    CHECK(fd >= 0);
    CHECK(pwrite(fd, p, n, off) == (ssize_t)n);
    close(fd);
}

/* The replay holds exactly the records k<i> that are not damaged, in order, with their
 * values. */
static void check_all_but(const seen_t *seen, int n, const bool *damaged)
{
    char k[32], v[64];
    int j = 0;
    for (int i = 0; i < n; i++) {
        if (damaged[i])
            continue;
        CHECK(j < seen->n);
        snprintf(k, sizeof k, "k%d", i);
        snprintf(v, sizeof v, "value-%d", i);
        CHECK_STR_EQ(seen->key[j], k);
        CHECK_INT_EQ(seen->vsum[j], sum(v, strlen(v)));
        j++;
    }
    CHECK_INT_EQ(seen->n, j);
}

/* The path of the n-th (0-based, by name) "culex.log.corrupt-*" file. */
static const char *copy_path(int which)
{
    static char p[512];
    char names[8][256];
    int n = 0;
    DIR *d = opendir(tmpdir);
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        if (strncmp(e->d_name, "culex.log.corrupt-", 18) == 0 && n < 8)
            snprintf(names[n++], sizeof names[0], "%s", e->d_name);
    closedir(d);
    CHECK(which < n);
    qsort(names, (size_t)n, sizeof names[0], (int (*)(const void *, const void *))strcmp);
    snprintf(p, sizeof p, "%s/%s", tmpdir, names[which]);
    return p;
}

static void check_copy_equals(int which, const uint8_t *orig, size_t len)
{
    size_t clen;
    uint8_t *c = slurp(copy_path(which), &clen);
    CHECK_INT_EQ(clen, len);
    CHECK(memcmp(c, orig, len) == 0);
    free(c);
}

/* A live set made of what the replay returned (the values follow from the keys). */
static int emit_seen(void *ud, cx_store_log_compactor_t *c)
{
    const seen_t *seen = ud;
    char v[64];
    for (int i = 0; i < seen->n; i++) {
        snprintf(v, sizeof v, "value-%s", seen->key[i] + 1);
        int rc = cx_store_log_compact_put(c, seen->type[i], seen->key[i],
                                          strlen(seen->key[i]), v, strlen(v));
        if (rc)
            return rc;
    }
    return CX_OK;
}

/* What the README asks of the caller when rewrite_needed is set: compact right after the
 * open, from the state rebuilt by the replay. Afterwards the log is clean. */
static void compact_and_check_clean(int n, const bool *damaged)
{
    static seen_t model;
    memset(&model, 0, sizeof model);
    int copies = count_files_with_prefix("culex.log.corrupt-");
    int err = 1;
    cx_store_log_recovery_t rec;
    cx_store_log_t *s = cx_store_log_open(logpath, NULL, collect, &model, &rec, &err);
    CHECK(s != NULL);
    CHECK(rec.rewrite_needed);
    CHECK_INT_EQ(count_files_with_prefix("culex.log.corrupt-"), copies + 1);
    CHECK_INT_EQ(cx_store_log_compact(s, emit_seen, &model), CX_OK);
    cx_store_log_stats_t st;
    cx_store_log_stats(s, &st);
    CHECK_INT_EQ(st.file_size, file_size(logpath));
    CHECK_INT_EQ(cx_store_log_close(s), CX_OK);
    seen_t *seen = reopen(&rec);
    CHECK(!rec.corrupt);
    CHECK(!rec.rewrite_needed);
    CHECK_INT_EQ(rec.bytes_skipped, 0);
    CHECK_INT_EQ(rec.bytes_dropped, 0);
    check_all_but(seen, n, damaged);
    CHECK_INT_EQ(count_files_with_prefix("culex.log.corrupt-"), copies + 1);
}

/* Damages record 4 of 10 at `delta` bytes into it and checks that the nine others come
 * back, the copy equals the damaged file, appends still work, and compaction cleans up. */
static void check_mid_damage(long long delta, uint8_t mask)
{
    setup();
    uint64_t off[NMAX];
    long long full = write_n_offsets(10, off);
    flip_byte_mask((long long)off[4] + delta, mask);
    size_t olen;
    uint8_t *orig = slurp(logpath, &olen);

    cx_store_log_recovery_t rec;
    seen_t *seen = reopen(&rec);
    bool damaged[10] = {[4] = true};
    check_all_but(seen, 10, damaged);
    CHECK(rec.corrupt);
    CHECK(rec.rewrite_needed);
    CHECK_INT_EQ(rec.records, 9);
    CHECK_INT_EQ(rec.bytes_skipped, off[5] - off[4]);
    CHECK_INT_EQ(rec.bytes_dropped, 0);
    CHECK_INT_EQ(rec.bytes_kept, full);
    CHECK_INT_EQ(file_size(logpath), full); /* nothing was cut */
    CHECK_INT_EQ(count_files_with_prefix("culex.log.corrupt-"), 1);
    check_copy_equals(0, orig, olen);

    /* Before the compaction appends go to the end, and each open skips the same region
     * again, with a copy of its own (this one, and the reopen below). */
    cx_store_log_t *s = open_ok(NULL);
    CHECK_INT_EQ(append_kv(s, 1, "k10", "value-10", NULL), CX_OK);
    CHECK_INT_EQ(cx_store_log_close(s), CX_OK);
    seen = reopen(&rec);
    bool damaged11[11] = {[4] = true};
    check_all_but(seen, 11, damaged11);
    CHECK(rec.rewrite_needed);
    CHECK_INT_EQ(rec.bytes_skipped, off[5] - off[4]);
    CHECK_INT_EQ(count_files_with_prefix("culex.log.corrupt-"), 3);
    check_copy_equals(0, orig, olen);

    compact_and_check_clean(11, damaged11);
    free(orig);
    teardown();
}

static void test_corrupt_mid_value(void)
{
    check_mid_damage(13 + 3, 0x40); /* inside the key/value bytes */
}

static void test_corrupt_mid_crc(void)
{
    check_mid_damage(0, 0x01);
}

static void test_corrupt_mid_length_low(void)
{
    check_mid_damage(4, 0x40); /* payload_len 9 -> 73: a checksum mismatch */
}

static void test_corrupt_mid_length_high(void)
{
    /* payload_len + 4 MiB: the record now seems to run past the end of the file, as a
     * torn tail would. Valid records follow, so it is corruption, not a tail to drop. */
    check_mid_damage(6, 0x40);
}

static void test_corrupt_mid_key_len(void)
{
    check_mid_damage(9, 0x40); /* key_len > payload_len: an impossible header */
}

static void test_corrupt_first_record(void)
{
    setup();
    uint64_t off[NMAX];
    write_n_offsets(10, off);
    flip_byte_mask((long long)off[0] + 14, 0x01);
    cx_store_log_recovery_t rec;
    seen_t *seen = reopen(&rec);
    bool damaged[10] = {[0] = true};
    check_all_but(seen, 10, damaged);
    CHECK_INT_EQ(rec.bytes_skipped, off[1] - off[0]);
    compact_and_check_clean(10, damaged);
    teardown();
}

/* Damage in the last record: nothing valid follows, so it is cut as before, but as
 * corruption (a complete record with a bad checksum) the whole file is copied first. */
static void test_corrupt_last_record(void)
{
    setup();
    uint64_t off[NMAX];
    long long full = write_n_offsets(10, off);
    flip_byte_mask((long long)off[9] + 15, 0x40);
    size_t olen;
    uint8_t *orig = slurp(logpath, &olen);
    cx_store_log_recovery_t rec;
    seen_t *seen = reopen(&rec);
    bool damaged[10] = {[9] = true};
    check_all_but(seen, 10, damaged);
    CHECK(rec.corrupt);
    CHECK(!rec.rewrite_needed);
    CHECK_INT_EQ(rec.bytes_skipped, 0);
    CHECK_INT_EQ(rec.bytes_dropped, full - (long long)off[9]);
    CHECK_INT_EQ(file_size(logpath), off[9]);
    CHECK_INT_EQ(count_files_with_prefix("culex.log.corrupt-"), 1);
    check_copy_equals(0, orig, olen);
    /* Appending continues where the damaged record was; the next open is clean. */
    cx_store_log_t *s = open_ok(NULL);
    CHECK_INT_EQ(append_kv(s, 1, "later", "y", NULL), CX_OK);
    CHECK_INT_EQ(cx_store_log_close(s), CX_OK);
    seen = reopen(&rec);
    CHECK(!rec.corrupt);
    CHECK_INT_EQ(seen->n, 10);
    CHECK_STR_EQ(seen->key[9], "later");
    free(orig);
    teardown();
}

/* Damage in the record before the last: one valid record that ends exactly at the end of
 * the file is enough to continue. */
static void test_corrupt_before_last(void)
{
    setup();
    uint64_t off[NMAX];
    write_n_offsets(10, off);
    flip_byte_mask((long long)off[8] + 15, 0x40);
    cx_store_log_recovery_t rec;
    seen_t *seen = reopen(&rec);
    bool damaged[10] = {[8] = true};
    check_all_but(seen, 10, damaged);
    CHECK(rec.rewrite_needed);
    CHECK_INT_EQ(rec.bytes_skipped, off[9] - off[8]);
    CHECK_INT_EQ(rec.bytes_dropped, 0);
    compact_and_check_clean(10, damaged);
    teardown();
}

static void test_corrupt_several_regions(void)
{
    setup();
    const int n = 30;
    uint64_t off[NMAX];
    long long full = write_n_offsets(n, off);
    flip_byte_mask((long long)off[3] + 15, 0x40);
    flip_byte_mask((long long)off[4] + 6, 0x40); /* next to it: one region of two */
    flip_byte_mask((long long)off[10] + 9, 0x40);
    static const uint8_t zeros[64];
    overwrite((long long)off[15] + 2, zeros, off[17] - off[15] - 3); /* a zeroed "page" */
    flip_byte_mask((long long)off[20] + 1, 0x40);
    flip_byte_mask((long long)off[29] + 16, 0x40); /* and the last record */
    size_t olen;
    uint8_t *orig = slurp(logpath, &olen);
    cx_store_log_recovery_t rec;
    seen_t *seen = reopen(&rec);
    bool damaged[30] = {[3] = true, [4] = true, [10] = true, [15] = true, [16] = true,
                        [20] = true, [29] = true};
    check_all_but(seen, n, damaged);
    CHECK(rec.corrupt);
    CHECK(rec.rewrite_needed);
    CHECK_INT_EQ(rec.bytes_skipped, (off[5] - off[3]) + (off[11] - off[10]) +
                                        (off[17] - off[15]) + (off[21] - off[20]));
    CHECK_INT_EQ(rec.bytes_dropped, full - (long long)off[29]);
    CHECK_INT_EQ(file_size(logpath), off[29]);
    CHECK_INT_EQ(count_files_with_prefix("culex.log.corrupt-"), 1); /* one copy per open */
    check_copy_equals(0, orig, olen);
    compact_and_check_clean(n, damaged);
    free(orig);
    teardown();
}

/* Records longer than the resync's CRC index step (1 KiB): the candidates after the damage
 * are checked through prefix CRCs rather than directly. */
static void test_corrupt_mid_large_records(void)
{
    setup();
    enum { N = 12, VLEN = 20000 };
    static uint8_t v[N][VLEN];
    uint64_t st = 12345;
    cx_store_log_t *s = open_ok(NULL);
    char k[32];
    for (int i = 0; i < N; i++) {
        for (int j = 0; j < VLEN; j++)
            v[i][j] = (uint8_t)xorshift(&st);
        snprintf(k, sizeof k, "big%d", i);
        CHECK_INT_EQ(cx_store_log_append(s, 1, k, strlen(k), v[i], VLEN - (size_t)i, NULL),
                     CX_OK);
    }
    CHECK_INT_EQ(cx_store_log_close(s), CX_OK);
    cx_store_log_recovery_t rec;
    seen_t *seen = reopen(&rec);
    CHECK_INT_EQ(seen->n, N);
    uint64_t off[N];
    memcpy(off, seen->off, sizeof off);
    flip_byte_mask((long long)off[3] + 6, 0x40);     /* length: looks like a torn tail */
    flip_byte_mask((long long)off[7] + 9000, 0x01);  /* deep in a value */
    seen = reopen(&rec);
    CHECK_INT_EQ(seen->n, N - 2);
    int j = 0;
    for (int i = 0; i < N; i++) {
        if (i == 3 || i == 7)
            continue;
        snprintf(k, sizeof k, "big%d", i);
        CHECK_STR_EQ(seen->key[j], k);
        CHECK_INT_EQ(seen->vsum[j], sum(v[i], VLEN - (size_t)i));
        j++;
    }
    CHECK_INT_EQ(rec.bytes_skipped, (off[4] - off[3]) + (off[8] - off[7]));
    teardown();
}

/* Damage right before a payload whose bytes look like record headers at every fourth
 * offset ("payload_len" 1 MiB, "key_len" 4 KiB): each is a plausible pair of records that
 * only a CRC can reject. Checked directly, that is 1 MiB of CRC per offset and the open
 * would run for hours; through the index it takes well under a second. */
static void test_corrupt_before_header_like_payload(void)
{
    setup();
    alarm(60);
    enum { RUN = 6 << 20 };
    uint8_t *run = malloc(RUN);
    CHECK(run != NULL);
    for (size_t i = 0; i < RUN; i++)
        run[i] = (i % 4 == 2) ? 0x10 : 0x00;
    cx_store_log_t *s = open_ok(NULL);
    CHECK_INT_EQ(append_kv(s, 1, "k0", "value-0", NULL), CX_OK);
    CHECK_INT_EQ(cx_store_log_append(s, 1, "run", 3, run, RUN, NULL), CX_OK);
    char k[32], v[64];
    for (int i = 2; i < 10; i++) {
        snprintf(k, sizeof k, "k%d", i);
        snprintf(v, sizeof v, "value-%d", i);
        CHECK_INT_EQ(append_kv(s, 1, k, v, NULL), CX_OK);
    }
    CHECK_INT_EQ(cx_store_log_close(s), CX_OK);
    cx_store_log_recovery_t rec;
    seen_t *seen = reopen(&rec);
    CHECK_INT_EQ(seen->n, 10);
    flip_byte_mask((long long)seen->off[1], 0x01); /* the run's record CRC */
    double t0 = now_s();
    seen = reopen(&rec);
    printf("# open stepped over %llu damaged bytes in %.2f s\n",
           (unsigned long long)rec.bytes_skipped, now_s() - t0);
    bool damaged[10] = {[1] = true};
    check_all_but(seen, 10, damaged);
    CHECK_INT_EQ(rec.bytes_skipped, RUN + 13 + 3);
    free(run);
    teardown();
}

/* If the copy cannot be made, nothing is changed and open fails. */
static void test_corrupt_copy_failure_changes_nothing(void)
{
    setup();
    uint64_t off[NMAX];
    long long full = write_n_offsets(60, off);
    flip_byte_mask((long long)off[59] + 15, 0x40); /* would be truncated */
    size_t olen;
    uint8_t *orig = slurp(logpath, &olen);
    signal(SIGXFSZ, SIG_IGN);
    struct rlimit old, lim;
    CHECK_INT_EQ(getrlimit(RLIMIT_FSIZE, &old), 0);
    lim = old;
    lim.rlim_cur = (rlim_t)full / 2;
    CHECK_INT_EQ(setrlimit(RLIMIT_FSIZE, &lim), 0);
    int err = 0;
    cx_store_log_recovery_t rec;
    cx_store_log_t *s = cx_store_log_open(logpath, NULL, NULL, NULL, &rec, &err);
    CHECK(s == NULL);
    CHECK_INT_EQ(err, -EFBIG);
    CHECK_INT_EQ(setrlimit(RLIMIT_FSIZE, &old), 0);
    size_t nlen;
    uint8_t *now = slurp(logpath, &nlen);
    CHECK_INT_EQ(nlen, olen);
    CHECK(memcmp(now, orig, olen) == 0);
    CHECK_INT_EQ(count_files_with_prefix("culex.log.corrupt-"), 0); /* no partial copy */
    free(now);
    free(orig);
    teardown();
}

/* A caller-side model for compaction: the last value per key, with deletions. */
#define NKEYS 50
typedef struct model {
    pthread_mutex_t mu;
    int ver[NKEYS]; /* 0 = deleted */
    int extra;      /* records "x<i>" for i < extra are live (appended concurrently) */
} model_t;

static int emit_live(void *ud, cx_store_log_compactor_t *c)
{
    model_t *m = ud;
    char k[32], v[32];
    pthread_mutex_lock(&m->mu);
    int rc = CX_OK;
    for (int i = 0; i < NKEYS && rc == CX_OK; i++) {
        if (!m->ver[i])
            continue;
        snprintf(k, sizeof k, "k%d", i);
        snprintf(v, sizeof v, "v%d", m->ver[i]);
        rc = cx_store_log_compact_put(c, 1, k, strlen(k), v, strlen(v));
    }
    for (int i = 0; i < m->extra && rc == CX_OK; i++) {
        snprintf(k, sizeof k, "x%d", i);
        rc = cx_store_log_compact_put(c, 3, k, strlen(k), "", 0);
    }
    pthread_mutex_unlock(&m->mu);
    return rc;
}

static void test_compaction_keeps_live_set(void)
{
    setup();
    static model_t m = {.mu = PTHREAD_MUTEX_INITIALIZER};
    cx_store_log_t *s = open_ok(NULL);
    char k[32], v[32];
    for (int round = 1; round <= 5; round++)
        for (int i = 0; i < NKEYS; i++) {
            snprintf(k, sizeof k, "k%d", i);
            if (round == 5 && i % 3 == 0) { /* a delete */
                m.ver[i] = 0;
                CHECK_INT_EQ(append_kv(s, 2, k, NULL, NULL), CX_OK);
                continue;
            }
            m.ver[i] = round;
            snprintf(v, sizeof v, "v%d", round);
            CHECK_INT_EQ(append_kv(s, 1, k, v, NULL), CX_OK);
        }
    CHECK_INT_EQ(cx_store_log_sync(s), CX_OK);
    long long before = file_size(logpath);
    CHECK_INT_EQ(cx_store_log_compact(s, emit_live, &m), CX_OK);
    CHECK(file_size(logpath) < before);
    CHECK_INT_EQ(count_files_with_prefix("culex.log.compact"), 0);
    size_t hlen;
    uint8_t *h = slurp(logpath, &hlen), want[CX_STORE_LOG_HEADER_LEN];
    expected_header(want);
    CHECK(hlen > sizeof want && memcmp(h, want, sizeof want) == 0);
    free(h);
    int live = 0;
    for (int i = 0; i < NKEYS; i++)
        live += m.ver[i] != 0;

    /* Appends after the compaction go to the new file and survive a reopen. */
    CHECK_INT_EQ(append_kv(s, 1, "k1", "v99", NULL), CX_OK);
    CHECK_INT_EQ(append_kv(s, 1, "new", "n", NULL), CX_OK);
    CHECK_INT_EQ(cx_store_log_close(s), CX_OK);

    cx_store_log_recovery_t rec;
    seen_t *seen = reopen(&rec);
    CHECK_INT_EQ(seen->n, live + 2);
    int j = 0;
    for (int i = 0; i < NKEYS; i++) {
        if (!m.ver[i])
            continue;
        snprintf(k, sizeof k, "k%d", i);
        snprintf(v, sizeof v, "v%d", m.ver[i]);
        CHECK_STR_EQ(seen->key[j], k);
        CHECK_INT_EQ(seen->vsum[j], sum(v, strlen(v)));
        CHECK_INT_EQ(seen->type[j], 1);
        j++;
    }
    CHECK_STR_EQ(seen->key[j], "k1");
    CHECK_INT_EQ(seen->vsum[j], sum("v99", 3));
    CHECK_STR_EQ(seen->key[j + 1], "new");
    teardown();
}

/* Appends from another thread while compactions run: none may be lost. The caller's rule
 * (README): update the in-memory state before appending, so a compaction that blocks the
 * append has already enumerated the record. The record may then appear twice. */
#define EXTRA 2000
static void *append_extra(void *arg)
{
    void **a = arg;
    cx_store_log_t *s = a[0];
    model_t *m = a[1];
    char k[32];
    for (int i = 0; i < EXTRA; i++) {
        pthread_mutex_lock(&m->mu);
        m->extra = i + 1;
        pthread_mutex_unlock(&m->mu);
        snprintf(k, sizeof k, "x%d", i);
        CHECK_INT_EQ(append_kv(s, 3, k, NULL, NULL), CX_OK);
    }
    return NULL;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void test_compaction_with_concurrent_appends(void)
{
    setup();
    static model_t m = {.mu = PTHREAD_MUTEX_INITIALIZER};
    cx_store_log_opts_t o = {.sync = CX_STORE_LOG_SYNC_BATCH, .batch_ms = 5};
    cx_store_log_t *s = open_ok(&o);
    pthread_t t;
    void *args[2] = {s, &m};
    CHECK_INT_EQ(pthread_create(&t, NULL, append_extra, args), 0);
    int done = 0;
    for (;;) {
        CHECK_INT_EQ(cx_store_log_compact(s, emit_live, &m), CX_OK);
        done++;
        pthread_mutex_lock(&m.mu);
        int n = m.extra;
        pthread_mutex_unlock(&m.mu);
        if (n == EXTRA)
            break;
        usleep(1000);
    }
    pthread_join(t, NULL);
    printf("# %d compactions during the appends\n", done);
    CHECK_INT_EQ(cx_store_log_close(s), CX_OK);

    cx_store_log_recovery_t rec;
    seen_t *seen = reopen(&rec);
    static char *keys[MAXREC];
    for (int i = 0; i < seen->n; i++)
        keys[i] = seen->key[i];
    qsort(keys, (size_t)seen->n, sizeof keys[0], cmp_str);
    int unique = 0;
    for (int i = 0; i < seen->n; i++)
        unique += i == 0 || strcmp(keys[i], keys[i - 1]) != 0;
    CHECK_INT_EQ(unique, EXTRA);
    teardown();
}

static void test_compaction_failure_keeps_old_log(void)
{
    setup();
    static model_t m = {.mu = PTHREAD_MUTEX_INITIALIZER};
    m.ver[0] = 1;
    cx_store_log_t *s = open_ok(NULL);
    CHECK_INT_EQ(append_kv(s, 1, "a", "1", NULL), CX_OK);
    CHECK_INT_EQ(append_kv(s, 1, "b", "2", NULL), CX_OK);
    CHECK_INT_EQ(cx_store_log_sync(s), CX_OK);
    char tmp[160];
    snprintf(tmp, sizeof tmp, "%s.compact", logpath);
    CHECK_INT_EQ(mkdir(tmp, 0700), 0); /* the temp file cannot be created */
    CHECK(cx_store_log_compact(s, emit_live, &m) < 0);
    CHECK_INT_EQ(cx_store_log_status(s), CX_OK);
    CHECK_INT_EQ(append_kv(s, 1, "c", "3", NULL), CX_OK);
    CHECK_INT_EQ(cx_store_log_close(s), CX_OK);
    rmdir(tmp);
    cx_store_log_recovery_t rec;
    seen_t *seen = reopen(&rec);
    CHECK_INT_EQ(seen->n, 3);
    CHECK_STR_EQ(seen->key[2], "c");
    teardown();
}

static int nested_append(void *ud, cx_store_log_compactor_t *c)
{
    return append_kv(ud, 1, "x", "y", NULL); /* must not deadlock */
}

static void test_append_inside_compaction_refused(void)
{
    setup();
    cx_store_log_t *s = open_ok(NULL);
    CHECK_INT_EQ(cx_store_log_compact(s, nested_append, s), CX_EINVAL);
    CHECK_INT_EQ(cx_store_log_close(s), CX_OK);
    teardown();
}

static void test_write_failure_sets_failed_state(void)
{
    setup();
    signal(SIGXFSZ, SIG_IGN); /* get EFBIG instead of a signal */
    struct rlimit old, lim;
    CHECK_INT_EQ(getrlimit(RLIMIT_FSIZE, &old), 0);
    lim = old;
    lim.rlim_cur = 8192;
    CHECK_INT_EQ(setrlimit(RLIMIT_FSIZE, &lim), 0);

    cx_store_log_t *s = open_ok(NULL);
    static char v[1000];
    memset(v, 'v', sizeof v);
    char k[32];
    int ok = 0, rc = CX_OK;
    for (int i = 0; i < 100 && rc == CX_OK; i++) {
        snprintf(k, sizeof k, "k%d", i);
        uint64_t seq;
        rc = cx_store_log_append(s, 1, k, strlen(k), v, sizeof v, &seq);
        if (rc == CX_OK)
            rc = cx_store_log_commit_wait(s, seq);
        if (rc == CX_OK)
            ok++;
    }
    CHECK_INT_EQ(rc, -EFBIG);
    CHECK(ok > 0 && ok < 10);
    CHECK_INT_EQ(cx_store_log_status(s), -EFBIG);
    CHECK_INT_EQ(append_kv(s, 1, "refused", "z", NULL), -EFBIG);
    /* Nothing partial was left behind the last good commit. */
    cx_store_log_stats_t st;
    cx_store_log_stats(s, &st);
    CHECK_INT_EQ(file_size(logpath), st.file_size);

    /* With room again, a rewrite from memory (compaction) clears the failed state. */
    CHECK_INT_EQ(setrlimit(RLIMIT_FSIZE, &old), 0);
    static model_t m = {.mu = PTHREAD_MUTEX_INITIALIZER};
    m.ver[7] = 1;
    CHECK_INT_EQ(cx_store_log_compact(s, emit_live, &m), CX_OK);
    CHECK_INT_EQ(cx_store_log_status(s), CX_OK);
    CHECK_INT_EQ(append_kv(s, 1, "after", "ok", NULL), CX_OK);
    CHECK_INT_EQ(cx_store_log_close(s), CX_OK);
    cx_store_log_recovery_t rec;
    seen_t *seen = reopen(&rec);
    CHECK_INT_EQ(seen->n, 2);
    CHECK_STR_EQ(seen->key[0], "k7");
    CHECK_STR_EQ(seen->key[1], "after");
    teardown();
}

static void test_write_failure_keeps_committed_records(void)
{
    setup();
    signal(SIGXFSZ, SIG_IGN);
    struct rlimit old, lim;
    CHECK_INT_EQ(getrlimit(RLIMIT_FSIZE, &old), 0);
    lim = old;
    lim.rlim_cur = 8192;
    CHECK_INT_EQ(setrlimit(RLIMIT_FSIZE, &lim), 0);
    cx_store_log_t *s = open_ok(NULL);
    static char v[700];
    memset(v, 'w', sizeof v);
    char k[32];
    int ok = 0, rc = CX_OK;
    for (int i = 0; rc == CX_OK; i++) {
        snprintf(k, sizeof k, "k%d", i);
        uint64_t seq;
        rc = cx_store_log_append(s, 1, k, strlen(k), v, sizeof v, &seq);
        if (rc == CX_OK)
            rc = cx_store_log_commit_wait(s, seq);
        ok += rc == CX_OK;
    }
    CHECK_INT_EQ(cx_store_log_close(s), -EFBIG);
    CHECK_INT_EQ(setrlimit(RLIMIT_FSIZE, &old), 0);
    cx_store_log_recovery_t rec;
    seen_t *seen = reopen(&rec);
    CHECK_INT_EQ(seen->n, ok); /* every acknowledged record, nothing else */
    CHECK_INT_EQ(rec.bytes_dropped, 0);
    teardown();
}

static void check_new_header(void)
{
    uint8_t want[CX_STORE_LOG_HEADER_LEN];
    expected_header(want);
    size_t n;
    uint8_t *got = slurp(logpath, &n);
    CHECK_INT_EQ(n, CX_STORE_LOG_HEADER_LEN);
    CHECK(memcmp(got, want, n) == 0);
    free(got);
}

static void test_header_written_to_new_file(void)
{
    setup();
    cx_store_log_recovery_t rec;
    seen_t *seen = reopen(&rec);
    CHECK_INT_EQ(seen->n, 0);
    CHECK_INT_EQ(rec.bytes_kept, CX_STORE_LOG_HEADER_LEN);
    check_new_header();
    /* An existing empty file gets it too. */
    CHECK_INT_EQ(truncate(logpath, 0), 0);
    reopen(&rec);
    check_new_header();
    /* The first record follows the header, and offsets are file offsets. */
    cx_store_log_t *s = open_ok(NULL);
    CHECK_INT_EQ(append_kv(s, 1, "a", "b", NULL), CX_OK);
    CHECK_INT_EQ(cx_store_log_close(s), CX_OK);
    seen = reopen(&rec);
    CHECK_INT_EQ(seen->n, 1);
    CHECK_INT_EQ(seen->off[0], CX_STORE_LOG_HEADER_LEN);
    teardown();
}

static void test_header_prefix_completed(void)
{
    setup();
    uint8_t want[CX_STORE_LOG_HEADER_LEN];
    expected_header(want);
    for (size_t k = 1; k < CX_STORE_LOG_HEADER_LEN; k++) {
        write_file(logpath, want, k); /* a crash while the file was being created */
        cx_store_log_recovery_t rec;
        seen_t *seen = reopen(&rec);
        CHECK_INT_EQ(seen->n, 0);
        CHECK(!rec.corrupt);
        check_new_header();
    }
    teardown();
}

/* Opens a file that is not ours and checks it was refused and left exactly as it was. */
static void check_refused(const void *content, size_t n, const char *must_log,
                          cx_store_log_recovery_t *rec)
{
    write_file(logpath, content, n);
    struct stat before, after;
    CHECK_INT_EQ(stat(logpath, &before), 0);
    capture_start();
    int err = 0;
    cx_store_log_t *s = cx_store_log_open(logpath, NULL, collect, NULL, rec, &err);
    CHECK(s == NULL);
    CHECK_INT_EQ(err, CX_EFORMAT);
    CHECK_INT_EQ(stat(logpath, &after), 0);
    CHECK_INT_EQ(after.st_ino, before.st_ino); /* not renamed away */
    CHECK_INT_EQ(after.st_size, (long long)n);
    size_t len;
    uint8_t *now = slurp(logpath, &len);
    CHECK(memcmp(now, content, n) == 0);
    free(now);
    CHECK_INT_EQ(count_files_with_prefix("culex.log"), 1); /* no copies, no temp files */
    CHECK(strstr(logged, logpath) != NULL);
    if (must_log && !strstr(logged, must_log))
        CX_FAIL_("log does not mention \"%s\":\n%s", must_log, logged);
}

static void test_foreign_file_untouched(void)
{
    setup();
    const char text[] = "# this is somebody's config file\nlistener 1883\n";
    cx_store_log_recovery_t rec;
    check_refused(text, sizeof text - 1, "not a culex log", &rec);
    CHECK(!rec.mosquitto_db);
    check_refused("hello", 5, "not a culex log", &rec); /* shorter than a header */
    check_refused("CULEXLOX", 8, "not a culex log", &rec);
    /* Our magic, but something else where the records should start is not ours either:
     * a header with a bad checksum. */
    uint8_t h[CX_STORE_LOG_HEADER_LEN + 4];
    expected_header(h);
    memcpy(h + CX_STORE_LOG_HEADER_LEN, "abcd", 4);
    h[13] ^= 1;
    check_refused(h, sizeof h, "damaged", &rec);
    teardown();
}

static void test_mosquitto_db_refused(void)
{
    setup();
    uint8_t db[64] = {0x00, 0xB5, 0x00, 'm', 'o', 's', 'q', 'u', 'i', 't', 't', 'o', ' ',
                      'd',  'b',  0, 0, 0, 0, 0, 0, 6};
    cx_store_log_recovery_t rec;
    check_refused(db, sizeof db, "Mosquitto", &rec);
    CHECK(rec.mosquitto_db);
    CHECK_INT_EQ(rec.records, 0);
    check_refused(db, 15, "Mosquitto", &rec); /* just the magic */
    CHECK(rec.mosquitto_db);
    teardown();
}

static void test_newer_version_refused(void)
{
    setup();
    uint8_t h[CX_STORE_LOG_HEADER_LEN + 20];
    memset(h, 0x11, sizeof h);
    expected_header(h);
    h[8] = 2; /* a future format, with a valid header checksum */
    uint32_t c = cx_store_crc32c(0, h, 12);
    for (int i = 0; i < 4; i++)
        h[12 + i] = (uint8_t)(c >> (8 * i));
    cx_store_log_recovery_t rec;
    check_refused(h, sizeof h, "version 2", &rec);
    CHECK(!rec.mosquitto_db);
    /* Cut short, a newer header is not a prefix of ours either. */
    check_refused(h, 10, "not a culex log", &rec);
    teardown();
}

/* What on_commit saw. */
typedef struct commits {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    cx_store_log_t *s;
    pthread_t main_thread;
    int calls;
    uint64_t last;
    bool bad_order, on_main_thread, lagging;
} commits_t;

static void on_commit(void *ud, uint64_t durable)
{
    commits_t *c = ud;
    /* No engine lock may be held here: stats takes it (a hang would end in SIGALRM). */
    cx_store_log_t *s;
    pthread_mutex_lock(&c->mu);
    s = c->s;
    pthread_mutex_unlock(&c->mu);
    if (s) {
        cx_store_log_stats_t st;
        cx_store_log_stats(s, &st);
        if (st.durable_seq < durable)
            c->lagging = true;
    }
    pthread_mutex_lock(&c->mu);
    if (durable <= c->last)
        c->bad_order = true;
    if (pthread_equal(pthread_self(), c->main_thread))
        c->on_main_thread = true;
    c->last = durable;
    c->calls++;
    pthread_cond_broadcast(&c->cv);
    pthread_mutex_unlock(&c->mu);
}

static void test_on_commit_always(void)
{
    setup();
    alarm(20);
    static commits_t c = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};
    c.main_thread = pthread_self();
    cx_store_log_opts_t o = {.on_commit = on_commit, .on_commit_ud = &c};
    cx_store_log_t *s = open_ok(&o);
    pthread_mutex_lock(&c.mu);
    c.s = s;
    pthread_mutex_unlock(&c.mu);
    pthread_t t[PRODUCERS];
    producer_t p[PRODUCERS];
    for (int i = 0; i < PRODUCERS; i++) {
        p[i] = (producer_t){s, i, true};
        CHECK_INT_EQ(pthread_create(&t[i], NULL, produce, &p[i]), 0);
    }
    for (int i = 0; i < PRODUCERS; i++)
        pthread_join(t[i], NULL);
    cx_store_log_stats_t st;
    cx_store_log_stats(s, &st);
    /* The callback for the last commit may still be running. */
    pthread_mutex_lock(&c.mu);
    while (c.last < st.durable_seq)
        pthread_cond_wait(&c.cv, &c.mu);
    c.s = NULL;
    pthread_mutex_unlock(&c.mu);
    CHECK_INT_EQ(c.last, PRODUCERS * PER_PRODUCER);
    CHECK_INT_EQ(c.calls, st.batches); /* one call per commit */
    CHECK(!c.bad_order);
    CHECK(!c.on_main_thread);
    CHECK(!c.lagging);
    CHECK_INT_EQ(cx_store_log_close(s), CX_OK);
    teardown();
}

/* Under BATCH nobody waits: the callback alone tells the broker that records are durable. */
static void test_on_commit_batch(void)
{
    setup();
    alarm(20);
    static commits_t c = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};
    c.main_thread = pthread_self();
    cx_store_log_opts_t o = {.sync = CX_STORE_LOG_SYNC_BATCH, .batch_ms = 10,
                             .on_commit = on_commit, .on_commit_ud = &c};
    cx_store_log_t *s = open_ok(&o);
    uint64_t seq = 0;
    for (int i = 0; i < 50; i++)
        CHECK_INT_EQ(append_kv(s, 1, "k", "v", &seq), CX_OK);
    pthread_mutex_lock(&c.mu);
    while (c.last < seq)
        pthread_cond_wait(&c.cv, &c.mu);
    pthread_mutex_unlock(&c.mu);
    CHECK_INT_EQ(c.last, 50);
    CHECK(!c.bad_order);
    CHECK_INT_EQ(cx_store_log_close(s), CX_OK);
    teardown();
}

static void test_stats_base_size(void)
{
    setup();
    write_n(20);
    long long after_write = file_size(logpath);
    cx_store_log_t *s = open_ok(NULL);
    cx_store_log_stats_t st;
    cx_store_log_stats(s, &st);
    CHECK_INT_EQ(st.base_size, after_write);
    CHECK_INT_EQ(st.file_size, after_write);
    CHECK_INT_EQ(append_kv(s, 1, "more", "bytes", NULL), CX_OK);
    CHECK_INT_EQ(cx_store_log_sync(s), CX_OK);
    cx_store_log_stats(s, &st);
    CHECK_INT_EQ(st.base_size, after_write); /* appends grow file_size only */
    CHECK(st.file_size > st.base_size);
    static model_t m = {.mu = PTHREAD_MUTEX_INITIALIZER};
    m.ver[0] = m.ver[1] = 1;
    CHECK_INT_EQ(cx_store_log_compact(s, emit_live, &m), CX_OK);
    cx_store_log_stats(s, &st);
    CHECK_INT_EQ(st.base_size, file_size(logpath));
    CHECK_INT_EQ(st.base_size, st.file_size);
    CHECK(st.base_size < (uint64_t)after_write);
    CHECK_INT_EQ(cx_store_log_close(s), CX_OK);

    /* After recovery it is the size once the torn tail is cut. */
    int fd = open(logpath, O_WRONLY | O_APPEND);
    CHECK(fd >= 0);
    CHECK(write(fd, "\x01\x02\x03", 3) == 3);
    close(fd);
    s = open_ok(NULL);
    cx_store_log_stats(s, &st);
    CHECK_INT_EQ(st.base_size, file_size(logpath));
    CHECK_INT_EQ(cx_store_log_close(s), CX_OK);
    teardown();
}

/* --- failed fdatasync (opts.fdatasync_fn) ------------------------------------------ */

static volatile int sync_fails; /* set by the test thread, read by the writer */
static int sync_calls;

static int fake_fdatasync(int fd)
{
    __atomic_add_fetch(&sync_calls, 1, __ATOMIC_SEQ_CST);
    if (__atomic_load_n(&sync_fails, __ATOMIC_SEQ_CST)) {
        errno = EIO;
        return -1;
    }
    return fdatasync(fd);
}

static void set_sync_fails(int on)
{
    __atomic_store_n(&sync_fails, on, __ATOMIC_SEQ_CST);
}

/* Appends k0..k4, durable, then one record whose sync fails with EIO. */
static cx_store_log_t *open_and_fail_sync(const cx_store_log_opts_t *o, uint64_t *durable_size)
{
    set_sync_fails(0);
    cx_store_log_t *s = open_ok(o);
    char k[32], v[64];
    uint64_t seq = 0;
    for (int i = 0; i < 5; i++) {
        snprintf(k, sizeof k, "k%d", i);
        snprintf(v, sizeof v, "value-%d", i);
        CHECK_INT_EQ(append_kv(s, 1, k, v, &seq), CX_OK);
    }
    CHECK_INT_EQ(cx_store_log_commit_wait(s, seq), CX_OK);
    cx_store_log_stats_t st;
    cx_store_log_stats(s, &st);
    *durable_size = st.file_size;

    set_sync_fails(1);
    CHECK_INT_EQ(append_kv(s, 1, "lost", "never durable", &seq), CX_OK);
    CHECK_INT_EQ(cx_store_log_commit_wait(s, seq), -EIO);
    CHECK_INT_EQ(cx_store_log_status(s), -EIO);
    CHECK_INT_EQ(append_kv(s, 1, "refused", "x", NULL), -EIO);
    CHECK_INT_EQ(cx_store_log_commit_wait(s, 5), CX_OK); /* that was durable */
    cx_store_log_stats(s, &st);
    CHECK_INT_EQ(st.durable_seq, 5);
    CHECK_INT_EQ(st.file_size, *durable_size);
    CHECK_INT_EQ(file_size(logpath), *durable_size); /* the unsynced write was cut */
    return s;
}

static void test_sync_failure_keeps_durable_records(void)
{
    setup();
    cx_store_log_opts_t o = {.fdatasync_fn = fake_fdatasync};
    uint64_t durable_size;
    cx_store_log_t *s = open_and_fail_sync(&o, &durable_size);
    CHECK(__atomic_load_n(&sync_calls, __ATOMIC_SEQ_CST) > 0); /* the hook was used */
    CHECK_INT_EQ(cx_store_log_close(s), -EIO);
    set_sync_fails(0);
    cx_store_log_recovery_t rec;
    seen_t *seen = reopen(&rec);
    bool damaged[5] = {false};
    check_all_but(seen, 5, damaged);
    CHECK(!rec.corrupt);
    CHECK_INT_EQ(rec.bytes_dropped, 0);
    CHECK_INT_EQ(rec.bytes_kept, durable_size);
    teardown();
}

static void test_sync_failure_cleared_by_compaction(void)
{
    setup();
    alarm(20);
    static commits_t c = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};
    cx_store_log_opts_t o = {.fdatasync_fn = fake_fdatasync, .on_commit = on_commit,
                             .on_commit_ud = &c};
    uint64_t durable_size;
    cx_store_log_t *s = open_and_fail_sync(&o, &durable_size);

    /* The caller's state holds k0..k4 and "lost" (memory is updated before the append). */
    static seen_t live;
    memset(&live, 0, sizeof live);
    for (int i = 0; i < 6; i++) {
        snprintf(live.key[i], sizeof live.key[i], i < 5 ? "k%d" : "k5", i);
        live.type[i] = 1;
    }
    live.n = 6;

    /* While syncs still fail, the compaction fails too and the old log stays. */
    CHECK(cx_store_log_compact(s, emit_seen, &live) == -EIO);
    CHECK_INT_EQ(cx_store_log_status(s), -EIO);
    CHECK_INT_EQ(file_size(logpath), durable_size);
    CHECK_INT_EQ(count_files_with_prefix("culex.log.compact"), 0);

    set_sync_fails(0);
    CHECK_INT_EQ(cx_store_log_compact(s, emit_seen, &live), CX_OK);
    CHECK_INT_EQ(cx_store_log_status(s), CX_OK);
    /* The rewrite made the failed record durable: on_commit hears of it. */
    pthread_mutex_lock(&c.mu);
    while (c.last < 6)
        pthread_cond_wait(&c.cv, &c.mu);
    pthread_mutex_unlock(&c.mu);
    CHECK(!c.bad_order);
    uint64_t seq;
    CHECK_INT_EQ(append_kv(s, 1, "k6", "value-6", &seq), CX_OK);
    CHECK_INT_EQ(cx_store_log_commit_wait(s, seq), CX_OK);
    CHECK_INT_EQ(cx_store_log_close(s), CX_OK);

    cx_store_log_recovery_t rec;
    seen_t *seen = reopen(&rec);
    bool damaged[7] = {false};
    check_all_but(seen, 7, damaged);
    CHECK(!rec.corrupt);
    teardown();
}

static void test_open_failure(void)
{
    int err = 0;
    cx_store_log_t *s =
        cx_store_log_open("/nonexistent-dir/x/culex.log", NULL, NULL, NULL, NULL, &err);
    CHECK(s == NULL);
    CHECK_INT_EQ(err, -ENOENT);
}

CX_TEST_MAIN(
    CX_TEST(crc32c_vector),
    CX_TEST(crc32c_hw_matches_sw),
    CX_TEST(roundtrip),
    CX_TEST(replay_callback_return),
    CX_TEST(record_too_big),
    CX_TEST(group_commit_always),
    CX_TEST(group_commit_batch_timer),
    CX_TEST(torn_tail_every_offset),
    CX_TEST(corrupt_mid_value),
    CX_TEST(corrupt_mid_crc),
    CX_TEST(corrupt_mid_length_low),
    CX_TEST(corrupt_mid_length_high),
    CX_TEST(corrupt_mid_key_len),
    CX_TEST(corrupt_first_record),
    CX_TEST(corrupt_last_record),
    CX_TEST(corrupt_before_last),
    CX_TEST(corrupt_several_regions),
    CX_TEST(corrupt_copy_failure_changes_nothing),
    CX_TEST(corrupt_mid_large_records),
    CX_TEST(corrupt_before_header_like_payload),
    CX_TEST(compaction_keeps_live_set),
    CX_TEST(compaction_with_concurrent_appends),
    CX_TEST(compaction_failure_keeps_old_log),
    CX_TEST(append_inside_compaction_refused),
    CX_TEST(write_failure_sets_failed_state),
    CX_TEST(write_failure_keeps_committed_records),
    CX_TEST(open_failure),
    CX_TEST(header_written_to_new_file),
    CX_TEST(header_prefix_completed),
    CX_TEST(foreign_file_untouched),
    CX_TEST(mosquitto_db_refused),
    CX_TEST(newer_version_refused),
    CX_TEST(on_commit_always),
    CX_TEST(on_commit_batch),
    CX_TEST(stats_base_size),
    CX_TEST(sync_failure_keeps_durable_records),
    CX_TEST(sync_failure_cleared_by_compaction),
)
