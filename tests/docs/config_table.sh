#!/bin/sh
# The README's configuration table is generated from the settings table in
# src/common/config.c; this fails when the two drift apart.
set -eu
readme="${abs_top_srcdir:-.}/README.md"
api="${abs_top_builddir:-.}/src/api/chat-api"
expected=$("$api" --config-table)
actual=$(sed -n '/<!-- BEGIN CONFIG TABLE/,/<!-- END CONFIG TABLE/p' "$readme" | sed '1d;$d')
if [ "$expected" != "$actual" ]; then
	echo "README.md's configuration table differs from 'chat-api --config-table':"
	printf '%s\n' "$expected" > config_table.expected
	printf '%s\n' "$actual" | diff -u - config_table.expected || true
	rm -f config_table.expected
	echo "0 passed, 1 failed"
	exit 1
fi
# every seed variable of the original README is in the table
for key in DATABASE_URL BIND_ADDRESS ADMIN_API_KEY MAX_CONNECTIONS DATA_CALLBACK_URL \
	ROOM_EVENT_CALLBACK_URL CHAT_HISTORY_CALLBACK_URL SESSION_HISTORY_CALLBACK_URL \
	PERIODIC_SYNC_CALLBACK_URL CHAT_HISTORY_BATCH_SIZE SESSION_HISTORY_BATCH_SIZE \
	CHAT_HISTORY_BATCH_INTERVAL_SECONDS SESSION_HISTORY_BATCH_INTERVAL_SECONDS \
	CALLBACK_MAX_RETRIES CALLBACK_RETRY_DELAY_SECONDS CALLBACK_TIMEOUT_SECONDS \
	SYNC_INTERVAL_SECONDS USER_MESSAGE_INTERVAL_SECS; do
	if ! printf '%s\n' "$expected" | grep -q "^| \`$key\` (seed)"; then
		echo "seed variable $key missing from the settings table"
		echo "1 passed, 1 failed"
		exit 1
	fi
done
echo "2 passed, 0 failed"
