#!/usr/bin/env bash
# Every GPU speed measurement issue 19 asks for, in one call on a lent GPU machine
# (JAX and PyTorch, no TensorFlow; /work/.library/device/README.md):
#
#   bash benchmarks/gpu.sh            # results in $OUT (or ./gpu-results)
#
# At batch 64 and 256, interleaved in one run each: the matmul peak, our trainer at the
# textbook architecture on the Keras engine (train_on_batch) and on the compiled one in
# float32 and in mixed bfloat16 (--steps-per-call 16), and the PyTorch textbook loop;
# bench.py prints the ratios and the fractions of the peak. STEPS, REPEATS, IMAGES and
# BATCHES shrink it for a trial on the CPU:
#   STEPS=2 REPEATS=1 IMAGES=500 BATCHES=8 bash benchmarks/gpu.sh
#
# That machine's Python (python3, 3.12) lacks Keras and pydantic: download their wheels
# here into .whl/ (kept out of git by .git/info/exclude), carry .whl, and this installs
# them first (device README, "a Python package missing there"):
#   pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#     --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 \
#     --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 -d .whl \
#     keras==3.15.1 namex==0.1.0 optree==0.20.0 pydantic==2.14.4 pydantic-core==2.50.5 \
#     annotated-types==0.8.0 typing-inspection==0.4.5
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -d .whl ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site .whl/*.whl
  export PYTHONPATH=/tmp/site
fi
export KERAS_BACKEND=jax XLA_PYTHON_CLIENT_PREALLOCATE=false
out=${OUT:-gpu-results}
mkdir -p "$out"
steps=${STEPS:-200} repeats=${REPEATS:-3} images=${IMAGES:-20000} batches=${BATCHES:-64 256}
for batch in $batches; do
  python3 benchmarks/bench.py --only matmul --only train --only levers \
    --case "matmul" --case "(width 64)" --case "compiled engine" --case "PyTorch" \
    --batch-size "$batch" --train-steps "$steps" --repeats "$repeats" --images "$images" \
    --data "$out/data" --json "$out/bench-batch$batch.json" 2>&1 | tee "$out/bench-batch$batch.txt"
done
rm -rf "$out/data"
