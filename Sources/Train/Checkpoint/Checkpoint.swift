import Foundation

/// A resumable training state in one safetensors file. Model tensors keep their PyTorch names (so
/// `safetensors.torch.load_file` + `load_state_dict` reads them after dropping names containing "/");
/// optimiser state lives under `optimizer/<kind>/<param>`, the CPU generator under `rng/cpu` and each visible
/// GPU's generator under `rng/cuda:N` (only where libtorch has CUDA), other
/// state (the EMA of the weights) under `<prefix>/<name>`, and epoch, steps and schedule position in the metadata.
public struct Checkpoint {
    /// Epochs completed and optimiser steps taken (the schedule's position).
    public var epoch: Int, step: Int
    /// Free-form strings stored alongside (model name, config).
    public var info: [String: String]
    /// Further tensors saved with the model, keyed `prefix/name` (the prefix is not "optimizer" or "rng").
    public var extra: [String: Tensor]

    /// A record of `epoch` epochs and `step` optimiser steps.
    public init(epoch: Int, step: Int, info: [String: String] = [:], extra: [String: Tensor] = [:]) {
        self.epoch = epoch
        self.step = step
        self.info = info
        self.extra = extra
    }

    /// Saves the model, the optimiser, the RNG, `extra` and this record to `url`.
    public func save(model: Module, optimizer: (any Optimizer)?, to url: URL) throws {
        var tensors = model.stateDict().merging(extra) { a, _ in a }
        var meta = info
        meta["fuse3d.epoch"] = String(epoch)
        meta["fuse3d.step"] = String(step)
        if let optimizer {
            let state = optimizer.state()
            for (k, v) in state.tensors { tensors["optimizer/" + k] = v }
            meta["fuse3d.optimizer"] = String(describing: type(of: optimizer))
            meta["fuse3d.optimizer_steps"] = String(state.steps)
        }
        tensors["rng/cpu"] = try Torch.rngState()
        for (index, state) in try Torch.cudaRNGStates().enumerated() { tensors["rng/cuda:\(index)"] = state }
        try SafeTensors.write(tensors, metadata: meta, to: url)
    }

    /// Loads `url` into `model` (and `optimizer`, and the RNG), returning the saved record.
    public static func load(_ url: URL, into model: Module, optimizer: (any Optimizer)? = nil,
                            device: Device = .cpu) throws -> Checkpoint {
        let (tensors, meta) = try SafeTensors.read(url, device: device)
        let fail = { (m: String) in SafeTensors.FormatError(path: url.path, message: m) }
        do {
            try model.update(parameters: tensors.filter { !$0.key.contains("/") })
        } catch let e as TorchError {
            throw fail(e.message)
        } catch let e as TrainError where e.kind == .shape {
            // A state that does not fit the model: the file is named, as for what libtorch refuses.
            throw fail(e.message)
        }
        if let optimizer {
            let kind = String(describing: type(of: optimizer))
            guard meta["fuse3d.optimizer"] == kind, let steps = meta["fuse3d.optimizer_steps"].flatMap(Int.init) else {
                throw fail("holds no \(kind) state (found \(meta["fuse3d.optimizer"] ?? "none"))")
            }
            var state: [String: Tensor] = [:]
            for (k, v) in tensors where k.hasPrefix("optimizer/") { state[String(k.dropFirst(10))] = v }
            try optimizer.load(tensors: state, steps: steps)
        }
        if let rng = tensors["rng/cpu"] { try Torch.setRNGState(rng.to(device: .cpu)) }
        // GPUs this process does not see (or a resume on the CPU) have no generator to restore; their states are not used.
        let visible = Torch.cudaDeviceCount
        for (key, state) in tensors where key.hasPrefix("rng/cuda:") {
            guard let index = Int(key.dropFirst(9)), index < visible else { continue }
            try Torch.setCUDARNGState(state.to(device: .cpu), device: index)
        }
        guard let epoch = meta["fuse3d.epoch"].flatMap(Int.init), let step = meta["fuse3d.step"].flatMap(Int.init) else {
            throw fail("metadata lacks fuse3d.epoch / fuse3d.step")
        }
        let info = meta.filter { !$0.key.hasPrefix("fuse3d.") }
        let extra = tensors.filter { $0.key.contains("/") && !$0.key.hasPrefix("optimizer/") && !$0.key.hasPrefix("rng/") }
        return Checkpoint(epoch: epoch, step: step, info: info, extra: extra)
    }

    /// Writes only the model's tensors (PyTorch names) — what `bench/torch` and inference read.
    public static func saveWeights(_ model: Module, to url: URL) throws {
        try SafeTensors.write(model.stateDict(), to: url)
    }

    /// Loads weights written by `saveWeights` or by PyTorch's `safetensors.torch.save_file(state_dict)`.
    public static func loadWeights(_ url: URL, into model: Module, device: Device = .cpu) throws {
        let (tensors, _) = try SafeTensors.read(url, device: device)
        do { try model.update(parameters: tensors) } catch let e as TorchError {
            throw SafeTensors.FormatError(path: url.path, message: e.message)
        } catch let e as TrainError where e.kind == .shape {
            throw SafeTensors.FormatError(path: url.path, message: e.message)
        }
    }
}
