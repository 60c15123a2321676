/* culex/sdk/password.h — password hash verification and creation (libculex-plugin).
 *
 * Part of the plugin SDK, a static library that plugins link into themselves; nothing here
 * talks to the broker. Every function is thread-safe ("any thread") and keeps no state
 * between calls.
 *
 * Encodings understood by culex_pw_verify():
 *
 *   $7$<iter>$<salt_b64>$<hash_b64>     Mosquitto 2.x: PBKDF2-HMAC-SHA512, 64-byte hash,
 *                                       any salt length (2.0 writes 12 bytes, 2.1 64 bytes).
 *   $6$<salt_b64>$<hash_b64>            Mosquitto 1.x: SHA-512(password || salt), once.
 *                                       Insecure; read for old files only.
 *   PBKDF2$sha256$<iter>$<salt>$<hash>  the form mosquitto-go-auth (and the older
 *   PBKDF2$sha512$<iter>$<salt>$<hash>  mosquitto-auth-plug) store: salt and hash in standard
 *                                       base64, key length = length of the decoded hash.
 *                                       CULEX_PW_RAW_SALT uses the salt text itself (go-auth's
 *                                       `hasher_salt_encoding utf-8`).
 *   $2a$ $2b$ $2y$                       bcrypt, via libxcrypt (only the first 72 bytes of a
 *                                       password count: bcrypt's own limit).
 *   $5$ / $6$ [rounds=N$]               sha256-crypt / sha512-crypt, via libxcrypt.
 *   $y$                                  yescrypt (Debian's /etc/shadow default), via libxcrypt.
 *   $argon2id$ $argon2i$ $argon2d$       PHC strings, via libargon2
 *                                       (`$argon2id$v=19$m=47104,t=1,p=1$<salt>$<hash>`).
 *
 * Mosquitto's `$6$` and sha512-crypt's `$6$` share a prefix. They are told apart by the
 * shape of the fields: Mosquitto's hash field is 64 bytes in standard base64, i.e. exactly
 * 88 characters ending in "==" (crypt's alphabet `./0-9A-Za-z` has no '=' or '+'), and its
 * string has exactly two fields after `$6$`; sha512-crypt's hash is exactly 86 characters
 * of the crypt alphabet and its salt field may be preceded by a `rounds=N$` field.
 *
 * Passwords are byte strings (MQTT passwords are binary data). The crypt(3) family cannot
 * represent a NUL byte: a password that contains one never matches a crypt hash. */
#ifndef CULEX_SDK_PASSWORD_H
#define CULEX_SDK_PASSWORD_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum culex_pw_scheme {
    CULEX_PW_SHA512_PBKDF2 = 0, /* Mosquitto `$7$` (the default) */
    CULEX_PW_ARGON2ID = 1,      /* `$argon2id$` PHC string */
    CULEX_PW_SHA512 = 2,        /* Mosquitto 1.x `$6$` (insecure, for tests and old files) */
    CULEX_PW_PBKDF2_SHA256 = 3, /* `PBKDF2$sha256$...` */
    CULEX_PW_PBKDF2_SHA512 = 4, /* `PBKDF2$sha512$...` */
    CULEX_PW_BCRYPT = 5,        /* `$2b$` (verify also takes $2a$ and $2y$) */
    CULEX_PW_SHA512_CRYPT = 6,  /* `$6$` glibc sha512-crypt */
    CULEX_PW_SHA256_CRYPT = 7,  /* `$5$` glibc sha256-crypt */
    CULEX_PW_YESCRYPT = 8,      /* `$y$` */
    CULEX_PW_ARGON2I = 9,       /* `$argon2i$` (verify only) */
    CULEX_PW_ARGON2D = 10,      /* `$argon2d$` (verify only) */
    CULEX_PW_DEFAULT = CULEX_PW_SHA512_PBKDF2
} culex_pw_scheme;

/* Errors (negative). */
#define CULEX_PW_EFORMAT (-1)      /* unknown or malformed encoding */
#define CULEX_PW_EINVAL (-2)       /* bad argument (NULL, iterations out of range, ...) */
#define CULEX_PW_ENOSPC (-3)       /* output buffer too small */
#define CULEX_PW_ECRYPTO (-4)      /* the crypto library failed (RNG, out of memory, ...) */
#define CULEX_PW_EUNSUPPORTED (-5) /* scheme cannot be created here */
#define CULEX_PW_ECOST (-6)        /* the encoding asks for more work than the limits below */

/* The most work a stored hash may ask for. A hash file is configuration, but one line with
 * 2^31 PBKDF2 iterations or a 100 GiB argon2 memory cost would tie up a verifying thread for
 * hours or exhaust memory at every login: such entries are refused (CULEX_PW_ECOST) by
 * culex_pw_identify() and culex_pw_verify(). Each limit is far above every default. */
#define CULEX_PW_MAX_PBKDF2_ITERATIONS 10000000u /* $7$, PBKDF2$ */
#define CULEX_PW_MAX_CRYPT_ROUNDS 10000000u      /* $5$/$6$ rounds= */
#define CULEX_PW_MAX_BCRYPT_COST 17u             /* about 10 s here */
#define CULEX_PW_MAX_ARGON2_M_KIB 1048576u       /* 1 GiB */
#define CULEX_PW_MAX_ARGON2_T 64u
#define CULEX_PW_MAX_ARGON2_P 64u

/* Flags for culex_pw_verify_ex(). */
#define CULEX_PW_RAW_SALT 0x1u /* PBKDF2$ form: the salt field is used as text, not base64 */

/* Defaults used by culex_pw_hash() when `iterations` is 0.
 * `$7$`: 1000 iterations, Mosquitto 2.1's default, with a 12-byte salt: Mosquitto 2.0.x
 * (e.g. Debian 12's 2.0.11) refuses any other salt length, 2.1 reads any, so a 12-byte salt
 * is the one both read. argon2id: Mosquitto 2.1's parameters m=47104 KiB, t=1, p=1. */
#define CULEX_PW_PBKDF2_DEFAULT_ITERATIONS 1000u
#define CULEX_PW_MOSQ_SALT_LEN 12u
#define CULEX_PW_ARGON2_M_KIB 47104u
#define CULEX_PW_ARGON2_T 1u
#define CULEX_PW_ARGON2_P 1u
#define CULEX_PW_GOAUTH_DEFAULT_ITERATIONS 100000u
#define CULEX_PW_BCRYPT_DEFAULT_COST 10u

/* Large enough for any string culex_pw_hash() writes, NUL included. */
#define CULEX_PW_ENCODED_MAX 256

/* Checks `password` (`password_len` bytes, need not be NUL-terminated) against `encoded`
 * (NUL-terminated, one of the encodings above). Returns 1 on a match, 0 on no match, or a
 * negative CULEX_PW_E* error (unknown or malformed encoding, library failure). Digests are
 * compared in constant time. Takes as long as the encoding asks for (iterations, memory):
 * call it from a blocking hook, not on a worker. Any thread. */
int culex_pw_verify(const char *encoded, const char *password, size_t password_len);

/* culex_pw_verify() with flags (CULEX_PW_RAW_SALT). */
int culex_pw_verify_ex(const char *encoded, const char *password, size_t password_len,
                       unsigned flags);

/* Writes a new encoded hash of `password` with a fresh random salt into `out` (`outlen`
 * bytes, CULEX_PW_ENCODED_MAX is always enough) and returns 0, or a negative CULEX_PW_E*.
 * `iterations` means: PBKDF2 iteration count (`$7$`, `PBKDF2$`), argon2 passes (t), bcrypt
 * cost (4..31), sha-crypt rounds, yescrypt cost; 0 picks the default above (libxcrypt's for
 * sha-crypt and yescrypt); ignored for `$6$`. Verify-only schemes give
 * CULEX_PW_EUNSUPPORTED. Any thread. */
int culex_pw_hash(culex_pw_scheme scheme, const char *password, size_t len, unsigned iterations,
                  char *out, size_t outlen);

/* The scheme of `encoded` judged by its shape alone (no hashing), or CULEX_PW_EFORMAT.
 * Useful to tell a hash from a plain-text password, or to find hashes worth upgrading. */
int culex_pw_identify(const char *encoded);

/* A static English message for a CULEX_PW_E* code. */
const char *culex_pw_strerror(int err);

#ifdef __cplusplus
}
#endif

#endif
