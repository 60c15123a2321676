/* test_acl.c — culex/sdk/acl.h: a table of (acl file, user, client id, access, topic,
 * expected) cases with Mosquitto 2 acl_file semantics, strict subscribe checks, the
 * programmatic API, file:line errors, and the cost of a check with thousands of users. */
#include <culex/sdk/acl.h>

#include <errno.h>
#include <fcntl.h>
#include <time.h>

#include "cx_test.h"

#define R CULEX_ACL_READ
#define W CULEX_ACL_WRITE
#define S CULEX_ACL_SUBSCRIBE
#define U CULEX_ACL_UNSUBSCRIBE
#define ALLOW CULEX_ACL_ALLOW
#define DENY CULEX_ACL_DENY
#define NONE CULEX_ACL_NO_MATCH

static const char *const texts[] = {
    /* 0: anonymous section, two users, patterns */
    "# anonymous clients\n"
    "topic read public/#\n"
    "topic deny public/secret\n"
    "\n"
    "user alice\n"
    "topic readwrite alice/#\n"
    "topic read shared/+/status\n"
    "topic deny alice/private\n"
    "\n"
    "user bob\n"
    "topic write bob/out\n"
    "topic bob/in\n"
    "\n"
    "pattern readwrite users/%u/#\n"
    "pattern read clients/%c/cmd\n"
    "pattern deny users/%u/locked\n"
    "pattern write $SYS/broker/connection/%c/state\n",
    /* 1: '$' topics, '#' and '+' rules, no patterns */
    "topic read #\n"
    "topic read $SYS/broker/+\n"
    "user eve\n"
    "topic +/+/x\n",
    /* 2: Mosquitto's ordering: a user grant is decided before pattern denies */
    "user alice\n"
    "topic read x/#\n"
    "pattern deny x/%u\n"
    "pattern read y/%u\n",
    /* 3: syntax corners: one-word rule, spaces in filters, blanks, CRLF, literal %u */
    "  # indented comment\n"
    "topic read\n"
    "topic read a b/c   \t\n"
    "topic write %u/x\r\n"
    "\t\n"
    "user  spaced name  \n"
    "topic readwrite sp/#\n",
    /* 4: deny order does not matter inside a section */
    "topic read x/#\n"
    "topic deny x/y\n"
    "user u\n"
    "topic read x/#\n"
    "topic deny x/+/z\n",
    /* 5: no rules for anonymous, patterns only */
    "pattern read %c/%u/#\n",
};

typedef struct acl_case {
    int text;
    const char *user, *cid;
    unsigned access;
    const char *topic;
    int expect;
} acl_case;

static const acl_case cases[] = {
    /* anonymous section */
    {0, NULL, "c1", R, "public/news", ALLOW},
    {0, NULL, "c1", R, "public", ALLOW}, /* "a/#" matches "a" */
    {0, NULL, "c1", W, "public/news", NONE},
    {0, NULL, "c1", R, "public/secret", DENY},
    {0, NULL, "c1", R, "public/secret/x", ALLOW},
    {0, NULL, "c1", R, "other", NONE},
    {0, NULL, "c1", R, "clients/c1/cmd", ALLOW}, /* %c patterns apply to anonymous clients */
    {0, NULL, "c1", R, "clients/c2/cmd", NONE},
    {0, NULL, "c1", R, "users/c1/x", NONE}, /* %u never matches anonymous */
    {0, NULL, "c1", R, "users/%u/x", NONE},
    /* user sections */
    {0, "alice", "c1", R, "alice/x", ALLOW},
    {0, "alice", "c1", W, "alice/x/y", ALLOW},
    {0, "alice", "c1", R, "alice/private", DENY},
    {0, "alice", "c1", W, "alice/private", DENY},
    {0, "alice", "c1", R, "shared/a/status", ALLOW},
    {0, "alice", "c1", W, "shared/a/status", NONE},
    {0, "alice", "c1", R, "shared/a/b/status", NONE},
    {0, "alice", "c1", R, "public/news", NONE}, /* the anonymous section is not hers */
    {0, "bob", "c2", W, "bob/out", ALLOW},
    {0, "bob", "c2", R, "bob/out", NONE},
    {0, "bob", "c2", R, "bob/in", ALLOW},
    {0, "bob", "c2", W, "bob/in", ALLOW},
    {0, "Bob", "c2", W, "bob/out", NONE}, /* usernames are case-sensitive */
    {0, "", "c2", R, "public/news", NONE}, /* "" is a username, not anonymous */
    /* patterns */
    {0, "alice", "c1", R, "users/alice/x", ALLOW},
    {0, "alice", "c1", W, "users/alice", ALLOW},
    {0, "alice", "c1", R, "users/bob/x", NONE},
    {0, "alice", "c1", R, "users/alice/locked", DENY},
    {0, "carol", "c3", R, "users/carol/a/b", ALLOW},
    {0, "carol", "c3", R, "alice/x", NONE},
    {0, "carol", "c3", R, "clients/c3/cmd", ALLOW},
    {0, "carol", "c3", W, "clients/c3/cmd", NONE},
    {0, "carol", "br1", W, "$SYS/broker/connection/br1/state", ALLOW},
    {0, "carol", "br1", W, "$SYS/broker/connection/br2/state", NONE},
    /* names with wildcards or '/' never widen access */
    {0, "a+b", "c1", R, "users/a+b/x", DENY},
    {0, "#", "c1", R, "users/#/x", DENY},
    {0, "+", "c1", R, "users/x/y", DENY},
    {0, "carol", "c#", R, "clients/c#/cmd", DENY},
    {0, "carol", "+", R, "clients/x/cmd", DENY},
    {0, "x/y", "c1", R, "users/x/y/z", DENY},
    {0, "carol", "x/y", R, "clients/x/y/cmd", DENY},
    {0, "carol", NULL, R, "users/carol/x", DENY}, /* no client id with patterns in use */
    {0, "alice", "c+", R, "alice/x", ALLOW},      /* her own section is decided first */
    /* topics with wildcards are not topic names */
    {0, "alice", "c1", W, "alice/+", DENY},
    {0, "alice", "c1", R, "alice/#", DENY},
    {0, "alice", "c1", R, "", DENY},
    /* subscribe/unsubscribe: always allowed by default (Mosquitto 2 acl_file) */
    {0, "alice", "c1", S, "#", ALLOW},
    {0, NULL, "c1", S, "alice/private", ALLOW},
    {0, "alice", "c1", U, "anything/#", ALLOW},
    {0, "alice", "c1", 0x40, "alice/x", DENY}, /* unknown access kind */
    /* '$' topics */
    {1, NULL, "c", R, "a/b", ALLOW},
    {1, NULL, "c", R, "$SYS/broker/uptime", ALLOW},
    {1, NULL, "c", R, "$SYS/broker/load/x", NONE}, /* '#' does not reach '$' topics */
    {1, NULL, "c", R, "$other", NONE},
    {1, "eve", "c", R, "a/b/x", ALLOW},
    {1, "eve", "c", W, "a/b/x", ALLOW},
    {1, "eve", "c", R, "a/x", NONE},
    {1, "eve", "c", R, "$a/b/x", NONE},
    {1, "eve", "c", R, "a/b/x/y", NONE},
    {1, "eve", "c", R, "a//x", ALLOW}, /* '+' matches an empty level */
    {1, "eve", "c", R, "a/b", NONE},   /* no patterns: nothing else applies */
    /* Mosquitto ordering */
    {2, "alice", "c", R, "x/alice", ALLOW},
    {2, "bob", "c", R, "x/bob", DENY},
    {2, "bob", "c", R, "y/bob", ALLOW},
    {2, "bob", "c", R, "y/bob/z", NONE},
    {2, NULL, "c", R, "y/c", NONE},
    /* syntax corners */
    {3, NULL, "c", W, "read", ALLOW}, /* "topic read": the topic "read", readwrite */
    {3, NULL, "c", R, "a b/c", ALLOW},
    {3, NULL, "c", W, "a b/c", NONE},
    {3, NULL, "c", W, "%u/x", ALLOW}, /* %u is literal outside patterns */
    {3, NULL, "c", W, "bob/x", NONE},
    {3, "spaced name", "c", R, "sp/1", ALLOW},
    {3, "spaced name", "c", R, "read", NONE},
    /* deny precedence */
    {4, NULL, "c", R, "x/y", DENY},
    {4, NULL, "c", R, "x/z", ALLOW},
    {4, "u", "c", R, "x/a/z", DENY},
    {4, "u", "c", R, "x/a/b", ALLOW},
    {4, "u", "c", R, "x/y", ALLOW},
    /* %c and %u in one pattern */
    {5, "u1", "c1", R, "c1/u1/t", ALLOW},
    {5, "u1", "c1", R, "u1/c1/t", NONE},
    {5, NULL, "c1", R, "c1/x/t", NONE},
    {5, "u1", "c1", W, "c1/u1/t", NONE},
};

static culex_acl *load_text(int i, unsigned flags)
{
    culex_acl *acl = culex_acl_new();
    char err[256] = "";
    CHECK(acl != NULL);
    culex_acl_set_flags(acl, flags);
    int rc = culex_acl_load_string(acl, "test.acl", texts[i], err, sizeof err);
    if (rc != 0)
        CX_FAIL_("text %d: %s", i, err);
    return acl;
}

static const char *kind(unsigned a)
{
    return a == R ? "read" : a == W ? "write" : a == S ? "subscribe" : a == U ? "unsub" : "?";
}

static void test_table(void)
{
    culex_acl *acls[sizeof texts / sizeof texts[0]];
    for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++)
        acls[i] = load_text((int)i, 0);
    int failed = 0;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const acl_case *c = &cases[i];
        int got = culex_acl_check(acls[c->text], c->user, c->cid, c->access, c->topic);
        if (got != c->expect) {
            fprintf(stderr, "case %zu: text %d user %s cid %s %s '%s': got %d want %d\n", i,
                    c->text, c->user ? c->user : "(anon)", c->cid ? c->cid : "(null)",
                    kind(c->access), c->topic, got, c->expect);
            failed++;
        }
    }
    for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++)
        culex_acl_free(acls[i]);
    CHECK_INT_EQ(failed, 0);
}

/* Subscribe checks against the filter (CULEX_ACL_STRICT_SUBSCRIBE). */
static void test_strict_subscribe(void)
{
    static const char text[] = "topic read pub/#\n"
                               "user alice\n"
                               "topic read a/#\n"
                               "topic read b/+\n"
                               "topic read c/x\n"
                               "topic deny a/secret/#\n"
                               "topic write w/#\n"
                               "topic read $SYS/#\n"
                               "pattern read p/%u/#\n"
                               "pattern read q/+/%c\n";
    static const struct {
        const char *user, *filter;
        int expect;
    } t[] = {
        {"alice", "a/#", ALLOW},       {"alice", "a/+/b", ALLOW},    {"alice", "a", ALLOW},
        {"alice", "#", NONE},          {"alice", "+/x", NONE},       {"alice", "b/x", ALLOW},
        {"alice", "b/+", ALLOW},       {"alice", "b/#", NONE},       {"alice", "b/x/y", NONE},
        {"alice", "c/x", ALLOW},       {"alice", "c/+", NONE},       {"alice", "c/#", NONE},
        {"alice", "a/secret/#", DENY}, {"alice", "a/secret/x", DENY}, {"alice", "a/+", ALLOW},
        {"alice", "w/x", NONE},        {"alice", "$SYS/#", ALLOW},   {"alice", "p/alice/#", ALLOW},
        {"alice", "p/alice", ALLOW},   {"alice", "p/+/#", NONE},     {"alice", "p/bob/x", NONE},
        {"alice", "q/z/cid", ALLOW},   {"alice", "q/+/cid", ALLOW},  {"alice", "q/z/+", NONE},
        {"alice", "a/#/b", DENY},      {"alice", "a/b+", DENY},      {NULL, "pub/x/#", ALLOW},
        {NULL, "pub", ALLOW},          {NULL, "#", NONE},            {NULL, "p/x/#", NONE},
    };
    culex_acl *acl = culex_acl_new();
    char err[256];
    culex_acl_set_flags(acl, CULEX_ACL_STRICT_SUBSCRIBE);
    CHECK_INT_EQ(culex_acl_load_string(acl, "s.acl", text, err, sizeof err), 0);
    int failed = 0;
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
        int got = culex_acl_check(acl, t[i].user, "cid", S, t[i].filter);
        if (got != t[i].expect) {
            fprintf(stderr, "subscribe %s '%s': got %d want %d\n",
                    t[i].user ? t[i].user : "(anon)", t[i].filter, got, t[i].expect);
            failed++;
        }
    }
    /* unsubscribe stays allowed; reads still use topic matching */
    CHECK_INT_EQ(culex_acl_check(acl, "alice", "cid", U, "a/secret/#"), ALLOW);
    CHECK_INT_EQ(culex_acl_check(acl, "alice", "cid", R, "a/secret/x"), DENY);
    CHECK_INT_EQ(culex_acl_check(acl, "alice", "cid", R, "a/x"), ALLOW);
    culex_acl_free(acl);
    CHECK_INT_EQ(failed, 0);
}

static void test_programmatic(void)
{
    culex_acl *acl = culex_acl_new();
    char err[128];
    CHECK_INT_EQ(culex_acl_add_rule(acl, CULEX_ACL_USER, "dev1", R | W | S, "dev/#", err,
                                    sizeof err),
                 0);
    /* a deny limited to writes */
    CHECK_INT_EQ(culex_acl_add_rule(acl, CULEX_ACL_USER, "dev1",
                                    CULEX_ACL_DENY_RULE | W, "dev/ro/#", err, sizeof err),
                 0);
    CHECK_INT_EQ(culex_acl_add_rule(acl, CULEX_ACL_ANONYMOUS, NULL, R, "anon/x", NULL, 0), 0);
    CHECK_INT_EQ(culex_acl_add_rule(acl, CULEX_ACL_PATTERN, NULL, W, "out/%c", NULL, 0), 0);
    CHECK_INT_EQ(culex_acl_check(acl, "dev1", "c", W, "dev/a"), ALLOW);
    CHECK_INT_EQ(culex_acl_check(acl, "dev1", "c", W, "dev/ro/a"), DENY);
    CHECK_INT_EQ(culex_acl_check(acl, "dev1", "c", R, "dev/ro/a"), ALLOW);
    CHECK_INT_EQ(culex_acl_check(acl, NULL, "c", R, "anon/x"), ALLOW);
    CHECK_INT_EQ(culex_acl_check(acl, "dev1", "c9", W, "out/c9"), ALLOW);
    CHECK_INT_EQ(culex_acl_rule_count(acl), 4);
    CHECK_INT_EQ(culex_acl_user_count(acl), 1);
    /* bad arguments */
    CHECK_INT_EQ(culex_acl_add_rule(acl, CULEX_ACL_USER, NULL, R, "x", err, sizeof err),
                 -EINVAL);
    CHECK_INT_EQ(culex_acl_add_rule(acl, CULEX_ACL_USER, "u", 0, "x", err, sizeof err), -EINVAL);
    CHECK_INT_EQ(culex_acl_add_rule(acl, CULEX_ACL_USER, "u", 0x1000, "x", err, sizeof err),
                 -EINVAL);
    CHECK_INT_EQ(culex_acl_add_rule(acl, CULEX_ACL_USER, "u", R, "a/#/b", err, sizeof err),
                 -EINVAL);
    CHECK_STR_EQ(err, "'#' must be the last topic level: 'a/#/b'");
    CHECK_INT_EQ(culex_acl_add_rule(acl, (culex_acl_section)7, "u", R, "x", err, sizeof err),
                 -EINVAL);
    CHECK_INT_EQ(culex_acl_check(NULL, "u", "c", R, "x"), DENY);
    CHECK_INT_EQ(culex_acl_check(acl, "u", "c", R, NULL), DENY);
    culex_acl_free(acl);
    culex_acl_free(NULL);
}

static void expect_error(const char *text, const char *msg)
{
    culex_acl *acl = culex_acl_new();
    char err[256] = "";
    int rc = culex_acl_load_string(acl, "t.acl", text, err, sizeof err);
    if (rc != -EINVAL || strcmp(err, msg) != 0)
        CX_FAIL_("text \"%s\": rc %d err \"%s\", want \"%s\"", text, rc, err, msg);
    culex_acl_free(acl);
}

static void test_errors(void)
{
    expect_error("topic read a/#/b\n", "t.acl:1: '#' must be the last topic level: 'a/#/b'");
    expect_error("\n\n# c\nfoo bar\n",
                 "t.acl:4: unknown keyword 'foo' (expected topic, user or pattern)");
    expect_error("topic bogus a/b\n",
                 "t.acl:1: invalid access 'bogus' (expected read, write, readwrite or deny)");
    expect_error("topic read x\nuser\n", "t.acl:2: missing username after 'user'");
    expect_error("user x\ntopic   \n", "t.acl:2: missing topic after 'topic'");
    expect_error("pattern read dev-%c/x\n",
                 "t.acl:1: '%u' and '%c' must fill a whole topic level: 'dev-%c/x'");
    expect_error("pattern read %u%c\n",
                 "t.acl:1: '%u' and '%c' must fill a whole topic level: '%u%c'");
    expect_error("topic read a+/b\n",
                 "t.acl:1: '+' and '#' must fill a whole topic level: 'a+/b'");
    expect_error("Topic read a\n",
                 "t.acl:1: unknown keyword 'Topic' (expected topic, user or pattern)");
    /* legal: '%' elsewhere, "%u" in topic lines, an empty file */
    culex_acl *acl = culex_acl_new();
    char err[256];
    CHECK_INT_EQ(culex_acl_load_string(acl, "ok", "pattern read 100%/%u\ntopic read dev-%c\n",
                                       err, sizeof err),
                 0);
    CHECK_INT_EQ(culex_acl_load_string(acl, "empty", "", err, sizeof err), 0);
    culex_acl_free(acl);
}

static void test_load_file(void)
{
    char path[] = "/tmp/cx_acl_XXXXXX";
    int fd = mkstemp(path);
    CHECK(fd >= 0);
    const char text[] = "user alice\ntopic read a/#\n\nuser bob\ntopic read b/#\ntopic rw x\n";
    CHECK_INT_EQ(write(fd, text, sizeof text - 1), (long long)(sizeof text - 1));
    close(fd);
    culex_acl *acl = culex_acl_new();
    char err[512], want[512];
    CHECK_INT_EQ(culex_acl_load_file(acl, path, err, sizeof err), -EINVAL);
    snprintf(want, sizeof want,
             "%s:6: invalid access 'rw' (expected read, write, readwrite or deny)", path);
    CHECK_STR_EQ(err, want);
    culex_acl_free(acl);

    fd = open(path, O_WRONLY | O_TRUNC);
    CHECK_INT_EQ(write(fd, text, sizeof text - 12), (long long)(sizeof text - 12));
    close(fd);
    acl = culex_acl_new();
    CHECK_INT_EQ(culex_acl_load_file(acl, path, err, sizeof err), 0);
    CHECK_INT_EQ(culex_acl_check(acl, "bob", "c", R, "b/1"), ALLOW);
    CHECK_INT_EQ(culex_acl_check(acl, "alice", "c", R, "b/1"), NONE);
    culex_acl_free(acl);

    /* a NUL byte would cut "deny a/secret" down to "deny a": refused, not truncated */
    const char nul[] = "user bob\ntopic deny a\0/secret\ntopic read a/#\n";
    fd = open(path, O_WRONLY | O_TRUNC);
    CHECK_INT_EQ(write(fd, nul, sizeof nul - 1), (long long)(sizeof nul - 1));
    close(fd);
    acl = culex_acl_new();
    CHECK_INT_EQ(culex_acl_load_file(acl, path, err, sizeof err), -EINVAL);
    snprintf(want, sizeof want, "%s:2: NUL byte in the line", path);
    CHECK_STR_EQ(err, want);
    culex_acl_free(acl);
    unlink(path);

    acl = culex_acl_new();
    CHECK_INT_EQ(culex_acl_load_file(acl, "/nonexistent/acl", err, sizeof err), -ENOENT);
    CHECK_STR_EQ(err, "/nonexistent/acl: No such file or directory");
    culex_acl_free(acl);
}

static double now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

/* 5000 users with 4 rules each plus 3 patterns: checks stay in the sub-microsecond range. */
static void test_many_users(void)
{
    culex_acl *acl = culex_acl_new();
    char name[32], filter[64];
    for (int i = 0; i < 5000; i++) {
        snprintf(name, sizeof name, "user%04d", i);
        snprintf(filter, sizeof filter, "tenants/t%d/devices/+/telemetry", i % 50);
        CHECK_INT_EQ(culex_acl_add_rule(acl, CULEX_ACL_USER, name, R, filter, NULL, 0), 0);
        snprintf(filter, sizeof filter, "tenants/t%d/devices/%s/#", i % 50, name);
        CHECK_INT_EQ(culex_acl_add_rule(acl, CULEX_ACL_USER, name, R | W, filter, NULL, 0), 0);
        snprintf(filter, sizeof filter, "tenants/t%d/admin/#", i % 50);
        CHECK_INT_EQ(culex_acl_add_rule(acl, CULEX_ACL_USER, name, CULEX_ACL_DENY_RULE, filter,
                                        NULL, 0),
                     0);
        CHECK_INT_EQ(culex_acl_add_rule(acl, CULEX_ACL_USER, name, R, "broadcast/#", NULL, 0), 0);
    }
    CHECK_INT_EQ(culex_acl_add_rule(acl, CULEX_ACL_PATTERN, NULL, R | W, "inbox/%u/#", NULL, 0),
                 0);
    CHECK_INT_EQ(culex_acl_add_rule(acl, CULEX_ACL_PATTERN, NULL, W, "status/%c", NULL, 0), 0);
    CHECK_INT_EQ(culex_acl_add_rule(acl, CULEX_ACL_PATTERN, NULL, CULEX_ACL_DENY_RULE,
                                    "inbox/%u/blocked", NULL, 0),
                 0);
    CHECK_INT_EQ(culex_acl_user_count(acl), 5000);

    static char names[5000][12];
    for (int i = 0; i < 5000; i++)
        snprintf(names[i], sizeof names[i], "user%04d", i);
    const int n = 500000;
    int allowed = 0;
    double t0 = now_ns();
    for (int i = 0; i < n; i++)
        allowed += culex_acl_check(acl, names[i % 5000], "client-1", W,
                                   "tenants/t7/devices/user0007/cmd") == ALLOW;
    double own = (now_ns() - t0) / n;
    t0 = now_ns();
    for (int i = 0; i < n; i++)
        allowed +=
            culex_acl_check(acl, names[i % 5000], "client-1", R, "inbox/user0042/messages") ==
            ALLOW;
    double pat = (now_ns() - t0) / n;
    CHECK_INT_EQ(allowed, n / 5000 * 2);
    printf("# acl check, 5000 users x 4 rules + 3 patterns: decided in the user's section "
           "%.0f ns, falling through to patterns %.0f ns\n",
           own, pat);
    culex_acl_free(acl);
}

CX_TEST_MAIN(CX_TEST(table), CX_TEST(strict_subscribe), CX_TEST(programmatic), CX_TEST(errors),
             CX_TEST(load_file), CX_TEST(many_users), )
