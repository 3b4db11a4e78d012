# Shared by the benchmark scripts: images built once and cached, and a
# loopback registry.  Source it; needs root.
BENCH_CACHE=${BENCH_CACHE:-/var/cache/lamina-bench}

# The Debian minbase image as an OCI layout at $BENCH_CACHE/minbase-oci,
# tag "bench": layer 1 the whole debootstrap --variant=minbase tree, layer 2
# a small change on top (two layers, as images usually have).
bench_minbase_image() {
	local layout=$BENCH_CACHE/minbase-oci
	[ -f "$layout/index.json" ] && grep -q '"bench"' "$layout/index.json" && return 0
	mkdir -p "$BENCH_CACHE"
	local rootfs=$BENCH_CACHE/minbase-rootfs
	if [ ! -x "$rootfs/bin/bash" ]; then
		rm -rf "$rootfs"
		debootstrap --variant=minbase bookworm "$rootfs" http://deb.debian.org/debian >/dev/null
	fi
	# what an image build would clean: downloaded packages and lists
	rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
	local work
	work=$(mktemp -d /tmp/lamina-bench-image.XXXXXX)
	rm -rf "$layout"
	umoci init --layout "$layout"
	umoci new --image "$layout:bench"
	umoci unpack --image "$layout:bench" "$work/bundle" >/dev/null
	cp -a "$rootfs/." "$work/bundle/rootfs/"
	umoci repack --refresh-bundle --image "$layout:bench" "$work/bundle" >/dev/null
	# (umoci insert would write the layer without the last file's tar padding)
	echo "lamina benchmark image" > "$work/bundle/rootfs/etc/lamina-bench"
	umoci repack --image "$layout:bench" "$work/bundle" >/dev/null
	umoci config --image "$layout:bench" --config.cmd /bin/true >/dev/null
	rm -rf "$work"
}

# Start Debian's docker-registry on a free loopback port; sets REGISTRY
# (host:port) and REGISTRY_PID; stopped by bench_registry_stop.
bench_registry_start() {
	local dir port
	dir=$(mktemp -d /tmp/lamina-bench-registry.XXXXXX)
	port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
	cat >"$dir/config.yml" <<YML
version: 0.1
log:
  level: error
storage:
  filesystem:
    rootdirectory: $dir/data
http:
  addr: 127.0.0.1:$port
YML
	docker-registry serve "$dir/config.yml" >"$dir/log" 2>&1 &
	REGISTRY_PID=$!
	REGISTRY_DIR=$dir
	REGISTRY=127.0.0.1:$port
	for _ in $(seq 100); do
		curl -sf "http://$REGISTRY/v2/" >/dev/null 2>&1 && return 0
		sleep 0.05
	done
	echo "registry did not start: $(cat "$dir/log")" >&2
	return 1
}

bench_registry_stop() {
	if [ -n "${REGISTRY_PID:-}" ]; then
		kill "$REGISTRY_PID" 2>/dev/null || true
		wait "$REGISTRY_PID" 2>/dev/null || true
	fi
	[ -n "${REGISTRY_DIR:-}" ] && rm -rf "$REGISTRY_DIR"
	REGISTRY_PID=
	return 0 # (set -e callers: the registry's exit by our SIGTERM is no failure)
}

# Push an OCI layout tag to the registry as NAME:TAG.
bench_push() { # layout:tag name:tag
	skopeo copy --quiet --dest-tls-verify=false "oci:$1" "docker://$REGISTRY/$2"
}

# podman, isolated in DIR: its own storage, runc (crun refuses hybrid
# cgroups), the limits this machine allows, the loopback registry marked
# insecure.  Sets PODMAN (the command prefix) and exports its config paths.
bench_podman_setup() { # dir
	mkdir -p "$1"
	cat >"$1/registries.conf" <<CONF
[[registry]]
location = "$REGISTRY"
insecure = true
CONF
	cat >"$1/containers.conf" <<CONF
[containers]
default_ulimits = ["nofile=1024:1024", "nproc=1000:1000"]
[engine]
runtime = "runc"
events_logger = "file"
CONF
	export CONTAINERS_REGISTRIES_CONF=$1/registries.conf CONTAINERS_CONF=$1/containers.conf
	PODMAN="podman --root $1/root --runroot $1/run --storage-driver overlay"
}
