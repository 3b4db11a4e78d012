/* Unit tests for image/registry.c.
 *
 * Two halves.  The offline one feeds manifests and indexes to
 * lm_manifest_parse and lm_index_select.  The other drives the client against
 * a scripted HTTP server on 127.0.0.1 (one thread, one canned response per
 * connection, "Connection: close" each time) to reach the corners a real
 * registry never shows: bodies longer than their descriptor, wrong digests,
 * a resume answered at the wrong offset, 503s, oversized manifests, sinks
 * that fail in write or commit.  The recording sink checks the sink contract
 * on every test: bytes in order, then commit or discard, exactly once.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "image/digest.h"
#include "image/registry.h"
#include "testutil.h"

static const char D1[] = "sha256:1111111111111111111111111111111111111111111111111111111111111111";
static const char D2[] = "sha256:2222222222222222222222222222222222222222222222222222222222222222";
static const char D3[] = "sha256:3333333333333333333333333333333333333333333333333333333333333333";

/* ------------------------------------------------------------ manifests */

static char *manifest_json(const char *mt, const char *config_mt, const char *layer_mt, const char *extra)
{
	char *s = NULL;
	int r = asprintf(&s,
			 "{\"schemaVersion\":2%s%s%s,"
			 "\"config\":{\"mediaType\":\"%s\",\"digest\":\"%s\",\"size\":12},"
			 "\"layers\":[{\"mediaType\":\"%s\",\"digest\":\"%s\",\"size\":100%s},"
			 "{\"mediaType\":\"%s\",\"digest\":\"%s\",\"size\":0}]}",
			 mt ? ",\"mediaType\":\"" : "", mt ? mt : "", mt ? "\"" : "", config_mt, D1, layer_mt,
			 D2, extra ? extra : "", layer_mt, D3);
	assert_true(r > 0);
	return s;
}

static void manifest_oci(void **state)
{
	char *j = manifest_json(LM_MEDIA_OCI_MANIFEST, LM_MEDIA_OCI_CONFIG,
				"application/vnd.oci.image.layer.v1.tar+gzip",
				",\"urls\":[\"https://a.example/b\"],\"annotations\":{\"x\":\"y\"}");
	struct lm_manifest m;
	struct lm_error err = {0};
	assert_int_equal(lm_manifest_parse(j, strlen(j), NULL, &m, &err), 0);
	assert_string_equal(m.media_type, LM_MEDIA_OCI_MANIFEST);
	assert_string_equal(m.config.digest, D1);
	assert_int_equal(m.config.size, 12);
	assert_int_equal(m.n_layers, 2);
	assert_string_equal(m.layers[0].digest, D2);
	assert_int_equal(m.layers[0].size, 100);
	assert_string_equal(m.layers[0].urls[0], "https://a.example/b");
	assert_null(m.layers[0].urls[1]);
	assert_null(m.layers[1].urls);
	assert_int_equal(m.layers[1].size, 0);
	lm_manifest_free(&m);
	free(j);

	/* no mediaType in the body: OCI allows it, the caller's type decides */
	j = manifest_json(NULL, LM_MEDIA_OCI_CONFIG, "application/vnd.oci.image.layer.v1.tar+zstd", NULL);
	assert_int_equal(lm_manifest_parse(j, strlen(j), NULL, &m, &err), 0);
	assert_string_equal(m.media_type, LM_MEDIA_OCI_MANIFEST);
	lm_manifest_free(&m);
	free(j);
}

static void manifest_docker(void **state)
{
	char *j = manifest_json(LM_MEDIA_DOCKER_MANIFEST, LM_MEDIA_DOCKER_CONFIG,
				"application/vnd.docker.image.rootfs.diff.tar.gzip", NULL);
	struct lm_manifest m;
	struct lm_error err = {0};
	assert_int_equal(lm_manifest_parse(j, strlen(j), LM_MEDIA_DOCKER_MANIFEST, &m, &err), 0);
	assert_string_equal(m.media_type, LM_MEDIA_DOCKER_MANIFEST);
	lm_manifest_free(&m);
	/* served as one type, saying another */
	assert_true(lm_manifest_parse(j, strlen(j), LM_MEDIA_OCI_MANIFEST, &m, &err) < 0);
	assert_contains(err.msg, "media type mismatch");
	free(j);
}

static void manifest_refusals(void **state)
{
	struct lm_manifest m;
	struct lm_error err = {0};
	const char *s1 = "{\"schemaVersion\":1,\"name\":\"x\",\"fsLayers\":[]}";
	assert_int_equal(lm_manifest_parse(s1, strlen(s1), NULL, &m, &err), -ENOTSUP);
	assert_string_equal(err.msg, "Docker schema1 manifests are not supported");

	const char *idx = "{\"schemaVersion\":2,\"mediaType\":\"" LM_MEDIA_OCI_INDEX "\",\"manifests\":[]}";
	assert_true(lm_manifest_parse(idx, strlen(idx), NULL, &m, &err) < 0);
	assert_contains(err.msg, "is an index, not an image manifest");

	char *j = manifest_json(LM_MEDIA_OCI_MANIFEST, "application/vnd.cncf.helm.config.v1+json",
				"application/vnd.oci.image.layer.v1.tar", NULL);
	assert_int_equal(lm_manifest_parse(j, strlen(j), NULL, &m, &err), -ENOTSUP);
	assert_contains(err.msg, "not a container image: config media type \"application/vnd.cncf.helm");
	free(j);

	j = manifest_json(LM_MEDIA_OCI_MANIFEST, LM_MEDIA_OCI_CONFIG, "application/x-rar", NULL);
	assert_int_equal(lm_manifest_parse(j, strlen(j), NULL, &m, &err), -ENOTSUP);
	assert_string_equal(err.msg, "layer 1: unsupported media type \"application/x-rar\"");
	free(j);

	assert_int_equal(lm_manifest_parse("{}", 2, "application/vnd.example+json", &m, &err), -EBADMSG);
	const char *weird = "{\"schemaVersion\":2}";
	assert_int_equal(lm_manifest_parse(weird, strlen(weird), "application/vnd.example+json", &m, &err),
			 -ENOTSUP);
	assert_contains(err.msg, "unsupported manifest media type \"application/vnd.example+json\"");

	static const char *const bad_layers[] = {
		"{\"mediaType\":\"application/vnd.oci.image.layer.v1.tar\",\"digest\":\"sha256:abc\",\"size\":1}",
		"{\"mediaType\":\"application/vnd.oci.image.layer.v1.tar\",\"digest\":\"md5:00\",\"size\":1}",
		"{\"mediaType\":\"application/vnd.oci.image.layer.v1.tar\",\"digest\":\"@\",\"size\":-1}",
		"{\"mediaType\":\"application/vnd.oci.image.layer.v1.tar\",\"digest\":\"@\"}",
		"{\"digest\":\"@\",\"size\":1}",
		"{\"mediaType\":\"application/vnd.oci.image.layer.v1.tar\",\"digest\":\"@\",\"size\":1,"
		"\"urls\":[\"file:///etc/passwd\"]}",
		"{\"mediaType\":\"application/vnd.oci.image.layer.v1.tar\",\"digest\":\"@\",\"size\":1,"
		"\"urls\":\"https://x\"}",
		"\"not an object\"",
	};
	for (size_t i = 0; i < sizeof(bad_layers) / sizeof(bad_layers[0]); i++) {
		/* '@' stands for a good digest */
		char layer[512], doc[1024];
		size_t n = 0;
		for (const char *p = bad_layers[i]; *p && n + 80 < sizeof(layer); p++) {
			if (*p == '@') {
				memcpy(layer + n, D2, strlen(D2));
				n += strlen(D2);
			} else {
				layer[n++] = *p;
			}
		}
		layer[n] = '\0';
		snprintf(doc, sizeof(doc),
			 "{\"schemaVersion\":2,\"config\":{\"mediaType\":\"%s\",\"digest\":\"%s\",\"size\":1},"
			 "\"layers\":[%s]}",
			 LM_MEDIA_OCI_CONFIG, D1, layer);
		err.msg[0] = '\0';
		if (lm_manifest_parse(doc, strlen(doc), NULL, &m, &err) >= 0)
			fail_msg("accepted: %s", layer);
		assert_contains(err.msg, "layer 1");
	}
	assert_int_equal(lm_manifest_parse("nope", 4, NULL, &m, &err), -EBADMSG);
	assert_contains(err.msg, "manifest is not JSON");
}

/* ---------------------------------------------------------------- indexes */

static const char INDEX[] =
	"{\"schemaVersion\":2,\"mediaType\":\"application/vnd.oci.image.index.v1+json\",\"manifests\":["
	"{\"mediaType\":\"application/vnd.oci.image.manifest.v1+json\",\"size\":10,"
	"\"digest\":\"sha256:0000000000000000000000000000000000000000000000000000000000000001\","
	"\"platform\":{\"architecture\":\"amd64\",\"os\":\"linux\"}},"
	"{\"mediaType\":\"application/vnd.oci.image.manifest.v1+json\",\"size\":11,"
	"\"digest\":\"sha256:0000000000000000000000000000000000000000000000000000000000000002\","
	"\"platform\":{\"architecture\":\"arm\",\"os\":\"linux\",\"variant\":\"v6\"}},"
	"{\"mediaType\":\"application/vnd.oci.image.manifest.v1+json\",\"size\":12,"
	"\"digest\":\"sha256:0000000000000000000000000000000000000000000000000000000000000003\","
	"\"platform\":{\"architecture\":\"arm\",\"os\":\"linux\",\"variant\":\"v7\"}},"
	"{\"size\":13,"
	"\"digest\":\"sha256:0000000000000000000000000000000000000000000000000000000000000004\","
	"\"platform\":{\"architecture\":\"arm64\",\"os\":\"linux\"}},"
	"{\"mediaType\":\"application/vnd.oci.image.manifest.v1+json\",\"size\":14,"
	"\"digest\":\"sha256:0000000000000000000000000000000000000000000000000000000000000005\","
	"\"platform\":{\"architecture\":\"unknown\",\"os\":\"unknown\"}},"
	"{\"mediaType\":\"application/vnd.oci.image.index.v1+json\",\"size\":15,"
	"\"digest\":\"sha256:0000000000000000000000000000000000000000000000000000000000000006\","
	"\"platform\":{\"architecture\":\"riscv64\",\"os\":\"linux\"}},"
	"{\"mediaType\":\"application/vnd.oci.image.manifest.v1+json\",\"size\":16,"
	"\"digest\":\"sha256:0000000000000000000000000000000000000000000000000000000000000007\","
	"\"platform\":{\"architecture\":\"amd64\",\"os\":\"windows\",\"os.version\":\"10.0\"}}"
	"]}";

static char select_one(const char *os, const char *arch, const char *variant, struct lm_error *err)
{
	struct lm_platform p = {os, arch, variant};
	struct lm_descriptor d;
	if (lm_index_select(INDEX, strlen(INDEX), &p, &d, err) < 0)
		return 0;
	char last = d.digest[LM_DIGEST_LEN - 1];
	lm_descriptor_free(&d);
	return last;
}

static void index_selection(void **state)
{
	struct lm_error err = {0};
	assert_int_equal(select_one("linux", "amd64", NULL, &err), '1');
	assert_int_equal(select_one("windows", "amd64", NULL, &err), '7');
	/* arm: v7 is the baseline when no variant is asked for */
	assert_int_equal(select_one("linux", "arm", NULL, &err), '3');
	assert_int_equal(select_one("linux", "arm", "v6", &err), '2');
	assert_int_equal(select_one("linux", "arm", "v7", &err), '3');
	/* an entry without a variant is the baseline v8 of arm64, and has no mediaType */
	assert_int_equal(select_one("linux", "arm64", NULL, &err), '4');
	assert_int_equal(select_one("linux", "arm64", "v8", &err), '4');
	assert_int_equal(select_one("linux", "arm64", "v9", &err), 0);
	assert_string_equal(err.msg, "no manifest for linux/arm64/v9 in index; available: linux/amd64, "
				     "linux/arm/v6, linux/arm/v7, linux/arm64, windows/amd64");
	/* attestations (unknown/unknown) and nested indexes are never candidates */
	assert_int_equal(select_one("unknown", "unknown", NULL, &err), 0);
	assert_int_equal(select_one("linux", "riscv64", NULL, &err), 0);
	assert_string_equal(err.msg, "no manifest for linux/riscv64 in index; available: linux/amd64, "
				     "linux/arm/v6, linux/arm/v7, linux/arm64, windows/amd64");

	struct lm_platform def;
	lm_platform_default(&def);
	assert_string_equal(def.os, "linux");
#if defined(__x86_64__)
	assert_string_equal(def.arch, "amd64");
	assert_int_equal(select_one(NULL, NULL, NULL, &err), '1');
#elif defined(__aarch64__)
	assert_string_equal(def.arch, "arm64");
	assert_string_equal(def.variant, "v8");
	assert_int_equal(select_one(NULL, NULL, NULL, &err), '4');
#endif

	struct lm_descriptor d;
	const char *empty = "{\"schemaVersion\":2,\"manifests\":[]}";
	struct lm_platform p = {"linux", "amd64", NULL};
	assert_int_equal(lm_index_select(empty, strlen(empty), &p, &d, &err), -ENOENT);
	assert_string_equal(err.msg, "no manifest for linux/amd64 in index; available: none");
	assert_int_equal(lm_index_select("{}", 2, &p, &d, &err), -EBADMSG);
}

/* ---------------------------------------------------------- fake server */

struct canned {
	char head[1024];   /* status line and headers, without the blank line */
	const char *body;
	size_t body_len;   /* what Content-Length announces unless head says otherwise */
	size_t send_len;   /* body bytes actually sent before closing */
	size_t stream_len; /* > 0: send this many filler bytes instead of body */
};

#define MAX_CANNED 16

static struct {
	int lfd;
	int port;
	pthread_t thread;
	pthread_mutex_t lock;
	struct canned script[MAX_CANNED];
	size_t n_script, next;
	char requests[MAX_CANNED][2048];
	size_t n_requests;
} S;

static void *serve(void *arg)
{
	for (;;) {
		int fd = accept(S.lfd, NULL, NULL);
		if (fd < 0)
			return NULL;
		char req[2048];
		size_t n = 0;
		while (n + 1 < sizeof(req)) {
			ssize_t r = read(fd, req + n, sizeof(req) - 1 - n);
			if (r <= 0)
				break;
			n += (size_t)r;
			req[n] = '\0';
			if (strstr(req, "\r\n\r\n"))
				break;
		}
		req[n] = '\0';
		pthread_mutex_lock(&S.lock);
		struct canned *c = S.next < S.n_script ? &S.script[S.next++] : NULL;
		if (S.n_requests < MAX_CANNED)
			snprintf(S.requests[S.n_requests++], sizeof(S.requests[0]), "%s", req);
		pthread_mutex_unlock(&S.lock);
		char head[1200];
		if (!c) {
			snprintf(head, sizeof(head), "HTTP/1.1 500 Script Ended\r\nContent-Length: 0\r\n"
						     "Connection: close\r\n\r\n");
			(void)!write(fd, head, strlen(head));
		} else {
			size_t len = c->stream_len ? c->stream_len : c->body_len;
			bool has_length = strcasestr(c->head, "content-length:") != NULL;
			if (has_length)
				snprintf(head, sizeof(head), "%s\r\nConnection: close\r\n\r\n", c->head);
			else
				snprintf(head, sizeof(head), "%s\r\nContent-Length: %zu\r\nConnection: close\r\n\r\n",
					 c->head, len);
			(void)!write(fd, head, strlen(head));
			if (c->stream_len) {
				static char filler[65536];
				memset(filler, '{', sizeof(filler));
				for (size_t sent = 0; sent < c->stream_len;) {
					size_t k = c->stream_len - sent < sizeof(filler) ? c->stream_len - sent
											  : sizeof(filler);
					ssize_t w = write(fd, filler, k);
					if (w <= 0)
						break;
					sent += (size_t)w;
				}
			} else if (c->send_len) {
				(void)!write(fd, c->body, c->send_len);
			}
		}
		shutdown(fd, SHUT_RDWR);
		close(fd);
	}
}

static int server_up(void **state)
{
	memset(&S, 0, sizeof(S));
	pthread_mutex_init(&S.lock, NULL);
	S.lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	if (S.lfd < 0 || bind(S.lfd, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(S.lfd, 16) < 0)
		return -1;
	socklen_t l = sizeof(a);
	getsockname(S.lfd, (struct sockaddr *)&a, &l);
	S.port = ntohs(a.sin_port);
	return pthread_create(&S.thread, NULL, serve, NULL);
}

static int server_down(void **state)
{
	shutdown(S.lfd, SHUT_RDWR);
	close(S.lfd);
	pthread_join(S.thread, NULL);
	pthread_mutex_destroy(&S.lock);
	return 0;
}

/* Queue a response: head is printf-style, body sent in full (send < 0) or cut. */
static void script(const char *body, size_t body_len, long send, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
static void script(const char *body, size_t body_len, long send, const char *fmt, ...)
{
	assert_true(S.n_script < MAX_CANNED);
	struct canned *c = &S.script[S.n_script++];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(c->head, sizeof(c->head), fmt, ap);
	va_end(ap);
	c->body = body;
	c->body_len = body_len;
	c->send_len = send < 0 ? body_len : (size_t)send;
}

static const char *request(size_t i)
{
	assert_true(i < S.n_requests);
	return S.requests[i];
}

/* --- a sink that records, and checks the contract */

struct rec_sink {
	char data[1 << 16];
	size_t len;
	int resets, commits, discards;
	bool fail_write, fail_commit;
};

static int rec_write(void *ctx, const void *buf, size_t len, struct lm_error *err)
{
	struct rec_sink *r = ctx;
	assert_int_equal(r->commits + r->discards, 0);
	if (r->fail_write)
		return lm_err(err, ENOSPC, "disk full");
	assert_true(r->len + len <= sizeof(r->data));
	memcpy(r->data + r->len, buf, len);
	r->len += len;
	return 0;
}

static int rec_reset(void *ctx, struct lm_error *err)
{
	struct rec_sink *r = ctx;
	r->resets++;
	r->len = 0;
	return 0;
}

static int rec_commit(void *ctx, struct lm_error *err)
{
	struct rec_sink *r = ctx;
	assert_int_equal(r->commits + r->discards, 0);
	r->commits++;
	return r->fail_commit ? lm_err(err, EIO, "cannot rename") : 0;
}

static void rec_discard(void *ctx)
{
	struct rec_sink *r = ctx;
	assert_int_equal(r->discards, 0);
	r->discards++;
}

static struct lm_blob_sink sink_of(struct rec_sink *r)
{
	return (struct lm_blob_sink){.ctx = r, .write = rec_write, .reset = rec_reset, .commit = rec_commit,
				     .discard = rec_discard};
}

static char registry_name[64];
static struct lm_image_ref test_ref(void)
{
	snprintf(registry_name, sizeof(registry_name), "127.0.0.1:%d", S.port);
	return (struct lm_image_ref){.registry = registry_name, .repository = (char *)"test/app",
				     .tag = (char *)"v1"};
}

static struct lm_registry_client *client(int retries)
{
	struct lm_registry_opts o = {.retries = retries, .retry_delay_ms = 1, .auth_file = "/nonexistent"};
	struct lm_registry_client *c = NULL;
	struct lm_error err = {0};
	assert_int_equal(lm_registry_client_new(&o, &c, &err), 0);
	return c;
}

static const char BLOB[] = "0123456789abcdefghijklmnopqrstuvwxyz";

static struct lm_descriptor blob_desc(const char *content, size_t len)
{
	struct lm_descriptor d = {.media_type = (char *)"application/vnd.oci.image.layer.v1.tar",
				  .size = (int64_t)len};
	lm_sha256_buffer(content, len, d.digest);
	return d;
}

/* ------------------------------------------------------------ blob tests */

static void blob_ok(void **state)
{
	script(BLOB, sizeof(BLOB) - 1, -1, "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream");
	struct lm_registry_client *c = client(0);
	struct lm_image_ref ref = test_ref();
	struct lm_descriptor d = blob_desc(BLOB, sizeof(BLOB) - 1);
	struct rec_sink r = {0};
	struct lm_blob_sink s = sink_of(&r);
	struct lm_error err = {0};
	assert_int_equal(lm_registry_fetch_blob(c, &ref, &d, &s, &err), 0);
	assert_int_equal(r.len, sizeof(BLOB) - 1);
	assert_memory_equal(r.data, BLOB, r.len);
	assert_int_equal(r.commits, 1);
	assert_int_equal(r.discards, 0);
	char want[256];
	snprintf(want, sizeof(want), "GET /v2/test/app/blobs/%s HTTP/1.1", d.digest);
	assert_contains(request(0), want);
	assert_contains(request(0), "User-Agent: lamina/");
	lm_registry_client_free(c);
}

static void blob_longer_than_descriptor(void **state)
{
	script(BLOB, sizeof(BLOB) - 1, -1, "HTTP/1.1 200 OK");
	struct lm_registry_client *c = client(3);
	struct lm_image_ref ref = test_ref();
	struct lm_descriptor d = blob_desc(BLOB, 10);
	struct rec_sink r = {0};
	struct lm_blob_sink s = sink_of(&r);
	struct lm_error err = {0};
	assert_true(lm_registry_fetch_blob(c, &ref, &d, &s, &err) < 0);
	assert_contains(err.msg, "registry sent more than the 10 bytes the descriptor says");
	assert_true(r.len <= 10);
	assert_int_equal(r.discards, 1);
	assert_int_equal(r.commits, 0);
	assert_int_equal(S.n_requests, 1); /* not a thing to retry */
	lm_registry_client_free(c);
}

static void blob_wrong_digest(void **state)
{
	char other[sizeof(BLOB)];
	memcpy(other, BLOB, sizeof(BLOB));
	other[3] = 'X';
	script(other, sizeof(BLOB) - 1, -1, "HTTP/1.1 200 OK");
	struct lm_registry_client *c = client(3);
	struct lm_image_ref ref = test_ref();
	struct lm_descriptor d = blob_desc(BLOB, sizeof(BLOB) - 1);
	struct rec_sink r = {0};
	struct lm_blob_sink s = sink_of(&r);
	struct lm_error err = {0};
	assert_int_equal(lm_registry_fetch_blob(c, &ref, &d, &s, &err), -EBADMSG);
	char want[200];
	snprintf(want, sizeof(want), "blob %s: ", d.digest);
	assert_true(strncmp(err.msg, want, strlen(want)) == 0);
	assert_contains(err.msg, "digest mismatch: content is sha256:");
	assert_int_equal(r.discards, 1);
	assert_int_equal(r.commits, 0);
	lm_registry_client_free(c);
}

static void blob_resume_and_restart(void **state)
{
	size_t len = sizeof(BLOB) - 1;
	/* cut after 10 bytes, resumed with a 206 from byte 10 */
	script(BLOB, len, 10, "HTTP/1.1 200 OK");
	script(BLOB + 10, len - 10, -1, "HTTP/1.1 206 Partial Content\r\nContent-Range: bytes 10-%zu/%zu",
	       len - 1, len);
	/* second blob: cut, and the resume is answered with the whole blob */
	script(BLOB, len, 7, "HTTP/1.1 200 OK");
	script(BLOB, len, -1, "HTTP/1.1 200 OK");
	struct lm_registry_client *c = client(3);
	struct lm_image_ref ref = test_ref();
	struct lm_descriptor d = blob_desc(BLOB, len);
	struct rec_sink r = {0};
	struct lm_blob_sink s = sink_of(&r);
	struct lm_error err = {0};
	assert_int_equal(lm_registry_fetch_blob(c, &ref, &d, &s, &err), 0);
	assert_int_equal(r.resets, 0);
	assert_memory_equal(r.data, BLOB, len);
	assert_contains(request(1), "Range: bytes=10-");

	struct rec_sink r2 = {0};
	s = sink_of(&r2);
	assert_int_equal(lm_registry_fetch_blob(c, &ref, &d, &s, &err), 0);
	assert_int_equal(r2.resets, 1);
	assert_int_equal(r2.len, len);
	assert_memory_equal(r2.data, BLOB, len);
	assert_int_equal(r2.commits, 1);
	assert_contains(request(3), "Range: bytes=7-");
	lm_registry_client_free(c);
}

static void blob_resume_at_wrong_offset(void **state)
{
	size_t len = sizeof(BLOB) - 1;
	script(BLOB, len, 10, "HTTP/1.1 200 OK");
	script(BLOB + 5, len - 5, -1, "HTTP/1.1 206 Partial Content\r\nContent-Range: bytes 5-%zu/%zu",
	       len - 1, len);
	struct lm_registry_client *c = client(3);
	struct lm_image_ref ref = test_ref();
	struct lm_descriptor d = blob_desc(BLOB, len);
	struct rec_sink r = {0};
	struct lm_blob_sink s = sink_of(&r);
	struct lm_error err = {0};
	assert_int_equal(lm_registry_fetch_blob(c, &ref, &d, &s, &err), -EPROTO);
	assert_contains(err.msg, "resume at byte 10 with Content-Range \"bytes 5-");
	assert_int_equal(r.discards, 1);
	lm_registry_client_free(c);
}

static void blob_retries_503_then_404(void **state)
{
	size_t len = sizeof(BLOB) - 1;
	const char *busy = "{\"errors\":[{\"code\":\"UNAVAILABLE\",\"message\":\"try later\"}]}";
	script(busy, strlen(busy), -1, "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json");
	script(BLOB, len, -1, "HTTP/1.1 200 OK");
	const char *unknown = "{\"errors\":[{\"code\":\"BLOB_UNKNOWN\",\"message\":\"blob unknown to registry\"}]}";
	script(unknown, strlen(unknown), -1, "HTTP/1.1 404 Not Found\r\nContent-Type: application/json");
	for (int i = 0; i < 3; i++)
		script(busy, strlen(busy), -1, "HTTP/1.1 503 Service Unavailable");
	struct lm_registry_client *c = client(2);
	struct lm_image_ref ref = test_ref();
	struct lm_descriptor d = blob_desc(BLOB, len);
	struct rec_sink r = {0};
	struct lm_blob_sink s = sink_of(&r);
	struct lm_error err = {0};
	assert_int_equal(lm_registry_fetch_blob(c, &ref, &d, &s, &err), 0);
	assert_int_equal(r.len, len); /* the 503 body never reached the sink */

	struct rec_sink r2 = {0};
	s = sink_of(&r2);
	assert_int_equal(lm_registry_fetch_blob(c, &ref, &d, &s, &err), -ENOENT);
	assert_contains(err.msg, "HTTP 404: blob unknown: blob unknown to registry");
	assert_int_equal(r2.discards, 1);

	struct rec_sink r3 = {0};
	s = sink_of(&r3);
	assert_int_equal(lm_registry_fetch_blob(c, &ref, &d, &s, &err), -EIO);
	assert_contains(err.msg, "HTTP 503: unavailable: try later (gave up after 3 attempts)");
	lm_registry_client_free(c);
}

static void blob_sink_failures(void **state)
{
	size_t len = sizeof(BLOB) - 1;
	script(BLOB, len, -1, "HTTP/1.1 200 OK");
	script(BLOB, len, -1, "HTTP/1.1 200 OK");
	struct lm_registry_client *c = client(3);
	struct lm_image_ref ref = test_ref();
	struct lm_descriptor d = blob_desc(BLOB, len);
	struct rec_sink r = {.fail_write = true};
	struct lm_blob_sink s = sink_of(&r);
	struct lm_error err = {0};
	assert_int_equal(lm_registry_fetch_blob(c, &ref, &d, &s, &err), -ENOSPC);
	assert_contains(err.msg, ": disk full");
	assert_int_equal(r.discards, 1);
	assert_int_equal(S.n_requests, 1);

	struct rec_sink r2 = {.fail_commit = true};
	s = sink_of(&r2);
	assert_int_equal(lm_registry_fetch_blob(c, &ref, &d, &s, &err), -EIO);
	assert_contains(err.msg, "cannot rename");
	/* the contract: a failed commit is followed by discard */
	assert_int_equal(r2.commits, 1);
	assert_int_equal(r2.discards, 1);
	lm_registry_client_free(c);
}

static void blob_parallel_first_failure_stops_all(void **state)
{
	size_t len = sizeof(BLOB) - 1;
	const char *unknown = "{\"errors\":[{\"code\":\"BLOB_UNKNOWN\",\"message\":\"blob unknown to registry\"}]}";
	for (int i = 0; i < 4; i++)
		script(unknown, strlen(unknown), -1, "HTTP/1.1 404 Not Found");
	struct lm_registry_client *c = client(0);
	struct lm_image_ref ref = test_ref();
	struct lm_descriptor d[3] = {blob_desc(BLOB, len), blob_desc(BLOB, 5), blob_desc(BLOB, 6)};
	struct rec_sink r[3] = {0};
	struct lm_blob_sink s[3] = {sink_of(&r[0]), sink_of(&r[1]), sink_of(&r[2])};
	struct lm_error err = {0};
	assert_int_equal(lm_registry_fetch_blobs(c, &ref, d, 3, s, &err), -ENOENT);
	assert_contains(err.msg, "blob unknown");
	for (int i = 0; i < 3; i++) {
		assert_int_equal(r[i].commits, 0);
		assert_int_equal(r[i].discards, 1);
	}
	lm_registry_client_free(c);
}

static void blob_checks_before_any_request(void **state)
{
	struct lm_registry_client *c = client(0);
	struct lm_image_ref ref = test_ref();
	struct lm_descriptor d = blob_desc(BLOB, 4);
	char *urls[] = {(char *)"https://example.invalid/blob", NULL};
	d.urls = urls;
	struct rec_sink r = {0};
	struct lm_blob_sink s = sink_of(&r);
	struct lm_error err = {0};
	assert_int_equal(lm_registry_fetch_blob(c, &ref, &d, &s, &err), -EPERM);
	assert_contains(err.msg, "is a foreign layer (to be fetched from https://example.invalid/blob)");
	assert_contains(err.msg, "disabled");
	d.urls = NULL;
	snprintf(d.digest, sizeof(d.digest), "sha512:abc");
	assert_true(lm_registry_fetch_blob(c, &ref, &d, &s, &err) < 0);
	assert_contains(err.msg, "only sha256 is supported");
	d = blob_desc(BLOB, 4);
	s.reset = NULL;
	assert_int_equal(lm_registry_fetch_blob(c, &ref, &d, &s, &err), -EINVAL);
	struct lm_image_ref evil = ref;
	evil.repository = (char *)"../../etc";
	s = sink_of(&r);
	assert_int_equal(lm_registry_fetch_blob(c, &evil, &d, &s, &err), -EINVAL);
	assert_int_equal(S.n_requests, 0);
	lm_registry_client_free(c);
}

struct thread_arg {
	struct lm_registry_client *c;
	int failures;
};

static void *fetch_twice(void *p)
{
	struct thread_arg *a = p;
	struct lm_image_ref ref = test_ref();
	struct lm_descriptor d = blob_desc(BLOB, sizeof(BLOB) - 1);
	for (int i = 0; i < 2; i++) {
		struct rec_sink r = {0};
		struct lm_blob_sink s = sink_of(&r);
		struct lm_error err = {0};
		if (lm_registry_fetch_blob(a->c, &ref, &d, &s, &err) < 0 || r.commits != 1 ||
		    r.len != sizeof(BLOB) - 1)
			a->failures++;
	}
	return NULL;
}

/* One client, several threads: the shared state (auth store, DNS and TLS
 * session caches) is locked, everything else is per call. */
static void blob_client_shared_by_threads(void **state)
{
	for (int i = 0; i < 8; i++)
		script(BLOB, sizeof(BLOB) - 1, -1, "HTTP/1.1 200 OK");
	struct lm_registry_client *c = client(0);
	pthread_t t[4];
	struct thread_arg args[4];
	for (int i = 0; i < 4; i++) {
		args[i] = (struct thread_arg){.c = c};
		assert_int_equal(pthread_create(&t[i], NULL, fetch_twice, &args[i]), 0);
	}
	for (int i = 0; i < 4; i++) {
		pthread_join(t[i], NULL);
		assert_int_equal(args[i].failures, 0);
	}
	assert_int_equal(S.n_requests, 8);
	lm_registry_client_free(c);
}

/* -------------------------------------------------------- manifest tests */

static void manifest_over_http(void **state)
{
	char *m = manifest_json(NULL, LM_MEDIA_OCI_CONFIG, "application/vnd.oci.image.layer.v1.tar+gzip", NULL);
	char digest[LM_DIGEST_SIZE];
	lm_sha256_buffer(m, strlen(m), digest);
	/* a generic Content-Type: the body decides */
	script(m, strlen(m), -1, "HTTP/1.1 200 OK\r\nContent-Type: application/json; charset=utf-8\r\n"
				 "Docker-Content-Digest: %s", digest);
	/* the header disagrees with the body */
	script(m, strlen(m), -1, "HTTP/1.1 200 OK\r\nContent-Type: " LM_MEDIA_OCI_MANIFEST "\r\n"
				 "Docker-Content-Digest: %s", D1);
	/* too big: the transfer is cut off, nothing is buffered past the limit */
	assert_true(S.n_script < MAX_CANNED);
	struct canned *big = &S.script[S.n_script++];
	snprintf(big->head, sizeof(big->head), "HTTP/1.1 200 OK\r\nContent-Type: " LM_MEDIA_OCI_MANIFEST);
	big->stream_len = LM_MANIFEST_MAX + 100000;

	struct lm_registry_client *c = client(0);
	struct lm_image_ref ref = test_ref();
	struct lm_manifest out;
	struct lm_error err = {0};
	assert_int_equal(lm_registry_get_manifest(c, &ref, NULL, &out, &err), 0);
	assert_string_equal(out.digest, digest);
	assert_string_equal(out.media_type, LM_MEDIA_OCI_MANIFEST);
	assert_string_equal(out.index_digest, "");
	assert_int_equal(out.len, strlen(m));
	assert_string_equal(out.bytes, m);
	assert_int_equal(out.n_layers, 2);
	lm_manifest_free(&out);
	assert_contains(request(0), "GET /v2/test/app/manifests/v1 HTTP/1.1");
	assert_contains(request(0), "Accept: " LM_MEDIA_OCI_MANIFEST ", " LM_MEDIA_OCI_INDEX ", "
				    LM_MEDIA_DOCKER_MANIFEST ", " LM_MEDIA_DOCKER_LIST);

	assert_int_equal(lm_registry_get_manifest(c, &ref, NULL, &out, &err), -EBADMSG);
	assert_contains(err.msg, "manifest digest mismatch: registry says sha256:1111");

	assert_int_equal(lm_registry_get_manifest(c, &ref, NULL, &out, &err), -EFBIG);
	assert_contains(err.msg, "manifest larger than 4 MiB");

	/* a digest reference must match the body */
	struct lm_image_ref pinned = ref;
	pinned.digest = (char *)D2;
	script(m, strlen(m), -1, "HTTP/1.1 200 OK\r\nContent-Type: " LM_MEDIA_OCI_MANIFEST);
	assert_int_equal(lm_registry_get_manifest(c, &pinned, NULL, &out, &err), -EBADMSG);
	assert_contains(err.msg, "manifest digest mismatch: expected sha256:2222");
	assert_contains(request(3), "GET /v2/test/app/manifests/sha256:2222");
	lm_registry_client_free(c);
	free(m);
}

static void manifest_head(void **state)
{
	script(NULL, 0, -1, "HTTP/1.1 200 OK\r\nContent-Length: 123\r\nDocker-Content-Digest: %s", D3);
	script(NULL, 0, -1, "HTTP/1.1 404 Not Found\r\nContent-Length: 0");
	struct lm_registry_client *c = client(0);
	struct lm_image_ref ref = test_ref();
	char digest[LM_DIGEST_SIZE];
	struct lm_error err = {0};
	assert_int_equal(lm_registry_head_manifest(c, &ref, digest, &err), 0);
	assert_string_equal(digest, D3);
	assert_contains(request(0), "HEAD /v2/test/app/manifests/v1 HTTP/1.1");
	assert_int_equal(lm_registry_head_manifest(c, &ref, digest, &err), -ENOENT);
	assert_contains(err.msg, ": HTTP 404: manifest unknown");
	lm_registry_client_free(c);
}

static void client_options(void **state)
{
	struct lm_registry_mirror bad = {.registry = "docker.io", .endpoint = ""};
	struct lm_registry_opts o = {.mirrors = &bad, .n_mirrors = 1};
	struct lm_registry_client *c = NULL;
	struct lm_error err = {0};
	assert_int_equal(lm_registry_client_new(&o, &c, &err), -EINVAL);
	assert_contains(err.msg, "mirror 0");
	assert_int_equal(lm_registry_client_new(NULL, &c, &err), 0);
	lm_registry_client_free(c);
	lm_registry_client_free(NULL);
}

#define SERVED(f) cmocka_unit_test_setup_teardown(f, server_up, server_down)

int main(void)
{
	signal(SIGPIPE, SIG_IGN);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(manifest_oci),
		cmocka_unit_test(manifest_docker),
		cmocka_unit_test(manifest_refusals),
		cmocka_unit_test(index_selection),
		cmocka_unit_test(client_options),
		SERVED(blob_ok),
		SERVED(blob_longer_than_descriptor),
		SERVED(blob_wrong_digest),
		SERVED(blob_resume_and_restart),
		SERVED(blob_resume_at_wrong_offset),
		SERVED(blob_retries_503_then_404),
		SERVED(blob_sink_failures),
		SERVED(blob_parallel_first_failure_stops_all),
		SERVED(blob_checks_before_any_request),
		SERVED(blob_client_shared_by_threads),
		SERVED(manifest_over_http),
		SERVED(manifest_head),
	};
	return cmocka_run_group_tests_name("registry", tests, NULL, NULL);
}
