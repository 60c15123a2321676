/* config.c: the config object's life: defaults, listeners, mosquitto 2's start-up rules
 * (local-only mode, -p ports, allow_anonymous), per-listener resolution, reload, free.
 *
 * Defaults are Mosquitto 2.1's (mosquitto.conf(5) of 2.1.2 and its config code); where the
 * two disagree the doc's value is used and directives.c says so in the row's doc. */
#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <syslog.h>
#include <unistd.h>

#include "conf_table.h"
#include "util/alloc.h"
#include "util/err.h"
#include "util/log.h"

static int online_cpus(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n < 1 ? 1 : n > 1024 ? 1024 : (int)n;
}

cx_config_t *cx_config_new(void)
{
    cx_config_t *cfg = cx_calloc(1, sizeof *cfg);
    if (!cfg)
        return NULL;
    cfg->allow_duplicate_messages = true;
    cfg->allow_zero_length_clientid = true;
    cfg->check_retain_source = true;
    cfg->connection_messages = true;
    cfg->global_max_clients = -1;
    cfg->global_max_connections = -1;
    cfg->max_inflight_messages = 20;
    cfg->max_keepalive = 0;
    cfg->max_packet_size = 2000000;
    cfg->max_queued_messages = 1000;
    cfg->packet_buffer_size = 4096;
    cfg->retain_available = true;
    cfg->sys_interval = 10;
    cfg->allow_anonymous = -1;
    cfg->workers = online_cpus();
    cfg->log_type = CX_LOG_ERR | CX_LOG_WARNING | CX_LOG_NOTICE | CX_LOG_INFO;
    cfg->log_dest = CX_LOGDEST_STDERR;
    cfg->log_facility = LOG_DAEMON;
    cfg->log_timestamp = true;
    cfg->autosave_interval = 1800;
    cfg->persistence_sync = 1;
    cfg->persistence_batch_ms = 100;
    cfg->local_only = true;
    cfg->user = cx_strdup("mosquitto");
    if (!cfg->user) {
        cx_config_free(cfg);
        return NULL;
    }
    return cfg;
}

static void listener_init(cx_listener_conf_t *l)
{
    memset(l, 0, sizeof *l);
    l->port = 1883;
    l->socket_domain = AF_UNSPEC;
    l->protocol = CX_PROTO_MQTT;
    l->accept_protocol_versions = CX_CONF_PROTO_ALL;
    l->max_connections = -1;
    l->max_qos = 2;
    l->max_topic_alias = 10;
    l->max_topic_alias_broker = 10;
    l->packet_buffer_size = 4096;
    l->listener_allow_anonymous = -1;
    l->allow_zero_length_clientid = true;
}

static void listener_free(cx_listener_conf_t *l)
{
    cx_free(l->bind_address);
    cx_free(l->unix_socket);
    cx_free(l->bind_interface);
    cx_free(l->mount_point);
    cx_free(l->listener_auto_id_prefix);
    cx_conf_net_free(l);
}

static long append_listener(cx_config_t *cfg, const char *file, int line)
{
    cx_listener_conf_t *n =
        cx_realloc(cfg->listeners, (cfg->listener_count + 1) * sizeof *cfg->listeners);
    if (!n)
        return -1;
    cfg->listeners = n;
    cx_listener_conf_t *l = &n[cfg->listener_count];
    listener_init(l);
    l->file = file;
    l->line = line;
    return (long)cfg->listener_count++;
}

long cx_conf_add_listener(cx_conf_ctx_t *ctx)
{
    return append_listener(ctx->cfg, ctx->file, ctx->line);
}

void cx_config_free(cx_config_t *cfg)
{
    if (!cfg)
        return;
    for (size_t i = 0; i < cfg->listener_count; i++)
        listener_free(&cfg->listeners[i]);
    cx_free(cfg->listeners);
    cx_conf_plugins_free(cfg);
    /* Every string field is listed in the table; free them from there so a new directive
     * cannot leak. Aliases share an offset, so clear as we go. */
    for (size_t i = 0; i < cx_conf_directive_count; i++) {
        const cx_conf_directive_t *d = &cx_conf_directives[i];
        if (d->kind == CX_CONF_K_STR && (d->scope & CX_CONF_GLOBAL)) {
            char **s = (char **)((char *)cfg + d->offset);
            cx_free_null(*s);
        }
    }
    cx_free(cfg->log_file);
    cx_free(cfg->config_file);
    for (size_t i = 0; i < cfg->conf_file_count; i++)
        cx_free(cfg->conf_files[i]);
    cx_free(cfg->conf_files);
    cx_free(cfg);
}

/* ---- resolution ------------------------------------------------------------------------- */

static void resolve_security(const cx_config_t *cfg, cx_listener_conf_t *l)
{
    /* mosquitto: the listener's own value, else the global one, else false, except in
     * local-only mode where an unset allow_anonymous means true. */
    if (l->listener_allow_anonymous >= 0)
        l->allow_anonymous = l->listener_allow_anonymous != 0;
    else if (cfg->allow_anonymous >= 0)
        l->allow_anonymous = cfg->allow_anonymous != 0;
    else
        l->allow_anonymous = cfg->local_only;
    if (!cfg->per_listener_settings)
        l->allow_zero_length_clientid = cfg->allow_zero_length_clientid;
}

static int resolve_listeners(cx_config_t *cfg)
{
    for (size_t i = 0; i < cfg->listener_count; i++) {
        cx_listener_conf_t *l = &cfg->listeners[i];
        resolve_security(cfg, l);
        if (!l->listener_auto_id_prefix) {
            l->listener_auto_id_prefix =
                cx_strdup(cfg->auto_id_prefix ? cfg->auto_id_prefix : "auto-");
            if (!l->listener_auto_id_prefix)
                return CX_ENOMEM;
        }
        l->packet_buffer_size = cfg->packet_buffer_size;
    }
    return 0;
}

int cx_conf_resolve_listeners(cx_config_t *cfg)
{
    return resolve_listeners(cfg);
}

int cx_config_parse_cli_port(const char *arg, int *port)
{
    if (!arg || *arg < '0' || *arg > '9')
        return CX_ECONFIG;
    char *end = NULL;
    errno = 0;
    long v = strtol(arg, &end, 10);
    if (errno || *end || v < 1 || v > 65535)
        return CX_ECONFIG;
    *port = (int)v;
    return 0;
}

int cx_config_finish(cx_config_t *cfg, const int *cli_ports, size_t n_cli_ports, char *err,
                     size_t errlen)
{
    if (err && errlen)
        err[0] = '\0';
    if (n_cli_ports > CX_CONF_MAX_CLI_PORTS) {
        if (err && errlen)
            snprintf(err, errlen, "-p: at most %d ports can be given", CX_CONF_MAX_CLI_PORTS);
        return CX_ECONFIG;
    }
    for (size_t i = 0; i < n_cli_ports; i++)
        if (cli_ports[i] < 1 || cli_ports[i] > 65535) {
            if (err && errlen)
                snprintf(err, errlen, "-p: invalid port %d (expected 1..65535)", cli_ports[i]);
            return CX_ECONFIG;
        }

    if (cfg->local_only) {
        /* mosquitto 2: no listener anywhere means loopback only. Settings that created the
         * implicit default listener (e.g. `max_connections 10` alone) are dropped, as
         * mosquitto drops them. */
        bool from_file = false;
        for (size_t i = 0; i < cfg->listener_count; i++) {
            from_file |= cfg->listeners[i].file != NULL;
            listener_free(&cfg->listeners[i]);
        }
        cfg->listener_count = 0;
        if (from_file)
            cx_log(CX_LOG_WARNING, "no listener, port or bind_address in the configuration: "
                   "local-only mode; listener settings given without a listener are ignored");
        cx_conf_plugins_drop_listener_scoped(cfg);
        size_t nports = n_cli_ports ? n_cli_ports : 1;
        for (size_t i = 0; i < nports; i++) {
            int port = n_cli_ports ? cli_ports[i] : 1883;
            static const struct {
                const char *addr;
                int domain;
            } lo[2] = {{"127.0.0.1", AF_INET}, {"::1", AF_INET6}};
            for (int j = 0; j < 2; j++) {
                long idx = append_listener(cfg, NULL, 0);
                if (idx < 0)
                    return CX_ENOMEM;
                cx_listener_conf_t *l = &cfg->listeners[idx];
                l->port = port;
                l->socket_domain = lo[j].domain;
                l->bind_address = cx_strdup(lo[j].addr);
                if (!l->bind_address)
                    return CX_ENOMEM;
            }
        }
    } else if (n_cli_ports) {
        cx_log(CX_LOG_WARNING, "-p ignored: the configuration file defines listeners");
    }
    int rc = resolve_listeners(cfg);
    return rc ? rc : cx_conf_check_net(cfg, err, errlen);
}

/* ---- reload ----------------------------------------------------------------------------- */

static bool str_eq(const char *a, const char *b)
{
    return a == b || (a && b && strcmp(a, b) == 0);
}

static bool slot_equal(cx_conf_kind_t kind, const void *a, const void *b)
{
    switch (kind) {
    case CX_CONF_K_BOOL: return *(const bool *)a == *(const bool *)b;
    case CX_CONF_K_INT: return *(const int *)a == *(const int *)b;
    case CX_CONF_K_INT64: return *(const int64_t *)a == *(const int64_t *)b;
    case CX_CONF_K_SIZE: return *(const size_t *)a == *(const size_t *)b;
    case CX_CONF_K_UINT: return *(const unsigned *)a == *(const unsigned *)b;
    case CX_CONF_K_STR: return str_eq(*(char *const *)a, *(char *const *)b);
    default: return true;
    }
}

static int copy_str(char **dst, const char *src)
{
    char *n = NULL;
    if (src && !(n = cx_strdup(src)))
        return CX_ENOMEM;
    cx_free(*dst);
    *dst = n;
    return 0;
}

static int copy_slot(cx_conf_kind_t kind, void *dst, const void *src)
{
    switch (kind) {
    case CX_CONF_K_BOOL: *(bool *)dst = *(const bool *)src; break;
    case CX_CONF_K_INT: *(int *)dst = *(const int *)src; break;
    case CX_CONF_K_INT64: *(int64_t *)dst = *(const int64_t *)src; break;
    case CX_CONF_K_SIZE: *(size_t *)dst = *(const size_t *)src; break;
    case CX_CONF_K_UINT: *(unsigned *)dst = *(const unsigned *)src; break;
    case CX_CONF_K_STR: return copy_str(dst, *(char *const *)src);
    default: break;
    }
    return 0;
}

/* Rows that store into a global field; aliases (same offset as an earlier row) are
 * skipped so each field is handled once. */
static bool global_field_row(size_t i)
{
    const cx_conf_directive_t *d = &cx_conf_directives[i];
    if ((d->flags & CX_CONF_SECTION) || d->kind == CX_CONF_K_NONE || !(d->scope & CX_CONF_GLOBAL))
        return false;
    for (size_t j = 0; j < i; j++) {
        const cx_conf_directive_t *e = &cx_conf_directives[j];
        if (!(e->flags & CX_CONF_SECTION) && e->kind != CX_CONF_K_NONE &&
            (e->scope & CX_CONF_GLOBAL) && e->offset == d->offset)
            return false;
    }
    return true;
}

static bool same_identity(const cx_listener_conf_t *a, const cx_listener_conf_t *b)
{
    return a->port == b->port && str_eq(a->bind_address, b->bind_address) &&
           str_eq(a->unix_socket, b->unix_socket);
}

static bool uses_tls(const cx_listener_conf_t *l)
{
    return l->certfile || l->keyfile || l->psk_hint;
}

static bool origins_equal(const cx_listener_conf_t *a, const cx_listener_conf_t *b)
{
    if (a->websockets_origin_count != b->websockets_origin_count)
        return false;
    for (size_t i = 0; i < a->websockets_origin_count; i++)
        if (!str_eq(a->websockets_origin[i], b->websockets_origin[i]))
            return false;
    return true;
}

static bool same_listener(const cx_listener_conf_t *a, const cx_listener_conf_t *b)
{
    return same_identity(a, b) && str_eq(a->bind_interface, b->bind_interface) &&
           a->socket_domain == b->socket_domain && a->protocol == b->protocol &&
           a->accept_protocol_versions == b->accept_protocol_versions &&
           a->max_connections == b->max_connections && a->max_qos == b->max_qos &&
           a->max_topic_alias == b->max_topic_alias &&
           a->max_topic_alias_broker == b->max_topic_alias_broker &&
           str_eq(a->mount_point, b->mount_point) &&
           a->use_username_as_clientid == b->use_username_as_clientid &&
           a->enable_proxy_protocol == b->enable_proxy_protocol &&
           a->proxy_protocol_v2_require_tls == b->proxy_protocol_v2_require_tls &&
           uses_tls(a) == uses_tls(b) && (a->psk_hint != NULL) == (b->psk_hint != NULL) &&
           origins_equal(a, b);
}

/* The TLS settings that follow the new file on SIGHUP (the broker then builds new TLS
 * contexts from them). Turning TLS on or off is a listener change: restart. */
static int copy_tls(cx_listener_conf_t *l, const cx_listener_conf_t *f)
{
    if (copy_str(&l->cafile, f->cafile) || copy_str(&l->capath, f->capath) ||
        copy_str(&l->certfile, f->certfile) || copy_str(&l->keyfile, f->keyfile) ||
        copy_str(&l->crlfile, f->crlfile) || copy_str(&l->ciphers, f->ciphers) ||
        copy_str(&l->ciphers_tls13, f->ciphers_tls13) ||
        copy_str(&l->dhparamfile, f->dhparamfile) || copy_str(&l->psk_hint, f->psk_hint) ||
        copy_str(&l->psk_file, f->psk_file) || copy_str(&l->tls_engine, f->tls_engine) ||
        copy_str(&l->tls_engine_kpass_sha1, f->tls_engine_kpass_sha1))
        return CX_ENOMEM;
    l->tls_keyform_engine = f->tls_keyform_engine;
    l->tls_version = f->tls_version;
    l->require_certificate = f->require_certificate;
    l->use_identity_as_username = f->use_identity_as_username;
    l->use_subject_as_username = f->use_subject_as_username;
    l->disable_client_cert_date_checks = f->disable_client_cert_date_checks;
    return 0;
}

int cx_config_apply_reload(cx_config_t *live, const cx_config_t *fresh)
{
    for (size_t i = 0; i < cx_conf_directive_count; i++) {
        if (!global_field_row(i))
            continue;
        const cx_conf_directive_t *d = &cx_conf_directives[i];
        void *dst = (char *)live + d->offset;
        const void *src = (const char *)fresh + d->offset;
        if (d->flags & CX_CONF_RELOADABLE) {
            if (copy_slot(d->kind, dst, src))
                return CX_ENOMEM;
            if (d->set == cx_conf_set_log_dest && copy_str(&live->log_file, fresh->log_file))
                return CX_ENOMEM;
        } else if (!slot_equal(d->kind, dst, src)) {
            cx_log(CX_LOG_WARNING, "reload: '%s' changed; restart culex to apply it", d->name);
        }
    }

    /* Listeners are not reloadable; their security settings follow the new file. */
    bool same = live->listener_count == fresh->listener_count &&
                live->local_only == fresh->local_only;
    for (size_t i = 0; i < live->listener_count; i++) {
        cx_listener_conf_t *l = &live->listeners[i];
        const cx_listener_conf_t *f = NULL;
        for (size_t j = 0; j < fresh->listener_count && !f; j++)
            if (same_identity(l, &fresh->listeners[j]))
                f = &fresh->listeners[j];
        if (same && !(i < fresh->listener_count && same_listener(l, &fresh->listeners[i])))
            same = false;
        if (f) {
            l->listener_allow_anonymous = f->listener_allow_anonymous;
            l->allow_anonymous = f->allow_anonymous;
            l->allow_zero_length_clientid = f->allow_zero_length_clientid;
            if (copy_str(&l->listener_auto_id_prefix, f->listener_auto_id_prefix))
                return CX_ENOMEM;
            if (uses_tls(l) == uses_tls(f) && (l->psk_hint != NULL) == (f->psk_hint != NULL) &&
                copy_tls(l, f))
                return CX_ENOMEM;
        } else {
            resolve_security(live, l);
        }
    }
    if (!same)
        cx_log(CX_LOG_WARNING, "reload: listener changes need a restart; the listeners "
               "keep their settings");
    return cx_conf_plugins_reload(live, fresh);
}

void cx_config_log_settings(const cx_config_t *cfg, cx_log_settings_t *out)
{
    out->types = cfg->log_type;
    out->dests = cfg->log_dest;
    out->file_path = cfg->log_file;
    out->timestamp = cfg->log_timestamp;
    out->timestamp_format = cfg->log_timestamp_format;
    out->syslog_facility = cfg->log_facility;
}
