/* Unit tests for rootfs/writable.c: real overlay mounts, as root.
 *
 * Each test gets /tmp/lm-wr-XXXXXX holding snap/ (read-only layer snapshots
 * as the unpacker leaves them) and containers/ (the layers root).  The whole
 * run happens in a private mount namespace (main), so a failed assertion can
 * never leave a mount on the host; the teardown detaches whatever a test left
 * under its directory.  Checks read the kernel's mount table and the upper
 * directory itself rather than trusting return values: a teardown that
 * reports success but leaves a mount behind is the bug these tests are for.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sched.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "rootfs/writable.h"
#include "util/fs.h"
#include "testutil.h"

/* <linux/fs.h> clashes with glibc 2.36's <sys/mount.h>. */
#ifndef FS_IOC_SETFLAGS
#define FS_IOC_SETFLAGS _IOW('f', 2, long)
#endif
#ifndef FS_IMMUTABLE_FL
#define FS_IMMUTABLE_FL 0x00000010
#endif

static struct {
	char tmp[64];
	char snap[128];
	char root[128]; /* the layers root */
} F;

static struct lm_error E; /* the error of the call under test */

/* ---------------------------------------------------------------- helpers */

static void put(const char *dir, const char *rel, const char *content)
{
	char path[PATH_MAX];
	FMT(path, "%s/%s", dir, rel);
	tu_mkparents(path);
	tu_put_file(path, content);
}

/* Content of dir/rel, or NULL when missing; static buffer. */
static const char *get(const char *dir, const char *rel)
{
	static char buf[4096];
	char path[PATH_MAX];
	FMT(path, "%s/%s", dir, rel);
	FILE *f = fopen(path, "r");
	if (!f)
		return NULL;
	size_t n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	return buf;
}

static bool exists_in(const char *dir, const char *rel)
{
	char path[PATH_MAX];
	FMT(path, "%s/%s", dir, rel);
	return tu_exists(path);
}

/* Entries in dir; 0 when it cannot be opened (gone, say). */
static size_t count_entries(const char *dir)
{
	int n = tu_dir_entries(dir);
	return n < 0 ? 0 : (size_t)n;
}

/* Is path a mount point in our mount table? (mountinfo field 5) */
static int mounts_on(const char *path)
{
	FILE *f = fopen("/proc/self/mountinfo", "r");
	assert_non_null(f);
	char line[8192];
	int n = 0;
	while (fgets(line, sizeof(line), f)) {
		char *save = NULL, *tok = strtok_r(line, " ", &save);
		for (int i = 1; tok && i < 5; i++)
			tok = strtok_r(NULL, " ", &save);
		if (tok && strcmp(tok, path) == 0)
			n++;
	}
	fclose(f);
	return n;
}

/* Mounts anywhere under prefix. */
static int mounts_under(const char *prefix)
{
	FILE *f = fopen("/proc/self/mountinfo", "r");
	assert_non_null(f);
	char line[8192];
	int n = 0;
	size_t pl = strlen(prefix);
	while (fgets(line, sizeof(line), f)) {
		char *save = NULL, *tok = strtok_r(line, " ", &save);
		for (int i = 1; tok && i < 5; i++)
			tok = strtok_r(NULL, " ", &save);
		if (tok && strncmp(tok, prefix, pl) == 0)
			n++;
	}
	fclose(f);
	return n;
}

/* A snapshot directory snap/<name>; returns its path (static ring). */
static const char *layer(const char *name)
{
	static char ring[64][PATH_MAX];
	static int next;
	char *p = ring[next++ % 64];
	int n = snprintf(p, PATH_MAX, "%s/%s", F.snap, name);
	assert_true(n > 0 && n < PATH_MAX);
	tu_mkdirs(p);
	return p;
}

static void whiteout(const char *dir, const char *rel)
{
	char path[PATH_MAX];
	FMT(path, "%s/%s", dir, rel);
	if (mknod(path, S_IFCHR | 0, makedev(0, 0)) < 0)
		fail_msg("mknod %s: %s", path, strerror(errno));
}

static struct lm_writable *create2(const char *id, const char *top, const char *base)
{
	const char *lowers[] = { top, base };
	struct lm_writable *w = NULL;
	assert_ok(lm_writable_create(F.root, id, lowers, base ? 2 : 1, &w, &E), E);
	return w;
}

static char *dir_of(const char *id)
{
	static char buf[PATH_MAX];
	int n = snprintf(buf, sizeof(buf), "%s/%s", F.root, id);
	assert_true(n > 0 && (size_t)n < sizeof(buf));
	return buf;
}

/* ---------------------------------------------------------------- fixture */

static int setup(void **state)
{
	(void)state;
	if (geteuid() != 0)
		return 0;
	if (tu_mkdtemp(F.tmp, sizeof(F.tmp), "wr") < 0)
		return -1;
	snprintf(F.snap, sizeof(F.snap), "%s/snap", F.tmp);
	snprintf(F.root, sizeof(F.root), "%s/containers", F.tmp);
	mkdir(F.snap, 0755);
	lm_writable_inject_failure(0);
	lm_writable_force_mount_way(0);
	memset(&E, 0, sizeof(E));
	return 0;
}

static void detach_all_under(const char *prefix)
{
	for (int round = 0; round < 64 && mounts_under(prefix) > 0; round++) {
		FILE *f = fopen("/proc/self/mountinfo", "r");
		char line[8192];
		while (f && fgets(line, sizeof(line), f)) {
			char *save = NULL, *tok = strtok_r(line, " ", &save);
			for (int i = 1; tok && i < 5; i++)
				tok = strtok_r(NULL, " ", &save);
			if (tok && strncmp(tok, prefix, strlen(prefix)) == 0)
				umount2(tok, MNT_DETACH);
		}
		if (f)
			fclose(f);
	}
}

static int teardown(void **state)
{
	(void)state;
	if (geteuid() != 0 || !F.tmp[0])
		return 0;
	detach_all_under(F.tmp);
	struct lm_error err = { 0 };
	int r = lm_rm_rf_at(AT_FDCWD, F.tmp, &err);
	F.tmp[0] = '\0';
	lm_writable_inject_failure(0);
	lm_writable_force_mount_way(0);
	return r;
}

#define NEED_ROOT()                                              \
	do {                                                     \
		if (geteuid() != 0) {                            \
			print_message("not root: skipped\n");    \
			skip();                                  \
		}                                                \
	} while (0)

/* ---------------------------------------------------------------- tests */

static void create_mount_write(void **state)
{
	(void)state;
	NEED_ROOT();
	const char *base = layer("base"), *top = layer("top");
	put(base, "etc/hostname", "base-host\n");
	put(base, "a", "a-base");
	put(top, "a", "a-top");
	put(top, "b", "b-top");

	struct lm_writable *w = create2("c1", top, base);
	const char *dir = dir_of("c1");
	assert_string_equal(lm_writable_dir(w), dir);
	assert_string_equal(lm_writable_id(w), "c1");
	assert_true(exists_in(dir, "upper") && exists_in(dir, "work") && exists_in(dir, "merged"));
	assert_true(exists_in(dir, "layer.json"));
	assert_contains(get(dir, "layer.json"), top);
	assert_false(lm_writable_is_mounted(w));
	assert_null(lm_writable_mount_path(w));
	assert_int_equal(lm_writable_n_lowers(w), 2);
	assert_string_equal(lm_writable_lower(w, 0), top);
	assert_null(lm_writable_lower(w, 2));

	assert_ok(lm_writable_mount(w, &E), E);
	const char *merged = lm_writable_mount_path(w);
	assert_non_null(merged);
	assert_string_equal(merged, lm_writable_merged_path(w));
	assert_int_equal(mounts_on(merged), 1);
	/* Mounting again is a no-op, not a second overlay on the same upper. */
	assert_ok(lm_writable_mount(w, &E), E);
	assert_int_equal(mounts_on(merged), 1);

	assert_string_equal(get(merged, "a"), "a-top");
	assert_string_equal(get(merged, "b"), "b-top");
	assert_string_equal(get(merged, "etc/hostname"), "base-host\n");

	put(merged, "new", "written");
	put(merged, "etc/hostname", "changed\n");
	const char *upper = lm_writable_upper(w);
	assert_string_equal(get(upper, "new"), "written");
	assert_string_equal(get(upper, "etc/hostname"), "changed\n");
	assert_string_equal(get(base, "etc/hostname"), "base-host\n");
	assert_false(exists_in(base, "new") || exists_in(top, "new"));
	char p[PATH_MAX];
	FMT(p, "%s/a", merged);
	assert_int_equal(unlink(p), 0);
	assert_false(exists_in(merged, "a"));
	assert_string_equal(get(top, "a"), "a-top");

	assert_ok(lm_writable_unmount(w, &E), E);
	assert_false(lm_writable_is_mounted(w));
	assert_null(lm_writable_mount_path(w));
	assert_int_equal(mounts_on(lm_writable_merged_path(w)), 0);
	assert_int_equal(count_entries(lm_writable_merged_path(w)), 0);
	/* Unmounting what is not mounted is fine. */
	assert_ok(lm_writable_unmount(w, &E), E);

	/* The writes survive a remount: they are in the upper. */
	assert_ok(lm_writable_mount(w, &E), E);
	assert_string_equal(get(lm_writable_merged_path(w), "new"), "written");

	assert_ok(lm_writable_destroy(w, &E), E);
	assert_false(tu_exists(dir));
	assert_int_equal(mounts_under(F.root), 0);
	assert_int_equal(count_entries(F.root), 0);
	assert_string_equal(get(base, "etc/hostname"), "base-host\n");
	/* Destroying twice is harmless; mounting a destroyed layer is not. */
	assert_int_equal(lm_writable_destroy(w, &E), 0);
	assert_true(lm_writable_mount(w, &E) < 0);
	assert_contains(E.msg, "destroyed");
	lm_writable_free(w);
}

static void root_dir_takes_image_owner_and_mode(void **state)
{
	(void)state;
	NEED_ROOT();
	const char *base = layer("base"), *top = layer("top");
	assert_int_equal(chmod(top, 0751), 0);
	assert_int_equal(chown(top, 0, 5), 0);
	struct lm_writable *w = create2("c1", top, base);
	struct stat st;
	assert_int_equal(stat(lm_writable_upper(w), &st), 0);
	assert_int_equal(st.st_mode & 07777, 0751);
	assert_int_equal(st.st_gid, 5);
	assert_ok(lm_writable_mount(w, &E), E);
	assert_int_equal(stat(lm_writable_merged_path(w), &st), 0);
	assert_int_equal(st.st_mode & 07777, 0751);
	/* The layer directory itself stays private. */
	assert_int_equal(stat(lm_writable_dir(w), &st), 0);
	assert_int_equal(st.st_mode & 07777, 0700);
	assert_ok(lm_writable_destroy(w, &E), E);
	lm_writable_free(w);
}

static void whiteouts_hide_lower_files(void **state)
{
	(void)state;
	NEED_ROOT();
	const char *base = layer("base"), *top = layer("top");
	put(base, "gone", "should not be seen");
	put(base, "kept", "kept");
	put(base, "dir/x", "x");
	put(base, "dir/y", "y");
	whiteout(top, "gone");
	char opaque[PATH_MAX];
	FMT(opaque, "%s/dir", top);
	tu_mkdirs(opaque);
	assert_int_equal(setxattr(opaque, "trusted.overlay.opaque", "y", 1, 0), 0);
	put(top, "dir/z", "z");

	struct lm_writable *w = create2("c1", top, base);
	assert_ok(lm_writable_mount(w, &E), E);
	const char *m = lm_writable_mount_path(w);
	assert_false(exists_in(m, "gone"));
	assert_string_equal(get(m, "kept"), "kept");
	char d[PATH_MAX];
	FMT(d, "%s/dir", m);
	assert_int_equal(count_entries(d), 1);
	assert_string_equal(get(m, "dir/z"), "z");
	/* Deleting a lower file in the container writes a whiteout to the upper. */
	char k[PATH_MAX];
	FMT(k, "%s/kept", m);
	assert_int_equal(unlink(k), 0);
	struct stat st;
	FMT(k, "%s/kept", lm_writable_upper(w));
	assert_int_equal(lstat(k, &st), 0);
	assert_true(S_ISCHR(st.st_mode) && st.st_rdev == makedev(0, 0));
	assert_true(exists_in(base, "kept"));
	assert_ok(lm_writable_destroy(w, &E), E);
	lm_writable_free(w);
}

/* n layers with long names (the option string outgrows a page at 40). */
static void make_chain(size_t n, const char **lowers)
{
	for (size_t i = 0; i < n; i++) {
		char name[256], content[32];
		FMT(name, "%03zu-sha256-%s", i,
		    "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef-fs-0123456789abcdef0123456789");
		lowers[i] = layer(name);
		FMT(content, "%zu", i);
		put(lowers[i], "shared", content);
		FMT(name, "only-%zu", i);
		put(lowers[i], name, content);
	}
}

static void check_chain(const char *m, size_t n)
{
	/* lowers[0] is the top. */
	assert_string_equal(get(m, "shared"), "0");
	for (size_t i = 0; i < n; i++) {
		char name[32], content[32];
		FMT(name, "only-%zu", i);
		FMT(content, "%zu", i);
		const char *got = get(m, name);
		if (!got || strcmp(got, content) != 0)
			fail_msg("layer %zu: %s is %s", i, name, got ? got : "missing");
	}
}

static void chain(size_t n, int way, bool expect_ok)
{
	const char *lowers[64];
	make_chain(n, lowers);
	char id[32];
	FMT(id, "c%zu-%d", n, way);
	struct lm_writable *w = NULL;
	assert_ok(lm_writable_create(F.root, id, lowers, n, &w, &E), E);
	lm_writable_force_mount_way(way);
	int r = lm_writable_mount(w, &E);
	lm_writable_force_mount_way(0);
	if (expect_ok) {
		if (r < 0)
			fail_msg("%zu layers, way %d: %s", n, way, E.msg);
		check_chain(lm_writable_mount_path(w), n);
	} else {
		assert_true(r < 0);
		assert_false(lm_writable_is_mounted(w));
		assert_int_equal(mounts_on(lm_writable_merged_path(w)), 0);
	}
	assert_ok(lm_writable_destroy(w, &E), E);
	lm_writable_free(w);
}

static void one_layer_every_way(void **state)
{
	(void)state;
	NEED_ROOT();
	for (int way = 0; way <= 3; way++)
		chain(1, way, true);
}

static void forty_layers(void **state)
{
	(void)state;
	NEED_ROOT();
	const char *lowers[40];
	make_chain(40, lowers);
	struct lm_writable *w = NULL;
	assert_ok(lm_writable_create(F.root, "forty", lowers, 40, &w, &E), E);
	/* Longer than the page mount(2) copies: */
	char *data = NULL;
	assert_true(lm_writable_mount_options(w, &data, &E) < 0);
	assert_int_equal(E.code, E2BIG);
	assert_null(data);
	assert_ok(lm_writable_mount(w, &E), E);
	check_chain(lm_writable_mount_path(w), 40);
	assert_ok(lm_writable_destroy(w, &E), E);
	lm_writable_free(w);
	assert_int_equal(count_entries(F.root), 0);

	chain(40, 1, true);  /* layers by fd */
	chain(40, 2, true);  /* "lowerdir+" paths: each under 256 bytes */
	chain(40, 3, false); /* mount(2): clear error, nothing mounted */
	lm_writable_force_mount_way(3);
	struct lm_writable *w2 = NULL;
	make_chain(40, lowers);
	assert_ok(lm_writable_create(F.root, "forty2", lowers, 40, &w2, &E), E);
	assert_true(lm_writable_mount(w2, &E) < 0);
	lm_writable_force_mount_way(0);
	assert_int_equal(E.code, E2BIG);
	assert_contains(E.msg, "40 layers");
	assert_ok(lm_writable_destroy(w2, &E), E);
	lm_writable_free(w2);
}

static void unmount_busy_is_an_error(void **state)
{
	(void)state;
	NEED_ROOT();
	const char *base = layer("base");
	put(base, "f", "content");
	struct lm_writable *w = create2("c1", base, NULL);
	assert_ok(lm_writable_mount(w, &E), E);
	char p[PATH_MAX];
	FMT(p, "%s/f", lm_writable_mount_path(w));
	int fd = open(p, O_RDONLY | O_CLOEXEC);
	assert_true(fd >= 0);
	assert_true(lm_writable_unmount(w, &E) < 0);
	assert_int_equal(E.code, EBUSY);
	assert_contains(E.msg, "busy");
	assert_true(lm_writable_is_mounted(w));
	assert_int_equal(mounts_on(lm_writable_merged_path(w)), 1);
	close(fd);
	assert_ok(lm_writable_unmount(w, &E), E);
	assert_int_equal(mounts_on(lm_writable_merged_path(w)), 0);
	assert_ok(lm_writable_destroy(w, &E), E);
	lm_writable_free(w);
}

static void destroy_busy_detaches(void **state)
{
	(void)state;
	NEED_ROOT();
	const char *base = layer("base");
	put(base, "f", "content");
	struct lm_writable *w = create2("c1", base, NULL);
	assert_ok(lm_writable_mount(w, &E), E);
	char merged[PATH_MAX], p[PATH_MAX];
	FMT(merged, "%s", lm_writable_mount_path(w));
	FMT(p, "%s/f", merged);
	int fd = open(p, O_RDONLY | O_CLOEXEC);
	assert_true(fd >= 0);
	assert_ok(lm_writable_destroy(w, &E), E);
	assert_int_equal(mounts_on(merged), 0);
	assert_false(tu_exists(dir_of("c1")));
	/* The holder keeps its private view until it lets go. */
	char buf[16] = { 0 };
	assert_int_equal(read(fd, buf, sizeof(buf) - 1), 7);
	assert_string_equal(buf, "content");
	close(fd);
	assert_int_equal(lm_writable_destroy(w, &E), 0);
	assert_string_equal(get(base, "f"), "content");
	lm_writable_free(w);
}

static void destroy_unmounted_twice(void **state)
{
	(void)state;
	NEED_ROOT();
	struct lm_writable *w = create2("c1", layer("base"), NULL);
	assert_ok(lm_writable_destroy(w, &E), E);
	assert_false(tu_exists(dir_of("c1")));
	assert_ok(lm_writable_destroy(w, &E), E);
	/* A layer created again under the same id is not touched by the stale handle. */
	struct lm_writable *again = create2("c1", layer("base"), NULL);
	assert_ok(lm_writable_destroy(w, &E), E);
	assert_true(tu_exists(dir_of("c1")));
	assert_ok(lm_writable_destroy(again, &E), E);
	lm_writable_free(again);
	lm_writable_free(w);
	lm_writable_free(NULL);
}

static void destroy_reports_first_error_and_goes_on(void **state)
{
	(void)state;
	NEED_ROOT();
	struct lm_writable *w = create2("c1", layer("base"), NULL);
	/* A step that fails: an upper file nobody may remove (immutable). */
	char f[PATH_MAX];
	FMT(f, "%s/stuck", lm_writable_upper(w));
	put(lm_writable_upper(w), "stuck", "x");
	int fd = open(f, O_RDONLY | O_CLOEXEC);
	assert_true(fd >= 0);
	int attr = FS_IMMUTABLE_FL;
	bool immutable = ioctl(fd, FS_IOC_SETFLAGS, &attr) == 0;
	close(fd);
	if (!immutable) {
		print_message("no immutable flag on this filesystem: skipped\n");
		assert_ok(lm_writable_destroy(w, &E), E);
		lm_writable_free(w);
		skip();
	}
	assert_true(lm_writable_destroy(w, &E) < 0);
	assert_contains(E.msg, "upper");
	/* Every other step ran: work is gone, merged too; the dir stays for the retry. */
	assert_false(exists_in(dir_of("c1"), "work"));
	assert_false(exists_in(dir_of("c1"), "merged"));
	assert_true(tu_exists(dir_of("c1")));
	fd = open(f, O_RDONLY | O_CLOEXEC);
	attr = 0;
	assert_int_equal(ioctl(fd, FS_IOC_SETFLAGS, &attr), 0);
	close(fd);
	/* A retry finishes the job. */
	assert_ok(lm_writable_destroy(w, &E), E);
	assert_false(tu_exists(dir_of("c1")));
	lm_writable_free(w);
}

static void create_rejects_bad_input(void **state)
{
	(void)state;
	NEED_ROOT();
	const char *ok = layer("ok");
	char missing[PATH_MAX], file[PATH_MAX];
	FMT(missing, "%s/does-not-exist", F.snap);
	FMT(file, "%s/plain-file", F.snap);
	put(F.snap, "plain-file", "x");
	struct lm_writable *w = NULL;

	const char *l1[] = { ok, missing };
	assert_true(lm_writable_create(F.root, "c1", l1, 2, &w, &E) < 0);
	assert_int_equal(E.code, ENOENT);
	assert_contains(E.msg, missing);
	assert_null(w);

	const char *l2[] = { file };
	assert_true(lm_writable_create(F.root, "c1", l2, 1, &w, &E) < 0);
	assert_int_equal(E.code, ENOTDIR);

	const char *l3[] = { "relative/dir" };
	assert_true(lm_writable_create(F.root, "c1", l3, 1, &w, &E) < 0);
	assert_contains(E.msg, "not an absolute path");

	char colon[PATH_MAX], comma[PATH_MAX], bslash[PATH_MAX];
	FMT(colon, "%s", layer("a:b"));
	FMT(comma, "%s", layer("a,b"));
	FMT(bslash, "%s", layer("a\\b"));
	const char *bad[] = { colon, comma, bslash };
	for (size_t i = 0; i < 3; i++) {
		const char *l[] = { bad[i] };
		assert_true(lm_writable_create(F.root, "c1", l, 1, &w, &E) < 0);
		assert_int_equal(E.code, EINVAL);
		assert_contains(E.msg, "overlayfs options cannot carry");
	}
	const char *bad_root = "/tmp/with:colon";
	const char *l4[] = { ok };
	assert_true(lm_writable_create(bad_root, "c1", l4, 1, &w, &E) < 0);
	assert_false(tu_exists(bad_root));

	const char *bad_ids[] = { "", ".", "..", "a/b", "x y", "../escape", "a\nb" };
	for (size_t i = 0; i < sizeof(bad_ids) / sizeof(bad_ids[0]); i++) {
		assert_true(lm_writable_create(F.root, bad_ids[i], l4, 1, &w, &E) < 0);
		assert_int_equal(E.code, EINVAL);
	}
	assert_true(lm_writable_create(F.root, "c1", l4, 0, &w, &E) < 0);
	assert_contains(E.msg, "no lower layers");

	/* Nothing of the above left anything behind. */
	assert_int_equal(count_entries(F.root), 0);
	assert_null(w);

	/* An existing layer is neither replaced nor rolled back. */
	struct lm_writable *first = create2("c1", ok, NULL);
	put(lm_writable_upper(first), "mine", "1");
	assert_true(lm_writable_create(F.root, "c1", l4, 1, &w, &E) < 0);
	assert_int_equal(E.code, EEXIST);
	assert_string_equal(get(lm_writable_upper(first), "mine"), "1");
	assert_ok(lm_writable_destroy(first, &E), E);
	lm_writable_free(first);
}

static void create_rolls_back_at_every_step(void **state)
{
	(void)state;
	NEED_ROOT();
	const char *l[] = { layer("base") };
	for (int step = 1; step <= 5; step++) {
		struct lm_writable *w = NULL;
		lm_writable_inject_failure(step);
		int r = lm_writable_create(F.root, "c1", l, 1, &w, &E);
		lm_writable_inject_failure(0);
		if (r >= 0)
			fail_msg("step %d: create succeeded", step);
		assert_contains(E.msg, "injected");
		assert_null(w);
		if (tu_exists(dir_of("c1")))
			fail_msg("step %d: %s left behind", step, dir_of("c1"));
	}
	/* And then it works. */
	struct lm_writable *w = NULL;
	assert_ok(lm_writable_create(F.root, "c1", l, 1, &w, &E), E);
	assert_ok(lm_writable_destroy(w, &E), E);
	lm_writable_free(w);
}

static void mount_failure_leaves_layer_destroyable(void **state)
{
	(void)state;
	NEED_ROOT();
	const char *top = layer("top"), *base = layer("base");
	struct lm_writable *w = create2("c1", top, base);
	assert_int_equal(rmdir(base), 0);
	assert_true(lm_writable_mount(w, &E) < 0);
	assert_contains(E.msg, base);
	assert_false(lm_writable_is_mounted(w));
	assert_int_equal(mounts_under(F.root), 0);
	assert_ok(lm_writable_destroy(w, &E), E);
	assert_false(tu_exists(dir_of("c1")));
	lm_writable_free(w);
}

static void reopen_from_layer_json(void **state)
{
	(void)state;
	NEED_ROOT();
	const char *base = layer("base"), *top = layer("top");
	put(base, "f", "base");
	struct lm_writable *w = create2("c1", top, base);
	assert_ok(lm_writable_mount(w, &E), E);
	put(lm_writable_mount_path(w), "w", "written");
	lm_writable_free(w); /* the agent "restarts": the layer stays */
	assert_int_equal(mounts_under(dir_of("c1")), 1);

	struct lm_writable *r = NULL;
	assert_ok(lm_writable_open(F.root, "c1", &r, &E), E);
	assert_true(lm_writable_is_mounted(r));
	assert_non_null(lm_writable_mount_path(r));
	assert_int_equal(lm_writable_n_lowers(r), 2);
	assert_string_equal(lm_writable_lower(r, 0), top);
	assert_string_equal(lm_writable_lower(r, 1), base);
	assert_string_equal(get(lm_writable_mount_path(r), "w"), "written");
	assert_ok(lm_writable_destroy(r, &E), E);
	assert_false(tu_exists(dir_of("c1")));
	assert_int_equal(mounts_under(F.root), 0);
	lm_writable_free(r);

	/* Not mounted; lowers gone since: still opens, and destroys. */
	w = create2("c2", top, base);
	lm_writable_free(w);
	assert_int_equal(rmdir(top), 0);
	assert_ok(lm_writable_open(F.root, "c2", &r, &E), E);
	assert_false(lm_writable_is_mounted(r));
	assert_ok(lm_writable_destroy(r, &E), E);
	lm_writable_free(r);

	/* Missing and broken records. */
	assert_true(lm_writable_open(F.root, "nope", &r, &E) < 0);
	assert_int_equal(E.code, ENOENT);
	w = create2("c3", base, NULL);
	lm_writable_free(w);
	put(dir_of("c3"), "layer.json", "{\"version\": 1, \"id\": \"c3\", \"lowerdirs\": [\"/a:/b\"]}");
	assert_true(lm_writable_open(F.root, "c3", &r, &E) < 0);
	assert_contains(E.msg, "lowerdirs[0]");
	put(dir_of("c3"), "layer.json", "{\"version\": 1, \"id\": \"other\", \"lowerdirs\": [\"/a\"]}");
	assert_true(lm_writable_open(F.root, "c3", &r, &E) < 0);
	assert_contains(E.msg, "id");
	put(dir_of("c3"), "layer.json", "{\"version\": 1, \"id\": ");
	assert_true(lm_writable_open(F.root, "c3", &r, &E) < 0);
	assert_contains(E.msg, "layer.json");
	put(dir_of("c3"), "layer.json", "{\"version\": 2, \"id\": \"c3\", \"lowerdirs\": [\"/a\"]}");
	assert_true(lm_writable_open(F.root, "c3", &r, &E) < 0);
	assert_contains(E.msg, "version");
}

static char live_id[] = "live";

static bool only_live(const char *id, void *ctx)
{
	return strcmp(id, (const char *)ctx) == 0;
}

static void sweep_removes_orphans(void **state)
{
	(void)state;
	NEED_ROOT();
	const char *base = layer("base");
	put(base, "f", "base");
	struct lm_writable *a = create2("dead-mounted", base, NULL);
	struct lm_writable *b = create2("dead-unmounted", base, NULL);
	struct lm_writable *c = create2("live", base, NULL);
	assert_ok(lm_writable_mount(a, &E), E);
	assert_ok(lm_writable_mount(c, &E), E);
	put(lm_writable_mount_path(c), "data", "keep me");
	/* A crash during create: no layer.json, a half-made upper. */
	tu_mkdirs(dir_of("crashed"));
	put(dir_of("crashed"), "upper/x", "x");
	/* Not a layer directory: a plain file, and a name that is not an id. */
	put(F.root, "notes.txt", "not a layer");
	tu_mkdirs(dir_of("not an id"));
	lm_writable_free(a);
	lm_writable_free(b);

	size_t removed = 0;
	assert_ok(lm_writable_sweep(F.root, only_live, live_id, &removed, &E), E);
	assert_int_equal(removed, 3);
	assert_false(tu_exists(dir_of("dead-mounted")));
	assert_false(tu_exists(dir_of("dead-unmounted")));
	assert_false(tu_exists(dir_of("crashed")));
	assert_true(tu_exists(dir_of("notes.txt")));
	assert_true(tu_exists(dir_of("not an id")));
	assert_true(lm_writable_is_mounted(c));
	assert_int_equal(mounts_on(lm_writable_merged_path(c)), 1);
	assert_int_equal(mounts_under(F.root), 1);
	assert_string_equal(get(lm_writable_mount_path(c), "data"), "keep me");

	/* Nothing more to do the second time; a missing root is empty. */
	assert_ok(lm_writable_sweep(F.root, only_live, live_id, &removed, &E), E);
	assert_int_equal(removed, 0);
	char none[PATH_MAX];
	FMT(none, "%s/no-such-root", F.tmp);
	assert_ok(lm_writable_sweep(none, only_live, live_id, &removed, &E), E);
	assert_int_equal(removed, 0);

	assert_ok(lm_writable_destroy(c, &E), E);
	lm_writable_free(c);
}

/* In a forked child with its own mount namespace, as the runtime's container
 * process will be: mount, check, write.  Exit code: 0 ok, else the step. */
static int child_mounts(struct lm_writable *w, const char *data)
{
	if (unshare(CLONE_NEWNS) < 0)
		return 10;
	if (mount(NULL, "/", NULL, MS_SLAVE | MS_REC, NULL) < 0)
		return 11;
	const char *m = lm_writable_merged_path(w);
	if (data) {
		if (mount("overlay", m, "overlay", 0, data) < 0)
			return 12;
	} else {
		struct lm_error err = { 0 };
		if (lm_writable_mount_at(w, m, &err) < 0)
			return 13;
	}
	const char *got = get(m, "shared");
	if (!got || strcmp(got, "0") != 0)
		return 14;
	char p[PATH_MAX];
	snprintf(p, sizeof(p), "%s/from-child", m);
	int fd = open(p, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
	if (fd < 0 || write(fd, "hi", 2) != 2)
		return 15;
	close(fd);
	return mounts_on(m) == 1 ? 0 : 16;
}

static void in_namespace(size_t n, bool with_mount2)
{
	const char *lowers[64];
	make_chain(n, lowers);
	char id[32];
	FMT(id, "ns-%zu-%d", n, with_mount2);
	struct lm_writable *w = NULL;
	assert_ok(lm_writable_create(F.root, id, lowers, n, &w, &E), E);
	char *data = NULL;
	if (with_mount2) {
		assert_ok(lm_writable_mount_options(w, &data, &E), E);
		assert_contains(data, "lowerdir=");
		assert_contains(data, "index=off");
		assert_contains(data, lm_writable_upper(w));
	}
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0)
		_exit(child_mounts(w, data));
	int status = 0;
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	if (WEXITSTATUS(status) != 0)
		fail_msg("child failed at step %d", WEXITSTATUS(status));
	free(data);

	/* Nothing on the host: no mount, an empty merged; the write is in the upper. */
	assert_int_equal(mounts_under(F.root), 0);
	assert_false(lm_writable_is_mounted(w));
	assert_null(lm_writable_mount_path(w));
	assert_int_equal(count_entries(lm_writable_merged_path(w)), 0);
	assert_string_equal(get(lm_writable_upper(w), "from-child"), "hi");
	assert_ok(lm_writable_destroy(w, &E), E);
	assert_false(tu_exists(dir_of(id)));
	lm_writable_free(w);
}

static void in_namespace_with_mount2_options(void **state)
{
	(void)state;
	NEED_ROOT();
	in_namespace(3, true);
}

static void in_namespace_with_mount_at(void **state)
{
	(void)state;
	NEED_ROOT();
	in_namespace(1, false);
	in_namespace(40, false);
}

static void image_view_is_mounted_nowhere(void **state)
{
	(void)state;
	NEED_ROOT();
	const char *base = layer("base"), *top = layer("top");
	put(base, "etc/passwd", "root:x:0:0::/root:/bin/sh\n");
	put(top, "etc/group", "root:x:0:\n");
	whiteout(top, "etc/passwd");
	put(base, "only-base", "b");

	struct lm_writable *one = create2("one", base, NULL);
	int fd = -1;
	assert_ok(lm_writable_image_view(one, &fd, &E), E);
	char *text = NULL;
	size_t len = 0;
	int f = lm_open_in_root(fd, "/etc/passwd", O_RDONLY, 0, &E);
	assert_true(f >= 0);
	assert_ok(lm_read_fd(f, 4096, &text, &len, &E), E);
	assert_contains(text, "root:x:0:0");
	free(text);
	close(f);
	close(fd);

	struct lm_writable *two = create2("two", top, base);
	assert_ok(lm_writable_image_view(two, &fd, &E), E);
	assert_int_equal(mounts_under(F.tmp), 0);
	/* The merged view: top's group, base's file, the whiteout honoured. */
	f = lm_open_in_root(fd, "/etc/group", O_RDONLY, 0, &E);
	assert_true(f >= 0);
	close(f);
	f = lm_open_in_root(fd, "/only-base", O_RDONLY, 0, &E);
	assert_true(f >= 0);
	close(f);
	assert_true(lm_open_in_root(fd, "/etc/passwd", O_RDONLY, 0, &E) < 0);
	assert_int_equal(E.code, ENOENT);
	/* Read-only. */
	assert_true(lm_open_in_root(fd, "/new", O_WRONLY | O_CREAT, 0644, &E) < 0);
	assert_int_equal(E.code, EROFS);
	close(fd);
	assert_int_equal(count_entries(lm_writable_upper(two)), 0);
	assert_ok(lm_writable_destroy(one, &E), E);
	assert_ok(lm_writable_destroy(two, &E), E);
	lm_writable_free(one);
	lm_writable_free(two);
}

/* ---------------------------------------------------------------- main */

#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)

int main(void)
{
	/* A private mount namespace: whatever a failing test leaves mounted dies
	 * with this process, and never shows on the host. */
	if (geteuid() == 0 &&
	    (unshare(CLONE_NEWNS) < 0 || mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)) {
		fprintf(stderr, "private mount namespace: %s\n", strerror(errno));
		return 1;
	}
	const struct CMUnitTest tests[] = {
		T(create_mount_write),
		T(root_dir_takes_image_owner_and_mode),
		T(whiteouts_hide_lower_files),
		T(one_layer_every_way),
		T(forty_layers),
		T(unmount_busy_is_an_error),
		T(destroy_busy_detaches),
		T(destroy_unmounted_twice),
		T(destroy_reports_first_error_and_goes_on),
		T(create_rejects_bad_input),
		T(create_rolls_back_at_every_step),
		T(mount_failure_leaves_layer_destroyable),
		T(reopen_from_layer_json),
		T(sweep_removes_orphans),
		T(in_namespace_with_mount2_options),
		T(in_namespace_with_mount_at),
		T(image_view_is_mounted_nowhere),
	};
	return cmocka_run_group_tests_name("writable", tests, NULL, NULL);
}
