"""/dev: a fresh tmpfs with the default devices, pts, shm, fd and stdio links,
plus the config's devices."""

import os

import pytest

DEFAULT_DEVICES = {
    "null": "1:3", "zero": "1:5", "full": "1:7", "random": "1:8", "urandom": "1:9",
    "tty": "5:0",
}


def ls(ct, path):
    ct.probe_args("ls", path)
    return {e["name"]: e for e in ct.run().check().json()}


def test_dev_is_tmpfs(ct):
    out = ct.probe()
    m = [m for m in out["mounts"] if m["mount_point"] == "/dev"][-1]
    assert m["fstype"] == "tmpfs"
    # Fresh: nothing of the host's /dev (or the rootfs's) shows through.
    (ct.rootfs / "dev" / "host-leftover").write_text("x")
    names = ls(ct, "/dev")
    assert "host-leftover" not in names
    for host_only in ("vda", "kmsg", "mem"):
        assert host_only not in names


def test_default_devices(ct):
    entries = ls(ct, "/dev")
    for name, rdev in DEFAULT_DEVICES.items():
        e = entries.get(name)
        assert e is not None, f"/dev/{name} missing"
        assert e["type"] == "chr", e
        assert e["rdev"] == rdev, e
        assert e["mode"] == 0o666, e


def test_default_devices_usable(ct):
    # The devices cgroup denies everything in the config; the defaults stay usable.
    ct.set_args("/bin/sh", "-c",
                "echo x > /dev/null && head -c 4 /dev/zero | wc -c && "
                "head -c 4 /dev/urandom | wc -c && head -c 4 /dev/random | wc -c && "
                "(echo x > /dev/full) 2>/dev/null; echo full=$?")
    res = ct.run()
    assert res.stdout.split() == ["4", "4", "4", "full=1"], res


def test_ptmx(ct):
    entries = ls(ct, "/dev")
    ptmx = entries["ptmx"]
    if ptmx["type"] == "link":
        assert ptmx["target"] in ("pts/ptmx", "/dev/pts/ptmx")
    else:
        assert ptmx["type"] == "chr" and ptmx["rdev"] == "5:2"
    ct.probe_args("open", "/dev/ptmx", "rw")
    assert ct.run().check().stdout == "ok\n"


def test_dev_pts_shm(ct):
    out = ct.probe()
    types = {m["mount_point"]: m["fstype"] for m in out["mounts"]}
    assert types["/dev/pts"] == "devpts"
    assert types["/dev/shm"] == "tmpfs"
    ct.probe_args("write", "/dev/shm/x", "y")
    ct.run().check()


def test_fd_and_stdio_links(ct):
    entries = ls(ct, "/dev")
    want = {"fd": "/proc/self/fd", "stdin": "/proc/self/fd/0",
            "stdout": "/proc/self/fd/1", "stderr": "/proc/self/fd/2"}
    for name, target in want.items():
        assert entries[name]["type"] == "link", entries[name]
        assert entries[name]["target"] == target
    ct.set_args("/bin/sh", "-c", "echo via-stdout > /dev/stdout; echo via-stderr > /dev/stderr")
    res = ct.run().check()
    assert res.stdout == "via-stdout\n"
    assert "via-stderr" in res.stderr


def test_config_devices(ct):
    ct.linux["devices"] = [
        {"path": "/dev/mynull", "type": "c", "major": 1, "minor": 3, "fileMode": 0o600,
         "uid": 1000, "gid": 1001},
        {"path": "/dev/sub/dir/myzero", "type": "c", "major": 1, "minor": 5,
         "fileMode": 0o640, "uid": 0, "gid": 0},
        {"path": "/dev/myblk", "type": "b", "major": 7, "minor": 200, "fileMode": 0o660,
         "uid": 0, "gid": 6},
        {"path": "/dev/myfifo", "type": "p", "fileMode": 0o644},
    ]
    ct.resources()["devices"].append({"allow": True, "type": "c", "major": 1, "minor": 3,
                                      "access": "rwm"})
    e = ls(ct, "/dev")
    assert (e["mynull"]["type"], e["mynull"]["rdev"]) == ("chr", "1:3")
    assert e["mynull"]["mode"] == 0o600
    assert (e["mynull"]["uid"], e["mynull"]["gid"]) == (1000, 1001)
    assert (e["myblk"]["type"], e["myblk"]["rdev"], e["myblk"]["mode"]) == ("blk", "7:200", 0o660)
    assert e["myblk"]["gid"] == 6
    assert e["myfifo"]["type"] == "fifo"
    ct.probe_args("stat", "/dev/sub/dir/myzero")
    st = ct.run().check().json()
    assert (st["type"], st["rdev"], st["mode"]) == ("chr", "1:5", 0o640)
    ct.process["user"] = {"uid": 1000, "gid": 1000}  # the node's owner (mode 0600)
    ct.probe_args("open", "/dev/mynull", "w")
    assert ct.run().check().stdout == "ok\n"
    # Created in the container's /dev tmpfs, not in the bundle.
    assert not (ct.rootfs / "dev" / "mynull").exists()


def test_config_device_default_mode(ct):
    ct.linux["devices"] = [{"path": "/dev/mynull", "type": "c", "major": 1, "minor": 3}]
    st = ls(ct, "/dev")["mynull"]
    assert st["type"] == "chr" and st["rdev"] == "1:3"
    assert (st["uid"], st["gid"]) == (0, 0)


def test_console_absent_without_terminal(ct):
    out = ct.probe()
    assert out["console"] is None
    assert out["isatty"] == [False, False, False]


def test_dev_on_readonly_root_with_missing_dir(ct):
    os.rmdir(ct.rootfs / "dev")
    out = ct.probe()
    assert [m for m in out["mounts"] if m["mount_point"] == "/dev"]


@pytest.mark.parametrize("path", ["/dev/null", "/dev/zero", "/dev/tty"])
def test_devices_owned_by_root(ct, path):
    ct.probe_args("stat", path)
    st = ct.run().check().json()
    assert (st["uid"], st["gid"]) == (0, 0)
