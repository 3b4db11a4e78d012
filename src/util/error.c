/* Error contract: see error.h. Messages are truncated, never overflowed.
 *
 * Every message is formatted into a scratch buffer first and then copied
 * into the error with its control bytes escaped, so no caller has to quote
 * the untrusted strings it formats (and a message that formats the error's
 * own previous text, "...: %s", err->msg, never reads what it is writing). */
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

size_t lm_escape_controls(char *dst, size_t size, const char *src)
{
	static const char hex[] = "0123456789abcdef";
	size_t n = 0;

	if (size == 0)
		return 0;
	for (const unsigned char *c = (const unsigned char *)src; *c; c++) {
		char esc[4] = {(char)*c};
		size_t len = 1;
		if (*c < 0x20 || *c == 0x7f) {
			esc[0] = '\\';
			len = 2;
			switch (*c) {
			case '\n':
				esc[1] = 'n';
				break;
			case '\r':
				esc[1] = 'r';
				break;
			case '\t':
				esc[1] = 't';
				break;
			default:
				esc[1] = 'x';
				esc[2] = hex[*c >> 4];
				esc[3] = hex[*c & 0xf];
				len = 4;
			}
		}
		if (n + len >= size)
			break;
		memcpy(dst + n, esc, len);
		n += len;
	}
	dst[n] = '\0';
	return n;
}

static void set_msg(struct lm_error *err, const char *raw)
{
	lm_escape_controls(err->msg, sizeof(err->msg), raw);
}

int lm_err(struct lm_error *err, int code, const char *fmt, ...)
{
	char raw[LM_ERROR_MSG_MAX];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(raw, sizeof(raw), fmt, ap);
	va_end(ap);
	set_msg(err, raw);
	err->code = code;
	return error_result(err);
}

int lm_err_sys(struct lm_error *err, const char *fmt, ...)
{
	int saved = errno;
	char what[LM_ERROR_MSG_MAX];
	char raw[LM_ERROR_MSG_MAX];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	join(raw, sizeof(raw), what, strerror(saved));
	set_msg(err, raw);
	err->code = saved;
	errno = saved;
	return error_result(err);
}

int lm_error_prefix(struct lm_error *err, const char *fmt, ...)
{
	char prefix[LM_ERROR_MSG_MAX];
	char raw[LM_ERROR_MSG_MAX];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(prefix, sizeof(prefix), fmt, ap);
	va_end(ap);
	join(raw, sizeof(raw), prefix, err->msg);
	set_msg(err, raw);
	return error_result(err);
}

void lm_error_clear(struct lm_error *err)
{
	err->code = 0;
	err->msg[0] = '\0';
}
