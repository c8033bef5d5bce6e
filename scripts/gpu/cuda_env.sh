# Sourced by the GPU scripts: finds cuBLASLt and NVRTC (CUDA's folders or the pip wheels of
# PyTorch) and exports LD_LIBRARY_PATH and LLMUX_CUDA_LIB_DIRS for llmux's dlopen calls.
SITE=$(python3 -c "import site; print(site.getsitepackages()[0])" 2>/dev/null)
DIRS=$( (find "$SITE/nvidia" /usr/local/cuda/lib64 /usr/local/cuda/targets/x86_64-linux/lib \
          \( -name 'libcublasLt.so*' -o -name 'libnvrtc.so*' \) -not -path '*stubs*' 2>/dev/null) | xargs -r -n1 dirname | sort -u | tr '\n' ':')
export LD_LIBRARY_PATH="${DIRS}/usr/local/nvidia/lib64:${LD_LIBRARY_PATH:-}"
export LLMUX_CUDA_LIB_DIRS="$DIRS"
echo "library folders: $DIRS"
ls $(echo "$DIRS" | tr ':' ' ') 2>/dev/null | grep -E 'cublasLt|nvrtc' | head
H=$(ls /usr/local/cuda/include/cublasLt.h 2>/dev/null || find "$SITE/nvidia" -name cublasLt.h 2>/dev/null | head -1)
[ -n "$H" ] && grep -nE 'CUBLASLT_MATMUL_DESC_TRANSA =|CUBLASLT_MATMUL_DESC_TRANSB =|CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES =' "$H" | head

# Splits the words of a VARIANTS line ("NAME ENV=VALUE … --option VALUE …", NAME already read)
# into environment assignments ($VARIANT_ENV) and command arguments ($VARIANT_ARGS).
split_variant() {
    VARIANT_ENV=""; VARIANT_ARGS=""
    for word in $1; do case "$word" in *=*) VARIANT_ENV="$VARIANT_ENV $word" ;; *) VARIANT_ARGS="$VARIANT_ARGS $word" ;; esac; done
}
