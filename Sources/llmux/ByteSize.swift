import ArgumentParser

/// A memory size on the command line: `512MiB`, `2GB`, `1.5G`, `4096` (bytes).
struct ByteSize: ExpressibleByArgument, CustomStringConvertible {
    let bytes: Int

    init(bytes: Int) { self.bytes = bytes }

    init?(argument: String) {
        let text = argument.trimmingCharacters(in: .whitespaces).lowercased()
        let units: [(String, Double)] = [
            ("kib", 1024), ("mib", 1024 * 1024), ("gib", 1024 * 1024 * 1024),
            ("kb", 1e3), ("mb", 1e6), ("gb", 1e9), ("k", 1024), ("m", 1024 * 1024), ("g", 1024 * 1024 * 1024), ("b", 1),
        ]
        for (suffix, scale) in units where text.hasSuffix(suffix) {
            guard let value = Double(text.dropLast(suffix.count)), value >= 0 else { return nil }
            bytes = Int(value * scale)
            return
        }
        guard let value = Int(text), value >= 0 else { return nil }
        bytes = value
    }

    var description: String {
        bytes >= 1 << 30 ? String(format: "%.2f GiB", Double(bytes) / Double(1 << 30)) : String(format: "%.1f MiB", Double(bytes) / Double(1 << 20))
    }
}

import Foundation

/// An error that ends a command with its message and exit code 1 (no usage text, unlike
/// `ValidationError`, since the arguments were fine).
struct CommandFailure: Error, CustomStringConvertible {
    let description: String
    init(_ message: String) { description = message }
}
