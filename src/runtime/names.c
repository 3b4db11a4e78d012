/* Names of signals, capabilities and resource limits.
 *
 * The tables are our own rather than libcap's cap_from_name() or the libc
 * signal lists, so that what a config or the command line may say does not
 * change with the library version installed on the host.  Lookups are
 * case-insensitive and the "SIG", "CAP_" and "RLIMIT_" prefixes are optional:
 * config files use the full upper-case form, people on a command line often
 * do not.
 */
#include "runtime/spec.h"

#include <limits.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

/* Linux has 64 signals on every architecture we build for. */
#define LM_SIG_MAX 64

struct named_value {
	const char *name;
	int value;
};

static const struct named_value signal_names[] = {
	{ "HUP", SIGHUP },       { "INT", SIGINT },       { "QUIT", SIGQUIT },
	{ "ILL", SIGILL },       { "TRAP", SIGTRAP },     { "ABRT", SIGABRT },
	{ "IOT", SIGIOT },       { "BUS", SIGBUS },       { "FPE", SIGFPE },
	{ "KILL", SIGKILL },     { "USR1", SIGUSR1 },     { "SEGV", SIGSEGV },
	{ "USR2", SIGUSR2 },     { "PIPE", SIGPIPE },     { "ALRM", SIGALRM },
	{ "TERM", SIGTERM },     { "STKFLT", SIGSTKFLT }, { "CHLD", SIGCHLD },
	{ "CLD", SIGCHLD },      { "CONT", SIGCONT },     { "STOP", SIGSTOP },
	{ "TSTP", SIGTSTP },     { "TTIN", SIGTTIN },     { "TTOU", SIGTTOU },
	{ "URG", SIGURG },       { "XCPU", SIGXCPU },     { "XFSZ", SIGXFSZ },
	{ "VTALRM", SIGVTALRM }, { "PROF", SIGPROF },     { "WINCH", SIGWINCH },
	{ "IO", SIGIO },         { "POLL", SIGPOLL },     { "PWR", SIGPWR },
	{ "SYS", SIGSYS },
};

/* Indexed by capability number; the kernel's numbering is ABI and never changes. */
static const char *const cap_names[] = {
	"CAP_CHOWN",
	"CAP_DAC_OVERRIDE",
	"CAP_DAC_READ_SEARCH",
	"CAP_FOWNER",
	"CAP_FSETID",
	"CAP_KILL",
	"CAP_SETGID",
	"CAP_SETUID",
	"CAP_SETPCAP",
	"CAP_LINUX_IMMUTABLE",
	"CAP_NET_BIND_SERVICE",
	"CAP_NET_BROADCAST",
	"CAP_NET_ADMIN",
	"CAP_NET_RAW",
	"CAP_IPC_LOCK",
	"CAP_IPC_OWNER",
	"CAP_SYS_MODULE",
	"CAP_SYS_RAWIO",
	"CAP_SYS_CHROOT",
	"CAP_SYS_PTRACE",
	"CAP_SYS_PACCT",
	"CAP_SYS_ADMIN",
	"CAP_SYS_BOOT",
	"CAP_SYS_NICE",
	"CAP_SYS_RESOURCE",
	"CAP_SYS_TIME",
	"CAP_SYS_TTY_CONFIG",
	"CAP_MKNOD",
	"CAP_LEASE",
	"CAP_AUDIT_WRITE",
	"CAP_AUDIT_CONTROL",
	"CAP_SETFCAP",
	"CAP_MAC_OVERRIDE",
	"CAP_MAC_ADMIN",
	"CAP_SYSLOG",
	"CAP_WAKE_ALARM",
	"CAP_BLOCK_SUSPEND",
	"CAP_AUDIT_READ",
	"CAP_PERFMON",
	"CAP_BPF",
	"CAP_CHECKPOINT_RESTORE",
};

static const struct named_value rlimit_names[] = {
	{ "CPU", RLIMIT_CPU },         { "FSIZE", RLIMIT_FSIZE },
	{ "DATA", RLIMIT_DATA },       { "STACK", RLIMIT_STACK },
	{ "CORE", RLIMIT_CORE },       { "RSS", RLIMIT_RSS },
	{ "NPROC", RLIMIT_NPROC },     { "NOFILE", RLIMIT_NOFILE },
	{ "MEMLOCK", RLIMIT_MEMLOCK }, { "AS", RLIMIT_AS },
	{ "LOCKS", RLIMIT_LOCKS },     { "SIGPENDING", RLIMIT_SIGPENDING },
	{ "MSGQUEUE", RLIMIT_MSGQUEUE }, { "NICE", RLIMIT_NICE },
	{ "RTPRIO", RLIMIT_RTPRIO },   { "RTTIME", RLIMIT_RTTIME },
};

static const char *skip_prefix(const char *s, const char *prefix)
{
	size_t n = strlen(prefix);
	return strncasecmp(s, prefix, n) == 0 ? s + n : s;
}

/* A decimal number of at most a few digits; no sign, no spaces, no overflow. */
static int parse_small_uint(const char *s, int max, int *out)
{
	int v = 0;
	if (!*s)
		return -1;
	for (; *s; s++) {
		if (*s < '0' || *s > '9')
			return -1;
		v = v * 10 + (*s - '0');
		if (v > max)
			return -1;
	}
	*out = v;
	return 0;
}

/* "RTMIN", "RTMIN+n", "RTMAX", "RTMAX-n" (prefix already stripped). */
static int parse_realtime(const char *s, int *sig)
{
	int rtmin = SIGRTMIN, rtmax = SIGRTMAX;
	int base, dir, off = 0;

	if (strncasecmp(s, "RTMIN", 5) == 0) {
		base = rtmin;
		dir = 1;
	} else if (strncasecmp(s, "RTMAX", 5) == 0) {
		base = rtmax;
		dir = -1;
	} else {
		return -1;
	}
	s += 5;
	if (*s) {
		if ((dir > 0 && *s != '+') || (dir < 0 && *s != '-'))
			return -1;
		if (parse_small_uint(s + 1, LM_SIG_MAX, &off) < 0)
			return -1;
	}
	base += dir * off;
	if (base < rtmin || base > rtmax)
		return -1;
	*sig = base;
	return 0;
}

int lm_signal_parse(const char *s, int *sig)
{
	int v;

	if (!s || !*s)
		return -1;
	if (s[0] >= '0' && s[0] <= '9') {
		if (parse_small_uint(s, LM_SIG_MAX, &v) < 0 || v < 1)
			return -1;
		*sig = v;
		return 0;
	}
	s = skip_prefix(s, "SIG");
	for (size_t i = 0; i < ARRAY_SIZE(signal_names); i++) {
		if (strcasecmp(s, signal_names[i].name) == 0) {
			*sig = signal_names[i].value;
			return 0;
		}
	}
	return parse_realtime(s, sig);
}

int lm_cap_from_name(const char *name)
{
	if (!name)
		return -1;
	/* Compare past the prefix so that "SYS_ADMIN" and "CAP_SYS_ADMIN" both match. */
	const char *bare = skip_prefix(name, "CAP_");
	for (size_t i = 0; i < ARRAY_SIZE(cap_names); i++) {
		if (strcasecmp(bare, cap_names[i] + 4) == 0)
			return (int)i;
	}
	return -1;
}

const char *lm_cap_name(int cap)
{
	if (cap < 0 || (size_t)cap >= ARRAY_SIZE(cap_names))
		return NULL;
	return cap_names[cap];
}

int lm_rlimit_from_name(const char *name)
{
	if (!name)
		return -1;
	const char *bare = skip_prefix(name, "RLIMIT_");
	for (size_t i = 0; i < ARRAY_SIZE(rlimit_names); i++) {
		if (strcasecmp(bare, rlimit_names[i].name) == 0)
			return rlimit_names[i].value;
	}
	return -1;
}
