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
#include "fsutil.h"
#include "host.h"
#include "manifest.pb-c.h"
#include "pbutil.h"

typedef RunningProcess__Broker__V1__DaemonProcess pb_daemon;

enum { FIND_DEPTH_CAP = 64 };

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

bh_status bh_manifest_read(const char *path, bool check, bh_manifest *out,
                           bh_err *err) {
  uint8_t *buf = NULL;
  size_t len = 0;
  memset(out, 0, sizeof *out);
  bh_status st = bh_fs_read_file(path, BH_MANIFEST_MAX_BYTES, &buf, &len, NULL,
                                 NULL, BH_MANIFEST_IO, err);
  if (st != BH_OK) return st;
  st = bh_manifest_decode(buf, len, check, out, err);
  free(buf);
  return st;
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
  bh_status s = bh_fs_read_at(dirfd, name, BH_MANIFEST_MAX_BYTES, &buf, &len,
                              &st, NULL, BH_MANIFEST_IO, path, err);
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

bh_status bh_manifest_clear_daemon(const char *path, const bh_identity *only_if,
                                   bh_clear_outcome *outcome, bh_err *err) {
  const char *leaf;
  bh_clear_outcome dummy;
  if (outcome == NULL) outcome = &dummy;
  *outcome = BH_CLEAR_NONE;
  int dirfd = bh_fs_open_parent(path, &leaf, BH_MANIFEST_IO, err);
  if (dirfd < 0) return BH_MANIFEST_IO;
  bh_status s = clear_at(dirfd, leaf, path, only_if, outcome, err);
  (void)close(dirfd);
  return s;
}

/* ---- find -------------------------------------------------------------- */

static bh_status io_err(bh_err *err, const char *what, const char *path,
                        int errnum) {
  return bh_err_set(err, BH_MANIFEST_IO, NULL, "%s %s: %s", what, path,
                    strerror(errnum));
}

static bh_status list_push(bh_manifest_list *l, const char *dir,
                           const char *name, bh_err *err) {
  char **grown = realloc(l->paths, (l->count + 1) * sizeof *grown);
  if (grown == NULL) return oom(err);
  l->paths = grown;
  if (asprintf(&l->paths[l->count], "%s/%s", dir, name) < 0) return oom(err);
  l->count++;
  return BH_OK;
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
 * manifests; descend with O_NOFOLLOW so a symlink is never entered. */
static bh_status walk(int fd, const char *path, int depth, int max_depth,
                      bh_manifest_list *out, bh_err *err) {
  DIR *d = fdopendir(fd);
  if (d == NULL) {
    close(fd);
    return BH_OK; /* unreadable below root: skipped */
  }
  bh_status st = BH_OK;
  struct dirent *e;
  while (st == BH_OK && (e = readdir(d)) != NULL) {
    if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
    unsigned char type = entry_type(d, e);
    if (type == DT_REG && strcmp(e->d_name, BH_MANIFEST_NAME) == 0) {
      st = list_push(out, path, e->d_name, err);
    } else if (type == DT_DIR && depth < max_depth) {
      int sub = openat(dirfd(d), e->d_name,
                       O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
      if (sub < 0) continue;
      char *subpath = NULL;
      if (asprintf(&subpath, "%s/%s", path, e->d_name) < 0) {
        close(sub);
        st = oom(err);
        break;
      }
      st = walk(sub, subpath, depth + 1, max_depth, out, err);
      free(subpath);
    }
  }
  closedir(d);
  return st;
}

static int cmp_paths(const void *a, const void *b) {
  return strcmp(*(char *const *)a, *(char *const *)b);
}

bh_status bh_manifest_find(const char *root, int max_depth,
                           bh_manifest_list *out, bh_err *err) {
  out->paths = NULL;
  out->count = 0;
  if (max_depth < 0 || max_depth > FIND_DEPTH_CAP) max_depth = FIND_DEPTH_CAP;
  int fd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return io_err(err, "open directory", root, errno);
  /* Trailing slashes would double up in the paths we build. */
  char *base = strdup(root);
  if (base == NULL) {
    close(fd);
    return oom(err);
  }
  size_t n = strlen(base);
  while (n > 1 && base[n - 1] == '/')
    base[--n] = '\0';
  bh_status st =
      walk(fd, strcmp(base, "/") == 0 ? "" : base, 0, max_depth, out, err);
  free(base);
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
  free(l->paths);
  l->paths = NULL;
  l->count = 0;
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

/* The registry directory open as fd (taken over): refuse one that is not
 * ours and private, then list its manifests. */
static bh_status scan_registry(int fd, const char *dir, bh_manifest_list *out,
                               bh_err *err) {
  struct stat sb;
  if (fstat(fd, &sb) != 0) {
    bh_status st = io_err(err, "stat", dir, errno);
    (void)close(fd);
    return st;
  }
  if (sb.st_uid != geteuid() || (sb.st_mode & 077) != 0) {
    (void)close(fd);
    return bh_err_set(err, BH_INSECURE_REGISTRY, NULL,
                      "manifest registry %s is not private to its owner "
                      "(owner uid %u, mode %03o; expected uid %u, mode 0700)",
                      dir, (unsigned)sb.st_uid, (unsigned)(sb.st_mode & 0777),
                      (unsigned)geteuid());
  }
  DIR *d = fdopendir(fd);
  if (d == NULL) {
    bh_status st = io_err(err, "read directory", dir, errno);
    (void)close(fd);
    return st;
  }
  bh_status st = BH_OK;
  struct dirent *e;
  while (st == BH_OK && (e = readdir(d)) != NULL) {
    if (!bh_manifest_registry_name(e->d_name) || entry_type(d, e) != DT_REG)
      continue;
    st = list_push(out, dir, e->d_name, err);
  }
  (void)closedir(d);
  return st;
}

bh_status bh_manifest_scan_central(bh_manifest_list *out, char **dirp,
                                   bh_err *err) {
  char *dir = NULL;
  const char *leaf;
  out->paths = NULL;
  out->count = 0;
  if (dirp != NULL) *dirp = NULL;
  bh_status st = bh_manifest_central_dir(&dir, err);
  if (st != BH_OK) return st;
  int parent = bh_fs_open_parent(dir, &leaf, BH_MANIFEST_IO, err);
  int fd = -1;
  if (parent >= 0) {
    fd = openat(parent, leaf, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0 && errno != ENOENT)
      st = io_err(err, "open registry", dir, errno);
    (void)close(parent);
  } else if (errno != ENOENT) {
    st = BH_MANIFEST_IO; /* a symlink or worse on the way */
  } else {
    bh_err_clear(err); /* a parent is missing: so is the registry */
  }
  if (st == BH_OK && fd >= 0) st = scan_registry(fd, dir, out, err);
  if (st != BH_OK) bh_manifest_list_free(out);
  if (st == BH_OK && out->count > 1)
    qsort(out->paths, out->count, sizeof *out->paths, cmp_paths);
  if (st == BH_OK && dirp != NULL)
    *dirp = dir;
  else
    free(dir);
  return st;
}
