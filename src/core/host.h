/* This machine as a manifest's HostIdentity names it (design §1.10): the
 * machine id (/etc/machine-id), the host name, the boot id, the st_dev of
 * a cache root and the mount-plus-pid namespace pair. */
#ifndef BH_HOST_H
#define BH_HOST_H

#include <stddef.h>
#include <stdint.h>

#include "status.h"

typedef struct bh_host {
  char hostname[256];
  char machine_id[64];   /* "" when unknown */
  char boot_id[64];      /* "" when unknown */
  uint64_t fs_dev_id;    /* 0 when unknown */
  char namespace_id[96]; /* "mnt:[N]:pid:[M]", "" when unknown */
} bh_host;

/* This machine's id (/etc/machine-id, trimmed) into buf; BH_SYSTEM if it
 * cannot be read. */
bh_status bh_machine_id(char *buf, size_t cap, bh_err *err);

/* foreign_host when machine_id (a record's host.machine_id; hostname for
 * the message) is set and is not this machine's id; BH_OK when it is ours,
 * empty, or ours cannot be read (then nothing says it is another's). */
bh_status bh_host_check(const char *machine_id, const char *hostname,
                        bh_err *err);

/* This machine as a writer records it, for a manifest in directory dir
 * (its st_dev; NULL leaves fs_dev_id 0). What cannot be read is left
 * empty, as running-process does. */
void bh_host_current(const char *dir, bh_host *out);

#endif
