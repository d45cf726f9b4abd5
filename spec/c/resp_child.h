/* A responder in a child process, for the tests that attack one with many
 * clients (spec/c/test_limits_*.c) or starve the prober's process of
 * descriptors (test_probe_scale.c): the child has its own loop and CPU,
 * serves until SIGTERM, then reports its counters and its peak resident
 * set, which is the figure the memory targets are about. Defined in
 * resp_child.c (bhtestutil). */
#ifndef BH_RESP_CHILD_H
#define BH_RESP_CHILD_H

#include "child_helpers.h"
#include "loop.h"
#include "net_helpers.h"

typedef struct resp_report {
  uint64_t served, rejected, evicted;
  unsigned open_conns;
  long hwm_kb;   /* peak resident set while serving */
  long start_kb; /* resident set when it began to serve (what the fork
                    shared with the parent included) */
} resp_report;

typedef struct resp_child {
  pid_t pid;
  int rfd;
  /* what the child serves (set before resp_child_start) */
  const bh_endpoint *ep;
  const bh_identity *id;
  bh_respond_opts opts;
} resp_child;

/* Fork the responder child; true once it listens. */
bool resp_child_start(resp_child *rc);

/* SIGTERM the child and read its report; true when it was still alive
 * (no crash), reported and exited 0. */
bool resp_child_stop(resp_child *rc, resp_report *rep);

#endif
