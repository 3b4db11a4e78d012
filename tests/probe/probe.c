/*
 * probe: runs inside test containers and reports what the workload sees.
 *
 * Integration tests assert on what a process really observes from inside the
 * container (ids, capabilities, mounts, limits, ...) rather than on what the
 * runtime claims to have done, so this program must depend on nothing but the
 * kernel: it is linked statically, uses only libc, and writes its JSON by hand.
 *
 *   probe [report ARGS...]     one JSON object (ARGS only show up in argv):
 *       fds [{fd,target}] (without the listing's own fd), argv, pid, ppid, uid, gid,
 *       euid, egid, groups, caps {CapInh,CapPrm,CapEff,CapBnd,CapAmb: hex strings},
 *       no_new_privs, seccomp, umask ("0022"), hostname, domainname, cwd,
 *       rlimits {RLIMIT_*: {soft,hard}} (-1 = unlimited),
 *       mounts [{id,parent,dev,root,mount_point,options,optional,fstype,source,
 *       super_options}], cgroup [lines], ns {name: "net:[inode]"}, netdev [names],
 *       oom_score_adj, isatty [fd0,fd1,fd2], ttyname (of fd 0), console (stat of
 *       /dev/console or null), env [strings]
 *   probe exit N               exit with code N
 *   probe sleep SECONDS        sleep (fractions allowed)
 *   probe trap SECONDS         catch signals; on one, print "signal N", exit N
 *   probe kill-self SIGNAL     raise a signal number
 *   probe cat PATH             copy a file to stdout
 *   probe write PATH TEXT      write TEXT to PATH (create/truncate)
 *   probe open PATH r|w|rw     open and close PATH, print "ok" or the error
 *   probe ls PATH              directory entries as JSON
 *   probe stat PATH            stat(2) as JSON (lstat: lstat(2))
 *   probe alloc MB             touch MB mebibytes of memory
 *   probe sysctl NAME          print /proc/sys/NAME (dots or slashes)
 *   probe fork-sleep N [SECS]  start N sleeping children, report how many started
 *   probe syscall NAME [ARG...]  make one raw syscall (NAME from a small table, or a
 *       number; ARGs are integers, 0 for NULL) and print {"name","ret","errno","error"}
 *       (errno 0 on success); exits 0 whatever the syscall did
 *   probe syscalls "NAME ARG..." ...  several, one JSON array of those objects
 *   probe escape [--runtime MAJ:MIN:INO] [--marker HOSTPATH] [--wait FILE] [--fifo FIFO]
 *                [--go FILE]
 *       tries the known ways out of a container and reports, as one JSON line:
 *       own_fds [{fd,target,type,cwd}] (every fd >= 3 and, for a directory,
 *       where fchdir to it leads), cwd, self {exe,open_w,runtime}, procs
 *       [{pid,exe,runtime,open_w,fds}] (every other visible process: its exe,
 *       whether that is the runtime's binary MAJ:MIN:INO, then kept open O_PATH,
 *       and whether it opens for writing), dirs [paths] (directories reachable
 *       through our fds, our cwd and the cwd/root/fds of other processes),
 *       marker_via [paths] (those through which "../"x64 + HOSTPATH could be
 *       created: a host file written from inside), held (runtime binaries kept
 *       open).  --wait: first wait for FILE to exist; --fifo: first open FIFO
 *       for writing (blocks until someone reads it), close it after the scan.
 *       --go: then wait for FILE and reopen every kept runtime binary through
 *       /proc/self/fd for writing and append to it (CVE-2019-5736), reported
 *       as a second line {"overwrite": [{pid,result}]}.
 *
 * Failures of subcommands print "probe: <what>: <error>" to stderr and exit 1.
 * Strings are emitted as valid JSON even when they are not UTF-8: a stray byte
 * 0xNN comes out as \u00NN.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/types.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

/* ---- tiny JSON writer ------------------------------------------------- */

#define JSON_MAX_DEPTH 32

static struct {
	int depth;
	bool first[JSON_MAX_DEPTH]; /* no element written yet at this level */
	bool after_key;             /* a key was written, the value follows */
} js;

static void json_sep(void)
{
	if (js.after_key) {
		js.after_key = false;
		return;
	}
	if (js.depth > 0) {
		if (!js.first[js.depth - 1])
			putchar(',');
		js.first[js.depth - 1] = false;
	}
}

static void json_open(char c)
{
	json_sep();
	putchar(c);
	if (js.depth >= JSON_MAX_DEPTH) {
		fputs("probe: JSON nesting too deep\n", stderr);
		exit(2);
	}
	js.first[js.depth++] = true;
}

static void json_close(char c)
{
	js.depth--;
	putchar(c);
}

static void obj_begin(void) { json_open('{'); }
static void obj_end(void) { json_close('}'); }
static void arr_begin(void) { json_open('['); }
static void arr_end(void) { json_close(']'); }

/* Length of the valid UTF-8 sequence at s (at most n bytes), 0 if invalid. */
static size_t utf8_len(const unsigned char *s, size_t n)
{
	size_t len;
	unsigned int cp;

	if (s[0] < 0x80)
		return 1;
	if ((s[0] & 0xe0) == 0xc0) {
		len = 2;
		cp = s[0] & 0x1f;
	} else if ((s[0] & 0xf0) == 0xe0) {
		len = 3;
		cp = s[0] & 0x0f;
	} else if ((s[0] & 0xf8) == 0xf0) {
		len = 4;
		cp = s[0] & 0x07;
	} else {
		return 0;
	}
	if (len > n)
		return 0;
	for (size_t i = 1; i < len; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = (cp << 6) | (s[i] & 0x3f);
	}
	if ((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) ||
	    cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	return len;
}

/* Bytes that are not valid UTF-8 come out as \u00XX so the output always parses. */
static void json_raw_string(const char *str)
{
	const unsigned char *s = (const unsigned char *)str;
	size_t n = strlen(str);

	putchar('"');
	for (size_t i = 0; i < n;) {
		unsigned char c = s[i];
		size_t len;

		switch (c) {
		case '"': fputs("\\\"", stdout); i++; continue;
		case '\\': fputs("\\\\", stdout); i++; continue;
		case '\b': fputs("\\b", stdout); i++; continue;
		case '\f': fputs("\\f", stdout); i++; continue;
		case '\n': fputs("\\n", stdout); i++; continue;
		case '\r': fputs("\\r", stdout); i++; continue;
		case '\t': fputs("\\t", stdout); i++; continue;
		default: break;
		}
		if (c < 0x20 || c == 0x7f) {
			printf("\\u%04x", c);
			i++;
			continue;
		}
		len = utf8_len(s + i, n - i);
		if (len == 0) {
			printf("\\u%04x", c);
			i++;
			continue;
		}
		fwrite(s + i, 1, len, stdout);
		i += len;
	}
	putchar('"');
}

static void key(const char *k)
{
	json_sep();
	json_raw_string(k);
	putchar(':');
	js.after_key = true;
}

static void val_str(const char *s)
{
	json_sep();
	if (s)
		json_raw_string(s);
	else
		fputs("null", stdout);
}

static void val_int(long long v)
{
	json_sep();
	printf("%lld", v);
}

static void val_bool(bool b)
{
	json_sep();
	fputs(b ? "true" : "false", stdout);
}

static void val_null(void)
{
	json_sep();
	fputs("null", stdout);
}

static void kv_str(const char *k, const char *v) { key(k); val_str(v); }
static void kv_int(const char *k, long long v) { key(k); val_int(v); }

static void json_done(void)
{
	putchar('\n');
	fflush(stdout);
}

/* ---- helpers ----------------------------------------------------------- */

static __attribute__((format(printf, 1, 2), noreturn)) void die(const char *fmt, ...)
{
	va_list ap;

	fflush(stdout);
	fputs("probe: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(1);
}

/* Reads a whole (small) file into a malloc'd NUL-terminated buffer. */
static char *slurp(const char *path)
{
	size_t cap = 4096, len = 0;
	char *buf;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return NULL;
	buf = malloc(cap);
	if (!buf) {
		close(fd);
		return NULL;
	}
	for (;;) {
		ssize_t r;

		if (len + 1 >= cap) {
			char *nb = realloc(buf, cap * 2);

			if (!nb) {
				free(buf);
				close(fd);
				errno = ENOMEM;
				return NULL;
			}
			buf = nb;
			cap *= 2;
		}
		r = read(fd, buf + len, cap - len - 1);
		if (r < 0) {
			int saved = errno;

			if (errno == EINTR)
				continue;
			free(buf);
			close(fd);
			errno = saved;
			return NULL;
		}
		if (r == 0)
			break;
		len += (size_t)r;
	}
	close(fd);
	buf[len] = '\0';
	return buf;
}

static long long parse_ll(const char *s, const char *what)
{
	char *end;
	long long v;

	errno = 0;
	v = strtoll(s, &end, 0);
	if (errno || end == s || *end)
		die("%s: not a number: %s", what, s);
	return v;
}

/* Value of "Key:\tvalue" in /proc/self/status, copied into out. */
static bool status_field(const char *status, const char *name, char *out, size_t outlen)
{
	size_t nlen = strlen(name);

	for (const char *line = status; line && *line;) {
		const char *eol = strchr(line, '\n');
		size_t llen = eol ? (size_t)(eol - line) : strlen(line);

		if (llen > nlen && strncmp(line, name, nlen) == 0 && line[nlen] == ':') {
			const char *v = line + nlen + 1;
			size_t vlen;

			while (*v == ' ' || *v == '\t')
				v++;
			vlen = (size_t)(line + llen - v);
			if (vlen >= outlen)
				vlen = outlen - 1;
			memcpy(out, v, vlen);
			out[vlen] = '\0';
			return true;
		}
		line = eol ? eol + 1 : NULL;
	}
	return false;
}

static char *readlink_alloc(int dirfd, const char *path)
{
	char buf[PATH_MAX + 1];
	ssize_t n = readlinkat(dirfd, path, buf, sizeof(buf) - 1);

	if (n < 0)
		return NULL;
	buf[n] = '\0';
	return strdup(buf);
}

/* mountinfo escapes space, tab, newline and backslash as \ooo. */
static void unescape_octal(char *s)
{
	char *w = s;

	for (char *r = s; *r;) {
		if (r[0] == '\\' && r[1] >= '0' && r[1] <= '7' && r[2] >= '0' && r[2] <= '7' &&
		    r[3] >= '0' && r[3] <= '7') {
			*w++ = (char)(((r[1] - '0') << 6) | ((r[2] - '0') << 3) | (r[3] - '0'));
			r += 4;
		} else {
			*w++ = *r++;
		}
	}
	*w = '\0';
}

/* ---- the full report ---------------------------------------------------- */

static void stat_fields(const struct stat *st, int dirfd, const char *name);

static void report_fds(void)
{
	DIR *d = opendir("/proc/self/fd");

	key("fds");
	if (!d) {
		val_null();
		return;
	}
	arr_begin();
	for (struct dirent *de; (de = readdir(d));) {
		char *target;
		int fd;

		if (de->d_name[0] == '.')
			continue;
		fd = atoi(de->d_name);
		if (fd == dirfd(d))
			continue;
		target = readlink_alloc(dirfd(d), de->d_name);
		obj_begin();
		kv_int("fd", fd);
		kv_str("target", target);
		obj_end();
		free(target);
	}
	arr_end();
	closedir(d);
}

static void report_ids(int argc, char **argv)
{
	gid_t groups[NGROUPS_MAX];
	int ngroups = getgroups(NGROUPS_MAX, groups);

	key("argv");
	arr_begin();
	for (int i = 0; i < argc; i++)
		val_str(argv[i]);
	arr_end();
	kv_int("pid", getpid());
	kv_int("ppid", getppid());
	kv_int("uid", getuid());
	kv_int("gid", getgid());
	kv_int("euid", geteuid());
	kv_int("egid", getegid());
	key("groups");
	arr_begin();
	for (int i = 0; i < ngroups; i++)
		val_int(groups[i]);
	arr_end();
}

static void report_status(void)
{
	static const char *const caps[] = {"CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"};
	char *status = slurp("/proc/self/status");
	char v[256];

	key("caps");
	obj_begin();
	for (size_t i = 0; i < sizeof(caps) / sizeof(caps[0]); i++) {
		key(caps[i]);
		if (status && status_field(status, caps[i], v, sizeof(v)))
			val_str(v);
		else
			val_null();
	}
	obj_end();
	key("no_new_privs");
	if (status && status_field(status, "NoNewPrivs", v, sizeof(v)))
		val_int(atoi(v));
	else
		val_int(prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0));
	key("seccomp");
	if (status && status_field(status, "Seccomp", v, sizeof(v)))
		val_int(atoi(v));
	else
		val_null();
	key("umask");
	if (status && status_field(status, "Umask", v, sizeof(v)))
		val_str(v);
	else
		val_null();
	free(status);
}

static void report_uts(void)
{
	struct utsname u;
	char cwd[PATH_MAX];

	if (uname(&u) == 0) {
		kv_str("hostname", u.nodename);
		kv_str("domainname", u.domainname);
	} else {
		kv_str("hostname", NULL);
		kv_str("domainname", NULL);
	}
	kv_str("cwd", getcwd(cwd, sizeof(cwd)));
}

static void report_rlimits(void)
{
	static const struct {
		const char *name;
		int res;
	} lims[] = {
		{"RLIMIT_CPU", RLIMIT_CPU},
		{"RLIMIT_FSIZE", RLIMIT_FSIZE},
		{"RLIMIT_DATA", RLIMIT_DATA},
		{"RLIMIT_STACK", RLIMIT_STACK},
		{"RLIMIT_CORE", RLIMIT_CORE},
		{"RLIMIT_RSS", RLIMIT_RSS},
		{"RLIMIT_NPROC", RLIMIT_NPROC},
		{"RLIMIT_NOFILE", RLIMIT_NOFILE},
		{"RLIMIT_MEMLOCK", RLIMIT_MEMLOCK},
		{"RLIMIT_AS", RLIMIT_AS},
		{"RLIMIT_LOCKS", RLIMIT_LOCKS},
		{"RLIMIT_SIGPENDING", RLIMIT_SIGPENDING},
		{"RLIMIT_MSGQUEUE", RLIMIT_MSGQUEUE},
		{"RLIMIT_NICE", RLIMIT_NICE},
		{"RLIMIT_RTPRIO", RLIMIT_RTPRIO},
		{"RLIMIT_RTTIME", RLIMIT_RTTIME},
	};

	key("rlimits");
	obj_begin();
	for (size_t i = 0; i < sizeof(lims) / sizeof(lims[0]); i++) {
		struct rlimit rl;

		key(lims[i].name);
		if (getrlimit(lims[i].res, &rl) != 0) {
			val_null();
			continue;
		}
		obj_begin();
		kv_int("soft", rl.rlim_cur == RLIM_INFINITY ? -1 : (long long)rl.rlim_cur);
		kv_int("hard", rl.rlim_max == RLIM_INFINITY ? -1 : (long long)rl.rlim_max);
		obj_end();
	}
	obj_end();
}

static void report_mounts(void)
{
	char *info = slurp("/proc/self/mountinfo");
	char *save = NULL;

	key("mounts");
	if (!info) {
		val_null();
		return;
	}
	arr_begin();
	for (char *line = strtok_r(info, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		/* id parent maj:min root mountpoint opts [optional...] - fstype source superopts */
		char *f[64];
		int n = 0, dash = -1;
		char *fsave = NULL;

		for (char *t = strtok_r(line, " ", &fsave); t && n < 64; t = strtok_r(NULL, " ", &fsave)) {
			if (dash < 0 && n >= 6 && strcmp(t, "-") == 0)
				dash = n;
			f[n++] = t;
		}
		if (dash < 0 || n < dash + 3)
			continue;
		for (int i = 0; i < n; i++)
			unescape_octal(f[i]);
		obj_begin();
		kv_int("id", atoi(f[0]));
		kv_int("parent", atoi(f[1]));
		kv_str("dev", f[2]);
		kv_str("root", f[3]);
		kv_str("mount_point", f[4]);
		kv_str("options", f[5]);
		key("optional");
		arr_begin();
		for (int i = 6; i < dash; i++)
			val_str(f[i]);
		arr_end();
		kv_str("fstype", f[dash + 1]);
		kv_str("source", f[dash + 2]);
		kv_str("super_options", n > dash + 3 ? f[dash + 3] : "");
		obj_end();
	}
	arr_end();
	free(info);
}

/* Emits each line of a file as an array of strings (null if unreadable). */
static void report_lines(const char *k, const char *path)
{
	char *data = slurp(path);
	char *save = NULL;

	key(k);
	if (!data) {
		val_null();
		return;
	}
	arr_begin();
	for (char *line = strtok_r(data, "\n", &save); line; line = strtok_r(NULL, "\n", &save))
		val_str(line);
	arr_end();
	free(data);
}

static void report_netdev(void)
{
	char *data = slurp("/proc/net/dev");
	char *save = NULL;
	int lineno = 0;

	key("netdev");
	if (!data) {
		val_null();
		return;
	}
	arr_begin();
	for (char *line = strtok_r(data, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		char *colon;

		if (++lineno <= 2) /* two header lines */
			continue;
		colon = strchr(line, ':');
		if (!colon)
			continue;
		*colon = '\0';
		while (*line == ' ')
			line++;
		val_str(line);
	}
	arr_end();
	free(data);
}

static void report_ns(void)
{
	static const char *const names[] = {"cgroup", "ipc", "mnt", "net", "pid",
					    "pid_for_children", "time", "user", "uts"};

	key("ns");
	obj_begin();
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		char path[64];
		char *t;

		snprintf(path, sizeof(path), "/proc/self/ns/%s", names[i]);
		t = readlink_alloc(AT_FDCWD, path);
		kv_str(names[i], t);
		free(t);
	}
	obj_end();
}

/* Whether the container has a /dev/console, and what it is. */
static void report_console(void)
{
	struct stat st;

	key("console");
	if (stat("/dev/console", &st) != 0) {
		val_null();
		return;
	}
	obj_begin();
	stat_fields(&st, AT_FDCWD, "/dev/console");
	obj_end();
}

static void report_misc(void)
{
	char *s;
	char *tty;

	key("oom_score_adj");
	s = slurp("/proc/self/oom_score_adj");
	if (s)
		val_int(atoll(s));
	else
		val_null();
	free(s);

	key("isatty");
	arr_begin();
	for (int fd = 0; fd < 3; fd++)
		val_bool(isatty(fd));
	arr_end();
	tty = ttyname(0);
	kv_str("ttyname", tty);
	report_console();

	key("env");
	arr_begin();
	for (char **e = environ; e && *e; e++)
		val_str(*e);
	arr_end();
}

static int cmd_report(int argc, char **argv)
{
	obj_begin();
	/* First, so no fd of our own other than the listing one is open. */
	report_fds();
	report_ids(argc, argv);
	report_status();
	report_uts();
	report_rlimits();
	report_mounts();
	report_lines("cgroup", "/proc/self/cgroup");
	report_ns();
	report_netdev();
	report_misc();
	obj_end();
	json_done();
	return 0;
}

/* ---- subcommands ------------------------------------------------------- */

static void sleep_seconds(const char *arg)
{
	char *end;
	double secs = strtod(arg, &end);
	struct timespec ts;

	if (end == arg || *end || secs < 0)
		die("sleep: bad duration: %s", arg);
	ts.tv_sec = (time_t)secs;
	ts.tv_nsec = (long)((secs - (double)ts.tv_sec) * 1e9);
	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

static void on_trap(int sig)
{
	char msg[32];
	int n = snprintf(msg, sizeof(msg), "signal %d\n", sig);

	if (write(1, msg, (size_t)n) < 0)
		_exit(100);
	_exit(sig);
}

static int cmd_trap(const char *secs)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_trap;
	sigfillset(&sa.sa_mask);
	for (int sig = 1; sig < NSIG; sig++) {
		if (sig == SIGKILL || sig == SIGSTOP || sig == SIGCHLD)
			continue;
		sigaction(sig, &sa, NULL); /* reserved RT signals fail; fine */
	}
	puts("ready");
	fflush(stdout);
	sleep_seconds(secs);
	return 99;
}

static int cmd_kill_self(const char *arg)
{
	int sig = (int)parse_ll(arg, "kill-self");

	fflush(stdout);
	if (raise(sig) != 0)
		die("kill-self %d: %s", sig, strerror(errno));
	/* pid 1 of a pid namespace ignores its own signals with default action. */
	die("kill-self %d: still alive (pid %d)", sig, getpid());
}

static int cmd_cat(const char *path)
{
	char buf[65536];
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		die("cat %s: %s", path, strerror(errno));
	for (;;) {
		ssize_t n = read(fd, buf, sizeof(buf));

		if (n < 0) {
			if (errno == EINTR)
				continue;
			die("cat %s: %s", path, strerror(errno));
		}
		if (n == 0)
			break;
		if (fwrite(buf, 1, (size_t)n, stdout) != (size_t)n)
			die("cat %s: write: %s", path, strerror(errno));
	}
	close(fd);
	fflush(stdout);
	return 0;
}

static int cmd_write(const char *path, const char *text)
{
	size_t len = strlen(text);
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);

	if (fd < 0)
		die("write %s: %s", path, strerror(errno));
	if (write(fd, text, len) != (ssize_t)len)
		die("write %s: %s", path, strerror(errno));
	if (close(fd) != 0)
		die("write %s: %s", path, strerror(errno));
	puts("ok");
	return 0;
}

static int cmd_open(const char *path, const char *mode)
{
	int flags;
	int fd;

	if (strcmp(mode, "r") == 0)
		flags = O_RDONLY;
	else if (strcmp(mode, "w") == 0)
		flags = O_WRONLY;
	else if (strcmp(mode, "rw") == 0)
		flags = O_RDWR;
	else
		die("open: mode must be r, w or rw: %s", mode);
	fd = open(path, flags | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	if (fd < 0)
		die("open %s: %s", path, strerror(errno));
	close(fd);
	puts("ok");
	return 0;
}

static const char *type_name(mode_t m)
{
	switch (m & S_IFMT) {
	case S_IFREG: return "file";
	case S_IFDIR: return "dir";
	case S_IFLNK: return "link";
	case S_IFCHR: return "chr";
	case S_IFBLK: return "blk";
	case S_IFIFO: return "fifo";
	case S_IFSOCK: return "sock";
	default: return "unknown";
	}
}

/* Fields of one stat result; the caller has opened the object. */
static void stat_fields(const struct stat *st, int dirfd, const char *name)
{
	char rdev[32];

	kv_str("type", type_name(st->st_mode));
	kv_int("mode", st->st_mode & 07777);
	kv_int("uid", st->st_uid);
	kv_int("gid", st->st_gid);
	kv_int("size", st->st_size);
	kv_int("nlink", (long long)st->st_nlink);
	kv_int("ino", (long long)st->st_ino);
	snprintf(rdev, sizeof(rdev), "%u:%u", major(st->st_dev), minor(st->st_dev));
	kv_str("dev", rdev);
	if (S_ISCHR(st->st_mode) || S_ISBLK(st->st_mode)) {
		snprintf(rdev, sizeof(rdev), "%u:%u", major(st->st_rdev), minor(st->st_rdev));
		kv_str("rdev", rdev);
	}
	if (S_ISLNK(st->st_mode)) {
		char *t = readlink_alloc(dirfd, name);

		kv_str("target", t);
		free(t);
	}
}

static int cmd_ls(const char *path)
{
	struct dirent **names;
	int n = scandir(path, &names, NULL, alphasort);
	int dfd;

	if (n < 0)
		die("ls %s: %s", path, strerror(errno));
	dfd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0)
		die("ls %s: %s", path, strerror(errno));
	arr_begin();
	for (int i = 0; i < n; i++) {
		const char *name = names[i]->d_name;
		struct stat st;

		if (strcmp(name, ".") != 0 && strcmp(name, "..") != 0) {
			obj_begin();
			kv_str("name", name);
			if (fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0)
				stat_fields(&st, dfd, name);
			else
				kv_str("error", strerror(errno));
			obj_end();
		}
		free(names[i]);
	}
	free(names);
	arr_end();
	json_done();
	close(dfd);
	return 0;
}

static int cmd_stat(const char *path, bool follow)
{
	struct stat st;

	if ((follow ? stat(path, &st) : lstat(path, &st)) != 0)
		die("stat %s: %s", path, strerror(errno));
	obj_begin();
	kv_str("path", path);
	stat_fields(&st, AT_FDCWD, path);
	obj_end();
	json_done();
	return 0;
}

static int cmd_alloc(const char *arg)
{
	long long mb = parse_ll(arg, "alloc");
	long page = sysconf(_SC_PAGESIZE);
	size_t len;
	char *p;

	if (mb <= 0)
		die("alloc: bad size: %s", arg);
	len = (size_t)mb << 20;
	p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		die("alloc %lld MiB: %s", mb, strerror(errno));
	for (size_t off = 0; off < len; off += (size_t)page)
		p[off] = 1;
	printf("allocated %lld MiB\n", mb);
	fflush(stdout);
	return 0;
}

static int cmd_sysctl(const char *name)
{
	char path[PATH_MAX];
	char *v;
	size_t len;

	if (snprintf(path, sizeof(path), "/proc/sys/%s", name) >= (int)sizeof(path))
		die("sysctl: name too long");
	for (char *c = path + strlen("/proc/sys/"); *c; c++)
		if (*c == '.')
			*c = '/';
	v = slurp(path);
	if (!v)
		die("sysctl %s: %s", name, strerror(errno));
	len = strlen(v);
	while (len > 0 && (v[len - 1] == '\n' || v[len - 1] == ' '))
		v[--len] = '\0';
	puts(v);
	free(v);
	return 0;
}

static int cmd_fork_sleep(const char *count, const char *secs)
{
	long long n = parse_ll(count, "fork-sleep");
	pid_t *pids;
	long long started = 0;
	int err = 0;

	if (n < 0 || n > 100000)
		die("fork-sleep: bad count: %s", count);
	pids = calloc((size_t)n + 1, sizeof(*pids));
	if (!pids)
		die("fork-sleep: %s", strerror(errno));
	fflush(stdout);
	for (long long i = 0; i < n; i++) {
		pid_t pid = fork();

		if (pid < 0) {
			err = errno;
			break;
		}
		if (pid == 0) {
			sleep_seconds(secs);
			_exit(0);
		}
		pids[started++] = pid;
	}
	for (long long i = 0; i < started; i++)
		kill(pids[i], SIGKILL);
	for (long long i = 0; i < started; i++)
		waitpid(pids[i], NULL, 0);
	free(pids);
	obj_begin();
	kv_int("requested", n);
	kv_int("started", started);
	kv_str("error", err ? strerror(err) : NULL);
	obj_end();
	json_done();
	return started == n ? 0 : 1;
}

/* The syscalls the seccomp tests poke at, by name. */
static const struct {
	const char *name;
	long nr;
} syscall_table[] = {
	{"getpid", SYS_getpid},
	{"getppid", SYS_getppid},
	{"getpriority", SYS_getpriority},
	{"setpriority", SYS_setpriority},
	{"personality", SYS_personality},
	{"mount", SYS_mount},
	{"umount2", SYS_umount2},
	{"unshare", SYS_unshare},
	{"setns", SYS_setns},
	{"clone", SYS_clone},
	{"clone3", SYS_clone3},
	{"keyctl", SYS_keyctl},
	{"add_key", SYS_add_key},
	{"bpf", SYS_bpf},
	{"kexec_load", SYS_kexec_load},
	{"clock_settime", SYS_clock_settime},
	{"settimeofday", SYS_settimeofday},
	{"swapon", SYS_swapon},
	{"perf_event_open", SYS_perf_event_open},
	{"open_by_handle_at", SYS_open_by_handle_at},
	{"init_module", SYS_init_module},
	{"finit_module", SYS_finit_module},
	{"pivot_root", SYS_pivot_root},
	{"ptrace", SYS_ptrace},
	{"socket", SYS_socket},
	{"chroot", SYS_chroot},
	{"reboot", SYS_reboot},
	{"syslog", SYS_syslog},
	{"acct", SYS_acct},
	{"kcmp", SYS_kcmp},
	{"uname", SYS_uname},
};

static void one_syscall(char **argv, int argc)
{
	long nr = -1;
	long long a[6] = {0};
	long ret;
	int e;

	if (argc < 1 || argc > 7)
		die("syscall: expected NAME and at most 6 arguments");
	for (size_t i = 0; i < sizeof(syscall_table) / sizeof(syscall_table[0]); i++)
		if (strcmp(argv[0], syscall_table[i].name) == 0)
			nr = syscall_table[i].nr;
	if (nr < 0)
		nr = (long)parse_ll(argv[0], "syscall");
	for (int i = 1; i < argc; i++) {
		char *end;

		errno = 0;
		a[i - 1] = (long long)strtoull(argv[i], &end, 0);
		if (*argv[i] == '-')
			a[i - 1] = strtoll(argv[i], &end, 0);
		if (errno || *end || end == argv[i])
			die("syscall %s: bad argument: %s", argv[0], argv[i]);
	}
	errno = 0;
	ret = syscall(nr, a[0], a[1], a[2], a[3], a[4], a[5]);
	e = ret < 0 ? errno : 0;
	obj_begin();
	kv_str("name", argv[0]);
	kv_int("ret", ret);
	kv_int("errno", e);
	kv_str("error", e ? strerror(e) : NULL);
	obj_end();
}

static int cmd_syscall(int argc, char **argv)
{
	one_syscall(argv, argc);
	json_done();
	return 0;
}

static int cmd_syscalls(int argc, char **argv)
{
	arr_begin();
	for (int i = 0; i < argc; i++) {
		char *words[8];
		int n = 0;
		char *save = NULL;

		for (char *w = strtok_r(argv[i], " ", &save); w; w = strtok_r(NULL, " ", &save)) {
			if (n == 8)
				die("syscalls: too many words in \"%s\"", argv[i]);
			words[n++] = w;
		}
		one_syscall(words, n);
	}
	arr_end();
	json_done();
	return 0;
}

/* ---- escape attempts ----------------------------------------------------- */

#define ESCAPE_MAX_HELD 16

static struct {
	int fd;
	int pid;
} held[ESCAPE_MAX_HELD];
static int n_held;

/* Waits (up to 60 s) for path to exist; false on timeout. */
static bool wait_file(const char *path)
{
	for (int i = 0; i < 6000; i++) {
		if (access(path, F_OK) == 0)
			return true;
		sleep_seconds("0.01");
	}
	return false;
}

/* Tries to create marker (a host path) from directory dirpath by walking up
 * with "..": that only reaches the host's root from a directory outside ours. */
static void try_marker(const char *dirpath, const char *marker, bool *any)
{
	char rel[PATH_MAX];
	size_t len = 0;
	int dfd, fd;

	if (!marker)
		return;
	for (int i = 0; i < 64 && len + 3 < sizeof(rel); i++, len += 3)
		memcpy(rel + len, "../", 3);
	while (*marker == '/')
		marker++;
	if (len + strlen(marker) + 1 > sizeof(rel))
		return;
	strcpy(rel + len, marker);
	dfd = open(dirpath, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0)
		return;
	fd = openat(dfd, rel, O_WRONLY | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0644);
	close(dfd);
	if (fd < 0)
		return;
	dprintf(fd, "escaped via %s\n", dirpath);
	close(fd);
	val_str(dirpath);
	*any = true;
}

static bool parse_devino(const char *s, unsigned long long *dev, unsigned long long *ino)
{
	unsigned maj, min;

	if (!s || sscanf(s, "%u:%u:%llu", &maj, &min, ino) != 3)
		return false;
	*dev = makedev(maj, min);
	return true;
}

static bool is_dir(const char *path)
{
	struct stat st;

	return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

/* Directories found: reported, and tried as a way out. */
static char *found_dirs[4096];
static int n_found_dirs;

static void add_dir(const char *path)
{
	if (n_found_dirs < (int)(sizeof(found_dirs) / sizeof(found_dirs[0])) && is_dir(path))
		found_dirs[n_found_dirs++] = strdup(path);
}

static int cmd_escape(int argc, char **argv)
{
	const char *runtime = NULL, *marker = NULL, *wait = NULL, *fifo = NULL, *go = NULL;
	unsigned long long rdev = 0, rino = 0;
	bool have_runtime;
	int fifo_fd = -1;
	char cwd[PATH_MAX];
	DIR *d;

	for (int i = 2; i < argc; i++) {
		const char **slot = strcmp(argv[i], "--runtime") == 0 ? &runtime
				  : strcmp(argv[i], "--marker") == 0  ? &marker
				  : strcmp(argv[i], "--wait") == 0    ? &wait
				  : strcmp(argv[i], "--fifo") == 0    ? &fifo
				  : strcmp(argv[i], "--go") == 0      ? &go
								      : NULL;
		if (!slot || i + 1 >= argc)
			die("escape: bad argument %s", argv[i]);
		*slot = argv[++i];
	}
	have_runtime = parse_devino(runtime, &rdev, &rino);
	if (runtime && !have_runtime)
		die("escape: --runtime wants MAJOR:MINOR:INODE, not %s", runtime);
	if (wait && !wait_file(wait))
		die("escape: %s never appeared", wait);
	if (fifo) {
		fifo_fd = open(fifo, O_WRONLY | O_CLOEXEC);
		if (fifo_fd < 0)
			die("escape: open %s: %s", fifo, strerror(errno));
	}

	obj_begin();
	/* Our own fds first, before this scan opens any. */
	key("own_fds");
	arr_begin();
	for (int fd = 3; fd < 1024; fd++) {
		char link[64], here[PATH_MAX];
		struct stat st;
		char *t;

		if (fd == fifo_fd || fstat(fd, &st) != 0)
			continue;
		snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
		t = readlink_alloc(AT_FDCWD, link);
		obj_begin();
		kv_int("fd", fd);
		kv_str("target", t);
		kv_str("type", type_name(st.st_mode));
		key("cwd");
		if (S_ISDIR(st.st_mode) && getcwd(here, sizeof(here)) && fchdir(fd) == 0) {
			char there[PATH_MAX];

			val_str(getcwd(there, sizeof(there)) ? there : strerror(errno));
			if (chdir(here) != 0)
				die("escape: chdir back to %s: %s", here, strerror(errno));
		} else {
			val_null();
		}
		obj_end();
		if (S_ISDIR(st.st_mode))
			add_dir(link);
		free(t);
	}
	arr_end();
	kv_str("cwd", getcwd(cwd, sizeof(cwd)) ? cwd : strerror(errno));
	add_dir(".");
	{
		char *exe = readlink_alloc(AT_FDCWD, "/proc/self/exe");
		struct stat st;
		int w;

		key("self");
		obj_begin();
		kv_str("exe", exe);
		free(exe);
		w = open("/proc/self/exe", O_WRONLY | O_CLOEXEC);
		kv_str("open_w", w >= 0 ? "ok" : strerror(errno));
		if (w >= 0)
			close(w);
		if (have_runtime && stat("/proc/self/exe", &st) == 0 && st.st_dev == rdev &&
		    st.st_ino == rino) {
			kv_str("runtime", "yes");
			held[n_held].fd = open("/proc/self/exe", O_PATH | O_CLOEXEC);
			held[n_held].pid = getpid();
			if (held[n_held].fd >= 0)
				n_held++;
		}
		obj_end();
	}

	key("procs");
	arr_begin();
	d = opendir("/proc");
	for (struct dirent *de; d && (de = readdir(d));) {
		char path[PATH_MAX], *exe;
		int pid = atoi(de->d_name);
		struct stat st;
		DIR *fdd;

		if (pid <= 0 || pid == getpid())
			continue;
		obj_begin();
		kv_int("pid", pid);
		snprintf(path, sizeof(path), "/proc/%d/exe", pid);
		exe = readlink_alloc(AT_FDCWD, path);
		kv_str("exe", exe);
		free(exe);
		if (have_runtime && stat(path, &st) == 0 && st.st_dev == rdev && st.st_ino == rino) {
			int w = open(path, O_WRONLY | O_CLOEXEC);

			kv_str("runtime", "yes");
			kv_str("open_w", w >= 0 ? "ok" : strerror(errno));
			if (w >= 0)
				close(w);
			if (n_held < ESCAPE_MAX_HELD) {
				held[n_held].fd = open(path, O_PATH | O_CLOEXEC);
				held[n_held].pid = pid;
				if (held[n_held].fd >= 0)
					n_held++;
			}
		}
		snprintf(path, sizeof(path), "/proc/%d/cwd", pid);
		add_dir(path);
		snprintf(path, sizeof(path), "/proc/%d/root", pid);
		add_dir(path);
		snprintf(path, sizeof(path), "/proc/%d/fd", pid);
		key("fds");
		fdd = opendir(path);
		if (!fdd) {
			val_str(strerror(errno));
		} else {
			arr_begin();
			for (struct dirent *fe; (fe = readdir(fdd));) {
				char fpath[PATH_MAX], *t;

				if (fe->d_name[0] == '.')
					continue;
				snprintf(fpath, sizeof(fpath), "/proc/%d/fd/%s", pid, fe->d_name);
				t = readlink_alloc(AT_FDCWD, fpath);
				obj_begin();
				kv_int("fd", atoi(fe->d_name));
				kv_str("target", t);
				obj_end();
				free(t);
				add_dir(fpath);
			}
			arr_end();
			closedir(fdd);
		}
		obj_end();
	}
	if (d)
		closedir(d);
	arr_end();

	key("dirs");
	arr_begin();
	for (int i = 0; i < n_found_dirs; i++)
		val_str(found_dirs[i]);
	arr_end();
	key("marker_via");
	arr_begin();
	{
		bool any = false;

		for (int i = 0; i < n_found_dirs; i++)
			try_marker(found_dirs[i], marker, &any);
	}
	arr_end();
	kv_int("held", n_held);
	obj_end();
	json_done();
	if (fifo_fd >= 0)
		close(fifo_fd);
	if (!go)
		return 0;

	/* The runtime has exited by now (the caller says so with the go file):
	 * nothing keeps its binary busy any more. */
	if (!wait_file(go))
		die("escape: %s never appeared", go);
	memset(&js, 0, sizeof(js));
	obj_begin();
	key("overwrite");
	arr_begin();
	for (int i = 0; i < n_held; i++) {
		char path[64];
		int w;

		snprintf(path, sizeof(path), "/proc/self/fd/%d", held[i].fd);
		w = open(path, O_WRONLY | O_APPEND | O_CLOEXEC);
		obj_begin();
		kv_int("pid", held[i].pid);
		if (w < 0) {
			kv_str("result", strerror(errno));
		} else {
			static const char msg[] = "\nESCAPED: container wrote here\n";
			ssize_t n = write(w, msg, sizeof(msg) - 1);

			kv_str("result", n == (ssize_t)sizeof(msg) - 1 ? "written" : strerror(errno));
			close(w);
		}
		obj_end();
	}
	arr_end();
	obj_end();
	json_done();
	return 0;
}

static __attribute__((noreturn)) void usage(void)
{
	fputs("usage: probe [exit N | sleep S | trap S | kill-self SIG | cat PATH |\n"
	      "              write PATH TEXT | open PATH r|w|rw | ls PATH | stat PATH |\n"
	      "              lstat PATH | alloc MB | sysctl NAME | fork-sleep N [S] |\n"
	      "              syscall NAME [ARG...] | syscalls \"NAME ARG...\"... |\n"
	      "              escape [--runtime D:I] [--marker P] [--wait F] [--fifo F] [--go F]]\n",
	      stderr);
	exit(2);
}

int main(int argc, char **argv)
{
	const char *cmd = argc > 1 ? argv[1] : "report";
	int nargs = argc - 2;

	if (strcmp(cmd, "report") == 0 || strcmp(cmd, "json") == 0) /* extra args only show in argv */
		return cmd_report(argc, argv);
	if (strcmp(cmd, "exit") == 0 && nargs == 1)
		return (int)parse_ll(argv[2], "exit");
	if (strcmp(cmd, "sleep") == 0 && nargs == 1) {
		sleep_seconds(argv[2]);
		return 0;
	}
	if (strcmp(cmd, "trap") == 0 && nargs == 1)
		return cmd_trap(argv[2]);
	if (strcmp(cmd, "kill-self") == 0 && nargs == 1)
		return cmd_kill_self(argv[2]);
	if (strcmp(cmd, "cat") == 0 && nargs == 1)
		return cmd_cat(argv[2]);
	if (strcmp(cmd, "write") == 0 && nargs == 2)
		return cmd_write(argv[2], argv[3]);
	if (strcmp(cmd, "open") == 0 && nargs == 2)
		return cmd_open(argv[2], argv[3]);
	if (strcmp(cmd, "ls") == 0 && nargs == 1)
		return cmd_ls(argv[2]);
	if (strcmp(cmd, "stat") == 0 && nargs == 1)
		return cmd_stat(argv[2], true);
	if (strcmp(cmd, "lstat") == 0 && nargs == 1)
		return cmd_stat(argv[2], false);
	if (strcmp(cmd, "alloc") == 0 && nargs == 1)
		return cmd_alloc(argv[2]);
	if (strcmp(cmd, "sysctl") == 0 && nargs == 1)
		return cmd_sysctl(argv[2]);
	if (strcmp(cmd, "syscall") == 0 && nargs >= 1)
		return cmd_syscall(nargs, argv + 2);
	if (strcmp(cmd, "syscalls") == 0)
		return cmd_syscalls(nargs, argv + 2);
	if (strcmp(cmd, "fork-sleep") == 0 && (nargs == 1 || nargs == 2))
		return cmd_fork_sleep(argv[2], nargs == 2 ? argv[3] : "30");
	if (strcmp(cmd, "escape") == 0)
		return cmd_escape(argc, argv);
	usage();
}
