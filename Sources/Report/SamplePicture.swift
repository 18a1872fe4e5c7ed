import Core
import Foundation
import Shards

/// A picture of one fused sample: rows = channels (T1, T2/STIR, axial T2), columns = sagittal, coronal and
/// axial planes through the spine centre, values [0, 1] as grey, keypoints as coloured crosses.
///
/// Planes are shown as a radiologist reads them in the default grid: sagittal with anterior left and
/// superior up, coronal and axial with the patient's right on the left (axial: anterior up). An absent
/// channel's row is crossed out in dark red.
public enum SamplePicture {
    /// Keypoint colours per condition (`RSNA.conditions` order): canal red, left/right foramen
    /// green/blue, left/right subarticular yellow/magenta.
    public static let conditionColours: [(UInt8, UInt8, UInt8)] = [(255, 40, 40), (40, 220, 40), (60, 120, 255), (255, 220, 0), (255, 0, 255)]
    /// Pixels between tiles.
    static let gap = 4

    /// The voxel the three planes pass through: the mean of the present keypoints, else the grid centre.
    public static func spineCentre(of sample: FusedSample) -> [Int] {
        var sum = [0.0, 0.0, 0.0], count = 0.0
        for k in 0..<25 where (0..<3).allSatisfy({ sample.keypoints[3 * k + $0].isFinite }) {
            for a in 0..<3 { sum[a] += Double(sample.keypoints[3 * k + a]) }
            count += 1
        }
        return (0..<3).map { a in
            let v = count > 0 ? Int((sum[a] / count).rounded()) : sample.shape[a] / 2
            return min(max(v, 0), sample.shape[a] - 1)
        }
    }

    /// Renders the picture; each voxel becomes `scale` × `scale` pixels (default: tiles about 256 pixels wide).
    public static func render(_ sample: FusedSample, scale: Int? = nil) -> RGBImage {
        let (D, H, W) = (sample.shape[0], sample.shape[1], sample.shape[2])
        let s = scale ?? max(1, Int((256.0 / Double(max(D, H, W))).rounded(.up)))
        // Tiles: sagittal (H rows × W columns), coronal (H × D), axial (W × D).
        let tileWidths = [W, D, D].map { $0 * s }, rowHeight = max(H, W) * s
        let xs = [gap, gap + tileWidths[0] + gap, gap + tileWidths[0] + gap + tileWidths[1] + gap]
        var image = RGBImage(width: xs[2] + tileWidths[2] + gap, height: 3 * (rowHeight + gap) + gap, fill: (24, 24, 24))
        let centre = spineCentre(of: sample)
        let n = D * H * W
        for c in 0..<3 {
            let y0 = gap + c * (rowHeight + gap)
            func value(_ d: Int, _ h: Int, _ w: Int) -> UInt8 {
                let v = Float(sample.volume[c * n + (d * H + h) * W + w])
                return UInt8((min(max(v, 0), 1) * 255).rounded())
            }
            // Each plane: (rows, columns, voxel at (row, column)).
            let planes: [(Int, Int, (Int, Int) -> UInt8)] = [
                (H, W, { value(centre[0], $0, $1) }),
                (H, D, { value($1, $0, centre[2]) }),
                (W, D, { value($1, centre[1], $0) }),
            ]
            for (p, plane) in planes.enumerated() {
                for r in 0..<(plane.0 * s) {
                    for q in 0..<(plane.1 * s) {
                        let g = plane.2(r / s, q / s)
                        image[xs[p] + q, y0 + r] = (g, g, g)
                    }
                }
                if sample.present[c] == 0 { crossOut(&image, x: xs[p], y: y0, width: plane.1 * s, height: plane.0 * s) }
            }
            for k in 0..<25 where (0..<3).allSatisfy({ sample.keypoints[3 * k + $0].isFinite }) {
                let kp = (0..<3).map { Double(sample.keypoints[3 * k + $0]) }
                let colour = conditionColours[k / RSNA.levels.count]
                // (row, column) of the keypoint in each plane, in voxels: sagittal (h, w), coronal (h, d), axial (w, d).
                for (p, rc) in [(kp[1], kp[2]), (kp[1], kp[0]), (kp[2], kp[0])].enumerated() {
                    let x = xs[p] + Int(((rc.1 + 0.5) * Double(s)).rounded(.down)), y = y0 + Int(((rc.0 + 0.5) * Double(s)).rounded(.down))
                    let clipX = xs[p]..<(xs[p] + tileWidths[p]), clipY = y0..<(y0 + rowHeight)
                    for t in -(2 + s)...(2 + s) where t != 0 {
                        for (px, py) in [(x + t, y), (x, y + t)] where clipX.contains(px) && clipY.contains(py) { image.plot(px, py, colour) }
                    }
                }
            }
        }
        return image
    }

    /// Renders `sample` and writes it as a PNG.
    public static func write(_ sample: FusedSample, to url: URL, scale: Int? = nil) throws {
        try render(sample, scale: scale).writePNG(to: url)
    }

    /// Two dark red diagonals over a tile.
    private static func crossOut(_ image: inout RGBImage, x: Int, y: Int, width: Int, height: Int) {
        let steps = max(width, height)
        for i in 0..<steps {
            let q = i * width / steps, r = i * height / steps
            image.plot(x + q, y + r, (150, 0, 0))
            image.plot(x + width - 1 - q, y + r, (150, 0, 0))
        }
    }
}
