/*
 * chat-api: the management REST API as a FastCGI (or SCGI) application.
 * main() loads settings, checks the database once (running migrations),
 * starts the worker threads, then waits for a signal. libfcgi's own SIGTERM
 * handling only sets a flag that threads blocked in FCGX_Accept_r() never
 * look at (they stay in accept until a request comes), so every thread
 * blocks the signals and main() takes them with sigwait().
 */
#include "autoconf.h"

#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config.h"
#include "ctl.h"
#include "db.h"
#include "dbaddr.h"
#include "front.h"
#include "log.h"
#include "sdnotify.h"
#include "xmalloc.h"

static void
usage(FILE *out)
{
	fprintf(out,
	    "usage: chat-api [--socket PATH|HOST:PORT] [--socket-mode MODE] [--scgi] [--threads "
	    "N]\n"
	    "       chat-api --help | --version | --config-table | --config-man\n"
	    "\n"
	    "Serves the chatd management REST API (/management/...) to a web server.\n"
	    "Without --socket it speaks FastCGI on the socket passed as standard input, as\n"
	    "when spawned by lighttpd (bin-path) or spawn-fcgi.\n"
	    "\n"
	    "  -s, --socket SPEC      listen on a Unix socket PATH or on HOST:PORT\n"
	    "  -m, --socket-mode MODE permissions of a Unix socket (octal, default 0660)\n"
	    "      --scgi             speak SCGI instead of FastCGI\n"
	    "  -t, --threads N        worker threads (default API_THREADS)\n"
	    "      --config-table     print the configuration table (Markdown) and exit\n"
	    "      --config-man       print the settings list of chatd.env(5) (mdoc) and exit\n"
	    "  -h, --help             this text\n"
	    "  -V, --version          print the version and exit\n"
	    "\n");
	config_print_help(out, CONFIG_API);
}

int
main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "socket", required_argument, NULL, 's' },
		{ "socket-mode", required_argument, NULL, 'm' },
		{ "scgi", no_argument, NULL, 'S' },
		{ "threads", required_argument, NULL, 't' },
		{ "config-table", no_argument, NULL, 'T' },
		{ "config-man", no_argument, NULL, 'M' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	struct config cfg;
	struct front_options opts;
	const char *socket_spec = NULL;
	unsigned long mode = 0660;
	long threads = 0;
	int scgi = 0, ch, sig;
	char *cause = NULL, *end, *shown;
	sigset_t set;
	struct timespec wait;
	int64_t watchdog_ms;
	struct stat st;
	ino_t sock_ino = 0;
	struct db *db;

	log_init("chat-api", LOG_LEVEL_INFO);
	while ((ch = getopt_long(argc, argv, "s:m:t:hV", longopts, NULL)) != -1) {
		switch (ch) {
		case 's':
			socket_spec = optarg;
			break;
		case 'm':
			errno = 0;
			mode = strtoul(optarg, &end, 8);
			if (errno != 0 || *end != '\0' || mode > 07777)
				fatal("--socket-mode %s: expected an octal mode such as 0660",
				    optarg);
			break;
		case 'S':
			scgi = 1;
			break;
		case 't':
			errno = 0;
			threads = strtol(optarg, &end, 10);
			if (errno != 0 || *end != '\0' || threads < 1 || threads > 256)
				fatal("--threads %s: expected a number from 1 to 256", optarg);
			break;
		case 'T':
			config_print_markdown(stdout);
			return 0;
		case 'M':
			config_print_man(stdout);
			return 0;
		case 'h':
			usage(stdout);
			return 0;
		case 'V':
			printf("chat-api %s\n", PACKAGE_VERSION);
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
	/* A hung chatd must not cost every request CONTROL_TIMEOUT_MS: after
	 * one timeout, answer from the database at once for a while. */
	ctl_backoff_set(CTL_BACKOFF_MS);
	if (cfg.admin_api_key == NULL)
		log_warn("ADMIN_API_KEY is not set: every management route answers 503");
	if (cfg.database_is_memory)
		log_info("DATABASE_URL is unset or sqlite::memory: using %s (shared by all "
			 "programs, lost at reboot)",
		    cfg.database_path);

	/* Open once here so a bad path or schema stops us before serving. */
	if (db_open(cfg.database_path, &db, &cause) != DB_OK)
		fatal("DATABASE_URL: %s", cause);
	db_close(db);

	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	sigaddset(&set, SIGUSR1); /* libfcgi's own shutdown signal */
	if (pthread_sigmask(SIG_BLOCK, &set, NULL) != 0)
		fatal("pthread_sigmask failed");
	if (signal(SIGPIPE, SIG_IGN) == SIG_ERR)
		fatal("signal(SIGPIPE): %s", strerror(errno));

	memset(&opts, 0, sizeof opts);
	opts.cfg = &cfg;
	opts.threads = threads > 0 ? (int)threads : (int)cfg.api_threads;
	{
		struct sockaddr_storage ss;
		socklen_t sl = sizeof ss;
		/* fd 0 when spawned, else the socket we open below */
		int fd = socket_spec != NULL ? -1 : 0;
		if (fd == 0 && getsockname(fd, (struct sockaddr *)&ss, &sl) == 0)
			opts.listen_is_unix = ss.ss_family == AF_UNIX;
	}
	if (socket_spec != NULL) {
		opts.listen_fd = front_listen(socket_spec, (unsigned)mode, 128, &cause);
		if (opts.listen_fd < 0)
			fatal("%s", cause);
		opts.listen_is_unix = !front_is_tcp(socket_spec);
		if (opts.listen_is_unix && stat(socket_spec, &st) == 0)
			sock_ino = st.st_ino;
	}
	if ((scgi ? front_scgi_start(&opts, &cause) : front_fcgi_start(&opts, &cause)) != 0)
		fatal("%s", cause);
	/* Never the address itself: a PostgreSQL URI may hold a password. */
	shown = dbaddr_display(cfg.database_path);
	log_info("serving %s on %s with %d threads (database %s)", scgi ? "SCGI" : "FastCGI",
	    socket_spec ? socket_spec : "standard input", opts.threads, shown);
	free(shown);
	/* Listening and the workers accepting: a Type=notify unit is started. */
	sdnotify_notify("READY=1");
	watchdog_ms = sdnotify_watchdog_interval_ms();
	wait.tv_sec = watchdog_ms / 1000;
	wait.tv_nsec = (watchdog_ms % 1000) * 1000000L;

	for (;;) {
		if (watchdog_ms > 0) {
			if ((sig = sigtimedwait(&set, NULL, &wait)) < 0) {
				/* Timed out: the process lives; ping systemd's watchdog. */
				if (errno == EAGAIN)
					sdnotify_notify("WATCHDOG=1");
				continue;
			}
		} else if (sigwait(&set, &sig) != 0)
			continue;
		if (sig == SIGHUP) {
			log_info("SIGHUP ignored: restart chat-api to reload settings");
			continue;
		}
		break;
	}
	log_info("%s: exiting", strsignal(sig));
	sdnotify_notify("STOPPING=1");
	/* Remove our socket file, but not one a newer chat-api put in its place. */
	if (socket_spec != NULL && !front_is_tcp(socket_spec) && stat(socket_spec, &st) == 0 &&
	    st.st_ino == sock_ino && unlink(socket_spec) != 0)
		log_warn("unlink %s: %s", socket_spec, strerror(errno));
	/* Workers may be mid-request; _exit skips tearing down what they use. */
	_exit(0);
}
