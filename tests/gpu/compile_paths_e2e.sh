#!/usr/bin/env bash
# GPU half of issue 13, second run: link matrix (cubins linked beforehand by matrix.py prepare-links,
# loaded and launched here), the driver's JIT on every NVVM's PTX, CuPy with a newer NVRTC, numba-cuda
# with every nvJitLink hidden, numba's built-in target; then condafix doctor --probe / explain on the
# image's venv as shipped, with NVVM 13.2 beside the image's nvJitLink 13.0, and with nvJitLink hidden.
# Usage (repo root on the GPU machine): tests/gpu/compile_paths_e2e.sh CARRY OUT
set -u
C=$1; OUT=$2; mkdir -p "$OUT/captures"
export NO_COLOR=1 PYTHONUNBUFFERED=1 PYTHONPATH=$PWD
VENV=${VENV:-/opt/torch/.venv}; SITE=$(echo "$VENV"/lib/python3*/site-packages); LIB=$SITE/nvidia/cu13/lib
CAP=$OUT/captures
# a warm machine may keep files an interrupted run hid: put them back first
for f in $(find / -xdev \( -path /proc -o -path /sys \) -prune -o \( -name '*.condafix-hidden*' -o -name 'libnvJitLink.so*.hidden' \) -print); do
  mv "$f" "${f%%.condafix-hidden*}" 2>/dev/null || mv "$f" "${f%.hidden}"
done
python3 "$C/matrix.py" run "$C" "$OUT" "${PARTS:-load,cupy,nolink,builtin}" 2>&1 | tee "$OUT/matrix2.log"
cap() { name=$1; shift; "$@" > "$CAP/$name" 2>&1; echo "$name exit $?" | tee -a "$CAP/exits.txt"; }
cap doctor-shipped.json python3 -m condafix doctor -p "$VENV" --probe --json
cap kernel-shipped.txt python3 tests/gpu/kernel.py
mkdir -p /tmp/n132 && tar -C /tmp/n132 -xJf "$C/nvvm-13.2.86.tar.xz"
cp /tmp/n132/nvidia/cu13/lib/libnvvm.so.4 "$LIB/"  # site-packages first: pathfinder's (and the probe's) order
cp -r "$C/dist/nvidia_nvvm-13.2.86.dist-info" "$SITE/"
cap kernel-nvvm13.2-njl13.0.txt python3 tests/gpu/kernel.py
cap doctor-nvvm13.2-njl13.0.json python3 -m condafix doctor -p "$VENV" --probe --json
cap explain-nvvm13.2-njl13.0.json python3 -m condafix explain -p "$VENV" -f "$CAP/kernel-nvvm13.2-njl13.0.txt" --json
hidden=$(find / -xdev \( -path /proc -o -path /sys \) -prune -o -name 'libnvJitLink.so*' -print)
for f in $hidden; do mv "$f" "$f.hidden"; done
for d in "$SITE"/nvidia_nvjitlink-*.dist-info; do mv "$d" "/tmp/$(basename "$d")"; done
cap kernel-nvvm13.2-nonvjitlink.txt python3 tests/gpu/kernel.py
cap doctor-nvvm13.2-nonvjitlink.json python3 -m condafix doctor -p "$VENV" --probe --json
cap explain-nvvm13.2-nonvjitlink.json python3 -m condafix explain -p "$VENV" -f "$CAP/kernel-nvvm13.2-nonvjitlink.txt" --json
for f in $hidden; do mv "$f.hidden" "$f"; done
for d in /tmp/nvidia_nvjitlink-*.dist-info; do mv "$d" "$SITE/"; done
rm -rf "$SITE/nvidia_nvvm-13.2.86.dist-info" "$LIB/libnvvm.so.4"
nvidia-smi -q -x > "$CAP/nvidia-smi-q.xml" 2>&1
tar -C "$OUT" -czf "$OUT/captures.tar.gz" captures && rm -rf "$CAP"
