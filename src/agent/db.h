/* The agent's persistent state: containers, their exit records and an event
 * log, in one SQLite database (e.g. /var/lib/lamina/agent.db, mode 0600).
 *
 * The agent may be killed at any moment and must come back knowing
 * everything, so every call that changes something has committed when it
 * returns (or, inside lm_db_begin/lm_db_commit, when the commit returns).
 * The journal is WAL with synchronous=NORMAL: a committed change survives the
 * death of the process; a power loss may take back the last few commits but
 * never leaves the file inconsistent.
 *
 * The agent is the only writer.  A handle belongs to one thread at a time
 * (the agent's event loop); it must not be carried across fork().
 *
 * Strings in the structs are malloc'd by the functions that fill them and
 * freed by the matching *_free.  Inputs are only read.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/error.h"

/* The schema this build writes and understands (the database's user_version). */
#define LM_DB_SCHEMA_VERSION 1

struct lm_db;

/* Opens or creates (0600) the database at path and brings its schema up to
 * LM_DB_SCHEMA_VERSION.  A file that is not a lamina database (not SQLite,
 * or another program's SQLite file) fails with EINVAL; one written by a
 * newer lamina fails with ENOTSUP.  Either way its content stays as it was. */
int lm_db_open(const char *path, struct lm_db **out, struct lm_error *err);
/* Closes; NULL is allowed.  An open transaction is rolled back. */
void lm_db_close(struct lm_db *db);

/* --- containers --- */

struct lm_db_container {
	char *id;       /* 64 lowercase hex chars (required) */
	char *name;     /* unique (required, non-empty) */
	char *image;    /* the reference as the user wrote it, or NULL */
	char *image_id; /* sha256:... of the image config, or NULL */
	char *spec;     /* JSON text: the create request as the agent normalised it, or NULL */
	/* "created", "running", "exited", "lost", "removing", ... (required;
	 * free text to the database) */
	char *status;
	int64_t created_at, started_at, finished_at; /* unix time in ns, 0 = never */
	int exit_code;   /* -1 = none yet */
	int exit_signal; /* 0 = none */
	bool oom_killed;
	int restart_count;
	bool user_stopped;      /* stopped by a user: restart policies other than always do not apply */
	int64_t monitor_pid;    /* 0 = none */
	uint64_t monitor_start; /* /proc start time of the monitor, guards pid reuse */
	uint64_t log_dropped;
	char *error; /* last failure message, or NULL */
};

/* Frees the members (and NULLs them), not c itself. */
void lm_db_container_free(struct lm_db_container *c);
/* EEXIST when the id or the name is taken, with a message naming which (and,
 * for a name, its owner); EINVAL when a required field is missing or the id
 * is malformed.  Nothing is written on failure. */
int lm_db_container_insert(struct lm_db *db, const struct lm_db_container *c, struct lm_error *err);
/* Replaces every column of the row whose id is c->id (a rename included).
 * ENOENT when there is none; EEXIST when the new name belongs to another. */
int lm_db_container_update(struct lm_db *db, const struct lm_db_container *c, struct lm_error *err);
/* Looks up by docker's rule: exact id, then exact name, then a unique id
 * prefix of at least 3 chars.  ENOENT ("no such container: X") when nothing
 * matches; EINVAL when a prefix matches several.  *out is written only on
 * success (free it with lm_db_container_free). */
int lm_db_container_get(struct lm_db *db, const char *ref, struct lm_db_container *out, struct lm_error *err);
/* All containers, oldest created first (ties: insertion order).  *v is a
 * malloc'd array of *n (NULL when empty). */
int lm_db_container_list(struct lm_db *db, struct lm_db_container **v, size_t *n, struct lm_error *err);
void lm_db_container_list_free(struct lm_db_container *v, size_t n);
/* By full id.  ENOENT when missing.  The container's events stay: they are history. */
int lm_db_container_delete(struct lm_db *db, const char *id, struct lm_error *err);

/* --- events --- */

/* An append-only log.  seq increases monotonically and is never reused, even
 * after trimming (a rolled-back event was never seen, so its seq may be). */
struct lm_db_event {
	int64_t seq;          /* set by lm_db_event_add; ignored on input */
	int64_t time;         /* unix ns; 0 on input means now */
	char *container_id;   /* or NULL */
	char *container_name; /* or NULL */
	/* "create", "start", "die", "oom", "restart", "stop", "kill", "destroy",
	 * "lost", "adopt", ... (required) */
	char *type;
	char *attrs; /* JSON object text, or NULL (not checked here) */
};

/* Appends e; *seq_out (may be NULL) receives its seq. */
int lm_db_event_add(struct lm_db *db, const struct lm_db_event *e, int64_t *seq_out, struct lm_error *err);
/* Events with seq > after_seq, oldest first, at most limit (0 = no limit).
 * *v is a malloc'd array of *n (NULL when empty). */
int lm_db_events_since(struct lm_db *db, int64_t after_seq, size_t limit, struct lm_db_event **v, size_t *n,
		       struct lm_error *err);
void lm_db_events_free(struct lm_db_event *v, size_t n);
/* Keeps the table bounded: deletes all but the newest keep events. */
int lm_db_events_trim(struct lm_db *db, size_t keep, struct lm_error *err);

/* --- transactions --- */

/* For a multi-step change that must be all-or-nothing.  begin takes the write
 * lock at once (waiting up to 5 s, then EBUSY), so the steps in between
 * cannot fail for lack of it.  Transactions do not nest (EINVAL).  When
 * commit fails, call lm_db_rollback: the transaction may still be open
 * (SQLite ends it on its own only for some errors).  lm_db_rollback without
 * a transaction does nothing. */
int lm_db_begin(struct lm_db *db, struct lm_error *err);
int lm_db_commit(struct lm_db *db, struct lm_error *err);
void lm_db_rollback(struct lm_db *db);
