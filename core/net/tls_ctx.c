/* tls_ctx.c: TLS contexts of listeners (OpenSSL SSL_CTX), their PSK tables, and the
 * listener transport settings that hold them.
 *
 * A context reads every file when it is built, on the main thread, so that handshakes on
 * the workers never touch the disk and a broken file is reported once, with its name,
 * instead of failing every client. Contexts are refcounted: a reload swaps in a new one
 * and connections keep the one they were accepted with. A key kept by an OpenSSL engine
 * (tls_keyform engine) is loaded through tls_engine.c, the one file that uses that API. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "filter.h"
#include "tls_engine.h"
#include "transport.h"
#include "util/alloc.h"
#include "util/err.h"
#include "util/str.h"

/* ---- listener transport settings ----------------------------------------------------- */

void cx_transport_init(cx_transport_t *tp)
{
    memset(tp, 0, sizeof *tp);
    pthread_mutex_init(&tp->tls_lock, NULL);
}

void cx_transport_destroy(cx_transport_t *tp)
{
    cx_tls_ctx_unref(tp->tls);
    tp->tls = NULL;
    pthread_mutex_destroy(&tp->tls_lock);
}

void cx_transport_set_tls(cx_transport_t *tp, cx_tls_ctx_t *ctx)
{
    pthread_mutex_lock(&tp->tls_lock);
    cx_tls_ctx_t *old = tp->tls;
    tp->tls = ctx;
    /* Read without the lock by cx_transport_is_plain: written only when it changes, which
     * happens before the workers start (a reload never turns TLS on or off). */
    if (tp->has_tls != (ctx != NULL))
        tp->has_tls = ctx != NULL;
    pthread_mutex_unlock(&tp->tls_lock);
    cx_tls_ctx_unref(old);
}

cx_tls_ctx_t *cx_transport_tls(cx_transport_t *tp)
{
    pthread_mutex_lock(&tp->tls_lock);
    cx_tls_ctx_t *t = tp->tls;
    if (t)
        cx_tls_ctx_ref(t);
    pthread_mutex_unlock(&tp->tls_lock);
    return t;
}

/* ---- errors --------------------------------------------------------------------------- */

/* OpenSSL's reason for the last failure ("no such file", "key values mismatch"), and
 * clears the queue. */
const char *cx_tls_reason(char *buf, size_t len)
{
    unsigned long e = ERR_peek_last_error();
    const char *r = e ? ERR_reason_error_string(e) : NULL;
    if (r)
        snprintf(buf, len, "%s", r);
    else if (e)
        snprintf(buf, len, "OpenSSL error %lx", e);
    else
        snprintf(buf, len, "unknown error");
    ERR_clear_error();
    return buf;
}

static cx_tls_ctx_t *fail(cx_tls_ctx_t *t, char *err, size_t errlen, const char *what,
                          const char *path)
{
    char why[256];
    cx_tls_reason(why, sizeof why);
    if (path)
        snprintf(err, errlen, "%s %s: %s", what, path, why);
    else
        snprintf(err, errlen, "%s: %s", what, why);
    cx_tls_ctx_unref(t);
    return NULL;
}

/* ---- PSK ------------------------------------------------------------------------------ */

#define PSK_MAX_KEY 256 /* bytes; OpenSSL's limit is PSK_MAX_PSK_LEN (512) */
#define PSK_MAX_ID 128  /* PSK_MAX_IDENTITY_LEN */

typedef struct psk_entry {
    char *identity;
    uint8_t key[PSK_MAX_KEY];
    size_t key_len;
} psk_entry_t;

/* Reads mosquitto's psk_file: `identity:hexkey` per line; blank lines and lines starting
 * with '#' are skipped. Every malformed line is an error naming the line. */
static int psk_load(cx_tls_ctx_t *t, const char *path, char *err, size_t errlen)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        snprintf(err, errlen, "psk_file %s: %s", path, strerror(errno));
        return CX_ECONFIG;
    }
    char line[1024];
    int lineno = 0, rc = CX_OK;
    while (rc == CX_OK && fgets(line, sizeof line, f)) {
        lineno++;
        size_t n = strlen(line);
        if (n == sizeof line - 1 && line[n - 1] != '\n') {
            snprintf(err, errlen, "psk_file %s:%d: line too long", path, lineno);
            rc = CX_ECONFIG;
            break;
        }
        while (n && (line[n - 1] == '\n' || line[n - 1] == '\r' || line[n - 1] == ' ' ||
                     line[n - 1] == '\t'))
            line[--n] = '\0';
        if (n == 0 || line[0] == '#')
            continue;
        char *colon = strchr(line, ':');
        const char *why = NULL;
        size_t idlen = colon ? (size_t)(colon - line) : 0;
        const char *hex = colon ? colon + 1 : NULL;
        size_t hexlen = hex ? strlen(hex) : 0;
        if (!colon)
            why = "expected identity:hexkey";
        else if (idlen == 0)
            why = "empty identity";
        else if (idlen > PSK_MAX_ID)
            why = "identity longer than 128 bytes";
        else if (hexlen == 0)
            why = "empty key";
        else if (hexlen % 2)
            why = "key has an odd number of hexadecimal digits";
        else if (hexlen / 2 > PSK_MAX_KEY)
            why = "key longer than 256 bytes";
        for (size_t i = 0; !why && i < hexlen; i++)
            if (cx_hexval(hex[i]) < 0)
                why = "key is not hexadecimal";
        for (size_t i = 0; !why && i < t->npsk; i++)
            if (strlen(t->psk[i].identity) == idlen && !memcmp(t->psk[i].identity, line, idlen))
                why = "identity given twice";
        if (why) {
            snprintf(err, errlen, "psk_file %s:%d: %s", path, lineno, why);
            rc = CX_ECONFIG;
            break;
        }
        psk_entry_t *ne = cx_realloc(t->psk, (t->npsk + 1) * sizeof *ne);
        if (!ne) {
            rc = CX_ENOMEM;
            break;
        }
        t->psk = ne;
        psk_entry_t *e = &ne[t->npsk];
        e->identity = cx_strndup(line, idlen);
        if (!e->identity) {
            rc = CX_ENOMEM;
            break;
        }
        e->key_len = hexlen / 2;
        for (size_t i = 0; i < e->key_len; i++)
            e->key[i] = (uint8_t)(cx_hexval(hex[2 * i]) << 4 | cx_hexval(hex[2 * i + 1]));
        t->npsk++;
    }
    if (rc == CX_OK && ferror(f)) {
        snprintf(err, errlen, "psk_file %s: read error", path);
        rc = CX_ECONFIG;
    }
    if (rc == CX_ENOMEM)
        snprintf(err, errlen, "psk_file %s: out of memory", path);
    fclose(f);
    return rc;
}

static int ctx_index = -1;
static pthread_once_t ctx_index_once = PTHREAD_ONCE_INIT;

static void make_ctx_index(void)
{
    ctx_index = SSL_CTX_get_ex_new_index(0, NULL, NULL, NULL, NULL);
}

/* OpenSSL asks for the key of `identity` (TLS 1.2 PSK suites, and TLS 1.3 through the same
 * callback). Unknown identities get 0: the handshake fails and the log says why. */
static unsigned psk_server_cb(SSL *ssl, const char *identity, unsigned char *psk,
                              unsigned max_len)
{
    cx_tls_ctx_t *t = SSL_CTX_get_ex_data(SSL_get_SSL_CTX(ssl), ctx_index);
    if (!t || !identity)
        return 0;
    for (size_t i = 0; i < t->npsk; i++) {
        const psk_entry_t *e = &t->psk[i];
        if (strcmp(e->identity, identity) == 0) {
            if (e->key_len > max_len)
                return 0;
            memcpy(psk, e->key, e->key_len);
            /* Remember who it was: OpenSSL does not report the identity of a TLS 1.3
             * session made through this callback. The BIO is ours (filter_tls.c). */
            cx_xport_t *x = BIO_get_data(SSL_get_rbio(ssl));
            if (x)
                snprintf(x->psk_identity, sizeof x->psk_identity, "%s", e->identity);
            return (unsigned)e->key_len;
        }
    }
    return 0;
}

/* ---- contexts ------------------------------------------------------------------------- */

/* A daemon has nobody to type a passphrase: an encrypted key fails to load, clearly. */
static int no_passphrase_cb(char *buf, int size, int rwflag, void *ud)
{
    (void)buf, (void)size, (void)rwflag, (void)ud;
    return 0;
}

cx_tls_ctx_t *cx_tls_ctx_new(const cx_tls_conf_t *tc, char *err, size_t errlen)
{
    pthread_once(&ctx_index_once, make_ctx_index);
    ERR_clear_error();
    cx_tls_ctx_t *t = cx_calloc(1, sizeof *t);
    if (!t) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    atomic_init(&t->refs, 1);
    t->ssl_ctx = SSL_CTX_new(TLS_server_method());
    if (!t->ssl_ctx)
        return fail(t, err, errlen, "cannot create a TLS context", NULL);
    SSL_CTX *ctx = t->ssl_ctx;
    SSL_CTX_set_ex_data(ctx, ctx_index, t);
    SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE |
                                 SSL_OP_NO_COMPRESSION | SSL_OP_IGNORE_UNEXPECTED_EOF);
    /* Output is written from the connection's buffer, which may move between attempts
     * and may be written in parts; idle connections give their TLS buffers back. */
    SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
                              SSL_MODE_RELEASE_BUFFERS);
    SSL_CTX_set_default_passwd_cb(ctx, no_passphrase_cb);
    static const unsigned char sid_ctx[] = "culex";
    SSL_CTX_set_session_id_context(ctx, sid_ctx, sizeof sid_ctx - 1);
    if (!SSL_CTX_set_min_proto_version(ctx, tc->min_version ? tc->min_version : TLS1_2_VERSION))
        return fail(t, err, errlen, "tls_version", NULL);

    if (tc->ciphers && !SSL_CTX_set_cipher_list(ctx, tc->ciphers))
        return fail(t, err, errlen, "ciphers", tc->ciphers);
    if (tc->ciphers_tls13 && !SSL_CTX_set_ciphersuites(ctx, tc->ciphers_tls13))
        return fail(t, err, errlen, "ciphers_tls1.3", tc->ciphers_tls13);

    if (tc->engine) {
        t->engine = cx_tls_engine_open(tc->engine, !tc->keyform_engine, err, errlen);
        if (!t->engine ||
            (tc->engine_kpass_sha1 &&
             cx_tls_engine_kpass_sha1(t->engine, tc->engine_kpass_sha1, err, errlen))) {
            cx_tls_ctx_unref(t);
            return NULL;
        }
    }
    if (tc->keyform_engine && !t->engine) {
        snprintf(err, errlen, "tls_keyform engine needs tls_engine (which engine loads the key)");
        cx_tls_ctx_unref(t);
        return NULL;
    }

    if (tc->certfile) {
        if (SSL_CTX_use_certificate_chain_file(ctx, tc->certfile) != 1)
            return fail(t, err, errlen, "certfile", tc->certfile);
        if (tc->keyform_engine) {
            EVP_PKEY *key = cx_tls_engine_load_key(t->engine, tc->keyfile, err, errlen);
            if (!key) {
                cx_tls_ctx_unref(t);
                return NULL;
            }
            int ok = SSL_CTX_use_PrivateKey(ctx, key);
            EVP_PKEY_free(key); /* the context holds its own reference */
            if (ok != 1)
                return fail(t, err, errlen, "keyfile", tc->keyfile);
        } else if (SSL_CTX_use_PrivateKey_file(ctx, tc->keyfile, SSL_FILETYPE_PEM) != 1) {
            char why[256];
            cx_tls_reason(why, sizeof why);
            snprintf(err, errlen, "keyfile %s: %s (an unencrypted PEM key is needed)",
                     tc->keyfile, why);
            cx_tls_ctx_unref(t);
            return NULL;
        }
        if (SSL_CTX_check_private_key(ctx) != 1)
            return fail(t, err, errlen, "keyfile does not match certfile:", tc->keyfile);
    }

    if (tc->cafile || tc->capath) {
        if (SSL_CTX_load_verify_locations(ctx, tc->cafile, tc->capath) != 1)
            return fail(t, err, errlen, tc->cafile ? "cafile" : "capath",
                        tc->cafile ? tc->cafile : tc->capath);
        if (tc->cafile) {
            /* Tell clients which CAs we accept, so they pick the right certificate. */
            STACK_OF(X509_NAME) *names = SSL_load_client_CA_file(tc->cafile);
            if (names)
                SSL_CTX_set_client_CA_list(ctx, names);
            ERR_clear_error();
        }
    }
    X509_STORE *store = SSL_CTX_get_cert_store(ctx);
    if (tc->crlfile) {
        X509_LOOKUP *lk = X509_STORE_add_lookup(store, X509_LOOKUP_file());
        if (!lk || X509_load_crl_file(lk, tc->crlfile, X509_FILETYPE_PEM) < 1)
            return fail(t, err, errlen, "crlfile", tc->crlfile);
        X509_STORE_set_flags(store, X509_V_FLAG_CRL_CHECK);
    }
    if (tc->no_date_checks)
        X509_STORE_set_flags(store, X509_V_FLAG_NO_CHECK_TIME);
    /* mosquitto: without require_certificate clients are not asked for a certificate. */
    SSL_CTX_set_verify(ctx,
                       tc->require_certificate
                           ? SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT
                           : SSL_VERIFY_NONE,
                       NULL);

    if (tc->dhparamfile) {
        BIO *bio = BIO_new_file(tc->dhparamfile, "r");
        EVP_PKEY *dh = bio ? PEM_read_bio_Parameters(bio, NULL) : NULL;
        BIO_free(bio);
        if (!dh)
            return fail(t, err, errlen, "dhparamfile", tc->dhparamfile);
        if (SSL_CTX_set0_tmp_dh_pkey(ctx, dh) != 1) {
            EVP_PKEY_free(dh);
            return fail(t, err, errlen, "dhparamfile", tc->dhparamfile);
        }
    } else {
        SSL_CTX_set_dh_auto(ctx, 1);
    }

    if (tc->psk_hint) {
        if (!tc->psk_file) {
            snprintf(err, errlen, "psk_hint needs a psk_file");
            cx_tls_ctx_unref(t);
            return NULL;
        }
        int rc = psk_load(t, tc->psk_file, err, errlen);
        if (rc) {
            cx_tls_ctx_unref(t);
            return NULL;
        }
        if (SSL_CTX_use_psk_identity_hint(ctx, tc->psk_hint) != 1)
            return fail(t, err, errlen, "psk_hint", tc->psk_hint);
        SSL_CTX_set_psk_server_callback(ctx, psk_server_cb);
        /* Without certificates only the PSK suites of TLS 1.2 can work; add them to the
         * default list unless the user chose ciphers. */
        if (!tc->ciphers && !SSL_CTX_set_cipher_list(ctx, "PSK:DEFAULT"))
            return fail(t, err, errlen, "PSK cipher list", NULL);
        t->psk_listener = true;
    }
    ERR_clear_error();
    return t;
}

void cx_tls_ctx_ref(cx_tls_ctx_t *t)
{
    atomic_fetch_add_explicit(&t->refs, 1, memory_order_relaxed);
}

void cx_tls_ctx_unref(cx_tls_ctx_t *t)
{
    if (!t || atomic_fetch_sub_explicit(&t->refs, 1, memory_order_acq_rel) != 1)
        return;
    SSL_CTX_free(t->ssl_ctx); /* before the engine: it frees an engine key */
    cx_tls_engine_close(t->engine);
    for (size_t i = 0; i < t->npsk; i++) {
        OPENSSL_cleanse(t->psk[i].key, sizeof t->psk[i].key);
        cx_free(t->psk[i].identity);
    }
    cx_free(t->psk);
    cx_free(t);
}
