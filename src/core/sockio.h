/* Unix stream sockets as the prober and the responder use them: the
 * address of a path, and the send loop of a non-blocking socket, which
 * stops where the caller must wait for the loop. A leaf: it knows nothing
 * of frames (frameio.h, above the wire, receives them) nor of files
 * (stale.h removes socket files). */
#ifndef BH_SOCKIO_H
#define BH_SOCKIO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/un.h>

/* Fill *sa with the address of path. False, with errno ENAMETOOLONG, when
 * path does not fit sun_path with its NUL (*sa is then unusable). */
bool bh_sockaddr_un(struct sockaddr_un *sa, const char *path);

/* One step of socket I/O on the loop: not a failure code but what the
 * loop must do next (design §4.5), so it is no bh_status. */
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

#endif
