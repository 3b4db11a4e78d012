/* See passwd.h.
 *
 * Users and groups are looked up in the IMAGE's account files, never the
 * host's: each file is opened through the image root fd with lm_open_in_root()
 * (O_NONBLOCK, regular files only) and read once, bounded by
 * LM_IMAGE_ACCOUNT_FILE_MAX.  The text is then parsed line by line (a copy per
 * walk, split on ':'); a line that does not parse is skipped, as libc does.
 * Numeric ids are range-checked to 0..ID_MAX, since (uid_t)-1 means "no
 * change" to the kernel.
 */
#include "image/passwd.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "util/cleanup.h"
#include "util/fs.h"

#define ID_MAX 4294967294u  /* (uint32_t)-1 is "unchanged" to setresuid */
#define MAX_GROUPS 65536    /* NGROUPS_MAX */

/* All digits → 1 and *id set (range-checked); anything else → 0 (a name). */
static int parse_id(const char *s, size_t len, const char *what, uint32_t *id, struct lm_error *err)
{
	if (len == 0)
		return 0;
	for (size_t i = 0; i < len; i++)
		if (!isdigit((unsigned char)s[i]))
			return 0;
	unsigned long long v = 0;
	for (size_t i = 0; i < len; i++) {
		v = v * 10 + (unsigned long long)(s[i] - '0');
		if (v > ID_MAX)
			return lm_err(err, ERANGE, "%s %.*s is out of range (0 to %u)", what, (int)(len > 32 ? 32 : len), s,
				      ID_MAX);
	}
	*id = (uint32_t)v;
	return 1;
}

/* A field of an account file line as a number, for parsing: false when it is
 * not one (the line is then skipped). */
static bool field_id(const char *s, uint32_t *id)
{
	struct lm_error ignored;
	return *s && parse_id(s, strlen(s), "id", id, &ignored) == 1;
}

struct account_file {
	char *text;   /* NULL when the image has no such file */
	const char *path;
};

static int read_account_file(int rootfd, const char *path, struct account_file *f, struct lm_error *err)
{
	f->path = path;
	f->text = NULL;
	if (rootfd < 0)
		return 0;
	/* O_NONBLOCK: a FIFO planted at /etc/passwd must not hang us. */
	autofd fd = lm_open_in_root(rootfd, path, O_RDONLY | O_NOCTTY | O_NONBLOCK, 0, err);
	if (fd < 0) {
		if (err->code == ENOENT || err->code == ENOTDIR) {
			lm_error_clear(err);
			return 0;
		}
		return lm_error_prefix(err, "the image's %s", path);
	}
	struct stat st;
	if (fstat(fd, &st) < 0)
		return lm_err_sys(err, "the image's %s", path);
	if (!S_ISREG(st.st_mode))
		return lm_err(err, EINVAL, "the image's %s is not a regular file", path);
	if ((uint64_t)st.st_size > LM_IMAGE_ACCOUNT_FILE_MAX)
		return lm_err(err, EFBIG, "the image's %s is larger than %zu bytes", path, LM_IMAGE_ACCOUNT_FILE_MAX);
	if (lm_read_fd(fd, LM_IMAGE_ACCOUNT_FILE_MAX, &f->text, NULL, err) < 0) {
		if (err->code == EFBIG)
			return lm_err(err, EFBIG, "the image's %s is larger than %zu bytes", path,
				      LM_IMAGE_ACCOUNT_FILE_MAX);
		return lm_error_prefix(err, "the image's %s", path);
	}
	return 0;
}

/* Split one line (modified in place) into at most max ':'-separated fields;
 * returns how many.  Comments, blank lines and NIS "+"/"-" entries give 0. */
static size_t split_fields(char *line, char **fields, size_t max)
{
	if (!*line || *line == '#' || *line == '+' || *line == '-')
		return 0;
	size_t n = 0;
	char *p = line;
	while (n < max) {
		fields[n++] = p;
		char *c = strchr(p, ':');
		if (!c)
			break;
		*c = '\0';
		p = c + 1;
	}
	return n;
}

/* Walk the lines of a file; cb returns true to stop.  The text is copied so
 * the file can be walked again. */
typedef bool (*line_cb)(char **fields, size_t n, void *ctx);

static int each_line(const struct account_file *f, size_t max_fields, line_cb cb, void *ctx, struct lm_error *err)
{
	if (!f->text)
		return 0;
	autofree char *copy = strdup(f->text);
	if (!copy)
		return lm_err(err, ENOMEM, "out of memory");
	char *save = NULL;
	char *fields[8];
	for (char *line = strtok_r(copy, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		line[strcspn(line, "\r")] = '\0';
		size_t n = split_fields(line, fields, max_fields);
		if (n && cb(fields, n, ctx))
			break;
	}
	return 0;
}

struct pw_query {
	const char *name; /* look up by name, or */
	uint32_t uid;     /* by uid when name is NULL */
	bool found;
	char name_found[256];
	uint32_t uid_found, gid_found;
};

static bool pw_match(char **f, size_t n, void *ctx)
{
	struct pw_query *q = ctx;
	uint32_t uid, gid;
	/* name:password:uid:gid[:gecos:home:shell] */
	if (n < 4 || !*f[0] || strlen(f[0]) >= sizeof(q->name_found) || !field_id(f[2], &uid) ||
	    !field_id(f[3], &gid))
		return false;
	if (q->name ? strcmp(f[0], q->name) != 0 : uid != q->uid)
		return false;
	q->found = true;
	snprintf(q->name_found, sizeof(q->name_found), "%s", f[0]);
	q->uid_found = uid;
	q->gid_found = gid;
	return true;
}

struct gr_query {
	const char *name;    /* a group by name, or */
	const char *member;  /* every group listing this user */
	bool found;
	uint32_t gid;
	uint32_t *gids;
	size_t n_gids;
	bool oom;
};

static bool gr_match(char **f, size_t n, void *ctx)
{
	struct gr_query *q = ctx;
	uint32_t gid;
	/* name:password:gid[:member,member,...] */
	if (n < 3 || !*f[0] || !field_id(f[2], &gid))
		return false;
	if (q->name) {
		if (strcmp(f[0], q->name) != 0)
			return false;
		q->found = true;
		q->gid = gid;
		return true;
	}
	if (n < 4)
		return false;
	bool listed = false;
	char *save = NULL;
	for (char *m = strtok_r(f[3], ",", &save); m && !listed; m = strtok_r(NULL, ",", &save)) {
		while (*m == ' ')
			m++;
		listed = strcmp(m, q->member) == 0;
	}
	if (!listed)
		return false;
	for (size_t i = 0; i < q->n_gids; i++)
		if (q->gids[i] == gid)
			return false;
	if (q->n_gids >= MAX_GROUPS)
		return true;
	uint32_t *ng = realloc(q->gids, (q->n_gids + 1) * sizeof(uint32_t));
	if (!ng) {
		q->oom = true;
		return true;
	}
	q->gids = ng;
	q->gids[q->n_gids++] = gid;
	return false;
}

void lm_user_free(struct lm_user *u)
{
	free(u->additional_gids);
	u->additional_gids = NULL;
	u->n_additional_gids = 0;
}

int lm_image_user_resolve(int rootfd, const char *user, struct lm_user *out, struct lm_error *err)
{
	const char *spec = user && *user ? user : "0";
	const char *colon = strchr(spec, ':');
	size_t ulen = colon ? (size_t)(colon - spec) : strlen(spec);
	const char *group = colon ? colon + 1 : NULL;
	struct account_file passwd = { 0 }, groupf = { 0 };
	struct gr_query gq = { 0 };
	int r = -1;
	autofree char *uname = strndup(spec, ulen);
	if (!uname)
		return lm_err(err, ENOMEM, "out of memory");

	memset(out, 0, sizeof(*out));
	if (ulen == 0 || (group && !*group))
		return lm_err(err, EINVAL, "invalid user \"%s\": expected user[:group]", spec);

	uint32_t uid = 0;
	int numeric = parse_id(spec, ulen, "uid", &uid, err);
	if (numeric < 0)
		return lm_error_prefix(err, "user \"%s\"", spec);
	struct pw_query pq = { .name = numeric ? NULL : uname, .uid = uid };
	/* "uid:gid" is complete as it stands: no file to trust or fail on. */
	if (!(numeric && group)) {
		if (read_account_file(rootfd, "/etc/passwd", &passwd, err) < 0)
			goto out;
		if (each_line(&passwd, 7, pw_match, &pq, err) < 0)
			goto out;
	}
	if (!numeric && !pq.found) {
		if (rootfd < 0)
			lm_err(err, ENOENT, "user \"%s\" cannot be looked up: no image root filesystem given", uname);
		else if (!passwd.text)
			lm_err(err, ENOENT, "user \"%s\" not found: the image has no /etc/passwd", uname);
		else
			lm_err(err, ENOENT, "user \"%s\" not found in the image's /etc/passwd", uname);
		goto out;
	}
	out->uid = pq.found ? pq.uid_found : uid;
	out->gid = pq.found ? pq.gid_found : 0;

	if (group) {
		uint32_t gid = 0;
		int gnum = parse_id(group, strlen(group), "gid", &gid, err);
		if (gnum < 0) {
			lm_error_prefix(err, "user \"%s\"", spec);
			goto out;
		}
		if (gnum) {
			out->gid = gid;
		} else {
			if (read_account_file(rootfd, "/etc/group", &groupf, err) < 0)
				goto out;
			gq.name = group;
			if (each_line(&groupf, 4, gr_match, &gq, err) < 0)
				goto out;
			if (!gq.found) {
				if (!groupf.text)
					lm_err(err, ENOENT, "group \"%s\" not found: the image has no /etc/group", group);
				else
					lm_err(err, ENOENT, "group \"%s\" not found in the image's /etc/group", group);
				goto out;
			}
			out->gid = gq.gid;
		}
	} else if (pq.found) {
		if (read_account_file(rootfd, "/etc/group", &groupf, err) < 0)
			goto out;
		gq.member = pq.name_found;
		if (each_line(&groupf, 4, gr_match, &gq, err) < 0)
			goto out;
		if (gq.oom) {
			lm_err(err, ENOMEM, "out of memory");
			goto out;
		}
		out->additional_gids = steal_ptr(&gq.gids);
		out->n_additional_gids = gq.n_gids;
	}
	r = 0;
out:
	free(gq.gids);
	free(passwd.text);
	free(groupf.text);
	if (r < 0)
		return err->code > 0 ? -err->code : -1;
	return 0;
}
