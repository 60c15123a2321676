/* broker.c: builds the broker from a config, opens listeners, starts and stops workers,
 * applies reloads. */
#include "broker.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "broker/persist.h"
#include "broker/registry.h"
#include "broker/session.h"
#include "broker/sys.h"
#include "broker/transport.h"
#include "broker/worker.h"
#include "util/time.h"
#include "util/alloc.h"
#include "util/err.h"
#include "util/log.h"
#include "util/time.h"

#ifndef CULEX_VERSION
#define CULEX_VERSION "0.0.0"
#endif

#define MAX_WORKERS 64

void cx_limits_from_config(cx_limits_t *l, const cx_config_t *c)
{
    l->max_inflight_messages = c->max_inflight_messages;
    l->max_inflight_bytes = c->max_inflight_bytes;
    l->max_queued_messages = c->max_queued_messages;
    l->max_queued_bytes = c->max_queued_bytes;
    l->max_keepalive = c->max_keepalive;
    l->max_packet_size = c->max_packet_size;
    l->message_size_limit = c->message_size_limit;
    l->queue_qos0_messages = c->queue_qos0_messages;
    l->retain_available = c->retain_available;
    l->upgrade_outgoing_qos = c->upgrade_outgoing_qos;
    l->connection_messages = c->connection_messages;
    l->persistent_client_expiration = c->persistent_client_expiration;
    l->sys_interval = c->sys_interval;
    l->memory_limit = c->memory_limit;
}

/* --- services offered to plugins (any thread) --- */

static int svc_kick(void *ud, const char *client_id)
{
    cx_broker_t *b = ud;
    cx_session_t *s = cx_registry_get(b->registry, cx_str_from_cstr(client_id));
    if (!s)
        return -1;
    size_t n = strlen(client_id);
    cx_post_kick_t *p = cx_malloc(sizeof *p + n + 1);
    if (p) {
        p->base.kind = CX_POST_KICK;
        memcpy(p->client_id, client_id, n + 1);
        cx_loop_post(s->worker->loop, &p->base);
    }
    cx_session_unref(s);
    return p ? 0 : -1;
}

static int svc_publish(void *ud, const char *topic, const void *payload, size_t len, int qos,
                       bool retain)
{
    cx_broker_t *b = ud;
    cx_str_t t = cx_str_from_cstr(topic);
    if (qos < 0 || qos > 2 || !cx_mqtt_topic_name_is_valid(t))
        return -1;
    cx_msg_t *m = cx_msg_new(t, (cx_str_t){payload, len}, NULL, (uint8_t)qos, retain, NULL,
                             (int64_t)cx_time_mono_ms());
    cx_post_publish_t *p = m ? cx_malloc(sizeof *p) : NULL;
    if (!p) {
        cx_msg_unref(m);
        return -1;
    }
    p->base.kind = CX_POST_PUBLISH;
    p->msg = m;
    cx_loop_post(b->workers[0].loop, &p->base); /* routed like a message from a client */
    return 0;
}

/* Where first-party plugins are found: $CULEX_PLUGIN_DIR, then the build tree (so tests run
 * without installing), then the installed directory. */
static const char *builtin_dir(const char *name, char *path, size_t len)
{
    const char *dirs[] = {
        getenv("CULEX_PLUGIN_DIR"),
#ifdef CULEX_BUILD_PLUGIN_DIR
        CULEX_BUILD_PLUGIN_DIR,
#endif
#ifdef CULEX_INSTALL_PLUGIN_DIR
        CULEX_INSTALL_PLUGIN_DIR,
#endif
    };
    for (size_t i = 0; i < sizeof dirs / sizeof dirs[0]; i++) {
        if (!dirs[i] || !*dirs[i])
            continue;
        snprintf(path, len, "%s/%s.so", dirs[i], name);
        if (access(path, R_OK) == 0)
            return path;
    }
    snprintf(path, len, "%s.so", name);
    return NULL;
}

static int load_plugins(cx_broker_t *b, char *err, size_t errlen)
{
    const cx_config_t *cfg = b->cfg;
    if (!cfg->plugin_count)
        return CX_OK;
    cx_phost_services_t svc = {.ud = b, .kick = svc_kick, .publish = svc_publish};
    b->plugins = cx_phost_new(&svc, cfg->listener_count, 4);
    if (!b->plugins)
        return CX_ENOMEM;
    for (size_t i = 0; i < cfg->plugin_count; i++) {
        const cx_plugin_conf_t *pc = &cfg->plugins[i];
        char path[1024];
        const char *file = pc->path;
        if (!file) {
            file = builtin_dir(pc->builtin, path, sizeof path);
            if (!file) {
                snprintf(err, errlen, "%s:%d: the first-party plugin %s was not found (set "
                         "CULEX_PLUGIN_DIR)", pc->file ? pc->file : "?", pc->line, path);
                return CX_ECONFIG;
            }
        }
        char why[768];
        cx_pscope_t scope = {.listener = pc->listener, .uses = pc->uses, .nuses = pc->use_count,
                             .deny_special_chars = pc->deny_special_chars};
        int rc = cx_phost_load(b->plugins, file, pc->options, pc->option_count, &scope, why,
                               sizeof why);
        if (rc) {
            if (pc->file)
                snprintf(err, errlen, "%s:%d: %s", pc->file, pc->line, why);
            else
                snprintf(err, errlen, "%s", why);
            return rc;
        }
    }
    int rc = cx_phost_finish(b->plugins);
    if (rc == CX_OK)
        rc = cx_phost_start(b->plugins);
    if (rc)
        snprintf(err, errlen, "cannot start the plugin host: %s", cx_strerror(rc));
    return rc;
}

static void msg_ref_cb(void *v) { cx_msg_ref(v); }
static void msg_unref_cb(void *v) { cx_msg_unref(v); }

cx_broker_t *cx_broker_new(cx_config_t *cfg, char *err, size_t errlen)
{
    cx_broker_t *b = cx_calloc(1, sizeof *b);
    if (!b)
        goto oom;
    b->cfg = cfg;
    snprintf(b->version, sizeof b->version, "%s", CULEX_VERSION);
    b->start_wall = cx_time_wall_s();
    b->nworkers = cfg->workers > 0 ? (size_t)cfg->workers : 1;
    if (b->nworkers > MAX_WORKERS)
        b->nworkers = MAX_WORKERS;
    b->subs = cx_subtree_new();
    b->retained = cx_retain_new(msg_ref_cb, msg_unref_cb);
    b->registry = cx_registry_new();
    b->workers = cx_calloc(b->nworkers, sizeof *b->workers);
    if (!b->subs || !b->retained || !b->registry || !b->workers)
        goto oom;
    for (size_t i = 0; i < b->nworkers; i++) {
        int rc = cx_worker_init(&b->workers[i], b, i);
        if (rc) {
            snprintf(err, errlen, "cannot create worker %zu: %s", i, cx_strerror(rc));
            cx_broker_free(b);
            return NULL;
        }
    }
    return b;
oom:
    snprintf(err, errlen, "out of memory");
    cx_broker_free(b);
    return NULL;
}

static int open_listeners(cx_broker_t *b, char *err, size_t errlen)
{
    const cx_config_t *cfg = b->cfg;
    b->listeners = cx_calloc(cfg->listener_count ? cfg->listener_count : 1, sizeof *b->listeners);
    if (!b->listeners)
        return CX_ENOMEM;
    for (size_t i = 0; i < cfg->listener_count; i++) {
        const cx_listener_conf_t *lc = &cfg->listeners[i];
        cx_listener_t *l = &b->listeners[i];
        l->conf = lc;
        l->max_connections = lc->max_connections;
        l->on_accept = cx_worker_on_accept;
        char why[256] = "";
        int rc = cx_listener_open(l, lc->bind_address, lc->port, lc->unix_socket,
                                  lc->socket_domain, lc->bind_interface, why, sizeof why);
        if (rc) {
            if (lc->file)
                snprintf(err, errlen, "%s:%d: listener: %s", lc->file, lc->line, why);
            else
                snprintf(err, errlen, "listener: %s", why);
            return rc;
        }
        b->nlisteners++;
        rc = cx_transport_setup(l, lc, cfg, err, errlen);
        if (rc)
            return rc;
        const char *kind = lc->protocol == CX_PROTO_WEBSOCKETS ? "websockets " : "";
        if (lc->unix_socket)
            cx_log(CX_LOG_NOTICE, "Opening %sunix listen socket on %s.", kind, lc->unix_socket);
        else
            cx_log(CX_LOG_NOTICE, "Opening %slisten socket on %s (port %d%s).", kind,
                   lc->bind_address ? lc->bind_address : "all addresses", lc->port,
                   l->tp.has_tls ? ", TLS" : "");
    }
    return CX_OK;
}

int cx_broker_open(cx_broker_t *b, char *err, size_t errlen)
{
    return open_listeners(b, err, errlen);
}

int cx_broker_start(cx_broker_t *b, char *err, size_t errlen)
{
    /* Plugins are loaded after the privilege drop (if any), as Mosquitto reads its password
     * and ACL files: a file the broker's user cannot read fails now, not at the next reload. */
    int rc = load_plugins(b, err, errlen);
    if (rc)
        return rc;
    /* Restored sessions and retained messages must be in place before any client comes. */
    rc = cx_persist_open(b, err, errlen);
    if (rc)
        return rc;
    cx_sys_init(b);
    /* Watchers are registered from this thread before the workers run, so the per-worker
     * watcher arrays are built without racing. */
    for (size_t i = 0; i < b->nlisteners; i++)
        for (size_t wi = 0; wi < b->nworkers; wi++) {
            rc = cx_listener_watch(&b->listeners[i], &b->workers[wi].net, wi, b->nworkers);
            if (rc) {
                snprintf(err, errlen, "cannot watch listener %s: %s", b->listeners[i].desc,
                         cx_strerror(rc));
                return rc;
            }
        }
    for (size_t wi = 0; wi < b->nworkers; wi++) {
        rc = cx_worker_start(&b->workers[wi]);
        if (rc) {
            snprintf(err, errlen, "cannot start worker thread: %s", cx_strerror(rc));
            /* Workers already running are stopped by cx_broker_stop. */
            for (size_t j = wi; j < b->nworkers; j++)
                b->workers[j].thread = 0;
            return rc;
        }
    }
    cx_log(CX_LOG_NOTICE, "culex version %s running with %zu worker%s.", b->version, b->nworkers,
           b->nworkers == 1 ? "" : "s");
    return CX_OK;
}

void cx_broker_stop(cx_broker_t *b)
{
    cx_persist_freeze(b);
    atomic_store(&b->shutting_down, true);
    for (size_t i = 0; i < b->nworkers; i++) {
        if (!b->workers[i].thread)
            continue;
        cx_post_t *p = cx_malloc(sizeof *p);
        if (p) {
            p->kind = CX_POST_STOP;
            cx_loop_post(b->workers[i].loop, p);
        } else {
            cx_loop_stop(b->workers[i].loop);
        }
    }
    for (size_t i = 0; i < b->nworkers; i++)
        if (b->workers[i].thread)
            cx_worker_join(&b->workers[i]);
    /* A blocking plugin call still running may post its verdict: let it finish first, so
     * that the drain below sees every post and no loop is posted to after it is freed. */
    cx_phost_stop(b->plugins);
    /* Deliveries posted while the others were stopping: dropped cleanly. */
    for (size_t i = 0; i < b->nworkers; i++)
        cx_loop_drain(b->workers[i].loop);
    /* Every worker has stopped: the final snapshot sees the state as it is left. */
    cx_persist_close(b);
}

void cx_broker_free(cx_broker_t *b)
{
    if (!b)
        return;
    if (b->workers) {
        for (size_t i = 0; i < b->nworkers; i++) {
            for (size_t j = 0; j < b->nlisteners; j++)
                if (b->workers[i].loop)
                    cx_listener_unwatch(&b->listeners[j], &b->workers[i].net, i);
            if (b->workers[i].loop) {
                cx_net_close_all(&b->workers[i].net);
                cx_worker_destroy(&b->workers[i]);
            }
        }
    }
    for (size_t j = 0; j < b->nlisteners; j++) {
        const cx_listener_conf_t *lc = b->listeners[j].conf;
        cx_listener_close(&b->listeners[j]);
        if (lc->unix_socket)
            unlink(lc->unix_socket);
    }
    cx_free(b->listeners);
    cx_free(b->workers);
    /* After the workers: no callback can run any more when plugins are unloaded. */
    cx_phost_free(b->plugins);
    cx_retain_free(b->retained);
    cx_subtree_free(b->subs);
    cx_registry_free(b->registry);
    cx_sys_free(b);
    cx_free(b);
}

int cx_broker_parked(cx_broker_t *b, int (*fn)(cx_broker_t *b, void *ud), void *ud)
{
    cx_pause_t pz = {.arrived = 0, .left = 0, .go = false};
    pthread_mutex_init(&pz.lock, NULL);
    pthread_cond_init(&pz.cond, NULL);
    size_t posted = 0;
    for (size_t i = 0; i < b->nworkers; i++) {
        cx_post_pause_t *p = cx_malloc(sizeof *p);
        if (!p)
            continue;
        p->base.kind = CX_POST_PAUSE;
        p->pause = &pz;
        cx_loop_post(b->workers[i].loop, &p->base);
        posted++;
    }
    pz.left = posted;
    int rc = CX_ENOMEM;
    pthread_mutex_lock(&pz.lock);
    while (pz.arrived < posted)
        pthread_cond_wait(&pz.cond, &pz.lock);
    /* Every worker that could be told is parked. If one could not be told (out of memory),
     * touching the state under it would be unsafe: fn is not run. */
    if (posted == b->nworkers)
        rc = fn(b, ud);
    pz.go = true;
    pthread_cond_broadcast(&pz.cond);
    while (pz.left > 0)
        pthread_cond_wait(&pz.cond, &pz.lock);
    pthread_mutex_unlock(&pz.lock);
    pthread_cond_destroy(&pz.cond);
    pthread_mutex_destroy(&pz.lock);
    return rc;
}

static int apply_reload(cx_broker_t *b, void *fresh)
{
    return cx_config_apply_reload(b->cfg, fresh);
}

int cx_broker_reload(cx_broker_t *b, const cx_config_t *fresh)
{
    int rc = cx_broker_parked(b, apply_reload, (void *)fresh);
    /* New TLS contexts are built with the workers running: reading certificate files never
     * stalls clients, and connections keep the context they were accepted with. */
    cx_transport_reload(b);
    /* Plugins re-read their own files (password, ACL) with the workers running: they swap
     * their data atomically, and a slow file never stalls clients. Their options follow the
     * new file when it declares the same instances (cx_config_apply_reload). */
    for (size_t i = 0; i < b->cfg->plugin_count && i < cx_phost_count(b->plugins); i++)
        cx_phost_set_options(b->plugins, i, b->cfg->plugins[i].options,
                             b->cfg->plugins[i].option_count);
    cx_phost_reload(b->plugins);
    return rc;
}

static void dump_cb(void *ud, cx_str_t filter, cx_str_t group, void *owner,
                    const cx_sub_opts_t *opts)
{
    size_t *n = ud;
    const cx_session_t *s = owner;
    /* client_id is immutable after creation, so reading it from this thread is safe. */
    if (group.len)
        cx_log(CX_LOG_NOTICE, "  $share/%.*s/%.*s  %s  qos %d", (int)group.len,
               (const char *)group.p, (int)filter.len, (const char *)filter.p, s->client_id,
               opts->qos);
    else
        cx_log(CX_LOG_NOTICE, "  %.*s  %s  qos %d", (int)filter.len, (const char *)filter.p,
               s->client_id, opts->qos);
    (*n)++;
}

void cx_broker_dump_subscriptions(cx_broker_t *b)
{
    size_t n = 0;
    cx_log(CX_LOG_NOTICE, "Subscription tree:");
    cx_subtree_walk(b->subs, dump_cb, &n);
    cx_log(CX_LOG_NOTICE, "%zu subscription%s.", n, n == 1 ? "" : "s");
}
