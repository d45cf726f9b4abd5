/* The reference clients of the benchmark (bench_ref_client.c): the least
 * a prober can do for the same bytes as ours on epoll and on io_uring. */
#ifndef BH_BENCH_REF_H
#define BH_BENCH_REF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct bench_ref bench_ref;

/* How a reference client does its I/O. */
typedef enum bench_ref_io {
  BENCH_REF_EPOLL,
  /* a linked chain that opens a direct descriptor (IORING_OP_SOCKET) */
  BENCH_REF_URING,
  /* socket(2), then the chain on its descriptor: what ours does, for the
   * price of that choice (docs/bench.md) */
  BENCH_REF_URING_FD,
} bench_ref_io;

/* The interface named by name ("epoll", "uring", "uring-fd"); false when
 * it is none of them. */
bool bench_ref_io_named(const char *name, bench_ref_io *io);

/* A client of the server at path for up to in_flight probes at once:
 * each sends req and reads reply_len bytes (req is borrowed). NULL with
 * why when the interface cannot be set up (an io_uring without
 * IORING_OP_SOCKET, say). */
bench_ref *bench_ref_new(bench_ref_io io, const char *path, const uint8_t *req,
                         size_t req_len, size_t reply_len, unsigned in_flight,
                         char *why, size_t cap);
void bench_ref_free(bench_ref *r);
/* Run total probes, in_flight at a time; returns how many failed. */
long bench_ref_run(bench_ref *r, long total, unsigned in_flight);

#endif
