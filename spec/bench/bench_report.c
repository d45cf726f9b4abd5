/* The report: how it measured, the tables of pairs, the other figures and
 * every target with met / NOT met, printed and written as JSON. */
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "bench.h"

static const bench_pair *find(const bench_results *r, const char *key) {
  for (int i = 0; i < r->npairs; i++)
    if (strcmp(r->pairs[i].key, key) == 0) return &r->pairs[i];
  return NULL;
}

/* The median figure `field` of pair key in mode, NAN when not measured. */
static double fig(const bench_results *r, const char *key, int mode,
                  size_t field) {
  const bench_pair *p = find(r, key);
  if (p == NULL || !p->available) return NAN;
  return *(const double *)((const char *)&p->median[mode] + field);
}

static double row_fig(const bench_results *r, const char *key, int mode,
                      int row) {
  return fig(r, key, mode, bench_figures[row].off);
}

static void cell(double v, bool is_ratio) {
  if (isnan(v) || isinf(v))
    printf(" %11s", "-");
  else if (is_ratio)
    printf(" %10.2fx", v);
  else
    printf(" %11.1f", v);
}

typedef struct ratio {
  const char *num, *den, *header;
} ratio;

static void table_head(const bench_results *r, const char *const *keys,
                       int nkeys, const ratio *ratios, int nratio) {
  printf("  %-27s", "us, median of rounds");
  for (int k = 0; k < nkeys; k++) {
    const bench_pair *p = find(r, keys[k]);
    printf(" %11.11s", p ? p->label : keys[k]);
  }
  for (int k = 0; k < nratio; k++)
    printf(" %11.11s", ratios[k].header);
  printf("\n");
}

/* One table: a column per pair of keys, then a column per ratio. */
static void table(const bench_results *r, const char *const *keys, int nkeys,
                  const ratio *ratios, int nratio) {
  table_head(r, keys, nkeys, ratios, nratio);
  for (int mode = 0; mode < BENCH_MODES; mode++) {
    if (mode == BENCH_PINNED)
      printf("  pinned: prober and responder both on CPU %d\n", r->plan->cpu);
    else
      printf("  unpinned\n");
    for (int row = 0; row < BENCH_FIGURES; row++) {
      printf("    %-25s", bench_figures[row].label);
      for (int k = 0; k < nkeys; k++)
        cell(row_fig(r, keys[k], mode, row), false);
      for (int k = 0; k < nratio; k++)
        cell(row_fig(r, ratios[k].num, mode, row) /
                 row_fig(r, ratios[k].den, mode, row),
             true);
      printf("\n");
    }
  }
}

/* Why a pair has no figures, and how many probes failed in the others. */
static void pair_notes(const bench_results *r) {
  for (int i = 0; i < r->npairs; i++) {
    const bench_pair *p = &r->pairs[i];
    if (!p->available)
      printf("  %s: not measured: %s\n", p->label, p->why);
    else if (p->failed > 0)
      printf("  %s: %d %s failed (left out of the figures)\n", p->label,
             p->failed, p->kind == BENCH_RP ? "client runs" : "probes");
  }
}

static void print_tables(const bench_results *r) {
  static const char *const main_keys[] = {"ours_e", "ours_u", "raw", "epoll",
                                          "uring",  "rp410",  "rp41"};
  static const ratio main_ratio[] = {{"ours_e", "raw", "ours/e:raw"},
                                     {"ours_u", "raw", "ours/u:raw"},
                                     {"ours_e", "epoll", "/e:epoll"},
                                     {"ours_u", "uring", "/u:uring"},
                                     {"ours_u", "rp410", "/u:4.10.6"}};
  static const char *const mixed_keys[] = {
      "full_e", "full_u", "ours_rp410", "ours_rp41", "rp410_ours", "uring_fd"};
  static const ratio mixed_ratio[] = {{"full_e", "ours_e", "full:ours/e"},
                                      {"full_u", "ours_u", "full:ours/u"},
                                      {"uring_fd", "uring", "fd:uring"}};
  static const char *const lua_keys[] = {"lua_e", "lua_u", "lua_full_e",
                                         "lua_full_u", "raw"};
  static const ratio lua_ratio[] = {{"lua_e", "raw", "lua/e:raw"},
                                    {"lua_u", "raw", "lua/u:raw"},
                                    {"lua_e", "epoll", "/e:epoll"},
                                    {"lua_u", "uring", "/u:uring"},
                                    {"lua_u", "rp410", "/u:4.10.6"}};
  printf(
      "\nresponse-only probes, sequential, prober and responder in two "
      "processes\n(/e: ours on epoll, /u: on io_uring; epoll pair, uring "
      "pair: the least a client and\na server do for the same bytes on "
      "each)\n");
  table(r, main_keys, 7, main_ratio, 5);
  printf(
      "\nfull probe (digest cached) and mixed pairs (A>B: A's prober, B's "
      "responder;\nours with the peers on io_uring; uring-fd: the uring pair's "
      "client on sockets\nof socket(2), as ours)\n");
  table(r, mixed_keys, 6, mixed_ratio, 3);
  printf(
      "\nbhprobe-lua scripts, end to end: bh.probe_response (lua) and "
      "bh.probe (lua full)\nof a plain identity table against bh.respond, "
      "each a script in its own process\n");
  table(r, lua_keys, 5, lua_ratio, 5);
  printf(
      "\n  rp 4.10.6, rp 4.1.0, 4.10.6>ours: p50/p90/p99 are per probe as "
      "their own\n  bench prints them (whole us), it gives no max; mean "
      "wall and CPU are\n  measured from outside: (run with -n N) - (run "
      "with -n 1), over N - 1.\n");
  pair_notes(r);
}

static const bench_batch *find_batch(const bench_results *r, const char *key) {
  for (int i = 0; i < r->nbatches; i++)
    if (strcmp(r->batches[i].key, key) == 0 && r->batches[i].available)
      return &r->batches[i];
  return NULL;
}

/* CPU per probe of both processes of a batch, NAN when not measured. */
static double batch_both(const bench_results *r, const char *key) {
  const bench_batch *b = find_batch(r, key);
  return b != NULL ? b->med_both : NAN;
}

static void print_batches(const bench_results *r) {
  printf(
      "\nmany in flight: %d response-only probes, %d in flight, each prober "
      "a fresh\nprocess (medians of %d rounds, the four pairs in turn, "
      "unpinned)\n",
      r->batch_total, r->batch_in_flight, r->plan->batches);
  printf("  %-27s", "us per probe");
  for (int i = 0; i < r->nbatches; i++)
    printf(" %11.11s", r->batches[i].label);
  printf(" %11s %11s\n", "/e:epoll", "/u:epoll");
  static const struct {
    const char *label;
    size_t off;
    double scale;
  } rows[] = {{"CPU, prober", offsetof(bench_batch, med_prober), 1},
              {"CPU, responder", offsetof(bench_batch, med_responder), 1},
              {"CPU, both", offsetof(bench_batch, med_both), 1},
              {"wall per probe", offsetof(bench_batch, med_wall), 0}};
  for (size_t k = 0; k < sizeof rows / sizeof *rows; k++) {
    printf("    %-25s", rows[k].label);
    double v[BENCH_MAX_BATCHES];
    for (int i = 0; i < r->nbatches; i++) {
      const bench_batch *b = &r->batches[i];
      v[i] =
          b->available ? *(const double *)((const char *)b + rows[k].off) : NAN;
      if (rows[k].scale == 0) v[i] = v[i] * 1e6 / r->batch_total;
      cell(v[i], false);
    }
    cell(v[0] / v[2], true);
    cell(v[1] / v[2], true);
    printf("\n");
  }
  for (int i = 0; i < r->nbatches; i++) {
    const bench_batch *b = &r->batches[i];
    if (!b->available)
      printf("  %s: not measured: %s\n", b->label, b->why);
    else if (b->failed > 0)
      printf("  %s: %d probes failed\n", b->label, b->failed);
  }
}

static void print_other(const bench_results *r) {
  const bench_hash *h = &r->hash;
  printf("\nother figures\n");
  printf("  first (uncached) hash of %s (%.2f MiB): %.0f us\n", h->exe_path,
         h->exe_bytes / 1048576.0, h->exe_us);
  printf("  first (uncached) hash of a 64 MiB file: %.1f ms (%.0f MiB/s)\n",
         h->big_ms, 64.0 / (h->big_ms / 1e3));
  printf(
      "    (SHA-256 and BLAKE3 in one pass, medians of %d; the files are in "
      "the page cache:\n    this is the hashing, not the disk)\n",
      r->plan->hash_reps);
  for (int u = 0; u < BENCH_PATHS; u++)
    for (int i = 0; i < BENCH_MAX_LOADS; i++) {
      const bench_load *l = &r->loads[u][i];
      printf(
          "  %s: %d probes, %d in flight: wall %.3f s (%.0f probes/s), peak "
          "RSS %.1f MiB,\n    %d failed%s%s (median of %d runs, each in a "
          "fresh process; its descriptor\n    limit %ld)\n",
          u ? "io_uring" : "epoll", l->total, l->in_flight, l->wall_s, l->rate,
          l->rss_mib, l->failed, l->failed ? ", first: " : "",
          l->failed ? l->first_error : "", l->runs, l->nofile);
      for (int k = 0; k < l->nrefs; k++)
        if (!isnan(l->ref_wall_s[k]))
          printf(
              "    the %s reference pair (no validation, no timers), a run "
              "after each of ours:\n      wall %.3f s, %d failed; ours "
              "%.2fx it\n",
              l->ref_name[k], l->ref_wall_s[k], l->ref_failed[k],
              l->wall_s / l->ref_wall_s[k]);
    }
}

/* A target: value <= limit (met), or not measured (value NAN). */
typedef struct target {
  char name[96];
  double value, limit;
  const char *unit;
  char detail[96]; /* the two figures of a ratio */
  bool failures;   /* some of the measured probes failed: never met */
} target;

/* Add the target value <= limit, in unit. */
static target *add_abs(target *t, int *n, const char *name, double value,
                       double limit, const char *unit) {
  target *x = &t[(*n)++];
  *x = (target){.value = value, .limit = limit, .unit = unit};
  (void)snprintf(x->name, sizeof x->name, "%s", name);
  return x;
}

/* Add the target num / den <= limit. */
static void add(target *t, int *n, const char *name, double num, double den,
                double limit) {
  target *x = add_abs(t, n, name, num / den, limit, "x");
  if (!isnan(num / den))
    (void)snprintf(x->detail, sizeof x->detail, "%.1f / %.1f us", num, den);
}

static void add_load(target *t, int *n, const bench_load *l, bool rss,
                     double limit) {
  char name[96];
  (void)snprintf(name, sizeof name, "core/u: %d probes, %d in flight: %s",
                 l->total, l->in_flight, rss ? "peak RSS" : "wall");
  target *x = add_abs(t, n, name, rss ? l->rss_mib : l->wall_s, limit,
                      rss ? "MiB" : "s");
  x->failures = l->failed > 0;
  if (!rss && l->nrefs > 0 && !isnan(l->ref_wall_s[0]))
    (void)snprintf(x->detail, sizeof x->detail, "the %s pair: %.2f s",
                   l->ref_name[0], l->ref_wall_s[0]);
}

/* The probe targets of one prober on one path: ours (the C core) or lua
 * (scripts), whose full probe is full. cpu_limit: its CPU per probe vs
 * the raw pair's; latency: the latency targets too. */
static void probe_targets(const bench_results *r, target *t, int *n,
                          const char *who, const char *key, const char *full,
                          double cpu_limit, bool latency) {
  const int U = BENCH_UNPINNED, P = BENCH_PINNED;
  const size_t p50 = offsetof(bench_round, p50),
               p99 = offsetof(bench_round, p99);
  double ours50 = fig(r, key, U, p50), ours99 = fig(r, key, U, p99);
  char name[96];
#define NAME(TEXT) (snprintf(name, sizeof name, "%s: %s", who, TEXT), name)
  add(t, n, NAME("CPU per probe, both processes, one CPU, vs raw"),
      row_fig(r, key, P, BENCH_FIGURES - 1),
      row_fig(r, "raw", P, BENCH_FIGURES - 1), cpu_limit);
  if (!latency) return;
  add(t, n, NAME("response-only p50 vs raw pair's p50"), ours50,
      fig(r, "raw", U, p50), 1.25);
  add_abs(t, n, NAME("response-only p99"), ours99, 250, "us");
  add(t, n, NAME("p50 vs rp 4.10.6 pair's p50"), ours50,
      fig(r, "rp410", U, p50), 0.5);
  add(t, n, NAME("p99 vs rp 4.10.6 pair's p99"), ours99,
      fig(r, "rp410", U, p99), 0.05);
  add(t, n, NAME("full probe (cached digest) p50 vs response-only"),
      fig(r, full, U, p50), ours50, 1.3);
#undef NAME
}

/* The targets (docs/bench.md): the Lua pair's CPU on each path, ours at
 * many in flight against the epoll pair, latencies and throughput on
 * io_uring (the path of a kernel that allows it), the C core's CPU. */
static int targets(const bench_results *r, target *t) {
  int n = 0;
  probe_targets(r, t, &n, "lua/u", "lua_u", "lua_full_u", 1.0, true);
  probe_targets(r, t, &n, "lua/e", "lua_e", "lua_full_e", 1.4, false);
  probe_targets(r, t, &n, "core/u", "ours_u", "full_u", 1.5, true);
  probe_targets(r, t, &n, "core/e", "ours_e", "full_e", 1.5, false);
  char name[96];
  (void)snprintf(name, sizeof name,
                 "core/u: %d in flight, CPU per probe vs epoll pair",
                 r->batch_in_flight);
  add(t, &n, name, batch_both(r, "ours_u"), batch_both(r, "epoll"), 0.8);
  add_load(t, &n, &r->loads[1][0], false, 0.2);
  add_load(t, &n, &r->loads[1][0], true, 64);
  add_load(t, &n, &r->loads[1][1], false, 1);
  add_load(t, &n, &r->loads[1][1], true, 128);
  return n;
}

static const char *verdict(const target *t) {
  if (isnan(t->value) || isinf(t->value)) return "not measured";
  if (t->failures) return "NOT met (probes failed)";
  return t->value <= t->limit ? "met" : "NOT met";
}

static void print_targets(const target *t, int n) {
  printf("\ntargets (medians of rounds; latencies unpinned, CPU pinned)\n");
  for (int i = 0; i < n; i++) {
    char value[32] = "-";
    if (!isnan(t[i].value) && !isinf(t[i].value))
      (void)snprintf(value, sizeof value, "%.2f", t[i].value);
    printf("  %-56s %8s %-3s <= %-4g %s%s%s%s\n", t[i].name, value, t[i].unit,
           t[i].limit, verdict(&t[i]), t[i].detail[0] ? " (" : "", t[i].detail,
           t[i].detail[0] ? ")" : "");
  }
}

/* ---- JSON ---------------------------------------------------------------- */

static json_t *num(double v) {
  return isnan(v) || isinf(v) ? json_null() : json_real(v);
}

static json_t *round_json(const bench_round *f) {
  json_t *o = json_object();
  for (int i = 0; i < BENCH_FIGURES; i++)
    (void)json_object_set_new(o, bench_figures[i].json,
                              num(bench_figure_of(f, i)));
  return o;
}

static json_t *mode_json(const bench_pair *p, int mode, int rounds) {
  json_t *m = round_json(&p->median[mode]), *all = json_array();
  for (int i = 0; i < rounds; i++)
    (void)json_array_append_new(all, round_json(&p->rounds[mode][i]));
  (void)json_object_set_new(m, "rounds", all);
  return m;
}

static json_t *pairs_json(const bench_results *r) {
  static const char *const kinds[] = {"ours", "raw", "rp", "lua", "ref"};
  json_t *o = json_object();
  for (int i = 0; i < r->npairs; i++) {
    const bench_pair *p = &r->pairs[i];
    json_t *j = json_pack("{s:s, s:s, s:b, s:i}", "label", p->label, "prober",
                          kinds[p->kind], "available", p->available, "failed",
                          p->failed);
    if (!p->available)
      (void)json_object_set_new(j, "why", json_string(p->why));
    else
      for (int mode = 0; mode < BENCH_MODES; mode++)
        (void)json_object_set_new(j,
                                  mode == BENCH_PINNED ? "pinned" : "unpinned",
                                  mode_json(p, mode, r->plan->rounds));
    (void)json_object_set_new(o, p->key, j);
  }
  return o;
}

static json_t *others_json(const bench_results *r, const target *t, int nt) {
  json_t *loads = json_array(), *ts = json_array(), *batches = json_object();
  for (int u = 0; u < BENCH_PATHS; u++)
    for (int i = 0; i < BENCH_MAX_LOADS; i++) {
      const bench_load *l = &r->loads[u][i];
      json_t *refs = json_array();
      for (int k = 0; k < l->nrefs; k++)
        (void)json_array_append_new(
            refs,
            json_pack("{s:s, s:o, s:i}", "client", l->ref_name[k], "wall_s",
                      num(l->ref_wall_s[k]), "failed", l->ref_failed[k]));
      (void)json_array_append_new(
          loads,
          json_pack("{s:s, s:i, s:i, s:i, s:o, s:o, s:o, s:i, s:s, s:I, s:o}",
                    "io", u ? "uring" : "epoll", "probes", l->total,
                    "in_flight", l->in_flight, "runs", l->runs, "wall_s",
                    num(l->wall_s), "probes_per_s", num(l->rate),
                    "peak_rss_mib", num(l->rss_mib), "failed", l->failed,
                    "first_error", l->first_error, "nofile_limit",
                    (json_int_t)l->nofile, "reference_pairs", refs));
    }
  for (int i = 0; i < r->nbatches; i++) {
    const bench_batch *b = &r->batches[i];
    json_t *rounds = json_array();
    for (int k = 0; k < r->plan->batches && k < BENCH_MAX_ROUNDS; k++)
      (void)json_array_append_new(
          rounds,
          json_pack("{s:o, s:o, s:o}", "cpu_prober_us", num(b->prober[k]),
                    "cpu_responder_us", num(b->responder_cpu[k]), "wall_s",
                    num(b->wall[k])));
    (void)json_object_set_new(
        batches, b->key,
        json_pack("{s:s, s:b, s:i, s:o, s:o, s:o, s:o, s:o}", "label", b->label,
                  "available", b->available, "failed", b->failed,
                  "cpu_prober_us", num(b->med_prober), "cpu_responder_us",
                  num(b->med_responder), "cpu_both_us", num(b->med_both),
                  "wall_s", num(b->med_wall), "rounds", rounds));
  }
  for (int i = 0; i < nt; i++) {
    const char *v = verdict(&t[i]);
    (void)json_array_append_new(
        ts, json_pack("{s:s, s:o, s:f, s:s, s:o}", "name", t[i].name, "value",
                      num(t[i].value), "limit", t[i].limit, "unit", t[i].unit,
                      "met",
                      strcmp(v, "not measured") == 0
                          ? json_null()
                          : json_boolean(strcmp(v, "met") == 0)));
  }
  const bench_hash *h = &r->hash;
  return json_pack("{s:{s:s, s:f, s:o, s:o}, s:o, s:{s:i, s:i, s:o}, s:o}",
                   "hash", "exe_path", h->exe_path, "exe_bytes", h->exe_bytes,
                   "exe_first_us", num(h->exe_us), "file_64mib_first_ms",
                   num(h->big_ms), "throughput", loads, "many_in_flight",
                   "probes", r->batch_total, "in_flight", r->batch_in_flight,
                   "pairs", batches, "targets", ts);
}

static void write_json(const bench_results *r, const target *t, int nt,
                       const char *path) {
  const bench_plan *pl = r->plan;
  json_t *j = json_pack(
      "{s:{s:s, s:i, s:i, s:i, s:i, s:s}, s:s, s:s, s:s, s:o, s:f, s:o}",
      "plan", "name", pl->name, "rounds", pl->rounds, "probes_per_round",
      pl->probes, "warmup_per_round", pl->warmup, "pinned_cpu", pl->cpu,
      "order",
      "one round of every pair unpinned, then one of every pair pinned; "
      "that, rounds times",
      "machine", r->machine, "loadavg_start", r->load_start, "loadavg_end",
      r->load_end, "refpeer_dir",
      r->refpeer_dir ? json_string(r->refpeer_dir) : json_null(), "seconds",
      r->seconds, "pairs", pairs_json(r));
  json_t *o = others_json(r, t, nt);
  if (j == NULL || o == NULL || json_object_update(j, o) != 0 ||
      json_dump_file(j, path, JSON_INDENT(2)) != 0)
    bench_die("cannot write %s", path);
  json_decref(o);
  json_decref(j);
}

void bench_report(const bench_results *r, const char *json_path) {
  target t[32];
  int nt = targets(r, t);
  print_tables(r);
  print_batches(r);
  print_other(r);
  print_targets(t, nt);
  write_json(r, t, nt, json_path);
  printf("\nload average at the end: %s; figures written to %s (%.0f s)\n",
         r->load_end, json_path, r->seconds);
}
