/* The clients of monitor.sock (the protocol of stream.h: status, attach,
 * exec) and the stdio of the processes the monitor holds: the container's
 * init and the execs (started by exec.c's starters).
 *
 * Nothing here waits.  Every socket, pipe and pty master is nonblocking and
 * in the loop's epoll set.  Each client has one output buffer: the
 * container's output goes to the log (always) and to every attach client,
 * and one that falls MON_CLIENT_BUF_MAX behind is dropped and counted, so a
 * slow client never slows the container.  An exec's output has no log
 * behind it: its pipes are read only while its client keeps up, so a slow
 * client slows only its own process.  Input goes through one buffer per
 * process; while it is full, the clients' frames wait in their sockets.
 *
 * Sessions and processes are freed only at the end of a loop turn
 * (mon_sweep): an event of the same turn may still point at them. */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <malloc.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include "monitor/session.h"
#include "monitor/stream.h"
#include "util/cleanup.h"
#include "util/fs.h"

enum session_state {
	SS_HANDSHAKE,   /* reading the request line */
	SS_STARTING,    /* exec: waiting for the starter's report */
	SS_STREAM,      /* frames both ways */
	SS_CLOSING,     /* the last line or frame is queued; closed once sent */
};

struct mon_session {
	struct mon_session *next;
	struct mon_watch w;
	enum session_state state;
	bool dead;           /* freed at the end of the loop's turn */
	bool is_exec;
	bool want_stdin;
	bool input_paused;   /* its process's input buffer is full */
	bool read_eof;       /* the client sends nothing more */
	bool gone;           /* nothing can be sent to it any more */
	bool eof_done;       /* read_eof has been passed on to an exec's stdin */
	struct mon_buf rbuf, wbuf;
	struct mon_proc *proc;  /* attach: &m->main; exec: its own; NULL once detached */
};

#define REQUEST_MAX 65536
#define READ_CHUNK 65536
/* a client's unprocessed bytes: at most one whole frame and one read more */
#define RBUF_MAX (LM_STREAM_HEADER + LM_STREAM_FRAME_MAX)

static void session_process(struct monitor *m, struct mon_session *s);
static void proc_stdin_eof(struct monitor *m, struct mon_proc *p);
static void proc_resume_output(struct monitor *m, struct mon_proc *p);

/* ------------------------------------------------------------ buffers */

static void buf_free(struct mon_buf *b)
{
	free(b->data);
	*b = (struct mon_buf){0};
}

static int buf_reserve(struct mon_buf *b, size_t n)
{
	if (b->off + b->len + n <= b->cap)
		return 0;
	if (b->off) {
		memmove(b->data, b->data + b->off, b->len);
		b->off = 0;
	}
	if (b->len + n <= b->cap)
		return 0;
	size_t cap = b->cap ? b->cap : 4096;
	while (cap < b->len + n)
		cap *= 2;
	char *d = realloc(b->data, cap);
	if (!d)
		return -1;
	b->data = d;
	b->cap = cap;
	return 0;
}

static int buf_add(struct mon_buf *b, const void *data, size_t n)
{
	if (buf_reserve(b, n) < 0)
		return -1;
	memcpy(b->data + b->off + b->len, data, n);
	b->len += n;
	return 0;
}

/* Drop n bytes from the front; an emptied big buffer gives its memory back. */
static void buf_consume(struct mon_buf *b, size_t n)
{
	b->off += n;
	b->len -= n;
	if (b->len == 0) {
		b->off = 0;
		if (b->cap > READ_CHUNK)
			buf_free(b);
	}
}

/* ------------------------------------------------------------ sessions: output */

static void session_rearm(struct monitor *m, struct mon_session *s)
{
	uint32_t ev = 0;
	if (!s->read_eof && !s->input_paused && s->rbuf.len < RBUF_MAX && s->state != SS_CLOSING)
		ev |= EPOLLIN;
	if (s->wbuf.len && !s->gone)
		ev |= EPOLLOUT;
	mon_watch_set(m, &s->w, ev);
}

/* Leave its process: an exec's client that goes away closes the process's
 * stdin, and the process's output is read (and dropped) again. */
static void session_detach(struct monitor *m, struct mon_session *s)
{
	struct mon_proc *p = s->proc;
	s->proc = NULL;
	if (!p || !s->is_exec)
		return;
	p->owner = NULL;
	if (s->want_stdin)
		proc_stdin_eof(m, p);
	proc_resume_output(m, p);
}

/* Close a client's socket.  What it sent and we did not read goes first:
 * a unix socket closed over unread data resets its peer, and the peer
 * would lose the answer it has not read yet. */
static void close_client(int fd)
{
	char buf[4096];
	for (int k = 0; k < 64 && recv(fd, buf, sizeof(buf), MSG_DONTWAIT) > 0; k++)
		;
	close(fd);
}

static void session_close(struct monitor *m, struct mon_session *s)
{
	if (s->dead)
		return;
	s->dead = true;
	session_detach(m, s);
	mon_watch_set(m, &s->w, 0);
	close_client(s->w.fd);
	s->w.fd = -1;
	buf_free(&s->rbuf);
	buf_free(&s->wbuf);
	m->n_sessions--;
}

/* Nothing can be sent to it, and all it sent is taken (or nobody asks for it). */
static bool session_done(const struct mon_session *s)
{
	return s->gone && (s->state == SS_CLOSING || (s->read_eof && !s->input_paused && s->state != SS_STARTING));
}

/* Send what is queued.  -1 when the session is closed. */
static int session_flush(struct monitor *m, struct mon_session *s)
{
	while (s->wbuf.len && !s->gone) {
		ssize_t n = send(s->w.fd, s->wbuf.data + s->wbuf.off, s->wbuf.len, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			break;
		if (n <= 0) {
			/* what it sent before it went may still be waiting to be read */
			s->gone = true;
			break;
		}
		buf_consume(&s->wbuf, (size_t)n);
	}
	if (s->gone)
		buf_free(&s->wbuf);
	if ((s->state == SS_CLOSING && !s->wbuf.len) || (session_done(s) && !s->rbuf.len)) {
		session_close(m, s);
		return -1;
	}
	if (s->is_exec && s->proc && s->proc->out_paused && s->wbuf.len < MON_EXEC_BUF_HIGH / 2)
		proc_resume_output(m, s->proc);
	session_rearm(m, s);
	return 0;
}

static int session_queue(struct monitor *m, struct mon_session *s, const void *a, size_t alen, const void *b,
			 size_t blen)
{
	if (!s->gone && (buf_add(&s->wbuf, a, alen) < 0 || buf_add(&s->wbuf, b, blen) < 0)) {
		session_close(m, s);
		return -1;
	}
	return session_flush(m, s);
}

static int session_frame(struct monitor *m, struct mon_session *s, enum lm_stream_type type, const void *data,
			 size_t len)
{
	uint8_t h[LM_STREAM_HEADER];
	lm_stream_header(h, type, (uint32_t)len);
	return session_queue(m, s, h, sizeof(h), data, len);
}

static int session_line(struct monitor *m, struct mon_session *s, json_t *obj)
{
	char *text = obj ? json_dumps(obj, JSON_COMPACT) : NULL;
	json_decref(obj);
	if (!text) {
		session_close(m, s);
		return -1;
	}
	int rc = session_queue(m, s, text, strlen(text), "\n", 1);
	free(text);
	return rc;
}

/* The final frame (EXIT or ERROR); the session closes once it is sent. */
static void session_end(struct monitor *m, struct mon_session *s, enum lm_stream_type type, json_t *payload)
{
	char *text = payload ? json_dumps(payload, JSON_COMPACT) : NULL;
	json_decref(payload);
	session_detach(m, s);
	s->state = SS_CLOSING;
	if (text)
		session_frame(m, s, type, text, strlen(text));
	else
		session_close(m, s);
	free(text);
}

/* The answer to a request that is refused: one line, then the session closes. */
__attribute__((format(printf, 4, 5))) static void reply_error(struct monitor *m, struct mon_session *s, int code,
							     const char *fmt, ...)
{
	char msg[LM_ERROR_MSG_MAX];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	s->state = SS_CLOSING;
	session_line(m, s, json_pack("{s:s, s:i}", "error", msg, "code", code));
}

static json_t *exit_json(const struct lm_exit *e)
{
	return json_pack("{s:i, s:i, s:b}", "exit_code", e->code, "signal", e->signal, "oom_killed", e->oom_killed);
}

/* ------------------------------------------------------------ processes */

static void proc_pause_output(struct monitor *m, struct mon_proc *p)
{
	p->out_paused = true;
	mon_watch_set(m, &p->out, 0);
	mon_watch_set(m, &p->err, 0);
}

static void proc_resume_output(struct monitor *m, struct mon_proc *p)
{
	if (!p->out_paused)
		return;
	p->out_paused = false;
	mon_watch_set(m, &p->out, EPOLLIN);
	mon_watch_set(m, &p->err, EPOLLIN);
	/* what it left in the pipe while paused is still to come */
	int64_t later = lm_mono_ns() + MON_DRAIN_NS;
	if (p->exited && p->drain_deadline < later)
		p->drain_deadline = later;
}

static void proc_in_close(struct monitor *m, struct mon_proc *p)
{
	mon_watch_close(m, &p->in);
	buf_free(&p->inbuf);
}

/* Write what input waits; EPOLLOUT while the process does not take it. */
static void proc_flush_input(struct monitor *m, struct mon_proc *p)
{
	while (p->in.fd >= 0 && p->inbuf.len) {
		ssize_t n = write(p->in.fd, p->inbuf.data + p->inbuf.off, p->inbuf.len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN) {
			mon_watch_set(m, &p->in, EPOLLOUT);
			return;
		}
		if (n <= 0) {
			/* EPIPE: nobody reads it any more (EIO: the terminal is gone) */
			proc_in_close(m, p);
			return;
		}
		buf_consume(&p->inbuf, (size_t)n);
	}
	mon_watch_set(m, &p->in, 0);
	if (p->in_eof)
		proc_in_close(m, p);
}

static void proc_input(struct monitor *m, struct mon_proc *p, const void *data, size_t len)
{
	if (p->in.fd < 0 || p->in_eof)
		return;
	if (buf_add(&p->inbuf, data, len) < 0)
		return; /* out of memory: the input is lost, not the monitor */
	proc_flush_input(m, p);
}

/* A pipe is closed (for every client: there is one stdin); a terminal gets
 * its end-of-file character, as a user typing ^D. */
static void proc_stdin_eof(struct monitor *m, struct mon_proc *p)
{
	if (p->in.fd < 0 || p->in_eof)
		return;
	if (p->tty >= 0) {
		struct termios t;
		char veof = 4; /* ^D */
		if (tcgetattr(p->tty, &t) == 0 && t.c_cc[VEOF] != _POSIX_VDISABLE)
			veof = (char)t.c_cc[VEOF];
		proc_input(m, p, &veof, 1);
		return;
	}
	p->in_eof = true;
	proc_flush_input(m, p);
}

static void proc_resize(struct mon_proc *p, const char *data, size_t len)
{
	json_t *j = json_loadb(data, len, 0, NULL);
	json_int_t rows = json_integer_value(json_object_get(j, "rows"));
	json_int_t cols = json_integer_value(json_object_get(j, "cols"));
	json_decref(j);
	if (p->tty < 0 || rows <= 0 || cols <= 0 || rows > 65535 || cols > 65535)
		return;
	struct winsize ws = {.ws_row = (unsigned short)rows, .ws_col = (unsigned short)cols};
	ioctl(p->tty, TIOCSWINSZ, &ws);
}

/* Every fd of an exec, and its place in the list: it is freed by mon_sweep. */
static void proc_discard(struct monitor *m, struct mon_proc *p)
{
	if (p->owner)
		p->owner->proc = NULL;
	p->owner = NULL;
	mon_watch_close(m, &p->out);
	mon_watch_close(m, &p->err);
	mon_watch_close(m, &p->report);
	proc_in_close(m, p);
	if (p->tty >= 0)
		close(p->tty);
	p->tty = -1;
	p->dead = true;
}

/* An exec whose process has ended and whose output is all read. */
static void proc_check_done(struct monitor *m, struct mon_proc *p)
{
	if (p->is_main || p->dead || !p->exited || p->out.fd >= 0 || p->err.fd >= 0)
		return;
	struct mon_session *s = p->owner;
	if (s) {
		struct lm_exit e = {0};
		if (WIFSIGNALED(p->wstatus)) {
			e.signal = WTERMSIG(p->wstatus);
			e.code = 128 + e.signal;
		} else {
			e.code = WEXITSTATUS(p->wstatus);
		}
		session_end(m, s, LM_STREAM_EXIT, exit_json(&e));
	}
	proc_discard(m, p);
}

static void proc_output_end(struct monitor *m, struct mon_proc *p, struct mon_watch *w)
{
	if (w->fd < 0)
		return;
	if (p->is_main)
		lm_log_writer_end(m->log, w->kind == MON_W_ERR ? LM_LOG_STDERR : LM_LOG_STDOUT);
	mon_watch_close(m, w);
}

void mon_proc_close_output(struct monitor *m, struct mon_proc *p)
{
	proc_output_end(m, p, &p->out);
	proc_output_end(m, p, &p->err);
	proc_check_done(m, p);
}

static void proc_deliver(struct monitor *m, struct mon_proc *p, enum lm_stream_type type, const char *buf,
			 size_t n)
{
	if (!p->is_main) {
		struct mon_session *s = p->owner;
		if (!s || s->state != SS_STREAM || s->gone)
			return; /* its client left: dropped */
		if (session_frame(m, s, type, buf, n) == 0 && s->wbuf.len >= MON_EXEC_BUF_HIGH)
			proc_pause_output(m, p);
		return;
	}
	lm_log_writer_feed(m->log, type == LM_STREAM_STDERR ? LM_LOG_STDERR : LM_LOG_STDOUT, buf, n);
	for (struct mon_session *s = m->sessions; s; s = s->next) {
		if (s->dead || s->is_exec || s->state != SS_STREAM || s->gone)
			continue;
		if (s->wbuf.len + LM_STREAM_HEADER + n > MON_CLIENT_BUF_MAX) {
			m->clients_dropped++;
			session_close(m, s);
			continue;
		}
		session_frame(m, s, type, buf, n);
	}
}

void mon_proc_output(struct monitor *m, struct mon_proc *p, enum mon_watch_kind stream)
{
	struct mon_watch *w = stream == MON_W_ERR ? &p->err : &p->out;
	enum lm_stream_type type = stream == MON_W_ERR ? LM_STREAM_STDERR : LM_STREAM_STDOUT;
	char buf[65536];
	/* a bounded turn: one busy process does not starve the rest */
	for (int k = 0; k < 16 && w->fd >= 0 && !p->out_paused; k++) {
		ssize_t n = read(w->fd, buf, sizeof(buf));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			return;
		if (n <= 0) {
			/* EOF; EIO from a pty master once no process holds the terminal */
			proc_output_end(m, p, w);
			proc_check_done(m, p);
			return;
		}
		proc_deliver(m, p, type, buf, (size_t)n);
		if ((size_t)n < sizeof(buf))
			return;
	}
}

void mon_proc_input(struct monitor *m, struct mon_proc *p)
{
	proc_flush_input(m, p);
	if (p->inbuf.len >= MON_STDIN_MAX && p->in.fd >= 0)
		return;
	for (struct mon_session *s = m->sessions; s; s = s->next)
		if (!s->dead && s->proc == p && s->input_paused) {
			s->input_paused = false;
			session_process(m, s);
		}
}

int64_t mon_proc_tick(struct monitor *m, int64_t now)
{
	int64_t next = 0;
	for (struct mon_proc *p = m->execs; p; p = p->next) {
		if (p->dead || !p->exited || p->out_paused || (p->out.fd < 0 && p->err.fd < 0))
			continue;
		if (now >= p->drain_deadline)
			mon_proc_close_output(m, p);
		else if (!next || p->drain_deadline < next)
			next = p->drain_deadline;
	}
	return next;
}

static struct mon_proc *proc_new(void)
{
	struct mon_proc *p = calloc(1, sizeof(*p));
	if (!p)
		return NULL;
	p->tty = -1;
	p->out = (struct mon_watch){.kind = MON_W_OUT, .fd = -1, .obj = p};
	p->err = (struct mon_watch){.kind = MON_W_ERR, .fd = -1, .obj = p};
	p->in = (struct mon_watch){.kind = MON_W_IN, .fd = -1, .obj = p};
	p->report = (struct mon_watch){.kind = MON_W_REPORT, .fd = -1, .obj = p};
	return p;
}

static void exec_failed(struct monitor *m, struct mon_proc *p, int code, const char *msg)
{
	mon_watch_close(m, &p->report);
	if (p->owner)
		reply_error(m, p->owner, code, "%s", msg);
	proc_discard(m, p);
}

void mon_exec_report(struct monitor *m, struct mon_proc *p)
{
	if (p->report.fd < 0)
		return;
	pid_t pid;
	int master;
	struct lm_error err = {0};
	/* no pipes: a tty was asked for */
	int r = mon_exec_read_report(p->report.fd, p->out.fd < 0, &pid, &master, &err);
	if (r == 0)
		return;
	mon_watch_close(m, &p->report);
	if (r < 0) {
		exec_failed(m, p, err.code, err.msg);
		return;
	}
	p->pid = pid;
	if (master >= 0) {
		p->tty = master;
		fcntl(master, F_SETFL, O_NONBLOCK);
		p->out.fd = fcntl(master, F_DUPFD_CLOEXEC, 3);
		if (p->want_stdin)
			p->in.fd = fcntl(master, F_DUPFD_CLOEXEC, 3);
	}
	mon_watch_set(m, &p->out, EPOLLIN);
	mon_watch_set(m, &p->err, EPOLLIN);
	struct mon_session *s = p->owner;
	if (!s) {
		proc_stdin_eof(m, p); /* its client left while it was starting */
		return;
	}
	s->state = SS_STREAM;
	if (session_line(m, s, json_pack("{s:b}", "ok", 1)) == 0)
		session_process(m, s); /* frames the client sent ahead */
}

bool mon_exec_knows(const struct monitor *m, pid_t pid)
{
	for (const struct mon_proc *p = m->execs; p; p = p->next)
		if (p->helper == pid || (p->pid == pid && !p->exited && !p->dead))
			return true;
	return false;
}

void mon_exec_collect_reports(struct monitor *m)
{
	for (struct mon_proc *p = m->execs; p; p = p->next)
		if (p->report.fd >= 0)
			mon_exec_report(m, p);
}

void mon_exec_reaped(struct monitor *m, pid_t pid, int wstatus)
{
	for (struct mon_proc *p = m->execs; p; p = p->next) {
		if (p->helper == pid) {
			p->helper = 0;
			mon_exec_report(m, p); /* it is there now, or never comes */
			return;
		}
		if (p->pid == pid && !p->exited && !p->dead) {
			p->exited = true;
			p->wstatus = wstatus;
			p->drain_deadline = lm_mono_ns() + MON_DRAIN_NS;
			proc_check_done(m, p);
			return;
		}
	}
}

void mon_exec_end_all(struct monitor *m)
{
	int64_t deadline = lm_mono_ns() + MON_DRAIN_NS;
	for (struct mon_proc *p = m->execs; p; p = p->next) {
		for (int tries = 0; p->report.fd >= 0 && tries < 2; tries++) {
			struct pollfd pfd = {.fd = p->report.fd, .events = POLLIN};
			int left = (int)((deadline - lm_mono_ns()) / 1000000);
			if (left <= 0 || poll(&pfd, 1, left) == 0) {
				/* a starter that hangs (a frozen container): no report comes */
				if (p->helper > 0)
					kill(p->helper, SIGKILL);
				deadline = lm_mono_ns() + 1000000000LL;
			}
			mon_exec_report(m, p);
		}
		if (p->report.fd >= 0)
			exec_failed(m, p, ETIMEDOUT, "exec: the process starting it did not report");
	}
	for (struct mon_proc *p = m->execs; p; p = p->next) {
		if (p->dead)
			continue;
		if (p->pid > 0 && !p->exited) {
			kill(p->pid, SIGKILL);
			int status = 0;
			while (waitpid(p->pid, &status, 0) < 0 && errno == EINTR)
				;
			p->exited = true;
			p->wstatus = status;
		}
		if (!p->out_paused) {
			mon_proc_output(m, p, MON_W_OUT);
			mon_proc_output(m, p, MON_W_ERR);
		}
		mon_proc_close_output(m, p);
	}
}

/* ------------------------------------------------------------ requests */

static json_t *status_json(const struct monitor *m)
{
	return json_pack("{s:I, s:I, s:b, s:b, s:I, s:I, s:i}", "pid", (json_int_t)m->main.pid, "started_at",
			 (json_int_t)m->started_at, "running", m->started && !m->main.exited, "started", m->started,
			 "log_dropped", (json_int_t)lm_log_writer_dropped(m->log), "clients_dropped",
			 (json_int_t)m->clients_dropped, "sessions", (int)m->n_sessions - 1);
}

static int bool_field(json_t *req, const char *key, bool *out)
{
	json_t *v = json_object_get(req, key);
	if (v && !json_is_boolean(v) && !json_is_null(v))
		return -1;
	*out = json_is_true(v);
	return 0;
}

static void attach_begin(struct monitor *m, struct mon_session *s, json_t *req)
{
	if (bool_field(req, "stdin", &s->want_stdin) < 0) {
		reply_error(m, s, EINVAL, "attach: \"stdin\" must be true or false");
		return;
	}
	if (s->want_stdin && !m->opt_stdin) {
		reply_error(m, s, EINVAL, "attach: the container's stdin was not kept open "
						 "(it was started without stdin)");
		return;
	}
	s->proc = &m->main;
	s->state = SS_STREAM;
	if (session_line(m, s, json_pack("{s:b}", "ok", 1)) < 0)
		return;
	if (m->finished) {
		session_end(m, s, LM_STREAM_EXIT, exit_json(&m->exit));
		return;
	}
	/* --start-on-attach: from now on this client sees every byte */
	mon_start_container(m);
}

/* A JSON array of strings as a NULL-terminated vector (NULL for none);
 * -1 when it is something else. */
static int string_vector(json_t *v, bool need_one, char ***out)
{
	*out = NULL;
	if (!v || json_is_null(v))
		return need_one ? -1 : 0;
	size_t n = json_array_size(v);
	if (!json_is_array(v) || (need_one && n == 0))
		return -1;
	char **vec = calloc(n + 1, sizeof(char *));
	if (!vec)
		return -1;
	for (size_t i = 0; i < n; i++) {
		const char *str = json_string_value(json_array_get(v, i));
		if (!str) {
			free(vec);
			return -1;
		}
		vec[i] = (char *)str;
	}
	*out = vec;
	return 0;
}

/* The request's fields; NULL, or what is wrong.  r's vectors are for the caller to free. */
static const char *exec_parse(json_t *req, struct mon_exec_req *r)
{
	json_t *user = json_object_get(req, "user"), *cwd = json_object_get(req, "cwd");
	r->user = json_string_value(user);
	r->cwd = json_string_value(cwd);
	if (string_vector(json_object_get(req, "args"), true, &r->args) < 0)
		return "exec: \"args\" must be a non-empty array of strings";
	if (string_vector(json_object_get(req, "env"), false, &r->env) < 0)
		return "exec: \"env\" must be an array of \"KEY=VALUE\" strings";
	if (user && !json_is_null(user) && !r->user)
		return "exec: \"user\" must be a string \"uid:gid\"";
	if (cwd && !json_is_null(cwd) && !r->cwd)
		return "exec: \"cwd\" must be a string";
	if (bool_field(req, "tty", &r->tty) < 0 || bool_field(req, "stdin", &r->want_stdin) < 0)
		return "exec: \"tty\" and \"stdin\" must be true or false";
	/* the first size is set before the process runs: a RESIZE frame after
	 * the handshake would race with its first look at the terminal */
	json_t *rows = json_object_get(req, "rows"), *cols = json_object_get(req, "cols");
	if ((rows && (!json_is_integer(rows) || json_integer_value(rows) < 0 || json_integer_value(rows) > 65535)) ||
	    (cols && (!json_is_integer(cols) || json_integer_value(cols) < 0 || json_integer_value(cols) > 65535)))
		return "exec: \"rows\" and \"cols\" must be integers from 0 to 65535";
	r->rows = (uint16_t)json_integer_value(rows);
	r->cols = (uint16_t)json_integer_value(cols);
	return NULL;
}

static void exec_begin(struct monitor *m, struct mon_session *s, json_t *req)
{
	if (!m->started) {
		reply_error(m, s, EBUSY, "exec: the container has not started yet");
		return;
	}
	if (m->main.exited) {
		reply_error(m, s, ESRCH, "exec: the container has stopped");
		return;
	}
	struct mon_exec_req r = {0};
	struct lm_error err = {0};
	const char *bad = exec_parse(req, &r);
	struct mon_proc *p = bad ? NULL : proc_new();
	if (bad) {
		reply_error(m, s, EINVAL, "%s", bad);
	} else if (!p) {
		reply_error(m, s, ENOMEM, "out of memory");
	} else {
		p->want_stdin = r.want_stdin;
		if (mon_exec_spawn(m, p, &r, &err) < 0) {
			free(p);
			reply_error(m, s, err.code ? err.code : EIO, "%s", err.msg);
			goto out;
		}
		p->next = m->execs;
		m->execs = p;
		p->owner = s;
		s->proc = p;
		s->is_exec = true;
		s->want_stdin = r.want_stdin;
		s->state = SS_STARTING;
	}
out:
	free(r.args);
	free(r.env);
}

static void session_request(struct monitor *m, struct mon_session *s, json_t *req)
{
	const char *op = json_string_value(json_object_get(req, "op"));
	if (!json_is_object(req) || !op)
		reply_error(m, s, EINVAL, "expected a JSON object with an \"op\"");
	else if (strcmp(op, "status") == 0) {
		s->state = SS_CLOSING;
		session_line(m, s, status_json(m));
	} else if (strcmp(op, "attach") == 0)
		attach_begin(m, s, req);
	else if (strcmp(op, "exec") == 0)
		exec_begin(m, s, req);
	else
		reply_error(m, s, EINVAL, "unknown op \"%s\"", op);
}

/* ------------------------------------------------------------ sessions: input */

/* 1: done with the frame; 0: not now (input is full); -1: the session ended. */
static int session_frame_in(struct monitor *m, struct mon_session *s, enum lm_stream_type type, const char *data,
			    uint32_t len)
{
	struct mon_proc *p = s->proc;
	switch (type) {
	case LM_STREAM_STDIN:
		if (!s->want_stdin || !p || p->in.fd < 0 || p->in_eof)
			return 1; /* nowhere to go */
		if (p->inbuf.len >= MON_STDIN_MAX) {
			s->input_paused = true;
			return 0;
		}
		proc_input(m, p, data, len);
		return 1;
	case LM_STREAM_STDIN_EOF:
		if (s->want_stdin && p)
			proc_stdin_eof(m, p);
		return 1;
	case LM_STREAM_RESIZE:
		if (p)
			proc_resize(p, data, len);
		return 1;
	default:
		session_end(m, s, LM_STREAM_ERROR,
			    json_pack("{s:s}", "message", "a client sends only STDIN, STDIN_EOF and RESIZE frames"));
		return -1;
	}
}

static void session_process(struct monitor *m, struct mon_session *s)
{
	if (s->state == SS_HANDSHAKE) {
		char *line = s->rbuf.data + s->rbuf.off;
		char *nl = s->rbuf.len ? memchr(line, '\n', s->rbuf.len) : NULL;
		if (!nl && s->rbuf.len > REQUEST_MAX) {
			reply_error(m, s, EINVAL, "request line too long");
			return;
		}
		if (!nl && s->read_eof) {
			session_close(m, s);
			return;
		}
		if (nl) {
			size_t len = (size_t)(nl - line);
			json_t *req = json_loadb(line, len, 0, NULL);
			buf_consume(&s->rbuf, len + 1);
			session_request(m, s, req);
			json_decref(req);
			if (s->dead)
				return;
		}
	}
	while (s->state == SS_STREAM && !s->input_paused && s->rbuf.len >= LM_STREAM_HEADER) {
		enum lm_stream_type type;
		uint32_t len;
		const uint8_t *h = (const uint8_t *)s->rbuf.data + s->rbuf.off;
		if (lm_stream_parse_header(h, &type, &len) < 0) {
			session_end(m, s, LM_STREAM_ERROR, json_pack("{s:s}", "message", "malformed frame"));
			return;
		}
		if (s->rbuf.len < LM_STREAM_HEADER + len)
			break;
		int r = session_frame_in(m, s, type, (const char *)h + LM_STREAM_HEADER, len);
		if (r < 0)
			return;
		if (r == 0)
			break;
		buf_consume(&s->rbuf, LM_STREAM_HEADER + len);
	}
	if (s->state == SS_CLOSING)
		buf_free(&s->rbuf);
	if (s->read_eof && s->state == SS_STREAM && !s->input_paused) {
		/* all it sent is taken: an exec's stdin ends with the client's */
		if (s->is_exec && s->want_stdin && s->proc && !s->eof_done)
			proc_stdin_eof(m, s->proc);
		s->eof_done = true;
		buf_free(&s->rbuf); /* a frame cut short by the end: never complete */
	}
	if (session_done(s)) {
		session_close(m, s);
		return;
	}
	session_rearm(m, s);
}

static void session_read(struct monitor *m, struct mon_session *s)
{
	for (int k = 0; k < 16 && !s->dead && !s->read_eof && !s->input_paused && s->rbuf.len < RBUF_MAX &&
			s->state != SS_CLOSING;
	     k++) {
		if (buf_reserve(&s->rbuf, READ_CHUNK) < 0) {
			session_close(m, s);
			return;
		}
		ssize_t n = recv(s->w.fd, s->rbuf.data + s->rbuf.off + s->rbuf.len, READ_CHUNK, MSG_DONTWAIT);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			break;
		if (n <= 0) {
			s->read_eof = true;
			if (n < 0)
				s->gone = true;
		} else {
			s->rbuf.len += (size_t)n;
		}
		session_process(m, s);
	}
	if (!s->dead)
		session_process(m, s);
}

void mon_session_event(struct monitor *m, struct mon_session *s, uint32_t events)
{
	if (s->dead)
		return;
	if (events & (EPOLLHUP | EPOLLERR))
		s->gone = true; /* what it sent is read below; nothing goes to it any more */
	if ((events & EPOLLOUT) && session_flush(m, s) < 0)
		return;
	if (events & (EPOLLIN | EPOLLHUP | EPOLLERR))
		session_read(m, s);
}

int mon_listen(struct monitor *m, struct lm_error *err)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	if (snprintf(sa.sun_path, sizeof(sa.sun_path), "/proc/self/fd/%d/monitor.sock", m->dirfd) >=
	    (int)sizeof(sa.sun_path))
		return lm_err(err, ENAMETOOLONG, "monitor.sock: path too long");
	unlinkat(m->dirfd, "monitor.sock", 0);
	autofd fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return lm_err_sys(err, "monitor.sock");
	mode_t old = umask(0177);
	int rc = bind(fd, (struct sockaddr *)&sa, sizeof(sa));
	umask(old);
	if (rc < 0 || listen(fd, 64) < 0)
		return lm_err_sys(err, "listen on %s/monitor.sock", m->dir);
	return steal_fd(&fd);
}

void mon_accept(struct monitor *m)
{
	for (;;) {
		int fd = accept4(m->listen.fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
		if (fd < 0)
			return;
		struct ucred cred;
		socklen_t len = sizeof(cred);
		const char *refuse = NULL;
		if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0 || cred.uid != 0)
			refuse = "{\"error\":\"only root may talk to the monitor\",\"code\":13}\n";
		else if (m->n_sessions >= MON_SESSIONS_MAX)
			refuse = "{\"error\":\"too many sessions\",\"code\":11}\n";
		struct mon_session *s = refuse ? NULL : calloc(1, sizeof(*s));
		if (!s) {
			if (refuse && send(fd, refuse, strlen(refuse), MSG_NOSIGNAL | MSG_DONTWAIT) < 0) {
				/* it hears nothing more than the close */
			}
			close_client(fd);
			continue;
		}
		s->w = (struct mon_watch){.kind = MON_W_CLIENT, .fd = fd, .obj = s};
		s->next = m->sessions;
		m->sessions = s;
		m->n_sessions++;
		session_rearm(m, s);
	}
}

void mon_sessions_exit(struct monitor *m)
{
	for (struct mon_session *s = m->sessions; s; s = s->next)
		if (!s->dead && !s->is_exec && s->state == SS_STREAM)
			session_end(m, s, LM_STREAM_EXIT, exit_json(&m->exit));
}

bool mon_sessions_busy(const struct monitor *m)
{
	for (const struct mon_session *s = m->sessions; s; s = s->next)
		if (!s->dead && ((s->wbuf.len && !s->gone) || s->state == SS_STARTING))
			return true;
	for (const struct mon_proc *p = m->execs; p; p = p->next)
		if (!p->dead)
			return true;
	return false;
}

void mon_sweep(struct monitor *m, bool all)
{
	bool freed = false;
	for (struct mon_session **pp = &m->sessions; *pp;) {
		struct mon_session *s = *pp;
		if (all)
			session_close(m, s);
		if (!s->dead) {
			pp = &s->next;
			continue;
		}
		*pp = s->next;
		free(s);
		freed = true;
	}
	for (struct mon_proc **pp = &m->execs; *pp;) {
		struct mon_proc *p = *pp;
		if (all)
			proc_discard(m, p);
		if (!p->dead) {
			pp = &p->next;
			continue;
		}
		*pp = p->next;
		free(p);
		freed = true;
	}
	if (all)
		proc_in_close(m, &m->main);
	/* a monitor lives long and mostly idles: give a session's memory back */
	if (freed && !m->sessions && !m->execs) {
		malloc_trim(0);
		mon_drop_code_pages();
	}
}
