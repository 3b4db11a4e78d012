/* See format.h.  Everything here is computed from the arguments alone; the
 * few writes go to the FILE* given, so tests can use memory streams. */
#include "cli/format.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "util/cleanup.h"

int lm_parse_rfc3339(const char *s, struct timespec *out)
{
	struct tm tm = {0};
	const char *p = s ? strptime(s, "%Y-%m-%d", &tm) : NULL;
	if (!p || !isdigit((unsigned char)s[0]) || (*p != 'T' && *p != 't' && *p != ' '))
		return -1;
	p = strptime(p + 1, "%H:%M:%S", &tm);
	if (!p)
		return -1;
	long nsec = 0;
	if (*p == '.') {
		p++;
		if (!isdigit((unsigned char)*p))
			return -1;
		int digits = 0;
		for (; isdigit((unsigned char)*p); p++)
			if (digits < 9) {
				nsec = nsec * 10 + (*p - '0');
				digits++;
			}
		for (; digits < 9; digits++)
			nsec *= 10;
	}
	long offset = 0;
	if (*p == 'Z' || *p == 'z') {
		p++;
	} else if (*p == '+' || *p == '-') {
		const char *o = p + 1;
		if (!isdigit((unsigned char)o[0]) || !isdigit((unsigned char)o[1]) || o[2] != ':' ||
		    !isdigit((unsigned char)o[3]) || !isdigit((unsigned char)o[4]))
			return -1;
		offset = ((o[0] - '0') * 10 + (o[1] - '0')) * 3600L + ((o[3] - '0') * 10 + (o[4] - '0')) * 60L;
		if (*p == '-')
			offset = -offset;
		p = o + 5;
	} else {
		return -1;
	}
	if (*p)
		return -1;
	out->tv_sec = timegm(&tm) - offset;
	out->tv_nsec = nsec;
	return 0;
}

void lm_format_rfc3339(char *buf, size_t len, const struct timespec *t)
{
	struct tm tm;
	char day[64];
	time_t sec = t->tv_sec;
	if (!gmtime_r(&sec, &tm) || !strftime(day, sizeof(day), "%Y-%m-%dT%H:%M:%S", &tm)) {
		snprintf(buf, len, "?");
		return;
	}
	snprintf(buf, len, "%s.%09ldZ", day, (long)t->tv_nsec);
}

void lm_human_duration(char *buf, size_t len, int64_t seconds)
{
	if (seconds < 1) {
		snprintf(buf, len, "Less than a second");
		return;
	}
	if (seconds < 60) {
		if (seconds == 1)
			snprintf(buf, len, "1 second");
		else
			snprintf(buf, len, "%lld seconds", (long long)seconds);
		return;
	}
	int64_t minutes = seconds / 60;
	if (minutes < 60) {
		if (minutes == 1)
			snprintf(buf, len, "About a minute");
		else
			snprintf(buf, len, "%lld minutes", (long long)minutes);
		return;
	}
	int64_t hours = (seconds + 1800) / 3600; /* rounded, as docker does from here on */
	if (hours == 1)
		snprintf(buf, len, "About an hour");
	else if (hours < 48)
		snprintf(buf, len, "%lld hours", (long long)hours);
	else if (hours < 24 * 7 * 2)
		snprintf(buf, len, "%lld days", (long long)(hours / 24));
	else if (hours < 24 * 30 * 2)
		snprintf(buf, len, "%lld weeks", (long long)(hours / 24 / 7));
	else if (hours < 24 * 365 * 2)
		snprintf(buf, len, "%lld months", (long long)(hours / 24 / 30));
	else
		snprintf(buf, len, "%lld years", (long long)(seconds / 3600 / 24 / 365));
}

/* Seconds from an RFC 3339 time to now; -1 when it is not a time (or the
 * zero time some encoders write for "never"). */
static int64_t since(const char *rfc3339, time_t now)
{
	struct timespec t;
	if (lm_parse_rfc3339(rfc3339, &t) < 0 || t.tv_sec <= 0)
		return -1;
	return now > t.tv_sec ? (int64_t)(now - t.tv_sec) : 0;
}

void lm_format_ago(char *buf, size_t len, const char *rfc3339, time_t now)
{
	int64_t d = since(rfc3339, now);
	if (d < 0) {
		snprintf(buf, len, "%s", "");
		return;
	}
	char h[64];
	lm_human_duration(h, sizeof(h), d);
	snprintf(buf, len, "%s ago", h);
}

long long lm_container_exit_code(const json_t *c)
{
	json_t *code = json_object_get(c, "exit_code");
	long long sig = json_integer_value(json_object_get(c, "signal"));
	if (sig > 0 && (!json_is_integer(code) || json_integer_value(code) <= 0))
		return 128 + sig;
	return json_integer_value(code);
}

void lm_format_status(char *buf, size_t len, const json_t *container, time_t now)
{
	const char *status = json_string_value(json_object_get(container, "status"));
	char ago[96];
	if (!status) {
		snprintf(buf, len, "%s", "");
	} else if (strcmp(status, "running") == 0) {
		int64_t up = since(json_string_value(json_object_get(container, "started_at")), now);
		char h[64] = "";
		if (up >= 0)
			lm_human_duration(h, sizeof(h), up);
		snprintf(buf, len, "Up%s%s", *h ? " " : "", h);
	} else if (strcmp(status, "exited") == 0 || strcmp(status, "restarting") == 0) {
		lm_format_ago(ago, sizeof(ago), json_string_value(json_object_get(container, "finished_at")), now);
		snprintf(buf, len, "%s (%lld)%s%s", status[0] == 'e' ? "Exited" : "Restarting", lm_container_exit_code(container),
			 *ago ? " " : "", ago);
	} else {
		/* created, lost, and whatever a newer agent adds */
		snprintf(buf, len, "%c%s", toupper((unsigned char)status[0]), status[0] ? status + 1 : "");
	}
}

/* Appends the strings of a JSON array, space-separated. */
static void join_args(FILE *f, const json_t *arr, bool *first)
{
	size_t i;
	json_t *v;
	json_array_foreach(arr, i, v) {
		if (!json_is_string(v))
			continue;
		fprintf(f, "%s%s", *first ? "" : " ", json_string_value(v));
		*first = false;
	}
}

void lm_format_command(char *buf, size_t len, const json_t *container, bool trunc)
{
	autofree char *cmd = NULL;
	size_t n = 0;
	FILE *f = open_memstream(&cmd, &n);
	if (!f) {
		snprintf(buf, len, "\"\"");
		return;
	}
	json_t *command = json_object_get(container, "command");
	json_t *spec = json_object_get(container, "spec");
	bool first = true;
	if (json_is_string(command)) {
		fputs(json_string_value(command), f);
	} else if (json_is_array(command)) {
		join_args(f, command, &first);
	} else {
		join_args(f, json_object_get(spec, "entrypoint"), &first);
		join_args(f, json_object_get(spec, "cmd"), &first);
	}
	fclose(f);

	/* cut at 20 characters (not bytes) with an ellipsis; quote */
	size_t chars = 0, cut = n;
	for (size_t i = 0; i < n; i++)
		if (((unsigned char)cmd[i] & 0xC0) != 0x80 && ++chars == 20)
			cut = i;
	size_t o = 0;
	bool ellipsis = trunc && chars > 20;
	if (o + 1 < len)
		buf[o++] = '"';
	for (size_t i = 0; i < (ellipsis ? cut : n) && o + 2 < len; i++) {
		if ((cmd[i] == '"' || cmd[i] == '\\') && o + 3 < len)
			buf[o++] = '\\';
		buf[o++] = cmd[i];
	}
	const char *tail = ellipsis ? "\xe2\x80\xa6\"" : "\"";
	if (o + strlen(tail) < len) {
		memcpy(buf + o, tail, strlen(tail));
		o += strlen(tail);
	}
	buf[o < len ? o : len - 1] = '\0';
}

void lm_format_size(char *buf, size_t len, uint64_t bytes)
{
	static const char *const units[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
	double v = (double)bytes;
	size_t u = 0;
	while (v >= 1024 && u + 1 < sizeof(units) / sizeof(units[0])) {
		v /= 1024;
		u++;
	}
	snprintf(buf, len, "%.4g%s", v, units[u]);
}

/* "1h30m", "2.5s", "300ms": nanoseconds; -1 when s is not a duration. */
static int64_t parse_duration(const char *s)
{
	static const struct {
		const char *unit;
		double ns;
	} units[] = {
		{"ns", 1}, {"us", 1e3}, {"\xc2\xb5s", 1e3}, {"ms", 1e6}, {"s", 1e9}, {"m", 60e9}, {"h", 3600e9},
	};
	double total = 0;
	if (!*s)
		return -1;
	while (*s) {
		char *end;
		if (!isdigit((unsigned char)*s) && *s != '.')
			return -1;
		double v = strtod(s, &end);
		if (end == s)
			return -1;
		size_t best = 0, best_len = 0;
		for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
			size_t l = strlen(units[i].unit);
			if (l > best_len && strncmp(end, units[i].unit, l) == 0) {
				best = i;
				best_len = l;
			}
		}
		if (!best_len)
			return -1;
		total += v * units[best].ns;
		s = end + best_len;
	}
	return total < 9e18 ? (int64_t)total : -1;
}

int lm_time_arg(const char *arg, time_t now, char *buf, size_t len)
{
	struct timespec t;
	if (lm_parse_rfc3339(arg, &t) == 0) {
		lm_format_rfc3339(buf, len, &t);
		return 0;
	}
	size_t digits = strspn(arg, "0123456789");
	if (digits > 0 && digits < 16 &&
	    (!arg[digits] || (arg[digits] == '.' && arg[digits + 1] &&
			      strspn(arg + digits + 1, "0123456789") == strlen(arg + digits + 1)))) {
		t.tv_sec = (time_t)strtoll(arg, NULL, 10);
		t.tv_nsec = 0;
		if (arg[digits] == '.') {
			const char *f = arg + digits + 1;
			long scale = 100000000;
			for (; *f && scale; f++, scale /= 10)
				t.tv_nsec += (*f - '0') * scale;
		}
		lm_format_rfc3339(buf, len, &t);
		return 0;
	}
	int64_t ns = parse_duration(arg);
	if (ns < 0)
		return -1;
	int64_t at = (int64_t)now * 1000000000 - ns;
	t.tv_sec = (time_t)(at / 1000000000);
	t.tv_nsec = (long)(at % 1000000000);
	if (t.tv_nsec < 0) {
		t.tv_sec--;
		t.tv_nsec += 1000000000;
	}
	lm_format_rfc3339(buf, len, &t);
	return 0;
}

int lm_cri_parse(const char *line, size_t len, struct lm_cri_entry *e)
{
	const char *end = line + len;
	const char *sp1 = memchr(line, ' ', len);
	if (!sp1 || sp1 == line)
		return -1;
	const char *stream = sp1 + 1;
	const char *sp2 = memchr(stream, ' ', (size_t)(end - stream));
	if (!sp2)
		return -1;
	size_t sl = (size_t)(sp2 - stream);
	if (sl == 6 && memcmp(stream, "stdout", 6) == 0)
		e->is_stderr = false;
	else if (sl == 6 && memcmp(stream, "stderr", 6) == 0)
		e->is_stderr = true;
	else
		return -1;
	/* the tag field: "P" or "F", maybe with more ':'-separated tags later */
	const char *tag = sp2 + 1;
	const char *tag_end = memchr(tag, ' ', (size_t)(end - tag));
	if (!tag_end)
		tag_end = end;
	if (tag_end == tag || (*tag != 'P' && *tag != 'F') || (tag_end - tag > 1 && tag[1] != ':'))
		return -1;
	e->time = line;
	e->time_len = (size_t)(sp1 - line);
	e->partial = *tag == 'P';
	e->text = tag_end < end ? tag_end + 1 : end;
	e->text_len = (size_t)(end - e->text);
	return 0;
}

int lm_log_print(struct lm_log_printer *p, const char *line, size_t len, FILE *out, FILE *errout)
{
	struct lm_cri_entry e;
	if (lm_cri_parse(line, len, &e) < 0) {
		if (fwrite(line, 1, len, out) != len || fputc('\n', out) == EOF)
			return -1;
		return 0;
	}
	FILE *f = e.is_stderr ? errout : out;
	bool *open_line = &p->open_line[e.is_stderr];
	if (p->timestamps && !*open_line &&
	    (fwrite(e.time, 1, e.time_len, f) != e.time_len || fputc(' ', f) == EOF))
		return -1;
	if (fwrite(e.text, 1, e.text_len, f) != e.text_len || (!e.partial && fputc('\n', f) == EOF))
		return -1;
	*open_line = e.partial;
	return 0;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* An attribute's value as text: strings as they are, the rest as JSON. */
static void put_value(FILE *f, const json_t *v)
{
	if (json_is_string(v)) {
		fputs(json_string_value(v), f);
		return;
	}
	char *s = json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT);
	fputs(s ? s : "", f);
	free(s);
}

char *lm_format_event(const json_t *event)
{
	char *out = NULL;
	size_t n = 0;
	FILE *f = open_memstream(&out, &n);
	if (!f)
		return NULL;
	json_t *time = json_object_get(event, "time");
	if (json_is_number(time)) {
		double secs = json_number_value(time);
		struct timespec ts = {(time_t)secs, (long)((secs - (double)(time_t)secs) * 1e9)};
		char when[64];
		lm_format_rfc3339(when, sizeof(when), &ts);
		fputs(when, f);
	} else if (time) {
		put_value(f, time);
	}
	const char *type = json_string_value(json_object_get(event, "type"));
	const char *id = json_string_value(json_object_get(event, "id"));
	const char *name = json_string_value(json_object_get(event, "name"));
	fprintf(f, " container %s", type ? type : "?");
	if (id && *id)
		fprintf(f, " %.12s", id);

	json_t *attrs = json_object_get(event, "attrs");
	size_t n_keys = json_object_size(attrs), k = 0;
	const char **keys = calloc(n_keys + 1, sizeof(char *));
	const char *key;
	json_t *v;
	json_object_foreach(attrs, key, v)
		if (keys && strcmp(key, "name") != 0)
			keys[k++] = key;
	if (keys)
		qsort(keys, k, sizeof(char *), cmp_str);
	const char *sep = " (";
	if (name && *name) {
		fprintf(f, "%sname=%s", sep, name);
		sep = ", ";
	}
	for (size_t i = 0; i < k; i++) {
		fprintf(f, "%s%s=", sep, keys[i]);
		put_value(f, json_object_get(attrs, keys[i]));
		sep = ", ";
	}
	if (sep[0] == ',')
		fputc(')', f);
	free(keys);
	bool failed = ferror(f) || !keys;
	if (fclose(f) != 0 || failed) {
		free(out);
		return NULL;
	}
	return out;
}

double lm_stats_cpu_percent_json(const json_t *prev, const json_t *cur)
{
	double fallback = json_number_value(json_object_get(cur, "cpu_percent"));
	json_t *pc = json_object_get(prev, "cpu_usage_ns"), *cc = json_object_get(cur, "cpu_usage_ns");
	struct timespec pt, ct;
	if (!prev || !json_is_integer(pc) || !json_is_integer(cc) ||
	    lm_parse_rfc3339(json_string_value(json_object_get(prev, "read_at")), &pt) < 0 ||
	    lm_parse_rfc3339(json_string_value(json_object_get(cur, "read_at")), &ct) < 0)
		return fallback;
	double wall = (double)(ct.tv_sec - pt.tv_sec) * 1e9 + (double)(ct.tv_nsec - pt.tv_nsec);
	json_int_t cpu = json_integer_value(cc) - json_integer_value(pc);
	if (wall <= 0 || cpu < 0)
		return fallback;
	return (double)cpu / wall * 100.0;
}

void lm_format_stats_cells(const json_t *prev, const json_t *cur, uint64_t host_mem, struct lm_stats_cells *out)
{
	json_int_t usage = json_integer_value(json_object_get(cur, "memory_usage"));
	json_int_t limit = json_integer_value(json_object_get(cur, "memory_limit"));
	uint64_t u = usage > 0 ? (uint64_t)usage : 0, l = limit > 0 ? (uint64_t)limit : host_mem;
	char us[32], ls[32];
	lm_format_size(us, sizeof(us), u);
	lm_format_size(ls, sizeof(ls), l);
	snprintf(out->cpu, sizeof(out->cpu), "%.2f%%", lm_stats_cpu_percent_json(prev, cur));
	snprintf(out->mem, sizeof(out->mem), "%s / %s", us, ls);
	snprintf(out->mem_pct, sizeof(out->mem_pct), "%.2f%%", l ? (double)u / (double)l * 100.0 : 0.0);
	snprintf(out->pids, sizeof(out->pids), "%lld", (long long)json_integer_value(json_object_get(cur, "pids_current")));
}

/* --- tables --- */

struct lm_table {
	size_t n_cols, n_rows, cap_rows;
	char **cells;  /* row-major */
};

struct lm_table *lm_table_new(size_t n_cols)
{
	struct lm_table *t = calloc(1, sizeof(*t));
	if (t)
		t->n_cols = n_cols;
	return t;
}

int lm_table_add(struct lm_table *t, const char *const *cells)
{
	if (t->n_rows == t->cap_rows) {
		size_t cap = t->cap_rows ? t->cap_rows * 2 : 16;
		char **c = realloc(t->cells, cap * t->n_cols * sizeof(char *));
		if (!c)
			return -1;
		t->cells = c;
		t->cap_rows = cap;
	}
	char **row = t->cells + t->n_rows * t->n_cols;
	for (size_t i = 0; i < t->n_cols; i++) {
		row[i] = strdup(cells[i] ? cells[i] : "");
		if (!row[i]) {
			while (i-- > 0)
				free(row[i]);
			return -1;
		}
	}
	t->n_rows++;
	return 0;
}

/* Characters of a UTF-8 string: bytes that do not continue a sequence. */
static size_t width(const char *s)
{
	size_t w = 0;
	for (; *s; s++)
		w += ((unsigned char)*s & 0xC0) != 0x80;
	return w;
}

void lm_table_print(const struct lm_table *t, FILE *out)
{
	size_t *w = calloc(t->n_cols ? t->n_cols : 1, sizeof(size_t));
	if (!w)
		return;
	for (size_t r = 0; r < t->n_rows; r++)
		for (size_t c = 0; c < t->n_cols; c++) {
			size_t cw = width(t->cells[r * t->n_cols + c]);
			if (cw > w[c])
				w[c] = cw;
		}
	for (size_t r = 0; r < t->n_rows; r++) {
		for (size_t c = 0; c < t->n_cols; c++) {
			const char *cell = t->cells[r * t->n_cols + c];
			fputs(cell, out);
			if (c + 1 < t->n_cols)
				fprintf(out, "%*s", (int)(w[c] - width(cell) + 3), "");
		}
		fputc('\n', out);
	}
	free(w);
}

void lm_table_free(struct lm_table *t)
{
	if (!t)
		return;
	for (size_t i = 0; i < t->n_rows * t->n_cols; i++)
		free(t->cells[i]);
	free(t->cells);
	free(t);
}
