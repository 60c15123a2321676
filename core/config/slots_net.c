/* slots_net.c: the setters and start-up checks of the transport directives: TLS,
 * WebSockets and the PROXY protocol.
 *
 * The rows themselves are in directives.c; most use the typed setters. What lives here is
 * what the typed setters cannot say: `websockets_origin` accumulates, `tls_keyform` and
 * `tls_engine_kpass_sha1` have their own syntax, and the combinations mosquitto refuses (require_certificate without a CA,
 * certfile without keyfile, certificates and PSK on one listener) are checked once the
 * whole file is read, so that the order of the lines does not matter. */
#include <stdio.h>
#include <string.h>

#include "conf_table.h"
#include "util/alloc.h"
#include "util/err.h"
#include "util/log.h"
#include "util/str.h"

const char *cx_conf_set_tls_keyform(cx_conf_ctx_t *ctx, const cx_conf_directive_t *d, void *slot,
                                    const cx_conf_args_t *a)
{
    (void)d;
    if (strcmp(a->argv[0], "pem") == 0 || strcmp(a->argv[0], "engine") == 0) {
        *(bool *)slot = a->argv[0][0] == 'e';
        return NULL;
    }
    return cx_conf_msg(ctx, "invalid value '%s' (expected pem or engine)", a->argv[0]);
}

/* `tls_engine_kpass_sha1 HEX`: a SHA-1 digest, so exactly 40 hexadecimal digits. */
const char *cx_conf_set_tls_kpass_sha1(cx_conf_ctx_t *ctx, const cx_conf_directive_t *d,
                                       void *slot, const cx_conf_args_t *a)
{
    (void)d;
    const char *v = a->argv[0];
    size_t n = strlen(v);
    bool hex = n == 40;
    for (size_t i = 0; hex && i < n; i++)
        hex = cx_hexval(v[i]) >= 0;
    if (!hex)
        return "expected 40 hexadecimal digits (the SHA-1 of the key's password)";
    char *copy = cx_strdup(v);
    if (!copy)
        return "out of memory";
    char **s = slot;
    cx_free(*s);
    *s = copy;
    return NULL;
}

/* `websockets_origin ORIGIN`, repeatable: each line adds one allowed Origin. */
const char *cx_conf_set_ws_origin(cx_conf_ctx_t *ctx, const cx_conf_directive_t *d, void *slot,
                                  const cx_conf_args_t *a)
{
    (void)d, (void)slot;
    cx_listener_conf_t *l = cx_conf_current_listener(ctx, a->name, false);
    if (!l)
        return "only valid after a `listener` line";
    if (!*a->rest)
        return "missing value";
    if (!cx_conf_utf8_valid(a->rest))
        return "value is not valid UTF-8";
    for (const char *p = a->rest; *p; p++)
        if (*p == ' ' || *p == '\t')
            return "an origin has no blanks (give one origin per line)";
    char **n = cx_realloc(l->websockets_origin, (l->websockets_origin_count + 1) * sizeof *n);
    if (!n)
        return "out of memory";
    l->websockets_origin = n;
    n[l->websockets_origin_count] = cx_strdup(a->rest);
    if (!n[l->websockets_origin_count])
        return "out of memory";
    l->websockets_origin_count++;
    return NULL;
}

void cx_conf_net_free(cx_listener_conf_t *l)
{
    cx_free(l->cafile);
    cx_free(l->capath);
    cx_free(l->certfile);
    cx_free(l->keyfile);
    cx_free(l->crlfile);
    cx_free(l->ciphers);
    cx_free(l->ciphers_tls13);
    cx_free(l->dhparamfile);
    cx_free(l->psk_hint);
    cx_free(l->psk_file);
    cx_free(l->tls_engine);
    cx_free(l->tls_engine_kpass_sha1);
    for (size_t i = 0; i < l->websockets_origin_count; i++)
        cx_free(l->websockets_origin[i]);
    cx_free(l->websockets_origin);
    l->websockets_origin = NULL;
    l->websockets_origin_count = 0;
}

/* Mosquitto starts with these and ignores them: so does culex, saying so. */
static void warn(const cx_listener_conf_t *l, const char *msg)
{
    if (l->file)
        cx_log(CX_LOG_WARNING, "%s:%d: listener: %s", l->file, l->line, msg);
    else
        cx_log(CX_LOG_WARNING, "listener: %s", msg);
}

static int fail(const cx_listener_conf_t *l, char *err, size_t errlen, const char *msg)
{
    if (err && errlen) {
        if (l->file)
            snprintf(err, errlen, "%s:%d: listener: %s", l->file, l->line, msg);
        else
            snprintf(err, errlen, "listener: %s", msg);
    }
    return CX_ECONFIG;
}

/* The first TLS-only setting a listener without TLS has, or NULL. */
static const char *tls_only_setting(const cx_listener_conf_t *l)
{
    if (l->cafile)
        return "cafile";
    if (l->capath)
        return "capath";
    if (l->crlfile)
        return "crlfile";
    if (l->ciphers)
        return "ciphers";
    if (l->ciphers_tls13)
        return "ciphers_tls1.3";
    if (l->dhparamfile)
        return "dhparamfile";
    if (l->tls_version)
        return "tls_version";
    if (l->disable_client_cert_date_checks)
        return "disable_client_cert_date_checks";
    if (l->tls_engine)
        return "tls_engine";
    return NULL;
}

int cx_conf_check_net(const cx_config_t *cfg, char *err, size_t errlen)
{
    char msg[256];
    for (size_t i = 0; i < cfg->listener_count; i++) {
        const cx_listener_conf_t *l = &cfg->listeners[i];
        bool cert = l->certfile || l->keyfile;
        bool psk = l->psk_hint != NULL;
        bool tls = cert || psk;
        bool proxied = l->enable_proxy_protocol > 0;
        if (cert && !(l->certfile && l->keyfile))
            return fail(l, err, errlen,
                        l->certfile ? "certfile needs keyfile (the certificate's private key)"
                                    : "keyfile needs certfile (the certificate it belongs to)");
        if (l->tls_keyform_engine && !l->tls_engine)
            return fail(l, err, errlen, "tls_keyform engine needs tls_engine (the engine that "
                                        "loads keyfile)");
        if (l->tls_engine_kpass_sha1 && !l->tls_engine)
            return fail(l, err, errlen, "tls_engine_kpass_sha1 needs tls_engine (the engine "
                                        "that takes it)");
        if (l->tls_keyform_engine && psk)
            return fail(l, err, errlen, "tls_keyform engine needs certfile and keyfile, not "
                                        "psk_hint");
        if (cert && psk)
            return fail(l, err, errlen, "psk_hint cannot be combined with certfile and keyfile "
                                        "on one listener (as in mosquitto): use two listeners");
        if (psk && !(l->psk_file ? l->psk_file : cfg->psk_file))
            return fail(l, err, errlen, "psk_hint needs a psk_file with the clients' keys");
        const char *only = tls_only_setting(l);
        if (only && !tls) {
            snprintf(msg, sizeof msg, "%s has no effect: without certfile and keyfile (or "
                     "psk_hint) this listener is not TLS, as with mosquitto", only);
            warn(l, msg);
        }
        if (l->require_certificate && !tls && !proxied)
            return fail(l, err, errlen, "require_certificate needs TLS on this listener "
                                        "(certfile and keyfile)");
        if (l->require_certificate && cert && !l->cafile && !l->capath)
            warn(l, "require_certificate true without cafile or capath: no client certificate "
                    "can be verified, so every TLS client of this listener is refused");
        if (l->require_certificate && psk)
            return fail(l, err, errlen, "require_certificate has no meaning on a PSK listener "
                                        "(psk_hint): PSK clients present no certificate");
        if (l->use_identity_as_username && l->use_subject_as_username)
            return fail(l, err, errlen, "use_identity_as_username and use_subject_as_username "
                                        "exclude each other: choose one");
        if ((l->use_identity_as_username || l->use_subject_as_username) && !tls && !proxied) {
            snprintf(msg, sizeof msg, "%s needs TLS on this listener (certfile and keyfile, or "
                     "psk_hint) or a PROXY protocol v2 load balancer that checks certificates",
                     l->use_identity_as_username ? "use_identity_as_username"
                                                 : "use_subject_as_username");
            return fail(l, err, errlen, msg);
        }
        if (l->use_subject_as_username && psk)
            return fail(l, err, errlen, "use_subject_as_username needs certificates; on a PSK "
                                        "listener use use_identity_as_username");
        if (l->proxy_protocol_v2_require_tls && !proxied)
            return fail(l, err, errlen, "proxy_protocol_v2_require_tls needs "
                                        "enable_proxy_protocol");
        if (l->websockets_origin_count && l->protocol != CX_PROTO_WEBSOCKETS)
            return fail(l, err, errlen, "websockets_origin needs `protocol websockets`");
    }
    return 0;
}
