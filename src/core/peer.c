/* The peer of a connected Unix socket (see peer.h). */
#include "peer.h"

#include <errno.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include "procfs.h"

#ifndef SO_PEERPIDFD
#define SO_PEERPIDFD 77 /* Linux 6.5; older headers lack it */
#endif

bool bh_peer_cred(int fd, bh_peer *p) {
  struct ucred cred;
  socklen_t len = sizeof cred;
  if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0) return false;
  p->known = true;
  p->pid = cred.pid;
  p->uid = cred.uid;
  p->gid = cred.gid;
  return true;
}

int bh_peer_pidfd(int fd) {
  int pidfd = -1;
  socklen_t len = sizeof pidfd;
  if (getsockopt(fd, SOL_SOCKET, SO_PEERPIDFD, &pidfd, &len) != 0) return -1;
  return pidfd;
}

/* The executable of the peer p->pid, taken only if the pidfd says that
 * pid is still the peer after the link was read (a recycled pid would
 * name another program). */
static void read_exe(bh_peer *p, int pidfd) {
  char *link = NULL;
  if (p->pid <= 0 || bh_proc_exe_link((uint32_t)p->pid, &link, NULL) != BH_OK)
    return;
  if (bh_pidfd_pid(pidfd) != (long)p->pid) {
    free(link);
    return;
  }
  free(p->exe);
  p->exe = link;
}

void bh_peer_read(int fd, int pidfd, bh_peer *p) {
  if (!p->known && !bh_peer_cred(fd, p)) return;
  int own = -1;
  if (pidfd < 0) pidfd = own = bh_peer_pidfd(fd);
  if (pidfd < 0 && p->pid > 0) pidfd = own = bh_pidfd_open((uint32_t)p->pid);
  if (pidfd >= 0) read_exe(p, pidfd);
  if (own >= 0) (void)close(own);
}

void bh_peer_clear(bh_peer *p) {
  free(p->exe);
  *p = BH_PEER_NONE;
}

void bh_peer_move(bh_peer *to, bh_peer *from) {
  bh_peer_clear(to);
  *to = *from;
  *from = BH_PEER_NONE;
}
