/* The stream protocol of attach and exec sessions, between a client (the
 * CLI, through the agent's upgraded HTTP connection) and a container's
 * monitor (its unix socket <run dir>/monitor.sock).
 *
 * Handshake: the client writes one JSON object and '\n':
 *   {"op":"attach","stdin":bool}            the container's main process
 *   {"op":"exec","args":[...],"env":["K=V"],"user":"uid:gid","cwd":"/x",
 *    "tty":bool,"stdin":bool,"rows":R,"cols":C}  a new process in the container
 *                                            (rows/cols: the tty's first size, optional)
 *   {"op":"status"}                          (not a stream: one answer line, then close)
 * The monitor answers one JSON line: {"ok":true} (then frames follow) or
 * {"error":"message","code":errno} (then it closes).
 *
 * Then frames both ways: an 8-byte header (type, three zero bytes, payload
 * length as a big-endian uint32) and the payload.  Payloads are at most
 * LM_STREAM_FRAME_MAX bytes.
 *   monitor -> client: STDOUT, STDERR (data; with a tty everything is
 *     STDOUT), EXIT (final: JSON {"exit_code","signal","oom_killed"}, then the
 *     monitor closes), ERROR (final: JSON {"message"}).
 *   client -> monitor: STDIN (data), STDIN_EOF (no payload: close the
 *     process's stdin), RESIZE (JSON {"rows":R,"cols":C}: the tty's size).
 * An attach sees output from the moment it attached (the log has the rest);
 * the EXIT frame of an attach comes when the container has ended and its
 * output has been sent.
 */
#pragma once

#include <stddef.h>
#include <stdint.h>

enum lm_stream_type {
	LM_STREAM_STDIN = 0,
	LM_STREAM_STDOUT = 1,
	LM_STREAM_STDERR = 2,
	LM_STREAM_EXIT = 3,
	LM_STREAM_ERROR = 4,
	LM_STREAM_STDIN_EOF = 5,
	LM_STREAM_RESIZE = 6,
};

#define LM_STREAM_HEADER 8
#define LM_STREAM_FRAME_MAX (1u << 20)

static inline void lm_stream_header(uint8_t h[LM_STREAM_HEADER], enum lm_stream_type type, uint32_t len)
{
	h[0] = (uint8_t)type;
	h[1] = h[2] = h[3] = 0;
	h[4] = (uint8_t)(len >> 24);
	h[5] = (uint8_t)(len >> 16);
	h[6] = (uint8_t)(len >> 8);
	h[7] = (uint8_t)len;
}

/* 0 and the frame's type and length, or -1 for a malformed header. */
static inline int lm_stream_parse_header(const uint8_t h[LM_STREAM_HEADER], enum lm_stream_type *type,
					 uint32_t *len)
{
	if (h[1] || h[2] || h[3] || h[0] > LM_STREAM_RESIZE)
		return -1;
	*type = (enum lm_stream_type)h[0];
	*len = (uint32_t)h[4] << 24 | (uint32_t)h[5] << 16 | (uint32_t)h[6] << 8 | h[7];
	return *len <= LM_STREAM_FRAME_MAX ? 0 : -1;
}
