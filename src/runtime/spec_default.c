/* The default config.json written by `lamina oci spec`: what a container
 * gets when nothing else is said (the capability set of reference-agent.md,
 * the usual namespaces and mounts, masked and read-only /proc paths). */
#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include "runtime/spec.h"

static json_t *mount_entry(const char *dest, const char *type, const char *src, const char *opts)
{
	json_t *m = json_pack("{s:s,s:s,s:s}", "destination", dest, "type", type, "source", src);
	if (m && opts) {
		json_t *o = json_array();
		char buf[256];
		snprintf(buf, sizeof(buf), "%s", opts);
		char *save = NULL;
		for (char *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save))
			json_array_append_new(o, json_string(t));
		json_object_set_new(m, "options", o);
	}
	return m;
}

json_t *lm_spec_default(void)
{
	static const char *const caps[] = {"CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER",
					   "CAP_MKNOD", "CAP_NET_RAW", "CAP_SETGID", "CAP_SETUID",
					   "CAP_SETFCAP", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE",
					   "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE"};
	json_t *capl = json_array();
	for (size_t i = 0; i < sizeof(caps) / sizeof(caps[0]); i++)
		json_array_append_new(capl, json_string(caps[i]));
	json_t *mounts = json_array();
	json_array_append_new(mounts, mount_entry("/proc", "proc", "proc", NULL));
	json_array_append_new(mounts, mount_entry("/dev", "tmpfs", "tmpfs", "nosuid,strictatime,mode=755,size=65536k"));
	json_array_append_new(mounts, mount_entry("/dev/pts", "devpts", "devpts",
						  "nosuid,noexec,newinstance,ptmxmode=0666,mode=0620,gid=5"));
	json_array_append_new(mounts, mount_entry("/dev/shm", "tmpfs", "shm", "nosuid,noexec,nodev,mode=1777,size=65536k"));
	json_array_append_new(mounts, mount_entry("/dev/mqueue", "mqueue", "mqueue", "nosuid,noexec,nodev"));
	json_array_append_new(mounts, mount_entry("/sys", "sysfs", "sysfs", "nosuid,noexec,nodev,ro"));
	json_array_append_new(mounts, mount_entry("/sys/fs/cgroup", "cgroup", "cgroup", "nosuid,noexec,nodev,relatime,ro"));
	json_t *spec = json_pack(
		"{s:s,s:{s:b,s:{s:i,s:i},s:[s],s:[s,s],s:s,s:{s:O,s:O,s:O},s:[{s:s,s:i,s:i}],s:b},"
		"s:{s:s,s:b},s:s,s:o,"
		"s:{s:{s:[{s:b,s:s}]},s:[{s:s},{s:s},{s:s},{s:s},{s:s},{s:s}],"
		"s:[s,s,s,s,s,s,s,s,s,s],s:[s,s,s,s,s]}}",
		"ociVersion", "1.2.0",
		"process", "terminal", 0, "user", "uid", 0, "gid", 0, "args", "sh", "env",
		"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "TERM=xterm", "cwd", "/",
		"capabilities", "bounding", capl, "effective", capl, "permitted", capl,
		"rlimits", "type", "RLIMIT_NOFILE", "hard", 1024, "soft", 1024, "noNewPrivileges", 1,
		"root", "path", "rootfs", "readonly", 1,
		"hostname", "lamina", "mounts", mounts,
		"linux", "resources", "devices", "allow", 0, "access", "rwm",
		"namespaces", "type", "pid", "type", "network", "type", "ipc", "type", "uts", "type", "mount",
		"type", "cgroup",
		"maskedPaths", "/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
		"/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/sys/firmware", "/proc/scsi",
		"readonlyPaths", "/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger");
	json_decref(capl);
	return spec;
}
