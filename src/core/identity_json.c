/* The JSON form of an identity (design §1.7), through jansson.
 *
 * Writer: exactly the fields of §1.7, in that order, compact, the digests
 * the identity knows (exe_sha256; exe_hash_algorithm and exe_hash last,
 * as running-process's own project form has them). An absent idle timeout
 * is written as null (not omitted) so that every identity document has
 * the same shape; readers accept both. started_at_unix_ms above 2^63-1
 * (not representable in jansson) is written as 2^63-1.
 *
 * Reader: strict about what it needs (invalid_json with jansson's line and
 * column for syntax; invalid_identity with err->field naming the field for
 * anything missing, mistyped or out of range), lenient about the rest
 * (unknown fields are ignored, duplicate keys are rejected). It also reads
 * the serde sidecars of running-process (digests as arrays of numbers,
 * legacy_exe_sha256). */
#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "identity.h"

/* Add a digest member as 64 lowercase hex digits. */
static int set_hex(json_t *o, const char *key, const uint8_t *d) {
  char hex[BH_DIGEST_HEX_LEN + 1];
  bh_hex_encode(d, BH_DIGEST_LEN, hex);
  return json_object_set_new(o, key, json_string(hex));
}

char *bh_identity_to_json(const bh_identity *id) {
  json_int_t started = id->started_at_unix_ms > (uint64_t)INT64_MAX
                           ? (json_int_t)INT64_MAX
                           : (json_int_t)id->started_at_unix_ms;
  json_t *o = json_object();
  json_t *ep =
      json_pack("{s:s, s:s}", "namespace_id",
                id->endpoint.namespace_id ? id->endpoint.namespace_id : "",
                "path", id->endpoint.path ? id->endpoint.path : "");
  int bad = o == NULL || ep == NULL;
  /* Members in the order of design §1.7; json_object keeps it. */
  bad = bad || json_object_set_new(o, "pid", json_integer(id->pid)) != 0;
  bad = bad ||
        json_object_set_new(o, "exe_path",
                            json_string(id->exe_path ? id->exe_path : "")) != 0;
  if (id->digests.algs & BH_ALG_SHA256)
    bad = bad || set_hex(o, "exe_sha256", id->digests.sha256) != 0;
  bad = bad ||
        json_object_set_new(o, "boot_id",
                            json_string(id->boot_id ? id->boot_id : "")) != 0;
  bad = bad || json_object_set(o, "ipc_endpoint", ep) != 0;
  bad = bad || json_object_set_new(o, "started_at_unix_ms",
                                   json_integer(started)) != 0;
  bad = bad || json_object_set_new(o, "idle_timeout_secs",
                                   id->has_idle_timeout
                                       ? json_integer(id->idle_timeout_secs)
                                       : json_null()) != 0;
  if (id->digests.algs & BH_ALG_BLAKE3) {
    bad = bad || json_object_set_new(o, "exe_hash_algorithm",
                                     json_string(BH_BLAKE3_NAME)) != 0;
    bad = bad || set_hex(o, "exe_hash", id->digests.blake3) != 0;
  }
  char *text = bad ? NULL : json_dumps(o, JSON_COMPACT);
  json_decref(ep);
  json_decref(o);
  return text;
}

/* "a string", "an integer", ... for messages saying what came. */
static const char *kind(const json_t *v) {
  switch (json_typeof(v)) {
    case JSON_OBJECT:
      return "an object";
    case JSON_ARRAY:
      return "an array";
    case JSON_STRING:
      return "a string";
    case JSON_INTEGER:
      return "an integer";
    case JSON_REAL:
      return "a non-integer number";
    case JSON_TRUE:
      return "true";
    case JSON_FALSE:
      return "false";
    case JSON_NULL:
      return "null";
  }
  return "a value";
}

/* An integer member in [0, max]. *present is false when the member is
 * absent, or null and nullable. */
static bh_status get_uint(const json_t *obj, const char *key, bool required,
                          bool nullable, uint64_t max, uint64_t *out,
                          bool *present, bh_err *err) {
  const json_t *v = json_object_get(obj, key);
  *present = false;
  if (v == NULL && !required) return BH_OK;
  if (v == NULL)
    return bh_err_set(err, BH_INVALID_IDENTITY, key,
                      "identity field %s is missing", key);
  if (json_is_null(v) && nullable) return BH_OK;
  if (!json_is_integer(v))
    return bh_err_set(err, BH_INVALID_IDENTITY, key,
                      "identity field %s must be an integer, got %s", key,
                      kind(v));
  json_int_t n = json_integer_value(v);
  if (n < 0 || (uint64_t)n > max)
    return bh_err_set(err, BH_INVALID_IDENTITY, key,
                      "identity field %s must be in 0..%llu, got %lld", key,
                      (unsigned long long)max, (long long)n);
  *out = (uint64_t)n;
  *present = true;
  return BH_OK;
}

/* A required string member of obj, as a heap copy. field is the name to
 * report (dotted for nested members). */
static bh_status get_string(const json_t *obj, const char *key,
                            const char *field, char **out, bh_err *err) {
  const json_t *v = json_object_get(obj, key);
  if (v == NULL)
    return bh_err_set(err, BH_INVALID_IDENTITY, field,
                      "identity field %s is missing", field);
  if (!json_is_string(v))
    return bh_err_set(err, BH_INVALID_IDENTITY, field,
                      "identity field %s must be a string, got %s", field,
                      kind(v));
  /* jansson refuses \u0000 unless JSON_ALLOW_NUL, so this is a C string. */
  *out = strdup(json_string_value(v));
  if (*out == NULL)
    return bh_err_set(err, BH_SYSTEM, NULL, "out of memory reading %s", field);
  return BH_OK;
}

/* A digest member: 64 hex digits (our form) or an array of 32 numbers in
 * 0..255 (the serde form running-process writes). *present is false when
 * the member is absent. */
static bh_status get_digest(const json_t *obj, const char *key,
                            uint8_t out[BH_DIGEST_LEN], bool *present,
                            bh_err *err) {
  const json_t *v = json_object_get(obj, key);
  *present = v != NULL;
  if (v == NULL) return BH_OK;
  if (json_is_string(v)) {
    const char *hex = json_string_value(v);
    size_t len = json_string_length(v);
    if (len != BH_DIGEST_HEX_LEN)
      return bh_err_set(err, BH_INVALID_IDENTITY, key,
                        "identity field %s must be %d hex digits, got %zu "
                        "characters",
                        key, BH_DIGEST_HEX_LEN, len);
    if (!bh_hex_decode(hex, len, out, BH_DIGEST_LEN))
      return bh_err_set(err, BH_INVALID_IDENTITY, key,
                        "identity field %s must be hex digits, got \"%.64s\"",
                        key, hex);
    return BH_OK;
  }
  if (!json_is_array(v) || json_array_size(v) != BH_DIGEST_LEN)
    return bh_err_set(err, BH_INVALID_IDENTITY, key,
                      "identity field %s must be %d hex digits or an array "
                      "of %d bytes, got %s",
                      key, BH_DIGEST_HEX_LEN, BH_DIGEST_LEN, kind(v));
  for (size_t i = 0; i < BH_DIGEST_LEN; i++) {
    const json_t *b = json_array_get(v, i);
    json_int_t n = json_is_integer(b) ? json_integer_value(b) : -1;
    if (n < 0 || n > 255)
      return bh_err_set(err, BH_INVALID_IDENTITY, key,
                        "identity field %s[%zu] must be an integer in "
                        "0..255, got %s",
                        key, i, kind(b));
    out[i] = (uint8_t)n;
  }
  return BH_OK;
}

/* The algorithm named by exe_hash_algorithm must be blake3 and come with
 * exe_hash, and the other way round. */
static bh_status get_blake3(const json_t *o, bh_digests *d, bh_err *err) {
  const json_t *alg = json_object_get(o, "exe_hash_algorithm");
  bool present;
  bh_status st = get_digest(o, "exe_hash", d->blake3, &present, err);
  if (st != BH_OK) return st;
  if (alg == NULL && !present) return BH_OK;
  if (alg == NULL)
    return bh_err_set(err, BH_INVALID_IDENTITY, "exe_hash_algorithm",
                      "identity field exe_hash_algorithm is missing (exe_hash "
                      "needs it)");
  if (!json_is_string(alg) ||
      strcmp(json_string_value(alg), BH_BLAKE3_NAME) != 0)
    return bh_err_set(err, BH_INVALID_IDENTITY, "exe_hash_algorithm",
                      "identity field exe_hash_algorithm must be \"blake3\", "
                      "got %s%.40s%s",
                      json_is_string(alg) ? "\"" : "",
                      json_is_string(alg) ? json_string_value(alg) : kind(alg),
                      json_is_string(alg) ? "\"" : "");
  if (!present)
    return bh_err_set(err, BH_INVALID_IDENTITY, "exe_hash",
                      "identity field exe_hash is missing");
  d->algs |= BH_ALG_BLAKE3;
  return BH_OK;
}

/* Both digest generations: exe_sha256 (or 4.10's legacy_exe_sha256, 32
 * zero bytes meaning none), exe_hash_algorithm + exe_hash; at least one. */
static bh_status get_digests(const json_t *o, bh_digests *d, bh_err *err) {
  static const uint8_t zero[BH_DIGEST_LEN];
  bool sha, legacy;
  memset(d, 0, sizeof *d);
  bh_status st = get_digest(o, "exe_sha256", d->sha256, &sha, err);
  if (st != BH_OK) return st;
  uint8_t old[BH_DIGEST_LEN];
  st = get_digest(o, "legacy_exe_sha256", old, &legacy, err);
  if (st != BH_OK) return st;
  if (sha && legacy)
    return bh_err_set(err, BH_INVALID_IDENTITY, "legacy_exe_sha256",
                      "identity has both exe_sha256 and legacy_exe_sha256");
  if (legacy && memcmp(old, zero, BH_DIGEST_LEN) != 0) {
    memcpy(d->sha256, old, BH_DIGEST_LEN);
    sha = true;
  }
  if (sha) d->algs |= BH_ALG_SHA256;
  st = get_blake3(o, d, err);
  if (st == BH_OK && d->algs == 0)
    st = bh_err_set(err, BH_INVALID_IDENTITY, "exe_sha256",
                    "identity has no executable digest (exe_sha256 or "
                    "exe_hash_algorithm and exe_hash)");
  return st;
}

static bh_status get_endpoint(const json_t *obj, bh_endpoint *ep, bh_err *err) {
  const json_t *v = json_object_get(obj, "ipc_endpoint");
  if (v == NULL)
    return bh_err_set(err, BH_INVALID_IDENTITY, "ipc_endpoint",
                      "identity field ipc_endpoint is missing");
  if (!json_is_object(v))
    return bh_err_set(err, BH_INVALID_IDENTITY, "ipc_endpoint",
                      "identity field ipc_endpoint must be an object, got %s",
                      kind(v));
  bh_status st = get_string(v, "namespace_id", "ipc_endpoint.namespace_id",
                            &ep->namespace_id, err);
  if (st == BH_OK)
    st = get_string(v, "path", "ipc_endpoint.path", &ep->path, err);
  return st;
}

/* Every field of §1.7 from a parsed object, in document order. */
static bh_status from_object(const json_t *o, bh_identity *id, bh_err *err) {
  uint64_t n = 0;
  bool present;
  bh_status st = get_uint(o, "pid", true, false, UINT32_MAX, &n, &present, err);
  if (st != BH_OK) return st;
  id->pid = (uint32_t)n;
  st = get_string(o, "exe_path", "exe_path", &id->exe_path, err);
  if (st == BH_OK) st = get_digests(o, &id->digests, err);
  if (st == BH_OK) st = get_string(o, "boot_id", "boot_id", &id->boot_id, err);
  if (st == BH_OK) st = get_endpoint(o, &id->endpoint, err);
  if (st != BH_OK) return st;
  n = 0;
  st = get_uint(o, "started_at_unix_ms", false, false, INT64_MAX, &n, &present,
                err);
  if (st != BH_OK) return st;
  id->started_at_unix_ms = n;
  n = 0;
  st = get_uint(o, "idle_timeout_secs", false, true, UINT32_MAX, &n, &present,
                err);
  id->has_idle_timeout = present;
  id->idle_timeout_secs = (uint32_t)n;
  return st;
}

bh_status bh_identity_from_json(const char *text, size_t len, bh_identity *out,
                                bh_err *err) {
  json_error_t jerr;
  json_t *root =
      json_loadb(text, len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &jerr);
  if (root == NULL)
    return bh_err_set(err, BH_INVALID_JSON, NULL,
                      "invalid JSON at line %d, column %d: %s", jerr.line,
                      jerr.column, jerr.text);
  bh_identity id;
  bh_identity_init(&id);
  bh_status st;
  if (!json_is_object(root))
    st = bh_err_set(err, BH_INVALID_IDENTITY, NULL,
                    "an identity must be a JSON object, got %s", kind(root));
  else
    st = from_object(root, &id, err);
  if (st == BH_OK) bh_identity_move(out, &id);
  bh_identity_clear(&id);
  json_decref(root);
  return st;
}
