/* The option parser every command line of lamina shares: options before
 * positional arguments (as runc and docker have them), "--opt value" and
 * "--opt=value", short one-letter forms (one-letter flags also grouped:
 * "-aq"), repeatable list options. */
#pragma once

#include <stdbool.h>
#include <stddef.h>

enum opt_kind { OPT_FLAG, OPT_STRING, OPT_LIST, OPT_INT };

struct opt {
	const char *name;  /* long name without dashes */
	char short_name;   /* 0 if none */
	enum opt_kind kind;
	void *dest;        /* bool*, const char**, struct strlist*, int* */
};

struct strlist {
	char **v;   /* NULL-terminated; the strings belong to argv */
	size_t n;
};

/* Append s (not copied); -1 when out of memory. */
int strlist_add(struct strlist *l, char *s);

/* Parse options from argv[*i] on, stopping at the first positional argument
 * or "--".  Errors are printed as "<prog>: ..."; returns 0 or -1. */
int parse_opts(int argc, char **argv, int *i, const struct opt *opts, const char *prog);
/* Exactly min..max (max < 0: no limit) positional arguments left, else the usage line. */
int need_args(int argc, int i, int min, int max, const char *prog, const char *usage);
