/* replay_main.c: runs a fuzz target over saved inputs without libFuzzer.
 *
 *     fuzz_replay_<name> [-q] DIR|FILE...
 *
 * Every regular file of every directory (names starting with '.' skipped, so a .gitkeep can
 * hold an empty regressions/ folder in git) is read into a heap block of exactly its size and
 * passed to LLVMFuzzerTestOneInput, in name order so that runs are reproducible. This is how
 * ctest replays the seed corpus and the regression inputs with gcc and under ASan/UBSan,
 * where libFuzzer is not available. A missing directory, an unreadable file or a run that
 * finds no input at all is an error: a typo in a path must not turn the test into a no-op.
 * Each file's name is printed before it runs (unless -q), so a crash names its input. */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fuzz.h"

static int quiet;

/* Reads the whole file into an exactly-sized block (one byte for an empty file, so ASan
 * still catches any read). Returns 0 or -1. */
static int read_input(const char *path, uint8_t **out, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "replay: %s: %s\n", path, strerror(errno));
        return -1;
    }
    struct stat st;
    if (fstat(fileno(f), &st) != 0 || st.st_size < 0) {
        fprintf(stderr, "replay: %s: cannot stat\n", path);
        fclose(f);
        return -1;
    }
    size_t n = (size_t)st.st_size;
    uint8_t *buf = malloc(n ? n : 1);
    if (!buf || (n && fread(buf, 1, n, f) != n)) {
        fprintf(stderr, "replay: %s: read error\n", path);
        free(buf);
        fclose(f);
        return -1;
    }
    fclose(f);
    *out = buf;
    *len = n;
    return 0;
}

static int run_file(const char *path)
{
    uint8_t *buf;
    size_t n;
    if (read_input(path, &buf, &n) != 0)
        return -1;
    if (!quiet) {
        fprintf(stderr, "replay: %s (%zu bytes)\n", path, n);
        fflush(stderr);
    }
    LLVMFuzzerTestOneInput(buf, n);
    free(buf);
    return 0;
}

static int by_name(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Runs every regular file of dir in name order; adds the count to *count. */
static int run_dir(const char *dir, size_t *count)
{
    DIR *dh = opendir(dir);
    if (!dh) {
        fprintf(stderr, "replay: %s: %s\n", dir, strerror(errno));
        return -1;
    }
    char **names = NULL;
    size_t n = 0, cap = 0;
    int rc = 0;
    struct dirent *de;
    while ((de = readdir(dh)) != NULL) {
        if (de->d_name[0] == '.')
            continue;
        if (n == cap) {
            cap = cap ? cap * 2 : 64;
            char **grown = realloc(names, cap * sizeof *names);
            if (!grown) {
                rc = -1;
                break;
            }
            names = grown;
        }
        size_t plen = strlen(dir) + 1 + strlen(de->d_name) + 1;
        names[n] = malloc(plen);
        if (!names[n]) {
            rc = -1;
            break;
        }
        snprintf(names[n], plen, "%s/%s", dir, de->d_name);
        n++;
    }
    closedir(dh);
    if (n)
        qsort(names, n, sizeof *names, by_name);
    for (size_t i = 0; i < n; i++) {
        struct stat st;
        if (rc == 0 && stat(names[i], &st) == 0 && S_ISREG(st.st_mode)) {
            if (run_file(names[i]) != 0)
                rc = -1;
            else
                (*count)++;
        }
        free(names[i]);
    }
    free(names);
    return rc;
}

int main(int argc, char **argv)
{
    LLVMFuzzerInitialize(&argc, &argv);
    size_t count = 0;
    int rc = 0, paths = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "-q") == 0) {
            quiet = 1;
            continue;
        }
        paths++;
        struct stat st;
        if (stat(argv[i], &st) != 0) {
            fprintf(stderr, "replay: %s: %s\n", argv[i], strerror(errno));
            rc = 1;
        } else if (S_ISDIR(st.st_mode)) {
            if (run_dir(argv[i], &count) != 0)
                rc = 1;
        } else if (run_file(argv[i]) == 0) {
            count++;
        } else {
            rc = 1;
        }
    }
    if (!paths) {
        fprintf(stderr, "usage: %s [-q] DIR|FILE...\n", argv[0]);
        return 2;
    }
    if (count == 0) {
        fprintf(stderr, "replay: no input found\n");
        rc = 1;
    }
    printf("replay: %zu inputs, %s\n", count, rc ? "FAILED" : "ok");
    return rc;
}
