/* `lamina-monitor`: see monitor.h.  One epoll loop over the two output
 * pipes, a pidfd of the container's init, a signalfd for the subreaper's
 * other children and the status socket.  It never blocks on the log file:
 * the log writer drops (and counts) what it cannot write, so a full disk
 * cannot stall the container on a full pipe. */
#include <errno.h>
#include <stdint.h>
#include <fcntl.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cli/opts.h"
#include "monitor/logfile.h"
#include "monitor/monitor.h"
#include "runtime/container.h"
#include "runtime/internal.h"
#include "util/cleanup.h"
#include "util/fs.h"

struct monitor {
	const char *id, *bundle, *oci_root, *dir, *log_path;
	struct lm_log_limits limits;
	struct lm_log_writer *log;
	int dirfd;
	int out_r, err_r;     /* container stdout/stderr, read ends */
	int init_pidfd;
	pid_t pid;
	int64_t started_at, finished_at;
	bool exited;
	int wstatus;
};

static int64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void write_line(int fd, json_t *obj)
{
	char *text = json_dumps(obj, JSON_COMPACT);
	if (text && fd >= 0) {
		size_t len = strlen(text);
		text[len] = '\n';
		if (write(fd, text, len + 1) < 0) {
			/* the agent went away: it reads monitor.json instead */
		}
		text[len] = '\0';
	}
	free(text);
}

static int write_json_file(int dirfd, const char *name, json_t *obj, struct lm_error *err)
{
	char *text = json_dumps(obj, JSON_COMPACT);
	if (!text)
		return lm_err(err, ENOMEM, "out of memory");
	int rc = lm_write_file_atomic_at(dirfd, name, text, strlen(text), 0600, err);
	free(text);
	return rc;
}

/* Create the container with the pipes as its stdio, then start it. */
static int start_container(struct monitor *m, struct lm_error *err)
{
	int out[2], errp[2];
	if (pipe2(out, O_CLOEXEC) < 0)
		return lm_err_sys(err, "pipe");
	if (pipe2(errp, O_CLOEXEC) < 0) {
		close(out[0]);
		close(out[1]);
		return lm_err_sys(err, "pipe");
	}
	m->out_r = out[0];
	m->err_r = errp[0];
	/* the container inherits fds 0-2; ours go to /dev/null afterwards */
	int null = open("/dev/null", O_RDWR | O_CLOEXEC);
	int rc = -1;
	if (null < 0 || dup2(null, 0) < 0 || dup2(out[1], 1) < 0 || dup2(errp[1], 2) < 0) {
		lm_err_sys(err, "set up the container's stdio");
	} else {
		struct lm_create_opts co = {.root = m->oci_root, .id = m->id, .bundle = m->bundle};
		rc = lm_container_create(&co, err);
	}
	if (null >= 0) {
		dup2(null, 1);
		dup2(null, 2);
		close(null);
	}
	close(out[1]);
	close(errp[1]);
	if (rc < 0)
		return -1;
	json_t *st = NULL;
	if (lm_container_state(m->oci_root, m->id, &st, err) < 0)
		goto fail;
	m->pid = (pid_t)json_integer_value(json_object_get(st, "pid"));
	json_decref(st);
	m->init_pidfd = (int)syscall(SYS_pidfd_open, m->pid, 0);
	if (m->init_pidfd < 0) {
		lm_err_sys(err, "pidfd of the container process");
		goto fail;
	}
	m->started_at = now_ns();
	if (lm_container_start(m->oci_root, m->id, err) < 0)
		goto fail;
	return 0;
fail:;
	struct lm_error derr;
	lm_container_delete(m->oci_root, m->id, true, &derr);
	return -1;
}

static void drain(struct monitor *m, int *fd, enum lm_log_stream s)
{
	char buf[65536];
	for (;;) {
		ssize_t n = read(*fd, buf, sizeof(buf));
		if (n > 0) {
			lm_log_writer_feed(m->log, s, buf, (size_t)n);
			if ((size_t)n < sizeof(buf))
				return;
			continue;
		}
		if (n < 0 && (errno == EINTR))
			continue;
		if (n < 0 && errno == EAGAIN)
			return;
		lm_log_writer_end(m->log, s);
		close(*fd);
		*fd = -1;
		return;
	}
}

static void reap(struct monitor *m)
{
	for (;;) {
		int status;
		pid_t p = waitpid(-1, &status, WNOHANG);
		if (p <= 0)
			return;
		if (p == m->pid && !m->exited) {
			m->exited = true;
			m->wstatus = status;
			m->finished_at = now_ns();
		}
	}
}

static json_t *status_json(const struct monitor *m)
{
	return json_pack("{s:I, s:I, s:b, s:I}", "pid", (json_int_t)m->pid, "started_at",
			 (json_int_t)m->started_at, "running", !m->exited, "log_dropped",
			 (json_int_t)lm_log_writer_dropped(m->log));
}

/* One request per connection, answered at once (the agent's calls are rare). */
static void serve(struct monitor *m, int lfd)
{
	int c = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
	if (c < 0)
		return;
	struct timeval tv = {.tv_sec = 1};
	setsockopt(c, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	struct ucred cred;
	socklen_t len = sizeof(cred);
	char req[512];
	ssize_t n = -1;
	if (getsockopt(c, SOL_SOCKET, SO_PEERCRED, &cred, &len) == 0 && cred.uid == 0)
		n = read(c, req, sizeof(req) - 1);
	if (n > 0) {
		req[n] = '\0';
		json_t *r = json_loads(req, 0, NULL);
		const char *op = json_string_value(json_object_get(r, "op"));
		json_t *resp = op && strcmp(op, "status") == 0 ? status_json(m)
							       : json_pack("{s:s}", "error", "unknown request");
		write_line(c, resp);
		json_decref(resp);
		json_decref(r);
	}
	close(c);
}

static int listen_status(struct monitor *m)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	if (snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/monitor.sock", m->dir) >= (int)sizeof(sa.sun_path))
		return -1;
	unlink(sa.sun_path);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return -1;
	mode_t old = umask(0077);
	int rc = bind(fd, (struct sockaddr *)&sa, sizeof(sa));
	umask(old);
	if (rc < 0 || listen(fd, 8) < 0) {
		close(fd);
		return -1;
	}
	return fd;
}

static int run_loop(struct monitor *m)
{
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGCHLD);
	sigprocmask(SIG_BLOCK, &set, NULL);
	autofd sfd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
	autofd ep = epoll_create1(EPOLL_CLOEXEC);
	autofd lfd = listen_status(m);
	if (sfd < 0 || ep < 0)
		return -1;
	fcntl(m->out_r, F_SETFL, O_NONBLOCK);
	fcntl(m->err_r, F_SETFL, O_NONBLOCK);
	struct epoll_event ev = {.events = EPOLLIN};
	ev.data.fd = m->out_r;
	epoll_ctl(ep, EPOLL_CTL_ADD, m->out_r, &ev);
	ev.data.fd = m->err_r;
	epoll_ctl(ep, EPOLL_CTL_ADD, m->err_r, &ev);
	ev.data.fd = m->init_pidfd;
	epoll_ctl(ep, EPOLL_CTL_ADD, m->init_pidfd, &ev);
	ev.data.fd = sfd;
	epoll_ctl(ep, EPOLL_CTL_ADD, sfd, &ev);
	if (lfd >= 0) {
		ev.data.fd = lfd;
		epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &ev);
	}
	reap(m);
	/* After init exits, processes left in a shared pid namespace may hold
	 * the pipes: give them a moment, then stop reading. */
	int64_t exit_deadline = 0;
	while (m->out_r >= 0 || m->err_r >= 0 || !m->exited) {
		int timeout = -1;
		if (m->exited) {
			if (!exit_deadline)
				exit_deadline = now_ns() + 2000000000LL;
			int64_t left = exit_deadline - now_ns();
			if (left <= 0)
				break;
			timeout = (int)(left / 1000000) + 1;
		}
		struct epoll_event evs[8];
		int n = epoll_wait(ep, evs, 8, timeout);
		if (n < 0 && errno != EINTR)
			return -1;
		for (int k = 0; k < n; k++) {
			int fd = evs[k].data.fd;
			if (fd == m->out_r)
				drain(m, &m->out_r, LM_LOG_STDOUT);
			else if (fd == m->err_r)
				drain(m, &m->err_r, LM_LOG_STDERR);
			else if (fd == sfd || fd == m->init_pidfd) {
				struct signalfd_siginfo si;
				while (read(sfd, &si, sizeof(si)) > 0)
					;
				reap(m);
				if (m->exited && m->init_pidfd >= 0) {
					epoll_ctl(ep, EPOLL_CTL_DEL, m->init_pidfd, NULL);
					close(m->init_pidfd);
					m->init_pidfd = -1;
				}
			} else if (fd == lfd)
				serve(m, lfd);
		}
	}
	return 0;
}

static void record_exit(struct monitor *m)
{
	struct lm_error err;
	json_t *st = NULL;
	bool oom = false;
	if (lm_container_state(m->oci_root, m->id, &st, &err) == 0)
		oom = json_is_true(json_object_get(st, "oomKilled"));
	json_decref(st);
	lm_container_delete(m->oci_root, m->id, true, &err);
	int code = 0, sig = 0;
	if (WIFSIGNALED(m->wstatus)) {
		sig = WTERMSIG(m->wstatus);
		code = 128 + sig;
	} else {
		code = WEXITSTATUS(m->wstatus);
	}
	json_t *rec = json_pack("{s:i, s:i, s:b, s:I, s:I, s:I}", "exit_code", code, "signal", sig, "oom_killed",
				oom, "started_at", (json_int_t)m->started_at, "finished_at",
				(json_int_t)m->finished_at, "log_dropped",
				(json_int_t)lm_log_writer_dropped(m->log));
	write_json_file(m->dirfd, "exit.json", rec, &err);
	json_decref(rec);
}

static void usage(void)
{
	fprintf(stderr, "Usage: lamina-monitor --id ID --bundle DIR --oci-root DIR --dir DIR --log FILE\n"
			"       [--log-max-size BYTES] [--log-max-files N] [--ready-fd FD]\n"
			"(started by the agent; not meant to be run by hand)\n");
}

/* A monitor lives as long as its container, one per container: what it
 * keeps resident counts.  Creating the container ran most of the runtime's
 * code, which the loop never runs again: unmap those pages from us (they
 * stay in the page cache, shared with the other monitors) and let the loop
 * fault back in only what it uses. */
extern char __executable_start[], etext[];
static void drop_startup_code(void)
{
	uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE);
	uintptr_t start = ((uintptr_t)__executable_start + page - 1) & ~(page - 1);
	uintptr_t end = (uintptr_t)etext & ~(page - 1);
	if (end > start)
		madvise((void *)start, end - start, MADV_DONTNEED);
}

int lm_monitor_main(int argc, char **argv)
{
	struct monitor m = {.out_r = -1, .err_r = -1, .init_pidfd = -1, .dirfd = -1};
	const char *max_size = NULL;
	int max_files = 0, ready_fd = -1;
	struct opt opts[] = {
		{"id", 0, OPT_STRING, &m.id},
		{"bundle", 0, OPT_STRING, &m.bundle},
		{"oci-root", 0, OPT_STRING, &m.oci_root},
		{"dir", 0, OPT_STRING, &m.dir},
		{"log", 0, OPT_STRING, &m.log_path},
		{"log-max-size", 0, OPT_STRING, &max_size},
		{"log-max-files", 0, OPT_INT, &max_files},
		{"ready-fd", 0, OPT_INT, &ready_fd},
		{NULL, 0, 0, NULL},
	};
	int i = 1;
	if (parse_opts(argc, argv, &i, opts, "lamina-monitor") < 0 || i != argc || !m.id || !m.bundle ||
	    !m.oci_root || !m.dir || !m.log_path || max_files < 0) {
		usage();
		return 2;
	}
	m.limits.max_size = max_size ? strtoull(max_size, NULL, 10) : 0;
	m.limits.max_files = (unsigned)max_files;
	if (ready_fd >= 0)
		fcntl(ready_fd, F_SETFD, FD_CLOEXEC);

	/* Detach: a session of our own, and a parent that is not the agent. */
	setsid();
	pid_t child = fork();
	if (child < 0)
		return 1;
	if (child > 0)
		_exit(0);
	prctl(PR_SET_CHILD_SUBREAPER, 1);
	signal(SIGPIPE, SIG_IGN);
	signal(SIGHUP, SIG_IGN);
	signal(SIGINT, SIG_IGN);
	signal(SIGTERM, SIG_IGN);
	if (chdir("/") < 0)
		return 1;

	struct lm_error err = {0};
	m.dirfd = open(m.dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (m.dirfd < 0) {
		lm_err_sys(&err, "open %s", m.dir);
		goto fail;
	}
	if (lm_log_writer_open(m.log_path, &m.limits, &m.log, &err) < 0 || start_container(&m, &err) < 0)
		goto fail;
	unsigned long long mstart = lm_pid_start_time(getpid());
	json_t *info = json_pack("{s:I, s:I, s:I, s:I}", "monitor_pid", (json_int_t)getpid(), "monitor_start",
				 (json_int_t)mstart, "pid", (json_int_t)m.pid, "started_at",
				 (json_int_t)m.started_at);
	write_json_file(m.dirfd, "monitor.json", info, &err);
	write_line(ready_fd, info);
	json_decref(info);
	if (ready_fd >= 0)
		close(ready_fd);

	drop_startup_code();
	run_loop(&m);
	if (!m.exited) {
		/* only when the loop failed: make sure the container ends with us */
		kill(m.pid, SIGKILL);
		while (waitpid(m.pid, &m.wstatus, 0) < 0 && errno == EINTR)
			;
		m.exited = true;
		m.finished_at = now_ns();
	}
	record_exit(&m);
	lm_log_writer_close(m.log);
	unlinkat(m.dirfd, "monitor.sock", 0);
	return 0;
fail:;
	json_t *e = json_pack("{s:s, s:i}", "error", err.msg, "code", err.code);
	write_line(ready_fd, e);
	json_decref(e);
	if (m.log)
		lm_log_writer_close(m.log);
	return 1;
}
