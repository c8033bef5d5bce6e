import ArgumentParser
import Compute

/// The options of commands that run one checkpoint: `--model PATH` or `--demo`, and the device.
struct ModelChoice: ParsableArguments {
    @Option(help: "Hugging Face checkpoint directory (config.json, *.safetensors, tokenizer.json).")
    var model: String?
    @Flag(help: "Use the built-in demo model (a small Llama trained on Python code, Models/demo-python) instead of --model.")
    var demo = false
    @Option(help: "CPU threads for the kernels (default: all cores).")
    var threads: Int?
    @Option(help: "Device: cpu or cuda[:N].")
    var device: DeviceChoice = .cpu

    func validate() throws {
        if (model == nil) == !demo { throw ValidationError("give exactly one of --model PATH or --demo") }
    }

    /// The checkpoint directory chosen.
    func path() throws -> String { demo ? try demoModelPath() : model! }

    /// The backend of the chosen device (`quiet`: no start-up line).
    func makeBackend(quiet: Bool) throws -> any ComputeBackend { try device.makeBackend(threads: threads, quiet: quiet) }
}
