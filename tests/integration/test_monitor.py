"""lamina-monitor on its own: attach and exec sessions, stdin, terminals, start-on-attach.

Each test makes a bundle (conftest.make_rootfs: busybox + /probe; config.json from
`lamina oci spec`, edited), starts <build>/src/lamina-monitor the way the agent does
(a pipe as --ready-fd 3, one JSON line back) with a temporary --oci-root and --dir, and
talks to <dir>/monitor.sock with the framing of src/monitor/stream.h. The fixture's
finalizer kills what is left (the container's init, the monitor), and fails the test
when anything was left: the runtime's state, the cgroup, a monitor process.
"""

import json
import os
import select
import shutil
import signal
import socket
import struct
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from conftest import (BUILD, IS_RUNC, OCI, cgroup_dirs_for, default_cgroups_path,
                      kill_cgroup_tasks, make_rootfs, remove_cgroup_tree, state_entries,
                      unique_id, wait_for)

pytestmark = pytest.mark.skipif(IS_RUNC, reason="lamina only: the monitor is lamina's")

MONITOR = BUILD / "src" / "lamina-monitor"

STDIN, STDOUT, STDERR, EXIT, ERROR, STDIN_EOF, RESIZE = range(7)


def frame(kind, payload=b""):
    if isinstance(payload, str):
        payload = payload.encode()
    return struct.pack(">B3xI", kind, len(payload)) + payload


def proc_alive(pid, start=None):
    """Whether pid runs (not a zombie), and is the process that started at `start`."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return False
    if fields[0] == "Z":
        return False
    return start is None or int(fields[19]) == start


def children_of(pid):
    """(pid, state, comm) of the processes whose parent is pid."""
    out = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                text = f.read()
        except OSError:
            continue
        comm = text[text.index("(") + 1:text.rindex(")")]
        fields = text.rsplit(")", 1)[1].split()
        if int(fields[1]) == pid:
            out.append((int(d), fields[0], comm))
    return out


class Session:
    """One connection to monitor.sock: the request line, its answer, then frames."""

    def __init__(self, path, request, timeout=15):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        self.sock.connect(path)
        self.buf = b""
        self.sock.sendall((json.dumps(request) + "\n").encode())
        self.reply = json.loads(self._line())

    def _recv(self):
        data = self.sock.recv(65536)
        if not data:
            raise EOFError("the monitor closed the session")
        self.buf += data

    def _line(self):
        while b"\n" not in self.buf:
            self._recv()
        line, self.buf = self.buf.split(b"\n", 1)
        return line

    def frame(self):
        while len(self.buf) < 8:
            self._recv()
        kind, n = struct.unpack(">B3xI", self.buf[:8])
        while len(self.buf) < 8 + n:
            self._recv()
        payload, self.buf = self.buf[8:8 + n], self.buf[8 + n:]
        return kind, payload

    def send(self, kind, payload=b""):
        self.sock.sendall(frame(kind, payload))

    def stdin(self, data):
        self.send(STDIN, data)

    def resize(self, rows, cols):
        self.send(RESIZE, json.dumps({"rows": rows, "cols": cols}))

    def read_until(self, text, timeout=10):
        """Output (stdout + stderr) until it contains text; returns it."""
        deadline = time.monotonic() + timeout
        out = b""
        while text.encode() not in out:
            assert time.monotonic() < deadline, f"no {text!r} in {out!r}"
            kind, payload = self.frame()
            assert kind in (STDOUT, STDERR), (kind, payload, out)
            out += payload
        return out.decode(errors="replace")

    def collect(self):
        """Frames until the final one: {'out', 'err', 'exit', 'error'}; then the close."""
        res = {"out": b"", "err": b"", "exit": None, "error": None}
        while True:
            kind, payload = self.frame()
            if kind == STDOUT:
                res["out"] += payload
            elif kind == STDERR:
                res["err"] += payload
            elif kind == EXIT:
                res["exit"] = json.loads(payload)
                break
            elif kind == ERROR:
                res["error"] = json.loads(payload)
                break
            else:
                raise AssertionError(f"unexpected frame {kind} {payload!r}")
        res["out"] = res["out"].decode(errors="replace")
        res["err"] = res["err"].decode(errors="replace")
        assert self.sock.recv(1) == b"", "the session goes on after its final frame"
        return res

    def close(self):
        self.sock.close()


class Monitor:
    """A bundle, a monitor directory, an OCI root; start() runs lamina-monitor."""

    def __init__(self, tmp_path):
        self.tmp = tmp_path
        self.id = unique_id("mon")
        self.bundle = tmp_path / "bundle"
        self.root = tmp_path / "oci"
        self.dir = tmp_path / "run"
        self.log = self.dir / "ctr.log"
        self.stderr = tmp_path / "monitor.stderr"
        self.dir.mkdir(mode=0o700)
        self.extra_dirs = []
        self.bundle.mkdir()
        make_rootfs(self.bundle / "rootfs")
        subprocess.run([*OCI, "spec", "--bundle", str(self.bundle)], check=True,
                       capture_output=True)
        self.config = json.loads((self.bundle / "config.json").read_text())
        self.config["linux"]["cgroupsPath"] = default_cgroups_path(self.id)
        self.info = None
        self.sessions = []
        self.dirfd = os.open(self.dir, os.O_PATH | os.O_DIRECTORY)
        # through the directory fd: pytest's paths are longer than sun_path allows
        self.sock_path = f"/proc/self/fd/{self.dirfd}/monitor.sock"

    def use_dir(self, path):
        """Another --dir (before start), removed at teardown."""
        os.close(self.dirfd)
        self.dir = Path(path)
        self.extra_dirs.append(self.dir)
        self.log = self.dir / "ctr.log"
        self.dirfd = os.open(self.dir, os.O_PATH | os.O_DIRECTORY)
        self.sock_path = f"/proc/self/fd/{self.dirfd}/monitor.sock"

    def start(self, *args, flags=(), terminal=False, expect_error=False):
        self.config["process"]["args"] = list(args)
        self.config["process"]["terminal"] = terminal
        (self.bundle / "config.json").write_text(json.dumps(self.config, indent=1))
        argv = [str(MONITOR), "--id", self.id, "--bundle", str(self.bundle), "--oci-root",
                str(self.root), "--dir", str(self.dir), "--log", str(self.log),
                "--log-max-size", "100000000", "--ready-fd", "3", *flags]
        r, w = os.pipe()
        if w == 3:
            w2 = os.dup(w)
            os.close(w)
            w = w2
        with open(self.stderr, "ab") as err:
            pid = os.posix_spawn(str(MONITOR), argv, os.environ, file_actions=[
                (os.POSIX_SPAWN_OPEN, 0, "/dev/null", os.O_RDONLY, 0),
                (os.POSIX_SPAWN_OPEN, 1, "/dev/null", os.O_WRONLY, 0),
                (os.POSIX_SPAWN_DUP2, err.fileno(), 2),
                (os.POSIX_SPAWN_DUP2, w, 3),
            ])
        os.close(w)
        try:
            # the first process only detaches the monitor
            _, status = os.waitpid(pid, 0)
            assert os.waitstatus_to_exitcode(status) == 0
            line = b""
            while b"\n" not in line:
                ready, _, _ = select.select([r], [], [], 30)
                assert ready, "the monitor did not report within 30 s"
                chunk = os.read(r, 4096)
                if not chunk:
                    break
                line += chunk
        finally:
            os.close(r)
        info = json.loads(line)
        if expect_error:
            assert "error" in info, info
            return info
        assert "error" not in info, info
        self.info = info
        return info

    # -- talking to it ------------------------------------------------------------

    def session(self, request):
        s = Session(self.sock_path, request)
        self.sessions.append(s)
        return s

    def attach(self, stdin=False):
        s = self.session({"op": "attach", "stdin": stdin})
        assert s.reply == {"ok": True}, s.reply
        return s

    def exec(self, *args, **kw):
        req = {"op": "exec", "args": list(args)}
        req.update(kw)
        return self.session(req)

    def run_exec(self, *args, **kw):
        s = self.exec(*args, **kw)
        assert s.reply == {"ok": True}, s.reply
        return s.collect()

    def status(self):
        s = self.session({"op": "status"})
        return s.reply

    # -- its life -----------------------------------------------------------------

    @property
    def monitor_alive(self):
        return proc_alive(self.info["monitor_pid"], self.info["monitor_start"])

    def wait_exit(self, timeout=15):
        """Waits for the monitor to end; returns exit.json."""
        wait_for(lambda: not self.monitor_alive, timeout=timeout, what="the monitor to exit")
        return json.loads((self.dir / "exit.json").read_text())

    def log_entries(self):
        """(stream, text) of each log entry (F and P alike)."""
        out = []
        if not self.log.exists():
            return out
        for line in self.log.read_text(errors="replace").splitlines():
            _ts, stream, _tag, msg = (line.split(" ", 3) + [""])[:4]
            out.append((stream, msg))
        return out

    def log_text(self, stream="stdout"):
        return "\n".join(m for s, m in self.log_entries() if s == stream)

    def leftovers(self):
        """What a monitor must not leave behind."""
        problems = []
        if self.info and self.monitor_alive:
            problems.append(f"monitor {self.info['monitor_pid']} still running")
        left = state_entries(self.root)
        if left:
            problems.append(f"runtime state left in {self.root}: {left}")
        try:
            wait_for(lambda: not cgroup_dirs_for(default_cgroups_path(self.id)), timeout=2)
        except AssertionError:
            problems.append(f"cgroup left: {cgroup_dirs_for(default_cgroups_path(self.id))}")
        if self.dir.exists():
            extra = sorted(set(os.listdir(self.dir)) - {"ctr.log", "exit.json", "monitor.json"})
            if extra:
                problems.append(f"left in the monitor's directory: {extra}")
        return problems

    def teardown(self):
        for s in self.sessions:
            s.close()
        problems = []
        if self.info and self.monitor_alive:
            problems.append("the test left its container running")
            try:
                os.kill(self.info["pid"], signal.SIGKILL)
            except ProcessLookupError:
                pass
            try:
                wait_for(lambda: not self.monitor_alive, timeout=10)
            except AssertionError:
                os.kill(self.info["monitor_pid"], signal.SIGKILL)
        problems += self.leftovers()
        # whatever is left goes, so the suite's leak checks stay quiet
        if state_entries(self.root):
            subprocess.run([*OCI, "--root", str(self.root), "delete", "--force", self.id],
                           capture_output=True, timeout=20)
        for d in cgroup_dirs_for(default_cgroups_path(self.id)):
            kill_cgroup_tasks(d)
            remove_cgroup_tree(d)
        os.close(self.dirfd)
        for d in self.extra_dirs:
            shutil.rmtree(d, ignore_errors=True)
        return problems


@pytest.fixture
def mon(tmp_path):
    m = Monitor(tmp_path)
    yield m
    problems = m.teardown()
    if problems:
        pytest.fail("after the test:\n  " + "\n  ".join(problems), pytrace=False)


def sh(script):
    return ("sh", "-c", script)


# ---------------------------------------------------------------------------
# attach


def test_attach_sees_output_and_exit(mon):
    mon.start(*sh("sleep 1; echo hello; echo oops >&2; exit 3"))
    st = mon.status()
    assert st["running"] is True and st["pid"] == mon.info["pid"], st
    s = mon.attach()
    res = s.collect()
    assert res["out"] == "hello\n"
    assert res["err"] == "oops\n"
    assert res["exit"] == {"exit_code": 3, "signal": 0, "oom_killed": False}
    rec = mon.wait_exit()
    assert rec["exit_code"] == 3
    assert mon.log_entries() == [("stdout", "hello"), ("stderr", "oops")]
    assert mon.leftovers() == []


def test_two_attaches_at_once(mon):
    mon.start(*sh("sleep 1; for i in 1 2 3; do echo line$i; done; exit 0"))
    a, b = mon.attach(), mon.attach()
    ra, rb = a.collect(), b.collect()
    assert ra["out"] == rb["out"] == "line1\nline2\nline3\n"
    assert ra["exit"]["exit_code"] == rb["exit"]["exit_code"] == 0
    mon.wait_exit()


def test_attach_exit_by_signal(mon):
    mon.start("sleep", "30")
    s = mon.attach()
    os.kill(mon.info["pid"], signal.SIGKILL)
    res = s.collect()
    assert res["exit"] == {"exit_code": 137, "signal": 9, "oom_killed": False}
    assert mon.wait_exit()["signal"] == 9


def test_stdin_goes_to_the_container(mon):
    mon.start("cat", flags=["--stdin"])
    s = mon.attach(stdin=True)
    s.stdin("hello\n")
    assert s.read_until("hello\n") == "hello\n"
    s.stdin("second ")
    s.stdin("line\n")
    assert s.read_until("line\n") == "second line\n"
    s.send(STDIN_EOF)
    res = s.collect()
    assert res["exit"]["exit_code"] == 0
    mon.wait_exit()
    assert mon.log_text() == "hello\nsecond line"


def test_stdin_eof_closes_it_for_everyone(mon):
    # a second client (without stdin) sees what the first one's EOF does
    mon.start(*sh("cat; echo after-eof"), flags=["--stdin"])
    watcher = mon.attach()
    typer = mon.attach(stdin=True)
    typer.stdin("x\n")
    typer.send(STDIN_EOF)
    typer.close()
    res = watcher.collect()
    assert res["out"] == "x\nafter-eof\n"
    assert res["exit"]["exit_code"] == 0
    mon.wait_exit()


def test_attach_with_stdin_needs_the_flag(mon):
    mon.start("sleep", "30")
    s = mon.session({"op": "attach", "stdin": True})
    assert "stdin" in s.reply["error"] and s.reply["code"] == 22, s.reply
    with pytest.raises(EOFError):
        s.frame()
    # the container did not notice
    assert mon.status()["running"] is True
    os.kill(mon.info["pid"], signal.SIGKILL)
    mon.wait_exit()


def test_bad_requests(mon):
    mon.start("sleep", "30")
    for req, word in ((b"not json\n", "op"), (b'{"op":"dance"}\n', "unknown op")):
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(10)
        sock.connect(mon.sock_path)
        sock.sendall(req)
        reply = json.loads(sock.makefile("rb").readline())
        assert word in reply["error"] and reply["code"] == 22, reply
        sock.close()
    # a client frame of a type only the monitor sends ends the session with ERROR
    s = mon.attach()
    s.send(STDOUT, b"x")
    assert s.collect()["error"]["message"]
    assert mon.status()["running"] is True
    os.kill(mon.info["pid"], signal.SIGKILL)
    mon.wait_exit()


# ---------------------------------------------------------------------------
# terminals


def test_tty(mon):
    mon.start(*sh("tty; read x; stty size; exit 5"), flags=["--tty", "--stdin", "--start-on-attach"],
              terminal=True)
    s = mon.attach(stdin=True)
    # a terminal has no stderr: all is STDOUT
    out = s.read_until("\n")
    assert out.startswith("/dev/pts/"), out
    s.resize(33, 101)
    s.stdin("go\n")
    res = s.collect()
    text = (out + res["out"]).replace("\r\n", "\n")
    assert "33 101\n" in text, text
    assert res["err"] == ""
    assert res["exit"]["exit_code"] == 5
    mon.wait_exit()
    logged = mon.log_text()
    assert "/dev/pts/" in logged and "33 101" in logged, logged
    assert mon.log_text("stderr") == ""


def test_tty_eof_is_the_terminals(mon):
    mon.start("cat", flags=["--tty", "--stdin"], terminal=True)
    s = mon.attach(stdin=True)
    s.stdin("abc\n")
    s.read_until("abc\r\nabc\r\n")   # the echo, then cat's copy
    s.send(STDIN_EOF)   # ^D at the start of a line: cat reads EOF
    assert s.collect()["exit"]["exit_code"] == 0
    mon.wait_exit()


def test_tty_flag_and_config_must_agree(mon):
    info = mon.start("true", flags=["--tty"], terminal=False, expect_error=True)
    assert "process.terminal" in info["error"], info
    info = mon.start("true", terminal=True, expect_error=True)
    assert "--tty" in info["error"], info
    assert mon.leftovers() == []


# ---------------------------------------------------------------------------
# start on attach


def test_start_on_attach_sees_the_first_line(mon):
    mon.start(*sh("echo first; sleep 1; echo second"), flags=["--start-on-attach"])
    time.sleep(1.0)
    st = mon.status()
    assert st["started"] is False and st["running"] is False, st
    assert mon.log_entries() == []
    s = mon.attach()
    res = s.collect()
    assert res["out"] == "first\nsecond\n"
    assert res["exit"]["exit_code"] == 0
    mon.wait_exit()
    assert mon.log_text() == "first\nsecond"


def test_without_start_on_attach_a_late_attach_misses_output(mon):
    # the counterpart of the test above: what start-on-attach is for
    mon.start(*sh("echo first; sleep 2; echo second"))
    wait_for(lambda: "first" in mon.log_text(), what="the first line in the log")
    s = mon.attach()
    assert s.collect()["out"] == "second\n"
    mon.wait_exit()


def test_start_on_attach_killed_before_start(mon):
    mon.start("sleep", "30", flags=["--start-on-attach"])
    os.kill(mon.info["pid"], signal.SIGKILL)
    assert mon.wait_exit()["signal"] == 9


# ---------------------------------------------------------------------------
# exec


@pytest.fixture
def running(mon):
    mon.start("sleep", "60")
    yield mon
    if mon.monitor_alive:
        os.kill(mon.info["pid"], signal.SIGKILL)
        mon.wait_exit()


def test_exec_output_stderr_and_exit_code(running):
    res = running.run_exec(*sh("echo out; echo err >&2; exit 7"))
    assert res["out"] == "out\n" and res["err"] == "err\n"
    assert res["exit"] == {"exit_code": 7, "signal": 0, "oom_killed": False}


def test_exec_env_cwd(running):
    res = running.run_exec(*sh('echo "$FOO"; pwd'), env=["FOO=bar"], cwd="/tmp")
    assert res["out"] == "bar\n/tmp\n"


def test_exec_missing_command_is_an_error_line(running):
    s = running.exec("/no/such/command")
    assert s.reply["code"] == 2, s.reply          # ENOENT, not a stream with exit 127
    assert "/no/such/command" in s.reply["error"], s.reply
    s = running.exec("nosuchcommand")
    assert s.reply["code"] == 2 and "not found" in s.reply["error"], s.reply


def test_exec_bad_requests(running):
    for req in ({"args": []}, {"args": "ls"}, {"args": ["ls"], "env": "A=1"},
                {"args": ["ls"], "tty": "yes"}, {"args": ["ls"], "user": 0}):
        s = running.session({"op": "exec", **req})
        assert s.reply.get("code") == 22, (req, s.reply)
    s = running.exec("id", user="nobody")       # names are the agent's to resolve
    assert s.reply.get("code") == 22, s.reply


def test_exec_with_stdin(running):
    s = running.exec("cat", stdin=True)
    assert s.reply == {"ok": True}
    s.stdin("one\n")
    assert s.read_until("one\n") == "one\n"
    s.stdin("two\n")
    s.send(STDIN_EOF)
    res = s.collect()
    assert res["out"] == "two\n" and res["exit"]["exit_code"] == 0


def test_exec_stdin_sent_ahead_and_closed(running):
    # everything at once, then the client goes: the input still arrives, EOF follows
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.connect(running.sock_path)
    sock.sendall(json.dumps({"op": "exec", "args": ["sh", "-c", "cat > /dev/shm/in"],
                             "stdin": True}).encode() + b"\n"
                 + frame(STDIN, "sent ahead\n") + frame(STDIN_EOF))
    sock.close()
    res = wait_for(lambda: running.run_exec("cat", "/dev/shm/in")["out"] or None,
                   what="the input in the file")
    assert res == "sent ahead\n"


def test_exec_without_stdin_reads_nothing(running):
    res = running.run_exec("cat")
    assert res["out"] == "" and res["exit"]["exit_code"] == 0


def test_exec_tty(running):
    s = running.exec(*sh("tty; read x; stty size"), tty=True, stdin=True)
    assert s.reply == {"ok": True}
    out = s.read_until("\n")
    assert out.startswith("/dev/pts/"), out
    s.resize(24, 132)
    s.stdin("\n")
    res = s.collect()
    assert "24 132" in res["out"], res
    assert res["exit"]["exit_code"] == 0


def test_exec_as_uid_1000(running):
    res = running.run_exec(*sh("id -u; id -g"), user="1000:1000")
    assert res["out"] == "1000\n1000\n"
    res = running.run_exec("id", "-u", user="1000")
    assert res["out"] == "1000\n"


def test_exec_output_not_in_the_log(running):
    res = running.run_exec("echo", "exec-marker-4711")
    assert res["out"] == "exec-marker-4711\n"
    os.kill(running.info["pid"], signal.SIGKILL)
    running.wait_exit()
    assert "exec-marker-4711" not in running.log.read_text()


def test_exec_before_start_is_refused(mon):
    mon.start("sleep", "30", flags=["--start-on-attach"])
    s = mon.exec("true")
    assert s.reply["code"] == 16, s.reply     # EBUSY
    os.kill(mon.info["pid"], signal.SIGKILL)
    mon.wait_exit()


def test_exec_client_gone_process_reaped(running):
    monitor_pid = running.info["monitor_pid"]
    s = running.exec(*sh("cat; echo gone"), stdin=True)
    assert s.reply == {"ok": True}
    s.stdin("hi\n")
    assert s.read_until("hi\n") == "hi\n"
    s.close()
    # cat sees EOF, the shell exits, the monitor reaps it: only the container's init is left
    wait_for(lambda: [c[0] for c in children_of(monitor_pid)] == [running.info["pid"]],
             what="the exec's process to be reaped")
    assert running.status()["running"] is True


def test_exec_ends_with_the_container(mon):
    mon.start(*sh("sleep 1"))
    s = mon.exec("sleep", "30")
    assert s.reply == {"ok": True}
    res = s.collect()
    assert res["exit"]["signal"] == 9, res
    assert mon.wait_exit()["exit_code"] == 0


def test_exec_slow_client_loses_nothing(running):
    # an exec's output is in no log: its process waits for its client instead
    s = running.exec(*sh("yes 0123456789abcdef | head -c 8000000; echo; echo done"))
    assert s.reply == {"ok": True}
    time.sleep(1.5)
    st = running.status()   # the loop answers meanwhile
    assert st["running"] is True and st["clients_dropped"] == 0, st
    res = s.collect()
    assert len(res["out"]) == 8000000 + len("\ndone\n")
    assert res["out"].endswith("\ndone\n") and res["exit"]["exit_code"] == 0


def test_many_execs_at_once(running):
    sessions = [running.exec(*sh(f"echo n{i}; exit {i}")) for i in range(8)]
    for i, s in enumerate(sessions):
        assert s.reply == {"ok": True}
        res = s.collect()
        assert res["out"] == f"n{i}\n" and res["exit"]["exit_code"] == i


# ---------------------------------------------------------------------------
# slow clients, peers


def test_slow_client_does_not_stall_the_container(mon):
    line = "x" * 99
    n = 120000  # 12 MB: far more than a client may fall behind
    mon.start(*sh(f"yes {line} | head -n {n}; echo END; sleep 2"))
    stuck = mon.attach()   # never reads
    wait_for(lambda: "END" in mon.log.read_text()[-100:], timeout=30,
             what="the container to write everything")
    st = mon.status()
    assert st["clients_dropped"] == 1, st
    rec = mon.wait_exit()
    assert rec["exit_code"] == 0 and rec["log_dropped"] == 0
    entries = mon.log_entries()
    assert len(entries) == n + 1 and entries[-1] == ("stdout", "END")
    assert all(e == ("stdout", line) for e in entries[:-1])
    # the dropped client got a prefix of the output, then the close (no EXIT frame)
    got = b""
    with pytest.raises(EOFError):
        while True:
            kind, payload = stuck.frame()
            assert kind == STDOUT
            got += payload
    assert 0 < len(got) < n * 100 and (line + "\n").encode() * 2 in got


def test_non_root_peer_is_refused(mon):
    # a directory others can reach (pytest's tmp directories are root's only)
    mon.use_dir(tempfile.mkdtemp(prefix="lt-mon-", dir="/tmp"))
    os.chmod(mon.dir, 0o755)
    mon.start("sleep", "30")
    path = str(mon.dir / "monitor.sock")
    assert (os.stat(path).st_mode & 0o777) == 0o600
    code = ("import socket,sys\n"
            "s=socket.socket(socket.AF_UNIX)\n"
            "try:\n"
            "    s.connect(sys.argv[1])\n"
            "except PermissionError:\n"
            "    print('EACCES'); sys.exit(0)\n"
            "print(s.makefile().read().strip())\n")
    cmd = ["setpriv", "--reuid", "65534", "--regid", "65534", "--clear-groups",
           "/usr/bin/python3", "-c", code, path]
    # the socket's mode keeps others out ...
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=20)
    assert res.stdout.strip() == "EACCES", res
    # ... and so does the peer check, should the mode not
    os.chmod(path, 0o666)
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=20)
    assert res.returncode == 0 and res.stdout.startswith("{"), res
    reply = json.loads(res.stdout)
    assert reply["code"] == 13 and "root" in reply["error"], reply
    assert mon.status()["running"] is True   # root still gets in
    os.kill(mon.info["pid"], signal.SIGKILL)
    mon.wait_exit()
