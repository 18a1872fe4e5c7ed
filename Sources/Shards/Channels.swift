/// Fixed channel order of every fused grid.
public enum Channels {
    /// Channel names, index = `SeriesKind.channel` (sagittal T1, sagittal T2/STIR, axial T2).
    public static let names = ["sagittal_t1", "sagittal_t2_stir", "axial_t2"]
}
