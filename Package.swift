// swift-tools-version: 6.0
import PackageDescription

/// LLMux: serves many LLMs at once on shared devices. Module roles and allowed imports are in
/// docs/architecture.md (mirrors ../shared/DESIGN.md).
let kernelFlags: [CSetting] = [.unsafeFlags(["-O3", "-ffp-contract=fast", "-fno-math-errno"])]

let package = Package(
    name: "LLMux",
    platforms: [.macOS(.v14)],
    products: [
        .executable(name: "llmux", targets: ["llmux"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-collections", from: "1.1.0"),
        .package(url: "https://github.com/jpsim/Yams", from: "5.0.0"),
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.0.0"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.0.0"),
        .package(url: "https://github.com/swift-server/async-http-client", from: "1.20.0"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.65.0"),
    ],
    targets: [
        .target(name: "LLMuxCore"),
        .target(name: "KVMemory", dependencies: [
            "LLMuxCore", .product(name: "Collections", package: "swift-collections"),
        ]),
        .target(name: "Scheduling", dependencies: [
            "LLMuxCore", "KVMemory", .product(name: "Collections", package: "swift-collections"),
        ]),
        .target(name: "Tokenization", dependencies: ["LLMuxCore"]),
        .target(name: "CLLMuxKernels", cSettings: kernelFlags, linkerSettings: [.linkedLibrary("pthread")]),
        .target(name: "Compute", dependencies: ["LLMuxCore", "CLLMuxKernels"]),
        .target(name: "Models", dependencies: ["LLMuxCore", "Compute"]),
        .target(name: "Engine", dependencies: ["LLMuxCore", "KVMemory", "Scheduling", "Tokenization"]),
        .target(name: "Bench", dependencies: ["LLMuxCore"]),
        .target(name: "OpenAIAPI"),
        .target(name: "Server", dependencies: [
            "LLMuxCore", "Engine", "OpenAIAPI", "Tokenization",
            .product(name: "Hummingbird", package: "hummingbird"),
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
        ]),
        .target(name: "Placement", dependencies: ["LLMuxCore", "KVMemory", "Scheduling", "Bench"]),
        .target(name: "CRelayFloor", linkerSettings: [.linkedLibrary("pthread")]),
        .target(name: "CGatewayLoop", linkerSettings: [.linkedLibrary("pthread")]),
        .target(name: "Gateway", dependencies: [
            "OpenAIAPI", "CRelayFloor", "CGatewayLoop", .product(name: "Collections", package: "swift-collections"),
            .product(name: "AsyncHTTPClient", package: "async-http-client"),
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOPosix", package: "swift-nio"),
            .product(name: "NIOHTTP1", package: "swift-nio"),
            .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
            .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            .product(name: "Yams", package: "Yams"),
        ]),
        .executableTarget(name: "llmux", dependencies: [
            "LLMuxCore", "KVMemory", "Scheduling", "Tokenization", "Compute", "Models", "Engine", "Bench", "Server",
            "Placement", "Gateway",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
            .product(name: "Yams", package: "Yams"),
        ]),
        .testTarget(name: "LLMuxCoreTests", dependencies: ["LLMuxCore"]),
        .testTarget(name: "KVMemoryTests", dependencies: ["KVMemory"]),
        .testTarget(name: "SchedulingTests", dependencies: ["Scheduling", "KVMemory", "LLMuxCore"]),
        .testTarget(name: "TokenizationTests", dependencies: ["Tokenization", "LLMuxCore"], resources: [.copy("Fixtures")]),
        .testTarget(name: "ComputeTests", dependencies: ["Compute", "CLLMuxKernels", "LLMuxCore"]),
        .testTarget(name: "ModelsTests", dependencies: ["Models", "Compute", "LLMuxCore"], resources: [.copy("Fixtures")]),
        .testTarget(name: "BenchTests", dependencies: ["Bench", "LLMuxCore"]),
        .testTarget(name: "ServerTests", dependencies: [
            "Server", "OpenAIAPI", "Engine", "LLMuxCore", "Tokenization",
            .product(name: "HummingbirdTesting", package: "hummingbird"),
        ]),
        .testTarget(name: "PlacementTests", dependencies: ["Placement", "Scheduling", "KVMemory", "LLMuxCore", "Bench"]),
        .testTarget(name: "GatewayTests", dependencies: ["Gateway", "OpenAIAPI"]),
        .testTarget(name: "EngineTests", dependencies: ["Engine", "KVMemory", "Scheduling", "LLMuxCore", "Models", "Compute", "Tokenization"]),
    ],
    swiftLanguageModes: [.v6]
)
