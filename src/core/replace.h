/* Publishing a whole file atomically with a fixed mode (the metrics file,
 * bh.fs.write_atomic): readers see the old content or the new, never a
 * part. Unlike a manifest rewrite, which keeps the record's owner and mode,
 * what is published here gets the mode the caller states (never set-id
 * bits) and never takes anything from what was at the path: a symlink
 * planted at the final path is refused, so neither its target's mode nor
 * its target's content can leak into the new file. */
#ifndef BH_REPLACE_H
#define BH_REPLACE_H

#include <stddef.h>
#include <sys/types.h>

#include "status.h"

enum { BH_PUBLISH_MODE = 0644 };

/* Write buf to a temp file `<name>.tmp.XXXXXX` created (O_EXCL,
 * O_NOFOLLOW) in path's directory, chmod it to mode & 0777, fsync, rename
 * it over path inside that directory (through its descriptor), fsync the
 * directory. Refuses (system, "is a symbolic link: refused") when path is
 * a symlink, and anything else that is not a regular file. The temp file
 * is removed on any failure. Errors: system, with the step and strerror. */
bh_status bh_file_replace(const char *path, const void *buf, size_t len,
                          mode_t mode, bh_err *err);

/* The check bh_file_replace starts with, alone: path's directory opens
 * and path is absent or a regular file (start-up checks). */
bh_status bh_file_replace_check(const char *path, bh_err *err);

#endif
