import ArgumentParser

/// The `llmux` command line (contract in docs/architecture.md).
@main
struct LLMuxCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "llmux",
        abstract: "Serve many LLMs at once on shared devices.",
        discussion: """
            Start with `llmux generate --demo --prompt "def fibonacci(n):"` (a small built-in model trained on Python code), \
            or point `--model` at a Hugging Face directory (config.json, *.safetensors, tokenizer.json). \
            `llmux make-model` writes random-weight checkpoints of real architectures and sizes.
            """,
        subcommands: [ServeCommand.self, GatewayCommand.self, GenerateCommand.self, PerplexityCommand.self, MakeModelCommand.self, BenchCommand.self,
                      PlanCommand.self, SimulateCommand.self, ProfileCommand.self, GPUCheckCommand.self])
}

/// `llmux bench …`.
struct BenchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench", abstract: "Benchmarks that print their reference measured in the same run.",
        subcommands: [BenchEngineCommand.self, BenchMuxCommand.self, BenchPlacementCommand.self, BenchGatewayCommand.self])
}
