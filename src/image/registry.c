/* See registry.h.
 *
 * Two transfer engines share one set of curl callbacks: small documents
 * (manifests, tokens, error bodies) are buffered with a hard size cap and
 * fetched with curl_easy_perform; blobs are jobs on a curl multi handle, each
 * streamed into its sink from curl's own buffer, so memory stays flat however
 * large the layers.  A job keeps the bytes it delivered across attempts: a
 * retry asks for "Range: bytes=<delivered>-" and only when the server answers
 * 200 instead of 206 is the sink reset and the hash restarted.
 *
 * Authentication is reactive the first time (a 401 tells us the scheme, realm
 * and service) and proactive after that: the scheme is remembered per host,
 * tokens per (host, scope), so the blobs of a pull reuse the manifest's token.
 * A 401 on a request that carried a token drops that token and fetches one
 * new token; a second 401 is a real refusal.
 */
#include "image/registry.h"

#include <ctype.h>
#include <curl/curl.h>
#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "image/auth.h"
#include "image/manifest_internal.h"
#include "util/cleanup.h"

#ifndef LAMINA_VERSION
#define LAMINA_VERSION "dev"
#endif

#define ERROR_BODY_MAX (64u << 10)
#define TOKEN_BODY_MAX (1u << 20)
#define CONNECT_TIMEOUT_S 10L
/* A transfer slower than this for LOW_SPEED_TIME seconds is a stall. */
#define LOW_SPEED_LIMIT 1024L
#define LOW_SPEED_TIME 30L
#define BACKOFF_MAX_MS 30000u

static const char manifest_accept[] =
	"Accept: " LM_MEDIA_OCI_MANIFEST ", " LM_MEDIA_OCI_INDEX ", " LM_MEDIA_DOCKER_MANIFEST
	", " LM_MEDIA_DOCKER_LIST;

/* ------------------------------------------------------------------------ */
/* client                                                                   */

struct plain_host {
	struct plain_host *next;
	char *host;
};

struct mirror {
	char *registry;  /* normalized */
	char *endpoint;
};

struct lm_registry_client {
	char *auth_file;
	char **insecure;
	char **tls_loopback;
	struct mirror *mirrors;
	size_t n_mirrors;
	char *user_agent;
	int retries;
	int parallel;
	unsigned retry_delay_ms;
	bool allow_foreign_urls;

	CURLSH *share;
	pthread_mutex_t share_locks[CURL_LOCK_DATA_LAST];
	struct lm_auth_store auth;
	pthread_mutex_t lock;       /* guards plain */
	struct plain_host *plain;   /* insecure registries found to speak plain HTTP */
};

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static CURLcode curl_init_result;

static void curl_init(void)
{
	curl_init_result = curl_global_init(CURL_GLOBAL_DEFAULT);
}

static void share_lock(CURL *h, curl_lock_data data, curl_lock_access access, void *ctx)
{
	struct lm_registry_client *c = ctx;
	if (data < CURL_LOCK_DATA_LAST)
		pthread_mutex_lock(&c->share_locks[data]);
}

static void share_unlock(CURL *h, curl_lock_data data, void *ctx)
{
	struct lm_registry_client *c = ctx;
	if (data < CURL_LOCK_DATA_LAST)
		pthread_mutex_unlock(&c->share_locks[data]);
}

static char **strv_dup(const char *const *v)
{
	size_t n = 0;
	while (v && v[n])
		n++;
	char **out = calloc(n + 1, sizeof(*out));
	if (!out)
		return NULL;
	for (size_t i = 0; i < n; i++)
		if (!(out[i] = strdup(v[i]))) {
			for (size_t j = 0; j < i; j++)
				free(out[j]);
			free(out);
			return NULL;
		}
	return out;
}

static void strv_free(char **v)
{
	for (size_t i = 0; v && v[i]; i++)
		free(v[i]);
	free(v);
}

static bool strv_has_registry(char *const *v, const char *name)
{
	autofree char *want = lm_auth_normalize_registry(name);
	for (size_t i = 0; want && v && v[i]; i++) {
		autofree char *have = lm_auth_normalize_registry(v[i]);
		if (have && strcmp(have, want) == 0)
			return true;
	}
	return false;
}

int lm_registry_client_new(const struct lm_registry_opts *opts, struct lm_registry_client **out,
			   struct lm_error *err)
{
	static const struct lm_registry_opts defaults;
	if (!opts)
		opts = &defaults;
	pthread_once(&curl_once, curl_init);
	if (curl_init_result != CURLE_OK)
		return lm_err(err, EIO, "libcurl: %s", curl_easy_strerror(curl_init_result));

	struct lm_registry_client *c = calloc(1, sizeof(*c));
	if (!c)
		return lm_err(err, ENOMEM, "out of memory");
	for (int i = 0; i < CURL_LOCK_DATA_LAST; i++)
		pthread_mutex_init(&c->share_locks[i], NULL);
	pthread_mutex_init(&c->lock, NULL);
	lm_auth_store_init(&c->auth);

	c->retries = opts->retries == 0 ? 3 : opts->retries < 0 ? 0 : opts->retries;
	c->parallel = opts->parallel <= 0 ? 4 : opts->parallel;
	c->retry_delay_ms = opts->retry_delay_ms ? opts->retry_delay_ms : 250;
	c->allow_foreign_urls = opts->allow_foreign_urls;
	c->auth_file = opts->auth_file ? strdup(opts->auth_file) : NULL;
	c->user_agent = strdup(opts->user_agent ? opts->user_agent : "lamina/" LAMINA_VERSION);
	c->insecure = strv_dup(opts->insecure);
	c->tls_loopback = strv_dup(opts->tls_loopback);
	c->mirrors = calloc(opts->n_mirrors + 1, sizeof(*c->mirrors));
	bool ok = (!opts->auth_file || c->auth_file) && c->user_agent && c->insecure &&
		  c->tls_loopback && c->mirrors;
	for (size_t i = 0; ok && i < opts->n_mirrors; i++) {
		const struct lm_registry_mirror *m = &opts->mirrors[i];
		if (!m->registry || !m->endpoint || !*m->endpoint) {
			lm_registry_client_free(c);
			return lm_err(err, EINVAL, "mirror %zu: registry and endpoint are required", i);
		}
		c->mirrors[i].registry = lm_auth_normalize_registry(m->registry);
		c->mirrors[i].endpoint = strdup(m->endpoint);
		c->n_mirrors = i + 1;
		ok = c->mirrors[i].registry && c->mirrors[i].endpoint;
	}
	c->share = ok ? curl_share_init() : NULL;
	if (!c->share) {
		lm_registry_client_free(c);
		return lm_err(err, ENOMEM, "out of memory");
	}
	/* Connections are not shared: libcurl does not support one connection
	 * cache across threads.  DNS answers and TLS sessions are. */
	curl_share_setopt(c->share, CURLSHOPT_LOCKFUNC, share_lock);
	curl_share_setopt(c->share, CURLSHOPT_UNLOCKFUNC, share_unlock);
	curl_share_setopt(c->share, CURLSHOPT_USERDATA, c);
	curl_share_setopt(c->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_DNS);
	curl_share_setopt(c->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_SSL_SESSION);
	*out = c;
	return 0;
}

void lm_registry_client_free(struct lm_registry_client *c)
{
	if (!c)
		return;
	if (c->share)
		curl_share_cleanup(c->share);
	for (int i = 0; i < CURL_LOCK_DATA_LAST; i++)
		pthread_mutex_destroy(&c->share_locks[i]);
	lm_auth_store_destroy(&c->auth);
	for (struct plain_host *p = c->plain, *n; p; p = n) {
		n = p->next;
		free(p->host);
		free(p);
	}
	pthread_mutex_destroy(&c->lock);
	for (size_t i = 0; i < c->n_mirrors; i++) {
		free(c->mirrors[i].registry);
		free(c->mirrors[i].endpoint);
	}
	free(c->mirrors);
	strv_free(c->insecure);
	strv_free(c->tls_loopback);
	free(c->auth_file);
	free(c->user_agent);
	free(c);
}

/* ------------------------------------------------------------------------ */
/* endpoints                                                                */

struct endpoint {
	char host[256];       /* host[:port] as it goes into URLs */
	char cred_name[256];  /* the name credentials are looked up under */
	bool https;
	bool insecure;        /* listed insecure: TLS unverified, here and after redirects */
	bool may_fall_back;   /* insecure: plain HTTP when TLS fails */
	bool mirror;
};

static bool safe_host(const char *h)
{
	if (!*h)
		return false;
	for (const char *p = h; *p; p++)
		if (!isalnum((unsigned char)*p) && !strchr(".-:[]_", *p))
			return false;
	return true;
}

/* Repository paths and references go into URLs unescaped: only the
 * characters the reference grammar allows may pass. */
static bool safe_path(const char *s)
{
	if (!*s)
		return false;
	for (const char *p = s; *p; p++)
		if (!isalnum((unsigned char)*p) && !strchr("._-/:+", *p))
			return false;
	/* no empty, "." or ".." segments */
	for (const char *seg = s; seg; seg = strchr(seg, '/') ? strchr(seg, '/') + 1 : NULL) {
		size_t l = strcspn(seg, "/");
		if (l == 0 || (l == 1 && seg[0] == '.') || (l == 2 && seg[0] == '.' && seg[1] == '.'))
			return false;
	}
	return true;
}

static bool host_is_plain(struct lm_registry_client *c, const char *host)
{
	bool found = false;
	pthread_mutex_lock(&c->lock);
	for (struct plain_host *p = c->plain; p && !found; p = p->next)
		found = strcmp(p->host, host) == 0;
	pthread_mutex_unlock(&c->lock);
	return found;
}

static void remember_plain(struct lm_registry_client *c, const char *host)
{
	if (host_is_plain(c, host))
		return;
	struct plain_host *p = calloc(1, sizeof(*p));
	if (!p || !(p->host = strdup(host))) {
		free(p);
		return;
	}
	pthread_mutex_lock(&c->lock);
	p->next = c->plain;
	c->plain = p;
	pthread_mutex_unlock(&c->lock);
}

/* name: how the user spelled the registry (for the insecure/tls lists);
 * host: where requests go. */
static int endpoint_init(struct lm_registry_client *c, struct endpoint *ep, const char *name,
			 const char *host_spec, bool mirror, struct lm_error *err)
{
	memset(ep, 0, sizeof(*ep));
	const char *host = host_spec;
	int scheme = 0; /* 1 https, 2 http */
	if (strncasecmp(host, "https://", 8) == 0) {
		host += 8;
		scheme = 1;
	} else if (strncasecmp(host, "http://", 7) == 0) {
		host += 7;
		scheme = 2;
	}
	size_t hl = strcspn(host, "/");
	if (hl == 0 || hl >= sizeof(ep->host))
		return lm_err(err, EINVAL, "invalid registry host \"%.100s\"", host_spec);
	memcpy(ep->host, host, hl);
	ep->host[hl] = '\0';
	if (!safe_host(ep->host))
		return lm_err(err, EINVAL, "invalid registry host \"%.100s\"", host_spec);
	snprintf(ep->cred_name, sizeof(ep->cred_name), "%s", mirror ? ep->host : name);
	ep->mirror = mirror;

	ep->insecure = strv_has_registry(c->insecure, name) || strv_has_registry(c->insecure, ep->host);
	if (scheme)
		ep->https = scheme == 1;
	else if (lm_registry_is_loopback(ep->host))
		ep->https = strv_has_registry(c->tls_loopback, name) ||
			    strv_has_registry(c->tls_loopback, ep->host);
	else if (ep->insecure)
		ep->https = ep->may_fall_back = !host_is_plain(c, ep->host);
	else
		ep->https = true;
	return 0;
}

#define MAX_ENDPOINTS 9

static int endpoints_for(struct lm_registry_client *c, const struct lm_image_ref *ref,
			 struct endpoint *eps, size_t *n, struct lm_error *err)
{
	*n = 0;
	if (!ref || !ref->registry || !ref->repository)
		return lm_err(err, EINVAL, "incomplete image reference");
	if (!safe_path(ref->repository))
		return lm_err(err, EINVAL, "invalid repository \"%.100s\"", ref->repository);
	autofree char *norm = lm_auth_normalize_registry(ref->registry);
	if (!norm)
		return lm_err(err, ENOMEM, "out of memory");
	for (size_t i = 0; i < c->n_mirrors && *n < MAX_ENDPOINTS - 1; i++) {
		if (strcmp(c->mirrors[i].registry, norm) != 0)
			continue;
		if (endpoint_init(c, &eps[*n], c->mirrors[i].endpoint, c->mirrors[i].endpoint, true, err) < 0)
			return lm_error_prefix(err, "mirror of %s", ref->registry);
		(*n)++;
	}
	const char *host = lm_image_ref_endpoint_host(ref);
	if (endpoint_init(c, &eps[*n], ref->registry, host ? host : ref->registry, false, err) < 0)
		return err_ret(err);
	(*n)++;
	return 0;
}

static void ref_name(const struct lm_image_ref *ref, char *buf, size_t size)
{
	if (ref->digest)
		snprintf(buf, size, "%s/%s%s%s@%s", ref->registry, ref->repository, ref->tag ? ":" : "",
			 ref->tag ? ref->tag : "", ref->digest);
	else
		snprintf(buf, size, "%s/%s:%s", ref->registry, ref->repository,
			 ref->tag ? ref->tag : "latest");
}

/* ------------------------------------------------------------------------ */
/* one HTTP exchange                                                        */

struct blob_job;

struct xfer {
	CURL *easy;
	struct curl_slist *headers;
	char errbuf[CURL_ERROR_SIZE];
	/* response headers of the last response (redirects reset them) */
	char *content_type;
	char *docker_digest;
	char *www_auth;
	char *content_range;
	/* buffered body */
	char *body;
	size_t len;
	size_t limit;
	bool overflow;   /* body exceeded limit */
	bool hard_limit; /* overflow aborts the transfer */
	/* streamed body (blob jobs) */
	struct blob_job *job;
};

static void xfer_reset_response(struct xfer *x)
{
	free(x->content_type);
	free(x->docker_digest);
	free(x->www_auth);
	free(x->content_range);
	free(x->body);
	x->content_type = x->docker_digest = x->www_auth = x->content_range = x->body = NULL;
	x->len = 0;
	x->overflow = false;
}

static void xfer_cleanup(struct xfer *x)
{
	if (x->easy)
		curl_easy_cleanup(x->easy);
	curl_slist_free_all(x->headers);
	x->easy = NULL;
	x->headers = NULL;
	xfer_reset_response(x);
}

static char *trim_dup(const char *s, size_t n)
{
	while (n && (*s == ' ' || *s == '\t')) {
		s++;
		n--;
	}
	while (n && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\r' || s[n - 1] == '\n'))
		n--;
	return strndup(s, n);
}

static size_t header_cb(char *data, size_t size, size_t nmemb, void *ctx)
{
	struct xfer *x = ctx;
	size_t n = size * nmemb;
	if (n >= 5 && strncmp(data, "HTTP/", 5) == 0) {
		/* a new response (after a redirect or a 100): forget the last one */
		free(x->content_type);
		free(x->docker_digest);
		free(x->content_range);
		free(x->www_auth);
		x->content_type = x->docker_digest = x->content_range = x->www_auth = NULL;
		return n;
	}
	const char *colon = memchr(data, ':', n);
	if (!colon)
		return n;
	size_t nl = (size_t)(colon - data);
	const char *v = colon + 1;
	size_t vl = n - nl - 1;
	char **slot = NULL;
	if (nl == 12 && strncasecmp(data, "content-type", nl) == 0)
		slot = &x->content_type;
	else if (nl == 21 && strncasecmp(data, "docker-content-digest", nl) == 0)
		slot = &x->docker_digest;
	else if (nl == 13 && strncasecmp(data, "content-range", nl) == 0)
		slot = &x->content_range;
	else if (nl == 16 && strncasecmp(data, "www-authenticate", nl) == 0) {
		/* Prefer a Bearer challenge when a registry offers several. */
		if (x->www_auth && strncasecmp(x->www_auth, "bearer", 6) == 0)
			return n;
		slot = &x->www_auth;
	}
	if (slot) {
		free(*slot);
		*slot = trim_dup(v, vl);
	}
	return n;
}

static size_t blob_write_cb(char *data, size_t size, size_t nmemb, void *ctx);

static size_t buffer_write_cb(char *data, size_t size, size_t nmemb, void *ctx)
{
	struct xfer *x = ctx;
	size_t n = size * nmemb;
	if (x->overflow)
		return x->hard_limit ? 0 : n;
	if (x->len + n > x->limit) {
		x->overflow = true;
		if (x->hard_limit)
			return 0;
		n = x->limit - x->len;
	}
	char *nb = realloc(x->body, x->len + n + 1);
	if (!nb)
		return 0;
	x->body = nb;
	memcpy(x->body + x->len, data, n);
	x->len += n;
	x->body[x->len] = '\0';
	return size * nmemb;
}

/* Everything every request gets: timeouts, protocols, TLS policy. */
static int xfer_setup(struct lm_registry_client *c, struct xfer *x, const char *url, bool verify_tls,
		      struct lm_error *err)
{
	x->easy = curl_easy_init();
	if (!x->easy)
		return lm_err(err, ENOMEM, "out of memory");
	CURL *e = x->easy;
	x->errbuf[0] = '\0';
	curl_easy_setopt(e, CURLOPT_URL, url);
	curl_easy_setopt(e, CURLOPT_ERRORBUFFER, x->errbuf);
	curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(e, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
	/* Blob GETs are redirected to storage; libcurl keeps our Authorization
	 * header to the original host (and port and scheme) only. */
	curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 1L);
	curl_easy_setopt(e, CURLOPT_MAXREDIRS, 5L);
	curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT, CONNECT_TIMEOUT_S);
	curl_easy_setopt(e, CURLOPT_LOW_SPEED_LIMIT, LOW_SPEED_LIMIT);
	curl_easy_setopt(e, CURLOPT_LOW_SPEED_TIME, LOW_SPEED_TIME);
	curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(e, CURLOPT_USERAGENT, c->user_agent);
	curl_easy_setopt(e, CURLOPT_SHARE, c->share);
	curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, header_cb);
	curl_easy_setopt(e, CURLOPT_HEADERDATA, x);
	curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, x->job ? blob_write_cb : buffer_write_cb);
	curl_easy_setopt(e, CURLOPT_WRITEDATA, x);
	/* Compressed layers are the payload: no transfer decoding on top. */
	curl_easy_setopt(e, CURLOPT_HTTP_CONTENT_DECODING, 0L);
	if (!verify_tls) {
		curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 0L);
		curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 0L);
	}
	return 0;
}

static int xfer_add_header(struct xfer *x, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int xfer_add_header(struct xfer *x, const char *fmt, ...)
{
	autofree char *line = NULL;
	va_list ap;
	va_start(ap, fmt);
	int r = vasprintf(&line, fmt, ap);
	va_end(ap);
	if (r < 0) {
		line = NULL;
		return -ENOMEM;
	}
	struct curl_slist *n = curl_slist_append(x->headers, line);
	if (!n)
		return -ENOMEM;
	x->headers = n;
	return 0;
}

static bool curl_retryable(CURLcode rc)
{
	switch (rc) {
	case CURLE_COULDNT_CONNECT:
	case CURLE_OPERATION_TIMEDOUT:
	case CURLE_PARTIAL_FILE:
	case CURLE_RECV_ERROR:
	case CURLE_SEND_ERROR:
	case CURLE_GOT_NOTHING:
	case CURLE_HTTP2:
	case CURLE_HTTP2_STREAM:
	case CURLE_WEIRD_SERVER_REPLY:
		return true;
	default:
		return false;
	}
}

static bool status_retryable(long status)
{
	return status == 408 || status == 429 || status == 500 || status == 502 || status == 503 ||
	       status == 504;
}

static int curl_errno(CURLcode rc)
{
	switch (rc) {
	case CURLE_COULDNT_CONNECT:
		return ECONNREFUSED;
	case CURLE_OPERATION_TIMEDOUT:
		return ETIMEDOUT;
	case CURLE_COULDNT_RESOLVE_HOST:
		return EHOSTUNREACH;
	case CURLE_OUT_OF_MEMORY:
		return ENOMEM;
	default:
		return EIO;
	}
}

static const char *curl_message(const struct xfer *x, CURLcode rc)
{
	return x->errbuf[0] ? x->errbuf : curl_easy_strerror(rc);
}

static int status_errno(long status)
{
	if (status == 401 || status == 403)
		return EACCES;
	if (status == 404)
		return ENOENT;
	if (status == 429)
		return EAGAIN;
	if (status >= 500)
		return EIO;
	return EPROTO;
}

/* "HTTP 404: manifest unknown" from the registry's JSON error body. */
static void describe_status(long status, const char *body, size_t len, char *out, size_t size)
{
	char detail[400] = "";
	if (body && len) {
		json_error_t jerr;
		json_auto_t *root = json_loadb(body, len, 0, &jerr);
		json_t *errors = json_object_get(root, "errors");
		json_t *first = json_array_get(errors, 0);
		const char *code = json_string_value(json_object_get(first, "code"));
		const char *msg = json_string_value(json_object_get(first, "message"));
		if (!msg)
			msg = json_string_value(json_object_get(root, "details"));
		if (!msg)
			msg = json_string_value(json_object_get(root, "message"));
		if (!msg)
			msg = json_string_value(json_object_get(root, "error"));
		if (code) {
			char lc[64];
			size_t i = 0;
			for (; code[i] && i + 1 < sizeof(lc); i++)
				lc[i] = code[i] == '_' ? ' ' : (char)tolower((unsigned char)code[i]);
			lc[i] = '\0';
			if (msg && strcmp(lc, msg) != 0)
				snprintf(detail, sizeof(detail), "%s: %.300s", lc, msg);
			else
				snprintf(detail, sizeof(detail), "%s", lc);
		} else if (msg) {
			snprintf(detail, sizeof(detail), "%.300s", msg);
		} else if (!root) {
			/* plain text: its first line, if it is printable */
			size_t i = 0;
			for (; i < len && i < 200 && body[i] != '\n' && body[i] != '\r'; i++)
				if (!isprint((unsigned char)body[i]))
					break;
			if (i > 0 && (i == len || i == 200 || body[i] == '\n' || body[i] == '\r'))
				snprintf(detail, sizeof(detail), "%.*s", (int)i, body);
		}
	}
	if (!detail[0]) {
		if (status == 404)
			snprintf(detail, sizeof(detail), "not found");
		else if (status == 401)
			snprintf(detail, sizeof(detail), "unauthorized");
	}
	if (detail[0])
		snprintf(out, size, "HTTP %ld: %s", status, detail);
	else
		snprintf(out, size, "HTTP %ld", status);
}

static void backoff_sleep(struct lm_registry_client *c, int attempt)
{
	unsigned ms = c->retry_delay_ms;
	for (int i = 1; i < attempt && ms < BACKOFF_MAX_MS; i++)
		ms *= 2;
	if (ms > BACKOFF_MAX_MS)
		ms = BACKOFF_MAX_MS;
	struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};
	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

struct request {
	const char *method;      /* "GET" or "HEAD" */
	const char *url;
	const char *accept;      /* a full "Accept: ..." line, or NULL */
	const char *authorization;
	bool verify_tls;
	size_t limit;            /* body cap */
	bool hard_limit;         /* above the cap is an error (manifests) */
};

/* Perform one request, retrying transport failures and 5xx with backoff.
 * Returns 0 once any final HTTP answer arrived (x holds it, *status its code). */
static int perform(struct lm_registry_client *c, const struct request *rq, struct xfer *x,
		   long *status, CURLcode *last_rc, struct lm_error *err)
{
	for (int attempt = 0;; attempt++) {
		xfer_cleanup(x);
		x->limit = rq->limit;
		x->hard_limit = rq->hard_limit;
		if (xfer_setup(c, x, rq->url, rq->verify_tls, err) < 0)
			return err_ret(err);
		if ((rq->accept && xfer_add_header(x, "%s", rq->accept) < 0) ||
		    (rq->authorization && xfer_add_header(x, "Authorization: %s", rq->authorization) < 0))
			return lm_err(err, ENOMEM, "out of memory");
		curl_easy_setopt(x->easy, CURLOPT_HTTPHEADER, x->headers);
		if (strcmp(rq->method, "HEAD") == 0)
			curl_easy_setopt(x->easy, CURLOPT_NOBODY, 1L);
		CURLcode rc = curl_easy_perform(x->easy);
		*last_rc = rc;
		*status = 0;
		curl_easy_getinfo(x->easy, CURLINFO_RESPONSE_CODE, status);
		if (rc == CURLE_WRITE_ERROR && x->overflow)
			return lm_err(err, EFBIG, "%s %s: response larger than %zu bytes", rq->method, rq->url,
				      rq->limit);
		if (rc == CURLE_OK && !(status_retryable(*status) && attempt < c->retries))
			return 0;
		if (rc != CURLE_OK && !(curl_retryable(rc) && attempt < c->retries)) {
			if (attempt == 0)
				return lm_err(err, curl_errno(rc), "%s %s: %s", rq->method, rq->url,
					      curl_message(x, rc));
			return lm_err(err, curl_errno(rc), "%s %s: %s (gave up after %d attempts)", rq->method,
				      rq->url, curl_message(x, rc), attempt + 1);
		}
		backoff_sleep(c, attempt + 1);
	}
}

/* ------------------------------------------------------------------------ */
/* auth                                                                     */

static int auth_failed(struct lm_error *err, const struct endpoint *ep, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static int auth_failed(struct lm_error *err, const struct endpoint *ep, const char *fmt, ...)
{
	char what[LM_ERROR_MSG_MAX - 128];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	return lm_err(err, EACCES, "authentication to %s failed: %s", ep->cred_name, what);
}

static char *url_escape(const char *s)
{
	char *e = curl_easy_escape(NULL, s, 0);
	char *out = e ? strdup(e) : NULL;
	curl_free(e);
	return out;
}

/* Ask realm for a token; cred may be NULL (anonymous). */
static int fetch_token(struct lm_registry_client *c, const struct endpoint *ep, const char *realm,
		       const char *service, const char *scope, const char *extra_scope,
		       const struct lm_credentials *cred, char **token, long *expires_in,
		       struct lm_error *err)
{
	if (strncasecmp(realm, "https://", 8) != 0 && strncasecmp(realm, "http://", 7) != 0)
		return auth_failed(err, ep, "token realm \"%.200s\" is not an http(s) URL", realm);
	/* The registry's challenge may name a scope of its own: ask for both. */
	const char *names[] = {"service", "scope", "scope"};
	const char *values[] = {service, scope && *scope ? scope : NULL,
				extra_scope && *extra_scope && (!scope || strcmp(scope, extra_scope) != 0)
					? extra_scope : NULL};
	autofree char *url = strdup(realm);
	char sep = strchr(realm, '?') ? '&' : '?';
	for (size_t i = 0; url && i < 3; i++) {
		if (!values[i])
			continue;
		autofree char *v = url_escape(values[i]);
		char *next = NULL;
		if (!v || asprintf(&next, "%s%c%s=%s", url, sep, names[i], v) < 0)
			next = NULL;
		free(url);
		url = next;
		sep = '&';
	}
	if (!url)
		return lm_err(err, ENOMEM, "out of memory");
	autofree char *basic = cred ? lm_auth_basic_header(cred) : NULL;
	if (cred && !basic)
		return lm_err(err, ENOMEM, "out of memory");
	/* The realm is another server; it gets the registry's TLS policy. */
	struct request rq = {.method = "GET", .url = url, .authorization = basic,
			     .verify_tls = !ep->insecure, .limit = TOKEN_BODY_MAX, .hard_limit = true};
	struct xfer x = {0};
	long status = 0;
	CURLcode rc;
	int r = perform(c, &rq, &x, &status, &rc, err);
	if (basic)
		explicit_bzero(basic, strlen(basic));
	if (r < 0) {
		xfer_cleanup(&x);
		return auth_failed(err, ep, "token server: %s", err->msg);
	}
	if (status != 200) {
		char desc[512];
		describe_status(status, x.body, x.len, desc, sizeof(desc));
		xfer_cleanup(&x);
		return auth_failed(err, ep, "token server %.200s: %s%s", realm, desc,
				   cred || status != 401 ? "" : " (no credentials configured)");
	}
	r = lm_auth_parse_token(x.body ? x.body : "", x.len, token, expires_in, err);
	xfer_cleanup(&x);
	if (r < 0)
		return auth_failed(err, ep, "token server %.200s: %s", realm, err->msg);
	return 0;
}

static int lookup_credentials(struct lm_registry_client *c, const struct endpoint *ep,
			      const char *repository, struct lm_credentials *cred, struct lm_error *err)
{
	int r = lm_auth_lookup(c->auth_file, ep->cred_name, repository, cred, err);
	if (r < 0)
		return auth_failed(err, ep, "%s", err->msg);
	return r;
}

/* What a request carried, to judge the 401 it may get back. */
enum sent_kind { SENT_NONE, SENT_BASIC, SENT_CACHED_TOKEN, SENT_FRESH_TOKEN };

struct auth_used {
	enum sent_kind kind;
	bool anonymous;  /* no credentials were configured for it */
	char *token;
};

static void auth_used_clear(struct auth_used *u)
{
	if (u->token)
		explicit_bzero(u->token, strlen(u->token));
	free(u->token);
	memset(u, 0, sizeof(*u));
}

/* The Authorization value for a request to ep, from what we know so far;
 * *out NULL means anonymous. */
static int auth_header(struct lm_registry_client *c, const struct endpoint *ep, const char *repository,
		       const char *scope, const char *extra_scope, char **out, struct auth_used *used,
		       struct lm_error *err)
{
	*out = NULL;
	auth_used_clear(used);
	autofree char *realm = NULL;
	autofree char *service = NULL;
	enum lm_auth_scheme scheme = lm_auth_store_scheme(&c->auth, ep->host, &realm, &service);
	if (scheme == LM_AUTH_NONE)
		return 0;
	struct lm_credentials cred = {0};
	if (scheme == LM_AUTH_BASIC) {
		int r = lookup_credentials(c, ep, repository, &cred, err);
		if (r < 0)
			return err_ret(err);
		if (r > 0) {
			*out = lm_auth_basic_header(&cred);
			used->kind = SENT_BASIC;
		}
		lm_credentials_free(&cred);
		return r > 0 && !*out ? lm_err(err, ENOMEM, "out of memory") : 0;
	}
	const char *key = scope ? scope : "";
	char *token = lm_auth_store_token(&c->auth, ep->host, key);
	used->kind = SENT_CACHED_TOKEN;
	if (!token) {
		int r = lookup_credentials(c, ep, repository, &cred, err);
		if (r < 0)
			return err_ret(err);
		long expires_in = 0;
		used->kind = SENT_FRESH_TOKEN;
		used->anonymous = r == 0;
		r = fetch_token(c, ep, realm, service, scope, extra_scope, r > 0 ? &cred : NULL, &token,
				&expires_in, err);
		lm_credentials_free(&cred);
		if (r < 0)
			return err_ret(err);
		if (lm_auth_store_put_token(&c->auth, ep->host, key, token, expires_in) < 0) {
			free(token);
			return lm_err(err, ENOMEM, "out of memory");
		}
	}
	if (asprintf(out, "Bearer %s", token) < 0) {
		*out = NULL;
		free(token);
		return lm_err(err, ENOMEM, "out of memory");
	}
	used->token = token;
	return 0;
}

/* A 401 arrived.  0: try again (the auth store now knows better); negative:
 * a real refusal, described.  Credentials or a token fetched for this very
 * request that are refused are final; a cached token may just have expired
 * early and is replaced once. */
static int after_401(struct lm_registry_client *c, const struct endpoint *ep, const char *repository,
		     const char *scope, const struct xfer *x, const struct auth_used *used, int round,
		     char **extra_scope, struct lm_error *err)
{
	char desc[512];
	describe_status(401, x->body, x->len, desc, sizeof(desc));
	if (!x->www_auth)
		return auth_failed(err, ep, "%s (no WWW-Authenticate challenge)", desc);
	struct lm_auth_challenge ch;
	if (lm_auth_parse_challenge(x->www_auth, &ch, err) < 0)
		return auth_failed(err, ep, "%s: %s", desc, err->msg);
	if (lm_auth_store_note(&c->auth, ep->host, &ch) < 0) {
		lm_auth_challenge_free(&ch);
		return lm_err(err, ENOMEM, "out of memory");
	}
	if (used->token)
		lm_auth_store_drop_token(&c->auth, ep->host, scope ? scope : "", used->token);
	if (ch.scheme == LM_AUTH_BEARER && ch.scope && extra_scope && !*extra_scope)
		*extra_scope = strdup(ch.scope);
	enum lm_auth_scheme scheme = ch.scheme;
	lm_auth_challenge_free(&ch);
	if (used->kind == SENT_BASIC || used->kind == SENT_FRESH_TOKEN || round >= 3)
		return auth_failed(err, ep, "%s%s", desc,
				   used->anonymous ? " (no credentials configured)" : "");
	if (scheme == LM_AUTH_BASIC) {
		struct lm_credentials cred = {0};
		int r = lookup_credentials(c, ep, repository, &cred, err);
		lm_credentials_free(&cred);
		if (r < 0)
			return err_ret(err);
		if (r == 0)
			return auth_failed(err, ep, "%s (no credentials configured)", desc);
	}
	return 0;
}

/* ------------------------------------------------------------------------ */
/* registry requests (buffered)                                             */

/* GET/HEAD path on ep with auth and insecure fallback.  On 0, x holds the
 * final answer (any status). */
static int registry_request(struct lm_registry_client *c, struct endpoint *ep, const char *repository,
			    const char *scope, const char *method, const char *path, const char *accept,
			    size_t limit, bool hard_limit, struct xfer *x, long *status,
			    struct lm_error *err)
{
	autofree char *extra_scope = NULL;
	for (int round = 0;; round++) {
		autofree char *url = NULL;
		if (asprintf(&url, "%s://%s%s", ep->https ? "https" : "http", ep->host, path) < 0) {
			url = NULL;
			return lm_err(err, ENOMEM, "out of memory");
		}
		autofree char *authz = NULL;
		struct auth_used used = {0};
		if (auth_header(c, ep, repository, scope, extra_scope, &authz, &used, err) < 0) {
			auth_used_clear(&used);
			return err_ret(err);
		}
		struct request rq = {.method = method, .url = url, .accept = accept, .authorization = authz,
				     .verify_tls = !ep->insecure, .limit = limit, .hard_limit = hard_limit};
		CURLcode rc = CURLE_OK;
		int r = perform(c, &rq, x, status, &rc, err);
		if (authz)
			explicit_bzero(authz, strlen(authz));
		if (r < 0 && ep->may_fall_back && ep->https &&
		    (rc == CURLE_SSL_CONNECT_ERROR || rc == CURLE_RECV_ERROR || rc == CURLE_GOT_NOTHING)) {
			/* An insecure registry that does not speak TLS: plain HTTP from now on. */
			ep->https = false;
			ep->may_fall_back = false;
			remember_plain(c, ep->host);
			lm_error_clear(err);
			auth_used_clear(&used);
			round--;
			continue;
		}
		if (r == 0 && *status == 401)
			r = after_401(c, ep, repository, scope, x, &used, round, &extra_scope, err);
		else if (r == 0)
			r = 1; /* an answer */
		auth_used_clear(&used);
		if (r != 0)
			return r < 0 ? r : 0;
		/* 0 from after_401: try again, knowing better */
	}
}

/* ------------------------------------------------------------------------ */
/* manifests (parsing and index selection: manifest.c)                      */

static bool is_schema1_type(const char *mt)
{
	return !strcmp(mt, "application/vnd.docker.distribution.manifest.v1+json") ||
	       !strcmp(mt, "application/vnd.docker.distribution.manifest.v1+prettyjws");
}

static char *content_type_base(const char *ct)
{
	if (!ct)
		return strdup("");
	size_t n = strcspn(ct, ";");
	char *out = trim_dup(ct, n);
	for (char *p = out; p && *p; p++)
		*p = (char)tolower((unsigned char)*p);
	return out;
}

/* Which kind of document did we get?  The Content-Type decides; a generic
 * one (or none) defers to the body's mediaType. */
static int classify(const char *content_type, const char *body, size_t len, char **mt_out,
		    struct lm_error *err)
{
	autofree char *ct = content_type_base(content_type);
	if (!ct)
		return lm_err(err, ENOMEM, "out of memory");
	if (is_schema1_type(ct))
		return lm_err(err, ENOTSUP, "Docker schema1 manifests are not supported");
	json_error_t jerr;
	json_auto_t *root = json_loadb(body, len, 0, &jerr);
	if (!json_is_object(root))
		return lm_err(err, EBADMSG, "manifest is not a JSON object");
	json_t *sv = json_object_get(root, "schemaVersion");
	if (json_is_integer(sv) && json_integer_value(sv) == 1)
		return lm_err(err, ENOTSUP, "Docker schema1 manifests are not supported");
	const char *body_mt = json_string_value(json_object_get(root, "mediaType"));
	const char *mt;
	if (is_manifest_type(ct) || is_index_type(ct)) {
		mt = ct;
		if (body_mt && strcmp(body_mt, ct) != 0)
			return lm_err(err, EBADMSG,
				      "manifest media type mismatch: served as %.100s, says %.100s", ct,
				      body_mt);
	} else if (!*ct || !strcmp(ct, "application/json") || !strcmp(ct, "text/plain") ||
		   !strcmp(ct, "application/octet-stream")) {
		if (body_mt)
			mt = body_mt;
		else if (json_object_get(root, "manifests"))
			mt = LM_MEDIA_OCI_INDEX;
		else
			mt = LM_MEDIA_OCI_MANIFEST;
		if (is_schema1_type(mt))
			return lm_err(err, ENOTSUP, "Docker schema1 manifests are not supported");
		if (!is_manifest_type(mt) && !is_index_type(mt))
			return lm_err(err, ENOTSUP, "unsupported manifest media type \"%.100s\"", mt);
	} else {
		return lm_err(err, ENOTSUP, "unsupported manifest media type \"%.100s\"", ct);
	}
	if (!(*mt_out = strdup(mt)))
		return lm_err(err, ENOMEM, "out of memory");
	return 0;
}

struct fetched {
	char *bytes;
	size_t len;
	char *media_type;
	char digest[LM_DIGEST_SIZE];
};

static void fetched_free(struct fetched *f)
{
	free(f->bytes);
	free(f->media_type);
	memset(f, 0, sizeof(*f));
}

static int scope_for(const char *repository, char *buf, size_t size)
{
	return snprintf(buf, size, "repository:%s:pull", repository) >= (int)size ? -1 : 0;
}

/* GET one manifest by tag or digest and check it against every digest we know. */
static int fetch_manifest(struct lm_registry_client *c, struct endpoint *ep, const char *repository,
			  const char *reference, const char *expect_digest, struct fetched *out,
			  struct lm_error *err)
{
	memset(out, 0, sizeof(*out));
	if (!safe_path(reference) || strchr(reference, '/'))
		return lm_err(err, EINVAL, "invalid reference \"%.100s\"", reference);
	char path[1024], scope[600];
	if (snprintf(path, sizeof(path), "/v2/%s/manifests/%s", repository, reference) >= (int)sizeof(path) ||
	    scope_for(repository, scope, sizeof(scope)) < 0)
		return lm_err(err, ENAMETOOLONG, "repository name too long");
	struct xfer x = {0};
	long status = 0;
	if (registry_request(c, ep, repository, scope, "GET", path, manifest_accept, LM_MANIFEST_MAX, true,
			     &x, &status, err) < 0) {
		xfer_cleanup(&x);
		if (err->code == EFBIG)
			return lm_err(err, EFBIG, "manifest larger than %u MiB", LM_MANIFEST_MAX >> 20);
		return err_ret(err);
	}
	if (status != 200) {
		char desc[512];
		describe_status(status, x.body, x.len, desc, sizeof(desc));
		xfer_cleanup(&x);
		return lm_err(err, status_errno(status), "%s", desc);
	}
	lm_sha256_buffer(x.body ? x.body : "", x.len, out->digest);
	if (x.docker_digest && strncmp(x.docker_digest, "sha256:", 7) == 0 &&
	    strcmp(x.docker_digest, out->digest) != 0) {
		lm_err(err, EBADMSG, "manifest digest mismatch: registry says %.80s, content is %s",
		       x.docker_digest, out->digest);
		xfer_cleanup(&x);
		return err_ret(err);
	}
	if (expect_digest && strcmp(expect_digest, out->digest) != 0) {
		lm_err(err, EBADMSG, "manifest digest mismatch: expected %s, content is %s", expect_digest,
		       out->digest);
		xfer_cleanup(&x);
		return err_ret(err);
	}
	if (classify(x.content_type, x.body ? x.body : "", x.len, &out->media_type, err) < 0) {
		xfer_cleanup(&x);
		return err_ret(err);
	}
	out->bytes = x.body ? x.body : strdup("");
	out->len = x.len;
	x.body = NULL;
	xfer_cleanup(&x);
	if (!out->bytes) {
		fetched_free(out);
		return lm_err(err, ENOMEM, "out of memory");
	}
	return 0;
}

static int get_manifest_at(struct lm_registry_client *c, struct endpoint *ep,
			   const struct lm_image_ref *ref, const struct lm_platform *platform,
			   struct lm_manifest *out, struct lm_error *err)
{
	const char *reference = ref->digest ? ref->digest : ref->tag ? ref->tag : "latest";
	struct fetched top;
	if (fetch_manifest(c, ep, ref->repository, reference, ref->digest, &top, err) < 0)
		return err_ret(err);
	struct fetched chosen = top;
	char index_digest[LM_DIGEST_SIZE] = "";
	char *index_bytes = NULL;
	size_t index_len = 0;
	if (is_index_type(top.media_type)) {
		struct lm_descriptor d;
		if (lm_index_select(top.bytes, top.len, platform, &d, err) < 0) {
			fetched_free(&top);
			return err_ret(err);
		}
		snprintf(index_digest, sizeof(index_digest), "%s", top.digest);
		/* the index is kept with the result: the store records where the
		 * platform's manifest came from */
		index_bytes = top.bytes;
		index_len = top.len;
		top.bytes = NULL;
		fetched_free(&top);
		int r = fetch_manifest(c, ep, ref->repository, d.digest, d.digest, &chosen, err);
		if (r < 0) {
			lm_error_prefix(err, "manifest %s (from index %s)", d.digest, index_digest);
			lm_descriptor_free(&d);
			free(index_bytes);
			return err_ret(err);
		}
		if ((int64_t)chosen.len != d.size) {
			lm_err(err, EBADMSG, "manifest %s: index says %" PRId64 " bytes, got %zu", d.digest,
			       d.size, chosen.len);
			lm_descriptor_free(&d);
			fetched_free(&chosen);
			free(index_bytes);
			return err_ret(err);
		}
		lm_descriptor_free(&d);
		if (is_index_type(chosen.media_type)) {
			fetched_free(&chosen);
			free(index_bytes);
			return lm_err(err, ENOTSUP, "nested indexes are not supported");
		}
	}
	if (lm_manifest_parse(chosen.bytes, chosen.len, chosen.media_type, out, err) < 0) {
		fetched_free(&chosen);
		free(index_bytes);
		return err_ret(err);
	}
	out->index_bytes = index_bytes;
	out->index_len = index_len;
	out->bytes = chosen.bytes;
	out->len = chosen.len;
	memcpy(out->digest, chosen.digest, sizeof(out->digest));
	memcpy(out->index_digest, index_digest, sizeof(out->index_digest));
	free(chosen.media_type);
	return 0;
}

typedef int (*endpoint_fn)(struct lm_registry_client *c, struct endpoint *ep,
			   const struct lm_image_ref *ref, void *ctx, struct lm_error *err);

/* Run fn on each endpoint (mirrors first) until one succeeds.  A mirror's
 * failure is kept as a note on the final error. */
static int try_endpoints(struct lm_registry_client *c, const struct lm_image_ref *ref, endpoint_fn fn,
			 void *ctx, struct lm_error *err)
{
	struct endpoint eps[MAX_ENDPOINTS];
	size_t n = 0;
	if (endpoints_for(c, ref, eps, &n, err) < 0)
		return err_ret(err);
	char note[300] = "";
	for (size_t i = 0; i < n; i++) {
		int r = fn(c, &eps[i], ref, ctx, err);
		if (r == 0)
			return 0;
		if (!eps[i].mirror || i + 1 == n)
			break;
		snprintf(note, sizeof(note), " (mirror %s: %.200s)", eps[i].host, err->msg);
		lm_error_clear(err);
	}
	size_t l = strlen(err->msg);
	snprintf(err->msg + l, sizeof(err->msg) - l, "%s", note);
	return err->code > 0 ? -err->code : -1;
}

struct get_ctx {
	const struct lm_platform *platform;
	struct lm_manifest *out;
};

static int get_manifest_cb(struct lm_registry_client *c, struct endpoint *ep,
			   const struct lm_image_ref *ref, void *ctx, struct lm_error *err)
{
	struct get_ctx *g = ctx;
	return get_manifest_at(c, ep, ref, g->platform, g->out, err);
}

int lm_registry_get_manifest(struct lm_registry_client *c, const struct lm_image_ref *ref,
			     const struct lm_platform *platform, struct lm_manifest *out,
			     struct lm_error *err)
{
	memset(out, 0, sizeof(*out));
	char name[512];
	if (!ref || !ref->registry || !ref->repository)
		return lm_err(err, EINVAL, "incomplete image reference");
	ref_name(ref, name, sizeof(name));
	if (ref->digest && lm_digest_validate(ref->digest, err) < 0)
		return lm_error_prefix(err, "%s", name);
	struct get_ctx g = {.platform = platform, .out = out};
	int r = try_endpoints(c, ref, get_manifest_cb, &g, err);
	if (r < 0)
		return lm_error_prefix(err, "%s", name);
	return 0;
}

static int head_manifest_at(struct lm_registry_client *c, struct endpoint *ep,
			    const struct lm_image_ref *ref, char digest[LM_DIGEST_SIZE],
			    struct lm_error *err)
{
	const char *reference = ref->digest ? ref->digest : ref->tag ? ref->tag : "latest";
	if (!safe_path(reference) || strchr(reference, '/'))
		return lm_err(err, EINVAL, "invalid reference \"%.100s\"", reference);
	char path[1024], scope[600];
	if (snprintf(path, sizeof(path), "/v2/%s/manifests/%s", ref->repository, reference) >=
		    (int)sizeof(path) ||
	    scope_for(ref->repository, scope, sizeof(scope)) < 0)
		return lm_err(err, ENAMETOOLONG, "repository name too long");
	struct xfer x = {0};
	long status = 0;
	if (registry_request(c, ep, ref->repository, scope, "HEAD", path, manifest_accept, ERROR_BODY_MAX,
			     false, &x, &status, err) < 0) {
		xfer_cleanup(&x);
		return err_ret(err);
	}
	if (status != 200) {
		char desc[512];
		describe_status(status, NULL, 0, desc, sizeof(desc));
		xfer_cleanup(&x);
		if (status == 404)
			return lm_err(err, ENOENT, "HTTP 404: manifest unknown");
		return lm_err(err, status_errno(status), "%s", desc);
	}
	struct lm_error derr;
	bool have = x.docker_digest && lm_digest_validate(x.docker_digest, &derr) == 0;
	if (have)
		snprintf(digest, LM_DIGEST_SIZE, "%s", x.docker_digest);
	xfer_cleanup(&x);
	if (!have) {
		/* No usable header: the digest of the body is the answer. */
		struct fetched f;
		if (fetch_manifest(c, ep, ref->repository, reference, ref->digest, &f, err) < 0)
			return err_ret(err);
		memcpy(digest, f.digest, LM_DIGEST_SIZE);
		fetched_free(&f);
	}
	if (ref->digest && strcmp(ref->digest, digest) != 0)
		return lm_err(err, EBADMSG, "manifest digest mismatch: expected %s, registry says %s",
			      ref->digest, digest);
	return 0;
}

static int head_manifest_cb(struct lm_registry_client *c, struct endpoint *ep,
			    const struct lm_image_ref *ref, void *ctx, struct lm_error *err)
{
	return head_manifest_at(c, ep, ref, ctx, err);
}

int lm_registry_head_manifest(struct lm_registry_client *c, const struct lm_image_ref *ref,
			      char digest[LM_DIGEST_SIZE], struct lm_error *err)
{
	char name[512];
	digest[0] = '\0';
	if (!ref || !ref->registry || !ref->repository)
		return lm_err(err, EINVAL, "incomplete image reference");
	ref_name(ref, name, sizeof(name));
	int r = try_endpoints(c, ref, head_manifest_cb, digest, err);
	if (r < 0)
		return lm_error_prefix(err, "%s", name);
	return 0;
}

/* ------------------------------------------------------------------------ */
/* blobs                                                                    */

enum job_state { JOB_WAITING, JOB_RUNNING, JOB_DONE, JOB_FAILED };

struct blob_fetch {
	struct lm_registry_client *c;
	const struct lm_image_ref *ref;
	struct endpoint eps[MAX_ENDPOINTS];
	size_t n_eps;
	char scope[600];
	CURLM *multi;
};

struct blob_job {
	struct blob_fetch *f;
	const struct lm_descriptor *desc;
	const struct lm_blob_sink *sink;
	enum job_state state;
	bool from_urls;        /* fetching from desc->urls, not the registry */
	size_t source;         /* endpoint or url index */
	int attempt;           /* failed attempts on this source */
	int auth_round;
	char *extra_scope;
	struct auth_used used;
	struct timespec not_before;

	struct xfer x;
	uint64_t delivered;    /* bytes hashed and given to the sink */
	uint64_t range_from;   /* what the current request asked to start at */
	struct lm_sha256 *hash;
	bool status_seen;      /* current response: status examined */
	bool to_sink;          /* current response carries blob bytes */
	bool fatal;            /* failed in a callback: no retry */
	struct lm_error err;
};

static struct timespec mono_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts;
}

static long ms_until(struct timespec t, struct timespec now)
{
	return (long)(t.tv_sec - now.tv_sec) * 1000L + (t.tv_nsec - now.tv_nsec) / 1000000L;
}

/* "bytes START-END/TOTAL" → START */
static bool parse_content_range(const char *v, uint64_t *start)
{
	if (!v || strncasecmp(v, "bytes ", 6) != 0)
		return false;
	char *end;
	errno = 0;
	unsigned long long s = strtoull(v + 6, &end, 10);
	if (errno || end == v + 6 || *end != '-')
		return false;
	*start = s;
	return true;
}

static int job_fail_cb(struct blob_job *j)
{
	j->fatal = true;
	return 0;
}

static size_t blob_write_cb(char *data, size_t size, size_t nmemb, void *ctx)
{
	struct xfer *x = ctx;
	struct blob_job *j = x->job;
	size_t n = size * nmemb;
	if (!j->status_seen) {
		j->status_seen = true;
		long status = 0;
		curl_easy_getinfo(x->easy, CURLINFO_RESPONSE_CODE, &status);
		if (status == 206) {
			uint64_t start = UINT64_MAX;
			if (!parse_content_range(x->content_range, &start) || start != j->delivered) {
				lm_err(&j->err, EPROTO, "registry answered a resume at byte %" PRIu64
					" with Content-Range \"%.80s\"", j->delivered,
					x->content_range ? x->content_range : "");
				return job_fail_cb(j);
			}
			j->to_sink = true;
		} else if (status == 200) {
			if (j->delivered > 0) {
				/* The range was ignored: start over, sink and hash. */
				if (j->sink->reset(j->sink->ctx, &j->err) < 0)
					return job_fail_cb(j);
				lm_sha256_free(j->hash);
				j->hash = lm_sha256_new();
				j->delivered = 0;
				if (!j->hash) {
					lm_err(&j->err, ENOMEM, "out of memory");
					return job_fail_cb(j);
				}
			}
			j->to_sink = true;
		} else {
			j->to_sink = false;
		}
	}
	if (!j->to_sink)
		return buffer_write_cb(data, size, nmemb, ctx);
	if (j->delivered + n > (uint64_t)j->desc->size) {
		lm_err(&j->err, EBADMSG, "registry sent more than the %" PRId64 " bytes the descriptor says",
		       j->desc->size);
		return job_fail_cb(j);
	}
	lm_sha256_update(j->hash, data, n);
	if (j->sink->write(j->sink->ctx, data, n, &j->err) < 0)
		return job_fail_cb(j);
	j->delivered += n;
	return n;
}

static int job_start(struct blob_job *j, struct lm_error *err)
{
	struct blob_fetch *f = j->f;
	struct lm_registry_client *c = f->c;
	autofree char *url = NULL;
	autofree char *authz = NULL;
	bool verify = true;
	auth_used_clear(&j->used);
	if (j->from_urls) {
		url = strdup(j->desc->urls[j->source]);
		if (!url)
			return lm_err(err, ENOMEM, "out of memory");
	} else {
		struct endpoint *ep = &f->eps[j->source];
		if (asprintf(&url, "%s://%s/v2/%s/blobs/%s", ep->https ? "https" : "http", ep->host,
			     f->ref->repository, j->desc->digest) < 0) {
			url = NULL;
			return lm_err(err, ENOMEM, "out of memory");
		}
		if (auth_header(c, ep, f->ref->repository, f->scope, j->extra_scope, &authz, &j->used, err) < 0)
			return err_ret(err);
		verify = !ep->insecure;
	}
	xfer_cleanup(&j->x);
	j->x.job = j;
	j->x.limit = ERROR_BODY_MAX;
	j->x.hard_limit = false;
	j->status_seen = false;
	j->to_sink = false;
	if (xfer_setup(c, &j->x, url, verify, err) < 0)
		return err_ret(err);
	j->range_from = j->delivered;
	if ((authz && xfer_add_header(&j->x, "Authorization: %s", authz) < 0) ||
	    (j->delivered && xfer_add_header(&j->x, "Range: bytes=%" PRIu64 "-", j->delivered) < 0))
		return lm_err(err, ENOMEM, "out of memory");
	if (authz)
		explicit_bzero(authz, strlen(authz));
	curl_easy_setopt(j->x.easy, CURLOPT_HTTPHEADER, j->x.headers);
	curl_easy_setopt(j->x.easy, CURLOPT_PRIVATE, j);
	if (curl_multi_add_handle(f->multi, j->x.easy) != CURLM_OK)
		return lm_err(err, ENOMEM, "curl: cannot add a transfer");
	j->state = JOB_RUNNING;
	return 0;
}

static size_t job_sources(const struct blob_job *j)
{
	if (!j->from_urls)
		return j->f->n_eps;
	size_t n = 0;
	while (j->desc->urls[n])
		n++;
	return n;
}

static const char *job_source_name(const struct blob_job *j)
{
	return j->from_urls ? j->desc->urls[j->source] : j->f->eps[j->source].host;
}

/* This source is done for; the next one continues from the bytes we have
 * (the digest names the same content everywhere). */
static bool job_next_source(struct blob_job *j)
{
	if (j->source + 1 >= job_sources(j))
		return false;
	j->source++;
	j->attempt = 0;
	j->auth_round = 0;
	free(j->extra_scope);
	j->extra_scope = NULL;
	j->not_before = mono_now();
	j->state = JOB_WAITING;
	return true;
}

static void job_finish_failed(struct blob_job *j)
{
	j->state = JOB_FAILED;
	if (j->sink->discard)
		j->sink->discard(j->sink->ctx);
}

/* Retry later on the same source, or move on, or give up. */
static void job_retry(struct blob_job *j, const char *why)
{
	struct lm_registry_client *c = j->f->c;
	j->attempt++;
	if (j->attempt <= c->retries) {
		unsigned ms = c->retry_delay_ms;
		for (int i = 1; i < j->attempt && ms < BACKOFF_MAX_MS; i++)
			ms *= 2;
		if (ms > BACKOFF_MAX_MS)
			ms = BACKOFF_MAX_MS;
		struct timespec t = mono_now();
		t.tv_sec += ms / 1000;
		t.tv_nsec += (long)(ms % 1000) * 1000000L;
		if (t.tv_nsec >= 1000000000L) {
			t.tv_sec++;
			t.tv_nsec -= 1000000000L;
		}
		j->not_before = t;
		j->state = JOB_WAITING;
		return;
	}
	char msg[LM_ERROR_MSG_MAX - 200];
	snprintf(msg, sizeof(msg), "%s", why);
	lm_err(&j->err, j->err.code ? j->err.code : EIO, "%s: %s (gave up after %d attempts)",
	       job_source_name(j), msg, j->attempt);
	if (!job_next_source(j))
		job_finish_failed(j);
}

static void job_verify(struct blob_job *j)
{
	char got[LM_DIGEST_SIZE];
	lm_sha256_final(j->hash, got);
	j->hash = NULL;
	if (strcmp(got, j->desc->digest) != 0) {
		lm_err(&j->err, EBADMSG, "%s: digest mismatch: content is %s", job_source_name(j), got);
		/* Another source may hold the right bytes; this one will not. */
		j->delivered = 0;
		j->hash = lm_sha256_new();
		if (j->hash && job_next_source(j) && j->sink->reset(j->sink->ctx, &j->err) == 0)
			return;
		job_finish_failed(j);
		return;
	}
	if (j->sink->commit && j->sink->commit(j->sink->ctx, &j->err) < 0) {
		job_finish_failed(j);
		return;
	}
	j->state = JOB_DONE;
}

static void job_done(struct blob_job *j, CURLcode rc)
{
	struct blob_fetch *f = j->f;
	long status = 0;
	curl_easy_getinfo(j->x.easy, CURLINFO_RESPONSE_CODE, &status);
	curl_multi_remove_handle(f->multi, j->x.easy);
	char msg[600];
	if (j->fatal) {
		job_finish_failed(j);
		return;
	}
	uint64_t size = (uint64_t)j->desc->size;
	if (rc != CURLE_OK) {
		snprintf(msg, sizeof(msg), "%s", curl_message(&j->x, rc));
		if (j->to_sink && j->delivered == size) {
			job_verify(j); /* everything arrived before the connection went */
			return;
		}
		if (j->to_sink)
			snprintf(msg, sizeof(msg), "connection dropped after %" PRIu64 " of %" PRId64 " bytes (%s)",
				 j->delivered, j->desc->size, curl_message(&j->x, rc));
		j->err.code = curl_errno(rc);
		if (curl_retryable(rc))
			job_retry(j, msg);
		else {
			lm_err(&j->err, curl_errno(rc), "%s: %s", job_source_name(j), msg);
			if (!job_next_source(j))
				job_finish_failed(j);
		}
		return;
	}
	if (status == 200 || status == 206) {
		if (!j->status_seen && status == 200 && j->delivered > 0) {
			/* An empty 200 to a resume: nothing to keep. */
			if (j->sink->reset(j->sink->ctx, &j->err) < 0) {
				job_finish_failed(j);
				return;
			}
			lm_sha256_free(j->hash);
			j->hash = lm_sha256_new();
			j->delivered = 0;
		}
		if (j->delivered < size) {
			snprintf(msg, sizeof(msg), "response ended after %" PRIu64 " of %" PRId64 " bytes",
				 j->delivered, j->desc->size);
			j->err.code = EIO;
			job_retry(j, msg);
			return;
		}
		job_verify(j);
		return;
	}
	if (status == 401 && !j->from_urls) {
		struct lm_error aerr;
		if (after_401(f->c, &f->eps[j->source], f->ref->repository, f->scope, &j->x, &j->used,
			      j->auth_round++, &j->extra_scope, &aerr) < 0) {
			j->err = aerr;
			job_finish_failed(j);
			return;
		}
		j->state = JOB_WAITING;
		j->not_before = mono_now();
		return;
	}
	describe_status(status, j->x.body, j->x.len, msg, sizeof(msg));
	j->err.code = status_errno(status);
	if (status_retryable(status)) {
		job_retry(j, msg);
		return;
	}
	lm_err(&j->err, status_errno(status), "%s: %s", job_source_name(j), msg);
	if (!job_next_source(j))
		job_finish_failed(j);
}

static int check_desc(const struct lm_registry_client *c, const struct lm_descriptor *d,
		      const struct lm_blob_sink *s, struct lm_error *err)
{
	if (lm_digest_validate(d->digest, err) < 0)
		return err_ret(err);
	if (d->size < 0)
		return lm_err(err, EINVAL, "blob %s: unknown size", d->digest);
	if (!s || !s->write || !s->reset)
		return lm_err(err, EINVAL, "blob %s: sink needs write and reset", d->digest);
	if (d->urls && d->urls[0] && !c->allow_foreign_urls)
		return lm_err(err, EPERM,
			      "blob %s is a foreign layer (to be fetched from %.200s): fetching from "
			      "foreign URLs is disabled (allow_foreign_urls)",
			      d->digest, d->urls[0]);
	return 0;
}

int lm_registry_fetch_blobs(struct lm_registry_client *c, const struct lm_image_ref *ref,
			    const struct lm_descriptor *descs, size_t n,
			    const struct lm_blob_sink *sinks, struct lm_error *err)
{
	for (size_t i = 0; i < n; i++)
		if (check_desc(c, &descs[i], &sinks[i], err) < 0)
			return err_ret(err);
	if (n == 0)
		return 0;
	struct blob_fetch f = {.c = c, .ref = ref};
	if (endpoints_for(c, ref, f.eps, &f.n_eps, err) < 0)
		return err_ret(err);
	if (scope_for(ref->repository, f.scope, sizeof(f.scope)) < 0)
		return lm_err(err, ENAMETOOLONG, "repository name too long");
	struct blob_job *jobs = calloc(n, sizeof(*jobs));
	f.multi = curl_multi_init();
	if (!jobs || !f.multi) {
		free(jobs);
		if (f.multi)
			curl_multi_cleanup(f.multi);
		return lm_err(err, ENOMEM, "out of memory");
	}
	int result = 0;
	struct timespec start = mono_now();
	for (size_t i = 0; i < n; i++) {
		struct blob_job *j = &jobs[i];
		j->f = &f;
		j->desc = &descs[i];
		j->sink = &sinks[i];
		j->state = JOB_WAITING;
		j->from_urls = descs[i].urls && descs[i].urls[0];
		j->not_before = start;
	}
	for (size_t i = 0; i < n && result == 0; i++)
		if (!(jobs[i].hash = lm_sha256_new()))
			result = lm_err(err, ENOMEM, "out of memory");

	struct blob_job *failed = NULL;
	while (result == 0 && !failed) {
		size_t running = 0, pending = 0;
		for (size_t i = 0; i < n; i++) {
			running += jobs[i].state == JOB_RUNNING;
			pending += jobs[i].state == JOB_WAITING;
		}
		if (running == 0 && pending == 0)
			break;
		struct timespec now = mono_now();
		for (size_t i = 0; i < n && !failed; i++) {
			struct blob_job *j = &jobs[i];
			if (j->state != JOB_WAITING || running >= (size_t)c->parallel ||
			    ms_until(j->not_before, now) > 0)
				continue;
			if (job_start(j, &j->err) < 0) {
				job_finish_failed(j);
				failed = j;
				break;
			}
			running++;
		}
		if (failed)
			break;
		int still = 0;
		CURLMcode mc = curl_multi_perform(f.multi, &still);
		if (mc != CURLM_OK) {
			result = lm_err(err, EIO, "curl: %s", curl_multi_strerror(mc));
			break;
		}
		CURLMsg *msg;
		int left;
		while ((msg = curl_multi_info_read(f.multi, &left))) {
			if (msg->msg != CURLMSG_DONE)
				continue;
			char *priv = NULL;
			curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, &priv);
			struct blob_job *j = (void *)priv;
			if (!j)
				continue;
			job_done(j, msg->data.result);
			if (j->state == JOB_FAILED && !failed)
				failed = j;
		}
		if (failed)
			break;
		/* Sleep until curl has news or the next backoff ends, unless a job
		 * can start right away. */
		long wait_ms = 1000;
		bool ready = false;
		now = mono_now();
		running = pending = 0;
		for (size_t i = 0; i < n; i++) {
			running += jobs[i].state == JOB_RUNNING;
			pending += jobs[i].state == JOB_WAITING;
		}
		for (size_t i = 0; i < n; i++) {
			if (jobs[i].state != JOB_WAITING)
				continue;
			long due = ms_until(jobs[i].not_before, now);
			if (due <= 0 && running < (size_t)c->parallel)
				ready = true;
			else if (due > 0 && due < wait_ms)
				wait_ms = due;
		}
		if (!ready && (running || pending))
			curl_multi_poll(f.multi, NULL, 0, (int)wait_ms, NULL);
	}

	if (failed && result == 0) {
		*err = failed->err;
		lm_error_prefix(err, "blob %s", failed->desc->digest);
		result = err->code > 0 ? -err->code : -1;
	}
	for (size_t i = 0; i < n; i++) {
		struct blob_job *j = &jobs[i];
		if (j->state == JOB_RUNNING)
			curl_multi_remove_handle(f.multi, j->x.easy);
		if (j->state == JOB_RUNNING || j->state == JOB_WAITING)
			job_finish_failed(j);
		xfer_cleanup(&j->x);
		lm_sha256_free(j->hash);
		free(j->extra_scope);
		auth_used_clear(&j->used);
	}
	curl_multi_cleanup(f.multi);
	free(jobs);
	return result;
}

int lm_registry_fetch_blob(struct lm_registry_client *c, const struct lm_image_ref *ref,
			   const struct lm_descriptor *desc, const struct lm_blob_sink *sink,
			   struct lm_error *err)
{
	return lm_registry_fetch_blobs(c, ref, desc, 1, sink, err);
}

/* ------------------------------------------------------------------------ */
/* login                                                                    */

int lm_auth_verify(struct lm_registry_client *c, const char *registry, const char *user,
		   const char *password, struct lm_error *err)
{
	struct endpoint ep;
	struct lm_image_ref ref = {.registry = (char *)registry, .repository = (char *)"x"};
	const char *host = lm_image_ref_endpoint_host(&ref);
	if (endpoint_init(c, &ep, registry, host ? host : registry, false, err) < 0)
		return err_ret(err);
	struct lm_credentials cred = {.user = (char *)user, .password = (char *)password};
	autofree char *basic = lm_auth_basic_header(&cred);
	if (!basic)
		return lm_err(err, ENOMEM, "out of memory");
	autofree char *authz = NULL;
	for (int round = 0; round < 3; round++) {
		autofree char *url = NULL;
		if (asprintf(&url, "%s://%s/v2/", ep.https ? "https" : "http", ep.host) < 0) {
			url = NULL;
			return lm_err(err, ENOMEM, "out of memory");
		}
		struct request rq = {.method = "GET", .url = url, .authorization = authz,
				     .verify_tls = !ep.insecure, .limit = ERROR_BODY_MAX};
		struct xfer x = {0};
		long status = 0;
		CURLcode rc = CURLE_OK;
		int r = perform(c, &rq, &x, &status, &rc, err);
		if (r < 0 && ep.may_fall_back && ep.https &&
		    (rc == CURLE_SSL_CONNECT_ERROR || rc == CURLE_RECV_ERROR || rc == CURLE_GOT_NOTHING)) {
			xfer_cleanup(&x);
			ep.https = false;
			ep.may_fall_back = false;
			remember_plain(c, ep.host);
			round--;
			continue;
		}
		if (r < 0) {
			xfer_cleanup(&x);
			return lm_error_prefix(err, "login %s", registry);
		}
		if (status == 200) {
			xfer_cleanup(&x);
			return 0;
		}
		char desc[512];
		describe_status(status, x.body, x.len, desc, sizeof(desc));
		if (status != 401 || authz || !x.www_auth) {
			xfer_cleanup(&x);
			if (status == 401 || status == 403)
				return auth_failed(err, &ep, "%s", desc);
			return lm_err(err, status_errno(status), "login %s: %s", registry, desc);
		}
		struct lm_auth_challenge ch;
		r = lm_auth_parse_challenge(x.www_auth, &ch, err);
		xfer_cleanup(&x);
		if (r < 0)
			return auth_failed(err, &ep, "%s", err->msg);
		if (ch.scheme == LM_AUTH_BASIC) {
			authz = strdup(basic);
		} else {
			char *token = NULL;
			long expires_in = 0;
			r = fetch_token(c, &ep, ch.realm, ch.service, NULL, NULL, &cred, &token, &expires_in, err);
			if (r == 0 && asprintf(&authz, "Bearer %s", token) < 0)
				authz = NULL;
			free(token);
		}
		lm_auth_challenge_free(&ch);
		if (r < 0)
			return err_ret(err);
		if (!authz)
			return lm_err(err, ENOMEM, "out of memory");
	}
	return auth_failed(err, &ep, "the registry kept asking for credentials");
}
