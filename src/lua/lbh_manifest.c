/* bh.manifest (design §1.10, §2) over the C core in manifest.h: read,
 * write, find, clear_daemon, the central registry, host checks. A
 * manifest is a plain table holding every field of the CacheManifest
 * schema (lbh_pbtable.h), with current_daemon as an identity table.
 * Errors reading a record carry stage "manifest" whatever the code
 * (missing_endpoint in a manifest is a bad record, not a bad probe
 * response). */
#include <errno.h>
#include <fcntl.h>
#include <lauxlib.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "host.h"
#include "lbh_args.h"
#include "lbh_class.h"
#include "lbh_err.h"
#include "lbh_identity.h"
#include "lbh_open.h"
#include "lbh_pbtable.h"
#include "lbh_task.h"
#include "manifest.h"
#include "manifest.pb-c.h"
#include "pbutil.h"
#include "users.h"
#include "worker.h"

#define MANIFEST_DESC (&running_process__broker__v1__cache_manifest__descriptor)

static const char *const daemon_field[] = {"current_daemon", NULL};
static const lbh_pb_special special = {daemon_field};

/* Push the table form of m. */
static void push_manifest(lua_State *L, const bh_manifest *m) {
  lbh_push_pb(L, &m->pb->base, &special);
  if (bh_manifest_generation(m) != 0) {
    lbh_push_identity(L, &m->daemon);
    lua_setfield(L, -2, "current_daemon");
  }
}

/* A manifest kept in a userdata while Lua code that may raise runs. */
#define MBOX_MT "bh.manifest_box"

static int mbox_gc(lua_State *L) {
  bh_manifest_clear(lbh_arg_udata(L, 1, NULL, MBOX_MT));
  return 0;
}

static bh_manifest *new_mbox(lua_State *L) {
  bh_manifest *m = lua_newuserdatauv(L, sizeof *m, 0);
  memset(m, 0, sizeof *m);
  luaL_setmetatable(L, MBOX_MT);
  return m;
}

/* ---- file jobs: reads, walks, listings, clean-ups off the loop ---------
 *
 * Reading and decoding a manifest (up to BH_MANIFEST_MAX_BYTES), walking a
 * cache root or listing the registry can take longer than a loop turn
 * should: in a task they run on the run's worker thread (worker.h) while
 * the task waits (the yield template of lbh_task.h), so probes, HTTP
 * requests and the watchdog go on meanwhile. Outside a task (plain Lua
 * before bh.run, a busted spec) they run inline. */

typedef enum job_kind {
  JOB_READ,
  JOB_FIND,
  JOB_LIST,
  JOB_CLEAR,
  JOB_USERS
} job_kind;

typedef struct mjob {
  bh_work work;
  lbh_task *task; /* the task waiting; NULL once it no longer is */
  job_kind kind;
  char *path;       /* the file, root or registry directory (owned) */
  const char *name; /* within path: the file name, for dirfd */
  int dirfd;        /* the registry's directory (a dup, owned), or -1 */
  bool verify;
  int max_depth;
  bool has_only_if;
  bh_identity only_if;
  /* results */
  bh_status st;
  bh_err err;
  bh_manifest m;
  struct stat sb;
  bh_manifest_list list;
  bh_clear_outcome outcome;
  bh_user_registries users;
} mjob;

#define JOB_MT "bh.manifest_job"

/* Free what the job holds (not the job). Idempotent. */
static void job_clear(mjob *j) {
  free(j->path);
  j->path = NULL;
  if (j->dirfd >= 0) (void)close(j->dirfd);
  j->dirfd = -1;
  bh_identity_clear(&j->only_if);
  bh_manifest_clear(&j->m);
  bh_manifest_list_free(&j->list);
  bh_user_registries_free(&j->users);
}

static int job_gc(lua_State *L) {
  job_clear(lbh_arg_udata(L, 1, NULL, JOB_MT));
  return 0;
}

/* A job in a userdata on the stack (inline jobs: freed by the collector
 * whatever raises); async jobs are copied to the heap when submitted. */
static mjob *new_job(lua_State *L, job_kind kind, const char *path) {
  mjob *j = lua_newuserdatauv(L, sizeof *j, 0);
  memset(j, 0, sizeof *j);
  j->dirfd = -1;
  j->kind = kind;
  j->max_depth = -1;
  bh_identity_init(&j->only_if);
  luaL_setmetatable(L, JOB_MT);
  j->path = strdup(path);
  if (j->path == NULL) luaL_error(L, "out of memory");
  const char *slash = strrchr(j->path, '/');
  j->name = slash != NULL ? slash + 1 : j->path;
  return j;
}

/* The work itself (on the worker thread, or inline): done in one run. */
static bool job_run(bh_work *w) {
  mjob *j = (mjob *)w;
  bh_err_clear(&j->err);
  switch (j->kind) {
    case JOB_READ:
      j->st = j->dirfd >= 0
                  ? bh_manifest_read_at(j->dirfd, j->name, j->path, j->verify,
                                        &j->m, &j->sb, &j->err)
                  : bh_manifest_read_stat(j->path, j->verify, &j->m, &j->sb,
                                          &j->err);
      break;
    case JOB_FIND:
      j->st = bh_manifest_find(j->path, j->max_depth, &j->list, &j->err);
      break;
    case JOB_LIST:
      j->st = bh_manifest_registry_list(j->dirfd, j->path, &j->list, &j->err);
      break;
    case JOB_USERS:
      j->st = bh_user_registries_list(&j->users, &j->err);
      break;
    case JOB_CLEAR: {
      const bh_identity *want = j->has_only_if ? &j->only_if : NULL;
      j->st =
          j->dirfd >= 0
              ? bh_manifest_clear_daemon_at(j->dirfd, j->name, j->path, want,
                                            &j->outcome, &j->err)
              : bh_manifest_clear_daemon(j->path, want, &j->outcome, &j->err);
      break;
    }
  }
  return true; /* in one go */
}

/* Push the list of strings v (n of them) as an array. */
static void push_strings(lua_State *L, char **v, size_t n) {
  lua_createtable(L, (int)n, 0);
  for (size_t i = 0; i < n; i++) {
    lua_pushstring(L, v[i]);
    lua_rawseti(L, -2, (lua_Integer)i + 1);
  }
}

/* Push the users' registries as {{path =, user =, uid =}, ...}. */
static void push_users(lua_State *L, const bh_user_registries *u) {
  lua_createtable(L, (int)u->count, 0);
  for (size_t i = 0; i < u->count; i++) {
    lua_createtable(L, 0, 3);
    lua_pushstring(L, u->v[i].dir);
    lua_setfield(L, -2, "path");
    lua_pushstring(L, u->v[i].user);
    lua_setfield(L, -2, "user");
    lua_pushinteger(L, (lua_Integer)u->v[i].uid);
    lua_setfield(L, -2, "uid");
    lua_rawseti(L, -2, (lua_Integer)i + 1);
  }
}

/* What the job's Lua function returns. */
static int job_push(lua_State *L, void *ud) {
  static const char *const why[] = {"cleared", "none", "other", "changed"};
  mjob *j = ud;
  if (j->st != BH_OK) return lbh_fail_stage(L, &j->err, "manifest");
  switch (j->kind) {
    case JOB_READ:
      push_manifest(L, &j->m);
      lua_createtable(L, 0, 3);
      lua_pushinteger(L, (lua_Integer)j->sb.st_uid);
      lua_setfield(L, -2, "uid");
      lua_pushinteger(L, (lua_Integer)j->sb.st_gid);
      lua_setfield(L, -2, "gid");
      lua_pushinteger(L, (lua_Integer)(j->sb.st_mode & 07777));
      lua_setfield(L, -2, "mode");
      return 2;
    case JOB_FIND:
      push_strings(L, j->list.paths, j->list.count);
      push_strings(L, j->list.problems, j->list.nproblems);
      return 2;
    case JOB_LIST:
      push_strings(L, j->list.paths, j->list.count);
      return 1;
    case JOB_USERS:
      push_users(L, &j->users);
      return 1;
    case JOB_CLEAR:
      lua_pushboolean(L, j->outcome == BH_CLEAR_DONE);
      if (j->outcome == BH_CLEAR_DONE) return 1;
      lua_pushstring(L, why[j->outcome]);
      return 2;
  }
  return 0;
}

/* The worker is done with the job (on the loop): the waiting task gets
 * its results; the job is freed. */
static void job_finish(bh_work *w, bool ran) {
  mjob *j = (mjob *)w;
  if (j->task != NULL) {
    if (!ran)
      bh_err_set(&j->err, j->st = BH_SYSTEM, NULL,
                 "the run ended before the file job ran");
    lbh_task_complete(j->task, job_push, j);
  }
  job_clear(j);
  free(j);
}

/* The task was cancelled: it gets nothing; the job finishes (and is
 * freed) on its own. */
static void job_cancel(void *op) {
  ((mjob *)op)->task = NULL;
}

/* Run the job at the top of the stack and return what it gives: on the
 * worker when L is a task that can wait, else inline. */
static int run_job(lua_State *L, mjob *j) {
  lbh_task *t = lbh_task_current(L);
  lbh_run *run = t != NULL && lua_isyieldable(L) ? lbh_task_run(t) : NULL;
  bh_worker *k = run != NULL ? lbh_run_worker(run) : NULL;
  mjob *heap = k != NULL ? malloc(sizeof *heap) : NULL;
  if (heap == NULL) {
    (void)job_run(&j->work);
    return job_push(L, j);
  }
  size_t name_at = (size_t)(j->name - j->path);
  *heap = *j; /* the heap copy owns what the job holds now */
  memset(j, 0, sizeof *j);
  j->dirfd = -1;
  bh_identity_init(&j->only_if);
  heap->name = heap->path + name_at;
  heap->work.run = job_run;
  heap->work.finish = job_finish;
  heap->task = t;
  if (!bh_worker_submit(k, &heap->work)) {
    *j = *heap; /* back to the box: inline after all */
    free(heap);
    (void)job_run(&j->work);
    return job_push(L, j);
  }
  lbh_task_set_pending(t, job_cancel, heap);
  return lbh_task_yield(L, 0, NULL);
}

/* bh.manifest.read(path [, {verify = true}]) -> table, info | nil, err.
 * info = {uid, gid, mode} of the file read (on whose behalf reactions
 * act). With verify = false a manifest whose seal or schema version is
 * wrong is read anyway (for investigations). Yields in a task. */
static int l_read(lua_State *L) {
  static const char *const keys[] = {"verify", NULL};
  const char *path = lbh_arg_string(L, 1, NULL, NULL);
  lbh_opts_check(L, 2, "bh.manifest.read", keys);
  bool verify = lbh_opt_boolean(L, 2, "bh.manifest.read", "verify", true);
  mjob *j = new_job(L, JOB_READ, path);
  j->verify = verify;
  return run_job(L, j);
}

/* The directory part of path ("." for a bare name), pushed. */
static const char *push_dir(lua_State *L, const char *path) {
  const char *slash = strrchr(path, '/');
  if (slash == NULL) return lua_pushliteral(L, ".");
  if (slash == path) return lua_pushliteral(L, "/");
  return lua_pushlstring(L, path, (size_t)(slash - path));
}

/* m->pb->host = this machine, as running-process's writer records it,
 * for a manifest at path. */
static void set_host(lua_State *L, bh_manifest *m, const char *path) {
  bh_host h;
  bh_host_current(push_dir(L, path), &h);
  lua_pop(L, 1);
  lua_createtable(L, 0, 5);
  lua_pushstring(L, h.hostname);
  lua_setfield(L, -2, "hostname");
  lua_pushstring(L, h.machine_id);
  lua_setfield(L, -2, "machine_id");
  lua_pushstring(L, h.boot_id);
  lua_setfield(L, -2, "boot_id");
  lua_pushinteger(L, (lua_Integer)h.fs_dev_id);
  lua_setfield(L, -2, "fs_dev_id");
  lua_pushstring(L, h.namespace_id);
  lua_setfield(L, -2, "namespace_id");
  (void)lbh_check_pb(L, -1,
                     &running_process__broker__v1__host_identity__descriptor,
                     "bh.manifest.write", "host", NULL);
  m->pb->host = (RunningProcess__Broker__V1__HostIdentity *)lbh_pb_take(L, -1);
  lua_pop(L, 2);
}

/* bh.manifest.write(path, t [, {generation = 1|2}]) -> true | nil, err.
 * Sealed, atomic, through directory descriptors (manifest.h). t holds
 * fields of the CacheManifest schema; an unknown or mistyped field is
 * misuse and raises naming it. current_daemon is an identity, written as
 * generation 2 when it has a BLAKE3 digest (unless generation says 1),
 * else 1. A t without host gets this machine's. */
static int l_write(lua_State *L) {
  static const char *const keys[] = {"generation", NULL};
  const char *path = lbh_arg_string(L, 1, NULL, NULL);
  lua_settop(L, 3);
  lbh_opts_check(L, 3, "bh.manifest.write", keys);
  int gen =
      (int)lbh_opt_integer(L, 3, "bh.manifest.write", "generation", 0, 1, 2);
  const bh_identity *daemon = NULL;
  (void)lbh_check_pb(L, 2, MANIFEST_DESC, "bh.manifest.write", "manifest",
                     &special); /* its box is at 4 */
  if (lua_getfield(L, 2, "current_daemon") != LUA_TNIL)
    daemon = lbh_check_identity(L, -1, 2, "current_daemon"); /* box on top */
  bh_manifest *m = new_mbox(L); /* zeroed: adopt takes it as it is */
  bh_err err;
  bh_manifest_pb *built = (bh_manifest_pb *)lbh_pb_take(L, 4);
  if (bh_manifest_adopt(m, built, &err) != BH_OK)
    return luaL_error(L, "%s", err.message);
  if (m->pb->host == NULL) set_host(L, m, path);
  bh_status st = bh_manifest_set_daemon(m, daemon, gen, &err);
  if (st == BH_INVALID_IDENTITY)
    return lbh_arg_fail(L, 2, NULL, "%s", err.message);
  if (st == BH_OK) st = bh_manifest_write(path, m, &err);
  if (st != BH_OK) return lbh_fail(L, &err);
  lua_pushboolean(L, 1);
  return 1;
}

/* Push the paths of list as an array. */
static void push_list(lua_State *L, const bh_manifest_list *list) {
  lua_createtable(L, (int)list->count, 0);
  for (size_t i = 0; i < list->count; i++) {
    lua_pushstring(L, list->paths[i]);
    lua_rawseti(L, -2, (lua_Integer)i + 1);
  }
}

/* bh.manifest.find(root [, {max_depth = N}]) -> {path, ...}, {problem,
 * ...} | nil, err. problems: the directories below root that could not be
 * opened or read, one message each (never skipped silently). Yields in a
 * task. */
static int l_find(lua_State *L) {
  static const char *const keys[] = {"max_depth", NULL};
  const char *root = lbh_arg_string(L, 1, NULL, NULL);
  lbh_opts_check(L, 2, "bh.manifest.find", keys);
  int depth =
      (int)lbh_opt_integer(L, 2, "bh.manifest.find", "max_depth", -1, 0, 64);
  mjob *j = new_job(L, JOB_FIND, root);
  j->max_depth = depth;
  return run_job(L, j);
}

/* bh.manifest.central_dir() -> the central registry's path | nil, err */
static int l_central_dir(lua_State *L) {
  char *dir = NULL;
  bh_err err;
  if (bh_manifest_central_dir(&dir, &err) != BH_OK)
    return lbh_fail_stage(L, &err, "manifest");
  lua_pushstring(L, dir);
  free(dir);
  return 1;
}

/* bh.manifest.scan_central() -> {path, ...}, dir | nil, err
 * (insecure_registry for a registry not private to its owner). */
static int l_scan_central(lua_State *L) {
  bh_manifest_list list;
  char *dir = NULL;
  bh_err err;
  if (bh_manifest_scan_central(&list, &dir, &err) != BH_OK)
    return lbh_fail_stage(L, &err, "manifest");
  push_list(L, &list);
  lua_pushstring(L, dir);
  bh_manifest_list_free(&list);
  free(dir);
  return 2;
}

/* Options of clear_daemon at idx into j: {only_if = identity}. */
static void clear_opts(lua_State *L, int idx, const char *fn, mjob *j) {
  static const char *const keys[] = {"only_if", NULL};
  lbh_opts_check(L, idx, fn, keys);
  if (!lbh_opt_push(L, idx, "only_if")) return;
  const bh_identity *want = lbh_check_identity(L, -1, idx, "only_if");
  bh_err err;
  if (bh_identity_copy(&j->only_if, want, &err) != BH_OK)
    luaL_error(L, "%s", err.message);
  j->has_only_if = true;
}

/* bh.manifest.clear_daemon(path [, {only_if = identity}]) -> true |
 * false, why | nil, err. why is "none" (no daemon recorded), "other" (it
 * records another daemon than only_if) or "changed" (rewritten on disk
 * while we worked: left alone). A manifest that does not verify is never
 * rewritten (nil, err). Yields in a task. */
static int l_clear_daemon(lua_State *L) {
  const char *path = lbh_arg_string(L, 1, NULL, NULL);
  lua_settop(L, 2);
  mjob *j = new_job(L, JOB_CLEAR, path); /* at 3 */
  clear_opts(L, 2, "bh.manifest.clear_daemon", j);
  lua_settop(L, 3);
  return run_job(L, j);
}

/* ---- the central registry as an object ----------------------------------
 *
 * bh.manifest.open_central() opens the registry once and checks it; its
 * records are then listed, read and cleared through that descriptor,
 * never again by path, so that a directory swapped in after the check is
 * never read or written. */

#define REG_MT "bh.registry"

typedef struct registry {
  int fd; /* -1 when closed, or when the registry does not exist */
  bool exists;
  char *dir;
} registry;

static registry *check_registry(lua_State *L, const char *fn) {
  registry *r = luaL_testudata(L, 1, REG_MT);
  if (r == NULL) lbh_arg_type_error(L, 1, fn, "registry");
  if (r->dir == NULL) luaL_error(L, "%s: the registry is closed", fn);
  return r;
}

/* bh.manifest.open_central([{path = DIR, owner = UID}]) -> registry |
 * nil, err (insecure_registry, manifest_io). Without path, our own
 * registry (bh.manifest.central_dir()); with it, that one (a user's, from
 * bh.manifest.user_registries()), checked as private to owner (default:
 * this process's uid). A registry that does not exist opens (exists =
 * false: nothing in it). */
static int l_open_central(lua_State *L) {
  static const char *const keys[] = {"path", "owner", NULL};
  static const char fn[] = "bh.manifest.open_central";
  lbh_opts_check(L, 1, fn, keys);
  const char *path = lbh_opt_string(L, 1, fn, "path", NULL);
  lua_Integer owner = lbh_opt_integer(L, 1, fn, "owner", -1, 0, 4294967294);
  registry *r = lua_newuserdatauv(L, sizeof *r, 0);
  r->fd = -1;
  r->exists = false;
  r->dir = NULL;
  luaL_setmetatable(L, REG_MT);
  bh_err err;
  bool missing = false;
  char *dir = path != NULL ? strdup(path) : NULL;
  if (path != NULL && dir == NULL) return luaL_error(L, "out of memory");
  uid_t uid = owner >= 0 ? (uid_t)owner : geteuid();
  if ((dir == NULL && bh_manifest_central_dir(&dir, &err) != BH_OK) ||
      bh_manifest_registry_open(dir, uid, &r->fd, &missing, &err) != BH_OK) {
    free(dir);
    return lbh_fail_stage(L, &err, "manifest");
  }
  r->dir = dir;
  r->exists = !missing;
  return 1;
}

/* A job on a record of the registry at 1: path (arg 2) must be one of its
 * records (its file name, or its path under the registry). */
static mjob *registry_job(lua_State *L, registry *r, job_kind kind,
                          const char *fn) {
  const char *path = lbh_arg_string(L, 2, fn, NULL);
  const char *slash = strrchr(path, '/');
  const char *name = slash != NULL ? slash + 1 : path;
  size_t dn = strlen(r->dir);
  if ((slash != NULL &&
       ((size_t)(slash - path) != dn || strncmp(path, r->dir, dn) != 0)) ||
      !bh_manifest_registry_name(name))
    luaL_error(L, "%s: %s is not a record of the registry %s", fn, path,
               r->dir);
  lua_pushfstring(L, "%s/%s", r->dir, name);
  mjob *j = new_job(L, kind, lua_tostring(L, -1));
  lua_remove(L, -2);
  if (r->fd >= 0) {
    j->dirfd = fcntl(r->fd, F_DUPFD_CLOEXEC, 0);
    if (j->dirfd < 0) luaL_error(L, "%s: %s", fn, strerror(errno));
  }
  return j;
}

/* A job on a registry that does not exist: the record is missing. */
static int registry_missing(lua_State *L, registry *r) {
  bh_err err;
  bh_err_set(&err, BH_MANIFEST_IO, NULL, "manifest registry %s: %s", r->dir,
             strerror(ENOENT));
  return lbh_fail_stage(L, &err, "manifest");
}

/* registry:list() -> {path, ...}: its {service}-{version}.pb files. */
static int reg_list(lua_State *L) {
  registry *r = check_registry(L, "registry:list");
  if (r->fd < 0) {
    lua_newtable(L);
    return 1;
  }
  mjob *j = new_job(L, JOB_LIST, r->dir);
  j->dirfd = fcntl(r->fd, F_DUPFD_CLOEXEC, 0);
  if (j->dirfd < 0) luaL_error(L, "registry:list: %s", strerror(errno));
  return run_job(L, j);
}

/* registry:read(path [, {verify = true}]) -> as bh.manifest.read. */
static int reg_read(lua_State *L) {
  static const char *const keys[] = {"verify", NULL};
  registry *r = check_registry(L, "registry:read");
  lbh_opts_check(L, 3, "registry:read", keys);
  bool verify = lbh_opt_boolean(L, 3, "registry:read", "verify", true);
  mjob *j = registry_job(L, r, JOB_READ, "registry:read");
  if (r->fd < 0) return registry_missing(L, r);
  j->verify = verify;
  return run_job(L, j);
}

/* registry:clear_daemon(path [, {only_if = identity}]) -> as
 * bh.manifest.clear_daemon. */
static int reg_clear_daemon(lua_State *L) {
  registry *r = check_registry(L, "registry:clear_daemon");
  lua_settop(L, 3);
  mjob *j = registry_job(L, r, JOB_CLEAR, "registry:clear_daemon"); /* 4 */
  if (r->fd < 0) return registry_missing(L, r);
  clear_opts(L, 3, "registry:clear_daemon", j);
  lua_settop(L, 4);
  return run_job(L, j);
}

/* The one release: close, __close and __gc. */
static int reg_release(lua_State *L) {
  registry *r = lbh_arg_udata(L, 1, NULL, REG_MT);
  if (r->fd >= 0) (void)close(r->fd);
  r->fd = -1;
  free(r->dir);
  r->dir = NULL;
  return 0;
}

/* registry.path, registry.exists, and the methods. */
static int reg_index(lua_State *L) {
  registry *r = lbh_arg_udata(L, 1, NULL, REG_MT);
  const char *key = lbh_arg_string(L, 2, NULL, NULL);
  if (strcmp(key, "path") == 0) {
    if (r->dir != NULL)
      lua_pushstring(L, r->dir);
    else
      lua_pushnil(L);
  } else if (strcmp(key, "exists") == 0) {
    lua_pushboolean(L, r->exists);
  } else {
    lua_getmetatable(L, 1);
    lua_getfield(L, -1, "methods");
    lua_getfield(L, -1, key);
  }
  return 1;
}

static int reg_tostring(lua_State *L) {
  registry *r = lbh_arg_udata(L, 1, NULL, REG_MT);
  lua_pushfstring(L, "bh.registry (%s): %p", r->dir ? r->dir : "closed",
                  (void *)r);
  return 1;
}

/* bh.manifest.user_registries() -> {{path =, user =, uid =}, ...}: the
 * central registry of every user whose home is their own directory
 * (users.h), to open with open_central{path =, owner = uid}; nil, err
 * (system) when the user database cannot be read. Yields in a task. */
static int l_user_registries(lua_State *L) {
  mjob *j = new_job(L, JOB_USERS, "users");
  return run_job(L, j);
}

/* bh.manifest.check_host(m) -> true | nil, err (foreign_host when m names
 * another machine than this one in host.machine_id). */
static int l_check_host(lua_State *L) {
  lbh_arg_table(L, 1, NULL);
  const char *theirs = NULL, *name = NULL;
  if (lua_getfield(L, 1, "host") == LUA_TTABLE) {
    if (lua_getfield(L, -1, "machine_id") == LUA_TSTRING)
      theirs = lua_tostring(L, -1);
    if (lua_getfield(L, -2, "hostname") == LUA_TSTRING)
      name = lua_tostring(L, -1);
  }
  bh_err err;
  if (bh_host_check(theirs, name, &err) != BH_OK)
    return lbh_fail_stage(L, &err, "manifest");
  lua_pushboolean(L, 1);
  return 1;
}

/* bh.machine_id() -> this machine's id (/etc/machine-id) | nil, err */
static int l_machine_id(lua_State *L) {
  char buf[64];
  bh_err err;
  if (bh_machine_id(buf, sizeof buf, &err) != BH_OK) return lbh_fail(L, &err);
  lua_pushstring(L, buf);
  return 1;
}

void lbh_manifest_open(lua_State *L) {
  static const luaL_Reg fns[] = {{"read", l_read},
                                 {"write", l_write},
                                 {"find", l_find},
                                 {"clear_daemon", l_clear_daemon},
                                 {"central_dir", l_central_dir},
                                 {"scan_central", l_scan_central},
                                 {"open_central", l_open_central},
                                 {"user_registries", l_user_registries},
                                 {"check_host", l_check_host},
                                 {NULL, NULL}};
  static const luaL_Reg meta[] = {{"__gc", mbox_gc}, {NULL, NULL}};
  static const luaL_Reg job_meta[] = {{"__gc", job_gc}, {NULL, NULL}};
  static const luaL_Reg reg_meta[] = {{"__index", reg_index},
                                      {"__gc", reg_release},
                                      {"__close", reg_release},
                                      {"__tostring", reg_tostring},
                                      {NULL, NULL}};
  static const luaL_Reg reg_methods[] = {{"list", reg_list},
                                         {"read", reg_read},
                                         {"clear_daemon", reg_clear_daemon},
                                         {"close", reg_release},
                                         {NULL, NULL}};
  lbh_class(L, MBOX_MT, meta, NULL, NULL);
  lbh_class(L, JOB_MT, job_meta, NULL, NULL);
  lbh_class(L, REG_MT, reg_meta, reg_methods, "methods");
  lbh_pbtable_open(L);
  luaL_newlib(L, fns);
  lua_pushliteral(L, BH_MANIFEST_NAME);
  lua_setfield(L, -2, "NAME");
  lua_pushliteral(L, BH_MANIFEST_MEDIA_TYPE);
  lua_setfield(L, -2, "MEDIA_TYPE");
  lua_setfield(L, -2, "manifest");
  lua_pushcfunction(L, l_machine_id);
  lua_setfield(L, -2, "machine_id");
}
