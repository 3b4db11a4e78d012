/* Unit tests for the create request (agent/run_spec.c): what the agent and
 * standalone `lamina run` accept, and the error each bad request gets
 * (naming the field), plus sizes and restart policies. */
#include "testutil.h"

#include <jansson.h>
#include <stdlib.h>

#include "agent/run_spec.h"

static json_t *req(const char *text)
{
	json_error_t e;
	json_t *j = json_loads(text, 0, &e);
	if (!j)
		fail_msg("bad test JSON %s: %s", text, e.text);
	return j;
}

static void expect_error(const char *text, const char *needle)
{
	json_t *j = req(text);
	struct lm_run_spec s;
	struct lm_error err = {0};
	int rc = lm_run_spec_parse(j, &s, &err);
	json_decref(j);
	if (rc == 0) {
		lm_run_spec_free(&s);
		fail_msg("accepted: %s", text);
	}
	assert_contains(err.msg, needle);
}

static void test_full_request(void **state)
{
	json_t *j = req("{\"name\":\"web\",\"image\":\"busybox\",\"cmd\":[\"sh\",\"-c\",\"x\"],"
			"\"entrypoint\":[],\"env\":[\"A=1\",\"B=\"],\"workdir\":\"/srv\",\"user\":\"1:2\","
			"\"hostname\":\"h\",\"mounts\":[{\"type\":\"bind\",\"source\":\"/tmp\",\"target\":\"/t\","
			"\"readonly\":true},{\"type\":\"tmpfs\",\"target\":\"/run\"}],\"memory\":\"64Mi\","
			"\"cpus\":0.5,\"pids_limit\":10,\"read_only\":true,\"cap_add\":[\"NET_ADMIN\"],"
			"\"cap_drop\":[\"ALL\"],\"network\":\"host\",\"restart\":\"on-failure:3\","
			"\"stop_signal\":\"SIGUSR1\",\"stop_timeout\":7}");
	struct lm_run_spec s;
	struct lm_error err = {0};
	assert_ok(lm_run_spec_parse(j, &s, &err), err);
	json_decref(j); /* the spec holds its own reference */
	assert_string_equal(s.name, "web");
	assert_string_equal(s.image, "busybox");
	assert_string_equal(s.opts.cmd[2], "x");
	assert_null(s.opts.cmd[3]);
	assert_true(s.opts.entrypoint_set);
	assert_null(s.opts.entrypoint);
	assert_string_equal(s.opts.env[1], "B=");
	assert_int_equal(s.opts.n_mounts, 2);
	assert_true(s.opts.mounts[0].readonly);
	assert_int_equal(s.opts.mounts[1].type, LM_RUN_MOUNT_TMPFS);
	assert_int_equal(s.opts.memory, 64 << 20);
	assert_true(s.opts.cpus == 0.5);
	assert_int_equal(s.opts.pids_limit, 10);
	assert_int_equal(s.opts.network, LM_RUN_NET_HOST);
	assert_int_equal(s.restart, LM_RESTART_ON_FAILURE);
	assert_int_equal(s.restart_max, 3);
	assert_int_equal(s.stop_signal, 10);
	assert_int_equal(s.stop_timeout, 7);
	lm_run_spec_free(&s);
}

static void test_defaults(void **state)
{
	json_t *j = req("{\"image\":\"x\"}");
	struct lm_run_spec s;
	struct lm_error err = {0};
	assert_ok(lm_run_spec_parse(j, &s, &err), err);
	json_decref(j);
	assert_null(s.name);
	assert_null(s.opts.cmd);
	assert_false(s.opts.entrypoint_set);
	assert_int_equal(s.restart, LM_RESTART_NO);
	assert_int_equal(s.stop_timeout, -1);
	assert_int_equal(s.opts.network, LM_RUN_NET_NONE);
	assert_false(s.tty);
	assert_false(s.opts.tty);
	lm_run_spec_free(&s);
}

static void test_bad_requests(void **state)
{
	expect_error("[]", "JSON object");
	expect_error("{}", "image: required");
	expect_error("{\"image\":\"\"}", "image: required");
	expect_error("{\"image\":\"x\",\"colour\":1}", "unknown field \"colour\"");
	expect_error("{\"image\":7}", "image: expected a string");
	expect_error("{\"image\":\"x\",\"cmd\":\"ls\"}", "cmd: expected an array");
	expect_error("{\"image\":\"x\",\"cmd\":[1]}", "cmd[0]");
	expect_error("{\"image\":\"x\",\"env\":[\"NOEQUALS\"]}", "NAME=value");
	expect_error("{\"image\":\"x\",\"env\":[\"=v\"]}", "NAME=value");
	expect_error("{\"image\":\"x\",\"name\":\"../x\"}", "name");
	expect_error("{\"image\":\"x\",\"name\":\"a/b\"}", "name");
	expect_error("{\"image\":\"x\",\"workdir\":\"rel\"}", "absolute");
	expect_error("{\"image\":\"x\",\"memory\":\"lots\"}", "memory");
	expect_error("{\"image\":\"x\",\"memory\":\"-5m\"}", "memory");
	expect_error("{\"image\":\"x\",\"memory\":0}", "memory");
	expect_error("{\"image\":\"x\",\"cpus\":0}", "cpus");
	expect_error("{\"image\":\"x\",\"cpus\":\"1\"}", "cpus");
	expect_error("{\"image\":\"x\",\"pids_limit\":-1}", "pids_limit");
	expect_error("{\"image\":\"x\",\"network\":\"bridge\"}", "network");
	expect_error("{\"image\":\"x\",\"restart\":\"sometimes\"}", "restart policy");
	expect_error("{\"image\":\"x\",\"restart\":\"on-failure:x\"}", "restart policy");
	expect_error("{\"image\":\"x\",\"stop_signal\":\"SIGNOPE\"}", "stop_signal");
	expect_error("{\"image\":\"x\",\"stop_timeout\":-2}", "stop_timeout");
	expect_error("{\"image\":\"x\",\"mounts\":[{\"type\":\"bind\",\"source\":\"rel\",\"target\":\"/t\"}]}",
		     "source");
	expect_error("{\"image\":\"x\",\"mounts\":[{\"type\":\"nfs\",\"target\":\"/t\"}]}", "bind or tmpfs");
	expect_error("{\"image\":\"x\",\"mounts\":[{\"type\":\"tmpfs\",\"target\":\"/t\",\"extra\":1}]}",
		     "unknown field \"extra\"");
	expect_error("{\"image\":\"x\",\"auto_remove\":true,\"restart\":\"always\"}", "conflict");
	expect_error("{\"image\":\"x\",\"read_only\":\"yes\"}", "read_only");
	expect_error("{\"image\":\"x\",\"tty\":true,\"tty_size\":{\"rows\":0,\"cols\":80}}", "tty_size");
	expect_error("{\"image\":\"x\",\"tty\":true,\"tty_size\":{\"rows\":24}}", "tty_size");
	expect_error("{\"image\":\"x\",\"tty_size\":[24,80]}", "tty_size");
}

static void test_sizes_and_policies(void **state)
{
	int64_t v;
	assert_int_equal(lm_parse_size("64m", &v), 0);
	assert_int_equal(v, 64 << 20);
	assert_int_equal(lm_parse_size("1Gi", &v), 0);
	assert_int_equal(v, 1 << 30);
	assert_int_equal(lm_parse_size("512", &v), 0);
	assert_int_equal(v, 512);
	assert_int_equal(lm_parse_size("1.5k", &v), 0);
	assert_int_equal(v, 1536);
	assert_int_equal(lm_parse_size("0", &v), -1);
	assert_int_equal(lm_parse_size("1x", &v), -1);
	assert_int_equal(lm_parse_size("nan", &v), -1);
	assert_int_equal(lm_parse_size("1e300", &v), -1);
	enum lm_restart_kind k;
	int max;
	struct lm_error err = {0};
	assert_int_equal(lm_restart_parse("unless_stopped", &k, &max, &err), 0);
	assert_int_equal(k, LM_RESTART_UNLESS_STOPPED);
	assert_int_equal(lm_restart_parse("on-failure:0", &k, &max, &err), 0);
	assert_int_equal(max, 0);
	assert_true(lm_restart_parse("on-failure:-1", &k, &max, &err) < 0);
	assert_true(lm_restart_parse("on-failure:", &k, &max, &err) < 0);
	assert_string_equal(lm_restart_name(LM_RESTART_ALWAYS), "always");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_full_request),
		cmocka_unit_test(test_defaults),
		cmocka_unit_test(test_bad_requests),
		cmocka_unit_test(test_sizes_and_policies),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
