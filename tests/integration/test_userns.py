"""User namespaces end to end: root in the container is unprivileged on the host;
mounts, /dev, cgroups and exec work inside one; bad mappings are refused.

Checked from inside the container (the probe) and from the host (ownership of what
the container made, /proc/PID/status, cgroup files).
"""

import json
import os
import subprocess

import pytest

from conftest import (CGROUP_MODE, CGROUP_V1, IS_LAMINA, IS_RUNC, host_cgroup_dir, lamina_only,
                      mount_at, one_line_error, opts, runc_differs, super_opts,
                      terminal_json, wait_for)
from test_namespaces import host_ns, userns_config

HOST_ID = 100000
LAST_CAP = int(open("/proc/sys/kernel/cap_last_cap").read())
FULL_CAPS = f"{(1 << (LAST_CAP + 1)) - 1:016x}"
ALL_CAP_NAMES = [
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER", "CAP_FSETID",
    "CAP_KILL", "CAP_SETGID", "CAP_SETUID", "CAP_SETPCAP", "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE", "CAP_NET_BROADCAST", "CAP_NET_ADMIN", "CAP_NET_RAW",
    "CAP_IPC_LOCK", "CAP_IPC_OWNER", "CAP_SYS_MODULE", "CAP_SYS_RAWIO", "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE", "CAP_SYS_PACCT", "CAP_SYS_ADMIN", "CAP_SYS_BOOT", "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE", "CAP_SYS_TIME", "CAP_SYS_TTY_CONFIG", "CAP_MKNOD", "CAP_LEASE",
    "CAP_AUDIT_WRITE", "CAP_AUDIT_CONTROL", "CAP_SETFCAP", "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN", "CAP_SYSLOG", "CAP_WAKE_ALARM", "CAP_BLOCK_SUSPEND", "CAP_AUDIT_READ",
    "CAP_PERFMON", "CAP_BPF", "CAP_CHECKPOINT_RESTORE",
][:LAST_CAP + 1]


def all_caps(ct):
    """Every capability the kernel has, in the bounding, effective and permitted sets."""
    caps = ct.process["capabilities"]
    for s in ("bounding", "effective", "permitted"):
        caps[s] = list(ALL_CAP_NAMES)


def host_dir(ct, name, uid=0, gid=0, mode=0o755):
    """A directory on the host (beside the bundle) with the given owner and mode."""
    d = ct.tmp / name
    d.mkdir()
    os.chown(d, uid, gid)
    os.chmod(d, mode)
    return d


def bind(ct, src, dst, *opts):
    """A bind mount, its target made in the rootfs beforehand: the rootfs belongs to the
    host's root, so the container's root cannot make it (EACCES, as with runc)."""
    target = ct.rootfs / dst.lstrip("/")
    target.parent.mkdir(parents=True, exist_ok=True)
    if os.path.isdir(src):
        target.mkdir(exist_ok=True)
    else:
        target.touch()
    ct.add_mount(dst, "bind", src, ["rbind", *opts])


def host_status(pid):
    with open(f"/proc/{pid}/status") as f:
        return dict(ln.split(":", 1) for ln in f.read().splitlines() if ":" in ln)


def sh(ct, script):
    """Runs a shell script in the container; returns the Result (not checked)."""
    ct.set_args("/bin/sh", "-c", script)
    return ct.run()


# ---------------------------------------------------------------------------
# 1. root in the container is not root on the host

def test_root_inside_has_every_capability_of_its_namespace(ct):
    userns_config(ct)
    all_caps(ct)
    out = ct.probe()
    assert (out["uid"], out["gid"], out["euid"], out["egid"]) == (0, 0, 0, 0)
    assert out["caps"]["CapEff"] == FULL_CAPS
    assert out["caps"]["CapPrm"] == FULL_CAPS
    assert out["caps"]["CapBnd"] == FULL_CAPS
    st = ct.start_sleeper(10, cid=ct.new_id())
    status = host_status(st["pid"])
    assert status["Uid"].split() == [str(HOST_ID)] * 4
    assert status["Gid"].split() == [str(HOST_ID)] * 4


def test_host_root_files_are_out_of_reach(ct):
    """A 0600 file and a 0700 directory of the host's root, bound in, are neither
    readable nor writable by the container's root, whatever its capabilities."""
    userns_config(ct)
    all_caps(ct)
    secret_dir = host_dir(ct, "secret-dir", mode=0o700)
    (secret_dir / "inner").write_text("host secret\n")
    secret_file = ct.tmp / "secret-file"
    secret_file.write_text("host secret\n")
    os.chmod(secret_file, 0o600)
    bind(ct, secret_dir, "/mnt/dir")
    bind(ct, secret_file, "/mnt/file")
    res = sh(ct, "/probe open /mnt/file r; /probe open /mnt/file w; /probe ls /mnt/dir;"
                 " /probe write /mnt/dir/new x; /probe cat /mnt/dir/inner;"
                 " chmod 666 /mnt/file; chown 0 /mnt/dir; true")
    res.check()
    errors = res.stderr.splitlines()
    assert errors[:5] == [
        "probe: open /mnt/file: Permission denied",
        "probe: open /mnt/file: Permission denied",
        "probe: ls /mnt/dir: Permission denied",
        "probe: write /mnt/dir/new: Permission denied",
        "probe: cat /mnt/dir/inner: Permission denied",
    ], res
    # Neither can it take them over: the host's root is not mapped, so the files
    # belong to nobody it could act for.
    assert "Operation not permitted" in errors[5] and "Operation not permitted" in errors[6]
    assert secret_file.stat().st_mode & 0o777 == 0o600
    assert not (secret_dir / "new").exists()
    # The same bind without a user namespace: root reads it, as the file's owner,
    # without any capability (the check above is real).
    ct.remove_namespace("user")
    del ct.linux["uidMappings"], ct.linux["gidMappings"]
    ct.process["capabilities"] = {s: [] for s in ("bounding", "effective", "permitted")}
    ct.probe_args("cat", "/mnt/file")
    assert ct.run(cid=ct.new_id()).check().stdout == "host secret\n"


def test_files_made_inside_belong_to_the_mapped_ids(ct):
    userns_config(ct)
    data = host_dir(ct, "data", HOST_ID, HOST_ID)
    bind(ct, data, "/data")
    sh(ct, "/probe write /data/by-root x && mkdir /data/dir-by-root").check()
    ct.process["user"] = {"uid": 1000, "gid": 1000}
    os.chmod(data, 0o777)
    ct.probe_args("write", "/data/by-1000", "x")
    ct.run(cid=ct.new_id()).check()
    for name, owner in (("by-root", HOST_ID), ("dir-by-root", HOST_ID),
                        ("by-1000", HOST_ID + 1000)):
        st = os.stat(data / name)
        assert (st.st_uid, st.st_gid) == (owner, owner), name
    # Inside, the host's ids show as mapped back, the unmapped ones as the overflow id.
    ct.process["user"] = {"uid": 0, "gid": 0}
    os.chown(data / "by-1000", 0, 0)
    ct.probe_args("ls", "/data")
    entries = {e["name"]: (e["uid"], e["gid"]) for e in ct.run(cid=ct.new_id()).check().json()}
    assert entries == {"by-root": (0, 0), "dir-by-root": (0, 0), "by-1000": (65534, 65534)}


def test_non_root_user_maps_to_its_host_id(ct):
    userns_config(ct)
    ct.process["user"] = {"uid": 1000, "gid": 1000, "additionalGids": [29]}
    st = ct.start_sleeper(10)
    status = host_status(st["pid"])
    assert status["Uid"].split() == [str(HOST_ID + 1000)] * 4
    assert status["Gid"].split() == [str(HOST_ID + 1000)] * 4
    assert status["Groups"].split() == [str(HOST_ID + 29)]
    out = ct.exec("/probe").check().json()
    assert (out["uid"], out["gid"], out["groups"]) == (1000, 1000, [29])


def test_privileged_acts_on_the_host_fail(ct):
    """CapEff is full inside, but what needs a capability in the initial user namespace
    fails: mknod, module loading, setting the clock, a host (not namespaced) sysctl."""
    userns_config(ct)
    all_caps(ct)
    # /proc/sys writable as far as the mount goes: the kernel's own check decides.
    ct.linux["readonlyPaths"] = [p for p in ct.linux["readonlyPaths"] if p != "/proc/sys"]
    panic = open("/proc/sys/kernel/panic").read().strip()
    res = sh(ct, "grep CapEff /proc/self/status;"
                 " mknod /dev/shm/null c 1 3 || echo mknod-failed;"
                 " /probe syscalls 'finit_module -1 0 0' 'init_module 0 0 0' 'settimeofday 0 0'"
                 "  'syslog 9 0 0';"
                 f" /probe write /proc/sys/kernel/panic {panic};"
                 " hostname inside-ok && hostname;"
                 " /probe write /proc/sys/net/ipv4/ip_forward 1; true")
    res.check()
    lines = res.stdout.splitlines()
    assert lines[0].split() == ["CapEff:", FULL_CAPS]
    assert lines[1] == "mknod-failed"
    assert "Operation not permitted" in res.stderr.splitlines()[0]
    calls = {c["name"]: c["error"] for c in json.loads(lines[2])}
    # A kernel built without modules has no module syscalls at all.
    no_modules = "Function not implemented" if not os.path.exists("/proc/modules") else None
    assert calls["finit_module"] in ("Operation not permitted", no_modules)
    assert calls["init_module"] in ("Operation not permitted", no_modules)
    assert calls["settimeofday"] == "Operation not permitted"
    assert calls["syslog"] == "Operation not permitted"
    assert "probe: write /proc/sys/kernel/panic: Permission denied" in res.stderr
    # What belongs to the container's own namespaces is its to change.
    assert lines[3:] == ["inside-ok", "ok"], res
    assert open("/proc/sys/kernel/panic").read().strip() == panic


# ---------------------------------------------------------------------------
# 2. mounts inside the user namespace

def test_default_mounts(ct):
    userns_config(ct)
    out = ct.probe()
    types = {p: mount_at(out, p)["fstype"] for p in
             ("/proc", "/dev", "/dev/pts", "/dev/shm", "/dev/mqueue", "/sys")}
    assert types == {"/proc": "proc", "/dev": "tmpfs", "/dev/pts": "devpts",
                     "/dev/shm": "tmpfs", "/dev/mqueue": "mqueue", "/sys": "sysfs"}
    assert "ro" in opts(mount_at(out, "/"))
    assert "ro" in opts(mount_at(out, "/sys"))
    # devpts: a new instance, its options as asked (gid 5 is mapped here; the kernel
    # shows the id as the host's, whoever reads the mount table).
    pts = mount_at(out, "/dev/pts")
    assert {"mode=620", "ptmxmode=666", f"gid={HOST_ID + 5}"} <= super_opts(pts)
    host_pts = os.stat("/dev/pts").st_dev
    assert pts["dev"] != f"{os.major(host_pts)}:{os.minor(host_pts)}"
    assert {"nosuid", "nodev", "noexec"} <= opts(mount_at(out, "/dev/shm"))


def test_proc_is_the_containers_pid_namespace(ct):
    userns_config(ct)
    res = sh(ct, "ls -d /proc/[0-9]*; cat /proc/1/status | grep -E '^(Uid|NSpid)'")
    lines = res.check().stdout.splitlines()
    # sh, ls and the shell's own (a handful), never the host's processes.
    pids = [ln for ln in lines if ln.startswith("/proc/")]
    assert "/proc/1" in pids and len(pids) <= 5, lines
    assert [ln.split()[1] for ln in lines if ln.startswith("Uid:")] == ["0"]
    assert [ln.split()[1:] for ln in lines if ln.startswith("NSpid:")] == [["1"]]


def test_dev_shm_writable(ct):
    userns_config(ct)
    res = sh(ct, "/probe write /dev/shm/x y && /probe stat /dev/shm/x")
    out = res.check().stdout.splitlines()
    assert out[0] == "ok"
    st = json.loads(out[1])
    assert (st["uid"], st["gid"]) == (0, 0)


def test_devpts_gid_not_mapped(ct):
    """gid=5 in the devpts options, but only gid 0 is mapped: the kernel refuses the
    option (EINVAL).  runc 1.1 fails; lamina mounts devpts without gid= (as
    crun does): the ptys then belong to the creating process's group."""
    userns_config(ct)
    ct.linux["gidMappings"] = [{"containerID": 0, "hostID": HOST_ID, "size": 1}]
    res = ct.run()
    if IS_RUNC:
        assert res.returncode != 0
        return
    res.check()
    out = res.json()
    m = mount_at(out, "/dev/pts")
    assert m["fstype"] == "devpts"
    assert not any(o.startswith("gid=") for o in super_opts(m))
    assert {"mode=620", "ptmxmode=666"} <= super_opts(m)
    ct.probe_args("open", "/dev/ptmx", "rw")
    assert ct.run(cid=ct.new_id()).check().stdout == "ok\n"


@runc_differs("runc 1.1 fails with EPERM (runc 1.2 binds the host's /sys)")
def test_sysfs_without_a_network_namespace(ct):
    """sysfs belongs to the network namespace: a user namespace that does not own one
    cannot mount it fresh.  As runc does, /sys is then a recursive bind of the host's,
    with the options asked for (ro, nosuid, nodev, noexec)."""
    userns_config(ct)
    ct.remove_namespace("network")
    out = ct.probe()
    m = mount_at(out, "/sys")
    assert m["fstype"] == "sysfs"
    assert {"ro", "nosuid", "nodev", "noexec"} <= opts(m)
    assert out["ns"]["net"] == host_ns("net")
    # The flags hold on every mount of the bound tree (the host's cgroup mounts
    # under /sys/fs/cgroup come along, below the container's own).
    for sub in out["mounts"]:
        if sub["mount_point"].startswith("/sys/"):
            assert "ro" in opts(sub), sub
    res = sh(ct, "ls /sys/class/net | sort; /probe write /sys/kernel/uevent_helper x")
    host_devs = sorted(os.listdir("/sys/class/net"))
    assert res.stdout.split() == host_devs
    assert "Read-only file system" in res.stderr


def test_bind_mount_options(ct):
    userns_config(ct)
    data = host_dir(ct, "data", HOST_ID, HOST_ID)
    (data / "f").write_text("hello\n")
    bind(ct, data, "/ro", "ro")
    bind(ct, data, "/flags", "nosuid", "nodev", "noexec")
    bind(ct, data, "/rw")
    out = ct.probe()
    assert "ro" in opts(mount_at(out, "/ro"))
    assert {"rw", "nosuid", "nodev", "noexec"} <= opts(mount_at(out, "/flags"))
    assert "rw" in opts(mount_at(out, "/rw"))
    res = sh(ct, "/probe write /ro/f x; /probe write /rw/g y; cp /bin/busybox /flags/bb;"
                 " /flags/bb true || echo noexec")
    assert "probe: write /ro/f: Read-only file system" in res.stderr
    assert res.stdout.splitlines() == ["ok", "noexec"], res
    assert (data / "f").read_text() == "hello\n"
    assert (data / "g").read_text() == "y"


@runc_differs("runc 1.1 fails with EPERM (runc 1.2 keeps the locked flags)")
def test_read_only_bind_keeps_locked_flags(ct):
    """The source is mounted nosuid,nodev,noexec on the host: from the user namespace
    those flags are locked, and a read-only remount that drops them fails with EPERM.
    The runtime keeps them (runc adds the locked flags on EPERM)."""
    userns_config(ct)
    src = ct.tmp / "locked"
    ct.host_mount("-t", "tmpfs", "-o", "nosuid,nodev,noexec,noatime,size=1m", "lt-locked",
                  target=src)
    (src / "f").write_text("hi\n")
    bind(ct, src, "/locked", "ro")
    out = ct.probe()
    m = mount_at(out, "/locked")
    assert {"ro", "nosuid", "nodev", "noexec", "noatime"} <= opts(m), m
    ct.probe_args("write", "/locked/f", "x")
    res = ct.run(cid=ct.new_id())
    assert "Read-only file system" in res.stderr
    assert (src / "f").read_text() == "hi\n"


def test_tmpfs_with_options(ct):
    userns_config(ct)
    ct.add_mount("/scratch", "tmpfs", "tmpfs",
                 ["nosuid", "nodev", "noexec", "mode=1770", "size=1m", "uid=1000", "gid=1000"])
    ct.add_mount("/scratch-ro", "tmpfs", "tmpfs", ["ro", "size=1m"])
    (ct.rootfs / "scratch").mkdir()
    (ct.rootfs / "scratch-ro").mkdir()
    out = ct.probe()
    m = mount_at(out, "/scratch")
    assert {"nosuid", "nodev", "noexec"} <= opts(m)
    # (uid= and gid= show as the host's ids, whoever reads the mount table)
    assert {"size=1024k", "mode=1770", f"uid={HOST_ID + 1000}", f"gid={HOST_ID + 1000}"} <= \
        super_opts(m)
    assert "ro" in opts(mount_at(out, "/scratch-ro"))
    ct.process["user"] = {"uid": 1000, "gid": 1000}
    res = sh(ct, "/probe write /scratch/x y; /probe stat /scratch/x; /probe write /scratch-ro/x y")
    lines = res.stdout.splitlines()
    assert lines[0] == "ok"
    st = json.loads(lines[1])
    assert (st["uid"], st["gid"]) == (1000, 1000)
    assert "probe: write /scratch-ro/x: Read-only file system" in res.stderr


def test_read_only_rootfs(ct):
    userns_config(ct)
    os.chown(ct.rootfs / "tmp", HOST_ID, HOST_ID)
    ct.probe_args("write", "/tmp/x", "y")
    res = ct.run()
    assert res.returncode == 1 and "Read-only file system" in res.stderr
    assert not (ct.rootfs / "tmp" / "x").exists()


def test_masked_and_read_only_paths(ct):
    userns_config(ct)
    (ct.rootfs / "secret.txt").write_text("s3cret\n")
    (ct.rootfs / "secretdir").mkdir()
    (ct.rootfs / "secretdir" / "f").write_text("s3cret\n")
    ct.linux["maskedPaths"] += ["/secret.txt", "/secretdir"]
    files = [p for p in ("/proc/kcore", "/proc/keys", "/proc/timer_list") if os.path.isfile(p)]
    dirs = [p for p in ("/proc/acpi", "/sys/firmware") if os.path.isdir(p)] + ["/secretdir"]
    script = "".join(f"wc -c < {f}; " for f in files + ["/secret.txt"])
    script += "".join(f"ls -A {d} | wc -l; " for d in dirs)
    script += "/probe write /proc/sys/kernel/domainname x; true"
    res = sh(ct, script)
    assert res.check().stdout.split() == ["0"] * (len(files) + 1 + len(dirs)), res
    assert "probe: write /proc/sys/kernel/domainname: Read-only file system" in res.stderr
    out = ct.probe()
    for p in ct.linux["readonlyPaths"]:
        if os.path.exists(p):
            assert "ro" in opts(mount_at(out, p)), p


# ---------------------------------------------------------------------------
# 3. /dev: the host's nodes, bound (mknod is not allowed in a user namespace)

DEFAULT_DEVICES = {
    "null": "1:3", "zero": "1:5", "full": "1:7", "random": "1:8", "urandom": "1:9",
    "tty": "5:0",
}


def test_default_devices(ct):
    userns_config(ct)
    ct.probe_args("ls", "/dev")
    entries = {e["name"]: e for e in ct.run().check().json()}
    for name, rdev in DEFAULT_DEVICES.items():
        e = entries[name]
        assert (e["type"], e["rdev"], e["mode"]) == ("chr", rdev, 0o666), e
        # the host's node: owned by the host's root, which is nobody in here
        assert (e["uid"], e["gid"]) == (65534, 65534), e
    assert entries["ptmx"]["type"] == "link" and entries["ptmx"]["target"] == "pts/ptmx"
    res = sh(ct, "echo x > /dev/null && head -c 4 /dev/zero | wc -c &&"
                 " head -c 16 /dev/urandom | wc -c && head -c 4 /dev/random | wc -c &&"
                 " (echo x > /dev/full) 2>/dev/null; echo full=$?;"
                 " /probe open /dev/ptmx rw; /probe open /dev/tty rw")
    assert res.stdout.split() == ["4", "16", "4", "full=1", "ok"], res
    # No controlling terminal without process.terminal.
    assert "probe: open /dev/tty: No such device or address" in res.stderr


def test_config_devices(ct):
    """A node from linux.devices is the host's, bound; it keeps the host's mode and
    owner (fileMode, uid and gid cannot apply)."""
    userns_config(ct)
    ct.linux["devices"] = [
        {"path": "/dev/net/tun", "type": "c", "major": 10, "minor": 200, "fileMode": 0o666}]
    ct.resources()["devices"] += [
        {"allow": True, "type": "c", "major": 10, "minor": 200, "access": "rwm"}]
    res = sh(ct, "/probe stat /dev/net/tun; /probe open /dev/net/tun rw; true")
    tun = json.loads(res.check().stdout.splitlines()[0])
    host = os.stat("/dev/net/tun")
    assert (tun["type"], tun["rdev"], tun["mode"]) == ("chr", "10:200", host.st_mode & 0o7777)
    if host.st_mode & 0o006 != 0o006 and host.st_uid == 0:
        # The host's root owns it: not the container root's to open.
        assert "probe: open /dev/net/tun: Permission denied" in res.stderr


@lamina_only("runc binds the node at the same path from the host, and fails without one")
def test_config_device_found_through_sysfs(ct):
    """At a path the host does not have: the host's node of that major:minor (sysfs
    names it) is bound there."""
    userns_config(ct)
    ct.linux["devices"] = [{"path": "/dev/other/mynull", "type": "c", "major": 1, "minor": 3}]
    res = sh(ct, "/probe stat /dev/other/mynull; echo x > /dev/other/mynull && echo written")
    lines = res.check().stdout.splitlines()
    st = json.loads(lines[0])
    assert (st["type"], st["rdev"], st["mode"]) == ("chr", "1:3", 0o666)
    assert lines[1] == "written"


@lamina_only("runc 1.1 binds a fifo from the host too, and fails without one")
def test_config_fifo_made_inside(ct):
    """A fifo needs no privilege: it is made in the container's /dev, as asked."""
    userns_config(ct)
    ct.linux["devices"] = [
        {"path": "/dev/myfifo", "type": "p", "fileMode": 0o640, "uid": 1000, "gid": 1000}]
    ct.probe_args("stat", "/dev/myfifo")
    st = ct.run().check().json()
    assert (st["type"], st["mode"], st["uid"], st["gid"]) == ("fifo", 0o640, 1000, 1000)


def test_config_device_the_host_does_not_have(ct):
    userns_config(ct)
    ct.linux["devices"] = [{"path": "/dev/nope", "type": "c", "major": 1, "minor": 250}]
    res = ct.run()
    err = one_line_error(res)
    if IS_LAMINA:
        assert "/dev/nope" in err and "1:250" in err
    assert not ct.has_state()


def test_terminal(ct, console_socket):
    userns_config(ct)
    cs = console_socket()
    ct.process["terminal"] = True
    ct.probe_args()
    ct.create("--console-socket", cs.path).check()
    cs.wait_fd()
    ct.start().check()
    ct.wait_status("stopped")
    out = terminal_json(cs.wait_output())
    assert out["isatty"] == [True, True, True]
    assert out["ttyname"].startswith("/dev/pts/")
    assert out["console"]["type"] == "chr" and out["console"]["rdev"].startswith("136:")
    assert out["uid"] == 0 and out["ns"]["user"] != host_ns("user")


def test_exec_tty(ct, console_socket):
    userns_config(ct)
    ct.start_sleeper(10)
    cs = console_socket()
    # runc wants --detach with a console socket; lamina can wait (no orphan to reap).
    detach = ["--detach"] if IS_RUNC else []
    ct.exec("--tty", *detach, "--console-socket", cs.path, "--", "/bin/sh", "-c",
            "/probe open /dev/tty rw; tty; id -u").check()
    cs.wait_fd()
    out = cs.wait_output().replace("\r\n", "\n").split()
    assert out[0] == "ok" and out[1].startswith("/dev/pts/") and out[2] == "0", out


# ---------------------------------------------------------------------------
# 4. cgroups

MiB = 1024 * 1024


def cgroup_lines(pid):
    with open(f"/proc/{pid}/cgroup") as f:
        return f.read().splitlines()


def test_in_its_cgroup(ct):
    """The process is in its cgroup in every hierarchy (checked from the host); with a
    cgroup namespace it sees itself at its root, in every hierarchy."""
    userns_config(ct)
    st = ct.start_sleeper(10)
    pid = st["pid"]
    want = ct.linux["cgroupsPath"]
    host_view = [ln for ln in cgroup_lines(pid) if ln.split(":")[1] or CGROUP_MODE == "v2"]
    assert host_view and all(ln.split(":", 2)[2] == want for ln in host_view), host_view
    for ctl in ("memory", "pids") if CGROUP_V1 else ("",):
        procs = (host_cgroup_dir(ctl, want) / "cgroup.procs").read_text().split()
        assert str(pid) in procs, ctl
    out = ct.exec("/probe").check().json()
    assert out["cgroup"] and all(ln.split(":", 2)[2] == "/" for ln in out["cgroup"]), out["cgroup"]


def test_without_a_cgroup_namespace(ct):
    userns_config(ct)
    ct.remove_namespace("cgroup")
    out = ct.probe()
    paths = {ln.split(":", 2)[2] for ln in out["cgroup"] if ln.split(":")[1]}
    assert paths == {ct.linux["cgroupsPath"]}


def test_limits_seen_inside(ct):
    userns_config(ct)
    ct.resources()["memory"] = {"limit": 40 * MiB}
    ct.resources()["pids"] = {"limit": 33}
    if CGROUP_V1:
        files = ["/sys/fs/cgroup/memory/memory.limit_in_bytes", "/sys/fs/cgroup/pids/pids.max"]
    else:
        files = ["/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/pids.max"]
    res = sh(ct, f"cat {' '.join(files)}")
    assert res.check().stdout.split() == [str(40 * MiB), "33"]


def test_pids_limit_enforced(ct):
    userns_config(ct)
    ct.resources()["pids"] = {"limit": 10}
    ct.probe_args("fork-sleep", "20", "5")
    res = ct.run()
    assert res.returncode == 1, res
    out = res.json()
    assert out["started"] < 10 and out["error"] == "Resource temporarily unavailable"


def test_memory_limit_enforced(ct):
    userns_config(ct)
    mem = {"limit": 32 * MiB}
    if CGROUP_MODE == "v2" or os.path.exists("/sys/fs/cgroup/memory/memory.memsw.limit_in_bytes"):
        mem["swap"] = 32 * MiB
    ct.resources()["memory"] = mem
    ct.probe_args("alloc", "200")
    res = ct.run(timeout=30)
    assert res.returncode == 137, res
    assert "allocated" not in res.stdout


def test_cgroup_not_delegated_on_v1(ct):
    """cgroup v1 delegation is not safe (runtime-spec: "Cgroup ownership"): even with a
    read-write cgroup mount the container's cgroups stay the host root's, and its root
    can neither make sub-cgroups nor move processes nor change its limits."""
    if not CGROUP_V1:
        pytest.skip("a v1 or hybrid host")
    userns_config(ct)
    for m in ct.config["mounts"]:
        if m["destination"] == "/sys/fs/cgroup":
            m["options"] = [o for o in m["options"] if o != "ro"]
    ct.resources()["pids"] = {"limit": 33}
    ct.start_sleeper(10)
    for d in (host_cgroup_dir("pids", ct.linux["cgroupsPath"]),
              host_cgroup_dir("unified", ct.linux["cgroupsPath"])):
        if d.exists():
            assert (d.stat().st_uid, (d / "cgroup.procs").stat().st_uid) == (0, 0), d
    pids = "/sys/fs/cgroup/pids"
    res = ct.exec("/bin/sh", "-c", f"mkdir {pids}/sub; echo 99 > {pids}/pids.max;"
                  f" echo 1 > {pids}/cgroup.procs; cat {pids}/pids.max")
    assert res.stdout.split() == ["33"], res
    assert res.stderr.count("Permission denied") == 3, res


def run_on_pure_v2(ct):
    """`oci run` with cgroup2 mounted over /sys/fs/cgroup in a private mount namespace:
    lamina then sees a pure v2 host (see test_cgroups.test_pure_v2_host)."""
    from conftest import OCI
    ct.resources().clear()
    ct.write_config()
    script = ("set -e; mount -t cgroup2 none /sys/fs/cgroup; "
              f"{' '.join(map(str, OCI))} --root {ct.root} run --bundle {ct.bundle} {ct.id}")
    return subprocess.run(["unshare", "-m", "--propagation", "private", "sh", "-c", script],
                          capture_output=True, text=True, timeout=30)


def cgroup2_mount(ct, *opts):
    ct.config["mounts"] = [m for m in ct.config["mounts"] if m["destination"] != "/sys/fs/cgroup"]
    ct.add_mount("/sys/fs/cgroup", "cgroup2", "cgroup",
                 ["nosuid", "noexec", "nodev", *opts])


@lamina_only("lamina's cgroup v2 path, on a simulated pure v2 host")
def test_cgroup_given_to_the_container_on_v2(ct):
    """runtime-spec "Cgroup ownership": with its own user and cgroup namespaces and a
    read-write /sys/fs/cgroup, the container's root owns its cgroup directory and the
    delegation files: it can make a sub-cgroup and move itself there, but the other
    files (limits) stay the host's."""
    userns_config(ct)
    cgroup2_mount(ct)
    ct.set_args("/bin/sh", "-c",
                "stat -c '%n %u' /sys/fs/cgroup /sys/fs/cgroup/cgroup.procs"
                " /sys/fs/cgroup/cgroup.subtree_control /sys/fs/cgroup/cgroup.max.depth;"
                " mkdir /sys/fs/cgroup/sub && echo $$ > /sys/fs/cgroup/sub/cgroup.procs &&"
                " grep '^0::' /proc/self/cgroup; echo 3 > /sys/fs/cgroup/cgroup.max.depth")
    res = run_on_pure_v2(ct)
    lines = res.stdout.splitlines()
    assert lines[:5] == ["/sys/fs/cgroup 0", "/sys/fs/cgroup/cgroup.procs 0",
                         "/sys/fs/cgroup/cgroup.subtree_control 0",
                         "/sys/fs/cgroup/cgroup.max.depth 65534", "0::/sub"], res
    assert "cgroup.max.depth: Permission denied" in res.stderr, res


@lamina_only("lamina's cgroup v2 path, on a simulated pure v2 host")
@pytest.mark.parametrize("case", ["ro-mount", "no-cgroupns"])
def test_cgroup_not_given_on_v2(ct, case):
    """Not with /sys/fs/cgroup read-only, nor without a cgroup namespace of its own."""
    userns_config(ct)
    cgroup2_mount(ct, "ro") if case == "ro-mount" else cgroup2_mount(ct)
    if case == "no-cgroupns":
        ct.remove_namespace("cgroup")
    ct.set_args("/bin/sh", "-c", "stat -c '%u' /sys/fs/cgroup /sys/fs/cgroup/cgroup.procs")
    res = run_on_pure_v2(ct)
    assert res.returncode == 0, res
    assert res.stdout.split() == ["65534", "65534"], res


# ---------------------------------------------------------------------------
# 5. bad mappings: a clear one-line error, nothing created

def _maps(uid=None, gid=None):
    def apply(ct):
        if uid is not None:
            ct.linux["uidMappings"] = uid
        if gid is not None:
            ct.linux["gidMappings"] = gid
    return apply


def _m(c, h, n):
    return {"containerID": c, "hostID": h, "size": n}


def _no_userns(ct):
    ct.remove_namespace("user")


def _no_mappings(ct):
    del ct.linux["uidMappings"], ct.linux["gidMappings"]


def _user(uid, gid, extra=()):
    def apply(ct):
        ct.process["user"] = {"uid": uid, "gid": gid, "additionalGids": list(extra)}
    return apply


BAD_MAPPINGS = {
    # what is wrong: (change, words the error must have (lamina))
    "container-ranges-overlap": (_maps(uid=[_m(0, HOST_ID, 65536), _m(1000, 300000, 10)]),
                                 ["uidMappings", "overlap"]),
    "host-ranges-overlap": (_maps(gid=[_m(0, HOST_ID, 1000), _m(1000, HOST_ID + 500, 1000)]),
                            ["gidMappings", "overlap"]),
    "size-0": (_maps(uid=[_m(0, HOST_ID, 0)]), ["size"]),
    "too-many-lines": (_maps(uid=[_m(i, HOST_ID + i, 1) for i in range(341)]),
                       ["uidMappings", "340"]),
    "map-text-over-a-page": (_maps(uid=[_m(0, HOST_ID, 1)] + [
        _m(1_000_000_000 + i, 2_000_000_000 + i, 1) for i in range(200)]),
        ["uidMappings", "4095 bytes"]),
    "container-range-past-2^32": (_maps(uid=[_m(0, HOST_ID, 1), _m(1, 200000, 2**32 - 1)]),
                                  ["uidMappings"]),
    "container-range-ends-at-2^32": (_maps(gid=[_m(0, HOST_ID, 1), _m(2**32 - 6, 200000, 6)]),
                                     ["gidMappings"]),
    "host-range-past-2^32": (_maps(uid=[_m(0, 2**32 - 1, 1)]), ["uidMappings"]),
    "userns-without-mappings": (_no_mappings, ["uidMappings"]),
    "userns-without-gid-mappings": (_maps(gid=[]), ["gidMappings"]),
    "mappings-without-userns": (_no_userns, ["user namespace"]),
    "root-not-mapped": (_maps(uid=[_m(1, HOST_ID, 65536)]), ["uid 0"]),
    "process-uid-not-mapped": (_user(70000, 0), ["70000"]),
    "process-gid-not-mapped": (_user(0, 70000), ["70000"]),
    "additional-gid-not-mapped": (_user(0, 0, [70001]), ["70001"]),
}


@pytest.mark.parametrize("case", sorted(BAD_MAPPINGS))
def test_bad_mappings(ct, case):
    from test_bad_input import assert_clean_failure
    if IS_RUNC and case == "mappings-without-userns":
        pytest.skip("runc 1.1 ignores mappings without a user namespace")
    userns_config(ct)
    change, words = BAD_MAPPINGS[case]
    change(ct)
    ct.probe_args("sleep", "5")
    res = ct.create()
    err = assert_clean_failure(ct, res)
    if IS_LAMINA:
        for w in words:
            assert w in err, err
    assert ct.oci("list", "--format", "json").check().json() in ([], None)  # runc: null


# ---------------------------------------------------------------------------
# 6. exec

def exec_in_background(ct, cmd, opts=()):
    """`oci exec [opts] ID cmd...` in the foreground, left running: the host pid of the
    process it started (cmd must differ from the init's).  Not --detach: the exec'd
    process would then be reparented to the host's init, and its zombie keeps the
    cgroup busy at delete until that init reaps it."""
    from conftest import OCI
    p = subprocess.Popen([*OCI, "--root", str(ct.root), "exec", *opts, ct.id, *cmd],
                         stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL, start_new_session=True)
    ct.cleanups.append(lambda: p.wait(timeout=10))

    procs = host_cgroup_dir("memory" if CGROUP_V1 else "", ct.linux["cgroupsPath"]) / "cgroup.procs"

    def exec_d():
        for pid in procs.read_text().split():
            try:
                with open(f"/proc/{pid}/cmdline") as f:
                    if f.read().split("\0")[:len(cmd)] == cmd:
                        return int(pid)
            except OSError:
                pass
        return None

    return wait_for(exec_d, what="the exec'd process")


def test_exec_joins_the_user_namespace(ct):
    userns_config(ct)
    all_caps(ct)
    st = ct.start_sleeper(10)
    init = st["pid"]
    out = ct.exec("/probe").check().json()
    assert (out["uid"], out["gid"], out["euid"], out["egid"]) == (0, 0, 0, 0)
    assert out["ns"]["user"] == os.readlink(f"/proc/{init}/ns/user") != host_ns("user")
    assert out["caps"]["CapEff"] == FULL_CAPS
    maps = ct.exec("/bin/sh", "-c", "cat /proc/self/uid_map /proc/self/gid_map").check().stdout
    assert [ln.split() for ln in maps.splitlines()] == [["0", str(HOST_ID), "65536"]] * 2
    # From the host: the exec'd process runs as the mapped root, unprivileged there.
    status = host_status(exec_in_background(ct, ["/probe", "sleep", "9"]))
    assert status["Uid"].split() == [str(HOST_ID)] * 4
    assert status["Gid"].split() == [str(HOST_ID)] * 4
    # Its privileges end where the namespace does.
    res = ct.exec("/probe", "syscalls", "settimeofday 0 0").check()
    assert json.loads(res.stdout)[0]["error"] == "Operation not permitted"


def test_exec_as_another_user(ct):
    userns_config(ct)
    ct.start_sleeper(10)
    out = ct.exec("--user", "1000:1000", "--", "/probe").check().json()
    assert (out["uid"], out["gid"]) == (1000, 1000)
    status = host_status(exec_in_background(ct, ["/probe", "sleep", "9"], ["--user", "1000:1000"]))
    assert status["Uid"].split() == [str(HOST_ID + 1000)] * 4


def test_exec_as_an_unmapped_user_fails(ct):
    userns_config(ct, size=1000)
    ct.start_sleeper(10)
    res = ct.exec("--user", "5000:0", "--", "/probe")
    err = one_line_error(res)
    if IS_LAMINA:
        assert "uid 5000 is not mapped" in err, err
    assert ct.status() == "running"
