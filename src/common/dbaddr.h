/*
 * Database addresses as DATABASE_URL gives them after config.c has parsed
 * them: a SQLite file path, or a PostgreSQL URI (postgres://... or
 * postgresql://..., libpq's own syntax: user, password, host, port,
 * database and ?options such as sslmode). db_open() picks its backend
 * with dbaddr_is_pg(); everything that prints an address prints
 * dbaddr_display(), never the address itself, because a PostgreSQL URI
 * may hold a password.
 *
 * Any thread (no state).
 */
#ifndef CHAT_DBADDR_H
#define CHAT_DBADDR_H

/* Whether address is a PostgreSQL URI (postgres:// or postgresql://). */
int dbaddr_is_pg(const char *address);

/*
 * The address for messages and logs (heap): a file path as it is; a URI
 * (of any scheme) with its password, in the user part or a password=
 * option, as "***".
 */
char *dbaddr_display(const char *address);

/*
 * Checks a PostgreSQL URI the way libpq will read it (without
 * connecting): 0, or -1 with *cause (heap) saying what is wrong, with
 * nothing of the password in it.
 */
int dbaddr_check_pg(const char *address, char **cause);

#endif
