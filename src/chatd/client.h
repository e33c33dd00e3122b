/*
 * A WebSocket client of the "chatd" protocol from ESTABLISHED to CLOSED:
 * joining its room, reading and reassembling what it sends, acting on
 * each request (chat, CustomEvent, ban, unban, kick), handing messages to
 * the writer, and delivering what the writer stored. Service thread only.
 */
#ifndef CHATD_CLIENT_H
#define CHATD_CLIENT_H

#include <stddef.h>

#include "chatd.h"

/* Bytes of an oversize message read and dropped before its 1009 close. */
#define CLIENT_DISCARD_MAX (1024 * 1024)
/*
 * lws's keepalive hangup comes WS_IDLE_TIMEOUT_SECONDS after the last
 * pong; a close unasked for within this much of that is taken for it.
 */
#define CLIENT_HANGUP_SLACK_MS 1000

/* The lws callback of the "chatd" protocol (struct conn). */
int client_callback(
    struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in, size_t len);

#endif
