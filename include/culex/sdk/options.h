/* culex/sdk/options.h — parsing a plugin's options (`plugin_opt_<name> <value>` lines) against
 * a table, with clear errors (libculex-plugin).
 *
 *     static const char *const modes[] = {"strict", "loose", NULL};
 *     static const char *file; static int port; static bool tls; static long long ttl;
 *     static int mode;
 *     static const culex_opt_spec spec[] = {
 *         {"password_file", CULEX_OPT_PATH, true, NULL, &file, 0, 0, NULL,
 *          "file of user:hash lines"},
 *         {"port", CULEX_OPT_INT, false, "5432", &port, 1, 65535, NULL, "server port"},
 *         {"tls", CULEX_OPT_BOOL, false, "false", &tls, 0, 0, NULL, "use TLS"},
 *         {"cache_ttl", CULEX_OPT_DURATION, false, "30s", &ttl, 0, 0, NULL, "cache lifetime"},
 *         {"mode", CULEX_OPT_ENUM, false, "strict", &mode, 0, 0, modes, "matching mode"},
 *     };
 *     if (culex_opts_parse(opts, nopts, spec, 5, err, sizeof err) != 0) ... fail with err
 *
 * Kinds and targets:
 *   STRING    `const char **` — borrowed from the option (or the default): copy it to keep
 *             it longer than the options live
 *   PATH      as STRING; must not be empty
 *   INT       `int *`; decimal (or 0x hex); in [min, max] unless min == max == 0
 *   BOOL      `bool *`; true/false, yes/no, on/off, 1/0 (any case)
 *   DURATION  `long long *` in milliseconds; a number with an optional unit ms, s, m, h, d
 *             (a bare number means seconds, as Mosquitto's durations); in [min, max] ms
 *             unless min == max == 0
 *   ENUM      `int *` receives the index into `choices` (a NULL-terminated list)
 * An option missing from the list takes `def` (parsed like a value) when def is non-NULL;
 * otherwise its target is left as it was. A required option without a value is an error.
 * When a name is given twice the last value wins (Mosquitto hands plugins every line). */
#ifndef CULEX_SDK_OPTIONS_H
#define CULEX_SDK_OPTIONS_H

#include <stdbool.h>
#include <stddef.h>

#include "culex/plugin.h"

#ifdef __cplusplus
extern "C" {
#endif

/* culex_option (a plugin_opt_* line) comes from the ABI header. */

typedef enum culex_opt_kind {
    CULEX_OPT_STRING = 0,
    CULEX_OPT_INT = 1,
    CULEX_OPT_BOOL = 2,
    CULEX_OPT_DURATION = 3,
    CULEX_OPT_PATH = 4,
    CULEX_OPT_ENUM = 5,
} culex_opt_kind;

typedef struct culex_opt_spec {
    const char *name;           /* option name without the `plugin_opt_` prefix */
    culex_opt_kind kind;
    bool required;
    const char *def;            /* default as text, or NULL */
    void *target;               /* see the table above */
    long long min, max;         /* INT and DURATION (ms) range; 0, 0 = any */
    const char *const *choices; /* ENUM: NULL-terminated */
    const char *doc;            /* one line for help and docs */
} culex_opt_spec;

/* Checks every option name against `spec`, then stores each spec entry's value (given or
 * default) in its target. Returns 0, or -1 with one message in err, such as
 *   unknown option 'fo' (known: file, port, tls)  (did you mean 'file'?)
 *   option 'port': '70000' is out of range (1..65535)
 *   missing required option 'password_file'
 * On error some targets may already be written; do not use them. Any thread (no state). */
int culex_opts_parse(const culex_option *opts, size_t nopts, const culex_opt_spec *spec,
                     size_t nspec, char *err, size_t errlen);

/* Writes one line per option ("name (kind, default X): doc") into out, for help output.
 * Returns the length it needed (as snprintf). */
size_t culex_opts_describe(const culex_opt_spec *spec, size_t nspec, char *out, size_t outlen);

#ifdef __cplusplus
}
#endif

#endif
