/* Small descriptor helpers shared by the core's writers. */
#ifndef BH_FDIO_H
#define BH_FDIO_H

#include <stdbool.h>
#include <stddef.h>

/* Write all len bytes to fd, retrying short writes and EINTR. Returns
 * false with errno set on the first other failure (EPIPE, ENOSPC, ...). */
bool bh_write_all(int fd, const void *buf, size_t len);

#endif
