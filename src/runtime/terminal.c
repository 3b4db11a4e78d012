/* Terminals: the pty is made inside the container (from its own devpts
 * instance, so the pty belongs to the container), its master goes to the
 * caller's console socket with SCM_RIGHTS, and the peer end becomes the
 * process's stdio and controlling terminal. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <termios.h>
#include <unistd.h>

#include "runtime/internal.h"
#include "util/cleanup.h"
#include "util/fs.h"

int lm_console_connect(const char *path, struct lm_error *err)
{
	struct sockaddr_un addr = {.sun_family = AF_UNIX};
	if (strlen(path) >= sizeof(addr.sun_path))
		return lm_err(err, ENAMETOOLONG, "console socket %s: path too long", path);
	strcpy(addr.sun_path, path);
	autofd fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return lm_err_sys(err, "console socket");
	if (connect(fd, (struct sockaddr *)&addr, sizeof(addr)) < 0)
		return lm_err_sys(err, "connect console socket %s", path);
	return steal_fd(&fd);
}

static int send_fd(int sock, int fd, const char *name, struct lm_error *err)
{
	char cbuf[CMSG_SPACE(sizeof(int))];
	memset(cbuf, 0, sizeof(cbuf));
	struct iovec iov = {.iov_base = (void *)name, .iov_len = strlen(name)};
	struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf,
			     .msg_controllen = sizeof(cbuf)};
	struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
	c->cmsg_level = SOL_SOCKET;
	c->cmsg_type = SCM_RIGHTS;
	c->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(c), &fd, sizeof(int));
	if (sendmsg(sock, &msg, MSG_NOSIGNAL) < 0)
		return lm_err_sys(err, "send the terminal to the console socket");
	return 0;
}

int lm_terminal_setup(int console_fd, const struct lm_process *proc, bool bind_console,
		      struct lm_error *err)
{
	autofd master = open("/dev/pts/ptmx", O_RDWR | O_NOCTTY | O_CLOEXEC);
	if (master < 0)
		master = open("/dev/ptmx", O_RDWR | O_NOCTTY | O_CLOEXEC);
	if (master < 0)
		return lm_err_sys(err, "open a pty (is devpts mounted at /dev/pts?)");
	int unlock = 0;
	if (ioctl(master, TIOCSPTLCK, &unlock) < 0)
		return lm_err_sys(err, "unlock pty");
	int ptn;
	if (ioctl(master, TIOCGPTN, &ptn) < 0)
		return lm_err_sys(err, "pty number");
	/* The peer comes straight from the master: no path lookup to race. */
	autofd slave = ioctl(master, TIOCGPTPEER, O_RDWR | O_NOCTTY | O_CLOEXEC);
	if (slave < 0)
		return lm_err_sys(err, "open pty peer");
	if (proc->console_width || proc->console_height) {
		struct winsize ws = {.ws_row = proc->console_height, .ws_col = proc->console_width};
		if (ioctl(slave, TIOCSWINSZ, &ws) < 0)
			return lm_err_sys(err, "set console size");
	}
	if (bind_console) {
		autofd root = open("/", O_PATH | O_DIRECTORY | O_CLOEXEC);
		autofd target = lm_mkfile_in_root(root, "/dev/console", 0600, err);
		if (target < 0)
			return lm_error_prefix(err, "/dev/console");
		char src[64], dst[64];
		snprintf(src, sizeof(src), "/dev/pts/%d", ptn);
		snprintf(dst, sizeof(dst), "/proc/self/fd/%d", target);
		if (mount(src, dst, NULL, MS_BIND, NULL) < 0)
			return lm_err_sys(err, "bind %s to /dev/console", src);
	}
	if (send_fd(console_fd, master, "/dev/ptmx", err) < 0)
		return -1;
	if (setsid() < 0)
		return lm_err_sys(err, "setsid");
	if (ioctl(slave, TIOCSCTTY, 0) < 0)
		return lm_err_sys(err, "set controlling terminal");
	for (int i = 0; i < 3; i++)
		if (dup2(slave, i) < 0)
			return lm_err_sys(err, "terminal as stdio");
	return 0;
}
