/* test_log.c: the logger thread of core/util/log.c: no line lost or reordered while the
 * destination drains, a line written before cx_log returns while the destination keeps up,
 * a stalled destination never blocks the caller (lines are dropped, counted and reported),
 * a bounded shutdown, log file reopen, and fork. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cx_test.h"
#include "util/log.h"

#ifndef F_SETPIPE_SZ
#define F_SETPIPE_SZ 1031
#endif

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* stderr becomes the write end of a pipe (of `size` bytes when > 0); returns the read end
 * and keeps the real stderr in *saved so that failures can still be printed. */
static int stderr_to_pipe(int size, int *saved)
{
    int p[2];
    CHECK(pipe(p) == 0);
    if (size > 0)
        (void)fcntl(p[1], F_SETPIPE_SZ, size);
    *saved = dup(STDERR_FILENO);
    CHECK(*saved >= 0);
    CHECK(dup2(p[1], STDERR_FILENO) == STDERR_FILENO);
    close(p[1]);
    return p[0];
}

static void restore_stderr(int saved)
{
    dup2(saved, STDERR_FILENO);
    close(saved);
}

static void configure(unsigned dests, const char *file)
{
    cx_log_settings_t s = {.types = CX_LOG_ALL, .dests = dests, .file_path = file,
                           .timestamp = false};
    CHECK_INT_EQ(cx_log_configure(&s), 0);
}

/* Reads from fd into a growing buffer until `needle` appears or `secs` pass. */
static char *read_until(int fd, const char *needle, double secs, size_t *len)
{
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap + 1);
    double end = now_s() + secs;
    buf[0] = 0;
    while (now_s() < end && !(needle && strstr(buf, needle))) {
        struct pollfd pfd = {.fd = fd, .events = POLLIN};
        if (poll(&pfd, 1, 50) <= 0)
            continue;
        if (n + 4096 > cap) {
            cap *= 2;
            buf = realloc(buf, cap + 1);
        }
        ssize_t r = read(fd, buf + n, 4096);
        if (r <= 0)
            break;
        n += (size_t)r;
        buf[n] = 0;
    }
    *len = n;
    return buf;
}

typedef struct reader {
    int fd;
    char *buf;
    size_t len;
} reader_t;

static void *reader_main(void *arg)
{
    reader_t *r = arg;
    r->buf = read_until(r->fd, NULL, 10.0, &r->len);
    return NULL;
}

static void test_lines_in_order_while_draining(void)
{
    int saved;
    int rfd = stderr_to_pipe(0, &saved);
    reader_t r = {.fd = rfd};
    pthread_t t;
    pthread_create(&t, NULL, reader_main, &r);
    configure(CX_LOGDEST_STDERR, NULL);
    for (int i = 0; i < 5000; i++)
        cx_log(CX_LOG_INFO, "line %d", i);
    cx_log_shutdown();
    restore_stderr(saved); /* the reader sees EOF once no write end is left */
    pthread_join(t, NULL);
    /* Every line, in order, nothing else. */
    const char *p = r.buf;
    for (int i = 0; i < 5000; i++) {
        char want[32];
        int n = snprintf(want, sizeof want, "line %d\n", i);
        if (strncmp(p, want, (size_t)n) != 0)
            CX_FAIL_("line %d: got \"%.20s\"", i, p);
        p += n;
    }
    CHECK_INT_EQ(*p, 0);
    CHECK_INT_EQ(cx_log_dropped(), 0);
    free(r.buf);
    close(rfd);
}

static void test_stalled_stderr_never_blocks(void)
{
    int saved;
    int rfd = stderr_to_pipe(4096, &saved);
    configure(CX_LOGDEST_STDERR, NULL);
    char pad[201];
    memset(pad, 'x', 200);
    pad[200] = 0;
    double t0 = now_s();
    for (int i = 0; i < 20000; i++)
        cx_log(CX_LOG_INFO, "line %d %s", i, pad);
    double took = now_s() - t0;
    uint64_t dropped = cx_log_dropped();
    /* Drain: the first batch of queued lines comes out, then the report, then the rest. */
    size_t len;
    char *out = read_until(rfd, "log lines dropped", 5.0, &len);
    reader_t r = {.fd = rfd};
    pthread_t t;
    pthread_create(&t, NULL, reader_main, &r);
    cx_log_shutdown();
    restore_stderr(saved);
    pthread_join(t, NULL);
    printf("20000 lines of 200+ bytes in %.3f s into a stalled 4 KiB pipe, %llu dropped\n", took,
           (unsigned long long)dropped);
    if (took > 2.0)
        CX_FAIL_("logging blocked: %.3f s for 20000 lines", took);
    CHECK(dropped > 10000);
    CHECK_INT_EQ(cx_log_dropped(), dropped);
    /* The reports (one per stretch of drops) add up to the count. */
    unsigned long long reported = 0;
    char *all = malloc(len + r.len + 1);
    memcpy(all, out, len);
    memcpy(all + len, r.buf, r.len + 1);
    for (const char *p = all; (p = strstr(p, " log lines dropped")) != NULL; p++) {
        const char *q = p;
        while (q > all && q[-1] >= '0' && q[-1] <= '9')
            q--;
        reported += strtoull(q, NULL, 10);
    }
    CHECK_INT_EQ(reported, dropped);
    free(all);
    free(r.buf);
    CHECK(strstr(out, "line 0 ") != NULL);
    free(out);
    close(rfd);
}

static void test_shutdown_bounded_when_stalled(void)
{
    /* stdout this time, so that the logger thread left blocked on it at exit cannot write
     * into the runner's stderr; the pipe is never read. */
    int p[2];
    CHECK(pipe(p) == 0);
    (void)fcntl(p[1], F_SETPIPE_SZ, 4096);
    fflush(stdout);
    CHECK(dup2(p[1], STDOUT_FILENO) == STDOUT_FILENO);
    configure(CX_LOGDEST_STDOUT, NULL);
    for (int i = 0; i < 2000; i++)
        cx_log(CX_LOG_INFO, "line %d with some words to fill the pipe quickly", i);
    double t0 = now_s();
    cx_log_shutdown();
    double took = now_s() - t0;
    /* The log writes nothing more once its thread was left behind. */
    cx_log(CX_LOG_INFO, "after shutdown");
    fprintf(stderr, "shutdown with a stalled destination took %.3f s\n", took);
    CHECK(took < 3.0);
}

static char *slurp(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return strdup("");
    static char buf[1 << 16];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    buf[n] = 0;
    fclose(f);
    return strdup(buf);
}

static void test_file_reopen(void)
{
    char dir[] = "/tmp/cx-test-log-XXXXXX";
    CHECK(mkdtemp(dir) != NULL);
    char path[128], moved[128];
    snprintf(path, sizeof path, "%s/culex.log", dir);
    snprintf(moved, sizeof moved, "%s/culex.log.1", dir);
    configure(CX_LOGDEST_FILE, path);
    cx_log(CX_LOG_NOTICE, "before rotation");
    /* logrotate: rename, then SIGRTMIN makes the broker reopen. */
    CHECK(rename(path, moved) == 0);
    cx_log_reopen();
    cx_log(CX_LOG_NOTICE, "after rotation");
    cx_log_shutdown();
    char *a = slurp(moved), *b = slurp(path);
    CHECK_STR_EQ(a, "before rotation\n");
    CHECK_STR_EQ(b, "after rotation\n");
    free(a);
    free(b);
    unlink(moved);
    unlink(path);
    rmdir(dir);
}

static void test_written_before_return(void)
{
    /* While the destination keeps up, a line is in the file when cx_log returns (what a
     * caller does next comes after it in the log). */
    char dir[] = "/tmp/cx-test-log-XXXXXX";
    CHECK(mkdtemp(dir) != NULL);
    char path[128];
    snprintf(path, sizeof path, "%s/culex.log", dir);
    configure(CX_LOGDEST_FILE, path);
    for (int i = 0; i < 200; i++) {
        cx_log(CX_LOG_NOTICE, "line %d", i);
        char want[32];
        snprintf(want, sizeof want, "line %d\n", i);
        char *a = slurp(path);
        size_t n = strlen(a), w = strlen(want);
        if (n < w || strcmp(a + n - w, want) != 0)
            CX_FAIL_("line %d not written when cx_log returned", i);
        free(a);
    }
    cx_log_shutdown();
    unlink(path);
    rmdir(dir);
}

static void test_fork_child_logs(void)
{
    char dir[] = "/tmp/cx-test-log-XXXXXX";
    CHECK(mkdtemp(dir) != NULL);
    char path[128];
    snprintf(path, sizeof path, "%s/culex.log", dir);
    configure(CX_LOGDEST_FILE, path);
    cx_log(CX_LOG_NOTICE, "parent before fork");
    pid_t pid = fork();
    if (pid == 0) {
        /* As after daemonise(): the child starts its own logger thread. */
        cx_log(CX_LOG_NOTICE, "child");
        exit(0); /* the exit hook writes what is queued */
    }
    int st;
    waitpid(pid, &st, 0);
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    cx_log(CX_LOG_NOTICE, "parent after fork");
    cx_log_shutdown();
    char *a = slurp(path);
    CHECK_STR_EQ(a, "parent before fork\nchild\nparent after fork\n");
    free(a);
    unlink(path);
    rmdir(dir);
}

static void topic_sink(void *ud, unsigned type, const char *line, size_t len)
{
    (void)type;
    int *n = ud;
    if (len == 5 && memcmp(line, "hello", 5) == 0)
        (*n)++;
}

static void test_topic_sink_inline(void)
{
    int seen = 0;
    cx_log_set_topic_sink(topic_sink, &seen);
    configure(CX_LOGDEST_TOPIC, NULL);
    cx_log(CX_LOG_NOTICE, "hello");
    CHECK_INT_EQ(seen, 1); /* called on the caller's thread, before cx_log returns */
    cx_log_shutdown();
}

CX_TEST_MAIN(
    CX_TEST(lines_in_order_while_draining),
    CX_TEST(stalled_stderr_never_blocks),
    CX_TEST(shutdown_bounded_when_stalled),
    CX_TEST(file_reopen),
    CX_TEST(written_before_return),
    CX_TEST(fork_child_logs),
    CX_TEST(topic_sink_inline),
)
