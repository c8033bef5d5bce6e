/// The CUDA driver API (`libcuda.so.1`), resolved with `dlsym`. Types follow `cuda.h`:
/// `CUresult` is a 32-bit int, handles are opaque pointers, `CUdeviceptr` is 64-bit.
final class CUDADriver: @unchecked Sendable {
    typealias Handle = OpaquePointer?
    typealias Result = Int32

    let library: DynamicLibrary
    let cuInit: @convention(c) (UInt32) -> Result
    let cuGetErrorName: @convention(c) (Result, UnsafeMutablePointer<UnsafePointer<CChar>?>) -> Result
    let cuGetErrorString: @convention(c) (Result, UnsafeMutablePointer<UnsafePointer<CChar>?>) -> Result
    let cuDriverGetVersion: @convention(c) (UnsafeMutablePointer<Int32>) -> Result
    let cuDeviceGetCount: @convention(c) (UnsafeMutablePointer<Int32>) -> Result
    let cuDeviceGet: @convention(c) (UnsafeMutablePointer<Int32>, Int32) -> Result
    let cuDeviceGetName: @convention(c) (UnsafeMutablePointer<CChar>, Int32, Int32) -> Result
    let cuDeviceGetAttribute: @convention(c) (UnsafeMutablePointer<Int32>, Int32, Int32) -> Result
    let cuDevicePrimaryCtxRetain: @convention(c) (UnsafeMutablePointer<Handle>, Int32) -> Result
    let cuCtxSetCurrent: @convention(c) (Handle) -> Result
    let cuStreamCreate: @convention(c) (UnsafeMutablePointer<Handle>, UInt32) -> Result
    /// `cuStreamCreateWithPriority(stream*, flags, priority)`: lower numbers run first.
    let cuStreamCreateWithPriority: @convention(c) (UnsafeMutablePointer<Handle>, UInt32, Int32) -> Result
    let cuStreamSynchronize: @convention(c) (Handle) -> Result
    let cuMemGetInfo: @convention(c) (UnsafeMutablePointer<Int>, UnsafeMutablePointer<Int>) -> Result
    let cuMemAlloc: @convention(c) (UnsafeMutablePointer<UInt64>, Int) -> Result
    let cuMemFree: @convention(c) (UInt64) -> Result
    let cuMemAllocHost: @convention(c) (UnsafeMutablePointer<UnsafeMutableRawPointer?>, Int) -> Result
    let cuMemcpyHtoD: @convention(c) (UInt64, UnsafeRawPointer, Int) -> Result
    let cuMemcpyHtoDAsync: @convention(c) (UInt64, UnsafeRawPointer, Int, Handle) -> Result
    let cuMemcpyDtoHAsync: @convention(c) (UnsafeMutableRawPointer, UInt64, Int, Handle) -> Result
    let cuMemcpyDtoDAsync: @convention(c) (UInt64, UInt64, Int, Handle) -> Result
    let cuMemsetD8Async: @convention(c) (UInt64, UInt8, Int, Handle) -> Result
    let cuModuleLoadData: @convention(c) (UnsafeMutablePointer<Handle>, UnsafeRawPointer) -> Result
    let cuModuleGetFunction: @convention(c) (UnsafeMutablePointer<Handle>, Handle, UnsafePointer<CChar>) -> Result
    let cuFuncSetAttribute: @convention(c) (Handle, Int32, Int32) -> Result
    let cuLaunchKernel: @convention(c) (Handle, UInt32, UInt32, UInt32, UInt32, UInt32, UInt32, UInt32, Handle,
                                        UnsafeMutablePointer<UnsafeMutableRawPointer?>?, UnsafeMutablePointer<UnsafeMutableRawPointer?>?) -> Result
    // Graphs (optional: nil where the driver lacks them, and the decoder then runs eagerly).
    typealias BeginCapture = @convention(c) (Handle, Int32) -> Result
    typealias EndCapture = @convention(c) (Handle, UnsafeMutablePointer<Handle>) -> Result
    typealias Instantiate = @convention(c) (UnsafeMutablePointer<Handle>, Handle, UInt64) -> Result
    typealias GraphLaunch = @convention(c) (Handle, Handle) -> Result
    typealias Destroy = @convention(c) (Handle) -> Result
    // Streams, events and green contexts (SM partitions; optional: nil on drivers before CUDA 12.4).
    let cuStreamDestroy: @convention(c) (Handle) -> Result
    let cuCtxSynchronize: @convention(c) () -> Result
    let cuEventCreate: @convention(c) (UnsafeMutablePointer<Handle>, UInt32) -> Result
    let cuEventRecord: @convention(c) (Handle, Handle) -> Result
    let cuEventQuery: @convention(c) (Handle) -> Result
    let cuEventSynchronize: @convention(c) (Handle) -> Result
    let cuEventElapsedTime: @convention(c) (UnsafeMutablePointer<Float>, Handle, Handle) -> Result
    let cuEventDestroy: @convention(c) (Handle) -> Result
    let cuStreamWaitEvent: @convention(c) (Handle, Handle, UInt32) -> Result
    let greenContexts: GreenContextAPI?
    /// Profiler range control (for `ncu --profile-from-start off`; optional).
    let cuProfilerStart: (@convention(c) () -> Result)?
    let cuProfilerStop: (@convention(c) () -> Result)?
    let cuStreamBeginCapture: BeginCapture?
    let cuStreamEndCapture: EndCapture?
    let cuGraphInstantiateWithFlags: Instantiate?
    let cuGraphLaunch: GraphLaunch?
    let cuGraphExecDestroy: Destroy?
    let cuGraphDestroy: Destroy?

    /// Device attributes used here (`CUdevice_attribute`).
    enum Attribute: Int32 {
        case multiprocessorCount = 16
        case computeCapabilityMajor = 75
        case computeCapabilityMinor = 76
    }

    /// Opens `libcuda.so.1` and resolves every function, then calls `cuInit(0)`.
    init() throws {
        library = try DynamicLibrary(candidates: ["libcuda.so.1", "libcuda.so"], what: "the CUDA driver (libcuda.so.1)")
        cuInit = try library.function("cuInit")
        cuGetErrorName = try library.function("cuGetErrorName")
        cuGetErrorString = try library.function("cuGetErrorString")
        cuDriverGetVersion = try library.function("cuDriverGetVersion")
        cuDeviceGetCount = try library.function("cuDeviceGetCount")
        cuDeviceGet = try library.function("cuDeviceGet")
        cuDeviceGetName = try library.function("cuDeviceGetName")
        cuDeviceGetAttribute = try library.function("cuDeviceGetAttribute")
        cuDevicePrimaryCtxRetain = try library.function("cuDevicePrimaryCtxRetain")
        cuCtxSetCurrent = try library.function("cuCtxSetCurrent")
        cuStreamCreate = try library.function("cuStreamCreate")
        cuStreamCreateWithPriority = try library.function("cuStreamCreateWithPriority")
        cuStreamSynchronize = try library.function("cuStreamSynchronize")
        cuMemGetInfo = try library.function("cuMemGetInfo_v2")
        cuMemAlloc = try library.function("cuMemAlloc_v2")
        cuMemFree = try library.function("cuMemFree_v2")
        cuMemAllocHost = try library.function("cuMemAllocHost_v2")
        cuMemcpyHtoD = try library.function("cuMemcpyHtoD_v2")
        cuMemcpyHtoDAsync = try library.function("cuMemcpyHtoDAsync_v2")
        cuMemcpyDtoHAsync = try library.function("cuMemcpyDtoHAsync_v2")
        cuMemcpyDtoDAsync = try library.function("cuMemcpyDtoDAsync_v2")
        cuMemsetD8Async = try library.function("cuMemsetD8Async")
        cuModuleLoadData = try library.function("cuModuleLoadData")
        cuModuleGetFunction = try library.function("cuModuleGetFunction")
        cuFuncSetAttribute = try library.function("cuFuncSetAttribute")
        cuLaunchKernel = try library.function("cuLaunchKernel")
        cuStreamDestroy = try library.function("cuStreamDestroy_v2")
        cuCtxSynchronize = try library.function("cuCtxSynchronize")
        cuEventCreate = try library.function("cuEventCreate")
        cuEventRecord = try library.function("cuEventRecord")
        cuEventQuery = try library.function("cuEventQuery")
        cuEventSynchronize = try library.function("cuEventSynchronize")
        cuEventElapsedTime = try library.function("cuEventElapsedTime")
        cuEventDestroy = try library.function("cuEventDestroy_v2")
        cuStreamWaitEvent = try library.function("cuStreamWaitEvent")
        greenContexts = try? GreenContextAPI(library: library)
        cuProfilerStart = try? library.function("cuProfilerStart")
        cuProfilerStop = try? library.function("cuProfilerStop")
        cuStreamBeginCapture = try? library.function("cuStreamBeginCapture_v2", as: BeginCapture.self)
        cuStreamEndCapture = try? library.function("cuStreamEndCapture", as: EndCapture.self)
        cuGraphInstantiateWithFlags = try? library.function("cuGraphInstantiateWithFlags", as: Instantiate.self)
        cuGraphLaunch = try? library.function("cuGraphLaunch", as: GraphLaunch.self)
        cuGraphExecDestroy = try? library.function("cuGraphExecDestroy", as: Destroy.self)
        cuGraphDestroy = try? library.function("cuGraphDestroy", as: Destroy.self)
        try check(cuInit(0), "cuInit")
    }

    /// Turns a `CUresult` into an error naming the call, the error's name and its description.
    func check(_ status: Result, _ call: @autoclosure () -> String) throws {
        guard status != 0 else { return }
        var name: UnsafePointer<CChar>?
        var text: UnsafePointer<CChar>?
        _ = cuGetErrorName(status, &name)
        _ = cuGetErrorString(status, &text)
        let nameText = name.map { String(cString: $0) } ?? "CUDA_ERROR_\(status)"
        let description = text.map { String(cString: $0) } ?? "unknown error"
        throw CUDAError("\(call()) failed: \(nameText) (\(status)): \(description)")
    }

    /// The driver, opened once per process (the error repeats if it is absent).
    static let shared: Swift.Result<CUDADriver, CUDAError> = {
        do { return .success(try CUDADriver()) } catch let error as CUDAError { return .failure(error) } catch {
            return .failure(CUDAError("\(error)"))
        }
    }()
}


/// The green-context calls of the driver (CUDA 12.4 and later): SM resources are split into
/// groups, each group becomes a green context, and streams made in it run kernels on its SMs only.
struct GreenContextAPI {
    typealias Handle = OpaquePointer?
    typealias Result = Int32
    /// `cuDeviceGetDevResource(device, resource*, type)`.
    let getDeviceResource: @convention(c) (Int32, UnsafeMutableRawPointer, Int32) -> Result
    /// `cuDevSmResourceSplitByCount(result*, nbGroups*, input*, remaining*, useFlags, minCount)`.
    let splitByCount: @convention(c) (UnsafeMutableRawPointer, UnsafeMutablePointer<UInt32>, UnsafeRawPointer,
                                      UnsafeMutableRawPointer, UInt32, UInt32) -> Result
    /// `cuDevResourceGenerateDesc(desc*, resources*, count)`.
    let generateDescriptor: @convention(c) (UnsafeMutablePointer<Handle>, UnsafeMutableRawPointer, UInt32) -> Result
    /// `cuGreenCtxCreate(greenCtx*, desc, device, flags)`.
    let create: @convention(c) (UnsafeMutablePointer<Handle>, Handle, Int32, UInt32) -> Result
    /// `cuGreenCtxDestroy(greenCtx)`.
    let destroy: @convention(c) (Handle) -> Result
    /// `cuGreenCtxStreamCreate(stream*, greenCtx, flags, priority)`.
    let createStream: @convention(c) (UnsafeMutablePointer<Handle>, Handle, UInt32, Int32) -> Result
    /// `cuGreenCtxGetDevResource(greenCtx, resource*, type)`.
    let getResource: @convention(c) (Handle, UnsafeMutableRawPointer, Int32) -> Result

    /// `sizeof(CUdevResource)` in cuda.h of CUDA 12.4 to 13.0 (type, 92 bytes of padding, a 48-byte union),
    /// with room to spare in case a later driver writes more; the SM count sits at byte 96.
    static let resourceBytes = 256
    static let smCountOffset = 96
    /// `CU_DEV_RESOURCE_TYPE_SM`.
    static let smResourceType: Int32 = 1

    init(library: DynamicLibrary) throws {
        getDeviceResource = try library.function("cuDeviceGetDevResource")
        splitByCount = try library.function("cuDevSmResourceSplitByCount")
        generateDescriptor = try library.function("cuDevResourceGenerateDesc")
        create = try library.function("cuGreenCtxCreate")
        destroy = try library.function("cuGreenCtxDestroy")
        createStream = try library.function("cuGreenCtxStreamCreate")
        getResource = try library.function("cuGreenCtxGetDevResource")
    }
}
