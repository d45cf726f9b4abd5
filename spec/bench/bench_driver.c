/* The benchmark driver (run by scripts/bench; never a timed test).
 *
 * Pairs of a prober and a responder process, each measured in rounds of
 * a few hundred sequential probes; the rounds of all pairs alternate
 * (pair after pair, pinned then unpinned, again and again), so that a
 * change in the load of a shared machine hits every pair alike, and no
 * pair pays for another's wake-ups inside its round (alternating probe by
 * probe would). Each figure is the median of its per-round figures. Ours
 * runs on each I/O path (design §4.3): BH_IO=epoll and BH_IO=uring for
 * both processes of a pair.
 *  - ours: bh_probe_start, response-only, against bench_responder;
 *  - raw: a blocking client loop against bench_raw_server's blocking loop,
 *    the same bytes (the floor);
 *  - epoll pair, uring pair: the least a client and a server can do for
 *    the same bytes on epoll and on io_uring (bench_ref_client.c,
 *    bench_ref_server.c): the limit of each path;
 *  - full: our full probe (pid verified, digest cached), same responder;
 *  - lua, lua full: the same two as bhprobe-lua scripts (bh.probe_response,
 *    bh.probe) against a script's bh.respond, the product end to end;
 *  - with BH_REFPEER_DIR (rp41, rplatest): their bench client against
 *    their respond, our prober against their responders, and rplatest's
 *    client against our responder.
 * Then the first hash of our executable and of a 64 MiB file; batches
 * with many probes in flight (ours on each path and the two reference
 * pairs, alternating, each prober a fresh process): their CPU per probe;
 * and throughput in fresh bench_load processes, on each path. Prints the
 * tables and every target with met / NOT met, and writes the same
 * figures as JSON.
 *
 * Usage: bench_driver [--quick|--smoke] BENCH_BIN_DIR HOST_BIN OUT_JSON */
#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench.h"
#include "loop.h"
#include "probe.h"
#include "wire.h"

#define PLAN(NAME, ROUNDS, PROBES, WARMUP, HASHES, L1, F1, R1, L2, F2, R2,  \
             BATCHES)                                                       \
  {                                                                         \
    .name = (NAME), .rounds = (ROUNDS), .probes = (PROBES),                 \
    .warmup = (WARMUP), .hash_reps = (HASHES),                              \
    .loads = {{(L1), (F1), (R1)}, {(L2), (F2), (R2)}}, .batches = (BATCHES) \
  }
/* The batches with many in flight are of the first load's size. */
static const bench_plan plans[] = {
    PLAN("full", 20, 300, 50, 5, 10000, 1000, 5, 100000, 5000, 3, 9),
    PLAN("quick", 4, 100, 20, 3, 10000, 1000, 1, 100000, 5000, 1, 3),
    /* only that the tool works (a ctest runs it): figures mean nothing */
    PLAN("smoke", 3, 10, 2, 1, 200, 20, 1, 1000, 100, 1, 1),
};

/* The pinned mode uses the last CPU this process may run on. */
static void plan_cpus(bench_plan *p) {
  if (sched_getaffinity(0, sizeof p->unpinned, &p->unpinned) != 0)
    bench_die("sched_getaffinity: %s", strerror(errno));
  for (int i = 0; i < CPU_SETSIZE; i++)
    if (CPU_ISSET(i, &p->unpinned)) p->cpu = i;
}

static void cpu_list(const cpu_set_t *set, char *buf, size_t cap) {
  size_t len = 0;
  buf[0] = '\0';
  for (int i = 0; i < CPU_SETSIZE && len + 8 < cap; i++)
    if (CPU_ISSET(i, set))
      len += (size_t)snprintf(buf + len, cap - len, len ? ",%d" : "%d", i);
}

static void print_method(const bench_results *r) {
  const bench_plan *p = r->plan;
  char cpus[256];
  cpu_list(&p->unpinned, cpus, sizeof cpus);
  printf("bhprobe-lua benchmarks (%s run)\n", p->name);
  printf(
      "  method: %d rounds x %d sequential probes per pair and mode, each "
      "round after\n  %d unmeasured probes; the rounds of all pairs "
      "alternate (never probe by\n  probe); every figure is the median of "
      "the per-round figures\n",
      p->rounds, p->probes, p->warmup);
  printf(
      "  pinned: prober and responder (every thread) on CPU %d; unpinned: "
      "CPUs %s\n",
      p->cpu, cpus);
  printf(
      "  CPU: getrusage in this process, the process CPU clock of a "
      "responder,\n  wait4 for a client in a process of its own\n");
  printf(
      "  I/O paths: /e = BH_IO=epoll, /u = BH_IO=uring, for both processes "
      "of our pairs\n");
  printf("  machine: %s; load average %s\n", r->machine, r->load_start);
  if (r->refpeer_dir != NULL)
    printf("  refpeers: %s (rp41, rplatest)\n", r->refpeer_dir);
  else
    printf(
        "  refpeers: BH_REFPEER_DIR is not set, their pairs are not "
        "measured\n");
  (void)fflush(stdout);
}

/* ---- servers -------------------------------------------------------------
 */

typedef struct servers {
  char dir[80], raw[112], rp410[112], rp41[112];
  char ours[BENCH_PATHS][112], lua[BENCH_PATHS][112], ref[BENCH_PATHS][112];
  char ours_id[112], rp410_id[112], rp41_id[112], lua_id[BENCH_PATHS][112];
  char ours_idf[BENCH_PATHS][112]; /* our responders' identities */
  pid_t ours_pid[BENCH_PATHS], lua_pid[BENCH_PATHS], ref_pid[BENCH_PATHS];
  pid_t raw_pid, rp410_pid, rp41_pid;
  uint8_t *req;
  size_t req_len, reply_len;
  char req_hex[256];
  const char *bin_dir, *host;
  bool uring_ok; /* the kernel gives io_uring: else the /u pairs wait */
  char uring_why[256];
} servers;

/* Does this kernel give io_uring (a loop made with BH_IO=uring)? */
static void check_uring(void *arg) {
  servers *s = arg;
  bh_err err;
  bh_err_clear(&err);
  struct event_base *b = bh_loop_open(&err);
  s->uring_ok = b != NULL;
  if (b == NULL)
    (void)snprintf(s->uring_why, sizeof s->uring_why, "%s", err.message);
  bh_loop_free(b);
}

/* A fresh directory under $TMPDIR (default /tmp) for the sockets and
 * identity files; it must leave room for them in sun_path. */
static void server_paths(servers *s) {
  const char *tmp = getenv("TMPDIR");
  if (tmp == NULL || tmp[0] == '\0') tmp = "/tmp";
  if (strlen(tmp) > 60) bench_die("TMPDIR is too long for socket paths");
  (void)snprintf(s->dir, sizeof s->dir, "%s/bhb.XXXXXX", tmp);
  if (mkdtemp(s->dir) == NULL) bench_die("mkdtemp: %s", strerror(errno));
  (void)snprintf(s->raw, sizeof s->raw, "%s/raw.sock", s->dir);
  (void)snprintf(s->rp410, sizeof s->rp410, "%s/rp410.sock", s->dir);
  (void)snprintf(s->rp41, sizeof s->rp41, "%s/rp41.sock", s->dir);
  (void)snprintf(s->ours_id, sizeof s->ours_id, "%s/ours.json", s->dir);
  (void)snprintf(s->rp410_id, sizeof s->rp410_id, "%s/rp410.json", s->dir);
  (void)snprintf(s->rp41_id, sizeof s->rp41_id, "%s/rp41.json", s->dir);
  for (int u = 0; u < BENCH_PATHS; u++) {
    const char *io = bench_io_name(u);
    (void)snprintf(s->ours[u], sizeof s->ours[u], "%s/ours-%s.sock", s->dir,
                   io);
    (void)snprintf(s->lua[u], sizeof s->lua[u], "%s/lua-%s.sock", s->dir, io);
    (void)snprintf(s->lua_id[u], sizeof s->lua_id[u], "%s/lua-%s.json", s->dir,
                   io);
    (void)snprintf(s->ref[u], sizeof s->ref[u], "%s/ref-%s.sock", s->dir, io);
    (void)snprintf(s->ours_idf[u], sizeof s->ours_idf[u], "%s/ours-%s.json",
                   s->dir, io);
  }
}

/* The identity file of our responder (pid at path), for a peer's client
 * or bench_load. */
static void write_id(pid_t pid, const char *path, const char *file) {
  bh_endpoint ep = {0};
  bh_identity id;
  bh_err err;
  bh_identity_init(&id);
  if (bh_endpoint_set(&ep, "bench", path, &err) != BH_OK ||
      bh_identity_of_pid((uint32_t)pid, &ep, &id, &err) != BH_OK)
    bench_die("identity of our responder: %s", err.message);
  char *json = bh_identity_to_json(&id);
  FILE *f = fopen(file, "w");
  if (json == NULL || f == NULL || fputs(json, f) < 0 || fclose(f) != 0)
    bench_die("cannot write %s", file);
  free(json);
  bh_identity_clear(&id);
  bh_endpoint_clear(&ep);
}

/* Our responder on one path (room for the largest batch in flight). */
typedef struct spawn_ours {
  servers *s;
  int u;
} spawn_ours;

static void start_ours_on(void *arg) {
  spawn_ours *o = arg;
  char resp[4096], script[4200];
  (void)snprintf(resp, sizeof resp, "%s/bench_responder", o->s->bin_dir);
  o->s->ours_pid[o->u] =
      bench_spawn_ready((char *const[]){resp, o->s->ours[o->u], "16384", NULL});
  (void)snprintf(script, sizeof script, "%s/lua_responder.lua", BENCH_LUA_DIR);
  o->s->lua_pid[o->u] = bench_spawn_ready((char *const[]){
      (char *)o->s->host, script, o->s->lua[o->u], o->s->lua_id[o->u], NULL});
}

/* Our responders and scripts on each path; the raw server and the
 * reference servers, which answer with as many bytes as ours does. */
static void start_servers(servers *s) {
  bench_with_io(true, check_uring, s);
  for (int u = 0; u < BENCH_PATHS && (u == 0 || s->uring_ok); u++) {
    spawn_ours o = {s, u};
    bench_with_io(u, start_ours_on, &o);
    write_id(s->ours_pid[u], s->ours[u], s->ours_idf[u]);
  }
  uint8_t nonce[BH_NONCE_LEN] = {7};
  if (bh_probe_request_build(nonce, &s->req, &s->req_len, NULL) != BH_OK ||
      s->req_len * 2 >= sizeof s->req_hex)
    bench_die("cannot build a request");
  for (size_t i = 0; i < s->req_len; i++)
    (void)snprintf(s->req_hex + 2 * i, 3, "%02x", s->req[i]);
  s->reply_len = bench_raw_reply_size(s->ours[0], s->req, s->req_len);
  char raw[4096], ref[4096], size[32];
  (void)snprintf(raw, sizeof raw, "%s/bench_raw_server", s->bin_dir);
  (void)snprintf(ref, sizeof ref, "%s/bench_ref_server", s->bin_dir);
  (void)snprintf(size, sizeof size, "%zu", s->reply_len);
  s->raw_pid = bench_spawn_ready((char *const[]){raw, s->raw, size, NULL});
  for (int u = 0; u < BENCH_PATHS && (u == 0 || s->uring_ok); u++)
    s->ref_pid[u] = bench_spawn_ready(
        (char *const[]){ref, (char *)bench_io_name(u), s->ref[u], size, NULL});
}

static void write_ours_id(const servers *s) {
  int u = s->uring_ok;
  write_id(s->ours_pid[u], s->ours[u], s->ours_id);
}

static void stop_servers(servers *s) {
  bench_stop(s->raw_pid);
  bench_stop(s->rp410_pid);
  bench_stop(s->rp41_pid);
  for (int u = 0; u < BENCH_PATHS; u++) {
    bench_stop(s->ours_pid[u]);
    bench_stop(s->lua_pid[u]);
    bench_stop(s->ref_pid[u]);
    const char *files[] = {s->ours[u], s->lua[u], s->lua_id[u], s->ref[u],
                           s->ours_idf[u]};
    for (size_t i = 0; i < sizeof files / sizeof *files; i++)
      if (unlink(files[i]) != 0 && errno != ENOENT)
        bench_die("unlink %s: %s", files[i], strerror(errno));
  }
  const char *files[] = {s->raw,     s->rp410,    s->rp41,
                         s->ours_id, s->rp410_id, s->rp41_id};
  for (size_t i = 0; i < sizeof files / sizeof *files; i++)
    if (unlink(files[i]) != 0 && errno != ENOENT)
      bench_die("unlink %s: %s", files[i], strerror(errno));
  if (rmdir(s->dir) != 0) bench_die("rmdir %s: %s", s->dir, strerror(errno));
}

/* ---- pairs ----------------------------------------------------------------
 */

static bench_pair *new_pair(bench_results *r) {
  if (r->npairs == BENCH_MAX_PAIRS) bench_die("too many pairs");
  return &r->pairs[r->npairs++];
}

/* A pair of the peers that is not measured, and why. */
static void absent(bench_results *r, const char *key, const char *label,
                   const char *why) {
  bench_pair *p = new_pair(r);
  *p = (bench_pair){.key = key, .label = label, .kind = BENCH_RP};
  (void)snprintf(p->why, sizeof p->why, "%s", why);
}

/* The peers' pairs; ours with them runs on io_uring (when the kernel
 * gives it), the path such a kernel gets. */
static void peer_pairs(bench_results *r, servers *s) {
  static const char *const keys[] = {"rp410", "rp41", "ours_rp410", "ours_rp41",
                                     "rp410_ours"};
  static const char *const labels[] = {"rp 4.10.6", "rp 4.1.0", "ours>4.10.6",
                                       "ours>4.1.0", "4.10.6>ours"};
  if (r->refpeer_dir == NULL) {
    for (int i = 0; i < 5; i++)
      absent(r, keys[i], labels[i], "BH_REFPEER_DIR is not set");
    return;
  }
  static char rp410[4096], rp41[4096];
  (void)snprintf(rp410, sizeof rp410, "%s/rplatest", r->refpeer_dir);
  (void)snprintf(rp41, sizeof rp41, "%s/rp41", r->refpeer_dir);
  s->rp410_pid = bench_rp_respond(rp410, s->rp410, s->rp410_id);
  s->rp41_pid = bench_rp_respond(rp41, s->rp41, s->rp41_id);
  bench_pair_rp(new_pair(r), keys[0], labels[0], rp410, s->rp410_id,
                s->rp410_pid);
  bench_pair_rp(new_pair(r), keys[1], labels[1], rp41, s->rp41_id, s->rp41_pid);
  bench_pair_ours(new_pair(r), keys[2], labels[2], s->rp410, s->rp410_pid,
                  false, s->uring_ok, false);
  bench_pair_ours(new_pair(r), keys[3], labels[3], s->rp41, s->rp41_pid, false,
                  s->uring_ok, false);
  write_ours_id(s);
  bench_pair_rp(new_pair(r), keys[4], labels[4], rp410, s->ours_id,
                s->ours_pid[s->uring_ok]);
}

/* Keys and labels of ours on each path (index: 0 epoll, 1 io_uring). */
static const char *const ours_key[] = {"ours_e", "ours_u"},
                         *const ours_label[] = {"ours/e", "ours/u"},
                         *const full_key[] = {"full_e", "full_u"},
                         *const full_label[] = {"full/e", "full/u"},
                         *const lua_key[] = {"lua_e", "lua_u"},
                         *const lua_label[] = {"lua/e", "lua/u"},
                         *const luafull_key[] = {"lua_full_e", "lua_full_u"},
                         *const luafull_label[] = {"lua full/e", "lua full/u"},
                         *const ref_key[] = {"epoll", "uring"},
                         *const ref_label[] = {"epoll pair", "uring pair"};

/* A pair of the io_uring path the kernel does not give, and why. */
static bool refused(bench_results *r, const servers *s, int u,
                    const char *const *keys, const char *const *labels) {
  if (u == 0 || s->uring_ok) return false;
  bench_pair *p = new_pair(r);
  *p = (bench_pair){.key = keys[u], .label = labels[u], .kind = BENCH_OURS};
  (void)snprintf(p->why, sizeof p->why, "%s", s->uring_why);
  return true;
}

static void make_pairs(bench_results *r, servers *s) {
  for (int u = 0; u < BENCH_PATHS; u++)
    if (!refused(r, s, u, ours_key, ours_label))
      bench_pair_ours(new_pair(r), ours_key[u], ours_label[u], s->ours[u],
                      s->ours_pid[u], false, u, true);
  bench_pair_raw(new_pair(r), s->raw, s->raw_pid, s->req, s->req_len,
                 s->reply_len);
  for (int u = 0; u < BENCH_PATHS; u++)
    if (!refused(r, s, u, ref_key, ref_label))
      bench_pair_ref(new_pair(r), ref_key[u], ref_label[u], s->ref[u],
                     s->ref_pid[u], u ? BENCH_REF_URING : BENCH_REF_EPOLL,
                     s->req, s->req_len, s->reply_len);
  /* the uring client on sockets of socket(2), as ours opens them: the
   * price of that choice (docs/design.md section 4.3) */
  if (!refused(r, s, 1, ref_key, ref_label))
    bench_pair_ref(new_pair(r), "uring_fd", "uring-fd", s->ref[1],
                   s->ref_pid[1], BENCH_REF_URING_FD, s->req, s->req_len,
                   s->reply_len);
  for (int u = 0; u < BENCH_PATHS; u++)
    if (!refused(r, s, u, full_key, full_label))
      bench_pair_ours(new_pair(r), full_key[u], full_label[u], s->ours[u],
                      s->ours_pid[u], true, u, true);
  for (int u = 0; u < BENCH_PATHS; u++) {
    if (refused(r, s, u, lua_key, lua_label)) {
      (void)refused(r, s, u, luafull_key, luafull_label);
      continue;
    }
    bench_lua_setup lua = {.uring = u,
                           .host = s->host,
                           .script_dir = BENCH_LUA_DIR,
                           .path = s->lua[u],
                           .id_file = s->lua_id[u],
                           .responder = s->lua_pid[u]};
    bench_pair_lua(new_pair(r), lua_key[u], lua_label[u], &lua, false);
    bench_pair_lua(new_pair(r), luafull_key[u], luafull_label[u], &lua, true);
  }
  peer_pairs(r, s);
  for (int i = 0; i < r->npairs; i++) {
    const bench_pair *p = &r->pairs[i];
    bool ref = p->kind == BENCH_REF,
         peer = p->kind == BENCH_RP || strncmp(p->key, "ours_rp", 7) == 0;
    bool no_uring = !s->uring_ok && p->key[strlen(p->key) - 1] == 'u';
    if (!p->available && !ref && !peer && !no_uring)
      bench_die("%s does not work: %s", p->label, p->why);
  }
}

/* ---- rounds ----------------------------------------------------------------
 */

/* One round of p in mode: the responder (and, when this process is the
 * prober, this process) on the pinned CPU or on every CPU. */
static void one_round(bench_pair *p, const bench_plan *plan, int mode,
                      int round) {
  cpu_set_t one;
  bench_cpu_only(plan->cpu, &one);
  const cpu_set_t *set = mode == BENCH_PINNED ? &one : &plan->unpinned;
  bench_set_affinity(p->responder, set);
  bool local =
      p->kind == BENCH_OURS || p->kind == BENCH_RAW || p->kind == BENCH_REF;
  bench_set_affinity(0, local ? set : &plan->unpinned);
  if (p->kind == BENCH_LUA) bench_set_affinity(p->prober, set);
  bench_round *out = &p->rounds[mode][round];
  if (p->kind == BENCH_RP)
    bench_round_rp(p, plan, mode, out);
  else if (p->kind == BENCH_LUA)
    bench_round_lua(p, plan, out);
  else
    bench_round_local(p, plan, out);
  out->cpu_both = out->cpu_prober + out->cpu_responder;
}

static void median_of_rounds(bench_pair *p, int rounds) {
  for (int mode = 0; mode < BENCH_MODES; mode++)
    for (int f = 0; f < BENCH_FIGURES; f++) {
      double v[BENCH_MAX_ROUNDS];
      for (int i = 0; i < rounds; i++)
        v[i] = bench_figure_of(&p->rounds[mode][i], f);
      *(double *)((char *)&p->median[mode] + bench_figures[f].off) =
          bench_median(v, rounds);
    }
}

static void run_rounds(bench_results *r) {
  const bench_plan *plan = r->plan;
  for (int round = 0; round < plan->rounds; round++) {
    for (int mode = 0; mode < BENCH_MODES; mode++)
      for (int i = 0; i < r->npairs; i++)
        if (r->pairs[i].available) one_round(&r->pairs[i], plan, mode, round);
    if (isatty(STDERR_FILENO))
      (void)fprintf(stderr, "\r  round %d of %d", round + 1, plan->rounds);
  }
  if (isatty(STDERR_FILENO)) (void)fprintf(stderr, "\n");
  for (int i = 0; i < r->npairs; i++)
    median_of_rounds(&r->pairs[i], plan->rounds);
}

/* ---- many in flight ------------------------------------------------------ */

typedef struct batch_arg {
  bench_batch *b;
  int round;
  const servers *s;
  const bench_results *r;
} batch_arg;

static void batch_round(void *arg) {
  batch_arg *a = arg;
  bench_batch_round(a->b, a->round, a->s->bin_dir, a->r->batch_total,
                    a->r->batch_in_flight, a->s->req_hex, a->s->reply_len);
}

/* The batches: ours (bench_load against bench_responder) on each path and
 * the reference pairs, a round of each in turn, unpinned. */
static void run_batches(bench_results *r, const servers *s) {
  static const char *const keys[] = {"ours_e", "ours_u", "epoll", "uring"};
  static const char *const labels[] = {"ours/e", "ours/u", "epoll pair",
                                       "uring pair"};
  r->batch_total = r->plan->loads[0].total;
  r->batch_in_flight = r->plan->loads[0].in_flight;
  r->nbatches = 4;
  for (int i = 0; i < r->nbatches; i++) {
    bench_batch *b = &r->batches[i];
    int u = i % 2;
    *b = (bench_batch){.key = keys[i],
                       .label = labels[i],
                       .ours = i < 2,
                       .uring = u,
                       .available = true,
                       .responder = i < 2 ? s->ours_pid[u] : s->ref_pid[u],
                       .path = i < 2 ? s->ours[u] : s->ref[u],
                       .id_file = s->ours_idf[u]};
    if (u && !s->uring_ok) {
      b->available = false;
      (void)snprintf(b->why, sizeof b->why, "%s", s->uring_why);
      continue;
    }
    bench_set_affinity(b->responder, &r->plan->unpinned);
  }
  bench_set_affinity(0, &r->plan->unpinned);
  int rounds =
      r->plan->batches < BENCH_MAX_ROUNDS ? r->plan->batches : BENCH_MAX_ROUNDS;
  for (int round = 0; round < rounds; round++)
    for (int i = 0; i < r->nbatches; i++) {
      bench_batch *b = &r->batches[i];
      if (!b->available) continue;
      batch_arg a = {b, round, s, r};
      bench_with_io(b->uring, batch_round, &a);
    }
  for (int i = 0; i < r->nbatches; i++)
    bench_batch_medians(&r->batches[i], rounds);
}

typedef struct load_arg {
  bench_results *r;
  const servers *s;
  int u;
} load_arg;

static void loads_on(void *arg) {
  load_arg *a = arg;
  char load_bin[4096];
  (void)snprintf(load_bin, sizeof load_bin, "%s/bench_load", a->s->bin_dir);
  char ref_bin[4096], reply[32], total[16], in_flight[16];
  (void)snprintf(ref_bin, sizeof ref_bin, "%s/bench_ref_load", a->s->bin_dir);
  (void)snprintf(reply, sizeof reply, "%zu", a->s->reply_len);
  /* on io_uring, also the socket(2) variant: the price of ours opening
   * its sockets itself (docs/design.md section 4.3) */
  static const char *const ref_io[BENCH_PATHS][BENCH_MAX_REFS] = {
      {"epoll", NULL}, {"uring", "uring-fd"}};
  for (int i = 0; i < BENCH_MAX_LOADS; i++) {
    bench_load *l = &a->r->loads[a->u][i];
    *l = (bench_load){.total = a->r->plan->loads[i].total,
                      .in_flight = a->r->plan->loads[i].in_flight,
                      .runs = a->r->plan->loads[i].runs,
                      .nrefs = a->u ? 2 : 1};
    (void)snprintf(total, sizeof total, "%d", l->total);
    (void)snprintf(in_flight, sizeof in_flight, "%d", l->in_flight);
    char *ref[BENCH_MAX_REFS][8];
    char *const *refs[BENCH_MAX_REFS];
    for (int k = 0; k < l->nrefs; k++) {
      l->ref_name[k] = ref_io[a->u][k];
      char *argv[] = {ref_bin,
                      (char *)ref_io[a->u][k],
                      (char *)a->s->ref[a->u],
                      (char *)a->s->req_hex,
                      reply,
                      total,
                      in_flight,
                      NULL};
      memcpy(ref[k], argv, sizeof argv);
      refs[k] = ref[k];
    }
    bench_throughput(load_bin, a->s->ours[a->u], a->s->ours_idf[a->u], refs, l);
  }
}

/* Throughput runs unpinned, in fresh processes, on each path. */
static void run_loads(bench_results *r, const servers *s) {
  bench_set_affinity(0, &r->plan->unpinned);
  for (int u = 0; u < BENCH_PATHS; u++) {
    if (u && !s->uring_ok) {
      for (int i = 0; i < BENCH_MAX_LOADS; i++)
        r->loads[u][i] = (bench_load){.total = r->plan->loads[i].total,
                                      .in_flight = r->plan->loads[i].in_flight,
                                      .wall_s = NAN,
                                      .rate = NAN,
                                      .rss_mib = NAN};
      continue;
    }
    bench_set_affinity(s->ours_pid[u], &r->plan->unpinned);
    bench_set_affinity(s->lua_pid[u], &r->plan->unpinned);
    bench_set_affinity(s->ref_pid[u], &r->plan->unpinned);
    load_arg a = {r, s, u};
    bench_with_io(u, loads_on, &a);
  }
}

static const bench_plan *parse_args(int *argc, char ***argv) {
  const bench_plan *plan = &plans[0];
  if (*argc > 1 && strncmp((*argv)[1], "--", 2) == 0) {
    plan = NULL;
    for (size_t i = 0; i < sizeof plans / sizeof *plans; i++)
      if (strcmp((*argv)[1] + 2, plans[i].name) == 0) plan = &plans[i];
    (*argc)--;
    (*argv)++;
  }
  if (plan == NULL || *argc != 4) {
    (void)fprintf(stderr,
                  "usage: bench_driver [--quick|--smoke] "
                  "BENCH_BIN_DIR HOST_BIN OUT_JSON\n");
    exit(2);
  }
  return plan;
}

int main(int argc, char **argv) {
  static bench_plan plan;
  static bench_results r;
  static servers s;
  plan = *parse_args(&argc, &argv);
  if (signal(SIGPIPE, SIG_IGN) == SIG_ERR) bench_die("signal");
  double t0 = bench_now();
  plan_cpus(&plan);
  r.plan = &plan;
  r.refpeer_dir = getenv("BH_REFPEER_DIR");
  if (r.refpeer_dir != NULL && r.refpeer_dir[0] == '\0') r.refpeer_dir = NULL;
  bench_machine(r.machine, sizeof r.machine);
  bench_loadavg(r.load_start, sizeof r.load_start);
  print_method(&r);
  s.bin_dir = argv[1];
  s.host = argv[2];
  server_paths(&s);
  start_servers(&s);
  make_pairs(&r, &s);
  run_rounds(&r);
  bench_hashes(argv[2], s.dir, plan.hash_reps, &r.hash);
  run_batches(&r, &s);
  run_loads(&r, &s);
  for (int i = 0; i < r.npairs; i++)
    bench_pair_free(&r.pairs[i]);
  stop_servers(&s);
  bench_loadavg(r.load_end, sizeof r.load_end);
  r.seconds = bench_now() - t0;
  bench_report(&r, argv[3]);
  free(s.req);
  return 0;
}
