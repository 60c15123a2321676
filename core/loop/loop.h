/* loop.h: the per-worker event loop (epoll), its timers and its inbox.
 *
 * Knows nothing of MQTT. Each worker thread owns one loop; only that thread calls these
 * functions, except cx_loop_post() and cx_loop_stop(), which any thread may call.
 *
 * I/O watchers and timers are embedded in the objects that own them (no allocation per
 * registration). Timers are a binary min-heap: O(log n) start/stop. Long-lived deadlines
 * such as keepalives are meant to be checked lazily (re-armed when they fire) rather than
 * moved on every packet. */
#ifndef CX_LOOP_H
#define CX_LOOP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/list.h"

typedef struct cx_loop cx_loop_t;

enum { CX_IO_READ = 1, CX_IO_WRITE = 2 };

typedef struct cx_io cx_io_t;
/* events: CX_IO_READ / CX_IO_WRITE; errors and hang-ups are reported as READ so that the
 * owner discovers them through read(). */
typedef void (*cx_io_cb)(cx_loop_t *loop, cx_io_t *io, unsigned events);

struct cx_io {
    int fd;
    uint16_t events; /* currently registered */
    bool exclusive;  /* EPOLLEXCLUSIVE: for listening sockets shared by several loops */
    cx_io_cb cb;
};

typedef struct cx_timer cx_timer_t;
typedef void (*cx_timer_cb)(cx_loop_t *loop, cx_timer_t *t);

struct cx_timer {
    uint64_t due_ms;  /* monotonic */
    size_t heap_idx;  /* SIZE_MAX when not armed */
    cx_timer_cb cb;
};

/* A message between loops (workers). The poster allocates it; the receiving loop hands it
 * to its post callback, which owns it from then on. Embed `link` in a larger struct. */
typedef struct cx_post {
    struct cx_post *next;
    int kind;
} cx_post_t;

typedef void (*cx_post_cb)(cx_loop_t *loop, cx_post_t *p, void *ud);
typedef void (*cx_hook_cb)(cx_loop_t *loop, void *ud);

/* Constructor; NULL with errno set on failure. */
cx_loop_t *cx_loop_new(cx_post_cb on_post, void *ud);
void cx_loop_free(cx_loop_t *loop);
void *cx_loop_data(const cx_loop_t *loop);

/* Registers, changes or removes interest in fd. events == 0 removes it. */
int cx_loop_io_set(cx_loop_t *loop, cx_io_t *io, unsigned events);
void cx_loop_io_init(cx_io_t *io, int fd, cx_io_cb cb);

void cx_timer_init(cx_timer_t *t, cx_timer_cb cb);
/* (Re)arms t to fire once after `ms` milliseconds. Returns CX_OK or CX_ENOMEM. */
int cx_timer_start(cx_loop_t *loop, cx_timer_t *t, uint64_t ms);
void cx_timer_stop(cx_loop_t *loop, cx_timer_t *t);
static inline bool cx_timer_is_armed(const cx_timer_t *t) { return t->heap_idx != (size_t)-1; }

/* Called once per loop turn, after events are handled and before the loop sleeps: this is
 * where output is flushed (Redis's beforeSleep). */
void cx_loop_set_before_sleep(cx_loop_t *loop, cx_hook_cb cb);

/* Any thread: appends p to the loop's inbox and wakes it. */
void cx_loop_post(cx_loop_t *loop, cx_post_t *p);
/* Any thread: makes cx_loop_run return after the current turn. */
void cx_loop_stop(cx_loop_t *loop);
/* Hands every posted message to the post callback now. For shutdown, after the loop's
 * thread has ended, so that nothing posted late is leaked. */
void cx_loop_drain(cx_loop_t *loop);
/* Calls cb for every post waiting in the inbox, oldest first, under the inbox lock (cb must
 * not post to this loop). For a thread that has stopped the loop's owner in its tracks and
 * must account for work in transit (a persistence snapshot). */
void cx_loop_inbox_walk(cx_loop_t *loop, void (*cb)(void *ud, cx_post_t *p), void *ud);
/* Runs until cx_loop_stop. Returns CX_OK or a negative error from epoll. */
int cx_loop_run(cx_loop_t *loop);

/* Monotonic time cached at the start of the current turn (cheap, good to 1 ms). */
uint64_t cx_loop_now(const cx_loop_t *loop);

#endif
