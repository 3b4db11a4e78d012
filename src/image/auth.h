/* Registry authentication: credentials, challenges, tokens.
 *
 * Credentials come from a Docker-style JSON file ($REGISTRY_AUTH_FILE, else
 * ~/.docker/config.json): `auths` → {"auth": base64("user:pass")} or
 * {"username", "password"}.  Keys may be bare hosts, URLs
 * ("https://index.docker.io/v1/") or host/namespace prefixes (podman's form,
 * the longest matching prefix wins).  Credential helpers are not run: a
 * registry that only has one configured gets a clear error instead of a
 * silent anonymous pull.
 *
 * The HTTP side of the bearer-token flow lives in registry.c (and with it
 * lm_auth_verify, which `lamina login` calls before lm_auth_save); this module
 * parses WWW-Authenticate and token responses and keeps what was learned
 * (scheme per host, tokens per host and scope) in a thread-safe store.
 */
#pragma once

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>

#include "util/error.h"

/* --- challenges -------------------------------------------------------- */

enum lm_auth_scheme { LM_AUTH_NONE, LM_AUTH_BASIC, LM_AUTH_BEARER };

struct lm_auth_challenge {
	enum lm_auth_scheme scheme;
	char *realm;
	char *service;
	char *scope;
	char *error;  /* "invalid_token", "insufficient_scope", ... */
};

/* Parse one WWW-Authenticate value.  Unknown schemes are an error (ENOTSUP). */
int lm_auth_parse_challenge(const char *header, struct lm_auth_challenge *out, struct lm_error *err);
void lm_auth_challenge_free(struct lm_auth_challenge *ch);

/* A token endpoint's answer: "token" (or "access_token") and "expires_in"
 * (seconds; missing or below 60 means 60, as the token spec says). */
int lm_auth_parse_token(const char *body, size_t len, char **token, long *expires_in,
			struct lm_error *err);

/* --- credentials ------------------------------------------------------- */

struct lm_credentials {
	char *user;
	char *password;
};

void lm_credentials_free(struct lm_credentials *c);
/* The credentials file to use when none is given: $REGISTRY_AUTH_FILE, else
 * $HOME/.docker/config.json (HOME from the passwd entry when unset).  Malloc'd. */
char *lm_auth_default_file(void);
/* Credentials for registry (and repository, for namespace-scoped keys; may be
 * NULL).  Returns 1 and fills out when found, 0 when there are none (a missing
 * file is "none"), negative on a broken file or helper-only configuration. */
int lm_auth_lookup(const char *file, const char *registry, const char *repository,
		   struct lm_credentials *out, struct lm_error *err);
/* Same, from the file's contents (tests). */
int lm_auth_lookup_json(const char *json, size_t len, const char *registry,
			const char *repository, struct lm_credentials *out, struct lm_error *err);
/* Store user/password for registry in file (NULL: the default file): other
 * entries and keys are kept; written atomically, mode 0600; missing parent
 * directories are created 0700. */
int lm_auth_save(const char *file, const char *registry, const char *user, const char *password,
		 struct lm_error *err);
/* "Basic base64(user:password)" for an Authorization header; malloc'd or NULL. */
char *lm_auth_basic_header(const struct lm_credentials *cred);
/* The key form used to compare registries: lowercase host[:port], URL scheme
 * and path dropped, Docker Hub's aliases mapped to "docker.io"; malloc'd. */
char *lm_auth_normalize_registry(const char *name);

/* --- what a client learned --------------------------------------------- */

struct lm_auth_host;
struct lm_auth_token;

struct lm_auth_store {
	pthread_mutex_t lock;
	struct lm_auth_host *hosts;
	struct lm_auth_token *tokens;
};

void lm_auth_store_init(struct lm_auth_store *s);
void lm_auth_store_destroy(struct lm_auth_store *s);
/* Remember that host asked for ch's scheme (realm and service for bearer). */
int lm_auth_store_note(struct lm_auth_store *s, const char *host, const struct lm_auth_challenge *ch);
/* The scheme host asked for last (LM_AUTH_NONE when unknown); for bearer the
 * realm and service are copied out (malloc'd). */
enum lm_auth_scheme lm_auth_store_scheme(struct lm_auth_store *s, const char *host, char **realm,
					 char **service);
/* A live token for (host, scope), malloc'd, or NULL. */
char *lm_auth_store_token(struct lm_auth_store *s, const char *host, const char *scope);
int lm_auth_store_put_token(struct lm_auth_store *s, const char *host, const char *scope,
			    const char *token, long expires_in);
/* Forget token for (host, scope) if it is still the one cached: a request it
 * was refused for must not evict a newer token another thread fetched. */
void lm_auth_store_drop_token(struct lm_auth_store *s, const char *host, const char *scope,
			      const char *token);
