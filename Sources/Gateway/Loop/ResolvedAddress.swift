import CGatewayLoop
import Glibc
import NIOCore

/// A socket address from `getaddrinfo`, kept as plain bytes so it can be shared between loops.
struct ResolvedAddress: @unchecked Sendable {
    private var storage = sockaddr_storage()
    private var length: socklen_t = 0

    /// The address family (`AF_INET`, `AF_INET6`).
    var family: Int32 { Int32(storage.ss_family) }

    /// Calls `body` with the address as the socket calls take it.
    func withSockAddr<R>(_ body: (UnsafePointer<sockaddr>, socklen_t) -> R) -> R {
        withUnsafePointer(to: storage) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { body($0, length) }
        }
    }

    /// The addresses of `host` and `port` for a TCP socket, in the resolver's order; `passive`
    /// for a listening socket (an empty host is then every interface).
    static func resolve(host: String, port: Int, passive: Bool = false) throws -> [ResolvedAddress] {
        var hints = addrinfo()
        hints.ai_family = AF_UNSPEC
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        if passive { hints.ai_flags = AI_PASSIVE }
        var list: UnsafeMutablePointer<addrinfo>?
        let code = getaddrinfo(host.isEmpty ? nil : host, String(port), &hints, &list)
        guard code == 0, let first = list else {
            throw AddressError(description: "cannot resolve \(host): \(String(cString: gai_strerror(code)))")
        }
        defer { freeaddrinfo(first) }
        var addresses: [ResolvedAddress] = []
        var entry: UnsafeMutablePointer<addrinfo>? = first
        while let current = entry {
            if let address = current.pointee.ai_addr, Int(current.pointee.ai_addrlen) <= MemoryLayout<sockaddr_storage>.size {
                var resolved = ResolvedAddress()
                withUnsafeMutableBytes(of: &resolved.storage) { target in
                    target.copyMemory(from: UnsafeRawBufferPointer(start: address, count: Int(current.pointee.ai_addrlen)))
                }
                resolved.length = current.pointee.ai_addrlen
                addresses.append(resolved)
            }
            entry = current.pointee.ai_next
        }
        return addresses
    }
}

/// A host name that does not resolve.
struct AddressError: Error, CustomStringConvertible {
    let description: String
}
