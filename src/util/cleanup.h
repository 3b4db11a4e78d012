/* Scope-bound cleanup helpers (__attribute__((cleanup))).
 *
 * Ownership leaves a variable only through steal_fd()/steal_ptr(), so a reader
 * sees every transfer.  close() is never retried on EINTR: on Linux the fd is
 * gone whatever close returned.
 */
#pragma once

#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

static inline void lm_closep(int *fd)
{
	if (*fd >= 0) {
		int saved = errno;
		close(*fd);
		errno = saved;
	}
	*fd = -1;
}

static inline void lm_freep(void *p)
{
	void **pp = p;
	free(*pp);
	*pp = NULL;
}

static inline void lm_fclosep(FILE **f)
{
	if (*f)
		fclose(*f);
	*f = NULL;
}

static inline void lm_closedirp(DIR **d)
{
	if (*d)
		closedir(*d);
	*d = NULL;
}

/* A child that must not outlive the scope: killed and reaped. */
static inline void lm_killp(pid_t *pid)
{
	if (*pid > 0) {
		int saved = errno;
		kill(*pid, SIGKILL);
		while (waitpid(*pid, NULL, 0) < 0 && errno == EINTR)
			;
		errno = saved;
	}
	*pid = -1;
}

#define autofd __attribute__((cleanup(lm_closep))) int
#define autofree __attribute__((cleanup(lm_freep)))
#define autofclose __attribute__((cleanup(lm_fclosep))) FILE
#define autoclosedir __attribute__((cleanup(lm_closedirp))) DIR
#define autokill __attribute__((cleanup(lm_killp))) pid_t

static inline int steal_fd(int *fd)
{
	int r = *fd;
	*fd = -1;
	return r;
}

static inline void *lm_steal_ptr(void *pp)
{
	void **p = pp;
	void *r = *p;
	*p = NULL;
	return r;
}
#define steal_ptr(pp) lm_steal_ptr(pp)
