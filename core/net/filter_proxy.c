/* filter_proxy.c: the PROXY protocol layer. Reads the header a load balancer puts before
 * the client's bytes (proxy.h parses it), replaces the connection's peer address with the
 * client's, and leaves whatever followed the header in x->pre for the next layer.
 *
 * The spec forbids guessing: on a listener configured for the protocol, a connection that
 * does not start with a valid header of an accepted version is closed with a log line. */
#include <stdio.h>
#include <string.h>

#include "filter.h"
#include "listener.h"
#include "proxy.h"
#include "util/err.h"
#include "util/log.h"

static ssize_t refuse(cx_conn_t *c, const char *why)
{
    cx_log(CX_LOG_NOTICE, "Connection from %s on %s refused: %s.", c->peer,
           c->listener ? c->listener->desc : "?", why);
    cx_conn_close(c, CX_EPROTO);
    return CX_EPROTO;
}

ssize_t cx_xproxy_step(cx_conn_t *c)
{
    cx_xport_t *x = c->x;
    cx_transport_t *tp = x->tp;
    /* Read what is there; the bytes after the header stay in `pre` for the next layer. */
    if (cx_buf_reserve(&x->pre, 4096) != CX_OK)
        return refuse(c, "PROXY protocol header too long");
    ssize_t n = cx_xraw_sock_recv(x, cx_buf_tail(&x->pre), cx_buf_room(&x->pre));
    if (n == 0)
        return 0;
    if (n < 0) {
        c->eof = true;
        if (n == CX_ECLOSED && !cx_buf_used(&x->pre)) {
            /* A health check that connects and leaves: not worth a NOTICE. */
            cx_log(CX_LOG_DEBUG, "Connection from %s closed before sending anything.", c->peer);
            cx_conn_close(c, CX_ECLOSED);
            return CX_ECLOSED;
        }
        return refuse(c, n == CX_ECLOSED ? "connection closed inside its PROXY protocol header"
                                         : "read error inside the PROXY protocol header");
    }
    x->pre.len += (size_t)n;

    cx_proxy_info_t info;
    const char *err = NULL;
    int rc = cx_proxy_parse(cx_buf_head(&x->pre), cx_buf_used(&x->pre), tp->proxy_versions,
                            &info, &err);
    if (rc == CX_EAGAIN)
        return 1; /* read on: the next read says whether more is there */
    if (rc != CX_OK) {
        char why[200];
        snprintf(why, sizeof why, "bad PROXY protocol header (%s)", err ? err : "malformed");
        return refuse(c, why);
    }
    if (tp->proxy_require_tls && !info.tls)
        return refuse(c, info.version == 1
                             ? "PROXY protocol v1 header, but proxy_protocol_v2_require_tls "
                               "needs v2 with TLS information"
                             : "the PROXY protocol header says the client did not use TLS "
                               "(proxy_protocol_v2_require_tls)");
    if (tp->proxy_require_cert && !info.cert_verified)
        return refuse(c, "the PROXY protocol header reports no verified client certificate "
                         "(require_certificate)");
    x->proxy_version = info.version;
    x->proxy_tls = info.tls;
    if (!info.local) {
        char real[64];
        cx_net_format_addr(&info.src, real, sizeof real);
        cx_log(CX_LOG_INFO, "Connection from %s on %s is client %s (PROXY protocol v%u).",
               c->peer, c->listener ? c->listener->desc : "?", real, info.version);
        snprintf(c->peer, CX_CONN_PEER_MAX, "%s", real); /* room made by cx_conn_new */
    } else {
        cx_log(CX_LOG_DEBUG, "Connection from %s: PROXY protocol v%u LOCAL header (the proxy "
               "itself); keeping its address.", c->peer, info.version);
    }
    /* What a TLS-terminating proxy vouches for, when this listener has no TLS of its own. */
    if (!x->ssl && info.tls) {
        int frc = CX_OK;
        if (info.has_tls_version)
            frc |= cx_xport_add_field(x, "tls_version", info.tls_version,
                                      strlen(info.tls_version));
        if (info.cert_verified && info.has_cn)
            frc |= cx_xport_add_field(x, "CN", info.tls_cn, strlen(info.tls_cn));
        frc |= cx_xport_add_field(x, "verified_by", "proxy", 5);
        if (frc) {
            cx_log(CX_LOG_ERR, "Out of memory reading the PROXY header of %s.", c->peer);
            cx_conn_close(c, CX_ENOMEM);
            return CX_ENOMEM;
        }
    }
    cx_buf_consume(&x->pre, info.header_len, 1);
    x->stage = x->ssl ? CX_XS_TLS : x->ws ? CX_XS_WS : CX_XS_OPEN;
    return 1;
}
