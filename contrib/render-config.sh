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
#   @CHATD_ADDR@               chatd's WebSocket listener, HOST:PORT; from
#   @CHATD_HOST@ @CHATD_PORT@  CHATD_ADDR, else CHATD_LISTEN, else 127.0.0.1:3001
#   @STATE_DIR@                directory for the web server's pid file and
#                              temporary files (STATE_DIR, absolute)
#   @CHAT_API@                 chat-api binary that lighttpd spawns (CHAT_API)
#   @ENV_FILE@                 settings file that spawned chat-api reads
#                              (ENV_FILE, else CHAT_ENV_FILE)
#   @WEB_USER@ @WEB_GROUP@     account the server's workers switch to when
#                              started as root (default www-data; empty
#                              keeps lighttpd as the starting user)
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
CHATD_ADDR=${CHATD_ADDR:-${CHATD_LISTEN:-127.0.0.1:3001}}
CHATD_HOST=${CHATD_HOST:-$(addr_host "$CHATD_ADDR")}
CHATD_PORT=${CHATD_PORT:-$(addr_port "$CHATD_ADDR")}
if [ -n "${API_ADDR:-}" ]; then
	API_HOST=${API_HOST:-$(addr_host "$API_ADDR")}
	API_PORT=${API_PORT:-$(addr_port "$API_ADDR")}
fi
ENV_FILE=${ENV_FILE:-${CHAT_ENV_FILE:-}}
WEB_USER=${WEB_USER-www-data}
WEB_GROUP=${WEB_GROUP-$WEB_USER}

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
    CHATD_PORT STATE_DIR CHAT_API ENV_FILE WEB_USER WEB_GROUP; do
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

rendered=$(sed "$script" "$template")
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
