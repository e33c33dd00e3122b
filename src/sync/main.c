/*
 * chat-sync: delivers the callbacks (room events, chat and session
 * history, periodic sync, the legacy DATA_CALLBACK_URL) from the shared
 * database. --once delivers what is due and exits (cron, systemd timer);
 * --daemon stays and polls. main() only parses options, loads settings,
 * opens the database and installs signal handlers; sync.c does the work.
 */
#include "autoconf.h"

#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "db.h"
#include "dbaddr.h"
#include "deliver.h"
#include "log.h"
#include "sync.h"
#include "xmalloc.h"

static volatile sig_atomic_t main_stop;

static void
main_on_signal(int sig)
{
	(void)sig;
	main_stop = 1;
}

static void
usage(FILE *out)
{
	fprintf(out,
	    "usage: chat-sync --once | --daemon\n"
	    "       chat-sync --encode-only TARGET\n"
	    "       chat-sync --help | --version\n"
	    "\n"
	    "Delivers chatd's callbacks (see docs/callbacks.md) from the shared database.\n"
	    "\n"
	    "      --once     deliver everything due, then exit (cron, systemd timer);\n"
	    "                 exit status 1 if a target is still failing\n"
	    "      --daemon   stay running; room events within about a second\n"
	    "      --encode-only TARGET\n"
	    "                 benchmark aid (contrib/bench/sync_bench.sh): read and\n"
	    "                 JSON-encode every batch of a feed target (room_events,\n"
	    "                 chat_history, session_history) pending after its cursor,\n"
	    "                 then print rows/s; sends nothing and moves no cursor\n"
	    "  -h, --help     this text\n"
	    "  -V, --version  print the version and exit\n"
	    "\n");
	config_print_help(out, CONFIG_SYNC);
}

int
main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "once", no_argument, NULL, 'o' },
		{ "daemon", no_argument, NULL, 'd' },
		{ "encode-only", required_argument, NULL, 'E' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	struct config cfg;
	struct sigaction sa;
	struct db *db = NULL;
	char *cause = NULL;
	const char *encode_target = NULL;
	int ch, mode = -1, rc;

	log_init("chat-sync", LOG_LEVEL_INFO);
	while ((ch = getopt_long(argc, argv, "hV", longopts, NULL)) != -1) {
		switch (ch) {
		case 'o':
			mode = SYNC_ONCE;
			break;
		case 'd':
			mode = SYNC_DAEMON;
			break;
		case 'E':
			encode_target = optarg;
			break;
		case 'h':
			usage(stdout);
			return 0;
		case 'V':
			printf("chat-sync %s\n", PACKAGE_VERSION);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind != argc || (mode < 0) == (encode_target == NULL)) {
		usage(stderr);
		return 2;
	}

	config_load_or_exit(&cfg);

	/* No SA_RESTART: a signal cuts a sleep short so the loop sees it. */
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = main_on_signal;
	if (sigemptyset(&sa.sa_mask) != 0 || sigaction(SIGTERM, &sa, NULL) != 0 ||
	    sigaction(SIGINT, &sa, NULL) != 0 || sigaction(SIGHUP, &sa, NULL) != 0)
		fatal("sigaction: %s", strerror(errno));
	if (signal(SIGPIPE, SIG_IGN) == SIG_ERR)
		fatal("signal(SIGPIPE): %s", strerror(errno));

	if (deliver_global_init(&cause) != 0)
		fatal("%s", cause);
	if (db_open(cfg.database_path, &db, &cause) != DB_OK)
		fatal("DATABASE_URL: %s", cause);
	if (encode_target != NULL)
		rc = sync_encode_only(&cfg, db, encode_target, &main_stop, &cause);
	else {
		/* Never the address itself: a PostgreSQL URI may hold a password. */
		char *shown = dbaddr_display(cfg.database_path);

		log_info(
		    "%s (database %s)", mode == SYNC_DAEMON ? "running" : "delivering once", shown);
		free(shown);
		rc = sync_run(&cfg, db, mode, &main_stop, &cause);
	}
	if (rc < 0) {
		log_error("%s", cause);
		free(cause);
		rc = 1;
	}
	if (main_stop)
		log_info("stopping on a signal");
	db_close(db);
	deliver_global_cleanup();
	config_clear(&cfg);
	return rc;
}
