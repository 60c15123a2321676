/* fuzz_acl_file.c: the SDK's ACL file parser and checker (plugin-api/acl.c).
 *
 * Input: an acl_file (`topic`, `user` and `pattern` lines).
 *
 * The input is written to a file in a private directory (made once, removed at exit) and
 * read with culex_acl_load_file, the path auth_file uses. When the input holds no NUL byte,
 * culex_acl_load_string must reach the same verdict, message and rule counts (it reads the
 * text up to the first NUL, the file reader the whole file).
 *
 * The rule set is then asked about a few names and topics taken from the input itself (the
 * last word of the first lines, the names of the first `user` lines) and some fixed ones,
 * for every access kind, with and without CULEX_ACL_STRICT_SUBSCRIBE, and the answers are
 * held to acl.h's contract: UNSUBSCRIBE is always allowed, SUBSCRIBE too unless strict, a
 * wildcard or empty topic is denied for READ and WRITE, and, because every acl_file access
 * word grants or denies READ and SUBSCRIBE together, a strict SUBSCRIBE to a topic without
 * wildcards gets the same answer as READ of that topic. */
#include <errno.h>
#include <stdbool.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <culex/sdk/acl.h>

#include "fuzz.h"

#define MAX_LINES 64     /* lines scanned for names and topics */
#define MAX_TOPICS 6     /* taken from the input */
#define MAX_USERS 2      /* taken from the input */
#define MAX_WORD 64

static char dir_path[400];
static char file_path[420];

static void remove_scratch(void)
{
    unlink(file_path);
    rmdir(dir_path);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    fz_scratch_dir(dir_path, sizeof dir_path, "acl");
    snprintf(file_path, sizeof file_path, "%s/acl", dir_path);
    atexit(remove_scratch);
    return 0;
}

static bool is_blank(uint8_t c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\v' || c == '\f';
}

typedef struct words {
    char topics[MAX_TOPICS][MAX_WORD + 1];
    size_t ntopics;
    char users[MAX_USERS][MAX_WORD + 1];
    size_t nusers;
} words;

/* Copies s[0..n) as a C string (cut at MAX_WORD and at any NUL). */
static void copy_word(char *dst, const uint8_t *s, size_t n)
{
    if (n > MAX_WORD)
        n = MAX_WORD;
    memcpy(dst, s, n);
    dst[n] = '\0';
}

static void collect(const uint8_t *data, size_t size, words *w)
{
    size_t off = 0;
    for (int ln = 0; ln < MAX_LINES && off < size; ln++) {
        const uint8_t *nl = memchr(data + off, '\n', size - off);
        size_t end = nl ? (size_t)(nl - data) : size;
        size_t b = off, e = end;
        while (b < e && is_blank(data[b]))
            b++;
        while (e > b && is_blank(data[e - 1]))
            e--;
        if (e - b > 5 && memcmp(data + b, "user", 4) == 0 && is_blank(data[b + 4]) &&
            w->nusers < MAX_USERS) {
            size_t u = b + 4;
            while (u < e && is_blank(data[u]))
                u++;
            copy_word(w->users[w->nusers++], data + u, e - u);
        } else if (e > b && w->ntopics < MAX_TOPICS) {
            size_t s = e;
            while (s > b && !is_blank(data[s - 1]))
                s--;
            copy_word(w->topics[w->ntopics++], data + s, e - s);
        }
        off = end + 1;
    }
}

static void check_one(const culex_acl *acl, const char *user, const char *client,
                      const char *topic, bool strict)
{
    int r = culex_acl_check(acl, user, client, CULEX_ACL_READ, topic);
    int wr = culex_acl_check(acl, user, client, CULEX_ACL_WRITE, topic);
    int s = culex_acl_check(acl, user, client, CULEX_ACL_SUBSCRIBE, topic);
    int u = culex_acl_check(acl, user, client, CULEX_ACL_UNSUBSCRIBE, topic);
    FUZZ_CHECK(r >= CULEX_ACL_NO_MATCH && r <= CULEX_ACL_DENY);
    FUZZ_CHECK(wr >= CULEX_ACL_NO_MATCH && wr <= CULEX_ACL_DENY);
    FUZZ_CHECK(s >= CULEX_ACL_NO_MATCH && s <= CULEX_ACL_DENY);
    FUZZ_CHECK(culex_acl_check(acl, user, client, 0x40, topic) == CULEX_ACL_DENY);
    if (!*topic) {
        FUZZ_CHECK(r == CULEX_ACL_DENY && wr == CULEX_ACL_DENY && s == CULEX_ACL_DENY &&
                   u == CULEX_ACL_DENY);
        return;
    }
    FUZZ_CHECK(u == CULEX_ACL_ALLOW);
    bool wild = strpbrk(topic, "+#") != NULL;
    if (wild)
        FUZZ_CHECK(r == CULEX_ACL_DENY && wr == CULEX_ACL_DENY);
    if (!strict)
        FUZZ_CHECK(s == CULEX_ACL_ALLOW);
    else if (!wild)
        FUZZ_CHECK(s == r);
}

static void check_all(culex_acl *acl, const words *w)
{
    static const char *const fixed_topics[] = {"a/b", "$SYS/broker/load"};
    const char *users[2 + MAX_USERS] = {NULL, "alice"};
    size_t nusers = 2;
    for (size_t i = 0; i < w->nusers; i++)
        users[nusers++] = w->users[i];
    const char *topics[MAX_TOPICS + 2];
    size_t ntopics = 0;
    for (size_t i = 0; i < w->ntopics; i++)
        topics[ntopics++] = w->topics[i];
    for (size_t i = 0; i < 2; i++)
        topics[ntopics++] = fixed_topics[i];
    static const char *const clients[] = {NULL, "client-1"};

    for (int strict = 0; strict < 2; strict++) {
        culex_acl_set_flags(acl, strict ? CULEX_ACL_STRICT_SUBSCRIBE : 0);
        for (size_t ui = 0; ui < nusers; ui++)
            for (size_t ci = 0; ci < 2; ci++)
                for (size_t ti = 0; ti < ntopics; ti++)
                    check_one(acl, users[ui], clients[ci], topics[ti], strict);
        /* A client id with a '/' or a wildcard must never widen access. */
        for (size_t ti = 0; ti < ntopics; ti++)
            check_one(acl, users[nusers - 1], "a/+", topics[ti], strict);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    FILE *f = fopen(file_path, "wb");
    FUZZ_CHECK(f != NULL);
    FUZZ_CHECK(fwrite(data, 1, size, f) == size);
    FUZZ_CHECK(fclose(f) == 0);

    culex_acl *acl = culex_acl_new();
    FUZZ_CHECK(acl != NULL);
    char err[600];
    err[0] = '\0';
    int rc = culex_acl_load_file(acl, file_path, err, sizeof err);
    FUZZ_CHECK(rc == 0 || rc == -EINVAL || rc == -ENOMEM || rc == -EIO);
    FUZZ_CHECK(memchr(err, '\0', sizeof err) != NULL);
    if (rc)
        FUZZ_CHECK(err[0] != '\0');
    /* A `user` line alone makes no section: only its rules do. */
    FUZZ_CHECK(culex_acl_user_count(acl) <= culex_acl_rule_count(acl));

    if (!memchr(data, '\0', size)) {
        char *text = malloc(size + 1);
        FUZZ_CHECK(text != NULL);
        if (size)
            memcpy(text, data, size);
        text[size] = '\0';
        culex_acl *acl2 = culex_acl_new();
        FUZZ_CHECK(acl2 != NULL);
        char err2[600];
        err2[0] = '\0';
        int rc2 = culex_acl_load_string(acl2, file_path, text, err2, sizeof err2);
        FUZZ_CHECK(rc2 == rc);
        FUZZ_CHECK(strcmp(err, err2) == 0);
        FUZZ_CHECK(culex_acl_rule_count(acl2) == culex_acl_rule_count(acl));
        FUZZ_CHECK(culex_acl_user_count(acl2) == culex_acl_user_count(acl));
        culex_acl_free(acl2);
        free(text);
    }

    /* acl.h: on error the set holds the lines before the bad one; checking it is still
     * well defined, so the checks run either way. */
    words w = {.ntopics = 0};
    collect(data, size, &w);
    check_all(acl, &w);
    culex_acl_free(acl);
    return 0;
}
