#!/bin/bash
# Container start with lamina's default seccomp profile against no seccomp,
# and against runc with the same profile (the same config.json): hyperfine,
# whole-process times of `run` of /bin/true on a busybox bundle, ratios
# printed.  Then what the compiled-filter cache saves (bench/seccomp_bench).
# Usage: bench/seccomp.sh   (as root; LAMINA, SECCOMP_BENCH: the binaries,
# default build-release's; BENCH_RUNS: runs of each command)
set -eu
cd "$(dirname "$0")/.."
lamina=${LAMINA:-$PWD/build-release/src/lamina}
bench_bin=${SECCOMP_BENCH:-$PWD/build-release/bench/seccomp_bench}
runs=${BENCH_RUNS:-200}
work=$(mktemp -d /tmp/lamina-bench-seccomp.XXXXXX)
trap 'rm -rf "$work"' EXIT

scripts/make-bundle "$work/plain" "$lamina" -- /bin/true >/dev/null
mkdir "$work/seccomp"
"$lamina" oci spec --bundle "$work/seccomp" --seccomp-default
# the same config plus the profile (made for the same capabilities), the same rootfs
python3 - "$work" <<'PY'
import json, sys
w = sys.argv[1]
plain = json.load(open(f"{w}/plain/config.json"))
plain["root"]["path"] = f"{w}/plain/rootfs"
json.dump(plain, open(f"{w}/plain/config.json", "w"), indent=1)
plain["linux"]["seccomp"] = json.load(open(f"{w}/seccomp/config.json"))["linux"]["seccomp"]
json.dump(plain, open(f"{w}/seccomp/config.json", "w"), indent=1)
PY

L="$lamina oci --root $work/lamina-state" R="runc --root $work/runc-state"
hyperfine -N --warmup 10 --runs "$runs" --export-json "$work/start.json" \
	--prepare true -n lamina "$L run --bundle $work/plain b-l" \
	--prepare true -n lamina-seccomp "$L run --bundle $work/seccomp b-ls" \
	--prepare "rm -rf $work/lamina-state/.seccomp-cache" -n lamina-seccomp-nocache "$L run --bundle $work/seccomp b-lc" \
	--prepare true -n runc "$R run --bundle $work/plain b-r" \
	--prepare true -n runc-seccomp "$R run --bundle $work/seccomp b-rs" \
	>"$work/hyperfine.txt" 2>&1 || { cat "$work/hyperfine.txt"; exit 1; }

python3 - "$work/start.json" <<'PY'
import json, sys
r = {x["command"]: x["median"] * 1000 for x in json.load(open(sys.argv[1]))["results"]}
print("container run of /bin/true (busybox bundle, same config), median ms:")
for name, what in [("lamina", "lamina oci run, no seccomp"),
                   ("lamina-seccomp", "lamina oci run, default profile"),
                   ("lamina-seccomp-nocache", "  same, filter cache emptied each run"),
                   ("runc", "runc run, no seccomp"),
                   ("runc-seccomp", "runc run, the same profile")]:
    print(f"  {what:38s} {r[name]:7.2f}")
l, ls, rs = r["lamina"], r["lamina-seccomp"], r["runc-seccomp"]
print(f"  ratio lamina default profile / no seccomp: {ls / l:.2f}  (goal <= 1.20)")
print(f"  ratio lamina / runc, both with the profile: {ls / rs:.2f}")
print(f"  ratio runc profile / no seccomp: {rs / r['runc']:.2f}")
print(f"  the cache saves {r['lamina-seccomp-nocache'] - ls:.2f} ms a start")
PY
echo
mkdir -p "$work/cache-bench"
"$bench_bin" "$work/cache-bench" 500
