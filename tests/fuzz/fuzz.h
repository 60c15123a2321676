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

#define FUZZ_CHECK(cond)                                                                  \
    do {                                                                                  \
        if (!(cond)) {                                                                    \
            fprintf(stderr, "%s:%d: fuzz check failed: %s\n", __FILE__, __LINE__, #cond); \
            abort();                                                                      \
        }                                                                                 \
    } while (0)

#endif
