/* testhost.h: a minimal plugin host for testing one plugin in isolation.
 *
 * A test fixture, not the broker's host (core/plugin/): it dlopens a plugin .so, gives it a
 * culex_host_api whose entries behave as plugin.h documents (declare, hook_add, options,
 * set_error, log, client accessors, alloc), and lets a test fire events at it directly.
 * Hooks flagged CULEX_HOOK_BLOCKING are simply called on the calling thread; pending
 * tickets are not supported (pending_begin returns NULL).
 *
 * Like the real host, an instance whose entry point failed after declaring itself is still
 * cleaned up (its cleanup callback runs) by th_unload. */
#ifndef CX_TESTHOST_H
#define CX_TESTHOST_H

#include <stdbool.h>
#include <stddef.h>

#include "culex/plugin.h"

typedef struct th_plugin th_plugin;

/* The client handle the fixture hands to plugins. */
struct culex_client {
    const char *id;
    const char *username;
    const char *address;
    int protocol;
    int port;
    const char *cert_cn;
};

/* Loads `path` and calls its entry point with `opts`. Returns the instance, or NULL with the
 * reason (dlopen error, entry-point message) in err. On an entry-point failure the instance
 * is cleaned up before returning. */
th_plugin *th_load(const char *path, const culex_option *opts, size_t nopts, char *err,
                   size_t errlen);
/* Calls the plugin's cleanup and unloads it. */
void th_unload(th_plugin *p);

/* Runs the hooks of `event` in priority order; returns the first verdict other than
 * CULEX_DEFER, or CULEX_DEFER. For notification events every hook runs. */
int th_fire(th_plugin *p, int event, void *ev);
/* Sends CULEX_EV_RELOAD with new options (kept as the instance's options afterwards). */
void th_reload(th_plugin *p, const culex_option *opts, size_t nopts);

/* Convenience wrappers for the common events. */
int th_auth(th_plugin *p, const char *client_id, const char *username, const char *password);
int th_acl(th_plugin *p, const char *client_id, const char *username, int access,
           const char *topic);

/* Registration facts. */
bool th_has_hook(const th_plugin *p, int event);
unsigned th_hook_flags(const th_plugin *p, int event);
const char *th_name(const th_plugin *p);
unsigned th_abi_minor(const th_plugin *p);

/* Everything the plugin logged so far, one line per message ("LEVEL message\n"). */
const char *th_log(th_plugin *p);
bool th_log_has(th_plugin *p, const char *needle);
void th_log_clear(th_plugin *p);

#endif
