/* The agent's HTTP/JSON API (docs/api.md) on libmicrohttpd, driven from the
 * agent's own epoll loop (MHD's epoll fd is one of its sources).
 *
 * Requests that wait (wait, stop, restart) and streams with nothing to send
 * yet (logs --follow, events, stats) suspend their connection; anything that
 * could change their answer (a container event, a log write seen through
 * inotify, the stats tick) resumes every suspended connection, and each
 * looks again and suspends again if it still has nothing.  There are few
 * such connections, and this keeps the waking rule impossible to get wrong.
 */
#include <errno.h>
#include <fcntl.h>
#include <microhttpd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/inotify.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "agent/agent.h"
#include "agent/relay.h"
#include "image/passwd.h"
#include "monitor/logfile.h"
#include "runtime/cgroup.h"
#include "runtime/spec.h"
#include "runtime/stats.h"
#include "util/log.h"

#define BODY_MAX (1u << 20)

/* Connections suspended until something changes. */
struct suspended {
	struct MHD_Connection *conn;
	struct suspended *next;
};
static struct suspended *suspended_list;

static void suspend(struct MHD_Connection *conn)
{
	struct suspended *s = malloc(sizeof(*s));
	if (!s)
		return; /* not suspended: MHD calls again, which only costs a spin */
	s->conn = conn;
	s->next = suspended_list;
	suspended_list = s;
	MHD_suspend_connection(conn);
}

void agent_api_wake(struct agent *a)
{
	(void)a;
	while (suspended_list) {
		struct suspended *s = suspended_list;
		suspended_list = s->next;
		MHD_resume_connection(s->conn);
		free(s);
	}
}

/* --- per-request state --- */

enum req_kind { REQ_PLAIN, REQ_WAIT, REQ_STOP, REQ_RESTART };

struct req {
	char *body;
	size_t len;
	bool too_large;
	bool checked;      /* peer credentials */
	bool acted;        /* stop/restart: the signal was sent */
	enum req_kind kind;
	char id[65];
	int mon_fd;        /* an attach/exec session opened with the monitor, until the upgrade */
};

static void request_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
			      enum MHD_RequestTerminationCode toe)
{
	struct req *r = *con_cls;
	if (r) {
		if (r->mon_fd >= 0)
			close(r->mon_fd);
		free(r->body);
		free(r);
	}
	*con_cls = NULL;
}

static enum MHD_Result send_json(struct MHD_Connection *conn, unsigned status, json_t *body)
{
	char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
	json_decref(body);
	size_t len = text ? strlen(text) : 0;
	struct MHD_Response *resp = MHD_create_response_from_buffer(len, text, MHD_RESPMEM_MUST_FREE);
	if (!resp) {
		free(text);
		return MHD_NO;
	}
	if (text)
		MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
	enum MHD_Result rc = MHD_queue_response(conn, status, resp);
	MHD_destroy_response(resp);
	return rc;
}

static enum MHD_Result send_error(struct MHD_Connection *conn, unsigned status, const char *kind, int code,
				  const char *msg)
{
	return send_json(conn, status, json_pack("{s:s, s:s, s:i}", "message", msg, "code", kind, "errno", code));
}

static enum MHD_Result send_lm_error(struct MHD_Connection *conn, const struct lm_error *err)
{
	switch (err->code) {
	case ENOENT:
		return send_error(conn, MHD_HTTP_NOT_FOUND, "not_found", err->code, err->msg);
	case EEXIST:
	case EBUSY:
		return send_error(conn, MHD_HTTP_CONFLICT, "conflict", err->code, err->msg);
	case EINVAL:
	case ENOTUNIQ:
		return send_error(conn, MHD_HTTP_BAD_REQUEST, "bad_request", err->code, err->msg);
	case ENOTSUP:
		return send_error(conn, MHD_HTTP_NOT_IMPLEMENTED, "not_implemented", err->code, err->msg);
	default:
		return send_error(conn, MHD_HTTP_INTERNAL_SERVER_ERROR, "internal", err->code, err->msg);
	}
}

/* A container that could not start (its command is missing, a mount
 * failed, ...) is the request's fault, not a missing route: 400, with the
 * errno for the CLI's exit code (127 for a missing command, as docker). */
static enum MHD_Result start_failed(struct MHD_Connection *conn, const struct lm_error *err)
{
	if (err->code == EBUSY)
		return send_lm_error(conn, err);
	return send_error(conn, MHD_HTTP_BAD_REQUEST, "start_failed", err->code, err->msg);
}

static const char *arg(struct MHD_Connection *conn, const char *key)
{
	return MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, key);
}

static bool arg_true(struct MHD_Connection *conn, const char *key)
{
	const char *v = arg(conn, key);
	return v && (strcmp(v, "1") == 0 || strcmp(v, "true") == 0 || strcmp(v, "") == 0);
}

/* "t" as seconds, -1 when absent; -2 when malformed. */
static int arg_seconds(struct MHD_Connection *conn, const char *key)
{
	const char *v = arg(conn, key);
	if (!v)
		return -1;
	char *end;
	long n = strtol(v, &end, 10);
	return *v && !*end && n >= 0 && n <= 86400 ? (int)n : -2;
}

/* --- streams: logs, events, stats --- */

enum stream_kind { STREAM_LOGS, STREAM_EVENTS, STREAM_STATS };

struct stream {
	struct agent *a;
	struct MHD_Connection *conn;
	enum stream_kind kind;
	char id[65];
	bool follow;
	char *pend;
	size_t pend_len, pend_off;
	/* logs */
	struct lm_log_reader *reader;
	bool want_out, want_err, has_since, has_until;
	struct timespec since, until;
	uint64_t skip_lines;  /* --tail: whole lines of the wanted streams still to skip */
	bool last_look;
	/* events */
	int64_t seq;
	/* stats */
	char *cgroup;
	struct lm_stats prev;
	bool have_prev;
};

static void stream_free(void *cls)
{
	struct stream *s = cls;
	lm_log_reader_close(s->reader);
	free(s->pend);
	free(s->cgroup);
	free(s);
}

static void stream_set(struct stream *s, char *text, size_t len)
{
	free(s->pend);
	s->pend = text;
	s->pend_len = len;
	s->pend_off = 0;
}

static bool ts_before(const struct timespec *x, const struct timespec *y)
{
	return x->tv_sec < y->tv_sec || (x->tv_sec == y->tv_sec && x->tv_nsec < y->tv_nsec);
}

/* Next log entry that passes the filters, formatted; 1, 0 (none now), <0. */
static int next_log_line(struct stream *s)
{
	struct lm_log_entry e;
	struct lm_error err;
	for (;;) {
		int r = lm_log_reader_next(s->reader, &e, &err);
		if (r <= 0)
			return r;
		if ((e.stream == LM_LOG_STDOUT && !s->want_out) || (e.stream == LM_LOG_STDERR && !s->want_err))
			continue;
		if (s->skip_lines) {
			/* a line's partial chunks go with it */
			if (!e.partial)
				s->skip_lines--;
			continue;
		}
		if (s->has_since && ts_before(&e.ts, &s->since))
			continue;
		if (s->has_until && ts_before(&s->until, &e.ts))
			continue;
		char ts[64];
		lm_log_format_time(&e.ts, ts, sizeof(ts));
		size_t len = strlen(ts) + e.len + 16;
		char *line = malloc(len);
		if (!line)
			return -1;
		int n = snprintf(line, len, "%s %s %c ", ts, e.stream == LM_LOG_STDOUT ? "stdout" : "stderr",
				 e.partial ? 'P' : 'F');
		memcpy(line + n, e.msg, e.len);
		line[n + e.len] = '\n';
		stream_set(s, line, (size_t)n + e.len + 1);
		return 1;
	}
}

static bool ctr_live(struct agent *a, const char *id)
{
	struct lm_error err;
	struct ctr *c = agent_find(a, id, &err);
	return c && (agent_running(c) || strcmp(c->rec.status, "restarting") == 0);
}

static int next_event_lines(struct stream *s)
{
	struct lm_db_event *v = NULL;
	size_t n = 0;
	struct lm_error err;
	if (lm_db_events_since(s->a->db, s->seq, 100, &v, &n, &err) < 0)
		return -1;
	if (n == 0)
		return 0;
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	for (size_t i = 0; f && i < n; i++) {
		json_t *attrs = v[i].attrs ? json_loads(v[i].attrs, 0, NULL) : NULL;
		json_t *o = json_pack("{s:I, s:I, s:s?, s:s?, s:s, s:o}", "seq", (json_int_t)v[i].seq, "time",
				      (json_int_t)v[i].time, "id", v[i].container_id, "name", v[i].container_name,
				      "type", v[i].type, "attrs", attrs ? attrs : json_object());
		char *t = json_dumps(o, JSON_COMPACT);
		if (t)
			fprintf(f, "%s\n", t);
		free(t);
		json_decref(o);
		s->seq = v[i].seq;
	}
	lm_db_events_free(v, n);
	if (!f)
		return -1;
	fclose(f);
	stream_set(s, buf, len);
	return 1;
}

static json_t *stats_json(const struct stream *s, const struct lm_stats *st, const struct lm_stats *prev)
{
	char ts[64];
	lm_log_format_time(&st->read_at, ts, sizeof(ts));
	return json_pack("{s:s, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:s, s:f}", "id", s->id, "cpu_usage_ns",
			 (json_int_t)st->cpu_usage_ns, "memory_usage", (json_int_t)st->memory_usage,
			 "memory_limit", (json_int_t)st->memory_limit, "pids_current", (json_int_t)st->pids_current,
			 "pids_limit", (json_int_t)st->pids_limit, "oom_kills", (json_int_t)st->oom_kills,
			 "io_read_bytes", (json_int_t)st->io_read_bytes, "io_write_bytes",
			 (json_int_t)st->io_write_bytes, "read_at", ts, "cpu_percent",
			 prev ? lm_stats_cpu_percent(prev, st) : 0.0);
}

static int next_stats_line(struct stream *s)
{
	struct lm_stats st;
	struct lm_error err;
	if (s->have_prev) {
		struct timespec now;
		clock_gettime(CLOCK_REALTIME, &now);
		int64_t since = (int64_t)(now.tv_sec - s->prev.read_at.tv_sec) * 1000000000 +
				(now.tv_nsec - s->prev.read_at.tv_nsec);
		if (since < 990000000) {
			int64_t due = lm_mono_ns() + (1000000000 - since);
			if (!s->a->stats_tick_at || due < s->a->stats_tick_at)
				s->a->stats_tick_at = due;
			return 0;
		}
	}
	if (lm_stats_read(s->cgroup, &st, &err) < 0)
		return -1;
	json_t *o = stats_json(s, &st, s->have_prev ? &s->prev : NULL);
	char *t = json_dumps(o, JSON_COMPACT);
	json_decref(o);
	if (!t)
		return -1;
	size_t len = strlen(t);
	char *line = realloc(t, len + 2);
	if (!line) {
		free(t);
		return -1;
	}
	line[len] = '\n';
	line[len + 1] = '\0';
	stream_set(s, line, len + 1);
	s->prev = st;
	s->have_prev = true;
	return 1;
}

static ssize_t stream_read(void *cls, uint64_t pos, char *buf, size_t max)
{
	struct stream *s = cls;
	for (;;) {
		if (s->pend_off < s->pend_len) {
			size_t n = s->pend_len - s->pend_off < max ? s->pend_len - s->pend_off : max;
			memcpy(buf, s->pend + s->pend_off, n);
			s->pend_off += n;
			return (ssize_t)n;
		}
		int r;
		switch (s->kind) {
		case STREAM_LOGS:
			r = next_log_line(s);
			break;
		case STREAM_EVENTS:
			r = next_event_lines(s);
			break;
		default:
			r = ctr_live(s->a, s->id) ? next_stats_line(s) : -2;
			if (r == -2)
				return MHD_CONTENT_READER_END_OF_STREAM;
			break;
		}
		if (r < 0)
			return MHD_CONTENT_READER_END_WITH_ERROR;
		if (r > 0)
			continue;
		if (!s->follow)
			return MHD_CONTENT_READER_END_OF_STREAM;
		if (s->kind == STREAM_LOGS && !ctr_live(s->a, s->id)) {
			/* the monitor wrote everything before it exited: one more look */
			if (s->last_look)
				return MHD_CONTENT_READER_END_OF_STREAM;
			s->last_look = true;
			continue;
		}
		suspend(s->conn);
		return 0;
	}
}

static enum MHD_Result send_stream(struct MHD_Connection *conn, struct stream *s, const char *type)
{
	struct MHD_Response *resp = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 64 * 1024, stream_read, s,
								      stream_free);
	if (!resp) {
		stream_free(s);
		return MHD_NO;
	}
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, type);
	enum MHD_Result rc = MHD_queue_response(conn, MHD_HTTP_OK, resp);
	MHD_destroy_response(resp);
	return rc;
}

static int parse_time_arg(struct MHD_Connection *conn, const char *key, struct timespec *out, bool *has,
			  struct lm_error *err)
{
	const char *v = arg(conn, key);
	if (!v || !*v)
		return 0;
	struct timespec now;
	clock_gettime(CLOCK_REALTIME, &now);
	if (lm_log_parse_since(v, &now, out, err) < 0)
		return lm_error_prefix(err, "%s", key);
	*has = true;
	return 0;
}

static enum MHD_Result logs(struct agent *a, struct MHD_Connection *conn, struct ctr *c)
{
	struct lm_error err;
	struct stream *s = calloc(1, sizeof(*s));
	if (!s)
		return MHD_NO;
	s->a = a;
	s->conn = conn;
	s->kind = STREAM_LOGS;
	snprintf(s->id, sizeof(s->id), "%s", c->rec.id);
	s->follow = arg_true(conn, "follow");
	const char *o = arg(conn, "stdout"), *e = arg(conn, "stderr");
	s->want_out = !o || strcmp(o, "0") != 0;
	s->want_err = !e || strcmp(e, "0") != 0;
	const char *tail = arg(conn, "tail");
	char *path = agent_log_path(a, c);
	long tail_n = -1;
	if (tail && strcmp(tail, "all") != 0) {
		char *end;
		tail_n = strtol(tail, &end, 10);
		if (!*tail || *end || tail_n < 0) {
			free(path);
			stream_free(s);
			return send_error(conn, MHD_HTTP_BAD_REQUEST, "bad_request", EINVAL,
					  "tail: expected a number or all");
		}
	}
	if (parse_time_arg(conn, "since", &s->since, &s->has_since, &err) < 0 ||
	    parse_time_arg(conn, "until", &s->until, &s->has_until, &err) < 0) {
		free(path);
		stream_free(s);
		return send_lm_error(conn, &err);
	}
	if (tail_n >= 0) {
		/* count the lines once; the stream then skips all but the last tail_n */
		struct lm_log_reader *r;
		struct lm_log_entry le;
		uint64_t total = 0;
		if (lm_log_reader_open(path, a->logs.max_files, &r, &err) == 0) {
			while (lm_log_reader_next(r, &le, &err) == 1)
				if ((le.stream == LM_LOG_STDOUT ? s->want_out : s->want_err) && !le.partial)
					total++;
			lm_log_reader_close(r);
		}
		s->skip_lines = total > (uint64_t)tail_n ? total - (uint64_t)tail_n : 0;
	}
	int rc = lm_log_reader_open(path, a->logs.max_files, &s->reader, &err);
	if (rc < 0 && err.code == ENOENT) {
		/* never started: nothing written yet */
		free(path);
		stream_free(s);
		struct MHD_Response *resp = MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT);
		if (!resp)
			return MHD_NO;
		MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "text/plain; charset=utf-8");
		enum MHD_Result ret = MHD_queue_response(conn, MHD_HTTP_OK, resp);
		MHD_destroy_response(resp);
		return ret;
	}
	if (rc == 0 && s->follow) {
		char *dir = strdup(path);
		char *slash = dir ? strrchr(dir, '/') : NULL;
		if (slash) {
			*slash = '\0';
			inotify_add_watch(a->inotifyfd, dir, IN_MODIFY | IN_CREATE | IN_MOVED_TO | IN_CLOSE_WRITE);
		}
		free(dir);
	}
	free(path);
	if (rc < 0) {
		stream_free(s);
		return send_lm_error(conn, &err);
	}
	return send_stream(conn, s, "text/plain; charset=utf-8");
}

static enum MHD_Result stats(struct agent *a, struct MHD_Connection *conn, struct ctr *c)
{
	struct lm_error err;
	if (!agent_running(c))
		return send_error(conn, MHD_HTTP_CONFLICT, "conflict", EBUSY, "the container is not running");
	struct stream *s = calloc(1, sizeof(*s));
	if (!s)
		return MHD_NO;
	s->a = a;
	s->conn = conn;
	s->kind = STREAM_STATS;
	snprintf(s->id, sizeof(s->id), "%s", c->rec.id);
	s->follow = arg_true(conn, "stream");
	if (lm_cgroup_path_for(NULL, c->rec.id, &s->cgroup, &err) < 0) {
		stream_free(s);
		return send_lm_error(conn, &err);
	}
	if (!s->follow) {
		struct lm_stats st;
		int rc = lm_stats_read(s->cgroup, &st, &err);
		json_t *o = rc == 0 ? stats_json(s, &st, NULL) : NULL;
		stream_free(s);
		return rc == 0 ? send_json(conn, MHD_HTTP_OK, o) : send_lm_error(conn, &err);
	}
	return send_stream(conn, s, "application/x-ndjson");
}

static enum MHD_Result events(struct agent *a, struct MHD_Connection *conn)
{
	struct stream *s = calloc(1, sizeof(*s));
	if (!s)
		return MHD_NO;
	s->a = a;
	s->conn = conn;
	s->kind = STREAM_EVENTS;
	s->follow = arg_true(conn, "follow");
	const char *since = arg(conn, "since");
	if (since) {
		char *end;
		s->seq = strtoll(since, &end, 10);
		if (!*since || *end || s->seq < 0) {
			stream_free(s);
			return send_error(conn, MHD_HTTP_BAD_REQUEST, "bad_request", EINVAL,
					  "since: expected an event sequence number");
		}
	} else if (s->follow) {
		/* from now on: the newest seq so far */
		struct lm_db_event *v = NULL;
		size_t n = 0;
		struct lm_error err;
		int64_t after = 0;
		while (lm_db_events_since(a->db, after, 1000, &v, &n, &err) == 0 && n > 0) {
			after = v[n - 1].seq;
			lm_db_events_free(v, n);
		}
		s->seq = after;
	}
	return send_stream(conn, s, "application/x-ndjson");
}

/* --- containers --- */

static enum MHD_Result list(struct agent *a, struct MHD_Connection *conn)
{
	bool all = arg_true(conn, "all");
	json_t *arr = json_array();
	for (struct ctr *c = a->ctrs; c; c = c->next)
		if (all || agent_running(c) || strcmp(c->rec.status, "restarting") == 0)
			json_array_append_new(arr, agent_ctr_json(a, c));
	return send_json(conn, MHD_HTTP_OK, arr);
}

static enum MHD_Result create(struct agent *a, struct MHD_Connection *conn, struct req *r)
{
	struct lm_error err;
	json_error_t jerr;
	json_t *body = json_loadb(r->body ? r->body : "", r->len, JSON_REJECT_DUPLICATES, &jerr);
	if (!body) {
		char msg[256];
		snprintf(msg, sizeof(msg), "malformed JSON: %s (line %d, column %d)", jerr.text, jerr.line,
			 jerr.column);
		return send_error(conn, MHD_HTTP_BAD_REQUEST, "bad_request", EINVAL, msg);
	}
	struct ctr *c;
	int rc = agent_create(a, body, &c, &err);
	json_decref(body);
	if (rc < 0)
		return send_lm_error(conn, &err);
	return send_json(conn, MHD_HTTP_CREATED, json_pack("{s:s, s:s}", "id", c->rec.id, "name", c->rec.name));
}

static json_t *exit_json(const struct ctr *c)
{
	return json_pack("{s:i, s:i, s:b, s:s?, s:s}", "exit_code", c->rec.exit_code, "signal", c->rec.exit_signal,
			 "oom_killed", c->rec.oom_killed, "error", c->rec.error, "status", c->rec.status);
}

/* wait, stop and restart: act once, then suspend until the container is not running. */
static enum MHD_Result waiting(struct agent *a, struct MHD_Connection *conn, struct req *r, struct ctr *c)
{
	struct lm_error err;
	if (!r->acted) {
		r->acted = true;
		snprintf(r->id, sizeof(r->id), "%s", c->rec.id);
		if (r->kind == REQ_STOP || r->kind == REQ_RESTART) {
			int t = arg_seconds(conn, "t");
			if (t == -2)
				return send_error(conn, MHD_HTTP_BAD_REQUEST, "bad_request", EINVAL,
						  "t: expected seconds");
			if (agent_stop_begin(a, c, t, &err) < 0)
				return send_lm_error(conn, &err);
		}
	}
	/* wait also waits for a container that has not run yet, as docker's does */
	bool not_yet = r->kind == REQ_WAIT &&
		       (strcmp(c->rec.status, "created") == 0 || strcmp(c->rec.status, "starting") == 0);
	if (agent_running(c) || not_yet) {
		suspend(conn);
		return MHD_YES;
	}
	if (r->kind == REQ_RESTART) {
		if (agent_start(a, c, false, &err) < 0)
			return start_failed(conn, &err);
		return send_json(conn, MHD_HTTP_NO_CONTENT, NULL);
	}
	if (r->kind == REQ_STOP)
		return send_json(conn, MHD_HTTP_NO_CONTENT, NULL);
	return send_json(conn, MHD_HTTP_OK, exit_json(c));
}

/* --- attach and exec: an upgraded connection relayed to the monitor --- */

static void upgraded(void *cls, struct MHD_Connection *conn, void *con_cls, const char *extra, size_t extra_len,
		     MHD_socket sock, struct MHD_UpgradeResponseHandle *urh)
{
	struct agent *a = cls;
	struct req *r = con_cls;
	int mon_fd = r->mon_fd;
	r->mon_fd = -1;
	struct lm_error err;
	if (agent_relay_start(a, sock, mon_fd, urh, extra, extra_len, &err) < 0)
		lm_warn("session: %s", err.msg);
}

static int exec_op(const struct ctr *c, const struct req *r, json_t **out, struct lm_error *err)
{
	json_error_t jerr;
	json_t *body = json_loadb(r->body ? r->body : "", r->len, JSON_REJECT_DUPLICATES, &jerr);
	if (!json_is_object(body)) {
		json_decref(body);
		return lm_err(err, EINVAL, "exec: expected a JSON object%s%s", body ? "" : ": ", body ? "" : jerr.text);
	}
	const char *key, *user = NULL, *cwd = NULL;
	json_t *val, *args = json_object_get(body, "args"), *env = json_object_get(body, "env");
	int rc = -1;
	json_object_foreach(body, key, val)
	{
		if (strcmp(key, "args") && strcmp(key, "env") && strcmp(key, "user") && strcmp(key, "cwd") &&
		    strcmp(key, "tty") && strcmp(key, "stdin") && strcmp(key, "rows") && strcmp(key, "cols")) {
			lm_err(err, EINVAL, "exec: unknown field \"%s\"", key);
			goto out;
		}
	}
	size_t i;
	if (!json_is_array(args) || json_array_size(args) == 0) {
		lm_err(err, EINVAL, "exec: args: expected a non-empty array of strings");
		goto out;
	}
	json_array_foreach(args, i, val)
	{
		if (!json_is_string(val)) {
			lm_err(err, EINVAL, "exec: args[%zu]: expected a string", i);
			goto out;
		}
	}
	if (env && !json_is_array(env)) {
		lm_err(err, EINVAL, "exec: env: expected an array of NAME=value");
		goto out;
	}
	json_array_foreach(env, i, val)
	{
		const char *kv = json_string_value(val);
		if (!kv || !strchr(kv, '=') || kv[0] == '=') {
			lm_err(err, EINVAL, "exec: env[%zu]: expected NAME=value", i);
			goto out;
		}
	}
	json_t *u = json_object_get(body, "user"), *w = json_object_get(body, "cwd");
	u = json_is_null(u) ? NULL : u; /* null: as absent */
	w = json_is_null(w) ? NULL : w;
	json_t *tty = json_object_get(body, "tty"), *in = json_object_get(body, "stdin");
	if ((u && !json_is_string(u)) || (w && !json_is_string(w)) || (tty && !json_is_boolean(tty)) ||
	    (in && !json_is_boolean(in))) {
		lm_err(err, EINVAL, "exec: user and cwd are strings, tty and stdin booleans");
		goto out;
	}
	json_t *rows = json_object_get(body, "rows"), *cols = json_object_get(body, "cols");
	if ((rows && (!json_is_integer(rows) || json_integer_value(rows) < 0 || json_integer_value(rows) > 65535)) ||
	    (cols && (!json_is_integer(cols) || json_integer_value(cols) < 0 || json_integer_value(cols) > 65535))) {
		lm_err(err, EINVAL, "exec: rows and cols are integers from 0 to 65535");
		goto out;
	}
	user = json_string_value(u);
	cwd = json_string_value(w);
	if (cwd && cwd[0] != '/') {
		lm_err(err, EINVAL, "exec: cwd \"%s\": expected an absolute path", cwd);
		goto out;
	}
	char ids[32] = "";
	if (user && *user) {
		/* names mean what the container's own /etc/passwd says */
		char root[64];
		snprintf(root, sizeof(root), "/proc/%d/root", (int)c->pid);
		int rootfd = open(root, O_PATH | O_DIRECTORY | O_CLOEXEC);
		struct lm_user lu = {0};
		int urc = lm_image_user_resolve(rootfd, user, &lu, err);
		if (rootfd >= 0)
			close(rootfd);
		if (urc < 0) {
			lm_error_prefix(err, "exec: user %s", user);
			err->code = EINVAL; /* the request's fault: 400, not "no such container" */
			goto out;
		}
		snprintf(ids, sizeof(ids), "%u:%u", lu.uid, lu.gid);
		lm_user_free(&lu);
	}
	/* "o" takes the reference: the body's env is borrowed, a new array is ours */
	*out = json_pack("{s:s, s:O, s:o, s:s?, s:s?, s:b, s:b, s:I, s:I}", "op", "exec", "args", args, "env",
			 env ? json_incref(env) : json_array(), "user", ids[0] ? ids : NULL, "cwd", cwd, "tty", json_is_true(tty),
			 "stdin", json_is_true(in), "rows", (json_int_t)json_integer_value(rows), "cols",
			 (json_int_t)json_integer_value(cols));
	rc = *out ? 0 : lm_err(err, ENOMEM, "out of memory");
out:
	json_decref(body);
	return rc;
}

static enum MHD_Result session(struct agent *a, struct MHD_Connection *conn, struct req *r, struct ctr *c,
			       bool exec)
{
	struct lm_error err;
	const char *up = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_UPGRADE);
	if (!up || strcasecmp(up, "lamina-stream") != 0)
		return send_error(conn, MHD_HTTP_BAD_REQUEST, "bad_request", EINVAL,
				  "attach and exec need \"Connection: Upgrade\" and \"Upgrade: lamina-stream\"");
	if (!agent_running(c))
		return send_error(conn, MHD_HTTP_CONFLICT, "conflict", EBUSY, "the container is not running");
	json_t *op = NULL;
	if (exec) {
		if (exec_op(c, r, &op, &err) < 0)
			return send_lm_error(conn, &err);
	} else {
		op = json_pack("{s:s, s:b}", "op", "attach", "stdin", arg_true(conn, "stdin"));
	}
	int rc = agent_monitor_session(a, c, op, &r->mon_fd, &err);
	json_decref(op);
	if (rc < 0)
		return send_error(conn, MHD_HTTP_BAD_REQUEST, exec ? "start_failed" : "bad_request", err.code, err.msg);
	if (exec)
		agent_event(a, c, "exec", NULL);
	struct MHD_Response *resp = MHD_create_response_for_upgrade(upgraded, a);
	if (!resp)
		return MHD_NO;
	MHD_add_response_header(resp, MHD_HTTP_HEADER_UPGRADE, "lamina-stream");
	enum MHD_Result ret = MHD_queue_response(conn, MHD_HTTP_SWITCHING_PROTOCOLS, resp);
	MHD_destroy_response(resp);
	return ret;
}

static enum MHD_Result container_action(struct agent *a, struct MHD_Connection *conn, struct req *r,
					const char *method, const char *ref, const char *action)
{
	struct lm_error err;
	struct ctr *c = agent_find(a, r->acted ? r->id : ref, &err);
	if (!c)
		return send_lm_error(conn, &err);
	bool get = strcmp(method, "GET") == 0, post = strcmp(method, "POST") == 0;
	if (!action) {
		if (get)
			return send_json(conn, MHD_HTTP_OK, agent_ctr_json(a, c));
		if (strcmp(method, "DELETE") == 0) {
			if (agent_remove(a, c, arg_true(conn, "force"), &err) < 0)
				return send_lm_error(conn, &err);
			return send_json(conn, MHD_HTTP_NO_CONTENT, NULL);
		}
	} else if (post && strcmp(action, "start") == 0) {
		if (agent_start(a, c, arg_true(conn, "attach"), &err) < 0)
			return start_failed(conn, &err);
		return send_json(conn, MHD_HTTP_NO_CONTENT, NULL);
	} else if (post && strcmp(action, "kill") == 0) {
		const char *sig = arg(conn, "signal");
		int signo = SIGKILL;
		if (sig && lm_signal_parse(sig, &signo) < 0)
			return send_error(conn, MHD_HTTP_BAD_REQUEST, "bad_request", EINVAL, "signal: not a signal");
		if (agent_kill(a, c, signo, &err) < 0)
			return send_lm_error(conn, &err);
		return send_json(conn, MHD_HTTP_NO_CONTENT, NULL);
	} else if (post && (strcmp(action, "wait") == 0 || strcmp(action, "stop") == 0 ||
			    strcmp(action, "restart") == 0)) {
		r->kind = action[0] == 'w' ? REQ_WAIT : action[0] == 's' ? REQ_STOP : REQ_RESTART;
		return waiting(a, conn, r, c);
	} else if (post && (strcmp(action, "attach") == 0 || strcmp(action, "exec") == 0)) {
		return session(a, conn, r, c, action[0] == 'e');
	} else if (get && strcmp(action, "logs") == 0) {
		return logs(a, conn, c);
	} else if (get && strcmp(action, "stats") == 0) {
		return stats(a, conn, c);
	} else if (strcmp(action, "start") && strcmp(action, "kill") && strcmp(action, "wait") &&
		   strcmp(action, "stop") && strcmp(action, "restart") && strcmp(action, "logs") &&
		   strcmp(action, "stats") && strcmp(action, "attach") && strcmp(action, "exec")) {
		char msg[512];
		snprintf(msg, sizeof(msg), "unknown route %s /v1/containers/{ref}/%.100s", method, action);
		return send_error(conn, MHD_HTTP_NOT_FOUND, "not_found", ENOENT, msg);
	}
	return send_error(conn, MHD_HTTP_METHOD_NOT_ALLOWED, "bad_request", EINVAL, "method not allowed here");
}

static bool peer_allowed(struct MHD_Connection *conn)
{
	const union MHD_ConnectionInfo *info = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
	if (!info)
		return false;
	struct ucred cred;
	socklen_t len = sizeof(cred);
	if (getsockopt(info->connect_fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0)
		return false;
	return cred.uid == 0 || cred.uid == geteuid();
}

static enum MHD_Result handle(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
			      const char *version, const char *upload_data, size_t *upload_data_size,
			      void **con_cls)
{
	struct agent *a = cls;
	struct req *r = *con_cls;
	if (!r) {
		r = calloc(1, sizeof(*r));
		if (!r)
			return MHD_NO;
		r->mon_fd = -1;
		*con_cls = r;
		return MHD_YES;
	}
	if (*upload_data_size) {
		if (!r->too_large && r->len + *upload_data_size <= BODY_MAX) {
			char *nb = realloc(r->body, r->len + *upload_data_size + 1);
			if (!nb)
				return MHD_NO;
			r->body = nb;
			memcpy(r->body + r->len, upload_data, *upload_data_size);
			r->len += *upload_data_size;
			r->body[r->len] = '\0';
		} else {
			r->too_large = true;
		}
		*upload_data_size = 0;
		return MHD_YES;
	}
	if (!r->checked) {
		if (!peer_allowed(conn))
			return send_error(conn, MHD_HTTP_FORBIDDEN, "forbidden", EPERM, "only root may use the agent");
		r->checked = true;
	}
	if (r->too_large)
		return send_error(conn, 413, "too_large", E2BIG,
				  "request body larger than 1 MiB");
	bool get = strcmp(method, "GET") == 0, post = strcmp(method, "POST") == 0;
	if (strcmp(url, "/v1/version") == 0 && get)
		return send_json(conn, MHD_HTTP_OK, json_pack("{s:s, s:s}", "version", LAMINA_VERSION, "api", "v1"));
	if (strcmp(url, "/v1/containers") == 0 && get)
		return list(a, conn);
	if (strcmp(url, "/v1/containers") == 0 && post)
		return create(a, conn, r);
	if (strcmp(url, "/v1/events") == 0 && get)
		return events(a, conn);
	if (strncmp(url, "/v1/containers/", 15) == 0) {
		char ref[256], *action;
		if (snprintf(ref, sizeof(ref), "%s", url + 15) >= (int)sizeof(ref))
			return send_error(conn, MHD_HTTP_NOT_FOUND, "not_found", ENOENT, "no such container");
		action = strchr(ref, '/');
		if (action)
			*action++ = '\0';
		if (ref[0] && (!action || (*action && !strchr(action, '/'))))
			return container_action(a, conn, r, method, ref, action);
	}
	char msg[512];
	snprintf(msg, sizeof(msg), "unknown route %s %.200s", method, url);
	return send_error(conn, MHD_HTTP_NOT_FOUND, "not_found", ENOENT, msg);
}

static void mhd_log(void *cls, const char *fmt, va_list ap) __attribute__((format(printf, 2, 0)));
static void mhd_log(void *cls, const char *fmt, va_list ap)
{
	char buf[512];
	vsnprintf(buf, sizeof(buf), fmt, ap);
	buf[strcspn(buf, "\n")] = '\0';
	lm_debug("http: %s", buf);
}

int agent_api_start(struct agent *a, struct lm_error *err)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	if (strlen(a->socket_path) >= sizeof(sa.sun_path))
		return lm_err(err, ENAMETOOLONG, "socket path %s: too long", a->socket_path);
	strcpy(sa.sun_path, a->socket_path);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return lm_err_sys(err, "socket");
	/* a live agent answers on the socket: refuse to steal it */
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0 || errno == EAGAIN) {
		close(fd);
		return lm_err(err, EADDRINUSE, "another agent is serving %s", a->socket_path);
	}
	close(fd);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return lm_err_sys(err, "socket");
	unlink(a->socket_path);
	mode_t old = umask(0177);
	int rc = bind(fd, (struct sockaddr *)&sa, sizeof(sa));
	umask(old);
	if (rc < 0 || chmod(a->socket_path, 0600) < 0 || listen(fd, 128) < 0) {
		lm_err_sys(err, "listen on %s", a->socket_path);
		close(fd);
		return -1;
	}
	a->listen_fd = fd;
	a->mhd = MHD_start_daemon(MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME | MHD_ALLOW_UPGRADE | MHD_USE_ERROR_LOG, 0, NULL, NULL,
				  handle, a, MHD_OPTION_LISTEN_SOCKET, fd, MHD_OPTION_NOTIFY_COMPLETED,
				  request_completed, a, MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)(256 * 1024),
				  MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)0, MHD_OPTION_EXTERNAL_LOGGER, mhd_log,
				  a, MHD_OPTION_END);
	if (!a->mhd) {
		close(fd);
		a->listen_fd = -1;
		return lm_err(err, EIO, "start the HTTP server on %s", a->socket_path);
	}
	const union MHD_DaemonInfo *info = MHD_get_daemon_info(a->mhd, MHD_DAEMON_INFO_EPOLL_FD);
	struct epoll_event ev = {.events = EPOLLIN, .data.ptr = a->mhd};
	if (!info || epoll_ctl(a->ep, EPOLL_CTL_ADD, info->epoll_fd, &ev) < 0)
		return lm_err_sys(err, "watch the HTTP server");
	return 0;
}

void agent_api_run(struct agent *a)
{
	MHD_run(a->mhd);
}

int agent_api_timeout_ms(struct agent *a)
{
	MHD_UNSIGNED_LONG_LONG t;
	if (MHD_get_timeout(a->mhd, &t) == MHD_YES)
		return t > 60000 ? 60000 : (int)t;
	return -1;
}

void agent_api_stop(struct agent *a)
{
	if (!a->mhd)
		return;
	agent_api_wake(a);
	agent_relay_close_all();
	MHD_run(a->mhd);
	MHD_stop_daemon(a->mhd);
	a->mhd = NULL;
	if (a->listen_fd >= 0)
		close(a->listen_fd);
	unlink(a->socket_path);
}
