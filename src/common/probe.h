/*
 * Start-up checks of the addresses a daemon is about to listen on, so that
 * a port in use or a socket folder that is missing or not writable is
 * reported in one line naming the setting, the address and the system's
 * reason, before a library (libwebsockets) tries and reports it in its own
 * terms. Each probe binds a socket and closes it again at once.
 */
#ifndef CHAT_PROBE_H
#define CHAT_PROBE_H

/*
 * Binds host:port (SO_REUSEADDR, as a listener does). 0 if it can be
 * bound; else -1 with *cause "SETTING HOST:PORT: cannot listen: REASON"
 * (setting names the setting the address came from, spec is its value).
 */
int probe_tcp(const char *setting, const char *spec, const char *host, int port, char **cause);

/*
 * Binds a Unix socket at path and removes it again: 0 if the folder lets
 * us create it; else -1 with *cause from probe_unix_cause(). path must not
 * exist (remove a stale socket first).
 */
int probe_unix(const char *setting, const char *path, char **cause);

/* "SETTING PATH: cannot create the socket in FOLDER: REASON" for errno err. */
char *probe_unix_cause(const char *setting, const char *path, int err);

#endif
