/* lamina-dmz: the last program the runtime runs before a container's own.
 *
 * Until its last execve the container's process is the runtime (lamina, or
 * lamina-monitor).  Had it exec'd the container's program itself, a program
 * that is a script for "#!/proc/self/exe" (or a link to it) would start the
 * runtime's own host binary inside the container, which could then reopen
 * it for writing through /proc and replace it (CVE-2019-5736).  So the
 * runtime execs this instead, from a sealed memfd made for the one
 * container process (src/runtime/dmz.c), and this execs the program:
 * /proc/self/exe is then only ever the sealed copy of this, which nothing
 * can write and nobody else runs.
 *
 * argv: the path to exec, then the program's argv.  It makes one system
 * call (execve) on success, so a seccomp profile that allows the program's
 * execve allows it too; on failure it writes one line to stderr and exits
 * 127 (not found) or 126, as a shell does.  No libc: freestanding, static,
 * a few hundred bytes of code.
 */
#include <asm/unistd.h>
#include <linux/errno.h>

#if defined(__x86_64__)
static long sys3(long n, long a, long b, long c)
{
	long ret;
	__asm__ volatile("syscall" : "=a"(ret) : "a"(n), "D"(a), "S"(b), "d"(c) : "rcx", "r11", "memory");
	return ret;
}
__asm__(".text\n.global _start\n.type _start,@function\n_start:\n"
	"\txor %rbp, %rbp\n\tmov %rsp, %rdi\n\tand $-16, %rsp\n\tcall dmz_main\n\thlt\n");
#elif defined(__aarch64__)
static long sys3(long n, long a, long b, long c)
{
	register long x8 __asm__("x8") = n;
	register long x0 __asm__("x0") = a;
	register long x1 __asm__("x1") = b;
	register long x2 __asm__("x2") = c;
	__asm__ volatile("svc 0" : "+r"(x0) : "r"(x8), "r"(x1), "r"(x2) : "memory");
	return x0;
}
__asm__(".text\n.global _start\n.type _start,%function\n_start:\n"
	"\tmov x29, #0\n\tmov x30, #0\n\tmov x0, sp\n\tbl dmz_main\n");
#else
#error "lamina-dmz: supports x86_64 and aarch64 only (no system call code for this architecture)"
#endif

__attribute__((noreturn)) void dmz_main(long *sp);

static unsigned long len(const char *s)
{
	unsigned long n = 0;
	while (s[n])
		n++;
	return n;
}

static void put(const char *s)
{
	sys3(__NR_write, 2, (long)s, (long)len(s));
}

/* The failure message, built whole and written at once. */
struct msg {
	char buf[512];
	unsigned long n;
};

static void add(struct msg *m, const char *s)
{
	while (*s && m->n < sizeof(m->buf) - 1)
		m->buf[m->n++] = *s++;
}

/* The program's name comes from the config: control bytes shown as \xNN,
 * so the message stays one line (as lamina's own errors). */
static void add_name(struct msg *m, const char *s)
{
	static const char hex[] = "0123456789abcdef";
	for (; *s && m->n < sizeof(m->buf) - 5; s++) {
		unsigned char c = (unsigned char)*s;
		if (c >= 0x20 && c != 0x7f) {
			m->buf[m->n++] = (char)c;
			continue;
		}
		m->buf[m->n++] = '\\';
		m->buf[m->n++] = 'x';
		m->buf[m->n++] = hex[c >> 4];
		m->buf[m->n++] = hex[c & 15];
	}
}

static const char *reason(long e)
{
	switch (e) {
	case ENOENT: return "No such file or directory";
	case EACCES: return "Permission denied";
	case ENOEXEC: return "Exec format error";
	case ETXTBSY: return "Text file busy";
	case E2BIG: return "Argument list too long";
	case ELOOP: return "Too many levels of symbolic links";
	case ENOTDIR: return "Not a directory";
	case EISDIR: return "Is a directory";
	case ENOMEM: return "Cannot allocate memory";
	case EPERM: return "Operation not permitted";
	case ENAMETOOLONG: return "File name too long";
	case ELIBBAD: return "Accessing a corrupted shared library";
	default: return 0;
	}
}

__attribute__((noreturn)) static void leave(long code)
{
	for (;;)
		sys3(__NR_exit, code, 0, 0);
}

void dmz_main(long *sp)
{
	long argc = sp[0];
	char **argv = (char **)(sp + 1);
	char **envp = argv + argc + 1;
	if (argc < 2) {
		put("lamina-dmz: nothing to run\n");
		leave(127);
	}
	long e = -sys3(__NR_execve, (long)argv[0], (long)(argv + 1), (long)envp);
	const char *why = reason(e);
	char num[24];
	if (!why) {
		/* strerror's text for the common ones, "error N" for the rest */
		char *p = num + sizeof(num) - 1;
		*p = 0;
		do {
			*--p = (char)('0' + e % 10);
			e /= 10;
		} while (e && p > num + 6);
		p -= 6;
		const char *w = "error ";
		for (int i = 0; i < 6; i++)
			p[i] = w[i];
		why = p;
		e = EACCES; /* anything but ENOENT: 126 */
	}
	struct msg m;
	m.n = 0;
	add(&m, "lamina: exec ");
	add_name(&m, argv[1]);
	add(&m, ": ");
	add(&m, why);
	m.buf[m.n++] = '\n';
	sys3(__NR_write, 2, (long)m.buf, (long)m.n);
	leave(e == ENOENT ? 127 : 126);
}
