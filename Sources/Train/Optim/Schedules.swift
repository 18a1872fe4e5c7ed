import Foundation

/// A learning-rate schedule: the rate for each optimiser step, computed in Swift. Its state is just the
/// step index, which checkpoints store.
public protocol LRSchedule {
    /// Learning rate at `step` (0-based).
    func learningRate(at step: Int) -> Double
}

/// Linear warm-up from 0 to `peak` over `warmup` steps, then cosine decay to `floor` at `total`.
public struct WarmupCosine: LRSchedule {
    /// Peak rate, warm-up steps, total steps, final rate.
    public var peak: Double, warmup: Int, total: Int, floor: Double
    /// A warm-up + cosine schedule.
    public init(peak: Double, warmup: Int, total: Int, floor: Double = 0) {
        self.peak = peak
        self.warmup = warmup
        self.total = total
        self.floor = floor
    }
    /// The rate at `step` (0-based).
    public func learningRate(at step: Int) -> Double {
        if step < warmup { return peak * Double(step + 1) / Double(warmup) }
        let t = min(1, Double(step - warmup) / Double(max(1, total - warmup)))
        return floor + (peak - floor) * 0.5 * (1 + cos(Double.pi * t))
    }
}

/// The one-cycle policy (`torch.optim.lr_scheduler.OneCycleLR`, cosine annealing): from peak/`divFactor`
/// up to `peak` over `pctStart` of `total`, then down to peak/(divFactor·finalDivFactor).
public struct OneCycle: LRSchedule {
    /// Peak rate, total steps, rising fraction, start and end divisors.
    public var peak: Double, total: Int, pctStart: Double, divFactor: Double, finalDivFactor: Double
    /// A one-cycle schedule with OneCycleLR's defaults.
    public init(peak: Double, total: Int, pctStart: Double = 0.3, divFactor: Double = 25, finalDivFactor: Double = 1e4) {
        self.peak = peak
        self.total = total
        self.pctStart = pctStart
        self.divFactor = divFactor
        self.finalDivFactor = finalDivFactor
    }
    /// The rate at `step` (0-based).
    public func learningRate(at step: Int) -> Double {
        let initial = peak / divFactor, final = initial / finalDivFactor
        let up = pctStart * Double(total) - 1, down = Double(total) - 1
        let s = Double(step)
        func anneal(_ a: Double, _ b: Double, _ t: Double) -> Double { b + (a - b) / 2 * (1 + cos(Double.pi * t)) }
        if s <= up { return anneal(initial, peak, s / up) }
        return anneal(peak, final, min(1, (s - up) / (down - up)))
    }
}

/// Multiplies the rate by `gamma` every `every` steps (`StepLR`).
public struct StepDecay: LRSchedule {
    /// Initial rate, steps between decays, decay factor.
    public var base: Double, every: Int, gamma: Double
    /// A step-decay schedule.
    public init(base: Double, every: Int, gamma: Double = 0.1) {
        self.base = base
        self.every = every
        self.gamma = gamma
    }
    /// The rate at `step` (0-based).
    public func learningRate(at step: Int) -> Double { base * pow(gamma, Double(step / every)) }
}
