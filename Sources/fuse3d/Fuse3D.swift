import ArgumentParser
import Ingest
import Shards
import Train

/// The fuse3d command-line tool: thin subcommands over the Ingest, Shards and Train libraries.
@main
struct Fuse3D: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "fuse3d",
        abstract: "Lumbar-spine MRI (DICOM) → fused 3-channel grids in HDF5 shards → 3D ordinal models.",
        discussion: """
        Example, end to end on a phantom cohort:
          fuse3d synth --studies 8 --out /tmp/cohort
          fuse3d scan /tmp/cohort
          fuse3d ingest /tmp/cohort --out /tmp/shards --size 64
          fuse3d inspect /tmp/shards --png /tmp/sample.png
        """,
        version: "0.1.0",
        subcommands: [Synth.self, Scan.self, IngestCommand.self, MergeCommand.self, CacheCommand.self, Inspect.self, Verify.self, TrainCommand.self,
                      EvaluateCommand.self, PredictCommand.self, Bench.self, Version.self, DecodeWorker.self]
    )
}

/// Prints the versions of the native libraries: those linked, and the libtorch found for training.
struct Version: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Print the versions of fuse3d, its native libraries and the libtorch found (CUDA, GPUs).",
        discussion: """
        libtorch is opened only by training commands, through the bridge libfuse3d_torch.so (searched in
        FUSE3D_TORCH, beside fuse3d, then the build folder); without it every other command still runs.

        Example: fuse3d version
        """)
    func run() throws {
        print("fuse3d 0.1.0")
        print("GDCM \(DicomReader.gdcmVersion), \(ShardSchema.nativeLibraries)")
        do {
            try Torch.library().summary.forEach { print($0) }
        } catch let error as TorchError {
            print("libtorch: not available (only training needs it): \(error.message)")
        }
    }
}

/// `fuse3d decode-worker`: the supervised child that `ingest`, `scan --decode` and `predict` run their decoders in
/// (issue 32). Not for people: it speaks a binary protocol on its standard input and output.
struct DecodeWorker: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "decode-worker",
        abstract: "Internal: decode and fuse studies for a supervising fuse3d process (not run by hand).",
        discussion: """
        ingest, scan --decode and predict start one of these per worker and talk to it over pipes; a decoder that \
        crashes or hangs in it costs the file it was reading, never the run.

        Example (what ingest runs): fuse3d decode-worker < requests > events
        """,
        shouldDisplay: false)

    func run() throws {
        let status = DecodeWorkerServer.serve()
        if status != 0 { throw ExitCode(status) }
    }
}
