// libFuzzer target over one file's header walk, decode and geometry (issue: untrusted input never takes a run down).
//
// Built only by `make fuzz` (Package.swift declares this target when FUSE3D_FUZZ=1), with
// `-sanitize=fuzzer,address` on the Swift side, `-fsanitize=address,undefined` (plus libFuzzer's coverage
// instrumentation) on CGDCM's C++ and -DFUSE3D_LIBFUZZER, under which libFuzzer's own `main` drives
// `LLVMFuzzerTestOneInput`. Built without that flag it is a plain program that replays the files named on its
// command line once each (handy under a debugger), so the target also compiles in an ordinary build.
//
// The library reads paths, so each input is written to a temporary file first. Every thrown error is an
// accepted outcome; what the fuzzer looks for is a sanitizer report, a Swift trap (overflow, bounds, NaN
// conversion), a glibc abort, a hang or an allocation beyond -rss_limit_mb.
import Core
import Foundation
import Ingest

/// One temporary file per process, rewritten for each input (libFuzzer runs inputs one at a time).
private let scratchPath: String = {
    let dir = ProcessInfo.processInfo.environment["TMPDIR"] ?? "/tmp"
    return "\(dir)/fuse3d-fuzz-\(getpid()).dcm"
}()

/// Runs one input through what `fuse3d scan --decode` and `fuse3d ingest` do with a file, up to the stack layout:
/// header walk, header problem, decode, and each frame's geometry and slice.
func exercise(_ path: String) {
    guard let header = try? DicomReader.readHeader(path) else { return }
    _ = header.headerProblem
    _ = header.nativePixelBytes
    for f in 0..<min(max(header.framePositions.count, 1), 64) {
        if case .success(let g) = header.geometry(frame: f) {
            // What the stack layout and resampler derive from a slice's geometry.
            _ = g.normal
            _ = g.normalOffset
            _ = g.patientPosition(row: Double(max(g.rows - 1, 0)), column: Double(max(g.columns - 1, 0)))
            _ = g.pixelCoordinates(of: .zero)
        }
    }
    guard header.headerProblem == nil, let image = try? DicomReader.readImage(path) else { return }
    guard let slices = try? image.slices(source: path) else { return }
    for s in slices.prefix(64) {
        _ = s.sample(row: Double(s.geometry.rows) / 2, column: Double(s.geometry.columns) / 2)
    }
    // The fusion of the file's frames as the only stack of a sagittal T1 series, on a small grid: where the
    // stack layout and the resampler turn a geometry into voxel indices (the NaN and 1e308 traps live there).
    let stack = Stack(slices: slices)
    _ = stack.spacing
    let series = SeriesVolume(seriesID: "1", kind: .sagittalT1, stacks: [stack])
    _ = try? Fuser(parameters: FusionParameters(size: 8)).fuse(
        series: [series], labels: [Int8](repeating: 0, count: RSNA.labelColumns.count), coordinates: [], studyID: 1)
}

@discardableResult
func runOne(_ bytes: UnsafeBufferPointer<UInt8>) -> Int32 {
    guard FileManager.default.createFile(atPath: scratchPath, contents: Data(buffer: bytes)) else {
        fatalError("cannot write \(scratchPath)")
    }
    exercise(scratchPath)
    return 0
}

#if FUSE3D_LIBFUZZER
import CFuzzDriver

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOne(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    runOne(UnsafeBufferPointer(start: data, count: size))
}

/// SwiftPM links this as the program's `main` (FuzzDICOM_main), so libFuzzer's own main is not used: hand the
/// command line (corpus folders, -max_total_time=…, a crash file to replay) to its driver.
@main
enum FuzzDICOMDriver {
    static func main() {
        var argc = CommandLine.argc
        var argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>? = CommandLine.unsafeArgv
        exit(LLVMFuzzerRunDriver(&argc, &argv, fuzzOne))
    }
}
#else
@main
enum FuzzDICOMReplay {
    static func main() {
        let paths = CommandLine.arguments.dropFirst()
        if paths.isEmpty {
            print("usage: FuzzDICOM FILE... (replays each file once; `make fuzz` builds the libFuzzer target)")
        }
        for p in paths {
            guard let d = FileManager.default.contents(atPath: p) else { print("\(p): unreadable"); continue }
            d.withUnsafeBytes { runOne($0.bindMemory(to: UInt8.self)) }
            print("\(p): done")
        }
        try? FileManager.default.removeItem(atPath: scratchPath)
    }
}
#endif
