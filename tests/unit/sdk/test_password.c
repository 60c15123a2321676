/* test_password.c — culex/sdk/password.h: known vectors for every format, malformed
 * encodings, hash-then-verify round trips.
 *
 * Where the vectors come from (generated once, pasted here):
 * - Mosquitto `$6$`/`$7$` and the `PBKDF2$` form: Python 3's hashlib.sha512 and
 *   hashlib.pbkdf2_hmac with fixed salts, base64.b64encode for the fields.
 * - MOSQ_PASSWD_*: written by Debian 12's mosquitto_passwd 2.0.11.
 * - sha-crypt: the test vectors of Ulrich Drepper's SHA-crypt specification
 *   ("Hello world!", "saltstring"); bcrypt: the OpenBSD/John-the-Ripper "U*U" vector; the
 *   other crypt strings from Python's crypt module (libxcrypt).
 * - argon2: the `argon2` command-line tool (Debian package argon2), e.g.
 *   `echo -n "correct horse" | argon2 saltsaltsalt1234 -id -m 10 -t 2 -p 1 -l 32 -e`, and
 *   one string from the argon2-cffi documentation. */
#include <culex/sdk/password.h>

#include <time.h>

#include "cx_test.h"

typedef struct vec {
    const char *encoded;
    const char *password;
    size_t len; /* 0: strlen(password) */
    int scheme;
} vec;

static const vec vectors[] = {
    /* Mosquitto 1.x $6$: sha512("secret" || "0123456789ab") */
    {"$6$MDEyMzQ1Njc4OWFi$qEXipeLbgxRlwd06QHfY5WITkUZg0jLg9SZbXzq3ifXjfj+v3GbJGrSfC5PAg3UNCS+"
     "UFfbhUIZX4bmIAs330w==",
     "secret", 0, CULEX_PW_SHA512},
    /* Mosquitto $7$, 101 iterations, 12-byte salt "0123456789ab" */
    {"$7$101$MDEyMzQ1Njc4OWFi$EO/lLlkeUgIiBaS8G8UK0ZMP1u508TA7Tl+AdJ1cEsmlbGyEPAERErpfq84j1kep"
     "ISs0UzmcdL4ucgZ2uodxfQ==",
     "secret", 0, CULEX_PW_SHA512_PBKDF2},
    /* Mosquitto 2.1 shape: 64-byte salt 00..3f, 1000 iterations, UTF-8 password with ':' */
    {"$7$1000$AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8gISIjJCUmJygpKissLS4vMDEyMzQ1Njc4OTo7"
     "PD0+Pw==$1gWnp5pOj830ehWTXFdaZVq1NKrEjJRTCnYXsg/ujsLj4EWkpSW/7b4x3iy73VwQpfu0+"
     "aUMhcPyGVNFwKI+bg==",
     "pa:ss w\xc3\xb6rd", 0, CULEX_PW_SHA512_PBKDF2},
    /* password "a\0b" (3 bytes) */
    {"$7$10$MDEyMzQ1Njc4OWFi$Vmg/fES+zHt/7ffAU1nBdeIWA7IIzN+uxqO8EGIjRVSfDohV3XCWK6GXFhDCeUve"
     "qVtV87NMa6H8NK4MOpcpcQ==",
     "a\0b", 3, CULEX_PW_SHA512_PBKDF2},
    /* go-auth form */
    {"PBKDF2$sha256$901$c2l4dGVlbiBieXRlIHNsdA==$A6P5Ey/opz7X7BS9reVgW8AKmABQLaMqVCmlhHvQXPg=",
     "password", 0, CULEX_PW_PBKDF2_SHA256},
    {"PBKDF2$sha512$100000$c2l4dGVlbiBieXRlIHNsdA==$JR4ER7bU4I4+0uWxo1GmKFcA5vKyildMabQW0poDR"
     "oQBD3CjLIAIoHa6Cb2Uctgm7ehm0dHFAQq4Xt3yK6KHCA==",
     "p4ss", 0, CULEX_PW_PBKDF2_SHA512},
    /* sha-crypt specification vectors */
    {"$6$saltstring$svn8UoSVapNtMuq1ukKS4tPQd8iKwSMHWjl/O817G3uBnIFNjnQJuesI68u4OTLiBFdcbYEdF"
     "CoEOfaS35inz1",
     "Hello world!", 0, CULEX_PW_SHA512_CRYPT},
    {"$6$rounds=10000$saltstringsaltst$OW1/O6BYHV6BcXZu8QVeXbDWra3Oeqh0sbHbbMCVNSnCM/UrjmM0Dp8"
     "vOuZeHBy/YTBmSK6H9qs/y3RnOaw5v.",
     "Hello world!", 0, CULEX_PW_SHA512_CRYPT},
    {"$5$saltstring$5B8vYYiY.CVt1RlTTf8KbXBH3hsxY/GNooZaBBGWEc5", "Hello world!", 0,
     CULEX_PW_SHA256_CRYPT},
    {"$5$rounds=10000$saltstringsaltst$3xv.VbSHBb41AL9AvLeujZkZRBAwqFMz2.opqey6IcA",
     "Hello world!", 0, CULEX_PW_SHA256_CRYPT},
    /* bcrypt */
    {"$2a$05$CCCCCCCCCCCCCCCCCCCCC.E5YPO9kmyuRGyh0XouQYb4YMJKvyOeW", "U*U", 0, CULEX_PW_BCRYPT},
    {"$2b$04$abcdefghijklmnopqrstuujydOTSfIH/d5oUHpsygqV5X9xJLQc6e", "correct horse", 0,
     CULEX_PW_BCRYPT},
    {"$2y$04$abcdefghijklmnopqrstuujydOTSfIH/d5oUHpsygqV5X9xJLQc6e", "correct horse", 0,
     CULEX_PW_BCRYPT},
    /* yescrypt */
    {"$y$j9T$F5Jx5fExrKuPp53xLKQ..1$GmcwIgvdUC9qLWcKCi6gklUa1dM3ziD43YxYNURLKy0", "secret", 0,
     CULEX_PW_YESCRYPT},
    /* argon2 */
    {"$argon2id$v=19$m=1024,t=2,p=1$c2FsdHNhbHRzYWx0MTIzNA$+lmmYt2z4ZMrLKIaiYmx1n/"
     "yv76miDs89Dh8Mz4LByQ",
     "correct horse", 0, CULEX_PW_ARGON2ID},
    {"$argon2id$v=19$m=47104,t=1,p=1$bW9zcXVpdHRvc2FsdDEyMw$gC9uI+G6TC5V0EVBaKd44rvs35G+"
     "DonPEgBMCC1tHSg",
     "secret", 0, CULEX_PW_ARGON2ID},
    /* from the argon2-cffi documentation (an independent implementation's output) */
    {"$argon2id$v=19$m=65536,t=3,p=4$MIIRqgvgQbgj220jfp0MPA$YfwJSVjtjSU0zzV/P3S9nnQ/"
     "USre2wvJMjfCIjrTQbg",
     "correct horse battery staple", 0, CULEX_PW_ARGON2ID},
    {"$argon2i$v=19$m=256,t=3,p=2$MDEyMzQ1Njc4OWFiY2RlZg$CPUa7iOzu7v0RWLJbbrq9hV8t1HhP39q",
     "p\xc3\xa4ssw\xc3\xb6rd", 0, CULEX_PW_ARGON2I},
    {"$argon2d$v=19$m=256,t=1,p=1$U09NRVNBTFRTT01FU0FMVA$a9tbfNaEhOz+"
     "qWQ6Ls3zbAMAwgRyxEjn00sCscJdTm0",
     "hunter2", 0, CULEX_PW_ARGON2D},
    /* Debian 12 mosquitto_passwd 2.0.11 output */
    {"$7$101$OWH0HSEgtUCyFx+8$x7tgKyH3VsZtu9aLwfprNoS/yhL8xsWGCowc3d7A/uos7jHsVp+IKbw2cM7XW0jc"
     "6t0CDh5q3bcphHpjDY9zUQ==",
     "secret", 0, CULEX_PW_SHA512_PBKDF2},
    {"$7$5000$DM1sHei3ZRwn7Woa$C06EpcJ1MXoJ38o5pdPgueCpdCrgXKPDsK46OKOMIMILL9UBw+yVuwLPLGwtUVaJ"
     "yBqFocIAQag86PH64MSHhA==",
     "pw", 0, CULEX_PW_SHA512_PBKDF2},
    {"$6$bQ0dl7fZsjqjK3At$/gCXl8HK5Qt/Y5youLCoEo2aViFeWltarRj2OcnA3UwIuje/o5jbL4XN4s2tIYhb5wNR"
     "yyKHYrRhYuFoUK4eXw==",
     "x", 0, CULEX_PW_SHA512},
};

#define NVEC (sizeof vectors / sizeof vectors[0])

static size_t vlen(const vec *v)
{
    return v->len ? v->len : strlen(v->password);
}

static void test_known_vectors(void)
{
    for (size_t i = 0; i < NVEC; i++) {
        const vec *v = &vectors[i];
        int r = culex_pw_verify(v->encoded, v->password, vlen(v));
        if (r != 1)
            CX_FAIL_("vector %zu (%s): verify = %d", i, v->encoded, r);
    }
}

static void test_wrong_passwords(void)
{
    for (size_t i = 0; i < NVEC; i++) {
        const vec *v = &vectors[i];
        char wrong[128];
        size_t len = vlen(v);
        memcpy(wrong, v->password, len);
        wrong[len - 1] ^= 1;
        CHECK_INT_EQ(culex_pw_verify(v->encoded, wrong, len), 0);
        CHECK_INT_EQ(culex_pw_verify(v->encoded, v->password, len - 1), 0);
        CHECK_INT_EQ(culex_pw_verify(v->encoded, "", 0), 0);
    }
}

static void test_identify(void)
{
    for (size_t i = 0; i < NVEC; i++)
        CHECK_INT_EQ(culex_pw_identify(vectors[i].encoded), vectors[i].scheme);
    CHECK_INT_EQ(culex_pw_identify("secret"), CULEX_PW_EFORMAT);
    CHECK_INT_EQ(culex_pw_identify(""), CULEX_PW_EFORMAT);
}

/* Mosquitto's $6$ and sha512-crypt's $6$ are told apart by field shape. */
static void test_dollar6_disambiguation(void)
{
    CHECK_INT_EQ(culex_pw_identify(vectors[0].encoded), CULEX_PW_SHA512);
    CHECK_INT_EQ(culex_pw_identify(vectors[6].encoded), CULEX_PW_SHA512_CRYPT);
    CHECK_INT_EQ(culex_pw_identify(vectors[7].encoded), CULEX_PW_SHA512_CRYPT);
    /* 88 characters but not ending in "==": neither */
    CHECK_INT_EQ(culex_pw_identify("$6$MDEyMzQ1Njc4OWFi$qEXipeLbgxRlwd06QHfY5WITkUZg0jLg9SZbXzq3"
                                   "ifXjfj+v3GbJGrSfC5PAg3UNCS+UFfbhUIZX4bmIAs330wAA"),
                 CULEX_PW_EFORMAT);
}

/* A NUL byte counts in PBKDF2 and never matches a crypt hash. */
static void test_nul_bytes(void)
{
    CHECK_INT_EQ(culex_pw_verify(vectors[3].encoded, "a", 1), 0);
    CHECK_INT_EQ(culex_pw_verify(vectors[3].encoded, "a\0b", 3), 1);
    CHECK_INT_EQ(culex_pw_verify(vectors[11].encoded, "correct horse\0x", 15), 0);
    CHECK_INT_EQ(culex_pw_verify(vectors[6].encoded, "Hello world!\0", 13), 0);
}

static void test_raw_salt(void)
{
    const char *e = "PBKDF2$sha512$1000$aTextSaltXYZ$XBUMZL/E9m9sU2kmedcgQ1p6zksDPYWzdjHL3D56VBEd"
                    "Q8T0lhjzWAI9uj3Q+4nZ4W5CqCwInzVkipst59dkGQ==";
    CHECK_INT_EQ(culex_pw_verify_ex(e, "pw", 2, CULEX_PW_RAW_SALT), 1);
    CHECK_INT_EQ(culex_pw_verify_ex(e, "px", 2, CULEX_PW_RAW_SALT), 0);
    /* base64-decoding the same salt gives other bytes: no match, but well-formed */
    CHECK_INT_EQ(culex_pw_verify(e, "pw", 2), 0);
}

static void test_malformed(void)
{
    static const char *const bad[] = {
        "",
        "secret",
        "$",
        "$7$",
        "$7$101$",
        "$7$101$MDEyMzQ1Njc4OWFi",
        "$7$0$MDEyMzQ1Njc4OWFi$EO/lLlkeUgIiBaS8G8UK0ZMP1u508TA7Tl+AdJ1cEsmlbGyEPAERErpfq84j1kepIS"
        "s0UzmcdL4ucgZ2uodxfQ==",
        "$7$-1$MDEyMzQ1Njc4OWFi$EO/lLlkeUgIiBaS8G8UK0ZMP1u508TA7Tl+AdJ1cEsmlbGyEPAERErpfq84j1kepI"
        "Ss0UzmcdL4ucgZ2uodxfQ==",
        "$7$99999999999$MDEyMzQ1Njc4OWFi$EO/lLlkeUgIiBaS8G8UK0ZMP1u508TA7Tl+AdJ1cEsmlbGyEPAERErpf"
        "q84j1kepISs0UzmcdL4ucgZ2uodxfQ==",
        "$7$1x1$MDEyMzQ1Njc4OWFi$EO/lLlkeUgIiBaS8G8UK0ZMP1u508TA7Tl+AdJ1cEsmlbGyEPAERErpfq84j1kep"
        "ISs0UzmcdL4ucgZ2uodxfQ==",
        "$7$101$!!!!$EO/lLlkeUgIiBaS8G8UK0ZMP1u508TA7Tl+AdJ1cEsmlbGyEPAERErpfq84j1kepISs0UzmcdL4uc"
        "gZ2uodxfQ==",
        "$7$101$MDEyMzQ1Njc4OWFi$EO/lLlkeUgIiBaS8G8UK0ZMP1u508TA7Tl+AdJ1c",    /* short hash */
        "$7$101$MDEyMzQ1Njc4OWFi$EO/lLlkeUgIiBaS8G8UK0ZMP1u508TA7Tl+AdJ1cEsmlbGyEPAERErpfq84j1kep"
        "ISs0UzmcdL4ucgZ2uodxfQ==$extra",
        "$6$MDEyMzQ1Njc4OWFi$short",
        "$6$$qEXipeLbgxRlwd06QHfY5WITkUZg0jLg9SZbXzq3ifXjfj+v3GbJGrSfC5PAg3UNCS+UFfbhUIZX4bmIAs"
        "330w==",
        "$6$rounds=5000$salt$tooshort",
        "$9$abc$def",
        "PBKDF2$md5$1000$c2FsdA==$aGFzaGhhc2hoYXNoaGFzaA==",
        "PBKDF2$sha256$901$c2l4dGVlbiBieXRlIHNsdA==",
        "PBKDF2$sha256$901$c2l4dGVlbiBieXRlIHNsdA==$AAAA", /* key shorter than 16 bytes */
        "PBKDF2$sha256$abc$c2FsdA==$A6P5Ey/opz7X7BS9reVgW8AKmABQLaMqVCmlhHvQXPg=",
        "$argon2id$",
        "$argon2id$v=19$garbage",
        "$argon2id$v=19$m=1024,t=2,p=1$c2FsdHNhbHRzYWx0MTIzNA",
        "$argon2x$v=19$m=1024,t=2,p=1$c2FsdHNhbHRzYWx0MTIzNA$+lmmYt2z4ZMrLKIaiYmx1n",
        "$2b$04$short",
        "$2b$xx$abcdefghijklmnopqrstuujydOTSfIH/d5oUHpsygqV5X9xJLQc6e",
        "$5$saltstring$tooshort",
        "$y$j9T$",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int r = culex_pw_verify(bad[i], "secret", 6);
        if (r >= 0)
            CX_FAIL_("malformed %zu (%s): verify = %d", i, bad[i], r);
        if (culex_pw_identify(bad[i]) >= 0)
            CX_FAIL_("malformed %zu (%s): identified", i, bad[i]);
    }
    CHECK_INT_EQ(culex_pw_verify(NULL, "x", 1), CULEX_PW_EINVAL);
    CHECK_INT_EQ(culex_pw_verify(vectors[0].encoded, NULL, 3), CULEX_PW_EINVAL);
    /* Argon2 parameters libargon2 refuses are malformed, not a mismatch. */
    CHECK(culex_pw_verify("$argon2id$v=19$m=1,t=1,p=1$c2FsdHNhbHRzYWx0MTIzNA$+lmmYt2z4ZMrLKIaiYmx"
                          "1n/yv76miDs89Dh8Mz4LByQ",
                          "x", 1) < 0);
}

static void roundtrip(culex_pw_scheme s, unsigned iterations, const char *prefix)
{
    char out[CULEX_PW_ENCODED_MAX], out2[CULEX_PW_ENCODED_MAX];
    const char pw[] = "s3cret:\xc3\xa9 with spaces";
    int rc = culex_pw_hash(s, pw, strlen(pw), iterations, out, sizeof out);
    if (rc != 0)
        CX_FAIL_("hash scheme %d: %s", (int)s, culex_pw_strerror(rc));
    if (strncmp(out, prefix, strlen(prefix)) != 0)
        CX_FAIL_("scheme %d: \"%s\" does not start with \"%s\"", (int)s, out, prefix);
    CHECK_INT_EQ(culex_pw_identify(out), s);
    CHECK_INT_EQ(culex_pw_verify(out, pw, strlen(pw)), 1);
    CHECK_INT_EQ(culex_pw_verify(out, pw, strlen(pw) - 1), 0);
    CHECK_INT_EQ(culex_pw_verify(out, "S3cret", 6), 0);
    /* a fresh salt each time */
    CHECK_INT_EQ(culex_pw_hash(s, pw, strlen(pw), iterations, out2, sizeof out2), 0);
    CHECK(strcmp(out, out2) != 0);
    /* too small a buffer */
    CHECK_INT_EQ(culex_pw_hash(s, pw, strlen(pw), iterations, out2, 20), CULEX_PW_ENOSPC);
}

static void test_roundtrip_mosquitto(void)
{
    roundtrip(CULEX_PW_SHA512_PBKDF2, 0, "$7$1000$");
    roundtrip(CULEX_PW_SHA512_PBKDF2, 101, "$7$101$");
    roundtrip(CULEX_PW_SHA512, 0, "$6$");
    /* the default: 12-byte salt (16 base64 characters), as Mosquitto 2.0 requires */
    char out[CULEX_PW_ENCODED_MAX];
    CHECK_INT_EQ(culex_pw_hash(CULEX_PW_DEFAULT, "x", 1, 0, out, sizeof out), 0);
    const char *salt = out + strlen("$7$1000$");
    CHECK_INT_EQ(strchr(salt, '$') - salt, 16);
    CHECK_INT_EQ(strlen(strchr(salt, '$') + 1), 88);
}

static void test_roundtrip_other(void)
{
    roundtrip(CULEX_PW_PBKDF2_SHA256, 1000, "PBKDF2$sha256$1000$");
    roundtrip(CULEX_PW_PBKDF2_SHA512, 1000, "PBKDF2$sha512$1000$");
    roundtrip(CULEX_PW_ARGON2ID, 0, "$argon2id$v=19$m=47104,t=1,p=1$");
    roundtrip(CULEX_PW_ARGON2ID, 2, "$argon2id$v=19$m=47104,t=2,p=1$");
    roundtrip(CULEX_PW_BCRYPT, 4, "$2b$04$");
    roundtrip(CULEX_PW_SHA512_CRYPT, 0, "$6$");
    roundtrip(CULEX_PW_SHA512_CRYPT, 6000, "$6$rounds=6000$");
    roundtrip(CULEX_PW_SHA256_CRYPT, 0, "$5$");
    roundtrip(CULEX_PW_YESCRYPT, 0, "$y$");
}

static void test_hash_errors(void)
{
    char out[CULEX_PW_ENCODED_MAX];
    CHECK_INT_EQ(culex_pw_hash(CULEX_PW_ARGON2I, "x", 1, 0, out, sizeof out),
                 CULEX_PW_EUNSUPPORTED);
    CHECK_INT_EQ(culex_pw_hash((culex_pw_scheme)99, "x", 1, 0, out, sizeof out),
                 CULEX_PW_EUNSUPPORTED);
    CHECK_INT_EQ(culex_pw_hash(CULEX_PW_BCRYPT, "x", 1, 99, out, sizeof out), CULEX_PW_EINVAL);
    CHECK_INT_EQ(culex_pw_hash(CULEX_PW_BCRYPT, "a\0b", 3, 4, out, sizeof out), CULEX_PW_EINVAL);
    CHECK_INT_EQ(culex_pw_hash(CULEX_PW_SHA512_PBKDF2, "x", 1, 0, NULL, 0), CULEX_PW_EINVAL);
    CHECK_INT_EQ(culex_pw_hash(CULEX_PW_SHA512_PBKDF2, "x", 1, 0u - 1u, out, sizeof out),
                 CULEX_PW_EINVAL);
    CHECK_STR_EQ(culex_pw_strerror(CULEX_PW_EFORMAT), "unknown or malformed password hash");
}

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* Prints the cost of one verification per format (for the record; no assertion). */
/* Stored hashes that ask for absurd work are refused before any hashing, by identify (at
 * load) and by verify; the limits themselves still pass. */
static void test_cost_limits(void)
{
    static const char h64[] = "eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4"
                              "eHh4eHh4eHh4eHh4eHh4eA==";
    char buf[512];
    snprintf(buf, sizeof buf, "$7$2147483647$c2FsdHNhbHQ=$%s", h64);
    CHECK_INT_EQ(culex_pw_identify(buf), CULEX_PW_ECOST);
    CHECK_INT_EQ(culex_pw_verify(buf, "x", 1), CULEX_PW_ECOST);
    snprintf(buf, sizeof buf, "$7$10000001$c2FsdHNhbHQ=$%s", h64);
    CHECK_INT_EQ(culex_pw_identify(buf), CULEX_PW_ECOST);
    snprintf(buf, sizeof buf, "$7$10000000$c2FsdHNhbHQ=$%s", h64);
    CHECK_INT_EQ(culex_pw_identify(buf), CULEX_PW_SHA512_PBKDF2);
    snprintf(buf, sizeof buf, "PBKDF2$sha256$99999999$c2FsdA==$%s", h64);
    CHECK_INT_EQ(culex_pw_identify(buf), CULEX_PW_ECOST);
    CHECK_INT_EQ(culex_pw_identify("$6$rounds=999999999$saltstringsaltst$OW1/O6BYHV6BcXZu8QVeX"
                                   "bDWra3Oeqh0sbHbbMCVNSnCM/UrjmM0Dp8vOuZeHBy/YTBmSK6H9qs/y3Rn"
                                   "Oaw5v."),
                 CULEX_PW_ECOST);
    CHECK_INT_EQ(culex_pw_identify("$5$rounds=20000000$saltstringsaltst$3xv.VbSHBb41AL9AvLeujZk"
                                   "ZRBAwqFMz2.opqey6IcA"),
                 CULEX_PW_ECOST);
    CHECK_INT_EQ(culex_pw_identify("$2b$31$abcdefghijklmnopqrstuuABCDEFGHIJKLMNOPQRSTUVWXYZ01234"),
                 CULEX_PW_ECOST);
    CHECK_INT_EQ(culex_pw_identify("$2b$17$abcdefghijklmnopqrstuuABCDEFGHIJKLMNOPQRSTUVWXYZ01234"),
                 CULEX_PW_BCRYPT);
    CHECK_INT_EQ(culex_pw_identify("$argon2id$v=19$m=104857600,t=1,p=1$c2FsdHNhbHRzYWx0MTIzNA$"
                                   "+lmmYt2z4ZMrLKIaiYmx1n"),
                 CULEX_PW_ECOST);
    CHECK_INT_EQ(culex_pw_verify("$argon2id$v=19$m=1024,t=1000,p=1$c2FsdHNhbHRzYWx0MTIzNA$"
                                 "+lmmYt2z4ZMrLKIaiYmx1n", "x", 1),
                 CULEX_PW_ECOST);
    CHECK_INT_EQ(culex_pw_identify("$argon2i$m=1048576,t=64,p=64$c2FsdHNhbHRzYWx0MTIzNA$abc"),
                 CULEX_PW_ARGON2I);
    CHECK(strcmp(culex_pw_strerror(CULEX_PW_ECOST), "unknown error") != 0);
}

static void test_timing(void)
{
    static const struct {
        culex_pw_scheme s;
        unsigned it;
        const char *name;
    } t[] = {
        {CULEX_PW_SHA512, 0, "$6$ mosquitto sha512"},
        {CULEX_PW_SHA512_PBKDF2, 101, "$7$ 101 iterations (mosquitto 2.0 default)"},
        {CULEX_PW_SHA512_PBKDF2, 0, "$7$ 1000 iterations (culex default)"},
        {CULEX_PW_PBKDF2_SHA512, 0, "PBKDF2$sha512$ 100000 iterations"},
        {CULEX_PW_ARGON2ID, 0, "argon2id m=47104 t=1 p=1"},
        {CULEX_PW_BCRYPT, 0, "bcrypt cost 10"},
        {CULEX_PW_SHA512_CRYPT, 0, "sha512-crypt 5000 rounds"},
        {CULEX_PW_YESCRYPT, 0, "yescrypt default"},
    };
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
        char out[CULEX_PW_ENCODED_MAX];
        CHECK_INT_EQ(culex_pw_hash(t[i].s, "password", 8, t[i].it, out, sizeof out), 0);
        int n = 0;
        double start = now_ms(), el;
        do {
            CHECK_INT_EQ(culex_pw_verify(out, "password", 8), 1);
            n++;
            el = now_ms() - start;
        } while (el < 200 && n < 1000);
        printf("# verify %-44s %9.3f ms\n", t[i].name, el / n);
    }
}

CX_TEST_MAIN(CX_TEST(known_vectors), CX_TEST(wrong_passwords), CX_TEST(identify),
             CX_TEST(dollar6_disambiguation), CX_TEST(nul_bytes), CX_TEST(raw_salt),
             CX_TEST(malformed), CX_TEST(roundtrip_mosquitto), CX_TEST(roundtrip_other),
             CX_TEST(hash_errors), CX_TEST(cost_limits), CX_TEST(timing), )
