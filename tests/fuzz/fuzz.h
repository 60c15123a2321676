/* fuzz.h: what every fuzz target and replay_main.c share.
 *
 * The two libFuzzer entry points are declared here because the build's -Wmissing-prototypes
 * wants a prototype for every global function; each target defines both, so replay_main.c
 * needs no weak symbols. FUZZ_CHECK is the targets' assertion: a broken invariant must be a
 * crash (abort) so that libFuzzer records the input and the replay test fails. It is not
 * CX_ASSERT because the targets check properties of the code under test, not their own
 * invariants, and they must fire in every build type. */
#ifndef CX_FUZZ_H
#define CX_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

/* Makes a private scratch directory $TMPDIR/cx-fuzz-<tag>-XXXXXX (TMPDIR defaults to /tmp)
 * for the targets whose code under test takes a path. The targets remove it at exit, but a
 * crashing input ends the process first; run.sh points TMPDIR into its own work directory
 * so those leftovers go with it. Aborts when the directory cannot be made. */
static inline void fz_scratch_dir(char *buf, size_t len, const char *tag)
{
    const char *tmp = getenv("TMPDIR");
    if (!tmp || !*tmp)
        tmp = "/tmp";
    int n = snprintf(buf, len, "%s/cx-fuzz-%s-XXXXXX", tmp, tag);
    if (n < 0 || (size_t)n >= len || !mkdtemp(buf)) {
        fprintf(stderr, "fuzz: cannot make a scratch directory in %s\n", tmp);
        abort();
    }
}

#define FUZZ_CHECK(cond)                                                                  \
    do {                                                                                  \
        if (!(cond)) {                                                                    \
            fprintf(stderr, "%s:%d: fuzz check failed: %s\n", __FILE__, __LINE__, #cond); \
            abort();                                                                      \
        }                                                                                 \
    } while (0)

#endif
