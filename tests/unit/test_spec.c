/* Unit tests for the OCI config parser (runtime/spec.c) and the name tables
 * (runtime/names.c).
 *
 * JSON in these tests is written with single quotes and converted before
 * parsing, so that the documents stay readable in C string literals.  Error
 * tests check that the message names the JSON path of the bad field: that is
 * the part of the contract users rely on.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "runtime/spec.h"
#include "testutil.h"

#ifndef MS_NOSYMFOLLOW
#define MS_NOSYMFOLLOW 256
#endif

#define BUNDLE "/run/bundle"

/* ' → " so that test JSON needs no escaping. */
static char *dq(const char *s)
{
	char *out = strdup(s);
	assert_non_null(out);
	for (char *c = out; *c; c++) {
		if (*c == '\'')
			*c = '"';
	}
	return out;
}

/* A minimal valid config with extra process fields and extra top-level fields. */
static char *make_config(const char *proc_extra, const char *top_extra)
{
	char *s = NULL;
	int n = asprintf(&s,
			 "{'ociVersion':'1.0.2','root':{'path':'rootfs'},"
			 "'process':{'args':['/bin/sh'],'cwd':'/'%s%s}%s%s}",
			 proc_extra ? "," : "", proc_extra ? proc_extra : "", top_extra ? "," : "",
			 top_extra ? top_extra : "");
	assert_true(n > 0);
	char *out = dq(s);
	free(s);
	return out;
}

static struct lm_spec *parse_ok(const char *json_sq)
{
	struct lm_error err = { 0 };
	struct lm_spec *spec = NULL;
	char *json = dq(json_sq);
	int r = lm_spec_parse(json, strlen(json), BUNDLE, &spec, &err);
	if (r < 0)
		fail_msg("unexpected error: %s", err.msg);
	free(json);
	assert_non_null(spec);
	return spec;
}

static struct lm_spec *parse_cfg_ok(const char *proc_extra, const char *top_extra)
{
	struct lm_error err = { 0 };
	struct lm_spec *spec = NULL;
	char *json = make_config(proc_extra, top_extra);
	int r = lm_spec_parse(json, strlen(json), BUNDLE, &spec, &err);
	if (r < 0)
		fail_msg("unexpected error: %s\nin %s", err.msg, json);
	free(json);
	assert_non_null(spec);
	return spec;
}

static void expect_error_json(const char *json, const char *needle)
{
	struct lm_error err = { 0 };
	struct lm_spec *spec = (struct lm_spec *)1;
	int r = lm_spec_parse(json, strlen(json), BUNDLE, &spec, &err);
	if (r >= 0)
		fail_msg("expected an error containing \"%s\" for %s", needle, json);
	assert_null(spec);
	assert_contains(err.msg, needle);
}

static void expect_error(const char *json_sq, const char *needle)
{
	char *json = dq(json_sq);
	expect_error_json(json, needle);
	free(json);
}

static void expect_cfg_error(const char *proc_extra, const char *top_extra, const char *needle)
{
	char *json = make_config(proc_extra, top_extra);
	expect_error_json(json, needle);
	free(json);
}

/* ---- a full config ---- */

static const char full_config[] =
	"{'ociVersion':'1.0.2-dev',"
	" 'root':{'path':'rootfs','readonly':true},"
	" 'hostname':'box','domainname':'example.org',"
	" 'process':{'terminal':true,'consoleSize':{'height':24,'width':80},"
	"   'user':{'uid':1000,'gid':1001,'umask':18,'additionalGids':[5,6,7],'username':''},"
	"   'args':['/bin/sh','-c','echo hi'],'env':['PATH=/bin','TERM=xterm'],'cwd':'/work',"
	"   'capabilities':{'bounding':['CAP_CHOWN','CAP_SYS_ADMIN'],'effective':['CAP_KILL'],"
	"     'inheritable':[],'permitted':['CAP_CHOWN','CAP_KILL'],'ambient':['CAP_NET_RAW']},"
	"   'rlimits':[{'type':'RLIMIT_NOFILE','soft':1024,'hard':4096},"
	"              {'type':'RLIMIT_CORE','soft':0,'hard':0}],"
	"   'noNewPrivileges':true,'oomScoreAdj':-500,"
	"   'apparmorProfile':'lamina-default','selinuxLabel':'system_u:system_r:svirt_lxc_net_t:s0',"
	"   'someFutureField':{'x':1}},"
	" 'mounts':[{'destination':'/proc','type':'proc','source':'proc'},"
	"   {'destination':'/dev','type':'tmpfs','source':'tmpfs',"
	"    'options':['nosuid','strictatime','mode=755','size=65536k']},"
	"   {'destination':'/data','type':'bind','source':'/srv/data','options':['rbind','ro','rprivate']}],"
	" 'hooks':{'prestart':[{'path':'/usr/bin/pre','args':['pre','x'],'env':['A=1'],'timeout':5}],"
	"   'createRuntime':[{'path':'/cr'}],'createContainer':[{'path':'/cc'}],"
	"   'startContainer':[{'path':'/sc'}],'poststart':[{'path':'/ps'}],"
	"   'poststop':[{'path':'/p1'},{'path':'/p2'}]},"
	" 'annotations':{'org.example.key':'value','b':''},"
	" 'linux':{"
	"   'namespaces':[{'type':'pid'},{'type':'network','path':'/var/run/netns/x'},{'type':'mount'},"
	"     {'type':'ipc'},{'type':'uts'},{'type':'user'},{'type':'cgroup'},{'type':'time'}],"
	"   'uidMappings':[{'containerID':0,'hostID':100000,'size':65536}],"
	"   'gidMappings':[{'containerID':0,'hostID':200000,'size':1000}],"
	"   'devices':[{'path':'/dev/fuse','type':'c','major':10,'minor':229,'fileMode':438,'uid':0,'gid':0},"
	"     {'path':'/dev/fifo','type':'p'}],"
	"   'cgroupsPath':'/lamina/test',"
	"   'resources':{'memory':{'limit':536870912,'reservation':-1,'swap':1073741824,"
	"       'swappiness':60,'disableOOMKiller':true,'kernel':123},"
	"     'cpu':{'shares':512,'quota':50000,'period':100000,'realtimeRuntime':950000,"
	"       'realtimePeriod':1000000,'cpus':'0-3,6','mems':'0'},"
	"     'pids':{'limit':100},'blockIO':{'weight':500},"
	"     'devices':[{'allow':false,'access':'rwm'},{'allow':true,'type':'c','major':1,'minor':3,'access':'rw'}],"
	"     'unified':{'memory.high':'1G','io.weight':'100'}},"
	"   'rootfsPropagation':'rslave',"
	"   'maskedPaths':['/proc/kcore','/proc/keys'],'readonlyPaths':['/proc/sys'],"
	"   'sysctl':{'net.ipv4.ip_forward':'1','kernel.shm_rmid_forced':'1'},"
	"   'mountLabel':'system_u:object_r:svirt_sandbox_file_t:s0',"
	"   'seccomp':{'defaultAction':'SCMP_ACT_ERRNO','syscalls':[{'names':['read'],'action':'SCMP_ACT_ALLOW'}]},"
	"   'personality':{'domain':'LINUX32','flags':[]}}}";

static void test_full_config(void **state)
{
	struct lm_spec *s = parse_ok(full_config);
	const struct lm_process *p = &s->process;

	assert_string_equal(s->oci_version, "1.0.2-dev");
	assert_string_equal(s->root_path, BUNDLE "/rootfs");
	assert_true(s->root_readonly);
	assert_string_equal(s->hostname, "box");
	assert_string_equal(s->domainname, "example.org");

	assert_true(p->terminal);
	assert_int_equal(p->console_height, 24);
	assert_int_equal(p->console_width, 80);
	assert_int_equal(p->uid, 1000);
	assert_int_equal(p->gid, 1001);
	assert_true(p->has_umask);
	assert_int_equal(p->umask, 022);
	assert_int_equal(p->n_additional_gids, 3);
	assert_int_equal(p->additional_gids[2], 7);
	assert_int_equal(p->n_args, 3);
	assert_string_equal(p->args[2], "echo hi");
	assert_null(p->args[3]);
	assert_int_equal(p->n_env, 2);
	assert_string_equal(p->env[1], "TERM=xterm");
	assert_null(p->env[2]);
	assert_string_equal(p->cwd, "/work");
	assert_true(p->has_caps);
	assert_true(p->caps.has_bounding && p->caps.has_effective && p->caps.has_inheritable &&
		    p->caps.has_permitted && p->caps.has_ambient);
	assert_int_equal(p->caps.bounding, (UINT64_C(1) << 0) | (UINT64_C(1) << 21));
	assert_int_equal(p->caps.effective, UINT64_C(1) << 5);
	assert_int_equal(p->caps.inheritable, 0);
	assert_int_equal(p->caps.permitted, (UINT64_C(1) << 0) | (UINT64_C(1) << 5));
	assert_int_equal(p->caps.ambient, UINT64_C(1) << 13);
	assert_int_equal(p->n_rlimits, 2);
	assert_int_equal(p->rlimits[0].resource, RLIMIT_NOFILE);
	assert_int_equal(p->rlimits[0].soft, 1024);
	assert_int_equal(p->rlimits[0].hard, 4096);
	assert_int_equal(p->rlimits[1].resource, RLIMIT_CORE);
	assert_true(p->no_new_privileges);
	assert_true(p->has_oom_score_adj);
	assert_int_equal(p->oom_score_adj, -500);
	assert_string_equal(p->apparmor_profile, "lamina-default");
	assert_string_equal(p->selinux_label, "system_u:system_r:svirt_lxc_net_t:s0");

	assert_int_equal(s->n_mounts, 3);
	assert_string_equal(s->mounts[0].destination, "/proc");
	assert_string_equal(s->mounts[0].type, "proc");
	assert_string_equal(s->mounts[0].source, "proc");
	assert_int_equal(s->mounts[0].flags, 0);
	assert_null(s->mounts[0].data);
	assert_int_equal(s->mounts[1].flags, MS_NOSUID | MS_STRICTATIME);
	assert_string_equal(s->mounts[1].data, "mode=755,size=65536k");
	assert_true(s->mounts[2].bind);
	assert_true(s->mounts[2].recursive);
	assert_int_equal(s->mounts[2].flags, MS_BIND | MS_REC | MS_RDONLY);
	assert_int_equal(s->mounts[2].propagation, MS_PRIVATE | MS_REC);

	assert_int_equal(s->hooks.n_prestart, 1);
	assert_string_equal(s->hooks.prestart[0].path, "/usr/bin/pre");
	assert_string_equal(s->hooks.prestart[0].args[1], "x");
	assert_null(s->hooks.prestart[0].args[2]);
	assert_string_equal(s->hooks.prestart[0].env[0], "A=1");
	assert_int_equal(s->hooks.prestart[0].timeout, 5);
	assert_int_equal(s->hooks.n_create_runtime, 1);
	assert_string_equal(s->hooks.create_runtime[0].path, "/cr");
	assert_null(s->hooks.create_runtime[0].args);
	assert_int_equal(s->hooks.create_runtime[0].timeout, 0);
	assert_string_equal(s->hooks.create_container[0].path, "/cc");
	assert_string_equal(s->hooks.start_container[0].path, "/sc");
	assert_string_equal(s->hooks.poststart[0].path, "/ps");
	assert_int_equal(s->hooks.n_poststop, 2);
	assert_string_equal(s->hooks.poststop[1].path, "/p2");

	assert_int_equal(s->n_annotations, 2);
	assert_string_equal(s->annotation_keys[0], "org.example.key");
	assert_string_equal(s->annotation_values[0], "value");
	assert_string_equal(s->annotation_values[1], "");

	assert_int_equal(s->n_namespaces, 8);
	assert_int_equal(s->namespaces[0].type, LM_NS_PID);
	assert_null(s->namespaces[0].path);
	assert_int_equal(s->namespaces[1].type, LM_NS_NET);
	assert_string_equal(s->namespaces[1].path, "/var/run/netns/x");
	assert_int_equal(s->namespaces[7].type, LM_NS_TIME);
	for (int t = 0; t < LM_NS__COUNT; t++)
		assert_non_null(lm_spec_namespace(s, (enum lm_ns_type)t));
	assert_string_equal(lm_spec_namespace(s, LM_NS_NET)->path, "/var/run/netns/x");

	assert_int_equal(s->n_uid_mappings, 1);
	assert_int_equal(s->uid_mappings[0].host_id, 100000);
	assert_int_equal(s->uid_mappings[0].size, 65536);
	assert_int_equal(s->n_gid_mappings, 1);
	assert_int_equal(s->gid_mappings[0].host_id, 200000);

	assert_int_equal(s->n_devices, 2);
	assert_string_equal(s->devices[0].path, "/dev/fuse");
	assert_int_equal(s->devices[0].type, 'c');
	assert_int_equal(s->devices[0].major, 10);
	assert_int_equal(s->devices[0].minor, 229);
	assert_true(s->devices[0].has_file_mode);
	assert_int_equal(s->devices[0].file_mode, 0666);
	assert_true(s->devices[0].has_uid && s->devices[0].has_gid);
	assert_int_equal(s->devices[1].type, 'p');
	assert_false(s->devices[1].has_file_mode);
	assert_int_equal(s->devices[1].file_mode, 0666);

	assert_string_equal(s->cgroups_path, "/lamina/test");
	assert_true(s->has_resources);
	const struct lm_resources *r = &s->resources;
	assert_true(r->has_mem_limit);
	assert_int_equal(r->mem_limit, 536870912);
	assert_true(r->has_mem_reservation);
	assert_int_equal(r->mem_reservation, -1);
	assert_int_equal(r->mem_swap, 1073741824);
	assert_true(r->has_mem_swappiness);
	assert_int_equal(r->mem_swappiness, 60);
	assert_true(r->disable_oom_killer);
	assert_int_equal(r->cpu_shares, 512);
	assert_int_equal(r->cpu_quota, 50000);
	assert_int_equal(r->cpu_period, 100000);
	assert_int_equal(r->cpu_rt_runtime, 950000);
	assert_int_equal(r->cpu_rt_period, 1000000);
	assert_true(r->has_cpu_shares && r->has_cpu_quota && r->has_cpu_period &&
		    r->has_cpu_rt_runtime && r->has_cpu_rt_period);
	assert_string_equal(r->cpuset_cpus, "0-3,6");
	assert_string_equal(r->cpuset_mems, "0");
	assert_true(r->has_pids_limit);
	assert_int_equal(r->pids_limit, 100);
	assert_true(r->has_blkio_weight);
	assert_int_equal(r->blkio_weight, 500);
	assert_int_equal(r->n_devices, 2);
	assert_false(r->devices[0].allow);
	assert_int_equal(r->devices[0].type, 'a');
	assert_int_equal(r->devices[0].major, -1);
	assert_int_equal(r->devices[0].minor, -1);
	assert_string_equal(r->devices[0].access, "rwm");
	assert_true(r->devices[1].allow);
	assert_int_equal(r->devices[1].type, 'c');
	assert_int_equal(r->devices[1].major, 1);
	assert_int_equal(r->devices[1].minor, 3);
	assert_string_equal(r->devices[1].access, "rw");
	assert_int_equal(r->n_unified, 2);
	assert_string_equal(r->unified[0].key, "memory.high");
	assert_string_equal(r->unified[0].value, "1G");

	assert_string_equal(s->rootfs_propagation, "rslave");
	assert_int_equal(s->rootfs_propagation_flags, MS_SLAVE | MS_REC);
	assert_int_equal(s->n_masked_paths, 2);
	assert_string_equal(s->masked_paths[1], "/proc/keys");
	assert_null(s->masked_paths[2]);
	assert_int_equal(s->n_readonly_paths, 1);
	assert_string_equal(s->readonly_paths[0], "/proc/sys");
	assert_int_equal(s->n_sysctls, 2);
	assert_string_equal(s->sysctls[0].key, "net.ipv4.ip_forward");
	assert_string_equal(s->sysctls[0].value, "1");
	assert_string_equal(s->mount_label, "system_u:object_r:svirt_sandbox_file_t:s0");
	assert_true(s->has_seccomp);
	assert_non_null(s->seccomp_json);
	json_error_t jerr;
	json_t *sec = json_loads(s->seccomp_json, 0, &jerr);
	assert_non_null(sec);
	assert_string_equal(json_string_value(json_object_get(sec, "defaultAction")), "SCMP_ACT_ERRNO");
	json_decref(sec);
	assert_string_equal(s->personality_domain, "LINUX32");

	lm_spec_free(s);
}

static void test_minimal_config_defaults(void **state)
{
	struct lm_spec *s = parse_cfg_ok(NULL, NULL);
	assert_string_equal(s->process.args[0], "/bin/sh");
	assert_int_equal(s->process.n_env, 0);
	assert_non_null(s->process.env);
	assert_null(s->process.env[0]);
	assert_false(s->process.has_caps);
	assert_false(s->process.has_umask);
	assert_false(s->process.has_oom_score_adj);
	assert_false(s->has_resources);
	assert_false(s->has_seccomp);
	assert_null(s->seccomp_json);
	assert_null(s->hostname);
	assert_null(s->cgroups_path);
	assert_int_equal(s->n_mounts, 0);
	assert_int_equal(s->n_namespaces, 0);
	assert_null(lm_spec_namespace(s, LM_NS_PID));
	lm_spec_free(s);
}

static void test_unknown_fields_and_nulls_tolerated(void **state)
{
	struct lm_spec *s = parse_cfg_ok(
		"'env':null,'rlimits':null,'capabilities':null,'user':{'uid':1,'gid':1,'additionalGids':null},"
		"'futureThing':[1,2,{'a':null}]",
		"'mounts':null,'linux':{'namespaces':null,'resources':{'memory':null,'rdma':{}},"
		"'intelRdt':{'closID':'x'}},'vm':{'kernel':{'path':'/k'}},'hooks':null");
	assert_int_equal(s->process.uid, 1);
	assert_int_equal(s->process.n_env, 0);
	assert_int_equal(s->n_mounts, 0);
	assert_true(s->has_resources);
	assert_false(s->resources.has_mem_limit);
	lm_spec_free(s);
}

static void test_root_path_resolution(void **state)
{
	static const struct {
		const char *in, *out;
	} cases[] = {
		{ "rootfs", BUNDLE "/rootfs" },
		{ "./rootfs/", BUNDLE "/rootfs" },
		{ "a//b/./c", BUNDLE "/a/b/c" },
		{ "../shared/rootfs", "/run/shared/rootfs" },
		{ "../../../..", "/" },
		{ "/abs//path/./x/../rootfs/", "/abs/path/rootfs" },
		{ "/", "/" },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char *json = NULL;
		assert_true(asprintf(&json,
				     "{'ociVersion':'1.0.0','root':{'path':'%s'},"
				     "'process':{'args':['x'],'cwd':'/'}}",
				     cases[i].in) > 0);
		struct lm_spec *s = parse_ok(json);
		assert_string_equal(s->root_path, cases[i].out);
		assert_false(s->root_readonly);
		lm_spec_free(s);
		free(json);
	}
}

static void test_relative_root_needs_bundle(void **state)
{
	struct lm_error err = { 0 };
	struct lm_spec *spec = NULL;
	char *json = make_config(NULL, NULL);
	assert_true(lm_spec_parse(json, strlen(json), NULL, &spec, &err) < 0);
	assert_null(spec);
	assert_contains(err.msg, "root.path");
	assert_true(lm_spec_parse(json, strlen(json), "relative/bundle", &spec, &err) < 0);
	assert_contains(err.msg, "root.path");
	free(json);
}

static void test_required_fields(void **state)
{
	expect_error("{'root':{'path':'r'},'process':{'args':['x'],'cwd':'/'}}", "ociVersion: is required");
	expect_error("{'ociVersion':1,'root':{'path':'r'},'process':{'args':['x'],'cwd':'/'}}",
		     "ociVersion: expected a string");
	expect_error("{'ociVersion':'1','process':{'args':['x'],'cwd':'/'}}", "root: is required");
	expect_error("{'ociVersion':'1','root':{},'process':{'args':['x'],'cwd':'/'}}",
		     "root.path: is required");
	expect_error("{'ociVersion':'1','root':{'path':''},'process':{'args':['x'],'cwd':'/'}}",
		     "root.path: must not be empty");
	expect_error("{'ociVersion':'1','root':{'path':'r','readonly':'yes'},'process':{'args':['x'],'cwd':'/'}}",
		     "root.readonly: expected a boolean");
	expect_error("{'ociVersion':'1','root':{'path':'r'}}", "process: is required");
	expect_error("{'ociVersion':'1','root':{'path':'r'},'process':[]}", "process: expected an object");
	expect_error("{'ociVersion':'1','root':{'path':'r'},'process':{'cwd':'/'}}", "process.args: is required");
	expect_error("{'ociVersion':'1','root':{'path':'r'},'process':{'args':[],'cwd':'/'}}",
		     "process.args: must not be empty");
	expect_error("{'ociVersion':'1','root':{'path':'r'},'process':{'args':[''],'cwd':'/'}}",
		     "process.args[0]: must not be empty");
	expect_error("{'ociVersion':'1','root':{'path':'r'},'process':{'args':['a',3],'cwd':'/'}}",
		     "process.args[1]: expected a string");
	expect_error("{'ociVersion':'1','root':{'path':'r'},'process':{'args':'sh','cwd':'/'}}",
		     "process.args: expected an array");
	expect_error("{'ociVersion':'1','root':{'path':'r'},'process':{'args':['x']}}", "process.cwd: is required");
	expect_error("{'ociVersion':'1','root':{'path':'r'},'process':{'args':['x'],'cwd':'work'}}",
		     "process.cwd: must be an absolute path");
}

static void test_malformed_json(void **state)
{
	expect_error_json("{\"ociVersion\": \"1.0\",\n  \"root\": {\"path\": \"r\"\n", "line 3");
	expect_error_json("{\"ociVersion\": \"1.0\",\n  \"root\": {\"path\": \"r\"\n", "invalid JSON");
	expect_error_json("{\"a\":1,}", "column");
	expect_error_json("", "invalid JSON");
	expect_error_json("{} trailing", "invalid JSON");
	expect_error_json("[1,2]", "expected a JSON object");
	/* jansson refuses integers beyond int64, and NULs inside strings. */
	expect_error_json("{\"ociVersion\":\"1\",\"x\":99999999999999999999}", "invalid JSON");
	expect_error_json("{\"ociVersion\":\"a\\u0000b\"}", "invalid JSON");

	struct lm_error err = { 0 };
	struct lm_spec *spec = NULL;
	assert_true(lm_spec_parse(NULL, 0, BUNDLE, &spec, &err) < 0);
	assert_null(spec);
}

static void test_user_ids(void **state)
{
	expect_cfg_error("'user':{'uid':-1,'gid':0}", NULL,
			 "process.user.uid: expected an unsigned 32-bit integer");
	expect_cfg_error("'user':{'uid':4294967296,'gid':0}", NULL,
			 "process.user.uid: expected an unsigned 32-bit integer");
	expect_cfg_error("'user':{'uid':1.0,'gid':0}", NULL,
			 "process.user.uid: expected an unsigned 32-bit integer");
	expect_cfg_error("'user':{'uid':0,'gid':'0'}", NULL,
			 "process.user.gid: expected an unsigned 32-bit integer");
	expect_cfg_error("'user':{'uid':0,'gid':0,'additionalGids':[1,-5]}", NULL,
			 "process.user.additionalGids[1]: expected an unsigned 32-bit integer");
	expect_cfg_error("'user':{'uid':0,'gid':0,'umask':512}", NULL, "process.user.umask");
	expect_cfg_error("'user':{'uid':0,'gid':0,'username':'root'}", NULL,
			 "process.user.username: is not supported on Linux");
	expect_cfg_error("'user':5", NULL, "process.user: expected an object");

	struct lm_spec *s = parse_cfg_ok("'user':{'uid':4294967295,'gid':0,'umask':0}", NULL);
	assert_int_equal(s->process.uid, UINT32_MAX);
	assert_true(s->process.has_umask);
	assert_int_equal(s->process.umask, 0);
	lm_spec_free(s);
}

static void test_process_scalars(void **state)
{
	expect_cfg_error("'terminal':1", NULL, "process.terminal: expected a boolean");
	expect_cfg_error("'noNewPrivileges':'true'", NULL, "process.noNewPrivileges: expected a boolean");
	expect_cfg_error("'oomScoreAdj':1001", NULL, "process.oomScoreAdj: expected an integer between -1000 and 1000");
	expect_cfg_error("'oomScoreAdj':-1001", NULL, "process.oomScoreAdj");
	expect_cfg_error("'consoleSize':{'height':70000,'width':1}", NULL,
			 "process.consoleSize.height: expected an unsigned 16-bit integer");
	expect_cfg_error("'apparmorProfile':[]", NULL, "process.apparmorProfile: expected a string");
	expect_cfg_error("'env':['PATH=/bin','NOEQUALS']", NULL, "process.env[1]: expected \"NAME=value\"");
	expect_cfg_error("'env':['=value']", NULL, "process.env[0]");

	struct lm_spec *s = parse_cfg_ok("'oomScoreAdj':1000,'env':['EMPTY=']", NULL);
	assert_int_equal(s->process.oom_score_adj, 1000);
	assert_string_equal(s->process.env[0], "EMPTY=");
	lm_spec_free(s);
	s = parse_cfg_ok("'oomScoreAdj':-1000", NULL);
	assert_int_equal(s->process.oom_score_adj, -1000);
	lm_spec_free(s);
}

static void test_capabilities(void **state)
{
	struct lm_spec *s = parse_cfg_ok(
		"'capabilities':{'bounding':['CAP_CHECKPOINT_RESTORE','CAP_BPF','CAP_CHOWN','CAP_CHOWN']}", NULL);
	assert_true(s->process.has_caps);
	assert_true(s->process.caps.has_bounding);
	assert_false(s->process.caps.has_effective);
	assert_int_equal(s->process.caps.bounding, (UINT64_C(1) << 40) | (UINT64_C(1) << 39) | 1);
	lm_spec_free(s);

	expect_cfg_error("'capabilities':{'effective':['CAP_CHOWN','CAP_FLY']}", NULL,
			 "process.capabilities.effective[1]: unknown capability \"CAP_FLY\"");
	expect_cfg_error("'capabilities':{'ambient':[21]}", NULL, "process.capabilities.ambient[0]");
	expect_cfg_error("'capabilities':{'permitted':'CAP_KILL'}", NULL,
			 "process.capabilities.permitted: expected an array");
}

static void test_rlimits(void **state)
{
	struct lm_spec *s = parse_cfg_ok(
		"'rlimits':[{'type':'RLIMIT_NPROC','soft':10,'hard':10},{'type':'RLIMIT_RTTIME','soft':1,'hard':2}]",
		NULL);
	assert_int_equal(s->process.n_rlimits, 2);
	assert_int_equal(s->process.rlimits[0].resource, RLIMIT_NPROC);
	assert_int_equal(s->process.rlimits[1].resource, RLIMIT_RTTIME);
	assert_int_equal(s->process.rlimits[1].hard, 2);
	lm_spec_free(s);

	expect_cfg_error("'rlimits':[{'type':'RLIMIT_NOFILE','soft':10,'hard':5}]", NULL,
			 "process.rlimits[0]: soft limit 10 is greater than hard limit 5");
	expect_cfg_error("'rlimits':[{'type':'RLIMIT_CORE','soft':0,'hard':0},"
			 "{'type':'RLIMIT_CORE','soft':0,'hard':0}]",
			 NULL, "process.rlimits[1].type: duplicate resource limit");
	expect_cfg_error("'rlimits':[{'type':'RLIMIT_BOGUS','soft':0,'hard':0}]", NULL,
			 "process.rlimits[0].type: unknown resource limit \"RLIMIT_BOGUS\"");
	expect_cfg_error("'rlimits':[{'soft':0,'hard':0}]", NULL, "process.rlimits[0].type: is required");
	expect_cfg_error("'rlimits':[{'type':'RLIMIT_CORE','soft':0}]", NULL, "process.rlimits[0].hard: is required");
	expect_cfg_error("'rlimits':[{'type':'RLIMIT_CORE','soft':-1,'hard':0}]", NULL,
			 "process.rlimits[0].soft: expected an unsigned integer");

	/* 2^64-1, as configs write "unlimited", is RLIM_INFINITY; nothing larger passes */
	s = parse_cfg_ok("'rlimits':[{'type':'RLIMIT_CORE','soft':18446744073709551615,'hard':18446744073709551615}],"
			 "'env':['X=18446744073709551615']", NULL);
	assert_true(s->process.rlimits[0].soft == UINT64_MAX);
	assert_true(s->process.rlimits[0].hard == UINT64_MAX);
	assert_string_equal(s->process.env[0], "X=18446744073709551615");
	lm_spec_free(s);
	expect_cfg_error("'rlimits':[{'type':'RLIMIT_CORE','soft':18446744073709551616,'hard':0}]", NULL,
			 "too big integer");
	expect_cfg_error("'oomScoreAdj':18446744073709551615", NULL, "process.oomScoreAdj: expected an integer");
}

static void test_block_io(void **state)
{
	struct lm_spec *s = parse_cfg_ok(NULL,
		"'linux':{'resources':{'blockIO':{'weight':500,"
		"'throttleReadBpsDevice':[{'major':8,'minor':0,'rate':1048576}],"
		"'throttleWriteIOPSDevice':[{'major':8,'minor':16,'rate':100}],"
		"'weightDevice':[{'major':8,'minor':0,'weight':300}]}}}");
	const struct lm_resources *r = &s->resources;
	assert_int_equal(r->blkio_weight, 500);
	assert_int_equal(r->n_throttle[LM_THROTTLE_READ_BPS], 1);
	assert_int_equal(r->throttle[LM_THROTTLE_READ_BPS][0].major, 8);
	assert_int_equal(r->throttle[LM_THROTTLE_READ_BPS][0].value, 1048576);
	assert_int_equal(r->n_throttle[LM_THROTTLE_WRITE_IOPS], 1);
	assert_int_equal(r->throttle[LM_THROTTLE_WRITE_IOPS][0].minor, 16);
	assert_int_equal(r->n_throttle[LM_THROTTLE_WRITE_BPS], 0);
	assert_int_equal(r->n_weight_devices, 1);
	assert_int_equal(r->weight_devices[0].value, 300);
	lm_spec_free(s);

	expect_cfg_error(NULL, "'linux':{'resources':{'blockIO':{'throttleReadBpsDevice':[{'major':8,'minor':0}]}}}",
			 "linux.resources.blockIO.throttleReadBpsDevice[0].rate: is required");
	expect_cfg_error(NULL, "'linux':{'resources':{'blockIO':{'throttleReadBpsDevice':[{'major':8,'minor':0,'rate':-5}]}}}",
			 "throttleReadBpsDevice[0].rate: expected a rate");
	expect_cfg_error(NULL, "'linux':{'resources':{'blockIO':{'weightDevice':[{'major':8,'minor':0,'weight':5}]}}}",
			 "weightDevice[0].weight: expected an integer between 10 and 1000");
	expect_cfg_error(NULL, "'linux':{'resources':{'blockIO':{'leafWeight':300}}}",
			 "blockIO.leafWeight: is not supported");
}

static void test_mount_option_flags(void **state)
{
	struct lm_spec *s = parse_cfg_ok(NULL,
		"'mounts':[{'destination':'/a','type':'tmpfs','source':'tmpfs','options':"
		"['ro','nosuid','nodev','noexec','sync','dirsync','remount','mand','noatime','nodiratime',"
		"'relatime','strictatime','nosymfollow']},"
		"{'destination':'/b','options':['rw','suid','dev','exec','async','nomand','atime','diratime',"
		"'norelatime','nostrictatime']}]");
	const struct lm_mount *a = &s->mounts[0], *b = &s->mounts[1];
	assert_int_equal(a->flags, MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC | MS_SYNCHRONOUS |
					   MS_DIRSYNC | MS_REMOUNT | MS_MANDLOCK | MS_NOATIME |
					   MS_NODIRATIME | MS_RELATIME | MS_STRICTATIME | MS_NOSYMFOLLOW);
	assert_int_equal(a->clear_flags, 0);
	assert_false(a->bind);
	assert_int_equal(a->propagation, 0);
	assert_null(a->data);
	assert_int_equal(b->flags, 0);
	assert_int_equal(b->clear_flags, MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC | MS_SYNCHRONOUS |
						 MS_MANDLOCK | MS_NOATIME | MS_NODIRATIME | MS_RELATIME |
						 MS_STRICTATIME);
	assert_null(b->type);
	assert_null(b->source);
	lm_spec_free(s);
}

static void test_mount_option_last_wins(void **state)
{
	struct lm_spec *s = parse_cfg_ok(NULL,
		"'mounts':[{'destination':'/a','options':['ro','rw','nosuid','suid','nosuid']}]");
	assert_int_equal(s->mounts[0].flags, MS_NOSUID);
	assert_int_equal(s->mounts[0].clear_flags, MS_RDONLY);
	lm_spec_free(s);
}

static void test_mount_bind_and_propagation(void **state)
{
	static const struct {
		const char *opt;
		unsigned long prop;
	} props[] = {
		{ "private", MS_PRIVATE },       { "rprivate", MS_PRIVATE | MS_REC },
		{ "shared", MS_SHARED },         { "rshared", MS_SHARED | MS_REC },
		{ "slave", MS_SLAVE },           { "rslave", MS_SLAVE | MS_REC },
		{ "unbindable", MS_UNBINDABLE }, { "runbindable", MS_UNBINDABLE | MS_REC },
	};
	for (size_t i = 0; i < sizeof(props) / sizeof(props[0]); i++) {
		char *top = NULL;
		assert_true(asprintf(&top, "'mounts':[{'destination':'/m','source':'/s','options':['bind','%s']}]",
				     props[i].opt) > 0);
		struct lm_spec *s = parse_cfg_ok(NULL, top);
		assert_true(s->mounts[0].bind);
		assert_false(s->mounts[0].recursive);
		assert_int_equal(s->mounts[0].flags, MS_BIND);
		assert_int_equal(s->mounts[0].propagation, props[i].prop);
		lm_spec_free(s);
		free(top);
	}

	struct lm_spec *s = parse_cfg_ok(NULL,
		"'mounts':[{'destination':'/m','source':'/s','options':['rbind','shared','private']}]");
	assert_true(s->mounts[0].bind);
	assert_true(s->mounts[0].recursive);
	assert_int_equal(s->mounts[0].flags, MS_BIND | MS_REC);
	assert_int_equal(s->mounts[0].propagation, MS_PRIVATE);
	lm_spec_free(s);
}

static void test_mount_data(void **state)
{
	struct lm_spec *s = parse_cfg_ok(NULL,
		"'mounts':[{'destination':'/dev/pts','type':'devpts','source':'devpts','options':"
		"['nosuid','noexec','newinstance','ptmxmode=0666','mode=0620','gid=5','','tmpcopyup']},"
		"{'destination':'/x','type':'tmpfs','options':['tmpcopyup','defaults']}]");
	assert_string_equal(s->mounts[0].data, "newinstance,ptmxmode=0666,mode=0620,gid=5");
	assert_int_equal(s->mounts[0].flags, MS_NOSUID | MS_NOEXEC);
	assert_null(s->mounts[1].data);
	assert_int_equal(s->mounts[1].flags, 0);
	lm_spec_free(s);
}

static void test_mount_errors(void **state)
{
	expect_cfg_error(NULL, "'mounts':[{'destination':'/ok'},{'destination':'relative'}]",
			 "mounts[1].destination: must be an absolute path");
	expect_cfg_error(NULL, "'mounts':[{'type':'tmpfs'}]", "mounts[0].destination: is required");
	expect_cfg_error(NULL, "'mounts':[{'destination':'/a'},{'destination':'/b'},{'destination':'/c','options':['idmap']}]",
			 "mounts[2]: option \"idmap\" is not supported");
	expect_cfg_error(NULL, "'mounts':[{'destination':'/a','options':['rbind','rro']}]",
			 "mounts[0]: option \"rro\" is not supported");
	expect_cfg_error(NULL, "'mounts':[{'destination':'/a','options':['copy-symlink']}]",
			 "option \"copy-symlink\" is not supported");
	expect_cfg_error(NULL, "'mounts':[{'destination':'/a','options':['ro',1]}]",
			 "mounts[0].options[1]: expected a string");
	expect_cfg_error(NULL, "'mounts':[{'destination':'/a','options':'ro'}]",
			 "mounts[0].options: expected an array");
	expect_cfg_error(NULL, "'mounts':[{'destination':'/a','type':5}]", "mounts[0].type: expected a string");
	expect_cfg_error(NULL, "'mounts':[{'destination':'/a','uidMappings':[{'containerID':0,'hostID':1,'size':1}]}]",
			 "mounts[0].uidMappings: idmapped mounts are not supported");
	expect_cfg_error(NULL, "'mounts':{}", "mounts: expected an array");
}

/* CVE-2019-16884: nothing but procfs at or inside /proc (runc's checkProcMount). */
static void test_mount_proc_rule(void **state)
{
	/* at /proc: a fresh proc, or a bind (its source is checked at mount time) */
	lm_spec_free(parse_cfg_ok(NULL, "'mounts':[{'destination':'/proc','type':'proc','source':'proc'}]"));
	lm_spec_free(parse_cfg_ok(NULL, "'mounts':[{'destination':'/proc/','type':'bind','source':'/proc',"
					"'options':['rbind']}]"));
	expect_cfg_error(NULL, "'mounts':[{'destination':'/a','type':'tmpfs'},{'destination':'/proc','type':'tmpfs','source':'tmpfs'}]",
			 "mounts[1]: tmpfs mount on /proc refused: only a proc filesystem may be mounted on /proc");
	expect_cfg_error(NULL, "'mounts':[{'destination':'//proc/.','type':'sysfs','source':'sysfs'}]",
			 "mounts[0]: sysfs mount on //proc/. refused");
	expect_cfg_error(NULL, "'mounts':[{'destination':'/tmp/../proc'}]", "untyped mount on /tmp/../proc refused");
	/* inside /proc: binds (from procfs, checked at mount time) and the lxcfs files */
	expect_cfg_error(NULL, "'mounts':[{'destination':'/proc/sys','type':'tmpfs','source':'tmpfs'}]",
			 "mounts[0]: tmpfs mount on /proc/sys refused: nothing may be mounted inside /proc");
	expect_cfg_error(NULL, "'mounts':[{'destination':'/proc/self/oom_score_adj','type':'proc','source':'proc'}]",
			 "refused");
	lm_spec_free(parse_cfg_ok(NULL, "'mounts':[{'destination':'/proc/sys','type':'bind','source':'/v',"
					"'options':['bind']}]"));
	lm_spec_free(parse_cfg_ok(NULL, "'mounts':[{'destination':'/proc/meminfo','type':'fuse','source':'lxcfs'},"
					"{'destination':'/proc/sys/kernel/ns_last_pid','type':'tmpfs'},"
					"{'destination':'/proc/./net/dev','type':'bind','source':'/x','options':['bind']}]"));
	/* only /proc itself, not look-alikes */
	lm_spec_free(parse_cfg_ok(NULL, "'mounts':[{'destination':'/procfs','type':'tmpfs'},"
					"{'destination':'/x/proc','type':'tmpfs'},{'destination':'/proc2/sys','type':'tmpfs'}]"));

	/* the rule itself, as mount time applies it once the source is known */
	struct lm_mount bind = { .bind = true, .recursive = true, .type = (char *)"bind" };
	struct lm_mount fresh = { .type = (char *)"proc" };
	struct lm_mount tmpfs = { .type = (char *)"tmpfs" };
	struct lm_mount bindproc = { .bind = true, .type = (char *)"proc" };
	assert_null(lm_spec_proc_mount_refusal("", &fresh, false));
	assert_null(lm_spec_proc_mount_refusal("", &bind, true));
	assert_non_null(lm_spec_proc_mount_refusal("", &bind, false));
	assert_non_null(lm_spec_proc_mount_refusal("", &bindproc, false));
	assert_non_null(lm_spec_proc_mount_refusal("", &tmpfs, true));
	assert_null(lm_spec_proc_mount_refusal("sys/net", &bind, true));
	assert_non_null(lm_spec_proc_mount_refusal("sys/net", &bind, false));
	assert_non_null(lm_spec_proc_mount_refusal("sys", &fresh, true));
	assert_non_null(lm_spec_proc_mount_refusal("sys", &tmpfs, false));
	assert_non_null(lm_spec_proc_mount_refusal("meminfo/x", &bind, false));
	static const char *const lxcfs[] = { "cpuinfo", "diskstats", "meminfo", "stat", "swaps", "uptime",
					     "loadavg", "slabinfo", "net/dev", "sys/kernel/ns_last_pid",
					     "sys/crypto/fips_enabled" };
	for (size_t i = 0; i < sizeof(lxcfs) / sizeof(lxcfs[0]); i++) {
		assert_null(lm_spec_proc_mount_refusal(lxcfs[i], &bind, false));
		assert_null(lm_spec_proc_mount_refusal(lxcfs[i], &tmpfs, false));
	}
}

/* Config strings in error messages: control characters escaped, one line. */
static void test_errors_escape_control_characters(void **state)
{
	struct lm_error err = { 0 };
	struct lm_spec *spec = NULL;
	char *json = make_config(NULL, "'linux':{'sysctl':{'net.ipv4.ip_forward\\nkernel.core_pattern':'1'}}");
	assert_true(lm_spec_parse(json, strlen(json), BUNDLE, &spec, &err) < 0);
	assert_string_equal(err.msg, "linux.sysctl[\"net.ipv4.ip_forward\\nkernel.core_pattern\"]: invalid name");
	free(json);
	json = make_config(NULL, "'mounts':[{'destination':'x\\u001b[2J\\r','type':'tmpfs'}]");
	assert_true(lm_spec_parse(json, strlen(json), BUNDLE, &spec, &err) < 0);
	assert_string_equal(err.msg, "mounts[0].destination: must be an absolute path, got \"x\\x1b[2J\\r\"");
	assert_null(strpbrk(err.msg, "\n\r\x1b"));
	free(json);
	expect_cfg_error(NULL, "'linux':{'sysctl':{'net.core.somaxconn\\t':'1'}}", "invalid name");
	expect_cfg_error(NULL, "'linux':{'sysctl':{'net.core somaxconn':'1'}}", "invalid name");
	expect_cfg_error("'cwd':'rel\\u007f'", NULL, "process.cwd: must be an absolute path, got \"rel\\x7f\"");
}

static void test_mount_relative_bind_source(void **state)
{
	struct lm_spec *s = parse_cfg_ok(NULL,
		"'mounts':[{'destination':'/a','source':'data/./x','options':['bind']},"
		"{'destination':'/b','type':'tmpfs','source':'tmpfs'}]");
	assert_string_equal(s->mounts[0].source, BUNDLE "/data/x");
	assert_string_equal(s->mounts[1].source, "tmpfs");
	lm_spec_free(s);
}

static void test_namespaces(void **state)
{
	expect_cfg_error(NULL, "'linux':{'namespaces':[{'type':'pid'},{'type':'mount'},{'type':'foo'}]}",
			 "linux.namespaces[2].type: unknown namespace type \"foo\"");
	expect_cfg_error(NULL, "'linux':{'namespaces':[{'type':'pid'},{'type':'pid'}]}",
			 "linux.namespaces[1].type: duplicate namespace type \"pid\"");
	expect_cfg_error(NULL, "'linux':{'namespaces':[{'path':'/proc/1/ns/net'}]}",
			 "linux.namespaces[0].type: is required");
	expect_cfg_error(NULL, "'linux':{'namespaces':[{'type':'network','path':'proc/1/ns/net'}]}",
			 "linux.namespaces[0].path: must be an absolute path");
	expect_cfg_error(NULL, "'linux':{'namespaces':['pid']}", "linux.namespaces[0]: expected an object");
	expect_cfg_error(NULL, "'linux':[]", "linux: expected an object");

	struct lm_spec *s = parse_cfg_ok(NULL, "'linux':{'namespaces':[{'type':'user'},{'type':'ipc','path':'/proc/9/ns/ipc'}]}");
	assert_non_null(lm_spec_namespace(s, LM_NS_USER));
	assert_null(lm_spec_namespace(s, LM_NS_USER)->path);
	assert_string_equal(lm_spec_namespace(s, LM_NS_IPC)->path, "/proc/9/ns/ipc");
	assert_null(lm_spec_namespace(s, LM_NS_PID));
	lm_spec_free(s);
}

static void test_id_mappings(void **state)
{
	expect_cfg_error(NULL, "'linux':{'uidMappings':[{'containerID':0,'hostID':1000,'size':0}]}",
			 "linux.uidMappings[0].size: must be greater than 0");
	expect_cfg_error(NULL, "'linux':{'gidMappings':[{'containerID':0,'size':10}]}",
			 "linux.gidMappings[0].hostID: is required");
	expect_cfg_error(NULL, "'linux':{'uidMappings':[{'containerID':0,'hostID':-1,'size':10}]}",
			 "linux.uidMappings[0].hostID: expected an unsigned 32-bit integer");
	expect_cfg_error(NULL, "'linux':{'uidMappings':[{'containerID':4294967295,'hostID':0,'size':2}]}",
			 "linux.uidMappings[0]: range overflows");
	/* 4294967295 is (uid_t)-1: a range may not reach it, on either side */
	expect_cfg_error(NULL, "'linux':{'uidMappings':[{'containerID':4294967290,'hostID':0,'size':6}]}",
			 "linux.uidMappings[0]: range overflows");
	expect_cfg_error(NULL, "'linux':{'gidMappings':[{'containerID':0,'hostID':4294967295,'size':1}]}",
			 "linux.gidMappings[0]: range overflows");
	struct lm_spec *s = parse_cfg_ok(NULL, "'linux':{'uidMappings':[{'containerID':4294967289,'hostID':0,'size':6}]}");
	assert_int_equal(s->uid_mappings[0].size, 6);
	lm_spec_free(s);
	/* the kernel refuses overlapping ranges, inside or outside */
	expect_cfg_error(NULL,
			 "'linux':{'uidMappings':[{'containerID':0,'hostID':1000,'size':100},"
			 "{'containerID':99,'hostID':5000,'size':1}]}",
			 "linux.uidMappings[1]: container ids overlap those of [0]");
	expect_cfg_error(NULL,
			 "'linux':{'gidMappings':[{'containerID':0,'hostID':1000,'size':100},"
			 "{'containerID':100,'hostID':500,'size':501}]}",
			 "linux.gidMappings[1]: host ids overlap those of [0]");
	s = parse_cfg_ok(NULL,
			 "'linux':{'uidMappings':[{'containerID':0,'hostID':1000,'size':100},"
			 "{'containerID':100,'hostID':900,'size':100}]}");
	assert_int_equal(s->n_uid_mappings, 2);
	lm_spec_free(s);
	/* at most 340 lines, in less than a page of text */
	char many[341 * 64 + 64], *w = many;
	w += sprintf(w, "'linux':{'uidMappings':[");
	for (int i = 0; i < 341; i++)
		w += sprintf(w, "%s{'containerID':%d,'hostID':%d,'size':1}", i ? "," : "", i, 100000 + i);
	strcpy(w, "]}");
	expect_cfg_error(NULL, many, "linux.uidMappings: 341 mappings: the kernel takes at most 340");
	w = many;
	w += sprintf(w, "'linux':{'gidMappings':[");
	for (int i = 0; i < 200; i++)
		w += sprintf(w, "%s{'containerID':%d,'hostID':%d,'size':1}", i ? "," : "", 1000000000 + i,
			     2000000000 + i);
	strcpy(w, "]}");
	expect_cfg_error(NULL, many, "linux.gidMappings: too long: the kernel takes at most 4095 bytes");
}

static void test_devices(void **state)
{
	expect_cfg_error(NULL, "'linux':{'devices':[{'path':'/dev/x','type':'x','major':1,'minor':1}]}",
			 "linux.devices[0].type: unknown device type \"x\"");
	expect_cfg_error(NULL, "'linux':{'devices':[{'path':'/dev/x','type':'c','minor':1}]}",
			 "linux.devices[0].major: is required for type \"c\"");
	expect_cfg_error(NULL, "'linux':{'devices':[{'path':'/dev/x','type':'b','major':1}]}",
			 "linux.devices[0].minor: is required");
	expect_cfg_error(NULL, "'linux':{'devices':[{'path':'dev/x','type':'c','major':1,'minor':1}]}",
			 "linux.devices[0].path: must be an absolute path");
	expect_cfg_error(NULL, "'linux':{'devices':[{'type':'c','major':1,'minor':1}]}",
			 "linux.devices[0].path: is required");
	expect_cfg_error(NULL, "'linux':{'devices':[{'path':'/dev/x','type':'c','major':-1,'minor':1}]}",
			 "linux.devices[0].major");
	expect_cfg_error(NULL, "'linux':{'devices':[{'path':'/dev/x','type':'u','major':1,'minor':1,'uid':-3}]}",
			 "linux.devices[0].uid: expected an unsigned 32-bit integer");

	/* type bits in fileMode (8630 = 020666) are dropped, permissions kept. */
	struct lm_spec *s = parse_cfg_ok(NULL,
		"'linux':{'devices':[{'path':'/dev/null','type':'u','major':1,'minor':3,'fileMode':8630}]}");
	assert_int_equal(s->devices[0].type, 'u');
	assert_int_equal(s->devices[0].file_mode, 0666);
	assert_false(s->devices[0].has_uid);
	lm_spec_free(s);
}

static void test_resources(void **state)
{
	struct lm_spec *s = parse_cfg_ok(NULL,
		"'linux':{'resources':{'memory':{'limit':-1,'swap':-1},'cpu':{'quota':-1,'cpus':''},'pids':{'limit':-1},"
		"'devices':[{'allow':true,'access':''}]}}");
	assert_int_equal(s->resources.mem_limit, -1);
	assert_true(s->resources.has_mem_limit);
	assert_false(s->resources.has_mem_reservation);
	assert_int_equal(s->resources.mem_swap, -1);
	assert_int_equal(s->resources.cpu_quota, -1);
	assert_null(s->resources.cpuset_cpus);
	assert_int_equal(s->resources.pids_limit, -1);
	assert_null(s->resources.devices[0].access);
	assert_int_equal(s->resources.devices[0].type, 'a');
	lm_spec_free(s);

	expect_cfg_error(NULL, "'linux':{'resources':{'memory':{'limit':-2}}}", "linux.resources.memory.limit");
	expect_cfg_error(NULL, "'linux':{'resources':{'memory':{'limit':1.5}}}", "linux.resources.memory.limit");
	expect_cfg_error(NULL, "'linux':{'resources':{'memory':{'swappiness':101}}}",
			 "linux.resources.memory.swappiness: expected an integer between 0 and 100");
	expect_cfg_error(NULL, "'linux':{'resources':{'memory':{'disableOOMKiller':0}}}",
			 "linux.resources.memory.disableOOMKiller: expected a boolean");
	expect_cfg_error(NULL, "'linux':{'resources':{'cpu':{'shares':-5}}}",
			 "linux.resources.cpu.shares: expected an unsigned integer");
	expect_cfg_error(NULL, "'linux':{'resources':{'cpu':{'cpus':'0-'}}}", "linux.resources.cpu.cpus: invalid list");
	expect_cfg_error(NULL, "'linux':{'resources':{'cpu':{'mems':'3-1'}}}", "linux.resources.cpu.mems: invalid list");
	expect_cfg_error(NULL, "'linux':{'resources':{'cpu':{'cpus':5}}}", "linux.resources.cpu.cpus: expected a string");
	expect_cfg_error(NULL, "'linux':{'resources':{'pids':{'limit':'max'}}}", "linux.resources.pids.limit");
	expect_cfg_error(NULL, "'linux':{'resources':{'blockIO':{'weight':5}}}",
			 "linux.resources.blockIO.weight: expected an integer between 10 and 1000");
	expect_cfg_error(NULL, "'linux':{'resources':{'devices':[{'allow':true},{'access':'r'}]}}",
			 "linux.resources.devices[1].allow: is required");
	expect_cfg_error(NULL, "'linux':{'resources':{'devices':[{'allow':true,'type':'p'}]}}",
			 "linux.resources.devices[0].type: unknown device type");
	expect_cfg_error(NULL, "'linux':{'resources':{'devices':[{'allow':true,'access':'rwx'}]}}",
			 "linux.resources.devices[0].access: invalid access \"rwx\"");
	expect_cfg_error(NULL, "'linux':{'resources':{'devices':[{'allow':true,'major':-2}]}}",
			 "linux.resources.devices[0].major");
	expect_cfg_error(NULL, "'linux':{'resources':{'unified':{'../../etc/x':'1'}}}",
			 "linux.resources.unified[\"../../etc/x\"]: invalid name");
	expect_cfg_error(NULL, "'linux':{'resources':{'unified':{'memory.max':1024}}}",
			 "linux.resources.unified[\"memory.max\"]: expected a string value");
}

static void test_cpu_lists(void **state)
{
	static const char *const good[] = { "0", "0-3", "0,2,4", "0-1,5-7,9", "1023" };
	static const char *const bad[] = { "a", "-1", "1,", ",1", "1--2", "1-2-3", "0 1", "1234567890" };
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		char *top = NULL;
		assert_true(asprintf(&top, "'linux':{'resources':{'cpu':{'cpus':'%s'}}}", good[i]) > 0);
		struct lm_spec *s = parse_cfg_ok(NULL, top);
		assert_string_equal(s->resources.cpuset_cpus, good[i]);
		lm_spec_free(s);
		free(top);
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char *top = NULL;
		assert_true(asprintf(&top, "'linux':{'resources':{'cpu':{'cpus':'%s'}}}", bad[i]) > 0);
		expect_cfg_error(NULL, top, "linux.resources.cpu.cpus");
		free(top);
	}
}

static void test_hooks(void **state)
{
	expect_cfg_error(NULL, "'hooks':{'prestart':[{'path':'hook'}]}",
			 "hooks.prestart[0].path: must be an absolute path");
	expect_cfg_error(NULL, "'hooks':{'poststop':[{'path':'/a'},{'args':['x']}]}",
			 "hooks.poststop[1].path: is required");
	expect_cfg_error(NULL, "'hooks':{'createRuntime':[{'path':'/a','timeout':0}]}",
			 "hooks.createRuntime[0].timeout: expected a positive integer");
	expect_cfg_error(NULL, "'hooks':{'createContainer':[{'path':'/a','timeout':-3}]}",
			 "hooks.createContainer[0].timeout");
	expect_cfg_error(NULL, "'hooks':{'startContainer':[{'path':'/a','env':[1]}]}",
			 "hooks.startContainer[0].env[0]: expected a string");
	expect_cfg_error(NULL, "'hooks':{'poststart':{}}", "hooks.poststart: expected an array");
	expect_cfg_error(NULL, "'hooks':[]", "hooks: expected an object");
}

static void test_annotations(void **state)
{
	expect_cfg_error(NULL, "'annotations':{'a':'x','b':1}", "annotations[\"b\"]: expected a string value");
	expect_cfg_error(NULL, "'annotations':['a']", "annotations: expected an object");
	struct lm_spec *s = parse_cfg_ok(NULL, "'annotations':{}");
	assert_int_equal(s->n_annotations, 0);
	assert_non_null(s->annotation_keys);
	assert_null(s->annotation_keys[0]);
	lm_spec_free(s);
}

static void test_linux_misc(void **state)
{
	expect_cfg_error(NULL, "'linux':{'sysctl':{'net.ipv4.ip_forward':1}}",
			 "linux.sysctl[\"net.ipv4.ip_forward\"]: expected a string value");
	expect_cfg_error(NULL, "'linux':{'sysctl':{'net/../../x':'1'}}", "linux.sysctl[\"net/../../x\"]: invalid name");
	expect_cfg_error(NULL, "'linux':{'maskedPaths':['/proc/kcore','proc/keys']}",
			 "linux.maskedPaths[1]: must be an absolute path");
	expect_cfg_error(NULL, "'linux':{'readonlyPaths':[1]}", "linux.readonlyPaths[0]: expected a string");
	expect_cfg_error(NULL, "'linux':{'rootfsPropagation':'sideways'}",
			 "linux.rootfsPropagation: unknown propagation \"sideways\"");
	expect_cfg_error(NULL, "'linux':{'cgroupsPath':7}", "linux.cgroupsPath: expected a string");
	expect_cfg_error(NULL, "'linux':{'seccomp':'default'}", "linux.seccomp: expected an object");
	expect_cfg_error(NULL, "'linux':{'personality':{'domain':'BSD'}}", "linux.personality.domain: unknown domain");
	expect_cfg_error(NULL, "'linux':{'mountLabel':false}", "linux.mountLabel: expected a string");
	expect_cfg_error(NULL,
			 "'hostname':'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa'",
			 "hostname: longer than 64 characters");
	expect_cfg_error(NULL, "'domainname':{}", "domainname: expected a string");

	static const struct {
		const char *name;
		unsigned long flags;
	} props[] = {
		{ "shared", MS_SHARED },      { "slave", MS_SLAVE },
		{ "private", MS_PRIVATE },    { "unbindable", MS_UNBINDABLE },
		{ "rshared", MS_SHARED | MS_REC }, { "rslave", MS_SLAVE | MS_REC },
		{ "rprivate", MS_PRIVATE | MS_REC }, { "runbindable", MS_UNBINDABLE | MS_REC },
	};
	for (size_t i = 0; i < sizeof(props) / sizeof(props[0]); i++) {
		char *top = NULL;
		assert_true(asprintf(&top, "'linux':{'rootfsPropagation':'%s'}", props[i].name) > 0);
		struct lm_spec *s = parse_cfg_ok(NULL, top);
		assert_string_equal(s->rootfs_propagation, props[i].name);
		assert_int_equal(s->rootfs_propagation_flags, props[i].flags);
		lm_spec_free(s);
		free(top);
	}

	struct lm_spec *s = parse_cfg_ok(NULL, "'linux':{'seccomp':{},'cgroupsPath':'','personality':{'domain':'LINUX'}}");
	/* an empty section is no filter, as with runc */
	assert_false(s->has_seccomp);
	assert_null(s->seccomp_json);
	assert_null(s->cgroups_path);
	assert_string_equal(s->personality_domain, "LINUX");
	lm_spec_free(s);
}

static void test_error_code_and_contract(void **state)
{
	struct lm_error err = { 0 };
	struct lm_spec *spec = NULL;
	char *json = make_config("'user':{'uid':-1}", NULL);
	int r = lm_spec_parse(json, strlen(json), BUNDLE, &spec, &err);
	assert_true(r < 0);
	assert_int_equal(r, -EINVAL);
	assert_int_equal(err.code, EINVAL);
	assert_string_equal(err.msg, "process.user.uid: expected an unsigned 32-bit integer");
	free(json);
}

/* ---- loading from a bundle directory ---- */

static char *make_bundle(void)
{
	char tmpl[] = "/tmp/lamina-test-spec-XXXXXX";
	char *dir = mkdtemp(tmpl);
	assert_non_null(dir);
	return strdup(dir);
}

static void write_file(const char *dir, const char *name, const char *text)
{
	char *path = NULL;
	assert_true(asprintf(&path, "%s/%s", dir, name) > 0);
	tu_put_file(path, text);
	free(path);
}

static void remove_bundle(char *dir)
{
	char *path = NULL;
	assert_true(asprintf(&path, "%s/config.json", dir) > 0);
	if (unlink(path) < 0)
		rmdir(path);
	free(path);
	assert_int_equal(rmdir(dir), 0);
	free(dir);
}

static void test_load(void **state)
{
	char *dir = make_bundle();
	struct lm_error err = { 0 };
	struct lm_spec *spec = NULL;

	assert_true(lm_spec_load(dir, &spec, &err) < 0);
	assert_null(spec);
	assert_string_equal(err.msg, "open config.json: No such file or directory");
	assert_int_equal(err.code, ENOENT);

	char *json = make_config(NULL, NULL);
	write_file(dir, "config.json", json);
	free(json);
	assert_int_equal(lm_spec_load(dir, &spec, &err), 0);
	char *want = NULL;
	assert_true(asprintf(&want, "%s/rootfs", dir) > 0);
	assert_string_equal(spec->root_path, want);
	free(want);
	lm_spec_free(spec);

	json = make_config("'user':{'uid':'root'}", NULL);
	write_file(dir, "config.json", json);
	free(json);
	assert_true(lm_spec_load(dir, &spec, &err) < 0);
	assert_null(spec);
	assert_string_equal(err.msg, "config.json: process.user.uid: expected an unsigned 32-bit integer");

	write_file(dir, "config.json", "{\n\"ociVersion\": \"1.0\",\n\"root\": ");
	assert_true(lm_spec_load(dir, &spec, &err) < 0);
	assert_contains(err.msg, "config.json: invalid JSON at line");

	assert_true(lm_spec_load("relative", &spec, &err) < 0);
	assert_contains(err.msg, "not absolute");
	remove_bundle(dir);
}

static void test_load_refuses_odd_files(void **state)
{
	char *dir = make_bundle();
	struct lm_error err = { 0 };
	struct lm_spec *spec = NULL;
	char *path = NULL;

	/* Oversize: a sparse file costs nothing on disk. */
	assert_true(asprintf(&path, "%s/config.json", dir) > 0);
	int fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, 17 * 1024 * 1024), 0);
	close(fd);
	assert_true(lm_spec_load(dir, &spec, &err) < 0);
	assert_int_equal(err.code, EFBIG);
	assert_contains(err.msg, "config.json");
	assert_int_equal(unlink(path), 0);

	/* A directory named config.json. */
	assert_int_equal(mkdir(path, 0700), 0);
	assert_true(lm_spec_load(dir, &spec, &err) < 0);
	assert_contains(err.msg, "config.json");
	assert_null(spec);
	free(path);
	remove_bundle(dir);
}

/* ---- process.json ---- */

static void test_process_parse(void **state)
{
	struct lm_error err = { 0 };
	struct lm_process proc;
	char *json = dq("{'terminal':false,'user':{'uid':5,'gid':6},'args':['/bin/ls','-l'],"
			"'env':['A=b'],'cwd':'/tmp','capabilities':{'bounding':['CAP_KILL']},"
			"'rlimits':[{'type':'RLIMIT_NOFILE','soft':5,'hard':6}],'noNewPrivileges':true}");
	assert_int_equal(lm_process_parse(json, strlen(json), &proc, &err), 0);
	free(json);
	assert_int_equal(proc.uid, 5);
	assert_int_equal(proc.gid, 6);
	assert_int_equal(proc.n_args, 2);
	assert_string_equal(proc.args[1], "-l");
	assert_string_equal(proc.cwd, "/tmp");
	assert_int_equal(proc.caps.bounding, UINT64_C(1) << 5);
	assert_int_equal(proc.n_rlimits, 1);
	assert_true(proc.no_new_privileges);
	lm_process_free(&proc);
	assert_null(proc.args);
	lm_process_free(&proc); /* harmless twice */
}

static void test_process_parse_errors(void **state)
{
	static const struct {
		const char *json, *msg;
	} cases[] = {
		{ "{'cwd':'/'}", "args: is required" },
		{ "{'args':['x'],'cwd':'rel'}", "cwd: must be an absolute path" },
		{ "{'args':['x'],'cwd':'/','user':{'uid':1e3}}", "user.uid: expected an unsigned 32-bit integer" },
		{ "{'args':['x'],'cwd':'/','rlimits':[{'type':'RLIMIT_AS','soft':2,'hard':1}]}", "rlimits[0]: soft limit" },
		{ "[]", "expected a JSON object" },
		{ "{'args':['x'],", "invalid JSON" },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct lm_error err = { 0 };
		struct lm_process proc;
		char *json = dq(cases[i].json);
		assert_true(lm_process_parse(json, strlen(json), &proc, &err) < 0);
		assert_contains(err.msg, cases[i].msg);
		/* paths in a process.json are relative to its own root */
		assert_null(strstr(err.msg, "process."));
		assert_null(proc.args);
		assert_null(proc.cwd);
		free(json);
	}
}

/* ---- name tables ---- */

static void test_signal_names(void **state)
{
	static const struct {
		const char *in;
		int sig;
	} good[] = {
		{ "KILL", SIGKILL }, { "SIGKILL", SIGKILL }, { "sigkill", SIGKILL }, { "term", SIGTERM },
		{ "9", 9 },          { "1", 1 },             { "64", 64 },           { "SIGHUP", SIGHUP },
		{ "USR1", SIGUSR1 }, { "SIGWINCH", SIGWINCH }, { "CHLD", SIGCHLD },  { "SIGSYS", SIGSYS },
		{ "PWR", SIGPWR },
	};
	static const char *const bad[] = { "", "0", "65", "-9", "+9", "9x", "SIG", "SIGFOO", "KILLS",
					   "RTMIN-1", "RTMAX+1", "RTMIN+", "RTMIN+99", "999999999999" };
	int sig;

	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		sig = -1;
		assert_int_equal(lm_signal_parse(good[i].in, &sig), 0);
		assert_int_equal(sig, good[i].sig);
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		if (lm_signal_parse(bad[i], &sig) == 0)
			fail_msg("\"%s\" parsed as %d", bad[i], sig);
	}
	assert_int_equal(lm_signal_parse(NULL, &sig), -1);

	assert_int_equal(lm_signal_parse("RTMIN", &sig), 0);
	assert_int_equal(sig, SIGRTMIN);
	assert_int_equal(lm_signal_parse("RTMIN+3", &sig), 0);
	assert_int_equal(sig, SIGRTMIN + 3);
	assert_int_equal(lm_signal_parse("SIGRTMAX-2", &sig), 0);
	assert_int_equal(sig, SIGRTMAX - 2);
	assert_int_equal(lm_signal_parse("sigrtmax", &sig), 0);
	assert_int_equal(sig, SIGRTMAX);
}

static void test_cap_names(void **state)
{
	assert_int_equal(lm_cap_from_name("CAP_CHOWN"), 0);
	assert_int_equal(lm_cap_from_name("CAP_SYS_ADMIN"), 21);
	assert_int_equal(lm_cap_from_name("cap_sys_admin"), 21);
	assert_int_equal(lm_cap_from_name("SYS_ADMIN"), 21);
	assert_int_equal(lm_cap_from_name("CAP_CHECKPOINT_RESTORE"), 40);
	assert_int_equal(lm_cap_from_name("CAP_PERFMON"), 38);
	assert_int_equal(lm_cap_from_name("CAP_NOPE"), -1);
	assert_int_equal(lm_cap_from_name("CAP_"), -1);
	assert_int_equal(lm_cap_from_name(""), -1);
	assert_int_equal(lm_cap_from_name(NULL), -1);
	assert_string_equal(lm_cap_name(21), "CAP_SYS_ADMIN");
	assert_null(lm_cap_name(41));
	assert_null(lm_cap_name(-1));
	for (int c = 0; c <= 40; c++) {
		assert_non_null(lm_cap_name(c));
		assert_int_equal(lm_cap_from_name(lm_cap_name(c)), c);
	}
}

static void test_rlimit_names(void **state)
{
	static const struct {
		const char *name;
		int res;
	} all[] = {
		{ "RLIMIT_CPU", RLIMIT_CPU },         { "RLIMIT_FSIZE", RLIMIT_FSIZE },
		{ "RLIMIT_DATA", RLIMIT_DATA },       { "RLIMIT_STACK", RLIMIT_STACK },
		{ "RLIMIT_CORE", RLIMIT_CORE },       { "RLIMIT_RSS", RLIMIT_RSS },
		{ "RLIMIT_NPROC", RLIMIT_NPROC },     { "RLIMIT_NOFILE", RLIMIT_NOFILE },
		{ "RLIMIT_MEMLOCK", RLIMIT_MEMLOCK }, { "RLIMIT_AS", RLIMIT_AS },
		{ "RLIMIT_LOCKS", RLIMIT_LOCKS },     { "RLIMIT_SIGPENDING", RLIMIT_SIGPENDING },
		{ "RLIMIT_MSGQUEUE", RLIMIT_MSGQUEUE }, { "RLIMIT_NICE", RLIMIT_NICE },
		{ "RLIMIT_RTPRIO", RLIMIT_RTPRIO },   { "RLIMIT_RTTIME", RLIMIT_RTTIME },
	};
	for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++)
		assert_int_equal(lm_rlimit_from_name(all[i].name), all[i].res);
	assert_int_equal(lm_rlimit_from_name("nofile"), RLIMIT_NOFILE);
	assert_int_equal(lm_rlimit_from_name("RLIMIT_NOPE"), -1);
	assert_int_equal(lm_rlimit_from_name("RLIMIT_"), -1);
	assert_int_equal(lm_rlimit_from_name(NULL), -1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_full_config),
		cmocka_unit_test(test_minimal_config_defaults),
		cmocka_unit_test(test_unknown_fields_and_nulls_tolerated),
		cmocka_unit_test(test_root_path_resolution),
		cmocka_unit_test(test_relative_root_needs_bundle),
		cmocka_unit_test(test_required_fields),
		cmocka_unit_test(test_malformed_json),
		cmocka_unit_test(test_user_ids),
		cmocka_unit_test(test_process_scalars),
		cmocka_unit_test(test_capabilities),
		cmocka_unit_test(test_rlimits),
		cmocka_unit_test(test_block_io),
		cmocka_unit_test(test_mount_option_flags),
		cmocka_unit_test(test_mount_option_last_wins),
		cmocka_unit_test(test_mount_bind_and_propagation),
		cmocka_unit_test(test_mount_data),
		cmocka_unit_test(test_mount_errors),
		cmocka_unit_test(test_mount_relative_bind_source),
		cmocka_unit_test(test_mount_proc_rule),
		cmocka_unit_test(test_errors_escape_control_characters),
		cmocka_unit_test(test_namespaces),
		cmocka_unit_test(test_id_mappings),
		cmocka_unit_test(test_devices),
		cmocka_unit_test(test_resources),
		cmocka_unit_test(test_cpu_lists),
		cmocka_unit_test(test_hooks),
		cmocka_unit_test(test_annotations),
		cmocka_unit_test(test_linux_misc),
		cmocka_unit_test(test_error_code_and_contract),
		cmocka_unit_test(test_load),
		cmocka_unit_test(test_load_refuses_odd_files),
		cmocka_unit_test(test_process_parse),
		cmocka_unit_test(test_process_parse_errors),
		cmocka_unit_test(test_signal_names),
		cmocka_unit_test(test_cap_names),
		cmocka_unit_test(test_rlimit_names),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
