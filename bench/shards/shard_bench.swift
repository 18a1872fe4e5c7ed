// The fuse3d side of bench/shards/run.sh, linked against the release build's Shards library
// (no CLI subcommand writes shards yet), timing only the library calls.
//   shard_bench write RAW N D H W LEVEL OUT   RAW: N×3×D×H×W float16 little-endian; prints seconds
//   shard_bench read DIR THREADS              reads every sample with THREADS threads; prints seconds
import Foundation
import Shards

func seconds(_ body: () throws -> Void) rethrows -> Double {
    let start = DispatchTime.now().uptimeNanoseconds
    try body()
    return Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
}

let args = CommandLine.arguments
switch args[1] {
case "write":
    let raw = try Data(contentsOf: URL(fileURLWithPath: args[2]))
    let (n, shape, level) = (Int(args[3])!, [Int(args[4])!, Int(args[5])!, Int(args[6])!], Int(args[7])!)
    let voxels = 3 * shape.reduce(1, *)
    let samples = (0..<n).map { i in
        raw.withUnsafeBytes { bytes in
            FusedSample(studyID: Int64(1000 + i), shape: shape,
                        volume: Array(bytes.bindMemory(to: Float16.self)[(i * voxels)..<((i + 1) * voxels)]),
                        present: [1, 1, 1], affine: [1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1],
                        keypoints: [Float](repeating: .nan, count: 75), norm: [0, 1, 0, 1, 0, 1],
                        labels: [Int8](repeating: -1, count: 25))
        }
    }
    let t = try seconds {
        let writer = try ShardWriter(directory: URL(fileURLWithPath: args[8]), options: .init(zstdLevel: level))
        for sample in samples { try writer.append(sample) }
        try writer.finish()
    }
    print(String(format: "%.4f", t))
case "read":
    let dataset = try ShardDataset(directory: URL(fileURLWithPath: args[2]))
    let threads = Int(args[3])!
    let t = seconds {
        DispatchQueue.concurrentPerform(iterations: threads) { worker in
            for index in stride(from: worker, to: dataset.count, by: threads) { _ = try! dataset.read(index) }
        }
    }
    print(String(format: "%.4f", t))
default:
    fatalError("usage: shard_bench write RAW N D H W LEVEL OUT | read DIR THREADS")
}
