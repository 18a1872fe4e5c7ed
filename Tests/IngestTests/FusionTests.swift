import Foundation
@testable import Ingest
import Shards
import XCTest

/// End-to-end fusion of the phantom study onto a 32³ grid (2.5 mm voxels over the sagittal field of view).
final class FusionTests: XCTestCase {
    let fuser = Fuser(parameters: FusionParameters(size: 32))

    func fuseAll(_ coordinates: [LabelCoordinate] = []) throws -> (sample: FusedSample, record: FusionRecord) {
        try fuser.fuse(series: [FusionPhantom.axialT2(), FusionPhantom.sagittalT2(), FusionPhantom.sagittalT1()],
                       labels: FusionPhantom.noLabels, coordinates: coordinates, studyID: 42)
    }

    /// Centroid (d, h, w) of the voxels of channel `c` normalization saturated at 1 (the marker's core).
    func brightCentroid(_ s: FusedSample, channel c: Int) -> [Double] {
        let n = s.shape.reduce(1, *)
        var total = [0.0, 0.0, 0.0], count = 0.0
        for i in 0..<n where s.volume[c * n + i] >= 1 {
            total[0] += Double(i / (s.shape[1] * s.shape[2]))
            total[1] += Double((i / s.shape[2]) % s.shape[1])
            total[2] += Double(i % s.shape[2])
            count += 1
        }
        return total.map { $0 / count }
    }

    func testGridIsTheSagittalFieldOfViewAsAnIsotropicCube() throws {
        let (sample, record) = try fuseAll()
        XCTAssertEqual(record.boxPolicy, .sagittalFieldOfView)
        // Sagittal T1: slices x = −22…22 reaching 2 mm beyond, pixels over y, z ∈ [−40, 40]; T2 lies inside it.
        XCTAssertEqual(record.box.lower.x, -24, accuracy: 1e-9)
        XCTAssertEqual(record.box.upper.x, 24, accuracy: 1e-9)
        XCTAssertEqual(record.box.lower.y, -40, accuracy: 1e-9)
        XCTAssertEqual(record.box.upper.z, 40, accuracy: 1e-9)
        XCTAssertEqual(sample.shape, [32, 32, 32])
        // 80 mm / 32 voxels = 2.5 mm; voxel (0, 0, 0) centred 1.25 mm inside the (−40, −40, +40) corner.
        XCTAssertEqual(sample.affine, [2.5, 0, 0, -38.75,
                                       0, 0, 2.5, -38.75,
                                       0, -2.5, 0, 38.75,
                                       0, 0, 0, 1])
        XCTAssertEqual(sample.present, [1, 1, 1])
    }

    func testMarkerLandsOnItsVoxelInEveryChannel() throws {
        let (sample, record) = try fuseAll()
        // (6 + 38.75) / 2.5 = 17.9, (38.75 − 20.69) / 2.5 = 7.22, (3.94 + 38.75) / 2.5 = 17.08.
        let expected = record.grid.voxelIndex(of: FusionPhantom.marker)
        XCTAssertEqual(expected.x, 17.9, accuracy: 1e-9)
        XCTAssertEqual(expected.y, 7.22, accuracy: 0.01)
        XCTAssertEqual(expected.z, 17.08, accuracy: 0.01)
        for c in 0..<3 {
            // The top 0.5 % of covered voxels saturate at 1: the marker's core, whose centre is the marker.
            let core = brightCentroid(sample, channel: c)
            XCTAssertEqual(core[0], expected.x, accuracy: 1, "channel \(c) core \(core)")
            XCTAssertEqual(core[1], expected.y, accuracy: 1, "channel \(c) core \(core)")
            XCTAssertEqual(core[2], expected.z, accuracy: 1, "channel \(c) core \(core)")
        }
    }

    func testAxialChannelIsFilledInsideStacksAndEmptyBetweenThem() throws {
        let (sample, record) = try fuseAll()
        let n = 32 * 32 * 32
        // The column through x = 1.25, y = 1.25, running down h.
        let d = 16, w = 16
        var filled = 0, empty = 0
        for h in 0..<32 {
            let p = record.grid.patientPosition(d: Double(d), h: Double(h), w: Double(w))
            // Covered when within 6 mm (two 4 mm gaps / 2 + half a spacing) of some stack's middle plane.
            let distances = FusionPhantom.axialStacks.map { abs((p - $0.centre).dot(FusionPhantom.axialNormal($0.tilt))) }
            let value = Float(sample.volume[2 * n + d * 1024 + h * 32 + w])
            if distances.contains(where: { $0 < 5.99 }) {
                XCTAssertGreaterThan(value, 0, "h \(h) (z \(p.z)) lies inside a stack")
                filled += 1
            } else if distances.allSatisfy({ $0 > 6.01 }) {
                XCTAssertEqual(value, 0, "h \(h) (z \(p.z)) lies outside every stack")
                if abs(p.z) < 20 { empty += 1 }
            }
        }
        // Each stack reaches 6 mm along its tilted normal: 4 plane centres each, plus z = 26.25, −6.25 and −13.75,
        // which the tilt brings to 5.94 mm of a stack; the gaps keep z = 6.25…13.75 and −8.75, −11.25 empty.
        XCTAssertEqual(filled, 15)
        XCTAssertEqual(empty, 6)
    }

    func testNormalizationUsesPercentilesOfCoveredVoxels() throws {
        let (sample, record) = try fuseAll()
        var resampler = ChannelResampler(grid: record.grid, gapFactor: 1.5, antialias: true)
        for stack in FusionPhantom.sagittalT1().stacks { try resampler.add(stack) }
        let (values, covered) = resampler.finish()
        let sorted = zip(values, covered).compactMap { $1 ? $0 : nil }.sorted()
        func percentile(_ q: Double) -> Float {
            let pos = q / 100 * Double(sorted.count - 1), k = Int(pos)
            return sorted[k] + (sorted[min(k + 1, sorted.count - 1)] - sorted[k]) * Float(pos - Double(k))
        }
        XCTAssertEqual(sample.norm[0], percentile(0.5), accuracy: 1e-3)
        XCTAssertEqual(sample.norm[1], percentile(99.5), accuracy: 1e-3)
        XCTAssertEqual(sample.norm[0], 100, accuracy: 0.01, "the background is 100")
        XCTAssertEqual(record.channels[0].low, sample.norm[0])
        // Sagittal T1 covers x ∈ [−24, 24]: the centres of d-planes 6…25 (x = −23.75…23.75), whole.
        XCTAssertEqual(record.channels[0].coverage, Double(sorted.count) / 32768)
        XCTAssertEqual(sorted.count, 20 * 32 * 32)
        // A covered voxel's stored value is its raw value mapped through (low, high).
        // Voxel (17, 11, 17) = (3.75, 3.75, 11.25) sits 9.7 mm from the marker: raw ≈ 105.
        let i = 17 * 1024 + 11 * 32 + 17
        let expected = min(max((values[i] - sample.norm[0]) / (sample.norm[1] - sample.norm[0]), 0), 1)
        XCTAssertEqual(Float(sample.volume[i]), expected, accuracy: 1e-3)
        XCTAssertGreaterThan(expected, 0.01)
        XCTAssertLessThan(expected, 0.99)
    }

    func testMissingSeriesIsAZeroChannelWithPresentZero() throws {
        let (sample, record) = try fuser.fuse(series: [FusionPhantom.sagittalT1(), FusionPhantom.axialT2()],
                                              labels: FusionPhantom.noLabels, coordinates: [], studyID: 7)
        XCTAssertEqual(sample.present, [1, 0, 1])
        let n = 32 * 32 * 32
        XCTAssertTrue(sample.volume[n..<(2 * n)].allSatisfy { $0 == 0 })
        XCTAssertEqual(Array(sample.norm[2...3]), [0, 0])
        XCTAssertEqual(record.channels[1].coverage, 0)
        XCTAssertEqual(record.channels[2].stacks.count, 3)
        XCTAssertEqual(record.channels[2].stacks.map(\.slices), [3, 3, 3])
    }

    func testKeypointsAreMappedThroughTheirSliceToVoxels() throws {
        // T1 instance 106 is the slice at x = −2; pixel (row 20, column 30) sits at (−2, −10, 20).
        let coordinates = [
            LabelCoordinate(seriesID: "1001", instanceNumber: 106, labelIndex: 3, x: 30, y: 20),
            LabelCoordinate(seriesID: "1001", instanceNumber: 106, labelIndex: 7, x: 30, y: 20),
            LabelCoordinate(seriesID: "1001", instanceNumber: 106, labelIndex: 7, x: 40, y: 30),
            LabelCoordinate(seriesID: "1001", instanceNumber: 999, labelIndex: 9, x: 1, y: 1),
        ]
        let (sample, record) = try fuseAll(coordinates)
        XCTAssertEqual(sample.keypoints[9], 14.7, accuracy: 1e-4)
        XCTAssertEqual(sample.keypoints[10], 7.5, accuracy: 1e-4)
        XCTAssertEqual(sample.keypoints[11], 11.5, accuracy: 1e-4)
        // Two points for one label are averaged: (−2, −5, 15) → (14.7, 9.5, 13.5).
        for (got, want) in zip(sample.keypoints[21...23], [14.7, 9.5, 13.5] as [Float]) { XCTAssertEqual(got, want, accuracy: 1e-4) }
        XCTAssertTrue(sample.keypoints[27].isNaN, "an unknown instance places no keypoint")
        XCTAssertTrue(sample.keypoints[0].isNaN)
        XCTAssertEqual(record.keypointsPlaced, 2)
        XCTAssertEqual(record.unresolvedCoordinates.map(\.coordinate.instanceNumber), [999])
        XCTAssertEqual(record.unresolvedCoordinates.map(\.reason), ["series 1001 has no image with instance number 999"])
    }

    /// An instance number two files of one series share names no slice beyond doubt: the row is left unplaced
    /// (a guess could be a whole slice spacing or a stack away), and a single-frame file has no frame 2.
    func testRowsOnAnInstanceNumberTwoFilesShareOrOnAFrameASingleFileLacksAreUnresolved() throws {
        var t1 = FusionPhantom.sagittalT1()
        t1.stacks[0].slices[0].instanceNumber = 106
        let coordinates = [
            LabelCoordinate(seriesID: "1001", instanceNumber: 106, labelIndex: 3, x: 30, y: 20),
            LabelCoordinate(seriesID: "1001", instanceNumber: 105, labelIndex: 4, x: 30, y: 20, frameNumber: 2),
            LabelCoordinate(seriesID: "1001", instanceNumber: 105, labelIndex: 5, x: 30, y: 20, frameNumber: 1),
        ]
        let (sample, record) = try fuser.fuse(series: [FusionPhantom.axialT2(), t1], labels: FusionPhantom.noLabels,
                                              coordinates: coordinates, studyID: 42)
        XCTAssertTrue(sample.keypoints[9].isNaN)
        XCTAssertTrue(sample.keypoints[12].isNaN)
        XCTAssertFalse(sample.keypoints[15].isNaN, "frame 1 of a single-frame file is the file")
        XCTAssertEqual(record.unresolvedCoordinates.map(\.reason), [
            "instance number 106 names 2 files of series 1001 (phantom/106.dcm, phantom/112.dcm)",
            "series 1001 instance 105 frame 2: the image is a single-frame file, it has no frame 2",
        ])
    }

    func testBoxPolicies() throws {
        let series = [FusionPhantom.sagittalT1(), FusionPhantom.sagittalT2(), FusionPhantom.axialT2()]
        func fuse(_ box: GridBoxPolicy, _ series: [SeriesVolume], _ coordinates: [LabelCoordinate] = []) throws -> FusionRecord {
            try Fuser(parameters: FusionParameters(size: 16, box: box)).fuse(series: series, labels: FusionPhantom.noLabels,
                                                                            coordinates: coordinates, studyID: 1).record
        }
        // Union: the axial slices reach x = ±30.
        let union = try fuse(.union, series)
        XCTAssertEqual(union.box.lower.x, -30, accuracy: 1e-9)
        XCTAssertEqual(union.box.upper.x, 30, accuracy: 1e-9)
        // Reference T2: x = −19.8…19.8 ± 2.2, y ∈ [−35, 35].
        let reference = try fuse(.referenceSeries("1002"), series)
        XCTAssertEqual(reference.box.lower.x, -22, accuracy: 1e-9)
        XCTAssertEqual(reference.box.upper.y, 35, accuracy: 1e-9)
        XCTAssertEqual(reference.grid.spacing[0], 70.0 / 16, accuracy: 1e-9)
        // Fixed 64 mm around the label point (−2, −10, 20): 4 mm voxels.
        let point = LabelCoordinate(seriesID: "1001", instanceNumber: 106, labelIndex: 0, x: 30, y: 20)
        let fixed = try fuse(.fixed(millimetres: 64), series, [point])
        XCTAssertEqual(fixed.box.centre, Vec3(-2, -10, 20))
        XCTAssertEqual(fixed.grid.spacing, [4, 4, 4])
        let centre = fixed.grid.voxelIndex(of: Vec3(-2, -10, 20))
        XCTAssertEqual(centre.x, 7.5, accuracy: 1e-9)
        XCTAssertEqual(centre.y, 7.5, accuracy: 1e-9)
        XCTAssertEqual(centre.z, 7.5, accuracy: 1e-9)
        // A 10 mm box around a point at z = −35 misses every axial stack: the axial channel reads as absent.
        let low = LabelCoordinate(seriesID: "1001", instanceNumber: 106, labelIndex: 0, x: 30, y: 75)
        let (lowSample, lowRecord) = try Fuser(parameters: FusionParameters(size: 8, box: .fixed(millimetres: 10)))
            .fuse(series: series, labels: FusionPhantom.noLabels, coordinates: [low], studyID: 1)
        XCTAssertEqual(lowSample.present, [1, 1, 0])
        XCTAssertEqual(lowRecord.channels[2].stacks.count, 3)
        XCTAssertEqual(lowRecord.channels[2].coverage, 0)
        // Without sagittal series the default box falls back to the union, and the record says so.
        let axialOnly = try fuse(.sagittalFieldOfView, [FusionPhantom.axialT2()])
        XCTAssertEqual(axialOnly.boxPolicy, .union)
        // Anisotropic: each axis spans its own edge of the sagittal box (48, 80, 80 mm) in 16 voxels.
        let stretched = try Fuser(parameters: FusionParameters(size: 16, isotropic: false))
            .fuse(series: series, labels: FusionPhantom.noLabels, coordinates: [], studyID: 1).record
        XCTAssertEqual(stretched.grid.spacing, [3, 5, 5])
        XCTAssertEqual(stretched.grid.origin, Vec3(-22.5, -37.5, 37.5))
        XCTAssertThrowsError(try fuse(.referenceSeries("404"), series)) { error in
            XCTAssertEqual(error as? FusionError, .referenceSeriesMissing(studyID: 1, seriesID: "404"))
        }
        XCTAssertThrowsError(try fuse(.union, []))
    }

    func testConcurrentFusionsAreIdenticalToASequentialOne() throws {
        let reference = try fuseAll().sample
        // Each thread writes its own slot of `results`; fuseAll only reads the test's `let fuser`.
        nonisolated(unsafe) let results = UnsafeMutableBufferPointer<[Float16]>.allocate(capacity: 3), test = self
        results.initialize(repeating: [])
        defer { results.deallocate() }
        DispatchQueue.concurrentPerform(iterations: 3) { i in results[i] = (try? test.fuseAll().sample.volume) ?? [] }
        for r in results { XCTAssertTrue(r == reference.volume) }
    }

    /// Four voxels at a time (AVX2) over each row's run of voxels within the stack's reach, and one at a time over every
    /// voxel of the stack's box, give the same bits: tilted axial stacks (the slice below a voxel changes along a row, and
    /// the run starts and ends inside the row, with the offset rising along w for two stacks and falling for one), stack
    /// edges, hull edges, and a grid whose rows are not a multiple of four.
    func testVectorisedResamplingEqualsOneVoxelAtATime() throws {
        try XCTSkipUnless(ChannelResampler.vectorsAvailable, "this CPU has no AVX2: only the one-voxel path runs")
        let series = [FusionPhantom.axialT2(), FusionPhantom.sagittalT2(), FusionPhantom.sagittalT1()]
        for size in [32, 45] {
            let fuser = Fuser(parameters: FusionParameters(size: size))
            let vectorised = try fuser.fuse(series: series, labels: FusionPhantom.noLabels, coordinates: [], studyID: 1)
            let scalar = try ChannelResampler.withoutVectors {
                try fuser.fuse(series: series, labels: FusionPhantom.noLabels, coordinates: [], studyID: 1)
            }
            XCTAssertTrue(vectorised.sample.volume.map(\.bitPattern) == scalar.sample.volume.map(\.bitPattern), "size \(size)")
            XCTAssertEqual(vectorised.record.channels.map(\.coverage), scalar.record.channels.map(\.coverage))
            XCTAssertEqual(vectorised.sample.norm, scalar.sample.norm)
            XCTAssertGreaterThan(vectorised.record.channels[2].coverage, 0, "the axial channel is resampled")
        }
    }

    func testMalformedSliceNamesItsFile() {
        var t1 = FusionPhantom.sagittalT1()
        t1.stacks[0].slices[3].pixels.removeLast()
        XCTAssertThrowsError(try fuser.fuse(series: [t1], labels: FusionPhantom.noLabels, coordinates: [], studyID: 3)) { error in
            XCTAssertEqual("\(error)", "phantom/109.dcm: 6560 pixels for a 81×81 image")
        }
        XCTAssertThrowsError(try fuser.fuse(series: [t1], labels: [0], coordinates: [], studyID: 3)) { error in
            XCTAssertEqual(error as? FusionError, .labelCount(studyID: 3, count: 1))
        }
    }

    func testRecordRoundTripsThroughJSON() throws {
        let (_, record) = try fuseAll([LabelCoordinate(seriesID: "x", instanceNumber: 1, labelIndex: 0, x: 0, y: 0)])
        let data = try JSONEncoder().encode(record)
        XCTAssertEqual(try JSONDecoder().decode(FusionRecord.self, from: data), record)
    }
}
