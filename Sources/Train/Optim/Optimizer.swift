import CTorch
import Foundation

/// Updates parameters from their gradients; `state` makes it resumable from a checkpoint.
public protocol Optimizer: AnyObject {
    /// Parameters with their names (the names key the saved state).
    var parameters: [(String, Tensor)] { get }
    /// Learning rate used by the next `step()` (a schedule sets it).
    var learningRate: Double { get set }
    /// Applies one update from the accumulated gradients.
    func step() throws
    /// Per-parameter state tensors keyed `kind/parameter` (e.g. `exp_avg/head.weight`), plus the step count.
    func state() -> (tensors: [String: Tensor], steps: Int)
    /// Restores what `state()` returned.
    func load(tensors: [String: Tensor], steps: Int) throws
}

extension Optimizer {
    /// Drops every parameter's gradient (PyTorch's `zero_grad(set_to_none=True)`).
    public func zeroGrad() { for (_, p) in parameters { p.clearGrad() } }

    /// Copies saved state tensors into `slots` (same names, same shapes), failing on anything missing.
    func restore(_ slots: [String: Tensor], from saved: [String: Tensor]) throws {
        try Torch.noGrad {
            for (key, target) in slots {
                guard let source = saved[key] else { throw TrainError(.shape, "optimizer state lacks \(key)") }
                guard source.shape == target.shape else {
                    throw TrainError(.shape, "optimizer state \(key): shape \(source.shape), parameter \(target.shape)")
                }
                try target.copy_(source)
            }
        }
    }
}

/// Zeros shaped, typed, placed and laid out (channels-last or not) like `p`, as `torch.zeros_like`.
func zerosLike(_ p: Tensor) throws -> Tensor {
    let t = try Torch.noGrad { try p.detach().clone() }
    try t.fill_(0)
    return t
}

/// Scales all gradients so that their joint L2 norm is at most `maxNorm` (`clip_grad_norm_`, with the
/// same foreach kernels PyTorch uses); returns the norm before clipping.
@discardableResult
public func clipGradNorm(_ parameters: [Tensor], maxNorm: Double) throws -> Double {
    let handles: [at_tensor?] = parameters.map(\.handle)
    var total = 0.0
    withExtendedLifetime(parameters) { at_clip_grad_norm(handles, Int32(handles.count), maxNorm, &total) }
    try Torch.check()
    return total
}

/// AdamW (Loshchilov & Hutter) with decoupled weight decay, step for step as `torch.optim.AdamW`.
public final class AdamW: Optimizer {
    /// The parameters being optimised, with their names.
    public let parameters: [(String, Tensor)]
    /// Learning rate of the next step (a schedule may set it).
    public var learningRate: Double
    /// β₁, β₂, ε and the decoupled weight-decay factor.
    public let beta1: Double, beta2: Double, eps: Double, weightDecay: Double
    private var expAvg: [Tensor], expAvgSq: [Tensor]
    private var steps = 0

    /// An optimiser over `parameters` (names from `Module.namedParameters()`).
    public init(_ parameters: [(String, Tensor)], learningRate: Double = 1e-3, betas: (Double, Double) = (0.9, 0.999),
                eps: Double = 1e-8, weightDecay: Double = 0.01) throws {
        self.parameters = parameters
        self.learningRate = learningRate
        (beta1, beta2) = betas
        self.eps = eps
        self.weightDecay = weightDecay
        expAvg = try parameters.map { try zerosLike($0.1) }
        expAvgSq = try parameters.map { try zerosLike($0.1) }
    }

    /// Applies one update from the accumulated gradients (skipping parameters without one).
    public func step() throws {
        steps += 1
        let bias1 = 1 - Foundation.pow(beta1, Double(steps)), bias2 = 1 - Foundation.pow(beta2, Double(steps))
        try Torch.noGrad {
            for (i, (_, p)) in parameters.enumerated() {
                guard let g = p.grad else { continue }
                if weightDecay != 0 { try p.mul_(1 - learningRate * weightDecay) }
                try expAvg[i].lerp_(g, weight: 1 - beta1)
                try expAvgSq[i].mul_(beta2)
                try expAvgSq[i].addcmul_(g, g, value: 1 - beta2)
                let denom = try expAvgSq[i].sqrt() / bias2.squareRoot()
                try denom.add_(eps)
                try p.addcdiv_(expAvg[i], denom, value: -learningRate / bias1)
            }
        }
    }

    /// Moment buffers by `kind/parameter` name, and the step count.
    public func state() -> (tensors: [String: Tensor], steps: Int) {
        var out: [String: Tensor] = [:]
        for (i, (name, _)) in parameters.enumerated() {
            out["exp_avg/\(name)"] = expAvg[i]
            out["exp_avg_sq/\(name)"] = expAvgSq[i]
        }
        return (out, steps)
    }

    /// Restores what `state()` returned (same parameter names and shapes).
    public func load(tensors: [String: Tensor], steps: Int) throws {
        try restore(state().tensors, from: tensors)
        self.steps = steps
    }
}

/// Stochastic gradient descent with momentum, Nesterov and L2 weight decay, as `torch.optim.SGD`.
public final class SGD: Optimizer {
    /// The parameters being optimised, with their names.
    public let parameters: [(String, Tensor)]
    /// Learning rate of the next step (a schedule may set it).
    public var learningRate: Double
    /// Momentum factor, L2 weight decay (added to the gradient), Nesterov look-ahead.
    public let momentum: Double, weightDecay: Double, nesterov: Bool
    private var buffers: [Tensor]
    private var steps = 0

    /// An optimiser over `parameters`; Nesterov needs momentum > 0.
    public init(_ parameters: [(String, Tensor)], learningRate: Double, momentum: Double = 0, weightDecay: Double = 0,
                nesterov: Bool = false) throws {
        guard !nesterov || momentum > 0 else { throw TrainError(.configuration, "SGD: Nesterov momentum needs momentum > 0") }
        self.parameters = parameters
        self.learningRate = learningRate
        self.momentum = momentum
        self.weightDecay = weightDecay
        self.nesterov = nesterov
        buffers = try parameters.map { try zerosLike($0.1) }
    }

    /// Applies one update from the accumulated gradients (skipping parameters without one).
    public func step() throws {
        try Torch.noGrad {
            for (i, (_, p)) in parameters.enumerated() {
                guard var d = p.grad else { continue }
                if weightDecay != 0 { d = try d + p * weightDecay }
                if momentum != 0 {
                    let buf = buffers[i]
                    // PyTorch seeds the buffer with the first gradient, not with (1 − dampening)·g.
                    if steps == 0 { try buf.copy_(d) } else { try buf.mul_(momentum); try buf.add_(d) }
                    d = nesterov ? try d + buf * momentum : buf
                }
                try p.add_(d, alpha: -learningRate)
            }
        }
        steps += 1
    }

    /// Moment buffers by `kind/parameter` name, and the step count.
    public func state() -> (tensors: [String: Tensor], steps: Int) {
        var out: [String: Tensor] = [:]
        for (i, (name, _)) in parameters.enumerated() { out["momentum_buffer/\(name)"] = buffers[i] }
        return (out, steps)
    }

    /// Restores what `state()` returned (same parameter names and shapes).
    public func load(tensors: [String: Tensor], steps: Int) throws {
        try restore(state().tensors, from: tensors)
        self.steps = steps
    }
}
