# Sourced by GPU scripts after they set HERE (their folder): the llmux binary ($LLMUX_BIN, default
# dist/llmux) as BIN, the output folder ($OUT, default ./gpu-out, created), the CUDA libraries
# (cuda_env.sh) and NVRTC's kernel cache.
BIN=${LLMUX_BIN:-dist/llmux}
OUT=${OUT:-$PWD/gpu-out}
mkdir -p "$OUT"
source "$HERE/cuda_env.sh"
export LLMUX_KERNEL_CACHE=/tmp/llmux-kernels
