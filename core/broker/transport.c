/* transport.c: a listener's configuration becomes its transport stack (net/transport.h). */
#include "broker/transport.h"

#include <stdio.h>

#include "net/proxy.h"
#include "util/err.h"
#include "util/log.h"

/* The WebSocket upgrade request may be this large at least: browsers send a kilobyte or
 * two, more with cookies. websockets_headers_size (= packet_buffer_size) raises it. */
#define WS_HEADERS_MIN 4096
/* MQTT packets may span frames and frames may hold several packets; a frame or message
 * larger than the largest packet plus this slack is refused (close 1009). */
#define WS_FRAME_SLACK 65536

static bool wants_tls(const cx_listener_conf_t *lc)
{
    return lc->certfile || lc->keyfile || lc->psk_hint;
}

static void tls_conf(const cx_listener_conf_t *lc, const cx_config_t *cfg, cx_tls_conf_t *tc)
{
    *tc = (cx_tls_conf_t){
        .cafile = lc->cafile,
        .capath = lc->capath,
        .certfile = lc->certfile,
        .keyfile = lc->keyfile,
        .crlfile = lc->crlfile,
        .ciphers = lc->ciphers,
        .ciphers_tls13 = lc->ciphers_tls13,
        .dhparamfile = lc->dhparamfile,
        .psk_hint = lc->psk_hint,
        .psk_file = lc->psk_file ? lc->psk_file : cfg->psk_file,
        .min_version = lc->tls_version,
        .require_certificate = lc->require_certificate,
        .no_date_checks = lc->disable_client_cert_date_checks,
        .engine = lc->tls_engine,
        .engine_kpass_sha1 = lc->tls_engine_kpass_sha1,
        .keyform_engine = lc->tls_keyform_engine,
    };
}

static cx_tls_ctx_t *build(const cx_listener_conf_t *lc, const cx_config_t *cfg, char *err,
                           size_t errlen)
{
    cx_tls_conf_t tc;
    tls_conf(lc, cfg, &tc);
    char why[768];
    cx_tls_ctx_t *t = cx_tls_ctx_new(&tc, why, sizeof why);
    if (!t) {
        if (lc->file)
            snprintf(err, errlen, "%s:%d: listener: TLS: %s", lc->file, lc->line, why);
        else
            snprintf(err, errlen, "listener: TLS: %s", why);
    }
    return t;
}

int cx_transport_check(const cx_listener_conf_t *lc, const cx_config_t *cfg, char *err,
                       size_t errlen)
{
    if (!wants_tls(lc))
        return CX_OK;
    cx_tls_ctx_t *t = build(lc, cfg, err, errlen);
    if (!t)
        return CX_ECONFIG;
    cx_tls_ctx_unref(t);
    return CX_OK;
}

int cx_transport_setup(cx_listener_t *l, const cx_listener_conf_t *lc, const cx_config_t *cfg,
                       char *err, size_t errlen)
{
    cx_transport_t *tp = &l->tp;
    if (lc->enable_proxy_protocol == 1)
        tp->proxy_versions = CX_PROXY_V1;
    else if (lc->enable_proxy_protocol == 2)
        tp->proxy_versions = CX_PROXY_V1 | CX_PROXY_V2; /* the spec's advice for v2 */
    tp->proxy_require_tls = lc->proxy_protocol_v2_require_tls;
    tp->proxy_require_cert = lc->require_certificate && lc->enable_proxy_protocol &&
                             !wants_tls(lc);
    if (lc->protocol == CX_PROTO_WEBSOCKETS) {
        tp->websockets = true;
        size_t hs = cfg->packet_buffer_size;
        tp->ws_headers_max = hs > WS_HEADERS_MIN ? hs : WS_HEADERS_MIN;
        uint64_t max = cfg->max_packet_size ? (uint64_t)cfg->max_packet_size + WS_FRAME_SLACK
                                            : UINT64_MAX;
        tp->ws_max_frame = max;
        tp->ws_max_message = max;
        tp->ws_origins = (const char *const *)lc->websockets_origin;
        tp->ws_norigins = lc->websockets_origin_count;
    }
    if (wants_tls(lc)) {
        cx_tls_ctx_t *t = build(lc, cfg, err, errlen);
        if (!t)
            return CX_ECONFIG;
        cx_transport_set_tls(tp, t);
    }
    return CX_OK;
}

void cx_transport_reload(cx_broker_t *b)
{
    for (size_t i = 0; i < b->nlisteners; i++) {
        cx_listener_t *l = &b->listeners[i];
        const cx_listener_conf_t *lc = l->conf;
        if (!l->tp.has_tls || !wants_tls(lc))
            continue;
        char err[1024];
        cx_tls_ctx_t *t = build(lc, b->cfg, err, sizeof err);
        if (!t) {
            cx_log(CX_LOG_ERR, "Reload: %s; listener %s keeps its previous TLS settings.", err,
                   l->desc);
            continue;
        }
        cx_transport_set_tls(&l->tp, t);
        cx_log(CX_LOG_NOTICE, "Reload: listener %s uses the reloaded TLS certificates for new "
               "connections.", l->desc);
    }
}
