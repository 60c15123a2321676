/* registry.h: the client-id registry, client id -> session, shared by all workers.
 *
 * Used at CONNECT time only (and when a session ends), so one mutex is enough. */
#ifndef CX_BROKER_REGISTRY_H
#define CX_BROKER_REGISTRY_H

#include <stddef.h>

#include "util/str.h"

typedef struct cx_registry cx_registry_t;
struct cx_session;

cx_registry_t *cx_registry_new(void);
void cx_registry_free(cx_registry_t *r);

/* The session registered under id, or NULL. If found, a reference is taken for the caller
 * (cx_session_unref when done), so the pointer stays valid even if it ends meanwhile. */
struct cx_session *cx_registry_get(cx_registry_t *r, cx_str_t id);
/* Registers s under its client id unless that id is taken; returns the session that holds
 * the id afterwards, referenced for the caller (s itself when it was inserted). */
struct cx_session *cx_registry_insert(cx_registry_t *r, struct cx_session *s);
/* Removes s if it is the session registered under its id. */
void cx_registry_remove(cx_registry_t *r, struct cx_session *s);
size_t cx_registry_count(cx_registry_t *r);

#endif
