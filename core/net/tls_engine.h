/* tls_engine.h: OpenSSL ENGINEs for listener keys (mosquitto's tls_engine, tls_keyform engine
 * and tls_engine_kpass_sha1), e.g. a key kept in a PKCS#11 token through the pkcs11 engine.
 *
 * Every ENGINE call of culex is in tls_engine.c: OpenSSL 3 deprecates the API, and only that
 * file is compiled with the deprecation warnings off. Main thread (context build), like
 * tls_ctx.c. */
#ifndef CX_NET_TLS_ENGINE_H
#define CX_NET_TLS_ENGINE_H

#include <stdbool.h>
#include <stddef.h>

#include <openssl/types.h>

/* Loads engine `id` (a built-in one, or engines-3/<id>.so) and initialises it: a functional
 * reference, released by cx_tls_engine_close. With set_default the engine also becomes
 * OpenSSL's default for every algorithm it implements, process-wide (mosquitto's meaning of
 * tls_engine for a crypto accelerator). NULL with err ("engine pkcs11: ..."). */
ENGINE *cx_tls_engine_open(const char *id, bool set_default, char *err, size_t errlen);

/* Hands the SHA-1 of the key's password (40 hex digits) to the engine the way mosquitto does:
 * its "SECRET_MODE" control set to SHA-1 (0x1000, the TPM engine's TSS_SECRET_MODE_SHA1),
 * then its "PIN" control. An engine without a SECRET_MODE control (pkcs11 is one) cannot
 * take a hash: CX_ECONFIG with err saying so, rather than passing the hash as a PIN. */
int cx_tls_engine_kpass_sha1(ENGINE *e, const char *hex, char *err, size_t errlen);

/* The private key `key_id` (for pkcs11 a PKCS#11 URI) from the engine. The engine is never
 * allowed to prompt for a PIN (a daemon has no terminal): give it in the key id (pkcs11:
 * `?pin-source=file:PATH`) or through tls_engine_kpass_sha1. NULL with err. */
EVP_PKEY *cx_tls_engine_load_key(ENGINE *e, const char *key_id, char *err, size_t errlen);

/* Releases the reference of cx_tls_engine_open; NULL is fine. Any thread. */
void cx_tls_engine_close(ENGINE *e);

#endif
