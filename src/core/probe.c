/* The prober (design §1.5, §4): one heap state machine per probe, driven by
 * plain events embedded in the probe (no bufferevents, so an in-flight
 * probe stays well under 4 KiB of heap). States: start (an event made
 * active at once, so the callback never runs inside bh_probe_start) →
 * checks → verify_pid → the exchange (probe_io.c: connect, send, receive
 * one frame, on the epoll path or on the ring) → validate → callback. One
 * deadline covers the whole active exchange and is armed before connect.
 * This file: a probe's life, its checks and the answer's validation, and
 * the prober of a loop. */
#include "probe.h"
#include "probe_int.h"

#include <errno.h>
#include <event2/event.h>
#include <event2/event_struct.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>

#ifndef PIDFS_MAGIC
#define PIDFS_MAGIC 0x50494446 /* Linux 6.9: pidfds get their own inodes */
#endif

#include "clock.h"
#include "digest.h"
#include "expect.h"
#include "hasher.h"
#include "loop.h"
#include "procfs.h"
#include "usock.h"
#include "wire.h"

bh_probe_opts bh_probe_opts_default(void) {
  return (bh_probe_opts){.timeout = 0.5,
                         .response_only = false,
                         .verify_pid = true,
                         .peer_cred = true,
                         .identity = true,
                         .max_response = BH_PROBE_DEFAULT_MAX_RESPONSE};
}

/* Stop every event source and close the socket; what is left (strings,
 * reader, result) is freed by probe_free. */
static void probe_quiesce(bh_probe *p) {
  event_del(&p->start_ev);
  event_del(&p->deadline_ev);
  bh_probe_close_socket(p);
  if (p->peer_pidfd >= 0) close(p->peer_pidfd);
  p->peer_pidfd = -1;
  if (p->via_fd >= 0) close(p->via_fd);
  p->via_fd = -1;
  bh_hash_job_cancel(p->job);
  p->job = NULL;
}

static void probe_free(bh_probe *p) {
  probe_quiesce(p);
  bh_frame_reader_free(&p->reader);
  bh_endpoint_clear(&p->ep);
  bh_expected_unref(p->exp);
  bh_identity_clear(&p->result.identity);
  bh_identity_clear(&p->answered);
  bh_proc_release(&p->result.proc);
  bh_proc_release(&p->succ);
  bh_peer_clear(&p->result.peer);
  free(p);
}

/* Append " (more)" to err's message, as much of it as fits. */
static void add_note(bh_err *err, const char *more) {
  size_t n = strlen(err->message);
  (void)snprintf(err->message + n, sizeof err->message - n, "%s", more);
}

/* The outcome of the listener check, from how the exchange with the
 * endpoint ended (result.err; the successor case was settled already). */
static void listener_outcome(bh_probe *p) {
  bh_err *err = &p->result.err;
  char note[160];
  if (p->t_connected == 0 && err->code == BH_TIMEOUT) {
    /* Something listens (a full backlog): neither gone nor known. */
    (void)snprintf(note, sizeof note,
                   "; %s is held by a listener that did "
                   "not accept within the deadline: cannot tell",
                   p->ep.path);
    *err = p->gone;
    bh_err_set(err, BH_TIMEOUT, NULL, "%s", p->gone.message);
    add_note(err, note);
    return;
  }
  int e = p->connect_errno;
  bool nothing = e == ECONNREFUSED || e == ENOENT || e == ENOTDIR;
  if (p->t_connected == 0 && err->code == BH_CONNECT && !nothing) {
    /* Not tried (no descriptor left, not permitted): cannot tell. */
    (void)snprintf(note, sizeof note,
                   "; its endpoint %s could not be tried: %s", p->ep.path,
                   strerror(e));
    bh_err_set(err, BH_CONNECT, NULL, "%s", p->gone.message);
    add_note(err, note);
    return;
  }
  if (p->t_connected == 0) { /* nothing accepts: stale */
    note[0] = '\0';
    if (err->code == BH_OWNER_CANNOT_CONNECT)
      (void)snprintf(note, sizeof note,
                     "; its endpoint was not tried: the record's owner "
                     "could not connect to it");
    *err = p->gone;
    add_note(err, note);
    return;
  }
  if (p->succ.pid != 0 && err->code == BH_TIMEOUT) { /* verifying it */
    bh_err_set(err, BH_TIMEOUT, NULL,
               "%s; a listener answered on %s as pid %u of the same "
               "executable, not verified within the deadline: cannot tell",
               p->gone.message, p->ep.path, p->succ.pid);
    return;
  }
  bh_peer_read(p->fd, p->peer_pidfd, &p->result.peer);
  if (p->answered.exe_path != NULL) { /* the listener's claim, as err.got */
    bh_identity_move(&p->result.identity, &p->answered);
    p->result.answered = true;
  }
  (void)snprintf(note, sizeof note,
                 "; yet pid %ld (uid %ld) holds its endpoint and is not its "
                 "successor",
                 (long)p->result.peer.pid, (long)p->result.peer.uid);
  *err = p->gone;
  add_note(err, note);
}

/* The outcome is known (p->result.err says which): close the socket at
 * once, call back exactly once, free. */
void bh_probe_finish(bh_probe *p) {
  if (p->listener && p->result.successor == 0)
    listener_outcome(p);
  else if (p->result.err.code != BH_OK && p->t_connected > 0 && p->fd >= 0)
    bh_peer_read(p->fd, p->peer_pidfd, &p->result.peer);
  probe_quiesce(p);
  double now = bh_mono_now();
  p->result.elapsed = now - p->t0;
  if (p->t_verify > 0)
    p->result.timings.verify =
        (p->t_exchange > 0 ? p->t_exchange : now) - p->t_verify;
  if (p->t_exchange > 0 && p->t_connected > 0) {
    p->result.timings.connect = p->t_connected - p->t_exchange;
    p->result.timings.exchange = now - p->t_connected;
  } else if (p->t_exchange > 0) {
    p->result.timings.connect = now - p->t_exchange;
  }
  if (p->result.err.code != BH_OK) {
    if (!p->result.answered) bh_identity_clear(&p->result.identity);
    bh_proc_release(&p->result.proc);
  } else if (p->exe_checked) { /* a verified daemon: keep its digest */
    bh_digest_cache_keep(&p->exe_st);
  }
  bh_proc_release(&p->succ);
  p->cb(&p->result, p->ctx);
  probe_free(p);
}

/* The deadline passed while the executable was being hashed. */
static void hash_timed_out(bh_probe *p) {
  bh_err_set(&p->result.err, BH_TIMEOUT, NULL,
             "verifying pid %u: hashing its executable took longer than the "
             "%.3f s deadline",
             p->expected.pid, p->opts.timeout);
}

/* The deadline timer fired: at the deadline by bh_mono_now, or early by
 * the loop's coarse clock (loop.h), then it waits for the rest. */
static void on_deadline(evutil_socket_t fd, short what, void *arg) {
  bh_probe *p = arg;
  if (!bh_timer_due(&p->deadline_ev, p->t0 + p->opts.timeout)) return;
  if (p->job != NULL && !p->listener)
    hash_timed_out(p);
  else if (p->job != NULL)
    bh_err_set(&p->result.err, BH_TIMEOUT, NULL, "hashing took too long");
  else
    bh_err_set(&p->result.err, BH_TIMEOUT, NULL,
               "no whole response from %s within %.3f s (%zu bytes received)",
               p->ep.path, p->opts.timeout, p->bytes_read);
  bh_probe_finish(p);
}

/* Do two pidfds name the same process? 1 yes, 0 no, -1 cannot tell:
 * only pidfs (Linux 6.9) gives each process its own inode; older kernels
 * put every pidfd on one anonymous inode. */
static int same_process(int a, int b) {
  /* Whether pidfds live on pidfs is the kernel's, asked once: 0 unknown,
   * 1 yes, -1 no. Racing threads would only both ask. */
  static _Atomic int on_pidfs;
  struct statfs fs;
  struct stat sa, sb;
  if (on_pidfs == 0) {
    if (fstatfs(a, &fs) != 0) return -1;
    on_pidfs = fs.f_type == PIDFS_MAGIC ? 1 : -1;
  }
  if (on_pidfs < 0) return -1;
  if (fstat(a, &sa) != 0 || fstat(b, &sb) != 0) return -1;
  return sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
}

/* design §1.5 step 3: the peer that answered must be the process held
 * (the verified one), not something that relays or replays its answers.
 * The pidfd the kernel gives for the peer names the very process that
 * listens, immune to pid reuse: compared with the held pidfd where the
 * kernel can tell, else by pid (fdinfo, or SO_PEERCRED without a peer
 * pidfd), which then also needs the held process alive (a pid number
 * means the verified process only while it has not exited). BH_OK, or
 * peer_mismatch in err. */
static bh_status check_peer(bh_probe *p, const bh_proc *held, bh_err *err) {
  int same = -1;
  if (p->peer_pidfd >= 0 && held->pidfd >= 0)
    same = same_process(p->peer_pidfd, held->pidfd);
  if (same == 1) return BH_OK;
  long peer = p->peer_pidfd >= 0 ? bh_pidfd_pid(p->peer_pidfd) : 0;
  if (peer == 0 && p->result.peer.known) peer = p->result.peer.pid;
  const char *why = NULL;
  if (same == 0 || (peer != 0 && peer != (long)held->pid))
    why = "it is another process";
  else if (peer == 0)
    why = "its credentials could not be read";
  else if (!bh_proc_alive(held))
    why = "the verified process exited meanwhile";
  if (why == NULL) return BH_OK;
  return bh_err_set(err, BH_PEER_MISMATCH, NULL,
                    "the answer on %s came from pid %ld, not from the "
                    "verified pid %u: %s",
                    p->ep.path, peer, held->pid, why);
}

static void hash_exe(bh_probe *p, const bh_proc *proc, unsigned algs,
                     void (*next)(bh_probe *p, const bh_digests *d));

/* Is got the same program as the record: the same executable path
 * (lexically, as the answer is compared) and every digest both carry
 * equal, with at least one in common? */
static bool same_program(const bh_identity *rec, const bh_identity *got) {
  if (rec->exe_path == NULL || got->exe_path == NULL ||
      !bh_path_lexical_equal(rec->exe_path, got->exe_path))
    return false;
  unsigned common = rec->digests.algs & got->digests.algs;
  static const unsigned algs[] = {BH_ALG_SHA256, BH_ALG_BLAKE3};
  for (size_t i = 0; i < sizeof algs / sizeof algs[0]; i++)
    if ((common & algs[i]) &&
        memcmp(bh_digest_of(&rec->digests, algs[i]),
               bh_digest_of(&got->digests, algs[i]), BH_DIGEST_LEN) != 0)
      return false;
  return common != 0;
}

/* The listener's process is verified and hashed: its digests must be the
 * ones it answered with, and it must be the process that answered. Then
 * it is the recorded daemon's successor. */
static void successor_hashed(bh_probe *p, const bh_digests *d) {
  bh_err *err = &p->result.err;
  if (bh_proc_check_digests(&p->answered, d, err) == BH_OK &&
      check_peer(p, &p->succ, err) == BH_OK) {
    p->result.successor = p->succ.pid;
    p->result.err = p->gone;
    char note[96];
    (void)snprintf(note, sizeof note, "; its successor, pid %u, listens",
                   p->succ.pid);
    add_note(&p->result.err, note);
    bh_peer_read(p->fd, p->peer_pidfd, &p->result.peer);
  }
  bh_probe_finish(p);
}

/* The listener answered a valid probe answer (in p->answered): is it the
 * recorded daemon's successor? The same program, the endpoint probed,
 * answered by the pid it names, which verify_pid proves. Anything else:
 * squatted (bh_probe_finish says so). */
static void check_successor(bh_probe *p) {
  bh_err *err = &p->result.err;
  const bh_identity *got = &p->answered;
  bool deleted = false;
  if (!same_program(&p->expected, got) ||
      !bh_endpoint_equal(&got->endpoint, &p->ep) ||
      (p->result.peer.known && (long)p->result.peer.pid != (long)got->pid)) {
    bh_err_set(err, BH_IDENTITY_MISMATCH, NULL, "not the same program");
    bh_probe_finish(p);
    return;
  }
  if (bh_proc_verify_begin(got, NULL, &p->succ, &deleted, err) != BH_OK ||
      deleted) {
    if (deleted) bh_err_set(err, BH_EXE_DELETED, NULL, "not its image");
    bh_probe_finish(p);
    return;
  }
  hash_exe(p, &p->succ, got->digests.algs, successor_hashed);
}

/* A whole frame arrived (body, valid during the call): validate it as
 * the answer to our request, then who answered it. In the listener check
 * the answer is not compared with the record (its pid is gone): its
 * identity goes to the successor check. */
void bh_probe_validate(bh_probe *p, const uint8_t *body, size_t len) {
  bh_err *err = &p->result.err;
  if (p->listener) {
    if (bh_probe_response_validate(body, len, p->request_id, p->nonce, NULL,
                                   &p->answered, err) != BH_OK) {
      bh_probe_finish(p);
      return;
    }
    check_successor(p);
    return;
  }
  bh_status st = bh_probe_response_check(
      body, len, p->request_id, p->nonce, p->exp, &p->result.identity,
      p->opts.identity || p->result.proc.pid != 0, err);
  p->result.answered = st == BH_OK || st == BH_IDENTITY_MISMATCH;
  if (st == BH_OK && p->result.proc.pid != 0 &&
      check_peer(p, &p->result.proc, err) == BH_OK && p->exe_deleted)
    bh_proc_deleted_error(&p->expected, err);
  bh_probe_finish(p);
}

/* Is code one that proves the recorded process gone (design §1.11:
 * stale), so that its endpoint is checked for a listener? */
static bool proves_gone(bh_status code) {
  switch (code) {
    case BH_PID_NOT_FOUND:
    case BH_BOOT_ID_MISMATCH:
    case BH_PID_REUSED:
    case BH_EXE_PATH_MISMATCH:
    case BH_EXE_SHA256_MISMATCH:
    case BH_EXE_HASH_MISMATCH:
      return true;
    default:
      return false;
  }
}

/* verify_pid failed with result.err: when it proves the recorded process
 * gone, check its endpoint for a listener (under the same deadline);
 * else that is the outcome. */
static void verify_failed(bh_probe *p) {
  if (!proves_gone(p->result.err.code)) {
    bh_probe_finish(p);
    return;
  }
  p->gone = p->result.err;
  bh_err_clear(&p->result.err);
  bh_proc_release(&p->result.proc);
  p->listener = true;
  bh_probe_exchange(p);
}

/* The digests of the held process's executable are known: compare them
 * with the record, then go on to the exchange. */
static void record_hashed(bh_probe *p, const bh_digests *d) {
  if (bh_proc_check_digests(&p->expected, d, &p->result.err) != BH_OK) {
    verify_failed(p);
    return;
  }
  p->exe_checked = true;
  bh_probe_exchange(p);
}

/* The hasher is done with an executable (called on the loop). */
static void on_hashed(bh_status st, const bh_digests *d, const bh_err *err,
                      void *ctx) {
  bh_probe *p = ctx;
  p->job = NULL;
  if (st != BH_OK) {
    p->result.err = *err;
    bh_probe_finish(p);
    return;
  }
  p->hashed(p, d);
}

/* The hasher of opts, else the loop's when asked for, else NULL: hash
 * inline. */
static bh_hasher *probe_hasher(bh_probe *p) {
  if (p->opts.hasher != NULL) return p->opts.hasher;
  if (!p->opts.loop_hasher || p->pr == NULL) return NULL;
  return bh_prober_hasher(p->pr);
}

/* The digests of what the held process proc runs, for algs: from the
 * cache, or from the hasher (the probe waits, its deadline running), or
 * inline when there is no hasher; then next(p, digests). */
static void hash_exe(bh_probe *p, const bh_proc *proc, unsigned algs,
                     void (*next)(bh_probe *p, const bh_digests *d)) {
  bh_err *err = &p->result.err;
  struct stat sb;
  bh_digests d;
  int fd;
  if (bh_proc_exe_digests(proc, algs, &d, &fd, &sb, err) != BH_OK) {
    bh_probe_finish(p);
    return;
  }
  p->exe_st = sb;
  if (fd < 0) { /* cached */
    next(p, &d);
    return;
  }
  bh_hasher *hasher = probe_hasher(p);
  if (hasher != NULL) {
    /* In the queue of the process's owner: one user's executables cannot
     * hold the hasher up for another's (hasher.h). */
    uid_t owner = 0;
    if (!bh_proc_real_uid(proc->pid, &owner)) owner = (uid_t)-1;
    p->hashed = next;
    p->job = bh_hasher_submit(hasher, owner, fd, &sb, "the executable", algs,
                              on_hashed, p);
    if (p->job != NULL) return;
    bh_err_set(err, BH_SYSTEM, NULL, "out of memory starting a hash");
    bh_probe_finish(p);
    return;
  }
  bh_status st = bh_digest_fd(fd, &sb, "the executable", algs, NULL, &d, err);
  (void)close(fd); /* read-only */
  if (st == BH_OK && bh_mono_now() - p->t0 > p->opts.timeout) {
    hash_timed_out(p);
    st = BH_TIMEOUT;
  }
  if (st != BH_OK) {
    bh_probe_finish(p);
    return;
  }
  next(p, &d);
}

/* verify_pid (design §1.5 step 2): the checks that need no hashing here,
 * then the digests. */
static void probe_verify(bh_probe *p) {
  p->t_verify = bh_mono_now();
  if (bh_proc_verify_begin(&p->expected, NULL, &p->result.proc, &p->exe_deleted,
                           &p->result.err) != BH_OK) {
    verify_failed(p);
    return;
  }
  hash_exe(p, &p->result.proc, p->expected.digests.algs, record_hashed);
}

/* First step, from the loop: the endpoint checks (design §1.5 step 1),
 * then verify_pid or straight to the exchange. */
static void on_start(evutil_socket_t fd, short what, void *arg) {
  bh_probe *p = arg;
  bh_err *err = &p->result.err;
  if (!p->opts.response_only && !p->has_expected) {
    bh_err_set(err, BH_ENDPOINT_MISMATCH, NULL,
               "a full probe of %s needs an expected identity", p->ep.path);
    bh_probe_finish(p);
    return;
  }
  if (!p->opts.response_only &&
      !bh_endpoint_equal(&p->ep, &p->expected.endpoint)) {
    bh_err_set(err, BH_ENDPOINT_MISMATCH, NULL,
               "probed endpoint (%s, %s) is not the expected one (%s, %s)",
               p->ep.namespace_id, p->ep.path,
               p->expected.endpoint.namespace_id, p->expected.endpoint.path);
    bh_probe_finish(p);
    return;
  }
  if (bh_endpoint_check(&p->ep, err) != BH_OK) {
    bh_probe_finish(p);
    return;
  }
  if (!p->opts.response_only && p->opts.verify_pid)
    probe_verify(p);
  else
    bh_probe_exchange(p);
}

/* ---- the prober of a loop ----------------------------------------------- */

static void *prober_new(struct event_base *base, bh_uring *ring) {
  bh_prober *pr = calloc(1, sizeof *pr);
  if (pr == NULL) return NULL;
  pr->base = base;
  pr->ring = ring;
  return pr;
}

static void prober_free(void *obj) {
  bh_prober *pr = obj;
  bh_hasher_free(pr->hasher);
  free(pr);
}

/* The prober is attached to its loop, which frees it (loop.h). */
static const bh_loop_kind prober_kind = {prober_new, prober_free};

struct bh_hasher *bh_prober_hasher(bh_prober *pr) {
  if (pr->hasher == NULL && !pr->no_hasher) {
    pr->hasher = bh_hasher_new(pr->base, NULL);
    pr->no_hasher = pr->hasher == NULL; /* then probes hash inline */
  }
  return pr->hasher;
}

/* The timer of a probe deadline of timeout seconds: probes mostly share a
 * timeout, and as a common timeout of the loop their deadlines are a
 * queue, not entries of the timer heap (thousands in flight). libevent
 * keeps up to 256 distinct ones (then *tv itself); the prober remembers a
 * few, saving libevent's search of them per probe. */
static const struct timeval *probe_deadline_tv(struct event_base *base,
                                               bh_prober *pr, double timeout,
                                               const struct timeval *tv) {
  if (pr != NULL)
    for (unsigned i = 0; i < pr->ndeadlines; i++)
      if (pr->deadlines[i].timeout == timeout) return pr->deadlines[i].tv;
  const struct timeval *common = event_base_init_common_timeout(base, tv);
  if (common == NULL) return tv;
  if (pr != NULL && pr->ndeadlines < DEADLINES) {
    pr->deadlines[pr->ndeadlines].timeout = timeout;
    pr->deadlines[pr->ndeadlines].tv = common;
    pr->ndeadlines++;
  }
  return common;
}

/* Start a probe expecting exp (taken over; NULL: none). */
static bh_probe *probe_start(struct event_base *base, const bh_endpoint *ep,
                             bh_expected *exp, const bh_probe_opts *opts,
                             bh_probe_cb cb, void *ctx) {
  bh_probe *p = calloc(1, sizeof *p);
  if (p == NULL) {
    bh_expected_unref(exp);
    return NULL;
  }
  p->t0 = bh_mono_now();
  p->base = base;
  p->pr = bh_loop_attached(base, &prober_kind);
  p->cb = cb;
  p->ctx = ctx;
  p->opts = opts ? *opts : bh_probe_opts_default();
  if (p->opts.timeout <= 0) p->opts.timeout = 0.5;
  if (p->opts.timeout > BH_PROBE_MAX_TIMEOUT)
    p->opts.timeout = BH_PROBE_MAX_TIMEOUT;
  if (p->opts.max_response == 0)
    p->opts.max_response = BH_PROBE_DEFAULT_MAX_RESPONSE;
  p->fd = -1;
  p->peer_pidfd = -1;
  p->via_fd = -1;
  p->exp = exp;
  p->has_expected = exp != NULL;
  if (exp != NULL)
    p->expected = *bh_expected_identity(exp);
  else
    bh_identity_init(&p->expected);
  bh_identity_init(&p->answered);
  bh_identity_init(&p->result.identity);
  p->result.proc = BH_PROC_NONE;
  p->result.peer = BH_PEER_NONE;
  p->succ = BH_PROC_NONE;
  p->result.timings = (bh_probe_timings){-1, -1, -1};
  bh_err_clear(&p->result.err);
  bh_frame_reader_init(&p->reader);
  /* Memory per probe is bounded by what an answer may need, not by the
   * 16 MiB protocol cap: a hostile daemon announcing more is refused at
   * its header, before a byte of the body is held. */
  bh_frame_reader_limit(&p->reader, p->opts.max_response, "max_response");
  evtimer_assign(&p->start_ev, base, on_start, p);
  evtimer_assign(&p->deadline_ev, base, on_deadline, p);
  if (bh_endpoint_copy(&p->ep, ep, NULL) != BH_OK) {
    probe_free(p);
    return NULL;
  }
  /* Active at once, but run by the loop: never inside this call. The
   * deadline is armed first: it covers verification and hashing too. */
  struct timeval tv = bh_timeval(p->opts.timeout);
  evtimer_add(&p->deadline_ev,
              probe_deadline_tv(base, p->pr, p->opts.timeout, &tv));
  event_active(&p->start_ev, EV_TIMEOUT, 1);
  return p;
}

bh_probe *bh_probe_start(struct event_base *base, const bh_endpoint *ep,
                         const bh_identity *expected, const bh_probe_opts *opts,
                         bh_probe_cb cb, void *ctx) {
  bh_expected *exp = NULL;
  if (expected != NULL &&
      (exp = bh_expected_new(expected, false, NULL)) == NULL)
    return NULL;
  return probe_start(base, ep, exp, opts, cb, ctx);
}

bh_probe *bh_probe_start_expected(struct event_base *base,
                                  const bh_endpoint *ep, bh_expected *expected,
                                  const bh_probe_opts *opts, bh_probe_cb cb,
                                  void *ctx) {
  return probe_start(base, ep, expected ? bh_expected_ref(expected) : NULL,
                     opts, cb, ctx);
}

void bh_probe_cancel(bh_probe *p) {
  if (p != NULL) probe_free(p);
}

size_t bh_probe_heap(const bh_probe *p) {
  size_t n = sizeof *p + bh_frame_reader_heap(&p->reader);
  const char *strs[] = {p->ep.namespace_id, p->ep.path};
  for (size_t i = 0; i < sizeof strs / sizeof strs[0]; i++)
    if (strs[i] != NULL) n += strlen(strs[i]) + 1;
  /* The expected identity is counted whole, though probes of the same
   * one share it. */
  if (p->exp != NULL) n += bh_expected_heap(p->exp);
  if (p->us != NULL) n += bh_usock_heap(p->us);
  return n;
}
