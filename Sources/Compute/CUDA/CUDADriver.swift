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
