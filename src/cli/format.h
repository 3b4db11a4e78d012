/* What the container commands show, as docker shows it: times, durations,
 * sizes, ps's STATUS and COMMAND, log lines, events, stats cells, aligned
 * tables.  Pure functions of their arguments ("now" is one of them), so
 * that the unit tests pin the output down without an agent.
 */
#pragma once

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <time.h>

/* "2024-05-01T12:00:00[.fraction](Z|+02:00)" into *out.  0, or -1 when s is
 * not such a time (the API's "" for "never" included). */
int lm_parse_rfc3339(const char *s, struct timespec *out);
/* A time as the API and log lines write it: "2024-05-01T12:00:00.000000001Z". */
void lm_format_rfc3339(char *buf, size_t len, const struct timespec *t);

/* docker's human durations: "Less than a second", "1 second", "12 seconds",
 * "About a minute", "5 minutes", "About an hour", "7 hours", "3 days",
 * "2 weeks", "4 months", "2 years". */
void lm_human_duration(char *buf, size_t len, int64_t seconds);
/* "5 seconds ago" for an RFC 3339 time; "" when it is empty or not a time. */
void lm_format_ago(char *buf, size_t len, const char *rfc3339, time_t now);
/* ps's STATUS of a container object: "Up 3 minutes", "Exited (1) 2 seconds
 * ago", "Created", "Restarting (1) 5 seconds ago", "Lost". */
void lm_format_status(char *buf, size_t len, const json_t *container, time_t now);
/* The exit code of a container object or a wait answer ("exit_code",
 * "signal") as docker shows it: a death by signal N is 128+N. */
long long lm_container_exit_code(const json_t *container);
/* ps's COMMAND, quoted: the object's "command", else its spec's entrypoint
 * and cmd; with trunc, cut to 20 columns with "…" as docker does. */
void lm_format_command(char *buf, size_t len, const json_t *container, bool trunc);

/* Binary sizes as docker writes them: "512B", "1.5KiB", "12.34MiB", "64MiB". */
void lm_format_size(char *buf, size_t len, uint64_t bytes);

/* A --since/--until value into the RFC 3339 UTC time the API takes:
 * RFC 3339 itself, unix seconds ("1714560000", "1714560000.5"), or a Go-style
 * duration back from now ("10m", "1h30m", "2.5s", "300ms").  0, or -1 when
 * arg is none of those. */
int lm_time_arg(const char *arg, time_t now, char *buf, size_t len);

/* One CRI log line: "<time> <stdout|stderr> <P|F> <text>". */
struct lm_cri_entry {
	const char *time;
	size_t time_len;
	bool is_stderr;
	bool partial;  /* P: the text goes on in the stream's next entry */
	const char *text;
	size_t text_len;
};
/* 0, or -1 when line is not in that form. */
int lm_cri_parse(const char *line, size_t len, struct lm_cri_entry *e);

/* `lamina logs` output state: whether each stream (stdout, stderr) is in
 * the middle of a line that P entries left open. */
struct lm_log_printer {
	bool timestamps;  /* -t: each line starts with its first entry's time */
	bool open_line[2];
};
/* Writes one CRI line's text to out (stdout entries) or errout (stderr
 * entries), with a newline after F entries only; a line that is not CRI is
 * written to out as it is, with a newline.  0, or -1 when a write failed
 * (errno set). */
int lm_log_print(struct lm_log_printer *p, const char *line, size_t len, FILE *out, FILE *errout);

/* `lamina events`: "<time> container <type> <id12> (name=<name>, k=v, ...)"
 * with the attributes in key order.  Newly allocated; NULL when out of memory. */
char *lm_format_event(const json_t *event);

/* CPU % between two stats objects ("cpu_usage_ns", "read_at"), as docker
 * computes it (two busy cores: 200); cur's "cpu_percent" when they do not
 * tell (no prev, no times, a counter that went back). */
double lm_stats_cpu_percent_json(const json_t *prev, const json_t *cur);

/* The cells of a `lamina stats` row after CONTAINER ID and NAME.  A
 * "memory_limit" of 0 (unlimited) shows as host_mem. */
struct lm_stats_cells {
	char cpu[24], mem[64], mem_pct[24], pids[24];
};
void lm_format_stats_cells(const json_t *prev, const json_t *cur, uint64_t host_mem, struct lm_stats_cells *out);

/* Columns aligned like docker's tabwriter output: each column as wide as
 * its widest cell (counted in characters, not bytes) plus three spaces. */
struct lm_table;
struct lm_table *lm_table_new(size_t n_cols);
/* cells: n_cols strings, copied.  0, or -1 when out of memory. */
int lm_table_add(struct lm_table *t, const char *const *cells);
void lm_table_print(const struct lm_table *t, FILE *out);
void lm_table_free(struct lm_table *t);
