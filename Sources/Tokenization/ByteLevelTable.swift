/// GPT-2's reversible map between bytes and printable Unicode scalars: byte-level BPE vocabularies
/// spell every byte as one of these 256 visible characters (space becomes "Ġ", newline "Ċ").
enum ByteLevelTable {
    /// The scalar standing for each byte value.
    static let byteToScalar: [Unicode.Scalar] = {
        var direct = Array(33...126) + Array(161...172) + Array(174...255)
        var scalars = [UInt32](repeating: 0, count: 256)
        for byte in direct { scalars[byte] = UInt32(byte) }
        var next: UInt32 = 256
        for byte in 0..<256 where !direct.contains(byte) {
            scalars[byte] = next
            next += 1
            direct.append(byte)
        }
        return scalars.map { Unicode.Scalar($0)! }
    }()

    /// The byte each mapped scalar stands for.
    static let scalarToByte: [UInt32: UInt8] = {
        var map: [UInt32: UInt8] = [:]
        for (byte, scalar) in byteToScalar.enumerated() { map[scalar.value] = UInt8(byte) }
        return map
    }()

    /// Spells the UTF-8 bytes of `text` with the byte scalars.
    static func encode(_ text: String) -> String {
        var view = String.UnicodeScalarView()
        for byte in text.utf8 { view.append(byteToScalar[Int(byte)]) }
        return String(view)
    }

    /// The bytes a token spells, or `nil` when some scalar is not a byte scalar (then the
    /// decoder keeps the token's own UTF-8, as the Rust implementation does).
    static func decode(_ token: String) -> [UInt8]? {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(token.unicodeScalars.count)
        for scalar in token.unicodeScalars {
            guard let byte = scalarToByte[scalar.value] else { return nil }
            bytes.append(byte)
        }
        return bytes
    }
}
