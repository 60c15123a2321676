/* log.c: formats a line once, on the calling thread, and hands it to a logger thread that
 * writes it to every configured destination.
 *
 * Why a thread: a destination can stop draining (stderr into a pipe nobody reads, a stalled
 * syslog daemon, a log file on a hung network mount), and a worker must never wait for it.
 * Callers only copy the line into a bounded ring under a mutex that is never held across a
 * write; when the ring is full the line is dropped and counted. Once writing works again the
 * logger thread says how many lines were lost, and cx_log_dropped() (published as
 * $SYS/broker/log/dropped) keeps the total.
 *
 * While the destinations keep up, the caller then waits until its line is written, as when
 * it wrote the line itself: whatever it does next (accept connections, answer a client)
 * comes after the line in the log, which operators and tests rely on. That wait is bounded
 * (WRITE_WAIT_MS): when it runs out, the log counts as stalled and callers stop waiting
 * until the logger thread has caught up with everything queued. A stalled destination thus
 * costs a worker one short wait, not a blocked write.
 *
 * The thread starts with the first line after a configuration names a destination that can
 * block (stdout, stderr, file, syslog); a child after fork starts its own the same way.
 * Before that (configuration errors at start-up) and after cx_log_shutdown, lines are
 * written by the caller as before. cx_log_shutdown writes what is queued, for at most
 * SHUTDOWN_WAIT_MS: a stalled destination cannot keep the broker from exiting.
 *
 * The `log_dest topic` sink is called on the caller's thread, outside the lock: it does no
 * I/O, and the line is published as a message by the broker. */
#include "log.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include "alloc.h"

unsigned cx_log_types_enabled = CX_LOG_ERR | CX_LOG_WARNING | CX_LOG_NOTICE | CX_LOG_INFO;

/* Bytes of queued lines. A line is at most ~1.2 KB, so this holds a few hundred even at
 * their longest, and a few thousand usual ones: bursts pass, a stalled sink loses lines. */
#define RING_SIZE (256u * 1024)
/* What the logger thread takes out of the ring at once. */
#define BATCH_SIZE (64u * 1024)
#define LINE_MAX_LEN 1024
#define STAMP_MAX_LEN 128
#define SHUTDOWN_WAIT_MS 2000
/* fork and log file changes wait this long for queued lines to be written first */
#define FORK_WAIT_MS 500
/* A caller waits at most this long for its line to be written (see the top). */
#define WRITE_WAIT_MS 50

/* Destinations written by the logger thread. */
#define THREAD_DESTS (CX_LOGDEST_STDOUT | CX_LOGDEST_STDERR | CX_LOGDEST_FILE | CX_LOGDEST_SYSLOG)

/* A queued line: this header, the time stamp (with its ": "), then the line. */
typedef struct rec_hdr {
    uint16_t stamp_len;
    uint16_t line_len;
    int32_t priority; /* syslog priority */
} rec_hdr_t;

static struct {
    pthread_mutex_t lock;
    pthread_cond_t wake; /* logger thread: lines queued, or stop */
    pthread_cond_t idle; /* waiters: the logger thread finished a batch or exited */
    unsigned dests;
    int file_fd; /* -1 when no log file; replaced in place with dup3 */
    char *file_path;
    bool timestamp;
    char *ts_format;
    bool syslog_open;
    cx_log_topic_cb topic_cb;
    void *topic_ud;
    /* the ring and the logger thread */
    uint64_t head, tail; /* bytes ever queued / taken; head - tail is in use */
    uint64_t written;    /* bytes whose lines have been written */
    bool stalled;        /* a caller's wait ran out: callers do not wait until caught up */
    bool want_thread;    /* the configuration has a destination that can block */
    bool running;        /* a logger thread serves this process */
    bool busy;           /* it is writing a batch */
    bool stop;
    bool exited;
    bool abandoned; /* a thread was left blocked at shutdown: write nothing more */
    pthread_t thread;
    uint64_t dropped_unreported;
    bool atfork_done;
} lg = {
    .lock = PTHREAD_MUTEX_INITIALIZER,
    .wake = PTHREAD_COND_INITIALIZER,
    .idle = PTHREAD_COND_INITIALIZER,
    .dests = CX_LOGDEST_STDERR,
    .file_fd = -1,
    .timestamp = true,
};

static uint8_t ring[RING_SIZE];
static _Atomic uint64_t dropped_total;

uint64_t cx_log_dropped(void)
{
    return atomic_load_explicit(&dropped_total, memory_order_relaxed);
}

/* --- writing (logger thread, or the caller when there is no thread) --- */

/* Blocking write of the whole buffer; gives up on errors other than EINTR/EAGAIN. */
static void write_all(int fd, const char *p, size_t n)
{
    while (n) {
        ssize_t w = write(fd, p, n);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                /* Someone made the descriptor non-blocking: wait here, not in a worker. */
                struct pollfd pfd = {.fd = fd, .events = POLLOUT};
                (void)poll(&pfd, 1, -1);
                continue;
            }
            return;
        }
        p += w;
        n -= (size_t)w;
    }
}

/* Writes `text` (lines with their time stamps and newlines) to the descriptor sinks. */
static void write_fds(unsigned dests, int file_fd, const char *text, size_t len)
{
    if (!len)
        return;
    if (dests & CX_LOGDEST_STDOUT)
        write_all(STDOUT_FILENO, text, len);
    if (dests & CX_LOGDEST_STDERR)
        write_all(STDERR_FILENO, text, len);
    if ((dests & CX_LOGDEST_FILE) && file_fd >= 0)
        write_all(file_fd, text, len);
}

static size_t format_stamp(char *stamp, size_t cap)
{
    size_t slen = 0;
    if (!lg.timestamp)
        return 0;
    time_t now = time(NULL);
    if (lg.ts_format) {
        struct tm tm;
        localtime_r(&now, &tm);
        slen = strftime(stamp, cap - 2, lg.ts_format, &tm);
    } else {
        slen = (size_t)snprintf(stamp, cap - 2, "%lld", (long long)now);
        if (slen > cap - 3)
            slen = cap - 3;
    }
    stamp[slen++] = ':';
    stamp[slen++] = ' ';
    return slen;
}

/* --- the ring (lg.lock held) --- */

static void ring_put(const void *p, size_t n)
{
    size_t at = (size_t)(lg.head % RING_SIZE);
    size_t first = RING_SIZE - at < n ? RING_SIZE - at : n;
    memcpy(ring + at, p, first);
    memcpy(ring, (const uint8_t *)p + first, n - first);
    lg.head += n;
}

static void ring_get(uint64_t from, void *p, size_t n)
{
    size_t at = (size_t)(from % RING_SIZE);
    size_t first = RING_SIZE - at < n ? RING_SIZE - at : n;
    memcpy(p, ring + at, first);
    memcpy((uint8_t *)p + first, ring, n - first);
}

/* Queues one line; false (and counted) when it does not fit. */
static bool enqueue(int priority, const char *stamp, size_t slen, const char *line, size_t len)
{
    rec_hdr_t h = {.stamp_len = (uint16_t)slen, .line_len = (uint16_t)len, .priority = priority};
    size_t need = sizeof h + slen + len;
    if (RING_SIZE - (lg.head - lg.tail) < need) {
        lg.dropped_unreported++;
        atomic_fetch_add_explicit(&dropped_total, 1, memory_order_relaxed);
        return false;
    }
    ring_put(&h, sizeof h);
    ring_put(stamp, slen);
    ring_put(line, len);
    return true;
}

/* --- the logger thread --- */

static void write_notice(unsigned dests, int file_fd, uint64_t n)
{
    char line[160], stamp[STAMP_MAX_LEN], out[sizeof line + sizeof stamp + 1];
    int len =
        snprintf(line, sizeof line, "%llu log lines dropped: a log destination was not draining.",
                 (unsigned long long)n);
    pthread_mutex_lock(&lg.lock);
    size_t slen = format_stamp(stamp, sizeof stamp);
    pthread_mutex_unlock(&lg.lock);
    memcpy(out, stamp, slen);
    memcpy(out + slen, line, (size_t)len);
    out[slen + (size_t)len] = '\n';
    write_fds(dests, file_fd, out, slen + (size_t)len + 1);
    if (dests & CX_LOGDEST_SYSLOG)
        syslog(LOG_WARNING, "%s", line);
}

static void *logger_main(void *arg)
{
    (void)arg;
    pthread_setname_np(pthread_self(), "culex-log");
    /* Lines as taken from the ring, and the same lines laid out for the descriptors. */
    static uint8_t batch[BATCH_SIZE];
    static char text[BATCH_SIZE];
    pthread_mutex_lock(&lg.lock);
    for (;;) {
        while (lg.head == lg.tail && !lg.dropped_unreported && !lg.stop)
            pthread_cond_wait(&lg.wake, &lg.lock);
        if (lg.head == lg.tail && !lg.dropped_unreported && lg.stop)
            break;
        /* Whole records, as many as fit in the batch. */
        size_t n = 0;
        while (lg.tail + n < lg.head) {
            rec_hdr_t h;
            ring_get(lg.tail + n, &h, sizeof h);
            size_t rl = sizeof h + h.stamp_len + h.line_len;
            if (n + rl > sizeof batch)
                break;
            ring_get(lg.tail + n, batch + n, rl);
            n += rl;
        }
        lg.tail += n;
        uint64_t upto = lg.tail;
        unsigned dests = lg.dests;
        int file_fd = lg.file_fd;
        uint64_t dropped = lg.dropped_unreported;
        lg.dropped_unreported = 0;
        lg.busy = true;
        pthread_mutex_unlock(&lg.lock);

        size_t tlen = 0;
        for (size_t off = 0; off < n;) {
            rec_hdr_t h;
            memcpy(&h, batch + off, sizeof h);
            const char *s = (const char *)batch + off + sizeof h;
            memcpy(text + tlen, s, (size_t)h.stamp_len + h.line_len);
            tlen += (size_t)h.stamp_len + h.line_len;
            text[tlen++] = '\n';
            if (dests & CX_LOGDEST_SYSLOG)
                syslog(h.priority, "%.*s", (int)h.line_len, s + h.stamp_len);
            off += sizeof h + h.stamp_len + h.line_len;
        }
        write_fds(dests, file_fd, text, tlen);
        /* Said once writing works again, after the lines that were queued before. */
        if (dropped)
            write_notice(dests, file_fd, dropped);

        pthread_mutex_lock(&lg.lock);
        lg.busy = false;
        lg.written = upto;
        if (lg.head == lg.tail)
            lg.stalled = false; /* caught up */
        pthread_cond_broadcast(&lg.idle);
    }
    lg.exited = true;
    pthread_cond_broadcast(&lg.idle);
    pthread_mutex_unlock(&lg.lock);
    return NULL;
}

static struct timespec deadline_in(int ms)
{
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += ms / 1000;
    until.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (until.tv_nsec >= 1000000000L) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000L;
    }
    return until;
}

/* Waits (lg.lock held) until the lines queued up to `pos` are written, for at most `ms`;
 * when that runs out the log counts as stalled (see the top of the file). */
static void wait_written(uint64_t pos, int ms)
{
    struct timespec until = deadline_in(ms);
    while (lg.running && !lg.exited && lg.written < pos) {
        if (pthread_cond_timedwait(&lg.idle, &lg.lock, &until) == ETIMEDOUT) {
            lg.stalled = lg.written < pos;
            return;
        }
    }
}

/* Waits (lg.lock held) until the ring is empty and the thread idle, or `ms` pass. Returns
 * true when everything was written. */
static bool wait_drained(int ms)
{
    struct timespec until = deadline_in(ms);
    while (lg.running && !lg.exited && (lg.head != lg.tail || lg.busy || lg.dropped_unreported)) {
        if (pthread_cond_timedwait(&lg.idle, &lg.lock, &until) == ETIMEDOUT)
            return false;
    }
    return lg.head == lg.tail && !lg.busy;
}

/* fork() while the logger thread runs: the child has no such thread. Queued lines are
 * written first (briefly) so that neither process loses or repeats them, and the child
 * starts its own thread with its first line. */
static void atfork_prepare(void)
{
    pthread_mutex_lock(&lg.lock);
    if (lg.running)
        (void)wait_drained(FORK_WAIT_MS);
}

static void atfork_parent(void)
{
    pthread_mutex_unlock(&lg.lock);
}

static void atfork_child(void)
{
    pthread_mutex_init(&lg.lock, NULL);
    pthread_cond_init(&lg.wake, NULL);
    pthread_cond_init(&lg.idle, NULL);
    lg.running = lg.busy = lg.stop = lg.exited = false;
}

/* lg.lock held. False when no thread could be started (lines are then written inline). */
static bool start_thread(void)
{
    if (lg.running)
        return true;
    if (lg.abandoned)
        return false; /* the old thread may still wake up and use the ring */
    if (!lg.atfork_done) {
        pthread_atfork(atfork_prepare, atfork_parent, atfork_child);
        lg.atfork_done = true;
    }
    lg.stop = lg.exited = lg.busy = lg.stalled = false;
    lg.written = lg.tail;
    /* Signals belong to the main thread's sigwait: the logger blocks them all. */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &old);
    int rc = pthread_create(&lg.thread, NULL, logger_main, NULL);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    lg.running = rc == 0;
    return lg.running;
}

/* Stops the thread (lg.lock held), writing what is queued for at most `ms`. A thread stuck
 * on a stalled destination is left behind (the process is about to exit); the log then
 * writes nothing more. Returns true when the thread was joined. */
static bool stop_thread(int ms)
{
    if (!lg.running)
        return true;
    lg.stop = true;
    pthread_cond_signal(&lg.wake);
    (void)wait_drained(ms);
    bool joined = false;
    if (lg.exited) {
        pthread_mutex_unlock(&lg.lock);
        pthread_join(lg.thread, NULL);
        pthread_mutex_lock(&lg.lock);
        joined = true;
    } else {
        lg.dests = 0;
        lg.abandoned = true;
    }
    lg.running = false;
    lg.stop = false;
    return joined;
}

static void flush_at_exit(void)
{
    pthread_mutex_lock(&lg.lock);
    if (lg.running)
        (void)wait_drained(SHUTDOWN_WAIT_MS);
    pthread_mutex_unlock(&lg.lock);
}

/* --- configuration --- */

static int open_log_file(const char *path)
{
    int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
    return fd >= 0 ? fd : -errno;
}

/* Makes lg.file_fd refer to fd's file (keeping its number, so that a write in progress on
 * the logger thread is never on a closed descriptor) and closes fd. Lines queued before
 * go to the old file first (briefly: a stalled file is not waited for). */
static void install_file(int fd)
{
    pthread_mutex_lock(&lg.lock);
    if (lg.running)
        (void)wait_drained(FORK_WAIT_MS);
    pthread_mutex_unlock(&lg.lock);
    if (lg.file_fd < 0) {
        pthread_mutex_lock(&lg.lock);
        lg.file_fd = fd;
        pthread_mutex_unlock(&lg.lock);
        return;
    }
    if (dup3(fd, lg.file_fd, O_CLOEXEC) >= 0)
        close(fd);
    else
        close(fd); /* keeps the old file: better than none */
}

int cx_log_configure(const cx_log_settings_t *s)
{
    static bool exit_hook;
    int nf = -1;
    if ((s->dests & CX_LOGDEST_FILE) && s->file_path) {
        nf = open_log_file(s->file_path);
        if (nf < 0)
            return nf;
    }
    /* Only the main thread configures, so lg.file_fd changes under nobody's feet here. */
    if (nf >= 0) {
        install_file(nf);
    } else if (lg.file_fd >= 0) {
        /* No log file any more: the number stays open on /dev/null until shutdown. */
        int null = open("/dev/null", O_WRONLY | O_CLOEXEC);
        if (null >= 0)
            install_file(null);
    }
    pthread_mutex_lock(&lg.lock);
    cx_free(lg.file_path);
    lg.file_path = s->file_path ? cx_strdup(s->file_path) : NULL;
    cx_free(lg.ts_format);
    lg.ts_format = s->timestamp_format ? cx_strdup(s->timestamp_format) : NULL;
    lg.dests = s->dests;
    lg.timestamp = s->timestamp;
    if ((s->dests & CX_LOGDEST_SYSLOG) && !lg.syslog_open) {
        openlog("culex", LOG_PID | LOG_NDELAY,
                s->syslog_facility ? s->syslog_facility : LOG_DAEMON);
        lg.syslog_open = true;
    }
    cx_log_types_enabled = s->types;
    /* The thread starts with the first line, so that none exists yet when main() forks to
     * become a daemon right after configuring. */
    lg.want_thread = (s->dests & THREAD_DESTS) && s->types;
    pthread_mutex_unlock(&lg.lock);
    if (!exit_hook) {
        atexit(flush_at_exit);
        exit_hook = true;
    }
    return 0;
}

void cx_log_set_topic_sink(cx_log_topic_cb cb, void *ud)
{
    pthread_mutex_lock(&lg.lock);
    lg.topic_cb = cb;
    lg.topic_ud = ud;
    pthread_mutex_unlock(&lg.lock);
}

void cx_log_reopen(void)
{
    if (lg.file_fd < 0 || !lg.file_path)
        return;
    int nf = open_log_file(lg.file_path);
    if (nf >= 0)
        install_file(nf);
}

void cx_log_shutdown(void)
{
    pthread_mutex_lock(&lg.lock);
    bool joined = stop_thread(SHUTDOWN_WAIT_MS);
    lg.want_thread = false;
    /* A thread left writing keeps its descriptor and syslog connection. */
    if (joined && lg.file_fd >= 0) {
        close(lg.file_fd);
        lg.file_fd = -1;
    }
    cx_free_null(lg.file_path);
    cx_free_null(lg.ts_format);
    if (joined && lg.syslog_open) {
        closelog();
        lg.syslog_open = false;
    }
    lg.topic_cb = NULL;
    pthread_mutex_unlock(&lg.lock);
}

/* --- the caller's side --- */

static int syslog_priority(unsigned type)
{
    if (type & CX_LOG_ERR)
        return LOG_ERR;
    if (type & CX_LOG_WARNING)
        return LOG_WARNING;
    if (type & CX_LOG_NOTICE)
        return LOG_NOTICE;
    if (type & CX_LOG_DEBUG)
        return LOG_DEBUG;
    return LOG_INFO;
}

void cx_log_vwrite(unsigned type, const char *fmt, va_list ap)
{
    char line[LINE_MAX_LEN];
    char stamp[STAMP_MAX_LEN];
    int n = vsnprintf(line, sizeof line, fmt, ap);
    if (n < 0)
        return;
    size_t len = (size_t)n < sizeof line ? (size_t)n : sizeof line - 1;

    pthread_mutex_lock(&lg.lock);
    unsigned dests = lg.dests;
    if ((dests & THREAD_DESTS) && lg.want_thread && !lg.running)
        start_thread();
    if ((dests & THREAD_DESTS) && !lg.abandoned) {
        size_t slen = format_stamp(stamp, sizeof stamp);
        if (lg.running) {
            if (enqueue(syslog_priority(type), stamp, slen, line, len)) {
                pthread_cond_signal(&lg.wake);
                if (!lg.stalled)
                    wait_written(lg.head, WRITE_WAIT_MS);
            }
        } else {
            /* No logger thread (start-up, shutdown): written here, as nothing else runs. */
            char out[sizeof stamp + sizeof line + 1];
            memcpy(out, stamp, slen);
            memcpy(out + slen, line, len);
            out[slen + len] = '\n';
            write_fds(dests, lg.file_fd, out, slen + len + 1);
            if (dests & CX_LOGDEST_SYSLOG)
                syslog(syslog_priority(type), "%s", line);
        }
    }
    cx_log_topic_cb cb = (dests & CX_LOGDEST_TOPIC) ? lg.topic_cb : NULL;
    void *ud = lg.topic_ud;
    pthread_mutex_unlock(&lg.lock);
    /* Outside the lock: the sink publishes a message, which may itself log. */
    if (cb)
        cb(ud, type, line, len);
}

void cx_log_write(unsigned type, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    cx_log_vwrite(type, fmt, ap);
    va_end(ap);
}
