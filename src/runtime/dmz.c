/* The sealed launcher: the memfd, and the exec through it. */
#include "runtime/dmz.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "util/cleanup.h"
#include "util/log.h"

extern const unsigned char lm_dmz_image[];
extern const size_t lm_dmz_image_size;

#ifndef MFD_EXEC
#define MFD_EXEC 0x0010U
#endif
#ifndef F_SEAL_EXEC
#define F_SEAL_EXEC 0x0020
#endif

int lm_dmz_open(int min_fd, struct lm_error *err)
{
	/* MFD_EXEC: kernels with vm.memfd_noexec make memfds non-executable
	 * unless asked; older kernels refuse the flag. */
	autofd mfd = memfd_create("lamina-dmz", MFD_CLOEXEC | MFD_ALLOW_SEALING | MFD_EXEC);
	if (mfd < 0 && errno == EINVAL)
		mfd = memfd_create("lamina-dmz", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	if (mfd < 0)
		return lm_err_sys(err, "launcher: memfd_create");
	size_t off = 0;
	while (off < lm_dmz_image_size) {
		ssize_t n = write(mfd, lm_dmz_image + off, lm_dmz_image_size - off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return lm_err_sys(err, "launcher: write memfd");
		off += (size_t)n;
	}
	int seals = F_SEAL_SEAL | F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE;
	/* F_SEAL_EXEC (6.3): the mode can no longer change either */
	if (fcntl(mfd, F_ADD_SEALS, seals | F_SEAL_EXEC) < 0 &&
	    (errno != EINVAL || fcntl(mfd, F_ADD_SEALS, seals) < 0))
		return lm_err_sys(err, "launcher: seal memfd");
	if (mfd >= min_fd)
		return steal_fd(&mfd);
	int fd = fcntl(mfd, F_DUPFD_CLOEXEC, min_fd);
	if (fd < 0)
		return lm_err_sys(err, "launcher: move memfd");
	return fd;
}

void lm_dmz_exec(const struct lm_dmz *dmz, const char *exe, char *const argv[], char *const envp[])
{
	if (dmz->fd < 0) {
		execve(exe, argv, envp);
		return;
	}
	size_t n = 0;
	while (argv[n])
		n++;
	char **args = calloc(n + 2, sizeof(*args));
	if (!args) {
		errno = ENOMEM;
		return;
	}
	args[0] = (char *)exe;
	memcpy(args + 1, argv, n * sizeof(*args));
	if (dmz->via_proc) {
		/* the kernel opens the memfd before close-on-exec closes it */
		char path[32];
		snprintf(path, sizeof(path), "/proc/self/fd/%d", dmz->fd);
		execve(path, args, envp);
	} else {
		syscall(SYS_execveat, dmz->fd, "", args, envp, AT_EMPTY_PATH);
	}
	int saved = errno;
	free(args);
	errno = saved;
}

static bool proc_mounted(const struct lm_spec *spec)
{
	for (size_t i = 0; i < spec->n_mounts; i++) {
		const struct lm_mount *m = &spec->mounts[i];
		if (!strcmp(m->destination, "/proc") && m->type && !strcmp(m->type, "proc"))
			return true;
	}
	return false;
}

int lm_dmz_prepare(const struct lm_spec *spec, int preserve_fds, struct lm_dmz *dmz, struct lm_error *err)
{
	dmz->fd = -1;
	dmz->via_proc = false;
	if (spec->seccomp_blocks_execveat) {
		if (!proc_mounted(spec) || spec->seccomp_blocks_execve) {
			lm_warn("the seccomp profile does not allow execveat and no procfs is mounted at /proc: "
				"the program is exec'd without the sealed launcher (no protection against a "
				"'#!/proc/self/exe' program)");
			return 0;
		}
		dmz->via_proc = true;
	}
	dmz->fd = lm_dmz_open(3 + (preserve_fds > 0 ? preserve_fds : 0), err);
	return dmz->fd < 0 ? -1 : 0;
}
