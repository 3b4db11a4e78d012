/* Random ids (container ids and names): hex from /dev/urandom. */
#pragma once

#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <unistd.h>

#include "util/clock.h"

/* 2*nbytes hex digits and a NUL into out; nbytes at most 32. */
static inline void lm_random_hex(char *out, size_t nbytes)
{
	unsigned char b[32];
	if (nbytes > sizeof(b))
		nbytes = sizeof(b);
	int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
	if (fd < 0 || read(fd, b, nbytes) != (ssize_t)nbytes) {
		/* no urandom: time and pid still make an id unique on this node */
		uint64_t t = (uint64_t)lm_mono_ns() ^ ((uint64_t)getpid() << 32);
		for (size_t i = 0; i < nbytes; i++)
			b[i] = (unsigned char)(t >> (8 * (i % 8))) ^ (unsigned char)i;
	}
	if (fd >= 0)
		close(fd);
	for (size_t i = 0; i < nbytes; i++)
		snprintf(out + 2 * i, 3, "%02x", b[i]);
}
