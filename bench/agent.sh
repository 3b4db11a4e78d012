#!/bin/bash
# Agent benchmark, side by side in one run:
#   lamina run --rm IMAGE true (agent running, image present)
#   podman run --rm IMAGE true (runc, network none, image present)
#   runc run of a prepared busybox bundle (no image, no agent: the floor)
# then 100 detached containers started and removed through the agent:
# total times, the agent's RSS with 100 running, each monitor's RSS.
set -eu
cd "$(dirname "$0")/.."
repo=$PWD
. bench/lib.sh
lamina=${LAMINA:-$PWD/build-release/src/lamina}
runs=${AGENT_RUNS:-30}
work=$(mktemp -d /tmp/lamina-bench-agent.XXXXXX)
agent_pid=
cleanup() {
	[ -n "$agent_pid" ] && kill "$agent_pid" 2>/dev/null && wait "$agent_pid" 2>/dev/null
	bench_registry_stop
	rm -rf "$work"
}
trap cleanup EXIT

# a busybox image: the same rootfs for the three
scripts/make-bundle "$work/bundle" "$lamina" -- /bin/true >/dev/null
umoci init --layout "$work/layout" >/dev/null
umoci new --image "$work/layout:1" >/dev/null
umoci unpack --image "$work/layout:1" "$work/image" >/dev/null
cp -a "$work/bundle/rootfs/." "$work/image/rootfs/"
umoci repack --image "$work/layout:1" "$work/image" >/dev/null
bench_registry_start
bench_push "$work/layout:1" bench/busybox:1
ref=$REGISTRY/bench/busybox:1

L="$lamina --root $work/lamina-root --state $work/lamina-state"
$L pull -q "$ref" >/dev/null
$L agent >"$work/agent.log" 2>&1 &
agent_pid=$!
for _ in $(seq 100); do [ -S "$work/lamina-state/lamina.sock" ] && break; sleep 0.05; done

bench_podman_setup "$work/podman"
$PODMAN pull -q "$ref" >/dev/null

cd "$work/bundle"
hyperfine -N --warmup 3 --runs "$runs" --export-json "$work/run.json" \
	-n lamina "$L run --rm $ref true" \
	-n podman "$PODMAN run --rm --network none $ref true" \
	-n runc "runc --root $work/runc-state run bench-r" \
	>"$work/hyperfine.txt" 2>&1 || { cat "$work/hyperfine.txt" "$work/agent.log"; exit 1; }
cd "$repo"

# 100 detached containers
start=$(date +%s%N)
for i in $(seq 1 100); do $L run -d --name "b$i" "$ref" sleep 1000 >/dev/null; done
started=$(date +%s%N)
agent_rss=$(awk '/VmRSS/ {print $2}' "/proc/$agent_pid/status")
mon_rss=$(for p in $(pgrep -f "lamina-monitor .*$work/lamina-state"); do awk '/VmRSS/ {print $2}' "/proc/$p/status"; done |
	sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)], a[NR], NR}')
$L rm -f $(seq -f "b%g" 1 100) >/dev/null
removed=$(date +%s%N)

python3 - "$work/run.json" "$start" "$started" "$removed" "$agent_rss" $mon_rss <<'PY'
import json, sys
r = {x["command"]: x["median"] for x in json.load(open(sys.argv[1]))["results"]}
start, started, removed = (int(x) for x in sys.argv[2:5])
agent_rss, mon_median, mon_max, n = (int(x) for x in sys.argv[5:9])
l, p, c = r["lamina"], r["podman"], r["runc"]
print("run --rm of `true` from a busybox image (image present), whole-command medians:")
print(f"  lamina run --rm (agent)   {l*1000:7.1f} ms")
print(f"  podman run --rm (runc)    {p*1000:7.1f} ms")
print(f"  runc run (bundle ready)   {c*1000:7.1f} ms")
print(f"  ratio lamina/podman: {l/p:.3f} (target <= 0.10)   lamina/runc: {l/c:.2f}")
print(f"100 detached containers (sleep) through the agent: started in {(started-start)/1e9:.2f} s "
      f"({(started-start)/1e8:.1f} ms each), removed (rm -f) in {(removed-started)/1e9:.2f} s")
print(f"  agent RSS with 100 running: {agent_rss/1024:.1f} MiB (target < 20 MiB)")
print(f"  monitor RSS: median {mon_median} KiB, max {mon_max} KiB over {n} monitors (target < 1024 KiB)")
PY
