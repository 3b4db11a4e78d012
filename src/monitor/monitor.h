/* The per-container monitor (`lamina-monitor`), the role conmon plays for
 * podman.  The agent starts one per container run; it detaches (new session,
 * reparented away from the agent) and becomes the container's parent and
 * subreaper.  It holds the container's stdout/stderr pipes and writes them to
 * the log file, records how the container ended in <dir>/exit.json, removes
 * the runtime's state of it and exits.  A killed agent loses nothing: the
 * monitor keeps logging and the exit record waits on disk.  The agent tells a
 * monitor that ended normally (exit.json present) from one that was killed
 * (absent: the container is "lost").
 *
 * Files in <dir> (the agent's per-container run directory):
 *   monitor.json  {"monitor_pid", "monitor_start", "pid", "started_at"} once running
 *   exit.json     {"exit_code", "signal", "oom_killed", "started_at", "finished_at", "log_dropped"}
 *   monitor.sock  answers {"op":"status"} with the running state and log drop count
 * The ready fd gets one line: the monitor.json object, or {"error": msg, "code": errno}.
 */
#pragma once

int lm_monitor_main(int argc, char **argv);
