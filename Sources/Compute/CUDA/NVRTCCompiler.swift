import Foundation

/// NVRTC (`libnvrtc.so.13` …) opened at run time: compiles CUDA C source to a CUBIN for the
/// device's architecture and keeps the result on disk by source hash, so a second start
/// compiles nothing (`~/.cache/llmux/kernels/<hash>.cubin`, or `$LLMUX_KERNEL_CACHE`).
final class NVRTCCompiler: @unchecked Sendable {
    typealias Program = OpaquePointer?
    private var library: DynamicLibrary?
    private let cacheDirectory: URL

    /// Whether the last `cubin` call was served from the disk cache.
    private(set) var lastWasCached = false

    init() {
        let environment = ProcessInfo.processInfo.environment
        if let explicit = environment["LLMUX_KERNEL_CACHE"] {
            cacheDirectory = URL(fileURLWithPath: explicit)
        } else {
            let base = environment["XDG_CACHE_HOME"].map { URL(fileURLWithPath: $0) }
                ?? URL(fileURLWithPath: environment["HOME"] ?? NSTemporaryDirectory()).appendingPathComponent(".cache")
            cacheDirectory = base.appendingPathComponent("llmux/kernels")
        }
    }

    /// The CUBIN of `source` for `sm_<architecture>`, from the cache or freshly compiled.
    func cubin(source: String, architecture: Int, name: String) throws -> [UInt8] {
        let options = ["--gpu-architecture=sm_\(architecture)", "--std=c++17"]
        let key = String(format: "%016llx", Self.fnv1a(source + "\u{0}" + options.joined(separator: " ")))
        let file = cacheDirectory.appendingPathComponent("\(name)-\(key).cubin")
        if let data = try? Data(contentsOf: file), !data.isEmpty {
            lastWasCached = true
            return [UInt8](data)
        }
        lastWasCached = false
        let binary = try compile(source: source, options: options, name: name)
        try? FileManager.default.createDirectory(at: cacheDirectory, withIntermediateDirectories: true)
        let staging = cacheDirectory.appendingPathComponent(".\(key)-\(ProcessInfo.processInfo.processIdentifier)")
        if (try? Data(binary).write(to: staging)) != nil {
            _ = try? FileManager.default.removeItem(at: file)
            try? FileManager.default.moveItem(at: staging, to: file)
        }
        return binary
    }

    private func open() throws -> DynamicLibrary {
        if let library { return library }
        let opened = try DynamicLibrary(
            candidates: ["libnvrtc.so.13", "libnvrtc.so.12", "libnvrtc.so"], what: "NVRTC (libnvrtc.so.13)")
        library = opened
        return opened
    }

    private func compile(source: String, options: [String], name: String) throws -> [UInt8] {
        let library = try open()
        typealias Status = Int32
        let create: @convention(c) (UnsafeMutablePointer<Program>, UnsafePointer<CChar>, UnsafePointer<CChar>, Int32,
                                    UnsafePointer<UnsafePointer<CChar>?>?, UnsafePointer<UnsafePointer<CChar>?>?) -> Status
            = try library.function("nvrtcCreateProgram")
        let compileProgram: @convention(c) (Program, Int32, UnsafePointer<UnsafePointer<CChar>?>?) -> Status
            = try library.function("nvrtcCompileProgram")
        let logSize: @convention(c) (Program, UnsafeMutablePointer<Int>) -> Status = try library.function("nvrtcGetProgramLogSize")
        let getLog: @convention(c) (Program, UnsafeMutablePointer<CChar>) -> Status = try library.function("nvrtcGetProgramLog")
        let cubinSize: @convention(c) (Program, UnsafeMutablePointer<Int>) -> Status = try library.function("nvrtcGetCUBINSize")
        let getCubin: @convention(c) (Program, UnsafeMutablePointer<CChar>) -> Status = try library.function("nvrtcGetCUBIN")
        let destroy: @convention(c) (UnsafeMutablePointer<Program>) -> Status = try library.function("nvrtcDestroyProgram")
        let errorString: @convention(c) (Status) -> UnsafePointer<CChar>? = try library.function("nvrtcGetErrorString")

        func check(_ status: Status, _ call: String) throws {
            guard status != 0 else { return }
            let text = errorString(status).map { String(cString: $0) } ?? "error \(status)"
            throw CUDAError("\(call) failed: \(text) (\(status))")
        }

        var program: Program = nil
        try check(create(&program, source, name + ".cu", 0, nil, nil), "nvrtcCreateProgram")
        defer { _ = destroy(&program) }
        let cOptions = options.map { strdup($0) }
        defer { cOptions.forEach { free($0) } }
        let status = cOptions.map { UnsafePointer<CChar>($0) }.withUnsafeBufferPointer { compileProgram(program, Int32(options.count), $0.baseAddress) }
        if status != 0 {
            var size = 0
            _ = logSize(program, &size)
            var log = [CChar](repeating: 0, count: max(size, 1))
            _ = getLog(program, &log)
            let text = String(decoding: log.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
            throw CUDAError("nvrtcCompileProgram of \(name) failed: \(errorString(status).map { String(cString: $0) } ?? "\(status)")\n\(text)")
        }
        var size = 0
        try check(cubinSize(program, &size), "nvrtcGetCUBINSize")
        var bytes = [CChar](repeating: 0, count: size)
        try check(getCubin(program, &bytes), "nvrtcGetCUBIN")
        return bytes.map { UInt8(bitPattern: $0) }
    }

    /// 64-bit FNV-1a of the UTF-8 bytes.
    static func fnv1a(_ text: String) -> UInt64 {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in text.utf8 {
            hash ^= UInt64(byte)
            hash = hash &* 0x0000_0100_0000_01b3
        }
        return hash
    }
}
