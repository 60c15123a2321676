/* subtree.c: the subscription trie.
 *
 * Each node stands for one filter level. Its literal children live in a small open-addressing
 * hash table keyed by the level bytes, while the '+' and '#' children have pointers of their
 * own, so matching a topic costs one probe per level plus the wildcard branches actually
 * present, whatever the number of subscriptions elsewhere. A subscription sits on the node of
 * its last filter level: non-shared ones in a dense array (indexed by owner once it outgrows a
 * linear scan, so 100k subscribers on one filter still add and remove in O(1)), shared ones
 * in a short list of groups, each with its own members and round-robin cursor. Wildcard
 * children and groups are rare, so they sit in a side struct allocated on demand: most nodes
 * are a chain link with one literal child and pay 16 bytes less. The literal-child table and
 * the level hash are levelmap.h's, shared with retain.c.
 *
 * Nodes keep a parent pointer so that matching, walking, pruning and destruction all run
 * without recursion or an allocated stack: a filter may have thousands of levels, and a match
 * that cannot fail is simpler for every caller than one that can run out of memory. */
#include "subtree.h"

#include <pthread.h>
#include <stdatomic.h>
#include <string.h>

#include "levelmap.h"
#include "util/alloc.h"
#include "util/rwlock.h"
#include "util/err.h"

typedef struct sub {
    void *owner;
    cx_sub_opts_t opts;
} sub_t;

/* Up to this many entries a set is searched linearly (they fit in two cache lines); past it an
 * owner index is kept beside the array. */
#define SUBSET_LINEAR_MAX 8

/* The subscriptions of distinct owners on one node or in one group. Entries are dense so that
 * matching streams through them; removal moves the last entry into the hole. */
typedef struct subset {
    uint32_t n;
    uint32_t cap;
    uint32_t *idx;     /* open addressing: slot = position + 1, 0 = empty; NULL while small */
    uint32_t idx_mask; /* idx has idx_mask + 1 slots, kept at most half full */
    sub_t v[];
} subset_t;

typedef struct group {
    struct group *next;
    subset_t *members;   /* never NULL while the group is linked */
    _Atomic uint32_t rr; /* round-robin cursor, bumped by readers under the read lock */
    uint16_t namelen;
    char name[];
} group_t;

typedef struct node node_t;

typedef struct node_ext {
    node_t *plus;    /* '+' child */
    node_t *hash;    /* '#' child: holds subscriptions only, never children */
    group_t *groups; /* shared subscriptions */
} node_ext_t;

struct node {
    node_t *parent;         /* NULL for the root */
    cx_levelmap_t kids;     /* literal children (their lv entries) */
    subset_t *subs;         /* non-shared subscriptions, NULL if none */
    node_ext_t *ext;        /* NULL unless one of its members is set */
    cx_levelmap_entry_t lv; /* key's hash (0 for wildcards, which are in no map) and length */
    char key[];             /* the level ("+" and "#" for wildcard nodes), not NUL-terminated */
};
CX_LEVELMAP_CHECK_LAYOUT(node_t, lv, key);

/* The node whose entry e is, or NULL. */
static inline node_t *node_of(cx_levelmap_entry_t *e)
{
    return e ? (node_t *)((char *)e - offsetof(node_t, lv)) : NULL;
}

struct cx_subtree {
    pthread_rwlock_t lock;
    node_t *root;
    uint64_t seed;         /* per-tree hash seed, so clients cannot aim collisions at us */
    size_t max_filter_len; /* longest filter ever added: bounds the walk's path buffer */
    _Atomic size_t count;
    _Atomic size_t shared_count;
};

static const uint8_t empty_bytes[1];

/* ---- owner sets ------------------------------------------------------------------------ */

static uint32_t owner_hash(const void *owner)
{
    return (uint32_t)(((uint64_t)(uintptr_t)owner * 0x9e3779b97f4a7c15ULL) >> 32);
}

static long subset_find(const subset_t *s, const void *owner)
{
    if (!s)
        return -1;
    if (!s->idx) {
        for (uint32_t i = 0; i < s->n; i++)
            if (s->v[i].owner == owner)
                return i;
        return -1;
    }
    for (uint32_t i = owner_hash(owner) & s->idx_mask;; i = (i + 1) & s->idx_mask) {
        uint32_t e = s->idx[i];
        if (!e)
            return -1;
        if (s->v[e - 1].owner == owner)
            return e - 1;
    }
}

static void idx_place(subset_t *s, uint32_t pos)
{
    uint32_t i = owner_hash(s->v[pos].owner) & s->idx_mask;
    while (s->idx[i])
        i = (i + 1) & s->idx_mask;
    s->idx[i] = pos + 1;
}

/* Rebuilds the owner index for at least `want` entries. Leaves the old one on failure. */
static int idx_build(subset_t *s, uint32_t want)
{
    uint32_t cap = 16;
    while (cap < want * 2)
        cap *= 2;
    uint32_t *idx = cx_calloc(cap, sizeof *idx);
    if (!idx)
        return CX_ENOMEM;
    cx_free(s->idx);
    s->idx = idx;
    s->idx_mask = cap - 1;
    for (uint32_t i = 0; i < s->n; i++)
        idx_place(s, i);
    return CX_OK;
}

static uint32_t *idx_slot_of(subset_t *s, uint32_t pos)
{
    uint32_t i = owner_hash(s->v[pos].owner) & s->idx_mask;
    while (s->idx[i] != pos + 1)
        i = (i + 1) & s->idx_mask;
    return &s->idx[i];
}

/* Linear-probing deletion by backward shift: no tombstones, so lookups of absent owners stay
 * short however many removals there have been. */
static void idx_delete(subset_t *s, uint32_t pos)
{
    uint32_t mask = s->idx_mask, *x = s->idx;
    uint32_t i = (uint32_t)(idx_slot_of(s, pos) - x);
    x[i] = 0;
    for (uint32_t j = (i + 1) & mask; x[j]; j = (j + 1) & mask) {
        uint32_t home = owner_hash(s->v[x[j] - 1].owner) & mask;
        /* x[j] must stay if its home lies cyclically in (i, j]; else it fills the hole. */
        bool stays = i <= j ? (home > i && home <= j) : (home > i || home <= j);
        if (!stays) {
            x[i] = x[j];
            x[j] = 0;
            i = j;
        }
    }
}

/* Adds or updates owner in *sp (which may be NULL or be reallocated). Returns 1 if added,
 * 0 if updated, CX_ENOMEM (set unchanged). */
static int subset_put(subset_t **sp, void *owner, const cx_sub_opts_t *opts)
{
    subset_t *s = *sp;
    long found = subset_find(s, owner);
    if (found >= 0) {
        s->v[found].opts = *opts;
        return 0;
    }
    uint32_t n = s ? s->n : 0;
    if (!s || n == s->cap) {
        /* Start at one entry: most filters have a single subscriber. */
        uint32_t cap = s ? s->cap * 2 : 1;
        subset_t *ns = cx_realloc(s, sizeof *ns + (size_t)cap * sizeof ns->v[0]);
        if (!ns)
            return CX_ENOMEM;
        if (!s) {
            ns->n = 0;
            ns->idx = NULL;
            ns->idx_mask = 0;
        }
        ns->cap = cap;
        *sp = s = ns;
    }
    if (n + 1 > SUBSET_LINEAR_MAX && (!s->idx || (n + 1) * 2 > s->idx_mask + 1))
        if (idx_build(s, n + 1) != CX_OK)
            return CX_ENOMEM;
    s->v[n].owner = owner;
    s->v[n].opts = *opts;
    s->n = n + 1;
    if (s->idx)
        idx_place(s, n);
    return 1;
}

/* Removes owner from *sp, freeing the set when it empties and shrinking it when sparse.
 * Never allocates except to shrink, and a failed shrink is ignored. */
static int subset_del(subset_t **sp, const void *owner)
{
    subset_t *s = *sp;
    long found = subset_find(s, owner);
    if (found < 0)
        return CX_ENOTFOUND;
    uint32_t pos = (uint32_t)found, last = s->n - 1;
    if (s->idx) {
        idx_delete(s, pos);
        if (pos != last)
            *idx_slot_of(s, last) = pos + 1;
    }
    s->v[pos] = s->v[last];
    s->n = last;
    if (s->n == 0) {
        cx_free(s->idx);
        cx_free(s);
        *sp = NULL;
        return CX_OK;
    }
    if (s->idx && s->n <= SUBSET_LINEAR_MAX / 2) {
        cx_free_null(s->idx);
        s->idx_mask = 0;
    } else if (s->idx && s->idx_mask > 15 && s->n * 8 < s->idx_mask + 1) {
        (void)idx_build(s, s->n * 2);
    }
    if (s->cap >= 16 && s->n * 4 <= s->cap) {
        subset_t *ns = cx_realloc(s, sizeof *ns + (size_t)(s->cap / 2) * sizeof ns->v[0]);
        if (ns) {
            ns->cap /= 2;
            *sp = ns;
        }
    }
    return CX_OK;
}

static void subset_free(subset_t *s)
{
    if (s) {
        cx_free(s->idx);
        cx_free(s);
    }
}

/* ---- children -------------------------------------------------------------------------- */

static node_t *plus_of(const node_t *n)
{
    return n->ext ? n->ext->plus : NULL;
}

static node_t *hash_of(const node_t *n)
{
    return n->ext ? n->ext->hash : NULL;
}

static group_t *groups_of(const node_t *n)
{
    return n->ext ? n->ext->groups : NULL;
}

/* The child after c in a fixed order (literal children in slot order, then '+', then '#');
 * c == NULL gives the first. Read-only, so walks may run concurrently. */
static node_t *child_next(const node_t *n, const node_t *c)
{
    node_t *plus = plus_of(n), *hash = hash_of(n);
    if (c && c == hash)
        return NULL;
    if (c && c == plus)
        return hash;
    node_t *lit = node_of(cx_levelmap_next(&n->kids, c ? &c->lv : NULL));
    if (lit)
        return lit;
    return plus ? plus : hash;
}

/* ---- nodes ----------------------------------------------------------------------------- */

static node_t *node_new(node_t *parent, const uint8_t *key, size_t len, uint32_t h)
{
    node_t *n = cx_malloc(sizeof *n + len);
    if (!n)
        return NULL;
    memset(n, 0, sizeof *n);
    n->parent = parent;
    cx_levelmap_entry_init(&n->lv, key, len, h);
    return n;
}

static void node_free(node_t *n)
{
    cx_levelmap_fini(&n->kids);
    subset_free(n->subs);
    for (group_t *g = groups_of(n), *next; g; g = next) {
        next = g->next;
        subset_free(g->members);
        cx_free(g);
    }
    cx_free(n->ext);
    cx_free(n);
}

/* Frees n's side struct once nothing is left in it. */
static void ext_trim(node_t *n)
{
    if (n->ext && !n->ext->plus && !n->ext->hash && !n->ext->groups)
        cx_free_null(n->ext);
}

static node_ext_t *ext_get(node_t *n)
{
    if (!n->ext)
        n->ext = cx_calloc(1, sizeof *n->ext);
    return n->ext;
}

/* Frees n and its ancestors for as long as they hold nothing. */
static void prune(node_t *root, node_t *n)
{
    for (;;) {
        ext_trim(n);
        if (n == root || cx_levelmap_count(&n->kids) || n->subs || n->ext)
            return;
        node_t *p = n->parent;
        if (p->ext && p->ext->plus == n)
            p->ext->plus = NULL;
        else if (p->ext && p->ext->hash == n)
            p->ext->hash = NULL;
        else
            cx_levelmap_remove(&p->kids, &n->lv);
        node_free(n);
        n = p;
    }
}

static node_t *child_get(cx_subtree_t *t, node_t *n, const uint8_t *key, size_t len, bool create)
{
    if (len == 1 && (key[0] == '+' || key[0] == '#')) {
        if (!create)
            return key[0] == '+' ? plus_of(n) : hash_of(n);
        node_ext_t *x = ext_get(n);
        if (!x)
            return NULL;
        node_t **wild = key[0] == '+' ? &x->plus : &x->hash;
        if (!*wild)
            *wild = node_new(n, key, len, 0);
        return *wild; /* on failure the caller's prune drops an empty ext */
    }
    uint32_t h = cx_levelmap_hash(t->seed, key, len);
    node_t *c = node_of(cx_levelmap_find(&n->kids, key, len, h));
    if (c || !create)
        return c;
    c = node_new(n, key, len, h);
    if (c && cx_levelmap_insert(&n->kids, &c->lv) != CX_OK)
        cx_free_null(c);
    return c;
}

/* The node of filter's last level, created on the way if `create` (and on failure the nodes
 * created so far are pruned again). */
static node_t *filter_node(cx_subtree_t *t, cx_str_t filter, bool create)
{
    node_t *n = t->root;
    size_t off = 0;
    do {
        size_t end = cx_levelmap_level_end(filter, off);
        node_t *c = child_get(t, n, filter.p + off, end - off, create);
        if (!c) {
            if (create)
                prune(t->root, n);
            return NULL;
        }
        n = c;
        off = end + 1;
    } while (off <= filter.len);
    return n;
}

/* Requires n->ext. */
static group_t **group_link(node_t *n, cx_str_t name)
{
    group_t **gp = &n->ext->groups;
    while (*gp && !cx_str_eq((cx_str_t){(const uint8_t *)(*gp)->name, (*gp)->namelen}, name))
        gp = &(*gp)->next;
    return gp;
}

static int group_put(node_t *n, cx_str_t name, void *owner, const cx_sub_opts_t *opts)
{
    if (!ext_get(n))
        return CX_ENOMEM;
    group_t **gp = group_link(n, name), *g = *gp;
    if (!g) {
        g = cx_malloc(sizeof *g + name.len);
        if (!g)
            return CX_ENOMEM;
        g->next = NULL;
        g->members = NULL;
        atomic_init(&g->rr, 0);
        g->namelen = (uint16_t)name.len;
        memcpy(g->name, name.p, name.len);
    }
    int rc = subset_put(&g->members, owner, opts);
    if (!*gp) {
        if (rc < 0)
            cx_free(g);
        else
            *gp = g;
    }
    return rc;
}

/* ---- public ---------------------------------------------------------------------------- */

cx_subtree_t *cx_subtree_new(void)
{
    cx_subtree_t *t = cx_malloc(sizeof *t);
    if (!t)
        return NULL;
    t->root = node_new(NULL, NULL, 0, 0);
    if (!t->root) {
        cx_free(t);
        return NULL;
    }
    if (cx_rwlock_init_writer_first(&t->lock) != 0) {
        cx_free(t->root);
        cx_free(t);
        return NULL;
    }
    t->seed = cx_levelmap_seed(t);
    t->max_filter_len = 0;
    atomic_init(&t->count, 0);
    atomic_init(&t->shared_count, 0);
    return t;
}

void cx_subtree_free(cx_subtree_t *t)
{
    if (!t)
        return;
    /* Post-order without a stack: detach children one at a time, descending into each; a
     * node's child map is drained through a cursor so a wide node is scanned only once. */
    node_t *n = t->root;
    cx_levelmap_drain_begin(&n->kids);
    while (n) {
        node_t *c = node_of(cx_levelmap_drain(&n->kids));
        if (!c && n->ext && n->ext->plus) {
            c = n->ext->plus;
            n->ext->plus = NULL;
        }
        if (!c && n->ext && n->ext->hash) {
            c = n->ext->hash;
            n->ext->hash = NULL;
        }
        if (c) {
            cx_levelmap_drain_begin(&c->kids);
            n = c;
            continue;
        }
        node_t *p = n->parent;
        node_free(n);
        n = p;
    }
    pthread_rwlock_destroy(&t->lock);
    cx_free(t);
}

int cx_subtree_add(cx_subtree_t *t, cx_str_t filter, cx_str_t group, void *owner,
                   const cx_sub_opts_t *opts)
{
    /* MQTT strings cannot be longer, and nodes store level lengths in 16 bits. */
    if (filter.len > UINT16_MAX || group.len > UINT16_MAX)
        return CX_EINVAL;
    if (!filter.p)
        filter.p = empty_bytes;
    int rc = CX_ENOMEM;
    pthread_rwlock_wrlock(&t->lock);
    node_t *n = filter_node(t, filter, true);
    if (n) {
        rc = group.len ? group_put(n, group, owner, opts) : subset_put(&n->subs, owner, opts);
        if (rc < 0) {
            prune(t->root, n);
        } else {
            if (rc == 1) {
                atomic_fetch_add_explicit(&t->count, 1, memory_order_relaxed);
                if (group.len)
                    atomic_fetch_add_explicit(&t->shared_count, 1, memory_order_relaxed);
            }
            if (filter.len > t->max_filter_len)
                t->max_filter_len = filter.len;
        }
    }
    pthread_rwlock_unlock(&t->lock);
    return rc;
}

int cx_subtree_remove(cx_subtree_t *t, cx_str_t filter, cx_str_t group, void *owner)
{
    if (!filter.p)
        filter.p = empty_bytes;
    int rc = CX_ENOTFOUND;
    pthread_rwlock_wrlock(&t->lock);
    node_t *n = filter_node(t, filter, false);
    if (n && !group.len) {
        rc = subset_del(&n->subs, owner);
    } else if (n && n->ext) {
        group_t **gp = group_link(n, group), *g = *gp;
        if (g) {
            rc = subset_del(&g->members, owner);
            if (rc == CX_OK && !g->members) {
                *gp = g->next;
                cx_free(g);
            }
        }
    }
    if (rc == CX_OK) {
        atomic_fetch_sub_explicit(&t->count, 1, memory_order_relaxed);
        if (group.len)
            atomic_fetch_sub_explicit(&t->shared_count, 1, memory_order_relaxed);
        prune(t->root, n);
    }
    pthread_rwlock_unlock(&t->lock);
    return rc;
}

static void emit_group(group_t *g, cx_subtree_match_cb cb, cx_subtree_pick_cb pick, void *ud)
{
    const subset_t *m = g->members;
    uint32_t n = m->n;
    uint32_t start = atomic_fetch_add_explicit(&g->rr, 1, memory_order_relaxed) % n;
    uint32_t chosen = start;
    if (pick) {
        for (uint32_t i = 0; i < n; i++) {
            uint32_t j = start + i < n ? start + i : start + i - n;
            if (pick(ud, m->v[j].owner)) {
                chosen = j;
                /* Move the cursor past the members skipped too, or the one after a busy
                 * member would get its turns as well as its own. */
                if (i)
                    atomic_fetch_add_explicit(&g->rr, i, memory_order_relaxed);
                break;
            }
        }
    }
    cb(ud, m->v[chosen].owner, &m->v[chosen].opts,
       (cx_str_t){(const uint8_t *)g->name, g->namelen});
}

static void emit_node(node_t *n, cx_subtree_match_cb cb, cx_subtree_pick_cb pick, void *ud)
{
    const subset_t *s = n->subs;
    if (s)
        for (uint32_t i = 0; i < s->n; i++)
            cb(ud, s->v[i].owner, &s->v[i].opts, CX_STR_NULL);
    for (group_t *g = groups_of(n); g; g = g->next)
        emit_group(g, cb, pick, ud);
}

void cx_subtree_match(cx_subtree_t *t, cx_str_t topic, cx_subtree_match_cb cb,
                      cx_subtree_pick_cb pick, void *ud)
{
    if (!topic.p)
        topic.p = empty_bytes;
    /* [MQTT-4.7.2-1]: no first-level wildcard matches a topic that starts with '$'. */
    bool dollar = topic.len > 0 && topic.p[0] == '$';
    pthread_rwlock_rdlock(&t->lock);
    node_t *root = t->root, *n = root;
    /* Depth-first over the branches that match. At node n, `off` is where the topic level
     * for n's children starts, or topic.len + 1 once every level has been consumed. */
    size_t off = 0;
    for (;;) {
        bool wild_ok = n != root || !dollar;
        node_t *next = NULL;
        /* "a/#" matches below "a" and "a" itself, so n's '#' child matches in both cases. */
        if (n->ext && n->ext->hash && wild_ok)
            emit_node(n->ext->hash, cb, pick, ud);
        if (off > topic.len) {
            emit_node(n, cb, pick, ud);
        } else {
            size_t end = cx_levelmap_level_end(topic, off), len = end - off;
            if (cx_levelmap_count(&n->kids))
                next = node_of(cx_levelmap_find(&n->kids, topic.p + off, len,
                                                cx_levelmap_hash(t->seed, topic.p + off, len)));
            if (!next && wild_ok)
                next = plus_of(n);
            if (next)
                off = end + 1;
        }
        /* Backtrack: after a literal child comes its '+' sibling (same level), after a '+'
         * child the parent is done. `off` moves back one level per step up, but only when a
         * '+' sibling is taken: most paths have none, and scanning the topic backwards on
         * the way up once cost as much as the rest of the match. */
        size_t up = 0;
        while (!next) {
            if (n == root)
                goto done;
            node_t *p = n->parent;
            node_t *plus = plus_of(p);
            if (plus && n != plus && (p != root || !dollar)) {
                for (; up; up--)
                    off = cx_levelmap_level_start_before(topic, off);
                next = plus;
            } else {
                up++;
                n = p;
            }
        }
        n = next;
    }
done:
    pthread_rwlock_unlock(&t->lock);
}

static void walk_node(const node_t *n, cx_str_t filter, cx_subtree_walk_cb cb, void *ud)
{
    const subset_t *s = n->subs;
    if (s)
        for (uint32_t i = 0; i < s->n; i++)
            cb(ud, filter, CX_STR_NULL, s->v[i].owner, &s->v[i].opts);
    for (const group_t *g = groups_of(n); g; g = g->next) {
        cx_str_t name = {(const uint8_t *)g->name, g->namelen};
        for (uint32_t i = 0; i < g->members->n; i++)
            cb(ud, filter, name, g->members->v[i].owner, &g->members->v[i].opts);
    }
}

int cx_subtree_walk(cx_subtree_t *t, cx_subtree_walk_cb cb, void *ud)
{
    pthread_rwlock_rdlock(&t->lock);
    /* Every node's path is a prefix of a filter once added, so this bounds the buffer. */
    uint8_t *path = cx_malloc(t->max_filter_len + 1);
    if (!path) {
        pthread_rwlock_unlock(&t->lock);
        return CX_ENOMEM;
    }
    size_t len = 0;
    node_t *root = t->root, *n = root;
    for (;;) {
        node_t *c = child_next(n, NULL);
        while (!c) {
            if (n == root)
                goto done;
            node_t *p = n->parent;
            len -= n->lv.keylen + (p != root);
            c = child_next(p, n);
            if (!c)
                n = p;
        }
        if (c->parent != root)
            path[len++] = '/';
        memcpy(path + len, c->key, c->lv.keylen);
        len += c->lv.keylen;
        n = c;
        walk_node(n, (cx_str_t){path, len}, cb, ud);
    }
done:
    pthread_rwlock_unlock(&t->lock);
    cx_free(path);
    return CX_OK;
}

size_t cx_subtree_count(cx_subtree_t *t)
{
    return atomic_load_explicit(&t->count, memory_order_relaxed);
}

size_t cx_subtree_shared_count(cx_subtree_t *t)
{
    return atomic_load_explicit(&t->shared_count, memory_order_relaxed);
}
