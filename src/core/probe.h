/* The prober (design §1.5, §4): a small heap state machine owned by a
 * libevent loop. One deadline covers the whole active exchange and is armed
 * before connect. The completion callback is always called from the loop
 * (never from inside bh_probe_start), exactly once, unless the probe is
 * cancelled first. Knows nothing of Lua. */
#ifndef BH_PROBE_H
#define BH_PROBE_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "identity.h"
#include "peer.h"
#include "proc.h"
#include "status.h"

struct event_base;
typedef struct bh_probe bh_probe;

/* The longest deadline a probe may have, seconds (a day: far beyond any
 * real exchange, well within timeval and the loop's timers). */
#define BH_PROBE_MAX_TIMEOUT 86400.0

struct bh_hasher;

/* The largest answer body a probe reads by default. A real answer is the
 * Frame around a nonce and one identity: a few hundred bytes, about 4.3 KiB
 * with a PATH_MAX executable path. 64 KiB is a wide margin that still
 * keeps a thousand probes against withheld answers under 64 MiB, where
 * the 16 MiB protocol cap alone would let each of them cost 16 MiB. */
#define BH_PROBE_DEFAULT_MAX_RESPONSE (64u << 10)

typedef struct bh_probe_opts {
  double timeout;     /* seconds for the whole probe; <= 0 → 0.5 */
  bool response_only; /* skip endpoint check and verify_pid */
  bool verify_pid;    /* full probe only: run verify_pid (default true) */
  bool peer_cred;     /* read SO_PEERCRED into result.peer on success
                         (default true; a full probe that holds the
                         process reads it anyway: it checks the peer;
                         a failure after connect always reads it) */
  bool identity;      /* put the identity answered in result.identity on
                         success too (default true; a full probe that
                         holds the process does anyway) */
  /* On whose behalf the probe connects (design §1.11): with has_owner,
   * the endpoint is connected to only if that uid could connect itself
   * (access.h: search on its directories, write on the socket), through a
   * descriptor of what was checked; else owner_cannot_connect. Skipped
   * when owner is 0 or this process's own uid (the kernel judges). */
  bool has_owner;
  uid_t owner;
  uint32_t max_response; /* answer body bytes; larger → frame_too_large as
                            soon as the header says so. 0 → the default;
                            above the 16 MiB protocol cap → the cap */
  /* Where verify_pid hashes an executable that is not in the digest
   * cache: a hasher on the same loop (off the loop thread); else, with
   * loop_hasher, the loop's own (its prober's, made on first use and
   * freed with the loop); else inline (tests, tools without a loop to
   * spare). */
  struct bh_hasher *hasher;
  bool loop_hasher;
} bh_probe_opts;

/* Default options: timeout 0.5 s, full probe, verify_pid on, max_response
 * BH_PROBE_DEFAULT_MAX_RESPONSE. */
bh_probe_opts bh_probe_opts_default(void);

/* Where a probe's time went, in seconds; < 0 for a phase that did not
 * run. verify: verify_pid (digest included); connect: from the start of
 * the exchange to connected (or to the failure while connecting);
 * exchange: from connected to the validated answer (or the failure). */
typedef struct bh_probe_timings {
  double verify, connect, exchange;
} bh_probe_timings;

typedef struct bh_probe_result {
  bh_err err;     /* err.code == BH_OK on success */
  double elapsed; /* seconds from start to completion */
  bh_probe_timings timings;
  /* Whatever accepted the connection (design §2 err.peer, h.peer): on a
   * failure after connect its credentials and executable; on success its
   * credentials (peer_cred, or a held process). A full probe that
   * verified the pid also checks that the peer is that very process
   * (design §1.5 step 3): through SO_PEERPIDFD where the kernel has it,
   * else SO_PEERCRED's pid. The callback may take it (bh_peer_move). */
  bh_peer peer;
  /* The recorded process is gone (a stale code) and a listener on its
   * endpoint proved to be its successor: that process's pid (design
   * §1.11); 0 otherwise. A stale code with peer.known and no successor
   * means the endpoint is squatted. */
  uint32_t successor;
  /* On success: the identity the daemon answered with (with
   * opts.identity or a held process), and (full probe with verify_pid)
   * the held process. The callback may take either by moving it out
   * (bh_identity_move; copy proc and set result's to BH_PROC_NONE);
   * whatever is left is freed after the callback. */
  bh_identity identity;
  bh_proc proc;
  /* identity holds what the peer answered: on success as said above; on
   * a failure whose answer decoded (identity_mismatch, peer_mismatch,
   * exe_deleted, and for a squatted endpoint the listener's answer), what
   * it claimed (design §2 err.got). */
  bool answered;
} bh_probe_result;

typedef void (*bh_probe_cb)(bh_probe_result *res, void *ctx);

/* Start a probe of endpoint ep expecting identity expected (both copied).
 * One deadline (opts.timeout) covers all of it: verify_pid and any hashing
 * it needs, connect, and the exchange.
 *
 * A full probe whose verify_pid proves the recorded process gone
 * (pid_not_found, boot_id_mismatch, pid_reused, or the pid running another
 * program: exe_path_mismatch, exe_sha256_mismatch, exe_hash_mismatch)
 * still connects to the endpoint within the same deadline (design §1.11):
 * nothing accepts → that code alone (stale); something accepts → the code
 * with result.peer (squatted), unless it answers the probe with a valid
 * identity of the same executable (path and digest) that verify_pid
 * proves under its own pid, the very process that answered: then
 * result.successor is that pid. A listener that holds the endpoint
 * without accepting within the deadline, or a successor that cannot be
 * verified in time, gives timeout (cannot tell). A process that runs the
 * recorded image whose file was deleted on disk and answers as recorded
 * is exe_deleted (outdated) instead of a success.
 * A response-only probe may pass expected = NULL: the answer is then
 * validated but not compared (a full probe without one fails with
 * endpoint_mismatch). Returns NULL only when out of memory (then nothing
 * was started). */
bh_probe *bh_probe_start(struct event_base *base, const bh_endpoint *ep,
                         const bh_identity *expected, const bh_probe_opts *opts,
                         bh_probe_cb cb, void *ctx);

/* bh_probe_start expecting a prepared identity (expect.h; a reference is
 * taken): an answer that is one of its encodings is verified without
 * decoding it. */
struct bh_expected;
bh_probe *bh_probe_start_expected(struct event_base *base,
                                  const bh_endpoint *ep,
                                  struct bh_expected *expected,
                                  const bh_probe_opts *opts, bh_probe_cb cb,
                                  void *ctx);

/* Cancel a probe that has not completed: its callback will not be called
 * and all its resources are freed now. Must not be called from inside its
 * own callback or after completion. */
void bh_probe_cancel(bh_probe *p);

/* Heap bytes held by one in-flight probe right now (for the 4 KiB budget
 * test and benchmarks). */
size_t bh_probe_heap(const bh_probe *p);

/* What a loop keeps for its probes, one per loop (attached to it:
 * loop.h bh_loop_attached): the loop's ring (NULL on the epoll path), the
 * hasher of probes with loop_hasher, the timers of the deadlines probes
 * share. Made on a loop's first probe, freed with the loop. */
typedef struct bh_prober bh_prober;
/* The loop's hasher, made on first use; NULL when it cannot be made. */
struct bh_hasher *bh_prober_hasher(bh_prober *pr);

#endif
