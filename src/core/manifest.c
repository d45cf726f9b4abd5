/* Cache manifests (see manifest.h): decode/verify/seal through protobuf-c
 * with the whole schema, writes and the stale-daemon clean-up through
 * fsutil's directory descriptors, find, the central registry. */
#include "manifest.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "daemon.pb-c.h"
#include "digest.h"
#include "fdreserve.h"
#include "fsutil.h"
#include "host.h"
#include "manifest.pb-c.h"
#include "pbutil.h"

typedef RunningProcess__Broker__V1__DaemonProcess pb_daemon;

enum { FIND_DEPTH_CAP = 64, READ_CHUNK = 64 * 1024 };

static bh_status oom(bh_err *err) {
  return bh_err_set(err, BH_SYSTEM, NULL, "out of memory");
}

static void pb_free(bh_manifest_pb *pb) {
  if (pb != NULL)
    running_process__broker__v1__cache_manifest__free_unpacked(
        pb, &bh_pb_allocator);
}

/* ---- lifecycle ------------------------------------------------------------
 */

bh_status bh_manifest_init(bh_manifest *m, bh_err *err) {
  memset(m, 0, sizeof *m);
  bh_identity_init(&m->daemon);
  m->pb = bh_pb_allocator.alloc(NULL, sizeof *m->pb);
  if (m->pb == NULL) return oom(err);
  running_process__broker__v1__cache_manifest__init(m->pb);
  return BH_OK;
}

void bh_manifest_clear(bh_manifest *m) {
  pb_free(m->pb);
  bh_identity_clear(&m->daemon);
  memset(m, 0, sizeof *m);
}

int bh_manifest_generation(const bh_manifest *m) {
  const pb_daemon *d = m->pb != NULL ? m->pb->current_daemon : NULL;
  if (d == NULL) return 0;
  return d->exe_sha256.len != 0 ? 1 : 2; /* the fields of a record */
}

bh_status bh_manifest_adopt(bh_manifest *m, bh_manifest_pb *pb, bh_err *err) {
  bh_identity id;
  bh_identity_init(&id);
  if (pb->current_daemon != NULL) {
    bh_status st = bh_identity_from_pb(pb->current_daemon, &id, err);
    if (st != BH_OK) {
      pb_free(pb);
      return st;
    }
  }
  pb_free(m->pb);
  bh_identity_move(&m->daemon, &id);
  m->pb = pb;
  m->sealed = false;
  return BH_OK;
}

/* ---- encoding, sealing, verifying -----------------------------------------
 */

/* The canonical encoding of pb as it is (no unknown fields are ever kept,
 * so protobuf-c writes known fields in ascending tag order, defaults left
 * out: prost's encoding). */
static bh_status pack(const bh_manifest_pb *pb, uint8_t **out, size_t *len,
                      bh_err *err) {
  size_t n = running_process__broker__v1__cache_manifest__get_packed_size(pb);
  uint8_t *buf = malloc(n > 0 ? n : 1);
  if (buf == NULL) return oom(err);
  *len = running_process__broker__v1__cache_manifest__pack(pb, buf);
  *out = buf;
  return BH_OK;
}

/* SHA-256 of the encoding of pb with self_sha256 cleared. */
static bh_status seal_of(bh_manifest_pb *pb, uint8_t out[BH_DIGEST_LEN],
                         bh_err *err) {
  ProtobufCBinaryData saved = pb->self_sha256;
  pb->self_sha256.data = NULL;
  pb->self_sha256.len = 0;
  uint8_t *buf = NULL;
  size_t len = 0;
  bh_status st = pack(pb, &buf, &len, err);
  pb->self_sha256 = saved;
  if (st != BH_OK) return st;
  bh_digest_bytes(buf, len, out);
  free(buf);
  return BH_OK;
}

bh_status bh_manifest_seal_encode(bh_manifest_pb *pb, uint8_t **out,
                                  size_t *out_len, bh_err *err) {
  pb->manifest_schema_version = 1;
  if (pb->media_type == NULL || pb->media_type[0] == '\0') {
    char *mt = bh_pb_allocator.alloc(NULL, sizeof BH_MANIFEST_MEDIA_TYPE);
    if (mt == NULL) return oom(err);
    memcpy(mt, BH_MANIFEST_MEDIA_TYPE, sizeof BH_MANIFEST_MEDIA_TYPE);
    if (pb->media_type != NULL && pb->media_type != protobuf_c_empty_string)
      bh_pb_allocator.free(NULL, pb->media_type);
    pb->media_type = mt;
  }
  uint8_t seal[BH_DIGEST_LEN];
  bh_status st = seal_of(pb, seal, err);
  if (st != BH_OK) return st;
  uint8_t *data = bh_pb_allocator.alloc(NULL, BH_DIGEST_LEN);
  if (data == NULL) return oom(err);
  memcpy(data, seal, BH_DIGEST_LEN);
  bh_pb_allocator.free(NULL, pb->self_sha256.data);
  pb->self_sha256.data = data;
  pb->self_sha256.len = BH_DIGEST_LEN;
  return pack(pb, out, out_len, err);
}

/* What the original read_manifest checks after decoding: the schema
 * version, then the seal (over what it knows: the message as decoded,
 * unknown fields dropped). A daemon carrying both generations re-encodes
 * differently in each real reader: corrupt to both. */
static bh_status verify(bh_manifest_pb *pb, bh_err *err) {
  if (pb->manifest_schema_version > 1)
    return bh_err_set(err, BH_MANIFEST_SCHEMA_TOO_NEW, NULL,
                      "manifest_schema_version %u is newer than the 1 this "
                      "reads",
                      pb->manifest_schema_version);
  const pb_daemon *d = pb->current_daemon;
  if (d != NULL && d->exe_sha256.len != 0 &&
      (d->exe_hash.len != 0 ||
       (d->exe_hash_algorithm != NULL && d->exe_hash_algorithm[0] != '\0')))
    return bh_err_set(err, BH_MANIFEST_CORRUPT, NULL,
                      "manifest's current_daemon holds both digest "
                      "generations (exe_sha256 and exe_hash): no real reader "
                      "can verify it");
  if (pb->self_sha256.len != BH_DIGEST_LEN)
    return bh_err_set(err, BH_MANIFEST_CORRUPT, NULL,
                      "manifest self_sha256 is %zu bytes: not sealed",
                      pb->self_sha256.len);
  uint8_t want[BH_DIGEST_LEN];
  bh_status st = seal_of(pb, want, err);
  if (st != BH_OK) return st;
  if (memcmp(want, pb->self_sha256.data, BH_DIGEST_LEN) == 0) return BH_OK;
  char a[BH_DIGEST_HEX_LEN + 1], b[BH_DIGEST_HEX_LEN + 1];
  bh_hex_encode(pb->self_sha256.data, BH_DIGEST_LEN, a);
  bh_hex_encode(want, BH_DIGEST_LEN, b);
  return bh_err_set(err, BH_MANIFEST_CORRUPT, NULL,
                    "manifest self_sha256 mismatch: it says %.16s…, its "
                    "content hashes to %.16s…",
                    a, b);
}

bh_status bh_manifest_decode(const uint8_t *buf, size_t len, bool check,
                             bh_manifest *out, bh_err *err) {
  static const uint8_t empty[1];
  if (bh_pb_prescan(&running_process__broker__v1__cache_manifest__descriptor,
                    buf, len, &bh_pb_limits_manifest, BH_MANIFEST_DECODE,
                    err) != BH_OK)
    return BH_MANIFEST_DECODE;
  bh_manifest_pb *pb = running_process__broker__v1__cache_manifest__unpack(
      &bh_pb_allocator, len, buf != NULL ? buf : empty);
  if (pb == NULL)
    return bh_err_set(err, BH_MANIFEST_DECODE, NULL,
                      "expected a CacheManifest protobuf, got %zu bytes that "
                      "do not decode",
                      len);
  const char *why = !bh_pb_tags_ok(&pb->base)      ? "a field number 0"
                    : !bh_pb_strings_ok(&pb->base) ? "a string that is not "
                                                     "UTF-8 or holds NUL"
                                                   : NULL;
  if (why != NULL) {
    pb_free(pb);
    return bh_err_set(err, BH_MANIFEST_DECODE, NULL,
                      "expected a CacheManifest protobuf, got %s", why);
  }
  bh_pb_strip_unknown(&pb->base);
  bh_status st = check ? verify(pb, err) : BH_OK;
  if (st != BH_OK) {
    pb_free(pb);
    return st;
  }
  bh_manifest m = {0};
  st = bh_manifest_adopt(&m, pb, err);
  if (st != BH_OK) {
    bh_manifest_clear(&m);
    return st;
  }
  m.sealed = check;
  *out = m;
  return BH_OK;
}

/* ---- the daemon -----------------------------------------------------------
 */

bh_status bh_manifest_set_daemon(bh_manifest *m, const bh_identity *id,
                                 int generation, bh_err *err) {
  pb_daemon *d = NULL;
  bh_identity copy;
  bh_identity_init(&copy);
  if (id != NULL) {
    if (generation == 0)
      generation = (id->digests.algs & BH_ALG_BLAKE3) ? 2 : 1;
    uint8_t *buf = NULL;
    size_t len = 0;
    bh_status st = bh_identity_encode(
        id, generation == 1 ? BH_FORM_GEN1 : BH_FORM_GEN2, &buf, &len, err);
    if (st != BH_OK) return st;
    d = running_process__broker__v1__daemon_process__unpack(&bh_pb_allocator,
                                                            len, buf);
    free(buf);
    if (d == NULL || bh_identity_from_pb(d, &copy, err) != BH_OK) {
      if (d != NULL)
        running_process__broker__v1__daemon_process__free_unpacked(
            d, &bh_pb_allocator);
      return bh_err_set(err, BH_SYSTEM, NULL,
                        "re-decoding an encoded identity failed");
    }
  }
  if (m->pb->current_daemon != NULL)
    running_process__broker__v1__daemon_process__free_unpacked(
        m->pb->current_daemon, &bh_pb_allocator);
  m->pb->current_daemon = d;
  bh_identity_move(&m->daemon, &copy);
  m->sealed = false;
  return BH_OK;
}

bh_status bh_manifest_check_host(const bh_manifest *m, bh_err *err) {
  const RunningProcess__Broker__V1__HostIdentity *h = m->pb->host;
  return h != NULL ? bh_host_check(h->machine_id, h->hostname, err) : BH_OK;
}

/* ---- files ----------------------------------------------------------------
 */

/* The top level of a manifest being read, judged while its bytes come
 * in: a field whose length says it ends past the cap makes it too large
 * at once (a 16 MiB field is refused after its first chunk, not after 16
 * MiB), and the top-level counts of fields and unknown fields are held
 * to the manifest's decode limits as they grow. What it cannot judge
 * (groups, field 0, a malformed varint) it leaves to the decoder. */
typedef struct top_scan {
  size_t off;    /* where the next field header starts */
  size_t fields; /* top-level fields seen */
  size_t unknown;
  bool done; /* nothing more to judge here */
} top_scan;

/* A varint at buf[*at, len): 1 read (advanced), 0 incomplete, -1 bad. */
static int read_varint(const uint8_t *buf, size_t len, size_t *at,
                       uint64_t *v) {
  uint64_t x = 0;
  for (size_t i = 0; i < 10; i++) {
    if (*at + i >= len) return 0;
    uint8_t b = buf[*at + i];
    x |= (uint64_t)(b & 0x7f) << (7 * i);
    if ((b & 0x80) == 0) {
      *at += i + 1;
      *v = x;
      return 1;
    }
  }
  return -1;
}

static bh_status scan_top(top_scan *s, const uint8_t *buf, size_t len,
                          const char *what, bh_err *err) {
  const ProtobufCMessageDescriptor *desc =
      &running_process__broker__v1__cache_manifest__descriptor;
  const bh_pb_limits *lim = &bh_pb_limits_manifest;
  while (!s->done && s->off < len) {
    size_t at = s->off;
    uint64_t key, n = 0;
    int r = read_varint(buf, len, &at, &key);
    if (r == 0) return BH_OK; /* the rest of the key comes later */
    uint32_t num = (uint32_t)(key >> 3);
    unsigned wt = (unsigned)(key & 7);
    if (r < 0 || num == 0 || key >> 32 != 0 || wt == 3 || wt == 4 || wt > 5) {
      s->done = true;
      break;
    }
    if (wt == 0 && (r = read_varint(buf, len, &at, &n)) <= 0) {
      if (r < 0) s->done = true;
      return BH_OK;
    }
    if (wt == 2) {
      r = read_varint(buf, len, &at, &n);
      if (r < 0) s->done = true;
      if (r <= 0) return BH_OK;
      if (n > BH_MANIFEST_MAX_BYTES - at)
        return bh_err_set(err, BH_MANIFEST_TOO_LARGE, NULL,
                          "%s: field %u at byte %zu says it holds %llu bytes: "
                          "larger than any manifest (the limit is %zu bytes); "
                          "refused before reading the rest",
                          what, num, s->off, (unsigned long long)n,
                          (size_t)BH_MANIFEST_MAX_BYTES);
    }
    at += wt == 1 ? 8 : wt == 5 ? 4 : (size_t)(wt == 2 ? n : 0);
    s->fields++;
    if (protobuf_c_message_descriptor_get_field(desc, num) == NULL)
      s->unknown++;
    if (s->fields > lim->max_fields || s->unknown > lim->max_unknown)
      return bh_err_set(
          err, BH_MANIFEST_DECODE, NULL,
          "%s holds more than %zu %sfields: refused before "
          "reading the rest",
          what,
          s->unknown > lim->max_unknown ? lim->max_unknown : lim->max_fields,
          s->unknown > lim->max_unknown ? "unknown " : "");
    s->off = at;
  }
  return BH_OK;
}

/* Read the manifest name in dirfd into *out (malloc'd, *len bytes; *st its
 * fstat) a chunk at a time: refused as manifest_too_large by its size
 * before a byte is read, or by scan_top as soon as its bytes say so. */
static bh_status read_bytes_at(int dirfd, const char *name, const char *what,
                               uint8_t **out, size_t *len, struct stat *st,
                               bh_err *err) {
  const size_t max = BH_MANIFEST_MAX_BYTES;
  int fd;
  bh_status rc =
      bh_fs_open_at(dirfd, name, &fd, st, NULL, BH_MANIFEST_IO, what, err);
  if (rc != BH_OK) return rc;
  if ((uintmax_t)st->st_size > max) {
    (void)close(fd); /* read-only */
    return bh_err_set(err, BH_MANIFEST_TOO_LARGE, NULL,
                      "%s is %jd bytes: larger than any manifest (the limit "
                      "is %zu bytes); refused before reading it",
                      what, (intmax_t)st->st_size, max);
  }
  size_t cap = (size_t)st->st_size + 1, got = 0; /* + 1: to see the end */
  uint8_t *buf = malloc(cap);
  top_scan scan = {0};
  rc = buf == NULL ? oom(err) : BH_OK;
  while (rc == BH_OK) {
    if (got == cap) { /* it grew since the stat */
      size_t ncap = cap > max / 2 ? max + 1 : cap * 2;
      uint8_t *nb = got > max ? NULL : realloc(buf, ncap);
      if (nb == NULL) {
        rc = got > max ? BH_MANIFEST_TOO_LARGE : oom(err);
        break;
      }
      buf = nb;
      cap = ncap;
    }
    size_t want = cap - got < READ_CHUNK ? cap - got : READ_CHUNK;
    ssize_t n = read(fd, buf + got, want);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0)
      rc = bh_err_set(err, BH_MANIFEST_IO, NULL, "cannot read %s: %s", what,
                      strerror(errno));
    if (n <= 0) break;
    got += (size_t)n;
    if (got > max)
      rc = BH_MANIFEST_TOO_LARGE;
    else
      rc = scan_top(&scan, buf, got, what, err);
  }
  (void)close(fd); /* read-only */
  if (rc == BH_MANIFEST_TOO_LARGE && err != NULL && err->code != rc)
    bh_err_set(err, rc, NULL,
               "%s holds more than %zu bytes: larger than any manifest", what,
               max);
  if (rc != BH_OK) {
    free(buf);
    return rc;
  }
  *out = buf;
  *len = got;
  return BH_OK;
}

bh_status bh_manifest_read_at(int dirfd, const char *name, const char *what,
                              bool check, bh_manifest *out, struct stat *st,
                              bh_err *err) {
  uint8_t *buf = NULL;
  size_t len = 0;
  struct stat sb;
  memset(out, 0, sizeof *out);
  bh_status rc = read_bytes_at(dirfd, name, what, &buf, &len, &sb, err);
  if (rc != BH_OK) return rc;
  rc = bh_manifest_decode(buf, len, check, out, err);
  free(buf);
  if (rc == BH_OK && st != NULL) *st = sb;
  return rc;
}

bh_status bh_manifest_read_stat(const char *path, bool check, bh_manifest *out,
                                struct stat *st, bh_err *err) {
  const char *leaf;
  bh_err own;
  if (err == NULL) err = &own; /* its code is what we return */
  memset(out, 0, sizeof *out);
  int dirfd;
  bh_status rc = bh_fs_open_parent(path, &dirfd, &leaf, BH_MANIFEST_IO, err);
  if (rc != BH_OK) return rc;
  rc = bh_manifest_read_at(dirfd, leaf, path, check, out, st, err);
  (void)close(dirfd);
  bh_fd_reserve_refill();
  return rc;
}

bh_status bh_manifest_read(const char *path, bool check, bh_manifest *out,
                           bh_err *err) {
  return bh_manifest_read_stat(path, check, out, NULL, err);
}

bh_status bh_manifest_write(const char *path, bh_manifest *m, bh_err *err) {
  uint8_t *buf = NULL;
  size_t len = 0;
  bh_status st = bh_manifest_seal_encode(m->pb, &buf, &len, err);
  if (st != BH_OK) return st;
  st = bh_fs_write_atomic(path, buf, len, true, BH_MANIFEST_MODE,
                          BH_MANIFEST_IO, err);
  free(buf);
  if (st == BH_OK) m->sealed = true;
  return st;
}

/* Is the manifest's daemon the one the caller probed? */
static bool same_daemon(const bh_manifest *m, const bh_identity *want) {
  return bh_manifest_generation(m) != 0 &&
         bh_identity_compare(want, &m->daemon, NULL) == BH_OK &&
         want->started_at_unix_ms == m->daemon.started_at_unix_ms;
}

/* The clean-up on the file name in dirfd (see bh_manifest_clear_daemon). */
static bh_status clear_at(int dirfd, const char *name, const char *path,
                          const bh_identity *only_if, bh_clear_outcome *outcome,
                          bh_err *err) {
  uint8_t *buf = NULL, *out = NULL;
  size_t len = 0, out_len = 0;
  struct stat st;
  bh_manifest m = {0};
  bh_status s = read_bytes_at(dirfd, name, path, &buf, &len, &st, err);
  if (s == BH_OK) s = bh_manifest_decode(buf, len, true, &m, err);
  if (s != BH_OK) goto end;
  if (bh_manifest_generation(&m) == 0) {
    *outcome = BH_CLEAR_NONE;
    goto end;
  }
  if (only_if != NULL && !same_daemon(&m, only_if)) {
    *outcome = BH_CLEAR_OTHER;
    goto end;
  }
  s = bh_manifest_set_daemon(&m, NULL, 0, err);
  if (s == BH_OK) s = bh_manifest_seal_encode(m.pb, &out, &out_len, err);
  if (s != BH_OK) goto end;
  bool changed = false;
  bh_fs_replace_opts o = {
      .expect = &st, .keep_existing = true, .mode = 0, .what = path};
  s = bh_fs_replace_at(dirfd, name, out, out_len, &o, &changed, BH_MANIFEST_IO,
                       err);
  if (s == BH_OK) *outcome = changed ? BH_CLEAR_CHANGED : BH_CLEAR_DONE;
end:
  free(buf);
  free(out);
  bh_manifest_clear(&m);
  return s;
}

bh_status bh_manifest_clear_daemon_at(int dirfd, const char *name,
                                      const char *path,
                                      const bh_identity *only_if,
                                      bh_clear_outcome *outcome, bh_err *err) {
  bh_clear_outcome dummy;
  if (outcome == NULL) outcome = &dummy;
  *outcome = BH_CLEAR_NONE;
  bh_status s = clear_at(dirfd, name, path, only_if, outcome, err);
  bh_fd_reserve_refill();
  return s;
}

bh_status bh_manifest_clear_daemon(const char *path, const bh_identity *only_if,
                                   bh_clear_outcome *outcome, bh_err *err) {
  const char *leaf;
  bh_clear_outcome dummy;
  if (outcome == NULL) outcome = &dummy;
  *outcome = BH_CLEAR_NONE;
  int dirfd;
  bh_status s = bh_fs_open_parent(path, &dirfd, &leaf, BH_MANIFEST_IO, err);
  if (s != BH_OK) return s;
  s = bh_manifest_clear_daemon_at(dirfd, leaf, path, only_if, outcome, err);
  (void)close(dirfd);
  bh_fd_reserve_refill();
  return s;
}

/* ---- find -------------------------------------------------------------- */

static bh_status io_err(bh_err *err, const char *what, const char *path,
                        int errnum) {
  return bh_err_set(err, BH_MANIFEST_IO, NULL, "%s %s: %s", what, path,
                    strerror(errnum));
}

/* Append a copy of s to the list of strings *v (*n of them). */
static bh_status push_string(char ***v, size_t *n, char *s, bh_err *err) {
  if (s == NULL) return oom(err);
  char **grown = realloc(*v, (*n + 1) * sizeof *grown);
  if (grown == NULL) {
    free(s);
    return oom(err);
  }
  *v = grown;
  (*v)[(*n)++] = s;
  return BH_OK;
}

static bh_status list_push(bh_manifest_list *l, const char *dir,
                           const char *name, bh_err *err) {
  char *p = NULL;
  if (asprintf(&p, "%s/%s", dir, name) < 0) p = NULL;
  return push_string(&l->paths, &l->count, p, err);
}

/* Note that the directory path could not be read (errnum says why): the
 * scan goes on, and the caller is told (never skipped silently). */
static bh_status problem(bh_manifest_list *l, const char *what,
                         const char *path, int errnum, bh_err *err) {
  char *p = NULL;
  if (asprintf(&p, "%s %s: %s", what, path[0] != '\0' ? path : "/",
               strerror(errnum)) < 0)
    p = NULL;
  return push_string(&l->problems, &l->nproblems, p, err);
}

/* The type of entry e in the open directory, without following symlinks
 * (d_type when the filesystem gives it, else fstatat). */
static unsigned char entry_type(DIR *d, const struct dirent *e) {
  if (e->d_type != DT_UNKNOWN) return e->d_type;
  struct stat sb;
  if (fstatat(dirfd(d), e->d_name, &sb, AT_SYMLINK_NOFOLLOW) != 0)
    return DT_UNKNOWN;
  if (S_ISREG(sb.st_mode)) return DT_REG;
  if (S_ISDIR(sb.st_mode)) return DT_DIR;
  return DT_UNKNOWN;
}

/* Walk the directory open as fd (taken over and closed), collecting
 * manifests, and the directories that could not be read as problems;
 * descend with O_NOFOLLOW so a symlink is never entered. */
static bh_status walk(int fd, const char *path, int depth, int max_depth,
                      bh_manifest_list *out, bh_err *err) {
  DIR *d = fdopendir(fd);
  if (d == NULL) {
    int e = errno;
    (void)close(fd);
    return problem(out, "cannot read directory", path, e, err);
  }
  bh_status st = BH_OK;
  struct dirent *e;
  for (;;) {
    errno = 0;
    if (st != BH_OK || (e = readdir(d)) == NULL) break;
    if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
    unsigned char type = entry_type(d, e);
    if (type == DT_REG && strcmp(e->d_name, BH_MANIFEST_NAME) == 0) {
      st = list_push(out, path, e->d_name, err);
    } else if (type == DT_DIR && depth < max_depth) {
      char *subpath = NULL;
      if (asprintf(&subpath, "%s/%s", path, e->d_name) < 0) {
        st = oom(err);
        break;
      }
      int sub =
          bh_fd_openat(dirfd(d), e->d_name,
                       O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC, 0);
      if (sub < 0 && errno != ENOENT) /* gone meanwhile: nothing missed */
        st = problem(out, "cannot open directory", subpath, errno, err);
      else if (sub >= 0)
        st = walk(sub, subpath, depth + 1, max_depth, out, err);
      free(subpath);
    }
  }
  if (st == BH_OK && errno != 0)
    st = problem(out, "cannot read directory", path, errno, err);
  (void)closedir(d);
  return st;
}

static int cmp_paths(const void *a, const void *b) {
  return strcmp(*(char *const *)a, *(char *const *)b);
}

bh_status bh_manifest_find(const char *root, int max_depth,
                           bh_manifest_list *out, bh_err *err) {
  memset(out, 0, sizeof *out);
  if (max_depth < 0 || max_depth > FIND_DEPTH_CAP) max_depth = FIND_DEPTH_CAP;
  int fd = bh_fd_openat(AT_FDCWD, root, O_RDONLY | O_DIRECTORY | O_CLOEXEC, 0);
  if (fd < 0) {
    bh_status rc = io_err(err, "cannot open directory", root, errno);
    bh_fd_reserve_refill();
    return rc;
  }
  /* Trailing slashes would double up in the paths we build. */
  char *base = strdup(root);
  if (base == NULL) {
    (void)close(fd);
    return oom(err);
  }
  size_t n = strlen(base);
  while (n > 1 && base[n - 1] == '/')
    base[--n] = '\0';
  bh_status st =
      walk(fd, strcmp(base, "/") == 0 ? "" : base, 0, max_depth, out, err);
  free(base);
  bh_fd_reserve_refill();
  if (st != BH_OK) {
    bh_manifest_list_free(out);
    return st;
  }
  if (out->count > 1)
    qsort(out->paths, out->count, sizeof *out->paths, cmp_paths);
  return BH_OK;
}

void bh_manifest_list_free(bh_manifest_list *l) {
  for (size_t i = 0; i < l->count; i++)
    free(l->paths[i]);
  for (size_t i = 0; i < l->nproblems; i++)
    free(l->problems[i]);
  free(l->paths);
  free(l->problems);
  memset(l, 0, sizeof *l);
}

/* ---- the central registry -------------------------------------------------
 */

bh_status bh_manifest_central_dir(char **out, bh_err *err) {
  const char *env = getenv("RUNNING_PROCESS_MANIFEST_DIR");
  const char *xdg = getenv("XDG_DATA_HOME");
  const char *home = getenv("HOME");
  int n;
  *out = NULL;
  if (env != NULL && env[0] != '\0')
    n = asprintf(out, "%s", env);
  else if (xdg != NULL && xdg[0] == '/')
    n = asprintf(out, "%s/running-process/manifests", xdg);
  else if (home != NULL && home[0] == '/')
    n = asprintf(out, "%s/.local/share/running-process/manifests", home);
  else
    return bh_err_set(err, BH_MANIFEST_IO, NULL,
                      "no central manifest registry: none of "
                      "RUNNING_PROCESS_MANIFEST_DIR, XDG_DATA_HOME, HOME is "
                      "set");
  if (n < 0) {
    *out = NULL;
    return oom(err);
  }
  return BH_OK;
}

/* A registry name: {service}-{version}.pb, not a temp file. */
bool bh_manifest_registry_name(const char *name) {
  size_t n = strlen(name);
  if (name[0] == '.' || n <= 4 || strcmp(name + n - 3, ".pb") != 0)
    return false;
  const char *dash = memchr(name, '-', n - 3);
  return dash != NULL && dash != name && dash + 1 < name + n - 3;
}

/* Refuse the registry open as fd unless it belongs to owner and is
 * private, saying what is wrong: its owner, its mode, or both. */
static bh_status check_registry(int fd, const char *dir, uid_t want,
                                bh_err *err) {
  struct stat sb;
  if (fstat(fd, &sb) != 0) return io_err(err, "stat", dir, errno);
  bool owner = sb.st_uid != want, mode = (sb.st_mode & 077) != 0;
  if (!owner && !mode) return BH_OK;
  char who[112] = "", how[128] = "";
  if (owner)
    (void)snprintf(who, sizeof who, " belongs to uid %u, not to uid %u %s",
                   (unsigned)sb.st_uid, (unsigned)want,
                   want == geteuid() ? "that reads it" : "whose home it is in");
  if (mode)
    (void)snprintf(how, sizeof how,
                   "%s has mode %04o: its group or others may reach it "
                   "(expected 0700)",
                   owner ? " and" : "", (unsigned)(sb.st_mode & 07777));
  return bh_err_set(err, BH_INSECURE_REGISTRY, NULL,
                    "manifest registry %s%s%s: refused, as running-process "
                    "refuses it",
                    dir, who, how);
}

bh_status bh_manifest_registry_open(const char *dir, uid_t owner, int *fd,
                                    bool *missing, bh_err *err) {
  const char *leaf;
  *fd = -1;
  *missing = false;
  bh_err own;
  if (err == NULL) err = &own; /* its errno says "missing" below */
  int parent;
  bh_status st = bh_fs_open_parent(dir, &parent, &leaf, BH_MANIFEST_IO, err);
  if (st == BH_OK) {
    *fd = bh_fd_openat(parent, leaf,
                       O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC, 0);
    if (*fd < 0 && errno == ENOENT)
      *missing = true;
    else if (*fd < 0)
      st = io_err(err, "cannot open registry", dir, errno);
    (void)close(parent);
  } else if (err->sys_errno != ENOENT) {
    /* a symlink or worse on the way: st says so */
  } else {
    st = BH_OK;
    bh_err_clear(err); /* a parent is missing: so is the registry */
    *missing = true;
  }
  if (st == BH_OK && *fd >= 0) st = check_registry(*fd, dir, owner, err);
  if (st != BH_OK && *fd >= 0) {
    (void)close(*fd);
    *fd = -1;
  }
  bh_fd_reserve_refill();
  return st;
}

bh_status bh_manifest_registry_list(int fd, const char *dir,
                                    bh_manifest_list *out, bh_err *err) {
  memset(out, 0, sizeof *out);
  /* A descriptor of its own for the listing: fd stays the caller's, at
   * its start, for the reads through it. */
  int own = bh_fd_openat(fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC, 0);
  DIR *d = own >= 0 ? fdopendir(own) : NULL;
  if (d == NULL) {
    bh_status rc = io_err(err, "cannot read registry", dir, errno);
    if (own >= 0) (void)close(own);
    return rc;
  }
  bh_status st = BH_OK;
  struct dirent *e;
  for (;;) {
    errno = 0;
    if (st != BH_OK || (e = readdir(d)) == NULL) break;
    if (!bh_manifest_registry_name(e->d_name) || entry_type(d, e) != DT_REG)
      continue;
    st = list_push(out, dir, e->d_name, err);
  }
  if (st == BH_OK && errno != 0)
    st = io_err(err, "cannot read registry", dir, errno);
  (void)closedir(d);
  bh_fd_reserve_refill();
  if (st != BH_OK)
    bh_manifest_list_free(out);
  else if (out->count > 1)
    qsort(out->paths, out->count, sizeof *out->paths, cmp_paths);
  return st;
}

bh_status bh_manifest_scan_central(bh_manifest_list *out, char **dirp,
                                   bh_err *err) {
  char *dir = NULL;
  int fd = -1;
  bool missing = false;
  memset(out, 0, sizeof *out);
  if (dirp != NULL) *dirp = NULL;
  bh_status st = bh_manifest_central_dir(&dir, err);
  if (st == BH_OK)
    st = bh_manifest_registry_open(dir, geteuid(), &fd, &missing, err);
  if (st == BH_OK && fd >= 0) st = bh_manifest_registry_list(fd, dir, out, err);
  if (fd >= 0) (void)close(fd);
  if (st == BH_OK && dirp != NULL)
    *dirp = dir;
  else
    free(dir);
  return st;
}
