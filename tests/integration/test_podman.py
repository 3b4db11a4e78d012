"""podman with lamina as its OCI runtime: `podman --runtime <build>/src/lamina-oci`.

podman drives the runtime as it drives runc: conmon runs `lamina-oci create --bundle B
--pid-file F [--console-socket S] [--preserve-fds N] ID`, podman runs `start`, `kill ID
SIG`, `delete --force`, and `exec --process P --detach --pid-file F [--tty
--console-socket S] [--preserve-fds N]` (`--log-format=json --log F` before the command
when the runtime is listed in runtime_supports_json).  Each test runs podman commands as
a user would and checks what the container saw (the static probe is in the image).

podman is isolated from the host's configuration: its own containers.conf, storage.conf
(overlay, graphroot and runroot in a temporary directory), registries.conf (the test
registry on loopback, plain HTTP, marked insecure), policy.json (in $HOME), hooks, lock
files (lock_type "file", not the machine's shared /dev/shm/libpod_lock), network
definitions and tmp dirs, `--cgroup-manager cgroupfs`, `--events-backend file`, and its
containers under this session's cgroup parent.  What podman still touches outside
(by its design, no option moves them): the blob-info cache in /var/lib/containers/cache,
the netavark IPAM database in /run/containers/networks (shared by every rootful podman)
and the drop-ins in /etc/containers/registries.conf.d.  lamina keeps the containers'
runtime state in its default root, /run/lamina, as it would for a user (podman does not
pass `--runtime-flag root=...` to the cleanup process it leaves behind, so another root
would leak state).

This machine needs `default_ulimits` in containers.conf: podman's default RLIMIT_NOFILE
and RLIMIT_NPROC (1048576) are above the hard limits and raising a limit is refused
here.  CONTAINERS_CONF replaces the packaged /usr/share/containers/containers.conf too:
its default_sysctls (net.ipv4.ping_group_range) is repeated in ours.  podman's default network (netavark, a bridge) sets net.ipv4.ip_forward=1 and adds
iptables chains: the one test that uses it restores both and checks that the bridge and
the network namespace are gone.  Everything else runs with `--network none`.

Skipped only when podman is not installed (scripts/deps test installs it); when it is,
anything podman cannot do here is a failure.
"""

import fcntl
import json
import os
import shlex
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

import registry as reg
from conftest import (CGROUP_PARENT, IS_RUNC, OCI, make_rootfs, unmount_all_under,
                      remove_cgroup_tree, kill_cgroup_tasks, run, v1_controller_dirs,
                      wait_for)

PODMAN = shutil.which("podman")
# What a user gives podman: the `lamina-oci` name the build makes next to `lamina`.
LAMINA_OCI = Path(OCI[0]).parent / "lamina-oci"
LAMINA_STATE_ROOT = Path("/run/lamina")  # `lamina oci`'s default --root
PODMAN_TIMEOUT = 60
IP_FORWARD = Path("/proc/sys/net/ipv4/ip_forward")

pytestmark = [
    pytest.mark.skipif(PODMAN is None,
                       reason="podman is not installed (scripts/deps test installs it)"),
    pytest.mark.skipif(IS_RUNC, reason="podman with lamina-oci as its runtime"),
]

EPERM, EFAULT, ENOSYS = 1, 14, 38


# ---------------------------------------------------------------------------
# the image and the registry

@pytest.fixture(scope="module")
def image(tmp_path_factory):
    """busybox + probe + passwd/group (make_rootfs), built with umoci, pushed to a
    registry on loopback; yields its reference.  The registry stops at the end."""
    if reg.MISSING:
        pytest.fail(f"needs {', '.join(reg.MISSING)} (scripts/deps test)", pytrace=False)
    work = tmp_path_factory.mktemp("podman-image")
    layout, rootfs = work / "layout", work / "rootfs"
    make_rootfs(rootfs)
    reg._check(["umoci", "init", "--layout", layout])
    reg._check(["umoci", "new", "--image", f"{layout}:box"])
    reg._check(["umoci", "insert", "--image", f"{layout}:box", rootfs, "/"])
    reg._check(["umoci", "config", "--image", f"{layout}:box", "--config.cmd", "/bin/sh",
                "--config.env", "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"])
    r = reg.Registry(work / "registry", work / "storage").start()
    try:
        ref = f"{r.host}/lamina/box:1"
        reg.push(layout, "box", ref)
        yield ref
    finally:
        r.stop()


# ---------------------------------------------------------------------------
# podman, isolated

def free_subnet():
    """A /24 no address or route of this host overlaps (10.231.N.0/24)."""
    used = subprocess.run(["ip", "-o", "-4", "route", "show", "table", "all"],
                          capture_output=True, text=True).stdout
    used += subprocess.run(["ip", "-o", "-4", "addr"], capture_output=True, text=True).stdout
    start = os.getpid() % 250
    for i in range(250):
        n = (start + i) % 250 + 1
        if f"10.231.{n}." not in used and "10.231.0.0/16" not in used:
            return f"10.231.{n}"
    raise AssertionError("no free 10.231.N.0/24 subnet for podman's default network")


class Podman:
    """podman with every path of its own under `work`; call it like the command line:
    podman("ps", "-a") -> conftest Result.  podman.run(...) is `podman run` in this
    session's cgroup parent, recording the container's id for the leak check."""

    def __init__(self, work, registry_host):
        self.work = work
        self.ids = set()
        self._n = 0
        self.cgroup_parent = f"/{CGROUP_PARENT}/podman-{os.getpid()}"
        self.bridge = f"lt{os.getpid() % 100000}pod"
        self.subnet = free_subnet()
        home = work / "home"
        for d in ("home/.config/containers", "tmp", "run", "xdg", "networks", "hooks"):
            (work / d).mkdir(parents=True, exist_ok=True)
        os.chmod(work / "xdg", 0o700)
        self.conf = work / "containers.conf"
        self.write_containers_conf(self.conf)
        (work / "storage.conf").write_text(
            "[storage]\n"
            'driver = "overlay"\n'
            f'graphroot = "{work}/root"\n'
            f'runroot = "{work}/run"\n')
        (work / "registries.conf").write_text(
            "unqualified-search-registries = []\n"
            "[[registry]]\n"
            f'location = "{registry_host}"\n'
            "insecure = true\n")
        (home / ".config/containers/policy.json").write_text(
            json.dumps({"default": [{"type": "insecureAcceptAnything"}]}))
        # podman's default network ("podman": no --network option), defined here with its
        # own bridge and subnet so that sessions running at the same time do not share
        # podman0 and 10.88.0.0/16 (the built-in definition), and nothing else changes.
        (work / "networks" / "podman.json").write_text(json.dumps({
            "name": "podman",
            "id": "2f259bab93aaaaa2542ba43ef33eb990d0999ee1b9924b557b7be53c0b7a1bb9",
            "driver": "bridge",
            "network_interface": self.bridge,
            "created": "2026-01-01T00:00:00Z",
            "subnets": [{"subnet": f"{self.subnet}.0/24", "gateway": f"{self.subnet}.1"}],
            "ipv6_enabled": False,
            "internal": False,
            "dns_enabled": False,
            "ipam_options": {"driver": "host-local"},
        }, indent=1))
        self.env = {
            "PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"),
            "HOME": str(home),
            "TMPDIR": str(work / "tmp"),
            "XDG_RUNTIME_DIR": str(work / "xdg"),
            "XDG_CONFIG_HOME": str(home / ".config"),
            "XDG_DATA_HOME": str(home / ".local/share"),
            "CONTAINERS_CONF": str(self.conf),
            "CONTAINERS_STORAGE_CONF": str(work / "storage.conf"),
            "CONTAINERS_REGISTRIES_CONF": str(work / "registries.conf"),
        }

    def write_containers_conf(self, path, engine_extra=""):
        w = self.work
        Path(path).write_text(
            "[containers]\n"
            # podman's defaults (1048576) are above this machine's hard limits
            'default_ulimits = ["nofile=1024:1024", "nproc=1000:1000"]\n'
            # as in the packaged /usr/share/containers/containers.conf, which
            # CONTAINERS_CONF replaces: a net.* sysctl for lamina to set
            'default_sysctls = ["net.ipv4.ping_group_range=0 0"]\n'
            "[network]\n"
            'network_backend = "netavark"\n'
            f'network_config_dir = "{w}/networks"\n'
            "[engine]\n"
            f'tmp_dir = "{w}/tmp"\n'
            f'hooks_dir = ["{w}/hooks"]\n'
            'lock_type = "file"\n'
            + engine_extra)

    def argv(self, *args):
        return [PODMAN, "--runtime", str(LAMINA_OCI), "--cgroup-manager", "cgroupfs",
                "--events-backend", "file", *map(str, args)]

    def __call__(self, *args, check=False, timeout=PODMAN_TIMEOUT, conf=None, input=None):
        env = dict(self.env)
        if conf:
            env["CONTAINERS_CONF"] = str(conf)
        res = run(self.argv(*args), timeout=timeout, env=env, input=input)
        return res.check() if check else res

    def cidfile(self):
        self._n += 1
        return self.work / f"cid-{self._n}"

    def record(self, cidfile):
        if cidfile.exists():
            self.ids.add(cidfile.read_text().strip())

    def run(self, *args, **kw):
        cid = self.cidfile()
        try:
            return self("run", "--cgroup-parent", self.cgroup_parent, "--cidfile", cid, *args, **kw)
        finally:
            self.record(cid)

    def probe(self, *args):
        """`podman run --rm --network none ARGS...` (options, the image, /probe and its
        arguments); returns the probe's JSON."""
        return self.run("--rm", "--network", "none", *args).check().json()

    def our_processes(self):
        """conmon and podman cleanup processes still working in our directories."""
        found = []
        for p in Path("/proc").iterdir():
            if not p.name.isdigit() or int(p.name) == os.getpid():
                continue
            try:
                cmd = (p / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            if str(self.work) in cmd:
                found.append((int(p.name), cmd.strip()))
        return found

    def teardown(self):
        problems = []
        left = self("ps", "-aq", "--no-trunc").stdout.split()
        if left:
            problems.append(f"containers left: {left}")
            self("rm", "-f", "-t", "0", *left)
        try:
            wait_for(lambda: not self.our_processes(), timeout=15, what="conmon to exit")
        except AssertionError:
            procs = self.our_processes()
            problems.append(f"processes left: {procs}")
            for pid, _ in procs:
                try:
                    os.kill(pid, 9)
                except OSError:
                    pass
        # images first: podman writes their events from a goroutine, which races with
        # `system reset` removing tmp_dir (events/ "directory not empty")
        self("rmi", "-a", "-f")
        res = self("system", "reset", "-f")
        if res.returncode != 0:
            problems.append(f"podman system reset: {res.stderr.strip()}")
        for cid in sorted(self.ids):
            if (LAMINA_STATE_ROOT / cid).exists():
                problems.append(f"lamina state left: {LAMINA_STATE_ROOT / cid}")
                run([LAMINA_OCI, "delete", "--force", cid])
        for d in v1_controller_dirs():
            parent = d / self.cgroup_parent.lstrip("/")
            if not parent.is_dir():
                continue
            # podman's cgroupfs manager makes <parent>/conmon and never removes it
            leaked = [c.name for c in parent.iterdir() if c.is_dir() and c.name != "conmon"]
            if leaked:
                problems.append(f"cgroups left in {parent}: {leaked}")
            for c in parent.iterdir():
                if c.is_dir():
                    kill_cgroup_tasks(c)
            remove_cgroup_tree(parent)
        leaked = unmount_all_under(self.work)
        if leaked:
            problems.append(f"mounts left: {leaked}")
        shutil.rmtree(self.work, ignore_errors=True)
        return problems


@pytest.fixture(scope="module")
def podman(image):
    if not LAMINA_OCI.exists():
        pytest.fail(f"{LAMINA_OCI} not found: the build makes it next to lamina "
                    "(src/meson.build)", pytrace=False)
    # short: conmon's and podman's unix socket paths live under these directories
    work = Path(tempfile.mkdtemp(prefix="lt-podman-", dir="/tmp"))
    p = Podman(work, image.split("/")[0])
    try:
        p("pull", "-q", image, timeout=120, check=True)
        yield p
    finally:
        problems = p.teardown()
    if problems:
        pytest.fail("podman leak check failed:\n  " + "\n  ".join(problems), pytrace=False)


def lamina_state(cid):
    return run([LAMINA_OCI, "state", cid])


# ---------------------------------------------------------------------------
# podman run --rm

def test_podman_uses_lamina(podman):
    info = podman("info", "--format", "json", check=True).json()
    rt = info["host"]["ociRuntime"]
    assert rt["path"] == str(LAMINA_OCI), rt
    assert rt["version"].startswith("lamina version"), rt
    assert info["host"]["cgroupManager"] == "cgroupfs"
    assert info["host"]["eventLogger"] == "file"
    assert info["host"]["networkBackend"] == "netavark"
    assert info["store"]["graphRoot"] == str(podman.work / "root")
    assert info["host"]["security"]["seccompEnabled"] is True


def test_run_true(podman, image):
    res = podman.run("--rm", "--network", "none", image, "true")
    assert res.returncode == 0, res
    assert res.stdout == ""
    assert podman("ps", "-aq").check().stdout == ""  # --rm removed it


def test_run_exit_code_and_output(podman, image):
    res = podman.run("--rm", "--network", "none", image, "sh", "-c", "exit 7")
    assert res.returncode == 7, res
    res = podman.run("--rm", "--network", "none", image, "echo", "hello")
    assert res.returncode == 0 and res.stdout == "hello\n", res
    res = podman.run("--rm", "--network", "none", image, "sh", "-c", "echo out; echo err >&2")
    assert res.returncode == 0 and res.stdout == "out\n" and "err" in res.stderr, res


def test_run_command_not_found(podman, image):
    """create fails inside lamina; podman maps the message to 127 and deletes the
    container with --force, which must not complain that it is already gone."""
    res = podman.run("--rm", "--network", "none", image, "no-such-command")
    assert res.returncode == 127, res
    assert "no-such-command" in res.stderr and "not found" in res.stderr, res
    assert "does not exist" not in res.stderr, res
    res = podman.run("--rm", "--network", "none", image, "/etc/passwd")
    assert res.returncode == 126, res
    assert podman("ps", "-aq").check().stdout == ""


def test_network_none(podman, image):
    out = podman.probe(image, "/probe")
    assert out["netdev"] == ["lo"], out["netdev"]
    assert out["ns"]["net"] != os.readlink("/proc/self/ns/net")
    res = podman.run("--rm", "--network", "none", image, "/probe", "sysctl",
                     "net.ipv4.ping_group_range")
    assert res.check().stdout.split() == ["0", "0"], res  # default_sysctls


def test_env_user_workdir(podman, image):
    out = podman.probe(image, "/probe")
    assert (out["uid"], out["gid"], out["cwd"]) == (0, 0, "/"), out
    assert "container=podman" in out["env"]
    out = podman.probe("-e", "FOO=bar", "-u", "1000", "-w", "/tmp", image, "/probe")
    assert (out["uid"], out["gid"], out["euid"], out["cwd"]) == (1000, 1000, 1000, "/tmp"), out
    assert "FOO=bar" in out["env"], out["env"]
    assert 29 in out["groups"], out["groups"]  # test is in group audio (/etc/group)
    assert out["caps"]["CapEff"] == "0000000000000000", out["caps"]  # not root: none


def test_run_terminal(podman, image):
    """-t: conmon passes --console-socket to create and relays the terminal."""
    res = podman.run("--rm", "-t", "--network", "none", image, "tty")
    assert res.returncode == 0, res
    assert res.stdout.replace("\r\n", "\n") == "/dev/pts/0\n", res


def test_preserve_fds(podman, image, tmp_path):
    """--preserve-fds 1: fd 3 of podman is fd 3 of the container (create --preserve-fds)."""
    f = tmp_path / "fd3"
    f.write_text("through fd 3\n")
    cid = podman.cidfile()
    argv = podman.argv("run", "--cgroup-parent", podman.cgroup_parent, "--cidfile", cid,
                       "--rm", "--network", "none", "--preserve-fds", "1", image,
                       "cat", "/proc/self/fd/3")
    res = run(["sh", "-c", 'exec "$@" 3<"$FD3"', "sh", *argv], env=dict(podman.env, FD3=str(f)),
              timeout=PODMAN_TIMEOUT)
    podman.record(cid)
    assert res.returncode == 0 and res.stdout == "through fd 3\n", res


# ---------------------------------------------------------------------------
# detached containers: exec, kill, stop, rm

@pytest.fixture
def detached(podman, image):
    """start(name, *cmd, network="none") -> id: `podman run -d` of /probe trap (or
    cmd), once it runs; whatever is left of it is removed after the test."""
    names = []

    def start(name, *cmd, network="none"):
        names.append(name)
        net = ["--network", network] if network else []
        res = podman.run("-d", "--name", name, *net, image, *(cmd or ("/probe", "trap", "60")))
        res.check()
        cid = res.stdout.strip()
        assert cid in podman.ids
        wait_for(lambda: "ready" in podman("logs", name).stdout, timeout=10,
                 what="the probe to start")
        return cid

    yield start
    for name in names:
        podman("rm", "-f", "-t", "0", "--ignore", name)


def test_detached_exec_stop_rm(podman, detached):
    cid = detached("lt-exec")
    inspect = podman("inspect", "lt-exec", check=True).json()[0]
    assert inspect["State"]["Status"] == "running"
    st = lamina_state(cid).check().json()  # podman's container is lamina's
    assert st["status"] == "running" and st["pid"] == inspect["State"]["Pid"], (st, inspect)

    res = podman("exec", "lt-exec", "sh", "-c", "echo in exec; exit 3")
    assert res.returncode == 3 and res.stdout == "in exec\n", res
    res = podman("exec", "-u", "1000", "-w", "/tmp", "-e", "X=y", "lt-exec", "/probe")
    out = res.check().json()
    assert (out["uid"], out["cwd"]) == (1000, "/tmp") and "X=y" in out["env"], out
    assert out["seccomp"] == 2, out  # the exec'd process gets the container's filter
    res = podman("exec", "-t", "lt-exec", "tty")  # exec --tty --console-socket
    assert res.returncode == 0 and res.stdout.startswith("/dev/pts/"), res

    res = podman("stop", "-t", "10", "lt-exec")  # kill ID 15
    assert res.returncode == 0, res
    state = podman("inspect", "lt-exec", check=True).json()[0]["State"]
    assert (state["Status"], state["ExitCode"]) == ("exited", 15), state
    assert "signal 15" in podman("logs", "lt-exec").stdout
    podman("rm", "lt-exec", check=True)  # delete
    assert lamina_state(cid).returncode != 0
    assert not (LAMINA_STATE_ROOT / cid).exists()
    assert podman("ps", "-aq").check().stdout == ""


def test_kill_and_wait(podman, detached):
    detached("lt-kill")
    podman("kill", "-s", "USR1", "lt-kill", check=True)
    res = podman("wait", "lt-kill")
    assert res.returncode == 0 and res.stdout.strip() == "10", res
    podman("rm", "lt-kill", check=True)


# ---------------------------------------------------------------------------
# what podman's config carries through lamina

def syscall_errnos(podman, image, *opts):
    out = podman.run("--rm", "--network", "none", *opts, image, "/probe", "syscalls",
                     "kcmp 1 1 0 0 0", "add_key 0 0 0 0 0").check().json()
    return [s["errno"] for s in out]


def test_podman_seccomp_profile(podman, image):
    """podman's default profile (containers-common's seccomp.json) is loaded by lamina:
    kcmp is denied with EPERM without CAP_SYS_PTRACE, and add_key, which the profile
    does not list, gets its default errno (ENOSYS); unconfined, the kernel answers
    (kcmp of itself succeeds, add_key of a NULL type is EFAULT)."""
    assert podman.probe(image, "/probe")["seccomp"] == 2
    assert syscall_errnos(podman, image) == [EPERM, ENOSYS]
    assert podman.probe("--security-opt", "seccomp=unconfined", image, "/probe")["seccomp"] == 0
    assert syscall_errnos(podman, image, "--security-opt", "seccomp=unconfined") == [0, EFAULT]
    # mount is allowed by podman's profile but needs CAP_SYS_ADMIN, which podman drops
    res = podman.run("--rm", "--network", "none", image, "mount", "-t", "tmpfs", "none", "/tmp")
    assert res.returncode != 0 and "permission denied" in res.stderr, res


def test_runtime_json_log(podman, image):
    """With lamina-oci in runtime_supports_json, podman passes `--log-format=json --log
    FILE` and reads a failed create's error from that file: a message without the
    "lamina: " prefix lamina puts on stderr shows it parsed lamina's JSON line."""
    conf = podman.work / "containers-json.conf"
    podman.write_containers_conf(conf, 'runtime_supports_json = ["lamina-oci"]\n')
    res = podman.run("--rm", "--network", "none", image, "echo", "ok", conf=conf)
    assert res.returncode == 0 and res.stdout == "ok\n", res
    res = podman.run("--rm", "--network", "none", image, "no-such-command", conf=conf)
    assert res.returncode == 127, res
    assert 'create container "' in res.stderr and "lamina: create" not in res.stderr, res


# ---------------------------------------------------------------------------
# podman's default network

def try_lock(f):
    try:
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        return False


def firewall_rules():
    rules = {}
    for cmd in ("iptables", "ip6tables"):
        if not shutil.which(cmd):
            continue
        for table in ("filter", "nat"):
            r = subprocess.run([cmd, "-w", "-t", table, "-S"], capture_output=True, text=True)
            if r.returncode == 0:
                rules[(cmd, table)] = r.stdout.splitlines()
    return rules


def remove_new_netavark_rules(before):
    """Removes the NETAVARK rules and chains that were not there before; returns them."""
    removed = []
    for (cmd, table), lines in firewall_rules().items():
        old = set(before.get((cmd, table), []))
        new = [line for line in lines if line not in old and "NETAVARK" in line]
        for line in reversed([x for x in new if x.startswith("-A ")]):
            subprocess.run([cmd, "-w", "-t", table, "-D", *shlex.split(line)[1:]], capture_output=True)
        chains = [x.split()[1] for x in new if x.startswith("-N ")]
        for c in chains:
            subprocess.run([cmd, "-w", "-t", table, "-F", c], capture_output=True)
        for c in chains:
            subprocess.run([cmd, "-w", "-t", table, "-X", c], capture_output=True)
        removed += [f"{cmd} -t {table} {x}" for x in new]
    return removed


def nft_objects():
    """{(family, table)} and {(family, table, chain)} as nft sees them (iptables-nft
    makes built-in chains, even a table, the first time a rule needs them)."""
    if not shutil.which("nft"):
        return set(), set()
    r = subprocess.run(["nft", "-j", "list", "chains"], capture_output=True, text=True)
    t = subprocess.run(["nft", "-j", "list", "tables"], capture_output=True, text=True)
    if r.returncode != 0 or t.returncode != 0:
        return set(), set()
    chains = {(o["chain"]["family"], o["chain"]["table"], o["chain"]["name"])
              for o in json.loads(r.stdout)["nftables"] if "chain" in o}
    tables = {(o["table"]["family"], o["table"]["name"])
              for o in json.loads(t.stdout)["nftables"] if "table" in o}
    return tables, chains


def remove_new_empty_nft_objects(before):
    """Deletes the chains and tables that appeared since `before` and are empty now
    (nft refuses to delete a chain that has rules, so nobody else's are touched)."""
    tables_before, chains_before = before
    tables, chains = nft_objects()
    for fam, table, chain in chains - chains_before:
        subprocess.run(["nft", "delete", "chain", fam, table, chain], capture_output=True)
    _, chains = nft_objects()
    for fam, table in tables - tables_before:
        if not any(c[:2] == (fam, table) for c in chains):
            subprocess.run(["nft", "delete", "table", fam, table], capture_output=True)


@pytest.fixture
def host_network_restored(podman):
    """Saves net.ipv4.ip_forward and the firewall; afterwards puts them back, and fails
    if podman's bridge is still there.  Sessions running at the same time take turns
    (a lock file): each would otherwise save what the other one changed."""
    lock_dir = Path("/run/lock") if Path("/run/lock").is_dir() else Path("/tmp")
    with open(lock_dir / "lamina-test-podman-network.lock", "w") as lock:
        wait_for(lambda: try_lock(lock), timeout=300, interval=0.2,
                 what="the podman network test of another session")
        forward = IP_FORWARD.read_text()
        rules, nft = firewall_rules(), nft_objects()
        try:
            yield
        finally:
            remove_new_netavark_rules(rules)
            remove_new_empty_nft_objects(nft)
            IP_FORWARD.write_text(forward)
    problems = []
    if subprocess.run(["ip", "link", "show", podman.bridge], capture_output=True).returncode == 0:
        problems.append(f"bridge {podman.bridge} left behind")
        subprocess.run(["ip", "link", "del", podman.bridge], capture_output=True)
    if problems:
        pytest.fail("; ".join(problems), pytrace=False)


def test_default_network(podman, image, host_network_restored, detached):
    """No --network: podman puts the container on its default bridge network (netavark
    makes the bridge, the veth, the addresses and the firewall rules in the namespace
    podman created and lamina joins by path, with podman's net.* sysctls)."""
    res = podman.run("--rm", image, "true")
    assert res.returncode == 0, res
    cid = detached("lt-net", network=None)
    info = podman("inspect", "lt-net", check=True).json()[0]
    netns = info["NetworkSettings"]["SandboxKey"]
    addr = info["NetworkSettings"]["Networks"]["podman"]["IPAddress"]
    assert addr.startswith(podman.subnet + "."), info["NetworkSettings"]
    out = podman("exec", "lt-net", "/probe", check=True).json()
    assert sorted(out["netdev"]) == ["eth0", "lo"], out["netdev"]
    assert os.stat(netns).st_ino == int(out["ns"]["net"].split("[")[1].rstrip("]"))
    # the default sysctl of podman's packaged config, set by lamina in the network
    # namespace podman made and lamina joined by path
    res = podman("exec", "lt-net", "/probe", "sysctl", "net.ipv4.ping_group_range")
    assert res.check().stdout.split() == ["0", "0"], res
    # the gateway is the host end of the bridge podman made: nothing leaves this host
    res = podman("exec", "lt-net", "ping", "-c", "1", "-W", "5", podman.subnet + ".1")
    assert res.returncode == 0, res
    podman("rm", "-f", "-t", "0", "lt-net", check=True)
    assert lamina_state(cid).returncode != 0
    assert not os.path.exists(netns), "podman left the network namespace"
    wait_for(lambda: subprocess.run(["ip", "link", "show", podman.bridge],
                                    capture_output=True).returncode != 0,
             timeout=5, what="netavark to remove the bridge")
