import Core
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
///
/// The draws are made on the CPU (a few numbers per sample, no device sync) and applied batched, in
/// this order: flip (exact: a reversal of the d axis, which runs right → left), affine (trilinear
/// `grid_sample` in float32 on the samples that drew one; rotation and scale act in the grid's
/// normalised coordinates, a true rotation on the isotropic cubes ingest writes), intensity per
/// present channel (clamped to [0, 1]), then channel drop. Samples and channels that draw nothing
/// come back bit for bit. A batch's source slices (`Batch.sources`) follow the flip and the affine through their
/// geometry (their values are not resampled) and the channel drop through their valid flags; the intensity changes
/// act on the grid only.
public final class Augmenter {
    /// The settings.
    public let options: AugmentationOptions
    /// Seed of every draw.
    public let seed: UInt64
    /// Training mode; in evaluation (false) a batch is returned untouched, as nn modules' `training` flag.
    public var training = true
    /// In data-parallel training, which part of the global batch this rank's batches are: the draws are made
    /// for the whole global batch and this rank takes its own, so each sample draws what it would in one process.
    public var rankShare = RankShare.whole

    /// An augmenter with `options`, seeded by `seed`.
    public init(options: AugmentationOptions, seed: UInt64) {
        self.options = options
        self.seed = seed
    }

    /// Label column k after a left-right flip takes column `flipPermutation[k]` (left ↔ right for the
    /// foraminal and subarticular columns, the spinal canal's unchanged).
    public static let flipPermutation: [Int] = RSNA.labelColumns.map { name in
        let mirrored = name.hasPrefix("left_") ? "right_" + name.dropFirst(5)
            : name.hasPrefix("right_") ? "left_" + name.dropFirst(6) : Substring(name)
        return RSNA.labelColumns.firstIndex(of: String(mirrored))!
    }

    /// What one sample drew.
    struct Draw {
        var flip = false
        /// Row-major 3 × 4 output → input map in normalised (x = w, y = h, z = d) coordinates, or nil.
        var theta: [Double]?
        /// The forward map of voxel (d, h, w) coordinates: 3 × 3 then 3 offsets, or nil.
        var keypointMap: [Double]?
        /// Per selected channel: scale, shift, gamma (1, 0, 1 where none was drawn).
        var intensity: [(scale: Double, shift: Double, gamma: Double)] = []
        /// The channel dropped, or nil.
        var dropped: Int?
    }

    /// The draws of step `step` for `count` samples of `channels` channels on a (D, H, W) grid: the same
    /// number of generator calls per sample whatever the options, so one setting never shifts another's draws.
    func draws(step: Int, count: Int, channels: Int, shape: [Int]) -> [Draw] {
        var rng = SplitMix64(seed: seed ^ (UInt64(bitPattern: Int64(step)) &* 0xD1B5_4A32_D192_ED03))
        let o = options
        return (0..<count).map { _ in
            var draw = Draw()
            func signed() -> Double { 2 * rng.nextUnit() - 1 }
            draw.flip = rng.nextUnit() < o.flip
            let doAffine = rng.nextUnit() < o.affine
            let angles = (0..<3).map { _ in signed() * o.rotateDegrees * .pi / 180 }
            let zoom = 1 + signed() * o.scale
            let shift = (0..<3).map { _ in signed() * o.translate * 2 }
            if doAffine { (draw.theta, draw.keypointMap) = Self.affine(angles: angles, zoom: zoom, shift: shift, shape: shape) }
            for _ in 0..<3 {
                let on = rng.nextUnit() < o.intensity
                let s = 1 + signed() * o.intensityScale, b = signed() * o.intensityShift, g = Foundation.exp(signed() * o.gamma)
                if draw.intensity.count < channels { draw.intensity.append(on ? (s, b, g) : (1, 0, 1)) }
            }
            let drop = rng.nextUnit() < o.channelDrop
            let which = Int(rng.next() % UInt64(max(channels, 1)))
            if drop && channels > 1 { draw.dropped = which }
            return draw
        }
    }

    /// theta for `affine_grid` (align_corners = true) and the matching forward map of voxel coordinates,
    /// for out = zoom · R · in + shift in normalised coordinates (R = Rz · Ry · Rx).
    static func affine(angles: [Double], zoom: Double, shift: [Double], shape: [Int]) -> (theta: [Double], keypoints: [Double]) {
        let (cx, sx, cy, sy, cz, sz) = (cos(angles[0]), sin(angles[0]), cos(angles[1]), sin(angles[1]), cos(angles[2]), sin(angles[2]))
        let rx = [[1, 0, 0], [0, cx, -sx], [0, sx, cx]]
        let ry = [[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]]
        let rz = [[cz, -sz, 0], [sz, cz, 0], [0, 0, 1]]
        let r = multiply(rz, multiply(ry, rx))
        let m = r.map { $0.map { $0 * zoom } }
        // Inverse of zoom · R is Rᵀ / zoom: theta maps output points back to the input they sample.
        let inverse = (0..<3).map { i in (0..<3).map { j in r[j][i] / zoom } }
        let back = (0..<3).map { i in -(0..<3).reduce(0) { $0 + inverse[i][$1] * shift[$1] } }
        let theta = (0..<3).flatMap { i in inverse[i] + [back[i]] }
        // Normalised n = S · P · v − 1 with P: (d, h, w) → (w, h, d) and S = diag(2 / (size − 1)).
        let size = [shape[2], shape[1], shape[0]].map { Double(max($0 - 1, 1)) }
        let perm = [2, 1, 0]
        // Voxel map: v' = Pᵀ S⁻¹ (M (S P v − 1) + shift + 1).
        var keypoints = [Double](repeating: 0, count: 12)
        for a in 0..<3 {
            let i = perm[a]
            for b in 0..<3 {
                let j = perm[b]
                keypoints[3 * a + b] = size[i] / 2 * m[i][j] * 2 / size[j]
            }
            let offset = -(0..<3).reduce(0) { $0 + m[i][$1] } + shift[i] + 1
            keypoints[9 + a] = size[i] / 2 * offset
        }
        return (theta, keypoints)
    }

    private static func multiply(_ a: [[Double]], _ b: [[Double]]) -> [[Double]] {
        (0..<3).map { i in (0..<3).map { j in (0..<3).reduce(0) { $0 + a[i][$1] * b[$1][j] } } }
    }

    /// The augmented batch for training step `step` (the input is not modified).
    public func callAsFunction(_ batch: Batch, step: Int) throws -> Batch {
        guard training, options != .none, batch.count > 0 else { return batch }
        let shape = batch.volumes.shape
        let b = shape[0], c = shape[1], grid = Array(shape[2...])
        let device = batch.volumes.device
        let draws = Array(self.draws(step: step, count: b * rankShare.ranks, channels: c, shape: grid).dropFirst(b * rankShare.rank).prefix(b))
        var out = batch

        let flipped = draws.map(\.flip)
        if flipped.contains(true) {
            let mask = try Tensor(flipped, shape: [b], device: device)
            let permutation = try Tensor(Self.flipPermutation.map(Int64.init), device: device)
            out.volumes = try Tensor.where(mask.reshape([b, 1, 1, 1, 1]), out.volumes.flip([2]), out.volumes)
            out.labels = try Tensor.where(mask.reshape([b, 1]), out.labels.indexSelect(dim: 1, index: permutation), out.labels)
            // Keypoint k follows label column k; its d coordinate mirrors to D − 1 − d.
            let mirror = try Tensor([Float(-1), 1, 1], shape: [1, 1, 3], device: device)
            let offset = try Tensor([Float(grid[0] - 1), 0, 0], shape: [1, 1, 3], device: device)
            let mirrored = try out.keypoints.indexSelect(dim: 1, index: permutation) * mirror + offset
            out.keypoints = try Tensor.where(mask.reshape([b, 1, 1]), mirrored, out.keypoints)
            // Source slices are mirrored by their geometry; their values stay as stored.
            out.sources = try out.sources?.mirrored(depth: grid[0], where: mask)
        }

        let warped = draws.indices.filter { draws[$0].theta != nil }
        if !warped.isEmpty {
            let rows = try Tensor(warped.map(Int64.init), device: device)
            let theta = try Tensor(warped.flatMap { draws[$0].theta!.map(Float.init) }, shape: [warped.count, 3, 4], device: device)
            let subset = try out.volumes.indexSelect(dim: 0, index: rows).to(.float32)
            let sampling = try Functional.affineGrid(theta, size: subset.shape, alignCorners: true)
            let resampled = try Functional.gridSample(subset, grid: sampling, alignCorners: true).to(out.volumes.dtype)
            out.volumes = try out.volumes.indexCopy(dim: 0, index: rows, source: resampled)
            let maps = warped.map { draws[$0].keypointMap!.map(Float.init) }
            let linear = try Tensor(maps.flatMap { $0[0..<9] }, shape: [warped.count, 3, 3], device: device)
            let shift = try Tensor(maps.flatMap { $0[9..<12] }, shape: [warped.count, 1, 3], device: device)
            let moved = try out.keypoints.indexSelect(dim: 0, index: rows).matmul(linear.transpose(1, 2)) + shift
            out.keypoints = try out.keypoints.indexCopy(dim: 0, index: rows, source: moved)
            out.sources = try out.sources?.mapped(rows: rows, linear: linear, shift: shift)
        }

        let intensity = draws.flatMap(\.intensity)
        if intensity.contains(where: { $0 != (1, 0, 1) }) {
            let scale = try Tensor(intensity.map { Float($0.scale) }, shape: [b, c, 1, 1, 1], device: device)
            // A missing channel is all zero and stays so: its shift is cleared by `present`.
            let shift = try Tensor(intensity.map { Float($0.shift) }, shape: [b, c, 1, 1, 1], device: device)
                * out.present.reshape([b, c, 1, 1, 1])
            let gamma = try Tensor(intensity.map { Float($0.gamma) }, shape: [b, c, 1, 1, 1], device: device)
            let v = try out.volumes.to(.float32)
            out.volumes = try (v.pow(gamma) * scale + shift).clamp(0, 1).to(out.volumes.dtype)
        }

        let dropped = draws.map(\.dropped)
        if dropped.contains(where: { $0 != nil }) {
            let keep = (0..<b).flatMap { i in (0..<c).map { Float(dropped[i] == $0 ? 0 : 1) } }
            let mask = try Tensor(keep, shape: [b, c], device: device)
            out.volumes = try out.volumes * mask.reshape([b, c, 1, 1, 1]).to(out.volumes.dtype)
            out.present = try out.present * mask
            // A dropped channel's source slices are left out too (its crops fall back to the zeroed grid).
            if var sources = out.sources, c == 3 {
                for k in 0..<3 { sources.valid[k] = try sources.valid[k] * mask.narrow(1, start: k, length: 1) }
                out.sources = sources
            }
        }
        return out
    }
}
