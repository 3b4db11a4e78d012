"""The registry client against real registries on loopback.

tests/tools/registry_fetch drives src/image/registry.c: it fetches a manifest (after
index selection), the config and every layer into a directory and prints a JSON
summary (per blob: how often its sink was reset). Registries are Debian's
docker-registry, plain, with htpasswd basic auth, and with token auth backed by the
TokenServer in registry.py; faults (dropped connections, ignored Range, odd media
types, expired tokens, redirects) come from a Proxy in front of them. Images are
built once per module with umoci from busybox-static and pushed with skopeo.
"""

import base64
import json
import os
import platform
import shutil
import stat
import subprocess
import time
from pathlib import Path

import pytest

from conftest import BUILD
import registry as reg

pytestmark = pytest.mark.skipif(
    bool(reg.MISSING), reason=f"registry tests need {', '.join(reg.MISSING)} (not installed)")

FETCH = BUILD / "tests" / "registry_fetch"
USERS = {"alice": "wonderland"}
MACHINE_ARCH = {"x86_64": "amd64", "aarch64": "arm64", "s390x": "s390x"}.get(platform.machine())


class Fetch:
    def __init__(self, p, outdir):
        self.returncode, self.stdout, self.stderr, self.outdir = (
            p.returncode, p.stdout, p.stderr, Path(outdir) if outdir else None)

    def ok(self):
        assert self.returncode == 0, f"registry_fetch failed: {self.stderr}"
        return json.loads(self.stdout)

    def error(self):
        assert self.returncode == 1, f"expected a failure, got {self.returncode}: {self.stdout}"
        lines = self.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("registry_fetch: "), self.stderr
        return lines[0][len("registry_fetch: "):]


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    """An empty HOME: no ~/.docker/config.json of the machine leaks in."""
    return tmp_path_factory.mktemp("home")


@pytest.fixture
def fetch(tmp_path, home):
    if not FETCH.is_file():
        pytest.fail(f"{FETCH} not found (build it: ninja -C {BUILD})", pytrace=False)
    count = [0]

    def run(*args, outdir=True, timeout=60):
        env = {k: v for k, v in os.environ.items() if k != "REGISTRY_AUTH_FILE"}
        env["HOME"] = str(home)
        out = None
        if outdir is True:
            count[0] += 1
            out = tmp_path / f"out{count[0]}"
            args = args + (str(out),)
        p = subprocess.run([str(FETCH), *map(str, args)], capture_output=True, text=True,
                           timeout=timeout, env=env)
        return Fetch(p, out)

    return run


def auth_file(path, host, user, password, form="auth"):
    if form == "auth":
        entry = {"auth": base64.b64encode(f"{user}:{password}".encode()).decode()}
    else:
        entry = {"username": user, "password": password}
    Path(path).write_text(json.dumps({"auths": {host: entry}}))
    return path


def check_files(res, image):
    """Every blob on disk under its digest, nothing partial left."""
    names = sorted(p.name for p in res.outdir.iterdir())
    want = sorted({d[7:] for d in [image["config"], *image["layers"]]} | {"manifest.json"})
    assert names == want
    for d in [image["config"], *image["layers"]]:
        assert reg.sha256_file(res.outdir / d[7:]) == d
    assert reg.sha256_file(res.outdir / "manifest.json") == image["manifest"]


# ---------------------------------------------------------------------------
# module fixtures: images and registries


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    return reg.build_images(tmp_path_factory.mktemp("images"))


@pytest.fixture(scope="module")
def storage(tmp_path_factory):
    return tmp_path_factory.mktemp("storage")


@pytest.fixture(scope="module")
def plain(tmp_path_factory, images, storage):
    r = reg.Registry(tmp_path_factory.mktemp("plain"), storage).start()
    try:
        layout = images["layout"]
        reg.push(layout, "one", f"{r.host}/busybox:one")
        reg.push(layout, "three", f"{r.host}/busybox:three")
        reg.push(layout, "multi", f"{r.host}/busybox:multi", all_platforms=True)
        yield r
    finally:
        r.stop()


@pytest.fixture(scope="module")
def basic(tmp_path_factory, plain, storage):
    work = tmp_path_factory.mktemp("basic")
    htpasswd = reg.make_htpasswd(work / "htpasswd", USERS)
    r = reg.Registry(work, storage, auth="htpasswd", htpasswd=htpasswd).start()
    yield r
    r.stop()


@pytest.fixture(scope="module")
def token_server(tmp_path_factory):
    t = reg.TokenServer(tmp_path_factory.mktemp("token"), USERS)
    yield t
    t.stop()


@pytest.fixture(scope="module")
def token(tmp_path_factory, plain, storage, token_server):
    r = reg.Registry(tmp_path_factory.mktemp("tokenreg"), storage, auth="token",
                     token=token_server).start()
    yield r
    r.stop()


@pytest.fixture
def proxy_to():
    made = []

    def make(registry):
        p = reg.Proxy(registry.port)
        made.append(p)
        return p

    yield make
    for p in made:
        p.stop()


# ---------------------------------------------------------------------------
# fetching


def test_fetch_by_tag(fetch, plain, images):
    out = fetch(f"{plain.host}/busybox:one")
    s = out.ok()
    img = images["one"]
    assert s["digest"] == img["manifest"]
    assert s["media_type"] == "application/vnd.oci.image.manifest.v1+json"
    assert s["index_digest"] is None
    assert s["config"]["digest"] == img["config"]
    assert [l["digest"] for l in s["layers"]] == img["layers"]
    assert s["layers"][0]["media_type"] == "application/vnd.oci.image.layer.v1.tar+gzip"
    check_files(out, img)


def test_fetch_by_digest(fetch, plain, images):
    img = images["three"]
    out = fetch(f"{plain.host}/busybox@{img['manifest']}")
    s = out.ok()
    assert s["digest"] == img["manifest"]
    check_files(out, img)
    # tag and digest together: the digest wins
    s = fetch(f"{plain.host}/busybox:one@{img['manifest']}").ok()
    assert s["digest"] == img["manifest"]


def test_fetch_sequential_api(fetch, plain, images):
    out = fetch("--sequential", f"{plain.host}/busybox:three")
    out.ok()
    check_files(out, images["three"])


def test_head_manifest(fetch, plain, images):
    s = fetch("--head", f"{plain.host}/busybox:one", outdir=False).ok()
    assert s["digest"] == images["one"]["manifest"]
    # a multi-platform tag answers with its index digest
    s = fetch("--head", f"{plain.host}/busybox:multi", outdir=False).ok()
    assert s["digest"] == images["multi"]["index"]
    err = fetch("--head", f"{plain.host}/busybox:nope", outdir=False).error()
    assert err == f"{plain.host}/busybox:nope: HTTP 404: manifest unknown"


def test_manifest_unknown(fetch, plain):
    out = fetch(f"{plain.host}/busybox:does-not-exist")
    assert out.error() == f"{plain.host}/busybox:does-not-exist: HTTP 404: manifest unknown"
    assert not out.outdir.exists() or list(out.outdir.iterdir()) == []
    missing = "sha256:" + "0" * 64
    err = fetch(f"{plain.host}/busybox@{missing}").error()
    assert "HTTP 404: manifest unknown" in err


def test_registry_unreachable(fetch):
    port = reg.free_port()
    err = fetch("--retries", "1", "--retry-delay-ms", "10", f"127.0.0.1:{port}/busybox:one").error()
    assert f"127.0.0.1:{port}" in err and "onnect" in err and "gave up" in err


def test_parallel_fetch_of_three_layers(fetch, plain, images, proxy_to):
    proxy = proxy_to(plain)
    proxy.blob_delay = 0.3
    out = fetch("--parallel", "4", f"{proxy.host}/busybox:three")
    s = out.ok()
    assert len(s["layers"]) == 3
    check_files(out, images["three"])
    # config and three layers: all in flight at once
    assert proxy.max_in_flight == 4
    assert len(proxy.blob_requests()) == 4

    proxy2 = proxy_to(plain)
    proxy2.blob_delay = 0.1
    fetch("--parallel", "1", f"{proxy2.host}/busybox:three").ok()
    assert proxy2.max_in_flight == 1


# ---------------------------------------------------------------------------
# digests


def test_corrupt_blob_fails_then_retry_succeeds(fetch, tmp_path, plain, images):
    # a registry of its own: the shared storage stays intact
    store = tmp_path / "store"
    shutil.copytree(plain.storage, store)
    r = reg.Registry(tmp_path / "corrupt", store).start()
    try:
        layer = images["one"]["layers"][0]
        path = r.blob_path(layer)
        data = bytearray(path.read_bytes())
        good = data[len(data) // 2]
        data[len(data) // 2] ^= 0xFF
        path.write_bytes(bytes(data))
        out = fetch(f"{r.host}/busybox:one")
        err = out.error()
        assert err.startswith(f"blob {layer}: ") and "digest mismatch" in err, err
        # the failed blob is not left behind, neither whole nor partial
        assert not any(p.name.startswith(layer[7:]) for p in out.outdir.iterdir())

        data[len(data) // 2] = good
        path.write_bytes(bytes(data))
        out = fetch(f"{r.host}/busybox:one")
        out.ok()
        check_files(out, images["one"])
    finally:
        r.stop()


# ---------------------------------------------------------------------------
# platforms


def test_platform_selection(fetch, plain, images):
    multi = images["multi"]
    for plat, key in (("linux/arm64", "linux/arm64"), ("linux/arm64/v8", "linux/arm64"),
                      ("linux/s390x", "linux/s390x"), ("linux/amd64", "linux/amd64")):
        out = fetch("--platform", plat, f"{plain.host}/busybox:multi")
        s = out.ok()
        assert s["index_digest"] == multi["index"], plat
        assert s["digest"] == multi["platforms"][key], plat
        config = json.loads((out.outdir / s["config"]["digest"][7:]).read_text())
        assert config["architecture"] == key.split("/")[1]
    if MACHINE_ARCH in ("amd64", "arm64", "s390x"):
        s = fetch(f"{plain.host}/busybox:multi").ok()
        assert s["digest"] == multi["platforms"][f"linux/{MACHINE_ARCH}"]


def test_platform_no_match(fetch, plain):
    err = fetch("--platform", "linux/ppc64le", f"{plain.host}/busybox:multi").error()
    assert err == (f"{plain.host}/busybox:multi: no manifest for linux/ppc64le in index; "
                   "available: linux/amd64, linux/arm64, linux/s390x")
    err = fetch("--platform", "linux/arm64/v9", f"{plain.host}/busybox:multi").error()
    assert "no manifest for linux/arm64/v9 in index" in err


# ---------------------------------------------------------------------------
# basic auth


def test_basic_auth_good(fetch, tmp_path, basic, images):
    for form in ("auth", "fields"):
        creds = auth_file(tmp_path / f"auth-{form}.json", basic.host, "alice", "wonderland", form)
        out = fetch("--auth-file", creds, f"{basic.host}/busybox:three")
        out.ok()
        check_files(out, images["three"])


def test_basic_auth_from_env_and_url_key(fetch, tmp_path, basic, home):
    # keys may be URLs; $REGISTRY_AUTH_FILE is read when no file is given
    creds = tmp_path / "auth.json"
    creds.write_text(json.dumps({"auths": {f"http://{basic.host}/v2/": {
        "auth": base64.b64encode(b"alice:wonderland").decode()}}}))
    env = dict(os.environ, HOME=str(home), REGISTRY_AUTH_FILE=str(creds))
    p = subprocess.run([str(FETCH), f"{basic.host}/busybox:one", str(tmp_path / "o")],
                       capture_output=True, text=True, timeout=60, env=env)
    assert p.returncode == 0, p.stderr


def test_basic_auth_bad(fetch, tmp_path, basic):
    creds = auth_file(tmp_path / "auth.json", basic.host, "alice", "wrong")
    err = fetch("--auth-file", creds, f"{basic.host}/busybox:one").error()
    assert err.startswith(f"{basic.host}/busybox:one: authentication to {basic.host} failed: "
                          "HTTP 401"), err
    err = fetch("--auth-file", tmp_path / "none.json", f"{basic.host}/busybox:one").error()
    assert f"authentication to {basic.host} failed" in err
    assert "no credentials configured" in err


def test_credential_helpers_refused(fetch, tmp_path, basic):
    cfg = tmp_path / "helpers.json"
    cfg.write_text(json.dumps({"credHelpers": {basic.host: "secretservice"}}))
    err = fetch("--auth-file", cfg, f"{basic.host}/busybox:one").error()
    assert "credential helpers are not supported" in err


def test_login_saves_credentials(fetch, tmp_path, basic):
    creds = tmp_path / "docker" / "config.json"
    err = fetch("--auth-file", creds, "--login", "alice:nope", basic.host, outdir=False).error()
    assert f"authentication to {basic.host} failed" in err
    assert not creds.exists()
    assert fetch("--auth-file", creds, "--login", "alice:wonderland", basic.host,
                 outdir=False).ok() == {"login": "ok"}
    assert stat.S_IMODE(creds.stat().st_mode) == 0o600
    saved = json.loads(creds.read_text())
    assert base64.b64decode(saved["auths"][basic.host]["auth"]) == b"alice:wonderland"
    fetch("--auth-file", creds, f"{basic.host}/busybox:one").ok()


# ---------------------------------------------------------------------------
# token auth


def test_token_auth_good_and_reused(fetch, tmp_path, token, token_server, images):
    creds = auth_file(tmp_path / "auth.json", token.host, "alice", "wonderland")
    token_server.reset_count()
    out = fetch("--auth-file", creds, f"{token.host}/busybox:three")
    out.ok()
    check_files(out, images["three"])
    # one token for the manifest, the config and three layers
    assert token_server.issued == 1
    user, scopes, access = token_server.requests[0]
    assert user == "alice" and scopes == ["repository:busybox:pull"]


def test_token_auth_bad(fetch, tmp_path, token, token_server):
    creds = auth_file(tmp_path / "auth.json", token.host, "alice", "wrong")
    err = fetch("--auth-file", creds, f"{token.host}/busybox:one").error()
    assert err == (f"{token.host}/busybox:one: authentication to {token.host} failed: token server "
                   f"{token_server.realm}: HTTP 401: incorrect username or password")
    # anonymous: a token that grants nothing, then a refusal
    err = fetch("--auth-file", tmp_path / "none.json", f"{token.host}/busybox:one").error()
    assert err.startswith(f"{token.host}/busybox:one: authentication to {token.host} failed: "
                          "HTTP 401: unauthorized"), err
    assert "no credentials configured" in err


def test_token_refreshed_after_401(fetch, tmp_path, token, token_server, proxy_to, images):
    proxy = proxy_to(token)
    proxy.fake_401_once = (f'Bearer realm="{token_server.realm}",service="{reg.SERVICE}",'
                           'scope="repository:busybox:pull",error="invalid_token"')
    # credentials are looked up under the name the client uses: the proxy's
    creds = auth_file(tmp_path / "auth.json", proxy.host, "alice", "wonderland")
    token_server.reset_count()
    out = fetch("--parallel", "1", "--auth-file", creds, f"{proxy.host}/busybox:one")
    out.ok()
    check_files(out, images["one"])
    assert token_server.issued == 2


def test_token_login(fetch, tmp_path, token):
    creds = tmp_path / "config.json"
    err = fetch("--auth-file", creds, "--login", "alice:nope", token.host, outdir=False).error()
    assert f"authentication to {token.host} failed" in err
    fetch("--auth-file", creds, "--login", "alice:wonderland", token.host, outdir=False).ok()
    fetch("--auth-file", creds, f"{token.host}/busybox:one").ok()


# ---------------------------------------------------------------------------
# broken connections


def test_dropped_connection_resumes_with_range(fetch, plain, proxy_to, images):
    proxy = proxy_to(plain)
    proxy.drop_after = 100_000
    out = fetch("--retry-delay-ms", "20", f"{proxy.host}/busybox:three")
    s = out.ok()
    check_files(out, images["three"])
    assert proxy.dropped == 1
    ranges = [h.get("Range") for _, _, h in proxy.blob_requests() if h.get("Range")]
    assert ranges == ["bytes=100000-"]
    assert all(l["resets"] == 0 for l in s["layers"])


def test_dropped_connection_restarts_without_range(fetch, plain, proxy_to, images):
    proxy = proxy_to(plain)
    proxy.drop_after = 100_000
    proxy.strip_range = True
    out = fetch("--retry-delay-ms", "20", f"{proxy.host}/busybox:three")
    s = out.ok()
    check_files(out, images["three"])
    # the registry answered the resume with the whole blob: the sink started over
    assert sorted(l["resets"] for l in s["layers"]) == [0, 0, 1]


def test_connection_always_dropped(fetch, plain, proxy_to, images):
    proxy = proxy_to(plain)
    proxy.drop_after = 50_000
    proxy.drop_times = None
    out = fetch("--retry-delay-ms", "20", f"{proxy.host}/busybox:one")
    err = out.error()
    layer = images["one"]["layers"][0]
    assert err.startswith(f"blob {layer}: {proxy.host}: connection dropped after "), err
    assert "gave up after 4 attempts" in err
    assert proxy.dropped == 4
    assert not any(p.name.startswith(layer[7:]) for p in out.outdir.iterdir())


# ---------------------------------------------------------------------------
# media types, redirects, mirrors, foreign layers


def test_unknown_media_type(fetch, plain, proxy_to):
    proxy = proxy_to(plain)
    proxy.content_types = {"/manifests/one": "application/vnd.example.unknown+json"}
    err = fetch(f"{proxy.host}/busybox:one").error()
    assert err == (f"{proxy.host}/busybox:one: unsupported manifest media type "
                   "\"application/vnd.example.unknown+json\"")


def test_schema1_refused(fetch, plain, proxy_to):
    proxy = proxy_to(plain)
    proxy.content_types = {
        "/manifests/one": "application/vnd.docker.distribution.manifest.v1+prettyjws"}
    err = fetch(f"{proxy.host}/busybox:one").error()
    assert err == f"{proxy.host}/busybox:one: Docker schema1 manifests are not supported"


def test_redirect_does_not_leak_authorization(fetch, tmp_path, basic, proxy_to, images):
    storage = reg.StorageServer(basic.storage)
    try:
        proxy = proxy_to(basic)
        proxy.redirect_blobs = storage
        creds = auth_file(tmp_path / "auth.json", proxy.host, "alice", "wonderland")
        out = fetch("--auth-file", creds, f"{proxy.host}/busybox:three")
        out.ok()
        check_files(out, images["three"])
        sent = [h for _, path, h in proxy.blob_requests()]
        assert sent and all(h.get("Authorization", "").startswith("Basic ") for h in sent)
        assert len(storage.requests) == 4
        assert all("Authorization" not in h for _, h in storage.requests)
    finally:
        storage.stop()


def test_mirror_first_then_registry(fetch, plain, proxy_to, images):
    proxy = proxy_to(plain)
    dead = f"127.0.0.1:{reg.free_port()}"
    # the registry itself is down; its mirror serves
    out = fetch("--mirror", f"{dead}={proxy.host}", f"{dead}/busybox:one")
    out.ok()
    check_files(out, images["one"])
    assert proxy.requests
    # the mirror is down; the registry serves
    out = fetch("--retries", "-1", "--mirror", f"{plain.host}={dead}", f"{plain.host}/busybox:one")
    out.ok()
    # both down: the error names both
    err = fetch("--retries", "-1", "--mirror", f"{dead}=127.0.0.1:{reg.free_port()}",
                f"{dead}/busybox:one").error()
    assert "mirror 127.0.0.1:" in err and dead in err


def test_foreign_layer_urls(fetch, plain, proxy_to, images):
    storage = reg.StorageServer(plain.storage)
    try:
        proxy = proxy_to(plain)
        img = images["one"]
        layout = images["layout"]
        m = json.loads((layout / "blobs/sha256" / img["manifest"][7:]).read_text())
        m["layers"][0]["mediaType"] = \
            "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip"
        m["layers"][0]["urls"] = [f"{storage.base}/{img['layers'][0][7:]}"]
        body = json.dumps(m).encode()
        proxy.manifests = {"/v2/busybox/manifests/foreign":
                           ("application/vnd.oci.image.manifest.v1+json", body)}
        err = fetch(f"{proxy.host}/busybox:foreign").error()
        assert "foreign layer" in err and "disabled" in err, err
        assert storage.requests == []
        out = fetch("--allow-foreign", f"{proxy.host}/busybox:foreign")
        out.ok()
        assert [p for p, _ in storage.requests] == [f"/{img['layers'][0][7:]}"]
        assert reg.sha256_file(out.outdir / img["layers"][0][7:]) == img["layers"][0]
    finally:
        storage.stop()
