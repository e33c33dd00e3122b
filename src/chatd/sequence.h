/*
 * A room's messages, delivered to its members in sequence order. With
 * one node, the writer commits in order and every message is next in
 * line. In a cluster, the room's messages are committed by several nodes
 * and reach this one over the bus in any order, or not at all: a message
 * that arrives ahead of a missing one is held, and after
 * CLUSTER_GAP_WAIT_SECS the missing ones are read from the database,
 * where they are (a node publishes only what it committed, and a seq is
 * taken only inside the transaction that commits it, so every seq below
 * a committed one is committed too). So a lost publish costs latency,
 * never a message or the order. Service thread only.
 */
#ifndef CHATD_SEQUENCE_H
#define CHATD_SEQUENCE_H

#include <stdint.h>

struct chatd;
struct room;

/* A message ahead of a missing one. */
struct sequence_held {
	struct sequence_held *next; /* by seq */
	int64_t seq;
	int kind; /* DB_MESSAGE_CHAT or DB_MESSAGE_CUSTOM */
	int remote;
	char *user_id; /* NULL: the operator */
	char *json; /* the frame's text */
};

/*
 * One committed message of r: delivered now if it is next, held if it is
 * early, dropped if it was delivered already. json is the frame's text
 * (copied if held). remote: committed by another node (its sender's post
 * counts toward this node's rate limit too).
 */
void sequence_offer(
    struct room *r, int64_t seq, int kind, const char *user_id, const char *json, int remote);
/*
 * Delivers what the database has past r's last seq (the bus was down).
 * Returns -1 on a database error (logged).
 */
int sequence_catch_up(struct room *r);
/*
 * Takes r's last seq from the database without delivering anything: the
 * room gets its first member here, and while it had none this node did
 * not follow its messages closely (the welcome's last_seq must be the
 * room's). Returns -1 on a database error (logged).
 */
int sequence_refresh(struct room *r);
/* Reads what is missing before the first held message now (the gap timer's work). */
void sequence_gap_timer(struct room *r);
/* Frees the held messages (room closed, no members, exit). */
void sequence_clear(struct room *r);
/* sequence_clear() of every room (exit, before the rooms' timers close). */
void sequence_clear_all(struct chatd *cd);

#endif
