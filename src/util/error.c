/* Error contract: see error.h. Messages are truncated, never overflowed. */
#include "util/error.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

static int error_result(const struct lm_error *err)
{
	return err->code > 0 ? -err->code : -1;
}

/* dst = a + ": " + b, truncated to fit. */
static void join(char *dst, size_t size, const char *a, const char *b)
{
	size_t n = 0;
	for (const char *parts[] = {a, ": ", b}, **p = parts; p < parts + 3; p++)
		for (const char *c = *p; *c && n + 1 < size; c++)
			dst[n++] = *c;
	dst[n] = '\0';
}

int lm_err(struct lm_error *err, int code, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
	va_end(ap);
	err->code = code;
	return error_result(err);
}

int lm_err_sys(struct lm_error *err, const char *fmt, ...)
{
	int saved = errno;
	char what[LM_ERROR_MSG_MAX];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	join(err->msg, sizeof(err->msg), what, strerror(saved));
	err->code = saved;
	errno = saved;
	return error_result(err);
}

int lm_error_prefix(struct lm_error *err, const char *fmt, ...)
{
	char prefix[LM_ERROR_MSG_MAX];
	char old[LM_ERROR_MSG_MAX];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(prefix, sizeof(prefix), fmt, ap);
	va_end(ap);
	memcpy(old, err->msg, sizeof(old));
	join(err->msg, sizeof(err->msg), prefix, old);
	return error_result(err);
}

void lm_error_clear(struct lm_error *err)
{
	err->code = 0;
	err->msg[0] = '\0';
}
