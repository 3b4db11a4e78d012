/* A tiny real server for the tests of the agent's client side
 * (test_client.c, test_attach.c): a forked child that listens on a unix
 * socket in a fresh temporary directory, reads one HTTP request and
 * answers it the way the test scripts.
 *
 * Header-only and static inline, for the reasons testutil.h gives.
 *
 * tu_peer_start returns twice, like fork: in the test process (-1) and in
 * the peer (the connection to answer).  The peer is a copy of the test
 * process, so it must not use cmocka: it ends with _exit, a non-zero code
 * when something went wrong, and leaves what it saw in files of its
 * directory for the test to check afterwards.
 */
#ifndef LAMINA_TESTS_UNIT_PEER_H
#define LAMINA_TESTS_UNIT_PEER_H

#include "testutil.h"

#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>

struct tu_peer {
	char dir[64];   /* /tmp/lm-<tag>-XXXXXX: the socket and the peer's files */
	char sock[128]; /* dir/agent.sock */
	pid_t pid;      /* the peer, in the test process */
};

/* dir/name, for the peer's files ("request": the request it read).  Usable
 * in the peer: it fails nothing, and cuts a name that does not fit. */
static inline void tu_peer_path(const struct tu_peer *p, const char *name, char *buf, size_t size)
{
	snprintf(buf, size, "%s/%s", p->dir, name);
}

/* Reads one request (headers, then Content-Length bytes of body) from fd
 * into buf, NUL-terminated; its length, 0 when the connection closed
 * without one. */
static inline size_t tu_read_request(int fd, char *buf, size_t size)
{
	size_t len = 0, want = 0;
	for (;;) {
		ssize_t n = read(fd, buf + len, size - 1 - len);
		if (n <= 0)
			return len;
		len += (size_t)n;
		buf[len] = '\0';
		char *end = strstr(buf, "\r\n\r\n");
		if (!end)
			continue;
		if (!want) {
			const char *cl = strcasestr(buf, "Content-Length:");
			want = (size_t)(end + 4 - buf) + (cl && cl < end ? strtoul(cl + 15, NULL, 10) : 0);
		}
		if (len >= want)
			return len;
	}
}

/* In the peer: accepts connections until one brings a request (skipping
 * those that close without one: lm_client_open's probe is one), writes
 * the request to dir/request and returns that connection. */
static inline int tu_peer_accept_(int lfd, const struct tu_peer *p)
{
	signal(SIGPIPE, SIG_IGN); /* a client that stopped reading is fine */
	alarm(20);                /* never outlive a test that went wrong */
	for (;;) {
		int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
		if (fd < 0)
			_exit(1);
		char req[65536];
		size_t len = tu_read_request(fd, req, sizeof(req));
		if (len == 0) {
			close(fd);
			continue;
		}
		char path[128];
		tu_peer_path(p, "request", path, sizeof(path));
		int out = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
		if (out < 0 || write(out, req, len) != (ssize_t)len)
			_exit(2);
		close(out);
		close(lfd);
		return fd;
	}
}

/* A unix stream socket bound to path (close-on-exec), not yet listening. */
static inline int tu_bind_unix(const char *path)
{
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(fd >= 0);
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	assert_true(strlen(path) < sizeof(sa.sun_path));
	memcpy(sa.sun_path, path, strlen(path) + 1);
	assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	return fd;
}

/* Makes p's directory (/tmp/lm-<tag>-XXXXXX), listens on p->sock and forks
 * the peer.  In the test process: -1, with p->pid set.  In the peer: the
 * connection that brought the request; answer it, then _exit. */
static inline int tu_peer_start(struct tu_peer *p, const char *tag)
{
	assert_int_equal(tu_mkdtemp(p->dir, sizeof(p->dir), tag), 0);
	FMT(p->sock, "%s/agent.sock", p->dir);
	int lfd = tu_bind_unix(p->sock);
	assert_int_equal(listen(lfd, 8), 0);
	p->pid = fork();
	assert_true(p->pid >= 0);
	if (p->pid == 0)
		return tu_peer_accept_(lfd, p);
	close(lfd);
	return -1;
}

#endif /* LAMINA_TESTS_UNIT_PEER_H */
