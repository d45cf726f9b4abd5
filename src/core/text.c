/* Cutting strings from records (text.h). */
#include "text.h"

#include <stdio.h>

size_t bh_text_mark(size_t len, char mark[BH_TEXT_MARK_MAX]) {
  int n = snprintf(mark, BH_TEXT_MARK_MAX, "...[cut, %zu bytes in all]", len);
  return n > 0 ? (size_t)n : 0;
}

size_t bh_text_cut(const char *s, size_t len, size_t max,
                   char mark[BH_TEXT_MARK_MAX], size_t *mark_len) {
  mark[0] = '\0';
  *mark_len = 0;
  if (max < BH_TEXT_MIN_MAX) max = BH_TEXT_MIN_MAX;
  if (len <= max) return len;
  *mark_len = bh_text_mark(len, mark);
  size_t keep = max - *mark_len;
  /* s[keep] continuing a sequence (10xxxxxx) means the head would end
   * inside it: step back to where it starts (at most 3 bytes). */
  for (int i = 0; i < 3 && keep > 0 && ((unsigned char)s[keep] & 0xC0) == 0x80;
       i++)
    keep--;
  return keep;
}
