"""Root filesystem and mounts, as the workload sees them."""

import os
import subprocess

import pytest

from conftest import CGROUP_MODE, CGROUP_V1, IS_LAMINA, mount_at, mounts_under, opts, super_opts


def host_dir_with_file(ct, name="hostdir", content="hello\n"):
    d = ct.tmp / name
    d.mkdir()
    (d / "file").write_text(content)
    return d


# ---------------------------------------------------------------------------
# root

def test_readonly_root(ct):
    out = ct.probe()
    assert "ro" in opts(mount_at(out, "/"))
    ct.probe_args("write", "/newfile", "x")
    res = ct.run()
    assert res.returncode == 1
    assert "Read-only file system" in res.stderr
    assert not (ct.rootfs / "newfile").exists()


def test_readonly_root_without_proc(ct):
    """A config with no procfs at all still gets its read-only root (the remount of "/"
    needs no /proc/self/fd to name it)."""
    ct.config["mounts"] = [m for m in ct.config["mounts"] if m["destination"] != "/proc"]
    ct.linux["maskedPaths"] = []
    ct.linux["readonlyPaths"] = []
    ct.probe_args("write", "/newfile", "x")
    res = ct.run()
    assert res.returncode == 1
    assert "Read-only file system" in res.stderr
    assert not (ct.rootfs / "newfile").exists()


def test_writable_root(ct):
    ct.config["root"]["readonly"] = False
    out = ct.probe()
    assert "rw" in opts(mount_at(out, "/"))
    ct.probe_args("write", "/newfile", "x")
    ct.run().check()
    assert (ct.rootfs / "newfile").read_text() == "x"


def test_root_is_the_bundle_rootfs(ct):
    (ct.rootfs / "marker").write_text("inside")
    ct.probe_args("cat", "/marker")
    assert ct.run().check().stdout == "inside"


def test_root_path_absolute(ct):
    ct.config["root"]["path"] = str(ct.rootfs)
    (ct.rootfs / "marker").write_text("abs")
    ct.probe_args("cat", "/marker")
    assert ct.run().check().stdout == "abs"


# ---------------------------------------------------------------------------
# bind mounts

@pytest.mark.parametrize("mtype", ["bind", "none"])
def test_bind_mount_rw(ct, mtype):
    d = host_dir_with_file(ct)
    ct.add_mount("/mnt/data", mtype, d, ["bind"])
    ct.probe_args("cat", "/mnt/data/file")
    assert ct.run().check().stdout == "hello\n"
    ct.probe_args("write", "/mnt/data/file", "changed")
    ct.run().check()
    assert (d / "file").read_text() == "changed"


def test_bind_mount_ro(ct):
    d = host_dir_with_file(ct)
    ct.add_mount("/mnt/data", "bind", d, ["rbind", "ro"])
    out = ct.probe()
    assert "ro" in opts(mount_at(out, "/mnt/data"))
    ct.probe_args("write", "/mnt/data/file", "changed")
    res = ct.run()
    assert res.returncode == 1
    assert "Read-only file system" in res.stderr
    assert (d / "file").read_text() == "hello\n"


def test_bind_mount_flags(ct):
    d = host_dir_with_file(ct)
    ct.add_mount("/mnt/data", "bind", d, ["bind", "nosuid", "nodev", "noexec"])
    m = mount_at(ct.probe(), "/mnt/data")
    assert {"nosuid", "nodev", "noexec"} <= opts(m)


def test_rbind_includes_submounts_bind_does_not(ct):
    d = host_dir_with_file(ct)
    ct.host_mount("-t", "tmpfs", "-o", "size=1m", "lt-sub", target=d / "sub")
    (d / "sub" / "deep").write_text("deep\n")
    ct.add_mount("/mnt/r", "bind", d, ["rbind"])
    ct.add_mount("/mnt/b", "bind", d, ["bind"])
    ct.set_args("/bin/sh", "-c", "cat /mnt/r/sub/deep; ls /mnt/b/sub; echo end")
    res = ct.run().check()
    assert res.stdout == "deep\nend\n"


def test_bind_single_file(ct):
    f = ct.tmp / "hostfile"
    f.write_text("file content\n")
    ct.add_mount("/etc/custom.conf", "bind", f, ["bind", "ro"])
    ct.probe_args("cat", "/etc/custom.conf")
    assert ct.run().check().stdout == "file content\n"
    # The target was created inside the rootfs, as a file.
    assert (ct.rootfs / "etc" / "custom.conf").is_file()


def test_bind_missing_source_fails(ct):
    ct.add_mount("/mnt/x", "bind", ct.tmp / "does-not-exist", ["bind"])
    res = ct.run()
    assert res.returncode != 0
    assert res.stderr.strip()


# ---------------------------------------------------------------------------
# tmpfs, proc, sysfs, mqueue, devpts, cgroup

def test_tmpfs_with_options(ct):
    ct.add_mount("/scratch", "tmpfs", "tmpfs",
                 ["nosuid", "nodev", "noexec", "mode=1770", "size=1m", "uid=1000", "gid=1000"])
    out = ct.probe()
    m = mount_at(out, "/scratch")
    assert m["fstype"] == "tmpfs"
    assert {"nosuid", "nodev", "noexec"} <= opts(m)
    assert {"size=1024k", "mode=1770", "uid=1000", "gid=1000"} <= super_opts(m)
    ct.probe_args("stat", "/scratch")
    st = ct.run().check().json()
    assert (st["uid"], st["gid"]) == (1000, 1000)
    if IS_LAMINA:
        # runc chmods the tmpfs root back to the mode of the directory it covers.
        assert st["mode"] == 0o1770


def test_tmpfs_ro(ct):
    ct.add_mount("/scratch", "tmpfs", "tmpfs", ["ro", "size=1m"])
    ct.probe_args("write", "/scratch/x", "y")
    res = ct.run()
    assert res.returncode == 1 and "Read-only file system" in res.stderr


def test_tmpfs_writable_on_readonly_root(ct):
    ct.add_mount("/scratch", "tmpfs", "tmpfs", ["size=1m"])
    ct.probe_args("write", "/scratch/x", "y")
    ct.run().check()


def test_proc(ct):
    out = ct.probe()
    m = mount_at(out, "/proc")
    assert m["fstype"] == "proc"
    ct.probe_args("cat", "/proc/1/cmdline")
    assert ct.run().check().stdout.split("\0")[:3] == ["/probe", "cat", "/proc/1/cmdline"]


def test_sysfs_readonly(ct):
    out = ct.probe()
    m = mount_at(out, "/sys")
    assert m["fstype"] == "sysfs"
    assert "ro" in opts(m)
    ct.probe_args("write", "/sys/kernel/uevent_helper", "x")
    res = ct.run()
    assert res.returncode == 1 and "Read-only file system" in res.stderr


def test_mqueue(ct):
    m = mount_at(ct.probe(), "/dev/mqueue")
    assert m["fstype"] == "mqueue"
    assert {"nosuid", "nodev", "noexec"} <= opts(m)


def test_devpts(ct):
    m = mount_at(ct.probe(), "/dev/pts")
    assert m["fstype"] == "devpts"
    assert {"mode=620", "ptmxmode=666", "gid=5"} <= super_opts(m)


def test_cgroup_mount_shows_own_cgroup(ct):
    limit = 48 * 1024 * 1024
    ct.resources()["memory"] = {"limit": limit}
    if CGROUP_MODE == "v2":
        path = "/sys/fs/cgroup/memory.max"
    else:
        path = "/sys/fs/cgroup/memory/memory.limit_in_bytes"
    ct.probe_args("cat", path)
    assert int(ct.run().check().stdout) == limit


def test_cgroup_mount_readonly(ct):
    out = ct.probe()
    cg = [m for m in out["mounts"] if m["mount_point"].startswith("/sys/fs/cgroup")]
    assert cg, "no cgroup mount"
    for m in cg:
        if m["fstype"] in ("cgroup", "cgroup2"):
            assert "ro" in opts(m), m
    sub = "memory/" if CGROUP_V1 else ""
    ct.probe_args("write", f"/sys/fs/cgroup/{sub}cgroup.procs", "1")
    res = ct.run()
    assert res.returncode == 1


def test_cgroup_mount_per_controller(ct):
    if not CGROUP_V1:
        pytest.skip("v1/hybrid layout only")
    out = ct.probe()
    types = {m["mount_point"]: m["fstype"] for m in out["mounts"]}
    for ctrl in ("memory", "cpu", "pids", "devices"):
        if os.path.isdir(f"/sys/fs/cgroup/{ctrl}"):
            assert types.get(f"/sys/fs/cgroup/{ctrl}") == "cgroup", ctrl


# ---------------------------------------------------------------------------
# masked and read-only paths

def test_default_masked_paths(ct):
    files = [p for p in ("/proc/kcore", "/proc/keys", "/proc/timer_list", "/proc/sched_debug")
             if os.path.isfile(p)]
    dirs = [p for p in ("/proc/acpi", "/proc/scsi", "/sys/firmware") if os.path.isdir(p)]
    if not files and not dirs:
        pytest.skip("none of the default masked paths exists on this kernel")
    script = "".join(f"wc -c < {f}; " for f in files)
    script += "".join(f"ls -A {d} | wc -l; " for d in dirs)
    ct.set_args("/bin/sh", "-c", script)
    res = ct.run()
    assert res.stdout.split() == ["0"] * (len(files) + len(dirs)), res


def test_custom_masked_paths(ct):
    (ct.rootfs / "secret.txt").write_text("s3cret\n")
    (ct.rootfs / "secretdir").mkdir()
    (ct.rootfs / "secretdir" / "f").write_text("s3cret\n")
    ct.linux["maskedPaths"] += ["/secret.txt", "/secretdir", "/does/not/exist"]
    ct.set_args("/bin/sh", "-c", "cat /secret.txt; ls -A /secretdir; echo end")
    res = ct.run()
    assert "s3cret" not in res.stdout
    assert "f\n" not in res.stdout
    assert res.stdout.endswith("end\n")
    # Masking happens in the container only.
    assert (ct.rootfs / "secret.txt").read_text() == "s3cret\n"


def test_masked_file_not_writable(ct):
    (ct.rootfs / "secret.txt").write_text("s3cret\n")
    ct.config["root"]["readonly"] = False
    ct.linux["maskedPaths"] = ["/secret.txt"]
    ct.probe_args("write", "/secret.txt", "overwrite")
    ct.run()
    assert (ct.rootfs / "secret.txt").read_text() == "s3cret\n"


def test_readonly_proc_sys(ct):
    ct.probe_args("write", "/proc/sys/kernel/hostname", "changed")
    res = ct.run()
    assert res.returncode == 1 and "Read-only file system" in res.stderr


def test_custom_readonly_paths(ct):
    ct.config["root"]["readonly"] = False
    (ct.rootfs / "data").mkdir()
    ct.linux["readonlyPaths"] += ["/data", "/does/not/exist"]
    ct.set_args("/bin/sh", "-c", "/probe write /data/x 1; /probe write /tmp/y 2")
    res = ct.run()
    assert "Read-only file system" in res.stderr
    assert not (ct.rootfs / "data" / "x").exists()
    assert (ct.rootfs / "tmp" / "y").read_text() == "2"


# ---------------------------------------------------------------------------
# mount targets

def test_mount_target_created_inside_rootfs(ct):
    ct.add_mount("/a/b/c", "tmpfs", "tmpfs", ["size=1m"])
    out = ct.probe()
    assert mount_at(out, "/a/b/c")["fstype"] == "tmpfs"
    assert (ct.rootfs / "a" / "b" / "c").is_dir()


def test_mounts_in_config_order(ct):
    d = host_dir_with_file(ct)
    ct.add_mount("/m", "tmpfs", "tmpfs", ["size=1m"])
    ct.add_mount("/m/inner", "bind", d, ["bind"])
    out = ct.probe()
    outer = mount_at(out, "/m")
    inner = mount_at(out, "/m/inner")
    assert inner["parent"] == outer["id"]
    # The target /m/inner was created in the tmpfs, not in the rootfs.
    assert not (ct.rootfs / "m" / "inner").exists()


@pytest.mark.parametrize("link_style", ["absolute", "relative"])
def test_mount_through_symlink_stays_inside_rootfs(ct, link_style):
    outside = ct.tmp / "host-dir"
    outside.mkdir()
    (outside / "keep").write_text("host\n")
    if link_style == "absolute":
        target = str(outside)
    else:
        target = "../" * (len(ct.rootfs.parts) + 2) + str(outside).lstrip("/")
    os.symlink(target, ct.rootfs / "evil")
    ct.add_mount("/evil/sub", "tmpfs", "tmpfs", ["size=1m"])
    f = ct.tmp / "hostfile"
    f.write_text("bound\n")
    ct.add_mount("/evil/keep", "bind", f, ["bind"])
    res = ct.run()
    # Either a clear error, or the mounts land inside the rootfs: never on the host.
    assert sorted(os.listdir(outside)) == ["keep"]
    assert (outside / "keep").read_text() == "host\n"
    assert mounts_under(outside) == []
    if res.returncode == 0:
        inside = ct.rootfs / str(outside).lstrip("/")
        assert (inside / "sub").is_dir()


def test_mount_destination_dotdot_stays_inside_rootfs(ct):
    outside = ct.tmp / "host-dir"
    outside.mkdir()
    rel = "/.." * (len(ct.rootfs.parts) + 2) + str(outside)
    ct.add_mount(rel + "/sub", "tmpfs", "tmpfs", ["size=1m"])
    res = ct.run()
    assert os.listdir(outside) == []
    assert mounts_under(outside) == []
    if res.returncode == 0:
        assert (ct.rootfs / str(outside).lstrip("/") / "sub").is_dir()


# ---------------------------------------------------------------------------
# rootfsPropagation

def shared_bundle(ct):
    """Makes the bundle a shared mount on the host, so propagation is observable."""
    ct.host_mount("--bind", ct.bundle, target=ct.bundle)
    subprocess.run(["mount", "--make-rshared", str(ct.bundle)], check=True)
    (ct.rootfs / "mnt").mkdir(exist_ok=True)


def host_mount_visible_inside(ct):
    ct.start_sleeper(10)
    target = ct.rootfs / "mnt" / "late"
    ct.host_mount("-t", "tmpfs", "-o", "size=1m", "lt-late", target=target)
    out = ct.exec("/probe").check().json()
    return mount_at(out, "/mnt/late") is not None, mount_at(out, "/")


def test_rootfs_propagation_rslave(ct):
    shared_bundle(ct)
    ct.linux["rootfsPropagation"] = "rslave"
    visible, root = host_mount_visible_inside(ct)
    assert visible
    assert any(o.startswith("master:") for o in root["optional"]), root


@pytest.mark.parametrize("prop", ["private", "rprivate"])
def test_rootfs_propagation_private(ct, prop):
    shared_bundle(ct)
    ct.linux["rootfsPropagation"] = prop
    visible, root = host_mount_visible_inside(ct)
    assert not visible
    assert root["optional"] == []


def test_container_mounts_do_not_propagate_to_host(ct):
    shared_bundle(ct)
    ct.add_mount("/mnt/inner", "tmpfs", "tmpfs", ["size=1m"])
    ct.start_sleeper(10)
    assert mounts_under(ct.rootfs) == []


# ---------------------------------------------------------------------------
# propagation flags of bind mounts

def shared_source(ct):
    d = ct.tmp / "src"
    d.mkdir()
    ct.host_mount("--bind", d, target=d)
    subprocess.run(["mount", "--make-rshared", str(d)], check=True)
    return d


def late_host_mount(ct, src):
    """Starts the container, then mounts under the bind source on the host."""
    ct.start_sleeper(10)
    ct.host_mount("-t", "tmpfs", "-o", "size=1m", "lt-late", target=src / "late")
    out = ct.exec("/probe").check().json()
    return mount_at(out, "/mnt/p"), mount_at(out, "/mnt/p/late")


@pytest.mark.parametrize("prop", ["rslave", "slave"])
def test_bind_propagation_slave(ct, prop):
    src = shared_source(ct)
    ct.add_mount("/mnt/p", "bind", src, ["rbind", prop])
    m, late = late_host_mount(ct, src)
    assert any(o.startswith("master:") for o in m["optional"]), m
    assert late is not None, "host mount did not propagate into a slave bind mount"


@pytest.mark.parametrize("prop", ["rprivate", "private"])
def test_bind_propagation_private(ct, prop):
    src = shared_source(ct)
    ct.add_mount("/mnt/p", "bind", src, ["rbind", prop])
    m, late = late_host_mount(ct, src)
    assert m["optional"] == []
    assert late is None, "host mount propagated into a private bind mount"


@pytest.mark.parametrize("prop", ["rshared", "shared"])
def test_bind_propagation_shared(ct, prop):
    src = shared_source(ct)
    ct.add_mount("/mnt/p", "bind", src, ["rbind", prop])
    m, late = late_host_mount(ct, src)
    assert any(o.startswith("shared:") for o in m["optional"]), m
    assert late is not None


def test_cgroup2_mount(ct):
    if not os.path.exists("/sys/fs/cgroup/cgroup.controllers") and \
            not os.path.exists("/sys/fs/cgroup/unified/cgroup.controllers"):
        pytest.skip("no cgroup2 hierarchy on this host")
    ct.config["mounts"] = [m for m in ct.config["mounts"]
                           if m["destination"] != "/sys/fs/cgroup"]
    ct.add_mount("/sys/fs/cgroup", "cgroup2", "cgroup2", ["nosuid", "noexec", "nodev", "ro"])
    out = ct.probe()
    m = mount_at(out, "/sys/fs/cgroup")
    assert m["fstype"] == "cgroup2"
    assert "ro" in opts(m)
    ct.probe_args("stat", "/sys/fs/cgroup/cgroup.procs")
    ct.run().check()


@pytest.mark.skipif(not IS_LAMINA, reason="lamina's annotation for the writable layer")
def test_writable_layer_mounted_only_in_the_container(ct, tmp_path):
    """With org.lamina.rootfs.overlay the runtime mounts the container's
    overlay on root.path inside the container's mount namespace: writes land
    in the upper directory, the lower layer is untouched, and the host never
    has the overlay mounted."""
    layer = tmp_path / "layer"
    upper, work, merged = tmp_path / "upper", tmp_path / "work", tmp_path / "merged"
    for d in (upper, work, merged):
        d.mkdir()
    os.rename(ct.rootfs, layer)
    ct.config["root"] = {"path": str(merged), "readonly": False}
    ct.config["annotations"] = {
        "org.lamina.rootfs.overlay": f"lowerdir={layer},upperdir={upper},workdir={work}"}
    ct.probe_args("write", "/tmp/written-inside", "hello")
    ct.run().check()
    assert (upper / "tmp" / "written-inside").read_text() == "hello"
    assert not (layer / "tmp" / "written-inside").exists()
    assert not os.listdir(merged), "the overlay leaked onto the host"
    assert not mounts_under(str(tmp_path))


@pytest.mark.skipif(not IS_LAMINA, reason="lamina's annotation for the writable layer")
def test_writable_layer_bad_options_fail_cleanly(ct, tmp_path):
    merged = tmp_path / "merged"
    merged.mkdir()
    ct.config["root"] = {"path": str(merged), "readonly": False}
    ct.config["annotations"] = {"org.lamina.rootfs.overlay": f"lowerdir={tmp_path}/missing"}
    res = ct.run()
    assert res.returncode != 0
    assert "writable layer" in res.stderr
    assert not ct.has_state()
