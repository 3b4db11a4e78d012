/* See pull.h for the design.  Threads: the caller's thread runs every
 * download (the registry client's curl multi loop) and the progress
 * callbacks; one unpack thread per missing layer follows its download
 * through a dup of the blob writer's temp file.  A job's mutex guards only
 * the download's position and outcome, never I/O. */
#include "image/pull.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "image/decompress.h"
#include "image/ref.h"
#include "image/unpack.h"
#include "util/cleanup.h"

#define CONFIG_MAX (8u << 20)

int lm_pull_policy_parse(const char *s, enum lm_pull_policy *out, struct lm_error *err)
{
	static const struct {
		const char *name;
		enum lm_pull_policy policy;
	} names[] = {
		{"if_not_present", LM_PULL_IF_NOT_PRESENT}, {"missing", LM_PULL_IF_NOT_PRESENT},
		{"always", LM_PULL_ALWAYS},                 {"newer", LM_PULL_NEWER},
		{"never", LM_PULL_NEVER},
	};
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (strcmp(s, names[i].name) == 0) {
			*out = names[i].policy;
			return 0;
		}
	return lm_err(err, EINVAL, "unknown pull policy \"%s\": use always, newer, if_not_present or never", s);
}

int lm_image_config_diff_ids(const char *config, size_t len, char ***out, size_t *n, struct lm_error *err)
{
	json_error_t jerr;
	json_t *root = json_loadb(config, len, 0, &jerr);
	if (!root)
		return lm_err(err, EINVAL, "image config: invalid JSON at line %d: %s", jerr.line, jerr.text);
	json_t *ids = json_object_get(json_object_get(root, "rootfs"), "diff_ids");
	if (!json_is_array(ids)) {
		json_decref(root);
		return lm_err(err, EINVAL, "image config: rootfs.diff_ids is missing");
	}
	size_t count = json_array_size(ids);
	char **v = calloc(count + 1, sizeof(char *));
	if (!v) {
		json_decref(root);
		return lm_err(err, ENOMEM, "out of memory");
	}
	for (size_t i = 0; i < count; i++) {
		const char *d = json_string_value(json_array_get(ids, i));
		if (lm_digest_validate(d, err) < 0 || !(v[i] = strdup(d))) {
			for (size_t j = 0; j < i; j++)
				free(v[j]);
			free(v);
			json_decref(root);
			return lm_error_prefix(err, "image config: rootfs.diff_ids[%zu]", i);
		}
	}
	json_decref(root);
	*out = v;
	*n = count;
	return 0;
}

/* --- one layer: download + unpack --- */

struct layer_job {
	size_t index, n_layers;
	const struct lm_descriptor *desc;
	const char *diff_id;
	const char *chain_id;
	struct lm_store *store;
	struct lm_blob_writer *writer; /* while downloading */
	int fd;                        /* what the unpacker reads */
	const struct lm_pull_progress *progress;

	pthread_mutex_t mu;
	pthread_cond_t cv;
	int64_t avail;    /* bytes of the blob readable at fd */
	unsigned gen;     /* bumped when the download starts over */
	bool done;        /* the blob is complete and verified */
	bool failed;      /* the download failed: the unpacker gives up */
	int64_t consumed; /* how far the unpacker has read (progress only) */

	pthread_t thread;
	bool started;
	int rc;
	struct lm_error err;
	enum lm_layer_phase phase;
	struct timespec last_report;
};

struct job_reader {
	struct layer_job *job;
	unsigned gen;
	int64_t off;
	char msg[128];
};

static ssize_t job_read(void *ctx, void *buf, size_t len)
{
	struct job_reader *r = ctx;
	struct layer_job *job = r->job;
	pthread_mutex_lock(&job->mu);
	while (!job->failed && !job->done && job->gen == r->gen && r->off >= job->avail)
		pthread_cond_wait(&job->cv, &job->mu);
	bool failed = job->failed, stale = job->gen != r->gen;
	int64_t avail = job->avail;
	pthread_mutex_unlock(&job->mu);
	if (failed || stale) {
		snprintf(r->msg, sizeof(r->msg), "%s", failed ? "the download failed" : "the download started over");
		errno = failed ? ECANCELED : ESTALE;
		return -1;
	}
	if (r->off >= avail)
		return 0;
	size_t n = (size_t)(avail - r->off) < len ? (size_t)(avail - r->off) : len;
	ssize_t got;
	do
		got = pread(job->fd, buf, n, r->off);
	while (got < 0 && errno == EINTR);
	if (got < 0) {
		snprintf(r->msg, sizeof(r->msg), "read layer: %s", strerror(errno));
		return -1;
	}
	r->off += got;
	__atomic_store_n(&job->consumed, r->off, __ATOMIC_RELAXED);
	return got;
}

static const char *job_read_error(void *ctx)
{
	struct job_reader *r = ctx;
	return r->msg;
}

/* One attempt: everything from the first byte; ESTALE when the download
 * started over under us. */
static int unpack_attempt(struct layer_job *job, unsigned gen, struct lm_error *err)
{
	struct job_reader r = {.job = job, .gen = gen};
	struct lm_reader src = {.read = job_read, .error = job_read_error, .ctx = &r};
	struct lm_snapshot *snap = NULL;
	struct lm_decompress *dec = NULL;
	int rc = -1;
	if (lm_store_snapshot_begin(job->store, job->chain_id, &snap, err) < 0)
		return -1;
	if (lm_decompress_open(&src, LM_COMPRESSION_AUTO, LM_DECOMPRESS_DEFAULT_LIMIT, &dec, err) < 0 ||
	    lm_decompress_check_media_type(dec, job->desc->media_type, err) < 0)
		goto out;
	struct lm_unpack_opts uopts = {0};
	struct lm_unpack_stats stats = {0};
	if (lm_unpack(lm_decompress_reader(dec), lm_store_snapshot_fs_fd(snap), &uopts, &stats, err) < 0)
		goto out;
	/* the tar may end before the blob does: drain, so the diff id covers it all */
	char sink[65536];
	ssize_t n;
	while ((n = lm_decompress_read(dec, sink, sizeof(sink), err)) > 0)
		;
	if (n < 0)
		goto out;
	char diff_id[LM_DIGEST_SIZE];
	if (lm_decompress_diff_id(dec, diff_id, err) < 0)
		goto out;
	if (strcmp(diff_id, job->diff_id) != 0) {
		lm_err(err, EINVAL, "layer %s unpacks to %s, but the image config says %s", job->desc->digest,
		       diff_id, job->diff_id);
		goto out;
	}
	/* Only a verified blob may become a snapshot. */
	pthread_mutex_lock(&job->mu);
	while (!job->done && !job->failed)
		pthread_cond_wait(&job->cv, &job->mu);
	bool ok = job->done && job->gen == gen;
	pthread_mutex_unlock(&job->mu);
	if (!ok) {
		lm_err(err, ECANCELED, "layer %s: the download failed", job->desc->digest);
		goto out;
	}
	rc = lm_store_snapshot_commit(snap, err);
	snap = NULL;
out:
	if (rc < 0 && job->gen != gen)
		errno = ESTALE;
	lm_decompress_free(dec);
	if (snap)
		lm_store_snapshot_abort(snap);
	return rc;
}

static void *unpack_main(void *arg)
{
	struct layer_job *job = arg;
	for (;;) {
		pthread_mutex_lock(&job->mu);
		unsigned gen = job->gen;
		pthread_mutex_unlock(&job->mu);
		lm_error_clear(&job->err);
		job->rc = unpack_attempt(job, gen, &job->err);
		pthread_mutex_lock(&job->mu);
		bool again = job->rc < 0 && job->gen != gen && !job->failed;
		pthread_mutex_unlock(&job->mu);
		if (!again)
			break;
	}
	if (job->rc < 0)
		lm_error_prefix(&job->err, "layer %s", job->desc->digest);
	return NULL;
}

static void report(struct layer_job *job, enum lm_layer_phase phase, bool force)
{
	if (!job->progress || !job->progress->layer)
		return;
	struct timespec now;
	clock_gettime(CLOCK_MONOTONIC, &now);
	long ms = (now.tv_sec - job->last_report.tv_sec) * 1000 + (now.tv_nsec - job->last_report.tv_nsec) / 1000000;
	if (!force && phase == job->phase && ms < 100)
		return;
	job->phase = phase;
	job->last_report = now;
	int64_t shown = phase == LM_LAYER_UNPACKING ? __atomic_load_n(&job->consumed, __ATOMIC_RELAXED)
						    : job->avail;
	job->progress->layer(job->progress->ctx, job->index, job->n_layers, job->desc->digest, phase, shown,
			     job->desc->size);
}

static int sink_write(void *ctx, const void *buf, size_t len, struct lm_error *err)
{
	struct layer_job *job = ctx;
	if (lm_blob_writer_write(job->writer, buf, len, err) < 0)
		return -1;
	pthread_mutex_lock(&job->mu);
	job->avail += (int64_t)len;
	pthread_cond_broadcast(&job->cv);
	pthread_mutex_unlock(&job->mu);
	report(job, LM_LAYER_DOWNLOADING, false);
	return 0;
}

static int sink_reset(void *ctx, struct lm_error *err)
{
	struct layer_job *job = ctx;
	if (lm_blob_writer_reset(job->writer, err) < 0)
		return -1;
	pthread_mutex_lock(&job->mu);
	job->avail = 0;
	job->gen++;
	pthread_cond_broadcast(&job->cv);
	pthread_mutex_unlock(&job->mu);
	return 0;
}

static int sink_commit(void *ctx, struct lm_error *err)
{
	struct layer_job *job = ctx;
	struct lm_blob_writer *w = job->writer;
	job->writer = NULL;
	int rc = lm_blob_writer_commit(w, NULL, err);
	pthread_mutex_lock(&job->mu);
	if (rc == 0)
		job->done = true;
	else
		job->failed = true;
	pthread_cond_broadcast(&job->cv);
	pthread_mutex_unlock(&job->mu);
	report(job, LM_LAYER_UNPACKING, true);
	return rc;
}

static void sink_discard(void *ctx)
{
	struct layer_job *job = ctx;
	if (job->writer) {
		lm_blob_writer_abort(job->writer);
		job->writer = NULL;
	}
	pthread_mutex_lock(&job->mu);
	job->failed = true;
	pthread_cond_broadcast(&job->cv);
	pthread_mutex_unlock(&job->mu);
}

static void job_cleanup(struct layer_job *job)
{
	if (job->writer)
		lm_blob_writer_abort(job->writer);
	job->writer = NULL;
	if (job->fd >= 0)
		close(job->fd);
	job->fd = -1;
	pthread_mutex_destroy(&job->mu);
	pthread_cond_destroy(&job->cv);
}

/* Wait for every unpack thread, reporting progress meanwhile.  Returns the
 * first error. */
static int join_jobs(struct layer_job *jobs, size_t n, struct lm_error *err)
{
	int rc = 0;
	for (size_t i = 0; i < n; i++) {
		if (!jobs[i].started)
			continue;
		for (;;) {
			struct timespec deadline;
			clock_gettime(CLOCK_REALTIME, &deadline);
			deadline.tv_nsec += 100 * 1000000;
			if (deadline.tv_nsec >= 1000000000) {
				deadline.tv_sec++;
				deadline.tv_nsec -= 1000000000;
			}
			if (pthread_timedjoin_np(jobs[i].thread, NULL, &deadline) == 0)
				break;
			for (size_t j = i; j < n; j++)
				if (jobs[j].started)
					report(&jobs[j], LM_LAYER_UNPACKING, false);
		}
		jobs[i].started = false;
		if (jobs[i].rc == 0) {
			report(&jobs[i], LM_LAYER_DONE, true);
		} else if (rc == 0) {
			*err = jobs[i].err;
			rc = -1;
		}
	}
	return rc;
}

/* Download (or read from the store) and unpack every layer whose snapshot
 * is missing. */
static int fetch_layers(struct lm_store *s, struct lm_registry_client *client, const struct lm_image_ref *ref,
			const struct lm_manifest *m, char **diff_ids, char **chain_ids, const bool *skip,
			const struct lm_pull_progress *progress, struct lm_error *err)
{
	size_t n = m->n_layers;
	struct layer_job *jobs = calloc(n ? n : 1, sizeof(*jobs));
	struct lm_descriptor *descs = calloc(n ? n : 1, sizeof(*descs));
	struct lm_blob_sink *sinks = calloc(n ? n : 1, sizeof(*sinks));
	size_t *fetch_index = calloc(n ? n : 1, sizeof(size_t));
	int rc = -1;
	size_t n_fetch = 0;
	if (!jobs || !descs || !sinks || !fetch_index) {
		lm_err(err, ENOMEM, "out of memory");
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		struct layer_job *job = &jobs[i];
		job->index = i;
		job->n_layers = n;
		job->desc = &m->layers[i];
		job->diff_id = diff_ids[i];
		job->chain_id = chain_ids[i];
		job->store = s;
		job->fd = -1;
		job->progress = progress;
		pthread_mutex_init(&job->mu, NULL);
		pthread_cond_init(&job->cv, NULL);
	}
	for (size_t i = 0; i < n; i++) {
		struct layer_job *job = &jobs[i];
		if (skip && skip[i])
			continue;
		if (lm_store_snapshot_exists(s, job->chain_id)) {
			report(job, LM_LAYER_CACHED, true);
			continue;
		}
		if (lm_store_blob_exists(s, job->desc->digest)) {
			/* downloaded before, never unpacked (or its snapshot was pruned) */
			if (lm_store_blob_open(s, job->desc->digest, &job->fd, err) < 0)
				goto out;
			job->avail = job->desc->size;
			job->done = true;
		} else {
			if (!client) {
				lm_err(err, ENOENT, "layer %s is not in the store", job->desc->digest);
				goto out;
			}
			if (lm_blob_writer_open(s, job->desc->digest, job->desc->size, &job->writer, err) < 0)
				goto out;
			job->fd = dup(lm_blob_writer_fd(job->writer));
			if (job->fd < 0) {
				lm_err_sys(err, "dup");
				goto out;
			}
			descs[n_fetch] = *job->desc;
			sinks[n_fetch] = (struct lm_blob_sink){.ctx = job, .write = sink_write, .reset = sink_reset,
							       .commit = sink_commit, .discard = sink_discard};
			fetch_index[n_fetch++] = i;
			report(job, LM_LAYER_WAITING, true);
		}
		if (pthread_create(&job->thread, NULL, unpack_main, job) != 0) {
			lm_err(err, EAGAIN, "cannot start an unpack thread");
			goto out;
		}
		job->started = true;
	}
	int fetch_rc = n_fetch ? lm_registry_fetch_blobs(client, ref, descs, n_fetch, sinks, err) : 0;
	if (fetch_rc < 0) {
		for (size_t i = 0; i < n; i++) {
			pthread_mutex_lock(&jobs[i].mu);
			if (!jobs[i].done)
				jobs[i].failed = true;
			pthread_cond_broadcast(&jobs[i].cv);
			pthread_mutex_unlock(&jobs[i].mu);
		}
	}
	struct lm_error join_err;
	int join_rc = join_jobs(jobs, n, &join_err);
	if (fetch_rc < 0)
		goto out;
	if (join_rc < 0) {
		*err = join_err;
		goto out;
	}
	rc = 0;
out:
	if (rc < 0 && jobs) {
		for (size_t i = 0; i < n; i++) {
			pthread_mutex_lock(&jobs[i].mu);
			jobs[i].failed = true;
			pthread_cond_broadcast(&jobs[i].cv);
			pthread_mutex_unlock(&jobs[i].mu);
		}
		struct lm_error ignored;
		join_jobs(jobs, n, &ignored);
	}
	for (size_t i = 0; jobs && i < n; i++)
		job_cleanup(&jobs[i]);
	free(jobs);
	free(descs);
	free(sinks);
	free(fetch_index);
	return rc;
}

/* --- one download per layer, across processes --- */

/* An exclusive flock on <root>/locks/<chain hex>: whoever holds it is making
 * that snapshot.  A second puller of the same layer waits for the first and
 * then finds the snapshot there, instead of downloading it again. */
static int layer_lock(struct lm_store *s, const char *chain_id, bool wait, bool *busy, struct lm_error *err)
{
	char path[4096];
	snprintf(path, sizeof(path), "%s/locks", lm_store_root(s));
	if (mkdir(path, 0700) < 0 && errno != EEXIST)
		return lm_err_sys(err, "mkdir %s", path);
	snprintf(path, sizeof(path), "%s/locks/%s", lm_store_root(s), lm_digest_hex(chain_id));
	int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0)
		return lm_err_sys(err, "open %s", path);
	int r;
	do
		r = flock(fd, LOCK_EX | (wait ? 0 : LOCK_NB));
	while (r < 0 && errno == EINTR);
	if (r < 0) {
		close(fd);
		if (errno == EWOULDBLOCK) {
			*busy = true;
			return -1;
		}
		return lm_err_sys(err, "lock %s", path);
	}
	*busy = false;
	return fd;
}

static int fetch_layers_shared(struct lm_store *s, struct lm_registry_client *client,
			       const struct lm_image_ref *ref, const struct lm_manifest *m, char **diff_ids,
			       char **chain_ids, const struct lm_pull_progress *progress, struct lm_error *err)
{
	size_t n = m->n_layers;
	int *locks = calloc(n ? n : 1, sizeof(int));
	bool *others = calloc(n ? n : 1, sizeof(bool));
	int rc = -1;
	if (!locks || !others) {
		lm_err(err, ENOMEM, "out of memory");
		goto out;
	}
	for (size_t i = 0; i < n; i++)
		locks[i] = -1;
	/* first round: every layer nobody else is making */
	for (size_t i = 0; i < n; i++) {
		if (lm_store_snapshot_exists(s, chain_ids[i]))
			continue;
		bool busy = false;
		locks[i] = layer_lock(s, chain_ids[i], false, &busy, err);
		if (locks[i] < 0 && !busy)
			goto out;
		others[i] = busy;
	}
	if (fetch_layers(s, client, ref, m, diff_ids, chain_ids, others, progress, err) < 0)
		goto out;
	/* What we made is there: let go of it before waiting for the others.
	 * Holding it, two pulls that split the layers between them would each
	 * wait for the other's lock forever. */
	for (size_t i = 0; i < n; i++)
		if (locks[i] >= 0) {
			close(locks[i]);
			locks[i] = -1;
		}
	/* second round: wait for the other pullers, then do what they did not
	 * (locks taken in layer order, the same order for every image sharing
	 * a layer: a chain id fixes the layers below it) */
	bool again = false;
	for (size_t i = 0; i < n; i++) {
		if (!others[i])
			continue;
		bool busy = false;
		locks[i] = layer_lock(s, chain_ids[i], true, &busy, err);
		if (locks[i] < 0)
			goto out;
		others[i] = false;
		again = true;
	}
	if (again && fetch_layers(s, client, ref, m, diff_ids, chain_ids, NULL, progress, err) < 0)
		goto out;
	rc = 0;
out:
	for (size_t i = 0; locks && i < n; i++)
		if (locks[i] >= 0)
			close(locks[i]);
	free(locks);
	free(others);
	return rc;
}

/* --- small blobs --- */

struct mem_sink {
	struct lm_blob_writer *w;
};

static int small_write(void *ctx, const void *buf, size_t len, struct lm_error *err)
{
	struct mem_sink *m = ctx;
	return lm_blob_writer_write(m->w, buf, len, err);
}

static int small_reset(void *ctx, struct lm_error *err)
{
	struct mem_sink *m = ctx;
	return lm_blob_writer_reset(m->w, err);
}

static int small_commit(void *ctx, struct lm_error *err)
{
	struct mem_sink *m = ctx;
	struct lm_blob_writer *w = m->w;
	m->w = NULL;
	return lm_blob_writer_commit(w, NULL, err);
}

static void small_discard(void *ctx)
{
	struct mem_sink *m = ctx;
	if (m->w)
		lm_blob_writer_abort(m->w);
	m->w = NULL;
}

static int fetch_small_blob(struct lm_store *s, struct lm_registry_client *client, const struct lm_image_ref *ref,
			    const struct lm_descriptor *desc, struct lm_error *err)
{
	if (lm_store_blob_exists(s, desc->digest))
		return 0;
	if (desc->size < 0 || desc->size > (int64_t)CONFIG_MAX)
		return lm_err(err, EFBIG, "image config %s: size %lld is out of range", desc->digest,
			      (long long)desc->size);
	struct mem_sink m = {0};
	if (lm_blob_writer_open(s, desc->digest, desc->size, &m.w, err) < 0)
		return -1;
	struct lm_blob_sink sink = {.ctx = &m, .write = small_write, .reset = small_reset,
				    .commit = small_commit, .discard = small_discard};
	int rc = lm_registry_fetch_blob(client, ref, desc, &sink, err);
	if (m.w)
		lm_blob_writer_abort(m.w);
	return rc;
}

/* --- the pull --- */

static void note(const struct lm_pull_opts *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void note(const struct lm_pull_opts *o, const char *fmt, ...)
{
	if (!o->progress || !o->progress->note)
		return;
	char msg[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	o->progress->note(o->progress->ctx, msg);
}

/* Make the image of manifest m real in the store: manifest and config blobs,
 * every layer's snapshot, the record.  Layers come from the store's blobs
 * when there, else from the registry (client may be NULL when every blob is
 * local: image load). */
static int realize_image(struct lm_store *s, struct lm_registry_client *client, const struct lm_image_ref *ref,
			 const char *name, const struct lm_manifest *m, const struct lm_platform *platform_opt,
			 const struct lm_pull_progress *progress, struct lm_error *err)
{
	char **diff_ids = NULL, **chain_ids = NULL;
	size_t n_diff = 0;
	char *config = NULL;
	size_t config_len = 0;
	int rc = -1;
	struct lm_image_record rec = {0};
	char **layer_digests = NULL;

	char stored[LM_DIGEST_SIZE];
	if (lm_store_blob_put(s, m->bytes, m->len, stored, err) < 0 ||
	    (m->index_bytes && lm_store_blob_put(s, m->index_bytes, m->index_len, stored, err) < 0))
		goto out;
	if (!lm_store_blob_exists(s, m->config.digest)) {
		if (!client) {
			lm_err(err, ENOENT, "image config %s is missing", m->config.digest);
			goto out;
		}
		if (fetch_small_blob(s, client, ref, &m->config, err) < 0)
			goto out;
	}
	if (lm_store_blob_read(s, m->config.digest, CONFIG_MAX, &config, &config_len, err) < 0 ||
	    lm_image_config_diff_ids(config, config_len, &diff_ids, &n_diff, err) < 0)
		goto out;
	if (n_diff != m->n_layers) {
		lm_err(err, EINVAL, "image config %s lists %zu layers, the manifest %zu", m->config.digest, n_diff,
		       m->n_layers);
		goto out;
	}
	chain_ids = calloc(n_diff + 1, sizeof(char *));
	if (!chain_ids) {
		lm_err(err, ENOMEM, "out of memory");
		goto out;
	}
	for (size_t i = 0; i < n_diff; i++) {
		chain_ids[i] = malloc(LM_DIGEST_SIZE);
		if (!chain_ids[i] || lm_chain_id(i ? chain_ids[i - 1] : NULL, diff_ids[i], chain_ids[i]) < 0) {
			lm_err(err, EINVAL, "chain id of layer %zu", i);
			goto out;
		}
	}
	if (fetch_layers_shared(s, client, ref, m, diff_ids, chain_ids, progress, err) < 0)
		goto out;

	layer_digests = calloc(m->n_layers + 1, sizeof(char *));
	if (!layer_digests) {
		lm_err(err, ENOMEM, "out of memory");
		goto out;
	}
	int64_t size = 0;
	for (size_t i = 0; i < m->n_layers; i++) {
		layer_digests[i] = (char *)m->layers[i].digest;
		size += m->layers[i].size;
	}
	struct lm_platform plat;
	if (platform_opt)
		plat = *platform_opt;
	else
		lm_platform_default(&plat);
	char platform[128];
	snprintf(platform, sizeof(platform), "%s/%s%s%s", plat.os ? plat.os : "linux", plat.arch ? plat.arch : "?",
		 plat.variant ? "/" : "", plat.variant ? plat.variant : "");
	rec = (struct lm_image_record){
		.name = (char *)name,
		.manifest_digest = (char *)m->digest,
		.config_digest = (char *)m->config.digest,
		.layer_digests = layer_digests,
		.diff_ids = diff_ids,
		.chain_ids = chain_ids,
		.n_layers = m->n_layers,
		.size = size,
		.platform = platform,
		.index_digest = m->index_digest[0] && lm_store_blob_exists(s, m->index_digest)
					? (char *)m->index_digest
					: NULL,
	};
	rc = lm_store_image_put(s, &rec, err);
out:
	free(layer_digests);
	for (size_t i = 0; diff_ids && i < n_diff; i++)
		free(diff_ids[i]);
	free(diff_ids);
	for (size_t i = 0; chain_ids && chain_ids[i]; i++)
		free(chain_ids[i]);
	free(chain_ids);
	free(config);
	return rc;
}

static int pull_from_registry(struct lm_store *s, struct lm_registry_client *client,
			      const struct lm_image_ref *ref, const char *name, const struct lm_pull_opts *o,
			      struct lm_error *err)
{
	struct lm_manifest m = {0};
	struct lm_store_lease *lease = NULL;
	int rc = -1;
	if (lm_registry_get_manifest(client, ref, o->platform, &m, err) == 0 &&
	    lm_store_lease_acquire(s, &lease, err) == 0)
		rc = realize_image(s, client, ref, name, &m, o->platform, o->progress, err);
	if (lease)
		lm_store_lease_release(lease);
	lm_manifest_free(&m);
	return rc;
}

int lm_image_realize_local(struct lm_store *s, const char *name, const struct lm_manifest *m,
			   const struct lm_platform *platform, const struct lm_pull_progress *progress,
			   struct lm_error *err)
{
	struct lm_store_lease *lease = NULL;
	if (lm_store_lease_acquire(s, &lease, err) < 0)
		return -1;
	int rc = realize_image(s, NULL, NULL, name, m, platform, progress, err);
	lm_store_lease_release(lease);
	return rc;
}

int lm_image_pull(struct lm_store *s, struct lm_registry_client *client, const char *text,
		  const struct lm_pull_opts *o, struct lm_image_record *out, struct lm_error *err)
{
	struct lm_image_ref ref = {0};
	memset(out, 0, sizeof(*out));
	if (lm_image_ref_parse(text, o->default_registry, &ref, err) < 0)
		return -1;
	autofree char *name = lm_image_ref_string(&ref);
	int rc = -1;
	if (!name) {
		lm_err(err, ENOMEM, "out of memory");
		goto out;
	}
	struct lm_image_record local = {0};
	struct lm_error local_err;
	bool have = lm_store_image_get(s, name, &local, &local_err) == 0;
	switch (o->policy) {
	case LM_PULL_NEVER:
		if (!have) {
			lm_err(err, ENOENT, "image %s is not present and the pull policy is never", name);
			goto out;
		}
		*out = local;
		rc = 0;
		goto out;
	case LM_PULL_IF_NOT_PRESENT:
		if (have) {
			*out = local;
			rc = 0;
			goto out;
		}
		break;
	case LM_PULL_NEWER:
		if (have) {
			char remote[LM_DIGEST_SIZE];
			struct lm_error head_err;
			if (!client || lm_registry_head_manifest(client, &ref, remote, &head_err) < 0) {
				note(o, "using the local copy of %s: %s", name, client ? head_err.msg : "no registry client");
				*out = local;
				rc = 0;
				goto out;
			}
			const char *mine = local.index_digest ? local.index_digest : local.manifest_digest;
			if (strcmp(remote, mine) == 0) {
				*out = local;
				rc = 0;
				goto out;
			}
		}
		break;
	case LM_PULL_ALWAYS:
		break;
	}
	lm_image_record_free(&local);
	if (!client) {
		lm_err(err, EINVAL, "pull %s: no registry client", name);
		goto out;
	}
	if (pull_from_registry(s, client, &ref, name, o, err) < 0) {
		lm_error_prefix(err, "pull %s", name);
		goto out;
	}
	rc = lm_store_image_get(s, name, out, err);
out:
	lm_image_ref_free(&ref);
	return rc;
}
