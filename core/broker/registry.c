/* registry.c: a chained hash map keyed by client id, behind one mutex. The chains run
 * through the sessions themselves (reg_next, reg_hash): no entry is allocated per client. */
#include "registry.h"

#include <pthread.h>
#include <string.h>

#include "broker/broker.h"
#include "broker/session.h"
#include "util/alloc.h"

struct cx_registry {
    pthread_mutex_t lock;
    cx_session_t **slots;
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
    cx_free(r->slots);
    pthread_mutex_destroy(&r->lock);
    cx_free(r);
}

static cx_str_t sid(const cx_session_t *s)
{
    return (cx_str_t){(const uint8_t *)s->client_id, s->client_id_len};
}

/* Hashes are kept to 32 bits in the session: enough to index up to 4 G slots and to
 * skip most string comparisons. */
static cx_session_t **find(cx_registry_t *r, cx_str_t id, uint32_t h)
{
    cx_session_t **pp = &r->slots[h & (r->nslots - 1)];
    while (*pp && !((*pp)->reg_hash == h && cx_str_eq(sid(*pp), id)))
        pp = &(*pp)->reg_next;
    return pp;
}

static void grow(cx_registry_t *r)
{
    size_t n = r->nslots * 2;
    cx_session_t **slots = cx_calloc(n, sizeof *slots);
    if (!slots)
        return; /* keep the longer chains; still correct */
    for (size_t i = 0; i < r->nslots; i++) {
        cx_session_t *e = r->slots[i];
        while (e) {
            cx_session_t *next = e->reg_next;
            e->reg_next = slots[e->reg_hash & (n - 1)];
            slots[e->reg_hash & (n - 1)] = e;
            e = next;
        }
    }
    cx_free(r->slots);
    r->slots = slots;
    r->nslots = n;
}

cx_session_t *cx_registry_get(cx_registry_t *r, cx_str_t id)
{
    uint32_t h = (uint32_t)cx_str_hash(id);
    pthread_mutex_lock(&r->lock);
    cx_session_t *e = *find(r, id, h);
    cx_session_t *s = e ? cx_session_ref(e) : NULL;
    pthread_mutex_unlock(&r->lock);
    return s;
}

cx_session_t *cx_registry_insert(cx_registry_t *r, cx_session_t *s)
{
    cx_str_t id = sid(s);
    uint32_t h = (uint32_t)cx_str_hash(id);
    pthread_mutex_lock(&r->lock);
    cx_session_t **pp = find(r, id, h);
    cx_session_t *holder;
    if (*pp) {
        holder = *pp;
    } else {
        s->reg_next = NULL;
        s->reg_hash = h;
        *pp = s;
        holder = s;
        /* Up to two sessions per slot on average: 4 bytes of table per client, and a
         * lookup still compares one or two 32-bit hashes. */
        if (++r->count > 2 * r->nslots)
            grow(r);
    }
    cx_session_ref(holder);
    pthread_mutex_unlock(&r->lock);
    return holder;
}

void cx_registry_remove(cx_registry_t *r, cx_session_t *s)
{
    cx_str_t id = sid(s);
    uint32_t h = (uint32_t)cx_str_hash(id);
    pthread_mutex_lock(&r->lock);
    cx_session_t **pp = find(r, id, h);
    if (*pp == s) {
        *pp = s->reg_next;
        s->reg_next = NULL;
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
