// swift-tools-version:5.10
// Fuse3D: lumbar-spine MRI (DICOM) → fused 3-channel float16 grids in HDF5 shards → 3D ordinal models.
import Foundation
import PackageDescription

let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().path

/// libtorch comes from the torch==2.13.0 wheel in the project's .venv (scripts/setup.sh);
/// `LIBTORCH=/path/to/libtorch` overrides it (a CUDA build works the same way).
func findLibtorch() -> String {
    if let env = ProcessInfo.processInfo.environment["LIBTORCH"], !env.isEmpty { return env }
    let lib = "\(root)/.venv/lib"
    let pythons = (try? FileManager.default.contentsOfDirectory(atPath: lib))?.filter { $0.hasPrefix("python") }.sorted() ?? []
    for py in pythons.reversed() {
        let candidate = "\(lib)/\(py)/site-packages/torch"
        if FileManager.default.fileExists(atPath: "\(candidate)/include/torch/csrc/api/include/torch/version.h") { return candidate }
    }
    return "\(root)/.venv/lib/python3/site-packages/torch"
}
let libtorch = findLibtorch()

let gdcmInclude = "/usr/include/gdcm-3.0"
let hdf5Include = "/usr/include/hdf5/serial"

let package = Package(
    name: "Fuse3D",
    platforms: [.macOS(.v13)],
    products: [
        .executable(name: "fuse3d", targets: ["fuse3d"]),
        .library(name: "Ingest", targets: ["Ingest"]),
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
                .linkedLibrary("gdcmIOD"), .linkedLibrary("gdcmCommon"), .linkedLibrary("stdc++"),
            ]
        ),
        // HDF5 C API re-exports + the Zstandard filter (id 32015).
        .target(
            name: "CHDF5",
            cSettings: [.unsafeFlags(["-I\(hdf5Include)"])],
            linkerSettings: [
                .linkedLibrary("hdf5_serial"), .linkedLibrary("zstd"),
            ]
        ),
        // PNG encoding through Debian's libpng.
        .target(name: "CPNG", linkerSettings: [.linkedLibrary("png")]),
        // C++ shim over libtorch in the style of tch-rs' torch_api.h.
        .target(
            name: "CTorch",
            cxxSettings: [
                .unsafeFlags([
                    "-I\(libtorch)/include", "-I\(libtorch)/include/torch/csrc/api/include",
                    "-D_GLIBCXX_USE_CXX11_ABI=1", "-Wno-deprecated-declarations",
                ]),
            ],
            linkerSettings: [
                .unsafeFlags(["-L\(libtorch)/lib", "-Xlinker", "-rpath", "-Xlinker", "\(libtorch)/lib",
                              "-Xlinker", "--no-as-needed"]),
                .linkedLibrary("torch"), .linkedLibrary("torch_cpu"), .linkedLibrary("c10"),
                .linkedLibrary("stdc++"),
            ]
        ),
        .target(name: "Shards", dependencies: ["CHDF5"]),
        .target(name: "Ingest", dependencies: ["CGDCM", "Shards", .product(name: "Yams", package: "Yams")]),
        // Pictures and pages (PNG, NIfTI, HTML, SVG plots) for `inspect` and the training report; imports neither Ingest nor Train.
        .target(name: "Report", dependencies: ["CPNG", "Shards"]),
        .target(name: "Train", dependencies: ["CTorch", "Shards", .product(name: "Yams", package: "Yams")]),
        .executableTarget(
            name: "fuse3d",
            dependencies: ["Ingest", "Report", "Shards", "Train", .product(name: "ArgumentParser", package: "swift-argument-parser")]
        ),
        .target(name: "TestSupport", path: "Tests/TestSupport"),
        .testTarget(name: "IngestTests", dependencies: ["Ingest", "Shards", "TestSupport"]),
        .testTarget(name: "ShardsTests", dependencies: ["Shards", "TestSupport"]),
        .testTarget(name: "TrainTests", dependencies: ["Train", "Shards", "TestSupport"]),
        .testTarget(name: "ReportTests", dependencies: ["Report", "Ingest", "Shards", "TestSupport"]),
        .testTarget(name: "CLITests", dependencies: ["TestSupport"]),
    ],
    cxxLanguageStandard: .cxx17
)
