/* Glue for protobuf-c: an allocator that remembers each block's size, so
 * that a decoded string field can be checked for what protobuf-c silently
 * hides (an embedded NUL truncates a C string; protobuf-c does not check
 * UTF-8). The Rust reference (prost) rejects invalid UTF-8 in a string as
 * a decode error; we do the same, and we also refuse strings holding NUL
 * bytes, which no path, boot id or label can contain. */
#ifndef BH_PBUTIL_H
#define BH_PBUTIL_H

#include <protobuf-c/protobuf-c.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "status.h"

/* The allocator to pass to every *__unpack and *__free_unpacked call. */
extern ProtobufCAllocator bh_pb_allocator;

/* An allocator for one decode on the hot path, meant to live on the
 * caller's stack: blocks are cut from its own 2 KiB (what a Frame or a
 * DaemonProcess of a real probe needs), with the same size header as
 * bh_pb_allocator's, so bh_pb_string_ok works on either; what does not fit
 * comes from bh_pb_allocator. Freeing a block of the arena does nothing,
 * so a message that fitted is released without walking it. A message
 * unpacked with an arena is released with bh_pb_arena_release, before the
 * arena goes out of scope, and is never given to bh_pb_strip_unknown. */
typedef struct bh_pb_arena {
  ProtobufCAllocator allocator; /* what to pass to *__unpack */
  size_t used;
  size_t spilled; /* blocks taken from bh_pb_allocator */
  max_align_t space[2048 / sizeof(max_align_t)];
} bh_pb_arena;

void bh_pb_arena_init(bh_pb_arena *a);

/* Free msg (unpacked with a; NULL is fine): only its spilled blocks cost. */
void bh_pb_arena_release(bh_pb_arena *a, ProtobufCMessage *msg);

/* True when s (a string field of a message unpacked with bh_pb_allocator
 * or a bh_pb_arena,
 * or protobuf-c's static empty string) holds no NUL before its end and is
 * valid UTF-8. */
bool bh_pb_string_ok(const char *s);

/* True when every string field of msg and of every message below it
 * (repeated ones too) passes bh_pb_string_ok: prost rejects a whole
 * message whose strings are not UTF-8. */
bool bh_pb_strings_ok(const ProtobufCMessage *msg);

/* Drop the unknown fields of msg and of every message below it, as prost
 * does when it decodes: what is left re-encodes in canonical form (known
 * fields in ascending tag order). msg was unpacked with bh_pb_allocator. */
void bh_pb_strip_unknown(ProtobufCMessage *msg);

/* False when msg or any message below it holds an unknown field with field
 * number 0. protobuf-c accepts such a key when it is written in two or
 * more bytes; prost rejects it ("invalid tag value: 0"), and protobuf-c
 * could not even pack it back in a form it would read again. */
bool bh_pb_tags_ok(const ProtobufCMessage *msg);

/* How many fields a body may hold before protobuf-c is allowed to unpack
 * it. protobuf-c spends about 100 bytes of heap on every field it meets
 * (a scan record, and for an unknown field a record plus a copy of its
 * bytes), so a 16 MiB body of two-byte fields costs it ~870 MiB and over a
 * second: the count, not the length, is what must be bounded. Fields are
 * counted at every level of nesting (the fields of a known sub-message
 * too) and each element of a packed repeated field counts as one. */
typedef struct bh_pb_limits {
  size_t max_fields;  /* all fields, known and unknown */
  size_t max_unknown; /* of which unknown to the schema */
} bh_pb_limits;

/* Frame and DaemonProcess: a real one has under 20 fields. */
extern const bh_pb_limits bh_pb_limits_message;
/* CacheManifest: room for long lists of roots and dependencies. */
extern const bh_pb_limits bh_pb_limits_manifest;

/* Walk the wire bytes of buf (a message of type desc) without allocating
 * and count its fields against lim. BH_OK when protobuf-c may unpack it
 * (bytes that are not well-formed protobuf are left for protobuf-c to
 * reject, with its own error); otherwise code, with err saying what was
 * over the limit. Costs O(min(fields, limit)), never more. */
bh_status bh_pb_prescan(const ProtobufCMessageDescriptor *desc,
                        const uint8_t *buf, size_t len, const bh_pb_limits *lim,
                        bh_status code, bh_err *err);

/* Strict UTF-8 validation (no overlongs, no surrogates, <= U+10FFFF). */
bool bh_utf8_valid(const char *s, size_t len);

#endif
