/* test_retain.c: the retained-message store, checked against a naive reference matcher. */
#include "broker/retain.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <time.h>

#include "cx_test.h"
#include "util/alloc.h"
#include "util/err.h"

#define S(lit) cx_str_from_cstr(lit)

/* A stand-in for the refcounted message: refs counts the store's references only. */
typedef struct val {
    atomic_int refs;
    int id;
} val_t;

static void vref(void *v)
{
    atomic_fetch_add(&((val_t *)v)->refs, 1);
}

static void vunref(void *v)
{
    int old = atomic_fetch_sub(&((val_t *)v)->refs, 1);
    CHECK(old > 0);
}

static bool naive_match(const char *filter, const char *topic)
{
    if (topic[0] == '$' && (filter[0] == '+' || filter[0] == '#'))
        return false;
    const char *f = filter, *t = topic; /* t == NULL: every topic level consumed */
    for (;;) {
        const char *fe = strchr(f, '/');
        if (!fe)
            fe = f + strlen(f);
        if (fe - f == 1 && *f == '#')
            return true;
        if (!t)
            return false;
        const char *te = strchr(t, '/');
        if (!te)
            te = t + strlen(t);
        bool plus = fe - f == 1 && *f == '+';
        if (!plus && (fe - f != te - t || memcmp(f, t, (size_t)(fe - f)) != 0))
            return false;
        if (!*fe)
            return !*te;
        f = fe + 1;
        t = *te ? te + 1 : NULL;
    }
}

/* ---- collecting matches ---------------------------------------------------------------- */

typedef struct found {
    char **topic;
    val_t **val;
    size_t n, cap;
} found_t;

static void on_match(void *ud, cx_str_t topic, void *value)
{
    found_t *f = ud;
    if (f->n == f->cap) {
        f->cap = f->cap ? f->cap * 2 : 16;
        f->topic = realloc(f->topic, f->cap * sizeof *f->topic);
        f->val = realloc(f->val, f->cap * sizeof *f->val);
        CHECK(f->topic && f->val);
    }
    f->topic[f->n] = malloc(topic.len + 1);
    memcpy(f->topic[f->n], topic.p, topic.len);
    f->topic[f->n][topic.len] = '\0';
    f->val[f->n++] = value;
}

static void found_reset(found_t *f)
{
    for (size_t i = 0; i < f->n; i++)
        free(f->topic[i]);
    f->n = 0;
}

static void found_free(found_t *f)
{
    found_reset(f);
    free(f->topic);
    free(f->val);
}

static size_t match(cx_retain_t *s, const char *filter, found_t *f)
{
    found_reset(f);
    CHECK_INT_EQ(cx_retain_match(s, S(filter), on_match, f), CX_OK);
    return f->n;
}

/* ---- basics ---------------------------------------------------------------------------- */

static void test_set_get_clear(void)
{
    size_t base = cx_alloc_current();
    cx_retain_t *s = cx_retain_new(vref, vunref);
    size_t empty = cx_alloc_current();
    val_t v1 = {.id = 1}, v2 = {.id = 2};
    CHECK(cx_retain_get(s, S("a/b")) == NULL);
    CHECK_INT_EQ(cx_retain_set(s, S("a/b"), &v1), CX_OK);
    CHECK_INT_EQ(cx_retain_count(s), 1);
    CHECK_INT_EQ(v1.refs, 1);
    val_t *g = cx_retain_get(s, S("a/b"));
    CHECK(g == &v1);
    CHECK_INT_EQ(v1.refs, 2);
    vunref(g);
    CHECK(cx_retain_get(s, S("a")) == NULL);     /* inner node, no value */
    CHECK(cx_retain_get(s, S("a/b/c")) == NULL); /* below the leaf */
    /* replace */
    CHECK_INT_EQ(cx_retain_set(s, S("a/b"), &v2), CX_OK);
    CHECK_INT_EQ(v1.refs, 0);
    CHECK_INT_EQ(v2.refs, 1);
    CHECK_INT_EQ(cx_retain_count(s), 1);
    /* same value again keeps exactly one reference */
    CHECK_INT_EQ(cx_retain_set(s, S("a/b"), &v2), CX_OK);
    CHECK_INT_EQ(v2.refs, 1);
    /* a value on an inner node, then clear the leaf: the inner one survives */
    CHECK_INT_EQ(cx_retain_set(s, S("a"), &v1), CX_OK);
    CHECK_INT_EQ(cx_retain_count(s), 2);
    CHECK_INT_EQ(cx_retain_set(s, S("a/b"), NULL), CX_OK);
    CHECK_INT_EQ(v2.refs, 0);
    CHECK(cx_retain_get(s, S("a/b")) == NULL);
    g = cx_retain_get(s, S("a"));
    CHECK(g == &v1);
    vunref(g);
    CHECK_INT_EQ(cx_retain_set(s, S("nothing/here"), NULL), CX_OK);
    char *big = calloc(70000, 1);
    memset(big, 'x', 65536);
    CHECK_INT_EQ(cx_retain_set(s, S(big), &v2), CX_EINVAL);
    CHECK_INT_EQ(v2.refs, 0);
    free(big);
    CHECK_INT_EQ(cx_retain_set(s, S("a/b"), NULL), CX_OK);
    CHECK_INT_EQ(cx_retain_set(s, S("a"), NULL), CX_OK);
    CHECK_INT_EQ(cx_retain_count(s), 0);
    CHECK_INT_EQ(v1.refs, 0);
    CHECK_INT_EQ(cx_alloc_current(), empty); /* every node pruned */
    cx_retain_free(s);
    CHECK_INT_EQ(cx_alloc_current(), base);
}

static void test_free_unrefs(void)
{
    enum { N = 1000 };
    static val_t v[N];
    cx_retain_t *s = cx_retain_new(vref, vunref);
    char t[32];
    for (int i = 0; i < N; i++) {
        snprintf(t, sizeof t, "x/%d/%d", i % 10, i);
        CHECK_INT_EQ(cx_retain_set(s, S(t), &v[i]), CX_OK);
    }
    CHECK_INT_EQ(cx_retain_count(s), N);
    cx_retain_free(s);
    for (int i = 0; i < N; i++)
        CHECK_INT_EQ(v[i].refs, 0);
}

/* ---- wildcard rules -------------------------------------------------------------------- */

typedef struct row {
    const char *filter, *topic;
    int match;
} row_t;

static const row_t rules[] = {
    {"a", "a", 1},           {"a", "b", 0},            {"a", "a/b", 0},
    {"a/b", "a", 0},         {"a/b", "a/b", 1},        {"abc", "ab", 0},
    {"+", "a", 1},           {"+", "a/b", 0},          {"+", "/", 0},
    {"+/+", "/", 1},         {"+/+", "a/b", 1},        {"+/+", "a", 0},
    {"+/+", "a/b/c", 0},     {"a/+", "a/", 1},         {"a/+", "a", 0},
    {"a/+/c", "a/b/c", 1},   {"a/+/c", "a//c", 1},     {"a/+/c", "a/b/d", 0},
    {"#", "a", 1},           {"#", "a/b/c", 1},        {"#", "/", 1},
    {"a/#", "a", 1},         {"a/#", "a/b", 1},        {"a/#", "a/b/c", 1},
    {"a/#", "b", 0},         {"a/#", "ab", 0},         {"a/#", "a/", 1},
    {"a/b/#", "a", 0},       {"a/+/#", "a/b", 1},      {"a/+/#", "a", 0},
    {"a/+/#", "a/b/c/d", 1}, {"a/+/#", "a/", 1},       {"+/#", "a", 1},
    {"+/b/#", "a/b", 1},     {"a//b", "a//b", 1},      {"a//b", "a/b", 0},
    {"/a", "/a", 1},         {"/a", "a", 0},           {"+/a", "/a", 1},
    {"/+", "/", 1},          {"/#", "/", 1},           {"/#", "/a/b", 1},
    {"/#", "a", 0},          {"a/", "a/", 1},          {"a/", "a", 0},
    {"//", "//", 1},         {"+//+", "a//b", 1},      {"#", "$SYS/x", 0},
    {"#", "$", 0},           {"+/x", "$SYS/x", 0},     {"+/#", "$SYS/x", 0},
    {"+", "$SYS", 0},        {"$SYS/#", "$SYS/x", 1},  {"$SYS/#", "$SYS", 1},
    {"$SYS/+", "$SYS/x", 1}, {"a/$b", "a/$b", 1},      {"a/+", "a/$b", 1},
    {"a/#", "a/$b", 1},      {"$SYS/#", "$SYSX/a", 0},
};

static void test_rules_table(void)
{
    found_t f = {0};
    val_t v = {.id = 1};
    for (size_t i = 0; i < sizeof rules / sizeof rules[0]; i++) {
        const row_t *r = &rules[i];
        if (naive_match(r->filter, r->topic) != r->match)
            CX_FAIL_("oracle disagrees on %s ~ %s", r->filter, r->topic);
        cx_retain_t *s = cx_retain_new(vref, vunref);
        CHECK_INT_EQ(cx_retain_set(s, S(r->topic), &v), CX_OK);
        size_t n = match(s, r->filter, &f);
        if (n != (size_t)r->match)
            CX_FAIL_("filter \"%s\" topic \"%s\": %zu matches, want %d", r->filter, r->topic,
                     n, r->match);
        if (n)
            CHECK_STR_EQ(f.topic[0], r->topic);
        cx_retain_free(s);
    }
    CHECK_INT_EQ(v.refs, 0);
    found_free(&f);
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Checks one filter against every topic in `topics` (those with a value) with the oracle. */
static void check_filter(cx_retain_t *s, const char *filter, char (*topics)[32], size_t nt,
                         found_t *f)
{
    match(s, filter, f);
    qsort(f->topic, f->n, sizeof *f->topic, cmp_str);
    const char **want = malloc((nt + 1) * sizeof *want);
    size_t k = 0;
    for (size_t i = 0; i < nt; i++) {
        bool dup = false;
        for (size_t j = 0; j < i && !dup; j++)
            dup = strcmp(topics[i], topics[j]) == 0;
        if (topics[i][0] != '\x7f' && !dup && naive_match(filter, topics[i]))
            want[k++] = topics[i];
    }
    qsort(want, k, sizeof *want, cmp_str);
    if (k != f->n)
        CX_FAIL_("filter \"%s\": %zu matches, want %zu", filter, f->n, k);
    for (size_t i = 0; i < k; i++)
        if (strcmp(want[i], f->topic[i]) != 0)
            CX_FAIL_("filter \"%s\": got \"%s\", want \"%s\"", filter, f->topic[i], want[i]);
    free(want);
}

static void test_rules_one_store(void)
{
    enum { NR = sizeof rules / sizeof rules[0] };
    static char topics[NR][32];
    static val_t v[NR];
    cx_retain_t *s = cx_retain_new(vref, vunref);
    for (size_t i = 0; i < NR; i++) {
        snprintf(topics[i], sizeof topics[i], "%s", rules[i].topic);
        CHECK_INT_EQ(cx_retain_set(s, S(topics[i]), &v[i]), CX_OK);
    }
    found_t f = {0};
    for (size_t i = 0; i < NR; i++)
        check_filter(s, rules[i].filter, topics, NR, &f);
    found_free(&f);
    cx_retain_free(s);
}

static void random_string(char *buf, bool filter)
{
    static const char *const lv[] = {"a", "b", "", "$x", "ab", "+", "#"};
    size_t levels = 1 + (size_t)rand() % 4, len = 0;
    for (size_t i = 0; i < levels; i++) {
        size_t k;
        do
            k = (size_t)rand() % (filter ? 7 : 5);
        while ((k == 6 && i + 1 != levels) || (k == 3 && i != 0));
        if (i)
            buf[len++] = '/';
        memcpy(buf + len, lv[k], strlen(lv[k]));
        len += strlen(lv[k]);
    }
    buf[len] = '\0';
}

static void test_random_against_oracle(void)
{
    enum { NT = 300, NF = 1500 };
    static char topics[NT][32];
    static val_t v[NT];
    srand(4242);
    size_t base = cx_alloc_current();
    cx_retain_t *s = cx_retain_new(vref, vunref);
    size_t empty = cx_alloc_current();
    for (int i = 0; i < NT; i++) {
        random_string(topics[i], false);
        CHECK_INT_EQ(cx_retain_set(s, S(topics[i]), &v[i]), CX_OK);
    }
    found_t f = {0};
    for (int round = 0; round < 2; round++) {
        for (int j = 0; j < NF; j++) {
            char filter[32];
            random_string(filter, true);
            check_filter(s, filter, topics, NT, &f);
        }
        /* clear a third of the topics (duplicates clear each other's) */
        for (int i = 0; i < NT && round == 0; i += 3) {
            CHECK_INT_EQ(cx_retain_set(s, S(topics[i]), NULL), CX_OK);
            for (int j = 0; j < NT; j++)
                if (j != i && strcmp(topics[i], topics[j]) == 0)
                    topics[j][0] = '\x7f';
            topics[i][0] = '\x7f';
        }
    }
    found_free(&f);
    for (int i = 0; i < NT; i++)
        if (topics[i][0] != '\x7f')
            CHECK_INT_EQ(cx_retain_set(s, S(topics[i]), NULL), CX_OK);
    CHECK_INT_EQ(cx_retain_count(s), 0);
    CHECK_INT_EQ(cx_alloc_current(), empty);
    cx_retain_free(s);
    CHECK_INT_EQ(cx_alloc_current(), base);
    for (int i = 0; i < NT; i++)
        CHECK_INT_EQ(v[i].refs, 0);
}

static void test_dollar_and_walk(void)
{
    cx_retain_t *s = cx_retain_new(vref, vunref);
    static val_t v[6];
    const char *t[] = {"$SYS/broker/uptime", "$SYS", "sys/x", "a/$b", "$", "/x"};
    for (int i = 0; i < 6; i++)
        cx_retain_set(s, S(t[i]), &v[i]);
    found_t f = {0};
    CHECK_INT_EQ(match(s, "#", &f), 3);
    CHECK_INT_EQ(match(s, "+", &f), 0);
    CHECK_INT_EQ(match(s, "+/+", &f), 3);
    CHECK_INT_EQ(match(s, "$SYS/#", &f), 2);
    CHECK_INT_EQ(match(s, "$SYS/+/uptime", &f), 1);
    CHECK_STR_EQ(f.topic[0], "$SYS/broker/uptime");
    CHECK_INT_EQ(match(s, "$", &f), 1);
    CHECK_INT_EQ(match(s, "a/+", &f), 1);
    /* walk sees everything, '$' included */
    found_reset(&f);
    CHECK_INT_EQ(cx_retain_walk(s, on_match, &f), CX_OK);
    CHECK_INT_EQ(f.n, 6);
    qsort(f.topic, f.n, sizeof *f.topic, cmp_str);
    const char *want[] = {"$", "$SYS", "$SYS/broker/uptime", "/x", "a/$b", "sys/x"};
    for (int i = 0; i < 6; i++)
        CHECK_STR_EQ(f.topic[i], want[i]);
    found_free(&f);
    cx_retain_free(s);
}

/* Topics far longer than the on-stack path buffer. */
static void test_long_topics(void)
{
    enum { L = 5000 };
    char *a = malloc(2 * L), *b = malloc(2 * L);
    for (int i = 0; i < L; i++) {
        a[2 * i] = 'x';
        a[2 * i + 1] = '/';
    }
    a[2 * L - 1] = '\0';
    memcpy(b, a, 2 * L);
    b[2 * L - 2] = 'y';
    cx_retain_t *s = cx_retain_new(vref, vunref);
    static val_t va, vb;
    CHECK_INT_EQ(cx_retain_set(s, S(a), &va), CX_OK);
    CHECK_INT_EQ(cx_retain_set(s, S(b), &vb), CX_OK);
    found_t f = {0};
    CHECK_INT_EQ(match(s, "#", &f), 2);
    qsort(f.topic, f.n, sizeof *f.topic, cmp_str);
    CHECK_STR_EQ(f.topic[0], a);
    CHECK_STR_EQ(f.topic[1], b);
    CHECK_INT_EQ(match(s, a, &f), 1);
    CHECK(f.val[0] == &va);
    b[2 * L - 2] = '+';
    CHECK_INT_EQ(match(s, b, &f), 2);
    b[2 * L - 2] = 'y';
    CHECK_INT_EQ(cx_retain_set(s, S(a), NULL), CX_OK);
    CHECK_INT_EQ(match(s, "x/#", &f), 1);
    CHECK_STR_EQ(f.topic[0], b);
    found_free(&f);
    cx_retain_free(s); /* a deep chain left in place */
    CHECK_INT_EQ(vb.refs, 0);
    free(a);
    free(b);
}

/* The callback keeps the value past a replace by taking its own reference. */
static void keep_cb(void *ud, cx_str_t topic, void *value)
{
    vref(value);
    *(void **)ud = value;
}

static void test_callback_keeps_value(void)
{
    cx_retain_t *s = cx_retain_new(vref, vunref);
    val_t v1 = {.id = 1}, v2 = {.id = 2};
    cx_retain_set(s, S("k"), &v1);
    void *kept = NULL;
    CHECK_INT_EQ(cx_retain_match(s, S("k"), keep_cb, &kept), CX_OK);
    CHECK(kept == &v1);
    cx_retain_set(s, S("k"), &v2);
    CHECK_INT_EQ(v1.refs, 1); /* ours */
    vunref(kept);
    cx_retain_free(s);
    CHECK_INT_EQ(v1.refs, 0);
    CHECK_INT_EQ(v2.refs, 0);
}

/* ---- threads --------------------------------------------------------------------------- */

typedef struct race {
    cx_retain_t *s;
    atomic_bool stop;
    atomic_long matches;
} race_t;

typedef struct race_count {
    int stable, churn;
} race_count_t;

static void on_race(void *ud, cx_str_t topic, void *value)
{
    race_count_t *c = ud;
    val_t *v = value;
    CHECK(atomic_load(&v->refs) > 0); /* alive while we look at it */
    if (v->id < 2)
        c->stable++;
    else
        c->churn++;
}

static void *matcher(void *arg)
{
    race_t *r = arg;
    static const char *const filters[] = {"s/#", "s/+", "#", "s/a"};
    for (unsigned i = 0; !atomic_load(&r->stop); i++) {
        race_count_t c = {0};
        const char *f = filters[i % 4];
        CHECK_INT_EQ(cx_retain_match(r->s, S(f), on_race, &c), CX_OK);
        int want = i % 4 == 3 ? 1 : 2;
        if (c.stable != want)
            CX_FAIL_("torn match on %s: %d stable", f, c.stable);
        atomic_fetch_add(&r->matches, 1);
    }
    return NULL;
}

static void test_threads(void)
{
    enum { NV = 64 };
    static val_t v[NV];
    for (int i = 0; i < NV; i++)
        v[i].id = i;
    race_t r = {.s = cx_retain_new(vref, vunref)};
    cx_retain_set(r.s, S("s/a"), &v[0]);
    cx_retain_set(r.s, S("s/b"), &v[1]);
    pthread_t th[2];
    for (int i = 0; i < 2; i++)
        CHECK(pthread_create(&th[i], NULL, matcher, &r) == 0);
    char t[32];
    for (int round = 0; round < 400; round++) {
        for (int i = 2; i < NV; i++) {
            snprintf(t, sizeof t, i % 2 ? "s/k%d/x" : "t%d", i);
            CHECK_INT_EQ(cx_retain_set(r.s, S(t), &v[i]), CX_OK);
        }
        for (int i = 2; i < NV; i++) {
            snprintf(t, sizeof t, i % 2 ? "s/k%d/x" : "t%d", i);
            CHECK_INT_EQ(cx_retain_set(r.s, S(t), NULL), CX_OK);
        }
    }
    atomic_store(&r.stop, true);
    for (int i = 0; i < 2; i++)
        pthread_join(th[i], NULL);
    CHECK(atomic_load(&r.matches) > 0);
    CHECK_INT_EQ(cx_retain_count(r.s), 2);
    cx_retain_free(r.s);
    for (int i = 0; i < NV; i++)
        CHECK_INT_EQ(v[i].refs, 0);
}

/* ---- figures --------------------------------------------------------------------------- */

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void on_count(void *ud, cx_str_t topic, void *value)
{
    (*(size_t *)ud)++;
}

static void test_figures_100k(void)
{
    enum { N = 100000 };
    static val_t v;
    char t[64];
    size_t m0 = cx_alloc_current();
    cx_retain_t *s = cx_retain_new(vref, vunref);
    for (int i = 0; i < N; i++) {
        snprintf(t, sizeof t, "site/%d/device/%d/status", i / 1000, i);
        CHECK_INT_EQ(cx_retain_set(s, S(t), &v), CX_OK);
    }
    cx_retain_set(s, S("$SYS/broker/version"), &v);
    size_t m1 = cx_alloc_current();
    printf("# 100k topics site/<s>/device/<d>/status: %.1f bytes/retained topic\n",
           (double)(m1 - m0) / N);
    CHECK((m1 - m0) / N < 1024);

    size_t n = 0;
    double t0 = now_s();
    for (int r = 0; r < 10; r++)
        CHECK_INT_EQ(cx_retain_match(s, S("#"), on_count, &n), CX_OK);
    double dt = (now_s() - t0) / 10;
    CHECK_INT_EQ(n, 10 * (size_t)N);
    printf("#   \"#\" over 100k: %.2f ms (%.0f ns per topic)\n", dt * 1e3, dt / N * 1e9);

    enum { R = 200000 };
    n = 0;
    t0 = now_s();
    for (int r = 0; r < R; r++)
        cx_retain_match(s, S("site/42/device/42123/status"), on_count, &n);
    dt = (now_s() - t0) / R;
    CHECK_INT_EQ(n, R);
    printf("#   exact filter: %.0f ns/match\n", dt * 1e9);

    n = 0;
    t0 = now_s();
    for (int r = 0; r < 1000; r++)
        cx_retain_match(s, S("site/42/device/+/status"), on_count, &n);
    dt = (now_s() - t0) / 1000;
    CHECK_INT_EQ(n, 1000 * 1000);
    printf("#   site/42/device/+/status (1000 hits): %.1f us/match\n", dt * 1e6);
    cx_retain_free(s);
    CHECK_INT_EQ(v.refs, 0);
}

CX_TEST_MAIN(
    CX_TEST(set_get_clear),
    CX_TEST(free_unrefs),
    CX_TEST(rules_table),
    CX_TEST(rules_one_store),
    CX_TEST(random_against_oracle),
    CX_TEST(dollar_and_walk),
    CX_TEST(long_topics),
    CX_TEST(callback_keeps_value),
    CX_TEST(threads),
    CX_TEST(figures_100k),
)
