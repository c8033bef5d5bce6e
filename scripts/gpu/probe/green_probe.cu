// What works with CUDA green contexts on this driver: kernel handles from a module or a library
// loaded in the primary context launched on a green context's stream, graphs, cuBLASLt, events
// across contexts, and whether a partition really confines a launch to its SMs (timings).
// Build: nvcc -arch=sm_90 -cubin -o spin.cubin spin.cu && nvcc -o green_probe green_probe.cu -lcuda -lcublasLt
#include <cuda.h>
#include <cublasLt.h>
#include <stdio.h>
#include <stddef.h>
#include <time.h>

static int report(const char* what, CUresult r) {
    const char* name = "?";
    cuGetErrorName(r, &name);
    printf("%-58s %s\n", what, r == CUDA_SUCCESS ? "ok" : name);
    return r == CUDA_SUCCESS;
}
static double now() { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec + t.tv_nsec * 1e-9; }

static CUdeviceptr out;
static int blocks;
static const int iterations = 200000;

static CUresult launch(CUfunction f, CUstream s) {
    int it = iterations;
    void* args[] = {&out, &it};
    return cuLaunchKernel(f, blocks, 1, 1, 256, 1, 1, 0, s, args, NULL);
}
static double timed(CUfunction f, CUstream s) {
    if (launch(f, s) != CUDA_SUCCESS) return -1;
    cuStreamSynchronize(s);
    double t = now();
    for (int i = 0; i < 3; i++) launch(f, s);
    if (cuStreamSynchronize(s) != CUDA_SUCCESS) return -1;
    return (now() - t) / 3 * 1e3;
}

int main(void) {
    CUdevice dev; CUcontext primary; int version = 0;
    cuInit(0); cuDeviceGet(&dev, 0); cuDriverGetVersion(&version);
    cuDevicePrimaryCtxRetain(&primary, dev); cuCtxSetCurrent(primary);
    int sms; cuDeviceGetAttribute(&sms, CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT, dev);
    blocks = sms * 8;
    printf("driver %d, %d SMs; sizeof(CUdevResource)=%zu offsetof(sm)=%zu sizeof(CUdevSmResource)=%zu\n",
           version, sms, sizeof(CUdevResource), offsetof(CUdevResource, sm), sizeof(CUdevSmResource));
    cuMemAlloc(&out, blocks * 4);
    CUstream mainStream; cuStreamCreate(&mainStream, CU_STREAM_NON_BLOCKING);

    CUdevResource full;
    report("cuDeviceGetDevResource(SM)", cuDeviceGetDevResource(dev, &full, CU_DEV_RESOURCE_TYPE_SM));
    printf("full smCount %u\n", full.sm.smCount);
    for (unsigned want = 8; want <= 64; want *= 2) {
        CUdevResource part, rest; unsigned n = 1;
        CUresult r = cuDevSmResourceSplitByCount(&part, &n, &full, &rest, 0, want);
        printf("split 1 x %u: %d groups=%u part=%u rest=%u\n", want, r, n, part.sm.smCount, rest.sm.smCount);
    }
    { CUdevResource parts[8], rest; unsigned n = 8;
      CUresult r = cuDevSmResourceSplitByCount(parts, &n, &full, &rest, 0, 16);
      printf("split 8 x 16: %d groups=%u first=%u rest=%u\n", r, n, parts[0].sm.smCount, rest.sm.smCount); }
    // A 16-SM partition and the rest.
    CUdevResource small, rest; unsigned n = 1;
    report("cuDevSmResourceSplitByCount(1 x 16)", cuDevSmResourceSplitByCount(&small, &n, &full, &rest, 0, 16));
    CUdevResourceDesc smallDesc, restDesc;
    report("cuDevResourceGenerateDesc(small)", cuDevResourceGenerateDesc(&smallDesc, &small, 1));
    report("cuDevResourceGenerateDesc(rest)", cuDevResourceGenerateDesc(&restDesc, &rest, 1));
    CUgreenCtx gSmall, gRest;
    report("cuGreenCtxCreate(small)", cuGreenCtxCreate(&gSmall, smallDesc, dev, CU_GREEN_CTX_DEFAULT_STREAM));
    report("cuGreenCtxCreate(rest)", cuGreenCtxCreate(&gRest, restDesc, dev, CU_GREEN_CTX_DEFAULT_STREAM));
    CUstream sSmall, sRest;
    report("cuGreenCtxStreamCreate(small)", cuGreenCtxStreamCreate(&sSmall, gSmall, CU_STREAM_NON_BLOCKING, 0));
    report("cuGreenCtxStreamCreate(rest)", cuGreenCtxStreamCreate(&sRest, gRest, CU_STREAM_NON_BLOCKING, 0));
    cuCtxSetCurrent(primary);

    CUmodule module; CUfunction fn;
    report("cuModuleLoad(spin.cubin) in primary", cuModuleLoad(&module, "spin.cubin"));
    report("cuModuleGetFunction", cuModuleGetFunction(&fn, module, "spin"));
    printf("module fn, primary stream:           %.3f ms\n", timed(fn, mainStream));
    report("module fn on small green stream (primary current)", launch(fn, sSmall));
    report("  sync", cuStreamSynchronize(sSmall));
    printf("module fn, small stream:             %.3f ms\n", timed(fn, sSmall));
    printf("module fn, rest stream:              %.3f ms\n", timed(fn, sRest));
    CUcontext cSmall; cuCtxFromGreenCtx(&cSmall, gSmall);
    cuCtxSetCurrent(cSmall);
    report("module fn on small stream (green current)", launch(fn, sSmall));
    report("  sync", cuStreamSynchronize(sSmall));
    printf("module fn, small stream, green cur:  %.3f ms\n", timed(fn, sSmall));
    cuCtxSetCurrent(primary);

    CUlibrary library; CUkernel kernel;
    report("cuLibraryLoadFromFile", cuLibraryLoadFromFile(&library, "spin.cubin", NULL, NULL, 0, NULL, NULL, 0));
    report("cuLibraryGetKernel", cuLibraryGetKernel(&kernel, library, "spin"));
    printf("library kernel, small stream:        %.3f ms\n", timed((CUfunction)kernel, sSmall));
    printf("library kernel, primary stream:      %.3f ms\n", timed((CUfunction)kernel, mainStream));

    // Concurrency: both partitions at once.
    launch(fn, sSmall); launch(fn, sRest); cuCtxSynchronize();
    double t = now();
    launch(fn, sSmall); launch(fn, sRest);
    cuStreamSynchronize(sSmall); cuStreamSynchronize(sRest);
    printf("small and rest concurrently:         %.3f ms\n", (now() - t) * 1e3);

    // Graphs.
    CUgraph graph; CUgraphExec exec;
    report("capture on primary-ctx stream", cuStreamBeginCapture(mainStream, CU_STREAM_CAPTURE_MODE_RELAXED));
    launch(fn, mainStream);
    report("end capture", cuStreamEndCapture(mainStream, &graph));
    report("instantiate", cuGraphInstantiate(&exec, graph, 0));
    report("graph (primary) launched on small stream", cuGraphLaunch(exec, sSmall));
    report("  sync", cuStreamSynchronize(sSmall));
    t = now(); for (int i = 0; i < 3; i++) cuGraphLaunch(exec, sSmall); cuStreamSynchronize(sSmall);
    printf("graph(primary) on small stream:      %.3f ms\n", (now() - t) / 3 * 1e3);
    t = now(); for (int i = 0; i < 3; i++) cuGraphLaunch(exec, mainStream); cuStreamSynchronize(mainStream);
    printf("graph(primary) on main stream:       %.3f ms\n", (now() - t) / 3 * 1e3);
    CUgraph g2; CUgraphExec e2;
    report("capture on small stream (primary current)", cuStreamBeginCapture(sSmall, CU_STREAM_CAPTURE_MODE_RELAXED));
    report("  launch in capture", launch(fn, sSmall));
    report("  end capture", cuStreamEndCapture(sSmall, &g2));
    report("  instantiate", cuGraphInstantiate(&e2, g2, 0));
    report("  launch on small", cuGraphLaunch(e2, sSmall));
    report("  sync", cuStreamSynchronize(sSmall));
    t = now(); for (int i = 0; i < 3; i++) cuGraphLaunch(e2, sSmall); cuStreamSynchronize(sSmall);
    printf("graph(small capture) on small:       %.3f ms\n", (now() - t) / 3 * 1e3);
    t = now(); for (int i = 0; i < 3; i++) cuGraphLaunch(e2, sRest); cuStreamSynchronize(sRest);
    printf("graph(small capture) on rest:        %.3f ms\n", (now() - t) / 3 * 1e3);

    // Events across contexts.
    CUevent event;
    report("cuEventCreate (primary, disable timing)", cuEventCreate(&event, CU_EVENT_DISABLE_TIMING));
    report("cuEventRecord on small stream", cuEventRecord(event, sSmall));
    report("cuStreamWaitEvent main waits small", cuStreamWaitEvent(mainStream, event, 0));
    report("cuEventSynchronize", cuEventSynchronize(event));
    report("cuEventQuery", cuEventQuery(event));

    // cuBLASLt on a green stream: 4096^3 bf16.
    cublasLtHandle_t lt; cublasLtCreate(&lt);
    int N = 4096; CUdeviceptr a, b, c; cuMemAlloc(&a, (size_t)N * N * 2); cuMemAlloc(&b, (size_t)N * N * 2); cuMemAlloc(&c, (size_t)N * N * 2);
    cuMemsetD16(a, 0x3c00, (size_t)N * N); cuMemsetD16(b, 0x3c00, (size_t)N * N);
    cublasLtMatmulDesc_t desc; cublasLtMatmulDescCreate(&desc, CUBLAS_COMPUTE_32F, CUDA_R_32F);
    cublasLtMatrixLayout_t layout; cublasLtMatrixLayoutCreate(&layout, CUDA_R_16BF, N, N, N);
    cublasLtMatmulPreference_t pref; cublasLtMatmulPreferenceCreate(&pref);
    size_t wsBytes = 32 << 20; CUdeviceptr ws; cuMemAlloc(&ws, wsBytes);
    cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &wsBytes, sizeof(wsBytes));
    cublasLtMatmulHeuristicResult_t heuristic; int found = 0;
    cublasLtMatmulAlgoGetHeuristic(lt, desc, layout, layout, layout, layout, pref, 1, &heuristic, &found);
    float alpha = 1, beta = 0;
    CUstream streams[3] = {mainStream, sSmall, sRest};
    const char* names[3] = {"main", "small", "rest"};
    for (int i = 0; i < 3; i++) {
        int st = cublasLtMatmul(lt, desc, &alpha, (void*)a, layout, (void*)b, layout, &beta, (void*)c, layout, (void*)c, layout,
                                &heuristic.algo, (void*)ws, wsBytes, streams[i]);
        cuStreamSynchronize(streams[i]);
        t = now();
        for (int k = 0; k < 5; k++) cublasLtMatmul(lt, desc, &alpha, (void*)a, layout, (void*)b, layout, &beta, (void*)c, layout, (void*)c, layout,
                                                   &heuristic.algo, (void*)ws, wsBytes, streams[i]);
        CUresult r = cuStreamSynchronize(streams[i]);
        double ms = (now() - t) / 5 * 1e3;
        printf("cublasLt 4096^3 on %-5s stream: status %d sync %d  %.3f ms (%.0f TFLOP/s)\n", names[i], st, r, ms, 2.0 * N * N * N / ms / 1e9);
    }
    report("final cuCtxSynchronize", cuCtxSynchronize());
    return 0;
}
