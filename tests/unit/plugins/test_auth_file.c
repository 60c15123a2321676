/* test_auth_file.c: plugins/auth_file in isolation, loaded with dlopen by the test host
 * (testhost.c) and driven with real files: password files written by mosquitto_passwd and
 * by the SDK's culex_pw_hash, ACL files, broken files, and reloads. */
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <culex/sdk/password.h>

#include "cx_test.h"
#include "testhost.h"

/* ------------------------------------------------------------ fixtures */

/* Each test runs in its own process and gets its own directory, removed at exit (also
 * when a CHECK fails). */
static char tmpdir[64];

static void rm_tmpdir(void)
{
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", tmpdir);
}

static const char *tmp_path(const char *name)
{
    static char buf[8][256];
    static int next;
    char *p = buf[next++ % 8];
    if (!tmpdir[0]) {
        snprintf(tmpdir, sizeof(tmpdir), "/tmp/cx-auth-file-XXXXXX");
        CHECK(mkdtemp(tmpdir) != NULL);
        atexit(rm_tmpdir);
    }
    snprintf(p, 256, "%s/%s", tmpdir, name);
    return p;
}

static void write_file(const char *path, const char *fmt, ...)
{
    /* Write to a temporary name and rename, as an editor or mosquitto_passwd would. */
    char tmp[300];
    snprintf(tmp, sizeof(tmp), "%s.new", path);
    FILE *fp = fopen(tmp, "w");
    CHECK(fp != NULL);
    va_list ap;
    va_start(ap, fmt);
    vfprintf(fp, fmt, ap);
    va_end(ap);
    CHECK(fclose(fp) == 0);
    CHECK(rename(tmp, path) == 0);
}

static bool have_mosquitto_passwd(void)
{
    if (access(MOSQUITTO_PASSWD, X_OK) == 0)
        return true;
    printf("# skip: %s not installed\n", MOSQUITTO_PASSWD);
    return false;
}

/* mosquitto_passwd -b [-c] FILE USER PASS */
static void mosq_passwd(const char *file, bool create, const char *user, const char *pass)
{
    char cmd[600];
    snprintf(cmd, sizeof(cmd), "%s -b %s '%s' '%s' '%s' >/dev/null 2>&1", MOSQUITTO_PASSWD,
             create ? "-c" : "", file, user, pass);
    CHECK_INT_EQ(system(cmd), 0);
}

static const char *hash_of(culex_pw_scheme scheme, const char *pw)
{
    static char out[4][CULEX_PW_ENCODED_MAX];
    static int next;
    char *o = out[next++ % 4];
    /* Low costs: these tests check formats, not strength. */
    unsigned iters = scheme == CULEX_PW_BCRYPT ? 4 : scheme == CULEX_PW_ARGON2ID ? 1 : 0;
    CHECK_INT_EQ(culex_pw_hash(scheme, pw, strlen(pw), iters, o, CULEX_PW_ENCODED_MAX), 0);
    return o;
}

static th_plugin *load2(const char *pw_file, const char *acl_file, char *err, size_t errlen)
{
    culex_option opts[2];
    size_t n = 0;
    if (pw_file)
        opts[n++] = (culex_option){"password_file", pw_file};
    if (acl_file)
        opts[n++] = (culex_option){"acl_file", acl_file};
    return th_load(AUTH_FILE_SO, opts, n, err, errlen);
}

static th_plugin *load_ok(const char *pw_file, const char *acl_file)
{
    char err[1024] = "";
    th_plugin *p = load2(pw_file, acl_file, err, sizeof(err));
    if (!p)
        CX_FAIL_("auth_file failed to load: %s", err);
    return p;
}

static void reload2(th_plugin *p, const char *pw_file, const char *acl_file)
{
    culex_option opts[2];
    size_t n = 0;
    if (pw_file)
        opts[n++] = (culex_option){"password_file", pw_file};
    if (acl_file)
        opts[n++] = (culex_option){"acl_file", acl_file};
    th_reload(p, opts, n);
}

#define CHECK_LOG(p, needle)                                                            \
    do {                                                                                \
        if (!th_log_has((p), (needle)))                                                 \
            CX_FAIL_("log lacks \"%s\"; log:\n%s", (needle), th_log(p));                \
    } while (0)

#define CHECK_ERR_HAS(err, needle)                                                      \
    do {                                                                                \
        if (!strstr((err), (needle)))                                                   \
            CX_FAIL_("error \"%s\" lacks \"%s\"", (err), (needle));                     \
    } while (0)

static const char *ACL_TEXT =
    "# anonymous clients\n"
    "topic read public/#\n"
    "\n"
    "user alice\n"
    "topic readwrite alice/#\n"
    "topic deny alice/secret\n"
    "topic write shared/in\n"
    "\n"
    "pattern read devices/%%c/cmd\n"
    "pattern write devices/%%u/state\n";

/* ------------------------------------------------------------ loading */

static void test_registers_hooks(void)
{
    const char *pw = tmp_path("pw"), *acl = tmp_path("acl");
    write_file(pw, "alice:%s\n", hash_of(CULEX_PW_SHA512, "secret"));
    write_file(acl, ACL_TEXT);
    th_plugin *p = load_ok(pw, acl);
    CHECK_STR_EQ(th_name(p), "auth_file");
    CHECK_INT_EQ(th_abi_minor(p), CULEX_ABI_MINOR);
    CHECK(th_has_hook(p, CULEX_EV_AUTH_BASIC));
    CHECK(th_hook_flags(p, CULEX_EV_AUTH_BASIC) & CULEX_HOOK_BLOCKING);
    CHECK(th_has_hook(p, CULEX_EV_ACL));
    CHECK_INT_EQ(th_hook_flags(p, CULEX_EV_ACL), 0);
    CHECK(th_has_hook(p, CULEX_EV_RELOAD));
    CHECK_LOG(p, ": 1 user\n");
    th_unload(p);
}

static void test_password_only_has_no_acl_hook(void)
{
    const char *pw = tmp_path("pw");
    write_file(pw, "alice:%s\n", hash_of(CULEX_PW_SHA512, "secret"));
    th_plugin *p = load_ok(pw, NULL);
    CHECK(th_has_hook(p, CULEX_EV_AUTH_BASIC));
    CHECK(!th_has_hook(p, CULEX_EV_ACL));
    CHECK_INT_EQ(th_acl(p, "c1", "alice", CULEX_ACCESS_PUBLISH, "any"), CULEX_DEFER);
    th_unload(p);
}

static void test_acl_only_defers_auth(void)
{
    const char *acl = tmp_path("acl");
    write_file(acl, ACL_TEXT);
    th_plugin *p = load_ok(NULL, acl);
    CHECK(!th_has_hook(p, CULEX_EV_AUTH_BASIC));
    CHECK(th_has_hook(p, CULEX_EV_ACL));
    CHECK_INT_EQ(th_auth(p, "c1", "alice", "whatever"), CULEX_DEFER);
    CHECK_INT_EQ(th_auth(p, "c1", NULL, NULL), CULEX_DEFER);
    th_unload(p);
}

static void test_unknown_option_is_an_error(void)
{
    char err[1024] = "";
    culex_option opts[] = {{"pasword_file", "/etc/passwd"}};
    CHECK(th_load(AUTH_FILE_SO, opts, 1, err, sizeof(err)) == NULL);
    CHECK_ERR_HAS(err, "pasword_file");
}

static void test_bad_priority_is_an_error(void)
{
    const char *pw = tmp_path("pw");
    write_file(pw, "alice:%s\n", hash_of(CULEX_PW_SHA512, "a"));
    char err[1024] = "";
    culex_option opts[] = {{"password_file", pw}, {"priority", "first"}};
    CHECK(th_load(AUTH_FILE_SO, opts, 2, err, sizeof(err)) == NULL);
    CHECK_ERR_HAS(err, "priority");
    opts[1].value = "-10";
    th_plugin *p = th_load(AUTH_FILE_SO, opts, 2, err, sizeof(err));
    CHECK(p != NULL);
    th_unload(p);
}

static void test_no_files_is_an_error(void)
{
    char err[1024] = "";
    CHECK(th_load(AUTH_FILE_SO, NULL, 0, err, sizeof(err)) == NULL);
    CHECK_ERR_HAS(err, "password_file");
}

static void test_empty_path_is_an_error(void)
{
    char err[1024] = "";
    culex_option opts[] = {{"password_file", ""}};
    CHECK(th_load(AUTH_FILE_SO, opts, 1, err, sizeof(err)) == NULL);
    CHECK_ERR_HAS(err, "password_file");
}

static void test_missing_file_is_an_error(void)
{
    char err[1024] = "";
    CHECK(load2("/nonexistent/passwd", NULL, err, sizeof(err)) == NULL);
    CHECK_ERR_HAS(err, "/nonexistent/passwd");
    CHECK(load2(NULL, "/nonexistent/acl", err, sizeof(err)) == NULL);
    CHECK_ERR_HAS(err, "/nonexistent/acl");
}

/* ------------------------------------------------------------ password file */

static void test_mosquitto_passwd_file(void)
{
    if (!have_mosquitto_passwd())
        return;
    const char *pw = tmp_path("pw");
    mosq_passwd(pw, true, "alice", "secret");
    mosq_passwd(pw, false, "bob", "hunter2");
    th_plugin *p = load_ok(pw, NULL);
    CHECK_INT_EQ(th_auth(p, "c1", "alice", "secret"), CULEX_ALLOW);
    CHECK_INT_EQ(th_auth(p, "c1", "bob", "hunter2"), CULEX_ALLOW);
    CHECK_INT_EQ(th_auth(p, "c1", "alice", "hunter2"), CULEX_DENY);
    CHECK_INT_EQ(th_auth(p, "c1", "alice", "secre"), CULEX_DENY);
    CHECK_INT_EQ(th_auth(p, "c1", "alice", ""), CULEX_DENY);
    CHECK_INT_EQ(th_auth(p, "c1", "alice", NULL), CULEX_DENY);
    CHECK_INT_EQ(th_auth(p, "c1", "carol", "secret"), CULEX_DENY);
    CHECK_INT_EQ(th_auth(p, "c1", "", "secret"), CULEX_DENY);
    /* No username: not this plugin's call (allow_anonymous decides). */
    CHECK_INT_EQ(th_auth(p, "c1", NULL, NULL), CULEX_DEFER);
    CHECK_INT_EQ(th_auth(p, "c1", NULL, "secret"), CULEX_DEFER);
    th_unload(p);
}

static void test_binary_password(void)
{
    const char *pw = tmp_path("pw");
    static const char bin[] = {'a', '\0', 'b'};
    char enc[CULEX_PW_ENCODED_MAX];
    CHECK_INT_EQ(culex_pw_hash(CULEX_PW_SHA512_PBKDF2, bin, sizeof(bin), 0, enc, sizeof(enc)),
                 0);
    write_file(pw, "bin:%s\n", enc);
    th_plugin *p = load_ok(pw, NULL);
    culex_client c = {"c1", "bin", "127.0.0.1:1", 4, 1883, NULL};
    culex_ev_auth_basic ev = {sizeof(ev), &c, "c1", "bin", (const uint8_t *)bin, sizeof(bin)};
    CHECK_INT_EQ(th_fire(p, CULEX_EV_AUTH_BASIC, &ev), CULEX_ALLOW);
    ev.password_len = 1; /* "a" alone */
    CHECK_INT_EQ(th_fire(p, CULEX_EV_AUTH_BASIC, &ev), CULEX_DENY);
    th_unload(p);
}

static void test_every_hash_format(void)
{
    static const struct {
        culex_pw_scheme scheme;
        const char *user;
    } formats[] = {
        {CULEX_PW_SHA512_PBKDF2, "u_pbkdf2"},  {CULEX_PW_SHA512, "u_mosq6"},
        {CULEX_PW_ARGON2ID, "u_argon2id"},     {CULEX_PW_PBKDF2_SHA256, "u_goauth256"},
        {CULEX_PW_PBKDF2_SHA512, "u_goauth512"}, {CULEX_PW_BCRYPT, "u_bcrypt"},
        {CULEX_PW_SHA512_CRYPT, "u_crypt6"},   {CULEX_PW_SHA256_CRYPT, "u_crypt5"},
        {CULEX_PW_YESCRYPT, "u_yescrypt"},
    };
    const size_t n = sizeof(formats) / sizeof(formats[0]);
    const char *pw = tmp_path("pw");
    FILE *fp = fopen(pw, "w");
    CHECK(fp != NULL);
    for (size_t i = 0; i < n; i++)
        fprintf(fp, "%s:%s\n", formats[i].user, hash_of(formats[i].scheme, formats[i].user));
    CHECK(fclose(fp) == 0);
    th_plugin *p = load_ok(pw, NULL);
    CHECK_LOG(p, "9 users");
    for (size_t i = 0; i < n; i++) {
        if (th_auth(p, "c", formats[i].user, formats[i].user) != CULEX_ALLOW)
            CX_FAIL_("%s: right password not accepted", formats[i].user);
        if (th_auth(p, "c", formats[i].user, "wrong") != CULEX_DENY)
            CX_FAIL_("%s: wrong password not denied", formats[i].user);
    }
    th_unload(p);
}

static void test_comments_blanks_and_blanks_around_fields(void)
{
    const char *pw = tmp_path("pw");
    write_file(pw,
               "# a comment\n"
               "\n"
               "   \t\n"
               "  # an indented comment\n"
               "  alice:%s  \n"
               "bob : %s\r\n"
               "\tcarol:%s",  /* no final newline */
               hash_of(CULEX_PW_SHA512, "a"), hash_of(CULEX_PW_SHA512, "b"),
               hash_of(CULEX_PW_SHA512, "c"));
    th_plugin *p = load_ok(pw, NULL);
    CHECK_INT_EQ(th_auth(p, "c1", "alice", "a"), CULEX_ALLOW);
    CHECK_INT_EQ(th_auth(p, "c1", "bob", "b"), CULEX_ALLOW);
    CHECK_INT_EQ(th_auth(p, "c1", "carol", "c"), CULEX_ALLOW);
    CHECK_INT_EQ(th_auth(p, "c1", "bob ", "b"), CULEX_DENY);
    CHECK_LOG(p, "3 users");
    CHECK(!th_log_has(p, "WARNING"));
    th_unload(p);
}

static void test_plain_text_entry_is_dropped_with_a_warning(void)
{
    const char *pw = tmp_path("pw");
    write_file(pw,
               "alice:%s\n"
               "admin:admin\n"
               "bob:%s\n",
               hash_of(CULEX_PW_SHA512, "a"), hash_of(CULEX_PW_SHA512, "b"));
    th_plugin *p = load_ok(pw, NULL);
    char want[400];
    snprintf(want, sizeof(want),
             "WARNING %s:2: Invalid password hash type for user admin, removing entry.", pw);
    CHECK_LOG(p, want);
    CHECK_INT_EQ(th_auth(p, "c1", "admin", "admin"), CULEX_DENY);
    CHECK_INT_EQ(th_auth(p, "c1", "alice", "a"), CULEX_ALLOW);
    CHECK_INT_EQ(th_auth(p, "c1", "bob", "b"), CULEX_ALLOW);
    th_unload(p);
}

static void test_empty_fields_are_dropped_with_a_warning(void)
{
    const char *pw = tmp_path("pw");
    write_file(pw, ":%s\nalice:\nbob:%s\n", hash_of(CULEX_PW_SHA512, "x"),
               hash_of(CULEX_PW_SHA512, "b"));
    th_plugin *p = load_ok(pw, NULL);
    char want[400];
    snprintf(want, sizeof(want), "%s:1: Invalid line in password file", pw);
    CHECK_LOG(p, want);
    snprintf(want, sizeof(want), "%s:2: Invalid password hash for user alice", pw);
    CHECK_LOG(p, want);
    CHECK_INT_EQ(th_auth(p, "c1", "alice", ""), CULEX_DENY);
    CHECK_INT_EQ(th_auth(p, "c1", "bob", "b"), CULEX_ALLOW);
    th_unload(p);
}

static void test_line_without_colon_is_an_error(void)
{
    const char *pw = tmp_path("pw");
    write_file(pw, "# users\nalice:%s\ngarbage line\n", hash_of(CULEX_PW_SHA512, "a"));
    char err[1024] = "";
    CHECK(load2(pw, NULL, err, sizeof(err)) == NULL);
    char want[300];
    snprintf(want, sizeof(want), "%s:3:", pw);
    CHECK_ERR_HAS(err, want);
}

static void test_later_line_for_a_user_wins(void)
{
    const char *pw = tmp_path("pw");
    write_file(pw, "bob:%s\nalice:%s\nbob:%s\n", hash_of(CULEX_PW_SHA512, "old"),
               hash_of(CULEX_PW_SHA512, "a"), hash_of(CULEX_PW_SHA512, "new"));
    th_plugin *p = load_ok(pw, NULL);
    CHECK_INT_EQ(th_auth(p, "c1", "bob", "new"), CULEX_ALLOW);
    CHECK_INT_EQ(th_auth(p, "c1", "bob", "old"), CULEX_DENY);
    CHECK_INT_EQ(th_auth(p, "c1", "alice", "a"), CULEX_ALLOW);
    CHECK_LOG(p, "user bob is defined again on line 3");
    CHECK_LOG(p, "2 users");
    th_unload(p);
}

static void test_empty_password_file_denies_every_user(void)
{
    const char *pw = tmp_path("pw");
    write_file(pw, "");
    th_plugin *p = load_ok(pw, NULL);
    CHECK_INT_EQ(th_auth(p, "c1", "alice", "a"), CULEX_DENY);
    CHECK_INT_EQ(th_auth(p, "c1", NULL, NULL), CULEX_DEFER);
    th_unload(p);
}

/* ------------------------------------------------------------ acl file */

static void test_acl_semantics(void)
{
    const char *acl = tmp_path("acl");
    write_file(acl, ACL_TEXT);
    th_plugin *p = load_ok(NULL, acl);
    /* anonymous section */
    CHECK_INT_EQ(th_acl(p, "c1", NULL, CULEX_ACCESS_RECEIVE, "public/news"), CULEX_ALLOW);
    CHECK_INT_EQ(th_acl(p, "c1", NULL, CULEX_ACCESS_PUBLISH, "public/news"), CULEX_DENY);
    CHECK_INT_EQ(th_acl(p, "c1", NULL, CULEX_ACCESS_PUBLISH, "alice/x"), CULEX_DENY);
    /* a user's section, deny first */
    CHECK_INT_EQ(th_acl(p, "c1", "alice", CULEX_ACCESS_PUBLISH, "alice/x"), CULEX_ALLOW);
    CHECK_INT_EQ(th_acl(p, "c1", "alice", CULEX_ACCESS_RECEIVE, "alice/x/y"), CULEX_ALLOW);
    CHECK_INT_EQ(th_acl(p, "c1", "alice", CULEX_ACCESS_PUBLISH, "alice/secret"), CULEX_DENY);
    CHECK_INT_EQ(th_acl(p, "c1", "alice", CULEX_ACCESS_RECEIVE, "alice/secret"), CULEX_DENY);
    CHECK_INT_EQ(th_acl(p, "c1", "alice", CULEX_ACCESS_PUBLISH, "shared/in"), CULEX_ALLOW);
    CHECK_INT_EQ(th_acl(p, "c1", "alice", CULEX_ACCESS_RECEIVE, "shared/in"), CULEX_DENY);
    /* the anonymous section is not for users */
    CHECK_INT_EQ(th_acl(p, "c1", "alice", CULEX_ACCESS_RECEIVE, "public/news"), CULEX_DENY);
    /* patterns, %c and %u */
    CHECK_INT_EQ(th_acl(p, "dev9", "bob", CULEX_ACCESS_RECEIVE, "devices/dev9/cmd"),
                 CULEX_ALLOW);
    CHECK_INT_EQ(th_acl(p, "dev9", "bob", CULEX_ACCESS_RECEIVE, "devices/dev8/cmd"),
                 CULEX_DENY);
    CHECK_INT_EQ(th_acl(p, "dev9", "bob", CULEX_ACCESS_PUBLISH, "devices/bob/state"),
                 CULEX_ALLOW);
    CHECK_INT_EQ(th_acl(p, "dev9", "bob", CULEX_ACCESS_PUBLISH, "devices/alice/state"),
                 CULEX_DENY);
    CHECK_INT_EQ(th_acl(p, "dev9", NULL, CULEX_ACCESS_PUBLISH, "devices/bob/state"),
                 CULEX_DENY);
    /* Mosquitto's acl_file lets every (un)subscription through and filters deliveries. */
    CHECK_INT_EQ(th_acl(p, "c1", NULL, CULEX_ACCESS_SUBSCRIBE, "alice/#"), CULEX_ALLOW);
    CHECK_INT_EQ(th_acl(p, "c1", NULL, CULEX_ACCESS_UNSUBSCRIBE, "alice/#"), CULEX_ALLOW);
    /* $ topics need a $ rule */
    CHECK_INT_EQ(th_acl(p, "c1", "alice", CULEX_ACCESS_RECEIVE, "$SYS/broker/uptime"),
                 CULEX_DENY);
    th_unload(p);
}

static void test_acl_error_names_file_and_line(void)
{
    const char *acl = tmp_path("acl");
    write_file(acl, "topic read a/#\nuser alice\nfrobnicate x\n");
    char err[1024] = "";
    CHECK(load2(NULL, acl, err, sizeof(err)) == NULL);
    char want[300];
    snprintf(want, sizeof(want), "%s:3", acl);
    CHECK_ERR_HAS(err, want);
}

/* ------------------------------------------------------------ reload */

static void test_reload_reads_both_files_again(void)
{
    const char *pw = tmp_path("pw"), *acl = tmp_path("acl");
    write_file(pw, "alice:%s\n", hash_of(CULEX_PW_SHA512, "a"));
    write_file(acl, "user alice\ntopic readwrite a/#\n");
    th_plugin *p = load_ok(pw, acl);
    CHECK_INT_EQ(th_auth(p, "c1", "bob", "b"), CULEX_DENY);
    CHECK_INT_EQ(th_acl(p, "c1", "alice", CULEX_ACCESS_PUBLISH, "b/1"), CULEX_DENY);

    write_file(pw, "bob:%s\n", hash_of(CULEX_PW_SHA512, "b"));
    write_file(acl, "user alice\ntopic readwrite b/#\n");
    reload2(p, pw, acl);
    CHECK_INT_EQ(th_auth(p, "c1", "bob", "b"), CULEX_ALLOW);
    CHECK_INT_EQ(th_auth(p, "c1", "alice", "a"), CULEX_DENY);
    CHECK_INT_EQ(th_acl(p, "c1", "alice", CULEX_ACCESS_PUBLISH, "b/1"), CULEX_ALLOW);
    CHECK_INT_EQ(th_acl(p, "c1", "alice", CULEX_ACCESS_PUBLISH, "a/1"), CULEX_DENY);
    CHECK_LOG(p, "reloaded");
    th_unload(p);
}

static void test_reload_of_broken_files_keeps_the_old_data(void)
{
    const char *pw = tmp_path("pw"), *acl = tmp_path("acl");
    write_file(pw, "alice:%s\n", hash_of(CULEX_PW_SHA512, "a"));
    write_file(acl, "user alice\ntopic readwrite a/#\n");
    th_plugin *p = load_ok(pw, acl);

    write_file(pw, "bob:%s\nno colon here\n", hash_of(CULEX_PW_SHA512, "b"));
    write_file(acl, "user alice\ntopic readwrite b/#\nbogus line\n");
    th_log_clear(p);
    reload2(p, pw, acl);
    char want[400];
    snprintf(want, sizeof(want), "ERR reload: %s:2:", pw);
    CHECK_LOG(p, want);
    snprintf(want, sizeof(want), "ERR reload: %s:3", acl);
    CHECK_LOG(p, want);
    CHECK_LOG(p, "keeping the password_file loaded from");
    CHECK_INT_EQ(th_auth(p, "c1", "alice", "a"), CULEX_ALLOW);
    CHECK_INT_EQ(th_auth(p, "c1", "bob", "b"), CULEX_DENY);
    CHECK_INT_EQ(th_acl(p, "c1", "alice", CULEX_ACCESS_PUBLISH, "a/1"), CULEX_ALLOW);
    CHECK_INT_EQ(th_acl(p, "c1", "alice", CULEX_ACCESS_PUBLISH, "b/1"), CULEX_DENY);

    /* A vanished file is kept too. */
    CHECK(unlink(pw) == 0);
    th_log_clear(p);
    reload2(p, pw, acl);
    CHECK_LOG(p, "No such file");
    CHECK_INT_EQ(th_auth(p, "c1", "alice", "a"), CULEX_ALLOW);

    /* Fixed files are picked up by the next reload. */
    write_file(pw, "bob:%s\n", hash_of(CULEX_PW_SHA512, "b"));
    write_file(acl, "user alice\ntopic readwrite b/#\n");
    reload2(p, pw, acl);
    CHECK_INT_EQ(th_auth(p, "c1", "bob", "b"), CULEX_ALLOW);
    CHECK_INT_EQ(th_acl(p, "c1", "alice", CULEX_ACCESS_PUBLISH, "b/1"), CULEX_ALLOW);
    th_unload(p);
}

static void test_reload_follows_a_changed_path(void)
{
    const char *pw = tmp_path("pw"), *pw2 = tmp_path("pw2");
    write_file(pw, "alice:%s\n", hash_of(CULEX_PW_SHA512, "a"));
    write_file(pw2, "bob:%s\n", hash_of(CULEX_PW_SHA512, "b"));
    th_plugin *p = load_ok(pw, NULL);
    reload2(p, pw2, NULL);
    CHECK_INT_EQ(th_auth(p, "c1", "bob", "b"), CULEX_ALLOW);
    CHECK_INT_EQ(th_auth(p, "c1", "alice", "a"), CULEX_DENY);
    /* A broken new path keeps the old file. */
    reload2(p, "/nonexistent/pw", NULL);
    CHECK_INT_EQ(th_auth(p, "c1", "bob", "b"), CULEX_ALLOW);
    char want[300];
    snprintf(want, sizeof(want), "keeping the password_file loaded from %s", pw2);
    CHECK_LOG(p, want);
    th_unload(p);
}

static void test_reload_with_bad_options_keeps_everything(void)
{
    const char *pw = tmp_path("pw"), *acl = tmp_path("acl");
    write_file(pw, "alice:%s\n", hash_of(CULEX_PW_SHA512, "a"));
    th_plugin *p = load_ok(pw, NULL);
    culex_option bad[] = {{"password_file", pw}, {"pasword_file", pw}};
    th_reload(p, bad, 2);
    CHECK_LOG(p, "pasword_file");
    CHECK_INT_EQ(th_auth(p, "c1", "alice", "a"), CULEX_ALLOW);
    /* Adding a file needs a restart; removing one keeps it. */
    write_file(acl, "topic read x\n");
    reload2(p, pw, acl);
    CHECK_LOG(p, "plugin_opt_acl_file was added");
    CHECK(!th_has_hook(p, CULEX_EV_ACL));
    reload2(p, NULL, NULL);
    CHECK_LOG(p, "plugin_opt_password_file was removed");
    CHECK_INT_EQ(th_auth(p, "c1", "alice", "a"), CULEX_ALLOW);
    th_unload(p);
}

/* Readers on several threads while the main thread reloads: "stable" is in every version
 * of both files, so every check of it must succeed whichever table a reader gets; a torn or
 * freed table would fail a check or trip AddressSanitizer. */
typedef struct hammer {
    th_plugin *p;
    atomic_bool *stop;
    long checks;
    long failures;
} hammer;

static void *hammer_run(void *arg)
{
    hammer *h = arg;
    while (!atomic_load(h->stop)) {
        if (th_auth(h->p, "c1", "stable", "s") != CULEX_ALLOW)
            h->failures++;
        if (th_acl(h->p, "c1", "stable", CULEX_ACCESS_PUBLISH, "stable/x") != CULEX_ALLOW)
            h->failures++;
        if (th_acl(h->p, "c1", "stable", CULEX_ACCESS_PUBLISH, "other/x") != CULEX_DENY)
            h->failures++;
        h->checks++;
    }
    return NULL;
}

static void write_versioned(const char *pw, const char *acl, int version, const char *stable)
{
    FILE *fp = fopen(pw, "w");
    CHECK(fp != NULL);
    for (int i = 0; i < 300; i++)
        fprintf(fp, "user%d_%d:%s\n", version, i, stable);
    fprintf(fp, "stable:%s\n", stable);
    CHECK(fclose(fp) == 0);
    fp = fopen(acl, "w");
    CHECK(fp != NULL);
    for (int i = 0; i < 300; i++)
        fprintf(fp, "user user%d_%d\ntopic readwrite v%d/%d/#\n", version, i, version, i);
    fprintf(fp, "user stable\ntopic readwrite stable/#\n");
    CHECK(fclose(fp) == 0);
}

static void test_reload_while_checking_on_other_threads(void)
{
    char pws[2][256], acls[2][256];
    const char *stable = hash_of(CULEX_PW_SHA512, "s");
    char stable_copy[CULEX_PW_ENCODED_MAX];
    snprintf(stable_copy, sizeof(stable_copy), "%s", stable);
    for (int v = 0; v < 2; v++) {
        char n[16];
        snprintf(n, sizeof(n), "pw%d", v);
        snprintf(pws[v], sizeof(pws[v]), "%s", tmp_path(n));
        snprintf(n, sizeof(n), "acl%d", v);
        snprintf(acls[v], sizeof(acls[v]), "%s", tmp_path(n));
        write_versioned(pws[v], acls[v], v, stable_copy);
    }
    th_plugin *p = load_ok(pws[0], acls[0]);
    atomic_bool stop = false;
    hammer hs[4];
    pthread_t tids[4];
    for (int i = 0; i < 4; i++) {
        hs[i] = (hammer){p, &stop, 0, 0};
        CHECK_INT_EQ(pthread_create(&tids[i], NULL, hammer_run, &hs[i]), 0);
    }
    for (int r = 0; r < 200; r++)
        reload2(p, pws[(r + 1) % 2], acls[(r + 1) % 2]);
    atomic_store(&stop, true);
    long checks = 0, failures = 0;
    for (int i = 0; i < 4; i++) {
        CHECK_INT_EQ(pthread_join(tids[i], NULL), 0);
        checks += hs[i].checks;
        failures += hs[i].failures;
    }
    printf("# %ld checks on 4 threads during 200 reloads\n", checks);
    CHECK(checks > 0);
    CHECK_INT_EQ(failures, 0);
    CHECK(!th_log_has(p, "ERR"));
    th_unload(p);
}

CX_TEST_MAIN(
    CX_TEST(registers_hooks),
    CX_TEST(password_only_has_no_acl_hook),
    CX_TEST(acl_only_defers_auth),
    CX_TEST(unknown_option_is_an_error),
    CX_TEST(bad_priority_is_an_error),
    CX_TEST(no_files_is_an_error),
    CX_TEST(empty_path_is_an_error),
    CX_TEST(missing_file_is_an_error),
    CX_TEST(mosquitto_passwd_file),
    CX_TEST(binary_password),
    CX_TEST(every_hash_format),
    CX_TEST(comments_blanks_and_blanks_around_fields),
    CX_TEST(plain_text_entry_is_dropped_with_a_warning),
    CX_TEST(empty_fields_are_dropped_with_a_warning),
    CX_TEST(line_without_colon_is_an_error),
    CX_TEST(later_line_for_a_user_wins),
    CX_TEST(empty_password_file_denies_every_user),
    CX_TEST(acl_semantics),
    CX_TEST(acl_error_names_file_and_line),
    CX_TEST(reload_reads_both_files_again),
    CX_TEST(reload_of_broken_files_keeps_the_old_data),
    CX_TEST(reload_follows_a_changed_path),
    CX_TEST(reload_with_bad_options_keeps_everything),
    CX_TEST(reload_while_checking_on_other_threads),
)
