/* The create request: see run_spec.h.  Every field is type-checked with an
 * error that names it; the option structure points into the JSON, which the
 * spec keeps a reference to. */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "agent/run_spec.h"
#include "runtime/container.h"
#include "runtime/spec.h"

int lm_parse_size(const char *s, int64_t *out)
{
	char *end;
	errno = 0;
	double v = strtod(s, &end);
	if (errno || end == s || !(v > 0) || !isfinite(v))
		return -1;
	static const struct {
		const char *suffix;
		double mult;
	} units[] = {
		{"", 1}, {"b", 1}, {"k", 1024}, {"kb", 1024}, {"ki", 1024}, {"m", 1 << 20}, {"mb", 1 << 20},
		{"mi", 1 << 20}, {"g", 1 << 30}, {"gb", 1 << 30}, {"gi", 1 << 30}, {"t", 1ull << 40},
		{"ti", 1ull << 40}, {"tb", 1ull << 40},
	};
	for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++)
		if (strcasecmp(end, units[i].suffix) == 0) {
			double bytes = v * units[i].mult;
			if (bytes < 1 || bytes > (double)INT64_MAX / 2)
				return -1;
			*out = (int64_t)bytes;
			return 0;
		}
	return -1;
}

static const char *const restart_names[] = {"no", "always", "on-failure", "unless-stopped"};

const char *lm_restart_name(enum lm_restart_kind kind)
{
	return restart_names[kind];
}

int lm_restart_parse(const char *s, enum lm_restart_kind *kind, int *max, struct lm_error *err)
{
	*max = 0;
	if (strcmp(s, "no") == 0 || strcmp(s, "") == 0) {
		*kind = LM_RESTART_NO;
		return 0;
	}
	if (strcmp(s, "always") == 0) {
		*kind = LM_RESTART_ALWAYS;
		return 0;
	}
	if (strcmp(s, "unless-stopped") == 0 || strcmp(s, "unless_stopped") == 0) {
		*kind = LM_RESTART_UNLESS_STOPPED;
		return 0;
	}
	if (strncmp(s, "on-failure", 10) == 0 || strncmp(s, "on_failure", 10) == 0) {
		*kind = LM_RESTART_ON_FAILURE;
		if (s[10] == '\0')
			return 0;
		char *end;
		errno = 0;
		long n = s[10] == ':' ? strtol(s + 11, &end, 10) : -1;
		if (s[10] == ':' && !errno && end != s + 11 && !*end && n >= 0 && n <= 1000000) {
			*max = (int)n;
			return 0;
		}
	}
	return lm_err(err, EINVAL, "restart policy \"%s\": expected no, always, on-failure[:N] or unless-stopped", s);
}

static int want_string(json_t *v, const char *field, const char **out, struct lm_error *err)
{
	if (!v || json_is_null(v))
		return 0;
	if (!json_is_string(v))
		return lm_err(err, EINVAL, "%s: expected a string", field);
	if (strlen(json_string_value(v)) != json_string_length(v))
		return lm_err(err, EINVAL, "%s: contains a NUL byte", field);
	*out = json_string_value(v);
	return 0;
}

static int want_bool(json_t *v, const char *field, bool *out, struct lm_error *err)
{
	if (!v || json_is_null(v))
		return 0;
	if (!json_is_boolean(v))
		return lm_err(err, EINVAL, "%s: expected true or false", field);
	*out = json_is_true(v);
	return 0;
}

static int want_int(json_t *v, const char *field, int64_t lo, int64_t hi, int64_t *out, struct lm_error *err)
{
	if (!v || json_is_null(v))
		return 0;
	if (!json_is_integer(v) || json_integer_value(v) < lo || json_integer_value(v) > hi)
		return lm_err(err, EINVAL, "%s: expected an integer from %lld to %lld", field, (long long)lo,
			      (long long)hi);
	*out = json_integer_value(v);
	return 0;
}

/* A NULL-terminated vector of the array's strings (pointing into it). */
static int want_strings(json_t *v, const char *field, char ***out, struct lm_error *err)
{
	if (!v || json_is_null(v))
		return 0;
	if (!json_is_array(v))
		return lm_err(err, EINVAL, "%s: expected an array of strings", field);
	char **vec = calloc(json_array_size(v) + 1, sizeof(char *));
	if (!vec)
		return lm_err(err, ENOMEM, "%s: out of memory", field);
	size_t i;
	json_t *s;
	json_array_foreach(v, i, s)
	{
		const char *str = NULL;
		if (!json_is_string(s) || want_string(s, field, &str, err) < 0) {
			free(vec);
			return lm_err(err, EINVAL, "%s[%zu]: expected a string", field, i);
		}
		vec[i] = (char *)str;
	}
	*out = vec;
	return 0;
}

static int check_env(char **env, struct lm_error *err)
{
	for (size_t i = 0; env && env[i]; i++) {
		const char *eq = strchr(env[i], '=');
		if (!eq || eq == env[i])
			return lm_err(err, EINVAL, "env \"%s\": expected NAME=value", env[i]);
	}
	return 0;
}

static int parse_mounts(json_t *v, struct lm_run_spec *s, struct lm_error *err)
{
	if (!v || json_is_null(v))
		return 0;
	if (!json_is_array(v))
		return lm_err(err, EINVAL, "mounts: expected an array");
	s->mounts = calloc(json_array_size(v) + 1, sizeof(*s->mounts));
	if (!s->mounts)
		return lm_err(err, ENOMEM, "mounts: out of memory");
	size_t i;
	json_t *m;
	json_array_foreach(v, i, m)
	{
		struct lm_run_mount *rm = &s->mounts[i];
		const char *type = NULL, *key;
		json_t *val;
		if (!json_is_object(m))
			return lm_err(err, EINVAL, "mounts[%zu]: expected an object", i);
		json_object_foreach(m, key, val)
		{
			if (strcmp(key, "type") && strcmp(key, "source") && strcmp(key, "target") &&
			    strcmp(key, "readonly"))
				return lm_err(err, EINVAL, "mounts[%zu]: unknown field \"%s\"", i, key);
		}
		if (want_string(json_object_get(m, "type"), "mounts[].type", &type, err) < 0 ||
		    want_string(json_object_get(m, "source"), "mounts[].source", &rm->source, err) < 0 ||
		    want_string(json_object_get(m, "target"), "mounts[].target", &rm->target, err) < 0 ||
		    want_bool(json_object_get(m, "readonly"), "mounts[].readonly", &rm->readonly, err) < 0)
			return -1;
		if (!type || (strcmp(type, "bind") && strcmp(type, "tmpfs")))
			return lm_err(err, EINVAL, "mounts[%zu].type: expected bind or tmpfs", i);
		rm->type = strcmp(type, "bind") == 0 ? LM_RUN_MOUNT_BIND : LM_RUN_MOUNT_TMPFS;
		if (!rm->target || rm->target[0] != '/')
			return lm_err(err, EINVAL, "mounts[%zu].target: expected an absolute path", i);
		if (rm->type == LM_RUN_MOUNT_BIND && (!rm->source || rm->source[0] != '/'))
			return lm_err(err, EINVAL, "mounts[%zu].source: expected an absolute host path", i);
		if (rm->type == LM_RUN_MOUNT_TMPFS && rm->source)
			return lm_err(err, EINVAL, "mounts[%zu]: a tmpfs mount has no source", i);
	}
	s->opts.mounts = s->mounts;
	s->opts.n_mounts = json_array_size(v);
	return 0;
}

static const char *const known_fields[] = {
	"name", "image", "pull", "platform", "cmd", "entrypoint", "env", "workdir", "user", "hostname",
	"mounts", "memory", "cpus", "pids_limit", "read_only", "privileged", "cap_add", "cap_drop",
	"network", "restart", "stop_signal", "stop_timeout", "auto_remove", "tty", "interactive", "tty_size",
	"seccomp",
};

static int parse_fields(json_t *req, struct lm_run_spec *s, struct lm_error *err)
{
	const char *key;
	json_t *val;
	json_object_foreach(req, key, val)
	{
		size_t k = 0;
		while (k < sizeof(known_fields) / sizeof(known_fields[0]) && strcmp(key, known_fields[k]))
			k++;
		if (k == sizeof(known_fields) / sizeof(known_fields[0]))
			return lm_err(err, EINVAL, "unknown field \"%s\"", key);
	}
	struct lm_run_opts *o = &s->opts;
	const char *memory = NULL, *network = NULL, *restart = NULL, *stop_signal = NULL;
	int64_t pids = 0, stop_timeout = -1;
	json_t *ep = json_object_get(req, "entrypoint"), *mem = json_object_get(req, "memory"),
	       *cpus = json_object_get(req, "cpus");
	if (want_string(json_object_get(req, "name"), "name", &s->name, err) < 0 ||
	    want_string(json_object_get(req, "image"), "image", &s->image, err) < 0 ||
	    want_string(json_object_get(req, "pull"), "pull", &s->pull, err) < 0 ||
	    want_string(json_object_get(req, "platform"), "platform", &s->platform, err) < 0 ||
	    want_strings(json_object_get(req, "cmd"), "cmd", &s->cmd, err) < 0 ||
	    want_strings(ep, "entrypoint", &s->entrypoint, err) < 0 ||
	    want_strings(json_object_get(req, "env"), "env", &s->env, err) < 0 ||
	    want_string(json_object_get(req, "workdir"), "workdir", &o->workdir, err) < 0 ||
	    want_string(json_object_get(req, "user"), "user", &o->user, err) < 0 ||
	    want_string(json_object_get(req, "hostname"), "hostname", &o->hostname, err) < 0 ||
	    parse_mounts(json_object_get(req, "mounts"), s, err) < 0 ||
	    want_int(json_object_get(req, "pids_limit"), "pids_limit", 0, INT32_MAX, &pids, err) < 0 ||
	    want_bool(json_object_get(req, "read_only"), "read_only", &o->read_only, err) < 0 ||
	    want_bool(json_object_get(req, "privileged"), "privileged", &o->privileged, err) < 0 ||
	    want_strings(json_object_get(req, "cap_add"), "cap_add", &s->cap_add, err) < 0 ||
	    want_strings(json_object_get(req, "cap_drop"), "cap_drop", &s->cap_drop, err) < 0 ||
	    want_string(json_object_get(req, "network"), "network", &network, err) < 0 ||
	    want_string(json_object_get(req, "restart"), "restart", &restart, err) < 0 ||
	    want_string(json_object_get(req, "stop_signal"), "stop_signal", &stop_signal, err) < 0 ||
	    want_int(json_object_get(req, "stop_timeout"), "stop_timeout", -1, 86400, &stop_timeout, err) < 0 ||
	    want_bool(json_object_get(req, "auto_remove"), "auto_remove", &s->auto_remove, err) < 0 ||
	    want_bool(json_object_get(req, "tty"), "tty", &s->tty, err) < 0 ||
	    want_bool(json_object_get(req, "interactive"), "interactive", &s->interactive, err) < 0)
		return -1;
	if (!s->image || !s->image[0])
		return lm_err(err, EINVAL, "image: required");
	if (s->name && lm_id_validate(s->name, err) < 0)
		return lm_error_prefix(err, "name");
	if (s->name && strlen(s->name) > 128)
		return lm_err(err, EINVAL, "name: longer than 128 characters");
	if (check_env(s->env, err) < 0)
		return -1;
	if (o->workdir && o->workdir[0] != '/')
		return lm_err(err, EINVAL, "workdir \"%s\": expected an absolute path", o->workdir);
	if (mem && json_is_integer(mem)) {
		o->memory = json_integer_value(mem);
		if (o->memory <= 0)
			return lm_err(err, EINVAL, "memory: expected a positive size");
	} else if (mem && !json_is_null(mem)) {
		if (want_string(mem, "memory", &memory, err) < 0)
			return -1;
		if (lm_parse_size(memory, &o->memory) < 0)
			return lm_err(err, EINVAL, "memory \"%s\": expected a size like 64Mi, 512m or 1g", memory);
	}
	if (cpus && !json_is_null(cpus)) {
		if (!json_is_number(cpus) || !(json_number_value(cpus) > 0) || json_number_value(cpus) > 4096)
			return lm_err(err, EINVAL, "cpus: expected a positive number of CPUs");
		o->cpus = json_number_value(cpus);
	}
	o->pids_limit = pids;
	if (network && strcmp(network, "none") == 0)
		o->network = LM_RUN_NET_NONE;
	else if (network && strcmp(network, "host") == 0)
		o->network = LM_RUN_NET_HOST;
	else if (network)
		return lm_err(err, EINVAL, "network \"%s\": expected none or host", network);
	if (restart && lm_restart_parse(restart, &s->restart, &s->restart_max, err) < 0)
		return -1;
	if (stop_signal && lm_signal_parse(stop_signal, &s->stop_signal) < 0)
		return lm_err(err, EINVAL, "stop_signal \"%s\": not a signal", stop_signal);
	s->stop_timeout = (int)stop_timeout;
	if (s->auto_remove && s->restart != LM_RESTART_NO)
		return lm_err(err, EINVAL, "auto_remove and a restart policy other than no conflict");
	o->tty = s->tty;
	const char *seccomp = NULL;
	if (want_string(json_object_get(req, "seccomp"), "seccomp", &seccomp, err) < 0)
		return -1;
	if (seccomp && strcmp(seccomp, "unconfined") != 0 && strcmp(seccomp, "default") != 0)
		return lm_err(err, EINVAL, "seccomp \"%s\": expected default or unconfined", seccomp);
	o->seccomp_unconfined = seccomp && strcmp(seccomp, "unconfined") == 0;
	json_t *size = json_object_get(req, "tty_size");
	if (size && !json_is_null(size)) {
		int64_t rows = -1, cols = -1;
		if (!json_is_object(size) || json_object_size(size) != 2 ||
		    want_int(json_object_get(size, "rows"), "tty_size.rows", 1, 65535, &rows, err) < 0 ||
		    want_int(json_object_get(size, "cols"), "tty_size.cols", 1, 65535, &cols, err) < 0 || rows < 0 ||
		    cols < 0)
			return lm_err(err, EINVAL, "tty_size: expected {\"rows\": R, \"cols\": C}");
		s->tty_rows = (uint16_t)rows;
		s->tty_cols = (uint16_t)cols;
	}
	o->cmd = s->cmd && s->cmd[0] ? s->cmd : NULL;
	if (ep && !json_is_null(ep)) {
		o->entrypoint = s->entrypoint && s->entrypoint[0] ? s->entrypoint : NULL;
		o->entrypoint_set = true;
	}
	o->env = s->env;
	o->cap_add = s->cap_add;
	o->cap_drop = s->cap_drop;
	return 0;
}

int lm_run_spec_parse(json_t *req, struct lm_run_spec *out, struct lm_error *err)
{
	memset(out, 0, sizeof(*out));
	out->stop_timeout = -1;
	if (!json_is_object(req))
		return lm_err(err, EINVAL, "expected a JSON object");
	out->json = json_incref(req);
	if (parse_fields(req, out, err) < 0) {
		lm_run_spec_free(out);
		return -1;
	}
	return 0;
}

void lm_run_spec_free(struct lm_run_spec *s)
{
	free(s->cmd);
	free(s->entrypoint);
	free(s->env);
	free(s->cap_add);
	free(s->cap_drop);
	free(s->mounts);
	json_decref(s->json);
	memset(s, 0, sizeof(*s));
}
