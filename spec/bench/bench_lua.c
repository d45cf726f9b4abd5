/* Pairs of bhprobe-lua scripts, the product as operators run it: a
 * prober process running spec/bench/lua_prober.lua (bh.probe_response,
 * or bh.probe for the full pair) against a responder process running
 * spec/bench/lua_responder.lua (bh.respond). The driver commands the
 * prober through a pipe, one round at a time ("warm N", then "run N"),
 * and measures the prober's and the responder's CPU clocks around the
 * timed half; the latencies are the script's own (bh.now before and
 * after each call), so the figures include everything Lua adds. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench.h"

/* Start HOST lua_prober.lua PATH ID_FILE [full] with pipes both ways. */
static void spawn_prober(bench_pair *p, const char *host, const char *script,
                         const char *path, const char *id_file, bool full,
                         bool uring) {
  int in[2], out[2];
  if (pipe(in) < 0 || pipe(out) < 0) bench_die("pipe: %s", strerror(errno));
  pid_t parent = getpid(), pid = fork();
  if (pid < 0) bench_die("fork: %s", strerror(errno));
  if (pid == 0) {
    bench_die_with_parent(parent);
    if (dup2(in[0], STDIN_FILENO) < 0 || dup2(out[1], STDOUT_FILENO) < 0 ||
        setenv("BH_IO", bench_io_name(uring), 1) != 0)
      _exit(127);
    (void)close(in[0]);
    (void)close(in[1]);
    (void)close(out[0]);
    (void)close(out[1]);
    execl(host, host, script, path, id_file, full ? "full" : (char *)NULL,
          (char *)NULL);
    _exit(127);
  }
  (void)close(in[0]);
  (void)close(out[1]);
  p->prober = pid;
  p->to = fdopen(in[1], "w");
  p->from = fdopen(out[0], "r");
  if (p->to == NULL || p->from == NULL) bench_die("fdopen");
}

/* Send one command; its answer line goes to line (NUL-terminated). False
 * when the prober died or answered nothing. */
static bool command(bench_pair *p, const char *cmd, int n, char *line,
                    size_t cap) {
  if (fprintf(p->to, "%s %d\n", cmd, n) < 0 || fflush(p->to) != 0) return false;
  return fgets(line, (int)cap, p->from) != NULL;
}

void bench_pair_lua(bench_pair *p, const char *key, const char *label,
                    const bench_lua_setup *s, bool full) {
  *p = (bench_pair){.key = key,
                    .label = label,
                    .kind = BENCH_LUA,
                    .responder = s->responder,
                    .prober = -1};
  char script[4200], line[64];
  (void)snprintf(script, sizeof script, "%s/lua_prober.lua", s->script_dir);
  spawn_prober(p, s->host, script, s->path, s->id_file, full, s->uring);
  if (!command(p, "warm", 1, line, sizeof line))
    (void)snprintf(p->why, sizeof p->why, "%.200s %.200s did not answer",
                   s->host, script);
  else if (strtol(line, NULL, 10) != 0)
    (void)snprintf(p->why, sizeof p->why, "its first probe failed");
  else
    p->available = true;
}

/* A round: plan->warmup unmeasured probes, then plan->probes timed ones
 * with both processes' CPU clocks read around them. */
void bench_round_lua(bench_pair *p, const bench_plan *plan, bench_round *out) {
  static char line[BENCH_MAX_PROBES * 16 + 64];
  static double lat[BENCH_MAX_PROBES];
  *out = (bench_round){NAN, NAN, NAN, NAN, NAN, NAN, NAN, NAN};
  if (!command(p, "warm", plan->warmup, line, sizeof line)) {
    p->failed += plan->probes;
    return;
  }
  double cpu0 = bench_cpu_of(p->prober), rcpu0 = bench_cpu_of(p->responder);
  double t0 = bench_now();
  bool ok = command(p, "run", plan->probes, line, sizeof line);
  double wall = bench_now() - t0;
  double cpu = bench_cpu_of(p->prober) - cpu0;
  double rcpu = bench_cpu_of(p->responder) - rcpu0;
  if (!ok) {
    p->failed += plan->probes;
    return;
  }
  char *s = line, *end;
  p->failed += (int)strtol(s, &end, 10);
  int n = 0;
  for (s = end; n < plan->probes; s = end) {
    double v = strtod(s, &end);
    if (end == s) break;
    lat[n++] = v;
  }
  bench_round_figures(out, plan->probes, wall, cpu, rcpu, lat, n);
}

void bench_pair_lua_free(bench_pair *p) {
  if (p->to != NULL) (void)fclose(p->to); /* EOF: the script ends */
  p->to = NULL;
  if (p->from != NULL) (void)fclose(p->from);
  p->from = NULL;
  bench_stop(p->prober);
  p->prober = -1;
}
