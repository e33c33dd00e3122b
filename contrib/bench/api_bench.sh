#!/usr/bin/env bash
# Management API throughput through lighttpd, each figure side by side with
# lighttpd serving a static file of the same size as that response (the
# baseline), printed as a ratio. A benchmark prints numbers; it asserts
# nothing and is not part of `make check`.
#
# Usage: contrib/bench/api_bench.sh [SECONDS_PER_RUN] [CONNECTIONS]
#   BACKEND=sqlite|pg (the database; pg: a throwaway PostgreSQL server, see
#   pgtmp.sh, unpinned unless PG_CPUS is set), API_BASELINE=0 (leave out the
#   static-file baselines and the one-thread runs), API_MESSAGES (the history
#   room's messages, default 1000000; the deep page is 90 % of the way in)
# Needs: a built tree (src/api/chat-api), lighttpd, wrk, curl, sqlite3 or PostgreSQL.
# Everything runs on 127.0.0.1 in a temp dir and stops by itself.
set -euo pipefail

secs=${1:-5}
conns=${2:-16}
top=$(cd "$(dirname "$0")/../.." && pwd)
api="$top/src/api/chat-api"
key=bench_key
baseline=${API_BASELINE:-1}
nmsg=${API_MESSAGES:-1000000}
[ "$nmsg" -ge 1000 ] || { echo "api_bench: API_MESSAGES must be at least 1000" >&2; exit 2; }
deep_page=$((nmsg / 100 * 9 / 10))
msgs_label=$(awk -v n="$nmsg" 'BEGIN { print (n % 1000000 == 0) ? n / 1000000 "M" : (n % 1000 == 0) ? n / 1000 "k" : n }')
: "${PG_CPUS=}" # nothing else here is pinned
# shellcheck source=contrib/bench/benchdb.sh
. "$top/contrib/bench/benchdb.sh"
for tool in lighttpd wrk curl; do
	command -v "$tool" >/dev/null || { echo "api_bench: $tool is not installed" >&2; exit 2; }
done
[ -x "$api" ] || { echo "api_bench: build first ($api missing)" >&2; exit 2; }

tmp=$(mktemp -d /tmp/chatd-bench.XXXXXX)
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
	bench_db_stop
	rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
bench_db_init "$tmp"

free_port() {
	/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}
port=$(free_port)
base="http://127.0.0.1:$port"
wait_ok() { # until the API answers 200 (lighttpd re-enables a restarted backend after a pause)
	for _ in $(seq 100); do
		[ "$(curl -s -o /dev/null -w '%{http_code}' -H "X-Api-Key: $key" "$base/management/health")" = 200 ] && return
		sleep 0.1
	done
	echo "api_bench: the API did not come up" >&2
	exit 1
}
mkdir -p "$tmp/htdocs"
cat > "$tmp/chatd.env" <<ENV
ADMIN_API_KEY=$key
DATABASE_URL=$(bench_db_url chat)
CONTROL_SOCKET=$tmp/control.sock
LOG_LEVEL=warning
ENV

start_api() { # THREADS
	CHAT_ENV_FILE="$tmp/chatd.env" "$api" --socket "$tmp/api.sock" --socket-mode 0666 \
		--threads "$1" 2>>"$tmp/api.log" &
	api_pid=$!
	pids+=($api_pid)
	for _ in $(seq 50); do [ -S "$tmp/api.sock" ] && break; sleep 0.1; done
}
start_api 8
BIND_ADDRESS=127.0.0.1:$port STATE_DIR=$tmp API_SOCKET=$tmp/api.sock WEB_USER= \
	"$top/contrib/render-config.sh" -o "$tmp/lighttpd.conf" "$top/contrib/lighttpd/chatd-socket.conf"
lighttpd -D -f "$tmp/lighttpd.conf" 2>"$tmp/lighttpd.log" &
pids+=($!)
wait_ok

echo "# setting up: 100 rooms, one of them with $nmsg messages"
for i in $(seq 100); do
	curl -fsS -o /dev/null -X POST "$base/management/rooms" -H "X-Api-Key: $key" \
		-H "Content-Type: application/json" -d "{\"room_name\":\"bench room $i\",\"admin_user_ids\":[\"admin1\"]}"
done
room=$(bench_db_query chat "SELECT id FROM rooms ORDER BY created_at, id LIMIT 1")
bench_db_tx chat <<SQL
$(bench_db_series "$nmsg")
INSERT INTO messages (room_id, seq, kind, user_id, nickname, is_admin, content, created_at)
SELECT '$room', i, 0, 'user' || (i % 500), '用户' || (i % 500), 0,
       'message number ' || i || ' with some ordinary chat text', 1700000000000 + i * 100 FROM c;
UPDATE rooms SET last_seq = $nmsg WHERE id = '$room';
SQL
bench_db_settle chat

# wrk scripts
cat > "$tmp/post.lua" <<LUA
wrk.method = "POST"
wrk.body = '{"room_name":"wrk room","admin_user_ids":["admin1"]}'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["X-Api-Key"] = "$key"
LUA

rate() { # URL [wrk args...] -> requests/s; refuses to report a run with errors
	local url=$1 out
	shift
	out=$(wrk -t1 -c"$conns" -d"${secs}s" "$@" "$url")
	if grep -qE 'Non-2xx|Socket errors' <<<"$out"; then
		echo "api_bench: errors during the run of $url:" >&2
		grep -E 'Non-2xx|Socket errors' <<<"$out" >&2
		echo 0
		return
	fi
	awk '/Requests\/sec/ {print $2}' <<<"$out"
}
static_like() { # NAME URL [curl args...]: a static file the size of that response
	local name=$1 url=$2
	shift 2
	curl -fsS "$@" "$url" > "$tmp/htdocs/$name"
	wc -c < "$tmp/htdocs/$name"
}
static_rate() { # URL: its rate, or nothing without the baselines
	[ "$baseline" = 0 ] || rate "$1"
}
report() { # LABEL API_RATE STATIC_RATE BYTES
	awk -v l="$1" -v a="$2" -v s="$3" -v b="$4" 'BEGIN {
		if (s == "")
			printf "%-46s %9.0f req/s   (%d B)\n", l, a, b
		else
			printf "%-46s %9.0f req/s   static %6d B: %9.0f req/s   ratio %.2f\n", l, a, b, s, a / s }'
}

echo "# $(nproc) cores, $(uname -sr), lighttpd $(lighttpd -v | head -1 | awk '{print $1}'), wrk -t1 -c$conns -d${secs}s, database: $(bench_db_describe)"
h=(-H "X-Api-Key: $key")

bytes=$(static_like rooms.json "$base/management/rooms" "${h[@]}")
a=$(rate "$base/management/rooms" "${h[@]}")
s=$(static_rate "$base/rooms.json")
report "GET /management/rooms (100 rooms)" "$a" "$s" "$bytes"
bench_result api.rooms_get "$a"

bytes=$(static_like created.json "$base/management/rooms" -X POST "${h[@]}" \
	-H "Content-Type: application/json" -d '{"room_name":"wrk room","admin_user_ids":["admin1"]}')
a=$(rate "$base/management/rooms" -s "$tmp/post.lua")
s=$(static_rate "$base/created.json")
report "POST /management/rooms" "$a" "$s" "$bytes"
bench_result api.rooms_post "$a"

first="$base/management/sync/chat-history/$room?page=1&limit=100"
deep="$base/management/sync/chat-history/$room?page=$deep_page&limit=100"
bytes=$(static_like page1.json "$first" "${h[@]}")
a1=$(rate "$first" "${h[@]}")
bytes9=$(static_like deep.json "$deep" "${h[@]}")
a9=$(rate "$deep" "${h[@]}")
s=$(static_rate "$base/deep.json")
report "chat-history page 1 (limit 100, $msgs_label msgs)" "$a1" "$s" "$bytes"
report "chat-history page $deep_page (limit 100, $msgs_label msgs)" "$a9" "$s" "$bytes9"
awk -v a="$a9" -v b="$a1" 'BEGIN { printf "deep page / first page: %.2f\n", a / b }'
bench_result api.history_page1 "$a1"
bench_result api.history_deep "$a9"
[ "$baseline" != 0 ] || exit 0

# Threads or processes: the same requests with one worker thread, to show
# what the pool buys (docs/benchmarks.md records the choice).
kill "$api_pid"; wait "$api_pid" 2>/dev/null || true
rm -f "$tmp/api.sock"
start_api 1
wait_ok
a1t=$(rate "$base/management/rooms" "${h[@]}")
d1t=$(rate "$deep" "${h[@]}")
awk -v a="$a1t" -v d="$d1t" -v p="$deep_page" 'BEGIN { printf "%-46s %9.0f req/s\n%-46s %9.0f req/s\n", "GET /management/rooms, 1 worker thread", a, "chat-history page " p ", 1 worker thread", d }'
