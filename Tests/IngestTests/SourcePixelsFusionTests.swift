import Foundation
@testable import Ingest
import Shards
import XCTest

/// The fuser's source pixels (schema 2): the fused stacks' own slices, ordered along their normal, normalized with
/// their channel's range; and their way through a worker's wire and the study cache.
final class SourcePixelsFusionTests: XCTestCase {
    func fuse(_ parameters: FusionParameters = FusionParameters(size: 32),
              series: [SeriesVolume] = [FusionPhantom.axialT2(), FusionPhantom.sagittalT2(), FusionPhantom.sagittalT1()]) throws
        -> (sample: FusedSample, record: FusionRecord) {
        try Fuser(parameters: parameters).fuse(series: series, labels: FusionPhantom.noLabels, coordinates: [], studyID: 42)
    }

    func testSourcePixelsAreTheStacksSlicesOrderedAndNormalizedLikeTheirChannel() throws {
        let (sample, record) = try fuse()
        let sources = sample.sources
        XCTAssertEqual(sources.slices.map(\.channel), [Int](repeating: 0, count: 12) + [Int](repeating: 1, count: 10)
                                                      + [Int](repeating: 2, count: 9))
        XCTAssertEqual(sources.pixels.count, 12 * 81 * 81 + 10 * 57 * 57 + 9 * 61 * 61)
        let inputs: [[Slice]] = [FusionPhantom.sagittalT1(), FusionPhantom.sagittalT2(), FusionPhantom.axialT2()]
            .map { $0.stacks.flatMap(\.slices) }
        var start = 0
        for channel in 0..<3 {
            let low = record.channels[channel].low, high = record.channels[channel].high
            XCTAssertEqual([low, high], Array(sample.norm[(2 * channel)..<(2 * channel + 2)]))
            XCTAssertLessThan(low, high)
            let slices = sources.slices.enumerated().filter { $0.element.channel == channel }
            var previous = -Double.infinity
            for (_, stored) in slices {
                let g = stored.geometry
                // The stored slice is the input slice at its origin (positions are distinct within a channel here).
                let input = try XCTUnwrap(inputs[channel].first { $0.geometry.position == Vec3(g[0], g[1], g[2]) })
                let geometry = input.geometry
                XCTAssertEqual(stored.rows, geometry.rows)
                XCTAssertEqual(stored.columns, geometry.columns)
                let columnStep = geometry.columnSpacing * geometry.rowDirection.normalized
                let rowStep = geometry.rowSpacing * geometry.columnDirection.normalized
                XCTAssertEqual(Array(g[3..<9]), [columnStep.x, columnStep.y, columnStep.z, rowStep.x, rowStep.y, rowStep.z])
                XCTAssertEqual(Vec3(g[9], g[10], g[11]).dot(geometry.normal), 1, accuracy: 1e-12)
                // Ordered by their offset along their normal.
                XCTAssertGreaterThanOrEqual(geometry.normalOffset, previous - 1e-9, "channel \(channel)")
                if channel < 2 { previous = geometry.normalOffset }
                let expected = input.pixels.map { Float16(min(max(($0 - low) / (high - low), 0), 1)) }
                XCTAssertEqual(sources.pixels[start..<(start + stored.pixelCount)].map(\.bitPattern), expected.map(\.bitPattern))
                start += stored.pixelCount
            }
        }
        XCTAssertEqual(start, sources.pixels.count)
        // Sagittal T1's slices lie at x = −22…22 and its normal is −x: ascending offsets run from x = 22 down to −22.
        XCTAssertEqual(sources.slices.prefix(12).map { $0.geometry[0] }, (0..<12).map { 22 - 4 * Double($0) })
        XCTAssertEqual(Array(sources.slices[0].geometry[3...]), [0, 1, 0, 0, 0, -1, -1, 0, 0])
        // Sagittal T2 was given in ascending x: sorted, it is reversed.
        XCTAssertEqual(sources.slices[12..<22].map { $0.geometry[0] }, (0..<10).reversed().map { -19.8 + 4.4 * Double($0) },
                       "sorted by −x")
        XCTAssertTrue(sources.pixels.contains(1) && sources.pixels.contains(0))
    }

    func testDirectionsAreNormalizedAndAMissingChannelAddsNoSlices() throws {
        var t1 = FusionPhantom.sagittalT1()
        t1.stacks[0].slices = t1.stacks[0].slices.map { slice in
            var s = slice
            s.geometry.rowDirection = 3 * s.geometry.rowDirection
            return s
        }
        let (sample, _) = try fuse(series: [t1, FusionPhantom.sagittalT2()])
        XCTAssertEqual(sample.present, [1, 1, 0])
        XCTAssertEqual(sample.sources.slices.filter { $0.channel == 2 }.count, 0)
        XCTAssertEqual(sample.sources.slices.count, 22)
        XCTAssertEqual(Array(sample.sources.slices[0].geometry[3..<6]), [0, 1, 0], "a unit row direction × 1 mm")
    }

    func testSourcePixelsOffLeavesThemOutAndTheGridAsItWas() throws {
        var parameters = FusionParameters(size: 32)
        let on = try fuse(parameters)
        parameters.sourcePixels = false
        let off = try fuse(parameters)
        XCTAssertTrue(off.sample.sources.slices.isEmpty)
        XCTAssertTrue(off.sample.sources.pixels.isEmpty)
        XCTAssertEqual(off.sample.volume, on.sample.volume)
        XCTAssertEqual(off.record.parameters.sourcePixels, false)
    }

    func testSourcePixelsTravelTheWorkersWireAndTheCache() throws {
        let (sample, record) = try fuse()
        let encoded = try EncodedSample(encoding: sample, zstdLevel: 1)
        XCTAssertEqual(encoded.sourceSlices, sample.sources.slices)
        XCTAssertEqual(encoded.sourceElements, sample.sources.pixels.count)
        XCTAssertEqual(encoded.sourceChunks.count, (sample.sources.pixels.count + 65535) / 65536)
        let report = StudyReport(studyID: "42", sampleID: 42, status: .fused, channels: [:], error: nil, notes: [], problems: [],
                                 fusion: record)
        let study = StudyCache.CachedStudy(report: report, sample: encoded)

        func assertSame(_ other: EncodedSample?, _ what: String) throws {
            let other = try XCTUnwrap(other, what)
            XCTAssertEqual(other.chunks, encoded.chunks, what)
            XCTAssertEqual(other.sourceSlices, encoded.sourceSlices, what)
            XCTAssertEqual(other.sourceElements, encoded.sourceElements, what)
            XCTAssertEqual(other.sourceChunks, encoded.sourceChunks, what)
            XCTAssertEqual(other.norm, encoded.norm, what)
        }
        let wire = try CacheEntry.wire(study)
        try assertSame(try CacheEntry.fromWire(wire).sample, "wire")
        XCTAssertEqual(try CacheEntry.fromWire(wire).report.fusion?.parameters.sourcePixels, true)
        let entry = try CacheEntry.encode(stamps: [], madeAt: 7, study: study)
        try assertSame(try CacheEntry.decode(entry).cached.sample, "cache entry")

        // A truncated wire (the last chunk short, or the header cut) is an error, never a crash; so is a byte too many.
        for bad in [Array(wire.dropLast()), Array(wire.prefix(20)), Array(wire.prefix(4)), wire + [0]] {
            XCTAssertThrowsError(try CacheEntry.fromWire(bad)) { error in XCTAssertTrue(error is CacheEntry.Corrupt, "\(error)") }
        }
        XCTAssertThrowsError(try CacheEntry.decode(entry.dropLast(40)))

        // Counts that disagree are refused before any array is built from them.
        var header = CacheEntry.SampleHeader(encoded)
        let chunks = encoded.chunks + encoded.sourceChunks
        header.sources?.elements += 1
        XCTAssertThrowsError(try header.sample(chunks: chunks))
        header = CacheEntry.SampleHeader(encoded)
        header.sources?.slices[0] = [0, 0, 81]
        XCTAssertThrowsError(try header.sample(chunks: chunks))
        header = CacheEntry.SampleHeader(encoded)
        header.sources?.slices[0] = [0, 1 << 40, 1 << 40]
        XCTAssertThrowsError(try header.sample(chunks: chunks), "a matrix whose pixel count would overflow")
        header = CacheEntry.SampleHeader(encoded)
        header.sources?.geometryBits.removeLast()
        XCTAssertThrowsError(try header.sample(chunks: chunks))
        header = CacheEntry.SampleHeader(encoded)
        XCTAssertThrowsError(try header.sample(chunks: Array(chunks.dropLast())))
        XCTAssertEqual(try header.sample(chunks: chunks).sourceSlices, encoded.sourceSlices)
    }

    func testSourcePixelsChangeTheParametersAndTheCacheKey() throws {
        var config = PipelineConfig()
        XCTAssertEqual(config.attributes["fusion.source_pixels"], "true")
        config.fusion.sourcePixels = false
        XCTAssertEqual(config.attributes["fusion.source_pixels"], "false")
        let parsed = try PipelineConfig.parse("fusion:\n  source_pixels: false\n", path: "p.yaml")
        XCTAssertFalse(parsed.fusion.sourcePixels)
        XCTAssertTrue(try PipelineConfig.parse("fusion:\n  size: 64\n", path: "p.yaml").fusion.sourcePixels)
        XCTAssertThrowsError(try PipelineConfig.parse("fusion:\n  source_pixels: maybe\n", path: "p.yaml")) { error in
            XCTAssertTrue("\(error)".hasPrefix("p.yaml:2: fusion.source_pixels"), "\(error)")
        }
        // The cache key's material holds the fusion parameters: toggling source pixels makes another key (a re-fuse).
        XCTAssertNotEqual(try KeyMaterialEncoder.encode(config.fusion), try KeyMaterialEncoder.encode(FusionParameters()))
        let data = try JSONEncoder().encode(config.fusion)
        XCTAssertTrue(String(decoding: data, as: UTF8.self).contains("\"source_pixels\":false"))
        XCTAssertEqual(try JSONDecoder().decode(FusionParameters.self, from: data), config.fusion)
    }
}
