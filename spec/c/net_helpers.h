/* Helpers shared by the socket tests (test_probe_codes.c,
 * test_respond_clients.c, test_probe_scale.c): run a probe to completion on a
 * loop, run a loop until a condition holds (bounded), start responders, raw
 * listeners and raw clients. Defined in net_helpers.c, part of the bhtestutil
 * library. */
#ifndef BH_NET_HELPERS_H
#define BH_NET_HELPERS_H

#include <errno.h>
#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "identity.h"
#include "probe.h"
#include "respond.h"
#include "testutil.h"

/* What a probe's callback delivered. */
typedef struct probe_out {
  bool done;
  bh_err err;
  double elapsed;
  bool has_cred;
  pid_t peer_pid;
  bh_peer peer;       /* whoever accepted (err.peer / h.peer) */
  uint32_t successor; /* the listener check's successor, or 0 */
  bool answered;      /* identity is what the peer answered (err.got) */
  bh_identity identity;
  bh_proc proc;
} probe_out;

void probe_out_cb(bh_probe_result *res, void *ctx);

/* Reset an output record (its previous contents must have been cleared:
 * a zeroed bh_proc would name descriptor 0). */
void probe_out_init(probe_out *o);

void probe_out_clear(probe_out *o);

/* Run the loop until done(arg) is true or max_s seconds passed (then the
 * caller's checks fail; a test never hangs). Returns done(arg). */
bool loop_until(struct event_base *base, bool (*done)(void *), void *arg,
                double max_s);

bool flag_set(void *arg);

/* Run the loop for about s seconds (lets other events happen). */
void loop_for(struct event_base *base, double s);

/* Probe ep expecting expected and wait for the callback (10 s bound). */
void run_probe(struct event_base *base, const bh_endpoint *ep,
               const bh_identity *expected, const bh_probe_opts *opts,
               probe_out *out);

bh_probe_opts response_only_opts(double timeout);

/* An endpoint in namespace "test" at tmpdir/name (buf keeps the path). */
void make_endpoint(bh_endpoint *ep, const char *name);

/* This process's identity, listening at ep. */
void make_identity(const bh_endpoint *ep, bh_identity *id);

/* A bound, listening Unix socket that nobody accepts on. */
int listen_raw(const char *path, int backlog);

/* A blocking client connected to path (or -1). */
int connect_raw(const char *path);

/* Raise the soft descriptor limit to the hard one. */
void raise_nofile(void);

#endif
