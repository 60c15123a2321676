/* tls_engine.c: OpenSSL ENGINEs for listener keys (tls_engine, tls_keyform engine,
 * tls_engine_kpass_sha1; docs/tls.md "Keys in an engine").
 *
 * OpenSSL 3 marks the ENGINE API deprecated in favour of providers, but Mosquitto's
 * directives name engines, and the engine that users have for hardware keys on Debian 12 is
 * libp11's pkcs11 engine (libengine-pkcs11-openssl). So culex keeps using it, here and only
 * here: this file alone turns the deprecation warnings off (the build has -Werror), so that
 * no other file can start using deprecated API unnoticed. */
#define OPENSSL_SUPPRESS_DEPRECATED 1

#include "tls_engine.h"

#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include <openssl/engine.h>
#include <openssl/err.h>
#include <openssl/ui.h>

#include "filter.h"
#include "util/err.h"

/* The TPM engine's (and Mosquitto's) value of SECRET_MODE for "the PIN is a SHA-1 hash". */
#define SECRET_MODE_SHA1 0x1000

static pthread_once_t builtin_once = PTHREAD_ONCE_INIT;
static UI_METHOD *no_prompt;

/* An engine asks for a missing PIN through a UI_METHOD, which by default reads the
 * terminal. A broker has none (and a blocked start is worse than a clear error), so every
 * question is answered "no input": the engine then fails with its own reason ("No PIN code
 * was entered"). */
static int refuse_read(UI *ui, UI_STRING *uis)
{
    (void)ui, (void)uis;
    return 0;
}

static void init_once(void)
{
    /* Registers "dynamic", through which ENGINE_by_id finds engines-3/<id>.so. */
    ENGINE_load_builtin_engines();
    /* Kept for the life of the process: an engine may keep the pointer it was given for
     * later logins (libp11 does). */
    no_prompt = UI_create_method("culex: no PIN prompt");
    if (no_prompt)
        UI_method_set_reader(no_prompt, refuse_read);
}

/* err = "<what>: <OpenSSL's reason>". */
static void reason(char *err, size_t errlen, const char *what)
{
    char why[256];
    cx_tls_reason(why, sizeof why);
    snprintf(err, errlen, "%s: %s", what, why);
}

ENGINE *cx_tls_engine_open(const char *id, bool set_default, char *err, size_t errlen)
{
    pthread_once(&builtin_once, init_once);
    ERR_clear_error();
    char what[512];
    ENGINE *e = ENGINE_by_id(id);
    if (!e) {
        snprintf(what, sizeof what, "tls_engine %s: cannot load this OpenSSL engine (built "
                 "in, or %s.so in OpenSSL's engines directory)", id, id);
        reason(err, errlen, what);
        return NULL;
    }
    if (!ENGINE_init(e)) {
        snprintf(what, sizeof what, "tls_engine %s: the engine failed to initialise", id);
        reason(err, errlen, what);
        ENGINE_free(e);
        return NULL;
    }
    ENGINE_free(e); /* the functional reference of ENGINE_init keeps it */
    if (set_default && !ENGINE_set_default(e, ENGINE_METHOD_ALL)) {
        snprintf(what, sizeof what, "tls_engine %s: cannot make it OpenSSL's default", id);
        reason(err, errlen, what);
        ENGINE_finish(e);
        return NULL;
    }
    return e;
}

int cx_tls_engine_kpass_sha1(ENGINE *e, const char *hex, char *err, size_t errlen)
{
    const char *id = ENGINE_get_id(e);
    ERR_clear_error();
    if (ENGINE_ctrl(e, ENGINE_CTRL_GET_CMD_FROM_NAME, 0, (void *)"SECRET_MODE", NULL) <= 0) {
        ERR_clear_error();
        snprintf(err, errlen,
                 "tls_engine_kpass_sha1: engine %s has no SECRET_MODE control, so it cannot "
                 "take the SHA-1 of a password (Mosquitto refuses to start here too); remove "
                 "tls_engine_kpass_sha1 and give the PIN with the key%s",
                 id, strcmp(id, "pkcs11") == 0
                         ? " (pkcs11: add ?pin-source=file:/path/to/pin to the keyfile URI)"
                         : "");
        return CX_ECONFIG;
    }
    char what[256];
    if (!ENGINE_ctrl_cmd(e, "SECRET_MODE", SECRET_MODE_SHA1, NULL, NULL, 0)) {
        snprintf(what, sizeof what, "tls_engine_kpass_sha1: engine %s refused SECRET_MODE "
                 "SHA-1", id);
        reason(err, errlen, what);
        return CX_ECONFIG;
    }
    if (!ENGINE_ctrl_cmd(e, "PIN", 0, (void *)hex, NULL, 0)) {
        snprintf(what, sizeof what, "tls_engine_kpass_sha1: engine %s refused the hash (PIN "
                 "control)", id);
        reason(err, errlen, what);
        return CX_ECONFIG;
    }
    return CX_OK;
}

EVP_PKEY *cx_tls_engine_load_key(ENGINE *e, const char *key_id, char *err, size_t errlen)
{
    ERR_clear_error();
    EVP_PKEY *k = ENGINE_load_private_key(e, key_id, no_prompt, NULL);
    if (!k) {
        char what[512];
        snprintf(what, sizeof what, "keyfile %s: engine %s cannot load this key", key_id,
                 ENGINE_get_id(e));
        reason(err, errlen, what);
    }
    return k;
}

void cx_tls_engine_close(ENGINE *e)
{
    if (e)
        ENGINE_finish(e);
}
