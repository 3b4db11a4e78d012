"""cgroups (v1, v2, hybrid) with cgroupsPath: limits applied, enforced, removed."""

import os

import pytest

from conftest import (CGROUP_MODE, CGROUP_V1, IS_LAMINA, cgroup_dirs_for, host_cgroup_dir,
                      lamina_only, wait_for)

MiB = 1024 * 1024


def cg_file(ct, v1_controller, v1_name, v2_name):
    path = ct.linux["cgroupsPath"]
    if CGROUP_V1:
        return host_cgroup_dir(v1_controller, path) / v1_name
    return host_cgroup_dir("", path) / v2_name


def cg_read(ct, v1_controller, v1_name, v2_name):
    return cg_file(ct, v1_controller, v1_name, v2_name).read_text().strip()


def require_v1_controller(name):
    if CGROUP_V1 and not os.path.isdir(f"/sys/fs/cgroup/{name}"):
        pytest.skip(f"no v1 {name} controller here")


def test_container_in_its_cgroup(ct):
    st = ct.start_sleeper(10)
    with open(f"/proc/{st['pid']}/cgroup") as f:
        lines = f.read().splitlines()
    want = ct.linux["cgroupsPath"]
    if CGROUP_V1:
        mem = [ln for ln in lines if ln.split(":")[1].split(",").count("memory")]
        assert mem and mem[0].split(":", 2)[2] == want, lines
    else:
        assert f"0::{want}" in lines


def test_memory_limits(ct):
    ct.resources()["memory"] = {"limit": 64 * MiB, "reservation": 32 * MiB,
                                "swap": 96 * MiB}
    ct.start_sleeper(10)
    assert int(cg_read(ct, "memory", "memory.limit_in_bytes", "memory.max")) == 64 * MiB
    assert int(cg_read(ct, "memory", "memory.soft_limit_in_bytes", "memory.low")) == 32 * MiB
    if CGROUP_V1:
        f = cg_file(ct, "memory", "memory.memsw.limit_in_bytes", "")
        if f.exists():
            assert int(f.read_text()) == 96 * MiB
    else:
        # OCI swap is memory+swap; v2 swap.max is the swap part alone.
        assert int(cg_read(ct, "", "", "memory.swap.max")) == 32 * MiB


def test_memory_limit_seen_inside(ct):
    ct.resources()["memory"] = {"limit": 40 * MiB}
    path = ("/sys/fs/cgroup/memory/memory.limit_in_bytes" if CGROUP_V1
            else "/sys/fs/cgroup/memory.max")
    ct.probe_args("cat", path)
    assert int(ct.run().check().stdout) == 40 * MiB


def test_cpu_shares_and_quota(ct):
    require_v1_controller("cpu")
    ct.resources()["cpu"] = {"shares": 512, "quota": 50000, "period": 100000}
    ct.start_sleeper(10)
    if CGROUP_V1:
        assert cg_read(ct, "cpu", "cpu.shares", "") == "512"
        assert cg_read(ct, "cpu", "cpu.cfs_quota_us", "") == "50000"
        assert cg_read(ct, "cpu", "cpu.cfs_period_us", "") == "100000"
    else:
        assert cg_read(ct, "", "", "cpu.max") == "50000 100000"
        # shares 512 -> weight 1 + (512 - 2) * 9999 / 262142
        assert int(cg_read(ct, "", "", "cpu.weight")) == 1 + (512 - 2) * 9999 // 262142


def test_cpuset(ct):
    require_v1_controller("cpuset")
    ct.resources()["cpu"] = {"cpus": "0", "mems": "0"}
    ct.start_sleeper(10)
    assert cg_read(ct, "cpuset", "cpuset.cpus", "cpuset.cpus") == "0"
    assert cg_read(ct, "cpuset", "cpuset.mems", "cpuset.mems") == "0"
    out = ct.exec("/probe", "cat", "/proc/self/status").check().stdout
    allowed = [ln for ln in out.splitlines() if ln.startswith("Cpus_allowed_list:")]
    assert allowed[0].split()[1] == "0"


def test_pids_limit(ct):
    require_v1_controller("pids")
    ct.resources()["pids"] = {"limit": 10}
    ct.probe_args("fork-sleep", "20", "5")
    res = ct.run()
    assert res.returncode == 1, res
    out = res.json()
    assert out["started"] < 10
    assert out["error"] == "Resource temporarily unavailable"


def test_pids_limit_allows_below(ct):
    require_v1_controller("pids")
    ct.resources()["pids"] = {"limit": 10}
    ct.probe_args("fork-sleep", "5", "5")
    out = ct.run().check().json()
    assert out["started"] == 5


def test_pids_limit_file(ct):
    require_v1_controller("pids")
    ct.resources()["pids"] = {"limit": 33}
    ct.start_sleeper(10)
    assert cg_read(ct, "pids", "pids.max", "pids.max") == "33"


def root_block_device():
    st = os.stat("/")
    return os.major(st.st_dev), os.minor(st.st_dev)


def test_blkio_weight(ct):
    require_v1_controller("blkio")
    base = host_cgroup_dir("blkio", "/") if CGROUP_V1 else host_cgroup_dir("", "/")
    names = (["blkio.weight", "blkio.bfq.weight"] if CGROUP_V1 else ["io.weight", "io.bfq.weight"])
    if not any((base / n).exists() for n in names) and not (
            not CGROUP_V1 and (base / "cgroup.subtree_control").exists()):
        pytest.skip("no blkio/io weight file on this host (I/O scheduler without weights)")
    ct.resources()["blockIO"] = {"weight": 300}
    ct.start_sleeper(10)
    d = cg_file(ct, "blkio", "", "")
    vals = [(d / n).read_text() for n in names if (d / n).exists()]
    assert any("300" in v for v in vals), vals


def test_blkio_throttle(ct):
    require_v1_controller("blkio")
    major, minor = root_block_device()
    if major == 0:
        pytest.skip("/ is not on a block device")
    ct.resources()["blockIO"] = {
        "throttleReadBpsDevice": [{"major": major, "minor": minor, "rate": 1048576}],
        "throttleWriteIOPSDevice": [{"major": major, "minor": minor, "rate": 100}],
    }
    ct.start_sleeper(10)
    if CGROUP_V1:
        assert f"{major}:{minor} 1048576" in cg_read(ct, "blkio",
                                                     "blkio.throttle.read_bps_device", "")
        assert f"{major}:{minor} 100" in cg_read(ct, "blkio",
                                                 "blkio.throttle.write_iops_device", "")
    else:
        io_max = cg_read(ct, "", "", "io.max")
        assert f"{major}:{minor}" in io_max and "rbps=1048576" in io_max
        assert "wiops=100" in io_max


# Not in any runtime's default allow list (runc allows tun 10:200), harmless to open.
FUSE = {"path": "/dev/fuse", "type": "c", "major": 10, "minor": 229, "fileMode": 0o666}


def require_devices_controller():
    if CGROUP_MODE != "v2" and not os.path.isdir("/sys/fs/cgroup/devices"):
        pytest.skip("no devices controller")
    if CGROUP_MODE == "v2" and IS_LAMINA:
        pytest.skip("device rules on pure v2 need the eBPF filter (hardening issue)")


def test_device_denied(ct):
    require_devices_controller()
    ct.linux["devices"] = [dict(FUSE)]
    ct.probe_args("open", "/dev/fuse", "rw")
    res = ct.run()
    assert res.returncode == 1, res
    assert "Operation not permitted" in res.stderr


def test_device_allowed(ct):
    require_devices_controller()
    ct.linux["devices"] = [dict(FUSE)]
    ct.resources()["devices"].append({"allow": True, "type": "c", "major": 10, "minor": 229,
                                      "access": "rw"})
    ct.probe_args("open", "/dev/fuse", "rw")
    assert ct.run().check().stdout == "ok\n"


def test_device_read_only_rule(ct):
    require_devices_controller()
    ct.linux["devices"] = [dict(FUSE)]
    ct.resources()["devices"].append({"allow": True, "type": "c", "major": 10, "minor": 229,
                                      "access": "r"})
    ct.set_args("/bin/sh", "-c", "/probe open /dev/fuse r; /probe open /dev/fuse w")
    res = ct.run()
    assert res.stdout == "ok\n"
    assert "Operation not permitted" in res.stderr


def test_cgroup_removed_after_delete(ct):
    ct.resources()["memory"] = {"limit": 64 * MiB}
    ct.resources()["pids"] = {"limit": 100}
    ct.start_sleeper(10)
    dirs = cgroup_dirs_for(ct.linux["cgroupsPath"])
    assert dirs, "no cgroup directory created"
    ct.delete("--force").check()
    wait_for(lambda: not cgroup_dirs_for(ct.linux["cgroupsPath"]), timeout=2,
             what="cgroup removal")


def test_cgroup_removed_after_run(ct):
    ct.resources()["memory"] = {"limit": 64 * MiB}
    ct.probe_args("exit", "0")
    ct.run().check()
    assert cgroup_dirs_for(ct.linux["cgroupsPath"]) == []


def oom_config(ct):
    mem = {"limit": 32 * MiB}
    if CGROUP_MODE == "v2" or os.path.exists("/sys/fs/cgroup/memory/memory.memsw.limit_in_bytes"):
        mem["swap"] = 32 * MiB  # memory+swap == memory: no swapping, an OOM kill
    ct.resources()["memory"] = mem
    ct.probe_args("alloc", "200")


def test_oom_kill_exit_code(ct):
    oom_config(ct)
    res = ct.run(timeout=30)
    assert res.returncode == 137, res
    assert "allocated" not in res.stdout


@lamina_only("how the OOM kill is reported")
def test_oom_kill_reported(ct):
    oom_config(ct)
    res = ct.run(timeout=30)
    assert res.returncode == 137, res
    assert "oom" in res.stderr.lower() or "out of memory" in res.stderr.lower(), res


@lamina_only("how the OOM kill is reported")
def test_oom_kill_in_state(ct):
    oom_config(ct)
    ct.create().check()
    ct.start().check()
    ct.wait_status("stopped", timeout=15)
    assert ct.state()["oomKilled"] is True


@lamina_only("how the OOM kill is reported")
def test_no_oom_kill_in_state(ct):
    ct.resources()["memory"] = {"limit": 64 * MiB}
    ct.probe_args("alloc", "8")
    ct.create().check()
    ct.start().check()
    ct.wait_status("stopped", timeout=15)
    assert ct.state()["oomKilled"] is False


@lamina_only("lamina's cgroup v2 path, on a simulated pure v2 host")
def test_pure_v2_host(ct, tmp_path):
    """With cgroup2 mounted over /sys/fs/cgroup in a private mount namespace,
    lamina sees a pure v2 host: the container is born in its cgroup
    (CLONE_INTO_CGROUP), sees its own cgroup namespace root, and its cgroup is
    gone after the run."""
    import subprocess
    from conftest import OCI
    ct.probe_args()
    ct.resources().clear()
    ct.config["mounts"] = [m for m in ct.config["mounts"] if m["destination"] != "/sys/fs/cgroup"]
    ct.add_mount("/sys/fs/cgroup", "cgroup2", "cgroup2", ["nosuid", "noexec", "nodev", "ro"])
    ct.write_config()
    cg = ct.linux["cgroupsPath"]
    script = (
        "set -e; mount -t cgroup2 none /sys/fs/cgroup; "
        f"{' '.join(map(str, OCI))} --root {ct.root} run --bundle {ct.bundle} {ct.id}; "
        f"test ! -e /sys/fs/cgroup{cg} && echo cgroup-removed"
    )
    res = subprocess.run(["unshare", "-m", "--propagation", "private", "sh", "-c", script],
                         capture_output=True, text=True, timeout=30)
    assert res.returncode == 0, res.stderr
    out, _, tail = res.stdout.rpartition("}")
    report = __import__("json").loads(out + "}")
    assert "0::/" in report["cgroup"]
    assert any(m["mount_point"] == "/sys/fs/cgroup" and m["fstype"] == "cgroup2"
               for m in report["mounts"])
    assert "cgroup-removed" in tail


def test_unified_v2(ct):
    if CGROUP_MODE != "v2":
        pytest.skip("linux.resources.unified needs a pure cgroup v2 host")
    ct.resources()["unified"] = {"memory.high": "50000000", "pids.max": "42"}
    ct.start_sleeper(10)
    assert cg_read(ct, "", "", "memory.high") == "50000000"
    assert cg_read(ct, "", "", "pids.max") == "42"
