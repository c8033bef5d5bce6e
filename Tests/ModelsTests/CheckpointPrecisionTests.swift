import Compute
import LLMuxCore
import Models
import Testing

/// `Checkpoint.roundingNote`: the line a user sees when the backend would round a checkpoint's
/// weights (an f32 checkpoint on the bf16 CUDA backend ran in bf16 unnoticed in round 11).
@Suite struct CheckpointPrecisionTests {
    func checkpoint(_ dtype: DType, in dir: TemporaryDirectory) throws -> Checkpoint {
        try ModelMaker.write(MakeModelOptions(config: ModelPreset.all["tiny-llama"]!.config, dtype: dtype, seed: 1), to: dir.url, progress: nil)
        return try Checkpoint(directory: dir.url)
    }

    @Test(arguments: [(DType.f32, DType.bf16, true), (.f16, .bf16, true), (.bf16, .bf16, false), (.f32, .f32, false), (.bf16, .f32, false)])
    func notesOnlyWeightsThatTheBackendRounds(stored: DType, computed: DType, rounds: Bool) throws {
        let dir = try TemporaryDirectory()
        defer { dir.cleanup() }
        let checkpoint = try checkpoint(stored, in: dir)
        #expect(checkpoint.storedWeightDType == stored)
        let note = checkpoint.roundingNote(model: ModelID("m"), computedIn: computed, deviceName: "cuda:0")
        #expect((note != nil) == rounds)
        if let note {
            #expect(note.contains("m stores \(stored.rawValue.lowercased()) weights") && note.contains("LLMUX_CUDA_PRECISION=f32"))
        }
    }
}
