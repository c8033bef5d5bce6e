import Compute
import Foundation
import LLMuxCore

/// Parses and validates the JSON header of a safetensors file held in memory.
///
/// Layout: 8-byte little-endian header length N, N bytes of JSON, then the data; every tensor's
/// `data_offsets` are relative to the data start. Every check here exists so that later reads
/// through `SafetensorsFile.pointer(to:)` can never leave the file.
enum SafetensorsHeader {
    /// The parsed header.
    struct Parsed {
        var tensors: [String: TensorInfo]
        var metadata: [String: String]
    }

    /// Reads the header at `base` of a file of `fileSize` bytes named `file`.
    static func parse(base: UnsafeRawPointer, fileSize: Int, file: String) throws -> Parsed {
        func fail(_ detail: String) -> LLMuxError { .badCheckpoint(file: file, detail: detail) }
        guard fileSize >= 8 else { throw fail("file is \(fileSize) bytes, shorter than the 8-byte header length") }
        let headerLength = UInt64(littleEndian: base.loadUnaligned(as: UInt64.self))
        guard headerLength <= UInt64(fileSize - 8) else {
            throw fail("header length \(headerLength) is larger than the file (\(fileSize) bytes)")
        }
        let dataStart = 8 + Int(headerLength)
        let dataSize = fileSize - dataStart
        let json = Data(bytes: base + 8, count: Int(headerLength))
        let object: Any
        do {
            object = try JSONSerialization.jsonObject(with: json)
        } catch {
            throw fail("header is not valid JSON")
        }
        guard let entries = object as? [String: Any] else { throw fail("header is not a JSON object") }

        var tensors: [String: TensorInfo] = [:]
        var metadata: [String: String] = [:]
        for (key, value) in entries {
            if key == "__metadata__" {
                guard let dict = value as? [String: Any] else { throw fail("'__metadata__' is not an object") }
                for (metaKey, metaValue) in dict {
                    guard let string = metaValue as? String else {
                        throw fail("'__metadata__' key '\(metaKey)' is not a string")
                    }
                    metadata[metaKey] = string
                }
                continue
            }
            tensors[key] = try parseTensor(key, value, dataStart: dataStart, dataSize: dataSize, fail: fail)
        }
        try checkOverlaps(tensors, dataStart: dataStart, fail: fail)
        return Parsed(tensors: tensors, metadata: metadata)
    }

    private static func parseTensor(
        _ key: String, _ value: Any, dataStart: Int, dataSize: Int, fail: (String) -> LLMuxError
    ) throws -> TensorInfo {
        guard let entry = value as? [String: Any] else { throw fail("tensor '\(key)' entry is not an object") }
        guard let dtypeName = entry["dtype"] as? String else { throw fail("tensor '\(key)' has no dtype") }
        guard let dtype = DType(safetensorsName: dtypeName) else {
            let supported = DType.allCases.map(\.rawValue).joined(separator: ", ")
            throw fail("tensor '\(key)' has dtype \(dtypeName); supported: \(supported)")
        }
        guard let shapeValues = entry["shape"] as? [Any] else { throw fail("tensor '\(key)' has no shape") }
        var shape: [Int] = []
        var elements = 1
        for dim in shapeValues {
            guard let size = jsonInt(dim), size >= 0 else {
                throw fail("tensor '\(key)' has an invalid shape \(shapeValues)")
            }
            shape.append(size)
            let (product, overflow) = elements.multipliedReportingOverflow(by: size)
            guard !overflow else { throw fail("tensor '\(key)' shape \(shape) overflows") }
            elements = product
        }
        guard let offsets = entry["data_offsets"] as? [Any] else { throw fail("tensor '\(key)' has no data_offsets") }
        guard offsets.count == 2, let begin = jsonInt(offsets[0]), let end = jsonInt(offsets[1]) else {
            throw fail("tensor '\(key)' has invalid data_offsets \(offsets)")
        }
        guard begin >= 0, begin <= end, end <= dataSize else {
            throw fail("tensor '\(key)' data_offsets [\(begin), \(end)] are outside the data (\(dataSize) bytes)")
        }
        let (expected, overflow) = elements.multipliedReportingOverflow(by: dtype.byteSize)
        guard !overflow, end - begin == expected else {
            throw fail("tensor '\(key)' data_offsets [\(begin), \(end)] span \(end - begin) bytes, but shape \(shape) of \(dtypeName) needs \(expected)")
        }
        return TensorInfo(name: key, dtype: dtype, shape: shape, byteOffset: dataStart + begin, byteCount: end - begin)
    }

    /// Overlapping tensors would alias each other's memory: a sign of a corrupt or hostile file.
    private static func checkOverlaps(_ tensors: [String: TensorInfo], dataStart: Int, fail: (String) -> LLMuxError) throws {
        let sorted = tensors.values.filter { $0.byteCount > 0 }.sorted {
            ($0.byteOffset, $0.name) < ($1.byteOffset, $1.name)
        }
        for (previous, next) in zip(sorted, sorted.dropFirst()) where next.byteOffset < previous.byteOffset + previous.byteCount {
            throw fail("tensor '\(next.name)' overlaps tensor '\(previous.name)'")
        }
    }

    /// An integral JSON number (JSONSerialization gives NSNumber; a fractional one is rejected).
    static func jsonInt(_ value: Any) -> Int? {
        if let int = value as? Int { return int }
        if let double = value as? Double, double == double.rounded(), abs(double) < 9e15 { return Int(double) }
        return nil
    }
}
