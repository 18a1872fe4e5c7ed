import Foundation
import Shards

/// The localizer's points against the labels' on held-out studies: for each study, its sagittal image (T2/STIR, else
/// T1) through the predicted levels, anterior left and superior up as `SamplePicture` shows it, the labelled spinal-canal
/// points as green rings and the predicted ones as red crosses; the studies side by side.
public enum LocalizerPicture {
    /// One study: its sample and its five predicted and labelled points (voxels (d, h, w); nil where unlabelled).
    public struct Study: Sendable {
        /// The fused sample.
        public var sample: FusedSample
        /// Predicted points (levels × 3) and labelled ones (nil where absent).
        public var predicted: [[Double]], truth: [[Double]?]

        /// A study's picture data.
        public init(sample: FusedSample, predicted: [[Double]], truth: [[Double]?]) {
            self.sample = sample
            self.predicted = predicted
            self.truth = truth
        }
    }

    static let gap = 4, truthColour: (UInt8, UInt8, UInt8) = (40, 220, 40), predictedColour: (UInt8, UInt8, UInt8) = (255, 40, 40)

    /// The sagittal slice shown for a study: the median of the predicted points' d, inside the grid.
    static func slice(_ study: Study) -> Int {
        let ds = study.predicted.map { $0[0] }.sorted()
        let d = ds.isEmpty ? Double(study.sample.shape[0] / 2) : ds[ds.count / 2]
        return min(max(Int(d.rounded()), 0), study.sample.shape[0] - 1)
    }

    /// Renders the studies side by side; each voxel becomes `scale` × `scale` pixels (default: tiles about 256 wide).
    public static func render(_ studies: [Study], scale: Int? = nil) -> RGBImage {
        guard let first = studies.first else { return RGBImage(width: 1, height: 1) }
        let tileH = studies.map { $0.sample.shape[1] }.max()!, tileW = studies.map { $0.sample.shape[2] }.max()!
        let s = scale ?? max(1, Int((256.0 / Double(max(tileH, tileW, first.sample.shape[0]))).rounded(.up)))
        var image = RGBImage(width: gap + studies.count * (tileW * s + gap), height: tileH * s + 2 * gap, fill: (24, 24, 24))
        for (i, study) in studies.enumerated() {
            let sample = study.sample, (D, H, W) = (sample.shape[0], sample.shape[1], sample.shape[2])
            let channel = sample.present.count > 1 && sample.present[1] != 0 ? 1 : 0
            let d = slice(study), x0 = gap + i * (tileW * s + gap), y0 = gap
            for h in 0..<(H * s) {
                for w in 0..<(W * s) {
                    let v = Float(sample.volume[channel * D * H * W + (d * H + h / s) * W + w / s])
                    let g = UInt8((min(max(v, 0), 1) * 255).rounded())
                    image[x0 + w, y0 + h] = (g, g, g)
                }
            }
            let clipX = x0..<(x0 + W * s), clipY = y0..<(y0 + H * s)
            func centre(_ p: [Double]) -> (Int, Int) {
                (x0 + Int(((p[2] + 0.5) * Double(s)).rounded(.down)), y0 + Int(((p[1] + 0.5) * Double(s)).rounded(.down)))
            }
            for t in study.truth.compactMap({ $0 }) where t.allSatisfy(\.isFinite) {
                let (cx, cy) = centre(t), r = Double(2 + 2 * s)
                for k in 0..<64 {
                    let a = Double(k) / 64 * 2 * Double.pi
                    let px = cx + Int((r * cos(a)).rounded()), py = cy + Int((r * sin(a)).rounded())
                    if clipX.contains(px) && clipY.contains(py) { image.plot(px, py, truthColour) }
                }
            }
            for p in study.predicted where p.allSatisfy(\.isFinite) {
                let (cx, cy) = centre(p)
                for t in -(1 + 2 * s)...(1 + 2 * s) {
                    for (px, py) in [(cx + t, cy + t), (cx + t, cy - t)] where clipX.contains(px) && clipY.contains(py) {
                        image.plot(px, py, predictedColour)
                    }
                }
            }
        }
        return image
    }

    /// Renders `studies` as a PNG file's bytes (a run folder writes them: `RunFolder.save(localizerPicture:fold:)`).
    public static func png(_ studies: [Study], scale: Int? = nil) throws -> Data {
        try render(studies, scale: scale).pngData()
    }
}
