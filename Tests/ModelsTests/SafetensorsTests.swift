import Compute
import Foundation
import LLMuxCore
@testable import Models
import Testing

@Suite struct SafetensorsRoundTripTests {
    @Test func everyDTypeRoundTripsBitExact() throws {
        let dir = try TemporaryDirectory()
        defer { dir.cleanup() }
        let url = dir.file("t.safetensors")
        var rng = Xoshiro256(seed: 7)
        // Arbitrary bit patterns (NaNs, subnormals, infinities included): the format stores bytes.
        let f32 = (0..<24).map { _ in UInt32(truncatingIfNeeded: rng.next()) }
        let f16 = (0..<15).map { _ in UInt16(truncatingIfNeeded: rng.next()) }
        let bf16 = (0..<8).map { _ in UInt16(truncatingIfNeeded: rng.next()) }
        let tensors: [(name: String, dtype: DType, shape: [Int])] = [
            ("a.f32", .f32, [4, 6]), ("b.f16", .f16, [3, 5]), ("c.bf16", .bf16, [2, 2, 2]),
            ("scalar", .f32, []), ("empty", .f16, [0, 3]),
        ]
        let writer = SafetensorsWriter(url: url, tensors: tensors, metadata: ["format": "pt", "note": "quote \" and \\ ok"])
        var order: [String] = []
        try writer.write { name, buffer in
            order.append(name)
            switch name {
            case "a.f32": f32.withUnsafeBytes { buffer.copyMemory(from: $0) }
            case "b.f16": f16.withUnsafeBytes { buffer.copyMemory(from: $0) }
            case "c.bf16": bf16.withUnsafeBytes { buffer.copyMemory(from: $0) }
            case "scalar": buffer.storeBytes(of: Float(3.5).bitPattern, as: UInt32.self)
            default: #expect(buffer.count == 0)
            }
        }
        // 4-byte elements first, then 2-byte ones, each group in the order given.
        #expect(order == ["a.f32", "scalar", "b.f16", "c.bf16", "empty"])

        let file = try SafetensorsFile(url: url)
        #expect(file.metadata == ["format": "pt", "note": "quote \" and \\ ok"])
        #expect(file.tensors.count == 5)
        #expect(file.fileSize == writer.fileSize)
        for (name, dtype, shape) in tensors {
            let info = try #require(file.tensors[name])
            #expect(info.dtype == dtype && info.shape == shape)
            #expect(info.byteCount == info.elementCount * dtype.byteSize)
            #expect(info.byteOffset % dtype.byteSize == 0)
        }
        func bytes(_ name: String) -> [UInt8] {
            let info = file.tensors[name]!
            return Array(UnsafeRawBufferPointer(start: file.pointer(to: info), count: info.byteCount))
        }
        #expect(bytes("a.f32") == f32.withUnsafeBytes { Array($0) })
        #expect(bytes("b.f16") == f16.withUnsafeBytes { Array($0) })
        #expect(bytes("c.bf16") == bf16.withUnsafeBytes { Array($0) })
        #expect(file.tensors["scalar"]!.elementCount == 1)
        #expect(file.pointer(to: file.tensors["scalar"]!).loadUnaligned(as: Float.self) == 3.5)
        // No temporary file is left behind.
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir.url.path) == ["t.safetensors"])
    }

    @Test func headerIsPaddedSoDataIsAligned() throws {
        let writer = SafetensorsWriter(url: URL(fileURLWithPath: "/dev/null"), tensors: [("x", .f32, [3])])
        #expect(writer.headerBytes().count % 8 == 0)
    }
}

@Suite struct SafetensorsCorruptFileTests {
    /// Writes `data` as `name` and returns the error message of opening it.
    func open(_ data: Data, parts: [String], sourceLocation: SourceLocation = #_sourceLocation) throws {
        let dir = try TemporaryDirectory()
        defer { dir.cleanup() }
        let url = dir.file("broken.safetensors")
        try data.write(to: url)
        expectBadCheckpoint(containing: ["broken.safetensors"] + parts, sourceLocation: sourceLocation) {
            _ = try SafetensorsFile(url: url)
        }
    }

    @Test func fileShorterThanEightBytes() throws {
        try open(Data([1, 2, 3]), parts: ["shorter than the 8-byte header length"])
        try open(Data(), parts: ["0 bytes"])
    }

    @Test func headerLengthLargerThanFile() throws {
        try open(rawSafetensors(header: "{}", dataBytes: 0, declaredLength: 1000), parts: ["header length 1000"])
        try open(rawSafetensors(header: "{}", dataBytes: 0, declaredLength: UInt64.max), parts: ["header length"])
    }

    @Test func headerNotJSONOrNotObject() throws {
        try open(rawSafetensors(header: "{not json", dataBytes: 0), parts: ["not valid JSON"])
        try open(rawSafetensors(header: "[1, 2]", dataBytes: 0), parts: ["not a JSON object"])
    }

    @Test func entryMissingFields() throws {
        try open(rawSafetensors(header: #"{"w": {"shape": [2], "data_offsets": [0, 8]}}"#, dataBytes: 8), parts: ["'w'", "dtype"])
        try open(rawSafetensors(header: #"{"w": {"dtype": "F32", "data_offsets": [0, 8]}}"#, dataBytes: 8), parts: ["'w'", "shape"])
        try open(rawSafetensors(header: #"{"w": {"dtype": "F32", "shape": [2]}}"#, dataBytes: 8), parts: ["'w'", "data_offsets"])
        try open(rawSafetensors(header: #"{"w": 3}"#, dataBytes: 0), parts: ["'w'", "not an object"])
        try open(rawSafetensors(header: #"{"w": {"dtype": "F32", "shape": [-2], "data_offsets": [0, 8]}}"#, dataBytes: 8), parts: ["'w'", "shape"])
        try open(rawSafetensors(header: #"{"w": {"dtype": "F32", "shape": [2], "data_offsets": [0]}}"#, dataBytes: 8), parts: ["'w'", "data_offsets"])
    }

    @Test func unsupportedDType() throws {
        try open(rawSafetensors(header: #"{"x": {"dtype": "I64", "shape": [1], "data_offsets": [0, 8]}}"#, dataBytes: 8),
                 parts: ["tensor 'x' has dtype I64; supported: F32, F16, BF16"])
        try open(rawSafetensors(header: #"{"y": {"dtype": "F8_E4M3", "shape": [1], "data_offsets": [0, 1]}}"#, dataBytes: 1),
                 parts: ["tensor 'y' has dtype F8_E4M3"])
    }

    @Test func dataOffsetsOutOfRangeOrWrongLength() throws {
        try open(rawSafetensors(header: #"{"w": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}}"#, dataBytes: 8),
                 parts: ["'w'", "outside the data"])
        try open(rawSafetensors(header: #"{"w": {"dtype": "F32", "shape": [2], "data_offsets": [8, 4]}}"#, dataBytes: 8),
                 parts: ["'w'", "outside the data"])
        try open(rawSafetensors(header: #"{"w": {"dtype": "F16", "shape": [3], "data_offsets": [0, 8]}}"#, dataBytes: 8),
                 parts: ["'w'", "needs 6"])
        try open(rawSafetensors(header: #"{"w": {"dtype": "BF16", "shape": [4611686018427387904, 4], "data_offsets": [0, 8]}}"#, dataBytes: 8),
                 parts: ["'w'"])
    }

    @Test func overlappingTensorsAreRejected() throws {
        let header = #"{"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}, "b": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]}}"#
        try open(rawSafetensors(header: header, dataBytes: 12), parts: ["overlaps", "'a'", "'b'"])
    }

    @Test func metadataIsNotATensor() throws {
        let dir = try TemporaryDirectory()
        defer { dir.cleanup() }
        let url = dir.file("ok.safetensors")
        let header = #"{"__metadata__": {"format": "pt"}, "w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}}"#
        try rawSafetensors(header: header, dataBytes: 8).write(to: url)
        let file = try SafetensorsFile(url: url)
        #expect(file.metadata == ["format": "pt"])
        #expect(Array(file.tensors.keys) == ["w"])
        #expect(file.tensors["w"]!.byteOffset == 8 + header.utf8.count)

        try open(rawSafetensors(header: #"{"__metadata__": {"format": 1}}"#, dataBytes: 0), parts: ["__metadata__", "format"])
    }
}
