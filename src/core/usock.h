/* Socket I/O on a loop's ring (uring.h), for the prober and the
 * responder on the io_uring path. A bh_usock owns a stream socket and the
 * memory the kernel reads and writes for it (the address, what is sent,
 * the receive buffer), apart from its owner: an owner that is done (a
 * probe past its deadline, a connection evicted) releases it and goes at
 * once; what is in flight is cancelled, and the socket is closed when the
 * kernel has given everything back. Internal to the core; knows nothing
 * of Lua. */
#ifndef BH_USOCK_H
#define BH_USOCK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/un.h>

#include "uring.h"

typedef struct bh_usock bh_usock;

/* What a bh_usock tells its owner, on the loop thread. Each may release
 * the socket. */
typedef struct bh_usock_ops {
  /* The connect of bh_usock_exchange ended: 0, or -errno. A failure is
   * told once the rest of the chain has come back: the socket is idle
   * then, and may be given another exchange (a retry). */
  void (*connected)(void *owner, int res);
  /* A send ended: the bytes sent (all of them), or -errno (or fewer
   * bytes: the peer stopped reading and went away). */
  void (*sent)(void *owner, int res);
  /* A receive ended: res bytes at data (0: the peer closed), or -errno.
   * data is valid during the call only. */
  void (*received)(void *owner, const uint8_t *data, int res);
} bh_usock_ops;

/* A socket on u for fd (taken over: closed by the socket from now on),
 * with a receive buffer of bufsize bytes. NULL when out of memory (fd is
 * then left to the caller). */
bh_usock *bh_usock_new(bh_uring *u, int fd, size_t bufsize,
                       const bh_usock_ops *ops, void *owner);
/* Connect to sa, send len bytes of data (copied), receive: one linked
 * chain, submitted with the others of this pass of the loop. Told back
 * through connected, sent (only on failure) and received. False when the
 * ring has no room for it. */
bool bh_usock_exchange(bh_usock *s, const struct sockaddr_un *sa,
                       const uint8_t *data, size_t len);
/* Receive once more (after a received that did not complete a frame). */
bool bh_usock_recv(bh_usock *s);
/* Send len bytes of data (taken over: freed once sent or failed), then,
 * linked, close the socket: told back through sent. False when the ring
 * has no room (data is then still the caller's). */
bool bh_usock_send_close(bh_usock *s, uint8_t *data, size_t len);
/* The socket's descriptor, for what the ring does not do (the peer's
 * credentials, a trickle written from a timer); -1 once a send_close was
 * asked for. Only while nothing but a receive is in flight. */
int bh_usock_fd(const bh_usock *s);
/* Is an operation in flight? */
bool bh_usock_busy(const bh_usock *s);
/* The owner is done with it: nothing more is told; what is in flight is
 * cancelled; the socket is closed (unless a send_close closed it) and the
 * memory freed once the kernel has given it back. NULL is ignored. */
void bh_usock_release(bh_usock *s);
/* Heap bytes held (for the memory budget of a probe). */
size_t bh_usock_heap(const bh_usock *s);

#endif
