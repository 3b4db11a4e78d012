/* See auth.h.  Credentials files are read whenever credentials are needed
 * (only after a 401), so a `lamina login` is seen by a running agent without
 * a reload.  Tokens expire on the monotonic clock a little before the issuer
 * says, so a token never runs out between the check and the request. */
#include "image/auth.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <limits.h>
#include <openssl/evp.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "util/cleanup.h"
#include "util/fs.h"

#define AUTH_FILE_MAX (1u << 20)
/* Seconds before its announced expiry that a token stops being used. */
#define TOKEN_MARGIN 10

/* --- challenges -------------------------------------------------------- */

static bool is_tchar(char c)
{
	return isalnum((unsigned char)c) || (c && strchr("!#$%&'*+-.^_`|~", c));
}

static void skip_space(const char **p)
{
	while (**p == ' ' || **p == '\t')
		(*p)++;
}

/* A token or a quoted-string (backslash escapes) at *p; malloc'd. */
static char *parse_value(const char **p)
{
	const char *s = *p;
	if (*s != '"') {
		const char *e = s;
		while (is_tchar(*e) || *e == '/' || *e == ':' || *e == '=')
			e++;
		*p = e;
		return strndup(s, (size_t)(e - s));
	}
	s++;
	char *out = malloc(strlen(s) + 1);
	if (!out)
		return NULL;
	size_t n = 0;
	while (*s && *s != '"') {
		if (*s == '\\' && s[1])
			s++;
		out[n++] = *s++;
	}
	if (*s != '"') {
		free(out);
		return NULL;
	}
	out[n] = '\0';
	*p = s + 1;
	return out;
}

int lm_auth_parse_challenge(const char *header, struct lm_auth_challenge *out, struct lm_error *err)
{
	memset(out, 0, sizeof(*out));
	const char *p = header;
	skip_space(&p);
	const char *scheme = p;
	while (is_tchar(*p))
		p++;
	size_t slen = (size_t)(p - scheme);
	if (slen == 6 && strncasecmp(scheme, "bearer", 6) == 0)
		out->scheme = LM_AUTH_BEARER;
	else if (slen == 5 && strncasecmp(scheme, "basic", 5) == 0)
		out->scheme = LM_AUTH_BASIC;
	else
		return lm_err(err, ENOTSUP, "unsupported authentication scheme \"%.*s\"",
			      (int)(slen > 40 ? 40 : slen), scheme);
	for (;;) {
		while (*p == ' ' || *p == '\t' || *p == ',')
			p++;
		if (!*p)
			break;
		const char *name = p;
		while (is_tchar(*p))
			p++;
		size_t nlen = (size_t)(p - name);
		skip_space(&p);
		if (nlen == 0 || *p != '=') {
			/* A second challenge ("..., Basic realm=...") ends ours. */
			if (nlen > 0 && (*p == ' ' || is_tchar(*p)))
				break;
			lm_auth_challenge_free(out);
			return lm_err(err, EINVAL, "malformed WWW-Authenticate header \"%.200s\"", header);
		}
		p++;
		skip_space(&p);
		char *value = parse_value(&p);
		if (!value) {
			lm_auth_challenge_free(out);
			return lm_err(err, EINVAL, "malformed WWW-Authenticate header \"%.200s\"", header);
		}
		char **slot = NULL;
		if (nlen == 5 && strncasecmp(name, "realm", 5) == 0)
			slot = &out->realm;
		else if (nlen == 7 && strncasecmp(name, "service", 7) == 0)
			slot = &out->service;
		else if (nlen == 5 && strncasecmp(name, "scope", 5) == 0)
			slot = &out->scope;
		else if (nlen == 5 && strncasecmp(name, "error", 5) == 0)
			slot = &out->error;
		if (slot) {
			free(*slot);
			*slot = value;
		} else {
			free(value);
		}
	}
	if (out->scheme == LM_AUTH_BEARER && (!out->realm || !*out->realm)) {
		lm_auth_challenge_free(out);
		return lm_err(err, EINVAL, "bearer challenge without a realm: \"%.200s\"", header);
	}
	return 0;
}

void lm_auth_challenge_free(struct lm_auth_challenge *ch)
{
	free(ch->realm);
	free(ch->service);
	free(ch->scope);
	free(ch->error);
	memset(ch, 0, sizeof(*ch));
}

int lm_auth_parse_token(const char *body, size_t len, char **token, long *expires_in,
			struct lm_error *err)
{
	json_error_t jerr;
	json_auto_t *root = json_loadb(body, len, 0, &jerr);
	if (!json_is_object(root))
		return lm_err(err, EBADMSG, "token response is not a JSON object");
	const char *t = json_string_value(json_object_get(root, "token"));
	if (!t || !*t)
		t = json_string_value(json_object_get(root, "access_token"));
	if (!t || !*t)
		return lm_err(err, EBADMSG, "token response has no token");
	json_t *exp = json_object_get(root, "expires_in");
	long e = json_is_integer(exp) ? (long)json_integer_value(exp) : 0;
	*expires_in = e < 60 ? 60 : e;
	*token = strdup(t);
	if (!*token)
		return lm_err(err, ENOMEM, "out of memory");
	return 0;
}

/* --- credentials ------------------------------------------------------- */

void lm_credentials_free(struct lm_credentials *c)
{
	if (c->password)
		explicit_bzero(c->password, strlen(c->password));
	free(c->user);
	free(c->password);
	c->user = c->password = NULL;
}

char *lm_auth_default_file(void)
{
	const char *env = getenv("REGISTRY_AUTH_FILE");
	if (env && *env)
		return strdup(env);
	const char *home = getenv("HOME");
	if (!home || !*home) {
		struct passwd *pw = getpwuid(geteuid());
		home = pw ? pw->pw_dir : "/root";
	}
	char *path = NULL;
	if (asprintf(&path, "%s/.docker/config.json", home) < 0)
		return NULL;
	return path;
}

char *lm_auth_normalize_registry(const char *name)
{
	const char *s = name;
	if (strncasecmp(s, "https://", 8) == 0)
		s += 8;
	else if (strncasecmp(s, "http://", 7) == 0)
		s += 7;
	size_t n = strcspn(s, "/");
	char *out = strndup(s, n);
	if (!out)
		return NULL;
	for (char *c = out; *c; c++)
		*c = (char)tolower((unsigned char)*c);
	if (!strcmp(out, "index.docker.io") || !strcmp(out, "registry-1.docker.io") ||
	    !strcmp(out, "registry.hub.docker.com")) {
		free(out);
		out = strdup("docker.io");
	}
	return out;
}

/* Does key apply to registry/repository?  Returns how specific the match is
 * (0: no match; 1: the whole registry; 1 + prefix length for namespace keys). */
static size_t key_match(const char *key, const char *registry, const char *repository)
{
	bool url = strstr(key, "://") != NULL;
	autofree char *khost = lm_auth_normalize_registry(key);
	autofree char *rhost = lm_auth_normalize_registry(registry);
	if (!khost || !rhost || strcmp(khost, rhost) != 0)
		return 0;
	const char *after = strchr(url ? strstr(key, "://") + 3 : key, '/');
	/* URL keys carry API paths ("/v1/"), not namespaces. */
	if (url || !after || !after[1])
		return 1;
	const char *ns = after + 1;
	size_t nl = strlen(ns);
	while (nl && ns[nl - 1] == '/')
		nl--;
	if (!repository || strncmp(repository, ns, nl) != 0 ||
	    (repository[nl] != '\0' && repository[nl] != '/'))
		return 0;
	return 1 + nl;
}

static int decode_auth(const char *b64, struct lm_credentials *out, struct lm_error *err)
{
	size_t n = strlen(b64);
	if (n == 0 || n > 8192)
		return lm_err(err, EINVAL, "invalid \"auth\" value");
	autofree unsigned char *buf = malloc(n + 4);
	if (!buf)
		return lm_err(err, ENOMEM, "out of memory");
	/* EVP_DecodeBlock wants a multiple of 4 and counts '=' padding as data. */
	autofree char *padded = malloc(n + 4);
	if (!padded)
		return lm_err(err, ENOMEM, "out of memory");
	memcpy(padded, b64, n);
	while (n % 4)
		padded[n++] = '=';
	padded[n] = '\0';
	int len = EVP_DecodeBlock(buf, (unsigned char *)padded, (int)n);
	if (len < 0)
		return lm_err(err, EINVAL, "invalid \"auth\" value: not base64");
	for (size_t i = n; i > 0 && padded[i - 1] == '='; i--)
		len--;
	buf[len] = '\0';
	if (memchr(buf, '\0', (size_t)len))
		return lm_err(err, EINVAL, "invalid \"auth\" value");
	char *colon = strchr((char *)buf, ':');
	if (!colon)
		return lm_err(err, EINVAL, "invalid \"auth\" value: expected base64 of user:password");
	*colon = '\0';
	out->user = strdup((char *)buf);
	out->password = strdup(colon + 1);
	explicit_bzero(buf, (size_t)len);
	if (!out->user || !out->password) {
		lm_credentials_free(out);
		return lm_err(err, ENOMEM, "out of memory");
	}
	return 0;
}

int lm_auth_lookup_json(const char *json, size_t len, const char *registry,
			const char *repository, struct lm_credentials *out, struct lm_error *err)
{
	memset(out, 0, sizeof(*out));
	json_error_t jerr;
	json_auto_t *root = json_loadb(json, len, 0, &jerr);
	if (!root)
		return lm_err(err, EINVAL, "line %d: %s", jerr.line, jerr.text);
	if (!json_is_object(root))
		return lm_err(err, EINVAL, "not a JSON object");

	json_t *auths = json_object_get(root, "auths");
	json_t *best = NULL;
	const char *best_key = NULL;
	size_t best_score = 0;
	if (json_is_object(auths)) {
		const char *key;
		json_t *val;
		json_object_foreach(auths, key, val) {
			size_t score = key_match(key, registry, repository);
			if (score > best_score) {
				best = val;
				best_key = key;
				best_score = score;
			}
		}
	}

	if (best && json_is_object(best)) {
		const char *a = json_string_value(json_object_get(best, "auth"));
		const char *u = json_string_value(json_object_get(best, "username"));
		const char *pw = json_string_value(json_object_get(best, "password"));
		if (a && *a) {
			if (decode_auth(a, out, err) < 0)
				return lm_error_prefix(err, "auths[\"%s\"]", best_key);
			return 1;
		}
		if (u && *u) {
			out->user = strdup(u);
			out->password = strdup(pw ? pw : "");
			if (!out->user || !out->password) {
				lm_credentials_free(out);
				return lm_err(err, ENOMEM, "out of memory");
			}
			return 1;
		}
		if (json_string_value(json_object_get(best, "identitytoken")))
			return lm_err(err, ENOTSUP,
				      "auths[\"%s\"] holds an identity token: identity tokens are not supported "
				      "(log in with a user name and password)", best_key);
	}

	json_t *helpers = json_object_get(root, "credHelpers");
	if (json_is_object(helpers)) {
		const char *key;
		json_t *val;
		json_object_foreach(helpers, key, val) {
			if (key_match(key, registry, repository))
				return lm_err(err, ENOTSUP,
					      "credentials for %s are configured through credHelpers (\"%s\"): "
					      "credential helpers are not supported",
					      registry, json_string_value(val) ? json_string_value(val) : "?");
		}
	}
	/* With a global store, an empty auths entry means "the helper has it". */
	const char *store = json_string_value(json_object_get(root, "credsStore"));
	if (store && *store && best)
		return lm_err(err, ENOTSUP,
			      "credentials for %s are kept by credsStore \"%s\": credential helpers are not "
			      "supported", registry, store);
	return 0;
}

int lm_auth_lookup(const char *file, const char *registry, const char *repository,
		   struct lm_credentials *out, struct lm_error *err)
{
	memset(out, 0, sizeof(*out));
	autofree char *def = NULL;
	if (!file) {
		def = lm_auth_default_file();
		if (!def)
			return lm_err(err, ENOMEM, "out of memory");
		file = def;
	}
	autofree char *data = NULL;
	size_t len = 0;
	if (lm_read_file_at(AT_FDCWD, file, AUTH_FILE_MAX, &data, &len, err) < 0) {
		if (err->code == ENOENT) {
			lm_error_clear(err);
			return 0;
		}
		return lm_error_prefix(err, "credentials");
	}
	int r = lm_auth_lookup_json(data, len, registry, repository, out, err);
	explicit_bzero(data, len);
	if (r < 0)
		return lm_error_prefix(err, "credentials file %s", file);
	return r;
}

static char *base64(const void *data, size_t len)
{
	char *out = malloc(4 * ((len + 2) / 3) + 1);
	if (out)
		EVP_EncodeBlock((unsigned char *)out, data, (int)len);
	return out;
}

char *lm_auth_basic_header(const struct lm_credentials *cred)
{
	autofree char *pair = NULL;
	if (asprintf(&pair, "%s:%s", cred->user, cred->password ? cred->password : "") < 0)
		return NULL;
	autofree char *enc = base64(pair, strlen(pair));
	explicit_bzero(pair, strlen(pair));
	if (!enc)
		return NULL;
	char *out = NULL;
	if (asprintf(&out, "Basic %s", enc) < 0)
		out = NULL;
	explicit_bzero(enc, strlen(enc));
	return out;
}

static int make_parent_dir(const char *file, struct lm_error *err)
{
	const char *slash = strrchr(file, '/');
	if (!slash || slash == file)
		return 0;
	autofree char *dir = strndup(file, (size_t)(slash - file));
	if (!dir)
		return lm_err(err, ENOMEM, "out of memory");
	for (char *p = dir + 1;; p++) {
		if (*p && *p != '/')
			continue;
		char c = *p;
		*p = '\0';
		if (mkdir(dir, 0700) < 0 && errno != EEXIST)
			return lm_err_sys(err, "create %s", dir);
		*p = c;
		if (!c)
			return 0;
	}
}

int lm_auth_save(const char *file, const char *registry, const char *user, const char *password,
		 struct lm_error *err)
{
	autofree char *def = NULL;
	if (!file) {
		def = lm_auth_default_file();
		if (!def)
			return lm_err(err, ENOMEM, "out of memory");
		file = def;
	}
	if (!user || !*user || strchr(user, ':'))
		return lm_err(err, EINVAL, "login %s: invalid user name", registry);

	autofree char *data = NULL;
	size_t len = 0;
	json_auto_t *root = NULL;
	if (lm_read_file_at(AT_FDCWD, file, AUTH_FILE_MAX, &data, &len, err) == 0) {
		json_error_t jerr;
		root = json_loadb(data, len, 0, &jerr);
		explicit_bzero(data, len);
		if (!json_is_object(root))
			return lm_err(err, EINVAL, "login %s: %s is not a JSON object; not overwriting it",
				      registry, file);
	} else if (err->code == ENOENT) {
		lm_error_clear(err);
		root = json_object();
		if (make_parent_dir(file, err) < 0)
			return lm_error_prefix(err, "login %s", registry);
	} else {
		return lm_error_prefix(err, "login %s", registry);
	}
	if (!root)
		return lm_err(err, ENOMEM, "out of memory");

	json_t *auths = json_object_get(root, "auths");
	if (!json_is_object(auths)) {
		auths = json_object();
		if (!auths || json_object_set_new(root, "auths", auths) < 0)
			return lm_err(err, ENOMEM, "out of memory");
	}
	/* Docker Hub's canonical key is the legacy v1 URL; keep what docker writes. */
	autofree char *norm = lm_auth_normalize_registry(registry);
	if (!norm)
		return lm_err(err, ENOMEM, "out of memory");
	const char *key = strcmp(norm, "docker.io") == 0 ? "https://index.docker.io/v1/" : registry;
	/* Drop other spellings of the same registry, so lookups are unambiguous. */
	const char *k;
	json_t *v;
	void *tmp;
	json_object_foreach_safe(auths, tmp, k, v) {
		if (strcmp(k, key) != 0 && key_match(k, registry, NULL) == 1)
			json_object_del(auths, k);
	}
	struct lm_credentials cred = {.user = (char *)user, .password = (char *)password};
	autofree char *basic = lm_auth_basic_header(&cred);
	if (!basic)
		return lm_err(err, ENOMEM, "out of memory");
	json_t *entry = json_pack("{s:s}", "auth", basic + 6);
	explicit_bzero(basic, strlen(basic));
	if (!entry || json_object_set_new(auths, key, entry) < 0)
		return lm_err(err, ENOMEM, "out of memory");

	autofree char *text = json_dumps(root, JSON_INDENT(1) | JSON_SORT_KEYS);
	if (!text)
		return lm_err(err, ENOMEM, "out of memory");
	size_t tlen = strlen(text);
	autofree char *with_nl = malloc(tlen + 2);
	if (!with_nl)
		return lm_err(err, ENOMEM, "out of memory");
	memcpy(with_nl, text, tlen);
	with_nl[tlen] = '\n';
	explicit_bzero(text, tlen);
	int r = lm_write_file_atomic_at(AT_FDCWD, file, with_nl, tlen + 1, 0600, err);
	explicit_bzero(with_nl, tlen + 1);
	if (r < 0)
		return lm_error_prefix(err, "login %s", registry);
	return 0;
}

/* --- the store --------------------------------------------------------- */

struct lm_auth_host {
	struct lm_auth_host *next;
	char *host;
	enum lm_auth_scheme scheme;
	char *realm;
	char *service;
};

struct lm_auth_token {
	struct lm_auth_token *next;
	char *host;
	char *scope;
	char *token;
	struct timespec expires;  /* CLOCK_MONOTONIC */
};

static struct timespec now_mono(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts;
}

void lm_auth_store_init(struct lm_auth_store *s)
{
	pthread_mutex_init(&s->lock, NULL);
	s->hosts = NULL;
	s->tokens = NULL;
}

static void token_free(struct lm_auth_token *t)
{
	if (t->token)
		explicit_bzero(t->token, strlen(t->token));
	free(t->host);
	free(t->scope);
	free(t->token);
	free(t);
}

void lm_auth_store_destroy(struct lm_auth_store *s)
{
	for (struct lm_auth_host *h = s->hosts, *n; h; h = n) {
		n = h->next;
		free(h->host);
		free(h->realm);
		free(h->service);
		free(h);
	}
	for (struct lm_auth_token *t = s->tokens, *n; t; t = n) {
		n = t->next;
		token_free(t);
	}
	s->hosts = NULL;
	s->tokens = NULL;
	pthread_mutex_destroy(&s->lock);
}

int lm_auth_store_note(struct lm_auth_store *s, const char *host, const struct lm_auth_challenge *ch)
{
	char *realm = ch->realm ? strdup(ch->realm) : NULL;
	char *service = ch->service ? strdup(ch->service) : NULL;
	if ((ch->realm && !realm) || (ch->service && !service)) {
		free(realm);
		free(service);
		return -ENOMEM;
	}
	pthread_mutex_lock(&s->lock);
	struct lm_auth_host *h = s->hosts;
	while (h && strcmp(h->host, host) != 0)
		h = h->next;
	if (!h) {
		h = calloc(1, sizeof(*h));
		if (h)
			h->host = strdup(host);
		if (!h || !h->host) {
			free(h);
			pthread_mutex_unlock(&s->lock);
			free(realm);
			free(service);
			return -ENOMEM;
		}
		h->next = s->hosts;
		s->hosts = h;
	}
	h->scheme = ch->scheme;
	free(h->realm);
	free(h->service);
	h->realm = realm;
	h->service = service;
	pthread_mutex_unlock(&s->lock);
	return 0;
}

enum lm_auth_scheme lm_auth_store_scheme(struct lm_auth_store *s, const char *host, char **realm,
					 char **service)
{
	enum lm_auth_scheme scheme = LM_AUTH_NONE;
	*realm = *service = NULL;
	pthread_mutex_lock(&s->lock);
	for (struct lm_auth_host *h = s->hosts; h; h = h->next) {
		if (strcmp(h->host, host) != 0)
			continue;
		scheme = h->scheme;
		*realm = h->realm ? strdup(h->realm) : NULL;
		*service = h->service ? strdup(h->service) : NULL;
		break;
	}
	pthread_mutex_unlock(&s->lock);
	if (scheme == LM_AUTH_BEARER && !*realm) {
		free(*service);
		*service = NULL;
		scheme = LM_AUTH_NONE;
	}
	return scheme;
}

static bool expired(const struct lm_auth_token *t, struct timespec now)
{
	return now.tv_sec + TOKEN_MARGIN >= t->expires.tv_sec;
}

char *lm_auth_store_token(struct lm_auth_store *s, const char *host, const char *scope)
{
	char *out = NULL;
	struct timespec now = now_mono();
	pthread_mutex_lock(&s->lock);
	for (struct lm_auth_token **pt = &s->tokens; *pt;) {
		struct lm_auth_token *t = *pt;
		if (expired(t, now)) {
			*pt = t->next;
			token_free(t);
			continue;
		}
		if (!out && strcmp(t->host, host) == 0 && strcmp(t->scope, scope) == 0)
			out = strdup(t->token);
		pt = &t->next;
	}
	pthread_mutex_unlock(&s->lock);
	return out;
}

int lm_auth_store_put_token(struct lm_auth_store *s, const char *host, const char *scope,
			    const char *token, long expires_in)
{
	struct lm_auth_token *t = calloc(1, sizeof(*t));
	if (!t)
		return -ENOMEM;
	t->host = strdup(host);
	t->scope = strdup(scope);
	t->token = strdup(token);
	if (!t->host || !t->scope || !t->token) {
		token_free(t);
		return -ENOMEM;
	}
	t->expires = now_mono();
	t->expires.tv_sec += expires_in;
	pthread_mutex_lock(&s->lock);
	for (struct lm_auth_token **pt = &s->tokens; *pt; pt = &(*pt)->next) {
		struct lm_auth_token *o = *pt;
		if (strcmp(o->host, host) == 0 && strcmp(o->scope, scope) == 0) {
			*pt = o->next;
			token_free(o);
			break;
		}
	}
	t->next = s->tokens;
	s->tokens = t;
	pthread_mutex_unlock(&s->lock);
	return 0;
}

void lm_auth_store_drop_token(struct lm_auth_store *s, const char *host, const char *scope,
			      const char *token)
{
	pthread_mutex_lock(&s->lock);
	for (struct lm_auth_token **pt = &s->tokens; *pt; pt = &(*pt)->next) {
		struct lm_auth_token *t = *pt;
		if (strcmp(t->host, host) == 0 && strcmp(t->scope, scope) == 0 &&
		    (!token || strcmp(t->token, token) == 0)) {
			*pt = t->next;
			token_free(t);
			break;
		}
	}
	pthread_mutex_unlock(&s->lock);
}
