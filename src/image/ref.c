/* See ref.h.  A reference is split from the right: "@digest" first, then
 * ":tag" only when the last ':' comes after the last '/' (so the port in
 * "host:5000/app" is never mistaken for a tag), and what is left is the
 * name.  Each part is checked against the distribution spec grammar by a
 * small hand-written matcher rather than a regex, so every failure can say
 * which rule was broken ("repository names must be lowercase") instead of
 * "invalid reference format".  A first component with '.' or ':', or
 * "localhost", is a registry; anything else is the first path component on
 * the default registry.
 */
#include "image/ref.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "image/digest.h"
#include "util/cleanup.h"

#define DOCKER_HUB "docker.io"
#define DOCKER_HUB_LEGACY "index.docker.io"
#define DOCKER_HUB_ENDPOINT "registry-1.docker.io"
#define NAME_MAX_LEN 255
#define TAG_MAX_LEN 128
/* Longest reference shown verbatim in an error; longer ones are cut. */
#define SHOW_MAX 200

/* "invalid reference "TEXT": why", with TEXT cut to a printable length. */
__attribute__((format(printf, 4, 5))) static int bad(struct lm_error *err, int code, const char *text,
						      const char *fmt, ...)
{
	char why[LM_ERROR_MSG_MAX];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	/* The text is untrusted: control bytes would garble a terminal or a log line. */
	char shown[SHOW_MAX + 4];
	size_t n = 0;
	for (; text[n] && n < SHOW_MAX; n++)
		shown[n] = (unsigned char)text[n] < ' ' || (unsigned char)text[n] >= 0x7f ? '?' : text[n];
	strcpy(shown + n, text[n] ? "..." : "");
	return lm_err(err, code, "invalid reference \"%s\": %s", shown, why);
}

static bool is_lower_alnum(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

static bool is_alnum(char c)
{
	return is_lower_alnum(c) || (c >= 'A' && c <= 'Z');
}

/* path-component := [a-z0-9]+ (separator [a-z0-9]+)*
 * separator      := '.' | '_' | '__' | '-'+
 * Returns NULL when the component is valid, else the rule it breaks. */
static const char *check_path_component(const char *s, size_t n)
{
	if (n == 0)
		return "empty path component (\"//\", or a leading or trailing '/')";
	for (size_t i = 0; i < n; i++)
		if (s[i] >= 'A' && s[i] <= 'Z')
			return "repository names must be lowercase";
	for (size_t i = 0; i < n; i++)
		if (!is_lower_alnum(s[i]) && s[i] != '.' && s[i] != '_' && s[i] != '-')
			return "repository names may only contain [a-z0-9], '.', '_', '-' and '/'";
	if (!is_lower_alnum(s[0]) || !is_lower_alnum(s[n - 1]))
		return "each path component must start and end with a lowercase letter or digit";
	size_t i = 0;
	while (i < n) {
		if (is_lower_alnum(s[i])) {
			i++;
			continue;
		}
		size_t j = i;
		while (j < n && !is_lower_alnum(s[j]))
			j++;
		size_t run = j - i;
		bool all_dash = true;
		for (size_t k = i; k < j; k++)
			all_dash &= s[k] == '-';
		bool ok = all_dash || (run == 1 && (s[i] == '.' || s[i] == '_')) ||
			  (run == 2 && s[i] == '_' && s[i + 1] == '_');
		if (!ok)
			return "separators in a path component are '.', '_', '__' or a run of '-'";
		i = j;
	}
	return NULL;
}

/* domain := host [':' port];  host := dns-name | IPv4 | '[' IPv6 ']' */
static const char *check_domain(const char *s, size_t n)
{
	if (n == 0)
		return "empty registry name";
	const char *host = s;
	size_t hn = n;
	const char *colon = NULL;
	if (s[0] == '[') {
		const char *close = memchr(s, ']', n);
		if (!close)
			return "registry IPv6 address is missing its ']'";
		char addr[INET6_ADDRSTRLEN + 1];
		size_t an = (size_t)(close - s - 1);
		if (an == 0 || an >= sizeof(addr))
			return "registry IPv6 address is not valid";
		memcpy(addr, s + 1, an);
		addr[an] = '\0';
		struct in6_addr a6;
		if (inet_pton(AF_INET6, addr, &a6) != 1)
			return "registry IPv6 address is not valid";
		size_t rest = n - (size_t)(close - s) - 1;
		if (rest > 0 && close[1] != ':')
			return "unexpected characters after the registry IPv6 address";
		colon = rest > 0 ? close + 1 : NULL;
		hn = 0;
	} else {
		colon = memchr(s, ':', n);
		hn = colon ? (size_t)(colon - s) : n;
		if (hn == 0)
			return "empty registry host name";
		/* dns-name := label ('.' label)*;  label := [A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])? */
		size_t i = 0;
		while (i < hn) {
			size_t j = i;
			while (j < hn && host[j] != '.')
				j++;
			if (j == i)
				return "empty label in the registry host name";
			if (!is_alnum(host[i]) || !is_alnum(host[j - 1]))
				return "registry host name labels must start and end with a letter or digit";
			for (size_t k = i; k < j; k++)
				if (!is_alnum(host[k]) && host[k] != '-')
					return "registry host names may only contain letters, digits, '-' and '.'";
			i = j + 1;
			if (j < hn && i == hn)
				return "registry host name ends with '.'";
		}
	}
	if (colon) {
		const char *port = colon + 1;
		size_t pn = n - (size_t)(port - s);
		if (pn == 0 || pn > 5)
			return "registry port must be a number from 1 to 65535";
		unsigned long v = 0;
		for (size_t i = 0; i < pn; i++) {
			if (port[i] < '0' || port[i] > '9')
				return "registry port must be a number from 1 to 65535";
			v = v * 10 + (unsigned long)(port[i] - '0');
		}
		if (v == 0 || v > 65535)
			return "registry port must be a number from 1 to 65535";
	}
	return NULL;
}

/* tag := [A-Za-z0-9_][A-Za-z0-9_.-]{0,127} */
static const char *check_tag(const char *s)
{
	size_t n = strlen(s);
	if (n == 0)
		return "empty tag after ':'";
	if (n > TAG_MAX_LEN)
		return "tags are at most 128 characters";
	if (!is_alnum(s[0]) && s[0] != '_')
		return "tags must start with a letter, digit or '_'";
	for (size_t i = 1; i < n; i++)
		if (!is_alnum(s[i]) && s[i] != '_' && s[i] != '.' && s[i] != '-')
			return "tags may only contain letters, digits, '_', '.' and '-'";
	return NULL;
}

static bool is_hex64(const char *s)
{
	if (strlen(s) != 64)
		return false;
	for (; *s; s++)
		if (!((*s >= '0' && *s <= '9') || (*s >= 'a' && *s <= 'f')))
			return false;
	return true;
}

int lm_image_ref_parse(const char *text, const char *default_registry, struct lm_image_ref *ref,
		       struct lm_error *err)
{
	memset(ref, 0, sizeof(*ref));
	if (!text || !*text)
		return lm_err(err, EINVAL, "invalid reference \"\": empty image reference");
	for (const char *p = text; *p; p++)
		if ((unsigned char)*p <= ' ' || (unsigned char)*p >= 0x7f)
			return bad(err, EINVAL, text, "contains whitespace or a non-ASCII character");
	if (is_hex64(text))
		return bad(err, EINVAL, text,
			   "a 64-character hexadecimal string is an image id, not a repository name");

	autofree char *copy = strdup(text);
	if (!copy)
		return lm_err(err, ENOMEM, "out of memory");

	char *digest = NULL;
	char *at = strchr(copy, '@');
	if (at) {
		*at = '\0';
		digest = at + 1;
		if (!*digest)
			return bad(err, EINVAL, text, "empty digest after '@'");
		if (strchr(digest, '@'))
			return bad(err, EINVAL, text, "more than one '@'");
		struct lm_error derr = { 0 };
		if (lm_digest_validate(digest, &derr) < 0)
			return bad(err, derr.code, text, "%s", derr.msg);
	}

	char *tag = NULL;
	char *last_slash = strrchr(copy, '/');
	char *last_colon = strrchr(copy, ':');
	if (last_colon && (!last_slash || last_colon > last_slash)) {
		*last_colon = '\0';
		tag = last_colon + 1;
		const char *why = check_tag(tag);
		if (why)
			return bad(err, EINVAL, text, "%s", why);
	}

	const char *name = copy;
	size_t name_len = strlen(name);
	if (name_len == 0)
		return bad(err, EINVAL, text, "missing repository name");
	if (name_len > NAME_MAX_LEN)
		return bad(err, EINVAL, text, "repository name is %zu characters, more than %d", name_len,
			   NAME_MAX_LEN);

	const char *registry = default_registry && *default_registry ? default_registry : DOCKER_HUB;
	const char *remote = name;
	size_t registry_len = strlen(registry);
	const char *first_slash = strchr(name, '/');
	if (first_slash) {
		size_t fl = (size_t)(first_slash - name);
		if (memchr(name, '.', fl) || memchr(name, ':', fl) || (fl == 9 && memcmp(name, "localhost", 9) == 0)) {
			registry = name;
			registry_len = fl;
			remote = first_slash + 1;
		}
	}
	const char *why = check_domain(registry, registry_len);
	if (why)
		return bad(err, EINVAL, text, "%s", why);
	if (registry_len == strlen(DOCKER_HUB_LEGACY) &&
	    strncasecmp(registry, DOCKER_HUB_LEGACY, registry_len) == 0) {
		registry = DOCKER_HUB;
		registry_len = strlen(DOCKER_HUB);
	}

	size_t remote_len = strlen(remote);
	for (size_t i = 0;;) {
		size_t j = i;
		while (j < remote_len && remote[j] != '/')
			j++;
		why = check_path_component(remote + i, j - i);
		if (why)
			return bad(err, EINVAL, text, "%s", why);
		if (j >= remote_len)
			break;
		i = j + 1;
	}

	bool hub = registry_len == strlen(DOCKER_HUB) && strncasecmp(registry, DOCKER_HUB, registry_len) == 0;
	ref->registry = hub ? strdup(DOCKER_HUB) : strndup(registry, registry_len);
	if (hub && !strchr(remote, '/')) {
		if (asprintf(&ref->repository, "library/%s", remote) < 0)
			ref->repository = NULL;
	} else {
		ref->repository = strdup(remote);
	}
	if (tag)
		ref->tag = strdup(tag);
	else if (!digest)
		ref->tag = strdup("latest");
	if (digest)
		ref->digest = strdup(digest);
	if (!ref->registry || !ref->repository || ((tag || !digest) && !ref->tag) || (digest && !ref->digest)) {
		lm_image_ref_free(ref);
		return lm_err(err, ENOMEM, "out of memory");
	}
	return 0;
}

void lm_image_ref_free(struct lm_image_ref *ref)
{
	if (!ref)
		return;
	free(ref->registry);
	free(ref->repository);
	free(ref->tag);
	free(ref->digest);
	memset(ref, 0, sizeof(*ref));
}

char *lm_image_ref_string(const struct lm_image_ref *ref)
{
	char *out = NULL;
	if (asprintf(&out, "%s/%s%s%s%s%s", ref->registry, ref->repository, ref->tag ? ":" : "",
		     ref->tag ? ref->tag : "", ref->digest ? "@" : "", ref->digest ? ref->digest : "") < 0)
		return NULL;
	return out;
}

char *lm_image_ref_name(const struct lm_image_ref *ref)
{
	char *out = NULL;
	if (asprintf(&out, "%s/%s", ref->registry, ref->repository) < 0)
		return NULL;
	return out;
}

char *lm_image_ref_familiar(const struct lm_image_ref *ref)
{
	const char *repo = ref->repository;
	bool hub = strcmp(ref->registry, DOCKER_HUB) == 0;
	if (hub && strncmp(repo, "library/", 8) == 0 && !strchr(repo + 8, '/'))
		repo += 8;
	char *out = NULL;
	if (asprintf(&out, "%s%s%s%s%s%s%s", hub ? "" : ref->registry, hub ? "" : "/", repo,
		     ref->tag ? ":" : "", ref->tag ? ref->tag : "", ref->digest ? "@" : "",
		     ref->digest ? ref->digest : "") < 0)
		return NULL;
	return out;
}

const char *lm_image_ref_endpoint_host(const struct lm_image_ref *ref)
{
	if (strcmp(ref->registry, DOCKER_HUB) == 0)
		return DOCKER_HUB_ENDPOINT;
	return ref->registry;
}

bool lm_registry_is_loopback(const char *registry)
{
	if (!registry || !*registry)
		return false;
	char host[INET6_ADDRSTRLEN + 1];
	size_t n;
	if (registry[0] == '[') {
		const char *close = strchr(registry, ']');
		if (!close || (close[1] != '\0' && close[1] != ':'))
			return false;
		n = (size_t)(close - registry - 1);
		if (n >= sizeof(host))
			return false;
		memcpy(host, registry + 1, n);
		host[n] = '\0';
		struct in6_addr a6;
		if (inet_pton(AF_INET6, host, &a6) != 1)
			return false;
		if (IN6_IS_ADDR_LOOPBACK(&a6))
			return true;
		return IN6_IS_ADDR_V4MAPPED(&a6) && a6.s6_addr[12] == 127;
	}
	const char *colon = strchr(registry, ':');
	n = colon ? (size_t)(colon - registry) : strlen(registry);
	if (n >= sizeof(host))
		return false;
	memcpy(host, registry, n);
	host[n] = '\0';
	if (strcasecmp(host, "localhost") == 0)
		return true;
	struct in_addr a4;
	if (inet_pton(AF_INET, host, &a4) == 1)
		return (ntohl(a4.s_addr) >> 24) == 127;
	return false;
}
