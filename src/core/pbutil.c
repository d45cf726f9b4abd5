/* protobuf-c glue: a size-remembering allocator and string checks
 * (see pbutil.h for why). */
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
