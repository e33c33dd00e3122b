# shellcheck shell=bash
# The database side of the bench scripts, for either backend (sourced):
# BACKEND=sqlite (default: one file per database in the script's temp dir)
# or BACKEND=pg (a throwaway PostgreSQL server from pgtmp.sh, one database
# per name). The scripts' own SQL goes through these functions, written so
# that both engines accept it; the tables themselves are made by the
# programs' migrations (start a program once before inserting).
#
#   bench_db_init DIR           # checks the tools; with pg starts the server
#   url=$(bench_db_url NAME)    # DATABASE_URL of database NAME (pg: created on first use)
#   bench_db_tx NAME <<<"SQL"   # SQL in one write transaction
#   bench_db_query NAME SQL     # one statement's rows, tab-separated
#   bench_db_series N           # "WITH ... c(i) ..." rows 1..N, for INSERT ... SELECT ... FROM c
#   bench_db_settle NAME        # after a bulk load: what the engine would do by itself soon
#   bench_db_cpu_us             # the database server's CPU so far, us (0 for SQLite)
#   bench_db_wait_gone NAME     # until the sessions of database NAME's role have ended
#   bench_db_stop               # from the script's EXIT trap
#   bench_result KEY VALUE      # a figure for db_bench.sh (appended to $BENCH_RESULTS if set)

BACKEND=${BACKEND:-sqlite}
BENCH_DB_DIR=
BENCH_DB_MADE=" "
# shellcheck source=contrib/bench/pgtmp.sh
. "$(dirname "${BASH_SOURCE[0]}")/pgtmp.sh"

bench_db_init() { # DIR
	BENCH_DB_DIR=$1
	case $BACKEND in
	sqlite)
		command -v sqlite3 >/dev/null || { echo "bench: sqlite3 is not installed" >&2; return 2; }
		;;
	pg)
		pg_tmp_start
		;;
	*)
		echo "bench: BACKEND must be sqlite or pg, not '$BACKEND'" >&2
		return 2
		;;
	esac
}

bench_db_stop() { [ "$BACKEND" != pg ] || pg_tmp_stop; }

bench_db_url() { # NAME
	if [ "$BACKEND" = pg ]; then
		if [[ "$BENCH_DB_MADE" != *" $1 "* ]]; then
			pg_tmp_createdb "$1" >/dev/null || return 1
			BENCH_DB_MADE+="$1 "
		fi
		echo "postgres://$1:$PG_TMP_PASSWORD@127.0.0.1:$PG_TMP_PORT/$1"
	else
		echo "sqlite:$BENCH_DB_DIR/$1.db"
	fi
}

# Drops database NAME (pg) or removes its files (sqlite).
bench_db_drop() { # NAME
	if [ "$BACKEND" = pg ]; then
		pg_tmp_dropdb "$1"
		BENCH_DB_MADE=${BENCH_DB_MADE/ $1 / }
	else
		rm -f "$BENCH_DB_DIR/$1.db" "$BENCH_DB_DIR/$1.db-wal" "$BENCH_DB_DIR/$1.db-shm"
	fi
}

bench_db_tx() { # NAME, SQL on stdin
	if [ "$BACKEND" = pg ]; then
		{ echo "BEGIN;"; cat; echo "COMMIT;"; } | pg_tmp_psql "$1" >/dev/null
	else
		{ echo ".timeout 10000"; echo "BEGIN IMMEDIATE;"; cat; echo "COMMIT;"; } | sqlite3 "$BENCH_DB_DIR/$1.db"
	fi
}

bench_db_query() { # NAME SQL
	if [ "$BACKEND" = pg ]; then
		pg_tmp_psql "$1" "$2"
	else
		sqlite3 -cmd ".timeout 10000" -separator $'\t' "$BENCH_DB_DIR/$1.db" "$2"
	fi
}

bench_db_series() { # N
	if [ "$BACKEND" = pg ]; then
		echo "WITH c(i) AS (SELECT generate_series(1, $1))"
	else
		echo "WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < $1)"
	fi
}

# After a bulk load: PostgreSQL's autovacuum would soon vacuum and analyze
# the new rows (visibility map for index-only scans, planner statistics);
# done now so that every run finds the same steady state. SQLite keeps no
# such state (chatd never runs ANALYZE), so nothing.
bench_db_settle() { # NAME
	[ "$BACKEND" != pg ] || pg_tmp_psql "$1" "VACUUM ANALYZE" >/dev/null
}

bench_db_size() { # NAME -> human-readable size
	if [ "$BACKEND" = pg ]; then
		pg_tmp_psql "$1" "SELECT pg_size_pretty(pg_database_size(current_database()))"
	else
		du -ch "$BENCH_DB_DIR/$1".db* | tail -1 | awk '{print $1}'
	fi
}

bench_db_cpu_us() { if [ "$BACKEND" = pg ]; then pg_tmp_cpu_us; else echo 0; fi; }

# Before reading the CPU after a client closed: until the server has ended its
# sessions (the scripts' own psql sessions are those of NAME postgres).
bench_db_wait_gone() { [ "$BACKEND" != pg ] || pg_tmp_wait_gone "$1"; }

bench_db_describe() {
	if [ "$BACKEND" = pg ]; then
		echo "PostgreSQL $("$(pg_tmp_bindir)/postgres" --version | awk '{print $3}') (fsync=${PG_FSYNC:-on}, synchronous_commit=${PG_SYNC_COMMIT:-off}${PG_CPUS:+, on CPU $PG_CPUS})"
	else
		echo "SQLite $(sqlite3 --version | awk '{print $1}') (WAL, synchronous=NORMAL)"
	fi
}

bench_result() { # KEY VALUE
	[ -z "${BENCH_RESULTS:-}" ] || printf '%s %s\n' "$1" "$2" >>"$BENCH_RESULTS"
}
