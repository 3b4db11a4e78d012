/* Unit tests for the container log files (monitor/logfile.c): the CRI
 * format as written (checked on the raw bytes, not only through the
 * module's own parser), line splitting and partial lines, rotation, the
 * reader across rotated files and while following a writer (in the same
 * thread step by step, and from another thread at full speed), malformed
 * input, the time helpers, and a full disk (a 64 KiB tmpfs).
 *
 * Each test works in a fresh /tmp/lm-logfile-XXXXXX.
 */
#include <pthread.h>
#include <sched.h>
#include <stdlib.h>
#include <sys/mount.h>
#include <time.h>

#include "monitor/logfile.h"
#include "testutil.h"

/* ---------------------------------------------------------------- fixture */

static char tmp[64];     /* /tmp/lm-logfile-XXXXXX */
static char logp[128];   /* tmp/ctr.log */
static char disk[128];   /* tmp/disk, a tmpfs while mounted */
static bool mounted;

/* What a reader returned, copied out (entries are only valid until the next call). */
struct rec {
	struct timespec ts;
	enum lm_log_stream stream;
	bool partial;
	char *msg; /* NUL-terminated copy */
	size_t len;
};
static struct rec *recs;
static size_t nrecs, caprecs;

static void clear_recs(void)
{
	for (size_t i = 0; i < nrecs; i++)
		free(recs[i].msg);
	nrecs = 0;
}

static int setup(void **state)
{
	(void)state;
	umask(022);
	mounted = false;
	if (tu_mkdtemp(tmp, sizeof(tmp), "logfile") < 0)
		return -1;
	snprintf(logp, sizeof(logp), "%s/ctr.log", tmp);
	snprintf(disk, sizeof(disk), "%s/disk", tmp);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	clear_recs();
	free(recs);
	recs = NULL;
	caprecs = 0;
	if (mounted)
		umount2(disk, MNT_DETACH);
	mounted = false;
	if (tmp[0])
		tu_rm_tree(tmp, 0);
	return 0;
}

/* ---------------------------------------------------------------- helpers */

static void add_rec(const struct lm_log_entry *e)
{
	if (nrecs == caprecs) {
		caprecs = caprecs ? caprecs * 2 : 64;
		recs = realloc(recs, caprecs * sizeof(*recs));
		assert_non_null(recs);
	}
	struct rec *r = &recs[nrecs++];
	r->ts = e->ts;
	r->stream = e->stream;
	r->partial = e->partial;
	r->len = e->len;
	r->msg = malloc(e->len + 1);
	assert_non_null(r->msg);
	memcpy(r->msg, e->msg, e->len);
	r->msg[e->len] = '\0';
}

/* Everything the reader has right now; returns how many. */
static size_t drain(struct lm_log_reader *r)
{
	struct lm_error err = {0};
	struct lm_log_entry e;
	size_t n = 0;
	int rc;
	while ((rc = lm_log_reader_next(r, &e, &err)) == 1) {
		add_rec(&e);
		n++;
	}
	assert_ok(rc, err);
	return n;
}

/* A reader of path's files, which must open; recs cleared for it. */
static struct lm_log_reader *open_reader(const char *path, unsigned max_files)
{
	struct lm_error err = {0};
	struct lm_log_reader *r = NULL;
	clear_recs();
	assert_ok(lm_log_reader_open(path, max_files, &r, &err), err);
	return r;
}

/* Closes r, which must have passed over exactly `skipped` malformed lines. */
static void close_reader(struct lm_log_reader *r, uint64_t skipped)
{
	assert_int_equal(lm_log_reader_skipped(r), skipped);
	lm_log_reader_close(r);
}

/* All entries of path's files into recs (cleared first); fails on skipped lines. */
static size_t read_all(const char *path, unsigned max_files)
{
	struct lm_log_reader *r = open_reader(path, max_files);
	size_t n = drain(r);
	close_reader(r, 0);
	return n;
}

static struct lm_log_writer *open_writer(const char *path, uint64_t max_size, unsigned max_files)
{
	struct lm_error err = {0};
	struct lm_log_writer *w = NULL;
	struct lm_log_limits lim = {.max_size = max_size, .max_files = max_files};
	assert_ok(lm_log_writer_open(path, &lim, &w, &err), err);
	return w;
}

static void feed_str(struct lm_log_writer *w, enum lm_log_stream s, const char *str)
{
	lm_log_writer_feed(w, s, str, strlen(str));
}

static void assert_rec(size_t i, enum lm_log_stream s, bool partial, const char *msg, size_t len)
{
	assert_true(i < nrecs);
	assert_int_equal(recs[i].stream, s);
	assert_int_equal(recs[i].partial, partial);
	assert_int_equal(recs[i].len, len);
	assert_memory_equal(recs[i].msg, msg, len);
}

static void assert_rec_str(size_t i, enum lm_log_stream s, bool partial, const char *msg)
{
	assert_rec(i, s, partial, msg, strlen(msg));
}

/* A record as the reader should return it. */
struct want {
	enum lm_log_stream stream;
	bool partial;
	const char *msg;
};

/* Reads logp back (as read_all) and checks that it holds exactly these
 * records, in this order. */
static void expect_log(const struct want *want, size_t n)
{
	assert_int_equal(read_all(logp, 0), n);
	for (size_t i = 0; i < n; i++)
		assert_rec_str(i, want[i].stream, want[i].partial, want[i].msg);
}

#define EXPECT_LOG(...) \
	expect_log((const struct want[]){__VA_ARGS__}, sizeof((const struct want[]){__VA_ARGS__}) / sizeof(struct want))

/* The number after "n=" at the start of record i. */
static long rec_number(size_t i)
{
	long v = -1;
	if (sscanf(recs[i].msg, "n=%ld", &v) != 1)
		fail_msg("record %zu: \"%s\" has no number", i, recs[i].msg);
	return v;
}

static int cmp_ts(const struct timespec *a, const struct timespec *b)
{
	if (a->tv_sec != b->tv_sec)
		return a->tv_sec < b->tv_sec ? -1 : 1;
	return a->tv_nsec < b->tv_nsec ? -1 : a->tv_nsec > b->tv_nsec;
}

static bool all_digits(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (s[i] < '0' || s[i] > '9')
			return false;
	return true;
}

/* Checks the raw bytes of one line against the CRI layout, independently of
 * the module's parser: "YYYY-MM-DDThh:mm:ss.nnnnnnnnnZ <stream> <tag> ". */
static void assert_raw_head(const char *line, const char *stream, char tag)
{
	assert_true(all_digits(line, 4) && line[4] == '-' && all_digits(line + 5, 2) && line[7] == '-' &&
		    all_digits(line + 8, 2) && line[10] == 'T' && all_digits(line + 11, 2) &&
		    line[13] == ':' && all_digits(line + 14, 2) && line[16] == ':' &&
		    all_digits(line + 17, 2) && line[19] == '.' && all_digits(line + 20, 9) &&
		    line[29] == 'Z' && line[30] == ' ');
	assert_memory_equal(line + 31, stream, 6);
	assert_true(line[37] == ' ' && line[38] == tag && line[39] == ' ');
}

/* ---------------------------------------------------------------- writing */

static void test_complete_lines(void **state)
{
	(void)state;
	struct lm_log_writer *w = open_writer(logp, 0, 0);
	feed_str(w, LM_LOG_STDOUT, "hello\nworld\n");
	feed_str(w, LM_LOG_STDERR, "oops\n");
	assert_int_equal(lm_log_writer_dropped(w), 0);
	lm_log_writer_close(w);
	EXPECT_LOG({LM_LOG_STDOUT, false, "hello"}, {LM_LOG_STDOUT, false, "world"}, {LM_LOG_STDERR, false, "oops"});

	struct stat st;
	assert_int_equal(stat(logp, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0640);
}

static void test_split_feeds(void **state)
{
	(void)state;
	struct lm_log_writer *w = open_writer(logp, 0, 0);
	feed_str(w, LM_LOG_STDOUT, "hel");
	/* Nothing is written before the newline arrives. */
	assert_string_equal(tu_file_content(logp), "");
	feed_str(w, LM_LOG_STDOUT, "lo\nwo");
	feed_str(w, LM_LOG_STDOUT, "r");
	feed_str(w, LM_LOG_STDOUT, "ld\n");
	lm_log_writer_close(w);
	EXPECT_LOG({LM_LOG_STDOUT, false, "hello"}, {LM_LOG_STDOUT, false, "world"});
}

static void test_interleaved_partials(void **state)
{
	(void)state;
	struct lm_log_writer *w = open_writer(logp, 0, 0);
	feed_str(w, LM_LOG_STDOUT, "out-a");
	feed_str(w, LM_LOG_STDERR, "err-a");
	feed_str(w, LM_LOG_STDOUT, "-b");
	feed_str(w, LM_LOG_STDERR, "-b\nerr-c");
	feed_str(w, LM_LOG_STDOUT, "-c\n");
	feed_str(w, LM_LOG_STDERR, "\n");
	lm_log_writer_close(w);
	/* In the order the lines were completed, each stream's bytes kept apart. */
	EXPECT_LOG({LM_LOG_STDERR, false, "err-a-b"}, {LM_LOG_STDOUT, false, "out-a-b-c"},
		   {LM_LOG_STDERR, false, "err-c"});
}

/* len bytes of a pattern that shows where a chunk boundary falls. */
static char *pattern(size_t len)
{
	char *p = malloc(len + 1);
	assert_non_null(p);
	for (size_t i = 0; i < len; i++)
		p[i] = (char)('a' + i % 23);
	p[len] = '\n';
	return p;
}

/* Feed buf in pieces of step bytes. */
static void feed_pieces(struct lm_log_writer *w, const char *buf, size_t len, size_t step)
{
	for (size_t off = 0; off < len; off += step)
		lm_log_writer_feed(w, LM_LOG_STDOUT, buf + off, len - off < step ? len - off : step);
}

static void test_long_lines(void **state)
{
	(void)state;
	const size_t M = LM_LOG_LINE_MAX;
	char *p = pattern(2 * M + 5);
	for (size_t step = 1000; step <= 3 * M; step *= 7) {
		clear_recs();
		unlink(logp);
		struct lm_log_writer *w = open_writer(logp, 0, 0);
		/* Exactly the maximum: one F entry. */
		char *exact = pattern(M);
		feed_pieces(w, exact, M + 1, step);
		free(exact);
		/* One byte more: a full P chunk, then F with the byte. */
		char *one_more = pattern(M + 1);
		feed_pieces(w, one_more, M + 2, step);
		free(one_more);
		/* Two chunks and a tail, and two chunks exactly (the F takes the second). */
		feed_pieces(w, p, 2 * M + 6, step);
		char *two = pattern(2 * M);
		feed_pieces(w, two, 2 * M + 1, step);
		free(two);
		lm_log_writer_close(w);

		assert_int_equal(read_all(logp, 0), 8);
		assert_rec(0, LM_LOG_STDOUT, false, p, M);
		assert_rec(1, LM_LOG_STDOUT, true, p, M);
		assert_rec(2, LM_LOG_STDOUT, false, p + M, 1);
		assert_rec(3, LM_LOG_STDOUT, true, p, M);
		assert_rec(4, LM_LOG_STDOUT, true, p + M, M);
		assert_rec(5, LM_LOG_STDOUT, false, p + 2 * M, 5);
		assert_rec(6, LM_LOG_STDOUT, true, p, M);
		assert_rec(7, LM_LOG_STDOUT, false, p + M, M);
	}
	free(p);
}

static void test_empty_lines_and_binary(void **state)
{
	(void)state;
	struct lm_log_writer *w = open_writer(logp, 0, 0);
	lm_log_writer_feed(w, LM_LOG_STDOUT, "\n\n", 2);
	static const char bin[] = "a\0b\rc\x01\xff\r\n";
	lm_log_writer_feed(w, LM_LOG_STDERR, bin, sizeof(bin) - 1);
	lm_log_writer_close(w);

	assert_int_equal(read_all(logp, 0), 3);
	assert_rec(0, LM_LOG_STDOUT, false, "", 0);
	assert_rec(1, LM_LOG_STDOUT, false, "", 0);
	assert_rec(2, LM_LOG_STDERR, false, bin, sizeof(bin) - 2); /* all but the '\n' */

	/* On disk: an empty line still has the space after its tag; the bytes are raw. */
	int fd = open(logp, O_RDONLY | O_CLOEXEC);
	assert_true(fd >= 0);
	char raw[256];
	ssize_t n = read(fd, raw, sizeof(raw));
	close(fd);
	assert_int_equal(n, 41 + 41 + 40 + (ssize_t)sizeof(bin) - 1);
	assert_raw_head(raw, "stdout", 'F');
	assert_int_equal(raw[40], '\n');
	assert_raw_head(raw + 41, "stdout", 'F');
	assert_raw_head(raw + 82, "stderr", 'F');
	assert_memory_equal(raw + 122, bin, sizeof(bin) - 1);
}

static void test_end_of_stream(void **state)
{
	(void)state;
	struct lm_log_writer *w = open_writer(logp, 0, 0);
	feed_str(w, LM_LOG_STDOUT, "done\ntail");
	feed_str(w, LM_LOG_STDERR, "err-tail");
	lm_log_writer_end(w, LM_LOG_STDOUT);
	lm_log_writer_end(w, LM_LOG_STDOUT); /* nothing left: no entry */
	feed_str(w, LM_LOG_STDOUT, "again\n");
	/* close writes what stderr still holds */
	lm_log_writer_close(w);
	EXPECT_LOG({LM_LOG_STDOUT, false, "done"}, {LM_LOG_STDOUT, true, "tail"}, {LM_LOG_STDOUT, false, "again"},
		   {LM_LOG_STDERR, true, "err-tail"});
	assert_contains(tu_file_content(logp), " stdout P tail\n");
}

static void test_timestamps(void **state)
{
	(void)state;
	struct timespec before, after;
	clock_gettime(CLOCK_REALTIME, &before);
	struct lm_log_writer *w = open_writer(logp, 0, 0);
	char line[32];
	for (int i = 0; i < 200; i++) {
		FMT(line, "n=%d\n", i);
		feed_str(w, i % 3 ? LM_LOG_STDOUT : LM_LOG_STDERR, line);
		if (i % 50 == 0)
			nanosleep(&(struct timespec){0, 1000000}, NULL);
	}
	lm_log_writer_close(w);
	clock_gettime(CLOCK_REALTIME, &after);

	assert_int_equal(read_all(logp, 0), 200);
	for (size_t i = 0; i < nrecs; i++) {
		assert_int_equal(rec_number(i), (long)i);
		assert_true(cmp_ts(&recs[i].ts, &before) >= 0);
		assert_true(cmp_ts(&recs[i].ts, &after) <= 0);
		if (i > 0)
			assert_true(cmp_ts(&recs[i - 1].ts, &recs[i].ts) <= 0);
	}
	assert_true(cmp_ts(&recs[0].ts, &recs[199].ts) < 0);

	/* Every raw line has the fixed layout, and its time parses back to what the reader said. */
	const char *raw = tu_file_content(logp);
	size_t i = 0;
	for (const char *l = raw; *l; l = strchr(l, '\n') + 1, i++) {
		assert_raw_head(l, i % 3 ? "stdout" : "stderr", 'F');
		char ts[31];
		memcpy(ts, l, 30);
		ts[30] = '\0';
		struct timespec t;
		struct lm_error err = {0};
		assert_ok(lm_log_parse_time(ts, &t, &err), err);
		assert_int_equal(cmp_ts(&t, &recs[i].ts), 0);
	}
	assert_int_equal(i, 200);
}

static void test_reopen_appends(void **state)
{
	(void)state;
	struct lm_log_writer *w = open_writer(logp, 0, 0);
	feed_str(w, LM_LOG_STDOUT, "first run\n");
	lm_log_writer_close(w);
	w = open_writer(logp, 0, 0);
	feed_str(w, LM_LOG_STDOUT, "second run\n");
	lm_log_writer_close(w);
	EXPECT_LOG({LM_LOG_STDOUT, false, "first run"}, {LM_LOG_STDOUT, false, "second run"});

	/* A crash mid-entry left a fragment: the next entry still gets a line of its own. */
	int fd = open(logp, O_WRONLY | O_APPEND | O_CLOEXEC);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "2026-11-29T19:12:24.1Z stdout F hal", 35), 35);
	close(fd);
	w = open_writer(logp, 0, 0);
	feed_str(w, LM_LOG_STDOUT, "third run\n");
	lm_log_writer_close(w);

	struct lm_log_reader *r = open_reader(logp, 0);
	assert_int_equal(drain(r), 4);
	assert_rec_str(2, LM_LOG_STDOUT, false, "hal"); /* the fragment, now a line */
	assert_rec_str(3, LM_LOG_STDOUT, false, "third run");
	lm_log_reader_close(r);
}

static void test_open_errors(void **state)
{
	(void)state;
	struct lm_error err = {0};
	struct lm_log_writer *w = NULL;
	char p[256];
	FMT(p, "%s/nodir/ctr.log", tmp);
	assert_true(lm_log_writer_open(p, NULL, &w, &err) < 0);
	assert_int_equal(err.code, ENOENT);
	assert_contains(err.msg, p);
	assert_null(w);

	/* A directory is no log file. */
	assert_true(lm_log_writer_open(tmp, NULL, &w, &err) < 0);
	assert_null(w);

	struct lm_log_limits lim = {.max_files = LM_LOG_MAX_FILES_LIMIT + 1};
	assert_true(lm_log_writer_open(logp, &lim, &w, &err) < 0);
	assert_int_equal(err.code, EINVAL);
	assert_false(tu_exists(logp));

	struct lm_log_reader *r = NULL;
	assert_true(lm_log_reader_open(logp, 0, &r, &err) < 0);
	assert_int_equal(err.code, ENOENT);
	assert_null(r);
}

/* --------------------------------------------------------------- rotation */

static uint64_t file_size(const char *path)
{
	struct stat st;
	if (stat(path, &st) < 0)
		fail_msg("stat %s: %s", path, strerror(errno));
	return (uint64_t)st.st_size;
}

/* Lines "n=<i>" padded to 40 bytes of content: entries of 81 bytes. */
static void feed_numbered(struct lm_log_writer *w, long from, long to)
{
	char line[64];
	for (long i = from; i < to; i++) {
		FMT(line, "n=%-38ld\n", i);
		feed_str(w, LM_LOG_STDOUT, line);
	}
}

/* Writes n numbered entries to logp with these limits, starting over in an
 * empty tmp; the number of files they make. */
static int write_numbered(uint64_t max_size, unsigned max_files, long n)
{
	tu_rm_tree(tmp, 0);
	assert_int_equal(mkdir(tmp, 0700), 0);
	struct lm_log_writer *w = open_writer(logp, max_size, max_files);
	feed_numbered(w, 0, n);
	lm_log_writer_close(w);
	return tu_count_entries(tmp);
}

/* logp's k-th rotated file, logp itself for 0 (in a static buffer). */
static const char *log_file(unsigned k)
{
	static char p[256];
	if (k == 0)
		FMT(p, "%s", logp);
	else
		FMT(p, "%s.%u", logp, k);
	return p;
}

static void test_rotation_keeps_all(void **state)
{
	(void)state;
	struct lm_log_writer *w = open_writer(logp, 1000, 100);
	feed_numbered(w, 0, 500);
	assert_int_equal(lm_log_writer_dropped(w), 0);
	lm_log_writer_close(w);

	/* 12 entries of 81 bytes fit in 1000: 500 entries make 42 files. */
	const char *p = NULL;
	size_t in_files = 0;
	for (unsigned k = 0; k < 100; k++) {
		p = log_file(k);
		if (!tu_exists(p))
			break;
		uint64_t sz = file_size(p);
		assert_true(sz <= 1000 && sz > 0 && sz % 81 == 0);
		if (k > 0)
			assert_int_equal(sz, 12 * 81);
		in_files += sz / 81;
	}
	assert_int_equal(in_files, 500);
	assert_true(tu_exists(p) == false);
	assert_true(tu_exists(log_file(41)));
	assert_int_equal(tu_count_entries(tmp), 42);

	/* Read back in order, oldest file first. */
	assert_int_equal(read_all(logp, 100), 500);
	for (size_t i = 0; i < 500; i++)
		assert_int_equal(rec_number(i), (long)i);
}

static void test_rotation_drops_oldest(void **state)
{
	(void)state;
	assert_int_equal(write_numbered(1000, 3, 500), 3);
	assert_int_equal(file_size(log_file(1)), 12 * 81);
	assert_int_equal(file_size(log_file(2)), 12 * 81);
	assert_false(tu_exists(log_file(3)));

	/* What is left is the newest entries, in order, up to the last. */
	size_t n = read_all(logp, 3);
	assert_int_equal(n, 24 + file_size(logp) / 81);
	for (size_t i = 0; i < n; i++)
		assert_int_equal(rec_number(i), (long)(500 - n + i));

	/* max_files 1: no rotated file at all. */
	assert_int_equal(write_numbered(1000, 1, 100), 1);
	n = read_all(logp, 1);
	assert_int_equal(n, 100 - 96);
	assert_int_equal(rec_number(0), 96);

	/* Entries larger than max_size: one to a file, and no empty file rotated. */
	assert_int_equal(write_numbered(50, 10, 3), 3);
	for (unsigned k = 0; k < 3; k++)
		assert_int_equal(file_size(log_file(k)), 81);
	assert_int_equal(read_all(logp, 10), 3);
}

static void test_reader_follows(void **state)
{
	(void)state;
	struct lm_error err = {0};
	struct lm_log_writer *w = open_writer(logp, 700, 3);
	feed_numbered(w, 0, 3);
	struct lm_log_reader *r = open_reader(logp, 3);
	long fed = 3;
	for (long round = 0; fed < 2000; round++) {
		/* 0 to 12 entries between reads: fewer than the 3 files hold (8 each),
		 * so the writer never rotates away a file the reader has not finished. */
		long more = round % 13;
		if (fed + more > 2000)
			more = 2000 - fed;
		feed_numbered(w, fed, fed + more);
		fed += more;
		drain(r);
		assert_int_equal(nrecs, (size_t)fed);
	}
	for (size_t i = 0; i < nrecs; i++)
		assert_int_equal(rec_number(i), (long)i);
	/* At the end of the newest file: nothing, and nothing again. */
	struct lm_log_entry e;
	assert_int_equal(lm_log_reader_next(r, &e, &err), 0);
	assert_int_equal(lm_log_reader_next(r, &e, &err), 0);
	close_reader(r, 0);
	lm_log_writer_close(w);
}

/* The test's own stat() takes the place of libc's for the whole program,
 * the module included: a hook set here runs once, inside the next stat call,
 * so a writer step can land exactly between two steps of the reader. */
static void (*stat_hook)(void);

int stat(const char *restrict path, struct stat *restrict st)
{
	void (*hook)(void) = stat_hook;
	stat_hook = NULL;
	if (hook)
		hook();
	return fstatat(AT_FDCWD, path, st, 0);
}

static struct lm_log_writer *hook_writer;

static void append_and_rotate(void)
{
	feed_numbered(hook_writer, 1, 2); /* still fits: goes to the file the reader is at */
	feed_numbered(hook_writer, 2, 3); /* does not: rotates, then goes to a new file */
}

/* The reader has seen the end of its file; before it looks at path, the
 * writer adds an entry to that file and rotates: the entry is still read,
 * before the new file's. */
static void test_reader_rotation_race(void **state)
{
	(void)state;
	hook_writer = open_writer(logp, 200, 5);
	feed_numbered(hook_writer, 0, 1);
	struct lm_log_reader *r = open_reader(logp, 5);
	assert_int_equal(drain(r), 1);
	stat_hook = append_and_rotate;
	assert_int_equal(drain(r), 2);
	assert_null(stat_hook); /* it ran */
	assert_int_equal(file_size(log_file(1)), 2 * 81);
	assert_int_equal(file_size(logp), 81);
	for (size_t i = 0; i < nrecs; i++)
		assert_int_equal(rec_number(i), (long)i);
	lm_log_reader_close(r);
	lm_log_writer_close(hook_writer);
	hook_writer = NULL;
}

struct bg_writer {
	const char *path;
	long n;
};

static void *bg_write(void *arg)
{
	struct bg_writer *bw = arg;
	struct lm_log_writer *w = NULL;
	struct lm_error err = {0};
	struct lm_log_limits lim = {.max_size = 1024, .max_files = 40};
	if (lm_log_writer_open(bw->path, &lim, &w, &err) < 0)
		return (void *)"open";
	char line[64];
	for (long i = 0; i < bw->n; i++) {
		int len = snprintf(line, sizeof(line), "n=%ld\n", i);
		/* Split some lines across feeds, as pipe reads do. */
		lm_log_writer_feed(w, LM_LOG_STDOUT, line, 2);
		lm_log_writer_feed(w, LM_LOG_STDOUT, line + 2, (size_t)len - 2);
		if (i % 1000 == 0)
			sched_yield();
	}
	void *res = lm_log_writer_dropped(w) ? (void *)"dropped" : NULL;
	lm_log_writer_close(w);
	return res;
}

/* The writer in another thread, rotating every ~60 entries, the reader
 * racing it: every entry read once, in order. */
static void test_reader_follows_thread(void **state)
{
	(void)state;
	/* The reader needs the file to exist before it starts. */
	tu_put_file(logp, "");
	struct bg_writer bw = {.path = logp, .n = 60000};
	struct lm_log_reader *r = open_reader(logp, 40);
	pthread_t th;
	assert_int_equal(pthread_create(&th, NULL, bg_write, &bw), 0);
	struct timespec t0, t;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	do {
		if (drain(r) == 0)
			sched_yield();
		clock_gettime(CLOCK_MONOTONIC, &t);
	} while (nrecs < (size_t)bw.n && t.tv_sec - t0.tv_sec < 60);
	void *res = NULL;
	pthread_join(th, &res);
	drain(r);
	assert_null(res);
	close_reader(r, 0);
	assert_int_equal(nrecs, (size_t)bw.n);
	for (size_t i = 0; i < nrecs; i++)
		if (rec_number(i) != (long)i)
			fail_msg("entry %zu is n=%ld", i, rec_number(i));
}

/* ---------------------------------------------------------------- reading */

static void append_raw(const char *path, const char *data, size_t len)
{
	int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, data, len), (ssize_t)len);
	close(fd);
}

static void append_str(const char *path, const char *s)
{
	append_raw(path, s, strlen(s));
}

static void test_reader_incomplete_line(void **state)
{
	(void)state;
	struct lm_error err = {0};
	struct lm_log_entry e;
	append_str(logp, "2026-11-29T19:12:24.5Z stdout F one\n2026-11-29T19:12:25Z stderr P tw");
	struct lm_log_reader *r = open_reader(logp, 0);
	assert_int_equal(lm_log_reader_next(r, &e, &err), 1);
	assert_int_equal(e.ts.tv_sec, 1795979544);
	assert_int_equal(e.ts.tv_nsec, 500000000);
	assert_int_equal(lm_log_reader_next(r, &e, &err), 0);
	assert_int_equal(lm_log_reader_next(r, &e, &err), 0);
	append_str(logp, "o\n");
	assert_int_equal(lm_log_reader_next(r, &e, &err), 1);
	assert_int_equal(e.stream, LM_LOG_STDERR);
	assert_true(e.partial);
	assert_int_equal(e.len, 3);
	assert_memory_equal(e.msg, "two", 3);
	assert_int_equal(e.ts.tv_sec, 1795979545);
	assert_int_equal(lm_log_reader_next(r, &e, &err), 0);
	close_reader(r, 0);
}

static void test_reader_malformed(void **state)
{
	(void)state;
	char *huge = malloc(200000);
	assert_non_null(huge);
	memset(huge, 'x', 200000);
	append_str(logp, "2026-11-29T19:12:24Z stdout F good-1\n");
	append_str(logp, "garbage\n");
	append_str(logp, "2026-11-29T19:12:24Z stdlog F bad stream\n");
	append_str(logp, "2026-11-29T19:12:24Z stdout X bad tag\n");
	append_str(logp, "2026-13-29T19:12:24Z stdout F bad month\n");
	append_str(logp, "\n");
	append_raw(logp, huge, 200000); /* longer than any entry: more than the reader's buffer */
	append_str(logp, "\n");
	append_str(logp, "2026-11-29T19:12:24Z stdout F good-2\n");
	free(huge);

	struct lm_log_reader *r = open_reader(logp, 0);
	assert_int_equal(drain(r), 2);
	assert_rec_str(0, LM_LOG_STDOUT, false, "good-1");
	assert_rec_str(1, LM_LOG_STDOUT, false, "good-2");
	close_reader(r, 6);
}

/* Files made by hand: a rotated file cut off mid-entry (a crash) ends
 * there; reading goes on in the next file, and the fragment counts as skipped. */
static void test_reader_torn_rotated(void **state)
{
	(void)state;
	append_str(log_file(2), "2026-11-29T19:12:24Z stdout F n=0\n");
	append_str(log_file(1), "2026-11-29T19:12:25Z stdout F n=1\n2026-11-29T19:12:26Z stdout F n=");
	append_str(logp, "2026-11-29T19:12:27Z stdout F n=2\n");

	struct lm_log_reader *r = open_reader(logp, 3);
	assert_int_equal(drain(r), 3);
	for (size_t i = 0; i < nrecs; i++) {
		assert_int_equal(rec_number(i), (long)i);
		assert_int_equal(recs[i].ts.tv_sec, 1795979544 + (i < 2 ? (long)i : 3));
	}
	close_reader(r, 1);
}

/* The writer rotates the reader's file away before it is read to the end:
 * the reader finishes it (it holds it open), then goes on at the oldest file
 * left.  What was rotated away unread is lost, nothing is read twice. */
static void test_reader_overtaken(void **state)
{
	(void)state;
	struct lm_error err = {0};
	struct lm_log_entry e;
	struct lm_log_writer *w = open_writer(logp, 200, 3); /* 2 entries a file */
	feed_numbered(w, 0, 6);
	struct lm_log_reader *r = open_reader(logp, 3);
	assert_int_equal(lm_log_reader_next(r, &e, &err), 1);
	add_rec(&e);
	feed_numbered(w, 6, 12);
	drain(r);
	lm_log_writer_close(w);
	const long want[] = {0, 1, 6, 7, 8, 9, 10, 11};
	assert_int_equal(nrecs, sizeof(want) / sizeof(want[0]));
	for (size_t i = 0; i < nrecs; i++)
		assert_int_equal(rec_number(i), want[i]);
	close_reader(r, 0);
}

/* The parsers under one signature, so that one check serves them all. */
typedef int parse_fn(const char *s, struct timespec *ts, struct lm_error *err);

/* A CRI line's time (the whole string is the line). */
static int parse_line_time(const char *s, struct timespec *ts, struct lm_error *err)
{
	struct lm_log_entry e;
	int rc = lm_log_parse_line(s, strlen(s), &e, err);
	if (rc == 0)
		*ts = e.ts;
	return rc;
}

/* A --since value at a fixed now, 2026-11-29T19:12:24.1Z. */
static const struct timespec since_now = {1795979544, 100000000};

static int parse_since_now(const char *s, struct timespec *ts, struct lm_error *err)
{
	return lm_log_parse_since(s, &since_now, ts, err);
}

/* Each of bad fails with -1 and EINVAL, and a message that contains needle
 * unless that is NULL. */
static void expect_rejected(parse_fn *parse, const char *const *bad, size_t n, const char *needle)
{
	for (size_t i = 0; i < n; i++) {
		struct timespec ts;
		struct lm_error err = {0};
		if (parse(bad[i], &ts, &err) != -1)
			fail_msg("accepted \"%s\"", bad[i]);
		assert_int_equal(err.code, EINVAL);
		if (needle)
			assert_contains(err.msg, needle);
	}
}

static void test_parse_line(void **state)
{
	(void)state;
	struct lm_error err = {0};
	struct lm_log_entry e;
	static const char ok[] = "2026-11-29T19:12:24.123456789Z stderr P a b\0c";
	assert_ok(lm_log_parse_line(ok, sizeof(ok) - 1, &e, &err), err);
	assert_int_equal(e.ts.tv_sec, 1795979544);
	assert_int_equal(e.ts.tv_nsec, 123456789);
	assert_int_equal(e.stream, LM_LOG_STDERR);
	assert_true(e.partial);
	assert_int_equal(e.len, 5);
	assert_memory_equal(e.msg, "a b\0c", 5);

	/* An empty line with or without the space after the tag; an offset time. */
	const char *empty[] = {"2026-11-29T19:12:24Z stdout F ", "2026-11-29T21:12:24+02:00 stdout F"};
	for (size_t i = 0; i < 2; i++) {
		assert_ok(lm_log_parse_line(empty[i], strlen(empty[i]), &e, &err), err);
		assert_int_equal(e.len, 0);
		assert_false(e.partial);
		assert_int_equal(e.stream, LM_LOG_STDOUT);
		assert_int_equal(e.ts.tv_sec, 1795979544);
	}

	static const char *const bad[] = {
		"", "2026-11-29T19:12:24Z", "2026-11-29T19:12:24Z ", "2026-11-29T19:12:24Z stdout",
		"2026-11-29T19:12:24Z stdout F2 x", "2026-11-29T19:12:24Z stdoutF x",
		"2026-11-29T19:12:24Z STDOUT F x", "2026-11-29T19:12:24Z stdout f x",
		"2026-11-29 19:12:24Z stdout F x", "2026-11-29T19:12:24 stdout F x",
		"x 2026-11-29T19:12:24Z stdout F x", "2026-11-29T19:12:24Zstdout F x",
	};
	expect_rejected(parse_line_time, bad, sizeof(bad) / sizeof(bad[0]), NULL);
	/* The length counts, not a NUL: a cut-off line is malformed. */
	assert_int_equal(lm_log_parse_line(ok, 25, &e, &err), -1);
}

/* ------------------------------------------------------------------ times */

static void test_time_round_trip(void **state)
{
	(void)state;
	struct lm_error err = {0};
	const struct timespec cases[] = {
		{0, 0}, {1, 1}, {1795979544, 123456789}, {946684800, 999999999},
		{-1, 500000000}, {253402300799, 999999999}, {-62135596800, 0},
	};
	const char *want[] = {
		"1970-01-01T00:00:00.000000000Z", "1970-01-01T00:00:01.000000001Z",
		"2026-11-29T19:12:24.123456789Z", "2000-01-01T00:00:00.999999999Z",
		"1969-12-31T23:59:59.500000000Z", "9999-12-31T23:59:59.999999999Z",
		"0001-01-01T00:00:00.000000000Z",
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char buf[LM_LOG_TIME_MAX];
		assert_int_equal(lm_log_format_time(&cases[i], buf, sizeof(buf)), 30);
		assert_string_equal(buf, want[i]);
		struct timespec back;
		assert_ok(lm_log_parse_time(buf, &back, &err), err);
		assert_int_equal(back.tv_sec, cases[i].tv_sec);
		assert_int_equal(back.tv_nsec, cases[i].tv_nsec);
	}

	/* Buffer too small, year past 9999, bad nanoseconds. */
	char small[30];
	assert_int_equal(lm_log_format_time(&cases[2], small, sizeof(small)), -1);
	char big[64];
	assert_int_equal(lm_log_format_time(&(struct timespec){253402300800, 0}, big, sizeof(big)), -1);
	assert_int_equal(lm_log_format_time(&(struct timespec){0, 1000000000}, big, sizeof(big)), -1);
	assert_int_equal(lm_log_format_time(&(struct timespec){0, -1}, big, sizeof(big)), -1);
}

/* Times as log entries carry them (lm_log_parse_time) and as --since takes
 * them (lm_log_parse_since, at since_now). */
static void test_parse_times(void **state)
{
	(void)state;
	static const struct {
		parse_fn *parse;
		const char *s;
		long long sec;
		long nsec;
	} good[] = {
		{lm_log_parse_time, "2026-11-29T19:12:24Z", 1795979544, 0},
		{lm_log_parse_time, "2026-11-29t19:12:24z", 1795979544, 0},
		{lm_log_parse_time, "2026-11-29T19:12:24.5Z", 1795979544, 500000000},
		{lm_log_parse_time, "2026-11-29T19:12:24.000000001Z", 1795979544, 1},
		{lm_log_parse_time, "2026-11-29T19:12:24.1234567891234Z", 1795979544, 123456789},
		{lm_log_parse_time, "2026-11-29T21:42:24+02:30", 1795979544, 0},
		{lm_log_parse_time, "2026-11-29T14:12:24.25-05:00", 1795979544, 250000000},
		{lm_log_parse_time, "2026-11-29T19:12:24+00:00", 1795979544, 0},
		{lm_log_parse_time, "2024-02-29T00:00:00Z", 1709164800, 0},
		{lm_log_parse_time, "2000-02-29T00:00:00Z", 951782400, 0},
		{lm_log_parse_time, "1970-01-01T00:00:00Z", 0, 0},
		{lm_log_parse_time, "2026-11-29T19:12:60Z", 1795979544 + 36, 0}, /* a leap second: the next one */
		{parse_since_now, "10s", 1795979534, 100000000},
		{parse_since_now, "5m", 1795979244, 100000000},
		{parse_since_now, "2h", 1795972344, 100000000},
		{parse_since_now, "1h30m", 1795974144, 100000000},
		{parse_since_now, "1.5h", 1795974144, 100000000},
		{parse_since_now, "1h0.5m10s", 1795975904, 100000000},
		{parse_since_now, "250ms", 1795979543, 850000000},
		{parse_since_now, "100ms", 1795979544, 0},
		{parse_since_now, "1us", 1795979544, 99999000},
		{parse_since_now, "3ns", 1795979544, 99999997},
		{parse_since_now, ".5s", 1795979543, 600000000},
		{parse_since_now, "0s", 1795979544, 100000000},
		{parse_since_now, "1700000000", 1700000000, 0},
		{parse_since_now, "1700000000.25", 1700000000, 250000000},
		{parse_since_now, "0", 0, 0},
		{parse_since_now, "2026-11-29T19:12:24.5Z", 1795979544, 500000000},
		{parse_since_now, "2026-11-29T20:12:24+01:00", 1795979544, 0},
	};
	struct lm_error err = {0};
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		struct timespec ts = {-7, -7};
		if (good[i].parse(good[i].s, &ts, &err) != 0)
			fail_msg("%s: %s", good[i].s, err.msg);
		if (ts.tv_sec != good[i].sec || ts.tv_nsec != good[i].nsec)
			fail_msg("%s: %lld.%09ld", good[i].s, (long long)ts.tv_sec, (long)ts.tv_nsec);
	}

	static const char *const bad_time[] = {
		"", "2026", "2026-11-29", "2026-11-29T19:12:24", "2026-11-29T19:12Z",
		"2026-11-29 19:12:24Z", "2026-11-29T19:12:24.Z", "2026-11-29T19:12:24Zx",
		"2026-13-01T00:00:00Z", "2026-00-01T00:00:00Z", "2026-11-31T00:00:00Z",
		"2026-11-00T00:00:00Z", "2023-02-29T00:00:00Z", "1900-02-29T00:00:00Z",
		"2026-11-29T24:00:00Z", "2026-11-29T19:60:00Z", "2026-11-29T19:12:61Z",
		"2026-11-29T19:12:24+2:00", "2026-11-29T19:12:24+02", "2026-11-29T19:12:24+24:00",
		"2026-11-29T19:12:24+02:60", "2026-11-29T19:12:24+0200", "+026-11-29T19:12:24Z",
		"2026-1a-29T19:12:24Z", " 2026-11-29T19:12:24Z", "2026-11-29T19:12:24.5.5Z",
	};
	expect_rejected(lm_log_parse_time, bad_time, sizeof(bad_time) / sizeof(bad_time[0]), "invalid time");
	static const char *const bad_since[] = {
		"", "x", "10x", "h", "1h30", "-5m", "1e9", "5 m", "5m ", "1..5h", "5M", ".s",
		"1700000000.", "99999999999999999999h", "2026-11-29", "m5", "18446744073709551615ns1ns",
	};
	expect_rejected(parse_since_now, bad_since, sizeof(bad_since) / sizeof(bad_since[0]), NULL);
}

/* -------------------------------------------------------------- full disk */

static void test_full_disk(void **state)
{
	(void)state;
	tu_mkdirs(disk);
	if (mount("tmpfs", disk, "tmpfs", 0, "size=64k") < 0) {
		if (errno == EPERM && geteuid() != 0)
			skip();
		fail_msg("mount tmpfs: %s", strerror(errno));
	}
	mounted = true;
	char path[256], rotated[256];
	FMT(path, "%s/ctr.log", disk);
	FMT(rotated, "%s.1", path);

	/* 16 pages: path.1 takes 10 (40000 bytes), path gets 6 and then the disk is full. */
	struct lm_log_writer *w = open_writer(path, 40000, 2);
	char content[191];
	memset(content, 'z', 190);
	content[190] = '\0';
	char line[256];
	const long fed = 600;
	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (long i = 0; i < fed; i++) {
		FMT(line, "n=%-8ld%s\n", i, content); /* 200 bytes: entries of 241 */
		feed_str(w, i % 2 ? LM_LOG_STDOUT : LM_LOG_STDERR, line);
	}
	clock_gettime(CLOCK_MONOTONIC, &t1);
	assert_true(t1.tv_sec - t0.tv_sec < 5); /* never blocked */
	uint64_t dropped = lm_log_writer_dropped(w);
	assert_true(dropped > 0);
	assert_true(tu_exists(rotated));

	/* Whole entries only (a write cut short was taken back), and all of them accounted for. */
	size_t n = read_all(path, 2);
	assert_true(n > 0);
	assert_int_equal(n + dropped, (size_t)fed);
	assert_int_equal(file_size(path) % 241, 0);
	for (size_t i = 1; i < n; i++)
		assert_true(rec_number(i) > rec_number(i - 1));
	assert_int_equal(rec_number(0), 0);

	/* Still full: another entry of the size that did not fit is dropped too. */
	FMT(line, "n=%-8d%s\n", -1, content);
	feed_str(w, LM_LOG_STDOUT, line);
	assert_int_equal(lm_log_writer_dropped(w), dropped + 1);
	dropped++;

	/* Room again: writing resumes, nothing more dropped. */
	assert_int_equal(unlink(rotated), 0);
	for (long i = 0; i < 10; i++) {
		FMT(line, "n=%ld after\n", fed + i);
		feed_str(w, LM_LOG_STDOUT, line);
	}
	assert_int_equal(lm_log_writer_dropped(w), dropped);
	lm_log_writer_close(w);
	size_t m = read_all(path, 2);
	assert_true(m >= 10);
	for (long i = 0; i < 10; i++) {
		char want[32];
		FMT(want, "n=%ld after", fed + i);
		assert_string_equal(recs[m - 10 + (size_t)i].msg, want);
	}

	assert_int_equal(umount2(disk, 0), 0);
	mounted = false;
}

/* ---------------------------------------------------------------- main */

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_complete_lines, setup, teardown),
		cmocka_unit_test_setup_teardown(test_split_feeds, setup, teardown),
		cmocka_unit_test_setup_teardown(test_interleaved_partials, setup, teardown),
		cmocka_unit_test_setup_teardown(test_long_lines, setup, teardown),
		cmocka_unit_test_setup_teardown(test_empty_lines_and_binary, setup, teardown),
		cmocka_unit_test_setup_teardown(test_end_of_stream, setup, teardown),
		cmocka_unit_test_setup_teardown(test_timestamps, setup, teardown),
		cmocka_unit_test_setup_teardown(test_reopen_appends, setup, teardown),
		cmocka_unit_test_setup_teardown(test_open_errors, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rotation_keeps_all, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rotation_drops_oldest, setup, teardown),
		cmocka_unit_test_setup_teardown(test_reader_follows, setup, teardown),
		cmocka_unit_test_setup_teardown(test_reader_rotation_race, setup, teardown),
		cmocka_unit_test_setup_teardown(test_reader_follows_thread, setup, teardown),
		cmocka_unit_test_setup_teardown(test_reader_incomplete_line, setup, teardown),
		cmocka_unit_test_setup_teardown(test_reader_malformed, setup, teardown),
		cmocka_unit_test_setup_teardown(test_reader_torn_rotated, setup, teardown),
		cmocka_unit_test_setup_teardown(test_reader_overtaken, setup, teardown),
		cmocka_unit_test_setup_teardown(test_parse_line, setup, teardown),
		cmocka_unit_test_setup_teardown(test_time_round_trip, setup, teardown),
		cmocka_unit_test_setup_teardown(test_parse_times, setup, teardown),
		cmocka_unit_test_setup_teardown(test_full_disk, setup, teardown),
	};
	return cmocka_run_group_tests_name("logfile", tests, NULL, NULL);
}
