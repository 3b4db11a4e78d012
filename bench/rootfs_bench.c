/* Rootfs creation cost for a container: the writable layer scaffolded on the
 * host (lm_writable_create), the overlay mounted where the runtime mounts it
 * (lm_writable_mount_at, here in a private mount namespace as in a container),
 * unmounted and destroyed.  Run for 1 and 10 lower layers; prints the median
 * of each step in microseconds.  Usage: rootfs_bench DIR [ITERATIONS] */
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "benchutil.h"
#include "rootfs/writable.h"

int main(int argc, char **argv)
{
	if (argc < 2) {
		fprintf(stderr, "usage: rootfs_bench DIR [ITERATIONS]\n");
		return 2;
	}
	const char *dir = argv[1];
	int iters = argc > 2 ? atoi(argv[2]) : 200;
	if (unshare(CLONE_NEWNS) < 0 || mount(NULL, "/", NULL, MS_PRIVATE | MS_REC, NULL) < 0) {
		perror("private mount namespace");
		return 1;
	}
	double *create = calloc((size_t)iters, sizeof(double)), *mnt = calloc((size_t)iters, sizeof(double)),
	       *teardown = calloc((size_t)iters, sizeof(double));
	const int layer_counts[] = {1, 10};
	for (size_t lc = 0; lc < 2; lc++) {
		int n = layer_counts[lc];
		char *lowers[16];
		for (int i = 0; i < n; i++) {
			if (asprintf(&lowers[i], "%s/lower%d", dir, i) < 0)
				return 1;
			mkdir(lowers[i], 0755);
			char f[512];
			snprintf(f, sizeof(f), "%s/file%d", lowers[i], i);
			FILE *fp = fopen(f, "w");
			if (fp)
				fclose(fp);
		}
		char layers[512];
		snprintf(layers, sizeof(layers), "%s/containers", dir);
		mkdir(layers, 0700);
		for (int it = 0; it < iters; it++) {
			char id[32];
			snprintf(id, sizeof(id), "c%d-%d", n, it);
			struct lm_writable *w = NULL;
			struct lm_error err = {0};
			double t0 = bench_now_us();
			if (lm_writable_create(layers, id, (const char *const *)lowers, (size_t)n, &w, &err) < 0) {
				fprintf(stderr, "create: %s\n", err.msg);
				return 1;
			}
			double t1 = bench_now_us();
			if (lm_writable_mount_at(w, lm_writable_merged_path(w), &err) < 0) {
				fprintf(stderr, "mount: %s\n", err.msg);
				return 1;
			}
			double t2 = bench_now_us();
			umount2(lm_writable_merged_path(w), MNT_DETACH);
			if (lm_writable_destroy(w, &err) < 0) {
				fprintf(stderr, "destroy: %s\n", err.msg);
				return 1;
			}
			double t3 = bench_now_us();
			lm_writable_free(w);
			create[it] = t1 - t0;
			mnt[it] = t2 - t1;
			teardown[it] = t3 - t2;
		}
		printf("%2d layer%s: create %6.0f us, mount %6.0f us, teardown %6.0f us (medians of %d)\n", n,
		       n == 1 ? " " : "s", bench_median(create, iters), bench_median(mnt, iters), bench_median(teardown, iters), iters);
		for (int i = 0; i < n; i++)
			free(lowers[i]);
	}
	free(create);
	free(mnt);
	free(teardown);
	return 0;
}
