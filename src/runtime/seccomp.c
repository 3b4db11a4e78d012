/* linux.seccomp → a BPF program (see seccomp.h).
 *
 * One walk over the JSON does both jobs: without a libseccomp context it only
 * checks (that is what the spec parser calls, so a bad section fails before
 * anything is created); with one it adds the rules.  Values a check has let
 * through need no second look, so the compiling walk cannot fail on input.
 *
 * As in runc: SCMP_ACT_KILL is KILL_THREAD; errnoRet defaults to EPERM; a
 * rule whose action is the default one is dropped (libseccomp refuses it);
 * a syscall name this libseccomp does not know is skipped with a debug note;
 * conditions on distinct arguments are ANDed in one rule, and when an
 * argument is compared more than once every condition becomes a rule of its
 * own (ORed), since libseccomp takes one comparison per argument and rule.
 * For SCMP_CMP_MASKED_EQ, "value" is the mask and "valueTwo" the datum.
 * Syscalls newer than every one the profile names get ENOSYS, not a
 * restrictive default action (runc's stub, see build_stub).
 *
 * The cache file is a header (magic, sizes, flags, an FNV-1a checksum), the
 * key and the instructions.  The file name is a hash of the key, but only
 * the full key, compared byte for byte, makes a hit: a collision or a
 * foreign file is a miss and is overwritten, never loaded.
 */
#include "runtime/seccomp.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/capability.h>
#include <linux/seccomp.h>
#include <seccomp.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <dirent.h>
#include <unistd.h>

#include "util/cleanup.h"
#include "util/fs.h"
#include "util/log.h"

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

#ifndef SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV
#define SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV (1UL << 5)
#endif
#ifndef SECCOMP_FILTER_FLAG_NEW_LISTENER
#define SECCOMP_FILTER_FLAG_NEW_LISTENER (1UL << 3)
#endif

/* The kernel caps SECCOMP_RET_ERRNO data at MAX_ERRNO; TRACE passes 16 bits. */
#define ERRNO_MAX 4095
#define TRACE_MAX 65535
#define ARG_MAX_INDEX 5

/* Bump when the same JSON would compile differently: old cache files then miss. */
#define CACHE_FORMAT 2
#define CACHE_MAGIC "LMSCMPv1"
/* Distinct profiles kept; past this the oldest file makes room. */
#define CACHE_MAX_ENTRIES 256

enum act_kind { ACT_KILL_THREAD, ACT_KILL_PROCESS, ACT_TRAP, ACT_ERRNO, ACT_TRACE, ACT_ALLOW, ACT_LOG, ACT_NOTIFY };

static const struct {
	const char *name;
	enum act_kind kind;
} actions[] = {
	{"SCMP_ACT_KILL", ACT_KILL_THREAD},   {"SCMP_ACT_KILL_THREAD", ACT_KILL_THREAD},
	{"SCMP_ACT_KILL_PROCESS", ACT_KILL_PROCESS}, {"SCMP_ACT_TRAP", ACT_TRAP},
	{"SCMP_ACT_ERRNO", ACT_ERRNO},        {"SCMP_ACT_TRACE", ACT_TRACE},
	{"SCMP_ACT_ALLOW", ACT_ALLOW},        {"SCMP_ACT_LOG", ACT_LOG},
	{"SCMP_ACT_NOTIFY", ACT_NOTIFY},
};

static const struct {
	const char *name;
	enum scmp_compare op;
} operators[] = {
	{"SCMP_CMP_NE", SCMP_CMP_NE}, {"SCMP_CMP_LT", SCMP_CMP_LT}, {"SCMP_CMP_LE", SCMP_CMP_LE},
	{"SCMP_CMP_EQ", SCMP_CMP_EQ}, {"SCMP_CMP_GE", SCMP_CMP_GE}, {"SCMP_CMP_GT", SCMP_CMP_GT},
	{"SCMP_CMP_MASKED_EQ", SCMP_CMP_MASKED_EQ},
};

/* OCI names and libseccomp's own (seccomp_arch_resolve_name). */
static const struct {
	const char *name;
	const char *scmp;
} arches[] = {
	{"SCMP_ARCH_X86", "x86"},           {"SCMP_ARCH_X86_64", "x86_64"},
	{"SCMP_ARCH_X32", "x32"},           {"SCMP_ARCH_ARM", "arm"},
	{"SCMP_ARCH_AARCH64", "aarch64"},   {"SCMP_ARCH_MIPS", "mips"},
	{"SCMP_ARCH_MIPS64", "mips64"},     {"SCMP_ARCH_MIPS64N32", "mips64n32"},
	{"SCMP_ARCH_MIPSEL", "mipsel"},     {"SCMP_ARCH_MIPSEL64", "mipsel64"},
	{"SCMP_ARCH_MIPSEL64N32", "mipsel64n32"}, {"SCMP_ARCH_PPC", "ppc"},
	{"SCMP_ARCH_PPC64", "ppc64"},       {"SCMP_ARCH_PPC64LE", "ppc64le"},
	{"SCMP_ARCH_S390", "s390"},         {"SCMP_ARCH_S390X", "s390x"},
	{"SCMP_ARCH_PARISC", "parisc"},     {"SCMP_ARCH_PARISC64", "parisc64"},
	{"SCMP_ARCH_RISCV64", "riscv64"},   {"SCMP_ARCH_LOONGARCH64", "loongarch64"},
	{"SCMP_ARCH_M68K", "m68k"},         {"SCMP_ARCH_SH", "sh"},
	{"SCMP_ARCH_SHEB", "sheb"},
};

static const struct {
	const char *name;
	unsigned int flag;
} filter_flags[] = {
	{"SECCOMP_FILTER_FLAG_TSYNC", SECCOMP_FILTER_FLAG_TSYNC},
	{"SECCOMP_FILTER_FLAG_LOG", SECCOMP_FILTER_FLAG_LOG},
	{"SECCOMP_FILTER_FLAG_SPEC_ALLOW", SECCOMP_FILTER_FLAG_SPEC_ALLOW},
	{"SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV", SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV},
};

/* ---- the walk: JSON path for messages, check, and (with a context) compile ---- */

#define MAX_ARCHES 32

struct walk {
	struct lm_error *err;
	scmp_filter_ctx ctx; /* NULL: check only */
	uint32_t default_action;
	unsigned int flags;
	/* compiling: the filter's architectures and the highest syscall number
	 * the profile names on each (-1: none), for the ENOSYS stub */
	uint32_t arches[MAX_ARCHES];
	int max_nr[MAX_ARCHES];
	size_t n_arches;
	size_t len;
	char path[256];
};

static void note_arch(struct walk *w, uint32_t token)
{
	for (size_t i = 0; i < w->n_arches; i++)
		if (w->arches[i] == token)
			return;
	if (w->n_arches < MAX_ARCHES) {
		w->arches[w->n_arches] = token;
		w->max_nr[w->n_arches++] = -1;
	}
}

static size_t push(struct walk *w, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static size_t push(struct walk *w, const char *fmt, ...)
{
	size_t mark = w->len, room = sizeof(w->path) - w->len;
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(w->path + w->len, room, fmt, ap);
	va_end(ap);
	if (n > 0)
		w->len += (size_t)n < room ? (size_t)n : room - 1;
	return mark;
}

static void pop(struct walk *w, size_t mark)
{
	w->len = mark;
	w->path[mark] = '\0';
}

static int failc(struct walk *w, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int failc(struct walk *w, int code, const char *fmt, ...)
{
	char what[LM_ERROR_MSG_MAX];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	return lm_err(w->err, code, "%s: %s", w->path, what);
}

#define fail(w, ...) failc((w), EINVAL, __VA_ARGS__)

/* A JSON null counts as absent (Go generators write null for empty lists). */
static json_t *field(json_t *obj, const char *key)
{
	json_t *v = json_object_get(obj, key);
	return json_is_null(v) ? NULL : v;
}

static void join_names(char *buf, size_t len, size_t n, const char *(*name)(size_t))
{
	size_t off = 0;
	buf[0] = '\0';
	for (size_t i = 0; i < n && off < len; i++) {
		int r = snprintf(buf + off, len - off, "%s%s", i ? ", " : "", name(i));
		if (r < 0)
			break;
		off += (size_t)r;
	}
}

static const char *action_name(size_t i) { return actions[i].name; }
static const char *operator_name(size_t i) { return operators[i].name; }
static const char *flag_name(size_t i) { return filter_flags[i].name; }

static int u64_value(struct walk *w, json_t *v, uint64_t max, const char *what, uint64_t *out)
{
	/* jansson refuses integers above INT64_MAX when decoding */
	if (!json_is_integer(v) || json_integer_value(v) < 0 || (uint64_t)json_integer_value(v) > max)
		return fail(w, "expected %s", what);
	*out = (uint64_t)json_integer_value(v);
	return 0;
}

/* The action of obj[akey] with obj[ekey] as its errno, as libseccomp encodes it. */
static int action_value(struct walk *w, json_t *obj, const char *akey, const char *ekey, uint32_t *out)
{
	json_t *a = field(obj, akey), *e = field(obj, ekey);
	size_t mark = push(w, ".%s", akey);
	if (!a)
		return fail(w, "required");
	if (!json_is_string(a))
		return fail(w, "expected a string");
	const char *name = json_string_value(a);
	size_t i;
	for (i = 0; i < ARRAY_SIZE(actions); i++)
		if (strcmp(name, actions[i].name) == 0)
			break;
	if (i == ARRAY_SIZE(actions)) {
		char known[512];
		join_names(known, sizeof(known), ARRAY_SIZE(actions), action_name);
		return fail(w, "unknown action \"%.64s\" (expected one of %s)", name, known);
	}
	enum act_kind kind = actions[i].kind;
	if (kind == ACT_NOTIFY)
		return failc(w, ENOTSUP, "SCMP_ACT_NOTIFY (a seccomp agent on listenerPath) is not supported by lamina");
	pop(w, mark);
	uint64_t ret = EPERM;
	if (e) {
		mark = push(w, ".%s", ekey);
		if (kind != ACT_ERRNO && kind != ACT_TRACE)
			return fail(w, "%s has no errno: only SCMP_ACT_ERRNO and SCMP_ACT_TRACE take one", name);
		if (kind == ACT_ERRNO && u64_value(w, e, ERRNO_MAX, "an errno between 0 and 4095", &ret) < 0)
			return -1;
		if (kind == ACT_TRACE && u64_value(w, e, TRACE_MAX, "a value between 0 and 65535", &ret) < 0)
			return -1;
		pop(w, mark);
	}
	switch (kind) {
	case ACT_KILL_THREAD: *out = SCMP_ACT_KILL_THREAD; break;
	case ACT_KILL_PROCESS: *out = SCMP_ACT_KILL_PROCESS; break;
	case ACT_TRAP: *out = SCMP_ACT_TRAP; break;
	case ACT_ERRNO: *out = SCMP_ACT_ERRNO((uint32_t)ret); break;
	case ACT_TRACE: *out = SCMP_ACT_TRACE((uint32_t)ret); break;
	case ACT_LOG: *out = SCMP_ACT_LOG; break;
	case ACT_ALLOW:
	case ACT_NOTIFY: *out = SCMP_ACT_ALLOW; break;
	}
	return 0;
}

static int walk_arches(struct walk *w, json_t *list)
{
	if (!json_is_array(list))
		return fail(w, "expected an array");
	size_t i;
	json_t *a;
	json_array_foreach(list, i, a) {
		size_t mark = push(w, "[%zu]", i);
		if (!json_is_string(a))
			return fail(w, "expected a string");
		const char *name = json_string_value(a);
		size_t k;
		for (k = 0; k < ARRAY_SIZE(arches); k++)
			if (strcmp(name, arches[k].name) == 0)
				break;
		if (k == ARRAY_SIZE(arches))
			return fail(w, "unknown architecture \"%.64s\" (expected SCMP_ARCH_X86_64, SCMP_ARCH_X86, "
				    "SCMP_ARCH_X32, SCMP_ARCH_AARCH64, SCMP_ARCH_ARM, ...)", name);
		if (w->ctx) {
			uint32_t token = seccomp_arch_resolve_name(arches[k].scmp);
			if (token == 0)
				return failc(w, ENOTSUP, "architecture %s is not known to this libseccomp", name);
			int r = seccomp_arch_add(w->ctx, token);
			if (r < 0 && r != -EEXIST)
				return failc(w, -r, "add architecture %s: %s", name, strerror(-r));
			note_arch(w, token);
		}
		pop(w, mark);
	}
	return 0;
}

/* Whether this kernel takes flag in seccomp(SECCOMP_SET_MODE_FILTER): with no
 * program it faults on the NULL pointer when it does, and says EINVAL when not. */
static bool kernel_has_flag(unsigned int flag)
{
	return syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, flag, NULL) < 0 && errno == EFAULT;
}

static int walk_flags(struct walk *w, json_t *list)
{
	if (!json_is_array(list))
		return fail(w, "expected an array");
	size_t i;
	json_t *f;
	json_array_foreach(list, i, f) {
		size_t mark = push(w, "[%zu]", i);
		if (!json_is_string(f))
			return fail(w, "expected a string");
		const char *name = json_string_value(f);
		size_t k;
		for (k = 0; k < ARRAY_SIZE(filter_flags); k++)
			if (strcmp(name, filter_flags[k].name) == 0)
				break;
		if (k == ARRAY_SIZE(filter_flags)) {
			char known[512];
			join_names(known, sizeof(known), ARRAY_SIZE(filter_flags), flag_name);
			return fail(w, "unknown flag \"%.64s\" (expected %s)", name, known);
		}
		unsigned int flag = filter_flags[k].flag;
		if (w->ctx) {
			/* only meaningful with a listener (SCMP_ACT_NOTIFY, which lamina
			 * refuses), and the kernel rejects it without one */
			unsigned int probe = flag == SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV
						     ? flag | SECCOMP_FILTER_FLAG_NEW_LISTENER
						     : flag;
			if (!kernel_has_flag(probe))
				return failc(w, ENOTSUP, "flag %s is not supported by this kernel", name);
			if (flag == SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV)
				lm_debug("seccomp: %s has no effect without SCMP_ACT_NOTIFY: ignored", name);
			else
				w->flags |= flag;
		}
		pop(w, mark);
	}
	return 0;
}

static int walk_args(struct walk *w, json_t *list, struct scmp_arg_cmp **conds, size_t *n, bool *or_split)
{
	if (!json_is_array(list))
		return fail(w, "expected an array");
	size_t count = json_array_size(list);
	*n = 0;
	*or_split = false;
	if (count == 0)
		return 0;
	struct scmp_arg_cmp *c = calloc(count, sizeof(*c));
	if (!c)
		return failc(w, ENOMEM, "out of memory");
	*conds = c;
	unsigned seen = 0;
	size_t i;
	json_t *a;
	json_array_foreach(list, i, a) {
		size_t mark = push(w, "[%zu]", i);
		if (!json_is_object(a))
			return fail(w, "expected an object");
		json_t *index = field(a, "index"), *value = field(a, "value"), *two = field(a, "valueTwo"),
		       *op = field(a, "op");
		uint64_t idx = 0, v1 = 0, v2 = 0;
		size_t m2 = push(w, ".index");
		if (!index)
			return fail(w, "required");
		if (u64_value(w, index, ARG_MAX_INDEX, "an argument index between 0 and 5", &idx) < 0)
			return -1;
		pop(w, m2);
		m2 = push(w, ".value");
		if (!value)
			return fail(w, "required");
		if (u64_value(w, value, INT64_MAX, "an unsigned integer", &v1) < 0)
			return -1;
		pop(w, m2);
		if (two) {
			m2 = push(w, ".valueTwo");
			if (u64_value(w, two, INT64_MAX, "an unsigned integer", &v2) < 0)
				return -1;
			pop(w, m2);
		}
		m2 = push(w, ".op");
		if (!op)
			return fail(w, "required");
		if (!json_is_string(op))
			return fail(w, "expected a string");
		size_t k;
		for (k = 0; k < ARRAY_SIZE(operators); k++)
			if (strcmp(json_string_value(op), operators[k].name) == 0)
				break;
		if (k == ARRAY_SIZE(operators)) {
			char known[256];
			join_names(known, sizeof(known), ARRAY_SIZE(operators), operator_name);
			return fail(w, "unknown operator \"%.64s\" (expected one of %s)", json_string_value(op), known);
		}
		pop(w, m2);
		c[i] = (struct scmp_arg_cmp){.arg = (unsigned int)idx, .op = operators[k].op, .datum_a = v1,
					     .datum_b = v2};
		if (seen & (1u << idx))
			*or_split = true;
		seen |= 1u << idx;
		pop(w, mark);
	}
	*n = count;
	return 0;
}

static int add_rule(struct walk *w, const char *name, uint32_t action, const struct scmp_arg_cmp *conds, size_t n,
		    bool or_split)
{
	int nr = seccomp_syscall_resolve_name(name);
	if (nr == __NR_SCMP_ERROR) {
		lm_debug("seccomp: syscall \"%s\" is unknown here: skipped", name);
		return 0;
	}
	for (size_t i = 0; i < w->n_arches; i++) {
		int on_arch = seccomp_syscall_resolve_name_arch(w->arches[i], name);
		if (on_arch > w->max_nr[i])
			w->max_nr[i] = on_arch;
	}
	if (action == w->default_action)
		return 0; /* libseccomp refuses it, and it changes nothing */
	int r = 0;
	if (!or_split)
		r = seccomp_rule_add_array(w->ctx, action, nr, (unsigned int)n, conds);
	for (size_t i = 0; or_split && i < n && r >= 0; i++)
		r = seccomp_rule_add_array(w->ctx, action, nr, 1, &conds[i]);
	if (r < 0)
		return failc(w, -r, "add rule for %s: %s", name, strerror(-r));
	return 0;
}

static int walk_syscall(struct walk *w, json_t *s)
{
	if (!json_is_object(s))
		return fail(w, "expected an object");
	json_t *names = field(s, "names"), *args = field(s, "args");
	size_t mark = push(w, ".names");
	if (!names)
		return fail(w, "required");
	if (!json_is_array(names) || json_array_size(names) == 0)
		return fail(w, "expected a non-empty array of syscall names");
	size_t i;
	json_t *n;
	json_array_foreach(names, i, n) {
		if (!json_is_string(n) || !json_string_value(n)[0]) {
			push(w, "[%zu]", i);
			return fail(w, "expected a syscall name");
		}
	}
	pop(w, mark);
	uint32_t action;
	if (action_value(w, s, "action", "errnoRet", &action) < 0)
		return -1;
	autofree struct scmp_arg_cmp *conds = NULL;
	size_t n_conds = 0;
	bool or_split = false;
	if (args) {
		mark = push(w, ".args");
		if (walk_args(w, args, &conds, &n_conds, &or_split) < 0)
			return -1;
		pop(w, mark);
	}
	if (!w->ctx)
		return 0;
	json_array_foreach(names, i, n) {
		if (add_rule(w, json_string_value(n), action, conds, n_conds, or_split) < 0)
			return -1;
	}
	return 0;
}

static int walk(struct walk *w, json_t *sc)
{
	if (!json_is_object(sc))
		return fail(w, "expected an object");
	if (action_value(w, sc, "defaultAction", "defaultErrnoRet", &w->default_action) < 0)
		return -1;
	json_t *sub;
	size_t mark;
	if ((sub = field(sc, "architectures"))) {
		mark = push(w, ".architectures");
		if (walk_arches(w, sub) < 0)
			return -1;
		pop(w, mark);
	}
	if ((sub = field(sc, "flags"))) {
		mark = push(w, ".flags");
		if (walk_flags(w, sub) < 0)
			return -1;
		pop(w, mark);
	}
	const char *strings[] = {"listenerPath", "listenerMetadata"};
	for (size_t i = 0; i < ARRAY_SIZE(strings); i++) {
		if ((sub = field(sc, strings[i])) && !json_is_string(sub)) {
			push(w, ".%s", strings[i]);
			return fail(w, "expected a string");
		}
	}
	if ((sub = field(sc, "syscalls"))) {
		mark = push(w, ".syscalls");
		if (!json_is_array(sub))
			return fail(w, "expected an array");
		size_t i;
		json_t *s;
		json_array_foreach(sub, i, s) {
			size_t m2 = push(w, "[%zu]", i);
			if (walk_syscall(w, s) < 0)
				return -1;
			pop(w, m2);
		}
		pop(w, mark);
	}
	return 0;
}

static void walk_init(struct walk *w, const char *path, struct lm_error *err)
{
	memset(w, 0, sizeof(*w));
	w->err = err;
	push(w, "%s", path && path[0] ? path : "linux.seccomp");
}

int lm_seccomp_check(json_t *seccomp, const char *path, struct lm_error *err)
{
	struct walk w;
	walk_init(&w, path, err);
	return walk(&w, seccomp);
}

/* ---- ENOSYS for syscalls newer than the profile ----
 *
 * With a restrictive default action, a syscall the profile's author never
 * heard of (it came with a later kernel) would get that action, and libc,
 * which falls back to an older syscall only on ENOSYS (clone3 -> clone,
 * faccessat2 -> faccessat, ...), breaks.  As runc does, a stub in front of
 * libseccomp's program answers ENOSYS for every syscall number above the
 * highest one the profile names on that architecture.  x32 shares x86_64's
 * audit architecture and is told apart by __X32_SYSCALL_BIT.
 */

#define X32_SYSCALL_BIT 0x40000000U
#define STUB_MAX 128
enum { TO_NEXT = -1, TO_ORIG = -2, TO_ENOSYS = -3 };

struct stub {
	struct sock_filter insn[STUB_MAX];
	int jt[STUB_MAX], jf[STUB_MAX]; /* targets: an index, or TO_* */
	size_t n;
};

static void emit(struct stub *st, uint16_t code, uint32_t k, int jt, int jf)
{
	if (st->n < STUB_MAX) {
		st->insn[st->n] = (struct sock_filter)BPF_STMT(code, k);
		st->jt[st->n] = jt;
		st->jf[st->n++] = jf;
	}
}

/* One architecture's check: A holds the syscall number. */
static void emit_range(struct stub *st, int max, int after)
{
	if (max < 0)
		emit(st, BPF_JMP | BPF_JA, 0, after, after);
	else
		emit(st, BPF_JMP | BPF_JGT | BPF_K, (uint32_t)max, TO_ENOSYS, after);
}

static bool allows_outright(const char *action)
{
	return action && (!strcmp(action, "SCMP_ACT_ALLOW") || !strcmp(action, "SCMP_ACT_LOG"));
}

bool lm_seccomp_allows(json_t *seccomp, const char *syscall)
{
	if (!seccomp)
		return true;
	bool named = false, ok = true;
	json_t *rule;
	size_t i;
	json_array_foreach(json_object_get(seccomp, "syscalls"), i, rule) {
		json_t *name;
		size_t j;
		bool match = false;
		json_array_foreach(json_object_get(rule, "names"), j, name)
			match |= json_is_string(name) && !strcmp(json_string_value(name), syscall);
		if (!match)
			continue;
		named = true;
		if (!allows_outright(json_string_value(json_object_get(rule, "action"))) ||
		    json_array_size(json_object_get(rule, "args")))
			ok = false;
	}
	return named ? ok : allows_outright(json_string_value(json_object_get(seccomp, "defaultAction")));
}

static bool needs_enosys_stub(uint32_t default_action)
{
	return default_action != SCMP_ACT_ALLOW && default_action != SCMP_ACT_LOG &&
	       default_action != SCMP_ACT_ERRNO(ENOSYS);
}

static int build_stub(const struct walk *w, struct stub *st)
{
	int max64 = -1, max32 = -1;
	bool has64 = false, has32 = false;
	st->n = 0;
	emit(st, BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch), TO_NEXT, TO_NEXT);
	for (size_t i = 0; i < w->n_arches; i++) {
		uint32_t a = w->arches[i];
		if (a == SCMP_ARCH_X86_64) {
			has64 = true, max64 = w->max_nr[i];
		} else if (a == SCMP_ARCH_X32) {
			has32 = true, max32 = w->max_nr[i];
		} else if (w->max_nr[i] >= 0) {
			size_t jeq = st->n;
			emit(st, BPF_JMP | BPF_JEQ | BPF_K, a, TO_NEXT, 0 /* fixed below */);
			emit(st, BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr), TO_NEXT, TO_NEXT);
			emit_range(st, w->max_nr[i], TO_ORIG);
			st->jf[jeq] = (int)st->n; /* not this arch: the next check */
		}
	}
	if (has64 || has32) {
		size_t jeq = st->n;
		emit(st, BPF_JMP | BPF_JEQ | BPF_K, SCMP_ARCH_X86_64, TO_NEXT, 0);
		emit(st, BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr), TO_NEXT, TO_NEXT);
		size_t jset = st->n;
		/* an x32 syscall in a filter without x32 is libseccomp's (bad arch) */
		emit(st, BPF_JMP | BPF_JSET | BPF_K, X32_SYSCALL_BIT, has32 ? 0 : TO_ORIG, TO_NEXT);
		emit_range(st, has64 ? max64 : -1, TO_ORIG);
		if (has32) {
			st->jt[jset] = (int)st->n;
			emit_range(st, max32, TO_ORIG);
		}
		st->jf[jeq] = (int)st->n;
	}
	emit(st, BPF_JMP | BPF_JA, 0, TO_ORIG, TO_ORIG);
	size_t enosys = st->n;
	emit(st, BPF_RET | BPF_K, SECCOMP_RET_ERRNO | ENOSYS, TO_NEXT, TO_NEXT);
	if (st->n >= STUB_MAX)
		return -1;
	/* targets to offsets (relative to the next instruction) */
	for (size_t i = 0; i < st->n; i++) {
		int t[2] = {st->jt[i], st->jf[i]};
		for (int j = 0; j < 2; j++) {
			if (t[j] == TO_ORIG)
				t[j] = (int)st->n;
			else if (t[j] == TO_ENOSYS)
				t[j] = (int)enosys;
			else if (t[j] == TO_NEXT)
				t[j] = (int)i + 1;
			t[j] -= (int)i + 1;
			if (t[j] < 0 || t[j] > 255)
				return -1;
		}
		if (BPF_CLASS(st->insn[i].code) != BPF_JMP)
			continue;
		if (BPF_OP(st->insn[i].code) == BPF_JA) {
			st->insn[i].k = (uint32_t)t[0];
		} else {
			st->insn[i].jt = (uint8_t)t[0];
			st->insn[i].jf = (uint8_t)t[1];
		}
	}
	return 0;
}

static int export_bpf(scmp_filter_ctx ctx, struct lm_seccomp *out, struct lm_error *err)
{
	autofd fd = memfd_create("lamina-seccomp", MFD_CLOEXEC);
	if (fd < 0)
		return lm_err_sys(err, "seccomp: memfd");
	int r = seccomp_export_bpf(ctx, fd);
	if (r < 0)
		return lm_err(err, -r, "seccomp: export the filter: %s", strerror(-r));
	off_t size = lseek(fd, 0, SEEK_END);
	if (size <= 0 || size % (off_t)sizeof(struct sock_filter) != 0)
		return lm_err(err, EINVAL, "seccomp: libseccomp exported %lld bytes, not a filter", (long long)size);
	size_t n = (size_t)size / sizeof(struct sock_filter);
	if (n > BPF_MAXINSNS)
		return lm_err(err, E2BIG,
			      "linux.seccomp: the compiled filter has %zu instructions, more than the kernel's %d",
			      n, BPF_MAXINSNS);
	struct sock_filter *insns = malloc((size_t)size);
	if (!insns)
		return lm_err(err, ENOMEM, "out of memory");
	if (pread(fd, insns, (size_t)size, 0) != size) {
		free(insns);
		return lm_err_sys(err, "seccomp: read the exported filter");
	}
	out->insns = insns;
	out->len = n;
	return 0;
}

static int prepend_stub(const struct walk *w, struct lm_seccomp *out, struct lm_error *err)
{
	struct stub st;
	if (build_stub(w, &st) < 0)
		return lm_err(err, E2BIG, "linux.seccomp: too many architectures");
	size_t n = st.n + out->len;
	if (n > BPF_MAXINSNS)
		return lm_err(err, E2BIG,
			      "linux.seccomp: the compiled filter has %zu instructions, more than the kernel's %d",
			      n, BPF_MAXINSNS);
	struct sock_filter *insns = malloc(n * sizeof(*insns));
	if (!insns)
		return lm_err(err, ENOMEM, "out of memory");
	memcpy(insns, st.insn, st.n * sizeof(*insns));
	memcpy(insns + st.n, out->insns, out->len * sizeof(*insns));
	free(out->insns);
	out->insns = insns;
	out->len = n;
	return 0;
}

int lm_seccomp_compile(json_t *seccomp, struct lm_seccomp *out, struct lm_error *err)
{
	memset(out, 0, sizeof(*out));
	struct walk w;
	walk_init(&w, "linux.seccomp", err);
	if (walk(&w, seccomp) < 0)
		return -1;
	uint32_t default_action = w.default_action;
	scmp_filter_ctx ctx = seccomp_init(default_action);
	if (!ctx)
		return lm_err(err, EINVAL, "linux.seccomp.defaultAction: libseccomp refuses this action");
	/* We load the program ourselves: libseccomp's no_new_privs never applies. */
	seccomp_attr_set(ctx, SCMP_FLTATR_CTL_NNP, 0);
	walk_init(&w, "linux.seccomp", err);
	w.ctx = ctx;
	note_arch(&w, seccomp_arch_native());
	int r = walk(&w, seccomp);
	if (r == 0)
		r = export_bpf(w.ctx, out, err);
	if (r == 0 && needs_enosys_stub(default_action))
		r = prepend_stub(&w, out, err);
	out->flags = w.flags;
	seccomp_release(w.ctx);
	if (r < 0)
		lm_seccomp_free(out);
	return r;
}

void lm_seccomp_free(struct lm_seccomp *sc)
{
	free(sc->insns);
	memset(sc, 0, sizeof(*sc));
}

/* ---- the cache ---- */

struct cache_header {
	char magic[8];
	uint32_t key_len;
	uint32_t n_insns;
	uint32_t flags;
	uint32_t reserved;
	uint64_t checksum; /* FNV-1a 64 of the key, then the instructions */
};

static uint64_t fnv1a(const void *data, size_t len, uint64_t h)
{
	const unsigned char *p = data;
	for (size_t i = 0; i < len; i++) {
		h ^= p[i];
		h *= 0x100000001b3ULL;
	}
	return h;
}

#define FNV_OFFSET 0xcbf29ce484222325ULL

/* Everything the compiled program depends on, then the profile itself. */
static char *cache_key(const char *json, size_t *len)
{
	struct utsname u;
	if (uname(&u) < 0)
		snprintf(u.release, sizeof(u.release), "?");
	const struct scmp_version *v = seccomp_version();
	char *key = NULL;
	int n = asprintf(&key, "lamina-seccomp/%d arch=%#x libseccomp=%u.%u.%u kernel=%s\n%s", CACHE_FORMAT,
			 seccomp_arch_native(), v->major, v->minor, v->micro, u.release, json);
	if (n < 0)
		return NULL;
	*len = (size_t)n;
	return key;
}

/* The cache directory, if it is ours alone (owned by us, writable by nobody else). */
static int cache_dir_open(const char *root, bool create)
{
	struct lm_error ignored;
	if (create && lm_mkdir_p(root, 0700, &ignored) < 0)
		return -1;
	autofd rootfd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (rootfd < 0)
		return -1;
	if (create && mkdirat(rootfd, LM_SECCOMP_CACHE_DIR, 0700) < 0 && errno != EEXIST)
		return -1;
	int fd = openat(rootfd, LM_SECCOMP_CACHE_DIR, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	struct stat st;
	if (fd >= 0 && (fstat(fd, &st) < 0 || st.st_uid != geteuid() || (st.st_mode & 022))) {
		lm_debug("seccomp cache %s/%s: not owned by us alone: not used", root, LM_SECCOMP_CACHE_DIR);
		close(fd);
		return -1;
	}
	return fd;
}

/* 0 and *out filled on a hit; -1 on a miss of any kind. */
static int cache_read(int dir, const char *name, const char *key, size_t key_len, struct lm_seccomp *out)
{
	autofd fd = openat(dir, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0)
		return -1;
	struct stat st;
	struct cache_header h;
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_uid != geteuid() || (st.st_mode & 022) ||
	    pread(fd, &h, sizeof(h), 0) != (ssize_t)sizeof(h))
		return -1;
	const char *why = NULL;
	if (memcmp(h.magic, CACHE_MAGIC, sizeof(h.magic)) != 0)
		why = "not a lamina filter";
	else if (h.key_len != key_len)
		why = "another profile";
	else if (h.n_insns == 0 || h.n_insns > BPF_MAXINSNS)
		why = "bad instruction count";
	else if ((uint64_t)st.st_size != sizeof(h) + (uint64_t)h.key_len + (uint64_t)h.n_insns * sizeof(struct sock_filter))
		why = "wrong size";
	if (why) {
		lm_debug("seccomp cache %s: %s: recompiling", name, why);
		return -1;
	}
	size_t body = key_len + h.n_insns * sizeof(struct sock_filter);
	autofree char *buf = malloc(body);
	if (!buf || pread(fd, buf, body, sizeof(h)) != (ssize_t)body)
		return -1;
	if (memcmp(buf, key, key_len) != 0) {
		lm_debug("seccomp cache %s: another profile: recompiling", name);
		return -1;
	}
	if (fnv1a(buf, body, FNV_OFFSET) != h.checksum) {
		lm_debug("seccomp cache %s: checksum mismatch: recompiling", name);
		return -1;
	}
	out->insns = malloc(h.n_insns * sizeof(struct sock_filter));
	if (!out->insns)
		return -1;
	memcpy(out->insns, buf + key_len, h.n_insns * sizeof(struct sock_filter));
	out->len = h.n_insns;
	out->flags = h.flags;
	return 0;
}

/* Past CACHE_MAX_ENTRIES, the least recently written file goes. */
static void cache_make_room(int dir)
{
	int dup_fd = openat(dir, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dup_fd < 0)
		return;
	DIR *d = fdopendir(dup_fd);
	if (!d) {
		close(dup_fd);
		return;
	}
	size_t count = 0;
	char oldest[NAME_MAX + 1] = "";
	struct timespec oldest_t = {0};
	struct dirent *de;
	while ((de = readdir(d))) {
		size_t nl = strlen(de->d_name);
		struct stat st;
		if (nl < 5 || strcmp(de->d_name + nl - 4, ".bpf") != 0 ||
		    fstatat(dir, de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0)
			continue;
		count++;
		if (!oldest[0] || st.st_mtim.tv_sec < oldest_t.tv_sec ||
		    (st.st_mtim.tv_sec == oldest_t.tv_sec && st.st_mtim.tv_nsec < oldest_t.tv_nsec)) {
			snprintf(oldest, sizeof(oldest), "%s", de->d_name);
			oldest_t = st.st_mtim;
		}
	}
	closedir(d);
	if (count >= CACHE_MAX_ENTRIES && oldest[0])
		unlinkat(dir, oldest, 0);
}

static void cache_write(int dir, const char *name, const char *key, size_t key_len, const struct lm_seccomp *sc)
{
	size_t insn_bytes = sc->len * sizeof(struct sock_filter);
	size_t total = sizeof(struct cache_header) + key_len + insn_bytes;
	autofree char *buf = malloc(total);
	if (!buf)
		return;
	struct cache_header h = {.key_len = (uint32_t)key_len, .n_insns = (uint32_t)sc->len, .flags = sc->flags};
	memcpy(h.magic, CACHE_MAGIC, sizeof(h.magic));
	h.checksum = fnv1a(sc->insns, insn_bytes, fnv1a(key, key_len, FNV_OFFSET));
	memcpy(buf, &h, sizeof(h));
	memcpy(buf + sizeof(h), key, key_len);
	memcpy(buf + sizeof(h) + key_len, sc->insns, insn_bytes);
	cache_make_room(dir);
	struct lm_error err;
	if (lm_write_file_atomic_at(dir, name, buf, total, 0600, &err) < 0)
		lm_debug("seccomp cache: %s", err.msg);
}

int lm_seccomp_prepare(const char *json, const char *cache_root, struct lm_seccomp *out, struct lm_error *err)
{
	memset(out, 0, sizeof(*out));
	size_t key_len = 0;
	autofree char *key = cache_root ? cache_key(json, &key_len) : NULL;
	char name[32] = "";
	autofd dir = -1;
	if (key) {
		snprintf(name, sizeof(name), "%016llx.bpf", (unsigned long long)fnv1a(key, key_len, FNV_OFFSET));
		dir = cache_dir_open(cache_root, false);
		if (dir >= 0 && cache_read(dir, name, key, key_len, out) == 0) {
			out->from_cache = true;
			return 0;
		}
	}
	json_error_t jerr;
	json_t *v = json_loads(json, 0, &jerr);
	if (!v)
		return lm_err(err, EINVAL, "linux.seccomp: %s", jerr.text);
	int r = lm_seccomp_compile(v, out, err);
	json_decref(v);
	if (r < 0 || !key)
		return r;
	if (dir < 0)
		dir = cache_dir_open(cache_root, true);
	if (dir >= 0)
		cache_write(dir, name, key, key_len, out);
	else
		lm_debug("seccomp cache under %s: cannot open: compiled filters are not kept", cache_root);
	return 0;
}

/* ---- in the container process ---- */

bool lm_seccomp_load_late(const struct lm_process *proc)
{
	if (proc->no_new_privileges)
		return true;
	if (proc->has_caps)
		return proc->caps.effective & (1ULL << CAP_SYS_ADMIN);
	return proc->uid == 0; /* root keeps its capabilities across setresuid(0) */
}

int lm_seccomp_load(const struct lm_seccomp *sc, struct lm_error *err)
{
	struct sock_fprog prog = {.len = (unsigned short)sc->len, .filter = sc->insns};
	if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, sc->flags, &prog) == 0)
		return 0;
	if (errno == EACCES)
		return lm_err(err, EACCES, "load the seccomp filter: the process has neither no_new_privs nor CAP_SYS_ADMIN");
	return lm_err_sys(err, "load the seccomp filter");
}

json_t *lm_seccomp_features(void)
{
	json_t *acts = json_array(), *ops = json_array(), *archs = json_array(), *known = json_array(),
	       *supported = json_array();
	for (size_t i = 0; i < ARRAY_SIZE(actions); i++)
		if (actions[i].kind != ACT_NOTIFY)
			json_array_append_new(acts, json_string(actions[i].name));
	for (size_t i = 0; i < ARRAY_SIZE(operators); i++)
		json_array_append_new(ops, json_string(operators[i].name));
	for (size_t i = 0; i < ARRAY_SIZE(arches); i++)
		if (seccomp_arch_resolve_name(arches[i].scmp) != 0)
			json_array_append_new(archs, json_string(arches[i].name));
	for (size_t i = 0; i < ARRAY_SIZE(filter_flags); i++) {
		json_array_append_new(known, json_string(filter_flags[i].name));
		unsigned int f = filter_flags[i].flag;
		if (f == SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV)
			f |= SECCOMP_FILTER_FLAG_NEW_LISTENER;
		if (kernel_has_flag(f))
			json_array_append_new(supported, json_string(filter_flags[i].name));
	}
	return json_pack("{s:b,s:o,s:o,s:o,s:o,s:o}", "enabled", 1, "actions", acts, "operators", ops, "archs",
			 archs, "knownFlags", known, "supportedFlags", supported);
}
