"""exec: a new process inside a running container."""

import json
import os

import pytest

from conftest import IS_LAMINA, assert_rlimit, one_line_error


def host_ns(pid, name):
    return os.readlink(f"/proc/{pid}/ns/{name}")


def test_exec_joins_container(ct):
    ct.config["hostname"] = "exec-host"
    st = ct.start_sleeper(10)
    init = st["pid"]
    out = ct.exec("/probe").check().json()
    assert out["hostname"] == "exec-host"
    for name in ("pid", "net", "ipc", "uts", "mnt", "cgroup"):
        assert out["ns"][name] == host_ns(init, name), name
    assert out["pid"] != 1
    assert out["ppid"] == 0  # its parent is outside the pid namespace
    # Same cgroup as init, seen from inside (with the cgroup namespace: "/").
    init_view = ct.exec("/probe", "cat", "/proc/1/cgroup").check().stdout.splitlines()
    assert out["cgroup"] == init_view


def test_exec_sees_container_rootfs_and_mounts(ct):
    (ct.rootfs / "marker").write_text("in-rootfs")
    ct.start_sleeper(10)
    assert ct.exec("/probe", "cat", "/marker").check().stdout == "in-rootfs"
    out = ct.exec("/probe").check().json()
    assert [m for m in out["mounts"] if m["mount_point"] == "/proc"]


def test_exec_process_defaults_from_config(ct):
    ct.process["env"] = ["PATH=/bin", "FROM_CONFIG=1"]
    ct.start_sleeper(10)
    out = ct.exec("/probe").check().json()
    assert "FROM_CONFIG=1" in out["env"]
    assert out["no_new_privs"] == 1
    assert int(out["caps"]["CapEff"], 16) == int("20000420", 16)
    assert out["rlimits"]["RLIMIT_NOFILE"] == {"soft": 1024, "hard": 1024}


def test_exec_args_env_cwd_user(ct):
    ct.start_sleeper(10)
    res = ct.exec("--env", "FOO=bar", "--env", "PATH=/bin:/usr/bin", "--cwd", "/tmp",
                  "--user", "1000:1000", "--", "/probe", "report", "a b", "")
    out = res.check().json()
    assert out["argv"] == ["/probe", "report", "a b", ""]
    assert "FOO=bar" in out["env"]
    assert "PATH=/bin:/usr/bin" in out["env"]
    assert [e for e in out["env"] if e.startswith("PATH=")] == ["PATH=/bin:/usr/bin"]
    assert out["cwd"] == "/tmp"
    assert (out["uid"], out["gid"]) == (1000, 1000)


def test_exec_user_uid_only(ct):
    ct.start_sleeper(10)
    out = ct.exec("--user", "1000", "--", "/probe").check().json()
    assert out["uid"] == 1000
    assert out["gid"] == 0


def test_exec_process_json(ct):
    ct.start_sleeper(10)
    proc = {
        "terminal": False,
        "user": {"uid": 1000, "gid": 1000, "additionalGids": [29]},
        "args": ["/probe", "report", "from-json"],
        "env": ["PATH=/bin", "ONLY=json"],
        "cwd": "/home/test",
        "capabilities": {"bounding": ["CAP_KILL"], "effective": [], "permitted": []},
        "noNewPrivileges": True,
        "rlimits": [{"type": "RLIMIT_NOFILE", "soft": 77, "hard": 88}],
    }
    pf = ct.tmp / "process.json"
    pf.write_text(json.dumps(proc))
    out = ct.exec("--process", pf, "--").check().json()
    assert out["argv"] == ["/probe", "report", "from-json"]
    assert "ONLY=json" in out["env"]
    assert out["cwd"] == "/home/test"
    assert (out["uid"], out["gid"]) == (1000, 1000)
    assert 29 in out["groups"]
    assert int(out["caps"]["CapBnd"], 16) == 1 << 5
    assert_rlimit(out["rlimits"], "RLIMIT_NOFILE", 77, 88)


@pytest.mark.parametrize("code", [0, 1, 7, 200])
def test_exec_exit_code(ct, code):
    ct.start_sleeper(10)
    res = ct.exec("/probe", "exit", code)
    assert res.returncode == code, res


def test_exec_killed_by_signal(ct):
    ct.start_sleeper(10)
    res = ct.exec("/probe", "kill-self", "9")
    assert res.returncode == 137, res


def test_exec_stdio(ct):
    ct.start_sleeper(10)
    res = ct.exec("/bin/sh", "-c", "read x; echo out:$x; echo err >&2", input="in\n")
    assert res.check().stdout == "out:in\n"
    assert "err" in res.stderr


def test_exec_detach_pid_file(ct):
    st = ct.start_sleeper(10)
    pidfile = ct.tmp / "exec.pid"
    ct.exec("--detach", "--pid-file", pidfile, "--", "/probe", "sleep", "10").check()
    pid = int(pidfile.read_text().strip())
    assert pid != st["pid"]
    os.kill(pid, 0)
    assert host_ns(pid, "pid") == host_ns(st["pid"], "pid")
    with open(f"/proc/{pid}/cgroup") as a, open(f"/proc/{st['pid']}/cgroup") as b:
        assert a.read() == b.read()
    # The container's own init is unaffected.
    assert ct.status() == "running"


def test_exec_does_not_stop_container(ct):
    ct.start_sleeper(10)
    ct.exec("/probe", "exit", "3")
    assert ct.status() == "running"


def test_exec_stopped_container_fails(ct):
    ct.probe_args("exit", "0")
    ct.create().check()
    ct.start().check()
    ct.wait_status("stopped")
    res = ct.exec("/probe")
    err = one_line_error(res)
    assert "{" not in res.stdout
    if IS_LAMINA:
        assert "stopped" in err or "not running" in err, err


def test_exec_unknown_container_fails(ct):
    res = ct.exec("/probe", cid="lamina-test-no-such-container")
    err = one_line_error(res)
    if IS_LAMINA:
        assert "lamina-test-no-such-container" in err or "not exist" in err or \
            "not found" in err, err


def test_exec_missing_binary_fails(ct):
    ct.start_sleeper(10)
    res = ct.exec("/no/such/binary")
    assert res.returncode != 0
    assert res.stderr.strip()
    assert ct.status() == "running"


def test_exec_bad_cwd_fails(ct):
    ct.start_sleeper(10)
    res = ct.exec("--cwd", "/no/such/dir", "--", "/probe")
    assert res.returncode != 0
    assert ct.status() == "running"
