import Ingest

/// The irregularities one study of a `--quirks` cohort carries. They are spread over studies by index
/// (study i gets group i mod 3) so that any cohort of three or more studies holds every kind.
struct StudyQuirks: Sendable {
    /// InstanceNumber (and file name) no longer follows slice position in any series.
    var shuffledInstances = false
    /// A series left out of the study (files and CSV row).
    var missing: SeriesKind?
    /// An extra three-plane localizer series (on disk, not in train_series_descriptions.csv).
    var localizer = false
    /// Compressed transfer syntaxes, by series.
    var syntax: [SeriesKind: SynthTransferSyntax] = [:]
    /// One image file cut short (an edge slice that no label names).
    var truncatedFile = false
    /// A non-DICOM file beside the images.
    var strayFile = false
    /// train.csv cells left empty (indices into `RSNA.labelColumns`).
    var emptyCells: [Int] = []

    /// The quirks of study `index`; random choices come from `rng`.
    static func forStudy(index: Int, rng: inout SynthRandom) -> StudyQuirks {
        var q = StudyQuirks()
        switch index % 3 {
        case 0:
            q.shuffledInstances = true
            q.syntax[.sagittalT1] = .jpeg2000Lossless
            let first = rng.integer(in: 0...24)
            q.emptyCells = [first, (first + rng.integer(in: 1...24)) % 25].sorted()
        case 1:
            q.missing = [SeriesKind.axialT2, .sagittalT1, .sagittalT2][(index / 3) % 3]
            q.localizer = true
            q.syntax[.sagittalT2] = .jpegLSLossless
        default:
            q.truncatedFile = true
            q.strayFile = true
            q.syntax[.axialT2] = .rleLossless
        }
        return q
    }
}
