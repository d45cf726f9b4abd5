/* Protobuf messages as Lua tables, driven by the protobuf-c descriptors,
 * so that bh.manifest sees the whole CacheManifest schema (and any field
 * added to proto/) without a line per field:
 *   - a field is a key of the table, named as in the .proto;
 *   - scalars are numbers/booleans/strings (always present, defaults
 *     included); bytes are 64-digit... any-length lowercase hex strings;
 *     enums are their value names ("CACHE_DATA"; a number is accepted
 *     when writing, and pushed for a value the schema does not name);
 *   - a message field is a nested table, present only when set;
 *   - a repeated field is an array, present only when not empty; a map
 *     is a table of string keys (written in sorted key order).
 * Writing refuses what a real reader would refuse or what would be lost:
 * an unknown key (naming the whole path, e.g. "roots[1].kindd"), a wrong
 * type, a number out of the field's range, a string that is not UTF-8 or
 * holds NUL. */
#ifndef LBH_PBTABLE_H
#define LBH_PBTABLE_H

#include <lua.h>
#include <protobuf-c/protobuf-c.h>

/* A field the caller converts itself (e.g. current_daemon as an
 * identity): push skips it, check leaves it unset and does not refuse the
 * key. NULL-terminated names of top-level fields. */
typedef struct lbh_pb_special {
  const char *const *fields;
} lbh_pb_special;

/* Push msg as a table. */
void lbh_push_pb(lua_State *L, const ProtobufCMessage *msg,
                 const lbh_pb_special *special);

/* Build a message of type desc from the table at idx, raising (as
 * lbh_arg_error for fn, naming the path under prefix) on anything the
 * schema does not allow. The message lives in a box pushed on the stack
 * (its __gc frees it); take it with lbh_pb_take to keep it. */
ProtobufCMessage *lbh_check_pb(lua_State *L, int idx,
                               const ProtobufCMessageDescriptor *desc,
                               const char *fn, const char *prefix,
                               const lbh_pb_special *special);
/* Take the message out of the box at idx (the box no longer frees it).
 * The caller owns it (free with protobuf_c_message_free_unpacked and
 * bh_pb_allocator). */
ProtobufCMessage *lbh_pb_take(lua_State *L, int idx);

/* Register the box metatable; called by the module opener. */
void lbh_pbtable_open(lua_State *L);

#endif
