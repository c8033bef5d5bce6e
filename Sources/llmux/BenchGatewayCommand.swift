import ArgumentParser
import Foundation
import Gateway

/// `llmux bench gateway`: many concurrent streams against a paced stub upstream, direct and
/// through LLMux's gateway, nginx and SGLang's model gateway (smg), side by side in one run.
struct BenchGatewayCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "gateway",
        abstract: "Measure what a gateway adds: direct to a stub upstream vs through a zero-work relay (the floor), llmux gateway, nginx and smg.",
        discussion: """
            Starts a stub upstream (a separate process: `llmux bench gateway --stub`) that streams --tokens \
            tokens --interval-ms apart in OpenAI's SSE format, then for each concurrency runs the same fixed \
            request mix direct and through every proxy found (nginx from PATH or --nginx, smg from PATH or \
            --smg), plus endpoints started by hand (--url; --targets none measures only those). The floor \
            target is the least any proxy can add here: a TCP relay on plain system calls (one upstream \
            connection per client connection, each byte read and written once, no HTTP work), and \
            "beyond the floor" is each proxy's figure minus the relay's in the same repetition. The load \
            client is SwiftNIO on --client-threads event loops, one keep-alive connection per stream. Added \
            latency = the proxy's percentile minus the direct one. With --repeats N every target runs N times \
            in rotating order and the table gives medians, then each run. Prints a table last; --json writes \
            everything.
            """)

    @Option(help: "Comma-separated numbers of concurrent streams.") var concurrency = "64,256,1024"
    @Option(help: "Comma-separated targets: direct, floor, llmux, nginx, smg; or none (only the --url endpoints).")
    var targets = "direct,floor,llmux,nginx,smg"
    @Option(help: "Seconds measured per run (after the warm-up).") var duration = 5.0
    @Option(help: "Seconds of warm-up per run.") var warmup = 1.0
    @Option(help: "Tokens per answer.") var tokens = 16
    @Option(help: "Milliseconds between tokens.") var intervalMs = 20.0
    @Option(help: "First of the ports used (stub, gateway, nginx, smg, smg metrics, floor relay).") var basePort = 18400
    @Option(help: "nginx binary.") var nginx: String?
    @Option(help: "smg binary (pip install smg).") var smg: String?
    @Option(help: "Write all results as JSON here.") var json: String?
    @Option(help: "Runs of every target at each concurrency, in rotating order; the table reports each figure's median over them (added latency: the median of each run's difference to direct in the same repetition).")
    var repeats = 1
    @Option(help: "Event-loop threads of the load client.") var clientThreads = 1
    @Option(name: .customLong("gateway-arg"), parsing: .unconditionalSingleValue, help: "Extra argument for llmux gateway (repeatable).")
    var gatewayArgs: [String] = []
    @Option(name: .customLong("url"), help: "NAME=URL of an endpoint already running, measured too (repeatable).")
    var urls: [String] = []
    @Flag(help: .hidden) var stub = false
    @Flag(help: .hidden) var relay = false
    @Option(help: .hidden) var port = 0
    @Option(help: .hidden) var upstreamPort = 0

    func validate() throws {
        guard repeats >= 1 else { throw ValidationError("--repeats must be at least 1") }
        guard clientThreads >= 1 else { throw ValidationError("--client-threads must be at least 1") }
        guard duration > 0, warmup >= 0 else { throw ValidationError("--duration must be positive and --warmup not negative") }
        let levels = concurrency.split(separator: ",").map { Int($0.trimmingCharacters(in: .whitespaces)) }
        guard !levels.isEmpty, levels.allSatisfy({ ($0 ?? 0) > 0 }) else {
            throw ValidationError("--concurrency takes positive whole numbers separated by commas, got \(concurrency)")
        }
        let known: Set<String> = ["direct", "floor", "llmux", "nginx", "smg"]
        let named = targets.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
        if named != ["none"], let unknown = named.first(where: { !known.contains($0) }) {
            throw ValidationError("--targets takes direct, floor, llmux, nginx and smg separated by commas, or none; got \(unknown)")
        }
        _ = try namedURLs()
    }

    /// `--url NAME=URL` entries, in order.
    private func namedURLs() throws -> [(name: String, url: String)] {
        try urls.map { entry in
            let parts = entry.split(separator: "=", maxSplits: 1).map(String.init)
            guard parts.count == 2, !parts[0].isEmpty, parts[1].hasPrefix("http://") else {
                throw ValidationError("--url takes NAME=http://HOST:PORT, got \(entry)")
            }
            return (parts[0], parts[1])
        }
    }

    /// The load client's settings for one run against `url`.
    private func loadSettings(url: String, concurrency level: Int) -> BenchLoad.Settings {
        var settings = BenchLoad.Settings(url: url)
        settings.concurrency = level
        settings.eventLoops = clientThreads
        settings.warmup = .microseconds(Int64(warmup * 1e6))
        settings.duration = .microseconds(Int64(duration * 1e6))
        return settings
    }

    func run() async throws {
        LLMuxGateway.prepareProcess()
        if stub {
            var settings = BenchStub.Settings()
            settings.port = port
            settings.tokens = tokens
            settings.interval = .microseconds(Int64(intervalMs * 1000))
            try await BenchStub.run(settings)
            return
        }
        if relay {
            try await RelayFloor.run(port: port, upstreamPort: upstreamPort, threads: ProcessInfo.processInfo.activeProcessorCount)
        }
        let levels = concurrency.split(separator: ",").compactMap { Int($0.trimmingCharacters(in: .whitespaces)) }
        let wanted = targets.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
        let me = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath().path
        let stubPort = basePort, gatewayPort = basePort + 1, nginxPort = basePort + 2, smgPort = basePort + 3
        var children = ChildProcesses()
        defer { children.stopAll() }
        let loadBefore = loadAverage()

        if wanted == ["none"] {
            for level in levels {
                for (name, url) in try namedURLs() {
                    let r = try await BenchLoad.run(loadSettings(url: url, concurrency: level))
                    print(String(format: "%@ @%d: TTFB p50 %.2f p99 %.2f ms, total p50 %.2f p99 %.2f ms, %.0f req/s, %d errors", name, level,
                                 BenchLoad.quantile(r.firstByte, 0.5) * 1000, BenchLoad.quantile(r.firstByte, 0.99) * 1000,
                                 BenchLoad.quantile(r.total, 0.5) * 1000, BenchLoad.quantile(r.total, 0.99) * 1000, r.requestsPerSecond, r.errors))
                }
            }
            return
        }
        let stubPID = try children.start(me, ["bench", "gateway", "--stub", "--port", "\(stubPort)", "--tokens", "\(tokens)",
                                              "--interval-ms", "\(intervalMs)"], name: "stub")
        try await waitReady("http://127.0.0.1:\(stubPort)/health", name: "stub")
        try children.checkRunning(stubPID)
        var endpoints: [(name: String, url: String, pid: Int32?)] = []
        if wanted.contains("direct") { endpoints.append(("direct", "http://127.0.0.1:\(stubPort)", stubPID)) }
        if wanted.contains("floor") {
            let floorPort = basePort + 5
            let pid = try children.start(me, ["bench", "gateway", "--relay", "--port", "\(floorPort)", "--upstream-port", "\(stubPort)"], name: "relay floor")
            try await waitReady("http://127.0.0.1:\(floorPort)/health", name: "relay floor")
            try children.checkRunning(pid)
            endpoints.append(("floor", "http://127.0.0.1:\(floorPort)", pid))
        }
        var notes: [String] = []
        if wanted.contains("llmux") {
            let pid = try children.start(me, ["gateway", "--upstream", "bench=http://127.0.0.1:\(stubPort)", "--port", "\(gatewayPort)",
                                              "--policy", "round_robin", "--max-concurrent-per-upstream", "8192"] + gatewayArgs, name: "llmux gateway")
            try await waitReady("http://127.0.0.1:\(gatewayPort)/health", name: "llmux gateway")
            try children.checkRunning(pid)
            endpoints.append(("llmux", "http://127.0.0.1:\(gatewayPort)", pid))
        }
        if wanted.contains("nginx") {
            if let binary = nginx ?? findExecutable("nginx", extra: ["/usr/sbin/nginx"]) {
                let pid = try startNginx(binary, port: nginxPort, upstreamPort: stubPort, children: &children)
                try await waitReady("http://127.0.0.1:\(nginxPort)/health", name: "nginx")
                try children.checkRunning(pid)
                endpoints.append(("nginx", "http://127.0.0.1:\(nginxPort)", pid))
            } else {
                notes.append("nginx: not found (apt-get install -y nginx, or --nginx PATH)")
            }
        }
        if wanted.contains("smg") {
            if let binary = smg ?? findExecutable("smg", extra: []) {
                let pid = try children.start(binary, [
                    "launch", "--worker-urls", "http://127.0.0.1:\(stubPort)", "--policy", "round_robin",
                    "--host", "127.0.0.1", "--port", "\(smgPort)", "--prometheus-port", "\(basePort + 4)",
                    "--log-level", "error", "--max-concurrent-requests", "-1", "--disable-retries",
                    "--disable-circuit-breaker",
                ], name: "smg")
                do {
                    try await waitReady("http://127.0.0.1:\(smgPort)/v1/models", name: "smg", timeout: 60)
                    try children.checkRunning(pid)
                    endpoints.append(("smg", "http://127.0.0.1:\(smgPort)", pid))
                } catch {
                    notes.append("smg: \(error)")
                }
            } else {
                notes.append("smg: not found (pip install smg, or --smg PATH)")
            }
        }

        // Endpoints started by hand (another gateway build or setting), measured beside the others.
        endpoints += try namedURLs().map { ($0.name, $0.url, nil) }
        var rows: [GatewayBenchRow] = []
        for level in levels {
            for repetition in 1...repeats {
                // Each repetition starts one target later, so no target always runs first or
                // right after another one.
                let order = endpoints.indices.map { endpoints[($0 + repetition - 1) % endpoints.count] }
                for endpoint in order {
                    report("bench gateway: \(endpoint.name) at \(level) streams" + (repeats > 1 ? " (repetition \(repetition) of \(repeats))" : "") + " …")
                    let cpuBefore = endpoint.pid.map(cpuSeconds) ?? 0
                    let result = try await BenchLoad.run(loadSettings(url: endpoint.url, concurrency: level))
                    let cpuAfter = endpoint.pid.map(cpuSeconds) ?? 0
                    let requests = Double(result.completedInWindow)
                    rows.append(GatewayBenchRow(
                        target: endpoint.name, concurrency: level, repetition: repetition,
                        firstByteP50Ms: BenchLoad.quantile(result.firstByte, 0.5) * 1000, firstByteP99Ms: BenchLoad.quantile(result.firstByte, 0.99) * 1000,
                        totalP50Ms: BenchLoad.quantile(result.total, 0.5) * 1000, totalP99Ms: BenchLoad.quantile(result.total, 0.99) * 1000,
                        requestsPerSecond: result.requestsPerSecond, requests: result.total.count, errors: result.errors, firstError: result.firstError,
                        proxyCPUMsPerRequest: endpoint.name == "direct" || endpoint.pid == nil || requests == 0 ? nil : (cpuAfter - cpuBefore) * 1000 / Double(result.total.count)))
                    try? await Task.sleep(for: .milliseconds(300))
                }
            }
        }
        let output = GatewayBenchResult(
            command: CommandLine.arguments.joined(separator: " "), gitRevision: gitRevision(), date: ISO8601DateFormatter().string(from: Date()),
            machine: machineDescription(), loadAverageBefore: loadBefore, loadAverageAfter: loadAverage(),
            tokens: tokens, intervalMs: intervalMs, durationSeconds: duration, warmupSeconds: warmup, repeats: repeats,
            clientThreads: clientThreads, notes: notes, rows: rows)
        if let json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            try encoder.encode(output).write(to: URL(fileURLWithPath: json))
        }
        print(output.table())
    }

    private func startNginx(_ binary: String, port: Int, upstreamPort: Int, children: inout ChildProcesses) throws -> Int32 {
        let directory = NSTemporaryDirectory() + "llmux-bench-nginx-\(getpid())"
        try FileManager.default.createDirectory(atPath: directory + "/logs", withIntermediateDirectories: true)
        let conf = """
            daemon off;
            master_process on;
            worker_processes auto;
            worker_rlimit_nofile 65536;
            pid \(directory)/nginx.pid;
            error_log \(directory)/logs/error.log error;
            events { worker_connections 16384; multi_accept on; }
            http {
                access_log off;
                client_body_temp_path \(directory)/body;
                proxy_temp_path \(directory)/proxy;
                upstream stub { server 127.0.0.1:\(upstreamPort); keepalive 2048; }
                server {
                    listen 127.0.0.1:\(port) backlog=4096;
                    location / {
                        proxy_pass http://stub;
                        proxy_http_version 1.1;
                        proxy_set_header Connection "";
                        proxy_buffering off;
                        proxy_request_buffering off;
                        proxy_read_timeout 300s;
                    }
                }
            }
            """
        try conf.write(toFile: directory + "/nginx.conf", atomically: true, encoding: .utf8)
        return try children.start(binary, ["-p", directory, "-c", directory + "/nginx.conf"], name: "nginx")
    }
}

/// Child processes started by the benchmark, stopped at the end.
struct ChildProcesses {
    private var processes: [(Process, String)] = []

    mutating func start(_ path: String, _ arguments: [String], name: String) throws -> Int32 {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: path)
        process.arguments = arguments
        process.standardOutput = FileHandle.nullDevice
        let log = NSTemporaryDirectory() + "llmux-bench-\(name.replacingOccurrences(of: " ", with: "-"))-\(getpid()).log"
        _ = FileManager.default.createFile(atPath: log, contents: nil)
        process.standardError = FileHandle(forWritingAtPath: log)
        try process.run()
        processes.append((process, name))
        return process.processIdentifier
    }

    /// Throws when `pid` (started here) has exited, e.g. because its port was taken.
    func checkRunning(_ pid: Int32) throws {
        guard let (process, name) = processes.first(where: { $0.0.processIdentifier == pid }) else { return }
        if !process.isRunning {
            throw ValidationError("\(name) exited (status \(process.terminationStatus)); is its port taken by a process left from an earlier run?")
        }
    }

    mutating func stopAll() {
        for (process, _) in processes.reversed() where process.isRunning {
            process.terminate()
        }
        for (process, _) in processes.reversed() {
            let deadline = Date().addingTimeInterval(5)
            while process.isRunning && Date() < deadline { usleep(20_000) }
            if process.isRunning { kill(process.processIdentifier, SIGKILL) }
        }
        processes.removeAll()
    }
}

private func waitReady(_ url: String, name: String, timeout: Double = 30) async throws {
    let deadline = Date().addingTimeInterval(timeout)
    while Date() < deadline {
        if await BenchLoad.probe(url) == 200 { return }
        try await Task.sleep(for: .milliseconds(100))
    }
    throw ValidationError("\(name) did not answer 200 on \(url) within \(Int(timeout)) s")
}

private func findExecutable(_ name: String, extra: [String]) -> String? {
    let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin"
    let extraDirectories = extra.map { Substring(($0 as NSString).deletingLastPathComponent) }
    for directory in path.split(separator: ":") + extraDirectories {
        let candidate = "\(directory)/\(name)"
        if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
    }
    return nil
}

/// User + system CPU seconds of a process and its direct children (nginx's workers).
private func cpuSeconds(_ pid: Int32) -> Double {
    func read(_ path: String) -> String? {
        let fd = open(path, O_RDONLY)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var buffer = [UInt8](repeating: 0, count: 4096)
        let n = buffer.withUnsafeMutableBytes { Foundation.read(fd, $0.baseAddress, 4096) }
        return n > 0 ? String(decoding: buffer[0..<n], as: UTF8.self) : nil
    }
    func ticks(_ stat: String) -> (ppid: Int32, ticks: Double)? {
        guard let close = stat.lastIndex(of: ")") else { return nil }
        let fields = stat[stat.index(after: close)...].split(separator: " ")
        guard fields.count > 13, let ppid = Int32(fields[1]), let user = Double(fields[11]), let system = Double(fields[12]) else { return nil }
        return (ppid, user + system)
    }
    var total = 0.0
    var pids = [pid]
    if let children = read("/proc/\(pid)/task/\(pid)/children") {
        pids += children.split(separator: " ").compactMap { Int32($0.trimmingCharacters(in: .whitespacesAndNewlines)) }
    }
    for id in pids {
        if let stat = read("/proc/\(id)/stat"), let parsed = ticks(stat) { total += parsed.ticks }
    }
    return total / Double(sysconf(Int32(_SC_CLK_TCK)))
}

private func loadAverage() -> String {
    ((try? String(contentsOfFile: "/proc/loadavg", encoding: .utf8)) ?? "?").split(separator: " ").prefix(3).joined(separator: " ")
}

private func machineDescription() -> String {
    let cpu = ((try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8)) ?? "").split(separator: "\n")
        .first { $0.hasPrefix("model name") }.map { String($0.split(separator: ":", maxSplits: 1).last ?? "").trimmingCharacters(in: .whitespaces) } ?? "?"
    return "\(ProcessInfo.processInfo.activeProcessorCount) cores (\(cpu)), \(ProcessInfo.processInfo.physicalMemory >> 30) GiB"
}
