/* Resource limits for container cgroups: everything lm_cgroup_create writes
 * once the directories exist, kept apart from cgroup.c, which owns the host
 * layout, the paths and the create/open/enter/kill/destroy lifecycle.
 *
 * cg_validate_resources rejects bad or unsupported values before anything is
 * created; cg_apply_resources then writes each controller's files in the
 * hierarchy that owns it: apply_v1 per v1 controller (memory vs memsw
 * ordering, cfs and rt period/quota pairs, cpuset, pids, blkio weight and
 * per-device throttles, device rules) or apply_v2 into the one v2 directory
 * (OCI values converted to v2 files and scales), and the unified map last so
 * that it overrides the converted values.  Nothing here creates or removes a
 * directory: on any error the caller rolls back what it made.
 */
#include "runtime/cgroup_internal.h"

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------- conversions */

uint64_t lm_cgroup_shares_to_weight(uint64_t shares)
{
	if (shares == 0)
		return 0;
	if (shares < 2)
		shares = 2;
	if (shares > 262144)
		shares = 262144;
	return 1 + ((shares - 2) * 9999) / 262142;
}

uint64_t lm_cgroup_blkio_to_io_weight(uint16_t weight)
{
	if (weight == 0)
		return 0;
	if (weight < 10)
		return 1;
	if (weight > 1000)
		return 10000;
	return 1 + ((uint64_t)weight - 10) * 9999 / 990;
}

/* ---------------------------------------------------------------- validation */

static bool swap_is_set(const struct lm_resources *r)
{
	/* 0 means "not set" in runc's reading of the OCI spec; keep that. */
	return r->has_mem_swap && r->mem_swap != 0;
}

static int validate_unified_key(const char *key, struct lm_error *err)
{
	if (!*key || strchr(key, '/') || !strchr(key + 1, '.') || key[0] == '.' || cg_bad_component(key, strlen(key)))
		return lm_err(err, EINVAL, "unified key \"%s\": not a cgroup file name", key);
	return 0;
}

int cg_validate_resources(const struct layout *l, const struct lm_resources *r, struct lm_error *err)
{
	if (r->has_mem_limit && r->mem_limit < -1)
		return lm_err(err, EINVAL, "memory limit %" PRId64 " is negative", r->mem_limit);
	if (swap_is_set(r) && r->mem_swap < -1)
		return lm_err(err, EINVAL, "memory swap %" PRId64 " is negative", r->mem_swap);
	if (swap_is_set(r) && r->mem_swap > 0 && r->has_mem_limit && r->mem_limit > 0 && r->mem_swap < r->mem_limit)
		return lm_err(err, EINVAL,
			      "memory swap %" PRId64 " is below the memory limit %" PRId64
			      " (swap is memory+swap, as in the OCI spec)",
			      r->mem_swap, r->mem_limit);
	if (l->mode == LM_CGROUP_V2 && swap_is_set(r) && r->mem_swap > 0 && !(r->has_mem_limit && r->mem_limit > 0))
		return lm_err(err, EINVAL, "memory swap limit needs a memory limit on cgroup v2");
	if (r->has_mem_swappiness && r->mem_swappiness > 100)
		return lm_err(err, EINVAL, "memory swappiness %" PRId64 " is out of range 0..100", r->mem_swappiness);
	if (l->mode == LM_CGROUP_V2 && ((r->has_cpu_rt_runtime && r->cpu_rt_runtime != 0) ||
					 (r->has_cpu_rt_period && r->cpu_rt_period != 0)))
		return lm_err(err, ENOTSUP, "realtime cpu limits (cpu.realtimeRuntime/realtimePeriod) are not supported on cgroup v2");
	for (size_t i = 0; i < r->n_devices; i++) {
		const struct lm_device_rule *d = &r->devices[i];
		if (d->type != 'a' && d->type != 'c' && d->type != 'b')
			return lm_err(err, EINVAL, "device rule %zu: type '%c' is not a, c or b", i, d->type);
		if (d->access && (!*d->access || d->access[strspn(d->access, "rwm")]))
			return lm_err(err, EINVAL, "device rule %zu: access \"%s\" is not a subset of rwm", i, d->access);
	}
	if (r->n_unified > 0 && !l->v2)
		return lm_err(err, ENOTSUP, "unified resources need a cgroup v2 hierarchy (this host has cgroup v1 only)");
	for (size_t i = 0; i < r->n_unified; i++)
		if (validate_unified_key(r->unified[i].key, err) < 0)
			return -1;
	return 0;
}

/* ---------------------------------------------------------------- v1 limits */

static int cg_write_i64(const char *dir, const char *file, int64_t v, struct lm_error *err)
{
	char buf[32];
	snprintf(buf, sizeof(buf), "%" PRId64, v);
	return cg_write(dir, file, buf, err);
}

static int cg_write_u64(const char *dir, const char *file, uint64_t v, struct lm_error *err)
{
	char buf[32];
	snprintf(buf, sizeof(buf), "%" PRIu64, v);
	return cg_write(dir, file, buf, err);
}

static int v1_memory(const char *dir, const struct lm_resources *r, struct lm_error *err)
{
	bool has_memsw = cg_file_exists(dir, "memory.memsw.limit_in_bytes");
	bool set_limit = r->has_mem_limit;
	bool set_swap = swap_is_set(r);
	int64_t swap = r->mem_swap;
	if (set_limit && r->mem_limit == -1 && !set_swap) {
		/* "unlimited memory" means unlimited memory+swap too, or a
		 * leftover memsw limit would silently keep capping it */
		set_swap = true;
		swap = -1;
	}
	if (set_swap && !has_memsw) {
		if (swap > 0)
			return lm_err(err, ENOTSUP,
				      "memory swap limit %" PRId64 " requested, but swap accounting is disabled on this "
				      "host (no memory.memsw.limit_in_bytes; boot with swapaccount=1)",
				      swap);
		set_swap = false; /* unlimited is all there is without swap accounting */
	}
	if (set_limit && set_swap) {
		/* The kernel keeps limit <= memsw after every write.  Raising
		 * memsw first is safe when the new memsw stays above the current
		 * limit; otherwise lower the limit first. */
		char cur[32];
		if (cg_read_line(dir, "memory.limit_in_bytes", cur, sizeof(cur), err) < 0)
			return -1;
		uint64_t cur_limit = strtoull(cur, NULL, 10);
		bool swap_first = swap == -1 || (uint64_t)swap >= cur_limit;
		if (swap_first) {
			if (cg_write_i64(dir, "memory.memsw.limit_in_bytes", swap, err) < 0 ||
			    cg_write_i64(dir, "memory.limit_in_bytes", r->mem_limit, err) < 0)
				return -1;
		} else {
			if (cg_write_i64(dir, "memory.limit_in_bytes", r->mem_limit, err) < 0 ||
			    cg_write_i64(dir, "memory.memsw.limit_in_bytes", swap, err) < 0)
				return -1;
		}
	} else if (set_limit) {
		if (cg_write_i64(dir, "memory.limit_in_bytes", r->mem_limit, err) < 0)
			return -1;
	} else if (set_swap) {
		if (cg_write_i64(dir, "memory.memsw.limit_in_bytes", swap, err) < 0)
			return -1;
	}
	if (r->has_mem_reservation && cg_write_i64(dir, "memory.soft_limit_in_bytes", r->mem_reservation, err) < 0)
		return -1;
	/* Negative swappiness is the "unset" some tools send. */
	if (r->has_mem_swappiness && r->mem_swappiness >= 0 &&
	    cg_write_i64(dir, "memory.swappiness", r->mem_swappiness, err) < 0)
		return -1;
	if (r->disable_oom_killer && cg_write(dir, "memory.oom_control", "1", err) < 0)
		return -1;
	return 0;
}

/* Two values whose ratio the kernel checks after each write: if writing a
 * then b is rejected part-way, b then a usually fits. */
static int write_pair(const char *dir, const char *fa, const char *va, const char *fb, const char *vb,
		      struct lm_error *err)
{
	if (cg_write(dir, fa, va, err) == 0)
		return cg_write(dir, fb, vb, err);
	if (err->code != EINVAL && err->code != EBUSY)
		return -1;
	struct lm_error first = *err;
	if (cg_write(dir, fb, vb, err) == 0 && cg_write(dir, fa, va, err) == 0)
		return 0;
	*err = first;
	return -1;
}

static int v1_cpu(const char *dir, const struct lm_resources *r, struct lm_error *err)
{
	char a[32], b[32];
	if (r->has_cpu_shares && r->cpu_shares != 0 && cg_write_u64(dir, "cpu.shares", r->cpu_shares, err) < 0)
		return -1;
	bool quota = r->has_cpu_quota && r->cpu_quota != 0;
	bool period = r->has_cpu_period && r->cpu_period != 0;
	snprintf(a, sizeof(a), "%" PRIu64, r->cpu_period);
	snprintf(b, sizeof(b), "%" PRId64, r->cpu_quota > 0 ? r->cpu_quota : -1);
	if (period && quota) {
		if (write_pair(dir, "cpu.cfs_period_us", a, "cpu.cfs_quota_us", b, err) < 0)
			return -1;
	} else if (period) {
		if (cg_write(dir, "cpu.cfs_period_us", a, err) < 0)
			return -1;
	} else if (quota) {
		if (cg_write(dir, "cpu.cfs_quota_us", b, err) < 0)
			return -1;
	}
	bool rt_period = r->has_cpu_rt_period && r->cpu_rt_period != 0;
	bool rt_runtime = r->has_cpu_rt_runtime && r->cpu_rt_runtime != 0;
	snprintf(a, sizeof(a), "%" PRIu64, r->cpu_rt_period);
	snprintf(b, sizeof(b), "%" PRId64, r->cpu_rt_runtime);
	if (rt_period && rt_runtime)
		return write_pair(dir, "cpu.rt_period_us", a, "cpu.rt_runtime_us", b, err);
	if (rt_period)
		return cg_write(dir, "cpu.rt_period_us", a, err);
	if (rt_runtime)
		return cg_write(dir, "cpu.rt_runtime_us", b, err);
	return 0;
}

static void device_rule_text(const struct lm_device_rule *d, char *buf, size_t size)
{
	if (d->type == 'a') {
		snprintf(buf, size, "a");
		return;
	}
	char maj[24] = "*", min[24] = "*";
	if (d->major >= 0)
		snprintf(maj, sizeof(maj), "%" PRId64, d->major);
	if (d->minor >= 0)
		snprintf(min, sizeof(min), "%" PRId64, d->minor);
	snprintf(buf, size, "%c %s:%s %s", d->type, maj, min, d->access ? d->access : "rwm");
}

static bool is_deny_all(const struct lm_device_rule *d)
{
	return !d->allow && d->type == 'a' && (!d->access || strcmp(d->access, "rwm") == 0);
}

static bool has_blkio_devices(const struct lm_resources *r)
{
	size_t n = r->n_weight_devices;
	for (int t = 0; t < LM_THROTTLE__COUNT; t++)
		n += r->n_throttle[t];
	return n > 0;
}

/* Per-device throttles and weights: one "major:minor value" line each. */
static int v1_blkio_devices(const struct layout *l, const char *rel, const struct lm_resources *r,
			    struct lm_error *err)
{
	static const char *const files[LM_THROTTLE__COUNT] = {
		[LM_THROTTLE_READ_BPS] = "blkio.throttle.read_bps_device",
		[LM_THROTTLE_WRITE_BPS] = "blkio.throttle.write_bps_device",
		[LM_THROTTLE_READ_IOPS] = "blkio.throttle.read_iops_device",
		[LM_THROTTLE_WRITE_IOPS] = "blkio.throttle.write_iops_device",
	};
	char dir[PATH_MAX], line[96];
	if (!has_blkio_devices(r))
		return 0;
	if (!cg_controller_dir(l, rel, "blkio", dir, sizeof(dir)))
		return lm_err(err, ENOTSUP, "blkio device limits requested, but the blkio controller is not mounted");
	for (int t = 0; t < LM_THROTTLE__COUNT; t++) {
		for (size_t i = 0; i < r->n_throttle[t]; i++) {
			const struct lm_blkio_device *d = &r->throttle[t][i];
			snprintf(line, sizeof(line), "%" PRId64 ":%" PRId64 " %" PRIu64, d->major, d->minor, d->value);
			if (cg_write(dir, files[t], line, err) < 0)
				return -1;
		}
	}
	if (r->n_weight_devices) {
		const char *file = cg_file_exists(dir, "blkio.weight_device") ? "blkio.weight_device"
				   : cg_file_exists(dir, "blkio.bfq.weight_device") ? "blkio.bfq.weight_device" : NULL;
		if (!file)
			return lm_err(err, ENOTSUP, "blkio weightDevice requested, but this host has no per-device blkio weights");
		for (size_t i = 0; i < r->n_weight_devices; i++) {
			const struct lm_blkio_device *d = &r->weight_devices[i];
			snprintf(line, sizeof(line), "%" PRId64 ":%" PRId64 " %" PRIu64, d->major, d->minor, d->value);
			if (cg_write(dir, file, line, err) < 0)
				return -1;
		}
	}
	return 0;
}

static int v1_devices(const char *dir, const struct lm_resources *r, struct lm_error *err)
{
	size_t i = 0;
	/* Runtimes start from "deny everything" so that the allow rules that
	 * follow are the whole list, not additions to what the parent allows. */
	if (r->n_devices > 0 && is_deny_all(&r->devices[0])) {
		if (cg_write(dir, "devices.deny", "a", err) < 0)
			return -1;
		i = 1;
	}
	for (; i < r->n_devices; i++) {
		char rule[80];
		device_rule_text(&r->devices[i], rule, sizeof(rule));
		if (cg_write(dir, r->devices[i].allow ? "devices.allow" : "devices.deny", rule, err) < 0)
			return -1;
	}
	return 0;
}

static int apply_v1(const struct layout *l, const char *rel, const struct lm_resources *r, struct lm_error *err)
{
	char dir[PATH_MAX];
	bool want_mem = r->has_mem_limit || swap_is_set(r) || r->has_mem_reservation ||
			(r->has_mem_swappiness && r->mem_swappiness >= 0) || r->disable_oom_killer;
	if (want_mem) {
		if (!cg_controller_dir(l, rel, "memory", dir, sizeof(dir)))
			return lm_err(err, ENOTSUP, "memory limits requested, but the memory controller is not mounted");
		if (v1_memory(dir, r, err) < 0)
			return -1;
	}
	bool want_cpu = (r->has_cpu_shares && r->cpu_shares) || (r->has_cpu_quota && r->cpu_quota) ||
			(r->has_cpu_period && r->cpu_period) || (r->has_cpu_rt_runtime && r->cpu_rt_runtime) ||
			(r->has_cpu_rt_period && r->cpu_rt_period);
	if (want_cpu) {
		if (!cg_controller_dir(l, rel, "cpu", dir, sizeof(dir)))
			return lm_err(err, ENOTSUP, "cpu limits requested, but the cpu controller is not mounted");
		if (v1_cpu(dir, r, err) < 0)
			return -1;
	}
	if (r->cpuset_cpus || r->cpuset_mems) {
		if (!cg_controller_dir(l, rel, "cpuset", dir, sizeof(dir)))
			return lm_err(err, ENOTSUP, "cpuset requested, but the cpuset controller is not mounted");
		if (r->cpuset_cpus && cg_write(dir, "cpuset.cpus", r->cpuset_cpus, err) < 0)
			return -1;
		if (r->cpuset_mems && cg_write(dir, "cpuset.mems", r->cpuset_mems, err) < 0)
			return -1;
	}
	if (r->has_pids_limit) {
		if (!cg_controller_dir(l, rel, "pids", dir, sizeof(dir)))
			return lm_err(err, ENOTSUP, "pids limit requested, but the pids controller is not mounted");
		int rc = r->pids_limit > 0 ? cg_write_i64(dir, "pids.max", r->pids_limit, err)
					   : cg_write(dir, "pids.max", "max", err);
		if (rc < 0)
			return -1;
	}
	if (r->has_blkio_weight && r->blkio_weight != 0) {
		if (!cg_controller_dir(l, rel, "blkio", dir, sizeof(dir)))
			return lm_err(err, ENOTSUP, "blkio weight requested, but the blkio controller is not mounted");
		/* CFQ's blkio.weight is gone from current kernels; BFQ has its own. */
		const char *file = cg_file_exists(dir, "blkio.weight") ? "blkio.weight"
				   : cg_file_exists(dir, "blkio.bfq.weight") ? "blkio.bfq.weight" : NULL;
		if (!file)
			return lm_err(err, ENOTSUP, "blkio weight requested, but neither blkio.weight nor blkio.bfq.weight exists on this host");
		if (cg_write_u64(dir, file, r->blkio_weight, err) < 0)
			return -1;
	}
	if (v1_blkio_devices(l, rel, r, err) < 0)
		return -1;
	if (r->n_devices > 0) {
		if (!cg_controller_dir(l, rel, "devices", dir, sizeof(dir)))
			return lm_err(err, ENOTSUP, "device rules given, but the devices controller is not mounted");
		if (v1_devices(dir, r, err) < 0)
			return -1;
	}
	return 0;
}

/* ---------------------------------------------------------------- v2 limits */

/* A missing v2 file almost always means the controller was not delegated. */
static int v2_write(const char *dir, const char *file, const char *value, struct lm_error *err)
{
	if (cg_write(dir, file, value, err) == 0)
		return 0;
	if (err->code == ENOENT) {
		char controller[32];
		snprintf(controller, sizeof(controller), "%.*s", (int)strcspn(file, "."), file);
		return lm_err(err, ENOENT, "write %s=%s: the %s controller is not enabled for this cgroup", file,
			      value, controller);
	}
	return -1;
}

static int v2_io_devices(const char *dir, const struct lm_resources *r, struct lm_error *err)
{
	static const char *const keys[LM_THROTTLE__COUNT] = {
		[LM_THROTTLE_READ_BPS] = "rbps", [LM_THROTTLE_WRITE_BPS] = "wbps",
		[LM_THROTTLE_READ_IOPS] = "riops", [LM_THROTTLE_WRITE_IOPS] = "wiops",
	};
	char line[96];
	for (int t = 0; t < LM_THROTTLE__COUNT; t++) {
		for (size_t i = 0; i < r->n_throttle[t]; i++) {
			const struct lm_blkio_device *d = &r->throttle[t][i];
			snprintf(line, sizeof(line), "%" PRId64 ":%" PRId64 " %s=%" PRIu64, d->major, d->minor,
				 keys[t], d->value);
			if (v2_write(dir, "io.max", line, err) < 0)
				return -1;
		}
	}
	for (size_t i = 0; i < r->n_weight_devices; i++) {
		const struct lm_blkio_device *d = &r->weight_devices[i];
		bool bfq = cg_file_exists(dir, "io.bfq.weight");
		snprintf(line, sizeof(line), "%" PRId64 ":%" PRId64 " %" PRIu64, d->major, d->minor,
			 bfq ? d->value : lm_cgroup_blkio_to_io_weight((uint16_t)d->value));
		if (v2_write(dir, bfq ? "io.bfq.weight" : "io.weight", line, err) < 0)
			return -1;
	}
	return 0;
}


static void fmt_max(char *buf, size_t size, int64_t v)
{
	if (v < 0)
		snprintf(buf, size, "max");
	else
		snprintf(buf, size, "%" PRId64, v);
}

static int apply_v2(const char *dir, const struct lm_resources *r, struct lm_error *err)
{
	char v[64];
	if (r->has_mem_limit) {
		fmt_max(v, sizeof(v), r->mem_limit);
		if (v2_write(dir, "memory.max", v, err) < 0)
			return -1;
	}
	if (r->has_mem_reservation) {
		fmt_max(v, sizeof(v), r->mem_reservation);
		if (v2_write(dir, "memory.low", v, err) < 0)
			return -1;
	}
	/* OCI swap is memory+swap (v1 semantics); v2 limits swap alone. */
	int64_t swap = 0;
	bool set_swap = false;
	if (swap_is_set(r)) {
		set_swap = true;
		swap = r->mem_swap < 0 ? -1 : r->mem_swap - r->mem_limit;
	} else if (r->has_mem_limit && r->mem_limit == -1) {
		set_swap = true;
		swap = -1;
	}
	if (set_swap) {
		if (!cg_file_exists(dir, "memory.swap.max")) {
			if (swap >= 0 && swap_is_set(r))
				return lm_err(err, ENOTSUP, "memory swap limit requested, but memory.swap.max does not exist (swap accounting disabled?)");
		} else {
			fmt_max(v, sizeof(v), swap);
			if (v2_write(dir, "memory.swap.max", v, err) < 0)
				return -1;
		}
	}
	/* swappiness and the OOM-killer switch have no v2 equivalent; runc
	 * ignores them there too, and refusing would break common configs. */
	if (r->has_cpu_shares && r->cpu_shares != 0) {
		snprintf(v, sizeof(v), "%" PRIu64, lm_cgroup_shares_to_weight(r->cpu_shares));
		if (v2_write(dir, "cpu.weight", v, err) < 0)
			return -1;
	}
	bool quota = r->has_cpu_quota && r->cpu_quota != 0;
	bool period = r->has_cpu_period && r->cpu_period != 0;
	if (quota || period) {
		/* cpu.max takes "quota [period]": a period-only update keeps the
		 * current quota, as it does on v1, instead of lifting it. */
		char cur[64] = "max";
		if (!quota && cg_read_line(dir, "cpu.max", cur, sizeof(cur), err) == 0)
			cur[strcspn(cur, " ")] = '\0';
		int n = !quota ? snprintf(v, sizeof(v), "%s", cur)
			: r->cpu_quota > 0 ? snprintf(v, sizeof(v), "%" PRId64, r->cpu_quota)
					   : snprintf(v, sizeof(v), "max");
		if (period && n > 0 && (size_t)n < sizeof(v))
			snprintf(v + n, sizeof(v) - (size_t)n, " %" PRIu64, r->cpu_period);
		if (v2_write(dir, "cpu.max", v, err) < 0)
			return -1;
	}
	if (r->cpuset_cpus && v2_write(dir, "cpuset.cpus", r->cpuset_cpus, err) < 0)
		return -1;
	if (r->cpuset_mems && v2_write(dir, "cpuset.mems", r->cpuset_mems, err) < 0)
		return -1;
	if (r->has_pids_limit) {
		fmt_max(v, sizeof(v), r->pids_limit > 0 ? r->pids_limit : -1);
		if (v2_write(dir, "pids.max", v, err) < 0)
			return -1;
	}
	if (r->has_blkio_weight && r->blkio_weight != 0) {
		/* BFQ keeps blkio's 1..1000 scale; io.weight is 1..10000. */
		if (cg_file_exists(dir, "io.bfq.weight")) {
			snprintf(v, sizeof(v), "%u", (unsigned)r->blkio_weight);
			if (v2_write(dir, "io.bfq.weight", v, err) < 0)
				return -1;
		} else {
			snprintf(v, sizeof(v), "%" PRIu64, lm_cgroup_blkio_to_io_weight(r->blkio_weight));
			if (v2_write(dir, "io.weight", v, err) < 0)
				return -1;
		}
	}
	if (v2_io_devices(dir, r, err) < 0)
		return -1;
	/* Device rules need an eBPF program on v2 (lm_cgroup_device_filter_supported). */
	return 0;
}

/* The unified map last, so that it overrides the translated values. */
static int apply_unified(const struct layout *l, const char *rel, const struct lm_resources *r,
			 struct lm_error *err)
{
	char dir[PATH_MAX];
	if (r->n_unified == 0)
		return 0;
	if (!cg_v2_dir(l, rel, dir, sizeof(dir)))
		return lm_err(err, ENOTSUP, "unified resources need a cgroup v2 hierarchy");
	for (size_t i = 0; i < r->n_unified; i++) {
		const char *key = r->unified[i].key;
		if (!cg_file_exists(dir, key) && l->mode == LM_CGROUP_HYBRID) {
			char controller[64];
			snprintf(controller, sizeof(controller), "%.*s", (int)strcspn(key, "."), key);
			if (strcmp(controller, "cgroup") != 0)
				cg_v2_delegate(l->v2, rel, controller);
		}
		if (!cg_file_exists(dir, key)) {
			if (l->mode == LM_CGROUP_HYBRID)
				return lm_err(err, ENOENT,
					      "unified key \"%s\": no such file in the cgroup v2 hierarchy at %s "
					      "(hybrid host: the v1 hierarchies own the other controllers)",
					      key, l->v2);
			return lm_err(err, ENOENT, "unified key \"%s\": no such cgroup file (unknown key, or controller not enabled)", key);
		}
		if (cg_write(dir, key, r->unified[i].value, err) < 0)
			return lm_error_prefix(err, "unified key \"%s\"", key);
	}
	return 0;
}

/* ---------------------------------------------------------------- entry point */

int cg_apply_resources(const struct layout *l, const char *rel, const struct lm_resources *r, struct lm_error *err)
{
	int rc;
	char dir[PATH_MAX];
	if (l->mode == LM_CGROUP_V2)
		rc = cg_v2_dir(l, rel, dir, sizeof(dir)) ? apply_v2(dir, r, err)
							 : lm_err(err, ENAMETOOLONG, "cgroup path too long");
	else
		rc = apply_v1(l, rel, r, err);
	if (rc == 0)
		rc = apply_unified(l, rel, r, err);
	return rc;
}
