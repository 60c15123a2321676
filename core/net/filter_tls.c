/* filter_tls.c: the TLS layer of a connection (OpenSSL).
 *
 * OpenSSL reads and writes through a small BIO of ours rather than the socket itself, so
 * that the bytes a PROXY header read brought along (x->pre) reach it first; otherwise the
 * BIO is a plain non-blocking socket. The handshake is a stage of the filter stack: it
 * advances on socket events and never blocks the worker. Once it is done, the peer's
 * certificate (or PSK identity) is turned into the fields plugins read. */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "filter.h"
#include "listener.h"
#include "util/alloc.h"
#include "util/err.h"
#include "util/log.h"

/* ---- the BIO between OpenSSL and the connection --------------------------------------- */

static BIO_METHOD *bio_method;
static pthread_once_t bio_once = PTHREAD_ONCE_INIT;

static int bio_write_ex(BIO *b, const char *data, size_t n, size_t *written)
{
    cx_xport_t *x = BIO_get_data(b);
    BIO_clear_retry_flags(b);
    ssize_t r = cx_xraw_send(x, (const uint8_t *)data, n);
    if (r > 0) {
        *written = (size_t)r;
        return 1;
    }
    if (r == 0)
        BIO_set_retry_write(b);
    else
        x->io_errno = (int)-r;
    return 0;
}

static int bio_read_ex(BIO *b, char *data, size_t n, size_t *readbytes)
{
    cx_xport_t *x = BIO_get_data(b);
    BIO_clear_retry_flags(b);
    ssize_t r = cx_xraw_recv(x, (uint8_t *)data, n);
    if (r > 0) {
        while (x->nfirst < sizeof x->first && (size_t)x->nfirst < (size_t)r)
            x->first[x->nfirst] = (uint8_t)data[x->nfirst], x->nfirst++;
        *readbytes = (size_t)r;
        return 1;
    }
    if (r == 0)
        BIO_set_retry_read(b);
    else if (r != CX_ECLOSED)
        x->io_errno = (int)-r;
    return 0; /* EOF: no retry flag */
}

static long bio_ctrl(BIO *b, int cmd, long num, void *ptr)
{
    (void)b, (void)num, (void)ptr;
    return cmd == BIO_CTRL_FLUSH ? 1 : 0; /* writes are never buffered here */
}

static void make_bio_method(void)
{
    BIO_METHOD *m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "culex conn");
    if (m && (!BIO_meth_set_write_ex(m, bio_write_ex) || !BIO_meth_set_read_ex(m, bio_read_ex) ||
              !BIO_meth_set_ctrl(m, bio_ctrl))) {
        BIO_meth_free(m);
        m = NULL;
    }
    bio_method = m;
}

int cx_xtls_init(cx_xport_t *x)
{
    pthread_once(&bio_once, make_bio_method);
    if (!bio_method)
        return CX_ENOMEM;
    x->tctx = cx_transport_tls(x->tp);
    if (!x->tctx)
        return CX_EINVAL;
    x->ssl = SSL_new(x->tctx->ssl_ctx);
    BIO *bio = x->ssl ? BIO_new(bio_method) : NULL;
    if (!bio) {
        ERR_clear_error();
        return CX_ENOMEM;
    }
    BIO_set_data(bio, x);
    BIO_set_init(bio, 1);
    SSL_set_bio(x->ssl, bio, bio);
    SSL_set_accept_state(x->ssl);
    return CX_OK;
}

void cx_xtls_free(cx_xport_t *x)
{
    if (x->ssl)
        SSL_free(x->ssl);
    x->ssl = NULL;
    cx_tls_ctx_unref(x->tctx);
    x->tctx = NULL;
}

/* ---- identity fields ------------------------------------------------------------------ */

static int add_name(cx_xport_t *x, const char *field, const X509_NAME *name)
{
    BIO *mem = BIO_new(BIO_s_mem());
    if (!mem)
        return CX_ENOMEM;
    int rc = CX_OK;
    if (X509_NAME_print_ex(mem, name, 0, XN_FLAG_RFC2253) >= 0) {
        char *p = NULL;
        long n = BIO_get_mem_data(mem, &p);
        if (n >= 0)
            rc = cx_xport_add_field(x, field, p ? p : "", (size_t)n);
    }
    BIO_free(mem);
    return rc;
}

/* Each subject attribute under its short name (CN, O, OU, C, ...), the first of each; a
 * value with an embedded NUL is left out, so that "admin\0.evil" can never pass for
 * "admin". */
static int add_attributes(cx_xport_t *x, const X509_NAME *name)
{
    int count = X509_NAME_entry_count(name);
    for (int i = 0; i < count; i++) {
        const X509_NAME_ENTRY *e = X509_NAME_get_entry(name, i);
        int nid = OBJ_obj2nid(X509_NAME_ENTRY_get_object(e));
        const char *sn = nid != NID_undef ? OBJ_nid2sn(nid) : NULL;
        if (!sn || cx_conn_field(x->conn, sn))
            continue;
        unsigned char *utf8 = NULL;
        int n = ASN1_STRING_to_UTF8(&utf8, X509_NAME_ENTRY_get_data(e));
        if (n < 0)
            continue;
        int rc = memchr(utf8, '\0', (size_t)n) ? CX_OK
                                               : cx_xport_add_field(x, sn, (char *)utf8,
                                                                    (size_t)n);
        OPENSSL_free(utf8);
        if (rc)
            return rc;
    }
    return CX_OK;
}

static int add_hex(cx_xport_t *x, const char *field, const unsigned char *p, size_t n)
{
    char hex[2 * EVP_MAX_MD_SIZE + 1];
    static const char digits[] = "0123456789abcdef";
    if (n > EVP_MAX_MD_SIZE)
        n = EVP_MAX_MD_SIZE;
    for (size_t i = 0; i < n; i++) {
        hex[2 * i] = digits[p[i] >> 4];
        hex[2 * i + 1] = digits[p[i] & 15];
    }
    return cx_xport_add_field(x, field, hex, 2 * n);
}

static int peer_fields(cx_xport_t *x)
{
    SSL *ssl = x->ssl;
    int rc = CX_OK;
    const char *v = SSL_get_version(ssl);
    rc |= cx_xport_add_field(x, "tls_version", v, strlen(v));
    const char *cipher = SSL_get_cipher_name(ssl);
    if (cipher)
        rc |= cx_xport_add_field(x, "cipher", cipher, strlen(cipher));
    if (x->psk_identity[0] && x->tctx->psk_listener)
        rc |= cx_xport_add_field(x, "psk_identity", x->psk_identity, strlen(x->psk_identity));
    X509 *cert = SSL_get1_peer_certificate(ssl);
    if (cert) {
        rc |= add_attributes(x, X509_get_subject_name(cert));
        rc |= add_name(x, "subject", X509_get_subject_name(cert));
        rc |= add_name(x, "issuer", X509_get_issuer_name(cert));
        BIGNUM *bn = ASN1_INTEGER_to_BN(X509_get0_serialNumber(cert), NULL);
        char *serial = bn ? BN_bn2hex(bn) : NULL;
        if (serial)
            rc |= cx_xport_add_field(x, "serial", serial, strlen(serial));
        OPENSSL_free(serial);
        BN_free(bn);
        unsigned char md[EVP_MAX_MD_SIZE];
        unsigned mdlen = 0;
        if (X509_digest(cert, EVP_sha256(), md, &mdlen))
            rc |= add_hex(x, "sha256", md, mdlen);
        X509_free(cert);
    }
    ERR_clear_error();
    return rc ? CX_ENOMEM : CX_OK;
}

/* ---- handshake ------------------------------------------------------------------------ */

/* What the client's first bytes suggest when the handshake fails at once. */
static const char *first_bytes_hint(const cx_xport_t *x)
{
    if (x->nfirst >= 1 && x->first[0] == 0x10)
        return " (the client sent MQTT without TLS)";
    if (x->nfirst >= 4 && (!memcmp(x->first, "GET ", 4) || !memcmp(x->first, "POST", 4)))
        return " (the client sent HTTP without TLS)";
    if (x->nfirst >= 4 && !memcmp(x->first, "PROX", 4))
        return " (a PROXY protocol header: set enable_proxy_protocol on this listener)";
    return "";
}

static ssize_t handshake_failed(cx_conn_t *c, int err)
{
    cx_xport_t *x = c->x;
    char why[256];
    x->tls_dead = true;
    if (err == SSL_ERROR_SYSCALL && !ERR_peek_error()) {
        if (x->raw_eof)
            snprintf(why, sizeof why, "the client closed the connection");
        else
            snprintf(why, sizeof why, "%s", strerror(x->io_errno ? x->io_errno : EIO));
    } else {
        cx_tls_reason(why, sizeof why);
        long vr = SSL_get_verify_result(x->ssl);
        if (vr != X509_V_OK) {
            size_t n = strlen(why);
            snprintf(why + n, sizeof why - n, " (%s)", X509_verify_cert_error_string(vr));
        }
    }
    cx_log(CX_LOG_NOTICE, "TLS handshake with %s on %s failed: %s%s.", c->peer,
           c->listener ? c->listener->desc : "?", why, first_bytes_hint(x));
    c->eof = true; /* nothing more may be written */
    cx_conn_close(c, CX_EPROTO);
    return CX_EPROTO;
}

ssize_t cx_xtls_handshake(cx_conn_t *c)
{
    cx_xport_t *x = c->x;
    ERR_clear_error();
    int r = SSL_do_handshake(x->ssl);
    if (r == 1) {
        x->tls_done = true;
        x->stage = x->ws ? CX_XS_WS : CX_XS_OPEN;
        if (peer_fields(x) != CX_OK) {
            cx_log(CX_LOG_ERR, "Out of memory after the TLS handshake with %s.", c->peer);
            cx_conn_close(c, CX_ENOMEM);
            return CX_ENOMEM;
        }
        const char *cn = cx_conn_field(c, "CN");
        const char *psk = cx_conn_field(c, "psk_identity");
        cx_log(CX_LOG_DEBUG, "TLS handshake with %s done: %s, %s%s%s%s%s.", c->peer,
               SSL_get_version(x->ssl), SSL_get_cipher_name(x->ssl),
               cn ? ", certificate CN " : "", cn ? cn : "", psk ? ", PSK identity " : "",
               psk ? psk : "");
        return 1;
    }
    int e = SSL_get_error(x->ssl, r);
    if (e == SSL_ERROR_WANT_READ)
        return 0;
    if (e == SSL_ERROR_WANT_WRITE) {
        x->need_write = true;
        cx_conn_io_update(c);
        return 0;
    }
    return handshake_failed(c, e);
}

/* ---- data ----------------------------------------------------------------------------- */

static ssize_t io_failed(cx_conn_t *c, int e, const char *what)
{
    cx_xport_t *x = c->x;
    if (e == SSL_ERROR_ZERO_RETURN || (e == SSL_ERROR_SYSCALL && x->raw_eof && !ERR_peek_error()))
        return CX_ECLOSED; /* close_notify, or EOF (SSL_OP_IGNORE_UNEXPECTED_EOF) */
    x->tls_dead = true;
    char why[256];
    if (e == SSL_ERROR_SYSCALL && !ERR_peek_error())
        snprintf(why, sizeof why, "%s", strerror(x->io_errno ? x->io_errno : EIO));
    else
        cx_tls_reason(why, sizeof why);
    cx_log(CX_LOG_NOTICE, "TLS %s error on the connection from %s: %s.", what, c->peer, why);
    return CX_EPROTO;
}

ssize_t cx_xtls_recv(cx_conn_t *c, uint8_t *p, size_t n)
{
    cx_xport_t *x = c->x;
    size_t got = 0;
    ERR_clear_error();
    if (SSL_read_ex(x->ssl, p, n, &got) == 1)
        return (ssize_t)got;
    int e = SSL_get_error(x->ssl, 0);
    if (e == SSL_ERROR_WANT_READ)
        return 0;
    if (e == SSL_ERROR_WANT_WRITE) {
        x->need_write = true;
        cx_conn_io_update(c);
        return 0;
    }
    return io_failed(c, e, "read");
}

ssize_t cx_xtls_send(cx_conn_t *c, const uint8_t *p, size_t n)
{
    cx_xport_t *x = c->x;
    size_t done = 0;
    ERR_clear_error();
    if (SSL_write_ex(x->ssl, p, n, &done) == 1)
        return (ssize_t)done;
    int e = SSL_get_error(x->ssl, 0);
    if (e == SSL_ERROR_WANT_WRITE || e == SSL_ERROR_WANT_READ)
        return 0;
    return io_failed(c, e, "write");
}

void cx_xtls_shutdown(cx_conn_t *c)
{
    cx_xport_t *x = c->x;
    if (!x->tls_done || x->tls_dead)
        return;
    ERR_clear_error();
    (void)SSL_shutdown(x->ssl); /* one attempt: close_notify if the socket takes it */
    ERR_clear_error();
}
