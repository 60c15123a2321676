/* test_subtree.c: the subscription trie, checked against a naive reference matcher. */
#include "broker/subtree.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <time.h>

#include "cx_test.h"
#include "util/alloc.h"
#include "util/err.h"

#define S(lit) cx_str_from_cstr(lit)
#define NOGROUP CX_STR_NULL
#define OWNER(i) ((void *)(uintptr_t)(0x1000 + (uintptr_t)(i) * 16))
#define OWNER_ID(p) ((int)(((uintptr_t)(p) - 0x1000) / 16))

static const cx_sub_opts_t opts0 = {0};

/* The MQTT rules written the obvious way, as the oracle: level by level, '#' last. */
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

typedef struct hit {
    void *owner;
    cx_sub_opts_t opts;
    char group[32];
} hit_t;

typedef struct hits {
    hit_t *v;
    size_t n, cap;
} hits_t;

static void on_match(void *ud, void *owner, const cx_sub_opts_t *opts, cx_str_t group)
{
    hits_t *h = ud;
    if (h->n == h->cap) {
        h->cap = h->cap ? h->cap * 2 : 16;
        h->v = realloc(h->v, h->cap * sizeof *h->v);
        CHECK(h->v != NULL);
    }
    hit_t *x = &h->v[h->n++];
    x->owner = owner;
    x->opts = *opts;
    CHECK(group.len < sizeof x->group);
    memcpy(x->group, group.p ? (const char *)group.p : "", group.len);
    x->group[group.len] = '\0';
}

static size_t match(cx_subtree_t *t, const char *topic, hits_t *h)
{
    h->n = 0;
    cx_subtree_match(t, S(topic), on_match, NULL, h);
    return h->n;
}

static int cmp_ptr(const void *a, const void *b)
{
    uintptr_t x = (uintptr_t)((const hit_t *)a)->owner, y = (uintptr_t)((const hit_t *)b)->owner;
    return x < y ? -1 : x > y;
}

/* ---- wildcard rules -------------------------------------------------------------------- */

typedef struct row {
    const char *filter, *topic;
    int match;
} row_t;

static const row_t rules[] = {
    {"a", "a", 1},           {"a", "b", 0},            {"a", "a/b", 0},
    {"a/b", "a", 0},         {"a/b", "a/b", 1},        {"a/b", "a/c", 0},
    {"a", "A", 0},           {"abc", "ab", 0},         {"ab", "abc", 0},
    /* '+' is exactly one level, empty ones included */
    {"+", "a", 1},           {"+", "a/b", 0},          {"+", "/", 0},
    {"+/+", "/", 1},         {"+/+", "a/b", 1},        {"+/+", "a", 0},
    {"+/+", "a/b/c", 0},     {"+/+", "a/", 1},         {"+/+", "/b", 1},
    {"a/+", "a/", 1},        {"a/+", "a", 0},          {"a/+", "a/b/c", 0},
    {"a/+/c", "a/b/c", 1},   {"a/+/c", "a//c", 1},     {"a/+/c", "a/b/d", 0},
    {"+/+/+", "a/b/c", 1},   {"+/b/+", "a/b/c", 1},    {"+/b/+", "a/x/c", 0},
    /* '#' is the parent level and everything below */
    {"#", "a", 1},           {"#", "a/b/c", 1},        {"#", "/", 1},
    {"#", "//", 1},          {"a/#", "a", 1},          {"a/#", "a/b", 1},
    {"a/#", "a/b/c", 1},     {"a/#", "b", 0},          {"a/#", "ab", 0},
    {"a/#", "a/", 1},        {"a/b/#", "a", 0},        {"a/b/c/#", "a/b", 0},
    {"a/+/#", "a/b", 1},     {"a/+/#", "a", 0},        {"a/+/#", "a/b/c/d", 1},
    {"a/+/#", "a/", 1},      {"+/#", "a", 1},          {"+/#", "/", 1},
    {"+/b/#", "a/b", 1},     {"+/b/#", "a/c", 0},
    /* empty levels are levels */
    {"a//b", "a//b", 1},     {"a//b", "a/b", 0},       {"/a", "/a", 1},
    {"/a", "a", 0},          {"+/a", "/a", 1},         {"/+", "/", 1},
    {"/#", "/", 1},          {"/#", "/a/b", 1},        {"/#", "a", 0},
    {"a/", "a/", 1},         {"a/", "a", 0},           {"//", "//", 1},
    {"+//+", "a//b", 1},     {"/", "/", 1},            {"/", "//", 0},
    /* '$' topics and first-level wildcards [MQTT-4.7.2-1] */
    {"#", "$SYS/x", 0},      {"#", "$", 0},            {"+/x", "$SYS/x", 0},
    {"+/#", "$SYS/x", 0},    {"+", "$SYS", 0},         {"$SYS/#", "$SYS/x", 1},
    {"$SYS/#", "$SYS", 1},   {"$SYS/#", "$SYS/a/b", 1}, {"$SYS/+", "$SYS/x", 1},
    {"$SYS/x", "$SYS/x", 1}, {"a/$b", "a/$b", 1},      {"a/+", "a/$b", 1},
    {"a/#", "a/$b", 1},      {"$SYS/#", "$SYSX/a", 0}, {"x/#", "$SYS/x", 0},
};

static void test_rules_table(void)
{
    hits_t h = {0};
    for (size_t i = 0; i < sizeof rules / sizeof rules[0]; i++) {
        const row_t *r = &rules[i];
        /* the oracle must agree with the table, or the table is wrong */
        if (naive_match(r->filter, r->topic) != r->match)
            CX_FAIL_("oracle disagrees on %s ~ %s", r->filter, r->topic);
        cx_subtree_t *t = cx_subtree_new();
        CHECK_INT_EQ(cx_subtree_add(t, S(r->filter), NOGROUP, OWNER(1), &opts0), 1);
        size_t n = match(t, r->topic, &h);
        if (n != (size_t)r->match)
            CX_FAIL_("filter \"%s\" topic \"%s\": %zu matches, want %d", r->filter, r->topic,
                     n, r->match);
        cx_subtree_free(t);
    }
    free(h.v);
}

/* Every filter of the table in one tree, each with its own owner: every topic must get
 * exactly the owners whose filters the oracle says match, which checks that branches do not
 * leak into each other. */
static void test_rules_one_tree(void)
{
    const size_t nr = sizeof rules / sizeof rules[0];
    cx_subtree_t *t = cx_subtree_new();
    for (size_t i = 0; i < nr; i++)
        CHECK(cx_subtree_add(t, S(rules[i].filter), NOGROUP, OWNER(i), &opts0) == 1);
    CHECK_INT_EQ(cx_subtree_count(t), nr);
    hits_t h = {0};
    for (size_t j = 0; j < nr; j++) {
        const char *topic = rules[j].topic;
        match(t, topic, &h);
        qsort(h.v, h.n, sizeof *h.v, cmp_ptr);
        size_t k = 0;
        for (size_t i = 0; i < nr; i++) {
            if (!naive_match(rules[i].filter, topic))
                continue;
            if (k >= h.n || h.v[k].owner != OWNER(i))
                CX_FAIL_("topic \"%s\": filter \"%s\" missing", topic, rules[i].filter);
            k++;
        }
        if (k != h.n)
            CX_FAIL_("topic \"%s\": %zu matches, want %zu", topic, h.n, k);
    }
    free(h.v);
    cx_subtree_free(t);
}

/* Random filters and topics over a tiny alphabet, so that collisions of every rule are
 * frequent; checked against the oracle, then torn down to nothing. */
static void random_level(char *buf, size_t *len, bool filter, bool last, bool first)
{
    static const char *const lv[] = {"a", "b", "", "$x", "ab", "+", "#"};
    size_t k;
    do
        k = (size_t)rand() % (filter ? 7 : 5);
    while ((k == 6 && !last) || (k == 3 && !first));
    size_t n = strlen(lv[k]);
    memcpy(buf + *len, lv[k], n);
    *len += n;
}

static void random_string(char *buf, bool filter)
{
    size_t levels = 1 + (size_t)rand() % 4, len = 0;
    for (size_t i = 0; i < levels; i++) {
        if (i)
            buf[len++] = '/';
        random_level(buf, &len, filter, i + 1 == levels, i == 0);
    }
    buf[len] = '\0';
}

static void test_random_against_oracle(void)
{
    enum { NF = 400, NT = 2000 };
    static char filters[NF][32];
    static bool removed[NF];
    srand(12345);
    size_t base = cx_alloc_current();
    cx_subtree_t *t = cx_subtree_new();
    size_t before = cx_alloc_current();
    for (int i = 0; i < NF; i++) {
        random_string(filters[i], true);
        CHECK_INT_EQ(cx_subtree_add(t, S(filters[i]), NOGROUP, OWNER(i), &opts0), 1);
    }
    hits_t h = {0};
    for (int round = 0; round < 2; round++) {
        for (int j = 0; j < NT; j++) {
            char topic[32];
            random_string(topic, false);
            match(t, topic, &h);
            qsort(h.v, h.n, sizeof *h.v, cmp_ptr);
            size_t k = 0;
            for (int i = 0; i < NF; i++) {
                if (removed[i] || !naive_match(filters[i], topic))
                    continue;
                if (k >= h.n || h.v[k].owner != OWNER(i))
                    CX_FAIL_("topic \"%s\": filter \"%s\" missing", topic, filters[i]);
                k++;
            }
            if (k != h.n)
                CX_FAIL_("topic \"%s\": %zu matches, want %zu", topic, h.n, k);
        }
        /* second round: half of them gone */
        for (int i = 0; i < NF && round == 0; i += 2) {
            CHECK_INT_EQ(cx_subtree_remove(t, S(filters[i]), NOGROUP, OWNER(i)), CX_OK);
            removed[i] = true;
        }
    }
    free(h.v);
    CHECK_INT_EQ(cx_subtree_count(t), NF / 2);
    for (int i = 1; i < NF; i += 2)
        CHECK_INT_EQ(cx_subtree_remove(t, S(filters[i]), NOGROUP, OWNER(i)), CX_OK);
    CHECK_INT_EQ(cx_subtree_count(t), 0);
    CHECK_INT_EQ(cx_alloc_current(), before); /* every node freed */
    cx_subtree_free(t);
    CHECK_INT_EQ(cx_alloc_current(), base);
}

static void test_dollar_rules(void)
{
    cx_subtree_t *t = cx_subtree_new();
    cx_subtree_add(t, S("#"), NOGROUP, OWNER(1), &opts0);
    cx_subtree_add(t, S("+/#"), NOGROUP, OWNER(2), &opts0);
    cx_subtree_add(t, S("+/info"), NOGROUP, OWNER(3), &opts0);
    cx_subtree_add(t, S("$SYS/#"), NOGROUP, OWNER(4), &opts0);
    cx_subtree_add(t, S("$SYS/+"), NOGROUP, OWNER(5), &opts0);
    cx_subtree_add(t, S("$SYS/info"), NOGROUP, OWNER(6), &opts0);
    hits_t h = {0};
    CHECK_INT_EQ(match(t, "$SYS/info", &h), 3);
    for (size_t i = 0; i < h.n; i++)
        CHECK(OWNER_ID(h.v[i].owner) >= 4);
    CHECK_INT_EQ(match(t, "$SYS", &h), 1); /* "$SYS/#" matches its parent level */
    CHECK_INT_EQ(match(t, "sys/info", &h), 3);
    CHECK_INT_EQ(match(t, "a/$SYS", &h), 2); /* only the first level is special */
    free(h.v);
    cx_subtree_free(t);
}

/* ---- subscriptions --------------------------------------------------------------------- */

static void test_add_replaces_options(void)
{
    cx_subtree_t *t = cx_subtree_new();
    cx_sub_opts_t o1 = {.qos = 1, .sub_id = 7};
    cx_sub_opts_t o2 = {.qos = 2, .no_local = true, .retain_as_published = true,
                        .retain_handling = 2, .sub_id = 99};
    CHECK_INT_EQ(cx_subtree_add(t, S("a/+"), NOGROUP, OWNER(1), &o1), 1);
    CHECK_INT_EQ(cx_subtree_add(t, S("a/+"), NOGROUP, OWNER(1), &o2), 0);
    CHECK_INT_EQ(cx_subtree_count(t), 1);
    hits_t h = {0};
    CHECK_INT_EQ(match(t, "a/b", &h), 1);
    CHECK(h.v[0].owner == OWNER(1));
    CHECK_INT_EQ(h.v[0].opts.qos, 2);
    CHECK(h.v[0].opts.no_local && h.v[0].opts.retain_as_published);
    CHECK_INT_EQ(h.v[0].opts.retain_handling, 2);
    CHECK_INT_EQ(h.v[0].opts.sub_id, 99);
    CHECK_STR_EQ(h.v[0].group, "");
    /* same owner, same filter, in a group: a separate subscription */
    CHECK_INT_EQ(cx_subtree_add(t, S("a/+"), S("g"), OWNER(1), &o1), 1);
    CHECK_INT_EQ(cx_subtree_add(t, S("a/+"), S("g"), OWNER(1), &o1), 0);
    CHECK_INT_EQ(cx_subtree_count(t), 2);
    CHECK_INT_EQ(cx_subtree_shared_count(t), 1);
    CHECK_INT_EQ(match(t, "a/b", &h), 2);
    /* longer than any MQTT string: refused, not truncated */
    char *big = calloc(70000, 1);
    memset(big, 'x', 65536);
    CHECK_INT_EQ(cx_subtree_add(t, S(big), NOGROUP, OWNER(1), &o1), CX_EINVAL);
    CHECK_INT_EQ(cx_subtree_add(t, S("a"), S(big), OWNER(1), &o1), CX_EINVAL);
    big[65535] = '\0';
    CHECK_INT_EQ(cx_subtree_add(t, S(big), NOGROUP, OWNER(1), &o1), 1);
    CHECK_INT_EQ(match(t, big, &h), 1);
    free(big);
    free(h.v);
    cx_subtree_free(t);
}

static void test_remove(void)
{
    size_t base = cx_alloc_current();
    cx_subtree_t *t = cx_subtree_new();
    size_t empty = cx_alloc_current();
    cx_subtree_add(t, S("a/b/c"), NOGROUP, OWNER(1), &opts0);
    cx_subtree_add(t, S("a/b"), NOGROUP, OWNER(2), &opts0);
    cx_subtree_add(t, S("a/+/#"), S("g"), OWNER(3), &opts0);
    CHECK_INT_EQ(cx_subtree_remove(t, S("a/b/c"), NOGROUP, OWNER(2)), CX_ENOTFOUND);
    CHECK_INT_EQ(cx_subtree_remove(t, S("a/b/d"), NOGROUP, OWNER(1)), CX_ENOTFOUND);
    CHECK_INT_EQ(cx_subtree_remove(t, S("a"), NOGROUP, OWNER(1)), CX_ENOTFOUND);
    CHECK_INT_EQ(cx_subtree_remove(t, S("a/+/#"), NOGROUP, OWNER(3)), CX_ENOTFOUND);
    CHECK_INT_EQ(cx_subtree_remove(t, S("a/+/#"), S("h"), OWNER(3)), CX_ENOTFOUND);
    CHECK_INT_EQ(cx_subtree_remove(t, S("a/+/#"), S("g"), OWNER(4)), CX_ENOTFOUND);
    CHECK_INT_EQ(cx_subtree_count(t), 3);
    CHECK_INT_EQ(cx_subtree_remove(t, S("a/b"), NOGROUP, OWNER(2)), CX_OK);
    hits_t h = {0};
    CHECK_INT_EQ(match(t, "a/b", &h), 1); /* the shared one via a/+/# */
    CHECK_INT_EQ(match(t, "a/b/c", &h), 2);
    CHECK_INT_EQ(cx_subtree_remove(t, S("a/b"), NOGROUP, OWNER(2)), CX_ENOTFOUND);
    CHECK_INT_EQ(cx_subtree_remove(t, S("a/+/#"), S("g"), OWNER(3)), CX_OK);
    CHECK_INT_EQ(cx_subtree_shared_count(t), 0);
    CHECK_INT_EQ(cx_subtree_remove(t, S("a/b/c"), NOGROUP, OWNER(1)), CX_OK);
    CHECK_INT_EQ(cx_subtree_count(t), 0);
    CHECK_INT_EQ(match(t, "a/b/c", &h), 0);
    CHECK_INT_EQ(cx_alloc_current(), empty); /* nodes and groups freed */
    cx_subtree_free(t);
    CHECK_INT_EQ(cx_alloc_current(), base);
    free(h.v);
}

/* A wide node (table growth and shrinking, backward-shift deletion) and many owners on one
 * filter (the owner index), torn down in an order different from insertion. */
static void test_many_owners_and_children(void)
{
    enum { N = 20000 };
    cx_subtree_t *t = cx_subtree_new();
    size_t empty = cx_alloc_current();
    char f[32];
    for (int i = 0; i < N; i++) {
        cx_sub_opts_t o = {.qos = (uint8_t)(i % 3), .sub_id = (uint32_t)i};
        CHECK_INT_EQ(cx_subtree_add(t, S("fan/out"), NOGROUP, OWNER(i), &o), 1);
        snprintf(f, sizeof f, "wide/%d", i);
        CHECK_INT_EQ(cx_subtree_add(t, S(f), NOGROUP, OWNER(i), &o), 1);
    }
    for (int i = 0; i < N; i += 7) /* re-adding replaces */
        CHECK_INT_EQ(cx_subtree_add(t, S("fan/out"), NOGROUP, OWNER(i), &opts0), 0);
    CHECK_INT_EQ(cx_subtree_count(t), 2 * N);
    hits_t h = {0};
    CHECK_INT_EQ(match(t, "fan/out", &h), N);
    qsort(h.v, h.n, sizeof *h.v, cmp_ptr);
    for (int i = 0; i < N; i++) {
        CHECK(h.v[i].owner == OWNER(i));
        CHECK_INT_EQ(h.v[i].opts.sub_id, i % 7 ? (uint32_t)i : 0);
    }
    for (int i = 0; i < N; i += 97) {
        snprintf(f, sizeof f, "wide/%d", i);
        CHECK_INT_EQ(match(t, f, &h), 1);
        CHECK(h.v[0].owner == OWNER(i));
    }
    CHECK_INT_EQ(match(t, "wide/x", &h), 0);
    /* remove odd ones, check the rest is intact, then the even ones backwards */
    for (int i = 1; i < N; i += 2) {
        CHECK_INT_EQ(cx_subtree_remove(t, S("fan/out"), NOGROUP, OWNER(i)), CX_OK);
        snprintf(f, sizeof f, "wide/%d", i);
        CHECK_INT_EQ(cx_subtree_remove(t, S(f), NOGROUP, OWNER(i)), CX_OK);
    }
    CHECK_INT_EQ(match(t, "fan/out", &h), N / 2);
    for (size_t k = 0; k < h.n; k++)
        CHECK(OWNER_ID(h.v[k].owner) % 2 == 0);
    for (int i = 0; i < N; i += 2) {
        snprintf(f, sizeof f, "wide/%d", i);
        CHECK_INT_EQ(match(t, f, &h), 1);
    }
    for (int i = N - 2; i >= 0; i -= 2) {
        CHECK_INT_EQ(cx_subtree_remove(t, S("fan/out"), NOGROUP, OWNER(i)), CX_OK);
        snprintf(f, sizeof f, "wide/%d", i);
        CHECK_INT_EQ(cx_subtree_remove(t, S(f), NOGROUP, OWNER(i)), CX_OK);
    }
    CHECK_INT_EQ(cx_subtree_count(t), 0);
    CHECK_INT_EQ(cx_alloc_current(), empty);
    free(h.v);
    cx_subtree_free(t);
}

/* ---- shared subscriptions -------------------------------------------------------------- */

static void test_shared_one_per_message(void)
{
    cx_subtree_t *t = cx_subtree_new();
    for (int i = 0; i < 3; i++)
        CHECK_INT_EQ(cx_subtree_add(t, S("job/+"), S("workers"), OWNER(i), &opts0), 1);
    CHECK_INT_EQ(cx_subtree_shared_count(t), 3);
    int got[3] = {0};
    hits_t h = {0};
    for (int m = 0; m < 300; m++) {
        CHECK_INT_EQ(match(t, "job/x", &h), 1);
        CHECK_STR_EQ(h.v[0].group, "workers");
        got[OWNER_ID(h.v[0].owner)]++;
    }
    /* strict round-robin with one reader: exactly even */
    for (int i = 0; i < 3; i++)
        CHECK_INT_EQ(got[i], 100);
    CHECK_INT_EQ(match(t, "job", &h), 0);
    free(h.v);
    cx_subtree_free(t);
}

static void test_shared_fairness_with_churn(void)
{
    cx_subtree_t *t = cx_subtree_new();
    enum { M = 10 };
    for (int i = 0; i < M; i++)
        cx_subtree_add(t, S("q/#"), S("g"), OWNER(i), &opts0);
    int got[M + 1] = {0};
    hits_t h = {0};
    for (int m = 0; m < 10000; m++) {
        CHECK_INT_EQ(match(t, "q/a/b", &h), 1);
        got[OWNER_ID(h.v[0].owner)]++;
    }
    for (int i = 0; i < M; i++)
        CHECK_INT_EQ(got[i], 1000);
    /* a member leaves and another joins: still one copy, the leaver gets nothing more */
    CHECK_INT_EQ(cx_subtree_remove(t, S("q/#"), S("g"), OWNER(3)), CX_OK);
    cx_subtree_add(t, S("q/#"), S("g"), OWNER(M), &opts0);
    memset(got, 0, sizeof got);
    for (int m = 0; m < 10000; m++) {
        CHECK_INT_EQ(match(t, "q", &h), 1);
        got[OWNER_ID(h.v[0].owner)]++;
    }
    CHECK_INT_EQ(got[3], 0);
    for (int i = 0; i <= M; i++)
        if (i != 3)
            CHECK_INT_EQ(got[i], 1000);
    free(h.v);
    cx_subtree_free(t);
}

typedef struct pick_ctx {
    hits_t hits;
    int allowed; /* owner id allowed to receive, -1 = none, -2 = all, -3 = all but 1 */
    int asked;
} pick_ctx_t;

static bool pick_only(void *ud, void *owner)
{
    pick_ctx_t *c = ud;
    c->asked++;
    return c->allowed == -2 || (c->allowed == -3 && OWNER_ID(owner) != 1) ||
           OWNER_ID(owner) == c->allowed;
}

static void on_match_pick(void *ud, void *owner, const cx_sub_opts_t *opts, cx_str_t group)
{
    on_match(&((pick_ctx_t *)ud)->hits, owner, opts, group);
}

static void test_shared_pick(void)
{
    cx_subtree_t *t = cx_subtree_new();
    for (int i = 0; i < 4; i++)
        cx_subtree_add(t, S("p"), S("g"), OWNER(i), &opts0);
    pick_ctx_t c = {.allowed = 2};
    for (int m = 0; m < 50; m++) {
        c.hits.n = 0;
        cx_subtree_match(t, S("p"), on_match_pick, pick_only, &c);
        CHECK_INT_EQ(c.hits.n, 1);
        CHECK_INT_EQ(OWNER_ID(c.hits.v[0].owner), 2);
    }
    /* nobody may receive: round-robin among all rather than dropping */
    c.allowed = -1;
    int got[4] = {0};
    for (int m = 0; m < 400; m++) {
        c.hits.n = 0;
        cx_subtree_match(t, S("p"), on_match_pick, pick_only, &c);
        CHECK_INT_EQ(c.hits.n, 1);
        got[OWNER_ID(c.hits.v[0].owner)]++;
    }
    for (int i = 0; i < 4; i++)
        CHECK_INT_EQ(got[i], 100);
    /* members 0, 2 and 3 may: strict turns among them, 1 skipped without doubling 2's share */
    c.allowed = -3;
    memset(got, 0, sizeof got);
    for (int m = 0; m < 300; m++) {
        c.hits.n = 0;
        cx_subtree_match(t, S("p"), on_match_pick, pick_only, &c);
        CHECK_INT_EQ(c.hits.n, 1);
        got[OWNER_ID(c.hits.v[0].owner)]++;
    }
    CHECK_INT_EQ(got[1], 0);
    CHECK_INT_EQ(got[0], 100);
    CHECK_INT_EQ(got[2], 100);
    CHECK_INT_EQ(got[3], 100);
    /* everyone may: pick is asked once per message */
    c.allowed = -2;
    c.asked = 0;
    c.hits.n = 0;
    cx_subtree_match(t, S("p"), on_match_pick, pick_only, &c);
    CHECK_INT_EQ(c.asked, 1);
    free(c.hits.v);
    cx_subtree_free(t);
}

static void test_shared_groups_and_plain(void)
{
    cx_subtree_t *t = cx_subtree_new();
    cx_subtree_add(t, S("s/+"), S("g1"), OWNER(1), &opts0);
    cx_subtree_add(t, S("s/+"), S("g1"), OWNER(2), &opts0);
    cx_subtree_add(t, S("s/+"), S("g2"), OWNER(3), &opts0);
    cx_subtree_add(t, S("s/+"), S("g2"), OWNER(4), &opts0);
    cx_subtree_add(t, S("s/+"), NOGROUP, OWNER(5), &opts0);
    cx_subtree_add(t, S("s/+"), NOGROUP, OWNER(1), &opts0); /* member of g1 and plain too */
    cx_subtree_add(t, S("s/#"), S("g1"), OWNER(6), &opts0);  /* same group, other filter */
    CHECK_INT_EQ(cx_subtree_count(t), 7);
    CHECK_INT_EQ(cx_subtree_shared_count(t), 5);
    hits_t h = {0};
    for (int m = 0; m < 10; m++) {
        CHECK_INT_EQ(match(t, "s/x", &h), 5);
        int g1 = 0, g2 = 0, plain = 0, g1hash = 0;
        for (size_t i = 0; i < h.n; i++) {
            int id = OWNER_ID(h.v[i].owner);
            if (!strcmp(h.v[i].group, "g1") && id == 6)
                g1hash++;
            else if (!strcmp(h.v[i].group, "g1"))
                g1 += (id == 1 || id == 2);
            else if (!strcmp(h.v[i].group, "g2"))
                g2 += (id == 3 || id == 4);
            else
                plain += (id == 5 || id == 1);
        }
        CHECK_INT_EQ(g1, 1);
        CHECK_INT_EQ(g2, 1);
        CHECK_INT_EQ(plain, 2);
        CHECK_INT_EQ(g1hash, 1);
    }
    free(h.v);
    cx_subtree_free(t);
}

/* ---- walk ------------------------------------------------------------------------------ */

typedef struct lines {
    char v[64][96];
    int n;
} lines_t;

static void on_walk(void *ud, cx_str_t filter, cx_str_t group, void *owner,
                    const cx_sub_opts_t *opts)
{
    lines_t *l = ud;
    CHECK(l->n < 64);
    snprintf(l->v[l->n++], sizeof l->v[0], "%.*s|%.*s|%d|%u", (int)filter.len,
             filter.p ? (const char *)filter.p : "", (int)group.len,
             group.p ? (const char *)group.p : "", OWNER_ID(owner), opts->qos);
}

static int cmp_line(const void *a, const void *b)
{
    return strcmp(a, b);
}

static void test_walk(void)
{
    cx_subtree_t *t = cx_subtree_new();
    static const struct {
        const char *filter, *group;
        int id;
    } in[] = {
        {"a/b/c", "", 1}, {"a/b", "", 2},  {"a/+/#", "g", 3}, {"a/+/#", "g", 4},
        {"#", "", 5},     {"/x//", "", 6}, {"$SYS/#", "", 7}, {"+", "h", 8},
        {"a/b", "", 9},
    };
    for (size_t i = 0; i < sizeof in / sizeof in[0]; i++) {
        cx_sub_opts_t o = {.qos = (uint8_t)(i % 3)};
        CHECK_INT_EQ(cx_subtree_add(t, S(in[i].filter), S(in[i].group), OWNER(in[i].id), &o), 1);
    }
    static lines_t l;
    CHECK_INT_EQ(cx_subtree_walk(t, on_walk, &l), CX_OK);
    CHECK_INT_EQ(l.n, 9);
    qsort(l.v, (size_t)l.n, sizeof l.v[0], cmp_line);
    static const char *const want[] = {
        "#||5|1",     "$SYS/#||7|0", "+|h|8|1",    "/x//||6|2", "a/+/#|g|3|2",
        "a/+/#|g|4|0", "a/b/c||1|0", "a/b||2|1",   "a/b||9|2",
    };
    for (int i = 0; i < 9; i++)
        CHECK_STR_EQ(l.v[i], want[i]);
    cx_subtree_free(t);

    /* an empty tree walks nothing */
    t = cx_subtree_new();
    l.n = 0;
    CHECK_INT_EQ(cx_subtree_walk(t, on_walk, &l), CX_OK);
    CHECK_INT_EQ(l.n, 0);
    cx_subtree_free(t);
}

/* Filters thousands of levels deep: nothing may recurse. */
static void count_walk(void *ud, cx_str_t filter, cx_str_t group, void *owner,
                       const cx_sub_opts_t *opts)
{
    size_t *lens = ud;
    lens[OWNER_ID(owner)] = filter.len;
}

static void test_deep_filters(void)
{
    enum { L = 30000 };
    size_t base = cx_alloc_current();
    char *lit = malloc(2 * L), *plus = malloc(2 * L), *hash = malloc(2 * L);
    for (int i = 0; i < L; i++) {
        lit[2 * i] = 'a';
        plus[2 * i] = '+';
        hash[2 * i] = 'a';
        lit[2 * i + 1] = plus[2 * i + 1] = hash[2 * i + 1] = '/';
    }
    lit[2 * L - 1] = plus[2 * L - 1] = hash[2 * L - 1] = '\0';
    hash[2 * L - 2] = '#'; /* a/a/.../a/# with L - 1 literal levels */
    cx_subtree_t *t = cx_subtree_new();
    CHECK_INT_EQ(cx_subtree_add(t, S(lit), NOGROUP, OWNER(0), &opts0), 1);
    CHECK_INT_EQ(cx_subtree_add(t, S(plus), NOGROUP, OWNER(1), &opts0), 1);
    CHECK_INT_EQ(cx_subtree_add(t, S(hash), NOGROUP, OWNER(2), &opts0), 1);
    hits_t h = {0};
    CHECK_INT_EQ(match(t, lit, &h), 3);
    lit[2 * L - 2] = 'b';
    CHECK_INT_EQ(match(t, lit, &h), 2);
    lit[2 * L - 2] = 'a';
    size_t lens[3] = {0};
    CHECK_INT_EQ(cx_subtree_walk(t, count_walk, lens), CX_OK);
    CHECK_INT_EQ(lens[0], 2 * L - 1);
    CHECK_INT_EQ(lens[1], 2 * L - 1);
    CHECK_INT_EQ(lens[2], 2 * L - 1);
    CHECK_INT_EQ(cx_subtree_remove(t, S(plus), NOGROUP, OWNER(1)), CX_OK);
    CHECK_INT_EQ(match(t, lit, &h), 2);
    cx_subtree_free(t); /* with two deep chains still in it */
    CHECK_INT_EQ(cx_alloc_current(), base);
    free(h.v);
    free(lit);
    free(plus);
    free(hash);
}

/* ---- threads --------------------------------------------------------------------------- */

typedef struct race {
    cx_subtree_t *t;
    atomic_bool stop;
    atomic_long matches;
} race_t;

typedef struct race_count {
    int stable, group_copies, other;
} race_count_t;

static void on_race(void *ud, void *owner, const cx_sub_opts_t *opts, cx_str_t group)
{
    race_count_t *c = ud;
    int id = OWNER_ID(owner);
    if (group.len)
        c->group_copies++;
    else if (id < 3)
        c->stable++;
    else
        c->other++;
    CHECK(opts->sub_id == (uint32_t)id); /* options belong to their owner, never torn */
}

static void *matcher(void *arg)
{
    race_t *r = arg;
    while (!atomic_load(&r->stop)) {
        race_count_t c = {0};
        cx_subtree_match(r->t, S("s/a/x"), on_race, NULL, &c);
        if (c.stable != 3 || c.group_copies != 1)
            CX_FAIL_("torn match: stable %d group %d", c.stable, c.group_copies);
        atomic_fetch_add(&r->matches, 1);
    }
    return NULL;
}

static void test_threads(void)
{
    race_t r = {.t = cx_subtree_new()};
    /* stable subscriptions that every match must see exactly once each */
    cx_sub_opts_t o0 = {.sub_id = 0}, o1 = {.sub_id = 1}, o2 = {.sub_id = 2};
    cx_subtree_add(r.t, S("s/+/x"), NOGROUP, OWNER(0), &o0);
    cx_subtree_add(r.t, S("s/#"), NOGROUP, OWNER(1), &o1);
    cx_subtree_add(r.t, S("s/a/x"), NOGROUP, OWNER(2), &o2);
    cx_subtree_add(r.t, S("s/a/x"), S("g"), OWNER(2), &o2);
    pthread_t th[2];
    for (int i = 0; i < 2; i++)
        CHECK(pthread_create(&th[i], NULL, matcher, &r) == 0);
    char f[32];
    for (int round = 0; round < 300; round++) {
        /* churn: grow and shrink the tables on the matched path, the group and a wide node */
        for (int i = 3; i < 40; i++) {
            cx_sub_opts_t o = {.sub_id = (uint32_t)i};
            snprintf(f, sizeof f, "s/k%d/x", i);
            cx_subtree_add(r.t, S(f), NOGROUP, OWNER(i), &o);
            cx_subtree_add(r.t, S("s/a/x"), S("g"), OWNER(i), &o);
            cx_subtree_add(r.t, S(i % 2 ? "s/a/+" : "s/+/+"), NOGROUP, OWNER(i), &o);
        }
        for (int i = 3; i < 40; i++) {
            snprintf(f, sizeof f, "s/k%d/x", i);
            CHECK_INT_EQ(cx_subtree_remove(r.t, S(f), NOGROUP, OWNER(i)), CX_OK);
            CHECK_INT_EQ(cx_subtree_remove(r.t, S("s/a/x"), S("g"), OWNER(i)), CX_OK);
            CHECK_INT_EQ(cx_subtree_remove(r.t, S(i % 2 ? "s/a/+" : "s/+/+"), NOGROUP, OWNER(i)),
                         CX_OK);
        }
    }
    atomic_store(&r.stop, true);
    for (int i = 0; i < 2; i++)
        pthread_join(th[i], NULL);
    CHECK(atomic_load(&r.matches) > 0);
    CHECK_INT_EQ(cx_subtree_count(r.t), 4);
    cx_subtree_free(r.t);
}

/* ---- figures --------------------------------------------------------------------------- */

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void on_count(void *ud, void *owner, const cx_sub_opts_t *opts, cx_str_t group)
{
    (*(size_t *)ud)++;
}

static void bench_match(cx_subtree_t *t, const char *what, const char *topic, size_t want)
{
    enum { R = 200000 };
    size_t n = 0;
    double t0 = now_s();
    for (int i = 0; i < R; i++)
        cx_subtree_match(t, S(topic), on_count, NULL, &n);
    double dt = now_s() - t0;
    CHECK_INT_EQ(n, (size_t)R * want);
    printf("#   %-40s %8.0f ns/match (%zu matches)\n", what, dt / R * 1e9, want);
}

/* Prints memory per subscription and match times for 100k subscriptions. The bounds asserted
 * are loose on purpose (sanitizer builds are slower and account memory differently); the
 * printed figures from a plain build are the ones to quote. */
static void test_figures_100k(void)
{
    enum { N = 100000 };
    char f[64];

    /* A: every client its own command filter plus a shared status wildcard set. */
    size_t a0 = cx_alloc_current();
    cx_subtree_t *t = cx_subtree_new();
    for (int i = 0; i < N; i++) {
        cx_sub_opts_t o = {.qos = 1};
        snprintf(f, sizeof f, "site/%d/device/%d/cmd", i / 1000, i);
        CHECK_INT_EQ(cx_subtree_add(t, S(f), NOGROUP, OWNER(i), &o), 1);
    }
    size_t a1 = cx_alloc_current();
    printf("# A: 100k distinct filters site/<s>/device/<d>/cmd: %.1f bytes/subscription\n",
           (double)(a1 - a0) / N);
    CHECK((a1 - a0) / N < 1024);
    bench_match(t, "A: exact hit", "site/42/device/42123/cmd", 1);
    bench_match(t, "A: miss at level 4", "site/42/device/99999/cmd", 0);
    cx_subtree_add(t, S("site/+/device/+/cmd"), NOGROUP, OWNER(N), &opts0);
    cx_subtree_add(t, S("site/#"), NOGROUP, OWNER(N + 1), &opts0);
    cx_subtree_add(t, S("#"), NOGROUP, OWNER(N + 2), &opts0);
    bench_match(t, "A: + 3 wildcard filters, hit", "site/42/device/42123/cmd", 4);
    cx_subtree_free(t);

    /* B: 100k subscribers on one filter (fan-out), measured apart from the callback. */
    size_t b0 = cx_alloc_current();
    t = cx_subtree_new();
    for (int i = 0; i < N; i++)
        CHECK_INT_EQ(cx_subtree_add(t, S("news/all"), NOGROUP, OWNER(i), &opts0), 1);
    size_t b1 = cx_alloc_current();
    printf("# B: 100k subscribers on one filter: %.1f bytes/subscription\n",
           (double)(b1 - b0) / N);
    double t0 = now_s();
    size_t n = 0;
    for (int i = 0; i < 100; i++)
        cx_subtree_match(t, S("news/all"), on_count, NULL, &n);
    printf("#   B: fan-out to 100k: %.2f ms/match, %.1f ns per subscriber\n",
           (now_s() - t0) / 100 * 1e3, (now_s() - t0) / 100 / N * 1e9);
    CHECK_INT_EQ(n, 100 * (size_t)N);
    cx_subtree_free(t);

    /* C: 100k filters spread over 1000 shared groups of 100 members. */
    size_t c0 = cx_alloc_current();
    t = cx_subtree_new();
    for (int i = 0; i < N; i++) {
        char g[16];
        snprintf(f, sizeof f, "jobs/%d/+", i % 1000);
        snprintf(g, sizeof g, "w%d", i % 1000);
        CHECK_INT_EQ(cx_subtree_add(t, S(f), S(g), OWNER(i), &opts0), 1);
    }
    size_t c1 = cx_alloc_current();
    printf("# C: 1000 shared groups x 100 members: %.1f bytes/subscription\n",
           (double)(c1 - c0) / N);
    bench_match(t, "C: shared group pick", "jobs/500/x", 1);
    cx_subtree_free(t);
}

CX_TEST_MAIN(
    CX_TEST(rules_table),
    CX_TEST(rules_one_tree),
    CX_TEST(random_against_oracle),
    CX_TEST(dollar_rules),
    CX_TEST(add_replaces_options),
    CX_TEST(remove),
    CX_TEST(many_owners_and_children),
    CX_TEST(shared_one_per_message),
    CX_TEST(shared_fairness_with_churn),
    CX_TEST(shared_pick),
    CX_TEST(shared_groups_and_plain),
    CX_TEST(walk),
    CX_TEST(deep_filters),
    CX_TEST(threads),
    CX_TEST(figures_100k),
)
