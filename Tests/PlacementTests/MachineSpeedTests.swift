import Testing
@testable import Placement

@Suite struct MachineSpeedTests {
    /// A table whose model `m` decodes one sequence in 1 ms at context 10 and 3 ms at context 110,
    /// with 0.1 ms of engine time per step and 0.05 ms per sequence.
    func table() -> CostTable {
        let entry = CostEntry(model: "m", meshSize: 1, smShares: [1], prefillTokens: [1, 101], prefillSeconds: [[1, 11]],
                              decodeBatches: [1, 11], decodeContexts: [10, 110], decodeSeconds: [[[0.001, 0.003], [0.004, 0.006]]])
        var other = entry
        other.model = "n"
        return CostTable(device: "cpu", source: .measured, note: "", entries: [entry, other], stepOverhead: 0.0001,
                         stepOverheadPerSequence: 0.00005)
    }

    @Test func comparesReferenceStepsWithTheTablesBatchOneDecodePlusEngineTime() {
        // At context 60 the table predicts 2 ms of decode plus 0.15 ms of engine time.
        let check = MachineSpeedCheck(table: table(), decodeStepSeconds: [("m", 0.00215 * 1.2), ("n", 0.00215), ("x", 1)], context: 60)
        #expect(check.models.map(\.model) == ["m", "n"])  // no entry for x
        #expect(abs(check.models[0].predicted - 0.00215) < 1e-12)
        #expect(abs(check.models[0].ratio - 1.2) < 1e-9)
        #expect(abs(check.medianRatio - 1.1) < 1e-9)
        #expect(!check.holds())
        #expect(check.holds(tolerance: 0.1 + 1e-9))
    }

    @Test func holdsWhenTheMachineRanAtTheProfilesSpeed() {
        let check = MachineSpeedCheck(table: table(), decodeStepSeconds: [("m", 0.00215 * 1.04), ("n", 0.00215 * 0.97)], context: 60)
        #expect(check.holds())
        #expect(!MachineSpeedCheck(table: table(), decodeStepSeconds: [], context: 60).holds())  // nothing to compare
    }
}
