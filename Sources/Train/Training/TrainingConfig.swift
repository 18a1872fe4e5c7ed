import Config
import Foundation

/// Everything a training run is made of, read from YAML (snake_case keys, every one optional) and
/// written back resolved to `RUN/config.yaml`, so a run can be repeated from its folder alone.
public struct TrainingConfig: Equatable, Sendable {
    /// Backbone name ("efficientnet3d" or "vit3d"), its variant, and an EfficientNet width override.
    public var model = "efficientnet3d", variant: String? = nil, width: Double? = nil
    /// Average-pool the grid by this factor before the model (1: the grid as stored); 2 trains a 64³ cohort at
    /// 32³, about 4× cheaper per step. Applied alike in training, validation, evaluate and predict.
    public var inputPool = 1
    /// A centred crop (D, H, W voxels) of the stored grid, taken before `inputPool` (nil: the whole grid). The
    /// phantom's and a lumbar series' anatomy sits mid-grid, so a 64³ grid cropped to 32×40×32 keeps full
    /// resolution at the cost of 32³ pooled. Applied alike in training, validation, evaluate and predict, after
    /// augmentation (so flips and shifts act on the whole grid).
    public var inputCrop: [Int]? = nil
    /// One crop of this size (D, H, W voxels) per lumbar level, centred on the training fold's mean spinal keypoints
    /// (kept in the checkpoint), through one shared backbone (`LevelCropBackbone`); nil: the whole input. The stored
    /// grid goes in as it is (no `input_crop` or `input_pool` beside it).
    public var levelCrops: [Int]? = nil
    /// The two-stage model (the default, the recommended recipe): a localizer learns the levels from the shards'
    /// keypoints, and one crop per level at its points goes through one shared network. nil (`two_stage: false`, or
    /// implied by `level_crops`, `input_crop`, `input_pool` or vit3d): the whole grid or the atlas crops.
    public var twoStage: TwoStageConfig? = TwoStageConfig()
    /// Epochs per fold, samples per batch, number of folds, the run's seed.
    public var epochs = 16, batchSize = 8, folds = 4, seed: UInt64 = 0
    /// "cpu", "cuda" or "cuda:N"; libtorch intra-op threads (0: all cores).
    public var device = DeviceSetting(.cpu), threads = 0
    /// AdamW: peak learning rate, decoupled weight decay, β₁, β₂, ε.
    public var learningRate = 3e-3, weightDecay = 0.01, beta1 = 0.9, beta2 = 0.999, eps = 1e-8
    /// Linear warm-up length in epochs (fractions allowed), then cosine decay to `minLearningRate`.
    public var warmupEpochs = 1.0, minLearningRate = 0.0
    /// Joint gradient-norm limit (0: no clipping).
    public var clipNorm = 1.0
    /// Decay of the exponential moving average of the weights (0: no EMA); validation and best use the EMA.
    public var emaDecay = 0.95
    /// bfloat16 autocast for the forward pass.
    public var bf16 = false
    /// Loss weight of each class (normal/mild, moderate, severe); the metric's are 1, 2, 4.
    public var classWeights: [Double] = [1, 2, 4]
    /// Save a resumable checkpoint every this many steps (0: only at the end of each epoch).
    public var checkpointEvery = 0
    /// Loader: reader threads (0: all cores) and batches kept ahead.
    public var loaderThreads = 0, prefetch = 2
    /// Training-time augmentation (`AugmentationOptions` field by field).
    public var augmentation = TrainingConfig.recommendedAugmentation

    /// The default augmentation: left-right flips (label columns swapped), nothing else.
    public static let recommendedAugmentation: AugmentationOptions = {
        var a = AugmentationOptions.none
        a.flip = 0.5
        return a
    }()

    /// The EfficientNet width used: `width`, else 0.25 for an EfficientNet-3D without a `variant` (the recommended
    /// size on these cohorts), else the variant's own (nil).
    public var resolvedWidth: Double? { width ?? (variant == nil && model == "efficientnet3d" ? 0.25 : nil) }

    /// The defaults, the recipe measured on the moving phantom cohort (docs/learning-on-the-phantom.md): the two-stage
    /// EfficientNet-3D b0 at width 0.25 (when neither `width` nor `variant` is given), 4 folds × 16 epochs, batch 8,
    /// AdamW 3e-3 with one warm-up epoch then cosine, EMA 0.95 of the classifier, left-right flips.
    public init() {}

    /// A configuration that is wrong: the file, the line, the key and what is wrong (the configuration reader's error).
    public typealias Error = ConfigError

    /// Reads a YAML file; an unknown key or a bad value is an error naming the file, the line and the key.
    public static func load(_ url: URL) throws -> TrainingConfig {
        try parse(try ConfigSection.text(ofFile: url.path), path: url.path)
    }

    /// Parses YAML text (`path` names it in errors).
    public static func parse(_ text: String, path: String) throws -> TrainingConfig {
        var c = TrainingConfig()
        guard let root = try ConfigSection.root(text, path: path) else { return c }
        c.model = try root.string("model", oneOf: ["efficientnet3d", "vit3d"]) ?? c.model
        c.variant = try root.string("variant") ?? c.variant
        c.width = try root.double("width", above: 0) ?? c.width
        c.inputPool = try root.int("input_pool", min: 1) ?? c.inputPool
        c.inputCrop = try root.voxelSize("input_crop") ?? c.inputCrop
        c.levelCrops = try root.voxelSize("level_crops") ?? c.levelCrops
        c.twoStage = try root.twoStage(otherInput: c.levelCrops != nil || c.inputCrop != nil || c.inputPool > 1 || c.model == "vit3d")
        c.epochs = try root.int("epochs", min: 1) ?? c.epochs
        c.batchSize = try root.int("batch_size", min: 1) ?? c.batchSize
        c.folds = try root.int("folds", min: 2) ?? c.folds
        c.seed = try root.int("seed", min: 0).map(UInt64.init) ?? c.seed
        if let text = try root.string("device") {
            guard let device = DeviceSetting(text) else { throw root.error("device", "expected cpu, cuda or cuda:N, got \"\(text)\"") }
            c.device = device
        }
        c.threads = try root.int("threads", min: 0) ?? c.threads
        c.clipNorm = try root.double("clip_norm", min: 0) ?? c.clipNorm
        c.emaDecay = try root.double("ema_decay", min: 0, below: 1) ?? c.emaDecay
        c.bf16 = try root.bool("bf16") ?? c.bf16
        c.checkpointEvery = try root.int("checkpoint_every", min: 0) ?? c.checkpointEvery
        if let w = try root.doubles("class_weights") {
            guard w.count == 3, w.allSatisfy({ $0 > 0 }) else { throw root.error("class_weights", "expected three positive numbers, got \(w)") }
            c.classWeights = w
        }
        if let o = try root.section("optimizer") {
            c.learningRate = try o.double("lr", above: 0) ?? c.learningRate
            c.weightDecay = try o.double("weight_decay", min: 0) ?? c.weightDecay
            c.beta1 = try o.double("beta1", min: 0, below: 1) ?? c.beta1
            c.beta2 = try o.double("beta2", min: 0, below: 1) ?? c.beta2
            c.eps = try o.double("eps", above: 0) ?? c.eps
            try o.finish()
        }
        if let s = try root.section("schedule") {
            c.warmupEpochs = try s.double("warmup_epochs", min: 0) ?? c.warmupEpochs
            c.minLearningRate = try s.double("min_lr", min: 0) ?? c.minLearningRate
            try s.finish()
        }
        if let l = try root.section("loader") {
            c.loaderThreads = try l.int("threads", min: 0) ?? c.loaderThreads
            c.prefetch = try l.int("prefetch", min: 1) ?? c.prefetch
            try l.finish()
        }
        if let a = try root.section("augmentation") {
            var g = c.augmentation
            g.flip = try a.double("flip", min: 0, max: 1) ?? g.flip
            g.affine = try a.double("affine", min: 0, max: 1) ?? g.affine
            g.rotateDegrees = try a.double("rotate_degrees", min: 0) ?? g.rotateDegrees
            g.scale = try a.double("scale", min: 0, below: 1) ?? g.scale
            g.translate = try a.double("translate", min: 0, below: 1) ?? g.translate
            g.intensity = try a.double("intensity", min: 0, max: 1) ?? g.intensity
            g.intensityScale = try a.double("intensity_scale", min: 0, below: 1) ?? g.intensityScale
            g.intensityShift = try a.double("intensity_shift", min: 0) ?? g.intensityShift
            g.gamma = try a.double("gamma", min: 0) ?? g.gamma
            g.channelDrop = try a.double("channel_drop", min: 0, max: 1) ?? g.channelDrop
            try a.finish()
            c.augmentation = g
        }
        try root.finish()
        return c
    }

    /// The resolved configuration as YAML that `parse` reads back to an equal value.
    public var yaml: String {
        func n(_ x: Double) -> String { x == x.rounded() && abs(x) < 1e15 ? String(format: "%.1f", x) : "\(x)" }
        let a = augmentation
        var lines = ["# fuse3d training configuration (resolved)", "model: \(model)"]
        if let variant { lines.append("variant: \(variant)") }
        if let width {
            lines.append("width: \(n(width))")
        } else if let width = resolvedWidth {
            lines.append("# width: \(n(width)) (the default of efficientnet3d without a variant)")
        }
        lines += [
            "input_pool: \(inputPool)",
        ]
        if let inputCrop { lines.append("input_crop: [\(inputCrop.map(String.init).joined(separator: ", "))]") }
        if let levelCrops { lines.append("level_crops: [\(levelCrops.map(String.init).joined(separator: ", "))]") }
        lines += twoStage?.yaml ?? ["two_stage: false"]
        lines += [
            "epochs: \(epochs)", "batch_size: \(batchSize)", "folds: \(folds)", "seed: \(seed)",
            "device: \(device)", "threads: \(threads)", "clip_norm: \(n(clipNorm))", "ema_decay: \(n(emaDecay))",
            "bf16: \(bf16)", "class_weights: [\(classWeights.map(n).joined(separator: ", "))]",
            "checkpoint_every: \(checkpointEvery)",
            "optimizer:", "  lr: \(n(learningRate))", "  weight_decay: \(n(weightDecay))", "  beta1: \(n(beta1))",
            "  beta2: \(n(beta2))", "  eps: \(n(eps))",
            "schedule:", "  warmup_epochs: \(n(warmupEpochs))", "  min_lr: \(n(minLearningRate))",
            "loader:", "  threads: \(loaderThreads)", "  prefetch: \(prefetch)",
            "augmentation:", "  flip: \(n(a.flip))", "  affine: \(n(a.affine))", "  rotate_degrees: \(n(a.rotateDegrees))",
            "  scale: \(n(a.scale))", "  translate: \(n(a.translate))", "  intensity: \(n(a.intensity))",
            "  intensity_scale: \(n(a.intensityScale))", "  intensity_shift: \(n(a.intensityShift))",
            "  gamma: \(n(a.gamma))", "  channel_drop: \(n(a.channelDrop))",
        ]
        return lines.joined(separator: "\n") + "\n"
    }

    /// The model's input size (D, H, W) for stored grids of `gridSize`: cropped by `inputCrop`, then pooled by
    /// `inputPool`. Throws when the crop is larger than the grid or the pool leaves nothing.
    public func inputSize(gridSize: [Int]) throws -> [Int] {
        if twoStage != nil {
            guard inputCrop == nil, inputPool == 1, levelCrops == nil else {
                throw TrainError(.configuration, "two_stage takes the stored grid as it is: remove input_crop, input_pool and level_crops, or set two_stage: false")
            }
        }
        if let levelCrops {
            guard inputCrop == nil, inputPool == 1 else {
                throw TrainError(.configuration, "level_crops takes the stored grid as it is: remove input_crop and input_pool")
            }
            guard zip(levelCrops, gridSize).allSatisfy({ $0 <= $1 }) else {
                throw TrainError(.configuration, "level_crops \(levelCrops) do not fit in the shards' grid \(gridSize) (D, H, W)")
            }
        }
        let crop = inputCrop ?? gridSize
        guard crop.count == gridSize.count, zip(crop, gridSize).allSatisfy({ $0 <= $1 }) else {
            throw TrainError(.configuration, "input_crop \(crop) does not fit in the shards' grid \(gridSize) (D, H, W)")
        }
        let size = crop.map { $0 / inputPool }
        guard size.allSatisfy({ $0 >= 1 }) else {
            throw TrainError(.configuration, "input_pool \(inputPool) leaves no voxel of the \(crop) input (D, H, W)")
        }
        return size
    }

    /// The model to build for stored grids of `gridSize` (D, H, W): its input is the grid cropped by `inputCrop`
    /// and pooled by `inputPool` (`inputSize(gridSize:)` checks that they fit).
    public func modelSpec(gridSize: [Int]) throws -> ModelSpec {
        var spec = ModelSpec(name: model, variant: variant, inputSize: try inputSize(gridSize: gridSize), width: resolvedWidth)
        spec.levelCrop = levelCrops
        spec.twoStage = try twoStage?.layout()
        return spec
    }

    /// A batch of volumes (N, C, D, H, W) as the model takes them: float32 on `device`, centre-cropped by
    /// `inputCrop`, average-pooled by `inputPool`.
    public func modelInput(_ volumes: Tensor, device: Device) throws -> Tensor {
        var x = try volumes.to(.float32, device: device)
        if let inputCrop {
            let shape = x.shape
            for (i, c) in inputCrop.enumerated() where shape[2 + i] > c {
                x = try x.narrow(2 + i, start: (shape[2 + i] - c) / 2, length: c)
            }
            x = try x.contiguous()
        }
        guard inputPool > 1 else { return x }
        let k = [inputPool, inputPool, inputPool]
        return try Functional.avgPool3d(x, kernel: k, stride: k, padding: [0, 0, 0])
    }
}

/// The training configuration's own kinds of value, read by the shared strict reader.
private extension ConfigSection {
    /// A box size in voxels: three whole numbers [D, H, W], each at least 1.
    func voxelSize(_ name: String) throws -> [Int]? {
        guard let size = try doubles(name) else { return nil }
        guard size.count == 3, size.allSatisfy({ $0 >= 1 && $0 == $0.rounded() && $0 < 1e6 }) else {
            throw error(name, "expected three whole numbers of voxels [D, H, W], got \(size.map { "\($0)" })")
        }
        return size.map { Int($0) }
    }

    /// `two_stage`: false (off), a mapping of settings, or absent (on with the defaults unless `otherInput`: another
    /// model input was chosen). Settings beside another model input are an error.
    func twoStage(otherInput: Bool) throws -> TwoStageConfig? {
        guard let node = value("two_stage") else { return otherInput ? nil : TwoStageConfig() }
        if node.scalar != nil {
            guard let on = try bool("two_stage") else { return nil }
            guard on else { return nil }
            guard !otherInput else { throw error("two_stage", "takes the stored grid as it is: remove level_crops, input_crop and input_pool (it is built for efficientnet3d)") }
            return TwoStageConfig()
        }
        guard !otherInput else { throw error("two_stage", "takes the stored grid as it is: remove level_crops, input_crop and input_pool (it is built for efficientnet3d)") }
        guard let s = try section("two_stage") else { return TwoStageConfig() }
        var t = TwoStageConfig()
        let crop = try s.voxelSize("crop")
        t.cropScale = try s.double("crop_scale", above: 0) ?? t.cropScale
        t.localizerWidth = try s.int("localizer_width", min: 1) ?? t.localizerWidth
        t.localizerPool = try s.voxelSize("localizer_pool") ?? t.localizerPool
        t.jitter = try s.double("jitter", min: 0) ?? t.jitter
        t.localizationWeight = try s.double("localization_weight", min: 0) ?? t.localizationWeight
        t.sideCrops = try s.bool("side_crops") ?? t.sideCrops
        let conditionCrops = try s.bool("condition_crops")
        // Side crops replace the default condition crops; asking for both is an error.
        if t.sideCrops, conditionCrops == true { throw s.error("condition_crops", "side_crops and condition_crops exclude each other: set one") }
        t.conditionCrops = conditionCrops ?? !t.sideCrops
        t.crop = crop ?? t.measuredCrop
        try s.finish()
        return t
    }
}
