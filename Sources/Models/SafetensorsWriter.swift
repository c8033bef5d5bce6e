#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Compute
import Foundation
import LLMuxCore

/// Streaming writer: computes the header from names/dtypes/shapes, then asks for each tensor's
/// bytes in order, so an 8B-parameter model never sits in memory.
///
/// Like the reference `safetensors` writer, tensors are stored by decreasing element size (stable,
/// so otherwise in the order given) after a header space-padded to a multiple of 8: every tensor
/// then starts at a multiple of its element size, so typed loads from the mapping are aligned.
/// The format allows no gaps between tensors, so this ordering is the only way to get alignment.
/// The file is written under a temporary name and renamed at the end, so a crash never leaves a
/// truncated file that looks complete.
public struct SafetensorsWriter {
    /// Destination file.
    public let url: URL
    /// Tensors in file order (the order `write(fill:)` asks for them).
    public let tensors: [(name: String, dtype: DType, shape: [Int])]
    /// The header's `__metadata__`.
    public let metadata: [String: String]

    /// A writer of the given tensors; nothing is written before `write(fill:)`.
    public init(url: URL, tensors: [(name: String, dtype: DType, shape: [Int])], metadata: [String: String] = [:]) {
        self.url = url
        self.tensors = tensors.enumerated().sorted {
            ($1.element.dtype.byteSize, $0.offset) < ($0.element.dtype.byteSize, $1.offset)
        }.map(\.element)
        self.metadata = metadata
    }

    /// Bytes of one tensor.
    static func byteCount(dtype: DType, shape: [Int]) -> Int { shape.reduce(1, *) * dtype.byteSize }

    /// The header JSON (without the length prefix), padded with spaces to a multiple of 8 bytes.
    func headerBytes() -> [UInt8] {
        var parts: [String] = []
        if !metadata.isEmpty {
            let fields = metadata.keys.sorted().map { "\(jsonQuoted($0)):\(jsonQuoted(metadata[$0]!))" }
            parts.append("\"__metadata__\":{\(fields.joined(separator: ","))}")
        }
        var offset = 0
        for tensor in tensors {
            let size = Self.byteCount(dtype: tensor.dtype, shape: tensor.shape)
            let shape = tensor.shape.map(String.init).joined(separator: ",")
            parts.append("\(jsonQuoted(tensor.name)):{\"dtype\":\"\(tensor.dtype.rawValue)\",\"shape\":[\(shape)],\"data_offsets\":[\(offset),\(offset + size)]}")
            offset += size
        }
        var bytes = Array("{\(parts.joined(separator: ","))}".utf8)
        while bytes.count % 8 != 0 { bytes.append(UInt8(ascii: " ")) }
        return bytes
    }

    /// Total size of the file that `write(fill:)` produces.
    public var fileSize: Int {
        8 + headerBytes().count + tensors.reduce(0) { $0 + Self.byteCount(dtype: $1.dtype, shape: $1.shape) }
    }

    /// Writes the file, calling `fill` once per tensor, in file order, with a buffer of exactly that
    /// tensor's byte count to fill with its little-endian data.
    public func write(fill: (_ name: String, _ buffer: UnsafeMutableRawBufferPointer) throws -> Void) throws {
        let path = url.path
        let temporary = path + ".partial"
        let fd = open(temporary, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        guard fd >= 0 else {
            throw LLMuxError.badCheckpoint(file: path, detail: "cannot create: \(String(cString: strerror(errno)))")
        }
        var closed = false
        defer {
            if !closed { close(fd); unlink(temporary) }
        }
        let header = headerBytes()
        var prefix = withUnsafeBytes(of: UInt64(header.count).littleEndian) { Array($0) }
        prefix += header
        try prefix.withUnsafeBytes { try writeAll(fd, $0, path: path) }

        // One buffer, sized for the largest tensor, is reused for all of them.
        let largest = tensors.map { Self.byteCount(dtype: $0.dtype, shape: $0.shape) }.max() ?? 0
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: max(largest, 1), alignment: 64)
        defer { buffer.deallocate() }
        for tensor in tensors {
            let size = Self.byteCount(dtype: tensor.dtype, shape: tensor.shape)
            let slice = UnsafeMutableRawBufferPointer(rebasing: buffer[0..<size])
            try fill(tensor.name, slice)
            try writeAll(fd, UnsafeRawBufferPointer(slice), path: path)
        }
        guard close(fd) == 0 else {
            closed = true
            unlink(temporary)
            throw LLMuxError.badCheckpoint(file: path, detail: "cannot close: \(String(cString: strerror(errno)))")
        }
        closed = true
        guard rename(temporary, path) == 0 else {
            unlink(temporary)
            throw LLMuxError.badCheckpoint(file: path, detail: "cannot rename into place: \(String(cString: strerror(errno)))")
        }
    }

    /// `write(2)` until every byte is out (it may write less than asked).
    private func writeAll(_ fd: Int32, _ bytes: UnsafeRawBufferPointer, path: String) throws {
        var done = 0
        while done < bytes.count {
            let written = systemWrite(fd, bytes.baseAddress! + done, bytes.count - done)
            if written < 0 {
                if errno == EINTR { continue }
                throw LLMuxError.badCheckpoint(file: path, detail: "write failed: \(String(cString: strerror(errno)))")
            }
            done += written
        }
    }
}

/// A JSON string literal for `text` (quotes, backslashes and control characters escaped).
func jsonQuoted(_ text: String) -> String {
    var out = "\""
    for scalar in text.unicodeScalars {
        switch scalar {
        case "\"": out += "\\\""
        case "\\": out += "\\\\"
        case "\n": out += "\\n"
        case "\r": out += "\\r"
        case "\t": out += "\\t"
        default:
            if scalar.value < 0x20 {
                out += String(format: "\\u%04x", scalar.value)
            } else {
                out.unicodeScalars.append(scalar)
            }
        }
    }
    return out + "\""
}

/// `write(2)`, named apart from `SafetensorsWriter.write(fill:)` which shadows it inside the type.
@inline(__always)
private func systemWrite(_ fd: Int32, _ buffer: UnsafeRawPointer, _ count: Int) -> Int {
    write(fd, buffer, count)
}
