/* Unit tests for util/error.c: the one error contract, and the escaping that
 * keeps every message on one line whatever strings it was built from.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "util/error.h"

/* lm_escape_controls into a roomy buffer. */
static const char *esc(const char *src)
{
	static char buf[256];
	size_t n = lm_escape_controls(buf, sizeof(buf), src);
	assert_int_equal(n, strlen(buf));
	return buf;
}

static void escape_plain_text_is_copied(void **state)
{
	(void)state;
	assert_string_equal(esc(""), "");
	assert_string_equal(esc("mounts[3].destination: /proc"), "mounts[3].destination: /proc");
	/* backslashes and UTF-8 are not control bytes */
	assert_string_equal(esc("a\\nb C:\\x41"), "a\\nb C:\\x41");
	assert_string_equal(esc("h\xc3\xa9llo \xe2\x9c\x93 \xff"), "h\xc3\xa9llo \xe2\x9c\x93 \xff");
	assert_string_equal(esc(" ~"), " ~");
}

static void escape_control_bytes(void **state)
{
	(void)state;
	assert_string_equal(esc("net.ipv4.ip_forward\nkernel.core_pattern"),
			    "net.ipv4.ip_forward\\nkernel.core_pattern");
	assert_string_equal(esc("a\rb\tc"), "a\\rb\\tc");
	assert_string_equal(esc("\x01\x1b[31m\x1f\x7f"), "\\x01\\x1b[31m\\x1f\\x7f");
	assert_string_equal(esc("\n\n"), "\\n\\n");
	/* every byte below 0x20, and 0x7f, comes out printable */
	for (int c = 1; c < 0x80; c++) {
		char in[2] = {(char)c, '\0'};
		const char *out = esc(in);
		for (const char *p = out; *p; p++)
			assert_true((unsigned char)*p >= 0x20 && *p != 0x7f);
		if (c >= 0x20 && c != 0x7f)
			assert_string_equal(out, in);
	}
}

static void escape_is_idempotent(void **state)
{
	(void)state;
	const char *inputs[] = {"plain", "two\nlines", "\x01\x7f\\x01", "tab\there\r\n"};
	for (size_t i = 0; i < sizeof(inputs) / sizeof(inputs[0]); i++) {
		char once[128], twice[128];
		lm_escape_controls(once, sizeof(once), inputs[i]);
		lm_escape_controls(twice, sizeof(twice), once);
		assert_string_equal(once, twice);
	}
}

static void escape_truncates_whole_escapes(void **state)
{
	(void)state;
	char buf[8];
	/* "ab\x01" needs 2 + 4 bytes: 6 fit with the NUL in 7 */
	assert_int_equal(lm_escape_controls(buf, 7, "ab\x01"), 6);
	assert_string_equal(buf, "ab\\x01");
	/* one byte short: the escape is dropped whole, not cut to "\x0" */
	assert_int_equal(lm_escape_controls(buf, 6, "ab\x01z"), 2);
	assert_string_equal(buf, "ab");
	assert_int_equal(lm_escape_controls(buf, 4, "a\nb"), 3);
	assert_string_equal(buf, "a\\n");
	assert_int_equal(lm_escape_controls(buf, 3, "a\nb"), 1);
	assert_string_equal(buf, "a");
	assert_int_equal(lm_escape_controls(buf, 1, "abc"), 0);
	assert_string_equal(buf, "");
	buf[0] = 'x';
	assert_int_equal(lm_escape_controls(buf, 0, "abc"), 0);
	assert_int_equal(buf[0], 'x');
}

static void lm_err_message_is_one_line(void **state)
{
	(void)state;
	struct lm_error err;
	lm_error_clear(&err);
	assert_int_equal(lm_err(&err, EINVAL, "sysctl %s: invalid", "a\nb"), -EINVAL);
	assert_int_equal(err.code, EINVAL);
	assert_string_equal(err.msg, "sysctl a\\nb: invalid");
	assert_int_equal(lm_err(&err, 0, "%s", "x\ry"), -1);
	assert_string_equal(err.msg, "x\\ry");
}

static void lm_err_sys_escapes_and_appends_strerror(void **state)
{
	(void)state;
	struct lm_error err;
	lm_error_clear(&err);
	errno = ENOENT;
	assert_int_equal(lm_err_sys(&err, "open %s", "/proc/sys/net\nkernel"), -ENOENT);
	assert_int_equal(err.code, ENOENT);
	char want[256];
	snprintf(want, sizeof(want), "open /proc/sys/net\\nkernel: %s", strerror(ENOENT));
	assert_string_equal(err.msg, want);
	assert_int_equal(errno, ENOENT);
}

static void lm_error_prefix_escapes_once(void **state)
{
	(void)state;
	struct lm_error err;
	lm_error_clear(&err);
	lm_err(&err, EPERM, "key %s", "a\nb");
	assert_int_equal(lm_error_prefix(&err, "mounts[%d] %s", 2, "/x\ty"), -EPERM);
	assert_string_equal(err.msg, "mounts[2] /x\\ty: key a\\nb");
	/* a message carried across a pipe and wrapped again reads the same */
	char carried[LM_ERROR_MSG_MAX];
	memcpy(carried, err.msg, sizeof(carried));
	lm_err(&err, EPERM, "%s", carried);
	assert_string_equal(err.msg, carried);
}

static void lm_err_may_format_its_own_message(void **state)
{
	(void)state;
	struct lm_error err;
	lm_error_clear(&err);
	lm_err(&err, EIO, "inner");
	lm_err(&err, EIO, "outer: %s", err.msg);
	assert_string_equal(err.msg, "outer: inner");
}

static void long_messages_are_truncated_not_overflowed(void **state)
{
	(void)state;
	struct lm_error err;
	char big[3 * LM_ERROR_MSG_MAX];
	memset(big, '\n', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	lm_err(&err, E2BIG, "%s", big);
	assert_true(strlen(err.msg) < sizeof(err.msg));
	assert_null(strchr(err.msg, '\n'));
	assert_int_equal(strlen(err.msg) % 2, 0); /* whole "\n" pairs only */
	lm_error_prefix(&err, "%s", big);
	assert_true(strlen(err.msg) < sizeof(err.msg));
	assert_null(strchr(err.msg, '\n'));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(escape_plain_text_is_copied),
		cmocka_unit_test(escape_control_bytes),
		cmocka_unit_test(escape_is_idempotent),
		cmocka_unit_test(escape_truncates_whole_escapes),
		cmocka_unit_test(lm_err_message_is_one_line),
		cmocka_unit_test(lm_err_sys_escapes_and_appends_strerror),
		cmocka_unit_test(lm_error_prefix_escapes_once),
		cmocka_unit_test(lm_err_may_format_its_own_message),
		cmocka_unit_test(long_messages_are_truncated_not_overflowed),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
