/* `lamina agent`: the daemon's start, its event loop and its shutdown.  See
 * agent.h for the design. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/file.h>
#include <sys/inotify.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include "agent/agent.h"
#include "agent/relay.h"
#include "cli/opts.h"
#include "monitor/logfile.h"
#include "util/fs.h"
#include "util/log.h"

/* epoll tags for the fds that are not a monitor's pidfd */
static char tag_signal, tag_timer, tag_inotify;

void agent_watch_monitor(struct agent *a, struct ctr *c)
{
	struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
	if (epoll_ctl(a->ep, EPOLL_CTL_ADD, c->monitor_pidfd, &ev) < 0)
		lm_warn("watch the monitor of %s: %s", c->rec.name, strerror(errno));
}

static bool is_ctr(struct agent *a, void *p)
{
	for (struct ctr *c = a->ctrs; c; c = c->next)
		if (c == p)
			return true;
	return false;
}

static void arm_timer(struct agent *a)
{
	int64_t next = agent_next_deadline(a);
	struct itimerspec its = {0};
	if (next) {
		int64_t left = next - lm_mono_ns();
		if (left < 1000)
			left = 1000;
		its.it_value.tv_sec = left / 1000000000;
		its.it_value.tv_nsec = left % 1000000000;
	}
	timerfd_settime(a->timerfd, 0, &its, NULL);
}

static int loop(struct agent *a)
{
	while (!a->quit) {
		arm_timer(a);
		struct epoll_event evs[32];
		int n = epoll_wait(a->ep, evs, 32, agent_api_timeout_ms(a));
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		bool http = n == 0;
		for (int k = 0; k < n; k++) {
			void *p = evs[k].data.ptr;
			if (p == &tag_signal) {
				struct signalfd_siginfo si;
				while (read(a->sigfd, &si, sizeof(si)) == (ssize_t)sizeof(si))
					if (si.ssi_signo == SIGTERM || si.ssi_signo == SIGINT) {
						lm_log(LM_LOG_INFO, "signal %d: shutting down", (int)si.ssi_signo);
						a->quit = true;
					}
			} else if (p == &tag_timer) {
				uint64_t ticks;
				if (read(a->timerfd, &ticks, sizeof(ticks)) < 0) {
					/* spurious: the loop re-arms it */
				}
				agent_timers_fire(a);
			} else if (p == &tag_inotify) {
				char buf[4096];
				while (read(a->inotifyfd, buf, sizeof(buf)) > 0)
					;
				agent_api_wake(a);
			} else if (p == a->mhd) {
				http = true;
			} else if (agent_relay_owns(p)) {
				agent_relay_event(p, evs[k].events);
			} else if (is_ctr(a, p)) {
				agent_monitor_exited(a, p);
			}
		}
		/* MHD also has timeouts and resumed connections to look at */
		agent_api_run(a);
		(void)http;
	}
	return 0;
}

static void usage(FILE *f)
{
	fprintf(f, "Usage: lamina [--root DIR] [--state DIR] agent [--socket PATH] [--stop-containers-on-exit]\n"
		   "       [--log-max-size BYTES] [--log-max-files N] [--debug]\n"
		   "\n"
		   "Runs the lamina agent in the foreground: it owns the containers started with\n"
		   "`lamina run -d` and serves the CLI on PATH (default <state>/lamina.sock, mode 0600).\n"
		   "SIGTERM stops the agent but leaves containers running (their monitors keep them);\n"
		   "the next agent re-adopts them.  Container logs rotate at --log-max-size (10 MiB)\n"
		   "keeping --log-max-files files (5).\n");
}

static char *join(const char *a, const char *b)
{
	char *p;
	return asprintf(&p, "%s/%s", a, b) < 0 ? NULL : p;
}

static void agent_free(struct agent *a)
{
	while (a->ctrs) {
		struct ctr *c = a->ctrs;
		a->ctrs = c->next;
		agent_ctr_free(c);
	}
	lm_db_close(a->db);
	free(a->db_path);
	free(a->agent_dir);
	free(a->run_dir);
	free(a->oci_root);
	free(a->layers_dir);
	free(a->socket_path);
	free(a->monitor_exe);
	if (a->ep >= 0)
		close(a->ep);
	if (a->sigfd >= 0)
		close(a->sigfd);
	if (a->timerfd >= 0)
		close(a->timerfd);
	if (a->inotifyfd >= 0)
		close(a->inotifyfd);
	if (a->lock_fd >= 0)
		close(a->lock_fd);
}

int lamina_agent_main(const struct lm_cli_global *g, const char *cmd, int argc, char **argv)
	__attribute__((visibility("default")));

/* The entry point of lamina-agent.so (see src/meson.build). */
int lamina_agent_main(const struct lm_cli_global *g, const char *cmd, int argc, char **argv)
{
	return lm_cli_agent(g, argc, argv);
}

int lm_cli_agent(const struct lm_cli_global *g, int argc, char **argv)
{
	const char *prog = "lamina agent", *socket_path = g->socket, *max_size = NULL;
	bool stop_on_exit = false, help = false, debug = false;
	int max_files = 0;
	struct opt opts[] = {
		{"socket", 0, OPT_STRING, &socket_path},
		{"stop-containers-on-exit", 0, OPT_FLAG, &stop_on_exit},
		{"log-max-size", 0, OPT_STRING, &max_size},
		{"log-max-files", 0, OPT_INT, &max_files},
		{"debug", 0, OPT_FLAG, &debug},
		{"help", 'h', OPT_FLAG, &help},
		{NULL, 0, 0, NULL},
	};
	int i = 1;
	if (parse_opts(argc, argv, &i, opts, prog) < 0 || i != argc) {
		usage(stderr);
		return 2;
	}
	if (help) {
		usage(stdout);
		return 0;
	}
	struct agent a = {.g = g, .ep = -1, .sigfd = -1, .timerfd = -1, .inotifyfd = -1, .listen_fd = -1, .lock_fd = -1};
	int64_t size = 0;
	if (max_size && lm_parse_size(max_size, &size) < 0) {
		fprintf(stderr, "%s: --log-max-size %s: expected a size like 10Mi\n", prog, max_size);
		return 2;
	}
	if (max_files < 0 || max_files > 1000) {
		fprintf(stderr, "%s: --log-max-files: expected 1..1000\n", prog);
		return 2;
	}
	a.logs.max_size = size > 0 ? (uint64_t)size : LM_LOG_DEFAULT_MAX_SIZE;
	a.logs.max_files = max_files > 0 ? (unsigned)max_files : LM_LOG_DEFAULT_MAX_FILES;
	a.stop_containers_on_exit = stop_on_exit;
	lm_log_open("-", false, debug);
	struct lm_error err = {0};
	char exe[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	if (n <= 0) {
		fprintf(stderr, "%s: cannot find its own executable\n", prog);
		return 125;
	}
	exe[n] = '\0';
	/* lamina-monitor lives beside lamina (both in a build tree and installed) */
	char *slash_exe = strrchr(exe, '/');
	if (slash_exe)
		*slash_exe = '\0';
	a.monitor_exe = join(exe, "lamina-monitor");
	a.agent_dir = join(g->root, "agent");
	a.db_path = join(g->root, "agent/agent.db");
	a.run_dir = join(g->state, "agent");
	a.oci_root = join(g->state, "oci");
	a.layers_dir = join(g->root, "containers");
	a.socket_path = socket_path ? strdup(socket_path) : join(g->state, "lamina.sock");
	int rc = 125;
	if (!a.monitor_exe || !a.agent_dir || !a.db_path || !a.run_dir || !a.oci_root || !a.layers_dir ||
	    !a.socket_path) {
		fprintf(stderr, "%s: out of memory\n", prog);
		goto out;
	}
	char *bundles = join(a.agent_dir, "containers");
	int mk = bundles ? lm_mkdir_p(bundles, 0700, &err) : -1;
	free(bundles);
	if (mk < 0 || lm_mkdir_p(a.run_dir, 0700, &err) < 0 || lm_mkdir_p(a.oci_root, 0700, &err) < 0 ||
	    lm_mkdir_p(a.layers_dir, 0700, &err) < 0)
		goto fail;
	char *sockdir = strdup(a.socket_path), *slash = sockdir ? strrchr(sockdir, '/') : NULL;
	if (slash && slash != sockdir) {
		*slash = '\0';
		mk = lm_mkdir_p(sockdir, 0700, &err);
	}
	free(sockdir);
	if (mk < 0)
		goto fail;

	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGCHLD);
	sigprocmask(SIG_BLOCK, &set, NULL);
	signal(SIGPIPE, SIG_IGN);
	a.ep = epoll_create1(EPOLL_CLOEXEC);
	a.sigfd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
	a.timerfd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
	a.inotifyfd = inotify_init1(IN_CLOEXEC | IN_NONBLOCK);
	if (a.ep < 0 || a.sigfd < 0 || a.timerfd < 0 || a.inotifyfd < 0) {
		lm_err_sys(&err, "set up the event loop");
		goto fail;
	}
	struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &tag_signal};
	epoll_ctl(a.ep, EPOLL_CTL_ADD, a.sigfd, &ev);
	ev.data.ptr = &tag_timer;
	epoll_ctl(a.ep, EPOLL_CTL_ADD, a.timerfd, &ev);
	ev.data.ptr = &tag_inotify;
	epoll_ctl(a.ep, EPOLL_CTL_ADD, a.inotifyfd, &ev);

	/* one agent per root: the database has one writer */
	char *lock_path = join(a.agent_dir, "agent.lock");
	a.lock_fd = lock_path ? open(lock_path, O_RDWR | O_CREAT | O_CLOEXEC, 0600) : -1;
	free(lock_path);
	if (a.lock_fd < 0 || flock(a.lock_fd, LOCK_EX | LOCK_NB) < 0) {
		if (errno == EWOULDBLOCK)
			lm_err(&err, EBUSY, "another agent is using %s", g->root);
		else
			lm_err_sys(&err, "lock %s/agent.lock", a.agent_dir);
		goto fail;
	}
	if (access(a.monitor_exe, X_OK) < 0) {
		lm_err_sys(&err, "%s", a.monitor_exe);
		goto fail;
	}
	if (lm_db_open(a.db_path, &a.db, &err) < 0)
		goto fail;
	/* the socket first: a second agent must fail before it touches anything */
	if (agent_api_start(&a, &err) < 0)
		goto fail;
	if (agent_reconcile(&a, &err) < 0)
		goto fail;
	lm_log(LM_LOG_INFO, "lamina agent %s serving %s (root %s, state %s)", LAMINA_VERSION, a.socket_path,
	       g->root, g->state);
	rc = loop(&a) < 0 ? 1 : 0;
	if (a.stop_containers_on_exit)
		agent_stop_all(&a);
	agent_api_stop(&a);
	lm_log(LM_LOG_INFO, "lamina agent stopped");
	goto out;
fail:
	fprintf(stderr, "%s: %s\n", prog, err.msg);
	if (a.mhd)
		agent_api_stop(&a);
out:
	agent_free(&a);
	return rc;
}
