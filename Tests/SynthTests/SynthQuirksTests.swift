@testable import Synth
import Ingest
import TestSupport
import XCTest

/// Determinism and the `--quirks` irregularities of a synthetic cohort.
final class SynthQuirksTests: XCTestCase {
    /// Three studies (one of each quirk group), tiny matrices.
    static func options(seed: UInt64 = 21, quirks: Bool) -> SynthOptions {
        SynthOptions(studies: 3, seed: seed, quirks: quirks, sagittalMatrix: 64, axialMatrix: 48,
                     sagittalSlices: 11...11, axialSlicesPerStack: 3...3)
    }

    /// Relative path → bytes of every file under `root`.
    static func contents(_ root: URL) throws -> [String: Data] {
        var out: [String: Data] = [:]
        let e = FileManager.default.enumerator(at: root, includingPropertiesForKeys: [.isRegularFileKey])!
        for case let url as URL in e where (try url.resourceValues(forKeys: [.isRegularFileKey])).isRegularFile == true {
            out[String(url.path.dropFirst(root.path.count + 1))] = try Data(contentsOf: url)
        }
        return out
    }

    func testSameSeedGivesIdenticalBytesOnAnyThreadCountAndAnotherSeedDoesNot() throws {
        let a = try Fixtures.scratch(), b = try Fixtures.scratch(), c = try Fixtures.scratch()
        defer { for u in [a, b, c] { try? FileManager.default.removeItem(at: u) } }
        try SynthCohort.write(Self.options(quirks: true), to: a)
        var oneThread = Self.options(quirks: true)
        oneThread.threads = 1
        try SynthCohort.write(oneThread, to: b)
        let first = try Self.contents(a), second = try Self.contents(b)
        XCTAssertGreaterThan(first.count, 100)
        XCTAssertEqual(Set(first.keys), Set(second.keys))
        for (path, data) in first { XCTAssertEqual(data, second[path], "\(path) differs between two runs") }

        try SynthCohort.write(Self.options(seed: 22, quirks: true), to: c)
        let ids = { (u: URL) in try FileManager.default.contentsOfDirectory(atPath: u.appendingPathComponent("train_images").path) }
        XCTAssertTrue(Set(try ids(a)).isDisjoint(with: try ids(c)), "another seed gives other study ids")
        for id in try ids(a) {
            XCTAssertTrue((7...10).contains(id.count) && Int(id) != nil, "RSNA-style integer study id: \(id)")
        }
    }

    /// Per file: transfer syntax, InstanceNumber, IPP and ImageType, or the error pydicom gives.
    static let readQuirks = """
    import sys, os, json, pydicom
    root = os.path.join(sys.argv[1], "train_images")
    out = {}
    for dirpath, _, names in os.walk(root):
        for n in names:
            p = os.path.join(dirpath, n)
            rel = os.path.relpath(p, root)
            try:
                d = pydicom.dcmread(p)
                if d.file_meta.TransferSyntaxUID in ("1.2.840.10008.1.2.1", "1.2.840.10008.1.2.5"):
                    d.pixel_array
                out[rel] = dict(ts=str(d.file_meta.TransferSyntaxUID), inst=int(d.InstanceNumber),
                                ipp=[float(v) for v in d.ImagePositionPatient], type=list(d.ImageType))
            except Exception as e:
                out[rel] = dict(error=type(e).__name__)
    print(json.dumps(out))
    """

    func testQuirksCohortHasEachIrregularityAndLosslessPixels() throws {
        let plain = try Fixtures.scratch(), quirky = try Fixtures.scratch()
        defer { for u in [plain, quirky] { try? FileManager.default.removeItem(at: u) } }
        try SynthCohort.write(Self.options(quirks: false), to: plain)
        let summary = try SynthCohort.write(Self.options(quirks: true), to: quirky)
        let r = try Fixtures.python(Self.readQuirks, [quirky.path])
        XCTAssertEqual(r.status, 0, r.stderr)
        let files = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: [String: Any]])
        let byIndex = Dictionary(uniqueKeysWithValues: summary.studies.map { ($0.index, $0) })
        let s0 = byIndex[0]!, s1 = byIndex[1]!, s2 = byIndex[2]!

        // Transfer syntaxes: JPEG 2000 (study 0, Sagittal T1), JPEG-LS (1, Sagittal T2/STIR), RLE (2, Axial T2).
        func syntaxes(_ s: PhantomStudy, _ kind: SeriesKind) -> Set<String> {
            Set(files.filter { $0.key.hasPrefix("\(s.studyID)/\(s.seriesIDs[kind]!)/") }.compactMap { $0.value["ts"] as? String })
        }
        XCTAssertEqual(syntaxes(s0, .sagittalT1), ["1.2.840.10008.1.2.4.90"])
        XCTAssertEqual(syntaxes(s1, .sagittalT2), ["1.2.840.10008.1.2.4.80"])
        XCTAssertEqual(syntaxes(s2, .axialT2), ["1.2.840.10008.1.2.5"])
        XCTAssertEqual(syntaxes(s0, .axialT2), ["1.2.840.10008.1.2.1"])

        // Compressed files decode (through GDCM) to exactly the pixels the plain cohort holds uncompressed.
        for (study, kind) in [(s0, SeriesKind.sagittalT1), (s1, .sagittalT2), (s2, .axialT2)] {
            let plan = study.plans.first { $0.kind == kind }!
            let series = "\(study.studyID)/\(study.seriesIDs[kind]!)"
            for k in [1, plan.slices.count / 2] {
                let capacity = plan.slices[k].rows * plan.slices[k].columns
                let compressed = try DICOMBuilder.decodePixels(
                    at: quirky.appendingPathComponent("train_images/\(series)/\(study.instanceNumbers(plan)[k]).dcm").path,
                    capacity: capacity)
                let reference = try DICOMBuilder.decodePixels(
                    at: plain.appendingPathComponent("train_images/\(series)/\(k + 1).dcm").path, capacity: capacity)
                XCTAssertEqual(compressed.count, capacity)
                XCTAssertEqual(compressed, reference, "\(series) slice \(k) is not lossless")
                XCTAssertGreaterThan(reference.max()!, 500)
            }
        }

        // Study 0: instance numbers no longer follow position, and the file name still equals the tag.
        let t2 = s0.plans.first { $0.kind == .sagittalT2 }!
        let numbers = s0.instanceNumbers(t2)
        XCTAssertEqual(Set(numbers), Set(1...t2.slices.count))
        XCTAssertNotEqual(numbers, Array(1...t2.slices.count))
        for (k, n) in numbers.enumerated() {
            let h = try XCTUnwrap(files["\(s0.studyID)/\(s0.seriesIDs[.sagittalT2]!)/\(n).dcm"])
            XCTAssertEqual(h["inst"] as? Int, n)
            XCTAssertEqual((h["ipp"] as? [Double])?[0] ?? .nan, t2.slices[k].position.x, accuracy: 1e-6)
        }
        // Study 0: two empty train.csv cells, and no coordinate rows for them.
        let train = try String(contentsOf: quirky.appendingPathComponent("train.csv"), encoding: .utf8)
        let row0 = try XCTUnwrap(train.split(separator: "\n").first { $0.hasPrefix("\(s0.studyID),") })
        XCTAssertEqual(row0.split(separator: ",", omittingEmptySubsequences: false).filter(\.isEmpty).count, 2)
        XCTAssertEqual(summary.coordinates.filter { $0.studyID == s0.studyID }.count, 23)

        // Study 1: a localizer on disk but not in the series CSV, and a missing series.
        let descriptions = try String(contentsOf: quirky.appendingPathComponent("train_series_descriptions.csv"), encoding: .utf8)
        let localizer = try XCTUnwrap(s1.seriesIDs[.other])
        XCTAssertEqual(files["\(s1.studyID)/\(localizer)/1.dcm"]?["type"] as? [String], ["ORIGINAL", "PRIMARY", "LOCALIZER"])
        XCTAssertFalse(descriptions.contains(String(localizer)))
        XCTAssertEqual(s1.quirks.missing, .axialT2)
        XCTAssertNil(s1.seriesIDs[.axialT2])
        XCTAssertEqual(descriptions.split(separator: "\n").filter { $0.hasPrefix("\(s1.studyID),") }.count, 2)
        XCTAssertFalse(summary.coordinates.contains { $0.studyID == s1.studyID && $0.condition.hasSuffix("Subarticular Stenosis") })

        // Study 2: one truncated image that pydicom rejects, and a non-DICOM file beside the images.
        let broken = files.filter { $0.value["error"] != nil }
        XCTAssertEqual(broken.count, 2, "\(broken)")
        XCTAssertTrue(broken.keys.allSatisfy { $0.hasPrefix("\(s2.studyID)/") })
        XCTAssertEqual(broken.keys.filter { $0.hasSuffix(".txt") }.count, 1)
        let truncated = try XCTUnwrap(broken.keys.first { $0.hasSuffix(".dcm") })
        let cut = try Data(contentsOf: quirky.appendingPathComponent("train_images/\(truncated)")).count
        let whole = try Data(contentsOf: plain.appendingPathComponent("train_images/\(truncated)")).count
        XCTAssertEqual(cut, whole / 2)
        XCTAssertFalse(summary.coordinates.contains { c in
            truncated == "\(c.studyID)/\(c.seriesID)/\(c.instanceNumber).dcm"
        }, "no label points at the truncated file")
    }
}
