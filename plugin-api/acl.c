/* acl.c — the ACL pattern engine: Mosquitto acl_file parsing and checking (the rules are in
 * culex/sdk/acl.h). Users are indexed by a keyed hash; each section keeps its deny rules
 * ahead of its grants; matching walks filter and topic level by level in place, comparing a
 * `%u`/`%c` level with the name itself, so a check needs no buffer and no allocation. */
#include <culex/sdk/acl.h>

#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sdk_internal.h"

#define MAX_FILTER 65535 /* MQTT's string limit */
#define KIND_MASK (CULEX_ACL_READ | CULEX_ACL_WRITE | CULEX_ACL_SUBSCRIBE | CULEX_ACL_UNSUBSCRIBE)

typedef struct rule {
    char *filter;
    unsigned access; /* kinds granted, or CULEX_ACL_DENY_RULE | kinds denied (none = all) */
    bool uses_u, uses_c;
} rule;

typedef struct rule_list {
    rule *v;
    size_t n, ndeny, cap; /* v[0..ndeny) are deny rules, v[ndeny..n) grants */
} rule_list;

typedef struct user_sec {
    struct user_sec *next;
    uint64_t hash;
    size_t len;
    rule_list rules;
    char name[]; /* NUL-terminated */
} user_sec;

struct culex_acl {
    unsigned flags;
    uint64_t key[2];
    rule_list anon;
    rule_list patterns;
    bool uses_u, uses_c; /* some pattern substitutes %u / %c */
    user_sec **buckets;
    size_t nbuckets, nusers, nrules;
};

typedef struct names {
    const char *u, *c;
    size_t ulen, clen;
} names;

culex_acl *culex_acl_new(void)
{
    culex_acl *acl = calloc(1, sizeof *acl);
    if (!acl)
        return NULL;
    acl->nbuckets = 16;
    acl->buckets = calloc(acl->nbuckets, sizeof *acl->buckets);
    if (!acl->buckets) {
        free(acl);
        return NULL;
    }
    culex__hash_key(acl->key);
    return acl;
}

void culex_acl_set_flags(culex_acl *acl, unsigned flags)
{
    if (acl)
        acl->flags = flags;
}

static void list_free(rule_list *l)
{
    for (size_t i = 0; i < l->n; i++)
        free(l->v[i].filter);
    free(l->v);
    memset(l, 0, sizeof *l);
}

void culex_acl_free(culex_acl *acl)
{
    if (!acl)
        return;
    for (size_t b = 0; b < acl->nbuckets; b++) {
        user_sec *u = acl->buckets[b];
        while (u) {
            user_sec *next = u->next;
            list_free(&u->rules);
            free(u);
            u = next;
        }
    }
    free(acl->buckets);
    list_free(&acl->anon);
    list_free(&acl->patterns);
    free(acl);
}

size_t culex_acl_rule_count(const culex_acl *acl)
{
    return acl ? acl->nrules : 0;
}

size_t culex_acl_user_count(const culex_acl *acl)
{
    return acl ? acl->nusers : 0;
}

/* ---- users ---- */

static user_sec *find_user(const culex_acl *acl, const char *name, size_t len)
{
    uint64_t h = culex__siphash(acl->key, name, len);
    for (user_sec *u = acl->buckets[h & (acl->nbuckets - 1)]; u; u = u->next)
        if (u->hash == h && u->len == len && memcmp(u->name, name, len) == 0)
            return u;
    return NULL;
}

static int grow_buckets(culex_acl *acl)
{
    size_t nb = acl->nbuckets * 2;
    user_sec **b = calloc(nb, sizeof *b);
    if (!b)
        return -ENOMEM;
    for (size_t i = 0; i < acl->nbuckets; i++) {
        user_sec *u = acl->buckets[i];
        while (u) {
            user_sec *next = u->next;
            u->next = b[u->hash & (nb - 1)];
            b[u->hash & (nb - 1)] = u;
            u = next;
        }
    }
    free(acl->buckets);
    acl->buckets = b;
    acl->nbuckets = nb;
    return 0;
}

static user_sec *get_user(culex_acl *acl, const char *name)
{
    size_t len = strlen(name);
    user_sec *u = find_user(acl, name, len);
    if (u)
        return u;
    if (acl->nusers >= acl->nbuckets && grow_buckets(acl) != 0)
        return NULL;
    u = calloc(1, sizeof *u + len + 1);
    if (!u)
        return NULL;
    memcpy(u->name, name, len + 1);
    u->len = len;
    u->hash = culex__siphash(acl->key, name, len);
    u->next = acl->buckets[u->hash & (acl->nbuckets - 1)];
    acl->buckets[u->hash & (acl->nbuckets - 1)] = u;
    acl->nusers++;
    return u;
}

/* ---- filters ---- */

/* Is `level` (len bytes) exactly "%u" / "%c"? */
static int subst_kind(const char *level, size_t len)
{
    if (len == 2 && level[0] == '%' && (level[1] == 'u' || level[1] == 'c'))
        return level[1];
    return 0;
}

/* Checks a rule or subscription filter; for patterns also that %u/%c fill whole levels.
 * Returns NULL or a static message. */
static const char *check_filter(const char *f, bool pattern, bool *uses_u, bool *uses_c)
{
    size_t total = strlen(f);
    if (total == 0)
        return "empty topic filter";
    if (total > MAX_FILTER)
        return "topic filter longer than 65535 bytes";
    const char *p = f;
    for (;;) {
        size_t l = strcspn(p, "/");
        const char *plus = memchr(p, '+', l), *hash = memchr(p, '#', l);
        if ((plus || hash) && l != 1)
            return "'+' and '#' must fill a whole topic level";
        if (hash && p[l] != '\0')
            return "'#' must be the last topic level";
        if (pattern) {
            int k = subst_kind(p, l);
            if (k == 'u')
                *uses_u = true;
            else if (k == 'c')
                *uses_c = true;
            else
                for (size_t i = 0; i + 1 < l; i++)
                    if (p[i] == '%' && (p[i + 1] == 'u' || p[i + 1] == 'c'))
                        return "'%u' and '%c' must fill a whole topic level";
        }
        if (p[l] == '\0')
            return NULL;
        p += l + 1;
    }
}

static int list_add(rule_list *l, rule *r)
{
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 4;
        rule *v = realloc(l->v, cap * sizeof *v);
        if (!v)
            return -ENOMEM;
        l->v = v;
        l->cap = cap;
    }
    if (r->access & CULEX_ACL_DENY_RULE) {
        memmove(&l->v[l->ndeny + 1], &l->v[l->ndeny], (l->n - l->ndeny) * sizeof *l->v);
        l->v[l->ndeny++] = *r;
    } else {
        l->v[l->n] = *r;
    }
    l->n++;
    return 0;
}

int culex_acl_add_rule(culex_acl *acl, culex_acl_section section, const char *username,
                       unsigned access, const char *filter, char *err, size_t errlen)
{
    if (!acl || !filter || (section == CULEX_ACL_USER && !username) ||
        (section != CULEX_ACL_ANONYMOUS && section != CULEX_ACL_USER &&
         section != CULEX_ACL_PATTERN) ||
        (access & ~(KIND_MASK | CULEX_ACL_DENY_RULE)) ||
        (!(access & CULEX_ACL_DENY_RULE) && !(access & KIND_MASK))) {
        culex__set_err(err, errlen, "invalid arguments");
        return -EINVAL;
    }
    rule r = {.access = access};
    const char *msg = check_filter(filter, section == CULEX_ACL_PATTERN, &r.uses_u, &r.uses_c);
    if (msg) {
        culex__set_err(err, errlen, "%s: '%s'", msg, filter);
        return -EINVAL;
    }
    rule_list *l;
    if (section == CULEX_ACL_ANONYMOUS) {
        l = &acl->anon;
    } else if (section == CULEX_ACL_PATTERN) {
        l = &acl->patterns;
    } else {
        user_sec *u = get_user(acl, username);
        if (!u)
            return -ENOMEM;
        l = &u->rules;
    }
    r.filter = strdup(filter);
    if (!r.filter || list_add(l, &r) != 0) {
        free(r.filter);
        culex__set_err(err, errlen, "out of memory");
        return -ENOMEM;
    }
    if (section == CULEX_ACL_PATTERN) {
        acl->uses_u |= r.uses_u;
        acl->uses_c |= r.uses_c;
    }
    acl->nrules++;
    return 0;
}

/* ---- the file ---- */

static bool is_blank(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\v' || c == '\f';
}

static char *skip_blanks(char *s)
{
    while (*s && is_blank(*s))
        s++;
    return s;
}

static char *token_end(char *s)
{
    while (*s && !is_blank(*s))
        s++;
    return s;
}

/* Parses one line (modified in place). Returns 0 or -EINVAL/-ENOMEM with a message. */
static int parse_line(culex_acl *acl, char *line, char **user, char *msg, size_t msglen)
{
    size_t len = strlen(line);
    while (len > 0 && is_blank(line[len - 1]))
        line[--len] = '\0';
    char *p = skip_blanks(line);
    if (*p == '\0' || *p == '#')
        return 0;
    char *kw = p, *kw_end = token_end(p);
    char *rest = skip_blanks(kw_end);
    *kw_end = '\0';

    if (strcmp(kw, "user") == 0) {
        if (*rest == '\0') {
            snprintf(msg, msglen, "missing username after 'user'");
            return -EINVAL;
        }
        char *copy = strdup(rest);
        if (!copy)
            return -ENOMEM;
        free(*user);
        *user = copy;
        return 0;
    }
    bool pattern = strcmp(kw, "pattern") == 0;
    if (!pattern && strcmp(kw, "topic") != 0) {
        snprintf(msg, msglen, "unknown keyword '%.64s' (expected topic, user or pattern)", kw);
        return -EINVAL;
    }
    if (*rest == '\0') {
        snprintf(msg, msglen, "missing topic after '%s'", kw);
        return -EINVAL;
    }
    unsigned access = CULEX_ACL_READ | CULEX_ACL_WRITE | CULEX_ACL_SUBSCRIBE;
    char *word_end = token_end(rest);
    char *filter = skip_blanks(word_end);
    if (*filter == '\0') {
        filter = rest; /* one word: it is the topic, readwrite */
    } else {
        *word_end = '\0';
        if (strcmp(rest, "read") == 0)
            access = CULEX_ACL_READ | CULEX_ACL_SUBSCRIBE;
        else if (strcmp(rest, "write") == 0)
            access = CULEX_ACL_WRITE;
        else if (strcmp(rest, "readwrite") == 0)
            access = CULEX_ACL_READ | CULEX_ACL_WRITE | CULEX_ACL_SUBSCRIBE;
        else if (strcmp(rest, "deny") == 0)
            access = CULEX_ACL_DENY_RULE;
        else {
            snprintf(msg, msglen,
                     "invalid access '%.64s' (expected read, write, readwrite or deny)", rest);
            return -EINVAL;
        }
    }
    culex_acl_section sec = pattern ? CULEX_ACL_PATTERN
                            : *user ? CULEX_ACL_USER
                                    : CULEX_ACL_ANONYMOUS;
    return culex_acl_add_rule(acl, sec, *user, access, filter, msg, msglen);
}

static int load_stream(culex_acl *acl, const char *name, FILE *fp, char *err, size_t errlen)
{
    char *line = NULL, *user = NULL;
    size_t cap = 0;
    unsigned long lineno = 0;
    int rc = 0;
    char msg[512];
    ssize_t got;
    while ((got = getline(&line, &cap, fp)) >= 0) {
        lineno++;
        msg[0] = '\0';
        /* A NUL byte would silently cut the line short (a deny rule's filter included): the
         * file is refused instead, as the config and password parsers do. */
        if (memchr(line, '\0', (size_t)got)) {
            rc = -EINVAL;
            culex__set_err(err, errlen, "%s:%lu: NUL byte in the line", name, lineno);
            break;
        }
        rc = parse_line(acl, line, &user, msg, sizeof msg);
        if (rc != 0) {
            culex__set_err(err, errlen, "%s:%lu: %s", name, lineno, msg[0] ? msg : "out of memory");
            break;
        }
    }
    if (rc == 0 && ferror(fp)) {
        rc = -EIO;
        culex__set_err(err, errlen, "%s: read error", name);
    }
    free(line);
    free(user);
    return rc;
}

int culex_acl_load_file(culex_acl *acl, const char *path, char *err, size_t errlen)
{
    if (!acl || !path) {
        culex__set_err(err, errlen, "invalid arguments");
        return -EINVAL;
    }
    FILE *fp = fopen(path, "re");
    if (!fp) {
        int e = errno;
        culex__set_err(err, errlen, "%s: %s", path, strerror(e));
        return -e;
    }
    int rc = load_stream(acl, path, fp, err, errlen);
    fclose(fp);
    return rc;
}

int culex_acl_load_string(culex_acl *acl, const char *name, const char *text, char *err,
                          size_t errlen)
{
    if (!acl || !text) {
        culex__set_err(err, errlen, "invalid arguments");
        return -EINVAL;
    }
    FILE *fp = fmemopen((void *)text, strlen(text), "r");
    if (!fp) {
        if (*text == '\0')
            return 0; /* fmemopen refuses empty buffers on some libcs */
        culex__set_err(err, errlen, "%s: out of memory", name ? name : "(string)");
        return -ENOMEM;
    }
    int rc = load_stream(acl, name ? name : "(string)", fp, err, errlen);
    fclose(fp);
    return rc;
}

/* ---- checking ---- */

/* Compares one filter level with one topic level (literal, or %u/%c when substituting). */
static bool level_matches(const char *f, size_t fl, const char *t, size_t tl, const names *nm)
{
    if (nm) {
        int k = subst_kind(f, fl);
        if (k == 'u')
            return nm->u && nm->ulen == tl && memcmp(nm->u, t, tl) == 0;
        if (k == 'c')
            return nm->c && nm->clen == tl && memcmp(nm->c, t, tl) == 0;
    }
    return fl == tl && memcmp(f, t, tl) == 0;
}

/* Does filter f match topic name t? nm != NULL substitutes %u/%c levels. */
static bool topic_matches(const char *f, const char *t, const names *nm)
{
    if ((f[0] == '$') != (t[0] == '$'))
        return false;
    for (;;) {
        size_t fl = strcspn(f, "/");
        if (fl == 1 && f[0] == '#')
            return true;
        size_t tl = strcspn(t, "/");
        if (!(fl == 1 && f[0] == '+') && !level_matches(f, fl, t, tl, nm))
            return false;
        f += fl;
        t += tl;
        if (*f == '\0')
            return *t == '\0';
        f++;
        if (*t == '\0')
            return f[0] == '#' && f[1] == '\0'; /* "a/#" matches "a" */
        t++;
    }
}

/* Does rule filter f cover subscription filter s (every topic s matches, f matches)? */
static bool filter_covers(const char *f, const char *s, const names *nm)
{
    if ((f[0] == '$') != (s[0] == '$'))
        return false;
    for (;;) {
        size_t fl = strcspn(f, "/");
        if (fl == 1 && f[0] == '#')
            return true;
        size_t sl = strcspn(s, "/");
        if (sl == 1 && s[0] == '#')
            return false;
        if (!(fl == 1 && f[0] == '+')) {
            if (sl == 1 && s[0] == '+')
                return false;
            if (!level_matches(f, fl, s, sl, nm))
                return false;
        }
        f += fl;
        s += sl;
        if (*f == '\0')
            return *s == '\0';
        f++;
        if (*s == '\0')
            return f[0] == '#' && f[1] == '\0';
        s++;
    }
}

static int eval_list(const rule_list *l, const names *nm, unsigned deny_mask,
                     unsigned grant_mask, bool cover, const char *topic)
{
    for (size_t i = 0; i < l->ndeny; i++) {
        const rule *r = &l->v[i];
        unsigned kinds = r->access & KIND_MASK;
        if (kinds && !(kinds & deny_mask))
            continue;
        if (nm && r->uses_u && !nm->u)
            continue;
        if (cover ? filter_covers(r->filter, topic, nm) : topic_matches(r->filter, topic, nm))
            return CULEX_ACL_DENY;
    }
    for (size_t i = l->ndeny; i < l->n; i++) {
        const rule *r = &l->v[i];
        if (!(r->access & grant_mask))
            continue;
        if (nm && r->uses_u && !nm->u)
            continue;
        if (cover ? filter_covers(r->filter, topic, nm) : topic_matches(r->filter, topic, nm))
            return CULEX_ACL_ALLOW;
    }
    return CULEX_ACL_NO_MATCH;
}

int culex_acl_check(const culex_acl *acl, const char *username, const char *client_id,
                    unsigned access, const char *topic)
{
    unsigned deny_mask, grant_mask;
    bool cover = false;
    if (!acl || !topic || !*topic)
        return CULEX_ACL_DENY;
    switch (access) {
    case CULEX_ACL_READ:
    case CULEX_ACL_WRITE:
        if (strpbrk(topic, "+#"))
            return CULEX_ACL_DENY;
        deny_mask = grant_mask = access;
        break;
    case CULEX_ACL_SUBSCRIBE:
        if (!(acl->flags & CULEX_ACL_STRICT_SUBSCRIBE))
            return CULEX_ACL_ALLOW;
        {
            bool dummy_u, dummy_c;
            if (check_filter(topic, false, &dummy_u, &dummy_c))
                return CULEX_ACL_DENY;
        }
        deny_mask = grant_mask = CULEX_ACL_SUBSCRIBE | CULEX_ACL_READ;
        cover = true;
        break;
    case CULEX_ACL_UNSUBSCRIBE:
        return CULEX_ACL_ALLOW;
    default:
        return CULEX_ACL_DENY;
    }

    const rule_list *own = NULL;
    if (username) {
        const user_sec *u = find_user(acl, username, strlen(username));
        if (u)
            own = &u->rules;
    } else {
        own = &acl->anon;
    }
    if (own) {
        int r = eval_list(own, NULL, deny_mask, grant_mask, cover, topic);
        if (r != CULEX_ACL_NO_MATCH)
            return r;
    }
    if (acl->patterns.n == 0)
        return CULEX_ACL_NO_MATCH;

    /* A wildcard in a name must never widen access (Mosquitto 2 denies these clients as
     * soon as patterns are in use); a '/' would let %u or %c span several levels. */
    if (!client_id || strpbrk(client_id, "+#") || (username && strpbrk(username, "+#")))
        return CULEX_ACL_DENY;
    if ((acl->uses_c && strchr(client_id, '/')) ||
        (acl->uses_u && username && strchr(username, '/')))
        return CULEX_ACL_DENY;
    names nm = {.u = username,
                .ulen = username ? strlen(username) : 0,
                .c = client_id,
                .clen = strlen(client_id)};
    return eval_list(&acl->patterns, &nm, deny_mask, grant_mask, cover, topic);
}
