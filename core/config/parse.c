/* parse.c: reads mosquitto.conf files: lines, tokens, include_dir, file:line tracking, and
 * the checks every directive goes through before its setter runs (scope, arity, syntax).
 *
 * Tokenising follows mosquitto: a line is a directive name and values separated by blanks;
 * a line whose first non-blank character is '#' is a comment; a value token starting with
 * '#' ends the values (trailing comments after single-token values); CRLF line endings,
 * a UTF-8 byte order mark and a missing final newline are accepted. Errors are reported as
 * "file:line: directive: message". */
#include <dirent.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <unistd.h>
#include "conf_table.h"
#include "util/alloc.h"
#include "util/err.h"
#include "util/log.h"

/* Config files are small; this only stops a mistaken `-c /dev/zero` or a huge log file. */
#define MAX_CONF_FILE (16u * 1024 * 1024)
/* Nested include_dir is not allowed, so this only bounds error reporting. */
#define MAX_ERRORS 16

/* ---- errors and warnings ---------------------------------------------------------------- */

static void add_error(cx_conf_ctx_t *ctx, const char *file, int line, const char *directive,
                      const char *msg)
{
    char text[768];
    int n;
    if (line > 0 && directive)
        n = snprintf(text, sizeof text, "%s:%d: %s: %s", file, line, directive, msg);
    else if (line > 0)
        n = snprintf(text, sizeof text, "%s:%d: %s", file, line, msg);
    else
        n = snprintf(text, sizeof text, "%s: %s", file, msg);
    if (n < 0)
        return;
    ctx->nerr++;
    if (!ctx->err || ctx->errlen == 0)
        return;
    size_t room = ctx->errlen - ctx->errused;
    if (room <= 1)
        return;
    int w = snprintf(ctx->err + ctx->errused, room, "%s%s", ctx->errused ? "\n" : "", text);
    if (w > 0)
        ctx->errused += (size_t)w < room ? (size_t)w : room - 1;
}

void cx_conf_warn_once(cx_conf_ctx_t *ctx, const cx_conf_directive_t *d, unsigned kind,
                       const char *fmt, ...)
{
    size_t i = (size_t)(d - cx_conf_directives);
    if (ctx->warned[i] & kind)
        return;
    ctx->warned[i] |= (unsigned char)kind;
    char text[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    cx_log(CX_LOG_WARNING, "%s:%d: %s: %s", ctx->file, ctx->line,
           ctx->directive ? ctx->directive : d->name, text);
}

/* Remembers a file name for the life of the config (listeners point at it). */
static const char *intern_file(cx_conf_ctx_t *ctx, const char *path)
{
    cx_config_t *cfg = ctx->cfg;
    char **n = cx_realloc(cfg->conf_files, (cfg->conf_file_count + 1) * sizeof *n);
    if (!n)
        return NULL;
    cfg->conf_files = n;
    char *copy = cx_strdup(path);
    if (!copy)
        return NULL;
    cfg->conf_files[cfg->conf_file_count++] = copy;
    return copy;
}

/* ---- one directive ---------------------------------------------------------------------- */

static bool is_blank(char c) { return c == ' ' || c == '\t'; }

/* Splits `buf` (a copy of the values) into tokens in place, stopping at a token that
 * starts with '#'. */
static size_t tokenise(char *buf, char **argv, size_t max)
{
    size_t argc = 0;
    char *p = buf;
    while (argc < max) {
        while (is_blank(*p))
            p++;
        if (!*p || *p == '#')
            break;
        argv[argc++] = p;
        while (*p && !is_blank(*p))
            p++;
        if (*p)
            *p++ = '\0';
    }
    return argc;
}

/* Where the row's slot lives right now, or NULL for rows that store nothing at an offset.
 * Listener rows may create mosquitto's default listener here (DEFLISTENER). */
static void *slot_for(cx_conf_ctx_t *ctx, const cx_conf_directive_t *d, const char *name)
{
    if (d->kind == CX_CONF_K_NONE && d->offset == 0)
        return NULL;
    if ((d->scope & CX_CONF_LISTENER) && !(d->scope & CX_CONF_GLOBAL)) {
        cx_listener_conf_t *l =
            cx_conf_current_listener(ctx, name, (d->flags & CX_CONF_DEFLISTENER) != 0);
        return l ? (char *)l + d->offset : NULL;
    }
    return (char *)ctx->cfg + d->offset;
}

/* Runs one directive line. Returns 0 (done or refused softly), CX_ECONFIG or CX_ENOMEM. */
static int run_directive(cx_conf_ctx_t *ctx, const char *name, const char *rest)
{
    const cx_conf_directive_t *d = cx_conf_find(name);
    if (!d) {
        add_error(ctx, ctx->file, ctx->line, name,
                  strchr(name, '=') ? "unknown directive (write `name value`, without '=')"
                                    : "unknown directive");
        return CX_ECONFIG;
    }

    /* Scope: where this directive may appear. */
    const char *scope_msg = NULL;
    bool listener_only = (d->scope & CX_CONF_LISTENER) && !(d->scope & CX_CONF_GLOBAL);
    if (d->scope == CX_CONF_BRIDGE) {
        if (!ctx->in_bridge)
            scope_msg = "only valid inside a bridge, after a `connection NAME` line";
        else if (ctx->bridge_refused)
            return 0; /* the `connection` line has been refused already */
    } else if (d->scope == CX_CONF_PLUGIN) {
        if (ctx->cur_plugin < 0)
            scope_msg = "only valid after a plugin line (plugin, global_plugin, auth_plugin, "
                        "plugin_load or plugin_use) of the same file";
    } else if (listener_only) {
        bool none = ctx->cur_listener < 0;
        if ((d->flags & CX_CONF_NOTDEFAULT) && (none || ctx->cur_listener == ctx->default_listener))
            scope_msg = "only valid after a `listener` line";
        else if (none && !(d->flags & CX_CONF_DEFLISTENER))
            scope_msg = "only valid after a `listener` line";
    } else if ((d->flags & CX_CONF_PERLISTENER) && ctx->cfg->per_listener_settings &&
               ctx->cur_listener < 0 &&
               !(d->flags & (CX_CONF_UNSUPPORTED | CX_CONF_EARLY_GLOBAL))) {
        /* mosquitto 2.0 files the value under a default listener that is never started, so
         * it has no effect; 2.1 refuses the file. Real files do this (the corpus has one
         * that 2.0 runs), and ignoring it is never less strict: an unset allow_anonymous
         * is false. So: ignore, loudly. */
        cx_conf_warn_once(ctx, d, CX_CONF_WARN_IGNORED,
                          "ignored: with per_listener_settings true it must follow a "
                          "`listener` line");
        return 0;
    }
    if (scope_msg) {
        add_error(ctx, ctx->file, ctx->line, name, scope_msg);
        return CX_ECONFIG;
    }

    char *copy = cx_strdup(rest);
    if (!copy)
        return CX_ENOMEM;
    /* Tokens past CX_CONF_MAX_TOKENS are dropped: no directive takes that many. */
    char *argv[CX_CONF_MAX_TOKENS + 1];
    cx_conf_args_t a = {.name = name, .argv = argv, .rest = rest};
    a.argc = tokenise(copy, argv, CX_CONF_MAX_TOKENS);
    argv[a.argc] = NULL;
    int rc = 0;
    const char *msg = NULL;

    /* Syntax shared by all: no `key = value` (mosquitto would store "=" as the value or
     * fail on it: say what is wrong instead), enough values. */
    if (a.argc >= 1 && strcmp(argv[0], "=") == 0) {
        msg = "write `name value`: mosquitto.conf has no '=' between a directive and its value";
    } else if (d->max_args == CX_CONF_REST ? (d->min_args > 0 && !*rest) : a.argc < d->min_args) {
        msg = d->min_args > 1 ? cx_conf_msg(ctx, "expects at least %u values", d->min_args)
                              : "missing value";
    }
    if (msg) {
        add_error(ctx, ctx->file, ctx->line, name, msg);
        rc = CX_ECONFIG;
        goto out;
    }
    if (d->max_args != CX_CONF_REST && a.argc > d->max_args)
        cx_conf_warn_once(ctx, d, CX_CONF_WARN_EXTRA, "ignoring extra value '%s'",
                          argv[d->max_args]);
    if ((d->flags & CX_CONF_DEPRECATED) && !(d->flags & CX_CONF_UNSUPPORTED))
        cx_conf_warn_once(ctx, d, CX_CONF_WARN_DEPRECATED, "deprecated: %s",
                          d->note ? d->note : "see the reference");

    void *slot = slot_for(ctx, d, name);
    if (!slot && (d->kind != CX_CONF_K_NONE || d->offset != 0)) {
        rc = CX_ENOMEM;
        goto out;
    }
    ctx->refusing = NULL;
    ctx->abort_rc = 0;
    msg = d->set(ctx, d, slot, &a);
    if (ctx->abort_rc) {
        rc = ctx->abort_rc;
    } else if (msg && ctx->refusing) {
        /* A feature culex does not have yet: report it once and keep reading, so that one
         * run lists everything the file needs. */
        for (size_t i = 0; i < ctx->refused_count; i++)
            if (strcmp(ctx->refused_notes[i], ctx->refusing) == 0)
                goto out;
        if (ctx->refused_count < sizeof ctx->refused_notes / sizeof ctx->refused_notes[0])
            ctx->refused_notes[ctx->refused_count++] = ctx->refusing;
        add_error(ctx, ctx->file, ctx->line, name, msg);
    } else if (msg) {
        add_error(ctx, ctx->file, ctx->line, name, msg);
        rc = strcmp(msg, "out of memory") == 0 ? CX_ENOMEM : CX_ECONFIG;
    }
out:
    cx_free(copy);
    return rc;
}

/* run_directive with the name as written known to warnings (prefix rows: plugin_opt_x). */
static int handle_directive(cx_conf_ctx_t *ctx, const char *name, const char *rest)
{
    const char *outer = ctx->directive; /* include_dir handles nested lines */
    ctx->directive = name;
    int rc = run_directive(ctx, name, rest);
    ctx->directive = outer;
    return rc;
}

/* ---- files ------------------------------------------------------------------------------ */

static int read_whole_file(cx_conf_ctx_t *ctx, const char *path, char **out, size_t *outlen,
                           struct stat *st)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        add_error(ctx, path, 0, NULL, cx_conf_msg(ctx, "cannot open: %s", strerror(errno)));
        return CX_ECONFIG;
    }
    if (fstat(fileno(f), st) != 0 || !S_ISREG(st->st_mode)) {
        fclose(f);
        add_error(ctx, path, 0, NULL, "not a regular file");
        return CX_ECONFIG;
    }
    if ((uint64_t)st->st_size > MAX_CONF_FILE) {
        fclose(f);
        add_error(ctx, path, 0, NULL, "file too large for a configuration file");
        return CX_ECONFIG;
    }
    size_t cap = (size_t)st->st_size + 1, len = 0;
    char *buf = cx_malloc(cap);
    if (!buf) {
        fclose(f);
        return CX_ENOMEM;
    }
    /* Read until EOF rather than trusting st_size: the file may be growing or a pipe-like
     * special file that slipped through. */
    for (;;) {
        if (len + 1 >= cap) {
            if (cap > MAX_CONF_FILE) {
                cx_free(buf);
                fclose(f);
                add_error(ctx, path, 0, NULL, "file too large for a configuration file");
                return CX_ECONFIG;
            }
            char *nb = cx_realloc(buf, cap * 2);
            if (!nb) {
                cx_free(buf);
                fclose(f);
                return CX_ENOMEM;
            }
            buf = nb;
            cap *= 2;
        }
        size_t n = fread(buf + len, 1, cap - 1 - len, f);
        len += n;
        if (n == 0)
            break;
    }
    int failed = ferror(f);
    fclose(f);
    if (failed) {
        cx_free(buf);
        add_error(ctx, path, 0, NULL, "read error");
        return CX_ECONFIG;
    }
    buf[len] = '\0';
    *out = buf;
    *outlen = len;
    return 0;
}

int cx_conf_parse_file(cx_conf_ctx_t *ctx, const char *path, int level)
{
    char *buf;
    size_t len;
    struct stat st;
    int rc = read_whole_file(ctx, path, &buf, &len, &st);
    if (rc)
        return rc;
    if (level == 0) {
        ctx->main_dev = (uint64_t)st.st_dev;
        ctx->main_ino = (uint64_t)st.st_ino;
    }

    const char *file = intern_file(ctx, path);
    if (!file) {
        cx_free(buf);
        return CX_ENOMEM;
    }
    const char *saved_file = ctx->file;
    int saved_line = ctx->line, saved_level = ctx->level;
    long saved_plugin = ctx->cur_plugin;
    ctx->file = file;
    ctx->level = level;
    ctx->line = 0;
    ctx->cur_plugin = -1; /* mosquitto: plugin options follow a plugin line of their file */

    char *p = buf, *end = buf + len;
    if (len >= 3 && memcmp(p, "\xEF\xBB\xBF", 3) == 0) /* UTF-8 BOM from Windows editors */
        p += 3;
    while (p < end && rc == 0) {
        char *eol = memchr(p, '\n', (size_t)(end - p));
        char *next = eol ? eol + 1 : end;
        char *lend = eol ? eol : end;
        ctx->line++;
        if (memchr(p, '\0', (size_t)(lend - p))) {
            add_error(ctx, file, ctx->line, NULL, "line contains a NUL byte (binary file?)");
            rc = CX_ECONFIG;
            break;
        }
        while (lend > p && (lend[-1] == '\r' || is_blank(lend[-1])))
            lend--;
        *lend = '\0';
        while (is_blank(*p))
            p++;
        if (*p && *p != '#') {
            char *name = p;
            while (*p && !is_blank(*p))
                p++;
            if (*p)
                *p++ = '\0';
            while (is_blank(*p))
                p++;
            rc = handle_directive(ctx, name, p);
            if (ctx->nerr >= MAX_ERRORS && rc == 0)
                rc = CX_ECONFIG;
        }
        p = next;
    }

    cx_free(buf);
    ctx->file = saved_file;
    ctx->line = saved_line;
    ctx->level = saved_level;
    ctx->cur_plugin = saved_plugin;
    return rc;
}

/* ---- include_dir ------------------------------------------------------------------------ */

/* mosquitto's order: letter by letter case-insensitively, and where two letters differ
 * only in case, upper case first. So 00.conf 01.conf A.conf a.conf B.conf b.conf. */
static int include_order(const void *pa, const void *pb)
{
    const unsigned char *a = *(const unsigned char *const *)pa;
    const unsigned char *b = *(const unsigned char *const *)pb;
    for (; *a && *b; a++, b++) {
        int ua = (*a >= 'a' && *a <= 'z') ? *a - 32 : *a;
        int ub = (*b >= 'a' && *b <= 'z') ? *b - 32 : *b;
        if (ua != ub)
            return ua - ub;
        if (*a != *b)
            return (int)*a - (int)*b;
    }
    return (int)*a - (int)*b;
}

static bool ends_with_conf(const char *name)
{
    size_t n = strlen(name);
    return n > 5 && strcmp(name + n - 5, ".conf") == 0;
}

const char *cx_conf_set_include_dir(cx_conf_ctx_t *ctx, const cx_conf_directive_t *d,
                                    void *slot, const cx_conf_args_t *a)
{
    if (ctx->level > 0)
        return "only valid in the main configuration file";
    const char *dir = a->rest;
    DIR *dh = opendir(dir);
    if (!dh)
        return cx_conf_msg(ctx, "cannot open directory '%s': %s", dir, strerror(errno));

    char **files = NULL;
    size_t count = 0, cap = 0;
    const char *msg = NULL;
    struct dirent *de;
    while ((de = readdir(dh)) != NULL) {
        if (!ends_with_conf(de->d_name))
            continue;
        size_t plen = strlen(dir) + 1 + strlen(de->d_name) + 1;
        char *path = cx_malloc(plen);
        if (!path) {
            msg = "out of memory";
            break;
        }
        snprintf(path, plen, "%s/%s", dir, de->d_name);
        struct stat st;
        /* Only regular files (a conf.d/old.conf/ directory is not a config file). */
        if (stat(path, &st) != 0 || !S_ISREG(st.st_mode)) {
            cx_free(path);
            continue;
        }
        if ((uint64_t)st.st_dev == ctx->main_dev && (uint64_t)st.st_ino == ctx->main_ino) {
            msg = cx_conf_msg(ctx, "'%s' is the main configuration file; include_dir must not "
                                   "contain it", path);
            cx_free(path);
            break;
        }
        if (count == cap) {
            size_t ncap = cap ? cap * 2 : 16;
            char **nf = cx_realloc(files, ncap * sizeof *nf);
            if (!nf) {
                cx_free(path);
                msg = "out of memory";
                break;
            }
            files = nf;
            cap = ncap;
        }
        files[count++] = path;
    }
    closedir(dh);

    int rc = 0;
    if (!msg) {
        if (count)
            qsort(files, count, sizeof *files, include_order);
        for (size_t i = 0; i < count && rc == 0; i++) {
            cx_log(CX_LOG_INFO, "loading config file %s", files[i]);
            rc = cx_conf_parse_file(ctx, files[i], ctx->level + 1);
        }
    }
    for (size_t i = 0; i < count; i++)
        cx_free(files[i]);
    cx_free(files);
    if (msg)
        return msg;
    if (rc == CX_ENOMEM)
        return "out of memory";
    /* The included file reported its own errors; a hard one stops this file too. */
    ctx->abort_rc = rc;
    return NULL;
}

/* ---- entry point ------------------------------------------------------------------------ */

/* When a file is refused anyway, its plugin files that cannot be read are named too, so one
 * run lists every problem (a missing plugin is otherwise found by the host at start). */
static void name_missing_plugins(cx_conf_ctx_t *ctx)
{
    const cx_config_t *cfg = ctx->cfg;
    for (size_t i = 0; i < cfg->plugin_count; i++) {
        const cx_plugin_conf_t *p = &cfg->plugins[i];
        if (!p->path || access(p->path, R_OK) == 0)
            continue;
        char msg[600];
        snprintf(msg, sizeof msg, "cannot load plugin %s: %s", p->path, strerror(errno));
        add_error(ctx, p->file ? p->file : "?", p->line, "plugin", msg);
    }
}

int cx_config_load(cx_config_t *cfg, const char *path, char *err, size_t errlen)
{
    if (err && errlen)
        err[0] = '\0';
    cx_conf_ctx_t ctx = {
        .cfg = cfg,
        .cur_listener = -1,
        .default_listener = -1,
        .cur_plugin = -1,
        .err = err,
        .errlen = errlen,
    };
    ctx.warned = cx_calloc(cx_conf_directive_count, 1);
    char *cf = cx_strdup(path);
    if (!ctx.warned || !cf) {
        cx_free(ctx.warned);
        cx_free(cf);
        return CX_ENOMEM;
    }
    cx_free(cfg->config_file);
    cfg->config_file = cf;

    int rc = cx_conf_parse_file(&ctx, path, 0);
    if (rc == 0 && ctx.nerr == 0)
        cx_conf_plugins_finish(&ctx);
    else if (rc != CX_ENOMEM)
        name_missing_plugins(&ctx);
    cx_free(ctx.warned);
    if (rc == CX_ENOMEM) {
        if (err && errlen)
            snprintf(err, errlen, "%s: out of memory", path);
        return CX_ENOMEM;
    }
    if (rc || ctx.nerr)
        return CX_ECONFIG;
    return cx_conf_resolve_listeners(cfg);
}
