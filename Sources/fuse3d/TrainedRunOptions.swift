import ArgumentParser
import Foundation
import Train

/// The run folder and device that `evaluate` and `predict` share, checked alike.
struct TrainedRunOptions: ParsableArguments {
    @Argument(help: ArgumentHelp("The run folder written by `fuse3d train`.", valueName: "run")) var runFolder: String
    @Option(help: "cpu, cuda or cuda:N.") var device = "cpu"

    func validate() throws {
        guard FileManager.default.fileExists(atPath: runURL.appendingPathComponent(RunFolder.summaryName).path) else {
            throw ValidationError("'\(runFolder)' has no \(RunFolder.summaryName): give a run folder written by `fuse3d train`.")
        }
        try Torch.validate(try SharedChecks.device(device))
    }

    /// The run folder.
    var runURL: URL { URL(fileURLWithPath: runFolder) }
    /// The device (checked by `validate`).
    var torchDevice: Device { Device(device) ?? .cpu }
    /// The run, its configuration and its folds' summary.
    func load() throws -> TrainedRun { try TrainedRun(run: runURL) }
}
