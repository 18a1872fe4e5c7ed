// swift-tools-version:5.10
// Times Fuse3D's Fuser alone (no DICOM decoding) on the raw study peer_fuse.py writes, so the fusion step is
// compared with the Python peers on the same pixels and grid. The library sources are symlinks into the
// repository's Sources/, compiled here without the native shims, so this package builds on its own.
import PackageDescription

let package = Package(
    name: "FusionBench",
    targets: [
        .target(name: "Shards", path: "Shards"),
        .target(name: "Ingest", dependencies: ["Shards"], path: "Ingest"),
        .executableTarget(name: "fusion-bench", dependencies: ["Ingest", "Shards"], path: "FusionBench"),
    ]
)
