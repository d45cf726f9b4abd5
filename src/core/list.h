/* The one intrusive list of the tree: circular and doubly linked, the
 * links embedded in the object that is listed (libuv's queue.h, the Linux
 * kernel's list.h). A list is a head node; an empty list's head points to
 * itself. A node taken out of its list points to itself too, so removing
 * it again does nothing, and bh_list_linked says whether it is in one.
 *
 *   typedef struct job { int id; bh_list link; } job;
 *   bh_list jobs;
 *   bh_list_init(&jobs);
 *   bh_list_insert_tail(&jobs, &j->link);
 *   for (bh_list *n = jobs.next; n != &jobs; n = n->next)
 *     use(bh_list_entry(n, job, link));
 *
 * Header only: every function is a few pointer moves. No allocation, no
 * locking; one list belongs to one thread. */
#ifndef BH_LIST_H
#define BH_LIST_H

#include <stdbool.h>
#include <stddef.h>

typedef struct bh_list {
  struct bh_list *prev, *next;
} bh_list;

/* The object of type `type` whose member `member` is at ptr. */
#define bh_container_of(ptr, type, member) \
  ((type *)(void *)((char *)(ptr)-offsetof(type, member)))
#define bh_list_entry(node, type, member) bh_container_of(node, type, member)

/* An empty list, or a node in no list. */
static inline void bh_list_init(bh_list *n) {
  n->prev = n;
  n->next = n;
}

static inline bool bh_list_empty(const bh_list *head) {
  return head->next == head;
}

/* Is the node in a list? False for a node that was initialised or
 * removed, and for a zeroed one (never initialised). */
static inline bool bh_list_linked(const bh_list *n) {
  return n->next != NULL && n->next != n;
}

/* Put n between prev and next (adjacent nodes). */
static inline void bh_list_link_(bh_list *prev, bh_list *n, bh_list *next) {
  n->prev = prev;
  n->next = next;
  prev->next = n;
  next->prev = n;
}

static inline void bh_list_insert_head(bh_list *head, bh_list *n) {
  bh_list_link_(head, n, head->next);
}

static inline void bh_list_insert_tail(bh_list *head, bh_list *n) {
  bh_list_link_(head->prev, n, head);
}

/* Take n out of its list; nothing when it is in none (see above). */
static inline void bh_list_remove(bh_list *n) {
  if (!bh_list_linked(n)) return;
  n->prev->next = n->next;
  n->next->prev = n->prev;
  bh_list_init(n);
}

/* The first node, or NULL when the list is empty. */
static inline bh_list *bh_list_first(const bh_list *head) {
  return bh_list_empty(head) ? NULL : head->next;
}

/* Move every node of from to the empty list to (in order); from is left
 * empty. */
static inline void bh_list_move(bh_list *from, bh_list *to) {
  bh_list_init(to);
  if (bh_list_empty(from)) return;
  to->next = from->next;
  to->prev = from->prev;
  to->next->prev = to;
  to->prev->next = to;
  bh_list_init(from);
}

#endif
