#!/bin/sh
# Renders one of the web server configs under contrib/ by replacing its
# @PLACEHOLDER@s with values from the environment, and writes the result to
# standard output (or to the file given with -o). The quick start and the
# integration tests use this script, so what is tested is what ships.
#
# Usage: contrib/render-config.sh [-o OUTPUT] TEMPLATE
#
# Placeholders and the variables that fill them:
#   @BIND_HOST@ @BIND_PORT@    public address the web server listens on;
#                              from BIND_HOST/BIND_PORT, else BIND_ADDRESS
#                              (HOST:PORT, default 127.0.0.1:3000)
#   @API_SOCKET@               chat-api's Unix socket (API_SOCKET)
#   @API_HOST@ @API_PORT@      chat-api's TCP address, SCGI variant; from
#                              API_HOST/API_PORT, else API_ADDR (HOST:PORT)
#   @CHATD_ADDR@               chatd's WebSocket listener as CHATD_LISTEN
#                              writes it: HOST:PORT or unix:PATH; from
#                              CHATD_ADDR, else CHATD_LISTEN, else 127.0.0.1:3001
#   @CHATD_NGINX_UPSTREAM@     the same as nginx's proxy_pass wants it after
#                              http://: HOST:PORT or unix:PATH:
#   @CHATD_APACHE_URL@         the same for Apache's ProxyPass:
#                              http://HOST:PORT or unix:PATH|http://localhost
#   @CHATD_LIGHTTPD_BACKEND@   the same for lighttpd's proxy.server:
#                              "host" => "HOST", "port" => PORT or
#                              "socket" => "PATH"
#   @CHATD_APACHE_WS_OPTIONS@  the options of that ProxyPass: the WebSocket
#                              upgrade, idle timeout and retry=0 for one
#                              chatd; the balancing method for several
#   @CHATD_LIGHTTPD_BACKENDS@  proxy.server's list of hosts: one
#                              (@CHATD_LIGHTTPD_BACKEND@) per chatd node
#   @CHATD_HOST@ @CHATD_PORT@  host and port of a TCP CHATD_ADDR
#
# Several chatd nodes (a cluster sharing one database, joined by NATS):
#   CHATD_ADDRS                their WebSocket listeners, each HOST:PORT or
#                              unix:PATH, separated by commas or blanks. One
#                              address renders exactly as CHATD_ADDR does;
#                              two or more render a balancer named
#                              chatd_nodes: @CHATD_NGINX_UPSTREAM@ and
#                              @CHATD_APACHE_URL@ name it, and the single
#                              node's @CHATD_ADDR@, @CHATD_HOST@,
#                              @CHATD_PORT@ and @CHATD_LIGHTTPD_BACKEND@ are
#                              unset (a template that needs them is refused)
#   Lines only several nodes need are block placeholders, each alone on
#   its line, which renders as zero or more lines indented like it (for
#   one node: no line at all):
#   @CHATD_NGINX_UPSTREAM_BLOCK@   nginx's upstream chatd_nodes (least_conn)
#   @CHATD_APACHE_MODULES_BLOCK@   LoadModule lines of mod_proxy_balancer,
#                                  mod_slotmem_shm, mod_lbmethod_bybusyness
#   @CHATD_APACHE_BALANCER_BLOCK@  <Proxy "balancer://chatd_nodes"> with one
#                                  BalancerMember per node
#   @CHATD_LIGHTTPD_BALANCE_BLOCK@ proxy.balance = "fair"
#   @STATE_DIR@                directory for the web server's pid file and
#                              temporary files (STATE_DIR, absolute)
#   @LIGHTTPD_ERROR_DIR@       lighttpd's JSON error documents (LIGHTTPD_ERROR_DIR,
#                              default contrib/lighttpd/errors beside this
#                              script, absolute)
#   @CHAT_API@                 chat-api binary that lighttpd spawns (CHAT_API)
#   @ENV_FILE@                 settings file that spawned chat-api reads
#                              (ENV_FILE, else CHAT_ENV_FILE)
#   @WEB_USER@ @WEB_GROUP@     account the server's workers switch to when
#                              started as root (default www-data; empty
#                              keeps lighttpd as the starting user)
#
# Connection limits, computed (docs/deployment.md, "Sizing the web server")
# so that the server holds MAX_CONNECTIONS proxied WebSockets and still has
# room for SPARE (256) management requests at once:
#   @NGINX_WORKER_CONNECTIONS@ @NGINX_WORKER_RLIMIT_NOFILE@ @NGINX_WS_LIMIT@
#   @NGINX_WS_LIMIT_KEY@
#   @LIGHTTPD_MAX_FDS@ @LIGHTTPD_MAX_CONNECTIONS@
#   @APACHE_SERVER_LIMIT@ @APACHE_THREADS_PER_CHILD@ @APACHE_MAX_REQUEST_WORKERS@
# from these variables:
#   MAX_CONNECTIONS   WebSockets to hold, chatd's setting (default 100000)
#   WEB_MAX_FDS       open files one web server process may have (default:
#                     the hard limit of this script, `ulimit -Hn`)
#   WEB_MAX_THREADS   threads the web server's account may run, Apache only
#                     (default: the hard process limit, `ulimit -Hu`)
# A limit too small for MAX_CONNECTIONS is not an error: the config is sized
# for as many WebSockets as the limit allows, and a warning on standard
# error names that number (set chatd's MAX_CONNECTIONS to it, or raise the
# limit).
#
# Placeholders are replaced on every line except comment lines (a line whose
# first non-blank character is #), so each template's header keeps naming
# them. A placeholder that the template uses but that has no value is an
# error, and so is any @NAME@ left after rendering: a half-rendered config
# never reaches a web server.
set -eu

out=
if [ "${1:-}" = "-o" ]; then
	[ $# -ge 2 ] || { echo "render-config.sh: -o needs a file" >&2; exit 2; }
	out=$2
	shift 2
fi
if [ $# -ne 1 ] || [ "$1" = "-h" ] || [ "$1" = "--help" ]; then
	sed -n '2,/^set -eu$/p' "$0" | sed '$d; s/^# \{0,1\}//'
	[ $# -eq 1 ] && exit 0
	exit 2
fi
template=$1
[ -r "$template" ] || { echo "render-config.sh: cannot read $template" >&2; exit 2; }

# HOST:PORT -> host part / port part ([v6]:port keeps its brackets).
addr_host() { printf '%s' "${1%:*}"; }
addr_port() { printf '%s' "${1##*:}"; }

BIND_ADDRESS=${BIND_ADDRESS:-127.0.0.1:3000}
BIND_HOST=${BIND_HOST:-$(addr_host "$BIND_ADDRESS")}
BIND_PORT=${BIND_PORT:-$(addr_port "$BIND_ADDRESS")}
# One chatd listener (HOST:PORT or unix:PATH) in each server's spelling:
# sets a_path (the socket path, or empty), a_host, a_port, a_nginx (after
# proxy_pass http://), a_nginx_server (an upstream's server line),
# a_apache (a ProxyPass or BalancerMember URL) and a_lighttpd (the inside
# of one proxy.server host). $1 names the variable, for messages.
chatd_spellings() {
	a_path='' a_host='' a_port=''
	case $2 in
	unix:*)
		# One spelling per server for chatd's Unix socket. The path cannot
		# hold what those spellings use as separators.
		a_path=${2#unix:}
		case $a_path in
		/*) ;;
		*) echo "render-config.sh: $1=$2: unix: needs an absolute path" >&2; exit 2 ;;
		esac
		case $a_path in
		*[\"\|:\ \	]*) echo "render-config.sh: $1=$2: a socket path with a quote, |, : or blank is refused" >&2; exit 2 ;;
		esac
		a_nginx="unix:$a_path:"
		a_nginx_server="unix:$a_path"
		a_apache="unix:$a_path|http://localhost"
		a_lighttpd="\"socket\" => \"$a_path\""
		;;
	*)
		a_host=$(addr_host "$2")
		a_port=$(addr_port "$2")
		a_nginx=$2
		a_nginx_server=$2
		a_apache="http://$2"
		a_lighttpd="\"host\" => \"$a_host\", \"port\" => $a_port"
		;;
	esac
}

# The chatd nodes: CHATD_ADDRS when it names any (one node renders exactly
# as CHATD_ADDR would), else the single CHATD_ADDR.
set -f
nodes=0
for a in $(printf '%s' "${CHATD_ADDRS:-}" | tr ',' ' '); do
	nodes=$((nodes + 1))
	case $a in
	unix:*) ;;
	*:*) case ${a##*:} in '' | *[!0-9]*) nodes=-1 ;; esac ;;
	*) nodes=-1 ;;
	esac
	[ "$nodes" -gt 0 ] || { echo "render-config.sh: CHATD_ADDRS: $a is neither HOST:PORT nor unix:PATH" >&2; exit 2; }
	[ "$nodes" -ne 1 ] || CHATD_ADDR=$a
done
set +f
CHATD_ADDR=${CHATD_ADDR:-${CHATD_LISTEN:-127.0.0.1:3001}}
# Lines only several nodes need (the *_BLOCK placeholders): none for one.
CHATD_NGINX_UPSTREAM_BLOCK=
CHATD_APACHE_MODULES_BLOCK=
CHATD_APACHE_BALANCER_BLOCK=
CHATD_LIGHTTPD_BALANCE_BLOCK=
# What each WebSocket connection to chatd is proxied with in Apache: the
# WebSocket upgrade (mod_proxy_http), how long it may stay idle (chatd's
# keepalive pings come more often), and retry=0 (Apache would otherwise
# refuse a chatd for 60 s after one failed connection).
APACHE_WS_WORKER="upgrade=websocket timeout=600 retry=0"
if [ "$nodes" -le 1 ]; then
	chatd_spellings CHATD_ADDR "$CHATD_ADDR"
	if [ -z "$a_path" ]; then
		CHATD_HOST=${CHATD_HOST:-$a_host}
		CHATD_PORT=${CHATD_PORT:-$a_port}
	fi
	CHATD_NGINX_UPSTREAM=$a_nginx
	CHATD_APACHE_URL=$a_apache
	CHATD_APACHE_WS_OPTIONS=$APACHE_WS_WORKER
	CHATD_LIGHTTPD_BACKEND=$a_lighttpd
	CHATD_LIGHTTPD_BACKENDS="($a_lighttpd)"
else
	# Several nodes: one balancer per server, named chatd_nodes. The
	# single-node spellings stay unset, so a template written for one
	# chatd is refused rather than rendered with one of them.
	unset CHATD_ADDR CHATD_HOST CHATD_PORT CHATD_LIGHTTPD_BACKEND
	nl='
'
	CHATD_NGINX_UPSTREAM=chatd_nodes
	CHATD_APACHE_URL=balancer://chatd_nodes
	CHATD_APACHE_WS_OPTIONS="lbmethod=bybusyness"
	CHATD_LIGHTTPD_BACKENDS=
	up="upstream chatd_nodes {${nl}    least_conn;${nl}    zone chatd_nodes 64k;"
	bal="<Proxy \"balancer://chatd_nodes\">"
	i=0
	set -f
	for a in $(printf '%s' "$CHATD_ADDRS" | tr ',' ' '); do
		i=$((i + 1))
		chatd_spellings "CHATD_ADDRS (node $i)" "$a"
		up="$up${nl}    server $a_nginx_server;"
		# Apache tells BalancerMembers apart by their http:// part, not by
		# their Unix socket: with http://localhost on each, every
		# WebSocket went to the first node. A host name per node (sent
		# to chatd as the Host header, which it ignores) keeps them apart.
		member=$a_apache
		[ -z "$a_path" ] || member="unix:$a_path|http://chatd-node-$i"
		bal="$bal${nl}    BalancerMember \"$member\" $APACHE_WS_WORKER"
		CHATD_LIGHTTPD_BACKENDS="$CHATD_LIGHTTPD_BACKENDS${CHATD_LIGHTTPD_BACKENDS:+, }($a_lighttpd)"
	done
	set +f
	# (the blank line that follows it is part of the block)
	CHATD_NGINX_UPSTREAM_BLOCK="$up$nl}$nl"
	CHATD_APACHE_BALANCER_BLOCK="$bal$nl</Proxy>"
	CHATD_APACHE_MODULES_BLOCK="LoadModule slotmem_shm_module /usr/lib/apache2/modules/mod_slotmem_shm.so${nl}LoadModule proxy_balancer_module /usr/lib/apache2/modules/mod_proxy_balancer.so${nl}LoadModule lbmethod_bybusyness_module /usr/lib/apache2/modules/mod_lbmethod_bybusyness.so"
	CHATD_LIGHTTPD_BALANCE_BLOCK='proxy.balance = "fair"'
fi
if [ -n "${API_ADDR:-}" ]; then
	API_HOST=${API_HOST:-$(addr_host "$API_ADDR")}
	API_PORT=${API_PORT:-$(addr_port "$API_ADDR")}
fi
ENV_FILE=${ENV_FILE:-${CHAT_ENV_FILE:-}}
LIGHTTPD_ERROR_DIR=${LIGHTTPD_ERROR_DIR:-$(cd "$(dirname "$0")" && pwd)/lighttpd/errors}
WEB_USER=${WEB_USER-www-data}
WEB_GROUP=${WEB_GROUP-$WEB_USER}

# ---- sizing (the arithmetic is explained in docs/deployment.md) ----

# Requests other than WebSockets (the management API) in flight at once.
SPARE=256
# Files a process keeps besides its connections: listeners, logs, the pid
# file, event and signal descriptors, body buffer files.
FD_BASE=64
# Slots nginx takes from worker_connections besides connections: one per
# listening socket in each worker.
NGINX_LISTEN_SLOTS=16
# Threads per Apache child at most: 2 x 480 + 64 = 1024 descriptors, the
# usual soft open-file limit, which Apache does not raise by itself.
APACHE_TPC_MAX=480
# Threads the web server's account keeps for its other processes.
THREAD_HEADROOM=256

warn() { echo "render-config.sh: warning: $*" >&2; }
die() { echo "render-config.sh: $*" >&2; exit 2; }
uses() { grep -v '^[[:space:]]*#' "$template" | grep -q "@$1@"; }

# A count: digits only (leading zeros dropped, so the shell does not read
# octal), between $2 and $3. Prints it.
count() {
	case $2 in '' | *[!0-9]*) die "$1=$2: expected a whole number" ;; esac
	c=${2#"${2%%[!0]*}"}
	c=${c:-0}
	[ ${#c} -le 9 ] && [ "$c" -ge "$3" ] && [ "$c" -le "$4" ] ||
		die "$1=$2: expected $3-$4"
	printf '%s' "$c"
}

# The hard limit on a resource of this process, from /proc/self/limits (the
# shell's ulimit options differ between dash and bash); "unlimited" and a
# missing file give $2.
hard_limit() {
	v=$(awk -v name="$1" 'index($0, name) == 1 { print $(NF - 1) }' /proc/self/limits 2>/dev/null) || v=
	case $v in '' | *[!0-9]*) v=$2 ;; esac
	printf '%s' "$v"
}

# Sizing for nginx: every proxied WebSocket takes two worker_connections
# (client and chatd), and so does every management request (client and
# chat-api). Connections are not balanced between workers, so each worker
# is sized to hold all of them.
size_nginx() {
	wc=$((2 * (MAX_CONNECTIONS + SPARE) + NGINX_LISTEN_SLOTS))
	nofile=$((wc + FD_BASE))
	ws=$MAX_CONNECTIONS
	if [ "$nofile" -gt "$WEB_MAX_FDS" ]; then
		nofile=$WEB_MAX_FDS
		wc=$((nofile - FD_BASE))
		ws=$(((wc - NGINX_LISTEN_SLOTS) / 2 - SPARE))
		[ "$ws" -ge 1 ] || die "WEB_MAX_FDS=$WEB_MAX_FDS leaves nginx no room for WebSockets"
		warn "MAX_CONNECTIONS=$MAX_CONNECTIONS cannot be honoured by nginx with $WEB_MAX_FDS open files" \
			"per process (WEB_MAX_FDS): sized for $ws WebSockets; set MAX_CONNECTIONS=$ws for chatd" \
			"or raise the web server's open-file limit"
	fi
	NGINX_WORKER_CONNECTIONS=$wc
	NGINX_WORKER_RLIMIT_NOFILE=$nofile
	# limit_conn counts at most 65535 per key; beyond that the key is empty
	# (nginx counts nothing) and chatd's MAX_CONNECTIONS alone is the bound.
	if [ "$ws" -le 65535 ]; then
		NGINX_WS_LIMIT=$ws
		NGINX_WS_LIMIT_KEY='$server_name'
	else
		NGINX_WS_LIMIT=65535
		NGINX_WS_LIMIT_KEY='""'
	fi
}

# Sizing for lighttpd (one process): a connection is a client, with a second
# descriptor while it is proxied to chatd or chat-api. lighttpd stops
# accepting above 90% of server.max-fds, and takes both limits as 16-bit
# numbers (at most 65535).
size_lighttpd() {
	conns=$((MAX_CONNECTIONS + SPARE))
	need=$((2 * conns + FD_BASE))
	fds=$(((need * 10 + 8) / 9))
	while [ $((fds * 9 / 10)) -lt "$need" ]; do fds=$((fds + 1)); done
	ws=$MAX_CONNECTIONS
	cap=$WEB_MAX_FDS
	[ "$cap" -le 65535 ] || cap=65535
	if [ "$fds" -gt "$cap" ]; then
		fds=$cap
		conns=$(((fds * 9 / 10 - FD_BASE) / 2))
		ws=$((conns - SPARE))
		[ "$ws" -ge 1 ] || die "WEB_MAX_FDS=$WEB_MAX_FDS leaves lighttpd no room for WebSockets"
		warn "MAX_CONNECTIONS=$MAX_CONNECTIONS cannot be honoured by lighttpd with $fds open files" \
			"(WEB_MAX_FDS=$WEB_MAX_FDS; lighttpd's own ceiling is 65535): sized for $ws WebSockets;" \
			"set MAX_CONNECTIONS=$ws for chatd or put a larger server in front"
	fi
	LIGHTTPD_MAX_FDS=$fds
	LIGHTTPD_MAX_CONNECTIONS=$conns
}

# Sizing for Apache's event MPM: a proxied WebSocket holds one worker thread
# (and two descriptors of its process) for as long as it is open.
size_apache() {
	need=$((MAX_CONNECTIONS + SPARE))
	tpc=$APACHE_TPC_MAX
	[ $(((WEB_MAX_FDS - FD_BASE) / 2)) -ge "$tpc" ] || tpc=$(((WEB_MAX_FDS - FD_BASE) / 2))
	[ "$need" -ge "$tpc" ] || tpc=$need
	[ "$tpc" -ge 1 ] || die "WEB_MAX_FDS=$WEB_MAX_FDS leaves Apache no room for WebSockets"
	servers=$(((need + tpc - 1) / tpc))
	# Each child also runs a main and a listener thread.
	most=$(((WEB_MAX_THREADS - THREAD_HEADROOM) / (tpc + 2)))
	[ "$most" -le 20000 ] || most=20000
	ws=$MAX_CONNECTIONS
	if [ "$servers" -gt "$most" ]; then
		servers=$most
		ws=$((servers * tpc - SPARE))
		[ "$ws" -ge 1 ] || die "WEB_MAX_THREADS=$WEB_MAX_THREADS leaves Apache no room for WebSockets"
		warn "MAX_CONNECTIONS=$MAX_CONNECTIONS cannot be honoured by Apache with $WEB_MAX_THREADS threads" \
			"(WEB_MAX_THREADS) and $WEB_MAX_FDS open files per process (WEB_MAX_FDS): sized for $ws" \
			"WebSockets; set MAX_CONNECTIONS=$ws for chatd or raise the limits"
	fi
	APACHE_SERVER_LIMIT=$servers
	APACHE_THREADS_PER_CHILD=$tpc
	APACHE_MAX_REQUEST_WORKERS=$((servers * tpc))
}

MAX_CONNECTIONS=$(count MAX_CONNECTIONS "${MAX_CONNECTIONS:-100000}" 1 10000000)
WEB_MAX_FDS=$(count WEB_MAX_FDS "${WEB_MAX_FDS:-$(hard_limit 'Max open files' 1048576)}" 256 100000000)
threads_max=$(cat /proc/sys/kernel/threads-max 2>/dev/null) || threads_max=32768
case $threads_max in '' | *[!0-9]*) threads_max=32768 ;; esac
if [ -z "${WEB_MAX_THREADS:-}" ]; then
	WEB_MAX_THREADS=$(hard_limit 'Max processes' "$threads_max")
	[ "$WEB_MAX_THREADS" -le "$threads_max" ] || WEB_MAX_THREADS=$threads_max
fi
WEB_MAX_THREADS=$(count WEB_MAX_THREADS "$WEB_MAX_THREADS" $((THREAD_HEADROOM + 3)) 100000000)
if uses NGINX_WORKER_CONNECTIONS || uses NGINX_WORKER_RLIMIT_NOFILE || uses NGINX_WS_LIMIT ||
	uses NGINX_WS_LIMIT_KEY; then
	size_nginx
fi
if uses LIGHTTPD_MAX_FDS || uses LIGHTTPD_MAX_CONNECTIONS; then
	size_lighttpd
fi
if uses APACHE_SERVER_LIMIT || uses APACHE_THREADS_PER_CHILD || uses APACHE_MAX_REQUEST_WORKERS; then
	size_apache
fi

# Escapes a value for the right-hand side of a sed s|||; newlines are refused.
sed_escape() {
	case $1 in
	*'
'*) echo "render-config.sh: value with a newline refused" >&2; exit 2 ;;
	esac
	printf '%s' "$1" | sed 's/[\\|&]/\\&/g'
}

script=
missing=
for name in BIND_HOST BIND_PORT API_SOCKET API_HOST API_PORT CHATD_ADDR CHATD_HOST \
    CHATD_PORT CHATD_NGINX_UPSTREAM CHATD_APACHE_URL CHATD_APACHE_WS_OPTIONS CHATD_LIGHTTPD_BACKEND \
    CHATD_LIGHTTPD_BACKENDS LIGHTTPD_ERROR_DIR STATE_DIR CHAT_API ENV_FILE WEB_USER WEB_GROUP \
    NGINX_WORKER_CONNECTIONS NGINX_WORKER_RLIMIT_NOFILE NGINX_WS_LIMIT NGINX_WS_LIMIT_KEY \
    LIGHTTPD_MAX_FDS LIGHTTPD_MAX_CONNECTIONS \
    APACHE_SERVER_LIMIT APACHE_THREADS_PER_CHILD APACHE_MAX_REQUEST_WORKERS; do
	# Placeholders on comment lines are documentation: left as they are.
	grep -v '^[[:space:]]*#' "$template" | grep -q "@$name@" || continue
	eval "isset=\${$name+x}"
	eval "value=\${$name-}"
	# Only the account may be empty (lighttpd then keeps its user).
	if [ -z "$isset" ] || { [ -z "$value" ] && [ "$name" != WEB_USER ] && [ "$name" != WEB_GROUP ]; }; then
		missing="$missing $name"
		continue
	fi
	script="${script}/^[[:space:]]*#/!s|@$name@|$(sed_escape "$value")|g
"
done
if [ -n "$missing" ]; then
	echo "render-config.sh: $template needs:$missing" >&2
	exit 2
fi

# The *_BLOCK placeholders first: each stands alone on its line, which
# becomes the value's lines, indented as the placeholder was (no line for
# an empty value). awk reads the values from its environment, verbatim.
rendered=$(RENDER_CHATD_NGINX_UPSTREAM_BLOCK=$CHATD_NGINX_UPSTREAM_BLOCK \
	RENDER_CHATD_APACHE_MODULES_BLOCK=$CHATD_APACHE_MODULES_BLOCK \
	RENDER_CHATD_APACHE_BALANCER_BLOCK=$CHATD_APACHE_BALANCER_BLOCK \
	RENDER_CHATD_LIGHTTPD_BALANCE_BLOCK=$CHATD_LIGHTTPD_BALANCE_BLOCK \
	awk '
	/^[ \t]*@[A-Z_]+_BLOCK@[ \t]*$/ {
		indent = $0
		sub(/[^ \t].*$/, "", indent)
		name = $0
		gsub(/[ \t@]/, "", name)
		if (("RENDER_" name) in ENVIRON) {
			n = split(ENVIRON["RENDER_" name], lines, "\n")
			for (i = 1; i <= n; i++)
				print (lines[i] == "" ? "" : indent lines[i])
			next
		}
	}
	{ print }' "$template" | sed "$script")
left=$(printf '%s\n' "$rendered" | grep -v '^[[:space:]]*#' | grep -o '@[A-Z_][A-Z_]*@' | sort -u | tr '\n' ' ' || true)
if [ -n "$left" ]; then
	echo "render-config.sh: $template: unknown placeholders left: $left" >&2
	exit 2
fi
if [ -n "$out" ]; then
	tmp="$out.tmp.$$"
	printf '%s\n' "$rendered" >"$tmp"
	mv -f "$tmp" "$out"
else
	printf '%s\n' "$rendered"
fi
