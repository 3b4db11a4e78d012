/* Unit tests for image/auth.c: WWW-Authenticate parsing, token responses,
 * credentials files (lookup and `lamina login`'s save), and the store of
 * schemes and tokens a registry client keeps.
 *
 * Credentials files are given as JSON text (lm_auth_lookup_json) where the
 * file itself does not matter; save/lookup round trips go through real files
 * in a fresh /tmp/lm-auth-XXXXXX directory per test.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "image/auth.h"
#include "testutil.h"

/* ------------------------------------------------------------ challenges */

static void challenge_bearer(void **state)
{
	struct lm_auth_challenge ch;
	struct lm_error err = {0};
	assert_int_equal(lm_auth_parse_challenge(
				 "Bearer realm=\"https://auth.docker.io/token\",service=\"registry.docker.io\","
				 "scope=\"repository:library/busybox:pull,push\"",
				 &ch, &err),
			 0);
	assert_int_equal(ch.scheme, LM_AUTH_BEARER);
	assert_string_equal(ch.realm, "https://auth.docker.io/token");
	assert_string_equal(ch.service, "registry.docker.io");
	/* commas and colons inside quotes belong to the value */
	assert_string_equal(ch.scope, "repository:library/busybox:pull,push");
	assert_null(ch.error);
	lm_auth_challenge_free(&ch);
}

static void challenge_variants(void **state)
{
	struct lm_auth_challenge ch;
	struct lm_error err = {0};
	/* case-insensitive scheme and names, spaces around '=' and ',', an error field */
	assert_int_equal(lm_auth_parse_challenge("  bEaReR  Realm = \"http://127.0.0.1:1/t\" ,  "
						 "error=\"invalid_token\" , Service=reg",
						 &ch, &err),
			 0);
	assert_int_equal(ch.scheme, LM_AUTH_BEARER);
	assert_string_equal(ch.realm, "http://127.0.0.1:1/t");
	assert_string_equal(ch.error, "invalid_token");
	assert_string_equal(ch.service, "reg"); /* a bare token value */
	assert_null(ch.scope);
	lm_auth_challenge_free(&ch);

	/* backslash escapes in quoted strings; unknown parameters ignored */
	assert_int_equal(lm_auth_parse_challenge("Basic realm=\"say \\\"hi\\\"\", charset=\"UTF-8\"", &ch,
						 &err),
			 0);
	assert_int_equal(ch.scheme, LM_AUTH_BASIC);
	assert_string_equal(ch.realm, "say \"hi\"");
	lm_auth_challenge_free(&ch);

	/* Basic needs no realm */
	assert_int_equal(lm_auth_parse_challenge("Basic", &ch, &err), 0);
	assert_int_equal(ch.scheme, LM_AUTH_BASIC);
	lm_auth_challenge_free(&ch);

	/* two challenges in one header: the first counts, the second is not merged in */
	assert_int_equal(lm_auth_parse_challenge("Bearer realm=\"https://a/t\", Basic realm=\"b\"", &ch,
						 &err),
			 0);
	assert_int_equal(ch.scheme, LM_AUTH_BEARER);
	assert_string_equal(ch.realm, "https://a/t");
	lm_auth_challenge_free(&ch);
}

static void challenge_errors(void **state)
{
	struct lm_auth_challenge ch;
	struct lm_error err = {0};
	assert_int_equal(lm_auth_parse_challenge("Negotiate abc", &ch, &err), -ENOTSUP);
	assert_contains(err.msg, "unsupported authentication scheme \"Negotiate\"");
	assert_int_equal(lm_auth_parse_challenge("Bearer service=\"x\"", &ch, &err), -EINVAL);
	assert_contains(err.msg, "without a realm");
	assert_int_equal(lm_auth_parse_challenge("Bearer realm=\"unterminated", &ch, &err), -EINVAL);
	assert_contains(err.msg, "malformed WWW-Authenticate");
	assert_int_equal(lm_auth_parse_challenge("Bearer =x", &ch, &err), -EINVAL);
	assert_int_equal(lm_auth_parse_challenge("", &ch, &err), -ENOTSUP);
	/* a failed parse leaves nothing to free */
	assert_null(ch.realm);
	assert_null(ch.service);
}

/* ----------------------------------------------------------------- tokens */

static void token_responses(void **state)
{
	struct lm_error err = {0};
	char *tok = NULL;
	long exp = 0;
	const char *a = "{\"token\":\"T1\",\"access_token\":\"T2\",\"expires_in\":300}";
	assert_int_equal(lm_auth_parse_token(a, strlen(a), &tok, &exp, &err), 0);
	assert_string_equal(tok, "T1");
	assert_int_equal(exp, 300);
	free(tok);

	const char *b = "{\"access_token\":\"T2\"}";
	assert_int_equal(lm_auth_parse_token(b, strlen(b), &tok, &exp, &err), 0);
	assert_string_equal(tok, "T2");
	assert_int_equal(exp, 60); /* missing: the spec's default */
	free(tok);

	const char *c = "{\"token\":\"T3\",\"expires_in\":5}";
	assert_int_equal(lm_auth_parse_token(c, strlen(c), &tok, &exp, &err), 0);
	assert_int_equal(exp, 60); /* below the minimum */
	free(tok);

	const char *d = "{\"token\":\"\"}";
	assert_int_equal(lm_auth_parse_token(d, strlen(d), &tok, &exp, &err), -EBADMSG);
	assert_contains(err.msg, "no token");
	assert_int_equal(lm_auth_parse_token("[1]", 3, &tok, &exp, &err), -EBADMSG);
	assert_int_equal(lm_auth_parse_token("<html>", 6, &tok, &exp, &err), -EBADMSG);
}

/* ----------------------------------------------------------- credentials */

static int lookup(const char *json, const char *registry, const char *repo, struct lm_credentials *c,
		  struct lm_error *err)
{
	return lm_auth_lookup_json(json, strlen(json), registry, repo, c, err);
}

static void lookup_forms(void **state)
{
	struct lm_credentials c;
	struct lm_error err = {0};
	/* base64 "alice:pa:ss" (a colon in the password stays in the password) */
	const char *j = "{\"auths\":{\"127.0.0.1:5000\":{\"auth\":\"YWxpY2U6cGE6c3M=\"},"
			"\"reg.example\":{\"username\":\"bob\",\"password\":\"pw\"}}}";
	assert_int_equal(lookup(j, "127.0.0.1:5000", "app", &c, &err), 1);
	assert_string_equal(c.user, "alice");
	assert_string_equal(c.password, "pa:ss");
	lm_credentials_free(&c);
	assert_int_equal(lookup(j, "REG.example", NULL, &c, &err), 1);
	assert_string_equal(c.user, "bob");
	assert_string_equal(c.password, "pw");
	lm_credentials_free(&c);
	/* another port is another registry */
	assert_int_equal(lookup(j, "127.0.0.1:5001", NULL, &c, &err), 0);
	assert_null(c.user);
	/* no auths at all */
	assert_int_equal(lookup("{}", "127.0.0.1:5000", NULL, &c, &err), 0);
	/* unpadded base64 is accepted too ("alice:pw") */
	assert_int_equal(lookup("{\"auths\":{\"h\":{\"auth\":\"YWxpY2U6cHc\"}}}", "h", NULL, &c, &err), 1);
	assert_string_equal(c.password, "pw");
	lm_credentials_free(&c);
}

static void lookup_keys(void **state)
{
	struct lm_credentials c;
	struct lm_error err = {0};
	/* Docker Hub under its legacy URL key, found for docker.io */
	const char *hub = "{\"auths\":{\"https://index.docker.io/v1/\":{\"auth\":\"aHViOmh1Yg==\"}}}";
	assert_int_equal(lookup(hub, "docker.io", "library/busybox", &c, &err), 1);
	assert_string_equal(c.user, "hub");
	lm_credentials_free(&c);
	assert_int_equal(lookup(hub, "registry-1.docker.io", NULL, &c, &err), 1);
	lm_credentials_free(&c);

	/* URL keys with paths are API paths, not namespaces */
	const char *url = "{\"auths\":{\"http://127.0.0.1:5000/v2/\":{\"auth\":\"dTpw\"}}}";
	assert_int_equal(lookup(url, "127.0.0.1:5000", "x/y", &c, &err), 1);
	assert_string_equal(c.user, "u");
	lm_credentials_free(&c);

	/* namespace keys: the longest matching prefix wins, whole components only */
	const char *ns = "{\"auths\":{"
			 "\"quay.io\":{\"username\":\"all\",\"password\":\"1\"},"
			 "\"quay.io/org\":{\"username\":\"org\",\"password\":\"2\"},"
			 "\"quay.io/org/team\":{\"username\":\"team\",\"password\":\"3\"}}}";
	assert_int_equal(lookup(ns, "quay.io", "org/team/app", &c, &err), 1);
	assert_string_equal(c.user, "team");
	lm_credentials_free(&c);
	assert_int_equal(lookup(ns, "quay.io", "org/app", &c, &err), 1);
	assert_string_equal(c.user, "org");
	lm_credentials_free(&c);
	assert_int_equal(lookup(ns, "quay.io", "organic/app", &c, &err), 1);
	assert_string_equal(c.user, "all");
	lm_credentials_free(&c);
	assert_int_equal(lookup(ns, "quay.io", NULL, &c, &err), 1);
	assert_string_equal(c.user, "all");
	lm_credentials_free(&c);
}

static void lookup_errors(void **state)
{
	struct lm_credentials c;
	struct lm_error err = {0};
	assert_int_equal(lookup("{\"credHelpers\":{\"127.0.0.1:5000\":\"pass\"}}", "127.0.0.1:5000", NULL, &c,
				&err),
			 -ENOTSUP);
	assert_contains(err.msg, "credential helpers are not supported");
	/* a helper for another registry does not matter */
	assert_int_equal(lookup("{\"credHelpers\":{\"gcr.io\":\"gcloud\"}}", "127.0.0.1:5000", NULL, &c, &err),
			 0);
	/* a global store with an empty entry for this registry: the helper has it */
	assert_int_equal(lookup("{\"credsStore\":\"desktop\",\"auths\":{\"h:1\":{}}}", "h:1", NULL, &c, &err),
			 -ENOTSUP);
	assert_contains(err.msg, "credsStore \"desktop\"");
	/* ... but a registry it has nothing for is pulled anonymously */
	assert_int_equal(lookup("{\"credsStore\":\"desktop\",\"auths\":{\"h:1\":{}}}", "h:2", NULL, &c, &err),
			 0);
	/* inline credentials win over a helper */
	assert_int_equal(lookup("{\"credsStore\":\"desktop\",\"auths\":{\"h:1\":{\"auth\":\"dTpw\"}}}", "h:1",
				NULL, &c, &err),
			 1);
	lm_credentials_free(&c);
	assert_int_equal(lookup("{\"auths\":{\"h\":{\"identitytoken\":\"x\"}}}", "h", NULL, &c, &err), -ENOTSUP);
	assert_contains(err.msg, "identity tokens are not supported");
	assert_int_equal(lookup("{\"auths\":{\"h\":{\"auth\":\"bm9jb2xvbg==\"}}}", "h", NULL, &c, &err),
			 -EINVAL);
	assert_contains(err.msg, "user:password");
	assert_int_equal(lookup("{\"auths\":{\"h\":{\"auth\":\"!!!!\"}}}", "h", NULL, &c, &err), -EINVAL);
	assert_int_equal(lookup("{\"auths\":", "h", NULL, &c, &err), -EINVAL);
	assert_contains(err.msg, "line 1");
	assert_int_equal(lookup("[]", "h", NULL, &c, &err), -EINVAL);
}

static void normalize(void **state)
{
	static const char *const cases[][2] = {
		{"docker.io", "docker.io"},
		{"https://index.docker.io/v1/", "docker.io"},
		{"registry-1.docker.io", "docker.io"},
		{"HTTP://Reg.Example:5000/v2/", "reg.example:5000"},
		{"quay.io/org", "quay.io"},
		{"[::1]:5000", "[::1]:5000"},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char *n = lm_auth_normalize_registry(cases[i][0]);
		assert_string_equal(n, cases[i][1]);
		free(n);
	}
}

static void basic_header(void **state)
{
	struct lm_credentials c = {.user = (char *)"alice", .password = (char *)"wonderland"};
	char *h = lm_auth_basic_header(&c);
	assert_string_equal(h, "Basic YWxpY2U6d29uZGVybGFuZA==");
	free(h);
}

/* ------------------------------------------------------------------ files */

static char tmpdir[64];

static int setup_tmp(void **state)
{
	return tu_mkdtemp(tmpdir, sizeof(tmpdir), "auth");
}

static int teardown_tmp(void **state)
{
	return tu_rm_tree(tmpdir, 0);
}

static void save_and_lookup(void **state)
{
	char file[PATH_MAX];
	snprintf(file, sizeof(file), "%s/new/dir/config.json", tmpdir);
	struct lm_error err = {0};
	assert_int_equal(lm_auth_save(file, "127.0.0.1:5000", "alice", "pw", &err), 0);
	struct stat st;
	assert_int_equal(stat(file, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0600);
	/* missing parents are made private */
	char dir[PATH_MAX];
	snprintf(dir, sizeof(dir), "%s/new", tmpdir);
	assert_int_equal(stat(dir, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0700);
	snprintf(dir, sizeof(dir), "%s/new/dir", tmpdir);
	assert_int_equal(stat(dir, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0700);
	/* nothing but the file itself is left in its directory (no temp files) */
	int entries = 0;
	DIR *d = opendir(dir);
	assert_non_null(d);
	for (struct dirent *e; (e = readdir(d));)
		entries += e->d_name[0] != '.';
	closedir(d);
	assert_int_equal(entries, 1);

	struct lm_credentials c;
	assert_int_equal(lm_auth_lookup(file, "127.0.0.1:5000", NULL, &c, &err), 1);
	assert_string_equal(c.user, "alice");
	assert_string_equal(c.password, "pw");
	lm_credentials_free(&c);

	/* a second login replaces the first and keeps the rest */
	assert_int_equal(lm_auth_save(file, "other:1", "bob", "x", &err), 0);
	assert_int_equal(lm_auth_save(file, "127.0.0.1:5000", "alice", "new", &err), 0);
	assert_int_equal(lm_auth_lookup(file, "127.0.0.1:5000", NULL, &c, &err), 1);
	assert_string_equal(c.password, "new");
	lm_credentials_free(&c);
	assert_int_equal(lm_auth_lookup(file, "other:1", NULL, &c, &err), 1);
	assert_string_equal(c.user, "bob");
	lm_credentials_free(&c);

	/* a missing file is "no credentials" */
	char missing[PATH_MAX];
	snprintf(missing, sizeof(missing), "%s/nope.json", tmpdir);
	assert_int_equal(lm_auth_lookup(missing, "127.0.0.1:5000", NULL, &c, &err), 0);
}

static void save_keeps_other_keys(void **state)
{
	char file[PATH_MAX];
	snprintf(file, sizeof(file), "%s/config.json", tmpdir);
	FILE *f = fopen(file, "w");
	assert_non_null(f);
	fputs("{\"HttpHeaders\":{\"X-A\":\"1\"},\"credHelpers\":{\"gcr.io\":\"gcloud\"},"
	      "\"auths\":{\"https://index.docker.io/v1/\":{\"auth\":\"b2xkOm9sZA==\"},"
	      "\"http://127.0.0.1:5000/v2/\":{\"auth\":\"b2xkOm9sZA==\"},"
	      "\"127.0.0.1:5000/ns\":{\"auth\":\"bnM6bnM=\"}}}",
	      f);
	fclose(f);
	struct lm_error err = {0};
	assert_int_equal(lm_auth_save(file, "127.0.0.1:5000", "alice", "pw", &err), 0);
	assert_int_equal(lm_auth_save(file, "docker.io", "hub", "hub", &err), 0);
	const char *text = tu_file_content(file);
	assert_contains(text, "\"HttpHeaders\"");
	assert_contains(text, "\"gcloud\"");
	assert_contains(text, "\"https://index.docker.io/v1/\"");
	assert_contains(text, "\"127.0.0.1:5000/ns\""); /* a namespace key is another entry */
	/* the URL spelling of the same registry is gone: one answer per registry */
	assert_null(strstr(text, "http://127.0.0.1:5000/v2/"));
	struct lm_credentials c;
	assert_int_equal(lm_auth_lookup(file, "docker.io", NULL, &c, &err), 1);
	assert_string_equal(c.user, "hub");
	lm_credentials_free(&c);
	assert_int_equal(lm_auth_lookup(file, "127.0.0.1:5000", "ns/app", &c, &err), 1);
	assert_string_equal(c.user, "ns");
	lm_credentials_free(&c);
	assert_int_equal(lm_auth_lookup(file, "127.0.0.1:5000", "app", &c, &err), 1);
	assert_string_equal(c.user, "alice");
	lm_credentials_free(&c);

	/* a file that is not a JSON object is not overwritten */
	f = fopen(file, "w");
	fputs("[1,2]", f);
	fclose(f);
	assert_true(lm_auth_save(file, "h", "u", "p", &err) < 0);
	assert_contains(err.msg, "not overwriting");
	assert_string_equal(tu_file_content(file), "[1,2]");
	assert_true(lm_auth_save(file, "h", "u:x", "p", &err) < 0);
	assert_contains(err.msg, "invalid user name");
}

static void default_file(void **state)
{
	char *saved_home = getenv("HOME") ? strdup(getenv("HOME")) : NULL;
	setenv("REGISTRY_AUTH_FILE", "/x/auth.json", 1);
	char *p = lm_auth_default_file();
	assert_string_equal(p, "/x/auth.json");
	free(p);
	unsetenv("REGISTRY_AUTH_FILE");
	setenv("HOME", "/home/someone", 1);
	p = lm_auth_default_file();
	assert_string_equal(p, "/home/someone/.docker/config.json");
	free(p);
	if (saved_home) {
		setenv("HOME", saved_home, 1);
		free(saved_home);
	}
}

/* ------------------------------------------------------------------ store */

static void store_schemes_and_tokens(void **state)
{
	struct lm_auth_store s;
	lm_auth_store_init(&s);
	char *realm, *service;
	assert_int_equal(lm_auth_store_scheme(&s, "h:1", &realm, &service), LM_AUTH_NONE);
	assert_null(realm);

	struct lm_auth_challenge ch = {.scheme = LM_AUTH_BEARER, .realm = (char *)"http://t/token",
				       .service = (char *)"svc"};
	assert_int_equal(lm_auth_store_note(&s, "h:1", &ch), 0);
	assert_int_equal(lm_auth_store_scheme(&s, "h:1", &realm, &service), LM_AUTH_BEARER);
	assert_string_equal(realm, "http://t/token");
	assert_string_equal(service, "svc");
	free(realm);
	free(service);
	assert_int_equal(lm_auth_store_scheme(&s, "h:2", &realm, &service), LM_AUTH_NONE);

	/* tokens are per host and scope */
	assert_int_equal(lm_auth_store_put_token(&s, "h:1", "repository:a:pull", "TA", 300), 0);
	assert_int_equal(lm_auth_store_put_token(&s, "h:1", "repository:b:pull", "TB", 300), 0);
	char *t = lm_auth_store_token(&s, "h:1", "repository:a:pull");
	assert_string_equal(t, "TA");
	free(t);
	assert_null(lm_auth_store_token(&s, "h:2", "repository:a:pull"));
	/* a newer token replaces the old one */
	assert_int_equal(lm_auth_store_put_token(&s, "h:1", "repository:a:pull", "TA2", 300), 0);
	t = lm_auth_store_token(&s, "h:1", "repository:a:pull");
	assert_string_equal(t, "TA2");
	free(t);
	/* dropping a stale token keeps the newer one */
	lm_auth_store_drop_token(&s, "h:1", "repository:a:pull", "TA");
	t = lm_auth_store_token(&s, "h:1", "repository:a:pull");
	assert_string_equal(t, "TA2");
	free(t);
	lm_auth_store_drop_token(&s, "h:1", "repository:a:pull", "TA2");
	assert_null(lm_auth_store_token(&s, "h:1", "repository:a:pull"));
	t = lm_auth_store_token(&s, "h:1", "repository:b:pull");
	assert_string_equal(t, "TB");
	free(t);
	/* a token about to expire is not handed out */
	assert_int_equal(lm_auth_store_put_token(&s, "h:1", "repository:c:pull", "TC", 5), 0);
	assert_null(lm_auth_store_token(&s, "h:1", "repository:c:pull"));

	/* a later Basic challenge replaces what was learned */
	struct lm_auth_challenge basic = {.scheme = LM_AUTH_BASIC, .realm = (char *)"r"};
	assert_int_equal(lm_auth_store_note(&s, "h:1", &basic), 0);
	assert_int_equal(lm_auth_store_scheme(&s, "h:1", &realm, &service), LM_AUTH_BASIC);
	free(realm);
	free(service);
	lm_auth_store_destroy(&s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(challenge_bearer),
		cmocka_unit_test(challenge_variants),
		cmocka_unit_test(challenge_errors),
		cmocka_unit_test(token_responses),
		cmocka_unit_test(lookup_forms),
		cmocka_unit_test(lookup_keys),
		cmocka_unit_test(lookup_errors),
		cmocka_unit_test(normalize),
		cmocka_unit_test(basic_header),
		cmocka_unit_test_setup_teardown(save_and_lookup, setup_tmp, teardown_tmp),
		cmocka_unit_test_setup_teardown(save_keeps_other_keys, setup_tmp, teardown_tmp),
		cmocka_unit_test(default_file),
		cmocka_unit_test(store_schemes_and_tokens),
	};
	return cmocka_run_group_tests_name("auth", tests, NULL, NULL);
}
