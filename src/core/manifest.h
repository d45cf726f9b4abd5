/* Cache manifests as running-process keeps them (design §1.3, §1.10): the
 * whole CacheManifest schema, sealed (manifest_schema_version 1,
 * media_type, self_sha256 over the encoding with the seal cleared), read
 * with the original's verdicts, written and cleared through directory
 * descriptors (design §1.11), found under cache roots and in the central
 * registry. A manifest on disk is the bare protobuf: in a cache root
 * `.running-process-manifest.pb`, in the registry `{service}-{version}.pb`.
 *
 * Like prost, a reader drops the fields it does not know and re-encodes
 * what it knows in canonical form (ascending tags, defaults left out) to
 * check the seal; so a manifest carrying foreign fields, or both digest
 * generations in its daemon, reads as manifest_corrupt, exactly as in the
 * real readers. Knows nothing of Lua. */
#ifndef BH_MANIFEST_H
#define BH_MANIFEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "identity.h"
#include "status.h"

struct stat;

#define BH_MANIFEST_NAME ".running-process-manifest.pb"
#define BH_MANIFEST_MEDIA_TYPE \
  "application/vnd.running-process.cache-manifest.v1"
/* The largest manifest read. A real one is a few hundred bytes (the 4.1
 * and 4.10 manifests of spec/fixtures: 404 and 421 bytes), a few KiB with
 * long lists of roots and labels; 1 MiB is thousands of times that, and
 * small enough that reading and decoding one stays a matter of
 * milliseconds on the worker. A larger one is manifest_too_large, judged
 * by its size before a byte is read. */
#define BH_MANIFEST_MAX_BYTES ((size_t)1 << 20) /* 1 MiB */
#define BH_MANIFEST_MODE 0644                   /* of a new manifest file */

struct RunningProcess__Broker__V1__CacheManifest;
typedef struct RunningProcess__Broker__V1__CacheManifest bh_manifest_pb;

/* A manifest in memory: the whole decoded message (every field of the
 * schema, unknown fields dropped), plus its daemon as an identity. */
typedef struct bh_manifest {
  bh_manifest_pb *pb; /* owned; allocated with bh_pb_allocator */
  bh_identity daemon; /* current_daemon, when pb has one */
  bool sealed;        /* the seal was checked and is right */
} bh_manifest;

/* The generation of m's current_daemon: 1 (sha256), 2 (blake3), 0 when it
 * has none. */
int bh_manifest_generation(const bh_manifest *m);

/* An empty manifest (no fields set). BH_SYSTEM when out of memory. */
bh_status bh_manifest_init(bh_manifest *m, bh_err *err);
/* Free everything; *m is left zeroed. Idempotent. */
void bh_manifest_clear(bh_manifest *m);
/* Take pb (a message unpacked or built with bh_pb_allocator) as the
 * manifest's content, freeing the old one (*m may also be all zero: no
 * content yet), and decode its daemon (codes of bh_identity_from_pb). On
 * failure pb is freed and *m unchanged. */
bh_status bh_manifest_adopt(bh_manifest *m, bh_manifest_pb *pb, bh_err *err);

/* Decode manifest bytes: manifest_decode when they are not a CacheManifest
 * (or a string is not UTF-8 / holds NUL, or a field number is 0). With
 * verify, as the original read_manifest: manifest_schema_version over 1 →
 * manifest_schema_too_new; a daemon with both generations, a missing or
 * wrong self_sha256 → manifest_corrupt. Then a present current_daemon
 * goes through the identity decoder and keeps its codes. */
bh_status bh_manifest_decode(const uint8_t *buf, size_t len, bool verify,
                             bh_manifest *out, bh_err *err);

/* Seal pb in place (schema version 1, media_type when empty, self_sha256)
 * and encode it canonically; *out is malloc'd. */
bh_status bh_manifest_seal_encode(bh_manifest_pb *pb, uint8_t **out,
                                  size_t *out_len, bh_err *err);

/* Set current_daemon of m to id in the given generation (1: tag 3, 2:
 * tags 8/9; 0: 2 when id has a BLAKE3 digest, else 1), or remove it when
 * id is NULL. invalid_identity when id lacks that generation's digest. */
bh_status bh_manifest_set_daemon(bh_manifest *m, const bh_identity *id,
                                 int generation, bh_err *err);

/* Read and decode a file: manifest_io when it cannot be read, is not a
 * regular file or its path goes through a symlink; manifest_too_large
 * over BH_MANIFEST_MAX_BYTES (by its size before reading, or as soon as a
 * field's length says it ends beyond; the top-level field counts are held
 * to the decode limits while it is read); then bh_manifest_decode's
 * codes. */
bh_status bh_manifest_read(const char *path, bool verify, bh_manifest *out,
                           bh_err *err);
/* bh_manifest_read, and *st (may be NULL) the fstat of the file read (its
 * owner: on whose behalf a reaction acts). */
bh_status bh_manifest_read_stat(const char *path, bool verify, bh_manifest *out,
                                struct stat *st, bh_err *err);
/* bh_manifest_read of the file name in the directory dirfd (never
 * followed if a symlink); what names it in messages. */
bh_status bh_manifest_read_at(int dirfd, const char *name, const char *what,
                              bool verify, bh_manifest *out, struct stat *st,
                              bh_err *err);

/* Seal m and write it atomically (a temp file in the same directory,
 * fsync, rename, fsync the directory), through directory descriptors; an
 * existing file keeps its owner and mode (set-id bits dropped), a new one
 * gets BH_MANIFEST_MODE. manifest_io on failure. */
bh_status bh_manifest_write(const char *path, bh_manifest *m, bh_err *err);

/* What bh_manifest_clear_daemon did. */
typedef enum bh_clear_outcome {
  BH_CLEAR_DONE,    /* the daemon was removed and the file rewritten */
  BH_CLEAR_NONE,    /* the manifest records no daemon */
  BH_CLEAR_OTHER,   /* it records another daemon than only_if */
  BH_CLEAR_CHANGED, /* it changed on disk while we worked: left alone */
} bh_clear_outcome;

/* Read (verifying the seal: a manifest that does not verify is never
 * rewritten), drop current_daemon, reseal, write back in place of exactly
 * the file read (a record rewritten meanwhile is left as it is), keeping
 * owner and mode. When only_if is not NULL the daemon is dropped only if
 * it still is that identity (same fields as the prober compares, and the
 * same start time). */
bh_status bh_manifest_clear_daemon(const char *path, const bh_identity *only_if,
                                   bh_clear_outcome *outcome, bh_err *err);
/* bh_manifest_clear_daemon of the file name in the directory dirfd (path
 * names it in messages). */
bh_status bh_manifest_clear_daemon_at(int dirfd, const char *name,
                                      const char *path,
                                      const bh_identity *only_if,
                                      bh_clear_outcome *outcome, bh_err *err);

/* foreign_host when the manifest names a host (host.machine_id) other
 * than this machine; BH_OK when it is ours or names none. */
bh_status bh_manifest_check_host(const bh_manifest *m, bh_err *err);

/* Paths of manifests, sorted; and what could not be read while looking
 * for them (one message each: "cannot open directory PATH: reason"). */
typedef struct bh_manifest_list {
  char **paths;
  size_t count;
  char **problems;
  size_t nproblems;
} bh_manifest_list;
void bh_manifest_list_free(bh_manifest_list *l);

/* Regular files named BH_MANIFEST_NAME under root. max_depth: directory
 * levels below root searched (0 = root only; < 0 = unlimited, still capped
 * at 64). Symlinks are never followed below root (root itself may be one).
 * A directory below root that cannot be opened or read is never skipped
 * silently: it is in out->problems, and the walk goes on. manifest_io
 * when root cannot be opened as a directory. */
bh_status bh_manifest_find(const char *root, int max_depth,
                           bh_manifest_list *out, bh_err *err);

/* The central registry (design §1.10): $RUNNING_PROCESS_MANIFEST_DIR,
 * else $XDG_DATA_HOME/running-process/manifests, else
 * $HOME/.local/share/running-process/manifests. *out is malloc'd.
 * manifest_io when none of them can be formed. */
bh_status bh_manifest_central_dir(char **out, bh_err *err);
/* Is name a registry manifest's, {service}-{version}.pb (both parts
 * non-empty; a leading '.' is a writer's temporary file)? */
bool bh_manifest_registry_name(const char *name);
/* Open the central registry dir (no symlink followed on the way):
 * *fd its descriptor, through which its records are then listed, read and
 * cleared (never again by path: a directory swapped in after the check
 * is never read). A registry that does not exist: BH_OK, *fd -1,
 * *missing. One that is not a directory private to owner (the user whose
 * registry it is: geteuid() for our own, the user whose home it is in
 * for another's; mode 0700 or stricter) is refused: insecure_registry,
 * as running-process refuses it, the message naming what is wrong (the
 * owner, the mode). */
bh_status bh_manifest_registry_open(const char *dir, uid_t owner, int *fd,
                                    bool *missing, bh_err *err);
/* The {service}-{version}.pb regular files of the registry open as fd, as
 * paths under dir, sorted. */
bh_status bh_manifest_registry_list(int fd, const char *dir,
                                    bh_manifest_list *out, bh_err *err);
/* The {service}-{version}.pb files of the central registry (open, list):
 * a registry that does not exist is empty. */
bh_status bh_manifest_scan_central(bh_manifest_list *out, char **dir,
                                   bh_err *err);

#endif
