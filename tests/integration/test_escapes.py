"""Known container escapes, attempted the way the real exploits did, against the runtime.

Each test names the CVE class it replays and the defence that should stop it, and
asserts on the host (a file that must not appear, a binary whose hash must not change,
a host setting that must keep its value) as well as on what the container saw. The
attacker side is `/probe escape` (tests/probe/probe.c), which hunts for everything a
workload can reach: its own fds, every visible process's exe, cwd, root and fds, and
tries to create a host file by walking up with ".." from every directory it found.

Tests that overwrite the runtime binary (or could) run a copy of it (RuntimeCopy), so
a successful escape only damages the copy.

Escapes that lamina does not stop yet are marked `xfail(strict=True)` with the reason:
the test fails loudly (XPASS) once the hole is closed, so the mark must go then.
"""

import hashlib
import json
import os
import shutil
import stat
import struct
import subprocess
from pathlib import Path

import pytest

import conftest
from conftest import (IS_LAMINA, IS_RUNC, OCI, lamina_only, mounts_under, one_line_error, run,
                      runc_differs, wait_for)

# ---------------------------------------------------------------------------
# helpers

CORE_PATTERN = Path("/proc/sys/kernel/core_pattern").read_text()
# A file of the default maskedPaths that this kernel has (/proc/kcore needs CONFIG_PROC_KCORE).
MASKED = next((p for p in ("/proc/keys", "/proc/kcore", "/proc/timer_list", "/proc/sched_debug")
               if os.path.isfile(p)), None)
needs_masked_file = pytest.mark.skipif(MASKED is None, reason="no masked /proc file on this kernel")


def sha256(path):
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


class RuntimeCopy:
    """The runtime under test, copied into the test's directory and used for every
    runtime command of the test (conftest.OCI is patched): an escape that writes to
    the runtime binary writes to this copy only."""

    def __init__(self, ct, monkeypatch):
        src = shutil.which(OCI[0]) or OCI[0]
        d = ct.tmp / "runtime"
        d.mkdir()
        self.path = d / Path(src).name
        shutil.copy2(src, self.path)
        monkeypatch.setattr(conftest, "OCI", [str(self.path)] + list(OCI[1:]))
        st = os.stat(self.path)
        self.dev, self.ino = st.st_dev, st.st_ino
        self.devino = f"{os.major(st.st_dev)}:{os.minor(st.st_dev)}:{st.st_ino}"
        self.sha = sha256(self.path)

    def running(self):
        """Pids of host processes executing the copy."""
        pids = []
        for p in os.listdir("/proc"):
            if not p.isdigit():
                continue
            try:
                st = os.stat(f"/proc/{p}/exe")
            except OSError:
                continue
            if (st.st_dev, st.st_ino) == (self.dev, self.ino):
                pids.append(int(p))
        return pids

    def wait_idle(self):
        """Until no process executes the copy: then nothing keeps it busy (ETXTBSY)
        and a held fd could write to it."""
        wait_for(lambda: not self.running(), timeout=10, what="runtime processes to exit")

    def changed(self):
        return sha256(self.path) != self.sha


def escape_cmd(runtime=None, marker=None, wait=None, fifo=None, go=None):
    args = ["/probe", "escape"]
    for flag, v in (("--runtime", runtime), ("--marker", marker), ("--wait", wait),
                    ("--fifo", fifo), ("--go", go)):
        if v is not None:
            args += [flag, str(v)]
    return args


def json_lines(text):
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


def wait_lines(read, n, what):
    """The first n JSON lines of what read() returns, once there are n."""
    return wait_for(lambda: (lambda ls: ls if len(ls) >= n else None)(json_lines(read())),
                    timeout=15, what=what)[:n]


def assert_contained(rep, marker, rt=None, over=None):
    problems = escape_problems(rep, marker, rt, over)
    assert not problems, "escaped:\n  " + "\n  ".join(problems)


def escape_problems(rep, marker, rt=None, over=None):
    """Every way out the probe found, in words (empty: contained)."""
    problems = []
    if rep["marker_via"] or marker.exists():
        problems.append(f"a host file was created from inside through {rep['marker_via']}")
    for fd in rep["own_fds"]:
        problems.append(f"the workload has fd {fd['fd']} -> {fd['target']} (cwd after fchdir: "
                        f"{fd['cwd']})")
    if rt is not None:
        runtime_procs = [p for p in rep["procs"] if p.get("runtime")]
        if rep["self"].get("runtime"):
            runtime_procs.append({"pid": "self", **rep["self"]})
        for p in runtime_procs:
            if p.get("open_w") == "ok":
                problems.append(f"the runtime binary opened for writing via pid {p['pid']}")
        for o in (over or {}).get("overwrite", []):
            if o["result"] == "written":
                problems.append(f"the runtime binary was overwritten through pid {o['pid']}'s exe "
                                "once the runtime had exited (CVE-2019-5736)")
        if rt.changed():
            problems.append(f"the host's runtime binary {rt.path} changed")
    return problems


def elf_interp(path):
    """PT_INTERP of an ELF64 executable, or None (static)."""
    data = Path(path).read_bytes()
    if data[:4] != b"\x7fELF" or data[4] != 2:
        return None
    phoff = struct.unpack_from("<Q", data, 0x20)[0]
    phentsize, phnum = struct.unpack_from("<HH", data, 0x36)
    for i in range(phnum):
        off = phoff + i * phentsize
        if struct.unpack_from("<I", data, off)[0] == 3:  # PT_INTERP
            p_offset = struct.unpack_from("<Q", data, off + 8)[0]
            p_filesz = struct.unpack_from("<Q", data, off + 32)[0]
            return data[p_offset:p_offset + p_filesz].rstrip(b"\0").decode()
    return None


def outside_dir(ct, name="host-dir"):
    """A host directory outside the rootfs with one file, to check nothing lands there."""
    d = ct.tmp / name
    d.mkdir()
    (d / "host-marker").write_text("host\n")
    return d


def assert_untouched(d):
    assert sorted(os.listdir(d)) == ["host-marker"], f"{d} changed: {sorted(os.listdir(d))}"
    assert (d / "host-marker").read_text() == "host\n"
    assert mounts_under(d) == [], f"mounts on the host under {d}: {mounts_under(d)}"


def oci_cmd(ct, *args):
    return list(conftest.OCI) + ["--root", str(ct.root)] + [str(a) for a in args]


def with_leaked_fds(cmd, keep, hostdir):
    """cmd started with fd 3 = keep (a file) and fds 4, 5 = hostdir (a host directory),
    as a careless caller would leave them."""
    return ["/bin/sh", "-c", 'exec 3<"$1" 4<"$2" 5<"$2"; shift 2; exec "$@"', "sh",
            str(keep), str(hostdir), *cmd]


def sh_lines(ct, script):
    """`oci run` of /bin/sh -c script; returns (Result, stdout lines)."""
    ct.set_args("/bin/sh", "-c", script)
    res = ct.run()
    return res, res.stdout.splitlines()


def stat_inside(ct, path):
    ct.probe_args("stat", path)
    return ct.run().check().json()


# ---------------------------------------------------------------------------
# 1. the runtime binary through /proc/<pid>/exe (CVE-2019-5736 class)

def test_runtime_binary_not_reachable_from_running_container(ct, monkeypatch):
    """CVE-2019-5736 class: a container process opens /proc/self/exe, /proc/<pid>/exe of
    every process it can see (its init, an exec'd process, a sleeping exec'd process) for
    writing, and keeps them to write once the runtime has exited. Defence: once the
    workload runs, no process of the container executes the runtime: lamina clones its
    container process and execs the workload directly, it never re-executes itself into
    the container, and `exec` forks and execs the same way."""
    rt = RuntimeCopy(ct, monkeypatch)
    marker = ct.tmp / "escaped"
    # the container's init is the attacker
    ct.set_args(*escape_cmd(rt.devino, marker))
    rep = ct.run().check().json()
    assert rep["self"]["exe"] == "/probe"
    assert rep["self"]["open_w"] == "Text file busy"
    assert_contained(rep, marker, rt)
    # an exec'd attacker, beside a sleeping exec'd process
    ct.start_sleeper(30)
    ct.exec("--detach", "--", "/probe", "sleep", "30").check()
    go = ct.rootfs / "tmp" / "go"
    out = ct.tmp / "attacker.out"
    ct.exec("--detach", "--", *escape_cmd(rt.devino, marker, go="/tmp/go"), out_path=out).check()
    rep, = wait_lines(lambda: out.read_text(), 1, "the attacker's report")
    assert sorted(p["exe"] for p in rep["procs"]) == ["/probe", "/probe"], rep["procs"]
    rt.wait_idle()
    go.touch()
    rep, over = wait_lines(lambda: out.read_text(), 2, "the attacker's overwrite")
    assert_contained(rep, marker, rt, over)


def test_created_container_exposes_no_runtime(ct, monkeypatch):
    """CVE-2019-5736 / CVE-2024-21626 class: between create and start, a process exec'd into
    the container (`oci exec` of a created container is allowed) looks at pid 1. If pid 1 is
    still the runtime, /proc/1/exe is the host's runtime binary (kept O_PATH, written once
    the runtime has exited) and /proc/1/fd/N are the runtime's host fds (a directory there
    leads to the host's root with ".."). Defence expected: the waiting init must not be
    reachable: not dumpable (PR_SET_DUMPABLE 0, so /proc/1/{exe,fd} need CAP_SYS_PTRACE),
    holding no host directory fd, and its exe a sealed copy or a read-only mount."""
    rt = RuntimeCopy(ct, monkeypatch)
    marker = ct.tmp / "escaped"
    ct.probe_args("sleep", "30")
    ct.create().check()
    out = ct.tmp / "attacker.out"
    ct.exec("--detach", "--", *escape_cmd(rt.devino, marker, go="/tmp/go"), out_path=out).check()
    rep, = wait_lines(lambda: out.read_text(), 1, "the attacker's report")
    ct.start().check()
    rt.wait_idle()
    (ct.rootfs / "tmp" / "go").touch()
    rep, over = wait_lines(lambda: out.read_text(), 2, "the attacker's overwrite")
    assert_contained(rep, marker, rt, over)


def test_shared_pid_namespace_sees_no_runtime(ct, monkeypatch):
    """CVE-2019-5736 / CVE-2024-21626 class, pod flavour: container A is running; container
    B is created in A's pid namespace (a pod with a shared pid namespace). A looks at every
    process it can see while B is created: none may be the runtime's binary or hold a host
    directory. Defence expected: as for the created container: nothing of the runtime is
    reachable from the pid namespace it sets up a container in."""
    rt = RuntimeCopy(ct, monkeypatch)
    marker = ct.tmp / "escaped"
    ct.set_args(*escape_cmd(rt.devino, marker, wait="/tmp/scan", go="/tmp/go"))
    ct.create().check()
    ct.start().check()
    a_pid = ct.state()["pid"]
    b = ct.new_id()
    ct.set_namespace_path("pid", f"/proc/{a_pid}/ns/pid")
    ct.probe_args("sleep", "30")
    ct.create(cid=b).check()
    (ct.rootfs / "tmp" / "scan").touch()
    wait_lines(ct.output, 1, "the attacker's report")
    ct.start(cid=b).check()
    rt.wait_idle()
    (ct.rootfs / "tmp" / "go").touch()
    rep, over = wait_lines(ct.output, 2, "the attacker's overwrite")
    assert_contained(rep, marker, rt, over)


def self_exe_trap(ct, rt):
    """The image of the published exploit: /bin/sh is '#!/proc/self/exe', the runtime's
    loader is there (so the runtime binary would start), and LD_PRELOAD=/fifo makes that
    loader wait until the attacker opened the fifo."""
    interp = elf_interp(rt.path)
    if not interp:
        pytest.skip("the runtime is a static binary: no loader to stop it with")
    dst = ct.rootfs / interp.lstrip("/")
    dst.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(os.path.realpath(interp), dst)
    sh = ct.rootfs / "bin" / "sh"
    sh.unlink()
    sh.write_text("#!/proc/self/exe\n")
    sh.chmod(0o755)
    os.mkfifo(ct.rootfs / "fifo")
    ct.process["env"].append("LD_PRELOAD=/fifo")


def self_exe_attacker(ct, monkeypatch):
    """A copy of the runtime, the trapped image, and the container started with the
    attacker as its init, waiting on the fifo; returns (the copy, the marker path)."""
    rt = RuntimeCopy(ct, monkeypatch)
    self_exe_trap(ct, rt)
    marker = ct.tmp / "escaped"
    ct.set_args(*escape_cmd(rt.devino, marker, fifo="/fifo", go="/tmp/go"))
    ct.create().check()
    ct.start().check()
    return rt, marker


def spring_self_exe_trap(ct, rt, marker):
    """After the runtime ran the trapped /bin/sh: the attacker (the container's output)
    reports what it caught, waits for the runtime to exit, then tries to overwrite it."""
    # Had nothing opened the fifo, the attacker still waits there: let it go on.
    rfd = os.open(ct.rootfs / "fifo", os.O_RDONLY | os.O_NONBLOCK)
    try:
        wait_lines(ct.output, 1, "the attacker's report")
    finally:
        os.close(rfd)
    rt.wait_idle()
    (ct.rootfs / "tmp" / "go").touch()
    rep, over = wait_lines(ct.output, 2, "the attacker's overwrite")
    assert_contained(rep, marker, rt, over)


@pytest.mark.parametrize("profile", [None, "no-execveat"])
def test_exec_of_proc_self_exe_script(ct, monkeypatch, profile):
    """CVE-2019-5736 as published: the image's /bin/sh is '#!/proc/self/exe', so when the
    operator runs `exec CONTAINER /bin/sh`, the kernel starts the interpreter
    /proc/self/exe of the runtime's exec process: the runtime binary itself, now running
    in the container with the container's identity. The attacker (the container's init)
    catches it deterministically: the image's ENV has LD_PRELOAD=/fifo, so the dynamic
    loader of that process blocks opening the fifo until the attacker has opened its
    /proc/PID/exe; once the runtime has exited, the attacker reopens it for writing.
    Defence: the runtime's last execve is of lamina-dmz from a sealed memfd made for
    that one process (src/runtime/dmz.h), which execs the program: /proc/self/exe is
    then that sealed copy, never the host's file. With a seccomp profile that denies
    execveat, the launcher is started through its /proc/self/fd path instead."""
    if profile:
        ct.linux["seccomp"] = {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
            {"names": ["execveat"], "action": "SCMP_ACT_ERRNO"}]}
    rt, marker = self_exe_attacker(ct, monkeypatch)
    ct.exec("/bin/sh", "-c", "true")  # the operator's `exec CONTAINER sh`: fails, fine
    spring_self_exe_trap(ct, rt, marker)


def test_start_of_proc_self_exe_script(ct, monkeypatch):
    """CVE-2019-5736, a container's own program: container B's process is the image's
    '#!/proc/self/exe' /bin/sh, so at `start` the kernel would run the interpreter
    /proc/self/exe of B's init, which is the runtime until its last execve. The attacker
    is container A's init, B shares A's pid namespace (a pod), and A waits on the fifo
    the runtime's loader would open. Defence: as for exec, the init's last execve is of
    the sealed launcher, so the script reaches that copy (which then has nothing to run
    and exits 127), never the host's runtime binary."""
    rt, marker = self_exe_attacker(ct, monkeypatch)
    b = ct.new_id()
    ct.set_namespace_path("pid", f"/proc/{ct.state()['pid']}/ns/pid")
    ct.set_args("/bin/sh")
    ct.create(cid=b).check()
    ct.start(cid=b).check()
    spring_self_exe_trap(ct, rt, marker)


# ---------------------------------------------------------------------------
# 2. leaked host fds and a cwd outside the rootfs (CVE-2024-21626 class)

@pytest.mark.parametrize("preserve", [0, 1])
@pytest.mark.parametrize("where", ["init", "exec"])
def test_no_host_fd_reaches_the_workload(ct, where, preserve):
    """CVE-2024-21626 class: the runtime's caller leaves fds open (here fd 3 a file, fds 4
    and 5 a host directory), and the runtime has its own (state directory, sync socket,
    cgroup directories). The workload, init or exec'd, tries fchdir and openat("../..")
    on every fd from 3 to 1023. Only --preserve-fds ones may be there. Defence:
    lm_process_seal_fds marks every fd above the preserved ones close-on-exec right
    before execve (close_range CLOSE_RANGE_CLOEXEC)."""
    keep = ct.tmp / "keep"
    keep.write_text("preserved\n")
    hostdir = outside_dir(ct, "leaked-dir")
    marker = ct.tmp / "escaped"
    flags = ["--preserve-fds", str(preserve)] if preserve else []
    if where == "init":
        ct.set_args(*escape_cmd(marker=marker))
        ct.write_config()
        res = run(with_leaked_fds(oci_cmd(ct, "run", "--bundle", ct.bundle, *flags, ct.id),
                                  keep, hostdir))
    else:
        ct.start_sleeper(30)
        res = run(with_leaked_fds(oci_cmd(ct, "exec", *flags, ct.id, *escape_cmd(marker=marker)),
                                  keep, hostdir))
    rep = res.check().json()
    fds = {f["fd"]: f["target"] for f in rep["own_fds"]}
    assert fds == ({3: str(keep)} if preserve else {}), rep["own_fds"]
    assert rep["marker_via"] == [] and not marker.exists()
    assert_untouched(hostdir)


def cwd_escapes(n, res, marker):
    """[(n, cwd, how)] when a probe run with cwd /proc/self/fd/n got out, else []; a
    refused run must say why in one line."""
    if res.returncode != 0:
        one_line_error(res)
        return []
    rep = res.json()
    if not rep["cwd"].startswith("/") or rep["marker_via"] or marker.exists():
        return [(n, rep["cwd"], rep["marker_via"])]
    return []


def test_cwd_through_proc_self_fd_init(ct):
    """CVE-2024-21626: process.cwd = /proc/self/fd/N names whatever the runtime has open
    as fd N while it sets the container up (a host directory it leaked, its state
    directory, ...): a chdir there leaves the workload with a cwd on the host. Defences:
    the cwd is made/resolved inside the rootfs (openat2 RESOLVE_IN_ROOT |
    RESOLVE_NO_MAGICLINKS refuses the magic link), and after chdir the cwd is checked to
    be reachable from the container's root (getcwd)."""
    keep = ct.tmp / "keep"
    keep.write_text("x\n")
    hostdir = outside_dir(ct, "leaked-dir")
    marker = ct.tmp / "escaped"
    ct.set_args(*escape_cmd(marker=marker))
    escaped = []
    for n in range(3, 12):
        ct.process["cwd"] = f"/proc/self/fd/{n}"
        ct.write_config()
        res = run(with_leaked_fds(oci_cmd(ct, "run", "--bundle", ct.bundle, ct.id), keep, hostdir))
        escaped += cwd_escapes(n, res, marker)
        if res.returncode != 0:
            assert not ct.has_state()
    assert escaped == []
    assert not marker.exists()
    assert_untouched(hostdir)


def test_cwd_through_proc_self_fd_exec(ct):
    """CVE-2024-21626 through exec: `exec --cwd /proc/self/fd/N` for every N the exec
    process may have open (the container's state directory, a leaked host directory,
    ...). Defence: after chdir, lm_process_chdir checks the cwd is reachable from the
    container's root (getcwd: a directory outside it reads "(unreachable)...") and fails
    the exec before anything runs."""
    keep = ct.tmp / "keep"
    keep.write_text("x\n")
    hostdir = outside_dir(ct, "leaked-dir")
    marker = ct.tmp / "escaped"
    ct.start_sleeper(30)
    escaped = []
    for n in range(3, 16):
        res = run(with_leaked_fds(oci_cmd(ct, "exec", "--cwd", f"/proc/self/fd/{n}", ct.id,
                                          *escape_cmd(marker=marker)), keep, hostdir))
        escaped += cwd_escapes(n, res, marker)
    assert escaped == []
    assert not marker.exists()
    assert_untouched(hostdir)
    assert ct.status() == "running"


# ---------------------------------------------------------------------------
# 3. mount destinations through symlinks (CVE-2021-30465 class)

def test_mount_destination_symlink_in_volume(ct):
    """CVE-2021-30465: a volume shared with another container holds a path that the other
    container swaps for a symlink to a host directory while this one is being created;
    the runtime then mounts onto the host. Made deterministic by having the symlink in
    the volume from the start (absolute, and relative with enough ".."), below a bind
    mount the runtime made itself. Defence: every mount target is resolved inside the
    rootfs (openat2 RESOLVE_IN_ROOT) to an O_PATH fd, after the earlier mounts, and
    mounted through /proc/self/fd/N: no path is looked up twice."""
    out = outside_dir(ct)
    vol = ct.tmp / "volume"
    vol.mkdir()
    os.symlink(str(out), vol / "abs")
    os.symlink("../" * 40 + str(out).lstrip("/"), vol / "rel")
    hostfile = ct.tmp / "hostfile"
    hostfile.write_text("bound\n")
    ct.add_mount("/vol", "bind", vol, ["rbind", "rw"])
    for link in ("abs", "rel"):
        ct.add_mount(f"/vol/{link}/sub", "tmpfs", "tmpfs", ["size=1m"])
        ct.add_mount(f"/vol/{link}/host-marker", "bind", hostfile, ["bind"])
    res = ct.run()
    assert_untouched(out)
    if res.returncode != 0:
        one_line_error(res)


def test_mount_destination_magic_link(ct):
    """CVE-2021-30465 variant: the image's symlink goes through a magic link,
    /proc/self/root (the runtime's own root while it builds the rootfs: the host's /),
    which a resolver confined to the rootfs must not follow. Defence: openat2 with
    RESOLVE_NO_MAGICLINKS (and RESOLVE_IN_ROOT) for every mount target."""
    out = outside_dir(ct)
    os.symlink("/proc/self/root" + str(out), ct.rootfs / "evil")
    os.symlink("/proc/self/cwd", ct.rootfs / "evil-cwd")  # the bundle, while creating
    ct.add_mount("/evil/sub", "tmpfs", "tmpfs", ["size=1m"])
    ct.add_mount("/evil-cwd/sub", "tmpfs", "tmpfs", ["size=1m"])
    res = ct.run()
    assert_untouched(out)
    assert not (ct.bundle / "sub").exists()
    assert mounts_under(ct.bundle) == []
    if res.returncode != 0:
        one_line_error(res)


def test_mount_destination_symlink_to_host_etc(ct):
    """CVE-2021-30465 class with the host's /etc as the target: the image has
    /hostetc -> /etc, the config mounts a tmpfs and a file below /hostetc. They must land
    in the rootfs's own /etc; the host's /etc gets nothing. Defence: in-root resolution
    of mount targets (openat2 RESOLVE_IN_ROOT)."""
    name = f"lamina-escape-{os.getpid()}-{ct.id}"
    host_paths = [Path("/etc") / name, Path("/etc") / (name + "-file")]
    os.symlink("/etc", ct.rootfs / "hostetc")
    hostfile = ct.tmp / "hostfile"
    hostfile.write_text("bound\n")
    ct.add_mount(f"/hostetc/{name}", "tmpfs", "tmpfs", ["size=1m"])
    ct.add_mount(f"/hostetc/{name}-file", "bind", hostfile, ["bind"])
    try:
        ct.probe_args()
        res = ct.run()
        landed = [str(p) for p in host_paths if os.path.lexists(p)]
        leaked = mounts_under("/etc/" + name)
    finally:
        for p in host_paths:
            subprocess.run(["umount", "-l", str(p)], capture_output=True)
            if p.is_dir() and not p.is_symlink():
                p.rmdir()
            elif os.path.lexists(p):
                p.unlink()
    assert landed == [] and leaked == [], f"mounted onto the host's /etc: {landed} {leaked}"
    if res.returncode == 0:
        mps = {m["mount_point"] for m in res.json()["mounts"]}
        assert f"/etc/{name}" in mps and f"/etc/{name}-file" in mps, sorted(mps)
        assert (ct.rootfs / "etc" / name).is_dir()
    else:
        one_line_error(res)


# ---------------------------------------------------------------------------
# 4. /dev and /proc that are not what they seem (CVE-2025-31133, CVE-2019-16884 classes)

@runc_differs("runc 1.1.5 makes /dev's links (fd, ptmx, stdin, ...) through the image's "
              "/dev symlink, on the host")
@pytest.mark.parametrize("dev_in_config", [True, False])
def test_dev_symlink_to_host(ct, dev_in_config):
    """2025 /dev class: the image's /dev is a symlink to a host directory, so a runtime
    that builds /dev by path creates device nodes (or mounts its tmpfs) on the host.
    Defence: /dev is a fresh tmpfs whose target is resolved in the rootfs
    (RESOLVE_IN_ROOT), and the nodes are made fd-relative inside that tmpfs."""
    out = outside_dir(ct)
    shutil.rmtree(ct.rootfs / "dev")
    os.symlink(str(out), ct.rootfs / "dev")
    if not dev_in_config:
        ct.config["mounts"] = [m for m in ct.config["mounts"]
                               if not m["destination"].startswith("/dev")]
    ct.probe_args("stat", "/dev/null")
    res = ct.run()
    assert_untouched(out)
    if res.returncode == 0:
        st = res.json()
        assert (st["type"], st["rdev"]) == ("chr", "1:3"), st
    else:
        one_line_error(res)


@needs_masked_file
@pytest.mark.parametrize("fake", ["symlink", "file", "zero"])
def test_fake_dev_null_in_the_image(ct, fake):
    """CVE-2025-31133 class: the image's /dev/null is a symlink to
    /proc/sys/kernel/core_pattern (or a regular file, or another device). A runtime that
    masks paths by bind-mounting "/dev/null" would put a writable core_pattern at
    the masked /proc file: a host-wide setting in the container's hands. With /dev a fresh tmpfs
    the image's node is never used. Defence: /dev is always a fresh tmpfs with nodes made
    by the runtime; masking opens /dev/null with O_NOFOLLOW inside the root and checks it
    is the 1:3 character device (fstat) before binding it."""
    make_fake_null(ct.rootfs / "dev", fake)
    before = fake_null_state(ct.rootfs / "dev")
    res, lines = sh_lines(ct, f"/probe stat /dev/null; /probe stat {MASKED}")
    res.check()
    null, keys = json.loads(lines[0]), json.loads(lines[1])
    assert (null["type"], null["rdev"]) == ("chr", "1:3"), null
    assert (keys["type"], keys.get("rdev")) == ("chr", "1:3"), keys
    assert fake_null_state(ct.rootfs / "dev") == before


@needs_masked_file
@runc_differs("runc 1.1.5 predates the CVE-2025-31133 fix: it binds whatever /dev/null is "
              "(the host's core_pattern, a file, /dev/zero) over masked paths")
@pytest.mark.parametrize("fake", ["symlink", "file", "zero"])
def test_fake_dev_null_in_bind_mounted_dev(ct, fake):
    """CVE-2025-31133 class where the fake is used: /dev is a bind mount of a directory
    the container controls (a volume), whose "null" is a symlink to
    /proc/sys/kernel/core_pattern, a regular file, or /dev/zero's node. Masking must not
    bind that over the masked /proc file (with the symlink: a writable host core_pattern inside).
    Defence: mask_path opens /dev/null with O_NOFOLLOW in the root and refuses anything
    but the 1:3 character device (fstat) - a clear error, or the real null."""
    devdir = ct.tmp / "devvol"
    devdir.mkdir()
    make_fake_null(devdir, fake)
    before = fake_null_state(devdir)
    ct.config["mounts"] = [m for m in ct.config["mounts"] if not m["destination"].startswith("/dev")]
    ct.add_mount("/dev", "bind", devdir, ["rbind", "rw"])
    res, lines = sh_lines(ct, f"/probe stat {MASKED}; /probe open {MASKED} w 2>&1; "
                              f"/probe cat {MASKED} 2>&1 | head -c 64")
    host_core = Path("/proc/sys/kernel/core_pattern").read_text()
    assert host_core == CORE_PATTERN, "the container changed the host's core_pattern"
    if res.returncode == 0:
        keys = json.loads(lines[0])
        assert (keys["type"], keys.get("rdev")) == ("chr", "1:3"), (keys, lines)
    else:
        one_line_error(res)
    assert fake_null_state(devdir) == before


def make_fake_null(devdir, fake):
    devdir.mkdir(exist_ok=True)
    p = devdir / "null"
    if fake == "symlink":
        os.symlink("/proc/sys/kernel/core_pattern", p)
    elif fake == "file":
        p.write_text("not the null device\n")
    else:
        os.mknod(p, 0o666 | stat.S_IFCHR, os.makedev(1, 5))


def fake_null_state(devdir):
    p = devdir / "null"
    st = os.lstat(p)
    content = p.read_text() if stat.S_ISREG(st.st_mode) else os.readlink(p) if \
        stat.S_ISLNK(st.st_mode) else None
    return (stat.S_IFMT(st.st_mode), st.st_rdev, st.st_size, content)


@needs_masked_file
def test_proc_symlink_to_host(ct):
    """CVE-2019-16884 class: the image's /proc is a symlink to a host directory, so a
    runtime that mounts proc by path mounts it on the host, and its later writes and masks
    go there. Defence: the proc target is resolved inside the rootfs (RESOLVE_IN_ROOT);
    masking and sysctls then go through the container's own view, to the real proc."""
    out = outside_dir(ct)
    shutil.rmtree(ct.rootfs / "proc")
    os.symlink(str(out), ct.rootfs / "proc")
    ct.linux["sysctl"] = {"net.ipv4.ip_forward": "1"}
    res, lines = sh_lines(ct, f"/probe stat {MASKED}; /probe sysctl net.ipv4.ip_forward; "
                              "/probe cat /proc/self/oom_score_adj")
    assert_untouched(out)
    if res.returncode == 0:
        keys = json.loads(lines[0])
        assert (keys["type"], keys.get("rdev")) == ("chr", "1:3"), keys
        assert lines[1] == "1"
    else:
        one_line_error(res)


@needs_masked_file
def test_proc_symlink_to_fake_proc_dir(ct):
    """CVE-2019-16884 class: the image's /proc is a symlink to /fakeproc, a directory full
    of look-alike files (keys, sys/net/ipv4/ip_forward, self/oom_score_adj, ...). Proc
    must be mounted over the real target, so that masking, the read-only /proc/sys, the
    sysctls and oomScoreAdj all apply to the real proc, and the fake files stay as they
    are. Defence: proc mounted on the in-root resolved target, and every later write goes
    through the container's /proc after pivot_root."""
    fake = ct.rootfs / "fakeproc"
    for rel, text in ((Path(MASKED).name, "fake\n"), ("sys/net/ipv4/ip_forward", "7\n"),
                      ("self/oom_score_adj", "0\n"), ("sys/kernel/core_pattern", "fake\n")):
        (fake / rel).parent.mkdir(parents=True, exist_ok=True)
        (fake / rel).write_text(text)
    shutil.rmtree(ct.rootfs / "proc")
    os.symlink("/fakeproc", ct.rootfs / "proc")
    before = {p: p.read_text() for p in fake.rglob("*") if p.is_file()}
    ct.linux["sysctl"] = {"net.ipv4.ip_forward": "1"}
    ct.process["oomScoreAdj"] = 123
    res, lines = sh_lines(ct, f"/probe stat {MASKED}; /probe sysctl net.ipv4.ip_forward; "
                              "/probe cat /proc/self/oom_score_adj; "
                              "/probe open /proc/sys/kernel/core_pattern w 2>&1; true")
    assert {p: p.read_text() for p in fake.rglob("*") if p.is_file()} == before
    if res.returncode != 0:  # runc: "proc must be mounted on ordinary directory"
        one_line_error(res)
        return
    keys = json.loads(lines[0])
    assert (keys["type"], keys.get("rdev")) == ("chr", "1:3"), keys
    assert lines[1] == "1"
    assert lines[2] == "123"
    assert "Read-only file system" in lines[3], lines


def test_bind_mount_over_proc(ct):
    """CVE-2019-16884: a volume (bind mount) over /proc, after the real proc, with fake
    files in it: the runtime's writes to /proc (sysctls, oomScoreAdj) would go to those
    files instead of the kernel, and the container would run without them. Defence
    expected: refused (runc: "/proc cannot be mounted ..."), or at least no runtime write
    lands in the volume. lamina refuses it when it mounts (the source is only known to be no
    procfs then): only a proc filesystem may be mounted on /proc."""
    vol = ct.tmp / "procvol"
    for rel, text in (("sys/net/ipv4/ip_forward", "7\n"), ("self/oom_score_adj", "0\n"),
                      ("keys", "fake\n")):
        (vol / rel).parent.mkdir(parents=True, exist_ok=True)
        (vol / rel).write_text(text)
    ct.add_mount("/proc", "bind", vol, ["rbind", "rw"])
    ct.linux["sysctl"] = {"net.ipv4.ip_forward": "1"}
    ct.process["oomScoreAdj"] = 123
    ct.probe_args("cat", "/proc/sys/net/ipv4/ip_forward")
    res = ct.run()
    assert (vol / "sys/net/ipv4/ip_forward").read_text() == "7\n", \
        "the sysctl was written to a file of the volume, not to the kernel"
    assert (vol / "self/oom_score_adj").read_text() == "0\n", \
        "oomScoreAdj was written to a file of the volume, not to the kernel"
    if IS_LAMINA or res.returncode != 0:
        err = one_line_error(res)
        assert not ct.has_state()
        if IS_LAMINA:
            assert f"bind mount of {vol} on /proc refused" in err, err


def fake_proc_volume(ct, name="procvol"):
    """A host directory dressed up as /proc: the files the runtime writes to."""
    vol = ct.tmp / name
    for rel, text in (("sys/net/ipv4/ip_forward", "7\n"), ("self/oom_score_adj", "0\n"),
                      ("keys", "fake\n")):
        (vol / rel).parent.mkdir(parents=True, exist_ok=True)
        (vol / rel).write_text(text)
    return vol


def run_refused_over_proc(ct, vol, *needles):
    """Runs with a sysctl and oomScoreAdj: refused with one line naming the mount (lamina),
    nothing written into the volume, no state (the fixture checks cgroups and mounts)."""
    before = {p: p.read_text() for p in vol.rglob("*") if p.is_file()}
    ct.linux["sysctl"] = {"net.ipv4.ip_forward": "1"}
    ct.process["oomScoreAdj"] = 123
    ct.probe_args("cat", "/proc/sys/net/ipv4/ip_forward")
    res = ct.run()
    assert {p: p.read_text() for p in vol.rglob("*") if p.is_file()} == before, \
        "the runtime wrote into a volume standing in for /proc"
    err = one_line_error(res)
    if IS_LAMINA:
        for needle in needles:
            assert needle in err, err
    assert not ct.has_state()
    return err


@pytest.mark.parametrize("link", ["/proc", "../proc", "/proc/../proc/"])
def test_bind_mount_through_symlink_to_proc(ct, link):
    """CVE-2019-16884 through the image: /data is a symlink to /proc, and a volume is mounted
    on /data after proc. Checking the destination as written would let it pass; it lands on
    the container's /proc. Defence: the /proc rule is applied again at mount time, to where
    the target really is (resolved in the rootfs) against where /proc leads."""
    vol = fake_proc_volume(ct)
    os.symlink(link, ct.rootfs / "data")
    ct.add_mount("/data", "bind", vol, ["rbind", "rw"])
    run_refused_over_proc(ct, vol, "/data", "it leads to /proc", "refused")


def test_bind_mount_through_symlink_inside_proc(ct):
    """Same, inside /proc: /data -> /proc/sys, and the volume on /data would take the
    sysctls (the runtime writes /proc/sys/net/...)."""
    vol = fake_proc_volume(ct)
    os.symlink("/proc/sys", ct.rootfs / "data")
    ct.add_mount("/data", "bind", vol / "sys", ["rbind", "rw"])
    run_refused_over_proc(ct, vol, "/data", "it leads to /proc/sys", "inside /proc")


@pytest.mark.parametrize("dest,sub", [("/proc/sys", "sys"), ("/proc/self", "self"),
                                      ("//proc/./sys/net/", "sys/net")])
def test_bind_mount_inside_proc_refused(ct, dest, sub):
    """A volume inside /proc (not one of the lxcfs files): refused, the runtime's sysctl
    and oomScoreAdj never reach its files."""
    vol = fake_proc_volume(ct)
    ct.add_mount(dest, "bind", vol / sub, ["rbind", "rw"])
    run_refused_over_proc(ct, vol, dest, "inside /proc")


@pytest.mark.parametrize("type_", ["tmpfs", "sysfs"])
def test_other_filesystem_on_proc_refused(ct, type_):
    """Not a bind, but a filesystem that is not proc on /proc (after the real one): refused
    when the config is read, before anything is created."""
    ct.add_mount("/proc", type_, type_)
    ct.linux["sysctl"] = {"net.ipv4.ip_forward": "1"}
    res = ct.run()
    err = one_line_error(res)
    if IS_LAMINA:
        assert "mounts[" in err and "/proc" in err and "refused" in err, err
    assert not ct.has_state()


def test_bind_mount_on_proc_symlink_target(ct):
    """The image's /proc is a symlink to /fakeproc; proc is mounted there (through the
    symlink) and then a volume on /fakeproc by its own name would cover it. Defence: the
    target is compared with where /proc leads, not with the string "/proc". (runc refuses
    the symlinked /proc itself.)"""
    vol = fake_proc_volume(ct)
    shutil.rmtree(ct.rootfs / "proc")
    (ct.rootfs / "fakeproc").mkdir()
    os.symlink("/fakeproc", ct.rootfs / "proc")
    ct.add_mount("/fakeproc", "bind", vol, ["rbind", "rw"])
    run_refused_over_proc(ct, vol, "/fakeproc", "it leads to /proc")


def test_mount_covering_proc_refused(ct):
    """The image's /proc is a symlink to /a/proc; proc is mounted there, and then a volume
    on /a would hide it and put its own proc/ in its place. Defence: no mount may cover a
    proc already mounted at where /proc leads."""
    vol = ct.tmp / "avol"
    fake_proc_volume(ct, "avol/proc")
    shutil.rmtree(ct.rootfs / "proc")
    (ct.rootfs / "a" / "proc").mkdir(parents=True)
    os.symlink("/a/proc", ct.rootfs / "proc")
    ct.add_mount("/a", "bind", vol, ["rbind", "rw"])
    run_refused_over_proc(ct, vol, "/a", "cover the container's /proc")


def test_lxcfs_style_files_over_proc_allowed(ct):
    """What lxcfs does, and runc allows: a file bound over /proc/meminfo or /proc/uptime (a
    per-container view of the machine). It must keep working."""
    fake = ct.tmp / "lxcfs"
    fake.mkdir()
    (fake / "meminfo").write_text("MemTotal: 12345 kB\n")
    (fake / "uptime").write_text("42.00 41.00\n")
    ct.add_mount("/proc/meminfo", "bind", fake / "meminfo", ["bind", "ro"])
    ct.add_mount("/proc/uptime", "bind", fake / "uptime", ["bind", "ro"])
    res, lines = sh_lines(ct, "/probe cat /proc/meminfo; /probe cat /proc/uptime")
    res.check()
    assert lines[:2] == ["MemTotal: 12345 kB", "42.00 41.00"], lines


# ---------------------------------------------------------------------------
# 5. inheritable capabilities (CVE-2022-29162 class)

def caps_of(rep):
    return {k: int(v, 16) for k, v in rep["caps"].items()}


def test_oci_spec_default_has_no_inheritable_caps(ct):
    """CVE-2022-29162: `runc spec` used to fill the inheritable set, so a non-root process
    exec'ing a file with inheritable file capabilities gained them. The default config
    must have no inheritable or ambient capabilities, and a container run from it shows
    CapInh = CapAmb = 0. Defence: lm_spec_default lists bounding/effective/permitted only;
    set_caps installs exactly the config's (empty) inheritable set."""
    gen = ct.tmp / "gen"
    gen.mkdir()
    conftest.run(list(OCI) + ["spec"], cwd=gen).check()
    spec = json.loads((gen / "config.json").read_text())
    capsj = spec["process"].get("capabilities", {})
    assert not capsj.get("inheritable"), capsj
    if IS_LAMINA:  # runc 1.1.5 lists ambient ones: without inheritable they cannot be raised
        assert not capsj.get("ambient"), capsj
    spec["process"]["args"] = ["/probe"]
    spec["process"]["terminal"] = False
    spec.setdefault("linux", {})["cgroupsPath"] = ct.config["linux"]["cgroupsPath"]
    ct.config = spec
    rep = ct.run().check().json()
    c = caps_of(rep)
    assert c["CapInh"] == 0 and c["CapAmb"] == 0, c
    assert c["CapPrm"] != 0


def test_exec_cap_leaves_inheritable_empty(ct):
    """CVE-2022-29162 through exec: `exec --cap CAP_SYS_ADMIN` adds to bounding, effective
    and permitted, never to inheritable (nor ambient). Defence: override_process sets the
    three sets only; set_caps installs the config's empty inheritable set."""
    ct.start_sleeper(30)
    rep = ct.exec("--cap", "CAP_SYS_ADMIN", "--", "/probe").check().json()
    c = caps_of(rep)
    assert c["CapPrm"] & (1 << 21), c
    assert c["CapInh"] == 0 and c["CapAmb"] == 0, c
    rep = ct.exec("--cap", "CAP_SYS_ADMIN", "--user", "1000:1000", "--", "/probe").check().json()
    c = caps_of(rep)
    assert c == {**c, "CapInh": 0, "CapAmb": 0, "CapPrm": 0, "CapEff": 0}, c


@lamina_only("lamina run: the image CLI")
def test_lamina_run_default_has_no_inheritable_caps(ct):
    """CVE-2022-29162 for `lamina run IMAGE`: the config lamina builds from an image
    (lm_spec_default + the image's config, oci_config.c) has an empty inheritable and
    ambient set, also for a non-root image user and with --cap-add."""
    from test_images import add_image, tar_dir
    lay = ct.tmp / "layout"
    (lay / "blobs" / "sha256").mkdir(parents=True)
    (lay / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')
    (lay / "index.json").write_text('{"schemaVersion": 2, "manifests": []}')
    add_image(lay, "app", [tar_dir(ct.rootfs)], config={"Cmd": ["/probe"], "Env": ["PATH=/bin"]})
    env = {k: v for k, v in os.environ.items() if not k.startswith("LAMINA_")}
    base = [OCI[0], "--root", str(ct.tmp / "lroot"), "--state", str(ct.tmp / "lstate")]
    run(base + ["image", "load", str(lay)], env=env, timeout=60).check()
    for extra in ([], ["--user", "1000"], ["--cap-add", "CAP_SYS_ADMIN"]):
        res = run(base + ["run", "--rm", *extra, "localhost/layout:app"], env=env, timeout=60)
        c = caps_of(res.check().json())
        assert c["CapInh"] == 0 and c["CapAmb"] == 0, (extra, c)
    assert mounts_under(ct.tmp / "lroot") == []


# ---------------------------------------------------------------------------
# 6. sysctls (CVE-2022-0811 class)

def host_sysctl(name):
    return Path("/proc/sys/" + name.replace(".", "/")).read_text()


def run_sysctls(ct, sysctls):
    """`oci run` with linux.sysctl; host core_pattern and ip_forward checked unchanged
    (and put back if they were not)."""
    core, fwd = host_sysctl("kernel.core_pattern"), host_sysctl("net.ipv4.ip_forward")
    ct.linux["sysctl"] = sysctls
    ct.probe_args("sysctl", "kernel.core_pattern")
    try:
        res = ct.run()
        after = (host_sysctl("kernel.core_pattern"), host_sysctl("net.ipv4.ip_forward"))
    finally:
        if host_sysctl("kernel.core_pattern") != core:
            Path("/proc/sys/kernel/core_pattern").write_text(core)
        if host_sysctl("net.ipv4.ip_forward") != fwd:
            Path("/proc/sys/net/ipv4/ip_forward").write_text(fwd)
    assert after == (core, fwd), "a container changed the host's sysctls"
    return res


def test_sysctl_core_pattern_refused(ct):
    """CVE-2022-0811 (cr8escape) wanted kernel.core_pattern = "|/payload": a host-wide
    setting that makes the kernel run a program as host root. It is in no namespace of
    the container: refused with a clear error. Defence: sysctl_allowed admits only
    the ipc, net and uts keys of namespaces the container creates."""
    res = run_sysctls(ct, {"kernel.core_pattern": "|/lamina-escape-test %p"})
    err = one_line_error(res)
    if IS_LAMINA:
        assert "kernel.core_pattern" in err and "not allowed" in err, err
    assert not ct.has_state()


@pytest.mark.parametrize("value,refused", [
    ("1\nkernel.core_pattern=|/lamina-escape-test", True),
    ("1\rkernel.core_pattern=|/lamina-escape-test", True),
    ("1+kernel.core_pattern=|/lamina-escape-test", True),
    # the kernel stops an integer at whitespace: "1" is set, the rest ignored
    ("1 kernel.core_pattern=|/lamina-escape-test", False),
])
def test_sysctl_value_injection_refused(ct, value, refused):
    """CVE-2022-0811: CRI-O joined "key=value" pairs with "+", so a value carrying
    "+kernel.core_pattern=..." set a second, host-wide sysctl. Here the namespaced
    net.ipv4.ip_forward carries a second assignment after a newline, a CR, a "+" or a
    space: never anything but ip_forward is set, and the first three are refused with a
    clear error. Defence: apply_sysctls refuses CR and LF in values; each key is its own
    /proc/sys file written once, never a parsed list (the kernel refuses "1+...")."""
    res = run_sysctls(ct, {"net.ipv4.ip_forward": value})
    if refused and IS_RUNC and ("\n" in value or "\r" in value):
        refused = False  # runc writes it; the kernel takes "1" and stops at the newline
    if refused:
        err = one_line_error(res)
        if IS_LAMINA and ("\n" in value or "\r" in value):
            assert "invalid" in err, err
        assert not ct.has_state()
    elif res.returncode == 0:
        assert res.stdout == CORE_PATTERN, "the container's core_pattern changed"


@pytest.mark.parametrize("key", [
    "net.ipv4.ip_forward=1+kernel.core_pattern",
    "net/../kernel/core_pattern",
    "net.ipv4/../../kernel/core_pattern",
    "net...kernel.core_pattern",
    "net.ipv4.ip_forward\nkernel.core_pattern",
])
def test_sysctl_key_injection_refused(ct, key):
    """CVE-2022-0811 through the key: a key that starts like a namespaced one ("net.")
    but walks out of it ("/..", "..", "=", "+", a newline) to kernel.core_pattern.
    Defence: apply_sysctls refuses "/" and ".." in keys; the rest names no sysctl file."""
    res = run_sysctls(ct, {key: "|/lamina-escape-test"})
    one_line_error(res)
    assert not ct.has_state()


# ---------------------------------------------------------------------------
# the image's files that the runtime reads inside the container

@runc_differs("runc 1.1.5 blocks on it too")
def test_passwd_fifo_does_not_stall_the_runtime(ct):
    """Image files are untrusted input: the runtime reads the image's /etc/passwd (for
    HOME) inside the container. If /etc/passwd is a FIFO, a blocking open stalls the
    runtime's process in the container for as long as the container likes - a denial of
    service, and the deterministic pause an exploit needs to win a race against the
    runtime (see test_exec_of_proc_self_exe_script, which uses the loader's LD_PRELOAD
    for the same). Defence expected: open with O_NONBLOCK and refuse anything but a
    regular file (then HOME=/, or a clear error)."""
    passwd = ct.rootfs / "etc" / "passwd"
    passwd.unlink()
    os.mkfifo(passwd)
    assert not any(e.startswith("HOME=") for e in ct.process["env"])
    ct.probe_args("exit", "0")
    ct.write_config()
    res = ct.oci("run", "--bundle", ct.bundle, ct.id, timeout=5)
    if res.returncode != 0:
        one_line_error(res)
