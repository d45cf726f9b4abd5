/* The one-line id files of the system (the boot id, the machine id), each
 * read once per process: neither changes while a process runs, and probes
 * and manifest checks ask for them all the time. On its own, above
 * fsutil.h (which reads them), so that only its two users see pthread.h. */
#ifndef BH_IDFILE_H
#define BH_IDFILE_H

#include <pthread.h>
#include <stddef.h>

#include "status.h"

/* One id file, read at most once (until a read succeeds). Define one with
 * BH_ID_FILE(path) at file scope. */
typedef struct bh_id_file {
  const char *path;
  pthread_mutex_t lock;
  char text[64];
  size_t len; /* 0 until read: a failed or empty read is tried again */
} bh_id_file;
#define BH_ID_FILE(p) \
  { (p), PTHREAD_MUTEX_INITIALIZER, {0}, 0 }

/* The id of f, trailing whitespace trimmed, into buf (cap bytes,
 * truncated). BH_SYSTEM with err when it cannot be read, is empty or
 * holds more than an id. */
bh_status bh_id_file_get(bh_id_file *f, char *buf, size_t cap, bh_err *err);

#endif
