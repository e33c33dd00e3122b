/*
 * Leveled stderr logging. Each record is formatted into one buffer and
 * written with a single write(2) so lines from several threads (chat-api's
 * workers) never interleave.
 *
 * Under systemd, stderr is a stream to the journal and JOURNAL_STREAM names
 * it ("device:inode"). Then each line starts with its syslog priority in
 * the sd-daemon(3) form "<3>" instead of our level word, so that
 * `journalctl -p err` finds errors; the journal adds time, PID and unit
 * itself. Anywhere else (a terminal, a file, a test) lines stay as they
 * were: "prog[pid]: level: message".
 */
#include "autoconf.h"

#include <sys/stat.h>

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "log.h"

static const char *log_prog = "chatd";
static enum log_level log_threshold = LOG_LEVEL_INFO;

static int log_journal; /* stderr is the journal's stream */

static const char *const log_names[] = { "debug", "info", "warning", "error" };
/* syslog priorities: LOG_DEBUG, LOG_INFO, LOG_WARNING, LOG_ERR */
static const char log_priorities[] = { '7', '6', '4', '3' };

int
log_stderr_is_journal(void)
{
	const char *js = getenv("JOURNAL_STREAM");
	uintmax_t dev, ino;
	struct stat st;
	char end;

	if (js == NULL || sscanf(js, "%ju:%ju%c", &dev, &ino, &end) != 2)
		return 0;
	if (fstat(STDERR_FILENO, &st) != 0)
		return 0;
	return (uintmax_t)st.st_dev == dev && (uintmax_t)st.st_ino == ino;
}

void
log_init(const char *progname, enum log_level level)
{
	log_prog = progname;
	log_threshold = level;
	log_journal = log_stderr_is_journal();
}

void
log_set_level(enum log_level level)
{
	log_threshold = level;
}

int
log_level_parse(const char *s)
{
	if (strcasecmp(s, "debug") == 0)
		return LOG_LEVEL_DEBUG;
	if (strcasecmp(s, "info") == 0)
		return LOG_LEVEL_INFO;
	if (strcasecmp(s, "warn") == 0 || strcasecmp(s, "warning") == 0)
		return LOG_LEVEL_WARN;
	if (strcasecmp(s, "error") == 0)
		return LOG_LEVEL_ERROR;
	return -1;
}

static void __attribute__((format(printf, 2, 0)))
log_vwrite(enum log_level level, const char *fmt, va_list ap)
{
	char buf[2048];
	int n, m;

	if (level < log_threshold)
		return;
	if (log_journal)
		n = snprintf(buf, sizeof buf, "<%c>", log_priorities[level]);
	else
		n = snprintf(
		    buf, sizeof buf, "%s[%ld]: %s: ", log_prog, (long)getpid(), log_names[level]);
	if (n < 0 || (size_t)n >= sizeof buf)
		return;
	m = vsnprintf(buf + n, sizeof buf - (size_t)n - 1, fmt, ap);
	if (m < 0)
		return;
	n += m;
	if ((size_t)n > sizeof buf - 2)
		n = sizeof buf - 2; /* truncated record */
	buf[n++] = '\n';
	if (write(STDERR_FILENO, buf, (size_t)n) < 0) {
		/* stderr gone: nowhere left to report it */
	}
}

#define LOG_FN(name, level) \
	void name(const char *fmt, ...) \
	{ \
		va_list ap; \
		va_start(ap, fmt); \
		log_vwrite(level, fmt, ap); \
		va_end(ap); \
	}

LOG_FN(log_debug, LOG_LEVEL_DEBUG)
LOG_FN(log_info, LOG_LEVEL_INFO)
LOG_FN(log_warn, LOG_LEVEL_WARN)
LOG_FN(log_error, LOG_LEVEL_ERROR)

void
fatal(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vwrite(LOG_LEVEL_ERROR, fmt, ap);
	va_end(ap);
	exit(1);
}
