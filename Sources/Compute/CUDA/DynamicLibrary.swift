#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Foundation

/// Why the CUDA backend cannot start or a CUDA call failed; every message names the library or call.
public struct CUDAError: Error, CustomStringConvertible, Sendable {
    /// The message.
    public let description: String
    /// An error with a message.
    public init(_ description: String) { self.description = description }
}

/// A shared library opened at run time with `dlopen`; nothing CUDA is linked at build time.
final class DynamicLibrary: @unchecked Sendable {
    let handle: UnsafeMutableRawPointer
    /// The file name that opened.
    let name: String

    /// Opens the first of `candidates` that loads (each tried as given, then in every folder of
    /// `LLMUX_CUDA_LIB_DIRS`, colon-separated); the error lists what was tried.
    init(candidates: [String], what: String) throws {
        var tried: [String] = []
        var folders = (ProcessInfo.processInfo.environment["LLMUX_CUDA_LIB_DIRS"] ?? "").split(separator: ":").map(String.init)
        folders += ["/usr/local/cuda/lib64", "/usr/local/cuda/targets/x86_64-linux/lib"]
        let paths = candidates + folders.flatMap { folder in candidates.map { folder + "/" + $0 } }
        for path in paths {
            if let handle = dlopen(path, RTLD_NOW | RTLD_GLOBAL) {
                self.handle = handle
                self.name = path
                return
            }
            let reason = dlerror().map { String(cString: $0) } ?? "not found"
            if tried.count < 3 { tried.append(reason) }
        }
        throw CUDAError("\(what) not found: tried \(candidates.joined(separator: ", ")) (set LD_LIBRARY_PATH or LLMUX_CUDA_LIB_DIRS); first errors: \(tried.joined(separator: "; "))")
    }

    /// The symbol `name` as a C function pointer of type `T`.
    func function<T>(_ symbol: String, as type: T.Type = T.self) throws -> T {
        guard let pointer = dlsym(handle, symbol) else {
            throw CUDAError("\(name) has no symbol \(symbol)")
        }
        return unsafeBitCast(pointer, to: T.self)
    }
}

/// Arguments of one kernel launch, kept in memory that lives until the launch returns
/// (`cuLaunchKernel` takes an array of pointers to argument values).
struct KernelArguments {
    enum Value {
        case pointer(UInt64)
        case int32(Int32)
        case int64(Int64)
        case float(Float)
    }
    var values: [Value] = []

    init(_ values: [Value]) { self.values = values }

    /// Calls `body` with the `void**` array.
    func withPointers<R>(_ body: (UnsafeMutablePointer<UnsafeMutableRawPointer?>) throws -> R) rethrows -> R {
        let storage = UnsafeMutableRawPointer.allocate(byteCount: max(1, values.count) * 8, alignment: 8)
        let array = UnsafeMutablePointer<UnsafeMutableRawPointer?>.allocate(capacity: max(1, values.count))
        defer {
            storage.deallocate()
            array.deallocate()
        }
        for (index, value) in values.enumerated() {
            let slot = storage + index * 8
            switch value {
            case .pointer(let v): slot.storeBytes(of: v, as: UInt64.self)
            case .int32(let v): slot.storeBytes(of: v, as: Int32.self)
            case .int64(let v): slot.storeBytes(of: v, as: Int64.self)
            case .float(let v): slot.storeBytes(of: v, as: Float.self)
            }
            array[index] = slot
        }
        return try body(array)
    }
}

/// Helpers to write argument lists tersely.
extension KernelArguments.Value {
    static func ptr(_ tensor: Tensor) -> Self { .pointer(tensor.deviceAddress) }
    static func ptr(_ tensor: IntTensor) -> Self { .pointer(tensor.deviceAddress) }
    static func int(_ value: Int) -> Self { .int32(Int32(value)) }
}
