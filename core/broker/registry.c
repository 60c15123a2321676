/* registry.c: a chained hash map keyed by client id, behind one mutex. */
#include "registry.h"

#include <pthread.h>
#include <string.h>

#include "broker/broker.h"
#include "broker/session.h"
#include "util/alloc.h"

typedef struct entry {
    struct entry *next;
    uint64_t hash;
    cx_session_t *s;
} entry_t;

struct cx_registry {
    pthread_mutex_t lock;
    entry_t **slots;
    size_t nslots;
    size_t count;
};

cx_registry_t *cx_registry_new(void)
{
    cx_registry_t *r = cx_calloc(1, sizeof *r);
    if (!r)
        return NULL;
    r->nslots = 1024;
    r->slots = cx_calloc(r->nslots, sizeof *r->slots);
    if (!r->slots) {
        cx_free(r);
        return NULL;
    }
    pthread_mutex_init(&r->lock, NULL);
    return r;
}

void cx_registry_free(cx_registry_t *r)
{
    if (!r)
        return;
    for (size_t i = 0; i < r->nslots; i++) {
        entry_t *e = r->slots[i];
        while (e) {
            entry_t *n = e->next;
            cx_free(e);
            e = n;
        }
    }
    cx_free(r->slots);
    pthread_mutex_destroy(&r->lock);
    cx_free(r);
}

static cx_str_t sid(const cx_session_t *s)
{
    return (cx_str_t){(const uint8_t *)s->client_id, s->client_id_len};
}

static entry_t **find(cx_registry_t *r, cx_str_t id, uint64_t h)
{
    entry_t **pp = &r->slots[h & (r->nslots - 1)];
    while (*pp && !((*pp)->hash == h && cx_str_eq(sid((*pp)->s), id)))
        pp = &(*pp)->next;
    return pp;
}

static void grow(cx_registry_t *r)
{
    size_t n = r->nslots * 2;
    entry_t **slots = cx_calloc(n, sizeof *slots);
    if (!slots)
        return; /* keep the longer chains; still correct */
    for (size_t i = 0; i < r->nslots; i++) {
        entry_t *e = r->slots[i];
        while (e) {
            entry_t *next = e->next;
            e->next = slots[e->hash & (n - 1)];
            slots[e->hash & (n - 1)] = e;
            e = next;
        }
    }
    cx_free(r->slots);
    r->slots = slots;
    r->nslots = n;
}

cx_session_t *cx_registry_get(cx_registry_t *r, cx_str_t id)
{
    uint64_t h = cx_str_hash(id);
    pthread_mutex_lock(&r->lock);
    entry_t *e = *find(r, id, h);
    cx_session_t *s = e ? cx_session_ref(e->s) : NULL;
    pthread_mutex_unlock(&r->lock);
    return s;
}

cx_session_t *cx_registry_insert(cx_registry_t *r, cx_session_t *s)
{
    cx_str_t id = sid(s);
    uint64_t h = cx_str_hash(id);
    pthread_mutex_lock(&r->lock);
    entry_t **pp = find(r, id, h);
    cx_session_t *holder;
    if (*pp) {
        holder = (*pp)->s;
    } else {
        entry_t *e = cx_malloc(sizeof *e);
        if (!e) {
            pthread_mutex_unlock(&r->lock);
            return NULL;
        }
        e->next = NULL;
        e->hash = h;
        e->s = s;
        *pp = e;
        holder = s;
        if (++r->count > r->nslots)
            grow(r);
    }
    cx_session_ref(holder);
    pthread_mutex_unlock(&r->lock);
    return holder;
}

void cx_registry_remove(cx_registry_t *r, cx_session_t *s)
{
    cx_str_t id = sid(s);
    uint64_t h = cx_str_hash(id);
    pthread_mutex_lock(&r->lock);
    entry_t **pp = find(r, id, h);
    if (*pp && (*pp)->s == s) {
        entry_t *e = *pp;
        *pp = e->next;
        cx_free(e);
        r->count--;
    }
    pthread_mutex_unlock(&r->lock);
}

size_t cx_registry_count(cx_registry_t *r)
{
    pthread_mutex_lock(&r->lock);
    size_t n = r->count;
    pthread_mutex_unlock(&r->lock);
    return n;
}
