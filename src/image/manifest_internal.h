/* Shared between the distribution client (registry.c) and the offline
 * manifest/index parsing (manifest.c).  Nothing here is public API. */
#pragma once

#include <stdbool.h>
#include <string.h>

#include "image/registry.h"
#include "util/error.h"

/* The negative value lm_err returned for what err holds now. */
static inline int err_ret(const struct lm_error *err)
{
	return err->code > 0 ? -err->code : -1;
}

static inline bool is_manifest_type(const char *mt)
{
	return !strcmp(mt, LM_MEDIA_OCI_MANIFEST) || !strcmp(mt, LM_MEDIA_DOCKER_MANIFEST);
}

static inline bool is_index_type(const char *mt)
{
	return !strcmp(mt, LM_MEDIA_OCI_INDEX) || !strcmp(mt, LM_MEDIA_DOCKER_LIST);
}
