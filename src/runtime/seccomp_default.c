/* The built-in seccomp profile of lamina's containers (see seccomp.h).
 *
 * Docker's default profile is an allow list; this one has the same effect
 * written the other way round: everything is allowed except what Docker's
 * list leaves out, and each group of denied syscalls names the capabilities
 * that bring it back, as Docker's "includes.caps" do.  A deny list keeps the
 * program short (the kernel's per-syscall action cache then skips the filter
 * for every allowed syscall) and lets syscalls newer than the profile work.
 *
 * Where Docker's list is argument-dependent the rules are too: clone and
 * unshare with a namespace flag are denied without CAP_SYS_ADMIN (one rule
 * per flag: a seccomp rule can only test a masked value for equality), clone3
 * says ENOSYS (its flags live in memory a filter cannot read, so glibc falls
 * back to clone), and socket(AF_VSOCK) is denied.  ptrace and
 * process_vm_readv/writev stay allowed, as in Docker on kernels >= 4.8: the
 * kernel's own access check keeps the process away from others' processes.
 */
#include <errno.h>
#include <jansson.h>
#include <linux/capability.h>
#include <sched.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "runtime/seccomp.h"
#include "runtime/spec.h"

#ifndef CLONE_NEWTIME
#define CLONE_NEWTIME 0x00000080
#endif
#define AF_VSOCK_FAMILY 40

#define NO_CAP (-1)

struct deny_group {
	int caps[2]; /* any of these, when granted, allows the group; NO_CAP: none */
	const char *const *names;
};

static const char *const always[] = {
	"add_key", "keyctl", "request_key",              /* kernel keyring */
	"kexec_load", "kexec_file_load",                  /* replacing the kernel */
	"swapon", "swapoff", "pivot_root", "userfaultfd", "uselib", "nfsservctl", "vm86", "vm86old",
	"_sysctl", "sysfs", "ustat", "create_module", "get_kernel_syms", "query_module", NULL,
};
static const char *const sys_admin[] = {
	"mount", "umount", "umount2", "fsopen", "fsconfig", "fsmount", "fspick", "move_mount", "open_tree",
	"mount_setattr", "setns", "quotactl", "quotactl_fd", "fanotify_init", "lookup_dcookie", "sethostname",
	"setdomainname", NULL,
};
static const char *const bpf[] = {"bpf", NULL};
static const char *const perf[] = {"perf_event_open", NULL};
static const char *const syslog_calls[] = {"syslog", NULL};
static const char *const boot[] = {"reboot", NULL};
static const char *const module[] = {"init_module", "finit_module", "delete_module", NULL};
static const char *const pacct[] = {"acct", NULL};
static const char *const ptrace[] = {"kcmp", "pidfd_getfd", "process_madvise", NULL};
static const char *const rawio[] = {"iopl", "ioperm", NULL};
static const char *const time_calls[] = {"settimeofday", "stime", "clock_settime", "clock_settime64", NULL};
static const char *const tty[] = {"vhangup", NULL};
static const char *const nice[] = {"get_mempolicy", "mbind", "set_mempolicy", "set_mempolicy_home_node",
				   "move_pages", "migrate_pages", NULL};
static const char *const dac[] = {"open_by_handle_at", NULL};
static const char *const chroot_calls[] = {"chroot", NULL};

static const struct deny_group groups[] = {
	{{NO_CAP, NO_CAP}, always},
	{{CAP_SYS_ADMIN, NO_CAP}, sys_admin},
	{{CAP_SYS_ADMIN, CAP_BPF}, bpf},
	{{CAP_SYS_ADMIN, CAP_PERFMON}, perf},
	{{CAP_SYS_ADMIN, CAP_SYSLOG}, syslog_calls},
	{{CAP_SYS_BOOT, NO_CAP}, boot},
	{{CAP_SYS_MODULE, NO_CAP}, module},
	{{CAP_SYS_PACCT, NO_CAP}, pacct},
	{{CAP_SYS_PTRACE, NO_CAP}, ptrace},
	{{CAP_SYS_RAWIO, NO_CAP}, rawio},
	{{CAP_SYS_TIME, NO_CAP}, time_calls},
	{{CAP_SYS_TTY_CONFIG, NO_CAP}, tty},
	{{CAP_SYS_NICE, NO_CAP}, nice},
	{{CAP_DAC_READ_SEARCH, NO_CAP}, dac},
	{{CAP_SYS_CHROOT, NO_CAP}, chroot_calls},
};

/* The namespace flags of clone(2); unshare(2) also takes CLONE_NEWTIME
 * (for clone the low byte is the exit signal). */
static const uint64_t ns_flags[] = {CLONE_NEWNS, CLONE_NEWCGROUP, CLONE_NEWUTS, CLONE_NEWIPC,
				    CLONE_NEWUSER, CLONE_NEWPID, CLONE_NEWNET};

/* The native architecture and the ones its kernel also runs, as in Docker's archMap. */
static json_t *architectures(void)
{
#if defined(__x86_64__)
	return json_pack("[s,s,s]", "SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32");
#elif defined(__aarch64__)
	return json_pack("[s,s]", "SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM");
#elif defined(__s390x__)
	return json_pack("[s,s]", "SCMP_ARCH_S390X", "SCMP_ARCH_S390");
#elif defined(__riscv) && __riscv_xlen == 64
	return json_pack("[s]", "SCMP_ARCH_RISCV64");
#elif defined(__powerpc64__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
	return json_pack("[s]", "SCMP_ARCH_PPC64LE");
#elif defined(__i386__)
	return json_pack("[s]", "SCMP_ARCH_X86");
#elif defined(__arm__)
	return json_pack("[s]", "SCMP_ARCH_ARM");
#else
	return json_array(); /* the native one only: libseccomp always adds it */
#endif
}

static json_t *deny(json_t *names, int errno_ret)
{
	return json_pack("{s:o,s:s,s:i}", "names", names, "action", "SCMP_ACT_ERRNO", "errnoRet", errno_ret);
}

/* "name" denied when its argument arg has any of the namespace flags. */
static int deny_ns_flags(json_t *rules, const char *name, int arg, bool with_time)
{
	size_t n = sizeof(ns_flags) / sizeof(ns_flags[0]);
	for (size_t i = 0; i < n + (with_time ? 1 : 0); i++) {
		uint64_t f = i < n ? ns_flags[i] : CLONE_NEWTIME;
		json_t *r = deny(json_pack("[s]", name), EPERM);
		if (!r || json_object_set_new(r, "args", json_pack("[{s:i,s:I,s:I,s:s}]", "index", arg, "value",
								   (json_int_t)f, "valueTwo", (json_int_t)f,
								   "op", "SCMP_CMP_MASKED_EQ")) < 0 ||
		    json_array_append_new(rules, r) < 0)
			return -1;
	}
	return 0;
}

int lm_seccomp_default_profile(const char *const *caps, json_t **out, struct lm_error *err)
{
	uint64_t granted = 0;
	for (size_t i = 0; caps && caps[i]; i++) {
		int c = lm_cap_from_name(caps[i]);
		if (c < 0)
			return lm_err(err, EINVAL, "seccomp default profile: unknown capability \"%s\"", caps[i]);
		granted |= 1ULL << c;
	}
#define HAS(c) ((c) != NO_CAP && (granted & (1ULL << (c))))
	json_t *rules = json_array(), *denied = json_array();
	bool ok = rules && denied;
	for (size_t g = 0; ok && g < sizeof(groups) / sizeof(groups[0]); g++) {
		if (HAS(groups[g].caps[0]) || HAS(groups[g].caps[1]))
			continue;
		for (size_t i = 0; ok && groups[g].names[i]; i++)
			ok = json_array_append_new(denied, json_string(groups[g].names[i])) == 0;
	}
	if (ok) {
		ok = json_array_append_new(rules, deny(denied, EPERM)) == 0;
		denied = NULL;
	}
	if (ok && !HAS(CAP_SYS_ADMIN)) {
#if defined(__s390x__) || defined(__s390__)
		int clone_flags_arg = 1; /* s390 swaps clone's first two arguments */
#else
		int clone_flags_arg = 0;
#endif
		ok = deny_ns_flags(rules, "clone", clone_flags_arg, false) == 0 &&
		     deny_ns_flags(rules, "unshare", 0, true) == 0 &&
		     json_array_append_new(rules, deny(json_pack("[s]", "clone3"), ENOSYS)) == 0;
	}
	if (ok) {
		json_t *r = deny(json_pack("[s]", "socket"), EPERM);
		ok = r && json_object_set_new(r, "args", json_pack("[{s:i,s:i,s:s}]", "index", 0, "value",
								  AF_VSOCK_FAMILY, "op", "SCMP_CMP_EQ")) == 0 &&
		     json_array_append_new(rules, r) == 0;
	}
#undef HAS
	json_decref(denied);
	json_t *profile = ok ? json_pack("{s:s,s:o,s:o}", "defaultAction", "SCMP_ACT_ALLOW", "architectures",
					 architectures(), "syscalls", rules)
			     : NULL;
	if (!profile) {
		if (!ok)
			json_decref(rules);
		return lm_err(err, ENOMEM, "seccomp default profile: out of memory");
	}
	*out = profile;
	return 0;
}
