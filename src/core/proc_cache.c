/* The cache of verified processes (proc_cache.h). */
#include "proc_cache.h"

#include <fcntl.h>
#include <pthread.h>
#include <unistd.h>

typedef struct entry {
  bh_proc proc; /* pid 0: a free slot */
  uint64_t start_ms;
  uint64_t last_use;
} entry;

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static entry entries[BH_PROC_CACHE_SIZE];
static uint64_t use_clock, hits;
static bool initialized;

/* Lazily, under the lock: every slot free. */
static void init_locked(void) {
  if (initialized) return;
  for (int i = 0; i < BH_PROC_CACHE_SIZE; i++)
    entries[i].proc = BH_PROC_NONE;
  initialized = true;
}

static int dup_pidfd(int fd) {
  return fcntl(fd, F_DUPFD_CLOEXEC, 0);
}

bool bh_proc_cache_take(uint32_t pid, bh_proc *out, uint64_t *start_ms) {
  bool found = false;
  if (pid == 0 || pthread_mutex_lock(&lock) != 0) return false;
  init_locked();
  for (int i = 0; i < BH_PROC_CACHE_SIZE && !found; i++) {
    entry *e = &entries[i];
    if (e->proc.pid != pid) continue;
    int fd = bh_proc_alive(&e->proc) ? dup_pidfd(e->proc.pidfd) : -1;
    if (fd < 0) { /* exited (or no descriptor left): forget it */
      bh_proc_release(&e->proc);
      break;
    }
    *out = (bh_proc){pid, fd};
    *start_ms = e->start_ms;
    e->last_use = ++use_clock;
    hits++;
    found = true;
  }
  (void)pthread_mutex_unlock(&lock);
  return found;
}

void bh_proc_cache_put(const bh_proc *p, uint64_t start_ms) {
  if (p->pid == 0 || p->pidfd < 0 || pthread_mutex_lock(&lock) != 0) return;
  init_locked();
  entry *slot = &entries[0];
  for (int i = 0; i < BH_PROC_CACHE_SIZE; i++) {
    entry *e = &entries[i];
    if (e->proc.pid == p->pid) { /* a newer process with the pid */
      slot = e;
      break;
    }
    if (slot->proc.pid != 0 &&
        (e->proc.pid == 0 || e->last_use < slot->last_use))
      slot = e;
  }
  int fd = dup_pidfd(p->pidfd);
  if (fd >= 0) {
    bh_proc_release(&slot->proc);
    *slot = (entry){
        .proc = {p->pid, fd}, .start_ms = start_ms, .last_use = ++use_clock};
  }
  (void)pthread_mutex_unlock(&lock);
}

uint64_t bh_proc_cache_hits(void) {
  if (pthread_mutex_lock(&lock) != 0) return 0;
  uint64_t n = hits;
  (void)pthread_mutex_unlock(&lock);
  return n;
}

void bh_proc_cache_clear(void) {
  if (pthread_mutex_lock(&lock) != 0) return;
  init_locked();
  for (int i = 0; i < BH_PROC_CACHE_SIZE; i++)
    bh_proc_release(&entries[i].proc);
  (void)pthread_mutex_unlock(&lock);
}
