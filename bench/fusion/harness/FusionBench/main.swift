import Foundation
import Ingest
import Shards

// Usage: fusion-bench STUDY_DIR [SIZE] [REPEATS]
// Reads STUDY_DIR/raw/{study.json, pixels.f32} (peer_fuse.py make), fuses it REPEATS times with the default
// parameters at SIZE³ (FusionBenchmark), prints the best time as JSON and writes the grid to STUDY_DIR/fuse3d-SIZE.f32.

struct RawSlice: Decodable {
    let position: [Double], row_dir: [Double], col_dir: [Double]
    let spacing: Double, rows: Int, cols: Int, thickness: Double, instance: Int, offset: Int
}
struct RawSeries: Decodable { let series_id: String, kind: String, stacks: [[RawSlice]] }
struct RawStudy: Decodable { let study_id: Int64, series: [RawSeries] }

let args = CommandLine.arguments
guard args.count >= 2 else { FileHandle.standardError.write(Data("usage: fusion-bench STUDY_DIR [SIZE] [REPEATS]\n".utf8)); exit(2) }
let dir = URL(fileURLWithPath: args[1])
let size = args.count > 2 ? Int(args[2])! : 128
let repeats = args.count > 3 ? Int(args[3])! : 3
let study = try JSONDecoder().decode(RawStudy.self, from: Data(contentsOf: dir.appendingPathComponent("raw/study.json")))
let pixelData = try Data(contentsOf: dir.appendingPathComponent("raw/pixels.f32"))
let pixels = pixelData.withUnsafeBytes { Array($0.bindMemory(to: Float.self)) }
func vec(_ a: [Double]) -> Vec3 { Vec3(a[0], a[1], a[2]) }
let series = study.series.map { s in
    SeriesVolume(seriesID: s.series_id, kind: SeriesKind(rawValue: s.kind)!, stacks: s.stacks.map { stack in
        Stack(slices: stack.map { r in
            Slice(geometry: SliceGeometry(position: vec(r.position), rowDirection: vec(r.row_dir), columnDirection: vec(r.col_dir),
                                          rowSpacing: r.spacing, columnSpacing: r.spacing, rows: r.rows, columns: r.cols, thickness: r.thickness),
                  pixels: Array(pixels[r.offset..<(r.offset + r.rows * r.cols)]), instanceNumber: r.instance, sopInstanceUID: "", source: "\(r.instance)")
        })
    })
}
let parameters = FusionParameters(size: size)
let timing = try FusionBenchmark.run(studies: [series], parameters: parameters, repeats: repeats)
let sample = try Fuser(parameters: parameters).fuse(series: series, labels: [Int8](repeating: -1, count: 25),
                                                    coordinates: [], studyID: study.study_id).sample
let grid = sample.volume.map { Float($0) }
try grid.withUnsafeBufferPointer { Data(buffer: $0) }.write(to: dir.appendingPathComponent("fuse3d-\(size).f32"))
print("{\"fuse3d_s\": \(timing.secondsPerStudy), \"threads\": \(ProcessInfo.processInfo.activeProcessorCount)}")
