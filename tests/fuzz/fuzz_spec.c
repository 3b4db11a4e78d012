/* libFuzzer target for the OCI config parser.
 *
 * config.json and process.json are the runtime's untrusted input: every byte
 * string must give either a spec or an error, never a crash, a leak or an
 * unterminated message.  The same input goes to both parsers, since they
 * share the process walker.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/spec.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_error(const struct lm_error *err)
{
	/* The message must be a terminated, non-empty string. */
	if (memchr(err->msg, '\0', sizeof(err->msg)) == NULL || err->msg[0] == '\0')
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct lm_error err = { 0 };
	struct lm_spec *spec = NULL;
	struct lm_process proc;

	if (lm_spec_parse((const char *)data, size, "/bundle", &spec, &err) == 0) {
		/* Touch what the runtime relies on having been validated. */
		if (!spec || !spec->root_path || spec->root_path[0] != '/' || !spec->process.args ||
		    !spec->process.args[0] || !spec->process.cwd || spec->process.cwd[0] != '/')
			abort();
		for (size_t i = 0; i < spec->n_mounts; i++) {
			if (!spec->mounts[i].destination || spec->mounts[i].destination[0] != '/')
				abort();
		}
		lm_spec_namespace(spec, LM_NS_USER);
		lm_spec_free(spec);
	} else {
		if (spec)
			abort();
		check_error(&err);
	}

	if (lm_process_parse((const char *)data, size, &proc, &err) == 0) {
		if (proc.n_args == 0 || !proc.args[proc.n_args - 1] || proc.args[proc.n_args])
			abort();
		lm_process_free(&proc);
	} else {
		check_error(&err);
	}
	return 0;
}
