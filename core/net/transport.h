/* transport.h: what a listener stacks on top of TCP — the PROXY protocol header, TLS and
 * WebSockets — and the TLS contexts those listeners share.
 *
 * A listener's cx_transport_t is filled once, on the main thread, before the workers start
 * (by the broker, from the listener's configuration: net knows no config types). Workers
 * read it when they accept a connection. The TLS context is the one field that changes
 * later: a reload builds a new context and swaps it in under tls_lock; each connection
 * holds a reference to the context it was accepted with, so connected clients keep theirs
 * and new ones get the new certificates (docs/tls.md).
 *
 * The per-connection side (the filter stack that runs these layers) is filter.h. */
#ifndef CX_NET_TRANSPORT_H
#define CX_NET_TRANSPORT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct cx_tls_ctx cx_tls_ctx_t;

/* The settings of one listener's TLS context (mosquitto's directive names). Strings are
 * borrowed for the call. */
typedef struct cx_tls_conf {
    const char *cafile, *capath;    /* CAs that client certificates must chain to */
    const char *certfile, *keyfile; /* server certificate chain and key (PEM), or with
                                     * keyform_engine the engine's key id (PKCS#11 URI) */
    const char *crlfile;            /* PEM CRL: revoked client certificates are refused */
    const char *ciphers;            /* TLS 1.2 cipher list; NULL = OpenSSL's default */
    const char *ciphers_tls13;      /* TLS 1.3 suites; NULL = OpenSSL's default */
    const char *dhparamfile;        /* DH parameters (PEM); NULL = OpenSSL's built-in */
    const char *psk_hint;           /* non-NULL: a TLS-PSK listener */
    const char *psk_file;           /* `identity:hexkey` lines, for psk_hint listeners */
    int min_version;                /* 0x0302..0x0304; 0 = TLS 1.2 */
    bool require_certificate;       /* ask for a client certificate and require it */
    bool no_date_checks;            /* accept expired / not yet valid client certificates */
    const char *engine;             /* tls_engine: OpenSSL ENGINE id (tls_engine.h) */
    const char *engine_kpass_sha1;  /* 40 hex digits for the engine, or NULL */
    bool keyform_engine;            /* tls_keyform engine: keyfile is loaded by the engine */
} cx_tls_conf_t;

/* Builds a context: reads every file now (certificate, key, CAs, CRL, DH parameters, PSK
 * file), so that a bad file is reported at start (or at reload) and never in a handshake.
 * NULL with err describing what was wrong and where ("keyfile /x.pem: no such file",
 * "psk_file /p:3: key is not hexadecimal", OpenSSL's reason, ...). Main thread. */
cx_tls_ctx_t *cx_tls_ctx_new(const cx_tls_conf_t *tc, char *err, size_t errlen);
/* Any thread. */
void cx_tls_ctx_ref(cx_tls_ctx_t *t);
void cx_tls_ctx_unref(cx_tls_ctx_t *t);

/* A listener's transport stack. Zeroed = plain MQTT over TCP (the fast path: connections
 * then carry no filter state at all). */
typedef struct cx_transport {
    unsigned proxy_versions;   /* CX_PROXY_V1 / CX_PROXY_V2 bits (proxy.h); 0 = no header */
    bool proxy_require_tls;    /* refuse headers that do not say the client used TLS */
    bool proxy_require_cert;   /* no TLS here: the header must report a verified client
                                * certificate (require_certificate behind a TLS proxy) */
    bool websockets;           /* MQTT over WebSockets */
    size_t ws_headers_max;     /* largest upgrade request head, bytes */
    uint64_t ws_max_frame;     /* payload bytes per WebSocket frame (close 1009 past it) */
    uint64_t ws_max_message;   /* ... per message, all fragments */
    const char *const *ws_origins; /* allowed Origin values (borrowed); none = any */
    size_t ws_norigins;
    bool has_tls;              /* the listener is a TLS one (tls is set) */
    pthread_mutex_t tls_lock;  /* guards tls; initialised by cx_transport_init */
    cx_tls_ctx_t *tls;         /* the context new connections get; one reference */
} cx_transport_t;

void cx_transport_init(cx_transport_t *tp);
/* Frees the context reference and the lock. */
void cx_transport_destroy(cx_transport_t *tp);
/* Installs ctx (taking the caller's reference) for new connections; the previous context
 * lives on in the connections that use it. Main thread; workers may be running. */
void cx_transport_set_tls(cx_transport_t *tp, cx_tls_ctx_t *ctx);
/* A reference to the current context (NULL without TLS); any thread. */
cx_tls_ctx_t *cx_transport_tls(cx_transport_t *tp);
/* True when connections on this listener need the filter stack. */
static inline bool cx_transport_is_plain(const cx_transport_t *tp)
{
    return !tp->proxy_versions && !tp->websockets && !tp->has_tls;
}

#endif
