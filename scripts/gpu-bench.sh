#!/usr/bin/env bash
# Self-contained GPU (or CPU) benchmark of `spatia extract` against two PyTorch pipelines on the
# same tiles of one large generated slide, in one run:
#   (a) Spatia: `spatia extract SLIDE --encoder resnet50.pt …` (read + decode + transfer + model);
#   (b) PyTorch eager, the model-side ceiling: the same tiles pre-read into a uint8 array, per batch
#       pinned uint8 → device → normalise there → model (plus the model alone on a resident batch);
#   (c) a CLAM/TRIDENT-style pipeline: OpenSlide 4 `read_region` in DataLoader workers, pinned
#       uint8 batches, normalisation on the device, the same model.
# It reports tiles/s, ratios, mean SM busy (nvidia-smi) during each, feature agreement (cosine) and
# whether a second Spatia run is bit-identical. See docs/features.md, "GPU benchmark".
#
#   scripts/gpu-bench.sh pack OUT.tar.gz [--bin DIR] [--python PY] [--wheels DIR]
#   scripts/gpu-bench.sh run [--device cuda|cpu] [--size 40000] [--batch 64] [--workers N]
#                            [--precision fp32|bf16|fp16] [--max-tiles N] [--rounds 2]
#                            [--python python3] [--work DIR]
#
# `pack` runs on the build machine (after `make build`); `run` on the GPU machine from the
# unpacked directory (python3 with torch 2.11, torchvision, numpy and h5py; no network needed).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ME="gpu-bench"
MAX_PACK_BYTES=$((64 * 1024 * 1024))
OPENSLIDE_PYTHON_VERSION=1.4.7
OPENSLIDE_BIN_VERSION=4.0.1.2
# Python versions whose openslide-python wheel is carried (cp310 wheel; the cp311 abi3 wheel
# serves 3.11 and later).
WHEEL_PYTHONS="3.10 3.11"

die() { echo "$ME: $*" >&2; exit 1; }
say() { echo "$ME: $*" >&2; }

usage() {
  cat <<'EOF'
Usage:
  scripts/gpu-bench.sh pack OUT.tar.gz [--bin DIR] [--python PY] [--wheels DIR]
      On the build machine: bundles spatia and libspatia_torch.so from DIR (default
      target/release; both stripped of debug info), the shared libraries `ldd` lists for them
      except glibc, libstdc++/libgcc_s and the torch/CUDA libraries (those come from the GPU
      machine's python torch), the openslide-python and openslide-bin wheels for the DataLoader
      baseline (downloaded with PY's pip, default python3, or taken from --wheels DIR), the
      Python parts (scripts/bench/*.py) and this script. Refuses a bundle over 64 MiB compressed.

  scripts/gpu-bench.sh run [options]        (from the unpacked directory)
      --device cuda|cpu          device of all three pipelines (default cuda)
      --size N                   demo slide side in pixels at 0.5 µm/px (default 40000; ±10 %)
      --batch B                  tiles per batch, all pipelines (default 64)
      --workers W                Spatia's decode workers and the DataLoader's workers
                                 (default: CPU count − 2, at least 1)
      --precision fp32|bf16|fp16 model precision (default fp32; baselines use torch.autocast)
      --max-tiles N              only the first N tiles of the slide (default: all)
      --rounds R                 alternate Spatia, eager and DataLoader R times; medians (default 2;
                                 ≥ 2 also checks that Spatia's bags are bit-identical run to run)
      --python PY                the python with torch (default python3)
      --work DIR                 model, slide and results (default ./gpu-bench-work); the model
                                 and the slide are reused by later runs
      --bin DIR                  spatia and libspatia_torch.so (default: the bundle's bin/)
  Prints a table (tiles/s, ratios, SM busy %) and writes WORK/run-<time>/results.json.
EOF
}

# ---------------------------------------------------------------------------------------- pack
# Libraries the GPU machine provides itself: glibc, the C++ runtime, and torch/CUDA (from its
# python's torch package).
SYSTEM_LIB_RE='^(linux-vdso|linux-gate|ld-linux[^/]*|libc|libm|libmvec|libpthread|libdl|librt|libutil|libresolv'
SYSTEM_LIB_RE+='|libnsl|libanl|libstdc\+\+|libgcc_s)\.so'
TORCH_LIB_RE='^lib(torch|c10|caffe2|shm|gomp|cuda|cudart|cudnn|cublas|cufft|cufile|curand|cusolver|cusparse|cupti'
TORCH_LIB_RE+='|nvrtc|nvJitLink|nvToolsExt|nvshmem|nvidia|nccl)[^./]*\.so'

pack() {
  local out="" bin="" py="python3" wheels=""
  while [ $# -gt 0 ]; do
    case "$1" in
      --bin) bin="${2:?--bin needs a directory}"; shift 2 ;;
      --python) py="${2:?--python needs a command}"; shift 2 ;;
      --wheels) wheels="${2:?--wheels needs a directory}"; shift 2 ;;
      -h|--help) usage; exit 0 ;;
      -*) die "pack: unknown option $1 (see --help)" ;;
      *) [ -z "$out" ] || die "pack: one output file expected, found $out and $1"; out="$1"; shift ;;
    esac
  done
  [ -n "$out" ] || die "pack: the output file is missing: scripts/gpu-bench.sh pack OUT.tar.gz"
  case "$out" in *.tar.gz|*.tgz) ;; *) die "pack: $out: the output must end in .tar.gz or .tgz" ;; esac
  [ -n "$bin" ] || bin="$(cd "$HERE/.." && pwd)/target/release"
  local f
  for f in spatia libspatia_torch.so; do
    [ -f "$bin/$f" ] || die "pack: $bin/$f not found (run \`make build\`, or pass --bin DIR)"
  done
  [ -d "$HERE/bench" ] || die "pack: $HERE/bench (the Python parts) not found"
  command -v ldd >/dev/null || die "pack: ldd not found"

  mkdir -p "$(dirname "$out")" || die "pack: cannot create the directory of $out"
  STAGE="$(mktemp -d)"
  trap 'rm -rf "$STAGE"' EXIT
  local stage="$STAGE"
  local root="$stage/spatia-gpu-bench"
  mkdir -p "$root/bin" "$root/lib" "$root/wheels" "$root/bench"

  # Binaries without debug info (spatia: 98 → ~30 MB).
  for f in spatia libspatia_torch.so; do
    if command -v strip >/dev/null; then strip --strip-debug -o "$root/bin/$f" "$bin/$f"
    else cp "$bin/$f" "$root/bin/$f"; fi
  done
  chmod +x "$root/bin/spatia"

  # Non-system shared libraries, as resolved on this machine.
  local line name path missing=() kept=()
  while IFS= read -r line; do
    name="$(echo "$line" | awk '{print $1}')"
    path="$(echo "$line" | awk '$2 == "=>" {print $3}')"
    [ -n "$name" ] || continue
    case "$name" in /*) name="$(basename "$name")" ;; esac
    if [[ "$name" =~ $SYSTEM_LIB_RE ]] || [[ "$name" =~ $TORCH_LIB_RE ]]; then continue; fi
    if [ "$path" = "not" ] || [ -z "$path" ]; then missing+=("$name"); continue; fi
    case "$path" in */torch/lib/*|*/nvidia/*) continue ;; esac
    if [ ! -e "$root/lib/$name" ]; then cp -L "$path" "$root/lib/$name"; kept+=("$name"); fi
  done < <(ldd "$bin/spatia" "$bin/libspatia_torch.so" | grep -v '^/' | sort -u)
  [ ${#missing[@]} -eq 0 ] || die "pack: ldd cannot resolve ${missing[*]} for $bin/spatia or the plugin here"

  # Wheels for the DataLoader baseline.
  if [ -n "$wheels" ]; then
    cp "$wheels"/openslide_python-*.whl "$wheels"/openslide_bin-*.whl "$root/wheels/" 2>/dev/null \
      || die "pack: --wheels $wheels must hold openslide_python-*.whl and openslide_bin-*.whl"
  else
    local cache="${XDG_CACHE_HOME:-$HOME/.cache}/spatia/gpu-bench-wheels" v
    mkdir -p "$cache"
    "$py" -m pip --version >/dev/null 2>&1 || die "pack: $py has no pip (pass --python PY, or --wheels DIR)"
    for v in $WHEEL_PYTHONS; do
      "$py" -m pip download -q --disable-pip-version-check --no-deps --only-binary=:all: --python-version "$v" \
        --platform manylinux_2_28_x86_64 --platform manylinux2014_x86_64 --platform manylinux1_x86_64 \
        -d "$cache" "openslide-python==$OPENSLIDE_PYTHON_VERSION" >&2 \
        || die "pack: pip download openslide-python==$OPENSLIDE_PYTHON_VERSION (Python $v) failed"
    done
    "$py" -m pip download -q --disable-pip-version-check --no-deps --only-binary=:all: \
      --platform manylinux_2_28_x86_64 -d "$cache" "openslide-bin==$OPENSLIDE_BIN_VERSION" >&2 \
      || die "pack: pip download openslide-bin==$OPENSLIDE_BIN_VERSION failed"
    cp "$cache/openslide_python-$OPENSLIDE_PYTHON_VERSION"-*.whl \
      "$cache/openslide_bin-$OPENSLIDE_BIN_VERSION"-*.whl "$root/wheels/"
  fi

  cp "$HERE"/bench/*.py "$root/bench/"
  cp "$HERE/gpu-bench.sh" "$root/gpu-bench.sh"
  chmod +x "$root/gpu-bench.sh"
  {
    echo "spatia GPU benchmark bundle, packed $(date -u +%Y-%m-%dT%H:%M:%SZ) on $(uname -srm)"
    echo "spatia: $("$bin/spatia" --version 2>/dev/null || echo unknown)"
    echo "git: $(git -C "$HERE/.." rev-parse --short HEAD 2>/dev/null || echo unknown)"
    echo "glibc here: $(ldd --version 2>/dev/null | head -1)"
    echo "highest GLIBC symbol version needed by spatia:" \
      "$(objdump -T "$bin/spatia" 2>/dev/null | grep -o 'GLIBC_[0-9.]*' | sort -uV | tail -1)"
    echo "bundled libraries (lib/): ${kept[*]}"
    echo "wheels: $(cd "$root/wheels" && ls | tr "\n" " ")"
  } > "$root/MANIFEST.txt"

  local tmp="$out.tmp.$$"
  tar -C "$stage" -czf "$tmp" spatia-gpu-bench
  local bytes
  bytes="$(stat -c %s "$tmp")"
  if [ "$bytes" -gt "$MAX_PACK_BYTES" ]; then
    rm -f "$tmp"
    die "pack: the bundle would be $((bytes / 1024 / 1024)) MiB compressed, over the 64 MiB limit"
  fi
  mv "$tmp" "$out"
  echo "$ME: wrote $out: $(awk -v b="$bytes" 'BEGIN {printf "%.1f MiB", b / 1048576}') compressed ($bytes bytes;" \
    "$(du -sm "$root" | cut -f1) MiB unpacked: bin/, ${#kept[@]} libraries in lib/," \
    "$(find "$root/wheels" -name '*.whl' | wc -l) wheels, bench/)"
  echo "$ME: on the GPU machine: tar xzf $(basename "$out") && cd spatia-gpu-bench && ./gpu-bench.sh run"
}

# ----------------------------------------------------------------------------------------- run
run() {
  local device=cuda size=40000 batch=64 workers="" precision=fp32 max_tiles="" rounds=2 py=python3
  local work="$PWD/gpu-bench-work" bin="$HERE/bin"
  while [ $# -gt 0 ]; do
    case "$1" in
      --device) device="${2:?}"; shift 2 ;;
      --size) size="${2:?}"; shift 2 ;;
      --batch) batch="${2:?}"; shift 2 ;;
      --workers) workers="${2:?}"; shift 2 ;;
      --precision) precision="${2:?}"; shift 2 ;;
      --max-tiles) max_tiles="${2:?}"; shift 2 ;;
      --rounds) rounds="${2:?}"; shift 2 ;;
      --python) py="${2:?}"; shift 2 ;;
      --work) work="${2:?}"; shift 2 ;;
      --bin) bin="${2:?}"; shift 2 ;;
      -h|--help) usage; exit 0 ;;
      *) die "run: unknown argument $1 (see --help)" ;;
    esac
  done
  case "$device" in cuda|cpu) ;; *) die "run: --device must be cuda or cpu, found $device" ;; esac
  case "$precision" in fp32|bf16|fp16) ;; *) die "run: --precision must be fp32, bf16 or fp16, found $precision" ;; esac
  [ "$device" = cuda ] || [ "$precision" = fp32 ] \
    || die "run: --precision $precision needs --device cuda (Spatia's fp16/bf16 autocast is CUDA-only)"
  local n
  for n in "size:$size" "batch:$batch" "rounds:$rounds" ${workers:+"workers:$workers"} \
           ${max_tiles:+"max-tiles:$max_tiles"}; do
    [[ "${n#*:}" =~ ^[1-9][0-9]*$ ]] || die "run: --${n%%:*} must be a positive integer, found ${n#*:}"
  done
  if [ -z "$workers" ]; then workers=$(( $(nproc) - 2 )); [ "$workers" -ge 1 ] || workers=1; fi

  local spatia="$bin/spatia" plugin="$bin/libspatia_torch.so" libdir="$HERE/lib" wheels="$HERE/wheels"
  local bench="$HERE/bench"
  [ -f "$bench/common.py" ] || die "run: the Python parts (bench/*.py) are not beside $0"
  [ -x "$spatia" ] || die "run: $spatia not found (run from the unpacked bundle, or pass --bin DIR)"
  [ -f "$plugin" ] || die "run: $plugin not found (the libtorch plugin; --bin DIR must hold it beside spatia)"

  # The python and its torch.
  command -v "$py" >/dev/null || die "run: $py not found (pass --python PY)"
  local missing
  missing="$("$py" -c '
import importlib.util as u
print(" ".join(m for m in ("torch", "torchvision", "numpy", "h5py", "PIL") if u.find_spec(m) is None))')"
  [ -z "$missing" ] \
    || die "run: $py lacks the Python modules: $missing (need torch 2.11, torchvision, numpy, h5py, Pillow)"
  local torch_dir torch_version
  torch_dir="$("$py" -c 'import torch, os; print(os.path.dirname(torch.__file__))')"
  torch_version="$("$py" -c 'import torch; print(torch.__version__)')"
  [ -f "$torch_dir/lib/libtorch_cpu.so" ] \
    || die "run: $torch_dir/lib/libtorch_cpu.so not found (the python's torch has no libtorch)"
  case "$torch_version" in
    2.11.*) ;;
    *) say "warning: $py has torch $torch_version; the plugin was built for 2.11.0" ;;
  esac

  mkdir -p "$work"
  work="$(cd "$work" && pwd)"
  # openslide-python + openslide-bin, from the carried wheels, into WORK/pylib.
  local pylib="$work/pylib"
  if [ ! -d "$pylib/openslide" ] || [ ! -d "$pylib/openslide_bin" ]; then
    ls "$wheels"/openslide_*.whl >/dev/null 2>&1 || die "run: no openslide wheels in $wheels (the bundle's wheels/)"
    mkdir -p "$pylib"
    if "$py" -m pip --version >/dev/null 2>&1; then
      "$py" -m pip install -q --disable-pip-version-check --no-index --no-deps --find-links "$wheels" \
        --target "$pylib" openslide-python openslide-bin >&2 \
        || die "run: pip could not install the carried openslide wheels into $pylib"
    else
      say "no pip in $py: unpacking the wheels by hand"
      "$py" - "$wheels" "$pylib" <<'EOF' || die "run: could not unpack the carried openslide wheels"
import glob, sys, zipfile
src, dst = sys.argv[1], sys.argv[2]
tag = "cp%d%d" % sys.version_info[:2]
cands = sorted(glob.glob(src + "/openslide_python-*.whl"))
pick = [w for w in cands if "-%s-%s-" % (tag, tag) in w]
pick = pick or [w for w in cands if "abi3" in w and sys.version_info >= (3, 11)]
if not pick:
    sys.exit("no openslide-python wheel for %s among %s" % (tag, cands))
for w in pick[:1] + glob.glob(src + "/openslide_bin-*.whl"):
    zipfile.ZipFile(w).extractall(dst)
EOF
    fi
  fi
  export PYTHONPATH="$bench:$pylib${PYTHONPATH:+:$PYTHONPATH}"
  local osv
  osv="$("$py" -c 'import openslide; print(openslide.__library_version__)')" \
    || die "run: openslide does not import from $pylib"

  # Spatia runs with the bundled libraries and the python's libtorch; the Python parts do not see
  # the bundled libraries.
  local ldpath="$torch_dir/lib"
  [ -d "$libdir" ] && ldpath="$libdir:$ldpath"
  local spenv=(env "LD_LIBRARY_PATH=$ldpath${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" "SPATIA_TORCH_PLUGIN=$plugin"
               "$spatia")
  sp() { "${spenv[@]}" "$@"; }
  local version
  version="$(sp --version 2>&1)" || die "run: $spatia does not start here: $version
  (a library missing from the bundle, or this machine's glibc older than the build machine's: see MANIFEST.txt)"

  say "$version; torch $torch_version at $torch_dir; OpenSlide $osv; device $device; $(nproc) CPUs"

  # Can spatia itself run the model there (plugin opened, libtorch_cuda mapped, a device seen)?
  local doctor="" dstatus=0
  doctor="$(sp doctor --json 2>&1)" || dstatus=$?
  if [ $dstatus -ne 0 ] && grep -qiE "unrecognized subcommand|invalid subcommand" <<<"$doctor"; then
    say "warning: this spatia has no \`doctor\` verb; whether it can use $device is only seen when extract runs"
  else
    printf '%s\n' "$doctor" > "$work/doctor.json"
    "$py" - "$work/doctor.json" "$device" <<'EOF' \
      || die "run: spatia cannot run the model on $device here (doctor's findings above; all in $work/doctor.json)"
import json, sys
raw = open(sys.argv[1]).read()
try:
    d = json.loads(raw.strip().splitlines()[-1])
except (ValueError, IndexError):
    sys.exit("gpu-bench: `spatia doctor --json` did not print JSON: %r" % raw[-500:])
devs = ", ".join("%s (%.1f GiB)" % (x.get("name"), (x.get("total_memory_bytes") or 0) / 2**30)
                 for x in d.get("devices") or [])
print("gpu-bench: spatia doctor: torch %s, cuda_available %s, cuda_libs_loaded %s, cuDNN %s, devices: %s"
      % (d.get("torch_version"), d.get("cuda_available"), d.get("cuda_libs_loaded"), d.get("cudnn_version"),
         devs or "none"),
      file=sys.stderr)
for f in d.get("findings") or []:
    if not f.get("ok"):
        print("gpu-bench: spatia doctor: %s: %s" % (f.get("check"), f.get("detail")), file=sys.stderr)
# Running a model at all needs the plugin and a matching libtorch (cuDNN only matters on CUDA).
ok = all(f.get("ok") for f in d.get("findings") or [] if f.get("check") in ("plugin", "torch"))
if sys.argv[2] == "cuda":
    ok = ok and d.get("cuda_available") is True and d.get("cuda_libs_loaded") is True and bool(d.get("devices"))
sys.exit(0 if ok else 1)
EOF
  fi
  local gpu_index="${CUDA_VISIBLE_DEVICES:-0}" gpu_name=""
  if [ "$device" = cuda ]; then
    command -v nvidia-smi >/dev/null || die "run: --device cuda but nvidia-smi is not on PATH"
    [[ "$gpu_index" =~ ^[0-9]+$ ]] || gpu_index="${gpu_index%%,*}"
    gpu_name="$(nvidia-smi --query-gpu=name --format=csv,noheader -i "$gpu_index" 2>/dev/null | head -1)" \
      || die "run: nvidia-smi cannot query GPU $gpu_index"
    "$py" -c 'import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)' \
      || die "run: --device cuda but torch.cuda.is_available() is False in $py"
  fi

  # The model (no network: random weights, seed 0).
  local model="$work/resnet50.pt"
  if [ ! -f "$model" ]; then
    say "tracing ResNet-50 → $model"
    "$py" "$bench/make_resnet50.py" "$model" >&2 || die "run: could not create $model"
  fi

  # The slide.
  local sdir="$work/slide-$size"
  if [ ! -f "$sdir/.done" ]; then
    say "generating a $size px demo slide in $sdir"
    local t0=$SECONDS
    rm -rf "$sdir"
    sp demo generate --out "$sdir" --patients 1 --size "$size" --stains HE --json > "$work/demo-$size.json" \
      || die "run: spatia demo generate failed"
    echo "$((SECONDS - t0))" > "$sdir/.done"
  fi
  local slide
  slide="$sdir/$(awk -F, 'NR > 1 && $3 == "HE" {print $2; exit}' "$sdir/slides.csv")"
  [ -f "$slide" ] || die "run: no HE slide listed in $sdir/slides.csv"

  # extract's options this binary has.
  local help
  help="$(sp extract --help)"
  local xargs_=(--encoder "$model" --mpp 0.5 --size 224 --stain HE --device "$device" --batch "$batch")
  local flag
  for flag in --workers --precision --max-tiles; do
    grep -q -- "$flag" <<<"$help" \
      || die "run: this spatia's extract has no $flag: it is older than this benchmark (rebuild it)"
  done
  xargs_+=(--workers "$workers" --precision "$precision")
  [ -z "$max_tiles" ] || xargs_+=(--max-tiles "$max_tiles")

  local rdir
  rdir="$work/run-$(date +%Y%m%d-%H%M%S)"
  mkdir -p "$rdir"
  printf '%q ' "$0" run --device "$device" --size "$size" --batch "$batch" --workers "$workers" \
    --precision "$precision" ${max_tiles:+--max-tiles "$max_tiles"} --rounds "$rounds" > "$rdir/command.txt"
  echo >> "$rdir/command.txt"

  # Utilisation sampler, for the whole run; report.py cuts out each pipeline's interval.
  local sampler_pid=""
  if [ "$device" = cuda ]; then "$py" "$bench/sampler.py" gpu "$gpu_index" "$rdir/util.txt" & sampler_pid=$!
  else "$py" "$bench/sampler.py" cpu - "$rdir/util.txt" & sampler_pid=$!
  fi
  # shellcheck disable=SC2064
  trap "kill $sampler_pid 2>/dev/null || true" EXIT

  local r feats=() common_args=(--slide "$slide" --model "$model" --device "$device" --batch "$batch"
                                --precision "$precision" --workers "$workers")
  for r in $(seq "$rounds"); do
    say "round $r/$rounds: Spatia"
    "$py" "$bench/run_spatia.py" --out "$rdir/spatia_$r.json" -- "${spenv[@]}" extract "$slide" "${xargs_[@]}" \
      --out "$rdir/spatia_$r.h5" > /dev/null \
      || die "run: spatia extract failed (round $r): see above"
    [ "$r" -le 2 ] || rm -f "$rdir/spatia_$r.h5"
    say "round $r/$rounds: PyTorch eager"
    [ "$r" -eq 1 ] && feats=(--features "$rdir/eager_features.npy") || feats=()
    "$py" "$bench/eager.py" --bag "$rdir/spatia_1.h5" "${common_args[@]}" --cache "$rdir/tiles.npy" --model-only \
      --out "$rdir/eager_$r.json" "${feats[@]}" > /dev/null || die "run: the eager baseline failed (round $r)"
    say "round $r/$rounds: CLAM/TRIDENT-style DataLoader"
    [ "$r" -eq 1 ] && feats=(--features "$rdir/dataloader_features.npy") || feats=()
    "$py" "$bench/dataloader.py" --bag "$rdir/spatia_1.h5" "${common_args[@]}" \
      --out "$rdir/dataloader_$r.json" "${feats[@]}" > /dev/null || die "run: the DataLoader baseline failed (round $r)"
  done
  kill "$sampler_pid" 2>/dev/null || true
  wait "$sampler_pid" 2>/dev/null || true

  local again=()
  [ "$rounds" -ge 2 ] && again=(--spatia2 "$rdir/spatia_2.h5")
  "$py" "$bench/compare.py" --spatia "$rdir/spatia_1.h5" "${again[@]}" \
    --ref "dataloader=$rdir/dataloader_features.npy" --ref "eager=$rdir/eager_features.npy" \
    --out "$rdir/checks.json" > /dev/null || die "run: compare.py failed"
  rm -f "$rdir/tiles.npy"

  local load
  load="$(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo unknown)"
  "$py" "$bench/report.py" "$rdir" --device "$device" --precision "$precision" \
    --meta "spatia=$version" --meta "torch=$torch_version" --meta "openslide=$osv" --meta "gpu=$gpu_name" \
    --meta "cpus=$(nproc)" --meta "loadavg_after=$load" --meta "slide=$slide" --meta "size=$size" \
    --meta "batch=$batch" --meta "workers=$workers" --meta "max_tiles=${max_tiles:-all}" --meta "rounds=$rounds" \
    --meta "command=$(cat "$rdir/command.txt")"
}

case "${1:-}" in
  pack) shift; pack "$@" ;;
  run) shift; run "$@" ;;
  -h|--help|help) usage ;;
  "") usage >&2; exit 2 ;;
  *) echo "$ME: unknown command $1" >&2; usage >&2; exit 2 ;;
esac
