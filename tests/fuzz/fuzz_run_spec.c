/* libFuzzer target for the agent's create request (agent/run_spec.c).
 *
 * The body of POST /v1/containers is untrusted input: every byte string
 * must give a request or an error naming what is wrong, never a crash or a
 * leak.  The bytes go through jansson as the API server reads them. */
#include <jansson.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "agent/run_spec.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	json_t *req = json_loadb((const char *)data, size, JSON_REJECT_DUPLICATES, NULL);
	if (!req)
		return 0;
	struct lm_error err = {0};
	struct lm_run_spec s;
	if (lm_run_spec_parse(req, &s, &err) == 0) {
		if (!s.image || !s.image[0])
			abort(); /* a request without an image must not pass */
		lm_run_spec_free(&s);
	} else if (memchr(err.msg, '\0', sizeof(err.msg)) == NULL || err.msg[0] == '\0') {
		abort();
	}
	json_decref(req);
	return 0;
}
