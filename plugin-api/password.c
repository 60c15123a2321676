/* password.c — password hash verification and creation for every format in
 * culex/sdk/password.h: Mosquitto's `$6$`/`$7$`, the `PBKDF2$` form, crypt(3) hashes through
 * libxcrypt and argon2 PHC strings through libargon2. Digest comparisons are constant time
 * (CRYPTO_memcmp); secrets copied to the stack or heap are wiped (OPENSSL_cleanse). */
#include <culex/sdk/password.h>

#include <argon2.h>
#include <crypt.h>
#include <errno.h>
#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#define MAX_SALT 1024 /* decoded salt bytes accepted in a stored hash */
#define MAX_KEY 512   /* decoded PBKDF2$ hash bytes accepted */
#define MOSQ_HASH_LEN 64
#define GOAUTH_SALT_LEN 16
#define ARGON2_SALT_LEN 16
#define ARGON2_HASH_LEN 32

/* ---- base64 (RFC 4648 standard alphabet) ---- */

static const char b64_chars[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static int b64_value(unsigned char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '+')
        return 62;
    if (c == '/')
        return 63;
    return -1;
}

/* Encodes with '=' padding; returns the length written (NUL added) or 0 if out is short. */
static size_t b64_encode(const unsigned char *in, size_t len, char *out, size_t outlen)
{
    size_t need = 4 * ((len + 2) / 3);
    if (need + 1 > outlen)
        return 0;
    size_t o = 0;
    for (size_t i = 0; i < len; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16;
        if (i + 1 < len)
            v |= (uint32_t)in[i + 1] << 8;
        if (i + 2 < len)
            v |= in[i + 2];
        out[o++] = b64_chars[(v >> 18) & 63];
        out[o++] = b64_chars[(v >> 12) & 63];
        out[o++] = i + 1 < len ? b64_chars[(v >> 6) & 63] : '=';
        out[o++] = i + 2 < len ? b64_chars[v & 63] : '=';
    }
    out[o] = '\0';
    return o;
}

/* Decodes `len` characters, padded or not. Returns the byte count, or -1 when the text is
 * not base64 or decodes to more than `cap` bytes. */
static long b64_decode(const char *in, size_t len, unsigned char *out, size_t cap)
{
    size_t pad = 0;
    while (len > 0 && in[len - 1] == '=' && pad < 2) {
        len--;
        pad++;
    }
    if (len == 0 || len % 4 == 1 || (pad && (len + pad) % 4 != 0))
        return -1;
    size_t n = len / 4 * 3 + (len % 4 ? len % 4 - 1 : 0);
    if (n > cap)
        return -1;
    uint32_t acc = 0;
    int bits = 0;
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        int v = b64_value((unsigned char)in[i]);
        if (v < 0)
            return -1;
        acc = (acc << 6) | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[o++] = (unsigned char)(acc >> bits);
        }
    }
    return (long)o;
}

static bool is_b64_text(const char *s, size_t len)
{
    size_t i = 0;
    while (i < len && b64_value((unsigned char)s[i]) >= 0)
        i++;
    while (i < len && s[i] == '=')
        i++;
    return i == len && len > 0;
}

static bool is_crypt_alphabet(const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
              c == '.' || c == '/'))
            return false;
    }
    return true;
}

/* ---- field splitting and numbers ---- */

typedef struct field {
    const char *p;
    size_t len;
} field;

/* Splits s on '$' into at most max fields; returns the field count, or max + 1 if there
 * are more. */
static size_t split_fields(const char *s, field *f, size_t max)
{
    size_t n = 0;
    for (;;) {
        const char *e = strchr(s, '$');
        size_t len = e ? (size_t)(e - s) : strlen(s);
        if (n == max)
            return max + 1;
        f[n].p = s;
        f[n].len = len;
        n++;
        if (!e)
            return n;
        s = e + 1;
    }
}

/* A decimal count 1..INT_MAX, digits only. */
static bool parse_count(const field *f, unsigned *out)
{
    if (f->len == 0 || f->len > 10)
        return false;
    unsigned long long v = 0;
    for (size_t i = 0; i < f->len; i++) {
        if (f->p[i] < '0' || f->p[i] > '9')
            return false;
        v = v * 10 + (unsigned)(f->p[i] - '0');
    }
    if (v < 1 || v > INT_MAX)
        return false;
    *out = (unsigned)v;
    return true;
}

static bool has_prefix(const char *s, const char *prefix)
{
    return strncmp(s, prefix, strlen(prefix)) == 0;
}

/* ---- parsing the self-contained formats ---- */

typedef struct parsed {
    int scheme;
    unsigned iterations;
    size_t salt_len, hash_len;
    unsigned char salt[MAX_SALT];
    unsigned char hash[MAX_KEY];
} parsed;

/* Mosquitto's `$6$`/`$7$` fields: standard base64 salt (any length) and a 64-byte hash. */
static int decode_mosq_salt_hash(const field *salt, const field *hash, int scheme, parsed *p)
{
    long sl = b64_decode(salt->p, salt->len, p->salt, sizeof p->salt);
    long hl = b64_decode(hash->p, hash->len, p->hash, sizeof p->hash);
    if (sl < 1 || hl != MOSQ_HASH_LEN)
        return CULEX_PW_EFORMAT;
    p->salt_len = (size_t)sl;
    p->hash_len = (size_t)hl;
    p->scheme = scheme;
    return 0;
}

static int parse_mosq7(const char *rest, parsed *p)
{
    field f[3];
    if (split_fields(rest, f, 3) != 3 || !parse_count(&f[0], &p->iterations))
        return CULEX_PW_EFORMAT;
    if (p->iterations > CULEX_PW_MAX_PBKDF2_ITERATIONS)
        return CULEX_PW_ECOST;
    return decode_mosq_salt_hash(&f[1], &f[2], CULEX_PW_SHA512_PBKDF2, p);
}

/* The N of a sha-crypt "rounds=N" field: CULEX_PW_ECOST above the limit, else 0 (libxcrypt
 * judges the rest of the syntax). */
static int crypt_rounds_cost(const field *f)
{
    field n = {f->p + 7, f->len - 7};
    unsigned rounds;
    if (f->len > 7 && parse_count(&n, &rounds) && rounds <= CULEX_PW_MAX_CRYPT_ROUNDS)
        return 0;
    return f->len > 7 && f->len - 7 <= 10 && parse_count(&n, &rounds) ? CULEX_PW_ECOST
                                                                       : CULEX_PW_EFORMAT;
}

/* `$6$...`: Mosquitto's salted SHA-512 or sha512-crypt; see the header for the rule. */
static int parse_dollar6(const char *rest, parsed *p)
{
    field f[3];
    size_t n = split_fields(rest, f, 3);
    if (has_prefix(rest, "rounds=")) {
        if (n != 3 || f[2].len != 86 || !is_crypt_alphabet(f[2].p, f[2].len))
            return CULEX_PW_EFORMAT;
        int cost = crypt_rounds_cost(&f[0]);
        return cost ? cost : CULEX_PW_SHA512_CRYPT;
    }
    if (n != 2)
        return CULEX_PW_EFORMAT;
    if (f[1].len == 88 && f[1].p[86] == '=' && f[1].p[87] == '=') {
        if (!is_b64_text(f[0].p, f[0].len))
            return CULEX_PW_EFORMAT;
        return decode_mosq_salt_hash(&f[0], &f[1], CULEX_PW_SHA512, p);
    }
    if (f[1].len == 86 && is_crypt_alphabet(f[1].p, f[1].len) && f[0].len > 0)
        return CULEX_PW_SHA512_CRYPT;
    return CULEX_PW_EFORMAT;
}

static int parse_goauth(const char *rest, unsigned flags, parsed *p)
{
    field f[4];
    if (split_fields(rest, f, 4) != 4)
        return CULEX_PW_EFORMAT;
    if (f[0].len == 6 && memcmp(f[0].p, "sha256", 6) == 0)
        p->scheme = CULEX_PW_PBKDF2_SHA256;
    else if (f[0].len == 6 && memcmp(f[0].p, "sha512", 6) == 0)
        p->scheme = CULEX_PW_PBKDF2_SHA512;
    else
        return CULEX_PW_EFORMAT;
    if (!parse_count(&f[1], &p->iterations))
        return CULEX_PW_EFORMAT;
    if (p->iterations > CULEX_PW_MAX_PBKDF2_ITERATIONS)
        return CULEX_PW_ECOST;
    if (flags & CULEX_PW_RAW_SALT) {
        if (f[2].len < 1 || f[2].len > sizeof p->salt)
            return CULEX_PW_EFORMAT;
        memcpy(p->salt, f[2].p, f[2].len);
        p->salt_len = f[2].len;
    } else {
        long sl = b64_decode(f[2].p, f[2].len, p->salt, sizeof p->salt);
        if (sl < 1)
            return CULEX_PW_EFORMAT;
        p->salt_len = (size_t)sl;
    }
    long hl = b64_decode(f[3].p, f[3].len, p->hash, sizeof p->hash);
    if (hl < 16) /* shorter keys would be too easy to collide with */
        return CULEX_PW_EFORMAT;
    p->hash_len = (size_t)hl;
    return 0;
}

/* Shapes of the formats that libxcrypt and libargon2 check themselves. Returns the scheme or
 * CULEX_PW_EFORMAT. */
static int shape_crypt(const char *e)
{
    field f[5];
    size_t n;
    if (has_prefix(e, "$2a$") || has_prefix(e, "$2b$") || has_prefix(e, "$2y$")) {
        /* $2b$NN$ + 22 salt + 31 hash characters */
        if (strlen(e) != 60 || e[4] < '0' || e[4] > '3' || e[5] < '0' || e[5] > '9' ||
            e[6] != '$' || !is_crypt_alphabet(e + 7, 53))
            return CULEX_PW_EFORMAT;
        unsigned cost = (unsigned)(e[4] - '0') * 10 + (unsigned)(e[5] - '0');
        return cost > CULEX_PW_MAX_BCRYPT_COST ? CULEX_PW_ECOST : CULEX_PW_BCRYPT;
    }
    if (has_prefix(e, "$5$")) {
        n = split_fields(e + 3, f, 3);
        if (n < 2 || n > 3 || (n == 3 && !has_prefix(f[0].p, "rounds=")) ||
            f[n - 1].len != 43 || !is_crypt_alphabet(f[n - 1].p, f[n - 1].len))
            return CULEX_PW_EFORMAT;
        int cost = n == 3 ? crypt_rounds_cost(&f[0]) : 0;
        return cost ? cost : CULEX_PW_SHA256_CRYPT;
    }
    if (has_prefix(e, "$y$")) {
        n = split_fields(e + 3, f, 4);
        if (n != 3 || f[0].len == 0 || f[1].len == 0 || f[2].len == 0 ||
            !is_crypt_alphabet(f[2].p, f[2].len))
            return CULEX_PW_EFORMAT;
        return CULEX_PW_YESCRYPT;
    }
    return CULEX_PW_EFORMAT;
}

/* "m=M,t=T,p=P" within the limits. Values that do not parse are left to libargon2, which
 * refuses them; only costs that parse and are too high are refused here. */
static bool argon2_cost_ok(const field *f)
{
    static const struct {
        char key;
        unsigned max;
    } lim[3] = {{'m', CULEX_PW_MAX_ARGON2_M_KIB}, {'t', CULEX_PW_MAX_ARGON2_T},
                {'p', CULEX_PW_MAX_ARGON2_P}};
    const char *s = f->p, *end = f->p + f->len;
    while (s < end) {
        const char *comma = memchr(s, ',', (size_t)(end - s));
        const char *stop = comma ? comma : end;
        for (int i = 0; i < 3; i++) {
            if (stop - s < 3 || s[0] != lim[i].key || s[1] != '=')
                continue;
            unsigned long long v = 0;
            for (const char *d = s + 2; d < stop && v <= 0xffffffffull; d++)
                v = (*d >= '0' && *d <= '9') ? v * 10 + (unsigned)(*d - '0') : 0xffffffffffull;
            if (v != 0xffffffffffull && v > lim[i].max)
                return false;
        }
        s = stop + 1;
    }
    return true;
}

static int shape_argon2(const char *e, argon2_type *type)
{
    const char *rest;
    int scheme;
    if (has_prefix(e, "$argon2id$")) {
        *type = Argon2_id;
        scheme = CULEX_PW_ARGON2ID;
        rest = e + 10;
    } else if (has_prefix(e, "$argon2i$")) {
        *type = Argon2_i;
        scheme = CULEX_PW_ARGON2I;
        rest = e + 9;
    } else if (has_prefix(e, "$argon2d$")) {
        *type = Argon2_d;
        scheme = CULEX_PW_ARGON2D;
        rest = e + 9;
    } else {
        return CULEX_PW_EFORMAT;
    }
    field f[5];
    size_t n = split_fields(rest, f, 4);
    /* [v=19$]m=..,t=..,p=..$salt$hash */
    const field *params;
    if (n == 4 && has_prefix(f[0].p, "v=") && has_prefix(f[1].p, "m=") && f[2].len && f[3].len)
        params = &f[1];
    else if (n == 3 && has_prefix(f[0].p, "m=") && f[1].len && f[2].len)
        params = &f[0];
    else
        return CULEX_PW_EFORMAT;
    return argon2_cost_ok(params) ? scheme : CULEX_PW_ECOST;
}

/* Parses the formats whose digest this file computes; returns 0, a crypt/argon2 scheme
 * number (> 0, handled by the libraries), CULEX_PW_EFORMAT or CULEX_PW_ECOST. */
static int parse_encoded(const char *e, unsigned flags, parsed *p)
{
    if (has_prefix(e, "$7$"))
        return parse_mosq7(e + 3, p);
    if (has_prefix(e, "$6$"))
        return parse_dollar6(e + 3, p);
    if (has_prefix(e, "PBKDF2$"))
        return parse_goauth(e + 7, flags, p);
    argon2_type t;
    int s = shape_argon2(e, &t);
    if (s != CULEX_PW_EFORMAT)
        return s; /* a scheme, or CULEX_PW_ECOST */
    return shape_crypt(e);
}

/* ---- verification ---- */

static int verify_digest(const parsed *p, const char *pw, size_t len)
{
    unsigned char out[MAX_KEY];
    unsigned int outlen = 0;
    int ok;
    if (len > INT_MAX)
        return 0;
    switch (p->scheme) {
    case CULEX_PW_SHA512: {
        EVP_MD_CTX *ctx = EVP_MD_CTX_new();
        ok = ctx && EVP_DigestInit_ex(ctx, EVP_sha512(), NULL) == 1 &&
             EVP_DigestUpdate(ctx, pw, len) == 1 &&
             EVP_DigestUpdate(ctx, p->salt, p->salt_len) == 1 &&
             EVP_DigestFinal_ex(ctx, out, &outlen) == 1;
        EVP_MD_CTX_free(ctx);
        break;
    }
    case CULEX_PW_SHA512_PBKDF2:
    case CULEX_PW_PBKDF2_SHA512:
    case CULEX_PW_PBKDF2_SHA256: {
        const EVP_MD *md = p->scheme == CULEX_PW_PBKDF2_SHA256 ? EVP_sha256() : EVP_sha512();
        ok = PKCS5_PBKDF2_HMAC(pw, (int)len, p->salt, (int)p->salt_len, (int)p->iterations, md,
                               (int)p->hash_len, out) == 1;
        outlen = (unsigned)p->hash_len;
        break;
    }
    default:
        return CULEX_PW_EFORMAT;
    }
    if (!ok)
        return CULEX_PW_ECRYPTO;
    int match = outlen == p->hash_len && CRYPTO_memcmp(out, p->hash, p->hash_len) == 0;
    OPENSSL_cleanse(out, sizeof out);
    return match;
}

/* crypt(3) needs a NUL-terminated phrase; a password holding a NUL byte can never match. */
static int verify_crypt(const char *encoded, const char *pw, size_t len)
{
    if (len >= CRYPT_MAX_PASSPHRASE_SIZE || memchr(pw, '\0', len))
        return 0;
    char phrase[CRYPT_MAX_PASSPHRASE_SIZE];
    memcpy(phrase, pw, len);
    phrase[len] = '\0';
    struct crypt_data *cd = calloc(1, sizeof *cd);
    int rc;
    if (!cd) {
        rc = CULEX_PW_ECRYPTO;
    } else {
        const char *r = crypt_rn(phrase, encoded, cd, (int)sizeof *cd);
        if (!r || r[0] == '*') {
            rc = CULEX_PW_EFORMAT;
        } else {
            size_t el = strlen(encoded);
            rc = strlen(r) == el && CRYPTO_memcmp(r, encoded, el) == 0;
        }
        OPENSSL_cleanse(cd, sizeof *cd);
        free(cd);
    }
    OPENSSL_cleanse(phrase, sizeof phrase);
    return rc;
}

static int verify_argon2(const char *encoded, const char *pw, size_t len)
{
    argon2_type t;
    int shape = shape_argon2(encoded, &t);
    if (shape < 0)
        return shape;
    if (len > UINT32_MAX)
        return 0;
    int r = argon2_verify(encoded, pw, len, t); /* compares in constant time */
    if (r == ARGON2_OK)
        return 1;
    if (r == ARGON2_VERIFY_MISMATCH)
        return 0;
    if (r == ARGON2_MEMORY_ALLOCATION_ERROR || r == ARGON2_THREAD_FAIL)
        return CULEX_PW_ECRYPTO;
    return CULEX_PW_EFORMAT;
}

int culex_pw_verify_ex(const char *encoded, const char *password, size_t password_len,
                       unsigned flags)
{
    if (!encoded || (!password && password_len))
        return CULEX_PW_EINVAL;
    if (!password)
        password = "";
    parsed *p = malloc(sizeof *p);
    if (!p)
        return CULEX_PW_ECRYPTO;
    int rc = parse_encoded(encoded, flags, p);
    if (rc == 0)
        rc = verify_digest(p, password, password_len);
    else if (rc == CULEX_PW_ARGON2ID || rc == CULEX_PW_ARGON2I || rc == CULEX_PW_ARGON2D)
        rc = verify_argon2(encoded, password, password_len);
    else if (rc > 0)
        rc = verify_crypt(encoded, password, password_len);
    OPENSSL_cleanse(p, sizeof *p);
    free(p);
    return rc;
}

int culex_pw_verify(const char *encoded, const char *password, size_t password_len)
{
    return culex_pw_verify_ex(encoded, password, password_len, 0);
}

int culex_pw_identify(const char *encoded)
{
    if (!encoded)
        return CULEX_PW_EFORMAT;
    parsed *p = malloc(sizeof *p);
    if (!p)
        return CULEX_PW_EFORMAT;
    int rc = parse_encoded(encoded, 0, p);
    if (rc == 0)
        rc = p->scheme;
    free(p);
    return rc;
}

/* ---- creation ---- */

static int hash_mosq(culex_pw_scheme scheme, const char *pw, size_t len, unsigned iterations,
                     char *out, size_t outlen)
{
    parsed p;
    char salt64[64], hash64[128];
    int n;
    memset(&p, 0, sizeof p);
    p.scheme = (int)scheme;
    switch (scheme) {
    case CULEX_PW_SHA512:
        p.salt_len = CULEX_PW_MOSQ_SALT_LEN;
        p.hash_len = MOSQ_HASH_LEN;
        break;
    case CULEX_PW_SHA512_PBKDF2:
        p.iterations = iterations ? iterations : CULEX_PW_PBKDF2_DEFAULT_ITERATIONS;
        p.salt_len = CULEX_PW_MOSQ_SALT_LEN;
        p.hash_len = MOSQ_HASH_LEN;
        break;
    case CULEX_PW_PBKDF2_SHA256:
    case CULEX_PW_PBKDF2_SHA512:
        p.iterations = iterations ? iterations : CULEX_PW_GOAUTH_DEFAULT_ITERATIONS;
        p.salt_len = GOAUTH_SALT_LEN;
        p.hash_len = scheme == CULEX_PW_PBKDF2_SHA256 ? 32 : 64;
        break;
    default:
        return CULEX_PW_EINVAL;
    }
    if (p.iterations > INT_MAX || len > INT_MAX)
        return CULEX_PW_EINVAL;
    if (RAND_bytes(p.salt, (int)p.salt_len) != 1)
        return CULEX_PW_ECRYPTO;

    /* Compute the digest exactly as verification does, into p.hash. */
    unsigned char digest[MAX_KEY];
    unsigned int dlen = 0;
    int ok;
    if (scheme == CULEX_PW_SHA512) {
        EVP_MD_CTX *ctx = EVP_MD_CTX_new();
        ok = ctx && EVP_DigestInit_ex(ctx, EVP_sha512(), NULL) == 1 &&
             EVP_DigestUpdate(ctx, pw, len) == 1 &&
             EVP_DigestUpdate(ctx, p.salt, p.salt_len) == 1 &&
             EVP_DigestFinal_ex(ctx, digest, &dlen) == 1;
        EVP_MD_CTX_free(ctx);
    } else {
        const EVP_MD *md = scheme == CULEX_PW_PBKDF2_SHA256 ? EVP_sha256() : EVP_sha512();
        ok = PKCS5_PBKDF2_HMAC(pw, (int)len, p.salt, (int)p.salt_len, (int)p.iterations, md,
                               (int)p.hash_len, digest) == 1;
        dlen = (unsigned)p.hash_len;
    }
    if (!ok || dlen != p.hash_len)
        return CULEX_PW_ECRYPTO;
    if (!b64_encode(p.salt, p.salt_len, salt64, sizeof salt64) ||
        !b64_encode(digest, dlen, hash64, sizeof hash64))
        return CULEX_PW_ECRYPTO;
    OPENSSL_cleanse(digest, sizeof digest);

    switch (scheme) {
    case CULEX_PW_SHA512:
        n = snprintf(out, outlen, "$6$%s$%s", salt64, hash64);
        break;
    case CULEX_PW_SHA512_PBKDF2:
        n = snprintf(out, outlen, "$7$%u$%s$%s", p.iterations, salt64, hash64);
        break;
    default:
        n = snprintf(out, outlen, "PBKDF2$%s$%u$%s$%s",
                     scheme == CULEX_PW_PBKDF2_SHA256 ? "sha256" : "sha512", p.iterations,
                     salt64, hash64);
        break;
    }
    if (n < 0 || (size_t)n >= outlen) {
        if (outlen)
            out[0] = '\0';
        return CULEX_PW_ENOSPC;
    }
    return 0;
}

static int hash_argon2id(const char *pw, size_t len, unsigned iterations, char *out,
                         size_t outlen)
{
    unsigned char salt[ARGON2_SALT_LEN];
    uint32_t t = iterations ? iterations : CULEX_PW_ARGON2_T;
    if (len > UINT32_MAX)
        return CULEX_PW_EINVAL;
    if (argon2_encodedlen(t, CULEX_PW_ARGON2_M_KIB, CULEX_PW_ARGON2_P, sizeof salt,
                          ARGON2_HASH_LEN, Argon2_id) > outlen)
        return CULEX_PW_ENOSPC;
    if (RAND_bytes(salt, sizeof salt) != 1)
        return CULEX_PW_ECRYPTO;
    int r = argon2id_hash_encoded(t, CULEX_PW_ARGON2_M_KIB, CULEX_PW_ARGON2_P, pw, len, salt,
                                  sizeof salt, ARGON2_HASH_LEN, out, outlen);
    if (r == ARGON2_ENCODING_FAIL)
        return CULEX_PW_ENOSPC;
    if (r == ARGON2_TIME_TOO_LARGE || r == ARGON2_TIME_TOO_SMALL)
        return CULEX_PW_EINVAL;
    return r == ARGON2_OK ? 0 : CULEX_PW_ECRYPTO;
}

static int hash_crypt(culex_pw_scheme scheme, const char *pw, size_t len, unsigned iterations,
                      char *out, size_t outlen)
{
    const char *prefix;
    unsigned long count = iterations;
    switch (scheme) {
    case CULEX_PW_BCRYPT:
        prefix = "$2b$";
        if (!count)
            count = CULEX_PW_BCRYPT_DEFAULT_COST;
        break;
    case CULEX_PW_SHA512_CRYPT:
        prefix = "$6$";
        break;
    case CULEX_PW_SHA256_CRYPT:
        prefix = "$5$";
        break;
    case CULEX_PW_YESCRYPT:
        prefix = "$y$";
        break;
    default:
        return CULEX_PW_EUNSUPPORTED;
    }
    if (len >= CRYPT_MAX_PASSPHRASE_SIZE || memchr(pw, '\0', len))
        return CULEX_PW_EINVAL;
    char setting[CRYPT_GENSALT_OUTPUT_SIZE];
    /* NULL random bytes: libxcrypt takes them from the kernel. */
    if (!crypt_gensalt_rn(prefix, count, NULL, 0, setting, (int)sizeof setting))
        return errno == ENOSYS ? CULEX_PW_EUNSUPPORTED : CULEX_PW_EINVAL;
    char phrase[CRYPT_MAX_PASSPHRASE_SIZE];
    memcpy(phrase, pw, len);
    phrase[len] = '\0';
    struct crypt_data *cd = calloc(1, sizeof *cd);
    int rc;
    if (!cd) {
        rc = CULEX_PW_ECRYPTO;
    } else {
        const char *r = crypt_rn(phrase, setting, cd, (int)sizeof *cd);
        if (!r || r[0] == '*')
            rc = CULEX_PW_ECRYPTO;
        else if (strlen(r) >= outlen)
            rc = CULEX_PW_ENOSPC;
        else {
            memcpy(out, r, strlen(r) + 1);
            rc = 0;
        }
        OPENSSL_cleanse(cd, sizeof *cd);
        free(cd);
    }
    OPENSSL_cleanse(phrase, sizeof phrase);
    return rc;
}

int culex_pw_hash(culex_pw_scheme scheme, const char *password, size_t len, unsigned iterations,
                  char *out, size_t outlen)
{
    if (!out || !outlen || (!password && len))
        return CULEX_PW_EINVAL;
    out[0] = '\0';
    if (!password)
        password = "";
    switch (scheme) {
    case CULEX_PW_SHA512:
    case CULEX_PW_SHA512_PBKDF2:
    case CULEX_PW_PBKDF2_SHA256:
    case CULEX_PW_PBKDF2_SHA512:
        return hash_mosq(scheme, password, len, iterations, out, outlen);
    case CULEX_PW_ARGON2ID:
        return hash_argon2id(password, len, iterations, out, outlen);
    case CULEX_PW_BCRYPT:
    case CULEX_PW_SHA512_CRYPT:
    case CULEX_PW_SHA256_CRYPT:
    case CULEX_PW_YESCRYPT:
        return hash_crypt(scheme, password, len, iterations, out, outlen);
    default:
        return CULEX_PW_EUNSUPPORTED;
    }
}

const char *culex_pw_strerror(int err)
{
    switch (err) {
    case 0:
        return "success";
    case CULEX_PW_EFORMAT:
        return "unknown or malformed password hash";
    case CULEX_PW_EINVAL:
        return "invalid argument";
    case CULEX_PW_ENOSPC:
        return "output buffer too small";
    case CULEX_PW_ECRYPTO:
        return "crypto library failure";
    case CULEX_PW_EUNSUPPORTED:
        return "hash scheme not supported for creation";
    case CULEX_PW_ECOST:
        return "password hash asks for more work than culex allows";
    default:
        return "unknown error";
    }
}
