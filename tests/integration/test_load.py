"""lamina image load, end to end: an OCI layout directory made with umoci from a
busybox-static rootfs ("echo": busybox with /bin/echo; "two": echo plus a layer with
/etc/motd; "multi": an index of amd64/arm64/s390x images), the same images as an OCI
archive and as a docker save tarball written by skopeo, then `lamina images` and
`lamina run --rm`.  Bad input (a cut archive, a file that is no archive, a blob that
does not match its digest) must fail with one clear line and leave no image, no temp
file and no mount behind.

The layers are tars made by GNU tar and added with `umoci raw add-layer`: the tars
`umoci insert` writes here (umoci 0.4.7) stop right after the last file's data, without
the padding and end-of-archive blocks, and lamina's unpacker refuses a tar cut short.
"""

import gzip
import hashlib
import json
import os
import platform
import shutil
import subprocess
from pathlib import Path

import pytest

import registry as reg
from conftest import BUSYBOX, OCI, mounts_under

pytestmark = [
    pytest.mark.skipif(bool(reg.MISSING), reason=f"needs {', '.join(reg.MISSING)}"),
    pytest.mark.skipif(Path(OCI[0]).name == "runc", reason="lamina's own command line"),
]

LAMINA = Path(OCI[0])
MACHINE = "linux/" + {"x86_64": "amd64", "aarch64": "arm64", "s390x": "s390x"}.get(platform.machine(),
                                                                                    platform.machine())


class Lamina:
    """lamina with its own --root and --state, and an empty HOME."""

    def __init__(self, tmp):
        self.root = tmp / "root"
        self.state = tmp / "state"
        self.home = tmp / "home"
        self.home.mkdir(parents=True)

    def __call__(self, *args, check=False, timeout=120):
        env = {k: v for k, v in os.environ.items() if k not in ("REGISTRY_AUTH_FILE", "LAMINA_ROOT")}
        env["HOME"] = str(self.home)
        p = subprocess.run([str(LAMINA), "--root", str(self.root), "--state", str(self.state),
                            *map(str, args)], capture_output=True, text=True, timeout=timeout, env=env)
        if check and p.returncode != 0:
            raise AssertionError(f"lamina {' '.join(map(str, args))}: exit {p.returncode}\n"
                                 f"{p.stdout}\n{p.stderr}")
        return p

    def load(self, *args):
        p = self("image", "load", *args, check=True)
        return [line.split(": ", 1)[1] for line in p.stdout.splitlines()
                if line.startswith("Loaded image: ")]

    def images(self):
        return {r["name"]: r for r in json.loads(self("images", "--format", "json", check=True).stdout)}

    def leftovers(self):
        found = []
        for d in (self.root / "tmp", self.root / "containers", self.state / "bundles"):
            if d.exists() and os.listdir(d):
                found.append(f"{d}: {os.listdir(d)}")
        return found + mounts_under(str(self.root)) + mounts_under(str(self.state))


@pytest.fixture
def lamina(tmp_path):
    lm = Lamina(tmp_path)
    yield lm
    assert not lm.leftovers(), lm.leftovers()


def tar_layer(path, root, *members):
    reg._check(["tar", "--numeric-owner", "-C", root, "-cf", path, *members])
    return path


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    """{"layout": path, tag: manifest digest, "multi": {"index": digest, "platforms":
    {"linux/amd64": manifest digest, ...}}}"""
    work = tmp_path_factory.mktemp("load-images")
    layout = work / "layout"
    reg._check(["umoci", "init", "--layout", layout])
    reg._check(["umoci", "new", "--image", f"{layout}:echo"])
    root = work / "rootfs"
    (root / "bin").mkdir(parents=True)
    shutil.copy2(BUSYBOX, root / "bin" / "busybox")
    os.symlink("busybox", root / "bin" / "echo")
    reg._check(["umoci", "raw", "add-layer", "--image", f"{layout}:echo",
                tar_layer(work / "base.tar", root, "bin")])
    reg._check(["umoci", "config", "--image", f"{layout}:echo", "--config.cmd", "/bin/sh"])

    reg._check(["umoci", "tag", "--image", f"{layout}:echo", "two"])
    extra = work / "extra"
    (extra / "etc").mkdir(parents=True)
    (extra / "etc" / "motd").write_text("layer two\n")
    reg._check(["umoci", "raw", "add-layer", "--image", f"{layout}:two",
                tar_layer(work / "motd.tar", extra, "etc")])

    arches = (("amd64", None), ("arm64", "v8"), ("s390x", None))
    for arch, _ in arches:
        reg._check(["umoci", "tag", "--image", f"{layout}:echo", f"p-{arch}"])
        reg._check(["umoci", "config", "--image", f"{layout}:p-{arch}", "--architecture", arch])
    index = json.loads((layout / "index.json").read_text())
    tags = {m["annotations"]["org.opencontainers.image.ref.name"]: m for m in index["manifests"]}
    entries = []
    for arch, variant in arches:
        d = {k: v for k, v in tags[f"p-{arch}"].items() if k != "annotations"}
        d["platform"] = {"architecture": arch, "os": "linux", **({"variant": variant} if variant else {})}
        entries.append(d)
    multi = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
                        "manifests": entries}).encode()
    digest = "sha256:" + hashlib.sha256(multi).hexdigest()
    (layout / "blobs" / "sha256" / digest[7:]).write_bytes(multi)
    index["manifests"].append({"mediaType": "application/vnd.oci.image.index.v1+json",
                               "digest": digest, "size": len(multi),
                               "annotations": {"org.opencontainers.image.ref.name": "multi"}})
    (layout / "index.json").write_text(json.dumps(index))

    imgs = {tag: m["digest"] for tag, m in tags.items()}
    imgs["layout"] = layout
    imgs["multi"] = {"index": digest, "platforms": {
        f"linux/{arch}": tags[f"p-{arch}"]["digest"] for arch, _ in arches}}
    return imgs


def manifest(images, tag):
    return json.loads((images["layout"] / "blobs" / "sha256" / images[tag][7:]).read_text())


def skopeo(*args):
    reg._check(["skopeo", "copy", "--quiet", *args])


def test_load_layout_directory(lamina, images):
    layout = images["layout"]
    names = lamina.load(layout)
    assert sorted(names) == sorted(f"localhost/layout:{t}" for t in
                                   ("echo", "two", "p-amd64", "p-arm64", "p-s390x", "multi"))
    recs = lamina.images()
    echo = recs["localhost/layout:echo"]
    assert echo["manifest"] == images["echo"]
    assert echo["id"] == manifest(images, "echo")["config"]["digest"]
    assert echo["index"] is None
    two = recs["localhost/layout:two"]
    assert two["layers"] == [d["digest"] for d in manifest(images, "two")["layers"]]
    assert len(two["layers"]) == 2
    multi = recs["localhost/layout:multi"]
    assert multi["index"] == images["multi"]["index"]
    if MACHINE in images["multi"]["platforms"]:
        assert multi["manifest"] == images["multi"]["platforms"][MACHINE]

    p = lamina("run", "--rm", "localhost/layout:echo", "/bin/echo", "hi", check=True)
    assert p.stdout == "hi\n"
    p = lamina("run", "--rm", "localhost/layout:two", "/bin/busybox", "cat", "/etc/motd", check=True)
    assert p.stdout == "layer two\n"

    # loading again changes nothing and unpacks nothing
    before = sorted(os.listdir(lamina.root / "snapshots"))
    assert lamina.load(layout) == names
    assert sorted(os.listdir(lamina.root / "snapshots")) == before


def test_load_name_and_platform(lamina, images):
    names = lamina.load("--name", "127.0.0.1:5000/team/app", "--platform", "linux/arm64", "-q",
                        images["layout"])
    assert "127.0.0.1:5000/team/app:multi" in names
    recs = lamina.images()
    multi = recs["127.0.0.1:5000/team/app:multi"]
    assert multi["manifest"] == images["multi"]["platforms"]["linux/arm64"]
    assert multi["platform"].startswith("linux/arm64")

    p = lamina("image", "load", "--platform", "linux/mips", images["layout"])
    assert p.returncode == 1
    assert "no manifest for linux/mips" in p.stderr


def test_load_oci_archive(lamina, images, tmp_path):
    archive = tmp_path / "echo-image.tar"
    skopeo(f"oci:{images['layout']}:echo", f"oci-archive:{archive}:echo")
    assert lamina.load(archive) == ["localhost/echo-image:echo"]
    rec = lamina.images()["localhost/echo-image:echo"]
    assert rec["manifest"] == images["echo"]
    p = lamina("run", "--rm", "localhost/echo-image:echo", "/bin/echo", "hi", check=True)
    assert p.stdout == "hi\n"

    # the same archive gzipped, into an empty store
    zipped = tmp_path / "zipped.tar.gz"
    zipped.write_bytes(gzip.compress(archive.read_bytes()))
    other = Lamina(tmp_path / "other")
    assert other.load(zipped) == ["localhost/zipped:echo"]
    p = other("run", "--rm", "localhost/zipped:echo", "/bin/echo", "hi", check=True)
    assert p.stdout == "hi\n"
    assert not other.leftovers()


def test_load_docker_archive(lamina, images, tmp_path):
    archive = tmp_path / "saved.tar"
    skopeo(f"oci:{images['layout']}:two", f"docker-archive:{archive}:example.com/demo:1")
    out = lamina("image", "load", archive, check=True).stdout
    assert "Loaded image: example.com/demo:1" in out
    rec = lamina.images()["example.com/demo:1"]
    # docker save layers are plain tars: each blob is its own diff
    assert rec["layers"] == rec["diff_ids"]
    assert len(rec["layers"]) == 2
    p = lamina("run", "--rm", "example.com/demo:1", "/bin/echo", "hi", check=True)
    assert p.stdout == "hi\n"


def one_error_line(p):
    assert p.returncode == 1, (p.stdout, p.stderr)
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("lamina image load: load "), p.stderr
    return lines[0]


def test_load_bad_input(lamina, images, tmp_path):
    archive = tmp_path / "app.tar"
    skopeo(f"oci:{images['layout']}:two", f"oci-archive:{archive}:two")
    data = archive.read_bytes()

    cut = tmp_path / "cut.tar"
    cut.write_bytes(data[: len(data) // 2])
    msg = one_error_line(lamina("image", "load", cut))
    assert "truncated" in msg.lower() or "missing" in msg, msg

    junk = tmp_path / "junk.bin"
    junk.write_bytes(os.urandom(4096))
    assert "not a directory, nor a tar archive" in one_error_line(lamina("image", "load", junk))

    # a layout whose busybox layer does not hash to its name
    bad = tmp_path / "bad-layout"
    shutil.copytree(images["layout"], bad)
    layer = manifest(images, "two")["layers"][0]["digest"]
    blob = bad / "blobs" / "sha256" / layer[7:]
    raw = bytearray(blob.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    blob.write_bytes(bytes(raw))
    assert "digest mismatch" in one_error_line(lamina("image", "load", bad))

    assert lamina("images", "--format", "json", check=True).stdout.strip() == "[]"
    assert lamina("image", "load").returncode == 2  # no PATH: the usage line
