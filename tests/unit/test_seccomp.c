/* Unit tests for linux.seccomp (runtime/seccomp.c, runtime/seccomp_default.c):
 * the checks and their messages, what the compiled filters do (each action
 * and operator, loaded in a forked child that then makes the syscall), the
 * built-in profile, and the compiled-filter cache (hit, miss, corrupt or
 * foreign files recompiled).
 *
 * JSON is written with single quotes and converted before parsing.
 */
#include "testutil.h"

#include <jansson.h>
#include <linux/capability.h>
#include <linux/seccomp.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>

#include "runtime/seccomp.h"
#include "runtime/spec.h"

#define ALLOW_ALL "'defaultAction':'SCMP_ACT_ALLOW'"

static char *dq(const char *s)
{
	char *out = strdup(s);
	assert_non_null(out);
	for (char *c = out; *c; c++)
		if (*c == '\'')
			*c = '"';
	return out;
}

static json_t *J(const char *s)
{
	char *text = dq(s);
	json_error_t je;
	json_t *v = json_loads(text, JSON_DECODE_ANY, &je);
	if (!v)
		fail_msg("bad test JSON %s: %s", text, je.text);
	free(text);
	return v;
}

/* ---- checks ---- */

struct bad_case {
	const char *json;
	int code;
	const char *msg; /* the whole "path: what" prefix the user sees */
};

static const struct bad_case bad_cases[] = {
	{"[]", EINVAL, "linux.seccomp: expected an object"},
	{"{}", EINVAL, "linux.seccomp.defaultAction: required"},
	{"{'defaultAction':'SCMP_ACT_NOPE'}", EINVAL, "linux.seccomp.defaultAction: unknown action \"SCMP_ACT_NOPE\""},
	{"{'defaultAction':1}", EINVAL, "linux.seccomp.defaultAction: expected a string"},
	{"{'defaultAction':'SCMP_ACT_NOTIFY','listenerPath':'/x'}", ENOTSUP,
	 "linux.seccomp.defaultAction: SCMP_ACT_NOTIFY"},
	{"{" ALLOW_ALL ",'defaultErrnoRet':5}", EINVAL,
	 "linux.seccomp.defaultErrnoRet: SCMP_ACT_ALLOW has no errno"},
	{"{'defaultAction':'SCMP_ACT_ERRNO','defaultErrnoRet':4096}", EINVAL,
	 "linux.seccomp.defaultErrnoRet: expected an errno between 0 and 4095"},
	{"{'defaultAction':'SCMP_ACT_ERRNO','defaultErrnoRet':-1}", EINVAL,
	 "linux.seccomp.defaultErrnoRet: expected an errno between 0 and 4095"},
	{"{'defaultAction':'SCMP_ACT_ERRNO','defaultErrnoRet':'1'}", EINVAL,
	 "linux.seccomp.defaultErrnoRet: expected an errno"},
	{"{'defaultAction':'SCMP_ACT_TRACE','defaultErrnoRet':65536}", EINVAL,
	 "linux.seccomp.defaultErrnoRet: expected a value between 0 and 65535"},
	{"{" ALLOW_ALL ",'architectures':['SCMP_ARCH_X86_64','SCMP_ARCH_Z80']}", EINVAL,
	 "linux.seccomp.architectures[1]: unknown architecture \"SCMP_ARCH_Z80\""},
	{"{" ALLOW_ALL ",'architectures':'SCMP_ARCH_X86_64'}", EINVAL,
	 "linux.seccomp.architectures: expected an array"},
	{"{" ALLOW_ALL ",'flags':['SECCOMP_FILTER_FLAG_LOG','SECCOMP_FILTER_FLAG_NOPE']}", EINVAL,
	 "linux.seccomp.flags[1]: unknown flag \"SECCOMP_FILTER_FLAG_NOPE\""},
	{"{" ALLOW_ALL ",'flags':['SECCOMP_FILTER_FLAG_NEW_LISTENER']}", EINVAL,
	 "linux.seccomp.flags[0]: unknown flag"},
	{"{" ALLOW_ALL ",'listenerPath':5}", EINVAL, "linux.seccomp.listenerPath: expected a string"},
	{"{" ALLOW_ALL ",'syscalls':{}}", EINVAL, "linux.seccomp.syscalls: expected an array"},
	{"{" ALLOW_ALL ",'syscalls':[5]}", EINVAL, "linux.seccomp.syscalls[0]: expected an object"},
	{"{" ALLOW_ALL ",'syscalls':[{'action':'SCMP_ACT_ERRNO'}]}", EINVAL,
	 "linux.seccomp.syscalls[0].names: required"},
	{"{" ALLOW_ALL ",'syscalls':[{'names':[],'action':'SCMP_ACT_ERRNO'}]}", EINVAL,
	 "linux.seccomp.syscalls[0].names: expected a non-empty array"},
	{"{" ALLOW_ALL ",'syscalls':[{'names':['getpid',7],'action':'SCMP_ACT_ERRNO'}]}", EINVAL,
	 "linux.seccomp.syscalls[0].names[1]: expected a syscall name"},
	{"{" ALLOW_ALL ",'syscalls':[{'names':['getpid']}]}", EINVAL, "linux.seccomp.syscalls[0].action: required"},
	{"{" ALLOW_ALL ",'syscalls':[{'names':['getpid'],'action':'SCMP_ACT_ERRNO'},"
	 "{'names':['getpid'],'action':'SCMP_ACT_BOOM'}]}",
	 EINVAL, "linux.seccomp.syscalls[1].action: unknown action \"SCMP_ACT_BOOM\""},
	{"{" ALLOW_ALL ",'syscalls':[{'names':['getpid'],'action':'SCMP_ACT_NOTIFY'}]}", ENOTSUP,
	 "linux.seccomp.syscalls[0].action: SCMP_ACT_NOTIFY (a seccomp agent on listenerPath) is not supported"},
	{"{" ALLOW_ALL ",'syscalls':[{'names':['getpid'],'action':'SCMP_ACT_ERRNO','errnoRet':5000}]}", EINVAL,
	 "linux.seccomp.syscalls[0].errnoRet: expected an errno between 0 and 4095"},
	{"{" ALLOW_ALL ",'syscalls':[{'names':['getpid'],'action':'SCMP_ACT_KILL','errnoRet':1}]}", EINVAL,
	 "linux.seccomp.syscalls[0].errnoRet: SCMP_ACT_KILL has no errno"},
	{"{" ALLOW_ALL ",'syscalls':[{'names':['getpid'],'action':'SCMP_ACT_ERRNO','args':{}}]}", EINVAL,
	 "linux.seccomp.syscalls[0].args: expected an array"},
	{"{" ALLOW_ALL ",'syscalls':[{'names':['getpid'],'action':'SCMP_ACT_ERRNO',"
	 "'args':[{'index':0,'value':1,'op':'SCMP_CMP_WAT'}]}]}",
	 EINVAL, "linux.seccomp.syscalls[0].args[0].op: unknown operator \"SCMP_CMP_WAT\""},
	{"{" ALLOW_ALL ",'syscalls':[{'names':['getpid'],'action':'SCMP_ACT_ERRNO',"
	 "'args':[{'index':0,'value':1,'op':'SCMP_CMP_EQ'},{'index':6,'value':1,'op':'SCMP_CMP_EQ'}]}]}",
	 EINVAL, "linux.seccomp.syscalls[0].args[1].index: expected an argument index between 0 and 5"},
	{"{" ALLOW_ALL ",'syscalls':[{'names':['getpid'],'action':'SCMP_ACT_ERRNO','args':[{'index':0,'value':1}]}]}",
	 EINVAL, "linux.seccomp.syscalls[0].args[0].op: required"},
	{"{" ALLOW_ALL ",'syscalls':[{'names':['getpid'],'action':'SCMP_ACT_ERRNO','args':[{'index':0,'op':'SCMP_CMP_EQ'}]}]}",
	 EINVAL, "linux.seccomp.syscalls[0].args[0].value: required"},
	{"{" ALLOW_ALL ",'syscalls':[{'names':['getpid'],'action':'SCMP_ACT_ERRNO',"
	 "'args':[{'index':0,'value':-1,'op':'SCMP_CMP_EQ'}]}]}",
	 EINVAL, "linux.seccomp.syscalls[0].args[0].value: expected an unsigned integer"},
	{"{" ALLOW_ALL ",'syscalls':[{'names':['getpid'],'action':'SCMP_ACT_ERRNO',"
	 "'args':[{'index':0,'value':1,'valueTwo':1.5,'op':'SCMP_CMP_MASKED_EQ'}]}]}",
	 EINVAL, "linux.seccomp.syscalls[0].args[0].valueTwo: expected an unsigned integer"},
};

static void test_check_errors(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(bad_cases) / sizeof(bad_cases[0]); i++) {
		json_t *v = J(bad_cases[i].json);
		struct lm_error err = {0};
		if (lm_seccomp_check(v, "linux.seccomp", &err) >= 0)
			fail_msg("accepted: %s", bad_cases[i].json);
		if (strncmp(err.msg, bad_cases[i].msg, strlen(bad_cases[i].msg)) != 0)
			fail_msg("%s:\n got \"%s\"\nwant \"%s...\"", bad_cases[i].json, err.msg, bad_cases[i].msg);
		assert_int_equal(err.code, bad_cases[i].code);
		/* compiling checks the same way */
		struct lm_seccomp sc;
		struct lm_error err2 = {0};
		assert_true(lm_seccomp_compile(v, &sc, &err2) < 0);
		assert_string_equal(err2.msg, err.msg);
		json_decref(v);
	}
}

/* The spec parser runs the same check: a bad section fails the whole config. */
static void test_spec_rejects_bad_section(void **state)
{
	(void)state;
	char *text = dq("{'ociVersion':'1.0.2','root':{'path':'rootfs'},'process':{'args':['/bin/sh'],'cwd':'/'},"
			"'linux':{'seccomp':{'defaultAction':'SCMP_ACT_ALLOW','syscalls':[{'names':['mount'],"
			"'action':'SCMP_ACT_ERRNO','args':[{'index':0,'value':0,'op':'SCMP_CMP_ALMOST'}]}]}}}");
	struct lm_spec *spec = NULL;
	struct lm_error err = {0};
	assert_true(lm_spec_parse(text, strlen(text), "/run/bundle", &spec, &err) < 0);
	assert_contains(err.msg, "linux.seccomp.syscalls[0].args[0].op: unknown operator \"SCMP_CMP_ALMOST\"");
	free(text);

	/* a good one is kept as compact JSON with sorted keys: the cache's key */
	text = dq("{'ociVersion':'1.0.2','root':{'path':'rootfs'},'process':{'args':['/bin/sh'],'cwd':'/'},"
		  "'linux':{'seccomp':{'syscalls':[{'names':['mount'],'action':'SCMP_ACT_ERRNO'}],"
		  "'defaultAction':'SCMP_ACT_ALLOW'}}}");
	assert_ok(lm_spec_parse(text, strlen(text), "/run/bundle", &spec, &err), err);
	assert_true(spec->has_seccomp);
	assert_string_equal(spec->seccomp_json,
			    "{\"defaultAction\":\"SCMP_ACT_ALLOW\",\"syscalls\":[{\"action\":\"SCMP_ACT_ERRNO\","
			    "\"names\":[\"mount\"]}]}");
	lm_spec_free(spec);
	free(text);
}

static void test_check_accepts(void **state)
{
	(void)state;
	const char *good[] = {
		"{" ALLOW_ALL "}",
		"{" ALLOW_ALL ",'syscalls':null,'architectures':null,'flags':null}",
		"{'defaultAction':'SCMP_ACT_ERRNO','defaultErrnoRet':0}",
		"{'defaultAction':'SCMP_ACT_TRACE','defaultErrnoRet':65535}",
		"{'defaultAction':'SCMP_ACT_KILL_PROCESS','architectures':['SCMP_ARCH_X86_64','SCMP_ARCH_X86','SCMP_ARCH_X32']}",
		"{" ALLOW_ALL ",'flags':['SECCOMP_FILTER_FLAG_TSYNC','SECCOMP_FILTER_FLAG_LOG','SECCOMP_FILTER_FLAG_SPEC_ALLOW',"
		"'SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV']}",
		"{" ALLOW_ALL ",'syscalls':[{'names':['getpid'],'action':'SCMP_ACT_ERRNO','errnoRet':4095,'comment':'x',"
		"'args':null}]}",
	};
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		json_t *v = J(good[i]);
		struct lm_error err = {0};
		if (lm_seccomp_check(v, "linux.seccomp", &err) < 0)
			fail_msg("%s: %s", good[i], err.msg);
		json_decref(v);
	}
}

/* ---- what compiled filters do ---- */

static struct lm_seccomp compile_ok(const char *json)
{
	json_t *v = J(json);
	struct lm_seccomp sc;
	struct lm_error err = {0};
	if (lm_seccomp_compile(v, &sc, &err) < 0)
		fail_msg("compile %s: %s", json, err.msg);
	json_decref(v);
	assert_true(sc.len > 0 && sc.len <= BPF_MAXINSNS);
	assert_false(sc.from_cache);
	return sc;
}

/* errno of syscall(nr, a0, a1), 0 on success (in the filtered child). */
static int call(long nr, long a0, long a1)
{
	errno = 0;
	return syscall(nr, a0, a1, 0, 0, 0, 0) < 0 ? errno : 0;
}

typedef int (*child_fn)(void);

/* Fork; the child loads the filter (with no_new_privs, as an unprivileged
 * process would) and exits with fn's value.  Returns the wait status. */
static int run_filtered(const struct lm_seccomp *sc, child_fn fn)
{
	fflush(NULL);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		struct rlimit no_core = {0, 0};
		setrlimit(RLIMIT_CORE, &no_core); /* SIGSYS dumps core by default */
		/* cmocka catches SIGSYS to fail the test: here it must kill */
		signal(SIGSYS, SIG_DFL);
		struct lm_error err;
		if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0 || lm_seccomp_load(sc, &err) < 0)
			_exit(250);
		/* the raw exit: a sanitizer's _exit would make syscalls of its own */
		syscall(SYS_exit_group, fn());
	}
	int status;
	while (waitpid(pid, &status, 0) < 0)
		assert_int_equal(errno, EINTR);
	return status;
}

static int exit_code(int status)
{
	if (!WIFEXITED(status))
		fail_msg("child did not exit: status %#x (signal %d)", status, WIFSIGNALED(status) ? WTERMSIG(status) : 0);
	return WEXITSTATUS(status);
}

static int getpriority_5(void) { return call(SYS_getpriority, 5, 0); }
static int getpriority_0(void) { return call(SYS_getpriority, 0, 0); }
static int getpid_errno(void) { return call(SYS_getpid, 0, 0); }

static int action_result(const char *action)
{
	char json[512];
	FMT(json, "{" ALLOW_ALL ",'syscalls':[{'names':['getpriority'],'action':'%s'}]}", action);
	struct lm_seccomp sc = compile_ok(json);
	int status = run_filtered(&sc, getpriority_0);
	lm_seccomp_free(&sc);
	return status;
}

static void test_actions(void **state)
{
	(void)state;
	/* errno: the given one, EPERM when absent */
	struct lm_seccomp sc = compile_ok("{" ALLOW_ALL ",'syscalls':[{'names':['getpriority'],'action':'SCMP_ACT_ERRNO',"
					  "'errnoRet':77}]}");
	assert_int_equal(exit_code(run_filtered(&sc, getpriority_0)), 77);
	assert_int_equal(exit_code(run_filtered(&sc, getpid_errno)), 0);
	lm_seccomp_free(&sc);
	assert_int_equal(exit_code(action_result("SCMP_ACT_ERRNO")), EPERM);
	/* allowed and logged: the syscall runs */
	assert_int_equal(exit_code(action_result("SCMP_ACT_LOG")), 0);
	/* trace without a tracer: ENOSYS */
	assert_int_equal(exit_code(action_result("SCMP_ACT_TRACE")), ENOSYS);
	/* a rule with the default action is dropped, not an error */
	assert_int_equal(exit_code(action_result("SCMP_ACT_ALLOW")), 0);
	/* trap and the kills end the process with SIGSYS */
	const char *fatal[] = {"SCMP_ACT_TRAP", "SCMP_ACT_KILL", "SCMP_ACT_KILL_THREAD", "SCMP_ACT_KILL_PROCESS"};
	for (size_t i = 0; i < sizeof(fatal) / sizeof(fatal[0]); i++) {
		int status = action_result(fatal[i]);
		if (!WIFSIGNALED(status) || WTERMSIG(status) != SIGSYS)
			fail_msg("%s: status %#x, expected death by SIGSYS", fatal[i], status);
	}
}

static void test_default_action_errno(void **state)
{
	(void)state;
	/* an allow list: everything else fails with defaultErrnoRet */
	struct lm_seccomp sc = compile_ok("{'defaultAction':'SCMP_ACT_ERRNO','defaultErrnoRet':55,"
					  "'syscalls':[{'names':['exit_group','exit','getpriority'],'action':'SCMP_ACT_ALLOW'}]}");
	assert_int_equal(exit_code(run_filtered(&sc, getpid_errno)), 55);
	assert_int_equal(exit_code(run_filtered(&sc, getpriority_0)), 0);
	lm_seccomp_free(&sc);
	sc = compile_ok("{'defaultAction':'SCMP_ACT_ERRNO','syscalls':[{'names':['exit_group'],'action':'SCMP_ACT_ALLOW'}]}");
	assert_int_equal(exit_code(run_filtered(&sc, getpid_errno)), EPERM);
	lm_seccomp_free(&sc);
}

/* Which of getpriority(a0, a1) for the listed pairs hit the ERRNO(77) rule:
 * bit i for pair i (set by the child). */
static long pairs[8][2];
static size_t n_pairs;

static int matched_pairs(void)
{
	int mask = 0;
	for (size_t i = 0; i < n_pairs; i++)
		if (call(SYS_getpriority, pairs[i][0], pairs[i][1]) == 77)
			mask |= 1 << i;
	return mask;
}

static int rule_matches(const char *args_json)
{
	char json[1024];
	FMT(json, "{" ALLOW_ALL ",'syscalls':[{'names':['getpriority'],'action':'SCMP_ACT_ERRNO','errnoRet':77,"
		  "'args':%s}]}", args_json);
	struct lm_seccomp sc = compile_ok(json);
	int r = exit_code(run_filtered(&sc, matched_pairs));
	lm_seccomp_free(&sc);
	return r;
}

static void test_operators(void **state)
{
	(void)state;
	/* which >= 3 makes getpriority fail with EINVAL unless the rule hits */
	long a0s[] = {3, 4, 5, 7};
	n_pairs = 4;
	for (size_t i = 0; i < n_pairs; i++) {
		pairs[i][0] = a0s[i];
		pairs[i][1] = 0;
	}
	struct {
		const char *op;
		int value, value_two;
		int want; /* bits of a0s that match */
	} cases[] = {
		{"SCMP_CMP_NE", 5, 0, 0x1 | 0x2 | 0x8}, {"SCMP_CMP_LT", 5, 0, 0x1 | 0x2},
		{"SCMP_CMP_LE", 5, 0, 0x1 | 0x2 | 0x4}, {"SCMP_CMP_EQ", 5, 0, 0x4},
		{"SCMP_CMP_GE", 5, 0, 0x4 | 0x8},        {"SCMP_CMP_GT", 5, 0, 0x8},
		/* (a0 & 6) == 4: 4 and 5, not 3 or 7 */
		{"SCMP_CMP_MASKED_EQ", 6, 4, 0x2 | 0x4},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char args[256];
		FMT(args, "[{'index':0,'value':%d,'valueTwo':%d,'op':'%s'}]", cases[i].value, cases[i].value_two,
		    cases[i].op);
		int got = rule_matches(args);
		if (got != cases[i].want)
			fail_msg("%s: matched %#x, expected %#x", cases[i].op, got, cases[i].want);
	}
}

static void test_conditions_and_or(void **state)
{
	(void)state;
	long p[][2] = {{3, 9}, {3, 0}, {4, 9}, {4, 0}};
	n_pairs = 4;
	memcpy(pairs, p, sizeof(p));
	/* distinct arguments: ANDed in one rule */
	assert_int_equal(rule_matches("[{'index':0,'value':3,'op':'SCMP_CMP_EQ'},{'index':1,'value':9,'op':'SCMP_CMP_EQ'}]"),
			 0x1);
	/* one argument twice: one rule each, ORed (as runc) */
	assert_int_equal(rule_matches("[{'index':0,'value':3,'op':'SCMP_CMP_EQ'},{'index':0,'value':4,'op':'SCMP_CMP_EQ'}]"),
			 0xf);
}

static void test_unknown_syscall_skipped(void **state)
{
	(void)state;
	struct lm_seccomp sc = compile_ok("{" ALLOW_ALL ",'syscalls':[{'names':['no_such_syscall_here','getpriority'],"
					  "'action':'SCMP_ACT_ERRNO','errnoRet':77}]}");
	assert_int_equal(exit_code(run_filtered(&sc, getpriority_5)), 77);
	lm_seccomp_free(&sc);
	/* a rule of unknown names only compiles to the default action */
	sc = compile_ok("{" ALLOW_ALL ",'syscalls':[{'names':['no_such_syscall_here'],'action':'SCMP_ACT_KILL'}]}");
	assert_int_equal(exit_code(run_filtered(&sc, getpriority_5)), EINVAL);
	lm_seccomp_free(&sc);
	/* a name this machine only knows for another architecture is no error either */
	sc = compile_ok("{" ALLOW_ALL ",'syscalls':[{'names':['socketcall','chown32'],'action':'SCMP_ACT_ERRNO'}]}");
	lm_seccomp_free(&sc);
}

/* A number far above any syscall: what a kernel newer than the profile might add. */
static int future_syscall(void) { return call(1000, 0, 0); }
/* one past the highest the profile below names (exit_group, on x86_64) */
static int newest_known(void) { return call(SYS_exit_group + 1, 0, 0); }

static void test_enosys_for_newer_syscalls(void **state)
{
	(void)state;
	/* above the highest syscall the profile names: ENOSYS, so libc falls back */
	struct lm_seccomp sc = compile_ok("{'defaultAction':'SCMP_ACT_ERRNO','defaultErrnoRet':55,'architectures':"
					  "['SCMP_ARCH_X86_64','SCMP_ARCH_X86','SCMP_ARCH_X32'],'syscalls':[{'names':"
					  "['exit_group','exit','getpriority'],'action':'SCMP_ACT_ALLOW'}]}");
	assert_int_equal(exit_code(run_filtered(&sc, future_syscall)), ENOSYS);
	assert_int_equal(exit_code(run_filtered(&sc, newest_known)), ENOSYS);
	/* below it: the default action */
	assert_int_equal(exit_code(run_filtered(&sc, getpid_errno)), 55);
	assert_int_equal(exit_code(run_filtered(&sc, getpriority_0)), 0);
	lm_seccomp_free(&sc);
	/* even with a fatal default action */
	sc = compile_ok("{'defaultAction':'SCMP_ACT_KILL_PROCESS','syscalls':[{'names':['exit_group'],"
			"'action':'SCMP_ACT_ALLOW'}]}");
	assert_int_equal(exit_code(run_filtered(&sc, future_syscall)), ENOSYS);
	lm_seccomp_free(&sc);
	/* a permissive default needs no stub: the future syscall is the kernel's (ENOSYS too) */
	struct lm_seccomp allow = compile_ok("{" ALLOW_ALL ",'syscalls':[{'names':['getpriority'],'action':'SCMP_ACT_ERRNO'}]}");
	struct lm_seccomp deny_default = compile_ok("{'defaultAction':'SCMP_ACT_ERRNO','syscalls':[{'names':['getpriority'],"
						    "'action':'SCMP_ACT_ALLOW'}]}");
	assert_true(deny_default.len > allow.len);
	lm_seccomp_free(&allow);
	lm_seccomp_free(&deny_default);
}

static void test_flags(void **state)
{
	(void)state;
	struct lm_seccomp sc = compile_ok("{" ALLOW_ALL ",'flags':['SECCOMP_FILTER_FLAG_LOG','SECCOMP_FILTER_FLAG_SPEC_ALLOW',"
					  "'SECCOMP_FILTER_FLAG_TSYNC','SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV'],"
					  "'syscalls':[{'names':['getpriority'],'action':'SCMP_ACT_ERRNO','errnoRet':77}]}");
	/* WAIT_KILLABLE_RECV needs a listener: dropped */
	assert_int_equal(sc.flags, SECCOMP_FILTER_FLAG_LOG | SECCOMP_FILTER_FLAG_SPEC_ALLOW | SECCOMP_FILTER_FLAG_TSYNC);
	assert_int_equal(exit_code(run_filtered(&sc, getpriority_0)), 77);
	lm_seccomp_free(&sc);
}

static void test_load_late(void **state)
{
	(void)state;
	struct lm_process p = {0};
	p.uid = 0;
	assert_true(lm_seccomp_load_late(&p)); /* root keeps its capabilities */
	p.uid = 1000;
	assert_false(lm_seccomp_load_late(&p)); /* setresuid drops them all */
	p.no_new_privileges = true;
	assert_true(lm_seccomp_load_late(&p));
	p.no_new_privileges = false;
	p.uid = 0;
	p.has_caps = true;
	p.caps.effective = 1ULL << CAP_KILL;
	assert_false(lm_seccomp_load_late(&p));
	p.caps.effective |= 1ULL << CAP_SYS_ADMIN;
	assert_true(lm_seccomp_load_late(&p));
}

/* ---- the built-in profile ---- */

static bool profile_denies(json_t *profile, const char *name)
{
	size_t i, j;
	json_t *rule, *n;
	json_array_foreach(json_object_get(profile, "syscalls"), i, rule) {
		json_array_foreach(json_object_get(rule, "names"), j, n) {
			if (strcmp(json_string_value(n), name) == 0)
				return true;
		}
	}
	return false;
}

static json_t *default_profile(const char *const *caps)
{
	json_t *p = NULL;
	struct lm_error err = {0};
	assert_ok(lm_seccomp_default_profile(caps, &p, &err), err);
	assert_ok(lm_seccomp_check(p, "linux.seccomp", &err), err);
	return p;
}

static int default_denials(void)
{
	/* exit code: bit per syscall that failed as the profile says */
	int bits = 0;
	if (call(SYS_keyctl, 0, -3) == EPERM)
		bits |= 1;
	if (call(SYS_unshare, CLONE_NEWUSER, 0) == EPERM)
		bits |= 2;
	if (call(SYS_clone3, 0, 0) == ENOSYS)
		bits |= 4;
	if (call(SYS_socket, 40 /* AF_VSOCK */, SOCK_STREAM) == EPERM)
		bits |= 8;
	if (call(SYS_getpid, 0, 0) == 0 && call(SYS_getpriority, 0, 0) == 0)
		bits |= 16;
	/* bogus flags and a NULL time: harmless even if the filter let them through */
	errno = 0;
	if (syscall(SYS_kexec_load, 0, 0, NULL, 0xdead0000UL) < 0 && errno == EPERM &&
	    call(SYS_clock_settime, 0, 0) == EPERM)
		bits |= 32;
	/* a plain fork (clone without namespace flags) still works */
	pid_t pid = fork();
	if (pid == 0)
		_exit(0);
	if (pid > 0 && waitpid(pid, NULL, 0) == pid)
		bits |= 64;
	return bits;
}

static void test_default_profile(void **state)
{
	(void)state;
	const char *const base[] = {"CAP_CHOWN", "CAP_KILL", "CAP_NET_BIND_SERVICE", NULL};
	json_t *p = default_profile(base);
	const char *denied[] = {"mount", "umount2", "pivot_root", "keyctl", "add_key", "request_key", "bpf",
				"kexec_load", "kexec_file_load", "clock_settime", "settimeofday", "swapon",
				"swapoff", "perf_event_open", "open_by_handle_at", "init_module", "finit_module",
				"delete_module", "setns", "reboot", "syslog", "acct", "iopl"};
	for (size_t i = 0; i < sizeof(denied) / sizeof(denied[0]); i++)
		if (!profile_denies(p, denied[i]))
			fail_msg("default profile allows %s", denied[i]);
	const char *allowed[] = {"read", "ptrace", "chown", "adjtimex", "execve"};
	for (size_t i = 0; i < sizeof(allowed) / sizeof(allowed[0]); i++)
		assert_false(profile_denies(p, allowed[i]));
	assert_string_equal(json_string_value(json_object_get(p, "defaultAction")), "SCMP_ACT_ALLOW");

	struct lm_seccomp sc;
	struct lm_error err = {0};
	assert_ok(lm_seccomp_compile(p, &sc, &err), err);
	assert_int_equal(exit_code(run_filtered(&sc, default_denials)), 127);
	lm_seccomp_free(&sc);
	json_decref(p);
}

static void test_default_profile_caps(void **state)
{
	(void)state;
	const char *const with_time[] = {"CAP_SYS_TIME", NULL};
	json_t *p = default_profile(with_time);
	assert_false(profile_denies(p, "clock_settime"));
	assert_false(profile_denies(p, "settimeofday"));
	assert_true(profile_denies(p, "mount"));
	json_decref(p);

	const char *const admin[] = {"CAP_SYS_ADMIN", "CAP_SYS_MODULE", "CAP_SYS_PTRACE", "CAP_SYS_BOOT", NULL};
	p = default_profile(admin);
	const char *now_allowed[] = {"mount", "umount2", "setns", "unshare", "clone", "clone3", "bpf",
				     "perf_event_open", "syslog", "init_module", "finit_module", "delete_module",
				     "kcmp", "pidfd_getfd", "reboot"};
	for (size_t i = 0; i < sizeof(now_allowed) / sizeof(now_allowed[0]); i++)
		if (profile_denies(p, now_allowed[i]))
			fail_msg("with CAP_SYS_ADMIN etc. the profile still denies %s", now_allowed[i]);
	/* what no capability brings back */
	assert_true(profile_denies(p, "keyctl"));
	assert_true(profile_denies(p, "kexec_load"));
	assert_true(profile_denies(p, "swapon"));
	assert_true(profile_denies(p, "pivot_root"));
	json_decref(p);

	const char *const bpf_only[] = {"CAP_BPF", "CAP_PERFMON", NULL};
	p = default_profile(bpf_only);
	assert_false(profile_denies(p, "bpf"));
	assert_false(profile_denies(p, "perf_event_open"));
	assert_true(profile_denies(p, "mount"));
	json_decref(p);

	p = default_profile(NULL);
	assert_true(profile_denies(p, "chroot"));
	json_decref(p);

	const char *const bad[] = {"CAP_NOPE", NULL};
	struct lm_error err = {0};
	assert_true(lm_seccomp_default_profile(bad, &p, &err) < 0);
	assert_contains(err.msg, "unknown capability \"CAP_NOPE\"");
}

/* ---- the cache ---- */

static char root[64];
static char cache_dir[128];

static int cache_setup(void **state)
{
	(void)state;
	if (tu_mkdtemp(root, sizeof(root), "seccomp") < 0)
		return -1;
	snprintf(cache_dir, sizeof(cache_dir), "%s/%s", root, LM_SECCOMP_CACHE_DIR);
	return 0;
}

static int cache_teardown(void **state)
{
	(void)state;
	tu_rm_tree(root, 0);
	return 0;
}

static const char *PROFILE_A = "{\"defaultAction\":\"SCMP_ACT_ALLOW\",\"syscalls\":[{\"action\":\"SCMP_ACT_ERRNO\","
			       "\"errnoRet\":77,\"names\":[\"getpriority\"]}]}";
static const char *PROFILE_B = "{\"defaultAction\":\"SCMP_ACT_ALLOW\",\"syscalls\":[{\"action\":\"SCMP_ACT_ERRNO\","
			       "\"errnoRet\":78,\"names\":[\"getpriority\"]}]}";

static struct lm_seccomp prepare_ok(const char *json, const char *cache_root)
{
	struct lm_seccomp sc;
	struct lm_error err = {0};
	assert_ok(lm_seccomp_prepare(json, cache_root, &sc, &err), err);
	return sc;
}

/* The one cache file's name (there must be exactly `want` of them). */
static void cache_files(int want, char *name, size_t len)
{
	assert_int_equal(tu_count_entries(cache_dir), want);
	DIR *d = opendir(cache_dir);
	assert_non_null(d);
	struct dirent *de;
	while ((de = readdir(d)))
		if (de->d_name[0] != '.')
			snprintf(name, len, "%s/%s", cache_dir, de->d_name);
	closedir(d);
}

static void test_cache_hit_miss(void **state)
{
	(void)state;
	struct lm_seccomp first = prepare_ok(PROFILE_A, root);
	assert_false(first.from_cache);
	char path[256];
	cache_files(1, path, sizeof(path));
	struct stat st;
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0600);
	assert_int_equal(stat(cache_dir, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0700);

	struct lm_seccomp again = prepare_ok(PROFILE_A, root);
	assert_true(again.from_cache);
	assert_int_equal(again.len, first.len);
	assert_int_equal(again.flags, first.flags);
	assert_memory_equal(again.insns, first.insns, first.len * sizeof(struct sock_filter));
	assert_int_equal(exit_code(run_filtered(&again, getpriority_0)), 77);

	/* another profile: another entry, its own filter */
	struct lm_seccomp other = prepare_ok(PROFILE_B, root);
	assert_false(other.from_cache);
	assert_int_equal(tu_count_entries(cache_dir), 2);
	assert_int_equal(exit_code(run_filtered(&other, getpriority_0)), 78);

	/* no cache root: always compiled */
	struct lm_seccomp none = prepare_ok(PROFILE_A, NULL);
	assert_false(none.from_cache);
	lm_seccomp_free(&first);
	lm_seccomp_free(&again);
	lm_seccomp_free(&other);
	lm_seccomp_free(&none);
}

/* Damage the one cache file of PROFILE_A, then check it is recompiled
 * (not loaded) and rewritten whole. */
static void damage_and_check(void (*damage)(const char *path))
{
	tu_rm_tree(cache_dir, 0);
	struct lm_seccomp good = prepare_ok(PROFILE_A, root);
	char path[256];
	cache_files(1, path, sizeof(path));
	damage(path);
	struct lm_seccomp sc = prepare_ok(PROFILE_A, root);
	assert_false(sc.from_cache);
	assert_int_equal(sc.len, good.len);
	assert_memory_equal(sc.insns, good.insns, good.len * sizeof(struct sock_filter));
	lm_seccomp_free(&sc);
	sc = prepare_ok(PROFILE_A, root);
	assert_true(sc.from_cache);
	lm_seccomp_free(&sc);
	lm_seccomp_free(&good);
}

static void truncate_file(const char *path) { assert_int_equal(truncate(path, 100), 0); }
static void empty_file(const char *path) { assert_int_equal(truncate(path, 0), 0); }

static void flip_last_byte(const char *path)
{
	int fd = open(path, O_RDWR);
	assert_true(fd >= 0);
	off_t end = lseek(fd, 0, SEEK_END);
	unsigned char b;
	assert_int_equal(pread(fd, &b, 1, end - 1), 1);
	b ^= 0x01;
	assert_int_equal(pwrite(fd, &b, 1, end - 1), 1);
	close(fd);
}

static void foreign_file(const char *path)
{
	const char *junk = "#!/bin/sh\necho not a filter\n";
	tu_write_file(path, junk, strlen(junk), 0600);
}

/* PROFILE_B's file under PROFILE_A's name: a hash collision, as the cache sees it. */
static void other_profile(const char *path)
{
	char tmp[128];
	FMT(tmp, "%s/other", root);
	tu_mkdirs(tmp);
	struct lm_seccomp b = prepare_ok(PROFILE_B, tmp);
	char bpath[256];
	DIR *d = opendir(tmp);
	assert_non_null(d);
	char cdir[192];
	FMT(cdir, "%s/%s", tmp, LM_SECCOMP_CACHE_DIR);
	closedir(d);
	d = opendir(cdir);
	assert_non_null(d);
	struct dirent *de;
	bpath[0] = '\0';
	while ((de = readdir(d)))
		if (de->d_name[0] != '.')
			FMT(bpath, "%s/%s", cdir, de->d_name);
	closedir(d);
	assert_int_equal(rename(bpath, path), 0);
	tu_rm_tree(tmp, 0);
	lm_seccomp_free(&b);
}

static void world_writable(const char *path) { assert_int_equal(chmod(path, 0666), 0); }

static void test_cache_damaged(void **state)
{
	(void)state;
	damage_and_check(truncate_file);
	damage_and_check(empty_file);
	damage_and_check(flip_last_byte);
	damage_and_check(foreign_file);
	damage_and_check(other_profile);
	damage_and_check(world_writable);
}

static void test_cache_dir_not_ours(void **state)
{
	(void)state;
	tu_rm_tree(cache_dir, 0);
	tu_mkdirs(cache_dir);
	assert_int_equal(chmod(cache_dir, 0777), 0);
	struct lm_seccomp sc = prepare_ok(PROFILE_A, root);
	assert_false(sc.from_cache);
	lm_seccomp_free(&sc);
	/* nothing written there, nothing read from there */
	assert_int_equal(tu_count_entries(cache_dir), 0);
	sc = prepare_ok(PROFILE_A, root);
	assert_false(sc.from_cache);
	lm_seccomp_free(&sc);
	tu_rm_tree(cache_dir, 0);
}

static void test_prepare_rejects_bad(void **state)
{
	(void)state;
	struct lm_seccomp sc;
	struct lm_error err = {0};
	assert_true(lm_seccomp_prepare("{\"defaultAction\":\"SCMP_ACT_MAYBE\"}", root, &sc, &err) < 0);
	assert_contains(err.msg, "linux.seccomp.defaultAction: unknown action");
	assert_true(lm_seccomp_prepare("{not json", root, &sc, &err) < 0);
	assert_contains(err.msg, "linux.seccomp:");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_check_errors),
		cmocka_unit_test(test_spec_rejects_bad_section),
		cmocka_unit_test(test_check_accepts),
		cmocka_unit_test(test_actions),
		cmocka_unit_test(test_default_action_errno),
		cmocka_unit_test(test_operators),
		cmocka_unit_test(test_conditions_and_or),
		cmocka_unit_test(test_unknown_syscall_skipped),
		cmocka_unit_test(test_enosys_for_newer_syscalls),
		cmocka_unit_test(test_flags),
		cmocka_unit_test(test_load_late),
		cmocka_unit_test(test_default_profile),
		cmocka_unit_test(test_default_profile_caps),
		cmocka_unit_test(test_cache_hit_miss),
		cmocka_unit_test(test_cache_damaged),
		cmocka_unit_test(test_cache_dir_not_ours),
		cmocka_unit_test(test_prepare_rejects_bad),
	};
	return cmocka_run_group_tests(tests, cache_setup, cache_teardown);
}
