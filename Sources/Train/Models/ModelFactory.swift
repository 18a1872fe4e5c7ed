import Foundation

/// What to build: a backbone by name and variant, the input grid, and the head layout.
public struct ModelSpec: Sendable, Equatable {
    /// "efficientnet3d" or "vit3d".
    public var name: String
    /// "b0"–"b3" for EfficientNet3D; "tiny", "small", "base" for ViT3D.
    public var variant: String
    /// Input grid (D, H, W).
    public var inputSize: [Int]
    /// EfficientNet width override (tiny test models use 0.25); nil keeps the variant's.
    public var width: Double?
    /// Number of heads (condition-levels) and ordinal classes.
    public var heads: Int, classes: Int
    /// One crop of this size (D, H, W) per lumbar level through the backbone (`LevelCropBackbone`); nil: the whole input.
    public var levelCrop: [Int]? = nil
    /// The two-stage model (`TwoStageBackbone`: a localizer, then crops at its points); nil: not two-stage.
    public var twoStage: TwoStageLayout? = nil

    /// A spec; the variant defaults to b0 (EfficientNet3D) or tiny (ViT3D).
    public init(name: String, variant: String? = nil, inputSize: [Int], width: Double? = nil, heads: Int = 25, classes: Int = 3) {
        self.name = name.lowercased()
        self.variant = variant ?? (self.name == "vit3d" ? "tiny" : "b0")
        self.inputSize = inputSize
        self.width = width
        self.heads = heads
        self.classes = classes
    }

    /// The model names `make` knows.
    public static let names = ["efficientnet3d", "vit3d"]

    /// The ViT sizes (patch 16) by variant name, as DeiT names them.
    static let vitSizes: [String: (dim: Int, depth: Int, heads: Int)] = [
        "tiny": (192, 12, 3), "small": (384, 12, 6), "base": (768, 12, 12),
    ]

    /// Whether bf16 autocast should be on by default, from measurements (BENCHMARKS.md, "Training step
    /// (libtorch)"): ViT3D steps run 1.3–1.6× faster on CPUs with native bf16, EfficientNet3D's get slower
    /// (its depthwise 3-D convolutions lack fast bf16 kernels). CUDA is unmeasured, so it stays off there.
    /// Channels-last-3d measured no clear gain for either model and is never a default.
    public func prefersBF16Autocast(on device: Device) -> Bool {
        name == "vit3d" && device == .cpu && Torch.cpuHasNativeBF16
    }

    /// Builds the classifier (weights freshly initialised from libtorch's generator).
    public func make() throws -> OrdinalClassifier {
        switch name {
        case "efficientnet3d":
            guard var config = EfficientNetConfig.named(variant) else {
                throw TrainError(.configuration, "efficientnet3d has variants b0, b1, b2, b3, not \(variant)")
            }
            if let width { config.width = width }
            let backbone = try EfficientNet3D(config)
            if let twoStage {
                return try OrdinalClassifier(backbone: TwoStageBackbone(inner: backbone, layout: twoStage), heads: heads, classes: classes)
            }
            if let levelCrop {
                return try OrdinalClassifier(backbone: LevelCropBackbone(inner: backbone, crop: levelCrop), heads: heads, classes: classes)
            }
            return try OrdinalClassifier(backbone: backbone, heads: heads, classes: classes)
        case "vit3d":
            guard levelCrop == nil, twoStage == nil else { throw TrainError(.configuration, "level_crops and two_stage are built for efficientnet3d; vit3d takes the whole grid") }
            guard let s = ModelSpec.vitSizes[variant] else { throw TrainError(.configuration, "vit3d has variants tiny, small, base, not \(variant)") }
            let config = ViTConfig(patch: 16, dim: s.dim, depth: s.depth, heads: s.heads, inputSize: inputSize)
            return try OrdinalClassifier(backbone: ViT3D(config), heads: heads, classes: classes)
        default:
            throw TrainError(.configuration, "unknown model \(name); known: \(ModelSpec.names.joined(separator: ", "))")
        }
    }
}
