/* Full probes whose executable is hashed off the loop (bh_probe_opts
 * hasher, design §1.5: the whole probe, hashing included, runs under one
 * deadline and never blocks the loop): a probe with an empty digest cache
 * succeeds through the hasher, a mismatch found there is reported, a
 * probe of a daemon running a huge binary times out on its deadline while
 * the loop keeps running, and a probe cancelled while its hash runs never
 * calls back, even when the hash completes (ASan: no use after free). */
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "digest.h"
#include "hasher.h"
#include "loop.h"
#include "net_helpers.h"
#include "proc_helpers.h"

static struct event_base *base;
static bh_hasher *hasher;
static bh_endpoint ep;
static bh_identity me;

static bh_probe_opts hashed_opts(double timeout) {
  bh_probe_opts o = bh_probe_opts_default();
  o.timeout = timeout;
  o.hasher = hasher;
  return o;
}

static void test_through_hasher(void) {
  bh_err err;
  bh_responder *r = bh_respond_start(base, &ep, &me, NULL, &err);
  CHECK(r != NULL);
  bh_digest_cache_clear();
  probe_out out;
  bh_probe_opts o = hashed_opts(10.0);
  run_probe(base, &ep, &me, &o, &out);
  CHECK_CODE(out.err.code, BH_OK, &out.err);
  CHECK_INT(out.proc.pid, getpid());
  bh_digest_stats s = bh_digest_cache_stats();
  CHECK_INT(s.misses, 1); /* hashed once, by the worker */
  probe_out_clear(&out);
  /* The second probe finds it in the cache. */
  run_probe(base, &ep, &me, &o, &out);
  CHECK_CODE(out.err.code, BH_OK, &out.err);
  CHECK_INT(bh_digest_cache_stats().misses, 1);
  CHECK(bh_digest_cache_stats().hits >= 1);
  probe_out_clear(&out);
  /* A mismatch found by the worker. */
  bh_identity liar;
  bh_identity_init(&liar);
  bh_identity_copy(&liar, &me, &err);
  for (int k = 0; k < 2; k++) {
    if (k == 0) liar.digests.sha256[9] ^= 1;
    if (k == 1) liar.digests.algs = BH_ALG_BLAKE3, liar.digests.blake3[9] ^= 1;
    bh_digest_cache_clear();
    run_probe(base, &ep, &liar, &o, &out);
    CHECK_CODE(out.err.code,
               k == 0 ? BH_EXE_SHA256_MISMATCH : BH_EXE_HASH_MISMATCH,
               &out.err);
    CHECK_INT(out.proc.pid, 0);
    probe_out_clear(&out);
  }
  bh_identity_clear(&liar);
  bh_respond_free(r);
}

/* A daemon running a copy of this binary padded (sparse) to 1 GiB. */
static pid_t spawn_huge(const char *exe, int *wfd) {
  copy_self(exe, 0);
  CHECK_INT(truncate(exe, (off_t)1 << 30), 0);
  pid_t child = spawn_copy(exe, NULL, wfd);
  CHECK(wait_exec(child, exe));
  return child;
}

/* The record of the huge daemon (its digests never matter: the deadline
 * comes first). */
static void huge_record(pid_t child, const char *exe, bh_identity *rec) {
  bh_identity_init(rec);
  rec->pid = (uint32_t)child;
  rec->exe_path = strdup(exe);
  rec->boot_id = strdup("");
  rec->digests.algs = BH_ALGS_ALL;
  bh_endpoint_copy(&rec->endpoint, &ep, NULL);
}

static void on_tick(evutil_socket_t fd, short what, void *arg) {
  (*(int *)arg)++;
}

static void test_deadline_covers_hashing(void) {
  char exe[256];
  bh_test_path(exe, sizeof exe, "huge");
  int wfd;
  pid_t child = spawn_huge(exe, &wfd);
  bh_identity rec;
  huge_record(child, exe, &rec);
  bh_digest_cache_clear();
  int ticks = 0;
  struct event *tick = event_new(base, -1, EV_PERSIST, on_tick, &ticks);
  struct timeval tv = {0, 5000};
  event_add(tick, &tv);
  probe_out out;
  bh_probe_opts o = hashed_opts(0.1);
  run_probe(base, &ep, &rec, &o, &out);
  event_free(tick);
  CHECK_CODE(out.err.code, BH_TIMEOUT, &out.err);
  CHECK(strstr(out.err.message, "hashing its executable") != NULL);
  CHECK(out.elapsed >= 0.1 - 0.001 && out.elapsed < 2.0);
  CHECK(ticks >= 1); /* the loop ran while the worker hashed */
  CHECK_INT(out.proc.pid, 0);
  probe_out_clear(&out);
  /* Freeing the hasher stops the work the timed-out probe left behind. */
  double t0 = bh_test_now();
  bh_hasher_free(hasher);
  bh_err err;
  hasher = bh_hasher_new(base, &err);
  CHECK(hasher != NULL);
  CHECK(bh_test_now() - t0 < 10);
  close(wfd);
  CHECK_INT(waitpid(child, NULL, 0), child);
  CHECK_INT(unlink(exe), 0);
  bh_identity_clear(&rec);
}

static void on_marker(bh_status st, const bh_digests *d, const bh_err *err,
                      void *ctx) {
  *(bool *)ctx = true;
}

/* A probe cancelled after it handed its hash to the worker never calls
 * back, also when the hash then completes (a job queued after it is the
 * marker: the worker runs jobs in order). Under ASan a callback into the
 * freed probe would be a use after free. */
static void test_cancel_while_hashing(void) {
  bh_digest_cache_clear();
  probe_out out;
  probe_out_init(&out);
  bh_probe_opts o = hashed_opts(30.0);
  bh_probe *p = bh_probe_start(base, &ep, &me, &o, probe_out_cb, &out);
  CHECK(p != NULL);
  event_base_loop(base, EVLOOP_ONCE | EVLOOP_NONBLOCK); /* verify, submit */
  CHECK(!out.done);
  bh_probe_cancel(p);
  char path[256];
  bh_test_path(path, sizeof path, "marker");
  int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  CHECK(fd >= 0 && write(fd, "m", 1) == 1);
  close(fd);
  struct stat st;
  bh_err err;
  CHECK_CODE(bh_digest_open(path, "marker", &fd, &st, &err), BH_OK, &err);
  bool marked = false;
  CHECK(bh_hasher_submit(hasher, 0, fd, &st, "marker", BH_ALGS_ALL, on_marker,
                         &marked) != NULL);
  CHECK(loop_until(base, flag_set, &marked, 30));
  loop_for(base, 0.02);
  CHECK(!out.done);
  CHECK_INT(bh_digest_cache_stats().misses, 2); /* the probe's, the marker's */
}

int main(int argc, char **argv) {
  if (block_mode(argc, argv)) return 0;
  signal(SIGPIPE, SIG_IGN);
  base = bh_loop_new();
  bh_err err;
  hasher = bh_hasher_new(base, &err);
  make_endpoint(&ep, "h.sock");
  make_identity(&ep, &me);
  RUN(test_through_hasher);
  RUN(test_deadline_covers_hashing);
  RUN(test_cancel_while_hashing);
  bh_hasher_free(hasher);
  bh_identity_clear(&me);
  bh_endpoint_clear(&ep);
  bh_loop_free(base);
  bh_digest_cache_clear();
  return bh_test_summary();
}
