/* The per-container monitor (`lamina-monitor`), the role conmon plays for
 * podman.  The agent starts one per container run; it detaches (new session,
 * reparented away from the agent) and becomes the container's parent and
 * subreaper.  It holds the container's stdio (pipes, or with --tty the pty
 * master), writes its output to the log file, serves attach and exec
 * sessions, records how the container ended in <dir>/exit.json, removes the
 * runtime's state of it and exits.  A killed agent loses nothing: the
 * monitor keeps logging and the exit record waits on disk.  The agent tells a
 * monitor that ended normally (exit.json present) from one that was killed
 * (absent: the container is "lost").
 *
 *   lamina-monitor --id ID --bundle DIR --oci-root DIR --dir DIR --log FILE
 *       [--log-max-size N] [--log-max-files N] [--ready-fd FD]
 *       [--stdin] [--tty] [--start-on-attach]
 *
 *   --stdin            the container's stdin is a pipe the monitor keeps (else
 *                      /dev/null); attach clients asking for stdin write to it,
 *                      and a STDIN_EOF from any of them closes it for all
 *   --tty              the container gets a terminal (the config's
 *                      process.terminal must be true, and is false without it):
 *                      output is logged as stdout, RESIZE sets its size, and
 *                      STDIN_EOF types its EOF character (^D)
 *   --start-on-attach  created and reported ready, but started only once the
 *                      first attach session is set up (it sees every byte), or
 *                      after 30 s without one; the ready line's started_at is
 *                      then the create time (monitor.json is rewritten at start)
 *
 * Files in <dir> (the agent's per-container run directory):
 *   monitor.json  {"monitor_pid", "monitor_start", "pid", "started_at"} once running
 *   exit.json     {"exit_code", "signal", "oom_killed", "started_at", "finished_at", "log_dropped"}
 *   monitor.sock  mode 0600, peers other than uid 0 refused; the sessions of
 *                 monitor/stream.h:
 *                 status: {"pid", "started_at", "running", "started",
 *                   "log_dropped", "clients_dropped", "sessions"}
 *                 attach: output from then on, to any number of clients; a
 *                   client more than 4 MiB behind is dropped (counted in
 *                   clients_dropped; the log has everything)
 *                 exec: a new process, stdout/stderr as pipes or a pty, stdin
 *                   if asked, never logged; "user" is numeric "uid[:gid]".  The
 *                   answer line comes once the process runs: a command that
 *                   cannot be run (ENOENT, bad user, ...) is an error answer,
 *                   not a stream.  Its output is read only as fast as its
 *                   client takes it.  A client that goes away leaves the
 *                   process running with its stdin closed and output dropped.
 *   console.sock, exec-N.pid, exec-N.tty
 *                 passing: the runtime's console socket and an exec's pid file
 * The ready fd gets one line: the monitor.json object, or {"error": msg, "code": errno}.
 */
#pragma once

int lm_monitor_main(int argc, char **argv);
