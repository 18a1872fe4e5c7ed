import ArgumentParser
import Foundation
import Train

/// The run folder and device that `evaluate` and `predict` share, checked alike.
struct TrainedRunOptions: ParsableArguments {
    @Argument(help: ArgumentHelp("The run folder written by `fuse3d train`.", valueName: "run")) var runFolder: String
    // The option is parsed once, by its transform; a transform hides the default from the help, so the help says it.
    @Option(help: "cpu, cuda or cuda:N. (default: cpu)", transform: { try SharedChecks.device($0).device }) var device = Device.cpu
    @Flag(help: "Test-time augmentation: also read every study mirrored left-right, swap its left and right label columns back and average the two (twice the time).")
    var flipTta = false

    func validate() throws {
        guard FileManager.default.fileExists(atPath: runURL.appendingPathComponent(RunFolder.summaryName).path) else {
            throw ValidationError("'\(runFolder)' has no \(RunFolder.summaryName): give a run folder written by `fuse3d train`.")
        }
        try Torch.validate(device)
    }

    /// The run folder.
    var runURL: URL { URL(fileURLWithPath: runFolder) }
    /// The run, its configuration and its folds' summary.
    func load() throws -> TrainedRun { try TrainedRun(run: runURL) }
}
