"""Integration test harness: real containers, run as root, checked from inside.

The runtime under test is a command prefix: LAMINA_OCI (default "<build>/lamina oci",
or "<build>/src/lamina oci" if that is where meson put it; build = LAMINA_BUILD,
relative to the repository root, default "build"). The probe is LAMINA_PROBE or
<build>/tests/probe. The suite also runs against runc (LAMINA_OCI=runc) to validate
the tests themselves; expectations that only lamina has (its error wording, its OOM
report, ...) are marked `lamina_only`.

Every test gets its own bundle (busybox-static rootfs + the static probe), its own
container id, its own --root state directory and its own cgroupsPath
(/lamina-test/<id>; LAMINA_TEST_CGROUP_PARENT names another parent, for sessions that
run at the same time). The finalizer force-deletes what the test created and then fails
the test if anything leaked: a state directory, a mount under the bundle, a cgroup.

Fixture `ct` (a Container):
    ct.config            the config.json dict (runc-spec-like defaults, runs /probe);
                         ct.process / ct.linux / ct.resources() are shortcuts; it is
                         written by every ct.create()/ct.run() (write_config=False to
                         keep a hand-written file, ct.write_config(text=...) for junk)
    ct.probe_args(*a)    process.args = ["/probe", *a];  ct.set_args(*argv) for others
    ct.add_mount(dst, type, src, opts), ct.remove_namespace(t),
    ct.set_namespace_path(t, path)
    ct.probe(*a)         `oci run` of /probe a..., asserts exit 0, returns parsed JSON
    ct.run(*flags)       `oci run --bundle B [flags] ID` -> Result(returncode, stdout,
                         stderr, .check(), .json())
    ct.create/start/state/status/kill/delete/exec/oci(...)   the other commands
    ct.start_sleeper(s)  create + start `/probe sleep s`, returns the state dict
    ct.output()          what a created container has written to its stdout so far
    ct.new_id()          a second id (its own cgroupsPath), cleaned up with ct
    ct.host_mount(..., target=)   a host mount undone at teardown
    ct.cleanups          callables run at teardown (after delete, before leak checks)
Fixture `console_socket`: make() -> a --console-socket server that receives the pty
master (SCM_RIGHTS) and collects the terminal output.
Helpers: run(args), probe_json(ct, *args), one_line_error(res), wait_for(pred),
lamina_only(reason) / runc_differs(reason) decorators, IS_LAMINA / IS_RUNC.

Typical use:

    def test_hostname(ct):
        ct.config["hostname"] = "box"
        out = ct.probe()                  # `oci run` of /probe, parsed JSON
        assert out["hostname"] == "box"

    def test_lifecycle(ct):
        ct.probe_args("sleep", "5")
        ct.create().check()
        assert ct.state()["status"] == "created"
"""

import copy
import json
import os
import shlex
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
# A relative LAMINA_BUILD (e.g. "build-asan") is relative to the repository root.
BUILD = REPO / os.environ.get("LAMINA_BUILD", "build")
if os.environ.get("LAMINA_OCI"):
    OCI = shlex.split(os.environ["LAMINA_OCI"])
    if "/" in OCI[0]:
        OCI[0] = str(Path(OCI[0]).resolve())  # tests run some commands in other dirs
else:
    # meson puts the binary in <build>/src unless the top-level meson.build copies it up.
    _bin = BUILD / "lamina"
    if not _bin.exists() and (BUILD / "src" / "lamina").exists():
        _bin = BUILD / "src" / "lamina"
    OCI = [str(_bin), "oci"]
PROBE = Path(os.environ.get("LAMINA_PROBE", str(BUILD / "tests" / "probe"))).resolve()
BUSYBOX = Path(os.environ.get("LAMINA_BUSYBOX", "/bin/busybox"))

IS_RUNC = Path(OCI[0]).name == "runc"
IS_LAMINA = not IS_RUNC

# Seconds any single runtime command may take before the test fails.
CMD_TIMEOUT = 20

CGROUP_ROOT = Path("/sys/fs/cgroup")
# Sessions that run at the same time on one machine each name their own parent (the
# end-of-session leak check kills and removes whatever is left under it).
CGROUP_PARENT = os.environ.get("LAMINA_TEST_CGROUP_PARENT", "lamina-test")


def lamina_only(reason="lamina-specific behaviour"):
    """Decorator: skip under runc (expectations only lamina has)."""
    return pytest.mark.skipif(IS_RUNC, reason=f"lamina only: {reason}")


def runc_differs(reason):
    """Decorator: runc behaves differently here (documented in the reason)."""
    return pytest.mark.skipif(IS_RUNC, reason=f"runc differs: {reason}")


# ---------------------------------------------------------------------------
# host facts

def cgroup_mode():
    """'v2' (unified), 'hybrid' or 'v1'."""
    if (CGROUP_ROOT / "cgroup.controllers").exists():
        return "v2"
    if (CGROUP_ROOT / "unified" / "cgroup.controllers").exists():
        return "hybrid"
    return "v1"


CGROUP_MODE = cgroup_mode()
CGROUP_V1 = CGROUP_MODE in ("v1", "hybrid")


def v1_controller_dirs():
    """Mount points of the v1 hierarchies plus the v2 one, if any."""
    dirs = []
    if CGROUP_MODE == "v2":
        return [CGROUP_ROOT]
    for d in sorted(CGROUP_ROOT.iterdir()):
        if d.is_dir() and not d.is_symlink():
            dirs.append(d)
    return dirs


def host_cgroup_dir(controller, cgroups_path):
    """Host directory of a container's cgroup for one v1 controller (v2: ignored)."""
    rel = cgroups_path.lstrip("/")
    if CGROUP_MODE == "v2":
        return CGROUP_ROOT / rel
    return CGROUP_ROOT / controller / rel


def busybox_applets():
    out = subprocess.run([str(BUSYBOX), "--list"], capture_output=True, text=True, check=True)
    return [a for a in out.stdout.split() if a and a != "busybox"]


# ---------------------------------------------------------------------------
# running commands

class Result:
    """Outcome of one command: returncode, stdout, stderr (text)."""

    def __init__(self, args, returncode, stdout, stderr):
        self.args = args
        self.returncode = returncode
        self.stdout = stdout
        self.stderr = stderr

    def check(self):
        if self.returncode != 0:
            raise AssertionError(
                f"{shlex.join(map(str, self.args))} exited {self.returncode}\n"
                f"stdout: {self.stdout}\nstderr: {self.stderr}")
        return self

    def json(self):
        try:
            return json.loads(self.stdout)
        except json.JSONDecodeError as e:
            raise AssertionError(
                f"{shlex.join(map(str, self.args))}: no JSON ({e})\n"
                f"rc={self.returncode}\nstdout: {self.stdout!r}\nstderr: {self.stderr!r}")

    def __repr__(self):
        return (f"Result(rc={self.returncode}, args={self.args!r}, stdout={self.stdout!r}, "
                f"stderr={self.stderr!r})")


def run(args, *, timeout=CMD_TIMEOUT, input=None, cwd=None, env=None, stdin=None,
        out_path=None, pass_fds=()):
    """Runs a command and returns a Result.

    stdout/stderr go to files, not pipes: a container started by the command may
    inherit them and outlive it, and a pipe would then block us until it exits.
    """
    args = [str(a) for a in args]
    tmpdir = tempfile.mkdtemp(prefix="lamina-run-")
    out_file = Path(out_path) if out_path else Path(tmpdir) / "out"
    err_file = Path(tmpdir) / "err"
    try:
        with open(out_file, "wb") as out, open(err_file, "wb") as err:
            if input is not None:
                stdin_arg = subprocess.PIPE
            elif stdin is not None:
                stdin_arg = stdin
            else:
                stdin_arg = subprocess.DEVNULL
            p = subprocess.Popen(args, stdin=stdin_arg, stdout=out, stderr=err, cwd=cwd,
                                 env=env, start_new_session=True, pass_fds=pass_fds)
            try:
                p.communicate(input=input.encode() if isinstance(input, str) else input,
                              timeout=timeout)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()
                raise AssertionError(f"timeout after {timeout}s: {shlex.join(args)}\n"
                                     f"stdout: {out_file.read_text(errors='replace')}\n"
                                     f"stderr: {err_file.read_text(errors='replace')}")
        return Result(args, p.returncode, out_file.read_text(errors="replace"),
                      err_file.read_text(errors="replace"))
    finally:
        shutil.rmtree(tmpdir, ignore_errors=True)


def one_line_error(res):
    """Asserts a failed runtime command explains itself on stderr.

    lamina prints exactly one line; runc's logrus output is one line too but may be
    preceded by its own chatter, so under runc we only require it is non-empty.
    """
    assert res.returncode != 0, res
    err = res.stderr.strip()
    assert err, f"no error message: {res}"
    if IS_LAMINA:
        assert len(err.splitlines()) == 1, f"error is not one line: {err!r}"
    return err


def assert_rlimit(rlimits, name, soft, hard):
    """The probe's view of one rlimit equals (soft, hard).

    runc 1.1.5 (Go >= 1.19 raises its own NOFILE soft limit to the hard one) sometimes
    leaks that raised soft limit into the container: tolerated under runc only.
    """
    got = rlimits[name]
    if IS_RUNC and name == "RLIMIT_NOFILE" and got == {"soft": hard, "hard": hard}:
        return
    assert got == {"soft": soft, "hard": hard}, f"{name}: {got}"


def wait_for(pred, timeout=5.0, interval=0.02, what="condition"):
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(interval)


# ---------------------------------------------------------------------------
# config

def default_cgroups_path(container_id):
    return f"/{CGROUP_PARENT}/{container_id}"


def default_config(container_id, hostname="lamina-test"):
    """A config.json modelled on `runc spec`, non-terminal, running /probe."""
    caps = ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"]
    return {
        "ociVersion": "1.0.2",
        "process": {
            "terminal": False,
            "user": {"uid": 0, "gid": 0},
            "args": ["/probe"],
            "env": [
                "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                "TERM=xterm",
            ],
            "cwd": "/",
            "capabilities": {
                "bounding": list(caps),
                "effective": list(caps),
                "permitted": list(caps),
            },
            "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}],
            "noNewPrivileges": True,
        },
        "root": {"path": "rootfs", "readonly": True},
        "hostname": hostname,
        "mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc"},
            {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
             "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
            {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
             "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620",
                         "gid=5"]},
            {"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
             "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]},
            {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue",
             "options": ["nosuid", "noexec", "nodev"]},
            {"destination": "/sys", "type": "sysfs", "source": "sysfs",
             "options": ["nosuid", "noexec", "nodev", "ro"]},
            {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
             "options": ["nosuid", "noexec", "nodev", "relatime", "ro"]},
        ],
        "linux": {
            "cgroupsPath": default_cgroups_path(container_id),
            "resources": {"devices": [{"allow": False, "access": "rwm"}]},
            "namespaces": [{"type": t} for t in
                           ("pid", "network", "ipc", "uts", "mount", "cgroup")],
            "maskedPaths": [
                "/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys",
                "/proc/latency_stats", "/proc/timer_list", "/proc/timer_stats",
                "/proc/sched_debug", "/sys/firmware", "/proc/scsi",
            ],
            "readonlyPaths": [
                "/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger",
            ],
        },
    }


# ---------------------------------------------------------------------------
# leak checks

def mounts_under(path):
    """Host mount points at or below path."""
    path = os.path.realpath(str(path))
    found = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            mp = line.split()[4].encode().decode("unicode_escape")
            if mp == path or mp.startswith(path + "/"):
                found.append(mp)
    return found



def unmount_all_under(path):
    """Lazily unmount whatever is mounted under path (deepest first); returns what was."""
    leaked = mounts_under(path)
    for mp in sorted(leaked, key=len, reverse=True):
        subprocess.run(["umount", "-l", mp], capture_output=True)
    return leaked


def mount_at(out, path):
    """The last (topmost) mount at path in the probe's mount list, or None."""
    found = [m for m in out["mounts"] if m["mount_point"] == path]
    return found[-1] if found else None


def opts(m):
    return set(m["options"].split(","))


def super_opts(m):
    return set(m["super_options"].split(","))

def cgroup_dirs_for(cgroups_path):
    """Existing host cgroup directories for a cgroupsPath, in any hierarchy."""
    rel = cgroups_path.lstrip("/")
    if not rel:
        return []
    found = []
    for d in v1_controller_dirs():
        p = d / rel
        if p.is_dir():
            found.append(p)
    return found


def state_entries(root):
    """What a runtime left in its --root (hidden files, e.g. a lock, do not count)."""
    try:
        return sorted(n for n in os.listdir(root) if not n.startswith("."))
    except FileNotFoundError:
        return []


def remove_cgroup_tree(p):
    """Best-effort removal of a leaked cgroup directory (deepest first)."""
    for dirpath, _dirs, _files in sorted(os.walk(p), key=lambda t: -len(t[0])):
        try:
            os.rmdir(dirpath)
        except OSError:
            pass


# ---------------------------------------------------------------------------
# the container under test

_counter = [0]


def unique_id(prefix="lt"):
    _counter[0] += 1
    return f"{prefix}-{os.getpid()}-{_counter[0]}"


class Container:
    """A bundle plus the runtime commands to drive it.

    Attributes: id, bundle, rootfs, root (the --root state dir), config (a dict,
    written to config.json by every create/run unless write_config=False).
    """

    def __init__(self, tmp_path):
        self.tmp = tmp_path
        self.id = unique_id()
        self.bundle = tmp_path / "bundle"
        self.rootfs = self.bundle / "rootfs"
        self.root = tmp_path / "state"
        self.config = default_config(self.id)
        self.ids = {self.id}
        self.cgroup_paths = {self.config["linux"]["cgroupsPath"]}
        self.create_out = tmp_path / "create.out"  # stdio of a created container
        self.cleanups = []  # callables run at teardown, after delete, before leak checks
        self.root.mkdir(parents=True)
        make_rootfs(self.rootfs)

    # -- config --------------------------------------------------------------

    @property
    def process(self):
        return self.config["process"]

    @property
    def linux(self):
        return self.config["linux"]

    def set_args(self, *args):
        self.process["args"] = [str(a) for a in args]

    def probe_args(self, *args):
        self.set_args("/probe", *args)

    def add_mount(self, destination, type_, source, options=None):
        m = {"destination": destination, "type": type_, "source": str(source)}
        if options is not None:
            m["options"] = list(options)
        self.config["mounts"].append(m)
        return m

    def remove_namespace(self, ns_type):
        self.linux["namespaces"] = [n for n in self.linux["namespaces"]
                                    if n["type"] != ns_type]

    def set_namespace_path(self, ns_type, path):
        for n in self.linux["namespaces"]:
            if n["type"] == ns_type:
                n["path"] = str(path)
                return
        self.linux["namespaces"].append({"type": ns_type, "path": str(path)})

    def resources(self):
        return self.linux.setdefault("resources", {})

    def config_for(self, cid=None):
        """The config for container cid: another id gets its own cgroupsPath."""
        cfg = self.config
        cid = cid or self.id
        if cid != self.id and cfg.get("linux", {}).get("cgroupsPath") == default_cgroups_path(
                self.id):
            cfg = copy.deepcopy(cfg)
            cfg["linux"]["cgroupsPath"] = default_cgroups_path(cid)
        return cfg

    def write_config(self, text=None, cid=None):
        """Writes config.json: the dict, or raw text (for malformed-input tests)."""
        cfg = self.config_for(cid)
        if isinstance(cfg.get("linux"), dict) and isinstance(cfg["linux"].get("cgroupsPath"),
                                                              str):
            self.cgroup_paths.add(cfg["linux"]["cgroupsPath"])
        data = text if text is not None else json.dumps(cfg, indent=1)
        (self.bundle / "config.json").write_text(data)

    def new_id(self):
        """Another id whose container is cleaned up with this one's."""
        cid = unique_id()
        self.ids.add(cid)
        return cid

    # -- runtime commands ----------------------------------------------------

    def oci(self, *args, root=True, **kw):
        prefix = list(OCI) + (["--root", str(self.root)] if root else [])
        return run(prefix + [str(a) for a in args], **kw)

    def create(self, *extra, cid=None, write_config=True, **kw):
        if write_config:
            self.write_config(cid=cid)
        kw.setdefault("out_path", self.create_out if not cid or cid == self.id
                      else self.tmp / f"create-{cid}.out")
        return self.oci("create", "--bundle", self.bundle, *extra, cid or self.id, **kw)

    def start(self, cid=None, **kw):
        return self.oci("start", cid or self.id, **kw)

    def state(self, cid=None):
        return self.oci("state", cid or self.id).check().json()

    def status(self, cid=None):
        return self.state(cid)["status"]

    def kill(self, sig=None, *extra, cid=None, **kw):
        args = ["kill", *extra, cid or self.id]
        if sig is not None:
            args.append(str(sig))
        return self.oci(*args, **kw)

    def delete(self, *extra, cid=None, **kw):
        return self.oci("delete", *extra, cid or self.id, **kw)

    def run(self, *extra, cid=None, write_config=True, **kw):
        """`oci run` in the foreground (or --detach if given in extra)."""
        if write_config:
            self.write_config(cid=cid)
        return self.oci("run", "--bundle", self.bundle, *extra, cid or self.id, **kw)

    def exec(self, *args, cid=None, **kw):
        """`oci exec [options...] ID ARGS...`: pass options then '--', then args.

        ct.exec("--env", "A=1", "--", "/probe") -> exec --env A=1 ID /probe
        """
        args = list(args)
        if "--" in args:
            i = args.index("--")
            opts, cmd = args[:i], args[i + 1:]
        else:
            opts, cmd = [], args
        return self.oci("exec", *opts, cid or self.id, *cmd, **kw)

    def probe(self, *args, expect_rc=0):
        """`oci run` of /probe ARGS; returns the parsed JSON it printed."""
        self.probe_args(*args)
        res = self.run()
        if expect_rc is not None:
            assert res.returncode == expect_rc, res
        return res.json()

    def output(self, cid=None):
        """What a created container wrote to its stdout so far."""
        f = self.create_out if not cid or cid == self.id else self.tmp / f"create-{cid}.out"
        return f.read_text(errors="replace") if f.exists() else ""

    def wait_status(self, status, cid=None, timeout=5.0):
        wait_for(lambda: self.status(cid) == status, timeout=timeout,
                 what=f"status {status}")

    def start_sleeper(self, seconds=10, cid=None):
        """create + start /probe sleep; returns the state once running."""
        self.probe_args("sleep", seconds)
        self.create(cid=cid).check()
        self.start(cid=cid).check()
        st = self.state(cid)
        assert st["status"] == "running", st
        return st

    def host_mount(self, *mount_args, target):
        """Mounts something on the host (e.g. under the bundle); unmounted at teardown."""
        Path(target).mkdir(parents=True, exist_ok=True)
        subprocess.run(["mount", *map(str, mount_args), str(target)], check=True,
                       capture_output=True)
        self.cleanups.append(lambda: subprocess.run(["umount", "-l", str(target)],
                                                    check=True, capture_output=True))

    def has_state(self, cid=None):
        """Whether the runtime keeps anything for cid under --root."""
        cid = cid or self.id
        return any(n == cid or n.startswith(cid + ".") for n in state_entries(self.root))

    def host_cgroup(self, controller):
        return host_cgroup_dir(controller, self.linux["cgroupsPath"])

    # -- teardown ------------------------------------------------------------

    def teardown(self):
        problems = []
        for cid in sorted(self.ids):
            if self.has_state(cid):
                res = self.oci("delete", "--force", cid, timeout=CMD_TIMEOUT)
                if res.returncode != 0 and self.has_state(cid):
                    problems.append(f"delete --force {cid}: {res.stderr.strip()}")
        for fn in reversed(self.cleanups):
            try:
                fn()
            except Exception as e:  # noqa: BLE001 - report, keep cleaning
                problems.append(f"cleanup {fn}: {e}")
        left = state_entries(self.root)
        if left:
            problems.append(f"state left behind in {self.root}: {left}")
            for name in left:
                p = self.root / name
                if p.is_dir() and not p.is_symlink():
                    shutil.rmtree(p, ignore_errors=True)
                else:
                    p.unlink(missing_ok=True)
        # Cgroups are removed asynchronously by nobody: if processes are gone the
        # directory must be gone when delete returns. Allow a moment for exiting tasks.
        for cg in sorted(self.cgroup_paths):
            left = []
            try:
                wait_for(lambda: not cgroup_dirs_for(cg), timeout=2.0)
            except AssertionError:
                left = cgroup_dirs_for(cg)
            for d in left:
                problems.append(f"cgroup left behind: {d}")
                kill_cgroup_tasks(d)
                remove_cgroup_tree(d)
        leaked = unmount_all_under(self.tmp)
        if leaked:
            problems.append(f"mounts left behind: {leaked}")
        return problems


def kill_cgroup_tasks(d):
    try:
        for pid in (d / "cgroup.procs").read_text().split():
            try:
                os.kill(int(pid), signal.SIGKILL)
            except OSError:
                pass
        time.sleep(0.1)
    except OSError:
        pass


_rootfs_template = {}


def make_rootfs(rootfs):
    """busybox-static with applet links, /probe, passwd/group, empty mount points."""
    rootfs.mkdir(parents=True)
    for d in ("bin", "etc", "proc", "sys", "dev", "tmp", "root", "home/test"):
        (rootfs / d).mkdir(parents=True, exist_ok=True)
    os.chmod(rootfs / "tmp", 0o1777)
    shutil.copy2(BUSYBOX, rootfs / "bin" / "busybox")
    if "applets" not in _rootfs_template:
        _rootfs_template["applets"] = busybox_applets()
    for a in _rootfs_template["applets"]:
        link = rootfs / "bin" / a
        if not link.exists():
            os.symlink("busybox", link)
    shutil.copy2(PROBE, rootfs / "probe")
    os.chmod(rootfs / "probe", 0o755)
    (rootfs / "etc" / "passwd").write_text(
        "root:x:0:0:root:/root:/bin/sh\n"
        "test:x:1000:1000:test:/home/test:/bin/sh\n"
        "nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n")
    (rootfs / "etc" / "group").write_text(
        "root:x:0:\ntty:x:5:\naudio:x:29:test\ntest:x:1000:\nnogroup:x:65534:\n")
    os.chown(rootfs / "home" / "test", 1000, 1000)


# ---------------------------------------------------------------------------
# fixtures

@pytest.fixture(scope="session", autouse=True)
def _preflight():
    if os.geteuid() != 0:
        pytest.skip("integration tests need root")
    if not PROBE.is_file():
        pytest.fail(f"probe binary not found at {PROBE} (build it, or set LAMINA_PROBE)",
                    pytrace=False)
    if not shutil.which(OCI[0]) and not Path(OCI[0]).is_file():
        pytest.fail(f"runtime not found: {OCI[0]} (build it, or set LAMINA_OCI)",
                    pytrace=False)
    if not BUSYBOX.is_file():
        pytest.fail(f"busybox not found at {BUSYBOX} (apt-get install busybox-static)",
                    pytrace=False)
    yield
    # The shared parent cgroup of all test containers: empty once every test is done.
    leftovers = []
    for d in v1_controller_dirs():
        parent = d / CGROUP_PARENT
        if not parent.is_dir():
            continue
        children = [c.name for c in parent.iterdir() if c.is_dir()]
        if children:
            leftovers.append(f"{parent}: {children}")
            for c in children:
                kill_cgroup_tasks(parent / c)
                remove_cgroup_tree(parent / c)
        try:
            os.rmdir(parent)
        except OSError:
            pass
    if leftovers:
        pytest.fail("cgroups left behind by the suite:\n  " + "\n  ".join(leftovers),
                    pytrace=False)


@pytest.fixture
def ct(tmp_path, request):
    """A fresh bundle and container id; everything is cleaned up and leak-checked."""
    c = Container(tmp_path)
    yield c
    problems = c.teardown()
    if problems:
        pytest.fail("leak check failed:\n  " + "\n  ".join(problems), pytrace=False)
    rep = getattr(request.node, "rep_call", None)
    if rep is not None and rep.passed:
        shutil.rmtree(c.bundle, ignore_errors=True)


@pytest.hookimpl(tryfirst=True, hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    setattr(item, "rep_" + rep.when, rep)


def probe_json(ct, *args):
    """`oci run` of /probe ARGS in ct's bundle; returns the parsed JSON."""
    return ct.probe(*args)


# ---------------------------------------------------------------------------
# terminals

class ConsoleSocket:
    """A --console-socket server: receives the pty master over SCM_RIGHTS and
    collects everything the container writes to its terminal."""

    def __init__(self):
        # sun_path is short (108 bytes): keep it out of pytest's long tmp paths.
        self.dir = tempfile.mkdtemp(prefix="lt-cs-", dir="/tmp")
        self.path = os.path.join(self.dir, "sock")
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(self.path)
        self.sock.listen(4)
        self.masters = []
        self.data = b""
        self.error = None
        self._lock = threading.Lock()
        self._got = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self):
        try:
            self.sock.settimeout(CMD_TIMEOUT)
            conn, _ = self.sock.accept()
            with conn:
                msg, fds, _flags, _addr = socket.recv_fds(conn, 4096, 4)
                if not fds:
                    self.error = f"no fd received (message {msg!r})"
                    self._got.set()
                    return
                self.masters.extend(fds)
                self._got.set()
            master = fds[0]
            while True:
                try:
                    chunk = os.read(master, 4096)
                except OSError:  # EIO once the last slave fd closes
                    break
                if not chunk:
                    break
                with self._lock:
                    self.data += chunk
        except Exception as e:  # noqa: BLE001 - surfaced by wait_fd
            self.error = repr(e)
            self._got.set()

    def wait_fd(self, timeout=CMD_TIMEOUT):
        assert self._got.wait(timeout), "no pty master received on the console socket"
        assert self.error is None, self.error
        return self.masters[0]

    def wait_output(self, timeout=CMD_TIMEOUT):
        """Waits until the terminal reaches EOF (all slave fds closed)."""
        self._thread.join(timeout)
        with self._lock:
            return self.data.decode(errors="replace")

    def output(self):
        with self._lock:
            return self.data.decode(errors="replace")

    def close(self):
        for fd in self.masters:
            try:
                os.close(fd)
            except OSError:
                pass
        self.masters = []
        self.sock.close()
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture
def console_socket():
    servers = []

    def make():
        s = ConsoleSocket()
        servers.append(s)
        return s

    yield make
    for s in servers:
        s.close()


def terminal_json(text):
    """The probe's JSON from terminal output (CRLF line endings, maybe noise)."""
    text = text.replace("\r\n", "\n")
    start = text.find("{")
    end = text.rfind("}")
    assert start >= 0 and end > start, f"no JSON in terminal output: {text!r}"
    return json.loads(text[start:end + 1])
