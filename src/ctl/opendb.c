/*
 * chatctl's one way into the database: the existing file DATABASE_URL
 * names, never a new one (chatd, chat-api and chat-sync create it), with
 * the message that says which file it looked for.
 */
#include "autoconf.h"

#include <stdio.h>
#include <stdlib.h>

#include "chatctl.h"
#include "db.h"
#include "dbaddr.h"

int
commands_db_open_existing(struct chatctl *c, struct db **db, int no_db_hint)
{
	char *cause = NULL, *shown;

	*db = NULL;
	switch (db_open_existing(c->cfg.database_path, db, &cause)) {
	case DB_OK:
		return 0;
	case DB_NOTFOUND:
		/* Never the address itself: a PostgreSQL URI may hold a password. */
		shown = dbaddr_display(c->cfg.database_path);
		fprintf(c->err,
		    "chatctl: DATABASE_URL%s: no database at %s: chatctl opens an existing "
		    "database only (chatd, chat-api and chat-sync create it); set DATABASE_URL "
		    "to the one they use%s\n",
		    c->cfg.database_is_memory ? " (unset or sqlite::memory:)" : "", shown,
		    no_db_hint ? ", or add --no-db" : "");
		free(shown);
		return -1;
	default:
		fprintf(c->err, "chatctl: DATABASE_URL: %s\n", cause);
		free(cause);
		return -1;
	}
}
