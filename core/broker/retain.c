/* retain.c: the retained-message store.
 *
 * A trie over topic levels, one node per level, each holding at most one value. Children are
 * kept in the small open-addressing table subtree.c uses too (levelmap.h: one inline slot for
 * the chain case, a power-of-two table beyond), so an exact lookup is one probe per level and
 * a wildcard filter visits only the subtrees it matches.
 *
 * Callbacks need each match's full topic, so the walk keeps the current path in one buffer,
 * appending a level on the way down and cutting it on the way up. With parent pointers and
 * that buffer, matching needs no recursion and no stack. */
#include "retain.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "levelmap.h"
#include "util/alloc.h"
#include "util/rwlock.h"
#include "util/err.h"

typedef struct rnode rnode_t;
struct rnode {
    rnode_t *parent;        /* NULL for the root */
    cx_levelmap_t kids;     /* children (their lv entries) */
    void *value;            /* one reference owned by the store, or NULL */
    cx_levelmap_entry_t lv; /* key's hash and length */
    char key[];             /* the level, not NUL-terminated */
};
CX_LEVELMAP_CHECK_LAYOUT(rnode_t, lv, key);

/* The node whose entry e is, or NULL. */
static inline rnode_t *rnode_of(cx_levelmap_entry_t *e)
{
    return e ? (rnode_t *)((char *)e - offsetof(rnode_t, lv)) : NULL;
}

struct cx_retain {
    pthread_rwlock_t lock;
    rnode_t *root;
    uint64_t seed; /* per-store hash seed, so publishers cannot aim level collisions at us */
    cx_retain_ref_cb ref;
    cx_retain_unref_cb unref;
    size_t max_topic_len; /* longest topic ever set: bounds the path buffer */
    _Atomic size_t count;
};

static const uint8_t empty_bytes[1];

/* ---- children -------------------------------------------------------------------------- */

/* The child after c in slot order (c == NULL: the first). */
static rnode_t *child_next(const rnode_t *n, const rnode_t *c)
{
    return rnode_of(cx_levelmap_next(&n->kids, c ? &c->lv : NULL));
}

/* Like child_next, but when a first-level wildcard is being expanded, skips the root's
 * '$' children [MQTT-4.7.2-1]. */
static rnode_t *child_next_vis(const rnode_t *root, bool skip_dollar, const rnode_t *n,
                               rnode_t *c)
{
    do
        c = child_next(n, c);
    while (c && skip_dollar && n == root && c->lv.keylen && c->key[0] == '$');
    return c;
}

/* ---- nodes ----------------------------------------------------------------------------- */

static rnode_t *node_new(rnode_t *parent, const uint8_t *key, size_t len, uint32_t h)
{
    rnode_t *n = cx_malloc(sizeof *n + len);
    if (!n)
        return NULL;
    memset(n, 0, sizeof *n);
    n->parent = parent;
    cx_levelmap_entry_init(&n->lv, key, len, h);
    return n;
}

static void prune(rnode_t *root, rnode_t *n)
{
    while (n != root && !cx_levelmap_count(&n->kids) && !n->value) {
        rnode_t *p = n->parent;
        cx_levelmap_remove(&p->kids, &n->lv);
        cx_free(n);
        n = p;
    }
}

/* The node of topic, created on the way if `create` (failures prune what was created). */
static rnode_t *topic_node(cx_retain_t *s, cx_str_t topic, bool create)
{
    rnode_t *n = s->root;
    size_t off = 0;
    do {
        size_t end = cx_levelmap_level_end(topic, off), len = end - off;
        uint32_t h = cx_levelmap_hash(s->seed, topic.p + off, len);
        rnode_t *c = cx_levelmap_count(&n->kids)
                         ? rnode_of(cx_levelmap_find(&n->kids, topic.p + off, len, h))
                         : NULL;
        if (!c && create) {
            c = node_new(n, topic.p + off, len, h);
            if (c && cx_levelmap_insert(&n->kids, &c->lv) != CX_OK)
                cx_free_null(c);
            if (!c)
                prune(s->root, n);
        }
        if (!c)
            return NULL;
        n = c;
        off = end + 1;
    } while (off <= topic.len);
    return n;
}

/* ---- path buffer ----------------------------------------------------------------------- */

typedef struct path {
    uint8_t *p;
    size_t len;
    uint8_t local[256]; /* most topics fit, so most matches allocate nothing */
} path_t;

static int path_init(path_t *b, size_t max)
{
    b->len = 0;
    b->p = max <= sizeof b->local ? b->local : cx_malloc(max);
    return b->p ? CX_OK : CX_ENOMEM;
}

static void path_fini(path_t *b)
{
    if (b->p != b->local)
        cx_free(b->p);
}

static void path_push(path_t *b, const rnode_t *root, const rnode_t *c)
{
    if (c->parent != root)
        b->p[b->len++] = '/';
    memcpy(b->p + b->len, c->key, c->lv.keylen);
    b->len += c->lv.keylen;
}

static void path_pop(path_t *b, const rnode_t *root, const rnode_t *c)
{
    b->len -= c->lv.keylen + (c->parent != root);
}

/* Calls cb for every value strictly below base; b holds base's path on entry and on return. */
static void emit_below(const cx_retain_t *s, rnode_t *base, path_t *b, bool skip_dollar,
                       cx_retain_match_cb cb, void *ud)
{
    const rnode_t *root = s->root;
    rnode_t *n = base;
    for (;;) {
        rnode_t *c = child_next_vis(root, skip_dollar, n, NULL);
        while (!c) {
            if (n == base)
                return;
            rnode_t *p = n->parent;
            path_pop(b, root, n);
            c = child_next_vis(root, skip_dollar, p, n);
            if (!c)
                n = p;
        }
        path_push(b, root, c);
        n = c;
        if (n->value)
            cb(ud, (cx_str_t){b->p, b->len}, n->value);
    }
}

/* ---- public ---------------------------------------------------------------------------- */

cx_retain_t *cx_retain_new(cx_retain_ref_cb ref, cx_retain_unref_cb unref)
{
    cx_retain_t *s = cx_malloc(sizeof *s);
    if (!s)
        return NULL;
    s->root = node_new(NULL, NULL, 0, 0);
    if (!s->root) {
        cx_free(s);
        return NULL;
    }
    if (cx_rwlock_init_writer_first(&s->lock) != 0) {
        cx_free(s->root);
        cx_free(s);
        return NULL;
    }
    s->seed = cx_levelmap_seed(s);
    s->ref = ref;
    s->unref = unref;
    s->max_topic_len = 0;
    atomic_init(&s->count, 0);
    return s;
}

void cx_retain_free(cx_retain_t *s)
{
    if (!s)
        return;
    /* Stackless post-order as in cx_subtree_free: each child map is drained by a cursor. */
    rnode_t *n = s->root;
    cx_levelmap_drain_begin(&n->kids);
    while (n) {
        rnode_t *c = rnode_of(cx_levelmap_drain(&n->kids));
        if (c) {
            cx_levelmap_drain_begin(&c->kids);
            n = c;
            continue;
        }
        rnode_t *p = n->parent;
        if (n->value)
            s->unref(n->value);
        cx_levelmap_fini(&n->kids);
        cx_free(n);
        n = p;
    }
    pthread_rwlock_destroy(&s->lock);
    cx_free(s);
}

int cx_retain_set(cx_retain_t *s, cx_str_t topic, void *value)
{
    /* MQTT strings cannot be longer, and nodes store level lengths in 16 bits. */
    if (topic.len > UINT16_MAX)
        return CX_EINVAL;
    if (!topic.p)
        topic.p = empty_bytes;
    void *old = NULL;
    int rc = CX_OK;
    if (value)
        s->ref(value);
    pthread_rwlock_wrlock(&s->lock);
    rnode_t *n = topic_node(s, topic, value != NULL);
    if (value && !n) {
        rc = CX_ENOMEM;
        old = value; /* give back the reference taken above */
    } else if (value) {
        old = n->value;
        n->value = value;
        if (!old)
            atomic_fetch_add_explicit(&s->count, 1, memory_order_relaxed);
        if (topic.len > s->max_topic_len)
            s->max_topic_len = topic.len;
    } else if (n && n->value) {
        old = n->value;
        n->value = NULL;
        atomic_fetch_sub_explicit(&s->count, 1, memory_order_relaxed);
        prune(s->root, n);
    }
    pthread_rwlock_unlock(&s->lock);
    if (old)
        s->unref(old);
    return rc;
}

void *cx_retain_get(cx_retain_t *s, cx_str_t topic)
{
    if (!topic.p)
        topic.p = empty_bytes;
    pthread_rwlock_rdlock(&s->lock);
    rnode_t *n = topic_node(s, topic, false);
    void *v = n ? n->value : NULL;
    if (v)
        s->ref(v);
    pthread_rwlock_unlock(&s->lock);
    return v;
}

int cx_retain_match(cx_retain_t *s, cx_str_t filter, cx_retain_match_cb cb, void *ud)
{
    if (!filter.p)
        filter.p = empty_bytes;
    /* [MQTT-4.7.2-1]: a first-level wildcard skips topics starting with '$'. Validated
     * filters have '+' and '#' only as whole levels, so the first byte tells. */
    bool skip_dollar = filter.len && (filter.p[0] == '+' || filter.p[0] == '#');
    path_t b;
    pthread_rwlock_rdlock(&s->lock);
    if (path_init(&b, s->max_topic_len) != CX_OK) {
        pthread_rwlock_unlock(&s->lock);
        return CX_ENOMEM;
    }
    rnode_t *root = s->root, *n = root;
    /* At node n, `off` is where the filter level for n's children starts, or filter.len + 1
     * once every level has been consumed; b holds n's topic. */
    size_t off = 0;
    for (;;) {
        rnode_t *next = NULL;
        if (off > filter.len) {
            if (n->value)
                cb(ud, (cx_str_t){b.p, b.len}, n->value);
        } else {
            size_t end = cx_levelmap_level_end(filter, off), len = end - off;
            const uint8_t *lv = filter.p + off;
            if (len == 1 && lv[0] == '#') {
                if (n != root && n->value) /* "a/#" also matches "a" */
                    cb(ud, (cx_str_t){b.p, b.len}, n->value);
                emit_below(s, n, &b, skip_dollar, cb, ud);
            } else if (len == 1 && lv[0] == '+') {
                next = child_next_vis(root, skip_dollar, n, NULL);
            } else if (cx_levelmap_count(&n->kids)) {
                uint32_t h = cx_levelmap_hash(s->seed, lv, len);
                next = rnode_of(cx_levelmap_find(&n->kids, lv, len, h));
            }
            if (next)
                off = end + 1;
        }
        /* Backtrack: where n was reached through a '+', its next sibling matches too. */
        while (!next) {
            if (n == root)
                goto done;
            rnode_t *p = n->parent;
            size_t poff = cx_levelmap_level_start_before(filter, off);
            path_pop(&b, root, n);
            if (filter.p[poff] == '+' && cx_levelmap_level_end(filter, poff) == poff + 1)
                next = child_next_vis(root, skip_dollar, p, n);
            if (!next) {
                n = p;
                off = poff;
            }
        }
        path_push(&b, root, next);
        n = next;
    }
done:
    pthread_rwlock_unlock(&s->lock);
    path_fini(&b);
    return CX_OK;
}

int cx_retain_walk(cx_retain_t *s, cx_retain_match_cb cb, void *ud)
{
    path_t b;
    pthread_rwlock_rdlock(&s->lock);
    if (path_init(&b, s->max_topic_len) != CX_OK) {
        pthread_rwlock_unlock(&s->lock);
        return CX_ENOMEM;
    }
    emit_below(s, s->root, &b, false, cb, ud);
    pthread_rwlock_unlock(&s->lock);
    path_fini(&b);
    return CX_OK;
}

size_t cx_retain_count(cx_retain_t *s)
{
    return atomic_load_explicit(&s->count, memory_order_relaxed);
}
