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
    /// Whether the model reads source slices (`TwoStageConfig.readsSourcePixels`), so its loaders must too.
    public var readsSourcePixels: Bool { twoStage?.readsSourcePixels ?? false }
    /// The channels whose source slices the model reads (`SourceCrops.channels`), so its loaders read those alone.
    public var sourceChannels: [Int] { readsSourcePixels ? SourceCrops.channels(groups: twoStage?.sourceCropGroups ?? []) : [] }
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
    /// Data-parallel training: the cap of a gradient bucket in MiB (DDP's 25; the first bucket holds about 1 MiB).
    public var bucketMegabytes = 25.0
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
        try keys.read(root, into: &c)
        return c
    }

    /// The resolved configuration as YAML that `parse` reads back to an equal value.
    public var yaml: String {
        (["# fuse3d training configuration (resolved)"] + Self.keys.yaml(self)).joined(separator: "\n") + "\n"
    }

    /// Every key a configuration file may hold, one line each ("optimizer.lr: …"), for --help.
    public static var keyHelp: [String] {
        keys.help().flatMap { line in
            line.hasPrefix("two_stage:") ? [line] + TwoStageConfig.keys.map { "  two_stage.\($0.name): \($0.help)" } : [line]
        }
    }

    /// The configuration's keys, in the resolved YAML's order: the one place that says how each is read, checked,
    /// written back and described. Reading follows the same order (`two_stage` reads the model inputs before it).
    static let keys: [ConfigEntry<TrainingConfig>] = modelKeys + trainingKeys + sections

    /// What is trained: the backbone, its input and the two-stage model.
    private static let modelKeys: [ConfigEntry<TrainingConfig>] = [
        .key(ConfigKey(name: "model", help: "the backbone [efficientnet3d or vit3d]",
                       read: { (s: ConfigSection, c: inout TrainingConfig) in c.model = try s.string("model", oneOf: ModelSpec.names) ?? c.model },
                       write: { (c: TrainingConfig) in ["model: \(c.model)"] })),
        .key(ConfigKey(name: "variant", help: "the backbone's size [b0–b3 for efficientnet3d; tiny, small or base for vit3d]",
                       read: { (s: ConfigSection, c: inout TrainingConfig) in c.variant = try s.string("variant") ?? c.variant },
                       write: { (c: TrainingConfig) in c.variant.map { ["variant: \($0)"] } ?? [] })),
        .key(ConfigKey(name: "width", help: "EfficientNet width multiplier, 0.25 without a variant [number > 0]",
                       read: { (s: ConfigSection, c: inout TrainingConfig) in c.width = try s.double("width", above: 0) ?? c.width },
                       write: widthLines)),
        .key(.int("input_pool", \.inputPool, min: 1, "average-pool the stored grid by this factor before the model")),
        .key(.voxelSize("input_crop", \.inputCrop, "a centred crop of the stored grid before input_pool")),
        .key(.voxelSize("level_crops", \.levelCrops, "one crop of this size per level at the training studies' mean keypoints")),
        .key(ConfigKey(name: "two_stage", help: "the two-stage model, on by default [false, or a mapping of the keys below]",
                       read: { (s: ConfigSection, c: inout TrainingConfig) in
                           c.twoStage = try s.twoStage(otherInput: c.levelCrops != nil || c.inputCrop != nil || c.inputPool > 1 || c.model == "vit3d")
                       },
                       write: twoStageLines)),
    ]

    /// `width:` as given, or the default a bare efficientnet3d gets, as a comment.
    private static func widthLines(_ c: TrainingConfig) -> [String] {
        if let width = c.width { return ["width: \(yamlNumber(width))"] }
        guard let width = c.resolvedWidth else { return [] }
        return ["# width: \(yamlNumber(width)) (the default of efficientnet3d without a variant)"]
    }

    /// `two_stage: false`, or its mapping.
    private static func twoStageLines(_ c: TrainingConfig) -> [String] {
        guard let twoStage = c.twoStage else { return ["two_stage: false"] }
        let keys: [ConfigKey<TwoStageConfig>] = TwoStageConfig.keys
        return ["two_stage:"] + keys.flatMap { key in key.write(twoStage) }.map { "  " + $0 }
    }

    /// How it is trained: the run's shape, device and step.
    private static let trainingKeys: [ConfigEntry<TrainingConfig>] = [
        .key(.int("epochs", \.epochs, min: 1, "epochs per fold")),
        .key(.int("batch_size", \.batchSize, min: 1, "samples per (global) batch")),
        .key(.int("folds", \.folds, min: 2, "number of folds K")),
        .key(ConfigKey(name: "seed", help: "seed of the split, the initialisation and the sample order [whole number ≥ 0]",
                       read: { (s: ConfigSection, c: inout TrainingConfig) in c.seed = try s.int("seed", min: 0).map(UInt64.init) ?? c.seed },
                       write: { (c: TrainingConfig) in ["seed: \(c.seed)"] })),
        .key(ConfigKey(name: "device", help: "where to train; plain cuda: each rank's own GPU [cpu, cuda or cuda:N]",
                       read: { (s: ConfigSection, c: inout TrainingConfig) in
                           guard let text = try s.string("device") else { return }
                           guard let device = DeviceSetting(text) else { throw s.error("device", "expected cpu, cuda or cuda:N, got \"\(text)\"") }
                           c.device = device
                       },
                       write: { (c: TrainingConfig) in ["device: \(c.device)"] })),
        .key(.int("threads", \.threads, min: 0, "libtorch threads (0: all cores)")),
        .key(.double("clip_norm", \.clipNorm, min: 0, "gradient-norm limit of each parameter group (0: no clipping)")),
        .key(.double("ema_decay", \.emaDecay, min: 0, below: 1, "decay of the EMA of the weights (0: no EMA)")),
        .key(.bool("bf16", \.bf16, "bfloat16 autocast for the forward pass")),
        .key(ConfigKey(name: "class_weights", help: "loss weight of normal/mild, moderate, severe [three numbers > 0]",
                       read: { (s: ConfigSection, c: inout TrainingConfig) in
                           guard let w = try s.doubles("class_weights") else { return }
                           guard w.count == 3, w.allSatisfy({ $0 > 0 }) else { throw s.error("class_weights", "expected three positive numbers, got \(w)") }
                           c.classWeights = w
                       },
                       write: { (c: TrainingConfig) in ["class_weights: [\(c.classWeights.map(yamlNumber).joined(separator: ", "))]"] })),
        .key(.int("checkpoint_every", \.checkpointEvery, min: 0, "save a resumable checkpoint every this many steps (0: each epoch)")),
        .key(.double("bucket_mb", \.bucketMegabytes, above: 0,
                     "data-parallel training: cap of a gradient bucket in MiB, all-reduced while backward runs (the first holds 1 MiB)")),
    ]

    /// The optimiser, the schedule, the loader and the augmentation, each a section.
    private static let sections: [ConfigEntry<TrainingConfig>] = [
        .section("optimizer", help: "AdamW", [
            .double("lr", \.learningRate, above: 0, "peak learning rate"),
            .double("weight_decay", \.weightDecay, min: 0, "decoupled weight decay"),
            .double("beta1", \.beta1, min: 0, below: 1, "β₁"),
            .double("beta2", \.beta2, min: 0, below: 1, "β₂"),
            .double("eps", \.eps, above: 0, "ε"),
        ]),
        .section("schedule", help: "linear warm-up, then cosine decay", [
            .double("warmup_epochs", \.warmupEpochs, min: 0, "warm-up length in epochs"),
            .double("min_lr", \.minLearningRate, min: 0, "the rate the cosine ends at"),
        ]),
        .section("loader", help: "the shard loader", [
            .int("threads", \.loaderThreads, min: 0, "reader threads (0: all cores)"),
            .int("prefetch", \.prefetch, min: 1, "batches kept ahead"),
        ]),
        .section("augmentation", help: "training-time augmentation", [
            .double("flip", \.augmentation.flip, min: 0, max: 1, "probability of a left-right flip (label columns swapped)"),
            .double("affine", \.augmentation.affine, min: 0, max: 1, "probability of an affine transform"),
            .double("rotate_degrees", \.augmentation.rotateDegrees, min: 0, "largest rotation"),
            .double("scale", \.augmentation.scale, min: 0, below: 1, "largest relative scaling"),
            .double("translate", \.augmentation.translate, min: 0, below: 1, "largest shift, a fraction of the grid"),
            .double("intensity", \.augmentation.intensity, min: 0, max: 1, "probability of an intensity change"),
            .double("intensity_scale", \.augmentation.intensityScale, min: 0, below: 1, "largest relative intensity scaling"),
            .double("intensity_shift", \.augmentation.intensityShift, min: 0, "largest intensity shift"),
            .double("gamma", \.augmentation.gamma, min: 0, "largest gamma change"),
            .double("channel_drop", \.augmentation.channelDrop, min: 0, max: 1, "probability of zeroing one channel"),
        ]),
    ]

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
        return try TwoStageConfig.read(s)
    }
}
