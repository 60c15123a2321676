/* test_options.c — culex/sdk/options.h: every kind, ranges, defaults, required options,
 * unknown names with suggestions, and the exact error messages. */
#include <culex/sdk/options.h>

#include <limits.h>

#include "cx_test.h"

static const char *file, *name;
static int port, mode;
static bool tls;
static long long ttl;
static const char *const modes[] = {"strict", "loose", NULL};

static const culex_opt_spec spec[] = {
    {"password_file", CULEX_OPT_PATH, true, NULL, &file, 0, 0, NULL, "file of user:hash lines"},
    {"port", CULEX_OPT_INT, false, "5432", &port, 1, 65535, NULL, "server port"},
    {"tls", CULEX_OPT_BOOL, false, "false", &tls, 0, 0, NULL, "use TLS"},
    {"cache_ttl", CULEX_OPT_DURATION, false, "30s", &ttl, 0, 86400000, NULL, "cache lifetime"},
    {"mode", CULEX_OPT_ENUM, false, "strict", &mode, 0, 0, modes, "matching mode"},
    {"name", CULEX_OPT_STRING, false, NULL, &name, 0, 0, NULL, "a label"},
};
#define NSPEC (sizeof spec / sizeof spec[0])

static void reset(void)
{
    file = name = NULL;
    port = mode = -1;
    tls = true;
    ttl = -1;
}

static int parse(const culex_option *o, size_t n, char *err, size_t errlen)
{
    reset();
    return culex_opts_parse(o, n, spec, NSPEC, err, errlen);
}

static void test_defaults(void)
{
    culex_option o[] = {{"password_file", "/etc/culex/pw"}};
    char err[256] = "";
    CHECK_INT_EQ(parse(o, 1, err, sizeof err), 0);
    CHECK_STR_EQ(file, "/etc/culex/pw");
    CHECK_INT_EQ(port, 5432);
    CHECK_INT_EQ(tls, false);
    CHECK_INT_EQ(ttl, 30000);
    CHECK_INT_EQ(mode, 0);
    CHECK(name == NULL); /* no default: untouched */
}

static void test_values(void)
{
    culex_option o[] = {{"password_file", "pw"}, {"port", " 0x50 "}, {"tls", "YES"},
                        {"cache_ttl", "250ms"},  {"mode", "loose"},  {"name", "edge 1"},
                        {"port", "1883"}};
    char err[256] = "";
    CHECK_INT_EQ(parse(o, 7, err, sizeof err), 0);
    CHECK_INT_EQ(port, 1883); /* the last value wins */
    CHECK_INT_EQ(tls, true);
    CHECK_INT_EQ(ttl, 250);
    CHECK_INT_EQ(mode, 1);
    CHECK_STR_EQ(name, "edge 1");
    static const struct {
        const char *v;
        long long ms;
    } d[] = {{"0", 0}, {"45", 45000}, {"2m", 120000}, {"1h", 3600000}, {"1d", 86400000},
             {"10 s", 10000}};
    for (size_t i = 0; i < sizeof d / sizeof d[0]; i++) {
        culex_option od[] = {{"password_file", "pw"}, {"cache_ttl", d[i].v}};
        CHECK_INT_EQ(parse(od, 2, err, sizeof err), 0);
        CHECK_INT_EQ(ttl, d[i].ms);
    }
    static const char *const yes[] = {"true", "on", "1", "Yes"}, *const no[] = {"off", "NO", "0"};
    for (size_t i = 0; i < 4; i++) {
        culex_option ob[] = {{"password_file", "pw"}, {"tls", yes[i]}};
        CHECK_INT_EQ(parse(ob, 2, err, sizeof err), 0);
        CHECK_INT_EQ(tls, true);
    }
    for (size_t i = 0; i < 3; i++) {
        culex_option ob[] = {{"password_file", "pw"}, {"tls", no[i]}};
        CHECK_INT_EQ(parse(ob, 2, err, sizeof err), 0);
        CHECK_INT_EQ(tls, false);
    }
}

static void expect(const char *optname, const char *value, const char *msg)
{
    culex_option o[] = {{"password_file", "pw"}, {optname, value}};
    char err[256] = "";
    int rc = parse(o, 2, err, sizeof err);
    if (rc != -1 || strcmp(err, msg) != 0)
        CX_FAIL_("%s=%s: rc %d, \"%s\" want \"%s\"", optname, value, rc, err, msg);
}

static void test_errors(void)
{
    expect("pasword_file", "x",
           "unknown option 'pasword_file' (known: password_file, port, tls, cache_ttl, mode, "
           "name); did you mean 'password_file'?");
    expect("foo", "x",
           "unknown option 'foo' (known: password_file, port, tls, cache_ttl, mode, name)");
    expect("port", "70000", "option 'port': '70000' is out of range (1..65535)");
    expect("port", "0", "option 'port': '0' is out of range (1..65535)");
    expect("port", "12ab", "option 'port': '12ab' is not an integer");
    expect("port", "", "option 'port': '' is not an integer");
    expect("port", "99999999999999999999", "option 'port': '99999999999999999999' is too large "
                                           "for an integer");
    expect("tls", "maybe",
           "option 'tls': 'maybe' is not a boolean (true/false, yes/no, on/off, 1/0)");
    expect("cache_ttl", "5y",
           "option 'cache_ttl': '5y' is not a duration (a number with an optional unit ms, s, "
           "m, h or d; seconds without one)");
    expect("cache_ttl", "-1", "option 'cache_ttl': '-1' is not a duration (a number with an "
                              "optional unit ms, s, m, h or d; seconds without one)");
    expect("cache_ttl", "2d", "option 'cache_ttl': '2d' is out of range (0ms..86400000ms)");
    expect("mode", "fuzzy", "option 'mode': 'fuzzy' is not one of: strict, loose");
    expect("password_file", "", "option 'password_file': empty path");

    char err[256];
    culex_option none[] = {{"port", "1"}};
    CHECK_INT_EQ(parse(none, 1, err, sizeof err), -1);
    CHECK_STR_EQ(err, "missing required option 'password_file' (file of user:hash lines)");

    /* a bad default is reported as such (a plugin bug) */
    static const culex_opt_spec badspec[] = {
        {"n", CULEX_OPT_INT, false, "ten", NULL, 0, 0, NULL, "a number"}};
    CHECK_INT_EQ(culex_opts_parse(NULL, 0, badspec, 1, err, sizeof err), -1);
    CHECK_STR_EQ(err, "option 'n': 'ten' is not an integer (the default)");
    /* no spec at all */
    CHECK_INT_EQ(culex_opts_parse(none, 1, NULL, 0, err, sizeof err), -1);
    CHECK_STR_EQ(err, "unknown option 'port' (known: none)");
    CHECK_INT_EQ(culex_opts_parse(NULL, 0, NULL, 0, err, sizeof err), 0);
}

static void test_int_limits(void)
{
    static int v;
    static const culex_opt_spec s[] = {{"v", CULEX_OPT_INT, true, NULL, &v, 0, 0, NULL, ""}};
    char err[256];
    culex_option o[] = {{"v", "-2147483648"}};
    CHECK_INT_EQ(culex_opts_parse(o, 1, s, 1, err, sizeof err), 0);
    CHECK_INT_EQ(v, INT_MIN);
    o[0].value = "2147483648";
    CHECK_INT_EQ(culex_opts_parse(o, 1, s, 1, err, sizeof err), -1);
    CHECK_STR_EQ(err, "option 'v': '2147483648' is too large for an integer");
}

static void test_describe(void)
{
    char out[1024];
    size_t n = culex_opts_describe(spec, 2, out, sizeof out);
    CHECK_STR_EQ(out, "password_file (path, required): file of user:hash lines\n"
                      "port (integer, default 5432): server port\n");
    CHECK_INT_EQ(n, strlen(out));
    CHECK_INT_EQ(culex_opts_describe(spec, 2, out, 10), n);
}

CX_TEST_MAIN(CX_TEST(defaults), CX_TEST(values), CX_TEST(errors), CX_TEST(int_limits),
             CX_TEST(describe), )
