#!/usr/bin/env bash
# chat-sync export throughput: a chat history backlog delivered by
# `chat-sync --once` in batches of CHAT_HISTORY_BATCH_SIZE (1,000) to a fast
# local receiver (contrib/bench/sync_sink.c, built here into the temp dir),
# side by side with `chat-sync --encode-only chat_history` (the same batch
# builder reading and JSON-encoding the same rows, without HTTP or cursor
# writes) as the baseline; prints both rates, their ratio and chat-sync's
# peak RSS for a 100,000- and a 1,000,000-message backlog. A benchmark
# prints numbers; it asserts nothing and is not part of `make check`.
#
# Usage: contrib/bench/sync_bench.sh [ROUNDS] [BACKLOGS]
#   ROUNDS: baseline + delivery pairs per backlog (default 3; the median is reported)
#   BACKLOGS: messages, space-separated multiples of 1000 (default "100000 1000000")
#   BACKEND=sqlite|pg (the database; pg: a throwaway PostgreSQL server, see pgtmp.sh,
#   on PG_CPUS, default chat-sync's core; its CPU is printed beside chat-sync's)
# Needs: a built tree (src/sync/chat-sync), cc, sqlite3 or PostgreSQL, GNU time
# (/usr/bin/time); taskset with two cores to put chat-sync on core 0 and the sink
# on core 1 (SYNC_BENCH_PIN=0: no pinning).
# Everything runs on 127.0.0.1 in a temp dir and stops by itself; a run with
# a failed delivery, a wrong message count or a sink error is refused.
set -euo pipefail

rounds=${1:-3}
backlogs=${2:-"100000 1000000"}
batch=1000
top=$(cd "$(dirname "$0")/../.." && pwd)
sync="$top/src/sync/chat-sync"
# shellcheck source=contrib/bench/benchdb.sh
. "$top/contrib/bench/benchdb.sh"
command -v cc >/dev/null || { echo "sync_bench: cc is not installed" >&2; exit 2; }
[ -x /usr/bin/time ] || { echo "sync_bench: GNU time (/usr/bin/time) is not installed" >&2; exit 2; }
[ -x "$sync" ] || { echo "sync_bench: build first ($sync missing)" >&2; exit 2; }
"$sync" --help | grep -q -- --encode-only || { echo "sync_bench: $sync has no --encode-only; rebuild" >&2; exit 2; }
for n in $backlogs; do
	[ $((n % batch)) -eq 0 ] || { echo "sync_bench: backlog $n is not a multiple of $batch" >&2; exit 2; }
done

# SYNC_BENCH_PIN=0 leaves placement to the scheduler (e.g. when another job holds core 0).
on0=() on1=()
if [ "${SYNC_BENCH_PIN:-1}" != 0 ] && command -v taskset >/dev/null && [ "$(nproc)" -ge 2 ]; then
	on0=(taskset -c 0) on1=(taskset -c 1)
	: "${PG_CPUS=0}" # PostgreSQL beside chat-sync
fi

tmp=$(mktemp -d /tmp/chatd-syncbench.XXXXXX)
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
cd "$tmp" # no stray ./.env
# The settings come from the env files below only.
unset DATABASE_URL ROOM_EVENT_CALLBACK_URL CHAT_HISTORY_CALLBACK_URL SESSION_HISTORY_CALLBACK_URL \
	PERIODIC_SYNC_CALLBACK_URL DATA_CALLBACK_URL CHAT_HISTORY_BATCH_SIZE CALLBACK_SIGNING_SECRET \
	CALLBACK_MAX_RETRIES CALLBACK_TIMEOUT_SECONDS LOG_LEVEL CHAT_ENV_FILE
bench_db_init "$tmp"

cc -O2 -Wall -Wextra -std=c11 -D_GNU_SOURCE -pthread -o "$tmp/sync_sink" "$top/contrib/bench/sync_sink.c"

# The sink: one process for the whole run, on core 1.
"${on1[@]}" "$tmp/sync_sink" -p "$tmp/sink.port" 127.0.0.1:0 >"$tmp/sink.out" 2>"$tmp/sink.err" &
sink_pid=$!
pids+=($sink_pid)
for _ in $(seq 50); do [ -s "$tmp/sink.port" ] && break; sleep 0.1; done
[ -s "$tmp/sink.port" ] || { echo "sync_bench: the sink did not start" >&2; cat "$tmp/sink.err" >&2; exit 1; }
sink_url="http://127.0.0.1:$(cat "$tmp/sink.port")/chat-history"

sink_cpu_ticks() { awk '{print $14 + $15}' "/proc/$sink_pid/stat"; }
now_ns() { date +%s%N; }

make_db() { # N -> database chat_N: one room, N messages (2 % CustomEvents), no cursor
	local n=$1 db="chat_$1"
	printf 'DATABASE_URL=%s\nCHAT_HISTORY_BATCH_SIZE=%s\nLOG_LEVEL=warning\n' \
		"$(bench_db_url "$db")" "$batch" >"$tmp/base-$n.env"
	printf 'CHAT_HISTORY_CALLBACK_URL=%s\nCALLBACK_MAX_RETRIES=0\nCALLBACK_TIMEOUT_SECONDS=30\n' \
		"$sink_url" | cat "$tmp/base-$n.env" - >"$tmp/deliver-$n.env"
	# chat-sync creates the schema (nothing pending yet).
	CHAT_ENV_FILE="$tmp/base-$n.env" "$sync" --encode-only chat_history >/dev/null
	bench_db_tx "$db" <<SQL
INSERT INTO rooms (id, name, created_at, last_seq) VALUES ('bench-room', 'bench room', 1700000000000, 0);
INSERT INTO room_admins (room_id, user_id) VALUES ('bench-room', 'admin1');
$(bench_db_series "$n")
INSERT INTO messages (room_id, seq, kind, user_id, nickname, is_admin, content, event_type, created_at)
SELECT 'bench-room', i,
       CASE WHEN i % 50 = 0 THEN 1 ELSE 0 END,
       CASE WHEN i % 50 = 0 THEN 'admin1' ELSE 'user' || (i % 500) END,
       CASE WHEN i % 50 = 0 THEN 'Admin' ELSE '用户' || (i % 500) END,
       CASE WHEN i % 50 = 0 THEN 1 ELSE 0 END,
       CASE WHEN i % 50 = 0 THEN '{"poll":' || i || ',"options":["yes","no"]}'
            ELSE 'message number ' || i || ' with some ordinary chat text' END,
       CASE WHEN i % 50 = 0 THEN 'poll' END,
       1700000000000 + i * 100 FROM c;
UPDATE rooms SET last_seq = $n WHERE id = 'bench-room';
SQL
	bench_db_settle "$db"
}

# Runs chat-sync under GNU time on core 0: sets wall_s, rss_kb, cpu_s, db_s (the
# database server's CPU meanwhile; 0 for SQLite), out.
timed() { # ENVFILE ARGS...
	local env=$1 t0 t1 d0 d1
	shift
	d0=$(bench_db_cpu_us)
	t0=$(now_ns)
	if ! CHAT_ENV_FILE="$env" "${on0[@]}" /usr/bin/time -f '%M %U %S' -o "$tmp/time.out" \
		"$sync" "$@" >"$tmp/sync.out" 2>"$tmp/sync.err"; then
		echo "sync_bench: chat-sync $* failed:" >&2
		cat "$tmp/sync.err" "$tmp/time.out" >&2
		exit 1
	fi
	t1=$(now_ns)
	bench_db_wait_gone "$(sed -n 's|^DATABASE_URL=postgres://\([^:]*\):.*|\1|p' "$env")"
	d1=$(bench_db_cpu_us)
	db_s=$(awk -v a="$d0" -v b="$d1" 'BEGIN { printf "%.3f", (b - a) / 1e6 }')
	wall_s=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", (b - a) / 1e9 }')
	read -r rss_kb u s <"$tmp/time.out"
	cpu_s=$(awk -v u="$u" -v s="$s" 'BEGIN { printf "%.2f", u + s }')
	out=$(cat "$tmp/sync.out")
}

sink_totals() { # -> requests messages bytes errors so far (the sink prints them on SIGUSR1)
	local lines
	lines=$(wc -l <"$tmp/sink.out")
	kill -USR1 "$sink_pid"
	for _ in $(seq 50); do [ "$(wc -l <"$tmp/sink.out")" -gt "$lines" ] && break; sleep 0.1; done
	[ "$(wc -l <"$tmp/sink.out")" -gt "$lines" ] || { echo "sync_bench: the sink did not answer" >&2; exit 1; }
	tail -1 "$tmp/sink.out" | sed -E 's/[a-z]+=//g'
}

median() { sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

echo "# $(nproc) cores, $(uname -sr), $(bench_db_describe), $(curl --version 2>/dev/null | head -1 | awk '{print $1, $2}')," \
	"batches of $batch, $rounds round(s) per backlog${on0:+, chat-sync on core 0, sink on core 1}"
summary=()
for n in $backlogs; do
	echo "# loading $n messages into the database"
	make_db "$n"
	echo "# $n messages ($(bench_db_size "chat_$n") database)"
	base_rates=() sent_rates=() ratios=() cratios=() base_rss=() sent_rss=() base_dbs=() sent_dbs=()
	# One untimed pass first, so that every timed run finds the file in the page cache.
	CHAT_ENV_FILE="$tmp/base-$n.env" "$sync" --encode-only chat_history >/dev/null
	for r in $(seq "$rounds"); do
		# Both runs start from an empty cursor: the whole backlog is pending.
		bench_db_query "chat_$n" "DELETE FROM cursors WHERE target = 'chat_history'"
		timed "$tmp/base-$n.env" --encode-only chat_history
		rows=$(awk '{print $3}' <<<"$out")
		[ "$rows" = "$n" ] || { echo "sync_bench: encode-only read $rows rows, not $n: $out" >&2; exit 1; }
		b_rate=$(awk -v n="$n" -v w="$wall_s" 'BEGIN { printf "%.0f", n / w }')
		b_wall=$wall_s b_rss=$rss_kb b_cpu=$cpu_s b_db=$db_s

		bench_db_query "chat_$n" "DELETE FROM cursors WHERE target = 'chat_history'"
		totals=$(sink_totals)
		read -r reqs0 msgs0 bytes0 errs0 <<<"$totals"
		c0=$(sink_cpu_ticks)
		timed "$tmp/deliver-$n.env" --once
		c1=$(sink_cpu_ticks)
		totals=$(sink_totals)
		read -r reqs msgs bytes errs <<<"$totals"
		reqs=$((reqs - reqs0)) msgs=$((msgs - msgs0)) bytes=$((bytes - bytes0)) errs=$((errs - errs0))
		if [ "$msgs" != "$n" ] || [ "$reqs" != $((n / batch)) ] || [ "$errs" != 0 ]; then
			echo "sync_bench: the sink got $reqs requests, $msgs messages, $errs errors (want $((n / batch)), $n, 0)" >&2
			cat "$tmp/sync.err" >&2
			exit 1
		fi
		cursor=$(bench_db_query "chat_$n" "SELECT last_id FROM cursors WHERE target = 'chat_history'")
		[ "$cursor" = "$(bench_db_query "chat_$n" "SELECT max(id) FROM messages")" ] ||
			{ echo "sync_bench: cursor at $cursor after the run" >&2; exit 1; }
		d_rate=$(awk -v n="$n" -v w="$wall_s" 'BEGIN { printf "%.0f", n / w }')
		sink_pct=$(awk -v c="$((c1 - c0))" -v hz="$(getconf CLK_TCK)" -v w="$wall_s" 'BEGIN { printf "%.0f", 100 * c / hz / w }')
		ratio=$(awk -v d="$d_rate" -v b="$b_rate" 'BEGIN { printf "%.2f", d / b }')
		# The same per CPU second of chat-sync: what the delivery costs beyond waiting.
		cratio=$(awk -v d="$cpu_s" -v b="$b_cpu" 'BEGIN { printf "%.2f", (d > 0) ? b / d : 0 }')
		printf '%-9s round %d  baseline %8s rows/s (%6.2f s, cpu %5.2f s%s, peak RSS %6d kB)   delivered %8s msgs/s (%6.2f s, cpu %5.2f s%s, peak RSS %6d kB, %d MB posted, sink cpu %s%%)   ratio %s (cpu %s)\n' \
			"$n" "$r" "$b_rate" "$b_wall" "$b_cpu" "$([ "$BACKEND" != pg ] || echo " + PostgreSQL $b_db s")" "$b_rss" \
			"$d_rate" "$wall_s" "$cpu_s" "$([ "$BACKEND" != pg ] || echo " + PostgreSQL $db_s s")" "$rss_kb" \
			"$((bytes / 1000000))" "$sink_pct" "$ratio" "$cratio"
		base_rates+=("$b_rate") sent_rates+=("$d_rate") ratios+=("$ratio") cratios+=("$cratio")
		base_rss+=("$b_rss") sent_rss+=("$rss_kb")
		# CPU microseconds per row: chat-sync's and the database server's.
		base_dbs+=("$(awk -v c="$b_cpu" -v d="$b_db" -v n="$n" 'BEGIN { printf "%.2f %.2f", c * 1e6 / n, d * 1e6 / n }')")
		sent_dbs+=("$(awk -v c="$cpu_s" -v d="$db_s" -v n="$n" 'BEGIN { printf "%.2f %.2f", c * 1e6 / n, d * 1e6 / n }')")
	done
	mb=$(printf '%s\n' "${base_rates[@]}" | median)
	md=$(printf '%s\n' "${sent_rates[@]}" | median)
	mr=$(printf '%s\n' "${ratios[@]}" | median)
	mc=$(printf '%s\n' "${cratios[@]}" | median)
	pb=$(printf '%s\n' "${base_rss[@]}" | sort -g | tail -1)
	pd=$(printf '%s\n' "${sent_rss[@]}" | sort -g | tail -1)
	summary+=("$(printf '%-9s baseline %8.0f rows/s   delivered %8.0f msgs/s   ratio %s (per CPU second: %s)   peak RSS: encode-only %6d kB, delivery %6d kB' \
		"$n" "$mb" "$md" "$mr" "$mc" "$pb" "$pd")")
	bench_result "sync.$n.encode_rows_per_s" "$mb"
	bench_result "sync.$n.delivered_per_s" "$md"
	bench_result "sync.$n.encode_cpu_us_per_row" "$(printf '%s\n' "${base_dbs[@]}" | awk '{print $1}' | median)"
	bench_result "sync.$n.encode_db_us_per_row" "$(printf '%s\n' "${base_dbs[@]}" | awk '{print $2}' | median)"
	bench_result "sync.$n.delivery_cpu_us_per_msg" "$(printf '%s\n' "${sent_dbs[@]}" | awk '{print $1}' | median)"
	bench_result "sync.$n.delivery_db_us_per_msg" "$(printf '%s\n' "${sent_dbs[@]}" | awk '{print $2}' | median)"
	bench_db_drop "chat_$n"
done
echo "# medians over $rounds round(s); peak RSS is the highest VmHWM of the rounds"
printf '%s\n' "${summary[@]}"
