import ArgumentParser
import Core
import Foundation
import Ingest

/// `fuse3d bench fuse`: fusion time per study, DICOM reading timed apart.
struct BenchFuse: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "fuse",
        abstract: "Time the fusion of each study of an archive (reading and decoding DICOM is timed apart).",
        discussion: """
        Prints JSON: {"fuse3d_s": [best seconds per study], "read_s": [...], "threads": N}. With --dump, writes the
        first study's grid as raw float32 (3, D, H, W) for comparison with bench/fusion/peer_fuse.py.
        Example: fuse3d bench fuse bench/out/fusion/dicom --size 128 --repeats 5 --dump /tmp/fuse3d-128.f32
        """)

    @Argument(help: "An archive folder (any layout).") var archive: String
    @Option(help: "Grid size (voxels per axis).") var size = 128
    @Option(help: "Timed fusions per study; the best counts.") var repeats = 3
    @Option(help: "Write the first study's fused grid (float32, channel-major) to this file.") var dump: String?

    func validate() throws {
        guard size >= 8, repeats >= 1 else { throw ValidationError("--size must be ≥ 8 and --repeats ≥ 1.") }
    }

    func run() throws {
        let catalog = CatalogScanner.scan(root: archive)
        guard !catalog.studies.isEmpty else { throw ValidationError("no study found in \(archive)") }
        var studies: [[SeriesVolume]] = []
        var readSeconds: [Double] = []
        for study in catalog.studies {
            let start = DispatchTime.now().uptimeNanoseconds
            let volumes = [SeriesKind.sagittalT1, .sagittalT2, .axialT2].compactMap { kind in
                study.primarySeries(kind).map { SeriesLoader.load($0, root: catalog.root).0 }
            }
            readSeconds.append(Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9)
            studies.append(volumes)
        }
        let parameters = FusionParameters(size: size)
        let result = try FusionBenchmark.run(studies: studies, parameters: parameters, repeats: repeats)
        if let dump {
            let sample = try Fuser(parameters: parameters).fuse(series: studies[0], labels: [Int8](repeating: -1, count: 25),
                                                               coordinates: [], studyID: 0).sample
            let grid = sample.volume.map { Float($0) }
            try AtomicFile.write(grid.withUnsafeBufferPointer { Data(buffer: $0) }, to: URL(fileURLWithPath: dump))
        }
        print("{\"fuse3d_s\": \(result.secondsPerStudy), \"read_s\": \(readSeconds), \"threads\": \(ProcessInfo.processInfo.activeProcessorCount)}")
    }
}
