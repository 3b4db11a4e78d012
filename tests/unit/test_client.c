/* The agent API client (src/cli/client.c) against a canned HTTP peer on a
 * unix socket, and the output helpers of the container commands
 * (src/cli/format.c).
 *
 * The peer (peer.h) is a forked child that answers one request with bytes
 * the test wrote, in pieces with pauses between them, so that chunked bodies arrive
 * split where the test says.  It skips connections that close without a
 * request: lm_client_open's probe is one.
 */
#include <stdlib.h>

#include "testutil.h"
#include "peer.h"

#include <jansson.h>
#include <sys/wait.h>
#include <time.h>

#include "cli/client.h"
#include "cli/format.h"
#include "util/error.h"

/* ------------------------------------------------------------ the peer */

#define assert_prefix(s, prefix)                                                      \
	do {                                                                          \
		if (strncmp((s), (prefix), strlen(prefix)) != 0)                      \
			fail_msg("\"%s\" does not start with \"%s\"", (s), (prefix)); \
	} while (0)

/* Starts the peer: it answers the request with parts, in that order, 150 ms
 * apart. */
static void peer_start(struct tu_peer *p, const char *const *parts, size_t n_parts)
{
	int fd = tu_peer_start(p, "client");
	if (fd < 0)
		return; /* the test process */
	for (size_t i = 0; i < n_parts; i++) {
		if (i)
			usleep(150 * 1000);
		if (write(fd, parts[i], strlen(parts[i])) < 0)
			break;
	}
	close(fd);
	_exit(0);
}

/* One exchange with the peer: a client open on it, and what the client's
 * call fills in. */
struct exchange {
	struct tu_peer peer;
	struct lm_client *c;
	struct lm_error err;
	long status;
	char *answer; /* start_answer's, freed by finish */
};

/* Starts the peer with parts and opens a client on it. */
static void start(struct exchange *x, const char *const *parts, size_t n_parts)
{
	*x = (struct exchange){0};
	peer_start(&x->peer, parts, n_parts);
	assert_ok(lm_client_open(x->peer.sock, NULL, &x->c, &x->err), x->err);
	assert_string_equal(lm_client_socket(x->c), x->peer.sock);
}

/* start with a complete answer with a JSON body, in one part. */
static void start_answer(struct exchange *x, const char *status, const char *body)
{
	char *a = NULL;
	assert_true(asprintf(&a, "HTTP/1.1 %s\r\nContent-Type: application/json\r\nConnection: close\r\n"
				 "Content-Length: %zu\r\n\r\n%s",
			     status, strlen(body), body) > 0);
	const char *parts[] = {a};
	start(x, parts, 1);
	x->answer = a;
}

/* Closes the client and waits for the peer (killing it if it still waits
 * for a request); the request it read, "" when none. */
static const char *finish(struct exchange *x)
{
	lm_client_close(x->c);
	free(x->answer);
	struct tu_peer *p = &x->peer;
	int st;
	if (waitpid(p->pid, &st, WNOHANG) == 0) {
		usleep(200 * 1000);
		kill(p->pid, SIGKILL);
		waitpid(p->pid, &st, 0);
	}
	char path[128];
	tu_peer_path(p, "request", path, sizeof(path));
	const char *req = tu_exists(path) ? tu_file_content(path) : "";
	tu_rm_tree(p->dir, 0);
	return req;
}

/* The call failed as the agent's answer says. */
static void assert_failed(const struct exchange *x, long status, int code, const char *msg)
{
	assert_int_equal(x->status, status);
	assert_int_equal(x->err.code, code);
	assert_string_equal(x->err.msg, msg);
}

/* ---------------------------------------------------------- the client */

static void test_socket_path(void **state)
{
	(void)state;
	char *p = lm_client_socket_path("/x/given.sock", "/state");
	assert_string_equal(p, "/x/given.sock");
	free(p);
	unsetenv("LAMINA_SOCKET");
	p = lm_client_socket_path(NULL, "/state");
	assert_string_equal(p, "/state/lamina.sock");
	free(p);
	p = lm_client_socket_path("", NULL);
	assert_string_equal(p, "/run/lamina/lamina.sock");
	free(p);
	setenv("LAMINA_SOCKET", "/env/agent.sock", 1);
	p = lm_client_socket_path(NULL, "/state");
	assert_string_equal(p, "/env/agent.sock");
	free(p);
	unsetenv("LAMINA_SOCKET");
}

static void test_open_no_agent(void **state)
{
	(void)state;
	char dir[64], sock[128];
	assert_int_equal(tu_mkdtemp(dir, sizeof(dir), "client"), 0);
	FMT(sock, "%s/lamina.sock", dir);
	struct lm_client *c = NULL;
	struct lm_error err = {0};

	/* no socket file */
	assert_true(lm_client_open(NULL, dir, &c, &err) < 0);
	assert_null(c);
	assert_int_equal(err.code, ENOENT);
	assert_contains(err.msg, sock);

	/* a socket file nobody listens on (an agent that died) */
	close(tu_bind_unix(sock));
	lm_error_clear(&err);
	assert_true(lm_client_open(sock, NULL, &c, &err) < 0);
	assert_int_equal(err.code, ECONNREFUSED);
	assert_contains(err.msg, sock);
	tu_rm_tree(dir, 0);
}

static void test_call_json(void **state)
{
	(void)state;
	struct exchange x;
	start_answer(&x, "200 OK", "[{\"id\": \"0123456789abcdef\", \"name\": \"web\"}]");
	json_t *resp = NULL;

	char *ref = lm_client_escape(x.c, "a b/c+&");
	assert_string_equal(ref, "a%20b%2Fc%2B%26");
	free(ref);

	assert_ok(lm_client_call(x.c, "GET", "/v1/containers?all=1", NULL, &x.status, &resp, &x.err), x.err);
	assert_int_equal(x.status, 200);
	assert_true(json_is_array(resp));
	assert_int_equal(json_array_size(resp), 1);
	assert_string_equal(json_string_value(json_object_get(json_array_get(resp, 0), "name")), "web");
	json_decref(resp);
	assert_prefix(finish(&x), "GET /v1/containers?all=1 HTTP/1.1\r\n");
}

static void test_call_not_found(void **state)
{
	(void)state;
	struct exchange x;
	start_answer(&x, "404 Not Found", "{\"message\": \"no such container: x\", \"code\": \"not_found\"}");
	json_t *resp = NULL;
	assert_true(lm_client_call(x.c, "POST", "/v1/containers/x/start", NULL, &x.status, &resp, &x.err) < 0);
	assert_failed(&x, 404, ENOENT, "no such container: x");
	assert_null(resp);
	assert_prefix(finish(&x), "POST /v1/containers/x/start HTTP/1.1\r\n");
}

static void test_call_statuses(void **state)
{
	(void)state;
	static const struct {
		const char *status, *body, *msg;
		int code;
	} cases[] = {
		{"409 Conflict", "{\"message\": \"name web is taken\", \"code\": \"conflict\"}", "name web is taken", EEXIST},
		{"400 Bad Request", "{\"message\": \"unknown field: foo\"}", "unknown field: foo", EINVAL},
		{"501 Not Implemented", "{\"message\": \"tty: not implemented\"}", "tty: not implemented", ENOTSUP},
		{"500 Internal Server Error", "database is locked\n", "database is locked", EIO},
		{"503 Service Unavailable", "", "the agent answered HTTP 503", EIO},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct exchange x;
		start_answer(&x, cases[i].status, cases[i].body);
		assert_true(lm_client_call(x.c, "DELETE", "/v1/containers/web", NULL, &x.status, NULL, &x.err) < 0);
		assert_failed(&x, strtol(cases[i].status, NULL, 10), cases[i].code, cases[i].msg);
		assert_prefix(finish(&x), "DELETE /v1/containers/web HTTP/1.1");
	}
}

static void test_call_body_no_content(void **state)
{
	(void)state;
	const char *parts[] = {"HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n"};
	struct exchange x;
	start(&x, parts, 1);
	json_t *resp = json_true(); /* must become NULL */
	json_t *body = json_pack("{s:s}", "image", "busybox");
	assert_ok(lm_client_call(x.c, "POST", "/v1/containers", body, &x.status, &resp, &x.err), x.err);
	assert_int_equal(x.status, 204);
	assert_null(resp);
	json_decref(body);
	const char *req = finish(&x);
	assert_prefix(req, "POST /v1/containers HTTP/1.1\r\n");
	assert_contains(req, "Content-Type: application/json\r\n");
	assert_contains(req, "\r\n\r\n{\"image\":\"busybox\"}");
}

static void test_call_no_answer(void **state)
{
	(void)state;
	const char *parts[] = {""}; /* reads the request, closes */
	struct exchange x;
	start(&x, parts, 1);
	x.status = 99;
	assert_true(lm_client_call(x.c, "GET", "/v1/version", NULL, &x.status, NULL, &x.err) < 0);
	assert_int_equal(x.status, 0);
	assert_int_equal(x.err.code, EIO);
	assert_contains(x.err.msg, "/v1/version");
	finish(&x);
}

struct lines {
	char *v[16];
	double at[16];  /* seconds, CLOCK_MONOTONIC */
	size_t n;
	size_t stop_after;  /* 0: never */
};

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int collect(const char *line, size_t len, void *ctx)
{
	struct lines *l = ctx;
	assert_int_equal(strlen(line), len);
	assert_true(l->n < 16);
	l->v[l->n] = strdup(line);
	l->at[l->n++] = now_s();
	return l->stop_after && l->n >= l->stop_after ? -1 : 0;
}

static void lines_free(struct lines *l)
{
	for (size_t i = 0; i < l->n; i++)
		free(l->v[i]);
}

/* GET path on x's client as a stream of lines, collected into l. */
static int stream(struct exchange *x, const char *path, struct lines *l)
{
	return lm_client_stream(x->c, "GET", path, collect, l, &x->status, &x->err);
}

/* Starts the peer with parts and streams path into l, which must work. */
static void stream_ok(struct exchange *x, const char *const *parts, size_t n_parts, const char *path,
		      struct lines *l)
{
	start(x, parts, n_parts);
	assert_ok(stream(x, path, l), x->err);
}

#define CHUNKED_HEAD "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"

static void test_stream_lines(void **state)
{
	(void)state;
	/* lines cut mid-line across chunks, a chunk with two line ends, and a
	 * last line without one */
	const char *parts[] = {
		CHUNKED_HEAD "8\r\nhello\nwo\r\n",
		"6\r\nrld\nla\r\n",
		"5\r\nst\n\nx\r\n",
		"4\r\nyz\nz\r\n0\r\n\r\n",
	};
	struct exchange x;
	struct lines l = {0};
	stream_ok(&x, parts, 4, "/v1/containers/web/logs?follow=1", &l);
	assert_int_equal(x.status, 200);
	assert_int_equal(l.n, 6);
	const char *want[] = {"hello", "world", "last", "", "xyz", "z"};
	for (size_t i = 0; i < 6; i++)
		assert_string_equal(l.v[i], want[i]);
	/* each line came when its end did, not when the body ended */
	assert_true(l.at[1] - l.at[0] > 0.1);
	assert_true(l.at[4] - l.at[2] > 0.1);
	lines_free(&l);
	assert_prefix(finish(&x), "GET /v1/containers/web/logs?follow=1 HTTP/1.1\r\n");
}

static void test_stream_stop(void **state)
{
	(void)state;
	struct lines l = {.stop_after = 2}; /* collect ends the stream after two lines */
	const char *parts[] = {
		CHUNKED_HEAD "4\r\none\n\r\n4\r\ntwo\n\r\n",
		"6\r\nthree\n\r\n",
		"0\r\n\r\n",
	};
	struct exchange x;
	stream_ok(&x, parts, 3, "/v1/containers/web/stats?stream=1", &l);
	assert_int_equal(l.n, 2);
	assert_string_equal(l.v[1], "two");
	lines_free(&l);
	finish(&x);
}

static void test_stream_error(void **state)
{
	(void)state;
	struct exchange x;
	start_answer(&x, "404 Not Found", "{\"message\": \"no such container: nope\"}");
	struct lines l = {0};
	assert_true(stream(&x, "/v1/containers/nope/logs", &l) < 0);
	assert_int_equal(l.n, 0); /* the error body is no log line */
	assert_failed(&x, 404, ENOENT, "no such container: nope");
	finish(&x);
}

/* ------------------------------------------------------------ formats */

static const char *dur(int64_t s)
{
	static char buf[64];
	lm_human_duration(buf, sizeof(buf), s);
	return buf;
}

static void test_human_duration(void **state)
{
	(void)state;
	assert_string_equal(dur(0), "Less than a second");
	assert_string_equal(dur(1), "1 second");
	assert_string_equal(dur(5), "5 seconds");
	assert_string_equal(dur(59), "59 seconds");
	assert_string_equal(dur(60), "About a minute");
	assert_string_equal(dur(150), "2 minutes");
	assert_string_equal(dur(3599), "59 minutes");
	assert_string_equal(dur(3600), "About an hour");
	assert_string_equal(dur(5400), "2 hours");
	assert_string_equal(dur(47 * 3600), "47 hours");
	assert_string_equal(dur(3 * 86400), "3 days");
	assert_string_equal(dur(15 * 86400), "2 weeks");
	assert_string_equal(dur(90 * 86400), "3 months");
	assert_string_equal(dur(800 * 86400), "2 years");
}

static void test_rfc3339(void **state)
{
	(void)state;
	struct timespec t;
	assert_int_equal(lm_parse_rfc3339("2024-05-01T10:40:00Z", &t), 0);
	assert_int_equal(t.tv_sec, 1714560000);
	assert_int_equal(t.tv_nsec, 0);
	assert_int_equal(lm_parse_rfc3339("2024-05-01T12:40:00.123456789+02:00", &t), 0);
	assert_int_equal(t.tv_sec, 1714560000);
	assert_int_equal(t.tv_nsec, 123456789);
	assert_int_equal(lm_parse_rfc3339("2024-05-01T10:40:00.5Z", &t), 0);
	assert_int_equal(t.tv_nsec, 500000000);
	assert_true(lm_parse_rfc3339("", &t) < 0);
	assert_true(lm_parse_rfc3339(NULL, &t) < 0);
	assert_true(lm_parse_rfc3339("2024-05-01", &t) < 0);
	assert_true(lm_parse_rfc3339("2024-05-01T10:40:00", &t) < 0);
	assert_true(lm_parse_rfc3339("2024-05-01T10:40:00Zjunk", &t) < 0);
	char buf[64];
	t = (struct timespec){1714560000, 42};
	lm_format_rfc3339(buf, sizeof(buf), &t);
	assert_string_equal(buf, "2024-05-01T10:40:00.000000042Z");
}

static void test_time_arg(void **state)
{
	(void)state;
	char buf[64];
	time_t now = 1714560000;
	assert_int_equal(lm_time_arg("10m", now, buf, sizeof(buf)), 0);
	assert_string_equal(buf, "2024-05-01T10:30:00.000000000Z");
	assert_int_equal(lm_time_arg("1h30m", now, buf, sizeof(buf)), 0);
	assert_string_equal(buf, "2024-05-01T09:10:00.000000000Z");
	assert_int_equal(lm_time_arg("1.5s", now, buf, sizeof(buf)), 0);
	assert_string_equal(buf, "2024-05-01T10:39:58.500000000Z");
	assert_int_equal(lm_time_arg("1714560000.25", now, buf, sizeof(buf)), 0);
	assert_string_equal(buf, "2024-05-01T10:40:00.250000000Z");
	assert_int_equal(lm_time_arg("2024-05-01T12:40:00+02:00", now, buf, sizeof(buf)), 0);
	assert_string_equal(buf, "2024-05-01T10:40:00.000000000Z");
	assert_true(lm_time_arg("yesterday", now, buf, sizeof(buf)) < 0);
	assert_true(lm_time_arg("10", now, buf, sizeof(buf)) == 0); /* unix seconds */
	assert_true(lm_time_arg("10x", now, buf, sizeof(buf)) < 0);
	assert_true(lm_time_arg("", now, buf, sizeof(buf)) < 0);
}

static void test_size(void **state)
{
	(void)state;
	char b[32];
	static const struct {
		uint64_t n;
		const char *s;
	} cases[] = {
		{0, "0B"}, {512, "512B"}, {1023, "1023B"}, {1024, "1KiB"}, {1536, "1.5KiB"},
		{12939428, "12.34MiB"}, {64u << 20, "64MiB"}, {(uint64_t)3 << 30, "3GiB"},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		lm_format_size(b, sizeof(b), cases[i].n);
		assert_string_equal(b, cases[i].s);
	}
}

static const char *status_of(const char *json, time_t now)
{
	static char buf[128];
	json_t *o = json_loads(json, 0, NULL);
	assert_non_null(o);
	lm_format_status(buf, sizeof(buf), o, now);
	json_decref(o);
	return buf;
}

static void test_status(void **state)
{
	(void)state;
	time_t now = 1714560000;
	assert_string_equal(status_of("{\"status\": \"running\", \"started_at\": \"2024-05-01T10:37:00Z\"}", now),
			    "Up 3 minutes");
	assert_string_equal(status_of("{\"status\": \"exited\", \"exit_code\": 1, \"finished_at\": "
				      "\"2024-05-01T10:39:58.9Z\"}", now),
			    "Exited (1) 2 seconds ago");
	assert_string_equal(status_of("{\"status\": \"exited\", \"exit_code\": 0, \"signal\": 9, "
				      "\"finished_at\": \"2024-05-01T10:00:00Z\"}", now),
			    "Exited (137) 40 minutes ago");
	assert_string_equal(status_of("{\"status\": \"restarting\", \"exit_code\": 1, \"finished_at\": "
				      "\"2024-05-01T10:39:55Z\"}", now),
			    "Restarting (1) 5 seconds ago");
	assert_string_equal(status_of("{\"status\": \"created\", \"started_at\": \"\"}", now), "Created");
	assert_string_equal(status_of("{\"status\": \"lost\"}", now), "Lost");
	char ago[64];
	lm_format_ago(ago, sizeof(ago), "2024-05-01T10:39:55Z", now);
	assert_string_equal(ago, "5 seconds ago");
	lm_format_ago(ago, sizeof(ago), "", now);
	assert_string_equal(ago, "");
	json_t *w = json_pack("{s:i,s:i}", "exit_code", 3, "signal", 0);
	assert_int_equal(lm_container_exit_code(w), 3);
	json_decref(w);
}

static void test_command(void **state)
{
	(void)state;
	char b[128];
	json_t *o = json_loads("{\"spec\": {\"entrypoint\": [\"/bin/sh\", \"-c\"], \"cmd\": [\"echo \\\"hi\\\"\"]}}", 0, NULL);
	lm_format_command(b, sizeof(b), o, false);
	assert_string_equal(b, "\"/bin/sh -c echo \\\"hi\\\"\"");
	json_decref(o);
	o = json_loads("{\"command\": \"sleep 100000 && echo done\"}", 0, NULL);
	lm_format_command(b, sizeof(b), o, true);
	assert_string_equal(b, "\"sleep 100000 && ech\xe2\x80\xa6\"");
	lm_format_command(b, sizeof(b), o, false);
	assert_string_equal(b, "\"sleep 100000 && echo done\"");
	json_decref(o);
	o = json_object();
	lm_format_command(b, sizeof(b), o, true);
	assert_string_equal(b, "\"\"");
	json_decref(o);
}

/* The stdout and stderr output of feeding lines to one printer. */
static void print_logs(bool timestamps, const char *const *lines, size_t n, char **out, char **err)
{
	size_t ol = 0, el = 0;
	FILE *o = open_memstream(out, &ol), *e = open_memstream(err, &el);
	assert_non_null(o);
	assert_non_null(e);
	struct lm_log_printer p = {.timestamps = timestamps};
	for (size_t i = 0; i < n; i++)
		assert_int_equal(lm_log_print(&p, lines[i], strlen(lines[i]), o, e), 0);
	fclose(o);
	fclose(e);
}

static void test_logs(void **state)
{
	(void)state;
	const char *lines[] = {
		"2024-05-01T10:40:00.000000001Z stdout P hel",
		"2024-05-01T10:40:00.000000002Z stderr F oops: it failed",
		"2024-05-01T10:40:00.000000003Z stdout F lo world",
		"2024-05-01T10:40:00.000000004Z stdout F",
		"2024-05-01T10:40:00.000000005Z stdout F  two  spaces ",
		"not a cri line",
	};
	char *out = NULL, *err = NULL;
	print_logs(false, lines, 6, &out, &err);
	assert_string_equal(out, "hello world\n\n two  spaces \nnot a cri line\n");
	assert_string_equal(err, "oops: it failed\n");
	free(out);
	free(err);
	print_logs(true, lines, 6, &out, &err);
	assert_string_equal(out, "2024-05-01T10:40:00.000000001Z hello world\n"
				 "2024-05-01T10:40:00.000000004Z \n"
				 "2024-05-01T10:40:00.000000005Z  two  spaces \n"
				 "not a cri line\n");
	assert_string_equal(err, "2024-05-01T10:40:00.000000002Z oops: it failed\n");
	free(out);
	free(err);

	struct lm_cri_entry e;
	assert_true(lm_cri_parse("ts stdin F x", 12, &e) < 0);
	assert_true(lm_cri_parse("ts stdout X x", 13, &e) < 0);
	assert_int_equal(lm_cri_parse("ts stderr P:more x y", 20, &e), 0);
	assert_true(e.partial && e.is_stderr);
	assert_int_equal(e.text_len, 3);
}

static void test_event(void **state)
{
	(void)state;
	json_t *ev = json_loads("{\"seq\": 7, \"time\": \"2024-05-01T10:40:00.000000001Z\", \"id\": "
				"\"0123456789abcdef0123\", \"name\": \"web\", \"type\": \"die\", \"attrs\": "
				"{\"image\": \"busybox\", \"exit_code\": 1, \"name\": \"web\"}}",
				0, NULL);
	assert_non_null(ev);
	char *s = lm_format_event(ev);
	assert_string_equal(s, "2024-05-01T10:40:00.000000001Z container die 0123456789ab "
			       "(name=web, exit_code=1, image=busybox)");
	free(s);
	json_decref(ev);
	ev = json_pack("{s:f,s:s,s:s}", "time", 1714560000.5, "type", "start", "id", "abc");
	s = lm_format_event(ev);
	assert_string_equal(s, "2024-05-01T10:40:00.500000000Z container start abc");
	free(s);
	json_decref(ev);
}

static void test_stats_cells(void **state)
{
	(void)state;
	json_t *prev = json_pack("{s:I,s:s}", "cpu_usage_ns", (json_int_t)1000000000, "read_at",
				 "2024-05-01T10:40:00.000000000Z");
	json_t *cur = json_pack("{s:I,s:s,s:I,s:I,s:I,s:f}", "cpu_usage_ns", (json_int_t)1500000000, "read_at",
				"2024-05-01T10:40:01.000000000Z", "memory_usage", (json_int_t)12939428, "memory_limit",
				(json_int_t)(64 << 20), "pids_current", (json_int_t)3, "cpu_percent", 7.0);
	struct lm_stats_cells cells;
	lm_format_stats_cells(prev, cur, 0, &cells);
	assert_string_equal(cells.cpu, "50.00%");
	assert_string_equal(cells.mem, "12.34MiB / 64MiB");
	assert_string_equal(cells.mem_pct, "19.28%");
	assert_string_equal(cells.pids, "3");
	/* no previous sample: the agent's figure; no limit: the host's memory */
	json_object_set_new(cur, "memory_limit", json_integer(0));
	lm_format_stats_cells(NULL, cur, (uint64_t)128 << 20, &cells);
	assert_string_equal(cells.cpu, "7.00%");
	assert_string_equal(cells.mem, "12.34MiB / 128MiB");
	assert_string_equal(cells.mem_pct, "9.64%");
	json_decref(prev);
	json_decref(cur);
}

static void test_table(void **state)
{
	(void)state;
	struct lm_table *t = lm_table_new(3);
	const char *a[] = {"CONTAINER ID", "IMAGE", "NAMES"};
	const char *b[] = {"0123456789ab", "busybox:latest", "web"};
	const char *c[] = {"x", "\"sleep\xe2\x80\xa6\"", "db"};
	assert_int_equal(lm_table_add(t, a), 0);
	assert_int_equal(lm_table_add(t, b), 0);
	assert_int_equal(lm_table_add(t, c), 0);
	char *out = NULL;
	size_t n = 0;
	FILE *f = open_memstream(&out, &n);
	lm_table_print(t, f);
	fclose(f);
	assert_string_equal(out, "CONTAINER ID   IMAGE            NAMES\n"
				 "0123456789ab   busybox:latest   web\n"
				 "x              \"sleep\xe2\x80\xa6\"         db\n");
	free(out);
	lm_table_free(t);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_socket_path),
		cmocka_unit_test(test_open_no_agent),
		cmocka_unit_test(test_call_json),
		cmocka_unit_test(test_call_not_found),
		cmocka_unit_test(test_call_statuses),
		cmocka_unit_test(test_call_body_no_content),
		cmocka_unit_test(test_call_no_answer),
		cmocka_unit_test(test_stream_lines),
		cmocka_unit_test(test_stream_stop),
		cmocka_unit_test(test_stream_error),
		cmocka_unit_test(test_human_duration),
		cmocka_unit_test(test_rfc3339),
		cmocka_unit_test(test_time_arg),
		cmocka_unit_test(test_size),
		cmocka_unit_test(test_status),
		cmocka_unit_test(test_command),
		cmocka_unit_test(test_logs),
		cmocka_unit_test(test_event),
		cmocka_unit_test(test_stats_cells),
		cmocka_unit_test(test_table),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
