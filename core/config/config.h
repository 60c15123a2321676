/* config.h: the broker configuration, read from mosquitto.conf syntax.
 *
 * One cx_config_t holds everything the broker reads from its configuration file. Every field
 * is named after the mosquitto directive that sets it (lower case, same spelling), so code can
 * be written against `cfg->max_inflight_messages` without looking anything up. The directive
 * table in directives.c is the single source of truth for names, scopes, defaults and which
 * settings a SIGHUP reloads; docs/config-reference.md is generated from it (cx_confdoc).
 *
 * Life cycle, on the main thread, before any worker starts:
 *
 *     cx_config_t *cfg = cx_config_new();          // mosquitto's defaults
 *     cx_config_load(cfg, path, err, sizeof err);  // only with -c
 *     cx_config_finish(cfg, ports, n, err, sizeof err);  // -p ports, local-only mode
 *     ...
 *     cx_config_free(cfg);
 *
 * On SIGHUP: load and finish a fresh config from cfg->config_file, then
 * cx_config_apply_reload(live, fresh) and free the fresh one.
 *
 * Thread contract: nothing here locks. A config is built and changed on the main thread only;
 * workers read a config that no one changes while they run, or are told to re-read after a
 * reload. */
#ifndef CX_CONFIG_H
#define CX_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "culex/plugin.h" /* culex_option */

struct cx_log_settings;

/* Listener protocols (`protocol`): MQTT over TCP (or a unix socket), MQTT over WebSockets;
 * the HTTP API value is reserved so that the numbers never change when it arrives. */
enum {
    CX_PROTO_MQTT = 1,
    CX_PROTO_WEBSOCKETS = 2, /* MQTT over WebSockets (RFC 6455), plain or over TLS */
    CX_PROTO_HTTP_API = 3,   /* reserved: refused by the parser until the HTTP API lands */
};

/* `tls_version`: the lowest TLS version a listener accepts (the wire values). */
enum {
    CX_TLS_V1_1 = 0x0302,
    CX_TLS_V1_2 = 0x0303,
    CX_TLS_V1_3 = 0x0304,
};

/* Bits of cx_listener_conf_t.accept_protocol_versions: bit (1u << level). */
#define CX_CONF_PROTO_V31 (1u << 3)  /* MQTT 3.1 */
#define CX_CONF_PROTO_V311 (1u << 4) /* MQTT 3.1.1 */
#define CX_CONF_PROTO_V5 (1u << 5)   /* MQTT 5.0 */
#define CX_CONF_PROTO_ALL (CX_CONF_PROTO_V31 | CX_CONF_PROTO_V311 | CX_CONF_PROTO_V5)

/* Mosquitto accepts at most this many -p options. */
#define CX_CONF_MAX_CLI_PORTS 10

typedef struct cx_listener_conf {
    int port;                 /* 0 with unix_socket set = unix socket listener */
    char *bind_address;       /* NULL = all addresses */
    char *unix_socket;        /* `listener 0 /path` */
    char *bind_interface;     /* NULL = any interface */
    int socket_domain;        /* AF_UNSPEC (both), AF_INET or AF_INET6 */
    int protocol;             /* CX_PROTO_MQTT (only value accepted for now) */
    unsigned accept_protocol_versions; /* CX_CONF_PROTO_* bits; default all three */
    int max_connections;      /* -1 = unlimited */
    int max_qos;              /* 0..2, default 2 */
    int max_topic_alias;      /* aliases a client may create; default 10 */
    int max_topic_alias_broker; /* aliases the broker creates per client; default 10 as in
                                 * mosquitto 2.1; 0 = broker never assigns aliases */
    char *mount_point;        /* NULL = none */
    size_t packet_buffer_size; /* global `packet_buffer_size`, copied to every listener */
    char *listener_auto_id_prefix; /* resolved: listener value, else global auto_id_prefix,
                                    * else "auto-"; never NULL after load/finish */
    int listener_allow_anonymous;  /* raw value of the directive: -1 unset, 0, 1 */
    bool allow_anonymous;     /* resolved effective value for this listener */
    bool allow_zero_length_clientid; /* resolved effective value for this listener */
    bool use_username_as_clientid;

    /* TLS (mosquitto's names and meanings; docs/tls.md). TLS is on when certfile/keyfile
     * (certificates) or psk_hint (TLS-PSK) is set; every path is read at start and again on
     * SIGHUP, when new connections get the new certificates and old ones keep theirs. */
    char *cafile;             /* CA certificates (PEM) that client certificates must chain to */
    char *capath;             /* directory of hashed CA certificates (c_rehash) */
    char *certfile;           /* server certificate chain (PEM) */
    char *keyfile;            /* its private key (PEM, not encrypted), or the engine's key
                               * id (PKCS#11 URI) with tls_keyform engine */
    char *crlfile;            /* revoked client certificates (PEM CRL) */
    char *ciphers;            /* TLS 1.2 cipher list (OpenSSL syntax); NULL = OpenSSL's */
    char *ciphers_tls13;      /* `ciphers_tls1.3`: TLS 1.3 cipher suites; NULL = OpenSSL's */
    char *dhparamfile;        /* DH parameters (PEM) for DHE ciphers */
    char *psk_hint;           /* TLS-PSK identity hint; enables PSK on this listener */
    char *psk_file;           /* per_listener_settings true: this listener's psk_file */
    int tls_version;          /* CX_TLS_V1_* minimum; 0 = TLS 1.2 (mosquitto: 1.2 and 1.3) */
    bool require_certificate; /* clients must present a certificate that verifies */
    bool use_identity_as_username; /* username = certificate CN (or PSK identity) */
    bool use_subject_as_username;  /* username = certificate subject (RFC 2253) */
    bool disable_client_cert_date_checks; /* accept expired / not yet valid client certs */
    char *tls_engine;         /* OpenSSL ENGINE id (e.g. pkcs11), loaded with the context */
    char *tls_engine_kpass_sha1; /* 40 hex digits: SHA-1 of the key's password, for it */
    bool tls_keyform_engine;  /* tls_keyform engine: keyfile is a key id for tls_engine */

    /* PROXY protocol (HAProxy's spec): 0 off, 1 = v1 only, 2 = v2 and v1. */
    int enable_proxy_protocol;
    bool proxy_protocol_v2_require_tls; /* the header must say the client used TLS */

    /* WebSockets (protocol websockets). */
    char **websockets_origin; /* allowed Origin values; none = any origin */
    size_t websockets_origin_count;

    const char *file;         /* where the listener was declared (NULL for the listeners */
    int line;                 /* of local-only mode); file points into cfg->conf_files */
} cx_listener_conf_t;

/* cx_plugin_conf_t.listener values other than a listeners[] index. */
#define CX_PLUGIN_GLOBAL (-1) /* every listener */
#define CX_PLUGIN_NAMED (-2)  /* `plugin_load NAME PATH`: only the listeners in uses[] */

/* One plugin instance to load: the host calls its entry point once (culex_plugin_entry) and
 * puts its hooks in the chain of every listener it applies to.
 *
 * Where instances come from (mosquitto 2.0/2.1 syntax):
 *  - `plugin PATH` and the deprecated `auth_plugin PATH`: a new instance. With
 *    per_listener_settings true it belongs to the listener declared last (listener = that
 *    index, the implicit default listener included); otherwise it is global. Before any
 *    listener with per_listener_settings true it is global too, with a warning (mosquitto 2.1
 *    refuses that, 2.0 files it under a default listener that is never started).
 *  - `global_plugin PATH` (2.1): a new instance, always global.
 *  - `plugin_load NAME PATH` (2.1): a named instance, loaded once, listener CX_PLUGIN_NAMED;
 *    each `plugin_use NAME` (after a `listener` line) appends that listener to uses[], so the
 *    one instance serves several listeners. plugin_use attaches it whatever
 *    per_listener_settings says (mosquitto 2.1 then leaves it unused: culex does what the
 *    line asks). A named instance no listener uses is loaded and hooked nowhere (warned).
 *  - `password_file PATH` and `acl_file PATH`: the first-party plugin, builtin "auth_file",
 *    with options `password_file` and `acl_file`. One instance per scope (global, or per
 *    listener with per_listener_settings true, same placement rule as `plugin`): both
 *    directives of one scope share it; given twice in a scope, the last path is used (as
 *    mosquitto 2.1). `allow_anonymous` is not an option of it: it stays a listener setting
 *    (cx_listener_conf_t.allow_anonymous), the chain's fallback when every hook defers.
 *
 * Options: `plugin_opt_NAME VALUE` (or the deprecated `auth_opt_NAME VALUE`; mosquitto takes
 * either after any plugin line) belongs to the instance of the last plugin, global_plugin,
 * auth_plugin, plugin_load or plugin_use line of the same file (mosquitto's scope: an option
 * at the top of an include_dir file is an error). name is NAME; value is the rest of the line,
 * inner blanks kept. A trailing `# comment` is part of the value, exactly as mosquitto passes
 * it (`auth_opt_hasher_iterations 180000   # comment` gives "180000   # comment"; culex
 * warns); blanks at the end of the line are dropped (mosquitto keeps them). The same NAME
 * twice in one instance is an error; options of an instance come in file order.
 *
 * Order: plugins[] is load order, which is also the order of a listener's chain among hooks
 * of equal priority: the global shared-object instances, then the per-listener and named
 * ones, each group in file order, then the auth_file instances (global first). So a
 * listener's chain runs the global plugins before its own (mosquitto 2.1's global_plugin
 * rule), and plugins before the password and ACL files (mosquitto runs plugin checks before
 * its built-in ones).
 *
 * Instances attached to the implicit default listener are dropped, with a warning, when
 * local-only mode drops that listener (cx_config_finish), as mosquitto drops its settings.
 *
 * Reload: plugins are not reloaded (mosquitto: "not currently reloaded"). When the new file
 * declares the same instances (same path/builtin/name, scope, uses and deny_special_chars, in
 * the same order), their options follow the new file, for the host to hand over in
 * CULEX_EV_RELOAD (this is how auth_file gets a changed password_file or acl_file path);
 * otherwise the live instances are kept and a restart is logged as needed. */
typedef struct cx_plugin_conf {
    char *path;               /* shared object path as written; NULL for a first-party plugin
                               * named by `builtin` */
    char *builtin;            /* "auth_file" for the instance made from password_file/acl_file,
                               * else NULL */
    char *name;               /* plugin_load NAME (mosquitto 2.1), else NULL */
    culex_option *options;    /* plugin_opt_* / auth_opt_* lines in file order; name without
                               * the prefix; strings owned */
    size_t option_count;
    int listener;             /* CX_PLUGIN_GLOBAL (-1) = every listener, CX_PLUGIN_NAMED (-2) =
                               * the listeners in uses[], else an index into listeners[] */
    int *uses;                /* CX_PLUGIN_NAMED only: listeners[] indexes, in plugin_use order */
    size_t use_count;
    bool deny_special_chars;  /* auth_plugin_deny_special_chars after this plugin's line:
                               * deny ACL checks of clients whose username or client id has
                               * '+' or '#' before asking the plugin; default true */
    const char *file;         /* where it was declared (points into conf_files); for */
    int line;                 /* auth_file, the first password_file/acl_file line of its scope */
} cx_plugin_conf_t;

typedef struct cx_config {
    /* general & limits */
    bool allow_duplicate_messages;   /* deprecated by mosquitto 2.1; default true */
    bool allow_zero_length_clientid; /* global value (per listener: see listeners) */
    char *auto_id_prefix;            /* global raw value, NULL = unset */
    bool check_retain_source;
    char *clientid_prefixes;         /* deprecated; NULL = every client id is allowed */
    bool connection_messages;
    int global_max_clients;          /* -1 unlimited */
    int global_max_connections;      /* -1 unlimited */
    size_t max_inflight_bytes;       /* 0 = no limit */
    int max_inflight_messages;       /* 0 = no limit */
    int max_keepalive;               /* 0 = no limit (mosquitto 2.1 default) */
    size_t max_packet_size;          /* bytes; mosquitto 2.1 default 2000000 */
    size_t max_queued_bytes;         /* 0 = no limit */
    int max_queued_messages;         /* 0 = no limit */
    size_t memory_limit;             /* 0 = no limit */
    size_t message_size_limit;       /* deprecated; 0 = no limit */
    size_t packet_buffer_size;       /* mosquitto 2.1 global option; default 4096 */
    int64_t persistent_client_expiration; /* seconds, 0 = never */
    char *pid_file;                  /* NULL = none */
    bool queue_qos0_messages;
    bool retain_available;
    int64_t retain_expiry_interval;  /* seconds (the directive is in minutes); 0 = off */
    bool set_tcp_nodelay;
    int sys_interval;                /* seconds, 0 = no $SYS updates */
    bool upgrade_outgoing_qos;
    char *user;                      /* default "mosquitto" */
    bool per_listener_settings;
    int allow_anonymous;             /* -1 unset, 0, 1 (raw global value) */
    int workers;                     /* culex's own; default = number of online CPUs */
    char *psk_file;                  /* TLS-PSK `identity:hexkey` file (global value; per
                                      * listener with per_listener_settings true) */

    /* logging */
    unsigned log_type;               /* CX_LOG_* bits */
    unsigned log_dest;               /* CX_LOGDEST_* bits */
    char *log_file;                  /* for `log_dest file` */
    int log_facility;                /* syslog facility, LOG_DAEMON by default */
    bool log_timestamp;
    char *log_timestamp_format;      /* NULL = seconds since the epoch */

    /* persistence (broker/persist.c) */
    bool persistence;
    char *persistence_file;          /* NULL = "culex.db" */
    char *persistence_location;      /* NULL = current directory */
    int persistence_sync;            /* cx_store_sync_t: 0 always, 1 batch (default), 2 none */
    int persistence_batch_ms;        /* default 100 */
    int autosave_interval;           /* seconds (or changes), default 1800 */
    bool autosave_on_changes;

    cx_listener_conf_t *listeners;
    size_t listener_count;
    cx_plugin_conf_t *plugins;       /* plugin instances in load order (see above) */
    size_t plugin_count;
    bool local_only;                 /* no listener/port/bind_address anywhere: mosquitto 2
                                      * local-only mode (loopback, anonymous allowed) */

    char *config_file;               /* path given with -c, for reload; NULL = none */
    char **conf_files;               /* every file read, main file first (owned) */
    size_t conf_file_count;
} cx_config_t;

/* A config holding Mosquitto 2.1's defaults (and culex's for `workers`), no listeners and
 * local_only set. Returns NULL when out of memory. */
cx_config_t *cx_config_new(void);

/* Reads `path` (mosquitto.conf syntax) and the `*.conf` files of every include_dir in it
 * (sorted as mosquitto sorts them), sets the fields of cfg and resolves each listener's
 * effective settings. Call at most once per cfg.
 *
 * On error returns CX_ECONFIG (CX_ENOMEM when out of memory) and writes to err one line per
 * error, "FILE:LINE: directive: message" (nginx style), the first error first. Parsing stops
 * at the first error, except after a directive of a feature culex does not have yet ("not
 * supported yet (TLS)"): those are collected, one per feature, so a user sees at once
 * everything their file needs. Warnings (deprecated or obsolete directives, ignored extra
 * values) go to cx_log(CX_LOG_WARNING), once per directive per load. */
int cx_config_load(cx_config_t *cfg, const char *path, char *err, size_t errlen);

/* Applies Mosquitto 2's start-up rules, after cx_config_load() or on a fresh config when no
 * file was given:
 *  - no `listener`, `port` or `bind_address` anywhere: local-only mode, one listener on
 *    127.0.0.1 and one on ::1 for port 1883 or for each of the -p ports, anonymous clients
 *    allowed unless the file says `allow_anonymous false`;
 *    plugin instances given for the implicit default listener are dropped with it (logged);
 *  - otherwise the -p ports are ignored (logged), and allow_anonymous defaults to false;
 *  - every listener's effective allow_anonymous, allow_zero_length_clientid,
 *    listener_auto_id_prefix and packet_buffer_size are resolved.
 * cli_ports may be NULL when n_cli_ports is 0; at most CX_CONF_MAX_CLI_PORTS, each 1..65535.
 * Returns 0, CX_ECONFIG (err set) or CX_ENOMEM. */
int cx_config_finish(cx_config_t *cfg, const int *cli_ports, size_t n_cli_ports, char *err,
                     size_t errlen);

/* Frees cfg and everything it owns. NULL is a no-op. */
void cx_config_free(cx_config_t *cfg);

/* Copies every directive flagged RELOADABLE in the table (logging, limits, the security
 * defaults: what mosquitto re-reads on SIGHUP) from `fresh` into `live`. Listeners are not
 * reloadable: a change to them is logged as needing a restart, and only their resolved
 * security settings (allow_anonymous, allow_zero_length_clientid, auto id prefix) follow
 * the new file. Other non-reloadable directives that changed are logged likewise. Plugin
 * instances are kept; their options follow the new file when it declares the same instances
 * (see cx_plugin_conf_t), else a restart is logged as needed. `fresh` is left intact. Returns 0 or CX_ENOMEM (live is then partly updated but consistent). */
int cx_config_apply_reload(cx_config_t *live, const cx_config_t *fresh);

/* Parses one -p/--port argument: a decimal port 1..65535. Returns 0 or CX_ECONFIG. */
int cx_config_parse_cli_port(const char *arg, int *port);

/* Fills the logger settings from cfg (pointers borrowed from cfg). */
void cx_config_log_settings(const cx_config_t *cfg, struct cx_log_settings *out);

/* Writes the configuration reference (markdown) generated from the directive table:
 * docs/config-reference.md is this output, and a unit test keeps the two equal. */
void cx_config_write_reference(FILE *out);

#endif
