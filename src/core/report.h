/* The report sink: JSON lines appended to a file that logrotate may
 * rename or remove under us (the Lua side, bh.report, only encodes).
 *
 * The file is opened O_APPEND and each line goes out in one write(2):
 * nothing is buffered, so a SIGTERM loses no line, and concurrent writers
 * do not interleave within a line. Its directory is reached through
 * directory descriptors without following a symlink anywhere on the path
 * (fsutil.h's bh_fs_open_parent, as the metrics file), and the file itself
 * is opened O_NOFOLLOW in it: a symlink planted at the report path or in
 * place of one of its directories is refused, never followed (root must
 * not append to a file, or create one in a directory, another user
 * pointed it at).
 * A file we create gets mode 0640 whatever the umask: reports name other
 * users' daemons, pids and paths, as logs do, so they are readable by the
 * owner and its group (adm for /var/log), never by everyone. An existing
 * file keeps the mode its owner gave it. Only regular files and character
 * devices (/dev/null) are accepted. */
#ifndef BH_REPORT_H
#define BH_REPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "status.h"

enum { BH_REPORT_MODE = 0640 };

typedef struct bh_report_sink {
  char *path;       /* the file open now, or NULL */
  const char *leaf; /* its last component (inside path) */
  int fd;           /* -1 when closed */
  int dirfd;        /* the directory it was opened in; -1 when closed */
  dev_t dev;
  ino_t ino;
} bh_report_sink;

/* A closed sink (no allocation). */
void bh_report_sink_init(bh_report_sink *s);

/* Open (or reopen) s on path, closing what it had. system errors with
 * the path and the reason ("is a symbolic link: refused", strerror). */
bh_status bh_report_sink_open(bh_report_sink *s, const char *path, bh_err *err);

/* Close and open the same path again (SIGHUP after a rotation). A closed
 * sink stays closed. */
bh_status bh_report_sink_reopen(bh_report_sink *s, bh_err *err);

/* Append one line (buf ends with its newline) to path: opens s on path
 * when it is open on another path or closed, and reopens it first when
 * the file at path is no longer the one open (renamed or removed). */
bh_status bh_report_sink_write(bh_report_sink *s, const char *path,
                               const char *buf, size_t len, bh_err *err);

void bh_report_sink_close(bh_report_sink *s);

#endif
