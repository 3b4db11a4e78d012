/* Inside lamina-monitor: what monitor.c (the container, the event loop,
 * the exit record) and session.c (the clients of monitor.sock: status,
 * attach, exec) share.  See monitor.h for the monitor's contract and
 * stream.h for the protocol of the sessions. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "monitor/logfile.h"
#include "runtime/container.h"
#include "util/clock.h"
#include "util/error.h"

/* An attach client further behind than this is dropped (and counted): the
 * container never waits for a client, and the log has everything. */
#define MON_CLIENT_BUF_MAX (4u << 20)
/* An exec's output has no log behind it: its pipes are read only while its
 * client is less than this far behind, so a slow client slows its own
 * process, nobody else. */
#define MON_EXEC_BUF_HIGH (1u << 20)
/* Clients' input waiting for a process to read it; beyond this, the
 * clients' frames wait in their sockets. */
#define MON_STDIN_MAX (1u << 20)
/* After a process ended, how long output from what it left behind (a
 * background child holding the pipe) is still awaited; after the container
 * ended, how long clients get to take their last frames. */
#define MON_DRAIN_NS (2000000000LL)
/* --start-on-attach starts the container anyway after this long. */
#define MON_ATTACH_WAIT_NS (30000000000LL)
#define MON_SESSIONS_MAX 256

struct mon_buf {
	char *data;
	size_t off, len, cap;   /* the bytes are data[off .. off+len) */
};

enum mon_watch_kind {
	MON_W_LISTEN,   /* monitor.sock */
	MON_W_SIGNAL,   /* signalfd: SIGCHLD */
	MON_W_PIDFD,    /* the container's init */
	MON_W_OUT,      /* a process's stdout (or its pty master) */
	MON_W_ERR,      /* a process's stderr */
	MON_W_IN,       /* a process's stdin, while input waits */
	MON_W_CLIENT,   /* a session's socket */
	MON_W_REPORT,   /* an exec's starter reporting */
};

/* One fd in the epoll set; epoll's data.ptr points here.  An fd that wants
 * nothing is taken out of the set (a hung-up socket would wake the loop
 * forever otherwise). */
struct mon_watch {
	enum mon_watch_kind kind;
	int fd;                 /* -1: none */
	uint32_t events;        /* registered with these; 0: not in the set */
	void *obj;              /* the mon_proc or mon_session it belongs to */
};

struct mon_session;

/* A process whose stdio the monitor holds: the container's init, or an exec. */
struct mon_proc {
	struct mon_proc *next;
	bool is_main;
	bool dead;                  /* freed at the end of the loop's turn */
	pid_t pid;                  /* 0 while an exec is still being started */
	pid_t helper;               /* exec: its starter, until reaped */
	bool exited;
	int wstatus;
	int64_t drain_deadline;     /* set at the exit: output awaited until then */
	struct mon_watch out, err;  /* read ends; with a tty, out reads the master */
	struct mon_watch in;        /* stdin: a pipe's write end, or the master */
	struct mon_watch report;    /* exec: the starter's report */
	int tty;                    /* the pty master (its size, its VEOF), or -1 */
	struct mon_buf inbuf;       /* input not yet written */
	bool in_eof;                /* close stdin once inbuf is written */
	bool out_paused;            /* exec: its client is behind */
	bool want_stdin;            /* exec: its client asked for stdin */
	struct mon_session *owner;  /* exec: its client; NULL once it left */
};

struct monitor {
	const char *id, *bundle, *oci_root, *dir, *log_path;
	bool opt_stdin, opt_tty, start_on_attach;
	struct lm_log_limits limits;
	struct lm_log_writer *log;
	int dirfd, ep;
	struct mon_proc main;
	struct mon_watch listen, sig, pidfd;
	int64_t started_at, finished_at;
	bool started;               /* lm_container_start was called */
	bool finished;              /* exit recorded; clients get their last frames */
	int64_t linger_deadline;
	struct lm_exit exit;
	struct mon_session *sessions;
	struct mon_proc *execs;
	unsigned n_sessions, exec_seq;
	uint64_t clients_dropped;
};

/* ---- monitor.c */
/* Put w in the epoll set with these events, or take it out (0). */
void mon_watch_set(struct monitor *m, struct mon_watch *w, uint32_t events);
/* Take w out of the set and close its fd. */
void mon_watch_close(struct monitor *m, struct mon_watch *w);
/* Unmap the code pages we have faulted in (the loop faults back what it uses). */
void mon_drop_code_pages(void);
/* --start-on-attach: start the container now (the first attach is set up). */
void mon_start_container(struct monitor *m);

/* ---- session.c: sessions */
/* Listen on <dir>/monitor.sock (mode 0600 by umask); -1 on failure. */
int mon_listen(struct monitor *m, struct lm_error *err);
/* Accept what is waiting (only uid 0 gets a session). */
void mon_accept(struct monitor *m);
void mon_session_event(struct monitor *m, struct mon_session *s, uint32_t events);
/* The container ended and m->exit is filled: attach sessions get their EXIT frame. */
void mon_sessions_exit(struct monitor *m);
/* Whether a client still has frames coming (or an exec still runs). */
bool mon_sessions_busy(const struct monitor *m);
/* Free what is marked dead (the end of a loop turn), or everything (at the end). */
void mon_sweep(struct monitor *m, bool all);

/* ---- session.c: processes */
/* Readable output (stream: MON_W_OUT or MON_W_ERR). */
void mon_proc_output(struct monitor *m, struct mon_proc *p, enum mon_watch_kind stream);
/* Writable stdin. */
void mon_proc_input(struct monitor *m, struct mon_proc *p);
/* The output deadlines of ended processes; returns the next deadline, or 0. */
int64_t mon_proc_tick(struct monitor *m, int64_t now);
/* Stop awaiting p's output: what is left unread is dropped. */
void mon_proc_close_output(struct monitor *m, struct mon_proc *p);
/* An exec's starter reported. */
void mon_exec_report(struct monitor *m, struct mon_proc *p);
/* Whether pid is an exec's process or starter. */
bool mon_exec_knows(const struct monitor *m, pid_t pid);
/* Starters that have exited: read their reports (their process may be ours to reap next). */
void mon_exec_collect_reports(struct monitor *m);
/* A child that is not the container's init was reaped. */
void mon_exec_reaped(struct monitor *m, pid_t pid, int wstatus);
/* The container ended: wait for starters, kill and reap what execs are left
 * (their clients get EXIT frames), so that nothing of ours is in the
 * container's cgroup when it is deleted. */
void mon_exec_end_all(struct monitor *m);

/* ---- exec.c: terminals and exec starters */
/* Listen on <dir>/name for a runtime's console socket; path gets the name to
 * hand to the runtime (through /proc/self/fd: short, whatever dir is). */
int mon_console_listen(int dirfd, const char *name, char *path, size_t path_len, struct lm_error *err);
/* Accept the runtime's connection on lfd (it is already made) and take the pty master. */
int mon_console_take(int lfd, struct lm_error *err);

struct mon_exec_req {
	char **args, **env;   /* NULL-terminated; the strings belong to the request */
	const char *user;     /* "uid[:gid]" */
	const char *cwd;
	bool tty, want_stdin;
	uint16_t rows, cols;  /* the terminal's first size, 0 if not given */
};

/* Fork a starter for r: p gets the helper's pid, its report fd (in the
 * epoll set) and, without a tty, the process's pipes. */
int mon_exec_spawn(struct monitor *m, struct mon_proc *p, const struct mon_exec_req *r, struct lm_error *err);
/* Read a starter's report: 1 with the pid (and with want_tty the master),
 * 0 when it has not come yet, <0 with the error (the runtime's own, or EIO
 * for a starter that died without a word). */
int mon_exec_read_report(int fd, bool want_tty, pid_t *pid, int *master, struct lm_error *err);
