/* Attach and exec sessions: the agent relays the bytes of an upgraded HTTP
 * connection to and from the container's monitor (monitor/stream.h), which
 * runs the session.  Both ends are nonblocking fds in the agent's epoll;
 * each direction has one buffer, and a side is read only while the buffer
 * towards the other side has room, so a slow reader slows its writer and
 * nothing grows without bound.  The agent keeps no session state beyond
 * the bytes in flight: a killed agent ends the sessions, never the
 * containers. */
#include <errno.h>
#include <fcntl.h>
#include <microhttpd.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "agent/agent.h"
#include "agent/relay.h"
#include "util/fs.h"
#include "util/log.h"

#define RELAY_BUF (256 * 1024)

struct relay_end {
	struct relay *r;
	int fd;
	bool eof;           /* nothing more to read from this end */
	char *buf;          /* bytes read from the other end, waiting for this one */
	size_t len, off;
	uint32_t events;    /* what epoll watches now */
};

struct relay {
	struct relay *next;
	struct agent *a;
	struct relay_end ends[2];   /* 0: the client (upgraded HTTP), 1: the monitor */
	struct MHD_UpgradeResponseHandle *urh;
	bool shut_monitor;          /* the client's end passed on */
	bool monitor_gone;          /* writing to the monitor failed: it closed */
};

static struct relay *relays;

bool agent_relay_owns(void *ptr)
{
	for (struct relay *r = relays; r; r = r->next)
		if (ptr == &r->ends[0] || ptr == &r->ends[1])
			return true;
	return false;
}

static void relay_close(struct relay *r)
{
	for (struct relay **pp = &relays; *pp; pp = &(*pp)->next)
		if (*pp == r) {
			*pp = r->next;
			break;
		}
	for (int k = 0; k < 2; k++) {
		epoll_ctl(r->a->ep, EPOLL_CTL_DEL, r->ends[k].fd, NULL);
		free(r->ends[k].buf);
	}
	close(r->ends[1].fd);
	/* MHD owns the client socket: it closes it */
	MHD_upgrade_action(r->urh, MHD_UPGRADE_ACTION_CLOSE);
	free(r);
}

static void rearm(struct relay *r)
{
	for (int k = 0; k < 2; k++) {
		struct relay_end *e = &r->ends[k], *other = &r->ends[1 - k];
		uint32_t want = 0;
		if (!e->eof && other->len < RELAY_BUF)
			want |= EPOLLIN;
		if (e->off < e->len)
			want |= EPOLLOUT;
		if (want != e->events) {
			struct epoll_event ev = {.events = want, .data.ptr = e};
			epoll_ctl(r->a->ep, EPOLL_CTL_MOD, e->fd, &ev);
			e->events = want;
		}
	}
}

/* Write what is buffered for end e; -1 when its peer is gone. */
static int flush_to(struct relay_end *e)
{
	while (e->off < e->len) {
		ssize_t n = send(e->fd, e->buf + e->off, e->len - e->off, MSG_NOSIGNAL);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			return 0;
		if (n <= 0)
			return -1;
		e->off += (size_t)n;
	}
	e->off = e->len = 0;
	return 0;
}

/* Read from e into the other end's buffer. */
static int fill_from(struct relay_end *e, struct relay_end *to)
{
	while (to->len < RELAY_BUF && !e->eof) {
		if (to->off > 0 && to->off == to->len)
			to->off = to->len = 0;
		ssize_t n = recv(e->fd, to->buf + to->len, RELAY_BUF - to->len, 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			return 0;
		if (n <= 0) {
			e->eof = true;
			return 0;
		}
		to->len += (size_t)n;
	}
	return 0;
}

void agent_relay_event(void *ptr, uint32_t events)
{
	struct relay_end *e = ptr;
	struct relay *r = e->r;
	struct relay_end *other = e == &r->ends[0] ? &r->ends[1] : &r->ends[0];
	if (events & (EPOLLIN | EPOLLHUP | EPOLLERR))
		fill_from(e, other);
	struct relay_end *client = &r->ends[0], *mon = &r->ends[1];
	/* A client that is gone ends the relay.  A monitor that is gone (it
	 * ended the session) takes nothing more from the client, but what it
	 * sent before, its final frame included, still goes to the client. */
	if (flush_to(client) < 0) {
		relay_close(r);
		return;
	}
	if (!r->monitor_gone && flush_to(mon) < 0)
		r->monitor_gone = true;
	if (r->monitor_gone)
		mon->off = mon->len = 0;
	/* the client closed its side: what it sent still goes to the monitor,
	 * then the monitor sees the end too (an exec's stdin closes) and the
	 * output goes on; the monitor ending the session (after its final
	 * frame) ends the relay once that is delivered */
	if (client->eof && !r->shut_monitor && mon->off == mon->len) {
		shutdown(mon->fd, SHUT_WR);
		r->shut_monitor = true;
	}
	if (mon->eof && client->off == client->len) {
		relay_close(r);
		return;
	}
	rearm(r);
}

int agent_relay_start(struct agent *a, int client_fd, int monitor_fd, struct MHD_UpgradeResponseHandle *urh,
		      const char *extra, size_t extra_len, struct lm_error *err)
{
	struct relay *r = calloc(1, sizeof(*r));
	if (!r || extra_len > RELAY_BUF)
		goto fail;
	r->a = a;
	r->urh = urh;
	for (int k = 0; k < 2; k++) {
		r->ends[k].r = r;
		r->ends[k].fd = k == 0 ? client_fd : monitor_fd;
		r->ends[k].buf = malloc(RELAY_BUF);
		if (!r->ends[k].buf)
			goto fail;
		fcntl(r->ends[k].fd, F_SETFL, fcntl(r->ends[k].fd, F_GETFL) | O_NONBLOCK);
	}
	/* what the client sent right behind its request is for the monitor */
	memcpy(r->ends[1].buf, extra, extra_len);
	r->ends[1].len = extra_len;
	for (int k = 0; k < 2; k++) {
		struct epoll_event ev = {.events = 0, .data.ptr = &r->ends[k]};
		if (epoll_ctl(a->ep, EPOLL_CTL_ADD, r->ends[k].fd, &ev) < 0)
			goto fail_registered;
	}
	r->next = relays;
	relays = r;
	rearm(r);
	if (flush_to(&r->ends[1]) < 0) {
		relay_close(r);
		return lm_err(err, EPIPE, "the monitor went away");
	}
	return 0;
fail_registered:
	epoll_ctl(a->ep, EPOLL_CTL_DEL, client_fd, NULL);
	epoll_ctl(a->ep, EPOLL_CTL_DEL, monitor_fd, NULL);
fail:
	if (r) {
		free(r->ends[0].buf);
		free(r->ends[1].buf);
		free(r);
	}
	close(monitor_fd);
	MHD_upgrade_action(urh, MHD_UPGRADE_ACTION_CLOSE);
	return lm_err(err, ENOMEM, "out of memory");
}

void agent_relay_close_all(void)
{
	while (relays)
		relay_close(relays);
}

/* --- the handshake with a monitor --- */

int agent_monitor_session(struct agent *a, const struct ctr *c, json_t *op, int *fd_out, struct lm_error *err)
{
	char dir[4096];
	snprintf(dir, sizeof(dir), "%s/%s", a->run_dir, c->rec.id);
	int dfd = open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0)
		return lm_err_sys(err, "open %s", dir);
	/* through the directory fd: a socket path may be longer than sun_path */
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	snprintf(sa.sun_path, sizeof(sa.sun_path), "/proc/self/fd/%d/monitor.sock", dfd);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		lm_err_sys(err, "connect to the monitor of %s", c->rec.name);
		close(dfd);
		if (fd >= 0)
			close(fd);
		return -1;
	}
	close(dfd);
	char *line = json_dumps(op, JSON_COMPACT);
	size_t len = line ? strlen(line) : 0;
	int rc = -1;
	if (!line) {
		lm_err(err, ENOMEM, "out of memory");
		goto out;
	}
	line[len] = '\n'; /* json_dumps left room for nothing: write the NUL's place */
	if (write(fd, line, len + 1) != (ssize_t)(len + 1)) {
		lm_err_sys(err, "talk to the monitor of %s", c->rec.name);
		goto out;
	}
	/* the answer: one line, read a byte at a time so no frame is taken with it */
	char ans[4096];
	size_t n = 0;
	while (n < sizeof(ans) - 1) {
		struct pollfd p = {.fd = fd, .events = POLLIN};
		if (poll(&p, 1, 10000) <= 0) {
			lm_err(err, ETIMEDOUT, "the monitor of %s did not answer", c->rec.name);
			goto out;
		}
		ssize_t k = read(fd, ans + n, 1);
		if (k <= 0) {
			lm_err(err, EIO, "the monitor of %s closed the session", c->rec.name);
			goto out;
		}
		if (ans[n++] == '\n')
			break;
	}
	ans[n] = '\0';
	json_t *j = json_loads(ans, 0, NULL);
	const char *msg = json_string_value(json_object_get(j, "error"));
	if (!j || (!msg && !json_is_true(json_object_get(j, "ok")))) {
		lm_err(err, EIO, "the monitor of %s answered something else", c->rec.name);
	} else if (msg) {
		int code = (int)json_integer_value(json_object_get(j, "code"));
		lm_err(err, code > 0 ? code : EINVAL, "%s", msg);
	} else {
		*fd_out = fd;
		fd = -1;
		rc = 0;
	}
	json_decref(j);
out:
	free(line);
	if (fd >= 0)
		close(fd);
	return rc;
}
