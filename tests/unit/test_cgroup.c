/* cgroup module against the host's real cgroups (runs as root).
 *
 * Every test works below /lamina-test-<pid> (or a sibling of it for the
 * rollback tests) so runs never collide, and the group teardown removes
 * whatever a failed test left.  Expected values are read back from the
 * cgroup files directly, with the controller's mount point found from
 * /proc/self/mountinfo independently of the module under test; checks for
 * controllers this host does not mount are skipped.
 */
#include <dirent.h>
#include <errno.h>
#include <sched.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <linux/magic.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "runtime/cgroup.h"
#include "testutil.h"

static char base[64];    /* "/lamina-test-<pid>" */
static char rb_base[64]; /* "/lamina-test-<pid>-rb", for rollback tests */

/* ---------------------------------------------------------------- helpers */

/* Mount point of the v1 hierarchy holding `controller`, or of cgroup2 when
 * controller is NULL; read from mountinfo so the tests do not trust the
 * module's own detection. */
static bool mount_of(const char *controller, char *out, size_t size)
{
	FILE *f = fopen("/proc/self/mountinfo", "re");
	if (!f)
		return false;
	char line[4096];
	bool found = false;
	while (!found && fgets(line, sizeof(line), f)) {
		char *sep = strstr(line, " - ");
		if (!sep)
			continue;
		char mnt[PATH_MAX], fstype[64], src[256], opts[1024];
		if (sscanf(line, "%*s %*s %*s %*s %4095s", mnt) != 1 ||
		    sscanf(sep + 3, "%63s %255s %1023s", fstype, src, opts) != 3)
			continue;
		if (!controller) {
			found = strcmp(fstype, "cgroup2") == 0;
		} else if (strcmp(fstype, "cgroup") == 0) {
			char wrapped[1100], want[80];
			snprintf(wrapped, sizeof(wrapped), ",%s,", opts);
			snprintf(want, sizeof(want), ",%s,", controller);
			found = strstr(wrapped, want) != NULL;
		}
		if (found)
			snprintf(out, size, "%s", mnt);
	}
	fclose(f);
	return found;
}

static bool have_ctl(const char *controller)
{
	char m[PATH_MAX];
	return lm_cgroup_host_mode() != LM_CGROUP_V2 && mount_of(controller, m, sizeof(m));
}

#define SKIP_UNLESS(ctl)                                                 \
	do {                                                             \
		if (!have_ctl(ctl)) {                                    \
			print_message("no v1 %s controller: skipped\n", ctl); \
			skip();                                          \
		}                                                        \
	} while (0)

static void ctl_file(const char *controller, const char *rel, const char *file, char *out, size_t size)
{
	char m[PATH_MAX];
	assert_true(mount_of(controller, m, sizeof(m)));
	int n = snprintf(out, size, "%s%s%s%s", m, rel, file ? "/" : "", file ? file : "");
	assert_true(n >= 0 && (size_t)n < size);
}

static void read_text(const char *path, char *buf, size_t size)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		fail_msg("open %s: %s", path, strerror(errno));
	ssize_t n = read(fd, buf, size - 1);
	close(fd);
	assert_true(n >= 0);
	buf[n] = '\0';
	while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == ' '))
		buf[--n] = '\0';
}

static void assert_ctl_value(const char *controller, const char *rel, const char *file, const char *want)
{
	char path[PATH_MAX], got[4096];
	ctl_file(controller, rel, file, path, sizeof(path));
	read_text(path, got, sizeof(got));
	if (strcmp(got, want) != 0)
		fail_msg("%s: got \"%s\", want \"%s\"", path, got, want);
}

static bool exists(const char *path)
{
	struct stat st;
	return stat(path, &st) == 0;
}

/* Does rel exist in any hierarchy mounted under /sys/fs/cgroup? */
static bool exists_anywhere(const char *rel)
{
	static const char *const roots[] = {
		"/sys/fs/cgroup",        "/sys/fs/cgroup/cpu",     "/sys/fs/cgroup/cpuacct",
		"/sys/fs/cgroup/cpuset", "/sys/fs/cgroup/memory",  "/sys/fs/cgroup/devices",
		"/sys/fs/cgroup/freezer", "/sys/fs/cgroup/blkio",  "/sys/fs/cgroup/pids",
		"/sys/fs/cgroup/systemd", "/sys/fs/cgroup/unified", NULL,
	};
	for (size_t i = 0; roots[i]; i++) {
		char p[PATH_MAX];
		snprintf(p, sizeof(p), "%s%s", roots[i], rel);
		if (exists(p))
			return true;
	}
	return false;
}

static void path_in_base(char *out, size_t size, const char *name)
{
	snprintf(out, size, "%s/%s", base, name);
}

static void sleep_ms(long ms)
{
	struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
	nanosleep(&ts, NULL);
}

/* A child that waits for one byte on `gate`, then runs `then`, then pauses. */
static pid_t spawn_gated(int gate[2], void (*then)(void))
{
	assert_int_equal(pipe2(gate, O_CLOEXEC), 0);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		char c;
		close(gate[1]);
		if (read(gate[0], &c, 1) != 1)
			_exit(3);
		if (then)
			then();
		for (;;)
			pause();
	}
	close(gate[0]);
	return pid;
}

static void open_gate(int gate[2])
{
	assert_int_equal(write(gate[1], "x", 1), 1);
	close(gate[1]);
}

static bool pid_listed(const struct lm_cgroup *cg, pid_t pid)
{
	pid_t *pids = NULL;
	size_t n = 0;
	struct lm_error err;
	assert_int_equal(lm_cgroup_pids(cg, &pids, &n, &err), 0);
	bool found = false;
	for (size_t i = 0; i < n; i++)
		found |= pids[i] == pid;
	free(pids);
	return found;
}

static size_t pid_count(const struct lm_cgroup *cg)
{
	pid_t *pids = NULL;
	size_t n = 0;
	struct lm_error err;
	assert_int_equal(lm_cgroup_pids(cg, &pids, &n, &err), 0);
	free(pids);
	return n;
}

static void create_ok(struct lm_cgroup *cg, const char *rel, const struct lm_resources *r)
{
	struct lm_error err;
	if (lm_cgroup_create(cg, rel, r, &err) < 0)
		fail_msg("create %s: %s", rel, err.msg);
}

static void destroy_ok(struct lm_cgroup *cg)
{
	struct lm_error err;
	if (lm_cgroup_destroy(cg, &err) < 0)
		fail_msg("destroy: %s", err.msg);
	lm_cgroup_free(cg);
}

/* ---------------------------------------------------------------- layout */

static void test_host_mode_detected(void **state)
{
	(void)state;
	struct statfs root, unified;
	enum lm_cgroup_mode want;
	assert_int_equal(statfs("/sys/fs/cgroup", &root), 0);
	if (root.f_type == CGROUP2_SUPER_MAGIC)
		want = LM_CGROUP_V2;
	else if (statfs("/sys/fs/cgroup/unified", &unified) == 0 && unified.f_type == CGROUP2_SUPER_MAGIC)
		want = LM_CGROUP_HYBRID;
	else
		want = LM_CGROUP_V1;
	enum lm_cgroup_mode mode;
	struct lm_error err;
	assert_int_equal(lm_cgroup_detect(&mode, &err), 0);
	assert_int_equal(mode, want);
	assert_int_equal(lm_cgroup_host_mode(), want);
	assert_int_equal(lm_cgroup_device_filter_supported(), want != LM_CGROUP_V2);
	/* This machine (design.md): hybrid.  Say so loudly if that changes. */
	if (want != LM_CGROUP_HYBRID)
		print_message("note: host is not hybrid (mode %d)\n", (int)want);
}

/* ---------------------------------------------------------------- paths */

static void expect_path(const char *in, const char *id, const char *want)
{
	char *out = NULL;
	struct lm_error err;
	if (lm_cgroup_path_for(in, id, &out, &err) < 0)
		fail_msg("path_for(%s, %s): %s", in ? in : "NULL", id ? id : "NULL", err.msg);
	assert_string_equal(out, want);
	free(out);
}

static void expect_bad_path(const char *in, const char *id, const char *needle)
{
	char *out = NULL;
	struct lm_error err = {0};
	assert_true(lm_cgroup_path_for(in, id, &out, &err) < 0);
	assert_null(out);
	assert_int_equal(err.code, EINVAL);
	if (!strstr(err.msg, needle))
		fail_msg("path_for(%s): error \"%s\" lacks \"%s\"", in ? in : "NULL", err.msg, needle);
}

static void test_path_for_forms(void **state)
{
	(void)state;
	expect_path(NULL, "abc", "/lamina/abc");
	expect_path("/a/b", "x", "/a/b");
	expect_path("a/b", "x", "/a/b");
	expect_path("//a/./b//", "x", "/a/b");
	expect_path("/a:b/c", "x", "/a:b/c"); /* absolute paths are never systemd form */
	expect_path("system.slice:lamina:id", "x", "/system.slice/lamina-id.scope");
	expect_path(":lamina:id", "x", "/system.slice/lamina-id.scope");
	expect_path("user-1000.slice:lamina:c1", "x", "/user.slice/user-1000.slice/lamina-c1.scope");
	expect_path("-.slice:lamina:c1", "x", "/lamina-c1.scope");
	expect_path("machine.slice::c1", "x", "/machine.slice/c1.scope");
	expect_path("system.slice:lamina:sub.slice", "x", "/system.slice/lamina-sub.slice");
}

static void test_path_for_bad(void **state)
{
	(void)state;
	expect_bad_path("", "x", "empty");
	expect_bad_path("/", "x", "root");
	expect_bad_path("///.//", "x", "root");
	expect_bad_path("/a/../b", "x", "..");
	expect_bad_path("..", "x", "..");
	expect_bad_path("a/..", "x", "..");
	expect_bad_path("/a/b\nc", "x", "control");
	expect_bad_path(NULL, "../x", "container id");
	expect_bad_path(NULL, "a/b", "container id");
	expect_bad_path(NULL, "", "container id");
	expect_bad_path(NULL, "..", "container id");
	expect_bad_path("system.slice:lamina", "x", "slice:prefix:name");
	expect_bad_path("a:b:c:d", "x", "slice:prefix:name");
	expect_bad_path("system.slice:lamina:", "x", "unit name");
	expect_bad_path("system.slice:lamina:..", "x", "unit name");
	expect_bad_path("system.slice:la/mina:x", "x", "prefix");
	expect_bad_path("system:lamina:x", "x", "slice");
	expect_bad_path("a/b.slice:lamina:x", "x", "slice");
	expect_bad_path("a--b.slice:lamina:x", "x", "slice");
}

static void test_conversions(void **state)
{
	(void)state;
	assert_int_equal(lm_cgroup_shares_to_weight(0), 0);
	assert_int_equal(lm_cgroup_shares_to_weight(2), 1);
	assert_int_equal(lm_cgroup_shares_to_weight(1024), 39);
	assert_int_equal(lm_cgroup_shares_to_weight(262144), 10000);
	assert_int_equal(lm_cgroup_shares_to_weight(1u << 30), 10000);
	assert_int_equal(lm_cgroup_blkio_to_io_weight(0), 0);
	assert_int_equal(lm_cgroup_blkio_to_io_weight(10), 1);
	assert_int_equal(lm_cgroup_blkio_to_io_weight(500), 4950);
	assert_int_equal(lm_cgroup_blkio_to_io_weight(1000), 10000);
}

/* ---------------------------------------------------------------- create */

static void test_create_resources_read_back(void **state)
{
	(void)state;
	if (lm_cgroup_host_mode() == LM_CGROUP_V2)
		skip(); /* the v1 file names below */
	char rel[128];
	path_in_base(rel, sizeof(rel), "res");
	char cpus[] = "0", mems[] = "0";
	struct lm_resources r = {0};
	r.has_mem_limit = true;
	r.mem_limit = 64 << 20;
	r.has_mem_reservation = true;
	r.mem_reservation = 32 << 20;
	r.has_mem_swappiness = true;
	r.mem_swappiness = 10;
	r.disable_oom_killer = true;
	r.has_cpu_shares = true;
	r.cpu_shares = 512;
	r.has_cpu_quota = true;
	r.cpu_quota = 50000;
	r.has_cpu_period = true;
	r.cpu_period = 100000;
	r.has_pids_limit = true;
	r.pids_limit = 42;
	r.has_blkio_weight = true;
	r.blkio_weight = 500;
	if (have_ctl("cpuset")) {
		r.cpuset_cpus = cpus;
		r.cpuset_mems = mems;
	}
	/* Each requested controller must be there, or create refuses. */
	if (!have_ctl("memory") || !have_ctl("cpu") || !have_ctl("pids") || !have_ctl("blkio"))
		skip();

	struct lm_cgroup cg;
	create_ok(&cg, rel, &r);
	assert_string_equal(cg.rel_path, rel);
	assert_int_equal(cg.mode, lm_cgroup_host_mode());
	assert_true(cg.n_dirs >= 1);
	for (size_t i = 0; i < cg.n_dirs; i++)
		assert_true(exists(cg.dirs[i]));

	assert_ctl_value("memory", rel, "memory.limit_in_bytes", "67108864");
	assert_ctl_value("memory", rel, "memory.soft_limit_in_bytes", "33554432");
	assert_ctl_value("memory", rel, "memory.swappiness", "10");
	char path[PATH_MAX], text[512];
	ctl_file("memory", rel, "memory.oom_control", path, sizeof(path));
	read_text(path, text, sizeof(text));
	assert_non_null(strstr(text, "oom_kill_disable 1"));
	assert_ctl_value("cpu", rel, "cpu.shares", "512");
	assert_ctl_value("cpu", rel, "cpu.cfs_quota_us", "50000");
	assert_ctl_value("cpu", rel, "cpu.cfs_period_us", "100000");
	assert_ctl_value("pids", rel, "pids.max", "42");
	if (r.cpuset_cpus) {
		assert_ctl_value("cpuset", rel, "cpuset.cpus", "0");
		assert_ctl_value("cpuset", rel, "cpuset.mems", "0");
	}
	/* CFQ's blkio.weight, or BFQ's ("100" or "default 100" by kernel). */
	ctl_file("blkio", rel, "blkio.weight", path, sizeof(path));
	if (!exists(path))
		ctl_file("blkio", rel, "blkio.bfq.weight", path, sizeof(path));
	read_text(path, text, sizeof(text));
	const char *num = strrchr(text, ' ');
	assert_string_equal(num ? num + 1 : text, "500");

	char *dir = lm_cgroup_controller_dir(&cg, "memory");
	assert_non_null(dir);
	ctl_file("memory", rel, NULL, path, sizeof(path));
	assert_string_equal(dir, path);
	free(dir);
	assert_null(lm_cgroup_controller_dir(&cg, "no-such-controller-here"));
	destroy_ok(&cg);
}

/* Both orders of the v1 memory/memsw pair: a write that breaks
 * limit <= memsw is refused by the kernel, so raising and lowering need
 * opposite orders. */
static void test_memory_swap_raise_and_lower(void **state)
{
	(void)state;
	SKIP_UNLESS("memory");
	char rel[128], memsw[PATH_MAX];
	path_in_base(rel, sizeof(rel), "swap");
	struct lm_resources r = {0};
	r.has_mem_limit = r.has_mem_swap = true;
	r.mem_limit = 64 << 20;
	r.mem_swap = 128 << 20;
	struct lm_cgroup cg;
	create_ok(&cg, rel, &r);
	ctl_file("memory", rel, "memory.memsw.limit_in_bytes", memsw, sizeof(memsw));
	bool accounting = exists(memsw);
	if (accounting)
		assert_ctl_value("memory", rel, "memory.memsw.limit_in_bytes", "134217728");

	/* raise past the current memsw: memsw must go first */
	struct lm_cgroup again;
	r.mem_limit = 256 << 20;
	r.mem_swap = 512 << 20;
	create_ok(&again, rel, &r);
	assert_ctl_value("memory", rel, "memory.limit_in_bytes", "268435456");
	if (accounting)
		assert_ctl_value("memory", rel, "memory.memsw.limit_in_bytes", "536870912");
	lm_cgroup_free(&again);

	/* lower below the current limit: the limit must go first */
	r.mem_limit = 16 << 20;
	r.mem_swap = 32 << 20;
	create_ok(&again, rel, &r);
	assert_ctl_value("memory", rel, "memory.limit_in_bytes", "16777216");
	if (accounting)
		assert_ctl_value("memory", rel, "memory.memsw.limit_in_bytes", "33554432");
	lm_cgroup_free(&again);

	/* unlimited memory without a swap value lifts the memsw cap too */
	r.mem_limit = -1;
	r.has_mem_swap = false;
	create_ok(&again, rel, &r);
	char path[PATH_MAX], text[64];
	ctl_file("memory", rel, "memory.limit_in_bytes", path, sizeof(path));
	read_text(path, text, sizeof(text));
	assert_true(strtoull(text, NULL, 10) > (1ull << 60));
	if (accounting) {
		read_text(memsw, text, sizeof(text));
		assert_true(strtoull(text, NULL, 10) > (1ull << 60));
	}
	lm_cgroup_free(&again);
	destroy_ok(&cg);
}

static void test_bad_resources_rejected_before_mkdir(void **state)
{
	(void)state;
	char rel[128];
	snprintf(rel, sizeof(rel), "%s/early", rb_base);
	struct lm_resources r = {0};
	r.has_mem_limit = r.has_mem_swap = true;
	r.mem_limit = 64 << 20;
	r.mem_swap = 32 << 20; /* memory+swap below memory */
	struct lm_cgroup cg;
	struct lm_error err;
	assert_true(lm_cgroup_create(&cg, rel, &r, &err) < 0);
	assert_non_null(strstr(err.msg, "swap"));
	assert_false(exists_anywhere(rb_base));

	struct lm_resources s = {0};
	s.has_mem_swappiness = true;
	s.mem_swappiness = 101;
	assert_true(lm_cgroup_create(&cg, rel, &s, &err) < 0);
	assert_non_null(strstr(err.msg, "swappiness"));

	struct lm_device_rule rule = {.allow = true, .type = 'x', .major = 1, .minor = 3};
	struct lm_resources d = {0};
	d.devices = &rule;
	d.n_devices = 1;
	assert_true(lm_cgroup_create(&cg, rel, &d, &err) < 0);
	assert_non_null(strstr(err.msg, "device rule"));

	assert_true(lm_cgroup_create(&cg, "/a/../b", NULL, &err) < 0);
	assert_false(exists_anywhere(rb_base));
}

static void test_devices_v1(void **state)
{
	(void)state;
	SKIP_UNLESS("devices");
	char rel[128];
	path_in_base(rel, sizeof(rel), "dev");
	char rwm[] = "rwm", r_only[] = "r", m_only[] = "m";
	struct lm_device_rule rules[] = {
		{.allow = false, .type = 'a', .major = -1, .minor = -1, .access = rwm},
		{.allow = true, .type = 'c', .major = 1, .minor = 3, .access = NULL},
		{.allow = true, .type = 'c', .major = 1, .minor = 5, .access = r_only},
		{.allow = true, .type = 'c', .major = -1, .minor = -1, .access = m_only},
		{.allow = true, .type = 'b', .major = 7, .minor = -1, .access = rwm},
		{.allow = false, .type = 'b', .major = 7, .minor = -1, .access = rwm},
	};
	struct lm_resources r = {0};
	r.devices = rules;
	r.n_devices = sizeof(rules) / sizeof(rules[0]);
	struct lm_cgroup cg;
	create_ok(&cg, rel, &r);
	assert_ctl_value("devices", rel, "devices.list", "c 1:3 rwm\nc 1:5 r\nc *:* m");
	destroy_ok(&cg);
}

static void test_rollback_bad_cpuset(void **state)
{
	(void)state;
	SKIP_UNLESS("cpuset");
	char rel[128];
	snprintf(rel, sizeof(rel), "%s/bad", rb_base);
	char cpus[] = "999999";
	struct lm_resources r = {0};
	r.cpuset_cpus = cpus;
	r.has_pids_limit = true;
	r.pids_limit = 10;
	struct lm_cgroup cg;
	struct lm_error err;
	assert_true(lm_cgroup_create(&cg, rel, &r, &err) < 0);
	if (!strstr(err.msg, "cpuset.cpus=999999") || !strstr(err.msg, rel))
		fail_msg("unclear error: %s", err.msg);
	assert_true(err.code > 0);
	/* the new ancestor goes too: create made it */
	assert_false(exists_anywhere(rel));
	assert_false(exists_anywhere(rb_base));
	assert_null(cg.rel_path);
	assert_int_equal(cg.n_dirs, 0);
}

/* Rollback removes only what create made: a directory that was already
 * there (a joined cgroup) survives a failed create. */
static void test_rollback_keeps_existing(void **state)
{
	(void)state;
	SKIP_UNLESS("memory");
	SKIP_UNLESS("cpuset");
	char rel[128], pre[PATH_MAX], parent[PATH_MAX];
	path_in_base(rel, sizeof(rel), "pre");
	ctl_file("memory", base, NULL, parent, sizeof(parent));
	mkdir(parent, 0755);
	ctl_file("memory", rel, NULL, pre, sizeof(pre));
	assert_int_equal(mkdir(pre, 0755), 0);
	char cpus[] = "999999";
	struct lm_resources r = {0};
	r.cpuset_cpus = cpus;
	struct lm_cgroup cg;
	struct lm_error err;
	assert_true(lm_cgroup_create(&cg, rel, &r, &err) < 0);
	assert_true(exists(pre));
	char cpuset_dir[PATH_MAX];
	ctl_file("cpuset", rel, NULL, cpuset_dir, sizeof(cpuset_dir));
	assert_false(exists(cpuset_dir));
	assert_int_equal(rmdir(pre), 0);
}

static void test_unified(void **state)
{
	(void)state;
	char v2[PATH_MAX];
	if (lm_cgroup_host_mode() != LM_CGROUP_HYBRID || !mount_of(NULL, v2, sizeof(v2)))
		skip();
	char rel[128];
	path_in_base(rel, sizeof(rel), "unified");
	char k_ok[] = "cgroup.max.descendants", v_ok[] = "5";
	char k_bad[] = "memory.max", v_bad[] = "1000000";
	struct lm_sysctl good[] = {{k_ok, v_ok}};
	struct lm_resources r = {0};
	r.unified = good;
	r.n_unified = 1;
	struct lm_cgroup cg;
	create_ok(&cg, rel, &r);
	char path[PATH_MAX], text[64];
	FMT(path, "%s%s/cgroup.max.descendants", v2, rel);
	read_text(path, text, sizeof(text));
	assert_string_equal(text, "5");
	destroy_ok(&cg);

	/* memory belongs to v1 here: a clear error naming the key, and no leftovers */
	struct lm_sysctl bad[] = {{k_ok, v_ok}, {k_bad, v_bad}};
	r.unified = bad;
	r.n_unified = 2;
	struct lm_error err;
	snprintf(rel, sizeof(rel), "%s/unified", rb_base);
	assert_true(lm_cgroup_create(&cg, rel, &r, &err) < 0);
	if (!strstr(err.msg, "\"memory.max\""))
		fail_msg("error does not name the key: %s", err.msg);
	assert_false(exists_anywhere(rb_base));

	char k_escape[] = "../cgroup.procs";
	struct lm_sysctl escape[] = {{k_escape, v_ok}};
	r.unified = escape;
	r.n_unified = 1;
	assert_true(lm_cgroup_create(&cg, rel, &r, &err) < 0);
	assert_non_null(strstr(err.msg, "../cgroup.procs"));
	assert_false(exists_anywhere(rb_base));
}

/* ---------------------------------------------------------------- processes */

static void test_enter_and_pids(void **state)
{
	(void)state;
	char rel[128];
	path_in_base(rel, sizeof(rel), "enter");
	/* No cpuset requested: a fresh v1 cpuset is empty, and entering it
	 * fails with ENOSPC unless create filled it (and its new parent) in. */
	struct lm_cgroup cg;
	create_ok(&cg, rel, NULL);
	assert_int_equal(pid_count(&cg), 0);

	int gate[2];
	pid_t child = spawn_gated(gate, NULL);
	struct lm_error err;
	if (lm_cgroup_enter(&cg, child, &err) < 0)
		fail_msg("enter: %s", err.msg);
	open_gate(gate);

	char want[32];
	snprintf(want, sizeof(want), "%d", (int)child);
	for (size_t i = 0; i < cg.n_dirs; i++) {
		char path[PATH_MAX], text[256];
		snprintf(path, sizeof(path), "%s/cgroup.procs", cg.dirs[i]);
		read_text(path, text, sizeof(text));
		if (strcmp(text, want) != 0)
			fail_msg("%s: \"%s\", want \"%s\"", path, text, want);
	}
	assert_true(pid_listed(&cg, child));
	assert_int_equal(pid_count(&cg), 1);

	/* a reopened cgroup sees the same directories and processes */
	struct lm_cgroup opened;
	if (lm_cgroup_open(&opened, rel, &err) < 0)
		fail_msg("open: %s", err.msg);
	assert_int_equal(opened.n_dirs, cg.n_dirs);
	for (size_t i = 0; i < cg.n_dirs; i++)
		assert_string_equal(opened.dirs[i], cg.dirs[i]);
	assert_true(pid_listed(&opened, child));
	lm_cgroup_free(&opened);

	/* busy: destroy fails after its retries, naming the directory */
	struct lm_cgroup busy;
	assert_int_equal(lm_cgroup_open(&busy, rel, &err), 0);
	assert_true(lm_cgroup_destroy(&busy, &err) < 0);
	assert_int_equal(err.code, EBUSY);
	assert_non_null(strstr(err.msg, rel));
	lm_cgroup_free(&busy);

	kill(child, SIGKILL);
	waitpid(child, NULL, 0);
	destroy_ok(&cg);
}

static void test_open_missing(void **state)
{
	(void)state;
	char rel[128];
	path_in_base(rel, sizeof(rel), "never-created");
	struct lm_cgroup cg;
	struct lm_error err;
	assert_true(lm_cgroup_open(&cg, rel, &err) < 0);
	assert_int_equal(err.code, ENOENT);
	assert_non_null(strstr(err.msg, rel));
	assert_true(lm_cgroup_open(&cg, "/..", &err) < 0);
}

static void kill_all_case(int sig, const char *name)
{
	char rel[128];
	path_in_base(rel, sizeof(rel), name);
	struct lm_cgroup cg;
	create_ok(&cg, rel, NULL);
	int gate[2];
	pid_t child = spawn_gated(gate, NULL);
	struct lm_error err;
	if (lm_cgroup_enter(&cg, child, &err) < 0)
		fail_msg("enter: %s", err.msg);
	open_gate(gate);
	if (lm_cgroup_kill_all(&cg, sig, &err) < 0)
		fail_msg("kill_all: %s", err.msg);
	int status;
	assert_int_equal(waitpid(child, &status, 0), child);
	assert_true(WIFSIGNALED(status));
	assert_int_equal(WTERMSIG(status), sig);
	/* thawed afterwards: the freezer must not be left FROZEN */
	if (have_ctl("freezer"))
		assert_ctl_value("freezer", rel, "freezer.state", "THAWED");
	destroy_ok(&cg);
}

static void test_kill_all_sigkill(void **state)
{
	(void)state;
	kill_all_case(SIGKILL, "kill9");
}

static void test_kill_all_sigterm(void **state)
{
	(void)state;
	kill_all_case(SIGTERM, "kill15");
}

static void fork_sleepers(void)
{
	for (int i = 0; i < 5; i++)
		if (fork() == 0)
			for (;;)
				pause();
}

/* Children the workload forked are in the cgroup too and die with it. */
static void test_kill_all_whole_tree(void **state)
{
	(void)state;
	char rel[128];
	path_in_base(rel, sizeof(rel), "tree");
	struct lm_cgroup cg;
	create_ok(&cg, rel, NULL);
	/* orphaned grandchildren come back to us to be reaped */
	prctl(PR_SET_CHILD_SUBREAPER, 1);
	int gate[2];
	pid_t child = spawn_gated(gate, fork_sleepers);
	struct lm_error err;
	assert_int_equal(lm_cgroup_enter(&cg, child, &err), 0);
	open_gate(gate);
	for (int i = 0; i < 200 && pid_count(&cg) < 6; i++)
		sleep_ms(10);
	assert_int_equal(pid_count(&cg), 6);
	if (lm_cgroup_kill_all(&cg, SIGKILL, &err) < 0)
		fail_msg("kill_all: %s", err.msg);
	for (int reaped = 0; reaped < 6; reaped++) {
		int status;
		assert_true(waitpid(-1, &status, 0) > 0);
		assert_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
	}
	prctl(PR_SET_CHILD_SUBREAPER, 0);
	assert_int_equal(pid_count(&cg), 0);
	destroy_ok(&cg);
}

static void test_kill_all_empty_and_gone(void **state)
{
	(void)state;
	char rel[128];
	path_in_base(rel, sizeof(rel), "killempty");
	struct lm_cgroup cg;
	create_ok(&cg, rel, NULL);
	struct lm_error err;
	assert_int_equal(lm_cgroup_kill_all(&cg, SIGKILL, &err), 0);
	assert_int_equal(lm_cgroup_kill_all(&cg, SIGTERM, &err), 0);
	assert_int_equal(lm_cgroup_destroy(&cg, &err), 0);
	assert_int_equal(lm_cgroup_kill_all(&cg, SIGKILL, &err), 0);
	lm_cgroup_free(&cg);
}

static void test_oom_kills_fresh_is_zero(void **state)
{
	(void)state;
	char rel[128];
	path_in_base(rel, sizeof(rel), "oomzero");
	struct lm_cgroup cg;
	create_ok(&cg, rel, NULL);
	assert_int_equal(lm_cgroup_oom_kills(&cg), 0);
	destroy_ok(&cg);
	struct lm_cgroup none = {0};
	assert_int_equal(lm_cgroup_oom_kills(&none), 0);
}

static void eat_memory(void)
{
	for (int i = 0; i < 1024; i++) {
		char *p = mmap(NULL, 1 << 20, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (p == MAP_FAILED)
			_exit(4);
		memset(p, 0x5a, 1 << 20);
	}
	_exit(5); /* 1 GiB fit: the limit did not hold */
}

static void test_oom_kill_counted(void **state)
{
	(void)state;
	if (lm_cgroup_host_mode() != LM_CGROUP_V2)
		SKIP_UNLESS("memory");
	char rel[128];
	path_in_base(rel, sizeof(rel), "oom");
	struct lm_resources r = {0};
	r.has_mem_limit = r.has_mem_swap = true;
	r.mem_limit = r.mem_swap = 32 << 20; /* no swap to escape into */
	struct lm_cgroup cg;
	create_ok(&cg, rel, &r);
	int gate[2];
	pid_t child = spawn_gated(gate, eat_memory);
	struct lm_error err;
	assert_int_equal(lm_cgroup_enter(&cg, child, &err), 0);
	open_gate(gate);
	int status;
	assert_int_equal(waitpid(child, &status, 0), child);
	assert_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
	assert_int_equal(lm_cgroup_oom_kills(&cg), 1);
	destroy_ok(&cg);
}

/* ---------------------------------------------------------------- destroy */

static void test_destroy(void **state)
{
	(void)state;
	char rel[128];
	path_in_base(rel, sizeof(rel), "destroy");
	struct lm_cgroup cg;
	create_ok(&cg, rel, NULL);
	assert_true(cg.n_dirs > 0);
	/* a child cgroup the workload made (cgroup namespace, systemd inside) */
	char nested[PATH_MAX];
	snprintf(nested, sizeof(nested), "%s/inner/deeper", cg.dirs[0]);
	char inner[PATH_MAX];
	snprintf(inner, sizeof(inner), "%s/inner", cg.dirs[0]);
	assert_int_equal(mkdir(inner, 0755), 0);
	assert_int_equal(mkdir(nested, 0755), 0);

	struct lm_error err;
	if (lm_cgroup_destroy(&cg, &err) < 0)
		fail_msg("destroy: %s", err.msg);
	for (size_t i = 0; i < cg.n_dirs; i++)
		assert_false(exists(cg.dirs[i]));
	assert_false(exists_anywhere(rel));
	/* the shared ancestor stays */
	assert_true(exists_anywhere(base));
	/* destroying twice is harmless */
	assert_int_equal(lm_cgroup_destroy(&cg, &err), 0);
	lm_cgroup_free(&cg);
	lm_cgroup_free(&cg);
	struct lm_cgroup empty = {0};
	assert_int_equal(lm_cgroup_destroy(&empty, &err), 0);
}

static void test_create_reuses_existing(void **state)
{
	(void)state;
	char rel[128];
	path_in_base(rel, sizeof(rel), "reuse");
	struct lm_cgroup a, b;
	create_ok(&a, rel, NULL);
	create_ok(&b, rel, NULL);
	assert_int_equal(a.n_dirs, b.n_dirs);
	destroy_ok(&b);
	assert_false(exists_anywhere(rel));
	destroy_ok(&a);
}

/* ---------------------------------------------------------------- pure v2
 *
 * This host is hybrid, but its cgroup2 hierarchy is real: a copy of this
 * binary re-executed in a private mount namespace with cgroup2 mounted over
 * /sys/fs/cgroup sees a pure v2 host (with only the hugetlb controller), so
 * the v2 paths run against the kernel too.
 */

#define V2_ENV "LM_TEST_CGROUP_PURE_V2"

static void test_v2_mode(void **state)
{
	(void)state;
	assert_int_equal(lm_cgroup_host_mode(), LM_CGROUP_V2);
	assert_false(lm_cgroup_device_filter_supported());
}

static void test_v2_lifecycle(void **state)
{
	(void)state;
	char rel[128];
	path_in_base(rel, sizeof(rel), "life");
	/* device rules cannot be enforced without eBPF: skipped, not fatal */
	struct lm_device_rule deny = {.allow = false, .type = 'a', .major = -1, .minor = -1};
	char k[] = "cgroup.max.descendants", v[] = "7";
	struct lm_sysctl unified[] = {{k, v}};
	struct lm_resources r = {0};
	r.devices = &deny;
	r.n_devices = 1;
	r.unified = unified;
	r.n_unified = 1;
	struct lm_cgroup cg;
	create_ok(&cg, rel, &r);
	assert_int_equal(cg.mode, LM_CGROUP_V2);
	assert_int_equal(cg.n_dirs, 1);
	char path[PATH_MAX], text[256];
	FMT(path, "/sys/fs/cgroup%s", rel);
	assert_string_equal(cg.dirs[0], path);
	FMT(path, "/sys/fs/cgroup%s/cgroup.max.descendants", rel);
	read_text(path, text, sizeof(text));
	assert_string_equal(text, "7");

	/* controllers were delegated down to the leaf's parent */
	read_text("/sys/fs/cgroup/cgroup.controllers", text, sizeof(text));
	if (strstr(text, "hugetlb")) {
		FMT(path, "/sys/fs/cgroup%s/cgroup.subtree_control", base);
		read_text(path, text, sizeof(text));
		assert_non_null(strstr(text, "hugetlb"));
		char *dir = lm_cgroup_controller_dir(&cg, "hugetlb");
		assert_non_null(dir);
		assert_string_equal(dir, cg.dirs[0]);
		free(dir);
	}
	assert_int_equal(lm_cgroup_oom_kills(&cg), 0); /* no memory controller here */

	/* SIGTERM goes through cgroup.freeze, SIGKILL through cgroup.kill */
	int sigs[] = {SIGTERM, SIGKILL};
	for (size_t i = 0; i < 2; i++) {
		int gate[2];
		pid_t child = spawn_gated(gate, NULL);
		struct lm_error err;
		assert_int_equal(lm_cgroup_enter(&cg, child, &err), 0);
		open_gate(gate);
		assert_true(pid_listed(&cg, child));
		if (lm_cgroup_kill_all(&cg, sigs[i], &err) < 0)
			fail_msg("kill_all: %s", err.msg);
		int status;
		assert_int_equal(waitpid(child, &status, 0), child);
		assert_true(WIFSIGNALED(status));
		assert_int_equal(WTERMSIG(status), sigs[i]);
		FMT(path, "/sys/fs/cgroup%s/cgroup.freeze", rel);
		read_text(path, text, sizeof(text));
		assert_string_equal(text, "0");
	}
	destroy_ok(&cg);
	assert_false(exists_anywhere(rel));
}

/* A limit for a controller the v2 tree does not have fails clearly, and
 * rolls back, rather than being dropped. */
static void test_v2_missing_controller(void **state)
{
	(void)state;
	char rel[128];
	snprintf(rel, sizeof(rel), "%s/nopids", rb_base);
	char avail[256];
	read_text("/sys/fs/cgroup/cgroup.controllers", avail, sizeof(avail));
	if (strstr(avail, "pids"))
		skip();
	struct lm_resources r = {0};
	r.has_pids_limit = true;
	r.pids_limit = 10;
	struct lm_cgroup cg;
	struct lm_error err;
	assert_true(lm_cgroup_create(&cg, rel, &r, &err) < 0);
	if (!strstr(err.msg, "pids.max=10") || !strstr(err.msg, "pids controller"))
		fail_msg("unclear error: %s", err.msg);
	assert_false(exists_anywhere(rb_base));

	char k[] = "memory.max", v[] = "1";
	struct lm_sysctl unified[] = {{k, v}};
	struct lm_resources u = {0};
	u.unified = unified;
	u.n_unified = 1;
	assert_true(lm_cgroup_create(&cg, rel, &u, &err) < 0);
	assert_non_null(strstr(err.msg, "\"memory.max\""));
	assert_false(exists_anywhere(rb_base));

	/* realtime has no v2 equivalent */
	struct lm_resources rt = {0};
	rt.has_cpu_rt_runtime = true;
	rt.cpu_rt_runtime = 1000;
	assert_true(lm_cgroup_create(&cg, rel, &rt, &err) < 0);
	assert_non_null(strstr(err.msg, "realtime"));
}

static void expect_text(const char *dir, const char *file, const char *want)
{
	char path[PATH_MAX], got[256];
	FMT(path, "%s/%s", dir, file);
	read_text(path, got, sizeof(got));
	if (strcmp(got, want) != 0)
		fail_msg("%s: got \"%s\", want \"%s\"", path, got, want);
}

static void fake_dir(const char *dir, const char *const *files)
{
	assert_int_equal(mkdir(dir, 0755), 0);
	for (size_t i = 0; files[i]; i += 2) {
		char path[PATH_MAX];
		FMT(path, "%s/%s", dir, files[i]);
		tu_put_file(path, files[i + 1]);
	}
}

/* This host's v2 tree has no memory, cpu, pids or io controller, so to see
 * what lands in those files: the layout is cached as "v2 rooted at
 * /sys/fs/cgroup", and a tmpfs over that path with plain files standing in
 * for the controller files records every write. */
static void test_v2_limit_files(void **state)
{
	(void)state;
	assert_int_equal(lm_cgroup_host_mode(), LM_CGROUP_V2);
	assert_int_equal(mount("tmpfs", "/sys/fs/cgroup", "tmpfs", 0, "size=1m"), 0);
	assert_int_equal(mkdir("/sys/fs/cgroup/fake", 0755), 0);

	static const char *const files_c[] = {
		"memory.max", "", "memory.low", "", "memory.swap.max", "", "memory.high", "",
		"cpu.weight", "", "cpu.max", "", "cpuset.cpus", "", "cpuset.mems", "",
		"pids.max", "", "io.weight", "", NULL,
	};
	fake_dir("/sys/fs/cgroup/fake/c", files_c);
	char cpus[] = "0-1", mems[] = "0", hk[] = "memory.high", hv[] = "50M";
	struct lm_sysctl unified[] = {{hk, hv}};
	struct lm_resources r = {0};
	r.has_mem_limit = r.has_mem_reservation = r.has_mem_swap = true;
	r.mem_limit = 64 << 20;
	r.mem_reservation = 32 << 20;
	r.mem_swap = 96 << 20;
	r.has_mem_swappiness = true; /* no v2 file: ignored, as runc does */
	r.mem_swappiness = 30;
	r.has_cpu_shares = r.has_cpu_quota = r.has_cpu_period = true;
	r.cpu_shares = 1024;
	r.cpu_quota = 50000;
	r.cpu_period = 100000;
	r.cpuset_cpus = cpus;
	r.cpuset_mems = mems;
	r.has_pids_limit = true;
	r.pids_limit = 0;
	r.has_blkio_weight = true;
	r.blkio_weight = 500;
	r.unified = unified;
	r.n_unified = 1;
	struct lm_cgroup cg;
	create_ok(&cg, "/fake/c", &r);
	const char *c = "/sys/fs/cgroup/fake/c";
	expect_text(c, "memory.max", "67108864");
	expect_text(c, "memory.low", "33554432");
	expect_text(c, "memory.swap.max", "33554432"); /* 96M memory+swap - 64M */
	expect_text(c, "cpu.weight", "39");
	expect_text(c, "cpu.max", "50000 100000");
	expect_text(c, "cpuset.cpus", "0-1");
	expect_text(c, "cpuset.mems", "0");
	expect_text(c, "pids.max", "max");
	expect_text(c, "io.weight", "4950");
	expect_text(c, "memory.high", "50M");
	lm_cgroup_free(&cg);

	/* period alone keeps the quota; BFQ takes the blkio scale as is;
	 * unlimited memory lifts swap too */
	static const char *const files_d[] = {
		"cpu.max", "20000 100000", "io.bfq.weight", "", "io.weight", "",
		"memory.max", "", "memory.swap.max", "", NULL,
	};
	fake_dir("/sys/fs/cgroup/fake/d", files_d);
	struct lm_resources d = {0};
	d.has_cpu_period = true;
	d.cpu_period = 200000;
	d.has_blkio_weight = true;
	d.blkio_weight = 500;
	d.has_mem_limit = true;
	d.mem_limit = -1;
	create_ok(&cg, "/fake/d", &d);
	const char *dd = "/sys/fs/cgroup/fake/d";
	expect_text(dd, "cpu.max", "20000 200000");
	expect_text(dd, "io.bfq.weight", "500");
	expect_text(dd, "io.weight", "");
	expect_text(dd, "memory.max", "max");
	expect_text(dd, "memory.swap.max", "max");
	lm_cgroup_free(&cg);

	/* swap requested where the kernel has no swap accounting */
	static const char *const files_e[] = {"memory.max", "", NULL};
	fake_dir("/sys/fs/cgroup/fake/e", files_e);
	struct lm_resources e = {0};
	e.has_mem_limit = e.has_mem_swap = true;
	e.mem_limit = 64 << 20;
	e.mem_swap = 128 << 20;
	struct lm_error err;
	assert_true(lm_cgroup_create(&cg, "/fake/e", &e, &err) < 0);
	assert_non_null(strstr(err.msg, "memory.swap.max"));

	assert_int_equal(umount2("/sys/fs/cgroup", MNT_DETACH), 0);
}

static int group_setup(void **state);
static int group_teardown(void **state);

/* Delegation enables controllers at the v2 root, which is the host's real
 * unified root: put it back as it was. */
static char v2_root_enabled[256];

static int v2_group_setup(void **state)
{
	read_text("/sys/fs/cgroup/cgroup.subtree_control", v2_root_enabled, sizeof(v2_root_enabled));
	return group_setup(state);
}

static int v2_group_teardown(void **state)
{
	struct statfs sfs;
	if (statfs("/sys/fs/cgroup", &sfs) == 0 && sfs.f_type == TMPFS_MAGIC)
		umount2("/sys/fs/cgroup", MNT_DETACH); /* test_v2_limit_files failed part-way */
	group_teardown(state);
	char now[256];
	read_text("/sys/fs/cgroup/cgroup.subtree_control", now, sizeof(now));
	for (char *save = NULL, *c = strtok_r(now, " ", &save); c; c = strtok_r(NULL, " ", &save)) {
		if (strstr(v2_root_enabled, c))
			continue;
		char minus[80];
		int fd = open("/sys/fs/cgroup/cgroup.subtree_control", O_WRONLY | O_CLOEXEC);
		int n = snprintf(minus, sizeof(minus), "-%s", c);
		if (fd >= 0 && n > 0 && write(fd, minus, (size_t)n) < 0)
			fprintf(stderr, "could not restore cgroup.subtree_control (%s): %s\n", minus, strerror(errno));
		if (fd >= 0)
			close(fd);
	}
	return 0;
}

static int run_pure_v2(void)
{
	if (tu_unshare_mounts(true) < 0) {
		fprintf(stderr, "cannot set up a pure v2 view: %s\n", strerror(errno));
		return 77;
	}
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_v2_mode),
		cmocka_unit_test(test_v2_lifecycle),
		cmocka_unit_test(test_v2_missing_controller),
		cmocka_unit_test(test_v2_limit_files), /* last: it covers /sys/fs/cgroup */
	};
	return cmocka_run_group_tests_name("cgroup pure v2", tests, v2_group_setup, v2_group_teardown);
}

static void test_pure_v2_in_mount_namespace(void **state)
{
	(void)state;
	char v2[PATH_MAX];
	if (lm_cgroup_host_mode() == LM_CGROUP_V2 || !mount_of(NULL, v2, sizeof(v2)))
		skip(); /* pure v2 already, or no cgroup2 to look at */
	tu_run_self(V2_ENV, "1");
}

/* ---------------------------------------------------------------- main */

static int group_setup(void **state)
{
	(void)state;
	snprintf(base, sizeof(base), "/lamina-test-%d", (int)getpid());
	snprintf(rb_base, sizeof(rb_base), "/lamina-test-%d-rb", (int)getpid());
	return tu_need_root("test_cgroup");
}

static int group_teardown(void **state)
{
	(void)state;
	tu_rm_cgroup(base);
	tu_rm_cgroup(rb_base);
	return 0;
}

int main(void)
{
	if (getenv(V2_ENV))
		return run_pure_v2();
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_host_mode_detected),
		cmocka_unit_test(test_path_for_forms),
		cmocka_unit_test(test_path_for_bad),
		cmocka_unit_test(test_conversions),
		cmocka_unit_test(test_create_resources_read_back),
		cmocka_unit_test(test_memory_swap_raise_and_lower),
		cmocka_unit_test(test_bad_resources_rejected_before_mkdir),
		cmocka_unit_test(test_devices_v1),
		cmocka_unit_test(test_rollback_bad_cpuset),
		cmocka_unit_test(test_rollback_keeps_existing),
		cmocka_unit_test(test_unified),
		cmocka_unit_test(test_enter_and_pids),
		cmocka_unit_test(test_open_missing),
		cmocka_unit_test(test_kill_all_sigkill),
		cmocka_unit_test(test_kill_all_sigterm),
		cmocka_unit_test(test_kill_all_whole_tree),
		cmocka_unit_test(test_kill_all_empty_and_gone),
		cmocka_unit_test(test_oom_kills_fresh_is_zero),
		cmocka_unit_test(test_oom_kill_counted),
		cmocka_unit_test(test_destroy),
		cmocka_unit_test(test_create_reuses_existing),
		cmocka_unit_test(test_pure_v2_in_mount_namespace),
	};
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
