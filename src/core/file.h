/* Reading files without ever blocking the loop. Every file the core opens
 * for reading goes through here (the hasher opens its own descriptor the
 * same way: O_NONBLOCK, then fstat). A path is only a name: between a
 * scan that saw a regular file and the read, anyone who can write the
 * directory may put a FIFO there, and opening a FIFO that has no writer
 * waits forever. So the open never waits (O_NONBLOCK), and the descriptor
 * actually read is checked by fstat to be a regular file. */
#ifndef BH_FILE_H
#define BH_FILE_H

#include <stddef.h>
#include <sys/stat.h>

#include "status.h"

/* "a regular file", "a directory", "a FIFO", "a socket", "a device",
 * "a symbolic link" or "a special file", for messages. */
const char *bh_file_kind(mode_t mode);

/* Open path read-only and close-on-exec without waiting, and make sure by
 * fstat on that descriptor that it is a regular file (O_NONBLOCK changes
 * nothing for reading one). Returns 0 with *fd and *st set, or an errno
 * value with err filled under code: the open's or fstat's errno, or
 * EINVAL for anything but a regular file ("PATH is a FIFO, not a regular
 * file"). */
int bh_file_open_regular(const char *path, int *fd, struct stat *st,
                         bh_status code, bh_err *err);

/* The whole regular file at path, at most max bytes, into a malloc'd
 * buffer *out (NUL-terminated; *len excludes the NUL). Sizes are not
 * trusted: /proc files say 0, and a file may grow while read. Returns 0,
 * or an errno value with err filled under code: as bh_file_open_regular,
 * EFBIG when it holds more than max bytes, the read's errno, ENOMEM. */
int bh_file_read_small(const char *path, size_t max, char **out, size_t *len,
                       bh_status code, bh_err *err);

#endif
