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

/* The allocator to pass to every *__unpack and *__free_unpacked call. */
extern ProtobufCAllocator bh_pb_allocator;

/* True when s (a string field of a message unpacked with bh_pb_allocator,
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

/* Strict UTF-8 validation (no overlongs, no surrogates, <= U+10FFFF). */
bool bh_utf8_valid(const char *s, size_t len);

#endif
