/* options.c — table-driven parsing of plugin options (culex/sdk/options.h): typed values,
 * ranges, defaults, required options, and errors that name the option and the value. */
#include <culex/sdk/options.h>

#include "sdk_internal.h"

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static const char *kind_name(culex_opt_kind k)
{
    switch (k) {
    case CULEX_OPT_STRING:
        return "string";
    case CULEX_OPT_INT:
        return "integer";
    case CULEX_OPT_BOOL:
        return "boolean";
    case CULEX_OPT_DURATION:
        return "duration";
    case CULEX_OPT_PATH:
        return "path";
    case CULEX_OPT_ENUM:
        return "choice";
    }
    return "?";
}

/* Edit distance, capped (names are short); for "did you mean". */
static size_t edit_distance(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    if (la > 63 || lb > 63)
        return SIZE_MAX;
    size_t row[64];
    for (size_t j = 0; j <= lb; j++)
        row[j] = j;
    for (size_t i = 1; i <= la; i++) {
        size_t diag = row[0];
        row[0] = i;
        for (size_t j = 1; j <= lb; j++) {
            size_t up = row[j];
            size_t cost = a[i - 1] == b[j - 1] ? 0 : 1;
            size_t best = diag + cost;
            if (up + 1 < best)
                best = up + 1;
            if (row[j - 1] + 1 < best)
                best = row[j - 1] + 1;
            row[j] = best;
            diag = up;
        }
    }
    return row[lb];
}

static void unknown_option(const char *name, const culex_opt_spec *spec, size_t nspec,
                           char *err, size_t errlen)
{
    char known[512];
    size_t off = 0;
    const char *best = NULL;
    size_t best_d = SIZE_MAX;
    known[0] = '\0';
    for (size_t i = 0; i < nspec; i++) {
        int n = snprintf(known + off, sizeof known - off, "%s%s", i ? ", " : "", spec[i].name);
        if (n > 0 && (size_t)n < sizeof known - off)
            off += (size_t)n;
        size_t d = edit_distance(name, spec[i].name);
        if (d < best_d) {
            best_d = d;
            best = spec[i].name;
        }
    }
    size_t limit = strlen(name) / 3 + 1;
    if (limit > 3)
        limit = 3;
    if (best && best_d <= limit)
        culex__set_err(err, errlen, "unknown option '%s' (known: %s); did you mean '%s'?", name,
                nspec ? known : "none", best);
    else
        culex__set_err(err, errlen, "unknown option '%s' (known: %s)", name, nspec ? known : "none");
}

/* Copies value without surrounding blanks into buf; returns NULL if it does not fit. */
static const char *trimmed(const char *v, char *buf, size_t buflen)
{
    while (*v == ' ' || *v == '\t')
        v++;
    size_t len = strlen(v);
    while (len > 0 && (v[len - 1] == ' ' || v[len - 1] == '\t'))
        len--;
    if (len >= buflen)
        return NULL;
    memcpy(buf, v, len);
    buf[len] = '\0';
    return buf;
}

static int parse_ll(const char *s, long long *out)
{
    int base = 10;
    const char *p = s;
    if (*p == '-' || *p == '+')
        p++;
    if (p[0] == '0' && (p[1] == 'x' || p[1] == 'X'))
        base = 16;
    if (!*p)
        return -1;
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, base);
    if (errno == ERANGE)
        return -2;
    if (end == s || *end != '\0')
        return -1;
    *out = v;
    return 0;
}

static int parse_bool(const char *s, bool *out)
{
    static const char *const yes[] = {"true", "yes", "on", "1"};
    static const char *const no[] = {"false", "no", "off", "0"};
    for (size_t i = 0; i < 4; i++) {
        if (strcasecmp(s, yes[i]) == 0) {
            *out = true;
            return 0;
        }
        if (strcasecmp(s, no[i]) == 0) {
            *out = false;
            return 0;
        }
    }
    return -1;
}

/* "250ms", "30s", "5m", "2h", "1d", "30" (seconds) -> milliseconds. */
static int parse_duration(const char *s, long long *out_ms)
{
    const char *p = s;
    unsigned long long v = 0;
    if (*p < '0' || *p > '9')
        return -1;
    while (*p >= '0' && *p <= '9') {
        if (v > (ULLONG_MAX - 9) / 10)
            return -2;
        v = v * 10 + (unsigned)(*p++ - '0');
    }
    while (*p == ' ')
        p++;
    unsigned long long mult;
    if (*p == '\0' || strcmp(p, "s") == 0 || strcmp(p, "sec") == 0)
        mult = 1000;
    else if (strcmp(p, "ms") == 0)
        mult = 1;
    else if (strcmp(p, "m") == 0 || strcmp(p, "min") == 0)
        mult = 60000;
    else if (strcmp(p, "h") == 0)
        mult = 3600000;
    else if (strcmp(p, "d") == 0)
        mult = 86400000;
    else
        return -1;
    if (v > (unsigned long long)LLONG_MAX / mult)
        return -2;
    *out_ms = (long long)(v * mult);
    return 0;
}

/* Parses `value` for spec s into its target; returns 0 or -1 with a message. */
static int apply(const culex_opt_spec *s, const char *value, int is_default, char *err,
                 size_t errlen)
{
    char buf[128];
    const char *t;
    const char *what = is_default ? " (the default)" : "";
    switch (s->kind) {
    case CULEX_OPT_PATH:
        if (*value == '\0') {
            culex__set_err(err, errlen, "option '%s': empty path%s", s->name, what);
            return -1;
        }
        /* fall through */
    case CULEX_OPT_STRING:
        if (s->target)
            *(const char **)s->target = value;
        return 0;
    case CULEX_OPT_INT: {
        long long v;
        int rc = (t = trimmed(value, buf, sizeof buf)) ? parse_ll(t, &v) : -1;
        if (rc == 0 && (v < INT_MIN || v > INT_MAX))
            rc = -2;
        if (rc == 0 && (s->min || s->max) && (v < s->min || v > s->max)) {
            culex__set_err(err, errlen, "option '%s': '%s' is out of range (%lld..%lld)%s", s->name,
                    value, s->min, s->max, what);
            return -1;
        }
        if (rc != 0) {
            culex__set_err(err, errlen, "option '%s': '%s' is %s%s", s->name, value,
                    rc == -2 ? "too large for an integer" : "not an integer", what);
            return -1;
        }
        if (s->target)
            *(int *)s->target = (int)v;
        return 0;
    }
    case CULEX_OPT_BOOL: {
        bool b;
        if (!(t = trimmed(value, buf, sizeof buf)) || parse_bool(t, &b) != 0) {
            culex__set_err(err, errlen,
                    "option '%s': '%s' is not a boolean (true/false, yes/no, on/off, 1/0)%s",
                    s->name, value, what);
            return -1;
        }
        if (s->target)
            *(bool *)s->target = b;
        return 0;
    }
    case CULEX_OPT_DURATION: {
        long long ms;
        int rc = (t = trimmed(value, buf, sizeof buf)) ? parse_duration(t, &ms) : -1;
        if (rc != 0) {
            culex__set_err(err, errlen,
                    "option '%s': '%s' is %s (a number with an optional unit ms, s, m, h or "
                    "d; seconds without one)%s",
                    s->name, value, rc == -2 ? "too large a duration" : "not a duration",
                    what);
            return -1;
        }
        if ((s->min || s->max) && (ms < s->min || ms > s->max)) {
            culex__set_err(err, errlen, "option '%s': '%s' is out of range (%lldms..%lldms)%s",
                    s->name, value, s->min, s->max, what);
            return -1;
        }
        if (s->target)
            *(long long *)s->target = ms;
        return 0;
    }
    case CULEX_OPT_ENUM: {
        t = trimmed(value, buf, sizeof buf);
        for (size_t i = 0; t && s->choices && s->choices[i]; i++)
            if (strcmp(t, s->choices[i]) == 0) {
                if (s->target)
                    *(int *)s->target = (int)i;
                return 0;
            }
        char list[256];
        size_t off = 0;
        list[0] = '\0';
        for (size_t i = 0; s->choices && s->choices[i]; i++) {
            int n = snprintf(list + off, sizeof list - off, "%s%s", i ? ", " : "",
                             s->choices[i]);
            if (n > 0 && (size_t)n < sizeof list - off)
                off += (size_t)n;
        }
        culex__set_err(err, errlen, "option '%s': '%s' is not one of: %s%s", s->name, value, list,
                what);
        return -1;
    }
    }
    culex__set_err(err, errlen, "option '%s': unknown kind in the plugin's option table", s->name);
    return -1;
}

int culex_opts_parse(const culex_option *opts, size_t nopts, const culex_opt_spec *spec,
                     size_t nspec, char *err, size_t errlen)
{
    if ((!opts && nopts) || (!spec && nspec)) {
        culex__set_err(err, errlen, "invalid arguments");
        return -1;
    }
    for (size_t i = 0; i < nopts; i++) {
        const char *name = opts[i].name ? opts[i].name : "";
        size_t j = 0;
        while (j < nspec && strcmp(spec[j].name, name) != 0)
            j++;
        if (j == nspec) {
            unknown_option(name, spec, nspec, err, errlen);
            return -1;
        }
    }
    for (size_t j = 0; j < nspec; j++) {
        const char *value = NULL;
        for (size_t i = nopts; i-- > 0;)
            if (opts[i].name && strcmp(opts[i].name, spec[j].name) == 0) {
                value = opts[i].value ? opts[i].value : "";
                break;
            }
        int is_default = 0;
        if (!value) {
            if (spec[j].required) {
                culex__set_err(err, errlen, "missing required option '%s' (%s)", spec[j].name,
                        spec[j].doc ? spec[j].doc : kind_name(spec[j].kind));
                return -1;
            }
            if (!spec[j].def)
                continue;
            value = spec[j].def;
            is_default = 1;
        }
        if (apply(&spec[j], value, is_default, err, errlen) != 0)
            return -1;
    }
    return 0;
}

size_t culex_opts_describe(const culex_opt_spec *spec, size_t nspec, char *out, size_t outlen)
{
    size_t need = 0;
    if (out && outlen)
        out[0] = '\0';
    for (size_t i = 0; i < nspec; i++) {
        char line[512];
        int n = snprintf(line, sizeof line, "%s (%s%s%s%s): %s\n", spec[i].name,
                         kind_name(spec[i].kind), spec[i].required ? ", required" : "",
                         spec[i].def ? ", default " : "", spec[i].def ? spec[i].def : "",
                         spec[i].doc ? spec[i].doc : "");
        if (n < 0)
            continue;
        size_t len = (size_t)n < sizeof line ? (size_t)n : sizeof line - 1;
        if (out && need + len < outlen)
            memcpy(out + need, line, len + 1);
        need += len;
    }
    return need;
}
