import Foundation

/// Stage-two crops cut from the source slices (the scanner's pixels, `SourceBatch`) instead of the stored grid: each
/// condition is read on its own series (the canal on the sagittal T2/STIR, the foramina on the sagittal T1, the recesses
/// on the axial T2), `slices` slices across, `size` × `size` pixels of `millimetres` each on every slice.
///
/// A crop around point p (grid voxels) of a group of columns read on series channel c:
/// - the window: the slice of c nearest to p (by its distance to the slice's plane), with its `slices` − 1 neighbours in
///   the stored order (a sample's slices sorted along their normal), ordered along the crop's depth axis (the patient's
///   x for sagittal series, running to the left, or to the right for a mirrored crop; z downwards for axial ones);
/// - on each slice of the window, pixel (i, j) of the crop lies at p's projection onto the slice's plane plus
///   (i − (size − 1)/2, j − (size − 1)/2) · `millimetres` along the crop's two in-plane axes (the grid's h and w for
///   sagittal series, d and w for axial ones; d reversed for a mirrored axial crop), projected onto the plane; it takes
///   the slice's value there (bilinear between its pixels, zero off the slice and for a window position with no slice);
/// - the crop's three channels are the grid's (trilinear, at the same points) with the series' own channel replaced by
///   the slice values.
/// Where the series has no slice within `reach` millimetres of p (the series is missing, or does not cover the point),
/// the crop is the grid's alone, on planes `fallbackSpacing` millimetres apart along the depth axis: the same shape,
/// at the same millimetres per pixel.
public struct SourceCrops: Sendable, Equatable {
    /// Slices across each crop, pixels along each in-plane side, millimetres per pixel.
    public var slices: Int, size: Int, millimetres: Double
    /// How near (mm) the nearest slice must lie for a crop to be read from the slices.
    public var reach: Double
    /// The spacing (mm) of a fallback crop's planes.
    public var fallbackSpacing: Double
    /// The condition groups read from their series' slices (0 the spinal canal, 1 the neural foramina, 2 the
    /// subarticular recesses: `RSNAScore.group(ofColumn:)`); the others' crops are the grid's, at the same millimetres.
    public var groups: [Int]

    /// Crops of `slices` × `size` × `size`, `millimetres` per pixel; all positive, `slices` odd (the window is centred on
    /// the nearest slice).
    public init(slices: Int = 5, size: Int = 24, millimetres: Double = 1, reach: Double = 8, fallbackSpacing: Double = 4,
                groups: [Int] = [0, 1, 2]) throws {
        guard slices > 0, slices % 2 == 1, size > 0, millimetres > 0, reach > 0, fallbackSpacing > 0,
              groups.allSatisfy({ (0..<3).contains($0) }) else {
            throw TrainError(.configuration, "source crops need an odd number of slices and a positive size, millimetres, reach and spacing, not \(slices), \(size), \(millimetres), \(reach), \(fallbackSpacing)")
        }
        self.slices = slices
        self.size = size
        self.millimetres = millimetres
        self.reach = reach
        self.fallbackSpacing = fallbackSpacing
        self.groups = groups
    }

    /// The channels whose slices the groups read from the slices need (the canal's sagittal T2/STIR is 1, the foramina's
    /// sagittal T1 0, the recesses' axial T2 2), ascending.
    public var channels: [Int] { Self.channels(groups: groups) }

    /// The channels condition groups `groups` are read on, ascending.
    public static func channels(groups: [Int]) -> [Int] { Set(groups.map { [1, 0, 2][$0] }).sorted() }

    /// The crop's shape after its channels: (slices, size, size).
    public var shape: [Int] { [slices, size, size] }

    /// How a group of label columns is read: its series' channel, whether the series is axial, whether mirrored.
    public struct Reading: Sendable, Equatable {
        /// The series' channel (`Channels` order).
        public var channel: Int
        /// An axial series (its slices run along z); else sagittal (along x).
        public var axial: Bool
        /// A right-side crop, cut mirrored left-right so that it looks like a left one.
        public var mirrored: Bool

        /// A reading of `channel`.
        public init(channel: Int, axial: Bool, mirrored: Bool) {
            self.channel = channel
            self.axial = axial
            self.mirrored = mirrored
        }

        /// The crop's depth axis and its two in-plane axes as unit vectors in grid voxels (d, h, w).
        var axes: (depth: [Float], first: [Float], second: [Float]) {
            let x: Float = mirrored ? -1 : 1
            return axial ? ([0, 1, 0], [x, 0, 0], [0, 0, 1]) : ([x, 0, 0], [0, 1, 0], [0, 0, 1])
        }
    }

    /// The readings of the RSNA label columns in groups of five (one per level): the canal (sagittal T2/STIR), the left
    /// and right foramina (sagittal T1), the left and right recesses (axial T2).
    public static let columnReadings: [Reading] = [
        Reading(channel: 1, axial: false, mirrored: false), Reading(channel: 0, axial: false, mirrored: false),
        Reading(channel: 0, axial: false, mirrored: true), Reading(channel: 2, axial: true, mirrored: false),
        Reading(channel: 2, axial: true, mirrored: true),
    ]

    /// `x` (B, 3, D, H, W) grid, `sources` the batch's slices, `points` (B, G, 3) grid voxels (d, h, w) read as `reading`
    /// → the crops (G · B, 3, slices, size, size), group-major (every sample's column 0 first), float32 on `x`'s device,
    /// and (B, G) bool: which crops came from the slices. With `useSlices` false every crop is the grid's (the fallback).
    public func callAsFunction(_ x: Tensor, sources: SourceBatch, points: Tensor, reading: Reading,
                               useSlices: Bool = true) throws -> (crops: Tensor, fromSlices: Tensor) {
        let b = x.shape[0], g = points.shape[1], k = slices, p = size, device = x.device
        guard x.shape.count == 5, x.shape[1] == 3, points.shape == [b, g, 3], sources.voxelMm.shape == [b] else {
            throw TrainError(.shape, "source crops read a (B, 3, D, H, W) grid and (B, G, 3) points, not \(x.shape) and \(points.shape)")
        }
        let c = reading.channel
        let point = try points.to(.float32, device: device)
        let voxelMm = try sources.voxelMm.to(.float32, device: device)
        let axes = reading.axes
        let depth = try Self.vector(axes.depth, device), first = try Self.vector(axes.first, device)
        let second = try Self.vector(axes.second, device)
        // The window's positions (k) around its centre, and the pixel offsets in voxels (B, 1, 1, P, 1, 1) and
        // (B, 1, 1, 1, P, 1) along the two in-plane axes.
        let steps = try Tensor.arange(0, Double(k), dtype: .float32, device: device).reshape([1, 1, k]) - Double(k - 1) / 2
        let offsets = try (Tensor.arange(0, Double(p), dtype: .float32, device: device) - Double(p - 1) / 2).reshape([1, 1, 1, p])
            * millimetres / voxelMm.reshape([b, 1, 1, 1])
        let u = try offsets.reshape([b, 1, 1, p, 1, 1]), v = try offsets.reshape([b, 1, 1, 1, p, 1])

        // Fallback planes along the depth axis.
        let planes = try steps.reshape([1, 1, k, 1, 1, 1]) * fallbackSpacing / voxelMm.reshape([b, 1, 1, 1, 1, 1])
        let fallback = try point.reshape([b, g, 1, 1, 1, 3]) + planes * depth.reshape([1, 1, 1, 1, 1, 3])
            + u * first.reshape([1, 1, 1, 1, 1, 3]) + v * second.reshape([1, 1, 1, 1, 1, 3])
        // The slices' values and points where they are read (not computed for a group read from the grid).
        let slice = useSlices ? try fromTheSlices(sources, channel: c, point: point, voxelMm: voxelMm, steps: steps, u: u, v: v,
                                                  axes: (depth, first, second)) : nil
        // Without the slices: all false (a distance is never negative).
        let fromSlices = try slice?.fromSlices ?? Tensor.zeros([b, g], device: device).lt(-1)
        let at = try (slice.map { try Tensor.where($0.fromSlices.reshape([b, g, 1, 1, 1, 1]), $0.points, fallback) } ?? fallback)
            .reshape([b, g * k, p, p, 3])
        // The grid at whichever points each crop takes.
        let grid = Array(x.shape[2...])
        let gridSampling = try Tensor.cat((0..<3).reversed().map { a in
            try Self.normalised(at.narrow(4, start: a, length: 1), grid[a])
        }, dim: 4)
        let fused = try Functional.gridSample(try x.to(.float32), grid: gridSampling, mode: .bilinear, padding: .zeros, alignCorners: true)
            .reshape([b, 3, g, k, p, p])
        let own = try slice.map { try Tensor.where($0.fromSlices.reshape([b, g, 1, 1, 1]), $0.values, fused.select(1, c)) }
            ?? fused.select(1, c)
        let channels = try (0..<3).map { $0 == c ? own : try fused.select(1, $0) }
        let crops = try Tensor.stack(channels, dim: 1)  // (B, 3, G, k, P, P)
            .permute([2, 0, 1, 3, 4, 5]).contiguous().reshape([g * b, 3, k, p, p])
        return (crops, fromSlices)
    }

    /// A (1, 1, 1, 3) vector.
    private static func vector(_ v: [Float], _ device: Device) throws -> Tensor { try Tensor(v, shape: [1, 1, 1, 3], device: device) }

    /// Voxel index `t` along an axis of `extent` voxels in `grid_sample`'s normalised coordinates (align_corners).
    private static func normalised(_ t: Tensor, _ extent: Int) throws -> Tensor { try t * (2 / Double(max(extent - 1, 1))) - 1 }

    /// The slice path of `callAsFunction` for `point` (B, G, 3) read on `channel`: which crops take the slices (B, G), their
    /// values (B, G, k, P, P) and the points they are read at (B, G, k, P, P, 3), in grid voxels.
    private func fromTheSlices(_ sources: SourceBatch, channel c: Int, point: Tensor, voxelMm: Tensor, steps: Tensor, u: Tensor, v: Tensor,
                               axes: (depth: Tensor, first: Tensor, second: Tensor)) throws -> (fromSlices: Tensor, values: Tensor, points: Tensor) {
        let b = point.shape[0], g = point.shape[1], k = slices, p = size, device = point.device
        let pixels = try sources.pixels[c].to(.float32, device: device), geometry = try sources.geometry[c].to(.float32, device: device)
        let valid = try sources.valid[c].to(.float32, device: device)
        let s = geometry.shape[1], rows = pixels.shape[2], columns = pixels.shape[3]
        guard s > 0, rows > 0, columns > 0 else { throw TrainError(.shape, "source crops need at least one (padding) slice per channel") }
        func dot(_ a: Tensor, _ b: Tensor) throws -> Tensor { try (a * b).sum([-1]) }

        // The nearest slice of each point, and its distance.
        let origin = try geometry.narrow(2, start: 0, length: 3), normal = try geometry.narrow(2, start: 9, length: 3)
        let distance = try dot(point.unsqueeze(2) - origin.unsqueeze(1), normal.unsqueeze(1)).abs()  // (B, G, S)
        let far = try distance + (1 - valid).unsqueeze(1) * 1e9
        let nearestIndex = try (far * -1).argmax(dim: 2, keepDim: true)  // (B, G, 1) int64
        let nearestDistance = try far.gather(dim: 2, index: nearestIndex).squeeze(2)  // (B, G) voxels
        let fromSlices = try (nearestDistance * voxelMm.reshape([b, 1])).le(reach)

        // The window: the nearest slice and its neighbours in the stored order, clamped to the sample's slices.
        let count = try valid.sum([1]).reshape([b, 1, 1])
        let wanted = try nearestIndex.to(.float32) + steps  // (B, G, k)
        var inside = try wanted.ge(0).to(.float32) * (wanted - count).lt(0).to(.float32)
        // Clamped to the sample's own slices (not the batch's padding), so a window past its last slice repeats it, and
        // a crop never depends on what else is in the batch.
        var window = try wanted.minimum(count - 1).clamp(min: 0)
        // Ordered along the depth axis: reversed where the window's last slice lies before its first.
        func slicesAt(_ index: Tensor) throws -> Tensor {  // (B, G, k) float → (B, G, k, 12)
            let i = try index.to(.int64).reshape([b, g * k, 1]).expand([b, g * k, 12])
            return try geometry.gather(dim: 1, index: i).reshape([b, g, k, 12])
        }
        func projections(_ at: Tensor) throws -> Tensor {  // (B, G, k, 12) → p projected onto each plane (B, G, k, 3)
            let o = try at.narrow(3, start: 0, length: 3), n = try at.narrow(3, start: 9, length: 3)
            let d = try dot(point.unsqueeze(2) - o, n).unsqueeze(3)
            return try point.unsqueeze(2) - d * n
        }
        let ends = try dot(projections(try slicesAt(window)), axes.depth)  // (B, G, k)
        let reversed = try (ends.narrow(2, start: k - 1, length: 1) - ends.narrow(2, start: 0, length: 1)).lt(0)
        window = try Tensor.where(reversed, window.flip([2]), window)
        inside = try Tensor.where(reversed, inside.flip([2]), inside)
        let chosen = try slicesAt(window)
        let o = try chosen.narrow(3, start: 0, length: 3), columnStep = try chosen.narrow(3, start: 3, length: 3)
        let rowStep = try chosen.narrow(3, start: 6, length: 3), n = try chosen.narrow(3, start: 9, length: 3)
        let centre = try projections(chosen)  // (B, G, k, 3)
        func inPlane(_ e: Tensor) throws -> Tensor {
            let along = try e - dot(e, n).unsqueeze(3) * n
            return try along / along.norm([3], keepDim: true).clamp(min: 1e-6)
        }
        let e1 = try inPlane(axes.first), e2 = try inPlane(axes.second)  // (B, G, k, 3)
        let onSlices = try centre.reshape([b, g, k, 1, 1, 3]) + u * e1.reshape([b, g, k, 1, 1, 3]) + v * e2.reshape([b, g, k, 1, 1, 3])
        // (B, G, k, P, P, 3)

        // The slices' values there: the window's slice index and each point's (row, column) on it.
        let relative = try onSlices - o.reshape([b, g, k, 1, 1, 3])
        func coordinate(_ step: Tensor) throws -> Tensor {
            let st = try step.reshape([b, g, k, 1, 1, 3])
            return try dot(relative, st) / dot(st, st).clamp(min: 1e-12)
        }
        let column = try coordinate(columnStep), row = try coordinate(rowStep)  // (B, G, k, P, P)
        let index = try window.reshape([b, g, k, 1, 1]).expand([b, g, k, p, p])
        let sampling = try Tensor.stack([Self.normalised(column, columns), Self.normalised(row, rows), Self.normalised(index, s)], dim: 5)
            .reshape([b, g * k, p, p, 3])
        let values = try Functional.gridSample(pixels.unsqueeze(1), grid: sampling, mode: .bilinear, padding: .zeros, alignCorners: true)
            .reshape([b, g, k, p, p]) * inside.reshape([b, g, k, 1, 1])
        return (fromSlices, values, onSlices)
    }
}
