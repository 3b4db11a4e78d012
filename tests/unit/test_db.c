/* Unit tests for agent/db.c, the agent's SQLite state.
 *
 * Each test works on real database files in a fresh /tmp/lm-db-XXXXXX.
 * What the module claims about the file (WAL journal, schema version,
 * application id) is read back through a separate raw SQLite connection,
 * not through the module.  Durability is checked the hard way: a child
 * process commits and is then killed with SIGKILL, never closing the
 * database, and the parent reopens the file.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "agent/db.h"
#include "testutil.h"

/* ---------------------------------------------------------------- fixture */

static char tmp[64];      /* /tmp/lm-db-XXXXXX */
static char dbpath[128];  /* tmp/agent.db */
static struct lm_db *DB;  /* opened by setup_open, closed by teardown */

static int setup(void **state)
{
	(void)state;
	umask(022);
	DB = NULL;
	if (tu_mkdtemp(tmp, sizeof(tmp), "db") < 0)
		return -1;
	snprintf(dbpath, sizeof(dbpath), "%s/agent.db", tmp);
	return 0;
}

static int setup_open(void **state)
{
	struct lm_error err = {0};
	if (setup(state) < 0)
		return -1;
	if (lm_db_open(dbpath, &DB, &err) < 0) {
		/* cmocka runs no teardown after a failed setup */
		fprintf(stderr, "setup: %s\n", err.msg);
		tu_rm_tree(tmp, 0);
		return -1;
	}
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	lm_db_close(DB);
	DB = NULL;
	umask(022);
	return tu_rm_tree(tmp, 0);
}

/* ---------------------------------------------------------------- helpers */

/* A 64-hex id: the given start, then `fill` repeated. */
static void make_id(char out[65], const char *start, char fill)
{
	size_t n = strlen(start);
	assert_true(n <= 64);
	memcpy(out, start, n);
	memset(out + n, fill, 64 - n);
	out[64] = '\0';
}

/* A container with every field set to something distinct. */
static struct lm_db_container sample(const char *id, const char *name, int64_t created_at)
{
	return (struct lm_db_container){
		.id = (char *)id,
		.name = (char *)name,
		.image = (char *)"docker.io/library/busybox:latest",
		.image_id = (char *)"sha256:1111111111111111111111111111111111111111111111111111111111111111",
		.spec = (char *)"{\"cmd\":[\"sh\"]}",
		.status = (char *)"created",
		.created_at = created_at,
		.exit_code = -1,
		.restart_count = 0,
		.error = NULL,
	};
}

static void assert_str_or_null(const char *got, const char *want)
{
	if (!want) {
		assert_null(got);
	} else {
		assert_non_null(got);
		assert_string_equal(got, want);
	}
}

static void assert_same_container(const struct lm_db_container *got, const struct lm_db_container *want)
{
	assert_string_equal(got->id, want->id);
	assert_string_equal(got->name, want->name);
	assert_str_or_null(got->image, want->image);
	assert_str_or_null(got->image_id, want->image_id);
	assert_str_or_null(got->spec, want->spec);
	assert_string_equal(got->status, want->status);
	assert_str_or_null(got->error, want->error);
	assert_true(got->created_at == want->created_at);
	assert_true(got->started_at == want->started_at);
	assert_true(got->finished_at == want->finished_at);
	assert_int_equal(got->exit_code, want->exit_code);
	assert_int_equal(got->exit_signal, want->exit_signal);
	assert_int_equal(got->oom_killed, want->oom_killed);
	assert_int_equal(got->restart_count, want->restart_count);
	assert_int_equal(got->user_stopped, want->user_stopped);
	assert_true(got->monitor_pid == want->monitor_pid);
	assert_true(got->monitor_start == want->monitor_start);
	assert_true(got->log_dropped == want->log_dropped);
}

/* The name of the container ref finds, or fails the test. */
static void assert_get_name(const char *ref, const char *want_name)
{
	struct lm_error err = {0};
	struct lm_db_container c;
	assert_ok(lm_db_container_get(DB, ref, &c, &err), err);
	assert_string_equal(c.name, want_name);
	lm_db_container_free(&c);
}

static void assert_get_fails(const char *ref, int code, const char *msg_part)
{
	struct lm_error err = {0};
	struct lm_db_container c = {0};
	int r = lm_db_container_get(DB, ref, &c, &err);
	if (r >= 0)
		fail_msg("get %s found %s", ref, c.name);
	assert_int_equal(r, -code);
	assert_int_equal(err.code, code);
	assert_contains(err.msg, msg_part);
	assert_null(c.id); /* untouched on failure */
}

static size_t container_count(void)
{
	struct lm_error err = {0};
	struct lm_db_container *v = NULL;
	size_t n = 0;
	assert_ok(lm_db_container_list(DB, &v, &n, &err), err);
	lm_db_container_list_free(v, n);
	return n;
}

/* One integer from a raw connection to path, as a second program would see it. */
static int64_t raw_int(const char *path, const char *sql)
{
	sqlite3 *h = NULL;
	sqlite3_stmt *st = NULL;
	assert_int_equal(sqlite3_open_v2(path, &h, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_prepare_v2(h, sql, -1, &st, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	int64_t v = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	sqlite3_close(h);
	return v;
}

static void raw_exec(const char *path, const char *sql)
{
	sqlite3 *h = NULL;
	assert_int_equal(sqlite3_open_v2(path, &h, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL), SQLITE_OK);
	char *msg = NULL;
	if (sqlite3_exec(h, sql, NULL, NULL, &msg) != SQLITE_OK)
		fail_msg("%s: %s", sql, msg);
	sqlite3_close(h);
}

static mode_t mode_of(const char *path)
{
	struct stat st;
	if (stat(path, &st) < 0)
		fail_msg("stat %s: %s", path, strerror(errno));
	return st.st_mode & 07777;
}

static struct lm_db_event *events(int64_t after, size_t limit, size_t *n)
{
	struct lm_error err = {0};
	struct lm_db_event *v = NULL;
	assert_ok(lm_db_events_since(DB, after, limit, &v, n, &err), err);
	return v;
}

/* ------------------------------------------------------------------- open */

static void test_open_creates(void **state)
{
	struct lm_error err = {0};
	char id[65], side[160];
	make_id(id, "a", '1');
	/* with no umask, SQLite on its own would make the file 0644 */
	umask(0);
	assert_ok(lm_db_open(dbpath, &DB, &err), err);
	struct lm_db_container c = sample(id, "web", 1);
	assert_ok(lm_db_container_insert(DB, &c, &err), err);

	assert_int_equal(mode_of(dbpath), 0600);
	FMT(side, "%s-wal", dbpath);
	assert_int_equal(mode_of(side), 0600);
	FMT(side, "%s-shm", dbpath);
	assert_int_equal(mode_of(side), 0600);

	/* WAL is a property of the file, seen by any other connection */
	sqlite3 *h = NULL;
	sqlite3_stmt *st = NULL;
	assert_int_equal(sqlite3_open_v2(dbpath, &h, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_prepare_v2(h, "PRAGMA journal_mode", -1, &st, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	assert_string_equal((const char *)sqlite3_column_text(st, 0), "wal");
	sqlite3_finalize(st);
	sqlite3_close(h);
	assert_int_equal(raw_int(dbpath, "PRAGMA user_version"), LM_DB_SCHEMA_VERSION);

	/* reopen: the row is still there, and reopening migrates nothing */
	lm_db_close(DB);
	DB = NULL;
	assert_ok(lm_db_open(dbpath, &DB, &err), err);
	assert_get_name(id, "web");
	assert_int_equal(container_count(), 1);
	assert_int_equal(mode_of(dbpath), 0600);
}

static void test_open_missing_dir(void **state)
{
	struct lm_error err = {0};
	char path[160];
	FMT(path, "%s/no/such/dir/agent.db", tmp);
	assert_int_equal(lm_db_open(path, &DB, &err), -ENOENT);
	assert_null(DB);
	assert_contains(err.msg, path);
}

static void test_open_not_a_database(void **state)
{
	struct lm_error err = {0};
	char garbage[3000], side[160];
	for (size_t i = 0; i < sizeof(garbage); i++)
		garbage[i] = (char)('a' + i % 26);
	tu_write_file(dbpath, garbage, sizeof(garbage), 0640);

	assert_int_equal(lm_db_open(dbpath, &DB, &err), -EINVAL);
	assert_null(DB);
	assert_int_equal(err.code, EINVAL);
	assert_contains(err.msg, dbpath);
	assert_contains(err.msg, "not a lamina database");

	/* untouched: same bytes, same mode, no journal files left behind */
	struct stat st;
	assert_int_equal(stat(dbpath, &st), 0);
	assert_int_equal(st.st_size, sizeof(garbage));
	assert_memory_equal(tu_file_content(dbpath), garbage, sizeof(garbage));
	assert_int_equal(mode_of(dbpath), 0640);
	FMT(side, "%s-wal", dbpath);
	assert_false(tu_exists(side));
	FMT(side, "%s-shm", dbpath);
	assert_false(tu_exists(side));
	FMT(side, "%s-journal", dbpath);
	assert_false(tu_exists(side));
}

static void test_open_other_sqlite_file(void **state)
{
	struct lm_error err = {0};
	raw_exec(dbpath, "CREATE TABLE notes (x TEXT); INSERT INTO notes VALUES ('mine');");
	assert_int_equal(lm_db_open(dbpath, &DB, &err), -EINVAL);
	assert_contains(err.msg, "not a lamina database");
	/* the other program's file is as it was */
	assert_int_equal(raw_int(dbpath, "SELECT count(*) FROM notes"), 1);
	assert_int_equal(raw_int(dbpath, "SELECT count(*) FROM sqlite_master"), 1);
	assert_int_equal(raw_int(dbpath, "PRAGMA user_version"), 0);
}

static void test_open_newer_version(void **state)
{
	struct lm_error err = {0};
	char id[65];
	make_id(id, "b", '2');
	assert_ok(lm_db_open(dbpath, &DB, &err), err);
	struct lm_db_container c = sample(id, "kept", 1);
	assert_ok(lm_db_container_insert(DB, &c, &err), err);
	lm_db_close(DB);
	DB = NULL;

	raw_exec(dbpath, "PRAGMA user_version = 2");
	assert_int_equal(lm_db_open(dbpath, &DB, &err), -ENOTSUP);
	assert_null(DB);
	assert_contains(err.msg, "newer");
	assert_contains(err.msg, "schema version 2");
	/* nothing migrated back or dropped */
	assert_int_equal(raw_int(dbpath, "PRAGMA user_version"), 2);
	assert_int_equal(raw_int(dbpath, "SELECT count(*) FROM containers"), 1);
}

/* A -wal left behind by a database that was then deleted must not be
 * replayed into the new file and bring the old state back.  (SQLite
 * discards a WAL next to an empty file; this pins that down, since
 * lm_db_open relies on it.) */
static void test_open_ignores_stale_wal(void **state)
{
	struct lm_error err = {0};
	char id[65], wal[160], saved[160];
	make_id(id, "c", '3');
	FMT(wal, "%s-wal", dbpath);
	FMT(saved, "%s/saved-wal", tmp);
	assert_ok(lm_db_open(dbpath, &DB, &err), err);
	struct lm_db_container c = sample(id, "ghost", 1);
	assert_ok(lm_db_container_insert(DB, &c, &err), err);
	/* a copy of the WAL while it holds the insert (close would checkpoint it away) */
	assert_int_equal(link(wal, saved), 0);
	lm_db_close(DB);
	DB = NULL;
	assert_int_equal(unlink(dbpath), 0);
	assert_int_equal(rename(saved, wal), 0);

	assert_ok(lm_db_open(dbpath, &DB, &err), err);
	assert_int_equal(container_count(), 0);
}

/* ------------------------------------------------------------- containers */

static void test_get_by_id_name_prefix(void **state)
{
	struct lm_error err = {0};
	char a[65], b[65], f[65], n[65];
	make_id(a, "abc1", '0');
	make_id(b, "abc2", '0');
	make_id(f, "f00d", '9');
	make_id(n, "9", '9');
	struct lm_db_container ca = sample(a, "alpha", 1);
	struct lm_db_container cb = sample(b, "beta", 2);
	struct lm_db_container cf = sample(f, "food", 3);
	/* names that look like ids: exact id beats name, exact name beats prefix */
	struct lm_db_container cn1 = sample(n, a, 4);    /* named like alpha's full id */
	struct lm_db_container cn2 = sample(n, "f00", 5); /* named like food's prefix */
	cn2.id = (char *)"8888888888888888888888888888888888888888888888888888888888888888";
	assert_ok(lm_db_container_insert(DB, &ca, &err), err);
	assert_ok(lm_db_container_insert(DB, &cb, &err), err);
	assert_ok(lm_db_container_insert(DB, &cf, &err), err);
	assert_ok(lm_db_container_insert(DB, &cn1, &err), err);
	assert_ok(lm_db_container_insert(DB, &cn2, &err), err);

	struct lm_db_container got;
	assert_ok(lm_db_container_get(DB, a, &got, &err), err);
	assert_same_container(&got, &ca);
	lm_db_container_free(&got);
	assert_null(got.id);

	assert_get_name(a, "alpha");     /* the id, not cn1's name */
	assert_get_name("beta", "beta"); /* by name */
	assert_get_name("abc1", "alpha"); /* unique prefix */
	assert_get_name("abc2000", "beta");
	assert_get_name("f00d", "food");
	assert_get_name("f00", "f00");    /* the name, not food's prefix */
	assert_get_name("888", "f00");    /* prefix of cn2's id */

	assert_get_fails("abc", EINVAL, "ambiguous");
	assert_get_fails("ab", ENOENT, "no such container: ab"); /* too short, though both match */
	assert_get_fails("f0", ENOENT, "no such container: f0"); /* too short, though unique */
	assert_get_fails("ABC1", ENOENT, "no such container: ABC1"); /* ids are lowercase */
	assert_get_fails("abc3", ENOENT, "no such container: abc3");
	assert_get_fails("nobody", ENOENT, "no such container: nobody");
	assert_get_fails("", ENOENT, "no such container");
	/* a full-length id that does not exist is not a prefix of anything else */
	char missing[65];
	make_id(missing, "abc1", '1');
	assert_get_fails(missing, ENOENT, missing);
}

static void test_insert_duplicates(void **state)
{
	struct lm_error err = {0};
	char a[65], b[65];
	make_id(a, "aa", 'a');
	make_id(b, "bb", 'b');
	struct lm_db_container orig = sample(a, "web", 10);
	assert_ok(lm_db_container_insert(DB, &orig, &err), err);

	struct lm_db_container same_id = sample(a, "other", 20);
	same_id.status = (char *)"running";
	assert_int_equal(lm_db_container_insert(DB, &same_id, &err), -EEXIST);
	assert_int_equal(err.code, EEXIST);
	assert_contains(err.msg, "id");
	assert_contains(err.msg, a);

	struct lm_db_container same_name = sample(b, "web", 30);
	assert_int_equal(lm_db_container_insert(DB, &same_name, &err), -EEXIST);
	assert_int_equal(err.code, EEXIST);
	assert_contains(err.msg, "name \"web\"");
	assert_contains(err.msg, "aaaaaaaaaaaa"); /* who holds it (12 chars of its id) */

	/* nothing changed */
	assert_int_equal(container_count(), 1);
	struct lm_db_container got;
	assert_ok(lm_db_container_get(DB, "web", &got, &err), err);
	assert_same_container(&got, &orig);
	lm_db_container_free(&got);
	assert_get_fails(b, ENOENT, "no such container");
	assert_get_fails("other", ENOENT, "no such container");
}

static void test_insert_invalid(void **state)
{
	struct lm_error err = {0};
	char a[65], upper[65];
	make_id(a, "a", '1');
	make_id(upper, "A", '1');
	struct lm_db_container c = sample("abc", "short-id", 1);
	assert_int_equal(lm_db_container_insert(DB, &c, &err), -EINVAL);
	assert_contains(err.msg, "64 lowercase hex");
	c = sample(upper, "upper-id", 1);
	assert_int_equal(lm_db_container_insert(DB, &c, &err), -EINVAL);
	c = sample(NULL, "no-id", 1);
	assert_int_equal(lm_db_container_insert(DB, &c, &err), -EINVAL);
	c = sample(a, NULL, 1);
	assert_int_equal(lm_db_container_insert(DB, &c, &err), -EINVAL);
	assert_contains(err.msg, "no name");
	c = sample(a, "", 1);
	assert_int_equal(lm_db_container_insert(DB, &c, &err), -EINVAL);
	c = sample(a, "nostatus", 1);
	c.status = NULL;
	assert_int_equal(lm_db_container_insert(DB, &c, &err), -EINVAL);
	assert_contains(err.msg, "no status");
	assert_int_equal(container_count(), 0);
}

static void test_update_round_trip(void **state)
{
	struct lm_error err = {0};
	char a[65], b[65];
	make_id(a, "a", '7');
	make_id(b, "b", '7');
	struct lm_db_container c = sample(a, "web", 100);
	struct lm_db_container other = sample(b, "db", 200);
	assert_ok(lm_db_container_insert(DB, &c, &err), err);
	assert_ok(lm_db_container_insert(DB, &other, &err), err);

	/* every field changes; the optional strings become NULL; extremes of every integer */
	struct lm_db_container u = {
		.id = a,
		.name = (char *)"web-renamed",
		.image = NULL,
		.image_id = NULL,
		.spec = NULL,
		.status = (char *)"exited",
		.created_at = INT64_MAX,
		.started_at = INT64_MIN,
		.finished_at = -1,
		.exit_code = INT_MIN,
		.exit_signal = INT_MAX,
		.oom_killed = true,
		.restart_count = 12345,
		.user_stopped = true,
		.monitor_pid = INT64_MAX,
		.monitor_start = UINT64_MAX,
		.log_dropped = (uint64_t)INT64_MAX + 7,
		.error = NULL,
	};
	assert_ok(lm_db_container_update(DB, &u, &err), err);
	struct lm_db_container got;
	assert_ok(lm_db_container_get(DB, a, &got, &err), err);
	assert_same_container(&got, &u);
	lm_db_container_free(&got);
	assert_get_fails("web", ENOENT, "no such container"); /* the old name is free */

	/* and back from NULL to text, with an error message */
	u.image = (char *)"busybox";
	u.image_id = (char *)"sha256:2222222222222222222222222222222222222222222222222222222222222222";
	u.spec = (char *)"{}";
	u.error = (char *)"exec: no such file";
	u.status = (char *)"lost";
	u.exit_code = 137;
	u.exit_signal = 9;
	u.oom_killed = false;
	u.user_stopped = false;
	u.monitor_pid = 0;
	u.monitor_start = 0;
	u.log_dropped = 0;
	assert_ok(lm_db_container_update(DB, &u, &err), err);
	assert_ok(lm_db_container_get(DB, "web-renamed", &got, &err), err);
	assert_same_container(&got, &u);
	lm_db_container_free(&got);

	/* renaming onto another container's name: EEXIST, nothing changes */
	struct lm_db_container clash = u;
	clash.name = (char *)"db";
	clash.status = (char *)"running";
	assert_int_equal(lm_db_container_update(DB, &clash, &err), -EEXIST);
	assert_contains(err.msg, "name \"db\"");
	assert_ok(lm_db_container_get(DB, a, &got, &err), err);
	assert_same_container(&got, &u);
	lm_db_container_free(&got);
	assert_ok(lm_db_container_get(DB, b, &got, &err), err);
	assert_same_container(&got, &other);
	lm_db_container_free(&got);
}

static void test_update_missing(void **state)
{
	struct lm_error err = {0};
	char a[65];
	make_id(a, "d", 'e');
	struct lm_db_container c = sample(a, "ghost", 1);
	assert_int_equal(lm_db_container_update(DB, &c, &err), -ENOENT);
	assert_int_equal(err.code, ENOENT);
	assert_contains(err.msg, "no such container");
	assert_contains(err.msg, a);
	assert_int_equal(container_count(), 0); /* not an upsert */
}

static void test_list_order(void **state)
{
	struct lm_error err = {0};
	static struct lm_db_container sentinel;
	struct lm_db_container *v = &sentinel;
	size_t n = 99;
	assert_ok(lm_db_container_list(DB, &v, &n, &err), err);
	assert_int_equal(n, 0);
	assert_null(v);

	char ids[5][65];
	const char *names[5] = {"c300", "c100", "c200", "c200-second", "c0"};
	const int64_t created[5] = {300, 100, 200, 200, 0};
	for (int i = 0; i < 5; i++) {
		make_id(ids[i], "", (char)('1' + i));
		struct lm_db_container c = sample(ids[i], names[i], created[i]);
		assert_ok(lm_db_container_insert(DB, &c, &err), err);
	}
	assert_ok(lm_db_container_list(DB, &v, &n, &err), err);
	assert_int_equal(n, 5);
	/* oldest first; the two at 200 in the order they were inserted */
	const char *want[5] = {"c0", "c100", "c200", "c200-second", "c300"};
	for (size_t i = 0; i < n; i++)
		assert_string_equal(v[i].name, want[i]);
	assert_string_equal(v[0].id, ids[4]);
	assert_string_equal(v[1].image, "docker.io/library/busybox:latest");
	lm_db_container_list_free(v, n);
}

static void test_delete(void **state)
{
	struct lm_error err = {0};
	char a[65], b[65];
	make_id(a, "a", '5');
	make_id(b, "b", '5');
	struct lm_db_container ca = sample(a, "one", 1);
	struct lm_db_container cb = sample(b, "two", 2);
	assert_ok(lm_db_container_insert(DB, &ca, &err), err);
	assert_ok(lm_db_container_insert(DB, &cb, &err), err);
	struct lm_db_event e = {.time = 5, .container_id = a, .container_name = (char *)"one", .type = (char *)"destroy"};
	assert_ok(lm_db_event_add(DB, &e, NULL, &err), err);

	/* only by full id */
	assert_int_equal(lm_db_container_delete(DB, "one", &err), -ENOENT);
	assert_int_equal(lm_db_container_delete(DB, "a55", &err), -ENOENT);
	assert_int_equal(container_count(), 2);

	assert_ok(lm_db_container_delete(DB, a, &err), err);
	assert_get_fails(a, ENOENT, "no such container");
	assert_get_fails("one", ENOENT, "no such container");
	assert_get_name(b, "two");
	assert_int_equal(lm_db_container_delete(DB, a, &err), -ENOENT);
	assert_contains(err.msg, "no such container");

	/* the name is free again */
	assert_ok(lm_db_container_insert(DB, &ca, &err), err);

	/* events stay: they are history */
	size_t n = 0;
	struct lm_db_event *v = events(0, 0, &n);
	assert_int_equal(n, 1);
	assert_string_equal(v[0].container_id, a);
	lm_db_events_free(v, n);
}

/* ----------------------------------------------------------------- events */

static void test_events(void **state)
{
	struct lm_error err = {0};
	char a[65];
	make_id(a, "e", '0');
	const char *types[5] = {"create", "start", "die", "restart", "oom"};
	int64_t seq = 0, before = (int64_t)time(NULL) * 1000000000;
	for (int i = 0; i < 5; i++) {
		struct lm_db_event e = {
			.time = i == 1 ? 0 : 1000 + i, /* 0: stamped now */
			.container_id = i == 4 ? NULL : a,
			.container_name = i == 4 ? NULL : (char *)"web",
			.type = (char *)types[i],
			.attrs = i == 2 ? (char *)"{\"exitCode\":3}" : NULL,
			.seq = 999, /* ignored */
		};
		assert_ok(lm_db_event_add(DB, &e, &seq, &err), err);
		assert_true(seq == i + 1);
	}
	struct lm_db_event bad = {.type = NULL};
	assert_int_equal(lm_db_event_add(DB, &bad, NULL, &err), -EINVAL);

	size_t n = 0;
	struct lm_db_event *v = events(0, 0, &n);
	assert_int_equal(n, 5);
	for (size_t i = 0; i < n; i++) {
		assert_true(v[i].seq == (int64_t)i + 1);
		assert_string_equal(v[i].type, types[i]);
	}
	assert_true(v[0].time == 1000);
	assert_true(v[1].time >= before && v[1].time < before + 3600 * 1000000000LL);
	assert_string_equal(v[2].attrs, "{\"exitCode\":3}");
	assert_null(v[0].attrs);
	assert_string_equal(v[3].container_id, a);
	assert_string_equal(v[3].container_name, "web");
	assert_null(v[4].container_id);
	assert_null(v[4].container_name);
	lm_db_events_free(v, n);

	v = events(2, 0, &n);
	assert_int_equal(n, 3);
	assert_true(v[0].seq == 3 && v[2].seq == 5);
	lm_db_events_free(v, n);

	v = events(0, 2, &n);
	assert_int_equal(n, 2);
	assert_true(v[0].seq == 1 && v[1].seq == 2);
	lm_db_events_free(v, n);

	v = events(5, 0, &n);
	assert_int_equal(n, 0);
	lm_db_events_free(v, n);

	/* trim keeps the newest; more than there is removes nothing */
	assert_ok(lm_db_events_trim(DB, 10, &err), err);
	v = events(0, 0, &n);
	assert_int_equal(n, 5);
	lm_db_events_free(v, n);
	assert_ok(lm_db_events_trim(DB, 2, &err), err);
	v = events(0, 0, &n);
	assert_int_equal(n, 2);
	assert_true(v[0].seq == 4 && v[1].seq == 5);
	lm_db_events_free(v, n);

	/* emptied, the log still never hands out a seq twice, even after reopening */
	assert_ok(lm_db_events_trim(DB, 0, &err), err);
	v = events(0, 0, &n);
	assert_int_equal(n, 0);
	lm_db_events_free(v, n);
	struct lm_db_event e = {.type = (char *)"adopt"};
	assert_ok(lm_db_event_add(DB, &e, &seq, &err), err);
	assert_true(seq == 6);
	assert_ok(lm_db_events_trim(DB, 0, &err), err);
	lm_db_close(DB);
	DB = NULL;
	assert_ok(lm_db_open(dbpath, &DB, &err), err);
	assert_ok(lm_db_event_add(DB, &e, &seq, &err), err);
	assert_true(seq == 7);
	v = events(0, 0, &n);
	assert_int_equal(n, 1);
	assert_true(v[0].seq == 7);
	lm_db_events_free(v, n);
}

/* ----------------------------------------------------------- transactions */

static void test_transaction(void **state)
{
	struct lm_error err = {0};
	char a[65], b[65];
	make_id(a, "a", '9');
	make_id(b, "b", '9');
	struct lm_db_container ca = sample(a, "one", 1);
	struct lm_db_container cb = sample(b, "two", 2);
	struct lm_db_event e = {.container_id = a, .type = (char *)"create"};

	assert_ok(lm_db_begin(DB, &err), err);
	assert_ok(lm_db_container_insert(DB, &ca, &err), err);
	assert_ok(lm_db_event_add(DB, &e, NULL, &err), err);
	assert_get_name("one", "one"); /* visible inside */
	assert_int_equal(lm_db_begin(DB, &err), -EINVAL); /* no nesting */
	lm_db_rollback(DB);
	assert_int_equal(container_count(), 0);
	size_t n = 0;
	struct lm_db_event *v = events(0, 0, &n);
	assert_int_equal(n, 0);
	lm_db_events_free(v, n);
	lm_db_rollback(DB); /* none open: harmless */
	assert_int_equal(lm_db_commit(DB, &err), -EINVAL);

	/* a failing step inside leaves the earlier ones to the caller's decision */
	assert_ok(lm_db_begin(DB, &err), err);
	assert_ok(lm_db_container_insert(DB, &ca, &err), err);
	assert_int_equal(lm_db_container_insert(DB, &ca, &err), -EEXIST);
	assert_ok(lm_db_container_insert(DB, &cb, &err), err);
	assert_ok(lm_db_event_add(DB, &e, NULL, &err), err);
	assert_ok(lm_db_commit(DB, &err), err);
	assert_int_equal(container_count(), 2);

	/* committed means on disk for the next opener */
	lm_db_close(DB);
	DB = NULL;
	assert_ok(lm_db_open(dbpath, &DB, &err), err);
	assert_int_equal(container_count(), 2);
	v = events(0, 0, &n);
	assert_int_equal(n, 1);
	lm_db_events_free(v, n);

	/* closing with a transaction open rolls it back */
	assert_ok(lm_db_begin(DB, &err), err);
	assert_ok(lm_db_container_delete(DB, a, &err), err);
	lm_db_close(DB);
	DB = NULL;
	assert_ok(lm_db_open(dbpath, &DB, &err), err);
	assert_get_name(a, "one");
}

/* Another writer holding the lock: begin waits the busy timeout, then EBUSY. */
static void test_busy(void **state)
{
	struct lm_error err = {0};
	sqlite3 *h = NULL;
	assert_int_equal(sqlite3_open_v2(dbpath, &h, SQLITE_OPEN_READWRITE, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_exec(h, "BEGIN IMMEDIATE", NULL, NULL, NULL), SQLITE_OK);

	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	int r = lm_db_begin(DB, &err);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	sqlite3_exec(h, "ROLLBACK", NULL, NULL, NULL);
	sqlite3_close(h);

	assert_int_equal(r, -EBUSY);
	assert_int_equal(err.code, EBUSY);
	assert_contains(err.msg, "locked");
	double waited = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
	assert_true(waited > 4.5 && waited < 30);

	/* once the lock is gone, all is well */
	assert_ok(lm_db_begin(DB, &err), err);
	assert_ok(lm_db_commit(DB, &err), err);
}

/* ------------------------------------------------------------- durability */

/* The child commits one container and one event, starts a second
 * transaction it never commits, tells the parent, and waits to be killed:
 * no close, no checkpoint, no atexit. */
static void child_commit_then_hang(int ready_fd, const char *committed_id, const char *uncommitted_id)
{
	struct lm_error err = {0};
	struct lm_db *db = NULL;
	struct lm_db_container c = sample(committed_id, "survivor", 1);
	struct lm_db_container u = sample(uncommitted_id, "half-done", 2);
	struct lm_db_event e = {.container_id = (char *)committed_id, .type = (char *)"create"};
	if (lm_db_open(dbpath, &db, &err) < 0 || lm_db_begin(db, &err) < 0 ||
	    lm_db_container_insert(db, &c, &err) < 0 || lm_db_event_add(db, &e, NULL, &err) < 0 ||
	    lm_db_commit(db, &err) < 0 || lm_db_begin(db, &err) < 0 || lm_db_container_insert(db, &u, &err) < 0)
		_exit(1);
	if (write(ready_fd, "x", 1) != 1)
		_exit(1);
	for (;;)
		pause();
}

static void test_durable_after_sigkill(void **state)
{
	struct lm_error err = {0};
	char a[65], b[65], wal[160];
	make_id(a, "d", '1');
	make_id(b, "d", '2');
	FMT(wal, "%s-wal", dbpath);
	int fds[2];
	assert_int_equal(pipe2(fds, O_CLOEXEC), 0);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		close(fds[0]);
		child_commit_then_hang(fds[1], a, b);
	}
	close(fds[1]);
	char byte = 0;
	ssize_t got = read(fds[0], &byte, 1);
	close(fds[0]);
	kill(pid, SIGKILL);
	int status = 0;
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_int_equal(got, 1); /* else the child failed before committing */
	assert_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
	/* the commit lives only in the WAL: nothing checkpointed it */
	assert_true(tu_exists(wal));

	assert_ok(lm_db_open(dbpath, &DB, &err), err);
	assert_get_name(a, "survivor");
	assert_get_fails(b, ENOENT, "no such container");
	assert_int_equal(container_count(), 1);
	size_t n = 0;
	struct lm_db_event *v = events(0, 0, &n);
	assert_int_equal(n, 1);
	assert_string_equal(v[0].container_id, a);
	lm_db_events_free(v, n);
}

/* ---------------------------------------------------------------- main */

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_open_creates, setup, teardown),
		cmocka_unit_test_setup_teardown(test_open_missing_dir, setup, teardown),
		cmocka_unit_test_setup_teardown(test_open_not_a_database, setup, teardown),
		cmocka_unit_test_setup_teardown(test_open_other_sqlite_file, setup, teardown),
		cmocka_unit_test_setup_teardown(test_open_newer_version, setup, teardown),
		cmocka_unit_test_setup_teardown(test_open_ignores_stale_wal, setup, teardown),
		cmocka_unit_test_setup_teardown(test_get_by_id_name_prefix, setup_open, teardown),
		cmocka_unit_test_setup_teardown(test_insert_duplicates, setup_open, teardown),
		cmocka_unit_test_setup_teardown(test_insert_invalid, setup_open, teardown),
		cmocka_unit_test_setup_teardown(test_update_round_trip, setup_open, teardown),
		cmocka_unit_test_setup_teardown(test_update_missing, setup_open, teardown),
		cmocka_unit_test_setup_teardown(test_list_order, setup_open, teardown),
		cmocka_unit_test_setup_teardown(test_delete, setup_open, teardown),
		cmocka_unit_test_setup_teardown(test_events, setup_open, teardown),
		cmocka_unit_test_setup_teardown(test_transaction, setup_open, teardown),
		cmocka_unit_test_setup_teardown(test_busy, setup_open, teardown),
		cmocka_unit_test_setup_teardown(test_durable_after_sigkill, setup, teardown),
	};
	return cmocka_run_group_tests_name("db", tests, NULL, NULL);
}
