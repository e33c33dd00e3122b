#!/bin/sh
# The settings list of chatd.env(5) is generated from the settings table in
# src/common/config.c (chat-api --config-man); this fails when the committed
# page and the table drift apart. Regenerate the part between the markers
# with that command's output.
set -eu
page="${abs_top_srcdir:-.}/docs/man/chatd.env.5"
api="${abs_top_builddir:-.}/src/api/chat-api"
expected=$("$api" --config-man)
actual=$(sed -n '/^\.\\" BEGIN SETTINGS/,/^\.\\" END SETTINGS/p' "$page" | sed '1d;$d')
if [ -z "$actual" ] || [ "$expected" != "$actual" ]; then
	echo "docs/man/chatd.env.5's settings differ from 'chat-api --config-man':"
	printf '%s\n' "$expected" > config_man.expected
	printf '%s\n' "$actual" | diff -u - config_man.expected || true
	rm -f config_man.expected
	echo "0 passed, 1 failed"
	exit 1
fi
echo "1 passed, 0 failed"
