/* plugin_loadcheck: loads a plugin in the test host and exercises it from the command line.
 *
 *     plugin_loadcheck PLUGIN.so [-o name=value]... [client_id[:username[:password]]]...
 *
 * Loads the plugin with the given options (exit 1 and the reason on failure), prints
 * "loaded NAME abi 1.MINOR", then for each client sends CULEX_EV_AUTH_BASIC and prints
 * "auth ID VERDICT", sends CULEX_EV_CONNECT for those not denied, and prints the plugin's
 * log. Used by tests/plugins/template_build.sh. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testhost.h"

static const char *verdict_name(int v)
{
    switch (v) {
    case CULEX_DEFER: return "defer";
    case CULEX_ALLOW: return "allow";
    case CULEX_DENY: return "deny";
    case CULEX_PENDING: return "pending";
    case CULEX_ERROR: return "error";
    default: return "?";
    }
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: %s PLUGIN.so [-o name=value]... [id[:user[:pass]]]...\n",
                argv[0]);
        return 2;
    }
    culex_option opts[32];
    size_t nopts = 0;
    int i = 2;
    for (; i + 1 < argc && strcmp(argv[i], "-o") == 0 && nopts < 32; i += 2) {
        char *eq = strchr(argv[i + 1], '=');
        if (!eq) {
            fprintf(stderr, "-o needs name=value\n");
            return 2;
        }
        *eq = '\0';
        opts[nopts++] = (culex_option){argv[i + 1], eq + 1};
    }
    char err[1024];
    th_plugin *p = th_load(argv[1], opts, nopts, err, sizeof(err));
    if (!p) {
        printf("load failed: %s\n", err);
        return 1;
    }
    printf("loaded %s abi 1.%u\n", th_name(p), th_abi_minor(p));
    for (; i < argc; i++) {
        char *id = argv[i];
        char *user = strchr(id, ':');
        char *pass = NULL;
        if (user) {
            *user++ = '\0';
            pass = strchr(user, ':');
            if (pass)
                *pass++ = '\0';
        }
        int v = th_auth(p, id, user, pass);
        printf("auth %s %s\n", id, verdict_name(v));
        if (v != CULEX_DENY) {
            culex_client c = {id, user, "127.0.0.1:50000", 4, 1883, NULL};
            culex_ev_client ev = {sizeof(ev), &c, 0};
            th_fire(p, CULEX_EV_CONNECT, &ev);
        }
    }
    fputs(th_log(p), stdout);
    th_unload(p);
    return 0;
}
