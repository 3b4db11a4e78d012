"""Namespaces: new ones, and joined by path; user namespace mappings."""

import os
import subprocess

import pytest


def host_ns(name):
    return os.readlink(f"/proc/self/ns/{name}")


def ns_of(pid, name):
    return os.readlink(f"/proc/{pid}/ns/{name}")


def ns_inode(path):
    return f"{os.stat(path).st_ino}"


# ---------------------------------------------------------------------------
# new namespaces

def test_new_namespaces(ct):
    out = ct.probe()
    for name in ("pid", "net", "ipc", "uts", "mnt", "cgroup"):
        assert out["ns"][name] != host_ns(name), name
    # No user namespace asked for: the host's.
    assert out["ns"]["user"] == host_ns("user")


def test_pid_namespace_probe_is_pid1(ct):
    out = ct.probe()
    assert out["pid"] == 1
    assert out["ppid"] == 0


def test_pid_namespace_only_own_processes(ct):
    ct.set_args("/bin/sh", "-c", "ls -d /proc/[0-9]* | wc -l")
    # sh, ls, wc (and the shell's subshell): a handful, not the host's processes.
    assert int(ct.run().check().stdout) <= 5


def test_no_pid_namespace(ct):
    ct.remove_namespace("pid")
    out = ct.probe()
    assert out["pid"] != 1
    assert out["ns"]["pid"] == host_ns("pid")


def test_net_namespace_only_lo(ct):
    out = ct.probe()
    assert out["netdev"] == ["lo"]


def test_no_net_namespace(ct):
    ct.remove_namespace("network")
    out = ct.probe()
    assert out["ns"]["net"] == host_ns("net")
    with open("/proc/net/dev") as f:
        host_devs = [ln.split(":")[0].strip() for ln in f.read().splitlines()[2:]]
    assert out["netdev"] == host_devs


def test_uts_namespace(ct):
    ct.config["hostname"] = "uts-test"
    out = ct.probe()
    assert out["hostname"] == "uts-test"
    assert os.uname().nodename != "uts-test"


def test_ipc_namespace(ct):
    # A SysV segment made on the host is not visible inside.
    made = subprocess.run(["ipcmk", "-M", "4096"], check=True, capture_output=True, text=True)
    shmid = made.stdout.split()[-1]
    ct.cleanups.append(lambda: subprocess.run(["ipcrm", "-m", shmid], capture_output=True))
    with open("/proc/sysvipc/shm") as f:
        assert any(ln.split()[1] == shmid for ln in f.read().splitlines()[1:])
    ct.probe_args("cat", "/proc/sysvipc/shm")
    out = ct.run().check().stdout.splitlines()
    assert len(out) == 1  # the header only


def test_cgroup_namespace(ct):
    out = ct.probe()
    for line in out["cgroup"]:
        assert line.split(":", 2)[2] == "/", line


def test_no_cgroup_namespace(ct):
    ct.remove_namespace("cgroup")
    out = ct.probe()
    paths = {line.split(":", 2)[2] for line in out["cgroup"] if line.split(":")[1]}
    assert ct.linux["cgroupsPath"] in paths


# ---------------------------------------------------------------------------
# joining by path

@pytest.fixture
def netns(ct):
    """A named network namespace (ip netns), removed at teardown."""
    name = f"{ct.id}-ns"
    subprocess.run(["ip", "netns", "add", name], check=True, capture_output=True)
    ct.cleanups.append(lambda: subprocess.run(["ip", "netns", "del", name],
                                              capture_output=True))
    subprocess.run(["ip", "-n", name, "link", "set", "lo", "up"], check=True)
    return name, f"/run/netns/{name}"


def test_join_net_namespace_by_path(ct, netns):
    name, path = netns
    ct.set_namespace_path("network", path)
    out = ct.probe()
    assert out["ns"]["net"] == f"net:[{ns_inode(path)}]"
    # lo was brought up in that namespace: the container sees it up.
    ct.probe_args("cat", "/sys/class/net/lo/operstate")
    assert ct.run().check().stdout.strip() in ("unknown", "up")


def test_join_namespaces_of_another_container(ct):
    first = ct.new_id()
    ct.config["hostname"] = "first-container"
    st = ct.start_sleeper(10, cid=first)
    pid = st["pid"]
    for t in ("pid", "network", "ipc", "uts"):
        file = {"network": "net"}.get(t, t)
        ct.set_namespace_path(t, f"/proc/{pid}/ns/{file}")
    # A joined UTS namespace keeps its hostname: setting one would change the
    # other container's (runc does that; lamina refuses it).
    del ct.config["hostname"]
    ct.probe_args()
    out = ct.run().check().json()
    assert out["ns"]["pid"] == ns_of(pid, "pid")
    assert out["ns"]["net"] == ns_of(pid, "net")
    assert out["ns"]["ipc"] == ns_of(pid, "ipc")
    assert out["ns"]["uts"] == ns_of(pid, "uts")
    assert out["pid"] != 1  # the first container's init is pid 1 there
    assert out["hostname"] == "first-container"


def test_join_missing_namespace_path_fails(ct):
    ct.set_namespace_path("network", "/run/netns/lamina-test-does-not-exist")
    res = ct.run()
    assert res.returncode != 0
    assert res.stderr.strip()
    assert not ct.has_state()


def test_join_wrong_namespace_type_fails(ct):
    ct.set_namespace_path("network", "/proc/self/ns/ipc")
    res = ct.run()
    assert res.returncode != 0
    assert not ct.has_state()


# ---------------------------------------------------------------------------
# user namespace

def open_path_to_rootfs(ct):
    """Mapped ids are 'others' on the host: they need search permission on every
    directory above the rootfs (pytest makes its tmp dirs 0700). Restored at teardown."""
    for p in [ct.tmp, *ct.tmp.parents]:
        if p == p.parent:
            break
        mode = os.stat(p).st_mode & 0o7777
        if not mode & 0o001:
            os.chmod(p, mode | 0o001)
            ct.cleanups.append(lambda p=p, mode=mode: os.chmod(p, mode))


def userns_config(ct, host_id=100000, size=65536):
    open_path_to_rootfs(ct)
    ct.linux["namespaces"].append({"type": "user"})
    ct.linux["uidMappings"] = [{"containerID": 0, "hostID": host_id, "size": size}]
    ct.linux["gidMappings"] = [{"containerID": 0, "hostID": host_id, "size": size}]


def test_user_namespace(ct):
    userns_config(ct)
    out = ct.probe()
    assert (out["uid"], out["gid"], out["euid"], out["egid"]) == (0, 0, 0, 0)
    assert out["ns"]["user"] != host_ns("user")
    ct.set_args("/bin/sh", "-c", "cat /proc/self/uid_map /proc/self/gid_map")
    lines = [ln.split() for ln in ct.run().check().stdout.splitlines()]
    assert lines == [["0", "100000", "65536"], ["0", "100000", "65536"]]


def test_user_namespace_host_view(ct):
    userns_config(ct, host_id=200000)
    st = ct.start_sleeper(10)
    with open(f"/proc/{st['pid']}/status") as f:
        status = dict(ln.split(":", 1) for ln in f.read().splitlines() if ":" in ln)
    assert status["Uid"].split()[0] == "200000"
    assert status["Gid"].split()[0] == "200000"


def test_user_namespace_non_root_user(ct):
    userns_config(ct)
    ct.process["user"] = {"uid": 1000, "gid": 1000}
    out = ct.probe()
    assert (out["uid"], out["gid"]) == (1000, 1000)


def test_user_namespace_devices_usable(ct):
    userns_config(ct)
    ct.set_args("/bin/sh", "-c", "echo x > /dev/null && head -c 3 /dev/zero | wc -c")
    assert ct.run().check().stdout.strip() == "3"


def test_user_namespace_files_owned_by_mapped_root(ct):
    userns_config(ct)
    ct.config["root"]["readonly"] = False
    os.chown(ct.rootfs / "tmp", 100000, 100000)
    ct.probe_args("write", "/tmp/made-inside", "x")
    ct.run().check()
    st = os.stat(ct.rootfs / "tmp" / "made-inside")
    assert (st.st_uid, st.st_gid) == (100000, 100000)


def test_sysctl_in_a_joined_net_namespace(ct, netns):
    """A network namespace joined by path (as podman's, which it made itself) takes
    the container's net.* sysctls; the host's own namespace joined by path does not."""
    name, path = netns
    ct.set_namespace_path("network", path)
    ct.linux["sysctl"] = {"net.ipv4.ip_forward": "1"}
    ct.probe_args("sysctl", "net.ipv4.ip_forward")
    assert ct.run().check().stdout.strip() == "1"
    inside = subprocess.run(["ip", "netns", "exec", name, "cat", "/proc/sys/net/ipv4/ip_forward"],
                            capture_output=True, text=True, check=True).stdout.strip()
    assert inside == "1"
    host = open("/proc/sys/net/ipv4/ip_forward").read().strip()
    ct.set_namespace_path("network", "/proc/1/ns/net")
    ct.linux["sysctl"] = {"net.ipv4.ip_forward": "0" if host == "1" else "1"}
    res = ct.run()
    assert res.returncode != 0
    assert open("/proc/sys/net/ipv4/ip_forward").read().strip() == host
