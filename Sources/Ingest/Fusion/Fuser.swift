import Core
import Foundation
import Shards

/// Fuses a study's series into one patient-space grid: box, resampling per channel, normalization, keypoints.
///
/// Pure (no I/O, no shared state): the batch pipeline calls it per study from worker threads; memory is
/// a few grid-sized buffers plus the study's pixels.
public struct Fuser: Sendable {
    /// The parameters every study is fused with.
    public var parameters: FusionParameters

    /// A fuser with these parameters (the defaults: a 128³ isotropic grid over the sagittal field of view).
    public init(parameters: FusionParameters = FusionParameters()) { self.parameters = parameters }

    /// Fuses one study: its series (any order; kinds other than the three fused are ignored), its 25
    /// labels (`RSNA.labelColumns` order) and its label coordinates; returns the sample and its record. With
    /// `parameters.sourcePixels` the sample's `sources` hold the fused stacks' own slices (`sourcePixels(of:range:)`).
    public func fuse(series: [SeriesVolume], labels: [Int8], coordinates: [LabelCoordinate],
                     studyID: Int64) throws -> (sample: FusedSample, record: FusionRecord) {
        try parameters.validate()
        guard labels.count == RSNA.labelColumns.count else { throw FusionError.labelCount(studyID: studyID, count: labels.count) }
        let fused = series.filter { $0.kind.channel != nil && $0.stacks.contains { !$0.slices.isEmpty } }
        let points = placeCoordinates(coordinates, in: series)
        let (policy, box) = try chooseBox(fused, labelPoints: points.placed.map(\.position), studyID: studyID)
        let grid = Grid.sagittal(over: box, size: parameters.size, isotropic: parameters.isotropic)

        let n = grid.voxelCount
        var volume = [Float16](repeating: 0, count: 3 * n)
        var channels: [ChannelRecord] = []
        var sourceSlices: [SourceSlice] = [], sourceValues: [Float16] = []
        for (c, name) in Channels.names.enumerated() {
            let members = fused.filter { $0.kind.channel == c }
            let region = ChannelResampler.region(of: members.flatMap(\.stacks), in: grid)
            var resampler = ChannelResampler(grid: grid, gapFactor: parameters.gapFactor, antialias: parameters.antialias, region: region)
            var stacks: [StackRecord] = []
            for s in members {
                for stack in s.stacks where !stack.slices.isEmpty {
                    let covered = try resampler.add(stack)
                    stacks.append(StackRecord(seriesID: s.seriesID, slices: stack.slices.count, spacing: stack.spacing,
                                              normal: stack.normal, coveredVoxels: covered))
                }
            }
            let range = resampler.withAccumulators { sums, counts in
                // The sums become the channel's values (the coverage-weighted means) in the percentiles' first pass.
                let range = RobustRange.percentiles(ofMeans: sums, counts: counts, low: parameters.lowPercentile, high: parameters.highPercentile)
                // Each plane's rows of the region are one run of the volume; the voxels outside the region stay 0 (the
                // bits normalizeToHalf gives an uncovered voxel).
                let (H, W) = (grid.shape[1], grid.shape[2]), run = region.h.count * W
                for (i, d) in region.d.enumerated() {
                    RobustRange.normalizeToHalf(UnsafeBufferPointer(rebasing: sums[(i * run)..<((i + 1) * run)]),
                                                counts: UnsafeBufferPointer(rebasing: counts[(i * run)..<((i + 1) * run)]),
                                                low: range.low, high: range.high, into: &volume, at: c * n + (d * H + region.h.lowerBound) * W)
                }
                return range
            }
            // A series that misses the grid entirely gives a zero channel, which must read as absent too.
            channels.append(ChannelRecord(name: name, present: range.count > 0, stacks: stacks,
                                          coverage: Double(range.count) / Double(n), low: range.low, high: range.high))
            if parameters.sourcePixels, range.count > 0 {
                Self.appendSourceSlices(of: members.flatMap(\.stacks), channel: c, low: range.low, high: range.high,
                                        slices: &sourceSlices, values: &sourceValues)
            }
        }

        var keypoints = [Float](repeating: .nan, count: 3 * RSNA.labelColumns.count)
        for (label, position) in points.averaged {
            let v = grid.voxelIndex(of: position)
            keypoints[3 * label] = Float(v.x)
            keypoints[3 * label + 1] = Float(v.y)
            keypoints[3 * label + 2] = Float(v.z)
        }
        let sample = FusedSample(studyID: studyID, shape: grid.shape, volume: volume,
                                 present: channels.map { $0.present ? 1 : 0 }, affine: grid.affine,
                                 keypoints: keypoints, norm: channels.flatMap { [$0.low, $0.high] }, labels: labels,
                                 sources: SourcePixels(slices: sourceSlices, pixels: sourceValues))
        let record = FusionRecord(studyID: studyID, parameters: parameters, boxPolicy: policy, box: box, grid: grid,
                                  channels: channels, ignoredSeries: series.filter { $0.kind.channel == nil }.map(\.seriesID),
                                  keypointsPlaced: points.averaged.count, unresolvedCoordinates: points.unresolved)
        return (sample, record)
    }

    /// Appends channel `channel`'s source slices: every slice of `stacks` (the fused series' stacks, not the
    /// re-acquisitions left out), ordered by their offset along their normal (stable: ties keep the stacks' order), each
    /// normalized with the channel's range as the grid is ((v − low) / (high − low) clamped to [0, 1]; 0 when high ≤ low)
    /// and rounded to float16, with its geometry (data-schema.md "Source pixels"). A slice the schema cannot hold — a
    /// matrix over `ShardSchema.maxSourceMatrix` either way, pixels that do not fill it, or a degenerate plane — is left
    /// out (the grid, which resamples it, does not need it whole).
    static func appendSourceSlices(of stacks: [Stack], channel: Int, low: Float, high: Float,
                                   slices: inout [SourceSlice], values: inout [Float16]) {
        let ordered = stacks.flatMap(\.slices).enumerated()
            .sorted { ($0.element.geometry.normalOffset, $0.offset) < ($1.element.geometry.normalOffset, $1.offset) }
            .map(\.element)
        let matrix = 1...ShardSchema.maxSourceMatrix
        for slice in ordered {
            let g = slice.geometry
            let rowDirection = g.rowDirection.normalized, columnDirection = g.columnDirection.normalized
            let columnStep = g.columnSpacing * rowDirection, rowStep = g.rowSpacing * columnDirection
            let normal = rowDirection.cross(columnDirection).normalized
            guard matrix.contains(g.rows), matrix.contains(g.columns), slice.pixels.count == g.rows * g.columns,
                  g.position.isFinite, columnStep.isFinite, rowStep.isFinite, columnStep.length > 0, rowStep.length > 0,
                  abs(normal.length - 1) < 1e-6 else { continue }
            slices.append(SourceSlice(channel: channel, rows: g.rows, columns: g.columns, geometry: [
                g.position.x, g.position.y, g.position.z, columnStep.x, columnStep.y, columnStep.z,
                rowStep.x, rowStep.y, rowStep.z, normal.x, normal.y, normal.z,
            ]))
            let start = values.count
            values.append(contentsOf: repeatElement(Float16(0), count: slice.pixels.count))
            guard high > low else { continue }
            let range = high - low
            slice.pixels.withUnsafeBufferPointer { pixels in
                withUnsafeTemporaryAllocation(of: Float.self, capacity: pixels.count) { scratch in
                    for j in 0..<pixels.count { scratch[j] = min(max((pixels[j] - low) / range, 0), 1) }
                    values.withUnsafeMutableBufferPointer { out in
                        HalfConversion.convert(UnsafeBufferPointer(scratch), into: UnsafeMutableBufferPointer(rebasing: out[start...]))
                    }
                }
            }
        }
    }

    /// The box policy used and its box; for `.fixed`, a cube centred on the spine centre.
    private func chooseBox(_ series: [SeriesVolume], labelPoints: [Vec3], studyID: Int64) throws -> (GridBoxPolicy, PatientBox) {
        func fieldOfView(_ s: [SeriesVolume]) -> PatientBox? {
            s.flatMap(\.stacks).compactMap(PatientBox.covering).reduce(nil) { $0?.union($1) ?? $1 }
        }
        guard let union = fieldOfView(series) else { throw FusionError.noSeries(studyID: studyID) }
        let sagittal = fieldOfView(series.filter { $0.kind == .sagittalT1 || $0.kind == .sagittalT2 })
        switch parameters.box {
        case .sagittalFieldOfView:
            return sagittal.map { (.sagittalFieldOfView, $0) } ?? (.union, union)
        case .union:
            return (.union, union)
        case .referenceSeries(let id):
            guard let box = fieldOfView(series.filter { $0.seriesID == id }) else {
                throw FusionError.referenceSeriesMissing(studyID: studyID, seriesID: id)
            }
            return (.referenceSeries(id), box)
        case .fixed(let mm):
            let centre = labelPoints.isEmpty
                ? (sagittal ?? union).centre
                : (1 / Double(labelPoints.count)) * labelPoints.reduce(Vec3.zero, +)
            let half = Vec3(mm / 2, mm / 2, mm / 2)
            return (.fixed(millimetres: mm), PatientBox(lower: centre - half, upper: centre + half))
        }
    }

    /// Label coordinates in patient space: each placed point, the per-label mean, and the rows left unplaced.
    ///
    /// A row is placed only on an image known without doubt: the one file of its series with its
    /// InstanceNumber (or the one slice whose same-pixel files carry it), and in a multi-frame file the frame the row names. A row naming an instance that
    /// is not there, a number several files share, or a multi-frame file without (or with a missing)
    /// frame stays unplaced with its reason: a point on a guessed slice could lie centimetres away.
    private func placeCoordinates(_ coordinates: [LabelCoordinate], in series: [SeriesVolume])
        -> (placed: [(label: Int, position: Vec3)], averaged: [Int: Vec3], unresolved: [UnresolvedCoordinate]) {
        var slices: [String: [Int: [Slice]]] = [:]
        for s in series {
            for slice in s.stacks.flatMap(\.slices) + s.reacquisitions {
                for number in [slice.instanceNumber] + slice.sameImageInstanceNumbers {
                    slices[s.seriesID, default: [:]][number, default: []].append(slice)
                }
            }
        }
        var placed: [(label: Int, position: Vec3)] = [], unresolved: [UnresolvedCoordinate] = []
        for c in coordinates {
            switch Self.image(of: c, in: slices) {
            case .success(let g): placed.append((c.labelIndex, g.patientPosition(row: c.y, column: c.x)))
            case .failure(let why): unresolved.append(UnresolvedCoordinate(coordinate: c, reason: why.reason))
            }
        }
        let averaged = Dictionary(grouping: placed, by: \.label).mapValues { group in
            (1 / Double(group.count)) * group.map(\.position).reduce(Vec3.zero, +)
        }
        return (placed, averaged, unresolved)
    }

    /// Why a label coordinate has no image.
    private struct Unplaced: Error {
        var reason: String
    }

    /// The geometry of the one image `c` names, or why there is none beyond doubt.
    private static func image(of c: LabelCoordinate, in slices: [String: [Int: [Slice]]]) -> Result<SliceGeometry, Unplaced> {
        guard (0..<RSNA.labelColumns.count).contains(c.labelIndex) else { return .failure(Unplaced(reason: "label index \(c.labelIndex) is not one of the 25")) }
        guard c.x.isFinite, c.y.isFinite else { return .failure(Unplaced(reason: "x or y is not a finite number")) }
        guard let instances = slices[c.seriesID] else {
            return .failure(Unplaced(reason: "series \(c.seriesID) is not fused in this study"))
        }
        guard let candidates = instances[c.instanceNumber] else {
            return .failure(Unplaced(reason: "series \(c.seriesID) has no image with instance number \(c.instanceNumber)"))
        }
        let files = Set(candidates.map(\.source)).sorted()
        guard files.count == 1 else {
            return .failure(Unplaced(reason: "instance number \(c.instanceNumber) names \(files.count) files of series \(c.seriesID) (\(files.joined(separator: ", ")))"))
        }
        guard candidates[0].frameNumber != nil else {
            guard c.frameNumber == nil || c.frameNumber == 1 else {
                return .failure(Unplaced(reason: "\(c.imageName): the image is a single-frame file, it has no frame \(c.frameNumber!)"))
            }
            return .success(candidates[0].geometry)
        }
        guard let frame = c.frameNumber else {
            return .failure(Unplaced(reason: "\(c.imageName) is a multi-frame file (\(files[0])) and the row names no frame (frame_number)"))
        }
        guard let slice = candidates.first(where: { $0.frameNumber == frame }) else {
            return .failure(Unplaced(reason: "\(c.imageName): the file has no such frame among the series' slices"))
        }
        return .success(slice.geometry)
    }
}
