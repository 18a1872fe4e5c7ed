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
    /// labels (`RSNA.labelColumns` order) and its label coordinates; returns the sample and its record.
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
        for (c, name) in Channels.names.enumerated() {
            let members = fused.filter { $0.kind.channel == c }
            var resampler = ChannelResampler(grid: grid, gapFactor: parameters.gapFactor, antialias: parameters.antialias)
            var stacks: [StackRecord] = []
            for s in members {
                for stack in s.stacks where !stack.slices.isEmpty {
                    let covered = try resampler.add(stack)
                    stacks.append(StackRecord(seriesID: s.seriesID, slices: stack.slices.count, spacing: stack.spacing,
                                              normal: stack.normal, coveredVoxels: covered))
                }
            }
            let (values, covered) = resampler.finish()
            let coveredValues = RobustRange.coveredValues(values, covered: covered)
            let range = RobustRange.percentiles(coveredValues, low: parameters.lowPercentile, high: parameters.highPercentile)
            volume.withUnsafeMutableBufferPointer { out in
                for i in 0..<n where covered[i] {
                    out[c * n + i] = Float16(RobustRange.normalize(values[i], low: range.low, high: range.high))
                }
            }
            // A series that misses the grid entirely gives a zero channel, which must read as absent too.
            channels.append(ChannelRecord(name: name, present: !coveredValues.isEmpty, stacks: stacks,
                                          coverage: Double(coveredValues.count) / Double(n), low: range.low, high: range.high))
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
                                 keypoints: keypoints, norm: channels.flatMap { [$0.low, $0.high] }, labels: labels)
        let record = FusionRecord(studyID: studyID, parameters: parameters, boxPolicy: policy, box: box, grid: grid,
                                  channels: channels, ignoredSeries: series.filter { $0.kind.channel == nil }.map(\.seriesID),
                                  keypointsPlaced: points.averaged.count, unresolvedCoordinates: points.unresolved)
        return (sample, record)
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

    /// Label coordinates in patient space: each placed point, the per-label mean, and those that could not be placed.
    private func placeCoordinates(_ coordinates: [LabelCoordinate], in series: [SeriesVolume])
        -> (placed: [(label: Int, position: Vec3)], averaged: [Int: Vec3], unresolved: [LabelCoordinate]) {
        var slices: [String: [Int: SliceGeometry]] = [:]
        for s in series {
            for stack in s.stacks { for slice in stack.slices { slices[s.seriesID, default: [:]][slice.instanceNumber] = slice.geometry } }
        }
        var placed: [(label: Int, position: Vec3)] = [], unresolved: [LabelCoordinate] = []
        for c in coordinates {
            guard (0..<RSNA.labelColumns.count).contains(c.labelIndex), c.x.isFinite, c.y.isFinite,
                  let g = slices[c.seriesID]?[c.instanceNumber] else { unresolved.append(c); continue }
            placed.append((c.labelIndex, g.patientPosition(row: c.y, column: c.x)))
        }
        let averaged = Dictionary(grouping: placed, by: \.label).mapValues { group in
            (1 / Double(group.count)) * group.map(\.position).reduce(Vec3.zero, +)
        }
        return (placed, averaged, unresolved)
    }
}
