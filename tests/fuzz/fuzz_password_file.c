/* fuzz_password_file.c: the password file and the password hash front end.
 *
 * Input: a password file (`username:hash` lines, mosquitto_passwd's format).
 *
 * Two parsers read it:
 *  - the password file parser, pwtab_load() in plugins/auth_file/auth_file.c. It is static,
 *    so this file includes auth_file.c (the unit tests' rule: a test may #include the .c
 *    under test to reach statics) and calls it with a stand-in host table whose log()
 *    formats its arguments and drops the line. The input is written to a file in a private
 *    directory (made once, removed at exit) because pwtab_load takes a path. The table it
 *    builds must hold one entry per user, sorted, each found again by pwtab_find(), each
 *    with a hash culex_pw_identify() knows.
 *  - the SDK's hash front end (plugin-api/password.c): culex_pw_identify() and
 *    culex_pw_verify_ex() (with and without CULEX_PW_RAW_SALT) on the hash field of the
 *    first lines as written, accepted by the file parser or not, with the user field as the
 *    password. culex_pw_hash() of that password with the cheap schemes must verify as 1
 *    and a changed password as 0.
 *
 * Cost: a stored hash names its own work factor (iterations, bcrypt cost, argon2 memory),
 * and the SDK honours it by design: the file's owner chooses it. Left alone, the fuzzer
 * would spend its time in PBKDF2 with 2^31 iterations. So a hash is only verified when its
 * work factor is small (cheap_enough()); larger ones still go through culex_pw_identify,
 * which parses the same text without hashing. yescrypt is never verified: its parameters
 * are libxcrypt's business, and the SDK code in front of it is the one crypt(3) path that
 * sha-crypt and bcrypt already reach. */
#include <stdarg.h>
#include <stdbool.h>
#include <unistd.h>

#include "../../plugins/auth_file/auth_file.c"
#include "fuzz.h"

#define MAX_PBKDF2_ITER 64ULL
#define MAX_CRYPT_ROUNDS 1000ULL /* sha-crypt's minimum: any lower value means 1000 */
#define MAX_ARGON2_M_KIB 64ULL
#define MAX_ARGON2_T 4ULL
#define MAX_RAW_LINES 8  /* lines whose hash field is verified as written */
#define MAX_TABLE_VERIFY 4

static char dir_path[400];
static char file_path[420];

static void remove_scratch(void)
{
    unlink(file_path);
    rmdir(dir_path);
}

static void host_log(culex_plugin *self, int level, const char *fmt, ...)
{
    char line[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    (void)self;
    (void)level;
}

static const culex_host_api host = {
    .abi_major = CULEX_ABI_MAJOR,
    .abi_minor = CULEX_ABI_MINOR,
    .size = sizeof(culex_host_api),
    .log = host_log,
};

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    fz_scratch_dir(dir_path, sizeof dir_path, "passwd");
    snprintf(file_path, sizeof file_path, "%s/passwd", dir_path);
    atexit(remove_scratch);
    return 0;
}

/* ---- cost gate ---------------------------------------------------------------------------- */

/* The decimal number at s: returns the digit count (value saturated in *v). */
static size_t read_num(const char *s, unsigned long long *v)
{
    size_t n = 0;
    *v = 0;
    while (s[n] >= '0' && s[n] <= '9') {
        if (*v < 1000000000000ULL)
            *v = *v * 10 + (unsigned)(s[n] - '0');
        n++;
    }
    return n;
}

/* An iteration field as password.c's parse_count reads it ("digits$", 1..10 digits): too
 * large only when it would be accepted and is over max. */
static bool count_small(const char *s, unsigned long long max)
{
    unsigned long long v;
    size_t n = read_num(s, &v);
    return !(n >= 1 && n <= 10 && s[n] == '$' && v > max);
}

/* "$5$"/"$6$" sha-crypt: cheap only with an explicit `rounds=N$`, N small (libxcrypt's
 * default is 5000, and a `rounds=` it cannot read is taken as salt with that default). */
static bool crypt_rounds_small(const char *rest)
{
    unsigned long long v;
    if (strncmp(rest, "rounds=", 7) != 0)
        return false;
    size_t n = read_num(rest + 7, &v);
    return n >= 1 && rest[7 + n] == '$' && v <= MAX_CRYPT_ROUNDS;
}

/* argon2: only the exact `[v=N$]m=M,t=T,p=1$` form with small M and T. */
static bool argon2_small(const char *e)
{
    const char *p = strchr(e + 1, '$');
    if (!p)
        return false;
    p++;
    if (strncmp(p, "v=", 2) == 0) {
        p = strchr(p, '$');
        if (!p)
            return false;
        p++;
    }
    unsigned long long m, t, par;
    size_t n;
    if (strncmp(p, "m=", 2) != 0 || !(n = read_num(p + 2, &m)))
        return false;
    p += 2 + n;
    if (strncmp(p, ",t=", 3) != 0 || !(n = read_num(p + 3, &t)))
        return false;
    p += 3 + n;
    if (strncmp(p, ",p=", 3) != 0 || !(n = read_num(p + 3, &par)))
        return false;
    p += 3 + n;
    return *p == '$' && m <= MAX_ARGON2_M_KIB && t <= MAX_ARGON2_T && par == 1;
}

static bool cheap_enough(const char *e)
{
    if (strncmp(e, "$7$", 3) == 0)
        return count_small(e + 3, MAX_PBKDF2_ITER);
    if (strncmp(e, "PBKDF2$", 7) == 0) {
        /* The iteration field follows the algorithm field; with CULEX_PW_RAW_SALT the
         * salt need not be base64, so identify() is no guide here. */
        const char *alg_end = strchr(e + 7, '$');
        return !alg_end || count_small(alg_end + 1, MAX_PBKDF2_ITER);
    }
    switch (culex_pw_identify(e)) {
    case CULEX_PW_SHA512_CRYPT:
    case CULEX_PW_SHA256_CRYPT: return crypt_rounds_small(e + 3);
    case CULEX_PW_BCRYPT: return e[4] == '0' && e[5] == '4';
    case CULEX_PW_YESCRYPT: return false;
    case CULEX_PW_ARGON2ID:
    case CULEX_PW_ARGON2I:
    case CULEX_PW_ARGON2D: return argon2_small(e);
    default: return true; /* Mosquitto $6$, or refused by the parser before any hashing */
    }
}

/* ---- checks ------------------------------------------------------------------------------- */

static void check_verify_rc(int rc)
{
    FUZZ_CHECK(rc == 0 || rc == 1 || rc == CULEX_PW_EFORMAT || rc == CULEX_PW_EINVAL ||
               rc == CULEX_PW_ECRYPTO || rc == CULEX_PW_ECOST);
    FUZZ_CHECK(culex_pw_strerror(rc) != NULL);
}

/* One hash field as written in the file, with pw as the password. */
static void check_front_end(const char *hash, const char *pw, size_t pwlen)
{
    int id = culex_pw_identify(hash);
    FUZZ_CHECK(id == CULEX_PW_EFORMAT || id == CULEX_PW_ECOST ||
               (id >= 0 && id <= CULEX_PW_ARGON2D));
    if (!cheap_enough(hash))
        return;
    int rc = culex_pw_verify_ex(hash, pw, pwlen, 0);
    check_verify_rc(rc);
    if (id == CULEX_PW_EFORMAT || id == CULEX_PW_ECOST)
        FUZZ_CHECK(rc == id); /* identify and verify parse alike */
    check_verify_rc(culex_pw_verify_ex(hash, pw, pwlen, CULEX_PW_RAW_SALT));
}

/* Hash creation and verification agree, for any password bytes (NUL included). */
static void check_hash_roundtrip(const char *pw, size_t len)
{
    static const culex_pw_scheme schemes[] = {CULEX_PW_SHA512, CULEX_PW_SHA512_PBKDF2,
                                              CULEX_PW_PBKDF2_SHA256};
    char other[80];
    size_t olen = len < sizeof other ? len : sizeof other;
    memcpy(other, pw, olen);
    if (olen)
        other[olen - 1] ^= 0x01;
    else
        other[olen++] = 'x';
    for (size_t i = 0; i < sizeof schemes / sizeof schemes[0]; i++) {
        char enc[CULEX_PW_ENCODED_MAX];
        FUZZ_CHECK(culex_pw_hash(schemes[i], pw, len, 1, enc, sizeof enc) == 0);
        FUZZ_CHECK(culex_pw_identify(enc) == (int)schemes[i]);
        FUZZ_CHECK(culex_pw_verify(enc, pw, len) == 1);
        FUZZ_CHECK(culex_pw_verify(enc, other, olen) == 0);
    }
}

static void write_input(const uint8_t *data, size_t size)
{
    FILE *f = fopen(file_path, "wb");
    FUZZ_CHECK(f != NULL);
    FUZZ_CHECK(fwrite(data, 1, size, f) == size);
    FUZZ_CHECK(fclose(f) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    write_input(data, size);
    size_t lines = 0;
    for (size_t i = 0; i < size; i++)
        lines += data[i] == '\n';
    if (size && data[size - 1] != '\n')
        lines++;

    /* The file parser. */
    af_state st = {.host = &host, .self = NULL};
    char err[AF_ERRLEN];
    err[0] = '\0';
    af_pwtab *t = pwtab_load(&st, file_path, err, sizeof err);
    if (!t) {
        FUZZ_CHECK(err[0] != '\0' && memchr(err, '\0', sizeof err) != NULL);
    } else {
        for (size_t i = 0; i < t->n; i++) {
            const af_pwent *e = &t->ents[i];
            FUZZ_CHECK(e->user[0] != '\0' && e->hash[0] != '\0');
            FUZZ_CHECK(!isspace((unsigned char)e->user[0]) && !strchr(e->user, ':'));
            FUZZ_CHECK(!isspace((unsigned char)e->hash[strlen(e->hash) - 1]));
            FUZZ_CHECK(e->line >= 1 && e->line <= lines);
            FUZZ_CHECK(culex_pw_identify(e->hash) >= 0);
            FUZZ_CHECK(i == 0 || strcmp(t->ents[i - 1].user, e->user) < 0);
            FUZZ_CHECK(pwtab_find(t, e->user) == e);
            if (i < MAX_TABLE_VERIFY && cheap_enough(e->hash))
                check_verify_rc(culex_pw_verify(e->hash, e->user, strlen(e->user)));
        }
        FUZZ_CHECK(pwtab_find(t, "") == NULL);
        ref_put(&t->ref);
    }

    /* The hash front end on the first lines as written. */
    size_t off = 0;
    for (int n = 0; n < MAX_RAW_LINES && off < size; n++) {
        const uint8_t *nl = memchr(data + off, '\n', size - off);
        size_t end = nl ? (size_t)(nl - data) : size;
        const uint8_t *line = data + off;
        size_t len = end - off;
        const uint8_t *colon = memchr(line, ':', len);
        size_t ulen = colon ? (size_t)(colon - line) : 0;
        const uint8_t *h = colon ? colon + 1 : line;
        size_t hlen = len - (size_t)(h - line);
        while (hlen && isspace(h[hlen - 1]))
            hlen--;
        char *hash = malloc(hlen + 1);
        FUZZ_CHECK(hash != NULL);
        memcpy(hash, h, hlen);
        hash[hlen] = '\0'; /* a NUL inside ends the C string early, as a C caller would */
        check_front_end(hash, (const char *)line, ulen);
        if (n == 0)
            check_hash_roundtrip((const char *)line, ulen < 64 ? ulen : 64);
        free(hash);
        off = end + 1;
    }
    return 0;
}
