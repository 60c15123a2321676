/* culex_bench_tls.c: the generator's TLS client side (OpenSSL), behind an opaque interface
 * so that the rest of culex_bench never includes OpenSSL headers.
 *
 * One SSL_CTX for the process, built before the threads start and only read afterwards
 * (SSL_new on a shared context is thread-safe); one SSL per connection, used only by the
 * thread that owns it. Non-blocking throughout: every call reports whether it needs the
 * socket readable or writable. Partial writes and a moving write buffer are enabled because
 * a connection's output buffer may grow (and move) between a short write and its retry. */
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>

#include "culex_bench.h"
#include "util/err.h"

static const char *last_error(void)
{
    /* Per thread: OpenSSL's error queue is thread-local, and so is this buffer. */
    static _Thread_local char buf[160];
    unsigned long e = ERR_get_error();
    if (!e)
        return "unknown TLS error";
    ERR_error_string_n(e, buf, sizeof buf);
    ERR_clear_error();
    return buf;
}

void *cx_bench_tls_ctx_new(const cx_bench_config_t *cfg)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    if (!ctx) {
        fprintf(stderr, "culex_bench: TLS: %s\n", last_error());
        return NULL;
    }
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    /* A broker that closes without close_notify is an ordinary EOF here. */
    SSL_CTX_set_options(ctx, SSL_OP_IGNORE_UNEXPECTED_EOF);
    if (cfg->insecure) {
        SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
    } else {
        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
        int ok = cfg->cafile ? SSL_CTX_load_verify_locations(ctx, cfg->cafile, NULL)
                             : SSL_CTX_set_default_verify_paths(ctx);
        if (ok != 1) {
            fprintf(stderr, "culex_bench: --cafile %s: %s\n",
                    cfg->cafile ? cfg->cafile : "(system default)", last_error());
            SSL_CTX_free(ctx);
            return NULL;
        }
    }
    if (cfg->cert) {
        if (SSL_CTX_use_certificate_chain_file(ctx, cfg->cert) != 1) {
            fprintf(stderr, "culex_bench: --cert %s: %s\n", cfg->cert, last_error());
            SSL_CTX_free(ctx);
            return NULL;
        }
        const char *key = cfg->key ? cfg->key : cfg->cert;
        if (SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1 ||
            SSL_CTX_check_private_key(ctx) != 1) {
            fprintf(stderr, "culex_bench: --key %s: %s\n", key, last_error());
            SSL_CTX_free(ctx);
            return NULL;
        }
    }
    return ctx;
}

void cx_bench_tls_ctx_free(void *ctx)
{
    SSL_CTX_free(ctx);
}

void *cx_bench_tls_new(void *ctx, int fd, const char *host, bool verify_host)
{
    SSL *ssl = SSL_new(ctx);
    if (!ssl)
        return NULL;
    if (SSL_set_fd(ssl, fd) != 1) {
        SSL_free(ssl);
        return NULL;
    }
    SSL_set_connect_state(ssl);
    unsigned char ip[16];
    bool is_ip = inet_pton(AF_INET, host, ip) == 1 || inet_pton(AF_INET6, host, ip) == 1;
    if (!is_ip)
        SSL_set_tlsext_host_name(ssl, host); /* SNI takes names only */
    if (verify_host) {
        int ok = is_ip ? X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), host)
                       : SSL_set1_host(ssl, host);
        if (ok != 1) {
            SSL_free(ssl);
            return NULL;
        }
    }
    return ssl;
}

void cx_bench_tls_free(void *ssl)
{
    SSL_free(ssl);
}

/* Maps an SSL_get_error result: 0 would block, CX_ECLOSED clean end, <0 failure. */
static long classify(SSL *ssl, int r, bool *want_write, const char **msg)
{
    int e = SSL_get_error(ssl, r);
    switch (e) {
    case SSL_ERROR_WANT_READ:
        *want_write = false;
        return 0;
    case SSL_ERROR_WANT_WRITE:
        *want_write = true;
        return 0;
    case SSL_ERROR_ZERO_RETURN:
        return CX_ECLOSED;
    case SSL_ERROR_SYSCALL:
        if (ERR_peek_error() == 0) {
            *msg = "connection reset";
            return CX_ECLOSED;
        }
        *msg = last_error();
        return CX_EIO;
    default:
        *msg = last_error();
        return CX_EIO;
    }
}

int cx_bench_tls_handshake(void *ssl, bool *want_write, const char **msg)
{
    ERR_clear_error();
    int r = SSL_do_handshake(ssl);
    if (r == 1)
        return 1;
    long c = classify(ssl, r, want_write, msg);
    if (c == CX_ECLOSED) {
        *msg = "connection closed during the handshake";
        return CX_EIO;
    }
    if (c < 0) {
        long v = SSL_get_verify_result(ssl);
        if (v != X509_V_OK)
            *msg = X509_verify_cert_error_string(v);
    }
    return (int)c;
}

long cx_bench_tls_read(void *ssl, void *buf, size_t n, bool *want_write, const char **msg)
{
    ERR_clear_error();
    size_t got = 0;
    int r = SSL_read_ex(ssl, buf, n, &got);
    if (r == 1)
        return (long)got;
    return classify(ssl, r, want_write, msg);
}

long cx_bench_tls_write(void *ssl, const void *buf, size_t n, bool *want_write, const char **msg)
{
    ERR_clear_error();
    size_t put = 0;
    int r = SSL_write_ex(ssl, buf, n, &put);
    if (r == 1)
        return (long)put;
    long c = classify(ssl, r, want_write, msg);
    if (c == CX_ECLOSED) {
        *msg = "connection closed";
        return CX_EIO;
    }
    return c;
}
