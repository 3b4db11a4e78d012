/* See writable.h.
 *
 * Every teardown step is idempotent (what is already gone counts as done),
 * so the rollback of a failed create, destroy, a retried destroy and the
 * orphan sweep are one code path.  Whether the overlay is mounted is always
 * read back from the kernel (statx's mount-root attribute) before anything is
 * removed: a directory that is still a mount point is never descended into,
 * so a teardown can not delete a container's files through its live view, or
 * anything else somebody mounted there.
 *
 * The mount(2) option string is built once with the handle, so that
 * lm_writable_mount_at() needs no allocation in a freshly cloned child.
 */
#include "rootfs/writable.h"

#include <dirent.h>
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

#include "runtime/container.h"
#include "util/cleanup.h"
#include "util/fs.h"

#define LAYER_JSON "layer.json"
#define LAYER_VERSION 1
/* 500 layers of PATH_MAX each, with room for the JSON around them. */
#define LAYER_JSON_MAX ((size_t)4 << 20)

struct lm_writable {
	char *root;   /* layers_root without trailing slashes */
	char *id;
	char *dir, *upper, *work, *merged;
	char **lowers;
	size_t n_lowers;
	char *data;   /* mount(2) options */
	bool mounted; /* on the host, by us or found so by open */
	bool destroyed;
};

static const char *const overlay_opts[][2] = {
	{ "index", "off" }, { "redirect_dir", "nofollow" }, { "metacopy", "off" }, { "xino", "off" },
};
#define N_OVERLAY_OPTS (sizeof(overlay_opts) / sizeof(overlay_opts[0]))

/* How layers reach the kernel, newest way first. */
enum mount_way { WAY_AUTO, WAY_LAYER_FDS, WAY_LAYER_PATHS, WAY_MOUNT2 };

static int inject_step;
static enum mount_way forced_way;

void lm_writable_inject_failure(int step)
{
	inject_step = step;
}

void lm_writable_force_mount_way(int way)
{
	forced_way = (enum mount_way)way;
}

static int injected(int step, struct lm_error *err)
{
	if (inject_step == step)
		return lm_err(err, EIO, "injected failure after step %d", step);
	return 0;
}

/* ------------------------------------------------------------ handles */

void lm_writable_free(struct lm_writable *w)
{
	if (!w)
		return;
	for (size_t i = 0; i < w->n_lowers; i++)
		free(w->lowers[i]);
	free(w->lowers);
	free(w->root);
	free(w->id);
	free(w->dir);
	free(w->upper);
	free(w->work);
	free(w->merged);
	free(w->data);
	free(w);
}

static void writable_freep(struct lm_writable **w)
{
	lm_writable_free(*w);
	*w = NULL;
}
#define autowritable __attribute__((cleanup(writable_freep))) struct lm_writable

static int check_path(const char *what, const char *path, struct lm_error *err)
{
	if (!path || path[0] != '/')
		return lm_err(err, EINVAL, "%s \"%s\" is not an absolute path", what, path ? path : "(null)");
	const char *bad = strpbrk(path, ",:\\");
	if (bad)
		return lm_err(err, EINVAL, "%s \"%s\" contains '%c', which overlayfs options cannot carry", what,
			      path, *bad);
	if (strlen(path) >= PATH_MAX)
		return lm_err(err, ENAMETOOLONG, "%s \"%.64s...\" is too long", what, path);
	return 0;
}

static int check_id(const char *id, struct lm_error *err)
{
	if (!id)
		return lm_err(err, EINVAL, "invalid container id (null)");
	if (lm_id_validate(id, err) < 0)
		return -1;
	if (strlen(id) > NAME_MAX)
		return lm_err(err, ENAMETOOLONG, "container id \"%.64s...\" is too long for a directory name", id);
	return 0;
}

static char *build_data(const struct lm_writable *w)
{
	size_t len = strlen("lowerdir=,upperdir=,workdir=") + strlen(w->upper) + strlen(w->work) + 1;
	for (size_t i = 0; i < N_OVERLAY_OPTS; i++)
		len += strlen(overlay_opts[i][0]) + strlen(overlay_opts[i][1]) + 2;
	for (size_t i = 0; i < w->n_lowers; i++)
		len += strlen(w->lowers[i]) + 1;
	char *data = malloc(len);
	if (!data)
		return NULL;
	char *p = data;
	for (size_t i = 0; i < N_OVERLAY_OPTS; i++)
		p += sprintf(p, "%s=%s,", overlay_opts[i][0], overlay_opts[i][1]);
	p = stpcpy(p, "lowerdir=");
	for (size_t i = 0; i < w->n_lowers; i++)
		p += sprintf(p, "%s%s", i ? ":" : "", w->lowers[i]);
	sprintf(p, ",upperdir=%s,workdir=%s", w->upper, w->work);
	return data;
}

/* Paths are checked by the callers; this only builds the handle. */
static struct lm_writable *writable_new(const char *root, const char *id, char *const *lowers, size_t n)
{
	autowritable *w = calloc(1, sizeof(*w));
	if (!w)
		return NULL;
	size_t rl = strlen(root);
	while (rl > 1 && root[rl - 1] == '/')
		rl--;
	const char *sep = rl == 1 ? "" : "/";
	w->root = strndup(root, rl);
	w->id = strdup(id);
	if (!w->root || !w->id || asprintf(&w->dir, "%s%s%s", w->root, sep, id) < 0) {
		w->dir = NULL;
		return NULL;
	}
	if (asprintf(&w->upper, "%s/upper", w->dir) < 0) {
		w->upper = NULL;
		return NULL;
	}
	if (asprintf(&w->work, "%s/work", w->dir) < 0) {
		w->work = NULL;
		return NULL;
	}
	if (asprintf(&w->merged, "%s/merged", w->dir) < 0) {
		w->merged = NULL;
		return NULL;
	}
	w->lowers = calloc(n + 1, sizeof(char *));
	if (!w->lowers)
		return NULL;
	for (; w->n_lowers < n; w->n_lowers++)
		if (!(w->lowers[w->n_lowers] = strdup(lowers[w->n_lowers])))
			return NULL;
	if (!(w->data = build_data(w)))
		return NULL;
	return steal_ptr(&w);
}

const char *lm_writable_id(const struct lm_writable *w) { return w->id; }
const char *lm_writable_dir(const struct lm_writable *w) { return w->dir; }
const char *lm_writable_upper(const struct lm_writable *w) { return w->upper; }
const char *lm_writable_merged_path(const struct lm_writable *w) { return w->merged; }
size_t lm_writable_n_lowers(const struct lm_writable *w) { return w->n_lowers; }
bool lm_writable_is_mounted(const struct lm_writable *w) { return w->mounted; }

const char *lm_writable_lower(const struct lm_writable *w, size_t i)
{
	return i < w->n_lowers ? w->lowers[i] : NULL;
}

const char *lm_writable_mount_path(const struct lm_writable *w)
{
	return w->mounted ? w->merged : NULL;
}

/* 1: something is mounted on path; 0: no (or path is missing); -1: errno. */
static int is_mount_point(const char *path)
{
	struct statx sx, up;
	if (statx(AT_FDCWD, path, AT_SYMLINK_NOFOLLOW | AT_NO_AUTOMOUNT, STATX_TYPE | STATX_MNT_ID, &sx) < 0)
		return errno == ENOENT ? 0 : -1;
	if (sx.stx_attributes_mask & STATX_ATTR_MOUNT_ROOT)
		return (sx.stx_attributes & STATX_ATTR_MOUNT_ROOT) != 0;
	/* Kernels before 5.8: a mount root sits on another mount than its parent. */
	char parent[PATH_MAX];
	if (snprintf(parent, sizeof(parent), "%s/..", path) >= (int)sizeof(parent)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	if (statx(AT_FDCWD, parent, AT_NO_AUTOMOUNT, STATX_TYPE | STATX_MNT_ID, &up) < 0)
		return -1;
	if ((sx.stx_mask & STATX_MNT_ID) && (up.stx_mask & STATX_MNT_ID))
		return sx.stx_mnt_id != up.stx_mnt_id;
	return sx.stx_dev_major != up.stx_dev_major || sx.stx_dev_minor != up.stx_dev_minor;
}

/* ------------------------------------------------------------ mounting */

/* The fs context keeps the kernel's own words on why it refused. */
static int fs_fail(int fs, struct lm_error *err, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int fs_fail(int fs, struct lm_error *err, const char *fmt, ...)
{
	int saved = errno;
	char what[512], log[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	ssize_t n = fs >= 0 ? read(fs, log, sizeof(log) - 1) : -1;
	if (n > 2) {
		log[n] = '\0';
		log[strcspn(log, "\n")] = '\0';
		/* Messages come as "e overlayfs: ...": drop the severity letter. */
		return lm_err(err, saved, "%s: %s (%s)", what, strerror(saved), log + 2);
	}
	errno = saved;
	return lm_err_sys(err, "%s", what);
}

/* Mount through fsopen/fsconfig/fsmount.  Either moves the mount onto
 * target_fd, or (view != NULL) returns the detached mount itself, read-only
 * and without upper and work.  Returns 1 when this kernel does not take
 * layers this way (nothing done, err untouched), 0 when mounted, -1 on error. */
static int fsapi_mount(const struct lm_writable *w, enum mount_way way, int target_fd, int *view,
		       struct lm_error *err)
{
	autofd fs = fsopen("overlay", FSOPEN_CLOEXEC);
	if (fs < 0) {
		if (errno == ENOSYS)
			return 1;
		if (errno == ENODEV)
			return lm_err(err, ENODEV, "overlayfs is not available on this kernel");
		return lm_err_sys(err, "fsopen overlay");
	}
	if (fsconfig(fs, FSCONFIG_SET_STRING, "source", "overlay", 0) < 0)
		return fs_fail(fs, err, "overlay source");
	for (size_t i = 0; i < w->n_lowers; i++) {
		int r;
		if (way == WAY_LAYER_FDS) {
			/* Not O_PATH: older kernels take only fds fget() accepts. */
			autofd l = open(w->lowers[i], O_RDONLY | O_DIRECTORY | O_CLOEXEC);
			if (l < 0)
				return lm_err_sys(err, "lower layer %s", w->lowers[i]);
			r = fsconfig(fs, FSCONFIG_SET_FD, "lowerdir+", NULL, l);
		} else {
			/* fsconfig strings stop at 255 bytes. */
			if (strlen(w->lowers[i]) > 255)
				return 1;
			r = fsconfig(fs, FSCONFIG_SET_STRING, "lowerdir+", w->lowers[i], 0);
		}
		if (r < 0) {
			if (errno == EINVAL && i == 0)
				return 1;
			return fs_fail(fs, err, "lower layer %s", w->lowers[i]);
		}
	}
	if (!view) {
		const char *keys[] = { "upperdir", "workdir" };
		const char *paths[] = { w->upper, w->work };
		for (size_t i = 0; i < 2; i++) {
			int r;
			if (way == WAY_LAYER_FDS) {
				autofd d = open(paths[i], O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
				if (d < 0)
					return lm_err_sys(err, "%s %s", keys[i], paths[i]);
				r = fsconfig(fs, FSCONFIG_SET_FD, keys[i], NULL, d);
			} else {
				if (strlen(paths[i]) > 255)
					return 1;
				r = fsconfig(fs, FSCONFIG_SET_STRING, keys[i], paths[i], 0);
			}
			if (r < 0)
				return fs_fail(fs, err, "%s %s", keys[i], paths[i]);
		}
	}
	for (size_t i = 0; i < N_OVERLAY_OPTS; i++)
		if (fsconfig(fs, FSCONFIG_SET_STRING, overlay_opts[i][0], overlay_opts[i][1], 0) < 0)
			return fs_fail(fs, err, "overlay option %s=%s", overlay_opts[i][0], overlay_opts[i][1]);
	if (fsconfig(fs, FSCONFIG_CMD_CREATE, NULL, NULL, 0) < 0)
		return fs_fail(fs, err, "create overlay");
	autofd mnt = fsmount(fs, FSMOUNT_CLOEXEC, view ? MOUNT_ATTR_RDONLY : 0);
	if (mnt < 0)
		return lm_err_sys(err, "fsmount overlay");
	if (view) {
		*view = steal_fd(&mnt);
		return 0;
	}
	if (move_mount(mnt, "", target_fd, "", MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH) < 0)
		return lm_err_sys(err, "move_mount overlay");
	return 0;
}

static int mount2(const struct lm_writable *w, int target_fd, const char *target, struct lm_error *err)
{
	long page = sysconf(_SC_PAGESIZE);
	size_t len = strlen(w->data);
	if (page <= 0)
		page = 4096;
	if (len >= (size_t)page)
		return lm_err(err, E2BIG,
			      "mount overlay on %s: %zu layers need %zu bytes of mount options, more than "
			      "mount(2) takes (%ld), and this kernel lacks the new mount API",
			      target, w->n_lowers, len, page - 1);
	char fdpath[64];
	snprintf(fdpath, sizeof(fdpath), "/proc/self/fd/%d", target_fd);
	if (mount("overlay", fdpath, "overlay", 0, w->data) < 0)
		return lm_err_sys(err, "mount overlay on %s", target);
	return 0;
}

int lm_writable_mount_at(const struct lm_writable *w, const char *target, struct lm_error *err)
{
	if (w->n_lowers == 0)
		return lm_err(err, EINVAL, "mount %s: no lower layers recorded", w->id);
	autofd tfd = open(target, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (tfd < 0)
		return lm_err_sys(err, "mount overlay on %s", target);
	for (enum mount_way way = WAY_LAYER_FDS; way <= WAY_LAYER_PATHS; way++) {
		if (forced_way != WAY_AUTO && forced_way != way)
			continue;
		int r = fsapi_mount(w, way, tfd, NULL, err);
		if (r < 0)
			return lm_error_prefix(err, "mount overlay on %s", target);
		if (r == 0)
			return 0;
		if (forced_way != WAY_AUTO)
			return lm_err(err, ENOSYS, "mount overlay on %s: this kernel does not take layers that way",
				      target);
	}
	return mount2(w, tfd, target, err);
}

int lm_writable_mount_options(const struct lm_writable *w, char **data, struct lm_error *err)
{
	long page = sysconf(_SC_PAGESIZE);
	size_t len = strlen(w->data);
	if (page <= 0)
		page = 4096;
	if (len >= (size_t)page)
		return lm_err(err, E2BIG,
			      "writable layer %s: %zu layers need %zu bytes of mount options, more than mount(2) "
			      "takes (%ld)",
			      w->id, w->n_lowers, len, page - 1);
	if (!(*data = strdup(w->data)))
		return lm_err(err, ENOMEM, "out of memory");
	return 0;
}

int lm_writable_image_view(const struct lm_writable *w, int *fd, struct lm_error *err)
{
	if (w->n_lowers == 0)
		return lm_err(err, EINVAL, "image view of %s: no lower layers recorded", w->id);
	/* overlayfs wants two lower layers when there is no upper. */
	if (w->n_lowers == 1) {
		*fd = open(w->lowers[0], O_PATH | O_DIRECTORY | O_CLOEXEC);
		return *fd < 0 ? lm_err_sys(err, "image view of %s: %s", w->id, w->lowers[0]) : 0;
	}
	for (enum mount_way way = WAY_LAYER_FDS; way <= WAY_LAYER_PATHS; way++) {
		int r = fsapi_mount(w, way, -1, fd, err);
		if (r < 0)
			return lm_error_prefix(err, "image view of %s", w->id);
		if (r == 0)
			return 0;
	}
	return lm_err(err, ENOSYS, "image view of %s: this kernel lacks the new mount API", w->id);
}

/* ------------------------------------------------------------ lifecycle */

static int write_layer_json(const struct lm_writable *w, int dfd, struct lm_error *err)
{
	json_t *lowers = json_array();
	json_t *doc = json_pack("{s:i,s:s,s:o}", "version", LAYER_VERSION, "id", w->id, "lowerdirs", lowers);
	if (!doc)
		return lm_err(err, ENOMEM, "out of memory");
	for (size_t i = 0; i < w->n_lowers; i++)
		if (json_array_append_new(lowers, json_string(w->lowers[i])) < 0) {
			json_decref(doc);
			return lm_err(err, ENOMEM, "out of memory");
		}
	autofree char *text = json_dumps(doc, JSON_INDENT(2));
	json_decref(doc);
	if (!text)
		return lm_err(err, ENOMEM, "out of memory");
	return lm_write_file_atomic_at(dfd, LAYER_JSON, text, strlen(text), 0600, err);
}

/* Everything inside <root>/<id>, which the caller made and removes on failure. */
static int scaffold(const struct lm_writable *w, int rootfd, const struct stat *top, struct lm_error *err)
{
	if (injected(1, err) < 0)
		return -1;
	autofd dfd = openat(rootfd, w->id, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (dfd < 0)
		return lm_err_sys(err, "open %s", w->dir);
	if (write_layer_json(w, dfd, err) < 0 || injected(2, err) < 0)
		return -1;
	/* The container's "/" is the upper's root, so it takes the image's owner
	 * and mode: a 0700 root would lock every non-root user out. */
	if (mkdirat(dfd, "upper", 0700) < 0)
		return lm_err_sys(err, "create %s", w->upper);
	if (fchownat(dfd, "upper", top->st_uid, top->st_gid, AT_SYMLINK_NOFOLLOW) < 0 ||
	    fchmodat(dfd, "upper", top->st_mode & 07777, 0) < 0)
		return lm_err_sys(err, "set owner and mode of %s", w->upper);
	if (injected(3, err) < 0)
		return -1;
	if (mkdirat(dfd, "work", 0700) < 0)
		return lm_err_sys(err, "create %s", w->work);
	if (injected(4, err) < 0)
		return -1;
	if (mkdirat(dfd, "merged", 0755) < 0)
		return lm_err_sys(err, "create %s", w->merged);
	return injected(5, err);
}

int lm_writable_create(const char *layers_root, const char *id, const char *const *lowerdirs, size_t n,
		       struct lm_writable **out, struct lm_error *err)
{
	if (check_id(id, err) < 0 || check_path("layers root", layers_root, err) < 0)
		return lm_error_prefix(err, "create writable layer");
	if (n == 0)
		return lm_err(err, EINVAL, "create writable layer %s: no lower layers (give an image without "
				      "layers one empty directory)", id);
	if (n > LM_WRITABLE_MAX_LAYERS)
		return lm_err(err, EINVAL, "create writable layer %s: %zu lower layers, overlayfs stacks at most %d",
			      id, n, LM_WRITABLE_MAX_LAYERS);
	struct stat top = { 0 };
	for (size_t i = 0; i < n; i++) {
		struct stat st;
		if (check_path("lower layer", lowerdirs[i], err) < 0)
			return lm_error_prefix(err, "create writable layer %s", id);
		if (stat(lowerdirs[i], &st) < 0)
			return lm_err_sys(err, "create writable layer %s: lower layer %s", id, lowerdirs[i]);
		if (!S_ISDIR(st.st_mode))
			return lm_err(err, ENOTDIR, "create writable layer %s: lower layer %s is not a directory", id,
				      lowerdirs[i]);
		if (i == 0)
			top = st;
	}

	autowritable *w = writable_new(layers_root, id, (char *const *)lowerdirs, n);
	if (!w)
		return lm_err(err, ENOMEM, "create writable layer %s: out of memory", id);
	if (check_path("layer directory", w->upper, err) < 0)
		return lm_error_prefix(err, "create writable layer %s", id);
	if (mkdir(w->root, 0700) < 0 && errno != EEXIST)
		return lm_err_sys(err, "create writable layer %s: create %s", id, w->root);
	autofd rootfd = open(w->root, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (rootfd < 0)
		return lm_err_sys(err, "create writable layer %s: open %s", id, w->root);
	if (mkdirat(rootfd, id, 0700) < 0) {
		if (errno == EEXIST)
			return lm_err(err, EEXIST, "create writable layer %s: %s already exists", id, w->dir);
		return lm_err_sys(err, "create writable layer %s: create %s", id, w->dir);
	}
	if (scaffold(w, rootfd, &top, err) < 0) {
		struct lm_error ignored = { 0 };
		lm_rm_rf_at(rootfd, id, &ignored);
		return lm_error_prefix(err, "create writable layer %s", id);
	}
	*out = steal_ptr(&w);
	return 0;
}

static int parse_layer_json(const char *text, size_t len, const char *id, char ***lowers, size_t *n,
			    struct lm_error *err)
{
	json_error_t jerr;
	json_t *doc = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
	if (!doc)
		return lm_err(err, EINVAL, "line %d: %s", jerr.line, jerr.text);
	int r = -1;
	json_t *ver = json_object_get(doc, "version");
	json_t *jid = json_object_get(doc, "id");
	json_t *jl = json_object_get(doc, "lowerdirs");
	size_t count = json_array_size(jl);
	if (!json_is_integer(ver) || json_integer_value(ver) != LAYER_VERSION) {
		lm_err(err, EINVAL, "version: expected %d", LAYER_VERSION);
	} else if (!json_is_string(jid) || strcmp(json_string_value(jid), id) != 0) {
		lm_err(err, EINVAL, "id: expected \"%s\"", id);
	} else if (!json_is_array(jl) || count == 0 || count > LM_WRITABLE_MAX_LAYERS) {
		lm_err(err, EINVAL, "lowerdirs: expected 1 to %d paths", LM_WRITABLE_MAX_LAYERS);
	} else if (!(*lowers = calloc(count + 1, sizeof(char *)))) {
		lm_err(err, ENOMEM, "out of memory");
	} else {
		r = 0;
		for (*n = 0; *n < count && r == 0; (*n)++) {
			json_t *item = json_array_get(jl, *n);
			if (!json_is_string(item))
				r = lm_err(err, EINVAL, "lowerdirs[%zu]: expected a string", *n);
			else if (check_path("lower layer", json_string_value(item), err) < 0)
				r = lm_error_prefix(err, "lowerdirs[%zu]", *n);
			else if (!((*lowers)[*n] = strdup(json_string_value(item))))
				r = lm_err(err, ENOMEM, "out of memory");
			if (r < 0)
				break;
		}
	}
	json_decref(doc);
	return r;
}

static void free_strv(char **v, size_t n)
{
	if (!v)
		return;
	for (size_t i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

int lm_writable_open(const char *layers_root, const char *id, struct lm_writable **out, struct lm_error *err)
{
	if (check_id(id, err) < 0 || check_path("layers root", layers_root, err) < 0)
		return lm_error_prefix(err, "open writable layer");
	autowritable *probe = writable_new(layers_root, id, NULL, 0);
	if (!probe)
		return lm_err(err, ENOMEM, "open writable layer %s: out of memory", id);
	autofd dfd = open(probe->dir, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (dfd < 0) {
		if (errno == ENOENT)
			return lm_err(err, ENOENT, "open writable layer %s: no such layer under %s", id, probe->root);
		return lm_err_sys(err, "open writable layer %s: %s", id, probe->dir);
	}
	autofree char *text = NULL;
	size_t len = 0;
	if (lm_read_file_at(dfd, LAYER_JSON, LAYER_JSON_MAX, &text, &len, err) < 0)
		return lm_error_prefix(err, "open writable layer %s", id);
	char **lowers = NULL;
	size_t n = 0;
	int r = parse_layer_json(text, len, id, &lowers, &n, err);
	struct lm_writable *w = r < 0 ? NULL : writable_new(layers_root, id, lowers, n);
	free_strv(lowers, n);
	if (r < 0)
		return lm_error_prefix(err, "open writable layer %s: %s/%s", id, probe->dir, LAYER_JSON);
	if (!w)
		return lm_err(err, ENOMEM, "open writable layer %s: out of memory", id);
	w->mounted = is_mount_point(w->merged) == 1;
	*out = w;
	return 0;
}

int lm_writable_mount(struct lm_writable *w, struct lm_error *err)
{
	if (w->destroyed)
		return lm_err(err, EINVAL, "mount writable layer %s: it was destroyed", w->id);
	if (is_mount_point(w->merged) == 1) {
		w->mounted = true;
		return 0;
	}
	if (lm_writable_mount_at(w, w->merged, err) < 0)
		return lm_error_prefix(err, "mount writable layer %s", w->id);
	w->mounted = true;
	return 0;
}

/* Unmount whatever is stacked on merged.  lazy: detach a busy mount. */
static int unmount_merged(struct lm_writable *w, bool lazy, struct lm_error *err)
{
	for (int tries = 0; tries < 64; tries++) {
		int m = is_mount_point(w->merged);
		if (m < 0)
			return lm_err_sys(err, "unmount %s", w->merged);
		if (m == 0) {
			w->mounted = false;
			return 0;
		}
		if (umount2(w->merged, UMOUNT_NOFOLLOW) == 0)
			continue;
		if (errno == EBUSY && lazy && umount2(w->merged, UMOUNT_NOFOLLOW | MNT_DETACH) == 0)
			continue;
		if (errno == EBUSY)
			return lm_err(err, EBUSY, "unmount %s: it is busy (a process uses a file or directory in it)",
				      w->merged);
		return lm_err_sys(err, "unmount %s", w->merged);
	}
	return lm_err(err, EBUSY, "unmount %s: still a mount point after 64 unmounts", w->merged);
}

int lm_writable_unmount(struct lm_writable *w, struct lm_error *err)
{
	if (w->destroyed)
		return 0;
	if (unmount_merged(w, false, err) < 0)
		return lm_error_prefix(err, "writable layer %s", w->id);
	return 0;
}

static void keep_first(struct lm_error *err, bool *failed, const struct lm_error *step)
{
	if (!*failed)
		*err = *step;
	*failed = true;
}

int lm_writable_destroy(struct lm_writable *w, struct lm_error *err)
{
	if (w->destroyed)
		return 0;
	bool failed = false;
	struct lm_error step = { 0 };

	if (unmount_merged(w, true, &step) < 0)
		keep_first(err, &failed, &step);

	autofd rootfd = open(w->root, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (rootfd < 0 && errno != ENOENT) {
		lm_err_sys(&step, "open %s", w->root);
		keep_first(err, &failed, &step);
	}
	autofd dfd = rootfd < 0 ? -1 : openat(rootfd, w->id, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (dfd < 0 && rootfd >= 0 && errno != ENOENT) {
		lm_err_sys(&step, "open %s", w->dir);
		keep_first(err, &failed, &step);
	}
	if (dfd >= 0) {
		/* Work first: overlayfs keeps its scratch files there while it runs. */
		if (lm_rm_rf_at(dfd, "work", &step) < 0) {
			lm_error_prefix(&step, "remove %s", w->work);
			keep_first(err, &failed, &step);
		}
		if (lm_rm_rf_at(dfd, "upper", &step) < 0) {
			lm_error_prefix(&step, "remove %s", w->upper);
			keep_first(err, &failed, &step);
		}
		bool merged_gone = false;
		int m = is_mount_point(w->merged);
		if (m != 0) {
			if (m < 0)
				lm_err_sys(&step, "remove %s", w->merged);
			else
				lm_err(&step, EBUSY, "remove %s: still a mount point", w->merged);
			keep_first(err, &failed, &step);
		} else if (lm_rm_rf_at(dfd, "merged", &step) < 0) {
			lm_error_prefix(&step, "remove %s", w->merged);
			keep_first(err, &failed, &step);
		} else {
			merged_gone = true;
		}
		if (unlinkat(dfd, LAYER_JSON, 0) < 0 && errno != ENOENT) {
			lm_err_sys(&step, "remove %s/%s", w->dir, LAYER_JSON);
			keep_first(err, &failed, &step);
		}
		/* Also takes what a crash left (layer.json.tmp-*), but never with a
		 * mount still inside. */
		if (merged_gone && lm_rm_rf_at(rootfd, w->id, &step) < 0) {
			lm_error_prefix(&step, "remove %s", w->dir);
			keep_first(err, &failed, &step);
		}
	}
	if (failed)
		return lm_error_prefix(err, "destroy writable layer %s", w->id);
	w->destroyed = true;
	w->mounted = false;
	return 0;
}

/* ------------------------------------------------------------ sweep */

int lm_writable_sweep(const char *layers_root, bool (*alive)(const char *id, void *ctx), void *ctx,
		      size_t *removed, struct lm_error *err)
{
	*removed = 0;
	if (check_path("layers root", layers_root, err) < 0)
		return lm_error_prefix(err, "sweep writable layers");
	autofd rootfd = open(layers_root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (rootfd < 0)
		return errno == ENOENT ? 0 : lm_err_sys(err, "sweep writable layers: open %s", layers_root);
	int dup_fd = dup(rootfd);
	if (dup_fd < 0)
		return lm_err_sys(err, "sweep writable layers: dup");
	autoclosedir *d = fdopendir(dup_fd);
	if (!d) {
		close(dup_fd);
		return lm_err_sys(err, "sweep writable layers: read %s", layers_root);
	}
	/* Names first: the directory shrinks as we go. */
	char **names = NULL;
	size_t n = 0, cap = 0;
	int r = 0;
	struct dirent *de;
	errno = 0;
	while ((de = readdir(d))) {
		struct lm_error ignored;
		struct stat st;
		if (check_id(de->d_name, &ignored) < 0 ||
		    fstatat(rootfd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISDIR(st.st_mode))
			continue;
		if (n == cap) {
			cap = cap ? cap * 2 : 16;
			char **nn = realloc(names, cap * sizeof(char *));
			if (!nn) {
				r = lm_err(err, ENOMEM, "sweep writable layers: out of memory");
				break;
			}
			names = nn;
		}
		if (!(names[n] = strdup(de->d_name))) {
			r = lm_err(err, ENOMEM, "sweep writable layers: out of memory");
			break;
		}
		n++;
	}

	bool failed = r < 0;
	for (size_t i = 0; i < n && !failed; i++) {
		if (alive(names[i], ctx))
			continue;
		struct lm_error step = { 0 };
		struct lm_writable *w = NULL;
		/* A crash during create leaves no (or a torn) layer.json: the
		 * directory goes all the same, which needs only its paths. */
		if (lm_writable_open(layers_root, names[i], &w, &step) < 0) {
			w = writable_new(layers_root, names[i], NULL, 0);
			if (!w) {
				r = lm_err(err, ENOMEM, "sweep writable layers: out of memory");
				break;
			}
		}
		if (lm_writable_destroy(w, &step) < 0) {
			if (r == 0) {
				*err = step;
				r = lm_error_prefix(err, "sweep writable layers");
			}
		} else {
			(*removed)++;
		}
		lm_writable_free(w);
	}
	free_strv(names, n);
	return r;
}
