/* Identity primitives (design §1.3, §1.5, §1.8): endpoints, the identity
 * lifecycle, the prober's field comparison (with Rust-like lexical path
 * equality) and hex. The protobuf and JSON forms live in identity_pb.c and
 * identity_json.c; the identity of a live process is proc.c's. */
#include "identity.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

/* strdup that treats NULL as "". */
static char *dup_or_empty(const char *s) {
  return strdup(s != NULL ? s : "");
}

static const char *or_empty(const char *s) {
  return s != NULL ? s : "";
}

/* ---- endpoints ----------------------------------------------------------- */

bh_status bh_endpoint_set(bh_endpoint *ep, const char *namespace_id,
                          const char *path, bh_err *err) {
  char *ns = dup_or_empty(namespace_id);
  char *p = dup_or_empty(path);
  if (ns == NULL || p == NULL) {
    free(ns);
    free(p);
    return bh_err_set(err, BH_SYSTEM, NULL, "out of memory copying endpoint");
  }
  bh_endpoint_clear(ep);
  ep->namespace_id = ns;
  ep->path = p;
  return BH_OK;
}

bh_status bh_endpoint_copy(bh_endpoint *dst, const bh_endpoint *src,
                           bh_err *err) {
  return bh_endpoint_set(dst, src->namespace_id, src->path, err);
}

void bh_endpoint_clear(bh_endpoint *ep) {
  free(ep->namespace_id);
  free(ep->path);
  ep->namespace_id = NULL;
  ep->path = NULL;
}

bool bh_endpoint_equal(const bh_endpoint *a, const bh_endpoint *b) {
  return strcmp(or_empty(a->namespace_id), or_empty(b->namespace_id)) == 0 &&
         strcmp(or_empty(a->path), or_empty(b->path)) == 0;
}

/* A usable endpoint path is absolute, non-empty and fits sun_path with its
 * NUL. */
bh_status bh_endpoint_check(const bh_endpoint *ep, bh_err *err) {
  const char *path = or_empty(ep->path);
  size_t max = sizeof(((struct sockaddr_un *)0)->sun_path) - 1;
  size_t len = strlen(path);
  if (len == 0)
    return bh_err_set(err, BH_INVALID_ENDPOINT, "path",
                      "endpoint path is empty, expected a socket path");
  if (path[0] != '/')
    return bh_err_set(err, BH_INVALID_ENDPOINT, "path",
                      "endpoint path \"%.80s\" is relative, expected an "
                      "absolute socket path (a relative one would resolve "
                      "against whatever the working directory is)",
                      path);
  if (len > max)
    return bh_err_set(err, BH_INVALID_ENDPOINT, "path",
                      "endpoint path is %zu bytes, at most %zu fit sun_path",
                      len, max);
  return BH_OK;
}

/* ---- lifecycle ----------------------------------------------------------- */

void bh_identity_init(bh_identity *id) {
  memset(id, 0, sizeof *id);
}

void bh_identity_clear(bh_identity *id) {
  free(id->exe_path);
  free(id->boot_id);
  bh_endpoint_clear(&id->endpoint);
  bh_identity_init(id);
}

bh_status bh_identity_copy(bh_identity *dst, const bh_identity *src,
                           bh_err *err) {
  bh_identity tmp;
  bh_identity_init(&tmp);
  tmp.exe_path = dup_or_empty(src->exe_path);
  tmp.boot_id = dup_or_empty(src->boot_id);
  if (tmp.exe_path == NULL || tmp.boot_id == NULL ||
      (bh_identity_has_endpoint(src) &&
       bh_endpoint_copy(&tmp.endpoint, &src->endpoint, NULL) != BH_OK)) {
    bh_identity_clear(&tmp);
    return bh_err_set(err, BH_SYSTEM, NULL, "out of memory copying identity");
  }
  tmp.pid = src->pid;
  tmp.digests = src->digests;
  tmp.started_at_unix_ms = src->started_at_unix_ms;
  tmp.has_idle_timeout = src->has_idle_timeout;
  tmp.idle_timeout_secs = src->has_idle_timeout ? src->idle_timeout_secs : 0;
  bh_identity_move(dst, &tmp);
  return BH_OK;
}

void bh_identity_move(bh_identity *dst, bh_identity *src) {
  if (dst == src) return;
  bh_identity_clear(dst);
  *dst = *src;
  bh_identity_init(src);
}

bool bh_identity_has_endpoint(const bh_identity *id) {
  return id->endpoint.path != NULL;
}

/* ---- comparison ---------------------------------------------------------- */

/* Next component of a path at *p (skipping separators), as [start, len).
 * Returns false at the end. */
static bool next_component(const char **p, const char **start, size_t *len) {
  const char *s = *p;
  while (*s == '/')
    s++;
  if (*s == '\0') {
    *p = s;
    return false;
  }
  const char *e = s;
  while (*e != '\0' && *e != '/')
    e++;
  *start = s;
  *len = (size_t)(e - s);
  *p = e;
  return true;
}

/* Next component that Rust's Path::components() yields: "." is dropped
 * except as the very first component of a relative path (Rust keeps a
 * leading CurDir: "./a" != "a"). */
static bool next_kept(const char **p, bool *first, bool relative,
                      const char **start, size_t *len) {
  while (next_component(p, start, len)) {
    bool keep = !(*len == 1 && **start == '.') || (*first && relative);
    *first = false;
    if (keep) return true;
  }
  return false;
}

/* Lexical equality like Rust's Path ==: same root-ness, then the same
 * component sequence. ".." is a component like any other. */
bool bh_path_lexical_equal(const char *a, const char *b) {
  a = or_empty(a);
  b = or_empty(b);
  bool rel_a = a[0] != '/', rel_b = b[0] != '/';
  if (rel_a != rel_b) return false;
  bool first_a = true, first_b = true;
  for (;;) {
    const char *sa = NULL, *sb = NULL;
    size_t la = 0, lb = 0;
    bool ha = next_kept(&a, &first_a, rel_a, &sa, &la);
    bool hb = next_kept(&b, &first_b, rel_b, &sb, &lb);
    if (ha != hb) return false;
    if (!ha) return true;
    if (la != lb || memcmp(sa, sb, la) != 0) return false;
  }
}

const uint8_t *bh_digest_of(const bh_digests *d, unsigned alg) {
  if (!(d->algs & alg)) return NULL;
  return alg == BH_ALG_SHA256 ? d->sha256 : d->blake3;
}

/* Say how expected and got differ on field, with both values. */
static void describe(const char *field, const bh_identity *want,
                     const bh_identity *got, char *buf, size_t cap) {
  if (strcmp(field, "pid") == 0) {
    (void)snprintf(buf, cap, "expected %u, got %u", want->pid, got->pid);
  } else if (strcmp(field, "exe_path") == 0) {
    (void)snprintf(buf, cap, "expected \"%s\", got \"%s\"",
                   or_empty(want->exe_path), or_empty(got->exe_path));
  } else if (strcmp(field, "boot_id") == 0) {
    (void)snprintf(buf, cap, "expected \"%s\", got \"%s\"",
                   or_empty(want->boot_id), or_empty(got->boot_id));
  } else if (strcmp(field, "ipc_endpoint") == 0) {
    (void)snprintf(
        buf, cap, "expected (\"%s\", \"%s\"), got (\"%s\", \"%s\")",
        or_empty(want->endpoint.namespace_id), or_empty(want->endpoint.path),
        or_empty(got->endpoint.namespace_id), or_empty(got->endpoint.path));
  } else {
    unsigned alg =
        strcmp(field, "exe_sha256") == 0 ? BH_ALG_SHA256 : BH_ALG_BLAKE3;
    char a[BH_DIGEST_HEX_LEN + 1], b[BH_DIGEST_HEX_LEN + 1];
    bh_hex_encode(bh_digest_of(&want->digests, alg), BH_DIGEST_LEN, a);
    bh_hex_encode(bh_digest_of(&got->digests, alg), BH_DIGEST_LEN, b);
    (void)snprintf(buf, cap, "expected %s, got %s", a, b);
  }
}

/* Do the two digests of alg differ (both must have it)? */
static bool digest_differs(const bh_identity *a, const bh_identity *b,
                           unsigned alg) {
  const uint8_t *x = bh_digest_of(&a->digests, alg);
  const uint8_t *y = bh_digest_of(&b->digests, alg);
  return x != NULL && y != NULL && memcmp(x, y, BH_DIGEST_LEN) != 0;
}

bh_status bh_identity_compare(const bh_identity *expected,
                              const bh_identity *got, bh_err *err) {
  if ((expected->digests.algs & got->digests.algs) == 0)
    return bh_err_set(
        err, BH_UNSUPPORTED_HASH_ALGORITHM, NULL,
        "the answer carries %s, the expected identity %s: no digest in "
        "common",
        got->digests.algs & BH_ALG_BLAKE3 ? "only a blake3 exe_hash"
                                          : "only a sha256 exe_sha256",
        expected->digests.algs & BH_ALG_BLAKE3 ? "only blake3" : "only sha256");
  const char *diff[BH_ERR_FIELDS_MAX];
  unsigned n = 0;
  if (expected->pid != got->pid) diff[n++] = "pid";
  if (!bh_path_lexical_equal(expected->exe_path, got->exe_path))
    diff[n++] = "exe_path";
  if (digest_differs(expected, got, BH_ALG_SHA256)) diff[n++] = "exe_sha256";
  if (digest_differs(expected, got, BH_ALG_BLAKE3)) diff[n++] = "exe_hash";
  if (strcmp(or_empty(expected->boot_id), or_empty(got->boot_id)) != 0)
    diff[n++] = "boot_id";
  if (!bh_endpoint_equal(&expected->endpoint, &got->endpoint))
    diff[n++] = "ipc_endpoint";
  if (n == 0) return BH_OK;
  char what[200], also[96] = "";
  describe(diff[0], expected, got, what, sizeof what);
  for (unsigned i = 1; i < n; i++) {
    size_t used = strlen(also);
    (void)snprintf(also + used, sizeof also - used, "%s%s",
                   i == 1 ? " (also differ: " : ", ", diff[i]);
  }
  if (n > 1) (void)strncat(also, ")", sizeof also - strlen(also) - 1);
  bh_err_set(err, BH_IDENTITY_MISMATCH, diff[0],
             "identity mismatch on %s: %s%s", diff[0], what, also);
  if (err != NULL) {
    for (unsigned i = 0; i < n; i++)
      err->fields[i] = diff[i];
    err->nfields = n;
  }
  return BH_IDENTITY_MISMATCH;
}

/* ---- hex ------------------------------------------------- */

void bh_hex_encode(const uint8_t *in, size_t n, char *out) {
  static const char digits[] = "0123456789abcdef";
  for (size_t i = 0; i < n; i++) {
    out[2 * i] = digits[in[i] >> 4];
    out[2 * i + 1] = digits[in[i] & 15];
  }
  out[2 * n] = '\0';
}

static int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

bool bh_hex_decode(const char *hex, size_t hex_len, uint8_t *out, size_t n) {
  if (hex_len != 2 * n) return false;
  for (size_t i = 0; i < n; i++) {
    int hi = hex_value(hex[2 * i]), lo = hex_value(hex[2 * i + 1]);
    if (hi < 0 || lo < 0) return false;
    out[i] = (uint8_t)(hi << 4 | lo);
  }
  return true;
}
