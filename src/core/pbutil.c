/* protobuf-c glue: a size-remembering allocator, string checks and the
 * field-count pre-scan (see pbutil.h for why). */
#include "pbutil.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* Each block is preceded by its requested size, kept max-aligned. */
typedef union block_header {
  size_t size;
  max_align_t align;
} block_header;

static void *pb_alloc(void *ctx, size_t size) {
  (void)ctx;
  if (size > SIZE_MAX - sizeof(block_header)) return NULL;
  block_header *h = malloc(sizeof *h + size);
  if (h == NULL) return NULL;
  h->size = size;
  return h + 1;
}

static void pb_free(void *ctx, void *ptr) {
  (void)ctx;
  if (ptr != NULL) free((block_header *)ptr - 1);
}

ProtobufCAllocator bh_pb_allocator = {pb_alloc, pb_free, NULL};

static void *arena_alloc(void *ctx, size_t size) {
  bh_pb_arena *a = ctx;
  size_t room = sizeof a->space - a->used;
  if (size < room) {
    size_t body = (size + sizeof(block_header) - 1) / sizeof(block_header);
    size_t need = (body + 1) * sizeof(block_header);
    if (need <= room) {
      block_header *h = (block_header *)(void *)((char *)a->space + a->used);
      a->used += need;
      h->size = size;
      return h + 1;
    }
  }
  void *p = pb_alloc(NULL, size);
  if (p != NULL) a->spilled++;
  return p;
}

static bool arena_owns(const bh_pb_arena *a, const void *ptr) {
  /* Compared as integers: the pointer may come from another object. */
  uintptr_t p = (uintptr_t)ptr, lo = (uintptr_t)a->space;
  return p >= lo && p < lo + sizeof a->space;
}

static void arena_free(void *ctx, void *ptr) {
  bh_pb_arena *a = ctx;
  if (ptr == NULL || arena_owns(a, ptr)) return;
  pb_free(NULL, ptr);
  a->spilled--;
}

void bh_pb_arena_init(bh_pb_arena *a) {
  /* Not a compound literal: that would zero the 2 KiB too. */
  a->allocator = (ProtobufCAllocator){arena_alloc, arena_free, a};
  a->used = 0;
  a->spilled = 0;
}

void bh_pb_arena_release(bh_pb_arena *a, ProtobufCMessage *msg) {
  if (msg != NULL && a->spilled > 0)
    protobuf_c_message_free_unpacked(msg, &a->allocator);
  a->used = 0;
}

bool bh_pb_string_ok(const char *s) {
  if (s == NULL || s == protobuf_c_empty_string) return true;
  /* protobuf-c allocates a decoded string as exactly len + 1 bytes. */
  size_t block = ((const block_header *)s - 1)->size;
  if (block == 0) return false;
  size_t len = block - 1;
  if (memchr(s, '\0', len) != NULL) return false;
  return bh_utf8_valid(s, len);
}

/* The sub-messages of msg: calls fn(sub, ctx) for each one (singular and
 * repeated) until fn returns false; returns false then. */
static bool each_sub(const ProtobufCMessage *msg,
                     bool (*fn)(ProtobufCMessage *sub, void *ctx), void *ctx) {
  const ProtobufCMessageDescriptor *d = msg->descriptor;
  for (unsigned i = 0; i < d->n_fields; i++) {
    const ProtobufCFieldDescriptor *f = &d->fields[i];
    if (f->type != PROTOBUF_C_TYPE_MESSAGE) continue;
    const char *at = (const char *)msg + f->offset;
    if (f->label == PROTOBUF_C_LABEL_REPEATED) {
      size_t n = *(const size_t *)((const char *)msg + f->quantifier_offset);
      ProtobufCMessage *const *subs = *(ProtobufCMessage * *const *)at;
      for (size_t k = 0; k < n; k++)
        if (subs[k] != NULL && !fn(subs[k], ctx)) return false;
    } else {
      ProtobufCMessage *sub = *(ProtobufCMessage *const *)at;
      if (sub != NULL && !fn(sub, ctx)) return false;
    }
  }
  return true;
}

static bool tags_ok(ProtobufCMessage *msg, void *ctx) {
  for (unsigned i = 0; i < msg->n_unknown_fields; i++)
    if (msg->unknown_fields[i].tag == 0) return false;
  return each_sub(msg, tags_ok, ctx);
}

bool bh_pb_tags_ok(const ProtobufCMessage *msg) {
  return tags_ok((ProtobufCMessage *)msg, NULL);
}

/* Every string of msg itself (singular and repeated) is usable text. */
static bool own_strings_ok(const ProtobufCMessage *msg) {
  const ProtobufCMessageDescriptor *d = msg->descriptor;
  for (unsigned i = 0; i < d->n_fields; i++) {
    const ProtobufCFieldDescriptor *f = &d->fields[i];
    if (f->type != PROTOBUF_C_TYPE_STRING) continue;
    const char *at = (const char *)msg + f->offset;
    if (f->label == PROTOBUF_C_LABEL_REPEATED) {
      size_t n = *(const size_t *)((const char *)msg + f->quantifier_offset);
      char *const *strs = *(char **const *)at;
      for (size_t k = 0; k < n; k++)
        if (!bh_pb_string_ok(strs[k])) return false;
    } else if (!bh_pb_string_ok(*(char *const *)at)) {
      return false;
    }
  }
  return true;
}

static bool strings_ok(ProtobufCMessage *msg, void *ctx) {
  return own_strings_ok(msg) && each_sub(msg, strings_ok, ctx);
}

bool bh_pb_strings_ok(const ProtobufCMessage *msg) {
  return strings_ok((ProtobufCMessage *)msg, NULL);
}

static bool strip(ProtobufCMessage *msg, void *ctx) {
  ProtobufCAllocator *a = ctx;
  for (unsigned i = 0; i < msg->n_unknown_fields; i++)
    a->free(a->allocator_data, msg->unknown_fields[i].data);
  a->free(a->allocator_data, msg->unknown_fields);
  msg->unknown_fields = NULL;
  msg->n_unknown_fields = 0;
  return each_sub(msg, strip, ctx);
}

void bh_pb_strip_unknown(ProtobufCMessage *msg) {
  (void)strip(msg, &bh_pb_allocator);
}

/* ---- pre-scan ------------------------------------------------------------ */

const bh_pb_limits bh_pb_limits_message = {1024, 256};
const bh_pb_limits bh_pb_limits_manifest = {65536, 4096};

/* Deeper than any schema of ours nests; protobuf-c recurses per level. */
enum { SCAN_DEPTH_MAX = 32, VARINT_MAX_BYTES = 10 };

typedef enum scan_result {
  SCAN_OK,
  SCAN_OVER,
  SCAN_DEEP,
  SCAN_MALFORMED
} scan_result;

typedef struct scan_state {
  const bh_pb_limits *lim;
  size_t fields, unknown;
} scan_state;

/* The varint at *p (before end) into *v, advancing *p; false when it runs
 * past end or past ten bytes. */
static bool read_varint(const uint8_t **p, const uint8_t *end, uint64_t *v) {
  uint64_t x = 0;
  for (unsigned i = 0; i < VARINT_MAX_BYTES && *p < end; i++) {
    uint8_t b = *(*p)++;
    x |= (uint64_t)(b & 0x7f) << (7 * i);
    if (b < 0x80) {
      *v = x;
      return true;
    }
  }
  return false;
}

/* Count n more fields (unknown ones too when unknown is set). */
static scan_result count_fields(scan_state *s, size_t n, bool unknown) {
  s->fields += n;
  if (unknown) s->unknown += n;
  if (s->fields > s->lim->max_fields || s->unknown > s->lim->max_unknown)
    return SCAN_OVER;
  return SCAN_OK;
}

/* A repeated scalar may come packed: protobuf-c then allocates one array
 * slot per element, so each element counts as a field. */
static bool packable(const ProtobufCFieldDescriptor *f) {
  return f != NULL && f->label == PROTOBUF_C_LABEL_REPEATED &&
         f->type != PROTOBUF_C_TYPE_STRING &&
         f->type != PROTOBUF_C_TYPE_BYTES && f->type != PROTOBUF_C_TYPE_MESSAGE;
}

/* The elements of a packed field of type t in [p, end), beyond the one
 * already counted for its key. Stops as soon as the budget is spent, so a
 * huge packed field costs no more than the limit. */
static scan_result count_packed(ProtobufCType t, const uint8_t *p,
                                const uint8_t *end, scan_state *s) {
  size_t len = (size_t)(end - p), n = 0;
  if (t == PROTOBUF_C_TYPE_FIXED32 || t == PROTOBUF_C_TYPE_SFIXED32 ||
      t == PROTOBUF_C_TYPE_FLOAT)
    n = len / 4;
  else if (t == PROTOBUF_C_TYPE_FIXED64 || t == PROTOBUF_C_TYPE_SFIXED64 ||
           t == PROTOBUF_C_TYPE_DOUBLE)
    n = len / 8;
  else
    for (unsigned run = 0; p < end && n <= s->lim->max_fields; p++) {
      run = *p < 0x80 ? 0 : run + 1;
      if (run >= VARINT_MAX_BYTES) return SCAN_MALFORMED;
      if (*p < 0x80) n++;
    }
  return n > 1 ? count_fields(s, n - 1, false) : SCAN_OK;
}

/* Skip the value of a field of wire type wt at *p, counting what a
 * length-delimited value holds when the schema says it is a message or a
 * packed scalar. */
static scan_result scan_value(const ProtobufCFieldDescriptor *f, unsigned wt,
                              const uint8_t **p, const uint8_t *end, int depth,
                              scan_state *s);

/* Count the fields of the message of type d in [p, end). */
static scan_result scan_message(const ProtobufCMessageDescriptor *d,
                                const uint8_t *p, const uint8_t *end, int depth,
                                scan_state *s) {
  if (depth > SCAN_DEPTH_MAX) return SCAN_DEEP;
  while (p < end) {
    uint64_t key;
    if (!read_varint(&p, end, &key)) return SCAN_MALFORMED;
    uint64_t tag = key >> 3;
    const ProtobufCFieldDescriptor *f =
        tag > 0 && tag <= UINT32_MAX
            ? protobuf_c_message_descriptor_get_field(d, (unsigned)tag)
            : NULL;
    scan_result r = count_fields(s, 1, f == NULL);
    if (r == SCAN_OK) r = scan_value(f, (unsigned)(key & 7), &p, end, depth, s);
    if (r != SCAN_OK) return r;
  }
  return SCAN_OK;
}

static scan_result scan_value(const ProtobufCFieldDescriptor *f, unsigned wt,
                              const uint8_t **p, const uint8_t *end, int depth,
                              scan_state *s) {
  uint64_t n;
  size_t left = (size_t)(end - *p);
  switch (wt) {
    case PROTOBUF_C_WIRE_TYPE_VARINT:
      return read_varint(p, end, &n) ? SCAN_OK : SCAN_MALFORMED;
    case PROTOBUF_C_WIRE_TYPE_64BIT:
      if (left < 8) return SCAN_MALFORMED;
      *p += 8;
      return SCAN_OK;
    case PROTOBUF_C_WIRE_TYPE_32BIT:
      if (left < 4) return SCAN_MALFORMED;
      *p += 4;
      return SCAN_OK;
    case PROTOBUF_C_WIRE_TYPE_LENGTH_PREFIXED:
      if (!read_varint(p, end, &n) || n > (uint64_t)(end - *p))
        return SCAN_MALFORMED;
      break;
    default: /* groups: protobuf-c refuses them itself */
      return SCAN_MALFORMED;
  }
  const uint8_t *body = *p;
  *p += n;
  if (f != NULL && f->type == PROTOBUF_C_TYPE_MESSAGE)
    return scan_message(f->descriptor, body, *p, depth + 1, s);
  if (packable(f)) return count_packed(f->type, body, *p, s);
  return SCAN_OK;
}

bh_status bh_pb_prescan(const ProtobufCMessageDescriptor *desc,
                        const uint8_t *buf, size_t len, const bh_pb_limits *lim,
                        bh_status code, bh_err *err) {
  scan_state s = {lim, 0, 0};
  scan_result r = len > 0 ? scan_message(desc, buf, buf + len, 0, &s) : SCAN_OK;
  if (r == SCAN_OVER && s.unknown > lim->max_unknown)
    return bh_err_set(err, code, NULL,
                      "%s of %zu bytes holds more than %zu unknown fields: "
                      "refused before decoding",
                      desc->short_name, len, lim->max_unknown);
  if (r == SCAN_OVER)
    return bh_err_set(err, code, NULL,
                      "%s of %zu bytes holds more than %zu fields: refused "
                      "before decoding",
                      desc->short_name, len, lim->max_fields);
  if (r == SCAN_DEEP)
    return bh_err_set(err, code, NULL,
                      "%s of %zu bytes nests messages deeper than %d: refused "
                      "before decoding",
                      desc->short_name, len, SCAN_DEPTH_MAX);
  return BH_OK; /* well within the limits, or malformed: protobuf-c judges */
}

/* ---- UTF-8 ------------------------------------------------------------------
 */

bool bh_utf8_valid(const char *str, size_t len) {
  const unsigned char *s = (const unsigned char *)str;
  size_t i = 0;
  while (i < len) {
    unsigned c = s[i];
    size_t n;
    uint32_t cp;
    if (c < 0x80) {
      i++;
      continue;
    } else if ((c & 0xE0) == 0xC0) {
      n = 1;
      cp = c & 0x1F;
    } else if ((c & 0xF0) == 0xE0) {
      n = 2;
      cp = c & 0x0F;
    } else if ((c & 0xF8) == 0xF0) {
      n = 3;
      cp = c & 0x07;
    } else {
      return false;
    }
    if (len - i <= n) return false;
    for (size_t k = 1; k <= n; k++) {
      if ((s[i + k] & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (s[i + k] & 0x3F);
    }
    static const uint32_t min_cp[4] = {0, 0x80, 0x800, 0x10000};
    if (cp < min_cp[n] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
      return false;
    i += n + 1;
  }
  return true;
}
