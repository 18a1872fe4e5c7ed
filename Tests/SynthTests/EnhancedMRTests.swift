import Foundation
import Ingest
import Shards
@testable import Synth
import TestSupport
import XCTest

/// The same phantom study written as single-frame MR files and as Enhanced MR files (one file per series,
/// functional groups: orientation per frame on the axial stacks, pixel value transformation shared or per
/// frame, RLE-compressed frames) must read, catalogue and fuse alike; pydicom is the peer reader.
final class EnhancedMRTests: XCTestCase {
    static let options = SynthOptions(studies: 2, seed: 9, sagittalMatrix: 48, axialMatrix: 40, sagittalSlices: 6...7,
                                      axialSlicesPerStack: 3...3)

    /// Writes the cohort single-frame (`classic`) and enhanced in RLE (`enhanced`) under a scratch folder.
    private func cohorts(_ name: String = #function) throws -> (classic: URL, enhanced: URL) {
        let scratch = try Fixtures.scratch(name)
        let classic = scratch.appendingPathComponent("classic"), enhanced = scratch.appendingPathComponent("enhanced")
        try SynthCohort.write(Self.options, to: classic)
        var e = Self.options
        e.enhanced = true
        e.transferSyntax = .rleLossless
        try SynthCohort.write(e, to: enhanced)
        return (classic, enhanced)
    }

    /// Each study of `root` fused at 24³ with its labels and coordinates, by study id.
    private func fuseAll(_ root: URL) -> (catalog: Catalog, fused: [String: (FusedSample?, StudyReport)]) {
        let catalog = CatalogScanner.scan(root: root.path)
        let tables = RSNATables.load(root: catalog.root)
        var fused: [String: (FusedSample?, StudyReport)] = [:]
        for study in catalog.studies {
            fused[study.studyID] = StudyFusion.fuse(study: study, root: catalog.root, labels: tables.labels(for: study.studyID),
                                                    coordinates: tables.coordinates[study.studyID] ?? [],
                                                    fuser: Fuser(parameters: FusionParameters(size: 24)))
        }
        return (catalog, fused)
    }

    private static func correlation(_ a: ArraySlice<Float16>, _ b: ArraySlice<Float16>) -> Double {
        let x = a.map { Double($0) }, y = b.map { Double($0) }
        let mx = x.reduce(0, +) / Double(x.count), my = y.reduce(0, +) / Double(y.count)
        var sxy = 0.0, sxx = 0.0, syy = 0.0
        for (u, v) in zip(x, y) { sxy += (u - mx) * (v - my); sxx += (u - mx) * (u - mx); syy += (v - my) * (v - my) }
        return sxy / (sxx * syy).squareRoot()
    }

    /// Patient millimetres of a keypoint given in grid voxels (x, y, z) through the sample's affine.
    private static func millimetres(_ s: FusedSample, _ label: Int) -> Vec3 {
        let v = (0..<3).map { Double(s.keypoints[3 * label + $0]) }
        let a = s.affine
        return Vec3(a[0] * v[0] + a[1] * v[1] + a[2] * v[2] + a[3], a[4] * v[0] + a[5] * v[1] + a[6] * v[2] + a[7],
                    a[8] * v[0] + a[9] * v[1] + a[10] * v[2] + a[11])
    }

    func testEnhancedStudyFusesToTheSameGridKeypointsAndStacksAsItsSingleFrameFiles() throws {
        let (classicRoot, enhancedRoot) = try cohorts()
        let classic = fuseAll(classicRoot), enhanced = fuseAll(enhancedRoot)
        XCTAssertEqual(enhanced.catalog.imageCount, 6, "one file per series")
        XCTAssertEqual(enhanced.catalog.frameCount, classic.catalog.imageCount)
        XCTAssertEqual(enhanced.catalog.problems, [])
        XCTAssertEqual(enhanced.catalog.warnings, [])
        // GDCM's image reader warns "This Enhanced Multiframe is not supported for now" and "Could not find
        // Spacing" on the axial files (per-frame orientation): notes on its own derived geometry, not ours.
        XCTAssertEqual(CatalogScanner.scan(root: enhancedRoot.path, decode: true).warnings, [])
        for study in classic.catalog.studies {
            let twin = try XCTUnwrap(enhanced.catalog.study(study.studyID))
            for (s, e) in zip(study.series, twin.series) {
                XCTAssertEqual(e.sopClasses, ["Enhanced MR Image"])
                XCTAssertEqual(s.sopClasses, ["MR Image"])
                XCTAssertEqual(e.fileCount, 1)
                XCTAssertEqual(e.frameCount, s.fileCount)
                XCTAssertEqual(e.stacks.count, s.kind == .axialT2 ? 5 : 1, "the axial file holds one oblique stack per disc")
                XCTAssertEqual(e.stacks.map(\.images.count), s.stacks.map(\.images.count))
                for (a, b) in zip(e.stacks, s.stacks) {
                    XCTAssertEqual(a.spacing, b.spacing, accuracy: 1e-9)
                    XCTAssertEqual((a.normal - b.normal).length, 0, accuracy: 1e-9)
                }
                XCTAssertEqual(e.pixelSpacing, s.pixelSpacing)
                XCTAssertEqual(e.sliceThickness, s.sliceThickness)
            }

            let (cs, cr) = classic.fused[study.studyID]!, (es, er) = enhanced.fused[study.studyID]!
            let c = try XCTUnwrap(cs, "\(cr.error ?? "")"), e = try XCTUnwrap(es, "\(er.error ?? "")")
            XCTAssertEqual(c.shape, e.shape)
            let n = c.volume.count / 3
            for channel in 0..<3 {
                let range = (channel * n)..<((channel + 1) * n)
                XCTAssertGreaterThanOrEqual(Self.correlation(c.volume[range], e.volume[range]), 0.999, "channel \(channel)")
                let (low, high) = (cr.fusion!.channels[channel], er.fusion!.channels[channel])
                XCTAssertGreaterThan(low.high, 100, "a real intensity range")
                XCTAssertEqual(Double(high.low), Double(low.low), accuracy: 0.01 * Double(low.high - low.low))
                XCTAssertEqual(Double(high.high), Double(low.high), accuracy: 0.01 * Double(low.high - low.low))
            }
            XCTAssertEqual(er.fusion!.unresolvedCoordinates, [])
            XCTAssertGreaterThanOrEqual(er.fusion!.keypointsPlaced, 20)
            XCTAssertEqual(er.fusion!.keypointsPlaced, cr.fusion!.keypointsPlaced)
            for label in 0..<25 where !c.keypoints[3 * label].isNaN {
                XCTAssertLessThanOrEqual((Self.millimetres(c, label) - Self.millimetres(e, label)).length, 0.1, "label \(label)")
            }
        }
    }

    /// Every enhanced keypoint sits where its rows say: the mean of their pixels on the frames they name,
    /// read through the header of the file (not through the fusion), within 0.01 mm (far below one voxel).
    func testEnhancedKeypointsSitOnTheFramesTheirRowsName() throws {
        let (_, root) = try cohorts()
        let enhanced = fuseAll(root)
        let tables = RSNATables.load(root: enhanced.catalog.root)
        var checked = 0
        for study in enhanced.catalog.studies {
            let sample = try XCTUnwrap(enhanced.fused[study.studyID]?.0)
            let rows = try XCTUnwrap(tables.coordinates[study.studyID])
            XCTAssertTrue(rows.allSatisfy { $0.frameNumber != nil && $0.instanceNumber == 1 })
            for (label, group) in Dictionary(grouping: rows, by: \.labelIndex) {
                let points = try group.map { row -> Vec3 in
                    let path = root.appendingPathComponent("train_images/\(study.studyID)/\(row.seriesID)/1.dcm").path
                    let g = try DicomReader.readHeader(path).geometry(frame: row.frameNumber! - 1).get()
                    return g.patientPosition(row: row.y, column: row.x)
                }
                let mean = (1 / Double(points.count)) * points.reduce(Vec3.zero, +)
                XCTAssertLessThanOrEqual((Self.millimetres(sample, label) - mean).length, 0.01, "label \(label)")
                checked += 1
            }
        }
        XCTAssertGreaterThanOrEqual(checked, 40)
    }

    /// pydicom reads every frame's geometry and real values from the functional groups by itself; our
    /// reader must agree frame by frame, and both must equal the single-frame file of the same slice.
    func testPydicomReadsEveryFrameAsWeDo() throws {
        let (classicRoot, enhancedRoot) = try cohorts()
        let dump = enhancedRoot.deletingLastPathComponent().appendingPathComponent("frames.json")
        let r = try Fixtures.python("""
        import sys, os, json, numpy as np
        from pydicom import dcmread
        root, out = sys.argv[1], sys.argv[2]
        res = {}
        for dp, _, names in os.walk(os.path.join(root, "train_images")):
            for n in names:
                p = os.path.join(dp, n)
                d = dcmread(p)
                shared = d.SharedFunctionalGroupsSequence[0]
                def group(item, name):
                    return getattr(item, name)[0] if name in item else getattr(shared, name)[0]
                a = d.pixel_array.astype(np.float64)
                frames = []
                for k, item in enumerate(d.PerFrameFunctionalGroupsSequence):
                    t = group(item, "PixelValueTransformationSequence")
                    v = a[k] * float(t.RescaleSlope) + float(t.RescaleIntercept)
                    frames.append(dict(ipp=[float(x) for x in group(item, "PlanePositionSequence").ImagePositionPatient],
                                       iop=[float(x) for x in group(item, "PlaneOrientationSequence").ImageOrientationPatient],
                                       ps=[float(x) for x in group(item, "PixelMeasuresSequence").PixelSpacing],
                                       stack=str(group(item, "FrameContentSequence").StackID),
                                       sum=float(v.sum()), centre=float(v.flat[v.size // 2])))
                res[os.path.relpath(p, root)] = dict(ts=str(d.file_meta.TransferSyntaxUID), sop=str(d.SOPClassUID), frames=frames)
        json.dump(res, open(out, "w"))
        """, [enhancedRoot.path, dump.path])
        XCTAssertEqual(r.status, 0, r.stderr)
        let files = try JSONSerialization.jsonObject(with: Data(contentsOf: dump)) as! [String: [String: Any]]
        XCTAssertEqual(files.count, 6)
        var frames = 0, stacks = Set<String>()
        for (rel, file) in files {
            XCTAssertEqual(file["ts"] as? String, SynthTransferSyntax.rleLossless.uid)
            XCTAssertEqual(file["sop"] as? String, SOPClass.enhancedMRImage)
            let image = try DicomReader.readImage(enhancedRoot.appendingPathComponent(rel).path)
            let slices = try image.slices(source: rel)
            let expected = file["frames"] as! [[String: Any]]
            XCTAssertEqual(slices.count, expected.count)
            let folder = (rel as NSString).deletingLastPathComponent
            for (k, (slice, e)) in zip(slices, expected).enumerated() {
                let g = slice.geometry
                let ipp = e["ipp"] as! [Double], iop = e["iop"] as! [Double], ps = e["ps"] as! [Double]
                XCTAssertEqual(g.position, Vec3(ipp[0], ipp[1], ipp[2]), "\(rel) frame \(k + 1)")
                // Our reader normalises the 16-character decimal strings; pydicom gives them as written.
                XCTAssertEqual((g.rowDirection - Vec3(iop[0], iop[1], iop[2])).length, 0, accuracy: 1e-12, "\(rel) frame \(k + 1)")
                XCTAssertEqual((g.columnDirection - Vec3(iop[3], iop[4], iop[5])).length, 0, accuracy: 1e-12, "\(rel) frame \(k + 1)")
                XCTAssertEqual([g.rowSpacing, g.columnSpacing], ps)
                XCTAssertEqual(slice.frameNumber, k + 1)
                XCTAssertEqual(slice.pixels.reduce(0.0) { $0 + Double($1) }, e["sum"] as! Double, "\(rel) frame \(k + 1)")
                XCTAssertEqual(Double(slice.pixels[slice.pixels.count / 2]), e["centre"] as! Double)
                // Frame k is the single-frame file of instance k + 1: same geometry, same real values.
                let single = try DicomReader.readImage(classicRoot.appendingPathComponent("\(folder)/\(k + 1).dcm").path)
                XCTAssertEqual(try single.header.geometry().get().position, g.position)
                XCTAssertEqual(single.pixels, slice.pixels, "\(rel) frame \(k + 1)")
                stacks.insert("\(folder)#\(e["stack"] as! String)")
                frames += 1
            }
        }
        XCTAssertEqual(frames, try FileManager.default.subpathsOfDirectory(atPath: classicRoot.appendingPathComponent("train_images").path)
            .filter { $0.hasSuffix(".dcm") }.count)
        XCTAssertEqual(stacks.count, 2 * (2 + 5), "StackID 1 for each sagittal series, 1…5 for the axial discs")
    }

    /// A Legacy Converted Enhanced MR file whose frames are stored out of order: the stack follows the
    /// positions, each slice keeps its frame number, and a row finds the frame it names.
    func testLegacyConvertedFramesInAnyOrderBecomeOrderedSlicesAndRowsFindTheirFrame() throws {
        let dir = try Fixtures.scratch().appendingPathComponent("legacy")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        let b = try DICOMBuilder()
        for (tag, vr, value) in [((UInt16(0x0008), UInt16(0x0016)), "UI", SOPClass.legacyConvertedEnhancedMRImage),
                                 ((0x0008, 0x0018), "UI", "1.2.3.4.1"), ((0x0008, 0x0060), "CS", "MR"),
                                 ((0x0008, 0x103E), "LO", "AX T2"), ((0x0020, 0x000D), "UI", "1.2.3"),
                                 ((0x0020, 0x000E), "UI", "1.2.3.4"), ((0x0020, 0x0013), "IS", "1")] {
            try b.set(tag.0, tag.1, vr, value)
        }
        for (k, z) in [8.0, 0.0, 4.0].enumerated() {
            let g = SliceGeometry(position: Vec3(0, 0, z), rowDirection: Vec3(1, 0, 0), columnDirection: Vec3(0, 1, 0),
                                  rowSpacing: 1, columnSpacing: 1, rows: 8, columns: 8, thickness: 4)
            try b.addFrame([UInt16](repeating: UInt16(100 * (k + 1)), count: 64), geometry: g, bitsStored: 16, slope: 0.5,
                           intercept: 1, stackID: 1, inStackPosition: k + 1)
        }
        try b.writeEnhanced(to: dir.appendingPathComponent("legacy.dcm").path, syntax: .jpegLSLossless,
                            shared: [.orientation, .pixelMeasures, .transformation])

        let catalog = CatalogScanner.scan(root: dir.path)
        var series = try XCTUnwrap(catalog.studies.first?.series.first)
        XCTAssertEqual(series.sopClasses, ["Legacy Converted Enhanced MR Image"])
        XCTAssertEqual(series.frameCount, 3)
        XCTAssertEqual(series.stacks.map { $0.images.map(\.frame) }, [[1, 2, 0]], "ordered along the normal: z = 0, 4, 8")
        XCTAssertEqual(series.stacks[0].spacing, 4)
        series.kind = .axialT2
        let (volume, problems) = SeriesLoader.load(series, root: catalog.root)
        XCTAssertEqual(problems, [])
        let slices = volume.stacks[0].slices
        XCTAssertEqual(slices.map(\.frameNumber), [2, 3, 1])
        XCTAssertEqual(slices.map { $0.pixels[0] }, [101, 151, 51], "stored × 0.5 + 1 (shared Pixel Value Transformation)")

        let rows = [LabelCoordinate(seriesID: series.seriesID, instanceNumber: 1, labelIndex: 15, x: 2, y: 3, frameNumber: 1),
                    LabelCoordinate(seriesID: series.seriesID, instanceNumber: 1, labelIndex: 16, x: 2, y: 3)]
        let (sample, record) = try Fuser(parameters: FusionParameters(size: 8, box: .union))
            .fuse(series: [volume], labels: [Int8](repeating: -1, count: 25), coordinates: rows, studyID: 1)
        let placed = Self.millimetres(sample, 15)
        XCTAssertEqual((placed - Vec3(2, 3, 8)).length, 0, accuracy: 1e-4, "frame 1 lies at z = 8")
        XCTAssertTrue(sample.keypoints[3 * 16].isNaN)
        XCTAssertEqual(record.unresolvedCoordinates.map(\.coordinate.labelIndex), [16])
    }

    /// A row that names a multi-frame file without a frame, a frame the file lacks, or an instance that
    /// does not exist places nothing; the study's record names each, and the run's summary counts them.
    func testRowsThatDoNotNameOneFrameAreUnresolvedNamedAndCounted() throws {
        let (_, root) = try cohorts()
        let csv = root.appendingPathComponent("train_label_coordinates.csv")
        var lines = try String(contentsOf: csv, encoding: .utf8).split(separator: "\n").map(String.init)
        XCTAssertEqual(lines[0], "study_id,series_id,instance_number,condition,level,x,y,frame_number")
        let victim = lines[1].split(separator: ",").map(String.init)
        let study = victim[0], series = victim[1]
        // The victim study's Spinal Canal rows lose their frame; two more rows name what does not exist.
        var blanked = 0
        for i in 1..<lines.count where lines[i].hasPrefix("\(study),\(series),") && lines[i].contains("Spinal Canal Stenosis") {
            lines[i] = lines[i].split(separator: ",", omittingEmptySubsequences: false).dropLast().joined(separator: ",") + ","
            blanked += 1
        }
        XCTAssertEqual(blanked, 5)
        lines.append("\(study),\(series),4,Spinal Canal Stenosis,L1/L2,10,10,1")
        lines.append("\(study),\(series),1,Spinal Canal Stenosis,L2/L3,10,10,99")
        try (lines.joined(separator: "\n") + "\n").write(to: csv, atomically: true, encoding: .utf8)

        let out = root.deletingLastPathComponent().appendingPathComponent("shards")
        var pipeline = PipelineConfig()
        pipeline.fusion.size = 16
        let outcome = try IngestRunner.run(IngestOptions(archive: root.path, output: out, pipeline: pipeline, workers: 1))
        XCTAssertEqual(outcome.report.summary.unresolvedCoordinates, 7)
        XCTAssertTrue(outcome.report.summaryLine.contains("7 label coordinate(s) unresolved"), outcome.report.summaryLine)
        let record = try XCTUnwrap(outcome.report.studies.first { $0.studyID == study }?.fusion)
        let reasons = record.unresolvedCoordinates.map(\.reason)
        XCTAssertEqual(reasons.filter { $0.hasSuffix("is a multi-frame file (train_images/\(study)/\(series)/1.dcm) and the row names no frame (frame_number)") }.count, 5)
        XCTAssertTrue(reasons.contains("series \(series) has no image with instance number 4"), "\(reasons)")
        XCTAssertTrue(reasons.contains("series \(series) instance 1 frame 99: the file has no such frame among the series' slices"), "\(reasons)")
        // The canal keypoints of that study stay NaN; the other labels are placed.
        let dataset = try ShardDataset(directory: out)
        let index = try XCTUnwrap((0..<dataset.count).first { (try? dataset.read($0).studyID) == Int64(study) })
        let keypoints = try dataset.read(index).keypoints
        XCTAssertTrue((0..<5).allSatisfy { keypoints[3 * $0].isNaN })
        XCTAssertTrue((5..<25).contains { !keypoints[3 * $0].isNaN })
    }
}
