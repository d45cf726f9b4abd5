/* The benchmark driver (run by scripts/bench; never a timed test).
 *
 * Pairs of a prober and a responder process, each measured in rounds of
 * a few hundred sequential probes; the rounds of all pairs alternate
 * (pair after pair, pinned then unpinned, again and again), so that a
 * change in the load of a shared machine hits every pair alike, and no
 * pair pays for another's wake-ups inside its round (alternating probe by
 * probe would). Each figure is the median of its per-round figures.
 *  - ours: bh_probe_start, response-only, against bench_responder;
 *  - raw: a blocking client loop against bench_raw_server's blocking loop,
 *    the same bytes (the floor);
 *  - full: our full probe (pid verified, digest cached), same responder;
 *  - lua, lua full: the same two as bhprobe-lua scripts (bh.probe_response,
 *    bh.probe) against a script's bh.respond, the product end to end;
 *  - with BH_REFPEER_DIR (rp41, rplatest): their bench client against
 *    their respond, our prober against their responders, and rplatest's
 *    client against our responder.
 * Then the first hash of our executable and of a 64 MiB file, and
 * throughput in fresh bench_load processes. Prints the table and every
 * target with met / NOT met, and writes the same figures as JSON.
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
#include "probe.h"
#include "wire.h"

#define PLAN(NAME, ROUNDS, PROBES, WARMUP, HASHES, L1, F1, R1, L2, F2, R2) \
  {                                                                        \
    .name = (NAME), .rounds = (ROUNDS), .probes = (PROBES),                \
    .warmup = (WARMUP), .hash_reps = (HASHES), .loads = {                  \
      {(L1), (F1), (R1)},                                                  \
      {(L2), (F2), (R2)}                                                   \
    }                                                                      \
  }
static const bench_plan plans[] = {
    PLAN("full", 20, 300, 50, 5, 10000, 1000, 5, 100000, 5000, 3),
    PLAN("quick", 4, 100, 20, 3, 10000, 1000, 1, 100000, 5000, 1),
    /* only that the tool works (a ctest runs it): figures mean nothing */
    PLAN("smoke", 3, 10, 2, 1, 200, 20, 1, 1000, 100, 1),
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
      "responder,\n  wait4 for a peer's client\n");
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
  char dir[80], ours[112], raw[112], rp410[112], rp41[112], lua[112];
  char ours_id[112], rp410_id[112], rp41_id[112], lua_id[112];
  pid_t ours_pid, raw_pid, rp410_pid, rp41_pid, lua_pid;
  uint8_t *req;
  size_t req_len, reply_len;
} servers;

/* A fresh directory under $TMPDIR (default /tmp) for the sockets and
 * identity files; it must leave room for them in sun_path. */
static void server_paths(servers *s) {
  const char *tmp = getenv("TMPDIR");
  if (tmp == NULL || tmp[0] == '\0') tmp = "/tmp";
  if (strlen(tmp) > 60) bench_die("TMPDIR is too long for socket paths");
  (void)snprintf(s->dir, sizeof s->dir, "%s/bhb.XXXXXX", tmp);
  if (mkdtemp(s->dir) == NULL) bench_die("mkdtemp: %s", strerror(errno));
  (void)snprintf(s->ours, sizeof s->ours, "%s/ours.sock", s->dir);
  (void)snprintf(s->raw, sizeof s->raw, "%s/raw.sock", s->dir);
  (void)snprintf(s->rp410, sizeof s->rp410, "%s/rp410.sock", s->dir);
  (void)snprintf(s->rp41, sizeof s->rp41, "%s/rp41.sock", s->dir);
  (void)snprintf(s->ours_id, sizeof s->ours_id, "%s/ours.json", s->dir);
  (void)snprintf(s->rp410_id, sizeof s->rp410_id, "%s/rp410.json", s->dir);
  (void)snprintf(s->rp41_id, sizeof s->rp41_id, "%s/rp41.json", s->dir);
  (void)snprintf(s->lua, sizeof s->lua, "%s/lua.sock", s->dir);
  (void)snprintf(s->lua_id, sizeof s->lua_id, "%s/lua.json", s->dir);
}

/* Our responder (room for the largest batch in flight) and the raw
 * server, which answers with as many bytes as ours does. */
static void start_ours(servers *s, const char *bin_dir) {
  char resp[4096], raw[4096], size[32];
  (void)snprintf(resp, sizeof resp, "%s/bench_responder", bin_dir);
  (void)snprintf(raw, sizeof raw, "%s/bench_raw_server", bin_dir);
  s->ours_pid =
      bench_spawn_ready((char *const[]){resp, s->ours, "16384", NULL});
  uint8_t nonce[BH_NONCE_LEN] = {7};
  if (bh_probe_request_build(nonce, &s->req, &s->req_len, NULL) != BH_OK)
    bench_die("cannot build a request");
  s->reply_len = bench_raw_reply_size(s->ours, s->req, s->req_len);
  (void)snprintf(size, sizeof size, "%zu", s->reply_len);
  s->raw_pid = bench_spawn_ready((char *const[]){raw, s->raw, size, NULL});
}

/* The responder script, run by the host binary. */
static void start_lua(servers *s, const char *host) {
  char script[4200];
  (void)snprintf(script, sizeof script, "%s/lua_responder.lua", BENCH_LUA_DIR);
  s->lua_pid = bench_spawn_ready(
      (char *const[]){(char *)host, script, s->lua, s->lua_id, NULL});
}

/* The identity file of our responder, for a peer's client. */
static void write_ours_id(const servers *s) {
  bh_endpoint ep = {0};
  bh_identity id;
  bh_err err;
  bh_identity_init(&id);
  if (bh_endpoint_set(&ep, "bench", s->ours, &err) != BH_OK ||
      bh_identity_of_pid((uint32_t)s->ours_pid, &ep, &id, &err) != BH_OK)
    bench_die("identity of our responder: %s", err.message);
  char *json = bh_identity_to_json(&id);
  FILE *f = fopen(s->ours_id, "w");
  if (json == NULL || f == NULL || fputs(json, f) < 0 || fclose(f) != 0)
    bench_die("cannot write %s", s->ours_id);
  free(json);
  bh_identity_clear(&id);
  bh_endpoint_clear(&ep);
}

static void stop_servers(servers *s) {
  bench_stop(s->ours_pid);
  bench_stop(s->raw_pid);
  bench_stop(s->rp410_pid);
  bench_stop(s->rp41_pid);
  bench_stop(s->lua_pid);
  const char *files[] = {s->ours,    s->raw,     s->rp410,
                         s->rp41,    s->ours_id, s->rp410_id,
                         s->rp41_id, s->lua,     s->lua_id};
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
                  false);
  bench_pair_ours(new_pair(r), keys[3], labels[3], s->rp41, s->rp41_pid, false);
  write_ours_id(s);
  bench_pair_rp(new_pair(r), keys[4], labels[4], rp410, s->ours_id,
                s->ours_pid);
}

static void make_pairs(bench_results *r, servers *s, const char *host) {
  bench_pair_ours(new_pair(r), "ours", "ours", s->ours, s->ours_pid, false);
  bench_pair_raw(new_pair(r), s->raw, s->raw_pid, s->req, s->req_len,
                 s->reply_len);
  bench_pair_ours(new_pair(r), "full", "ours full", s->ours, s->ours_pid, true);
  bench_lua_setup lua = {.host = host,
                         .script_dir = BENCH_LUA_DIR,
                         .path = s->lua,
                         .id_file = s->lua_id,
                         .responder = s->lua_pid};
  bench_pair_lua(new_pair(r), "lua", "lua", &lua, false);
  bench_pair_lua(new_pair(r), "lua_full", "lua full", &lua, true);
  peer_pairs(r, s);
  for (int i = 0; i < 5; i++)
    if (!r->pairs[i].available)
      bench_die("%s does not work: %s", r->pairs[i].label, r->pairs[i].why);
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
  bool local = p->kind == BENCH_OURS || p->kind == BENCH_RAW;
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

/* Throughput runs unpinned, in fresh processes. */
static void run_loads(bench_results *r, const servers *s, const char *bin_dir) {
  char load_bin[4096];
  (void)snprintf(load_bin, sizeof load_bin, "%s/bench_load", bin_dir);
  bench_set_affinity(0, &r->plan->unpinned);
  bench_set_affinity(s->ours_pid, &r->plan->unpinned);
  bench_set_affinity(s->lua_pid, &r->plan->unpinned);
  for (int i = 0; i < BENCH_MAX_LOADS; i++) {
    bench_load *l = &r->loads[i];
    *l = (bench_load){.total = r->plan->loads[i].total,
                      .in_flight = r->plan->loads[i].in_flight,
                      .runs = r->plan->loads[i].runs};
    bench_throughput(load_bin, s->ours, l);
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
  server_paths(&s);
  start_ours(&s, argv[1]);
  start_lua(&s, argv[2]);
  make_pairs(&r, &s, argv[2]);
  run_rounds(&r);
  bench_hashes(argv[2], s.dir, plan.hash_reps, &r.hash);
  run_loads(&r, &s, argv[1]);
  for (int i = 0; i < r.npairs; i++)
    bench_pair_free(&r.pairs[i]);
  stop_servers(&s);
  bench_loadavg(r.load_end, sizeof r.load_end);
  r.seconds = bench_now() - t0;
  bench_report(&r, argv[3]);
  free(s.req);
  return 0;
}
