import Core
import Foundation
import Ingest

/// How often each severity is drawn, per condition: weights for (Normal/Mild, Moderate, Severe).
public struct LabelDistribution: Sendable, Equatable {
    /// One weight triple per condition, in `RSNA.conditions` order.
    public var weights: [[Double]]

    /// Weights per condition (5 triples, `RSNA.conditions` order); each triple needs a positive sum.
    public init(weights: [[Double]]) {
        precondition(weights.count == RSNA.conditions.count && weights.allSatisfy { $0.count == 3 && $0.reduce(0, +) > 0 },
                     "a label distribution needs 3 non-negative weights for each of the 5 conditions")
        self.weights = weights
    }

    /// The same weights for every condition.
    public init(all triple: [Double]) { self.init(weights: Array(repeating: triple, count: RSNA.conditions.count)) }

    /// Close to the RSNA 2024 training set's label frequencies: mostly Normal/Mild; foramina and
    /// above all subarticular recesses more often Moderate or Severe than the central canal.
    public static let competition = LabelDistribution(weights: [
        [0.84, 0.09, 0.07],
        [0.73, 0.21, 0.06], [0.73, 0.21, 0.06],
        [0.62, 0.26, 0.12], [0.62, 0.26, 0.12],
    ])

    /// Every severity equally likely (balanced training data).
    public static let uniform = LabelDistribution(all: [1, 1, 1])
}

/// What `SynthCohort.write` makes.
public struct SynthOptions: Sendable {
    /// Number of studies.
    public var studies: Int
    /// Everything (anatomy, labels, UIDs, dates, noise) derives from this; same seed → same bytes.
    public var seed: UInt64
    /// Add the irregularities real archives have (see `StudyQuirks`).
    public var quirks: Bool
    /// How labels are drawn.
    public var labels: LabelDistribution
    /// Matrix (rows = columns) of the sagittal series.
    public var sagittalMatrix: Int
    /// Matrix (rows = columns) of the axial series.
    public var axialMatrix: Int
    /// Slice counts drawn for each sagittal series.
    public var sagittalSlices: ClosedRange<Int>
    /// Slice counts drawn for each axial disc stack.
    public var axialSlicesPerStack: ClosedRange<Int>
    /// Studies rendered at once (0: one per core).
    public var threads: Int
    /// The transfer syntax of every file the quirks do not give another one.
    public var transferSyntax: SynthTransferSyntax
    /// How much the spines differ between studies beyond the phantom's own spread.
    public var variety: SpineVariety
    /// Write each series as one Enhanced MR Image Storage file (functional groups) instead of one file per slice.
    public var enhanced = false

    /// Options with the defaults `fuse3d synth` uses.
    public init(studies: Int = 8, seed: UInt64 = 0, quirks: Bool = false, labels: LabelDistribution = .competition,
                sagittalMatrix: Int = 256, axialMatrix: Int = 192, sagittalSlices: ClosedRange<Int> = 15...17,
                axialSlicesPerStack: ClosedRange<Int> = 3...5, threads: Int = 0,
                transferSyntax: SynthTransferSyntax = .explicitLittleEndian, variety: SpineVariety = .none) {
        self.variety = variety
        self.transferSyntax = transferSyntax
        self.studies = studies
        self.seed = seed
        self.quirks = quirks
        self.labels = labels
        self.sagittalMatrix = sagittalMatrix
        self.axialMatrix = axialMatrix
        self.sagittalSlices = sagittalSlices
        self.axialSlicesPerStack = axialSlicesPerStack
        self.threads = threads
    }
}
