/* fuzz_config.c: the mosquitto.conf reader (core/config) on arbitrary files.
 *
 * Input: the main configuration file, optionally followed by a NUL byte and the text of one
 * file for include_dir. The reader refuses any line holding a NUL, so using NUL as the
 * separator takes nothing away from what the main file can say.
 *
 * cx_config_load takes a path, so both parts are written to files in a private directory
 * made once per process (fz_scratch_dir, removed at exit) and rewritten for every input:
 *     DIR/main.conf
 *     DIR/inc/10-fuzz.conf
 * Every `include_dir VALUE` line is rewritten to name DIR/inc before the file is written,
 * so an input can reach the include_dir code (sorting, nesting refusal, per-file line
 * numbers) but never makes the reader walk a real directory of this machine, which would
 * make runs depend on the host and could be slow. `include_dir` without a value is kept,
 * so its error path is reached too. Nothing else in core/config touches the file system
 * beyond access(2) on plugin paths.
 *
 * On success the config goes through cx_config_finish (with or without -p ports), its
 * structure is checked, a second load of the same files must give the same verdict and is
 * applied to the first as a SIGHUP would (cx_config_apply_reload), and the config is also
 * reloaded into a default one. Logging is on for every type with no destination, so every
 * log call formats its arguments (a wrong format argument is an ASan/UBSan finding) and
 * writes nothing. Every byte taken with cx_alloc must be returned after each input. */
#include <errno.h>
#include <limits.h>
#include <stdbool.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/socket.h>
#include <unistd.h>

#include "config/config.h"
#include "fuzz.h"
#include "util/alloc.h"
#include "util/err.h"
#include "util/log.h"

static char dir_path[400];
static char main_path[420];
static char inc_dir[420];
static char inc_path[440];

static void remove_scratch(void)
{
    unlink(inc_path);
    rmdir(inc_dir);
    unlink(main_path);
    rmdir(dir_path);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    fz_scratch_dir(dir_path, sizeof dir_path, "config");
    snprintf(main_path, sizeof main_path, "%s/main.conf", dir_path);
    snprintf(inc_dir, sizeof inc_dir, "%s/inc", dir_path);
    snprintf(inc_path, sizeof inc_path, "%s/10-fuzz.conf", inc_dir);
    if (mkdir(inc_dir, 0700) != 0) {
        fprintf(stderr, "fuzz_config: mkdir %s: %s\n", inc_dir, strerror(errno));
        abort();
    }
    atexit(remove_scratch);
    cx_log_settings_t ls = {.types = CX_LOG_ALL, .dests = 0, .timestamp = false};
    FUZZ_CHECK(cx_log_configure(&ls) == 0);
    return 0;
}

static bool is_blank(uint8_t c)
{
    return c == ' ' || c == '\t';
}

/* Writes text[0..n) to path, replacing the value of every include_dir line by inc_dir. */
static void write_conf(const char *path, const uint8_t *text, size_t n)
{
    FILE *f = fopen(path, "wb");
    FUZZ_CHECK(f != NULL);
    static const char kw[] = "include_dir";
    const size_t kwlen = sizeof kw - 1;
    size_t i = 0;
    while (i < n) {
        const uint8_t *nl = memchr(text + i, '\n', n - i);
        size_t end = nl ? (size_t)(nl - text) : n; /* line is text[i..end) */
        size_t j = i;
        if (i == 0 && n >= 3 && memcmp(text, "\xEF\xBB\xBF", 3) == 0)
            j = 3; /* parse.c skips a byte order mark */
        while (j < end && is_blank(text[j]))
            j++;
        bool rewrite = false;
        if (end - j > kwlen && memcmp(text + j, kw, kwlen) == 0 && is_blank(text[j + kwlen])) {
            size_t v = j + kwlen;
            while (v < end && (is_blank(text[v]) || text[v] == '\r'))
                v++;
            rewrite = v < end; /* keep `include_dir` without a value as it is */
        }
        if (rewrite) {
            FUZZ_CHECK(fwrite(text + i, 1, j - i, f) == j - i);
            FUZZ_CHECK(fprintf(f, "include_dir %s", inc_dir) > 0);
        } else {
            FUZZ_CHECK(fwrite(text + i, 1, end - i, f) == end - i);
        }
        if (nl)
            FUZZ_CHECK(fputc('\n', f) == '\n');
        i = nl ? end + 1 : n;
    }
    FUZZ_CHECK(fclose(f) == 0);
}

static void check_err(int rc, const char *err, size_t errlen)
{
    FUZZ_CHECK(rc == 0 || rc == CX_ECONFIG || rc == CX_ENOMEM);
    FUZZ_CHECK(memchr(err, '\0', errlen) != NULL);
    if (rc)
        FUZZ_CHECK(err[0] != '\0');
}

/* The structure cx_config_finish promises. */
static void check_finished(const cx_config_t *cfg)
{
    FUZZ_CHECK(cfg->listener_count >= 1);
    FUZZ_CHECK(cfg->conf_file_count >= 1 && strcmp(cfg->conf_files[0], main_path) == 0);
    for (size_t i = 0; i < cfg->listener_count; i++) {
        const cx_listener_conf_t *l = &cfg->listeners[i];
        FUZZ_CHECK(l->port >= 0 && l->port <= 65535);
        FUZZ_CHECK(l->port != 0 || l->unix_socket != NULL);
        FUZZ_CHECK(l->max_qos >= 0 && l->max_qos <= 2);
        FUZZ_CHECK(l->protocol == CX_PROTO_MQTT);
        FUZZ_CHECK((l->accept_protocol_versions & ~CX_CONF_PROTO_ALL) == 0);
        FUZZ_CHECK(l->socket_domain == AF_UNSPEC || l->socket_domain == AF_INET ||
                   l->socket_domain == AF_INET6);
        FUZZ_CHECK(l->listener_auto_id_prefix != NULL);
        FUZZ_CHECK(l->packet_buffer_size == cfg->packet_buffer_size);
    }
    for (size_t i = 0; i < cfg->plugin_count; i++) {
        const cx_plugin_conf_t *p = &cfg->plugins[i];
        FUZZ_CHECK(p->path != NULL || p->builtin != NULL);
        FUZZ_CHECK(p->listener == CX_PLUGIN_GLOBAL || p->listener == CX_PLUGIN_NAMED ||
                   (p->listener >= 0 && (size_t)p->listener < cfg->listener_count));
        for (size_t j = 0; j < p->use_count; j++)
            FUZZ_CHECK(p->uses[j] >= 0 && (size_t)p->uses[j] < cfg->listener_count);
        for (size_t j = 0; j < p->option_count; j++)
            FUZZ_CHECK(p->options[j].name != NULL && p->options[j].value != NULL);
    }
}

/* Loads and finishes the files written for this input; NULL when refused. */
static cx_config_t *load(bool ports, int *rc_out)
{
    static const int cli_ports[2] = {1884, 8884};
    char err[1024];
    cx_config_t *cfg = cx_config_new();
    FUZZ_CHECK(cfg != NULL);
    int rc = cx_config_load(cfg, main_path, err, sizeof err);
    check_err(rc, err, sizeof err);
    if (rc == 0) {
        rc = cx_config_finish(cfg, ports ? cli_ports : NULL, ports ? 2 : 0, err, sizeof err);
        check_err(rc, err, sizeof err);
    }
    *rc_out = rc;
    if (rc) {
        cx_config_free(cfg);
        return NULL;
    }
    check_finished(cfg);
    return cfg;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const uint8_t *sep = memchr(data, '\0', size);
    size_t main_len = sep ? (size_t)(sep - data) : size;
    write_conf(main_path, data, main_len);
    if (sep)
        write_conf(inc_path, sep + 1, size - main_len - 1);
    else
        write_conf(inc_path, NULL, 0);

    size_t heap_before = cx_alloc_current();
    bool ports = size & 1; /* an input-fixed choice, so a run can be replayed */

    /* -p parsing, on the first word of the input. */
    char word[16];
    size_t wl = 0;
    while (wl < main_len && wl < sizeof word - 1 && !is_blank(data[wl]) && data[wl] != '\n')
        wl++;
    memcpy(word, data, wl);
    word[wl] = '\0';
    int port = -1;
    if (cx_config_parse_cli_port(word, &port) == 0)
        FUZZ_CHECK(port >= 1 && port <= 65535);

    int rc;
    cx_config_t *cfg = load(ports, &rc);
    if (cfg) {
        int rc2;
        cx_config_t *fresh = load(ports, &rc2);
        FUZZ_CHECK(fresh != NULL); /* the same files cannot be refused the second time */
        FUZZ_CHECK(cx_config_apply_reload(cfg, fresh) == 0);
        cx_config_free(fresh);

        cx_config_t *def = cx_config_new();
        FUZZ_CHECK(def != NULL);
        char err[256];
        FUZZ_CHECK(cx_config_finish(def, NULL, 0, err, sizeof err) == 0);
        FUZZ_CHECK(cx_config_apply_reload(def, cfg) == 0);
        for (size_t i = 0; i < def->listener_count; i++)
            FUZZ_CHECK(def->listeners[i].listener_auto_id_prefix != NULL);
        cx_config_free(def);
        cx_config_free(cfg);
    }
    FUZZ_CHECK(cx_alloc_current() == heap_before);
    return 0;
}
