/* log.c: formats a line once and hands it to every configured destination. */
#include "log.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include "alloc.h"

unsigned cx_log_types_enabled = CX_LOG_ERR | CX_LOG_WARNING | CX_LOG_NOTICE | CX_LOG_INFO;

static struct {
    pthread_mutex_t lock;
    unsigned dests;
    FILE *file;
    char *file_path;
    bool timestamp;
    char *ts_format;
    bool syslog_open;
    cx_log_topic_cb topic_cb;
    void *topic_ud;
} lg = {
    .lock = PTHREAD_MUTEX_INITIALIZER,
    .dests = CX_LOGDEST_STDERR,
    .timestamp = true,
};

int cx_log_configure(const cx_log_settings_t *s)
{
    FILE *nf = NULL;
    if ((s->dests & CX_LOGDEST_FILE) && s->file_path) {
        nf = fopen(s->file_path, "a");
        if (!nf)
            return -errno;
        setvbuf(nf, NULL, _IOLBF, 0);
    }
    pthread_mutex_lock(&lg.lock);
    if (lg.file)
        fclose(lg.file);
    lg.file = nf;
    cx_free(lg.file_path);
    lg.file_path = s->file_path ? cx_strdup(s->file_path) : NULL;
    cx_free(lg.ts_format);
    lg.ts_format = s->timestamp_format ? cx_strdup(s->timestamp_format) : NULL;
    lg.dests = s->dests;
    lg.timestamp = s->timestamp;
    if ((s->dests & CX_LOGDEST_SYSLOG) && !lg.syslog_open) {
        openlog("culex", LOG_PID | LOG_NDELAY, s->syslog_facility ? s->syslog_facility : LOG_DAEMON);
        lg.syslog_open = true;
    }
    cx_log_types_enabled = s->types;
    pthread_mutex_unlock(&lg.lock);
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
    pthread_mutex_lock(&lg.lock);
    if (lg.file && lg.file_path) {
        FILE *nf = freopen(lg.file_path, "a", lg.file);
        lg.file = nf;
        if (nf)
            setvbuf(nf, NULL, _IOLBF, 0);
    }
    pthread_mutex_unlock(&lg.lock);
}

void cx_log_shutdown(void)
{
    pthread_mutex_lock(&lg.lock);
    if (lg.file)
        fclose(lg.file);
    lg.file = NULL;
    cx_free_null(lg.file_path);
    cx_free_null(lg.ts_format);
    if (lg.syslog_open)
        closelog();
    lg.syslog_open = false;
    lg.topic_cb = NULL;
    pthread_mutex_unlock(&lg.lock);
}

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
    char line[1024];
    char stamp[128];
    int n = vsnprintf(line, sizeof line, fmt, ap);
    if (n < 0)
        return;
    size_t len = (size_t)n < sizeof line ? (size_t)n : sizeof line - 1;

    pthread_mutex_lock(&lg.lock);
    size_t slen = 0;
    if (lg.timestamp) {
        time_t now = time(NULL);
        if (lg.ts_format) {
            struct tm tm;
            localtime_r(&now, &tm);
            slen = strftime(stamp, sizeof stamp - 2, lg.ts_format, &tm);
        } else {
            slen = (size_t)snprintf(stamp, sizeof stamp - 2, "%lld", (long long)now);
        }
        stamp[slen++] = ':';
        stamp[slen++] = ' ';
    }
    struct iovec_like {
        const char *p;
        size_t n;
    } parts[3] = {{stamp, slen}, {line, len}, {"\n", 1}};
    char out[sizeof stamp + sizeof line + 1];
    size_t olen = 0;
    for (int i = 0; i < 3; i++) {
        memcpy(out + olen, parts[i].p, parts[i].n);
        olen += parts[i].n;
    }
    if (lg.dests & CX_LOGDEST_STDOUT) {
        fwrite(out, 1, olen, stdout);
        fflush(stdout);
    }
    if (lg.dests & CX_LOGDEST_STDERR)
        fwrite(out, 1, olen, stderr);
    if ((lg.dests & CX_LOGDEST_FILE) && lg.file)
        fwrite(out, 1, olen, lg.file);
    if (lg.dests & CX_LOGDEST_SYSLOG)
        syslog(syslog_priority(type), "%s", line);
    cx_log_topic_cb cb = (lg.dests & CX_LOGDEST_TOPIC) ? lg.topic_cb : NULL;
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
