import Foundation

/// One stored tensor of a module: a trainable parameter or a buffer (running statistics, counters).
protocol TensorSlot: AnyObject {
    /// The tensor, or nil for an absent optional one (a layer built without bias).
    var tensor: Tensor? { get }
    /// Replaces the tensor (device moves); parameters stay trainable.
    func replace(_ t: Tensor) throws
    /// An explicit PyTorch key; nil derives it from the property name.
    var key: String? { get }
    /// True for buffers, false for trainable parameters.
    var isBuffer: Bool { get }
}

/// Marks a module's stored tensor as a trainable parameter (`requires_grad`), found by traversal.
@propertyWrapper
public final class Param<Value>: TensorSlot {
    /// The parameter (`Tensor` or `Tensor?`).
    public var wrappedValue: Value
    let key: String?

    /// Wraps `wrappedValue`, turning on its gradient; `key` overrides the derived PyTorch name.
    public init(wrappedValue: Value, key: String? = nil) {
        self.wrappedValue = wrappedValue
        self.key = key
        (wrappedValue as? Tensor)?.requiresGrad = true
    }

    var tensor: Tensor? { wrappedValue as? Tensor }
    var isBuffer: Bool { false }
    func replace(_ t: Tensor) throws {
        t.requiresGrad = true
        guard let v = t as? Value else { throw TrainError(.shape, "cannot store a tensor in \(Value.self)") }
        wrappedValue = v
    }
}

/// Marks a module's stored tensor as a buffer: saved and moved with the module, never trained.
@propertyWrapper
public final class Buffer<Value>: TensorSlot {
    /// The buffer (`Tensor` or `Tensor?`).
    public var wrappedValue: Value
    let key: String?

    /// Wraps `wrappedValue`; `key` overrides the derived PyTorch name.
    public init(wrappedValue: Value, key: String? = nil) {
        self.wrappedValue = wrappedValue
        self.key = key
    }

    var tensor: Tensor? { wrappedValue as? Tensor }
    var isBuffer: Bool { true }
    func replace(_ t: Tensor) throws {
        guard let v = t as? Value else { throw TrainError(.shape, "cannot store a tensor in \(Value.self)") }
        wrappedValue = v
    }
}

/// A layer mapping one tensor to one tensor.
public protocol UnaryLayer: Module {
    /// Applies the layer.
    func callAsFunction(_ x: Tensor) throws -> Tensor
}

/// The base of every layer and model, in the style of mlx-swift's `Module`: parameters, buffers and
/// children are found by reflection over stored properties and named as PyTorch names them
/// (`blocks.0.dw_bn.running_mean`: camelCase properties become snake_case, arrays index their items).
/// Hyperparameters are plain `let`s and stay out of the traversal.
open class Module {
    /// Training or evaluation behaviour (dropout, batch statistics); set with `train()` / `eval()`.
    public private(set) var training = true

    /// A module in training mode.
    public init() {}

    /// Direct submodules with their keys; arrays of modules give `name.0`, `name.1`, ...
    open func namedChildren() -> [(String, Module)] {
        var out: [(String, Module)] = []
        forEachProperty { label, value in
            if let m = value as? Module {
                out.append((label, m))
            } else if let ms = value as? [Module] {
                for (i, m) in ms.enumerated() { out.append(("\(label).\(i)", m)) }
            }
        }
        return out
    }

    /// Own tensors (not children's) with their keys.
    func localSlots() -> [(String, TensorSlot)] {
        var out: [(String, TensorSlot)] = []
        forEachProperty { label, value in
            if let slot = value as? TensorSlot { out.append((slot.key ?? label, slot)) }
        }
        return out
    }

    private func forEachProperty(_ body: (String, Any) -> Void) {
        var mirror: Mirror? = Mirror(reflecting: self)
        var chain: [Mirror] = []
        while let m = mirror { chain.append(m); mirror = m.superclassMirror }
        for m in chain.reversed() {
            for child in m.children {
                guard let label = child.label else { continue }
                body(Module.pytorchKey(label), child.value)
            }
        }
    }

    /// `_runningMean` → `running_mean` (a property wrapper's storage has a leading underscore).
    static func pytorchKey(_ label: String) -> String {
        var out = ""
        for ch in label.drop(while: { $0 == "_" }) {
            if ch.isUppercase { out += "_" + ch.lowercased() } else { out.append(ch) }
        }
        return out
    }

    /// Every tensor slot in the tree, depth first, with dotted names.
    func allSlots(prefix: String = "") -> [(String, TensorSlot)] {
        var out = localSlots().map { (prefix + $0.0, $0.1) }
        for (name, child) in namedChildren() { out += child.allSlots(prefix: prefix + name + ".") }
        return out
    }

    /// Trainable parameters with their PyTorch-style dotted names.
    public func namedParameters() -> [(String, Tensor)] {
        allSlots().compactMap { name, slot in slot.isBuffer ? nil : slot.tensor.map { (name, $0) } }
    }

    /// Buffers (running statistics, counters) with their dotted names.
    public func namedBuffers() -> [(String, Tensor)] {
        allSlots().compactMap { name, slot in slot.isBuffer ? slot.tensor.map { (name, $0) } : nil }
    }

    /// Trainable parameters, in traversal order.
    public func parameters() -> [Tensor] { namedParameters().map(\.1) }

    /// Parameters and buffers by name: what a checkpoint stores (PyTorch's `state_dict`).
    public func stateDict() -> [String: Tensor] {
        Dictionary(allSlots().compactMap { n, s in s.tensor.map { (n, $0) } }, uniquingKeysWith: { a, _ in a })
    }

    /// The number of trainable scalars.
    public var parameterCount: Int { parameters().reduce(0) { $0 + $1.count } }

    /// Switches this module and all below it to training (`true`) or evaluation behaviour.
    public func train(_ on: Bool = true) {
        training = on
        for (_, child) in namedChildren() { child.train(on) }
    }

    /// Switches to evaluation behaviour (`train(false)`).
    public func eval() { train(false) }

    /// The one way to change weights: copies `values` into the matching tensors in place (so optimisers
    /// keep their references). `strict` demands that the names match exactly, in both directions.
    public func update(parameters values: [String: Tensor], strict: Bool = true) throws {
        let slots = allSlots().filter { $0.1.tensor != nil }
        if strict {
            let mine = Set(slots.map(\.0)), theirs = Set(values.keys)
            let missing = mine.subtracting(theirs).sorted(), unexpected = theirs.subtracting(mine).sorted()
            if !missing.isEmpty || !unexpected.isEmpty {
                throw TrainError(.shape, "state does not match the model: missing \(missing.prefix(8)), unexpected \(unexpected.prefix(8))")
            }
        }
        try Torch.noGrad {
            for (name, slot) in slots {
                guard let source = values[name], let target = slot.tensor else { continue }
                guard source.shape == target.shape else {
                    throw TrainError(.shape, "\(name): shape \(source.shape) in the state, \(target.shape) in the model")
                }
                try target.copy_(source)
            }
        }
    }

    /// Moves (and optionally converts floating-point) parameters and buffers; call before making an optimiser.
    public func move(to device: Device, dtype: DType? = nil) throws {
        for (_, slot) in allSlots() {
            guard let t = slot.tensor else { continue }
            let target = t.dtype.isFloatingPoint ? dtype : nil
            if t.device == device && (target == nil || target == t.dtype) { continue }
            try slot.replace(Torch.noGrad { try t.to(target, device: device) })
        }
    }

    /// Stores 5-D weights (convolutions) in channels-last-3d memory order, which some CPU kernels prefer.
    public func useChannelsLast() throws {
        for (_, slot) in allSlots() {
            guard let t = slot.tensor, t.rank == 5 else { continue }
            try slot.replace(Torch.noGrad { try t.contiguous(channelsLast: true) })
        }
    }
}
