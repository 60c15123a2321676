/* rwlock.h: the reader-writer lock the shared topic structures use. */
#ifndef CX_RWLOCK_H
#define CX_RWLOCK_H

#include <pthread.h>

/* Initialises l so that a waiting writer goes before new readers: with glibc's default, a
 * steady stream of matching readers (every PUBLISH) would starve SUBSCRIBE and retained
 * updates forever. Returns 0 or the pthread error. */
static inline int cx_rwlock_init_writer_first(pthread_rwlock_t *l)
{
    pthread_rwlockattr_t attr;
    pthread_rwlockattr_init(&attr);
#ifdef __GLIBC__
    pthread_rwlockattr_setkind_np(&attr, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
#endif
    int rc = pthread_rwlock_init(l, &attr);
    pthread_rwlockattr_destroy(&attr);
    return rc;
}

#endif
