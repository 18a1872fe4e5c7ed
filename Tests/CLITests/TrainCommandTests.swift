import Foundation
import TestSupport
import XCTest

/// `fuse3d train`, `evaluate` and `predict` through the real binary on a 4-study phantom cohort at 16³.
final class TrainCommandTests: XCTestCase {
    // Set once by the class setUp before any test of the class runs; XCTest runs them one at a time.
    nonisolated(unsafe) static var root: URL!
    nonisolated(unsafe) static var cohort: URL!
    nonisolated(unsafe) static var shards: URL!

    override class func setUp() {
        super.setUp()
        root = try! Fixtures.scratch("train-cli")
        cohort = root.appendingPathComponent("cohort")
        shards = root.appendingPathComponent("shards")
        let synth = try! Fixtures.run(Fixtures.fuse3d, ["synth", "--studies", "4", "--out", cohort.path, "--seed", "5"])
        precondition(synth.status == 0, synth.stderr)
        let ingest = try! Fixtures.run(Fixtures.fuse3d, ["ingest", cohort.path, "--out", shards.path, "--size", "16"])
        precondition(ingest.status == 0, ingest.stderr + ingest.stdout)
    }

    private func config(_ extra: String = "") throws -> URL {
        let url = try Fixtures.scratch().appendingPathComponent("train.yaml")
        try """
        width: 0.25
        folds: 2
        epochs: 2
        batch_size: 2
        threads: 1
        ema_decay: 0.5
        loader:
          threads: 1
        \(extra)
        """.write(to: url, atomically: true, encoding: .utf8)
        return url
    }

    private func tensors(_ url: URL) throws -> [String: Data] {
        let data = try Data(contentsOf: url)
        let n = data.prefix(8).enumerated().reduce(0) { $0 | (Int($1.element) << (8 * $1.offset)) }
        let header = try JSONSerialization.jsonObject(with: data.subdata(in: 8..<(8 + n))) as! [String: Any]
        var out: [String: Data] = [:]
        for (name, entry) in header where name != "__metadata__" {
            let r = (entry as! [String: Any])["data_offsets"] as! [Int]
            out[name] = data.subdata(in: (8 + n + r[0])..<(8 + n + r[1]))
        }
        return out
    }

    /// A run trained before condition points existed (the localizer's five canal points; its config.yaml without the
    /// `condition_points` key) resumes and evaluates as it was trained: its checkpoints load. Made here by training with
    /// `condition_points: false` and removing the key, as the older build wrote it; stopped after one step, so the
    /// resume has epochs left to train from the checkpoint.
    func testARunFromBeforeConditionPointsResumesAndEvaluates() throws {
        let cfg = try config("two_stage:\n  condition_points: false")
        let run = Self.root.appendingPathComponent("before-points")
        let stop = try Fixtures.run(Fixtures.fuse3d, ["train", Self.shards.path, "--out", run.path, "--config", cfg.path, "--fold", "0",
                                                      "--stop-after-steps", "1"])
        XCTAssertEqual(stop.status, 3, stop.stderr + stop.stdout)
        let yaml = run.appendingPathComponent("config.yaml")
        let text = try String(contentsOf: yaml, encoding: .utf8)
        XCTAssertTrue(text.contains("condition_points: false"), text)
        try text.split(separator: "\n").filter { !$0.contains("condition_points") }.joined(separator: "\n").write(to: yaml, atomically: true, encoding: .utf8)
        let resumed = try Fixtures.run(Fixtures.fuse3d, ["train", Self.shards.path, "--out", run.path, "--fold", "0", "--resume"])
        XCTAssertEqual(resumed.status, 0, resumed.stderr + resumed.stdout)
        let e = try Fixtures.run(Fixtures.fuse3d, ["evaluate", run.path, Self.shards.path])
        XCTAssertEqual(e.status, 0, e.stderr)
        XCTAssertTrue(e.stdout.contains("RSNA score"), e.stdout)
    }

    func testTrainEvaluatePredictAndAnExactResumeAfterAKilledProcess() throws {
        let cfg = try config("checkpoint_every: 1")
        let straight = Self.root.appendingPathComponent("straight")
        let r = try Fixtures.run(Fixtures.fuse3d, ["train", Self.shards.path, "--out", straight.path, "--config", cfg.path])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertTrue(r.stdout.contains("mean validation score"), r.stdout)
        // Beside the best epoch's score, the last epoch's and the trained weights' own without the EMA.
        XCTAssertTrue(r.stdout.contains("; last epoch ") && r.stdout.contains(", without the EMA "), r.stdout)
        for name in ["config.yaml", "splits.json", "summary.json", "report.html", "source.json", "fold-0/metrics.csv", "fold-1/best.safetensors"] {
            XCTAssertTrue(FileManager.default.fileExists(atPath: straight.appendingPathComponent(name).path), name)
        }
        let report = try String(contentsOf: straight.appendingPathComponent("report.html"), encoding: .utf8)
        // Loss, score, learning rate, and the default two-stage model's localizer error with its per-level table.
        XCTAssertEqual(report.components(separatedBy: "<svg").count - 1, 4)
        XCTAssertTrue(report.contains("spinal_canal_stenosis") && !report.contains("src=\"http"))
        XCTAssertTrue(report.contains("Localizer (stage one)"), "no localizer table in the report")
        let summaryJSON = try JSONSerialization.jsonObject(with: Data(contentsOf: straight.appendingPathComponent("summary.json"))) as! [String: Any]
        let localization = try XCTUnwrap(((summaryJSON["folds"] as! [[String: Any]])[0])["localization"] as? [String: Any])
        XCTAssertEqual((localization["per_level_mm"] as? [Double])?.count, 5)
        XCTAssertGreaterThan(localization["points"] as? Int ?? 0, 0)
        // The held-out points of the best epoch, and their picture in the report.
        let heldPoints = try JSONSerialization.jsonObject(with: Data(contentsOf: straight.appendingPathComponent("fold-0/points.json"))) as! [String: Any]
        let pointStudies = try XCTUnwrap(heldPoints["studies"] as? [[String: Any]])
        let splits = try JSONSerialization.jsonObject(with: Data(contentsOf: straight.appendingPathComponent("splits.json"))) as! [String: Any]
        XCTAssertEqual(pointStudies.count, ((splits["folds"] as! [[Any]])[0]).count)
        // Every label column's point (the canal, each foramen and each recess at each level).
        XCTAssertEqual((pointStudies[0]["predicted"] as? [[Double]])?.count, 25)
        XCTAssertEqual((pointStudies[0]["truth"] as? [Any])?.count, 25)
        XCTAssertEqual((localization["per_group_median_mm"] as? [Double])?.count, 3)
        XCTAssertNotNil(((summaryJSON["folds"] as! [[String: Any]])[0])["last_without_ema"] as? [String: Any])
        XCTAssertTrue(report.contains("<img src=\"localizer-fold-0.png\""), "no localizer picture in the report")
        let png = try Data(contentsOf: straight.appendingPathComponent("localizer-fold-0.png"))
        XCTAssertEqual(Array(png.prefix(4)), [0x89, 0x50, 0x4E, 0x47])

        // Stopped after 1 step (fold 0, one step per epoch), then resumed and killed with SIGKILL once fold 1 has saved its
        // first checkpoint (polled, so the kill lands mid-run), then resumed to the end.
        let resumed = Self.root.appendingPathComponent("resumed")
        let stop = try Fixtures.run(Fixtures.fuse3d, ["train", Self.shards.path, "--out", resumed.path, "--config", cfg.path, "--stop-after-steps", "1"])
        XCTAssertEqual(stop.status, 3, stop.stderr + stop.stdout)
        let foldOneCheckpoint = resumed.appendingPathComponent("fold-1/last.safetensors").path
        XCTAssertFalse(FileManager.default.fileExists(atPath: foldOneCheckpoint))
        let p = try Fixtures.start(Fixtures.fuse3d, ["train", Self.shards.path, "--out", resumed.path, "--resume"])
        XCTAssertTrue(Fixtures.kill(p, when: { FileManager.default.fileExists(atPath: foldOneCheckpoint) }),
                      "the resumed run never saved fold 1's first checkpoint")
        XCTAssertEqual(p.terminationReason, .uncaughtSignal, "the resumed run finished before it could be killed")
        XCTAssertFalse(FileManager.default.fileExists(atPath: resumed.appendingPathComponent("summary.json").path))
        let finish = try Fixtures.run(Fixtures.fuse3d, ["train", Self.shards.path, "--out", resumed.path, "--resume"])
        XCTAssertEqual(finish.status, 0, finish.stderr)
        for fold in 0..<2 {
            let a = try tensors(straight.appendingPathComponent("fold-\(fold)/last.safetensors"))
            let b = try tensors(resumed.appendingPathComponent("fold-\(fold)/last.safetensors"))
            XCTAssertEqual(a.keys.sorted(), b.keys.sorted())
            for key in a.keys.sorted() { XCTAssertTrue(a[key] == b[key], "fold \(fold): \(key) differs") }
        }

        let e = try Fixtures.run(Fixtures.fuse3d, ["evaluate", straight.path, Self.shards.path])
        XCTAssertEqual(e.status, 0, e.stderr)
        XCTAssertTrue(e.stdout.contains("RSNA score") && e.stdout.contains("any_severe_spinal") && e.stdout.contains("confusion"), e.stdout)
        // A two-stage run: the localizers' error against the shards' keypoints, per condition group.
        XCTAssertTrue(e.stdout.contains("localizer: ") && e.stdout.contains("subarticular recesses: median"), e.stdout)
        let mirroredJSON = Self.root.appendingPathComponent("evaluation-flip.json")
        let ef = try Fixtures.run(Fixtures.fuse3d, ["evaluate", straight.path, Self.shards.path, "--flip-tta", "--out", mirroredJSON.path])
        XCTAssertEqual(ef.status, 0, ef.stderr)
        XCTAssertTrue(ef.stdout.contains("each also read mirrored left-right"), ef.stdout)
        let flipEvaluation = try JSONSerialization.jsonObject(with: Data(contentsOf: mirroredJSON)) as! [String: Any]
        XCTAssertEqual(flipEvaluation["flip_tta"] as? Bool, true)

        let csv = Self.root.appendingPathComponent("submission.csv")
        let pr = try Fixtures.run(Fixtures.fuse3d, ["predict", straight.path, Self.shards.path, "--out", csv.path])
        XCTAssertEqual(pr.status, 0, pr.stderr)
        let lines = try String(contentsOf: csv, encoding: .utf8).split(separator: "\n").map(String.init)
        XCTAssertEqual(lines.first, "row_id,normal_mild,moderate,severe")
        XCTAssertEqual(lines.count, 1 + 4 * 25)
        let studies = try FileManager.default.contentsOfDirectory(atPath: Self.cohort.appendingPathComponent("train_images").path)
        for line in lines.dropFirst() {
            let f = line.split(separator: ",")
            XCTAssertEqual(f.count, 4, line)
            XCTAssertEqual(f.dropFirst().map { Double($0)! }.reduce(0, +), 1, accuracy: 1e-6, line)
            let id = f[0].split(separator: "_", maxSplits: 1)
            XCTAssertTrue(studies.contains(String(id[0])), line)
        }
        XCTAssertTrue(lines.contains { $0.hasPrefix("\(studies.sorted()[0])_right_subarticular_stenosis_l5_s1,") })

        // From the DICOM archive: ingested with the run's pipeline, same predictions.
        let csv2 = Self.root.appendingPathComponent("submission-dicom.csv")
        let points = Self.root.appendingPathComponent("points-dicom.csv"), shardPoints = Self.root.appendingPathComponent("points.csv")
        let pd = try Fixtures.run(Fixtures.fuse3d, ["predict", straight.path, Self.cohort.path, "--out", csv2.path, "--keypoints", points.path])
        XCTAssertEqual(pd.status, 0, pd.stderr)
        XCTAssertEqual(try Data(contentsOf: csv2), try Data(contentsOf: csv))

        // With Kaggle's sample_submission.csv at the archive's root: its rows in its order, a study it asks for that has no
        // images gets the run's best constant prediction, a study it does not ask for is left out.
        let asked = Self.root.appendingPathComponent("archive-with-sample")
        try? FileManager.default.removeItem(at: asked)
        try FileManager.default.copyItem(at: Self.cohort, to: asked)
        let byID = Dictionary(lines.dropFirst().map { (String($0.split(separator: ",")[0]), $0) }, uniquingKeysWith: { a, _ in a })
        var sampleIDs = byID.keys.filter { !$0.hasPrefix(studies.sorted()[0] + "_") }.sorted().reversed().map { $0 }
        // train.csv's 25 label columns, condition-major (RSNA.labelColumns; this target links no library of ours).
        let labelColumns = ["spinal_canal_stenosis", "left_neural_foraminal_narrowing", "right_neural_foraminal_narrowing",
                            "left_subarticular_stenosis", "right_subarticular_stenosis"]
            .flatMap { c in ["l1_l2", "l2_l3", "l3_l4", "l4_l5", "l5_s1"].map { "\(c)_\($0)" } }
        sampleIDs.insert(contentsOf: labelColumns.map { "999_\($0)" }, at: 7)
        try ("row_id,normal_mild,moderate,severe\n" + sampleIDs.map { "\($0),0.333,0.333,0.333\n" }.joined())
            .write(to: asked.appendingPathComponent("sample_submission.csv"), atomically: true, encoding: .utf8)
        let csv3 = Self.root.appendingPathComponent("submission-sample.csv")
        let ps3 = try Fixtures.run(Fixtures.fuse3d, ["predict", straight.path, asked.path, "--out", csv3.path])
        XCTAssertEqual(ps3.status, 0, ps3.stderr)
        XCTAssertTrue(ps3.stdout.contains("1 of them have no prediction") && ps3.stdout.contains("1 predicted studies are not in"), ps3.stdout)
        let ordered = try String(contentsOf: csv3, encoding: .utf8).split(separator: "\n").map(String.init)
        XCTAssertEqual(ordered.dropFirst().map { String($0.split(separator: ",")[0]) }, sampleIDs)
        let summary = try JSONSerialization.jsonObject(with: Data(contentsOf: straight.appendingPathComponent("summary.json"))) as! [String: Any]
        let prior = try XCTUnwrap(summary["prior_probabilities"] as? [Double], "\(summary.keys.sorted())")
        for (row, id) in zip(ordered.dropFirst(), sampleIDs) {
            if id.hasPrefix("999_") {
                let c = labelColumns.firstIndex(of: String(id.dropFirst(4)))!
                let p = row.split(separator: ",").dropFirst().map { Double($0)! }
                let q = Array(prior[(c * 3)..<(c * 3 + 3)]), total = q.reduce(0, +)
                for k in 0..<3 { XCTAssertEqual(p[k], q[k] / total, accuracy: 1e-8, row) }
            } else {
                XCTAssertEqual(row, byID[id], id)
            }
        }
        // The two-stage default's points: the same patient points from either source; the DICOM source names slices.
        let ps = try Fixtures.run(Fixtures.fuse3d, ["predict", straight.path, Self.shards.path, "--out", csv.path, "--keypoints", shardPoints.path])
        XCTAssertEqual(ps.status, 0, ps.stderr)
        let fromDICOM = try String(contentsOf: points, encoding: .utf8).split(separator: "\n").map { $0.split(separator: ",", omittingEmptySubsequences: false) }
        let fromShards = try String(contentsOf: shardPoints, encoding: .utf8).split(separator: "\n").map { $0.split(separator: ",", omittingEmptySubsequences: false) }
        XCTAssertEqual(fromDICOM.first?.joined(separator: ","), "study_id,condition,level,x,y,z,series_id,instance_number,pixel_x,pixel_y")
        XCTAssertEqual(fromDICOM.count, 1 + 4 * 25)
        XCTAssertEqual(fromDICOM.map { $0.prefix(6) }, fromShards.map { $0.prefix(6) })
        XCTAssertTrue(fromDICOM.dropFirst().allSatisfy { !$0[6].isEmpty && Int($0[7]) != nil }, "\(fromDICOM.prefix(3))")
        XCTAssertTrue(fromShards.dropFirst().allSatisfy { $0[6].isEmpty }, "\(fromShards.prefix(3))")
    }

    func testABadConfigurationNamesTheFileAndKey() throws {
        let cfg = try config("optimiser:\n  lr: 0.1")
        let r = try Fixtures.run(Fixtures.fuse3d, ["train", Self.shards.path, "--out", Self.root.appendingPathComponent("bad").path, "--config", cfg.path])
        XCTAssertNotEqual(r.status, 0)
        XCTAssertTrue(r.stderr.contains("\(cfg.path):9: optimiser: unknown key"), r.stderr)
    }

    func testAFolderWithResultsIsRefusedWithoutResumeOrOverwriteAndKeptAsItWas() throws {
        let cfg = try config()
        let run = Self.root.appendingPathComponent("refused")
        let first = try Fixtures.run(Fixtures.fuse3d, ["train", Self.shards.path, "--out", run.path, "--config", cfg.path, "--fold", "0", "--epochs", "1"])
        XCTAssertEqual(first.status, 0, first.stderr)
        func files() throws -> [String: Data] {
            var out: [String: Data] = [:]
            for case let path as String in FileManager.default.enumerator(atPath: run.path)! {
                let url = run.appendingPathComponent(path)
                var isDir: ObjCBool = false
                if FileManager.default.fileExists(atPath: url.path, isDirectory: &isDir), !isDir.boolValue { out[path] = try Data(contentsOf: url) }
            }
            return out
        }
        let before = try files()
        XCTAssertNotNil(before["fold-0/best.safetensors"])

        let again = try Fixtures.run(Fixtures.fuse3d, ["train", Self.shards.path, "--out", run.path, "--config", cfg.path, "--fold", "0", "--epochs", "1"])
        XCTAssertEqual(again.status, 1)
        XCTAssertTrue(again.stderr.contains("\(run.path) already holds results of a training run (fold-0, summary.json): "
                                            + "continue it with --resume, replace it with --overwrite, or give another --out"), again.stderr)
        XCTAssertFalse(again.stderr.contains("libtorch"), again.stderr)
        XCTAssertEqual(again.stdout, "", "nothing is announced before the checks")
        XCTAssertEqual(try files(), before, "a refused run wrote or deleted something")

        let both = try Fixtures.run(Fixtures.fuse3d, ["train", Self.shards.path, "--out", run.path, "--resume", "--overwrite"])
        XCTAssertNotEqual(both.status, 0)
        XCTAssertTrue(both.stderr.contains("--resume and --overwrite exclude each other"), both.stderr)
        XCTAssertEqual(try files(), before)

        let overwritten = try Fixtures.run(Fixtures.fuse3d, ["train", Self.shards.path, "--out", run.path, "--config", cfg.path, "--fold", "1",
                                                             "--epochs", "1", "--overwrite"])
        XCTAssertEqual(overwritten.status, 0, overwritten.stderr)
        XCTAssertFalse(FileManager.default.fileExists(atPath: run.appendingPathComponent("fold-0/result.json").path), "fold 0 of the earlier run is gone")
        let summary = try JSONSerialization.jsonObject(with: Data(contentsOf: run.appendingPathComponent("summary.json"))) as! [String: Any]
        XCTAssertEqual((summary["folds"] as! [[String: Any]]).map { $0["fold"] as! Int }, [1])

        let help = try Fixtures.run(Fixtures.fuse3d, ["train", "--help"])
        XCTAssertTrue(help.stdout.contains("--overwrite"), help.stdout)
    }

    func testAFoldOutOfRangeIsCheckedBeforeAnythingIsWritten() throws {
        let run = Self.root.appendingPathComponent("fold-seven")
        let r = try Fixtures.run(Fixtures.fuse3d, ["train", Self.shards.path, "--out", run.path, "--config", try config().path, "--fold", "7"])
        XCTAssertEqual(r.status, 1)
        XCTAssertTrue(r.stderr.contains("fold 7 does not exist: the run has folds 0..<2"), r.stderr)
        XCTAssertFalse(r.stderr.contains("libtorch"), r.stderr)
        XCTAssertEqual(r.stdout, "")
        XCTAssertFalse(FileManager.default.fileExists(atPath: run.path), "the run folder was created")
    }

    func testShardFolderAndDeviceChecksAreTheLibrariesOwnInEveryCommand() throws {
        let empty = try Fixtures.scratch("not-shards")
        for args in [["train", empty.path, "--out", empty.appendingPathComponent("run").path], ["bench", "loader", empty.path]] {
            let r = try Fixtures.run(Fixtures.fuse3d, args)
            XCTAssertNotEqual(r.status, 0)
            XCTAssertTrue(r.stderr.contains("\(empty.path): has no manifest.json: give a shard folder written by `fuse3d ingest`"), r.stderr)
        }
        for args in [["train", Self.shards.path, "--out", empty.appendingPathComponent("run").path, "--device", "tpu"],
                     ["bench", "train", "--device", "tpu"]] {
            let r = try Fixtures.run(Fixtures.fuse3d, args)
            XCTAssertNotEqual(r.status, 0)
            XCTAssertTrue(r.stderr.contains("--device must be cpu, cuda or cuda:N, not tpu"), r.stderr)
        }
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: empty.path), [])
    }
}
