/* Frames received on a socket (design §1.2): received bytes fed to the
 * frame reader (wire.h) until a whole frame, on the epoll path straight
 * from the socket, on the io_uring path from what a receive completed.
 * Above the wire and sockio.h, which knows nothing of frames. */
#ifndef BH_FRAMEIO_H
#define BH_FRAMEIO_H

#include <stddef.h>
#include <stdint.h>

#include "sockio.h"
#include "status.h"
#include "wire.h"

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
bh_sock_io bh_frame_take(bh_frame_reader *r, const uint8_t *data, size_t n,
                         bh_frame_view *f, bh_err *err);

/* Receive from fd, into buf (cap bytes) and the frame reader, until a
 * whole frame (BH_SOCK_DONE with *f, which may point into buf), the socket
 * is drained (AGAIN), the peer closed (EOF) or an error. *got counts the
 * bytes received. */
bh_sock_io bh_frame_recv(int fd, bh_frame_reader *r, uint8_t *buf, size_t cap,
                         bh_frame_view *f, size_t *got, bh_err *err);

#endif
