/* The -i prompt's history file, ~/.bhprobe_history (readline builds
 * only). It is read and written by this code alone, through one
 * descriptor, never by readline's history-file functions: those follow
 * names (a symlink planted at the path, their predictable temp file) and
 * truncate and chown what they find, which let another user who controls
 * $HOME (root running `sudo -E bhprobe-lua -i`) turn root's history
 * writes onto any file. Here the file is used only when it is a regular
 * file owned by us with one link, opened without following a symlink and
 * without blocking (a FIFO is refused, never waited on); one we create is
 * 0600. Anything else: a warning and no history. */
#ifndef BH_HOST_HISTORY_H
#define BH_HOST_HISTORY_H

/* Open the history file and load its entries into readline's (stifled)
 * history list. Once per process; later calls do nothing. */
void bh_history_open(void);

/* Add chunk (a whole entry, several lines as one) to readline's list and
 * to the file, when one is open. */
void bh_history_add(const char *chunk);

#endif
