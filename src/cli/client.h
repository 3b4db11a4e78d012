/* The CLI's side of the agent API (docs/api.md): HTTP/1.1 with JSON bodies
 * over the agent's unix socket, through libcurl.
 *
 * One client per command, one easy handle per client: successive requests
 * reuse the connection.  No request has a total timeout, because `stop`,
 * `wait` and every follow stream legitimately take as long as the container
 * does; only connecting is bounded.  Paths are the API's full paths
 * ("/v1/containers/web/start"); values put into them come from
 * lm_client_escape.
 */
#pragma once

#include <jansson.h>
#include <stddef.h>

#include "util/error.h"

struct lm_client;

/* The socket to use: socket_path when given (non-empty), else
 * $LAMINA_SOCKET, else <state_dir>/lamina.sock (state_dir NULL:
 * /run/lamina).  Newly allocated; NULL when out of memory. */
char *lm_client_socket_path(const char *socket_path, const char *state_dir);

/* A client of the agent at lm_client_socket_path(socket_path, state_dir).
 * The socket is tried with a plain connect first, so that "nobody listens"
 * is told apart from every later failure: err->code is then ENOENT (no
 * socket file) or ECONNREFUSED (a stale one), EACCES when it may not be
 * opened, and the message names the path. */
int lm_client_open(const char *socket_path, const char *state_dir, struct lm_client **out, struct lm_error *err);
void lm_client_close(struct lm_client *c);
/* The socket path the client talks to. */
const char *lm_client_socket(const struct lm_client *c);

/* s percent-encoded for a path segment or a query value; free() it.
 * NULL when out of memory. */
char *lm_client_escape(struct lm_client *c, const char *s);

/* One request; body (not consumed) is sent as JSON when not NULL.
 * On a 2xx status: 0, and *resp (when resp is not NULL) gets the parsed
 * body, or NULL for an empty one (204).
 * On another status: negative; err has the agent's "message" (or what the
 * body says) and err->code an errno mapped from the status: 400 EINVAL,
 * 404 ENOENT, 409 EEXIST, 501 ENOTSUP, any other EIO.
 * When no answer came at all (the agent went away, a broken answer):
 * negative with *status 0; err->code is ECONNREFUSED or ENOENT when the
 * socket could not be connected, else EIO.
 * status (may be NULL) gets the HTTP status, 0 without an answer. */
int lm_client_call(struct lm_client *c, const char *method, const char *path, json_t *body, long *status,
		   json_t **resp, struct lm_error *err);

/* A streaming request (no body): each complete line of a 2xx answer goes
 * to on_line as it arrives, without its '\n' but NUL-terminated (len is
 * its length); a last line without '\n' goes at the end.  on_line returns
 * < 0 to stop the transfer, which is then a success (0): the callback keeps
 * in ctx whatever made it stop.  Statuses and errors as lm_client_call;
 * a line longer than 16 MiB is an error (EFBIG). */
int lm_client_stream(struct lm_client *c, const char *method, const char *path,
		     int (*on_line)(const char *line, size_t len, void *ctx), void *ctx, long *status,
		     struct lm_error *err);

/* An upgraded connection for an attach or exec session: POST path with
 * "Connection: Upgrade" and "Upgrade: lamina-stream", and body (not
 * consumed; NULL: none) as JSON.  On "101 Switching Protocols": 0, *status
 * 101 and *fd, the connected socket (O_CLOEXEC, blocking; the caller closes
 * it).  The answer's headers are read byte-exactly, so the first byte of
 * the new protocol is the first byte read from *fd: frames the agent sent
 * together with its headers are not lost.
 * Any other answer: negative, *fd -1, *status and err as lm_client_call
 * (an answer of 2xx that does not switch is EPROTO); no answer at all:
 * *status 0, err->code ECONNREFUSED or ENOENT when the socket could not be
 * connected, else EIO.  status (may be NULL). */
int lm_client_upgrade(struct lm_client *c, const char *path, json_t *body, int *fd, long *status,
		      struct lm_error *err);

static inline void lm_client_closep(struct lm_client **c)
{
	lm_client_close(*c);
	*c = NULL;
}
/* autoclient *c = NULL; closed at the end of the scope */
#define autoclient __attribute__((cleanup(lm_client_closep))) struct lm_client
