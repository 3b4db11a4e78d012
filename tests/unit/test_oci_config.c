/* Unit tests for image/oci_config.c: image config + run options → OCI config.
 *
 * Image configs are JSON strings written here; the image's root filesystem is
 * a temporary directory with an /etc/passwd and /etc/group full of the lines
 * real images have, and some they should not (comments, NIS entries,
 * truncated and non-numeric lines, ids out of range).  Every config that
 * builds is also fed back through the runtime's own parser (lm_spec_parse),
 * and the parsed struct is what most checks look at: a config the runtime
 * would refuse, or read differently, is a failure here.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include "image/oci_config.h"

/* The option lists are char *const * like argv, which is what the command
 * line hands over; here they are string literals. */
#ifdef __clang__
#pragma clang diagnostic ignored "-Wincompatible-pointer-types-discards-qualifiers"
#else
#pragma GCC diagnostic ignored "-Wdiscarded-qualifiers"
#endif
#include "runtime/spec.h"
#include "util/fs.h"
#include "testutil.h"

static const char PASSWD[] =
	"root:x:0:0:root:/root:/bin/sh\n"
	"daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin\n"
	"# a comment:x:5:5\n"
	"\n"
	"broken line without fields\n"
	"bad:x:notanumber:5::/:/bin/sh\n"
	"huge:x:4294967295:1::/:/bin/sh\n"
	"short:x:7\n"
	"+nis:x:9:9::/:/bin/sh\n"
	"nginx:x:101:101:nginx:/var/cache/nginx:/sbin/nologin\r\n"
	"app:x:1000:1000::/home/app:/bin/sh\n"
	"app:x:2000:2000:a later duplicate:/:/bin/sh\n";

static const char GROUP[] =
	"root:x:0:root\n"
	"wheel:x:10:root,app\n"
	"nginx:x:101:\n"
	"www:x:33:nginx, app\n"
	"audio:x:29:app\n"
	"broken\n"
	"bad:x:xx:app\n"
	"again:x:10:app\n"
	"nomembers:x:44\n";

static struct {
	char tmp[64];
	char rootfs[128];
	int rootfd;
} F;

static struct lm_error E;
static struct lm_image_run R;

/* ---------------------------------------------------------------- helpers */

static void put(const char *rel, const char *content, size_t len)
{
	char path[PATH_MAX];
	FMT(path, "%s/%s", F.rootfs, rel);
	tu_write_file(path, content, len, 0644);
}

static void rm(const char *rel)
{
	char path[PATH_MAX];
	FMT(path, "%s/%s", F.rootfs, rel);
	unlink(path);
}

static int setup(void **state)
{
	(void)state;
	if (tu_mkdtemp(F.tmp, sizeof(F.tmp), "oci") < 0)
		return -1;
	snprintf(F.rootfs, sizeof(F.rootfs), "%s/rootfs", F.tmp);
	char etc[PATH_MAX];
	snprintf(etc, sizeof(etc), "%s/etc", F.rootfs);
	if (mkdir(F.rootfs, 0755) < 0 || mkdir(etc, 0755) < 0)
		return -1;
	put("etc/passwd", PASSWD, strlen(PASSWD));
	put("etc/group", GROUP, strlen(GROUP));
	F.rootfd = open(F.rootfs, O_PATH | O_DIRECTORY | O_CLOEXEC);
	memset(&E, 0, sizeof(E));
	memset(&R, 0, sizeof(R));
	return F.rootfd < 0 ? -1 : 0;
}

static int teardown(void **state)
{
	(void)state;
	lm_image_run_free(&R);
	close(F.rootfd);
	struct lm_error err = { 0 };
	return lm_rm_rf_at(AT_FDCWD, F.tmp, &err);
}

/* Build and parse back; fails the test on any error. */
static struct lm_spec *build_ok(const char *image, const struct lm_run_opts *opts)
{
	lm_image_run_free(&R);
	if (lm_oci_config_build(image, strlen(image), opts, F.rootfd, &R, &E) < 0)
		fail_msg("build: %s", E.msg);
	assert_non_null(R.config);
	char *text = json_dumps(R.config, 0);
	assert_non_null(text);
	struct lm_spec *spec = NULL;
	struct lm_error perr = { 0 };
	if (lm_spec_parse(text, strlen(text), "/tmp", &spec, &perr) < 0)
		fail_msg("lm_spec_parse: %s\n%s", perr.msg, text);
	free(text);
	return spec;
}

/* Build, expecting an error that contains want. */
static void build_fails(const char *image, const struct lm_run_opts *opts, const char *want)
{
	lm_image_run_free(&R);
	int r = lm_oci_config_build(image, strlen(image), opts, F.rootfd, &R, &E);
	if (r >= 0)
		fail_msg("build succeeded, expected \"%s\"", want);
	assert_contains(E.msg, want);
	assert_null(R.config);
}

static void assert_args(const struct lm_spec *s, const char *const *want)
{
	size_t n = 0;
	while (want[n])
		n++;
	if (s->process.n_args != n)
		fail_msg("%zu args, want %zu (first: %s)", s->process.n_args, n, s->process.args[0]);
	for (size_t i = 0; i < n; i++)
		assert_string_equal(s->process.args[i], want[i]);
}

static void assert_env(const struct lm_spec *s, const char *const *want)
{
	size_t n = 0;
	while (want[n])
		n++;
	for (size_t i = 0; i < n && i < s->process.n_env; i++)
		if (strcmp(s->process.env[i], want[i]) != 0)
			fail_msg("env[%zu] = %s, want %s", i, s->process.env[i], want[i]);
	assert_int_equal(s->process.n_env, n);
}

static const char *annotation(const struct lm_spec *s, const char *key)
{
	for (size_t i = 0; i < s->n_annotations; i++)
		if (strcmp(s->annotation_keys[i], key) == 0)
			return s->annotation_values[i];
	return NULL;
}

static bool has_cap(const struct lm_spec *s, const char *name)
{
	int c = lm_cap_from_name(name);
	assert_true(c >= 0);
	bool b = s->process.caps.bounding & (1ull << c);
	assert_int_equal(b, !!(s->process.caps.effective & (1ull << c)));
	assert_int_equal(b, !!(s->process.caps.permitted & (1ull << c)));
	return b;
}

static int n_caps(const struct lm_spec *s)
{
	return __builtin_popcountll(s->process.caps.bounding);
}

static const struct lm_mount *mount_at(const struct lm_spec *s, const char *dest)
{
	const struct lm_mount *found = NULL;
	for (size_t i = 0; i < s->n_mounts; i++)
		if (strcmp(s->mounts[i].destination, dest) == 0) {
			assert_null(found); /* exactly one */
			found = &s->mounts[i];
		}
	return found;
}

#define SH "{\"config\":{\"Cmd\":[\"sh\"]}}"

/* ---------------------------------------------------------------- command */

static void command_rules(void **state)
{
	(void)state;
	const char *img = "{\"config\":{\"Entrypoint\":[\"/ep\",\"-x\"],\"Cmd\":[\"a\",\"b\"]}}";
	struct lm_run_opts o = { 0 };
	struct lm_spec *s = build_ok(img, &o);
	assert_args(s, (const char *[]){ "/ep", "-x", "a", "b", NULL });
	lm_spec_free(s);

	char *cmd[] = { "x", "y", NULL };
	o.cmd = cmd;
	s = build_ok(img, &o);
	assert_args(s, (const char *[]){ "/ep", "-x", "x", "y", NULL });
	lm_spec_free(s);

	/* A new entrypoint drops the image's Cmd... */
	char *ep[] = { "/new", NULL };
	o = (struct lm_run_opts){ .entrypoint = ep, .entrypoint_set = true };
	s = build_ok(img, &o);
	assert_args(s, (const char *[]){ "/new", NULL });
	lm_spec_free(s);
	/* ...and takes the given one. */
	o.cmd = cmd;
	s = build_ok(img, &o);
	assert_args(s, (const char *[]){ "/new", "x", "y", NULL });
	lm_spec_free(s);
	/* An empty entrypoint clears it. */
	char *empty[] = { NULL };
	o = (struct lm_run_opts){ .entrypoint = empty, .entrypoint_set = true, .cmd = cmd };
	s = build_ok(img, &o);
	assert_args(s, (const char *[]){ "x", "y", NULL });
	lm_spec_free(s);
	o.entrypoint = NULL;
	s = build_ok(img, &o);
	assert_args(s, (const char *[]){ "x", "y", NULL });
	lm_spec_free(s);

	s = build_ok("{\"config\":{\"Cmd\":[\"/bin/sh\",\"-c\",\"echo hi\"],\"Entrypoint\":null}}", NULL);
	assert_args(s, (const char *[]){ "/bin/sh", "-c", "echo hi", NULL });
	lm_spec_free(s);

	build_fails("{\"config\":{}}", NULL, "no command specified");
	build_fails("{\"config\":{\"Entrypoint\":null,\"Cmd\":null}}", NULL, "no command specified");
	build_fails("{}", NULL, "no command specified");
	build_fails("{\"config\":null}", NULL, "no command specified");
	o = (struct lm_run_opts){ .entrypoint = empty, .entrypoint_set = true };
	build_fails(img, &o, "no command specified");
	o = (struct lm_run_opts){ .cmd = empty };
	build_fails("{\"config\":{\"Cmd\":[\"sh\"]}}", &o, "no command specified");

	build_fails("{\"config\":{\"Cmd\":\"sh\"}}", NULL, "config.Cmd: expected an array");
	build_fails("{\"config\":{\"Cmd\":[\"sh\",1]}}", NULL, "config.Cmd[1]: expected a string");
	build_fails("{\"config\":{\"Entrypoint\":{}}}", NULL, "config.Entrypoint");
	build_fails("[]", NULL, "expected a JSON object");
	build_fails("{\"config\":[]}", NULL, "config: expected an object");
	build_fails("{\"config\":", NULL, "image config: line 1");
	build_fails("", NULL, "image config");
}

/* ---------------------------------------------------------------- env, cwd, hostname */

static void env_merge(void **state)
{
	(void)state;
	const char *img = "{\"config\":{\"Cmd\":[\"sh\"],\"Env\":[\"A=1\",\"PATH=/img/bin\",\"B=2\",\"A=again\"]}}";
	char *env[] = { "B=3", "C=4", "EMPTY=", NULL };
	struct lm_run_opts o = { .env = env, .hostname = "c1", .tty = true };
	struct lm_spec *s = build_ok(img, &o);
	assert_env(s, (const char *[]){ "A=again", "PATH=/img/bin", "B=3", "HOSTNAME=c1", "TERM=xterm", "C=4",
					 "EMPTY=", NULL });
	assert_true(s->process.terminal);
	assert_string_equal(s->hostname, "c1");
	lm_spec_free(s);

	/* No PATH in the image: the default; no tty: no TERM. */
	s = build_ok(SH, &(struct lm_run_opts){ .hostname = "c2" });
	assert_env(s, (const char *[]){ "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
					 "HOSTNAME=c2", NULL });
	assert_false(s->process.terminal);
	lm_spec_free(s);

	/* The image's own TERM and HOSTNAME win over the defaults, the user's over both. */
	img = "{\"config\":{\"Cmd\":[\"sh\"],\"Env\":[\"TERM=vt100\",\"HOSTNAME=img\"]}}";
	s = build_ok(img, &(struct lm_run_opts){ .tty = true, .hostname = "c3" });
	assert_env(s, (const char *[]){ "TERM=vt100", "HOSTNAME=img",
					 "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", NULL });
	lm_spec_free(s);
	char *over[] = { "PATH=/mine", "TERM=dumb", NULL };
	s = build_ok(img, &(struct lm_run_opts){ .tty = true, .env = over });
	assert_env(s, (const char *[]){ "TERM=dumb", "HOSTNAME=img", "PATH=/mine", NULL });
	assert_string_equal(s->hostname, "lamina"); /* the default, no hostname given */
	lm_spec_free(s);

	build_fails("{\"config\":{\"Cmd\":[\"sh\"],\"Env\":[\"OK=1\",\"NOEQUALS\"]}}", NULL,
		    "config.Env[1]: expected \"NAME=value\"");
	build_fails("{\"config\":{\"Cmd\":[\"sh\"],\"Env\":[\"=x\"]}}", NULL, "config.Env[0]");
	char *bad[] = { "=v", NULL };
	build_fails(SH, &(struct lm_run_opts){ .env = bad }, "env: expected \"NAME=value\"");
	char *bad2[] = { "NOVALUE", NULL };
	build_fails(SH, &(struct lm_run_opts){ .env = bad2 }, "NOVALUE");
	char longname[80];
	memset(longname, 'h', sizeof(longname) - 1);
	longname[sizeof(longname) - 1] = '\0';
	build_fails(SH, &(struct lm_run_opts){ .hostname = longname }, "hostname");
	build_fails(SH, &(struct lm_run_opts){ .hostname = "" }, "hostname");
}

static void working_directory(void **state)
{
	(void)state;
	const char *img = "{\"config\":{\"Cmd\":[\"sh\"],\"WorkingDir\":\"/srv/app\"}}";
	struct lm_spec *s = build_ok(img, NULL);
	assert_string_equal(s->process.cwd, "/srv/app");
	lm_spec_free(s);
	s = build_ok(img, &(struct lm_run_opts){ .workdir = "/other" });
	assert_string_equal(s->process.cwd, "/other");
	lm_spec_free(s);
	s = build_ok(SH, NULL);
	assert_string_equal(s->process.cwd, "/");
	lm_spec_free(s);
	s = build_ok("{\"config\":{\"Cmd\":[\"sh\"],\"WorkingDir\":\"\"}}", NULL);
	assert_string_equal(s->process.cwd, "/");
	lm_spec_free(s);
	s = build_ok("{\"config\":{\"Cmd\":[\"sh\"],\"WorkingDir\":\"rel/dir\"}}", NULL);
	assert_string_equal(s->process.cwd, "/rel/dir");
	lm_spec_free(s);
	build_fails(img, &(struct lm_run_opts){ .workdir = "relative" }, "not an absolute path");
	build_fails("{\"config\":{\"Cmd\":[\"sh\"],\"WorkingDir\":7}}", NULL, "config.WorkingDir: expected a string");
}

/* ---------------------------------------------------------------- users */

static void user_resolved(const char *user, uint32_t uid, uint32_t gid, const uint32_t *gids, size_t n)
{
	struct lm_user u;
	if (lm_image_user_resolve(F.rootfd, user, &u, &E) < 0)
		fail_msg("user %s: %s", user ? user : "(null)", E.msg);
	assert_int_equal(u.uid, uid);
	assert_int_equal(u.gid, gid);
	if (u.n_additional_gids != n)
		fail_msg("user %s: %zu additional gids, want %zu", user ? user : "(null)", u.n_additional_gids, n);
	for (size_t i = 0; i < n; i++)
		assert_int_equal(u.additional_gids[i], gids[i]);
	lm_user_free(&u);
}

static void user_fails(const char *user, int code, const char *want)
{
	struct lm_user u = { 0 };
	int r = lm_image_user_resolve(F.rootfd, user, &u, &E);
	if (r >= 0)
		fail_msg("user %s resolved to %u:%u", user, u.uid, u.gid);
	assert_int_equal(E.code, code);
	assert_contains(E.msg, want);
	assert_null(u.additional_gids);
}

static void users(void **state)
{
	(void)state;
	/* Root, by default: its primary group and the groups listing "root". */
	user_resolved(NULL, 0, 0, (uint32_t[]){ 0, 10 }, 2);
	user_resolved("", 0, 0, (uint32_t[]){ 0, 10 }, 2);
	user_resolved("root", 0, 0, (uint32_t[]){ 0, 10 }, 2);
	/* By name: wheel, www (" app" with a space), audio; "again" (gid 10 again) once. */
	user_resolved("app", 1000, 1000, (uint32_t[]){ 10, 33, 29 }, 3);
	user_resolved("nginx", 101, 101, (uint32_t[]){ 33 }, 1); /* CRLF line */
	/* By uid: the first line with that uid gives the name for groups. */
	user_resolved("1000", 1000, 1000, (uint32_t[]){ 10, 33, 29 }, 3);
	user_resolved("2000", 2000, 2000, (uint32_t[]){ 10, 33, 29 }, 3); /* "app" again: app's groups */
	/* An explicit group: exactly that one. */
	user_resolved("1000:29", 1000, 29, NULL, 0);
	user_resolved("app:audio", 1000, 29, NULL, 0);
	user_resolved("nginx:5", 101, 5, NULL, 0);
	user_resolved("4242:nomembers", 4242, 44, NULL, 0);
	/* A uid the image does not know: gid 0, no groups. */
	user_resolved("4242", 4242, 0, NULL, 0);
	user_resolved("4294967294", 4294967294u, 0, NULL, 0);
	user_resolved("0:4294967294", 0, 4294967294u, NULL, 0);

	user_fails("nobody", ENOENT, "user \"nobody\" not found in the image's /etc/passwd");
	user_fails("bad", ENOENT, "not found");         /* its uid is not a number: skipped */
	user_fails("short", ENOENT, "not found");       /* too few fields */
	user_fails("huge", ENOENT, "not found");        /* uid out of range */
	user_fails("+nis", ENOENT, "not found");
	user_fails("app:nogroup", ENOENT, "group \"nogroup\" not found in the image's /etc/group");
	user_fails("app:bad", ENOENT, "not found");
	user_fails("4294967295", ERANGE, "out of range");
	user_fails("99999999999999999999", ERANGE, "out of range");
	user_fails("1:4294967295", ERANGE, "out of range");
	user_fails(":5", EINVAL, "invalid user");
	user_fails("app:", EINVAL, "invalid user");

	/* The config carries them. */
	struct lm_spec *s = build_ok("{\"config\":{\"Cmd\":[\"sh\"],\"User\":\"nginx\"}}", NULL);
	assert_int_equal(s->process.uid, 101);
	assert_int_equal(s->process.gid, 101);
	assert_int_equal(s->process.n_additional_gids, 1);
	assert_int_equal(s->process.additional_gids[0], 33);
	lm_spec_free(s);
	s = build_ok("{\"config\":{\"Cmd\":[\"sh\"],\"User\":\"nginx\"}}", &(struct lm_run_opts){ .user = "1000:29" });
	assert_int_equal(s->process.uid, 1000);
	assert_int_equal(s->process.gid, 29);
	assert_int_equal(s->process.n_additional_gids, 0);
	lm_spec_free(s);
	build_fails("{\"config\":{\"Cmd\":[\"sh\"],\"User\":\"nginx\"}}", &(struct lm_run_opts){ .user = "ghost" },
		    "user \"ghost\" not found in the image's /etc/passwd");
	build_fails("{\"config\":{\"Cmd\":[\"sh\"],\"User\":\"nobody\"}}", NULL,
		    "user \"nobody\" not found in the image's /etc/passwd");
	build_fails("{\"config\":{\"Cmd\":[\"sh\"],\"User\":5}}", NULL, "config.User: expected a string");

	/* Without a rootfd: opts.rootfs is opened; with neither, numbers only. */
	lm_image_run_free(&R);
	struct lm_run_opts o = { .user = "app", .rootfs = F.rootfs };
	assert_int_equal(lm_oci_config_build(SH, strlen(SH), &o, -1, &R, &E), 0);
	assert_int_equal(json_integer_value(json_object_get(
				 json_object_get(json_object_get(R.config, "process"), "user"), "uid")),
			 1000);
	lm_image_run_free(&R);
	o.rootfs = NULL;
	assert_true(lm_oci_config_build(SH, strlen(SH), &o, -1, &R, &E) < 0);
	assert_contains(E.msg, "no image root filesystem");
	o.user = "7:8";
	assert_int_equal(lm_oci_config_build(SH, strlen(SH), &o, -1, &R, &E), 0);
}

static void account_files_hostile(void **state)
{
	(void)state;
	/* Larger than the bound: an error, not a truncated read. */
	size_t big = LM_IMAGE_ACCOUNT_FILE_MAX + 100;
	char *text = malloc(big);
	assert_non_null(text);
	for (size_t i = 0; i < big; i++)
		text[i] = (i % 64 == 63) ? '\n' : 'x';
	put("etc/passwd", text, big);
	free(text);
	user_fails("app", EFBIG, "the image's /etc/passwd is larger than 1048576 bytes");
	user_fails("1000", EFBIG, "larger than");
	/* uid:gid needs no file at all. */
	user_resolved("1000:1000", 1000, 1000, NULL, 0);
	build_fails(SH, NULL, "/etc/passwd is larger than");

	/* Exactly at the bound is fine, and the user on its last line is found. */
	text = malloc(LM_IMAGE_ACCOUNT_FILE_MAX);
	assert_non_null(text);
	const char *last = "app:x:1000:1000::/:/bin/sh\n";
	size_t fill = LM_IMAGE_ACCOUNT_FILE_MAX - strlen(last);
	for (size_t i = 0; i < fill; i++)
		text[i] = (i % 64 == 63 || i == fill - 1) ? '\n' : 'x';
	memcpy(text + fill, last, strlen(last));
	put("etc/passwd", text, LM_IMAGE_ACCOUNT_FILE_MAX);
	free(text);
	user_resolved("app", 1000, 1000, (uint32_t[]){ 10, 33, 29 }, 3);

	/* A FIFO must not hang the lookup. */
	rm("etc/passwd");
	char path[PATH_MAX];
	FMT(path, "%s/etc/passwd", F.rootfs);
	assert_int_equal(mkfifo(path, 0644), 0);
	user_fails("app", EINVAL, "not a regular file");
	rm("etc/passwd");

	/* Symlinks resolve inside the image, never on the host. */
	put("etc/real-passwd", PASSWD, strlen(PASSWD));
	assert_int_equal(symlink("/etc/real-passwd", path), 0);
	user_resolved("nginx", 101, 101, (uint32_t[]){ 33 }, 1);
	rm("etc/passwd");
	assert_int_equal(symlink("../../../../../../../../etc/passwd", path), 0);
	/* Clamped to the image's /etc/passwd, which is this very link: a loop,
	 * never the host's file. */
	user_fails("root", ELOOP, "the image's /etc/passwd");
	rm("etc/passwd");

	/* No /etc/passwd at all: numbers work, names do not. */
	user_resolved("1000", 1000, 0, NULL, 0);
	user_fails("app", ENOENT, "the image has no /etc/passwd");
	rm("etc/group");
	put("etc/passwd", PASSWD, strlen(PASSWD));
	user_resolved("app", 1000, 1000, NULL, 0);
	user_fails("app:audio", ENOENT, "the image has no /etc/group");
	/* A directory where the file should be. */
	FMT(path, "%s/etc/group", F.rootfs);
	assert_int_equal(mkdir(path, 0755), 0);
	user_fails("app:audio", EINVAL, "not a regular file");
}

/* ---------------------------------------------------------------- capabilities */

/* "All capabilities" are the named ones this process can pass on (its
 * bounding set: this project's machines lack CAP_SYS_RESOURCE). */
static int grantable_caps(void)
{
	int total = 0;
	for (int c = 0; lm_cap_name(c); c++)
		if (prctl(PR_CAPBSET_READ, c, 0, 0, 0) == 1)
			total++;
	return total;
}

static void capabilities(void **state)
{
	(void)state;
	struct lm_spec *s = build_ok(SH, NULL);
	assert_int_equal(n_caps(s), 14);
	assert_true(has_cap(s, "CAP_CHOWN") && has_cap(s, "CAP_AUDIT_WRITE") && has_cap(s, "CAP_NET_BIND_SERVICE"));
	assert_false(has_cap(s, "CAP_SYS_ADMIN") || has_cap(s, "CAP_NET_ADMIN"));
	assert_true(s->process.no_new_privileges);
	assert_int_equal(s->process.caps.inheritable | s->process.caps.ambient, 0);
	lm_spec_free(s);

	char *add[] = { "NET_ADMIN", "cap_sys_time", NULL };
	char *drop[] = { "CHOWN", "CAP_KILL", NULL };
	s = build_ok(SH, &(struct lm_run_opts){ .cap_add = add, .cap_drop = drop });
	assert_int_equal(n_caps(s), 14);
	assert_true(has_cap(s, "CAP_NET_ADMIN") && has_cap(s, "CAP_SYS_TIME"));
	assert_false(has_cap(s, "CAP_CHOWN") || has_cap(s, "CAP_KILL"));
	lm_spec_free(s);

	char *all[] = { "ALL", NULL };
	char *nbs[] = { "NET_BIND_SERVICE", NULL };
	s = build_ok(SH, &(struct lm_run_opts){ .cap_drop = all, .cap_add = nbs });
	assert_int_equal(n_caps(s), 1);
	assert_true(has_cap(s, "CAP_NET_BIND_SERVICE"));
	lm_spec_free(s);
	s = build_ok(SH, &(struct lm_run_opts){ .cap_drop = all });
	assert_int_equal(n_caps(s), 0);
	lm_spec_free(s);

	int total = grantable_caps();
	char *sysadmin[] = { "SYS_ADMIN", NULL };
	char *all_lower[] = { "all", NULL };
	s = build_ok(SH, &(struct lm_run_opts){ .cap_add = all_lower });
	assert_int_equal(n_caps(s), total);
	lm_spec_free(s);
	s = build_ok(SH, &(struct lm_run_opts){ .cap_add = all, .cap_drop = sysadmin });
	assert_int_equal(n_caps(s), total - 1);
	assert_false(has_cap(s, "CAP_SYS_ADMIN"));
	lm_spec_free(s);
	/* Added and dropped: the add wins, as with docker. */
	s = build_ok(SH, &(struct lm_run_opts){ .cap_add = sysadmin, .cap_drop = sysadmin });
	assert_true(has_cap(s, "CAP_SYS_ADMIN"));
	lm_spec_free(s);

	char *unknown[] = { "NET_ADMIN", "CAP_MAKE_COFFEE", NULL };
	build_fails(SH, &(struct lm_run_opts){ .cap_add = unknown }, "cap_add: unknown capability \"CAP_MAKE_COFFEE\"");
	build_fails(SH, &(struct lm_run_opts){ .cap_drop = unknown }, "cap_drop: unknown capability");
	build_fails(SH, &(struct lm_run_opts){ .cap_add = unknown, .privileged = true }, "unknown capability");
}

static void privileged(void **state)
{
	(void)state;
	char *drop[] = { "ALL", NULL };
	struct lm_spec *s = build_ok(SH, &(struct lm_run_opts){ .privileged = true, .cap_drop = drop });
	assert_int_equal(n_caps(s), grantable_caps());
	assert_false(s->process.no_new_privileges);
	assert_int_equal(s->n_masked_paths, 0);
	assert_int_equal(s->n_readonly_paths, 0);
	const struct lm_mount *sys = mount_at(s, "/sys");
	assert_non_null(sys);
	assert_false(sys->flags & MS_RDONLY);
	assert_int_equal(s->resources.n_devices, 1);
	assert_true(s->resources.devices[0].allow);
	assert_int_equal(s->resources.devices[0].type, 'a');
	lm_spec_free(s);

	s = build_ok(SH, NULL);
	assert_true(s->n_masked_paths > 0 && s->n_readonly_paths > 0);
	assert_true(mount_at(s, "/sys")->flags & MS_RDONLY);
	assert_int_equal(s->resources.n_devices, 1);
	assert_false(s->resources.devices[0].allow);
	lm_spec_free(s);
}

/* ---------------------------------------------------------------- resources, root, network, mounts */

static void resources(void **state)
{
	(void)state;
	struct lm_spec *s = build_ok(SH, &(struct lm_run_opts){ .memory = 256 << 20, .cpus = 1.5, .pids_limit = 100 });
	assert_true(s->resources.has_mem_limit);
	assert_int_equal(s->resources.mem_limit, 256 << 20);
	assert_true(s->resources.has_cpu_quota && s->resources.has_cpu_period);
	assert_int_equal(s->resources.cpu_quota, 150000);
	assert_int_equal(s->resources.cpu_period, 100000);
	assert_true(s->resources.has_pids_limit);
	assert_int_equal(s->resources.pids_limit, 100);
	lm_spec_free(s);

	s = build_ok(SH, &(struct lm_run_opts){ .cpus = 0.25 });
	assert_int_equal(s->resources.cpu_quota, 25000);
	assert_false(s->resources.has_mem_limit || s->resources.has_pids_limit);
	lm_spec_free(s);
	s = build_ok(SH, NULL);
	assert_false(s->resources.has_mem_limit || s->resources.has_cpu_quota || s->resources.has_pids_limit);
	lm_spec_free(s);

	build_fails(SH, &(struct lm_run_opts){ .memory = -1 }, "memory limit");
	build_fails(SH, &(struct lm_run_opts){ .pids_limit = -5 }, "pids limit");
	build_fails(SH, &(struct lm_run_opts){ .cpus = -1 }, "cpus");
	build_fails(SH, &(struct lm_run_opts){ .cpus = NAN }, "cpus");
	build_fails(SH, &(struct lm_run_opts){ .cpus = INFINITY }, "cpus");
	build_fails(SH, &(struct lm_run_opts){ .cpus = 0.001 }, "smallest limit");
}

static void root_and_network(void **state)
{
	(void)state;
	struct lm_spec *s = build_ok(SH, NULL);
	assert_false(s->root_readonly);
	assert_string_equal(s->root_path, "/tmp/rootfs"); /* "rootfs" beside config.json */
	assert_non_null(lm_spec_namespace(s, LM_NS_NET));
	assert_null(lm_spec_namespace(s, LM_NS_NET)->path);
	assert_non_null(lm_spec_namespace(s, LM_NS_MOUNT));
	assert_non_null(lm_spec_namespace(s, LM_NS_UTS));
	lm_spec_free(s);

	s = build_ok(SH, &(struct lm_run_opts){ .read_only = true, .rootfs = "/var/lib/lamina/c/merged",
						 .network = LM_RUN_NET_NONE });
	assert_true(s->root_readonly);
	assert_string_equal(s->root_path, "/var/lib/lamina/c/merged");
	assert_non_null(lm_spec_namespace(s, LM_NS_NET));
	lm_spec_free(s);

	s = build_ok(SH, &(struct lm_run_opts){ .network = LM_RUN_NET_HOST });
	assert_null(lm_spec_namespace(s, LM_NS_NET));
	assert_non_null(lm_spec_namespace(s, LM_NS_PID));
	assert_non_null(lm_spec_namespace(s, LM_NS_UTS));
	lm_spec_free(s);
}

static void mounts(void **state)
{
	(void)state;
	struct lm_run_mount m[] = {
		{ .type = LM_RUN_MOUNT_BIND, .source = "/srv/data", .target = "/data", .readonly = true },
		{ .type = LM_RUN_MOUNT_BIND, .source = "/srv/logs", .target = "/logs" },
		{ .type = LM_RUN_MOUNT_TMPFS, .target = "/scratch", .tmpfs_size = 64 << 20, .tmpfs_mode = 0700 },
		{ .type = LM_RUN_MOUNT_TMPFS, .target = "/dev/shm/", .tmpfs_size = 1 << 30 },
	};
	struct lm_spec *s = build_ok(SH, &(struct lm_run_opts){ .mounts = m, .n_mounts = 4 });
	const struct lm_mount *d = mount_at(s, "/data");
	assert_non_null(d);
	assert_true(d->bind && d->recursive);
	assert_true(d->flags & MS_RDONLY);
	assert_string_equal(d->source, "/srv/data");
	const struct lm_mount *l = mount_at(s, "/logs");
	assert_false(l->flags & MS_RDONLY);
	const struct lm_mount *t = mount_at(s, "/scratch");
	assert_string_equal(t->type, "tmpfs");
	assert_true((t->flags & MS_NOSUID) && (t->flags & MS_NODEV));
	assert_contains(t->data, "mode=700");
	assert_contains(t->data, "size=67108864");
	/* The default /dev/shm is replaced, not mounted twice. */
	assert_null(mount_at(s, "/dev/shm"));
	const struct lm_mount *shm = mount_at(s, "/dev/shm/");
	assert_non_null(shm);
	assert_contains(shm->data, "size=1073741824");
	assert_contains(shm->data, "mode=1777");
	assert_non_null(mount_at(s, "/proc"));
	lm_spec_free(s);

	struct lm_run_mount bad1[] = { { .type = LM_RUN_MOUNT_BIND, .source = "/a", .target = "rel" } };
	build_fails(SH, &(struct lm_run_opts){ .mounts = bad1, .n_mounts = 1 }, "not an absolute path");
	struct lm_run_mount bad2[] = { { .type = LM_RUN_MOUNT_BIND, .source = "rel", .target = "/x" } };
	build_fails(SH, &(struct lm_run_opts){ .mounts = bad2, .n_mounts = 1 }, "bind source \"rel\"");
	struct lm_run_mount bad3[] = { { .type = LM_RUN_MOUNT_TMPFS, .target = "/x" },
				       { .type = LM_RUN_MOUNT_BIND, .source = "/y", .target = "/x/" } };
	build_fails(SH, &(struct lm_run_opts){ .mounts = bad3, .n_mounts = 2 }, "two mounts on /x/");
}

/* ---------------------------------------------------------------- labels, signal, ports, volumes */

static void image_metadata(void **state)
{
	(void)state;
	const char *img =
		"{\"architecture\":\"amd64\",\"os\":\"linux\",\"config\":{\"Cmd\":[\"nginx\"],"
		"\"StopSignal\":\"SIGQUIT\",\"Labels\":{\"maintainer\":\"me\",\"org.example.tier\":\"web\"},"
		"\"ExposedPorts\":{\"80/tcp\":{},\"53/udp\":{},\"8080\":{}},"
		"\"Volumes\":{\"/var/cache/nginx\":{},\"data\":{},\"/covered\":{},\"/var/cache/nginx/\":{}}},"
		"\"rootfs\":{\"type\":\"layers\",\"diff_ids\":[]}}";
	struct lm_run_mount m[] = { { .type = LM_RUN_MOUNT_TMPFS, .target = "/covered" } };
	struct lm_spec *s = build_ok(img, &(struct lm_run_opts){ .mounts = m, .n_mounts = 1 });
	assert_int_equal(R.stop_signal, SIGQUIT);
	assert_string_equal(annotation(s, "org.opencontainers.image.stopSignal"), "SIGQUIT");
	assert_string_equal(annotation(s, "maintainer"), "me");
	assert_string_equal(annotation(s, "org.example.tier"), "web");
	assert_string_equal(json_string_value(json_object_get(R.labels, "maintainer")), "me");
	assert_int_equal(json_object_size(R.labels), 2);
	assert_int_equal(R.n_exposed_ports, 3);
	assert_string_equal(R.exposed_ports[0], "80/tcp");
	assert_string_equal(R.exposed_ports[1], "53/udp");
	assert_string_equal(R.exposed_ports[2], "8080/tcp");
	assert_null(R.exposed_ports[3]);
	assert_string_equal(annotation(s, "org.opencontainers.image.exposedPorts"), "80/tcp,53/udp,8080/tcp");
	assert_int_equal(R.n_volumes, 2);
	assert_string_equal(R.volumes[0], "/var/cache/nginx");
	assert_string_equal(R.volumes[1], "/data");
	assert_null(R.volumes[2]);
	/* Volumes are requests, not mounts. */
	assert_null(mount_at(s, "/var/cache/nginx"));
	lm_spec_free(s);

	s = build_ok(SH, NULL);
	assert_int_equal(R.stop_signal, SIGTERM);
	assert_null(annotation(s, "org.opencontainers.image.stopSignal"));
	assert_int_equal(R.n_volumes + R.n_exposed_ports, 0);
	assert_non_null(R.labels);
	assert_int_equal(json_object_size(R.labels), 0);
	lm_spec_free(s);
	s = build_ok("{\"config\":{\"Cmd\":[\"sh\"],\"StopSignal\":\"9\",\"Labels\":null}}", NULL);
	assert_int_equal(R.stop_signal, SIGKILL);
	lm_spec_free(s);

	build_fails("{\"config\":{\"Cmd\":[\"sh\"],\"StopSignal\":\"SIGNOPE\"}}", NULL,
		    "config.StopSignal: \"SIGNOPE\" is not a signal");
	build_fails("{\"config\":{\"Cmd\":[\"sh\"],\"Labels\":{\"a\":1}}}", NULL, "config.Labels.\"a\": expected a string");
	build_fails("{\"config\":{\"Cmd\":[\"sh\"],\"Labels\":[]}}", NULL, "config.Labels: expected an object");
	build_fails("{\"config\":{\"Cmd\":[\"sh\"],\"ExposedPorts\":{\"http\":{}}}}", NULL, "\"http\" is not PORT");
	build_fails("{\"config\":{\"Cmd\":[\"sh\"],\"ExposedPorts\":{\"70000/tcp\":{}}}}", NULL, "70000/tcp");
	build_fails("{\"config\":{\"Cmd\":[\"sh\"],\"ExposedPorts\":{\"80/icmp\":{}}}}", NULL, "80/icmp");
	build_fails("{\"config\":{\"Cmd\":[\"sh\"],\"Volumes\":[\"/x\"]}}", NULL, "config.Volumes: expected an object");
}

/* Everything at once parses, and nothing leaks when a late step fails. */
static void everything_at_once(void **state)
{
	(void)state;
	const char *img = "{\"config\":{\"Entrypoint\":[\"/docker-entrypoint.sh\"],\"Cmd\":[\"nginx\",\"-g\","
			  "\"daemon off;\"],\"Env\":[\"NGINX_VERSION=1.25\"],\"User\":\"nginx\",\"WorkingDir\":\"/usr/share/nginx\","
			  "\"StopSignal\":\"SIGQUIT\",\"ExposedPorts\":{\"80/tcp\":{}},\"Volumes\":{\"/cache\":{}}}}";
	char *env[] = { "MODE=prod", NULL };
	char *add[] = { "NET_ADMIN", NULL };
	struct lm_run_mount m[] = { { .type = LM_RUN_MOUNT_BIND, .source = "/srv", .target = "/srv", .readonly = true } };
	struct lm_run_opts o = { .env = env, .hostname = "web-rep-1", .mounts = m, .n_mounts = 1, .memory = 1 << 30,
				 .cpus = 2, .pids_limit = 512, .read_only = true, .tty = true, .cap_add = add,
				 .rootfs = "/var/lib/lamina/containers/web-rep-1/merged" };
	struct lm_spec *s = build_ok(img, &o);
	assert_args(s, (const char *[]){ "/docker-entrypoint.sh", "nginx", "-g", "daemon off;", NULL });
	assert_int_equal(s->process.uid, 101);
	assert_string_equal(s->process.cwd, "/usr/share/nginx");
	assert_string_equal(s->hostname, "web-rep-1");
	assert_true(s->root_readonly && s->process.terminal);
	assert_true(has_cap(s, "NET_ADMIN"));
	lm_spec_free(s);

	/* A bad field met late (after Labels and Volumes are taken): an error,
	 * and nothing half-built handed out. */
	const char *late = "{\"config\":{\"Cmd\":[\"sh\"],\"Labels\":{\"a\":\"b\"},\"Volumes\":{\"/v\":{}},"
			   "\"ExposedPorts\":{\"80/tcp\":{},\"bad\":{}}}}";
	build_fails(late, &o, "\"bad\" is not PORT");
	assert_null(R.labels);
	assert_null(R.volumes);
	assert_null(R.exposed_ports);
	char *bad[] = { "NOPE", NULL };
	o.cap_drop = bad;
	build_fails(img, &o, "unknown capability");
}

/* ---------------------------------------------------------------- main */

#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(command_rules),
		T(env_merge),
		T(working_directory),
		T(users),
		T(account_files_hostile),
		T(capabilities),
		T(privileged),
		T(resources),
		T(root_and_network),
		T(mounts),
		T(image_metadata),
		T(everything_at_once),
	};
	return cmocka_run_group_tests_name("oci_config", tests, NULL, NULL);
}
