/* loop.c: epoll event loop, timer heap and the cross-thread inbox (a mutex-protected list
 * plus an eventfd wake-up; the lock is held only to splice pointers). */
#include "loop.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "util/alloc.h"
#include "util/err.h"
#include "util/time.h"

#define MAX_EVENTS 256

struct cx_loop {
    int epfd;
    int wakefd;
    cx_io_t wake_io;
    atomic_bool stop;
    uint64_t now;
    cx_timer_t **heap;
    size_t heap_len, heap_cap;
    cx_hook_cb before_sleep;
    cx_post_cb on_post;
    void *ud;
    pthread_mutex_t inbox_lock;
    cx_post_t *inbox_head, *inbox_tail;
    bool inbox_signalled;
};

static void wake_cb(cx_loop_t *loop, cx_io_t *io, unsigned events);

cx_loop_t *cx_loop_new(cx_post_cb on_post, void *ud)
{
    cx_loop_t *l = cx_calloc(1, sizeof *l);
    if (!l) {
        errno = ENOMEM;
        return NULL;
    }
    l->epfd = epoll_create1(EPOLL_CLOEXEC);
    l->wakefd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (l->epfd < 0 || l->wakefd < 0) {
        int e = errno;
        cx_loop_free(l);
        errno = e;
        return NULL;
    }
    pthread_mutex_init(&l->inbox_lock, NULL);
    l->on_post = on_post;
    l->ud = ud;
    l->now = cx_time_mono_ms();
    cx_loop_io_init(&l->wake_io, l->wakefd, wake_cb);
    if (cx_loop_io_set(l, &l->wake_io, CX_IO_READ) != CX_OK) {
        int e = errno;
        cx_loop_free(l);
        errno = e;
        return NULL;
    }
    return l;
}

void cx_loop_free(cx_loop_t *l)
{
    if (!l)
        return;
    if (l->epfd >= 0)
        close(l->epfd);
    if (l->wakefd >= 0)
        close(l->wakefd);
    cx_free(l->heap);
    pthread_mutex_destroy(&l->inbox_lock);
    cx_free(l);
}

void *cx_loop_data(const cx_loop_t *l) { return l->ud; }
uint64_t cx_loop_now(const cx_loop_t *l) { return l->now; }

void cx_loop_io_init(cx_io_t *io, int fd, cx_io_cb cb)
{
    io->fd = fd;
    io->events = 0;
    io->exclusive = false;
    io->cb = cb;
}

int cx_loop_io_set(cx_loop_t *l, cx_io_t *io, unsigned events)
{
    if (events == io->events)
        return CX_OK;
    struct epoll_event ev = {0};
    ev.data.ptr = io;
    if (events & CX_IO_READ)
        ev.events |= io->exclusive ? EPOLLIN : EPOLLIN | EPOLLRDHUP; /* EXCLUSIVE forbids RDHUP */
    if (events & CX_IO_WRITE)
        ev.events |= EPOLLOUT;
    if (io->exclusive)
        ev.events |= EPOLLEXCLUSIVE;
    int op = io->events == 0 ? EPOLL_CTL_ADD : events == 0 ? EPOLL_CTL_DEL : EPOLL_CTL_MOD;
    if (epoll_ctl(l->epfd, op, io->fd, &ev) < 0)
        return -errno;
    io->events = events;
    return CX_OK;
}

/* --- timers: a binary min-heap ordered by due time --- */

static void heap_swap(cx_loop_t *l, size_t a, size_t b)
{
    cx_timer_t *t = l->heap[a];
    l->heap[a] = l->heap[b];
    l->heap[b] = t;
    l->heap[a]->heap_idx = a;
    l->heap[b]->heap_idx = b;
}

static void heap_up(cx_loop_t *l, size_t i)
{
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (l->heap[p]->due_ms <= l->heap[i]->due_ms)
            break;
        heap_swap(l, p, i);
        i = p;
    }
}

static void heap_down(cx_loop_t *l, size_t i)
{
    for (;;) {
        size_t c = 2 * i + 1, m = i;
        if (c < l->heap_len && l->heap[c]->due_ms < l->heap[m]->due_ms)
            m = c;
        if (c + 1 < l->heap_len && l->heap[c + 1]->due_ms < l->heap[m]->due_ms)
            m = c + 1;
        if (m == i)
            return;
        heap_swap(l, i, m);
        i = m;
    }
}

void cx_timer_init(cx_timer_t *t, cx_timer_cb cb)
{
    t->due_ms = 0;
    t->heap_idx = (size_t)-1;
    t->cb = cb;
}

void cx_timer_stop(cx_loop_t *l, cx_timer_t *t)
{
    size_t i = t->heap_idx;
    if (i == (size_t)-1)
        return;
    t->heap_idx = (size_t)-1;
    l->heap_len--;
    if (i == l->heap_len)
        return;
    l->heap[i] = l->heap[l->heap_len];
    l->heap[i]->heap_idx = i;
    heap_up(l, i);
    heap_down(l, l->heap[i]->heap_idx);
}

int cx_timer_start(cx_loop_t *l, cx_timer_t *t, uint64_t ms)
{
    cx_timer_stop(l, t);
    if (l->heap_len == l->heap_cap) {
        size_t cap = l->heap_cap ? l->heap_cap * 2 : 64;
        cx_timer_t **h = cx_realloc(l->heap, cap * sizeof *h);
        if (!h)
            return CX_ENOMEM;
        l->heap = h;
        l->heap_cap = cap;
    }
    t->due_ms = cx_time_mono_ms() + ms;
    t->heap_idx = l->heap_len;
    l->heap[l->heap_len++] = t;
    heap_up(l, t->heap_idx);
    return CX_OK;
}

static void run_timers(cx_loop_t *l)
{
    while (l->heap_len && l->heap[0]->due_ms <= l->now) {
        cx_timer_t *t = l->heap[0];
        cx_timer_stop(l, t);
        t->cb(l, t);
    }
}

/* --- inbox --- */

void cx_loop_post(cx_loop_t *l, cx_post_t *p)
{
    p->next = NULL;
    pthread_mutex_lock(&l->inbox_lock);
    if (l->inbox_tail)
        l->inbox_tail->next = p;
    else
        l->inbox_head = p;
    l->inbox_tail = p;
    bool signal = !l->inbox_signalled;
    l->inbox_signalled = true;
    pthread_mutex_unlock(&l->inbox_lock);
    if (signal) {
        uint64_t one = 1;
        ssize_t n = write(l->wakefd, &one, sizeof one);
        (void)n; /* EAGAIN means the counter is already non-zero: the loop wakes anyway */
    }
}

void cx_loop_inbox_walk(cx_loop_t *l, void (*cb)(void *ud, cx_post_t *p), void *ud)
{
    pthread_mutex_lock(&l->inbox_lock);
    for (cx_post_t *p = l->inbox_head; p; p = p->next)
        cb(ud, p);
    pthread_mutex_unlock(&l->inbox_lock);
}

static void drain_inbox(cx_loop_t *l)
{
    pthread_mutex_lock(&l->inbox_lock);
    cx_post_t *p = l->inbox_head;
    l->inbox_head = l->inbox_tail = NULL;
    l->inbox_signalled = false;
    pthread_mutex_unlock(&l->inbox_lock);
    while (p) {
        cx_post_t *next = p->next;
        l->on_post(l, p, l->ud);
        p = next;
    }
}

void cx_loop_drain(cx_loop_t *l) { drain_inbox(l); }

static void wake_cb(cx_loop_t *l, cx_io_t *io, unsigned events)
{
    uint64_t v;
    ssize_t n = read(io->fd, &v, sizeof v);
    (void)n;
    drain_inbox(l);
}

void cx_loop_stop(cx_loop_t *l)
{
    atomic_store(&l->stop, true);
    uint64_t one = 1;
    ssize_t n = write(l->wakefd, &one, sizeof one);
    (void)n;
}

void cx_loop_set_before_sleep(cx_loop_t *l, cx_hook_cb cb) { l->before_sleep = cb; }

int cx_loop_run(cx_loop_t *l)
{
    struct epoll_event evs[MAX_EVENTS];
    while (!atomic_load_explicit(&l->stop, memory_order_relaxed)) {
        if (l->before_sleep)
            l->before_sleep(l, l->ud);
        int timeout = -1;
        if (l->heap_len) {
            uint64_t now = cx_time_mono_ms();
            uint64_t due = l->heap[0]->due_ms;
            timeout = due <= now ? 0 : (int)(due - now > 60000 ? 60000 : due - now);
        }
        int n = epoll_wait(l->epfd, evs, MAX_EVENTS, timeout);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        l->now = cx_time_mono_ms();
        for (int i = 0; i < n; i++) {
            cx_io_t *io = evs[i].data.ptr;
            unsigned e = 0;
            if (evs[i].events & (EPOLLIN | EPOLLERR | EPOLLHUP | EPOLLRDHUP))
                e |= CX_IO_READ;
            if (evs[i].events & EPOLLOUT)
                e |= CX_IO_WRITE;
            io->cb(l, io, e);
        }
        run_timers(l);
    }
    /* Handle what was posted before the stop so that no posted object leaks. */
    drain_inbox(l);
    return CX_OK;
}
