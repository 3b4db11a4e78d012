/* Container commands (ps, logs, start, stop, restart, kill, rm, inspect,
 * wait, events): thin clients of the agent API (docs/api.md), printing
 * what docker prints.  stats lives in container_stats.c.
 *
 * Commands taking several containers do each in turn and carry on past one
 * that fails, as docker does; an agent that goes away ends the command at
 * once, since every later request would fail the same way.
 */
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/client.h"
#include "cli/format.h"
#include "cli/opts.h"
#include "util/cleanup.h"
#include "util/error.h"

int lm_cli_agent_unreachable(const char *prog, const char *socket, const struct lm_error *err)
{
	if (err->code == ENOENT || err->code == ECONNREFUSED)
		fprintf(stderr, "%s: no lamina agent is running at %s (start one with: lamina agent)\n", prog, socket);
	else
		fprintf(stderr, "%s: %s\n", prog, err->msg);
	return 125;
}

int lm_cli_connect(const struct lm_cli_global *g, const char *prog, struct lm_client **c)
{
	struct lm_error err = {0};
	if (lm_client_open(g->socket, g->state, c, &err) == 0)
		return 0;
	autofree char *path = lm_client_socket_path(g->socket, g->state);
	return lm_cli_agent_unreachable(prog, path ? path : "(unknown)", &err);
}

int lm_cli_agent_failed(const char *prog, const struct lm_client *c, long status, const struct lm_error *err)
{
	if (status == 0)
		return lm_cli_agent_unreachable(prog, lm_client_socket(c), err);
	fprintf(stderr, "%s: %s\n", prog, err->msg);
	return 1;
}

char *lm_cli_container_path(struct lm_client *c, const char *ref, const char *action, const char *query)
{
	autofree char *esc = lm_client_escape(c, ref);
	char *path = NULL;
	if (!esc || asprintf(&path, "/v1/containers/%s%s%s%s%s", esc, action ? "/" : "", action ? action : "",
			     query ? "?" : "", query ? query : "") < 0)
		return NULL;
	return path;
}

/* Appends "key=value" (value escaped) to the query *q. 0, or -1 when out of memory. */
static int query_add(struct lm_client *c, char **q, const char *key, const char *value)
{
	autofree char *esc = lm_client_escape(c, value);
	char *n = NULL;
	if (!esc || asprintf(&n, "%s%s%s=%s", *q ? *q : "", *q ? "&" : "", key, esc) < 0)
		return -1;
	free(*q);
	*q = n;
	return 0;
}

static int out_of_memory(const char *prog)
{
	fprintf(stderr, "%s: out of memory\n", prog);
	return 1;
}

/* --- ps --- */

static int print_ps_table(const json_t *list, bool no_trunc)
{
	struct lm_table *t = lm_table_new(6);
	static const char *const head[] = {"CONTAINER ID", "IMAGE", "COMMAND", "CREATED", "STATUS", "NAMES"};
	if (!t || lm_table_add(t, head) < 0) {
		lm_table_free(t);
		return -1;
	}
	time_t now = time(NULL);
	size_t i;
	json_t *ct;
	json_array_foreach(list, i, ct) {
		const char *id = json_string_value(json_object_get(ct, "id"));
		char id12[16], command[256], created[96], status[128];
		snprintf(id12, sizeof(id12), "%.12s", id ? id : "");
		lm_format_command(command, sizeof(command), ct, !no_trunc);
		lm_format_ago(created, sizeof(created), json_string_value(json_object_get(ct, "created_at")), now);
		lm_format_status(status, sizeof(status), ct, now);
		const char *row[] = {no_trunc && id ? id : id12, json_string_value(json_object_get(ct, "image")), command,
				     created, status, json_string_value(json_object_get(ct, "name"))};
		if (lm_table_add(t, row) < 0) {
			lm_table_free(t);
			return -1;
		}
	}
	lm_table_print(t, stdout);
	lm_table_free(t);
	return 0;
}

int lm_cli_ps(const struct lm_cli_global *g, int argc, char **argv)
{
	const char *prog = "lamina ps", *format = "table";
	bool all = false, quiet = false, no_trunc = false;
	struct opt opts[] = {
		{"all", 'a', OPT_FLAG, &all},
		{"quiet", 'q', OPT_FLAG, &quiet},
		{"no-trunc", 0, OPT_FLAG, &no_trunc},
		{"format", 0, OPT_STRING, &format},
		{NULL, 0, 0, NULL},
	};
	int i = 1;
	if (parse_opts(argc, argv, &i, opts, prog) < 0 ||
	    need_args(argc, i, 0, 0, prog, "[-a|--all] [-q|--quiet] [--no-trunc] [--format table|json]") < 0)
		return 2;
	if (strcmp(format, "table") != 0 && strcmp(format, "json") != 0) {
		fprintf(stderr, "%s: --format must be table or json\n", prog);
		return 2;
	}
	autoclient *c = NULL;
	json_auto_t *list = NULL;
	struct lm_error err = {0};
	long status = 0;
	int rc = lm_cli_connect(g, prog, &c);
	if (rc)
		return rc;
	if (lm_client_call(c, "GET", all ? "/v1/containers?all=1" : "/v1/containers", NULL, &status, &list, &err) < 0)
		return lm_cli_agent_failed(prog, c, status, &err);
	if (!json_is_array(list)) {
		fprintf(stderr, "%s: the agent's answer is not a list of containers\n", prog);
		return 1;
	}
	if (strcmp(format, "json") == 0) {
		autofree char *s = json_dumps(list, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
		if (!s)
			return out_of_memory(prog);
		printf("%s\n", s);
		return 0;
	}
	if (quiet) {
		size_t k;
		json_t *ct;
		json_array_foreach(list, k, ct) {
			const char *id = json_string_value(json_object_get(ct, "id"));
			printf(no_trunc ? "%s\n" : "%.12s\n", id ? id : "");
		}
		return 0;
	}
	return print_ps_table(list, no_trunc) < 0 ? out_of_memory(prog) : 0;
}

/* --- start, stop, restart, kill, rm --- */

/* What to do with each answer; NULL prints the reference, as docker does. */
typedef void (*each_done_fn)(const char *ref, json_t *resp, void *ctx);

/* method action?key=value on each of refs (going on past failures); the
 * exit code: 0, 1 when any failed, 125 when the agent went away. */
static int each_container(const struct lm_cli_global *g, const char *prog, int n, char **refs,
			  const char *method, const char *action, const char *key, const char *value,
			  each_done_fn done, void *ctx)
{
	autoclient *c = NULL;
	autofree char *query = NULL;
	int rc = lm_cli_connect(g, prog, &c);
	if (rc)
		return rc;
	if (key && query_add(c, &query, key, value) < 0)
		return out_of_memory(prog);
	for (int k = 0; k < n; k++) {
		struct lm_error err = {0};
		long status = 0;
		json_auto_t *resp = NULL;
		autofree char *path = lm_cli_container_path(c, refs[k], action, query);
		if (!path) {
			rc = out_of_memory(prog);
			continue;
		}
		if (lm_client_call(c, method, path, NULL, &status, &resp, &err) < 0) {
			if (lm_cli_agent_failed(prog, c, status, &err) == 125)
				return 125;
			rc = 1;
			continue;
		}
		if (done)
			done(refs[k], resp, ctx);
		else
			printf("%s\n", refs[k]);
		fflush(stdout);
	}
	return rc;
}

/* A command without options: CONTAINER... */
static int each_named(const struct lm_cli_global *g, const char *prog, int argc, char **argv, const char *method,
		      const char *action, each_done_fn done, void *ctx)
{
	struct opt opts[] = {{NULL, 0, 0, NULL}};
	int i = 1;
	if (parse_opts(argc, argv, &i, opts, prog) < 0 || need_args(argc, i, 1, -1, prog, "CONTAINER...") < 0)
		return 2;
	return each_container(g, prog, argc - i, argv + i, method, action, NULL, NULL, done, ctx);
}

int lm_cli_start(const struct lm_cli_global *g, int argc, char **argv)
{
	return each_named(g, "lamina start", argc, argv, "POST", "start", NULL, NULL);
}

/* stop and restart: [-t|--time S] CONTAINER... */
static int stop_like(const struct lm_cli_global *g, const char *prog, const char *action, int argc, char **argv)
{
	int secs = -1;
	struct opt opts[] = {
		{"time", 't', OPT_INT, &secs},
		{NULL, 0, 0, NULL},
	};
	int i = 1;
	if (parse_opts(argc, argv, &i, opts, prog) < 0 || need_args(argc, i, 1, -1, prog, "[-t|--time SECONDS] CONTAINER...") < 0)
		return 2;
	char t[16];
	snprintf(t, sizeof(t), "%d", secs);
	return each_container(g, prog, argc - i, argv + i, "POST", action, secs >= 0 ? "t" : NULL, t, NULL, NULL);
}

int lm_cli_stop(const struct lm_cli_global *g, int argc, char **argv)
{
	return stop_like(g, "lamina stop", "stop", argc, argv);
}

int lm_cli_restart(const struct lm_cli_global *g, int argc, char **argv)
{
	return stop_like(g, "lamina restart", "restart", argc, argv);
}

int lm_cli_kill(const struct lm_cli_global *g, int argc, char **argv)
{
	const char *prog = "lamina kill", *sig = NULL;
	struct opt opts[] = {
		{"signal", 's', OPT_STRING, &sig},
		{NULL, 0, 0, NULL},
	};
	int i = 1;
	if (parse_opts(argc, argv, &i, opts, prog) < 0 || need_args(argc, i, 1, -1, prog, "[-s|--signal SIGNAL] CONTAINER...") < 0)
		return 2;
	if (sig && !*sig) {
		fprintf(stderr, "%s: --signal needs a signal name or number\n", prog);
		return 2;
	}
	return each_container(g, prog, argc - i, argv + i, "POST", "kill", sig ? "signal" : NULL, sig, NULL, NULL);
}

int lm_cli_rm(const struct lm_cli_global *g, int argc, char **argv)
{
	const char *prog = "lamina rm";
	bool force = false;
	struct opt opts[] = {
		{"force", 'f', OPT_FLAG, &force},
		{NULL, 0, 0, NULL},
	};
	int i = 1;
	if (parse_opts(argc, argv, &i, opts, prog) < 0 || need_args(argc, i, 1, -1, prog, "[-f|--force] CONTAINER...") < 0)
		return 2;
	return each_container(g, prog, argc - i, argv + i, "DELETE", NULL, force ? "force" : NULL, "1", NULL, NULL);
}

/* --- inspect, wait --- */

static void collect(const char *ref, json_t *resp, void *ctx)
{
	if (resp)
		json_array_append(ctx, resp);
}

int lm_cli_inspect(const struct lm_cli_global *g, int argc, char **argv)
{
	const char *prog = "lamina inspect";
	json_auto_t *arr = json_array();
	if (!arr)
		return out_of_memory(prog);
	int rc = each_named(g, prog, argc, argv, "GET", NULL, collect, arr);
	if (rc == 125 || rc == 2)
		return rc;
	/* what was found is printed even when something was not, as docker does */
	autofree char *s = json_dumps(arr, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
	if (!s)
		return out_of_memory(prog);
	printf("%s\n", s);
	return rc;
}

static void print_exit_code(const char *ref, json_t *resp, void *ctx)
{
	printf("%lld\n", lm_container_exit_code(resp));
}

int lm_cli_wait(const struct lm_cli_global *g, int argc, char **argv)
{
	return each_named(g, "lamina wait", argc, argv, "POST", "wait", print_exit_code, NULL);
}

/* --- logs --- */

struct logs_ctx {
	struct lm_log_printer printer;
	bool follow;
	int write_errno;  /* stdout or stderr failed: the transfer was stopped */
};

static int on_log_line(const char *line, size_t len, void *ctx)
{
	struct logs_ctx *l = ctx;
	struct lm_cri_entry e;
	/* stderr is unbuffered: what went to stdout before must be out first */
	if (lm_cri_parse(line, len, &e) == 0 && e.is_stderr && fflush(stdout) != 0) {
		l->write_errno = errno;
		return -1;
	}
	errno = 0;
	if (lm_log_print(&l->printer, line, len, stdout, stderr) < 0 || (l->follow && fflush(stdout) != 0)) {
		l->write_errno = errno ? errno : EIO;
		return -1;
	}
	return 0;
}

/* --since/--until into the query; 0, or -1 after printing a usage error. */
static int add_time(struct lm_client *c, char **query, const char *prog, const char *opt, const char *arg)
{
	char when[64];
	if (!arg)
		return 0;
	if (lm_time_arg(arg, time(NULL), when, sizeof(when)) < 0) {
		fprintf(stderr, "%s: --%s %s: not a time (RFC 3339, unix seconds, or a duration like 10m)\n", prog, opt, arg);
		return -1;
	}
	if (query_add(c, query, opt, when) < 0) {
		out_of_memory(prog);
		return -1;
	}
	return 0;
}

int lm_cli_logs(const struct lm_cli_global *g, int argc, char **argv)
{
	const char *prog = "lamina logs", *tail = NULL, *since_s = NULL, *until_s = NULL;
	struct logs_ctx l = {0};
	struct opt opts[] = {
		{"follow", 'f', OPT_FLAG, &l.follow},
		{"tail", 'n', OPT_STRING, &tail},
		{"since", 0, OPT_STRING, &since_s},
		{"until", 0, OPT_STRING, &until_s},
		{"timestamps", 't', OPT_FLAG, &l.printer.timestamps},
		{NULL, 0, 0, NULL},
	};
	int i = 1;
	if (parse_opts(argc, argv, &i, opts, prog) < 0 ||
	    need_args(argc, i, 1, 1, prog, "[-f|--follow] [-n|--tail N|all] [--since T] [--until T] [-t|--timestamps] CONTAINER") < 0)
		return 2;
	if (tail && strcmp(tail, "all") != 0 && (!*tail || strspn(tail, "0123456789") != strlen(tail))) {
		fprintf(stderr, "%s: --tail must be a number or all\n", prog);
		return 2;
	}
	autoclient *c = NULL;
	autofree char *query = NULL;
	autofree char *path = NULL;
	struct lm_error err = {0};
	long status = 0;
	int rc = lm_cli_connect(g, prog, &c);
	if (rc)
		return rc;
	if (add_time(c, &query, prog, "since", since_s) < 0 || add_time(c, &query, prog, "until", until_s) < 0)
		return 2;
	if ((l.follow && query_add(c, &query, "follow", "1") < 0) ||
	    (tail && strcmp(tail, "all") != 0 && query_add(c, &query, "tail", tail) < 0) ||
	    !(path = lm_cli_container_path(c, argv[i], "logs", query)))
		return out_of_memory(prog);
	rc = lm_client_stream(c, "GET", path, on_log_line, &l, &status, &err);
	fflush(stdout);
	if (rc < 0)
		return lm_cli_agent_failed(prog, c, status, &err);
	if (l.write_errno && l.write_errno != EPIPE) {
		/* EPIPE: the reader went away (| head), nothing to report */
		fprintf(stderr, "%s: write: %s\n", prog, strerror(l.write_errno));
		return 1;
	}
	return 0;
}

/* --- events --- */

struct events_ctx {
	bool json;
	int write_errno;
};

static int on_event_line(const char *line, size_t len, void *ctx)
{
	struct events_ctx *e = ctx;
	if (len == 0)
		return 0;
	json_auto_t *ev = e->json ? NULL : json_loadb(line, len, 0, NULL);
	autofree char *text = ev ? lm_format_event(ev) : NULL;
	/* a line that is not an event object is shown as it came */
	if (printf("%s\n", text ? text : line) < 0 || fflush(stdout) != 0) {
		e->write_errno = errno ? errno : EIO;
		return -1;
	}
	return 0;
}

int lm_cli_events(const struct lm_cli_global *g, int argc, char **argv)
{
	const char *prog = "lamina events", *since_s = NULL, *format = NULL;
	struct opt opts[] = {
		{"since", 0, OPT_STRING, &since_s},
		{"format", 0, OPT_STRING, &format},
		{NULL, 0, 0, NULL},
	};
	int i = 1;
	if (parse_opts(argc, argv, &i, opts, prog) < 0 || need_args(argc, i, 0, 0, prog, "[--since SEQ] [--format json]") < 0)
		return 2;
	if (format && strcmp(format, "json") != 0 && strcmp(format, "table") != 0) {
		fprintf(stderr, "%s: --format must be json (or table, the default)\n", prog);
		return 2;
	}
	if (since_s && (!*since_s || strspn(since_s, "0123456789") != strlen(since_s))) {
		fprintf(stderr, "%s: --since takes an event sequence number\n", prog);
		return 2;
	}
	struct events_ctx e = {.json = format && strcmp(format, "json") == 0};
	autoclient *c = NULL;
	autofree char *path = NULL;
	struct lm_error err = {0};
	long status = 0;
	int rc = lm_cli_connect(g, prog, &c);
	if (rc)
		return rc;
	if (asprintf(&path, "/v1/events?follow=1%s%s", since_s ? "&since=" : "", since_s ? since_s : "") < 0)
		return out_of_memory(prog);
	if (lm_client_stream(c, "GET", path, on_event_line, &e, &status, &err) < 0)
		return lm_cli_agent_failed(prog, c, status, &err);
	if (e.write_errno && e.write_errno != EPIPE) {
		fprintf(stderr, "%s: write: %s\n", prog, strerror(e.write_errno));
		return 1;
	}
	return 0;
}
