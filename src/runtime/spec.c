/* OCI runtime config.json → struct lm_spec.
 *
 * The whole document is decoded by jansson first and then walked once, field
 * by field, into plain C.  A small path builder follows the walk so that
 * every error names the field it is about ("linux.namespaces[2].type: ..."),
 * which is what a user editing the file by hand needs.  Validation is done
 * here, before anything is created, so that the container's child process
 * can trust the struct and a bad config changes nothing on the host.
 *
 * Ownership: every array is attached to the struct as soon as it is
 * allocated (zero-filled, NULL-terminated where the header says so), so a
 * failure half-way only has to call the one free function.
 *
 * Unknown fields are ignored, as the OCI spec asks.  A JSON null counts as
 * an absent field: Go-based generators write null for empty lists.
 * jansson holds integers as long long, so a value above INT64_MAX is already
 * rejected by the decoder; below that every integer is range-checked for the
 * C type it lands in.
 */
#include "runtime/spec.h"
#include "runtime/seccomp.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/cleanup.h"

#ifndef MS_NOSYMFOLLOW
#define MS_NOSYMFOLLOW 256
#endif

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

/* Far above any real config (runc's biggest are a few hundred KiB with
 * seccomp); the limit only stops a hostile or runaway file from being
 * slurped into memory. */
#define SPEC_MAX_SIZE (16 * 1024 * 1024)

/* sethostname(2)/setdomainname(2) refuse longer names; say so up front. */
#define NAME_MAX_LEN 64

/* ---- path-tracking error reporting ---- */

struct parser {
	struct lm_error *err;
	const char *bundle; /* absolute, or NULL when parsing a process.json */
	size_t len;
	char path[512];
};

static void path_append(struct parser *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void path_append(struct parser *p, const char *fmt, ...)
{
	size_t room = sizeof(p->path) - p->len;
	va_list ap;
	int n;

	if (room <= 1)
		return;
	va_start(ap, fmt);
	n = vsnprintf(p->path + p->len, room, fmt, ap);
	va_end(ap);
	if (n < 0) {
		p->path[p->len] = '\0';
		return;
	}
	/* A truncated path still points the user at the right place. */
	p->len += (size_t)n < room ? (size_t)n : room - 1;
}

static size_t path_key(struct parser *p, const char *key)
{
	size_t mark = p->len;
	path_append(p, "%s%s", p->len ? "." : "", key);
	return mark;
}

static size_t path_index(struct parser *p, size_t i)
{
	size_t mark = p->len;
	path_append(p, "[%zu]", i);
	return mark;
}

/* Map keys are user data (sysctl names contain dots), so they are quoted. */
static size_t path_map_key(struct parser *p, const char *key)
{
	size_t mark = p->len;
	path_append(p, "[\"%s\"]", key);
	return mark;
}

static void path_pop(struct parser *p, size_t mark)
{
	p->len = mark;
	p->path[mark] = '\0';
}

static int fail_code(struct parser *p, int code, const char *fmt, va_list ap)
	__attribute__((format(printf, 3, 0)));
static int fail_code(struct parser *p, int code, const char *fmt, va_list ap)
{
	char what[LM_ERROR_MSG_MAX];

	vsnprintf(what, sizeof(what), fmt, ap);
	if (p->len)
		return lm_err(p->err, code, "%s: %s", p->path, what);
	return lm_err(p->err, code, "%s", what);
}

static int fail(struct parser *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int fail(struct parser *p, const char *fmt, ...)
{
	va_list ap;
	int r;

	va_start(ap, fmt);
	r = fail_code(p, EINVAL, fmt, ap);
	va_end(ap);
	return r;
}

static int fail_oom(struct parser *p)
{
	return lm_err(p->err, ENOMEM, "%s%sout of memory", p->path, p->len ? ": " : "");
}

/* ---- typed accessors ---- */

/* The value of key, or NULL when absent or null. */
static json_t *field(json_t *obj, const char *key)
{
	json_t *v = json_object_get(obj, key);
	return json_is_null(v) ? NULL : v;
}

struct int_kind {
	long long min, max;
	const char *what;
};

static const struct int_kind K_U16 = { 0, UINT16_MAX, "an unsigned 16-bit integer" };
static const struct int_kind K_U32 = { 0, UINT32_MAX, "an unsigned 32-bit integer" };
static const struct int_kind K_U64 = { 0, LLONG_MAX, "an unsigned integer" };
static const struct int_kind K_I64 = { LLONG_MIN, LLONG_MAX, "an integer" };
static const struct int_kind K_LIMIT = { -1, LLONG_MAX, "an integer >= -1 (-1 = unlimited)" };
static const struct int_kind K_DEVNUM = { 0, UINT32_MAX, "a device number (unsigned 32-bit integer)" };
static const struct int_kind K_DEVNUM_WILD = { -1, UINT32_MAX, "a device number or -1 (any)" };
static const struct int_kind K_OOM_ADJ = { -1000, 1000, "an integer between -1000 and 1000" };
static const struct int_kind K_UMASK = { 0, 0777, "a umask between 0 and 0777" };
static const struct int_kind K_SWAPPINESS = { 0, 100, "an integer between 0 and 100" };
static const struct int_kind K_BLKIO_WEIGHT = { 10, 1000, "an integer between 10 and 1000" };
static const struct int_kind K_TIMEOUT = { 1, INT_MAX, "a positive integer (seconds)" };

static int int_value(struct parser *p, json_t *v, const struct int_kind *k, long long *out)
{
	long long x = 0;

	/* json_is_integer is false for reals, so 1.5 and 1e3 are refused here. */
	if (!json_is_integer(v))
		return fail(p, "expected %s", k->what);
	x = json_integer_value(v);
	if (x < k->min || x > k->max)
		return fail(p, "expected %s", k->what);
	*out = x;
	return 0;
}

/* 1 when present (stored in *out), 0 when absent, negative on error. */
static int opt_int(struct parser *p, json_t *obj, const char *key, const struct int_kind *k,
		   long long *out)
{
	json_t *v = field(obj, key);
	size_t mark;

	if (!v)
		return 0;
	mark = path_key(p, key);
	if (int_value(p, v, k, out) < 0)
		return -1;
	path_pop(p, mark);
	return 1;
}

static int opt_u32(struct parser *p, json_t *obj, const char *key, uint32_t *out, bool *has)
{
	long long x = 0;
	int r = opt_int(p, obj, key, &K_U32, &x);
	if (r > 0)
		*out = (uint32_t)x;
	if (has && r >= 0)
		*has = r > 0;
	return r < 0 ? -1 : 0;
}

static int opt_i64(struct parser *p, json_t *obj, const char *key, const struct int_kind *k,
		   int64_t *out, bool *has)
{
	long long x = 0;
	int r = opt_int(p, obj, key, k, &x);
	if (r > 0)
		*out = (int64_t)x;
	if (has && r >= 0)
		*has = r > 0;
	return r < 0 ? -1 : 0;
}

static int opt_u64(struct parser *p, json_t *obj, const char *key, uint64_t *out, bool *has)
{
	long long x = 0;
	int r = opt_int(p, obj, key, &K_U64, &x);
	if (r > 0)
		*out = (uint64_t)x;
	if (has && r >= 0)
		*has = r > 0;
	return r < 0 ? -1 : 0;
}

static int opt_bool(struct parser *p, json_t *obj, const char *key, bool *out)
{
	json_t *v = field(obj, key);
	size_t mark;

	if (!v)
		return 0;
	mark = path_key(p, key);
	if (!json_is_boolean(v))
		return fail(p, "expected a boolean");
	path_pop(p, mark);
	*out = json_is_true(v);
	return 0;
}

static int string_value(struct parser *p, json_t *v, char **out)
{
	char *s;

	if (!json_is_string(v))
		return fail(p, "expected a string");
	s = strdup(json_string_value(v));
	if (!s)
		return fail_oom(p);
	free(*out);
	*out = s;
	return 0;
}

static int opt_string(struct parser *p, json_t *obj, const char *key, char **out)
{
	json_t *v = field(obj, key);
	size_t mark;

	if (!v)
		return 0;
	mark = path_key(p, key);
	if (string_value(p, v, out) < 0)
		return -1;
	path_pop(p, mark);
	return 0;
}

static int abs_path_value(struct parser *p, json_t *v, char **out)
{
	if (!json_is_string(v))
		return fail(p, "expected a string");
	if (json_string_value(v)[0] != '/')
		return fail(p, "must be an absolute path, got \"%.200s\"", json_string_value(v));
	return string_value(p, v, out);
}

/* An absolute path; required says whether absence is an error. */
static int get_abs_path(struct parser *p, json_t *obj, const char *key, bool required, char **out)
{
	json_t *v = field(obj, key);
	size_t mark = path_key(p, key);

	if (!v) {
		if (required)
			return fail(p, "is required");
		path_pop(p, mark);
		return 0;
	}
	if (abs_path_value(p, v, out) < 0)
		return -1;
	path_pop(p, mark);
	return 0;
}

static int expect_object(struct parser *p, json_t *v)
{
	return json_is_object(v) ? 0 : fail(p, "expected an object");
}

static int expect_array(struct parser *p, json_t *v)
{
	return json_is_array(v) ? 0 : fail(p, "expected an array");
}

static void free_strv(char **v)
{
	if (!v)
		return;
	for (char **s = v; *s; s++)
		free(*s);
	free(v);
}

/* A JSON array of strings (value v, path already pushed) into a
 * NULL-terminated vector attached to *out before it is filled. */
static int strv_value(struct parser *p, json_t *v, char ***out, size_t *n_out)
{
	size_t n, i;
	json_t *item;
	char **vec;

	if (expect_array(p, v) < 0)
		return -1;
	n = json_array_size(v);
	vec = calloc(n + 1, sizeof(*vec));
	if (!vec)
		return fail_oom(p);
	free_strv(*out);
	*out = vec;
	if (n_out)
		*n_out = n;
	json_array_foreach(v, i, item) {
		size_t mark = path_index(p, i);
		if (string_value(p, item, &vec[i]) < 0)
			return -1;
		path_pop(p, mark);
	}
	return 0;
}

static int opt_strv(struct parser *p, json_t *obj, const char *key, char ***out, size_t *n_out)
{
	json_t *v = field(obj, key);
	size_t mark;

	if (!v)
		return 0;
	mark = path_key(p, key);
	if (strv_value(p, v, out, n_out) < 0)
		return -1;
	path_pop(p, mark);
	return 0;
}

static int opt_abs_path_list(struct parser *p, json_t *obj, const char *key, char ***out,
			     size_t *n_out)
{
	json_t *v = field(obj, key);
	size_t mark;

	if (!v)
		return 0;
	mark = path_key(p, key);
	if (strv_value(p, v, out, n_out) < 0)
		return -1;
	for (size_t i = 0; i < *n_out; i++) {
		if ((*out)[i][0] != '/') {
			path_index(p, i);
			return fail(p, "must be an absolute path, got \"%.200s\"", (*out)[i]);
		}
	}
	path_pop(p, mark);
	return 0;
}

/* An object of string values into parallel key/value arrays. */
static int string_map_value(struct parser *p, json_t *v, char ***keys_out, char ***values_out,
			    size_t *n_out)
{
	const char *key;
	json_t *val;
	size_t n, i = 0;

	if (expect_object(p, v) < 0)
		return -1;
	n = json_object_size(v);
	*keys_out = calloc(n + 1, sizeof(char *));
	*values_out = calloc(n + 1, sizeof(char *));
	if (!*keys_out || !*values_out)
		return fail_oom(p);
	*n_out = n;
	json_object_foreach(v, key, val) {
		size_t mark = path_map_key(p, key);
		if (!json_is_string(val))
			return fail(p, "expected a string value");
		(*keys_out)[i] = strdup(key);
		(*values_out)[i] = strdup(json_string_value(val));
		if (!(*keys_out)[i] || !(*values_out)[i])
			return fail_oom(p);
		path_pop(p, mark);
		i++;
	}
	return 0;
}

/* ---- paths ---- */

/* Lexically clean an absolute path ("//a/./b/../c/" -> "/a/c"), the way
 * runc's filepath.Join treats root.path.  ".." at the root stays at the root. */
static char *clean_abs_path(const char *path)
{
	size_t len = 0;
	const char *s = path;
	char *out = malloc(strlen(path) + 2);

	if (!out)
		return NULL;
	while (*s) {
		const char *e;
		size_t clen;

		while (*s == '/')
			s++;
		for (e = s; *e && *e != '/'; e++)
			;
		clen = (size_t)(e - s);
		if (clen == 0)
			break;
		if (clen == 1 && s[0] == '.') {
			/* nothing */
		} else if (clen == 2 && s[0] == '.' && s[1] == '.') {
			while (len > 0 && out[len - 1] != '/')
				len--;
			if (len > 0)
				len--;
		} else {
			out[len++] = '/';
			memcpy(out + len, s, clen);
			len += clen;
		}
		s = e;
	}
	if (len == 0)
		out[len++] = '/';
	out[len] = '\0';
	return out;
}

/* path relative to the bundle (or absolute) → clean absolute path. */
static int resolve_in_bundle(struct parser *p, const char *path, char **out)
{
	autofree char *joined = NULL;
	char *clean;

	if (path[0] == '/') {
		clean = clean_abs_path(path);
	} else {
		if (!p->bundle || p->bundle[0] != '/')
			return fail(p, "relative path \"%.200s\" needs an absolute bundle directory", path);
		if (asprintf(&joined, "%s/%s", p->bundle, path) < 0) {
			joined = NULL;
			return fail_oom(p);
		}
		clean = clean_abs_path(joined);
	}
	if (!clean)
		return fail_oom(p);
	free(*out);
	*out = clean;
	return 0;
}

/* ---- process ---- */

static int parse_cap_list(struct parser *p, json_t *obj, const char *key, uint64_t *mask, bool *has)
{
	json_t *v = field(obj, key), *item;
	size_t mark, i;

	if (!v)
		return 0;
	mark = path_key(p, key);
	if (expect_array(p, v) < 0)
		return -1;
	*mask = 0;
	json_array_foreach(v, i, item) {
		size_t imark = path_index(p, i);
		int cap;

		if (!json_is_string(item))
			return fail(p, "expected a capability name string");
		cap = lm_cap_from_name(json_string_value(item));
		if (cap < 0 || cap > 63)
			return fail(p, "unknown capability \"%.100s\"", json_string_value(item));
		*mask |= UINT64_C(1) << cap;
		path_pop(p, imark);
	}
	*has = true;
	path_pop(p, mark);
	return 0;
}

static int parse_capabilities(struct parser *p, json_t *v, struct lm_capset *caps)
{
	if (expect_object(p, v) < 0)
		return -1;
	if (parse_cap_list(p, v, "bounding", &caps->bounding, &caps->has_bounding) < 0 ||
	    parse_cap_list(p, v, "effective", &caps->effective, &caps->has_effective) < 0 ||
	    parse_cap_list(p, v, "inheritable", &caps->inheritable, &caps->has_inheritable) < 0 ||
	    parse_cap_list(p, v, "permitted", &caps->permitted, &caps->has_permitted) < 0 ||
	    parse_cap_list(p, v, "ambient", &caps->ambient, &caps->has_ambient) < 0)
		return -1;
	return 0;
}

/* A JSON array of objects into a calloc'd C array: one element parser per
 * kind, the loop, allocation and error paths written once. */
typedef int (*elem_parser)(struct parser *p, json_t *item, void *elem, void *ctx);

static int parse_list(struct parser *p, json_t *v, size_t elem_size, void *out, size_t *n_out,
		      elem_parser one, void *ctx)
{
	json_t *item;
	size_t i, n;
	char *arr;

	if (expect_array(p, v) < 0)
		return -1;
	n = json_array_size(v);
	arr = calloc(n ? n : 1, elem_size);
	if (!arr)
		return fail_oom(p);
	*(void **)out = arr;
	*n_out = n;
	json_array_foreach(v, i, item) {
		size_t mark = path_index(p, i);
		if (one(p, item, arr + i * elem_size, ctx) < 0)
			return -1;
		path_pop(p, mark);
	}
	return 0;
}

static int parse_rlimit(struct parser *p, json_t *v, void *elem, void *ctx)
{
	struct lm_rlimit *rl = elem;
	uint64_t *seen = ctx;
	json_t *type;
	size_t mark;
	bool has_soft = false, has_hard = false;

	if (expect_object(p, v) < 0)
		return -1;
	type = field(v, "type");
	mark = path_key(p, "type");
	if (!type)
		return fail(p, "is required");
	if (!json_is_string(type))
		return fail(p, "expected a string");
	rl->resource = lm_rlimit_from_name(json_string_value(type));
	if (rl->resource < 0 || rl->resource > 63)
		return fail(p, "unknown resource limit \"%.100s\"", json_string_value(type));
	if (*seen & (UINT64_C(1) << rl->resource))
		return fail(p, "duplicate resource limit \"%.100s\"", json_string_value(type));
	*seen |= UINT64_C(1) << rl->resource;
	path_pop(p, mark);

	if (opt_u64(p, v, "soft", &rl->soft, &has_soft) < 0 ||
	    opt_u64(p, v, "hard", &rl->hard, &has_hard) < 0)
		return -1;
	/* 18446744073709551615 (RLIM_INFINITY) arrives as INT64_MAX, see
	 * decode_object; both mean unlimited. */
	if (rl->soft == (uint64_t)LLONG_MAX)
		rl->soft = UINT64_MAX;
	if (rl->hard == (uint64_t)LLONG_MAX)
		rl->hard = UINT64_MAX;
	/* A silently zero limit would kill the workload in odd ways; insist. */
	if (!has_soft || !has_hard) {
		path_key(p, has_soft ? "hard" : "soft");
		return fail(p, "is required");
	}
	if (rl->soft > rl->hard)
		return fail(p, "soft limit %llu is greater than hard limit %llu",
			    (unsigned long long)rl->soft, (unsigned long long)rl->hard);
	return 0;
}

static int parse_rlimits(struct parser *p, json_t *v, struct lm_process *proc)
{
	uint64_t seen = 0;
	return parse_list(p, v, sizeof(*proc->rlimits), &proc->rlimits, &proc->n_rlimits, parse_rlimit, &seen);
}

static int parse_user(struct parser *p, json_t *v, struct lm_process *proc)
{
	json_t *gids, *username, *item;
	size_t i;

	if (expect_object(p, v) < 0)
		return -1;
	if (opt_u32(p, v, "uid", &proc->uid, NULL) < 0 || opt_u32(p, v, "gid", &proc->gid, NULL) < 0)
		return -1;

	long long umask_value = 0;
	int r = opt_int(p, v, "umask", &K_UMASK, &umask_value);
	if (r < 0)
		return -1;
	if (r > 0) {
		proc->umask = (uint32_t)umask_value;
		proc->has_umask = true;
	}

	gids = field(v, "additionalGids");
	if (gids) {
		size_t mark = path_key(p, "additionalGids");
		if (expect_array(p, gids) < 0)
			return -1;
		proc->additional_gids = calloc(json_array_size(gids) + 1, sizeof(uint32_t));
		if (!proc->additional_gids)
			return fail_oom(p);
		proc->n_additional_gids = json_array_size(gids);
		json_array_foreach(gids, i, item) {
			size_t imark = path_index(p, i);
			long long gid = 0;
			if (int_value(p, item, &K_U32, &gid) < 0)
				return -1;
			proc->additional_gids[i] = (uint32_t)gid;
			path_pop(p, imark);
		}
		path_pop(p, mark);
	}

	/* Names would have to be looked up in the container's /etc/passwd,
	 * which is the image tooling's job, not the runtime's. */
	username = field(v, "username");
	if (username) {
		size_t mark = path_key(p, "username");
		if (!json_is_string(username))
			return fail(p, "expected a string");
		if (json_string_value(username)[0])
			return fail(p, "is not supported on Linux (use uid and gid)");
		path_pop(p, mark);
	}
	return 0;
}

static int parse_console_size(struct parser *p, json_t *v, struct lm_process *proc)
{
	long long x = 0;
	int r;

	if (expect_object(p, v) < 0)
		return -1;
	r = opt_int(p, v, "height", &K_U16, &x);
	if (r < 0)
		return -1;
	if (r > 0)
		proc->console_height = (uint16_t)x;
	r = opt_int(p, v, "width", &K_U16, &x);
	if (r < 0)
		return -1;
	if (r > 0)
		proc->console_width = (uint16_t)x;
	return 0;
}

/* Like runc: an environment entry without "=" or with an empty name is a
 * mistake, not something to pass on to execve. */
static int check_env(struct parser *p, char **env)
{
	for (size_t i = 0; env[i]; i++) {
		const char *eq = strchr(env[i], '=');
		if (!eq || eq == env[i]) {
			path_index(p, i);
			return fail(p, "expected \"NAME=value\", got \"%.200s\"", env[i]);
		}
	}
	return 0;
}

static int parse_process(struct parser *p, json_t *v, struct lm_process *proc)
{
	json_t *sub;
	size_t mark;
	long long x = 0;
	int r;

	if (expect_object(p, v) < 0)
		return -1;
	if (opt_bool(p, v, "terminal", &proc->terminal) < 0)
		return -1;

	if ((sub = field(v, "consoleSize"))) {
		mark = path_key(p, "consoleSize");
		if (parse_console_size(p, sub, proc) < 0)
			return -1;
		path_pop(p, mark);
	}
	if ((sub = field(v, "user"))) {
		mark = path_key(p, "user");
		if (parse_user(p, sub, proc) < 0)
			return -1;
		path_pop(p, mark);
	}

	sub = field(v, "args");
	mark = path_key(p, "args");
	if (!sub)
		return fail(p, "is required");
	if (strv_value(p, sub, &proc->args, &proc->n_args) < 0)
		return -1;
	if (proc->n_args == 0)
		return fail(p, "must not be empty");
	if (proc->args[0][0] == '\0') {
		path_index(p, 0);
		return fail(p, "must not be empty");
	}
	path_pop(p, mark);

	if ((sub = field(v, "env"))) {
		mark = path_key(p, "env");
		if (strv_value(p, sub, &proc->env, &proc->n_env) < 0 || check_env(p, proc->env) < 0)
			return -1;
		path_pop(p, mark);
	} else {
		proc->env = calloc(1, sizeof(char *));
		if (!proc->env)
			return fail_oom(p);
	}

	if (get_abs_path(p, v, "cwd", true, &proc->cwd) < 0)
		return -1;

	if ((sub = field(v, "capabilities"))) {
		mark = path_key(p, "capabilities");
		if (parse_capabilities(p, sub, &proc->caps) < 0)
			return -1;
		proc->has_caps = true;
		path_pop(p, mark);
	}
	if ((sub = field(v, "rlimits"))) {
		mark = path_key(p, "rlimits");
		if (parse_rlimits(p, sub, proc) < 0)
			return -1;
		path_pop(p, mark);
	}
	if (opt_bool(p, v, "noNewPrivileges", &proc->no_new_privileges) < 0)
		return -1;
	r = opt_int(p, v, "oomScoreAdj", &K_OOM_ADJ, &x);
	if (r < 0)
		return -1;
	if (r > 0) {
		proc->oom_score_adj = (int)x;
		proc->has_oom_score_adj = true;
	}
	if (opt_string(p, v, "apparmorProfile", &proc->apparmor_profile) < 0 ||
	    opt_string(p, v, "selinuxLabel", &proc->selinux_label) < 0)
		return -1;
	return 0;
}

/* ---- mounts ---- */

enum opt_kind { OPT_SET, OPT_CLEAR, OPT_PROPAGATION, OPT_IGNORE, OPT_UNSUPPORTED };

struct mount_option {
	const char *name;
	enum opt_kind kind;
	unsigned long flag;
};

static const struct mount_option mount_options[] = {
	{ "defaults", OPT_IGNORE, 0 },
	{ "ro", OPT_SET, MS_RDONLY },
	{ "rw", OPT_CLEAR, MS_RDONLY },
	{ "suid", OPT_CLEAR, MS_NOSUID },
	{ "nosuid", OPT_SET, MS_NOSUID },
	{ "dev", OPT_CLEAR, MS_NODEV },
	{ "nodev", OPT_SET, MS_NODEV },
	{ "exec", OPT_CLEAR, MS_NOEXEC },
	{ "noexec", OPT_SET, MS_NOEXEC },
	{ "sync", OPT_SET, MS_SYNCHRONOUS },
	{ "async", OPT_CLEAR, MS_SYNCHRONOUS },
	{ "dirsync", OPT_SET, MS_DIRSYNC },
	{ "remount", OPT_SET, MS_REMOUNT },
	{ "mand", OPT_SET, MS_MANDLOCK },
	{ "nomand", OPT_CLEAR, MS_MANDLOCK },
	{ "atime", OPT_CLEAR, MS_NOATIME },
	{ "noatime", OPT_SET, MS_NOATIME },
	{ "diratime", OPT_CLEAR, MS_NODIRATIME },
	{ "nodiratime", OPT_SET, MS_NODIRATIME },
	{ "relatime", OPT_SET, MS_RELATIME },
	{ "norelatime", OPT_CLEAR, MS_RELATIME },
	{ "strictatime", OPT_SET, MS_STRICTATIME },
	{ "nostrictatime", OPT_CLEAR, MS_STRICTATIME },
	{ "lazytime", OPT_SET, MS_LAZYTIME },
	{ "nolazytime", OPT_CLEAR, MS_LAZYTIME },
	{ "iversion", OPT_SET, MS_I_VERSION },
	{ "noiversion", OPT_CLEAR, MS_I_VERSION },
	{ "symfollow", OPT_CLEAR, MS_NOSYMFOLLOW },
	{ "nosymfollow", OPT_SET, MS_NOSYMFOLLOW },
	{ "bind", OPT_SET, MS_BIND },
	{ "rbind", OPT_SET, MS_BIND | MS_REC },
	{ "private", OPT_PROPAGATION, MS_PRIVATE },
	{ "rprivate", OPT_PROPAGATION, MS_PRIVATE | MS_REC },
	{ "shared", OPT_PROPAGATION, MS_SHARED },
	{ "rshared", OPT_PROPAGATION, MS_SHARED | MS_REC },
	{ "slave", OPT_PROPAGATION, MS_SLAVE },
	{ "rslave", OPT_PROPAGATION, MS_SLAVE | MS_REC },
	{ "unbindable", OPT_PROPAGATION, MS_UNBINDABLE },
	{ "runbindable", OPT_PROPAGATION, MS_UNBINDABLE | MS_REC },
	/* runc/crun private option: it copies the image's files up into a fresh
	 * tmpfs; without it the tmpfs just starts empty, which is harmless. */
	{ "tmpcopyup", OPT_IGNORE, 0 },
	/* Runtime-private options we do not implement.  Passing them on as
	 * filesystem data would fail later with a bare EINVAL; silently dropping
	 * them would change what the container sees (ids, recursive read-only). */
	{ "idmap", OPT_UNSUPPORTED, 0 },
	{ "ridmap", OPT_UNSUPPORTED, 0 },
	{ "copy-symlink", OPT_UNSUPPORTED, 0 },
	{ "src-nofollow", OPT_UNSUPPORTED, 0 },
	{ "dest-nofollow", OPT_UNSUPPORTED, 0 },
	{ "rro", OPT_UNSUPPORTED, 0 },
	{ "rrw", OPT_UNSUPPORTED, 0 },
	{ "rnosuid", OPT_UNSUPPORTED, 0 },
	{ "rsuid", OPT_UNSUPPORTED, 0 },
	{ "rnodev", OPT_UNSUPPORTED, 0 },
	{ "rdev", OPT_UNSUPPORTED, 0 },
	{ "rnoexec", OPT_UNSUPPORTED, 0 },
	{ "rexec", OPT_UNSUPPORTED, 0 },
	{ "rnodiratime", OPT_UNSUPPORTED, 0 },
	{ "rdiratime", OPT_UNSUPPORTED, 0 },
	{ "rrelatime", OPT_UNSUPPORTED, 0 },
	{ "rnorelatime", OPT_UNSUPPORTED, 0 },
	{ "rnoatime", OPT_UNSUPPORTED, 0 },
	{ "ratime", OPT_UNSUPPORTED, 0 },
	{ "rstrictatime", OPT_UNSUPPORTED, 0 },
	{ "rnostrictatime", OPT_UNSUPPORTED, 0 },
	{ "rnosymfollow", OPT_UNSUPPORTED, 0 },
	{ "rsymfollow", OPT_UNSUPPORTED, 0 },
};

static const struct mount_option *find_mount_option(const char *name)
{
	for (size_t i = 0; i < ARRAY_SIZE(mount_options); i++) {
		if (strcmp(name, mount_options[i].name) == 0)
			return &mount_options[i];
	}
	return NULL;
}

static int parse_mount_options(struct parser *p, json_t *v, struct lm_mount *m)
{
	size_t i, data_len = 0, mark;
	json_t *item;
	char *data;

	mark = path_key(p, "options");
	if (expect_array(p, v) < 0)
		return -1;
	/* First pass: validate and map flags, and size the data string. */
	json_array_foreach(v, i, item) {
		const struct mount_option *o;
		const char *s;

		if (!json_is_string(item)) {
			path_index(p, i);
			return fail(p, "expected a string");
		}
		s = json_string_value(item);
		if (!*s)
			continue;
		o = find_mount_option(s);
		if (!o) {
			data_len += strlen(s) + 1;
			continue;
		}
		/* Later options win, as with mount(8): "ro,rw" is read-write. */
		switch (o->kind) {
		case OPT_SET:
			m->flags |= o->flag;
			m->clear_flags &= ~o->flag;
			break;
		case OPT_CLEAR:
			m->clear_flags |= o->flag;
			m->flags &= ~o->flag;
			break;
		case OPT_PROPAGATION:
			m->propagation = o->flag;
			break;
		case OPT_IGNORE:
			break;
		case OPT_UNSUPPORTED:
			/* Named at the mount, not the list index: easier to find. */
			path_pop(p, mark);
			return fail(p, "option \"%s\" is not supported", s);
		}
	}
	path_pop(p, mark);
	m->bind = (m->flags & MS_BIND) != 0;
	m->recursive = m->bind && (m->flags & MS_REC) != 0;
	if (data_len == 0)
		return 0;

	data = malloc(data_len);
	if (!data)
		return fail_oom(p);
	free(m->data);
	m->data = data;
	data[0] = '\0';
	size_t used = 0;
	json_array_foreach(v, i, item) {
		const char *s = json_string_value(item);
		size_t n = strlen(s);
		if (!n || find_mount_option(s))
			continue;
		if (used)
			data[used++] = ',';
		memcpy(data + used, s, n);
		used += n;
		data[used] = '\0';
	}
	return 0;
}

/* The files lxcfs (and the like) bind over /proc to give a container its
 * own view of the machine; runc admits the same list. */
static const char *const lxcfs_proc_files[] = {
	"cpuinfo", "diskstats", "meminfo", "stat", "swaps", "uptime", "loadavg", "slabinfo",
	"net/dev", "sys/kernel/ns_last_pid", "sys/crypto/fips_enabled",
};

const char *lm_spec_proc_mount_refusal(const char *rel, const struct lm_mount *m, bool source_on_procfs)
{
	bool fresh_proc = !m->bind && m->type && strcmp(m->type, "proc") == 0;
	if (!rel[0]) {
		if (fresh_proc || (m->bind && source_on_procfs))
			return NULL;
		return "only a proc filesystem may be mounted on /proc";
	}
	if (m->bind && source_on_procfs)
		return NULL;
	for (size_t i = 0; i < ARRAY_SIZE(lxcfs_proc_files); i++)
		if (strcmp(rel, lxcfs_proc_files[i]) == 0)
			return NULL;
	return "nothing may be mounted inside /proc but procfs itself or one of the files "
	       "lxcfs provides (/proc/meminfo, /proc/cpuinfo, ...)";
}

/* The part of the /proc rule that needs no file: destinations that name
 * /proc or a path in it as written.  Mount time checks again where the
 * destination really leads (a symlink in the image) and the bind source. */
static int check_proc_destination(struct parser *p, const struct lm_mount *m)
{
	autofree char *clean = clean_abs_path(m->destination);
	if (!clean)
		return fail_oom(p);
	if (strncmp(clean, "/proc", 5) != 0 || (clean[5] != '\0' && clean[5] != '/'))
		return 0;
	const char *why = lm_spec_proc_mount_refusal(clean[5] ? clean + 6 : "", m, true);
	if (!why)
		return 0;
	if (m->bind)
		return fail(p, "bind mount of %s on %s refused: %s", m->source ? m->source : "(no source)",
			    m->destination, why);
	return fail(p, "%s mount on %s refused: %s", m->type ? m->type : "untyped", m->destination, why);
}

static int parse_mount(struct parser *p, json_t *v, void *elem, void *ctx)
{
	struct lm_mount *m = elem;
	json_t *opts;
	const char *map_keys[] = { "uidMappings", "gidMappings" };

	if (expect_object(p, v) < 0)
		return -1;
	if (get_abs_path(p, v, "destination", true, &m->destination) < 0 ||
	    opt_string(p, v, "type", &m->type) < 0 || opt_string(p, v, "source", &m->source) < 0)
		return -1;
	if ((opts = field(v, "options")) && parse_mount_options(p, opts, m) < 0)
		return -1;
	for (size_t i = 0; i < ARRAY_SIZE(map_keys); i++) {
		json_t *maps = field(v, map_keys[i]);
		if (maps && (!json_is_array(maps) || json_array_size(maps) > 0)) {
			path_key(p, map_keys[i]);
			return fail(p, "idmapped mounts are not supported");
		}
	}
	/* The OCI spec makes a relative bind source relative to the bundle;
	 * other sources ("proc", "tmpfs") are not paths at all. */
	if (m->bind && m->source && m->source[0] && m->source[0] != '/' && p->bundle) {
		size_t mark = path_key(p, "source");
		if (resolve_in_bundle(p, m->source, &m->source) < 0)
			return -1;
		path_pop(p, mark);
	}
	return check_proc_destination(p, m);
}

static int parse_mounts(struct parser *p, json_t *v, struct lm_spec *spec)
{
	return parse_list(p, v, sizeof(*spec->mounts), &spec->mounts, &spec->n_mounts, parse_mount, NULL);
}

/* ---- hooks ---- */

static int parse_hook(struct parser *p, json_t *v, void *elem, void *ctx)
{
	struct lm_hook *h = elem;
	long long timeout = 0;
	int r;

	if (expect_object(p, v) < 0)
		return -1;
	if (get_abs_path(p, v, "path", true, &h->path) < 0 ||
	    opt_strv(p, v, "args", &h->args, NULL) < 0 || opt_strv(p, v, "env", &h->env, NULL) < 0)
		return -1;
	r = opt_int(p, v, "timeout", &K_TIMEOUT, &timeout);
	if (r < 0)
		return -1;
	if (r > 0)
		h->timeout = (int)timeout;
	return 0;
}

static int parse_hook_list(struct parser *p, json_t *obj, const char *key, struct lm_hook **out,
			   size_t *n_out)
{
	json_t *v = field(obj, key);
	size_t mark;

	if (!v)
		return 0;
	mark = path_key(p, key);
	if (parse_list(p, v, sizeof(**out), out, n_out, parse_hook, NULL) < 0)
		return -1;
	path_pop(p, mark);
	return 0;
}

static int parse_hooks(struct parser *p, json_t *v, struct lm_hooks *h)
{
	if (expect_object(p, v) < 0)
		return -1;
	if (parse_hook_list(p, v, "prestart", &h->prestart, &h->n_prestart) < 0 ||
	    parse_hook_list(p, v, "createRuntime", &h->create_runtime, &h->n_create_runtime) < 0 ||
	    parse_hook_list(p, v, "createContainer", &h->create_container, &h->n_create_container) < 0 ||
	    parse_hook_list(p, v, "startContainer", &h->start_container, &h->n_start_container) < 0 ||
	    parse_hook_list(p, v, "poststart", &h->poststart, &h->n_poststart) < 0 ||
	    parse_hook_list(p, v, "poststop", &h->poststop, &h->n_poststop) < 0)
		return -1;
	return 0;
}

/* ---- linux ---- */

static const struct {
	const char *name;
	enum lm_ns_type type;
} namespace_names[] = {
	{ "pid", LM_NS_PID },   { "network", LM_NS_NET },  { "mount", LM_NS_MOUNT },
	{ "ipc", LM_NS_IPC },   { "uts", LM_NS_UTS },      { "user", LM_NS_USER },
	{ "cgroup", LM_NS_CGROUP }, { "time", LM_NS_TIME },
};

static int parse_namespaces(struct parser *p, json_t *v, struct lm_spec *spec)
{
	bool seen[LM_NS__COUNT] = { false };
	json_t *item;
	size_t i, n;

	if (expect_array(p, v) < 0)
		return -1;
	n = json_array_size(v);
	spec->namespaces = calloc(n ? n : 1, sizeof(*spec->namespaces));
	if (!spec->namespaces)
		return fail_oom(p);
	spec->n_namespaces = n;
	json_array_foreach(v, i, item) {
		size_t mark = path_index(p, i), tmark;
		struct lm_namespace *ns = &spec->namespaces[i];
		json_t *type;
		const char *name;
		size_t k;

		if (expect_object(p, item) < 0)
			return -1;
		type = field(item, "type");
		tmark = path_key(p, "type");
		if (!type)
			return fail(p, "is required");
		if (!json_is_string(type))
			return fail(p, "expected a string");
		name = json_string_value(type);
		for (k = 0; k < ARRAY_SIZE(namespace_names); k++) {
			if (strcmp(name, namespace_names[k].name) == 0)
				break;
		}
		if (k == ARRAY_SIZE(namespace_names))
			return fail(p, "unknown namespace type \"%.100s\"", name);
		ns->type = namespace_names[k].type;
		if (seen[ns->type])
			return fail(p, "duplicate namespace type \"%s\"", name);
		seen[ns->type] = true;
		path_pop(p, tmark);
		if (get_abs_path(p, item, "path", false, &ns->path) < 0)
			return -1;
		path_pop(p, mark);
	}
	return 0;
}

/* uid_map and gid_map take at most this many lines (since Linux 4.15). */
#define ID_MAP_MAX_LINES 340
#define ID_MAP_MAX_TEXT 4096

static int parse_id_mappings(struct parser *p, json_t *v, struct lm_id_mapping **out, size_t *n_out)
{
	static const char *const keys[] = { "containerID", "hostID", "size" };
	json_t *item;
	size_t i, n, text_len = 0;

	if (expect_array(p, v) < 0)
		return -1;
	n = json_array_size(v);
	if (n > ID_MAP_MAX_LINES)
		return fail(p, "%zu mappings: the kernel takes at most %d", n, ID_MAP_MAX_LINES);
	*out = calloc(n ? n : 1, sizeof(**out));
	if (!*out)
		return fail_oom(p);
	*n_out = n;
	json_array_foreach(v, i, item) {
		size_t mark = path_index(p, i);
		uint32_t vals[3] = { 0, 0, 0 };

		if (expect_object(p, item) < 0)
			return -1;
		for (size_t k = 0; k < ARRAY_SIZE(keys); k++) {
			bool has = false;
			if (opt_u32(p, item, keys[k], &vals[k], &has) < 0)
				return -1;
			if (!has) {
				path_key(p, keys[k]);
				return fail(p, "is required");
			}
		}
		if (vals[2] == 0) {
			path_key(p, "size");
			return fail(p, "must be greater than 0");
		}
		/* id 2^32-1 is (uid_t)-1, never a real id: the kernel refuses a
		 * range that reaches it */
		if ((uint64_t)vals[0] + vals[2] > UINT32_MAX || (uint64_t)vals[1] + vals[2] > UINT32_MAX)
			return fail(p, "range overflows 32-bit ids (an id range must end below 4294967295)");
		for (size_t j = 0; j < i; j++) {
			const struct lm_id_mapping *o = &(*out)[j];
			bool inside = vals[0] < o->container_id + (uint64_t)o->size &&
				      o->container_id < vals[0] + (uint64_t)vals[2];
			bool outside = vals[1] < o->host_id + (uint64_t)o->size &&
				       o->host_id < vals[1] + (uint64_t)vals[2];
			if (inside || outside)
				return fail(p, "%s ids overlap those of [%zu]", inside ? "container" : "host", j);
		}
		(*out)[i] = (struct lm_id_mapping){ vals[0], vals[1], vals[2] };
		text_len += (size_t)snprintf(NULL, 0, "%u %u %u\n", vals[0], vals[1], vals[2]);
		path_pop(p, mark);
	}
	/* the kernel takes the whole map in one write of less than a page */
	if (text_len >= ID_MAP_MAX_TEXT)
		return fail(p, "too long: the kernel takes at most %d bytes of mappings (%zu here)",
			    ID_MAP_MAX_TEXT - 1, text_len);
	return 0;
}

static int parse_device(struct parser *p, json_t *v, void *elem, void *ctx)
{
	struct lm_device *d = elem;
	json_t *type;
	const char *t;
	size_t mark;
	bool has_major = false, has_minor = false;

	if (expect_object(p, v) < 0)
		return -1;
	if (get_abs_path(p, v, "path", true, &d->path) < 0)
		return -1;
	type = field(v, "type");
	mark = path_key(p, "type");
	if (!type)
		return fail(p, "is required");
	if (!json_is_string(type))
		return fail(p, "expected a string");
	t = json_string_value(type);
	if (strlen(t) != 1 || !strchr("cbup", t[0]))
		return fail(p, "unknown device type \"%.20s\" (expected c, b, u or p)", t);
	d->type = t[0];
	path_pop(p, mark);

	if (opt_i64(p, v, "major", &K_DEVNUM, &d->major, &has_major) < 0 ||
	    opt_i64(p, v, "minor", &K_DEVNUM, &d->minor, &has_minor) < 0)
		return -1;
	if (d->type != 'p' && (!has_major || !has_minor)) {
		path_key(p, has_major ? "minor" : "major");
		return fail(p, "is required for type \"%c\"", d->type);
	}

	d->file_mode = 0666;
	if (opt_u32(p, v, "fileMode", &d->file_mode, &d->has_file_mode) < 0)
		return -1;
	/* Some generators put S_IFCHR & co. into fileMode; the type comes from
	 * "type", so keep only the permission bits. */
	d->file_mode &= 07777;
	if (opt_u32(p, v, "uid", &d->uid, &d->has_uid) < 0 ||
	    opt_u32(p, v, "gid", &d->gid, &d->has_gid) < 0)
		return -1;
	return 0;
}

static int parse_devices(struct parser *p, json_t *v, struct lm_spec *spec)
{
	return parse_list(p, v, sizeof(*spec->devices), &spec->devices, &spec->n_devices, parse_device, NULL);
}

/* "0-3,8,10-11": refused here rather than as a bare EINVAL from cpuset.cpus. */
static bool valid_cpu_list(const char *s)
{
	for (;;) {
		long a = 0, b;
		int digits = 0;

		for (; *s >= '0' && *s <= '9'; s++, digits++) {
			if (digits >= 9)
				return false;
			a = a * 10 + (*s - '0');
		}
		if (!digits)
			return false;
		if (*s == '-') {
			s++;
			b = 0;
			digits = 0;
			for (; *s >= '0' && *s <= '9'; s++, digits++) {
				if (digits >= 9)
					return false;
				b = b * 10 + (*s - '0');
			}
			if (!digits || b < a)
				return false;
		}
		if (*s == '\0')
			return true;
		if (*s != ',')
			return false;
		s++;
	}
}

static int opt_cpu_list(struct parser *p, json_t *obj, const char *key, char **out)
{
	if (opt_string(p, obj, key, out) < 0)
		return -1;
	if (*out && !**out) {
		/* An empty list is how generators say "not set". */
		free(*out);
		*out = NULL;
	} else if (*out && !valid_cpu_list(*out)) {
		path_key(p, key);
		return fail(p, "invalid list \"%.100s\" (expected e.g. \"0-3,6\")", *out);
	}
	return 0;
}

static int parse_memory(struct parser *p, json_t *v, struct lm_resources *r)
{
	if (expect_object(p, v) < 0)
		return -1;
	/* "kernel" and "kernelTCP" are deprecated and ignored by runc too. */
	if (opt_i64(p, v, "limit", &K_LIMIT, &r->mem_limit, &r->has_mem_limit) < 0 ||
	    opt_i64(p, v, "reservation", &K_LIMIT, &r->mem_reservation, &r->has_mem_reservation) < 0 ||
	    opt_i64(p, v, "swap", &K_LIMIT, &r->mem_swap, &r->has_mem_swap) < 0 ||
	    opt_i64(p, v, "swappiness", &K_SWAPPINESS, &r->mem_swappiness, &r->has_mem_swappiness) < 0 ||
	    opt_bool(p, v, "disableOOMKiller", &r->disable_oom_killer) < 0)
		return -1;
	return 0;
}

static int parse_cpu(struct parser *p, json_t *v, struct lm_resources *r)
{
	if (expect_object(p, v) < 0)
		return -1;
	if (opt_u64(p, v, "shares", &r->cpu_shares, &r->has_cpu_shares) < 0 ||
	    opt_i64(p, v, "quota", &K_LIMIT, &r->cpu_quota, &r->has_cpu_quota) < 0 ||
	    opt_u64(p, v, "period", &r->cpu_period, &r->has_cpu_period) < 0 ||
	    opt_i64(p, v, "realtimeRuntime", &K_LIMIT, &r->cpu_rt_runtime, &r->has_cpu_rt_runtime) < 0 ||
	    opt_u64(p, v, "realtimePeriod", &r->cpu_rt_period, &r->has_cpu_rt_period) < 0 ||
	    opt_cpu_list(p, v, "cpus", &r->cpuset_cpus) < 0 ||
	    opt_cpu_list(p, v, "mems", &r->cpuset_mems) < 0)
		return -1;
	return 0;
}

static int parse_device_rule(struct parser *p, json_t *v, void *elem, void *ctx)
{
	struct lm_device_rule *d = elem;
	json_t *allow, *type;
	size_t mark;

	if (expect_object(p, v) < 0)
		return -1;
	allow = field(v, "allow");
	mark = path_key(p, "allow");
	if (!allow)
		return fail(p, "is required");
	if (!json_is_boolean(allow))
		return fail(p, "expected a boolean");
	d->allow = json_is_true(allow);
	path_pop(p, mark);

	d->type = 'a';
	if ((type = field(v, "type"))) {
		const char *t;
		mark = path_key(p, "type");
		if (!json_is_string(type))
			return fail(p, "expected a string");
		t = json_string_value(type);
		if (strlen(t) != 1 || !strchr("acb", t[0]))
			return fail(p, "unknown device type \"%.20s\" (expected a, c or b)", t);
		d->type = t[0];
		path_pop(p, mark);
	}

	d->major = d->minor = -1;
	if (opt_i64(p, v, "major", &K_DEVNUM_WILD, &d->major, NULL) < 0 ||
	    opt_i64(p, v, "minor", &K_DEVNUM_WILD, &d->minor, NULL) < 0)
		return -1;

	if (opt_string(p, v, "access", &d->access) < 0)
		return -1;
	if (d->access) {
		if (d->access[0] == '\0') {
			free(d->access);
			d->access = NULL;
		} else if (strspn(d->access, "rwm") != strlen(d->access)) {
			path_key(p, "access");
			return fail(p, "invalid access \"%.20s\" (expected a combination of r, w and m)",
				    d->access);
		}
	}
	return 0;
}

static int parse_device_rules(struct parser *p, json_t *v, struct lm_resources *r)
{
	return parse_list(p, v, sizeof(*r->devices), &r->devices, &r->n_devices, parse_device_rule, NULL);
}

static const struct int_kind K_BLKIO_RATE = { 0, LLONG_MAX, "a rate (unsigned integer)" };

/* blockIO.throttle*Device and weightDevice: [{major, minor, rate|weight}] */
struct blkio_kind {
	const char *value_key;
	const struct int_kind *k;
};

static int parse_blkio_device(struct parser *p, json_t *item, void *elem, void *ctx)
{
	const struct blkio_kind *bk = ctx;
	struct lm_blkio_device *d = elem;
	long long major = 0, minor = 0, value = 0;
	int got_major, got_minor, got_value;

	if (expect_object(p, item) < 0)
		return -1;
	if ((got_major = opt_int(p, item, "major", &K_DEVNUM, &major)) < 0 ||
	    (got_minor = opt_int(p, item, "minor", &K_DEVNUM, &minor)) < 0 ||
	    (got_value = opt_int(p, item, bk->value_key, bk->k, &value)) < 0)
		return -1;
	if (!got_major || !got_minor || !got_value) {
		path_key(p, !got_major ? "major" : !got_minor ? "minor" : bk->value_key);
		return fail(p, "is required");
	}
	if (field(item, "leafWeight")) {
		path_key(p, "leafWeight");
		return fail(p, "is not supported (no kernel here has blkio leaf weights)");
	}
	d->major = major;
	d->minor = minor;
	d->value = (uint64_t)value;
	return 0;
}

static int parse_blkio_devices(struct parser *p, json_t *v, const char *value_key,
			       const struct int_kind *k, struct lm_blkio_device **out, size_t *n_out)
{
	struct blkio_kind bk = { value_key, k };
	return parse_list(p, v, sizeof(**out), out, n_out, parse_blkio_device, &bk);
}

static int parse_block_io(struct parser *p, json_t *v, struct lm_resources *r)
{
	static const char *const throttle_keys[LM_THROTTLE__COUNT] = {
		[LM_THROTTLE_READ_BPS] = "throttleReadBpsDevice",
		[LM_THROTTLE_WRITE_BPS] = "throttleWriteBpsDevice",
		[LM_THROTTLE_READ_IOPS] = "throttleReadIOPSDevice",
		[LM_THROTTLE_WRITE_IOPS] = "throttleWriteIOPSDevice",
	};
	long long w = 0;
	int got;
	json_t *sub;

	if (expect_object(p, v) < 0)
		return -1;
	got = opt_int(p, v, "weight", &K_BLKIO_WEIGHT, &w);
	if (got < 0)
		return -1;
	if (got > 0) {
		r->blkio_weight = (uint16_t)w;
		r->has_blkio_weight = true;
	}
	if (field(v, "leafWeight")) {
		path_key(p, "leafWeight");
		return fail(p, "is not supported (no kernel here has blkio leaf weights)");
	}
	for (int t = 0; t < LM_THROTTLE__COUNT; t++) {
		if (!(sub = field(v, throttle_keys[t])))
			continue;
		size_t mark = path_key(p, throttle_keys[t]);
		if (parse_blkio_devices(p, sub, "rate", &K_BLKIO_RATE, &r->throttle[t], &r->n_throttle[t]) < 0)
			return -1;
		path_pop(p, mark);
	}
	if ((sub = field(v, "weightDevice"))) {
		size_t mark = path_key(p, "weightDevice");
		if (parse_blkio_devices(p, sub, "weight", &K_BLKIO_WEIGHT, &r->weight_devices,
					&r->n_weight_devices) < 0)
			return -1;
		path_pop(p, mark);
	}
	return 0;
}

/* A key/value object into struct lm_sysctl pairs. */
static int parse_kv_pairs(struct parser *p, json_t *v, struct lm_sysctl **out, size_t *n_out,
			  bool (*valid_key)(const char *))
{
	const char *key;
	json_t *val;
	size_t i = 0, n;

	if (expect_object(p, v) < 0)
		return -1;
	n = json_object_size(v);
	*out = calloc(n ? n : 1, sizeof(**out));
	if (!*out)
		return fail_oom(p);
	*n_out = n;
	json_object_foreach(v, key, val) {
		size_t mark = path_map_key(p, key);
		if (!valid_key(key))
			return fail(p, "invalid name");
		if (!json_is_string(val))
			return fail(p, "expected a string value");
		(*out)[i].key = strdup(key);
		(*out)[i].value = strdup(json_string_value(val));
		if (!(*out)[i].key || !(*out)[i].value)
			return fail_oom(p);
		path_pop(p, mark);
		i++;
	}
	return 0;
}

/* unified keys become file names in the container's cgroup directory:
 * nothing that could walk out of it. */
static bool valid_cgroup_file(const char *key)
{
	return key[0] && !strchr(key, '/') && strcmp(key, ".") != 0 && strcmp(key, "..") != 0;
}

/* sysctl keys become paths under /proc/sys ("net.ipv4.ip_forward" or
 * "net/ipv4/ip_forward"); ".." never appears in a real one, nor do spaces
 * or control characters. */
static bool valid_sysctl_key(const char *key)
{
	for (const unsigned char *c = (const unsigned char *)key; *c; c++)
		if (*c <= ' ' || *c == 0x7f)
			return false;
	return key[0] && key[0] != '.' && key[0] != '/' && !strstr(key, "..");
}

static int parse_resources(struct parser *p, json_t *v, struct lm_resources *r)
{
	json_t *sub;
	size_t mark;

	if (expect_object(p, v) < 0)
		return -1;
	if ((sub = field(v, "memory"))) {
		mark = path_key(p, "memory");
		if (parse_memory(p, sub, r) < 0)
			return -1;
		path_pop(p, mark);
	}
	if ((sub = field(v, "cpu"))) {
		mark = path_key(p, "cpu");
		if (parse_cpu(p, sub, r) < 0)
			return -1;
		path_pop(p, mark);
	}
	if ((sub = field(v, "pids"))) {
		mark = path_key(p, "pids");
		if (expect_object(p, sub) < 0 ||
		    opt_i64(p, sub, "limit", &K_I64, &r->pids_limit, &r->has_pids_limit) < 0)
			return -1;
		path_pop(p, mark);
	}
	if ((sub = field(v, "blockIO"))) {
		mark = path_key(p, "blockIO");
		if (parse_block_io(p, sub, r) < 0)
			return -1;
		path_pop(p, mark);
	}
	if ((sub = field(v, "devices"))) {
		mark = path_key(p, "devices");
		if (parse_device_rules(p, sub, r) < 0)
			return -1;
		path_pop(p, mark);
	}
	if ((sub = field(v, "unified"))) {
		mark = path_key(p, "unified");
		if (parse_kv_pairs(p, sub, &r->unified, &r->n_unified, valid_cgroup_file) < 0)
			return -1;
		path_pop(p, mark);
	}
	return 0;
}

static const struct {
	const char *name;
	unsigned long flags;
} propagation_names[] = {
	{ "shared", MS_SHARED },          { "slave", MS_SLAVE },
	{ "private", MS_PRIVATE },        { "unbindable", MS_UNBINDABLE },
	{ "rshared", MS_SHARED | MS_REC }, { "rslave", MS_SLAVE | MS_REC },
	{ "rprivate", MS_PRIVATE | MS_REC }, { "runbindable", MS_UNBINDABLE | MS_REC },
};

static int parse_rootfs_propagation(struct parser *p, json_t *obj, struct lm_spec *spec)
{
	if (opt_string(p, obj, "rootfsPropagation", &spec->rootfs_propagation) < 0)
		return -1;
	if (spec->rootfs_propagation && !spec->rootfs_propagation[0]) {
		free(spec->rootfs_propagation);
		spec->rootfs_propagation = NULL;
	}
	if (spec->rootfs_propagation) {
		size_t k;
		for (k = 0; k < ARRAY_SIZE(propagation_names); k++) {
			if (strcmp(spec->rootfs_propagation, propagation_names[k].name) == 0)
				break;
		}
		if (k == ARRAY_SIZE(propagation_names)) {
			path_key(p, "rootfsPropagation");
			return fail(p, "unknown propagation \"%.100s\"", spec->rootfs_propagation);
		}
		spec->rootfs_propagation_flags = propagation_names[k].flags;
	}
	return 0;
}

static int parse_personality(struct parser *p, json_t *v, struct lm_spec *spec)
{
	if (expect_object(p, v) < 0)
		return -1;
	if (opt_string(p, v, "domain", &spec->personality_domain) < 0)
		return -1;
	if (spec->personality_domain && strcmp(spec->personality_domain, "LINUX") != 0 &&
	    strcmp(spec->personality_domain, "LINUX32") != 0) {
		path_key(p, "domain");
		return fail(p, "unknown domain \"%.100s\" (expected LINUX or LINUX32)",
			    spec->personality_domain);
	}
	return 0;
}

static int parse_seccomp(struct parser *p, json_t *v, struct lm_spec *spec)
{
	if (expect_object(p, v) < 0)
		return -1;
	/* As runc: no default action and no rules is no filter at all. */
	json_t *rules = field(v, "syscalls");
	if (!field(v, "defaultAction") && (!rules || (json_is_array(rules) && json_array_size(rules) == 0)))
		return 0;
	if (lm_seccomp_check(v, p->path, p->err) < 0)
		return -1;
	/* Sorted keys: the same profile is the same text, the filter cache's key. */
	spec->seccomp_json = json_dumps(v, JSON_COMPACT | JSON_SORT_KEYS);
	if (!spec->seccomp_json)
		return fail_oom(p);
	spec->has_seccomp = true;
	spec->seccomp_blocks_execveat = !lm_seccomp_allows(v, "execveat");
	spec->seccomp_blocks_execve = !lm_seccomp_allows(v, "execve");
	return 0;
}

static int parse_linux(struct parser *p, json_t *v, struct lm_spec *spec)
{
	json_t *sub;
	size_t mark;

	if (expect_object(p, v) < 0)
		return -1;
#define SECTION(key, call)                      \
	if ((sub = field(v, key))) {            \
		mark = path_key(p, key);        \
		if ((call) < 0)                 \
			return -1;              \
		path_pop(p, mark);              \
	}
	SECTION("namespaces", parse_namespaces(p, sub, spec))
	SECTION("uidMappings", parse_id_mappings(p, sub, &spec->uid_mappings, &spec->n_uid_mappings))
	SECTION("gidMappings", parse_id_mappings(p, sub, &spec->gid_mappings, &spec->n_gid_mappings))
	SECTION("devices", parse_devices(p, sub, spec))
	SECTION("sysctl", parse_kv_pairs(p, sub, &spec->sysctls, &spec->n_sysctls, valid_sysctl_key))
	SECTION("seccomp", parse_seccomp(p, sub, spec))
	SECTION("personality", parse_personality(p, sub, spec))
	if ((sub = field(v, "resources"))) {
		mark = path_key(p, "resources");
		if (parse_resources(p, sub, &spec->resources) < 0)
			return -1;
		spec->has_resources = true;
		path_pop(p, mark);
	}
#undef SECTION
	if (opt_string(p, v, "cgroupsPath", &spec->cgroups_path) < 0)
		return -1;
	if (spec->cgroups_path && !spec->cgroups_path[0]) {
		free(spec->cgroups_path);
		spec->cgroups_path = NULL;
	}
	if (parse_rootfs_propagation(p, v, spec) < 0 ||
	    opt_abs_path_list(p, v, "maskedPaths", &spec->masked_paths, &spec->n_masked_paths) < 0 ||
	    opt_abs_path_list(p, v, "readonlyPaths", &spec->readonly_paths, &spec->n_readonly_paths) < 0 ||
	    opt_string(p, v, "mountLabel", &spec->mount_label) < 0)
		return -1;
	return 0;
}

/* ---- top level ---- */

static int opt_host_name(struct parser *p, json_t *obj, const char *key, char **out)
{
	if (opt_string(p, obj, key, out) < 0)
		return -1;
	if (*out && strlen(*out) > NAME_MAX_LEN) {
		path_key(p, key);
		return fail(p, "longer than %d characters", NAME_MAX_LEN);
	}
	return 0;
}

static int parse_root(struct parser *p, json_t *v, struct lm_spec *spec)
{
	json_t *path;
	size_t mark;

	if (expect_object(p, v) < 0)
		return -1;
	path = field(v, "path");
	mark = path_key(p, "path");
	if (!path)
		return fail(p, "is required");
	if (!json_is_string(path))
		return fail(p, "expected a string");
	if (!json_string_value(path)[0])
		return fail(p, "must not be empty");
	if (resolve_in_bundle(p, json_string_value(path), &spec->root_path) < 0)
		return -1;
	path_pop(p, mark);
	return opt_bool(p, v, "readonly", &spec->root_readonly);
}

static int parse_spec(struct parser *p, json_t *root, struct lm_spec *spec)
{
	json_t *sub;
	size_t mark;

	sub = field(root, "ociVersion");
	mark = path_key(p, "ociVersion");
	if (!sub)
		return fail(p, "is required");
	if (string_value(p, sub, &spec->oci_version) < 0)
		return -1;
	path_pop(p, mark);

	sub = field(root, "root");
	mark = path_key(p, "root");
	if (!sub)
		return fail(p, "is required");
	if (parse_root(p, sub, spec) < 0)
		return -1;
	path_pop(p, mark);

	sub = field(root, "process");
	mark = path_key(p, "process");
	if (!sub)
		return fail(p, "is required");
	if (parse_process(p, sub, &spec->process) < 0)
		return -1;
	path_pop(p, mark);

	if (opt_host_name(p, root, "hostname", &spec->hostname) < 0 ||
	    opt_host_name(p, root, "domainname", &spec->domainname) < 0)
		return -1;

	if ((sub = field(root, "mounts"))) {
		mark = path_key(p, "mounts");
		if (parse_mounts(p, sub, spec) < 0)
			return -1;
		path_pop(p, mark);
	}
	if ((sub = field(root, "hooks"))) {
		mark = path_key(p, "hooks");
		if (parse_hooks(p, sub, &spec->hooks) < 0)
			return -1;
		path_pop(p, mark);
	}
	if ((sub = field(root, "annotations"))) {
		mark = path_key(p, "annotations");
		if (string_map_value(p, sub, &spec->annotation_keys, &spec->annotation_values,
				     &spec->n_annotations) < 0)
			return -1;
		path_pop(p, mark);
	}
	if ((sub = field(root, "linux"))) {
		mark = path_key(p, "linux");
		if (parse_linux(p, sub, spec) < 0)
			return -1;
		path_pop(p, mark);
	}
	return 0;
}

/* Internal helpers return plain -1; the API returns what lm_err() would. */
static int error_value(const struct lm_error *err)
{
	return err->code > 0 ? -err->code : -1;
}

#define U64_MAX_TEXT "18446744073709551615"

/* jansson's integers are int64, yet configs spell "unlimited" rlimits as
 * 2^64-1.  That one number, standing alone outside a string, is rewritten to
 * INT64_MAX plus a space (columns in error messages stay right); no other
 * out-of-range number is touched. */
static char *rewrite_u64_max(const char *text, size_t len)
{
	const size_t tl = sizeof(U64_MAX_TEXT) - 1;
	if (!memmem(text, len, U64_MAX_TEXT, tl))
		return NULL;
	char *copy = malloc(len + 1);
	if (!copy)
		return NULL;
	memcpy(copy, text, len);
	copy[len] = '\0';
	bool in_string = false;
	for (size_t i = 0; i < len; i++) {
		char c = copy[i];
		if (in_string) {
			if (c == '\\')
				i++;
			else if (c == '"')
				in_string = false;
			continue;
		}
		if (c == '"') {
			in_string = true;
			continue;
		}
		if (i + tl <= len && memcmp(copy + i, U64_MAX_TEXT, tl) == 0 &&
		    (i == 0 || !strchr("0123456789.-+eE", copy[i - 1])) &&
		    (i + tl == len || !strchr("0123456789.eE", copy[i + tl]))) {
			memcpy(copy + i, "9223372036854775807 ", tl);
			i += tl - 1;
		}
	}
	return copy;
}

/* Decode a JSON object, reporting jansson's position on malformed input. */
static int decode_object(const char *text, size_t len, json_t **out, struct lm_error *err)
{
	json_error_t jerr;
	json_t *root;

	if (!text)
		return lm_err(err, EINVAL, "no JSON text");
	char *rewritten = rewrite_u64_max(text, len);
	if (rewritten)
		text = rewritten;
	/* Strings with an embedded \u0000 are refused by default, so every
	 * string we copy out is a proper C string. */
	root = json_loadb(text, len, 0, &jerr);
	free(rewritten);
	if (!root)
		return lm_err(err, EINVAL, "invalid JSON at line %d, column %d: %s", jerr.line,
			      jerr.column, jerr.text);
	if (!json_is_object(root)) {
		json_decref(root);
		return lm_err(err, EINVAL, "expected a JSON object at the top level");
	}
	*out = root;
	return 0;
}

int lm_spec_parse(const char *json, size_t len, const char *bundle, struct lm_spec **out,
		  struct lm_error *err)
{
	json_auto_t *root = NULL;
	struct parser p = { .err = err, .bundle = bundle };
	struct lm_spec *spec;
	int r;

	*out = NULL;
	r = decode_object(json, len, &root, err);
	if (r < 0)
		return r;
	spec = calloc(1, sizeof(*spec));
	if (!spec)
		return lm_err(err, ENOMEM, "out of memory");
	if (parse_spec(&p, root, spec) < 0) {
		lm_spec_free(spec);
		return error_value(err);
	}
	*out = spec;
	return 0;
}

int lm_process_parse(const char *json, size_t len, struct lm_process *proc, struct lm_error *err)
{
	json_auto_t *root = NULL;
	struct parser p = { .err = err };
	int r;

	memset(proc, 0, sizeof(*proc));
	r = decode_object(json, len, &root, err);
	if (r < 0)
		return r;
	if (parse_process(&p, root, proc) < 0) {
		lm_process_free(proc);
		return error_value(err);
	}
	return 0;
}

/* Read a whole regular file of at most max bytes. */
static int read_small_file(int fd, size_t max, char **out, size_t *len_out, struct lm_error *err)
{
	struct stat st;
	autofree char *buf = NULL;
	size_t len = 0, cap;

	if (fstat(fd, &st) < 0)
		return lm_err_sys(err, "stat");
	if (!S_ISREG(st.st_mode))
		return lm_err(err, EINVAL, "not a regular file");
	if (st.st_size < 0 || (uint64_t)st.st_size > max)
		return lm_err(err, EFBIG, "larger than %zu bytes", max);
	/* st_size is a hint only: the file may change while we read it. */
	cap = (size_t)st.st_size + 1;
	buf = malloc(cap);
	if (!buf)
		return lm_err(err, ENOMEM, "out of memory");
	for (;;) {
		ssize_t n;
		if (len == cap) {
			char *bigger;
			if (cap > max)
				return lm_err(err, EFBIG, "larger than %zu bytes", max);
			cap = cap * 2 < max + 1 ? cap * 2 : max + 1;
			bigger = realloc(buf, cap);
			if (!bigger)
				return lm_err(err, ENOMEM, "out of memory");
			buf = bigger;
		}
		n = read(fd, buf + len, cap - len);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return lm_err_sys(err, "read");
		}
		if (n == 0)
			break;
		len += (size_t)n;
	}
	if (len > max)
		return lm_err(err, EFBIG, "larger than %zu bytes", max);
	*out = steal_ptr(&buf);
	*len_out = len;
	return 0;
}

int lm_spec_load(const char *bundle, struct lm_spec **out, struct lm_error *err)
{
	autofree char *path = NULL;
	autofree char *text = NULL;
	autofd fd = -1;
	size_t len = 0;
	int r;

	*out = NULL;
	if (!bundle || bundle[0] != '/')
		return lm_err(err, EINVAL, "bundle path \"%s\" is not absolute", bundle ? bundle : "");
	if (asprintf(&path, "%s/config.json", bundle) < 0) {
		path = NULL;
		return lm_err(err, ENOMEM, "out of memory");
	}
	/* O_NONBLOCK so that a FIFO named config.json cannot hang us. */
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	if (fd < 0)
		return lm_err_sys(err, "open config.json");
	r = read_small_file(fd, SPEC_MAX_SIZE, &text, &len, err);
	if (r < 0)
		return lm_error_prefix(err, "read config.json");
	r = lm_spec_parse(text, len, bundle, out, err);
	if (r < 0)
		return lm_error_prefix(err, "config.json");
	return 0;
}

/* ---- cleanup and lookups ---- */

void lm_process_free(struct lm_process *proc)
{
	if (!proc)
		return;
	free(proc->additional_gids);
	free_strv(proc->args);
	free_strv(proc->env);
	free(proc->cwd);
	free(proc->rlimits);
	free(proc->apparmor_profile);
	free(proc->selinux_label);
	memset(proc, 0, sizeof(*proc));
}

static void free_hooks(struct lm_hook *hooks, size_t n)
{
	if (!hooks)
		return;
	for (size_t i = 0; i < n; i++) {
		free(hooks[i].path);
		free_strv(hooks[i].args);
		free_strv(hooks[i].env);
	}
	free(hooks);
}

static void free_pairs(struct lm_sysctl *pairs, size_t n)
{
	if (!pairs)
		return;
	for (size_t i = 0; i < n; i++) {
		free(pairs[i].key);
		free(pairs[i].value);
	}
	free(pairs);
}

void lm_spec_free(struct lm_spec *spec)
{
	if (!spec)
		return;
	free(spec->oci_version);
	free(spec->root_path);
	free(spec->hostname);
	free(spec->domainname);
	lm_process_free(&spec->process);
	for (size_t i = 0; spec->mounts && i < spec->n_mounts; i++) {
		free(spec->mounts[i].destination);
		free(spec->mounts[i].type);
		free(spec->mounts[i].source);
		free(spec->mounts[i].data);
	}
	free(spec->mounts);

	free_hooks(spec->hooks.prestart, spec->hooks.n_prestart);
	free_hooks(spec->hooks.create_runtime, spec->hooks.n_create_runtime);
	free_hooks(spec->hooks.create_container, spec->hooks.n_create_container);
	free_hooks(spec->hooks.start_container, spec->hooks.n_start_container);
	free_hooks(spec->hooks.poststart, spec->hooks.n_poststart);
	free_hooks(spec->hooks.poststop, spec->hooks.n_poststop);

	free_strv(spec->annotation_keys);
	free_strv(spec->annotation_values);

	for (size_t i = 0; spec->namespaces && i < spec->n_namespaces; i++)
		free(spec->namespaces[i].path);
	free(spec->namespaces);
	free(spec->uid_mappings);
	free(spec->gid_mappings);
	for (size_t i = 0; spec->devices && i < spec->n_devices; i++)
		free(spec->devices[i].path);
	free(spec->devices);
	free(spec->cgroups_path);

	free(spec->resources.cpuset_cpus);
	free(spec->resources.cpuset_mems);
	for (size_t i = 0; spec->resources.devices && i < spec->resources.n_devices; i++)
		free(spec->resources.devices[i].access);
	free(spec->resources.devices);
	for (int t = 0; t < LM_THROTTLE__COUNT; t++)
		free(spec->resources.throttle[t]);
	free(spec->resources.weight_devices);
	free_pairs(spec->resources.unified, spec->resources.n_unified);

	free(spec->rootfs_propagation);
	free_strv(spec->masked_paths);
	free_strv(spec->readonly_paths);
	free_pairs(spec->sysctls, spec->n_sysctls);
	free(spec->mount_label);
	free(spec->seccomp_json);
	free(spec->personality_domain);
	free(spec);
}

const struct lm_namespace *lm_spec_namespace(const struct lm_spec *spec, enum lm_ns_type type)
{
	for (size_t i = 0; i < spec->n_namespaces; i++) {
		if (spec->namespaces[i].type == type)
			return &spec->namespaces[i];
	}
	return NULL;
}
