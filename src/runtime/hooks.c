/* OCI hooks: run one kind of hook, in order, each with the container's
 * state on its stdin.
 *
 * The same runner serves both sides of create: the runtime (prestart,
 * createRuntime, poststart, poststop) and the container process before its
 * exec (createContainer, startContainer), so it forks and execs directly.
 * Between fork and execve the child calls only async-signal-safe functions
 * (a caller such as the agent may have threads).  The hook gets exactly
 * three fds: the state (a memfd, so a hook that never reads stdin cannot
 * block us), and one pipe for stdout and stderr that we read ourselves: its
 * output never mixes with the container's stdio, which in `create` is the
 * runtime's own stdio.  A failing hook's output goes into the error, as
 * runc does.  The hook leads its own process group so that a timeout kills
 * what it started too (a shell script's `sleep`), and after the hook exits
 * we only drain what its pipe already holds: a helper it left running with
 * the pipe open cannot hang the runtime.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "runtime/internal.h"
#include "util/cleanup.h"
#include "util/log.h"

/* How much of a hook's output we keep for its error message. */
#define HOOK_OUTPUT_MAX 4096
/* How much of it the one-line error quotes. */
#define HOOK_OUTPUT_QUOTE 400

const char *lm_hook_kind_name(enum lm_hook_kind kind)
{
	switch (kind) {
	case LM_HOOK_PRESTART: return "prestart";
	case LM_HOOK_CREATE_RUNTIME: return "createRuntime";
	case LM_HOOK_CREATE_CONTAINER: return "createContainer";
	case LM_HOOK_START_CONTAINER: return "startContainer";
	case LM_HOOK_POSTSTART: return "poststart";
	case LM_HOOK_POSTSTOP: return "poststop";
	}
	return "unknown";
}

size_t lm_hooks_of(const struct lm_hooks *h, enum lm_hook_kind kind, const struct lm_hook **list)
{
	switch (kind) {
	case LM_HOOK_PRESTART: *list = h->prestart; return h->n_prestart;
	case LM_HOOK_CREATE_RUNTIME: *list = h->create_runtime; return h->n_create_runtime;
	case LM_HOOK_CREATE_CONTAINER: *list = h->create_container; return h->n_create_container;
	case LM_HOOK_START_CONTAINER: *list = h->start_container; return h->n_start_container;
	case LM_HOOK_POSTSTART: *list = h->poststart; return h->n_poststart;
	case LM_HOOK_POSTSTOP: *list = h->poststop; return h->n_poststop;
	}
	*list = NULL;
	return 0;
}

json_t *lm_spec_annotations_json(const struct lm_spec *spec)
{
	if (!spec->n_annotations)
		return NULL;
	json_t *ann = json_object();
	for (size_t i = 0; ann && i < spec->n_annotations; i++)
		json_object_set_new(ann, spec->annotation_keys[i], json_string(spec->annotation_values[i]));
	return ann;
}

char *lm_hook_state_json(const char *id, enum lm_status status, pid_t pid, const char *bundle,
			 json_t *annotations)
{
	json_t *o = json_pack("{s:s,s:s,s:s,s:I,s:s}", "ociVersion", "1.2.0", "id", id, "status",
			      lm_status_name(status), "pid", (json_int_t)pid, "bundle", bundle);
	if (!o)
		return NULL;
	if (annotations && json_object_size(annotations))
		json_object_set(o, "annotations", annotations);
	char *text = json_dumps(o, JSON_COMPACT);
	json_decref(o);
	return text;
}

/* The state on the hook's stdin: a memfd, or a pipe when memfds are not
 * allowed (the state is small; a pipe holds 64 KiB). */
static int state_fd(const char *state, struct lm_error *err)
{
	size_t len = strlen(state);
	int fd = (int)syscall(SYS_memfd_create, "lamina-hook-state", MFD_CLOEXEC);
	if (fd >= 0) {
		for (size_t off = 0; off < len;) {
			ssize_t n = write(fd, state + off, len - off);
			if (n < 0 && errno == EINTR)
				continue;
			if (n <= 0) {
				lm_err_sys(err, "write the hook's state");
				close(fd);
				return -1;
			}
			off += (size_t)n;
		}
		if (lseek(fd, 0, SEEK_SET) < 0) {
			lm_err_sys(err, "rewind the hook's state");
			close(fd);
			return -1;
		}
		return fd;
	}
	int p[2];
	if (pipe2(p, O_CLOEXEC | O_NONBLOCK) < 0)
		return lm_err_sys(err, "pipe for the hook's state");
	ssize_t n = write(p[1], state, len);
	close(p[1]);
	if (n != (ssize_t)len) {
		close(p[0]);
		return lm_err(err, E2BIG, "the container state (%zu bytes) does not fit the hook's stdin pipe", len);
	}
	int fl = fcntl(p[0], F_GETFL);
	if (fl >= 0)
		fcntl(p[0], F_SETFL, fl & ~O_NONBLOCK);
	return p[0];
}

static void close_from(int first)
{
	if (syscall(SYS_close_range, (unsigned)first, ~0U, 0) == 0)
		return;
	long max = sysconf(_SC_OPEN_MAX);
	if (max < 0 || max > 65536)
		max = 65536;
	for (int fd = first; fd < max; fd++)
		close(fd);
}

/* In the forked child: async-signal-safe calls only. */
static void __attribute__((noreturn))
hook_child(const struct lm_hook *hook, char *const argv[], char *const envp[], const char *cwd, pid_t parent,
	   int in, int out, int report)
{
	setpgid(0, 0);
	/* the runtime waits for its hooks: if it dies, so does the hook */
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	if (getppid() != parent)
		_exit(127);
	lm_process_reset_signals();
	/* Lift all three above 0-2 first (any of them may be 0-2 itself, if
	 * we were started with a closed stdio), then put them in place. */
	in = fcntl(in, F_DUPFD_CLOEXEC, 3);
	out = fcntl(out, F_DUPFD_CLOEXEC, 3);
	report = fcntl(report, F_DUPFD_CLOEXEC, 3);
	if (in < 0 || out < 0 || report < 0 || dup2(in, 0) < 0 || dup2(out, 1) < 0 || dup2(out, 2) < 0)
		_exit(127);
	/* the exec report goes to fd 3 (close-on-exec), everything else is closed */
	if (report != 3 && dup3(report, 3, O_CLOEXEC) < 0)
		_exit(127);
	close_from(4);
	if (cwd && chdir(cwd) < 0 && chdir("/") < 0)
		_exit(127);
	execve(hook->path, argv, envp);
	int e = errno;
	ssize_t ignored = write(3, &e, sizeof(e));
	(void)ignored;
	_exit(127);
}

static int64_t mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

struct output {
	char buf[HOOK_OUTPUT_MAX];
	size_t len;
};

/* Read what is there (non-blocking fd); false at EOF or error. */
static bool read_output(int fd, struct output *o)
{
	for (;;) {
		char scratch[1024];
		char *dst = o->len < sizeof(o->buf) ? o->buf + o->len : scratch;
		size_t room = o->len < sizeof(o->buf) ? sizeof(o->buf) - o->len : sizeof(scratch);
		ssize_t n = read(fd, dst, room);
		if (n > 0) {
			if (dst != scratch)
				o->len += (size_t)n;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		return n < 0 && errno == EAGAIN;
	}
}

/* " (output: ...)": the hook's output on one line, shortened. */
static void quote_output(const struct output *o, char *dst, size_t size)
{
	dst[0] = '\0';
	size_t start = 0, end = o->len;
	while (start < end && (unsigned char)o->buf[start] <= ' ')
		start++;
	while (end > start && (unsigned char)o->buf[end - 1] <= ' ')
		end--;
	if (start == end || size < 32)
		return;
	size_t n = snprintf(dst, size, " (output: ");
	bool space = false;
	for (size_t i = start; i < end && n + 8 < size; i++) {
		unsigned char ch = (unsigned char)o->buf[i];
		if (ch < ' ' || ch == 0x7f) {
			if (!space)
				dst[n++] = ' ';
			space = true;
			continue;
		}
		space = false;
		if (n - 10 >= HOOK_OUTPUT_QUOTE) {
			memcpy(dst + n, "...", 3);
			n += 3;
			break;
		}
		dst[n++] = (char)ch;
	}
	dst[n++] = ')';
	dst[n] = '\0';
}

static int run_one(const struct lm_hook *hook, const char *kind, const char *state, const char *cwd,
		   struct lm_error *err)
{
	char *default_argv[] = {hook->path, NULL};
	char *empty_env[] = {NULL};
	char *const *argv = hook->args && hook->args[0] ? hook->args : default_argv;
	char *const *envp = hook->env ? hook->env : empty_env;

	autofd in = state_fd(state, err);
	if (in < 0)
		return lm_error_prefix(err, "%s hook %s", kind, hook->path);
	int out[2], rep[2];
	if (pipe2(out, O_CLOEXEC) < 0)
		return lm_err_sys(err, "%s hook %s: pipe", kind, hook->path);
	if (pipe2(rep, O_CLOEXEC) < 0) {
		close(out[0]);
		close(out[1]);
		return lm_err_sys(err, "%s hook %s: pipe", kind, hook->path);
	}
	autofd out_r = out[0], rep_r = rep[0];
	pid_t parent = getpid();
	pid_t pid = fork();
	if (pid == 0)
		hook_child(hook, argv, envp, cwd, parent, in, out[1], rep[1]);
	int fork_errno = errno;
	close(out[1]);
	close(rep[1]);
	if (pid < 0) {
		errno = fork_errno;
		return lm_err_sys(err, "%s hook %s: fork", kind, hook->path);
	}
	/* setpgid in both: whichever runs first, the group exists before a kill */
	setpgid(pid, pid);

	/* Closed by a successful execve, or carries the errno of a failed one. */
	int exec_errno = 0;
	ssize_t n;
	do
		n = read(rep_r, &exec_errno, sizeof(exec_errno));
	while (n < 0 && errno == EINTR);
	if (n == (ssize_t)sizeof(exec_errno)) {
		while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
			;
		errno = exec_errno;
		return lm_err_sys(err, "%s hook %s: exec", kind, hook->path);
	}

	autofd pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
	fcntl(out_r, F_SETFL, O_NONBLOCK);
	struct output output = {.len = 0};
	int64_t deadline = hook->timeout > 0 ? mono_ms() + (int64_t)hook->timeout * 1000 : -1;
	bool timed_out = false, out_open = true;
	int status = 0, poll_errno = 0;
	for (;;) {
		if (pidfd < 0 && waitpid(pid, &status, WNOHANG) == pid) {
			pid = 0;
			break;
		}
		int wait_ms = -1;
		if (deadline >= 0) {
			int64_t left = deadline - mono_ms();
			if (left <= 0) {
				timed_out = true;
				break;
			}
			wait_ms = left > 60000 ? 60000 : (int)left;
		}
		/* without a pidfd, look for the exit every 20 ms */
		if (pidfd < 0 && (wait_ms < 0 || wait_ms > 20))
			wait_ms = 20;
		struct pollfd pfd[2] = {{.fd = pidfd, .events = POLLIN}, {.fd = out_open ? out_r : -1, .events = POLLIN}};
		int r = poll(pfd, 2, wait_ms);
		if (r < 0 && errno != EINTR) {
			poll_errno = errno;
			break;
		}
		if (r <= 0)
			continue;
		if (pfd[1].revents && !read_output(out_r, &output))
			out_open = false;
		if (pfd[0].revents)
			break;
	}
	if (timed_out || poll_errno) {
		kill(-pid, SIGKILL);
		kill(pid, SIGKILL);
	}
	if (pid > 0)
		while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
			;
	if (out_open)
		read_output(out_r, &output);

	if (poll_errno) {
		errno = poll_errno;
		return lm_err_sys(err, "%s hook %s: poll", kind, hook->path);
	}
	char quoted[HOOK_OUTPUT_QUOTE + 32];
	quote_output(&output, quoted, sizeof(quoted));
	if (timed_out)
		return lm_err(err, ETIMEDOUT, "%s hook %s: did not finish within its timeout of %d s (killed)%s",
			      kind, hook->path, hook->timeout, quoted);
	if (WIFSIGNALED(status))
		return lm_err(err, ECANCELED, "%s hook %s: killed by signal %d%s", kind, hook->path,
			      WTERMSIG(status), quoted);
	if (WEXITSTATUS(status) != 0)
		return lm_err(err, ECANCELED, "%s hook %s: exited with status %d%s", kind, hook->path,
			      WEXITSTATUS(status), quoted);
	if (output.len)
		lm_debug("%s hook %s: %.*s", kind, hook->path, (int)output.len, output.buf);
	return 0;
}

int lm_hooks_run(const struct lm_hooks *hooks, enum lm_hook_kind kind, const char *state, const char *cwd,
		 struct lm_error *err)
{
	const struct lm_hook *list;
	size_t n = lm_hooks_of(hooks, kind, &list);
	for (size_t i = 0; i < n; i++)
		if (run_one(&list[i], lm_hook_kind_name(kind), state, cwd, err) < 0)
			return -1;
	return 0;
}

void lm_hooks_run_warn(const struct lm_hooks *hooks, enum lm_hook_kind kind, const char *state,
		       const char *cwd, const char *id)
{
	const struct lm_hook *list;
	size_t n = lm_hooks_of(hooks, kind, &list);
	for (size_t i = 0; i < n; i++) {
		struct lm_error err;
		lm_error_clear(&err);
		if (!state)
			lm_err(&err, ENOMEM, "%s hook %s: out of memory", lm_hook_kind_name(kind), list[i].path);
		else if (run_one(&list[i], lm_hook_kind_name(kind), state, cwd, &err) == 0)
			continue;
		lm_warn("container \"%s\": %s", id, err.msg);
	}
}
