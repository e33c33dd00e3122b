/*
 * The check lws 4.1.6 leaves out: RFC 6455 section 5.1 says a server MUST
 * close the connection on a client frame that is not masked, and lws takes
 * such frames as if they were (lib/roles/ws/ops-ws.c reads the mask bit
 * into this_frame_masked and never looks at it; its callbacks and API do
 * not tell). So chatd watches the bytes lws reads from each WebSocket
 * client: chatd's own recv() stands in for the C library's (the dynamic
 * linker binds lws's calls to the executable's definition first), reads
 * with the real one, and runs the frame headers of watched sockets
 * through a small state machine that never changes the data. It starts at
 * accept, skips the HTTP request up to its blank line, then follows frame
 * lengths; a frame without the mask bit marks the socket. chatd then closes
 * that connection with 1002 and ignores what it sent. A request whose
 * head does not end in CRLF CRLF is never checked (it fails open). Service
 * thread only (no other thread reads sockets).
 */
#ifndef CHATD_RXGUARD_H
#define CHATD_RXGUARD_H

#include <stddef.h>

/* Sockets numbered below max_fd can be watched; at start, once. */
void rxguard_init(size_t max_fd);
void rxguard_free(void);
/* A new client socket (or one back to HTTP after an answer): watch it. */
void rxguard_watch(int fd);
/* The socket's connection joined: owner is what rxguard_take() returns. */
void rxguard_bind(int fd, void *owner);
/* Stop watching fd (closed). */
void rxguard_forget(int fd);
/* NULL, or what the client on fd did wrong. */
const char *rxguard_violation(int fd);
/* The owner of a socket newly marked, one per call; NULL when none. */
void *rxguard_take(void);

#endif
