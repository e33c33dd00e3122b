#!/usr/bin/env bash
# chatd WebSocket benchmark, side by side with nginx + Nchan: idle memory
# per connection, fan-out latency/loss/CPU per delivery at fixed offered
# loads, CustomEvent latency under a chat flood, message commits per second
# through chatd's database writer. Prints numbers and chatd/Nchan ratios;
# asserts nothing and is not part of `make check`.
#
# Usage: contrib/bench/ws_bench.sh [SECONDS_PER_RUN] [PARTS]
#   PARTS: any of idle fanout event commit nchan floor (default: all six)
#   LOADS="20000 100000" (deliveries/s; default 20000 60000 100000, plus 400000 for one room of
#   1,000), SHAPES=big|10|big10 (rooms to run), IDLE_SIZES="10000 19000", CHATD=another build,
#   COMMIT_LOADS="5000 20000 50000" (messages/s offered), COMMIT_ROOMS=50 (at most 64),
#   BACKEND=sqlite|pg (the database; pg: a throwaway PostgreSQL server, see pgtmp.sh, on
#   PG_CPUS, default 0, chatd's core)
# Needs: a built tree (src/chatd/chatd), cc, taskset, /usr/bin/python3, sqlite3 or
# PostgreSQL; for the Nchan side nginx and libnginx-mod-nchan. chatd (and
# nginx) run on core 0, the load generator (contrib/bench/ws_bench.c, built
# here into the temp dir) on core 1. Everything runs on 127.0.0.x in a temp
# dir and stops by itself; a run with failed connections is refused.
set -euo pipefail

secs=${1:-5}
parts=${2:-"idle fanout event commit nchan floor"}
top=$(cd "$(dirname "$0")/../.." && pwd)
chatd=${CHATD:-"$top/src/chatd/chatd"} # CHATD: another build, for before/after runs
nchan_mod=/usr/lib/nginx/modules/ngx_nchan_module.so
: "${PG_CPUS=0}" # PostgreSQL beside chatd, as the other servers here
# shellcheck source=contrib/bench/benchdb.sh
. "$top/contrib/bench/benchdb.sh"
for tool in cc taskset; do
	command -v "$tool" >/dev/null || { echo "ws_bench: $tool is not installed" >&2; exit 2; }
done
[ -x "$chatd" ] || { echo "ws_bench: build first ($chatd missing)" >&2; exit 2; }
[ "$(nproc)" -ge 2 ] || { echo "ws_bench: needs two cores (server on 0, generator on 1)" >&2; exit 2; }

tmp=$(mktemp -d /tmp/chatd-wsbench.XXXXXX)
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

cc -O2 -Wall -Wextra -std=c11 -D_GNU_SOURCE -o "$tmp/ws_bench" "$top/contrib/bench/ws_bench.c"
cc -O2 -Wall -Wextra -std=c11 -D_GNU_SOURCE -o "$tmp/send_floor" "$top/contrib/bench/send_floor.c"
gen=(taskset -c 1 "$tmp/ws_bench")

free_port() {
	/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}
rss_kb() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }

# ---- chatd
cport=$(free_port)
cat > "$tmp/chatd.env" <<ENV
DATABASE_URL=$(bench_db_url chat)
CONTROL_SOCKET=$tmp/control.sock
CHATD_LISTEN=127.0.0.1:$cport
MAX_CONNECTIONS=1000000
MAX_CONNECTIONS_PER_ADDRESS=0
USER_MESSAGE_INTERVAL_SECS=3
LOG_LEVEL=warning
ENV
chatd_pid=
start_chatd() {
	rm -f "$tmp/control.sock"
	CHAT_ENV_FILE="$tmp/chatd.env" taskset -c 0 "$chatd" 2>>"$tmp/chatd.log" &
	chatd_pid=$!
	pids+=("$chatd_pid")
	for _ in $(seq 100); do [ -S "$tmp/control.sock" ] && return; sleep 0.05; done
	echo "ws_bench: chatd did not start:" >&2
	cat "$tmp/chatd.log" >&2
	exit 1
}
stop_chatd() {
	kill "$chatd_pid"
	wait "$chatd_pid" 2>/dev/null || true
}
ctl() { # one control request, its reply line (chatd answers before we close)
	/usr/bin/python3 -c 'import socket, sys
s = socket.socket(socket.AF_UNIX); s.settimeout(5); s.connect(sys.argv[1])
s.sendall(sys.argv[2].encode() + b"\n"); r = b""
while b"\n" not in r:
    c = s.recv(65536)
    if not c: break
    r += c
print(r.decode().strip())' "$tmp/control.sock" "$1"
}

start_chatd # its migrations make the tables
# Rooms straight into the database (chat-api does the same, then says room_opened):
# "big" for 1,000 members, r0..r9 for 10 x 100, c0.. for the commit part (one member
# each); "admin" is every room's admin.
rooms10=$(printf 'r%d,' 0 1 2 3 4 5 6 7 8 9)
rooms10=${rooms10%,}
commit_nrooms=${COMMIT_ROOMS:-50}
[ "$commit_nrooms" -ge 1 ] && [ "$commit_nrooms" -le 64 ] || { echo "ws_bench: COMMIT_ROOMS must be 1..64" >&2; exit 2; }
crooms=
[[ " $parts " != *" commit "* ]] || crooms=$(seq -f 'c%g' -s , 0 $((commit_nrooms - 1)))
for r in big ${rooms10//,/ } ${crooms//,/ }; do
	echo "INSERT INTO rooms (id, name, created_at) VALUES ('$r', 'bench $r', 1700000000000);"
	echo "INSERT INTO room_admins (room_id, user_id) VALUES ('$r', 'admin');"
done | bench_db_tx chat
for r in big ${rooms10//,/ } ${crooms//,/ }; do
	ctl "{\"v\":1,\"id\":1,\"type\":\"room_opened\",\"args\":{\"room_id\":\"$r\"}}" | grep -q '"ok": *true' ||
		{ echo "ws_bench: room_opened $r failed" >&2; exit 1; }
done

# ---- nginx + Nchan
nginx_pid=
nginx_worker=
nport=$(free_port)
have_nchan=0
if [[ " $parts " == *" nchan "* ]] && command -v nginx >/dev/null && [ -f "$nchan_mod" ]; then
	have_nchan=1
	mkdir -p "$tmp/nginx/logs"
	cat > "$tmp/nginx/nginx.conf" <<CONF
load_module $nchan_mod;
worker_processes 1;
worker_rlimit_nofile 20000;
pid $tmp/nginx/nginx.pid;
error_log stderr warn;
# Nchan holds more than one nginx connection slot per subscriber at times;
# slots are not descriptors (those stay under worker_rlimit_nofile).
events { worker_connections 40000; }
http {
	access_log off;
	client_body_temp_path $tmp/nginx/body;
	proxy_temp_path $tmp/nginx/proxy;
	fastcgi_temp_path $tmp/nginx/fastcgi;
	uwsgi_temp_path $tmp/nginx/uwsgi;
	scgi_temp_path $tmp/nginx/scgi;
	server {
		listen 127.0.0.1:$nport;
		location ~ ^/sub/(\w+)\$ {
			nchan_subscriber websocket;
			nchan_channel_id \$1;
		}
		location ~ ^/pub/(\w+)\$ {
			nchan_publisher websocket;
			nchan_channel_id \$1;
		}
	}
}
CONF
fi
start_nginx() {
	taskset -c 0 nginx -e stderr -p "$tmp/nginx" -c "$tmp/nginx/nginx.conf" -g 'daemon off;' \
		2>>"$tmp/nchan.log" &
	nginx_pid=$!
	pids+=("$nginx_pid")
	for _ in $(seq 100); do
		nginx_worker=$(pgrep -P "$nginx_pid" | head -1 || true)
		[ -n "$nginx_worker" ] && return
		sleep 0.05
	done
	echo "ws_bench: nginx did not start:" >&2
	cat "$tmp/nchan.log" >&2
	exit 1
}
stop_nginx() {
	kill "$nginx_pid"
	wait "$nginx_pid" 2>/dev/null || true
}

shape_list() { # SHAPES: "big" (1 room of 1,000), "10" (10 rooms of 100), "big10" (both)
	case $shapes in
	big) echo "big:1000" ;;
	10) echo "$rooms10:100" ;;
	*) echo "big:1000 $rooms10:100" ;;
	esac
}

field() { # RESULT-LINE KEY
	tr ' ' '\n' <<<"$1" | awk -F= -v k="$2" '$1 == k {print $2}'
}

# idle SERVER_PID PORT TOTAL SUBPATH_PREFIX WELCOME(-w or "")
# Opens TOTAL connections over the ten rooms from two generator processes
# (each under ~9,500 descriptors), reads the server's RSS once all are in.
idle() {
	local pid=$1 port=$2 total=$3 prefix=$4 welcome=$5 before after per g
	local per_gen=$((total / 2 / 10))
	before=$(rss_kb "$pid")
	local gp=()
	for g in 1 2; do
		"${gen[@]}" -m idle -k "$rooms10" -n "$per_gen" $welcome -b "$((2 + (g - 1) * 8)):8" -c 256 -H 120 \
			-S "$prefix%r?user_id=g${g}u%u" "127.0.0.1:$port" >"$tmp/idle$g.out" 2>&1 &
		gp+=($!)
		pids+=($!)
	done
	for _ in $(seq 1200); do
		[ "$(cat "$tmp"/idle[12].out | grep -c '^established')" = 2 ] && break
		for g in "${gp[@]}"; do
			kill -0 "$g" 2>/dev/null && continue
			kill "${gp[@]}" 2>/dev/null || true
			sort "$tmp"/idle[12].out | uniq -c | sort -rn | head -5 >&2
			tail -3 "$tmp/$6.log" >&2 2>/dev/null || true
			exit 1
		done
		sleep 0.1
	done
	sleep 2 # join notices go out, queues drain
	after=$(rss_kb "$pid")
	kill "${gp[@]}"
	wait "${gp[@]}" 2>/dev/null || true
	local est
	est=$(awk '/^established/ {n += $2} END {print n}' "$tmp"/idle[12].out)
	[ "$est" = $((per_gen * 20)) ] || { echo "ws_bench: only $est connections" >&2; cat "$tmp"/idle[12].out >&2; exit 1; }
	per=$(((after - before) * 1024 / est))
	printf '%-8s %6d idle connections: RSS %7d -> %7d KiB, %5d bytes per connection\n' \
		"$6" "$est" "$before" "$after" "$per" >&2
	echo "$per"
}

# fanout SERVER_PID PORT ROOMS PER_ROOM LOAD SUBPREFIX PUBPATH FORMAT [extra args]
fanout() {
	local pid=$1 port=$2 rooms=$3 n=$4 load=$5 sub=$6 pub=$7 fmt=$8 out
	shift 8
	out=$("${gen[@]}" -m fanout -k "$rooms" -n "$n" -b 2:8 -c 256 -d "$secs" -D 5 -l "$load" -p "$pid" \
		-f "$fmt" -S "$sub" -P "$pub" "$@" "127.0.0.1:$port")
	echo "$out"
}

# ws_bench's -x hook: "dbhook.sh WHAT start|sent|end" writes "NS MAX_ID CPU_US" (the
# wall clock, the messages' highest id, the database server's CPU; "-" when not read)
# to $tmp/dbhook.WHAT.start|sent|end. The fan-out runs (WHAT fanout) read only the CPU.
# A psql session is a server process too: the start reading waits for its end to be
# counted before reading the CPU; the one at "sent" (commit runs) lands in the window,
# a few ms of PostgreSQL's CPU. "sent" is stamped halfway through its query.
cat >"$tmp/dbhook.sh" <<SH
#!/usr/bin/env bash
set -euo pipefail
BACKEND=$BACKEND
. "$top/contrib/bench/benchdb.sh"
BENCH_DB_DIR=$tmp PG_TMP_PORT=$PG_TMP_PORT PG_TMP_PID=$PG_TMP_PID
maxid() { bench_db_query chat "SELECT coalesce(max(id), 0) FROM messages"; }
id=- cpu=-
case \$2 in
start) [ "\$1" = fanout ] || { id=\$(maxid); bench_db_wait_gone postgres; }; cpu=\$(bench_db_cpu_us); t=\$(date +%s%N) ;;
sent) a=\$(date +%s%N); id=\$(maxid); t=\$(((a + \$(date +%s%N)) / 2)) ;;
*) t=\$(date +%s%N); cpu=\$(bench_db_cpu_us); [ "\$1" = fanout ] || id=\$(maxid) ;;
esac
echo "\$t \$id \$cpu" >"$tmp/dbhook.\$1.\$2"
SH
chmod +x "$tmp/dbhook.sh"
# fanout_db WHAT SERVER_PID ... (fanout's arguments): chatd's fan-out with the
# database server's CPU over the same window added to the RESULT line:
# db_cpu_ms, db_us_per_delivery, total_us_per_delivery (chatd's + the server's).
fanout_db() {
	local what=$1 r
	shift
	rm -f "$tmp/dbhook.$what".*
	r=$(fanout "$@" -x "$tmp/dbhook.sh $what")
	read -r _ _ c0 <"$tmp/dbhook.$what.start"
	read -r _ _ c1 <"$tmp/dbhook.$what.end"
	awk -v r="$r" -v ms="$(((c1 - c0) / 1000))" 'BEGIN {
		n = split(r, kv, " ")
		for (i = 1; i <= n; i++) { split(kv[i], p, "="); f[p[1]] = p[2] }
		d = f["received"] > 0 ? f["received"] : 1
		printf "%s db_cpu_ms=%d db_us_per_delivery=%.2f total_us_per_delivery=%.2f\n", r, ms,
			ms * 1000 / d, f["server_us_per_delivery"] + ms * 1000 / d }'
}

summ() { # LABEL RESULT
	local r=$2
	printf '%-32s loss %6s/%-8s p50 %7s ms p99 %7s ms max %7s ms  %6s us/delivery  server %5s%%  gen %5s%%%s\n' \
		"$1" "$(field "$r" lost)" "$(field "$r" expected)" "$(field "$r" p50_ms)" "$(field "$r" p99_ms)" \
		"$(field "$r" max_ms)" "$(field "$r" server_us_per_delivery)" "$(field "$r" server_cpu_pct)" \
		"$(field "$r" gen_cpu_pct)" \
		"$( [ "$(field "$r" dropped_notices)$(field "$r" pub_errors)" = 00 ] || echo "  dropped_notices $(field "$r" dropped_notices) pub_errors $(field "$r" pub_errors)")"
	printf '%-32s at socket arrival: p50 %7s ms p99 %7s ms\n' "" "$(field "$r" arr_p50_ms)" "$(field "$r" arr_p99_ms)"
	[ "$BACKEND" != pg ] || [ -z "$(field "$r" db_cpu_ms)" ] ||
		printf '%-32s PostgreSQL %6s us/delivery (%s ms CPU), chatd + PostgreSQL %6s us/delivery\n' "" \
			"$(field "$r" db_us_per_delivery)" "$(field "$r" db_cpu_ms)" "$(field "$r" total_us_per_delivery)"
}

echo "# $(nproc) cores, $(uname -sr), $(date -u +%Y-%m-%d), chatd $("$chatd" --version | awk '{print $2}'), nginx $(nginx -v 2>&1 | sed 's/.*nginx\///'), ${secs}s per run"
echo "# chatd/nginx on core 0 (taskset -c 0), ws_bench on core 1 (taskset -c 1); database: $(bench_db_describe)"

declare -A C N
if [[ " $parts " == *" idle "* ]]; then
	echo "## (a) idle connections: resident memory per connection"
	for total in ${IDLE_SIZES:-10000 19000}; do
		stop_chatd; start_chatd
		C[idle$total]=$(idle "$chatd_pid" "$cport" "$total" /ws/rooms/ -w chatd)
	done
	if [ "$have_nchan" = 1 ]; then
		for total in ${IDLE_SIZES:-10000 19000}; do
			start_nginx
			N[idle$total]=$(idle "$nginx_worker" "$nport" "$total" /sub/ "" nchan)
			stop_nginx
		done
	fi
fi

loads=${LOADS:-"20000 60000 100000"}
shapes=${SHAPES:-"big10"}
if [[ " $parts " == *" fanout "* ]]; then
	echo "## (b) fan-out at fixed offered loads (deliveries/s), ${secs}s each"
	for shape in $(shape_list); do
		set -- ${shape/:/ }
		for load in $loads $([ "$2" = 1000 ] && [ -z "${LOADS:-}" ] && echo 400000); do
			label="$([ "$2" = 1000 ] && echo "1x1000" || echo "10x100") @ $load/s"
			r=$(fanout_db fanout "$chatd_pid" "$cport" "$1" "$2" "$load" "/ws/rooms/%r?user_id=u%u" \
				"/ws/rooms/%r?user_id=admin" chatd -w)
			C["$label"]=$r
			summ "chatd  $label" "$r"
			key="fanout.${label// /}"
			for k in total_us_per_delivery server_us_per_delivery db_us_per_delivery p50_ms p99_ms loss_pct; do
				bench_result "$key.$k" "$(field "$r" "$k")"
			done
		done
	done
	if [ "$have_nchan" = 1 ]; then
		start_nginx
		# The same frame size as chatd's delivered Message frame.
		pad=$(field "${C["1x1000 @ 20000/s"]}" avg_frame_bytes)
		for shape in $(shape_list); do
			set -- ${shape/:/ }
			for load in $loads $([ "$2" = 1000 ] && [ -z "${LOADS:-}" ] && echo 400000); do
				label="$([ "$2" = 1000 ] && echo "1x1000" || echo "10x100") @ $load/s"
				r=$(fanout "$nginx_worker" "$nport" "$1" "$2" "$load" "/sub/%r" "/pub/%r" raw -s "$pad")
				N["$label"]=$r
				summ "nchan  $label" "$r"
			done
		done
		stop_nginx
	fi
fi

if [[ " $parts " == *" event "* ]]; then
	echo "## (c) CustomEvent latency while chat floods a room of 1,000"
	for load in 200000 400000; do
		r=$(fanout "$chatd_pid" "$cport" big 1000 "$load" "/ws/rooms/%r?user_id=u%u" \
			"/ws/rooms/%r?user_id=admin" chatd -w -e 20)
		summ "chatd  flood $load/s" "$r"
		printf '%-32s %s of %s event deliveries, p50 %s ms, p99 %s ms, max %s ms\n' "  CustomEvent (20/s)" \
			"$(field "$r" evt_received)" "$(( $(field "$r" events) * 1000 ))" "$(field "$r" evt_p50_ms)" \
			"$(field "$r" evt_p99_ms)" "$(field "$r" evt_max_ms)"
		printf '%-32s at socket arrival: p50 %s ms, p99 %s ms\n' "" \
			"$(field "$r" evt_arr_p50_ms)" "$(field "$r" evt_arr_p99_ms)"
		printf '%-32s first delivery p50 %s / p99 %s ms, last delivery p50 %s / p99 %s ms\n' "  per event" \
			"$(field "$r" evt_first_p50_ms)" "$(field "$r" evt_first_p99_ms)" \
			"$(field "$r" evt_last_p50_ms)" "$(field "$r" evt_last_p99_ms)"
	done
fi

writer_stats() { # -> "BATCHES OPS COMMIT_SECONDS" so far (chatd's writer histograms)
	ctl '{"v":1,"id":1,"type":"metrics","args":{}}' | /usr/bin/python3 -c 'import json, sys
t = json.loads(sys.stdin.read())["result"]["text"]
v = {}
for line in t.splitlines():
    p = line.split()
    if len(p) == 2 and not line.startswith("#"):
        v[p[0]] = float(p[1])
print("%d %d %.6f" % (v["chatd_writer_batch_operations_count"], v["chatd_writer_batch_operations_sum"],
                      v["chatd_writer_commit_duration_seconds_sum"]))'
}

if [[ " $parts " == *" commit "* ]]; then
	echo "## (d) message commits through chatd's writer: $commit_nrooms rooms of one member, each with an admin publisher, ${secs}s each"
	for load in ${COMMIT_LOADS:-5000 20000 50000}; do
		read -r wb0 wo0 ws0 <<<"$(writer_stats)"
		# One member per room: deliveries = messages. -X: the database's count when publishing stops.
		r=$(fanout_db commit "$chatd_pid" "$cport" "$crooms" 1 "$load" "/ws/rooms/%r?user_id=u%u" \
			"/ws/rooms/%r?user_id=admin" chatd -w -X)
		read -r wb1 wo1 ws1 <<<"$(writer_stats)"
		read -r t0 id0 _ <"$tmp/dbhook.commit.start"
		read -r t1 id1 _ <"$tmp/dbhook.commit.sent"
		read -r _ id2 _ <"$tmp/dbhook.commit.end"
		row=$(awk -v r="$r" -v t0="$t0" -v t1="$t1" -v id0="$id0" -v id1="$id1" -v id2="$id2" \
			-v nb="$((wb1 - wb0))" -v no="$((wo1 - wo0))" -v cs="$ws0 $ws1" 'BEGIN {
			n = split(r, kv, " ")
			for (i = 1; i <= n; i++) { split(kv[i], p, "="); f[p[1]] = p[2] }
			split(cs, c, " ")
			stored = id2 - id0
			d = stored > 0 ? stored : 1
			printf "offered=%d published=%d stored=%d committed_per_s=%.0f lost=%d loss_pct=%.3f p50_ms=%s p99_ms=%s " \
				"chatd_us_per_msg=%.2f db_us_per_msg=%.2f total_us_per_msg=%.2f batch_ops=%.1f commit_ms=%.3f pub_errors=%s\n",
				f["offered_per_s"], f["published"], stored, (id1 - id0) / ((t1 - t0) / 1e9),
				f["published"] - stored, (f["published"] > 0 ? 100 * (f["published"] - stored) / f["published"] : 0),
				f["p50_ms"], f["p99_ms"], f["server_cpu_ms"] * 1000 / d, f["db_cpu_ms"] * 1000 / d,
				(f["server_cpu_ms"] + f["db_cpu_ms"]) * 1000 / d, (nb > 0 ? no / nb : 0),
				(nb > 0 ? (c[2] - c[1]) * 1000 / nb : 0), f["pub_errors"] }')
		printf '%-32s %7s commits/s  lost %6s/%-7s p50 %7s ms p99 %7s ms  chatd %5s + db %5s us/msg  batch %6s ops, %6s ms%s\n' \
			"commit @ $load/s" "$(field "$row" committed_per_s)" "$(field "$row" lost)" "$(field "$row" published)" \
			"$(field "$row" p50_ms)" "$(field "$row" p99_ms)" "$(field "$row" chatd_us_per_msg)" \
			"$(field "$row" db_us_per_msg)" "$(field "$row" batch_ops)" "$(field "$row" commit_ms)" \
			"$([ "$(field "$row" pub_errors)" = 0 ] || echo "  refused $(field "$row" pub_errors)")"
		for k in committed_per_s loss_pct p50_ms p99_ms chatd_us_per_msg db_us_per_msg total_us_per_msg batch_ops commit_ms; do
			bench_result "commit.$load.$k" "$(field "$row" "$k")"
		done
	done
fi

declare -A F
if [[ " $parts " == *" floor "* ]]; then
	echo "## floor: one send() of a ${FLOOR_BYTES:-220}-byte frame to 1,000 loopback connections, nothing else"
	for load in $loads; do
		r=$(taskset -c 0 "$tmp/send_floor" -n 1000 -r "$load" -s "${FLOOR_BYTES:-220}" -k 1 -d "$secs" -c 1)
		F[$load]=$(field "$r" us_per_send)
		printf '%-32s %8s sends/s  %6s us/send  cpu %5s%%\n' "floor  @ $load/s" \
			"$(field "$r" sends_per_s)" "$(field "$r" us_per_send)" "$(field "$r" cpu_pct)"
	done
fi
if [[ " $parts " == *" floor "* ]] && [[ " $parts " == *" fanout "* ]]; then
	echo "## chatd us/delivery / floor us/send at the same offered rate"
	for label in "${!C[@]}"; do
		load=${label##* @ }
		load=${load%/s}
		[ -n "${F[$load]:-}" ] || continue
		awk -v l="$label" -v c="$(field "${C[$label]}" server_us_per_delivery)" -v f="${F[$load]}" \
			'BEGIN { if (c != "") printf "%-20s %.2f\n", l, c / f }'
	done | sort
fi

if [ "$have_nchan" = 1 ] && [ ${#N[@]} -gt 0 ]; then
	echo "## chatd / Nchan (below 1 is better for chatd in every column)"
	for total in ${IDLE_SIZES:-10000 19000}; do
		[ -n "${C[idle$total]:-}" ] && [ -n "${N[idle$total]:-}" ] &&
			awk -v c="${C[idle$total]}" -v n="${N[idle$total]}" -v t="$total" \
				'BEGIN { printf "%-20s bytes/connection %.2f\n", t " idle", c / n }'
	done
	for label in "1x1000 @ 20000/s" "1x1000 @ 60000/s" "1x1000 @ 100000/s" "1x1000 @ 400000/s" \
		"10x100 @ 20000/s" "10x100 @ 60000/s" "10x100 @ 100000/s"; do
		[ -n "${C[$label]:-}" ] && [ -n "${N[$label]:-}" ] || continue
		awk -v l="$label" -v cp="$(field "${C[$label]}" p99_ms)" -v np="$(field "${N[$label]}" p99_ms)" \
			-v cu="$(field "${C[$label]}" server_us_per_delivery)" \
			-v nu="$(field "${N[$label]}" server_us_per_delivery)" \
			-v cl="$(field "${C[$label]}" lost)" -v nl="$(field "${N[$label]}" lost)" \
			'BEGIN { printf "%-20s p99 %.2f   us/delivery %.2f   lost %d vs %d\n", l, cp / np, cu / nu, cl, nl }'
	done
fi
