/* See log.h.  One process-wide sink is configuration, not state. */
#include "util/log.h"
#include "util/error.h"

#include <fcntl.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static int log_fd = -1;
static bool log_json;
static bool log_debug;

int lm_log_open(const char *path, bool json, bool debug)
{
	log_json = json;
	log_debug = debug;
	if (!path)
		return 0;
	if (strcmp(path, "-") == 0) {
		log_fd = STDERR_FILENO;
		return 0;
	}
	log_fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
	return log_fd < 0 ? -1 : 0;
}

static const char *level_name(enum lm_log_level level)
{
	switch (level) {
	case LM_LOG_DEBUG: return "debug";
	case LM_LOG_INFO: return "info";
	case LM_LOG_WARN: return "warning";
	case LM_LOG_ERROR: return "error";
	}
	return "info";
}

void lm_log(enum lm_log_level level, const char *fmt, ...)
{
	if (level == LM_LOG_DEBUG && !log_debug)
		return;
	/* One record per line, whatever the strings formatted into it (a hook's
	 * output, a name from config.json): control bytes escaped as in errors. */
	char raw[2048], msg[2048];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(raw, sizeof(raw), fmt, ap);
	va_end(ap);
	lm_escape_controls(msg, sizeof(msg), raw);

	char stamp[64];
	struct timespec ts;
	struct tm tm;
	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	size_t sl = strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(stamp + sl, sizeof(stamp) - sl, ".%09ldZ", ts.tv_nsec);

	if (log_fd >= 0) {
		char line[4096];
		int n;
		if (log_json) {
			json_t *o = json_pack("{s:s,s:s,s:s}", "level", level_name(level), "msg", msg,
					      "time", stamp);
			char *s = o ? json_dumps(o, JSON_COMPACT) : NULL;
			n = snprintf(line, sizeof(line), "%s\n", s ? s : "{}");
			free(s);
			json_decref(o);
		} else {
			n = snprintf(line, sizeof(line), "%s %s: %s\n", stamp, level_name(level), msg);
		}
		if (n > 0 && write(log_fd, line, (size_t)n < sizeof(line) ? (size_t)n : sizeof(line) - 1) < 0) {
			/* nowhere left to report a failing log */
		}
	}
	if (log_fd != STDERR_FILENO && (level >= LM_LOG_WARN || (log_fd < 0 && level == LM_LOG_DEBUG)))
		fprintf(stderr, "lamina: %s%s\n", level == LM_LOG_WARN ? "warning: " : "", msg);
}
