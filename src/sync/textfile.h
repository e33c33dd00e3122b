/*
 * A file replaced atomically (a temporary file in the same directory,
 * then rename), so a reader such as node_exporter's textfile collector
 * sees the old text or the new one, never half of it.
 */
#ifndef CHAT_SYNC_TEXTFILE_H
#define CHAT_SYNC_TEXTFILE_H

/* 0, or -1 with *cause (heap). The file gets mode 0644 (less the umask). */
int textfile_write(const char *path, const char *text, char **cause);

#endif
