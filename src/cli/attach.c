/* An attach or exec session, the client's side (see attach.h).
 *
 * The socket is non-blocking and what goes to it waits in a buffer: stdin
 * is read only when that buffer is empty, so a process that does not read
 * its stdin slows our reading of ours down, and never stops us from taking
 * its output (which would deadlock a process that writes as much as it
 * reads).  Our stdout and stderr are written fully before the next read
 * from the socket: a slow reader of our output slows the process down, as
 * a pipe would.
 *
 * The signals the session handles are blocked and read from a signalfd in
 * the same poll, so that the terminal is restored whatever ends the
 * session: a signal never runs a handler or kills us while the terminal is
 * raw.
 */
#include "cli/attach.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <termios.h>
#include <unistd.h>

#include "monitor/stream.h"
#include "util/cleanup.h"

#define READ_CHUNK (64u << 10)
#define STDIN_CHUNK (32u << 10)

static const int session_signals[] = {SIGINT, SIGTERM, SIGHUP, SIGQUIT};

struct session {
	int fd;
	const struct lm_attach_opts *o;
	struct lm_attach_end *end;
	struct lm_error *err;
	/* to the socket */
	uint8_t *out;
	size_t out_len, out_off, out_cap;
	bool stdin_done;   /* EOF seen (and STDIN_EOF queued), or not forwarded */
	bool send_broken;  /* the other side stopped reading: drop what we would send */
	/* from the socket: the frame being read */
	uint8_t hdr[LM_STREAM_HEADER];
	size_t hdr_len;
	enum lm_stream_type type;
	uint32_t left;     /* payload bytes of the frame still to come */
	char *payload;     /* an EXIT or ERROR frame's, gathered */
	size_t payload_len;
};

/* --- writing --- */

/* All of p to fd, waiting out EAGAIN (a non-blocking stdout) and EINTR. */
static int write_all(int fd, const char *p, size_t n)
{
	while (n > 0) {
		ssize_t w = write(fd, p, n);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN) {
				struct pollfd pfd = {.fd = fd, .events = POLLOUT};
				poll(&pfd, 1, -1);
				continue;
			}
			return -1;
		}
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

/* Queues one frame for the socket. */
static int queue_frame(struct session *s, enum lm_stream_type type, const void *data, size_t len)
{
	if (s->send_broken)
		return 0;
	if (s->out_off == s->out_len)
		s->out_off = s->out_len = 0;
	size_t need = s->out_len + LM_STREAM_HEADER + len;
	if (need > s->out_cap) {
		size_t cap = s->out_cap ? s->out_cap : 4096;
		while (cap < need)
			cap *= 2;
		uint8_t *b = realloc(s->out, cap);
		if (!b)
			return lm_err(s->err, ENOMEM, "out of memory");
		s->out = b;
		s->out_cap = cap;
	}
	lm_stream_header(s->out + s->out_len, type, (uint32_t)len);
	if (len)
		memcpy(s->out + s->out_len + LM_STREAM_HEADER, data, len);
	s->out_len = need;
	return 0;
}

/* Sends what the socket takes now.  A peer that stopped reading is no
 * error here: its last frames (EXIT, ERROR) may still be on their way. */
static int flush_out(struct session *s)
{
	while (s->out_off < s->out_len) {
		ssize_t w = send(s->fd, s->out + s->out_off, s->out_len - s->out_off, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN)
				return 0;
			if (errno == EPIPE || errno == ECONNRESET) {
				s->send_broken = true;
				s->stdin_done = true;
				s->out_off = s->out_len = 0;
				return 0;
			}
			return lm_err_sys(s->err, "writing to the session");
		}
		s->out_off += (size_t)w;
	}
	return 0;
}

/* The size of our terminal (in, else out) as a RESIZE frame; nothing when
 * neither is a terminal. */
static int queue_resize(struct session *s)
{
	struct winsize ws;
	if (ioctl(s->o->in, TIOCGWINSZ, &ws) < 0 && ioctl(s->o->out, TIOCGWINSZ, &ws) < 0)
		return 0;
	if (!ws.ws_row || !ws.ws_col)
		return 0;
	char msg[64];
	int n = snprintf(msg, sizeof(msg), "{\"rows\":%u,\"cols\":%u}", ws.ws_row, ws.ws_col);
	return queue_frame(s, LM_STREAM_RESIZE, msg, (size_t)n);
}

static int pump_stdin(struct session *s)
{
	char buf[STDIN_CHUNK];
	ssize_t n = read(s->o->in, buf, sizeof(buf));
	if (n < 0 && (errno == EINTR || errno == EAGAIN))
		return 0;
	if (n > 0)
		return queue_frame(s, LM_STREAM_STDIN, buf, (size_t)n);
	/* the end, or an input that failed (a terminal hung up): either way
	 * the process sees the end of its input */
	s->stdin_done = true;
	return queue_frame(s, LM_STREAM_STDIN_EOF, NULL, 0);
}

/* --- reading --- */

static int final_exit(struct session *s)
{
	json_error_t jerr;
	json_t *j = json_loadb(s->payload ? s->payload : "", s->payload_len, 0, &jerr);
	if (!json_is_object(j)) {
		json_decref(j);
		return lm_err(s->err, EPROTO, "the session's exit frame is not a JSON object");
	}
	json_t *code = json_object_get(j, "exit_code"), *sig = json_object_get(j, "signal");
	if (!json_is_integer(code) || (sig && !json_is_integer(sig) && !json_is_null(sig))) {
		json_decref(j);
		return lm_err(s->err, EPROTO, "the session's exit frame has no exit code");
	}
	/* as lm_container_exit_code: a death by signal N is 128+N, whether the
	 * code already says so or not */
	s->end->signal = (int)json_integer_value(sig);
	s->end->exit_code = (int)json_integer_value(code);
	if (s->end->signal > 0 && s->end->exit_code <= 0)
		s->end->exit_code = 128 + s->end->signal;
	s->end->oom_killed = json_is_true(json_object_get(j, "oom_killed"));
	json_decref(j);
	return 1;
}

static int final_error(struct session *s)
{
	json_t *j = json_loadb(s->payload ? s->payload : "", s->payload_len, 0, NULL);
	const char *msg = json_string_value(json_object_get(j, "message"));
	json_t *code = json_object_get(j, "errno");
	if (!json_is_integer(code))
		code = json_object_get(j, "code");
	json_int_t c = json_integer_value(code);
	s->end->error_frame = true;
	int rc;
	if (msg && *msg)
		rc = lm_err(s->err, c > 0 && c < 4096 ? (int)c : 0, "%s", msg);
	else
		rc = lm_err(s->err, c > 0 && c < 4096 ? (int)c : 0, "the session ended with an error (%.*s)",
			    (int)(s->payload_len > 200 ? 200 : s->payload_len), s->payload ? s->payload : "");
	json_decref(j);
	return rc;
}

/* A frame has all its payload. 1 at the final frame. */
static int frame_done(struct session *s)
{
	int rc = 0;
	if (s->type == LM_STREAM_EXIT)
		rc = final_exit(s);
	else if (s->type == LM_STREAM_ERROR)
		rc = final_error(s);
	free(s->payload);
	s->payload = NULL;
	s->payload_len = 0;
	s->hdr_len = 0;
	return rc;
}

/* Takes n bytes from the socket: 0 to go on, 1 after the final EXIT frame,
 * negative on an error (an ERROR frame included). */
static int feed(struct session *s, const char *p, size_t n)
{
	while (n > 0) {
		if (s->hdr_len < LM_STREAM_HEADER) {
			size_t take = LM_STREAM_HEADER - s->hdr_len < n ? LM_STREAM_HEADER - s->hdr_len : n;
			memcpy(s->hdr + s->hdr_len, p, take);
			s->hdr_len += take;
			p += take;
			n -= take;
			if (s->hdr_len < LM_STREAM_HEADER)
				return 0;
			if (lm_stream_parse_header(s->hdr, &s->type, &s->left) < 0)
				return lm_err(s->err, EPROTO,
					      "the session sent a malformed frame header (%02x %02x %02x %02x %02x %02x "
					      "%02x %02x)",
					      s->hdr[0], s->hdr[1], s->hdr[2], s->hdr[3], s->hdr[4], s->hdr[5], s->hdr[6],
					      s->hdr[7]);
			if (s->type != LM_STREAM_STDOUT && s->type != LM_STREAM_STDERR && s->type != LM_STREAM_EXIT &&
			    s->type != LM_STREAM_ERROR)
				return lm_err(s->err, EPROTO, "the session sent a frame of type %d, which only a client sends",
					      (int)s->type);
			if ((s->type == LM_STREAM_EXIT || s->type == LM_STREAM_ERROR) &&
			    !(s->payload = malloc(s->left + 1)))
				return lm_err(s->err, ENOMEM, "out of memory");
			if (s->left == 0) {
				int rc = frame_done(s);
				if (rc)
					return rc;
			}
			continue;
		}
		size_t take = s->left < n ? s->left : n;
		if (s->type == LM_STREAM_STDOUT || s->type == LM_STREAM_STDERR) {
			int out = s->type == LM_STREAM_STDOUT ? s->o->out : s->o->err;
			if (write_all(out, p, take) < 0)
				return lm_err_sys(s->err, "writing the container's %s",
						  s->type == LM_STREAM_STDOUT ? "output" : "error output");
		} else {
			memcpy(s->payload + s->payload_len, p, take);
			s->payload_len += take;
		}
		s->left -= (uint32_t)take;
		p += take;
		n -= take;
		if (s->left == 0) {
			int rc = frame_done(s);
			if (rc)
				return rc;
		}
	}
	return 0;
}

static int pump_socket(struct session *s)
{
	char buf[READ_CHUNK];
	ssize_t n = recv(s->fd, buf, sizeof(buf), MSG_DONTWAIT);
	if (n < 0) {
		if (errno == EINTR || errno == EAGAIN)
			return 0;
		if (errno != ECONNRESET)
			return lm_err_sys(s->err, "reading the session");
	}
	/* a peer that closed with our last frames unread: a reset, not an end */
	if (n <= 0)
		return lm_err(s->err, EPIPE, "the session ended without the process's exit status%s",
			      s->hdr_len ? " (in the middle of a frame)" : "");
	return feed(s, buf, (size_t)n);
}

/* --- signals --- */

/* 0 to go on, negative to end the session. */
static int on_signalfd(struct session *s, int sfd)
{
	struct signalfd_siginfo si;
	while (read(sfd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
		int sig = (int)si.ssi_signo;
		if (sig == SIGWINCH) {
			if (s->o->tty && queue_resize(s) < 0)
				return -1;
		} else if (sig != SIGPIPE) {
			/* SIGPIPE: a write that failed says so itself */
			if (s->o->on_signal && s->o->on_signal(sig, s->o->ctx) >= 0)
				continue;
			s->end->interrupted = sig;
			return lm_err(s->err, EINTR, "interrupted by %s", strsignal(sig));
		}
	}
	return 0;
}

/* --- the session --- */

static int loop(struct session *s, int sfd)
{
	if (s->o->tty && queue_resize(s) < 0)
		return -1;
	for (;;) {
		if (flush_out(s) < 0)
			return -1;
		bool pending = s->out_off < s->out_len;
		struct pollfd pfd[3] = {
			{.fd = s->fd, .events = POLLIN | (pending ? POLLOUT : 0)},
			{.fd = !s->stdin_done && !pending ? s->o->in : -1, .events = POLLIN},
			{.fd = sfd, .events = POLLIN},
		};
		if (poll(pfd, 3, -1) < 0) {
			if (errno == EINTR)
				continue;
			return lm_err_sys(s->err, "poll");
		}
		if (pfd[2].revents && on_signalfd(s, sfd) < 0)
			return -1;
		/* the socket's data first: an EXIT frame ends the session even
		 * when stdin has more */
		if (pfd[0].revents & (POLLIN | POLLHUP | POLLERR)) {
			int rc = pump_socket(s);
			if (rc)
				return rc < 0 ? rc : 0;
		}
		if (pfd[1].revents && pump_stdin(s) < 0)
			return -1;
	}
}

/* The signals this session handles: the terminating ones that are not
 * ignored (a background job's SIGINT stays ignored), SIGWINCH, SIGPIPE. */
static void session_sigset(sigset_t *set)
{
	sigemptyset(set);
	sigaddset(set, SIGWINCH);
	sigaddset(set, SIGPIPE);
	for (size_t k = 0; k < sizeof(session_signals) / sizeof(session_signals[0]); k++) {
		struct sigaction sa;
		if (sigaction(session_signals[k], NULL, &sa) == 0 && sa.sa_handler == SIG_IGN)
			continue;
		sigaddset(set, session_signals[k]);
	}
}

/* Signals that came after the end, before the mask is restored: read here
 * so that none of them acts on its own once unblocked (a SIGPIPE from a
 * last write would kill us).  The session is over, so they are dropped. */
static void drain_signals(int sfd)
{
	struct signalfd_siginfo si;
	while (read(sfd, &si, sizeof(si)) == (ssize_t)sizeof(si))
		;
}

int lm_attach_session(int fd, const struct lm_attach_opts *o, struct lm_attach_end *end, struct lm_error *err)
{
	struct session s = {.fd = fd, .o = o, .end = end, .err = err, .stdin_done = !o->send_stdin};
	struct termios saved = {0};
	bool raw = false;
	sigset_t set, old;
	autofd sfd = -1;
	int rc = -1;
	*end = (struct lm_attach_end){0};
	/* what was printed before goes out before the process's output */
	fflush(stdout);
	fflush(stderr);

	int fl = fcntl(fd, F_GETFL);
	if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)
		return lm_err_sys(err, "session socket");
	session_sigset(&set);
	int e = pthread_sigmask(SIG_BLOCK, &set, &old);
	if (e) {
		errno = e;
		return lm_err_sys(err, "block signals");
	}
	sfd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
	if (sfd < 0) {
		lm_err_sys(err, "signalfd");
		goto out;
	}
	if (o->tty && o->send_stdin && isatty(o->in)) {
		if (tcgetattr(o->in, &saved) < 0) {
			lm_err_sys(err, "reading the terminal's settings");
			goto out;
		}
		struct termios t = saved;
		cfmakeraw(&t);
		if (tcsetattr(o->in, TCSANOW, &t) < 0) {
			lm_err_sys(err, "putting the terminal in raw mode");
			goto out;
		}
		raw = true;
	}
	rc = loop(&s, sfd);
	/* what stdin still had queued, STDIN_EOF most of all, as far as the
	 * socket takes it now: nothing waits for it any more */
	if (rc == 0)
		flush_out(&s);
out:
	if (raw)
		tcsetattr(o->in, TCSANOW, &saved);
	if (sfd >= 0)
		drain_signals(sfd);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	free(s.out);
	free(s.payload);
	return rc;
}

int lm_attach_term_size(unsigned *rows, unsigned *cols)
{
	struct winsize ws;
	if (ioctl(STDIN_FILENO, TIOCGWINSZ, &ws) < 0 && ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) < 0)
		return -1;
	if (!ws.ws_row || !ws.ws_col)
		return -1;
	*rows = ws.ws_row;
	*cols = ws.ws_col;
	return 0;
}
