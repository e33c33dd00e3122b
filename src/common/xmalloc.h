/*
 * Allocation wrappers that abort on out-of-memory, so callers need no NULL
 * checks (tmux's xmalloc). Used by every program; includes nothing else of
 * ours.
 */
#ifndef CHAT_XMALLOC_H
#define CHAT_XMALLOC_H

#include <stddef.h>

void *xmalloc(size_t size);
void *xcalloc(size_t nmemb, size_t size);
void *xrealloc(void *ptr, size_t size);
void *xreallocarray(void *ptr, size_t nmemb, size_t size);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);
/* printf into a fresh heap string; aborts on allocation failure. */
char *xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
