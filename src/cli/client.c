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
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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
