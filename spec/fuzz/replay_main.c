/* Replay driver for the fuzz targets (the c-ares model): linked with one
 * spec/fuzz/fuzz_NAME.c into replay_NAME, it feeds every file named on the
 * command line (directories: every regular file inside, in name order) to
 * LLVMFuzzerTestOneInput once. A target abort()s when a property fails, so
 * any bad input kills the process and fails the ctest; the driver itself
 * fails when an argument cannot be read or a directory holds no input, so
 * a lost corpus cannot pass silently. */
#include <dirent.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Read the whole file at path into a malloc'd buffer (never NULL on
 * success, even for an empty file). Returns 0, or -1 with a message. */
static int read_file(const char *path, uint8_t **out, size_t *out_len) {
  int rc = -1;
  uint8_t *buf = NULL;
  size_t len = 0, cap = 0;
  FILE *f = fopen(path, "rb");
  if (f == NULL) {
    fprintf(stderr, "replay: %s: %s\n", path, strerror(errno));
    return -1;
  }
  for (;;) {
    if (len == cap) {
      size_t ncap = cap ? cap * 2 : 4096;
      uint8_t *nbuf = realloc(buf, ncap);
      if (nbuf == NULL) {
        fprintf(stderr, "replay: %s: out of memory\n", path);
        goto end;
      }
      buf = nbuf;
      cap = ncap;
    }
    size_t n = fread(buf + len, 1, cap - len, f);
    len += n;
    if (n == 0) break;
  }
  if (ferror(f)) {
    fprintf(stderr, "replay: %s: read error\n", path);
    goto end;
  }
  *out = buf;
  *out_len = len;
  buf = NULL;
  rc = 0;
end:
  free(buf);
  if (fclose(f) != 0 && rc == 0) {
    fprintf(stderr, "replay: %s: %s\n", path, strerror(errno));
    free(*out);
    rc = -1;
  }
  return rc;
}

/* Run the target on one file. The input is copied into a buffer of exactly
 * its size, so ASan catches a target reading one byte past the end. */
static int replay_file(const char *path) {
  uint8_t *data = NULL;
  size_t len = 0;
  if (read_file(path, &data, &len) != 0) return -1;
  uint8_t *exact = malloc(len ? len : 1);
  if (exact == NULL) {
    free(data);
    fprintf(stderr, "replay: %s: out of memory\n", path);
    return -1;
  }
  memcpy(exact, data, len);
  free(data);
  fprintf(stderr, "replay: %s (%zu bytes)\n", path, len);
  LLVMFuzzerTestOneInput(exact, len);
  free(exact);
  return 0;
}

static int skip_entry(const struct dirent *e) {
  return e->d_name[0] != '.';
}

/* Replay every regular file of dir in name order; *count grows by the
 * number replayed. Returns 0, or -1 when the directory is unreadable. */
static int replay_dir(const char *dir, int *count) {
  struct dirent **names = NULL;
  int n = scandir(dir, &names, skip_entry, alphasort);
  if (n < 0) {
    fprintf(stderr, "replay: %s: %s\n", dir, strerror(errno));
    return -1;
  }
  int rc = 0;
  for (int i = 0; i < n; i++) {
    char path[4096];
    struct stat st;
    int w = snprintf(path, sizeof path, "%s/%s", dir, names[i]->d_name);
    if (w < 0 || (size_t)w >= sizeof path) {
      fprintf(stderr, "replay: %s/%s: path too long\n", dir, names[i]->d_name);
      rc = -1;
    } else if (stat(path, &st) != 0) {
      fprintf(stderr, "replay: %s: %s\n", path, strerror(errno));
      rc = -1;
    } else if (S_ISREG(st.st_mode)) {
      if (replay_file(path) != 0)
        rc = -1;
      else
        (*count)++;
    }
    free(names[i]);
  }
  free(names);
  return rc;
}

int main(int argc, char **argv) {
  int count = 0, rc = 0;
  if (argc < 2) {
    fprintf(stderr, "usage: %s FILE_OR_DIR...\n", argv[0]);
    return 2;
  }
  for (int i = 1; i < argc; i++) {
    struct stat st;
    if (stat(argv[i], &st) != 0) {
      fprintf(stderr, "replay: %s: %s\n", argv[i], strerror(errno));
      rc = 1;
    } else if (S_ISDIR(st.st_mode)) {
      if (replay_dir(argv[i], &count) != 0) rc = 1;
    } else if (replay_file(argv[i]) != 0) {
      rc = 1;
    } else {
      count++;
    }
  }
  if (count == 0) {
    fprintf(stderr, "replay: no input replayed\n");
    rc = 1;
  }
  fprintf(stderr, "replay: %d inputs, %s\n", count, rc ? "FAILED" : "ok");
  return rc;
}
