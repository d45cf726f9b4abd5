/* Files as a reaction touches them (design §1.11): every path that is read
 * for a decision, rewritten or removed is reached through directory
 * descriptors opened without following symbolic links, from "/" (or the
 * working directory, for a relative path) down, so no rename or symlink
 * planted by another user can turn the operation onto another file; the
 * final component is never followed either. Files are opened O_NONBLOCK
 * and must be regular files (a FIFO planted where a manifest should be
 * fails at once instead of hanging the loop). */
#ifndef BH_FSUTIL_H
#define BH_FSUTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>

#include "status.h"

/* ---- reading files without blocking the loop ----------------------------
 * A path is only a name: between a scan that saw a regular file and the
 * read, anyone who can write the directory may put a FIFO there, and
 * opening a FIFO that has no writer waits forever. So opens never wait
 * (O_NONBLOCK), and the descriptor actually read is checked by fstat to be
 * a regular file. The bh_file_* functions follow a symlinked path (for
 * /proc and /etc files); the bh_fs_* ones never do (for what a reaction
 * reads and rewrites). */

/* "a regular file", "a directory", "a FIFO", "a socket", "a device",
 * "a symbolic link" or "a special file", for messages. */
const char *bh_file_kind(mode_t mode);

/* Open path read-only and close-on-exec without waiting, and make sure by
 * fstat on that descriptor that it is a regular file (O_NONBLOCK changes
 * nothing for reading one). BH_OK with *fd and *st set, or code with err
 * carrying the open's or fstat's errno, or EINVAL for anything but a
 * regular file ("WHAT is a FIFO, not a regular file"); *fd is then -1.
 * what is what messages call the file (NULL: path). */
bh_status bh_file_open_regular(const char *path, const char *what, int *fd,
                               struct stat *st, bh_status code, bh_err *err);

/* The whole regular file at path, at most max bytes, into a malloc'd
 * buffer *out (NUL-terminated; *len excludes the NUL). Sizes are not
 * trusted: /proc files say 0, and a file may grow while read. BH_OK, or
 * code with err carrying the errno: as bh_file_open_regular, EFBIG when
 * it holds more than max bytes, the read's errno; BH_SYSTEM with ENOMEM. */
bh_status bh_file_read_small(const char *path, size_t max, char **out,
                             size_t *len, bh_status code, bh_err *err);

/* ---- what reactions touch ------------------------------------------------ */

/* Open (O_DIRECTORY | O_NOFOLLOW, each component) the directory holding
 * the last component of path into *dirfd; *leaf points into path at that
 * component. A symlink on the way, a missing or non-directory component,
 * or a path ending in "/", ".", ".." is refused with `code` (BH_SYSTEM
 * when the process ran out of descriptors or memory) and a message naming
 * the component; *dirfd is then -1 and err carries the errno (ENOENT when
 * a component is missing, ELOOP or ENOTDIR for a symlink, EINVAL for the
 * path's form), so that callers can tell "not there" from "refused"
 * without reading the message. */
bh_status bh_fs_open_parent(const char *path, int *dirfd, const char **leaf,
                            bh_status code, bh_err *err);

/* bh_fs_open_parent where every directory opened on the way, from the
 * first ("/" or ".") down to the parent, must also pass ok(st, name, ctx)
 * (st its fstat, name how it was named on the path). A directory that
 * fails it ends the walk: err as ok filled it (it knows why; else `code`,
 * "refused"), carrying EACCES. */
typedef bool (*bh_fs_dir_check)(const struct stat *st, const char *name,
                                void *ctx);
bh_status bh_fs_open_parent_check(const char *path, int *dirfd,
                                  const char **leaf, bh_fs_dir_check ok,
                                  void *ctx, bh_status code, bh_err *err);

/* Open the regular file name in dirfd read-only into *fd, not following a
 * symlink, not blocking, judged by fstatat before it is opened (no device
 * is ever opened) and by fstat after (*st: what was opened, the same
 * file). Else code (BH_SYSTEM for want of descriptors) with err carrying
 * the errno (a missing file: *missing set, when not NULL). */
bh_status bh_fs_open_at(int dirfd, const char *name, int *fd, struct stat *st,
                        bool *missing, bh_status code, const char *what,
                        bh_err *err);

/* Read the regular file name in dirfd (not following a symlink, not
 * blocking; judged by fstatat before it is opened, so no device is ever
 * opened) into a malloc'd buffer (*out, *len; NUL-terminated beyond len),
 * at most max bytes (sizes are not trusted); *st (may be NULL) gets the
 * fstat of what was read. A missing file is `code` with errno ENOENT in the
 * message and *missing (may be NULL) set. what names the file in messages. */
bh_status bh_fs_read_at(int dirfd, const char *name, size_t max, uint8_t **out,
                        size_t *len, struct stat *st, bool *missing,
                        bh_status code, const char *what, bh_err *err);

/* Read the regular file at path through bh_fs_open_parent and
 * bh_fs_read_at. */
bh_status bh_fs_read_file(const char *path, size_t max, uint8_t **out,
                          size_t *len, struct stat *st, bool *missing,
                          bh_status code, bh_err *err);

/* What bh_fs_replace_at must keep or find. */
typedef struct bh_fs_replace_opts {
  /* The file being replaced, as read (NULL: create or replace whatever is
   * there, but never a symlink or a non-regular file). With it, the
   * replace happens only while name is still that file, unchanged: the
   * new file is swapped in (RENAME_EXCHANGE) and what was swapped out is
   * checked; if it was changed meanwhile it is swapped back and *changed
   * is set. */
  const struct stat *expect;
  /* Without expect: keep the owner and permission bits of the regular
   * file that is there now (a rewrite changes no access), or use mode. */
  bool keep_existing;
  /* The mode of a new file (e.g. 0644); the owner is then whoever we are.
   * Kept modes never keep set-id or sticky bits. */
  mode_t mode;
  /* What errors call the file (its full path, say); NULL: name. */
  const char *what;
} bh_fs_replace_opts;

/* A temp file of ours older than this, left in a directory by a writer
 * that was killed between naming it and renaming it, is removed the next
 * time the file it was for is replaced. */
#define BH_FS_TEMP_STALE_SECONDS 10

/* Replace name in dirfd with buf atomically: a temp file in the same
 * directory, written in full, fsynced, owner and mode set as opts says,
 * renamed over name, the directory fsynced. The temp file has no name
 * (O_TMPFILE) until it is written and synced, so a process killed before
 * that leaves nothing; it is then linked as ".NAME.tmp.XXXXXXXX" for the
 * rename (where the file system has no O_TMPFILE, created with that name,
 * O_EXCL | O_NOFOLLOW). It is removed on every failure, and stale ones of
 * name (see BH_FS_TEMP_STALE_SECONDS) after a success. Failures are
 * `code`. */
bh_status bh_fs_replace_at(int dirfd, const char *name, const void *buf,
                           size_t len, const bh_fs_replace_opts *opts,
                           bool *changed, bh_status code, bh_err *err);

/* bh_fs_replace_at for a path, without an expectation. */
bh_status bh_fs_write_atomic(const char *path, const void *buf, size_t len,
                             bool keep_existing, mode_t mode, bh_status code,
                             bh_err *err);

/* Write all of buf to fd (retrying short writes and EINTR). BH_SYSTEM
 * ("writing WHAT: ...") with err carrying the errno when it fails. */
bh_status bh_fs_write_all(int fd, const void *buf, size_t len, const char *what,
                          bh_err *err);

#endif
