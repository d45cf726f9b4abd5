/* The JSON form of an identity (DESIGN §1.7), through jansson.
 *
 * Writer: exactly the fields of §1.7, in that order, compact. An absent
 * idle timeout is written as null (not omitted) so that every identity
 * document has the same shape; readers accept both. started_at_unix_ms
 * above 2^63-1 (not representable in jansson) is written as 2^63-1.
 *
 * Reader: strict about what it needs (invalid_json with jansson's line and
 * column for syntax; invalid_identity with err->field naming the field for
 * anything missing, mistyped or out of range), lenient about the rest
 * (unknown fields are ignored, duplicate keys are rejected). */
#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "identity.h"

char *bh_identity_to_json(const bh_identity *id) {
  char hex[BH_SHA256_HEX_LEN + 1];
  bh_hex_encode(id->exe_sha256, BH_SHA256_LEN, hex);
  json_int_t started = id->started_at_unix_ms > (uint64_t)INT64_MAX
                           ? (json_int_t)INT64_MAX
                           : (json_int_t)id->started_at_unix_ms;
  json_t *idle = id->has_idle_timeout
                     ? json_integer((json_int_t)id->idle_timeout_secs)
                     : json_null();
  /* "o" steals idle, also when packing fails. */
  json_t *o =
      json_pack("{s:I, s:s, s:s, s:s, s:{s:s, s:s}, s:I, s:o}", "pid",
                (json_int_t)id->pid, "exe_path",
                id->exe_path ? id->exe_path : "", "exe_sha256", hex, "boot_id",
                id->boot_id ? id->boot_id : "", "ipc_endpoint", "namespace_id",
                id->endpoint.namespace_id ? id->endpoint.namespace_id : "",
                "path", id->endpoint.path ? id->endpoint.path : "",
                "started_at_unix_ms", started, "idle_timeout_secs", idle);
  if (o == NULL) return NULL;
  char *text = json_dumps(o, JSON_COMPACT);
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

static bh_status get_digest(const json_t *obj, uint8_t out[BH_SHA256_LEN],
                            bh_err *err) {
  char *hex = NULL;
  bh_status st = get_string(obj, "exe_sha256", "exe_sha256", &hex, err);
  if (st != BH_OK) return st;
  size_t len = strlen(hex);
  if (len != BH_SHA256_HEX_LEN)
    st = bh_err_set(err, BH_INVALID_IDENTITY, "exe_sha256",
                    "identity field exe_sha256 must be %d hex digits, got %zu "
                    "characters",
                    BH_SHA256_HEX_LEN, len);
  else if (!bh_hex_decode(hex, len, out, BH_SHA256_LEN))
    st = bh_err_set(err, BH_INVALID_IDENTITY, "exe_sha256",
                    "identity field exe_sha256 must be hex digits, got "
                    "\"%s\"",
                    hex);
  free(hex);
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
  if (st == BH_OK) st = get_digest(o, id->exe_sha256, err);
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
