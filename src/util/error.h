/* The one error contract of lamina.
 *
 * A function that can fail returns a negative value and fills a caller-provided
 * struct lm_error with the errno it saw and a message.  Callers that add context
 * call lm_error_prefix() as the error rises ("create foo: mount /proc: ..."); only
 * the top of the stack (CLI, API handler, supervisor) prints or logs the error.
 * Functions never print on their own.  A NULL error pointer is not allowed.
 */
#pragma once

#include <stdarg.h>

#define LM_ERROR_MSG_MAX 1024

struct lm_error {
	int code;  /* errno value, or 0 when the failure is not a system error */
	char msg[LM_ERROR_MSG_MAX];
};

/* Set the error; returns -1 (or -code when code > 0) so callers can `return lm_err(...)`. */
int lm_err(struct lm_error *err, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* Same, taking errno as the code and appending strerror(errno). */
int lm_err_sys(struct lm_error *err, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* Put "context: " in front of the existing message; returns the same value as lm_err. */
int lm_error_prefix(struct lm_error *err, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
void lm_error_clear(struct lm_error *err);
