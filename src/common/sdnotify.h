/*
 * The systemd service notification protocol (sd_notify(3)), without
 * linking libsystemd: one datagram per state change to the socket named by
 * NOTIFY_SOCKET. Units of Type=notify wait for READY=1 before they count
 * as started (so dependants start after the sockets listen), see
 * STOPPING=1 on SIGTERM, and with WatchdogSec= expect WATCHDOG=1 at least
 * that often or restart the service. Outside systemd (no NOTIFY_SOCKET)
 * every call does nothing.
 */
#ifndef CHAT_SDNOTIFY_H
#define CHAT_SDNOTIFY_H

#include <stdint.h>

/*
 * Sends state ("READY=1", "STOPPING=1", "WATCHDOG=1", "STATUS=...") to the
 * service manager. 0 if sent or not under systemd; -1 with errno if the
 * socket named is unusable (callers log it once and go on: a missed
 * notification must never stop the service).
 */
int sdnotify_send(const char *state);

/*
 * sdnotify_send() for a program's one notifying thread: a failure is
 * logged once (a warning), never fatal.
 */
void sdnotify_notify(const char *state);

/*
 * How often to send WATCHDOG=1, in ms: half of WATCHDOG_USEC when it is
 * set for this process (WATCHDOG_PID, when present, names us), else 0.
 */
int64_t sdnotify_watchdog_interval_ms(void);

#endif
