/* The one error contract of lamina.
 *
 * A function that can fail returns a negative value and fills a caller-provided
 * struct lm_error with the errno it saw and a message.  Callers that add context
 * call lm_error_prefix() as the error rises ("create foo: mount /proc: ..."); only
 * the top of the stack (CLI, API handler, supervisor) prints or logs the error.
 * Functions never print on their own.  A NULL error pointer is not allowed.
 *
 * A message is always one line of printable text: the functions below escape
 * every control byte of what they are given (lm_escape_controls), so a
 * newline in a config.json string, a file name or a peer's reply can never
 * start a second line in a log or on a terminal.  Callers format untrusted
 * strings with a plain %s and need not quote them themselves.
 */
#pragma once

#include <stdarg.h>
#include <stddef.h>

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

/* Copy src into dst (size bytes, always NUL-terminated when size > 0) with
 * control bytes escaped: \n, \r and \t as those two characters, any other byte
 * below 0x20 and 0x7f as \xNN.  Everything else, backslashes and UTF-8
 * included, is copied as is, so escaping is idempotent: text escaped twice
 * (an error message carried across a pipe and wrapped again) reads the same.
 * Truncation never cuts an escape in half.  Returns the length written. */
size_t lm_escape_controls(char *dst, size_t size, const char *src);
