/*
 * chatctl's entry point: global options, the command word, the command's
 * own options, settings (CONTROL_SOCKET, CONTROL_TIMEOUT_MS, DATABASE_URL
 * from the environment or the .env file, as every program reads them),
 * then one command from commands.c. Exit statuses are the CHATCTL_EXIT_*
 * values. Holds no state beyond one invocation and writes nothing itself.
 */
#include "autoconf.h"

#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chatctl.h"
#include "db.h"
#include "log.h"

/* Options valid everywhere; the command's own are added in the second pass. */
#define OPT_NO_DB 1000
#define OPT_ALL 1001
#define OPT_TARGET 1002
#define OPT_FROM 1003
#define OPT_TO 1004
#define OPT_VERIFY_ONLY 1005

static const struct option global_options[] = {
	{ "socket", required_argument, NULL, 's' },
	{ "timeout", required_argument, NULL, 't' },
	{ "json", no_argument, NULL, 'j' },
	{ "help", no_argument, NULL, 'h' },
	{ "version", no_argument, NULL, 'V' },
	{ NULL, 0, NULL, 0 },
};

static const struct option command_options[] = {
	{ "socket", required_argument, NULL, 's' },
	{ "timeout", required_argument, NULL, 't' },
	{ "json", no_argument, NULL, 'j' },
	{ "help", no_argument, NULL, 'h' },
	{ "version", no_argument, NULL, 'V' },
	{ "duration", required_argument, NULL, 'd' },
	{ "reason", required_argument, NULL, 'r' },
	{ "no-db", no_argument, NULL, OPT_NO_DB },
	{ "all", no_argument, NULL, OPT_ALL },
	{ "target", required_argument, NULL, OPT_TARGET },
	{ "from", required_argument, NULL, OPT_FROM },
	{ "to", required_argument, NULL, OPT_TO },
	{ "verify-only", no_argument, NULL, OPT_VERIFY_ONLY },
	{ NULL, 0, NULL, 0 },
};

static void
usage(FILE *out)
{
	fprintf(out,
	    "usage: chatctl [OPTIONS] COMMAND [ARGS] [OPTIONS]\n"
	    "       chatctl help [COMMAND] | --help | --version\n"
	    "\n"
	    "Operator command line for chatd, over its control socket.\n"
	    "\n"
	    "Commands:\n");
	for (size_t i = 0; i < commands_count; i++) {
		const struct commands_entry *cmd = &commands_table[i];
		char head[64];

		snprintf(head, sizeof head, "%s%s%s", cmd->name, *cmd->args ? " " : "", cmd->args);
		if (strlen(head) > 24)
			fprintf(out, "  %s\n  %-24s  %s\n", head, "", cmd->summary);
		else
			fprintf(out, "  %-24s  %s\n", head, cmd->summary);
	}
	fprintf(out,
	    "\n"
	    "Options (before or after the command):\n"
	    "  -s, --socket PATH   chatd's control socket (default: CONTROL_SOCKET,\n"
	    "                      /run/chatd/control.sock)\n"
	    "  -t, --timeout MS    how long to wait for chatd, 10 to 60000 ms (default:\n"
	    "                      CONTROL_TIMEOUT_MS, 2000)\n"
	    "  -j, --json          print chatd's result as one line of JSON instead of text\n"
	    "  -h, --help          this text; after a command, that command's help\n"
	    "  -V, --version       print the version and exit\n"
	    "Command options: -d/--duration and -r/--reason (ban), -r/--reason (kick, close),\n"
	    "--no-db (ban, unban, close), --all and --target (dead-letters), --from, --to and\n"
	    "--verify-only (copy-db); see chatctl help COMMAND.\n"
	    "\n"
	    "ban, unban and close are recorded in the database (DATABASE_URL) first, as the\n"
	    "REST API does, then chatd is told; chatd reloads the database when it starts.\n"
	    "dead-letters and nodes work on the database alone.\n"
	    "The database must exist already (chat-api, chatd or chat-sync create it):\n"
	    "chatctl never creates one. copy-db names its two databases itself (--from,\n"
	    "--to) and makes the tables in the PostgreSQL one it copies into.\n"
	    "\n"
	    "Exit status: 0 done; 1 chatd or the database refused or failed (code and message\n"
	    "on stderr), or copy-db found the databases differ; 2 usage or configuration\n"
	    "error; 3 chatd not running or not answering.\n"
	    "\n");
	config_print_help(out, CONFIG_CTL);
}

static int usage_error(const struct commands_entry *, const char *, ...)
    __attribute__((format(printf, 2, 3)));

/* Says what is wrong and how the command is used; returns the exit status. */
static int
usage_error(const struct commands_entry *cmd, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "chatctl: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	if (cmd != NULL)
		fprintf(stderr, "\nusage: chatctl [OPTIONS] %s%s%s (chatctl help %s)\n", cmd->name,
		    *cmd->args ? " " : "", cmd->args, cmd->name);
	else
		fprintf(stderr, "\nTry chatctl --help.\n");
	return CHATCTL_EXIT_USAGE;
}

/* getopt refused an option: unknown ('?') or missing its value (':'). */
static int
bad_option(const struct commands_entry *cmd, int ch, const char *word)
{
	if (ch == ':')
		return usage_error(cmd, "%s needs a value", word);
	return usage_error(cmd, "unknown option %s", word);
}

/* A global option's value was refused. */
static int
bad_value(const struct commands_entry *cmd, int ch, const char *arg)
{
	if (ch == 't')
		return usage_error(cmd, "--timeout %s: expected 10 to 60000 ms", arg);
	return usage_error(cmd, "--socket: a path is required");
}

/* Applies an option common to both passes; -1 on a bad value. */
static int
global_option(struct chatctl *c, int ch, const char *arg, int *help, int *version)
{
	char *end;
	long v;

	switch (ch) {
	case 's':
		if (*arg == '\0')
			return -1;
		c->socket_path = arg;
		return 0;
	case 't':
		errno = 0;
		v = strtol(arg, &end, 10);
		if (errno != 0 || end == arg || *end != '\0' || v < 10 || v > 60000)
			return -1;
		c->timeout_ms = (int)v;
		return 0;
	case 'j':
		c->json = 1;
		return 0;
	case 'h':
		*help = 1;
		return 0;
	case 'V':
		*version = 1;
		return 0;
	}
	return -1;
}

int
main(int argc, char **argv)
{
	const struct commands_entry *cmd;
	struct chatctl c;
	char *cause = NULL, **cargv;
	int ch, cargc, help = 0, version = 0, status;

	log_init("chatctl", LOG_LEVEL_WARN);
	memset(&c, 0, sizeof c);
	c.out = stdout;
	c.err = stderr;

	/* First pass: options up to the command word ("+": stop there). */
	opterr = 0; /* getopt's messages name argv[0] and the wrong word */
	while ((ch = getopt_long(argc, argv, "+:s:t:jhV", global_options, NULL)) != -1) {
		if (ch == '?' || ch == ':')
			return bad_option(NULL, ch, argv[optind - 1]);
		if (global_option(&c, ch, optarg, &help, &version) != 0)
			return bad_value(NULL, ch, optarg);
	}
	if (version) {
		printf("chatctl %s\n", PACKAGE_VERSION);
		return CHATCTL_EXIT_OK;
	}
	if (optind == argc) {
		usage(help ? stdout : stderr);
		return help ? CHATCTL_EXIT_OK : CHATCTL_EXIT_USAGE;
	}
	if (strcmp(argv[optind], "help") == 0) {
		if (optind + 1 == argc) {
			usage(stdout);
			return CHATCTL_EXIT_OK;
		}
		if ((cmd = commands_find(argv[optind + 1])) == NULL)
			return usage_error(NULL, "unknown command \"%s\"", argv[optind + 1]);
		commands_print_help(stdout, cmd);
		return CHATCTL_EXIT_OK;
	}
	if ((cmd = commands_find(argv[optind])) == NULL)
		return usage_error(NULL, "unknown command \"%s\"", argv[optind]);
	if (help) {
		commands_print_help(stdout, cmd);
		return CHATCTL_EXIT_OK;
	}

	/* Second pass over the command's words: argv[0] is the command, and
	 * GNU getopt moves the positional arguments to the end. */
	cargc = argc - optind;
	cargv = argv + optind;
	optind = 0; /* glibc: start afresh */
	while ((ch = getopt_long(cargc, cargv, ":s:t:jhVd:r:", command_options, NULL)) != -1) {
		switch (ch) {
		case 'd':
			if (!(cmd->flags & COMMANDS_DURATION))
				return usage_error(cmd, "%s does not take --duration", cmd->name);
			c.duration_s = commands_parse_duration(optarg, BAN_DURATION_MAX_SECONDS);
			if (c.duration_s < 0)
				return usage_error(cmd,
				    "--duration %s: expected seconds, or a number with s, m, h or "
				    "d "
				    "(at most 365d)",
				    optarg);
			break;
		case 'r':
			if (!(cmd->flags & COMMANDS_REASON))
				return usage_error(cmd, "%s does not take --reason", cmd->name);
			c.reason = optarg;
			break;
		case OPT_NO_DB:
			if (!(cmd->flags & COMMANDS_DB))
				return usage_error(cmd, "%s does not take --no-db", cmd->name);
			c.no_db = 1;
			break;
		case OPT_ALL:
			if (!(cmd->flags & COMMANDS_DEAD))
				return usage_error(cmd, "%s does not take --all", cmd->name);
			c.all = 1;
			break;
		case OPT_TARGET:
			if (!(cmd->flags & COMMANDS_DEAD))
				return usage_error(cmd, "%s does not take --target", cmd->name);
			c.target = optarg;
			break;
		case OPT_FROM:
		case OPT_TO:
		case OPT_VERIFY_ONLY:
			if (!(cmd->flags & COMMANDS_COPY))
				return usage_error(cmd, "%s does not take --%s", cmd->name,
				    ch == OPT_FROM     ? "from"
					: ch == OPT_TO ? "to"
						       : "verify-only");
			if (ch == OPT_FROM)
				c.from = optarg;
			else if (ch == OPT_TO)
				c.to = optarg;
			else
				c.verify_only = 1;
			break;
		case '?':
		case ':':
			return bad_option(cmd, ch, cargv[optind - 1]);
		default:
			if (global_option(&c, ch, optarg, &help, &version) != 0)
				return bad_value(cmd, ch, optarg);
			break;
		}
	}
	if (version) {
		printf("chatctl %s\n", PACKAGE_VERSION);
		return CHATCTL_EXIT_OK;
	}
	if (help) {
		commands_print_help(stdout, cmd);
		return CHATCTL_EXIT_OK;
	}
	cargc -= optind;
	cargv += optind;
	if (cargc < cmd->min_args || cargc > cmd->max_args)
		return usage_error(cmd, "%s: wrong number of arguments", cmd->name);
	if ((cmd->flags & COMMANDS_COPY) && (c.from == NULL || c.to == NULL))
		return usage_error(cmd, "%s needs --from and --to", cmd->name);

	/* Settings last: --help and usage errors need none, and a broken
	 * .env should not hide a typo on the command line. */
	if (config_load(&c.cfg, NULL, NULL, &cause) != 0) {
		fprintf(stderr, "chatctl: configuration: %s\n", cause);
		free(cause);
		return CHATCTL_EXIT_USAGE;
	}
	if (c.socket_path == NULL)
		c.socket_path = c.cfg.control_socket;
	if (c.timeout_ms == 0)
		c.timeout_ms = (int)c.cfg.control_timeout_ms;

	status = cmd->run(&c, cargv, cargc);
	config_clear(&c.cfg);
	/* A result that never reached its reader is not a success. */
	if (fflush(stdout) != 0 || ferror(stdout)) {
		fprintf(stderr, "chatctl: writing the result: %s\n", strerror(errno));
		if (status == CHATCTL_EXIT_OK)
			status = CHATCTL_EXIT_FAILED;
	}
	return status;
}
