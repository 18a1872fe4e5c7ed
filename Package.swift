// swift-tools-version:6.0
// Fuse3D: lumbar-spine MRI (DICOM) → fused 3-channel float16 grids in HDF5 shards → 3D ordinal models.
import Foundation
import PackageDescription

let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().path

/// fuse3d does not link libtorch: `make torch` builds the bridge (Sources/CTorch/torch_api.cpp) into
/// .build/torch/libfuse3d_torch.so against a chosen PyTorch, and CTorch opens it on first use; this
/// folder is the last place it looks (after FUSE3D_TORCH and the executable's folder).
let torchBuildDir = "\(root)/.build/torch"

let gdcmInclude = "/usr/include/gdcm-3.0"
let hdf5Include = "/usr/include/hdf5/serial"

let package = Package(
    name: "Fuse3D",
    platforms: [.macOS(.v15)],  // v15: Synchronization's Mutex (we ship Linux; macOS builds need 15)
    products: [
        .executable(name: "fuse3d", targets: ["fuse3d"]),
        .library(name: "Ingest", targets: ["Ingest"]),
        .library(name: "Core", targets: ["Core"]),
        .library(name: "Shards", targets: ["Shards"]),
        .library(name: "Train", targets: ["Train"]),
        .library(name: "Report", targets: ["Report"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/jpsim/Yams", from: "5.0.1"),
    ],
    targets: [
        // C++ shim over GDCM: opaque handles, *_free, thread-local last error.
        .target(
            name: "CGDCM",
            cxxSettings: [.unsafeFlags(["-I\(gdcmInclude)"])],
            linkerSettings: [
                .linkedLibrary("gdcmMSFF"), .linkedLibrary("gdcmDSED"), .linkedLibrary("gdcmDICT"),
                .linkedLibrary("gdcmIOD"), .linkedLibrary("gdcmCommon"), .linkedLibrary("charls"), .linkedLibrary("stdc++"),
            ]
        ),
        // What the CPU offers (one copy of the CPUID checks) and SHA-256 with the x86 SHA extensions; links nothing.
        .target(name: "CCore"),
        // HDF5 C API re-exports + the Zstandard filter (id 32015).
        .target(
            name: "CHDF5",
            dependencies: ["CCore"],
            cSettings: [.unsafeFlags(["-I\(hdf5Include)"])],
            linkerSettings: [
                .linkedLibrary("hdf5_serial"), .linkedLibrary("zstd"),
            ]
        ),
        // The resampler's voxel loop in C (no checked conversions; bit-exact with the Swift it replaced).
        .target(name: "CFusion", dependencies: ["CCore"]),
        // PNG encoding through Debian's libpng.
        .target(name: "CPNG", linkerSettings: [.linkedLibrary("png")]),
        // The C API of tch-rs' torch_api.h style over libtorch: trampolines that open the shim
        // (torch_api.cpp, built apart by `make torch`) on first use; the target links no libtorch.
        .target(
            name: "CTorch",
            exclude: ["torch_api.cpp", "torch_distributed.cpp", "shim_support.h"],
            cSettings: [.unsafeFlags(["-DCTORCH_BUILD_DIR=\"\(torchBuildDir)\""])],
            linkerSettings: [.linkedLibrary("dl")]
        ),
        // What is not about shards: atomic files, hashes, file identity, the binary codec, SplitMix64, the RSNA label
        // space, progress lines. Shards, Ingest, Train and Report stand on it; it stands on no other Swift target.
        .target(name: "Core", dependencies: ["CCore"]),
        .target(name: "Shards", dependencies: ["Core", "CHDF5"]),
        // The strict YAML reader of pipeline and training configurations (errors with file, line and key).
        .target(name: "Config", dependencies: [.product(name: "Yams", package: "Yams")]),
        .target(name: "Ingest", dependencies: ["CGDCM", "CFusion", "Core", "Shards", "Config"]),
        // The phantom cohort (a DICOM writer) for tests and the demo; Ingest never imports it.
        .target(name: "Synth", dependencies: ["CGDCM", "Core", "Ingest", "Shards"]),
        // Pictures and pages (PNG, NIfTI, HTML, SVG plots) for `inspect` and the training report; imports neither Ingest nor Train.
        .target(name: "Report", dependencies: ["CPNG", "Core", "Shards"]),
        .target(name: "Train", dependencies: ["CTorch", "Core", "Shards", "Config"]),
        .executableTarget(
            name: "fuse3d",
            dependencies: ["Ingest", "Synth", "Report", "Core", "Shards", "Train", .product(name: "ArgumentParser", package: "swift-argument-parser")]
        ),
        .target(name: "TestSupport", path: "Tests/TestSupport"),
        .testTarget(name: "CoreTests", dependencies: ["Core", "TestSupport"]),
        .testTarget(name: "IngestTests", dependencies: ["Ingest", "Core", "Shards", "TestSupport"]),
        .testTarget(name: "SynthTests", dependencies: ["Synth", "Ingest", "Core", "Shards", "TestSupport"]),
        .testTarget(name: "ShardsTests", dependencies: ["Shards", "Core", "TestSupport"]),
        .testTarget(name: "TrainTests", dependencies: ["Train", "Config", "Core", "Shards", "TestSupport"]),
        .testTarget(name: "ReportTests", dependencies: ["Report", "Ingest", "Core", "Shards", "TestSupport"]),
        .testTarget(name: "CLITests", dependencies: ["TestSupport"]),
    ],
    cxxLanguageStandard: .cxx17
)

/// The libFuzzer target over one file's header walk, decode and geometry (Sources/FuzzDICOM): declared only when
/// FUSE3D_FUZZ=1, as `make fuzz` sets (with its own build folder and sanitizer flags), so that an ordinary
/// `swift build` or `swift test` neither sees nor builds it.
if ProcessInfo.processInfo.environment["FUSE3D_FUZZ"] == "1" {
    package.products.append(.executable(name: "fuse3d-fuzz-dicom", targets: ["FuzzDICOM"]))
    package.targets.append(.target(name: "CFuzzDriver", path: "Sources/FuzzDICOM/Driver"))
    package.targets.append(.executableTarget(name: "FuzzDICOM", dependencies: ["Ingest", "Core", "Shards", "CFuzzDriver"], exclude: ["Driver", "lsan.supp"]))
}
