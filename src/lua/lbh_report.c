/* bh.report (one JSON object per line to stdout or bh.options.report),
 * bh.timestamp, bh.null, and the Lua <-> JSON glue of lbh_ops.h.
 *
 * The report file is opened for append and each line goes out in one
 * write(2), so nothing is ever buffered (a SIGTERM loses no line) and
 * concurrent writers do not interleave within a line. Log rotation:
 * SIGHUP sets a flag (the handler does nothing else) and the next line
 * reopens the file; a file renamed or removed under us is noticed by its
 * inode and reopened too, so rotation works even without the signal. */
#include <errno.h>
#include <fcntl.h>
#include <lauxlib.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "lbh.h"
#include "lbh_err.h"
#include "lbh_open.h"
#include "lbh_ops.h"
#include "pbutil.h"

enum { JSON_MAX_DEPTH = 32 };

static const char null_tag = 0; /* &null_tag is bh.null */

/* ---- Lua -> JSON ----------------------------------------------------------
 */

/* s with every byte that does not start a valid UTF-8 sequence replaced
 * by U+FFFD (JSON must be UTF-8; paths and outputs may not be). */
static json_t *json_string_lossy(const char *s, size_t len) {
  /* U+FFFD as UTF-8; a byte array, not a string: no NUL to copy. */
  static const char replacement[] = {'\xEF', '\xBF', '\xBD'};
  if (bh_utf8_valid(s, len)) return json_stringn(s, len);
  char *out = malloc(len * 3 + 1);
  if (out == NULL) return NULL;
  size_t o = 0;
  for (size_t i = 0; i < len;) {
    unsigned char c = (unsigned char)s[i];
    size_t n = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : 4;
    if (i + n <= len && bh_utf8_valid(s + i, n)) {
      memcpy(out + o, s + i, n);
      o += n;
      i += n;
    } else {
      memcpy(out + o, replacement, sizeof replacement);
      o += sizeof replacement;
      i++;
    }
  }
  json_t *j = json_stringn(out, o);
  free(out);
  return j;
}

/* Keys of a standard probe record come first, in schema order; the rest
 * sorted, so every line of a report has a stable shape. */
static int key_rank(const char *k) {
  static const char *const order[] = {
      "ts",    "service",    "endpoint", "verdict",  "code",
      "field", "elapsed_ms", "pid",      "peer_pid", NULL};
  for (int i = 0; order[i] != NULL; i++)
    if (strcmp(order[i], k) == 0) return i;
  return 1000;
}

static int cmp_keys(const void *a, const void *b) {
  const char *x = *(const char *const *)a, *y = *(const char *const *)b;
  int rx = key_rank(x), ry = key_rank(y);
  return rx != ry ? rx - ry : strcmp(x, y);
}

static json_t *from_lua(lua_State *L, int idx, int depth, const char *path,
                        char *why, size_t cap);

/* Does the table at idx hold exactly the keys 1..n (n > 0)? */
static bool is_array(lua_State *L, int idx) {
  lua_Integer n = (lua_Integer)lua_rawlen(L, idx), count = 0;
  if (n == 0) return false;
  lua_pushnil(L);
  while (lua_next(L, idx) != 0) {
    lua_pop(L, 1);
    count++;
    if (!lua_isinteger(L, -1)) {
      lua_pop(L, 1);
      return false;
    }
  }
  return count == n;
}

static json_t *array_from_lua(lua_State *L, int idx, int depth,
                              const char *path, char *why, size_t cap) {
  json_t *arr = json_array();
  lua_Integer n = (lua_Integer)lua_rawlen(L, idx);
  for (lua_Integer i = 1; arr != NULL && i <= n; i++) {
    lua_rawgeti(L, idx, i);
    char sub[256];
    (void)snprintf(sub, sizeof sub, "%s[%lld]", path, (long long)i);
    json_t *v = from_lua(L, lua_gettop(L), depth + 1, sub, why, cap);
    lua_pop(L, 1);
    if (v == NULL || json_array_append_new(arr, v) != 0) {
      json_decref(arr);
      return NULL;
    }
  }
  return arr;
}

static json_t *object_from_lua(lua_State *L, int idx, int depth,
                               const char *path, char *why, size_t cap) {
  size_t n = 0;
  lua_pushnil(L);
  while (lua_next(L, idx) != 0) {
    lua_pop(L, 1);
    if (lua_type(L, -1) != LUA_TSTRING) {
      (void)snprintf(why, cap, "%s: expected string keys, got a %s key", path,
                     luaL_typename(L, -1));
      lua_pop(L, 1);
      return NULL;
    }
    n++;
  }
  const char **keys = calloc(n ? n : 1, sizeof *keys);
  json_t *obj = json_object();
  if (keys == NULL || obj == NULL) goto oom;
  size_t k = 0;
  lua_pushnil(L);
  while (lua_next(L, idx) != 0) { /* strings stay alive in the table */
    lua_pop(L, 1);
    keys[k++] = lua_tostring(L, -1);
  }
  qsort(keys, n, sizeof *keys, cmp_keys);
  for (size_t i = 0; i < n; i++) {
    lua_getfield(L, idx, keys[i]);
    char sub[256];
    (void)snprintf(sub, sizeof sub, "%s.%s", path, keys[i]);
    json_t *v = from_lua(L, lua_gettop(L), depth + 1, sub, why, cap);
    lua_pop(L, 1);
    if (v == NULL) {
      free(keys);
      json_decref(obj);
      return NULL;
    }
    if (json_object_set_new(obj, keys[i], v) != 0) goto oom;
  }
  free(keys);
  return obj;
oom:
  free(keys);
  json_decref(obj);
  (void)snprintf(why, cap, "%s: out of memory (or a key that is not UTF-8)",
                 path);
  return NULL;
}

static json_t *number_from_lua(lua_State *L, int idx) {
  if (lua_isinteger(L, idx)) return json_integer(lua_tointeger(L, idx));
  double d = lua_tonumber(L, idx);
  return isfinite(d) ? json_real(d) : json_null();
}

/* The value at idx (absolute) as JSON; path names it in errors. */
static json_t *from_lua(lua_State *L, int idx, int depth, const char *path,
                        char *why, size_t cap) {
  if (depth > JSON_MAX_DEPTH) {
    (void)snprintf(why, cap, "%s: nested deeper than %d (a cycle?)", path,
                   JSON_MAX_DEPTH);
    return NULL;
  }
  size_t len;
  const char *s;
  switch (lua_type(L, idx)) {
    case LUA_TNIL:
      return json_null();
    case LUA_TBOOLEAN:
      return json_boolean(lua_toboolean(L, idx));
    case LUA_TNUMBER:
      return number_from_lua(L, idx);
    case LUA_TSTRING:
      s = lua_tolstring(L, idx, &len);
      return json_string_lossy(s, len);
    case LUA_TLIGHTUSERDATA:
      if (lua_touserdata(L, idx) == &null_tag) return json_null();
      break;
    case LUA_TTABLE:
      luaL_checkstack(L, 8, "record too deep");
      return is_array(L, idx) ? array_from_lua(L, idx, depth, path, why, cap)
                              : object_from_lua(L, idx, depth, path, why, cap);
    default:
      break;
  }
  (void)snprintf(why, cap, "%s: cannot encode a %s as JSON", path,
                 luaL_typename(L, idx));
  return NULL;
}

json_t *lbh_json_from_lua(lua_State *L, int idx, char *why, size_t cap) {
  return from_lua(L, lua_absindex(L, idx), 0, "value", why, cap);
}

const char *lbh_option_string(lua_State *L, const char *name) {
  const char *s = NULL;
  int top = lua_gettop(L);
  lbh_push_module(L);
  if (lua_istable(L, -1) && lua_getfield(L, -1, "options") == LUA_TTABLE &&
      lua_getfield(L, -1, name) == LUA_TSTRING)
    s = lua_tostring(L, -1); /* kept alive by bh.options */
  lua_settop(L, top);
  return s;
}

/* ---- the report sink --------------------------------------------------------
 */

static struct {
  char *path; /* the file open now, or NULL (stdout) */
  int fd;
  dev_t dev;
  ino_t ino;
} sink = {NULL, -1, 0, 0};
static volatile sig_atomic_t hup_seen;

static void on_hup(int sig) {
  (void)sig;
  hup_seen = 1;
}

/* Take over SIGHUP for log rotation, unless someone else already has. */
static void install_hup(void) {
  struct sigaction old, sa;
  if (sigaction(SIGHUP, NULL, &old) != 0 || old.sa_handler != SIG_DFL) return;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_hup;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = SA_RESTART;
  sigaction(SIGHUP, &sa, NULL);
}

static void sink_close(void) {
  if (sink.fd >= 0) close(sink.fd);
  free(sink.path);
  sink.path = NULL;
  sink.fd = -1;
}

/* Is the open file still the one at path (not rotated away)? */
static bool sink_current(const char *path) {
  struct stat sb;
  if (sink.fd < 0 || sink.path == NULL || strcmp(sink.path, path) != 0)
    return false;
  return stat(path, &sb) == 0 && sb.st_dev == sink.dev && sb.st_ino == sink.ino;
}

/* The descriptor to write a line to for path (reopened after SIGHUP or
 * rotation), or -1 with err filled. */
static int sink_fd(const char *path, bh_err *err) {
  if (hup_seen) {
    hup_seen = 0;
    sink_close();
  }
  if (sink_current(path)) return sink.fd;
  sink_close();
  int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
  struct stat sb;
  if (fd < 0 || fstat(fd, &sb) != 0) {
    bh_err_set(err, BH_SYSTEM, NULL, "report file %s: %s", path,
               strerror(errno));
    if (fd >= 0) close(fd);
    return -1;
  }
  sink.path = strdup(path);
  if (sink.path == NULL) {
    close(fd);
    bh_err_set(err, BH_SYSTEM, NULL, "out of memory");
    return -1;
  }
  sink.fd = fd;
  sink.dev = sb.st_dev;
  sink.ino = sb.st_ino;
  install_hup();
  return fd;
}

static bool write_all(int fd, const char *buf, size_t len) {
  while (len > 0) {
    ssize_t n = write(fd, buf, len);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return false;
    buf += n;
    len -= (size_t)n;
  }
  return true;
}

/* bh.report(record) -> true | nil, err. record: a table; it is written as
 * one compact JSON line to bh.options.report (append) or stdout. A value
 * that cannot be encoded (a function, a cycle) is a caller's bug: raises. */
static int l_report(lua_State *L) {
  char why[256];
  luaL_checktype(L, 1, LUA_TTABLE);
  json_t *j = lbh_json_from_lua(L, 1, why, sizeof why);
  if (j == NULL) return luaL_argerror(L, 1, why);
  char *line = json_dumps(
      j, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(15));
  json_decref(j);
  if (line == NULL) return luaL_error(L, "bh.report: out of memory");
  size_t len = strlen(line);
  line[len] = '\n'; /* json_dumps gave len + 1 bytes: reuse the NUL */
  bh_err err;
  bh_err_clear(&err);
  const char *path = lbh_option_string(L, "report");
  if (path == NULL && sink.fd >= 0) sink_close(); /* back to stdout */
  int fd = path ? sink_fd(path, &err) : 1;
  bool ok = fd >= 0;
  if (ok && fd == 1) (void)fflush(stdout); /* keep order with print() */
  if (ok && !write_all(fd, line, len + 1)) {
    bh_err_set(&err, BH_SYSTEM, NULL, "writing report %s: %s",
               path ? path : "to stdout", strerror(errno));
    ok = false;
  }
  free(line);
  if (!ok) return lbh_fail(L, &err);
  lua_pushboolean(L, 1);
  return 1;
}

/* bh.timestamp([unix_seconds]) -> "2024-05-01T12:00:00.123Z" (RFC 3339,
 * UTC, milliseconds); now when no argument is given. */
static int l_timestamp(lua_State *L) {
  long long ms;
  if (lua_isnoneornil(L, 1)) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ms = (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
  } else {
    double t = luaL_checknumber(L, 1) * 1000.0;
    luaL_argcheck(L, t > -1e15 && t < 1e15, 1, "time out of range");
    ms = (long long)t; /* truncates toward zero: step down for negatives */
    if ((double)ms > t) ms--;
  }
  time_t secs = (time_t)(ms >= 0 ? ms / 1000 : (ms - 999) / 1000);
  struct tm tm;
  char buf[64];
  if (gmtime_r(&secs, &tm) == NULL)
    return luaL_argerror(L, 1, "time out of range");
  size_t n = strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
  (void)snprintf(buf + n, sizeof buf - n, ".%03lldZ",
                 (long long)(ms - (long long)secs * 1000));
  lua_pushstring(L, buf);
  return 1;
}

/* bh.wallclock() -> seconds since the epoch (float, ms resolution or
 * better), for records and metrics timestamps. */
static int l_wallclock(lua_State *L) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  lua_pushnumber(L, (double)ts.tv_sec + (double)ts.tv_nsec / 1e9);
  return 1;
}

/* __gc of a sentinel in the registry: the report file is closed when the
 * state closes (before the module's shared object can be unloaded). */
static int sink_gc(lua_State *L) {
  (void)L;
  sink_close();
  return 0;
}

void lbh_report_open(lua_State *L) {
  lua_newuserdatauv(L, 1, 0);
  lua_createtable(L, 0, 1);
  lua_pushcfunction(L, sink_gc);
  lua_setfield(L, -2, "__gc");
  lua_setmetatable(L, -2);
  lua_rawsetp(L, LUA_REGISTRYINDEX, &sink);
  static const luaL_Reg fns[] = {{"report", l_report},
                                 {"timestamp", l_timestamp},
                                 {"wallclock", l_wallclock},
                                 {NULL, NULL}};
  luaL_setfuncs(L, fns, 0);
  lua_pushlightuserdata(L, (void *)&null_tag);
  lua_setfield(L, -2, "null");
}
