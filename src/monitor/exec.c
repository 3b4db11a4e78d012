/* Starting an exec, and taking a pty master from a console socket.
 *
 * lm_container_exec does its work (join the container's namespaces and
 * cgroup, find the program, switch identity) in the calling process and its
 * child: in the monitor it would stall the loop and page the runtime's code
 * back into a process that should stay small.  A forked starter calls it
 * instead (detached, with a pid file), with the new process's pipes as its
 * stdio, and sends back one report over a socketpair: the pid, or the
 * runtime's error (an unknown command is ENOENT here, before any stream),
 * and a tty's master as SCM_RIGHTS.  Then it exits, and the process, whose
 * parent it was, is reparented to the monitor (the subreaper).  This file
 * knows nothing of sessions. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "monitor/session.h"
#include "util/cleanup.h"
#include "util/fs.h"

/* ------------------------------------------------------------ terminals */

int mon_console_listen(int dirfd, const char *name, char *path, size_t path_len, struct lm_error *err)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	if (snprintf(path, path_len, "/proc/self/fd/%d/%s", dirfd, name) >= (int)path_len ||
	    strlen(path) >= sizeof(sa.sun_path))
		return lm_err(err, ENAMETOOLONG, "console socket %s: name too long", name);
	strcpy(sa.sun_path, path);
	unlinkat(dirfd, name, 0);
	autofd fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return lm_err_sys(err, "console socket");
	mode_t old = umask(0177);
	int rc = bind(fd, (struct sockaddr *)&sa, sizeof(sa));
	umask(old);
	if (rc < 0 || listen(fd, 1) < 0)
		return lm_err_sys(err, "console socket %s", name);
	return steal_fd(&fd);
}

/* One message with at most one fd; the fd is -1 when none came. */
static ssize_t recv_with_fd(int sock, void *buf, size_t len, int *fd, int flags)
{
	char cbuf[CMSG_SPACE(sizeof(int))];
	struct iovec iov = {.iov_base = buf, .iov_len = len};
	struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf, .msg_controllen = sizeof(cbuf)};
	*fd = -1;
	ssize_t n;
	do
		n = recvmsg(sock, &msg, MSG_CMSG_CLOEXEC | flags);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return -1;
	for (struct cmsghdr *c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c))
		if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS && c->cmsg_len == CMSG_LEN(sizeof(int)))
			memcpy(fd, CMSG_DATA(c), sizeof(int));
	return n;
}

int mon_console_take(int lfd, struct lm_error *err)
{
	/* the runtime connected and sent the master before it returned */
	autofd c = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
	if (c < 0)
		return lm_err_sys(err, "no terminal came on the console socket");
	struct pollfd pfd = {.fd = c, .events = POLLIN};
	if (poll(&pfd, 1, 10000) <= 0)
		return lm_err(err, ETIMEDOUT, "no terminal came on the console socket");
	char name[256];
	int fd;
	if (recv_with_fd(c, name, sizeof(name), &fd, 0) < 0 || fd < 0)
		return lm_err(err, EPROTO, "the console socket got no terminal");
	return fd;
}

/* ------------------------------------------------------------ exec */

/* What a starter sends back, with the pty master as SCM_RIGHTS. */
struct exec_report {
	int32_t code;    /* 0: started */
	int32_t pid;
	char msg[LM_ERROR_MSG_MAX];
};

/* In the forked starter: run the exec, report, exit.  Its fds 0-2 are the
 * new process's stdio already. */
__attribute__((noreturn)) static void exec_starter(struct monitor *m, unsigned seq, const struct mon_exec_req *r,
						   int report_fd)
{
	struct exec_report rep = {0};
	struct lm_error err = {0};
	char pid_name[32], cons_name[32], pid_path[64], cons_path[64];
	snprintf(pid_name, sizeof(pid_name), "exec-%u.pid", seq);
	snprintf(cons_name, sizeof(cons_name), "exec-%u.tty", seq);
	snprintf(pid_path, sizeof(pid_path), "/proc/self/fd/%d/%s", m->dirfd, pid_name);
	int lfd = -1, master = -1;
	if (r->tty)
		lfd = mon_console_listen(m->dirfd, cons_name, cons_path, sizeof(cons_path), &err);
	if (!r->tty || lfd >= 0) {
		struct lm_exec_opts o = {.root = m->oci_root, .id = m->id, .args = r->args, .env = r->env,
					 .cwd = r->cwd, .user = r->user, .tty = r->tty,
					 .console_rows = r->rows, .console_cols = r->cols,
					 .console_socket = r->tty ? cons_path : NULL, .detach = true,
					 .pid_file = pid_path};
		struct lm_exit ex;
		if (lm_container_exec(&o, &ex, &err) == 0) {
			char *text = NULL;
			size_t len;
			if (lm_read_file_at(m->dirfd, pid_name, 64, &text, &len, &err) == 0)
				rep.pid = atoi(text);
			free(text);
			if (rep.pid > 0 && r->tty && (master = mon_console_take(lfd, &err)) < 0) {
				kill(rep.pid, SIGKILL);
				rep.pid = 0;
			}
		}
	}
	if (rep.pid <= 0) {
		rep.pid = 0;
		rep.code = err.code > 0 ? err.code : EIO;
		snprintf(rep.msg, sizeof(rep.msg), "%s", err.msg[0] ? err.msg : "exec failed");
	}
	unlinkat(m->dirfd, pid_name, 0);
	if (lfd >= 0)
		unlinkat(m->dirfd, cons_name, 0);
	char cbuf[CMSG_SPACE(sizeof(int))];
	memset(cbuf, 0, sizeof(cbuf));
	struct iovec iov = {.iov_base = &rep, .iov_len = sizeof(rep)};
	struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1};
	if (master >= 0) {
		msg.msg_control = cbuf;
		msg.msg_controllen = sizeof(cbuf);
		struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(sizeof(int));
		memcpy(CMSG_DATA(c), &master, sizeof(int));
	}
	if (sendmsg(report_fd, &msg, MSG_NOSIGNAL) < 0)
		_exit(1);
	_exit(0);
}


int mon_exec_spawn(struct monitor *m, struct mon_proc *p, const struct mon_exec_req *r, struct lm_error *err)
{
	int sv[2] = {-1, -1}, out[2] = {-1, -1}, errp[2] = {-1, -1}, in[2] = {-1, -1};
	int rc = -1;
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0 ||
	    (!r->tty && (pipe2(out, O_CLOEXEC) < 0 || pipe2(errp, O_CLOEXEC) < 0 ||
			 (r->want_stdin && pipe2(in, O_CLOEXEC) < 0)))) {
		lm_err_sys(err, "exec: pipe");
		goto out;
	}
	unsigned seq = ++m->exec_seq;
	pid_t pid = fork();
	if (pid < 0) {
		lm_err_sys(err, "exec: fork");
		goto out;
	}
	if (pid == 0) {
		/* ours are /dev/null: what is not replaced stays so */
		if ((in[0] >= 0 && dup2(in[0], 0) < 0) || (out[1] >= 0 && dup2(out[1], 1) < 0) ||
		    (errp[1] >= 0 && dup2(errp[1], 2) < 0))
			_exit(1);
		exec_starter(m, seq, r, sv[1]);
	}
	p->helper = pid;
	p->report.fd = steal_fd(&sv[0]);
	p->out.fd = steal_fd(&out[0]);
	p->err.fd = steal_fd(&errp[0]);
	p->in.fd = steal_fd(&in[1]);
	int fds[] = {p->out.fd, p->err.fd, p->in.fd};
	for (size_t i = 0; i < 3; i++)
		if (fds[i] >= 0)
			fcntl(fds[i], F_SETFL, O_NONBLOCK);
	mon_watch_set(m, &p->report, EPOLLIN);
	rc = 0;
out:;
	int *all[] = {sv, out, errp, in};
	for (size_t i = 0; i < 4; i++)
		for (int k = 0; k < 2; k++)
			if (all[i][k] >= 0)
				close(all[i][k]);
	return rc;
}

int mon_exec_read_report(int fd, bool want_tty, pid_t *pid, int *master, struct lm_error *err)
{
	struct exec_report rep;
	ssize_t n = recv_with_fd(fd, &rep, sizeof(rep), master, MSG_DONTWAIT);
	if (n < 0 && errno == EAGAIN)
		return 0;
	if (n == (ssize_t)sizeof(rep) && rep.code == 0 && rep.pid > 0 && (*master >= 0) == want_tty) {
		*pid = rep.pid;
		return 1;
	}
	if (*master >= 0)
		close(*master);
	*master = -1;
	if (n == (ssize_t)sizeof(rep) && rep.code) {
		rep.msg[sizeof(rep.msg) - 1] = '\0';
		return lm_err(err, rep.code, "%s", rep.msg);
	}
	return lm_err(err, EIO, "exec: the process starting it failed");
}
