"""Bad input: a clear one-line error, a non-zero exit, and nothing left behind."""

import json
import os

import pytest

from conftest import (IS_LAMINA, OCI, cgroup_dirs_for, lamina_only, mounts_under,
                      one_line_error, run, state_entries)


def assert_clean_failure(ct, res, cid=None):
    """Non-zero, one-line error, and no state dir, cgroup or mount left."""
    err = one_line_error(res)
    cid = cid or ct.id
    assert not ct.has_state(cid), f"state left: {state_entries(ct.root)}"
    assert cgroup_dirs_for(ct.config_for(cid)["linux"]["cgroupsPath"]) == []
    assert mounts_under(ct.tmp) == []
    return err


# ---------------------------------------------------------------------------
# config.json

@pytest.mark.parametrize("text", ["{", "not json at all", "", "[]", '{"ociVersion": "1.0.2"',
                                  "null", '"string"'])
def test_malformed_config(ct, text):
    ct.write_config(text=text)
    res = ct.create(write_config=False)
    err = assert_clean_failure(ct, res)
    if IS_LAMINA:
        assert "config.json" in err, err


WRONG_TYPES = {
    "args-string": lambda c: c["process"].__setitem__("args", "/probe"),
    "root-string": lambda c: c.__setitem__("root", "rootfs"),
    "hostname-int": lambda c: c.__setitem__("hostname", 5),
    "uid-string": lambda c: c["process"]["user"].__setitem__("uid", "0"),
    "uid-negative": lambda c: c["process"]["user"].__setitem__("uid", -1),
    "namespaces-object": lambda c: c["linux"].__setitem__("namespaces", {"type": "pid"}),
    "mounts-object": lambda c: c.__setitem__("mounts", {}),
    "rlimit-soft-string": lambda c: c["process"]["rlimits"][0].__setitem__("soft", "1024"),
    "caps-string": lambda c: c["process"]["capabilities"].__setitem__("bounding", "CAP_KILL"),
    "memory-limit-string": lambda c: c["linux"]["resources"].__setitem__(
        "memory", {"limit": "64M"}),
    "env-object": lambda c: c["process"].__setitem__("env", {"A": "1"}),
    "terminal-string": lambda c: c["process"].__setitem__("terminal", "yes"),
}


@pytest.mark.parametrize("case", sorted(WRONG_TYPES))
def test_wrong_type(ct, case):
    WRONG_TYPES[case](ct.config)
    res = ct.create()
    assert_clean_failure(ct, res)


def test_missing_config(ct):
    res = ct.create(write_config=False)
    err = assert_clean_failure(ct, res)
    if IS_LAMINA:
        assert "config.json" in err


def test_missing_bundle(ct):
    res = ct.oci("create", "--bundle", ct.tmp / "no-such-bundle", ct.id)
    assert_clean_failure(ct, res)


def test_missing_rootfs(ct):
    ct.config["root"]["path"] = "no-such-rootfs"
    res = ct.create()
    err = assert_clean_failure(ct, res)
    if IS_LAMINA:
        assert "no-such-rootfs" in err or "rootfs" in err, err


def test_rootfs_is_a_file(ct):
    (ct.bundle / "rootfs-file").write_text("x")
    ct.config["root"]["path"] = "rootfs-file"
    assert_clean_failure(ct, ct.create())


def test_empty_args(ct):
    ct.process["args"] = []
    assert_clean_failure(ct, ct.run())


def test_missing_executable(ct):
    ct.set_args("/no/such/binary")
    res = ct.run()
    err = assert_clean_failure(ct, res)
    if IS_LAMINA:
        assert "/no/such/binary" in err, err


def test_relative_cwd(ct):
    ct.process["cwd"] = "tmp"
    assert_clean_failure(ct, ct.create())


def test_unknown_namespace_type(ct):
    ct.linux["namespaces"].append({"type": "nosuchns"})
    assert_clean_failure(ct, ct.create())


def test_unknown_rlimit(ct):
    ct.process["rlimits"].append({"type": "RLIMIT_NOSUCH", "soft": 1, "hard": 1})
    assert_clean_failure(ct, ct.run())


def test_rlimit_soft_above_hard(ct):
    ct.process["rlimits"] = [{"type": "RLIMIT_NOFILE", "soft": 2000, "hard": 1000}]
    assert_clean_failure(ct, ct.run())


@lamina_only("runc 1.1 warns about unknown capabilities and ignores them")
def test_unknown_capability(ct):
    ct.process["capabilities"]["bounding"].append("CAP_NO_SUCH_THING")
    err = assert_clean_failure(ct, ct.run())
    assert "CAP_NO_SUCH_THING" in err


def test_unknown_mount_type_cleans_up(ct):
    # Fails part-way through the mounts: earlier mounts, cgroup and state must go.
    ct.add_mount("/mnt/ok", "tmpfs", "tmpfs", ["size=1m"])
    ct.add_mount("/mnt/bad", "nosuchfs", "none")
    ct.resources()["memory"] = {"limit": 64 * 1024 * 1024}
    assert_clean_failure(ct, ct.run())


def test_invalid_sysctl_value_cleans_up(ct):
    ct.linux["sysctl"] = {"net.ipv4.ip_forward": "not-a-number"}
    assert_clean_failure(ct, ct.run())


# ---------------------------------------------------------------------------
# ids and lifecycle misuse

def test_duplicate_id(ct):
    ct.probe_args("sleep", "10")
    ct.create().check()
    pid = ct.state()["pid"]
    res = ct.create()
    err = one_line_error(res)
    if IS_LAMINA:
        assert ct.id in err or "exists" in err, err
    st = ct.state()
    assert st["status"] == "created" and st["pid"] == pid
    os.kill(pid, 0)


@pytest.mark.parametrize("bad_id", ["../escape", "a/b", "", ".", "..", "with space",
                                    "x" * 1024])
def test_invalid_id(ct, bad_id):
    ct.probe_args("exit", "0")
    ct.write_config()
    res = ct.oci("create", "--bundle", ct.bundle, bad_id)
    one_line_error(res)
    assert state_entries(ct.root) == []
    assert not (ct.tmp / "escape").exists()
    assert mounts_under(ct.tmp) == []


@pytest.mark.parametrize("sig", ["FOO", "SIGFOO", "999", "-1", "KILLX", "1.5"])
def test_unknown_signal(ct, sig):
    st = ct.start_sleeper(10)
    res = ct.kill(sig)
    err = one_line_error(res)
    if IS_LAMINA:
        assert sig in err or "signal" in err.lower(), err
    assert ct.status() == "running"
    os.kill(st["pid"], 0)


@pytest.mark.parametrize("cmd", [["state"], ["kill"], ["kill", "--all"], ["delete"],
                                 ["start"]])
def test_unknown_id(ct, cmd):
    cid = "lamina-test-no-such-id"
    res = ct.oci(*cmd, cid, *(["KILL"] if cmd[0] == "kill" else []))
    err = one_line_error(res)
    if IS_LAMINA:
        assert cid in err or "not exist" in err or "not found" in err, err
    assert state_entries(ct.root) == []


@pytest.mark.parametrize("args", [["no-such-command"], ["state", "--no-such-flag", "x"]])
def test_unknown_command_and_flag(ct, args):
    # Usage may follow, but the first line says what is wrong.
    res = ct.oci(*args)
    assert res.returncode != 0
    first = res.stderr.strip().splitlines()[0]
    if IS_LAMINA:
        assert args[-1 if args[0] == "no-such-command" else 1] in first, first


def test_delete_running_without_force_keeps_it(ct):
    st = ct.start_sleeper(10)
    one_line_error(ct.delete())
    assert ct.status() == "running"
    os.kill(st["pid"], 0)


def test_state_dir_unwritable_root(ct):
    # --root pointing at a file.
    bad_root = ct.tmp / "root-is-a-file"
    bad_root.write_text("")
    ct.write_config()
    res = run(list(OCI) + ["--root", bad_root, "create", "--bundle", ct.bundle, ct.id])
    one_line_error(res)
    assert cgroup_dirs_for(ct.linux["cgroupsPath"]) == []


# ---------------------------------------------------------------------------
# escaping the rootfs

def outside_dir(ct):
    d = ct.tmp / "outside"
    d.mkdir()
    (d / "host-marker").write_text("host\n")
    return d


def test_cwd_dotdot_escape_confined(ct):
    out = outside_dir(ct)
    ct.process["cwd"] = "/.." * (len(ct.rootfs.parts) + 2) + str(out)
    ct.probe_args("ls", ".")
    res = ct.run()
    assert "host-marker" not in res.stdout
    if res.returncode != 0:
        assert_clean_failure(ct, res)
    assert sorted(os.listdir(out)) == ["host-marker"]


@pytest.mark.parametrize("style", ["absolute", "relative"])
def test_cwd_symlink_escape_confined(ct, style):
    out = outside_dir(ct)
    target = str(out) if style == "absolute" else \
        "../" * (len(ct.rootfs.parts) + 2) + str(out).lstrip("/")
    os.symlink(target, ct.rootfs / "escape")
    ct.process["cwd"] = "/escape"
    ct.probe_args("ls", ".")
    res = ct.run()
    assert "host-marker" not in res.stdout
    if res.returncode != 0:
        assert_clean_failure(ct, res)
    assert sorted(os.listdir(out)) == ["host-marker"]


def test_mount_destination_escape_confined(ct):
    out = outside_dir(ct)
    os.symlink(str(out), ct.rootfs / "escape")
    ct.add_mount("/escape/host-marker", "bind", ct.rootfs / "probe", ["bind"])
    ct.add_mount("/.." * (len(ct.rootfs.parts) + 2) + str(out) + "/sub", "tmpfs", "tmpfs")
    res = ct.run()
    if res.returncode != 0:
        assert_clean_failure(ct, res)
    assert sorted(os.listdir(out)) == ["host-marker"]
    assert (out / "host-marker").read_text() == "host\n"
    assert mounts_under(out) == []


def test_device_path_outside_dev_confined(ct):
    out = outside_dir(ct)
    os.symlink(str(out), ct.rootfs / "escape")
    ct.config["root"]["readonly"] = False
    ct.linux["devices"] = [{"path": "/escape/evil-null", "type": "c", "major": 1, "minor": 3}]
    res = ct.run()
    if res.returncode != 0:
        assert_clean_failure(ct, res)
    assert sorted(os.listdir(out)) == ["host-marker"]


def test_config_not_modified_by_failure(ct):
    ct.config["root"]["path"] = "no-such-rootfs"
    ct.write_config()
    before = (ct.bundle / "config.json").read_text()
    ct.create(write_config=False)
    assert (ct.bundle / "config.json").read_text() == before
    json.loads(before)
