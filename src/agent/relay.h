/* Attach and exec sessions through the agent: see relay.c. */
#pragma once

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "agent/agent.h"

struct MHD_UpgradeResponseHandle;

/* Connect to the container's monitor and open a session (op: the handshake
 * object of monitor/stream.h); *fd is then positioned at the first frame. */
int agent_monitor_session(struct agent *a, const struct ctr *c, json_t *op, int *fd, struct lm_error *err);
/* Relay between an upgraded client socket and a monitor session; extra:
 * bytes the client sent after its request.  Takes monitor_fd and urh. */
int agent_relay_start(struct agent *a, int client_fd, int monitor_fd, struct MHD_UpgradeResponseHandle *urh,
		      const char *extra, size_t extra_len, struct lm_error *err);
bool agent_relay_owns(void *epoll_ptr);
void agent_relay_event(void *epoll_ptr, uint32_t events);
void agent_relay_close_all(void);
