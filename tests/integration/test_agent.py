"""The agent end to end, as a user sees it: `lamina agent` with its CLI (run -d, ps,
logs, stop, kill, rm, start, restart, inspect, wait, stats, events) and its HTTP API
on the unix socket; restart policies; kill -9 of the agent and of a monitor; a full
log disk; OOM; and bad input of every kind.

Each test gets its own --root, --state and agent; the image (busybox + probe) is an
OCI layout written here and loaded with `lamina image load`.  Teardown removes every
container through the agent and then fails the test if anything is left: monitors,
runtime state, writable layers, mounts or cgroups.
"""

import http.client
import json
import os
import signal
import socket
import struct
import subprocess
import time
from pathlib import Path

import pytest

from conftest import OCI, make_rootfs, mounts_under, v1_controller_dirs, wait_for
from test_images import add_image, tar_dir

pytestmark = pytest.mark.skipif(Path(OCI[0]).name == "runc", reason="lamina's own agent")

LAMINA = Path(OCI[0])
IMAGE = "localhost/layout:app"  # what `image load` names the layout's "app" tag


@pytest.fixture(scope="module")
def layout(tmp_path_factory):
    work = tmp_path_factory.mktemp("agent-image")
    lay = work / "layout"
    (lay / "blobs" / "sha256").mkdir(parents=True)
    (lay / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')
    (lay / "index.json").write_text('{"schemaVersion": 2, "manifests": []}')
    rootfs = work / "rootfs"
    make_rootfs(rootfs)
    add_image(lay, "app", [tar_dir(rootfs)], config={
        "Cmd": ["/bin/sh"], "Env": ["PATH=/bin", "APP=1"], "StopSignal": "SIGTERM"})
    return lay


class UnixHTTP(http.client.HTTPConnection):
    def __init__(self, path, timeout=30):
        super().__init__("lamina", timeout=timeout)
        self.path = path

    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(self.path)


class Agent:
    def __init__(self, tmp, layout):
        self.tmp = tmp
        self.root = tmp / "root"
        self.state = tmp / "state"
        self.sock = self.state / "lamina.sock"
        self.proc = None
        self.logf = open(tmp / "agent.log", "ab")
        p = self.cli("image", "load", layout)
        assert p.returncode == 0, p.stderr

    def cli(self, *args, timeout=60, input=None):
        env = {k: v for k, v in os.environ.items() if not k.startswith("LAMINA_")}
        return subprocess.run([str(LAMINA), "--root", str(self.root), "--state", str(self.state),
                               *map(str, args)], capture_output=True, text=True, timeout=timeout,
                              env=env, input=input)

    def ok(self, *args, **kw):
        p = self.cli(*args, **kw)
        assert p.returncode == 0, f"lamina {' '.join(map(str, args))}: {p.returncode}\n{p.stdout}{p.stderr}"
        return p.stdout

    def start(self, *extra):
        assert self.proc is None or self.proc.poll() is not None
        self.proc = subprocess.Popen([str(LAMINA), "--root", str(self.root), "--state", str(self.state),
                                      "agent", *extra], stdout=self.logf, stderr=self.logf)
        wait_for(lambda: self.sock.exists() and self.try_version(), timeout=10, what="agent socket")
        return self

    def try_version(self):
        try:
            return self.api("GET", "/v1/version")[0] == 200
        except OSError:
            return False

    def kill9(self):
        self.proc.kill()
        self.proc.wait()

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(timeout=30)

    def api(self, method, path, body=None, raw=None, headers=None):
        c = UnixHTTP(str(self.sock))
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
        c.request(method, path, body=data, headers=headers or {})
        r = c.getresponse()
        text = r.read()
        c.close()
        try:
            return r.status, json.loads(text) if text else None
        except ValueError:
            return r.status, text.decode()

    def inspect(self, name):
        st, body = self.api("GET", f"/v1/containers/{name}")
        assert st == 200, body
        return body

    def containers(self):
        return self.api("GET", "/v1/containers?all=1")[1]

    def monitors(self):
        out = []
        for pid in os.listdir("/proc"):
            if not pid.isdigit():
                continue
            try:
                cmd = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if cmd[0].endswith(b"lamina-monitor") and str(self.state).encode() in b" ".join(cmd):
                out.append(int(pid))
        return out

    def leftovers(self, ids):
        found = []
        for d in (self.root / "containers", self.root / "agent" / "containers", self.state / "oci",
                  self.state / "agent"):
            # the runtime's cache of compiled seccomp filters stays, as a cache does
            left = [x for x in os.listdir(d) if x != ".seccomp-cache"] if d.exists() else []
            if left:
                found.append(f"{d}: {left}")
        found += mounts_under(str(self.root)) + mounts_under(str(self.state))
        if self.monitors():
            found.append(f"monitors still running: {self.monitors()}")
        for d in v1_controller_dirs():
            for i in ids:
                if (d / "lamina" / i).exists():
                    found.append(f"cgroup left: {d / 'lamina' / i}")
        return found


@pytest.fixture
def agent(tmp_path, layout):
    a = Agent(tmp_path, layout).start()
    yield a
    ids = []
    if a.proc.poll() is not None:
        a.start()
    for c in a.containers() or []:
        ids.append(c["id"])
        a.api("DELETE", f"/v1/containers/{c['id']}?force=1")
    a.stop()
    for pid in a.monitors():  # do not leave them to other tests
        os.kill(pid, signal.SIGKILL)
    left = a.leftovers(ids)
    assert not left, left
    log = (tmp_path / "agent.log").read_text(errors="replace")
    for bad in ("AddressSanitizer", "LeakSanitizer", "runtime error:"):
        assert bad not in log, log


def run_d(agent, *args):
    out = agent.ok("run", "-d", *args)
    cid = out.strip().splitlines()[-1]
    assert len(cid) == 64, out
    return cid


def wait_status(agent, name, status, timeout=10):
    wait_for(lambda: agent.inspect(name)["status"] == status, timeout=timeout,
             what=f"{name} {status}")
    return agent.inspect(name)


# --- the CLI ---------------------------------------------------------------

def test_run_foreground_returns_exit_code_and_output(agent):
    p = agent.cli("run", "--rm", IMAGE, "sh", "-c", "echo out; echo err >&2; exit 3")
    assert p.returncode == 3, p.stderr
    assert p.stdout == "out\n"
    assert "err\n" in p.stderr
    assert agent.containers() == []  # --rm


def test_run_foreground_keeps_container_without_rm(agent):
    p = agent.cli("run", "--name", "once", IMAGE, "sh", "-c", "echo $APP $HOSTNAME")
    assert p.returncode == 0 and p.stdout.startswith("1 ")
    c = agent.inspect("once")
    assert c["status"] == "exited" and c["exit_code"] == 0
    assert "once" in agent.ok("ps", "-a")
    assert "once" not in agent.ok("ps")


def test_detached_lifecycle(agent):
    cid = run_d(agent, "--name", "web", "-e", "GREETING=hi", IMAGE, "sh", "-c",
                'trap "echo bye; exit 0" TERM; echo $GREETING; while :; do sleep 0.1; done')
    ps = agent.ok("ps")
    assert "web" in ps and cid[:12] in ps and "Up" in ps
    listed = json.loads(agent.ok("ps", "--format", "json"))
    assert [c["name"] for c in listed] == ["web"]
    wait_for(lambda: "hi" in agent.ok("logs", "web"), what="first log line")
    info = json.loads(agent.ok("inspect", "web"))[0]
    assert info["id"] == cid and info["status"] == "running" and info["pid"] > 0
    assert Path(f"/proc/{info['pid']}").exists()
    assert agent.ok("stop", "-t", "5", "web").strip() == "web"
    c = agent.inspect("web")
    assert c["status"] == "exited" and c["exit_code"] == 0 and c["signal"] == 0
    assert agent.ok("logs", "web") == "hi\nbye\n"
    # start again: same container, same log (appended)
    agent.ok("start", "web")
    wait_for(lambda: agent.ok("logs", "web").count("hi") == 2, what="second run's output")
    agent.ok("kill", "-s", "KILL", "web")
    assert agent.ok("wait", "web").strip() == "137"
    c = agent.inspect("web")
    assert c["signal"] == 9 and c["status"] == "exited"
    assert agent.ok("rm", "web").strip() == "web"
    assert agent.containers() == []
    assert agent.cli("inspect", "web").returncode != 0


def test_exec(agent):
    cid = run_d(agent, "--name", "ex", IMAGE, "sleep", "60")
    p = agent.cli("exec", "ex", "sh", "-c", "echo $(hostname) $(id -un) $APP; exit 4")
    assert p.returncode == 4 and p.stdout == f"{cid[:12]} root 1\n"
    p = agent.cli("exec", "-i", "-u", "test", "-w", "/tmp", "-e", "X=y", "ex", "sh", "-c",
                  "cat; echo $X $PWD $(id -u)", input="from stdin\n")
    assert p.stdout == "from stdin\ny /tmp 1000\n", p.stderr
    p = agent.cli("exec", "ex", "/no/such")
    assert p.returncode == 127 and "/no/such" in p.stderr
    p = agent.cli("exec", "-u", "nobody-here", "ex", "true")
    assert p.returncode == 1 and "nobody-here" in p.stderr
    p = agent.cli("exec", "nosuch", "true")
    assert p.returncode == 1 and "no such container" in p.stderr
    agent.ok("stop", "-t", "0", "ex")
    p = agent.cli("exec", "ex", "true")
    assert p.returncode == 1 and "not running" in p.stderr


def in_pty(agent, *args, rows=33, cols=101, input=b"", timeout=30):
    """Run the CLI on a new terminal of the given size; returns (exit code, output)."""
    import fcntl
    import pty
    import struct
    import termios
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
    env = {k: v for k, v in os.environ.items() if not k.startswith("LAMINA_")}
    p = subprocess.Popen([str(LAMINA), "--root", str(agent.root), "--state", str(agent.state),
                          *map(str, args)], stdin=slave, stdout=slave, stderr=slave, env=env,
                         start_new_session=True)
    os.close(slave)
    if input:
        os.write(master, input)
    out = b""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        import select
        r, _, _ = select.select([master], [], [], 0.2)
        if r:
            try:
                chunk = os.read(master, 65536)
            except OSError:
                break
            if not chunk:
                break
            out += chunk
        elif p.poll() is not None:
            break
    rc = p.wait(timeout=5)
    os.close(master)
    return rc, out.decode(errors="replace")


def test_run_interactive_and_tty(agent):
    p = agent.cli("run", "-i", "--rm", IMAGE, "sh", "-c", "cat; exit 3", input="hello\nworld\n")
    assert p.returncode == 3 and p.stdout == "hello\nworld\n", p.stderr
    rc, out = in_pty(agent, "run", "-it", "--rm", IMAGE, "sh", "-c", "tty; stty size; exit 5")
    assert rc == 5, out
    assert "/dev/pts/" in out and "33 101" in out
    # a terminal wanted, none given
    p = agent.cli("run", "-it", "--rm", IMAGE, "true", input="")
    assert p.returncode == 125 and "TTY" in p.stderr
    assert agent.containers() == []


def test_attach_and_exec_sessions(agent):
    run_d(agent, "-i", "--name", "echoer", IMAGE, "sh", "-c", "while read l; do echo got $l; done; exit 6")
    p = agent.cli("attach", "echoer", input="one\ntwo\n")
    assert p.returncode == 6 and "got one\ngot two\n" in p.stdout, p.stderr
    run_d(agent, "--name", "sess", IMAGE, "sleep", "60")
    rc, out = in_pty(agent, "exec", "-it", "sess", "sh", "-c", "tty; stty size; exit 9", rows=20, cols=70)
    assert rc == 9 and "/dev/pts/" in out and "20 70" in out, out
    # the API refuses a session without the upgrade, and bad exec bodies
    st, body = agent.api("POST", "/v1/containers/sess/exec", {"args": ["true"]})
    assert st == 400 and "Upgrade" in body["message"]
    hdr = {"Connection": "Upgrade", "Upgrade": "lamina-stream"}
    for bad, word in (({"args": []}, "args"), ({"args": ["true"], "x": 1}, "unknown field"),
                      ({"args": ["true"], "cwd": "rel"}, "absolute"), ({"args": ["true"], "user": "ghost"}, "ghost")):
        st, body = agent.api("POST", "/v1/containers/sess/exec", bad, headers=hdr)
        assert st == 400 and word in body["message"], (bad, body)
    assert agent.inspect("sess")["status"] == "running"


def test_exec_output_and_exit_reach_a_late_reader(agent):
    """An exec whose client reads late: the process writes more than the sockets hold,
    exits, and the monitor sends the EXIT frame and closes, while part of the output
    still waits in the agent's relay. The client then sends a frame (stdin): it can no
    longer reach the monitor, but that must not drop what the relay holds for the
    client; the client reads all of the output, then the exit code. (The relay used to
    close both ends when a write to the closed monitor failed: exec -it sessions ended
    without their exit status now and then.)"""
    from test_monitor import EXIT, STDIN, STDOUT, frame
    run_d(agent, "--name", "late", IMAGE, "sleep", "60")
    size = 300000
    body = json.dumps({"args": ["sh", "-c", f"head -c {size} /dev/zero; exit 3"], "stdin": True}).encode()
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(15)
    sock.connect(str(agent.sock))
    sock.sendall(b"POST /v1/containers/late/exec HTTP/1.1\r\nHost: lamina\r\n"
                 b"Connection: Upgrade\r\nUpgrade: lamina-stream\r\nContent-Type: application/json\r\n"
                 + f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
    # not reading: wait for the process to be gone (its output is in the sockets and the relay)
    def exec_gone():
        for pid in os.listdir("/proc"):
            try:
                if pid.isdigit() and f"head -c {size}".encode() in Path(f"/proc/{pid}/cmdline").read_bytes():
                    return False
            except OSError:
                pass
        return True
    wait_for(exec_gone, timeout=15, what="the exec'd process to exit")
    time.sleep(0.2)  # the monitor's last frame and close (nothing to wait on from here)
    sock.sendall(frame(STDIN, b"late input\n"))
    buf = b""
    while b"\r\n\r\n" not in buf:
        buf += sock.recv(65536)
    head, buf = buf.split(b"\r\n\r\n", 1)
    assert head.startswith(b"HTTP/1.1 101"), head
    def need(n):
        nonlocal buf
        while len(buf) < n:
            data = sock.recv(65536)
            assert data, f"the session ended after {got} bytes of output, without the exit status"
            buf += data
    got, code = 0, None
    while code is None:
        need(8)
        kind, n = struct.unpack(">B3xI", buf[:8])
        need(8 + n)
        payload, buf = buf[8:8 + n], buf[8 + n:]
        if kind == STDOUT:
            got += len(payload)
        elif kind == EXIT:
            code = json.loads(payload)["exit_code"]
    sock.close()
    assert (got, code) == (size, 3)


def test_rm_running_needs_force(agent):
    run_d(agent, "--name", "busy", IMAGE, "sleep", "60")
    p = agent.cli("rm", "busy")
    assert p.returncode == 1 and "running" in p.stderr
    assert agent.inspect("busy")["status"] == "running"
    agent.ok("rm", "-f", "busy")
    assert agent.containers() == []


def test_restart_command_and_names(agent):
    run_d(agent, "--name", "r1", IMAGE, "sh", "-c", "echo run; sleep 60")
    first = agent.inspect("r1")["pid"]
    agent.ok("restart", "-t", "0", "r1")
    c = agent.inspect("r1")
    assert c["status"] == "running" and c["pid"] != first
    p = agent.cli("run", "-d", "--name", "r1", IMAGE, "true")
    assert p.returncode != 0 and "already in use" in p.stderr


def test_logs_options(agent):
    run_d(agent, "--name", "talk", IMAGE, "sh", "-c",
          "for i in 1 2 3 4 5; do echo out$i; echo err$i >&2; done; printf partial")
    wait_status(agent, "talk", "exited")
    p = agent.cli("logs", "talk")
    assert p.stdout == "out1\nout2\nout3\nout4\nout5\npartial"
    assert p.stderr == "err1\nerr2\nerr3\nerr4\nerr5\n"
    p = agent.cli("logs", "--tail", "2", "talk")
    assert p.stdout.count("out") + p.stderr.count("err") == 2
    p = agent.cli("logs", "-t", "talk")
    first = p.stdout.splitlines()[0]
    stamp, text = first.split(" ", 1)
    assert text == "out1" and stamp.endswith("Z") and "T" in stamp
    assert agent.cli("logs", "--since", "1m", "talk").stdout.startswith("out1")
    assert agent.cli("logs", "--since", "2999-01-01T00:00:00Z", "talk").stdout == ""
    # the raw API: CRI lines
    st, body = agent.api("GET", "/v1/containers/talk/logs?stderr=0")
    assert st == 200
    lines = body.splitlines()
    assert lines[0].split(" ", 3)[1:] == ["stdout", "F", "out1"]
    assert lines[-1].split(" ", 3)[1:] == ["stdout", "P", "partial"]


def test_logs_follow_ends_with_the_container(agent):
    run_d(agent, "--name", "f", IMAGE, "sh", "-c", "for i in 1 2 3; do echo l$i; sleep 0.3; done")
    t = time.monotonic()
    p = agent.cli("logs", "-f", "f", timeout=20)
    assert p.stdout == "l1\nl2\nl3\n"
    assert time.monotonic() - t < 10


def test_exit_code_and_signal_recorded(agent):
    run_d(agent, "--name", "e42", IMAGE, "sh", "-c", "exit 42")
    assert agent.ok("wait", "e42").strip() == "42"
    c = agent.inspect("e42")
    assert c["exit_code"] == 42 and c["signal"] == 0 and c["finished_at"] >= c["started_at"]
    # a signal the init handles, sent with kill
    run_d(agent, "--name", "term", IMAGE, "sh", "-c", 'trap "exit 3" TERM; while :; do sleep 0.1; done')
    agent.ok("kill", "-s", "TERM", "term")
    assert agent.ok("wait", "term").strip() == "3"


def test_stop_signal_and_timeout(agent):
    # sh as pid 1 ignores SIGTERM: after the grace period it is killed
    run_d(agent, "--name", "stubborn", "--stop-timeout", "1", IMAGE, "sleep", "60")
    t = time.monotonic()
    agent.ok("stop", "stubborn")
    took = time.monotonic() - t
    c = agent.inspect("stubborn")
    assert c["exit_code"] == 137 and 0.9 < took < 8
    # a stop signal it does handle
    run_d(agent, "--name", "polite", "--stop-signal", "USR1", IMAGE, "sh", "-c",
          'trap "exit 5" USR1; while :; do sleep 0.1; done')
    agent.ok("stop", "-t", "30", "polite")
    assert agent.inspect("polite")["exit_code"] == 5


def test_restart_on_failure_with_backoff(agent):
    run_d(agent, "--name", "flaky", "--restart", "on-failure:3", IMAGE, "sh", "-c", "echo try; exit 1")
    wait_for(lambda: agent.inspect("flaky")["restart_count"] == 3 and
             agent.inspect("flaky")["status"] == "exited", timeout=15, what="three restarts")
    time.sleep(1)
    c = agent.inspect("flaky")
    assert c["restart_count"] == 3 and c["exit_code"] == 1
    assert agent.ok("logs", "flaky") == "try\n" * 4
    st, body = agent.api("GET", "/v1/events?since=0")
    ev = [json.loads(line) for line in body.splitlines()]
    delays = [e["attrs"]["delay_ms"] for e in ev if e["type"] == "restart-scheduled"]
    assert delays == [100, 200, 400]


def test_restart_policy_no_restart_after_success_and_always(agent):
    run_d(agent, "--name", "done", "--restart", "on-failure", IMAGE, "true")
    wait_status(agent, "done", "exited")
    time.sleep(0.5)
    assert agent.inspect("done")["restart_count"] == 0
    run_d(agent, "--name", "loop", "--restart", "always", IMAGE, "sh", "-c", "sleep 0.2")
    wait_for(lambda: agent.inspect("loop")["restart_count"] >= 2, timeout=10, what="restarts")
    agent.ok("stop", "loop")
    n = agent.inspect("loop")["restart_count"]
    time.sleep(1)
    c = agent.inspect("loop")
    assert c["restart_count"] == n and c["status"] == "exited"  # a user stop ends it


def test_stats(agent):
    run_d(agent, "--name", "st", "--memory", "64m", "--pids-limit", "50", IMAGE, "sleep", "60")
    st, body = agent.api("GET", "/v1/containers/st/stats")
    assert st == 200
    assert body["memory_limit"] == 64 << 20 and body["pids_limit"] == 50 and body["pids_current"] >= 1
    out = agent.ok("stats", "--no-stream", "--format", "json", "st")
    assert "st" in out
    p = agent.cli("stats", "--no-stream", "st")
    assert p.returncode == 0 and "64MiB" in p.stdout


def test_events_follow(agent):
    c = UnixHTTP(str(agent.sock), timeout=10)
    c.request("GET", "/v1/events?follow=1")
    r = c.getresponse()
    assert r.status == 200
    run_d(agent, "--name", "ev", IMAGE, "true")
    seen = []
    while "die" not in seen:
        line = r.readline()
        assert line, "the event stream ended"
        e = json.loads(line)
        if e["name"] == "ev":
            seen.append(e["type"])
    assert seen[:3] == ["create", "start", "die"]
    c.close()


def test_oom_is_reported(agent):
    run_d(agent, "--name", "hog", "--memory", "16m", IMAGE, "sh", "-c", "head -c 200m /dev/zero | tail")
    assert agent.ok("wait", "hog").strip() == "137"
    c = agent.inspect("hog")
    assert c["oom_killed"] is True
    st, body = agent.api("GET", "/v1/events?since=0")
    assert any(json.loads(line)["type"] == "oom" for line in body.splitlines())


# --- the agent goes away and comes back ----------------------------------

def test_agent_kill9_loses_nothing(agent):
    run_d(agent, "--name", "counter", IMAGE, "sh", "-c",
          "i=0; while :; do i=$((i+1)); echo $i; sleep 0.02; done")
    run_d(agent, "--name", "short", IMAGE, "sh", "-c", "sleep 1; exit 7")
    run_d(agent, "--name", "retry", "--restart", "on-failure:1", IMAGE, "sh", "-c", "sleep 1; exit 9")
    pid = agent.inspect("counter")["pid"]
    agent.kill9()
    time.sleep(2)  # short and retry end while no agent runs
    assert Path(f"/proc/{pid}").exists(), "the container died with the agent"
    assert agent.cli("ps").returncode == 125
    agent.start()
    c = agent.inspect("counter")
    assert c["status"] == "running" and c["pid"] == pid
    s = agent.inspect("short")
    assert s["status"] == "exited" and s["exit_code"] == 7
    wait_for(lambda: agent.inspect("retry")["restart_count"] == 1, what="restart applied after reconcile")
    # the log goes on: no gap, no duplicate across the agent's absence
    time.sleep(0.3)
    agent.ok("stop", "-t", "0", "counter")
    nums = [int(x) for x in agent.ok("logs", "counter").split()]
    assert nums == list(range(1, len(nums) + 1)) and len(nums) > 50


def test_agent_kill9_repeatedly_while_containers_start_and_exit(agent):
    expected = {}
    for round_ in range(4):
        for k in range(3):
            name = f"c{round_}{k}"
            code = round_ * 10 + k
            agent.cli("run", "-d", "--name", name, IMAGE, "sh", "-c", f"echo {name}; sleep 0.{k}; exit {code}")
            expected[name] = code
        time.sleep(0.1 * round_)
        agent.kill9()
        agent.start()
    for name, code in expected.items():
        c = wait_status(agent, name, "exited")
        assert c["exit_code"] == code, (name, c)
        assert agent.ok("logs", name) == f"{name}\n"
    assert len(agent.containers()) == len(expected)


def test_sigterm_leaves_containers_running_and_option_stops_them(agent):
    run_d(agent, "--name", "stay", IMAGE, "sleep", "60")
    pid = agent.inspect("stay")["pid"]
    agent.stop()
    assert Path(f"/proc/{pid}").exists()
    agent.start("--stop-containers-on-exit")
    assert agent.inspect("stay")["status"] == "running"
    agent.stop()
    assert not Path(f"/proc/{pid}").exists()
    agent.start()
    assert agent.inspect("stay")["status"] == "exited"


def test_killed_monitor_is_reported_lost(agent):
    run_d(agent, "--name", "orphan", IMAGE, "sleep", "60")
    pid = agent.inspect("orphan")["pid"]
    mons = agent.monitors()
    assert len(mons) == 1
    os.kill(mons[0], signal.SIGKILL)
    c = wait_status(agent, "orphan", "lost")
    assert "monitor" in c["error"]
    wait_for(lambda: not Path(f"/proc/{pid}").exists(), what="the container stopped")
    assert not (agent.state / "oci" / c["id"]).exists()
    st, body = agent.api("GET", "/v1/events?since=0")
    assert any(json.loads(line)["type"] == "lost" for line in body.splitlines())


def test_reconcile_removes_what_has_no_owner(agent):
    run_d(agent, "--name", "keep", IMAGE, "sleep", "60")
    agent.kill9()
    stray = "ab" * 32
    for d in (agent.root / "agent" / "containers" / stray, agent.state / "agent" / stray,
              agent.root / "containers" / stray):
        d.mkdir(parents=True)
    agent.start()
    for d in (agent.root / "agent" / "containers" / stray, agent.state / "agent" / stray,
              agent.root / "containers" / stray):
        assert not d.exists()
    assert agent.inspect("keep")["status"] == "running"
    assert b"no container owns it" in (agent.tmp / "agent.log").read_bytes()


def test_full_log_disk_drops_lines_and_container_runs_on(agent, tmp_path):
    run_d(agent, "--name", "small", IMAGE, "true")  # its directory shows where logs go
    cid = agent.inspect("small")["id"]
    agent.ok("rm", "small")
    logdir = agent.root / "agent" / "containers"
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "lt-logs", str(logdir)], check=True)
    try:
        run_d(agent, "--name", "noisy", IMAGE, "sh", "-c",
              "i=0; while [ $i -lt 40000 ]; do echo line-$i-xxxxxxxxxxxxxxxxxxxxxxxx; i=$((i+1)); done; exit 4")
        c = wait_status(agent, "noisy", "exited", timeout=60)
        assert c["exit_code"] == 4
        assert c["log_dropped"] > 0
        agent.ok("rm", "noisy")
    finally:
        subprocess.run(["umount", "-l", str(logdir)])
    assert cid


# --- bad input --------------------------------------------------------------

def test_api_bad_input_changes_nothing(agent):
    a = agent
    before = sorted(os.listdir(a.root / "containers")) if (a.root / "containers").exists() else []
    st, body = a.api("POST", "/v1/containers", raw=b"{not json")
    assert st == 400 and "malformed JSON" in body["message"] and body["code"] == "bad_request"
    st, body = a.api("POST", "/v1/containers", {"image": IMAGE, "colour": "red"})
    assert st == 400 and "colour" in body["message"]
    st, body = a.api("POST", "/v1/containers", {"image": IMAGE, "memory": "lots"})
    assert st == 400 and "memory" in body["message"]
    st, body = a.api("POST", "/v1/containers", {"image": IMAGE, "cmd": "not-a-list"})
    assert st == 400 and "cmd" in body["message"]
    st, body = a.api("POST", "/v1/containers", {"image": "localhost/nope:1"})
    assert st == 404 and "nope" in body["message"]
    st, body = a.api("POST", "/v1/containers", raw=b'{"image": "' + b"x" * (2 << 20) + b'"}')
    assert st == 413
    st, body = a.api("GET", "/v1/nothing/here")
    assert st == 404 and "unknown route" in body["message"]
    st, body = a.api("POST", "/v1/containers/nosuch/start")
    assert st == 404 and "no such container" in body["message"]
    st, body = a.api("POST", "/v1/containers", {"image": IMAGE, "name": "../evil"})
    assert st == 400
    st, body = a.api("POST", "/v1/containers", {"image": IMAGE, "name": "dup", "cmd": ["true"]})
    assert st == 201
    st, body = a.api("POST", "/v1/containers", {"image": IMAGE, "name": "dup"})
    assert st == 409 and "already in use" in body["message"]
    assert a.ok("logs", "dup") == ""  # never started: no output, no error
    assert [c["name"] for c in a.containers()] == ["dup"]
    after = sorted(os.listdir(a.root / "containers"))
    assert len(after) == len(before) + 1  # only dup's layer
    assert a.api("GET", "/v1/version")[0] == 200


def test_cli_bad_input(agent):
    p = agent.cli("run", "--rm", IMAGE, "/no/such/command")
    assert p.returncode == 127 and "/no/such/command" in p.stderr
    p = agent.cli("run", "-d", "--memory", "lots", IMAGE)
    assert p.returncode == 2 and "--memory" in p.stderr
    p = agent.cli("run", "-d", "--restart", "sometimes", IMAGE)
    assert p.returncode == 125 and "restart" in p.stderr
    p = agent.cli("run", "-d", "--pull", "never", "localhost/nope:1")
    assert p.returncode == 125 and "nope" in p.stderr
    assert agent.containers() == []


def test_socket_is_private(agent):
    st = os.stat(agent.sock)
    assert st.st_mode & 0o777 == 0o600 and st.st_uid == 0
    # even with the mode opened up, a peer that is not root is refused (the socket is
    # moved to /tmp so that the other user can reach it at all)
    agent.stop()
    agent.sock = Path(f"/tmp/lamina-test-{os.getpid()}.sock")
    agent.start("--socket", agent.sock)
    try:
        os.chmod(agent.sock, 0o666)
        p = subprocess.run(["setpriv", "--reuid", "65534", "--regid", "65534", "--clear-groups",
                            "curl", "-s", "--unix-socket", str(agent.sock), "http://x/v1/containers"],
                           capture_output=True, text=True)
        assert p.returncode == 0 and json.loads(p.stdout)["code"] == "forbidden", p
    finally:
        agent.stop()
        agent.sock = agent.state / "lamina.sock"
        agent.start()


def test_second_agent_is_refused(agent):
    p = subprocess.run([str(LAMINA), "--root", str(agent.root), "--state", str(agent.state), "agent"],
                       capture_output=True, text=True, timeout=10)
    assert p.returncode != 0 and "another agent" in p.stderr
    assert agent.try_version()


def test_commands_without_agent_say_so(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("LAMINA_")}
    for args in (["ps"], ["logs", "x"], ["run", "-d", IMAGE], ["stop", "x"]):
        p = subprocess.run([str(LAMINA), "--root", str(tmp_path / "r"), "--state", str(tmp_path / "s"),
                            *args], capture_output=True, text=True, env=env)
        assert p.returncode == 125, (args, p.stderr)
        assert "lamina agent" in p.stderr, (args, p.stderr)
