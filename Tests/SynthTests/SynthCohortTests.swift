import Core
@testable import Synth
import Ingest
import TestSupport
import XCTest

/// `fuse3d synth`'s cohort, read back through pydicom (the project's .venv) and GDCM.
final class SynthCohortTests: XCTestCase {
    /// A small cohort: 2 studies, coarse matrices, few slices (the test suite stays fast).
    static func smallOptions(seed: UInt64 = 11, studies: Int = 2, quirks: Bool = false,
                             sagittalMatrix: Int = 96) -> SynthOptions {
        SynthOptions(studies: studies, seed: seed, quirks: quirks, sagittalMatrix: sagittalMatrix, axialMatrix: 64,
                     sagittalSlices: 11...13, axialSlicesPerStack: 3...3)
    }

    /// Runs `script` in the .venv with `arguments`; returns its stdout as JSON.
    static func python(_ script: String, _ arguments: [String]) throws -> Any {
        let r = try Fixtures.python(script, arguments)
        guard r.status == 0 else { throw SynthError(path: arguments.first ?? "", message: "python failed: \(r.stderr)") }
        return try JSONSerialization.jsonObject(with: Data(r.stdout.utf8))
    }

    /// Every file's header as pydicom reads it, keyed by its path under train_images.
    static let readHeaders = """
    import sys, os, json, pydicom
    root = os.path.join(sys.argv[1], "train_images")
    out = {}
    for dirpath, _, names in os.walk(root):
        for n in names:
            p = os.path.join(dirpath, n)
            rel = os.path.relpath(p, root)
            try:
                d = pydicom.dcmread(p, stop_before_pixels=True)
                out[rel] = dict(sop=str(d.SOPClassUID), ts=str(d.file_meta.TransferSyntaxUID), rows=d.Rows,
                    cols=d.Columns, bits=d.BitsStored, ipp=[float(v) for v in d.ImagePositionPatient],
                    iop=[float(v) for v in d.ImageOrientationPatient], ps=[float(v) for v in d.PixelSpacing],
                    thick=float(d.SliceThickness), inst=int(d.InstanceNumber), desc=str(d.SeriesDescription),
                    study=str(d.StudyInstanceUID), series=str(d.SeriesInstanceUID), type=list(d.ImageType))
            except Exception as e:
                out[rel] = dict(error=str(e))
    print(json.dumps(out))
    """

    func testFilesReadBackThroughPydicomWithTheGeometryWritten() throws {
        let out = try Fixtures.scratch()
        defer { try? FileManager.default.removeItem(at: out) }
        let options = Self.smallOptions()
        let summary = try SynthCohort.write(options, to: out)
        let headers = try XCTUnwrap(try Self.python(Self.readHeaders, [out.path]) as? [String: [String: Any]])

        var expectedFiles = 0
        for study in summary.studies {
            XCTAssertEqual(Set(study.seriesIDs.keys), [.sagittalT1, .sagittalT2, .axialT2])
            for plan in study.plans {
                let series = try XCTUnwrap(study.seriesIDs[plan.kind])
                for (k, g) in plan.slices.enumerated() {
                    let instance = study.instanceNumbers(plan)[k]
                    let h = try XCTUnwrap(headers["\(study.studyID)/\(series)/\(instance).dcm"])
                    expectedFiles += 1
                    XCTAssertEqual(h["sop"] as? String, "1.2.840.10008.5.1.4.1.1.4")
                    XCTAssertEqual(h["ts"] as? String, "1.2.840.10008.1.2.1")
                    XCTAssertEqual(h["bits"] as? Int, 12)
                    XCTAssertEqual(h["rows"] as? Int, g.rows)
                    XCTAssertEqual(h["inst"] as? Int, instance)
                    XCTAssertEqual(h["desc"] as? String, plan.kind.rawValue)
                    XCTAssertEqual(h["study"] as? String, String(study.studyID))
                    XCTAssertEqual(h["series"] as? String, String(series))
                    let ipp = try XCTUnwrap(h["ipp"] as? [Double]), iop = try XCTUnwrap(h["iop"] as? [Double])
                    let ps = try XCTUnwrap(h["ps"] as? [Double])
                    XCTAssertEqual(ipp[0], g.position.x, accuracy: 1e-6)
                    XCTAssertEqual(ipp[1], g.position.y, accuracy: 1e-6)
                    XCTAssertEqual(ipp[2], g.position.z, accuracy: 1e-6)
                    let dirs = [g.rowDirection.x, g.rowDirection.y, g.rowDirection.z,
                                g.columnDirection.x, g.columnDirection.y, g.columnDirection.z]
                    for (a, b) in zip(iop, dirs) { XCTAssertEqual(a, b, accuracy: 1e-9) }
                    XCTAssertEqual(ps[0], g.rowSpacing, accuracy: 1e-9)
                    XCTAssertEqual(ps[1], g.columnSpacing, accuracy: 1e-9)
                    XCTAssertEqual(h["thick"] as? Double, g.thickness)
                }
            }
        }
        XCTAssertEqual(headers.count, expectedFiles, "only the planned files are written")
        XCTAssertEqual(summary.files, expectedFiles)

        // Sagittal rows run head→feet and columns anterior→posterior; axial stacks tilt with their disc.
        let study = summary.studies[0]
        let t1 = try XCTUnwrap(study.plans.first { $0.kind == .sagittalT1 })
        let t2 = try XCTUnwrap(study.plans.first { $0.kind == .sagittalT2 })
        XCTAssertEqual(t1.slices[0].rowDirection, Vec3(0, 1, 0))
        XCTAssertEqual(t1.slices[0].columnDirection, Vec3(0, 0, -1))
        XCTAssertTrue(t1.slices.count != t2.slices.count || t1.spacing != t2.spacing
                      || t1.slices[0].rowSpacing != t2.slices[0].rowSpacing, "T1 and T2 are acquired differently")
        let axial = try XCTUnwrap(study.plans.first { $0.kind == .axialT2 })
        XCTAssertEqual(axial.slices.count, 15, "5 disc stacks of 3 slices")
        let l1l2 = axial.slices[1].normal, l5s1 = axial.slices[13].normal
        XCTAssertEqual(l1l2.dot(study.anatomy.disc(0).axis), 1, accuracy: 1e-9)
        XCTAssertLessThan(l1l2.dot(l5s1), cos(10 * Double.pi / 180), "the lordosis tilts L5/S1 away from L1/L2")

        // The CSVs: Kaggle's header and one row per study.
        let train = try String(contentsOf: out.appendingPathComponent("train.csv"), encoding: .utf8)
        let lines = train.split(separator: "\n")
        XCTAssertEqual(String(lines[0]), "study_id," + RSNA.labelColumns.joined(separator: ","))
        XCTAssertEqual(lines.count, 3)
        let series = try String(contentsOf: out.appendingPathComponent("train_series_descriptions.csv"), encoding: .utf8)
        XCTAssertEqual(series.split(separator: "\n").count, 1 + 2 * 3)
        XCTAssertTrue(series.contains("\(study.studyID),\(study.seriesIDs[.sagittalT2]!),Sagittal T2/STIR"))
    }

    /// The pixel at each label coordinate, and the WindowWidth (= the series' gain) of its image.
    static let readLabelPixels = """
    import sys, os, csv, json, pydicom
    root = sys.argv[1]
    out = []
    for r in csv.DictReader(open(os.path.join(root, "train_label_coordinates.csv"))):
        p = os.path.join(root, "train_images", r["study_id"], r["series_id"], r["instance_number"] + ".dcm")
        d = pydicom.dcmread(p)
        if not d.file_meta.TransferSyntaxUID in ("1.2.840.10008.1.2.1", "1.2.840.10008.1.2.5"):
            continue
        a = d.pixel_array.astype(float)
        x, y = round(float(r["x"])), round(float(r["y"]))
        row = a[y]
        # Width of the bright run through the point along the row (the canal's AP extent on a sagittal).
        t = 0.6 * float(d.WindowWidth)
        lo = x
        while lo > 0 and row[lo - 1] > t: lo -= 1
        hi = x
        while hi < len(row) - 1 and row[hi + 1] > t: hi += 1
        width = (hi - lo + 1) * float(d.PixelSpacing[1]) if row[x] > t else 0.0
        out.append(dict(study=r["study_id"], condition=r["condition"], level=r["level"], value=a[y, x],
                        median=float(sorted(a.ravel())[a.size // 2]), gain=float(d.WindowWidth), width=width,
                        desc=str(d.SeriesDescription), inst=int(d.InstanceNumber), want=int(r["instance_number"])))
    print(json.dumps(out))
    """

    func testLabelCoordinatesLandOnTheStructureTheyName() throws {
        let out = try Fixtures.scratch()
        defer { try? FileManager.default.removeItem(at: out) }
        // With quirks: instance numbers of study 0 are shuffled, and the CSV must follow the tags.
        let summary = try SynthCohort.write(Self.smallOptions(studies: 3, quirks: true), to: out)
        let rows = try XCTUnwrap(try Self.python(Self.readLabelPixels, [out.path]) as? [[String: Any]])
        XCTAssertGreaterThan(rows.count, 40)
        var seen = Set<String>(), checked = 0
        for r in rows {
            let condition = try XCTUnwrap(r["condition"] as? String), desc = try XCTUnwrap(r["desc"] as? String)
            let value = try XCTUnwrap(r["value"] as? Double), gain = try XCTUnwrap(r["gain"] as? Double)
            let median = try XCTUnwrap(r["median"] as? Double)
            seen.insert(condition)
            XCTAssertEqual(r["inst"] as? Int, r["want"] as? Int, "the file named by the CSV carries that InstanceNumber")
            switch condition {
            case "Spinal Canal Stenosis": XCTAssertEqual(desc, "Sagittal T2/STIR")
            case "Left Neural Foraminal Narrowing", "Right Neural Foraminal Narrowing": XCTAssertEqual(desc, "Sagittal T1")
            default: XCTAssertEqual(desc, "Axial T2")
            }
            let study = try XCTUnwrap(summary.studies.first { String($0.studyID) == r["study"] as? String })
            let column = RSNA.conditionTitles.firstIndex(of: condition)! * 5 + RSNA.levelTitles.firstIndex(of: r["level"] as! String)!
            // A severely stenosed recess is under a millimetre wide: no 3 mm pixel need fall inside it.
            if condition.hasSuffix("Subarticular Stenosis") && study.labels[column] == 2 { continue }
            // CSF (canal, recess) on T2/STIR and foraminal fat on T1 are the brightest tissues there.
            XCTAssertGreaterThan(value, 0.6 * gain, "\(condition) \(r["level"]!) of \(r["study"]!) is not on its structure")
            XCTAssertGreaterThan(value, 2 * median)
            checked += 1
        }
        XCTAssertEqual(seen.count, 5, "every condition has label points")
        XCTAssertGreaterThan(checked, rows.count * 3 / 4)
        // pydicom decodes RLE itself but needs plugins for JPEG 2000 and JPEG-LS (those are checked through GDCM).
        let needPlugins = summary.coordinates.filter { c in
            let study = summary.studies.first { $0.studyID == c.studyID }!
            let kind = PhantomStudy.seriesOfCondition[RSNA.conditionTitles.firstIndex(of: c.condition)!]
            return [.jpeg2000Lossless, .jpegLSLossless].contains(study.quirks.syntax[kind])
        }
        XCTAssertEqual(rows.count, summary.coordinates.count - needPlugins.count)
    }

    func testSevereCanalStenosisIsNarrowerThanNormal() throws {
        let out = try Fixtures.scratch()
        defer { try? FileManager.default.removeItem(at: out) }
        var options = Self.smallOptions(seed: 5, studies: 2, sagittalMatrix: 160)
        var weights = LabelDistribution.competition.weights
        weights[0] = [1, 0, 1]
        options.labels = LabelDistribution(weights: weights)
        let summary = try SynthCohort.write(options, to: out)
        let rows = try XCTUnwrap(try Self.python(Self.readLabelPixels, [out.path]) as? [[String: Any]])
        var normal: [Double] = [], severe: [Double] = []
        for r in rows where r["condition"] as? String == "Spinal Canal Stenosis" {
            let study = try XCTUnwrap(summary.studies.first { String($0.studyID) == r["study"] as? String })
            let level = try XCTUnwrap(RSNA.levelTitles.firstIndex(of: r["level"] as! String))
            let width = try XCTUnwrap(r["width"] as? Double)
            if study.labels[level] == 2 { severe.append(width) } else { normal.append(width) }
        }
        XCTAssertFalse(normal.isEmpty)
        XCTAssertFalse(severe.isEmpty)
        // Normal/Mild: AP canal ≥ 2·6.75·0.85 ≈ 11 mm; Severe: ≤ 2·8.25·0.36 ≈ 6 mm.
        XCTAssertLessThan(severe.max()!, normal.min()!, "severe \(severe) vs normal \(normal)")
        XCTAssertLessThan(severe.reduce(0, +) / Double(severe.count), 0.6 * normal.reduce(0, +) / Double(normal.count))
        XCTAssertGreaterThan(normal.min()!, 9)
    }

    func testLabelsFollowTheConfiguredDistribution() {
        func frequencies(_ labels: LabelDistribution, condition: Int) -> [Double] {
            let studies = SynthCohort.plan(SynthOptions(studies: 400, seed: 3, labels: labels))
            var counts = [0.0, 0, 0]
            for s in studies { for l in 0..<5 { counts[Int(s.labels[condition * 5 + l])] += 1 } }
            return counts.map { $0 / 2000 }
        }
        let canal = frequencies(.competition, condition: 0)
        XCTAssertEqual(canal[0], 0.84, accuracy: 0.03)
        XCTAssertEqual(canal[2], 0.07, accuracy: 0.02)
        let recess = frequencies(.competition, condition: 3)
        XCTAssertEqual(recess[0], 0.62, accuracy: 0.03)
        for f in frequencies(.uniform, condition: 1) { XCTAssertEqual(f, 1.0 / 3, accuracy: 0.03) }
        let ids = SynthCohort.plan(SynthOptions(studies: 400, seed: 3)).map(\.studyID)
        XCTAssertEqual(Set(ids).count, 400, "study ids are unique")
    }
}
