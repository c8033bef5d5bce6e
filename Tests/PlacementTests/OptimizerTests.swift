import Testing
@testable import Placement

@Suite struct OptimizerTests {
    /// Three models on one host of four 40 GB GPUs, with linear costs that make sharing matter.
    func problem(rates: [Double]) -> (ClusterSpec, [ModelSpec], CostTable) {
        let cluster = ClusterSpec(hosts: 1, gpusPerHost: 4, memoryPerGPU: 40e9, device: "h100")
        let shapes = ["llama-7b", "llama-7b", "llama-13b"].map { ModelShape.builtIn[$0]! }
        let models = zip(shapes, rates).enumerated().map { ModelSpec(name: "m\($0.offset)", shape: $0.element.0, rate: $0.element.1) }
        var entries: [CostEntry] = []
        for (index, model) in models.enumerated() {
            let scale = index == 2 ? 2.0 : 1.0
            for size in [1, 2, 4] {
                let speed = Double(size) * 0.85
                entries.append(Fixture.linear(model.name, meshSize: size, prefill: (0.004 * scale / speed, 0.00015 * scale / speed),
                                              decode: (0.012 * scale / speed, 0.0002 * scale / speed)))
            }
        }
        return (cluster, models, CostTable(device: "h100", source: .roofline, note: "", entries: entries))
    }

    /// Best Σ estimated SLO goodput over every mesh mix of the host and every assignment.
    func bruteForce(_ estimator: UnitEstimator, models: Int) -> Double {
        var best = 0.0
        for mix in Search.hostSplits(4) {
            var assignment = [Int](repeating: 0, count: models)
            func go(_ i: Int) {
                if i == models {
                    var total = 0.0
                    for (m, size) in mix.enumerated() {
                        let items = assignment.indices.filter { assignment[$0] == m }.map { (model: $0, rate: estimator.models[$0].rate) }
                        if items.isEmpty { continue }
                        guard let e = estimator.estimate(size: size, items: items) else { return }
                        total += e.goodput
                    }
                    best = max(best, total)
                    return
                }
                for m in mix.indices { assignment[i] = m; go(i + 1) }
            }
            go(0)
        }
        return best
    }

    @Test(arguments: [[1.0, 1.0, 1.0], [8.0, 1.0, 0.5], [30.0, 4.0, 2.0], [60.0, 0.5, 6.0]])
    func llmuxFindsTheBruteForceOptimum(rates: [Double]) throws {
        let (cluster, models, table) = problem(rates: rates)
        let optimizer = try PlacementOptimizer(cluster: cluster, models: models, table: table)
        let optimum = bruteForce(optimizer.estimator, models: models.count)
        let plan = try optimizer.plan(.llmux)
        let goodput = plan.units.flatMap(\.models).reduce(0) { $0 + $1.estimatedThroughput * $1.estimatedSLOAttainment }
        // Replicas may do better than any single-copy assignment; never worse.
        #expect(goodput >= optimum * (1 - 1e-6))
        // The heuristic alone (greedy over every mesh mix plus local search) finds it too.
        let heuristic = try PlacementOptimizer(cluster: cluster, models: models, table: table,
                                               settings: PlanSettings(exactSearchLimit: 0)).plan(.llmux)
        let heuristicGoodput = heuristic.units.flatMap(\.models).reduce(0) { $0 + $1.estimatedThroughput * $1.estimatedSLOAttainment }
        #expect(heuristicGoodput >= optimum * (1 - 1e-6))
        #expect(plan.units.allSatisfy { $0.meshSize <= 4 })
        let muxserve = try optimizer.plan(.muxserve)
        let muxGoodput = muxserve.units.flatMap(\.models).reduce(0) { $0 + $1.estimatedThroughput * $1.estimatedSLOAttainment }
        #expect(goodput >= muxGoodput * (1 - 1e-6))
    }

    @Test func everyModelIsServedAndGPUsAreNotOverbooked() throws {
        let (cluster, models, table) = problem(rates: [30, 4, 2])
        for algorithm in PlacementAlgorithm.allCases {
            let plan = try PlacementOptimizer(cluster: cluster, models: models, table: table).plan(algorithm)
            for index in models.indices {
                let share = plan.units.flatMap(\.models).filter { $0.modelIndex == index }.reduce(0) { $0 + $1.trafficShare }
                #expect(abs(share - 1) < 1e-9, "\(algorithm) serves all of model \(index)")
            }
            let gpus = plan.units.flatMap { unit in unit.gpus.map { "\(unit.host):\($0)" } }
            #expect(Set(gpus).count == gpus.count)
            #expect(gpus.count <= cluster.gpuCount)
        }
    }

    @Test func infeasibleInputsAreClearErrors() throws {
        let (_, models, table) = problem(rates: [1, 1, 1])
        let empty = ClusterSpec(hosts: 0, gpusPerHost: 8, memoryPerGPU: 80e9, device: "h100")
        #expect(throws: PlacementError.self) { try PlacementOptimizer(cluster: empty, models: models, table: table) }
        let tiny = ClusterSpec(hosts: 2, gpusPerHost: 1, memoryPerGPU: 16e9, device: "h100")
        do {
            _ = try PlacementOptimizer(cluster: tiny, models: models, table: table)
            Issue.record("a 13 GB model on 16 GB GPUs with a 2 GB reserve should not fit")
        } catch let error as PlacementError {
            #expect(error.description.contains("does not fit the largest mesh"))
        }
    }

    @Test func meshMixesIgnoreWhichHostHoldsWhichMesh() throws {
        let cluster = ClusterSpec(hosts: 4, gpusPerHost: 8, memoryPerGPU: 80e9, device: "h100")
        let models = (0..<19).map { ModelSpec(name: "m\($0)", shape: ModelShape.builtIn["llama-7b"]!, rate: 1) }
        let optimizer = try PlacementOptimizer(cluster: cluster, models: models,
                                               table: Roofline(device: .h100).table(models: [("llama-7b", ModelShape.builtIn["llama-7b"]!)]))
        let search = Search(optimizer: optimizer)
        let mixes = search.meshMixes(limit: 10_000, maxMeshes: 32)!
        // Partitions of 32 into parts 1, 2, 4, 8: 165, against MuxServe's 715 host-split combinations.
        #expect(mixes.count == 165)
        #expect(Search.hostSplits(8).count == 10)
        #expect(Search.binomial(10 + 4 - 1, 4) == 715)
    }
}
