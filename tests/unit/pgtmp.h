/*
 * A throwaway PostgreSQL server for unit tests: initdb and pg_ctl in a
 * private folder under /tmp, listening on 127.0.0.1 on a free port and on
 * a Unix socket in that folder, trust authentication, no fsync. As root
 * (the server refuses to run as root) both run as the postgres system
 * user through runuser. Nothing is skipped: a missing initdb, pg_ctl,
 * runuser or postgres user is an error.
 */
#ifndef PGTMP_H
#define PGTMP_H

struct pgtmp;

/*
 * Creates and starts a cluster; NULL with *error (heap) saying what
 * failed, with the tail of the tools' output. PG_BINDIR in the
 * environment names the folder of initdb and pg_ctl; by default the
 * newest /usr/lib/postgresql/<version>/bin.
 */
struct pgtmp *pgtmp_start(char **error);
/* Stops the server at once and removes its folder. NULL is allowed. */
void pgtmp_stop(struct pgtmp *pg);

/* A libpq connection string over the Unix socket, as the superuser postgres. */
const char *pgtmp_conninfo(const struct pgtmp *pg);
/* The TCP port on 127.0.0.1. */
int pgtmp_port(const struct pgtmp *pg);

#endif
