/* io_uring inside a libevent loop (design §4.3): one ring per
 * loop (loop.h), whose descriptor is one event of the loop, added while
 * operations are in flight. Submission entries prepared during a pass of
 * the loop go to the kernel together, from one callback made active by
 * the first of them (one io_uring_enter for all of them), and what the
 * kernel completed during that call is handled at once, not after the
 * loop has seen the ring readable. Each completion is handed to the
 * operation its user_data names, on the loop thread. Socket I/O on the
 * ring is usock.h; this is the ring itself. Knows nothing of Lua. */
#ifndef BH_URING_H
#define BH_URING_H

#include <stdbool.h>

#include "list.h"
#include "status.h"

struct event_base;
struct io_uring_sqe;
typedef struct bh_uring bh_uring;
typedef struct bh_uring_op bh_uring_op;

/* A completion of op: res is its result (>= 0, or -errno), flags the
 * completion's flags (IORING_CQE_F_MORE: a multishot operation goes on;
 * any other completion is op's last). Called on the loop thread; may free
 * the owner of op. */
typedef void (*bh_uring_cb)(bh_uring_op *op, int res, unsigned flags);

/* An operation, embedded in its owner, which must stay alive until op's
 * last completion. While it is in flight the ring lists it (link: the
 * ring's), so that what the kernel may still write into stays
 * reachable from the loop after its owner let go of it: a process that
 * exits with operations in flight (os.exit from a task) leaks nothing a
 * leak checker could name. */
struct bh_uring_op {
  bh_uring_cb cb;
  bh_list link;
};

/* A ring on base, or NULL with err saying why the kernel refused it
 * (io_uring_setup failing with ENOSYS or EPERM, or a kernel without an
 * operation or feature the ring needs). */
bh_uring *bh_uring_new(struct event_base *base, bh_err *err);
/* Cancel what is in flight, wait (a bounded time) for its completions,
 * which are handed to their operations as usual, and free. NULL is
 * ignored. */
void bh_uring_free(bh_uring *u);

/* Make room for n entries in a row (a linked chain must not be cut by a
 * submission), submitting what is queued if need be. False when the ring
 * cannot take them now. */
bool bh_uring_reserve(bh_uring *u, unsigned n);
/* The next entry, after bh_uring_reserve made room for it. Its user_data
 * is op, whose completions will be handed to it; with op NULL nobody
 * waits for it: the entry is marked to post nothing when it succeeds (a
 * failure's completion is ignored). It is submitted at the end of this
 * pass of the loop. */
struct io_uring_sqe *bh_uring_sqe(bh_uring *u, bh_uring_op *op);
/* Ask the kernel to cancel op: its completion then comes with -ECANCELED,
 * or with its own result if it finished first. */
void bh_uring_cancel(bh_uring *u, bh_uring_op *op);
/* Close fd through the ring, with the next submission (at once when the
 * ring has no room). Only once nothing in flight uses fd. */
void bh_uring_close(bh_uring *u, int fd);

/* Operations in flight (entries whose last completion has not come). */
unsigned bh_uring_pending(const bh_uring *u);

#endif
