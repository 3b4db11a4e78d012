"""Images end to end, as a user sees them: lamina pull / images / rmi / image prune /
login, and lamina run --rm IMAGE, against Debian's docker-registry on loopback.

The images are written here as an OCI layout (tar layers made with Python's tarfile)
and pushed with skopeo: busybox alone, three layers, a multi-platform index, whiteouts
and hard links across layers, busybox + probe + /etc/passwd with an entrypoint (the
"app" image), and layers that try to escape their directory or lie about their diff id.
"""

import fcntl
import gzip
import hashlib
import io
import json
import os
import subprocess
import tarfile
from pathlib import Path

import pytest

import registry as reg
from conftest import BUILD, OCI, PROBE, make_rootfs, mounts_under, wait_for

pytestmark = [
    pytest.mark.skipif(bool(reg.MISSING), reason=f"needs {', '.join(reg.MISSING)}"),
    pytest.mark.skipif(Path(OCI[0]).name == "runc", reason="lamina's own command line"),
]

LAMINA = Path(OCI[0])
USERS = {"alice": "wonderland"}


class Lamina:
    """lamina with its own --root and --state, and an empty HOME."""

    def __init__(self, tmp):
        self.root = tmp / "root"
        self.state = tmp / "state"
        self.home = tmp / "home"
        self.home.mkdir()

    def __call__(self, *args, check=False, timeout=120, input=None):
        env = {k: v for k, v in os.environ.items() if k not in ("REGISTRY_AUTH_FILE", "LAMINA_ROOT")}
        env["HOME"] = str(self.home)
        p = subprocess.run([str(LAMINA), "--root", str(self.root), "--state", str(self.state),
                            *map(str, args)], capture_output=True, text=True, timeout=timeout,
                           env=env, input=input)
        if check and p.returncode != 0:
            raise AssertionError(f"lamina {' '.join(map(str, args))}: exit {p.returncode}\n"
                                 f"{p.stdout}\n{p.stderr}")
        return p

    def images(self):
        return json.loads(self("images", "--format", "json", check=True).stdout)

    def snapshots(self):
        d = self.root / "snapshots"
        return sorted(os.listdir(d)) if d.exists() else []

    def leftovers(self):
        """What a finished command must not leave: temp entries, container
        layers, bundles, runtime state, host mounts under our dirs."""
        found = []
        for d in (self.root / "tmp", self.root / "containers", self.state / "bundles",
                  self.state / "oci"):
            # the runtime's cache of compiled seccomp filters stays, as a cache does
            left = [x for x in os.listdir(d) if x != ".seccomp-cache"] if d.exists() else []
            if left:
                found.append(f"{d}: {left}")
        found += mounts_under(str(self.root)) + mounts_under(str(self.state))
        return found


@pytest.fixture
def lamina(tmp_path):
    lm = Lamina(tmp_path)
    yield lm
    assert not lm.leftovers(), lm.leftovers()


# --- images -----------------------------------------------------------------------

def write_blob(layout, data):
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    (layout / "blobs" / "sha256" / digest[7:]).write_bytes(data)
    return {"digest": digest, "size": len(data)}


def add_image(layout, tag, layers, config=None, arch="amd64", variant=None, index_entry=True):
    """Add an image (layers: uncompressed tar bytes) to an OCI layout; returns
    {"manifest", "config", "layers"} digests and the manifest descriptor."""
    descs, diff_ids = [], []
    for tar in layers:
        diff_ids.append("sha256:" + hashlib.sha256(tar).hexdigest())
        d = write_blob(layout, gzip.compress(tar, mtime=0))
        d["mediaType"] = "application/vnd.oci.image.layer.v1.tar+gzip"
        descs.append(d)
    cfg = {"architecture": arch, "os": "linux", "config": config or {"Cmd": ["/bin/sh"]},
           "rootfs": {"type": "layers", "diff_ids": diff_ids}}
    if variant:
        cfg["variant"] = variant
    c = write_blob(layout, json.dumps(cfg).encode())
    c["mediaType"] = "application/vnd.oci.image.config.v1+json"
    manifest = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "config": c, "layers": descs}
    m = write_blob(layout, json.dumps(manifest).encode())
    m["mediaType"] = "application/vnd.oci.image.manifest.v1+json"
    if index_entry:
        entry = dict(m, annotations={"org.opencontainers.image.ref.name": tag})
        index = json.loads((layout / "index.json").read_text())
        index["manifests"].append(entry)
        (layout / "index.json").write_text(json.dumps(index))
    return {"manifest": m["digest"], "config": c["digest"], "layers": [d["digest"] for d in descs],
            "diff_ids": diff_ids, "descriptor": m}


def chain_ids(diff_ids):
    """The OCI chain ids of a layer stack: what names its snapshots and layer locks."""
    chains = [diff_ids[0]]
    for d in diff_ids[1:]:
        chains.append("sha256:" + hashlib.sha256(f"{chains[-1]} {d}".encode()).hexdigest())
    return chains


def tar_bytes(entries):
    """entries: (name, kind, data_or_target[, mode])."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as t:
        for name, kind, payload, *mode in entries:
            info = tarfile.TarInfo(name)
            if kind == "file":
                info.size = len(payload)
                info.mode = mode[0] if mode else 0o644
                t.addfile(info, io.BytesIO(payload))
            elif kind == "dir":
                info.type = tarfile.DIRTYPE
                info.mode = 0o755
                t.addfile(info)
            elif kind == "symlink":
                info.type = tarfile.SYMTYPE
                info.linkname = payload
                t.addfile(info)
            elif kind == "hardlink":
                info.type = tarfile.LNKTYPE
                info.linkname = payload
                t.addfile(info)
    return buf.getvalue()


def tar_dir(root):
    """A layer of everything under root (numeric owners as they are)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as t:
        for path in sorted(Path(root).rglob("*")):
            t.add(path, arcname=str(path.relative_to(root)), recursive=False)
    return buf.getvalue()


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    """one: busybox; three: busybox + /etc/motd + /data; multi: an index of
    amd64/arm64/s390x; app: busybox + probe + passwd/group with an entrypoint;
    and layers that try to escape or lie about their diff id."""
    work = tmp_path_factory.mktemp("images")
    layout = work / "layout"
    (layout / "blobs" / "sha256").mkdir(parents=True)
    (layout / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')
    (layout / "index.json").write_text('{"schemaVersion": 2, "manifests": []}')
    busybox = Path(os.environ.get("LAMINA_BUSYBOX", "/bin/busybox")).read_bytes()
    base = tar_bytes([("bin", "dir", None), ("bin/busybox", "file", busybox, 0o755)])
    imgs = {"layout": layout}
    imgs["one"] = add_image(layout, "one", [base])
    motd = tar_bytes([("etc", "dir", None), ("etc/motd", "file", b"layer two\n")])
    data = tar_bytes([("data", "dir", None), ("data/blob.bin", "file", os.urandom(256 << 10))])
    imgs["three"] = add_image(layout, "three", [base, motd, data])
    platforms = {}
    entries = []
    for arch, variant in (("amd64", None), ("arm64", "v8"), ("s390x", None)):
        extra = tar_bytes([("etc", "dir", None), ("etc/arch", "file", arch.encode())])
        img = add_image(layout, f"p-{arch}", [base, extra], arch=arch, variant=variant, index_entry=False)
        platforms[f"linux/{arch}"] = img["manifest"]
        d = dict(img["descriptor"], platform={"architecture": arch, "os": "linux"})
        if variant:
            d["platform"]["variant"] = variant
        entries.append(d)
    idx = write_blob(layout, json.dumps({"schemaVersion": 2,
                                         "mediaType": "application/vnd.oci.image.index.v1+json",
                                         "manifests": entries}).encode())
    index = json.loads((layout / "index.json").read_text())
    index["manifests"].append(dict(idx, mediaType="application/vnd.oci.image.index.v1+json",
                                   annotations={"org.opencontainers.image.ref.name": "multi"}))
    (layout / "index.json").write_text(json.dumps(index))
    imgs["multi"] = {"index": idx["digest"], "platforms": platforms}

    # whiteouts and hard links across layers
    lower = tar_bytes([("etc", "dir", None), ("etc/gone", "file", b"old"), ("etc/kept", "file", b"kept"),
                       ("opaque", "dir", None), ("opaque/old1", "file", b"1"), ("opaque/old2", "file", b"2")])
    upper = tar_bytes([("etc", "dir", None), ("etc/.wh.gone", "file", b""),
                       ("opaque", "dir", None), ("opaque/.wh..wh..opq", "file", b""),
                       ("opaque/new", "file", b"new"), ("opaque/link", "hardlink", "opaque/new"),
                       ("etc/gone-again", "file", b"re-added")])
    imgs["wh"] = add_image(layout, "wh", [base, lower, upper])

    rootfs = work / "app-rootfs"
    make_rootfs(rootfs)
    (rootfs / "srv").mkdir()
    imgs["app"] = add_image(layout, "app", [tar_dir(rootfs)], config={
        "Entrypoint": ["/probe"], "WorkingDir": "/srv", "Env": ["PATH=/bin", "APP=1"]})
    add_image(layout, "escape-dotdot", [tar_bytes([("../../escaped-by-dotdot", "file", b"x")])])
    add_image(layout, "escape-symlink", [tar_bytes([("bin", "dir", None), ("link", "symlink", "/"),
                                                    ("link/escaped-by-symlink", "file", b"x")])])
    # a config whose diff id does not match its layer
    lie = add_image(layout, "bad-diffid-real", [tar_bytes([("ok", "file", b"x")])], index_entry=False)
    cfg = json.loads((layout / "blobs" / "sha256" / lie["config"][7:]).read_text())
    cfg["rootfs"]["diff_ids"] = ["sha256:" + "0" * 64]
    c = write_blob(layout, json.dumps(cfg).encode())
    manifest = json.loads((layout / "blobs" / "sha256" / lie["manifest"][7:]).read_text())
    manifest["config"].update(c)
    m = write_blob(layout, json.dumps(manifest).encode())
    index = json.loads((layout / "index.json").read_text())
    index["manifests"].append(dict(m, mediaType="application/vnd.oci.image.manifest.v1+json",
                                   annotations={"org.opencontainers.image.ref.name": "bad-diffid"}))
    (layout / "index.json").write_text(json.dumps(index))
    return imgs


@pytest.fixture(scope="module")
def registry(tmp_path_factory, images):
    r = reg.Registry(tmp_path_factory.mktemp("registry"), tmp_path_factory.mktemp("storage")).start()
    layout = images["layout"]
    try:
        for tag in ("one", "three", "app", "wh", "escape-dotdot", "escape-symlink", "bad-diffid"):
            reg.push(layout, tag, f"{r.host}/test/{tag}:1")
        reg.push(layout, "multi", f"{r.host}/test/multi:1", all_platforms=True)
        yield r
    finally:
        r.stop()


@pytest.fixture(scope="module")
def basic_registry(tmp_path_factory, images):
    work = tmp_path_factory.mktemp("basic")
    htpasswd = reg.make_htpasswd(work / "htpasswd", USERS)
    r = reg.Registry(work, tmp_path_factory.mktemp("basic-storage"), auth="htpasswd",
                     htpasswd=htpasswd).start()
    try:
        reg.push(images["layout"], "app", f"{r.host}/private/app:1",
                 creds="alice:wonderland")
        yield r
    finally:
        r.stop()


# --- pull ---------------------------------------------------------------------------

def test_pull_lists_and_caches(lamina, registry, images):
    ref = f"{registry.host}/test/three:1"
    p = lamina("pull", ref, check=True)
    assert f"{ref}: {images['three']['config']}" in p.stdout
    assert "layer 3/3" in p.stdout and "done" in p.stdout  # plain progress lines off a tty
    [img] = lamina.images()
    assert img["name"] == ref
    assert img["id"] == images["three"]["config"]
    assert img["manifest"] == images["three"]["manifest"]
    assert img["layers"] == images["three"]["layers"]
    assert len(lamina.snapshots()) == 3
    # each layer unpacked once: a second pull finds everything present
    p = lamina("pull", ref, check=True)
    assert p.stdout.count("already present") == 3
    table = lamina("images", check=True).stdout
    assert ref in table and images["three"]["config"][7:19] in table


def test_pull_shares_layers_between_images(lamina, registry):
    lamina("pull", f"{registry.host}/test/one:1", check=True)
    p = lamina("pull", f"{registry.host}/test/three:1", check=True)
    assert p.stdout.count("already present") == 1  # the busybox layer of "one"
    assert len(lamina.snapshots()) == 3


def test_pull_by_digest(lamina, registry, images):
    digest = images["one"]["manifest"]
    lamina("pull", f"{registry.host}/test/one@{digest}", check=True)
    [img] = lamina.images()
    assert img["name"] == f"{registry.host}/test/one@{digest}"


def test_pull_quiet_prints_the_id(lamina, registry, images):
    p = lamina("pull", "-q", f"{registry.host}/test/one:1", check=True)
    assert p.stdout.strip() == images["one"]["config"]


def test_pull_platform_from_index(lamina, registry, images):
    lamina("pull", f"{registry.host}/test/multi:1", check=True)
    [img] = lamina.images()
    assert img["manifest"] == images["multi"]["platforms"]["linux/amd64"]
    assert img["platform"] == "linux/amd64"
    assert img["index"] == images["multi"]["index"]
    # up to date: "newer" asks the registry and keeps what it has
    p = lamina("pull", "--policy", "newer", f"{registry.host}/test/multi:1", check=True)
    assert "layer 1/" not in p.stdout


def test_pull_other_platform(lamina, registry, images):
    lamina("pull", "--platform", "linux/arm64/v8", f"{registry.host}/test/multi:1", check=True)
    [img] = lamina.images()
    assert img["manifest"] == images["multi"]["platforms"]["linux/arm64"]


def test_pull_no_such_platform(lamina, registry):
    p = lamina("pull", "--platform", "linux/riscv64", f"{registry.host}/test/multi:1")
    assert p.returncode == 1
    assert "linux/riscv64" in p.stderr and "linux/amd64" in p.stderr
    assert lamina.images() == []


def test_pull_unknown_tag(lamina, registry):
    p = lamina("pull", f"{registry.host}/test/one:nope")
    assert p.returncode == 1 and "manifest unknown" in p.stderr.lower()
    assert lamina.images() == [] and lamina.snapshots() == []


@pytest.mark.parametrize("ref,msg", [
    ("UPPER/case", "lowercase"),
    ("a//b", "invalid reference"),
    ("name:bad tag!", "invalid reference"),
])
def test_pull_bad_reference(lamina, ref, msg):
    p = lamina("pull", ref)
    assert p.returncode == 1 and msg in p.stderr
    assert len(p.stderr.strip().splitlines()) == 1


def test_pull_refuses_layers_that_escape(lamina, registry, tmp_path):
    for tag, name in (("escape-dotdot", "escaped-by-dotdot"), ("escape-symlink", "escaped-by-symlink")):
        p = lamina("pull", f"{registry.host}/test/{tag}:1")
        assert p.returncode == 1, p.stdout
        assert "layer" in p.stderr
        for d in (Path("/"), tmp_path, lamina.root, lamina.root / "snapshots"):
            assert not (d / name).exists()
    assert lamina.images() == [] and lamina.snapshots() == []


def test_pull_checks_diff_ids(lamina, registry):
    p = lamina("pull", f"{registry.host}/test/bad-diffid:1")
    assert p.returncode == 1 and "image config says" in p.stderr
    assert lamina.images() == [] and lamina.snapshots() == []


def test_pull_corrupt_blob_then_retry(lamina, registry, images):
    layer = images["three"]["layers"][-1]
    path = registry.blob_path(layer)
    good = path.read_bytes()
    path.write_bytes(good[:-10] + b"corrupted!")
    try:
        p = lamina("pull", f"{registry.host}/test/three:1")
        assert p.returncode == 1 and "digest" in p.stderr.lower()
        assert lamina.images() == []
    finally:
        path.write_bytes(good)
    lamina("pull", f"{registry.host}/test/three:1", check=True)
    assert len(lamina.images()) == 1


def test_pull_policies(lamina, registry, tmp_path):
    ref = f"{registry.host}/test/one:1"
    p = lamina("pull", "--policy", "never", ref)
    assert p.returncode == 1 and "never" in p.stderr
    lamina("pull", ref, check=True)
    assert "already present" not in lamina("pull", "--policy", "if_not_present", ref, check=True).stdout
    lamina("pull", "--policy", "newer", ref, check=True)
    p = lamina("pull", "--policy", "bogus", ref)
    assert p.returncode == 1 and "unknown pull policy" in p.stderr


def test_pull_newer_uses_local_copy_when_registry_is_down(lamina, tmp_path, images):
    r = reg.Registry(tmp_path / "reg", tmp_path / "storage").start()
    ref = f"{r.host}/test/one:1"
    try:
        reg.push(images["layout"], "one", ref)
        lamina("pull", ref, check=True)
    finally:
        r.stop()
    p = lamina("pull", "--policy", "newer", ref)
    assert p.returncode == 0, p.stderr
    assert "local copy" in p.stderr
    assert lamina("pull", "--policy", "always", ref).returncode == 1


# --- rmi, prune ---------------------------------------------------------------------

def test_rmi_and_prune(lamina, registry):
    lamina("pull", f"{registry.host}/test/one:1", check=True)
    lamina("pull", f"{registry.host}/test/three:1", check=True)
    assert len(lamina.snapshots()) == 3
    p = lamina("rmi", f"{registry.host}/test/three:1", check=True)
    assert "Untagged" in p.stdout
    assert [i["name"] for i in lamina.images()] == [f"{registry.host}/test/one:1"]
    p = lamina("image", "prune", check=True)
    assert "reclaimed" in p.stdout
    assert len(lamina.snapshots()) == 1  # the busybox layer "one" still uses
    lamina("run", "--rm", f"{registry.host}/test/one:1", "/bin/busybox", "true", check=True)
    lamina("rmi", f"{registry.host}/test/one:1", check=True)
    lamina("image", "prune", check=True)
    assert lamina.snapshots() == []
    assert not os.listdir(lamina.root / "blobs" / "sha256")


def test_rmi_unknown(lamina):
    p = lamina("rmi", "nothing:here")
    assert p.returncode == 1 and "not found" in p.stderr


def test_rmi_by_id(lamina, registry, images):
    lamina("pull", f"{registry.host}/test/one:1", check=True)
    lamina("rmi", images["one"]["config"][7:19], check=True)
    assert lamina.images() == []


def test_image_inspect(lamina, registry, images):
    lamina("pull", f"{registry.host}/test/app:1", check=True)
    info = json.loads(lamina("image", "inspect", f"{registry.host}/test/app:1", check=True).stdout)
    assert info["config"]["config"]["Entrypoint"] == ["/probe"]
    assert info["config"]["config"]["WorkingDir"] == "/srv"


# --- auth ---------------------------------------------------------------------------

def test_login_and_pull_private(lamina, basic_registry):
    ref = f"{basic_registry.host}/private/app:1"
    p = lamina("pull", ref)
    assert p.returncode == 1 and ("unauthorized" in p.stderr.lower() or "authentication" in p.stderr)
    p = lamina("login", "-u", "alice", "-p", "wrong", basic_registry.host)
    assert p.returncode == 1 and "authentication" in p.stderr
    assert not (lamina.home / ".docker" / "config.json").exists()
    p = lamina("login", "-u", "alice", "--password-stdin", basic_registry.host, input="wonderland\n")
    assert p.returncode == 0 and "Login Succeeded" in p.stdout, p.stderr
    auth = lamina.home / ".docker" / "config.json"
    assert oct(auth.stat().st_mode & 0o777) == "0o600"
    lamina("pull", ref, check=True)
    assert [i["name"] for i in lamina.images()] == [ref]


# --- run ----------------------------------------------------------------------------

def probe_run(lamina, ref, *args, check=True):
    p = lamina("run", "--rm", *args, ref, check=check)
    return json.loads(p.stdout) if check else p


def test_run_uses_image_config(lamina, registry):
    ref = f"{registry.host}/test/app:1"
    report = probe_run(lamina, ref)  # pulled on first use
    assert report["argv"] == ["/probe"]
    assert report["cwd"] == "/srv"
    assert "APP=1" in report["env"]
    assert report["pid"] == 1 and report["uid"] == 0
    root = next(m for m in report["mounts"] if m["mount_point"] == "/")
    assert root["fstype"] == "overlay"


def test_run_options(lamina, registry, tmp_path):
    ref = f"{registry.host}/test/app:1"
    host_dir = tmp_path / "shared"
    host_dir.mkdir()
    (host_dir / "hello").write_text("from the host")
    report = probe_run(lamina, ref, "-u", "test", "-e", "EXTRA=yes", "-w", "/tmp", "--read-only",
                       "-v", f"{host_dir}:/data:ro", "--tmpfs", "/scratch", "--memory", "64m",
                       "--hostname", "box", "--name", "named-1")
    assert report["uid"] == 1000 and report["gid"] == 1000
    assert 29 in report["groups"]  # "audio" lists the test user
    assert "EXTRA=yes" in report["env"] and "APP=1" in report["env"]
    assert report["cwd"] == "/tmp" and report["hostname"] == "box"
    mounts = {m["mount_point"]: m for m in report["mounts"]}
    assert "ro" in mounts["/"]["options"].split(",")
    assert "ro" in mounts["/data"]["options"].split(",")
    assert mounts["/scratch"]["fstype"] == "tmpfs"


def test_run_command_and_exit_code(lamina, registry):
    ref = f"{registry.host}/test/app:1"
    p = lamina("run", "--rm", "--entrypoint", "", ref, "/bin/sh", "-c", "echo out; echo err >&2; exit 9")
    assert p.returncode == 9
    assert p.stdout == "out\n" and "err" in p.stderr


def test_run_writes_go_to_the_writable_layer(lamina, registry):
    ref = f"{registry.host}/test/app:1"
    lamina("run", "--rm", "--entrypoint", "", ref, "/bin/sh", "-c", "echo x > /etc/changed", check=True)
    p = lamina("run", "--rm", "--entrypoint", "", ref, "/bin/sh", "-c", "test -e /etc/changed")
    assert p.returncode == 1  # a new container starts from the image again
    for snap in lamina.snapshots():
        assert not (lamina.root / "snapshots" / snap / "fs" / "etc" / "changed").exists()


def test_run_default_seccomp_profile(lamina, registry):
    """lamina's containers get its default seccomp profile: kcmp (ptrace-class,
    allowed to root on itself by the kernel) is denied by the filter, unless
    the run says seccomp=unconfined or is privileged."""
    ref = f"{registry.host}/test/app:1"
    def kcmp(*flags):
        p = lamina("run", "--rm", *flags, ref, "syscall", "kcmp", "1", "1", "0", "0", "0", check=True)
        return json.loads(p.stdout)["errno"]
    assert kcmp() == 1  # EPERM from the filter
    assert kcmp("--security-opt", "seccomp=unconfined") == 0
    assert kcmp("--privileged") == 0
    assert kcmp("--cap-add", "SYS_PTRACE") == 0  # the profile follows the capabilities
    p = lamina("run", "--rm", "--security-opt", "apparmor=x", ref)
    assert p.returncode == 2 and "security-opt" in p.stderr


def test_run_errors(lamina, registry):
    ref = f"{registry.host}/test/app:1"
    p = lamina("run", "--rm", "--entrypoint", "", ref, "/no/such/command")
    assert p.returncode == 127 and "/no/such/command" in p.stderr
    p = lamina("run", "--rm", f"{registry.host}/test/missing:1")
    assert p.returncode == 125 and "manifest unknown" in p.stderr.lower()
    p = lamina("run", "--rm", "-u", "nobody-here", ref)
    assert p.returncode == 125 and "nobody-here" in p.stderr
    # no agent runs for these tests: what needs one says so
    p = lamina("run", ref)
    assert p.returncode == 125 and "--rm" in p.stderr and "lamina agent" in p.stderr
    p = lamina("run", "-d", "--rm", ref)
    assert p.returncode == 125 and "-d needs the agent" in p.stderr
    p = lamina("run", "--rm", "--memory", "lots", ref)
    assert p.returncode == 2 and "--memory" in p.stderr


def test_prune_keeps_layers_of_running_containers(lamina, registry):
    """An image removed while a container of it runs: prune keeps the snapshots
    under the container's writable layer, and frees them once it is gone."""
    import time
    ref = f"{registry.host}/test/app:1"
    lamina("pull", ref, check=True)
    env = {k: v for k, v in os.environ.items() if k != "LAMINA_ROOT"}
    env["HOME"] = str(lamina.home)
    running = subprocess.Popen([str(LAMINA), "--root", str(lamina.root), "--state", str(lamina.state),
                                "run", "--rm", "--entrypoint", "", ref, "/bin/sleep", "3"],
                               env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 10
        while not (lamina.root / "containers").exists() or not os.listdir(lamina.root / "containers"):
            assert time.monotonic() < deadline, "the container did not start"
            time.sleep(0.05)
        lamina("rmi", ref, check=True)
        lamina("image", "prune", check=True)
        assert len(lamina.snapshots()) == 1  # still under the running container
    finally:
        out, errs = running.communicate(timeout=30)
    assert running.returncode == 0, errs
    lamina("image", "prune", check=True)
    assert lamina.snapshots() == []


def test_prune_sweeps_layers_of_killed_runs(lamina, registry):
    """lamina run killed with SIGKILL leaves its container running on; once the
    container is gone, image prune removes its writable layer, bundle and
    runtime state (never while it still runs)."""
    import signal
    import time
    ref = f"{registry.host}/test/app:1"
    lamina("pull", ref, check=True)
    env = {k: v for k, v in os.environ.items() if k != "LAMINA_ROOT"}
    env["HOME"] = str(lamina.home)
    runner = subprocess.Popen([str(LAMINA), "--root", str(lamina.root), "--state", str(lamina.state),
                               "run", "--rm", "--entrypoint", "", ref, "/bin/sleep", "2"],
                              env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while not list((lamina.state / "oci").glob("*/state.json")) if (lamina.state / "oci").exists() else True:
        assert time.monotonic() < deadline, "the container did not start"
        time.sleep(0.05)
    time.sleep(0.2)
    runner.send_signal(signal.SIGKILL)
    runner.wait()
    p = lamina("image", "prune", check=True)
    assert "writable layer" not in p.stdout  # still running: kept
    assert os.listdir(lamina.root / "containers")
    time.sleep(2.5)
    p = lamina("image", "prune", check=True)
    assert "Removed 1 writable layer" in p.stdout


def test_concurrent_pulls_share_one_download(lamina, registry, images):
    """Two pulls of the same image at once: each layer is downloaded and
    unpacked once; the second pull waits for the first and uses its work."""
    proxy = reg.Proxy(registry.port)
    proxy.blob_delay = 0.3  # keep the first pull busy while the second starts
    try:
        ref = f"{proxy.host}/test/three:1"
        env = {k: v for k, v in os.environ.items() if k != "LAMINA_ROOT"}
        env["HOME"] = str(lamina.home)
        cmd = [str(LAMINA), "--root", str(lamina.root), "--state", str(lamina.state), "pull", ref]
        pulls = [subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                 for _ in range(2)]
        for p in pulls:
            out, errs = p.communicate(timeout=60)
            assert p.returncode == 0, errs
        layer_gets = [r for r in proxy.blob_requests() if r[0] == "GET"
                      and any(d[7:] in r[1] for d in images["three"]["layers"])]
        assert len(layer_gets) == len(images["three"]["layers"]), [r[1] for r in layer_gets]
    finally:
        proxy.stop()
    assert len(lamina.images()) == 1 and len(lamina.snapshots()) == 3


def test_pulls_that_split_the_layers_do_not_deadlock(lamina, registry, images):
    """Another puller (here the test, holding its lock) is making layer 2 of 3 when a pull
    starts: the pull makes layers 1 and 3, then waits for layer 2. It must not keep its own
    layers locked while it waits, since the other puller may need one of them next: two
    pulls that split the layers between them used to wait for each other forever. Once
    the other lets go without having made layer 2, the pull makes it itself."""
    chains = chain_ids(images["three"]["diff_ids"])
    locks = lamina.root / "locks"
    locks.mkdir(parents=True, exist_ok=True)
    snap = lambda c: lamina.root / "snapshots" / c[7:]
    with open(locks / chains[1][7:], "w") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        env = {k: v for k, v in os.environ.items() if k != "LAMINA_ROOT"}
        env["HOME"] = str(lamina.home)
        cmd = [str(LAMINA), "--root", str(lamina.root), "--state", str(lamina.state), "pull",
               f"{registry.host}/test/three:1"]
        pull = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            wait_for(lambda: snap(chains[0]).exists() and snap(chains[2]).exists(), timeout=30,
                     what="the pull to make layers 1 and 3")
            assert not snap(chains[1]).exists()
            # as the other puller would next: take layer 1's lock
            with open(locks / chains[0][7:], "w") as first:
                def try_lock():
                    try:
                        fcntl.flock(first, fcntl.LOCK_EX | fcntl.LOCK_NB)
                        return True
                    except BlockingIOError:
                        return False
                wait_for(try_lock, timeout=10, what="the waiting pull to let go of layer 1")
            assert pull.poll() is None, "the pull did not wait for layer 2"
        finally:
            fcntl.flock(held, fcntl.LOCK_UN)
        out, errs = pull.communicate(timeout=60)
    assert pull.returncode == 0, errs
    assert snap(chains[1]).exists()
    assert len(lamina.images()) == 1 and len(lamina.snapshots()) == 3


def test_whiteouts_and_hard_links_in_the_container(lamina, registry):
    """Layers with a whiteout, an opaque directory and a hard link, pulled
    and run: the container sees the merged result a user expects."""
    ref = f"{registry.host}/test/wh:1"
    script = ("test ! -e /etc/gone && cat /etc/kept && echo && ls /opaque | tr '\\n' ' ' && "
              "stat -c %h /opaque/new && cat /etc/gone-again")
    p = lamina("run", "--rm", ref, "/bin/busybox", "sh", "-c", script)
    assert p.returncode == 0, p.stderr
    assert p.stdout.split() == ["kept", "link", "new", "2", "re-added"]


def test_default_registry_and_mirror(lamina, registry, images):
    """--default-registry sends bare names to another registry than docker.io;
    --registry-mirror serves a registry's images from a mirror first."""
    p = lamina("--default-registry", registry.host, "pull", "test/one:1")
    assert p.returncode == 0, p.stderr
    assert [i["name"] for i in lamina.images()] == [f"{registry.host}/test/one:1"]
    lamina("--default-registry", registry.host, "rmi", "test/one:1", check=True)
    assert lamina.images() == []
    # "registry.invalid" does not exist: only its mirror can serve the pull
    p = lamina("--registry-mirror", f"registry.invalid={registry.host}", "pull", "registry.invalid/test/one:1")
    assert p.returncode == 0, p.stderr
    assert [i["name"] for i in lamina.images()] == ["registry.invalid/test/one:1"]
    p = lamina("--registry-mirror", "nonsense", "pull", "registry.invalid/test/one:1")
    assert p.returncode == 1 and "REGISTRY=ENDPOINT" in p.stderr
