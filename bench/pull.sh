#!/bin/bash
# Pull benchmark: a two-layer Debian minbase image (debootstrap + umoci, built
# once and cached) from a loopback docker-registry, cold every time:
#   lamina pull (download + verify + unpack into snapshots)
#   podman pull (runc configured, storage in a temp dir)
#   skopeo copy to a directory (download only: the floor)
# Prints medians and ratios, and lamina's peak RSS during the pull.
set -eu
cd "$(dirname "$0")/.."
. bench/lib.sh
lamina=${LAMINA:-$PWD/build-release/src/lamina}
runs=${PULL_RUNS:-5}

bench_minbase_image
work=$(mktemp -d /tmp/lamina-bench-pull.XXXXXX)
trap 'bench_registry_stop; rm -rf "$work"' EXIT
bench_registry_start
bench_push "$BENCH_CACHE/minbase-oci:bench" minbase:bench
ref=$REGISTRY/minbase:bench

bench_podman_setup "$work/podman"
podman_cmd=$PODMAN

hyperfine -N --warmup 1 --runs "$runs" --export-json "$work/pull.json" \
	--prepare "rm -rf $work/lamina-root" -n lamina "$lamina --root $work/lamina-root pull -q $ref" \
	--prepare "rm -rf $work/podman/root $work/podman/run" -n podman "$podman_cmd pull -q $ref" \
	--prepare "rm -rf $work/skopeo" -n skopeo "skopeo copy -q --src-tls-verify=false docker://$ref dir:$work/skopeo" \
	>"$work/hyperfine.txt" 2>&1 || { cat "$work/hyperfine.txt"; exit 1; }

rm -rf "$work/lamina-root"
peak_kib=$(python3 - "$lamina" "$work/lamina-root" "$ref" <<'PY'
import resource, subprocess, sys
lamina, root, ref = sys.argv[1:]
subprocess.run([lamina, "--root", root, "pull", "-q", ref], check=True, stdout=subprocess.DEVNULL)
print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
PY
)

size=$(du -sb "$BENCH_CACHE/minbase-oci/blobs" | cut -f1)
files=$(find "$BENCH_CACHE/minbase-rootfs" | wc -l)

python3 - "$work/pull.json" "$peak_kib" "$size" "$files" <<'PY'
import json, sys
r = {x["command"]: x for x in json.load(open(sys.argv[1]))["results"]}
peak, size, files = int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
l, p, s = r["lamina"]["median"], r["podman"]["median"], r["skopeo"]["median"]
print(f"cold pull of a 2-layer Debian minbase image ({size/1e6:.0f} MB compressed, {files} files), loopback registry:")
print(f"  lamina pull (download+verify+unpack)  median {l:6.3f} s")
print(f"  podman pull (runc, overlay)           median {p:6.3f} s")
print(f"  skopeo copy to dir (download only)    median {s:6.3f} s")
print(f"  ratio lamina/podman: {l/p:.2f}   lamina/skopeo-download: {l/s:.2f}")
print(f"  lamina peak RSS during the pull: {peak/1024:.1f} MiB")
PY
