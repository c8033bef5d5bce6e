import Foundation

/// LLMux's own placement search: popular models replicated by their rate; every mesh mix of the
/// cluster when there are few (every assignment on small instances, else greedy packing by SLO
/// goodput in two orders), a hill climb from the need-matched mix when there are many; then
/// local moves of single models between meshes.
extension Search {
    /// Splits popular models into replicas: as many as their rate needs at 80 % of what one copy
    /// serves within the SLO on its smallest mesh, within the GPUs there are.
    func replicate() -> [Item] {
        var counts = optimizer.models.indices.map { _ in 1 }
        let base = baseItems()
        for item in base where item.rate > 0 {
            let capacity = soloCapacity(item.model, size: item.minMesh)
            if capacity > 0 && item.rate > 0.8 * capacity {
                counts[item.model] = min(cluster.gpuCount / item.minMesh, Int((item.rate / (0.8 * capacity)).rounded(.up)))
            }
        }
        // Never more replica GPUs than the cluster has.
        while zip(base, counts).reduce(0, { $0 + $1.0.minMesh * $1.1 }) > cluster.gpuCount,
              let most = counts.indices.filter({ counts[$0] > 1 }).max(by: { counts[$0] < counts[$1] }) {
            counts[most] -= 1
        }
        var items: [Item] = []
        for item in base {
            let copies = counts[item.model]
            for r in 0..<copies {
                let rate = item.rate / Double(copies)
                items.append(Item(model: item.model, replica: r, share: 1 / Double(copies), rate: rate, minMesh: item.minMesh,
                                  need: need(item.model, rate: rate, size: item.minMesh)))
            }
        }
        return items
    }

    /// Largest rate one copy serves alone on `size` GPUs with ≥ 95 % estimated SLO attainment.
    func soloCapacity(_ model: Int, size: Int) -> Double {
        func ok(_ rate: Double) -> Bool {
            guard let e = estimator.estimate(size: size, items: [(model: model, rate: rate)]) else { return false }
            return e.models[0].throughput >= 0.99 * rate && e.models[0].sloAttainment >= 0.95
        }
        var high = 1.0
        while ok(high) && high < 1e5 { high *= 2 }
        var low = 0.0
        for _ in 0..<16 {
            let mid = (low + high) / 2
            if ok(mid) { low = mid } else { high = mid }
        }
        return low
    }

    /// Every multiset of mesh sizes that fills the cluster (identical hosts: which host holds
    /// which mesh does not matter), when there are at most `limit`; else nil.
    func meshMixes(limit: Int, maxMeshes: Int) -> [[Int]]? {
        let sizes = cluster.meshSizes.sorted(by: >)
        var result: [[Int]] = []
        var overflow = false
        func go(_ k: Int, _ left: Int, _ mix: [Int]) {
            if overflow { return }
            if mix.count > maxMeshes { return }
            if k == sizes.count - 1 {
                let full = mix + [Int](repeating: sizes[k], count: left / sizes[k])
                if left % sizes[k] == 0 && full.count <= maxMeshes {
                    result.append(full)
                    if result.count > limit { overflow = true }
                }
                return
            }
            var count = left / sizes[k]
            while count >= 0 {
                go(k + 1, left - count * sizes[k], mix + [Int](repeating: sizes[k], count: count))
                count -= 1
            }
        }
        go(0, cluster.gpuCount, [])
        if overflow { return nil }
        return result.filter { PlacementOptimizer.assignGPUs(sizes: $0, hosts: cluster.hosts, perHost: cluster.gpusPerHost) != nil }
    }

    /// A mesh mix matched to the items' needs: each item asks for GPUs in proportion to its need
    /// (at least its smallest mesh), rounded to mesh sizes, then scaled to the cluster.
    func needMatchedMix(_ items: [Item]) -> [Int] {
        let sizes = cluster.meshSizes
        let totalNeed = items.reduce(0) { $0 + max($1.need, 1e-9) }
        var mix: [Int] = []
        var used = 0
        for item in items.sorted(by: { $0.need > $1.need }) {
            let want = max(Double(item.minMesh), Double(cluster.gpuCount) * max(item.need, 1e-9) / totalNeed)
            let size = sizes.last { Double($0) <= want } ?? item.minMesh
            let chosen = max(size, item.minMesh)
            if used + chosen > cluster.gpuCount { continue }
            mix.append(chosen)
            used += chosen
        }
        // Fill what is left with 1-GPU meshes merged upwards where possible.
        var left = cluster.gpuCount - used
        for size in sizes.sorted(by: >) where left > 0 {
            while left >= size { mix.append(size); left -= size }
        }
        return mix
    }

    /// Neighbouring mixes: split one mesh in two halves, or merge two equal meshes.
    func neighbours(_ mix: [Int], maxMeshes: Int) -> [[Int]] {
        var result: [[Int]] = []
        for size in Set(mix) {
            if size > 1 && mix.count + 1 <= maxMeshes {
                var next = mix
                next.remove(at: next.firstIndex(of: size)!)
                next += [size / 2, size / 2]
                result.append(next)
            }
            if size * 2 <= cluster.gpusPerHost && mix.filter({ $0 == size }).count >= 2 {
                var next = mix
                next.remove(at: next.firstIndex(of: size)!)
                next.remove(at: next.firstIndex(of: size)!)
                next.append(size * 2)
                result.append(next)
            }
        }
        return result.filter { PlacementOptimizer.assignGPUs(sizes: $0.sorted(by: >), hosts: cluster.hosts, perHost: cluster.gpusPerHost) != nil }
    }

    /// Searches with popular models replicated and without, and keeps the better layout.
    mutating func llmux() throws -> Layout {
        let replicated = replicate()
        let single = baseItems()
        let budget = optimizer.settings.timeBudget
        var layouts: [Layout] = []
        if replicated.count != single.count, let layout = try? llmux(items: replicated, budget: budget / 2) { layouts.append(layout) }
        if let layout = try? llmux(items: single, budget: layouts.isEmpty ? budget : budget / 2) { layouts.append(layout) }
        // Where MuxServe's enumeration is cheap, its plan is one more candidate, judged by SLO goodput.
        if Self.binomial(Self.hostSplits(cluster.gpusPerHost).count + cluster.hosts - 1, cluster.hosts) <= 1000 {
            cache = [:]
            if let layout = try? muxserve() { layouts.append(layout) }
        }
        guard let best = layouts.max(by: { total($0, goodput) < total($1, goodput) }) else { throw infeasible() }
        return best
    }

    mutating func llmux(items: [Item], budget: Double) throws -> Layout {
        let start = Date()
        cache = [:]  // keys are item indices, which differ between item sets
        let objective = goodput
        let order = items.indices.sorted { (items[$0].minMesh, items[$0].need) > (items[$1].minMesh, items[$1].need) }
        let limit: Int? = items.count > 64 ? 12 : nil
        var best: Layout?
        var bestScore = -1.0
        var seen = Set<[Int]>()
        func consider(_ sizes: [Int], _ search: inout Search) -> Bool {
            let key = sizes.sorted(by: >)
            guard seen.insert(key).inserted else { return false }
            guard let layout = search.greedy(items: items, order: order, sizes: key, objective: objective, candidateLimit: limit) else { return false }
            let score = search.total(layout, objective)
            if score > bestScore * (1 + 1e-9) + 1e-12 { best = layout; bestScore = score; return true }
            return false
        }
        if let mixes = meshMixes(limit: 2000, maxMeshes: items.count) {
            // Few mixes: each one, and on small instances every assignment (exact).
            let assignments = mixes.reduce(0.0) { $0 + pow(Double($1.count), Double(items.count)) }
            if assignments <= Double(optimizer.settings.exactSearchLimit) {
                for mix in mixes { exhaustive(items: items, sizes: mix, best: &best, bestScore: &bestScore) }
            }
            // MuxServe's order (computation need, largest first) as a second greedy order.
            let scale = optimizer.models.map { (Double($0.shape.parameterCount) / 6.7e9).rounded() }
            let second = items.indices.sorted {
                (items[$0].rate * scale[items[$0].model], scale[items[$0].model]) > (items[$1].rate * scale[items[$1].model], scale[items[$1].model])
            }
            for mix in mixes {
                _ = consider(mix, &self)
                if let layout = greedy(items: items, order: second, sizes: mix.sorted(by: >), objective: objective, candidateLimit: limit) {
                    let score = total(layout, objective)
                    if score > bestScore * (1 + 1e-9) + 1e-12 { best = layout; bestScore = score }
                }
                if Date().timeIntervalSince(start) > budget { break }
            }
        } else {
            // Too many mixes to try them all: hill-climb from the need-matched mix.
            var current = needMatchedMix(items)
            _ = consider(current, &self)
            var improved = true
            while improved && Date().timeIntervalSince(start) < budget {
                improved = false
                for next in neighbours(current, maxMeshes: items.count) {
                    if consider(next, &self) { current = next; improved = true; break }
                    if Date().timeIntervalSince(start) > budget { break }
                }
            }
        }
        guard var layout = best else { throw infeasible() }
        improve(&layout, deadline: start.addingTimeInterval(budget * 1.5))
        return layout
    }

    /// Every assignment of `items` to meshes of `sizes` (small instances only).
    mutating func exhaustive(items: [Item], sizes: [Int], best: inout Layout?, bestScore: inout Double) {
        candidates += 1
        var assignment = [Int](repeating: 0, count: items.count)
        func go(_ i: Int, _ search: inout Search) {
            if i == items.count {
                var meshes = sizes.map { Mesh(size: $0) }
                for (item, m) in assignment.enumerated() {
                    if meshes[m].size < items[item].minMesh { return }
                    if meshes[m].items.contains(where: { items[$0].model == items[item].model }) { return }
                    meshes[m].items.append(item)
                }
                var score = 0.0
                for m in meshes.indices where !meshes[m].items.isEmpty {
                    guard let e = search.estimate(size: meshes[m].size, items: meshes[m].items, in: items) else { return }
                    meshes[m].estimate = e
                    score += search.goodput.score(e)
                }
                if score > bestScore * (1 + 1e-9) + 1e-12 { best = Layout(items: items, meshes: meshes); bestScore = score }
                return
            }
            for m in sizes.indices { assignment[i] = m; go(i + 1, &search) }
        }
        go(0, &self)
    }

    /// Local search: move single items between meshes while the SLO goodput grows.
    mutating func improve(_ layout: inout Layout, deadline: Date) {
        let objective = goodput
        for _ in 0..<3 {
            var moved = false
            for source in layout.meshes.indices {
                for item in layout.meshes[source].items {
                    if Date() > deadline { return }
                    let remaining = layout.meshes[source].items.filter { $0 != item }
                    let sourceAfter = remaining.isEmpty ? nil : estimate(size: layout.meshes[source].size, items: remaining, in: layout.items)
                    if !remaining.isEmpty && sourceAfter == nil { continue }
                    let before = objective.score(layout.meshes[source].estimate)
                    var best: (Int, UnitEstimate, Double)?
                    // Large layouts: only the least loaded meshes are tried as targets.
                    var targets = Array(layout.meshes.indices)
                    if targets.count > 64 {
                        targets.sort { (layout.meshes[$0].estimate?.utilization ?? 0) < (layout.meshes[$1].estimate?.utilization ?? 0) }
                        targets = Array(targets.prefix(16))
                    }
                    for target in targets where target != source && layout.meshes[target].size >= layout.items[item].minMesh {
                        let mesh = layout.meshes[target]
                        if mesh.items.contains(where: { layout.items[$0].model == layout.items[item].model }) { continue }
                        guard let after = estimate(size: mesh.size, items: mesh.items + [item], in: layout.items) else { continue }
                        let delta = objective.score(sourceAfter) + objective.score(after) - before - objective.score(mesh.estimate)
                        if delta > 1e-6 * max(1, before) && delta > (best?.2 ?? 0) { best = (target, after, delta) }
                    }
                    if let (target, after, _) = best {
                        layout.meshes[source].items = remaining
                        layout.meshes[source].estimate = sourceAfter
                        layout.meshes[target].items.append(item)
                        layout.meshes[target].estimate = after
                        moved = true
                        break
                    }
                }
            }
            if !moved { return }
        }
    }
}
