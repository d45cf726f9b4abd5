/* Log lines on stderr (log.h). */
#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int threshold = BH_LOG_INFO;
static int journal = -1; /* unknown until asked */

/* Does JOURNAL_STREAM ("DEV:INODE", decimal) name our stderr? */
static bool stderr_is_journal(void) {
  const char *js = getenv("JOURNAL_STREAM");
  char *end = NULL;
  struct stat sb;
  if (js == NULL || fstat(STDERR_FILENO, &sb) != 0) return false;
  unsigned long long dev = strtoull(js, &end, 10);
  if (end == js || *end != ':') return false;
  const char *i = end + 1;
  unsigned long long ino = strtoull(i, &end, 10);
  return end != i && *end == '\0' && (unsigned long long)sb.st_dev == dev &&
         (unsigned long long)sb.st_ino == ino;
}

/* Is stderr the journal (JOURNAL_STREAM matches it)? Asked once. */
static bool log_to_journal(void) {
  if (journal < 0) journal = stderr_is_journal();
  return journal == 1;
}

void bh_log_set_threshold(int prio) {
  if (prio >= BH_LOG_ERR && prio <= BH_LOG_DEBUG) threshold = prio;
}

int bh_log_threshold(void) {
  return threshold;
}

static const char *level_word(int prio) {
  if (prio == BH_LOG_WARNING) return "warning: ";
  if (prio == BH_LOG_DEBUG) return "debug: ";
  return "";
}

void bh_log_named(int prio, const char *progname, const char *msg) {
  if (prio > threshold) return;
  if (log_to_journal()) {
    for (const char *p = msg;;) { /* "<N>" before every line */
      size_t n = strcspn(p, "\n");
      (void)fprintf(stderr, "<%d>%.*s\n", prio, (int)n, p);
      if (p[n] == '\0') break;
      p += n + 1;
    }
  } else {
    if (progname != NULL) (void)fprintf(stderr, "%s: ", progname);
    (void)fprintf(stderr, "%s%s\n", level_word(prio), msg);
  }
  (void)fflush(stderr);
}

void bh_log_line(int prio, const char *msg) {
  bh_log_named(prio, "bhprobe-lua", msg);
}

void bh_log(int prio, const char *fmt, ...) {
  char buf[1024];
  va_list ap;
  va_start(ap, fmt);
  (void)vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  bh_log_line(prio, buf);
}
