/* The id files of the system, read once (see idfile.h). */
#include "idfile.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "fsutil.h"

/* Read f's file into f->text (the lock held). BH_SYSTEM with err when it
 * cannot be read, is empty or is longer than an id. */
static bh_status id_file_read(bh_id_file *f, bh_err *err) {
  char *text = NULL;
  size_t len = 0;
  bh_status st = bh_file_read_small(f->path, 4096, &text, &len, BH_SYSTEM, err);
  if (st != BH_OK) return st;
  while (len > 0 && (text[len - 1] == '\n' || text[len - 1] == ' ' ||
                     text[len - 1] == '\r' || text[len - 1] == '\t'))
    len--;
  if (len > 0 && len < sizeof f->text) {
    memcpy(f->text, text, len);
    f->len = len;
  } else {
    st = bh_err_sys(err, BH_SYSTEM, EINVAL,
                    "%s holds %zu bytes, expected an id", f->path, len);
  }
  free(text);
  return st;
}

bh_status bh_id_file_get(bh_id_file *f, char *buf, size_t cap, bh_err *err) {
  if (cap == 0) return bh_err_set(err, BH_SYSTEM, NULL, "no room for an id");
  buf[0] = '\0';
  if (pthread_mutex_lock(&f->lock) != 0)
    return bh_err_set(err, BH_SYSTEM, NULL, "cannot lock the cache of %s",
                      f->path);
  bh_status st = f->len == 0 ? id_file_read(f, err) : BH_OK;
  if (st == BH_OK) {
    size_t n = f->len < cap - 1 ? f->len : cap - 1;
    memcpy(buf, f->text, n);
    buf[n] = '\0';
  }
  (void)pthread_mutex_unlock(&f->lock);
  return st;
}
