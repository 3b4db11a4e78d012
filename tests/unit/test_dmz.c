/* Unit tests for the sealed launcher (runtime/dmz.c, src/dmz/dmz.c), outside
 * any container: the memfd is sealed against writes, resizes and mode
 * changes and sits above the preserved fds; a program exec'd through it gets
 * its argv and env and is itself (not the launcher) once running; exec
 * errors read as a shell's (127 not found, 126 otherwise); a
 * '#!/proc/self/exe' script reaches the launcher, never the caller's binary;
 * and which seccomp profiles let it start.
 */
#include "testutil.h"

#include <sys/mman.h>

#include <jansson.h>

#include "runtime/dmz.h"
#include "runtime/seccomp.h"

#ifndef F_SEAL_EXEC
#define F_SEAL_EXEC 0x0020
#endif

extern const unsigned char lm_dmz_image[];
extern const size_t lm_dmz_image_size;

static char tmp[64];

static int setup(void **state)
{
	(void)state;
	return tu_mkdtemp(tmp, sizeof(tmp), "dmz");
}

static int teardown(void **state)
{
	(void)state;
	tu_rm_tree(tmp, 0);
	return 0;
}

static void test_memfd_is_sealed(void **state)
{
	(void)state;
	struct lm_error err;
	int fd = lm_dmz_open(20, &err);
	assert_ok(fd, err);
	assert_true(fd >= 20);
	assert_true(fcntl(fd, F_GETFD) & FD_CLOEXEC);
	int seals = fcntl(fd, F_GET_SEALS);
	int want = F_SEAL_SEAL | F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE;
	assert_int_equal(seals & want, want);
	struct stat st;
	assert_int_equal(fstat(fd, &st), 0);
	assert_int_equal((size_t)st.st_size, lm_dmz_image_size);
	assert_true(st.st_mode & S_IXUSR);
	char head[4];
	assert_int_equal(pread(fd, head, 4, 0), 4);
	assert_memory_equal(head, "\177ELF", 4);

	errno = 0;
	assert_int_equal(pwrite(fd, "x", 1, 0), -1);
	assert_int_equal(errno, EPERM);
	assert_int_equal(ftruncate(fd, 0), -1);
	assert_int_equal(ftruncate(fd, 1 << 20), -1);
	assert_int_equal(fcntl(fd, F_ADD_SEALS, 0), -1); /* F_SEAL_SEAL: no change */
	/* reopened through /proc, as the CVE-2019-5736 attacker does: still no write */
	char path[64];
	FMT(path, "/proc/self/fd/%d", fd);
	int w = open(path, O_WRONLY | O_CLOEXEC);
	if (w >= 0) {
		errno = 0;
		assert_int_equal(write(w, "x", 1), -1);
		assert_int_equal(errno, EPERM);
		close(w);
	} else {
		assert_int_equal(errno, EPERM);
	}
	void *m = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	assert_true(m == MAP_FAILED);
	if (seals & F_SEAL_EXEC)
		assert_int_equal(fchmod(fd, 0644), -1);
	assert_int_equal(pread(fd, head, 4, 0), 4);
	assert_memory_equal(head, "\177ELF", 4);
	close(fd);
}

/* Run exe with argv through a fresh launcher in a child (started with
 * execveat, or through /proc/self/fd when via_proc); its stdout and stderr
 * (merged) in out, its exit status returned. */
static int launch_via(bool via_proc, const char *exe, const char *const argv[], const char *const envp[],
		      char *out, size_t size)
{
	struct lm_error err;
	int fd = lm_dmz_open(3, &err);
	assert_ok(fd, err);
	struct lm_dmz dmz = {.fd = fd, .via_proc = via_proc};
	int p[2];
	assert_int_equal(pipe2(p, O_CLOEXEC), 0);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		dup2(p[1], 1);
		dup2(p[1], 2);
		lm_dmz_exec(&dmz, exe, (char *const *)argv, (char *const *)envp);
		_exit(99); /* the launcher itself did not start */
	}
	close(p[1]);
	close(fd);
	size_t len = 0;
	ssize_t n;
	while (len < size - 1 && (n = read(p[0], out + len, size - 1 - len)) > 0)
		len += (size_t)n;
	out[len] = '\0';
	close(p[0]);
	int status;
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	return WEXITSTATUS(status);
}

static int launch(const char *exe, const char *const argv[], const char *const envp[], char *out, size_t size)
{
	return launch_via(false, exe, argv, envp, out, size);
}

static void test_runs_the_program(void **state)
{
	(void)state;
	const char *argv[] = {"my-sh", "-c", "echo \"$0|$1|$X|$(readlink /proc/$$/exe)\"", "zero", "one", NULL};
	const char *envp[] = {"X=from-env", "PATH=/usr/bin:/bin", NULL};
	char out[512];
	assert_int_equal(launch("/bin/sh", argv, envp, out, sizeof(out)), 0);
	char want[PATH_MAX + 64];
	char real[PATH_MAX];
	assert_non_null(realpath("/bin/sh", real));
	FMT(want, "zero|one|from-env|%s\n", real);
	assert_string_equal(out, want);

	const char *exit7[] = {"sh", "-c", "exit 7", NULL};
	assert_int_equal(launch("/bin/sh", exit7, envp, out, sizeof(out)), 7);
	/* started through its /proc/self/fd path: the same, and the memfd does
	 * not stay open in the program (close-on-exec) */
	const char *fds[] = {"sh", "-c", "for f in /proc/$$/fd/*; do readlink $f; done | grep -c lamina-dmz; true", NULL};
	assert_int_equal(launch_via(true, "/bin/sh", fds, envp, out, sizeof(out)), 0);
	assert_string_equal(out, "0\n");
	assert_int_equal(launch_via(true, "/bin/sh", argv, envp, out, sizeof(out)), 0);
	assert_string_equal(out, want);
	assert_int_equal(launch_via(true, "/bin/sh", exit7, envp, out, sizeof(out)), 7);
}

static void test_exec_errors_read_as_a_shells(void **state)
{
	(void)state;
	const char *envp[] = {NULL};
	char out[512];
	const char *argv[] = {"prog", NULL};
	char missing[128];
	FMT(missing, "%s/missing", tmp);
	assert_int_equal(launch(missing, argv, envp, out, sizeof(out)), 127);
	assert_string_equal(out, "lamina: exec prog: No such file or directory\n");

	/* a name with control bytes stays one line */
	const char *odd[] = {"pro\ng\033", NULL};
	assert_int_equal(launch(missing, odd, envp, out, sizeof(out)), 127);
	assert_string_equal(out, "lamina: exec pro\\x0ag\\x1b: No such file or directory\n");

	char plain[128];
	FMT(plain, "%s/plain", tmp);
	tu_write_file(plain, "data\n", 5, 0644);
	assert_int_equal(launch(plain, argv, envp, out, sizeof(out)), 126);
	assert_string_equal(out, "lamina: exec prog: Permission denied\n");

	char junk[128];
	FMT(junk, "%s/junk", tmp);
	tu_write_file(junk, "\001\002\003\004junk", 8, 0755);
	assert_int_equal(launch(junk, argv, envp, out, sizeof(out)), 126);
	assert_string_equal(out, "lamina: exec prog: Exec format error\n");

	/* not a regular file: the kernel's EACCES */
	assert_int_equal(launch(tmp, argv, envp, out, sizeof(out)), 126);
	assert_string_equal(out, "lamina: exec prog: Permission denied\n");
}

/* CVE-2019-5736: a program that is a script for /proc/self/exe starts
 * whatever the exec'ing process is.  Through the launcher that is the
 * launcher's sealed copy (which has nothing left to run), never this test
 * binary (the stand-in for the runtime). */
static void test_self_exe_script_reaches_the_launcher(void **state)
{
	(void)state;
	char script[128];
	FMT(script, "%s/self", tmp);
	tu_put_file(script, "#!/proc/self/exe\n");
	assert_int_equal(chmod(script, 0755), 0);
	const char *argv[] = {script, "--help", NULL};
	const char *envp[] = {NULL};
	char out[512];
	int rc = launch(script, argv, envp, out, sizeof(out));
	assert_int_equal(rc, 127);
	assert_string_equal(out, "lamina-dmz: nothing to run\n");
	/* each round through the script drops one argument: it always ends */
	const char *argv2[] = {script, "a", "b", "c", "d", NULL};
	assert_int_equal(launch(script, argv2, envp, out, sizeof(out)), 127);
	assert_string_equal(out, "lamina-dmz: nothing to run\n");
}

static void test_no_argv(void **state)
{
	(void)state;
	const char *argv[] = {NULL};
	const char *envp[] = {NULL};
	char out[512];
	/* the program's argv may not be empty (the config refuses it); the
	 * launcher still gets the path and stops clearly */
	assert_int_equal(launch("/bin/true", argv, envp, out, sizeof(out)), 127);
	assert_string_equal(out, "lamina-dmz: nothing to run\n");
}

/* lm_seccomp_allows on a profile given as text (NULL: none); a text that
 * does not parse allows nothing. */
static bool allows(const char *text, const char *syscall)
{
	if (!text)
		return lm_seccomp_allows(NULL, syscall);
	json_t *sc = json_loads(text, 0, NULL);
	bool ok = sc && lm_seccomp_allows(sc, syscall);
	json_decref(sc);
	return ok;
}

static void test_seccomp_profiles(void **state)
{
	(void)state;
	assert_true(allows(NULL, "execveat"));
	assert_true(allows("{\"defaultAction\":\"SCMP_ACT_ALLOW\"}", "execveat"));
	assert_true(allows("{\"defaultAction\":\"SCMP_ACT_LOG\"}", "execveat"));
	assert_true(allows("{\"defaultAction\":\"SCMP_ACT_ERRNO\",\"syscalls\":["
				      "{\"names\":[\"read\",\"execveat\"],\"action\":\"SCMP_ACT_ALLOW\"}]}", "execveat"));
	assert_true(allows("{\"defaultAction\":\"SCMP_ACT_ALLOW\",\"syscalls\":["
				      "{\"names\":[\"mount\"],\"action\":\"SCMP_ACT_ERRNO\"}]}", "execveat"));
	assert_false(allows("{\"defaultAction\":\"SCMP_ACT_ERRNO\",\"syscalls\":["
				       "{\"names\":[\"execve\"],\"action\":\"SCMP_ACT_ALLOW\"}]}", "execveat"));
	assert_false(allows("{\"defaultAction\":\"SCMP_ACT_ALLOW\",\"syscalls\":["
				       "{\"names\":[\"execveat\"],\"action\":\"SCMP_ACT_KILL\"}]}", "execveat"));
	assert_false(allows("{\"defaultAction\":\"SCMP_ACT_ERRNO\",\"syscalls\":["
				       "{\"names\":[\"execveat\"],\"action\":\"SCMP_ACT_ALLOW\","
				       "\"args\":[{\"index\":4,\"value\":0,\"op\":\"SCMP_CMP_EQ\"}]}]}", "execveat"));
	assert_false(allows("{\"defaultAction\":\"SCMP_ACT_ALLOW\",\"syscalls\":["
				       "{\"names\":[\"execveat\"],\"action\":\"SCMP_ACT_ALLOW\"},"
				       "{\"names\":[\"execveat\"],\"action\":\"SCMP_ACT_ERRNO\"}]}", "execveat"));
	assert_false(allows("not json", "execveat"));

	/* the rules are per syscall */
	assert_true(allows("{\"defaultAction\":\"SCMP_ACT_ERRNO\",\"syscalls\":["
					  "{\"names\":[\"execve\"],\"action\":\"SCMP_ACT_ALLOW\"}]}", "execve"));
}

static void test_prepare(void **state)
{
	(void)state;
	char dest[] = "/proc", type[] = "proc";
	struct lm_mount proc = {.destination = dest, .type = type};
	struct lm_spec spec = {0};
	struct lm_dmz dmz = {.fd = 7};
	struct lm_error err;
	/* no profile: execveat */
	assert_ok(lm_dmz_prepare(&spec, 5, &dmz, &err), err);
	assert_true(dmz.fd >= 8);
	assert_false(dmz.via_proc);
	close(dmz.fd);
	/* execveat denied, execve allowed (as the parser marks such a profile),
	 * a procfs at /proc: through /proc/self/fd */
	spec.has_seccomp = true;
	spec.seccomp_blocks_execveat = true;
	spec.mounts = &proc;
	spec.n_mounts = 1;
	assert_ok(lm_dmz_prepare(&spec, 0, &dmz, &err), err);
	assert_true(dmz.fd >= 3);
	assert_true(dmz.via_proc);
	close(dmz.fd);
	/* no /proc: no launcher (with a warning) */
	spec.n_mounts = 0;
	assert_ok(lm_dmz_prepare(&spec, 0, &dmz, &err), err);
	assert_int_equal(dmz.fd, -1);
	/* execve not allowed outright either: no launcher */
	spec.n_mounts = 1;
	spec.seccomp_blocks_execve = true;
	assert_ok(lm_dmz_prepare(&spec, 0, &dmz, &err), err);
	assert_int_equal(dmz.fd, -1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_memfd_is_sealed),
		cmocka_unit_test_setup_teardown(test_runs_the_program, setup, teardown),
		cmocka_unit_test_setup_teardown(test_exec_errors_read_as_a_shells, setup, teardown),
		cmocka_unit_test_setup_teardown(test_self_exe_script_reaches_the_launcher, setup, teardown),
		cmocka_unit_test(test_no_argv),
		cmocka_unit_test(test_seccomp_profiles),
		cmocka_unit_test(test_prepare),
	};
	return cmocka_run_group_tests_name("dmz", tests, NULL, NULL);
}
