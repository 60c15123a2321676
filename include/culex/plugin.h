/* culex/plugin.h — the culex plugin ABI, version 1.
 *
 * A plugin is a shared object that exports exactly one symbol, culex_plugin_entry(). The
 * broker (the "host") loads it with dlopen(RTLD_NOW | RTLD_LOCAL), calls the entry point
 * with a table of host functions, and the plugin registers callbacks ("hooks") for events.
 * A plugin never links against broker symbols: build it with -fvisibility=hidden and
 * -Wl,--no-undefined, and reach the broker only through the table.
 *
 * STABILITY RULES (docs/plugins.md has the full promise)
 *  1. The host table and every event struct are append-only. New members go at the end
 *     with a "since 1.N" note; nothing is removed, reordered or retyped inside a major.
 *  2. Every event struct starts with `uint32_t size`, filled by the host. Before reading a
 *     member added after 1.0, check CULEX_EV_HAS(ev, member).
 *  3. Before calling a host function added after 1.0, check CULEX_HOST_HAS(host, fn).
 *  4. Enum values are never reused or renumbered. Changed semantics get a new name.
 *  5. The major version changes only when (1)-(4) cannot be kept; a host of major N loads
 *     only plugins built for major N. A plugin built against 1.0 keeps loading in every
 *     1.x host.
 *
 * MEMORY: strings and buffers the host passes to a callback are borrowed for the duration
 * of that callback (or, for a blocking hook, until it returns on its pool thread). Copy what
 * you keep. Memory a plugin hands to the host (an error message, a rewritten payload) must
 * come from host->alloc().
 *
 * THREADS: each table entry says where it may be called: "init" (only inside
 * culex_plugin_entry), "callback" (inside a hook callback, on the thread that runs it) or
 * "any" (any thread, at any time after the entry returned).
 */
#ifndef CULEX_PLUGIN_H
#define CULEX_PLUGIN_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define CULEX_ABI_MAJOR 1
#define CULEX_ABI_MINOR 1

#define CULEX_PLUGIN_EXPORT __attribute__((visibility("default")))

/* Opaque handles. Their layout is private to the host. */
typedef struct culex_plugin culex_plugin;   /* one loaded plugin instance */
typedef struct culex_client culex_client;   /* one client connection */
typedef struct culex_pending culex_pending; /* a verdict promised for later */

/* Verdicts returned by auth, ACL and message callbacks. */
typedef enum culex_verdict {
    CULEX_DEFER = 0,    /* no opinion: ask the next plugin in the chain */
    CULEX_ALLOW = 1,    /* accept (first non-defer answer wins) */
    CULEX_DENY = 2,     /* refuse */
    CULEX_PENDING = 3,  /* the answer comes later through host->pending_done() */
    CULEX_ERROR = 4,    /* the plugin failed: counted as DENY (fail closed) and logged */
    CULEX_CONTINUE = 5, /* extended auth only: send AUTH (0x18) with out_data, wait */
} culex_verdict;

/* Events a plugin can hook. Values are fixed forever. */
typedef enum culex_event {
    CULEX_EV_AUTH_BASIC = 1,         /* culex_ev_auth_basic: username/password at CONNECT */
    CULEX_EV_AUTH_EXT_START = 2,     /* culex_ev_auth_ext: CONNECT with an Authentication Method */
    CULEX_EV_AUTH_EXT_CONTINUE = 3,  /* culex_ev_auth_ext: AUTH packet (continue or re-auth) */
    CULEX_EV_ACL = 4,                /* culex_ev_acl: publish, receive, subscribe, unsubscribe */
    CULEX_EV_CONNECT = 5,            /* culex_ev_client: a client is connected (notification) */
    CULEX_EV_DISCONNECT = 6,         /* culex_ev_client: a client's connection ended */
    CULEX_EV_MESSAGE = 7,            /* culex_ev_message: a PUBLISH, before routing */
    CULEX_EV_TICK = 8,               /* culex_ev_tick: once a second */
    CULEX_EV_RELOAD = 9,             /* culex_ev_reload: SIGHUP; options may have changed */
    CULEX_EV_WORKER_START = 10,      /* culex_ev_worker: on each worker thread at start */
    CULEX_EV_WORKER_STOP = 11,       /* culex_ev_worker: on each worker thread at stop */
    /* 32..63: persistence (since 1.1). */
    CULEX_EV_PERSIST = 32,           /* culex_ev_persist: a change to durable state */
    CULEX_EV_PERSIST_RESTORE = 33,   /* culex_ev_persist_restore: once, at start-up */
} culex_event;

/* Access kinds of CULEX_EV_ACL. */
typedef enum culex_access {
    CULEX_ACCESS_PUBLISH = 1,     /* the client publishes to `topic` */
    CULEX_ACCESS_RECEIVE = 2,     /* a message on `topic` is about to be sent to the client */
    CULEX_ACCESS_SUBSCRIBE = 3,   /* the client subscribes to the filter `topic` */
    CULEX_ACCESS_UNSUBSCRIBE = 4, /* the client unsubscribes from the filter `topic` */
} culex_access;

/* Log levels for host->log (the same bits as mosquitto's log_type). */
enum {
    CULEX_LOG_INFO = 0x01,
    CULEX_LOG_NOTICE = 0x02,
    CULEX_LOG_WARNING = 0x04,
    CULEX_LOG_ERR = 0x08,
    CULEX_LOG_DEBUG = 0x10,
};

/* hook_add() flags. */
enum {
    /* The callback may block (database, LDAP, HTTP): the host runs it on its blocking pool,
     * pauses only the client concerned, and keeps that client's packet order. Blocking
     * hooks are not called for CULEX_ACCESS_RECEIVE (a delivery never waits for a backend);
     * check subscriptions with CULEX_ACCESS_SUBSCRIBE instead, or answer RECEIVE from a
     * cache in a second, non-blocking hook. */
    CULEX_HOOK_BLOCKING = 0x1,
};

/* Capabilities for host->has_cap(). */
enum {
    CULEX_CAP_EXT_AUTH = 1,      /* MQTT 5 enhanced authentication events are delivered */
    CULEX_CAP_BLOCKING = 2,      /* CULEX_HOOK_BLOCKING is supported */
    CULEX_CAP_PENDING = 3,       /* CULEX_PENDING verdicts are supported */
    CULEX_CAP_PERSISTENCE = 4,   /* persistence events (since 1.1) */
};

/* A `plugin_opt_<name> <value>` line: name without the prefix. */
#ifndef CULEX_OPTION_DEFINED
#define CULEX_OPTION_DEFINED
typedef struct culex_option {
    const char *name;
    const char *value;
} culex_option;
#endif

/* An MQTT 5 user property (UTF-8, not NUL-terminated). */
typedef struct culex_user_property {
    const char *key;
    size_t key_len;
    const char *value;
    size_t value_len;
} culex_user_property;

/* Checks that the host filled `member` of event struct *ev (added after 1.0). */
#define CULEX_EV_HAS(ev, member)                                                        \
    ((ev)->size >= offsetof(__typeof__(*(ev)), member) + sizeof((ev)->member))

/* ---- event payloads: the `void *event` of a callback, by event ---- */

typedef struct culex_ev_auth_basic {
    uint32_t size;
    culex_client *client;
    const char *client_id;     /* never NULL */
    const char *username;      /* NULL when the CONNECT had none */
    const uint8_t *password;   /* NULL when the CONNECT had none; binary */
    size_t password_len;
} culex_ev_auth_basic;

typedef struct culex_ev_auth_ext {
    uint32_t size;
    culex_client *client;
    const char *method;        /* Authentication Method */
    const uint8_t *data;       /* Authentication Data received, may be NULL */
    size_t data_len;
    bool reauth;               /* AUTH with reason 0x19 on an established connection */
    /* Output: data for the AUTH/CONNACK sent back, from host->alloc (the host frees it). */
    uint8_t *out_data;
    size_t out_data_len;
} culex_ev_auth_ext;

typedef struct culex_ev_acl {
    uint32_t size;
    culex_client *client;
    int access;                /* culex_access */
    const char *topic;         /* topic, or the filter for (UN)SUBSCRIBE; no mount point */
    uint8_t qos;               /* requested QoS (publish, subscribe) or QoS of delivery */
    bool retain;
    const uint8_t *payload;    /* PUBLISH and RECEIVE only, else NULL */
    size_t payload_len;
} culex_ev_acl;

typedef struct culex_ev_client {
    uint32_t size;
    culex_client *client;
    int reason;                /* DISCONNECT: the MQTT reason code of the end, 0 = normal */
} culex_ev_client;

typedef struct culex_ev_message {
    uint32_t size;
    culex_client *client;      /* the publisher; NULL for wills and broker messages */
    const char *topic;
    const uint8_t *payload;
    size_t payload_len;
    uint8_t qos;
    bool retain;
    /* Output: to rewrite the message, set these to buffers from host->alloc (the host takes
     * them) and answer CULEX_ALLOW; CULEX_DENY drops the message (acknowledged normally). */
    char *new_topic;
    uint8_t *new_payload;
    size_t new_payload_len;
    /* The message's user properties (MQTT 5), borrowed. */
    const culex_user_property *user_props;
    size_t user_prop_count;
    /* Output: a replacement list of user properties (array and strings from host->alloc;
     * the host takes them all); set replace_user_props to use it, even when empty. */
    culex_user_property *new_user_props;
    size_t new_user_prop_count;
    bool replace_user_props;
} culex_ev_message;

typedef struct culex_ev_tick {
    uint32_t size;
    int64_t now_ms;            /* monotonic */
} culex_ev_tick;

typedef struct culex_ev_reload {
    uint32_t size;
    const culex_option *options; /* the plugin's options as now configured */
    size_t option_count;
} culex_ev_reload;

typedef struct culex_ev_worker {
    uint32_t size;
    unsigned index;            /* 0 .. workers-1 */
} culex_ev_worker;

/* Record kinds of the persistence events. The key and value bytes of each kind are
 * documented in docs/persistence.md; a store keeps them opaque. Values are fixed forever. */
typedef enum culex_persist_kind {
    CULEX_PERSIST_RETAIN = 1,  /* a retained message, keyed by topic */
    CULEX_PERSIST_SESSION = 2, /* a persistent session, keyed by client id */
    CULEX_PERSIST_SUB = 3,     /* a subscription of a session generation */
    CULEX_PERSIST_MSG = 4,     /* a message queued for one or more sessions, keyed by id */
    CULEX_PERSIST_QUEUE = 5,   /* a message queued or in flight for a session generation */
    CULEX_PERSIST_QOS2IN = 6,  /* an incoming QoS 2 packet id not yet released */
} culex_persist_kind;

/* CULEX_EV_PERSIST (since 1.1): one record was put (`deleted` false: store value under
 * (kind, key), replacing any) or deleted (`deleted` true). Called on worker threads, in the
 * order of the changes of each session and each retained topic; it must not block: a store
 * writes on its own thread. The decoded members are for plugins that only observe (audit,
 * replication); each is NULL/0 when it does not apply to the kind. Records of a session
 * generation whose SESSION record is gone are garbage: a store may drop them. */
typedef struct culex_ev_persist {
    uint32_t size;
    int kind;                  /* culex_persist_kind */
    bool deleted;
    const void *key;
    size_t key_len;
    const void *value;         /* NULL when deleted */
    size_t value_len;
    const char *client_id;     /* SESSION */
    const char *topic;         /* RETAIN and MSG: the topic; SUB: the filter */
    const void *payload;       /* RETAIN and MSG */
    size_t payload_len;
    uint64_t generation;       /* SESSION, SUB, QUEUE, QOS2IN: the session generation */
    uint64_t msg_id;           /* MSG, QUEUE */
    uint16_t packet_id;        /* QUEUE (when sent), QOS2IN */
    uint8_t qos;               /* RETAIN, MSG, SUB, QUEUE */
} culex_ev_persist;

/* CULEX_EV_PERSIST_RESTORE (since 1.1): a plugin hooking it is the broker's store, and the
 * default store is not opened. Called once on the main thread before any client connects;
 * the plugin calls put() once for every record it holds (any order), then returns 0, or
 * -1 to refuse the start (logged). */
typedef struct culex_ev_persist_restore {
    uint32_t size;
    void *ctx;
    int (*put)(void *ctx, int kind, const void *key, size_t key_len, const void *value,
               size_t value_len);
} culex_ev_persist_restore;

/* A hook callback. Returns a culex_verdict for auth, ACL and message events (ignored for
 * notifications). `event` points to the struct named for the event; `userdata` is what was
 * given to hook_add. */
typedef int (*culex_hook_cb)(culex_plugin *self, int event, void *event_data, void *userdata);

/* Called when the client behind a pending verdict goes away first. */
typedef void (*culex_cancel_cb)(culex_pending *ticket, void *userdata);

/* What a plugin tells the host about itself (host->declare). */
typedef struct culex_plugin_desc {
    uint32_t size;             /* sizeof(culex_plugin_desc) as compiled into the plugin */
    const char *name;          /* short name for logs, e.g. "auth_file" */
    const char *version;       /* the plugin's own version */
    uint32_t abi_minor;        /* CULEX_ABI_MINOR the plugin was built against */
    /* Called once when the plugin instance is unloaded (shutdown), after its last
     * callback; may be NULL. */
    void (*cleanup)(culex_plugin *self, void *userdata);
    void *cleanup_userdata;
} culex_plugin_desc;

/* The host function table. Append-only: see the stability rules above. */
typedef struct culex_host_api {
    uint32_t abi_major;        /* CULEX_ABI_MAJOR of the host */
    uint32_t abi_minor;        /* CULEX_ABI_MINOR of the host */
    uint32_t size;             /* sizeof(culex_host_api) in the host */

    /* init: names the plugin; required before hook_add. Returns 0 or -1. */
    int (*declare)(culex_plugin *self, const culex_plugin_desc *desc);
    /* init: registers cb for event. Lower priority runs first; ties run in load order.
     * timeout_ms bounds a blocking or pending verdict (0 = the host default, 10 s); when it
     * passes, the host answers DENY and logs it. Returns 0 or -1 (bad event/flags). */
    int (*hook_add)(culex_plugin *self, int event, int priority, unsigned flags,
                    unsigned timeout_ms, culex_hook_cb cb, void *userdata);
    /* init: the plugin's options (plugin_opt_* lines), in file order. */
    const culex_option *(*options)(culex_plugin *self, size_t *count);
    /* init: the value of option `name`, or NULL. */
    const char *(*option)(culex_plugin *self, const char *name);
    /* init: sets *errmsg to a formatted message for the entry point's failure. */
    void (*set_error)(char **errmsg, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

    /* any: logging, tagged with the plugin's name. */
    void (*log)(culex_plugin *self, int level, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));
    void (*vlog)(culex_plugin *self, int level, const char *fmt, va_list ap);

    /* callback: client information, valid while the callback runs. Strings are
     * NUL-terminated; NULL when absent. */
    const char *(*client_id)(const culex_client *c);
    const char *(*client_username)(const culex_client *c);
    const char *(*client_address)(const culex_client *c);  /* "ip:port" or "unix" */
    int (*client_protocol)(const culex_client *c);          /* 3, 4 or 5 */
    int (*client_listener_port)(const culex_client *c);     /* 0 for unix sockets */
    /* Transport identity; NULL when absent. With a client certificate: "CN", "O", "OU",
     * "C", ... (each subject attribute by its OpenSSL short name, the first of each),
     * "subject" and "issuer" (RFC 2253), "serial" (hex), "sha256" (fingerprint, hex). Over
     * TLS: "tls_version", "cipher"; TLS-PSK: "psk_identity". Behind a TLS-terminating
     * proxy (PROXY protocol v2): "tls_version", "CN" if the proxy verified a client
     * certificate, and "verified_by" = "proxy". */
    const char *(*client_cert_field)(const culex_client *c, const char *field);

    /* callback: per-client data of this plugin; free_cb runs when the client goes away. */
    void *(*client_data_get)(culex_plugin *self, const culex_client *c);
    int (*client_data_set)(culex_plugin *self, culex_client *c, void *data,
                           void (*free_cb)(void *data));

    /* any: disconnects the client with this id (DISCONNECT 0x98 for MQTT 5). 0, or -1 if
     * no such client is connected. */
    int (*kick)(culex_plugin *self, const char *client_id);
    /* any: publishes a message as the broker (no publisher client). 0 or -1. */
    int (*publish)(culex_plugin *self, const char *topic, const void *payload, size_t len,
                   int qos, bool retain);

    /* callback: promises a verdict for the event being handled; the callback then returns
     * CULEX_PENDING. cancel (may be NULL) runs if the client goes away first. */
    culex_pending *(*pending_begin)(culex_plugin *self, void *event_data,
                                    culex_cancel_cb cancel, void *cancel_userdata);
    /* any: delivers the verdict. Exactly once per ticket; harmless after a cancel or a
     * timeout (the ticket is then released). For CULEX_EV_AUTH_EXT_* the out_data may be
     * given here too (from host->alloc), else NULL. */
    void (*pending_done)(culex_pending *ticket, int verdict, uint8_t *out_data,
                         size_t out_data_len);

    /* any */
    int64_t (*time_mono_ms)(void);
    int64_t (*time_wall_s)(void);
    void *(*alloc)(size_t n);
    void (*free)(void *p);
    bool (*has_cap)(int cap);
} culex_host_api;

/* Checks that the host has table entry `fn` (added after 1.0). */
#define CULEX_HOST_HAS(host, fn)                                                        \
    ((host)->size >= offsetof(culex_host_api, fn) + sizeof((host)->fn))

/* The entry point every plugin exports. Called once per configured instance (a plugin
 * listed twice, or per listener, gets one call and one `self` each). Returns 0 on success;
 * on failure -1 with *errmsg set (host->set_error) — the broker then refuses to start and
 * prints it — or CULEX_ERR_ABI_MAJOR. */
typedef int (*culex_plugin_entry_fn)(const culex_host_api *host, culex_plugin *self,
                                     char **errmsg);
CULEX_PLUGIN_EXPORT int culex_plugin_entry(const culex_host_api *host, culex_plugin *self,
                                           char **errmsg);

/* culex_plugin_entry's return value when the host's major version is not the one the
 * plugin was built for. Nothing but the first three members of the table may be touched
 * then, so no message can be set: the host reports the mismatch itself. */
#define CULEX_ERR_ABI_MAJOR (-2)

/* The usual start of culex_plugin_entry: refuses a host of another major version and
 * declares the plugin with the ABI minor it was compiled against. */
#define CULEX_PLUGIN_INIT(host, self, errmsg, desc_name, desc_version, cleanup_fn, cleanup_ud) \
    do {                                                                                \
        if (!(host) || (host)->abi_major != CULEX_ABI_MAJOR)                            \
            return CULEX_ERR_ABI_MAJOR;                                                 \
        culex_plugin_desc d_ = {sizeof(culex_plugin_desc), (desc_name), (desc_version), \
                                CULEX_ABI_MINOR, (cleanup_fn), (cleanup_ud)};           \
        if ((host)->declare((self), &d_) != 0) {                                        \
            (host)->set_error((errmsg), "declare refused");                             \
            return -1;                                                                  \
        }                                                                               \
    } while (0)

#ifdef __cplusplus
}
#endif

#endif
