/* list.h: intrusive circular doubly linked list (the Linux/libuv queue idiom). */
#ifndef CX_LIST_H
#define CX_LIST_H

#include <stdbool.h>
#include <stddef.h>

typedef struct cx_list {
    struct cx_list *prev, *next;
} cx_list_t;

#define cx_container_of(ptr, type, member) ((type *)((char *)(ptr) - offsetof(type, member)))

static inline void cx_list_init(cx_list_t *l) { l->prev = l->next = l; }
static inline bool cx_list_empty(const cx_list_t *l) { return l->next == l; }
/* A node that was initialised or removed with cx_list_remove() is "unlinked". */
static inline bool cx_list_linked(const cx_list_t *n) { return n->next != n; }

static inline void cx_list_insert_tail(cx_list_t *head, cx_list_t *n)
{
    n->prev = head->prev;
    n->next = head;
    head->prev->next = n;
    head->prev = n;
}

static inline void cx_list_insert_head(cx_list_t *head, cx_list_t *n)
{
    n->next = head->next;
    n->prev = head;
    head->next->prev = n;
    head->next = n;
}

static inline void cx_list_remove(cx_list_t *n)
{
    n->prev->next = n->next;
    n->next->prev = n->prev;
    n->prev = n->next = n;
}

#define cx_list_foreach(it, head) for ((it) = (head)->next; (it) != (head); (it) = (it)->next)
#define cx_list_foreach_safe(it, tmp, head)                                              \
    for ((it) = (head)->next, (tmp) = (it)->next; (it) != (head); (it) = (tmp), (tmp) = (it)->next)

#endif
