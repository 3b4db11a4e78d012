/* Unit tests for image/ref.c: image references as users write them.
 *
 * Table-driven: every valid reference is checked field by field and by its
 * normalised string, which must itself parse back to the same reference (the
 * store keys images by that string, so it has to be a fixed point).  Every
 * invalid one must fail with a message that names the broken rule, quotes
 * the input, and leaves the output struct empty.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "image/ref.h"
#include "testutil.h"

#define D64 "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
#define DGST "sha256:" D64

static void assert_str_or_null(const char *got, const char *want, const char *what, const char *input)
{
	if (!want && !got)
		return;
	if (!want || !got || strcmp(want, got) != 0)
		fail_msg("%s: %s is \"%s\", expected \"%s\"", input, what, got ? got : "(null)",
			 want ? want : "(null)");
}

/* ---------------------------------------------------------------- valid */

struct valid_case {
	const char *in;
	const char *default_registry;
	const char *registry, *repository, *tag, *digest;
	const char *normalised;
};

static const struct valid_case valid_cases[] = {
	{ "busybox", NULL, "docker.io", "library/busybox", "latest", NULL, "docker.io/library/busybox:latest" },
	{ "busybox:1.36", NULL, "docker.io", "library/busybox", "1.36", NULL, "docker.io/library/busybox:1.36" },
	{ "library/busybox", NULL, "docker.io", "library/busybox", "latest", NULL, "docker.io/library/busybox:latest" },
	{ "docker.io/busybox", NULL, "docker.io", "library/busybox", "latest", NULL, "docker.io/library/busybox:latest" },
	{ "index.docker.io/busybox:musl", NULL, "docker.io", "library/busybox", "musl", NULL,
	  "docker.io/library/busybox:musl" },
	{ "Docker.IO/busybox", NULL, "docker.io", "library/busybox", "latest", NULL, "docker.io/library/busybox:latest" },
	{ "docker.io/library/busybox:latest", NULL, "docker.io", "library/busybox", "latest", NULL,
	  "docker.io/library/busybox:latest" },
	{ "org/app", NULL, "docker.io", "org/app", "latest", NULL, "docker.io/org/app:latest" },
	{ "org/team/app:v1", NULL, "docker.io", "org/team/app", "v1", NULL, "docker.io/org/team/app:v1" },
	{ "1/2", NULL, "docker.io", "1/2", "latest", NULL, "docker.io/1/2:latest" },
	{ "a", NULL, "docker.io", "library/a", "latest", NULL, "docker.io/library/a:latest" },
	{ "127.0.0.1:5000/app:1.2", NULL, "127.0.0.1:5000", "app", "1.2", NULL, "127.0.0.1:5000/app:1.2" },
	{ "localhost/app", NULL, "localhost", "app", "latest", NULL, "localhost/app:latest" },
	{ "localhost:5000/a/b/c", NULL, "localhost:5000", "a/b/c", "latest", NULL, "localhost:5000/a/b/c:latest" },
	{ "ghcr.io/org/app@" DGST, NULL, "ghcr.io", "org/app", NULL, DGST, "ghcr.io/org/app@" DGST },
	{ "ghcr.io/org/app:v1@" DGST, NULL, "ghcr.io", "org/app", "v1", DGST, "ghcr.io/org/app:v1@" DGST },
	{ "busybox@" DGST, NULL, "docker.io", "library/busybox", NULL, DGST, "docker.io/library/busybox@" DGST },
	{ "[::1]:5000/app", NULL, "[::1]:5000", "app", "latest", NULL, "[::1]:5000/app:latest" },
	{ "[fe80::1]/app:x", NULL, "[fe80::1]", "app", "x", NULL, "[fe80::1]/app:x" },
	{ "my-registry.example.com:443/a_b/c__d/e-f--g.h:Tag_1.0-rc", NULL, "my-registry.example.com:443",
	  "a_b/c__d/e-f--g.h", "Tag_1.0-rc", NULL, "my-registry.example.com:443/a_b/c__d/e-f--g.h:Tag_1.0-rc" },
	{ "xn--bcher-kva.example/app", NULL, "xn--bcher-kva.example", "app", "latest", NULL,
	  "xn--bcher-kva.example/app:latest" },
	{ "Registry.Example.com/app", NULL, "Registry.Example.com", "app", "latest", NULL,
	  "Registry.Example.com/app:latest" },
	{ "foo_bar/foo.bar/foo---bar", NULL, "docker.io", "foo_bar/foo.bar/foo---bar", "latest", NULL,
	  "docker.io/foo_bar/foo.bar/foo---bar:latest" },
	{ "busybox:_", NULL, "docker.io", "library/busybox", "_", NULL, "docker.io/library/busybox:_" },
	{ "busybox:LATEST", NULL, "docker.io", "library/busybox", "LATEST", NULL, "docker.io/library/busybox:LATEST" },
	/* No '/': the colon is a tag, as docker reads it. */
	{ "localhost:5000", NULL, "docker.io", "library/localhost", "5000", NULL, "docker.io/library/localhost:5000" },
	{ "registry.com:5000", NULL, "docker.io", "library/registry.com", "5000", NULL,
	  "docker.io/library/registry.com:5000" },
	/* A configured default registry: no "library/". */
	{ "busybox", "registry.local:5000", "registry.local:5000", "busybox", "latest", NULL,
	  "registry.local:5000/busybox:latest" },
	{ "org/app:2", "registry.local:5000", "registry.local:5000", "org/app", "2", NULL,
	  "registry.local:5000/org/app:2" },
	{ "ghcr.io/x", "registry.local:5000", "ghcr.io", "x", "latest", NULL, "ghcr.io/x:latest" },
	{ "busybox", "docker.io", "docker.io", "library/busybox", "latest", NULL, "docker.io/library/busybox:latest" },
	{ "busybox", "", "docker.io", "library/busybox", "latest", NULL, "docker.io/library/busybox:latest" },
};

static void check_valid(const struct valid_case *c)
{
	struct lm_error err = { 0 };
	struct lm_image_ref ref;
	if (lm_image_ref_parse(c->in, c->default_registry, &ref, &err) < 0)
		fail_msg("%s: unexpected error: %s", c->in, err.msg);
	assert_str_or_null(ref.registry, c->registry, "registry", c->in);
	assert_str_or_null(ref.repository, c->repository, "repository", c->in);
	assert_str_or_null(ref.tag, c->tag, "tag", c->in);
	assert_str_or_null(ref.digest, c->digest, "digest", c->in);
	char *s = lm_image_ref_string(&ref);
	assert_non_null(s);
	assert_str_or_null(s, c->normalised, "string", c->in);

	/* The normalised form is a fixed point whatever the default registry. */
	struct lm_image_ref again;
	if (lm_image_ref_parse(s, "other.example:1", &again, &err) < 0)
		fail_msg("%s: normalised \"%s\" does not parse: %s", c->in, s, err.msg);
	char *s2 = lm_image_ref_string(&again);
	assert_str_or_null(s2, s, "re-parsed string", c->in);
	free(s2);
	lm_image_ref_free(&again);
	free(s);
	lm_image_ref_free(&ref);
	assert_null(ref.registry);
	assert_null(ref.repository);
}

static void test_valid(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(valid_cases) / sizeof(valid_cases[0]); i++)
		check_valid(&valid_cases[i]);
}

/* Limits are inclusive: a 255-character name and a 128-character tag are fine. */
static void test_limits(void **state)
{
	(void)state;
	char name[300], text[600], tag[200];
	/* "docker.io/" + 245 = 255 */
	memset(name, 'a', 245);
	name[245] = '\0';
	memset(tag, 't', 128);
	tag[128] = '\0';
	snprintf(text, sizeof(text), "docker.io/%s:%s", name, tag);
	struct lm_image_ref ref;
	struct lm_error err = { 0 };
	if (lm_image_ref_parse(text, NULL, &ref, &err) < 0)
		fail_msg("255-character name with a 128-character tag: %s", err.msg);
	assert_int_equal(strlen(ref.tag), 128);
	lm_image_ref_free(&ref);

	snprintf(text, sizeof(text), "docker.io/%sa", name);
	assert_true(lm_image_ref_parse(text, NULL, &ref, &err) < 0);
	assert_int_equal(err.code, EINVAL);
	assert_contains(err.msg, "256 characters, more than 255");

	snprintf(text, sizeof(text), "busybox:%st", tag);
	assert_true(lm_image_ref_parse(text, NULL, &ref, &err) < 0);
	assert_contains(err.msg, "at most 128");
}

/* ---------------------------------------------------------------- invalid */

struct invalid_case {
	const char *in;
	const char *why;
};

static const struct invalid_case invalid_cases[] = {
	{ "", "empty image reference" },
	{ "Busybox", "repository names must be lowercase" },
	{ "MyOrg/app", "repository names must be lowercase" },
	{ "ghcr.io/Org/app", "repository names must be lowercase" },
	{ "busybox:", "empty tag after ':'" },
	{ ":tag", "missing repository name" },
	{ "@" DGST, "missing repository name" },
	{ "busybox@", "empty digest after '@'" },
	{ "busybox@sha256:abc", "expected 64 hex characters" },
	{ "busybox@md5:" D64, "only sha256 is supported" },
	{ "busybox@sha256:0123456789ABCDEF0123456789abcdef0123456789abcdef0123456789abcdef", "not lowercase hex" },
	{ "busybox@" DGST "@" DGST, "more than one '@'" },
	{ "busybox:-tag", "tags must start with a letter, digit or '_'" },
	{ "busybox:.tag", "tags must start with a letter, digit or '_'" },
	{ "busybox:tag!", "tags may only contain" },
	{ "busybox:a/b", "registry port" }, /* the ':' is before the last '/': a port */
	{ "/busybox", "empty path component" },
	{ "busybox/", "empty path component" },
	{ "a//b", "empty path component" },
	{ "docker.io/", "empty path component" },
	{ "localhost/", "empty path component" },
	{ "-busybox", "must start and end with a lowercase letter or digit" },
	{ "busybox-", "must start and end with a lowercase letter or digit" },
	{ "org/_app", "must start and end with a lowercase letter or digit" },
	{ "foo..bar", "separators in a path component" },
	{ "foo___bar", "separators in a path component" },
	{ "foo._bar", "separators in a path component" },
	{ "foo-.bar", "separators in a path component" },
	{ "a:b:c", "may only contain [a-z0-9]" },
	{ "foo+bar", "may only contain [a-z0-9]" },
	{ "foo bar", "whitespace" },
	{ "foo\tbar", "whitespace" },
	{ "f\xc3\xb6o", "non-ASCII" },
	{ D64, "image id" },
	{ "localhost:abc/app", "registry port" },
	{ "localhost:0/app", "registry port" },
	{ "host.com:65536/app", "registry port" },
	{ "host.com:123456/app", "registry port" },
	{ "host.com:/app", "registry port" },
	{ "-host.com/app", "labels must start and end" },
	{ "host-.com/app", "labels must start and end" },
	{ "host..com/app", "empty label" },
	{ ".host.com/app", "empty label" },
	{ "host.com./app", "ends with '.'" },
	{ "host_name.com/app", "may only contain letters, digits, '-' and '.'" },
	{ ":5000/app", "empty registry host name" },
	{ "[::1/app", "missing its ']'" },
	{ "[zz::1]:5000/app", "IPv6 address is not valid" },
	{ "[]:5000/app", "IPv6 address is not valid" },
	{ "[::1]x:1/app", "unexpected characters after the registry IPv6 address" },
	{ "[::1]:/app", "registry port" },
};

static void test_invalid(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(invalid_cases) / sizeof(invalid_cases[0]); i++) {
		const struct invalid_case *c = &invalid_cases[i];
		struct lm_error err = { 0 };
		struct lm_image_ref ref;
		memset(&ref, 0xa5, sizeof(ref));
		int r = lm_image_ref_parse(c->in, NULL, &ref, &err);
		if (r >= 0) {
			char *s = lm_image_ref_string(&ref);
			fail_msg("\"%s\" parsed (as %s), expected an error about %s", c->in, s, c->why);
		}
		assert_true(err.code > 0);
		if (!strstr(err.msg, c->why))
			fail_msg("\"%s\": message \"%s\" does not say \"%s\"", c->in, err.msg, c->why);
		assert_contains(err.msg, "invalid reference \"");
		assert_null(ref.registry);
		assert_null(ref.repository);
		assert_null(ref.tag);
		assert_null(ref.digest);
	}
}

static void test_exact_message(void **state)
{
	(void)state;
	struct lm_error err = { 0 };
	struct lm_image_ref ref;
	assert_int_equal(lm_image_ref_parse("FOO", NULL, &ref, &err), -EINVAL);
	assert_string_equal(err.msg, "invalid reference \"FOO\": repository names must be lowercase");
	assert_int_equal(err.code, EINVAL);

	/* The digest's own error is kept, behind the reference. */
	assert_true(lm_image_ref_parse("x@sha512:ab", NULL, &ref, &err) < 0);
	assert_int_equal(err.code, ENOTSUP);
	assert_contains(err.msg, "invalid reference \"x@sha512:ab\": ");
	assert_contains(err.msg, "only sha256");
}

/* Untrusted text in messages: control bytes are masked and long input is cut. */
static void test_message_sanitised(void **state)
{
	(void)state;
	struct lm_error err = { 0 };
	struct lm_image_ref ref;
	assert_true(lm_image_ref_parse("foo\nbar\x1b[31m", NULL, &ref, &err) < 0);
	assert_contains(err.msg, "\"foo?bar?[31m\"");
	assert_null(strchr(err.msg, '\n'));
	assert_null(strchr(err.msg, '\x1b'));

	char big[5000];
	memset(big, 'A', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	assert_true(lm_image_ref_parse(big, NULL, &ref, &err) < 0);
	assert_contains(err.msg, "AAA...\": ");
	assert_true(strlen(err.msg) < 400);
}

static void test_bad_default_registry(void **state)
{
	(void)state;
	struct lm_error err = { 0 };
	struct lm_image_ref ref;
	assert_true(lm_image_ref_parse("busybox", "bad_host:1", &ref, &err) < 0);
	assert_contains(err.msg, "registry host names may only contain");
	assert_true(lm_image_ref_parse("busybox", "host:99999", &ref, &err) < 0);
	assert_contains(err.msg, "registry port");
	/* A registry in the reference wins over a bad default. */
	assert_int_equal(lm_image_ref_parse("ghcr.io/x", "bad host", &ref, &err), 0);
	lm_image_ref_free(&ref);
	lm_image_ref_free(NULL);
}

/* ---------------------------------------------------------------- helpers */

static char *parse_then(const char *in, char *(*fn)(const struct lm_image_ref *))
{
	struct lm_error err = { 0 };
	struct lm_image_ref ref;
	if (lm_image_ref_parse(in, NULL, &ref, &err) < 0)
		fail_msg("%s: %s", in, err.msg);
	char *s = fn(&ref);
	lm_image_ref_free(&ref);
	assert_non_null(s);
	return s;
}

static void test_familiar_and_name(void **state)
{
	(void)state;
	static const struct {
		const char *in, *familiar, *name;
	} cases[] = {
		{ "busybox", "busybox:latest", "docker.io/library/busybox" },
		{ "docker.io/library/busybox:1", "busybox:1", "docker.io/library/busybox" },
		{ "org/app", "org/app:latest", "docker.io/org/app" },
		{ "library/a/b", "library/a/b:latest", "docker.io/library/a/b" },
		{ "127.0.0.1:5000/app:1.2", "127.0.0.1:5000/app:1.2", "127.0.0.1:5000/app" },
		{ "ghcr.io/library/x", "ghcr.io/library/x:latest", "ghcr.io/library/x" },
		{ "busybox@" DGST, "busybox@" DGST, "docker.io/library/busybox" },
		{ "q.io/a:t@" DGST, "q.io/a:t@" DGST, "q.io/a" },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char *f = parse_then(cases[i].in, lm_image_ref_familiar);
		assert_str_or_null(f, cases[i].familiar, "familiar", cases[i].in);
		free(f);
		char *n = parse_then(cases[i].in, lm_image_ref_name);
		assert_str_or_null(n, cases[i].name, "name", cases[i].in);
		free(n);
	}
}

static void test_endpoint_host(void **state)
{
	(void)state;
	struct lm_error err = { 0 };
	struct lm_image_ref ref;
	assert_int_equal(lm_image_ref_parse("busybox", NULL, &ref, &err), 0);
	assert_string_equal(lm_image_ref_endpoint_host(&ref), "registry-1.docker.io");
	lm_image_ref_free(&ref);
	assert_int_equal(lm_image_ref_parse("index.docker.io/x/y", NULL, &ref, &err), 0);
	assert_string_equal(lm_image_ref_endpoint_host(&ref), "registry-1.docker.io");
	lm_image_ref_free(&ref);
	assert_int_equal(lm_image_ref_parse("127.0.0.1:5000/app", NULL, &ref, &err), 0);
	assert_string_equal(lm_image_ref_endpoint_host(&ref), "127.0.0.1:5000");
	lm_image_ref_free(&ref);
}

static void test_loopback(void **state)
{
	(void)state;
	static const char *yes[] = {
		"localhost", "localhost:5000", "LocalHost:1", "127.0.0.1", "127.0.0.1:5000",
		"127.1.2.3:80", "127.255.255.255", "[::1]", "[::1]:5000", "[::ffff:127.0.0.1]:5000",
		"[0:0:0:0:0:0:0:1]",
	};
	static const char *no[] = {
		"", "example.com", "128.0.0.1", "10.0.0.1:5000", "localhost.example.com",
		"127.0.0.1.example.com", "[::2]", "[::1", "[::1]x", "docker.io", "0.0.0.0",
		"[::ffff:10.0.0.1]", "127.0.0", "localhost5000",
	};
	for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++)
		if (!lm_registry_is_loopback(yes[i]))
			fail_msg("%s should be loopback", yes[i]);
	for (size_t i = 0; i < sizeof(no) / sizeof(no[0]); i++)
		if (lm_registry_is_loopback(no[i]))
			fail_msg("%s should not be loopback", no[i]);
	assert_false(lm_registry_is_loopback(NULL));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_valid),
		cmocka_unit_test(test_limits),
		cmocka_unit_test(test_invalid),
		cmocka_unit_test(test_exact_message),
		cmocka_unit_test(test_message_sanitised),
		cmocka_unit_test(test_bad_default_registry),
		cmocka_unit_test(test_familiar_and_name),
		cmocka_unit_test(test_endpoint_host),
		cmocka_unit_test(test_loopback),
	};
	return cmocka_run_group_tests_name("ref", tests, NULL, NULL);
}
