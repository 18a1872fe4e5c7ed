/// One study fused into a grid, as a shard stores it (see data-schema.md).
///
/// Volume axes are (channel, d, h, w), row-major. `affine` maps a voxel index (d, h, w, 1) to
/// patient LPS millimetres; the default grid has d → +x (right→left), h → −z (superior→inferior),
/// w → +y (anterior→posterior), so `volume[c, d, :, :]` looks like a sagittal image.
public struct FusedSample: Sendable {
    /// Study id (RSNA folder name, or a stable id derived from the Study Instance UID).
    public var studyID: Int64
    /// Grid size (D, H, W).
    public var shape: [Int]
    /// 3 × D × H × W values in [0, 1] (normalized), float16.
    public var volume: [Float16]
    /// 1 where the channel's series was found and covers the grid; 0 for a zero channel.
    public var present: [UInt8]
    /// 4 × 4 row-major: voxel index (d, h, w, 1) → patient LPS mm.
    public var affine: [Double]
    /// 25 × 3 voxel coordinates (d, h, w) of the label keypoints; NaN where absent.
    public var keypoints: [Float]
    /// 3 × 2: per channel, the (low, high) raw values mapped to 0 and 1.
    public var norm: [Float]
    /// 25 severity classes (0, 1, 2; −1 missing) in RSNA.labelColumns order.
    public var labels: [Int8]
    /// The study's source slices (schema 2), as the fuser made them; `.empty` without them. `ShardReader.read` leaves
    /// this empty: `ShardReader.readSourcePixels` reads them apart, so that reading a grid decodes only the grid.
    public var sources: SourcePixels

    /// A sample from its arrays; traps unless their sizes match `shape` and the schema (3 channels,
    /// 4 × 4 affine, 25 keypoints, 3 × 2 norm, 25 labels); `sources` are the study's source slices, if any.
    public init(studyID: Int64, shape: [Int], volume: [Float16], present: [UInt8], affine: [Double],
                keypoints: [Float], norm: [Float], labels: [Int8], sources: SourcePixels = .empty) {
        precondition(shape.count == 3 && volume.count == 3 * shape.reduce(1, *), "volume does not match shape")
        precondition(present.count == 3 && affine.count == 16 && keypoints.count == 75 && norm.count == 6 && labels.count == 25)
        self.studyID = studyID
        self.shape = shape
        self.volume = volume
        self.present = present
        self.affine = affine
        self.keypoints = keypoints
        self.norm = norm
        self.labels = labels
        self.sources = sources
    }
}
