import Foundation
import TestSupport
import Train
import XCTest
import Yams

/// docs/slurm-train.sbatch and docs/k8s-train-indexed-job.yaml: they parse, and the ranks they start are the
/// ranks fuse3d reads from the launcher's environment.
final class DistributedDocsTests: XCTestCase {
    private let docs = Fixtures.repoRoot.appendingPathComponent("docs")

    func testSlurmExampleStartsOneRankPerTaskThroughSrun() throws {
        let sbatch = docs.appendingPathComponent("slurm-train.sbatch")
        let bash = try Fixtures.run(URL(fileURLWithPath: "/bin/bash"), ["-n", sbatch.path])
        XCTAssertEqual(bash.status, 0, bash.stderr)
        let script = try String(contentsOf: sbatch, encoding: .utf8)
        func directive(_ name: String) -> Int? {
            script.split(separator: "\n").first { $0.hasPrefix("#SBATCH --\(name)=") }.flatMap { Int($0.split(separator: "=")[1]) }
        }
        let nodes = try XCTUnwrap(directive("nodes")), perNode = try XCTUnwrap(directive("ntasks-per-node"))
        XCTAssertEqual(directive("gpus-per-node"), perNode, "one GPU per rank")
        let launch = try XCTUnwrap(script.split(separator: "\n").first { $0.hasPrefix("srun ") })
        XCTAssertTrue(launch.contains("train") && launch.contains("--resume") && launch.contains("--device cuda"), String(launch))
        // What srun gives the second task of the second node, read as fuse3d reads it.
        let env = try XCTUnwrap(LaunchEnvironment.detect([
            "SLURM_PROCID": String(perNode + 1), "SLURM_STEP_NUM_TASKS": String(nodes * perNode), "SLURM_LOCALID": "1",
            "SLURM_STEP_TASKS_PER_NODE": "\(perNode)(x\(nodes))", "SLURM_JOB_NODELIST": "gpu[041-042]", "MASTER_PORT": "29500",
        ]))
        XCTAssertEqual(env.rank, perNode + 1)
        XCTAssertEqual(env.worldSize, nodes * perNode)
        XCTAssertEqual(env.localWorldSize, perNode)
        XCTAssertEqual(env.masterAddress, "gpu041")
        XCTAssertFalse(env.servesStore)
    }

    func testKubernetesExampleIsAnIndexedJobBehindAHeadlessService() throws {
        let text = try String(contentsOf: docs.appendingPathComponent("k8s-train-indexed-job.yaml"), encoding: .utf8)
        let documents = try Yams.load_all(yaml: text).compactMap { $0 as? [String: Any] }
        XCTAssertEqual(documents.map { $0["kind"] as? String }, ["Service", "Job"])
        let service = try XCTUnwrap(documents[0]["spec"] as? [String: Any])
        XCTAssertEqual(service["clusterIP"] as? String, "None")
        let serviceName = try XCTUnwrap((documents[0]["metadata"] as? [String: Any])?["name"] as? String)
        let jobName = try XCTUnwrap((documents[1]["metadata"] as? [String: Any])?["name"] as? String)
        XCTAssertEqual((service["selector"] as? [String: Any])?["job-name"] as? String, jobName)
        let job = try XCTUnwrap(documents[1]["spec"] as? [String: Any])
        XCTAssertEqual(job["completionMode"] as? String, "Indexed")
        let pods = try XCTUnwrap(job["completions"] as? Int)
        XCTAssertEqual(job["parallelism"] as? Int, pods, "every rank runs at once")
        let pod = try XCTUnwrap((job["template"] as? [String: Any])?["spec"] as? [String: Any])
        XCTAssertEqual(pod["subdomain"] as? String, serviceName)
        let container = try XCTUnwrap((pod["containers"] as? [[String: Any]])?.first)
        let args = ((container["args"] as? [String]) ?? []).joined(separator: " ").split(separator: " ").map(String.init)
        func value(_ flag: String) -> String? { args.firstIndex(of: flag).map { args[$0 + 1] } }
        XCTAssertEqual(args.first, "exec")
        XCTAssertEqual(args[1], "torchrun")
        XCTAssertEqual(value("--nnodes"), String(pods))
        XCTAssertEqual(value("--node-rank"), "$JOB_COMPLETION_INDEX")
        // Pod 0 of an Indexed Job is named <job>-0, reachable as <job>-0.<subdomain> through the headless service.
        XCTAssertEqual(value("--master-addr"), "\(jobName)-0.\(serviceName)")
        let gpus = (container["resources"] as? [String: Any]).flatMap { ($0["limits"] as? [String: Any])?["nvidia.com/gpu"] as? Int }
        XCTAssertEqual(value("--nproc-per-node"), gpus.map(String.init))
        XCTAssertTrue(args.joined(separator: " ").contains("--no-python fuse3d train"))
    }
}
