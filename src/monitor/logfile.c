/* See logfile.h.
 *
 * Writer: each entry is built whole in one buffer and goes out in one
 * write(), so a reader sees half an entry only at the file's current end.
 * Nothing is allocated after open, so feeding cannot fail for want of
 * memory; a failed write drops its entry, and a short one (a disk filling
 * up mid-entry) is cut off again, so the file only ever holds whole entries
 * and the next one does not run into a fragment.  Rotation renames from the
 * oldest name down, so a file only ever moves to a higher index.
 *
 * Reader: holds an fd of the file it reads and knows that file by inode.
 * The writer never writes to a file after renaming it, so once path names
 * another inode, the end of the reader's file is final; the file that comes
 * after it is the one at the index just below wherever its inode now is.
 */
#include "monitor/logfile.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/cleanup.h"

#define NSEC_PER_SEC 1000000000L
/* The time plus " stdout F ". */
#define ENTRY_HEAD_MAX (LM_LOG_TIME_MAX + 10)
/* Far more than the longest entry we write: a line that does not fit is not ours. */
#define READ_BUF_SIZE (64u << 10)
/* A rotation in progress leaves a name missing for a moment: look again, this often, this long apart. */
#define NEXT_TRIES 50
#define NEXT_WAIT_NS 200000L

static const char *const stream_names[] = {"stdout", "stderr"};

/* path itself for k == 0, else path.k.  check_path made sure it fits. */
static void log_name(char *buf, size_t size, const char *path, unsigned k)
{
	if (k == 0)
		snprintf(buf, size, "%s", path);
	else
		snprintf(buf, size, "%s.%u", path, k);
}

static int check_path(const char *path, unsigned max_files, struct lm_error *err)
{
	if (!path || !*path)
		return lm_err(err, EINVAL, "log file: empty path");
	if (max_files > LM_LOG_MAX_FILES_LIMIT)
		return lm_err(err, EINVAL, "log file %s: %u files is more than %u", path, max_files,
			      LM_LOG_MAX_FILES_LIMIT);
	/* Checked once here so that building a rotated name later (while feeding, which cannot fail) always fits. */
	if (strlen(path) + 12 >= PATH_MAX)
		return lm_err(err, ENAMETOOLONG, "log file %.64s...: path too long", path);
	return 0;
}

/* ------------------------------------------------------------------- times */

int lm_log_format_time(const struct timespec *ts, char *buf, size_t len)
{
	struct tm tm;
	if (ts->tv_nsec < 0 || ts->tv_nsec >= NSEC_PER_SEC || !gmtime_r(&ts->tv_sec, &tm))
		return -1;
	if (tm.tm_year < -1900 || tm.tm_year > 9999 - 1900)
		return -1;
	int n = snprintf(buf, len, "%04d-%02d-%02dT%02d:%02d:%02d.%09ldZ", tm.tm_year + 1900,
			 tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (long)ts->tv_nsec);
	if (n < 0 || (size_t)n >= len)
		return -1;
	return n;
}

/* Exactly n decimal digits at s. */
static bool get_digits(const char *s, int n, int *v)
{
	*v = 0;
	for (int i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return false;
		*v = *v * 10 + (s[i] - '0');
	}
	return true;
}

/* RFC 3339 in s[0..len), which need not be NUL-terminated (a log line). */
static int parse_time_n(const char *s, size_t len, struct timespec *ts)
{
	static const int mdays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
	int y, mo, d, h, mi, sec, oh, om;
	if (len < 20 || !get_digits(s, 4, &y) || s[4] != '-' || !get_digits(s + 5, 2, &mo) ||
	    s[7] != '-' || !get_digits(s + 8, 2, &d) || (s[10] != 'T' && s[10] != 't') ||
	    !get_digits(s + 11, 2, &h) || s[13] != ':' || !get_digits(s + 14, 2, &mi) ||
	    s[16] != ':' || !get_digits(s + 17, 2, &sec))
		return -1;
	bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
	/* A leap second (60) is allowed by RFC 3339; it counts as the next second. */
	if (mo < 1 || mo > 12 || d < 1 || d > mdays[mo - 1] + (mo == 2 && leap) || h > 23 ||
	    mi > 59 || sec > 60)
		return -1;
	size_t i = 19;
	long nsec = 0;
	if (s[i] == '.') {
		size_t first = ++i;
		/* The scale reaches 0 after nine digits: further ones are below a nanosecond. */
		for (long scale = NSEC_PER_SEC / 10; i < len && s[i] >= '0' && s[i] <= '9'; i++, scale /= 10)
			nsec += (s[i] - '0') * scale;
		if (i == first)
			return -1;
	}
	long off = 0;
	if (i < len && (s[i] == 'Z' || s[i] == 'z')) {
		i++;
	} else if (len - i >= 6 && (s[i] == '+' || s[i] == '-') && get_digits(s + i + 1, 2, &oh) &&
		   s[i + 3] == ':' && get_digits(s + i + 4, 2, &om) && oh <= 23 && om <= 59) {
		off = (oh * 60L + om) * 60 * (s[i] == '-' ? -1 : 1);
		i += 6;
	} else {
		return -1;
	}
	if (i != len)
		return -1;
	struct tm tm = {.tm_year = y - 1900, .tm_mon = mo - 1, .tm_mday = d,
			.tm_hour = h, .tm_min = mi, .tm_sec = sec};
	ts->tv_sec = timegm(&tm) - off;
	ts->tv_nsec = nsec;
	return 0;
}

int lm_log_parse_time(const char *s, struct timespec *ts, struct lm_error *err)
{
	if (parse_time_n(s, strlen(s), ts) < 0) {
		lm_err(err, EINVAL, "invalid time \"%.64s\": want RFC 3339 such as 2026-11-29T19:12:24Z", s);
		return -1;
	}
	return 0;
}

/* "10s", "1h30m", "1.5h", "250ms": Go's duration syntax without a sign. */
static int parse_duration(const char *s, uint64_t *out)
{
	static const struct { const char *name; uint64_t ns; } units[] = {
		{"ns", 1}, {"us", 1000}, {"ms", 1000000}, {"s", NSEC_PER_SEC},
		{"m", 60ull * NSEC_PER_SEC}, {"h", 3600ull * NSEC_PER_SEC},
	};
	uint64_t total = 0;
	if (!*s)
		return -1;
	while (*s) {
		uint64_t whole = 0, unit = 0;
		const char *p = s, *frac = NULL;
		for (; *p >= '0' && *p <= '9'; p++)
			if (__builtin_mul_overflow(whole, 10, &whole) || __builtin_add_overflow(whole, *p - '0', &whole))
				return -1;
		bool any = p > s;
		if (*p == '.') {
			frac = ++p;
			while (*p >= '0' && *p <= '9')
				p++;
			any = any || p > frac;
		}
		size_t ulen = strcspn(p, "0123456789.");
		for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++)
			if (strlen(units[i].name) == ulen && strncmp(p, units[i].name, ulen) == 0)
				unit = units[i].ns;
		if (!any || !unit)
			return -1;
		uint64_t v;
		if (__builtin_mul_overflow(whole, unit, &v))
			return -1;
		/* Every unit divides by ten exactly down to the nanosecond: no rounding. */
		uint64_t scale = unit;
		for (const char *f = frac; f && *f >= '0' && *f <= '9'; f++)
			if (__builtin_add_overflow(v, (uint64_t)(*f - '0') * (scale /= 10), &v))
				return -1;
		if (__builtin_add_overflow(total, v, &total))
			return -1;
		s = p + ulen;
	}
	*out = total;
	return 0;
}

/* Seconds since the epoch, with an optional fraction. */
static int parse_unix(const char *s, struct timespec *ts)
{
	size_t n = strspn(s, "0123456789");
	if (n == 0 || n > 18)
		return -1;
	const char *frac = s + n;
	size_t fn = 0;
	if (*frac == '.') {
		frac++;
		fn = strspn(frac, "0123456789");
		if (fn == 0)
			return -1;
	}
	if (frac[fn] != '\0')
		return -1;
	ts->tv_sec = (time_t)strtoll(s, NULL, 10);
	ts->tv_nsec = 0;
	for (size_t i = 0, scale = NSEC_PER_SEC / 10; i < fn && scale; i++, scale /= 10)
		ts->tv_nsec += (frac[i] - '0') * (long)scale;
	return 0;
}

int lm_log_parse_since(const char *s, const struct timespec *now, struct timespec *out,
		       struct lm_error *err)
{
	uint64_t d;
	if (parse_unix(s, out) == 0)
		return 0;
	if (strpbrk(s, "-:"))
		return lm_log_parse_time(s, out, err);
	if (parse_duration(s, &d) < 0) {
		lm_err(err, EINVAL, "invalid time \"%.64s\": want RFC 3339, unix seconds or a duration such as 10m",
		       s);
		return -1;
	}
	out->tv_sec = now->tv_sec - (time_t)(d / NSEC_PER_SEC);
	long nsec = now->tv_nsec - (long)(d % NSEC_PER_SEC);
	if (nsec < 0) {
		nsec += NSEC_PER_SEC;
		out->tv_sec--;
	}
	out->tv_nsec = nsec;
	return 0;
}

/* ------------------------------------------------------------------ writer */

struct lm_log_writer {
	char *path;
	int fd;            /* -1 after a failed reopen: the next entry tries again */
	uint64_t size;     /* of the open file, i.e. where the next entry starts */
	uint64_t max_size;
	unsigned max_files;
	uint64_t dropped;
	bool torn;         /* the file ends in half an entry: start the next on a fresh line */
	size_t pend_len[2];
	char pend[2][LM_LOG_LINE_MAX];
	/* One leading byte for the '\n' that closes a torn line. */
	char entry[1 + ENTRY_HEAD_MAX + LM_LOG_LINE_MAX + 1];
};

static int open_current(struct lm_log_writer *w, struct lm_error *err)
{
	/* O_RDWR only to look at the last byte. */
	autofd fd = open(w->path, O_RDWR | O_APPEND | O_CREAT | O_CLOEXEC | O_NOCTTY, 0640);
	if (fd < 0)
		return lm_err_sys(err, "open %s", w->path);
	struct stat st;
	if (fstat(fd, &st) < 0)
		return lm_err_sys(err, "stat %s", w->path);
	if (!S_ISREG(st.st_mode))
		return lm_err(err, EINVAL, "log file %s is not a regular file", w->path);
	char last = '\n';
	if (st.st_size > 0 && pread(fd, &last, 1, st.st_size - 1) < 0)
		return lm_err_sys(err, "read %s", w->path);
	w->size = (uint64_t)st.st_size;
	w->torn = last != '\n';
	w->fd = steal_fd(&fd);
	return 0;
}

/* Errors leave things as they are: appending past max_size loses nothing,
 * and the next entry that does not fit tries again. */
static void rotate(struct lm_log_writer *w)
{
	char from[PATH_MAX], to[PATH_MAX];
	if (w->max_files > 1) {
		for (unsigned k = w->max_files - 1; k >= 2; k--) {
			log_name(from, sizeof(from), w->path, k - 1);
			log_name(to, sizeof(to), w->path, k);
			(void)rename(from, to); /* missing until enough rotations happened */
		}
		log_name(to, sizeof(to), w->path, 1);
		if (rename(w->path, to) < 0 && errno != ENOENT)
			return;
	} else if (unlink(w->path) < 0 && errno != ENOENT) {
		return;
	}
	lm_closep(&w->fd);
	struct lm_error ignored;
	(void)open_current(w, &ignored);
}

static void put_entry(struct lm_log_writer *w, enum lm_log_stream s, bool partial,
		      const char *a, size_t alen, const char *b, size_t blen)
{
	char *start = w->entry + 1, *p = start;
	struct timespec now;
	clock_gettime(CLOCK_REALTIME, &now);
	int tn = lm_log_format_time(&now, p, LM_LOG_TIME_MAX);
	if (tn < 0) { /* a clock past the year 9999 */
		w->dropped++;
		return;
	}
	p += tn;
	p += sprintf(p, " %s %c ", stream_names[s], partial ? 'P' : 'F');
	if (alen) {
		memcpy(p, a, alen);
		p += alen;
	}
	if (blen) {
		memcpy(p, b, blen);
		p += blen;
	}
	*p++ = '\n';
	size_t n = (size_t)(p - start);

	if (w->fd >= 0 && w->size > 0 && w->size + n > w->max_size)
		rotate(w);
	struct lm_error ignored;
	if (w->fd < 0 && open_current(w, &ignored) < 0) {
		w->dropped++;
		return;
	}
	if (w->torn) {
		*--start = '\n';
		n++;
	}
	ssize_t r;
	do
		r = write(w->fd, start, n);
	while (r < 0 && errno == EINTR);
	if (r == (ssize_t)n) {
		w->size += n;
		w->torn = false;
		return;
	}
	w->dropped++;
	if (r > 0 && ftruncate(w->fd, (off_t)w->size) < 0) {
		w->size += (uint64_t)r;
		w->torn = true;
	}
}

void lm_log_writer_feed(struct lm_log_writer *w, enum lm_log_stream s, const char *buf, size_t len)
{
	if ((unsigned)s > LM_LOG_STDERR)
		return;
	char *pend = w->pend[s];
	size_t *plen = &w->pend_len[s];
	while (len > 0) {
		size_t room = LM_LOG_LINE_MAX - *plen;
		/* One byte past room tells a line of exactly LM_LOG_LINE_MAX from a longer one;
		 * looking no further keeps a long line from being searched over and over. */
		const char *nl = memchr(buf, '\n', len <= room ? len : room + 1);
		size_t take;
		if (nl) {
			take = (size_t)(nl - buf);
			put_entry(w, s, false, pend, *plen, buf, take);
			take++;
		} else if (len > room) {
			take = room;
			put_entry(w, s, true, pend, *plen, buf, take);
		} else {
			memcpy(pend + *plen, buf, len);
			*plen += len;
			return;
		}
		*plen = 0;
		buf += take;
		len -= take;
	}
}

void lm_log_writer_end(struct lm_log_writer *w, enum lm_log_stream s)
{
	if ((unsigned)s > LM_LOG_STDERR || w->pend_len[s] == 0)
		return;
	put_entry(w, s, true, w->pend[s], w->pend_len[s], NULL, 0);
	w->pend_len[s] = 0;
}

uint64_t lm_log_writer_dropped(const struct lm_log_writer *w)
{
	return w->dropped;
}

void lm_log_writer_close(struct lm_log_writer *w)
{
	if (!w)
		return;
	lm_log_writer_end(w, LM_LOG_STDOUT);
	lm_log_writer_end(w, LM_LOG_STDERR);
	lm_closep(&w->fd);
	free(w->path);
	free(w);
}

static void writer_freep(struct lm_log_writer **w)
{
	lm_log_writer_close(*w);
}

int lm_log_writer_open(const char *path, const struct lm_log_limits *lim,
		       struct lm_log_writer **out, struct lm_error *err)
{
	__attribute__((cleanup(writer_freep))) struct lm_log_writer *w = NULL;
	unsigned max_files = lim && lim->max_files ? lim->max_files : LM_LOG_DEFAULT_MAX_FILES;
	int r = check_path(path, max_files, err);
	if (r < 0)
		return r;
	w = calloc(1, sizeof(*w));
	if (!w || !(w->path = strdup(path)))
		return lm_err(err, ENOMEM, "out of memory");
	w->fd = -1;
	w->max_size = lim && lim->max_size ? lim->max_size : LM_LOG_DEFAULT_MAX_SIZE;
	w->max_files = max_files;
	r = open_current(w, err);
	if (r < 0)
		return r;
	*out = steal_ptr(&w);
	return 0;
}

/* ------------------------------------------------------------------ reader */

int lm_log_parse_line(const char *line, size_t len, struct lm_log_entry *e, struct lm_error *err)
{
	const char *sp = memchr(line, ' ', len);
	const char *p = sp ? sp + 1 : line;
	size_t rest = sp ? len - (size_t)(p - line) : 0;
	/* "stdout F", then the end or a space and the content (an empty line may lose its space). */
	if (!sp || parse_time_n(line, (size_t)(sp - line), &e->ts) < 0 || rest < 8 || p[6] != ' ' ||
	    (p[7] != 'P' && p[7] != 'F') || (rest > 8 && p[8] != ' ') ||
	    (memcmp(p, "stdout", 6) != 0 && memcmp(p, "stderr", 6) != 0)) {
		lm_err(err, EINVAL, "malformed log line \"%.*s\"", (int)(len < 80 ? len : 80), line);
		return -1;
	}
	e->stream = memcmp(p, "stdout", 6) == 0 ? LM_LOG_STDOUT : LM_LOG_STDERR;
	e->partial = p[7] == 'P';
	e->msg = rest > 8 ? p + 9 : p + 8;
	e->len = rest > 8 ? rest - 9 : 0;
	return 0;
}

struct lm_log_reader {
	char *path;
	unsigned max_files;
	int fd;
	dev_t dev;
	ino_t ino;
	bool retired;    /* path names another file now: the end of ours is final */
	bool discarding; /* inside a line too long for buf: drop it up to its newline */
	uint64_t skipped;
	size_t start, end; /* the unread bytes of buf */
	char buf[READ_BUF_SIZE];
};

static bool is_ours(const struct lm_log_reader *r, const char *name)
{
	struct stat st;
	return stat(name, &st) == 0 && st.st_dev == r->dev && st.st_ino == r->ino;
}

/* Read fd from now on.  An unfinished line of the file left behind can never be completed. */
static int adopt(struct lm_log_reader *r, int *fd, struct lm_error *err)
{
	struct stat st;
	if (fstat(*fd, &st) < 0)
		return lm_err_sys(err, "stat %s", r->path);
	lm_closep(&r->fd);
	r->fd = steal_fd(fd);
	r->dev = st.st_dev;
	r->ino = st.st_ino;
	r->retired = false;
	if (r->end > r->start || r->discarding)
		r->skipped++;
	r->start = r->end = 0;
	r->discarding = false;
	return 0;
}

/* Open the first existing of the names at index from, from-1, ... 0 (oldest first).
 * 1 and *fd, *at set; 0 when there is none; <0 on error. */
static int open_first(const struct lm_log_reader *r, unsigned from, int *fd, unsigned *at,
		      struct lm_error *err)
{
	char name[PATH_MAX];
	for (unsigned k = from + 1; k-- > 0;) {
		log_name(name, sizeof(name), r->path, k);
		*fd = open(name, O_RDONLY | O_CLOEXEC | O_NOCTTY);
		if (*fd >= 0) {
			*at = k;
			return 1;
		}
		if (errno != ENOENT)
			return lm_err_sys(err, "open %s", name);
	}
	return 0;
}

/* Our file is retired: go on with the one the writer started right after it.
 * 0 when moved on, 1 when that file is not there (yet), <0 on error. */
static int move_to_next(struct lm_log_reader *r, struct lm_error *err)
{
	char name[PATH_MAX];
	for (int attempt = 0; attempt < NEXT_TRIES; attempt++) {
		/* Files only move up, as this scan does: it cannot miss ours. */
		unsigned j = 0;
		for (unsigned k = 1; k < r->max_files && !j; k++) {
			log_name(name, sizeof(name), r->path, k);
			if (is_ours(r, name))
				j = k;
		}
		autofd fd = -1;
		unsigned at = 0;
		/* Not found: rotated away unread; all that is left is newer. */
		int found = open_first(r, j ? j - 1 : r->max_files - 1, &fd, &at, err);
		if (found < 0)
			return found;
		/* A gap below ours is a rename in progress, unless it stays (a failed rename). */
		if (found && j && at != j - 1 && attempt < NEXT_TRIES - 1)
			found = 0;
		/* Ours still at j means no rename reached j or below meanwhile: the file
		 * opened is the one that followed ours, not a newer one that moved down. */
		if (found && (j == 0 || is_ours(r, name)))
			return adopt(r, &fd, err);
		if (!found)
			nanosleep(&(struct timespec){0, NEXT_WAIT_NS}, NULL);
	}
	return 1;
}

int lm_log_reader_next(struct lm_log_reader *r, struct lm_log_entry *e, struct lm_error *err)
{
	for (;;) {
		char *line = r->buf + r->start;
		char *nl = memchr(line, '\n', r->end - r->start);
		if (nl) {
			struct lm_error ignored;
			size_t len = (size_t)(nl - line);
			r->start += len + 1;
			if (!r->discarding && lm_log_parse_line(line, len, e, &ignored) == 0)
				return 1;
			r->discarding = false;
			r->skipped++;
			continue;
		}
		if (r->start > 0) {
			memmove(r->buf, line, r->end - r->start);
			r->end -= r->start;
			r->start = 0;
		}
		if (r->end == sizeof(r->buf)) {
			r->discarding = true;
			r->end = 0;
		}
		ssize_t n = read(r->fd, r->buf + r->end, sizeof(r->buf) - r->end);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return lm_err_sys(err, "read %s", r->path);
		if (n > 0) {
			r->end += (size_t)n;
			continue;
		}
		if (!r->retired) {
			if (is_ours(r, r->path))
				return 0;
			/* The writer renamed it: read what it wrote before it did, then move on. */
			r->retired = true;
			continue;
		}
		int m = move_to_next(r, err);
		if (m != 0)
			return m > 0 ? 0 : m;
	}
}

uint64_t lm_log_reader_skipped(const struct lm_log_reader *r)
{
	return r->skipped;
}

void lm_log_reader_close(struct lm_log_reader *r)
{
	if (!r)
		return;
	lm_closep(&r->fd);
	free(r->path);
	free(r);
}

static void reader_freep(struct lm_log_reader **r)
{
	lm_log_reader_close(*r);
}

int lm_log_reader_open(const char *path, unsigned max_files, struct lm_log_reader **out,
		       struct lm_error *err)
{
	__attribute__((cleanup(reader_freep))) struct lm_log_reader *r = NULL;
	char name[PATH_MAX];
	if (max_files == 0)
		max_files = LM_LOG_DEFAULT_MAX_FILES;
	int rc = check_path(path, max_files, err);
	if (rc < 0)
		return rc;
	r = calloc(1, sizeof(*r));
	if (!r || !(r->path = strdup(path)))
		return lm_err(err, ENOMEM, "out of memory");
	r->fd = -1;
	r->max_files = max_files;
	for (int attempt = 0;; attempt++) {
		autofd fd = -1;
		unsigned at = 0;
		rc = open_first(r, max_files - 1, &fd, &at, err);
		if (rc < 0)
			return rc;
		if (rc == 0)
			return lm_err(err, ENOENT, "no log file at %s", path);
		/* Something at the index above, where there was nothing a moment ago, is an
		 * older file that a rotation moved up while we looked: start there. */
		log_name(name, sizeof(name), path, at + 1);
		if (at + 1 < max_files && attempt < NEXT_TRIES && access(name, F_OK) == 0)
			continue;
		rc = adopt(r, &fd, err);
		if (rc < 0)
			return rc;
		break;
	}
	*out = steal_ptr(&r);
	return 0;
}
