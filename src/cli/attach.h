/* The client's side of an attach or exec session (docs/api.md, "Attach and
 * exec"): the frames of monitor/stream.h over the connection that
 * lm_client_upgrade handed over.
 *
 * One poll loop pumps both ways: our stdin into STDIN frames (STDIN_EOF at
 * its end), STDOUT and STDERR frames into our stdout and stderr, until the
 * final EXIT or ERROR frame.  With a terminal the process's size follows
 * ours (RESIZE frames at the start and on SIGWINCH) and, when our stdin is
 * forwarded, our terminal is in raw mode for as long as the session lasts:
 * the keys go to the process, ^C included.
 */
#pragma once

#include <stdbool.h>

#include "util/error.h"

struct lm_attach_opts {
	int in, out, err;  /* our stdin, stdout and stderr: normally 0, 1, 2 */
	/* in -> STDIN frames; STDIN_EOF when in ends.  Without it in is not
	 * touched. */
	bool send_stdin;
	/* The process has a terminal: RESIZE frames with the size of ours (in,
	 * else out; none when neither is one), and with send_stdin a terminal
	 * in is put in raw mode (cfmakeraw) and restored on every way out. */
	bool tty;
	/* SIGINT, SIGTERM, SIGHUP or SIGQUIT reached us (those not ignored
	 * when the session began).  NULL: the session ends (EINTR, and
	 * end->interrupted says which).  Else on_signal(sig, ctx) is called
	 * and the session goes on, unless it returns < 0 (then it ends as
	 * without a handler): how `run` and `attach` pass signals to the
	 * container, as docker's --sig-proxy does. */
	int (*on_signal)(int sig, void *ctx);
	void *ctx;
};

struct lm_attach_end {
	/* after an EXIT frame: */
	int exit_code;    /* the process's, or 128 + signal when a signal killed it */
	int signal;       /* the signal that killed it, 0 if none */
	bool oom_killed;
	/* after a failure: */
	bool error_frame; /* the other side ended with an ERROR frame: err has its
			   * "message" and err->code its "errno" (0 if it gave none) */
	int interrupted;  /* a signal ended the session here (see on_signal) */
};

/* Runs the session on fd, a connected stream socket (made non-blocking
 * here; the caller still owns and closes it), until the EXIT frame: 0 and
 * *end.  Negative with err otherwise: an ERROR frame (end->error_frame), a
 * connection that ended without EXIT (EPIPE), a malformed or unexpected
 * frame (EPROTO), a write to out or err that failed, a signal
 * (end->interrupted, EINTR).  Our terminal and signal mask are as they
 * were when it returns. */
int lm_attach_session(int fd, const struct lm_attach_opts *o, struct lm_attach_end *end, struct lm_error *err);

/* The size of our terminal (stdin's, else stdout's): 0, or -1 when neither
 * is one.  A new terminal is given it before its process runs. */
int lm_attach_term_size(unsigned *rows, unsigned *cols);
