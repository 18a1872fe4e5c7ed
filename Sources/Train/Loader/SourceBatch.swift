import Foundation
import Shards

/// One sample's source slices prepared for a batch: per channel, the slices' values and their geometry in the sample's
/// grid voxels (a reader thread makes it; `SourceBatch.init(samples:)` pads a batch of them).
struct SampleSources: Sendable {
    /// Per channel (Channels order): the slices' sizes, values (concatenated, row-major) and 12 geometry numbers each
    /// (`SourceBatch.geometry`).
    var rows: [[Int]], columns: [[Int]], pixels: [[Float16]], geometry: [[Float]]
    /// Millimetres per grid voxel.
    var voxelMm: Float

    /// The slices of `sources` of `channels` in the voxels of the grid whose voxel → patient map is `affine` (4 × 4
    /// row-major), or an error naming what is wrong (a singular affine, or a slice whose geometry leaves the grid's frame
    /// degenerate).
    init(_ sources: SourcePixels, affine: ArraySlice<Double>, channels: Set<Int> = [0, 1, 2]) throws {
        let a = Array(affine)
        guard a.count == 16 else { throw TrainError(.loader, "an affine has 16 numbers, not \(a.count)") }
        let l = [[a[0], a[1], a[2]], [a[4], a[5], a[6]], [a[8], a[9], a[10]]], t = [a[3], a[7], a[11]]
        guard let inverse = Self.invert(l) else { throw TrainError(.loader, "the sample's affine is singular") }
        func apply(_ v: [Double]) -> [Double] { (0..<3).map { i in (0..<3).reduce(0) { $0 + inverse[i][$1] * v[$1] } } }
        voxelMm = Float((l[0][0] * l[0][0] + l[1][0] * l[1][0] + l[2][0] * l[2][0]).squareRoot())
        rows = Array(repeating: [], count: 3)
        columns = rows
        pixels = Array(repeating: [], count: 3)
        geometry = Array(repeating: [], count: 3)
        var offset = 0
        for slice in sources.slices {
            let g = slice.geometry, c = slice.channel
            guard (0..<3).contains(c) else { throw TrainError(.loader, "a source slice of channel \(c)") }
            defer { offset += slice.pixelCount }
            guard channels.contains(c) else { continue }
            let origin = apply(zip(g[0..<3], t).map(-))
            let column = apply(Array(g[3..<6])), row = apply(Array(g[6..<9]))
            let cross = [column[1] * row[2] - column[2] * row[1], column[2] * row[0] - column[0] * row[2],
                         column[0] * row[1] - column[1] * row[0]]
            let length = (cross.reduce(0) { $0 + $1 * $1 }).squareRoot()
            guard length.isFinite, length > 0, (origin + column + row).allSatisfy(\.isFinite) else {
                throw TrainError(.loader, "a source slice of channel \(c) has a degenerate geometry in the grid's voxels")
            }
            rows[c].append(slice.rows)
            columns[c].append(slice.columns)
            geometry[c] += (origin + column + row + cross.map { $0 / length }).map(Float.init)
            pixels[c] += sources.pixels[offset..<(offset + slice.pixelCount)]
        }
    }

    /// A 3 × 3 inverse, nil when singular.
    static func invert(_ m: [[Double]]) -> [[Double]]? {
        let det = m[0][0] * (m[1][1] * m[2][2] - m[1][2] * m[2][1]) - m[0][1] * (m[1][0] * m[2][2] - m[1][2] * m[2][0])
            + m[0][2] * (m[1][0] * m[2][1] - m[1][1] * m[2][0])
        guard det.isFinite, abs(det) > 1e-12 else { return nil }
        let c: [[Double]] = (0..<3).map { i in
            (0..<3).map { j in
                let r = [0, 1, 2].filter { $0 != j }, k = [0, 1, 2].filter { $0 != i }
                let minor = m[r[0]][k[0]] * m[r[1]][k[1]] - m[r[0]][k[1]] * m[r[1]][k[0]]
                return ((i + j) % 2 == 0 ? 1 : -1) * minor / det
            }
        }
        return c
    }
}

/// A batch's source slices, from which the two-stage model cuts its stage-two crops at the scanner's resolution
/// (`SourceCrops`). Per channel (`Channels` order), the samples' slices padded to the batch's largest count and matrix;
/// the geometry is in each sample's grid voxels (d, h, w), so the augmenter moves the slices with the grid.
public struct SourceBatch {
    /// Per channel: (B, S, R, C) float16, the slices' values (normalized as the grid), zero beyond each slice's rows,
    /// columns and the sample's slice count. S, R and C are at least 1.
    public var pixels: [Tensor]
    /// Per channel: (B, S, 12) float32, each slice in its sample's grid voxels: the centre of pixel (0, 0), the column
    /// step, the row step, the unit normal; zeros for padding.
    public var geometry: [Tensor]
    /// Per channel: (B, S) float32, 1 for a slice, 0 for padding. A sample's slices come first, in their stored order
    /// (their position along their normal).
    public var valid: [Tensor]
    /// (B) float32 millimetres per grid voxel.
    public var voxelMm: Tensor

    /// A batch from its parts.
    public init(pixels: [Tensor], geometry: [Tensor], valid: [Tensor], voxelMm: Tensor) {
        self.pixels = pixels
        self.geometry = geometry
        self.valid = valid
        self.voxelMm = voxelMm
    }

    /// Pads a batch of samples' sources (on the CPU).
    init(samples: [SampleSources]) throws {
        let b = samples.count
        var pixels: [Tensor] = [], geometry: [Tensor] = [], valid: [Tensor] = []
        for c in 0..<3 {
            let s = max(1, samples.map { $0.rows[c].count }.max() ?? 0)
            let r = max(1, samples.flatMap { $0.rows[c] }.max() ?? 0), w = max(1, samples.flatMap { $0.columns[c] }.max() ?? 0)
            var values = [Float16](repeating: 0, count: b * s * r * w)
            var g = [Float](repeating: 0, count: b * s * 12), v = [Float](repeating: 0, count: b * s)
            for (i, sample) in samples.enumerated() {
                var from = 0
                for k in sample.rows[c].indices {
                    let (rows, columns) = (sample.rows[c][k], sample.columns[c][k])
                    let base = (i * s + k) * r * w
                    for y in 0..<rows {
                        values.replaceSubrange((base + y * w)..<(base + y * w + columns),
                                               with: sample.pixels[c][(from + y * columns)..<(from + (y + 1) * columns)])
                    }
                    from += rows * columns
                    g.replaceSubrange(((i * s + k) * 12)..<((i * s + k) * 12 + 12), with: sample.geometry[c][(k * 12)..<(k * 12 + 12)])
                    v[i * s + k] = 1
                }
            }
            pixels.append(try Tensor(values, shape: [b, s, r, w]))
            geometry.append(try Tensor(g, shape: [b, s, 12]))
            valid.append(try Tensor(v, shape: [b, s]))
        }
        self.init(pixels: pixels, geometry: geometry, valid: valid, voxelMm: try Tensor(samples.map(\.voxelMm), shape: [b]))
    }

    /// Samples with at least one slice of channel `c`.
    public func hasSlices(channel c: Int) throws -> Tensor { try valid[c].max([1]).gt(0) }

    /// On `device`.
    public func to(device: Device) throws -> SourceBatch {
        SourceBatch(pixels: try pixels.map { try $0.to(device: device) }, geometry: try geometry.map { try $0.to(device: device) },
                    valid: try valid.map { try $0.to(device: device) }, voxelMm: try voxelMm.to(device: device))
    }

    /// The slices of every sample where `mask` (B, bool) is set mirrored as the grid is by a flip along d (voxel
    /// d → `depth` − 1 − d), the others unchanged.
    public func mirrored(depth: Int, where mask: Tensor? = nil) throws -> SourceBatch {
        var out = self
        for c in 0..<3 {
            let g = geometry[c], device = g.device
            let sign = try Tensor((0..<12).map { $0 % 3 == 0 ? Float(-1) : 1 }, shape: [1, 1, 12], device: device)
            let shift = try Tensor((0..<12).map { $0 == 0 ? Float(depth - 1) : 0 }, shape: [1, 1, 12], device: device)
            // Padding stays zero: its valid flag keeps it out of every crop.
            let flipped = try (g * sign + shift) * valid[c].unsqueeze(2)
            out.geometry[c] = try mask.map { try Tensor.where($0.reshape([g.shape[0], 1, 1]), flipped, g) } ?? flipped
        }
        return out
    }

    /// Rows `rows` (int64 indices) moved by the voxel maps v ↦ `linear` · v + `shift` ((n, 3, 3) and (n, 1, 3), as the
    /// augmenter moves keypoints): origins by the whole map, steps by its linear part, normals by it renormalized (the
    /// maps are similarities).
    func mapped(rows: Tensor, linear: Tensor, shift: Tensor) throws -> SourceBatch {
        var out = self
        for c in 0..<3 {
            let g = try geometry[c].indexSelect(dim: 0, index: rows)
            let n = g.shape[0], s = g.shape[1]
            let moved = try g.reshape([n, s * 4, 3]).matmul(linear.transpose(1, 2)).reshape([n, s, 4, 3])
            let origin = try moved.narrow(2, start: 0, length: 1) + shift.reshape([n, 1, 1, 3])
            let steps = try moved.narrow(2, start: 1, length: 2)
            let normal = try moved.narrow(2, start: 3, length: 1)
            let unit = try normal / normal.norm([3], keepDim: true).clamp(min: 1e-12)
            let valid = try self.valid[c].indexSelect(dim: 0, index: rows).reshape([n, s, 1])
            let rebuilt = try Tensor.cat([origin, steps, unit], dim: 2).reshape([n, s, 12]) * valid
            out.geometry[c] = try geometry[c].indexCopy(dim: 0, index: rows, source: rebuilt)
        }
        return out
    }
}
