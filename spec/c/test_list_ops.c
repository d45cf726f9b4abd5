/* The intrusive list (src/core/list.h): order kept at both ends, removal
 * from anywhere and again (idempotent), a zeroed node counted as in no
 * list, and a whole list moved to another head while its nodes are
 * removed one by one, as the scheduler's wait queues do. */
#include "list.h"
#include "testutil.h"

typedef struct item {
  int id;
  bh_list link;
} item;

/* The ids of the list's items, in order, into out (at most cap);
 * returns how many. Walks backwards too and fails when the two walks
 * disagree (a broken prev link). */
static int ids(const bh_list *head, int *out, int cap) {
  int n = 0, back = 0;
  for (const bh_list *p = head->next; p != head && n < cap; p = p->next)
    out[n++] = bh_list_entry(p, const item, link)->id;
  for (const bh_list *p = head->prev; p != head && back < cap; p = p->prev) {
    if (bh_list_entry(p, const item, link)->id != out[n - 1 - back]) return -1;
    back++;
  }
  return back == n ? n : -1;
}

static void test_order_and_removal(void) {
  bh_list head;
  item it[4] = {{1, {0}}, {2, {0}}, {3, {0}}, {4, {0}}};
  int got[8];
  bh_list_init(&head);
  CHECK(bh_list_empty(&head));
  CHECK(bh_list_first(&head) == NULL);
  CHECK(!bh_list_linked(&it[0].link)); /* zeroed: in no list */
  bh_list_insert_tail(&head, &it[1].link);
  bh_list_insert_tail(&head, &it[2].link);
  bh_list_insert_head(&head, &it[0].link);
  bh_list_insert_tail(&head, &it[3].link);
  CHECK_INT(ids(&head, got, 8), 4);
  for (int i = 0; i < 4; i++)
    CHECK_INT(got[i], i + 1);
  CHECK(bh_list_linked(&it[2].link));
  bh_list_remove(&it[2].link); /* from the middle */
  CHECK(!bh_list_linked(&it[2].link));
  bh_list_remove(&it[2].link); /* again: nothing */
  bh_list_remove(&it[0].link); /* the first */
  bh_list_remove(&it[3].link); /* the last */
  CHECK_INT(ids(&head, got, 8), 1);
  CHECK_INT(got[0], 2);
  CHECK(bh_list_first(&head) == &it[1].link);
  bh_list_remove(&it[1].link);
  CHECK(bh_list_empty(&head));
}

/* bh_list_move, then every node removed from the new head while a
 * "wake" removes another one as well (bh.select's case). */
static void test_move_and_drain(void) {
  bh_list from, to;
  item it[3] = {{1, {0}}, {2, {0}}, {3, {0}}};
  int got[8];
  bh_list_init(&from);
  bh_list_move(&from, &to); /* empty to empty */
  CHECK(bh_list_empty(&to));
  for (int i = 0; i < 3; i++)
    bh_list_insert_tail(&from, &it[i].link);
  bh_list_move(&from, &to);
  CHECK(bh_list_empty(&from));
  CHECK_INT(ids(&to, got, 8), 3);
  CHECK_INT(got[0], 1);
  CHECK_INT(got[2], 3);
  int order[3], n = 0;
  bh_list *p;
  while ((p = bh_list_first(&to)) != NULL) {
    item *x = bh_list_entry(p, item, link);
    bh_list_remove(p);
    order[n++] = x->id;
    if (x->id == 1) bh_list_remove(&it[1].link); /* a sibling leaves */
  }
  CHECK_INT(n, 2);
  CHECK_INT(order[0], 1);
  CHECK_INT(order[1], 3);
  CHECK(bh_list_empty(&from));
}

int main(void) {
  RUN(test_order_and_removal);
  RUN(test_move_and_drain);
  return bh_test_summary();
}
