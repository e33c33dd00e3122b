/*
 * chatd: the WebSocket daemon. main() parses the command line, loads the
 * settings, raises the open-file limit, installs the signal handlers and
 * hands over to server_run(). Touches no room or connection state.
 */
#include "autoconf.h"

#include <sys/resource.h>

#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "log.h"
#include "server.h"

static void
usage(FILE *out)
{
	fprintf(out,
	    "usage: chatd [--help | --version | --config-table]\n"
	    "\n"
	    "Serves WebSocket chat rooms on CHATD_LISTEN (behind the web server's /ws/\n"
	    "proxy) and the control socket CONTROL_SOCKET. SIGTERM or SIGINT shut it\n"
	    "down gracefully.\n"
	    "\n"
	    "      --config-table     print the configuration table (Markdown) and exit\n"
	    "  -h, --help             this text\n"
	    "  -V, --version          print the version and exit\n"
	    "\n");
	config_print_help(out, CONFIG_CHATD);
}

static void
main_signal(int sig)
{
	(void)sig;
	server_signal();
}

/* Each connection is a descriptor: allow as many as the hard limit does. */
static void
main_raise_nofile(void)
{
	struct rlimit rl;
	rlim_t soft;

	if (getrlimit(RLIMIT_NOFILE, &rl) != 0) {
		log_warn("getrlimit(RLIMIT_NOFILE): %s", strerror(errno));
		return;
	}
	soft = rl.rlim_cur;
	if (rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		if (setrlimit(RLIMIT_NOFILE, &rl) != 0) {
			log_warn("setrlimit(RLIMIT_NOFILE, %llu): %s",
			    (unsigned long long)rl.rlim_max, strerror(errno));
			return;
		}
	}
	log_info("open files: soft limit %llu (was %llu), hard limit %llu",
	    (unsigned long long)rl.rlim_cur, (unsigned long long)soft,
	    (unsigned long long)rl.rlim_max);
}

int
main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "config-table", no_argument, NULL, 'T' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	struct sigaction sa;
	struct config cfg;
	int ch, status;

	log_init("chatd", LOG_LEVEL_INFO);
	while ((ch = getopt_long(argc, argv, "hV", longopts, NULL)) != -1) {
		switch (ch) {
		case 'T':
			config_print_markdown(stdout);
			return 0;
		case 'h':
			usage(stdout);
			return 0;
		case 'V':
			printf("chatd %s\n", PACKAGE_VERSION);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind != argc) {
		usage(stderr);
		return 2;
	}

	config_load_or_exit(&cfg);
	if (cfg.token_secret != NULL)
		log_info("token mode: joins need a token from chat-api; admin rights come "
			 "from it alone");
	else
		log_warn("TOKEN_SECRET is not set: user_id is trusted, so anyone can claim a "
			 "room admin's id and its rights");
	if (cfg.database_is_memory)
		log_info("DATABASE_URL is unset or sqlite::memory: using %s (shared by all "
			 "programs, lost at reboot)",
		    cfg.database_path);
	main_raise_nofile();

	memset(&sa, 0, sizeof sa);
	sigemptyset(&sa.sa_mask);
	sa.sa_handler = SIG_IGN;
	if (sigaction(SIGPIPE, &sa, NULL) != 0)
		fatal("sigaction(SIGPIPE): %s", strerror(errno));
	sa.sa_handler = main_signal;
	if (sigaction(SIGTERM, &sa, NULL) != 0 || sigaction(SIGINT, &sa, NULL) != 0)
		fatal("sigaction: %s", strerror(errno));

	status = server_run(&cfg);
	config_clear(&cfg);
	return status;
}
