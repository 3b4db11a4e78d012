/* Per-container log files in the Kubernetes CRI log format.
 *
 * One entry per line: "<RFC3339Nano UTC time> <stdout|stderr> <P|F> <content>\n".
 * F ends a line of output (its newline is the entry's own); P is a chunk of a
 * line that goes on in a later entry, or that the stream ended without a
 * newline.  The container's monitor writes the file, the agent reads it, so
 * the two only meet through the file system: the writer puts each entry in
 * one write() and rotates by renaming (path -> path.1 -> path.2 ...), and the
 * reader tells files apart by inode, never by name, to follow a rotation
 * without skipping or repeating an entry.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "util/error.h"

enum lm_log_stream { LM_LOG_STDOUT, LM_LOG_STDERR };

#define LM_LOG_DEFAULT_MAX_SIZE (10u << 20)   /* per file */
#define LM_LOG_DEFAULT_MAX_FILES 5            /* current + 4 rotated */
#define LM_LOG_MAX_FILES_LIMIT 1000           /* larger max_files is an error */
#define LM_LOG_LINE_MAX 16384                 /* longer lines are split into P chunks */
/* Room for lm_log_format_time's longest answer and its NUL. */
#define LM_LOG_TIME_MAX 32

struct lm_log_limits {
	uint64_t max_size;    /* 0 = LM_LOG_DEFAULT_MAX_SIZE */
	unsigned max_files;   /* 0 = LM_LOG_DEFAULT_MAX_FILES; 1 = no rotated files kept */
};

/* ------------------------------------------------------------------ writing */

struct lm_log_writer;

/* Open (append, create 0640) path; existing content is kept (a restarted
 * container appends).  lim may be NULL (defaults).  A file left ending in half
 * an entry (a crash mid-write) gets its next entry on a fresh line. */
int lm_log_writer_open(const char *path, const struct lm_log_limits *lim,
		       struct lm_log_writer **out, struct lm_error *err);
/* Bytes as read from a container's pipe: complete lines are written as F
 * entries stamped with the current CLOCK_REALTIME; an incomplete tail is
 * buffered per stream until its newline arrives; a line longer than
 * LM_LOG_LINE_MAX is written in P chunks of LM_LOG_LINE_MAX bytes.  Never
 * blocks for long and never fails: a write error (ENOSPC, EDQUOT, EIO, ...)
 * drops that entry and counts it; writes resume when they succeed again. */
void lm_log_writer_feed(struct lm_log_writer *w, enum lm_log_stream s, const char *buf, size_t len);
/* The stream ended (EOF on its pipe): a buffered partial line is written as a P entry. */
void lm_log_writer_end(struct lm_log_writer *w, enum lm_log_stream s);
/* Entries dropped so far (write errors). */
uint64_t lm_log_writer_dropped(const struct lm_log_writer *w);
/* Writes what is still buffered (as lm_log_writer_end on both streams), then
 * closes.  NULL is fine. */
void lm_log_writer_close(struct lm_log_writer *w);

/* ------------------------------------------------------------------ reading */

struct lm_log_entry {
	struct timespec ts;
	enum lm_log_stream stream;
	bool partial;        /* P: the line goes on in the next entry of this stream */
	const char *msg;     /* raw bytes, not NUL-terminated, without the newline */
	size_t len;
};

/* Parse one line (without its '\n'); -1 with EINVAL in err for a malformed
 * one.  e->msg points into line. */
int lm_log_parse_line(const char *line, size_t len, struct lm_log_entry *e, struct lm_error *err);

struct lm_log_reader;

/* Open for reading from the oldest rotated file (path.{max_files-1} ...
 * path.1, then path).  max_files as the writer's (0 = default).  ENOENT when
 * none of them exists. */
int lm_log_reader_open(const char *path, unsigned max_files, struct lm_log_reader **out,
		       struct lm_error *err);
/* 1: *e filled (valid until the next call); 0: no complete entry available
 * right now (at the end of the newest file: a follower waits and calls
 * again); <0 error.  Follows rotation: at the end of the file it reads, if
 * path now names a different inode (the writer rotated), it moves on to the
 * next file in order without skipping or repeating entries (unless the
 * writer rotated the file away entirely before it was read: then reading
 * goes on at the oldest file left).  A malformed line is skipped and
 * counted; an incomplete last line (no '\n' yet) is not returned until it is
 * complete. */
int lm_log_reader_next(struct lm_log_reader *r, struct lm_log_entry *e, struct lm_error *err);
/* Malformed lines skipped so far (including a rotated file's unfinished last line). */
uint64_t lm_log_reader_skipped(const struct lm_log_reader *r);
/* NULL is fine. */
void lm_log_reader_close(struct lm_log_reader *r);

/* ------------------------------------------------------------------- times */

/* "2026-11-29T19:12:24.123456789Z": always UTC and nine fraction digits, so
 * that entries sort as text.  Returns the length (without the NUL), or -1
 * when buf is too small (LM_LOG_TIME_MAX is enough) or the time has no
 * four-digit year or a tv_nsec out of range. */
int lm_log_format_time(const struct timespec *ts, char *buf, size_t len);
/* RFC 3339: "YYYY-MM-DDThh:mm:ss[.fraction](Z|+hh:mm|-hh:mm)" ('t' and 'z'
 * too); fraction digits past the ninth are ignored.  -1 with EINVAL in err
 * for anything else. */
int lm_log_parse_time(const char *s, struct timespec *ts, struct lm_error *err);
/* A --since value: RFC 3339, a unix time in seconds with an optional
 * fraction ("1700000000.5"), or a duration before now: integers or decimals
 * each with a unit of h, m, s, ms, us or ns ("10s", "1h30m", "1.5h").  A bare
 * number is a unix time ("10" is 1970, not ten seconds ago).  -1 with EINVAL
 * in err for anything else. */
int lm_log_parse_since(const char *s, const struct timespec *now, struct timespec *out,
		       struct lm_error *err);
