/* Attach and exec sessions, the client's side: lm_client_upgrade
 * (src/cli/client.c) and lm_attach_session (src/cli/attach.c) against a
 * scripted agent on a unix socket.
 *
 * The peer (peer.h) is a forked child.  It reads one request (skipping
 * connections that close without one: lm_client_open's probe), writes the
 * answer the test built (the 101 and the first frames in the SAME write, so
 * that a client reading past the headers would lose them), then does what
 * the script says: wait for the client's STDIN_EOF, or its first STDIN frame
 * (and signal the test process), or play a terminal; then writes the rest
 * and reads what the client still sends until it closes.  Every frame the
 * client sent is logged to files the test reads afterwards: "events" (one
 * line a frame) and "stdin" (the STDIN payloads, concatenated).
 */
#include <stdlib.h>

#include "testutil.h"
#include "peer.h"

#include <jansson.h>
#include <pty.h>
#include <sys/ioctl.h>
#include <sys/wait.h>
#include <termios.h>
#include <time.h>

#include "cli/attach.h"
#include "cli/client.h"
#include "monitor/stream.h"
#include "util/error.h"

#define SWITCH "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: lamina-stream\r\n\r\n"

/* ------------------------------------------------------------ bytes */

static void b_str(struct tu_buf *b, const char *s)
{
	tu_buf_add(b, s, strlen(s));
}

static void b_frame(struct tu_buf *b, enum lm_stream_type type, const void *p, size_t n)
{
	uint8_t h[LM_STREAM_HEADER];
	lm_stream_header(h, type, (uint32_t)n);
	tu_buf_add(b, h, sizeof(h));
	if (n)
		tu_buf_add(b, p, n);
}

static void b_frame_str(struct tu_buf *b, enum lm_stream_type type, const char *s)
{
	b_frame(b, type, s, strlen(s));
}

static void b_exit(struct tu_buf *b, int code, int sig, bool oom)
{
	char j[128];
	FMT(j, "{\"exit_code\": %d, \"signal\": %d, \"oom_killed\": %s}", code, sig, oom ? "true" : "false");
	b_frame_str(b, LM_STREAM_EXIT, j);
}

/* ------------------------------------------------------------ the peer */

enum wait_for {
	WAIT_NOTHING,
	WAIT_STDIN_EOF, /* the client's STDIN_EOF */
	WAIT_STDIN,     /* its first STDIN frame; then kill(test, signal) */
	WAIT_TTY,       /* a RESIZE; note the terminal's mode; resize it, SIGWINCH, type "hi\r"; a RESIZE and STDIN */
};

struct script {
	struct tu_buf answer;    /* written at once after the request */
	struct tu_buf parts[4];  /* or, when parts[0].len: these, 150 ms apart */
	enum wait_for wait;
	int signal;              /* WAIT_STDIN */
	int master, slave;       /* WAIT_TTY */
	struct tu_buf after;     /* written when the wait is over */
	bool close_first;        /* close after that, not reading the client's last frames */
};

static void log_append(const struct tu_peer *p, const char *name, const void *data, size_t n)
{
	char path[128];
	tu_peer_path(p, name, path, sizeof(path));
	int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
	if (fd < 0 || write(fd, data, n) != (ssize_t)n)
		_exit(3);
	close(fd);
}

static void log_event(const struct tu_peer *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void log_event(const struct tu_peer *p, const char *fmt, ...)
{
	char line[512];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	log_append(p, "events", line, (size_t)n);
}

static bool read_full(int fd, void *buf, size_t n)
{
	char *b = buf;
	while (n > 0) {
		ssize_t r = read(fd, b, n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return false;
		b += r;
		n -= (size_t)r;
	}
	return true;
}

static void write_bytes(int fd, const struct tu_buf *b)
{
	if (b->len && write(fd, b->data, b->len) != (ssize_t)b->len)
		_exit(4);
}

/* One frame from the client, logged; its type, or -1 at the end. */
static int peer_frame(const struct tu_peer *p, int fd)
{
	uint8_t h[LM_STREAM_HEADER];
	enum lm_stream_type type;
	uint32_t len;
	if (!read_full(fd, h, sizeof(h)))
		return -1;
	if (lm_stream_parse_header(h, &type, &len) < 0) {
		log_event(p, "MALFORMED\n");
		return -1;
	}
	char *data = malloc(len + 1);
	if (!data || !read_full(fd, data, len))
		_exit(5);
	data[len] = '\0';
	switch (type) {
	case LM_STREAM_STDIN:
		log_event(p, "STDIN %u\n", len);
		log_append(p, "stdin", data, len);
		break;
	case LM_STREAM_STDIN_EOF:
		log_event(p, "STDIN_EOF %u\n", len);
		break;
	case LM_STREAM_RESIZE:
		log_event(p, "RESIZE %s\n", data);
		break;
	default:
		log_event(p, "UNEXPECTED %d\n", (int)type);
	}
	free(data);
	return (int)type;
}

static void peer_tty(const struct tu_peer *p, const struct script *s, int fd)
{
	int t;
	while ((t = peer_frame(p, fd)) >= 0 && t != LM_STREAM_RESIZE)
		;
	struct termios tio;
	if (tcgetattr(s->slave, &tio) < 0)
		_exit(6);
	log_event(p, "%s\n", (tio.c_lflag & (ICANON | ECHO | ISIG)) ? "COOKED" : "RAW");
	struct winsize ws = {.ws_row = 40, .ws_col = 100};
	if (ioctl(s->master, TIOCSWINSZ, &ws) < 0)
		_exit(7);
	kill(getppid(), SIGWINCH);
	if (write(s->master, "hi\r", 3) != 3)
		_exit(8);
	bool resized = false, typed = false;
	while ((!resized || !typed) && (t = peer_frame(p, fd)) >= 0) {
		resized = resized || t == LM_STREAM_RESIZE;
		typed = typed || t == LM_STREAM_STDIN;
	}
}

/* Starts the peer on s: the answer, the wait, the rest (see the top). */
static void peer_start(struct tu_peer *p, const struct script *s)
{
	int fd = tu_peer_start(p, "attach");
	if (fd < 0)
		return; /* the test process */
	if (s->parts[0].len) {
		for (size_t i = 0; i < 4 && s->parts[i].len; i++) {
			if (i)
				usleep(150 * 1000);
			write_bytes(fd, &s->parts[i]);
		}
	} else {
		write_bytes(fd, &s->answer);
	}
	int t;
	switch (s->wait) {
	case WAIT_NOTHING:
		break;
	case WAIT_STDIN_EOF:
		while ((t = peer_frame(p, fd)) >= 0 && t != LM_STREAM_STDIN_EOF)
			;
		break;
	case WAIT_STDIN:
		while ((t = peer_frame(p, fd)) >= 0 && t != LM_STREAM_STDIN)
			;
		kill(getppid(), s->signal);
		usleep(200 * 1000);
		break;
	case WAIT_TTY:
		peer_tty(p, s, fd);
		break;
	}
	ssize_t w = write(fd, s->after.data, s->after.len); /* the client may have gone */
	(void)w;
	if (!s->close_first)
		while (peer_frame(p, fd) >= 0)
			;
	close(fd);
	_exit(0);
}

/* Waits for the peer (killing it when it still waits after a while); its
 * exit status must be 0. */
static void peer_wait(struct tu_peer *p)
{
	int st = 0;
	for (int i = 0; i < 40 && waitpid(p->pid, &st, WNOHANG) == 0; i++)
		usleep(50 * 1000);
	if (waitpid(p->pid, &st, WNOHANG) == 0) {
		kill(p->pid, SIGKILL);
		waitpid(p->pid, &st, 0);
		fail_msg("the peer did not finish");
	}
	if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
		fail_msg("the peer failed: status %d", st);
}

/* A file of the peer's directory, "" when there is none (malloc'd). */
static char *peer_read(const struct tu_peer *p, const char *name)
{
	char path[128];
	tu_peer_path(p, name, path, sizeof(path));
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	struct stat st;
	if (fd < 0)
		return strdup("");
	assert_int_equal(fstat(fd, &st), 0);
	char *buf = malloc((size_t)st.st_size + 1);
	assert_non_null(buf);
	assert_true(read_full(fd, buf, (size_t)st.st_size));
	buf[st.st_size] = '\0';
	close(fd);
	return buf;
}

/* The peer's file name holds exactly want. */
static void assert_peer_file(const struct tu_peer *p, const char *name, const char *want)
{
	char *got = peer_read(p, name);
	assert_string_equal(got, want);
	free(got);
}

static void script_free(struct script *s)
{
	free(s->answer.data);
	free(s->after.data);
	for (size_t i = 0; i < 4; i++)
		free(s->parts[i].data);
}

/* A script whose answer starts with the 101, as most do. */
static struct script upgraded(void)
{
	struct script s = {0};
	b_str(&s.answer, SWITCH);
	return s;
}

/* ------------------------------------------------------------ sessions */

struct run {
	struct tu_peer peer;
	struct script *script;   /* the peer's, freed by run_done */
	int out, err;            /* files in the peer's directory */
	long status;
	int upgrade_rc, session_rc;
	struct lm_attach_end end;
	struct lm_error error;
};

/* Upgrades POST path (body) on a fresh client and, when that worked, runs
 * a session with o (out and err set here, to files). */
static void run_session(struct run *r, struct script *s, const char *path, json_t *body,
			struct lm_attach_opts o)
{
	memset(r, 0, sizeof(*r));
	r->script = s;
	peer_start(&r->peer, s);
	char out[128], err[128];
	tu_peer_path(&r->peer, "out", out, sizeof(out));
	tu_peer_path(&r->peer, "err", err, sizeof(err));
	r->out = open(out, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	r->err = open(err, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	assert_true(r->out >= 0 && r->err >= 0);
	struct lm_client *c = NULL;
	assert_ok(lm_client_open(r->peer.sock, NULL, &c, &r->error), r->error);
	int fd = 123;
	alarm(30); /* a session that hangs fails the test instead */
	r->upgrade_rc = lm_client_upgrade(c, path, body, &fd, &r->status, &r->error);
	if (r->upgrade_rc == 0) {
		assert_true(fd >= 0);
		assert_true(fcntl(fd, F_GETFD) & FD_CLOEXEC);
		o.out = r->out;
		o.err = r->err;
		r->session_rc = lm_attach_session(fd, &o, &r->end, &r->error);
		close(fd);
	} else {
		assert_int_equal(fd, -1);
	}
	alarm(0);
	lm_client_close(c);
	peer_wait(&r->peer);
}

static void run_done(struct run *r)
{
	close(r->out);
	close(r->err);
	tu_rm_tree(r->peer.dir, 0);
	script_free(r->script);
}

static struct lm_attach_opts no_stdin(void)
{
	return (struct lm_attach_opts){.in = -1};
}

/* ------------------------------------------------------------ tests */

static void test_exit_code_and_output(void **state)
{
	(void)state;
	struct script s = upgraded();
	b_frame_str(&s.answer, LM_STREAM_STDOUT, "out one\n");
	b_frame_str(&s.answer, LM_STREAM_STDERR, "err one\n");
	b_frame(&s.answer, LM_STREAM_STDOUT, "", 0); /* empty: nothing */
	b_frame_str(&s.answer, LM_STREAM_STDOUT, "out two\n");
	b_exit(&s.answer, 3, 0, false);
	json_t *body = json_pack("{s:[s,s], s:b, s:b}", "args", "sh", "-c", "tty", 0, "stdin", 0);
	struct run r;
	run_session(&r, &s, "/v1/containers/web/exec", body, no_stdin());
	assert_ok(r.upgrade_rc, r.error);
	assert_int_equal(r.status, 101);
	assert_ok(r.session_rc, r.error);
	assert_int_equal(r.end.exit_code, 3);
	assert_int_equal(r.end.signal, 0);
	assert_false(r.end.oom_killed);
	assert_string_equal(tu_fd_content(r.out), "out one\nout two\n");
	assert_string_equal(tu_fd_content(r.err), "err one\n");

	char *req = peer_read(&r.peer, "request");
	assert_true(strncmp(req, "POST /v1/containers/web/exec HTTP/1.1\r\n", 39) == 0);
	assert_contains(req, "\r\nConnection: Upgrade\r\n");
	assert_contains(req, "\r\nUpgrade: lamina-stream\r\n");
	assert_contains(req, "\r\nContent-Type: application/json\r\n");
	assert_contains(req, "\r\n\r\n{\"args\":[\"sh\",\"-c\"],\"tty\":false,\"stdin\":false}");
	free(req);
	/* without stdin and a terminal the client sends nothing */
	assert_peer_file(&r.peer, "events", "");
	json_decref(body);
	run_done(&r);
}

static void test_exit_by_signal_oom(void **state)
{
	(void)state;
	struct script s = upgraded();
	b_exit(&s.answer, 0, 9, true);
	struct run r;
	run_session(&r, &s, "/v1/containers/web/attach?stdin=0", NULL, no_stdin());
	assert_ok(r.session_rc, r.error);
	assert_int_equal(r.end.exit_code, 137);
	assert_int_equal(r.end.signal, 9);
	assert_true(r.end.oom_killed);
	char *req = peer_read(&r.peer, "request");
	assert_contains(req, "POST /v1/containers/web/attach?stdin=0 HTTP/1.1\r\n");
	assert_contains(req, "\r\nContent-Length: 0\r\n");
	assert_null(strstr(req, "Content-Type"));
	free(req);
	run_done(&r);
}

/* A frame bigger than one read, and frames cut anywhere, the header included. */
static void test_big_and_split_frames(void **state)
{
	(void)state;
	struct script s = {0};
	size_t big = 300 * 1000;
	char *data = malloc(big);
	assert_non_null(data);
	for (size_t i = 0; i < big; i++)
		data[i] = (char)('a' + i % 26);
	struct tu_buf all = {0};
	b_frame_str(&all, LM_STREAM_STDERR, "e1");
	b_frame(&all, LM_STREAM_STDOUT, data, big);
	b_frame_str(&all, LM_STREAM_STDERR, "e2");
	b_exit(&all, 0, 0, false);
	/* the 101 with 5 bytes of the first frame's header; the rest of it;
	 * then the rest at two odd places */
	b_str(&s.parts[0], "HTTP/1.1 100 Continue\r\n\r\n" SWITCH);
	tu_buf_add(&s.parts[0], all.data, 5);
	tu_buf_add(&s.parts[1], all.data + 5, 3);
	tu_buf_add(&s.parts[2], all.data + 8, 1000);
	tu_buf_add(&s.parts[3], all.data + 1008, all.len - 1008);
	struct run r;
	run_session(&r, &s, "/v1/containers/web/attach?stdin=0", NULL, no_stdin());
	assert_ok(r.session_rc, r.error);
	assert_int_equal(r.end.exit_code, 0);
	struct stat st;
	assert_int_equal(fstat(r.out, &st), 0);
	assert_int_equal(st.st_size, big);
	char *got = malloc(big);
	assert_int_equal(pread(r.out, got, big, 0), (ssize_t)big);
	assert_memory_equal(got, data, big);
	assert_string_equal(tu_fd_content(r.err), "e1e2");
	free(got);
	free(data);
	free(all.data);
	run_done(&r);
}

static void test_stdin(void **state)
{
	(void)state;
	struct script s = upgraded();
	b_frame_str(&s.answer, LM_STREAM_STDOUT, "ready\n");
	s.wait = WAIT_STDIN_EOF;
	b_exit(&s.after, 0, 0, false);
	/* more than one frame's worth, from a file */
	char dir[64], in_path[128];
	assert_int_equal(tu_mkdtemp(dir, sizeof(dir), "attach-in"), 0);
	FMT(in_path, "%s/in", dir);
	size_t n = 100 * 1000;
	char *data = malloc(n);
	for (size_t i = 0; i < n; i++)
		data[i] = (char)('0' + i % 10);
	tu_write_file(in_path, data, n, 0644);
	int in = open(in_path, O_RDONLY | O_CLOEXEC);
	assert_true(in >= 0);
	struct run r;
	run_session(&r, &s, "/v1/containers/web/attach?stdin=1", NULL,
		    (struct lm_attach_opts){.in = in, .send_stdin = true});
	assert_ok(r.session_rc, r.error);
	assert_int_equal(r.end.exit_code, 0);
	assert_string_equal(tu_fd_content(r.out), "ready\n");
	char *got = peer_read(&r.peer, "stdin");
	assert_int_equal(strlen(got), n);
	assert_memory_equal(got, data, n);
	free(got);
	/* STDIN frames, then one empty STDIN_EOF, last */
	char *ev = peer_read(&r.peer, "events");
	assert_true(strncmp(ev, "STDIN ", 6) == 0);
	size_t len = strlen(ev);
	assert_true(len > 12 && strcmp(ev + len - 12, "STDIN_EOF 0\n") == 0);
	assert_int_equal(strstr(ev, "STDIN_EOF") - ev, len - 12);
	free(ev);
	close(in);
	free(data);
	tu_rm_tree(dir, 0);
	run_done(&r);
}

/* An empty stdin (/dev/null) is an STDIN_EOF at once. */
static void test_stdin_empty(void **state)
{
	(void)state;
	struct script s = upgraded();
	s.wait = WAIT_STDIN_EOF;
	b_exit(&s.after, 5, 0, false);
	int in = open("/dev/null", O_RDONLY | O_CLOEXEC);
	struct run r;
	run_session(&r, &s, "/v1/containers/web/attach?stdin=1", NULL,
		    (struct lm_attach_opts){.in = in, .send_stdin = true});
	assert_ok(r.session_rc, r.error);
	assert_int_equal(r.end.exit_code, 5);
	assert_peer_file(&r.peer, "events", "STDIN_EOF 0\n");
	close(in);
	run_done(&r);
}

static void test_error_frame(void **state)
{
	(void)state;
	struct script s = upgraded();
	b_frame_str(&s.answer, LM_STREAM_STDERR, "before\n");
	b_frame_str(&s.answer, LM_STREAM_ERROR, "{\"message\": \"exec /nope: no such file or directory\", \"errno\": 2}");
	struct run r;
	run_session(&r, &s, "/v1/containers/web/exec", NULL, no_stdin());
	assert_true(r.session_rc < 0);
	assert_true(r.end.error_frame);
	assert_int_equal(r.end.interrupted, 0);
	assert_int_equal(r.error.code, ENOENT);
	assert_string_equal(r.error.msg, "exec /nope: no such file or directory");
	assert_string_equal(tu_fd_content(r.err), "before\n");
	run_done(&r);

	/* without an errno, and not JSON at all */
	struct script s2 = upgraded();
	b_frame_str(&s2.answer, LM_STREAM_ERROR, "{\"message\": \"the container is gone\"}");
	run_session(&r, &s2, "/v1/containers/web/attach?stdin=0", NULL, no_stdin());
	assert_true(r.session_rc < 0 && r.end.error_frame);
	assert_int_equal(r.error.code, 0);
	assert_string_equal(r.error.msg, "the container is gone");
	run_done(&r);
	struct script s3 = upgraded();
	b_frame_str(&s3.answer, LM_STREAM_ERROR, "oops");
	run_session(&r, &s3, "/v1/containers/web/attach?stdin=0", NULL, no_stdin());
	assert_true(r.session_rc < 0 && r.end.error_frame);
	assert_contains(r.error.msg, "oops");
	run_done(&r);
}

static void test_closed_without_exit(void **state)
{
	(void)state;
	struct script s = upgraded();
	b_frame_str(&s.answer, LM_STREAM_STDOUT, "partial");
	s.close_first = true;
	struct run r;
	run_session(&r, &s, "/v1/containers/web/attach?stdin=0", NULL, no_stdin());
	assert_true(r.session_rc < 0);
	assert_false(r.end.error_frame);
	assert_int_equal(r.error.code, EPIPE);
	assert_contains(r.error.msg, "without the process's exit status");
	assert_string_equal(tu_fd_content(r.out), "partial");
	run_done(&r);

	/* in the middle of a frame: 3 of its 10 bytes */
	struct script s2 = upgraded();
	uint8_t h[LM_STREAM_HEADER];
	lm_stream_header(h, LM_STREAM_STDOUT, 10);
	tu_buf_add(&s2.answer, h, sizeof(h));
	b_str(&s2.answer, "abc");
	s2.close_first = true;
	run_session(&r, &s2, "/v1/containers/web/attach?stdin=0", NULL, no_stdin());
	assert_true(r.session_rc < 0);
	assert_int_equal(r.error.code, EPIPE);
	assert_contains(r.error.msg, "middle of a frame");
	run_done(&r);

	/* with stdin still open: the end of the connection ends it all the same */
	struct script s3 = upgraded();
	s3.close_first = true;
	int p[2];
	assert_int_equal(pipe2(p, O_CLOEXEC), 0);
	run_session(&r, &s3, "/v1/containers/web/attach?stdin=1", NULL,
		    (struct lm_attach_opts){.in = p[0], .send_stdin = true});
	assert_true(r.session_rc < 0);
	assert_int_equal(r.error.code, EPIPE);
	close(p[0]);
	close(p[1]);
	run_done(&r);
}

static void test_status_before_upgrade(void **state)
{
	(void)state;
	static const struct {
		const char *answer, *msg;
		long status;
		int code;
	} cases[] = {
		{"HTTP/1.1 404 Not Found\r\nContent-Type: application/json\r\nContent-Length: 58\r\n\r\n"
		 "{\"message\": \"no such container: web\", \"code\": \"not_found\"}",
		 "no such container: web", 404, ENOENT},
		/* chunked, and the errno of a process that could not start */
		{"HTTP/1.1 400 Bad Request\r\nTransfer-Encoding: chunked\r\n\r\n"
		 "1a\r\n{\"message\": \"exec: not fou\r\n"
		 "2f\r\nnd\", \"code\": \"start_failed\", \"errno\": 2}       \r\n0\r\n\r\n",
		 "exec: not found", 400, ENOENT},
		/* no length: the body ends with the connection */
		{"HTTP/1.1 409 Conflict\r\nConnection: close\r\n\r\n{\"message\": \"the container is not running\"}",
		 "the container is not running", 409, EEXIST},
		{"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}", "instead of switching", 200, EPROTO},
		{"SSH-2.0-OpenSSH\r\n\r\n", "not HTTP", 0, EIO},
		{"HTTP/1.1 101 Swi", "closed the connection in the middle", 0, EIO},
		{"", "closed the connection without an answer", 0, EIO},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct script s = {0};
		b_str(&s.answer, cases[i].answer);
		s.close_first = true;
		struct run r;
		json_t *body = json_pack("{s:[s]}", "args", "x");
		run_session(&r, &s, "/v1/containers/web/exec", body, no_stdin());
		if (r.upgrade_rc >= 0)
			fail_msg("case %zu: the upgrade worked", i);
		assert_int_equal(r.status, cases[i].status);
		assert_int_equal(r.error.code, cases[i].code);
		assert_contains(r.error.msg, cases[i].msg);
		json_decref(body);
		run_done(&r);
	}
}

static void test_no_agent(void **state)
{
	(void)state;
	struct script s = {0};
	struct tu_peer p;
	peer_start(&p, &s);
	struct lm_client *c = NULL;
	struct lm_error err = {0};
	assert_ok(lm_client_open(p.sock, NULL, &c, &err), err);
	kill(p.pid, SIGKILL);
	waitpid(p.pid, NULL, 0);
	unlink(p.sock);
	int fd = 5;
	long status = 7;
	assert_true(lm_client_upgrade(c, "/v1/containers/web/attach", NULL, &fd, &status, &err) < 0);
	assert_int_equal(fd, -1);
	assert_int_equal(status, 0);
	assert_int_equal(err.code, ENOENT);
	assert_contains(err.msg, p.sock);
	lm_client_close(c);
	tu_rm_tree(p.dir, 0);
}

static void test_malformed_frames(void **state)
{
	(void)state;
	static const struct {
		uint8_t h[LM_STREAM_HEADER];
		const char *msg;
	} cases[] = {
		{{1, 1, 0, 0, 0, 0, 0, 1}, "malformed frame header (01 01 00 00 00 00 00 01)"},
		{{9, 0, 0, 0, 0, 0, 0, 1}, "malformed"},
		{{1, 0, 0, 0, 0, 0x10, 0, 1}, "malformed"}, /* over LM_STREAM_FRAME_MAX */
		{{0, 0, 0, 0, 0, 0, 0, 1}, "only a client sends"},
		{{6, 0, 0, 0, 0, 0, 0, 1}, "only a client sends"},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct script s = upgraded();
		b_frame_str(&s.answer, LM_STREAM_STDOUT, "fine\n");
		tu_buf_add(&s.answer, cases[i].h, LM_STREAM_HEADER);
		b_str(&s.answer, "x");
		b_exit(&s.answer, 0, 0, false);
		struct run r;
		run_session(&r, &s, "/v1/containers/web/attach?stdin=0", NULL, no_stdin());
		assert_true(r.session_rc < 0);
		assert_int_equal(r.error.code, EPROTO);
		assert_contains(r.error.msg, cases[i].msg);
		assert_string_equal(tu_fd_content(r.out), "fine\n");
		run_done(&r);
	}
	/* an EXIT frame without an exit code */
	struct script s = upgraded();
	b_frame_str(&s.answer, LM_STREAM_EXIT, "{\"signal\": 0}");
	struct run r;
	run_session(&r, &s, "/v1/containers/web/attach?stdin=0", NULL, no_stdin());
	assert_true(r.session_rc < 0);
	assert_int_equal(r.error.code, EPROTO);
	run_done(&r);
}

struct seen {
	int sig[4];
	int n;
};

static int record_signal(int sig, void *ctx)
{
	struct seen *s = ctx;
	if (s->n < 4)
		s->sig[s->n++] = sig;
	return 0;
}

static void test_signals(void **state)
{
	(void)state;
	sigset_t before, after;
	signal(SIGINT, SIG_DFL); /* an ignored one is left alone */
	pthread_sigmask(SIG_SETMASK, NULL, &before);
	/* with a handler: it sees the signal and the session goes on to its EXIT */
	struct script s = upgraded();
	s.wait = WAIT_STDIN;
	s.signal = SIGTERM;
	b_exit(&s.after, 143, 15, false);
	int p[2];
	assert_int_equal(pipe2(p, O_CLOEXEC), 0);
	assert_int_equal(write(p[1], "go", 2), 2);
	struct seen seen = {0};
	struct run r;
	run_session(&r, &s, "/v1/containers/web/attach?stdin=1", NULL,
		    (struct lm_attach_opts){.in = p[0], .send_stdin = true, .on_signal = record_signal, .ctx = &seen});
	assert_ok(r.session_rc, r.error);
	assert_int_equal(r.end.exit_code, 143);
	assert_int_equal(seen.n, 1);
	assert_int_equal(seen.sig[0], SIGTERM);
	run_done(&r);

	/* without one: the session ends, and the signal with it */
	struct script s2 = upgraded();
	s2.wait = WAIT_STDIN;
	s2.signal = SIGINT;
	b_exit(&s2.after, 0, 0, false);
	s2.close_first = true;
	assert_int_equal(write(p[1], "go", 2), 2);
	run_session(&r, &s2, "/v1/containers/web/attach?stdin=1", NULL,
		    (struct lm_attach_opts){.in = p[0], .send_stdin = true});
	assert_true(r.session_rc < 0);
	assert_int_equal(r.error.code, EINTR);
	assert_int_equal(r.end.interrupted, SIGINT);
	assert_false(r.end.error_frame);
	run_done(&r);
	close(p[0]);
	close(p[1]);
	/* the mask is as it was (and as every earlier session left it: none of
	 * the session's signals blocked), and nothing is left pending */
	pthread_sigmask(SIG_SETMASK, NULL, &after);
	for (int sig = 1; sig < 32; sig++)
		assert_int_equal(sigismember(&before, sig), sigismember(&after, sig));
	static const int session_signals[] = {SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGWINCH, SIGPIPE};
	for (size_t k = 0; k < sizeof(session_signals) / sizeof(session_signals[0]); k++)
		if (sigismember(&after, session_signals[k]))
			fail_msg("%s is still blocked", strsignal(session_signals[k]));
	sigset_t pending;
	sigpending(&pending);
	assert_false(sigismember(&pending, SIGINT));
	assert_false(sigismember(&pending, SIGTERM));
}

static void test_tty(void **state)
{
	(void)state;
	int master, slave;
	struct winsize ws = {.ws_row = 24, .ws_col = 80};
	assert_int_equal(openpty(&master, &slave, NULL, NULL, &ws), 0);
	struct termios before, after;
	assert_int_equal(tcgetattr(slave, &before), 0);
	assert_true(before.c_lflag & ICANON);
	struct script s = upgraded();
	b_frame_str(&s.answer, LM_STREAM_STDOUT, "$ ");
	s.wait = WAIT_TTY;
	s.master = master;
	s.slave = slave;
	b_frame_str(&s.after, LM_STREAM_STDOUT, "hi\r\n");
	b_exit(&s.after, 0, 0, false);
	struct run r;
	run_session(&r, &s, "/v1/containers/web/attach?stdin=1", NULL,
		    (struct lm_attach_opts){.in = slave, .send_stdin = true, .tty = true});
	assert_ok(r.session_rc, r.error);
	assert_string_equal(tu_fd_content(r.out), "$ hi\r\n");
	char *ev = peer_read(&r.peer, "events");
	/* the first size, raw mode while attached, the new size on SIGWINCH;
	 * "hi\r" as typed (raw: no line discipline, no \r to \n) */
	const char *first = "RESIZE {\"rows\":24,\"cols\":80}\nRAW\n";
	if (strncmp(ev, first, strlen(first)) != 0)
		fail_msg("events: %s", ev);
	assert_contains(ev, "RESIZE {\"rows\":40,\"cols\":100}\n");
	free(ev);
	assert_peer_file(&r.peer, "stdin", "hi\r");
	/* and the terminal as it was */
	assert_int_equal(tcgetattr(slave, &after), 0);
	assert_int_equal(after.c_lflag, before.c_lflag);
	assert_int_equal(after.c_iflag, before.c_iflag);
	assert_int_equal(after.c_oflag, before.c_oflag);
	assert_int_equal(after.c_cflag, before.c_cflag);
	run_done(&r);

	/* a terminal, stdin not forwarded: the size, no raw mode */
	struct script s2 = upgraded();
	s2.wait = WAIT_NOTHING;
	b_exit(&s2.answer, 0, 0, false);
	run_session(&r, &s2, "/v1/containers/web/attach?stdin=0", NULL,
		    (struct lm_attach_opts){.in = slave, .tty = true});
	assert_ok(r.session_rc, r.error);
	assert_peer_file(&r.peer, "events", "RESIZE {\"rows\":40,\"cols\":100}\n");
	run_done(&r);
	close(master);
	close(slave);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_exit_code_and_output),
		cmocka_unit_test(test_exit_by_signal_oom),
		cmocka_unit_test(test_big_and_split_frames),
		cmocka_unit_test(test_stdin),
		cmocka_unit_test(test_stdin_empty),
		cmocka_unit_test(test_error_frame),
		cmocka_unit_test(test_closed_without_exit),
		cmocka_unit_test(test_status_before_upgrade),
		cmocka_unit_test(test_no_agent),
		cmocka_unit_test(test_malformed_frames),
		cmocka_unit_test(test_signals),
		cmocka_unit_test(test_tty),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
