import Core
import Foundation
import Ingest
import TestSupport
import XCTest
import Yams

/// Partitions from --partition and from the schedulers' environments, and the scheduler examples in docs/.
final class PartitionTests: XCTestCase {
    func testParseAndSplitAreStableAndComplete() throws {
        XCTAssertEqual(try Partition.parse("2/5"), Partition(index: 2, count: 5, source: "--partition"))
        for bad in ["5/5", "-1/3", "1", "a/b", "0/0"] { XCTAssertThrowsError(try Partition.parse(bad), bad) }
        // FNV-1a 64 of "a" (a published test vector): the split cannot drift between machines or releases.
        XCTAssertEqual(StableHash.fnv1a64("a"), 0xaf63_dc4c_8601_ec8c)
        let ids = (0..<200).map { String(1_000_000 + $0 * 7919) }
        let parts = (0..<4).map { Partition(index: $0, count: 4, source: "test") }
        for id in ids { XCTAssertEqual(parts.filter { $0.contains(studyID: id) }.count, 1, id) }
        let sizes = parts.map { p in ids.filter { p.contains(studyID: $0) }.count }
        XCTAssertTrue(sizes.allSatisfy { $0 > 25 }, "\(sizes)")
    }

    func testSlurmArrayEnvironment() throws {
        let p = try Partition.fromEnvironment(["SLURM_ARRAY_TASK_ID": "12", "SLURM_ARRAY_TASK_MIN": "10", "SLURM_ARRAY_TASK_COUNT": "4"])
        XCTAssertEqual(p, Partition(index: 2, count: 4, source: "slurm"))
        XCTAssertEqual(try Partition.fromEnvironment(["SLURM_ARRAY_TASK_ID": "3", "SLURM_ARRAY_TASK_COUNT": "4"])?.index, 3)
        XCTAssertThrowsError(try Partition.fromEnvironment(["SLURM_ARRAY_TASK_ID": "3"]))
        XCTAssertThrowsError(try Partition.fromEnvironment(["SLURM_ARRAY_TASK_ID": "9", "SLURM_ARRAY_TASK_COUNT": "4"]))
        XCTAssertNil(try Partition.fromEnvironment(["HOME": "/root"]))
    }

    func testKubernetesIndexedJobEnvironment() throws {
        XCTAssertEqual(try Partition.fromEnvironment(["JOB_COMPLETION_INDEX": "1"], kubernetesCount: 3),
                       Partition(index: 1, count: 3, source: "kubernetes"))
        XCTAssertEqual(try Partition.fromEnvironment(["JOB_COMPLETION_INDEX": "0", Partition.kubernetesCountVariable: "2"])?.count, 2)
        XCTAssertThrowsError(try Partition.fromEnvironment(["JOB_COMPLETION_INDEX": "1"])) { error in
            XCTAssertTrue("\(error)".contains("FUSE3D_PARTITION_COUNT"), "\(error)")
        }
        XCTAssertThrowsError(try Partition.fromEnvironment(["JOB_COMPLETION_INDEX": "3"], kubernetesCount: 3))
    }

    /// docs/slurm.sbatch passes `bash -n` and submits an array plus a dependent merge; docs/k8s-indexed-job.yaml
    /// parses into an Indexed Job whose completions equal FUSE3D_PARTITION_COUNT, and a merge Job.
    func testSchedulerExamplesParse() throws {
        let docs = Fixtures.repoRoot.appendingPathComponent("docs")
        let sbatch = docs.appendingPathComponent("slurm.sbatch")
        let bash = try Fixtures.run(URL(fileURLWithPath: "/bin/bash"), ["-n", sbatch.path])
        XCTAssertEqual(bash.status, 0, bash.stderr)
        let script = try String(contentsOf: sbatch, encoding: .utf8)
        XCTAssertTrue(script.contains("--array=0-") && script.contains("--dependency=afterok") && script.contains("merge"))

        let text = try String(contentsOf: docs.appendingPathComponent("k8s-indexed-job.yaml"), encoding: .utf8)
        let documents = try Yams.load_all(yaml: text).compactMap { $0 as? [String: Any] }
        XCTAssertEqual(documents.count, 2)
        let specs = documents.compactMap { $0["spec"] as? [String: Any] }
        let indexed = try XCTUnwrap(specs.first { $0["completionMode"] as? String == "Indexed" })
        let completions = try XCTUnwrap(indexed["completions"] as? Int)
        func container(_ spec: [String: Any]) -> [String: Any] {
            (((spec["template"] as? [String: Any])?["spec"] as? [String: Any])?["containers"] as? [[String: Any]])?.first ?? [:]
        }
        let env = (container(indexed)["env"] as? [[String: Any]]) ?? []
        let count = env.first { $0["name"] as? String == Partition.kubernetesCountVariable }?["value"] as? String
        XCTAssertEqual(count, String(completions))
        let ingestArgs = ((container(indexed)["args"] as? [String]) ?? []).joined(separator: " ")
        XCTAssertTrue(ingestArgs.contains("fuse3d ingest") && ingestArgs.contains("$JOB_COMPLETION_INDEX"), ingestArgs)
        let merge = try XCTUnwrap(specs.first { $0["completionMode"] == nil })
        let mergeArgs = ((container(merge)["args"] as? [String]) ?? []).joined(separator: " ")
        XCTAssertTrue(mergeArgs.contains("fuse3d merge") && mergeArgs.contains("seq 0 \(completions - 1)"), mergeArgs)
    }
}
