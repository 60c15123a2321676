/* test_filter.c: the transport filter stack (core/net/filter*.c) over a socketpair, with a
 * real loop but no broker: PROXY header + WebSocket + MQTT bytes, the "again" list for
 * input held by the filters, handover between two worker contexts with the filter state,
 * and TLS (an in-process OpenSSL client, with a PROXY header in front of its hello). */
#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "../cx_test.h"
#include "net/conn.h"
#include "net/filter.h"
#include "net/listener.h"
#include "net/proxy.h"
#include "util/err.h"

/* ---- fixture ------------------------------------------------------------------------- */

static char got[65536];
static size_t got_len;
static int reads;
static bool pause_on_read;

static void on_read(cx_conn_t *c)
{
    reads++;
    size_t n = cx_buf_used(&c->in);
    if (got_len + n < sizeof got) {
        memcpy(got + got_len, cx_buf_head(&c->in), n);
        got_len += n;
    }
    cx_buf_consume(&c->in, n, 0);
    if (pause_on_read)
        cx_conn_pause_read(c);
}

static void on_close(cx_conn_t *c) { (void)c; }

static const cx_conn_ops_t ops = {.on_read = on_read, .on_close = on_close};

static void on_post(cx_loop_t *l, cx_post_t *p, void *ud) { (void)l, (void)p, (void)ud; }

typedef struct world {
    cx_loop_t *loop;
    cx_netctx_t net;
    cx_listener_t l;
    int peer; /* the client's end */
    cx_conn_t *c;
} world_t;

static void world_init(world_t *w, unsigned proxy, bool ws)
{
    memset(w, 0, sizeof *w);
    got_len = 0;
    reads = 0;
    pause_on_read = false;
    w->loop = cx_loop_new(on_post, NULL);
    CHECK(w->loop != NULL);
    cx_net_init(&w->net, w->loop, NULL);
    cx_transport_init(&w->l.tp);
    snprintf(w->l.desc, sizeof w->l.desc, "test");
    atomic_init(&w->l.connections, 1);
    w->l.tp.proxy_versions = proxy;
    w->l.tp.websockets = ws;
    w->l.tp.ws_headers_max = 4096;
    w->l.tp.ws_max_frame = w->l.tp.ws_max_message = 1 << 20;
}

static void world_connect(world_t *w)
{
    int sv[2];
    CHECK_INT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv), 0);
    w->peer = sv[1];
    w->c = cx_conn_new(sv[0], &w->l, "10.0.0.1:1000");
    CHECK(w->c != NULL);
    CHECK_INT_EQ(cx_conn_attach(w->c, &w->net, &ops), 0);
}

static void world_free(world_t *w)
{
    cx_net_close_all(&w->net);
    cx_net_flush(&w->net);
    close(w->peer);
    cx_loop_free(w->loop);
    cx_transport_destroy(&w->l.tp);
}

static void send_all(int fd, const void *p, size_t n)
{
    CHECK_INT_EQ(write(fd, p, n), (long)n);
}

/* Reads what the broker side wrote (after a flush). */
static size_t drain(int fd, uint8_t *buf, size_t cap)
{
    ssize_t n = read(fd, buf, cap);
    return n > 0 ? (size_t)n : 0;
}

static size_t masked(uint8_t *out, uint8_t opcode, bool fin, const void *payload, size_t n)
{
    static const uint8_t key[4] = {0x11, 0x22, 0x33, 0x44};
    CHECK(n < 126);
    out[0] = (uint8_t)((fin ? 0x80 : 0) | opcode);
    out[1] = (uint8_t)(0x80 | n);
    memcpy(out + 2, key, 4);
    for (size_t i = 0; i < n; i++)
        out[6 + i] = ((const uint8_t *)payload)[i] ^ key[i % 4];
    return 6 + n;
}

static const char upgrade[] = "GET /mqtt HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
                              "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                              "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: mqtt\r\n\r\n";

/* ---- tests --------------------------------------------------------------------------- */

static void test_plain_listener_has_no_filter(void)
{
    world_t w;
    world_init(&w, 0, false);
    world_connect(&w);
    CHECK(w.c->x == NULL);
    CHECK(cx_conn_handshake(w.c) == NULL);
    CHECK(cx_conn_field(w.c, "CN") == NULL);
    world_free(&w);
}

static void test_proxy_websocket_in_one_write(void)
{
    world_t w;
    world_init(&w, CX_PROXY_V1 | CX_PROXY_V2, true);
    world_connect(&w);
    CHECK_STR_EQ(cx_conn_handshake(w.c), "PROXY protocol header");
    uint8_t buf[2048];
    size_t n = 0;
    const char *hdr = "PROXY TCP4 203.0.113.7 192.0.2.1 4242 1883\r\n";
    memcpy(buf, hdr, strlen(hdr));
    n += strlen(hdr);
    memcpy(buf + n, upgrade, sizeof upgrade - 1);
    n += sizeof upgrade - 1;
    n += masked(buf + n, 0x2, false, "hel", 3); /* a fragmented message ... */
    n += masked(buf + n, 0x9, true, "ping!", 5); /* ... with a ping in between */
    n += masked(buf + n, 0x0, true, "lo", 2);
    send_all(w.peer, buf, n);
    cx_xport_read(w.c, CX_NET_READ_BUDGET);
    CHECK(!w.c->closing);
    CHECK_STR_EQ(w.c->peer, "203.0.113.7:4242");
    CHECK(cx_conn_handshake(w.c) == NULL);
    CHECK_INT_EQ(got_len, 5);
    CHECK(memcmp(got, "hello", 5) == 0);
    /* the 101 and the pong are queued in the filter, then an MQTT answer is framed */
    CHECK(cx_conn_pending(w.c) > 0);
    CHECK_INT_EQ(cx_conn_write(w.c, "abc", 3), 0);
    cx_net_flush(&w.net);
    CHECK_INT_EQ(cx_conn_pending(w.c), 0);
    uint8_t out[1024];
    size_t m = drain(w.peer, out, sizeof out);
    const char *end = strstr((char *)out, "\r\n\r\n");
    CHECK(m > 0 && strncmp((char *)out, "HTTP/1.1 101 ", 13) == 0 && end);
    const uint8_t *f = (const uint8_t *)end + 4;
    CHECK_INT_EQ(f[0], 0x8A); /* pong, echoing the ping */
    CHECK_INT_EQ(f[1], 5);
    CHECK(memcmp(f + 2, "ping!", 5) == 0);
    f += 7;
    CHECK_INT_EQ(f[0], 0x82); /* binary, unmasked */
    CHECK_INT_EQ(f[1], 3);
    CHECK(memcmp(f + 2, "abc", 3) == 0);
    CHECK_INT_EQ((long)(f + 5 - out), (long)m);
    world_free(&w);
}

static void test_bad_proxy_header_closes(void)
{
    world_t w;
    world_init(&w, CX_PROXY_V1, false);
    world_connect(&w);
    send_all(w.peer, "\x10\x0c\x00\x04MQTT", 8);
    cx_xport_read(w.c, CX_NET_READ_BUDGET);
    CHECK(w.c->closing);
    CHECK_INT_EQ(reads, 0);
    world_free(&w);
}

static void test_websocket_close_after_data(void)
{
    world_t w;
    world_init(&w, 0, true);
    world_connect(&w);
    uint8_t buf[1024];
    size_t n = sizeof upgrade - 1;
    memcpy(buf, upgrade, n);
    n += masked(buf + n, 0x2, true, "bye", 3);
    n += masked(buf + n, 0x8, true, "\x03\xe8", 2); /* close 1000 */
    send_all(w.peer, buf, n);
    cx_xport_read(w.c, CX_NET_READ_BUDGET);
    CHECK_INT_EQ(got_len, 3); /* the data before the close frame was delivered */
    CHECK(w.c->closing);
    cx_net_flush(&w.net); /* frees it after sending 101 + the echoed close */
    uint8_t out[512];
    size_t m = drain(w.peer, out, sizeof out);
    CHECK(m >= 4);
    CHECK(memcmp(out + m - 4, "\x88\x02\x03\xe8", 4) == 0);
    close(w.peer);
    cx_loop_free(w.loop);
    cx_transport_destroy(&w.l.tp);
}

/* Input the filters hold is not announced by the socket: a paused read puts the
 * connection on the "again" list when it resumes, also after moving to another worker. */
static void test_again_list_and_handover(void)
{
    world_t w;
    world_init(&w, CX_PROXY_V1, true);
    world_connect(&w);
    uint8_t buf[2048];
    size_t n = 0;
    const char *hdr = "PROXY TCP4 198.51.100.1 192.0.2.1 5 6\r\n";
    memcpy(buf, hdr, strlen(hdr));
    n += strlen(hdr);
    memcpy(buf + n, upgrade, sizeof upgrade - 1);
    n += sizeof upgrade - 1;
    n += masked(buf + n, 0x2, true, "one", 3);
    send_all(w.peer, buf, n);
    pause_on_read = true;
    cx_xport_read(w.c, CX_NET_READ_BUDGET);
    CHECK_INT_EQ(reads, 1);
    CHECK(w.c->read_paused);
    CHECK(!cx_list_linked(&w.c->x->again_link)); /* paused: not yet */

    /* hand over to another worker's context, with more frames on the way */
    cx_loop_t *loop2 = cx_loop_new(on_post, NULL);
    cx_netctx_t net2;
    cx_net_init(&net2, loop2, NULL);
    cx_conn_detach(w.c);
    w.c->read_paused = false;
    w.c->x->rx_more = true; /* as if the filters still held bytes */
    CHECK_INT_EQ(cx_conn_attach(w.c, &net2, &ops), 0);
    CHECK(cx_list_linked(&w.c->x->again_link));
    CHECK(cx_list_empty(&w.net.again_list));
    CHECK(!cx_list_empty(&net2.again_list));
    n = masked(buf, 0x2, true, "two", 3);
    send_all(w.peer, buf, n);
    pause_on_read = false;
    cx_xport_again_cb(loop2, &net2.again_timer);
    CHECK_INT_EQ(got_len, 6);
    CHECK(memcmp(got, "onetwo", 6) == 0);
    CHECK_STR_EQ(w.c->peer, "198.51.100.1:5");
    cx_net_close_all(&net2);
    cx_net_flush(&net2);
    close(w.peer);
    cx_loop_free(loop2);
    cx_loop_free(w.loop);
    cx_transport_destroy(&w.l.tp);
}

/* ---- TLS ------------------------------------------------------------------------------ */

static char certpath[64], keypath[64];

/* A self-signed EC certificate written to temp files, for the server context. */
static void make_cert(void)
{
    EVP_PKEY *k = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    X509 *x = X509_new();
    CHECK(k && x);
    ASN1_INTEGER_set(X509_get_serialNumber(x), 7);
    X509_gmtime_adj(X509_getm_notBefore(x), -60);
    X509_gmtime_adj(X509_getm_notAfter(x), 3600);
    X509_set_pubkey(x, k);
    X509_NAME *nm = X509_get_subject_name(x);
    X509_NAME_add_entry_by_txt(nm, "CN", MBSTRING_ASC, (const unsigned char *)"unit", -1, -1, 0);
    X509_NAME_add_entry_by_txt(nm, "O", MBSTRING_ASC, (const unsigned char *)"Acme", -1, -1, 0);
    X509_set_issuer_name(x, nm);
    CHECK(X509_sign(x, k, EVP_sha256()) > 0);
    snprintf(certpath, sizeof certpath, "/tmp/cx_filter_crt_XXXXXX");
    snprintf(keypath, sizeof keypath, "/tmp/cx_filter_key_XXXXXX");
    int cf = mkstemp(certpath), kf = mkstemp(keypath);
    CHECK(cf >= 0 && kf >= 0);
    FILE *f = fdopen(cf, "w");
    PEM_write_X509(f, x);
    fclose(f);
    f = fdopen(kf, "w");
    PEM_write_PrivateKey(f, k, NULL, NULL, 0, NULL, NULL);
    fclose(f);
    X509_free(x);
    EVP_PKEY_free(k);
}

static void test_tls_after_proxy_header(void)
{
    make_cert();
    world_t w;
    world_init(&w, CX_PROXY_V2 | CX_PROXY_V1, false);
    cx_tls_conf_t tc = {.certfile = certpath, .keyfile = keypath};
    char err[512];
    cx_tls_ctx_t *t = cx_tls_ctx_new(&tc, err, sizeof err);
    if (!t)
        CX_FAIL_("context: %s", err);
    cx_transport_set_tls(&w.l.tp, t);
    world_connect(&w);

    SSL_CTX *cctx = SSL_CTX_new(TLS_client_method());
    SSL *cl = SSL_new(cctx);
    CHECK(cl != NULL);
    /* The PROXY header and the ClientHello leave in one write: the TLS layer must find
     * the hello in the bytes the PROXY layer read. */
    BIO *rb = BIO_new(BIO_s_mem()), *wb = BIO_new(BIO_s_mem());
    SSL_set_bio(cl, rb, wb);
    SSL_set_connect_state(cl);
    CHECK(SSL_do_handshake(cl) <= 0);
    const char *hdr = "PROXY TCP4 203.0.113.9 192.0.2.1 999 8883\r\n";
    char *hello;
    long hl = BIO_get_mem_data(wb, &hello);
    uint8_t first[4096];
    memcpy(first, hdr, strlen(hdr));
    memcpy(first + strlen(hdr), hello, (size_t)hl);
    send_all(w.peer, first, strlen(hdr) + (size_t)hl);
    (void)BIO_reset(wb);
    /* Run both sides until the client has finished and sent "hi". */
    bool sent = false;
    for (int round = 0; round < 20 && got_len < 2 && !w.c->closing; round++) {
        cx_xport_read(w.c, CX_NET_READ_BUDGET);
        uint8_t in[8192];
        ssize_t m;
        while ((m = read(w.peer, in, sizeof in)) > 0)
            BIO_write(rb, in, (int)m);
        if (SSL_do_handshake(cl) == 1 && !sent) {
            size_t wr;
            CHECK(SSL_write_ex(cl, "hi", 2, &wr) == 1);
            sent = true;
        }
        char *out;
        long ol = BIO_get_mem_data(wb, &out);
        if (ol > 0)
            send_all(w.peer, out, (size_t)ol);
        (void)BIO_reset(wb);
    }
    CHECK(!w.c->closing);
    CHECK_INT_EQ(got_len, 2);
    CHECK(memcmp(got, "hi", 2) == 0);
    CHECK(cx_conn_is_tls(w.c));
    CHECK_STR_EQ(w.c->peer, "203.0.113.9:999");
    CHECK(cx_conn_field(w.c, "tls_version") != NULL);
    CHECK(cx_conn_field(w.c, "CN") == NULL); /* the client presented no certificate */
    /* and back: c->out is encrypted for the client */
    CHECK_INT_EQ(cx_conn_write(w.c, "pong", 4), 0);
    cx_net_flush(&w.net);
    uint8_t in[8192];
    ssize_t m = read(w.peer, in, sizeof in);
    CHECK(m > 0);
    BIO_write(rb, in, (int)m);
    char plain[16];
    size_t rd = 0;
    int ok = SSL_read_ex(cl, plain, sizeof plain, &rd);
    while (!ok && SSL_get_error(cl, 0) == SSL_ERROR_WANT_READ) /* session tickets first */
        ok = SSL_read_ex(cl, plain, sizeof plain, &rd);
    CHECK(ok == 1 && rd == 4 && memcmp(plain, "pong", 4) == 0);
    SSL_free(cl);
    SSL_CTX_free(cctx);
    world_free(&w);
    unlink(certpath);
    unlink(keypath);
}

static void test_tls_context_errors(void)
{
    char err[512];
    cx_tls_conf_t tc = {.certfile = "/nonexistent.pem", .keyfile = "/nonexistent.key"};
    CHECK(cx_tls_ctx_new(&tc, err, sizeof err) == NULL);
    CHECK(strstr(err, "certfile /nonexistent.pem") != NULL);
    char psk[] = "/tmp/cx_filter_psk_XXXXXX";
    int fd = mkstemp(psk);
    CHECK(fd >= 0);
    const char *text = "# comment\n\nalice:00ff\nbob:0g\n";
    CHECK_INT_EQ(write(fd, text, strlen(text)), (long)strlen(text));
    close(fd);
    cx_tls_conf_t pc = {.psk_hint = "h", .psk_file = psk};
    CHECK(cx_tls_ctx_new(&pc, err, sizeof err) == NULL);
    char want[128];
    snprintf(want, sizeof want, "psk_file %s:4: key is not hexadecimal", psk);
    CHECK_STR_EQ(err, want);
    static const char *const bad[] = {"nocolon\n", ":00\n", "a:\n", "a:0\n", "a:00\na:11\n"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        FILE *f = fopen(psk, "w");
        fputs(bad[i], f);
        fclose(f);
        CHECK(cx_tls_ctx_new(&pc, err, sizeof err) == NULL);
        CHECK(strstr(err, psk) != NULL);
    }
    FILE *f = fopen(psk, "w");
    fputs("alice:00ff\n", f);
    fclose(f);
    cx_tls_ctx_t *t = cx_tls_ctx_new(&pc, err, sizeof err);
    CHECK(t != NULL);
    CHECK_INT_EQ(t->npsk, 1);
    cx_tls_ctx_unref(t);
    unlink(psk);
}

CX_TEST_MAIN(
    CX_TEST(plain_listener_has_no_filter),
    CX_TEST(proxy_websocket_in_one_write),
    CX_TEST(bad_proxy_header_closes),
    CX_TEST(websocket_close_after_data),
    CX_TEST(again_list_and_handover),
    CX_TEST(tls_after_proxy_header),
    CX_TEST(tls_context_errors),
)
