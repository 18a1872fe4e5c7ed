import Foundation

/// Batched augmentation settings (training only; evaluation never augments). Probabilities are per sample.
public struct AugmentationOptions: Codable, Sendable, Equatable {
    /// Probability of a left-right flip along patient x (label columns and keypoints swapped alike).
    public var flip: Double
    /// Probability of a random affine; its largest rotation (degrees), relative scale and translation (fraction of the grid).
    public var affine: Double, rotateDegrees: Double, scale: Double, translate: Double
    /// Probability of an intensity change per channel; its largest relative scale, shift and log-gamma.
    public var intensity: Double, intensityScale: Double, intensityShift: Double, gamma: Double
    /// Probability of dropping one channel (zeroed, its `present` flag cleared).
    public var channelDrop: Double

    /// Everything off.
    public static let none = AugmentationOptions(flip: 0, affine: 0, rotateDegrees: 0, scale: 0, translate: 0,
                                                 intensity: 0, intensityScale: 0, intensityShift: 0, gamma: 0, channelDrop: 0)

    /// Settings field by field (see each property).
    public init(flip: Double = 0.5, affine: Double = 0.5, rotateDegrees: Double = 10, scale: Double = 0.1, translate: Double = 0.05,
                intensity: Double = 0.5, intensityScale: Double = 0.1, intensityShift: Double = 0.05, gamma: Double = 0.2,
                channelDrop: Double = 0) {
        self.flip = flip
        self.affine = affine
        self.rotateDegrees = rotateDegrees
        self.scale = scale
        self.translate = translate
        self.intensity = intensity
        self.intensityScale = intensityScale
        self.intensityShift = intensityShift
        self.gamma = gamma
        self.channelDrop = channelDrop
    }
}

/// Applies `AugmentationOptions` to training batches on the batch's device, reproducibly: the draws
/// for a batch are a function of (seed, step) alone.
public final class Augmenter {
    /// The settings.
    public let options: AugmentationOptions
    /// Seed of every draw.
    public let seed: UInt64

    /// An augmenter with `options`, seeded by `seed`.
    public init(options: AugmentationOptions, seed: UInt64) {
        self.options = options
        self.seed = seed
    }

    /// The augmented batch for training step `step` (the input is not modified).
    public func callAsFunction(_ batch: Batch, step: Int) throws -> Batch {
        guard options == .none else { throw TorchError("augmentation is not implemented yet (set every probability to 0)") }
        return batch
    }
}
