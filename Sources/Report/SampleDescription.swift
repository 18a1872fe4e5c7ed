import Core
import Foundation
import Shards

/// A text description of one fused sample: shape, grid, channels, labels and keypoints.
public enum SampleDescription {
    /// Several lines describing `sample`; `location` says where it was found.
    public static func text(_ s: FusedSample, location: String) -> String {
        var out = "study \(s.studyID) (\(location)), grid \(s.shape.map(String.init).joined(separator: "×"))\n"
        // Voxel spacing is the length of each affine column (the patient-space step along d, h, w).
        let spacing = (0..<3).map { j in (0..<3).map { s.affine[4 * $0 + j] * s.affine[4 * $0 + j] }.reduce(0, +).squareRoot() }
        out += String(format: "voxel %.2f×%.2f×%.2f mm, origin (%.1f, %.1f, %.1f) LPS mm\n", spacing[0], spacing[1], spacing[2],
                      s.affine[3], s.affine[7], s.affine[11])
        for (c, name) in Channels.names.enumerated() {
            let state = s.present[c] != 0 ? String(format: "present, normalized from [%.1f, %.1f]", s.norm[2 * c], s.norm[2 * c + 1]) : "MISSING"
            out += "  " + name.padding(toLength: 18, withPad: " ", startingAt: 0) + state + "\n"
        }
        var labelled = 0, placed = 0
        for (i, column) in RSNA.labelColumns.enumerated() {
            let k = s.labels[i]
            if k >= 0 { labelled += 1 }
            let kp = s.keypoints[(3 * i)..<(3 * i + 3)]
            if !kp.contains(where: \.isNaN) { placed += 1 }
            if k > 0 || !kp.contains(where: \.isNaN) {
                let point = kp.contains(where: \.isNaN) ? "no keypoint" : String(format: "at voxel (%.1f, %.1f, %.1f)", kp[kp.startIndex], kp[kp.startIndex + 1], kp[kp.startIndex + 2])
                out += "  \(column): \(k >= 0 ? RSNA.severities[Int(k)] : "—") \(point)\n"
            }
        }
        out += "\(labelled) of 25 labels given, \(placed) keypoints placed\n"
        return out
    }
}
