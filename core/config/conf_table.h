/* conf_table.h: the directive table's types, shared by parse.c, directives.c and slots.c.
 *
 * Not part of the config module's public surface (config.h is). A directive row says where a
 * directive may appear, how many values it takes, which typed setter stores them and where,
 * its default as text, its flags and a one-line doc; the parser, the reload code and the
 * reference generator all read the same rows, so they cannot disagree. */
#ifndef CX_CONF_TABLE_H
#define CX_CONF_TABLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"

/* Scope mask: where a directive may appear. */
enum {
    CX_CONF_GLOBAL = 0x01,   /* anywhere; sets a global value */
    CX_CONF_LISTENER = 0x02, /* sets a value of the current listener */
    CX_CONF_BRIDGE = 0x04,   /* only after `connection NAME` */
    CX_CONF_PLUGIN = 0x08,   /* only after a plugin line */
};

/* Flags. */
enum {
    CX_CONF_RELOADABLE = 0x001,   /* SIGHUP applies a new value */
    CX_CONF_DEPRECATED = 0x002,   /* accepted with a warning; `note` says what replaces it */
    CX_CONF_MOSQ_COMPAT = 0x004,  /* accepted for mosquitto compatibility: an alias or a
                                   * directive with no effect in culex (see its doc) */
    CX_CONF_CULEX_ONLY = 0x008,   /* culex's own, mosquitto does not know it */
    CX_CONF_UNSUPPORTED = 0x010,  /* recognised, refused: "not supported yet (note)" */
    CX_CONF_MULTI = 0x020,        /* may be given more than once, values accumulate */
    CX_CONF_PREFIX = 0x040,       /* name is a prefix (plugin_opt_*) */
    CX_CONF_DEFLISTENER = 0x080,  /* before any listener it configures mosquitto's implicit
                                   * default listener (port 1883), as mosquitto does */
    CX_CONF_PERLISTENER = 0x100,  /* GLOBAL|LISTENER: per listener when
                                   * per_listener_settings is true, global otherwise */
    CX_CONF_NOTDEFAULT = 0x200,   /* needs an explicit `listener`, not the default one */
    CX_CONF_FALSE_OK = 0x400,     /* UNSUPPORTED boolean: `false` (the default) is accepted */
    CX_CONF_SECTION = 0x800,      /* not a directive: a heading for the reference */
    CX_CONF_EARLY_GLOBAL = 0x1000, /* PERLISTENER: before any listener with
                                    * per_listener_settings true it still applies, globally
                                    * (its setter warns), instead of being ignored */
};

/* The C type of the slot a row writes, used to copy values on reload and compare them. */
typedef enum cx_conf_kind {
    CX_CONF_K_NONE = 0, /* custom setter, or nothing stored */
    CX_CONF_K_BOOL,     /* bool */
    CX_CONF_K_INT,      /* int */
    CX_CONF_K_INT64,    /* int64_t */
    CX_CONF_K_SIZE,     /* size_t */
    CX_CONF_K_UINT,     /* unsigned */
    CX_CONF_K_STR,      /* char *, owned */
} cx_conf_kind_t;

/* Maximum value of max_args meaning "the rest of the line is one value" (mosquitto reads
 * string values, paths and `log_dest file` this way, spaces and all). */
#define CX_CONF_REST 255
#define CX_CONF_MAX_TOKENS 32

/* Arguments of one directive line. */
typedef struct cx_conf_args {
    const char *name;   /* the directive as written (the full key for prefix rows) */
    size_t argc;        /* tokens after the name, up to the first one starting with '#' */
    char **argv;
    const char *rest;   /* everything after the name, blanks trimmed at both ends */
} cx_conf_args_t;

typedef struct cx_conf_ctx cx_conf_ctx_t;
typedef struct cx_conf_directive cx_conf_directive_t;

/* A setter stores the value(s) of one directive line. `slot` is the field at the row's
 * offset in the current target (cx_config_t or the current listener), or NULL for rows that
 * store nothing at an offset. Returns NULL, or a message (static or formatted into ctx->msg)
 * that the parser prefixes with "file:line: directive: ". */
typedef const char *(*cx_conf_set_cb)(cx_conf_ctx_t *ctx, const cx_conf_directive_t *d,
                                      void *slot, const cx_conf_args_t *a);

struct cx_conf_directive {
    const char *name;
    unsigned scope;
    uint8_t min_args, max_args; /* tokens; max CX_CONF_REST = rest of the line */
    cx_conf_set_cb set;
    cx_conf_kind_t kind;
    size_t offset;              /* into cx_config_t, or cx_listener_conf_t for LISTENER */
    const void *post;           /* setter parameters: cx_conf_range_t, cx_conf_enum_t[] */
    const char *def;            /* default, as text for the reference; NULL = none */
    unsigned flags;
    const char *note;           /* DEPRECATED: replacement; UNSUPPORTED: the feature */
    const char *doc;            /* one line */
};

/* Integer range for cx_conf_set_int/size. Values below min are an error unless
 * `clamp_negative` is set, in which case a negative value is stored as `negative_as` (what
 * mosquitto does for several limits, e.g. `max_connections -5` means unlimited). */
typedef struct cx_conf_range {
    long long min, max;
    bool clamp_negative;
    long long negative_as;
} cx_conf_range_t;

/* Enum values for cx_conf_set_enum, terminated by a NULL name. */
typedef struct cx_conf_enum {
    const char *name;
    int value;
} cx_conf_enum_t;

/* Parser state for one cx_config_load(). */
struct cx_conf_ctx {
    cx_config_t *cfg;
    const char *file;          /* current file (interned in cfg->conf_files) */
    int line;
    int level;                 /* 0 = main file; include_dir is allowed only there */
    long cur_listener;         /* index into cfg->listeners, -1 = none yet */
    long default_listener;     /* index of mosquitto's implicit default listener, -1 */
    bool in_bridge, bridge_refused;
    long cur_plugin;           /* index into cfg->plugins that plugin_opt_* lines add to, -1
                                * = none; per file, as in mosquitto */
    bool log_type_set, log_dest_set; /* the first line replaces the default, later ones add */
    bool security_set;         /* a per-listener-capable security option was seen */
    unsigned char *warned;     /* per table row: CX_CONF_WARN_* bits already given */
    bool default_port_set;     /* `port` seen: a second one is worth a warning */
    const char *directive;     /* the directive being handled, as written (plugin_opt_x) */
    const char *refusing;      /* set by cx_conf_refuse() for the line being handled */
    int abort_rc;              /* set by a setter whose nested work failed and reported */
    const char *refused_notes[32]; /* features already reported, one error line each */
    size_t refused_count;
    int nerr;
    char *err;                 /* caller's buffer */
    size_t errlen, errused;
    uint64_t main_dev, main_ino; /* the main file, which include_dir must not include again */
    char msg[512];             /* setters format messages here */
};

extern const cx_conf_directive_t cx_conf_directives[];
extern const size_t cx_conf_directive_count;

/* Finds the row for a directive name (exact, or the longest PREFIX row). NULL if unknown. */
const cx_conf_directive_t *cx_conf_find(const char *name);

/* Formats a setter message into ctx->msg and returns it. */
const char *cx_conf_msg(cx_conf_ctx_t *ctx, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Kinds of warning, each given at most once per row and load. */
enum {
    CX_CONF_WARN_DEPRECATED = 0x01,
    CX_CONF_WARN_EXTRA = 0x02,   /* values past the directive's last one, ignored */
    CX_CONF_WARN_IGNORED = 0x04, /* the whole line is ignored */
    CX_CONF_WARN_SCOPE = 0x08,   /* applied more widely than mosquitto would */
    CX_CONF_WARN_VALUE = 0x10,   /* a value that is probably not what the user meant */
};

/* Logs a warning "file:line: directive: text" once per row, kind and load. */
void cx_conf_warn_once(cx_conf_ctx_t *ctx, const cx_conf_directive_t *d, unsigned kind,
                       const char *fmt, ...) __attribute__((format(printf, 4, 5)));

/* The current listener, creating mosquitto's default listener (port 1883) when `create` is
 * set and there is none yet. NULL when there is none (or out of memory: ctx->msg says). */
cx_listener_conf_t *cx_conf_current_listener(cx_conf_ctx_t *ctx, const char *why, bool create);

/* Appends a listener with default values; returns its index or -1 (out of memory). */
long cx_conf_add_listener(cx_conf_ctx_t *ctx);

/* Sets every listener's effective security settings and packet_buffer_size from the raw
 * per-listener and global values (idempotent). Returns 0 or CX_ENOMEM. */
int cx_conf_resolve_listeners(cx_config_t *cfg);

/* True when s is well-formed UTF-8. */
bool cx_conf_utf8_valid(const char *s);

/* Plugin instances (plugins.c). */
/* After a successful load: puts cfg->plugins in load order (config.h), warns about named
 * instances no listener uses. */
void cx_conf_plugins_finish(cx_conf_ctx_t *ctx);
/* Frees every instance. */
void cx_conf_plugins_free(cx_config_t *cfg);
/* Local-only mode: drops (and logs) the instances given for the default listener. */
void cx_conf_plugins_drop_listener_scoped(cx_config_t *cfg);
/* cx_config_apply_reload's part: options follow `fresh` when it declares the same
 * instances, else a restart is logged. Returns 0 or CX_ENOMEM. */
int cx_conf_plugins_reload(cx_config_t *live, const cx_config_t *fresh);

/* Reads one file (include_dir recurses through it). Returns 0, CX_ECONFIG or CX_ENOMEM. */
int cx_conf_parse_file(cx_conf_ctx_t *ctx, const char *path, int level);

/* Typed setters, shared by every table (nginx's ngx_conf_set_*_slot). */
const char *cx_conf_set_bool(cx_conf_ctx_t *, const cx_conf_directive_t *, void *,
                             const cx_conf_args_t *);
const char *cx_conf_set_int(cx_conf_ctx_t *, const cx_conf_directive_t *, void *,
                            const cx_conf_args_t *);
const char *cx_conf_set_size(cx_conf_ctx_t *, const cx_conf_directive_t *, void *,
                             const cx_conf_args_t *);
const char *cx_conf_set_duration(cx_conf_ctx_t *, const cx_conf_directive_t *, void *,
                                 const cx_conf_args_t *);
const char *cx_conf_set_string(cx_conf_ctx_t *, const cx_conf_directive_t *, void *,
                               const cx_conf_args_t *);
const char *cx_conf_set_path(cx_conf_ctx_t *, const cx_conf_directive_t *, void *,
                             const cx_conf_args_t *);
const char *cx_conf_set_enum(cx_conf_ctx_t *, const cx_conf_directive_t *, void *,
                             const cx_conf_args_t *);

/* Custom setters, one per odd directive. */
const char *cx_conf_set_listener(cx_conf_ctx_t *, const cx_conf_directive_t *, void *,
                                 const cx_conf_args_t *);
const char *cx_conf_set_port(cx_conf_ctx_t *, const cx_conf_directive_t *, void *,
                             const cx_conf_args_t *);
const char *cx_conf_set_bind_address(cx_conf_ctx_t *, const cx_conf_directive_t *, void *,
                                     const cx_conf_args_t *);
const char *cx_conf_set_include_dir(cx_conf_ctx_t *, const cx_conf_directive_t *, void *,
                                    const cx_conf_args_t *);
const char *cx_conf_set_log_dest(cx_conf_ctx_t *, const cx_conf_directive_t *, void *,
                                 const cx_conf_args_t *);
const char *cx_conf_set_log_type(cx_conf_ctx_t *, const cx_conf_directive_t *, void *,
                                 const cx_conf_args_t *);
const char *cx_conf_set_log_facility(cx_conf_ctx_t *, const cx_conf_directive_t *, void *,
                                     const cx_conf_args_t *);
const char *cx_conf_set_protocol(cx_conf_ctx_t *, const cx_conf_directive_t *, void *,
                                 const cx_conf_args_t *);
const char *cx_conf_set_accept_versions(cx_conf_ctx_t *, const cx_conf_directive_t *, void *,
                                        const cx_conf_args_t *);
const char *cx_conf_set_mount_point(cx_conf_ctx_t *, const cx_conf_directive_t *, void *,
                                    const cx_conf_args_t *);
const char *cx_conf_set_tristate(cx_conf_ctx_t *, const cx_conf_directive_t *, void *,
                                 const cx_conf_args_t *);
const char *cx_conf_set_security(cx_conf_ctx_t *, const cx_conf_directive_t *, void *,
                                 const cx_conf_args_t *);
const char *cx_conf_set_per_listener_settings(cx_conf_ctx_t *, const cx_conf_directive_t *,
                                              void *, const cx_conf_args_t *);
const char *cx_conf_set_retain_expiry(cx_conf_ctx_t *, const cx_conf_directive_t *, void *,
                                      const cx_conf_args_t *);
const char *cx_conf_set_obsolete(cx_conf_ctx_t *, const cx_conf_directive_t *, void *,
                                 const cx_conf_args_t *);
const char *cx_conf_set_unsupported(cx_conf_ctx_t *, const cx_conf_directive_t *, void *,
                                    const cx_conf_args_t *);
const char *cx_conf_set_connection(cx_conf_ctx_t *, const cx_conf_directive_t *, void *,
                                   const cx_conf_args_t *);

/* TLS and WebSockets (slots_net.c). */
const char *cx_conf_set_tls_keyform(cx_conf_ctx_t *, const cx_conf_directive_t *, void *,
                                    const cx_conf_args_t *);
const char *cx_conf_set_tls_kpass_sha1(cx_conf_ctx_t *, const cx_conf_directive_t *, void *,
                                       const cx_conf_args_t *);
const char *cx_conf_set_ws_origin(cx_conf_ctx_t *, const cx_conf_directive_t *, void *,
                                  const cx_conf_args_t *);
/* cx_config_finish's checks of each listener's TLS, WebSocket and PROXY settings
 * (require_certificate needs a CA, certfile needs keyfile, ...). Returns 0, or CX_ECONFIG
 * with "FILE:LINE: listener: message" in err. */
int cx_conf_check_net(const cx_config_t *cfg, char *err, size_t errlen);
void cx_conf_net_free(cx_listener_conf_t *l);

/* Plugins (plugins.c). */
const char *cx_conf_set_plugin(cx_conf_ctx_t *, const cx_conf_directive_t *, void *,
                               const cx_conf_args_t *);
const char *cx_conf_set_plugin_load(cx_conf_ctx_t *, const cx_conf_directive_t *, void *,
                                    const cx_conf_args_t *);
const char *cx_conf_set_plugin_use(cx_conf_ctx_t *, const cx_conf_directive_t *, void *,
                                   const cx_conf_args_t *);
const char *cx_conf_set_plugin_opt(cx_conf_ctx_t *, const cx_conf_directive_t *, void *,
                                   const cx_conf_args_t *);
const char *cx_conf_set_deny_special_chars(cx_conf_ctx_t *, const cx_conf_directive_t *,
                                           void *, const cx_conf_args_t *);
const char *cx_conf_set_auth_file(cx_conf_ctx_t *, const cx_conf_directive_t *, void *,
                                  const cx_conf_args_t *);

/* What a setter returns to refuse a feature culex does not have yet: the message
 * "not supported yet (feature)" plus ": detail" when detail_fmt is not NULL. The parser
 * reports it once per feature and carries on (see cx_config_load). */
const char *cx_conf_refuse(cx_conf_ctx_t *ctx, const char *feature, const char *detail_fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif
