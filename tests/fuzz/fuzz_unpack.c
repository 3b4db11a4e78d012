/* libFuzzer target for the layer unpacker (and the decompressor below it).
 *
 * The input is a layer blob as a registry would serve it: gzip, zstd or a
 * plain tar, sniffed (AUTO).  It is unpacked into a fresh target directory
 * inside a sandbox that also holds an empty sentinel directory.  Whatever
 * the outcome, nothing but the target may change: the sandbox must hold
 * exactly the target and the sentinel, the sentinel must be empty and its
 * times unchanged (a file made and removed there still shows in them), and
 * no new name from the input may appear in "/" (where absolute-symlink
 * escapes would land).  An error must come with a terminated, non-empty
 * message.  The target is removed after each input.
 *
 * Nearly every random change to a tar header breaks its checksum, and the
 * unpacker never gets past "Damaged tar archive"; the custom mutator
 * repairs the checksums of ustar headers in most of the inputs it makes so
 * the fuzzer reaches the code that applies entries.
 */
#include <dirent.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "image/decompress.h"
#include "image/unpack.h"
#include "util/fs.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
size_t LLVMFuzzerMutate(uint8_t *data, size_t size, size_t max_size);
size_t LLVMFuzzerCustomMutator(uint8_t *data, size_t size, size_t max_size, unsigned int seed);

static char sandbox[] = "/tmp/lm-fuzz-unpack-XXXXXX";
static int sandbox_fd = -1;
static struct stat sentinel_before;
static char **root_names;
static size_t n_root_names;

static void die(const char *what)
{
	fprintf(stderr, "fuzz_unpack: %s\n", what);
	abort();
}

static bool known_root_name(const char *name)
{
	for (size_t i = 0; i < n_root_names; i++)
		if (strcmp(root_names[i], name) == 0)
			return true;
	return false;
}

/* A clean exit leaves nothing behind; after an abort the sandbox stays, as
 * evidence. */
static void remove_sandbox(void)
{
	struct lm_error err;
	lm_rm_rf_at(AT_FDCWD, sandbox, &err);
}

static void init(void)
{
	if (!mkdtemp(sandbox))
		die("mkdtemp");
	atexit(remove_sandbox);
	sandbox_fd = open(sandbox, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (sandbox_fd < 0 || mkdirat(sandbox_fd, "sentinel", 0755) < 0)
		die("sandbox");
	if (fstatat(sandbox_fd, "sentinel", &sentinel_before, AT_SYMLINK_NOFOLLOW) < 0)
		die("stat sentinel");
	DIR *d = opendir("/");
	if (!d)
		die("opendir /");
	struct dirent *de;
	while ((de = readdir(d))) {
		root_names = realloc(root_names, (n_root_names + 1) * sizeof(*root_names));
		if (!root_names || !(root_names[n_root_names++] = strdup(de->d_name)))
			die("out of memory");
	}
	closedir(d);
}

static struct memsrc {
	const uint8_t *p;
	size_t len, pos;
} src_state;

static ssize_t mem_read(void *ctx, void *buf, size_t len)
{
	struct memsrc *m = ctx;
	size_t n = m->len - m->pos;
	if (n > len)
		n = len;
	memcpy(buf, m->p + m->pos, n);
	m->pos += n;
	return (ssize_t)n;
}

static void check_error(const struct lm_error *err)
{
	if (memchr(err->msg, '\0', sizeof(err->msg)) == NULL || err->msg[0] == '\0')
		die("error without a message");
}

static void check_outside(const uint8_t *data, size_t size)
{
	int fd = openat(sandbox_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
	if (!d)
		die("open sandbox");
	struct dirent *de;
	while ((de = readdir(d))) {
		if (strcmp(de->d_name, ".") && strcmp(de->d_name, "..") && strcmp(de->d_name, "target") &&
		    strcmp(de->d_name, "sentinel")) {
			fprintf(stderr, "fuzz_unpack: %s appeared next to the target\n", de->d_name);
			abort();
		}
	}
	closedir(d);

	fd = openat(sandbox_fd, "sentinel", O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	d = fd >= 0 ? fdopendir(fd) : NULL;
	if (!d)
		die("the sentinel is gone or replaced");
	while ((de = readdir(d))) {
		if (strcmp(de->d_name, ".") && strcmp(de->d_name, "..")) {
			fprintf(stderr, "fuzz_unpack: %s appeared in the sentinel\n", de->d_name);
			abort();
		}
	}
	closedir(d);
	struct stat st;
	if (fstatat(sandbox_fd, "sentinel", &st, AT_SYMLINK_NOFOLLOW) < 0 ||
	    st.st_ino != sentinel_before.st_ino || st.st_mode != sentinel_before.st_mode ||
	    st.st_uid != sentinel_before.st_uid || st.st_gid != sentinel_before.st_gid ||
	    st.st_mtim.tv_sec != sentinel_before.st_mtim.tv_sec ||
	    st.st_mtim.tv_nsec != sentinel_before.st_mtim.tv_nsec ||
	    st.st_ctim.tv_sec != sentinel_before.st_ctim.tv_sec ||
	    st.st_ctim.tv_nsec != sentinel_before.st_ctim.tv_nsec)
		die("the sentinel changed");

	/* A new name in / that the input spells out is an escape; other new
	 * names belong to other processes on the machine. */
	d = opendir("/");
	if (!d)
		die("opendir /");
	while ((de = readdir(d))) {
		if (!known_root_name(de->d_name) && memmem(data, size, de->d_name, strlen(de->d_name))) {
			fprintf(stderr, "fuzz_unpack: /%s appeared on the host\n", de->d_name);
			abort();
		}
	}
	closedir(d);
}

size_t LLVMFuzzerCustomMutator(uint8_t *data, size_t size, size_t max_size, unsigned int seed)
{
	size = LLVMFuzzerMutate(data, size, max_size);
	if (seed % 4 == 0)
		return size;
	for (size_t off = 0; off + 512 <= size; off += 512) {
		uint8_t *h = data + off;
		if (memcmp(h + 257, "ustar", 5) != 0)
			continue;
		memset(h + 148, ' ', 8);
		unsigned sum = 0;
		for (size_t i = 0; i < 512; i++)
			sum += h[i];
		char field[8];
		snprintf(field, sizeof(field), "%06o", sum & 0777777);
		memcpy(h + 148, field, 7);
	}
	return size;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (sandbox_fd < 0)
		init();
	if (mkdirat(sandbox_fd, "target", 0755) < 0)
		die("mkdir target");
	int target = openat(sandbox_fd, "target", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (target < 0)
		die("open target");

	src_state = (struct memsrc){ .p = data, .len = size };
	struct lm_reader src = { .read = mem_read, .ctx = &src_state };
	struct lm_decompress *dec = NULL;
	struct lm_error err = { 0 };
	/* A small limit keeps every input fast; the limit's own path gets
	 * exercised as well. */
	if (lm_decompress_open(&src, LM_COMPRESSION_AUTO, 16u << 20, &dec, &err) < 0) {
		check_error(&err);
	} else {
		struct lm_unpack_stats st;
		if (lm_unpack(lm_decompress_reader(dec), target, NULL, &st, &err) < 0) {
			check_error(&err);
		} else {
			char diff_id[LM_DIGEST_SIZE];
			if (lm_decompress_diff_id(dec, diff_id, &err) < 0)
				die("unpack succeeded without reading the layer to its end");
		}
		lm_decompress_free(dec);
	}
	close(target);

	check_outside(data, size);
	if (lm_rm_rf_at(sandbox_fd, "target", &err) < 0) {
		fprintf(stderr, "fuzz_unpack: remove target: %s\n", err.msg);
		abort();
	}
	return 0;
}
