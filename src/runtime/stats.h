/* Resource usage of a container's cgroup (for `lamina stats`), on cgroup
 * v1, v2 and hybrid hosts.
 *
 * Each controller is read from the hierarchy that owns it on this host
 * (runtime/cgroup.h finds the directory); the file names there say which
 * format to expect, so a hybrid host that keeps memory in v1 and something
 * else in v2 needs no special case.  Values follow docker stats: memory
 * usage leaves out the inactive page cache, limits report 0 for
 * "unlimited", CPU time is in nanoseconds on every layout.
 */
#pragma once

#include <stdint.h>
#include <time.h>

#include "util/error.h"

struct lm_stats {
	uint64_t cpu_usage_ns;      /* total CPU time (v1 cpuacct.usage; v2 cpu.stat usage_usec*1000) */
	uint64_t cpu_user_ns, cpu_system_ns;  /* where available, else 0 */
	uint64_t memory_usage;      /* bytes; like docker: usage minus inactive_file (v2: memory.current - inactive_file from memory.stat; v1: memory.usage_in_bytes - total_inactive_file) */
	uint64_t memory_limit;      /* bytes; 0 = unlimited (v1 huge sentinel values and v2 "max" map to 0) */
	uint64_t memory_max_usage;  /* v1 max_usage_in_bytes, v2 memory.peak if present, else 0 */
	uint64_t pids_current;
	uint64_t pids_limit;        /* 0 = unlimited ("max") */
	uint64_t oom_kills;         /* via lm_cgroup_oom_kills */
	uint64_t io_read_bytes, io_write_bytes;  /* v1 blkio.throttle.io_service_bytes(_recursive) Read/Write totals; v2 io.stat rbytes/wbytes sums */
	struct timespec read_at;    /* CLOCK_REALTIME when read (taken right after the CPU counters) */
};

/* rel_path: the cgroup's relative path as the runtime records it (e.g.
 * "/lamina/<id>").  A controller that is not mounted, or whose files are
 * absent (a v2 controller not enabled for the cgroup, memory.peak on older
 * kernels), leaves its fields 0.  A cgroup that does not exist is ENOENT;
 * a file too large for the read buffer (64 KiB) is EFBIG and one whose
 * content is not what the kernel writes is EINVAL, naming the file.
 * *out is written only on success. */
int lm_stats_read(const char *rel_path, struct lm_stats *out, struct lm_error *err);

/* CPU percentage between two samples as docker computes it: delta cpu /
 * delta wall time * 100 (so 2 busy cores = 200%).  0 when the interval is
 * not positive or the CPU counter went backwards (the cgroup was recreated). */
double lm_stats_cpu_percent(const struct lm_stats *prev, const struct lm_stats *cur);

/* Parse helper exposed for unit tests: the value of the line "key value"
 * in a flat-keyed file (memory.stat, cpu.stat).  The key must match a whole
 * word at the start of a line ("usage" does not match "usage_usec").
 * 0 and *out set; -ENOENT when no line has the key; -EINVAL when its value
 * is not a decimal number that fits in 64 bits (*out untouched). */
int lm_stats_parse_keyed(const char *text, const char *key, uint64_t *out);
