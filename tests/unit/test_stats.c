/* stats module: real cgroups for what a workload uses, fake controller
 * files for exact values in both formats (runs as root).
 *
 * The live tests put a forked child that touches memory and burns CPU into
 * a real cgroup below /lamina-test-<pid>-stats; a per-test fixture kills the
 * child and destroys the cgroup even when a check fails.  Exact parsing runs
 * in a re-executed copy of this binary in a private mount namespace: the
 * cgroup layout is detected first (this host's own, or pure v2 with the
 * host's cgroup2 mounted over /sys/fs/cgroup, as test_cgroup does), then a
 * tmpfs over /sys/fs/cgroup holds plain files in the kernel's formats at
 * the paths the cached layout gives, so values are known to the byte.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "runtime/cgroup.h"
#include "runtime/stats.h"
#include "testutil.h"

#define MIB (1024ull * 1024)
#define TOUCHED (20 * MIB)
#define MEM_LIMIT (256 * MIB)
#define PIDS_LIMIT 64
#define VIEW_ENV "LM_TEST_STATS_VIEW"

static char base[64]; /* "/lamina-test-<pid>-stats" */

/* ---------------------------------------------------------------- helpers */

/* Where the cgroup module puts `controller` for rel on this layout (no
 * directory needs to exist): the fakes go exactly there. */
static char *ctl_dir(const char *controller, const char *rel)
{
	char relbuf[PATH_MAX];
	FMT(relbuf, "%s", rel);
	struct lm_cgroup probe = {0};
	probe.rel_path = relbuf;
	return lm_cgroup_controller_dir(&probe, controller);
}

/* On pure v2 every name maps to the one directory: ask the root which
 * controllers it really has. */
static bool host_has(const char *controller)
{
	if (lm_cgroup_host_mode() == LM_CGROUP_V2) {
		char word[64];
		FMT(word, " %s ", controller);
		char list[1024];
		FMT(list, " %s", tu_file_content("/sys/fs/cgroup/cgroup.controllers"));
		list[strcspn(list, "\n")] = ' ';
		return strstr(list, word) != NULL;
	}
	char *dir = ctl_dir(controller, "");
	bool ok = dir && tu_exists(dir);
	free(dir);
	return ok;
}

static void read_ok(const char *rel, struct lm_stats *s)
{
	struct lm_error err;
	if (lm_stats_read(rel, s, &err) < 0)
		fail_msg("stats %s: %s", rel, err.msg);
}

static void read_fails(const char *rel, int code, const char *needle)
{
	struct lm_stats s;
	struct lm_error err = {0};
	int rc = lm_stats_read(rel, &s, &err);
	if (rc >= 0)
		fail_msg("stats %s succeeded; want errno %d", rel, code);
	assert_int_equal(rc, -code);
	assert_int_equal(err.code, code);
	assert_contains(err.msg, needle);
}

static bool wait_byte(int fd, char want)
{
	char c;
	ssize_t n;
	do
		n = read(fd, &c, 1);
	while (n < 0 && errno == EINTR);
	return n == 1 && c == want;
}

/* ---------------------------------------------------------------- fixture */

struct fixture {
	struct lm_cgroup cg;
	bool created;
	pid_t child;
	int gate, ready; /* our ends: gate to the child, ready from it */
};

static struct fixture fx;

static int fixture_setup(void **state)
{
	memset(&fx, 0, sizeof(fx));
	fx.child = -1;
	fx.gate = fx.ready = -1;
	*state = &fx;
	return 0;
}

static int fixture_teardown(void **state)
{
	(void)state;
	int rc = 0;
	if (fx.child > 0) {
		kill(fx.child, SIGKILL);
		while (waitpid(fx.child, NULL, 0) < 0 && errno == EINTR)
			;
	}
	if (fx.gate >= 0)
		close(fx.gate);
	if (fx.ready >= 0)
		close(fx.ready);
	if (fx.created) {
		struct lm_error err;
		if (lm_cgroup_destroy(&fx.cg, &err) < 0) {
			fprintf(stderr, "destroy: %s\n", err.msg);
			rc = -1;
		}
		lm_cgroup_free(&fx.cg);
	}
	return rc;
}

static void create_in_fixture(const char *name, const struct lm_resources *r, char *rel, size_t size)
{
	int n = snprintf(rel, size, "%s/%s", base, name);
	assert_true(n > 0 && (size_t)n < size);
	struct lm_error err;
	if (lm_cgroup_create(&fx.cg, rel, r, &err) < 0)
		fail_msg("create %s: %s", rel, err.msg);
	fx.created = true;
}

/* The workload: waits for the gate, touches TOUCHED bytes, says 'm', burns
 * CPU for 300 ms of wall time, says 'c', then sleeps until killed.  It
 * cannot use cmocka: failures are exit codes the parent sees as EOF. */
static void workload(int gate, int ready)
{
	char c;
	if (read(gate, &c, 1) != 1)
		_exit(3);
	char *p = mmap(NULL, TOUCHED, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		_exit(4);
	memset(p, 0x5a, TOUCHED);
	if (write(ready, "m", 1) != 1)
		_exit(5);
	struct timespec start, now;
	clock_gettime(CLOCK_MONOTONIC, &start);
	volatile uint64_t spin = 0;
	do {
		for (int i = 0; i < 100000; i++)
			spin += (uint64_t)i;
		clock_gettime(CLOCK_MONOTONIC, &now);
	} while ((now.tv_sec - start.tv_sec) * 1000000000L + (now.tv_nsec - start.tv_nsec) < 300000000L);
	if (spin == 1) /* never: uses spin, which clang otherwise calls set but unused */
		_exit(7);
	if (write(ready, "c", 1) != 1)
		_exit(6);
	for (;;)
		pause();
}

/* Fork the workload into the fixture's cgroup and let it start. */
static void start_workload(void)
{
	int gate[2], ready[2];
	assert_int_equal(pipe2(gate, O_CLOEXEC), 0);
	assert_int_equal(pipe2(ready, O_CLOEXEC), 0);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		close(gate[1]);
		close(ready[0]);
		workload(gate[0], ready[1]);
	}
	close(gate[0]);
	close(ready[1]);
	fx.child = pid;
	fx.gate = gate[1];
	fx.ready = ready[0];
	struct lm_error err;
	if (lm_cgroup_enter(&fx.cg, pid, &err) < 0)
		fail_msg("enter: %s", err.msg);
	assert_int_equal(write(fx.gate, "x", 1), 1);
}

/* ---------------------------------------------------------------- live */

static void test_live_usage(void **state)
{
	(void)state;
	if (!host_has("memory") || !host_has("pids")) {
		print_message("no memory or pids controller: skipped\n");
		skip();
	}
	struct lm_resources r = {0};
	r.has_mem_limit = true;
	r.mem_limit = (int64_t)MEM_LIMIT;
	r.has_pids_limit = true;
	r.pids_limit = PIDS_LIMIT;
	char rel[128];
	create_in_fixture("live", &r, rel, sizeof(rel));
	start_workload();

	struct lm_stats s1, s2;
	assert_true(wait_byte(fx.ready, 'm'));
	read_ok(rel, &s1);
	assert_true(wait_byte(fx.ready, 'c'));
	read_ok(rel, &s2);

	if (s1.memory_usage < TOUCHED || s1.memory_usage >= MEM_LIMIT)
		fail_msg("memory_usage %llu: want at least the %llu touched, below the limit",
			 (unsigned long long)s1.memory_usage, (unsigned long long)TOUCHED);
	assert_int_equal(s1.memory_limit, MEM_LIMIT);
	/* v1 always has max_usage_in_bytes; v2's memory.peak is newer */
	if (lm_cgroup_host_mode() != LM_CGROUP_V2 || s1.memory_max_usage)
		assert_true(s1.memory_max_usage >= TOUCHED);
	assert_int_equal(s1.pids_current, 1);
	assert_int_equal(s1.pids_limit, PIDS_LIMIT);
	assert_int_equal(s2.oom_kills, 0);

	if (s2.cpu_usage_ns <= s1.cpu_usage_ns)
		fail_msg("cpu_usage_ns did not grow: %llu then %llu", (unsigned long long)s1.cpu_usage_ns,
			 (unsigned long long)s2.cpu_usage_ns);
	assert_true(s2.cpu_user_ns > 0);
	assert_true(s1.read_at.tv_sec > 0);
	double pct = lm_stats_cpu_percent(&s1, &s2);
	/* one busy thread: above 0, and not more than one core's worth */
	if (!(pct > 0.0 && pct <= 120.0))
		fail_msg("cpu percent %.1f", pct);
	print_message("live: mem %llu KiB, cpu %.1f%%\n", (unsigned long long)(s1.memory_usage / 1024), pct);
}

static void test_unlimited_reads_zero(void **state)
{
	(void)state;
	if (!host_has("memory") || !host_has("pids"))
		skip();
	struct lm_resources r = {0};
	r.has_mem_limit = true;
	r.mem_limit = -1;
	r.has_pids_limit = true;
	r.pids_limit = 0;
	char rel[128];
	create_in_fixture("unlimited", &r, rel, sizeof(rel));
	struct lm_stats s;
	read_ok(rel, &s);
	assert_int_equal(s.memory_limit, 0);
	assert_int_equal(s.pids_limit, 0);
	assert_int_equal(s.pids_current, 0);
	assert_int_equal(s.cpu_usage_ns, 0); /* nothing ever ran here */

	/* the file itself holds the kernel's "unlimited", not a 0 */
	char *dir = lm_cgroup_controller_dir(&fx.cg, "memory");
	assert_non_null(dir);
	char path[PATH_MAX];
	FMT(path, "%s/%s", dir, lm_cgroup_host_mode() == LM_CGROUP_V2 ? "memory.max" : "memory.limit_in_bytes");
	free(dir);
	const char *raw = tu_file_content(path);
	assert_true(strncmp(raw, "max", 3) == 0 || strtoull(raw, NULL, 10) > (1ull << 60));
}

static void test_missing_cgroup(void **state)
{
	(void)state;
	char rel[128];
	FMT(rel, "%s/never-created", base);
	read_fails(rel, ENOENT, rel);
	read_fails("/..", EINVAL, "..");
}

/* ---------------------------------------------------------------- pure */

static void test_parse_keyed(void **state)
{
	(void)state;
	const char *v1_memory = "cache 9560064\nrss 6447104\ninactive_file 49152\ntotal_inactive_file 405344256\n";
	const char *v2_cpu = "usage_usec 8653903830\nuser_usec 5568618988\nsystem_usec 3085284842\nnr_periods 0";
	uint64_t v = 7;
	assert_int_equal(lm_stats_parse_keyed(v1_memory, "cache", &v), 0);
	assert_int_equal(v, 9560064);
	/* whole words only, whichever is a prefix of the other */
	assert_int_equal(lm_stats_parse_keyed(v1_memory, "inactive_file", &v), 0);
	assert_int_equal(v, 49152);
	assert_int_equal(lm_stats_parse_keyed(v1_memory, "total_inactive_file", &v), 0);
	assert_int_equal(v, 405344256);
	assert_int_equal(lm_stats_parse_keyed(v2_cpu, "usage_usec", &v), 0);
	assert_int_equal(v, 8653903830ull);
	assert_int_equal(lm_stats_parse_keyed(v2_cpu, "nr_periods", &v), 0); /* last line, no newline */
	assert_int_equal(v, 0);
	assert_int_equal(lm_stats_parse_keyed("max 18446744073709551615\n", "max", &v), 0);
	assert_true(v == UINT64_MAX);

	v = 42;
	assert_int_equal(lm_stats_parse_keyed(v2_cpu, "usage", &v), -ENOENT);
	assert_int_equal(lm_stats_parse_keyed(v2_cpu, "usec", &v), -ENOENT);
	assert_int_equal(lm_stats_parse_keyed(v1_memory, "throttled_usec", &v), -ENOENT);
	assert_int_equal(lm_stats_parse_keyed("", "cache", &v), -ENOENT);
	assert_int_equal(lm_stats_parse_keyed(v1_memory, "", &v), -EINVAL);
	static const char *const bad[] = {
		"k abc\n", "k 12x\n", "k -1\n", "k  5\n", "k \n", "k\n", "k 18446744073709551616\n", "k +3", NULL,
	};
	for (size_t i = 0; bad[i]; i++)
		if (lm_stats_parse_keyed(bad[i], "k", &v) != -EINVAL)
			fail_msg("\"%s\" was not rejected", bad[i]);
	assert_int_equal(v, 42); /* failures leave the value alone */
}

static void test_cpu_percent(void **state)
{
	(void)state;
	struct lm_stats a = {0}, b = {0};
	a.read_at.tv_sec = 100;
	a.read_at.tv_nsec = 500000000;
	a.cpu_usage_ns = 1000;
	b = a;
	b.read_at.tv_sec = 101; /* one second later */
	b.cpu_usage_ns = 1000 + 2000000000ull;
	assert_true(lm_stats_cpu_percent(&a, &b) > 199.999 && lm_stats_cpu_percent(&a, &b) < 200.001);
	b.cpu_usage_ns = 1000 + 250000000ull;
	assert_true(lm_stats_cpu_percent(&a, &b) > 24.999 && lm_stats_cpu_percent(&a, &b) < 25.001);
	/* no interval, time going backwards, a counter that restarted */
	assert_true(lm_stats_cpu_percent(&a, &a) == 0.0);
	assert_true(lm_stats_cpu_percent(&b, &a) == 0.0);
	b.read_at.tv_sec = 102;
	b.cpu_usage_ns = 10;
	assert_true(lm_stats_cpu_percent(&a, &b) == 0.0);
}

/* ---------------------------------------------------------------- fake files */

/* The directory of controller for rel as the layout this process detected
 * places it, made (malloc'd). */
static char *fake_dir(const char *controller, const char *rel)
{
	char *dir = ctl_dir(controller, rel);
	if (!dir)
		fail_msg("no %s controller in this layout", controller);
	tu_mkdirs(dir);
	return dir;
}

/* files: name, content pairs, NULL-terminated; each in the directory of rel
 * for its controller, which is the name's prefix as the kernel names them
 * ("memory" for "memory.stat"; on pure v2 all of them share one). */
static void fake(const char *rel, const char *const *files)
{
	for (size_t i = 0; files[i]; i += 2) {
		char controller[32];
		FMT(controller, "%.*s", (int)strcspn(files[i], "."), files[i]);
		char *dir = fake_dir(controller, rel);
		char path[PATH_MAX];
		FMT(path, "%s/%s", dir, files[i]);
		tu_put_file(path, files[i + 1]);
		free(dir);
	}
}

/* Reads rel and checks every counter against want's (read_at aside: it is
 * the clock's). */
static void expect_stats(const char *rel, const struct lm_stats *want)
{
	struct lm_stats s;
	read_ok(rel, &s);
	assert_int_equal(s.cpu_usage_ns, want->cpu_usage_ns);
	assert_int_equal(s.cpu_user_ns, want->cpu_user_ns);
	assert_int_equal(s.cpu_system_ns, want->cpu_system_ns);
	assert_int_equal(s.memory_usage, want->memory_usage);
	assert_int_equal(s.memory_limit, want->memory_limit);
	assert_int_equal(s.memory_max_usage, want->memory_max_usage);
	assert_int_equal(s.pids_current, want->pids_current);
	assert_int_equal(s.pids_limit, want->pids_limit);
	assert_int_equal(s.oom_kills, want->oom_kills);
	assert_int_equal(s.io_read_bytes, want->io_read_bytes);
	assert_int_equal(s.io_write_bytes, want->io_write_bytes);
}

/* A cgroup with every counter set, in v1 files.  blkio: per device and
 * operation, then a Total per device and overall; the non-recursive file
 * must lose to the recursive one. */
static const char *const full_v1[] = {
	"memory.usage_in_bytes", "104857600\n",
	"memory.stat", "cache 8192\ninactive_file 999\ntotal_cache 8192\ntotal_inactive_file 4194304\n",
	"memory.limit_in_bytes", "9223372036854771712\n",
	"memory.max_usage_in_bytes", "209715200\n",
	"memory.oom_control", "oom_kill_disable 0\nunder_oom 0\noom_kill 3\n",
	"cpuacct.usage", "5000000000\n", "cpuacct.usage_user", "3000000000\n",
	"cpuacct.usage_sys", "1500000000\n", "cpuacct.stat", "user 1\nsystem 1\n",
	"pids.current", "7\n", "pids.max", "max\n",
	"blkio.throttle.io_service_bytes_recursive",
	"8:0 Read 100\n8:0 Write 200\n8:0 Sync 300\n8:0 Async 0\n8:0 Discard 0\n8:0 Total 300\n"
	"8:16 Read 1000\n8:16 Write 2000\n8:16 Sync 0\n8:16 Async 3000\n8:16 Discard 0\n8:16 Total 3000\n"
	"Total 3300\n",
	"blkio.throttle.io_service_bytes", "8:0 Read 1\n8:0 Write 1\nTotal 2\n",
	NULL,
};

/* One like it in v2 files. */
static const char *const full_v2[] = {
	"memory.current", "104857600\n",
	"memory.stat", "anon 100\nfile 200\ninactive_anon 0\nactive_anon 0\ninactive_file 4194304\nactive_file 0\n",
	"memory.max", "max\n",
	"memory.peak", "209715200\n",
	"memory.events", "low 0\nhigh 0\nmax 4\noom 2\noom_kill 2\noom_group_kill 0\n",
	"cpu.stat", "usage_usec 5000000\nuser_usec 3000000\nsystem_usec 2000000\nnr_periods 0\n",
	"pids.current", "7\n",
	"pids.max", "100\n",
	"io.stat", "8:0 rbytes=100 wbytes=200 rios=1 wios=2 dbytes=0 dios=0\n"
		   "8:16 rbytes=1000 wbytes=2000 rios=3 wios=4 dbytes=0 dios=0\n",
	NULL,
};

/* Where each full cgroup goes and what it must read as, indexed by
 * whether the layout is pure v2. */
static const struct {
	const char *rel;
	const char *const *files;
	struct lm_stats want;
} full[] = {
	{"/fake/full", full_v1, {
		.cpu_usage_ns = 5000000000ull, .cpu_user_ns = 3000000000ull, .cpu_system_ns = 1500000000ull,
		.memory_usage = 100 * MIB - 4 * MIB, .memory_limit = 0, .memory_max_usage = 200 * MIB,
		.pids_current = 7, .pids_limit = 0, .oom_kills = 3,
		.io_read_bytes = 1100, .io_write_bytes = 2200,
	}},
	{"/fake/c", full_v2, {
		.cpu_usage_ns = 5000000000ull, .cpu_user_ns = 3000000000ull, .cpu_system_ns = 2000000000ull,
		.memory_usage = 100 * MIB - 4 * MIB, .memory_limit = 0, .memory_max_usage = 200 * MIB,
		.pids_current = 7, .pids_limit = 100, .oom_kills = 2,
		.io_read_bytes = 1100, .io_write_bytes = 2200,
	}},
};

/* The full cgroup in the files of this view's layout: one test for both
 * views, each of which runs it. */
static void test_full_values(void **state)
{
	(void)state;
	bool v2 = lm_cgroup_host_mode() == LM_CGROUP_V2;
	fake(full[v2].rel, full[v2].files);
	expect_stats(full[v2].rel, &full[v2].want);
}

/* Old kernels: no cpuacct.usage_user/sys (ticks from cpuacct.stat), the
 * ULLONG_MAX "unlimited"; a hierarchy without the cgroup reads as 0. */
static void test_v1_fallbacks(void **state)
{
	(void)state;
	static const char *const old[] = {
		"memory.usage_in_bytes", "1048576\n", "memory.stat", "cache 0\n",
		"memory.limit_in_bytes", "18446744073709551615\n",
		"cpuacct.usage", "2000000000\n", "cpuacct.stat", "user 150\nsystem 50\n",
		"pids.current", "0\n", "pids.max", "100\n", NULL,
	};
	fake("/fake/old", old);
	uint64_t tick = 1000000000ull / (uint64_t)sysconf(_SC_CLK_TCK);
	/* no blkio files, no oom_control: 0 */
	const struct lm_stats want = {
		.cpu_usage_ns = 2000000000ull, .cpu_user_ns = 150 * tick, .cpu_system_ns = 50 * tick,
		.memory_usage = MIB, .memory_limit = 0, .memory_max_usage = 0,
		.pids_current = 0, .pids_limit = 100,
	};
	expect_stats("/fake/old", &want);
}

static void test_v1_errors(void **state)
{
	(void)state;
	static const char *const bad_usage[] = {"memory.usage_in_bytes", "12abc\n", NULL};
	fake("/fake/bad1", bad_usage);
	read_fails("/fake/bad1", EINVAL, "memory.usage_in_bytes");
	read_fails("/fake/bad1", EINVAL, "/fake/bad1");

	static const char *const bad_blkio[] = {"blkio.throttle.io_service_bytes_recursive", "8:0 Read x\n", NULL};
	fake("/fake/bad2", bad_blkio);
	read_fails("/fake/bad2", EINVAL, "blkio.throttle.io_service_bytes_recursive");

	/* bigger than the read buffer: an error, not a truncated sum */
	static char big[70000];
	for (size_t i = 0; i + 4 <= sizeof(big) - 1; i += 4)
		memcpy(big + i, "x 1\n", 4);
	const char *const huge_stat[] = {"memory.usage_in_bytes", "1\n", "memory.stat", big, NULL};
	fake("/fake/big", huge_stat);
	read_fails("/fake/big", EFBIG, "memory.stat");

	/* the cgroup is only in a hierarchy stats does not read */
	free(fake_dir("devices", "/fake/elsewhere"));
	read_fails("/fake/elsewhere", ENOENT, "/fake/elsewhere");
	read_fails("/fake/never", ENOENT, "/fake/never");
}

/* Controllers not enabled for the cgroup have no files: their fields are
 * 0.  inactive_file above usage (two reads, not atomic) keeps the usage. */
static void test_v2_partial(void **state)
{
	(void)state;
	static const char *const cpu_only[] = {"cpu.stat", "usage_usec 10\nuser_usec 6\nsystem_usec 4\n", NULL};
	fake("/fake/min", cpu_only);
	struct lm_stats s;
	read_ok("/fake/min", &s);
	assert_int_equal(s.cpu_usage_ns, 10000);
	assert_int_equal(s.cpu_user_ns, 6000);
	assert_int_equal(s.memory_usage + s.memory_limit + s.pids_current + s.io_read_bytes, 0);

	static const char *const memory[] = {
		"memory.current", "1048576\n", "memory.max", "67108864\n", "memory.stat", "inactive_file 2097152\n", NULL,
	};
	fake("/fake/mem", memory);
	read_ok("/fake/mem", &s);
	assert_int_equal(s.memory_usage, MIB);
	assert_int_equal(s.memory_limit, 64 * MIB);
	assert_int_equal(s.memory_max_usage, 0);
	assert_int_equal(s.cpu_usage_ns, 0);
}

static void test_v2_errors(void **state)
{
	(void)state;
	static const char *const bad_io[] = {"io.stat", "8:0 rbytes=12x wbytes=1\n", NULL};
	fake("/fake/bad1", bad_io);
	read_fails("/fake/bad1", EINVAL, "io.stat");
	static const char *const bad_cpu[] = {"cpu.stat", "usage_usec\nuser_usec 1\n", NULL};
	fake("/fake/bad2", bad_cpu);
	read_fails("/fake/bad2", EINVAL, "usage_usec");
	static const char *const bad_max[] = {"memory.current", "1\n", "memory.max", "unlimited\n", NULL};
	fake("/fake/bad3", bad_max);
	read_fails("/fake/bad3", EINVAL, "memory.max");
	read_fails("/fake/never", ENOENT, "/fake/never");
}

/* ---------------------------------------------------------------- views */

/* Sets up the view (see the top) in this process: 0, or the exit status
 * to end with (77: this host cannot have it). */
static int set_up_view(const char *view, bool v2)
{
	if (tu_unshare_mounts(v2) < 0) {
		fprintf(stderr, "cannot set up the %s view: %s\n", view, strerror(errno));
		return 77;
	}
	/* Detect (and cache) the layout before the tmpfs hides the mounts. */
	enum lm_cgroup_mode mode = lm_cgroup_host_mode();
	if (v2 != (mode == LM_CGROUP_V2)) {
		fprintf(stderr, "%s view: layout detected as mode %d\n", view, (int)mode);
		return v2 ? 1 : 77; /* a v1 view of a pure v2 host cannot be made */
	}
	if (mount("tmpfs", "/sys/fs/cgroup", "tmpfs", 0, "size=4m") < 0) {
		fprintf(stderr, "tmpfs over /sys/fs/cgroup: %s\n", strerror(errno));
		return 77;
	}
	return 0;
}

static int run_view(const char *view)
{
	bool v2 = strcmp(view, "v2") == 0;
	int rc = set_up_view(view, v2);
	if (rc != 0)
		return rc;
	const struct CMUnitTest v1_tests[] = {
		cmocka_unit_test(test_full_values),
		cmocka_unit_test(test_v1_fallbacks),
		cmocka_unit_test(test_v1_errors),
	};
	const struct CMUnitTest v2_tests[] = {
		cmocka_unit_test(test_full_values),
		cmocka_unit_test(test_v2_partial),
		cmocka_unit_test(test_v2_errors),
	};
	if (v2)
		return cmocka_run_group_tests_name("stats fake v2 files", v2_tests, NULL, NULL);
	return cmocka_run_group_tests_name("stats fake v1 files", v1_tests, NULL, NULL);
}

static void test_fake_v1_files(void **state)
{
	(void)state;
	tu_run_self(VIEW_ENV, "v1");
}

static void test_fake_v2_files(void **state)
{
	(void)state;
	tu_run_self(VIEW_ENV, "v2"); /* cgroup2 can be mounted even where v1 holds every controller */
}

/* ---------------------------------------------------------------- main */

static int group_setup(void **state)
{
	(void)state;
	snprintf(base, sizeof(base), "/lamina-test-%d-stats", (int)getpid());
	return tu_need_root("test_stats");
}

/* What a failed test left below base, in every hierarchy; what is busy stays. */
static int group_teardown(void **state)
{
	(void)state;
	tu_rm_cgroup(base);
	return 0;
}

/* A live test, with the fixture around it. */
#define live_test(f) cmocka_unit_test_setup_teardown(f, fixture_setup, fixture_teardown)

int main(void)
{
	const char *view = getenv(VIEW_ENV);
	if (view)
		return run_view(view);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_keyed),
		cmocka_unit_test(test_cpu_percent),
		live_test(test_live_usage),
		live_test(test_unlimited_reads_zero),
		cmocka_unit_test(test_missing_cgroup),
		cmocka_unit_test(test_fake_v1_files),
		cmocka_unit_test(test_fake_v2_files),
	};
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
