/* plugins.c: the plugin directives and the instances they describe (cx_plugin_conf_t).
 *
 * `plugin`, `auth_plugin`, `global_plugin` and `plugin_load` each add an instance and make it
 * the one `plugin_opt_*` / `auth_opt_*` and `auth_plugin_deny_special_chars` lines add to;
 * `plugin_use` attaches a named instance to a listener and makes it current too (mosquitto
 * 2.1 does). `password_file` and `acl_file` fill the first-party auth_file instance of their
 * scope and leave the current plugin alone. config.h states the semantics; this file keeps
 * them. Setters follow slots.c's contract: NULL or a message, never a print (warnings go
 * through cx_conf_warn_once or cx_log). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conf_table.h"
#include "util/alloc.h"
#include "util/err.h"
#include "util/log.h"

#define AUTH_FILE "auth_file"

static bool str_eq(const char *a, const char *b)
{
    return a == b || (a && b && strcmp(a, b) == 0);
}

static void free_options(culex_option *opts, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        cx_free((char *)opts[i].name);
        cx_free((char *)opts[i].value);
    }
    cx_free(opts);
}

static void plugin_clear(cx_plugin_conf_t *p)
{
    cx_free(p->path);
    cx_free(p->builtin);
    cx_free(p->name);
    free_options(p->options, p->option_count);
    cx_free(p->uses);
    memset(p, 0, sizeof *p);
}

void cx_conf_plugins_free(cx_config_t *cfg)
{
    for (size_t i = 0; i < cfg->plugin_count; i++)
        plugin_clear(&cfg->plugins[i]);
    cx_free(cfg->plugins);
    cfg->plugins = NULL;
    cfg->plugin_count = 0;
}

/* What to call an instance in messages. */
static const char *plugin_label(const cx_plugin_conf_t *p)
{
    return p->name ? p->name : p->path ? p->path : p->builtin;
}

/* Appends an empty instance declared at the current line; its index, or -1 out of memory. */
static long add_instance(cx_conf_ctx_t *ctx, int listener)
{
    cx_config_t *cfg = ctx->cfg;
    cx_plugin_conf_t *n = cx_realloc(cfg->plugins, (cfg->plugin_count + 1) * sizeof *n);
    if (!n)
        return -1;
    cfg->plugins = n;
    cx_plugin_conf_t *p = &n[cfg->plugin_count];
    memset(p, 0, sizeof *p);
    p->listener = listener;
    p->deny_special_chars = true;
    p->file = ctx->file;
    p->line = ctx->line;
    return (long)cfg->plugin_count++;
}

/* The scope of a `plugin`, `auth_plugin`, `password_file` or `acl_file` line: the listener
 * declared last with per_listener_settings true, else global. Before any listener with
 * per_listener_settings true mosquitto 2.1 refuses the line and 2.0 files it under a default
 * listener that never starts; culex applies it everywhere, which never loses a security
 * setting, and says so. */
static int line_scope(cx_conf_ctx_t *ctx, const cx_conf_directive_t *d)
{
    if (!ctx->cfg->per_listener_settings)
        return CX_PLUGIN_GLOBAL;
    if (ctx->cur_listener >= 0)
        return (int)ctx->cur_listener;
    cx_conf_warn_once(ctx, d, CX_CONF_WARN_SCOPE,
                      "with per_listener_settings true and no `listener` line before it, this "
                      "applies to every listener (mosquitto 2.1 refuses it)%s",
                      d->set == cx_conf_set_plugin ? "; write global_plugin to say so" : "");
    return CX_PLUGIN_GLOBAL;
}

/* Appends option name=value to p (both copied). NULL or "out of memory". */
static const char *add_option(cx_plugin_conf_t *p, const char *name, const char *value)
{
    culex_option *n = cx_realloc(p->options, (p->option_count + 1) * sizeof *n);
    if (!n)
        return "out of memory";
    p->options = n;
    char *k = cx_strdup(name), *v = cx_strdup(value);
    if (!k || !v) {
        cx_free(k);
        cx_free(v);
        return "out of memory";
    }
    n[p->option_count].name = k;
    n[p->option_count].value = v;
    p->option_count++;
    return NULL;
}

static culex_option *find_option(cx_plugin_conf_t *p, const char *name)
{
    for (size_t i = 0; i < p->option_count; i++)
        if (strcmp(p->options[i].name, name) == 0)
            return &p->options[i];
    return NULL;
}

/* ---- setters ---------------------------------------------------------------------------- */

/* `plugin PATH`, `auth_plugin PATH` (deprecated), `global_plugin PATH`. The path is the rest
 * of the line, as every culex path (mosquitto 2.0 reads it so; 2.1 stops at a blank). Whether
 * the file exists is the plugin host's question, asked when the broker starts. */
const char *cx_conf_set_plugin(cx_conf_ctx_t *ctx, const cx_conf_directive_t *d, void *slot,
                               const cx_conf_args_t *a)
{
    if (!cx_conf_utf8_valid(a->rest))
        return "value is not valid UTF-8";
    int scope = strcmp(d->name, "global_plugin") == 0 ? CX_PLUGIN_GLOBAL : line_scope(ctx, d);
    /* mosquitto counts plugins among the security settings per_listener_settings must
     * precede */
    ctx->security_set = true;
    long i = add_instance(ctx, scope);
    if (i < 0)
        return "out of memory";
    ctx->cfg->plugins[i].path = cx_strdup(a->rest);
    if (!ctx->cfg->plugins[i].path)
        return "out of memory";
    ctx->cur_plugin = i;
    return NULL;
}

/* `plugin_load NAME PATH` (mosquitto 2.1): one named instance, attached by plugin_use. */
const char *cx_conf_set_plugin_load(cx_conf_ctx_t *ctx, const cx_conf_directive_t *d,
                                    void *slot, const cx_conf_args_t *a)
{
    cx_config_t *cfg = ctx->cfg;
    /* argc first: `plugin_load # x` has a non-empty rest but no token (a word starting
     * with '#' ends them), and argv[0] is then NULL. */
    if (a->argc < 2)
        return "missing plugin path: `plugin_load NAME PATH`";
    const char *name = a->argv[0];
    const char *path = a->rest + strlen(name); /* rest starts with the first token */
    while (*path == ' ' || *path == '\t')
        path++;
    if (!*path)
        return "missing plugin path: `plugin_load NAME PATH`";
    if (!cx_conf_utf8_valid(a->rest))
        return "value is not valid UTF-8";
    for (size_t i = 0; i < cfg->plugin_count; i++)
        if (str_eq(cfg->plugins[i].name, name))
            return cx_conf_msg(ctx, "a plugin named '%s' is already loaded (%s:%d)", name,
                               cfg->plugins[i].file, cfg->plugins[i].line);
    long i = add_instance(ctx, CX_PLUGIN_NAMED);
    if (i < 0)
        return "out of memory";
    cx_plugin_conf_t *p = &cfg->plugins[i];
    p->name = cx_strdup(name);
    p->path = cx_strdup(path);
    if (!p->name || !p->path)
        return "out of memory";
    ctx->cur_plugin = i;
    return NULL;
}

/* `plugin_use NAME` after a `listener` line (the parser checks that): attaches the named
 * instance to the listener, and makes it the instance later plugin_opt_* lines add to. */
const char *cx_conf_set_plugin_use(cx_conf_ctx_t *ctx, const cx_conf_directive_t *d,
                                   void *slot, const cx_conf_args_t *a)
{
    cx_config_t *cfg = ctx->cfg;
    const char *name = a->argv[0];
    long idx = -1;
    for (size_t i = 0; i < cfg->plugin_count && idx < 0; i++)
        if (str_eq(cfg->plugins[i].name, name))
            idx = (long)i;
    if (idx < 0)
        return cx_conf_msg(ctx, "no plugin named '%s' is loaded (a `plugin_load %s PATH` line "
                                "must come first)", name, name);
    cx_plugin_conf_t *p = &cfg->plugins[idx];
    int listener = (int)ctx->cur_listener;
    for (size_t i = 0; i < p->use_count; i++)
        if (p->uses[i] == listener)
            return cx_conf_msg(ctx, "this listener already uses plugin '%s'", name);
    int *n = cx_realloc(p->uses, (p->use_count + 1) * sizeof *n);
    if (!n)
        return "out of memory";
    p->uses = n;
    n[p->use_count++] = listener;
    ctx->cur_plugin = idx;
    return NULL;
}

/* `plugin_opt_NAME VALUE` / `auth_opt_NAME VALUE`: the value is the rest of the line with a
 * trailing comment kept, as mosquitto passes it (config.h). */
const char *cx_conf_set_plugin_opt(cx_conf_ctx_t *ctx, const cx_conf_directive_t *d,
                                   void *slot, const cx_conf_args_t *a)
{
    cx_plugin_conf_t *p = &ctx->cfg->plugins[ctx->cur_plugin];
    const char *key = a->name + strlen(d->name);
    const char *value = a->rest;
    if (find_option(p, key))
        return cx_conf_msg(ctx, "option '%s' is given twice for plugin %s (declared at %s:%d)",
                           key, plugin_label(p), p->file, p->line);
    for (const char *h = strchr(value, '#'); h; h = strchr(h + 1, '#'))
        if (h == value || h[-1] == ' ' || h[-1] == '\t') {
            cx_conf_warn_once(ctx, d, CX_CONF_WARN_VALUE,
                              "the value '%s' includes a comment; mosquitto passes it to the "
                              "plugin as part of the value and so does culex (put comments on "
                              "a line of their own)", value);
            break;
        }
    return add_option(p, key, value);
}

/* `auth_plugin_deny_special_chars true|false`: a setting of the plugin declared last, as in
 * mosquitto ("applies to the current authentication plugin being configured"). */
const char *cx_conf_set_deny_special_chars(cx_conf_ctx_t *ctx, const cx_conf_directive_t *d,
                                           void *slot, const cx_conf_args_t *a)
{
    return cx_conf_set_bool(ctx, d, &ctx->cfg->plugins[ctx->cur_plugin].deny_special_chars, a);
}

/* `password_file PATH` / `acl_file PATH`: option d->name of the auth_file instance of the
 * line's scope, created by the first of them. */
const char *cx_conf_set_auth_file(cx_conf_ctx_t *ctx, const cx_conf_directive_t *d, void *slot,
                                  const cx_conf_args_t *a)
{
    cx_config_t *cfg = ctx->cfg;
    if (!cx_conf_utf8_valid(a->rest))
        return "value is not valid UTF-8";
    int scope = line_scope(ctx, d);
    ctx->security_set = true;
    cx_plugin_conf_t *p = NULL;
    for (size_t i = 0; i < cfg->plugin_count && !p; i++)
        if (cfg->plugins[i].builtin && cfg->plugins[i].listener == scope)
            p = &cfg->plugins[i];
    if (!p) {
        long i = add_instance(ctx, scope);
        if (i < 0)
            return "out of memory";
        p = &cfg->plugins[i];
        p->builtin = cx_strdup(AUTH_FILE);
        if (!p->builtin)
            return "out of memory";
    }
    culex_option *o = find_option(p, d->name);
    if (!o)
        return add_option(p, d->name, a->rest);
    /* Given again for the same scope (a conf.d file overriding the main one): the last one
     * wins, as in mosquitto 2.1 (2.0 refuses the file). */
    char *v = cx_strdup(a->rest);
    if (!v)
        return "out of memory";
    if (strcmp(o->value, v) != 0)
        cx_log(CX_LOG_WARNING, "%s:%d: %s: given more than once for %s; '%s' replaces '%s'",
               ctx->file, ctx->line, d->name,
               scope == CX_PLUGIN_GLOBAL ? "every listener" : "this listener", v, o->value);
    cx_free((char *)o->value);
    o->value = v;
    return NULL;
}

/* ---- after a load, local-only mode, reload ---------------------------------------------- */

/* Rank of an instance in load order (config.h): global shared objects, other shared
 * objects, global auth_file, per-listener auth_file. */
static int load_rank(const cx_plugin_conf_t *p)
{
    if (p->builtin)
        return p->listener == CX_PLUGIN_GLOBAL ? 2 : 3;
    return p->listener == CX_PLUGIN_GLOBAL ? 0 : 1;
}

void cx_conf_plugins_finish(cx_conf_ctx_t *ctx)
{
    cx_config_t *cfg = ctx->cfg;
    for (size_t i = 0; i < cfg->plugin_count; i++) {
        const cx_plugin_conf_t *p = &cfg->plugins[i];
        if (p->listener == CX_PLUGIN_NAMED && p->use_count == 0)
            cx_log(CX_LOG_WARNING, "%s:%d: plugin_load: no listener uses plugin '%s' "
                   "(`plugin_use %s` after a `listener` line); its hooks apply nowhere",
                   p->file, p->line, p->name, p->name);
    }
    /* Insertion sort by rank: stable, keeps file order within a rank, no allocation. */
    for (size_t i = 1; i < cfg->plugin_count; i++) {
        cx_plugin_conf_t cur = cfg->plugins[i];
        int r = load_rank(&cur);
        size_t j = i;
        while (j > 0 && load_rank(&cfg->plugins[j - 1]) > r) {
            cfg->plugins[j] = cfg->plugins[j - 1];
            j--;
        }
        cfg->plugins[j] = cur;
    }
}

void cx_conf_plugins_drop_listener_scoped(cx_config_t *cfg)
{
    size_t kept = 0;
    for (size_t i = 0; i < cfg->plugin_count; i++) {
        cx_plugin_conf_t *p = &cfg->plugins[i];
        if (p->listener >= 0) {
            char what[256];
            if (p->builtin && p->option_count) /* its directives: password_file and acl_file */
                snprintf(what, sizeof what, "%s%s%s", p->options[0].name,
                         p->option_count > 1 ? " and " : "",
                         p->option_count > 1 ? p->options[1].name : "");
            else
                snprintf(what, sizeof what, "plugin %s", p->path);
            cx_log(CX_LOG_WARNING, "%s:%d: %s ignored: given for the default listener, which "
                   "local-only mode drops", p->file, p->line, what);
            plugin_clear(p);
            continue;
        }
        if (kept != i)
            cfg->plugins[kept] = *p;
        kept++;
    }
    cfg->plugin_count = kept;
}

static bool same_instance(const cx_plugin_conf_t *a, const cx_plugin_conf_t *b)
{
    return str_eq(a->path, b->path) && str_eq(a->builtin, b->builtin) &&
           str_eq(a->name, b->name) && a->listener == b->listener &&
           a->use_count == b->use_count &&
           (a->use_count == 0 || memcmp(a->uses, b->uses, a->use_count * sizeof *a->uses) == 0) &&
           a->deny_special_chars == b->deny_special_chars;
}

static bool same_options(const cx_plugin_conf_t *a, const cx_plugin_conf_t *b)
{
    if (a->option_count != b->option_count)
        return false;
    for (size_t i = 0; i < a->option_count; i++)
        if (strcmp(a->options[i].name, b->options[i].name) != 0 ||
            strcmp(a->options[i].value, b->options[i].value) != 0)
            return false;
    return true;
}

int cx_conf_plugins_reload(cx_config_t *live, const cx_config_t *fresh)
{
    bool same = live->plugin_count == fresh->plugin_count;
    for (size_t i = 0; same && i < live->plugin_count; i++)
        same = same_instance(&live->plugins[i], &fresh->plugins[i]);
    if (!same) {
        cx_log(CX_LOG_WARNING, "reload: plugin changes need a restart; the plugins keep their "
               "settings");
        return 0;
    }
    for (size_t i = 0; i < live->plugin_count; i++) {
        cx_plugin_conf_t *l = &live->plugins[i];
        const cx_plugin_conf_t *f = &fresh->plugins[i];
        if (same_options(l, f))
            continue;
        cx_plugin_conf_t copy = {0};
        for (size_t j = 0; j < f->option_count; j++)
            if (add_option(&copy, f->options[j].name, f->options[j].value)) {
                free_options(copy.options, copy.option_count);
                return CX_ENOMEM;
            }
        free_options(l->options, l->option_count);
        l->options = copy.options;
        l->option_count = copy.option_count;
        cx_log(CX_LOG_INFO, "reload: new options for plugin %s", plugin_label(l));
    }
    return 0;
}
