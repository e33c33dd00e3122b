#!/usr/bin/env bash
# A throwaway PostgreSQL server for the benchmarks: initdb + pg_ctl in a
# private folder under /tmp, listening on 127.0.0.1 on a free port (and a
# Unix socket in that folder), trust authentication, one database per
# pg_tmp_createdb with its own owner role and password. PostgreSQL refuses
# to run as root, so as root the tools run as the postgres system user
# through runuser, in a folder owned by postgres.
#
# Sourced by the bench scripts:
#   . contrib/bench/pgtmp.sh
#   pg_tmp_start                   # sets PG_TMP_DIR, PG_TMP_PORT, PG_TMP_PID (the postmaster)
#   url=$(pg_tmp_createdb chat)    # postgres://chat:PW@127.0.0.1:PORT/chat
#   pg_tmp_psql chat <<<"SQL"      # runs SQL as the superuser (ON_ERROR_STOP)
#   pg_tmp_cpu_us                  # the server's CPU so far, in microseconds
#   pg_tmp_wait_gone USER          # until USER's closed sessions have ended
#   pg_tmp_stop                    # call it from the script's EXIT trap
# Run on its own it starts a server, creates the database "chat", prints
# its URL and holds the server until interrupted:
#   contrib/bench/pgtmp.sh
# and `contrib/bench/pgtmp.sh cpu PID` prints the CPU time (us) of the server
# whose postmaster is PID (the fan-out hooks call it).
#
# Settings (environment):
#   PG_FSYNC=on|off (default on): whether PostgreSQL ever forces its WAL to
#     disk.
#   PG_SYNC_COMMIT=off|on (default off): whether each COMMIT waits for that
#     flush. The defaults match what chatd asks of SQLite: WAL mode with
#     synchronous=NORMAL (src/common/db_sqlite.c), where a commit is not
#     fsynced (the WAL is, at checkpoints), so a power loss may roll back
#     the last commits but never corrupts the database. PostgreSQL's
#     equivalent is fsync=on with synchronous_commit=off (the WAL writer
#     flushes every wal_writer_delay, 200 ms). PG_SYNC_COMMIT=on is the
#     stricter "every commit is on disk" mode (SQLite's FULL).
#   PG_CPUS: CPU list for the server (taskset -c); empty: no pinning. The
#     scripts default it to the core their server runs on.
#   PG_BINDIR: where initdb and pg_ctl are (default: the newest
#     /usr/lib/postgresql/*/bin).
#   PG_MAX_CONNECTIONS (default 200).

PG_TMP_DIR=
PG_TMP_PORT=
PG_TMP_PID=
PG_TMP_PASSWORD=bench-pg-pw-7e2a

pg_tmp_bindir() {
	if [ -n "${PG_BINDIR:-}" ]; then
		echo "$PG_BINDIR"
		return
	fi
	ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -t/ -k5,5n | tail -1
}

# Runs a PostgreSQL tool as postgres when we are root.
pg_tmp_as() {
	if [ "$(id -u)" = 0 ]; then
		runuser -u postgres -- "$@"
	else
		"$@"
	fi
}

pg_tmp_free_port() {
	/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

pg_tmp_start() {
	local bindir pin=() as=() try
	bindir=$(pg_tmp_bindir)
	[ -n "$bindir" ] && [ -x "$bindir/initdb" ] ||
		{ echo "pgtmp: PostgreSQL is not installed (no /usr/lib/postgresql/*/bin/initdb)" >&2; return 2; }
	command -v psql >/dev/null || { echo "pgtmp: psql is not installed" >&2; return 2; }
	if [ "$(id -u)" = 0 ]; then
		command -v runuser >/dev/null || { echo "pgtmp: runuser is not installed" >&2; return 2; }
		id postgres >/dev/null 2>&1 || { echo "pgtmp: no postgres user" >&2; return 2; }
	fi
	[ -n "${PG_CPUS:-}" ] && pin=(taskset -c "$PG_CPUS")
	[ "$(id -u)" = 0 ] && as=(runuser -u postgres --)
	PG_TMP_DIR=$(mktemp -d /tmp/chatd-benchpg.XXXXXX)
	[ "$(id -u)" = 0 ] && chown postgres: "$PG_TMP_DIR"
	chmod 700 "$PG_TMP_DIR"
	pg_tmp_as "$bindir/initdb" -D "$PG_TMP_DIR/data" -A trust -U postgres -E UTF8 --no-locale --no-sync \
		>"$PG_TMP_DIR/initdb.log" 2>&1 || { echo "pgtmp: initdb failed:" >&2; cat "$PG_TMP_DIR/initdb.log" >&2; return 1; }
	# Another process may take the free port first: a few tries.
	for try in 1 2 3; do
		PG_TMP_PORT=$(pg_tmp_free_port)
		# The server's processes inherit pg_ctl's CPU affinity.
		if "${pin[@]}" "${as[@]}" "$bindir/pg_ctl" -D "$PG_TMP_DIR/data" -l "$PG_TMP_DIR/server.log" -w -t 60 \
			-o "-p $PG_TMP_PORT -k $PG_TMP_DIR -c listen_addresses=127.0.0.1 -c fsync=${PG_FSYNC:-on} -c synchronous_commit=${PG_SYNC_COMMIT:-off} -c max_connections=${PG_MAX_CONNECTIONS:-200}" \
			start >/dev/null 2>&1; then
			PG_TMP_PID=$(head -1 "$PG_TMP_DIR/data/postmaster.pid")
			return 0
		fi
		[ "$try" = 3 ] && { echo "pgtmp: the server did not start:" >&2; tail -20 "$PG_TMP_DIR/server.log" >&2; return 1; }
	done
}

pg_tmp_stop() {
	[ -n "$PG_TMP_DIR" ] || return 0
	if [ -n "$PG_TMP_PID" ]; then
		pg_tmp_as "$(pg_tmp_bindir)/pg_ctl" -D "$PG_TMP_DIR/data" -m immediate -w -t 60 stop >/dev/null 2>&1 ||
			kill "$PG_TMP_PID" 2>/dev/null || true
	fi
	rm -rf "$PG_TMP_DIR"
	PG_TMP_DIR='' PG_TMP_PID='' PG_TMP_PORT=''
}

# SQL from stdin (or the arguments) as the superuser into database DB;
# psql's output unaligned, tab-separated, no headers.
pg_tmp_psql() { # DB [SQL]
	local db=$1
	shift
	if [ $# -gt 0 ]; then
		psql -X -q -v ON_ERROR_STOP=1 -At -F $'\t' -h 127.0.0.1 -p "$PG_TMP_PORT" -U postgres -d "$db" -c "$*"
	else
		psql -X -q -v ON_ERROR_STOP=1 -At -F $'\t' -h 127.0.0.1 -p "$PG_TMP_PORT" -U postgres -d "$db"
	fi
}

# A new empty database owned by a new role of the same name; prints its URL.
pg_tmp_createdb() { # NAME
	pg_tmp_psql postgres "CREATE ROLE \"$1\" LOGIN PASSWORD '$PG_TMP_PASSWORD'" >/dev/null &&
		pg_tmp_psql postgres "CREATE DATABASE \"$1\" OWNER \"$1\"" >/dev/null &&
		echo "postgres://$1:$PG_TMP_PASSWORD@127.0.0.1:$PG_TMP_PORT/$1"
}

pg_tmp_dropdb() { # NAME
	pg_tmp_psql postgres "DROP DATABASE IF EXISTS \"$1\" WITH (FORCE)" >/dev/null &&
		pg_tmp_psql postgres "DROP ROLE IF EXISTS \"$1\"" >/dev/null
}

# The CPU time of every process of the server whose postmaster is PID, in
# microseconds: the postmaster's own and its live children's (the first
# field of /proc/PID/schedstat, nanoseconds on a CPU; PostgreSQL's
# processes have one thread each), and what its exited children used
# (cutime+cstime of its /proc/PID/stat, clock ticks, counted once the
# postmaster has reaped them), so that sessions and autovacuum workers that
# came and went between two readings are in their difference.
pg_tmp_cpu_of() { # PID
	local pm=$1 kids reaped
	kids=$(pgrep -P "$pm" 2>/dev/null | sed "s|.*|/proc/&/schedstat|" | tr '\n' ' ')
	# cutime and cstime: fields 14 and 15 after the ")" closing the command name.
	reaped=$(awk '{ sub(/^.*\) /, ""); print $14 + $15 }' "/proc/$pm/stat")
	# shellcheck disable=SC2086
	cat "/proc/$pm/schedstat" $kids 2>/dev/null | awk -v r="$reaped" -v hz="$(getconf CLK_TCK)" '
		{ ns += $1 } END { printf "%.0f\n", ns / 1000 + r * 1e6 / hz }'
}
pg_tmp_cpu_us() { pg_tmp_cpu_of "$PG_TMP_PID"; }

# Waits (up to 2 s) until no session of role USER is left: a client that
# closed its connection leaves a backend that ends, and is reaped into the
# postmaster's CPU figure, a moment later. Read the CPU after this.
pg_tmp_wait_gone() { # USER
	local k busy
	for _ in $(seq 40); do
		busy=0
		for k in $(pgrep -P "$PG_TMP_PID" 2>/dev/null); do
			if tr '\0' ' ' 2>/dev/null <"/proc/$k/cmdline" | grep -q "^postgres: $1 "; then
				busy=1
				break
			fi
		done
		[ "$busy" = 1 ] || return 0
		sleep 0.05
	done
}

# On its own: a server to try things against, until interrupted.
if [ "${BASH_SOURCE[0]}" = "$0" ]; then
	set -euo pipefail
	if [ "${1:-}" = cpu ]; then
		pg_tmp_cpu_of "$2"
		exit 0
	fi
	sleeper=
	trap '[ -z "$sleeper" ] || kill "$sleeper" 2>/dev/null; pg_tmp_stop' EXIT
	trap 'exit 130' INT
	trap 'exit 143' TERM
	pg_tmp_start
	pg_tmp_createdb chat
	echo "# postmaster $PG_TMP_PID in $PG_TMP_DIR (fsync=${PG_FSYNC:-on} synchronous_commit=${PG_SYNC_COMMIT:-off}); Ctrl-C stops it" >&2
	while :; do
		sleep 3600 &
		sleeper=$!
		wait "$sleeper" || true
	done
fi
