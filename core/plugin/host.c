/* host.c: plugin loading, the host function table, hook chains, the blocking pool and
 * pending verdicts. */
#include "host.h"

#include <dlfcn.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/alloc.h"
#include "util/err.h"
#include "util/log.h"
#include "util/time.h"

/* Event numbers index per-chain arrays: every culex_event value is below this. */
#define MAX_EVENT 64
#define DEFAULT_TIMEOUT_MS 10000

typedef struct hook {
    culex_plugin *plugin;
    int event;
    int priority;
    unsigned flags;
    unsigned timeout_ms;
    culex_hook_cb cb;
    void *ud;
    size_t order; /* load order, for ties */
} hook_t;

struct culex_plugin {
    cx_phost_t *host;
    char *path;
    char *name;
    char *version;
    uint32_t abi_minor;
    bool declared;
    void *dl;
    culex_option *opts;
    size_t nopts;
    int listener;
    int *uses;
    size_t nuses;
    bool deny_special;
    size_t index;
    void (*cleanup)(culex_plugin *self, void *ud);
    void *cleanup_ud;
};

struct cx_chain {
    hook_t *hooks[MAX_EVENT];
    size_t nhooks[MAX_EVENT];
};

typedef struct pdata {
    culex_plugin *plugin;
    void *data;
    void (*free_cb)(void *);
} pdata_t;
struct cx_pdata {
    pdata_t d;
};

struct cx_phost {
    cx_phost_services_t svc;
    culex_plugin **plugins;
    size_t nplugins;
    hook_t *hooks; /* every registered hook, before chains are built */
    size_t nhooks, hooks_cap;
    cx_chain_t *chains; /* [nlisteners] */
    size_t nlisteners;
    /* blocking pool */
    pthread_t *threads;
    unsigned nthreads;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    cx_ticket_t *queue_head, *queue_tail;
    bool stopping;
    /* every live ticket, so that those a plugin never answered are freed at shutdown */
    pthread_mutex_t tickets_lock;
    cx_ticket_t *tickets;
};

enum { T_RUNNING = 0, T_DONE = 1, T_CANCELLED = 2 };

struct cx_ticket {
    atomic_int refs;
    atomic_int state;
    cx_ticket_t *next_job;
    cx_ticket_t *prev_live, *next_live; /* host->tickets */
    cx_chain_t *chain;
    int event;
    size_t next_hook; /* where the chain goes on */
    unsigned timeout_ms;
    const char *plugin_name;
    int verdict;
    uint8_t *out;
    size_t out_len;
    culex_cancel_cb cancel;
    void *cancel_ud;
    cx_ticket_done_cb done;
    void *done_ud;
    cx_phost_t *host;
    union {
        culex_ev_auth_basic auth;
        culex_ev_auth_ext ext;
        culex_ev_acl acl;
    } ev;
    /* owned copies the event points to */
    char *s1, *s2;
    uint8_t *b1;
};

/* The chain run that is calling into a plugin on this thread, so that pending_begin()
 * knows which event it is about. Thread-local by necessity: the ABI's pending_begin takes
 * no run handle, and callbacks run on workers and pool threads alike. */
static _Thread_local struct run_ctx {
    cx_chain_t *chain;
    int event;
    void *ev;
    size_t index;
    cx_ticket_t *ticket; /* the async run this is part of, if any */
    cx_ticket_t *made;   /* ticket made by pending_begin during the callback */
    cx_ticket_done_cb done;
    void *done_ud;
} *tls_run;

/* ---------------------------------------------------------------- clients */

culex_client *cx_pclient_new(const char *id, size_t id_len, const char *username,
                             size_t username_len, const char *address, int protocol, int port)
{
    culex_client *c = cx_calloc(1, sizeof *c);
    if (!c)
        return NULL;
    atomic_init(&c->refs, 1);
    c->id = cx_strndup(id ? id : "", id ? id_len : 0);
    c->username = username ? cx_strndup(username, username_len) : NULL;
    if (!c->id || (username && !c->username)) {
        cx_free(c->id);
        cx_free(c->username);
        cx_free(c);
        return NULL;
    }
    snprintf(c->address, sizeof c->address, "%s", address ? address : "");
    c->protocol = protocol;
    c->port = port;
    return c;
}

int cx_pclient_set_cert(culex_client *c, const char *fields, size_t len)
{
    char *n = NULL;
    if (len) {
        n = cx_malloc(len);
        if (!n)
            return CX_ENOMEM;
        memcpy(n, fields, len);
    }
    cx_free(c->cert);
    c->cert = n;
    c->cert_len = len;
    return CX_OK;
}

int cx_pclient_set_id(culex_client *c, const char *id, size_t len)
{
    char *n = cx_strndup(id, len);
    if (!n)
        return CX_ENOMEM;
    cx_free(c->id);
    c->id = n;
    return CX_OK;
}

void cx_pclient_ref(culex_client *c)
{
    atomic_fetch_add_explicit(&c->refs, 1, memory_order_relaxed);
}

void cx_pclient_unref(culex_client *c)
{
    if (!c || atomic_fetch_sub_explicit(&c->refs, 1, memory_order_acq_rel) != 1)
        return;
    for (size_t i = 0; i < c->ndata; i++)
        if (c->data[i].d.free_cb)
            c->data[i].d.free_cb(c->data[i].d.data);
    cx_free(c->data);
    cx_free(c->id);
    cx_free(c->username);
    cx_free(c->cert);
    cx_free(c);
}

/* ---------------------------------------------------------------- host table */

static int h_declare(culex_plugin *self, const culex_plugin_desc *d)
{
    if (!d || d->size < offsetof(culex_plugin_desc, cleanup) || !d->name)
        return -1;
    self->name = cx_strdup(d->name);
    self->version = cx_strdup(d->version ? d->version : "");
    if (!self->name || !self->version)
        return -1;
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
    cx_phost_t *h = self->host;
    bool known = (event > 0 && event <= CULEX_EV_WORKER_STOP) ||
                 event == CULEX_EV_PERSIST || event == CULEX_EV_PERSIST_RESTORE;
    if (!self->declared || !cb || !known || (flags & ~(unsigned)CULEX_HOOK_BLOCKING))
        return -1;
    /* Blocking is for decisions that may wait; a message rewrite or a notification may
     * not hold a worker's packet stream. */
    if ((flags & CULEX_HOOK_BLOCKING) && event != CULEX_EV_AUTH_BASIC &&
        event != CULEX_EV_AUTH_EXT_START && event != CULEX_EV_AUTH_EXT_CONTINUE &&
        event != CULEX_EV_ACL)
        return -1;
    if (h->nhooks == h->hooks_cap) {
        size_t cap = h->hooks_cap ? h->hooks_cap * 2 : 16;
        hook_t *n = cx_realloc(h->hooks, cap * sizeof *n);
        if (!n)
            return -1;
        h->hooks = n;
        h->hooks_cap = cap;
    }
    h->hooks[h->nhooks++] = (hook_t){self, event, priority, flags,
                                     timeout_ms ? timeout_ms : DEFAULT_TIMEOUT_MS, cb, ud,
                                     h->nhooks};
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
        if (!strcmp(self->opts[i].name, name))
            return self->opts[i].value;
    return NULL;
}

static void h_set_error(char **errmsg, const char *fmt, ...)
{
    if (!errmsg)
        return;
    char buf[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    cx_free(*errmsg);
    *errmsg = cx_strdup(buf);
}

static unsigned log_type(int level)
{
    switch (level) {
    case CULEX_LOG_ERR: return CX_LOG_ERR;
    case CULEX_LOG_WARNING: return CX_LOG_WARNING;
    case CULEX_LOG_NOTICE: return CX_LOG_NOTICE;
    case CULEX_LOG_DEBUG: return CX_LOG_DEBUG;
    default: return CX_LOG_INFO;
    }
}

static void h_vlog(culex_plugin *self, int level, const char *fmt, va_list ap)
{
    unsigned t = log_type(level);
    if (!cx_log_enabled(t))
        return;
    char buf[900];
    vsnprintf(buf, sizeof buf, fmt, ap);
    cx_log_write(t, "plugin %s: %s", self && self->name ? self->name : "?", buf);
}

static void h_log(culex_plugin *self, int level, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    h_vlog(self, level, fmt, ap);
    va_end(ap);
}

static const char *h_client_id(const culex_client *c) { return c ? c->id : NULL; }
static const char *h_client_username(const culex_client *c) { return c ? c->username : NULL; }
static const char *h_client_address(const culex_client *c) { return c ? c->address : NULL; }
static int h_client_protocol(const culex_client *c) { return c ? c->protocol : 0; }
static int h_client_listener_port(const culex_client *c) { return c ? c->port : 0; }
/* The transport's identity facts (net/conn.h, cx_conn_field, lists the names). */
static const char *h_client_cert_field(const culex_client *c, const char *f)
{
    if (!c || !f || !c->cert)
        return NULL;
    const char *p = c->cert, *end = p + c->cert_len;
    while (p < end) {
        const char *v = p + strlen(p) + 1;
        if (strcmp(p, f) == 0)
            return v;
        p = v + strlen(v) + 1;
    }
    return NULL;
}

static void *h_client_data_get(culex_plugin *self, const culex_client *c)
{
    for (size_t i = 0; c && i < c->ndata; i++)
        if (c->data[i].d.plugin == self)
            return c->data[i].d.data;
    return NULL;
}

static int h_client_data_set(culex_plugin *self, culex_client *c, void *data,
                             void (*free_cb)(void *))
{
    if (!c)
        return -1;
    for (size_t i = 0; i < c->ndata; i++)
        if (c->data[i].d.plugin == self) {
            if (c->data[i].d.free_cb && c->data[i].d.data != data)
                c->data[i].d.free_cb(c->data[i].d.data);
            c->data[i].d = (pdata_t){self, data, free_cb};
            return 0;
        }
    struct cx_pdata *n = cx_realloc(c->data, (c->ndata + 1) * sizeof *n);
    if (!n)
        return -1;
    c->data = n;
    c->data[c->ndata++].d = (pdata_t){self, data, free_cb};
    return 0;
}

static int h_kick(culex_plugin *self, const char *client_id)
{
    cx_phost_t *h = self->host;
    return h->svc.kick ? h->svc.kick(h->svc.ud, client_id) : -1;
}

static int h_publish(culex_plugin *self, const char *topic, const void *payload, size_t len,
                     int qos, bool retain)
{
    cx_phost_t *h = self->host;
    return h->svc.publish ? h->svc.publish(h->svc.ud, topic, payload, len, qos, retain) : -1;
}

static int64_t h_time_mono_ms(void) { return (int64_t)cx_time_mono_ms(); }
static int64_t h_time_wall_s(void) { return cx_time_wall_s(); }
static void *h_alloc(size_t n) { return cx_malloc(n); }
static void h_free(void *p) { cx_free(p); }
void cx_phost_free_mem(void *p) { cx_free(p); }

static bool h_has_cap(int cap)
{
    return cap == CULEX_CAP_BLOCKING || cap == CULEX_CAP_PENDING || cap == CULEX_CAP_PERSISTENCE;
}

static culex_pending *h_pending_begin(culex_plugin *self, void *event_data,
                                      culex_cancel_cb cancel, void *cancel_ud);
static void h_pending_done(culex_pending *p, int verdict, uint8_t *out, size_t out_len);

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

/* ---------------------------------------------------------------- loading */

cx_phost_t *cx_phost_new(const cx_phost_services_t *svc, size_t nlisteners,
                         unsigned pool_threads)
{
    cx_phost_t *h = cx_calloc(1, sizeof *h);
    if (!h)
        return NULL;
    if (svc)
        h->svc = *svc;
    h->nlisteners = nlisteners;
    h->chains = cx_calloc(nlisteners ? nlisteners : 1, sizeof *h->chains);
    h->nthreads = pool_threads ? pool_threads : 4;
    if (!h->chains) {
        cx_free(h);
        return NULL;
    }
    pthread_mutex_init(&h->lock, NULL);
    pthread_cond_init(&h->cond, NULL);
    pthread_mutex_init(&h->tickets_lock, NULL);
    return h;
}

size_t cx_phost_count(const cx_phost_t *h) { return h ? h->nplugins : 0; }

static int copy_options(culex_plugin *p, const culex_option *opts, size_t nopts)
{
    culex_option *o = cx_calloc(nopts ? nopts : 1, sizeof *o);
    if (!o)
        return CX_ENOMEM;
    for (size_t i = 0; i < nopts; i++) {
        o[i].name = cx_strdup(opts[i].name);
        o[i].value = cx_strdup(opts[i].value ? opts[i].value : "");
        if (!o[i].name || !o[i].value) {
            for (size_t j = 0; j <= i; j++) {
                cx_free((char *)o[j].name);
                cx_free((char *)o[j].value);
            }
            cx_free(o);
            return CX_ENOMEM;
        }
    }
    for (size_t j = 0; j < p->nopts; j++) {
        cx_free((char *)p->opts[j].name);
        cx_free((char *)p->opts[j].value);
    }
    cx_free(p->opts);
    p->opts = o;
    p->nopts = nopts;
    return CX_OK;
}

int cx_phost_set_options(cx_phost_t *h, size_t index, const culex_option *opts, size_t nopts)
{
    if (!h || index >= h->nplugins)
        return CX_EINVAL;
    return copy_options(h->plugins[index], opts, nopts);
}

int cx_phost_load(cx_phost_t *h, const char *path, const culex_option *opts, size_t nopts,
                  const cx_pscope_t *scope, char *err, size_t errlen)
{
    int listener = scope ? scope->listener : -1;
    culex_plugin *p = cx_calloc(1, sizeof *p);
    culex_plugin **list = cx_realloc(h->plugins, (h->nplugins + 1) * sizeof *list);
    if (!p || !list) {
        cx_free(p);
        snprintf(err, errlen, "out of memory loading plugin %s", path);
        return CX_ENOMEM;
    }
    h->plugins = list;
    p->host = h;
    p->listener = listener;
    p->index = h->nplugins;
    p->path = cx_strdup(path);
    p->deny_special = scope ? scope->deny_special_chars : true;
    if (scope && scope->nuses) {
        p->uses = cx_malloc(scope->nuses * sizeof *p->uses);
        if (p->uses) {
            memcpy(p->uses, scope->uses, scope->nuses * sizeof *p->uses);
            p->nuses = scope->nuses;
        }
    }
    if (!p->path || (scope && scope->nuses && !p->uses) || copy_options(p, opts, nopts))
        goto oom;
    h->plugins[h->nplugins++] = p; /* owned by the host from here on, even on failure */

    p->dl = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!p->dl) {
        snprintf(err, errlen, "cannot load plugin %s: %s", path, dlerror());
        return CX_ECONFIG;
    }
    culex_plugin_entry_fn entry;
    *(void **)&entry = dlsym(p->dl, "culex_plugin_entry");
    if (!entry) {
        snprintf(err, errlen,
                 "%s is not a culex plugin (no culex_plugin_entry symbol; Mosquitto plugins "
                 "cannot be loaded, see docs/plugins.md)", path);
        return CX_ECONFIG;
    }
    char *msg = NULL;
    size_t hooks_before = h->nhooks;
    int rc = entry(&host_table, p, &msg);
    if (rc == CULEX_ERR_ABI_MAJOR) {
        snprintf(err, errlen, "plugin %s was built for another plugin ABI major version; this "
                 "culex offers ABI %d.%d", path, CULEX_ABI_MAJOR, CULEX_ABI_MINOR);
    } else if (rc != 0) {
        snprintf(err, errlen, "plugin %s failed to start: %s", path, msg ? msg : "no reason given");
    } else if (!p->declared) {
        snprintf(err, errlen, "plugin %s did not declare itself (host->declare)", path);
        rc = -1;
    }
    cx_free(msg);
    if (rc != 0) {
        h->nhooks = hooks_before;
        return CX_ECONFIG;
    }
    if (p->abi_minor > CULEX_ABI_MINOR)
        cx_log(CX_LOG_WARNING, "Plugin %s was built for ABI 1.%u, newer than this culex (1.%d); "
               "it must check CULEX_HOST_HAS before using newer functions.", p->name,
               p->abi_minor, CULEX_ABI_MINOR);
    cx_log(CX_LOG_NOTICE, "Loaded plugin %s %s (%s, ABI 1.%u)%s.", p->name, p->version, path,
           p->abi_minor, listener >= 0 ? " for one listener" : "");
    return CX_OK;
oom:
    cx_free(p->uses);
    cx_free(p->path);
    cx_free(p);
    snprintf(err, errlen, "out of memory loading plugin %s", path);
    return CX_ENOMEM;
}

static int hook_cmp(const void *a, const void *b)
{
    const hook_t *x = a, *y = b;
    if (x->priority != y->priority)
        return x->priority < y->priority ? -1 : 1;
    return x->order < y->order ? -1 : x->order > y->order;
}

int cx_phost_finish(cx_phost_t *h)
{
    if (h->nhooks) /* qsort may not be given NULL, even for zero elements */
        qsort(h->hooks, h->nhooks, sizeof *h->hooks, hook_cmp);
    for (size_t li = 0; li < h->nlisteners; li++) {
        cx_chain_t *c = &h->chains[li];
        for (size_t i = 0; i < h->nhooks; i++) {
            hook_t *hk = &h->hooks[i];
            const culex_plugin *p = hk->plugin;
            bool applies = p->listener == -1 || (p->listener >= 0 && (size_t)p->listener == li);
            for (size_t u = 0; p->listener == -2 && u < p->nuses && !applies; u++)
                applies = p->uses[u] >= 0 && (size_t)p->uses[u] == li;
            if (!applies)
                continue;
            hook_t *n = cx_realloc(c->hooks[hk->event], (c->nhooks[hk->event] + 1) * sizeof *n);
            if (!n)
                return CX_ENOMEM;
            c->hooks[hk->event] = n;
            n[c->nhooks[hk->event]++] = *hk;
        }
    }
    for (size_t i = 0; i < h->nhooks; i++)
        cx_log(CX_LOG_INFO, "Plugin hook: event %d, priority %d, plugin %s%s.", h->hooks[i].event,
               h->hooks[i].priority, h->hooks[i].plugin->name,
               h->hooks[i].flags & CULEX_HOOK_BLOCKING ? " (blocking)" : "");
    return CX_OK;
}

cx_chain_t *cx_phost_chain(cx_phost_t *h, int listener)
{
    if (!h || listener < 0 || (size_t)listener >= h->nlisteners)
        return NULL;
    return &h->chains[listener];
}

bool cx_chain_has(const cx_chain_t *c, int event)
{
    return c && event > 0 && event < MAX_EVENT && c->nhooks[event] > 0;
}


bool cx_chain_has_nonblocking(const cx_chain_t *c, int event)
{
    if (!cx_chain_has(c, event))
        return false;
    for (size_t i = 0; i < c->nhooks[event]; i++)
        if (!(c->hooks[event][i].flags & CULEX_HOOK_BLOCKING))
            return true;
    return false;
}

/* ---------------------------------------------------------------- tickets */

static cx_ticket_t *ticket_new(cx_phost_t *host, cx_chain_t *c, int event, const void *ev,
                               size_t next, const hook_t *hk, cx_ticket_done_cb done,
                               void *done_ud)
{
    cx_ticket_t *t = cx_calloc(1, sizeof *t);
    if (!t)
        return NULL;
    atomic_init(&t->refs, 2); /* the caller's and the completer's */
    atomic_init(&t->state, T_RUNNING);
    t->chain = c;
    t->event = event;
    t->next_hook = next;
    t->timeout_ms = hk->timeout_ms;
    t->plugin_name = hk->plugin->name;
    t->done = done;
    t->done_ud = done_ud;
    t->host = host;
    bool ok = true;
    switch (event) {
    case CULEX_EV_AUTH_BASIC: {
        const culex_ev_auth_basic *a = ev;
        t->ev.auth = *a;
        t->s1 = cx_strdup(a->client_id ? a->client_id : "");
        t->s2 = a->username ? cx_strdup(a->username) : NULL;
        t->b1 = a->password ? cx_malloc(a->password_len ? a->password_len : 1) : NULL;
        ok = t->s1 && (!a->username || t->s2) && (!a->password || t->b1);
        if (ok && a->password)
            memcpy(t->b1, a->password, a->password_len);
        t->ev.auth.client_id = t->s1;
        t->ev.auth.username = t->s2;
        t->ev.auth.password = t->b1;
        break;
    }
    case CULEX_EV_AUTH_EXT_START:
    case CULEX_EV_AUTH_EXT_CONTINUE: {
        const culex_ev_auth_ext *a = ev;
        t->ev.ext = *a;
        t->s1 = cx_strdup(a->method ? a->method : "");
        t->b1 = a->data ? cx_malloc(a->data_len ? a->data_len : 1) : NULL;
        ok = t->s1 && (!a->data || t->b1);
        if (ok && a->data)
            memcpy(t->b1, a->data, a->data_len);
        t->ev.ext.method = t->s1;
        t->ev.ext.data = t->b1;
        t->ev.ext.out_data = NULL;
        t->ev.ext.out_data_len = 0;
        break;
    }
    case CULEX_EV_ACL: {
        const culex_ev_acl *a = ev;
        t->ev.acl = *a;
        t->s1 = cx_strdup(a->topic ? a->topic : "");
        t->b1 = a->payload ? cx_malloc(a->payload_len ? a->payload_len : 1) : NULL;
        ok = t->s1 && (!a->payload || t->b1);
        if (ok && a->payload)
            memcpy(t->b1, a->payload, a->payload_len);
        t->ev.acl.topic = t->s1;
        t->ev.acl.payload = t->b1;
        break;
    }
    default:
        ok = false; /* only decisions go asynchronous */
    }
    culex_client *cl = event == CULEX_EV_ACL ? t->ev.acl.client
                       : event == CULEX_EV_AUTH_BASIC ? t->ev.auth.client
                                                      : t->ev.ext.client;
    if (ok && cl)
        cx_pclient_ref(cl);
    if (!ok) {
        cx_free(t->s1);
        cx_free(t->s2);
        cx_free(t->b1);
        cx_free(t);
        return NULL;
    }
    pthread_mutex_lock(&host->tickets_lock);
    t->next_live = host->tickets;
    if (host->tickets)
        host->tickets->prev_live = t;
    host->tickets = t;
    pthread_mutex_unlock(&host->tickets_lock);
    return t;
}

static culex_client *ticket_client(cx_ticket_t *t)
{
    return t->event == CULEX_EV_ACL          ? t->ev.acl.client
           : t->event == CULEX_EV_AUTH_BASIC ? t->ev.auth.client
                                             : t->ev.ext.client;
}

static void ticket_free(cx_ticket_t *t)
{
    cx_phost_t *h = t->host;
    pthread_mutex_lock(&h->tickets_lock);
    if (t->prev_live)
        t->prev_live->next_live = t->next_live;
    else
        h->tickets = t->next_live;
    if (t->next_live)
        t->next_live->prev_live = t->prev_live;
    pthread_mutex_unlock(&h->tickets_lock);
    cx_pclient_unref(ticket_client(t));
    cx_free(t->s1);
    cx_free(t->s2);
    cx_free(t->b1);
    cx_free(t->out);
    cx_free(t);
}

static void ticket_unref(cx_ticket_t *t)
{
    if (atomic_fetch_sub_explicit(&t->refs, 1, memory_order_acq_rel) == 1)
        ticket_free(t);
}

int cx_ticket_verdict(const cx_ticket_t *t) { return t->verdict; }
unsigned cx_ticket_timeout_ms(const cx_ticket_t *t) { return t->timeout_ms; }
const char *cx_ticket_plugin_name(const cx_ticket_t *t) { return t->plugin_name; }

uint8_t *cx_ticket_take_out(cx_ticket_t *t, size_t *len)
{
    uint8_t *o = t->out;
    *len = t->out_len;
    t->out = NULL;
    t->out_len = 0;
    return o;
}

bool cx_ticket_cancel(cx_ticket_t *t)
{
    int expect = T_RUNNING;
    if (!atomic_compare_exchange_strong(&t->state, &expect, T_CANCELLED))
        return false;
    if (t->cancel)
        t->cancel((culex_pending *)t, t->cancel_ud);
    return true;
}

void cx_ticket_release(cx_ticket_t *t) { ticket_unref(t); }

/* The completer side ends: publishes the verdict unless the waiter gave up. */
static void ticket_finish(cx_ticket_t *t, int verdict)
{
    int expect = T_RUNNING;
    if (verdict == CULEX_ERROR)
        verdict = CULEX_DENY;
    t->verdict = verdict;
    if (atomic_compare_exchange_strong(&t->state, &expect, T_DONE))
        t->done(t, t->done_ud);
    ticket_unref(t);
}

/* ---------------------------------------------------------------- running chains */

static void submit(cx_phost_t *h, cx_ticket_t *t);

static bool has_special(const culex_client *c)
{
    if (!c)
        return false;
    return strpbrk(c->id, "+#") || (c->username && strpbrk(c->username, "+#"));
}

/* Runs hooks from `start`. On a pool thread (`on_pool`), blocking hooks are called in
 * place; elsewhere the run moves to the pool at the first blocking hook. */
static int run_from(cx_chain_t *c, int event, void *ev, size_t start, bool nonblocking,
                    bool on_pool, cx_ticket_t *ticket, cx_ticket_t **out_ticket,
                    cx_ticket_done_cb done, void *done_ud, cx_phost_t *host)
{
    size_t n = c->nhooks[event];
    hook_t *hooks = c->hooks[event];
    for (size_t i = start; i < n; i++) {
        hook_t *hk = &hooks[i];
        if (event == CULEX_EV_ACL && hk->plugin->deny_special &&
            has_special(((culex_ev_acl *)ev)->client)) {
            /* auth_plugin_deny_special_chars: a '+' or '#' in an id or user name could widen
             * a pattern rule; such clients are denied before the plugin is asked. */
            return CULEX_DENY;
        }
        if (hk->flags & CULEX_HOOK_BLOCKING) {
            if (nonblocking)
                continue;
            if (!on_pool) {
                cx_ticket_t *t = ticket;
                if (!t) {
                    t = ticket_new(host, c, event, ev, i, hk, done, done_ud);
                    if (!t) {
                        cx_log(CX_LOG_ERR, "Out of memory running plugin %s: denied.",
                               hk->plugin->name);
                        return CULEX_DENY;
                    }
                    *out_ticket = t;
                } else {
                    t->next_hook = i;
                }
                submit(host, t);
                return CX_CHAIN_PENDING;
            }
        }
        struct run_ctx rc = {c, event, ev, i, ticket, NULL, done, done_ud};
        struct run_ctx *saved = tls_run;
        tls_run = &rc;
        int v = hk->cb(hk->plugin, event, ev, hk->ud);
        tls_run = saved;
        if (v == CULEX_PENDING) {
            if (!rc.made) {
                cx_log(CX_LOG_ERR, "Plugin %s answered PENDING without pending_begin: denied.",
                       hk->plugin->name);
                return CULEX_DENY;
            }
            if (!ticket)
                *out_ticket = rc.made;
            return CX_CHAIN_PENDING;
        }
        if (rc.made && !ticket) {
            /* pending_begin but an immediate answer: the new ticket is not used (both of
             * its references go). In an asynchronous run the ticket simply goes on. */
            cx_ticket_cancel(rc.made);
            ticket_unref(rc.made);
            ticket_unref(rc.made);
        }
        if (v == CULEX_DEFER)
            continue;
        if (v == CULEX_ERROR) {
            cx_log(CX_LOG_WARNING, "Plugin %s failed on event %d: denied.", hk->plugin->name,
                   event);
            return CULEX_DENY;
        }
        if (v == CULEX_ALLOW || v == CULEX_DENY || (v == CULEX_CONTINUE &&
                                                    (event == CULEX_EV_AUTH_EXT_START ||
                                                     event == CULEX_EV_AUTH_EXT_CONTINUE)))
            return v;
        cx_log(CX_LOG_WARNING, "Plugin %s answered %d to event %d: denied.", hk->plugin->name, v,
               event);
        return CULEX_DENY;
    }
    return CULEX_DEFER;
}

int cx_chain_run(cx_chain_t *c, int event, void *ev, bool nonblocking, cx_ticket_t **ticket,
                 cx_ticket_done_cb done, void *done_ud)
{
    *ticket = NULL;
    if (!c || event <= 0 || event >= MAX_EVENT || !c->nhooks[event])
        return CULEX_DEFER;
    cx_phost_t *host = c->nhooks[event] ? c->hooks[event][0].plugin->host : NULL;
    return run_from(c, event, ev, 0, nonblocking, false, NULL, ticket, done, done_ud, host);
}

void cx_chain_notify(cx_chain_t *c, int event, void *ev)
{
    if (!c || event <= 0 || event >= MAX_EVENT)
        return;
    for (size_t i = 0; i < c->nhooks[event]; i++) {
        hook_t *hk = &c->hooks[event][i];
        hk->cb(hk->plugin, event, ev, hk->ud);
    }
}

void cx_phost_notify_all(cx_phost_t *h, int event, void *ev)
{
    if (!h)
        return;
    for (size_t i = 0; i < h->nhooks; i++)
        if (h->hooks[i].event == event)
            h->hooks[i].cb(h->hooks[i].plugin, event, ev, h->hooks[i].ud);
}

bool cx_phost_has(const cx_phost_t *h, int event)
{
    if (!h)
        return false;
    for (size_t i = 0; i < h->nhooks; i++)
        if (h->hooks[i].event == event)
            return true;
    return false;
}

int cx_phost_restore(cx_phost_t *h, culex_ev_persist_restore *ev)
{
    for (size_t i = 0; h && i < h->nhooks; i++) {
        hook_t *hk = &h->hooks[i];
        if (hk->event != CULEX_EV_PERSIST_RESTORE)
            continue;
        if (hk->cb(hk->plugin, CULEX_EV_PERSIST_RESTORE, ev, hk->ud) != 0) {
            cx_log(CX_LOG_ERR, "Plugin %s failed to restore the persisted state.",
                   hk->plugin->name ? hk->plugin->name : "?");
            return CX_EIO;
        }
    }
    return CX_OK;
}

void cx_phost_reload(cx_phost_t *h)
{
    if (!h)
        return;
    for (size_t i = 0; i < h->nhooks; i++) {
        hook_t *hk = &h->hooks[i];
        if (hk->event != CULEX_EV_RELOAD)
            continue;
        culex_ev_reload ev = {sizeof ev, hk->plugin->opts, hk->plugin->nopts};
        hk->cb(hk->plugin, CULEX_EV_RELOAD, &ev, hk->ud);
    }
}

/* Continues an asynchronous run after a step answered; finishes the ticket when final. */
static void continue_run(cx_ticket_t *t, int verdict, bool on_pool)
{
    if (verdict == CULEX_DEFER && atomic_load(&t->state) == T_RUNNING) {
        void *ev = &t->ev;
        cx_ticket_t *unused = NULL;
        verdict = run_from(t->chain, t->event, ev, t->next_hook + 1, false, on_pool, t, &unused,
                           t->done, t->done_ud, t->host);
        if (verdict == CX_CHAIN_PENDING)
            return; /* the next step completes it */
    }
    ticket_finish(t, verdict);
}

static culex_pending *h_pending_begin(culex_plugin *self, void *event_data,
                                      culex_cancel_cb cancel, void *cancel_ud)
{
    struct run_ctx *rc = tls_run;
    if (!rc || rc->made || (event_data && event_data != rc->ev)) {
        h_log(self, CULEX_LOG_ERR, "pending_begin outside its callback");
        return NULL;
    }
    cx_ticket_t *t = rc->ticket;
    if (t) {
        /* Already asynchronous: the same ticket goes on, and the duty (and reference) of
         * completing it passes from the pool thread to the plugin. */
        t->next_hook = rc->index;
    } else {
        t = ticket_new(self->host, rc->chain, rc->event, rc->ev, rc->index,
                       &rc->chain->hooks[rc->event][rc->index], rc->done, rc->done_ud);
        if (!t)
            return NULL;
    }
    t->cancel = cancel;
    t->cancel_ud = cancel_ud;
    rc->made = t;
    return (culex_pending *)t;
}

static void h_pending_done(culex_pending *p, int verdict, uint8_t *out, size_t out_len)
{
    cx_ticket_t *t = (cx_ticket_t *)p;
    if (!t)
        return;
    if (out) {
        cx_free(t->out);
        t->out = out;
        t->out_len = out_len;
    }
    if (atomic_load(&t->state) != T_RUNNING) {
        ticket_unref(t); /* cancelled or timed out: the answer is dropped */
        return;
    }
    continue_run(t, verdict, false);
}

/* ---------------------------------------------------------------- the blocking pool */

static void submit(cx_phost_t *h, cx_ticket_t *t)
{
    pthread_mutex_lock(&h->lock);
    t->next_job = NULL;
    if (h->queue_tail)
        h->queue_tail->next_job = t;
    else
        h->queue_head = t;
    h->queue_tail = t;
    pthread_cond_signal(&h->cond);
    pthread_mutex_unlock(&h->lock);
}

static void *pool_main(void *arg)
{
    cx_phost_t *h = arg;
    pthread_setname_np(pthread_self(), "culex-plugin");
    for (;;) {
        pthread_mutex_lock(&h->lock);
        while (!h->queue_head && !h->stopping)
            pthread_cond_wait(&h->cond, &h->lock);
        cx_ticket_t *t = h->queue_head;
        if (t) {
            h->queue_head = t->next_job;
            if (!h->queue_head)
                h->queue_tail = NULL;
        }
        pthread_mutex_unlock(&h->lock);
        if (!t)
            return NULL; /* stopping and drained */
        if (atomic_load(&t->state) != T_RUNNING) {
            ticket_unref(t); /* nobody waits for it any more */
            continue;
        }
        /* Run the blocking hook and whatever follows it in the chain, here. */
        int v = run_from(t->chain, t->event, &t->ev, t->next_hook, false, true, t, &(cx_ticket_t *){NULL},
                         t->done, t->done_ud, t->host);
        if (v != CX_CHAIN_PENDING)
            ticket_finish(t, v);
    }
}

int cx_phost_start(cx_phost_t *h)
{
    if (!h || !h->nhooks)
        return CX_OK;
    bool blocking = false;
    for (size_t i = 0; i < h->nhooks; i++)
        blocking |= (h->hooks[i].flags & CULEX_HOOK_BLOCKING) != 0;
    if (!blocking)
        return CX_OK;
    h->threads = cx_calloc(h->nthreads, sizeof *h->threads);
    if (!h->threads)
        return CX_ENOMEM;
    for (unsigned i = 0; i < h->nthreads; i++)
        if (pthread_create(&h->threads[i], NULL, pool_main, h) != 0) {
            h->nthreads = i;
            return CX_EIO;
        }
    return CX_OK;
}

void cx_phost_stop(cx_phost_t *h)
{
    if (!h || !h->threads)
        return;
    pthread_mutex_lock(&h->lock);
    h->stopping = true;
    pthread_cond_broadcast(&h->cond);
    pthread_mutex_unlock(&h->lock);
    for (unsigned i = 0; i < h->nthreads; i++)
        pthread_join(h->threads[i], NULL);
    cx_free_null(h->threads);
}

void cx_phost_free(cx_phost_t *h)
{
    if (!h)
        return;
    cx_phost_stop(h);
    for (size_t i = 0; i < h->nplugins; i++) {
        culex_plugin *p = h->plugins[i];
        if (p->declared && p->cleanup)
            p->cleanup(p, p->cleanup_ud);
    }
    /* Tickets a plugin never answered (its bug, or it was stopped first). */
    while (h->tickets)
        ticket_free(h->tickets);
    pthread_mutex_destroy(&h->tickets_lock);
    for (size_t i = 0; i < h->nplugins; i++) {
        culex_plugin *p = h->plugins[i];
        /* Unloading a library whose threads may still run is unsafe; plugins are unloaded
         * only here, after every worker and the pool have stopped. */
        if (p->dl)
            dlclose(p->dl);
        for (size_t j = 0; j < p->nopts; j++) {
            cx_free((char *)p->opts[j].name);
            cx_free((char *)p->opts[j].value);
        }
        cx_free(p->opts);
        cx_free(p->uses);
        cx_free(p->path);
        cx_free(p->name);
        cx_free(p->version);
        cx_free(p);
    }
    for (size_t li = 0; li < h->nlisteners; li++)
        for (int e = 0; e < MAX_EVENT; e++)
            cx_free(h->chains[li].hooks[e]);
    cx_free(h->chains);
    cx_free(h->plugins);
    cx_free(h->hooks);
    pthread_cond_destroy(&h->cond);
    pthread_mutex_destroy(&h->lock);
    cx_free(h);
}
