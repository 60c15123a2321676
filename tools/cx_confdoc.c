/* cx_confdoc: writes docs/config-reference.md from the directive table, checks that the
 * committed copy is current, or loads config files the way culex would.
 *
 *   cx_confdoc                   the reference, on stdout
 *   cx_confdoc --check FILE      exit 1 (and say how to fix it) if FILE differs
 *   cx_confdoc --load FILE...    per file: "ok" (and its plugin instances) or the errors
 *                                (exit 1 if any failed)
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config/config.h"
#include "util/alloc.h"
#include "util/err.h"

/* Reads a whole stream into a cx_malloc'd buffer. */
static char *slurp(FILE *f, size_t *len)
{
    size_t cap = 8192, n = 0;
    char *buf = cx_malloc(cap);
    while (buf) {
        n += fread(buf + n, 1, cap - n, f);
        if (n < cap)
            break;
        char *nb = cx_realloc(buf, cap * 2);
        if (!nb)
            cx_free(buf);
        buf = nb;
        cap *= 2;
    }
    *len = n;
    return buf;
}

static int check(const char *path)
{
    FILE *gen = tmpfile();
    FILE *have = fopen(path, "rb");
    if (!gen || !have) {
        fprintf(stderr, "cx_confdoc: cannot open %s\n", have ? "a temporary file" : path);
        return 1;
    }
    cx_config_write_reference(gen);
    rewind(gen);
    size_t glen, hlen;
    char *g = slurp(gen, &glen), *h = slurp(have, &hlen);
    fclose(gen);
    fclose(have);
    int same = g && h && glen == hlen && memcmp(g, h, glen) == 0;
    cx_free(g);
    cx_free(h);
    if (!same) {
        fprintf(stderr, "%s is out of date with core/config/directives.c.\n"
                        "Regenerate it: cx_confdoc > docs/config-reference.md\n", path);
        return 1;
    }
    return 0;
}

static int load(int n, char **paths)
{
    int failed = 0;
    for (int i = 0; i < n; i++) {
        char err[4096];
        cx_config_t *cfg = cx_config_new();
        int rc = cfg ? cx_config_load(cfg, paths[i], err, sizeof err) : CX_ENOMEM;
        if (rc == 0)
            rc = cx_config_finish(cfg, NULL, 0, err, sizeof err);
        if (rc == 0) {
            printf("%s: ok (%zu listener%s%s", paths[i], cfg->listener_count,
                   cfg->listener_count == 1 ? "" : "s", cfg->local_only ? ", local-only" : "");
            if (cfg->plugin_count)
                printf(", %zu plugin%s", cfg->plugin_count, cfg->plugin_count == 1 ? "" : "s");
            printf(")\n");
            for (size_t j = 0; j < cfg->plugin_count; j++) {
                const cx_plugin_conf_t *p = &cfg->plugins[j];
                printf("  plugin %s%s%s", p->path ? p->path : p->builtin,
                       p->name ? " as " : "", p->name ? p->name : "");
                if (p->listener == CX_PLUGIN_GLOBAL)
                    printf(", every listener");
                else if (p->listener >= 0)
                    printf(", listener %d", p->listener);
                else
                    printf(", used by %zu listener%s", p->use_count, p->use_count == 1 ? "" : "s");
                printf(", %zu option%s\n", p->option_count, p->option_count == 1 ? "" : "s");
            }
        } else {
            printf("%s: FAILED\n%s\n", paths[i], rc == CX_ENOMEM ? "out of memory" : err);
            failed = 1;
        }
        cx_config_free(cfg);
    }
    return failed;
}

int main(int argc, char **argv)
{
    if (argc == 1) {
        cx_config_write_reference(stdout);
        return ferror(stdout) ? 1 : 0;
    }
    if (argc == 3 && strcmp(argv[1], "--check") == 0)
        return check(argv[2]);
    if (argc >= 3 && strcmp(argv[1], "--load") == 0)
        return load(argc - 2, argv + 2);
    fprintf(stderr, "usage: cx_confdoc [--check FILE | --load FILE...]\n");
    return 2;
}
