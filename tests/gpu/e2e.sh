#!/usr/bin/env bash
# End to end on a GPU machine (issue 8): detection parity, probe, the seed's failure made real with
# an NVVM newer than the driver, condafix's diagnosis, the fix, the kernel running again.
# Usage (on the GPU machine, repo root, NVVM wheel files carried in .gpu-carry/): tests/gpu/e2e.sh OUTDIR
set -u
FINAL=${1:-/tmp/condafix-e2e}; OUT=$FINAL/files; mkdir -p "$OUT"
export PYTHONPATH=$PWD NO_COLOR=1 PYTHONUNBUFFERED=1
VENV=${VENV:-/opt/torch/.venv}
SITE=$(echo "$VENV"/lib/python3*/site-packages)
step() { echo; echo "=== $*"; }
step "detection parity"; python3 -m condafix doctor -p "$VENV" --all-sources --json > "$OUT/doctor-parity.json"
python3 -c "import json,sys; d=json.load(open(sys.argv[1]))['result']['driver']; [print(a['source'], a['ok'], a['cuda'], a['detail']) for a in d['attempts']]; print('driver', d['driver_version'], 'gpus', d['gpus'], 'arch', d['cuda_arch'])" "$OUT/doctor-parity.json"
step "probe, env as shipped"; python3 -m condafix doctor -p "$VENV" --probe | tee "$OUT/doctor-before.txt"
step "kernel, env as shipped"; python3 tests/gpu/kernel.py 2>&1 | tail -3 | tee "$OUT/kernel-before.txt"
step "break it: NVVM 13.5 wheel files into the env (pip cannot reach PyPI here)"
tar -C "$SITE" -xJf .gpu-carry/nvvm-13.5.37-site.tar.xz && ls "$SITE" | grep -i nvvm
step "kernel, NVVM 13.5"; python3 tests/gpu/kernel.py > "$OUT/kernel-broken.txt" 2>&1; echo "exit $?"; tail -5 "$OUT/kernel-broken.txt"
step "condafix explain"; python3 -m condafix explain -p "$VENV" -f "$OUT/kernel-broken.txt" | tee "$OUT/explain.txt"
python3 -m condafix explain -p "$VENV" -f "$OUT/kernel-broken.txt" --json > "$OUT/explain.json"
step "condafix doctor --probe"; python3 -m condafix doctor -p "$VENV" --probe | tee "$OUT/doctor-broken.txt"
python3 -m condafix doctor -p "$VENV" --probe --json > "$OUT/doctor-broken.json"
step "fix: the pin condafix printed (pip install nvidia-nvvm==13.0.*), from carried wheel files"
rm -rf "$SITE"/nvidia_nvvm-13.5.37.dist-info && tar -C "$SITE" -xJf .gpu-carry/nvvm-13.0.88-site.tar.xz && ls "$SITE" | grep -i nvvm
step "kernel, fixed"; python3 tests/gpu/kernel.py 2>&1 | tail -3 | tee "$OUT/kernel-fixed.txt"
step "doctor after the fix"; python3 -m condafix doctor -p "$VENV" --probe | tee "$OUT/doctor-fixed.txt"
step "gpu test suite"; python3 -m pytest -q -m gpu tests/test_gpu.py -p no:cacheprovider 2>&1 | tail -5
tar -C "$OUT" -czf "$FINAL/e2e-files.tar.gz" .
