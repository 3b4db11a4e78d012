/* See opts.h. */
#include "cli/opts.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int strlist_add(struct strlist *l, char *s)
{
	char **nv = realloc(l->v, (l->n + 2) * sizeof(char *));
	if (!nv)
		return -1;
	l->v = nv;
	l->v[l->n++] = s;
	l->v[l->n] = NULL;
	return 0;
}

/* Are all letters of s one-letter flags?  With set, sets them. */
static bool short_flags(const char *s, const struct opt *opts, bool set)
{
	for (; *s; s++) {
		const struct opt *o = NULL;
		for (const struct opt *p = opts; p->name; p++)
			if (p->short_name == *s && p->kind == OPT_FLAG)
				o = p;
		if (!o)
			return false;
		if (set)
			*(bool *)o->dest = true;
	}
	return true;
}

/* Parse options from argv[*i] on, stopping at the first positional argument
 * or "--".  Returns 0, or -1 after printing an error. */
int parse_opts(int argc, char **argv, int *i, const struct opt *opts, const char *prog)
{
	while (*i < argc) {
		char *a = argv[*i];
		if (strcmp(a, "--") == 0) {
			(*i)++;
			return 0;
		}
		if (a[0] != '-' || a[1] == '\0')
			return 0;
		const struct opt *o = NULL;
		char *value = NULL;
		if (a[1] == '-') {
			char *name = a + 2;
			char *eq = strchr(name, '=');
			size_t nl = eq ? (size_t)(eq - name) : strlen(name);
			for (const struct opt *p = opts; p->name; p++)
				if (strlen(p->name) == nl && strncmp(p->name, name, nl) == 0)
					o = p;
			if (eq)
				value = eq + 1;
		} else if (a[2] == '\0') {
			for (const struct opt *p = opts; p->name; p++)
				if (p->short_name == a[1])
					o = p;
		} else if (short_flags(a + 1, opts, false)) {
			/* "-aq": several one-letter flags */
			short_flags(a + 1, opts, true);
			(*i)++;
			continue;
		}
		if (!o) {
			fprintf(stderr, "%s: unknown option %s\n", prog, a);
			return -1;
		}
		(*i)++;
		if (o->kind == OPT_FLAG) {
			bool on = true;
			if (value)
				on = strcmp(value, "false") != 0 && strcmp(value, "0") != 0;
			*(bool *)o->dest = on;
			continue;
		}
		if (!value) {
			if (*i >= argc) {
				fprintf(stderr, "%s: option --%s needs a value\n", prog, o->name);
				return -1;
			}
			value = argv[(*i)++];
		}
		if (o->kind == OPT_STRING) {
			*(const char **)o->dest = value;
		} else if (o->kind == OPT_INT) {
			char *end;
			errno = 0;
			long v = strtol(value, &end, 10);
			if (errno || *end || v < 0 || v > 1 << 20) {
				fprintf(stderr, "%s: --%s: not a valid number: %s\n", prog, o->name, value);
				return -1;
			}
			*(int *)o->dest = (int)v;
		} else if (strlist_add(o->dest, value) < 0) {
			fprintf(stderr, "%s: out of memory\n", prog);
			return -1;
		}
	}
	return 0;
}


int need_args(int argc, int i, int min, int max, const char *prog, const char *usage)
{
	int n = argc - i;
	if (n < min || (max >= 0 && n > max)) {
		fprintf(stderr, "usage: %s %s\n", prog, usage);
		return -1;
	}
	return 0;
}
