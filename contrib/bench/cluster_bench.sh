#!/usr/bin/env bash
# chatd as a cluster of two nodes against one node, side by side: the same
# fan-out shapes and offered loads (deliveries/s) against
#   single:  one chatd with no bus,
#   cluster: two chatd nodes on one database joined by nats-server, each
#            room's members split evenly over the nodes, publishers on node-1,
#   bus:     the same cluster with every member on node-1 (node-2 idle on the
#            bus): the bus's cost without the split.
# Runs the variants in turn (reversed in even rounds) for several rounds;
# prints a line per run, then per shape and load the medians and the ratios
# to the single node: CPU per delivery of everything (both nodes and
# nats-server) with each part, p99 difference, loss; the bus traffic per chat
# message from the nodes' `health` counters; the cross-node hop (a
# subscriber on node-2 against one on node-1, same run, low load); and what
# nats-server alone carries (bus_rate.c). Asserts nothing; not in `make check`.
#
# Usage: contrib/bench/cluster_bench.sh [SECONDS_PER_RUN] [ROUNDS]
#   LOADS="20000 100000" (deliveries/s), SHAPES=big|10|big10 (default both),
#   VARIANTS="single cluster bus", HOP_RATE=200 (messages/s for the hop),
#   HOP_SECS (default SECONDS_PER_RUN), IDLE_SECS=10, BUS_MSGS=1000000,
#   CHATD=another build, NATS_CORE=1 (a diagnosis: nats-server beside the
#   generator), PERF_DIR=DIR [PERF_CMD=...] (perf of each run into DIR)
# Needs: a built tree (src/chatd/chatd), nats-server, cc, nats.c's headers
# (libnats-dev, for bus_rate.c), sqlite3, taskset, /usr/bin/python3, two
# cores. Every server (chatd, both nodes, nats-server) runs on core 0, the
# generators (built here into the temp dir) on core 1. Everything runs on
# 127.0.0.x in a temp dir and stops by itself; a run with failed connections
# is refused.
set -euo pipefail

secs=${1:-6}
rounds=${2:-3}
loads=${LOADS:-"20000 100000"}
shapes=${SHAPES:-big10}
hop_rate=${HOP_RATE:-200}
hop_secs=${HOP_SECS:-$secs}
top=$(cd "$(dirname "$0")/../.." && pwd)
chatd=${CHATD:-"$top/src/chatd/chatd"}
nats=$(command -v nats-server || echo /usr/sbin/nats-server)
for tool in cc sqlite3 taskset; do
	command -v "$tool" >/dev/null || { echo "cluster_bench: $tool is not installed" >&2; exit 2; }
done
[ -x "$nats" ] || { echo "cluster_bench: nats-server is not installed" >&2; exit 2; }
[ -x "$chatd" ] || { echo "cluster_bench: build first ($chatd missing)" >&2; exit 2; }
[ "$(nproc)" -ge 2 ] || { echo "cluster_bench: needs two cores (servers on 0, generator on 1)" >&2; exit 2; }

tmp=$(mktemp -d /tmp/chatd-clusterbench.XXXXXX)
pids=()
cleanup() {
	# A perf the hook started, if a generator died inside its window.
	[ -f "$tmp/perf.pid" ] && kill -INT "$(cat "$tmp/perf.pid")" 2>/dev/null || true
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
	rm -rf "$tmp"
}
trap cleanup EXIT

cc -O2 -Wall -Wextra -std=c11 -D_GNU_SOURCE -o "$tmp/ws_bench" "$top/contrib/bench/ws_bench.c"
cc -O2 -Wall -Wextra -std=c11 -D_GNU_SOURCE -o "$tmp/bus_rate" "$top/contrib/bench/bus_rate.c" -lnats
gen=(taskset -c 1 "$tmp/ws_bench")

free_port() {
	/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}
field() { # RESULT-LINE KEY
	tr ' ' '\n' <<<"$1" | awk -F= -v k="$2" '$1 == k {print $2}'
}

# The control socket from Python: one request (req), the nodes' bus counters
# into a file (bus), or whether every node sees N synced nodes on a live bus (ready).
cat >"$tmp/ctl.py" <<'PY'
import json, socket, sys

def req(path, line):
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(5)
    s.connect(path)
    s.sendall(line.encode() + b"\n")
    r = b""
    while b"\n" not in r:
        c = s.recv(65536)
        if not c:
            break
        r += c
    s.close()
    return r.decode().strip()

def health(path):
    return json.loads(req(path, '{"v":1,"id":1,"type":"health"}'))["result"]

cmd = sys.argv[1]
if cmd == "req":
    print(req(sys.argv[2], sys.argv[3]))
elif cmd == "bus":
    with open(sys.argv[2], "w") as f:
        for path in sys.argv[3:]:
            b = health(path)["cluster"]["bus"]
            f.write("%d %d %d %d\n" % (b["in_msgs"], b["in_bytes"], b["out_msgs"], b["out_bytes"]))
elif cmd == "ready":
    socks = sys.argv[2:]
    for path in socks:
        c = health(path).get("cluster")
        if c is None or not c["bus"]["connected"] or len(c["nodes"]) != len(socks) or \
                not all(n["synced"] for n in c["nodes"]):
            sys.exit(1)
PY
ctl() { /usr/bin/python3 "$tmp/ctl.py" req "$@"; }

# ---- servers: one chatd alone (no bus), and nats-server with two nodes on another database
natsport=$(free_port)
taskset -c "${NATS_CORE:-0}" "$nats" -a 127.0.0.1 -p "$natsport" 2>>"$tmp/nats.log" &
nats_pid=$!
pids+=("$nats_pid")
for _ in $(seq 100); do
	(exec 3<>"/dev/tcp/127.0.0.1/$natsport") 2>/dev/null && break
	sleep 0.05
done

write_env() { # NAME DB PORT [cluster settings...]
	local name=$1 db=$2 port=$3
	shift 3
	{
		echo "DATABASE_URL=sqlite:$tmp/$db"
		echo "CONTROL_SOCKET=$tmp/$name.sock"
		echo "CHATD_LISTEN=127.0.0.1:$port"
		echo "MAX_CONNECTIONS=1000000"
		echo "MAX_CONNECTIONS_PER_ADDRESS=0"
		echo "USER_MESSAGE_INTERVAL_SECS=3"
		echo "LOG_LEVEL=warning"
		for kv in "$@"; do echo "$kv"; done
	} >"$tmp/$name.env"
}
declare -A PID PORT
start_server() { # NAME
	local name=$1
	rm -f "$tmp/$name.sock"
	CHAT_ENV_FILE="$tmp/$name.env" taskset -c 0 "$chatd" 2>>"$tmp/$name.log" &
	PID[$name]=$!
	pids+=("$!")
	for _ in $(seq 100); do [ -S "$tmp/$name.sock" ] && return; sleep 0.05; done
	echo "cluster_bench: $name did not start:" >&2
	cat "$tmp/$name.log" >&2
	exit 1
}
for name in single node1 node2; do PORT[$name]=$(free_port); done
write_env single single.db "${PORT[single]}"
for n in 1 2; do
	write_env "node$n" cluster.db "${PORT[node$n]}" "CLUSTER_NATS_URL=nats://127.0.0.1:$natsport" \
		"NODE_ID=node-$n" "CLUSTER_NAME=bench"
done

# Rooms straight into SQLite (chat-api does the same, then says room_opened):
# "big" for 1,000 members, r0..r9 for 10 x 100, "hop" for the hop; "admin"
# is every room's admin. The schema comes from the first server on each file.
rooms10=$(printf 'r%d,' 0 1 2 3 4 5 6 7 8 9)
rooms10=${rooms10%,}
create_rooms() { # DB
	{
		echo ".timeout 10000"
		echo "BEGIN IMMEDIATE;"
		for r in big hop ${rooms10//,/ }; do
			echo "INSERT INTO rooms (id, name, created_at) VALUES ('$r', 'bench $r', 1700000000000);"
			echo "INSERT INTO room_admins (room_id, user_id) VALUES ('$r', 'admin');"
		done
		echo "COMMIT;"
	} | sqlite3 "$tmp/$1"
}
open_rooms() { # NAME
	for r in big hop ${rooms10//,/ }; do
		ctl "$tmp/$1.sock" "{\"v\":1,\"id\":1,\"type\":\"room_opened\",\"args\":{\"room_id\":\"$r\"}}" |
			grep -q '"ok": *true' || { echo "cluster_bench: room_opened $r on $1 failed" >&2; exit 1; }
	done
}
start_server single
create_rooms single.db
open_rooms single
start_server node1
create_rooms cluster.db
start_server node2
open_rooms node1
open_rooms node2
for _ in $(seq 200); do
	/usr/bin/python3 "$tmp/ctl.py" ready "$tmp/node1.sock" "$tmp/node2.sock" && break
	sleep 0.05
done
/usr/bin/python3 "$tmp/ctl.py" ready "$tmp/node1.sock" "$tmp/node2.sock" ||
	{ echo "cluster_bench: the nodes did not see each other on the bus" >&2; cat "$tmp"/node*.log >&2; exit 1; }

# The generator's hook: the nodes' bus counters just before and after the measured window.
# With PERF_DIR, also `perf record -g` (or `perf PERF_CMD`) of the servers over each window
# (one output per run, PERF_DIR/perf.N.VARIANT.data; perf's own cost lands in those runs'
# CPU figures, so keep such runs out of the tables).
perf_dir=${PERF_DIR:-}
perf_cmd=${PERF_CMD:-"record -q -g"} # or e.g. "stat --per-thread -e task-clock,context-switches"
[ -z "$perf_dir" ] || { mkdir -p "$perf_dir"; command -v perf >/dev/null || { echo "cluster_bench: perf is not installed" >&2; exit 2; }; }
cat >"$tmp/hook.sh" <<SH
#!/bin/sh
set -e
[ "\$VARIANT" = single ] ||
	/usr/bin/python3 "$tmp/ctl.py" bus "$tmp/bus.\$1" "$tmp/node1.sock" "$tmp/node2.sock"
[ -n "$perf_dir" ] || exit 0
if [ "\$1" = start ]; then
	n=\$(ls "$perf_dir" | grep -c '^perf\..*\.data\$' || true)
	perf $perf_cmd -p "\$PERF_PIDS" -o "$perf_dir/perf.\$((n + 1)).\$VARIANT.data" >/dev/null 2>&1 &
	echo \$! >"$tmp/perf.pid"
	sleep 0.3
else
	p=\$(cat "$tmp/perf.pid")
	kill -INT "\$p"
	while kill -0 "\$p" 2>/dev/null; do sleep 0.05; done
	rm -f "$tmp/perf.pid"
fi
SH
chmod +x "$tmp/hook.sh"

# fanout VARIANT ROOMS PER_ROOM LOAD SECS: one generator run, its RESULT line
fanout() {
	local variant=$1 rooms=$2 n=$3 load=$4 d=$5
	if [ "$variant" = single ]; then
		VARIANT=single PERF_PIDS="${PID[single]}" \
			"${gen[@]}" -m fanout -k "$rooms" -n "$n" -w -b 2:8 -c 256 -d "$d" -D 5 -l "$load" \
			-p "${PID[single]}" -x "$tmp/hook.sh" -S "/ws/rooms/%r?user_id=u%u" -P "/ws/rooms/%r?user_id=admin" \
			"127.0.0.1:${PORT[single]}"
	else
		local second=${PORT[node2]}
		[ "$variant" = bus ] && second=${PORT[node1]} # every member on node-1
		VARIANT=$variant PERF_PIDS="${PID[node1]},${PID[node2]},$nats_pid" \
			"${gen[@]}" -m fanout -k "$rooms" -n "$n" -w -b 2:8 -c 256 -d "$d" -D 5 -l "$load" \
			-p "${PID[node1]},${PID[node2]},$nats_pid" -x "$tmp/hook.sh" \
			-S "/ws/rooms/%r?user_id=u%u" -P "/ws/rooms/%r?user_id=admin" \
			"127.0.0.1:${PORT[node1]},127.0.0.1:$second"
	fi
}

# bus_delta: "out_msgs out_bytes in_msgs in_bytes" summed over the nodes over the last window
bus_delta() {
	paste "$tmp/bus.start" "$tmp/bus.end" |
		awk '{ im += $5 - $1; ib += $6 - $2; om += $7 - $3; ob += $8 - $4 }
			END { printf "%d %d %d %d\n", om, ob, im, ib }'
}


variants=${VARIANTS:-"single cluster bus"}
echo "# $(nproc) cores, $(uname -sr), $(date -u +%Y-%m-%d), chatd $("$chatd" --version | awk '{print $2}'), $("$nats" --version), ${secs}s per run, $rounds rounds"
echo "# chatd, both nodes and nats-server on core 0 (taskset -c 0), ws_bench on core 1 (taskset -c 1)"
echo "# single: one chatd, no bus; cluster: node-1 + node-2 on one database + nats-server, each room's members"
echo "# split evenly, publishers on node-1; bus: the same cluster with every member on node-1 (node-2 idle)"

shape_list() {
	case $shapes in
	big) echo "big:1000" ;;
	10) echo "$rooms10:100" ;;
	*) echo "big:1000 $rooms10:100" ;;
	esac
}
ms_by_pid() { field "$1" server_cpu_ms_by_pid | sed 's/[0-9]*://g'; }
cpu_ms() { # PID: utime + stime in ms
	awk -v t="$(getconf CLK_TCK)" '{ sub(/^.*\) /, ""); print ($12 + $13) * 1000 / t }' "/proc/$1/stat"
}
# What each server costs with nobody connected: the cluster's heartbeats, database beats and sweeps.
idle_secs=${IDLE_SECS:-10}
declare -A I0
for name in single node1 node2; do I0[$name]=$(cpu_ms "${PID[$name]}"); done
I0[nats]=$(cpu_ms "$nats_pid")
sleep "$idle_secs"
printf '# idle, nobody connected, CPU ms per second:'
for name in single node1 node2; do
	awk -v a="${I0[$name]}" -v b="$(cpu_ms "${PID[$name]}")" -v s="$idle_secs" -v n="$name" \
		'BEGIN { printf " %s %.1f", n, (b - a) / s }'
done
awk -v a="${I0[nats]}" -v b="$(cpu_ms "$nats_pid")" -v s="$idle_secs" 'BEGIN { printf " nats-server %.1f\n", (b - a) / s }'
results=$tmp/results
: >"$results"
for round in $(seq "$rounds"); do
	order=$variants
	[ $((round % 2)) = 0 ] && order=$(tr ' ' '\n' <<<"$variants" | tac | tr '\n' ' ')
	for shape in $(shape_list); do
		set -- ${shape/:/ }
		label=$([ "$2" = 1000 ] && echo "1x1000" || echo "10x100")
		for load in $loads; do
			for variant in $order; do
				r=$(fanout "$variant" "$1" "$2" "$load" "$secs")
				bus="- - - -"
				[ "$variant" = single ] || bus=$(bus_delta)
				# variant shape load round | bus out_msgs out_bytes in_msgs in_bytes | RESULT line
				echo "$variant $label $load $round $bus $r" >>"$results"
				printf '%-7s %-6s @ %6s/s r%d: lost %s/%s p50 %5s p99 %6s ms (arrival %6s) %5s us/delivery cpu %4s%%%s\n' \
					"$variant" "$label" "$load" "$round" "$(field "$r" lost)" "$(field "$r" expected)" \
					"$(field "$r" p50_ms)" "$(field "$r" p99_ms)" "$(field "$r" arr_p99_ms)" \
					"$(field "$r" server_us_per_delivery)" "$(field "$r" server_cpu_pct)" \
					"$([ "$variant" = single ] || echo "; CPU ms node-1,node-2,nats $(ms_by_pid "$r"); p99 by node $(field "$r" p99_ms_by_target); bus out/in msgs $(cut -d' ' -f1,3 <<<"$bus") for $(field "$r" published) published")"
			done
		done
	done
	# The hop: 10 members of "hop" (5 per node), HOP_RATE messages/s from node-1.
	for variant in $order; do
		[ "$variant" = bus ] && continue
		r=$(fanout "$variant" hop 10 "$((hop_rate * 10))" "$hop_secs")
		echo "$variant hop $((hop_rate * 10)) $round - - - - $r" >>"$results"
		if [ "$variant" = cluster ]; then
			printf '%-7s hop    @ %4s msgs/s r%d: lost %s; node-1 p50/p99 %s/%s ms, node-2 %s/%s ms (arrival: node-1 %s/%s, node-2 %s/%s)\n' \
				"$variant" "$hop_rate" "$round" "$(field "$r" lost)" \
				"$(field "$r" p50_ms_by_target | cut -d, -f1)" "$(field "$r" p99_ms_by_target | cut -d, -f1)" \
				"$(field "$r" p50_ms_by_target | cut -d, -f2)" "$(field "$r" p99_ms_by_target | cut -d, -f2)" \
				"$(field "$r" arr_p50_ms_by_target | cut -d, -f1)" "$(field "$r" arr_p99_ms_by_target | cut -d, -f1)" \
				"$(field "$r" arr_p50_ms_by_target | cut -d, -f2)" "$(field "$r" arr_p99_ms_by_target | cut -d, -f2)"
		else
			printf '%-7s hop    @ %4s msgs/s r%d: lost %s; p50/p99 %s/%s ms (arrival %s/%s)\n' \
				"$variant" "$hop_rate" "$round" "$(field "$r" lost)" "$(field "$r" p50_ms)" "$(field "$r" p99_ms)" \
				"$(field "$r" arr_p50_ms)" "$(field "$r" arr_p99_ms)"
		fi
	done
done

# ---- what nats-server alone carries: BUS_MSGS messages of 300 bytes as fast as they go,
# to one subscriber (a two-node cluster) and to three (a four-node one)
for k in 1 3; do
	for _ in 1 2; do
		r=$(taskset -c 1 "$tmp/bus_rate" -u "nats://127.0.0.1:$natsport" -n "${BUS_MSGS:-1000000}" -s 300 \
			-k "$k" -p "$nats_pid")
		printf 'nats-server alone, %d subscriber(s): %s msgs/s in, %s deliveries/s out, %s us CPU per message, CPU %s%%\n' \
			"$k" "$(field "$r" msgs_per_s)" "$(field "$r" deliveries_per_s)" "$(field "$r" server_us_per_msg)" \
			"$(field "$r" server_cpu_pct)"
	done
done

# ---- medians and ratios
/usr/bin/python3 - "$results" <<'PY'
import statistics as st, sys

runs = {}
for line in open(sys.argv[1]):
    w = line.split()
    variant, shape, load = w[0], w[1], int(w[2])
    bus = w[4:8]
    kv = dict(x.split("=", 1) for x in w[8:] if "=" in x)
    kv["bus"] = None if bus[0] == "-" else [int(x) for x in bus]
    runs.setdefault((shape, load), {}).setdefault(variant, []).append(kv)

med = st.median
def f(kv, k):
    return float(kv[k])
def parts(kv):
    """CPU us per delivery of node-1, node-2, nats-server."""
    ms = [float(x.split(":")[1]) for x in kv["server_cpu_ms_by_pid"].split(",")]
    return [1000 * m / float(kv["received"]) for m in ms]

print("## medians over the rounds (us = CPU per delivery of every server: both nodes and nats-server)")
for (shape, load), v in sorted(runs.items()):
    if shape == "hop" or "single" not in v:
        continue
    s = v["single"]
    sus = med([f(k, "server_us_per_delivery") for k in s])
    sp99 = med([f(k, "p99_ms") for k in s])
    print("%s @ %dk/s: single lost %d, p99 %.2f ms, %.2f us (runs %s)" % (
        shape, load // 1000, sum(int(k["lost"]) for k in s), sp99, sus,
        " ".join(k["server_us_per_delivery"] for k in s)))
    for name in ("cluster", "bus"):
        if name not in v:
            continue
        c = v[name]
        cus = med([f(k, "server_us_per_delivery") for k in c])
        cp99 = med([f(k, "p99_ms") for k in c])
        p = [med([parts(k)[i] for k in c]) for i in range(3)]
        nshare = med([parts(k)[2] / sum(parts(k)) for k in c])
        pub = [int(k["published"]) for k in c]
        b = [k["bus"] for k in c]
        print("  %-7s lost %d, p99 %.2f ms (%+.2f), %.2f us = node-1 %.2f + node-2 %.2f + nats %.2f;"
              " ratio to single %.2f (nats-server %.0f %% of it); bus per chat message: out %.2f msgs"
              " %.0f B, in %.2f msgs %.0f B (runs %s)" % (
                  name, sum(int(k["lost"]) for k in c), cp99, cp99 - sp99, cus, p[0], p[1], p[2],
                  cus / sus, 100 * nshare,
                  med([x[0] / n for x, n in zip(b, pub)]), med([x[1] / n for x, n in zip(b, pub)]),
                  med([x[2] / n for x, n in zip(b, pub)]), med([x[3] / n for x, n in zip(b, pub)]),
                  " ".join(k["server_us_per_delivery"] for k in c)))
        if name == "cluster":
            print("          p99 by node (1,2): %s; ratios per round: %s" % (
                " ".join(k["p99_ms_by_target"] for k in c),
                " ".join("%.2f" % (f(a, "server_us_per_delivery") / f(b_, "server_us_per_delivery"))
                         for a, b_ in zip(c, s))))
for (shape, load), v in runs.items():
    if shape != "hop" or "cluster" not in v:
        continue
    c = v["cluster"]
    col = lambda key, i: med([float(k[key].split(",")[i]) for k in c])
    print("## the hop (%d msgs/s, 5 members per node), medians: node-1 p50/p99 %.2f/%.2f ms, node-2 %.2f/%.2f ms;"
          " at arrival node-1 %.2f/%.2f, node-2 %.2f/%.2f: node-2 later by p50 %+.2f ms, p99 %+.2f ms" % (
              load // 10, col("p50_ms_by_target", 0), col("p99_ms_by_target", 0),
              col("p50_ms_by_target", 1), col("p99_ms_by_target", 1),
              col("arr_p50_ms_by_target", 0), col("arr_p99_ms_by_target", 0),
              col("arr_p50_ms_by_target", 1), col("arr_p99_ms_by_target", 1),
              col("arr_p50_ms_by_target", 1) - col("arr_p50_ms_by_target", 0),
              col("arr_p99_ms_by_target", 1) - col("arr_p99_ms_by_target", 0)))
    if "single" in v:
        s = v["single"]
        print("## the same room on the single node: p50/p99 %.2f/%.2f ms, at arrival %.2f/%.2f" % (
            med([f(k, "p50_ms") for k in s]), med([f(k, "p99_ms") for k in s]),
            med([f(k, "arr_p50_ms") for k in s]), med([f(k, "arr_p99_ms") for k in s])))
PY
