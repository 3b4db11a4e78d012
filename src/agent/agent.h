/* The agent: one process per node that owns containers.
 *
 * Desired and observed state live in SQLite (agent/db.h); each running
 * container has a detached monitor (monitor/monitor.h) that is its parent,
 * writes its logs and records its exit.  The agent holds a pidfd per
 * monitor in one epoll loop (with a signalfd, a timerfd for restart backoff
 * and stop grace periods, an inotify fd for log followers, and the HTTP
 * server's own epoll fd), so nothing is polled.  Killing the agent loses
 * nothing: on start it re-adopts live monitors, collects the exit records of
 * containers that ended while it was away, and removes what has no owner.
 *
 * Where things are (root = --root, state = --state):
 *   <root>/agent/agent.db               the database
 *   <root>/agent/containers/<id>/       config.json (the bundle), container.log*
 *   <root>/containers/<id>/             the writable layer (rootfs/writable.h)
 *   <state>/agent/<id>/                 the monitor's files (monitor.h)
 *   <state>/oci/<id>/                   the runtime's state while it runs
 *   <state>/lamina.sock                 the API socket (docs/api.md)
 */
#pragma once

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "agent/db.h"
#include "agent/run_spec.h"
#include "cli/cli.h"
#include "util/clock.h"
#include "util/error.h"

#define LM_AGENT_BACKOFF_MIN_MS 100
#define LM_AGENT_BACKOFF_MAX_MS (5 * 60 * 1000)
#define LM_AGENT_HEALTHY_RUN_NS (10LL * 1000000000)  /* resets the backoff */
#define LM_AGENT_DEFAULT_STOP_TIMEOUT 10

struct ctr {
	struct ctr *next;
	struct lm_db_container rec;   /* as in the database */
	struct lm_run_spec spec;      /* parsed from rec.spec's "request" */
	int image_stop_signal;
	int monitor_pidfd;            /* -1 when no monitor runs */
	pid_t pid;                    /* container init, while running */
	int64_t restart_at;           /* CLOCK_MONOTONIC ns; 0: none pending */
	int64_t backoff_ms;
	int64_t kill_at;              /* stop grace deadline; 0: none */
	bool removing;
};

struct agent {
	const struct lm_cli_global *g;
	char *db_path, *agent_dir, *run_dir, *oci_root, *layers_dir, *socket_path, *monitor_exe;
	struct lm_db *db;
	struct ctr *ctrs;
	int ep, sigfd, timerfd, inotifyfd, listen_fd, lock_fd;
	struct MHD_Daemon *mhd;
	bool stop_containers_on_exit;
	bool quit;
	int64_t stats_tick_at;        /* next stats sample for streamers; 0: none */
	struct lm_log_limits_cfg {
		uint64_t max_size;
		unsigned max_files;
	} logs;
};


/* ctr.c: the container operations.  Each returns <0 with err set (err->code
 * says which HTTP status: ENOENT 404, EEXIST/EBUSY 409, EINVAL 400, ...). */
struct ctr *agent_find(struct agent *a, const char *ref, struct lm_error *err);
int agent_create(struct agent *a, json_t *request, struct ctr **out, struct lm_error *err);
/* wait_attach: the process waits for the first attach session (up to 30 s). */
int agent_start(struct agent *a, struct ctr *c, bool wait_attach, struct lm_error *err);
/* Send the stop signal and arm the grace timer; the caller waits for the exit. */
int agent_stop_begin(struct agent *a, struct ctr *c, int timeout, struct lm_error *err);
int agent_kill(struct agent *a, struct ctr *c, int sig, struct lm_error *err);
int agent_remove(struct agent *a, struct ctr *c, bool force, struct lm_error *err);
bool agent_running(const struct ctr *c);
/* A monitor's pidfd became readable: read its exit record, apply the policy. */
void agent_monitor_exited(struct agent *a, struct ctr *c);
/* Timers: restarts due and stop grace periods over. */
void agent_timers_fire(struct agent *a);
int64_t agent_next_deadline(struct agent *a);
json_t *agent_ctr_json(struct agent *a, const struct ctr *c);
char *agent_log_path(struct agent *a, const struct ctr *c);
void agent_event(struct agent *a, const struct ctr *c, const char *type, json_t *attrs);
/* At start: load the database, adopt, collect, sweep. */
int agent_reconcile(struct agent *a, struct lm_error *err);
void agent_ctr_free(struct ctr *c);
/* Stop every running container (for --stop-containers-on-exit). */
void agent_stop_all(struct agent *a);

/* api.c */
int agent_api_start(struct agent *a, struct lm_error *err);
void agent_api_run(struct agent *a);
void agent_api_stop(struct agent *a);
/* Something changed (a container, an event, a log): let suspended requests look again. */
void agent_api_wake(struct agent *a);
int agent_api_timeout_ms(struct agent *a);

/* epoll registration of a monitor pidfd */
void agent_watch_monitor(struct agent *a, struct ctr *c);
