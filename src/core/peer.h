/* Who is at the other end of a connected Unix socket (design §2: err.peer
 * and h.peer): the pid, uid and gid the kernel recorded when it connected
 * (SO_PEERCRED), and the executable that process runs, read through
 * /proc/PID/exe only while a pidfd of the peer proves the pid still names
 * it (SO_PEERPIDFD where the kernel has it, else pidfd_open of the pid).
 * The executable is unknown (NULL) when /proc does not let us read it
 * (another user's process without CAP_SYS_PTRACE) or the peer exited.
 * Knows nothing of Lua. */
#ifndef BH_PEER_H
#define BH_PEER_H

#include <stdbool.h>
#include <sys/types.h>

typedef struct bh_peer {
  bool known; /* pid, uid and gid were read */
  pid_t pid;
  uid_t uid;
  gid_t gid;
  char *exe; /* malloc'd; NULL when unknown */
} bh_peer;

#define BH_PEER_NONE ((bh_peer){false, 0, 0, 0, NULL})

/* SO_PEERCRED of the connected socket fd into p (p->exe untouched): true
 * when the kernel gave it. */
bool bh_peer_cred(int fd, bh_peer *p);

/* A pidfd of fd's peer (SO_PEERPIDFD), or -1 when the kernel has none. */
int bh_peer_pidfd(int fd);

/* The credentials (when not known yet) and the executable of fd's peer.
 * pidfd: a pidfd of the peer already held, or -1 (one is then taken for
 * the read and closed). */
void bh_peer_read(int fd, int pidfd, bh_peer *p);

/* Free p->exe; *p becomes BH_PEER_NONE. Idempotent. */
void bh_peer_clear(bh_peer *p);

/* Move *from into *to (to cleared first); from becomes BH_PEER_NONE. */
void bh_peer_move(bh_peer *to, bh_peer *from);

#endif
