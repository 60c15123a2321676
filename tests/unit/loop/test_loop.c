/* test_loop.c: timers fire in order, stop works, posts cross threads, I/O readiness. */
#include "cx_test.h"
#include "loop/loop.h"
#include "util/alloc.h"

#include <pthread.h>
#include <unistd.h>

typedef struct rec {
    cx_timer_t t;
    int id;
    int *log;
    int *n;
} rec_t;

static void rec_cb(cx_loop_t *loop, cx_timer_t *t)
{
    rec_t *r = (rec_t *)t;
    r->log[(*r->n)++] = r->id;
    if (*r->n == 3)
        cx_loop_stop(loop);
}

static void no_post(cx_loop_t *l, cx_post_t *p, void *ud) { (void)l, (void)p, (void)ud; }

static void test_timers_fire_in_order_and_stop(void)
{
    cx_loop_t *l = cx_loop_new(no_post, NULL);
    CHECK(l != NULL);
    int log[8], n = 0;
    rec_t r[4];
    int delays[4] = {30, 10, 20, 5};
    for (int i = 0; i < 4; i++) {
        r[i] = (rec_t){.id = i, .log = log, .n = &n};
        cx_timer_init(&r[i].t, rec_cb);
        CHECK_INT_EQ(cx_timer_start(l, &r[i].t, (uint64_t)delays[i]), 0);
    }
    cx_timer_stop(l, &r[3].t);
    CHECK(!cx_timer_is_armed(&r[3].t));
    CHECK_INT_EQ(cx_loop_run(l), 0);
    CHECK_INT_EQ(n, 3);
    CHECK_INT_EQ(log[0], 1);
    CHECK_INT_EQ(log[1], 2);
    CHECK_INT_EQ(log[2], 0);
    cx_loop_free(l);
}

static void test_timer_heap_many(void)
{
    cx_loop_t *l = cx_loop_new(no_post, NULL);
    enum { N = 1000 };
    static cx_timer_t t[N];
    for (int i = 0; i < N; i++) {
        cx_timer_init(&t[i], NULL);
        CHECK_INT_EQ(cx_timer_start(l, &t[i], (uint64_t)((i * 7919) % 1000 + 1000)), 0);
    }
    for (int i = 0; i < N; i += 2)
        cx_timer_stop(l, &t[i]);
    for (int i = 0; i < N; i++)
        CHECK(cx_timer_is_armed(&t[i]) == (i % 2 == 1));
    for (int i = 1; i < N; i += 2)
        cx_timer_stop(l, &t[i]);
    cx_loop_free(l);
}

typedef struct counter {
    int got;
    int want;
} counter_t;

static void count_post(cx_loop_t *l, cx_post_t *p, void *ud)
{
    counter_t *c = ud;
    c->got += p->kind;
    cx_free(p);
    if (c->got >= c->want)
        cx_loop_stop(l);
}

static void *poster(void *arg)
{
    cx_loop_t *l = arg;
    for (int i = 0; i < 1000; i++) {
        cx_post_t *p = cx_malloc(sizeof *p);
        p->kind = 1;
        cx_loop_post(l, p);
    }
    return NULL;
}

static void test_posts_from_other_threads(void)
{
    counter_t c = {0, 4000};
    cx_loop_t *l = cx_loop_new(count_post, &c);
    pthread_t th[4];
    for (int i = 0; i < 4; i++)
        pthread_create(&th[i], NULL, poster, l);
    CHECK_INT_EQ(cx_loop_run(l), 0);
    for (int i = 0; i < 4; i++)
        pthread_join(th[i], NULL);
    cx_loop_drain(l);
    CHECK_INT_EQ(c.got, 4000);
    cx_loop_free(l);
}

static int io_seen;
static void io_cb(cx_loop_t *l, cx_io_t *io, unsigned ev)
{
    char b[8];
    if (ev & CX_IO_READ) {
        io_seen += (int)read(io->fd, b, sizeof b);
        cx_loop_stop(l);
    }
}

static void test_io_readiness(void)
{
    int fds[2];
    CHECK_INT_EQ(pipe(fds), 0);
    cx_loop_t *l = cx_loop_new(no_post, NULL);
    cx_io_t io;
    cx_loop_io_init(&io, fds[0], io_cb);
    CHECK_INT_EQ(cx_loop_io_set(l, &io, CX_IO_READ), 0);
    CHECK_INT_EQ(write(fds[1], "abc", 3), 3);
    CHECK_INT_EQ(cx_loop_run(l), 0);
    CHECK_INT_EQ(io_seen, 3);
    CHECK_INT_EQ(cx_loop_io_set(l, &io, 0), 0);
    cx_loop_free(l);
    close(fds[0]);
    close(fds[1]);
}

CX_TEST_MAIN(
    CX_TEST(timers_fire_in_order_and_stop),
    CX_TEST(timer_heap_many),
    CX_TEST(posts_from_other_threads),
    CX_TEST(io_readiness),
)
