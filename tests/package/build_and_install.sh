#!/usr/bin/env bash
# The Debian package, end to end (root on Debian 12; CI runs it, `make
# check` does not: it installs and purges a system package):
#   1. builds it with `dpkg-buildpackage -us -uc -b` in a copy of the tree
#      (tracked and new files of the checkout, in a temp dir: the checkout
#      is not littered);
#   2. lintian on the .deb: any E: line fails, warnings are listed;
#   3. installs it with apt-get and checks what the install did: the chatd
#      system user, /var/lib/chatd (0750 chatd:chatd), /etc/chatd/chatd.env
#      (a conffile, 0640 root:chatd, no ADMIN_API_KEY), the units (chatd.service
#      enabled, all of them passing `systemd-analyze verify`);
#   4. runs the installed programs against the installed settings: --version
#      and --help, then /usr/bin/chatd as user chatd with
#      CHAT_ENV_FILE=/etc/chatd/chatd.env (plus an ADMIN_API_KEY, a throw-away
#      database in /var/lib/chatd and a listener in /run/chatd), answering
#      `chatctl status` over the control socket of the installed settings,
#      run as user chatd without CHAT_ENV_FILE (so from /etc/chatd/chatd.env,
#      which group chatd may read);
#      chatd is stopped by its PID;
#   5. purges the package and checks that the files, the state folder and
#      the statoverride are gone.
# Prints "N passed, M failed"; exit 0 when all passed.
set -uo pipefail

top=$(cd "$(dirname "$0")/../.." && pwd)
passed=0
failed=0
ok() {
	if [ "$1" -eq 0 ]; then
		passed=$((passed + 1))
		printf 'ok: %s\n' "$2"
	else
		failed=$((failed + 1))
		printf 'FAIL: %s\n' "$2"
		[ -z "${3:-}" ] || printf '%s\n' "$3" | tail -n 40 | sed 's/^/    /'
	fi
}
check() { # check DESCRIPTION COMMAND...
	local what=$1 out
	shift
	out=$("$@" 2>&1)
	ok $? "$what" "$out"
}
finish() {
	printf '%d passed, %d failed\n' "$passed" "$failed"
	[ "$failed" -eq 0 ]
	exit
}
die() {
	ok 1 "$1" "${2:-}"
	finish
}

[ "$(id -u)" -eq 0 ] || die "runs as root (it installs and purges a package)"
for tool in dpkg-buildpackage lintian apt-get dpkg-statoverride setpriv systemd-analyze; do
	command -v "$tool" >/dev/null 2>&1 || die "$tool is installed (contrib/quickstart.sh deps test)"
done
if dpkg-query -W -f='${Status}' chatd 2>/dev/null | grep -q 'installed'; then
	die "chatd is not installed before the test (it purges it afterwards)"
fi

tmp=$(mktemp -d /tmp/chatd-pkg-XXXXXX)
chatd_pid=
installed=
made_run=
cleanup() {
	if [ -n "$chatd_pid" ] && kill -0 "$chatd_pid" 2>/dev/null; then
		kill -KILL "$chatd_pid" 2>/dev/null
		wait "$chatd_pid" 2>/dev/null
	fi
	if [ -n "$installed" ]; then
		apt-get purge -y chatd >/dev/null 2>&1
	fi
	[ -z "$made_run" ] || rm -rf /run/chatd
	[ "${KEEP_TMP:-}" = 1 ] || rm -rf "$tmp"
}
trap cleanup EXIT

# ---- 1. build in a copy
version=$(dpkg-parsechangelog -l "$top/debian/changelog" -S Version)
upstream=${version%-*}
src=$tmp/chatd-$upstream
mkdir -p "$src"
if git -C "$top" rev-parse --git-dir >/dev/null 2>&1; then
	(cd "$top" && git ls-files -co --exclude-standard -z | tar --null -T - -cf -) | tar -x -C "$src" ||
		die "copy the checkout to $src"
else
	make -C "$top" distdir distdir="$src" >/dev/null && cp -a "$top/debian" "$src/" || die "make distdir into $src"
fi
echo "== dpkg-buildpackage -us -uc -b in $src"
(
	cd "$src" &&
		DEB_BUILD_OPTIONS=${DEB_BUILD_OPTIONS:-parallel=2} dpkg-buildpackage -us -uc -b
) >"$tmp/build.log" 2>&1
ok $? "dpkg-buildpackage -us -uc -b builds" "$(tail -n 40 "$tmp/build.log")"
deb=$(ls "$tmp"/chatd_"$version"_*.deb 2>/dev/null | head -n 1)
[ -n "$deb" ] || die "the build made chatd_${version}_ARCH.deb"
contents=$(dpkg-deb -c "$deb")
for f in ./usr/bin/chatd ./usr/bin/chat-api ./usr/bin/chatctl ./usr/bin/chat-sync ./etc/chatd/chatd.env \
	./lib/systemd/system/chatd.service ./usr/share/man/man8/chatd.8.gz ./usr/share/doc/chatd/copyright; do
	printf '%s\n' "$contents" | grep -q " $f\$"
	ok $? "the package holds $f"
done
check "the package depends on libwebsockets-evlib-uv (chatd loads it at run time)" \
	sh -c "dpkg-deb -f '$deb' Depends | grep -q 'libwebsockets-evlib-uv'"

# ---- 2. lintian
echo "== lintian $(basename "$deb")"
lint=$(lintian "$deb" 2>&1 | grep -v 'running with root privileges')
printf '%s\n' "$lint" | grep -E '^(W|I):' | sed 's/^/    /'
errors=$(printf '%s\n' "$lint" | grep -E '^E:')
[ -z "$errors" ]
ok $? "lintian reports no errors" "$errors"

# ---- 3. install
echo "== apt-get install $(basename "$deb")"
installed=1
DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "$deb" </dev/null >"$tmp/install.log" 2>&1
ok $? "apt-get install ./$(basename "$deb")" "$(tail -n 30 "$tmp/install.log")"
check "the package is installed" sh -c "dpkg-query -W -f='\${Status}' chatd | grep -qx 'install ok installed'"
pw=$(getent passwd chatd)
ok $? "system user chatd exists" "$pw"
uid=$(printf '%s' "$pw" | cut -d: -f3)
[ -n "$uid" ] && [ "$uid" -lt 1000 ]
ok $? "chatd is a system account (uid $uid)"
[ "$(printf '%s' "$pw" | cut -d: -f6)" = /var/lib/chatd ]
ok $? "chatd's home is /var/lib/chatd" "$pw"
case $(printf '%s' "$pw" | cut -d: -f7) in */nologin | */false) r=0 ;; *) r=1 ;; esac
ok $r "chatd has no login shell" "$pw"
check "group chatd exists" getent group chatd
[ "$(stat -c '%a %U %G' /var/lib/chatd 2>&1)" = "750 chatd chatd" ]
ok $? "/var/lib/chatd is 0750 chatd:chatd" "$(stat -c '%a %U %G' /var/lib/chatd 2>&1)"
[ "$(stat -c '%a %U %G' /etc/chatd/chatd.env 2>&1)" = "640 root chatd" ]
ok $? "/etc/chatd/chatd.env is 0640 root:chatd" "$(stat -c '%a %U %G' /etc/chatd/chatd.env 2>&1)"
check "/etc/chatd/chatd.env is a conffile" \
	sh -c "dpkg-query -W -f='\${Conffiles}\n' chatd | grep -q '^ /etc/chatd/chatd.env '"
check "chatd.env keeps the database in /var/lib/chatd" grep -qx 'DATABASE_URL=sqlite:/var/lib/chatd/chat.db' /etc/chatd/chatd.env
check "chatd.env puts the control socket in /run/chatd" grep -qx 'CONTROL_SOCKET=/run/chatd/control.sock' /etc/chatd/chatd.env
check "chatd.env sets no ADMIN_API_KEY (the operator's choice)" sh -c "! grep -q '^ADMIN_API_KEY=' /etc/chatd/chatd.env"
check "chatd.env.example is there too" test -f /etc/chatd/chatd.env.example
units=()
for u in chatd.service chat-api.service chat-api-activated.service chat-api.socket chat-sync.service \
	chat-sync-once.service chat-sync.timer; do
	check "unit /lib/systemd/system/$u" test -f "/lib/systemd/system/$u"
	units+=("/lib/systemd/system/$u")
done
check "chatd.service is enabled" test -L /etc/systemd/system/multi-user.target.wants/chatd.service
check "chat-api.service is not enabled (the operator picks it or chat-api.socket)" \
	test ! -e /etc/systemd/system/multi-user.target.wants/chat-api.service
check "the installed units pass systemd-analyze verify" sh -c \
	'out=$(systemd-analyze verify "$@" 2>&1); st=$?; printf "%s" "$out"; [ $st -eq 0 ] && [ -z "$out" ]' sh "${units[@]}"
# Exposure below 5.0 is "OK" (1.0 and up), "SAFE" or "PERFECT".
score=$(systemd-analyze security --offline=yes --no-pager /lib/systemd/system/chatd.service 2>&1 | tail -n 1)
printf '%s\n' "$score" | awk '{ for (i = 1; i < NF; i++) if ($i == "chatd.service:") exit !($(i + 1) < 5.0); exit 1 }'
ok $? "the installed chatd.service rates OK or better ($score)" "$score"
check "the installed CHAT_ENV_FILE of the units is /etc/chatd/chatd.env" \
	grep -qx 'Environment=CHAT_ENV_FILE=/etc/chatd/chatd.env' /lib/systemd/system/chatd.service

# ---- 4. the installed programs against the installed settings
cd / || die "cd /"
for p in chatd chat-api chat-sync chatctl; do
	check "$p --version" "/usr/bin/$p" --version
	check "$p --help" "/usr/bin/$p" --help
done
# /run/chatd as systemd's RuntimeDirectory= makes it for chatd.service.
if [ ! -d /run/chatd ]; then
	install -d -o chatd -g chatd -m 0755 /run/chatd && made_run=1
fi
db=/var/lib/chatd/pkgtest-$$.db
log=$tmp/chatd.log
: >"$log"
env -i PATH=/usr/bin:/bin LANG=C.UTF-8 CHAT_ENV_FILE=/etc/chatd/chatd.env ADMIN_API_KEY=pkgtest-key \
	DATABASE_URL="sqlite:$db" CHATD_LISTEN="unix:/run/chatd/pkgtest-$$.sock" \
	setpriv --reuid=chatd --regid=chatd --init-groups /usr/bin/chatd </dev/null >"$log" 2>&1 &
chatd_pid=$!
status_out=
r=1
for _ in $(seq 1 100); do
	kill -0 "$chatd_pid" 2>/dev/null || break
	if [ -S /run/chatd/control.sock ]; then
		status_out=$(env -i PATH=/usr/bin:/bin LANG=C.UTF-8 \
			setpriv --reuid=chatd --regid=chatd --init-groups /usr/bin/chatctl status 2>&1) && {
			r=0
			break
		}
	fi
	sleep 0.1
done
ok $r "chatd (user chatd, /etc/chatd/chatd.env) answers chatctl status on /run/chatd/control.sock" \
	"$status_out
$(cat "$log")"
[ "$r" -ne 0 ] || printf '%s\n' "$status_out" | sed 's/^/    /'
check "chatd created its database as user chatd" sh -c "[ \"\$(stat -c %U '$db')\" = chatd ]"
kill -TERM "$chatd_pid" 2>/dev/null
for _ in $(seq 1 100); do
	kill -0 "$chatd_pid" 2>/dev/null || break
	sleep 0.1
done
wait "$chatd_pid"
st=$?
chatd_pid=
ok "$st" "chatd stops on SIGTERM with status 0" "$(cat "$log")"
# The shipped settings leave TOKEN_SECRET unset (the operator's choice), and
# chatd says what that means; anything else is a fault of the package.
grep -E ': (warning|error):' "$log" | grep -vq 'warning: TOKEN_SECRET is not set'
[ $? -ne 0 ]
ok $? "chatd logged no error and no warning but TOKEN_SECRET's with the installed settings" "$(cat "$log")"
rm -f "$db" "$db-wal" "$db-shm"

# ---- 5. purge
echo "== apt-get purge chatd"
DEBIAN_FRONTEND=noninteractive apt-get purge -y chatd </dev/null >"$tmp/purge.log" 2>&1
ok $? "apt-get purge chatd" "$(tail -n 30 "$tmp/purge.log")"
installed=
check "purge removed the programs" test ! -e /usr/bin/chatd
check "purge removed /etc/chatd" test ! -e /etc/chatd
check "purge removed /var/lib/chatd" test ! -e /var/lib/chatd
check "purge removed the statoverride" sh -c '! dpkg-statoverride --list /etc/chatd/chatd.env'
check "purge removed the enablement link" test ! -L /etc/systemd/system/multi-user.target.wants/chatd.service
finish
