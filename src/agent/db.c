/* See db.h.
 *
 * Design:
 *  - The file's identity is checked before anything is written to it: a
 *    lamina database carries application_id "LMNA"; a file with no id, no
 *    version and no tables is new; anything else is refused as it is.
 *  - The schema grows by migrations, one per version, run in one transaction
 *    together with the user_version bump, so a crash mid-migration leaves the
 *    old version intact.
 *  - Every statement is prepared once at open, so a mistake in any SQL text
 *    fails every open rather than one rare path.  Each use resets its
 *    statement when the scope ends (autostmt): a statement left mid-step
 *    would hold a read transaction open and keep the WAL from being
 *    checkpointed.
 *  - Values are always bound, never spliced into SQL.  Text is bound
 *    SQLITE_STATIC: the caller's strings outlive the step, and the reset
 *    clears the bindings before the statement is used again.
 *  - SQLite's INTEGER is signed 64-bit: the uint64 fields are stored as their
 *    bit pattern, which round-trips; nothing orders or compares them in SQL.
 *  - We create the file ourselves with mode 0600: SQLite would create it
 *    0644 (less umask), and it gives the -wal and -shm files the main file's
 *    mode, so that one mode covers all three.
 */
#include "agent/db.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "util/cleanup.h"

/* "LMNA": tells our file from any other SQLite file. */
#define LAMINA_APP_ID 0x4c4d4e41
#define STR_(x) #x
#define STR(x) STR_(x)
#define BUSY_TIMEOUT_MS 5000
#define ID_LEN 64
#define MIN_PREFIX 3

/* migrations[v] brings a database from version v to v + 1, and says so. */
static const char *const migrations[] = {
	"CREATE TABLE containers ("
	" id TEXT NOT NULL PRIMARY KEY,"
	" name TEXT NOT NULL UNIQUE,"
	" image TEXT, image_id TEXT, spec TEXT,"
	" status TEXT NOT NULL,"
	" error TEXT,"
	" created_at INTEGER NOT NULL, started_at INTEGER NOT NULL, finished_at INTEGER NOT NULL,"
	" exit_code INTEGER NOT NULL, exit_signal INTEGER NOT NULL, oom_killed INTEGER NOT NULL,"
	" restart_count INTEGER NOT NULL, user_stopped INTEGER NOT NULL,"
	" monitor_pid INTEGER NOT NULL, monitor_start INTEGER NOT NULL, log_dropped INTEGER NOT NULL"
	") STRICT;"
	/* AUTOINCREMENT: a plain rowid may reuse the largest seq after it is
	 * deleted, and a client following the log would then miss events. */
	"CREATE TABLE events ("
	" seq INTEGER PRIMARY KEY AUTOINCREMENT,"
	" time INTEGER NOT NULL,"
	" container_id TEXT, container_name TEXT,"
	" type TEXT NOT NULL,"
	" attrs TEXT"
	") STRICT;"
	"PRAGMA application_id = " STR(LAMINA_APP_ID) ";"
	"PRAGMA user_version = 1;",
};
_Static_assert(sizeof(migrations) / sizeof(migrations[0]) == LM_DB_SCHEMA_VERSION,
	       "one migration per schema version");

/* Seven text columns, then eleven integers: the order bind_container and
 * read_container rely on. */
#define CONTAINER_COLUMNS                                                                          \
	"id, name, image, image_id, spec, status, error, created_at, started_at, finished_at, "    \
	"exit_code, exit_signal, oom_killed, restart_count, user_stopped, monitor_pid, "            \
	"monitor_start, log_dropped"
#define TEXT_COLUMNS 7
#define INT_COLUMNS 11
#define SELECT_CONTAINERS "SELECT " CONTAINER_COLUMNS " FROM containers "
#define EVENT_COLUMNS "seq, time, container_id, container_name, type, attrs"

enum query {
	Q_INSERT,
	Q_UPDATE,
	Q_BY_ID,
	Q_BY_NAME,
	Q_BY_PREFIX,
	Q_LIST,
	Q_DELETE,
	Q_NAME_OWNER,
	Q_EVENT_ADD,
	Q_EVENTS_SINCE,
	Q_EVENTS_TRIM,
	Q_COUNT,
};

static const char *const query_sql[Q_COUNT] = {
	[Q_INSERT] = "INSERT INTO containers (" CONTAINER_COLUMNS ") VALUES "
		     "(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18)",
	[Q_UPDATE] = "UPDATE containers SET name = ?2, image = ?3, image_id = ?4, spec = ?5, "
		     "status = ?6, error = ?7, created_at = ?8, started_at = ?9, finished_at = ?10, "
		     "exit_code = ?11, exit_signal = ?12, oom_killed = ?13, restart_count = ?14, "
		     "user_stopped = ?15, monitor_pid = ?16, monitor_start = ?17, log_dropped = ?18 "
		     "WHERE id = ?1",
	[Q_BY_ID] = SELECT_CONTAINERS "WHERE id = ?1",
	[Q_BY_NAME] = SELECT_CONTAINERS "WHERE name = ?1",
	/* Ids are lowercase hex and 'g' sorts after every hex digit, so
	 * [p, p + "g") holds exactly the ids starting with p, and the primary
	 * key's index answers it.  Two rows are enough to call it ambiguous. */
	[Q_BY_PREFIX] = SELECT_CONTAINERS "WHERE id >= ?1 AND id < ?2 ORDER BY id LIMIT 2",
	[Q_LIST] = SELECT_CONTAINERS "ORDER BY created_at, rowid",
	[Q_DELETE] = "DELETE FROM containers WHERE id = ?1",
	[Q_NAME_OWNER] = "SELECT id FROM containers WHERE name = ?1",
	[Q_EVENT_ADD] = "INSERT INTO events (time, container_id, container_name, type, attrs) "
			"VALUES (?1, ?2, ?3, ?4, ?5)",
	[Q_EVENTS_SINCE] = "SELECT " EVENT_COLUMNS " FROM events WHERE seq > ?1 ORDER BY seq LIMIT ?2",
	/* The (keep+1)-th newest and everything older go; with fewer events
	 * the subquery is NULL and nothing does (seqs start at 1). */
	[Q_EVENTS_TRIM] = "DELETE FROM events WHERE seq <= "
			  "coalesce((SELECT seq FROM events ORDER BY seq DESC LIMIT 1 OFFSET ?1), 0)",
};

struct lm_db {
	sqlite3 *h;
	char *path;
	sqlite3_stmt *q[Q_COUNT];
};

/* ---------------------------------------------------------------- helpers */

static void stmt_donep(sqlite3_stmt **st)
{
	if (*st) {
		sqlite3_reset(*st);
		sqlite3_clear_bindings(*st);
	}
}

static void stmt_finalizep(sqlite3_stmt **st)
{
	sqlite3_finalize(*st);
	*st = NULL;
}

/* A cached statement, reset when the scope ends. */
#define autostmt __attribute__((cleanup(stmt_donep))) sqlite3_stmt *
/* A one-off statement, finalized when the scope ends. */
#define autofinal __attribute__((cleanup(stmt_finalizep))) sqlite3_stmt *

static int sqlite_errno(int rc, int sys)
{
	switch (rc & 0xff) {
	case SQLITE_CONSTRAINT:
		/* only a taken key is "exists"; NOT NULL, CHECK and the like are bad input */
		return rc == SQLITE_CONSTRAINT_PRIMARYKEY || rc == SQLITE_CONSTRAINT_UNIQUE ? EEXIST : EINVAL;
	case SQLITE_BUSY:
	case SQLITE_LOCKED:
		return EBUSY;
	case SQLITE_CORRUPT:
	case SQLITE_NOTADB:
	case SQLITE_ERROR:
	case SQLITE_MISUSE:
	case SQLITE_RANGE:
	case SQLITE_MISMATCH:
		return EINVAL;
	case SQLITE_FULL:
		return ENOSPC;
	case SQLITE_NOMEM:
		return ENOMEM;
	case SQLITE_TOOBIG:
		return E2BIG;
	case SQLITE_READONLY:
	case SQLITE_PERM:
	case SQLITE_AUTH:
		return EACCES;
	case SQLITE_CANTOPEN:
		return sys > 0 ? sys : EACCES;
	default: /* SQLITE_IOERR, SQLITE_PROTOCOL, ... */
		return EIO;
	}
}

/* "<context>: <what SQLite said>", with rc mapped to an errno.  Must be
 * called before anything else runs on the connection, which would replace
 * SQLite's message. */
static int db_fail(struct lm_db *db, int rc, struct lm_error *err, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
static int db_fail(struct lm_db *db, int rc, struct lm_error *err, const char *fmt, ...)
{
	char ctx[LM_ERROR_MSG_MAX];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(ctx, sizeof(ctx), fmt, ap);
	va_end(ap);
	const char *sep = ctx[0] ? ": " : "";
	const char *what = db->h ? sqlite3_errmsg(db->h) : sqlite3_errstr(rc);
	int code = sqlite_errno(rc, db->h ? sqlite3_system_errno(db->h) : 0);
	if ((rc & 0xff) == SQLITE_NOTADB)
		return lm_err(err, code, "%s%snot a lamina database (%s)", ctx, sep, what);
	if ((rc & 0xff) == SQLITE_CORRUPT)
		return lm_err(err, code, "%s%sdatabase %s is damaged (%s)", ctx, sep, db->path, what);
	return lm_err(err, code, "%s%s%s", ctx, sep, what);
}

static int no_memory(struct lm_error *err, const char *what)
{
	return lm_err(err, ENOMEM, "%s: out of memory", what);
}

static bool is_lower_hex(const char *s, size_t *len)
{
	size_t n = 0;
	for (; s[n]; n++)
		if (!((s[n] >= '0' && s[n] <= '9') || (s[n] >= 'a' && s[n] <= 'f')))
			return false;
	*len = n;
	return true;
}

/* A NULL column stays NULL; -1 only when out of memory. */
static int read_text(sqlite3_stmt *st, int col, char **out)
{
	*out = NULL;
	if (sqlite3_column_type(st, col) == SQLITE_NULL)
		return 0;
	const char *s = (const char *)sqlite3_column_text(st, col);
	if (s)
		*out = strdup(s);
	return *out ? 0 : -1;
}

static int bind_text(sqlite3_stmt *st, int i, const char *s)
{
	/* a NULL pointer binds SQL NULL */
	return sqlite3_bind_text(st, i, s, -1, SQLITE_STATIC);
}

/* Room in *(T **)vp for element n; false when out of memory. */
static bool reserve(void *vp, size_t *cap, size_t n, size_t size)
{
	void **v = vp;
	if (n < *cap)
		return true;
	size_t ncap = *cap ? *cap * 2 : 16;
	void *grown = reallocarray(*v, ncap, size);
	if (!grown)
		return false;
	*v = grown;
	*cap = ncap;
	return true;
}

static int64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* Runs a constant one-row query and leaves the statement on that row. */
static int one_row(struct lm_db *db, const char *sql, sqlite3_stmt **st, struct lm_error *err)
{
	int rc = sqlite3_prepare_v2(db->h, sql, -1, st, NULL);
	if (rc == SQLITE_OK)
		rc = sqlite3_step(*st);
	if (rc == SQLITE_ROW)
		return 0;
	if (rc == SQLITE_DONE)
		return lm_err(err, EIO, "%s returned no row", sql);
	return db_fail(db, rc, err, "%s", "");
}

static int query_int(struct lm_db *db, const char *sql, int64_t *out, struct lm_error *err)
{
	autofinal st = NULL;
	int r = one_row(db, sql, &st, err);
	if (r < 0)
		return r;
	*out = sqlite3_column_int64(st, 0);
	return 0;
}

static int exec(struct lm_db *db, const char *sql, struct lm_error *err, const char *what)
{
	int rc = sqlite3_exec(db->h, sql, NULL, NULL, NULL);
	return rc == SQLITE_OK ? 0 : db_fail(db, rc, err, "%s", what);
}

/* ------------------------------------------------------------ open, close */

/* Creates the file 0600 when missing; *created says whether we did. */
static int create_file(const char *path, bool *created, struct lm_error *err)
{
	autofd fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0)
		return errno == EEXIST ? 0 : lm_err_sys(err, "create");
	*created = true;
	/* the umask may have taken bits away: make it exactly what the agent needs */
	if (fchmod(fd, 0600) < 0) {
		int r = lm_err_sys(err, "chmod");
		unlink(path);
		return r;
	}
	/* A -wal or -journal left by a deleted database is not replayed into
	 * this empty file: SQLite discards them next to a zero-length file. */
	return 0;
}

static int configure(struct lm_db *db, struct lm_error *err)
{
	int fkeys = 0;
	sqlite3_extended_result_codes(db->h, 1);
	sqlite3_busy_timeout(db->h, BUSY_TIMEOUT_MS);
	/* Defensive: SQL cannot corrupt the file (writable_schema and the
	 * like); untrusted schema: the file's own views and triggers cannot
	 * call functions with side effects. */
	if (sqlite3_db_config(db->h, SQLITE_DBCONFIG_DEFENSIVE, 1, NULL) != SQLITE_OK ||
	    sqlite3_db_config(db->h, SQLITE_DBCONFIG_TRUSTED_SCHEMA, 0, NULL) != SQLITE_OK ||
	    sqlite3_db_config(db->h, SQLITE_DBCONFIG_ENABLE_FKEY, 1, &fkeys) != SQLITE_OK)
		return db_fail(db, sqlite3_errcode(db->h), err, "configure");
	if (!fkeys)
		return lm_err(err, ENOTSUP, "this SQLite cannot enforce foreign keys");
	return 0;
}

/* Reads, without writing anything, whether the file is ours and its schema
 * version. */
static int identify(struct lm_db *db, int64_t *version, struct lm_error *err)
{
	int64_t app = 0, objects = 0;
	int r = query_int(db, "PRAGMA application_id", &app, err);
	if (r == 0)
		r = query_int(db, "PRAGMA user_version", version, err);
	if (r == 0)
		r = query_int(db, "SELECT count(*) FROM sqlite_master", &objects, err);
	if (r < 0)
		return r;
	bool fresh = app == 0 && *version == 0 && objects == 0;
	if (app != LAMINA_APP_ID && !fresh)
		return lm_err(err, EINVAL, "not a lamina database (SQLite, application id %#llx, %lld schema objects)",
			      (unsigned long long)(uint32_t)app, (long long)objects);
	if (*version < 0)
		return lm_err(err, EINVAL, "not a lamina database (schema version %lld)", (long long)*version);
	if (*version > LM_DB_SCHEMA_VERSION)
		return lm_err(err, ENOTSUP, "written by a newer lamina (schema version %lld; this one knows up to %d)",
			      (long long)*version, LM_DB_SCHEMA_VERSION);
	return 0;
}

static int use_wal(struct lm_db *db, struct lm_error *err)
{
	autofinal st = NULL;
	int r = one_row(db, "PRAGMA journal_mode = WAL", &st, err);
	if (r < 0)
		return lm_error_prefix(err, "journal mode");
	const char *mode = (const char *)sqlite3_column_text(st, 0);
	if (!mode || strcmp(mode, "wal") != 0)
		return lm_err(err, ENOTSUP, "cannot use a WAL journal here (the mode stays %s)",
			      mode ? mode : "unknown");
	/* In WAL mode NORMAL loses nothing committed when the process dies
	 * (the WAL is written before COMMIT returns; only its fsync is
	 * deferred), and saves an fsync per commit. */
	return exec(db, "PRAGMA synchronous = NORMAL", err, "synchronous");
}

static int migrate(struct lm_db *db, int64_t version, struct lm_error *err)
{
	if (version == LM_DB_SCHEMA_VERSION)
		return 0;
	int r = exec(db, "BEGIN IMMEDIATE", err, "migrate schema");
	for (int64_t v = version; r == 0 && v < LM_DB_SCHEMA_VERSION; v++) {
		int rc = sqlite3_exec(db->h, migrations[v], NULL, NULL, NULL);
		if (rc != SQLITE_OK)
			r = db_fail(db, rc, err, "migrate schema to version %lld", (long long)v + 1);
	}
	if (r == 0)
		r = exec(db, "COMMIT", err, "migrate schema");
	if (r < 0)
		lm_db_rollback(db);
	return r;
}

static int open_handle(struct lm_db *db, struct lm_error *err)
{
	int64_t version = 0;
	/* NOMUTEX: a handle belongs to one thread (db.h), and the cached
	 * statements could not be shared anyway. */
	int rc = sqlite3_open_v2(db->path, &db->h, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, NULL);
	if (rc != SQLITE_OK)
		return db_fail(db, rc, err, "%s", "");
	int r = configure(db, err);
	if (r == 0)
		r = identify(db, &version, err);
	if (r == 0)
		r = use_wal(db, err);
	if (r == 0)
		r = migrate(db, version, err);
	for (int i = 0; r == 0 && i < Q_COUNT; i++) {
		rc = sqlite3_prepare_v3(db->h, query_sql[i], -1, SQLITE_PREPARE_PERSISTENT, &db->q[i], NULL);
		if (rc != SQLITE_OK)
			r = db_fail(db, rc, err, "prepare statement %d", i);
	}
	return r;
}

int lm_db_open(const char *path, struct lm_db **out, struct lm_error *err)
{
	bool created = false;
	int r = create_file(path, &created, err);
	if (r < 0)
		return lm_error_prefix(err, "open database %s", path);
	struct lm_db *db = calloc(1, sizeof(*db));
	if (db)
		db->path = strdup(path);
	if (!db || !db->path) {
		free(db);
		r = no_memory(err, "allocate");
	} else {
		r = open_handle(db, err);
		if (r < 0)
			lm_db_close(db);
	}
	if (r < 0) {
		/* an empty file of ours would pass for a fresh database next
		 * time anyway; removing it leaves things as they were */
		if (created)
			unlink(path);
		return lm_error_prefix(err, "open database %s", path);
	}
	*out = db;
	return 0;
}

void lm_db_close(struct lm_db *db)
{
	if (!db)
		return;
	for (int i = 0; i < Q_COUNT; i++)
		sqlite3_finalize(db->q[i]);
	/* the last connection to close checkpoints the WAL and removes it */
	sqlite3_close_v2(db->h);
	free(db->path);
	free(db);
}

/* ------------------------------------------------------------- containers */

void lm_db_container_free(struct lm_db_container *c)
{
	if (!c)
		return;
	char **text[TEXT_COLUMNS] = {&c->id, &c->name, &c->image, &c->image_id, &c->spec, &c->status, &c->error};
	for (int i = 0; i < TEXT_COLUMNS; i++) {
		free(*text[i]);
		*text[i] = NULL;
	}
}

void lm_db_container_list_free(struct lm_db_container *v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		lm_db_container_free(&v[i]);
	free(v);
}

static int check_container(const struct lm_db_container *c, struct lm_error *err)
{
	size_t len = 0;
	if (!c->id || !is_lower_hex(c->id, &len) || len != ID_LEN)
		return lm_err(err, EINVAL, "container id \"%s\" is not %d lowercase hex characters",
			      c->id ? c->id : "(none)", ID_LEN);
	if (!c->name || !c->name[0])
		return lm_err(err, EINVAL, "container %s has no name", c->id);
	if (!c->status || !c->status[0])
		return lm_err(err, EINVAL, "container %s has no status", c->name);
	return 0;
}

static int bind_container(sqlite3_stmt *st, const struct lm_db_container *c)
{
	const char *text[TEXT_COLUMNS] = {c->id, c->name, c->image, c->image_id, c->spec, c->status, c->error};
	const int64_t num[INT_COLUMNS] = {
		c->created_at,  c->started_at,    c->finished_at,  c->exit_code,
		c->exit_signal, c->oom_killed,    c->restart_count, c->user_stopped,
		c->monitor_pid, (int64_t)c->monitor_start, (int64_t)c->log_dropped,
	};
	int rc = SQLITE_OK;
	for (int i = 0; rc == SQLITE_OK && i < TEXT_COLUMNS; i++)
		rc = bind_text(st, i + 1, text[i]);
	for (int i = 0; rc == SQLITE_OK && i < INT_COLUMNS; i++)
		rc = sqlite3_bind_int64(st, TEXT_COLUMNS + i + 1, num[i]);
	return rc;
}

/* -1 only when out of memory (c is then left empty). */
static int read_container(sqlite3_stmt *st, struct lm_db_container *c)
{
	*c = (struct lm_db_container){0};
	char **text[TEXT_COLUMNS] = {&c->id, &c->name, &c->image, &c->image_id, &c->spec, &c->status, &c->error};
	for (int i = 0; i < TEXT_COLUMNS; i++) {
		if (read_text(st, i, text[i]) < 0) {
			lm_db_container_free(c);
			return -1;
		}
	}
	int col = TEXT_COLUMNS;
	c->created_at = sqlite3_column_int64(st, col++);
	c->started_at = sqlite3_column_int64(st, col++);
	c->finished_at = sqlite3_column_int64(st, col++);
	c->exit_code = sqlite3_column_int(st, col++);
	c->exit_signal = sqlite3_column_int(st, col++);
	c->oom_killed = sqlite3_column_int(st, col++) != 0;
	c->restart_count = sqlite3_column_int(st, col++);
	c->user_stopped = sqlite3_column_int(st, col++) != 0;
	c->monitor_pid = sqlite3_column_int64(st, col++);
	c->monitor_start = (uint64_t)sqlite3_column_int64(st, col++);
	c->log_dropped = (uint64_t)sqlite3_column_int64(st, col++);
	return 0;
}

/* The EEXIST for a taken name, naming who holds it when we can tell. */
static int name_taken(struct lm_db *db, const char *name, struct lm_error *err)
{
	autostmt st = db->q[Q_NAME_OWNER];
	if (bind_text(st, 1, name) == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW)
		return lm_err(err, EEXIST, "container name \"%s\" is already in use by container %.12s", name,
			      (const char *)sqlite3_column_text(st, 0));
	return lm_err(err, EEXIST, "container name \"%s\" is already in use", name);
}

int lm_db_container_insert(struct lm_db *db, const struct lm_db_container *c, struct lm_error *err)
{
	if (check_container(c, err) < 0)
		return lm_error_prefix(err, "insert container");
	autostmt st = db->q[Q_INSERT];
	int rc = bind_container(st, c);
	if (rc == SQLITE_OK)
		rc = sqlite3_step(st);
	if (rc == SQLITE_DONE)
		return 0;
	if (rc == SQLITE_CONSTRAINT_PRIMARYKEY)
		return lm_err(err, EEXIST, "container id %s is already in use", c->id);
	if (rc == SQLITE_CONSTRAINT_UNIQUE)
		return name_taken(db, c->name, err);
	return db_fail(db, rc, err, "insert container %s", c->name);
}

int lm_db_container_update(struct lm_db *db, const struct lm_db_container *c, struct lm_error *err)
{
	if (check_container(c, err) < 0)
		return lm_error_prefix(err, "update container");
	autostmt st = db->q[Q_UPDATE];
	int rc = bind_container(st, c);
	if (rc == SQLITE_OK)
		rc = sqlite3_step(st);
	if (rc == SQLITE_DONE)
		return sqlite3_changes(db->h) > 0 ? 0 : lm_err(err, ENOENT, "no such container: %s", c->id);
	if (rc == SQLITE_CONSTRAINT_UNIQUE)
		return name_taken(db, c->name, err);
	return db_fail(db, rc, err, "update container %s", c->name);
}

/* Runs a container lookup bound to a (and b unless NULL): 0 when nothing
 * matches, 1 with the row in *out, 2 when several match (*out untouched). */
static int fetch(struct lm_db *db, enum query q, const char *a, const char *b, struct lm_db_container *out,
		 struct lm_error *err)
{
	autostmt st = db->q[q];
	struct lm_db_container c;
	int rc = bind_text(st, 1, a);
	if (rc == SQLITE_OK && b)
		rc = bind_text(st, 2, b);
	if (rc == SQLITE_OK)
		rc = sqlite3_step(st);
	if (rc == SQLITE_DONE)
		return 0;
	if (rc != SQLITE_ROW)
		return db_fail(db, rc, err, "look up container %s", a);
	if (read_container(st, &c) < 0)
		return no_memory(err, "look up container");
	rc = sqlite3_step(st);
	if (rc == SQLITE_DONE) {
		*out = c;
		return 1;
	}
	lm_db_container_free(&c);
	return rc == SQLITE_ROW ? 2 : db_fail(db, rc, err, "look up container %s", a);
}

int lm_db_container_get(struct lm_db *db, const char *ref, struct lm_db_container *out, struct lm_error *err)
{
	size_t len = 0;
	int r = fetch(db, Q_BY_ID, ref, NULL, out, err);
	if (r == 0)
		r = fetch(db, Q_BY_NAME, ref, NULL, out, err);
	/* shorter prefixes would match by accident too often to be meant */
	if (r == 0 && is_lower_hex(ref, &len) && len >= MIN_PREFIX && len < ID_LEN) {
		char upper[ID_LEN + 1];
		memcpy(upper, ref, len);
		upper[len] = 'g';
		upper[len + 1] = '\0';
		r = fetch(db, Q_BY_PREFIX, ref, upper, out, err);
		if (r == 2)
			return lm_err(err, EINVAL, "container id prefix %s is ambiguous: it matches several containers",
				      ref);
	}
	if (r == 0)
		return lm_err(err, ENOENT, "no such container: %s", ref);
	return r < 0 ? r : 0;
}

int lm_db_container_list(struct lm_db *db, struct lm_db_container **v, size_t *n, struct lm_error *err)
{
	autostmt st = db->q[Q_LIST];
	struct lm_db_container *all = NULL;
	size_t count = 0, cap = 0;
	int rc;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (!reserve(&all, &cap, count, sizeof(*all)) || read_container(st, &all[count]) < 0)
			break;
		count++;
	}
	if (rc != SQLITE_DONE) {
		lm_db_container_list_free(all, count);
		return rc == SQLITE_ROW ? no_memory(err, "list containers") : db_fail(db, rc, err, "list containers");
	}
	*v = all;
	*n = count;
	return 0;
}

int lm_db_container_delete(struct lm_db *db, const char *id, struct lm_error *err)
{
	autostmt st = db->q[Q_DELETE];
	int rc = bind_text(st, 1, id);
	if (rc == SQLITE_OK)
		rc = sqlite3_step(st);
	if (rc != SQLITE_DONE)
		return db_fail(db, rc, err, "delete container %s", id);
	return sqlite3_changes(db->h) > 0 ? 0 : lm_err(err, ENOENT, "no such container: %s", id);
}

/* ----------------------------------------------------------------- events */

int lm_db_event_add(struct lm_db *db, const struct lm_db_event *e, int64_t *seq_out, struct lm_error *err)
{
	if (!e->type || !e->type[0])
		return lm_err(err, EINVAL, "add event: no type");
	autostmt st = db->q[Q_EVENT_ADD];
	const char *text[] = {e->container_id, e->container_name, e->type, e->attrs};
	int rc = sqlite3_bind_int64(st, 1, e->time ? e->time : now_ns());
	for (int i = 0; rc == SQLITE_OK && i < 4; i++)
		rc = bind_text(st, i + 2, text[i]);
	if (rc == SQLITE_OK)
		rc = sqlite3_step(st);
	if (rc != SQLITE_DONE)
		return db_fail(db, rc, err, "add event %s", e->type);
	if (seq_out)
		*seq_out = sqlite3_last_insert_rowid(db->h);
	return 0;
}

static void event_free(struct lm_db_event *e)
{
	free(e->container_id);
	free(e->container_name);
	free(e->type);
	free(e->attrs);
}

void lm_db_events_free(struct lm_db_event *v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		event_free(&v[i]);
	free(v);
}

static int read_event(sqlite3_stmt *st, struct lm_db_event *e)
{
	*e = (struct lm_db_event){
		.seq = sqlite3_column_int64(st, 0),
		.time = sqlite3_column_int64(st, 1),
	};
	if (read_text(st, 2, &e->container_id) < 0 || read_text(st, 3, &e->container_name) < 0 ||
	    read_text(st, 4, &e->type) < 0 || read_text(st, 5, &e->attrs) < 0) {
		event_free(e);
		return -1;
	}
	return 0;
}

int lm_db_events_since(struct lm_db *db, int64_t after_seq, size_t limit, struct lm_db_event **v, size_t *n,
		       struct lm_error *err)
{
	autostmt st = db->q[Q_EVENTS_SINCE];
	struct lm_db_event *all = NULL;
	size_t count = 0, cap = 0;
	/* a negative LIMIT is no limit to SQLite */
	int64_t lim = limit == 0 || limit > (uint64_t)INT64_MAX ? -1 : (int64_t)limit;
	int rc = sqlite3_bind_int64(st, 1, after_seq);
	if (rc == SQLITE_OK)
		rc = sqlite3_bind_int64(st, 2, lim);
	if (rc != SQLITE_OK)
		return db_fail(db, rc, err, "read events");
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (!reserve(&all, &cap, count, sizeof(*all)) || read_event(st, &all[count]) < 0)
			break;
		count++;
	}
	if (rc != SQLITE_DONE) {
		lm_db_events_free(all, count);
		return rc == SQLITE_ROW ? no_memory(err, "read events") : db_fail(db, rc, err, "read events");
	}
	*v = all;
	*n = count;
	return 0;
}

int lm_db_events_trim(struct lm_db *db, size_t keep, struct lm_error *err)
{
	if (keep > (uint64_t)INT64_MAX)
		return 0; /* more than there can ever be */
	autostmt st = db->q[Q_EVENTS_TRIM];
	int rc = sqlite3_bind_int64(st, 1, (int64_t)keep);
	if (rc == SQLITE_OK)
		rc = sqlite3_step(st);
	return rc == SQLITE_DONE ? 0 : db_fail(db, rc, err, "trim events");
}

/* ----------------------------------------------------------- transactions */

int lm_db_begin(struct lm_db *db, struct lm_error *err)
{
	/* IMMEDIATE: a deferred transaction that reads first and then writes
	 * may find the lock taken and cannot wait for it without deadlock */
	return exec(db, "BEGIN IMMEDIATE", err, "begin transaction");
}

int lm_db_commit(struct lm_db *db, struct lm_error *err)
{
	return exec(db, "COMMIT", err, "commit");
}

void lm_db_rollback(struct lm_db *db)
{
	/* SQLite ends the transaction on its own after some errors */
	if (!sqlite3_get_autocommit(db->h))
		sqlite3_exec(db->h, "ROLLBACK", NULL, NULL, NULL);
}
