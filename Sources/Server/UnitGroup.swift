import Engine
import LLMuxCore

/// Several units behind one `GenerationBackend`: each request goes to the unit that holds its
/// model, load figures are merged, and shutdown drains every unit.
public final class UnitGroup: GenerationBackend {
    private let units: [any GenerationBackend]
    private let unitByModel: [ModelID: Int]

    /// A group; `modelsByUnit[i]` are the models unit `i` serves (each model in exactly one unit).
    public init(units: [any GenerationBackend], modelsByUnit: [[ModelID]]) {
        precondition(units.count == modelsByUnit.count)
        self.units = units
        var index: [ModelID: Int] = [:]
        for (unit, models) in modelsByUnit.enumerated() {
            for model in models {
                precondition(index[model] == nil, "model \(model) is in two units")
                index[model] = unit
            }
        }
        self.unitByModel = index
    }

    /// Forwards the request to the unit that serves its model; an unknown model gets a stream that fails at once.
    public func submit(_ request: GenerationRequest) -> AsyncThrowingStream<SequenceEvent, Error> {
        guard let unit = unitByModel[request.model] else {
            return AsyncThrowingStream { $0.finish(throwing: EngineStreamError.rejected(.unknownModel(request.model.name))) }
        }
        return units[unit].submit(request)
    }

    /// Every unit's figures summed by model (each model is in one unit), and total pages summed over units.
    public var stats: UnitStats {
        var merged = UnitStats()
        for unit in units {
            let stats = unit.stats
            merged.running.merge(stats.running) { $0 + $1 }
            merged.waiting.merge(stats.waiting) { $0 + $1 }
            merged.usedPages.merge(stats.usedPages) { $0 + $1 }
            merged.poolPages.merge(stats.poolPages) { $0 + $1 }
            merged.preemptions.merge(stats.preemptions) { $0 + $1 }
            merged.pageWaits.merge(stats.pageWaits) { $0 + $1 }
            merged.totalPages += stats.totalPages
        }
        return merged
    }

    /// Shuts the units down one after another, each waiting for its running requests.
    public func shutdown() {
        for unit in units { unit.shutdown() }
    }
}
