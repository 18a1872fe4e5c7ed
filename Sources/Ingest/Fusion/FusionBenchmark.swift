import Foundation

/// Times the fusion of studies already in memory: the step `fuse3d bench fuse` measures against the
/// Python peers in `bench/fusion/peer_fuse.py` (same studies, same grid; reading DICOM is timed apart).
public enum FusionBenchmark {
    /// Fusion times of a set of studies.
    public struct Result: Codable, Sendable {
        /// Grid size fused at.
        public var size: Int
        /// Per study, the best of its repeats (seconds).
        public var secondsPerStudy: [Double]
        /// Median of `secondsPerStudy`.
        public var medianSeconds: Double
    }

    /// Fuses every study `repeats` times with `parameters` (no labels or keypoints) and keeps each study's best time.
    public static func run(studies: [[SeriesVolume]], parameters: FusionParameters = FusionParameters(),
                           repeats: Int = 3) throws -> Result {
        let fuser = Fuser(parameters: parameters)
        let noLabels = [Int8](repeating: -1, count: 25)
        var best: [Double] = []
        for (i, series) in studies.enumerated() {
            var fastest = Double.infinity
            for _ in 0..<max(repeats, 1) {
                let start = DispatchTime.now().uptimeNanoseconds
                _ = try fuser.fuse(series: series, labels: noLabels, coordinates: [], studyID: Int64(i))
                fastest = min(fastest, Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9)
            }
            best.append(fastest)
        }
        let sorted = best.sorted()
        return Result(size: parameters.size, secondsPerStudy: best, medianSeconds: sorted.isEmpty ? 0 : sorted[sorted.count / 2])
    }
}
