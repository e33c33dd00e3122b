#!/usr/bin/env bash
# SQLite and PostgreSQL side by side: runs each workload of the other bench
# scripts on one backend then the other (the order reversed every other
# round), several rounds, and prints the medians and PostgreSQL/SQLite
# ratios. Prints numbers; asserts nothing and is not part of `make check`.
#
# Usage: contrib/bench/db_bench.sh [SECONDS_PER_RUN]
#   ROUNDS=3
#   WORKLOADS="fanout commit api sync" (any of them)
#     fanout: ws_bench.sh, one room of 1,000 and ten rooms of 100 at FANOUT_LOAD
#             deliveries/s (default 100000): CPU per delivery (chatd + the database
#             server), p50/p99, loss
#     commit: ws_bench.sh's commit part at COMMIT_LOADS messages/s (default
#             "5000 20000 50000") over COMMIT_ROOMS rooms (default 50)
#     api:    api_bench.sh with API_CONNS connections (default 16) and API_MESSAGES
#             in the history room (default 1000000), without its static baselines
#     sync:   sync_bench.sh, one round per backlog of SYNC_BACKLOGS (default 100000)
#   PG_FSYNC, PG_SYNC_COMMIT, PG_CPUS: see pgtmp.sh (the defaults match chatd's SQLite
#   settings and put PostgreSQL on the core of the program it serves)
#   LOG_DIR=DIR keeps every run's output there; VERBOSE=1 prints it as it comes.
# Needs what those scripts need, for both backends.
set -euo pipefail

secs=${1:-5}
rounds=${ROUNDS:-3}
workloads=${WORKLOADS:-"fanout commit api sync"}
here=$(cd "$(dirname "$0")" && pwd)
for w in $workloads; do
	case $w in
	fanout | commit | api | sync) ;;
	*) echo "db_bench: unknown workload $w (fanout commit api sync)" >&2; exit 2 ;;
	esac
done

tmp=$(mktemp -d /tmp/chatd-dbbench.XXXXXX)
logs=${LOG_DIR:-$tmp/logs}
mkdir -p "$logs"
child=
cleanup() {
	# A stopped child stops what it started itself (its own EXIT trap).
	[ -z "$child" ] || { kill "$child" 2>/dev/null || true; wait "$child" 2>/dev/null || true; }
	rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

ws_parts=
for w in $workloads; do
	case $w in fanout | commit) ws_parts+="$w " ;; esac
done
jobs=()
[ -z "$ws_parts" ] || jobs+=(ws)
[[ " $workloads " != *" api "* ]] || jobs+=(api)
[[ " $workloads " != *" sync "* ]] || jobs+=(sync)

run() { # JOB BACKEND ROUND
	local job=$1 b=$2 r=$3 log="$logs/$1.$2.$3.log" t0 rc=0
	local res="$tmp/$1.$2.$3.res"
	t0=$(date +%s)
	: >"$res"
	case $job in
	ws)
		BACKEND=$b BENCH_RESULTS=$res LOADS=${FANOUT_LOAD:-100000} SHAPES=big10 \
			COMMIT_LOADS=${COMMIT_LOADS:-"5000 20000 50000"} "$here/ws_bench.sh" "$secs" "$ws_parts" >"$log" 2>&1 &
		;;
	api)
		BACKEND=$b BENCH_RESULTS=$res API_BASELINE=0 "$here/api_bench.sh" "$secs" "${API_CONNS:-16}" >"$log" 2>&1 &
		;;
	sync)
		BACKEND=$b BENCH_RESULTS=$res "$here/sync_bench.sh" 1 "${SYNC_BACKLOGS:-100000}" >"$log" 2>&1 &
		;;
	esac
	child=$!
	if [ "${VERBOSE:-0}" = 1 ]; then
		tail -n +1 -f "$log" --pid="$child" | sed 's/^/    /' &
		wait $! || true
	fi
	wait "$child" || rc=$?
	child=
	if [ "$rc" != 0 ] || [ ! -s "$res" ]; then
		echo "db_bench: $job on $b (round $r) failed ($rc):" >&2
		tail -20 "$log" >&2
		exit 1
	fi
	printf '# round %d  %-5s %-7s %4d s\n' "$r" "$job" "$b" "$(($(date +%s) - t0))"
}

echo "# $(nproc) cores, $(uname -sr), $(date -u +%Y-%m-%d), ${secs}s per run, $rounds round(s): $workloads"
echo "# PostgreSQL: fsync=${PG_FSYNC:-on} synchronous_commit=${PG_SYNC_COMMIT:-off}${PG_CPUS+, PG_CPUS=$PG_CPUS}; SQLite: WAL, synchronous=NORMAL"
for r in $(seq "$rounds"); do
	order="sqlite pg"
	[ $((r % 2)) = 1 ] || order="pg sqlite"
	for job in "${jobs[@]}"; do
		for b in $order; do
			run "$job" "$b" "$r"
			# The conditions once: each script's header lines.
			[ "$r" != 1 ] || grep '^# [0-9]* cores\|^# chatd/nginx' "$logs/$job.$b.$r.log" | sed "s/^# /#   $job $b: /" || true
		done
	done
done

# The table: every figure the scripts reported, in their order, the median of
# the rounds per backend and PostgreSQL's over SQLite's, then each round's values.
echo "## medians over $rounds round(s); PG/SQLite above 1: PostgreSQL's figure is the higher"
echo "##   (rates: higher is better; us = CPU microseconds, ms = latency, loss_pct: lower is better)"
printf '%-52s %12s %12s %9s   %s\n' "figure" "SQLite" "PostgreSQL" "PG/SQLite" "rounds (SQLite | PostgreSQL)"
for job in "${jobs[@]}"; do
	cat "$tmp/$job".*.res
done | awk '!seen[$1]++ { print $1 }' | while read -r key; do
	row=()
	for b in sqlite pg; do
		vals=$(for r in $(seq "$rounds"); do awk -v k="$key" '$1 == k { print $2 }' "$tmp"/*."$b"."$r".res; done)
		med=$(sort -g <<<"$vals" | awk 'NF { v[++n] = $1 } END { if (n == 0) print "-"; else print (n % 2) ? v[(n + 1) / 2] : (v[n / 2] + v[n / 2 + 1]) / 2 }')
		row+=("$med" "$(paste -sd ' ' <<<"$vals")")
	done
	awk -v k="$key" -v s="${row[0]}" -v p="${row[2]}" -v sv="${row[1]}" -v pv="${row[3]}" 'BEGIN {
		ratio = (s != "-" && p != "-" && s + 0 != 0) ? sprintf("%.2f", p / s) : "-"
		printf "%-52s %12s %12s %9s   %s | %s\n", k, s, p, ratio, sv, pv }'
done
[ -z "${LOG_DIR:-}" ] || echo "# every run's output: $logs"
