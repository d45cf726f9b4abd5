/* Decoding that cannot amplify. A 16 MiB body of millions of two-byte
 * fields made protobuf-c spend ~870 MiB and over a second in each of the
 * three decoders (the Frame of the prober and of the responder, the
 * DaemonProcess, the manifest). The pre-scan of src/core/pbutil.c refuses
 * such bodies before protobuf-c unpacks them; these tests measure each
 * decoder in a child process (peak resident set) and check the limits
 * exactly: unknown fields, known fields repeated, fields of nested
 * messages and elements of packed fields all count; malformed bytes are
 * still protobuf-c's to reject. */
#include <protobuf-c/protobuf-c.h>
#include <stdlib.h>

#include "child_helpers.h"
#include "daemon.pb-c.h"
#include "frame.pb-c.h"
#include "identity.h"
#include "manifest.h"
#include "manifest.pb-c.h"
#include "pbutil.h"
#include "wire.h"

#define FRAME_DESC (&running_process__broker__v1__frame__descriptor)
#define DAEMON_DESC (&running_process__broker__v1__daemon_process__descriptor)
#define MANIFEST_DESC (&running_process__broker__v1__cache_manifest__descriptor)

enum { BODY_16MIB = 16 << 20 };

/* A resident-set growth no decode of a refused body may exceed (the body
 * itself is resident before the measurement starts). */
#define GROWTH_BOUND_KB (32L * 1024)

/* ---- building bodies ----------------------------------------------------- */

/* The first field number in 1..15 (a one-byte key) that d does not know. */
static unsigned unknown_tag(const ProtobufCMessageDescriptor *d) {
  for (unsigned t = 1; t <= 15; t++)
    if (protobuf_c_message_descriptor_get_field(d, t) == NULL) return t;
  return 0;
}

/* len bytes of two-byte varint fields: key (tag, varint), value v. */
static uint8_t *two_byte_fields(size_t len, unsigned tag, uint8_t v) {
  uint8_t *b = malloc(len);
  if (b == NULL) return NULL;
  for (size_t i = 0; i + 1 < len; i += 2) {
    b[i] = (uint8_t)(tag << 3);
    b[i + 1] = v;
  }
  return b;
}

/* A growable byte buffer for hand-built protobuf. */
typedef struct bytes {
  uint8_t *p;
  size_t len, cap;
} bytes;

static void put(bytes *b, const void *data, size_t n) {
  if (b->len + n > b->cap) {
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->len + n)
      cap *= 2;
    uint8_t *g = realloc(b->p, cap);
    if (g == NULL) abort();
    b->p = g;
    b->cap = cap;
  }
  memcpy(b->p + b->len, data, n);
  b->len += n;
}

static void put_varint(bytes *b, uint64_t v) {
  uint8_t x[10];
  put(b, x, bh_test_varint(v, x));
}

/* n two-byte fields "key 00" with the given one-byte key. */
static void put_fields(bytes *b, uint8_t key, size_t n) {
  for (size_t i = 0; i < n; i++)
    put(b, (uint8_t[]){key, 0}, 2);
}

/* A length-delimited field tag holding inner. */
static void put_message(bytes *b, unsigned tag, const bytes *inner) {
  put_varint(b, (uint64_t)tag << 3 | 2);
  put_varint(b, inner->len);
  put(b, inner->p, inner->len);
}

/* The body (no header) of a valid probe request. */
static bytes request_body(void) {
  uint8_t nonce[BH_NONCE_LEN] = {1, 2, 3}, *req = NULL;
  size_t n = 0;
  bh_err err;
  CHECK_CODE(bh_probe_request_build(nonce, &req, &n, &err), BH_OK, &err);
  bytes b = {0};
  put(&b, req + BH_FRAME_HEADER_LEN, n - BH_FRAME_HEADER_LEN);
  free(req);
  return b;
}

/* ---- 16 MiB of tiny fields, in each decoder ------------------------------ */

typedef enum decoder {
  DEC_RESPONSE,
  DEC_REQUEST,
  DEC_IDENTITY,
  DEC_MANIFEST
} decoder;

typedef struct amp_case {
  const char *what;
  decoder dec;
  unsigned tag; /* 0: the decoder's first unknown one-byte tag */
  uint8_t value;
  bh_status want;
} amp_case;

typedef struct amp_report {
  bh_status code;
  long grew_kb;
  double secs;
  char message[BH_ERR_MESSAGE_MAX];
} amp_report;

static const ProtobufCMessageDescriptor *desc_of(decoder d) {
  return d == DEC_IDENTITY   ? DAEMON_DESC
         : d == DEC_MANIFEST ? MANIFEST_DESC
                             : FRAME_DESC;
}

/* Decode buf with the decoder the case names; free what it produced. */
static bh_status decode_with(decoder d, const uint8_t *buf, size_t len,
                             bh_err *err) {
  static const uint8_t nonce[BH_NONCE_LEN];
  bh_status st = BH_SYSTEM;
  if (d == DEC_RESPONSE) {
    st = bh_probe_response_validate(buf, len, 0, nonce, NULL, NULL, err);
  } else if (d == DEC_REQUEST) {
    bh_request req = {0};
    st = bh_probe_request_validate(buf, len, &req, err);
    bh_request_clear(&req);
  } else if (d == DEC_IDENTITY) {
    bh_identity id;
    bh_identity_init(&id);
    st = bh_identity_decode(buf, len, &id, err);
    bh_identity_clear(&id);
  } else {
    bh_manifest m;
    st = bh_manifest_decode(buf, len, false, &m, err);
    if (st == BH_OK) bh_manifest_clear(&m);
  }
  return st;
}

/* In the child: build the body, then measure only the decode. */
static void amp_child(void *arg, int wfd) {
  const amp_case *c = arg;
  unsigned tag = c->tag ? c->tag : unknown_tag(desc_of(c->dec));
  uint8_t *buf = two_byte_fields(BODY_16MIB, tag, c->value);
  amp_report rep = {BH_SYSTEM, -1, 0, ""};
  bh_err err;
  bh_err_clear(&err);
  if (buf != NULL && ch_reset_hwm()) {
    long before = ch_rss_kb();
    double t0 = bh_test_now();
    rep.code = decode_with(c->dec, buf, BODY_16MIB, &err);
    rep.secs = bh_test_now() - t0;
    rep.grew_kb = ch_hwm_kb() - before;
    snprintf(rep.message, sizeof rep.message, "%s", err.message);
  }
  free(buf);
  ch_report(wfd, &rep, sizeof rep);
}

static void test_sixteen_mib_of_tiny_fields(void) {
  static const amp_case cases[] = {
      {"prober: Frame of unknown fields", DEC_RESPONSE, 0, 0, BH_DECODE_FRAME},
      {"responder: Frame of unknown fields", DEC_REQUEST, 0, 0,
       BH_DECODE_FRAME},
      {"DaemonProcess of unknown fields", DEC_IDENTITY, 0, 0,
       BH_DECODE_IDENTITY},
      {"manifest of unknown fields", DEC_MANIFEST, 0, 0, BH_MANIFEST_DECODE},
      {"prober: Frame of envelope_version = 1, repeated", DEC_RESPONSE, 1, 1,
       BH_DECODE_FRAME},
      {"responder: Frame of envelope_version = 1, repeated", DEC_REQUEST, 1, 1,
       BH_DECODE_FRAME},
      {"DaemonProcess of pid = 1, repeated", DEC_IDENTITY, 1, 1,
       BH_DECODE_IDENTITY},
      {"manifest of created_at = 1, repeated", DEC_MANIFEST, 4, 1,
       BH_MANIFEST_DECODE},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    amp_report rep;
    CHECK(ch_run(amp_child, (void *)&cases[i], &rep, sizeof rep, 120.0));
    printf("  %-52s %-18s resident +%ld KiB, %.3f ms\n", cases[i].what,
           bh_status_name(rep.code), rep.grew_kb, rep.secs * 1e3);
    CHECK_INT(rep.code, cases[i].want);
    CHECK(strstr(rep.message, "refused before decoding") != NULL);
    CHECK(rep.grew_kb >= 0 && rep.grew_kb < GROWTH_BOUND_KB);
  }
}

/* ---- the limits, exactly ------------------------------------------------- */

static bh_status scan(const ProtobufCMessageDescriptor *d, const bytes *b,
                      const bh_pb_limits *lim, bh_err *err) {
  return bh_pb_prescan(d, b->p, b->len, lim, BH_DECODE_FRAME, err);
}

/* A valid request plus unknown fields: 256 pass (and the request still
 * validates), 257 are refused, by the responder's own decoder too. */
static void test_unknown_limit(void) {
  const bh_pb_limits *lim = &bh_pb_limits_message;
  uint8_t key = (uint8_t)(unknown_tag(FRAME_DESC) << 3);
  bh_err err;
  bytes b = request_body();
  put_fields(&b, key, lim->max_unknown);
  CHECK_CODE(scan(FRAME_DESC, &b, lim, &err), BH_OK, &err);
  bh_request req = {0};
  CHECK_CODE(bh_probe_request_validate(b.p, b.len, &req, &err), BH_OK, &err);
  bh_request_clear(&req);
  put_fields(&b, key, 1);
  CHECK_CODE(scan(FRAME_DESC, &b, lim, &err), BH_DECODE_FRAME, &err);
  CHECK(strstr(err.message, "more than 256 unknown fields") != NULL);
  CHECK_CODE(bh_probe_request_validate(b.p, b.len, &req, &err), BH_DECODE_FRAME,
             &err);
  free(b.p);
}

/* Known fields count too: a request padded with repeats of
 * envelope_version = 1 to exactly 1024 fields passes; 1025 do not. */
static void test_field_limit(void) {
  const bh_pb_limits *lim = &bh_pb_limits_message;
  bh_err err;
  bytes b = request_body();
  for (size_t i = 4; i < lim->max_fields; i++) /* the request has 4 */
    put(&b, (uint8_t[]){0x08, 1}, 2);
  CHECK_CODE(scan(FRAME_DESC, &b, lim, &err), BH_OK, &err);
  bh_request req = {0};
  CHECK_CODE(bh_probe_request_validate(b.p, b.len, &req, &err), BH_OK, &err);
  bh_request_clear(&req);
  put(&b, (uint8_t[]){0x08, 1}, 2);
  CHECK_CODE(scan(FRAME_DESC, &b, lim, &err), BH_DECODE_FRAME, &err);
  CHECK(strstr(err.message, "more than 1024 fields") != NULL);
  free(b.p);
}

/* Fields inside a known sub-message count: unknown fields hidden in the
 * ipc_endpoint of an identity, in the current_daemon of a manifest. */
static void test_nested_fields_count(void) {
  bh_err err;
  uint8_t ep_key =
      (uint8_t)(unknown_tag(&running_process__broker__v1__endpoint__descriptor)
                << 3);
  bytes inner = {0}, id = {0};
  put_fields(&inner, ep_key, 257);
  put_message(&id, 4, &inner); /* ipc_endpoint */
  CHECK_CODE(scan(DAEMON_DESC, &id, &bh_pb_limits_message, &err),
             BH_DECODE_FRAME, &err);
  bh_identity got;
  bh_identity_init(&got);
  CHECK_CODE(bh_identity_decode(id.p, id.len, &got, &err), BH_DECODE_IDENTITY,
             &err);
  CHECK(strstr(err.message, "DaemonProcess") != NULL);
  bh_identity_clear(&got);

  /* Two levels down: manifest → current_daemon → ipc_endpoint. */
  bytes daemon = {0}, man = {0};
  inner.len = 0;
  put_fields(&inner, ep_key, bh_pb_limits_manifest.max_unknown);
  put_message(&daemon, 4, &inner);
  put_message(&man, 20, &daemon); /* current_daemon */
  CHECK_CODE(scan(MANIFEST_DESC, &man, &bh_pb_limits_manifest, &err), BH_OK,
             &err);
  put_fields(&man, (uint8_t)(unknown_tag(MANIFEST_DESC) << 3), 1);
  bh_manifest m;
  CHECK_CODE(bh_manifest_decode(man.p, man.len, false, &m, &err),
             BH_MANIFEST_DECODE, &err);
  CHECK(strstr(err.message, "CacheManifest") != NULL);
  free(inner.p);
  free(id.p);
  free(daemon.p);
  free(man.p);
}

/* A schema of our own with packed repeated scalars (none of the product's
 * messages has one yet) and a field of its own type, to check that each
 * packed element counts and that nesting is bounded. */
static const ProtobufCMessageDescriptor list_desc;
static const ProtobufCFieldDescriptor list_fields[3] = {
    {"numbers", 1, PROTOBUF_C_LABEL_REPEATED, PROTOBUF_C_TYPE_UINT32, 0, 0,
     NULL, NULL, PROTOBUF_C_FIELD_FLAG_PACKED, 0, NULL, NULL},
    {"fixed", 2, PROTOBUF_C_LABEL_REPEATED, PROTOBUF_C_TYPE_FIXED32, 0, 0, NULL,
     NULL, PROTOBUF_C_FIELD_FLAG_PACKED, 0, NULL, NULL},
    {"child", 3, PROTOBUF_C_LABEL_NONE, PROTOBUF_C_TYPE_MESSAGE, 0, 0,
     &list_desc, NULL, 0, 0, NULL, NULL},
};
static const unsigned list_by_name[3] = {2, 1, 0};
static const ProtobufCIntRange list_ranges[2] = {{1, 0}, {0, 3}};
static const ProtobufCMessageDescriptor list_desc = {
    PROTOBUF_C__MESSAGE_DESCRIPTOR_MAGIC,
    "test.List",
    "List",
    "Test__List",
    "test",
    sizeof(ProtobufCMessage),
    3,
    list_fields,
    list_by_name,
    1,
    list_ranges,
    NULL,
    NULL,
    NULL,
    NULL};

static void test_packed_and_deep(void) {
  const bh_pb_limits *lim = &bh_pb_limits_message;
  bh_err err;
  bytes b = {0}, v = {0};
  for (size_t i = 0; i < lim->max_fields; i++)
    put(&v, (uint8_t[]){1}, 1);
  put_message(&b, 1, &v); /* 1024 one-byte varints: 1024 fields */
  CHECK_CODE(scan(&list_desc, &b, lim, &err), BH_OK, &err);
  put(&v, (uint8_t[]){1}, 1);
  b.len = 0;
  put_message(&b, 1, &v);
  CHECK_CODE(scan(&list_desc, &b, lim, &err), BH_DECODE_FRAME, &err);
  v.len = 0;
  for (size_t i = 0; i <= lim->max_fields; i++)
    put(&v, "\0\0\0\1", 4);
  b.len = 0;
  put_message(&b, 2, &v); /* 1025 fixed32 */
  CHECK_CODE(scan(&list_desc, &b, lim, &err), BH_DECODE_FRAME, &err);
  /* Eleven continuation bytes are no varint: left to protobuf-c. */
  b.len = v.len = 0;
  put(&v, "\x80\x80\x80\x80\x80\x80\x80\x80\x80\x80\x80", 11);
  put_message(&b, 1, &v);
  CHECK_CODE(scan(&list_desc, &b, lim, &err), BH_OK, &err);
  /* 40 levels of child: refused, whatever the field count. */
  b.len = 0;
  for (int i = 0; i < 40; i++) {
    bytes outer = {0};
    put_message(&outer, 3, &b);
    free(b.p);
    b = outer;
  }
  CHECK_CODE(scan(&list_desc, &b, lim, &err), BH_DECODE_FRAME, &err);
  CHECK(strstr(err.message, "deeper than") != NULL);
  free(b.p);
  free(v.p);
}

/* Malformed bytes are not the pre-scan's to judge: it lets them through
 * and each decoder fails as before, with protobuf-c's verdict. */
static void test_malformed_left_to_protobuf_c(void) {
  static const uint8_t cases[][3] = {
      {0x80, 0x80, 0x80}, /* key varint never ends */
      {0x12, 0x05, 'a'},  /* length past the end */
      {0x0b, 0x00, 0x00}, /* wire type 3: a group */
  };
  bh_err err;
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    CHECK_CODE(bh_pb_prescan(DAEMON_DESC, cases[i], 3, &bh_pb_limits_message,
                             BH_DECODE_IDENTITY, &err),
               BH_OK, &err);
    CHECK_CODE(decode_with(DEC_IDENTITY, cases[i], 3, &err), BH_DECODE_IDENTITY,
               &err);
    CHECK(strstr(err.message, "do not decode") != NULL);
    CHECK_CODE(decode_with(DEC_REQUEST, cases[i], 3, &err), BH_DECODE_FRAME,
               &err);
    CHECK(strstr(err.message, "undecodable") != NULL);
  }
  CHECK_CODE(bh_pb_prescan(FRAME_DESC, NULL, 0, &bh_pb_limits_message,
                           BH_DECODE_FRAME, &err),
             BH_OK, &err);
}

int main(void) {
  RUN(test_sixteen_mib_of_tiny_fields);
  RUN(test_unknown_limit);
  RUN(test_field_limit);
  RUN(test_nested_fields_count);
  RUN(test_packed_and_deep);
  RUN(test_malformed_left_to_protobuf_c);
  return bh_test_summary();
}
