/* The agent's container operations: create, start (through a monitor),
 * stop, kill, remove, what happens when a container ends (exit record,
 * restart policy with backoff), and reconcile at start.
 *
 * Every change is written to the database before anything outside the
 * process depends on it, so a kill -9 at any point leaves a state that
 * reconcile understands: a row whose monitor is alive is adopted; a row
 * marked running whose monitor is gone has an exit record (the container
 * ended while we were away) or is lost; files without a row are removed. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <glob.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "agent/agent.h"
#include "agent/prepare.h"
#include "image/store.h"
#include "monitor/logfile.h"
#include "rootfs/writable.h"
#include "runtime/cgroup.h"
#include "runtime/container.h"
#include "runtime/internal.h"
#include "runtime/spec.h"
#include "util/cleanup.h"
#include "util/fs.h"
#include "util/log.h"
#include "util/random.h"

extern char **environ;

bool agent_running(const struct ctr *c)
{
	return c->monitor_pidfd >= 0;
}

void agent_ctr_free(struct ctr *c)
{
	if (!c)
		return;
	if (c->monitor_pidfd >= 0)
		close(c->monitor_pidfd);
	lm_run_spec_free(&c->spec);
	lm_db_container_free(&c->rec);
	free(c);
}

static char *path_fmt(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static char *path_fmt(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	char *p = NULL;
	if (vasprintf(&p, fmt, ap) < 0)
		p = NULL;
	va_end(ap);
	return p;
}

char *agent_log_path(struct agent *a, const struct ctr *c)
{
	return path_fmt("%s/containers/%s/container.log", a->agent_dir, c->rec.id);
}

static char *bundle_path(struct agent *a, const char *id)
{
	return path_fmt("%s/containers/%s", a->agent_dir, id);
}

static char *run_path(struct agent *a, const char *id)
{
	return path_fmt("%s/%s", a->run_dir, id);
}

void agent_event(struct agent *a, const struct ctr *c, const char *type, json_t *attrs)
{
	char *text = attrs ? json_dumps(attrs, JSON_COMPACT) : NULL;
	struct lm_db_event e = {.time = lm_now_ns(),
				.container_id = c ? c->rec.id : NULL,
				.container_name = c ? c->rec.name : NULL,
				.type = (char *)type,
				.attrs = text};
	struct lm_error err;
	int64_t seq;
	if (lm_db_event_add(a->db, &e, &seq, &err) < 0)
		lm_warn("event %s: %s", type, err.msg);
	else if (seq % 1000 == 0)
		lm_db_events_trim(a->db, 10000, &err);
	free(text);
	json_decref(attrs);
	agent_api_wake(a);
}

static int save(struct agent *a, struct ctr *c, struct lm_error *err)
{
	if (lm_db_container_update(a->db, &c->rec, err) < 0)
		return lm_error_prefix(err, "record container %s", c->rec.name);
	agent_api_wake(a);
	return 0;
}

static void set_status(struct ctr *c, const char *status)
{
	free(c->rec.status);
	c->rec.status = strdup(status);
}

static void set_error(struct ctr *c, const char *msg)
{
	free(c->rec.error);
	c->rec.error = msg ? strdup(msg) : NULL;
}

/* --- lookup --- */

struct ctr *agent_find(struct agent *a, const char *ref, struct lm_error *err)
{
	struct lm_db_container rec;
	if (lm_db_container_get(a->db, ref, &rec, err) < 0)
		return NULL;
	for (struct ctr *c = a->ctrs; c; c = c->next)
		if (strcmp(c->rec.id, rec.id) == 0) {
			lm_db_container_free(&rec);
			return c;
		}
	lm_db_container_free(&rec);
	lm_err(err, ENOENT, "no such container: %s", ref);
	return NULL;
}

/* The stored spec: {"request": <create body>, "image_stop_signal": N,
 * "command": [the process args the config got]}. */
static int load_spec(struct ctr *c, struct lm_error *err)
{
	json_error_t jerr;
	json_t *doc = json_loads(c->rec.spec ? c->rec.spec : "", 0, &jerr);
	if (!doc)
		return lm_err(err, EINVAL, "container %s: stored spec: %s", c->rec.id, jerr.text);
	c->image_stop_signal = (int)json_integer_value(json_object_get(doc, "image_stop_signal"));
	int rc = lm_run_spec_parse(json_object_get(doc, "request"), &c->spec, err);
	json_decref(doc);
	return rc;
}

/* "registry/repo/name:tag" -> "name-1a2b3c" */
static char *default_name(const char *image, const char *id)
{
	const char *base = strrchr(image, '/');
	base = base ? base + 1 : image;
	size_t n = strcspn(base, ":@");
	char clean[64];
	size_t k = 0;
	for (size_t i = 0; i < n && k < sizeof(clean) - 1; i++)
		clean[k++] = (char)((base[i] >= 'a' && base[i] <= 'z') || (base[i] >= '0' && base[i] <= '9') ||
						    base[i] == '-' || base[i] == '_'
					    ? base[i]
					    : '-');
	clean[k] = '\0';
	return path_fmt("%s-%.6s", k ? clean : "container", id);
}

/* --- create --- */

int agent_create(struct agent *a, json_t *request, struct ctr **out, struct lm_error *err)
{
	struct ctr *c = calloc(1, sizeof(*c));
	struct lm_store *store = NULL;
	struct lm_prepared prep = {0};
	char *bundle = NULL;
	bool prepared = false;
	char id[65];
	if (!c)
		return lm_err(err, ENOMEM, "out of memory");
	c->monitor_pidfd = -1;
	if (lm_run_spec_parse(request, &c->spec, err) < 0)
		goto fail;
	lm_random_hex(id, 32);
	c->rec.id = strdup(id);
	c->rec.name = c->spec.name ? strdup(c->spec.name) : default_name(c->spec.image, id);
	struct lm_db_container existing;
	if (lm_db_container_get(a->db, c->rec.name, &existing, err) == 0) {
		bool same_name = strcmp(existing.name, c->rec.name) == 0;
		lm_db_container_free(&existing);
		if (same_name) {
			lm_err(err, EEXIST, "the name \"%s\" is already in use by container %.12s", c->rec.name,
			       existing.id);
			goto fail;
		}
	}
	bundle = bundle_path(a, id);
	struct lm_pull_opts po = {.policy = LM_PULL_NEVER, .default_registry = a->g->default_registry};
	if (lm_store_open(a->g->root, &store, err) < 0 ||
	    lm_container_prepare(store, NULL, &po, &c->spec, id, a->layers_dir, bundle, &prep, err) < 0)
		goto fail;
	prepared = true;
	c->image_stop_signal = prep.run.stop_signal;
	json_t *args = json_object_get(json_object_get(prep.run.config, "process"), "args");
	json_t *doc = json_pack("{s:O, s:i, s:o}", "request", request, "image_stop_signal", prep.run.stop_signal,
				"command", args ? json_incref(args) : json_array());
	c->rec.spec = json_dumps(doc, JSON_COMPACT);
	json_decref(doc);
	c->rec.image = strdup(c->spec.image);
	c->rec.image_id = strdup(prep.image.config_digest);
	c->rec.status = strdup("created");
	c->rec.created_at = lm_now_ns();
	c->rec.exit_code = -1;
	if (!c->rec.id || !c->rec.name || !c->rec.spec || !c->rec.image || !c->rec.image_id || !c->rec.status) {
		lm_err(err, ENOMEM, "out of memory");
		goto fail;
	}
	if (lm_db_container_insert(a->db, &c->rec, err) < 0)
		goto fail;
	lm_prepared_free(&prep);
	lm_store_close(store);
	free(bundle);
	c->next = a->ctrs;
	a->ctrs = c;
	agent_event(a, c, "create", json_pack("{s:s}", "image", c->rec.image));
	*out = c;
	return 0;
fail:
	if (prepared) {
		struct lm_error derr;
		if (lm_prepared_destroy(&prep, &derr) < 0)
			lm_warn("create: cleaning up: %s", derr.msg);
		lm_prepared_free(&prep);
	}
	lm_store_close(store);
	free(bundle);
	agent_ctr_free(c);
	return -1;
}

/* --- start: a monitor per run --- */

/* Read the monitor's one-line answer (its info, or an error). */
static json_t *read_ready(int fd, struct lm_error *err)
{
	char buf[4096];
	size_t len = 0;
	int64_t deadline = lm_mono_ns() + 120LL * 1000000000;
	while (len < sizeof(buf) - 1) {
		struct pollfd p = {.fd = fd, .events = POLLIN};
		int left = (int)((deadline - lm_mono_ns()) / 1000000);
		if (left <= 0) {
			lm_err(err, ETIMEDOUT, "the container's monitor did not report within 120 s");
			return NULL;
		}
		int r = poll(&p, 1, left);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			continue;
		ssize_t n = read(fd, buf + len, sizeof(buf) - 1 - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		len += (size_t)n;
		if (memchr(buf, '\n', len))
			break;
	}
	buf[len] = '\0';
	json_t *j = json_loads(buf, JSON_DISABLE_EOF_CHECK, NULL);
	if (!j)
		lm_err(err, EIO, "the container's monitor ended without reporting (see the agent's log)");
	return j;
}

static int spawn_monitor(struct agent *a, struct ctr *c, bool wait_attach, json_t **info, struct lm_error *err)
{
	autofree char *dir = run_path(a, c->rec.id);
	autofree char *bundle = bundle_path(a, c->rec.id);
	autofree char *log = agent_log_path(a, c);
	if (!dir || !bundle || !log)
		return lm_err(err, ENOMEM, "out of memory");
	if (lm_mkdir_p(dir, 0700, err) < 0)
		return -1;
	int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd >= 0) {
		unlinkat(dfd, "exit.json", 0);
		unlinkat(dfd, "monitor.json", 0);
		close(dfd);
	}
	int p[2];
	if (pipe2(p, O_CLOEXEC) < 0)
		return lm_err_sys(err, "pipe");
	char max_size[32], max_files[16];
	snprintf(max_size, sizeof(max_size), "%llu", (unsigned long long)a->logs.max_size);
	snprintf(max_files, sizeof(max_files), "%u", a->logs.max_files);
	const char *argv[24] = {"lamina-monitor", "--id", c->rec.id, "--bundle", bundle, "--oci-root",
				a->oci_root, "--dir", dir, "--log", log, "--log-max-size", max_size,
				"--log-max-files", max_files, "--ready-fd", "3"};
	size_t argc = 17;
	if (c->spec.tty)
		argv[argc++] = "--tty";
	if (c->spec.interactive)
		argv[argc++] = "--stdin";
	if (wait_attach)
		argv[argc++] = "--start-on-attach";
	argv[argc] = NULL;
	posix_spawn_file_actions_t fa;
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_adddup2(&fa, p[1], 3);
	/* the agent's blocked signals (its signalfd's) are not the monitor's */
	posix_spawnattr_t attr;
	posix_spawnattr_init(&attr);
	sigset_t none, all;
	sigemptyset(&none);
	sigfillset(&all);
	posix_spawnattr_setsigmask(&attr, &none);
	posix_spawnattr_setsigdefault(&attr, &all);
	posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
	pid_t pid;
	int rc = posix_spawn(&pid, a->monitor_exe, &fa, &attr, (char *const *)argv, environ);
	posix_spawnattr_destroy(&attr);
	posix_spawn_file_actions_destroy(&fa);
	close(p[1]);
	if (rc != 0) {
		close(p[0]);
		errno = rc;
		return lm_err_sys(err, "start the monitor %s", a->monitor_exe);
	}
	/* the first process only detaches the real monitor and exits */
	while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
		;
	*info = read_ready(p[0], err);
	close(p[0]);
	return *info ? 0 : -1;
}

int agent_start(struct agent *a, struct ctr *c, bool wait_attach, struct lm_error *err)
{
	if (agent_running(c))
		return lm_err(err, EBUSY, "container %s is already running", c->rec.name);
	if (c->removing)
		return lm_err(err, EBUSY, "container %s is being removed", c->rec.name);
	c->restart_at = 0;
	c->kill_at = 0;
	json_t *info = NULL;
	/* recorded before the monitor exists: an agent killed from here on finds
	 * the monitor's own record (monitor.json), or knows the start was cut */
	char *before = strdup(c->rec.status);
	set_status(c, "starting");
	if (!before || save(a, c, err) < 0) {
		set_status(c, before ? before : "created");
		free(before);
		return before ? -1 : lm_err(err, ENOMEM, "out of memory");
	}
	if (spawn_monitor(a, c, wait_attach, &info, err) < 0)
		goto fail;
	const char *msg = json_string_value(json_object_get(info, "error"));
	if (msg) {
		lm_err(err, (int)json_integer_value(json_object_get(info, "code")), "%s", msg);
		json_decref(info);
		goto fail;
	}
	c->rec.monitor_pid = json_integer_value(json_object_get(info, "monitor_pid"));
	c->rec.monitor_start = (uint64_t)json_integer_value(json_object_get(info, "monitor_start"));
	c->pid = (pid_t)json_integer_value(json_object_get(info, "pid"));
	c->rec.started_at = json_integer_value(json_object_get(info, "started_at"));
	json_decref(info);
	c->monitor_pidfd = lm_pidfd_open_checked((pid_t)c->rec.monitor_pid, c->rec.monitor_start);
	c->rec.finished_at = 0;
	c->rec.exit_code = -1;
	c->rec.exit_signal = 0;
	c->rec.oom_killed = false;
	c->rec.user_stopped = false;
	set_error(c, NULL);
	set_status(c, "running");
	free(before);
	if (save(a, c, err) < 0)
		lm_warn("%s", err->msg);
	agent_event(a, c, "start", json_pack("{s:i}", "pid", (int)c->pid));
	/* from here c may be gone (an auto-removed container that already ended) */
	if (c->monitor_pidfd >= 0)
		agent_watch_monitor(a, c);
	else
		agent_monitor_exited(a, c); /* it was quicker than us */
	return 0;
fail:
	/* a container that never ran stays "created", as with docker */
	set_error(c, err->msg);
	set_status(c, strcmp(before, "created") == 0 ? "created" : "exited");
	free(before);
	struct lm_error serr;
	save(a, c, &serr);
	agent_event(a, c, "start-failed", json_pack("{s:s}", "error", err->msg));
	return -1;
}

/* --- stop / kill --- */

static int stop_signal_of(const struct ctr *c)
{
	if (c->spec.stop_signal)
		return c->spec.stop_signal;
	return c->image_stop_signal > 0 ? c->image_stop_signal : SIGTERM;
}

int agent_kill(struct agent *a, struct ctr *c, int sig, struct lm_error *err)
{
	if (!agent_running(c))
		return lm_err(err, EBUSY, "container %s is not running", c->rec.name);
	if (lm_container_kill(a->oci_root, c->rec.id, sig, false, err) < 0) {
		/* it ended between our check and the signal: nothing to kill */
		if (err->code == ENOENT || strstr(err->msg, "not running"))
			return 0;
		return -1;
	}
	agent_event(a, c, "kill", json_pack("{s:i}", "signal", sig));
	return 0;
}

int agent_stop_begin(struct agent *a, struct ctr *c, int timeout, struct lm_error *err)
{
	/* a stop also cancels a pending restart */
	c->restart_at = 0;
	c->rec.user_stopped = true;
	if (strcmp(c->rec.status, "restarting") == 0)
		set_status(c, "exited");
	save(a, c, err);
	if (!agent_running(c))
		return 0;
	if (timeout < 0)
		timeout = c->spec.stop_timeout >= 0 ? c->spec.stop_timeout : LM_AGENT_DEFAULT_STOP_TIMEOUT;
	int sig = timeout == 0 ? SIGKILL : stop_signal_of(c);
	if (agent_kill(a, c, sig, err) < 0)
		return -1;
	c->kill_at = timeout == 0 ? 0 : lm_mono_ns() + (int64_t)timeout * 1000000000;
	agent_event(a, c, "stop", json_pack("{s:i, s:i}", "signal", sig, "timeout", timeout));
	return 0;
}

/* --- remove --- */

static void remove_files(struct agent *a, const char *id)
{
	struct lm_error err;
	struct lm_writable *w = NULL;
	if (lm_writable_open(a->layers_dir, id, &w, &err) == 0) {
		if (lm_writable_destroy(w, &err) < 0)
			lm_warn("remove %s: writable layer: %s", id, err.msg);
		lm_writable_free(w);
	}
	autofree char *bundle = bundle_path(a, id);
	autofree char *run = run_path(a, id);
	if (bundle && lm_rm_rf_at(AT_FDCWD, bundle, &err) < 0)
		lm_warn("remove %s: %s", id, err.msg);
	if (run && lm_rm_rf_at(AT_FDCWD, run, &err) < 0)
		lm_warn("remove %s: %s", id, err.msg);
}

static void unlink_ctr(struct agent *a, struct ctr *c)
{
	for (struct ctr **pp = &a->ctrs; *pp; pp = &(*pp)->next)
		if (*pp == c) {
			*pp = c->next;
			break;
		}
}

int agent_remove(struct agent *a, struct ctr *c, bool force, struct lm_error *err)
{
	if (agent_running(c)) {
		if (!force)
			return lm_err(err, EBUSY,
				      "container %s is running: stop it first or remove it with --force",
				      c->rec.name);
		/* kill and wait for the monitor to record the end; removing keeps
		 * the exit from scheduling a restart or an auto-removal */
		c->removing = true;
		lm_container_kill(a->oci_root, c->rec.id, SIGKILL, true, err);
		struct pollfd p = {.fd = c->monitor_pidfd, .events = POLLIN};
		if (poll(&p, 1, 15000) <= 0) {
			c->removing = false;
			return lm_err(err, ETIMEDOUT, "container %s did not end after SIGKILL", c->rec.name);
		}
		agent_monitor_exited(a, c);
	}
	c->restart_at = 0;
	c->removing = true;
	set_status(c, "removing");
	save(a, c, err);
	remove_files(a, c->rec.id);
	if (lm_db_container_delete(a->db, c->rec.id, err) < 0 && err->code != ENOENT)
		return -1;
	agent_event(a, c, "destroy", NULL);
	unlink_ctr(a, c);
	agent_ctr_free(c);
	return 0;
}

/* --- a container ended --- */

static bool wants_restart(const struct ctr *c)
{
	if (c->rec.user_stopped || c->removing)
		return false;
	switch (c->spec.restart) {
	case LM_RESTART_NO:
		return false;
	case LM_RESTART_ALWAYS:
	case LM_RESTART_UNLESS_STOPPED:
		return true;
	case LM_RESTART_ON_FAILURE:
		return c->rec.exit_code != 0 && (c->spec.restart_max == 0 || c->rec.restart_count < c->spec.restart_max);
	}
	return false;
}

static void schedule_restart(struct agent *a, struct ctr *c)
{
	int64_t ran = c->rec.finished_at - c->rec.started_at;
	if (c->backoff_ms == 0 || ran >= LM_AGENT_HEALTHY_RUN_NS)
		c->backoff_ms = LM_AGENT_BACKOFF_MIN_MS;
	c->restart_at = lm_mono_ns() + c->backoff_ms * 1000000;
	json_t *attrs = json_pack("{s:I}", "delay_ms", (json_int_t)c->backoff_ms);
	c->backoff_ms = c->backoff_ms * 2 > LM_AGENT_BACKOFF_MAX_MS ? LM_AGENT_BACKOFF_MAX_MS : c->backoff_ms * 2;
	set_status(c, "restarting");
	struct lm_error err;
	save(a, c, &err);
	agent_event(a, c, "restart-scheduled", attrs);
}

/* The container's runtime state, if the monitor did not remove it (it was
 * killed): kill what is left and delete it. */
static void clean_runtime(struct agent *a, const char *id)
{
	struct lm_error err;
	json_t *st = NULL;
	if (lm_container_state(a->oci_root, id, &st, &err) < 0)
		return;
	json_decref(st);
	if (lm_container_delete(a->oci_root, id, true, &err) < 0)
		lm_warn("container %s: removing its runtime state: %s", id, err.msg);
	else
		lm_log(LM_LOG_INFO, "container %s: removed the runtime state its monitor left", id);
}

void agent_monitor_exited(struct agent *a, struct ctr *c)
{
	if (c->monitor_pidfd >= 0) {
		epoll_ctl(a->ep, EPOLL_CTL_DEL, c->monitor_pidfd, NULL);
		close(c->monitor_pidfd);
		c->monitor_pidfd = -1;
	}
	c->kill_at = 0;
	c->pid = 0;
	autofree char *dir = run_path(a, c->rec.id);
	struct lm_error err;
	char *text = NULL;
	size_t len;
	int dfd = dir ? open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC) : -1;
	int rc = dfd >= 0 ? lm_read_file_at(dfd, "exit.json", 65536, &text, &len, &err) : -1;
	json_t *rec = rc == 0 ? json_loadb(text, len, 0, NULL) : NULL;
	free(text);
	if (rec) {
		c->rec.exit_code = (int)json_integer_value(json_object_get(rec, "exit_code"));
		c->rec.exit_signal = (int)json_integer_value(json_object_get(rec, "signal"));
		c->rec.oom_killed = json_is_true(json_object_get(rec, "oom_killed"));
		c->rec.finished_at = json_integer_value(json_object_get(rec, "finished_at"));
		c->rec.log_dropped = (uint64_t)json_integer_value(json_object_get(rec, "log_dropped"));
		json_decref(rec);
		set_status(c, "exited");
		set_error(c, NULL);
	} else {
		/* the monitor was killed: nobody saw the container end */
		clean_runtime(a, c->rec.id);
		c->rec.exit_code = -1;
		c->rec.finished_at = lm_now_ns();
		set_status(c, "lost");
		set_error(c, "its monitor ended without an exit record (killed?); the container was stopped");
	}
	if (dfd >= 0)
		close(dfd);
	c->rec.monitor_pid = 0;
	c->rec.monitor_start = 0;
	if (save(a, c, &err) < 0)
		lm_warn("%s", err.msg);
	if (strcmp(c->rec.status, "lost") == 0)
		agent_event(a, c, "lost", NULL);
	else {
		if (c->rec.oom_killed)
			agent_event(a, c, "oom", NULL);
		agent_event(a, c, "die",
			    json_pack("{s:i, s:i}", "exit_code", c->rec.exit_code, "signal", c->rec.exit_signal));
	}
	if (c->spec.auto_remove && !c->removing) {
		if (agent_remove(a, c, false, &err) < 0)
			lm_warn("auto-remove %s: %s", c->rec.name, err.msg);
		return;
	}
	if (wants_restart(c))
		schedule_restart(a, c);
}

/* --- timers --- */

int64_t agent_next_deadline(struct agent *a)
{
	int64_t next = 0;
	for (struct ctr *c = a->ctrs; c; c = c->next) {
		if (c->restart_at && (!next || c->restart_at < next))
			next = c->restart_at;
		if (c->kill_at && (!next || c->kill_at < next))
			next = c->kill_at;
	}
	if (a->stats_tick_at && (!next || a->stats_tick_at < next))
		next = a->stats_tick_at;
	return next;
}

void agent_timers_fire(struct agent *a)
{
	int64_t now = lm_mono_ns();
	struct ctr *next;
	for (struct ctr *c = a->ctrs; c; c = next) {
		next = c->next;
		struct lm_error err;
		if (c->kill_at && c->kill_at <= now) {
			c->kill_at = 0;
			if (agent_running(c) && agent_kill(a, c, SIGKILL, &err) < 0)
				lm_warn("stop %s: %s", c->rec.name, err.msg);
		}
		if (c->restart_at && c->restart_at <= now) {
			c->restart_at = 0;
			c->rec.restart_count++;
			agent_event(a, c, "restart", json_pack("{s:i}", "count", c->rec.restart_count));
			if (agent_start(a, c, false, &err) < 0) {
				lm_warn("restart %s: %s", c->rec.name, err.msg);
				c->rec.finished_at = lm_now_ns();
				if (wants_restart(c))
					schedule_restart(a, c);
			}
		}
	}
	if (a->stats_tick_at && a->stats_tick_at <= now) {
		a->stats_tick_at = 0;
		agent_api_wake(a);
	}
}

void agent_stop_all(struct agent *a)
{
	for (struct ctr *c = a->ctrs; c; c = c->next) {
		struct lm_error err;
		if (!agent_running(c))
			continue;
		int timeout = c->spec.stop_timeout >= 0 ? c->spec.stop_timeout : LM_AGENT_DEFAULT_STOP_TIMEOUT;
		if (agent_kill(a, c, stop_signal_of(c), &err) < 0)
			continue;
		struct pollfd p = {.fd = c->monitor_pidfd, .events = POLLIN};
		if (poll(&p, 1, timeout * 1000) <= 0) {
			agent_kill(a, c, SIGKILL, &err);
			poll(&p, 1, 15000);
		}
		c->rec.user_stopped = true;
		agent_monitor_exited(a, c);
	}
}

/* --- JSON for list and inspect --- */

static json_t *time_json(int64_t ns)
{
	if (ns <= 0)
		return json_string("");
	struct timespec ts = {.tv_sec = ns / 1000000000, .tv_nsec = ns % 1000000000};
	char buf[64];
	lm_log_format_time(&ts, buf, sizeof(buf));
	return json_string(buf);
}

json_t *agent_ctr_json(struct agent *a, const struct ctr *c)
{
	autofree char *log = agent_log_path(a, c);
	char restart[32];
	if (c->spec.restart == LM_RESTART_ON_FAILURE && c->spec.restart_max)
		snprintf(restart, sizeof(restart), "on-failure:%d", c->spec.restart_max);
	else
		snprintf(restart, sizeof(restart), "%s", lm_restart_name(c->spec.restart));
	json_t *spec_doc = json_loads(c->rec.spec ? c->rec.spec : "{}", 0, NULL);
	json_t *o = json_pack("{s:s, s:s, s:s, s:s, s:s, s:o, s:o, s:o, s:i, s:i, s:b, s:i, s:s, s:i, s:s?, s:I, "
			      "s:s?, s:O?}",
			      "id", c->rec.id, "name", c->rec.name, "image", c->rec.image, "image_id",
			      c->rec.image_id ? c->rec.image_id : "", "status", c->rec.status, "created_at",
			      time_json(c->rec.created_at), "started_at", time_json(c->rec.started_at),
			      "finished_at", time_json(c->rec.finished_at), "exit_code", c->rec.exit_code, "signal",
			      c->rec.exit_signal, "oom_killed", c->rec.oom_killed, "restart_count",
			      c->rec.restart_count, "restart_policy", restart, "pid", (int)c->pid, "log_path", log,
			      "log_dropped", (json_int_t)c->rec.log_dropped, "error", c->rec.error, "spec",
			      json_object_get(spec_doc, "request"));
	json_t *cmd = json_object_get(spec_doc, "command");
	json_object_set_new(o, "command", cmd ? json_incref(cmd) : json_array());
	json_decref(spec_doc);
	return o;
}

/* --- reconcile --- */

static void adopt_or_collect(struct agent *a, struct ctr *c)
{
	if (strcmp(c->rec.status, "running") != 0 && strcmp(c->rec.status, "restarting") != 0 &&
	    strcmp(c->rec.status, "removing") != 0 && strcmp(c->rec.status, "starting") != 0)
		return;
	if (strcmp(c->rec.status, "removing") == 0) {
		struct lm_error err;
		lm_log(LM_LOG_INFO, "container %s: finishing its removal", c->rec.name);
		if (agent_remove(a, c, true, &err) < 0)
			lm_warn("container %s: %s", c->rec.name, err.msg);
		return;
	}
	if (strcmp(c->rec.status, "restarting") == 0) {
		c->restart_at = lm_mono_ns();
		return;
	}
	/* a start interrupted before its row was updated: the monitor wrote monitor.json */
	if (!c->rec.monitor_pid) {
		autofree char *dir = run_path(a, c->rec.id);
		char *text = NULL;
		size_t len;
		struct lm_error err;
		int dfd = dir ? open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC) : -1;
		if (dfd >= 0 && lm_read_file_at(dfd, "monitor.json", 65536, &text, &len, &err) == 0) {
			json_t *info = json_loadb(text, len, 0, NULL);
			c->rec.monitor_pid = json_integer_value(json_object_get(info, "monitor_pid"));
			c->rec.monitor_start = (uint64_t)json_integer_value(json_object_get(info, "monitor_start"));
			c->rec.started_at = json_integer_value(json_object_get(info, "started_at"));
			c->pid = (pid_t)json_integer_value(json_object_get(info, "pid"));
			json_decref(info);
			free(text);
		}
		if (dfd >= 0)
			close(dfd);
	}
	c->monitor_pidfd = c->rec.monitor_pid ? lm_pidfd_open_checked((pid_t)c->rec.monitor_pid, c->rec.monitor_start)
					      : -1;
	if (c->monitor_pidfd >= 0) {
		if (!c->pid) {
			struct lm_error err;
			json_t *st = NULL;
			if (lm_container_state(a->oci_root, c->rec.id, &st, &err) == 0)
				c->pid = (pid_t)json_integer_value(json_object_get(st, "pid"));
			json_decref(st);
		}
		agent_watch_monitor(a, c);
		lm_log(LM_LOG_INFO, "container %s: re-adopted (monitor %lld)", c->rec.name,
		       (long long)c->rec.monitor_pid);
		agent_event(a, c, "adopt", NULL);
		return;
	}
	lm_log(LM_LOG_INFO, "container %s: its monitor ended while the agent was away", c->rec.name);
	agent_monitor_exited(a, c);
}

static bool known_id(struct agent *a, const char *id)
{
	for (struct ctr *c = a->ctrs; c; c = c->next)
		if (strcmp(c->rec.id, id) == 0)
			return true;
	return false;
}

static bool is_agent_id(const char *s)
{
	size_t n = strlen(s);
	return n == 64 && strspn(s, "0123456789abcdef") == 64;
}

/* Directories named by an agent id that no row owns: what a create or a
 * remove killed half-way left behind. */
static void sweep_dir(struct agent *a, const char *dir, const char *what)
{
	DIR *d = opendir(dir);
	if (!d)
		return;
	struct dirent *de;
	while ((de = readdir(d))) {
		if (!is_agent_id(de->d_name) || known_id(a, de->d_name))
			continue;
		lm_log(LM_LOG_INFO, "removing %s %s: no container owns it", what, de->d_name);
		clean_runtime(a, de->d_name);
		remove_files(a, de->d_name);
	}
	closedir(d);
}

/* Cgroups of the agent's containers that are not running: what a runtime
 * killed between its cgroup and its state left (the runtime's own delete
 * removes the cgroup with the state).  Only ids in the database: a cgroup
 * is made at start, after the row, and /lamina/<id> may also belong to a
 * container of `lamina oci` that is none of the agent's business. */
static void sweep_cgroups(struct agent *a)
{
	glob_t gl;
	if (glob("/sys/fs/cgroup/{lamina,*/lamina}", GLOB_BRACE | GLOB_ONLYDIR, NULL, &gl) != 0)
		return;
	for (size_t i = 0; i < gl.gl_pathc; i++) {
		DIR *d = opendir(gl.gl_pathv[i]);
		struct dirent *de;
		while (d && (de = readdir(d))) {
			if (!is_agent_id(de->d_name))
				continue;
			struct lm_error err;
			struct ctr *c = known_id(a, de->d_name) ? agent_find(a, de->d_name, &err) : NULL;
			if (!c || agent_running(c))
				continue;
			char rel[80];
			snprintf(rel, sizeof(rel), "/lamina/%s", de->d_name);
			struct lm_cgroup cg;
			if (lm_cgroup_open(&cg, rel, &err) < 0)
				continue;
			lm_log(LM_LOG_INFO, "removing cgroup %s: no running container owns it", rel);
			lm_cgroup_kill_all(&cg, SIGKILL, &err);
			if (lm_cgroup_destroy(&cg, &err) < 0)
				lm_warn("cgroup %s: %s", rel, err.msg);
			lm_cgroup_free(&cg);
		}
		if (d)
			closedir(d);
	}
	globfree(&gl);
}

/* Layers of `lamina run --rm` (not agent ids) belong to their runs. */
static bool layer_owned(const char *id, void *ctx)
{
	struct agent *a = ctx;
	if (!is_agent_id(id) || known_id(a, id))
		return true;
	lm_log(LM_LOG_INFO, "removing writable layer %s: no container owns it", id);
	clean_runtime(a, id);
	return false;
}

int agent_reconcile(struct agent *a, struct lm_error *err)
{
	struct lm_db_container *v = NULL;
	size_t n = 0;
	if (lm_db_container_list(a->db, &v, &n, err) < 0)
		return -1;
	for (size_t i = 0; i < n; i++) {
		struct ctr *c = calloc(1, sizeof(*c));
		if (!c) {
			lm_db_container_list_free(v, n);
			return lm_err(err, ENOMEM, "out of memory");
		}
		c->rec = v[i];
		memset(&v[i], 0, sizeof(v[i]));
		c->monitor_pidfd = -1;
		if (load_spec(c, err) < 0) {
			lm_warn("%s (the container is kept, but cannot be started)", err->msg);
			lm_run_spec_free(&c->spec);
		}
		c->next = a->ctrs;
		a->ctrs = c;
	}
	lm_db_container_list_free(v, n);
	/* list order is oldest first; keep it (the list above reversed it) */
	struct ctr *rev = NULL;
	while (a->ctrs) {
		struct ctr *c = a->ctrs;
		a->ctrs = c->next;
		c->next = rev;
		rev = c;
	}
	a->ctrs = rev;
	struct ctr *next;
	for (struct ctr *c = a->ctrs; c; c = next) {
		next = c->next;
		adopt_or_collect(a, c);
	}
	sweep_dir(a, a->run_dir, "monitor directory");
	sweep_dir(a, a->oci_root, "runtime state");
	autofree char *bundles = path_fmt("%s/containers", a->agent_dir);
	if (bundles)
		sweep_dir(a, bundles, "container directory");
	sweep_cgroups(a);
	/* writable layers: the sweep also removes broken ones remove_files cannot open */
	size_t removed = 0;
	struct lm_error serr;
	if (lm_writable_sweep(a->layers_dir, layer_owned, a, &removed, &serr) < 0)
		lm_warn("sweeping writable layers: %s", serr.msg);
	return 0;
}
