/* Unix stream sockets as the prober and the responder use them: the
 * address of a path, and the send and receive loops of a non-blocking
 * socket, which stop where the caller must wait for the loop. */
#ifndef BH_SOCKIO_H
#define BH_SOCKIO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/un.h>

#include "status.h"
#include "wire.h"

/* Fill *sa with the address of path. False, with errno ENAMETOOLONG, when
 * path does not fit sun_path with its NUL (*sa is then unusable). */
bool bh_sockaddr_un(struct sockaddr_un *sa, const char *path);

typedef enum bh_sock_io {
  BH_SOCK_DONE,      /* all sent, or a whole frame received */
  BH_SOCK_MORE,      /* bh_sock_send with a step: sent one step, more left */
  BH_SOCK_AGAIN,     /* the socket would block: wait for it */
  BH_SOCK_EOF,       /* the peer closed before a whole frame */
  BH_SOCK_FAILED,    /* a system error; errno says which */
  BH_SOCK_BAD_FRAME, /* the frame reader refused the bytes (see its err) */
} bh_sock_io;

/* Send buf[*off, len) on fd, advancing *off, without SIGPIPE. With step 0,
 * until all is sent or the socket is full; with step > 0, one send of at
 * most step bytes (a trickle). EINTR is retried. */
bh_sock_io bh_sock_send(int fd, const uint8_t *buf, size_t len, size_t *off,
                        size_t step);

/* The body of a whole frame: in its reader, or in the bytes it came in. */
typedef struct bh_frame_view {
  const uint8_t *body;
  size_t len;
} bh_frame_view;

/* Take n received bytes at data into the frame reader: BH_SOCK_DONE with
 * *f when they complete a frame (what followed it is dropped; f->body
 * points into data when the whole frame came in them, so nothing was
 * copied: valid while data is), BH_SOCK_AGAIN when more must come, or
 * BH_SOCK_BAD_FRAME (err, may be NULL, says why). */
bh_sock_io bh_sock_take_frame(bh_frame_reader *r, const uint8_t *data, size_t n,
                              bh_frame_view *f, bh_err *err);

/* Receive from fd, into buf (cap bytes) and the frame reader, until a
 * whole frame (BH_SOCK_DONE with *f, which may point into buf), the socket
 * is drained (AGAIN), the peer closed (EOF) or an error. *got counts the
 * bytes received. */
bh_sock_io bh_sock_recv_frame(int fd, bh_frame_reader *r, uint8_t *buf,
                              size_t cap, bh_frame_view *f, size_t *got,
                              bh_err *err);

#endif
