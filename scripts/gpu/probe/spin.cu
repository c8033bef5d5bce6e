// A compute-bound kernel whose time tells how many SMs a launch got.
extern "C" __global__ void spin(float* out, int iterations) {
    float x = threadIdx.x * 1e-3f;
    for (int i = 0; i < iterations; i++) x = x * 0.99991f + 0.00013f;
    if (threadIdx.x == 0) out[blockIdx.x] = x;
}
