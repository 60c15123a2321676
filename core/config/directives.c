/* directives.c: the directive table, and the reference generated from it.
 *
 * Every directive of mosquitto.conf 2.1.2 (and the deprecated spellings users still have)
 * is a row here, plus culex's own. Rows of features other parts of culex will deliver
 * (TLS, websockets, bridges, persistence, the $CONTROL API) are flagged
 * UNSUPPORTED: the parser recognises them and refuses them with "not supported yet (...)",
 * which is better than "unknown directive" for a user migrating a working file. When a
 * feature lands, its rows get a real setter and lose the flag; the docs follow.
 *
 * Defaults are those of mosquitto 2.1.2's mosquitto.conf(5) and config code. Where they
 * differ, the row's doc says which one culex follows. */
#include <limits.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include "conf_table.h"

#define G(f) offsetof(cx_config_t, f)
#define L(f) offsetof(cx_listener_conf_t, f)

#define GL CX_CONF_GLOBAL
#define LI CX_CONF_LISTENER
#define BR CX_CONF_BRIDGE
#define PL CX_CONF_PLUGIN
#define RL CX_CONF_RELOADABLE
#define DEP CX_CONF_DEPRECATED
#define COMPAT CX_CONF_MOSQ_COMPAT
#define MULTI CX_CONF_MULTI
#define DEFL CX_CONF_DEFLISTENER
#define PERL CX_CONF_PERLISTENER
#define EARLY CX_CONF_EARLY_GLOBAL
#define REST CX_CONF_REST

/* The full row, and short forms for the typed setters. */
#define DIR(name, scope, min, max, set, kind, off, post, def, flags, note, doc)                \
    {name, scope, min, max, set, kind, off, post, def, flags, note, doc}
#define SECTION(title, doc)                                                                   \
    DIR(title, 0, 0, 0, NULL, CX_CONF_K_NONE, 0, NULL, NULL, CX_CONF_SECTION, NULL, doc)
#define BOOL(name, scope, off, def, flags, doc)                                               \
    DIR(name, scope, 1, 1, cx_conf_set_bool, CX_CONF_K_BOOL, off, NULL, def, flags, NULL, doc)
#define INT(name, scope, off, range, def, flags, doc)                                         \
    DIR(name, scope, 1, 1, cx_conf_set_int, CX_CONF_K_INT, off, range, def, flags, NULL, doc)
#define SIZE(name, scope, off, range, def, flags, doc)                                        \
    DIR(name, scope, 1, 1, cx_conf_set_size, CX_CONF_K_SIZE, off, range, def, flags, NULL, doc)
#define STR(name, scope, off, def, flags, doc)                                                \
    DIR(name, scope, 1, REST, cx_conf_set_string, CX_CONF_K_STR, off, NULL, def, flags, NULL, doc)
#define PATH(name, scope, off, def, flags, doc)                                               \
    DIR(name, scope, 1, REST, cx_conf_set_path, CX_CONF_K_STR, off, NULL, def, flags, NULL, doc)
#define ENUM(name, scope, off, values, def, flags, doc)                                       \
    DIR(name, scope, 1, 1, cx_conf_set_enum, CX_CONF_K_INT, off, values, def, flags, NULL, doc)
/* Recognised, refused: "not supported yet (feature)". */
#define UNSUP(name, scope, flags, feature, def, doc)                                          \
    DIR(name, scope, 0, REST, cx_conf_set_unsupported, CX_CONF_K_NONE, 0, NULL, def,           \
        (flags) | CX_CONF_UNSUPPORTED, feature, doc)
/* Refused when true; `false`, the default, asks for nothing and is accepted. */
#define UNSUP_BOOL(name, scope, flags, feature, doc)                                          \
    DIR(name, scope, 1, 1, cx_conf_set_unsupported, CX_CONF_K_NONE, 0, NULL, "false",          \
        (flags) | CX_CONF_UNSUPPORTED | CX_CONF_FALSE_OK, feature, doc)
#define BRIDGE(name, def, doc) UNSUP(name, BR, 0, "bridges", def, doc)
#define BRIDGE_ALIAS(name, of) UNSUP(name, BR, COMPAT, "bridges", NULL, "Alias of " of ".")

static const cx_conf_range_t r_u16 = {0, 65535, false, 0};
static const cx_conf_range_t r_qos = {0, 2, false, 0};
static const cx_conf_range_t r_unlimited = {-1, INT_MAX, true, -1}; /* negative = -1 */
static const cx_conf_range_t r_u16_neg0 = {0, 65535, true, 0};      /* negative = 0 */
static const cx_conf_range_t r_int_neg0 = {0, INT_MAX, true, 0};
static const cx_conf_range_t r_bytes_neg0 = {0, 1LL << 62, true, 0};
static const cx_conf_range_t r_bytes = {0, 1LL << 62, false, 0};
static const cx_conf_range_t r_packet = {20, INT_MAX, false, 0};
static const cx_conf_range_t r_payload = {0, 268435455, false, 0}; /* MQTT's maximum payload */
static const cx_conf_range_t r_workers = {1, 1024, false, 0};
static const cx_conf_range_t r_prefix_len = {0, 50, false, 0}; /* for strings: max length */

static const cx_conf_range_t r_batch_ms = {1, 60000, false, 0};

/* The values are cx_store_sync_t's (store/store.h). */
static const cx_conf_enum_t persistence_syncs[] = {
    {"always", 0},
    {"batch", 1},
    {"none", 2},
    {NULL, 0},
};

static const cx_conf_enum_t socket_domains[] = {
    {"ipv4", AF_INET},
    {"ipv6", AF_INET6},
    {NULL, 0},
};

/* Listener-side fields of the per_listener_settings security directives. */
static const size_t sec_allow_anonymous = L(listener_allow_anonymous);
static const size_t sec_zero_length = L(allow_zero_length_clientid);
static const size_t sec_auto_id_prefix = L(listener_auto_id_prefix);
static const size_t sec_psk_file = L(psk_file);

static const cx_conf_enum_t tls_versions[] = {
    {"tlsv1.3", CX_TLS_V1_3},
    {"tlsv1.2", CX_TLS_V1_2},
    {"tlsv1.1", CX_TLS_V1_1},
    {NULL, 0},
};

static const cx_conf_range_t r_proxy = {0, 2, false, 0};

const cx_conf_directive_t cx_conf_directives[] = {
    SECTION("General and limits", "Global settings. They may appear anywhere in the file."),
    DIR("allow_duplicate_messages", GL, 1, 1, cx_conf_set_bool, CX_CONF_K_BOOL,
        G(allow_duplicate_messages), NULL, "true", RL | DEP | COMPAT,
        "no effect in culex; remove it",
        "Deprecated by mosquitto 2.1. No effect in culex: a client with overlapping "
        "subscriptions gets one copy of a message, as MQTT requires."),
    BOOL("check_retain_source", GL, G(check_retain_source), "true", 0,
         "Check that the publisher of a retained message may still publish to its topic "
         "before sending it to a new subscriber (mosquitto's documented default; its code "
         "leaves it off)."),
    DIR("clientid_prefixes", GL, 1, REST, cx_conf_set_string, CX_CONF_K_STR,
        G(clientid_prefixes), NULL, NULL, RL | DEP, "no replacement; use an auth plugin",
        "Only clients whose client id starts with this prefix may connect."),
    BOOL("connection_messages", GL, G(connection_messages), "true", RL,
         "Log a line when a client connects or disconnects."),
    UNSUP_BOOL("enable_control_api", GL, RL, "$CONTROL API",
               "Serve the $CONTROL/broker/v1 topic API."),
    INT("global_max_clients", GL, G(global_max_clients), &r_unlimited, "-1", RL,
        "Maximum number of client sessions (connected or not) across the broker; -1 for "
        "no limit."),
    INT("global_max_connections", GL, G(global_max_connections), &r_unlimited, "-1", RL,
        "Maximum number of connected clients across the broker; -1 for no limit."),
    DIR("include_dir", GL, 1, REST, cx_conf_set_include_dir, CX_CONF_K_NONE, 0, NULL, NULL,
        MULTI, NULL,
        "Also read every *.conf file of this directory, in mosquitto's order (00, A, a, B, "
        "b...). Main file only."),
    SIZE("max_inflight_bytes", GL, G(max_inflight_bytes), &r_bytes_neg0, "0", RL,
         "Bytes of outgoing QoS 1 and 2 messages in flight per client; 0 for no limit."),
    INT("max_inflight_messages", GL, G(max_inflight_messages), &r_u16_neg0, "20", RL,
        "Outgoing QoS 1 and 2 messages in flight per client (the receive maximum); 0 for "
        "no limit."),
    INT("max_keepalive", GL, G(max_keepalive), &r_u16, "0", RL,
        "Largest keepalive a client may use, in seconds; 0 for no limit (mosquitto 2.1's "
        "default)."),
    SIZE("max_packet_size", GL, G(max_packet_size), &r_packet, "2000000", RL,
         "Largest MQTT packet accepted, in bytes (at least 20); larger ones disconnect the "
         "client."),
    SIZE("max_queued_bytes", GL, G(max_queued_bytes), &r_bytes_neg0, "0", RL,
         "Bytes of QoS 1 and 2 messages queued per client beyond those in flight; 0 for no "
         "limit."),
    INT("max_queued_messages", GL, G(max_queued_messages), &r_int_neg0, "1000", RL,
        "QoS 1 and 2 messages queued per client beyond those in flight; 0 for no limit. "
        "Publishers are held back while a connected client has half this many waiting "
        "(1000 with no limit), so the limit drops messages only for clients that stopped "
        "reading or are offline (docs/flow-control.md)."),
    SIZE("memory_limit", GL, G(memory_limit), &r_bytes, "0", RL,
         "Maximum heap the broker may allocate, in bytes; 0 for no limit. Above three "
         "quarters of it, clients already behind get no more QoS 0 messages."),
    DIR("message_size_limit", GL, 1, 1, cx_conf_set_size, CX_CONF_K_SIZE,
        G(message_size_limit), &r_payload, "0", RL | DEP, "use max_packet_size",
        "Largest PUBLISH payload accepted, in bytes; 0 for no limit."),
    DIR("packet_buffer_size", GL, 1, 1, cx_conf_set_size, CX_CONF_K_SIZE,
        G(packet_buffer_size), &r_u16, "4096", 0, NULL,
        "Size of the first read from a client before the packet size is known, in bytes."),
    DIR("persistent_client_expiration", GL, 1, 1, cx_conf_set_duration, CX_CONF_K_INT64,
        G(persistent_client_expiration), NULL, "never", RL, NULL,
        "Remove sessions of clients that stay disconnected this long: a number and one of "
        "s h d w m y (e.g. 14d)."),
    PATH("pid_file", GL, G(pid_file), NULL, 0, "Write the process id to this file."),
    BOOL("queue_qos0_messages", GL, G(queue_qos0_messages), "false", RL,
         "Queue QoS 0 messages for disconnected persistent clients too."),
    BOOL("retain_available", GL, G(retain_available), "true", RL,
         "Support retained messages; when false a client that publishes one is "
         "disconnected."),
    DIR("retain_expiry_interval", GL, 1, 1, cx_conf_set_retain_expiry, CX_CONF_K_INT64,
        G(retain_expiry_interval), NULL, "off", RL, NULL,
        "Sweep expired retained messages every this many minutes."),
    DIR("retry_interval", GL, 0, REST, cx_conf_set_obsolete, CX_CONF_K_NONE, 0, NULL, NULL,
        DEP | COMPAT, "has no effect since mosquitto 2.0; remove it",
        "Obsolete; accepted with a warning and ignored, as mosquitto 2 does."),
    BOOL("set_tcp_nodelay", GL, G(set_tcp_nodelay), "false", RL,
         "Set TCP_NODELAY on client sockets."),
    INT("sys_interval", GL, G(sys_interval), &r_u16, "10", RL,
        "Seconds between $SYS topic updates; 0 disables them."),
    BOOL("upgrade_outgoing_qos", GL, G(upgrade_outgoing_qos), "false", RL,
         "Send messages at the subscription's QoS even when published at a lower one "
         "(non-standard)."),
    STR("user", GL, G(user), "mosquitto", 0,
        "When started as root, switch to this user (mosquitto's default name, for drop-in "
        "installs)."),
    DIR("workers", GL, 1, 1, cx_conf_set_int, CX_CONF_K_INT, G(workers), &r_workers,
        "number of online CPUs", CX_CONF_CULEX_ONLY, NULL,
        "Number of worker threads, each with its own event loop."),

    SECTION("Security and authentication",
            "With per_listener_settings true, the directives marked `global or listener` "
            "apply to the listener they follow; otherwise to every listener."),
    DIR("acl_file", GL | LI, 1, REST, cx_conf_set_auth_file, CX_CONF_K_NONE, 0, NULL, NULL,
        PERL | EARLY | RL, NULL,
        "Access control list file (mosquitto format), read by the built-in auth_file plugin "
        "together with the password_file of the same scope. Scope and repetition as "
        "password_file."),
    DIR("allow_anonymous", GL | LI, 1, 1, cx_conf_set_security, CX_CONF_K_INT,
        G(allow_anonymous), &sec_allow_anonymous, "false (true in local-only mode)",
        CX_CONF_PERLISTENER | RL, NULL,
        "Allow clients that connect without a username."),
    DIR("allow_zero_length_clientid", GL | LI, 1, 1, cx_conf_set_security, CX_CONF_K_BOOL,
        G(allow_zero_length_clientid), &sec_zero_length, "true", CX_CONF_PERLISTENER | RL,
        NULL, "Let MQTT 3.1.1 and 5 clients connect with an empty client id and assign one."),
    DIR("auto_id_prefix", GL | LI, 1, REST, cx_conf_set_security, CX_CONF_K_STR,
        G(auto_id_prefix), &sec_auto_id_prefix, "auto-", CX_CONF_PERLISTENER | RL | DEP,
        "use listener_auto_id_prefix", "Prefix of the client ids the broker assigns."),
    DIR("per_listener_settings", GL, 1, 1, cx_conf_set_per_listener_settings, CX_CONF_K_BOOL,
        G(per_listener_settings), NULL, "false", DEP,
        "use listener_allow_anonymous and listener_auto_id_prefix",
        "Make the security directives apply per listener. Must come before them; cannot be "
        "turned off once on."),
    DIR("password_file", GL | LI, 1, REST, cx_conf_set_auth_file, CX_CONF_K_NONE, 0, NULL,
        NULL, PERL | EARLY | RL, NULL,
        "Username and password file (mosquitto_passwd format), read by the built-in auth_file "
        "plugin, which runs after the plugins (mosquitto checks plugins first). With "
        "per_listener_settings true but no listener yet, it applies to every listener "
        "(warned). Given twice in a scope, the last one is used."),
    DIR("psk_file", GL | LI, 1, REST, cx_conf_set_security, CX_CONF_K_STR, G(psk_file),
        &sec_psk_file, NULL, CX_CONF_PERLISTENER | RL, NULL,
        "Pre-shared keys for TLS-PSK listeners (those with psk_hint): one `identity:hexkey` "
        "per line. Read at start and on SIGHUP; a malformed line names the file and line."),

    SECTION("Listeners",
            "Directives marked `listener` apply to the listener declared last. Before any "
            "`listener` line, those marked `default listener` configure mosquitto's implicit "
            "default listener on port 1883 (created on first use); the others are an error."),
    DIR("listener", GL, 1, 2, cx_conf_set_listener, CX_CONF_K_NONE, 0, NULL, NULL, MULTI,
        NULL,
        "`listener PORT [ADDRESS]` or `listener 0 /unix/socket/path`: declares a listener; "
        "the following listener directives apply to it."),
    DIR("port", GL, 1, 1, cx_conf_set_port, CX_CONF_K_NONE, 0, NULL, "1883", DEP,
        "use `listener PORT`", "Port of the default listener."),
    DIR("bind_address", GL, 1, REST, cx_conf_set_bind_address, CX_CONF_K_NONE, 0, NULL, NULL,
        DEP, "use `listener PORT ADDRESS`", "Address of the default listener."),
    DIR("accept_protocol_versions", LI, 1, REST, cx_conf_set_accept_versions, CX_CONF_K_UINT,
        L(accept_protocol_versions), NULL, "3, 4, 5", CX_CONF_NOTDEFAULT, NULL,
        "MQTT protocol levels this listener accepts, e.g. `5` or `3, 4` (3 = 3.1, 4 = 3.1.1, "
        "5 = 5.0)."),
    PATH("bind_interface", LI, L(bind_interface), NULL, DEFL,
         "Listen only on this network interface (e.g. eth0)."),
    DIR("listener_allow_anonymous", LI, 1, 1, cx_conf_set_tristate, CX_CONF_K_INT,
        L(listener_allow_anonymous), NULL, "allow_anonymous", 0, NULL,
        "Allow clients without a username on this listener (overrides allow_anonymous)."),
    DIR("listener_auto_id_prefix", LI, 1, REST, cx_conf_set_string, CX_CONF_K_STR,
        L(listener_auto_id_prefix), &r_prefix_len, "auto_id_prefix", 0, NULL,
        "Prefix of the client ids assigned on this listener (at most 50 characters)."),
    INT("max_connections", LI, L(max_connections), &r_unlimited, "-1", DEFL,
        "Maximum number of clients connected to this listener; -1 for no limit."),
    INT("max_qos", LI, L(max_qos), &r_qos, "2", DEFL,
        "Highest QoS clients of this listener may use."),
    DIR("maximum_qos", LI, 1, 1, cx_conf_set_int, CX_CONF_K_INT, L(max_qos), &r_qos, "2",
        DEFL | COMPAT, NULL, "Alias of max_qos."),
    INT("max_topic_alias", LI, L(max_topic_alias), &r_u16, "10", 0,
        "Topic aliases an MQTT 5 client may create; 0 disallows them."),
    INT("max_topic_alias_broker", LI, L(max_topic_alias_broker), &r_u16, "10", 0,
        "Topic aliases the broker creates per MQTT 5 client (as mosquitto 2.1); 0 disables "
        "them."),
    DIR("mount_point", LI, 1, REST, cx_conf_set_mount_point, CX_CONF_K_STR, L(mount_point),
        NULL, NULL, 0, NULL,
        "Topic prefix added to every topic of this listener's clients, which see only that "
        "subtree."),
    DIR("protocol", LI, 1, 1, cx_conf_set_protocol, CX_CONF_K_INT, L(protocol), NULL, "mqtt",
        DEFL, NULL,
        "mqtt or websockets (MQTT over WebSockets, any path, subprotocol mqtt). http_api is "
        "not supported yet."),
    ENUM("socket_domain", LI, L(socket_domain), socket_domains, "both", DEFL,
         "Listen on ipv4 or ipv6 only."),
    BOOL("use_username_as_clientid", LI, L(use_username_as_clientid), "false", DEFL,
         "Replace the client id by the username; clients without one are refused."),

    SECTION("TLS",
            "Certificate and pre-shared-key TLS for listeners (docs/tls.md). Before any "
            "`listener` line they configure the default listener, as in mosquitto 2.0. A "
            "listener uses TLS when it has certfile and keyfile, or psk_hint. SIGHUP reloads "
            "the certificates, keys, CRL and PSK file: new connections use them, connected "
            "clients keep their session."),
    PATH("cafile", LI, L(cafile), NULL, DEFL,
         "CA certificates (PEM) that client certificates must chain to."),
    PATH("capath", LI, L(capath), NULL, DEFL,
         "Directory of CA certificates (named by hash, as c_rehash or openssl rehash do)."),
    PATH("certfile", LI, L(certfile), NULL, DEFL,
         "Server certificate (PEM), followed by its intermediates; needs keyfile."),
    STR("ciphers", LI, L(ciphers), "OpenSSL's default", DEFL,
        "TLS 1.2 cipher list, in OpenSSL's syntax."),
    STR("ciphers_tls1.3", LI, L(ciphers_tls13), "OpenSSL's default", DEFL,
        "TLS 1.3 cipher suites, in OpenSSL's syntax."),
    PATH("crlfile", LI, L(crlfile), NULL, DEFL,
         "Certificate revocation list (PEM); revoked client certificates are refused."),
    PATH("dhparamfile", LI, L(dhparamfile), NULL, DEFL,
         "DH parameters (PEM) for the DHE ciphers of TLS 1.2."),
    BOOL("disable_client_cert_date_checks", LI, L(disable_client_cert_date_checks), "false",
         DEFL, "Accept client certificates that have expired or are not valid yet."),
    PATH("keyfile", LI, L(keyfile), NULL, DEFL,
         "Private key of certfile (PEM, not encrypted: a daemon has nobody to ask for a "
         "passphrase); with `tls_keyform engine`, the key's id for tls_engine (for pkcs11 a "
         "PKCS#11 URI)."),
    BOOL("require_certificate", LI, L(require_certificate), "false", DEFL,
         "Require a client certificate signed by cafile/capath (without either, every client "
         "is refused: warned at start, as mosquitto starts). When false, clients are not "
         "asked for one."),
    STR("tls_engine", LI, L(tls_engine), NULL, DEFL,
        "OpenSSL engine loaded with this listener's TLS context, e.g. pkcs11 (docs/tls.md). "
        "With `tls_keyform engine` it loads the key; otherwise it becomes OpenSSL's default "
        "for the algorithms it implements (a crypto accelerator), process-wide."),
    DIR("tls_engine_kpass_sha1", LI, 1, 1, cx_conf_set_tls_kpass_sha1, CX_CONF_K_STR,
        L(tls_engine_kpass_sha1), NULL, NULL, DEFL, NULL,
        "SHA-1 (40 hex digits) of the key's password, given to tls_engine through its "
        "SECRET_MODE and PIN controls as mosquitto does. Only engines with a SECRET_MODE "
        "control (the TPM engine) take it; pkcs11 has none and is refused: give the PIN in "
        "the key URI (`?pin-source=file:PATH`)."),
    DIR("tls_keyform", LI, 1, 1, cx_conf_set_tls_keyform, CX_CONF_K_BOOL,
        L(tls_keyform_engine), NULL, "pem", DEFL, NULL,
        "pem: keyfile is a PEM file; engine: keyfile is a key id that tls_engine loads."),
    ENUM("tls_version", LI, L(tls_version), tls_versions, "tlsv1.2", DEFL,
         "Lowest TLS version accepted: tlsv1.3, tlsv1.2 or tlsv1.1 (TLS 1.2 and 1.3 by "
         "default, as mosquitto 2)."),
    BOOL("use_identity_as_username", LI, L(use_identity_as_username), "false", DEFL,
         "Use the client certificate's CN (or, on a PSK listener, the PSK identity) as the "
         "username; the CONNECT's username and password are ignored and the password check "
         "is skipped, as in mosquitto."),
    BOOL("use_subject_as_username", LI, L(use_subject_as_username), "false", DEFL,
         "Use the client certificate's whole subject (RFC 2253, e.g. CN=a,O=b) as the "
         "username, like use_identity_as_username."),
    STR("psk_hint", LI, L(psk_hint), NULL, DEFL,
        "TLS-PSK identity hint; enables TLS-PSK on this listener (keys from psk_file). "
        "Cannot be combined with certfile on one listener, as in mosquitto."),

    SECTION("WebSockets, HTTP and PROXY protocol",
            "`protocol websockets` listeners speak MQTT over WebSockets (RFC 6455), over TLS "
            "too when they have TLS settings (docs/websockets.md). PROXY protocol: docs/proxy.md."),
    INT("enable_proxy_protocol", LI, L(enable_proxy_protocol), &r_proxy, "0", 0,
        "Expect a PROXY protocol header from a load balancer before anything else: 1 accepts "
        "v1, 2 accepts v2 and v1 (the spec's advice). A connection without a valid header is "
        "closed. The header's client address replaces the socket's in logs and for plugins."),
    UNSUP("http_dir", LI, 0, "HTTP file serving", NULL,
          "Directory of files served over HTTP."),
    BOOL("proxy_protocol_v2_require_tls", LI, L(proxy_protocol_v2_require_tls), "false", 0,
         "With enable_proxy_protocol: refuse connections whose PROXY header does not say the "
         "client connected over TLS (v2 SSL TLV; a v1 header cannot say it, so it is refused)."),
    DIR("websockets_headers_size", GL, 1, 1, cx_conf_set_size, CX_CONF_K_SIZE,
        G(packet_buffer_size), &r_u16, "4096", COMPAT, NULL,
        "Alias of packet_buffer_size (one option in mosquitto 2.1); also the largest "
        "WebSocket upgrade request accepted (at least 4096 bytes)."),
    DIR("websockets_log_level", GL, 1, 1, cx_conf_set_obsolete, CX_CONF_K_NONE, 0, NULL, "0",
        COMPAT, NULL,
        "libwebsockets' log level: accepted and ignored (`log_type websockets` logs "
        "culex's WebSocket events)."),
    DIR("websockets_origin", LI, 1, REST, cx_conf_set_ws_origin, CX_CONF_K_NONE, 0, NULL,
        NULL, MULTI, NULL,
        "An allowed Origin of WebSocket upgrades (repeat for several, e.g. "
        "https://example.com). When given, upgrades with another Origin, or none, are "
        "answered 403."),

    SECTION("Persistence",
            "Retained messages, persistent sessions, their subscriptions and their queued and "
            "in-flight QoS 1/2 messages survive a restart, clean or not (docs/persistence.md). "
            "These settings are read at start only: a reload warns that a restart is needed."),
    BOOL("persistence", GL, G(persistence), "false", 0,
         "Save sessions, subscriptions and retained messages to disk."),
    BOOL("retained_persistence", GL, G(persistence), "false", COMPAT, "Alias of persistence."),
    STR("persistence_file", GL, G(persistence_file), "culex.db", 0,
        "File name of the store. culex's own format: Mosquitto's mosquitto.db is not read, "
        "and a file of another format is never overwritten (the broker refuses to start)."),
    PATH("persistence_location", GL, G(persistence_location), "current directory", 0,
         "Directory of the store (with or without a trailing /)."),
    ENUM("persistence_sync", GL, G(persistence_sync), persistence_syncs, "batch", 0,
         "always: a QoS 1/2 PUBLISH is acknowledged only once it is on disk; batch: on disk "
         "within persistence_batch_ms; none: only in snapshots (autosave_interval and exit), as "
         "Mosquitto does."),
    INT("persistence_batch_ms", GL, G(persistence_batch_ms), &r_batch_ms, "100", 0,
        "With persistence_sync batch: the longest time a change waits to be on disk."),
    INT("autosave_interval", GL, G(autosave_interval), &r_int_neg0, "1800", 0,
        "With persistence_sync none: seconds between snapshots (or changes, see "
        "autosave_on_changes); 0 saves only on exit. The other levels compact the store when it "
        "has doubled in size."),
    BOOL("autosave_on_changes", GL, G(autosave_on_changes), "false", 0,
         "Count changes instead of seconds for autosave_interval."),

    SECTION("Logging", NULL),
    DIR("log_dest", GL, 1, REST, cx_conf_set_log_dest, CX_CONF_K_UINT, G(log_dest), NULL,
        "stderr", RL | MULTI, NULL,
        "stdout, stderr, syslog, topic, `file PATH` (the rest of the line) or none. The first "
        "line replaces the default."),
    DIR("log_facility", GL, 1, 1, cx_conf_set_log_facility, CX_CONF_K_INT, G(log_facility),
        NULL, "daemon", RL, NULL, "Syslog facility local0..local7, given as 0..7."),
    BOOL("log_timestamp", GL, G(log_timestamp), "true", RL, "Prefix log lines with a time."),
    STR("log_timestamp_format", GL, G(log_timestamp_format), "seconds since the epoch", RL,
        "strftime format of the time stamp, e.g. %Y-%m-%dT%H:%M:%S."),
    DIR("log_type", GL, 1, 1, cx_conf_set_log_type, CX_CONF_K_UINT, G(log_type), NULL,
        "error, warning, notice, information", RL | MULTI, NULL,
        "debug, error, warning, notice, information, subscribe, unsubscribe, websockets, "
        "none or all. The first line replaces the default."),

    SECTION("Bridges",
            "A bridge block starts with `connection NAME`; the directives below belong to it. "
            "Bridges are not supported yet."),
    DIR("connection", GL, 1, 1, cx_conf_set_connection, CX_CONF_K_NONE, 0, NULL, NULL,
        CX_CONF_UNSUPPORTED | MULTI, "bridges", "Starts a bridge to another broker."),
    BRIDGE("address", NULL, "Remote broker address(es), host[:port] ..."),
    BRIDGE_ALIAS("addresses", "address"),
    BRIDGE("bridge_alpn", NULL, "ALPN protocol for the bridge's TLS connection."),
    BRIDGE("bridge_attempt_unsubscribe", "true", "Unsubscribe remotely from `out` topics."),
    BRIDGE("bridge_bind_address", NULL, "Local address of the bridge connection."),
    BRIDGE("bridge_cafile", NULL, "CA certificates for the remote broker."),
    BRIDGE("bridge_capath", NULL, "Directory of CA certificates for the remote broker."),
    BRIDGE("bridge_certfile", NULL, "Client certificate of the bridge."),
    BRIDGE("bridge_ciphers", NULL, "TLS 1.2 cipher list of the bridge."),
    BRIDGE("bridge_ciphers_tls1.3", NULL, "TLS 1.3 cipher suites of the bridge."),
    BRIDGE("bridge_identity", NULL, "TLS-PSK identity of the bridge."),
    BRIDGE("bridge_insecure", "false", "Do not verify the remote certificate's host name."),
    BRIDGE("bridge_keyfile", NULL, "Private key of the bridge's certificate."),
    BRIDGE("bridge_max_packet_size", "0", "Largest packet sent to the remote broker."),
    BRIDGE("bridge_max_topic_alias", "10", "Topic aliases the remote broker may create."),
    BRIDGE("bridge_outgoing_retain", "true", "Keep the retain flag on outgoing messages."),
    BRIDGE("bridge_protocol_version", "mqttv311", "mqttv31, mqttv311 or mqttv50."),
    BRIDGE("bridge_psk", NULL, "TLS-PSK key of the bridge."),
    BRIDGE("bridge_receive_maximum", "max_inflight_messages", "MQTT 5 receive maximum."),
    BRIDGE("bridge_reload_type", "lazy", "Apply reloaded settings lazily or immediately."),
    BRIDGE("bridge_require_ocsp", "false", "Require OCSP stapling from the remote broker."),
    BRIDGE("bridge_session_expiry_interval", "0", "MQTT 5 session expiry of the bridge."),
    BRIDGE("bridge_tcp_keepalive", "off", "TCP keepalive idle, interval and count."),
    BRIDGE("bridge_tcp_user_timeout", NULL, "TCP_USER_TIMEOUT in milliseconds."),
    BRIDGE("bridge_tls_use_os_certs", "false", "Trust the system CA certificates."),
    BRIDGE("bridge_tls_version", NULL, "TLS version of the bridge."),
    BRIDGE("cleansession", "false", "Clean session for the remote connection."),
    BRIDGE_ALIAS("clientid", "remote_clientid"),
    BRIDGE("idle_timeout", "60", "Seconds idle before a lazy bridge stops."),
    BRIDGE("keepalive_interval", "60", "Keepalive of the remote connection, in seconds."),
    BRIDGE("local_cleansession", "cleansession", "Clean session for the local side."),
    BRIDGE("local_clientid", NULL, "Client id on the local broker."),
    BRIDGE("local_password", NULL, "Password on the local broker."),
    BRIDGE("local_username", NULL, "Username on the local broker."),
    BRIDGE("notification_topic", NULL, "Topic of the bridge state notifications."),
    BRIDGE("notifications", "true", "Publish the bridge state."),
    BRIDGE("notifications_local_only", "false", "Publish the bridge state only locally."),
    BRIDGE_ALIAS("password", "remote_password"),
    BRIDGE("remote_clientid", "name.hostname", "Client id on the remote broker."),
    BRIDGE("remote_password", NULL, "Password on the remote broker."),
    BRIDGE("remote_username", NULL, "Username on the remote broker."),
    BRIDGE("restart_timeout", "jitter, base 5 s, cap 30 s", "Reconnect delay or backoff."),
    BRIDGE("round_robin", "false", "Rotate through the addresses instead of preferring the "
                                   "first."),
    BRIDGE("start_type", "automatic", "automatic, lazy or once."),
    BRIDGE("threshold", "10", "Queued messages that start a lazy bridge."),
    BRIDGE("topic", NULL, "`topic PATTERN [in|out|both [QOS [LOCAL-PREFIX REMOTE-PREFIX]]]`."),
    BRIDGE("try_private", "true", "Tell the remote broker this is a bridge."),
    BRIDGE_ALIAS("username", "remote_username"),

    SECTION("Plugins",
            "culex plugins use culex's ABI (include/culex/plugin.h), not mosquitto's: a "
            "mosquitto plugin needs a culex build, and the broker refuses to start when a "
            "plugin cannot be loaded. Several plugins form a chain, run in load order among "
            "hooks of equal priority: global plugins first, then the listener's own, then the "
            "password and ACL files. Plugins are not reloaded on SIGHUP; their options are, "
            "when the file still declares the same plugins."),
    DIR("plugin", GL | LI, 1, REST, cx_conf_set_plugin, CX_CONF_K_NONE, 0, NULL, NULL,
        PERL | EARLY | MULTI, NULL,
        "Load a plugin (the path is the rest of the line). With per_listener_settings true "
        "it applies to the listener declared last (before any listener: to all, with a "
        "warning), otherwise to every listener."),
    DIR("global_plugin", GL, 1, REST, cx_conf_set_plugin, CX_CONF_K_NONE, 0, NULL, NULL, MULTI,
        NULL, "Load a plugin for every listener, whatever per_listener_settings says."),
    DIR("auth_plugin", GL | LI, 1, REST, cx_conf_set_plugin, CX_CONF_K_NONE, 0, NULL, NULL,
        PERL | EARLY | DEP | MULTI, "use plugin", "Old name of plugin."),
    DIR("plugin_load", GL, 2, REST, cx_conf_set_plugin_load, CX_CONF_K_NONE, 0, NULL, NULL,
        MULTI, NULL,
        "`plugin_load NAME PATH`: load a plugin once under NAME; listeners attach it with "
        "plugin_use."),
    DIR("plugin_use", LI, 1, 1, cx_conf_set_plugin_use, CX_CONF_K_NONE, 0, NULL, NULL,
        CX_CONF_NOTDEFAULT | MULTI, NULL,
        "`plugin_use NAME`: attach the plugin loaded as NAME to this listener (whatever "
        "per_listener_settings says); following plugin_opt_* lines are its options."),
    DIR("plugin_opt_", PL, 1, REST, cx_conf_set_plugin_opt, CX_CONF_K_NONE, 0, NULL, NULL,
        CX_CONF_PREFIX | MULTI | RL, NULL,
        "`plugin_opt_KEY VALUE`: option KEY of the plugin declared last in the same file. "
        "VALUE is the rest of the line, a trailing `# comment` included (as mosquitto passes "
        "it). A KEY given twice for one plugin is an error."),
    DIR("auth_opt_", PL, 1, REST, cx_conf_set_plugin_opt, CX_CONF_K_NONE, 0, NULL, NULL,
        CX_CONF_PREFIX | DEP | MULTI | RL, "use plugin_opt_*", "Old name of plugin_opt_*."),
    DIR("auth_plugin_deny_special_chars", PL, 1, 1, cx_conf_set_deny_special_chars,
        CX_CONF_K_NONE, 0, NULL, "true", 0, NULL,
        "Deny the ACL checks of clients whose username or client id contains + or # before "
        "asking the plugin declared last."),
};

const size_t cx_conf_directive_count = sizeof cx_conf_directives / sizeof cx_conf_directives[0];

const cx_conf_directive_t *cx_conf_find(const char *name)
{
    const cx_conf_directive_t *best = NULL;
    size_t best_len = 0;
    for (size_t i = 0; i < cx_conf_directive_count; i++) {
        const cx_conf_directive_t *d = &cx_conf_directives[i];
        if (d->flags & CX_CONF_SECTION)
            continue;
        if (!(d->flags & CX_CONF_PREFIX)) {
            if (strcmp(d->name, name) == 0)
                return d;
            continue;
        }
        size_t n = strlen(d->name);
        if (n > best_len && strncmp(d->name, name, n) == 0 && name[n]) {
            best = d;
            best_len = n;
        }
    }
    return best;
}

/* ---- reference generator ---------------------------------------------------------------- */

static const char *scope_text(const cx_conf_directive_t *d)
{
    if (d->flags & CX_CONF_PERLISTENER)
        return "global or listener";
    if (d->scope & CX_CONF_BRIDGE)
        return "bridge";
    if (d->scope & CX_CONF_PLUGIN)
        return "plugin";
    if (d->scope & CX_CONF_LISTENER)
        return d->flags & CX_CONF_DEFLISTENER ? "listener, default listener" : "listener";
    return "global";
}

static void arity_text(const cx_conf_directive_t *d, char *buf, size_t len)
{
    if (d->max_args == CX_CONF_REST)
        snprintf(buf, len, d->min_args ? "rest of line" : "any");
    else if (d->min_args == d->max_args)
        snprintf(buf, len, "%u", d->min_args);
    else
        snprintf(buf, len, "%u-%u", d->min_args, d->max_args);
}

static void flags_text(const cx_conf_directive_t *d, char *buf, size_t len)
{
    static const struct {
        unsigned flag;
        const char *text;
    } names[] = {
        {CX_CONF_RELOADABLE, "reloadable"},
        {CX_CONF_DEPRECATED, "deprecated"},
        {CX_CONF_MOSQ_COMPAT, "mosquitto compat"},
        {CX_CONF_CULEX_ONLY, "culex only"},
        {CX_CONF_MULTI, "repeatable"},
    };
    size_t used = 0;
    buf[0] = '\0';
    if (d->flags & CX_CONF_UNSUPPORTED) {
        int n = snprintf(buf, len, "not supported yet (%s)%s", d->note,
                         d->flags & CX_CONF_FALSE_OK ? ", false accepted" : "");
        used = n > 0 ? (size_t)n : 0;
    }
    for (size_t i = 0; i < sizeof names / sizeof names[0] && used < len; i++) {
        if (!(d->flags & names[i].flag))
            continue;
        int n = snprintf(buf + used, len - used, "%s%s", used ? ", " : "", names[i].text);
        if (n > 0)
            used += (size_t)n;
    }
    if ((d->flags & CX_CONF_DEPRECATED) && !(d->flags & CX_CONF_UNSUPPORTED) && d->note &&
        used < len)
        snprintf(buf + used, len - used, ": %s", d->note);
}

void cx_config_write_reference(FILE *out)
{
    fputs("# culex configuration reference\n\n"
          "<!-- Generated by cx_confdoc from core/config/directives.c; do not edit. -->\n"
          "<!-- Regenerate: build/core/cx_confdoc > docs/config-reference.md -->\n\n"
          "culex reads mosquitto.conf: one directive per line, `name value`, `#` starts a "
          "comment line. Values that are one word ignore the rest of the line (so a trailing "
          "`# comment` is fine); strings and paths take the rest of the line, and plugin "
          "options keep a trailing `# comment` in their value, as mosquitto does. Errors "
          "name the file, the line and the directive. Defaults are Mosquitto 2.1's.\n\n"
          "Flags: *reloadable* = applied on SIGHUP; *deprecated* = accepted with a warning; "
          "*mosquitto compat* = an alias, or accepted for compatibility with no effect; "
          "*not supported yet* = recognised and refused until culex has the feature.\n",
          out);
    bool in_table = false;
    for (size_t i = 0; i < cx_conf_directive_count; i++) {
        const cx_conf_directive_t *d = &cx_conf_directives[i];
        if (d->flags & CX_CONF_SECTION) {
            fprintf(out, "\n## %s\n\n", d->name);
            if (d->doc)
                fprintf(out, "%s\n\n", d->doc);
            fputs("| Directive | Scope | Values | Default | Flags | Description |\n"
                  "| --- | --- | --- | --- | --- | --- |\n",
                  out);
            in_table = true;
            continue;
        }
        if (!in_table)
            continue;
        char arity[32], flags[256];
        arity_text(d, arity, sizeof arity);
        flags_text(d, flags, sizeof flags);
        fprintf(out, "| `%s%s` | %s | %s | %s | %s | %s |\n", d->name,
                d->flags & CX_CONF_PREFIX ? "*" : "", scope_text(d), arity,
                d->def ? d->def : "-", flags[0] ? flags : "-", d->doc);
    }
}
