/*
 * Leveled logging to stderr, journald/syslog friendly (one line per record,
 * "<prog>: <level>: message"). Callers must never pass secrets: the API key,
 * tokens and signing secrets are not logged anywhere.
 */
#ifndef CHAT_LOG_H
#define CHAT_LOG_H

enum log_level { LOG_LEVEL_DEBUG, LOG_LEVEL_INFO, LOG_LEVEL_WARN, LOG_LEVEL_ERROR };

/*
 * Sets the program name and threshold, and notices whether stderr is the
 * systemd journal (then lines carry "<N>" priorities). Safe to call again
 * (tests).
 */
void log_init(const char *progname, enum log_level level);
void log_set_level(enum log_level level);
/* 1 if stderr is the stream JOURNAL_STREAM names (systemd's journal). */
int log_stderr_is_journal(void);
/* Parses "debug", "info", "warn"/"warning", "error"; -1 if unknown. */
int log_level_parse(const char *s);

void log_debug(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Logs at error level and exits with status 1. Start-up only. */
void fatal(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

#endif
