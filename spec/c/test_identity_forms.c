/* Identity: protobuf and JSON forms, the prober's comparison, endpoint
 * checks and the identity of the current process. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "clock.h"
#include "daemon.pb-c.h"
#include "digest.h"
#include "identity.h"
#include "proc.h"
#include "procfs.h"
#include "testutil.h"

static const char DIGEST_HEX[] =
    "00112233445566778899aabbccddeeff0102030405060708090a0b0c0d0e0f10";

/* A fixed identity; free with bh_identity_clear. */
static void sample(bh_identity *id) {
  bh_identity_init(id);
  id->pid = 4242;
  id->exe_path = strdup("/usr/bin/a_b");
  id->boot_id = strdup("0f0e0d0c-0b0a-0908-0706-050403020100");
  bh_endpoint_set(&id->endpoint, "ns", "/run/x.sock", NULL);
  bh_hex_decode(DIGEST_HEX, 64, id->digests.sha256, BH_SHA256_LEN);
  id->digests.algs = BH_ALG_SHA256;
  id->started_at_unix_ms = 1700000000000ull;
}

/* Pack a hand-built DaemonProcess with protobuf-c. */
static size_t pack(RunningProcess__Broker__V1__DaemonProcess *m, uint8_t *buf) {
  return running_process__broker__v1__daemon_process__pack(m, buf);
}

static void test_pb_round_trip(void) {
  bh_identity id, got;
  bh_err err;
  sample(&id);
  bh_identity_init(&got);
  uint8_t *absent, *zero, *thirty;
  size_t la, lz, lt;
  CHECK_CODE(bh_identity_encode(&id, BH_FORM_GEN1, &absent, &la, &err), BH_OK,
             &err);
  id.has_idle_timeout = true;
  id.idle_timeout_secs = 0;
  CHECK_CODE(bh_identity_encode(&id, BH_FORM_GEN1, &zero, &lz, &err), BH_OK,
             &err);
  id.idle_timeout_secs = 30;
  CHECK_CODE(bh_identity_encode(&id, BH_FORM_GEN1, &thirty, &lt, &err), BH_OK,
             &err);
  /* Field 7 is packed last: set-to-0 adds exactly "38 00". */
  CHECK_INT(lz, la + 2);
  CHECK(lz >= 2 && zero[lz - 2] == 0x38 && zero[lz - 1] == 0x00);
  CHECK(memcmp(absent, zero, la) == 0);
  CHECK(lt >= 2 && thirty[lt - 2] == 0x38 && thirty[lt - 1] == 30);

  CHECK_CODE(bh_identity_decode(absent, la, &got, &err), BH_OK, &err);
  CHECK(!got.has_idle_timeout);
  CHECK_CODE(bh_identity_compare(&id, &got, &err), BH_OK, &err);
  CHECK_INT(got.digests.algs, BH_ALG_SHA256);
  CHECK_INT(got.started_at_unix_ms, 1700000000000ull);
  CHECK_STR(got.endpoint.namespace_id, "ns");
  CHECK_STR(got.endpoint.path, "/run/x.sock");
  CHECK_CODE(bh_identity_decode(zero, lz, &got, &err), BH_OK, &err);
  CHECK(got.has_idle_timeout);
  CHECK_INT(got.idle_timeout_secs, 0);
  CHECK_CODE(bh_identity_decode(thirty, lt, &got, &err), BH_OK, &err);
  CHECK(got.has_idle_timeout);
  CHECK_INT(got.idle_timeout_secs, 30);
  CHECK_STR(got.exe_path, "/usr/bin/a_b");
  free(absent);
  free(zero);
  free(thirty);
  bh_identity_clear(&got);
  bh_identity_clear(&id);
}

/* Encode the sample, then overwrite the '_' of its exe_path with c. */
static void decode_patched(uint8_t c, bh_status want) {
  bh_identity id, got;
  bh_err err;
  uint8_t *buf;
  size_t len;
  sample(&id);
  bh_identity_init(&got);
  CHECK_CODE(bh_identity_encode(&id, BH_FORM_GEN1, &buf, &len, &err), BH_OK,
             &err);
  uint8_t *at = memmem(buf, len, "/usr/bin/a_b", 12);
  CHECK(at != NULL);
  if (at != NULL) at[10] = c;
  bh_err_clear(&err);
  CHECK_CODE(bh_identity_decode(buf, len, &got, &err), want, &err);
  if (want != BH_OK) {
    CHECK(strstr(err.message, "exe_path") != NULL);
    CHECK(got.exe_path == NULL); /* out untouched on failure */
  }
  free(buf);
  bh_identity_clear(&got);
  bh_identity_clear(&id);
}

static void test_pb_decode_errors(void) {
  bh_identity got;
  bh_err err;
  bh_identity_init(&got);
  const uint8_t garbage[] = {0x0a, 0xff, 0xff, 0xff};
  CHECK_CODE(bh_identity_decode(garbage, sizeof garbage, &got, &err),
             BH_DECODE_IDENTITY, &err);
  decode_patched('-', BH_OK);
  decode_patched(0x00, BH_DECODE_IDENTITY);
  decode_patched(0xff, BH_DECODE_IDENTITY);
  decode_patched(0xc0, BH_DECODE_IDENTITY); /* overlong lead byte */

  uint8_t sha[32] = {1}, buf[256];
  RunningProcess__Broker__V1__Endpoint ep =
      RUNNING_PROCESS__BROKER__V1__ENDPOINT__INIT;
  RunningProcess__Broker__V1__DaemonProcess m =
      RUNNING_PROCESS__BROKER__V1__DAEMON_PROCESS__INIT;
  m.pid = 7;
  m.exe_path = "/x";
  m.exe_sha256.data = sha;
  m.exe_sha256.len = 32;
  size_t len = pack(&m, buf);
  CHECK_CODE(bh_identity_decode(buf, len, &got, &err), BH_MISSING_ENDPOINT,
             &err);
  ep.path = "/p";
  m.ipc_endpoint = &ep;
  m.exe_sha256.len = 31;
  len = pack(&m, buf);
  CHECK_CODE(bh_identity_decode(buf, len, &got, &err), BH_INVALID_SHA256_LENGTH,
             &err);
  CHECK_STR(err.message, "exe_sha256 is 31 bytes, expected 32");
  m.exe_sha256.len = 0;
  len = pack(&m, buf);
  CHECK_CODE(bh_identity_decode(buf, len, &got, &err), BH_INVALID_SHA256_LENGTH,
             &err);
  /* Missing endpoint is reported before a bad digest length. */
  m.ipc_endpoint = NULL;
  len = pack(&m, buf);
  CHECK_CODE(bh_identity_decode(buf, len, &got, &err), BH_MISSING_ENDPOINT,
             &err);
  /* An empty buffer decodes to all defaults: no endpoint. */
  CHECK_CODE(bh_identity_decode(buf, 0, &got, &err), BH_MISSING_ENDPOINT, &err);
  m.ipc_endpoint = &ep;
  m.exe_sha256.len = 32;
  len = pack(&m, buf);
  CHECK_CODE(bh_identity_decode(buf, len, &got, &err), BH_OK, &err);
  CHECK_INT(got.pid, 7);
  CHECK_STR(got.boot_id, "");
  CHECK_STR(got.endpoint.namespace_id, "");
  bh_identity_clear(&got);
}

static void test_json_round_trip(void) {
  bh_identity id, got;
  bh_err err;
  sample(&id);
  bh_identity_init(&got);
  char *text = bh_identity_to_json(&id);
  CHECK(text != NULL);
  CHECK_STR(text,
            "{\"pid\":4242,\"exe_path\":\"/usr/bin/a_b\",\"exe_sha256\":"
            "\"00112233445566778899aabbccddeeff0102030405060708090a0b0c0d0e0f"
            "10\",\"boot_id\":\"0f0e0d0c-0b0a-0908-0706-050403020100\","
            "\"ipc_endpoint\":{\"namespace_id\":\"ns\",\"path\":\"/run/"
            "x.sock\"},\"started_at_unix_ms\":1700000000000,"
            "\"idle_timeout_secs\":null}");
  CHECK_CODE(bh_identity_from_json(text, strlen(text), &got, &err), BH_OK,
             &err);
  CHECK_CODE(bh_identity_compare(&id, &got, &err), BH_OK, &err);
  CHECK_INT(got.digests.algs, BH_ALG_SHA256);
  CHECK(!got.has_idle_timeout);
  CHECK_INT(got.started_at_unix_ms, 1700000000000ull);
  free(text);
  id.has_idle_timeout = true;
  id.idle_timeout_secs = 0;
  text = bh_identity_to_json(&id);
  CHECK(text != NULL && strstr(text, "\"idle_timeout_secs\":0}") != NULL);
  CHECK_CODE(bh_identity_from_json(text, strlen(text), &got, &err), BH_OK,
             &err);
  CHECK(got.has_idle_timeout);
  CHECK_INT(got.idle_timeout_secs, 0);
  free(text);
  bh_identity_clear(&got);
  bh_identity_clear(&id);
}

/* A §1.7 document with one part replaced: pid, digest, endpoint and tail
 * are spliced in as raw JSON text. */
static void json_case(const char *pid, const char *digest, const char *endpoint,
                      const char *tail, bh_status want, const char *field) {
  char text[1024];
  snprintf(text, sizeof text,
           "{%s\"exe_path\":\"/x\",\"exe_sha256\":%s,\"boot_id\":\"b\","
           "\"ipc_endpoint\":%s%s}",
           pid, digest, endpoint, tail);
  bh_identity got;
  bh_err err;
  bh_identity_init(&got);
  bh_err_clear(&err);
  bh_status st = bh_identity_from_json(text, strlen(text), &got, &err);
  CHECK_CODE(st, want, &err);
  if (st != want) fprintf(stderr, "   input: %s\n", text);
  if (field != NULL) CHECK_STR(err.field, field);
  if (want != BH_OK && field != NULL) CHECK(strstr(err.message, field) != NULL);
  bh_identity_clear(&got);
}

static void test_json_strict(void) {
  const char *d =
      "\"00112233445566778899aabbccddeeff0102030405060708090a0b0c"
      "0d0e0f10\"";
  const char *ep = "{\"namespace_id\":\"n\",\"path\":\"/p\"}";
  json_case("\"pid\":1,", d, ep, "", BH_OK, NULL);
  json_case("\"pid\":4294967295,", d, ep, ",\"extra\":[1]", BH_OK, NULL);
  json_case("\"pid\":1,",
            "\"00112233445566778899AABBCCDDEEFF0102030405060708090a0b0c0d0e0f"
            "10\"",
            ep, ",\"idle_timeout_secs\":null", BH_OK, NULL);
  json_case("\"pid\":1,",
            "\"0011223344556677x899aabbccddeeff0102030405060708090a0b0c0d0e0f"
            "10\"",
            ep, "", BH_INVALID_IDENTITY, "exe_sha256");
  json_case("\"pid\":1,",
            "\"00112233445566778899aabbccddeeff0102030405060708090a0b0c0d0e0f"
            "\"",
            ep, "", BH_INVALID_IDENTITY, "exe_sha256");
  json_case("\"pid\":1,", "7", ep, "", BH_INVALID_IDENTITY, "exe_sha256");
  json_case("", d, ep, "", BH_INVALID_IDENTITY, "pid");
  json_case("\"pid\":\"1\",", d, ep, "", BH_INVALID_IDENTITY, "pid");
  json_case("\"pid\":-1,", d, ep, "", BH_INVALID_IDENTITY, "pid");
  json_case("\"pid\":4294967296,", d, ep, "", BH_INVALID_IDENTITY, "pid");
  json_case("\"pid\":1.5,", d, ep, "", BH_INVALID_IDENTITY, "pid");
  json_case("\"pid\":1,", d, "{\"namespace_id\":\"n\"}", "",
            BH_INVALID_IDENTITY, "ipc_endpoint.path");
  json_case("\"pid\":1,", d, "{\"namespace_id\":3,\"path\":\"/p\"}", "",
            BH_INVALID_IDENTITY, "ipc_endpoint.namespace_id");
  json_case("\"pid\":1,", d, "null", "", BH_INVALID_IDENTITY, "ipc_endpoint");
  json_case("\"pid\":1,", d, ep, ",\"idle_timeout_secs\":-1",
            BH_INVALID_IDENTITY, "idle_timeout_secs");
  json_case("\"pid\":1,", d, ep, ",\"idle_timeout_secs\":\"30\"",
            BH_INVALID_IDENTITY, "idle_timeout_secs");
  json_case("\"pid\":1,", d, ep, ",\"idle_timeout_secs\":4294967296",
            BH_INVALID_IDENTITY, "idle_timeout_secs");
  json_case("\"pid\":1,", d, ep, ",\"started_at_unix_ms\":-5",
            BH_INVALID_IDENTITY, "started_at_unix_ms");
  json_case("\"pid\":1,", d, ep, ",\"started_at_unix_ms\":null",
            BH_INVALID_IDENTITY, "started_at_unix_ms");
  json_case("\"pid\":1,", d, ep, ",\"pid\":2", BH_INVALID_JSON, NULL);
  json_case("\"pid\":1,", d, ep, ",", BH_INVALID_JSON, NULL);

  bh_identity got;
  bh_err err;
  bh_identity_init(&got);
  const char *bad = "{\n  \"pid\": 1,\n  \"exe_path\": x\n}";
  CHECK_CODE(bh_identity_from_json(bad, strlen(bad), &got, &err),
             BH_INVALID_JSON, &err);
  CHECK(strstr(err.message, "line 3") != NULL);
  const char *nul = "{\"pid\":1,\"exe_path\":\"/a\\u0000b\"}";
  CHECK_CODE(bh_identity_from_json(nul, strlen(nul), &got, &err),
             BH_INVALID_JSON, &err);
  CHECK_CODE(bh_identity_from_json("[1]", 3, &got, &err), BH_INVALID_IDENTITY,
             &err);
  CHECK_CODE(bh_identity_from_json("42", 2, &got, &err), BH_INVALID_IDENTITY,
             &err);
  CHECK_CODE(bh_identity_from_json("", 0, &got, &err), BH_INVALID_JSON, &err);
  CHECK(got.exe_path == NULL);
}

/* The comparison of one field; with expected the sample. */
static void compare_expect(const bh_identity *a, const bh_identity *b,
                           const char *field) {
  bh_err err;
  bh_err_clear(&err);
  bh_status st = bh_identity_compare(a, b, &err);
  if (field == NULL) {
    CHECK_CODE(st, BH_OK, &err);
    CHECK_INT(err.nfields, 0);
    return;
  }
  CHECK_CODE(st, BH_IDENTITY_MISMATCH, &err);
  CHECK_STR(err.field, field);
  CHECK(err.nfields >= 1 && err.fields[0] == err.field);
}

/* One differing field at a time (fields are compared in design §1.4's
 * order, so each added difference becomes the first one). */
static void test_compare(void) {
  bh_identity a, b;
  sample(&a);
  sample(&b);
  compare_expect(&a, &b, NULL);
  b.started_at_unix_ms = 1;
  b.has_idle_timeout = true; /* neither is compared */
  compare_expect(&a, &b, NULL);
  b.endpoint.path[1] = 'R';
  compare_expect(&a, &b, "ipc_endpoint");
  b.endpoint.path[1] = 'r';
  b.endpoint.namespace_id[0] = 'N';
  compare_expect(&a, &b, "ipc_endpoint");
  b.boot_id[0] = 'x';
  compare_expect(&a, &b, "boot_id");
  b.digests.sha256[31] ^= 1;
  compare_expect(&a, &b, "exe_sha256");
  free(b.exe_path);
  b.exe_path = strdup("/usr/bin/other");
  compare_expect(&a, &b, "exe_path");
  b.pid++;
  compare_expect(&a, &b, "pid");
  free(b.exe_path);
  b.exe_path = strdup("//usr/./bin//a_b/");
  b.pid--;
  compare_expect(&a, &b, "exe_sha256");
  bh_identity_clear(&a);
  bh_identity_clear(&b);
}

static void test_path_lexical(void) {
  CHECK(bh_path_lexical_equal("/a//b", "/a/b"));
  CHECK(bh_path_lexical_equal("/a/./b", "/a/b"));
  CHECK(bh_path_lexical_equal("/a/b/", "/a/b"));
  CHECK(bh_path_lexical_equal("/a/b/.", "/a/b"));
  CHECK(bh_path_lexical_equal("/", "//"));
  CHECK(!bh_path_lexical_equal("/a/../b", "/b"));
  CHECK(bh_path_lexical_equal("/a/../b", "/a/../b/"));
  CHECK(!bh_path_lexical_equal("/a/b", "a/b"));
  CHECK(!bh_path_lexical_equal("/a/b", "/a/bc"));
  CHECK(!bh_path_lexical_equal("/a/b", "/a/b/c"));
  CHECK(!bh_path_lexical_equal("./a", "a")); /* Rust keeps a leading "." */
  CHECK(bh_path_lexical_equal("a/./b", "a/b"));
  CHECK(bh_path_lexical_equal("", ""));
}

static void test_endpoint_check(void) {
  bh_endpoint ep = {NULL, NULL};
  bh_err err;
  char path[120];
  memset(path, 'a', sizeof path);
  path[0] = '/';
  path[107] = '\0';
  CHECK_CODE(bh_endpoint_set(&ep, "ns", path, &err), BH_OK, &err);
  CHECK_CODE(bh_endpoint_check(&ep, &err), BH_OK, &err);
  path[107] = 'a';
  path[108] = '\0';
  bh_endpoint_set(&ep, "ns", path, &err);
  CHECK_CODE(bh_endpoint_check(&ep, &err), BH_INVALID_ENDPOINT, &err);
  bh_endpoint_set(&ep, "ns", "", &err);
  CHECK_CODE(bh_endpoint_check(&ep, &err), BH_INVALID_ENDPOINT, &err);
  /* Relative: it would resolve against whatever the working directory
   * is ("/" under systemd). */
  bh_endpoint_set(&ep, "ns", "run/x.sock", &err);
  CHECK_CODE(bh_endpoint_check(&ep, &err), BH_INVALID_ENDPOINT, &err);
  CHECK(strstr(err.message, "relative") != NULL);
  bh_endpoint_set(&ep, "ns", "./x.sock", &err);
  CHECK_CODE(bh_endpoint_check(&ep, &err), BH_INVALID_ENDPOINT, &err);
  bh_endpoint other = {NULL, NULL};
  bh_endpoint_copy(&other, &ep, &err);
  CHECK(bh_endpoint_equal(&ep, &other));
  bh_endpoint_clear(&ep);
  bh_endpoint_clear(&other);
  CHECK(ep.path == NULL);
}

static void test_current(void) {
  bh_endpoint ep = {NULL, NULL};
  bh_identity id, copy;
  bh_err err;
  uint32_t idle = 30;
  bh_identity_init(&id);
  bh_identity_init(&copy);
  bh_endpoint_set(&ep, "ns", "/tmp/x.sock", &err);
  CHECK_CODE(bh_identity_current(&ep, &idle, &id, &err), BH_OK, &err);
  CHECK_INT(id.pid, getpid());
  char *exe = realpath("/proc/self/exe", NULL);
  CHECK_STR(id.exe_path, exe);
  bh_digests d;
  CHECK_CODE(bh_digest_file_uncached(exe, BH_ALGS_ALL, &d, &err), BH_OK, &err);
  CHECK_INT(id.digests.algs, BH_ALGS_ALL);
  CHECK(memcmp(d.sha256, id.digests.sha256, BH_DIGEST_LEN) == 0);
  CHECK(memcmp(d.blake3, id.digests.blake3, BH_DIGEST_LEN) == 0);
  CHECK_INT(strlen(id.boot_id), 36);
  char boot[64];
  CHECK_CODE(bh_boot_id(boot, sizeof boot, &err), BH_OK, &err);
  CHECK_STR(id.boot_id, boot);
  CHECK(bh_endpoint_equal(&id.endpoint, &ep));
  CHECK(id.has_idle_timeout);
  CHECK_INT(id.idle_timeout_secs, 30);
  /* Started at most 10 minutes ago (generous: loaded CI machines). */
  uint64_t now = bh_unix_ms();
  CHECK(id.started_at_unix_ms <= now + 2000);
  CHECK(id.started_at_unix_ms + 600000 > now);
  CHECK_CODE(bh_identity_copy(&copy, &id, &err), BH_OK, &err);
  CHECK_CODE(bh_identity_compare(&id, &copy, &err), BH_OK, &err);
  CHECK(memcmp(&id.digests, &copy.digests, sizeof id.digests) == 0);
  CHECK(copy.exe_path != id.exe_path);
  CHECK(bh_identity_has_endpoint(&copy));
  /* Without an endpoint, none: absent, not empty, and copies keep it so. */
  CHECK_CODE(bh_identity_current(NULL, NULL, &copy, &err), BH_OK, &err);
  CHECK(!copy.has_idle_timeout);
  CHECK(!bh_identity_has_endpoint(&copy));
  CHECK(copy.endpoint.path == NULL && copy.endpoint.namespace_id == NULL);
  CHECK_CODE(bh_identity_copy(&id, &copy, &err), BH_OK, &err);
  CHECK(!bh_identity_has_endpoint(&id));
  CHECK_CODE(bh_identity_compare(&id, &copy, &err), BH_OK, &err);
  bh_identity_move(&id, &copy);
  CHECK(copy.exe_path == NULL);
  CHECK(!bh_identity_has_endpoint(&id));
  free(exe);
  bh_endpoint_clear(&ep);
  bh_identity_clear(&id);
  bh_identity_clear(&copy);
}

static void test_hex(void) {
  uint8_t b[3] = {0x00, 0xab, 0xff}, back[3];
  char hex[7];
  bh_hex_encode(b, 3, hex);
  CHECK_STR(hex, "00abff");
  CHECK(bh_hex_decode("00ABff", 6, back, 3));
  CHECK(memcmp(b, back, 3) == 0);
  CHECK(!bh_hex_decode("00abf", 5, back, 3));
  CHECK(!bh_hex_decode("00abfg", 6, back, 3));
}

int main(void) {
  RUN(test_pb_round_trip);
  RUN(test_pb_decode_errors);
  RUN(test_json_round_trip);
  RUN(test_json_strict);
  RUN(test_compare);
  RUN(test_path_lexical);
  RUN(test_endpoint_check);
  RUN(test_current);
  RUN(test_hex);
  return bh_test_summary();
}
