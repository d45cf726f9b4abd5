/* Reading /proc (design §1.5, §1.8): whether a pid is live, what it runs,
 * when it started, this machine's boot id, and pidfd_open. The layer
 * below identities and process verification: it knows nothing of either.
 * Linux only. */
#ifndef BH_PROCFS_H
#define BH_PROCFS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "status.h"

/* A pid kill() can name: 1..INT_MAX (above INT_MAX it would turn into a
 * process-group signal; no such pid exists, pid_max <= 2^22). */
bool bh_pid_in_range(uint32_t pid);

/* kill(pid, 0) succeeds or fails with EPERM, else BH_PID_NOT_FOUND
 * (BH_INVALID_PID for pid 0). A zombie passes. */
bh_status bh_proc_check_alive(uint32_t pid, bh_err *err);

/* pidfd_open(2): a descriptor (close-on-exec) or -1 with errno, ENOSYS
 * when the kernel or the headers lack it. */
int bh_pidfd_open(uint32_t pid);

/* The pid a pidfd names (the "Pid:" of /proc/self/fdinfo/FD): -1 when its
 * process is gone, 0 when it cannot be read. */
long bh_pidfd_pid(int pidfd);

/* The target of /proc/PID/exe (malloc'd into *out; any length). BH_EXE_PATH
 * when unreadable (a zombie, a kernel thread, no permission). A deleted
 * executable reads back as "PATH (deleted)". */
bh_status bh_proc_exe_link(uint32_t pid, char **out, bh_err *err);

/* realpath(path), or a copy of path when it cannot be resolved; NULL only
 * when out of memory. */
char *bh_canonical_path(const char *path);

/* Start time of pid in ms since the epoch (/proc/PID/stat starttime plus
 * btime of /proc/stat). BH_PID_NOT_FOUND when the process is gone,
 * BH_SYSTEM when /proc cannot be parsed. */
bh_status bh_proc_start_unix_ms(uint32_t pid, uint64_t *out, bh_err *err);

/* The real uid of pid (the first "Uid:" of /proc/PID/status: neither a
 * setuid bit nor a non-dumpable process changes it). false when it cannot
 * be read. */
bool bh_proc_real_uid(uint32_t pid, uid_t *uid);

/* Boot id of this machine (/proc/sys/kernel/random/boot_id, trimmed) into
 * buf; BH_SYSTEM if unreadable. */
bh_status bh_boot_id(char *buf, size_t cap, bh_err *err);

#endif
