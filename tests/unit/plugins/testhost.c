/* testhost.c: the minimal plugin host of testhost.h (a test fixture). */
#include "testhost.h"

#include <dlfcn.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define TH_MAX_HOOKS 32

typedef struct th_hook {
    int event;
    int priority;
    unsigned flags;
    unsigned timeout_ms;
    culex_hook_cb cb;
    void *ud;
} th_hook;

struct culex_plugin {
    void *dl;
    bool in_entry;
    bool declared;
    char name[64];
    uint32_t abi_minor;
    void (*cleanup)(culex_plugin *self, void *ud);
    void *cleanup_ud;
    th_hook hooks[TH_MAX_HOOKS];
    size_t nhooks;
    culex_option *opts;
    size_t nopts;
    pthread_mutex_t log_lock;
    char *log;
    size_t log_len;
};

struct th_plugin {
    culex_plugin p;
};

static void free_opts(culex_option *opts, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free((char *)opts[i].name);
        free((char *)opts[i].value);
    }
    free(opts);
}

static culex_option *copy_opts(const culex_option *opts, size_t n)
{
    culex_option *c = calloc(n ? n : 1, sizeof(*c));
    if (!c)
        abort();
    for (size_t i = 0; i < n; i++) {
        c[i].name = strdup(opts[i].name);
        c[i].value = strdup(opts[i].value ? opts[i].value : "");
        if (!c[i].name || !c[i].value)
            abort();
    }
    return c;
}

/* ------------------------------------------------------------ the host table */

static int h_declare(culex_plugin *self, const culex_plugin_desc *d)
{
    if (!self->in_entry || !d || d->size < offsetof(culex_plugin_desc, cleanup) || !d->name)
        return -1;
    snprintf(self->name, sizeof(self->name), "%s", d->name);
    self->abi_minor = d->abi_minor;
    if (d->size >= offsetof(culex_plugin_desc, cleanup_userdata) + sizeof(void *)) {
        self->cleanup = d->cleanup;
        self->cleanup_ud = d->cleanup_userdata;
    }
    self->declared = true;
    return 0;
}

static int h_hook_add(culex_plugin *self, int event, int priority, unsigned flags,
                      unsigned timeout_ms, culex_hook_cb cb, void *ud)
{
    if (!self->in_entry || !self->declared || !cb || event < CULEX_EV_AUTH_BASIC ||
        event > CULEX_EV_WORKER_STOP || (flags & ~(unsigned)CULEX_HOOK_BLOCKING) ||
        self->nhooks == TH_MAX_HOOKS)
        return -1;
    /* The real host allows blocking only for decisions; so does the fixture. */
    if ((flags & CULEX_HOOK_BLOCKING) && event != CULEX_EV_AUTH_BASIC &&
        event != CULEX_EV_AUTH_EXT_START && event != CULEX_EV_AUTH_EXT_CONTINUE &&
        event != CULEX_EV_ACL)
        return -1;
    self->hooks[self->nhooks++] = (th_hook){event, priority, flags, timeout_ms, cb, ud};
    return 0;
}

static const culex_option *h_options(culex_plugin *self, size_t *count)
{
    if (count)
        *count = self->nopts;
    return self->opts;
}

static const char *h_option(culex_plugin *self, const char *name)
{
    for (size_t i = 0; i < self->nopts; i++)
        if (strcmp(self->opts[i].name, name) == 0)
            return self->opts[i].value;
    return NULL;
}

static void h_set_error(char **errmsg, const char *fmt, ...)
{
    if (!errmsg)
        return;
    char buf[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    free(*errmsg);
    *errmsg = strdup(buf);
}

static const char *level_name(int level)
{
    switch (level) {
    case CULEX_LOG_ERR: return "ERR";
    case CULEX_LOG_WARNING: return "WARNING";
    case CULEX_LOG_NOTICE: return "NOTICE";
    case CULEX_LOG_DEBUG: return "DEBUG";
    default: return "INFO";
    }
}

static void h_vlog(culex_plugin *self, int level, const char *fmt, va_list ap)
{
    char msg[2048];
    vsnprintf(msg, sizeof(msg), fmt, ap);
    char line[2200];
    int n = snprintf(line, sizeof(line), "%s %s\n", level_name(level), msg);
    if (n < 0)
        return;
    if ((size_t)n >= sizeof(line))
        n = (int)sizeof(line) - 1;
    if (getenv("TH_VERBOSE"))
        fprintf(stderr, "[%s] %s", self->name, line);
    pthread_mutex_lock(&self->log_lock);
    char *grown = realloc(self->log, self->log_len + (size_t)n + 1);
    if (grown) {
        self->log = grown;
        memcpy(self->log + self->log_len, line, (size_t)n + 1);
        self->log_len += (size_t)n;
    }
    pthread_mutex_unlock(&self->log_lock);
}

static void h_log(culex_plugin *self, int level, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    h_vlog(self, level, fmt, ap);
    va_end(ap);
}

static const char *h_client_id(const culex_client *c) { return c->id; }
static const char *h_client_username(const culex_client *c) { return c->username; }
static const char *h_client_address(const culex_client *c) { return c->address; }
static int h_client_protocol(const culex_client *c) { return c->protocol; }
static int h_client_listener_port(const culex_client *c) { return c->port; }

static const char *h_client_cert_field(const culex_client *c, const char *field)
{
    return strcmp(field, "CN") == 0 ? c->cert_cn : NULL;
}

static void *h_client_data_get(culex_plugin *self, const culex_client *c) { return NULL; }

static int h_client_data_set(culex_plugin *self, culex_client *c, void *data,
                             void (*free_cb)(void *data))
{
    return -1;
}

static int h_kick(culex_plugin *self, const char *client_id) { return -1; }

static int h_publish(culex_plugin *self, const char *topic, const void *payload, size_t len,
                     int qos, bool retain)
{
    return 0;
}

static culex_pending *h_pending_begin(culex_plugin *self, void *event_data,
                                      culex_cancel_cb cancel, void *cancel_userdata)
{
    return NULL;
}

static void h_pending_done(culex_pending *ticket, int verdict, uint8_t *out_data,
                           size_t out_data_len)
{
    free(out_data);
}

static int64_t h_time_mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int64_t h_time_wall_s(void) { return (int64_t)time(NULL); }
static void *h_alloc(size_t n) { return malloc(n); }
static void h_free(void *p) { free(p); }
static bool h_has_cap(int cap) { return cap == CULEX_CAP_BLOCKING; }

static const culex_host_api host_table = {
    .abi_major = CULEX_ABI_MAJOR,
    .abi_minor = CULEX_ABI_MINOR,
    .size = sizeof(culex_host_api),
    .declare = h_declare,
    .hook_add = h_hook_add,
    .options = h_options,
    .option = h_option,
    .set_error = h_set_error,
    .log = h_log,
    .vlog = h_vlog,
    .client_id = h_client_id,
    .client_username = h_client_username,
    .client_address = h_client_address,
    .client_protocol = h_client_protocol,
    .client_listener_port = h_client_listener_port,
    .client_cert_field = h_client_cert_field,
    .client_data_get = h_client_data_get,
    .client_data_set = h_client_data_set,
    .kick = h_kick,
    .publish = h_publish,
    .pending_begin = h_pending_begin,
    .pending_done = h_pending_done,
    .time_mono_ms = h_time_mono_ms,
    .time_wall_s = h_time_wall_s,
    .alloc = h_alloc,
    .free = h_free,
    .has_cap = h_has_cap,
};

/* ------------------------------------------------------------ test API */

th_plugin *th_load(const char *path, const culex_option *opts, size_t nopts, char *err,
                   size_t errlen)
{
    th_plugin *tp = calloc(1, sizeof(*tp));
    if (!tp)
        abort();
    culex_plugin *p = &tp->p;
    pthread_mutex_init(&p->log_lock, NULL);
    snprintf(p->name, sizeof(p->name), "?");
    p->opts = copy_opts(opts, nopts);
    p->nopts = nopts;
    p->dl = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!p->dl) {
        snprintf(err, errlen, "dlopen: %s", dlerror());
        th_unload(tp);
        return NULL;
    }
    culex_plugin_entry_fn entry;
    *(void **)&entry = dlsym(p->dl, "culex_plugin_entry");
    if (!entry) {
        snprintf(err, errlen, "no culex_plugin_entry in %s", path);
        th_unload(tp);
        return NULL;
    }
    char *msg = NULL;
    p->in_entry = true;
    int rc = entry(&host_table, p, &msg);
    p->in_entry = false;
    if (rc != 0 || !p->declared) {
        snprintf(err, errlen, "%s", rc == 0 ? "plugin did not declare itself"
                                   : msg ? msg : "entry failed without a message");
        free(msg);
        th_unload(tp);
        return NULL;
    }
    free(msg);
    return tp;
}

void th_unload(th_plugin *tp)
{
    if (!tp)
        return;
    culex_plugin *p = &tp->p;
    if (p->declared && p->cleanup)
        p->cleanup(p, p->cleanup_ud);
    if (p->dl)
        dlclose(p->dl);
    free_opts(p->opts, p->nopts);
    free(p->log);
    pthread_mutex_destroy(&p->log_lock);
    free(tp);
}

static bool is_notification(int event)
{
    return event == CULEX_EV_CONNECT || event == CULEX_EV_DISCONNECT ||
           event == CULEX_EV_TICK || event == CULEX_EV_RELOAD ||
           event == CULEX_EV_WORKER_START || event == CULEX_EV_WORKER_STOP;
}

int th_fire(th_plugin *tp, int event, void *ev)
{
    culex_plugin *p = &tp->p;
    /* Priority order, ties in registration order (a stable selection, hooks are few). */
    bool done[TH_MAX_HOOKS] = {false};
    for (size_t n = 0; n < p->nhooks; n++) {
        size_t best = p->nhooks;
        for (size_t i = 0; i < p->nhooks; i++)
            if (!done[i] && p->hooks[i].event == event &&
                (best == p->nhooks || p->hooks[i].priority < p->hooks[best].priority))
                best = i;
        if (best == p->nhooks)
            break;
        done[best] = true;
        int v = p->hooks[best].cb(p, event, ev, p->hooks[best].ud);
        if (!is_notification(event) && v != CULEX_DEFER)
            return v;
    }
    return CULEX_DEFER;
}

void th_reload(th_plugin *tp, const culex_option *opts, size_t nopts)
{
    culex_plugin *p = &tp->p;
    free_opts(p->opts, p->nopts);
    p->opts = copy_opts(opts, nopts);
    p->nopts = nopts;
    culex_ev_reload ev = {sizeof(ev), p->opts, p->nopts};
    th_fire(tp, CULEX_EV_RELOAD, &ev);
}

int th_auth(th_plugin *tp, const char *client_id, const char *username, const char *password)
{
    culex_client c = {client_id, username, "127.0.0.1:50000", 4, 1883, NULL};
    culex_ev_auth_basic ev = {sizeof(ev), &c, client_id, username,
                              (const uint8_t *)password, password ? strlen(password) : 0};
    return th_fire(tp, CULEX_EV_AUTH_BASIC, &ev);
}

int th_acl(th_plugin *tp, const char *client_id, const char *username, int access,
           const char *topic)
{
    culex_client c = {client_id, username, "127.0.0.1:50000", 4, 1883, NULL};
    culex_ev_acl ev = {sizeof(ev), &c, access, topic, 0, false, NULL, 0};
    return th_fire(tp, CULEX_EV_ACL, &ev);
}

bool th_has_hook(const th_plugin *tp, int event)
{
    for (size_t i = 0; i < tp->p.nhooks; i++)
        if (tp->p.hooks[i].event == event)
            return true;
    return false;
}

unsigned th_hook_flags(const th_plugin *tp, int event)
{
    unsigned f = 0;
    for (size_t i = 0; i < tp->p.nhooks; i++)
        if (tp->p.hooks[i].event == event)
            f |= tp->p.hooks[i].flags;
    return f;
}

const char *th_name(const th_plugin *tp) { return tp->p.name; }
unsigned th_abi_minor(const th_plugin *tp) { return tp->p.abi_minor; }

const char *th_log(th_plugin *tp)
{
    return tp->p.log ? tp->p.log : "";
}

bool th_log_has(th_plugin *tp, const char *needle)
{
    pthread_mutex_lock(&tp->p.log_lock);
    bool has = tp->p.log && strstr(tp->p.log, needle) != NULL;
    pthread_mutex_unlock(&tp->p.log_lock);
    return has;
}

void th_log_clear(th_plugin *tp)
{
    pthread_mutex_lock(&tp->p.log_lock);
    free(tp->p.log);
    tp->p.log = NULL;
    tp->p.log_len = 0;
    pthread_mutex_unlock(&tp->p.log_lock);
}
