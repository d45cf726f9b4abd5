/* bh.report (one JSON object per line to stdout or bh.options.report),
 * bh.timestamp, bh.null, bh.cut, and the Lua -> JSON conversion they need.
 * Every string of a line is cut to BH_TEXT_FIELD_MAX bytes (text.h); the
 * metrics labels cut theirs with bh.cut.
 *
 * A thin binding: the file itself (append, O_NOFOLLOW, fixed mode, one
 * write(2) per line, reopen after rotation) is the core's report sink
 * (src/core/report.h), one per Lua state. Log rotation is decided here,
 * in one place (follow_rotation): SIGHUP reopens the file at once from
 * the loop (a hook on every run of the state) and a sink that missed it
 * reopens before its next line; a file renamed or removed under us is
 * noticed by its inode (the core sink) and reopened too, so rotation
 * works even without the signal. */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <lauxlib.h>
#include <math.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "fsutil.h"
#include "lbh.h"
#include "lbh_args.h"
#include "lbh_class.h"
#include "lbh_err.h"
#include "lbh_open.h"
#include "lbh_options.h"
#include "lbh_report.h"
#include "lbh_run.h"
#include "lbh_signal.h"
#include "log.h"
#include "pbutil.h"
#include "report.h"
#include "text.h"

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

/* s as a JSON string, cut to BH_TEXT_FIELD_MAX bytes with the mark of
 * the cut (text.h): a string from a record (a 15 MB service_name) must
 * not make a 15 MB report line. */
static json_t *json_string_cut(const char *s, size_t len) {
  char mark[BH_TEXT_MARK_MAX], buf[BH_TEXT_FIELD_MAX];
  size_t mark_len,
      keep = bh_text_cut(s, len, BH_TEXT_FIELD_MAX, mark, &mark_len);
  if (mark_len == 0) return json_string_lossy(s, len);
  memcpy(buf, s, keep);
  memcpy(buf + keep, mark, mark_len);
  return json_string_lossy(buf, keep + mark_len);
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
      return json_string_cut(s, len);
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

/* The value at idx as JSON (new reference) or NULL with why filled (which
 * key path held what). Tables with keys 1..n are arrays, others objects
 * with string keys (sorted); bh.null is null; strings that are not UTF-8
 * get U+FFFD for each bad byte. */
static json_t *json_from_lua(lua_State *L, int idx, char *why, size_t cap) {
  return from_lua(L, lua_absindex(L, idx), 0, "value", why, cap);
}

/* ---- the report sink --------------------------------------------------------
 */

/* The sink of this state (core report.h), in a userdata kept in the
 * registry: two states in one process each have their own file. */
typedef struct state_sink {
  bh_report_sink sink;
  unsigned hups;     /* lbh_hup_count() when it was last (re)opened */
  lbh_run_hook hook; /* on every run: SIGHUP reopens at once */
} state_sink;

static const char sink_key = 's'; /* registry[&sink_key] = state_sink */
#define SINK_MT "bh.report_sink"

static state_sink *get_sink(lua_State *L) {
  lua_rawgetp(L, LUA_REGISTRYINDEX, &sink_key);
  state_sink *s = lua_touserdata(L, -1);
  lua_pop(L, 1);
  return s;
}

bh_status lbh_report_open_file(lua_State *L, const char *path, bh_err *err) {
  state_sink *s = get_sink(L);
  if (s == NULL) return bh_err_set(err, BH_SYSTEM, NULL, "bh is not open");
  s->hups = lbh_hup_count();
  return bh_report_sink_open(&s->sink, path, err);
}

/* Follow a rotation that a SIGHUP since the sink was (re)opened says
 * happened: reopen the file now (from the loop), or close it so that the
 * next line opens it anew (a sink that writes without a loop having seen
 * the signal). A file renamed or removed without a signal is the core
 * sink's: it checks the inode before each line. */
static void follow_rotation(state_sink *s, bool now) {
  bh_err err;
  if (s->hups == lbh_hup_count()) return;
  s->hups = lbh_hup_count();
  if (!now) {
    bh_report_sink_close(&s->sink);
  } else if (s->sink.path != NULL &&
             bh_report_sink_reopen(&s->sink, &err) != BH_OK) {
    bh_log_line(BH_LOG_ERR, err.message);
  }
}

/* The hook every run of the state gets: SIGHUP reopens the file. */
static bool on_signal(lbh_run *run, int sig, lbh_task *t, void *ud) {
  (void)run;
  (void)t;
  if (sig == SIGHUP) follow_rotation(ud, true);
  return false;
}

/* Write one line to path (NULL: stdout). A SIGHUP since the sink was
 * opened reopens it first. EPIPE on stdout (the reader, `| head`, is
 * gone) stops the run quietly, as SIGPIPE stops other tools. */
static bh_status write_line(lua_State *L, const char *path, const char *line,
                            size_t len, bh_err *err) {
  state_sink *s = get_sink(L);
  if (path == NULL) {
    if (s != NULL && s->sink.fd >= 0) bh_report_sink_close(&s->sink);
    (void)fflush(stdout); /* keep order with print() */
    bh_err werr;
    bh_status st =
        bh_fs_write_all(STDOUT_FILENO, line, len, "report to stdout", &werr);
    if (st == BH_OK) return BH_OK;
    if (werr.sys_errno == EPIPE) lbh_request_stop(SIGPIPE);
    if (err != NULL) *err = werr;
    return st;
  }
  if (s == NULL) return bh_err_set(err, BH_SYSTEM, NULL, "bh is not open");
  follow_rotation(s, false);
  return bh_report_sink_write(&s->sink, path, line, len, err);
}

/* bh.report(record) -> true | nil, err. record: a table; it is written as
 * one compact JSON line to bh.options.report (append) or stdout. A value
 * that cannot be encoded (a function, a cycle) is a caller's bug: raises. */
static int l_report(lua_State *L) {
  char why[256];
  lbh_arg_table(L, 1, NULL);
  json_t *j = json_from_lua(L, 1, why, sizeof why);
  if (j == NULL) return lbh_arg_fail(L, 1, NULL, "%s", why);
  char *line = json_dumps(
      j, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(15));
  json_decref(j);
  if (line == NULL) return luaL_error(L, "bh.report: out of memory");
  size_t len = strlen(line);
  line[len] = '\n'; /* json_dumps gave len + 1 bytes: reuse the NUL */
  bh_err err;
  bh_err_clear(&err);
  bh_status st =
      write_line(L, lbh_option_string(L, "report"), line, len + 1, &err);
  free(line);
  if (st != BH_OK) return lbh_fail(L, &err);
  lua_pushboolean(L, 1);
  return 1;
}

/* bh._json(value) -> compact JSON text of value, converted as bh.report
 * converts a record (the Lua helpers' one JSON encoder: /sd). A value
 * that cannot be encoded raises. */
static int l_json(lua_State *L) {
  char why[256];
  lbh_arg_any(L, 1, NULL);
  json_t *j = json_from_lua(L, 1, why, sizeof why);
  if (j == NULL) return lbh_arg_fail(L, 1, NULL, "%s", why);
  char *text = json_dumps(j, JSON_COMPACT | JSON_PRESERVE_ORDER |
                                 JSON_REAL_PRECISION(15) | JSON_ENCODE_ANY);
  json_decref(j);
  if (text == NULL) return luaL_error(L, "bh._json: out of memory");
  lua_pushstring(L, text);
  free(text);
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
    double t = lbh_arg_number(L, 1, NULL, "time", -1e12, true, 1e12) * 1000.0;
    ms = (long long)t; /* truncates toward zero: step down for negatives */
    if ((double)ms > t) ms--;
  }
  time_t secs = (time_t)(ms >= 0 ? ms / 1000 : (ms - 999) / 1000);
  struct tm tm;
  char buf[64];
  if (gmtime_r(&secs, &tm) == NULL)
    return lbh_arg_fail(L, 1, NULL, "time out of range");
  size_t n = strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
  (void)snprintf(buf + n, sizeof buf - n, ".%03lldZ",
                 (long long)(ms - (long long)secs * 1000));
  lua_pushstring(L, buf);
  return 1;
}

/* bh.cut(s[, max]) -> s, or its head and the mark of the cut when it is
 * longer than max bytes (default BH_TEXT_LABEL_MAX, the cap of a label;
 * at least BH_TEXT_MIN_MAX): the one cut of strings from records
 * (text.h), for the sinks written in Lua (metrics labels). */
static int l_cut(lua_State *L) {
  size_t len;
  const char *s = lbh_arg_string(L, 1, NULL, &len);
  lua_Integer max = lbh_arg_optinteger(L, 2, NULL, "max", BH_TEXT_LABEL_MAX,
                                       BH_TEXT_MIN_MAX, INT32_MAX);
  char mark[BH_TEXT_MARK_MAX];
  size_t mark_len, keep = bh_text_cut(s, len, (size_t)max, mark, &mark_len);
  if (mark_len == 0) { /* a number was turned into its string in place */
    lua_settop(L, 1);
    return 1;
  }
  luaL_Buffer b;
  luaL_buffinit(L, &b);
  luaL_addlstring(&b, s, keep);
  luaL_addlstring(&b, mark, mark_len);
  luaL_pushresult(&b);
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

/* __gc of the state's sink: the report file is closed when the state
 * closes (before the module's shared object can be unloaded). */
static int sink_gc(lua_State *L) {
  state_sink *s = lua_touserdata(L, 1);
  lbh_run_hook_remove(&s->hook);
  bh_report_sink_close(&s->sink);
  return 0;
}

void lbh_report_open(lua_State *L) {
  if (get_sink(L) == NULL) {
    static const luaL_Reg meta[] = {{"__gc", sink_gc}, {NULL, NULL}};
    lbh_class(L, SINK_MT, meta, NULL, NULL);
    state_sink *s = lua_newuserdatauv(L, sizeof *s, 0);
    bh_report_sink_init(&s->sink);
    s->hups = lbh_hup_count();
    luaL_setmetatable(L, SINK_MT);
    lua_rawsetp(L, LUA_REGISTRYINDEX, &sink_key);
    s->hook = (lbh_run_hook){.signal = on_signal, .ud = s};
    lbh_run_hook_state(L, &s->hook); /* s lives as long as L */
  }
  static const luaL_Reg fns[] = {
      {"report", l_report},       {"timestamp", l_timestamp},
      {"wallclock", l_wallclock}, {"cut", l_cut},
      {"_json", l_json},          {NULL, NULL}};
  luaL_setfuncs(L, fns, 0);
  lua_pushlightuserdata(L, (void *)&null_tag);
  lua_setfield(L, -2, "null");
}
