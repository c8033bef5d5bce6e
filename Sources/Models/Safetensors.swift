#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Compute
import Foundation
import LLMuxCore

/// Where one tensor lies in a safetensors file, as read from its header.
public struct TensorInfo: Sendable, Equatable {
    /// The tensor's key in the header (a Hugging Face parameter name).
    public let name: String
    /// Element type.
    public let dtype: DType
    /// Dimensions, outermost first (row-major).
    public let shape: [Int]
    /// Absolute offset of the first byte in the file (header included).
    public let byteOffset: Int
    /// Bytes of data (`elementCount * dtype.byteSize`).
    public let byteCount: Int

    /// A tensor location.
    public init(name: String, dtype: DType, shape: [Int], byteOffset: Int, byteCount: Int) {
        self.name = name
        self.dtype = dtype
        self.shape = shape
        self.byteOffset = byteOffset
        self.byteCount = byteCount
    }

    /// Product of the dimensions (1 for a scalar).
    public var elementCount: Int { shape.reduce(1, *) }
}

/// A safetensors file mapped read-only into memory.
///
/// Immutable after `init`, so it may be shared between threads; the mapping lives as long as the
/// object, and every pointer it hands out is valid only while the object is alive.
public final class SafetensorsFile: @unchecked Sendable {
    /// The file.
    public let url: URL
    /// Every tensor of the header, by name.
    public let tensors: [String: TensorInfo]
    /// The header's `__metadata__` (string to string).
    public let metadata: [String: String]
    /// Start of the mapping (the file's first byte).
    let base: UnsafeRawPointer
    /// Bytes mapped (the whole file).
    let mappedSize: Int

    /// Maps the whole file and validates its header; throws `LLMuxError.badCheckpoint` naming the
    /// file (and the tensor key, where one is at fault) for anything that could lead to a read out
    /// of bounds.
    public init(url: URL) throws {
        self.url = url
        let path = url.path
        let fd = open(path, O_RDONLY)
        guard fd >= 0 else {
            throw LLMuxError.badCheckpoint(file: path, detail: "cannot open: \(String(cString: strerror(errno)))")
        }
        // The mapping keeps its own reference to the file, so the descriptor can go at once.
        defer { close(fd) }
        var status = stat()
        guard fstat(fd, &status) == 0 else {
            throw LLMuxError.badCheckpoint(file: path, detail: "cannot stat: \(String(cString: strerror(errno)))")
        }
        let size = Int(status.st_size)
        guard size >= 8 else {
            throw LLMuxError.badCheckpoint(file: path, detail: "file is \(size) bytes, shorter than the 8-byte header length")
        }
        guard let raw = mmap(nil, size, PROT_READ, MAP_PRIVATE, fd, 0), raw != MAP_FAILED else {
            throw LLMuxError.badCheckpoint(file: path, detail: "cannot mmap: \(String(cString: strerror(errno)))")
        }
        let base = UnsafeRawPointer(raw)
        do {
            let header = try SafetensorsHeader.parse(base: base, fileSize: size, file: path)
            self.tensors = header.tensors
            self.metadata = header.metadata
        } catch {
            munmap(raw, size)
            throw error
        }
        self.base = base
        self.mappedSize = size
    }

    deinit {
        munmap(UnsafeMutableRawPointer(mutating: base), mappedSize)
    }

    /// The first byte of a tensor's data inside the mapping (valid while `self` is alive).
    public func pointer(to info: TensorInfo) -> UnsafeRawPointer {
        precondition(info.byteOffset >= 0 && info.byteOffset + info.byteCount <= mappedSize,
                     "tensor '\(info.name)' is not from \(url.path)")
        return base + info.byteOffset
    }

    /// Size of the file in bytes.
    public var fileSize: Int { mappedSize }
}
