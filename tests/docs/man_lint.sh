#!/bin/sh
# Every man page is clean under `mandoc -T lint` (errors, warnings and style
# notes alike). Linted together from their folder, so that the pages'
# cross-references (.Xr) find each other. mandoc is a test dependency
# (contrib/quickstart.sh test installs it): without it this fails.
set -eu
dir="${abs_top_srcdir:-.}/docs/man"
if ! command -v mandoc >/dev/null 2>&1; then
	echo "mandoc is not installed (apt-get install mandoc, or contrib/quickstart.sh deps test)"
	echo "0 passed, 1 failed"
	exit 1
fi
cd "$dir"
pages="chatctl.1 chatd.env.5 chatd.8 chat-api.8 chat-sync.8"
for p in $pages; do
	[ -f "$p" ] || { echo "missing man page $p"; echo "0 passed, 1 failed"; exit 1; }
done
# shellcheck disable=SC2086
if ! out=$(mandoc -T lint $pages 2>&1) || [ -n "$out" ]; then
	printf '%s\n' "$out"
	echo "0 passed, 1 failed"
	exit 1
fi
# Each page names the others under SEE ALSO.
for p in $pages; do
	for other in chatctl.1 chatd.env.5 chatd.8 chat-api.8 chat-sync.8; do
		[ "$p" = "$other" ] && continue
		name=${other%.*}
		sect=${other##*.}
		if ! sed -n '/^\.Sh SEE ALSO/,$p' "$p" | grep -q "^\.Xr $name $sect"; then
			echo "$p: SEE ALSO lacks $name($sect)"
			echo "1 passed, 1 failed"
			exit 1
		fi
	done
done
echo "2 passed, 0 failed"
