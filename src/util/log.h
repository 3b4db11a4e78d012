/* Logging for the front ends.  Library code never logs errors (it returns
 * them); it may log debug notes (e.g. "ignoring unsupported flag").  The OCI
 * front end sends everything to --log FILE in text or JSON lines (the format
 * runc writes and podman reads back); errors also go to stderr. */
#pragma once

#include <stdbool.h>

enum lm_log_level { LM_LOG_DEBUG, LM_LOG_INFO, LM_LOG_WARN, LM_LOG_ERROR };

/* path NULL: warnings and errors to stderr only; "-": every line, stamped, to stderr
 * (daemons).  json: one {"level","msg","time"} object a line. */
int lm_log_open(const char *path, bool json, bool debug);
void lm_log(enum lm_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
#define lm_debug(...) lm_log(LM_LOG_DEBUG, __VA_ARGS__)
#define lm_warn(...) lm_log(LM_LOG_WARN, __VA_ARGS__)
