/* Container cgroups on v1, v2 and hybrid hosts.
 *
 * The host layout (which hierarchies are mounted where) is read once, from
 * statfs(/sys/fs/cgroup) and /proc/self/mountinfo, and never changes after;
 * everything a struct lm_cgroup needs is derived from that layout plus the
 * container's relative path, so a cgroup reopened from state behaves exactly
 * like the one create returned.  create records every directory it makes, so
 * a failure part-way removes exactly those and nothing that existed before
 * (an existing cgroup is reused, as runc does for joined cgroups).  Limits are
 * written one file at a time with errors naming the file and the value; the
 * kernel's ordering rules (v1 memory vs memsw, cfs period vs quota, empty v1
 * cpusets, v2 subtree_control delegation) are handled here and in
 * cgroup_limits.c, which writes the limits, so that callers never need to
 * know them.
 */
#include "runtime/cgroup.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <linux/magic.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <time.h>
#include <unistd.h>

#include "runtime/cgroup_internal.h"
#include "util/cleanup.h"

#define CGROUP_ROOT "/sys/fs/cgroup"
/* How long destroy waits for exiting tasks, and kill_all for a freeze. */
#define SETTLE_STEP_NS (10 * 1000 * 1000L)
#define SETTLE_STEPS 100

/* Written once under pthread_once, read-only afterwards. */
static struct layout host_layout;
static pthread_once_t host_layout_once = PTHREAD_ONCE_INIT;

/* Hierarchies worth a directory: real controllers, plus systemd's named one
 * (runc creates it there too, so systemd tools see the container). */
static const char *const wanted_v1[] = {
	"cpu",     "cpuacct",  "cpuset",     "memory",  "devices", "freezer", "blkio",
	"pids",    "net_cls",  "net_prio",   "perf_event", "hugetlb", "rdma", "misc",
	"name=systemd", NULL,
};

/* ---------------------------------------------------------------- helpers */

struct strv {
	char **v;
	size_t n;
};

static int strv_push(struct strv *s, const char *str)
{
	char **nv = realloc(s->v, (s->n + 1) * sizeof(*nv));
	if (!nv)
		return -1;
	s->v = nv;
	nv[s->n] = strdup(str);
	if (!nv[s->n])
		return -1;
	s->n++;
	return 0;
}

static void strv_free(struct strv *s)
{
	for (size_t i = 0; i < s->n; i++)
		free(s->v[i]);
	free(s->v);
	s->v = NULL;
	s->n = 0;
}

static void settle_sleep(void)
{
	struct timespec ts = {0, SETTLE_STEP_NS};
	nanosleep(&ts, NULL);
}

static int join_path(char *buf, size_t size, const char *dir, const char *file, struct lm_error *err)
{
	int n = file ? snprintf(buf, size, "%s/%s", dir, file) : snprintf(buf, size, "%s", dir);
	if (n < 0 || (size_t)n >= size)
		return lm_err(err, ENAMETOOLONG, "cgroup path too long: %s/%s", dir, file ? file : "");
	return 0;
}

bool cg_file_exists(const char *dir, const char *file)
{
	char path[PATH_MAX];
	struct lm_error ignored;
	if (join_path(path, sizeof(path), dir, file, &ignored) < 0)
		return false;
	return access(path, F_OK) == 0;
}

static bool dir_exists(const char *path)
{
	struct stat st;
	return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

/* cgroup files take one write() per value: the kernel parses each write as a
 * whole, so a partial write is an error, not something to continue. */
int cg_write(const char *dir, const char *file, const char *value, struct lm_error *err)
{
	char path[PATH_MAX];
	if (join_path(path, sizeof(path), dir, file, err) < 0)
		return lm_error_prefix(err, "write %s=%s", file, value);
	autofd fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return lm_err_sys(err, "write %s=%s", file, value);
	size_t len = strlen(value);
	ssize_t n;
	do
		n = write(fd, value, len);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return lm_err_sys(err, "write %s=%s", file, value);
	if ((size_t)n != len)
		return lm_err(err, EIO, "write %s=%s: short write", file, value);
	return 0;
}

/* Whole file into a malloc'd NUL-terminated buffer (cgroup.procs can be big). */
static int cg_read_all(const char *dir, const char *file, char **out, struct lm_error *err)
{
	char path[PATH_MAX];
	*out = NULL;
	if (join_path(path, sizeof(path), dir, file, err) < 0)
		return -1;
	autofd fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return lm_err_sys(err, "read %s", path);
	size_t cap = 4096, len = 0;
	autofree char *buf = malloc(cap);
	if (!buf)
		return lm_err(err, ENOMEM, "read %s: out of memory", path);
	for (;;) {
		if (cap - len < 2) {
			char *nb = realloc(buf, cap * 2);
			if (!nb)
				return lm_err(err, ENOMEM, "read %s: out of memory", path);
			buf = nb;
			cap *= 2;
		}
		ssize_t n = read(fd, buf + len, cap - len - 1);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return lm_err_sys(err, "read %s", path);
		if (n == 0)
			break;
		len += (size_t)n;
	}
	buf[len] = '\0';
	*out = steal_ptr(&buf);
	return 0;
}

/* A one-line file, trailing whitespace stripped. */
int cg_read_line(const char *dir, const char *file, char *buf, size_t size, struct lm_error *err)
{
	autofree char *all = NULL;
	if (cg_read_all(dir, file, &all, err) < 0)
		return -1;
	size_t len = strlen(all);
	while (len > 0 && (all[len - 1] == '\n' || all[len - 1] == ' '))
		all[--len] = '\0';
	if (len >= size)
		return lm_err(err, EOVERFLOW, "read %s/%s: value too long", dir, file);
	memcpy(buf, all, len + 1);
	return 0;
}

/* "key N" line of a flat-keyed file such as memory.events. */
static bool keyed_value(const char *text, const char *key, uint64_t *value)
{
	size_t klen = strlen(key);
	for (const char *line = text; line && *line; line = strchr(line, '\n'), line = line ? line + 1 : NULL) {
		if (strncmp(line, key, klen) == 0 && line[klen] == ' ') {
			*value = strtoull(line + klen + 1, NULL, 10);
			return true;
		}
	}
	return false;
}

static bool has_token(const char *list, const char *sep, const char *token)
{
	size_t tlen = strlen(token);
	for (const char *p = list; *p;) {
		size_t len = strcspn(p, sep);
		if (len == tlen && strncmp(p, token, tlen) == 0)
			return true;
		p += len;
		p += strspn(p, sep);
	}
	return false;
}

/* ---------------------------------------------------------------- layout */

/* mountinfo escapes space, tab, newline and backslash as \ooo. */
static void unescape_octal(char *s)
{
	char *w = s;
	for (char *r = s; *r;) {
		if (r[0] == '\\' && r[1] >= '0' && r[1] <= '3' && r[2] >= '0' && r[2] <= '7' && r[3] >= '0' &&
		    r[3] <= '7') {
			*w++ = (char)(((r[1] - '0') << 6) | ((r[2] - '0') << 3) | (r[3] - '0'));
			r += 4;
		} else {
			*w++ = *r++;
		}
	}
	*w = '\0';
}

static bool v1_wanted(const char *options)
{
	for (size_t i = 0; wanted_v1[i]; i++)
		if (has_token(options, ",", wanted_v1[i]))
			return true;
	return false;
}

static int add_v1(struct layout *l, const char *dev, const char *mount, const char *superopts,
		  struct lm_error *err)
{
	for (size_t i = 0; i < l->n_v1; i++)
		if (strcmp(l->v1[i].dev, dev) == 0)
			return 0; /* the same hierarchy mounted twice */
	if (!v1_wanted(superopts))
		return 0;
	if (l->n_v1 == MAX_V1_HIERARCHIES)
		return lm_err(err, E2BIG, "more than %d cgroup v1 hierarchies mounted", MAX_V1_HIERARCHIES);
	struct hierarchy *h = &l->v1[l->n_v1];
	h->mount = strdup(mount);
	if (asprintf(&h->options, ",%s,", superopts) < 0)
		h->options = NULL;
	if (!h->mount || !h->options) {
		free(h->mount);
		free(h->options);
		return lm_err(err, ENOMEM, "out of memory");
	}
	snprintf(h->dev, sizeof(h->dev), "%s", dev);
	l->n_v1++;
	return 0;
}

static int parse_mountinfo(struct layout *l, struct lm_error *err)
{
	autofclose *f = fopen("/proc/self/mountinfo", "re");
	if (!f)
		return lm_err_sys(err, "open /proc/self/mountinfo");
	autofree char *line = NULL;
	size_t cap = 0;
	while (getline(&line, &cap, f) > 0) {
		/* id parent major:minor root mountpoint options [optional...] - fstype source superopts */
		char *sep = strstr(line, " - ");
		if (!sep)
			continue;
		*sep = '\0';
		char *save = NULL;
		strtok_r(line, " ", &save);                /* id */
		strtok_r(NULL, " ", &save);                /* parent */
		char *dev = strtok_r(NULL, " ", &save);
		strtok_r(NULL, " ", &save);                /* root */
		char *mount = strtok_r(NULL, " ", &save);
		char *tsave = NULL;
		char *fstype = strtok_r(sep + 3, " \n", &tsave);
		strtok_r(NULL, " \n", &tsave);             /* source */
		char *superopts = strtok_r(NULL, " \n", &tsave);
		if (!dev || !mount || !fstype || !superopts)
			continue;
		unescape_octal(mount);
		if (strcmp(fstype, "cgroup") == 0) {
			if (add_v1(l, dev, mount, superopts, err) < 0)
				return -1;
		} else if (strcmp(fstype, "cgroup2") == 0 && !l->v2) {
			l->v2 = strdup(mount);
			if (!l->v2)
				return lm_err(err, ENOMEM, "out of memory");
		}
	}
	return 0;
}

static void detect_layout(void)
{
	struct layout *l = &host_layout;
	struct statfs sfs;
	if (statfs(CGROUP_ROOT, &sfs) == 0 && sfs.f_type == CGROUP2_SUPER_MAGIC) {
		l->mode = LM_CGROUP_V2;
		l->v2 = strdup(CGROUP_ROOT);
		l->ok = l->v2 != NULL;
		if (!l->ok)
			lm_err(&l->error, ENOMEM, "out of memory");
		return;
	}
	if (parse_mountinfo(l, &l->error) < 0) {
		lm_error_prefix(&l->error, "detect cgroup layout");
		return;
	}
	if (l->n_v1 > 0)
		l->mode = l->v2 ? LM_CGROUP_HYBRID : LM_CGROUP_V1;
	else if (l->v2)
		l->mode = LM_CGROUP_V2;
	else {
		lm_err(&l->error, ENOENT, "detect cgroup layout: no cgroup hierarchy is mounted");
		return;
	}
	l->ok = true;
}

static const struct layout *get_layout(struct lm_error *err)
{
	pthread_once(&host_layout_once, detect_layout);
	if (!host_layout.ok) {
		*err = host_layout.error;
		return NULL;
	}
	return &host_layout;
}

int lm_cgroup_detect(enum lm_cgroup_mode *mode, struct lm_error *err)
{
	const struct layout *l = get_layout(err);
	if (!l)
		return err->code > 0 ? -err->code : -1;
	*mode = l->mode;
	return 0;
}

enum lm_cgroup_mode lm_cgroup_host_mode(void)
{
	struct lm_error err;
	const struct layout *l = get_layout(&err);
	return l ? l->mode : LM_CGROUP_V1;
}

bool lm_cgroup_device_filter_supported(void)
{
	return lm_cgroup_host_mode() != LM_CGROUP_V2;
}

static const struct hierarchy *v1_hierarchy(const struct layout *l, const char *controller)
{
	for (size_t i = 0; i < l->n_v1; i++)
		if (has_token(l->v1[i].options, ",", controller))
			return &l->v1[i];
	return NULL;
}

/* Every hierarchy root a container gets a directory in, in a fixed order. */
static size_t hierarchy_roots(const struct layout *l, const char **roots)
{
	size_t n = 0;
	if (l->mode != LM_CGROUP_V2)
		for (size_t i = 0; i < l->n_v1; i++)
			roots[n++] = l->v1[i].mount;
	if (l->v2)
		roots[n++] = l->v2;
	return n;
}

/* The directory holding `controller`'s files, false when it is not mounted. */
bool cg_controller_dir(const struct layout *l, const char *rel, const char *controller, char *buf,
		       size_t size)
{
	const char *root;
	if (l->mode == LM_CGROUP_V2) {
		root = l->v2;
	} else {
		const struct hierarchy *h = v1_hierarchy(l, controller);
		if (!h)
			return false;
		root = h->mount;
	}
	int n = snprintf(buf, size, "%s%s", root, rel);
	return n > 0 && (size_t)n < size;
}

bool cg_v2_dir(const struct layout *l, const char *rel, char *buf, size_t size)
{
	if (!l->v2)
		return false;
	int n = snprintf(buf, size, "%s%s", l->v2, rel);
	return n > 0 && (size_t)n < size;
}

char *lm_cgroup_controller_dir(const struct lm_cgroup *cg, const char *controller)
{
	struct lm_error err;
	const struct layout *l = get_layout(&err);
	char buf[PATH_MAX];
	if (!l || !cg->rel_path) {
		errno = ENOENT;
		return NULL;
	}
	if (cg_controller_dir(l, cg->rel_path, controller, buf, sizeof(buf)))
		return strdup(buf);
	/* Hybrid hosts keep the controllers v1 does not claim (hugetlb here) in v2. */
	autofree char *avail = NULL;
	if (l->mode == LM_CGROUP_HYBRID && cg_read_all(l->v2, "cgroup.controllers", &avail, &err) == 0 &&
	    has_token(avail, " \n", controller) && cg_v2_dir(l, cg->rel_path, buf, sizeof(buf)))
		return strdup(buf);
	errno = ENOENT;
	return NULL;
}

/* ---------------------------------------------------------------- paths */

bool cg_bad_component(const char *s, size_t len)
{
	if (len == 2 && s[0] == '.' && s[1] == '.')
		return true;
	for (size_t i = 0; i < len; i++)
		if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
			return true;
	return false;
}

/* "/a//b/./c/" -> "/a/b/c"; rejects "..", control characters and the root. */
static int normalize_path(const char *in, char **out, struct lm_error *err)
{
	*out = NULL;
	if (!*in)
		return lm_err(err, EINVAL, "cgroupsPath is empty");
	autofree char *res = malloc(strlen(in) + 2);
	if (!res)
		return lm_err(err, ENOMEM, "out of memory");
	size_t len = 0;
	for (const char *p = in; *p;) {
		p += strspn(p, "/");
		size_t clen = strcspn(p, "/");
		if (clen == 0)
			break;
		if (cg_bad_component(p, clen))
			return lm_err(err, EINVAL, "cgroupsPath \"%s\": \"..\" components and control characters are not allowed", in);
		if (!(clen == 1 && p[0] == '.')) {
			res[len++] = '/';
			memcpy(res + len, p, clen);
			len += clen;
		}
		p += clen;
	}
	res[len] = '\0';
	if (len == 0)
		return lm_err(err, EINVAL, "cgroupsPath \"%s\" names the root cgroup", in);
	*out = steal_ptr(&res);
	return 0;
}

static bool plain_name(const char *s)
{
	return *s && !strchr(s, '/') && strcmp(s, ".") != 0 && !cg_bad_component(s, strlen(s));
}

/* systemd slices nest by their dashes: "a-b.slice" lives in "a.slice". */
static int expand_slice(const char *slice, char **out, struct lm_error *err)
{
	size_t len = strlen(slice);
	const size_t suffix = strlen(".slice");
	*out = NULL;
	if (len <= suffix || strcmp(slice + len - suffix, ".slice") != 0 || !plain_name(slice))
		return lm_err(err, EINVAL, "cgroupsPath: \"%s\" is not a systemd slice name (expected \"name.slice\")", slice);
	if (strcmp(slice, "-.slice") == 0) {
		*out = strdup("");
		return *out ? 0 : lm_err(err, ENOMEM, "out of memory");
	}
	size_t base = len - suffix;
	if (slice[0] == '-' || slice[base - 1] == '-' || memmem(slice, base, "--", 2))
		return lm_err(err, EINVAL, "cgroupsPath: invalid systemd slice name \"%s\"", slice);
	/* Each dash adds one level, each level repeats the prefix: bounded by len^2. */
	autofree char *res = malloc(len * (len + 8) + 1);
	if (!res)
		return lm_err(err, ENOMEM, "out of memory");
	size_t w = 0;
	for (size_t i = 0; i <= base; i++) {
		if (i == base || slice[i] == '-') {
			res[w++] = '/';
			memcpy(res + w, slice, i);
			w += i;
			memcpy(res + w, ".slice", suffix);
			w += suffix;
		}
	}
	res[w] = '\0';
	*out = steal_ptr(&res);
	return 0;
}

static int systemd_path(const char *spec, char **out, struct lm_error *err)
{
	const char *c1 = strchr(spec, ':');
	const char *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
	if (!c1 || !c2 || strchr(c2 + 1, ':'))
		return lm_err(err, EINVAL, "cgroupsPath \"%s\": expected the systemd form \"slice:prefix:name\"", spec);
	autofree char *slice = strndup(spec, (size_t)(c1 - spec));
	autofree char *prefix = strndup(c1 + 1, (size_t)(c2 - c1 - 1));
	const char *name = c2 + 1;
	if (!slice || !prefix)
		return lm_err(err, ENOMEM, "out of memory");
	if (!plain_name(name))
		return lm_err(err, EINVAL, "cgroupsPath \"%s\": invalid or empty unit name", spec);
	if (*prefix && !plain_name(prefix))
		return lm_err(err, EINVAL, "cgroupsPath \"%s\": invalid scope prefix", spec);
	autofree char *slice_path = NULL;
	if (expand_slice(*slice ? slice : "system.slice", &slice_path, err) < 0)
		return lm_error_prefix(err, "cgroupsPath \"%s\"", spec);
	size_t nlen = strlen(name);
	bool is_slice = nlen > 6 && strcmp(name + nlen - 6, ".slice") == 0;
	int n = asprintf(out, "%s/%s%s%s%s", slice_path, prefix, *prefix ? "-" : "", name,
			 is_slice ? "" : ".scope");
	if (n < 0) {
		*out = NULL;
		return lm_err(err, ENOMEM, "out of memory");
	}
	return 0;
}

int lm_cgroup_path_for(const char *cgroups_path, const char *id, char **out, struct lm_error *err)
{
	*out = NULL;
	if (!cgroups_path) {
		if (!id || !plain_name(id))
			return lm_err(err, EINVAL, "container id \"%s\" cannot name a cgroup", id ? id : "");
		if (asprintf(out, "/lamina/%s", id) < 0) {
			*out = NULL;
			return lm_err(err, ENOMEM, "out of memory");
		}
		return 0;
	}
	if (*cgroups_path && *cgroups_path != '/' && strchr(cgroups_path, ':'))
		return systemd_path(cgroups_path, out, err);
	return normalize_path(cgroups_path, out, err);
}

/* ---------------------------------------------------------------- directories */

/* root+rel, one level at a time, recording what did not exist before.
 * ENOENT means a concurrent rollback removed a shared ancestor: start over. */
static int mkdir_chain(const char *root, const char *rel, struct strv *created, struct lm_error *err)
{
	char path[PATH_MAX];
	for (int attempt = 0;; attempt++) {
		if (join_path(path, sizeof(path), root, NULL, err) < 0)
			return -1;
		size_t len = strlen(path);
		bool again = false;
		for (const char *p = rel; *p && !again;) {
			size_t clen = strcspn(p + 1, "/") + 1;
			if (len + clen >= sizeof(path))
				return lm_err(err, ENAMETOOLONG, "cgroup path too long: %s%s", root, rel);
			memcpy(path + len, p, clen);
			len += clen;
			path[len] = '\0';
			p += clen;
			if (mkdir(path, 0755) == 0) {
				if (strv_push(created, path) < 0)
					return lm_err(err, ENOMEM, "out of memory");
			} else if (errno == EEXIST) {
				if (!dir_exists(path))
					return lm_err(err, ENOTDIR, "mkdir %s: exists and is not a cgroup directory", path);
			} else if (errno == ENOENT && attempt < 3) {
				again = true;
			} else {
				return lm_err_sys(err, "mkdir %s", path);
			}
		}
		if (!again)
			return 0;
	}
}

/* A new v1 cpuset starts with empty cpus and mems, and attaching a task to it
 * fails with ENOSPC; give every empty level its parent's sets, top down. */
static int v1_cpuset_inherit(const char *root, const char *rel, struct lm_error *err)
{
	static const char *const files[] = {"cpuset.cpus", "cpuset.mems"};
	char parent[PATH_MAX], dir[PATH_MAX];
	if (join_path(parent, sizeof(parent), root, NULL, err) < 0)
		return -1;
	size_t len = strlen(parent);
	for (const char *p = rel; *p;) {
		size_t clen = strcspn(p + 1, "/") + 1;
		if (len + clen >= sizeof(dir))
			return lm_err(err, ENAMETOOLONG, "cgroup path too long: %s%s", root, rel);
		memcpy(dir, parent, len);
		memcpy(dir + len, p, clen);
		len += clen;
		dir[len] = '\0';
		p += clen;
		for (size_t i = 0; i < 2; i++) {
			char cur[4096], from[4096];
			if (cg_read_line(dir, files[i], cur, sizeof(cur), err) < 0)
				return -1;
			if (*cur)
				continue;
			if (cg_read_line(parent, files[i], from, sizeof(from), err) < 0)
				return -1;
			if (!*from)
				return lm_err(err, ENOSPC, "%s/%s is empty: cannot inherit a cpuset", parent, files[i]);
			if (cg_write(dir, files[i], from, err) < 0)
				return lm_error_prefix(err, "%s", dir);
		}
		memcpy(parent, dir, len + 1);
	}
	return 0;
}

/* Delegate controllers down the v2 tree: each ancestor of the leaf enables
 * them in cgroup.subtree_control (all available ones when `only` is NULL, as
 * runc does, so stats work without limits).  Failures are left for the write
 * that needs the controller to report: an ancestor that holds processes
 * cannot delegate, and a limit nobody asked for must not fail create. */
void cg_v2_delegate(const char *root, const char *rel, const char *only)
{
	char dir[PATH_MAX];
	struct lm_error ignored;
	if (join_path(dir, sizeof(dir), root, NULL, &ignored) < 0)
		return;
	size_t len = strlen(dir);
	const char *p = rel;
	for (;;) {
		autofree char *avail = NULL, *enabled = NULL;
		if (cg_read_all(dir, "cgroup.controllers", &avail, &ignored) < 0 ||
		    cg_read_all(dir, "cgroup.subtree_control", &enabled, &ignored) < 0)
			return;
		for (const char *c = avail; *c;) {
			c += strspn(c, " \n");
			size_t clen = strcspn(c, " \n");
			if (clen == 0)
				break;
			char name[64], plus[66];
			if (clen < sizeof(name)) {
				memcpy(name, c, clen);
				name[clen] = '\0';
				if ((!only || strcmp(only, name) == 0) && !has_token(enabled, " \n", name)) {
					snprintf(plus, sizeof(plus), "+%s", name);
					cg_write(dir, "cgroup.subtree_control", plus, &ignored);
				}
			}
			c += clen;
		}
		/* Stop at the leaf's parent: the leaf itself holds the processes. */
		size_t clen = strcspn(p + 1, "/") + 1;
		if (!p[clen] || len + clen >= sizeof(dir))
			return;
		memcpy(dir + len, p, clen);
		len += clen;
		dir[len] = '\0';
		p += clen;
	}
}

static struct timespec deadline_after(long ns)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	t.tv_sec += ns / 1000000000L;
	t.tv_nsec += ns % 1000000000L;
	if (t.tv_nsec >= 1000000000L) {
		t.tv_sec++;
		t.tv_nsec -= 1000000000L;
	}
	return t;
}

static bool past(const struct timespec *deadline)
{
	struct timespec now;
	clock_gettime(CLOCK_MONOTONIC, &now);
	return now.tv_sec > deadline->tv_sec ||
	       (now.tv_sec == deadline->tv_sec && now.tv_nsec >= deadline->tv_nsec);
}

/* A cgroup and any child cgroups the workload made in it; ENOENT is success.
 * EBUSY (tasks still exiting) is retried until the caller's deadline, which
 * is shared by all directories so a stuck cgroup costs one wait, not one per
 * hierarchy. */
static int remove_tree(const char *dir, const struct timespec *deadline, struct lm_error *err)
{
	{
		autoclosedir *d = opendir(dir);
		if (!d)
			return errno == ENOENT ? 0 : lm_err_sys(err, "open %s", dir);
		struct dirent *de;
		while ((de = readdir(d))) {
			if (de->d_type != DT_DIR || strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
				continue;
			char child[PATH_MAX];
			if (join_path(child, sizeof(child), dir, de->d_name, err) < 0)
				return -1;
			if (remove_tree(child, deadline, err) < 0)
				return -1;
		}
	}
	for (;;) {
		if (rmdir(dir) == 0 || errno == ENOENT)
			return 0;
		if ((errno != EBUSY && errno != ENOTEMPTY) || past(deadline))
			return lm_err_sys(err, "rmdir %s", dir);
		settle_sleep();
	}
}

/* ---------------------------------------------------------------- lifecycle */

/* Nothing ran in these directories, so there is nothing to wait for; a
 * concurrent create that now shares an ancestor keeps it busy, and that
 * ancestor rightly stays. */
static void rollback(struct strv *created)
{
	struct lm_error ignored;
	struct timespec now = deadline_after(0);
	for (size_t i = created->n; i-- > 0;)
		remove_tree(created->v[i], &now, &ignored);
}

static int create_dirs(const struct layout *l, const char *rel, struct strv *created, struct strv *leaves,
		       struct lm_error *err)
{
	const char *roots[MAX_V1_HIERARCHIES + 1];
	size_t n = hierarchy_roots(l, roots);
	for (size_t i = 0; i < n; i++) {
		char leaf[PATH_MAX];
		if (mkdir_chain(roots[i], rel, created, err) < 0)
			return -1;
		if (join_path(leaf, sizeof(leaf), roots[i], NULL, err) < 0 ||
		    strlen(leaf) + strlen(rel) >= sizeof(leaf))
			return lm_err(err, ENAMETOOLONG, "cgroup path too long: %s%s", roots[i], rel);
		strcat(leaf, rel);
		if (strv_push(leaves, leaf) < 0)
			return lm_err(err, ENOMEM, "out of memory");
		const struct hierarchy *cpuset = v1_hierarchy(l, "cpuset");
		if (l->mode != LM_CGROUP_V2 && cpuset && roots[i] == cpuset->mount &&
		    v1_cpuset_inherit(roots[i], rel, err) < 0)
			return -1;
	}
	if (l->mode == LM_CGROUP_V2)
		cg_v2_delegate(l->v2, rel, NULL);
	return 0;
}

int lm_cgroup_create(struct lm_cgroup *cg, const char *rel_path, const struct lm_resources *resources,
		     struct lm_error *err)
{
	memset(cg, 0, sizeof(*cg));
	autofree char *rel = NULL;
	if (normalize_path(rel_path, &rel, err) < 0)
		return -1;
	const struct layout *l = get_layout(err);
	if (!l)
		return -1;
	if (resources && cg_validate_resources(l, resources, err) < 0)
		return lm_error_prefix(err, "cgroup %s", rel);

	struct strv created = {0}, leaves = {0};
	int rc = create_dirs(l, rel, &created, &leaves, err);
	if (rc == 0 && resources)
		rc = cg_apply_resources(l, rel, resources, err);
	if (rc < 0) {
		rollback(&created);
		strv_free(&created);
		strv_free(&leaves);
		return lm_error_prefix(err, "cgroup %s", rel);
	}
	strv_free(&created);
	cg->mode = l->mode;
	cg->rel_path = steal_ptr(&rel);
	cg->dirs = leaves.v;
	cg->n_dirs = leaves.n;
	return 0;
}

int lm_cgroup_open(struct lm_cgroup *cg, const char *rel_path, struct lm_error *err)
{
	memset(cg, 0, sizeof(*cg));
	autofree char *rel = NULL;
	if (normalize_path(rel_path, &rel, err) < 0)
		return -1;
	const struct layout *l = get_layout(err);
	if (!l)
		return -1;
	const char *roots[MAX_V1_HIERARCHIES + 1];
	size_t n = hierarchy_roots(l, roots);
	struct strv leaves = {0};
	for (size_t i = 0; i < n; i++) {
		char leaf[PATH_MAX];
		int len = snprintf(leaf, sizeof(leaf), "%s%s", roots[i], rel);
		if (len < 0 || (size_t)len >= sizeof(leaf) || !dir_exists(leaf))
			continue;
		if (strv_push(&leaves, leaf) < 0) {
			strv_free(&leaves);
			return lm_err(err, ENOMEM, "out of memory");
		}
	}
	if (leaves.n == 0)
		return lm_err(err, ENOENT, "cgroup %s does not exist", rel);
	cg->mode = l->mode;
	cg->rel_path = steal_ptr(&rel);
	cg->dirs = leaves.v;
	cg->n_dirs = leaves.n;
	return 0;
}

/* Delegation as systemd does it for a unit of another user (and runc and
 * crun after it): the directory and the files the kernel names in
 * /sys/kernel/cgroup/delegate, or the three every kernel has.  The limit
 * files stay the host's, so the container's limits still bind what it
 * puts in its sub-cgroups.  v1 has no safe delegation: never there, nor on
 * a hybrid host. */
int lm_cgroup_give_to(const struct lm_cgroup *cg, uid_t uid, struct lm_error *err)
{
	if (cg->mode != LM_CGROUP_V2 || cg->n_dirs != 1)
		return 0;
	const char *dir = cg->dirs[0];
	autofd dfd = open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0 || fchownat(dfd, "", uid, (gid_t)-1, AT_EMPTY_PATH) < 0)
		return lm_err_sys(err, "cgroup %s: give it to uid %u", dir, (unsigned)uid);
	autofree char *list = NULL;
	struct lm_error ignored;
	if (cg_read_all("/sys/kernel/cgroup", "delegate", &list, &ignored) < 0) {
		list = strdup("cgroup.procs\ncgroup.threads\ncgroup.subtree_control\n");
		if (!list)
			return lm_err(err, ENOMEM, "out of memory");
	}
	char *save = NULL;
	for (char *name = strtok_r(list, "\n", &save); name; name = strtok_r(NULL, "\n", &save)) {
		if (strchr(name, '/') || name[0] == '.')
			continue;
		/* not every listed file exists in every cgroup (memory.* without memory) */
		if (fchownat(dfd, name, uid, (gid_t)-1, AT_SYMLINK_NOFOLLOW) < 0 && errno != ENOENT)
			return lm_err_sys(err, "cgroup %s: give %s to uid %u", dir, name, (unsigned)uid);
	}
	return 0;
}

int lm_cgroup_enter(const struct lm_cgroup *cg, pid_t pid, struct lm_error *err)
{
	char value[24];
	snprintf(value, sizeof(value), "%d", (int)pid);
	for (size_t i = 0; i < cg->n_dirs; i++)
		if (cg_write(cg->dirs[i], "cgroup.procs", value, err) < 0)
			return lm_error_prefix(err, "enter %s", cg->dirs[i]);
	return 0;
}

/* The directory whose cgroup.procs lists the container's processes. */
static bool procs_dir(const struct lm_cgroup *cg, char *buf, size_t size)
{
	struct lm_error ignored;
	const struct layout *l = get_layout(&ignored);
	if (!l || !cg->rel_path)
		return false;
	if (l->mode == LM_CGROUP_V2)
		return cg_v2_dir(l, cg->rel_path, buf, size) && dir_exists(buf);
	static const char *const prefer[] = {"pids", "freezer", "memory", "cpu", "devices", NULL};
	for (size_t i = 0; prefer[i]; i++)
		if (cg_controller_dir(l, cg->rel_path, prefer[i], buf, size) && dir_exists(buf))
			return true;
	for (size_t i = 0; i < cg->n_dirs; i++) {
		if (!dir_exists(cg->dirs[i]))
			continue;
		snprintf(buf, size, "%s", cg->dirs[i]);
		return true;
	}
	return false;
}

static int read_pids(const char *dir, pid_t **pids, size_t *n, struct lm_error *err)
{
	*pids = NULL;
	*n = 0;
	autofree char *text = NULL;
	if (cg_read_all(dir, "cgroup.procs", &text, err) < 0)
		return -1;
	size_t count = 0, cap = 0;
	autofree pid_t *list = NULL;
	for (char *p = text; *p;) {
		char *end;
		long v = strtol(p, &end, 10);
		if (end == p)
			break;
		if (count == cap) {
			cap = cap ? cap * 2 : 16;
			pid_t *nl = realloc(list, cap * sizeof(*nl));
			if (!nl)
				return lm_err(err, ENOMEM, "out of memory");
			list = nl;
		}
		list[count++] = (pid_t)v;
		p = end;
	}
	*pids = steal_ptr(&list);
	*n = count;
	return 0;
}

int lm_cgroup_pids(const struct lm_cgroup *cg, pid_t **pids, size_t *n, struct lm_error *err)
{
	char dir[PATH_MAX];
	*pids = NULL;
	*n = 0;
	if (!procs_dir(cg, dir, sizeof(dir)))
		return lm_err(err, ENOENT, "cgroup %s does not exist", cg->rel_path ? cg->rel_path : "");
	return read_pids(dir, pids, n, err);
}

static bool pid_in(const pid_t *list, size_t n, pid_t pid)
{
	for (size_t i = 0; i < n; i++)
		if (list[i] == pid)
			return true;
	return false;
}

/* Without a freezer a process can fork between listing and signalling, so
 * for SIGKILL keep sweeping until a pass lists nobody new (dying tasks stay
 * listed for a moment and must not keep us looping).  Other signals go out
 * once: delivering SIGTERM twice is not the same as once. */
static int sweep(const char *dir, int sig, struct lm_error *err)
{
	autofree pid_t *prev = NULL;
	size_t n_prev = 0;
	for (int round = 0; round < SETTLE_STEPS; round++) {
		autofree pid_t *pids = NULL;
		size_t n;
		if (read_pids(dir, &pids, &n, err) < 0)
			return err->code == ENOENT ? 0 : -1;
		bool grew = false;
		for (size_t i = 0; i < n; i++) {
			if (kill(pids[i], sig) < 0 && errno != ESRCH)
				return lm_err_sys(err, "kill %d", (int)pids[i]);
			if (!pid_in(prev, n_prev, pids[i]))
				grew = true;
		}
		if (sig != SIGKILL || !grew)
			return 0;
		free(prev);
		prev = steal_ptr(&pids);
		n_prev = n;
		settle_sleep();
	}
	return 0;
}

static bool wait_state(const char *dir, const char *file, const char *key, const char *want)
{
	for (int i = 0; i < SETTLE_STEPS; i++) {
		struct lm_error ignored;
		autofree char *text = NULL;
		if (cg_read_all(dir, file, &text, &ignored) < 0)
			return false;
		if (key) {
			uint64_t v;
			if (keyed_value(text, key, &v) && v == strtoull(want, NULL, 10))
				return true;
		} else if (strncmp(text, want, strlen(want)) == 0) {
			return true;
		}
		settle_sleep();
	}
	return false;
}

/* Freeze, signal everyone, thaw: a frozen cgroup cannot fork away from the
 * listing.  A freeze that does not settle (tasks in uninterruptible sleep)
 * still gets its signals; thaw always runs. */
static int frozen_signal(const char *freeze_dir, bool v2, const char *list_dir, int sig, struct lm_error *err)
{
	const char *file = v2 ? "cgroup.freeze" : "freezer.state";
	if (cg_write(freeze_dir, file, v2 ? "1" : "FROZEN", err) < 0)
		return sweep(list_dir, sig, err);
	if (v2)
		wait_state(freeze_dir, "cgroup.events", "frozen", "1");
	else
		wait_state(freeze_dir, "freezer.state", NULL, "FROZEN");
	int rc = sweep(list_dir, sig, err);
	struct lm_error thaw_err;
	if (cg_write(freeze_dir, file, v2 ? "0" : "THAWED", &thaw_err) < 0 && rc >= 0) {
		*err = thaw_err;
		return -1;
	}
	return rc < 0 ? -1 : 0;
}

int lm_cgroup_kill_all(const struct lm_cgroup *cg, int sig, struct lm_error *err)
{
	const struct layout *l = get_layout(err);
	if (!l)
		return -1;
	if (!cg->rel_path)
		return lm_err(err, EINVAL, "kill: cgroup not open");
	char list[PATH_MAX], v2[PATH_MAX], freezer[PATH_MAX];
	if (!procs_dir(cg, list, sizeof(list)))
		return 0; /* gone: nothing left to kill */
	bool have_v2 = cg_v2_dir(l, cg->rel_path, v2, sizeof(v2)) && dir_exists(v2);
	int rc;
	if (have_v2 && sig == SIGKILL && cg_file_exists(v2, "cgroup.kill")) {
		if (cg_write(v2, "cgroup.kill", "1", err) < 0)
			return lm_error_prefix(err, "kill cgroup %s", cg->rel_path);
		if (l->mode == LM_CGROUP_V2)
			return 0;
		/* Hybrid: catch anything that is in the v1 cgroup only. */
		rc = sweep(list, sig, err);
	} else if (l->mode == LM_CGROUP_V2) {
		rc = cg_file_exists(list, "cgroup.freeze") ? frozen_signal(list, true, list, sig, err)
							 : sweep(list, sig, err);
	} else if (cg_controller_dir(l, cg->rel_path, "freezer", freezer, sizeof(freezer)) && dir_exists(freezer)) {
		rc = frozen_signal(freezer, false, freezer, sig, err);
	} else {
		rc = sweep(list, sig, err);
	}
	return rc < 0 ? lm_error_prefix(err, "kill cgroup %s", cg->rel_path) : 0;
}

uint64_t lm_cgroup_oom_kills(const struct lm_cgroup *cg)
{
	struct lm_error err;
	const struct layout *l = get_layout(&err);
	char dir[PATH_MAX];
	if (!l || !cg->rel_path || !cg_controller_dir(l, cg->rel_path, "memory", dir, sizeof(dir)))
		return 0;
	autofree char *text = NULL;
	if (cg_read_all(dir, l->mode == LM_CGROUP_V2 ? "memory.events" : "memory.oom_control", &text, &err) < 0)
		return 0;
	uint64_t v = 0;
	return keyed_value(text, "oom_kill", &v) ? v : 0;
}

int lm_cgroup_destroy(struct lm_cgroup *cg, struct lm_error *err)
{
	int rc = 0;
	struct timespec deadline = deadline_after(SETTLE_STEPS * SETTLE_STEP_NS);
	for (size_t i = cg->n_dirs; i-- > 0;) {
		struct lm_error one;
		if (remove_tree(cg->dirs[i], &deadline, &one) < 0 && rc == 0) {
			*err = one;
			rc = lm_error_prefix(err, "destroy cgroup %s", cg->rel_path ? cg->rel_path : "");
		}
	}
	return rc;
}

void lm_cgroup_free(struct lm_cgroup *cg)
{
	struct strv s = {cg->dirs, cg->n_dirs};
	strv_free(&s);
	free(cg->rel_path);
	memset(cg, 0, sizeof(*cg));
}
