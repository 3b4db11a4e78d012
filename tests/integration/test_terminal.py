"""process.terminal with --console-socket (create and exec): the pty master is
passed over SCM_RIGHTS and the container sees a real terminal."""

import os
import time

from conftest import lamina_only, terminal_json, wait_for


def tty_config(ct, *probe_args):
    ct.process["terminal"] = True
    ct.probe_args(*probe_args)


def test_create_with_terminal(ct, console_socket):
    cs = console_socket()
    tty_config(ct)
    ct.create("--console-socket", cs.path).check()
    master = cs.wait_fd()
    assert os.isatty(master)
    ct.start().check()
    ct.wait_status("stopped")
    out = terminal_json(cs.wait_output())
    assert out["isatty"] == [True, True, True]
    assert out["ttyname"].startswith("/dev/pts/")
    assert out["console"] is not None and out["console"]["type"] == "chr"
    # The workload's stdio is the pty, not whatever the runtime had.
    targets = {f["fd"]: f["target"] for f in out["fds"]}
    for fd in (0, 1, 2):
        assert targets[fd].startswith("/dev/pts/"), targets


def test_terminal_input(ct, console_socket):
    cs = console_socket()
    ct.process["terminal"] = True
    ct.set_args("/bin/sh", "-c", "read x; echo got:$x")
    ct.create("--console-socket", cs.path).check()
    master = cs.wait_fd()
    ct.start().check()
    os.write(master, b"hello\n")
    ct.wait_status("stopped")
    assert "got:hello" in cs.wait_output()


def test_run_detach_with_terminal(ct, console_socket):
    cs = console_socket()
    tty_config(ct)
    ct.run("--detach", "--console-socket", cs.path).check()
    cs.wait_fd()
    out = terminal_json(cs.wait_output())
    assert out["isatty"] == [True, True, True]


def test_terminal_without_console_socket_fails(ct):
    tty_config(ct)
    res = ct.create()
    assert res.returncode != 0
    assert res.stderr.strip()
    assert not ct.has_state()


def test_exec_tty(ct, console_socket):
    ct.start_sleeper(10)
    cs = console_socket()
    res = ct.exec("--tty", "--detach", "--console-socket", cs.path, "--", "/probe")
    res.check()
    cs.wait_fd()
    out = terminal_json(cs.wait_output())
    assert out["isatty"] == [True, True, True]
    assert out["ttyname"].startswith("/dev/pts/")


def test_exec_tty_detach_pid_file(ct, console_socket):
    ct.start_sleeper(10)
    cs = console_socket()
    pidfile = ct.tmp / "exec.pid"
    ct.exec("--tty", "--detach", "--console-socket", cs.path, "--pid-file", pidfile, "--",
            "/bin/sh", "-c", "tty; exit 0").check()
    assert int(pidfile.read_text().strip()) > 0
    cs.wait_fd()
    assert "/dev/pts/" in cs.wait_output()


@lamina_only("runc refuses --console-socket without --detach")
def test_exec_tty_foreground_exit_code(ct, console_socket):
    ct.start_sleeper(10)
    cs = console_socket()
    res = ct.exec("--tty", "--console-socket", cs.path, "--", "/bin/sh", "-c", "tty; exit 5")
    assert res.returncode == 5, res
    cs.wait_fd()
    assert "/dev/pts/" in cs.wait_output()


def test_exec_without_tty_in_terminal_container(ct, console_socket):
    cs = console_socket()
    tty_config(ct, "sleep", "10")
    ct.create("--console-socket", cs.path).check()
    cs.wait_fd()
    ct.start().check()
    out = ct.exec("/probe").check().json()
    assert out["isatty"] == [False, False, False]


def test_terminal_window_survives(ct, console_socket):
    # The master stays usable while the container runs.
    cs = console_socket()
    ct.process["terminal"] = True
    ct.set_args("/bin/sh", "-c", "echo first; sleep 0.3; echo second")
    ct.create("--console-socket", cs.path).check()
    cs.wait_fd()
    ct.start().check()
    wait_for(lambda: "first" in cs.output(), what="first line")
    time.sleep(0.05)
    ct.wait_status("stopped")
    text = cs.wait_output()
    assert text.index("first") < text.index("second")
