/* Protobuf messages <-> Lua tables through the descriptors (see
 * lbh_pbtable.h). Messages built here are allocated with bh_pb_allocator
 * piece by piece, each piece attached to its parent as soon as it exists,
 * so that the box's one protobuf_c_message_free_unpacked frees everything
 * even when a bad value raises half way. */
#include "lbh_pbtable.h"

#include <lauxlib.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "identity.h"
#include "lbh_args.h"
#include "lbh_class.h"
#include "pbutil.h"

#define BOX_MT "bh.pb_box"
#define PATH_MAX_LEN 256

typedef const ProtobufCFieldDescriptor field_desc;

static void *member(const ProtobufCMessage *m, unsigned offset) {
  return (char *)m + offset;
}

static bool is_special(const lbh_pb_special *s, const char *name) {
  if (s == NULL || s->fields == NULL) return false;
  for (size_t i = 0; s->fields[i] != NULL; i++)
    if (strcmp(s->fields[i], name) == 0) return true;
  return false;
}

/* A map<K, V> field: a repeated message "XEntry" of key = 1, value = 2. */
static bool is_map(field_desc *f) {
  if (f->type != PROTOBUF_C_TYPE_MESSAGE ||
      f->label != PROTOBUF_C_LABEL_REPEATED)
    return false;
  const ProtobufCMessageDescriptor *d = f->descriptor;
  size_t n = strlen(d->name);
  return d->n_fields == 2 && n > 5 && strcmp(d->name + n - 5, "Entry") == 0 &&
         strcmp(d->fields[0].name, "key") == 0 &&
         strcmp(d->fields[1].name, "value") == 0;
}

static size_t elt_size(ProtobufCType t) {
  switch (t) {
    case PROTOBUF_C_TYPE_INT64:
    case PROTOBUF_C_TYPE_SINT64:
    case PROTOBUF_C_TYPE_SFIXED64:
    case PROTOBUF_C_TYPE_UINT64:
    case PROTOBUF_C_TYPE_FIXED64:
    case PROTOBUF_C_TYPE_DOUBLE:
      return 8;
    case PROTOBUF_C_TYPE_STRING:
    case PROTOBUF_C_TYPE_MESSAGE:
      return sizeof(void *);
    case PROTOBUF_C_TYPE_BYTES:
      return sizeof(ProtobufCBinaryData);
    default:
      return 4;
  }
}

/* ---- push ------------------------------------------------------------------
 */

static void push_msg(lua_State *L, const ProtobufCMessage *m,
                     const lbh_pb_special *special);

/* Push the single value of type f->type stored at p. */
static void push_value(lua_State *L, field_desc *f, const void *p) {
  char hex[2 * 64 + 1];
  switch (f->type) {
    case PROTOBUF_C_TYPE_INT32:
    case PROTOBUF_C_TYPE_SINT32:
    case PROTOBUF_C_TYPE_SFIXED32:
      lua_pushinteger(L, *(const int32_t *)p);
      return;
    case PROTOBUF_C_TYPE_UINT32:
    case PROTOBUF_C_TYPE_FIXED32:
      lua_pushinteger(L, *(const uint32_t *)p);
      return;
    case PROTOBUF_C_TYPE_INT64:
    case PROTOBUF_C_TYPE_SINT64:
    case PROTOBUF_C_TYPE_SFIXED64:
    case PROTOBUF_C_TYPE_UINT64: /* above 2^63 - 1: wraps, as Lua must */
    case PROTOBUF_C_TYPE_FIXED64:
      lua_pushinteger(L, (lua_Integer) * (const int64_t *)p);
      return;
    case PROTOBUF_C_TYPE_FLOAT:
      lua_pushnumber(L, *(const float *)p);
      return;
    case PROTOBUF_C_TYPE_DOUBLE:
      lua_pushnumber(L, *(const double *)p);
      return;
    case PROTOBUF_C_TYPE_BOOL:
      lua_pushboolean(L, *(const protobuf_c_boolean *)p);
      return;
    case PROTOBUF_C_TYPE_ENUM: {
      int v = *(const int *)p;
      const ProtobufCEnumValue *ev =
          protobuf_c_enum_descriptor_get_value(f->descriptor, v);
      if (ev != NULL)
        lua_pushstring(L, ev->name);
      else
        lua_pushinteger(L, v);
      return;
    }
    case PROTOBUF_C_TYPE_STRING: {
      const char *s = *(char *const *)p;
      lua_pushstring(L, s != NULL ? s : "");
      return;
    }
    case PROTOBUF_C_TYPE_BYTES: {
      const ProtobufCBinaryData *b = p;
      luaL_Buffer buf;
      luaL_buffinit(L, &buf);
      for (size_t i = 0; i < b->len; i += 64) {
        size_t n = b->len - i < 64 ? b->len - i : 64;
        bh_hex_encode(b->data + i, n, hex);
        luaL_addlstring(&buf, hex, 2 * n);
      }
      luaL_pushresult(&buf);
      return;
    }
    case PROTOBUF_C_TYPE_MESSAGE:
    default:
      push_msg(L, *(ProtobufCMessage *const *)p, NULL);
      return;
  }
}

/* Is the singular field f of m set (proto3: scalars always are)? */
static bool present(const ProtobufCMessage *m, field_desc *f) {
  if (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF)
    return *(const uint32_t *)member(m, f->quantifier_offset) == f->id;
  if (f->type == PROTOBUF_C_TYPE_MESSAGE)
    return *(ProtobufCMessage *const *)member(m, f->offset) != NULL;
  if (f->label == PROTOBUF_C_LABEL_OPTIONAL && f->quantifier_offset != 0 &&
      f->type != PROTOBUF_C_TYPE_STRING)
    return *(const protobuf_c_boolean *)member(m, f->quantifier_offset);
  return true;
}

/* Push the repeated field f of m as an array (a map as a table). */
static void push_repeated(lua_State *L, const ProtobufCMessage *m,
                          field_desc *f, size_t n) {
  const char *arr = *(char *const *)member(m, f->offset);
  bool map = is_map(f);
  lua_createtable(L, map ? 0 : (int)n, map ? (int)n : 0);
  for (size_t i = 0; i < n; i++) {
    const void *p = arr + i * elt_size(f->type);
    if (map) {
      const ProtobufCMessage *e = *(ProtobufCMessage *const *)p;
      const ProtobufCMessageDescriptor *d = e->descriptor;
      push_value(L, &d->fields[0], member(e, d->fields[0].offset));
      push_value(L, &d->fields[1], member(e, d->fields[1].offset));
      lua_rawset(L, -3);
    } else {
      push_value(L, f, p);
      lua_rawseti(L, -2, (lua_Integer)i + 1);
    }
  }
}

static void push_msg(lua_State *L, const ProtobufCMessage *m,
                     const lbh_pb_special *special) {
  if (m == NULL) {
    lua_pushnil(L);
    return;
  }
  luaL_checkstack(L, 8, "message nested too deep");
  const ProtobufCMessageDescriptor *d = m->descriptor;
  lua_createtable(L, 0, (int)d->n_fields);
  for (unsigned i = 0; i < d->n_fields; i++) {
    field_desc *f = &d->fields[i];
    if (is_special(special, f->name)) continue;
    if (f->label == PROTOBUF_C_LABEL_REPEATED) {
      size_t n = *(const size_t *)member(m, f->quantifier_offset);
      if (n == 0) continue;
      push_repeated(L, m, f, n);
    } else {
      if (!present(m, f)) continue;
      push_value(L, f, member(m, f->offset));
    }
    lua_setfield(L, -2, f->name);
  }
}

void lbh_push_pb(lua_State *L, const ProtobufCMessage *msg,
                 const lbh_pb_special *special) {
  push_msg(L, msg, special);
}

/* ---- check -----------------------------------------------------------------
 */

typedef struct build {
  const char *fn;
  char path[PATH_MAX_LEN];
} build;

static int bad(lua_State *L, build *b, const char *what) {
  return lbh_arg_error(L, b->fn, "%s: %s", b->path, what);
}

static void *alloc(lua_State *L, size_t n) {
  void *p = bh_pb_allocator.alloc(NULL, n > 0 ? n : 1);
  if (p == NULL) luaL_error(L, "out of memory");
  memset(p, 0, n > 0 ? n : 1);
  return p;
}

static ProtobufCMessage *new_msg(lua_State *L,
                                 const ProtobufCMessageDescriptor *d) {
  ProtobufCMessage *m = alloc(L, d->sizeof_message);
  protobuf_c_message_init(d, m);
  return m;
}

static void fill_msg(lua_State *L, int idx, ProtobufCMessage *m, build *b,
                     const lbh_pb_special *special);

/* An integer at idx in [lo, hi], else raise naming the type. */
static lua_Integer want_int(lua_State *L, int idx, build *b, lua_Integer lo,
                            lua_Integer hi) {
  int ok = 0;
  lua_Integer v = lua_tointegerx(L, idx, &ok);
  if (!ok || lua_type(L, idx) != LUA_TNUMBER || v < lo || v > hi)
    bad(L, b,
        lua_pushfstring(L, "expected an integer in [%I, %I], got %s", lo, hi,
                        lua_type(L, idx) == LUA_TNUMBER
                            ? lua_tostring(L, idx)
                            : luaL_typename(L, idx)));
  return v;
}

/* A string for a string field: UTF-8, no NUL; copied with the allocator. */
static char *want_string(lua_State *L, int idx, build *b) {
  size_t n;
  if (lua_type(L, idx) != LUA_TSTRING)
    bad(L, b,
        lua_pushfstring(L, "expected a string, got %s", luaL_typename(L, idx)));
  const char *s = lua_tolstring(L, idx, &n);
  if (memchr(s, '\0', n) != NULL || !bh_utf8_valid(s, n))
    bad(L, b, "expected UTF-8 text without NUL bytes");
  char *copy = alloc(L, n + 1);
  memcpy(copy, s, n + 1);
  return copy;
}

static void want_bytes(lua_State *L, int idx, build *b,
                       ProtobufCBinaryData *out) {
  size_t n;
  if (lua_type(L, idx) != LUA_TSTRING)
    bad(L, b,
        lua_pushfstring(L, "expected a hex string, got %s",
                        luaL_typename(L, idx)));
  const char *hex = lua_tolstring(L, idx, &n);
  uint8_t *data = alloc(L, n / 2);
  out->data = data; /* attached first: freed with the message */
  if (n % 2 != 0 || !bh_hex_decode(hex, n, data, n / 2))
    bad(L, b, "expected an even number of hex digits");
  out->len = n / 2;
}

static int want_enum(lua_State *L, int idx, build *b,
                     const ProtobufCEnumDescriptor *e) {
  if (lua_type(L, idx) == LUA_TSTRING) {
    const ProtobufCEnumValue *v =
        protobuf_c_enum_descriptor_get_value_by_name(e, lua_tostring(L, idx));
    if (v == NULL)
      bad(L, b,
          lua_pushfstring(L, "\"%s\" is not a value of %s",
                          lua_tostring(L, idx), e->short_name));
    return v->value;
  }
  return (int)want_int(L, idx, b, INT32_MIN, INT32_MAX);
}

/* Store the Lua value at idx as the single value of f at p. */
static void set_value(lua_State *L, int idx, field_desc *f, void *p, build *b) {
  switch (f->type) {
    case PROTOBUF_C_TYPE_INT32:
    case PROTOBUF_C_TYPE_SINT32:
    case PROTOBUF_C_TYPE_SFIXED32:
      *(int32_t *)p = (int32_t)want_int(L, idx, b, INT32_MIN, INT32_MAX);
      return;
    case PROTOBUF_C_TYPE_UINT32:
    case PROTOBUF_C_TYPE_FIXED32:
      *(uint32_t *)p = (uint32_t)want_int(L, idx, b, 0, UINT32_MAX);
      return;
    case PROTOBUF_C_TYPE_INT64:
    case PROTOBUF_C_TYPE_SINT64:
    case PROTOBUF_C_TYPE_SFIXED64:
      *(int64_t *)p =
          (int64_t)want_int(L, idx, b, LUA_MININTEGER, LUA_MAXINTEGER);
      return;
    case PROTOBUF_C_TYPE_UINT64:
    case PROTOBUF_C_TYPE_FIXED64:
      *(uint64_t *)p = (uint64_t)want_int(L, idx, b, 0, LUA_MAXINTEGER);
      return;
    case PROTOBUF_C_TYPE_FLOAT:
    case PROTOBUF_C_TYPE_DOUBLE: {
      if (lua_type(L, idx) != LUA_TNUMBER) bad(L, b, "expected a number");
      double v = lua_tonumber(L, idx);
      if (f->type == PROTOBUF_C_TYPE_FLOAT)
        *(float *)p = (float)v;
      else
        *(double *)p = v;
      return;
    }
    case PROTOBUF_C_TYPE_BOOL:
      if (!lua_isboolean(L, idx)) bad(L, b, "expected a boolean");
      *(protobuf_c_boolean *)p = lua_toboolean(L, idx);
      return;
    case PROTOBUF_C_TYPE_ENUM:
      *(int *)p = want_enum(L, idx, b, f->descriptor);
      return;
    case PROTOBUF_C_TYPE_STRING:
      *(char **)p = want_string(L, idx, b);
      return;
    case PROTOBUF_C_TYPE_BYTES:
      want_bytes(L, idx, b, p);
      return;
    case PROTOBUF_C_TYPE_MESSAGE:
    default: {
      if (!lua_istable(L, idx))
        bad(L, b,
            lua_pushfstring(L, "expected a table, got %s",
                            luaL_typename(L, idx)));
      ProtobufCMessage *sub = new_msg(L, f->descriptor);
      *(ProtobufCMessage **)p = sub;
      fill_msg(L, idx, sub, b, NULL);
      return;
    }
  }
}

/* Append ".name", "[i]" or "[\"key\"]" to the path for the duration of
 * a nested check; returns the old length to cut back to. */
static size_t path_name(build *b, const char *name) {
  size_t old = strlen(b->path);
  (void)snprintf(b->path + old, sizeof b->path - old, ".%s", name);
  return old;
}

static size_t path_index(build *b, lua_Integer i) {
  size_t old = strlen(b->path);
  (void)snprintf(b->path + old, sizeof b->path - old, "[%lld]", (long long)i);
  return old;
}

static size_t path_key(build *b, const char *key) {
  size_t old = strlen(b->path);
  (void)snprintf(b->path + old, sizeof b->path - old, "[\"%s\"]", key);
  return old;
}

static int cmp_str(const void *a, const void *b) {
  return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* A map field from a table of string keys, in sorted key order. */
static void set_map(lua_State *L, int idx, ProtobufCMessage *m, field_desc *f,
                    build *b) {
  const ProtobufCMessageDescriptor *d = f->descriptor;
  size_t n = 0;
  lua_pushnil(L);
  while (lua_next(L, idx) != 0) {
    lua_pop(L, 1);
    if (lua_type(L, -1) != LUA_TSTRING) bad(L, b, "expected string keys");
    n++;
  }
  /* The keys stay alive in the table at idx while we work. */
  const char **keys = lua_newuserdatauv(L, (n > 0 ? n : 1) * sizeof *keys, 0);
  size_t k = 0;
  lua_pushnil(L);
  while (lua_next(L, idx) != 0) {
    lua_pop(L, 1);
    keys[k++] = lua_tostring(L, -1);
  }
  qsort(keys, n, sizeof *keys, cmp_str);
  ProtobufCMessage **arr = alloc(L, n * sizeof(ProtobufCMessage *));
  *(ProtobufCMessage ***)member(m, f->offset) = arr;
  size_t *count = member(m, f->quantifier_offset);
  for (size_t i = 0; i < n; i++) {
    size_t old = path_key(b, keys[i]);
    ProtobufCMessage *e = new_msg(L, d);
    arr[i] = e;
    *count = i + 1;
    lua_pushstring(L, keys[i]);
    set_value(L, lua_gettop(L), &d->fields[0], member(e, d->fields[0].offset),
              b);
    lua_gettable(L, idx);
    set_value(L, lua_gettop(L), &d->fields[1], member(e, d->fields[1].offset),
              b);
    lua_pop(L, 1);
    b->path[old] = '\0';
  }
  lua_pop(L, 1); /* the keys */
}

/* A repeated field from an array 1..n without holes. */
static void set_repeated(lua_State *L, int idx, ProtobufCMessage *m,
                         field_desc *f, build *b) {
  if (!lua_istable(L, idx))
    bad(L, b,
        lua_pushfstring(L, "expected a table, got %s", luaL_typename(L, idx)));
  if (is_map(f)) {
    set_map(L, idx, m, f, b);
    return;
  }
  size_t n = (size_t)lua_rawlen(L, idx), seen = 0;
  lua_pushnil(L);
  while (lua_next(L, idx) != 0) {
    lua_pop(L, 1);
    seen++;
  }
  if (seen != n) bad(L, b, "expected an array (keys 1..n, no holes)");
  char *arr = alloc(L, n * elt_size(f->type));
  *(char **)member(m, f->offset) = arr;
  size_t *count = member(m, f->quantifier_offset);
  for (size_t i = 0; i < n; i++) {
    size_t old = path_index(b, (lua_Integer)i + 1);
    lua_rawgeti(L, idx, (lua_Integer)i + 1);
    *count = i + 1; /* zeroed: a half-set element frees cleanly */
    set_value(L, lua_gettop(L), f, arr + i * elt_size(f->type), b);
    lua_pop(L, 1);
    b->path[old] = '\0';
  }
}

/* Every key of the table at idx into m. */
static void fill_msg(lua_State *L, int idx, ProtobufCMessage *m, build *b,
                     const lbh_pb_special *special) {
  idx = lua_absindex(L, idx);
  luaL_checkstack(L, 12, "table nested too deep");
  lua_pushnil(L);
  while (lua_next(L, idx) != 0) {
    int v = lua_gettop(L);
    if (lua_type(L, -2) != LUA_TSTRING)
      bad(L, b,
          lua_pushfstring(L, "expected string keys, got a %s key",
                          luaL_typename(L, -2)));
    const char *key = lua_tostring(L, -2);
    field_desc *f =
        protobuf_c_message_descriptor_get_field_by_name(m->descriptor, key);
    if (is_special(special, key)) {
      lua_pop(L, 1);
      continue;
    }
    size_t old = path_name(b, key);
    if (f == NULL)
      bad(L, b,
          lua_pushfstring(L, "not a field of %s", m->descriptor->short_name));
    if (f->label == PROTOBUF_C_LABEL_REPEATED) {
      set_repeated(L, v, m, f, b);
    } else {
      set_value(L, v, f, member(m, f->offset), b);
      if (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF)
        *(uint32_t *)member(m, f->quantifier_offset) = f->id;
      else if (f->label == PROTOBUF_C_LABEL_OPTIONAL && f->quantifier_offset)
        *(protobuf_c_boolean *)member(m, f->quantifier_offset) = 1;
    }
    b->path[old] = '\0';
    lua_settop(L, v - 1);
  }
}

static int box_gc(lua_State *L) {
  ProtobufCMessage **box = lbh_arg_udata(L, 1, NULL, BOX_MT);
  if (*box != NULL) protobuf_c_message_free_unpacked(*box, &bh_pb_allocator);
  *box = NULL;
  return 0;
}

ProtobufCMessage *lbh_check_pb(lua_State *L, int idx,
                               const ProtobufCMessageDescriptor *desc,
                               const char *fn, const char *prefix,
                               const lbh_pb_special *special) {
  idx = lua_absindex(L, idx);
  build b = {.fn = fn};
  (void)snprintf(b.path, sizeof b.path, "%s", prefix);
  if (!lua_istable(L, idx))
    bad(L, &b,
        lua_pushfstring(L, "expected a table, got %s", luaL_typename(L, idx)));
  ProtobufCMessage **box = lua_newuserdatauv(L, sizeof(ProtobufCMessage *), 0);
  *box = NULL;
  luaL_setmetatable(L, BOX_MT);
  *box = new_msg(L, desc);
  int top = lua_gettop(L);
  fill_msg(L, idx, *box, &b, special);
  lua_settop(L, top);
  return *box;
}

ProtobufCMessage *lbh_pb_take(lua_State *L, int idx) {
  ProtobufCMessage **box = lbh_arg_udata(L, idx, NULL, BOX_MT);
  ProtobufCMessage *m = *box;
  *box = NULL;
  return m;
}

void lbh_pbtable_open(lua_State *L) {
  static const luaL_Reg meta[] = {{"__gc", box_gc}, {NULL, NULL}};
  lbh_class(L, BOX_MT, meta, NULL, NULL);
}
