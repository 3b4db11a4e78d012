/* The agent API client (see client.h).
 *
 * Both kinds of request share one transfer routine: a plain call gathers
 * the body and parses it at the end, a stream cuts the body into lines as
 * curl hands it over.  Which of the two a body is for is decided on its
 * first byte, by the status: the body of an error status is always
 * gathered, so that its "message" can be reported whatever the request.
 */
#include "cli/client.h"

#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "util/cleanup.h"

#define CALL_BODY_MAX (64u << 20)  /* a container list of thousands is a few MiB */
#define ERROR_BODY_MAX (64u << 10)
#define LINE_MAX_LEN (16u << 20)

struct lm_client {
	char *socket;
	CURL *curl;
	char curl_err[CURL_ERROR_SIZE];
};

struct buf {
	char *data;
	size_t len, cap, max;
};

/* Appends n bytes, keeping data NUL-terminated; -1 past max or out of memory. */
static int buf_add(struct buf *b, const char *p, size_t n)
{
	if (n > b->max - b->len)
		return -1;
	if (b->len + n + 1 > b->cap) {
		size_t cap = b->cap ? b->cap : 4096;
		while (cap < b->len + n + 1)
			cap *= 2;
		char *d = realloc(b->data, cap);
		if (!d)
			return -1;
		b->data = d;
		b->cap = cap;
	}
	memcpy(b->data + b->len, p, n);
	b->len += n;
	b->data[b->len] = '\0';
	return 0;
}

char *lm_client_socket_path(const char *socket_path, const char *state_dir)
{
	if (socket_path && *socket_path)
		return strdup(socket_path);
	const char *env = getenv("LAMINA_SOCKET");
	if (env && *env)
		return strdup(env);
	char *p = NULL;
	if (asprintf(&p, "%s/lamina.sock", state_dir && *state_dir ? state_dir : "/run/lamina") < 0)
		return NULL;
	return p;
}

int lm_client_open(const char *socket_path, const char *state_dir, struct lm_client **out, struct lm_error *err)
{
	autofree char *path = lm_client_socket_path(socket_path, state_dir);
	autofd fd = -1;
	if (!path)
		return lm_err(err, ENOMEM, "out of memory");
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	if (strlen(path) >= sizeof(sa.sun_path))
		return lm_err(err, ENAMETOOLONG, "socket path %s: too long for a unix socket", path);
	memcpy(sa.sun_path, path, strlen(path) + 1);
	/* a connect of our own tells "nobody listens" from later failures,
	 * which curl reports all alike */
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return lm_err_sys(err, "socket");
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		return lm_err_sys(err, "connect to %s", path);

	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
		return lm_err(err, EIO, "cannot initialize libcurl");
	struct lm_client *c = calloc(1, sizeof(*c));
	if (!c || !(c->curl = curl_easy_init())) {
		free(c);
		curl_global_cleanup();
		return lm_err(err, ENOMEM, "out of memory");
	}
	c->socket = steal_ptr(&path);
	*out = c;
	return 0;
}

void lm_client_close(struct lm_client *c)
{
	if (!c)
		return;
	curl_easy_cleanup(c->curl);
	free(c->socket);
	free(c);
	curl_global_cleanup();
}

const char *lm_client_socket(const struct lm_client *c)
{
	return c->socket;
}

char *lm_client_escape(struct lm_client *c, const char *s)
{
	char *e = curl_easy_escape(c->curl, s, 0);
	char *r = e ? strdup(e) : NULL;
	curl_free(e);
	return r;
}

/* --- one transfer --- */

struct transfer {
	struct lm_client *c;
	long status;          /* known from the first body byte on */
	bool failed_status;   /* not 2xx: the body goes to errbody */
	struct buf body;      /* a call's body; a stream's unfinished line */
	struct buf errbody;
	int (*on_line)(const char *line, size_t len, void *ctx);  /* NULL: a call */
	void *ctx;
	bool stopped;         /* on_line asked to stop */
	bool too_big;
};

static void status_seen(struct transfer *t)
{
	if (t->status)
		return;
	curl_easy_getinfo(t->c->curl, CURLINFO_RESPONSE_CODE, &t->status);
	t->failed_status = t->status < 200 || t->status > 299;
}

/* Hands each complete line in the new data to on_line. */
static int feed_lines(struct transfer *t, const char *p, size_t n)
{
	while (n > 0) {
		const char *nl = memchr(p, '\n', n);
		size_t take = nl ? (size_t)(nl - p) : n;
		if (buf_add(&t->body, p, take) < 0) {
			t->too_big = true;
			return -1;
		}
		if (!nl)
			return 0;
		size_t len = t->body.len;
		t->body.len = 0;
		if (t->on_line(t->body.data, len, t->ctx) < 0) {
			t->stopped = true;
			return -1;
		}
		p += take + 1;
		n -= take + 1;
	}
	return 0;
}

static size_t on_data(char *p, size_t size, size_t nmemb, void *ctx)
{
	struct transfer *t = ctx;
	size_t n = size * nmemb;
	status_seen(t);
	if (t->failed_status) {
		/* a long error body is cut, not refused: its start says enough */
		if (t->errbody.len < t->errbody.max)
			buf_add(&t->errbody, p, n < t->errbody.max - t->errbody.len ? n : t->errbody.max - t->errbody.len);
		return n;
	}
	if (!t->on_line) {
		if (buf_add(&t->body, p, n) < 0) {
			t->too_big = true;
			return 0;
		}
		return n;
	}
	return feed_lines(t, p, n) < 0 ? 0 : n;
}

static int status_errno(long status)
{
	switch (status) {
	case 400: return EINVAL;
	case 404: return ENOENT;
	case 409: return EEXIST;
	case 501: return ENOTSUP;
	default: return EIO;
	}
}

/* The error of a non-2xx answer: its "message", else its text, else the status. */
static int status_error(const struct transfer *t, struct lm_error *err)
{
	int code = status_errno(t->status);
	json_t *j = t->errbody.len ? json_loadb(t->errbody.data, t->errbody.len, 0, NULL) : NULL;
	const char *msg = json_string_value(json_object_get(j, "message"));
	/* a container that could not start: the agent says why in errno terms */
	const char *kind = json_string_value(json_object_get(j, "code"));
	if (kind && strcmp(kind, "start_failed") == 0 && json_integer_value(json_object_get(j, "errno")) > 0)
		code = (int)json_integer_value(json_object_get(j, "errno"));
	int rc;
	if (msg && *msg) {
		rc = lm_err(err, code, "%s", msg);
	} else if (!j && t->errbody.len) {
		size_t n = strcspn(t->errbody.data, "\r\n");
		rc = lm_err(err, code, "%.*s", (int)(n > 300 ? 300 : n), t->errbody.data);
	} else {
		rc = lm_err(err, code, "the agent answered HTTP %ld", t->status);
	}
	json_decref(j);
	return rc;
}

static bool add_header(struct curl_slist **list, const char *header)
{
	struct curl_slist *l = curl_slist_append(*list, header);
	if (!l)
		return false;
	*list = l;
	return true;
}

static int transfer_run(struct lm_client *c, const char *method, const char *path, json_t *body,
			struct transfer *t, long *status, struct lm_error *err)
{
	autofree char *url = NULL;
	autofree char *payload = NULL;
	struct curl_slist *headers = NULL;
	int rc = -1;
	if (status)
		*status = 0;
	if (path[0] != '/')
		return lm_err(err, EINVAL, "%s %s: the API path must start with /", method, path);
	if (asprintf(&url, "http://lamina%s", path) < 0 || (body && !(payload = json_dumps(body, JSON_COMPACT))))
		return lm_err(err, ENOMEM, "out of memory");

	CURL *e = c->curl;
	curl_easy_reset(e); /* keeps the connection */
	c->curl_err[0] = '\0';
	bool ok = add_header(&headers, "Accept: application/json");
	/* "Expect:": a body over 1 KiB would otherwise wait a round trip for 100-continue */
	if (payload)
		ok = ok && add_header(&headers, "Content-Type: application/json") && add_header(&headers, "Expect:");
	if (!ok) {
		rc = lm_err(err, ENOMEM, "out of memory");
		goto out;
	}
	curl_easy_setopt(e, CURLOPT_URL, url);
	curl_easy_setopt(e, CURLOPT_UNIX_SOCKET_PATH, c->socket);
	curl_easy_setopt(e, CURLOPT_ERRORBUFFER, c->curl_err);
	curl_easy_setopt(e, CURLOPT_HTTPHEADER, headers);
	curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT, 10L);
	curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_data);
	curl_easy_setopt(e, CURLOPT_WRITEDATA, t);
	if (payload || strcmp(method, "POST") == 0) {
		curl_easy_setopt(e, CURLOPT_POSTFIELDS, payload ? payload : "");
		curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)(payload ? strlen(payload) : 0));
		if (strcmp(method, "POST") != 0)
			curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, method);
	} else if (strcmp(method, "GET") != 0) {
		curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, method);
	}

	CURLcode res = curl_easy_perform(e);
	status_seen(t); /* for an answer without a body */
	if (res == CURLE_WRITE_ERROR && t->stopped) {
		rc = 0;
	} else if (t->too_big) {
		rc = lm_err(err, EFBIG, "%s %s: the agent's answer is too large", method, path);
	} else if (res == CURLE_COULDNT_CONNECT) {
		long os_errno = 0;
		curl_easy_getinfo(e, CURLINFO_OS_ERRNO, &os_errno);
		errno = os_errno == ENOENT ? ENOENT : ECONNREFUSED;
		rc = lm_err_sys(err, "connect to %s", c->socket);
	} else if (res != CURLE_OK) {
		rc = lm_err(err, EIO, "%s %s: %s%s", method, path,
			    t->status ? "the agent's answer broke off: " : "",
			    c->curl_err[0] ? c->curl_err : curl_easy_strerror(res));
	} else if (t->failed_status) {
		if (status)
			*status = t->status;
		rc = status_error(t, err);
	} else {
		if (status)
			*status = t->status;
		rc = 0;
	}
out:
	curl_slist_free_all(headers);
	return rc;
}

int lm_client_call(struct lm_client *c, const char *method, const char *path, json_t *body, long *status,
		   json_t **resp, struct lm_error *err)
{
	struct transfer t = {
		.c = c,
		.body = {.max = CALL_BODY_MAX},
		.errbody = {.max = ERROR_BODY_MAX},
	};
	if (resp)
		*resp = NULL;
	int rc = transfer_run(c, method, path, body, &t, status, err);
	if (rc == 0 && t.body.len && resp) {
		json_error_t jerr;
		json_t *j = json_loadb(t.body.data, t.body.len, 0, &jerr);
		if (j)
			*resp = j;
		else
			rc = lm_err(err, EIO, "%s %s: the agent's answer is not JSON: %s", method, path, jerr.text);
	}
	free(t.body.data);
	free(t.errbody.data);
	return rc;
}

int lm_client_stream(struct lm_client *c, const char *method, const char *path,
		     int (*on_line)(const char *line, size_t len, void *ctx), void *ctx, long *status,
		     struct lm_error *err)
{
	struct transfer t = {
		.c = c,
		.body = {.max = LINE_MAX_LEN},
		.errbody = {.max = ERROR_BODY_MAX},
		.on_line = on_line,
		.ctx = ctx,
	};
	int rc = transfer_run(c, method, path, NULL, &t, status, err);
	if (rc == 0 && !t.stopped && t.body.len)
		on_line(t.body.data, t.body.len, ctx);
	free(t.body.data);
	free(t.errbody.data);
	return rc;
}

/* --- upgraded connections ---
 *
 * libcurl cannot hand over the connection of a request it made (it takes a
 * 101 for an interim answer and waits for the final one), so here it only
 * connects (CURLOPT_CONNECT_ONLY: the same socket path, connect timeout and
 * errors as every call), and the request and the answer go over the socket
 * directly.  The answer's headers are peeked before they are consumed, so
 * that nothing past their empty line is read: the frames that follow them
 * stay in the socket for the session.
 */

#define UPGRADE_HEADERS_MAX (64u << 10)

/* A connected socket to the agent: our own blocking copy of the one curl made. */
static int upgrade_connect(struct lm_client *c, const char *path, int *fd, struct lm_error *err)
{
	char errbuf[CURL_ERROR_SIZE] = "";
	CURL *e = curl_easy_init();
	if (!e)
		return lm_err(err, ENOMEM, "out of memory");
	curl_easy_setopt(e, CURLOPT_URL, "http://lamina/");
	curl_easy_setopt(e, CURLOPT_UNIX_SOCKET_PATH, c->socket);
	curl_easy_setopt(e, CURLOPT_CONNECT_ONLY, 1L);
	curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT, 10L);
	curl_easy_setopt(e, CURLOPT_ERRORBUFFER, errbuf);
	CURLcode res = curl_easy_perform(e);
	curl_socket_t s = CURL_SOCKET_BAD;
	int rc = 0;
	if (res == CURLE_OK && curl_easy_getinfo(e, CURLINFO_ACTIVESOCKET, &s) == CURLE_OK && s != CURL_SOCKET_BAD) {
		/* curl closes its own when the handle goes; the connection stays with ours */
		*fd = fcntl(s, F_DUPFD_CLOEXEC, 3);
		int fl = *fd >= 0 ? fcntl(*fd, F_GETFL) : -1;
		if (fl < 0 || fcntl(*fd, F_SETFL, fl & ~O_NONBLOCK) < 0)
			rc = lm_err_sys(err, "POST %s: the socket", path);
	} else if (res == CURLE_COULDNT_CONNECT) {
		long os_errno = 0;
		curl_easy_getinfo(e, CURLINFO_OS_ERRNO, &os_errno);
		errno = os_errno == ENOENT ? ENOENT : ECONNREFUSED;
		rc = lm_err_sys(err, "connect to %s", c->socket);
	} else {
		rc = lm_err(err, EIO, "POST %s: %s", path, errbuf[0] ? errbuf : curl_easy_strerror(res));
	}
	curl_easy_cleanup(e);
	return rc;
}

static int send_all(int fd, const char *p, size_t n)
{
	while (n > 0) {
		ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			return -1;
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

/* Consumes exactly n bytes that a peek has shown are there. */
static int consume(int fd, size_t n)
{
	char sink[4096];
	while (n > 0) {
		ssize_t r = recv(fd, sink, n < sizeof(sink) ? n : sizeof(sink), 0);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return -1;
		n -= (size_t)r;
	}
	return 0;
}

/* One block of headers, through its empty line, into h (NUL-terminated),
 * and not a byte more taken from fd. */
static int read_headers(int fd, const char *path, struct buf *h, struct lm_error *err)
{
	h->len = 0;
	for (;;) {
		char peek[4096];
		ssize_t n = recv(fd, peek, sizeof(peek), MSG_PEEK);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return lm_err_sys(err, "POST %s: reading the agent's answer", path);
		if (n == 0)
			return lm_err(err, EIO, "POST %s: the agent closed the connection %s", path,
				      h->len ? "in the middle of its answer" : "without an answer");
		size_t before = h->len;
		size_t from = before >= 3 ? before - 3 : 0; /* an empty line split across peeks */
		if (buf_add(h, peek, (size_t)n) < 0)
			return lm_err(err, EPROTO, "POST %s: the agent's answer has too many headers", path);
		const char *end = memmem(h->data + from, h->len - from, "\r\n\r\n", 4);
		if (end) {
			h->len = (size_t)(end + 4 - h->data);
			h->data[h->len] = '\0';
		}
		if (consume(fd, h->len - before) < 0)
			return lm_err(err, EIO, "POST %s: the agent's answer broke off", path);
		if (end)
			return 0;
	}
}

/* The value of header name in a block of headers, copied to out ("" when absent). */
static void header_value(const char *headers, const char *name, char *out, size_t len)
{
	size_t nl = strlen(name);
	out[0] = '\0';
	for (const char *line = strstr(headers, "\r\n"); line && line[2] != '\r'; line = strstr(line + 2, "\r\n")) {
		const char *p = line + 2;
		if (strncasecmp(p, name, nl) != 0 || p[nl] != ':')
			continue;
		p += nl + 1;
		p += strspn(p, " \t");
		size_t n = strcspn(p, "\r");
		snprintf(out, len, "%.*s", (int)n, p);
		return;
	}
}

/* Decodes a chunked body from its start into out (as far as it is there,
 * within out's max); true once its last chunk has come. */
static bool dechunk(const char *in, size_t n, struct buf *out)
{
	out->len = 0;
	size_t i = 0;
	while (i < n) {
		/* not memmem: under UBSan GCC takes its null checks for a null
		 * argument (-Wnonnull) */
		size_t eol = i;
		while (eol + 1 < n && !(in[eol] == '\r' && in[eol + 1] == '\n'))
			eol++;
		if (eol + 1 >= n)
			return false;
		const char *crlf = in + eol;
		char *endp;
		unsigned long size = strtoul(in + i, &endp, 16);
		if (endp == in + i)
			return true; /* not chunked after all: what there is will do */
		i = (size_t)(crlf - in) + 2;
		if (size == 0)
			return true;
		size_t have = n - i < size ? n - i : size;
		size_t room = out->max - out->len;
		buf_add(out, in + i, have < room ? have : room);
		if (have < size)
			return false;
		i += size + 2;
	}
	return false;
}

/* The body of an answer that did not switch, as far as it tells why (it is
 * cut at ERROR_BODY_MAX). */
static void read_error_body(int fd, const char *headers, long status, struct buf *body)
{
	char cl[32], te[64];
	header_value(headers, "Content-Length", cl, sizeof(cl));
	header_value(headers, "Transfer-Encoding", te, sizeof(te));
	bool chunked = strcasestr(te, "chunked") != NULL;
	if (status == 204 || status == 304 || (cl[0] && strtoull(cl, NULL, 10) == 0))
		return;
	size_t want = cl[0] && !chunked ? strtoull(cl, NULL, 10) : SIZE_MAX;
	struct buf raw = {.max = chunked ? 2 * ERROR_BODY_MAX : ERROR_BODY_MAX};
	for (;;) {
		char chunk[4096];
		size_t room = raw.max - raw.len;
		if (want != SIZE_MAX && want - raw.len < room)
			room = want - raw.len;
		if (room == 0)
			break;
		ssize_t n = recv(fd, chunk, room < sizeof(chunk) ? room : sizeof(chunk), 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0 || buf_add(&raw, chunk, (size_t)n) < 0)
			break;
		if (chunked && dechunk(raw.data, raw.len, body))
			break;
	}
	if (chunked)
		dechunk(raw.data, raw.len, body);
	else if (raw.len)
		buf_add(body, raw.data, raw.len);
	free(raw.data);
}

int lm_client_upgrade(struct lm_client *c, const char *path, json_t *body, int *fd, long *status,
		      struct lm_error *err)
{
	autofd sock = -1;
	autofree char *payload = NULL;
	autofree char *request = NULL;
	struct buf h = {.max = UPGRADE_HEADERS_MAX};
	struct transfer t = {.c = c, .errbody = {.max = ERROR_BODY_MAX}};
	int rc = -1;
	*fd = -1;
	if (status)
		*status = 0;
	if (path[0] != '/')
		return lm_err(err, EINVAL, "POST %s: the API path must start with /", path);
	if (body && !(payload = json_dumps(body, JSON_COMPACT)))
		return lm_err(err, ENOMEM, "out of memory");
	int n = asprintf(&request,
			 "POST %s HTTP/1.1\r\nHost: lamina\r\nConnection: Upgrade\r\nUpgrade: lamina-stream\r\n"
			 "Accept: application/json\r\n%sContent-Length: %zu\r\n\r\n%s",
			 path, payload ? "Content-Type: application/json\r\n" : "", payload ? strlen(payload) : 0,
			 payload ? payload : "");
	if (n < 0) {
		request = NULL;
		return lm_err(err, ENOMEM, "out of memory");
	}
	if (upgrade_connect(c, path, &sock, err) < 0)
		return -1;
	if (send_all(sock, request, (size_t)n) < 0)
		return lm_err_sys(err, "POST %s: sending the request", path);
	for (;;) {
		if (read_headers(sock, path, &h, err) < 0)
			goto out;
		if (sscanf(h.data, "HTTP/1.%*d %ld", &t.status) != 1 || t.status < 100 || t.status > 599) {
			lm_err(err, EIO, "POST %s: the agent's answer is not HTTP: %.*s", path,
			       (int)strcspn(h.data, "\r\n"), h.data);
			goto out;
		}
		/* an interim answer (100 Continue) comes before the real one */
		if (t.status >= 200 || t.status == 101)
			break;
	}
	if (status)
		*status = t.status;
	if (t.status == 101) {
		*fd = steal_fd(&sock);
		rc = 0;
	} else if (t.status >= 200 && t.status <= 299) {
		rc = lm_err(err, EPROTO, "POST %s: the agent answered HTTP %ld instead of switching to a session", path,
			    t.status);
	} else {
		read_error_body(sock, h.data, t.status, &t.errbody);
		rc = status_error(&t, err);
	}
out:
	free(h.data);
	free(t.errbody.data);
	return rc;
}
