/* deny_prefix.c: the smallest complete culex plugin, to copy when starting a new one.
 *
 * It refuses clients whose client id starts with a configured prefix and logs every
 * connection:
 *
 *     plugin /usr/lib/x86_64-linux-gnu/culex/deny_prefix.so
 *     plugin_opt_deny_prefix test-
 *
 * What it shows: the entry point and CULEX_PLUGIN_INIT, reading and validating options,
 * per-instance state passed as userdata, a verdict hook (CULEX_EV_AUTH_BASIC), a
 * notification hook (CULEX_EV_CONNECT), a reload hook, and cleanup. docs/plugins.md explains
 * each of these in full. */
#define _POSIX_C_SOURCE 200809L /* strdup */

#include <stdlib.h>
#include <string.h>

#include <culex/plugin.h>

/* One of these per configured instance: the same .so may be loaded twice (e.g. per
 * listener), so nothing lives in globals. */
typedef struct deny_prefix {
    const culex_host_api *host;
    /* Read-only after the entry point returns: hooks run on several threads at once, and
     * data nobody writes needs no lock. */
    char *prefix;
    size_t prefix_len;
} deny_prefix;

/* CULEX_EV_AUTH_BASIC: runs on a worker thread for each CONNECT. Cheap and non-blocking, so
 * it is registered without CULEX_HOOK_BLOCKING. */
static int on_auth(culex_plugin *self, int event, void *event_data, void *userdata)
{
    deny_prefix *st = userdata;
    const culex_ev_auth_basic *ev = event_data;
    (void)event; /* one callback per event here, so the event number is known */

    if (st->prefix_len > 0 && strncmp(ev->client_id, st->prefix, st->prefix_len) == 0) {
        st->host->log(self, CULEX_LOG_NOTICE, "refusing client %s (id starts with \"%s\")",
                      ev->client_id, st->prefix);
        return CULEX_DENY;
    }
    return CULEX_DEFER; /* no opinion: the next plugin, or the listener default, decides */
}

/* CULEX_EV_CONNECT: a notification; the return value is ignored. */
static int on_connect(culex_plugin *self, int event, void *event_data, void *userdata)
{
    deny_prefix *st = userdata;
    const culex_ev_client *ev = event_data;
    (void)event;
    const char *user = st->host->client_username(ev->client);

    st->host->log(self, CULEX_LOG_INFO, "client %s connected from %s as %s (protocol %d)",
                  st->host->client_id(ev->client), st->host->client_address(ev->client),
                  user ? user : "(anonymous)", st->host->client_protocol(ev->client));
    return CULEX_DEFER;
}

/* CULEX_EV_RELOAD: the options may have changed. The prefix is read by other threads
 * without a lock, so it is not swapped here; a plugin that reloads data should publish a
 * new snapshot atomically (see plugins/auth_file). */
static int on_reload(culex_plugin *self, int event, void *event_data, void *userdata)
{
    deny_prefix *st = userdata;
    const culex_ev_reload *ev = event_data;
    const char *now = "";
    (void)event;

    for (size_t i = 0; i < ev->option_count; i++)
        if (strcmp(ev->options[i].name, "deny_prefix") == 0)
            now = ev->options[i].value;
    if (strcmp(now, st->prefix) != 0)
        st->host->log(self, CULEX_LOG_WARNING,
                      "deny_prefix changed to \"%s\": restart the broker to apply it", now);
    return CULEX_DEFER;
}

static void cleanup(culex_plugin *self, void *userdata)
{
    deny_prefix *st = userdata;
    (void)self;

    free(st->prefix);
    free(st);
}

CULEX_PLUGIN_EXPORT int culex_plugin_entry(const culex_host_api *host, culex_plugin *self,
                                           char **errmsg)
{
    /* A host of another major version: touch nothing but the version fields. */
    if (!host || host->abi_major != CULEX_ABI_MAJOR)
        return CULEX_ERR_ABI_MAJOR;
    deny_prefix *st = calloc(1, sizeof(*st));
    if (!st) {
        host->set_error(errmsg, "out of memory");
        return -1;
    }
    /* Tells the host our name, version and the ABI minor we were compiled against. From
     * here on the host calls cleanup(st) once when it unloads us, even if this function
     * fails below, so an error path must not free st itself. */
    CULEX_PLUGIN_INIT(host, self, errmsg, "deny_prefix", "1.0", cleanup, st);
    st->host = host;

    /* Every plugin_opt_* line must be one we know: a typo should stop the broker, not be
     * silently ignored. */
    size_t n = 0;
    const culex_option *opts = host->options(self, &n);
    for (size_t i = 0; i < n; i++) {
        if (strcmp(opts[i].name, "deny_prefix") != 0) {
            host->set_error(errmsg, "unknown option plugin_opt_%s", opts[i].name);
            return -1;
        }
    }
    const char *prefix = host->option(self, "deny_prefix");
    st->prefix = strdup(prefix ? prefix : "");
    if (!st->prefix) {
        host->set_error(errmsg, "out of memory");
        return -1;
    }
    st->prefix_len = strlen(st->prefix);

    if (host->hook_add(self, CULEX_EV_AUTH_BASIC, 0, 0, 0, on_auth, st) != 0 ||
        host->hook_add(self, CULEX_EV_CONNECT, 0, 0, 0, on_connect, st) != 0 ||
        host->hook_add(self, CULEX_EV_RELOAD, 0, 0, 0, on_reload, st) != 0) {
        host->set_error(errmsg, "hook_add failed");
        return -1;
    }
    return 0;
}
