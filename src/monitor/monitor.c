/* `lamina-monitor`: see monitor.h.  This file holds the container's life
 * (create with its stdio, start, exit record) and the event loop; the
 * clients of monitor.sock and the execs are session.c's.
 *
 * One epoll loop over the container's output (pipes or its pty master), its
 * stdin, a pidfd of its init, a signalfd for the subreaper's other children
 * (execs), the socket and its sessions.  Nothing in the loop blocks: not on
 * the log file (the log writer drops and counts what it cannot write, so a
 * full disk cannot stall the container on a full pipe), not on a client
 * (session.c), not on an exec's setup (a forked starter does it). */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <limits.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cli/opts.h"
#include "monitor/logfile.h"
#include "monitor/monitor.h"
#include "monitor/session.h"
#include "runtime/container.h"
#include "runtime/internal.h"
#include "util/cleanup.h"
#include "util/fs.h"


void mon_watch_set(struct monitor *m, struct mon_watch *w, uint32_t events)
{
	if (w->fd < 0 || events == w->events)
		return;
	struct epoll_event ev = {.events = events, .data.ptr = w};
	int op = !w->events ? EPOLL_CTL_ADD : events ? EPOLL_CTL_MOD : EPOLL_CTL_DEL;
	if (epoll_ctl(m->ep, op, w->fd, &ev) == 0 || op == EPOLL_CTL_DEL)
		w->events = events;
}

void mon_watch_close(struct monitor *m, struct mon_watch *w)
{
	if (w->fd < 0)
		return;
	mon_watch_set(m, w, 0);
	close(w->fd);
	w->fd = -1;
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

static json_t *info_json(const struct monitor *m)
{
	return json_pack("{s:I, s:I, s:I, s:I}", "monitor_pid", (json_int_t)getpid(), "monitor_start",
			 (json_int_t)lm_pid_start_time(getpid()), "pid", (json_int_t)m->main.pid, "started_at",
			 (json_int_t)m->started_at);
}

/* --tty and the config's process.terminal must agree; the runtime would
 * refuse too, but in terms of its own command line. */
static int check_terminal(const struct monitor *m, struct lm_error *err)
{
	char path[PATH_MAX];
	if (snprintf(path, sizeof(path), "%s/config.json", m->bundle) >= (int)sizeof(path))
		return lm_err(err, ENAMETOOLONG, "bundle path too long");
	autofree char *text = NULL;
	size_t len;
	if (lm_read_file_at(AT_FDCWD, path, 16 << 20, &text, &len, err) < 0)
		return -1;
	json_t *cfg = json_loadb(text, len, 0, NULL);
	bool terminal = json_is_true(json_object_get(json_object_get(cfg, "process"), "terminal"));
	json_decref(cfg);
	if (!cfg || terminal == m->opt_tty)
		return 0; /* a broken config is the runtime's to report */
	return lm_err(err, EINVAL,
		      m->opt_tty ? "--tty: the config's process.terminal is not true"
				 : "the config's process.terminal is true: the monitor needs --tty");
}

/* Create the container with its stdio: pipes (stdin one only with --stdin,
 * else /dev/null), or with --tty a pty whose master the runtime sends to
 * our console socket. */
static int create_container(struct monitor *m, struct lm_error *err)
{
	struct mon_proc *p = &m->main;
	int out[2] = {-1, -1}, errp[2] = {-1, -1}, in[2] = {-1, -1};
	autofd console = -1, null = -1;
	char console_path[64] = "";
	int rc = -1;
	if (check_terminal(m, err) < 0)
		return -1;
	if (m->opt_tty) {
		console = mon_console_listen(m->dirfd, "console.sock", console_path, sizeof(console_path), err);
		if (console < 0)
			return -1;
	} else if (pipe2(out, O_CLOEXEC) < 0 || pipe2(errp, O_CLOEXEC) < 0 ||
		   (m->opt_stdin && pipe2(in, O_CLOEXEC) < 0)) {
		lm_err_sys(err, "pipe");
		goto out;
	}
	/* the container inherits fds 0-2; ours go back to /dev/null afterwards */
	null = open("/dev/null", O_RDWR | O_CLOEXEC);
	if (null < 0 || dup2(in[0] >= 0 ? in[0] : null, 0) < 0 || dup2(out[1] >= 0 ? out[1] : null, 1) < 0 ||
	    dup2(errp[1] >= 0 ? errp[1] : null, 2) < 0) {
		lm_err_sys(err, "set up the container's stdio");
	} else {
		struct lm_create_opts co = {.root = m->oci_root, .id = m->id, .bundle = m->bundle,
					    .console_socket = m->opt_tty ? console_path : NULL};
		rc = lm_container_create(&co, err);
	}
	if (null >= 0)
		for (int fd = 0; fd < 3; fd++)
			dup2(null, fd);
	if (rc < 0)
		goto out;
	rc = -1;
	if (m->opt_tty) {
		p->tty = mon_console_take(console, err);
		if (p->tty < 0)
			goto fail;
		p->out.fd = fcntl(p->tty, F_DUPFD_CLOEXEC, 3);
		if (m->opt_stdin)
			p->in.fd = fcntl(p->tty, F_DUPFD_CLOEXEC, 3);
		if (p->out.fd < 0 || (m->opt_stdin && p->in.fd < 0)) {
			lm_err_sys(err, "dup the terminal");
			goto fail;
		}
		fcntl(p->tty, F_SETFL, O_NONBLOCK); /* one file description: for out and in too */
	} else {
		p->out.fd = steal_fd(&out[0]);
		p->err.fd = steal_fd(&errp[0]);
		p->in.fd = steal_fd(&in[1]);
		fcntl(p->out.fd, F_SETFL, O_NONBLOCK);
		fcntl(p->err.fd, F_SETFL, O_NONBLOCK);
		if (p->in.fd >= 0)
			fcntl(p->in.fd, F_SETFL, O_NONBLOCK);
	}
	json_t *st = NULL;
	if (lm_container_state(m->oci_root, m->id, &st, err) < 0)
		goto fail;
	p->pid = (pid_t)json_integer_value(json_object_get(st, "pid"));
	json_decref(st);
	m->pidfd.fd = (int)syscall(SYS_pidfd_open, p->pid, 0);
	if (m->pidfd.fd < 0) {
		lm_err_sys(err, "pidfd of the container process");
		goto fail;
	}
	m->started_at = lm_now_ns(); /* until start_now says otherwise */
	rc = 0;
	goto out;
fail:;
	struct lm_error derr;
	lm_container_delete(m->oci_root, m->id, true, &derr);
out:
	if (console >= 0)
		unlinkat(m->dirfd, "console.sock", 0);
	int *fds[] = {out, errp, in};
	for (size_t i = 0; i < 3; i++)
		for (int k = 0; k < 2; k++)
			if (fds[i][k] >= 0)
				close(fds[i][k]);
	return rc;
}

/* A monitor lives as long as its container, one per container: what it
 * keeps resident counts.  Creating and starting the container ran most of
 * the runtime's code, which the loop never runs again, and a session runs
 * code an idle monitor does not need: unmap those pages from us (they stay
 * in the page cache, shared with the other monitors) and let the loop
 * fault back in only what it uses. */
extern char __executable_start[], etext[];
void mon_drop_code_pages(void)
{
	uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE);
	uintptr_t start = ((uintptr_t)__executable_start + page - 1) & ~(page - 1);
	uintptr_t end = (uintptr_t)etext & ~(page - 1);
	if (end > start)
		madvise((void *)start, end - start, MADV_DONTNEED);
}

static int start_now(struct monitor *m, struct lm_error *err)
{
	m->started = true;
	m->started_at = lm_now_ns();
	return lm_container_start(m->oci_root, m->id, err);
}

void mon_start_container(struct monitor *m)
{
	if (m->started || m->main.exited)
		return;
	struct lm_error err;
	if (start_now(m, &err) < 0) {
		/* nobody to tell but the exit record: make sure there is one */
		kill(m->main.pid, SIGKILL);
		return;
	}
	json_t *info = info_json(m);
	write_json_file(m->dirfd, "monitor.json", info, &err);
	json_decref(info);
	mon_drop_code_pages();
}

static void reap(struct monitor *m)
{
	for (;;) {
		/* Look before reaping: an exec's process becomes our child when
		 * its starter exits, and the starter's report, which names it,
		 * may still wait in its socket. */
		siginfo_t si = {0};
		if (waitid(P_ALL, 0, &si, WEXITED | WNOHANG | WNOWAIT) < 0 || si.si_pid == 0)
			return;
		pid_t pid = si.si_pid;
		if (pid != m->main.pid && !mon_exec_knows(m, pid))
			mon_exec_collect_reports(m);
		int status;
		if (waitpid(pid, &status, WNOHANG) != pid)
			return;
		if (pid == m->main.pid) {
			if (!m->main.exited) {
				m->main.exited = true;
				m->main.wstatus = status;
				m->finished_at = lm_now_ns();
				m->main.drain_deadline = lm_mono_ns() + MON_DRAIN_NS;
			}
		} else {
			mon_exec_reaped(m, pid, status);
		}
	}
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
	m->exit.oom_killed = oom;
	if (WIFSIGNALED(m->main.wstatus)) {
		m->exit.signal = WTERMSIG(m->main.wstatus);
		m->exit.code = 128 + m->exit.signal;
	} else {
		m->exit.code = WEXITSTATUS(m->main.wstatus);
	}
	json_t *rec = json_pack("{s:i, s:i, s:b, s:I, s:I, s:I}", "exit_code", m->exit.code, "signal",
				m->exit.signal, "oom_killed", oom, "started_at", (json_int_t)m->started_at,
				"finished_at", (json_int_t)m->finished_at, "log_dropped",
				(json_int_t)lm_log_writer_dropped(m->log));
	write_json_file(m->dirfd, "exit.json", rec, &err);
	json_decref(rec);
}

/* The container has ended and its output is read (or given up on). */
static void finish(struct monitor *m)
{
	mon_exec_end_all(m);
	record_exit(m);
	m->finished = true;
	m->linger_deadline = lm_mono_ns() + MON_DRAIN_NS;
	mon_sessions_exit(m);
}

static int64_t earliest(int64_t a, int64_t b)
{
	return !a ? b : !b ? a : a < b ? a : b;
}

static void dispatch(struct monitor *m, struct mon_watch *w, uint32_t events)
{
	if (w->fd < 0)
		return; /* closed earlier in this turn */
	switch (w->kind) {
	case MON_W_LISTEN:
		mon_accept(m);
		break;
	case MON_W_SIGNAL:
	case MON_W_PIDFD: {
		struct signalfd_siginfo si;
		while (read(m->sig.fd, &si, sizeof(si)) > 0)
			;
		reap(m);
		if (m->main.exited)
			mon_watch_close(m, &m->pidfd);
		break;
	}
	case MON_W_OUT:
	case MON_W_ERR:
		mon_proc_output(m, w->obj, w->kind);
		break;
	case MON_W_IN:
		mon_proc_input(m, w->obj);
		break;
	case MON_W_CLIENT:
		mon_session_event(m, w->obj, events);
		break;
	case MON_W_REPORT:
		mon_exec_report(m, w->obj);
		break;
	}
}

static int run_loop(struct monitor *m)
{
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGCHLD);
	sigprocmask(SIG_BLOCK, &set, NULL);
	m->sig.fd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
	m->ep = epoll_create1(EPOLL_CLOEXEC);
	if (m->sig.fd < 0 || m->ep < 0)
		return -1;
	mon_watch_set(m, &m->main.out, EPOLLIN);
	mon_watch_set(m, &m->main.err, EPOLLIN);
	mon_watch_set(m, &m->pidfd, EPOLLIN);
	mon_watch_set(m, &m->sig, EPOLLIN);
	mon_watch_set(m, &m->listen, EPOLLIN);
	int64_t start_deadline = m->started ? 0 : lm_mono_ns() + MON_ATTACH_WAIT_NS;
	reap(m);
	for (;;) {
		int64_t now = lm_mono_ns(), next = mon_proc_tick(m, now);
		struct mon_proc *p = &m->main;
		if (!m->started && !p->exited) {
			if (now >= start_deadline)
				mon_start_container(m);
			else
				next = earliest(next, start_deadline);
		}
		if (p->exited && (p->out.fd >= 0 || p->err.fd >= 0)) {
			/* processes left in a shared pid namespace may hold the
			 * pipes: give them a moment, then stop reading */
			if (now >= p->drain_deadline)
				mon_proc_close_output(m, p);
			else
				next = earliest(next, p->drain_deadline);
		}
		if (p->exited && p->out.fd < 0 && p->err.fd < 0 && !m->finished)
			finish(m);
		if (m->finished) {
			if (!mon_sessions_busy(m) || now >= m->linger_deadline)
				break;
			next = earliest(next, m->linger_deadline);
		}
		int timeout = -1;
		if (next)
			timeout = next <= now ? 0 : (int)((next - now) / 1000000) + 1;
		struct epoll_event evs[16];
		int n = epoll_wait(m->ep, evs, 16, timeout);
		if (n < 0 && errno != EINTR)
			return -1;
		for (int k = 0; k < n; k++)
			dispatch(m, evs[k].data.ptr, evs[k].events);
		mon_sweep(m, false);
	}
	return 0;
}

static void usage(void)
{
	fprintf(stderr, "Usage: lamina-monitor --id ID --bundle DIR --oci-root DIR --dir DIR --log FILE\n"
			"       [--log-max-size BYTES] [--log-max-files N] [--ready-fd FD]\n"
			"       [--stdin] [--tty] [--start-on-attach]\n"
			"(started by the agent; not meant to be run by hand)\n");
}

int lm_monitor_main(int argc, char **argv)
{
	struct monitor m = {.dirfd = -1, .ep = -1};
	m.main.is_main = true;
	m.main.tty = -1;
	m.main.out = (struct mon_watch){.kind = MON_W_OUT, .fd = -1, .obj = &m.main};
	m.main.err = (struct mon_watch){.kind = MON_W_ERR, .fd = -1, .obj = &m.main};
	m.main.in = (struct mon_watch){.kind = MON_W_IN, .fd = -1, .obj = &m.main};
	m.main.report = (struct mon_watch){.kind = MON_W_REPORT, .fd = -1, .obj = &m.main};
	m.listen = (struct mon_watch){.kind = MON_W_LISTEN, .fd = -1};
	m.sig = (struct mon_watch){.kind = MON_W_SIGNAL, .fd = -1};
	m.pidfd = (struct mon_watch){.kind = MON_W_PIDFD, .fd = -1};
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
		{"stdin", 0, OPT_FLAG, &m.opt_stdin},
		{"tty", 0, OPT_FLAG, &m.opt_tty},
		{"start-on-attach", 0, OPT_FLAG, &m.start_on_attach},
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
	if (lm_log_writer_open(m.log_path, &m.limits, &m.log, &err) < 0 || create_container(&m, &err) < 0)
		goto fail;
	/* listening before the ready line: the agent may attach right after it */
	m.listen.fd = mon_listen(&m, &err);
	if (m.listen.fd < 0 || (!m.start_on_attach && start_now(&m, &err) < 0)) {
		struct lm_error derr;
		lm_container_delete(m.oci_root, m.id, true, &derr);
		goto fail;
	}
	json_t *info = info_json(&m);
	write_json_file(m.dirfd, "monitor.json", info, &err);
	write_line(ready_fd, info);
	json_decref(info);
	if (ready_fd >= 0)
		close(ready_fd);

	mon_drop_code_pages();
	run_loop(&m);
	if (!m.finished) {
		/* only when the loop failed: make sure the container ends with us */
		if (!m.main.exited) {
			kill(m.main.pid, SIGKILL);
			while (waitpid(m.main.pid, &m.main.wstatus, 0) < 0 && errno == EINTR)
				;
			m.main.exited = true;
			m.finished_at = lm_now_ns();
		}
		mon_proc_close_output(&m, &m.main);
		finish(&m);
	}
	mon_sweep(&m, true);
	lm_log_writer_close(m.log);
	unlinkat(m.dirfd, "monitor.sock", 0);
	return 0;
fail:;
	json_t *e = json_pack("{s:s, s:i}", "error", err.msg, "code", err.code);
	write_line(ready_fd, e);
	json_decref(e);
	if (m.listen.fd >= 0)
		unlinkat(m.dirfd, "monitor.sock", 0);
	if (m.log)
		lm_log_writer_close(m.log);
	return 1;
}
