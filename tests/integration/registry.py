"""Loopback registries for the image tests.

Everything here listens on 127.0.0.1 only:

    Registry      Debian's docker-registry (distribution v2) on a free port, plain,
                  with htpasswd basic auth, or with token auth; a temp storage dir
                  (several registries may share one: they only read it)
    TokenServer   a small token issuer for the token-auth registry: checks basic
                  credentials, signs RS256 JWTs with a key made by the openssl CLI
                  (signing through `openssl dgst` too: no Python crypto needed),
                  and counts the tokens it hands out
    Proxy         a reverse proxy in front of a registry that misbehaves on request:
                  drops blob responses after N bytes (once or always), ignores Range,
                  answers one blob GET with a 401 challenge, rewrites a manifest's
                  Content-Type, serves made-up manifests, redirects blob GETs to a
                  StorageServer; it records every request it forwards
    StorageServer serves blobs straight from a registry's storage dir (the target of
                  redirects and foreign-layer urls), recording the headers it got
    build_images  an OCI layout made with umoci from busybox-static: "one" (1 layer),
                  "three" (3 layers), and "multi", an index of linux/amd64,
                  linux/arm64/v8 and linux/s390x images written into index.json by hand
    push          skopeo copy from the layout into a registry
"""

import base64
import hashlib
import http.client
import http.server
import json
import os
import shutil
import socket
import subprocess
import threading
import time
import urllib.parse
from pathlib import Path

REGISTRY_BIN = "/usr/bin/docker-registry"
TOOLS = {
    "docker-registry": REGISTRY_BIN,
    "skopeo": shutil.which("skopeo") or "/usr/bin/skopeo",
    "umoci": shutil.which("umoci") or "/usr/bin/umoci",
}
MISSING = [name for name, path in TOOLS.items() if not os.access(path, os.X_OK)]

SERVICE = "lamina-test-registry"
ISSUER = "lamina-test-issuer"


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return "sha256:" + h.hexdigest()


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _check(args, **kw):
    p = subprocess.run([str(a) for a in args], capture_output=True, text=True, timeout=60, **kw)
    if p.returncode != 0:
        raise AssertionError(f"{' '.join(map(str, args))} exited {p.returncode}: {p.stderr}{p.stdout}")
    return p.stdout


# ---------------------------------------------------------------------------
# the registry


class Registry:
    """docker-registry serve on 127.0.0.1:<free port>."""

    def __init__(self, workdir, storage, auth=None, htpasswd=None, token=None):
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.storage = Path(storage)
        self.port = free_port()
        self.host = f"127.0.0.1:{self.port}"
        lines = [
            "version: 0.1",
            "log:",
            "  level: error",
            "  accesslog:",
            "    disabled: true",
            "storage:",
            "  filesystem:",
            f"    rootdirectory: {self.storage}",
            "  delete:",
            "    enabled: true",
            "http:",
            f"  addr: 127.0.0.1:{self.port}",
        ]
        if auth == "htpasswd":
            lines += ["auth:", "  htpasswd:", "    realm: basic-realm", f"    path: {htpasswd}"]
        elif auth == "token":
            lines += ["auth:", "  token:", f"    realm: {token.realm}", f"    service: {SERVICE}",
                      f"    issuer: {ISSUER}", f"    rootcertbundle: {token.cert}"]
        self.config = self.workdir / f"registry-{self.port}.yml"
        self.config.write_text("\n".join(lines) + "\n")
        self.log = self.workdir / f"registry-{self.port}.log"
        self.proc = None

    def start(self):
        # REGISTRY_* variables override the config file: keep ours out of it.
        env = {k: v for k, v in os.environ.items() if not k.startswith("REGISTRY_")}
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen([REGISTRY_BIN, "serve", str(self.config)], stdout=log,
                                         stderr=log, stdin=subprocess.DEVNULL, env=env,
                                         start_new_session=True)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"docker-registry exited {self.proc.returncode}: "
                                     f"{self.log.read_text()}")
            try:
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=2)
                conn.request("GET", "/v2/")
                conn.getresponse().read()
                conn.close()
                return self
            except OSError:
                time.sleep(0.05)
        raise AssertionError(f"docker-registry did not come up: {self.log.read_text()}")

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def blob_path(self, digest):
        return blob_path(self.storage, digest)


def blob_path(storage, digest):
    hexd = digest.split(":", 1)[1]
    return Path(storage) / "docker/registry/v2/blobs/sha256" / hexd[:2] / hexd / "data"


def make_htpasswd(path, users):
    if not shutil.which("htpasswd"):
        raise AssertionError("htpasswd not found (apt-get install apache2-utils)")
    text = "".join(_check(["htpasswd", "-Bbn", u, p]).strip() + "\n" for u, p in users.items())
    Path(path).write_text(text)
    return path


# ---------------------------------------------------------------------------
# small HTTP servers in threads


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True


class _Quiet(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def send_json(self, status, obj, headers=()):
        body = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        for k, v in headers:
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)


class _Threaded:
    def _serve(self, handler):
        self.server = _Server(("127.0.0.1", 0), handler)
        self.server.owner = self
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


class TokenServer(_Threaded):
    """Issues registry tokens at /token for known users (pull/push on any repo);
    anonymous callers get a token that grants nothing."""

    def __init__(self, workdir, users):
        if not shutil.which("openssl"):
            raise AssertionError("openssl not found")
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.users = dict(users)
        self.key = self.workdir / "token.key"
        self.cert = self.workdir / "token.crt"
        _check(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", self.key,
                "-out", self.cert, "-days", "2", "-subj", "/CN=lamina-test-issuer"])
        der = subprocess.run(["openssl", "x509", "-in", str(self.cert), "-outform", "DER"],
                             capture_output=True, check=True).stdout
        self.x5c = base64.b64encode(der).decode()
        self.lock = threading.Lock()
        self.requests = []      # (user or None, scopes, granted)
        self._serve(self._handler())
        self.realm = f"http://127.0.0.1:{self.port}/token"

    @property
    def issued(self):
        with self.lock:
            return sum(1 for r in self.requests if r[2] is not None)

    def reset_count(self):
        with self.lock:
            self.requests.clear()

    def sign(self, claims):
        header = {"typ": "JWT", "alg": "RS256", "x5c": [self.x5c]}
        signing_input = (b64url(json.dumps(header).encode()) + "." +
                         b64url(json.dumps(claims).encode())).encode()
        sig = subprocess.run(["openssl", "dgst", "-sha256", "-sign", str(self.key)],
                             input=signing_input, capture_output=True, check=True).stdout
        return signing_input.decode() + "." + b64url(sig)

    def _handler(self):
        owner = self

        class Handler(_Quiet):
            def do_GET(self):
                url = urllib.parse.urlparse(self.path)
                if url.path != "/token":
                    return self.send_json(404, {"details": "not found"})
                q = urllib.parse.parse_qs(url.query)
                scopes = q.get("scope", [])
                user = None
                auth = self.headers.get("Authorization", "")
                if auth.startswith("Basic "):
                    u, _, p = base64.b64decode(auth[6:]).decode().partition(":")
                    if owner.users.get(u) != p:
                        with owner.lock:
                            owner.requests.append((u, scopes, None))
                        return self.send_json(401, {"details": "incorrect username or password"})
                    user = u
                access = []
                if user:
                    for s in scopes:
                        parts = s.split(":")
                        if len(parts) >= 3 and parts[0] == "repository":
                            access.append({"type": "repository", "name": ":".join(parts[1:-1]),
                                           "actions": parts[-1].split(",")})
                now = int(time.time())
                claims = {"iss": ISSUER, "sub": user or "", "aud": q.get("service", [""])[0],
                          "exp": now + 300, "nbf": now - 10, "iat": now,
                          "jti": base64.b16encode(os.urandom(8)).decode(), "access": access}
                token = owner.sign(claims)
                with owner.lock:
                    owner.requests.append((user, scopes, access))
                self.send_json(200, {"token": token, "access_token": token, "expires_in": 300})

        return Handler


class StorageServer(_Threaded):
    """GET /<hex> serves that blob from a registry storage dir."""

    def __init__(self, storage):
        self.storage = Path(storage)
        self.lock = threading.Lock()
        self.requests = []  # (path, headers dict)
        self._serve(self._handler())
        self.base = f"http://127.0.0.1:{self.port}"

    def _handler(self):
        owner = self

        class Handler(_Quiet):
            def do_GET(self):
                with owner.lock:
                    owner.requests.append((self.path, dict(self.headers.items())))
                hexd = self.path.strip("/").split("?")[0]
                path = blob_path(owner.storage, "sha256:" + hexd)
                if len(hexd) != 64 or not path.is_file():
                    return self.send_json(404, {"errors": [{"code": "BLOB_UNKNOWN",
                                                            "message": "blob unknown to registry"}]})
                data = path.read_bytes()
                self.send_response(200)
                self.send_header("Content-Type", "application/octet-stream")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        return Handler


class Proxy(_Threaded):
    """Reverse proxy to a registry, misbehaving as configured.

    drop_after      bytes of a blob body to send before closing the connection
    drop_times      how many blob responses get dropped (None: all of them)
    strip_range     forward blob GETs without their Range header
    blob_delay      seconds to wait before answering each blob GET
    fake_401_once   answer the first blob GET with 401 + this WWW-Authenticate value
    content_types   {manifest path suffix ("busybox/manifests/one"): Content-Type to send}
    manifests       {path ("/v2/busybox/manifests/foreign"): (media type, bytes)} served as is
    redirect_blobs  a StorageServer: blob GETs get a 307 to it
    """

    HOP = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade",
           "proxy-authorization", "proxy-authenticate", "host"}

    def __init__(self, upstream_port):
        self.upstream_port = upstream_port
        self.drop_after = None
        self.drop_times = 1
        self.strip_range = False
        self.blob_delay = 0
        self.fake_401_once = None
        self.content_types = {}
        self.manifests = {}
        self.redirect_blobs = None
        self.lock = threading.Lock()
        self.requests = []      # (method, path, headers dict)
        self.dropped = 0
        self.in_flight = 0
        self.max_in_flight = 0
        self._serve(self._handler())
        self.host = f"127.0.0.1:{self.port}"

    def blob_requests(self):
        with self.lock:
            return [r for r in self.requests if "/blobs/" in r[1]]

    def _handler(self):
        owner = self

        class Handler(_Quiet):
            def do_HEAD(self):
                self.forward("HEAD")

            def do_GET(self):
                self.forward("GET")

            def forward(self, method):
                headers = {k: v for k, v in self.headers.items() if k.lower() not in owner.HOP}
                with owner.lock:
                    owner.requests.append((method, self.path, dict(headers)))
                is_blob = "/blobs/" in self.path and method == "GET"
                if self.path in owner.manifests:
                    mt, body = owner.manifests[self.path]
                    self.send_response(200)
                    self.send_header("Content-Type", mt)
                    self.send_header("Content-Length", str(len(body)))
                    self.send_header("Docker-Content-Digest",
                                     "sha256:" + hashlib.sha256(body).hexdigest())
                    self.end_headers()
                    if method == "GET":
                        self.wfile.write(body)
                    return
                if is_blob and owner.fake_401_once:
                    challenge, owner.fake_401_once = owner.fake_401_once, None
                    return self.send_json(401, {"errors": [{"code": "UNAUTHORIZED",
                                                            "message": "token expired"}]},
                                          [("WWW-Authenticate", challenge)])
                if is_blob and owner.redirect_blobs:
                    hexd = self.path.rsplit(":", 1)[1]
                    self.send_response(307)
                    self.send_header("Location", f"{owner.redirect_blobs.base}/{hexd}")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                if is_blob:
                    with owner.lock:
                        owner.in_flight += 1
                        owner.max_in_flight = max(owner.max_in_flight, owner.in_flight)
                try:
                    if is_blob and owner.blob_delay:
                        time.sleep(owner.blob_delay)
                    if is_blob and owner.strip_range:
                        headers = {k: v for k, v in headers.items() if k.lower() != "range"}
                    self.relay(method, headers, is_blob)
                finally:
                    if is_blob:
                        with owner.lock:
                            owner.in_flight -= 1

            def relay(self, method, headers, is_blob):
                up = http.client.HTTPConnection("127.0.0.1", owner.upstream_port, timeout=30)
                try:
                    up.request(method, self.path, headers=headers)
                    resp = up.getresponse()
                    body = resp.read() if method == "GET" else b""
                finally:
                    up.close()
                drop = None
                if (is_blob and resp.status in (200, 206) and owner.drop_after is not None
                        and len(body) > owner.drop_after):
                    with owner.lock:
                        if owner.drop_times is None or owner.dropped < owner.drop_times:
                            owner.dropped += 1
                            drop = owner.drop_after
                self.send_response(resp.status)
                for k, v in resp.getheaders():
                    kl = k.lower()
                    if kl in owner.HOP or kl == "content-length":
                        continue
                    if kl == "content-type":
                        for suffix, ct in owner.content_types.items():
                            if self.path.endswith(suffix):
                                v = ct
                    self.send_header(k, v)
                length = resp.getheader("Content-Length")
                self.send_header("Content-Length", length if method == "HEAD" and length
                                 else str(len(body)))
                self.end_headers()
                if drop is None:
                    self.wfile.write(body)
                    return
                self.wfile.write(body[:drop])
                self.wfile.flush()
                self.close_connection = True
                try:
                    self.connection.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

        return Handler


# ---------------------------------------------------------------------------
# images


def build_images(workdir, busybox="/bin/busybox"):
    """An OCI layout with tags one, three and multi (an index); returns
    {tag: {"manifest": digest, "config": digest, "layers": [digests]}} plus
    "multi": {"index": digest, "platforms": {"linux/amd64": manifest digest, ...}}."""
    workdir = Path(workdir)
    layout = workdir / "layout"
    _check(["umoci", "init", "--layout", layout])
    _check(["umoci", "new", "--image", f"{layout}:one"])
    root = workdir / "rootfs"
    (root / "bin").mkdir(parents=True)
    shutil.copy2(busybox, root / "bin" / "busybox")
    _check(["umoci", "insert", "--image", f"{layout}:one", root, "/"])
    _check(["umoci", "config", "--image", f"{layout}:one", "--config.cmd", "/bin/sh"])

    _check(["umoci", "tag", "--image", f"{layout}:one", "three"])
    extra = workdir / "extra"
    (extra / "etc").mkdir(parents=True)
    (extra / "etc" / "motd").write_text("layer two\n")
    _check(["umoci", "insert", "--image", f"{layout}:three", extra, "/"])
    data = workdir / "data"
    data.mkdir()
    # incompressible, so the layer is big enough to be cut in the middle
    (data / "blob.bin").write_bytes(os.urandom(768 << 10))
    _check(["umoci", "insert", "--image", f"{layout}:three", data, "/data"])

    platforms = {}
    for arch, variant in (("amd64", None), ("arm64", "v8"), ("s390x", None)):
        tag = f"p-{arch}"
        _check(["umoci", "tag", "--image", f"{layout}:one", tag])
        _check(["umoci", "config", "--image", f"{layout}:{tag}", "--architecture", arch,
                "--config.label", f"arch={arch}"])
        platforms[(arch, variant)] = tag

    index = json.loads((layout / "index.json").read_text())
    by_tag = {m["annotations"]["org.opencontainers.image.ref.name"]: m for m in index["manifests"]}
    entries = []
    for (arch, variant), tag in platforms.items():
        d = dict(by_tag[tag])
        d.pop("annotations", None)
        d["platform"] = {"architecture": arch, "os": "linux"}
        if variant:
            d["platform"]["variant"] = variant
        entries.append(d)
    multi = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
                        "manifests": entries}).encode()
    multi_digest = "sha256:" + hashlib.sha256(multi).hexdigest()
    (layout / "blobs" / "sha256" / multi_digest[7:]).write_bytes(multi)
    index["manifests"].append({"mediaType": "application/vnd.oci.image.index.v1+json",
                               "digest": multi_digest, "size": len(multi),
                               "annotations": {"org.opencontainers.image.ref.name": "multi"}})
    (layout / "index.json").write_text(json.dumps(index))

    def describe(digest):
        m = json.loads((layout / "blobs" / "sha256" / digest[7:]).read_text())
        return {"manifest": digest, "config": m["config"]["digest"],
                "layers": [l["digest"] for l in m["layers"]],
                "layer_sizes": [l["size"] for l in m["layers"]]}

    images = {"layout": layout}
    for tag in ("one", "three"):
        images[tag] = describe(by_tag[tag]["digest"])
    images["multi"] = {"index": multi_digest, "platforms": {
        f"linux/{arch}": by_tag[tag]["digest"] for (arch, _), tag in platforms.items()}}
    return images


def push(layout, tag, dest, creds=None, all_platforms=False):
    args = ["skopeo", "copy", "--quiet", "--dest-tls-verify=false"]
    if creds:
        args += ["--dest-creds", creds]
    if all_platforms:
        args.append("--all")
    _check(args + [f"oci:{layout}:{tag}", f"docker://{dest}"])
