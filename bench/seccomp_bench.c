/* What the compiled-filter cache saves: the built-in seccomp profile (for
 * the default capabilities) compiled with libseccomp every time, against
 * lm_seccomp_prepare finding it in the cache.  Prints the median of each in
 * microseconds.  Usage: seccomp_bench DIR [ITERATIONS]  (DIR: a state root) */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "benchutil.h"
#include "runtime/seccomp.h"

int main(int argc, char **argv)
{
	if (argc < 2) {
		fprintf(stderr, "usage: seccomp_bench DIR [ITERATIONS]\n");
		return 2;
	}
	const char *root = argv[1];
	int n = argc > 2 ? atoi(argv[2]) : 200;
	if (n < 1)
		n = 1;
	static const char *const caps[] = {"CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER",
					   "CAP_MKNOD", "CAP_NET_RAW", "CAP_SETGID", "CAP_SETUID",
					   "CAP_SETFCAP", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE",
					   "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE", NULL};
	struct lm_error err = {0};
	json_t *profile;
	if (lm_seccomp_default_profile(caps, &profile, &err) < 0) {
		fprintf(stderr, "seccomp_bench: %s\n", err.msg);
		return 1;
	}
	/* the text the spec parser keeps, the cache's key */
	char *json = json_dumps(profile, JSON_COMPACT | JSON_SORT_KEYS);
	double *compile = calloc((size_t)n, sizeof(double)), *hit = calloc((size_t)n, sizeof(double));
	if (!json || !compile || !hit)
		return 1;
	size_t len = 0;
	for (int i = 0; i < n; i++) {
		struct lm_seccomp sc;
		double t0 = bench_now_us();
		if (lm_seccomp_compile(profile, &sc, &err) < 0) {
			fprintf(stderr, "seccomp_bench: %s\n", err.msg);
			return 1;
		}
		compile[i] = bench_now_us() - t0;
		len = sc.len;
		lm_seccomp_free(&sc);
	}
	struct lm_seccomp sc;
	if (lm_seccomp_prepare(json, root, &sc, &err) < 0) { /* fills the cache */
		fprintf(stderr, "seccomp_bench: %s\n", err.msg);
		return 1;
	}
	lm_seccomp_free(&sc);
	for (int i = 0; i < n; i++) {
		double t0 = bench_now_us();
		if (lm_seccomp_prepare(json, root, &sc, &err) < 0 || !sc.from_cache) {
			fprintf(stderr, "seccomp_bench: no cache hit: %s\n", err.msg);
			return 1;
		}
		hit[i] = bench_now_us() - t0;
		lm_seccomp_free(&sc);
	}
	double c = bench_median(compile, n), h = bench_median(hit, n);
	printf("default seccomp profile (%zu bytes of JSON, %zu BPF instructions), median of %d:\n", strlen(json),
	       len, n);
	printf("  compile with libseccomp  %8.1f us\n", c);
	printf("  cache hit                %8.1f us   (saves %.1f us a start, %.0fx)\n", h, c - h, c / h);
	free(json);
	free(compile);
	free(hit);
	json_decref(profile);
	return 0;
}
