/* See oci_config.h.
 *
 * The config is edited as JSON (jansson) on top of lm_spec_default() rather
 * than built from nothing, so a field this file does not know about keeps the
 * runtime's default.  Errors name the image config field they come from
 * ("image config: config.Env[2]: ..."), because the image is the part the
 * user did not write.  Users and groups are resolved by passwd.c.
 */
#include "image/oci_config.h"
#include "runtime/seccomp.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <strings.h>
#include <unistd.h>

#include "runtime/spec.h"
#include "util/cleanup.h"
#include "util/fs.h"

#define DEFAULT_PATH "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
#define HOSTNAME_MAX 64     /* what the runtime's parser takes */
#define CPU_PERIOD 100000

/* ------------------------------------------------------------ string lists */

struct strv {
	char **v; /* NULL-terminated once non-empty */
	size_t n, cap;
};

static void strv_free(struct strv *s)
{
	for (size_t i = 0; i < s->n; i++)
		free(s->v[i]);
	free(s->v);
	s->v = NULL;
	s->n = s->cap = 0;
}

static int strv_push_owned(struct strv *s, char *str, struct lm_error *err)
{
	if (!str)
		return lm_err(err, ENOMEM, "out of memory");
	if (s->n + 1 >= s->cap) {
		size_t cap = s->cap ? s->cap * 2 : 8;
		char **nv = realloc(s->v, cap * sizeof(char *));
		if (!nv) {
			free(str);
			return lm_err(err, ENOMEM, "out of memory");
		}
		s->v = nv;
		s->cap = cap;
	}
	s->v[s->n++] = str;
	s->v[s->n] = NULL;
	return 0;
}

static int strv_push(struct strv *s, const char *str, struct lm_error *err)
{
	return strv_push_owned(s, strdup(str), err);
}

static json_t *strv_json(const struct strv *s)
{
	json_t *a = json_array();
	for (size_t i = 0; a && i < s->n; i++)
		if (json_array_append_new(a, json_string(s->v[i])) < 0) {
			json_decref(a);
			return NULL;
		}
	return a;
}

/* ------------------------------------------------------------ image config fields */

/* A string field; absent or null → *out = NULL. */
static int img_string(json_t *cfg, const char *key, const char **out, struct lm_error *err)
{
	json_t *v = cfg ? json_object_get(cfg, key) : NULL;
	*out = NULL;
	if (!v || json_is_null(v))
		return 0;
	if (!json_is_string(v))
		return lm_err(err, EINVAL, "image config: config.%s: expected a string", key);
	*out = json_string_value(v);
	return 0;
}

/* An array of strings; absent or null → empty, *present = false. */
static int img_strv(json_t *cfg, const char *key, struct strv *out, bool *present, struct lm_error *err)
{
	json_t *v = cfg ? json_object_get(cfg, key) : NULL;
	size_t i;
	json_t *item;
	if (present)
		*present = false;
	if (!v || json_is_null(v))
		return 0;
	if (!json_is_array(v))
		return lm_err(err, EINVAL, "image config: config.%s: expected an array of strings", key);
	if (present)
		*present = true;
	json_array_foreach(v, i, item) {
		if (!json_is_string(item))
			return lm_err(err, EINVAL, "image config: config.%s[%zu]: expected a string", key, i);
		if (strv_push(out, json_string_value(item), err) < 0)
			return -1;
	}
	return 0;
}

/* An object (absent or null → NULL). */
static int img_object(json_t *cfg, const char *key, json_t **out, struct lm_error *err)
{
	json_t *v = cfg ? json_object_get(cfg, key) : NULL;
	*out = NULL;
	if (!v || json_is_null(v))
		return 0;
	if (!json_is_object(v))
		return lm_err(err, EINVAL, "image config: config.%s: expected an object", key);
	*out = v;
	return 0;
}

/* ------------------------------------------------------------ command */

static int build_args(json_t *cfg, const struct lm_run_opts *o, struct strv *args, struct lm_error *err)
{
	struct strv ep = { 0 }, cmd = { 0 };
	int r = -1;
	if (img_strv(cfg, "Entrypoint", &ep, NULL, err) < 0 || img_strv(cfg, "Cmd", &cmd, NULL, err) < 0)
		goto out;
	char *const *first = o->entrypoint_set ? o->entrypoint : ep.v;
	char *const *rest = o->cmd ? o->cmd : (o->entrypoint_set ? NULL : cmd.v);
	for (char *const *p = first; p && *p; p++)
		if (strv_push(args, *p, err) < 0)
			goto out;
	for (char *const *p = rest; p && *p; p++)
		if (strv_push(args, *p, err) < 0)
			goto out;
	if (args->n == 0) {
		lm_err(err, EINVAL, "no command specified: the image has no Entrypoint or Cmd, and none was given");
		goto out;
	}
	r = 0;
out:
	strv_free(&ep);
	strv_free(&cmd);
	return r;
}

/* ------------------------------------------------------------ environment */

static size_t env_key_len(const char *entry)
{
	return strcspn(entry, "=");
}

static bool env_valid(const char *entry)
{
	size_t k = env_key_len(entry);
	return k > 0 && entry[k] == '=';
}

static ssize_t env_find(const struct strv *env, const char *entry)
{
	size_t k = env_key_len(entry);
	for (size_t i = 0; i < env->n; i++)
		if (env_key_len(env->v[i]) == k && strncmp(env->v[i], entry, k) == 0)
			return (ssize_t)i;
	return -1;
}

/* Replace a same-named entry in place, or append. */
static int env_set(struct strv *env, const char *entry, bool override, struct lm_error *err)
{
	ssize_t i = env_find(env, entry);
	if (i < 0)
		return strv_push(env, entry, err);
	if (!override)
		return 0;
	char *copy = strdup(entry);
	if (!copy)
		return lm_err(err, ENOMEM, "out of memory");
	free(env->v[i]);
	env->v[i] = copy;
	return 0;
}

static int build_env(json_t *cfg, const struct lm_run_opts *o, const char *hostname, struct strv *env,
		     struct lm_error *err)
{
	struct strv img = { 0 };
	int r = -1;
	if (img_strv(cfg, "Env", &img, NULL, err) < 0)
		goto out;
	for (size_t i = 0; i < img.n; i++) {
		if (!env_valid(img.v[i])) {
			lm_err(err, EINVAL, "image config: config.Env[%zu]: expected \"NAME=value\", got \"%.200s\"", i,
			       img.v[i]);
			goto out;
		}
		if (env_set(env, img.v[i], true, err) < 0)
			goto out;
	}
	if (env_set(env, "PATH=" DEFAULT_PATH, false, err) < 0)
		goto out;
	char *h = NULL;
	if (asprintf(&h, "HOSTNAME=%s", hostname) < 0) {
		lm_err(err, ENOMEM, "out of memory");
		goto out;
	}
	int hr = env_set(env, h, false, err);
	free(h);
	if (hr < 0)
		goto out;
	if (o->tty && env_set(env, "TERM=xterm", false, err) < 0)
		goto out;
	for (char *const *p = o->env; p && *p; p++) {
		if (!env_valid(*p)) {
			lm_err(err, EINVAL, "env: expected \"NAME=value\", got \"%.200s\"", *p);
			goto out;
		}
		if (env_set(env, *p, true, err) < 0)
			goto out;
	}
	r = 0;
out:
	strv_free(&img);
	return r;
}

/* ------------------------------------------------------------ capabilities */

static int cap_count(void)
{
	int n = 0;
	while (n < 64 && lm_cap_name(n))
		n++;
	return n;
}

static int caps_mask(char *const *names, const char *what, uint64_t *mask, bool *all, struct lm_error *err)
{
	*mask = 0;
	*all = false;
	for (char *const *p = names; p && *p; p++) {
		if (strcasecmp(*p, "ALL") == 0) {
			*all = true;
			continue;
		}
		int c = lm_cap_from_name(*p);
		if (c < 0 || c >= 64)
			return lm_err(err, EINVAL, "%s: unknown capability \"%.100s\"", what, *p);
		*mask |= 1ull << c;
	}
	return 0;
}

static int set_caps(json_t *process, const struct lm_run_opts *o, struct lm_error *err)
{
	json_t *caps = json_object_get(process, "capabilities");
	json_t *bounding = json_object_get(caps, "bounding");
	uint64_t all_mask = 0, set = 0, add, drop;
	bool add_all, drop_all;
	int n = cap_count();
	size_t i;
	json_t *item;

	/* "every capability" (privileged, --cap-add ALL) means every one this
	 * process can pass on: a host whose own bounding set lacks one (this
	 * project's machines lack CAP_SYS_RESOURCE) could not grant it */
	for (int c = 0; c < n; c++)
		if (prctl(PR_CAPBSET_READ, c, 0, 0, 0) != 0)
			all_mask |= 1ull << c;
	json_array_foreach(bounding, i, item) {
		int c = lm_cap_from_name(json_string_value(item));
		if (c >= 0 && c < 64)
			set |= 1ull << c;
	}
	if (caps_mask(o->cap_add, "cap_add", &add, &add_all, err) < 0 ||
	    caps_mask(o->cap_drop, "cap_drop", &drop, &drop_all, err) < 0)
		return -1;
	if (o->privileged) {
		set = all_mask;
	} else {
		if (add_all)
			set = all_mask;
		set = drop_all ? 0 : set & ~drop;
		set |= add;
	}
	json_t *list = json_array();
	if (!list)
		return lm_err(err, ENOMEM, "out of memory");
	for (int c = 0; c < n; c++)
		if ((set & (1ull << c)) && json_array_append_new(list, json_string(lm_cap_name(c))) < 0) {
			json_decref(list);
			return lm_err(err, ENOMEM, "out of memory");
		}
	json_t *nc = json_pack("{s:O,s:O,s:O}", "bounding", list, "effective", list, "permitted", list);
	json_decref(list);
	if (!nc || json_object_set_new(process, "capabilities", nc) < 0)
		return lm_err(err, ENOMEM, "out of memory");
	return 0;
}

/* ------------------------------------------------------------ mounts */

static size_t path_len_trimmed(const char *p)
{
	size_t n = strlen(p);
	while (n > 1 && p[n - 1] == '/')
		n--;
	return n;
}

static bool same_path(const char *a, const char *b)
{
	size_t la = path_len_trimmed(a), lb = path_len_trimmed(b);
	return la == lb && strncmp(a, b, la) == 0;
}

static void drop_default_mount(json_t *mounts, const char *dest)
{
	for (size_t i = json_array_size(mounts); i-- > 0;) {
		const char *d = json_string_value(json_object_get(json_array_get(mounts, i), "destination"));
		if (d && same_path(d, dest))
			json_array_remove(mounts, i);
	}
}

static int add_mounts(json_t *spec, const struct lm_run_opts *o, struct lm_error *err)
{
	json_t *mounts = json_object_get(spec, "mounts");
	for (size_t i = 0; i < o->n_mounts; i++) {
		const struct lm_run_mount *m = &o->mounts[i];
		if (!m->target || m->target[0] != '/')
			return lm_err(err, EINVAL, "mount %zu: target \"%s\" is not an absolute path", i,
				      m->target ? m->target : "");
		for (size_t j = 0; j < i; j++)
			if (same_path(o->mounts[j].target, m->target))
				return lm_err(err, EINVAL, "two mounts on %s", m->target);
		json_t *opts = json_array();
		json_t *entry = NULL;
		if (m->type == LM_RUN_MOUNT_BIND) {
			if (!m->source || m->source[0] != '/') {
				json_decref(opts);
				return lm_err(err, EINVAL, "mount on %s: bind source \"%s\" is not an absolute path",
					      m->target, m->source ? m->source : "");
			}
			entry = json_pack("{s:s,s:s,s:s}", "destination", m->target, "type", "bind", "source", m->source);
			json_array_append_new(opts, json_string("rbind"));
			json_array_append_new(opts, json_string("rprivate"));
		} else if (m->type == LM_RUN_MOUNT_TMPFS) {
			char buf[64];
			entry = json_pack("{s:s,s:s,s:s}", "destination", m->target, "type", "tmpfs", "source", "tmpfs");
			json_array_append_new(opts, json_string("nosuid"));
			json_array_append_new(opts, json_string("nodev"));
			snprintf(buf, sizeof(buf), "mode=%o", m->tmpfs_mode ? m->tmpfs_mode & 07777 : 01777);
			json_array_append_new(opts, json_string(buf));
			if (m->tmpfs_size) {
				snprintf(buf, sizeof(buf), "size=%llu", (unsigned long long)m->tmpfs_size);
				json_array_append_new(opts, json_string(buf));
			}
		} else {
			json_decref(opts);
			return lm_err(err, EINVAL, "mount on %s: unknown mount type %d", m->target, (int)m->type);
		}
		if (m->readonly)
			json_array_append_new(opts, json_string("ro"));
		if (!entry || json_object_set_new(entry, "options", opts) < 0) {
			json_decref(entry);
			return lm_err(err, ENOMEM, "out of memory");
		}
		drop_default_mount(mounts, m->target);
		if (json_array_append_new(mounts, entry) < 0)
			return lm_err(err, ENOMEM, "out of memory");
	}
	return 0;
}

/* ------------------------------------------------------------ seccomp */

/* lamina's default profile, fitted to the capabilities the process ends up
 * with (its bounding set: what it can ever have). */
static int set_default_seccomp(json_t *spec, json_t *process, struct lm_error *err)
{
	json_t *bounding = json_object_get(json_object_get(process, "capabilities"), "bounding");
	const char **caps = calloc(json_array_size(bounding) + 1, sizeof(char *));
	if (!caps)
		return lm_err(err, ENOMEM, "out of memory");
	size_t i;
	json_t *v;
	json_array_foreach(bounding, i, v)
		caps[i] = json_string_value(v);
	json_t *profile = NULL;
	int rc = lm_seccomp_default_profile(caps, &profile, err);
	free(caps);
	if (rc < 0)
		return lm_error_prefix(err, "seccomp profile");
	json_t *linux_section = json_object_get(spec, "linux");
	if (!linux_section) {
		json_decref(profile);
		return lm_err(err, EINVAL, "the default config has no linux section");
	}
	json_object_set_new(linux_section, "seccomp", profile);
	return 0;
}

/* ------------------------------------------------------------ privileged, resources, network */

static void make_privileged(json_t *spec)
{
	json_t *process = json_object_get(spec, "process");
	json_t *linux_ = json_object_get(spec, "linux");
	json_object_set_new(process, "noNewPrivileges", json_false());
	json_object_del(linux_, "maskedPaths");
	json_object_del(linux_, "readonlyPaths");
	/* sysfs and cgroupfs writable. */
	json_t *mounts = json_object_get(spec, "mounts");
	size_t i;
	json_t *m;
	json_array_foreach(mounts, i, m) {
		const char *type = json_string_value(json_object_get(m, "type"));
		json_t *opts = json_object_get(m, "options");
		if (!type || (strcmp(type, "sysfs") != 0 && strcmp(type, "cgroup") != 0))
			continue;
		for (size_t j = json_array_size(opts); j-- > 0;) {
			const char *o = json_string_value(json_array_get(opts, j));
			if (o && strcmp(o, "ro") == 0)
				json_array_remove(opts, j);
		}
	}
	json_t *res = json_object_get(linux_, "resources");
	json_object_set_new(res, "devices", json_pack("[{s:b,s:s}]", "allow", 1, "access", "rwm"));
}

static int set_resources(json_t *spec, const struct lm_run_opts *o, struct lm_error *err)
{
	json_t *res = json_object_get(json_object_get(spec, "linux"), "resources");
	if (o->memory < 0)
		return lm_err(err, EINVAL, "memory limit %lld is negative", (long long)o->memory);
	if (o->pids_limit < 0)
		return lm_err(err, EINVAL, "pids limit %lld is negative", (long long)o->pids_limit);
	if (!isfinite(o->cpus) || o->cpus < 0 || o->cpus > 1e6)
		return lm_err(err, EINVAL, "cpus %g is not a number of CPUs", o->cpus);
	if (o->memory > 0)
		json_object_set_new(res, "memory", json_pack("{s:I}", "limit", (json_int_t)o->memory));
	if (o->cpus > 0) {
		long long quota = (long long)(o->cpus * CPU_PERIOD + 0.5); /* cpus >= 0; no libm */
		/* The kernel refuses quotas under 1 ms. */
		if (quota < 1000)
			return lm_err(err, EINVAL, "cpus %g is below the smallest limit the kernel takes (0.01)", o->cpus);
		json_object_set_new(res, "cpu", json_pack("{s:I,s:I}", "quota", (json_int_t)quota, "period",
							  (json_int_t)CPU_PERIOD));
	}
	if (o->pids_limit > 0)
		json_object_set_new(res, "pids", json_pack("{s:I}", "limit", (json_int_t)o->pids_limit));
	return 0;
}

static void set_network(json_t *spec, enum lm_run_network net)
{
	if (net != LM_RUN_NET_HOST)
		return;
	json_t *ns = json_object_get(json_object_get(spec, "linux"), "namespaces");
	for (size_t i = json_array_size(ns); i-- > 0;) {
		const char *t = json_string_value(json_object_get(json_array_get(ns, i), "type"));
		if (t && strcmp(t, "network") == 0)
			json_array_remove(ns, i);
	}
}

/* ------------------------------------------------------------ labels, ports, volumes */

static int take_labels(json_t *cfg, json_t *annotations, struct lm_image_run *out, struct lm_error *err)
{
	json_t *labels;
	const char *k;
	json_t *v;
	if (img_object(cfg, "Labels", &labels, err) < 0)
		return -1;
	out->labels = json_object();
	if (!out->labels)
		return lm_err(err, ENOMEM, "out of memory");
	json_object_foreach(labels, k, v) {
		if (!json_is_string(v))
			return lm_err(err, EINVAL, "image config: config.Labels.\"%.100s\": expected a string", k);
		if (json_object_set(out->labels, k, v) < 0 || json_object_set(annotations, k, v) < 0)
			return lm_err(err, ENOMEM, "out of memory");
	}
	return 0;
}

/* "80", "80/tcp", "53/udp", "9/sctp" → normalised "80/tcp". */
static int port_key(const char *key, char *buf, size_t len)
{
	char *end;
	if (!isdigit((unsigned char)key[0]))
		return -1;
	errno = 0;
	unsigned long port = strtoul(key, &end, 10);
	if (errno || port == 0 || port > 65535)
		return -1;
	const char *proto = "tcp";
	if (*end == '/') {
		proto = end + 1;
		if (strcmp(proto, "tcp") != 0 && strcmp(proto, "udp") != 0 && strcmp(proto, "sctp") != 0)
			return -1;
	} else if (*end) {
		return -1;
	}
	snprintf(buf, len, "%lu/%s", port, proto);
	return 0;
}

static int take_ports(json_t *cfg, json_t *annotations, struct lm_image_run *out, struct lm_error *err)
{
	json_t *ports;
	const char *k;
	json_t *v;
	struct strv list = { 0 };
	if (img_object(cfg, "ExposedPorts", &ports, err) < 0)
		return -1;
	json_object_foreach(ports, k, v) {
		char buf[32];
		if (port_key(k, buf, sizeof(buf)) < 0) {
			strv_free(&list);
			return lm_err(err, EINVAL, "image config: config.ExposedPorts: \"%.100s\" is not PORT[/tcp|udp|sctp]",
				      k);
		}
		if (strv_push(&list, buf, err) < 0) {
			strv_free(&list);
			return -1;
		}
	}
	if (list.n) {
		size_t len = 1;
		for (size_t i = 0; i < list.n; i++)
			len += strlen(list.v[i]) + 1;
		autofree char *joined = calloc(1, len);
		if (!joined) {
			strv_free(&list);
			return lm_err(err, ENOMEM, "out of memory");
		}
		for (size_t i = 0; i < list.n; i++) {
			if (i)
				strcat(joined, ",");
			strcat(joined, list.v[i]);
		}
		json_object_set_new(annotations, "org.opencontainers.image.exposedPorts", json_string(joined));
	}
	out->exposed_ports = list.v;
	out->n_exposed_ports = list.n;
	return 0;
}

static int take_volumes(json_t *cfg, const struct lm_run_opts *o, struct lm_image_run *out, struct lm_error *err)
{
	json_t *vols;
	const char *k;
	json_t *v;
	struct strv list = { 0 };
	if (img_object(cfg, "Volumes", &vols, err) < 0)
		return -1;
	json_object_foreach(vols, k, v) {
		if (!*k)
			continue;
		char *path = NULL;
		if (asprintf(&path, "%s%s", k[0] == '/' ? "" : "/", k) < 0) {
			strv_free(&list);
			return lm_err(err, ENOMEM, "out of memory");
		}
		bool covered = false;
		for (size_t i = 0; i < o->n_mounts && !covered; i++)
			covered = o->mounts[i].target && same_path(o->mounts[i].target, path);
		for (size_t i = 0; i < list.n && !covered; i++)
			covered = same_path(list.v[i], path);
		if (covered) {
			free(path);
			continue;
		}
		if (strv_push_owned(&list, path, err) < 0) {
			strv_free(&list);
			return -1;
		}
	}
	out->volumes = list.v;
	out->n_volumes = list.n;
	return 0;
}

/* ------------------------------------------------------------ the whole config */

void lm_image_run_free(struct lm_image_run *r)
{
	struct strv v = { r->volumes, r->n_volumes, 0 }, p = { r->exposed_ports, r->n_exposed_ports, 0 };
	strv_free(&v);
	strv_free(&p);
	json_decref(r->config);
	json_decref(r->labels);
	memset(r, 0, sizeof(*r));
}

static int set_user(json_t *process, int rootfd, const char *user, struct lm_error *err)
{
	struct lm_user u;
	if (lm_image_user_resolve(rootfd, user, &u, err) < 0)
		return -1;
	json_t *ju = json_pack("{s:I,s:I}", "uid", (json_int_t)u.uid, "gid", (json_int_t)u.gid);
	json_t *gids = u.n_additional_gids ? json_array() : NULL;
	for (size_t i = 0; gids && i < u.n_additional_gids; i++)
		json_array_append_new(gids, json_integer(u.additional_gids[i]));
	lm_user_free(&u);
	if (!ju || (gids && json_object_set_new(ju, "additionalGids", gids) < 0) ||
	    json_object_set_new(process, "user", ju) < 0) {
		if (!ju)
			json_decref(gids);
		return lm_err(err, ENOMEM, "out of memory");
	}
	return 0;
}

static int build(json_t *spec, json_t *cfg, const struct lm_run_opts *o, int rootfd, struct lm_image_run *out,
		 struct lm_error *err)
{
	json_t *process = json_object_get(spec, "process");
	struct strv args = { 0 }, env = { 0 };
	autofree char *hostname = NULL;
	int r = -1;

	if (build_args(cfg, o, &args, err) < 0)
		goto out;
	json_object_set_new(process, "args", strv_json(&args));

	/* A copy: setting the field frees the default's string. */
	hostname = strdup(o->hostname ? o->hostname : json_string_value(json_object_get(spec, "hostname")));
	if (!hostname) {
		lm_err(err, ENOMEM, "out of memory");
		goto out;
	}
	if (!*hostname || strlen(hostname) > HOSTNAME_MAX) {
		lm_err(err, EINVAL, "hostname \"%.100s\" must be 1 to %d characters", hostname, HOSTNAME_MAX);
		goto out;
	}
	json_object_set_new(spec, "hostname", json_string(hostname));
	if (build_env(cfg, o, hostname, &env, err) < 0)
		goto out;
	json_object_set_new(process, "env", strv_json(&env));

	const char *image_wd;
	if (img_string(cfg, "WorkingDir", &image_wd, err) < 0)
		goto out;
	if (o->workdir) {
		if (o->workdir[0] != '/') {
			lm_err(err, EINVAL, "working directory \"%s\" is not an absolute path", o->workdir);
			goto out;
		}
		json_object_set_new(process, "cwd", json_string(o->workdir));
	} else if (image_wd && *image_wd) {
		char *cwd = NULL;
		if (asprintf(&cwd, "%s%s", image_wd[0] == '/' ? "" : "/", image_wd) < 0) {
			lm_err(err, ENOMEM, "out of memory");
			goto out;
		}
		json_object_set_new(process, "cwd", json_string(cwd));
		free(cwd);
	} else {
		json_object_set_new(process, "cwd", json_string("/"));
	}

	const char *image_user;
	if (img_string(cfg, "User", &image_user, err) < 0)
		goto out;
	if (set_user(process, rootfd, o->user ? o->user : image_user, err) < 0)
		goto out;

	json_object_set_new(process, "terminal", json_boolean(o->tty));
	json_object_set_new(spec, "root", json_pack("{s:s,s:b}", "path", o->rootfs ? o->rootfs : "rootfs",
						    "readonly", o->read_only));
	if (set_caps(process, o, err) < 0)
		goto out;
	if (o->privileged)
		make_privileged(spec);
	else if (!o->seccomp_unconfined && set_default_seccomp(spec, process, err) < 0)
		goto out;
	if (add_mounts(spec, o, err) < 0 || set_resources(spec, o, err) < 0)
		goto out;
	set_network(spec, o->network);

	json_t *annotations = json_object();
	if (!annotations || json_object_set_new(spec, "annotations", annotations) < 0) {
		lm_err(err, ENOMEM, "out of memory");
		goto out;
	}
	if (take_labels(cfg, annotations, out, err) < 0)
		goto out;
	const char *stop;
	if (img_string(cfg, "StopSignal", &stop, err) < 0)
		goto out;
	out->stop_signal = SIGTERM;
	if (stop && *stop) {
		if (lm_signal_parse(stop, &out->stop_signal) < 0) {
			lm_err(err, EINVAL, "image config: config.StopSignal: \"%.100s\" is not a signal", stop);
			goto out;
		}
		json_object_set_new(annotations, "org.opencontainers.image.stopSignal", json_string(stop));
	}
	if (take_ports(cfg, annotations, out, err) < 0 || take_volumes(cfg, o, out, err) < 0)
		goto out;
	r = 0;
out:
	strv_free(&args);
	strv_free(&env);
	return r;
}

int lm_oci_config_build(const char *image_config, size_t len, const struct lm_run_opts *opts, int rootfd,
			struct lm_image_run *out, struct lm_error *err)
{
	static const struct lm_run_opts none;
	const struct lm_run_opts *o = opts ? opts : &none;
	memset(out, 0, sizeof(*out));

	json_error_t jerr;
	json_t *image = json_loadb(image_config ? image_config : "", image_config ? len : 0, 0, &jerr);
	if (!image)
		return lm_err(err, EINVAL, "image config: line %d: %s", jerr.line, jerr.text);
	if (!json_is_object(image)) {
		json_decref(image);
		return lm_err(err, EINVAL, "image config: expected a JSON object");
	}
	json_t *cfg = json_object_get(image, "config");
	if (cfg && !json_is_null(cfg) && !json_is_object(cfg)) {
		json_decref(image);
		return lm_err(err, EINVAL, "image config: config: expected an object");
	}
	if (json_is_null(cfg))
		cfg = NULL;

	autofd own_root = -1;
	if (rootfd < 0 && o->rootfs && o->rootfs[0] == '/') {
		own_root = open(o->rootfs, O_PATH | O_DIRECTORY | O_CLOEXEC);
		if (own_root < 0) {
			json_decref(image);
			return lm_err_sys(err, "rootfs %s", o->rootfs);
		}
		rootfd = own_root;
	}

	json_t *spec = lm_spec_default();
	if (!spec) {
		json_decref(image);
		return lm_err(err, ENOMEM, "out of memory");
	}
	int r = build(spec, cfg, o, rootfd, out, err);
	json_decref(image);
	if (r < 0) {
		json_decref(spec);
		lm_image_run_free(out);
		return err->code > 0 ? -err->code : -1;
	}
	out->config = spec;
	return 0;
}
