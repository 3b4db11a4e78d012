/* Offline half of registry.h: parsing image manifests and picking a
 * platform's entry from an index or manifest list.
 *
 * Nothing here touches the network, so the same code serves manifests pulled
 * by registry.c and those read from OCI layouts and archives (load.c).  Input
 * is untrusted: every descriptor is validated (media type, digest, size,
 * http(s)-only urls), layer and index-entry counts are capped, and only the
 * manifest/config/layer media types lamina can unpack are accepted.  Index
 * selection skips attestations and other non-image entries, treats a missing
 * variant as the architecture's baseline, and on a miss names the platforms
 * the index does offer.
 */
#include "image/registry.h"

#include <errno.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "image/digest.h"
#include "image/manifest_internal.h"

#define MAX_LAYERS 1024
#define MAX_INDEX_ENTRIES 4096

void lm_descriptor_free(struct lm_descriptor *d)
{
	free(d->media_type);
	for (size_t i = 0; d->urls && d->urls[i]; i++)
		free(d->urls[i]);
	free(d->urls);
	memset(d, 0, sizeof(*d));
}

void lm_manifest_free(struct lm_manifest *m)
{
	free(m->bytes);
	free(m->index_bytes);
	free(m->media_type);
	lm_descriptor_free(&m->config);
	for (size_t i = 0; i < m->n_layers; i++)
		lm_descriptor_free(&m->layers[i]);
	free(m->layers);
	memset(m, 0, sizeof(*m));
}

void lm_platform_default(struct lm_platform *p)
{
	p->os = "linux";
	p->variant = NULL;
#if defined(__x86_64__)
	p->arch = "amd64";
#elif defined(__aarch64__)
	p->arch = "arm64";
	p->variant = "v8";
#elif defined(__arm__)
	p->arch = "arm";
#if defined(__ARM_ARCH) && __ARM_ARCH >= 7
	p->variant = "v7";
#elif defined(__ARM_ARCH) && __ARM_ARCH == 6
	p->variant = "v6";
#else
	p->variant = "v5";
#endif
#elif defined(__i386__)
	p->arch = "386";
#elif defined(__s390x__)
	p->arch = "s390x";
#elif defined(__powerpc64__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
	p->arch = "ppc64le";
#elif defined(__riscv) && __riscv_xlen == 64
	p->arch = "riscv64";
#elif defined(__mips64)
	p->arch = "mips64le";
#else
	p->arch = "unknown";
#endif
}

static void platform_fill(const struct lm_platform *in, struct lm_platform *out)
{
	struct lm_platform def;
	lm_platform_default(&def);
	out->os = in && in->os && *in->os ? in->os : def.os;
	out->arch = in && in->arch && *in->arch ? in->arch : def.arch;
	if (in && in->variant && *in->variant)
		out->variant = in->variant;
	else if (in && in->arch && *in->arch && strcmp(in->arch, def.arch) != 0)
		out->variant = NULL; /* another arch: its default variant, not ours */
	else
		out->variant = def.variant;
}

/* Variants that mean "the architecture's baseline" compare equal to none. */
static const char *norm_variant(const char *arch, const char *variant)
{
	if (!variant || !*variant) {
		if (!strcmp(arch, "arm64"))
			return "v8";
		if (!strcmp(arch, "arm"))
			return "v7";
		return "";
	}
	return variant;
}


static bool is_layer_type(const char *mt)
{
	static const char *const types[] = {
		"application/vnd.oci.image.layer.v1.tar",
		"application/vnd.oci.image.layer.v1.tar+gzip",
		"application/vnd.oci.image.layer.v1.tar+zstd",
		"application/vnd.oci.image.layer.nondistributable.v1.tar",
		"application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
		"application/vnd.oci.image.layer.nondistributable.v1.tar+zstd",
		"application/vnd.docker.image.rootfs.diff.tar.gzip",
		"application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
	};
	for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++)
		if (!strcmp(mt, types[i]))
			return true;
	return false;
}

static int parse_descriptor(json_t *j, const char *what, struct lm_descriptor *d, struct lm_error *err)
{
	memset(d, 0, sizeof(*d));
	if (!json_is_object(j))
		return lm_err(err, EBADMSG, "%s: not an object", what);
	const char *mt = json_string_value(json_object_get(j, "mediaType"));
	const char *digest = json_string_value(json_object_get(j, "digest"));
	json_t *size = json_object_get(j, "size");
	if (!mt || !*mt)
		return lm_err(err, EBADMSG, "%s: missing mediaType", what);
	if (lm_digest_validate(digest, err) < 0)
		return lm_error_prefix(err, "%s", what);
	if (!json_is_integer(size) || json_integer_value(size) < 0)
		return lm_err(err, EBADMSG, "%s: missing or negative size", what);
	d->size = (int64_t)json_integer_value(size);
	snprintf(d->digest, sizeof(d->digest), "%s", digest);
	d->media_type = strdup(mt);
	if (!d->media_type)
		return lm_err(err, ENOMEM, "out of memory");
	json_t *urls = json_object_get(j, "urls");
	if (urls && !json_is_array(urls)) {
		lm_descriptor_free(d);
		return lm_err(err, EBADMSG, "%s: urls is not an array", what);
	}
	size_t n = json_array_size(urls);
	if (n) {
		d->urls = calloc(n + 1, sizeof(*d->urls));
		if (!d->urls) {
			lm_descriptor_free(d);
			return lm_err(err, ENOMEM, "out of memory");
		}
		for (size_t i = 0; i < n; i++) {
			const char *u = json_string_value(json_array_get(urls, i));
			if (!u || (strncmp(u, "https://", 8) != 0 && strncmp(u, "http://", 7) != 0)) {
				lm_descriptor_free(d);
				return lm_err(err, EBADMSG, "%s: urls[%zu] is not an http(s) URL", what, i);
			}
			if (!(d->urls[i] = strdup(u))) {
				lm_descriptor_free(d);
				return lm_err(err, ENOMEM, "out of memory");
			}
		}
	}
	return 0;
}

int lm_manifest_parse(const char *bytes, size_t len, const char *media_type,
		      struct lm_manifest *out, struct lm_error *err)
{
	memset(out, 0, sizeof(*out));
	json_error_t jerr;
	json_auto_t *root = json_loadb(bytes, len, 0, &jerr);
	if (!root)
		return lm_err(err, EBADMSG, "manifest is not JSON (line %d: %s)", jerr.line, jerr.text);
	if (!json_is_object(root))
		return lm_err(err, EBADMSG, "manifest is not a JSON object");
	json_t *sv = json_object_get(root, "schemaVersion");
	if (json_is_integer(sv) && json_integer_value(sv) == 1)
		return lm_err(err, ENOTSUP, "Docker schema1 manifests are not supported");
	if (!json_is_integer(sv) || json_integer_value(sv) != 2)
		return lm_err(err, EBADMSG, "manifest: unsupported schemaVersion");
	const char *body_mt = json_string_value(json_object_get(root, "mediaType"));
	const char *mt = media_type ? media_type : body_mt ? body_mt : LM_MEDIA_OCI_MANIFEST;
	if (is_index_type(mt))
		return lm_err(err, EINVAL, "%s is an index, not an image manifest", mt);
	if (!is_manifest_type(mt))
		return lm_err(err, ENOTSUP, "unsupported manifest media type \"%.100s\"", mt);
	if (body_mt && strcmp(body_mt, mt) != 0)
		return lm_err(err, EBADMSG, "manifest media type mismatch: served as %.100s, says %.100s", mt,
			      body_mt);
	if (!(out->media_type = strdup(mt)))
		return lm_err(err, ENOMEM, "out of memory");

	if (parse_descriptor(json_object_get(root, "config"), "config", &out->config, err) < 0)
		goto fail;
	if (strcmp(out->config.media_type, LM_MEDIA_OCI_CONFIG) != 0 &&
	    strcmp(out->config.media_type, LM_MEDIA_DOCKER_CONFIG) != 0) {
		lm_err(err, ENOTSUP, "not a container image: config media type \"%.100s\"",
		       out->config.media_type);
		goto fail;
	}
	json_t *layers = json_object_get(root, "layers");
	if (!json_is_array(layers)) {
		lm_err(err, EBADMSG, "manifest has no layers array");
		goto fail;
	}
	size_t n = json_array_size(layers);
	if (n > MAX_LAYERS) {
		lm_err(err, EBADMSG, "manifest has %zu layers (at most %d are accepted)", n, MAX_LAYERS);
		goto fail;
	}
	out->layers = calloc(n ? n : 1, sizeof(*out->layers));
	if (!out->layers) {
		lm_err(err, ENOMEM, "out of memory");
		goto fail;
	}
	for (size_t i = 0; i < n; i++) {
		char what[32];
		snprintf(what, sizeof(what), "layer %zu", i + 1);
		if (parse_descriptor(json_array_get(layers, i), what, &out->layers[i], err) < 0)
			goto fail;
		out->n_layers = i + 1;
		if (!is_layer_type(out->layers[i].media_type)) {
			lm_err(err, ENOTSUP, "layer %zu: unsupported media type \"%.100s\"", i + 1,
			       out->layers[i].media_type);
			goto fail;
		}
	}
	return 0;
fail:
	lm_manifest_free(out);
	return err_ret(err);
}

static void platform_string(const char *os, const char *arch, const char *variant, char *buf, size_t size)
{
	/* arm64's baseline is implied, as docker prints it: "linux/arm64", not "linux/arm64/v8". */
	bool show = variant && *variant && !(strcmp(arch, "arm64") == 0 && strcmp(variant, "v8") == 0);
	snprintf(buf, size, "%s/%s%s%s", os, arch, show ? "/" : "", show ? variant : "");
}

int lm_index_select(const char *bytes, size_t len, const struct lm_platform *platform,
		    struct lm_descriptor *out, struct lm_error *err)
{
	memset(out, 0, sizeof(*out));
	struct lm_platform want;
	platform_fill(platform, &want);
	json_error_t jerr;
	json_auto_t *root = json_loadb(bytes, len, 0, &jerr);
	if (!json_is_object(root))
		return lm_err(err, EBADMSG, "index is not a JSON object");
	json_t *manifests = json_object_get(root, "manifests");
	if (!json_is_array(manifests))
		return lm_err(err, EBADMSG, "index has no manifests array");
	size_t n = json_array_size(manifests);
	if (n > MAX_INDEX_ENTRIES)
		return lm_err(err, EBADMSG, "index has %zu entries (at most %d are accepted)", n,
			      MAX_INDEX_ENTRIES);
	const char *want_v = norm_variant(want.arch, want.variant);
	json_t *best = NULL;
	int best_score = 0;
	char available[600] = "";
	size_t alen = 0;
	for (size_t i = 0; i < n; i++) {
		json_t *m = json_array_get(manifests, i);
		json_t *p = json_object_get(m, "platform");
		const char *os = json_string_value(json_object_get(p, "os"));
		const char *arch = json_string_value(json_object_get(p, "architecture"));
		const char *variant = json_string_value(json_object_get(p, "variant"));
		const char *mt = json_string_value(json_object_get(m, "mediaType"));
		if (!os || !arch || !strcmp(os, "unknown") || !strcmp(arch, "unknown"))
			continue; /* attestations and other non-images */
		if (mt && !is_manifest_type(mt))
			continue;
		char ps[128];
		platform_string(os, arch, variant, ps, sizeof(ps));
		bool seen = false;
		for (size_t k = 0; k < i && !seen; k++) {
			json_t *pk = json_object_get(json_array_get(manifests, k), "platform");
			const char *ok = json_string_value(json_object_get(pk, "os"));
			const char *ak = json_string_value(json_object_get(pk, "architecture"));
			const char *vk = json_string_value(json_object_get(pk, "variant"));
			seen = ok && ak && !strcmp(ok, os) && !strcmp(ak, arch) &&
			       !strcmp(vk ? vk : "", variant ? variant : "");
		}
		if (!seen && alen + strlen(ps) + 3 < sizeof(available))
			alen += (size_t)snprintf(available + alen, sizeof(available) - alen, "%s%s",
						 alen ? ", " : "", ps);
		if (strcmp(os, want.os) != 0 || strcmp(arch, want.arch) != 0)
			continue;
		const char *have_v = norm_variant(arch, variant);
		int score;
		if (!strcmp(have_v, want_v))
			score = 2;
		else if (!want.variant || !*want.variant)
			score = 1; /* no variant asked for: any will do, the baseline first */
		else
			continue;
		if (score > best_score) {
			best = m;
			best_score = score;
		}
	}
	if (!best) {
		char ws[128];
		platform_string(want.os, want.arch, want.variant, ws, sizeof(ws));
		return lm_err(err, ENOENT, "no manifest for %s in index; available: %s", ws,
			      alen ? available : "none");
	}
	json_t *copy = json_deep_copy(best);
	if (!copy)
		return lm_err(err, ENOMEM, "out of memory");
	if (!json_object_get(copy, "mediaType"))
		json_object_set_new(copy, "mediaType", json_string(LM_MEDIA_OCI_MANIFEST));
	int r = parse_descriptor(copy, "index entry", out, err);
	json_decref(copy);
	return r;
}
