/* store_log.c: the append-only log engine: CRC32C (SSE4.2 or table), record encoding, the
 * file header and the refusal of foreign files, replay at open (torn tails cut, damaged
 * regions copied aside and stepped over), the writer thread with group commit and the
 * commit notification, the failed state, and compaction.
 *
 * Locking: one mutex guards all shared fields. The writer takes the pending batch under it
 * (a buffer swap), then writes and syncs with the mutex released, so appends keep filling
 * the next batch while the disk works; that is where group commit comes from. */
#include "store/store_log.h"

#include "util/alloc.h"
#include "util/buf.h"
#include "util/err.h"
#include "util/log.h"
#include "util/time.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define HDR_LEN 13 /* crc 4 | payload_len 4 | type 1 | key_len 4 */
#define FILE_HDR_LEN CX_STORE_LOG_HEADER_LEN
#define COMPACT_CHUNK (1u << 20)

static const char file_magic[8] = {'C', 'U', 'L', 'E', 'X', 'L', 'O', 'G'};
/* Mosquitto's mosquitto.db starts with these 15 bytes: someone may point culex at it when
 * migrating, and deserves a better message than "not a culex log". */
static const uint8_t mosq_magic[15] = {0x00, 0xB5, 0x00, 'm', 'o', 's', 'q', 'u',
                                       'i',  't',  't',  'o', ' ', 'd', 'b'};

struct cx_store_log {
    pthread_mutex_t mu;
    pthread_cond_t cv_work; /* the writer waits here */
    pthread_cond_t cv_done; /* commits, freed space, compaction end */
    pthread_t writer;

    cx_store_log_opts_t opts;
    char *path, *tmp_path, *dir_path;
    int fd;

    cx_buf_t cur, spare;       /* pending batch; the writer's in-flight batch */
    uint64_t first_pending_ms; /* when cur went from empty to non-empty */
    uint64_t appended_seq;     /* last seq handed out */
    uint64_t taken_seq;        /* last seq handed to the writer */
    uint64_t durable_seq;
    uint64_t notified_seq;     /* last durable_seq passed to opts.on_commit */
    uint64_t flush_upto;       /* commit_wait asked for everything up to here */
    uint64_t end_off;          /* committed size of the file */
    uint64_t base_size;        /* end_off after open or after the last compaction */
    uint64_t batches, compactions;
    int failed;                /* 0 or the error that failed the store */
    bool writing, stop, compacting;
    pthread_t compactor;
};

struct cx_store_log_compactor {
    cx_store_log_t *s;
    int fd;
    uint64_t off;
    cx_buf_t buf;
    int err;
};

/* --- CRC32C ------------------------------------------------------------------------ */

/* Software table (Castagnoli, reflected 0x82F63B78): the portable fallback, and the
 * reference the hardware path is tested against. One byte per step, so about 0.4 GB/s;
 * every appender pays it for each record before taking the lock, and replay pays it for
 * the whole file at start-up. */
static uint32_t crc_table[256];

static void crc_table_init(void)
{
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++)
            c = (c & 1) ? (c >> 1) ^ 0x82F63B78u : c >> 1;
        crc_table[i] = c;
    }
}

static uint32_t crc32c_sw(uint32_t crc, const void *p, size_t n)
{
    const uint8_t *b = p;
    crc = ~crc;
    while (n--)
        crc = crc_table[(crc ^ *b++) & 0xff] ^ (crc >> 8);
    return ~crc;
}

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <nmmintrin.h>
#define HAVE_CRC32C_HW 1

/* SSE4.2 computes the same polynomial eight bytes per instruction. The target attribute
 * compiles just this function for SSE4.2, so the binary still runs on older CPUs, where
 * crc_init never selects it. */
__attribute__((target("sse4.2"))) static uint32_t crc32c_hw(uint32_t crc, const void *p,
                                                             size_t n)
{
    const uint8_t *b = p;
    uint64_t c = ~crc;
    /* Aligned 8-byte loads: byte steps up to the first boundary. */
    while (n && ((uintptr_t)b & 7)) {
        c = _mm_crc32_u8((uint32_t)c, *b++);
        n--;
    }
    while (n >= 8) {
        uint64_t w;
        memcpy(&w, b, 8); /* one load; memcpy keeps it free of aliasing rules */
        c = _mm_crc32_u64(c, w);
        b += 8;
        n -= 8;
    }
    while (n--)
        c = _mm_crc32_u8((uint32_t)c, *b++);
    return ~(uint32_t)c;
}
#endif

static uint32_t (*crc_impl)(uint32_t, const void *, size_t) = crc32c_sw;
static pthread_once_t crc_once = PTHREAD_ONCE_INIT;

/* GF(2) polynomials mod the CRC32C polynomial, in the CRC's reflected form: bit 31 is
 * the coefficient of x^0, bit 0 that of x^31. Used to combine CRCs (see crc_range). */
static uint32_t gf2_mulmod(uint32_t a, uint32_t b)
{
    uint32_t p = 0;
    for (int i = 0; i < 32; i++, a <<= 1) {
        if (a & 0x80000000u)
            p ^= b;                                      /* + b * x^i */
        b = (b & 1) ? (b >> 1) ^ 0x82F63B78u : b >> 1; /* b *= x */
    }
    return p;
}

static uint32_t x8_pow2[64]; /* x^(8 * 2^k) mod P */

static void crc_init(void)
{
    crc_table_init();
    uint32_t x8 = 0x40000000u; /* x */
    for (int i = 0; i < 3; i++)
        x8 = gf2_mulmod(x8, x8); /* x^8 */
    for (int k = 0; k < 64; k++) {
        x8_pow2[k] = x8;
        x8 = gf2_mulmod(x8, x8);
    }
#ifdef HAVE_CRC32C_HW
    __builtin_cpu_init();
    if (__builtin_cpu_supports("sse4.2"))
        crc_impl = crc32c_hw;
#endif
}

/* x^(8n) mod P: multiplying a CRC register by it runs n zero bytes through it. */
static uint32_t x8n_mod(uint64_t n)
{
    uint32_t r = 0x80000000u; /* 1 */
    for (int k = 0; n; k++, n >>= 1)
        if (n & 1)
            r = gf2_mulmod(r, x8_pow2[k]);
    return r;
}

/* The CRC register after running `n` bytes through it from state `reg`, without the
 * pre- and post-inversion of cx_store_crc32c. Linear in (reg, bytes). */
static uint32_t crc_raw(uint32_t reg, const uint8_t *p, size_t n)
{
    return ~crc_impl(~reg, p, n);
}

uint32_t cx_store_crc32c(uint32_t crc, const void *p, size_t n)
{
    pthread_once(&crc_once, crc_init);
    return crc_impl(crc, p, n);
}

uint32_t cx_store_crc32c_sw(uint32_t crc, const void *p, size_t n)
{
    pthread_once(&crc_once, crc_init);
    return crc32c_sw(crc, p, n);
}

/* --- encoding ---------------------------------------------------------------------- */

static void put32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
    p[2] = (uint8_t)(v >> 16);
    p[3] = (uint8_t)(v >> 24);
}

static uint32_t get32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* The 16-byte file header: magic, format version, CRC32C of the 12 bytes before it. */
static void encode_file_header(uint8_t out[FILE_HDR_LEN])
{
    memcpy(out, file_magic, sizeof file_magic);
    put32(out + 8, CX_STORE_LOG_FORMAT_VERSION);
    put32(out + 12, cx_store_crc32c(0, out, 12));
}

/* Fills the 13-byte header, CRC included. Done outside the store lock, so producers do
 * their CRC work in parallel and the lock covers only the memcpy. */
static void encode_header(uint8_t hdr[HDR_LEN], uint8_t type, const void *key, size_t klen,
                          const void *val, size_t vlen)
{
    put32(hdr + 4, (uint32_t)(klen + vlen));
    hdr[8] = type;
    put32(hdr + 9, (uint32_t)klen);
    uint32_t crc = cx_store_crc32c(0, hdr + 4, HDR_LEN - 4);
    if (klen)
        crc = cx_store_crc32c(crc, key, klen);
    if (vlen)
        crc = cx_store_crc32c(crc, val, vlen);
    put32(hdr, crc);
}

static int append_encoded(cx_buf_t *b, const uint8_t hdr[HDR_LEN], const void *key,
                          size_t klen, const void *val, size_t vlen)
{
    int rc = cx_buf_reserve(b, HDR_LEN + klen + vlen);
    if (rc)
        return rc;
    uint8_t *t = cx_buf_tail(b);
    memcpy(t, hdr, HDR_LEN);
    if (klen)
        memcpy(t + HDR_LEN, key, klen);
    if (vlen)
        memcpy(t + HDR_LEN + klen, val, vlen);
    b->len += HDR_LEN + klen + vlen;
    return CX_OK;
}

static bool record_fits(const cx_store_log_opts_t *o, size_t klen, size_t vlen)
{
    return klen <= o->max_record && vlen <= o->max_record - klen && klen + vlen <= UINT32_MAX;
}

/* --- small I/O helpers ------------------------------------------------------------- */

static int pwrite_all(int fd, const uint8_t *p, size_t n, uint64_t off)
{
    while (n) {
        ssize_t w = pwrite(fd, p, n, (off_t)off);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        if (w == 0)
            return -EIO;
        p += w;
        n -= (size_t)w;
        off += (uint64_t)w;
    }
    return CX_OK;
}

static int pread_all(int fd, uint8_t *p, size_t n, uint64_t off)
{
    while (n) {
        ssize_t r = pread(fd, p, n, (off_t)off);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        if (r == 0)
            return -EIO; /* the file shrank under us */
        p += r;
        n -= (size_t)r;
        off += (uint64_t)r;
    }
    return CX_OK;
}

/* Every data sync of the log and of its compaction file goes through here, so that a test
 * can make it fail (opts.fdatasync_fn). Returns CX_OK or -errno. */
static int sync_data(const cx_store_log_t *s, int fd)
{
    int (*fn)(int) = s->opts.fdatasync_fn ? s->opts.fdatasync_fn : fdatasync;
    return fn(fd) == 0 ? CX_OK : -errno;
}

/* A rename or a new file is durable only once its directory is synced. */
static int fsync_dir(const char *dir)
{
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0)
        return -errno;
    int rc = fsync(dfd) ? -errno : CX_OK;
    close(dfd);
    return rc;
}

static char *path_with_suffix(const char *path, const char *suffix)
{
    size_t a = strlen(path), b = strlen(suffix);
    char *p = cx_malloc(a + b + 1);
    if (p) {
        memcpy(p, path, a);
        memcpy(p + a, suffix, b + 1);
    }
    return p;
}

static char *dir_of(const char *path)
{
    const char *slash = strrchr(path, '/');
    if (!slash)
        return cx_strdup(".");
    if (slash == path)
        return cx_strdup("/");
    return cx_strndup(path, (size_t)(slash - path));
}

static uint64_t deadline_ms(const cx_store_log_t *s)
{
    return s->first_pending_ms + s->opts.batch_ms;
}

static void timed_wait(pthread_cond_t *cv, pthread_mutex_t *mu, uint64_t at_ms)
{
    struct timespec ts = {(time_t)(at_ms / 1000), (long)(at_ms % 1000) * 1000000L};
    pthread_cond_timedwait(cv, mu, &ts);
}

/* Enters the failed state; logged once, on the first failure only. */
static void set_failed(cx_store_log_t *s, int err, const char *what)
{
    if (s->failed)
        return;
    s->failed = err;
    cx_log(CX_LOG_ERR, "store: %s: %s failed: %s; the log is kept as of offset %llu and "
           "refuses appends until it is rewritten", s->path, what, cx_strerror(err),
           (unsigned long long)s->end_off);
}

/* --- writer thread ----------------------------------------------------------------- */

static bool should_commit(const cx_store_log_t *s)
{
    if (cx_buf_used(&s->cur) == 0)
        return false;
    return s->stop || s->failed || s->opts.sync == CX_STORE_LOG_SYNC_ALWAYS ||
           s->flush_upto > s->taken_seq || cx_buf_used(&s->cur) >= s->opts.flush_bytes ||
           cx_time_mono_ms() >= deadline_ms(s);
}

static bool should_notify(const cx_store_log_t *s)
{
    return s->opts.on_commit && s->durable_seq > s->notified_seq;
}

static void *writer_main(void *arg)
{
    cx_store_log_t *s = arg;
    pthread_mutex_lock(&s->mu);
    for (;;) {
        /* Only this thread calls on_commit, so the calls never overlap and their
         * durable_seq only grows, even when a compaction advanced it. The lock is released
         * so that the callback may take the broker's locks, and appends continue. */
        if (should_notify(s)) {
            uint64_t d = s->notified_seq = s->durable_seq;
            pthread_mutex_unlock(&s->mu);
            s->opts.on_commit(s->opts.on_commit_ud, d);
            pthread_mutex_lock(&s->mu);
            continue;
        }
        if (!should_commit(s)) {
            if (s->stop && cx_buf_used(&s->cur) == 0)
                break;
            if (cx_buf_used(&s->cur) > 0)
                timed_wait(&s->cv_work, &s->mu, deadline_ms(s));
            else
                pthread_cond_wait(&s->cv_work, &s->mu);
            continue;
        }
        cx_buf_t b = s->cur;
        s->cur = s->spare;
        s->spare = b;
        uint64_t last = s->appended_seq;
        s->taken_seq = last;
        if (s->failed) {
            /* Nothing after a failure may follow the last good commit: drop the batch;
             * its waiters see the failure. */
            cx_buf_reset(&s->spare);
            pthread_cond_broadcast(&s->cv_done);
            continue;
        }
        int fd = s->fd;
        uint64_t off = s->end_off;
        s->writing = true;
        pthread_cond_broadcast(&s->cv_done); /* appenders held by max_pending */
        pthread_mutex_unlock(&s->mu);

        size_t n = cx_buf_used(&s->spare);
        const char *what = "write";
        int rc = pwrite_all(fd, cx_buf_head(&s->spare), n, off);
        if (rc == CX_OK) {
            rc = sync_data(s, fd);
            what = "fdatasync";
        }
        if (rc != CX_OK) {
            /* Cut back to the last commit so no partial record sits in the file. After a
             * failed fdatasync the written pages may be marked clean without being on disk,
             * so nothing since the last good sync is trusted. */
            if (ftruncate(fd, (off_t)off) == 0)
                (void)sync_data(s, fd);
        }

        pthread_mutex_lock(&s->mu);
        s->writing = false;
        cx_buf_reset(&s->spare);
        if (rc == CX_OK) {
            s->end_off = off + n;
            s->durable_seq = last;
            s->batches++;
        } else {
            set_failed(s, rc, what);
        }
        pthread_cond_broadcast(&s->cv_done);
    }
    pthread_mutex_unlock(&s->mu);
    return NULL;
}

/* --- open and replay --------------------------------------------------------------- */

/* Copies the whole file, as found, to "<path>.corrupt-<unix time>" and syncs it before
 * open changes anything: the damaged region may still mean something to a person, and the
 * truncation or the compaction that follows removes it from the log. An existing copy is
 * never overwritten (".1", ".2", ... are tried). Returns CX_OK or the error; a partial
 * copy is removed. */
static int save_copy(const cx_store_log_t *s, const uint8_t *map, uint64_t size)
{
    long long now = (long long)time(NULL);
    char suffix[64];
    for (int i = 0; i < 1000; i++) {
        if (i == 0)
            snprintf(suffix, sizeof suffix, ".corrupt-%lld", now);
        else
            snprintf(suffix, sizeof suffix, ".corrupt-%lld.%d", now, i);
        char *aside = path_with_suffix(s->path, suffix);
        if (!aside)
            return CX_ENOMEM;
        int fd = open(aside, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
        if (fd < 0 && errno == EEXIST) {
            cx_free(aside);
            continue;
        }
        int rc = fd < 0 ? -errno : pwrite_all(fd, map, (size_t)size, 0);
        if (rc == CX_OK && fsync(fd) != 0)
            rc = -errno;
        if (fd >= 0)
            close(fd);
        if (rc == CX_OK)
            rc = fsync_dir(s->dir_path);
        if (rc == CX_OK) {
            cx_log(CX_LOG_WARNING, "store: %s: the damaged log, as found (%llu bytes), was "
                   "copied to %s", s->path, (unsigned long long)size, aside);
        } else {
            cx_log(CX_LOG_ERR, "store: %s: cannot copy the damaged log to %s: %s; the log is "
                   "left as it was and not opened", s->path, aside, cx_strerror(rc));
            if (fd >= 0)
                unlink(aside);
        }
        cx_free(aside);
        return rc;
    }
    return -EEXIST;
}

/* Checks the file header, or writes it into a new file. A file that does not start with
 * our header belongs to someone else (another program, a Mosquitto database, a newer
 * culex): it is refused with CX_EFORMAT and never modified, truncated or renamed, because
 * "repairing" it would destroy data we cannot read. The one exception is a file shorter
 * than the header whose bytes are a prefix of it: an open that crashed while creating the
 * file; nothing else can be in it, so it is completed. */
static int check_header(cx_store_log_t *s, cx_store_log_recovery_t *rec)
{
    struct stat st;
    if (fstat(s->fd, &st) != 0)
        return -errno;
    uint8_t want[FILE_HDR_LEN], got[FILE_HDR_LEN];
    encode_file_header(want);
    size_t n = (uint64_t)st.st_size < FILE_HDR_LEN ? (size_t)st.st_size : FILE_HDR_LEN;
    int rc = pread_all(s->fd, got, n, 0);
    if (rc != CX_OK)
        return rc;

    if (n >= sizeof mosq_magic && memcmp(got, mosq_magic, sizeof mosq_magic) == 0) {
        rec->mosquitto_db = true;
        cx_log(CX_LOG_ERR, "store: %s: this is a Mosquitto persistence file (mosquitto.db), "
               "which culex cannot read; it was left untouched. Give culex a path of its own "
               "for its log", s->path);
        return CX_EFORMAT;
    }
    if (n < FILE_HDR_LEN) {
        if (memcmp(got, want, n) != 0) {
            cx_log(CX_LOG_ERR, "store: %s: not a culex log file (%zu bytes that are not a "
                   "culex log header); it was left untouched", s->path, n);
            return CX_EFORMAT;
        }
        rc = pwrite_all(s->fd, want, FILE_HDR_LEN, 0);
        if (rc == CX_OK)
            rc = sync_data(s, s->fd);
        if (rc == CX_OK && n > 0)
            cx_log(CX_LOG_NOTICE, "store: %s: completed a header cut short at %zu bytes "
                   "(a crash while the file was created)", s->path, n);
        return rc;
    }
    if (memcmp(got, file_magic, sizeof file_magic) != 0) {
        cx_log(CX_LOG_ERR, "store: %s: not a culex log file (it does not start with "
               "\"CULEXLOG\"); it was left untouched", s->path);
        return CX_EFORMAT;
    }
    if (get32(got + 12) != cx_store_crc32c(0, got, 12)) {
        cx_log(CX_LOG_ERR, "store: %s: the culex log header is damaged (checksum mismatch); "
               "the file was left untouched", s->path);
        return CX_EFORMAT;
    }
    uint32_t version = get32(got + 8);
    if (version != CX_STORE_LOG_FORMAT_VERSION) {
        cx_log(CX_LOG_ERR, "store: %s: culex log format version %u%s, but this build reads "
               "version %u only; the file was left untouched", s->path, (unsigned)version,
               version > CX_STORE_LOG_FORMAT_VERSION ? " (written by a newer culex)" : "",
               (unsigned)CX_STORE_LOG_FORMAT_VERSION);
        return CX_EFORMAT;
    }
    return CX_OK;
}

enum rec_state { REC_OK, REC_SHORT_HDR, REC_BAD_LEN, REC_SHORT, REC_BAD_CRC };

static const char *const rec_state_text[] = {
    [REC_OK] = "valid record",
    [REC_SHORT_HDR] = "short header",
    [REC_BAD_LEN] = "impossible length",
    [REC_SHORT] = "short record",
    [REC_BAD_CRC] = "checksum mismatch",
};

/* Parses the record at `off` (off < size). On REC_OK, and on REC_BAD_CRC, *len is its
 * length. With check_crc false only the lengths are checked. */
static enum rec_state parse_at(const uint8_t *map, uint64_t size, uint64_t off,
                               size_t max_record, bool check_crc, uint64_t *len)
{
    if (size - off < HDR_LEN)
        return REC_SHORT_HDR;
    const uint8_t *h = map + off;
    uint32_t plen = get32(h + 4), klen = get32(h + 9);
    if (klen > plen || plen > max_record)
        return REC_BAD_LEN;
    if (size - off - HDR_LEN < plen)
        return REC_SHORT;
    *len = HDR_LEN + (uint64_t)plen;
    if (check_crc && cx_store_crc32c(0, h + 4, HDR_LEN - 4 + (size_t)plen) != get32(h))
        return REC_BAD_CRC;
    return REC_OK;
}

/* The resync scan checks a candidate record at nearly every offset of a damaged region,
 * and its length there is whatever the damaged bytes say: up to max_record. A payload of
 * repeated small bytes (0x01 ...) makes every offset a plausible pair of 16 MiB records,
 * and checking each one directly would keep open busy for days. CRCs are linear, so with
 * the register state saved every CRC_STEP bytes, the CRC of any range costs two CRCs of
 * at most CRC_STEP bytes and one multiplication by x^(8 * length). The index costs one
 * pass over the file and 4 bytes per CRC_STEP, and is built only once damage is found. */
#define CRC_STEP 1024

typedef struct crc_index {
    const uint8_t *map;
    uint64_t base;    /* states[i] is the raw CRC of map[base, base + i * CRC_STEP) */
    uint32_t *states; /* NULL: no memory for it, every check is direct */
    uint64_t last_len; /* one-entry cache: damaged runs repeat the same lengths */
    uint32_t last_pow;
} crc_index_t;

static void crc_index_build(crc_index_t *ix, const uint8_t *map, uint64_t base, uint64_t size)
{
    *ix = (crc_index_t){.map = map, .base = base};
    size_t n = (size_t)((size - base) / CRC_STEP) + 1;
    ix->states = cx_malloc(n * sizeof ix->states[0]);
    if (!ix->states)
        return;
    ix->states[0] = 0;
    for (size_t i = 1; i < n; i++)
        ix->states[i] = crc_raw(ix->states[i - 1], map + base + (i - 1) * CRC_STEP, CRC_STEP);
}

/* The raw CRC of map[base, off). */
static uint32_t crc_prefix(const crc_index_t *ix, uint64_t off)
{
    uint64_t i = (off - ix->base) / CRC_STEP, at = ix->base + i * CRC_STEP;
    return crc_raw(ix->states[i], ix->map + at, (size_t)(off - at));
}

/* cx_store_crc32c(0, map + a, b - a). With Q(x) the raw CRC of everything from base to x,
 * Q(b) = Q(a) * x^(8L) + raw(0, [a, b)), and the inversions amount to starting from ~0. */
static uint32_t crc_range(crc_index_t *ix, uint64_t a, uint64_t b)
{
    uint64_t len = b - a;
    if (!ix->states || len <= 2 * CRC_STEP)
        return cx_store_crc32c(0, ix->map + a, (size_t)len);
    if (len != ix->last_len) {
        ix->last_len = len;
        ix->last_pow = x8n_mod(len);
    }
    uint32_t qa = crc_prefix(ix, a), qb = crc_prefix(ix, b);
    return ~(qb ^ gf2_mulmod(qa ^ 0xFFFFFFFFu, ix->last_pow));
}

static bool crc_matches(crc_index_t *ix, uint64_t off, uint64_t len)
{
    return crc_range(ix, off + 4, off + len) == get32(ix->map + off);
}

/* The first offset at or after `from` where replay can continue after damage: two
 * consecutive valid records there, or one that ends exactly at the end of the file. One
 * valid record alone could be chance; a second that starts where the first ends is not.
 * Lengths are checked before CRCs (most offsets fail there), and CRCs go through the
 * index. Returns `size` when there is no such offset. */
static uint64_t resync(crc_index_t *ix, uint64_t size, uint64_t from, size_t max_record)
{
    const uint8_t *map = ix->map;
    for (uint64_t o = from; o < size && size - o >= HDR_LEN; o++) {
        uint64_t a, b;
        if (parse_at(map, size, o, max_record, false, &a) != REC_OK)
            continue;
        uint64_t next = o + a;
        bool at_end = next == size;
        if (!at_end && parse_at(map, size, next, max_record, false, &b) != REC_OK)
            continue;
        if (!crc_matches(ix, o, a))
            continue;
        if (!at_end && !crc_matches(ix, next, b))
            continue;
        return o;
    }
    return size;
}

/* Replays the file, steps over damaged regions that valid records follow, and truncates
 * after the last valid record.
 *
 * Damage is a torn tail (a crash mid-write) only when nothing valid follows it and it is
 * short: a record or header cut by the end of the file. That is dropped with a log line.
 * Everything else is corruption: a complete record with a bad checksum or an impossible
 * length, or any damage that valid records follow (whatever it looks like: a flipped
 * length can make a record look short). Then the whole file is first copied aside, and the
 * replay continues at the next valid records, so that nothing after the damage is lost. */
static int recover(cx_store_log_t *s, cx_store_log_replay_cb cb, void *ud,
                   cx_store_log_recovery_t *rec)
{
    struct stat st;
    if (fstat(s->fd, &st) != 0)
        return -errno;
    uint64_t size = (uint64_t)st.st_size, off = FILE_HDR_LEN;
    const uint8_t *map = mmap(NULL, (size_t)size, PROT_READ, MAP_PRIVATE, s->fd, 0);
    if (map == MAP_FAILED)
        return -errno;
    size_t max = s->opts.max_record;
    enum rec_state tail = REC_OK;
    crc_index_t ix = {.map = map};
    bool indexed = false, saved = false;
    unsigned regions = 0;
    int rc = CX_OK;
    while (off < size) {
        uint64_t len = 0;
        enum rec_state state = parse_at(map, size, off, max, true, &len);
        if (state == REC_OK) {
            if (cb) {
                const uint8_t *h = map + off;
                uint32_t plen = get32(h + 4), klen = get32(h + 9);
                cx_store_log_rec_t r = {
                    .type = h[8],
                    .key = {h + HDR_LEN, klen},
                    .val = {h + HDR_LEN + klen, plen - klen},
                    .off = off,
                };
                int cbrc = cb(ud, &r);
                if (cbrc < 0) { /* only a negative return aborts */
                    rc = cbrc;
                    goto out;
                }
            }
            rec->records++;
            off += len;
            continue;
        }
        if (!indexed) {
            crc_index_build(&ix, map, FILE_HDR_LEN, size);
            indexed = true;
        }
        uint64_t next = resync(&ix, size, off + 1, max);
        if (next == size) {
            tail = state;
            break;
        }
        cx_log(CX_LOG_WARNING, "store: %s: %s at offset %llu after %llu records; skipping %llu "
               "damaged bytes to the valid records at offset %llu", s->path,
               rec_state_text[state], (unsigned long long)off, (unsigned long long)rec->records,
               (unsigned long long)(next - off), (unsigned long long)next);
        if (!saved) {
            rc = save_copy(s, map, size);
            if (rc != CX_OK)
                goto out;
            saved = true;
        }
        rec->corrupt = true;
        rec->bytes_skipped += next - off;
        regions++;
        off = next;
    }
    if (off < size) {
        bool corrupt = tail == REC_BAD_LEN || tail == REC_BAD_CRC;
        cx_log(CX_LOG_WARNING, "store: %s: %s at offset %llu after %llu records%s; dropping the "
               "last %llu bytes", s->path, rec_state_text[tail], (unsigned long long)off,
               (unsigned long long)rec->records,
               corrupt ? " and no valid record after it" : " (a write cut short by a crash)",
               (unsigned long long)(size - off));
        if (corrupt && !saved) {
            rc = save_copy(s, map, size);
            if (rc != CX_OK)
                goto out;
            saved = true;
        }
        rec->corrupt |= corrupt;
        rc = ftruncate(s->fd, (off_t)off) == 0 ? sync_data(s, s->fd) : -errno;
        if (rc != CX_OK)
            goto out;
    }
    if (regions) {
        rec->rewrite_needed = true;
        cx_log(CX_LOG_WARNING, "store: %s: %u damaged regions (%llu bytes) were skipped and "
               "stay in the file until the log is compacted", s->path, regions,
               (unsigned long long)rec->bytes_skipped);
    }
    rec->bytes_kept = off;
    rec->bytes_dropped = size - off;
    s->end_off = s->base_size = off;
out:
    cx_free(ix.states);
    munmap((void *)map, (size_t)size);
    return rc;
}

static void store_free(cx_store_log_t *s)
{
    if (s->fd >= 0)
        close(s->fd);
    cx_buf_free(&s->cur);
    cx_buf_free(&s->spare);
    cx_free(s->path);
    cx_free(s->tmp_path);
    cx_free(s->dir_path);
    pthread_cond_destroy(&s->cv_work);
    pthread_cond_destroy(&s->cv_done);
    pthread_mutex_destroy(&s->mu);
    cx_free(s);
}

cx_store_log_t *cx_store_log_open(const char *path, const cx_store_log_opts_t *opts,
                                  cx_store_log_replay_cb cb, void *ud,
                                  cx_store_log_recovery_t *rec, int *err)
{
    cx_store_log_recovery_t local;
    if (!rec)
        rec = &local;
    memset(rec, 0, sizeof *rec);
    int dummy;
    if (!err)
        err = &dummy;

    cx_store_log_t *s = cx_calloc(1, sizeof *s);
    if (!s) {
        *err = CX_ENOMEM;
        return NULL;
    }
    s->fd = -1;
    if (opts)
        s->opts = *opts;
    if (!s->opts.batch_ms)
        s->opts.batch_ms = 100;
    if (!s->opts.flush_bytes)
        s->opts.flush_bytes = 1u << 20;
    if (!s->opts.max_pending)
        s->opts.max_pending = 64u << 20;
    if (!s->opts.max_record)
        s->opts.max_record = 256u << 20;
    cx_buf_init(&s->cur, 0);
    cx_buf_init(&s->spare, 0);
    pthread_mutex_init(&s->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC); /* cx_time_mono_ms's clock */
    pthread_cond_init(&s->cv_work, &ca);
    pthread_cond_init(&s->cv_done, &ca);
    pthread_condattr_destroy(&ca);

    s->path = cx_strdup(path);
    s->tmp_path = path_with_suffix(path, ".compact");
    s->dir_path = dir_of(path);
    if (!s->path || !s->tmp_path || !s->dir_path) {
        *err = CX_ENOMEM;
        goto fail;
    }
    s->fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    int rc = s->fd < 0 ? -errno : CX_OK;
    if (rc == CX_OK)
        rc = check_header(s, rec);
    if (rc == CX_OK)
        rc = recover(s, cb, ud, rec);
    /* The directory is synced on every open, not only when the file was created here: a
     * file found with a valid header may come from an open that crashed before its
     * directory sync, and records acknowledged into it would vanish with its entry. */
    if (rc == CX_OK)
        rc = fsync_dir(s->dir_path);
    if (rc == CX_OK)
        rc = -pthread_create(&s->writer, NULL, writer_main, s);
    if (rc != CX_OK) {
        /* check_header has already said why a file is refused. */
        if (rc != CX_EFORMAT)
            cx_log(CX_LOG_ERR, "store: %s: cannot open the log: %s", path, cx_strerror(rc));
        *err = rc;
        goto fail;
    }
    *err = CX_OK;
    return s;
fail:
    store_free(s);
    return NULL;
}

int cx_store_log_close(cx_store_log_t *s)
{
    if (!s)
        return CX_OK;
    pthread_mutex_lock(&s->mu);
    s->stop = true;
    pthread_cond_signal(&s->cv_work);
    pthread_mutex_unlock(&s->mu);
    pthread_join(s->writer, NULL);
    int rc = s->failed;
    store_free(s);
    return rc;
}

/* --- appends and waits ------------------------------------------------------------- */

int cx_store_log_append(cx_store_log_t *s, uint8_t type, const void *key, size_t klen,
                        const void *val, size_t vlen, uint64_t *seq)
{
    if (!record_fits(&s->opts, klen, vlen))
        return CX_ETOOBIG;
    uint8_t hdr[HDR_LEN];
    encode_header(hdr, type, key, klen, val, vlen);

    pthread_mutex_lock(&s->mu);
    if (s->compacting && pthread_equal(s->compactor, pthread_self())) {
        pthread_mutex_unlock(&s->mu);
        return CX_EINVAL; /* would wait for itself */
    }
    while (!s->failed &&
           (s->compacting || (cx_buf_used(&s->cur) > 0 &&
                              cx_buf_used(&s->cur) >= s->opts.max_pending)))
        pthread_cond_wait(&s->cv_done, &s->mu);
    int rc = s->failed;
    if (rc == CX_OK) {
        bool was_empty = cx_buf_used(&s->cur) == 0;
        rc = append_encoded(&s->cur, hdr, key, klen, val, vlen);
        if (rc == CX_OK) {
            if (was_empty)
                s->first_pending_ms = cx_time_mono_ms();
            if (seq)
                *seq = ++s->appended_seq;
            else
                ++s->appended_seq;
            if (was_empty || s->opts.sync == CX_STORE_LOG_SYNC_ALWAYS ||
                cx_buf_used(&s->cur) >= s->opts.flush_bytes)
                pthread_cond_signal(&s->cv_work);
        }
    }
    pthread_mutex_unlock(&s->mu);
    return rc;
}

int cx_store_log_commit_wait(cx_store_log_t *s, uint64_t seq)
{
    pthread_mutex_lock(&s->mu);
    if (seq > s->appended_seq) {
        pthread_mutex_unlock(&s->mu);
        return CX_EINVAL;
    }
    if (seq > s->flush_upto) {
        s->flush_upto = seq;
        pthread_cond_signal(&s->cv_work);
    }
    while (s->durable_seq < seq && !s->failed)
        pthread_cond_wait(&s->cv_done, &s->mu);
    int rc = s->durable_seq >= seq ? CX_OK : s->failed;
    pthread_mutex_unlock(&s->mu);
    return rc;
}

int cx_store_log_sync(cx_store_log_t *s)
{
    pthread_mutex_lock(&s->mu);
    uint64_t seq = s->appended_seq;
    pthread_mutex_unlock(&s->mu);
    return cx_store_log_commit_wait(s, seq);
}

int cx_store_log_status(cx_store_log_t *s)
{
    pthread_mutex_lock(&s->mu);
    int rc = s->failed;
    pthread_mutex_unlock(&s->mu);
    return rc;
}

void cx_store_log_stats(cx_store_log_t *s, cx_store_log_stats_t *out)
{
    pthread_mutex_lock(&s->mu);
    *out = (cx_store_log_stats_t){
        .appended_seq = s->appended_seq,
        .durable_seq = s->durable_seq,
        .batches = s->batches,
        .file_size = s->end_off,
        .base_size = s->base_size,
        .compactions = s->compactions,
    };
    pthread_mutex_unlock(&s->mu);
}

/* --- compaction -------------------------------------------------------------------- */

static int compactor_flush(cx_store_log_compactor_t *c)
{
    size_t n = cx_buf_used(&c->buf);
    if (c->err || n == 0)
        return c->err;
    c->err = pwrite_all(c->fd, cx_buf_head(&c->buf), n, c->off);
    c->off += n;
    cx_buf_reset(&c->buf);
    return c->err;
}

int cx_store_log_compact_put(cx_store_log_compactor_t *c, uint8_t type, const void *key,
                             size_t klen, const void *val, size_t vlen)
{
    if (c->err)
        return c->err;
    if (!record_fits(&c->s->opts, klen, vlen))
        return CX_ETOOBIG;
    uint8_t hdr[HDR_LEN];
    encode_header(hdr, type, key, klen, val, vlen);
    int rc = append_encoded(&c->buf, hdr, key, klen, val, vlen);
    if (rc)
        return c->err = rc;
    return cx_buf_used(&c->buf) >= COMPACT_CHUNK ? compactor_flush(c) : CX_OK;
}

/* Appends are blocked for the whole compaction, not only the swap. That is the simplest
 * rule that loses nothing: the live set the caller enumerates then includes every record
 * appended before, and every append after lands in the new file. Appends written to both
 * files would avoid the stall, but belong with the segmented design (docs/
 * persistence-design.md), where compaction reads closed segments off the commit path. */
int cx_store_log_compact(cx_store_log_t *s, cx_store_log_live_cb live, void *ud)
{
    pthread_mutex_lock(&s->mu);
    if (s->compacting && pthread_equal(s->compactor, pthread_self())) {
        pthread_mutex_unlock(&s->mu);
        return CX_EINVAL;
    }
    while (s->compacting)
        pthread_cond_wait(&s->cv_done, &s->mu);
    s->compacting = true;
    s->compactor = pthread_self();
    /* Let the writer finish with the old file: everything pending is committed (or
     * dropped, if the store has failed) and no write is in flight. */
    s->flush_upto = s->appended_seq;
    pthread_cond_signal(&s->cv_work);
    while (cx_buf_used(&s->cur) > 0 || s->writing)
        pthread_cond_wait(&s->cv_done, &s->mu);
    pthread_mutex_unlock(&s->mu);

    cx_store_log_compactor_t c = {.s = s, .fd = -1};
    cx_buf_init(&c.buf, 0);
    const char *what = "open";
    int rc = CX_OK;
    c.fd = open(s->tmp_path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (c.fd < 0)
        rc = -errno;
    if (rc == CX_OK) {
        what = "write";
        rc = cx_buf_reserve(&c.buf, FILE_HDR_LEN);
    }
    if (rc == CX_OK) {
        encode_file_header(cx_buf_tail(&c.buf));
        c.buf.len += FILE_HDR_LEN;
        rc = live(ud, &c);
        if (rc == CX_OK)
            rc = compactor_flush(&c);
        else if (c.err)
            rc = c.err;
        else
            what = "live-set callback";
    }
    if (rc == CX_OK) {
        rc = sync_data(s, c.fd);
        if (rc != CX_OK)
            what = "fdatasync";
    }
    if (rc == CX_OK && rename(s->tmp_path, s->path) != 0) {
        rc = -errno;
        what = "rename";
    }
    cx_buf_free(&c.buf);
    if (rc != CX_OK) {
        cx_log(CX_LOG_ERR, "store: %s: compaction %s failed: %s; the old log is unchanged",
               s->path, what, cx_strerror(rc));
        if (c.fd >= 0)
            close(c.fd);
        unlink(s->tmp_path);
        pthread_mutex_lock(&s->mu);
        s->compacting = false;
        pthread_cond_broadcast(&s->cv_done);
        pthread_mutex_unlock(&s->mu);
        return rc;
    }
    /* The new file is in place. If the directory sync fails, a crash could bring back the
     * old file without what is appended next, so the store is failed rather than trusted. */
    int drc = fsync_dir(s->dir_path);

    pthread_mutex_lock(&s->mu);
    close(s->fd);
    s->fd = c.fd;
    s->end_off = s->base_size = c.off;
    /* Everything appended so far is represented by the live set, and durable once the
     * rename is. */
    s->taken_seq = s->appended_seq;
    if (drc == CX_OK)
        s->durable_seq = s->appended_seq;
    s->failed = CX_OK;
    s->compactions++;
    if (drc != CX_OK)
        set_failed(s, drc, "fsync of the directory after compaction");
    s->compacting = false;
    pthread_cond_broadcast(&s->cv_done);
    pthread_cond_signal(&s->cv_work); /* durable_seq may have advanced: on_commit */
    pthread_mutex_unlock(&s->mu);
    if (drc == CX_OK)
        cx_log(CX_LOG_INFO, "store: %s: compacted to %llu bytes", s->path,
               (unsigned long long)c.off);
    return drc;
}
