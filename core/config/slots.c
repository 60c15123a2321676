/* slots.c: the setters that store directive values, typed ones shared by every row and the
 * few custom ones for directives with odd syntax or side effects.
 *
 * A setter validates and stores; it never prints. It returns NULL or a message, and the
 * parser adds "file:line: directive: " in front (nginx's ngx_conf_set_*_slot contract).
 * Value syntax follows mosquitto's parser where users depend on it: single-token values
 * ignore the rest of the line, string values and paths take the rest of the line (spaces
 * included), booleans are true/false (and 1/0, which mosquitto also takes). */
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>

#include "conf_table.h"
#include "util/alloc.h"
#include "util/log.h"

/* ---- helpers ---------------------------------------------------------------------------- */

const char *cx_conf_msg(cx_conf_ctx_t *ctx, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(ctx->msg, sizeof ctx->msg, fmt, ap);
    va_end(ap);
    return ctx->msg;
}

const char *cx_conf_refuse(cx_conf_ctx_t *ctx, const char *feature, const char *detail_fmt, ...)
{
    int n = snprintf(ctx->msg, sizeof ctx->msg, "not supported yet (%s)", feature);
    if (detail_fmt && n > 0 && (size_t)n < sizeof ctx->msg - 2) {
        ctx->msg[n++] = ':';
        ctx->msg[n++] = ' ';
        va_list ap;
        va_start(ap, detail_fmt);
        vsnprintf(ctx->msg + n, sizeof ctx->msg - (size_t)n, detail_fmt, ap);
        va_end(ap);
    }
    ctx->refusing = feature;
    return ctx->msg;
}

/* Decimal integer with an optional sign and nothing after it. Mosquitto uses strtol base 0,
 * which reads "010" as 8; nobody writing a config means that, so base 10 it is. */
static bool parse_ll(const char *s, long long *out)
{
    if (!s || !*s)
        return false;
    char *end = NULL;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (end == s || *end != '\0' || errno == ERANGE)
        return false;
    *out = v;
    return true;
}

/* True when the whole string is well-formed UTF-8 (mosquitto refuses malformed UTF-8 in
 * string values: they end up in topics, client ids and log lines). */
bool cx_conf_utf8_valid(const char *s)
{
    const unsigned char *p = (const unsigned char *)s;
    while (*p) {
        unsigned c = *p++;
        int extra;
        unsigned min;
        if (c < 0x80)
            continue;
        else if ((c & 0xe0) == 0xc0)
            extra = 1, min = 0x80, c &= 0x1f;
        else if ((c & 0xf0) == 0xe0)
            extra = 2, min = 0x800, c &= 0x0f;
        else if ((c & 0xf8) == 0xf0)
            extra = 3, min = 0x10000, c &= 0x07;
        else
            return false;
        for (int i = 0; i < extra; i++) {
            if ((*p & 0xc0) != 0x80)
                return false;
            c = (c << 6) | (*p++ & 0x3f);
        }
        if (c < min || c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff))
            return false;
    }
    return true;
}

static const char *parse_bool(cx_conf_ctx_t *ctx, const char *v, bool *out)
{
    if (strcmp(v, "true") == 0 || strcmp(v, "1") == 0)
        *out = true;
    else if (strcmp(v, "false") == 0 || strcmp(v, "0") == 0)
        *out = false;
    else
        return cx_conf_msg(ctx, "invalid value '%s' (expected true or false)", v);
    return NULL;
}

static const char *parse_ranged(cx_conf_ctx_t *ctx, const cx_conf_directive_t *d,
                                const char *v, long long *out)
{
    const cx_conf_range_t *r = d->post;
    long long n = 0;
    if (!parse_ll(v, &n))
        return cx_conf_msg(ctx, "invalid value '%s' (expected an integer)", v);
    if (r) {
        if (n < 0 && r->clamp_negative)
            n = r->negative_as;
        else if (n < r->min || n > r->max)
            return cx_conf_msg(ctx, "value %lld out of range (%lld..%lld)", n, r->min, r->max);
    }
    *out = n;
    return NULL;
}

static const char *store_string(cx_conf_ctx_t *ctx, char **slot, const char *v, size_t maxlen)
{
    if (!*v)
        return "missing value";
    if (!cx_conf_utf8_valid(v))
        return "value is not valid UTF-8";
    if (maxlen && strlen(v) > maxlen)
        return cx_conf_msg(ctx, "value longer than %zu characters", maxlen);
    char *copy = cx_strdup(v);
    if (!copy)
        return "out of memory";
    /* Last one wins: conf.d files override the main file, as users expect. */
    cx_free(*slot);
    *slot = copy;
    return NULL;
}

/* ---- typed setters ---------------------------------------------------------------------- */

const char *cx_conf_set_bool(cx_conf_ctx_t *ctx, const cx_conf_directive_t *d, void *slot,
                             const cx_conf_args_t *a)
{
    return parse_bool(ctx, a->argv[0], slot);
}

const char *cx_conf_set_int(cx_conf_ctx_t *ctx, const cx_conf_directive_t *d, void *slot,
                            const cx_conf_args_t *a)
{
    long long n = 0;
    const char *m = parse_ranged(ctx, d, a->argv[0], &n);
    if (m)
        return m;
    if (n < INT_MIN || n > INT_MAX)
        return cx_conf_msg(ctx, "value %lld out of range", n);
    *(int *)slot = (int)n;
    return NULL;
}

/* Plain byte counts, as mosquitto takes them (no k/M/G suffixes). */
const char *cx_conf_set_size(cx_conf_ctx_t *ctx, const cx_conf_directive_t *d, void *slot,
                             const cx_conf_args_t *a)
{
    long long n = 0;
    const char *m = parse_ranged(ctx, d, a->argv[0], &n);
    if (m)
        return m;
    if (n < 0)
        return cx_conf_msg(ctx, "value %lld out of range (0 or more)", n);
    *(size_t *)slot = (size_t)n;
    return NULL;
}

/* mosquitto's duration syntax: an integer and a unit, s h d w m y (m is a 30-day month, y
 * 365 days). A bare integer is taken as seconds, which mosquitto refuses: harmless. */
const char *cx_conf_set_duration(cx_conf_ctx_t *ctx, const cx_conf_directive_t *d, void *slot,
                                 const cx_conf_args_t *a)
{
    const char *v = a->argv[0];
    size_t len = strlen(v);
    int64_t mult = 1;
    char num[32];
    if (len == 0 || len >= sizeof num)
        return cx_conf_msg(ctx, "invalid duration '%s'", v);
    memcpy(num, v, len + 1);
    if (num[len - 1] < '0' || num[len - 1] > '9') {
        switch (num[len - 1]) {
        case 's': mult = 1; break;
        case 'h': mult = 3600; break;
        case 'd': mult = 86400; break;
        case 'w': mult = 86400 * 7; break;
        case 'm': mult = 86400 * 30; break;
        case 'y': mult = 86400 * 365; break;
        default: mult = 0; break;
        }
        num[len - 1] = '\0';
    }
    long long n = 0;
    if (!mult || !parse_ll(num, &n))
        return cx_conf_msg(ctx, "invalid duration '%s' (expected a number and one of "
                                "s h d w m y, e.g. 14d)", v);
    if (n <= 0 || n > INT64_MAX / mult)
        return cx_conf_msg(ctx, "duration '%s' out of range (must be positive)", v);
    *(int64_t *)slot = (int64_t)n * mult;
    return NULL;
}

const char *cx_conf_set_string(cx_conf_ctx_t *ctx, const cx_conf_directive_t *d, void *slot,
                               const cx_conf_args_t *a)
{
    const cx_conf_range_t *r = d->post; /* optional: max length */
    return store_string(ctx, slot, a->rest, r ? (size_t)r->max : 0);
}

/* Paths are kept as written: mosquitto resolves relative ones against the working
 * directory when it opens them, and so does culex. */
const char *cx_conf_set_path(cx_conf_ctx_t *ctx, const cx_conf_directive_t *d, void *slot,
                             const cx_conf_args_t *a)
{
    return store_string(ctx, slot, a->rest, 0);
}

const char *cx_conf_set_enum(cx_conf_ctx_t *ctx, const cx_conf_directive_t *d, void *slot,
                             const cx_conf_args_t *a)
{
    const cx_conf_enum_t *e = d->post;
    char list[160];
    size_t used = 0;
    list[0] = '\0';
    for (; e->name; e++) {
        if (strcmp(e->name, a->argv[0]) == 0) {
            *(int *)slot = e->value;
            return NULL;
        }
        int n = snprintf(list + used, sizeof list - used, "%s%s", used ? ", " : "", e->name);
        if (n > 0 && (size_t)n < sizeof list - used)
            used += (size_t)n;
    }
    return cx_conf_msg(ctx, "invalid value '%s' (expected one of: %s)", a->argv[0], list);
}

/* ---- listeners -------------------------------------------------------------------------- */

/* `listener PORT [ADDRESS | UNIX-SOCKET-PATH]`. A trailing `# comment` is not an address
 * (the tokeniser stops at it), which mosquitto also special-cases. */
const char *cx_conf_set_listener(cx_conf_ctx_t *ctx, const cx_conf_directive_t *d, void *slot,
                                 const cx_conf_args_t *a)
{
    long long port = 0;
    if (!parse_ll(a->argv[0], &port) || port < 0 || port > 65535)
        return cx_conf_msg(ctx, "invalid port '%s' (expected 0..65535)", a->argv[0]);
    const char *where = a->argc > 1 ? a->argv[1] : NULL;
    if (port == 0 && !where)
        return "port 0 needs a unix socket path: `listener 0 /path/to/socket`";
    long idx = cx_conf_add_listener(ctx);
    if (idx < 0)
        return "out of memory";
    cx_listener_conf_t *l = &ctx->cfg->listeners[idx];
    l->port = (int)port;
    if (where) {
        char **dst = port == 0 ? &l->unix_socket : &l->bind_address;
        const char *m = store_string(ctx, dst, where, 0);
        if (m)
            return m;
    }
    ctx->cur_listener = idx;
    ctx->cfg->local_only = false;
    return NULL;
}

static cx_listener_conf_t *default_listener(cx_conf_ctx_t *ctx, const char *why)
{
    if (ctx->default_listener < 0) {
        long idx = cx_conf_add_listener(ctx);
        if (idx < 0)
            return NULL;
        ctx->default_listener = idx;
        cx_log(CX_LOG_INFO, "%s:%d: %s: creating the default listener (port 1883); an "
               "explicit `listener` line is clearer", ctx->file, ctx->line, why);
    }
    ctx->cur_listener = ctx->default_listener;
    return &ctx->cfg->listeners[ctx->default_listener];
}

cx_listener_conf_t *cx_conf_current_listener(cx_conf_ctx_t *ctx, const char *why, bool create)
{
    if (ctx->cur_listener >= 0)
        return &ctx->cfg->listeners[ctx->cur_listener];
    return create ? default_listener(ctx, why) : NULL;
}

/* Deprecated `port N`: the port of the default listener, which becomes current. */
const char *cx_conf_set_port(cx_conf_ctx_t *ctx, const cx_conf_directive_t *d, void *slot,
                             const cx_conf_args_t *a)
{
    long long port = 0;
    if (!parse_ll(a->argv[0], &port) || port < 1 || port > 65535)
        return cx_conf_msg(ctx, "invalid port '%s' (expected 1..65535)", a->argv[0]);
    cx_listener_conf_t *l = default_listener(ctx, a->name);
    if (!l)
        return "out of memory";
    if (ctx->default_port_set && l->port != (int)port)
        cx_log(CX_LOG_WARNING, "%s:%d: port: the default listener's port is set more than "
               "once; the last one (%lld) is used", ctx->file, ctx->line, port);
    ctx->default_port_set = true;
    l->port = (int)port;
    ctx->cfg->local_only = false;
    return NULL;
}

/* Deprecated `bind_address ADDR`: the address of the default listener. */
const char *cx_conf_set_bind_address(cx_conf_ctx_t *ctx, const cx_conf_directive_t *d,
                                     void *slot, const cx_conf_args_t *a)
{
    cx_listener_conf_t *l = default_listener(ctx, a->name);
    if (!l)
        return "out of memory";
    ctx->cfg->local_only = false;
    return store_string(ctx, &l->bind_address, a->rest, 0);
}

const char *cx_conf_set_protocol(cx_conf_ctx_t *ctx, const cx_conf_directive_t *d, void *slot,
                                 const cx_conf_args_t *a)
{
    const char *v = a->argv[0];
    if (strcmp(v, "mqtt") == 0) {
        *(int *)slot = CX_PROTO_MQTT;
        return NULL;
    }
    if (strcmp(v, "websockets") == 0) {
        *(int *)slot = CX_PROTO_WEBSOCKETS;
        return NULL;
    }
    if (strcmp(v, "http_api") == 0)
        return cx_conf_refuse(ctx, "HTTP API", NULL);
    return cx_conf_msg(ctx, "invalid value '%s' (expected mqtt, websockets or http_api)", v);
}

/* `accept_protocol_versions 3, 4`: a list of protocol levels separated by commas and/or
 * blanks. Mosquitto silently ignores values it does not know, which can leave a listener
 * that accepts nobody; culex refuses them instead. */
const char *cx_conf_set_accept_versions(cx_conf_ctx_t *ctx, const cx_conf_directive_t *d,
                                        void *slot, const cx_conf_args_t *a)
{
    unsigned bits = 0;
    const char *p = a->rest;
    while (*p) {
        while (*p == ',' || *p == ' ' || *p == '\t')
            p++;
        if (!*p || *p == '#')
            break;
        const char *s = p;
        while (*p && *p != ',' && *p != ' ' && *p != '\t')
            p++;
        size_t n = (size_t)(p - s);
        if (n == 1 && *s >= '3' && *s <= '5')
            bits |= 1u << (*s - '0');
        else
            return cx_conf_msg(ctx, "invalid protocol version '%.*s' (expected 3 for MQTT "
                                    "3.1, 4 for 3.1.1, 5 for 5.0)", (int)n, s);
    }
    if (!bits)
        return "missing value";
    *(unsigned *)slot = bits;
    return NULL;
}

/* The mount point is a topic prefix: no wildcards. */
const char *cx_conf_set_mount_point(cx_conf_ctx_t *ctx, const cx_conf_directive_t *d,
                                    void *slot, const cx_conf_args_t *a)
{
    if (strpbrk(a->rest, "+#"))
        return cx_conf_msg(ctx, "invalid value '%s' (a mount point cannot contain + or #)",
                           a->rest);
    return store_string(ctx, slot, a->rest, 0);
}

/* A boolean stored as an int where -1 means "not set" (listener_allow_anonymous). */
const char *cx_conf_set_tristate(cx_conf_ctx_t *ctx, const cx_conf_directive_t *d, void *slot,
                                 const cx_conf_args_t *a)
{
    bool b = false;
    const char *m = parse_bool(ctx, a->argv[0], &b);
    if (!m)
        *(int *)slot = b;
    return m;
}

/* allow_anonymous, allow_zero_length_clientid and auto_id_prefix: global values, or values
 * of the current listener when per_listener_settings is true (the parser has checked that
 * there is one). `post` holds the offset of the listener field; `kind` says its type. */
const char *cx_conf_set_security(cx_conf_ctx_t *ctx, const cx_conf_directive_t *d, void *slot,
                                 const cx_conf_args_t *a)
{
    ctx->security_set = true;
    if (ctx->cfg->per_listener_settings) {
        cx_listener_conf_t *l = cx_conf_current_listener(ctx, a->name, false);
        slot = (char *)l + *(const size_t *)d->post;
    }
    switch (d->kind) {
    case CX_CONF_K_INT: return cx_conf_set_tristate(ctx, d, slot, a);
    case CX_CONF_K_BOOL: return cx_conf_set_bool(ctx, d, slot, a);
    default: return store_string(ctx, slot, a->rest, 0);
    }
}

/* Mosquitto lets per_listener_settings be turned on only before any security setting, and
 * never turned off again once on. */
const char *cx_conf_set_per_listener_settings(cx_conf_ctx_t *ctx, const cx_conf_directive_t *d,
                                              void *slot, const cx_conf_args_t *a)
{
    bool b = false;
    const char *m = parse_bool(ctx, a->argv[0], &b);
    if (m)
        return m;
    if (ctx->cfg->per_listener_settings)
        return NULL;
    if (b && ctx->security_set)
        return "must come before allow_anonymous, allow_zero_length_clientid, auto_id_prefix, "
               "password_file, acl_file and plugins (put it at the top of the file)";
    ctx->cfg->per_listener_settings = b;
    return NULL;
}

/* Minutes in the file, seconds in the struct. Like mosquitto: at least 1, capped at
 * 10000000 minutes (19 years). */
const char *cx_conf_set_retain_expiry(cx_conf_ctx_t *ctx, const cx_conf_directive_t *d,
                                      void *slot, const cx_conf_args_t *a)
{
    long long n = 0;
    if (!parse_ll(a->argv[0], &n))
        return cx_conf_msg(ctx, "invalid value '%s' (expected minutes)", a->argv[0]);
    if (n < 1)
        return cx_conf_msg(ctx, "value %lld out of range (1 or more minutes)", n);
    if (n > 10000000) {
        cx_log(CX_LOG_WARNING, "%s:%d: %s: capped at 10000000 minutes", ctx->file, ctx->line,
               a->name);
        n = 10000000;
    }
    *(int64_t *)slot = (int64_t)n * 60;
    return NULL;
}

/* ---- logging ---------------------------------------------------------------------------- */

/* The first log_dest line of a load replaces the default (stderr); later ones add to it,
 * `none` clears what came before. `log_dest file` takes the rest of the line as the path,
 * a trailing `# comment` included, exactly as mosquitto does. */
const char *cx_conf_set_log_dest(cx_conf_ctx_t *ctx, const cx_conf_directive_t *d, void *slot,
                                 const cx_conf_args_t *a)
{
    cx_config_t *cfg = ctx->cfg;
    const char *v = a->argv[0];
    unsigned bit = 0;
    /* The parser only checks that the rest of the line is not empty; a first word that
     * starts with '#' ends the tokens, so `log_dest # file` has no value at all. */
    if (!v)
        return "missing value";
    if (!ctx->log_dest_set) {
        cfg->log_dest = 0;
        ctx->log_dest_set = true;
    }
    if (strcmp(v, "none") == 0) {
        cfg->log_dest = 0;
        return NULL;
    } else if (strcmp(v, "stdout") == 0) {
        bit = CX_LOGDEST_STDOUT;
    } else if (strcmp(v, "stderr") == 0) {
        bit = CX_LOGDEST_STDERR;
    } else if (strcmp(v, "syslog") == 0) {
        bit = CX_LOGDEST_SYSLOG;
    } else if (strcmp(v, "topic") == 0) {
        bit = CX_LOGDEST_TOPIC;
    } else if (strcmp(v, "dlt") == 0 || strcmp(v, "android") == 0) {
        /* Platform sinks mosquitto has only in special builds; not worth failing over. */
        cx_log(CX_LOG_WARNING, "%s:%d: log_dest: '%s' is not available in culex, ignored",
               ctx->file, ctx->line, v);
        return NULL;
    } else if (strcmp(v, "file") == 0) {
        const char *path = a->rest + 4;
        while (*path == ' ' || *path == '\t')
            path++;
        if (!*path)
            return "`log_dest file` needs a path";
        if (cfg->log_file)
            return "only one `log_dest file` is allowed";
        const char *m = store_string(ctx, &cfg->log_file, path, 0);
        if (m)
            return m;
        bit = CX_LOGDEST_FILE;
    } else {
        return cx_conf_msg(ctx, "invalid value '%s' (expected stdout, stderr, syslog, topic, "
                                "file PATH or none)", v);
    }
    cfg->log_dest |= bit;
    return NULL;
}

/* Same accumulation rule as log_dest: the first line replaces the default set. */
const char *cx_conf_set_log_type(cx_conf_ctx_t *ctx, const cx_conf_directive_t *d, void *slot,
                                 const cx_conf_args_t *a)
{
    static const struct {
        const char *name;
        unsigned bit;
    } types[] = {
        {"debug", CX_LOG_DEBUG},         {"error", CX_LOG_ERR},
        {"warning", CX_LOG_WARNING},     {"notice", CX_LOG_NOTICE},
        {"information", CX_LOG_INFO},    {"subscribe", CX_LOG_SUBSCRIBE},
        {"unsubscribe", CX_LOG_UNSUBSCRIBE}, {"websockets", CX_LOG_WEBSOCKETS},
        {"internal", 0}, /* mosquitto's own internals: nothing in culex logs as such */
    };
    cx_config_t *cfg = ctx->cfg;
    const char *v = a->argv[0];
    if (!ctx->log_type_set) {
        cfg->log_type = 0;
        ctx->log_type_set = true;
    }
    if (strcmp(v, "none") == 0) {
        cfg->log_type = 0;
        return NULL;
    }
    if (strcmp(v, "all") == 0) {
        cfg->log_type = CX_LOG_ALL;
        return NULL;
    }
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++)
        if (strcmp(types[i].name, v) == 0) {
            cfg->log_type |= types[i].bit;
            return NULL;
        }
    return cx_conf_msg(ctx, "invalid value '%s' (expected debug, error, warning, notice, "
                            "information, subscribe, unsubscribe, websockets, none or all)", v);
}

/* `log_facility N` selects syslog facility localN. */
const char *cx_conf_set_log_facility(cx_conf_ctx_t *ctx, const cx_conf_directive_t *d,
                                     void *slot, const cx_conf_args_t *a)
{
    static const int local[8] = {LOG_LOCAL0, LOG_LOCAL1, LOG_LOCAL2, LOG_LOCAL3,
                                 LOG_LOCAL4, LOG_LOCAL5, LOG_LOCAL6, LOG_LOCAL7};
    long long n = 0;
    if (!parse_ll(a->argv[0], &n) || n < 0 || n > 7)
        return cx_conf_msg(ctx, "invalid value '%s' (expected 0..7 for local0..local7)",
                           a->argv[0]);
    *(int *)slot = local[n];
    return NULL;
}

/* ---- recognised, not (yet) acted on ---------------------------------------------------- */

/* Obsolete directives mosquitto 2 still accepts with a warning (the parser prints it). */
const char *cx_conf_set_obsolete(cx_conf_ctx_t *ctx, const cx_conf_directive_t *d, void *slot,
                                 const cx_conf_args_t *a)
{
    return NULL;
}

/* Directives of features other parts of culex will deliver. A boolean flagged FALSE_OK
 * accepts `false`, its default, since that asks for nothing culex lacks. */
const char *cx_conf_set_unsupported(cx_conf_ctx_t *ctx, const cx_conf_directive_t *d,
                                    void *slot, const cx_conf_args_t *a)
{
    if (d->flags & CX_CONF_FALSE_OK) {
        bool b = false;
        const char *m = parse_bool(ctx, a->argv[0], &b);
        if (m || !b)
            return m;
    }
    return cx_conf_refuse(ctx, d->note, NULL);
}

/* `connection NAME` opens a bridge block; the block's directives are then skipped quietly,
 * this one line having said that bridges are not there yet. */
const char *cx_conf_set_connection(cx_conf_ctx_t *ctx, const cx_conf_directive_t *d,
                                   void *slot, const cx_conf_args_t *a)
{
    ctx->in_bridge = true;
    ctx->bridge_refused = true;
    return cx_conf_refuse(ctx, d->note, "bridge '%s'", a->argv[0]);
}
