"""OCI hooks: where and when each kind runs, what it reads on stdin, and what a
failing one does to the operation.

Every hook here is a small /bin/sh script that appends a record (its name, args,
an env var, the state JSON from stdin, its mount namespace and hostname) to one log
file, then execs the probe, whose JSON report (namespaces, fds, ...) goes to
<name>.json beside the log.  Host-side hooks (and createContainer, whose path
resolves in the runtime's view before pivot_root) live under the test's tmp dir;
startContainer hooks resolve in the container, so theirs live in the rootfs and
write through a bind mount of the log directory at /hooklog.

runc 1.1 differs from the spec in places, noted where a test branches on it: it
runs poststart hooks during create (and fails create when one fails), and a
failing startContainer hook only ends the container process (start has returned).
"""

import json
import os
import signal
import subprocess
import time

import pytest

from conftest import IS_LAMINA, IS_RUNC, OCI, PROBE, lamina_only, one_line_error, wait_for

HOOK_PATH_ENV = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
IN_CONTAINER = {"startContainer"}


class Hooks:
    """Hook scripts for one container, and the records they leave."""

    def __init__(self, ct):
        self.ct = ct
        self.logdir = ct.tmp / "hooklog"
        self.logdir.mkdir()
        os.chmod(self.logdir, 0o777)
        self.bindir = ct.tmp / "hookbin"
        self.bindir.mkdir()
        self.log = self.logdir / "hooks.log"
        self.log.touch()
        os.chmod(self.log, 0o666)
        ct.add_mount("/hooklog", "bind", self.logdir, ["rbind", "rw"])

    def add(self, kind, name=None, action="ok", timeout=None, env=None, args=None):
        """Appends a hook of kind; action: ok | fail | sleep | noisy.  Returns its name."""
        name = name or kind
        inside = kind in IN_CONTAINER
        if inside:
            (self.ct.rootfs / "hooks").mkdir(exist_ok=True)
            script = self.ct.rootfs / "hooks" / f"{name}.sh"
            path, log, probe, outdir = f"/hooks/{name}.sh", "/hooklog/hooks.log", "/probe", "/hooklog"
        else:
            script = self.bindir / f"{name}.sh"
            path, log, probe, outdir = str(script), str(self.log), str(PROBE), str(self.logdir)
        tail = {
            "ok": f"exec {probe} > {outdir}/{name}.json",
            "fail": f"echo boom-{name} >&2\nexit 1",
            "sleep": f"echo $$ > {outdir}/{name}.pid\nexec sleep 30",
            "noisy": f"echo noise-out-{name}\necho noise-err-{name} >&2\nexit 0",
        }[action]
        script.write_text(
            "#!/bin/sh\n"
            "{\n"
            f"  echo \"name={name}\"\n"
            "  echo \"args=$*\"\n"
            "  echo \"mark=$HOOK_MARK\"\n"
            "  echo \"state=$(cat)\"\n"
            "  echo \"mnt=$(readlink /proc/self/ns/mnt)\"\n"
            "  echo \"hostname=$(hostname)\"\n"
            "  echo \"end\"\n"
            f"}} >> {log}\n"
            f"{tail}\n")
        os.chmod(script, 0o755)
        entry = {"path": path,
                 "args": [name, "one", "two words"] if args is None else args,
                 "env": [HOOK_PATH_ENV, f"HOOK_MARK={name}"] if env is None else env}
        if timeout is not None:
            entry["timeout"] = timeout
        self.ct.config.setdefault("hooks", {}).setdefault(kind, []).append(entry)
        return name

    def records(self):
        recs, cur = [], {}
        for line in self.log.read_text().splitlines():
            if line == "end":
                recs.append(cur)
                cur = {}
                continue
            k, _, v = line.partition("=")
            cur[k] = v
        for r in recs:
            r["state"] = json.loads(r["state"])
        return recs

    def names(self):
        return [r["name"] for r in self.records()]

    def record(self, name):
        found = [r for r in self.records() if r["name"] == name]
        assert len(found) == 1, f"{name}: {found}"
        return found[0]

    def report(self, name):
        """The probe's report from inside hook `name`."""
        return json.loads((self.logdir / f"{name}.json").read_text())


def host_ns(kind, pid="self"):
    return os.readlink(f"/proc/{pid}/ns/{kind}")


def host_hostname():
    with open("/proc/sys/kernel/hostname") as f:
        return f.read().strip()


ALL_KINDS = ["prestart", "createRuntime", "createContainer", "startContainer", "poststart",
             "poststop"]


# ---------------------------------------------------------------------------
# when they run, and what they read

def test_hooks_across_create_start_delete(ct):
    h = Hooks(ct)
    for kind in ALL_KINDS:
        h.add(kind)
    ct.probe_args("sleep", "10")
    ct.create().check()
    pid = ct.state()["pid"]
    created = ["prestart", "createRuntime", "createContainer"]
    # runc 1.1 runs poststart hooks at the end of create
    assert h.names() == created + (["poststart"] if IS_RUNC else [])

    ct.start().check()
    assert ct.status() == "running"
    if IS_LAMINA:
        assert h.names() == created + ["startContainer", "poststart"]
    else:
        assert sorted(h.names()) == sorted(created + ["startContainer", "poststart"])

    ct.kill("KILL").check()
    ct.wait_status("stopped")
    ct.delete().check()
    assert h.names()[-1] == "poststop"
    assert not ct.has_state()

    want_status = {"prestart": "creating", "createRuntime": "creating",
                   "createContainer": "creating", "startContainer": "created",
                   "poststart": "running", "poststop": "stopped"}
    for rec in h.records():
        name, st = rec["name"], rec["state"]
        assert st["id"] == ct.id, rec
        assert os.path.realpath(st["bundle"]) == os.path.realpath(ct.bundle), rec
        assert st["ociVersion"].startswith("1."), rec
        assert rec["args"] == "one two words", rec
        assert rec["mark"] == name, rec
        if name == "poststop":
            assert st.get("pid", 0) == 0, rec
        elif name in ("createContainer", "startContainer") and IS_RUNC:
            assert st["pid"] in (pid, 1), rec  # runc: the pid in the container's namespace
        else:
            assert st["pid"] == pid, rec
        if IS_LAMINA or name != "poststart":  # runc: "created" (it runs them during create)
            assert st["status"] == want_status[name], rec


def test_run_runs_every_hook_in_order(ct):
    h = Hooks(ct)
    for kind in ALL_KINDS:
        h.add(kind)
    ct.probe_args("exit", "0")
    ct.run().check()
    if IS_LAMINA:
        assert h.names() == ALL_KINDS
    else:  # runc 1.1: poststart before startContainer
        assert sorted(h.names()) == sorted(ALL_KINDS)
    assert h.names()[-1] == "poststop"
    assert not ct.has_state()


def test_several_hooks_of_a_kind_run_in_order(ct):
    h = Hooks(ct)
    for i in range(3):
        h.add("createRuntime", name=f"cr{i}")
    h.add("prestart", name="pre")
    ct.probe_args("exit", "0")
    ct.run().check()
    # prestart (deprecated) runs before createRuntime
    assert h.names() == ["pre", "cr0", "cr1", "cr2"]


def test_hook_annotations_in_state(ct):
    h = Hooks(ct)
    h.add("createRuntime")
    h.add("poststop")
    ct.config["annotations"] = {"org.lamina.test": "yes"}
    ct.probe_args("exit", "0")
    ct.run().check()
    for rec in h.records():
        assert rec["state"]["annotations"] == {"org.lamina.test": "yes"}, rec


def test_hook_without_args_or_env(ct):
    h = Hooks(ct)
    h.add("createRuntime", args=[], env=[])
    ct.probe_args("exit", "0")
    ct.run().check()
    rec = h.record("createRuntime")
    assert rec["args"] == ""
    assert rec["state"]["id"] == ct.id


@lamina_only("runc passes its own environment to a hook without env")
def test_hook_env_is_only_its_own(ct):
    h = Hooks(ct)
    h.add("createRuntime", env=["HOOK_MARK=x"])
    ct.probe_args("exit", "0")
    ct.write_config()
    res = ct.oci("run", "--bundle", ct.bundle, ct.id,
                 env={**os.environ, "LEAKY": "from-the-runtime"})
    assert res.returncode == 0, res
    # (the shell adds PWD: the hook runs in the bundle)
    env = [e for e in h.report("createRuntime")["env"] if not e.startswith("PWD=")]
    assert env == ["HOOK_MARK=x"], env


# ---------------------------------------------------------------------------
# where they run

def test_runtime_hooks_run_in_the_runtime_namespaces(ct):
    h = Hooks(ct)
    for kind in ("prestart", "createRuntime", "poststart", "poststop"):
        h.add(kind)
    ct.probe_args("sleep", "10")
    ct.create().check()
    ct.start().check()
    ct.delete("--force").check()
    for kind in ("prestart", "createRuntime", "poststart", "poststop"):
        rep = h.report(kind)
        assert rep["ns"]["mnt"] == host_ns("mnt"), kind
        assert rep["ns"]["uts"] == host_ns("uts"), kind
        assert rep["ns"]["pid"] == host_ns("pid"), kind
        assert rep["ns"]["net"] == host_ns("net"), kind
        assert rep["hostname"] == host_hostname(), kind


def test_create_container_hook_runs_in_the_container_namespaces(ct):
    h = Hooks(ct)
    h.add("createContainer")
    h.add("createRuntime")
    ct.config["hostname"] = "hooked"
    ct.probe_args("sleep", "10")
    ct.create().check()
    pid = ct.state()["pid"]
    rec = h.record("createContainer")
    if IS_LAMINA:  # runc sets the hostname after pivot_root, so after these hooks
        assert rec["hostname"] == "hooked"
    assert rec["mnt"] == host_ns("mnt", pid)
    rep = h.report("createContainer")
    for kind in ("mnt", "uts", "net", "ipc", "pid"):
        assert rep["ns"][kind] == host_ns(kind, pid), kind
    # its path resolved in the runtime's view: it ran the host's probe, before pivot_root
    assert rep["ns"]["mnt"] != host_ns("mnt")
    # while createRuntime, with the same container alive, was on the host
    assert h.record("createRuntime")["mnt"] == host_ns("mnt")
    assert h.record("createRuntime")["hostname"] == host_hostname()


def test_start_container_hook_runs_in_the_container(ct):
    h = Hooks(ct)
    h.add("startContainer")
    ct.config["hostname"] = "hooked"
    ct.probe_args("sleep", "10")
    ct.create().check()
    pid = ct.state()["pid"]
    assert h.names() == []
    ct.start().check()
    rec = h.record("startContainer")
    assert rec["hostname"] == "hooked"
    assert rec["mnt"] == host_ns("mnt", pid)
    rep = h.report("startContainer")
    for kind in ("mnt", "uts", "net", "ipc", "pid"):
        assert rep["ns"][kind] == host_ns(kind, pid), kind
    # after pivot_root: its root is the container's (the probe it ran is /probe)
    assert rep["argv"][0] == "/probe"
    assert rep["cwd"] == "/"


def test_hooks_get_only_stdio(ct):
    h = Hooks(ct)
    kinds = ["createRuntime", "createContainer", "startContainer", "poststart", "poststop"]
    if IS_RUNC:  # runc 1.1 leaks its init's fds (the exec fifo among them) to createContainer
        kinds.remove("createContainer")
    for kind in kinds:
        h.add(kind)
    ct.probe_args("sleep", "10")
    ct.create().check()
    ct.start().check()
    ct.delete("--force").check()
    for kind in kinds:
        fds = h.report(kind)["fds"]
        assert sorted(f["fd"] for f in fds) == [0, 1, 2], (kind, fds)
        assert not any("socket" in f["target"] for f in fds), (kind, fds)


def test_hook_output_stays_out_of_the_container_output(ct):
    h = Hooks(ct)
    for kind in ("prestart", "createRuntime", "createContainer", "startContainer", "poststart"):
        h.add(kind, action="noisy")
    ct.probe_args("report")
    ct.create().check()
    ct.start().check()
    ct.wait_status("stopped")
    out = ct.output()
    assert "noise" not in out, out
    assert json.loads(out)["argv"] == ["/probe", "report"]
    res = ct.delete().check()
    assert "noise" not in res.stdout


# ---------------------------------------------------------------------------
# failures

def assert_nothing_left(ct):
    assert not ct.has_state()
    assert ct.oci("state", ct.id).returncode != 0


@pytest.mark.parametrize("kind", ["prestart", "createRuntime", "createContainer"])
def test_failing_create_hook_fails_create(ct, kind):
    h = Hooks(ct)
    h.add(kind, action="fail")
    h.add("poststop")
    ct.probe_args("sleep", "10")
    res = ct.create()
    err = one_line_error(res)
    assert "boom-" + kind in err, err
    if IS_LAMINA:
        assert kind in err and f"{kind}.sh" in err and "status 1" in err, err
    assert_nothing_left(ct)
    # "continue the lifecycle at step 12": destroyed, then the poststop hooks
    assert h.names() == [kind, "poststop"]
    assert h.record("poststop")["state"]["status"] == "stopped"


@pytest.mark.parametrize("kind", ["createRuntime", "createContainer"])
def test_failing_create_hook_fails_run(ct, kind):
    h = Hooks(ct)
    h.add(kind, action="fail")
    h.add("startContainer")
    ct.probe_args("report")
    res = ct.run()
    err = one_line_error(res)
    assert "boom-" + kind in err, err
    assert "argv" not in res.stdout  # the user's process never ran
    assert "startContainer" not in h.names()
    assert_nothing_left(ct)


def test_failing_hook_stops_the_later_ones(ct):
    h = Hooks(ct)
    h.add("createRuntime", name="first")
    h.add("createRuntime", name="second", action="fail")
    h.add("createRuntime", name="third")
    h.add("createContainer")
    res = ct.create()
    one_line_error(res)
    assert h.names() == ["first", "second"]
    assert_nothing_left(ct)


@lamina_only("runc's start returns before its startContainer hooks run")
def test_failing_start_container_hook_fails_start(ct):
    h = Hooks(ct)
    h.add("startContainer", action="fail")
    h.add("poststart")
    h.add("poststop")
    ct.probe_args("report")
    ct.create().check()
    res = ct.start()
    err = one_line_error(res)
    assert "startContainer" in err and "boom-startContainer" in err, err
    assert ct.output() == "", "the user's process ran"
    # the container is destroyed and its poststop hooks ran; poststart never did
    assert_nothing_left(ct)
    assert h.names() == ["startContainer", "poststop"]


def test_failing_start_container_hook_fails_run(ct):
    h = Hooks(ct)
    h.add("startContainer", action="fail")
    ct.probe_args("report")
    res = ct.run()
    assert res.returncode != 0, res
    assert "argv" not in res.stdout
    if IS_LAMINA:
        assert "startContainer" in one_line_error(res)
    assert_nothing_left(ct)


@pytest.mark.parametrize("kind", ["createRuntime", "createContainer"])
def test_hook_timeout_kills_it_and_fails_create(ct, kind):
    h = Hooks(ct)
    h.add(kind, action="sleep", timeout=1)
    h.add("poststop")
    ct.probe_args("sleep", "10")
    t0 = time.monotonic()
    res = ct.create()
    took = time.monotonic() - t0
    err = one_line_error(res)
    assert took < 10, took
    assert "timeout" in err, err
    if IS_LAMINA:
        assert kind in err and "killed" in err, err
    assert_nothing_left(ct)
    if kind == "createRuntime":  # its pid is the host's
        hook_pid = int((h.logdir / f"{kind}.pid").read_text())
        wait_for(lambda: not os.path.exists(f"/proc/{hook_pid}"), timeout=5,
                 what="the timed-out hook to be gone")


@lamina_only("runc kills only the hook, not the processes it started")
def test_hook_timeout_kills_what_the_hook_started(ct):
    h = Hooks(ct)
    name = h.add("createRuntime", action="ok", timeout=1)
    script = h.bindir / f"{name}.sh"
    script.write_text("#!/bin/sh\ncat > /dev/null\n"
                      f"sleep 30 &\necho $! > {h.logdir}/child.pid\nwait\n")
    res = ct.create()
    assert "timeout" in one_line_error(res)
    child = int((h.logdir / "child.pid").read_text())
    wait_for(lambda: not os.path.exists(f"/proc/{child}"), timeout=5,
             what="the hook's child to be gone")
    assert_nothing_left(ct)


@lamina_only("runc waits for the hook's stdout to close")
def test_hook_leaving_a_child_does_not_hang(ct):
    h = Hooks(ct)
    name = h.add("createRuntime")
    script = h.bindir / f"{name}.sh"
    # a background child keeps the hook's stdout open after the hook exits
    script.write_text("#!/bin/sh\ncat > /dev/null\n"
                      f"sleep 20 &\necho $! > {h.logdir}/child.pid\nexit 0\n")
    ct.probe_args("exit", "0")
    t0 = time.monotonic()
    ct.run().check()
    assert time.monotonic() - t0 < 10
    child = int((h.logdir / "child.pid").read_text())
    try:
        os.kill(child, 9)
    except ProcessLookupError:
        pass


def test_missing_hook_path_fails_create(ct):
    missing = ct.tmp / "no-such-hook"
    ct.config["hooks"] = {"createRuntime": [{"path": str(missing)}]}
    ct.probe_args("sleep", "10")
    res = ct.create()
    err = one_line_error(res)
    if IS_LAMINA:
        assert str(missing) in err and "No such file" in err and "createRuntime" in err, err
    assert_nothing_left(ct)


@lamina_only("runc 1.1 fails create when a poststart hook fails")
def test_failing_poststart_hook_is_a_warning(ct):
    h = Hooks(ct)
    h.add("poststart", name="bad", action="fail")
    h.add("poststart", name="good")
    ct.probe_args("sleep", "10")
    ct.create().check()
    res = ct.start()
    assert res.returncode == 0, res
    assert "poststart" in res.stderr and "boom-bad" in res.stderr, res
    assert ct.status() == "running"
    # the remaining hooks still run
    assert h.names() == ["bad", "good"]


@lamina_only("runc 1.1 fails create when a poststart hook fails")
def test_failing_poststart_hook_in_run_is_a_warning(ct):
    h = Hooks(ct)
    h.add("poststart", action="fail")
    ct.probe_args("exit", "3")
    res = ct.run()
    assert res.returncode == 3, res
    assert "poststart" in res.stderr, res
    assert not ct.has_state()


def test_failing_poststop_hook_is_a_warning(ct):
    h = Hooks(ct)
    h.add("poststop", name="bad", action="fail")
    h.add("poststop", name="good")
    ct.probe_args("exit", "0")
    ct.create().check()
    ct.start().check()
    ct.wait_status("stopped")
    res = ct.delete()
    assert res.returncode == 0, res
    assert "boom-bad" in res.stderr, res
    if IS_LAMINA:
        assert "poststop" in res.stderr, res
    assert not ct.has_state()
    # the remaining hooks still run (runc 1.1 stops at the failing one)
    assert h.names() == (["bad", "good"] if IS_LAMINA else ["bad"])


def test_delete_force_runs_poststop(ct):
    h = Hooks(ct)
    h.add("poststop")
    ct.start_sleeper(30)
    assert h.names() == []
    ct.delete("--force").check()
    rec = h.record("poststop")
    assert rec["state"]["status"] == "stopped"
    assert rec["state"]["id"] == ct.id
    assert not ct.has_state()


@lamina_only("runc keeps no state while creating: nothing for delete to find")
def test_create_killed_during_a_hook_then_delete_force(ct):
    h = Hooks(ct)
    h.add("createRuntime", action="sleep")
    h.add("poststop")
    ct.probe_args("sleep", "10")
    ct.write_config()
    p = subprocess.Popen(list(OCI) + ["--root", str(ct.root), "create", "--bundle", str(ct.bundle),
                                      ct.id],
                         stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        pidfile = h.logdir / "createRuntime.pid"
        wait_for(lambda: pidfile.exists() and pidfile.read_text().strip(), timeout=10,
                 what="the createRuntime hook to start")
        assert ct.status() == "creating"
    finally:
        p.send_signal(signal.SIGKILL)
        p.wait()
    hook_pid = int(pidfile.read_text())
    # the hook dies with the runtime that waited for it
    wait_for(lambda: not os.path.exists(f"/proc/{hook_pid}"), timeout=5,
             what="the hook to die with its runtime")
    ct.delete("--force").check()
    assert_nothing_left(ct)
    assert h.names() == ["createRuntime", "poststop"]
    assert h.record("poststop")["state"]["status"] == "stopped"


@lamina_only("`lamina oci features` lists the hooks")
def test_features_lists_hooks(ct):
    f = json.loads(ct.oci("features", root=False).check().stdout)
    assert f["hooks"] == ALL_KINDS
