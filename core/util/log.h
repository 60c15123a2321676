/* log.h: logging with mosquitto's log types and destinations.
 *
 * Types are bits so that `log_type` lines in mosquitto.conf map one to one. Destinations
 * are configured once at start and again on SIGHUP (from the main thread only). Any thread
 * may log: the line is formatted by the caller and queued for a logger thread that writes
 * it, so logging never waits for a destination; when the queue is full because a
 * destination stopped draining, lines are dropped and counted (cx_log_dropped) and the
 * count is logged once writing works again. The check for an enabled type happens in the
 * macro, before the arguments are evaluated. */
#ifndef CX_LOG_H
#define CX_LOG_H

#include <stdarg.h>
#include <stddef.h>
#include <stdbool.h>
#include <stdint.h>

enum {
    CX_LOG_INFO = 0x01,
    CX_LOG_NOTICE = 0x02,
    CX_LOG_WARNING = 0x04,
    CX_LOG_ERR = 0x08,
    CX_LOG_DEBUG = 0x10,
    CX_LOG_SUBSCRIBE = 0x20,
    CX_LOG_UNSUBSCRIBE = 0x40,
    CX_LOG_WEBSOCKETS = 0x80,
    CX_LOG_ALL = 0xff,
};

enum {
    CX_LOGDEST_STDOUT = 0x01,
    CX_LOGDEST_STDERR = 0x02,
    CX_LOGDEST_SYSLOG = 0x04,
    CX_LOGDEST_FILE = 0x08,
    CX_LOGDEST_TOPIC = 0x10,
};

/* A sink for `log_dest topic`: called with the type and the formatted line (no
 * timestamp), from any thread. */
typedef void (*cx_log_topic_cb)(void *ud, unsigned type, const char *line, size_t len);

typedef struct cx_log_settings {
    unsigned types;         /* CX_LOG_* mask */
    unsigned dests;         /* CX_LOGDEST_* mask */
    const char *file_path;  /* for CX_LOGDEST_FILE */
    bool timestamp;         /* prefix lines with a time stamp (default on) */
    const char *timestamp_format; /* strftime format; NULL = seconds since the epoch */
    int syslog_facility;    /* LOG_DAEMON by default */
} cx_log_settings_t;

extern unsigned cx_log_types_enabled; /* read by the macro; written only by cx_log_configure */

/* Applies new settings (opening the log file) and starts the logger thread if a destination
 * needs it. Returns 0 or -errno if the file cannot be opened; the previous settings then
 * stay in force. Main thread only. */
int cx_log_configure(const cx_log_settings_t *s);
void cx_log_set_topic_sink(cx_log_topic_cb cb, void *ud);
/* Reopens the log file (logrotate, SIGRTMIN). Main thread only. */
void cx_log_reopen(void);
/* Writes what is queued (for at most 2 s: a stalled destination does not hold up the exit),
 * stops the logger thread and closes the log file. Later lines are written by the caller. */
void cx_log_shutdown(void);
/* Lines dropped since start because a destination was not draining. Any thread. */
uint64_t cx_log_dropped(void);

void cx_log_write(unsigned type, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void cx_log_vwrite(unsigned type, const char *fmt, va_list ap);

#define cx_log_enabled(type) ((cx_log_types_enabled & (type)) != 0)
#define cx_log(type, ...)                                                               \
    do {                                                                                \
        if (cx_log_enabled(type))                                                       \
            cx_log_write((type), __VA_ARGS__);                                          \
    } while (0)

#endif
