/* Resource usage of a container's cgroup on v1, v2 and hybrid hosts.
 *
 * The reference agent reads v2 file names only, so on v1 and hybrid hosts it
 * reports nothing.  Here each controller's directory comes from
 * lm_cgroup_controller_dir, which knows which hierarchy owns it, and the
 * format is chosen by the file that is there: the v1 names (cpuacct.usage,
 * memory.usage_in_bytes, blkio.*) exist only in v1 hierarchies, so their
 * presence decides, and the v2 names are read otherwise.  The file names,
 * not the mount's filesystem type, decide so that tests can stand plain
 * files in for the controllers the host's v2 tree does not have.
 *
 * Every file goes through one fixed 64 KiB buffer, opened relative to the
 * controller directory's fd: a cgroup with thousands of devices cannot make
 * a stats call allocate without bound, and too big a file is an error
 * rather than a silently truncated sum.  Missing files and keys mean "not
 * accounted here" and leave a field 0 (docker does the same); content the
 * kernel would never write is an error, because a wrong number on a
 * dashboard is worse than none.
 */
#include "runtime/stats.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "runtime/cgroup.h"
#include "util/cleanup.h"

#define STATS_FILE_MAX (64 * 1024)

/* v1 writes "no limit" as the page counter's maximum in bytes: LONG_MAX
 * rounded down to the page size (0x7FFFFFFFFFFFF000 with 4 KiB pages), or
 * ULLONG_MAX on old kernels.  Rounding to 1 MiB covers every page size,
 * and no real limit comes near 8 EiB. */
#define V1_UNLIMITED_FLOOR ((uint64_t)INT64_MAX & ~(uint64_t)0xFFFFF)

/* One stats call: the cgroup, the buffer every file is read into, and the
 * file now in it (for error messages). */
struct reader {
	const struct lm_cgroup *cg;
	char *buf;           /* STATS_FILE_MAX + 2: one byte to see overflow, one NUL */
	char *dir;           /* the controller directory being read */
	const char *file;
	int present, missing; /* controller directories found / mounted but absent */
};

static void cgroup_freep(struct lm_cgroup *cg)
{
	lm_cgroup_free(cg);
}

/* Strict decimal: strtoull would take signs, spaces and overflow quietly. */
static int parse_u64(const char *s, size_t len, uint64_t *out)
{
	uint64_t v = 0;
	if (len == 0)
		return -EINVAL;
	for (size_t i = 0; i < len; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -EINVAL;
		if (__builtin_mul_overflow(v, 10, &v) || __builtin_add_overflow(v, (uint64_t)(s[i] - '0'), &v))
			return -EINVAL;
	}
	*out = v;
	return 0;
}

int lm_stats_parse_keyed(const char *text, const char *key, uint64_t *out)
{
	size_t klen = strlen(key);
	if (klen == 0)
		return -EINVAL;
	for (const char *line = text; *line;) {
		const char *nl = strchr(line, '\n');
		size_t len = nl ? (size_t)(nl - line) : strlen(line);
		if (len >= klen && memcmp(line, key, klen) == 0 && (len == klen || line[klen] == ' ')) {
			if (len == klen)
				return -EINVAL; /* the key with no value */
			return parse_u64(line + klen + 1, len - klen - 1, out);
		}
		if (!nl)
			break;
		line = nl + 1;
	}
	return -ENOENT;
}

/* Per-device byte counters summed; saturate rather than wrap. */
static void add_sat(uint64_t *sum, uint64_t v)
{
	if (__builtin_add_overflow(*sum, v, sum))
		*sum = UINT64_MAX;
}

/* ---------------------------------------------------------------- reading */

static int malformed(struct reader *r, const char *what, struct lm_error *err)
{
	return lm_err(err, EINVAL, "%s/%s: %s is not a valid value", r->dir, r->file, what);
}

/* The controller's directory, trying names in order (the first mounted one
 * wins); *fd is -1 when none is mounted or the cgroup has no directory in
 * that hierarchy. */
static int open_controller(struct reader *r, const char *name, const char *alt, int *fd, struct lm_error *err)
{
	*fd = -1;
	free(r->dir);
	r->dir = lm_cgroup_controller_dir(r->cg, name);
	if (!r->dir && alt)
		r->dir = lm_cgroup_controller_dir(r->cg, alt);
	if (!r->dir)
		return errno == ENOENT ? 0 : lm_err_sys(err, "controller %s", name);
	*fd = open(r->dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (*fd >= 0) {
		r->present++;
		return 0;
	}
	if (errno == ENOENT) {
		r->missing++;
		return 0;
	}
	return lm_err_sys(err, "open %s", r->dir);
}

/* file into r->buf, NUL-terminated: 1 when read, 0 when it does not exist. */
static int load(struct reader *r, int dirfd, const char *file, struct lm_error *err)
{
	r->file = file;
	autofd fd = openat(dirfd, file, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOENT ? 0 : lm_err_sys(err, "open %s/%s", r->dir, file);
	size_t len = 0;
	while (len <= STATS_FILE_MAX) {
		ssize_t n = read(fd, r->buf + len, STATS_FILE_MAX + 1 - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return lm_err_sys(err, "read %s/%s", r->dir, file);
		if (n == 0)
			break;
		len += (size_t)n;
	}
	if (len > STATS_FILE_MAX)
		return lm_err(err, EFBIG, "read %s/%s: larger than %d bytes", r->dir, file, STATS_FILE_MAX);
	r->buf[len] = '\0';
	return 1;
}

/* A one-value file already loaded; limits map "max" and v1's sentinel to 0. */
static int single(struct reader *r, bool limit, uint64_t *out, struct lm_error *err)
{
	size_t len = strlen(r->buf);
	while (len > 0 && (r->buf[len - 1] == '\n' || r->buf[len - 1] == ' '))
		len--;
	if (limit && len == 3 && memcmp(r->buf, "max", 3) == 0) {
		*out = 0;
		return 0;
	}
	if (parse_u64(r->buf, len, out) < 0)
		return malformed(r, "the content", err);
	if (limit && *out >= V1_UNLIMITED_FLOOR)
		*out = 0;
	return 0;
}

/* load + single: 1 when read, 0 when missing (*out left alone). */
static int read_single(struct reader *r, int dirfd, const char *file, bool limit, uint64_t *out,
		       struct lm_error *err)
{
	int rc = load(r, dirfd, file, err);
	if (rc <= 0)
		return rc;
	return single(r, limit, out, err) < 0 ? -1 : 1;
}

/* A key of the loaded file; a missing key leaves *out alone. */
static int keyed(struct reader *r, const char *key, uint64_t *out, struct lm_error *err)
{
	int rc = lm_stats_parse_keyed(r->buf, key, out);
	if (rc == -EINVAL)
		return malformed(r, key, err);
	return 0;
}

/* ---------------------------------------------------------------- controllers */

static int read_cpu_v1(struct reader *r, int fd, struct lm_stats *s, struct lm_error *err)
{
	int rc_user, rc_sys;
	if (single(r, false, &s->cpu_usage_ns, err) < 0)
		return -1;
	if ((rc_user = read_single(r, fd, "cpuacct.usage_user", false, &s->cpu_user_ns, err)) < 0 ||
	    (rc_sys = read_single(r, fd, "cpuacct.usage_sys", false, &s->cpu_system_ns, err)) < 0)
		return -1;
	if (rc_user > 0 && rc_sys > 0)
		return 0;
	/* Kernels before 4.7 have only cpuacct.stat, in USER_HZ ticks. */
	int rc = load(r, fd, "cpuacct.stat", err);
	long hz = sysconf(_SC_CLK_TCK);
	if (rc <= 0 || hz <= 0)
		return rc;
	uint64_t user = 0, sys = 0;
	if (keyed(r, "user", &user, err) < 0 || keyed(r, "system", &sys, err) < 0)
		return -1;
	s->cpu_user_ns = user * (uint64_t)(1000000000L / hz);
	s->cpu_system_ns = sys * (uint64_t)(1000000000L / hz);
	return 0;
}

/* cpuacct on v1 and hybrid hosts.  v2 has no "cpuacct": the lookup falls
 * to the cgroup's v2 directory, whose cpu.stat carries the usage keys even
 * when the cpu controller is not enabled for the cgroup. */
static int read_cpu(struct reader *r, struct lm_stats *s, struct lm_error *err)
{
	autofd fd = -1;
	if (open_controller(r, "cpuacct", "cpu", &fd, err) < 0)
		return -1;
	if (fd < 0)
		return 0;
	int rc = load(r, fd, "cpuacct.usage", err);
	if (rc != 0)
		return rc < 0 ? -1 : read_cpu_v1(r, fd, s, err);
	if ((rc = load(r, fd, "cpu.stat", err)) <= 0)
		return rc;
	uint64_t usage = 0, user = 0, sys = 0;
	if (keyed(r, "usage_usec", &usage, err) < 0 || keyed(r, "user_usec", &user, err) < 0 ||
	    keyed(r, "system_usec", &sys, err) < 0)
		return -1;
	s->cpu_usage_ns = usage * 1000;
	s->cpu_user_ns = user * 1000;
	s->cpu_system_ns = sys * 1000;
	return 0;
}

static int read_memory(struct reader *r, struct lm_stats *s, struct lm_error *err)
{
	autofd fd = -1;
	if (open_controller(r, "memory", NULL, &fd, err) < 0)
		return -1;
	if (fd < 0)
		return 0;
	int rc = load(r, fd, "memory.usage_in_bytes", err);
	if (rc < 0)
		return -1;
	bool v1 = rc > 0;
	/* v2 without the memory controller enabled has no memory.current. */
	if (!v1 && (rc = load(r, fd, "memory.current", err)) <= 0)
		return rc;
	uint64_t usage = 0, inactive = 0;
	if (single(r, false, &usage, err) < 0)
		return -1;
	if ((rc = load(r, fd, "memory.stat", err)) < 0 ||
	    (rc > 0 && keyed(r, v1 ? "total_inactive_file" : "inactive_file", &inactive, err) < 0))
		return -1;
	/* Cache the kernel can drop at once is not the workload's memory;
	 * docker subtracts it the same way, and keeps usage when it would
	 * go negative (the two files are not read atomically). */
	s->memory_usage = inactive < usage ? usage - inactive : usage;
	if (read_single(r, fd, v1 ? "memory.limit_in_bytes" : "memory.max", true, &s->memory_limit, err) < 0 ||
	    read_single(r, fd, v1 ? "memory.max_usage_in_bytes" : "memory.peak", false, &s->memory_max_usage,
			err) < 0)
		return -1;
	return 0;
}

/* pids.current and pids.max are the same in v1 and v2. */
static int read_pids(struct reader *r, struct lm_stats *s, struct lm_error *err)
{
	autofd fd = -1;
	if (open_controller(r, "pids", NULL, &fd, err) < 0)
		return -1;
	if (fd < 0)
		return 0;
	if (read_single(r, fd, "pids.current", false, &s->pids_current, err) < 0 ||
	    read_single(r, fd, "pids.max", true, &s->pids_limit, err) < 0)
		return -1;
	return 0;
}

/* v1: "MAJ:MIN Op bytes" per device and operation, plus "Total bytes"
 * lines that would count everything twice. */
static int sum_blkio(struct reader *r, struct lm_stats *s, struct lm_error *err)
{
	for (char *save = NULL, *line = strtok_r(r->buf, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		char *op = strchr(line, ' ');
		char *val = op ? strchr(op + 1, ' ') : NULL;
		if (!val)
			continue; /* "Total N" and the "Total 0" of an idle cgroup */
		op++;
		uint64_t *sum, v;
		if ((size_t)(val - op) == 4 && memcmp(op, "Read", 4) == 0)
			sum = &s->io_read_bytes;
		else if ((size_t)(val - op) == 5 && memcmp(op, "Write", 5) == 0)
			sum = &s->io_write_bytes;
		else
			continue;
		if (parse_u64(val + 1, strlen(val + 1), &v) < 0)
			return malformed(r, line, err);
		add_sat(sum, v);
	}
	return 0;
}

/* v2: "MAJ:MIN rbytes=N wbytes=N rios=N ..." per device. */
static int sum_io_stat(struct reader *r, struct lm_stats *s, struct lm_error *err)
{
	for (char *save = NULL, *line = strtok_r(r->buf, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		char *fsave = NULL;
		strtok_r(line, " ", &fsave); /* the device */
		for (char *f = strtok_r(NULL, " ", &fsave); f; f = strtok_r(NULL, " ", &fsave)) {
			uint64_t *sum, v;
			if (strncmp(f, "rbytes=", 7) == 0)
				sum = &s->io_read_bytes;
			else if (strncmp(f, "wbytes=", 7) == 0)
				sum = &s->io_write_bytes;
			else
				continue;
			if (parse_u64(f + 7, strlen(f + 7), &v) < 0)
				return malformed(r, f, err);
			add_sat(sum, v);
		}
	}
	return 0;
}

/* The throttle files count every bio on current kernels, throttled or not
 * (docker reads them too); the recursive one includes child cgroups the
 * workload made. */
static int read_io(struct reader *r, struct lm_stats *s, struct lm_error *err)
{
	autofd fd = -1;
	if (open_controller(r, "blkio", "io", &fd, err) < 0)
		return -1;
	if (fd < 0)
		return 0;
	int rc = load(r, fd, "blkio.throttle.io_service_bytes_recursive", err);
	if (rc == 0)
		rc = load(r, fd, "blkio.throttle.io_service_bytes", err);
	if (rc != 0)
		return rc < 0 ? -1 : sum_blkio(r, s, err);
	if ((rc = load(r, fd, "io.stat", err)) <= 0)
		return rc;
	return sum_io_stat(r, s, err);
}

int lm_stats_read(const char *rel_path, struct lm_stats *out, struct lm_error *err)
{
	struct lm_cgroup cg __attribute__((cleanup(cgroup_freep))) = {0};
	autofree char *buf = malloc(STATS_FILE_MAX + 2);
	struct reader r = {.cg = &cg, .buf = buf};
	struct lm_stats s = {0};
	int rc;

	if (!buf)
		return lm_err(err, ENOMEM, "stats %s: out of memory", rel_path);
	if (lm_cgroup_open(&cg, rel_path, err) < 0)
		return lm_error_prefix(err, "stats");
	/* The timestamp goes right after the CPU counters: the percentage
	 * divides one by the other, and reading memory in between would
	 * skew it. */
	rc = read_cpu(&r, &s, err);
	clock_gettime(CLOCK_REALTIME, &s.read_at);
	if (rc >= 0)
		rc = read_memory(&r, &s, err);
	if (rc >= 0)
		rc = read_pids(&r, &s, err);
	if (rc >= 0)
		rc = read_io(&r, &s, err);
	free(r.dir);
	if (rc < 0)
		return lm_error_prefix(err, "stats %s", cg.rel_path);
	/* open found a directory, but in none of the hierarchies read here:
	 * the cgroup was removed in between (on pure v2 they are one and the
	 * same), or exists only where no stats live. */
	if (r.present == 0 && r.missing > 0)
		return lm_err(err, ENOENT, "stats %s: cgroup does not exist", cg.rel_path);
	s.oom_kills = lm_cgroup_oom_kills(&cg);
	*out = s;
	return 0;
}

double lm_stats_cpu_percent(const struct lm_stats *prev, const struct lm_stats *cur)
{
	if (!prev || !cur || cur->cpu_usage_ns < prev->cpu_usage_ns)
		return 0.0;
	double wall_ns = (double)(cur->read_at.tv_sec - prev->read_at.tv_sec) * 1e9 +
			 (double)(cur->read_at.tv_nsec - prev->read_at.tv_nsec);
	if (wall_ns <= 0)
		return 0.0;
	return (double)(cur->cpu_usage_ns - prev->cpu_usage_ns) / wall_ns * 100.0;
}
