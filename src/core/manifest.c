/* Cache manifests on disk: decode/encode through protobuf-c, atomic write,
 * find, clear_daemon (see manifest.h). */
#include "manifest.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "daemon.pb-c.h"
#include "file.h"
#include "manifest.pb-c.h"
#include "pbutil.h"

typedef RunningProcess__Broker__V1__CacheManifest pb_manifest;
typedef RunningProcess__Broker__V1__DaemonProcess pb_daemon;

#define MANIFEST_DESC (&running_process__broker__v1__cache_manifest__descriptor)
#define DAEMON_DESC (&running_process__broker__v1__daemon_process__descriptor)

enum { MANIFEST_MAX_BYTES = 16 * 1024 * 1024, FIND_DEPTH_CAP = 64 };

static bh_status oom(bh_err *err) {
  return bh_err_set(err, BH_SYSTEM, NULL, "out of memory");
}

bh_status bh_manifest_set_string(char **field, const char *value, bh_err *err) {
  char *copy = strdup(value ? value : "");
  if (copy == NULL) return oom(err);
  free(*field);
  *field = copy;
  return BH_OK;
}

bh_status bh_manifest_set_blob(uint8_t **field, size_t *field_len,
                               const uint8_t *value, size_t len, bh_err *err) {
  uint8_t *copy = NULL;
  if (len > 0) {
    copy = malloc(len);
    if (copy == NULL) return oom(err);
    memcpy(copy, value, len);
  }
  free(*field);
  *field = copy;
  *field_len = len;
  return BH_OK;
}

bh_status bh_manifest_init(bh_manifest *m, bh_err *err) {
  memset(m, 0, sizeof *m);
  bh_identity_init(&m->daemon);
  char **strs[] = {&m->service_name, &m->service_version,
                   &m->broker_envelope_version, &m->broker_instance};
  for (size_t i = 0; i < sizeof strs / sizeof strs[0]; i++) {
    if (bh_manifest_set_string(strs[i], "", err) != BH_OK) {
      bh_manifest_clear(m);
      return BH_SYSTEM;
    }
  }
  return BH_OK;
}

void bh_manifest_clear(bh_manifest *m) {
  free(m->service_name);
  free(m->service_version);
  free(m->broker_envelope_version);
  free(m->broker_instance);
  bh_identity_clear(&m->daemon);
  free(m->unknown);
  free(m->daemon_unknown);
  memset(m, 0, sizeof *m);
}

/* ---- decode ------------------------------------------------------------ */

/* Pack only the unknown fields of msg (a message of type desc): an empty
 * message of the same type carrying them packs to exactly their bytes,
 * because proto3 default values are never written. */
static bh_status unknown_blob(const ProtobufCMessage *msg, uint8_t **out,
                              size_t *out_len, bh_err *err) {
  *out = NULL;
  *out_len = 0;
  if (msg->n_unknown_fields == 0) return BH_OK;
  const ProtobufCMessageDescriptor *desc = msg->descriptor;
  ProtobufCMessage *empty = calloc(1, desc->sizeof_message);
  if (empty == NULL) return oom(err);
  protobuf_c_message_init(desc, empty);
  empty->n_unknown_fields = msg->n_unknown_fields;
  empty->unknown_fields = msg->unknown_fields;
  size_t len = protobuf_c_message_get_packed_size(empty);
  uint8_t *buf = malloc(len ? len : 1);
  if (buf == NULL) {
    free(empty);
    return oom(err);
  }
  *out_len = protobuf_c_message_pack(empty, buf);
  *out = buf;
  free(empty);
  return BH_OK;
}

/* A decoded string field is usable only if it holds no NUL and is UTF-8. */
static bh_status check_strings(const char *const *values,
                               const char *const *names, size_t n,
                               bh_status code, const char *what, bh_err *err) {
  for (size_t i = 0; i < n; i++) {
    if (!bh_pb_string_ok(values[i]))
      return bh_err_set(err, code, NULL,
                        "%s field %s: expected UTF-8 text without NUL, got "
                        "invalid bytes",
                        what, names[i]);
  }
  return BH_OK;
}

/* current_daemon → identity through the identity layer's checks. */
static bh_status decode_daemon(const pb_daemon *d, bh_manifest *out,
                               bh_err *err) {
  bh_status st = bh_identity_from_pb(d, &out->daemon, err);
  if (st != BH_OK) return st;
  out->has_daemon = true;
  return unknown_blob(&d->base, &out->daemon_unknown, &out->daemon_unknown_len,
                      err);
}

/* Copy the known top-level fields of an unpacked manifest into out. */
static bh_status copy_fields(const pb_manifest *pm, bh_manifest *out,
                             bh_err *err) {
  const char *vals[4] = {pm->service_name, pm->service_version,
                         pm->broker_envelope_version, pm->broker_instance};
  static const char *const names[4] = {"service_name", "service_version",
                                       "broker_envelope_version",
                                       "broker_instance"};
  if (check_strings(vals, names, 4, BH_MANIFEST_DECODE, "manifest", err) !=
      BH_OK)
    return BH_MANIFEST_DECODE;
  char **dst[4] = {&out->service_name, &out->service_version,
                   &out->broker_envelope_version, &out->broker_instance};
  for (size_t i = 0; i < 4; i++)
    if (bh_manifest_set_string(dst[i], vals[i], err) != BH_OK) return BH_SYSTEM;
  out->created_at_unix_ms = pm->created_at_unix_ms;
  out->last_active_unix_ms = pm->last_active_unix_ms;
  return unknown_blob(&pm->base, &out->unknown, &out->unknown_len, err);
}

bh_status bh_manifest_decode(const uint8_t *buf, size_t len, bh_manifest *out,
                             bh_err *err) {
  memset(out, 0, sizeof *out); /* cleared on every failure */
  if (bh_pb_prescan(MANIFEST_DESC, buf, len, &bh_pb_limits_manifest,
                    BH_MANIFEST_DECODE, err) != BH_OK)
    return BH_MANIFEST_DECODE;
  if (bh_manifest_init(out, err) != BH_OK) return BH_SYSTEM;
  pb_manifest *pm = running_process__broker__v1__cache_manifest__unpack(
      &bh_pb_allocator, len, buf);
  if (pm == NULL) {
    bh_manifest_clear(out);
    return bh_err_set(err, BH_MANIFEST_DECODE, NULL,
                      "expected a CacheManifest protobuf, got %zu bytes that "
                      "do not decode",
                      len);
  }
  if (!bh_pb_tags_ok(&pm->base)) {
    running_process__broker__v1__cache_manifest__free_unpacked(
        pm, &bh_pb_allocator);
    bh_manifest_clear(out);
    return bh_err_set(err, BH_MANIFEST_DECODE, NULL,
                      "expected a CacheManifest protobuf, got a field number "
                      "0");
  }
  bh_status st = copy_fields(pm, out, err);
  if (st == BH_OK && pm->current_daemon != NULL)
    st = decode_daemon(pm->current_daemon, out, err);
  running_process__broker__v1__cache_manifest__free_unpacked(pm,
                                                             &bh_pb_allocator);
  if (st != BH_OK) bh_manifest_clear(out);
  return st;
}

/* ---- encode ------------------------------------------------------------ */

/* Unpack an unknown-fields blob as a message of type desc. It must decode
 * and carry no known field (a known field hidden there would override the
 * real one). *msg is NULL for an empty blob. */
static bh_status parse_blob(const ProtobufCMessageDescriptor *desc,
                            const uint8_t *blob, size_t len,
                            ProtobufCMessage **msg, bh_err *err) {
  *msg = NULL;
  if (len == 0) return BH_OK;
  ProtobufCMessage *m =
      protobuf_c_message_unpack(desc, &bh_pb_allocator, len, blob);
  if (m == NULL)
    return bh_err_set(err, BH_MANIFEST_DECODE, NULL,
                      "unknown fields of %s: expected protobuf, got %zu "
                      "bytes that do not decode",
                      desc->short_name, len);
  size_t n = m->n_unknown_fields;
  m->n_unknown_fields = 0;
  size_t known = protobuf_c_message_get_packed_size(m);
  m->n_unknown_fields = n;
  if (known != 0) {
    protobuf_c_message_free_unpacked(m, &bh_pb_allocator);
    return bh_err_set(err, BH_MANIFEST_DECODE, NULL,
                      "unknown fields of %s: expected only unknown field "
                      "numbers, got a known field",
                      desc->short_name);
  }
  *msg = m;
  return BH_OK;
}

/* The identity as an unpacked DaemonProcess (through the identity encoder),
 * carrying the daemon's unknown fields. */
static bh_status build_daemon(const bh_manifest *m, pb_daemon **out,
                              ProtobufCMessage **extra, bh_err *err) {
  uint8_t *buf = NULL;
  size_t len = 0;
  *out = NULL;
  bh_status st = parse_blob(DAEMON_DESC, m->daemon_unknown,
                            m->daemon_unknown_len, extra, err);
  if (st != BH_OK) return st;
  st = bh_identity_encode(&m->daemon, &buf, &len, err);
  if (st != BH_OK) return st;
  *out = running_process__broker__v1__daemon_process__unpack(&bh_pb_allocator,
                                                             len, buf);
  free(buf);
  if (*out == NULL)
    return bh_err_set(err, BH_SYSTEM, NULL,
                      "re-decoding an encoded identity failed");
  if (*extra != NULL) {
    (*out)->base.n_unknown_fields = (*extra)->n_unknown_fields;
    (*out)->base.unknown_fields = (*extra)->unknown_fields;
  }
  return BH_OK;
}

bh_status bh_manifest_encode(const bh_manifest *m, uint8_t **out,
                             size_t *out_len, bh_err *err) {
  pb_manifest pm = RUNNING_PROCESS__BROKER__V1__CACHE_MANIFEST__INIT;
  pb_daemon *daemon = NULL;
  ProtobufCMessage *extra = NULL, *daemon_extra = NULL;
  *out = NULL;
  *out_len = 0;
  bh_status st =
      parse_blob(MANIFEST_DESC, m->unknown, m->unknown_len, &extra, err);
  if (st == BH_OK && m->has_daemon)
    st = build_daemon(m, &daemon, &daemon_extra, err);
  if (st != BH_OK) goto end;
  pm.service_name = m->service_name;
  pm.service_version = m->service_version;
  pm.broker_envelope_version = m->broker_envelope_version;
  pm.created_at_unix_ms = m->created_at_unix_ms;
  pm.last_active_unix_ms = m->last_active_unix_ms;
  pm.broker_instance = m->broker_instance;
  pm.current_daemon = daemon;
  if (extra != NULL) {
    pm.base.n_unknown_fields = extra->n_unknown_fields;
    pm.base.unknown_fields = extra->unknown_fields;
  }
  size_t len =
      running_process__broker__v1__cache_manifest__get_packed_size(&pm);
  *out = malloc(len ? len : 1);
  if (*out == NULL) {
    st = oom(err);
    goto end;
  }
  *out_len = running_process__broker__v1__cache_manifest__pack(&pm, *out);
end:
  if (daemon != NULL) {
    /* The unknown fields belong to daemon_extra: detach before freeing. */
    daemon->base.n_unknown_fields = 0;
    daemon->base.unknown_fields = NULL;
    running_process__broker__v1__daemon_process__free_unpacked(
        daemon, &bh_pb_allocator);
  }
  if (daemon_extra)
    protobuf_c_message_free_unpacked(daemon_extra, &bh_pb_allocator);
  if (extra) protobuf_c_message_free_unpacked(extra, &bh_pb_allocator);
  return st;
}

/* ---- files ------------------------------------------------------------- */

static bh_status io_err(bh_err *err, const char *what, const char *path,
                        int errnum) {
  return bh_err_set(err, BH_MANIFEST_IO, NULL, "%s %s: %s", what, path,
                    strerror(errnum));
}

bh_status bh_manifest_read(const char *path, bh_manifest *out, bh_err *err) {
  char *buf = NULL;
  size_t len = 0;
  memset(out, 0, sizeof *out);
  /* Never waits on a FIFO, even one swapped in after a scan saw a file. */
  int e = bh_file_read_small(path, MANIFEST_MAX_BYTES, &buf, &len,
                             BH_MANIFEST_IO, err);
  if (e != 0) return e == ENOMEM ? BH_SYSTEM : BH_MANIFEST_IO;
  bh_status st = bh_manifest_decode((const uint8_t *)buf, len, out, err);
  free(buf);
  return st;
}

static bh_status write_fd_all(int fd, const uint8_t *buf, size_t len,
                              const char *tmp, bh_err *err) {
  size_t off = 0;
  while (off < len) {
    ssize_t n = write(fd, buf + off, len - off);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return io_err(err, "write", tmp, errno);
    off += (size_t)n;
  }
  return BH_OK;
}

/* fsync the directory holding path, so the rename itself is durable. */
static bh_status sync_dir(const char *path, bh_err *err) {
  char *dir = strdup(path);
  if (dir == NULL) return oom(err);
  char *slash = strrchr(dir, '/');
  if (slash == NULL)
    strcpy(dir, ".");
  else if (slash == dir)
    dir[1] = '\0';
  else
    *slash = '\0';
  bh_status st = BH_OK;
  int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0 || fsync(fd) != 0) st = io_err(err, "fsync directory", dir, errno);
  if (fd >= 0) close(fd);
  free(dir);
  return st;
}

/* Temp file next to path, written and synced; *tmp_out is its name. The
 * old file's permission bits are kept so a rewrite changes no access. */
static bh_status write_temp(const char *path, const uint8_t *buf, size_t len,
                            char **tmp_out, bh_err *err) {
  char *tmp = NULL;
  if (asprintf(&tmp, "%s.tmp.XXXXXX", path) < 0) return oom(err);
  int fd = mkostemp(tmp, O_CLOEXEC);
  if (fd < 0) {
    bh_status st = io_err(err, "create temp file", tmp, errno);
    free(tmp);
    return st;
  }
  struct stat sb;
  mode_t mode = stat(path, &sb) == 0 ? (sb.st_mode & 07777) : 0644;
  bh_status st = BH_OK;
  if (fchmod(fd, mode) != 0)
    st = io_err(err, "chmod", tmp, errno);
  else
    st = write_fd_all(fd, buf, len, tmp, err);
  if (st == BH_OK && fsync(fd) != 0) st = io_err(err, "fsync", tmp, errno);
  if (close(fd) != 0 && st == BH_OK) st = io_err(err, "close", tmp, errno);
  if (st != BH_OK) {
    unlink(tmp);
    free(tmp);
    return st;
  }
  *tmp_out = tmp;
  return BH_OK;
}

bh_status bh_write_file_atomic(const char *path, const void *buf, size_t len,
                               bh_status io_code, bh_err *err) {
  char *tmp = NULL;
  bh_status st = write_temp(path, buf, len, &tmp, err);
  if (st == BH_OK) {
    const char *stop = getenv("BH_TEST_MANIFEST_STOP");
    if (stop != NULL && strcmp(stop, "1") == 0) (void)raise(SIGSTOP);
    if (rename(tmp, path) != 0) {
      st = io_err(err, "rename temp file to", path, errno);
      unlink(tmp);
    } else {
      st = sync_dir(path, err);
    }
    free(tmp);
  }
  if (st != BH_OK && err != NULL) err->code = io_code;
  return st == BH_OK ? BH_OK : io_code;
}

bh_status bh_manifest_write(const char *path, const bh_manifest *m,
                            bh_err *err) {
  uint8_t *buf = NULL;
  size_t len = 0;
  bh_status st = bh_manifest_encode(m, &buf, &len, err);
  if (st != BH_OK) return st;
  st = bh_write_file_atomic(path, buf, len, BH_MANIFEST_IO, err);
  free(buf);
  return st;
}

/* Is the manifest's daemon the one the caller probed? */
static bool same_daemon(const bh_manifest *m, const bh_identity *want) {
  return m->has_daemon && bh_identity_diff(want, &m->daemon) == NULL &&
         want->started_at_unix_ms == m->daemon.started_at_unix_ms;
}

bh_status bh_manifest_clear_daemon(const char *path, const bh_identity *only_if,
                                   bool *cleared, bh_err *err) {
  bh_manifest m;
  bh_status st = bh_manifest_read(path, &m, err);
  if (cleared) *cleared = false;
  if (st != BH_OK) return st;
  if (m.has_daemon && (only_if == NULL || same_daemon(&m, only_if))) {
    m.has_daemon = false;
    bh_identity_clear(&m.daemon);
    bh_manifest_set_blob(&m.daemon_unknown, &m.daemon_unknown_len, NULL, 0,
                         NULL);
    st = bh_manifest_write(path, &m, err);
    if (cleared) *cleared = st == BH_OK;
  }
  bh_manifest_clear(&m);
  return st;
}

/* ---- find -------------------------------------------------------------- */

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
