/* A container's create request: the JSON the CLI sends to the agent
 * (POST /v1/containers) and that standalone `lamina run` goes through too, so
 * both paths accept and refuse exactly the same things.
 *
 * Parsing is strict (an unknown field is an error naming it, as the reference
 * agent's spec files are) and complete before anything is created: a request
 * that parses is one the agent can act on.  Sizes are docker's ("64m") or the
 * spec's ("64Mi") forms.
 */
#pragma once

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "image/oci_config.h"
#include "util/error.h"

enum lm_restart_kind { LM_RESTART_NO, LM_RESTART_ALWAYS, LM_RESTART_ON_FAILURE, LM_RESTART_UNLESS_STOPPED };

struct lm_run_spec {
	const char *name;            /* NULL: the agent picks one */
	const char *image;
	const char *pull;            /* pull policy name, NULL: if_not_present */
	const char *platform;
	struct lm_run_opts opts;     /* strings point into json */
	enum lm_restart_kind restart;
	int restart_max;             /* on-failure:N; 0 = unlimited */
	int stop_signal;             /* 0: the image's */
	int stop_timeout;            /* seconds; -1: the default (10) */
	bool auto_remove;            /* --rm */
	bool tty, interactive;
	uint16_t tty_rows, tty_cols; /* the terminal's first size; 0: none given */
	json_t *json;                /* the request (a reference is held) */
	/* owned arrays behind opts */
	char **cmd, **entrypoint, **env, **cap_add, **cap_drop;
	struct lm_run_mount *mounts;
};

/* Validate and take in a request; on failure nothing needs freeing. */
int lm_run_spec_parse(json_t *req, struct lm_run_spec *out, struct lm_error *err);
void lm_run_spec_free(struct lm_run_spec *s);

/* "64m", "64Mi", "1g", "512" (bytes): a positive size. */
int lm_parse_size(const char *s, int64_t *out);
/* "no", "always", "on-failure[:N]", "unless-stopped" (and the spec's
 * underscore spellings). */
int lm_restart_parse(const char *s, enum lm_restart_kind *kind, int *max, struct lm_error *err);
const char *lm_restart_name(enum lm_restart_kind kind);
