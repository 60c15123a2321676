/* test_config.c: the mosquitto.conf reader: defaults, typed setters, tokenising, include_dir,
 * listener resolution, mosquitto 2's start-up rules, refusals, error format and reload. Each
 * test writes its files into its own temporary directory. */
#include <ftw.h>
#include <stdarg.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <syslog.h>

#include "config/conf_table.h"
#include "config/config.h"
#include "cx_test.h"
#include "util/err.h"
#include "util/log.h"

/* ---- fixtures --------------------------------------------------------------------------- */

static char tmpdir[64];
static char paths[16][256];
static int npaths;

static int rm_cb(const char *p, const struct stat *st, int flag, struct FTW *ftw)
{
    return remove(p);
}

static void cleanup(void)
{
    if (tmpdir[0])
        nftw(tmpdir, rm_cb, 8, FTW_DEPTH | FTW_PHYS);
}

static const char *dir(void)
{
    if (!tmpdir[0]) {
        snprintf(tmpdir, sizeof tmpdir, "/tmp/cx_config_XXXXXX");
        CHECK(mkdtemp(tmpdir) != NULL);
        atexit(cleanup);
    }
    return tmpdir;
}

/* Writes `content` (exact bytes) to dir()/name; returns the path. */
static const char *write_file_n(const char *name, const char *content, size_t len)
{
    char *p = paths[npaths++ % 16];
    snprintf(p, 256, "%s/%s", dir(), name);
    char *slash = strrchr(p, '/');
    *slash = '\0';
    mkdir(p, 0700);
    *slash = '/';
    FILE *f = fopen(p, "wb");
    CHECK(f != NULL);
    CHECK(fwrite(content, 1, len, f) == len);
    fclose(f);
    return p;
}

static const char *write_file(const char *name, const char *content)
{
    return write_file_n(name, content, strlen(content));
}

static char err[4096];

/* Loads `content` as main.conf into a new config; returns the rc, *out the config. */
static int load(const char *content, cx_config_t **out)
{
    const char *path = write_file("main.conf", content);
    cx_config_t *cfg = cx_config_new();
    CHECK(cfg != NULL);
    int rc = cx_config_load(cfg, path, err, sizeof err);
    *out = cfg;
    return rc;
}

/* Loads and finishes a file that must be accepted. */
static cx_config_t *load_ok(const char *content)
{
    cx_config_t *cfg;
    int rc = load(content, &cfg);
    if (rc != 0)
        CX_FAIL_("unexpected error: %s", err);
    CHECK_INT_EQ(cx_config_finish(cfg, NULL, 0, err, sizeof err), 0);
    return cfg;
}

/* Loads a file that must be refused; returns the error text. */
static const char *load_err(const char *content)
{
    cx_config_t *cfg;
    int rc = load(content, &cfg);
    if (rc != CX_ECONFIG)
        CX_FAIL_("expected CX_ECONFIG, got %d for:\n%s", rc, content);
    cx_config_free(cfg);
    return err;
}

#define CHECK_HAS(hay, needle)                                                          \
    do {                                                                                \
        const char *h_ = (hay), *n_ = (needle);                                         \
        if (!strstr(h_, n_))                                                            \
            CX_FAIL_("\"%s\" not found in \"%s\"", n_, h_);                             \
    } while (0)

/* Log capture through the topic sink. */
static char logbuf[8192];
static size_t loglen;

static void sink(void *ud, unsigned type, const char *line, size_t len)
{
    if (loglen + len + 2 < sizeof logbuf) {
        memcpy(logbuf + loglen, line, len);
        loglen += len;
        logbuf[loglen++] = '\n';
        logbuf[loglen] = '\0';
    }
}

static void capture_log(void)
{
    cx_log_settings_t s = {.types = CX_LOG_ALL, .dests = CX_LOGDEST_TOPIC, .timestamp = false};
    cx_log_set_topic_sink(sink, NULL);
    CHECK_INT_EQ(cx_log_configure(&s), 0);
    loglen = 0;
    logbuf[0] = '\0';
}

/* True when s is dir()/ followed by text: an error line naming a file of this test. */
static bool starts_in_dir(const char *s, const char *text)
{
    size_t n = strlen(dir());
    return strncmp(s, dir(), n) == 0 && s[n] == '/' && strncmp(s + n + 1, text, strlen(text)) == 0;
}

static int count(const char *hay, const char *needle)
{
    int n = 0;
    for (const char *p = hay; (p = strstr(p, needle)) != NULL; p += strlen(needle))
        n++;
    return n;
}

/* ---- defaults --------------------------------------------------------------------------- */

static void test_defaults(void)
{
    cx_config_t *c = cx_config_new();
    CHECK(c != NULL);
    CHECK(c->allow_duplicate_messages);
    CHECK(c->allow_zero_length_clientid);
    CHECK(c->auto_id_prefix == NULL);
    CHECK(c->check_retain_source);
    CHECK(c->connection_messages);
    CHECK_INT_EQ(c->global_max_clients, -1);
    CHECK_INT_EQ(c->global_max_connections, -1);
    CHECK_INT_EQ(c->max_inflight_bytes, 0);
    CHECK_INT_EQ(c->max_inflight_messages, 20);
    CHECK_INT_EQ(c->max_keepalive, 0);
    CHECK_INT_EQ(c->max_packet_size, 2000000);
    CHECK_INT_EQ(c->max_queued_bytes, 0);
    CHECK_INT_EQ(c->max_queued_messages, 1000);
    CHECK_INT_EQ(c->memory_limit, 0);
    CHECK_INT_EQ(c->message_size_limit, 0);
    CHECK_INT_EQ(c->packet_buffer_size, 4096);
    CHECK_INT_EQ(c->persistent_client_expiration, 0);
    CHECK(c->pid_file == NULL);
    CHECK(!c->queue_qos0_messages);
    CHECK(c->retain_available);
    CHECK_INT_EQ(c->retain_expiry_interval, 0);
    CHECK(!c->set_tcp_nodelay);
    CHECK_INT_EQ(c->sys_interval, 10);
    CHECK(!c->upgrade_outgoing_qos);
    CHECK_STR_EQ(c->user, "mosquitto");
    CHECK(!c->per_listener_settings);
    CHECK_INT_EQ(c->allow_anonymous, -1);
    CHECK(c->workers >= 1);
    CHECK_INT_EQ(c->log_type, CX_LOG_ERR | CX_LOG_WARNING | CX_LOG_NOTICE | CX_LOG_INFO);
    CHECK_INT_EQ(c->log_dest, CX_LOGDEST_STDERR);
    CHECK(c->log_file == NULL);
    CHECK_INT_EQ(c->log_facility, LOG_DAEMON);
    CHECK(c->log_timestamp);
    CHECK(c->log_timestamp_format == NULL);
    CHECK(!c->persistence);
    CHECK(c->persistence_file == NULL); /* culex.db */
    CHECK_INT_EQ(c->persistence_sync, 1);
    CHECK_INT_EQ(c->persistence_batch_ms, 100);
    CHECK(c->persistence_location == NULL);
    CHECK_INT_EQ(c->autosave_interval, 1800);
    CHECK(!c->autosave_on_changes);
    CHECK_INT_EQ(c->listener_count, 0);
    CHECK(c->local_only);
    CHECK(c->config_file == NULL);
    cx_config_free(c);
}

static void test_listener_defaults(void)
{
    cx_config_t *c = load_ok("listener 1883\n");
    CHECK_INT_EQ(c->listener_count, 1);
    cx_listener_conf_t *l = &c->listeners[0];
    CHECK_INT_EQ(l->port, 1883);
    CHECK(l->bind_address == NULL && l->unix_socket == NULL && l->bind_interface == NULL);
    CHECK_INT_EQ(l->socket_domain, AF_UNSPEC);
    CHECK_INT_EQ(l->protocol, CX_PROTO_MQTT);
    CHECK_INT_EQ(l->accept_protocol_versions, CX_CONF_PROTO_ALL);
    CHECK_INT_EQ(l->max_connections, -1);
    CHECK_INT_EQ(l->max_qos, 2);
    CHECK_INT_EQ(l->max_topic_alias, 10);
    CHECK_INT_EQ(l->max_topic_alias_broker, 10);
    CHECK(l->mount_point == NULL);
    CHECK_INT_EQ(l->packet_buffer_size, 4096);
    CHECK_STR_EQ(l->listener_auto_id_prefix, "auto-");
    CHECK(!l->allow_anonymous); /* a listener is configured: anonymous off */
    CHECK(l->allow_zero_length_clientid);
    CHECK(!l->use_username_as_clientid);
    CHECK_INT_EQ(l->line, 1);
    CHECK_HAS(l->file, "main.conf");
    CHECK(!c->local_only);
    CHECK_HAS(c->config_file, "main.conf");
    CHECK_INT_EQ(c->conf_file_count, 1);
    cx_config_free(c);
}

/* ---- typed setters ---------------------------------------------------------------------- */

static void test_bool_setter(void)
{
    cx_config_t *c = load_ok("retain_available false\nqueue_qos0_messages true\n"
                             "set_tcp_nodelay 1\nconnection_messages 0\n");
    CHECK(!c->retain_available);
    CHECK(c->queue_qos0_messages);
    CHECK(c->set_tcp_nodelay);
    CHECK(!c->connection_messages);
    cx_config_free(c);
    CHECK_HAS(load_err("retain_available yes\n"),
              "main.conf:1: retain_available: invalid value 'yes' (expected true or false)");
    CHECK_HAS(load_err("retain_available True\n"), "invalid value 'True'");
    CHECK_HAS(load_err("retain_available\n"), "main.conf:1: retain_available: missing value");
}

static void test_key_equals_value(void)
{
    /* corpus 072 */
    CHECK_HAS(load_err("listener 1883\nallow_anonymous = false\n"),
              "main.conf:2: allow_anonymous: write `name value`");
    CHECK_HAS(load_err("pid_file = /run/x.pid\n"), "main.conf:1: pid_file: write `name value`");
    CHECK_HAS(load_err("allow_anonymous=false\n"),
              "main.conf:1: allow_anonymous=false: unknown directive (write `name value`, "
              "without '=')");
}

static void test_int_setter(void)
{
    cx_config_t *c = load_ok("max_inflight_messages 100\nsys_interval 0\nmax_keepalive 65535\n"
                             "max_queued_messages -5\nglobal_max_clients -20\n"
                             "listener 1883\nmax_connections -7\nmax_qos 1\n"
                             "max_topic_alias 0\nmax_topic_alias_broker 100\n");
    CHECK_INT_EQ(c->max_inflight_messages, 100);
    CHECK_INT_EQ(c->sys_interval, 0);
    CHECK_INT_EQ(c->max_keepalive, 65535);
    CHECK_INT_EQ(c->max_queued_messages, 0); /* negative means 0 (no limit), as mosquitto */
    CHECK_INT_EQ(c->global_max_clients, -1);
    CHECK_INT_EQ(c->listeners[0].max_connections, -1);
    CHECK_INT_EQ(c->listeners[0].max_qos, 1);
    CHECK_INT_EQ(c->listeners[0].max_topic_alias, 0);
    CHECK_INT_EQ(c->listeners[0].max_topic_alias_broker, 100);
    cx_config_free(c);
    CHECK_HAS(load_err("max_inflight_messages 70000\n"),
              "main.conf:1: max_inflight_messages: value 70000 out of range (0..65535)");
    CHECK_HAS(load_err("sys_interval ten\n"),
              "sys_interval: invalid value 'ten' (expected an integer)");
    CHECK_HAS(load_err("sys_interval 10s\n"), "invalid value '10s'");
    CHECK_HAS(load_err("max_keepalive -1\n"), "value -1 out of range (0..65535)");
    CHECK_HAS(load_err("listener 1\nmax_qos 3\n"),
              "main.conf:2: max_qos: value 3 out of range (0..2)");
    CHECK_HAS(load_err("workers 0\n"), "workers: value 0 out of range (1..1024)");
    CHECK_HAS(load_err("sys_interval 99999999999999999999\n"), "invalid value");
    c = load_ok("workers 3\n");
    CHECK_INT_EQ(c->workers, 3);
    cx_config_free(c);
}

static void test_size_setter(void)
{
    cx_config_t *c = load_ok("max_packet_size 4096 # 4 KiB\nmemory_limit 1000000\n"
                             "max_queued_bytes -1\nmax_inflight_bytes 65536\n"
                             "message_size_limit 1048576\npacket_buffer_size 8192\n"
                             "listener 1883\n");
    CHECK_INT_EQ(c->max_packet_size, 4096);
    CHECK_INT_EQ(c->memory_limit, 1000000);
    CHECK_INT_EQ(c->max_queued_bytes, 0);
    CHECK_INT_EQ(c->max_inflight_bytes, 65536);
    CHECK_INT_EQ(c->message_size_limit, 1048576);
    CHECK_INT_EQ(c->packet_buffer_size, 8192);
    CHECK_INT_EQ(c->listeners[0].packet_buffer_size, 8192);
    cx_config_free(c);
    CHECK_HAS(load_err("max_packet_size 19\n"), "value 19 out of range (20..");
    CHECK_HAS(load_err("max_packet_size 2M\n"), "invalid value '2M' (expected an integer)");
    CHECK_HAS(load_err("memory_limit -1\n"), "memory_limit: value -1 out of range");
    CHECK_HAS(load_err("message_size_limit 268435456\n"), "out of range (0..268435455)");
    /* mosquitto 2.1 reads websockets_headers_size as packet_buffer_size */
    c = load_ok("websockets_headers_size 1024\n");
    CHECK_INT_EQ(c->packet_buffer_size, 1024);
    cx_config_free(c);
}

static void test_duration_setter(void)
{
    static const struct {
        const char *v;
        long long s;
    } ok[] = {{"14d", 14 * 86400}, {"2h", 7200}, {"1y", 365 * 86400}, {"3w", 21 * 86400},
              {"2m", 60 * 86400}, {"90s", 90}, {"3600", 3600}};
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        char text[64];
        snprintf(text, sizeof text, "persistent_client_expiration %s\n", ok[i].v);
        cx_config_t *c = load_ok(text);
        CHECK_INT_EQ(c->persistent_client_expiration, ok[i].s);
        cx_config_free(c);
    }
    CHECK_HAS(load_err("persistent_client_expiration 5x\n"), "invalid duration '5x'");
    CHECK_HAS(load_err("persistent_client_expiration d\n"), "invalid duration 'd'");
    CHECK_HAS(load_err("persistent_client_expiration 0d\n"), "out of range");
    CHECK_HAS(load_err("persistent_client_expiration -1h\n"), "out of range");
}

static void test_string_and_path_setters(void)
{
    cx_config_t *c = load_ok("pid_file /tmp/my broker.pid\n"
                             "log_timestamp_format %Y-%m-%d %H:%M:%S\n"
                             "user first\nuser   mqtt  \n"
                             "persistence_location /var/lib/culex/\n"
                             "clientid_prefixes sec-\n");
    CHECK_STR_EQ(c->pid_file, "/tmp/my broker.pid"); /* the rest of the line, as mosquitto */
    CHECK_STR_EQ(c->log_timestamp_format, "%Y-%m-%d %H:%M:%S");
    CHECK_STR_EQ(c->user, "mqtt"); /* last one wins, blanks trimmed */
    CHECK_STR_EQ(c->persistence_location, "/var/lib/culex/");
    CHECK_STR_EQ(c->clientid_prefixes, "sec-");
    cx_config_free(c);
    CHECK_HAS(load_err("pid_file\n"), "main.conf:1: pid_file: missing value");
    CHECK_HAS(load_err("user \xff\xfe\n"), "user: value is not valid UTF-8");
    CHECK_HAS(load_err("listener 1883\nlistener_auto_id_prefix "
                       "0123456789012345678901234567890123456789012345678901\n"),
              "listener_auto_id_prefix: value longer than 50 characters");
}

static void test_enum_setter(void)
{
    cx_config_t *c =
        load_ok("listener 1883\nsocket_domain ipv4\nlistener 1884\nsocket_domain ipv6\n");
    CHECK_INT_EQ(c->listeners[0].socket_domain, AF_INET);
    CHECK_INT_EQ(c->listeners[1].socket_domain, AF_INET6);
    cx_config_free(c);
    CHECK_HAS(load_err("listener 1883\nsocket_domain ipv5\n"),
              "socket_domain: invalid value 'ipv5' (expected one of: ipv4, ipv6)");
}

/* ---- tokenising ------------------------------------------------------------------------- */

static void test_trailing_comments(void)
{
    /* corpus 060, 061, 074 */
    cx_config_t *c = load_ok("listener 1883 # plain MQTT\n"
                             "allow_anonymous true  # Omogućava anonimne konekcije\n"
                             "max_packet_size 4096 # 4 KiB\n"
                             "log_type all  # Abilita tutti i tipi di log\n"
                             "log_dest file /mosquitto/log/mosquitto.log  # Specifica\n"
                             "log_dest stdout  # console\n");
    CHECK(c->listeners[0].bind_address == NULL);
    CHECK(c->listeners[0].allow_anonymous);
    CHECK_INT_EQ(c->max_packet_size, 4096);
    CHECK_INT_EQ(c->log_type, CX_LOG_ALL);
    /* mosquitto takes the rest of a `log_dest file` line as the path, comment included */
    CHECK_STR_EQ(c->log_file, "/mosquitto/log/mosquitto.log  # Specifica");
    CHECK_INT_EQ(c->log_dest, CX_LOGDEST_FILE | CX_LOGDEST_STDOUT);
    cx_config_free(c);
}

static void test_line_endings(void)
{
    const char text[] = "\xEF\xBB\xBF# written on Windows\r\n"
                        "listener 1883\r\n"
                        "\r\n"
                        "   # indented comment\r\n"
                        "\tmax_connections 5 \t\r\n"
                        "mount_point site/\r\n"
                        "allow_anonymous true"; /* no final newline */
    const char *path = write_file_n("crlf.conf", text, sizeof text - 1);
    cx_config_t *c = cx_config_new();
    CHECK_INT_EQ(cx_config_load(c, path, err, sizeof err), 0);
    CHECK_INT_EQ(c->listener_count, 1);
    CHECK_INT_EQ(c->listeners[0].max_connections, 5);
    CHECK_STR_EQ(c->listeners[0].mount_point, "site/");
    CHECK(c->listeners[0].allow_anonymous);
    CHECK_INT_EQ(c->listeners[0].line, 2);
    cx_config_free(c);

    const char nul[] = "listener 1883\nsys_in\0terval 5\n";
    path = write_file_n("nul.conf", nul, sizeof nul - 1);
    c = cx_config_new();
    CHECK_INT_EQ(cx_config_load(c, path, err, sizeof err), CX_ECONFIG);
    CHECK_HAS(err, "nul.conf:2: line contains a NUL byte");
    cx_config_free(c);
}

static void test_extra_values_warn(void)
{
    capture_log();
    cx_config_t *c = load_ok("listener 1883\nmax_connections 10 20\nmax_connections 30 40\n");
    CHECK_INT_EQ(c->listeners[0].max_connections, 30);
    CHECK_HAS(logbuf, "main.conf:2: max_connections: ignoring extra value '20'");
    CHECK_INT_EQ(count(logbuf, "ignoring extra value"), 1); /* once per directive */
    cx_config_free(c);
}

static void test_missing_file(void)
{
    cx_config_t *c = cx_config_new();
    char path[300];
    snprintf(path, sizeof path, "%s/nope.conf", dir());
    CHECK_INT_EQ(cx_config_load(c, path, err, sizeof err), CX_ECONFIG);
    CHECK_HAS(err, "nope.conf: cannot open: No such file or directory");
    cx_config_free(c);
}

/* ---- include_dir ------------------------------------------------------------------------ */

static void test_include_dir(void)
{
    static const char *names[] = {"b.conf", "A.conf", "01.conf", "a.conf", "B.conf", "00.conf"};
    char name[64], body[64];
    for (int i = 0; i < 6; i++) {
        snprintf(name, sizeof name, "conf.d/%s", names[i]);
        snprintf(body, sizeof body, "listener %d\n", 2000 + i);
        write_file(name, body);
    }
    write_file("conf.d/zz.conf.sample", "this is not a config file\n");
    write_file("conf.d/README", "nor this\n");
    char main_text[512];
    snprintf(main_text, sizeof main_text, "sys_interval 5\ninclude_dir %s/conf.d\nmax_qos 1\n",
             dir());
    cx_config_t *c = load_ok(main_text);
    /* mosquitto's order: 00 01 A a B b */
    static const int expect[] = {2005, 2002, 2001, 2003, 2004, 2000};
    CHECK_INT_EQ(c->listener_count, 6);
    for (int i = 0; i < 6; i++)
        CHECK_INT_EQ(c->listeners[i].port, expect[i]);
    CHECK_HAS(c->listeners[0].file, "conf.d/00.conf");
    CHECK_INT_EQ(c->listeners[0].line, 1);
    /* the main file goes on after include_dir, with the last listener current */
    CHECK_INT_EQ(c->listeners[5].max_qos, 1);
    CHECK_INT_EQ(c->conf_file_count, 7);
    cx_config_free(c);
}

static void test_include_dir_errors(void)
{
    char text[512];
    snprintf(text, sizeof text, "include_dir %s/missing.d\n", dir());
    CHECK_HAS(load_err(text), "main.conf:1: include_dir: cannot open directory");

    write_file("nested.d/x.conf", "include_dir /tmp\n");
    snprintf(text, sizeof text, "include_dir %s/nested.d\n", dir());
    CHECK_HAS(load_err(text),
              "nested.d/x.conf:1: include_dir: only valid in the main configuration file");

    write_file("bad.d/a.conf", "listener 1883\nmax_qos 7\n");
    write_file("bad.d/b.conf", "bogus 1\n");
    snprintf(text, sizeof text, "include_dir %s/bad.d\nbogus_in_main 1\n", dir());
    const char *e = load_err(text);
    CHECK_HAS(e, "bad.d/a.conf:2: max_qos: value 7 out of range");
    CHECK(strstr(e, "b.conf") == NULL); /* stops at the first hard error */
    CHECK(strstr(e, "bogus_in_main") == NULL);

    /* include_dir must not load the main file again */
    write_file("self.d/main.conf", "listener 1\n");
    snprintf(text, sizeof text, "include_dir %s/self.d\n", dir());
    const char *path = write_file("self.d/main.conf", text);
    cx_config_t *c = cx_config_new();
    CHECK_INT_EQ(cx_config_load(c, path, err, sizeof err), CX_ECONFIG);
    CHECK_HAS(err, "include_dir must not contain it");
    cx_config_free(c);

    /* an empty directory is fine */
    write_file("empty.d/.keep", "");
    snprintf(text, sizeof text, "include_dir %s/empty.d\nlistener 1883\n", dir());
    c = load_ok(text);
    cx_config_free(c);
}

/* ---- listeners and security resolution -------------------------------------------------- */

static void test_listener_forms(void)
{
    cx_config_t *c = load_ok("listener 0 /run/culex.sock\nlistener 1884 127.0.0.1\n"
                             "listener 1885 ::1\naccept_protocol_versions 3, 4\n"
                             "listener 1886\naccept_protocol_versions 5 # v5 only\n"
                             "bind_interface eth0\nuse_username_as_clientid true\n"
                             "mount_point tenant/a/\nprotocol mqtt\n");
    CHECK_INT_EQ(c->listener_count, 4);
    CHECK_INT_EQ(c->listeners[0].port, 0);
    CHECK_STR_EQ(c->listeners[0].unix_socket, "/run/culex.sock");
    CHECK(c->listeners[0].bind_address == NULL);
    CHECK_STR_EQ(c->listeners[1].bind_address, "127.0.0.1");
    CHECK_STR_EQ(c->listeners[2].bind_address, "::1");
    CHECK_INT_EQ(c->listeners[2].accept_protocol_versions, CX_CONF_PROTO_V31 | CX_CONF_PROTO_V311);
    cx_listener_conf_t *l = &c->listeners[3];
    CHECK_INT_EQ(l->accept_protocol_versions, CX_CONF_PROTO_V5);
    CHECK_STR_EQ(l->bind_interface, "eth0");
    CHECK(l->use_username_as_clientid);
    CHECK_STR_EQ(l->mount_point, "tenant/a/");
    CHECK_INT_EQ(l->protocol, CX_PROTO_MQTT);
    cx_config_free(c);

    CHECK_HAS(load_err("listener 0\n"), "main.conf:1: listener: port 0 needs a unix socket path");
    CHECK_HAS(load_err("listener 70000\n"), "listener: invalid port '70000' (expected 0..65535)");
    CHECK_HAS(load_err("listener\n"), "listener: missing value");
    CHECK_HAS(load_err("listener 1883\naccept_protocol_versions 6\n"),
              "accept_protocol_versions: invalid protocol version '6'");
    CHECK_HAS(load_err("listener 1883\nmount_point a/#\n"), "a mount point cannot contain + or #");
    CHECK_HAS(load_err("listener 1883\nprotocol smtp\n"),
              "protocol: invalid value 'smtp' (expected mqtt, websockets or http_api)");
}

static void test_listener_scope(void)
{
    /* listener-only directives without a listener */
    CHECK_HAS(load_err("mount_point x/\n"),
              "main.conf:1: mount_point: only valid after a `listener` line");
    CHECK_HAS(load_err("listener_allow_anonymous true\n"), "only valid after a `listener` line");
    CHECK_HAS(load_err("max_topic_alias 5\n"), "only valid after a `listener` line");
    /* accept_protocol_versions needs an explicit listener, not the default one */
    CHECK_HAS(load_err("port 1884\naccept_protocol_versions 5\n"),
              "main.conf:2: accept_protocol_versions: only valid after a `listener` line");
    /* others configure mosquitto's implicit default listener on 1883 */
    cx_config_t *c = load_ok("max_connections 5\nlistener 1885\nmax_connections 7\n");
    CHECK_INT_EQ(c->listener_count, 2);
    CHECK_INT_EQ(c->listeners[0].port, 1883);
    CHECK_INT_EQ(c->listeners[0].max_connections, 5);
    CHECK_INT_EQ(c->listeners[1].port, 1885);
    CHECK_INT_EQ(c->listeners[1].max_connections, 7);
    cx_config_free(c);
}

static void test_port_and_bind_address(void)
{
    capture_log();
    cx_config_t *c = load_ok("port 1884\nbind_address 127.0.0.1\nport 1885\nmax_qos 1\n");
    CHECK(!c->local_only);
    CHECK_INT_EQ(c->listener_count, 1);
    CHECK_INT_EQ(c->listeners[0].port, 1885);
    CHECK_STR_EQ(c->listeners[0].bind_address, "127.0.0.1");
    CHECK_INT_EQ(c->listeners[0].max_qos, 1);
    CHECK_INT_EQ(count(logbuf, "port: deprecated"), 1); /* once, though given twice */
    CHECK_HAS(logbuf, "main.conf:1: port: deprecated: use `listener PORT`");
    CHECK_HAS(logbuf, "bind_address: deprecated");
    CHECK_HAS(logbuf, "main.conf:3: port: the default listener's port is set more than once");
    cx_config_free(c);

    /* each kind of warning is given once per directive, independently */
    capture_log();
    c = load_ok("port 1884 1885\n");
    CHECK_HAS(logbuf, "port: deprecated");
    CHECK_HAS(logbuf, "port: ignoring extra value '1885'");
    cx_config_free(c);

    /* `port` together with listeners: both exist, as in mosquitto */
    c = load_ok("listener 8883\nport 1883\n");
    CHECK_INT_EQ(c->listener_count, 2);
    CHECK_INT_EQ(c->listeners[1].port, 1883);
    cx_config_free(c);
    /* bind_address alone also leaves local-only mode: default port 1883 */
    c = load_ok("bind_address 10.0.0.1\n");
    CHECK(!c->local_only);
    CHECK_INT_EQ(c->listener_count, 1);
    CHECK_INT_EQ(c->listeners[0].port, 1883);
    CHECK_STR_EQ(c->listeners[0].bind_address, "10.0.0.1");
    cx_config_free(c);
    CHECK_HAS(load_err("port 0\n"), "port: invalid port '0' (expected 1..65535)");
}

static void test_global_security(void)
{
    cx_config_t *c = load_ok("allow_anonymous true\nallow_zero_length_clientid false\n"
                             "auto_id_prefix g-\n"
                             "listener 1883\n"
                             "listener 1884\nlistener_allow_anonymous false\n"
                             "listener_auto_id_prefix l-\n");
    CHECK_INT_EQ(c->allow_anonymous, 1);
    CHECK(c->listeners[0].allow_anonymous);
    CHECK(!c->listeners[1].allow_anonymous);
    CHECK_INT_EQ(c->listeners[1].listener_allow_anonymous, 0);
    CHECK(!c->listeners[0].allow_zero_length_clientid);
    CHECK(!c->listeners[1].allow_zero_length_clientid);
    CHECK_STR_EQ(c->listeners[0].listener_auto_id_prefix, "g-");
    CHECK_STR_EQ(c->listeners[1].listener_auto_id_prefix, "l-");
    cx_config_free(c);

    /* allow_anonymous after a listener line is still global without per_listener_settings */
    c = load_ok("listener 1883\nallow_anonymous true\nlistener 1884\n");
    CHECK(c->listeners[0].allow_anonymous && c->listeners[1].allow_anonymous);
    cx_config_free(c);
}

static void test_per_listener_settings(void)
{
    cx_config_t *c = load_ok("per_listener_settings true\n"
                             "listener 1883\nallow_anonymous true\nauto_id_prefix a-\n"
                             "listener 1884\nallow_zero_length_clientid false\n");
    CHECK(c->per_listener_settings);
    CHECK_INT_EQ(c->allow_anonymous, -1);
    CHECK(c->listeners[0].allow_anonymous);
    CHECK(!c->listeners[1].allow_anonymous); /* unset: false */
    CHECK(c->listeners[0].allow_zero_length_clientid);
    CHECK(!c->listeners[1].allow_zero_length_clientid);
    CHECK_STR_EQ(c->listeners[0].listener_auto_id_prefix, "a-");
    CHECK_STR_EQ(c->listeners[1].listener_auto_id_prefix, "auto-");
    cx_config_free(c);

    CHECK_HAS(load_err("allow_anonymous false\nper_listener_settings true\n"),
              "main.conf:2: per_listener_settings: must come before allow_anonymous");
    /* once on, it stays on */
    c = load_ok("per_listener_settings true\nper_listener_settings false\nlistener 1\n");
    CHECK(c->per_listener_settings);
    cx_config_free(c);

    /* corpus 019: a security option before any listener. mosquitto 2.0 ignores it (2.1
     * refuses the file); culex ignores it with a warning. */
    capture_log();
    c = load_ok("per_listener_settings true\nallow_anonymous true\nlistener 1883\n");
    CHECK(!c->listeners[0].allow_anonymous);
    CHECK_HAS(logbuf, "main.conf:2: allow_anonymous: ignored: with per_listener_settings true");
    cx_config_free(c);
}

/* ---- mosquitto 2 start-up rules --------------------------------------------------------- */

static void test_local_only_without_file(void)
{
    cx_config_t *c = cx_config_new();
    CHECK_INT_EQ(cx_config_finish(c, NULL, 0, err, sizeof err), 0);
    CHECK(c->local_only);
    CHECK_INT_EQ(c->listener_count, 2);
    CHECK_STR_EQ(c->listeners[0].bind_address, "127.0.0.1");
    CHECK_INT_EQ(c->listeners[0].socket_domain, AF_INET);
    CHECK_STR_EQ(c->listeners[1].bind_address, "::1");
    CHECK_INT_EQ(c->listeners[1].socket_domain, AF_INET6);
    for (int i = 0; i < 2; i++) {
        CHECK_INT_EQ(c->listeners[i].port, 1883);
        CHECK(c->listeners[i].allow_anonymous);
        CHECK(c->listeners[i].file == NULL);
        CHECK_STR_EQ(c->listeners[i].listener_auto_id_prefix, "auto-");
    }
    cx_config_free(c);

    int ports[] = {1884, 1885};
    c = cx_config_new();
    CHECK_INT_EQ(cx_config_finish(c, ports, 2, err, sizeof err), 0);
    CHECK_INT_EQ(c->listener_count, 4);
    CHECK_INT_EQ(c->listeners[0].port, 1884);
    CHECK_INT_EQ(c->listeners[1].port, 1884);
    CHECK_INT_EQ(c->listeners[3].port, 1885);
    /* finish is idempotent */
    CHECK_INT_EQ(cx_config_finish(c, ports, 2, err, sizeof err), 0);
    CHECK_INT_EQ(c->listener_count, 4);
    cx_config_free(c);
}

static void test_local_only_with_file(void)
{
    cx_config_t *c = load_ok("allow_anonymous false\nmax_connections 3\n");
    CHECK(c->local_only);
    CHECK_INT_EQ(c->listener_count, 2); /* the implicit default listener is dropped */
    CHECK(!c->listeners[0].allow_anonymous);
    CHECK_INT_EQ(c->listeners[0].max_connections, -1);
    cx_config_free(c);

    c = load_ok("log_type all\n");
    CHECK(c->local_only);
    CHECK(c->listeners[0].allow_anonymous && c->listeners[1].allow_anonymous);
    cx_config_free(c);

    /* -p is ignored once the file defines listeners */
    capture_log();
    cx_config_t *d;
    CHECK_INT_EQ(load("listener 1999\n", &d), 0);
    int ports[] = {1884};
    CHECK_INT_EQ(cx_config_finish(d, ports, 1, err, sizeof err), 0);
    CHECK_INT_EQ(d->listener_count, 1);
    CHECK_INT_EQ(d->listeners[0].port, 1999);
    CHECK(!d->listeners[0].allow_anonymous);
    CHECK_HAS(logbuf, "-p ignored");
    cx_config_free(d);
}

static void test_cli_ports(void)
{
    int p = 0;
    CHECK_INT_EQ(cx_config_parse_cli_port("1883", &p), 0);
    CHECK_INT_EQ(p, 1883);
    CHECK_INT_EQ(cx_config_parse_cli_port("65535", &p), 0);
    CHECK_INT_EQ(cx_config_parse_cli_port("0", &p), CX_ECONFIG);
    CHECK_INT_EQ(cx_config_parse_cli_port("65536", &p), CX_ECONFIG);
    CHECK_INT_EQ(cx_config_parse_cli_port("-1", &p), CX_ECONFIG);
    CHECK_INT_EQ(cx_config_parse_cli_port("12ab", &p), CX_ECONFIG);
    CHECK_INT_EQ(cx_config_parse_cli_port("", &p), CX_ECONFIG);

    cx_config_t *c = cx_config_new();
    int bad[] = {0};
    CHECK_INT_EQ(cx_config_finish(c, bad, 1, err, sizeof err), CX_ECONFIG);
    CHECK_HAS(err, "-p: invalid port 0");
    int many[11] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11};
    CHECK_INT_EQ(cx_config_finish(c, many, 11, err, sizeof err), CX_ECONFIG);
    CHECK_HAS(err, "-p: at most 10 ports");
    cx_config_free(c);
}

/* ---- logging directives ----------------------------------------------------------------- */

static void test_logging(void)
{
    cx_config_t *c = load_ok("log_dest stdout\nlog_dest syslog\nlog_dest topic\n"
                             "log_type error\nlog_type warning\nlog_type subscribe\n"
                             "log_facility 5\nlog_timestamp false\n");
    CHECK_INT_EQ(c->log_dest, CX_LOGDEST_STDOUT | CX_LOGDEST_SYSLOG | CX_LOGDEST_TOPIC);
    CHECK_INT_EQ(c->log_type, CX_LOG_ERR | CX_LOG_WARNING | CX_LOG_SUBSCRIBE);
    CHECK_INT_EQ(c->log_facility, LOG_LOCAL5);
    CHECK(!c->log_timestamp);
    cx_log_settings_t ls;
    cx_config_log_settings(c, &ls);
    CHECK_INT_EQ(ls.dests, c->log_dest);
    CHECK_INT_EQ(ls.types, c->log_type);
    CHECK_INT_EQ(ls.syslog_facility, LOG_LOCAL5);
    CHECK(!ls.timestamp);
    cx_config_free(c);

    c = load_ok("log_dest stderr\nlog_dest none\nlog_type debug\nlog_type none\n");
    CHECK_INT_EQ(c->log_dest, 0);
    CHECK_INT_EQ(c->log_type, 0);
    cx_config_free(c);

    c = load_ok("log_dest file /var/log/culex broker.log\n");
    CHECK_STR_EQ(c->log_file, "/var/log/culex broker.log");
    CHECK_INT_EQ(c->log_dest, CX_LOGDEST_FILE);
    cx_config_free(c);

    CHECK_HAS(load_err("log_dest file /a\nlog_dest file /b\n"),
              "main.conf:2: log_dest: only one `log_dest file` is allowed");
    CHECK_HAS(load_err("log_dest file\n"), "`log_dest file` needs a path");
    CHECK_HAS(load_err("log_dest printer\n"), "log_dest: invalid value 'printer'");
    CHECK_HAS(load_err("log_type chatty\n"), "log_type: invalid value 'chatty'");
    CHECK_HAS(load_err("log_facility 8\n"), "log_facility: invalid value '8' (expected 0..7");
}

static void test_retain_expiry_and_misc(void)
{
    cx_config_t *c = load_ok("retain_expiry_interval 2\nautosave_interval -5\n"
                             "autosave_on_changes true\npersistence false\n"
                             "persistence_file culex.db\nretained_persistence false\n");
    CHECK_INT_EQ(c->retain_expiry_interval, 120);
    CHECK_INT_EQ(c->autosave_interval, 0);
    CHECK(c->autosave_on_changes);
    CHECK(!c->persistence);
    CHECK_STR_EQ(c->persistence_file, "culex.db");
    cx_config_free(c);
    CHECK_HAS(load_err("retain_expiry_interval 0\n"), "out of range (1 or more minutes)");
}

static void test_obsolete_and_deprecated(void)
{
    capture_log();
    cx_config_t *c = load_ok("retry_interval 20\nretry_interval 30\nmessage_size_limit 100\n"
                             "allow_duplicate_messages false\n");
    CHECK_INT_EQ(count(logbuf, "retry_interval: deprecated: has no effect"), 1);
    CHECK_HAS(logbuf, "main.conf:3: message_size_limit: deprecated: use max_packet_size");
    CHECK_HAS(logbuf, "allow_duplicate_messages: deprecated");
    CHECK(!c->allow_duplicate_messages);
    cx_config_free(c);
}

/* ---- plugins ------------------------------------------------------------------------------ */

/* The value of option `name` of p, or NULL. */
static const char *opt(const cx_plugin_conf_t *p, const char *name)
{
    for (size_t i = 0; i < p->option_count; i++)
        if (strcmp(p->options[i].name, name) == 0)
            return p->options[i].value;
    return NULL;
}

static void test_plugin_forms(void)
{
    capture_log();
    cx_config_t *c = load_ok("listener 1883\n"
                             "plugin /usr/lib/culex/a.so\n"
                             "plugin_opt_config_file /etc/a.json\n"
                             "plugin_opt_mode  fast and safe\n"
                             "auth_plugin_deny_special_chars false\n"
                             "auth_plugin /mosquitto/go-auth.so\n"
                             "auth_opt_backends files, postgres, jwt\n"
                             "plugin_opt_log_level debug\n"
                             "global_plugin /opt/g.so\n");
    CHECK_INT_EQ(c->plugin_count, 3);
    cx_plugin_conf_t *p = &c->plugins[0];
    CHECK_STR_EQ(p->path, "/usr/lib/culex/a.so");
    CHECK(p->builtin == NULL && p->name == NULL);
    CHECK_INT_EQ(p->listener, CX_PLUGIN_GLOBAL);
    CHECK_INT_EQ(p->option_count, 2);
    CHECK_STR_EQ(p->options[0].name, "config_file"); /* file order, prefix removed */
    CHECK_STR_EQ(p->options[0].value, "/etc/a.json");
    CHECK_STR_EQ(p->options[1].name, "mode");
    CHECK_STR_EQ(p->options[1].value, "fast and safe"); /* inner blanks kept */
    CHECK(!p->deny_special_chars);
    CHECK_HAS(p->file, "main.conf");
    CHECK_INT_EQ(p->line, 2);
    CHECK(p->uses == NULL && p->use_count == 0);
    /* auth_plugin: auth_opt_ and plugin_opt_ both belong to it, as in mosquitto */
    p = &c->plugins[1];
    CHECK_STR_EQ(p->path, "/mosquitto/go-auth.so");
    CHECK_INT_EQ(p->option_count, 2);
    CHECK_STR_EQ(opt(p, "backends"), "files, postgres, jwt");
    CHECK_STR_EQ(opt(p, "log_level"), "debug");
    CHECK(p->deny_special_chars); /* per plugin; default true */
    CHECK_INT_EQ(p->line, 6);
    p = &c->plugins[2];
    CHECK_STR_EQ(p->path, "/opt/g.so");
    CHECK_INT_EQ(p->option_count, 0);
    CHECK(p->options == NULL);
    CHECK_HAS(logbuf, "main.conf:6: auth_plugin: deprecated: use plugin");
    CHECK_HAS(logbuf, "main.conf:7: auth_opt_backends: deprecated: use plugin_opt_*");
    cx_config_free(c);

    /* the path is the rest of the line, as for every path */
    c = load_ok("listener 1883\nplugin C:/Program Files/culex/x.dll\n");
    CHECK_STR_EQ(c->plugins[0].path, "C:/Program Files/culex/x.dll");
    cx_config_free(c);

    /* no plugins: nothing */
    c = load_ok("listener 1883\n");
    CHECK(c->plugins == NULL && c->plugin_count == 0);
    cx_config_free(c);
}

static void test_plugin_load_use(void)
{
    capture_log();
    cx_config_t *c = load_ok("per_listener_settings true\n"
                             "plugin_load dynsec /usr/lib/dynsec.so\n"
                             "plugin_opt_config_file /var/lib/dynsec.json\n"
                             "listener 1883\n"
                             "plugin_use dynsec\n"
                             "listener 1884\n"
                             "listener 1885\n"
                             "plugin_use dynsec\n"
                             "plugin_opt_later yes\n"
                             "plugin_load unused /usr/lib/u.so\n");
    CHECK_INT_EQ(c->plugin_count, 2);
    cx_plugin_conf_t *p = &c->plugins[0];
    CHECK_STR_EQ(p->name, "dynsec");
    CHECK_STR_EQ(p->path, "/usr/lib/dynsec.so");
    CHECK_INT_EQ(p->listener, CX_PLUGIN_NAMED);
    CHECK_INT_EQ(p->use_count, 2);
    CHECK_INT_EQ(p->uses[0], 0);
    CHECK_INT_EQ(p->uses[1], 2);
    /* plugin_use makes the named instance current, as in mosquitto 2.1 */
    CHECK_INT_EQ(p->option_count, 2);
    CHECK_STR_EQ(opt(p, "config_file"), "/var/lib/dynsec.json");
    CHECK_STR_EQ(opt(p, "later"), "yes");
    CHECK_INT_EQ(p->line, 2);
    CHECK_STR_EQ(c->plugins[1].name, "unused");
    CHECK_INT_EQ(c->plugins[1].use_count, 0);
    CHECK_HAS(logbuf, "main.conf:10: plugin_load: no listener uses plugin 'unused'");
    cx_config_free(c);

    /* plugin_use attaches whatever per_listener_settings says; the path may hold blanks */
    c = load_ok("plugin_load a   /opt/my plugins/a.so\nlistener 1\nplugin_use a # comment\n");
    CHECK_STR_EQ(c->plugins[0].path, "/opt/my plugins/a.so");
    CHECK_INT_EQ(c->plugins[0].use_count, 1);
    CHECK_INT_EQ(c->plugins[0].uses[0], 0);
    cx_config_free(c);
}

static void test_plugin_scopes(void)
{
    /* per_listener_settings true: a plugin after a listener is that listener's */
    capture_log();
    cx_config_t *c = load_ok("per_listener_settings true\n"
                             "plugin /p/early.so\n"
                             "listener 1883\n"
                             "plugin /p/l0.so\n"
                             "listener 1884\n"
                             "auth_plugin /p/l1.so\n"
                             "global_plugin /p/g.so\n");
    CHECK_INT_EQ(c->plugin_count, 4);
    /* load order: global instances first (file order), then per-listener ones */
    CHECK_STR_EQ(c->plugins[0].path, "/p/early.so");
    CHECK_INT_EQ(c->plugins[0].listener, CX_PLUGIN_GLOBAL);
    CHECK_STR_EQ(c->plugins[1].path, "/p/g.so");
    CHECK_INT_EQ(c->plugins[1].listener, CX_PLUGIN_GLOBAL);
    CHECK_STR_EQ(c->plugins[2].path, "/p/l0.so");
    CHECK_INT_EQ(c->plugins[2].listener, 0);
    CHECK_STR_EQ(c->plugins[3].path, "/p/l1.so");
    CHECK_INT_EQ(c->plugins[3].listener, 1);
    /* before any listener it is global, loudly */
    CHECK_HAS(logbuf, "main.conf:2: plugin: with per_listener_settings true and no `listener` "
                      "line before it, this applies to every listener");
    CHECK(strstr(logbuf, "global_plugin: with") == NULL); /* says so itself */
    cx_config_free(c);

    /* per_listener_settings false: every plugin is global, wherever it is */
    c = load_ok("listener 1883\nplugin /p/a.so\nlistener 1884\nplugin /p/b.so\n");
    CHECK_INT_EQ(c->plugin_count, 2);
    CHECK_INT_EQ(c->plugins[0].listener, CX_PLUGIN_GLOBAL);
    CHECK_INT_EQ(c->plugins[1].listener, CX_PLUGIN_GLOBAL);
    CHECK_STR_EQ(c->plugins[1].path, "/p/b.so");
    cx_config_free(c);

    /* the implicit default listener (port) takes per-listener plugins like any listener */
    c = load_ok("per_listener_settings true\nport 1999\nplugin /p/d.so\n");
    CHECK_INT_EQ(c->plugins[0].listener, 0);
    CHECK_INT_EQ(c->listeners[0].port, 1999);
    cx_config_free(c);

    /* ... but local-only mode drops it, and so the plugins given for it */
    capture_log();
    c = load_ok("per_listener_settings true\nmax_connections 5\nplugin /p/d.so\n"
                "password_file /p/pw\nglobal_plugin /p/g.so\n");
    CHECK(c->local_only);
    CHECK_INT_EQ(c->plugin_count, 1);
    CHECK_STR_EQ(c->plugins[0].path, "/p/g.so");
    CHECK_HAS(logbuf, "main.conf:3: plugin /p/d.so ignored: given for the default listener");
    CHECK_HAS(logbuf, "main.conf:4: password_file ignored: given for the default listener");
    cx_config_free(c);

    /* plugins count among the security settings per_listener_settings must precede */
    CHECK_HAS(load_err("plugin /p/a.so\nper_listener_settings true\n"),
              "main.conf:2: per_listener_settings: must come before");
    CHECK_HAS(load_err("password_file /p/pw\nper_listener_settings true\n"),
              "per_listener_settings: must come before");
    /* plugin_load does not: it is attached per listener anyway */
    c = load_ok("plugin_load a /p/a.so\nper_listener_settings true\nlistener 1\n");
    cx_config_free(c);
}

static void test_auth_file(void)
{
    /* password_file and acl_file of one scope share one auth_file instance */
    cx_config_t *c = load_ok("listener 1883\n"
                             "password_file /mosquitto/config/passwd\n"
                             "allow_anonymous false\n"
                             "acl_file /mosquitto/config/acl\n");
    CHECK_INT_EQ(c->plugin_count, 1);
    cx_plugin_conf_t *p = &c->plugins[0];
    CHECK_STR_EQ(p->builtin, "auth_file");
    CHECK(p->path == NULL && p->name == NULL);
    CHECK_INT_EQ(p->listener, CX_PLUGIN_GLOBAL);
    CHECK_INT_EQ(p->option_count, 2);
    CHECK_STR_EQ(p->options[0].name, "password_file");
    CHECK_STR_EQ(p->options[0].value, "/mosquitto/config/passwd");
    CHECK_STR_EQ(p->options[1].name, "acl_file");
    CHECK_STR_EQ(p->options[1].value, "/mosquitto/config/acl");
    CHECK_INT_EQ(p->line, 2);
    CHECK(p->deny_special_chars);
    /* allow_anonymous stays a listener setting */
    CHECK(opt(p, "allow_anonymous") == NULL);
    CHECK(!c->listeners[0].allow_anonymous);
    cx_config_free(c);

    /* per_listener_settings true: one instance per listener (corpus 076, 059) */
    c = load_ok("per_listener_settings true\n"
                "listener 1883\nallow_anonymous true\n"
                "listener 8883\nallow_anonymous false\n"
                "password_file /m/passwd\nacl_file /m/acl\n"
                "listener 9001\nacl_file /m/acl9001\n");
    CHECK_INT_EQ(c->plugin_count, 2);
    CHECK_INT_EQ(c->plugins[0].listener, 1);
    CHECK_STR_EQ(opt(&c->plugins[0], "password_file"), "/m/passwd");
    CHECK_STR_EQ(opt(&c->plugins[0], "acl_file"), "/m/acl");
    CHECK_INT_EQ(c->plugins[1].listener, 2);
    CHECK_INT_EQ(c->plugins[1].option_count, 1);
    CHECK_STR_EQ(opt(&c->plugins[1], "acl_file"), "/m/acl9001");
    CHECK(c->listeners[0].allow_anonymous && !c->listeners[1].allow_anonymous);
    cx_config_free(c);

    /* per_listener_settings false: after different listeners, still one global instance */
    c = load_ok("listener 1883\npassword_file /m/passwd\nlistener 1884\nacl_file /m/acl\n");
    CHECK_INT_EQ(c->plugin_count, 1);
    CHECK_INT_EQ(c->plugins[0].listener, CX_PLUGIN_GLOBAL);
    CHECK_INT_EQ(c->plugins[0].option_count, 2);
    cx_config_free(c);

    /* given twice in a scope: the last one wins (mosquitto 2.1), with a warning */
    capture_log();
    c = load_ok("listener 1883\npassword_file /a\npassword_file /b\n");
    CHECK_INT_EQ(c->plugins[0].option_count, 1);
    CHECK_STR_EQ(opt(&c->plugins[0], "password_file"), "/b");
    CHECK_HAS(logbuf, "main.conf:3: password_file: given more than once for every listener; "
                      "'/b' replaces '/a'");
    cx_config_free(c);

    /* before any listener with per_listener_settings true: global, loudly */
    capture_log();
    c = load_ok("per_listener_settings true\nacl_file /m/acl\nlistener 1883\n");
    CHECK_INT_EQ(c->plugins[0].listener, CX_PLUGIN_GLOBAL);
    CHECK_HAS(logbuf, "main.conf:2: acl_file: with per_listener_settings true and no");
    cx_config_free(c);

    /* plugins of a scope run before its password and ACL files: auth_file comes last in load
     * order; password_file does not take the options of the plugin before it */
    c = load_ok("listener 1883\n"
                "password_file /m/passwd\n"
                "plugin /p/a.so\n"
                "acl_file /m/acl\n"
                "plugin_opt_key value\n");
    CHECK_INT_EQ(c->plugin_count, 2);
    CHECK_STR_EQ(c->plugins[0].path, "/p/a.so");
    CHECK_STR_EQ(opt(&c->plugins[0], "key"), "value");
    CHECK_STR_EQ(c->plugins[1].builtin, "auth_file");
    CHECK_INT_EQ(c->plugins[1].option_count, 2);
    cx_config_free(c);

    /* an option needs a plugin line; password_file is not one */
    CHECK_HAS(load_err("listener 1883\npassword_file /m/passwd\nplugin_opt_x y\n"),
              "main.conf:3: plugin_opt_x: only valid after a plugin line");
    CHECK_HAS(load_err("listener 1883\npassword_file\n"), "main.conf:2: password_file: missing value");
}

static void test_plugin_errors(void)
{
    /* an option before any plugin names file and line */
    const char *e = load_err("listener 1883\n\nplugin_opt_key value\n");
    CHECK(starts_in_dir(e, "main.conf:3: plugin_opt_key: only valid after a plugin line"));
    CHECK_HAS(load_err("auth_opt_backends files\n"), "main.conf:1: auth_opt_backends: only valid "
                                                      "after a plugin line");
    CHECK_HAS(load_err("auth_plugin_deny_special_chars false\n"), "only valid after a plugin line");
    /* the same option twice in one instance, whatever the prefix */
    CHECK_HAS(load_err("plugin /p/a.so\nplugin_opt_k 1\nplugin_opt_other 2\nplugin_opt_k 3\n"),
              "main.conf:4: plugin_opt_k: option 'k' is given twice for plugin /p/a.so "
              "(declared at ");
    CHECK_HAS(load_err("auth_plugin /p/a.so\nauth_opt_k 1\nplugin_opt_k 1\n"),
              "main.conf:3: plugin_opt_k: option 'k' is given twice");
    /* ... but two instances may each have it */
    cx_config_t *c = load_ok("plugin /p/a.so\nplugin_opt_k 1\nplugin /p/b.so\nplugin_opt_k 2\n");
    CHECK_STR_EQ(opt(&c->plugins[0], "k"), "1");
    CHECK_STR_EQ(opt(&c->plugins[1], "k"), "2");
    cx_config_free(c);
    /* plugin_use of an unknown name, or before its plugin_load */
    CHECK_HAS(load_err("listener 1883\nplugin_use dynsec\n"),
              "main.conf:2: plugin_use: no plugin named 'dynsec' is loaded (a `plugin_load "
              "dynsec PATH` line must come first)");
    CHECK_HAS(load_err("listener 1883\nplugin_use a\nplugin_load a /p/a.so\n"),
              "plugin_use: no plugin named 'a'");
    CHECK_HAS(load_err("plugin_load a /p/a.so\nlistener 1\nplugin_use a\nplugin_use a\n"),
              "main.conf:4: plugin_use: this listener already uses plugin 'a'");
    CHECK_HAS(load_err("plugin_load a /p/a.so\nplugin_use a\n"),
              "main.conf:2: plugin_use: only valid after a `listener` line");
    CHECK_HAS(load_err("plugin_load a /p/a.so\nport 1884\nplugin_use a\n"),
              "plugin_use: only valid after a `listener` line");
    CHECK_HAS(load_err("plugin_load a /p/a.so\nplugin_load a /p/b.so\n"),
              "main.conf:2: plugin_load: a plugin named 'a' is already loaded (");
    CHECK_HAS(load_err("plugin_load a\n"), "plugin_load: missing plugin path");
    CHECK_HAS(load_err("plugin_load a # /p/a.so\n"), "plugin_load: missing plugin path");
    CHECK_HAS(load_err("plugin\n"), "main.conf:1: plugin: missing value");
    CHECK_HAS(load_err("global_plugin\n"), "main.conf:1: global_plugin: missing value");
    CHECK_HAS(load_err("plugin /p/a.so\nplugin_opt_k\n"), "main.conf:2: plugin_opt_k: missing value");
    CHECK_HAS(load_err("plugin /p/a.so\nplugin_opt_\n"), "plugin_opt_: unknown directive");
    CHECK_HAS(load_err("plugin /p/a.so\nauth_plugin_deny_special_chars maybe\n"),
              "auth_plugin_deny_special_chars: invalid value 'maybe'");
    CHECK_HAS(load_err("plugin /p/\xff.so\n"), "plugin: value is not valid UTF-8");
}

/* corpus 018: go-auth options with comments after the value */
static void test_plugin_option_comments(void)
{
    capture_log();
    cx_config_t *c = load_ok("auth_plugin /mosquitto/go-auth.so\n"
                             "auth_opt_hasher pbkdf2\n"
                             "auth_opt_hasher_salt_size 12           # salt bytes length\n"
                             "auth_opt_hasher_iterations 180000      # number of iterations\n"
                             "auth_opt_pg_userquery select password_hash from \"user\" where "
                             "username = $1 and is_active = true limit 1\n"
                             "plugin_opt_trailing value \t \r\n"
                             "plugin_opt_hash #notacomment\n"
                             "plugin_opt_color a#b\n"
                             "listener 1883\n");
    cx_plugin_conf_t *p = &c->plugins[0];
    /* mosquitto passes the rest of the line, comment included, to the plugin */
    CHECK_STR_EQ(opt(p, "hasher_salt_size"), "12           # salt bytes length");
    CHECK_STR_EQ(opt(p, "hasher_iterations"), "180000      # number of iterations");
    CHECK_STR_EQ(opt(p, "pg_userquery"),
                 "select password_hash from \"user\" where username = $1 and is_active = true "
                 "limit 1");
    /* blanks at the end of the line are dropped (mosquitto keeps them) */
    CHECK_STR_EQ(opt(p, "trailing"), "value");
    CHECK_STR_EQ(opt(p, "hash"), "#notacomment");
    CHECK_STR_EQ(opt(p, "color"), "a#b");
    /* and culex says so, once per directive prefix */
    CHECK_HAS(logbuf, "main.conf:3: auth_opt_hasher_salt_size: the value '12           # salt "
                      "bytes length' includes a comment; mosquitto passes it to the plugin");
    CHECK_INT_EQ(count(logbuf, "includes a comment"), 2); /* auth_opt_ once, plugin_opt_ once */
    cx_config_free(c);
}

/* mosquitto scopes the current plugin to its file: include_dir files start with none */
static void test_plugin_include_dir(void)
{
    write_file("plug.d/a.conf", "plugin /p/inc.so\nplugin_opt_from inc\n");
    char text[512];
    snprintf(text, sizeof text,
             "plugin /p/main.so\nplugin_opt_first 1\ninclude_dir %s/plug.d\nplugin_opt_second 2\n",
             dir());
    cx_config_t *c = load_ok(text);
    CHECK_INT_EQ(c->plugin_count, 2);
    CHECK_STR_EQ(c->plugins[0].path, "/p/main.so");
    CHECK_INT_EQ(c->plugins[0].option_count, 2);
    CHECK_STR_EQ(opt(&c->plugins[0], "second"), "2"); /* back to the main file's plugin */
    CHECK_STR_EQ(c->plugins[1].path, "/p/inc.so");
    CHECK_HAS(c->plugins[1].file, "plug.d/a.conf");
    CHECK_INT_EQ(c->plugins[1].line, 1);
    CHECK_STR_EQ(opt(&c->plugins[1], "from"), "inc");
    cx_config_free(c);

    write_file("plug2.d/a.conf", "plugin_opt_orphan x\n");
    snprintf(text, sizeof text, "plugin /p/main.so\ninclude_dir %s/plug2.d\n", dir());
    CHECK_HAS(load_err(text), "plug2.d/a.conf:1: plugin_opt_orphan: only valid after a plugin "
                              "line (plugin, global_plugin, auth_plugin, plugin_load or "
                              "plugin_use) of the same file");
}

static void test_plugin_reload(void)
{
    cx_config_t *live = load_ok("listener 1883\nplugin /p/a.so\nplugin_opt_k old\n"
                                "password_file /m/passwd\n");
    cx_config_t *fresh = load_ok("listener 1883\nplugin /p/a.so\nplugin_opt_k new\n"
                                 "plugin_opt_k2 added\n"
                                 "password_file /m/passwd2\nacl_file /m/acl\n");
    capture_log();
    CHECK_INT_EQ(cx_config_apply_reload(live, fresh), 0);
    /* same instances: the options follow the new file */
    CHECK_INT_EQ(live->plugin_count, 2);
    CHECK_STR_EQ(opt(&live->plugins[0], "k"), "new");
    CHECK_STR_EQ(opt(&live->plugins[0], "k2"), "added");
    CHECK_STR_EQ(opt(&live->plugins[1], "password_file"), "/m/passwd2");
    CHECK_STR_EQ(opt(&live->plugins[1], "acl_file"), "/m/acl");
    CHECK(strstr(logbuf, "plugin changes need a restart") == NULL);
    CHECK_STR_EQ(opt(&fresh->plugins[0], "k"), "new"); /* fresh is intact */
    cx_config_free(fresh);

    /* other instances: kept as they are, and said */
    fresh = load_ok("listener 1883\nplugin /p/b.so\nplugin_opt_k other\n");
    capture_log();
    CHECK_INT_EQ(cx_config_apply_reload(live, fresh), 0);
    CHECK_HAS(logbuf, "reload: plugin changes need a restart");
    CHECK_INT_EQ(live->plugin_count, 2);
    CHECK_STR_EQ(live->plugins[0].path, "/p/a.so");
    CHECK_STR_EQ(opt(&live->plugins[0], "k"), "new");
    cx_config_free(fresh);
    cx_config_free(live);

    /* deny_special_chars is not reloaded (mosquitto): a change needs a restart */
    live = load_ok("listener 1\nplugin /p/a.so\n");
    fresh = load_ok("listener 1\nplugin /p/a.so\nauth_plugin_deny_special_chars false\n");
    capture_log();
    CHECK_INT_EQ(cx_config_apply_reload(live, fresh), 0);
    CHECK_HAS(logbuf, "reload: plugin changes need a restart");
    CHECK(live->plugins[0].deny_special_chars);
    cx_config_free(fresh);
    cx_config_free(live);
}

/* ---- refusals --------------------------------------------------------------------------- */

static void test_not_supported_families(void)
{
    static const struct {
        const char *text;
        const char *expect;
    } cases[] = {
        {"listener 9001\nprotocol http_api\n", "protocol: not supported yet (HTTP API)"},
        {"listener 9001\nhttp_dir /www\n", "http_dir: not supported yet (HTTP file serving)"},
        {"connection cloud\naddress 1.2.3.4\ntopic # both 0\n",
         "main.conf:1: connection: not supported yet (bridges): bridge 'cloud'"},
        {"enable_control_api true\n", "enable_control_api: not supported yet ($CONTROL API)"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const char *e = load_err(cases[i].text);
        CHECK_HAS(e, cases[i].expect);
        CHECK(strchr(e, '\n') == NULL); /* one line: block contents are not reported */
    }
    /* their off values ask for nothing and are accepted */
    cx_config_t *c = load_ok("persistence false\nenable_control_api false\nlistener 1883\n"
                             "require_certificate false\nuse_identity_as_username false\n");
    cx_config_free(c);
}

/* Loads and finishes a file whose finish must fail; returns the error text. */
static const char *finish_err(const char *content)
{
    cx_config_t *cfg;
    int rc = load(content, &cfg);
    if (rc != 0)
        CX_FAIL_("unexpected load error: %s", err);
    rc = cx_config_finish(cfg, NULL, 0, err, sizeof err);
    if (rc != CX_ECONFIG)
        CX_FAIL_("expected CX_ECONFIG from finish, got %d for:\n%s", rc, content);
    cx_config_free(cfg);
    return err;
}

static void test_tls_websockets_proxy(void)
{
    cx_config_t *c = load_ok("certfile /s.pem\nkeyfile /s.key\nlistener 8883\n"
                             "certfile /c.pem\nkeyfile /k.pem\ncafile /ca.pem\ncapath /cas\n"
                             "crlfile /crl.pem\nciphers HIGH\nciphers_tls1.3 TLS_AES_128_GCM_SHA256\n"
                             "dhparamfile /dh.pem\ntls_version tlsv1.3\nrequire_certificate true\n"
                             "use_identity_as_username true\ntls_keyform pem\n"
                             "disable_client_cert_date_checks true\n"
                             "listener 9001\nprotocol websockets\nwebsockets_origin https://a.example\n"
                             "websockets_origin http://b.example:8080\n"
                             "listener 1884\nenable_proxy_protocol 2\n"
                             "proxy_protocol_v2_require_tls true\n"
                             "psk_file /psk\nlistener 8884\npsk_hint hint\n"
                             "use_identity_as_username true\n");
    CHECK_INT_EQ(c->listener_count, 5);
    const cx_listener_conf_t *d = &c->listeners[0]; /* mosquitto's default listener */
    CHECK_INT_EQ(d->port, 1883);
    CHECK_STR_EQ(d->certfile, "/s.pem");
    const cx_listener_conf_t *t = &c->listeners[1];
    CHECK_STR_EQ(t->certfile, "/c.pem");
    CHECK_STR_EQ(t->keyfile, "/k.pem");
    CHECK_STR_EQ(t->cafile, "/ca.pem");
    CHECK_STR_EQ(t->capath, "/cas");
    CHECK_STR_EQ(t->crlfile, "/crl.pem");
    CHECK_STR_EQ(t->ciphers, "HIGH");
    CHECK_STR_EQ(t->ciphers_tls13, "TLS_AES_128_GCM_SHA256");
    CHECK_STR_EQ(t->dhparamfile, "/dh.pem");
    CHECK_INT_EQ(t->tls_version, CX_TLS_V1_3);
    CHECK(t->require_certificate && t->use_identity_as_username);
    CHECK(t->disable_client_cert_date_checks);
    const cx_listener_conf_t *w = &c->listeners[2];
    CHECK_INT_EQ(w->protocol, CX_PROTO_WEBSOCKETS);
    CHECK_INT_EQ(w->websockets_origin_count, 2);
    CHECK_STR_EQ(w->websockets_origin[1], "http://b.example:8080");
    CHECK(w->certfile == NULL);
    const cx_listener_conf_t *p = &c->listeners[3];
    CHECK_INT_EQ(p->enable_proxy_protocol, 2);
    CHECK(p->proxy_protocol_v2_require_tls);
    CHECK_STR_EQ(c->psk_file, "/psk"); /* global without per_listener_settings */
    CHECK_STR_EQ(c->listeners[4].psk_hint, "hint");
    CHECK(t->tls_engine == NULL && !t->tls_keyform_engine);
    cx_config_free(c);

    /* a key in an OpenSSL engine (the engine itself is loaded with the TLS context) */
    c = load_ok("listener 8883\ncertfile /c.pem\ntls_engine pkcs11\ntls_keyform engine\n"
                "keyfile pkcs11:token=culex;object=server;type=private\n"
                "tls_engine_kpass_sha1 7110EDA4D09E062AA5E4A390B0A572AC0D2C0220\n");
    t = &c->listeners[0];
    CHECK_STR_EQ(t->tls_engine, "pkcs11");
    CHECK(t->tls_keyform_engine);
    CHECK_STR_EQ(t->keyfile, "pkcs11:token=culex;object=server;type=private");
    CHECK_STR_EQ(t->tls_engine_kpass_sha1, "7110EDA4D09E062AA5E4A390B0A572AC0D2C0220");
    cx_config_free(c);
    c = load_ok("listener 8883\ntls_keyform engine\ntls_keyform pem\n");
    CHECK(!c->listeners[0].tls_keyform_engine);
    cx_config_free(c);

    /* a PROXY listener may rely on the load balancer for client certificates */
    c = load_ok("listener 1883\nenable_proxy_protocol 2\nrequire_certificate true\n"
                "use_identity_as_username true\n");
    cx_config_free(c);

    /* mosquitto's rules, checked once the whole file is read */
    static const struct {
        const char *text;
        const char *expect;
    } bad[] = {
        {"listener 8883\ncertfile /c\n", "certfile needs keyfile"},
        {"listener 8883\nkeyfile /k\n", "keyfile needs certfile"},
        {"listener 8883\nrequire_certificate true\n", "require_certificate needs TLS"},
        {"listener 8883\nuse_identity_as_username true\n",
         "use_identity_as_username needs TLS"},
        {"listener 8883\npsk_hint h\n", "psk_hint needs a psk_file"},
        {"psk_file /p\nlistener 8883\npsk_hint h\ncertfile /c\nkeyfile /k\n",
         "psk_hint cannot be combined with certfile"},
        {"listener 1883\nwebsockets_origin http://x\n", "websockets_origin needs `protocol "
                                                         "websockets`"},
        {"listener 1883\nproxy_protocol_v2_require_tls true\n",
         "proxy_protocol_v2_require_tls needs enable_proxy_protocol"},
        {"listener 8883\ncertfile /c\nkeyfile /k\nuse_identity_as_username true\n"
         "use_subject_as_username true\n", "exclude each other"},
        {"listener 8883\ncertfile /c\nkeyfile pkcs11:object=k\ntls_keyform engine\n",
         "main.conf:1: listener: tls_keyform engine needs tls_engine"},
        {"listener 8883\ncertfile /c\nkeyfile /k\n"
         "tls_engine_kpass_sha1 7110eda4d09e062aa5e4a390b0a572ac0d2c0220\n",
         "main.conf:1: listener: tls_engine_kpass_sha1 needs tls_engine"},
        {"psk_file /p\nlistener 8883\npsk_hint h\ntls_engine pkcs11\ntls_keyform engine\n",
         "tls_keyform engine needs certfile and keyfile, not psk_hint"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        CHECK_HAS(finish_err(bad[i].text), bad[i].expect);

    /* mosquitto 2.0.11 starts with these: accepted, with a warning saying what they mean */
    static const struct {
        const char *text;
        const char *warning;
    } odd[] = {
        {"listener 8883\ncertfile /c\nkeyfile /k\nrequire_certificate true\n",
         "main.conf:1: listener: require_certificate true without cafile or capath"},
        {"listener 8883\ncafile /ca\n", "cafile has no effect"},
        {"listener 8883\nprotocol websockets\nciphers HIGH\n", "ciphers has no effect"},
    };
    for (size_t i = 0; i < sizeof odd / sizeof odd[0]; i++) {
        capture_log();
        cx_config_t *cfg;
        CHECK_INT_EQ(load(odd[i].text, &cfg), 0);
        CHECK_INT_EQ(cx_config_finish(cfg, NULL, 0, err, sizeof err), 0);
        CHECK_HAS(logbuf, odd[i].warning);
        cx_config_free(cfg);
    }

    /* refused at once */
    CHECK_HAS(load_err("listener 1883\nenable_proxy_protocol 3\n"), "enable_proxy_protocol");
    CHECK_HAS(load_err("listener 8883\ntls_version sslv3\n"),
              "invalid value 'sslv3' (expected one of: tlsv1.3, tlsv1.2, tlsv1.1)");
    CHECK_HAS(load_err("listener 8883\ntls_keyform der\n"),
              "tls_keyform: invalid value 'der' (expected pem or engine)");
    CHECK_HAS(load_err("listener 8883\ntls_engine_kpass_sha1 7110eda4\n"),
              "main.conf:2: tls_engine_kpass_sha1: expected 40 hexadecimal digits");
    CHECK_HAS(load_err("listener 8883\n"
                       "tls_engine_kpass_sha1 7110eda4d09e062aa5e4a390b0a572ac0d2c022g\n"),
              "expected 40 hexadecimal digits");
    CHECK_HAS(load_err("listener 9001\nprotocol websockets\nwebsockets_origin a b\n"),
              "one origin per line");
    /* websockets_log_level is libwebsockets': accepted, ignored */
    c = load_ok("websockets_log_level 255\nlistener 1883\n");
    cx_config_free(c);
}

static void test_refusals_collected(void)
{
    /* every missing feature once, in file order; then the first hard error ends it */
    const char *e = load_err("enable_control_api true\nlistener 8883\nhttp_dir /a\nkeyfile /b\n"
                             "persistence true\nlistener 9001\nprotocol http_api\n"
                             "bogus 1\nsys_interval x\n");
    CHECK(starts_in_dir(e, "main.conf:1: enable_control_api: not supported yet ($CONTROL API)\n"));
    CHECK_HAS(e, "/main.conf:3: http_dir: not supported yet (HTTP file serving)\n");
    CHECK_HAS(e, "/main.conf:7: protocol: not supported yet (HTTP API)\n");
    CHECK_HAS(e, "/main.conf:8: bogus: unknown directive");
    CHECK(strstr(e, "keyfile") == NULL);
    CHECK(strstr(e, "sys_interval") == NULL);
    CHECK_INT_EQ(count(e, "\n"), 3);
}

static void test_unknown_and_scope_errors(void)
{
    const char *e = load_err("listener 1883\n\nfoo bar\n");
    CHECK(starts_in_dir(e, "main.conf:3: foo: unknown directive"));
    CHECK(strchr(e, '\n') == NULL);
    /* corpus 052: a bridge option outside a bridge */
    CHECK_HAS(load_err("listener 1883\nkeepalive_interval 60\n"),
              "main.conf:2: keepalive_interval: only valid inside a bridge, after a "
              "`connection NAME` line");
    CHECK_HAS(load_err("plugin_opt_key value\n"),
              "plugin_opt_key: only valid after a plugin line");
    CHECK_HAS(load_err("auth_plugin_deny_special_chars false\n"), "only valid after a plugin line");
    CHECK_HAS(load_err("trace_level 5\n"), "trace_level: unknown directive");
}

static void test_error_format(void)
{
    const char *path = write_file("fmt.conf", "# comment\nlistener 1883\nmax_qos 3\n");
    cx_config_t *c = cx_config_new();
    CHECK_INT_EQ(cx_config_load(c, path, err, sizeof err), CX_ECONFIG);
    char expect[512];
    snprintf(expect, sizeof expect, "%s:3: max_qos: value 3 out of range (0..2)", path);
    CHECK_STR_EQ(err, expect);
    cx_config_free(c);
    /* a short buffer is truncated, not overrun */
    c = cx_config_new();
    char small[16];
    CHECK_INT_EQ(cx_config_load(c, path, small, sizeof small), CX_ECONFIG);
    CHECK_INT_EQ(strlen(small), sizeof small - 1);
    cx_config_free(c);
}

/* ---- reload ----------------------------------------------------------------------------- */

static void test_reload(void)
{
    cx_config_t *live = load_ok("max_inflight_messages 10\nlog_type error\npid_file /run/a.pid\n"
                                "workers 2\nallow_anonymous false\nauto_id_prefix old-\n"
                                "listener 1883\nlistener 1884\nlistener_auto_id_prefix keep-\n");
    cx_config_t *fresh = load_ok("max_inflight_messages 30\nlog_type all\n"
                                 "log_dest file /var/log/culex.log\npid_file /run/b.pid\n"
                                 "workers 4\nallow_anonymous true\nauto_id_prefix new-\n"
                                 "sys_interval 60\nlistener 1883\nmax_connections 5\n"
                                 "listener 1890\n");
    capture_log();
    CHECK_INT_EQ(cx_config_apply_reload(live, fresh), 0);
    /* reloadable: copied */
    CHECK_INT_EQ(live->max_inflight_messages, 30);
    CHECK_INT_EQ(live->log_type, CX_LOG_ALL);
    CHECK_INT_EQ(live->log_dest, CX_LOGDEST_FILE);
    CHECK_STR_EQ(live->log_file, "/var/log/culex.log");
    CHECK_INT_EQ(live->sys_interval, 60);
    CHECK_INT_EQ(live->allow_anonymous, 1);
    CHECK_STR_EQ(live->auto_id_prefix, "new-");
    /* not reloadable: kept, and said */
    CHECK_STR_EQ(live->pid_file, "/run/a.pid");
    CHECK_INT_EQ(live->workers, 2);
    CHECK_HAS(logbuf, "reload: 'pid_file' changed; restart culex to apply it");
    CHECK_HAS(logbuf, "reload: 'workers' changed");
    CHECK(strstr(logbuf, "'max_inflight_messages' changed") == NULL);
    /* listeners are kept; their security follows the new file */
    CHECK_HAS(logbuf, "reload: listener changes need a restart");
    CHECK_INT_EQ(live->listener_count, 2);
    CHECK_INT_EQ(live->listeners[0].max_connections, -1);
    CHECK(live->listeners[0].allow_anonymous);
    CHECK_STR_EQ(live->listeners[0].listener_auto_id_prefix, "new-");
    CHECK(live->listeners[1].allow_anonymous);          /* 1884 is gone: re-resolved */
    CHECK_STR_EQ(live->listeners[1].listener_auto_id_prefix, "keep-");
    /* fresh is intact */
    CHECK_INT_EQ(fresh->max_inflight_messages, 30);
    CHECK_STR_EQ(fresh->log_file, "/var/log/culex.log");
    cx_config_free(fresh);
    cx_config_free(live);

    /* same listeners: nothing to say about them */
    live = load_ok("listener 1883\n");
    fresh = load_ok("listener 1883\nmax_keepalive 60\n");
    capture_log();
    CHECK_INT_EQ(cx_config_apply_reload(live, fresh), 0);
    CHECK_INT_EQ(live->max_keepalive, 60);
    CHECK(strstr(logbuf, "listener changes") == NULL);
    cx_config_free(fresh);
    cx_config_free(live);
}

/* ---- the table ---------------------------------------------------------------------------- */

/* Every directive of ../shared/reference/mosquitto-compat.md (2.1.2) must be in the table. */
static void test_compat_coverage(void)
{
    static const char *names[] = {
        "allow_duplicate_messages", "allow_zero_length_clientid", "auto_id_prefix",
        "check_retain_source", "clientid_prefixes", "connection_messages", "enable_control_api",
        "global_max_clients", "global_max_connections", "include_dir", "max_inflight_bytes",
        "max_inflight_messages", "max_keepalive", "max_packet_size", "max_queued_bytes",
        "max_queued_messages", "memory_limit", "message_size_limit",
        "persistent_client_expiration", "pid_file", "queue_qos0_messages", "retain_available",
        "retain_expiry_interval", "set_tcp_nodelay", "sys_interval", "upgrade_outgoing_qos",
        "user", "allow_anonymous", "listener_allow_anonymous", "password_file", "acl_file",
        "psk_file", "per_listener_settings", "auth_plugin_deny_special_chars", "plugin",
        "plugin_opt_anything", "global_plugin", "plugin_load", "plugin_use", "auth_plugin",
        "auth_opt_anything", "require_certificate", "use_identity_as_username",
        "use_subject_as_username", "use_username_as_clientid", "crlfile",
        "disable_client_cert_date_checks", "listener", "port", "bind_address",
        "bind_interface", "socket_domain", "protocol", "accept_protocol_versions",
        "max_connections", "max_qos", "max_topic_alias", "max_topic_alias_broker",
        "mount_point", "http_dir", "enable_proxy_protocol", "proxy_protocol_v2_require_tls",
        "packet_buffer_size", "listener_auto_id_prefix", "cafile", "capath", "certfile",
        "keyfile", "ciphers", "ciphers_tls1.3", "dhparamfile", "tls_engine",
        "tls_engine_kpass_sha1", "tls_keyform", "tls_version", "psk_hint",
        "websockets_headers_size", "websockets_log_level", "websockets_origin", "persistence",
        "persistence_file", "persistence_location", "autosave_interval", "autosave_on_changes",
        "retained_persistence", "log_dest", "log_facility", "log_timestamp",
        "log_timestamp_format", "log_type", "connection", "address", "addresses",
        "round_robin", "start_type", "threshold", "idle_timeout", "restart_timeout",
        "keepalive_interval", "try_private", "notifications", "notifications_local_only",
        "notification_topic", "topic", "bridge_attempt_unsubscribe", "bridge_outgoing_retain",
        "cleansession", "local_cleansession", "local_clientid", "remote_clientid", "clientid",
        "local_username", "local_password", "remote_username", "remote_password", "username",
        "password", "bridge_protocol_version", "bridge_max_packet_size",
        "bridge_max_topic_alias", "bridge_receive_maximum", "bridge_session_expiry_interval",
        "bridge_tcp_keepalive", "bridge_tcp_user_timeout", "bridge_bind_address",
        "bridge_reload_type", "bridge_alpn", "bridge_cafile", "bridge_capath",
        "bridge_certfile", "bridge_keyfile", "bridge_insecure", "bridge_require_ocsp",
        "bridge_tls_version", "bridge_ciphers", "bridge_ciphers_tls1.3",
        "bridge_tls_use_os_certs", "bridge_identity", "bridge_psk", "retry_interval",
        "workers",
    };
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (!cx_conf_find(names[i]))
            CX_FAIL_("directive %s is not in the table", names[i]);
    CHECK(cx_conf_find("plugin_opt_") == NULL); /* a prefix needs a key */
    CHECK(cx_conf_find("General and limits") == NULL); /* headings are not directives */
}

static void test_table_consistency(void)
{
    for (size_t i = 0; i < cx_conf_directive_count; i++) {
        const cx_conf_directive_t *d = &cx_conf_directives[i];
        if (d->flags & CX_CONF_SECTION)
            continue;
        if (!d->set || !d->doc || !d->scope)
            CX_FAIL_("row %s is incomplete", d->name);
        if ((d->flags & (CX_CONF_DEPRECATED | CX_CONF_UNSUPPORTED)) && !d->note)
            CX_FAIL_("row %s needs a note", d->name);
        for (size_t j = 0; j < i; j++)
            if (!(cx_conf_directives[j].flags & CX_CONF_SECTION) &&
                strcmp(cx_conf_directives[j].name, d->name) == 0)
                CX_FAIL_("row %s is duplicated", d->name);
    }
}

static void test_reference(void)
{
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    CHECK(f != NULL);
    cx_config_write_reference(f);
    fclose(f);
    for (size_t i = 0; i < cx_conf_directive_count; i++) {
        const cx_conf_directive_t *d = &cx_conf_directives[i];
        char needle[128];
        if (d->flags & CX_CONF_SECTION)
            snprintf(needle, sizeof needle, "## %s\n", d->name);
        else
            snprintf(needle, sizeof needle, "| `%s%s` |", d->name,
                     d->flags & CX_CONF_PREFIX ? "*" : "");
        CHECK_HAS(text, needle);
    }
    CHECK_HAS(text, "| `max_inflight_messages` | global | 1 | 20 | reloadable |");
    CHECK_HAS(text, "| `certfile` | listener, default listener | rest of line | - | - |");
    CHECK_HAS(text, "| `http_dir` | listener | any | - | not supported yet (HTTP file serving) |");
    CHECK_HAS(text, "| `workers` | global | 1 | number of online CPUs | culex only |");
    free(text);
}

CX_TEST_MAIN(
    CX_TEST(defaults),
    CX_TEST(tls_websockets_proxy),
    CX_TEST(listener_defaults),
    CX_TEST(bool_setter),
    CX_TEST(key_equals_value),
    CX_TEST(int_setter),
    CX_TEST(size_setter),
    CX_TEST(duration_setter),
    CX_TEST(string_and_path_setters),
    CX_TEST(enum_setter),
    CX_TEST(trailing_comments),
    CX_TEST(line_endings),
    CX_TEST(extra_values_warn),
    CX_TEST(missing_file),
    CX_TEST(include_dir),
    CX_TEST(include_dir_errors),
    CX_TEST(listener_forms),
    CX_TEST(listener_scope),
    CX_TEST(port_and_bind_address),
    CX_TEST(global_security),
    CX_TEST(per_listener_settings),
    CX_TEST(local_only_without_file),
    CX_TEST(local_only_with_file),
    CX_TEST(cli_ports),
    CX_TEST(logging),
    CX_TEST(retain_expiry_and_misc),
    CX_TEST(obsolete_and_deprecated),
    CX_TEST(plugin_forms),
    CX_TEST(plugin_load_use),
    CX_TEST(plugin_scopes),
    CX_TEST(auth_file),
    CX_TEST(plugin_errors),
    CX_TEST(plugin_option_comments),
    CX_TEST(plugin_include_dir),
    CX_TEST(plugin_reload),
    CX_TEST(not_supported_families),
    CX_TEST(refusals_collected),
    CX_TEST(unknown_and_scope_errors),
    CX_TEST(error_format),
    CX_TEST(reload),
    CX_TEST(compat_coverage),
    CX_TEST(table_consistency),
    CX_TEST(reference),
)
