/* `lamina stats`: resource usage of containers, as docker stats shows it.
 *
 * CPU % needs two samples.  For one named container the agent's stream
 * (stats?stream=1, a sample a second) gives them, and ends when the
 * container does.  For several, or all running ones, the CLI samples each
 * once a second itself (one request each, not one stream each), so a table
 * of many containers costs one second per refresh, not one per container;
 * without names the list of running containers is fetched again each time,
 * so that new containers appear and ended ones go.
 */
#include <errno.h>
#include <inttypes.h>
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

struct stats_row {
	char *id, *name;
	json_t *prev, *cur;  /* the last two samples; cur NULL: none (yet) */
};

struct stats_view {
	const char *prog;
	bool json, no_stream, clear;  /* clear: redraw in place (a terminal, streaming) */
	uint64_t host_mem;
	struct stats_row *rows;
	size_t n_rows;
};

/* For a limit of 0 (none): the host's memory, as docker shows it. */
static uint64_t host_mem_total(void)
{
	autofclose *f = fopen("/proc/meminfo", "re");
	char line[256];
	unsigned long long kb;
	while (f && fgets(line, sizeof(line), f))
		if (sscanf(line, "MemTotal: %llu kB", &kb) == 1)
			return (uint64_t)kb * 1024;
	return 0;
}

static void row_free(struct stats_row *r)
{
	free(r->id);
	free(r->name);
	json_decref(r->prev);
	json_decref(r->cur);
	*r = (struct stats_row){0};
}

static void rows_free(struct stats_view *v)
{
	for (size_t k = 0; k < v->n_rows; k++)
		row_free(&v->rows[k]);
	free(v->rows);
	v->rows = NULL;
	v->n_rows = 0;
}

/* A new sample (taken over) for r. */
static void row_push(struct stats_row *r, json_t *sample)
{
	json_decref(r->prev);
	r->prev = r->cur;
	r->cur = sample;
}

static int add_row(struct stats_view *v, const json_t *container)
{
	const char *id = json_string_value(json_object_get(container, "id"));
	const char *name = json_string_value(json_object_get(container, "name"));
	struct stats_row *rows = realloc(v->rows, (v->n_rows + 1) * sizeof(*rows));
	if (!rows)
		return -1;
	v->rows = rows;
	struct stats_row *r = &rows[v->n_rows];
	*r = (struct stats_row){.id = strdup(id ? id : ""), .name = strdup(name ? name : "")};
	if (!r->id || !r->name) {
		row_free(r);
		return -1;
	}
	v->n_rows++;
	return 0;
}

static void print_rows(const struct stats_view *v)
{
	if (v->clear)
		fputs("\033[2J\033[H", stdout);
	if (v->json) {
		for (size_t k = 0; k < v->n_rows; k++) {
			const struct stats_row *r = &v->rows[k];
			json_auto_t *o = r->cur ? json_copy(r->cur) : NULL;
			if (!o)
				continue;
			if (!json_object_get(o, "id"))
				json_object_set_new(o, "id", json_string(r->id));
			if (!json_object_get(o, "name"))
				json_object_set_new(o, "name", json_string(r->name));
			json_object_set_new(o, "cpu_percent", json_real(lm_stats_cpu_percent_json(r->prev, r->cur)));
			autofree char *s = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
			if (s)
				printf("%s\n", s);
		}
		fflush(stdout);
		return;
	}
	struct lm_table *t = lm_table_new(6);
	static const char *const head[] = {"CONTAINER ID", "NAME", "CPU %", "MEM USAGE / LIMIT", "MEM %", "PIDS"};
	if (t && lm_table_add(t, head) == 0) {
		for (size_t k = 0; k < v->n_rows; k++) {
			const struct stats_row *r = &v->rows[k];
			struct lm_stats_cells cells = {"--", "-- / --", "--", "--"};
			char id12[16];
			snprintf(id12, sizeof(id12), "%.12s", r->id);
			if (r->cur)
				lm_format_stats_cells(r->prev, r->cur, v->host_mem, &cells);
			const char *row[] = {id12, r->name, cells.cpu, cells.mem, cells.mem_pct, cells.pids};
			if (lm_table_add(t, row) < 0)
				break;
		}
		lm_table_print(t, stdout);
	}
	lm_table_free(t);
	fflush(stdout);
}

/* A container by reference: its object.  0, or the exit code. */
static int get_container(struct lm_client *c, const char *prog, const char *ref, json_t **out)
{
	struct lm_error err = {0};
	long status = 0;
	autofree char *path = lm_cli_container_path(c, ref, NULL, NULL);
	if (!path) {
		fprintf(stderr, "%s: out of memory\n", prog);
		return 1;
	}
	if (lm_client_call(c, "GET", path, NULL, &status, out, &err) < 0)
		return lm_cli_agent_failed(prog, c, status, &err);
	return 0;
}

/* --- one container: the agent's stream --- */

struct stream_ctx {
	struct stats_view *v;
	size_t samples;
};

static int on_stats_line(const char *line, size_t len, void *ctx)
{
	struct stream_ctx *s = ctx;
	json_t *sample = json_loadb(line, len, 0, NULL);
	if (!json_is_object(sample)) {
		json_decref(sample);
		return 0;
	}
	row_push(&s->v->rows[0], sample);
	s->samples++;
	if (s->samples < 2)
		return 0; /* CPU % needs two */
	print_rows(s->v);
	return s->v->no_stream ? -1 : 0;
}

static int stats_stream_one(struct lm_client *c, struct stats_view *v)
{
	struct stream_ctx s = {.v = v};
	struct lm_error err = {0};
	long status = 0;
	autofree char *path = lm_cli_container_path(c, v->rows[0].id, "stats", "stream=1");
	if (!path) {
		fprintf(stderr, "%s: out of memory\n", v->prog);
		return 1;
	}
	if (lm_client_stream(c, "GET", path, on_stats_line, &s, &status, &err) < 0)
		return lm_cli_agent_failed(v->prog, c, status, &err);
	/* the container ended before a second sample */
	if (s.samples == 1)
		print_rows(v);
	return 0;
}

/* --- several: sampling --- */

/* One sample of every row; a row whose container has no stats now (it
 * stopped, it is gone) shows none.  0, or 125 when the agent went away. */
static int sample_all(struct lm_client *c, struct stats_view *v)
{
	for (size_t k = 0; k < v->n_rows; k++) {
		struct stats_row *r = &v->rows[k];
		struct lm_error err = {0};
		long status = 0;
		json_t *sample = NULL;
		autofree char *path = lm_cli_container_path(c, r->id, "stats", NULL);
		if (!path)
			continue;
		if (lm_client_call(c, "GET", path, NULL, &status, &sample, &err) < 0) {
			if (status == 0)
				return lm_cli_agent_failed(v->prog, c, status, &err);
			row_push(r, NULL);
			continue;
		}
		if (json_is_object(sample)) {
			row_push(r, sample);
		} else {
			json_decref(sample);
			row_push(r, NULL);
		}
	}
	return 0;
}

/* The running containers as rows, keeping the samples of rows already there. */
static int relist(struct lm_client *c, struct stats_view *v)
{
	struct lm_error err = {0};
	long status = 0;
	json_auto_t *list = NULL;
	if (lm_client_call(c, "GET", "/v1/containers", NULL, &status, &list, &err) < 0)
		return lm_cli_agent_failed(v->prog, c, status, &err);
	struct stats_view old = *v;
	v->rows = NULL;
	v->n_rows = 0;
	size_t k;
	json_t *ct;
	int rc = 0;
	json_array_foreach(list, k, ct) {
		if (add_row(v, ct) < 0) {
			fprintf(stderr, "%s: out of memory\n", v->prog);
			rc = 1;
			break;
		}
		struct stats_row *r = &v->rows[v->n_rows - 1];
		for (size_t j = 0; j < old.n_rows; j++)
			if (old.rows[j].id && strcmp(old.rows[j].id, r->id) == 0) {
				r->prev = steal_ptr(&old.rows[j].prev);
				r->cur = steal_ptr(&old.rows[j].cur);
			}
	}
	rows_free(&old);
	return rc;
}

static void sleep_second(void)
{
	struct timespec one = {1, 0};
	while (nanosleep(&one, &one) < 0 && errno == EINTR)
		;
}

static int stats_sample_many(struct lm_client *c, struct stats_view *v, bool listed)
{
	int rc;
	if ((listed && (rc = relist(c, v))) || (rc = sample_all(c, v)))
		return rc;
	for (;;) {
		sleep_second();
		if ((listed && !v->no_stream && (rc = relist(c, v))) || (rc = sample_all(c, v)))
			return rc;
		print_rows(v);
		if (v->no_stream)
			return 0;
	}
}

int lm_cli_stats(const struct lm_cli_global *g, int argc, char **argv)
{
	const char *format = "table";
	struct stats_view v = {.prog = "lamina stats"};
	struct opt opts[] = {
		{"no-stream", 0, OPT_FLAG, &v.no_stream},
		{"format", 0, OPT_STRING, &format},
		{NULL, 0, 0, NULL},
	};
	int i = 1;
	if (parse_opts(argc, argv, &i, opts, v.prog) < 0 ||
	    need_args(argc, i, 0, -1, v.prog, "[--no-stream] [--format table|json] [CONTAINER...]") < 0)
		return 2;
	if (strcmp(format, "table") != 0 && strcmp(format, "json") != 0) {
		fprintf(stderr, "%s: --format must be table or json\n", v.prog);
		return 2;
	}
	v.json = strcmp(format, "json") == 0;
	v.clear = !v.no_stream && !v.json && isatty(STDOUT_FILENO);
	v.host_mem = host_mem_total();
	autoclient *c = NULL;
	int rc = lm_cli_connect(g, v.prog, &c);
	if (rc)
		return rc;
	int failed = 0;
	for (int k = i; k < argc; k++) {
		json_auto_t *ct = NULL;
		rc = get_container(c, v.prog, argv[k], &ct);
		if (rc == 125) {
			rows_free(&v);
			return rc;
		}
		if (rc) {
			failed = 1;
			continue;
		}
		if (add_row(&v, ct) < 0) {
			fprintf(stderr, "%s: out of memory\n", v.prog);
			rows_free(&v);
			return 1;
		}
	}
	if (i < argc && v.n_rows == 0)
		rc = 1;
	else if (i + 1 == argc)
		rc = stats_stream_one(c, &v);
	else
		rc = stats_sample_many(c, &v, i == argc);
	rows_free(&v);
	return rc ? rc : failed;
}
