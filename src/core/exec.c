/* Running a command on the loop (see exec.h): posix_spawnp into a new
 * process group, output pipes and a pidfd (or, without one, a polling
 * timer) watched by libevent, a timer that SIGKILLs the group. */
#include "exec.h"

#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "clock.h"
#include "loop.h"
#include "procfs.h"

extern char **environ;

enum {
  READ_CHUNK = 64 * 1024,
  DRAIN_READS_MAX = 64,
  POLL_FIRST_USEC = 1000, /* without a pidfd: first waitpid after 1 ms, */
  POLL_MAX_USEC = 50000,  /* then doubling up to every 50 ms */
};

typedef struct exec_pipe {
  int fd; /* read end, -1 once at EOF */
  struct event *ev;
  bh_exec_stream s;
  size_t cap;
} exec_pipe;

struct bh_exec {
  struct event_base *base;
  pid_t pid;
  int pidfd;      /* -1: exit_ev is the polling timer */
  long poll_usec; /* its next interval */
  bool reaped;
  size_t max_output;
  double started;
  double deadline; /* bh_mono_now of the timeout */
  exec_pipe pipes[2];
  struct event *exit_ev;
  struct event *timer;
  bh_exec_result res;
  bh_exec_cb cb;
  void *ctx;
};

/* ---- environment ------------------------------------------------------- */

static size_t name_len(const char *entry) {
  const char *eq = strchr(entry, '=');
  return eq ? (size_t)(eq - entry) : strlen(entry);
}

/* Is the inherited entry overridden or removed by one of changes? */
static bool env_replaced(const char *entry, const char *const *changes) {
  size_t n = name_len(entry);
  for (size_t i = 0; changes[i] != NULL; i++)
    if (name_len(changes[i]) == n && strncmp(entry, changes[i], n) == 0)
      return true;
  return false;
}

/* The child's environment: ours minus what changes names, plus every
 * change that sets a value. The strings are borrowed; only the array is
 * malloc'd. */
static char **build_env(const char *const *changes) {
  size_t ours = 0, extra = 0;
  while (environ[ours] != NULL)
    ours++;
  while (changes[extra] != NULL)
    extra++;
  char **env = calloc(ours + extra + 1, sizeof *env);
  if (env == NULL) return NULL;
  size_t k = 0;
  for (size_t i = 0; i < ours; i++)
    if (!env_replaced(environ[i], changes)) env[k++] = environ[i];
  for (size_t i = 0; i < extra; i++)
    if (strchr(changes[i], '=') != NULL) env[k++] = (char *)changes[i];
  env[k] = NULL;
  return env;
}

/* ---- spawning ---------------------------------------------------------- */

/* Spawn argv with stdout/stderr on the write ends w[0], w[1], stdin on
 * /dev/null, in a new process group, every signal back to default (the
 * host ignores SIGPIPE; a child must not inherit that). */
static int spawn_child(const bh_exec_opts *opts, const int w[2], pid_t *pid) {
  posix_spawn_file_actions_t fa;
  posix_spawnattr_t attr;
  sigset_t all, none;
  char **env = NULL;
  int rc = posix_spawn_file_actions_init(&fa);
  if (rc != 0) return rc;
  rc = posix_spawnattr_init(&attr);
  if (rc != 0) {
    posix_spawn_file_actions_destroy(&fa);
    return rc;
  }
  sigfillset(&all);
  sigemptyset(&none);
  if ((rc = posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY,
                                             0)) != 0 ||
      (rc = posix_spawn_file_actions_adddup2(&fa, w[0], 1)) != 0 ||
      (rc = posix_spawn_file_actions_adddup2(&fa, w[1], 2)) != 0 ||
      (rc = posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP |
                                                POSIX_SPAWN_SETSIGDEF |
                                                POSIX_SPAWN_SETSIGMASK)) != 0 ||
      (rc = posix_spawnattr_setpgroup(&attr, 0)) != 0 ||
      (rc = posix_spawnattr_setsigdefault(&attr, &all)) != 0 ||
      (rc = posix_spawnattr_setsigmask(&attr, &none)) != 0)
    goto end;
  if (opts->env != NULL && (env = build_env(opts->env)) == NULL) {
    rc = ENOMEM;
    goto end;
  }
  rc = posix_spawnp(pid, opts->argv[0], &fa, &attr, (char *const *)opts->argv,
                    env ? env : environ);
end:
  free(env);
  posix_spawnattr_destroy(&attr);
  posix_spawn_file_actions_destroy(&fa);
  return rc;
}

/* ---- output ------------------------------------------------------------ */

/* Keep up to max_output bytes of what came; count the rest as dropped. */
static bool stream_append(exec_pipe *p, size_t max, const char *buf, size_t n) {
  size_t room = max - p->s.len;
  if (n > room) {
    p->s.truncated = true;
    n = room;
  }
  if (n == 0) return true;
  if (p->s.len + n + 1 > p->cap) {
    size_t cap = p->cap ? p->cap : 4096;
    while (cap < p->s.len + n + 1)
      cap *= 2;
    if (cap > max + 1) cap = max + 1;
    char *grown = realloc(p->s.data, cap);
    if (grown == NULL) return false;
    p->s.data = grown;
    p->cap = cap;
  }
  memcpy(p->s.data + p->s.len, buf, n);
  p->s.len += n;
  p->s.data[p->s.len] = '\0';
  return true;
}

static void pipe_close(exec_pipe *p) {
  if (p->ev != NULL) {
    event_free(p->ev);
    p->ev = NULL;
  }
  if (p->fd >= 0) {
    close(p->fd);
    p->fd = -1;
  }
}

/* One read from the pipe. Returns false when the pipe is finished (EOF,
 * error, or out of memory: then the stream is marked truncated) and has
 * been closed; true when it may have more. *again is false on EAGAIN. */
static bool pipe_read_once(exec_pipe *p, size_t max, bool *again) {
  char buf[READ_CHUNK];
  *again = true;
  ssize_t n = read(p->fd, buf, sizeof buf);
  if (n < 0 && errno == EINTR) return true;
  if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
    *again = false;
    return true;
  }
  if (n > 0 && stream_append(p, max, buf, (size_t)n)) return true;
  if (n > 0) p->s.truncated = true; /* out of memory: keep what we have */
  pipe_close(p);
  return false;
}

static void on_pipe(evutil_socket_t fd, short what, void *arg) {
  bh_exec *e = arg;
  exec_pipe *p = e->pipes[0].fd == fd ? &e->pipes[0] : &e->pipes[1];
  bool again;
  pipe_read_once(p, e->max_output, &again);
}

/* After the exit: take what is already in the pipes, without waiting for
 * EOF (a leftover group member may hold the write end open forever). */
static void drain(bh_exec *e) {
  for (int i = 0; i < 2; i++) {
    exec_pipe *p = &e->pipes[i];
    bool again = true;
    for (int k = 0; k < DRAIN_READS_MAX && p->fd >= 0 && again; k++)
      pipe_read_once(p, e->max_output, &again);
    pipe_close(p);
  }
}

/* ---- lifecycle --------------------------------------------------------- */

static void exec_free(bh_exec *e) {
  for (int i = 0; i < 2; i++) {
    pipe_close(&e->pipes[i]);
    free(e->pipes[i].s.data);
  }
  if (e->exit_ev) event_free(e->exit_ev);
  if (e->timer) event_free(e->timer);
  if (e->pidfd >= 0) close(e->pidfd);
  free(e);
}

/* Fill the result from the wait status, hand it to the callback, free. */
static void complete(bh_exec *e, int wstatus) {
  bh_exec_result *r = &e->res;
  r->pid = e->pid;
  r->elapsed = bh_mono_now() - e->started;
  r->status = WIFEXITED(wstatus) ? WEXITSTATUS(wstatus) : -1;
  r->signal = WIFSIGNALED(wstatus) ? WTERMSIG(wstatus) : 0;
  drain(e);
  for (int i = 0; i < 2; i++) {
    exec_pipe *p = &e->pipes[i];
    if (p->s.data == NULL) p->s.data = calloc(1, 1);
    r->out[i] = p->s;
    p->s.data = NULL; /* the result owns it for the callback */
  }
  e->cb(r, e->ctx);
  for (int i = 0; i < 2; i++)
    free(r->out[i].data);
  exec_free(e);
}

/* Wait for the exit again: the pidfd, or the polling timer, backing off
 * from POLL_FIRST_USEC to POLL_MAX_USEC. */
static int exit_watch(bh_exec *e) {
  if (e->pidfd >= 0) return event_add(e->exit_ev, NULL);
  struct timeval tv = {0, e->poll_usec};
  if (e->poll_usec < POLL_MAX_USEC)
    e->poll_usec =
        e->poll_usec * 2 < POLL_MAX_USEC ? e->poll_usec * 2 : POLL_MAX_USEC;
  return evtimer_add(e->exit_ev, &tv);
}

/* The pidfd turned readable (the child has exited), or the polling timer
 * fired (it may have): reap it if so. */
static void on_exit_ready(evutil_socket_t fd, short what, void *arg) {
  bh_exec *e = arg;
  int wstatus = 0;
  pid_t got;
  do {
    got = waitpid(e->pid, &wstatus, WNOHANG);
  } while (got < 0 && errno == EINTR);
  if (got == 0) {
    (void)exit_watch(e); /* not yet: wait again (cannot fail once added) */
    return;
  }
  e->reaped = true;
  if (got < 0) wstatus = 0; /* reaped elsewhere: nothing better to say */
  complete(e, wstatus);
}

/* The leader is not reaped before the exit event runs, so its pid is
 * still reserved and -pid names only our group. */
static void on_timeout(evutil_socket_t fd, short what, void *arg) {
  bh_exec *e = arg;
  if (!bh_timer_due(e->timer, e->deadline)) return; /* early: loop.h */
  e->res.timed_out = true;
  if (kill(-e->pid, SIGKILL) != 0) kill(e->pid, SIGKILL);
}

/* Pipes with the read end non-blocking for us and the write end plain
 * for the child (a child must never see EAGAIN on its stdout). */
static int make_pipe(int fds[2]) {
  if (pipe2(fds, O_CLOEXEC) != 0) return errno;
  int fl = fcntl(fds[0], F_GETFL);
  if (fl < 0 || fcntl(fds[0], F_SETFL, fl | O_NONBLOCK) != 0) {
    int saved = errno;
    close(fds[0]);
    close(fds[1]);
    return saved;
  }
  return 0;
}

/* Register the pipe, pidfd and timer events. */
static bool arm_events(bh_exec *e, double timeout) {
  for (int i = 0; i < 2; i++) {
    e->pipes[i].ev =
        event_new(e->base, e->pipes[i].fd, EV_READ | EV_PERSIST, on_pipe, e);
    if (e->pipes[i].ev == NULL || event_add(e->pipes[i].ev, NULL) != 0)
      return false;
  }
  e->exit_ev = e->pidfd >= 0
                   ? event_new(e->base, e->pidfd, EV_READ, on_exit_ready, e)
                   : evtimer_new(e->base, on_exit_ready, e);
  e->poll_usec = POLL_FIRST_USEC;
  if (e->exit_ev == NULL || exit_watch(e) != 0) return false;
  /* NaN, <= 0 and beyond BH_EXEC_MAX_TIMEOUT (+inf too) arm nothing. */
  if (timeout > 0 && timeout <= BH_EXEC_MAX_TIMEOUT) {
    struct timeval tv = bh_timeval(timeout);
    e->deadline = bh_mono_now() + timeout;
    e->timer = evtimer_new(e->base, on_timeout, e);
    if (e->timer == NULL || evtimer_add(e->timer, &tv) != 0) return false;
  }
  return true;
}

bh_exec *bh_exec_start(struct event_base *base, const bh_exec_opts *opts,
                       bh_exec_cb cb, void *ctx, bh_err *err) {
  int out[2] = {-1, -1}, errp[2] = {-1, -1}, rc;
  const char *prog = opts->argv && opts->argv[0] ? opts->argv[0] : "";
  bh_exec *e = calloc(1, sizeof *e);
  if (e == NULL) {
    bh_err_set(err, BH_SYSTEM, NULL, "exec %s: out of memory", prog);
    return NULL;
  }
  e->base = base;
  e->pidfd = -1;
  e->pipes[0].fd = e->pipes[1].fd = -1;
  e->max_output =
      opts->max_output ? opts->max_output : BH_EXEC_DEFAULT_MAX_OUTPUT;
  e->cb = cb;
  e->ctx = ctx;
  e->started = bh_mono_now();
  if (prog[0] == '\0') {
    bh_err_set(err, BH_SYSTEM, NULL, "exec: expected a program name, got %s",
               opts->argv ? "an empty one" : "no argv");
    goto fail;
  }
  if ((rc = make_pipe(out)) != 0 || (rc = make_pipe(errp)) != 0) {
    bh_err_set(err, BH_SYSTEM, NULL, "exec %s: pipe: %s", prog, strerror(rc));
    goto fail;
  }
  e->pipes[0].fd = out[0];
  e->pipes[1].fd = errp[0];
  rc = spawn_child(opts, (int[2]){out[1], errp[1]}, &e->pid);
  close(out[1]);
  close(errp[1]);
  out[1] = errp[1] = -1;
  if (rc != 0) {
    e->pid = 0;
    bh_err_set(err, BH_SYSTEM, NULL, "exec %s: %s", prog, strerror(rc));
    goto fail;
  }
  /* No pidfd (ENOSYS, or EPERM from seccomp): arm_events polls. */
  e->pidfd = bh_pidfd_open((uint32_t)e->pid);
  if (!arm_events(e, opts->timeout)) {
    bh_err_set(err, BH_SYSTEM, NULL, "exec %s: cannot register events", prog);
    goto fail;
  }
  return e;
fail:
  if (out[0] >= 0 && e->pipes[0].fd < 0) close(out[0]);
  if (errp[0] >= 0 && e->pipes[1].fd < 0) close(errp[0]);
  if (out[1] >= 0) close(out[1]);
  if (errp[1] >= 0) close(errp[1]);
  if (e->pid > 0) {
    bh_exec_cancel(e);
    return NULL;
  }
  exec_free(e);
  return NULL;
}

void bh_exec_cancel(bh_exec *e) {
  if (e == NULL) return;
  if (!e->reaped && e->pid > 0) {
    if (kill(-e->pid, SIGKILL) != 0) kill(e->pid, SIGKILL);
    while (waitpid(e->pid, NULL, 0) < 0 && errno == EINTR) {
    }
  }
  exec_free(e);
}

pid_t bh_exec_pid(const bh_exec *e) {
  return e->pid;
}
