#!/usr/bin/env bash
# The runtimes benchmark on a machine with an NVIDIA GPU, as it is: no network needed there.
#
# Needs: an NVIDIA driver (nvidia-smi works), Python 3.10-3.12, this tree, and a folder of
# wheels made beforehand on a machine with network access (same Python and platform):
#     pip download -d wheels 'tensorflow[and-cuda]>=2.15,<3' 'onnxruntime-gpu>=1.20' \
#         'tensorrt-cu12>=10' 'tf2onnx>=1.17' 'onnx>=1.17' 'onnxconverter-common>=1.16' \
#         'openvino>=2025.0' 'nvidia-ml-py>=12.535' .
# Usage: scripts/gpu_bench.sh WHEELS_DIR [WORK_DIR]
# Prints: nvidia-smi's view of the card; then bench/bench_runtimes.py's table (CPU-s, wall-s
# and peak RSS per 1080p and 24 MP photo, and the matte difference from TensorFlow) for
# TensorFlow on the GPU (fp32, then fp16 = automatic mixed precision), ONNX Runtime with
# TensorRT then CUDA (fp32, then fp16 = trt_fp16_enable on the fp16 export), and OpenVINO on
# the CPU for comparison. TensorRT's first run of a size builds its engine (minutes); the
# engines are cached beside the export, so the two-run difference the bench takes is steady.
set -euo pipefail
wheels=${1:?usage: scripts/gpu_bench.sh WHEELS_DIR [WORK_DIR]}
work=${2:-$(mktemp -d -t bshmd-gpu-bench-XXXXXX)}
here=$(cd "$(dirname "$0")/.." && pwd)
python=${PYTHON:-python3}

nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv
"$python" -m venv "$work/venv"
"$work/venv/bin/pip" install -q --no-index --find-links "$wheels" \
    'tensorflow[and-cuda]' onnxruntime-gpu tensorrt-cu12 tf2onnx onnx onnxconverter-common openvino nvidia-ml-py
"$work/venv/bin/pip" install -q --no-index --find-links "$wheels" --no-build-isolation "$here" \
    || "$work/venv/bin/pip" install -q --no-index --find-links "$wheels" "$here"
"$work/venv/bin/python" -c 'import onnxruntime as o; print("onnxruntime providers:", o.get_available_providers())'

cd "$here"
for precision in fp32 fp16; do
    echo "== precision $precision =="
    "$work/venv/bin/python" bench/bench_runtimes.py --runtimes tensorflow,onnxruntime,openvino \
        --device gpu --precision "$precision" \
        --providers TensorrtExecutionProvider,CUDAExecutionProvider,CPUExecutionProvider \
        --work "$work/$precision"
done
