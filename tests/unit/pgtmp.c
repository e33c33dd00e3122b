#include "autoconf.h"

#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>

#include <netinet/in.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <glob.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pgtmp.h"
#include "xmalloc.h"

#define PGTMP_TEMPLATE "/tmp/chatd-test-pg.XXXXXX"
#define PGTMP_START_TRIES 3 /* another process may take the free port first */
#define PGTMP_LOG_TAIL 1500

struct pgtmp {
	char dir[sizeof PGTMP_TEMPLATE];
	char *bindir;
	int as_postgres; /* root: run the tools as the postgres user */
	int port;
	int running;
	char *conninfo;
};

static const char *const runuser_paths[] = { "/usr/sbin/runuser", "/sbin/runuser" };

/* The newest /usr/lib/postgresql/<version>/bin holding initdb; NULL if none. */
static char *
pgtmp_bindir(void)
{
	const char *env = getenv("PG_BINDIR");
	glob_t g;
	char *best = NULL, *slash;
	long v, best_v = -1;
	size_t i;

	if (env != NULL && env[0] != '\0')
		return xstrdup(env);
	if (glob("/usr/lib/postgresql/*/bin/initdb", 0, NULL, &g) != 0)
		return NULL;
	for (i = 0; i < g.gl_pathc; i++) {
		v = strtol(g.gl_pathv[i] + strlen("/usr/lib/postgresql/"), NULL, 10);
		if (v > best_v) {
			best_v = v;
			free(best);
			best = xstrdup(g.gl_pathv[i]);
		}
	}
	globfree(&g);
	if (best != NULL && (slash = strrchr(best, '/')) != NULL)
		*slash = '\0';
	return best;
}

static const char *
pgtmp_runuser(void)
{
	size_t i;

	for (i = 0; i < sizeof runuser_paths / sizeof runuser_paths[0]; i++)
		if (access(runuser_paths[i], X_OK) == 0)
			return runuser_paths[i];
	return NULL;
}

/* The last PGTMP_LOG_TAIL bytes of a file, or a note that there is none. */
static char *
pgtmp_tail(const char *path)
{
	char buf[PGTMP_LOG_TAIL + 1];
	size_t n;
	FILE *f;

	if ((f = fopen(path, "r")) == NULL)
		return xasprintf("(no %s)", path);
	if (fseek(f, -PGTMP_LOG_TAIL, SEEK_END) != 0)
		rewind(f);
	n = fread(buf, 1, PGTMP_LOG_TAIL, f);
	buf[n] = '\0';
	fclose(f);
	return xasprintf("%s:\n%s", path, buf);
}

/*
 * Runs bindir/tool with args (NULL-terminated, at most 12) in the
 * cluster's folder, as postgres when root, its output appended to
 * setup.log there. Returns its exit status (-1: did not run).
 */
static int
pgtmp_run(struct pgtmp *pg, const char *tool, const char *const *args)
{
	const char *argv[20];
	char *exe = xasprintf("%s/%s", pg->bindir, tool), *log = xasprintf("%s/setup.log", pg->dir);
	size_t n = 0;
	pid_t pid;
	int status, fd;

	if (pg->as_postgres) {
		argv[n++] = pgtmp_runuser();
		argv[n++] = "-u";
		argv[n++] = "postgres";
		argv[n++] = "--";
	}
	argv[n++] = exe;
	while (*args != NULL && n < sizeof argv / sizeof argv[0] - 1)
		argv[n++] = *args++;
	argv[n] = NULL;
	if ((pid = fork()) < 0) {
		free(exe);
		free(log);
		return -1;
	}
	if (pid == 0) {
		/* Opened as root before runuser: the tools need not write the folder for it. */
		if ((fd = open(log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600)) < 0 ||
		    dup2(fd, 1) < 0 || dup2(fd, 2) < 0 || chdir(pg->dir) != 0)
			_exit(126);
		execv(argv[0], (char *const *)argv);
		_exit(127);
	}
	free(exe);
	free(log);
	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR)
			return -1;
	return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/* A TCP port on 127.0.0.1 nobody listens on now; 0 if none was found. */
static int
pgtmp_free_port(void)
{
	struct sockaddr_in sa;
	socklen_t len = sizeof sa;
	int fd, port = 0;

	if ((fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0)
		return 0;
	memset(&sa, 0, sizeof sa);
	sa.sin_family = AF_INET;
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (bind(fd, (struct sockaddr *)&sa, sizeof sa) == 0 &&
	    getsockname(fd, (struct sockaddr *)&sa, &len) == 0)
		port = ntohs(sa.sin_port);
	close(fd);
	return port;
}

static int
pgtmp_unlink(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb;
	(void)flag;
	(void)ftw;
	(void)remove(path);
	return 0;
}

/* Tells why the setup failed, with the output of the tools. */
static char *
pgtmp_failed(struct pgtmp *pg, const char *what)
{
	char *log = xasprintf("%s/setup.log", pg->dir),
	     *server = xasprintf("%s/server.log", pg->dir);
	char *a = pgtmp_tail(log), *b = pgtmp_tail(server), *msg;

	msg = xasprintf("throwaway PostgreSQL server: %s\n%s\n%s", what, a, b);
	free(a);
	free(b);
	free(log);
	free(server);
	return msg;
}

struct pgtmp *
pgtmp_start(char **error)
{
	struct pgtmp *pg = xcalloc(1, sizeof *pg);
	struct passwd *pw = NULL;
	char port[16], *data, *slog, *opts, *what;
	int tries, rc;

	*error = NULL;
	memcpy(pg->dir, PGTMP_TEMPLATE, sizeof pg->dir);
	pg->as_postgres = geteuid() == 0;
	if ((pg->bindir = pgtmp_bindir()) == NULL) {
		*error = xstrdup("throwaway PostgreSQL server: no /usr/lib/postgresql/*/bin/initdb "
				 "(install the Debian package postgresql, or set PG_BINDIR)");
		free(pg);
		return NULL;
	}
	if (pg->as_postgres && (pgtmp_runuser() == NULL || (pw = getpwnam("postgres")) == NULL)) {
		*error = xstrdup("throwaway PostgreSQL server: running as root needs runuser "
				 "(util-linux) and the postgres user (the postgresql package)");
		free(pg->bindir);
		free(pg);
		return NULL;
	}
	if (mkdtemp(pg->dir) == NULL ||
	    (pw != NULL && chown(pg->dir, pw->pw_uid, pw->pw_gid) != 0)) {
		*error = xasprintf("throwaway PostgreSQL server: %s: %s", pg->dir, strerror(errno));
		(void)rmdir(pg->dir);
		free(pg->bindir);
		free(pg);
		return NULL;
	}
	data = xasprintf("%s/data", pg->dir);
	slog = xasprintf("%s/server.log", pg->dir);
	rc = pgtmp_run(pg, "initdb",
	    (const char *const[]){ "-D", data, "-A", "trust", "-U", "postgres", "-E", "UTF8",
		"--locale=C", "--no-sync", NULL });
	if (rc != 0) {
		what = xasprintf("initdb exited with %d", rc);
		goto fail;
	}
	for (tries = 0; tries < PGTMP_START_TRIES; tries++) {
		if ((pg->port = pgtmp_free_port()) == 0) {
			what = xstrdup("no free TCP port on 127.0.0.1");
			goto fail;
		}
		(void)snprintf(port, sizeof port, "%d", pg->port);
		/* Durability is of no use to a server that is removed afterwards. */
		opts = xasprintf("-p %d -k %s -c listen_addresses=127.0.0.1 -c fsync=off "
				 "-c full_page_writes=off -c synchronous_commit=off "
				 "-c max_connections=20 -c shared_buffers=16MB",
		    pg->port, pg->dir);
		rc = pgtmp_run(pg, "pg_ctl",
		    (const char *const[]){
			"-D", data, "-l", slog, "-w", "-t", "60", "-o", opts, "start", NULL });
		free(opts);
		if (rc == 0)
			break;
	}
	if (rc != 0) {
		what = xasprintf("pg_ctl start exited with %d", rc);
		goto fail;
	}
	pg->running = 1;
	pg->conninfo =
	    xasprintf("host=%s port=%d dbname=postgres user=postgres", pg->dir, pg->port);
	free(data);
	free(slog);
	return pg;

fail:
	*error = pgtmp_failed(pg, what);
	free(what);
	free(data);
	free(slog);
	pgtmp_stop(pg);
	return NULL;
}

void
pgtmp_stop(struct pgtmp *pg)
{
	char *data;

	if (pg == NULL)
		return;
	if (pg->running) {
		data = xasprintf("%s/data", pg->dir);
		if (pgtmp_run(pg, "pg_ctl",
			(const char *const[]){
			    "-D", data, "-m", "immediate", "-w", "stop", NULL }) != 0)
			fprintf(stderr, "throwaway PostgreSQL server: pg_ctl stop failed (%s)\n",
			    pg->dir);
		free(data);
	}
	(void)nftw(pg->dir, pgtmp_unlink, 16, FTW_DEPTH | FTW_PHYS);
	free(pg->bindir);
	free(pg->conninfo);
	free(pg);
}

const char *
pgtmp_conninfo(const struct pgtmp *pg)
{
	return pg->conninfo;
}

int
pgtmp_port(const struct pgtmp *pg)
{
	return pg->port;
}
