/* auth_file.c: the password_file / acl_file plugin.
 *
 * mosquitto.conf's `password_file` and `acl_file` directives become an instance of this
 * plugin with the options `password_file` and `acl_file`; it can also be loaded explicitly:
 *
 *     plugin /usr/lib/x86_64-linux-gnu/culex/auth_file.so
 *     plugin_opt_password_file /etc/mosquitto/passwd
 *     plugin_opt_acl_file /etc/mosquitto/acl
 *
 * Files written for Mosquitto work unchanged:
 *  - password file: `username:hash` lines; blank lines and '#' comments skipped; blanks
 *    around the line and around both fields ignored; a later line for the same user
 *    replaces an earlier one; an entry whose hash is of no known type (e.g. a plain-text
 *    password) is dropped with Mosquitto's warning and the broker starts anyway. A line
 *    without ':' is an error naming FILE:LINE (Mosquitto 2.0 skips it silently; culex
 *    would rather say the file is not what its owner thinks).
 *  - acl file: the SDK's ACL engine (culex/sdk/acl.h), which implements Mosquitto's
 *    acl_file semantics; a check that matches no rule is denied, as in Mosquitto.
 *
 * Hooks: CULEX_EV_AUTH_BASIC (blocking: hash checks take milliseconds to tens of
 * milliseconds) only when a password file is configured; CULEX_EV_ACL (in memory,
 * non-blocking) only when an ACL file is configured, because any ACL hook makes the host
 * deny what every plugin defers; CULEX_EV_RELOAD always.
 *
 * Reload and concurrency: each file's parsed form is an immutable, reference-counted table,
 * published through a "slot" (a pointer behind a spinlock). A reader takes the lock only to
 * load the pointer and add a reference, then works on the table with no lock held; reload
 * parses the new file with no lock held and swaps the pointer; the last reference frees
 * the old table. We chose this over a read-write lock because a password check holds the
 * table for the whole hash computation (argon2id: tens of milliseconds on a pool thread):
 * under an rwlock, reload would wait for those, and with a writer queued every worker's ACL
 * check would wait behind it. With the snapshot nobody ever waits for anything longer than
 * a pointer copy, and a reader can never see a half-built table because a table is
 * complete before it is published. A broken file on reload leaves the slot untouched. */
#include <ctype.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <culex/plugin.h>
#include <culex/sdk/acl.h>
#include <culex/sdk/options.h>
#include <culex/sdk/password.h>
#include <culex/version.h>

#define AF_ERRLEN 512

/* ------------------------------------------------------------ refcounted snapshots */

typedef struct af_ref {
    atomic_uint refs;
    void (*destroy)(struct af_ref *r);
} af_ref;

typedef struct af_slot {
    pthread_spinlock_t lock; /* held for a pointer load plus an increment, nothing more */
    af_ref *cur;             /* NULL when the file is not configured */
} af_slot;

static void ref_put(af_ref *r)
{
    if (r && atomic_fetch_sub_explicit(&r->refs, 1, memory_order_acq_rel) == 1)
        r->destroy(r);
}

/* Returns the current table with a reference the caller must drop with ref_put. */
static af_ref *slot_get(af_slot *s)
{
    pthread_spin_lock(&s->lock);
    af_ref *r = s->cur;
    if (r)
        atomic_fetch_add_explicit(&r->refs, 1, memory_order_relaxed);
    pthread_spin_unlock(&s->lock);
    return r;
}

/* Publishes `r` (taking the caller's reference) and drops the slot's reference to the
 * previous table, which is freed once its last reader is done. */
static void slot_set(af_slot *s, af_ref *r)
{
    pthread_spin_lock(&s->lock);
    af_ref *old = s->cur;
    s->cur = r;
    pthread_spin_unlock(&s->lock);
    ref_put(old);
}

/* The slot's own table, for the thread that alone replaces it (entry point, reload). */
static af_ref *slot_peek(af_slot *s)
{
    pthread_spin_lock(&s->lock);
    af_ref *r = s->cur;
    pthread_spin_unlock(&s->lock);
    return r;
}

/* ------------------------------------------------------------ plugin state */

typedef struct af_state {
    const culex_host_api *host;
    culex_plugin *self;
    /* Paths of the files, as last loaded. Touched only by the entry point and by reload
     * (which the host never runs concurrently with itself). */
    char *pw_path;
    char *acl_path;
    int priority; /* of the hooks, fixed at start */
    af_slot pw;  /* af_pwtab */
    af_slot acl; /* af_acltab */
} af_state;

/* ------------------------------------------------------------ password file */

typedef struct af_pwent {
    const char *user; /* both point into af_pwtab.text */
    const char *hash;
    unsigned line;
} af_pwent;

typedef struct af_pwtab {
    af_ref ref;
    char *path;     /* for messages */
    char *text;     /* the file, split in place into NUL-terminated fields */
    af_pwent *ents; /* sorted by user, one per user */
    size_t n;
} af_pwtab;

static void pwtab_destroy(af_ref *r)
{
    af_pwtab *t = (af_pwtab *)r;
    free(t->ents);
    free(t->text);
    free(t->path);
    free(t);
}

/* Reads a whole file into a NUL-terminated buffer. */
static int read_file(const char *path, char **out, size_t *outlen, char *err, size_t errlen)
{
    FILE *fp = fopen(path, "re");
    if (!fp) {
        int e = errno;
        snprintf(err, errlen, "%s: %s", path, strerror(e));
        return -e;
    }
    size_t cap = 4096, len = 0;
    char *buf = malloc(cap);
    while (buf) {
        if (cap - len < 2) {
            char *grown = realloc(buf, cap * 2);
            if (!grown) {
                free(buf);
                buf = NULL;
                break;
            }
            buf = grown;
            cap *= 2;
        }
        size_t got = fread(buf + len, 1, cap - len - 1, fp);
        len += got;
        if (got == 0)
            break;
    }
    int bad = ferror(fp);
    fclose(fp);
    if (!buf) {
        snprintf(err, errlen, "%s: out of memory", path);
        return -ENOMEM;
    }
    if (bad) {
        free(buf);
        snprintf(err, errlen, "%s: read error", path);
        return -EIO;
    }
    buf[len] = '\0';
    *out = buf;
    *outlen = len;
    return 0;
}

static char *trim(char *s, char *end)
{
    while (s < end && isspace((unsigned char)*s))
        s++;
    while (end > s && isspace((unsigned char)end[-1]))
        end--;
    *end = '\0';
    return s;
}

static int pwent_cmp(const void *a, const void *b)
{
    const af_pwent *x = a, *y = b;
    int c = strcmp(x->user, y->user);
    if (c)
        return c;
    return x->line < y->line ? -1 : x->line > y->line;
}

/* Parses a password file. Returns the table (one reference) or NULL with "FILE:LINE: why"
 * in err. Entries that Mosquitto drops with a warning are dropped with the same warning,
 * logged as they are found. */
static af_pwtab *pwtab_load(af_state *st, const char *path, char *err, size_t errlen)
{
    af_pwtab *t = calloc(1, sizeof(*t));
    if (!t || !(t->path = strdup(path))) {
        snprintf(err, errlen, "%s: out of memory", path);
        free(t);
        return NULL;
    }
    atomic_init(&t->ref.refs, 1);
    t->ref.destroy = pwtab_destroy;
    size_t len = 0;
    if (read_file(path, &t->text, &len, err, errlen) != 0)
        goto fail;

    size_t cap = 0;
    unsigned line = 0;
    char *p = t->text, *end = t->text + len;
    while (p < end) {
        char *nl = memchr(p, '\n', (size_t)(end - p));
        char *le = nl ? nl : end;
        char *next = nl ? nl + 1 : end;
        line++;
        if (memchr(p, '\0', (size_t)(le - p))) {
            snprintf(err, errlen, "%s:%u: NUL byte in line", path, line);
            goto fail;
        }
        char *s = trim(p, le);
        p = next;
        if (*s == '\0' || *s == '#')
            continue;
        char *colon = strchr(s, ':');
        if (!colon) {
            snprintf(err, errlen,
                     "%s:%u: not a password line (expected username:hash, found no ':')",
                     path, line);
            goto fail;
        }
        char *user = trim(s, colon);
        char *hash = trim(colon + 1, colon + 1 + strlen(colon + 1));
        if (*user == '\0') {
            st->host->log(st->self, CULEX_LOG_WARNING,
                          "%s:%u: Invalid line in password file (no username), skipped.", path,
                          line);
            continue;
        }
        if (*hash == '\0') {
            st->host->log(st->self, CULEX_LOG_WARNING,
                          "%s:%u: Invalid password hash for user %s, removing entry.", path,
                          line, user);
            continue;
        }
        int kind = culex_pw_identify(hash);
        if (kind == CULEX_PW_ECOST) {
            st->host->log(st->self, CULEX_LOG_WARNING,
                          "%s:%u: The password hash for user %s asks for more work than culex "
                          "allows (see culex/sdk/password.h), removing entry.",
                          path, line, user);
            continue;
        }
        if (kind < 0) {
            st->host->log(st->self, CULEX_LOG_WARNING,
                          "%s:%u: Invalid password hash type for user %s, removing entry.",
                          path, line, user);
            continue;
        }
        if (t->n == cap) {
            size_t ncap = cap ? cap * 2 : 64;
            af_pwent *grown = realloc(t->ents, ncap * sizeof(*grown));
            if (!grown) {
                snprintf(err, errlen, "%s: out of memory", path);
                goto fail;
            }
            t->ents = grown;
            cap = ncap;
        }
        t->ents[t->n++] = (af_pwent){user, hash, line};
    }

    /* One entry per user; the last line wins, as in Mosquitto. */
    if (t->n > 1)
        qsort(t->ents, t->n, sizeof(*t->ents), pwent_cmp);
    size_t out = 0;
    for (size_t i = 0; i < t->n; i++) {
        if (i + 1 < t->n && strcmp(t->ents[i].user, t->ents[i + 1].user) == 0) {
            st->host->log(st->self, CULEX_LOG_WARNING,
                          "%s:%u: user %s is defined again on line %u; the later line is used.",
                          path, t->ents[i].line, t->ents[i].user, t->ents[i + 1].line);
            continue;
        }
        t->ents[out++] = t->ents[i];
    }
    t->n = out;
    return t;
fail:
    pwtab_destroy(&t->ref);
    return NULL;
}

static int pwent_key_cmp(const void *key, const void *ent)
{
    return strcmp(key, ((const af_pwent *)ent)->user);
}

static const af_pwent *pwtab_find(const af_pwtab *t, const char *user)
{
    return t->n ? bsearch(user, t->ents, t->n, sizeof(*t->ents), pwent_key_cmp) : NULL;
}

/* ------------------------------------------------------------ acl file */

typedef struct af_acltab {
    af_ref ref;
    culex_acl *acl;
} af_acltab;

static void acltab_destroy(af_ref *r)
{
    af_acltab *t = (af_acltab *)r;
    culex_acl_free(t->acl);
    free(t);
}

static af_acltab *acltab_load(const char *path, char *err, size_t errlen)
{
    af_acltab *t = calloc(1, sizeof(*t));
    if (!t || !(t->acl = culex_acl_new())) {
        snprintf(err, errlen, "%s: out of memory", path);
        free(t);
        return NULL;
    }
    atomic_init(&t->ref.refs, 1);
    t->ref.destroy = acltab_destroy;
    if (culex_acl_load_file(t->acl, path, err, errlen) != 0) {
        acltab_destroy(&t->ref);
        return NULL;
    }
    return t;
}

/* ------------------------------------------------------------ hooks */

/* Pool thread (CULEX_HOOK_BLOCKING), or a worker when the host cannot block. */
static int on_auth_basic(culex_plugin *self, int event, void *event_data, void *userdata)
{
    af_state *st = userdata;
    const culex_ev_auth_basic *ev = event_data;

    if (!ev->username)
        return CULEX_DEFER; /* anonymous: the listener's allow_anonymous decides */
    af_pwtab *t = (af_pwtab *)slot_get(&st->pw);
    if (!t)
        return CULEX_DEFER;
    int verdict = CULEX_DENY;
    const af_pwent *e = pwtab_find(t, ev->username);
    if (e && ev->password) {
        int rc = culex_pw_verify(e->hash, (const char *)ev->password, ev->password_len);
        if (rc == 1)
            verdict = CULEX_ALLOW;
        else if (rc < 0)
            st->host->log(self, CULEX_LOG_WARNING,
                          "%s:%u: the password hash of user %s cannot be checked: %s", t->path,
                          e->line, e->user, culex_pw_strerror(rc));
    }
    ref_put(&t->ref);
    return verdict;
}

static unsigned acl_kind(int access)
{
    switch (access) {
    case CULEX_ACCESS_PUBLISH: return CULEX_ACL_WRITE;
    case CULEX_ACCESS_RECEIVE: return CULEX_ACL_READ;
    case CULEX_ACCESS_SUBSCRIBE: return CULEX_ACL_SUBSCRIBE;
    case CULEX_ACCESS_UNSUBSCRIBE: return CULEX_ACL_UNSUBSCRIBE;
    default: return 0;
    }
}

/* Worker thread, every publish, delivery and (un)subscribe: no allocation, and no lock
 * held while checking. */
static int on_acl(culex_plugin *self, int event, void *event_data, void *userdata)
{
    af_state *st = userdata;
    const culex_ev_acl *ev = event_data;
    unsigned kind = acl_kind(ev->access);

    if (!kind || !ev->topic)
        return CULEX_DENY; /* an access kind newer than this plugin: fail closed */
    af_acltab *t = (af_acltab *)slot_get(&st->acl);
    if (!t)
        return CULEX_DEFER;
    int rc = culex_acl_check(t->acl, st->host->client_username(ev->client),
                             st->host->client_id(ev->client), kind, ev->topic);
    ref_put(&t->ref);
    return rc == CULEX_ACL_ALLOW ? CULEX_ALLOW : CULEX_DENY; /* NO_MATCH denies */
}

/* The options both the entry point and reload understand. */
typedef struct af_opts {
    const char *password_file;
    const char *acl_file;
    int priority;
} af_opts;

static int parse_opts(const culex_option *opts, size_t n, af_opts *o, char *err, size_t errlen)
{
    const culex_opt_spec spec[] = {
        {"password_file", CULEX_OPT_PATH, false, NULL, &o->password_file, 0, 0, NULL,
         "file of username:hash lines (mosquitto_passwd or culex_passwd format)"},
        {"acl_file", CULEX_OPT_PATH, false, NULL, &o->acl_file, 0, 0, NULL,
         "Mosquitto acl_file: topic, user and pattern lines"},
        {"priority", CULEX_OPT_INT, false, "0", &o->priority, -1000000, 1000000, NULL,
         "position of this plugin's hooks in the chains (lower runs first)"},
    };
    *o = (af_opts){NULL, NULL, 0};
    return culex_opts_parse(opts, n, spec, sizeof(spec) / sizeof(spec[0]), err, errlen);
}

/* Re-reads one file into its slot; a file that fails keeps the old table. */
static void reload_one(af_state *st, af_slot *slot, char **cur_path, const char *new_path,
                       const char *what)
{
    char err[AF_ERRLEN];
    const char *path = new_path ? new_path : *cur_path;
    af_ref *fresh = NULL;
    size_t count = 0;

    if (!new_path)
        st->host->log(st->self, CULEX_LOG_WARNING,
                      "plugin_opt_%s was removed; removing a file takes a restart, %s is "
                      "reloaded instead", what, *cur_path);
    if (slot == &st->pw) {
        af_pwtab *t = pwtab_load(st, path, err, sizeof(err));
        fresh = t ? &t->ref : NULL;
        count = t ? t->n : 0;
    } else {
        af_acltab *t = acltab_load(path, err, sizeof(err));
        fresh = t ? &t->ref : NULL;
        count = t ? culex_acl_rule_count(t->acl) : 0;
    }
    if (!fresh) {
        st->host->log(st->self, CULEX_LOG_ERR, "reload: %s; keeping the %s loaded from %s",
                      err, what, *cur_path);
        return;
    }
    if (strcmp(path, *cur_path) != 0) {
        char *copy = strdup(path);
        if (!copy) {
            ref_put(fresh);
            st->host->log(st->self, CULEX_LOG_ERR, "reload: out of memory; keeping the %s "
                          "loaded from %s", what, *cur_path);
            return;
        }
        free(*cur_path);
        *cur_path = copy;
    }
    slot_set(slot, fresh);
    st->host->log(st->self, CULEX_LOG_NOTICE, "reloaded %s: %zu %s%s", path, count,
                  slot == &st->pw ? "user" : "rule", count == 1 ? "" : "s");
}

/* SIGHUP, main thread. The set of files is fixed at start (hooks cannot be added later):
 * a file added by the new options is reported and ignored, a removed one is kept. */
static int on_reload(culex_plugin *self, int event, void *event_data, void *userdata)
{
    af_state *st = userdata;
    const culex_ev_reload *ev = event_data;
    char err[AF_ERRLEN];
    af_opts o;

    if (parse_opts(ev->options, ev->option_count, &o, err, sizeof(err)) != 0) {
        st->host->log(self, CULEX_LOG_ERR, "reload: %s; keeping the current files", err);
        return CULEX_DEFER;
    }
    if (o.password_file && !st->pw_path)
        st->host->log(self, CULEX_LOG_WARNING, "reload: plugin_opt_password_file was added; "
                      "adding a file takes a restart, it is ignored until then");
    if (o.acl_file && !st->acl_path)
        st->host->log(self, CULEX_LOG_WARNING, "reload: plugin_opt_acl_file was added; "
                      "adding a file takes a restart, it is ignored until then");
    if (o.priority != st->priority)
        st->host->log(self, CULEX_LOG_WARNING, "reload: plugin_opt_priority changed to %d; "
                      "hook order changes take a restart, %d stays until then", o.priority,
                      st->priority);
    if (st->pw_path)
        reload_one(st, &st->pw, &st->pw_path, o.password_file, "password_file");
    if (st->acl_path)
        reload_one(st, &st->acl, &st->acl_path, o.acl_file, "acl_file");
    return CULEX_DEFER;
}

/* ------------------------------------------------------------ entry and cleanup */

static void cleanup(culex_plugin *self, void *userdata)
{
    af_state *st = userdata;

    slot_set(&st->pw, NULL);
    slot_set(&st->acl, NULL);
    pthread_spin_destroy(&st->pw.lock);
    pthread_spin_destroy(&st->acl.lock);
    free(st->pw_path);
    free(st->acl_path);
    free(st);
}

CULEX_PLUGIN_EXPORT int culex_plugin_entry(const culex_host_api *host, culex_plugin *self,
                                           char **errmsg)
{
    if (!host || host->abi_major != CULEX_ABI_MAJOR)
        return CULEX_ERR_ABI_MAJOR;
    af_state *st = calloc(1, sizeof(*st));
    if (!st || pthread_spin_init(&st->pw.lock, PTHREAD_PROCESS_PRIVATE) != 0) {
        free(st);
        host->set_error(errmsg, "out of memory");
        return -1;
    }
    if (pthread_spin_init(&st->acl.lock, PTHREAD_PROCESS_PRIVATE) != 0) {
        pthread_spin_destroy(&st->pw.lock);
        free(st);
        host->set_error(errmsg, "out of memory");
        return -1;
    }
    /* From here on the host owns st through cleanup(), even if we fail below. */
    CULEX_PLUGIN_INIT(host, self, errmsg, "auth_file", CULEX_VERSION_STRING, cleanup, st);
    st->host = host;
    st->self = self;

    char err[AF_ERRLEN];
    af_opts o;
    size_t nopts = 0;
    const culex_option *opts = host->options(self, &nopts);
    if (parse_opts(opts, nopts, &o, err, sizeof(err)) != 0) {
        host->set_error(errmsg, "%s", err);
        return -1;
    }
    if (!o.password_file && !o.acl_file) {
        host->set_error(errmsg, "nothing to do: set plugin_opt_password_file and/or "
                        "plugin_opt_acl_file");
        return -1;
    }
    if (o.password_file) {
        af_pwtab *t = pwtab_load(st, o.password_file, err, sizeof(err));
        if (!t) {
            host->set_error(errmsg, "%s", err);
            return -1;
        }
        slot_set(&st->pw, &t->ref);
        if (!(st->pw_path = strdup(o.password_file))) {
            host->set_error(errmsg, "out of memory");
            return -1;
        }
    }
    if (o.acl_file) {
        af_acltab *t = acltab_load(o.acl_file, err, sizeof(err));
        if (!t) {
            host->set_error(errmsg, "%s", err);
            return -1;
        }
        slot_set(&st->acl, &t->ref);
        if (!(st->acl_path = strdup(o.acl_file))) {
            host->set_error(errmsg, "out of memory");
            return -1;
        }
    }

    /* Password checks can take tens of milliseconds (argon2id, PBKDF2 with many
     * iterations): run them on the host's pool. ACL checks are in memory: stay on the
     * worker, where RECEIVE checks (never sent to blocking hooks) are answered too. */
    st->priority = o.priority;
    unsigned auth_flags = host->has_cap(CULEX_CAP_BLOCKING) ? CULEX_HOOK_BLOCKING : 0;
    if ((st->pw_path && host->hook_add(self, CULEX_EV_AUTH_BASIC, o.priority, auth_flags, 0,
                                       on_auth_basic, st) != 0) ||
        (st->acl_path &&
         host->hook_add(self, CULEX_EV_ACL, o.priority, 0, 0, on_acl, st) != 0) ||
        host->hook_add(self, CULEX_EV_RELOAD, o.priority, 0, 0, on_reload, st) != 0) {
        host->set_error(errmsg, "the host refused a hook");
        return -1;
    }
    if (st->pw_path) {
        af_pwtab *t = (af_pwtab *)slot_peek(&st->pw);
        host->log(self, CULEX_LOG_INFO, "%s: %zu user%s", st->pw_path, t->n,
                  t->n == 1 ? "" : "s");
    }
    if (st->acl_path) {
        af_acltab *t = (af_acltab *)slot_peek(&st->acl);
        size_t rules = culex_acl_rule_count(t->acl), users = culex_acl_user_count(t->acl);
        host->log(self, CULEX_LOG_INFO, "%s: %zu rule%s, %zu user section%s", st->acl_path,
                  rules, rules == 1 ? "" : "s", users, users == 1 ? "" : "s");
    }
    return 0;
}
