#!/usr/bin/env bash
# chatd quick start: from a fresh Debian 12 machine to a running stack, or to
# a full test run, with one command. Run it from anywhere; it works in the
# checkout it belongs to.
#
# Usage:
#   contrib/quickstart.sh [run]  install what building and running need, build,
#                                then run the stack in the foreground until
#                                Ctrl-C
#   contrib/quickstart.sh test   install that and what the tests need, build,
#                                run the whole test suite (make check); its
#                                status is ours
#   contrib/quickstart.sh deps [test]
#                                only install the missing Debian packages (of
#                                run, or of test)
#   contrib/quickstart.sh packages [test]
#                                print the packages run (or test) needs
#   contrib/quickstart.sh build  deps, then ./autogen.sh, ./configure, make
#   contrib/quickstart.sh serve  run the stack from an existing build (no apt,
#                                no build)
#   contrib/quickstart.sh env    create ./.env as run does, if missing, and
#                                print the database and control socket the
#                                stack uses
#
# Packages: run needs BUILD_PACKAGES and RUN_PACKAGES (nginx, or lighttpd
# with QUICKSTART_FRONT=lighttpd); test adds TEST_PACKAGES (every web server,
# valgrind, clang-format, cppcheck, mandoc and the tools the tests drive).
# Installing needs root (or sudo): apt-get update once, then apt-get install
# --no-install-recommends of the packages that are missing. While
# it installs, a temporary /usr/sbin/policy-rc.d keeps Debian from starting
# the freshly installed lighttpd, apache2 and nginx (they would fight over
# port 80) and postgresql; the quick start runs its own web server from a
# rendered config, and the tests their own throwaway PostgreSQL server.
#
# The stack (run/serve): chat-api on a Unix socket, chatd and chat-sync
# when they are built (src/chatd/chatd, src/sync/chat-sync), and a web server
# on BIND_ADDRESS (default 127.0.0.1:3000) that routes /management to
# chat-api (FastCGI) and /ws/ to chatd (CHATD_LISTEN). Every process runs as
# the invoking user, in the foreground, logging to this terminal; Ctrl-C or
# SIGTERM stops each one by PID.
#
# Settings come from the environment, then from CHAT_ENV_FILE, else ./.env,
# which is created from contrib/env.example when missing (with
# ADMIN_API_KEY=your_secret_api_key: change it before exposing the server)
# plus the two settings the stack uses, so that chatctl run from the
# checkout finds the same database and control socket:
#   DATABASE_URL=sqlite:<checkout>/state/chat.db   (persistent, not /dev/shm)
#   CONTROL_SOCKET=<checkout>/state/control.sock
# Where an existing .env sets neither, the quick start uses these defaults
# all the same (and says what chatctl needs).
# and, where neither sets it,
#   CHATD_LISTEN=unix:<checkout>/state/chatd.sock  (a Unix socket in the
#                 private state folder: no other local user reaches chatd;
#                 127.0.0.1:3001 if the path holds a blank, quote, | or :)
# Runtime files (sockets, the rendered web server config, temp files) go to
# ./state/ as well.
#
# Knobs:
#   QUICKSTART_FRONT     nginx (default) or lighttpd. lighttpd answers a POST
#                        without Content-Length (a plain `curl -X POST`, as in
#                        the README's sync example) with its own 411, so the
#                        default front is nginx; see docs/deployment.md.
#   QUICKSTART_STATE_DIR runtime folder (default <checkout>/state)
#   QUICKSTART_BUILDDIR  build tree holding src/api/chat-api (default: the
#                        checkout)
#   QUICKSTART_NODES     chatd nodes to run (default 1: one chatd, as above,
#                        nothing else). N > 1 runs a cluster on this machine
#                        (docs/deployment-cluster.md): nats-server on
#                        127.0.0.1 on a free port (unless CLUSTER_NATS_URL is
#                        set: then the nodes join that one), and N chatd
#                        sharing the database, each with its own
#                        NODE_ID=node-K, CHATD_LISTEN (unix:<state>/chatd-K.sock,
#                        or consecutive ports from a TCP CHATD_LISTEN) and
#                        control socket (node-1 keeps CONTROL_SOCKET, so that
#                        chat-api, chat-sync and chatctl talk to it; node-K
#                        gets <state>/control-K.sock), all with
#                        CLUSTER_NATS_URL; the web server balances /ws/ over
#                        them (sized for N x MAX_CONNECTIONS). run installs
#                        nats-server too.
set -euo pipefail

# What this project needs on Debian 12, in one place.
# Building (configure checks each library, and check for the unit tests).
BUILD_PACKAGES=(
	build-essential autoconf automake pkg-config
	libfcgi-dev libwebsockets-dev libwebsockets-evlib-uv libuv1-dev libsqlite3-dev libcurl4-openssl-dev libcjson-dev check libssl-dev
	libnats-dev libpq-dev
)
# Running the stack: the web server in front (nginx by default; lighttpd is
# added when it is the front), curl for the readiness probe, sqlite3 to look
# into the database; nats-server is added for QUICKSTART_NODES > 1.
RUN_PACKAGES=(nginx curl sqlite3)
# The tests: every web server and tool they drive, the memory checker, the
# formatter and linter of `make format-check` and `make lint`, the man page
# linter, systemd-analyze (unit checks), setpriv (util-linux), promtool
# (prometheus: the metrics test validates every exposition with it),
# nats-server (the cluster tests), postgresql (the PostgreSQL backend's unit
# test runs a throwaway server), and what building and checking the
# Debian package needs (tests/package).
TEST_PACKAGES=(
	lighttpd apache2 nginx spawn-fcgi nats-server postgresql
	curl python3 sqlite3 socat valgrind clang-format cppcheck mandoc systemd util-linux
	clang libclang-rt-dev prometheus
	debhelper dpkg-dev fakeroot lintian
)

top=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
builddir=${QUICKSTART_BUILDDIR:-$top}
state=${QUICKSTART_STATE_DIR:-$top/state}
front=${QUICKSTART_FRONT:-nginx}
nodes=${QUICKSTART_NODES:-1}

say() { printf 'quickstart: %s\n' "$*" >&2; }
die() { say "error: $*"; exit 1; }

case $nodes in
'' | *[!0-9]* | 0*) die "QUICKSTART_NODES=$nodes: expected a number of chatd nodes, 1-64" ;;
esac
[ "$nodes" -le 64 ] || die "QUICKSTART_NODES=$nodes: expected a number of chatd nodes, 1-64"

# ------------------------------------------------------------ packages

SUDO=()
need_root() {
	if [ "$(id -u)" -eq 0 ]; then
		SUDO=()
	elif command -v sudo >/dev/null 2>&1; then
		SUDO=(sudo)
	else
		die "installing packages needs root: run as root or install sudo"
	fi
}

policy_added=
remove_policy() {
	if [ -n "$policy_added" ]; then
		"${SUDO[@]}" rm -f /usr/sbin/policy-rc.d || true
		policy_added=
	fi
}

# The packages of a set (run or test), each once.
packages() {
	local set=${1:-run} p seen=" "
	local list=("${BUILD_PACKAGES[@]}" "${RUN_PACKAGES[@]}")
	case $set in
	run)
		[ "$front" != lighttpd ] || list+=(lighttpd)
		[ "$nodes" -eq 1 ] || list+=(nats-server)
		;;
	test) list+=("${TEST_PACKAGES[@]}") ;;
	*) die "unknown package set $set (expected run or test)" ;;
	esac
	for p in "${list[@]}"; do
		case $seen in *" $p "*) continue ;; esac
		seen="$seen$p "
		printf '%s\n' "$p"
	done
}

deps() {
	local missing=() p PACKAGES
	mapfile -t PACKAGES < <(packages "${1:-run}")
	if ! command -v dpkg-query >/dev/null 2>&1 || ! command -v apt-get >/dev/null 2>&1; then
		say "not a Debian system: make sure these are installed: ${PACKAGES[*]}"
		return 0
	fi
	for p in "${PACKAGES[@]}"; do
		if ! dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q '^install ok installed$'; then
			missing+=("$p")
		fi
	done
	if [ ${#missing[@]} -eq 0 ]; then
		say "all ${#PACKAGES[@]} packages are installed"
		return 0
	fi
	need_root
	say "installing: ${missing[*]}"
	"${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update
	if [ ! -e /usr/sbin/policy-rc.d ]; then
		printf '#!/bin/sh\n# chatd quickstart.sh: no service starts during its apt-get install\nexit 101\n' |
			"${SUDO[@]}" tee /usr/sbin/policy-rc.d >/dev/null
		"${SUDO[@]}" chmod 0755 /usr/sbin/policy-rc.d
		policy_added=1
	fi
	"${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}" </dev/null
	remove_policy
}

# ------------------------------------------------------------ build

build() {
	cd "$top"
	if [ ! -x configure ] || [ configure.ac -nt configure ]; then
		say "./autogen.sh"
		./autogen.sh
	fi
	if [ "$builddir" = "$top" ]; then
		if [ ! -f Makefile ]; then
			say "./configure --enable-werror"
			./configure --enable-werror
		fi
		say "make -j2"
		make -j2
	else
		[ -f "$builddir/Makefile" ] || die "QUICKSTART_BUILDDIR=$builddir is not configured"
		make -C "$builddir" -j2
	fi
}

# ------------------------------------------------------------ test

print_failed_logs() {
	local trs log found=
	for trs in "$builddir"/tests/*.trs "$builddir"/tests/*/*.trs; do
		[ -e "$trs" ] || continue
		if grep -Eq '^:test-result: (FAIL|ERROR|XPASS)' "$trs"; then
			log=${trs%.trs}.log
			found=1
			printf '\n======== %s ========\n' "${log#"$builddir"/}"
			cat "$log" 2>/dev/null || true
		fi
	done
	if [ -z "$found" ] && [ -e "$builddir/test-suite.log" ]; then
		cat "$builddir/test-suite.log"
	fi
}

# The parallel test harness keeps each test's output in its .log; show
# Check's summary lines ("100%: Checks: N, Failures: 0, Errors: 0") and the
# integration tests' "N passed, M failed" lines on every run.
print_summaries() {
	local log line
	for log in "$builddir"/tests/*.log "$builddir"/tests/*/*.log; do
		[ -e "$log" ] || continue
		case $log in */test-suite.log) continue ;; esac
		line=$(grep -E '^[0-9]+%: Checks|^[0-9]+ passed, [0-9]+ failed$' "$log" | tail -n 1) || true
		[ -n "$line" ] && printf '  %-45s %s\n' "${log#"$builddir"/}" "$line"
	done
	return 0
}

run_tests() {
	local status=0
	cd "$builddir"
	say "make check"
	make -j2 check || status=$?
	say "test summaries:"
	print_summaries
	if [ "$status" -ne 0 ]; then
		say "make check failed (status $status); logs of the failed tests follow"
		print_failed_logs
	fi
	return "$status"
}

# ------------------------------------------------------------ settings

# Value of a setting: environment first, then the env file (last
# assignment wins; quotes and a trailing " # comment" removed, as chatd's
# own parser does). Returns 1 when neither sets it.
conf_get() {
	local key=$1 line val
	if [ -n "${!key+x}" ]; then
		printf '%s' "${!key}"
		return 0
	fi
	line=$(grep -E "^[[:space:]]*(export[[:space:]]+)?${key}[[:space:]]*=" "$CHAT_ENV_FILE" | tail -n 1) || true
	[ -n "$line" ] || return 1
	val=${line#*=}
	val=${val#"${val%%[![:space:]]*}"}
	case $val in
	\"*) val=${val#\"} && val=${val%%\"*} ;;
	\'*) val=${val#\'} && val=${val%%\'*} ;;
	*) val=$(printf '%s' "$val" | sed -E 's/(^|[[:space:]]+)#.*$//; s/[[:space:]]+$//') ;;
	esac
	printf '%s' "$val"
}

# ------------------------------------------------------------ processes

pids=()
names=()

# Alive and not a zombie (our children stay zombies until reaped).
alive() {
	local st
	st=$(sed -n 's/^.*) \([A-Za-z]\).*/\1/p' "/proc/$1/stat" 2>/dev/null) || return 1
	[ -n "$st" ] && [ "$st" != Z ] && [ "$st" != X ]
}

start_bg() {
	local name=$1
	shift
	"$@" </dev/null &
	pids+=("$!")
	names+=("$name")
	say "started $name (pid $!): $*"
}

stop_all() {
	local i pid deadline
	[ ${#pids[@]} -gt 0 ] || return 0
	for ((i = ${#pids[@]} - 1; i >= 0; i--)); do
		pid=${pids[i]}
		if alive "$pid"; then
			kill -TERM "$pid" 2>/dev/null || true
			deadline=$((SECONDS + 10))
			while alive "$pid" && [ "$SECONDS" -lt "$deadline" ]; do
				sleep 0.1
			done
			if alive "$pid"; then
				say "${names[i]} (pid $pid) ignored SIGTERM for 10 s: SIGKILL"
				kill -KILL "$pid" 2>/dev/null || true
			fi
		fi
		wait "$pid" 2>/dev/null || true
	done
	say "stopped: ${names[*]}"
	pids=()
	names=()
}

on_exit() {
	local status=$?
	trap - EXIT INT TERM
	remove_policy
	stop_all
	exit "$status"
}

# 0 when nothing accepts connections on HOST PORT.
port_free() {
	if (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null; then
		return 1
	fi
	return 0
}

# The state folder and the settings file: creates ./.env (from
# contrib/env.example plus the database and control socket the stack uses)
# when there is none, and exports those two where nothing sets them.
setup_env() {
	local db=${DATABASE_URL:-sqlite:$state/chat.db} ctl=${CONTROL_SOCKET:-$state/control.sock} unset_keys=()

	# The database, its -wal/-shm and the sockets live here: closed to other
	# users (chatd's programs make their own files owner-only as well).
	mkdir -p "$state"
	chmod g-w,o-rwx "$state"
	if [ -n "${CHAT_ENV_FILE:-}" ]; then
		[ -r "$CHAT_ENV_FILE" ] || die "CHAT_ENV_FILE=$CHAT_ENV_FILE cannot be read"
	else
		CHAT_ENV_FILE=$top/.env
		if [ ! -e "$CHAT_ENV_FILE" ]; then
			(
				umask 077
				{
					cat "$top/contrib/env.example"
					printf '\n# Added by contrib/quickstart.sh: the database and control socket of\n'
					printf '# this checkout'"'"'s stack, so that chatctl run from here finds them.\n'
					printf 'DATABASE_URL=%s\nCONTROL_SOCKET=%s\n' "$db" "$ctl"
				} >"$CHAT_ENV_FILE.new"
			) && mv "$CHAT_ENV_FILE.new" "$CHAT_ENV_FILE" || die "cannot write $CHAT_ENV_FILE"
			say "created $CHAT_ENV_FILE from contrib/env.example (ADMIN_API_KEY=your_secret_api_key, DATABASE_URL=$db, CONTROL_SOCKET=$ctl)"
		fi
	fi
	export CHAT_ENV_FILE

	conf_get DATABASE_URL >/dev/null || { export DATABASE_URL="$db" && unset_keys+=("DATABASE_URL=$db"); }
	conf_get CONTROL_SOCKET >/dev/null || { export CONTROL_SOCKET="$ctl" && unset_keys+=("CONTROL_SOCKET=$ctl"); }
	if [ ${#unset_keys[@]} -gt 0 ]; then
		say "note: $CHAT_ENV_FILE does not set ${unset_keys[*]%%=*}; the stack uses ${unset_keys[*]}: add that to it for chatctl"
	fi
}

# ------------------------------------------------------------ cluster

# Where node K of several listens, beside the single node's CHATD_LISTEN ($1):
# unix:DIR/NAME.sock gives unix:DIR/NAME-K.sock, HOST:PORT gives
# HOST:PORT+K-1.
node_listen() {
	local listen=$1 k=$2 path port
	case $listen in
	unix:*)
		path=${listen#unix:}
		case $path in
		*.sock) printf 'unix:%s-%s.sock' "${path%.sock}" "$k" ;;
		*) printf 'unix:%s-%s' "$path" "$k" ;;
		esac
		;;
	*)
		port=${listen##*:}
		case $port in '' | *[!0-9]*) die "CHATD_LISTEN=$listen: expected HOST:PORT or unix:PATH" ;; esac
		[ $((port + k - 1)) -le 65535 ] || die "CHATD_LISTEN=$listen: no port left for node-$k"
		printf '%s:%s' "${listen%:*}" "$((port + k - 1))"
		;;
	esac
}

# Node K's control socket: node-1 keeps CONTROL_SOCKET ($1), which chat-api,
# chat-sync and chatctl (from the settings file) use; the others have their
# own in the state folder.
node_control() {
	if [ "$2" -eq 1 ]; then
		printf '%s' "$1"
	else
		printf '%s/control-%s.sock' "$state" "$2"
	fi
}

# Starts nats-server on 127.0.0.1 on a port the kernel picks (-p -1), which
# it writes to a ports file named after its PID; sets nats_url.
start_nats() {
	local bin pid ports i
	bin=$(command -v nats-server 2>/dev/null) || bin=/usr/sbin/nats-server
	[ -x "$bin" ] || die "nats-server is not installed (QUICKSTART_NODES=$nodes needs it: contrib/quickstart.sh deps)"
	start_bg nats-server "$bin" -a 127.0.0.1 -p -1 --ports_file_dir "$state"
	pid=${pids[-1]}
	ports=$state/$(basename "$bin")_$pid.ports
	nats_url=
	for ((i = 0; i < 100; i++)); do
		nats_url=$(sed -n 's/.*"nats":\["\([^"]*\)".*/\1/p' "$ports" 2>/dev/null) || true
		[ -z "$nats_url" ] || return 0
		alive "$pid" || die "nats-server exited during start-up"
		sleep 0.1
	done
	die "nats-server did not write its port to $ports within 10 s"
}

serve() {
	local chat_api=$builddir/src/api/chat-api chatd=$builddir/src/chatd/chatd
	local sync=$builddir/src/sync/chat-sync bind chatd_listen host port probe
	local api_sock key template conf code i url_host front_bin pid max_conns
	local nats_url='' ctl k addr node_addrs='' web_addrs='' node_lines=''

	[ -x "$chat_api" ] || die "$chat_api is missing: run contrib/quickstart.sh (or build) first"
	case $front in
	nginx | lighttpd) ;;
	*) die "QUICKSTART_FRONT=$front: expected nginx or lighttpd" ;;
	esac
	front_bin=$(command -v "$front" 2>/dev/null) || front_bin=/usr/sbin/$front
	[ -x "$front_bin" ] || die "$front is not installed (contrib/quickstart.sh deps)"

	setup_env
	bind=$(conf_get BIND_ADDRESS) || bind=127.0.0.1:3000
	if ! conf_get CHATD_LISTEN >/dev/null; then
		case $state in
		*[\"\|:\ \	]*) export CHATD_LISTEN=127.0.0.1:3001 ;;
		*) export CHATD_LISTEN="unix:$state/chatd.sock" ;;
		esac
	fi
	chatd_listen=$(conf_get CHATD_LISTEN)
	# The web server is sized for chatd's MAX_CONNECTIONS (render-config.sh
	# warns when the open-file limit does not allow it).
	max_conns=$(conf_get MAX_CONNECTIONS) || max_conns=100000
	# MAX_CONNECTIONS is each node's: the web server holds them all.
	case $max_conns in
	'' | *[!0-9]*) ;;
	*) [ "$nodes" -eq 1 ] || max_conns=$((10#$max_conns * nodes)) ;;
	esac
	key=$(conf_get ADMIN_API_KEY) || key=
	host=${bind%:*}
	port=${bind##*:}
	case $host in
	0.0.0.0 | '[::]' | '') probe=127.0.0.1 url_host=localhost ;;
	127.0.0.1 | localhost) probe=127.0.0.1 url_host=localhost ;;
	\[*\]) probe=${host#[} probe=${probe%]} url_host=$host ;;
	*) probe=$host url_host=$host ;;
	esac
	port_free "$probe" "$port" || die "BIND_ADDRESS $bind is already in use"
	[ -n "$key" ] || say "warning: ADMIN_API_KEY is not set: every /management route will answer 503"

	# A cluster: its NATS first, so that every program started below sees
	# the same CLUSTER_NATS_URL.
	if [ "$nodes" -gt 1 ]; then
		[ -x "$chatd" ] || die "QUICKSTART_NODES=$nodes runs chatd nodes, but $chatd is not built"
		if nats_url=$(conf_get CLUSTER_NATS_URL) && [ -n "$nats_url" ]; then
			say "the chatd nodes join CLUSTER_NATS_URL=$nats_url"
		else
			start_nats
		fi
		export CLUSTER_NATS_URL="$nats_url"
	fi

	api_sock=$state/api.sock
	rm -f "$api_sock"
	start_bg chat-api "$chat_api" --socket "$api_sock"
	for ((i = 0; i < 100; i++)); do
		[ -S "$api_sock" ] && break
		alive "${pids[0]}" || die "chat-api exited during start-up"
		sleep 0.1
	done
	[ -S "$api_sock" ] || die "chat-api did not create $api_sock within 10 s"

	if [ "$nodes" -gt 1 ]; then
		ctl=$(conf_get CONTROL_SOCKET)
		for ((k = 1; k <= nodes; k++)); do
			addr=$(node_listen "$chatd_listen" "$k")
			start_bg "chatd node-$k" env NODE_ID="node-$k" CHATD_LISTEN="$addr" \
				CONTROL_SOCKET="$(node_control "$ctl" "$k")" "$chatd"
			node_addrs="$node_addrs${node_addrs:+,}$addr"
			node_lines="$node_lines
    node-$k  $addr  control socket $(node_control "$ctl" "$k")"
		done
		web_addrs=$node_addrs
	elif [ -x "$chatd" ]; then
		start_bg chatd "$chatd"
	else
		say "chatd is not built yet: /ws/ will answer 502 until it is"
	fi
	if [ -x "$sync" ]; then
		start_bg chat-sync "$sync" --daemon
	fi

	if [ "$front" = lighttpd ]; then
		template=$top/contrib/lighttpd/chatd-socket.conf
		conf=$state/lighttpd.conf
		# No privilege switch: lighttpd runs as the invoking user.
		BIND_ADDRESS=$bind STATE_DIR=$state API_SOCKET=$api_sock CHATD_ADDR=$chatd_listen \
			CHATD_ADDRS=$web_addrs MAX_CONNECTIONS=$max_conns WEB_USER='' WEB_GROUP='' \
			"$top/contrib/render-config.sh" -o "$conf" "$template"
		start_bg lighttpd "$front_bin" -D -f "$conf"
	else
		template=$top/contrib/nginx/chatd.conf
		conf=$state/nginx.conf
		# Workers run as the invoking user (nginx ignores "user" unless root).
		BIND_ADDRESS=$bind STATE_DIR=$state API_SOCKET=$api_sock CHATD_ADDR=$chatd_listen \
			CHATD_ADDRS=$web_addrs MAX_CONNECTIONS=$max_conns WEB_USER="$(id -un)" WEB_GROUP="$(id -gn)" \
			"$top/contrib/render-config.sh" -o "$conf" "$template"
		start_bg nginx "$front_bin" -e stderr -p "$state" -c "$conf" -g 'daemon off;'
	fi

	code=000
	for ((i = 0; i < 200; i++)); do
		code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "http://$probe:$port/management/health" 2>/dev/null) || true
		case $code in 200 | 401 | 503) break ;; esac
		for pid in "${pids[@]}"; do
			alive "$pid" || die "a process exited during start-up (see the messages above)"
		done
		sleep 0.1
	done
	case $code in 200 | 401 | 503) ;; *) die "no answer from http://$probe:$port/management/health within 20 s (last: $code)" ;; esac

	local shown_key='your_secret_api_key'
	[ "$key" = your_secret_api_key ] || shown_key='<your ADMIN_API_KEY>'
	cat >&2 <<EOF

chatd quick start is running; Ctrl-C stops it.
  management API  http://$url_host:$port/management/   (chat-api via $front, FastCGI)
  WebSocket       ws://$url_host:$port/ws/rooms/{room_id}?user_id={user_id}&nickname={nickname}
  settings        $CHAT_ENV_FILE
  database        ${DATABASE_URL:-$(conf_get DATABASE_URL || true)}
  runtime files   $state${node_lines:+
  chatd nodes     $nodes, joined by NATS at $nats_url; the web server balances /ws/
                  over them; chat-api, chat-sync and chatctl talk to node-1$node_lines}

Try:
  curl -X POST http://$url_host:$port/management/rooms \\
    -H "Content-Type: application/json" \\
    -H "X-Api-Key: $shown_key" \\
    -d '{"room_name": "测试房间", "admin_user_ids": ["admin1", "admin2"]}'
  curl http://$url_host:$port/management/rooms -H "X-Api-Key: $shown_key"

EOF

	# Until a signal or until any process exits by itself.
	local done_pid status
	serving=1
	while :; do
		done_pid=
		status=0
		wait -n -p done_pid "${pids[@]}" || status=$?
		[ -n "$done_pid" ] || continue
		for i in "${!pids[@]}"; do
			if [ "${pids[i]}" = "$done_pid" ]; then
				say "${names[i]} (pid $done_pid) exited with status $status: stopping the rest"
				unset 'pids[i]' 'names[i]'
				pids=("${pids[@]}")
				names=("${names[@]}")
				break
			fi
		done
		exit 1
	done
}

# ------------------------------------------------------------ main

# A signal is how a running stack is meant to stop (status 0); anywhere
# else it is an interruption (128 + signal number).
serving=
on_signal() {
	say "$1: stopping"
	if [ -n "$serving" ]; then
		exit 0
	fi
	exit "$2"
}
trap on_exit EXIT
trap 'on_signal SIGINT 130' INT
trap 'on_signal SIGTERM 143' TERM

case ${1:-run} in
run)
	deps run
	build
	serve
	;;
test)
	deps test
	build
	run_tests
	;;
deps) deps "${2:-run}" ;;
packages) packages "${2:-run}" ;;
env)
	setup_env
	printf 'CHAT_ENV_FILE=%s\nDATABASE_URL=%s\nCONTROL_SOCKET=%s\n' "$CHAT_ENV_FILE" \
		"$(conf_get DATABASE_URL)" "$(conf_get CONTROL_SOCKET)"
	;;
build)
	deps
	build
	;;
serve) serve ;;
-h | --help | help) sed -n '2,/^set -euo pipefail$/p' "$0" | sed '$d; s/^# \{0,1\}//' ;;
*)
	say "unknown command $1 (expected run, test, deps, packages, build, serve, env or help)"
	exit 2
	;;
esac
