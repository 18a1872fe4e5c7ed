import Core
import Foundation
import Ingest

/// One row of train_label_coordinates.csv: where a labelled structure is, as Kaggle gives it.
public struct SynthLabelPoint: Sendable, Equatable {
    /// The study and series the point is in (folder names under train_images).
    public var studyID: Int
    /// The series the point is on.
    public var seriesID: Int
    /// InstanceNumber of the image the point is on (as in the file's tag and name).
    public var instanceNumber: Int
    /// Kaggle's spellings ("Spinal Canal Stenosis", "L4/L5").
    public var condition: String
    /// Kaggle's level spelling ("L1/L2" … "L5/S1").
    public var level: String
    /// Pixel coordinates: x = column, y = row (fractional; pixel centres are integers).
    public var x: Double
    /// Pixel row of the point.
    public var y: Double
    /// The frame (1-based) of the multi-frame file the point is on (`--enhanced`); nil for single-frame files.
    public var frameNumber: Int? = nil
}

/// One phantom study: its anatomy, labels, acquisition plans and identifiers, all drawn from the
/// cohort seed and the study's index, so it can be rendered on any thread in any order.
public struct PhantomStudy: Sendable {
    /// Position in the cohort (generation order).
    public let index: Int
    /// RSNA-style integer study id (also the StudyInstanceUID and PatientID, as in Kaggle's files).
    public let studyID: Int
    /// True labels (0 Normal/Mild, 1 Moderate, 2 Severe) in `RSNA.labelColumns` order; train.csv
    /// shows them except in quirk-emptied cells.
    public let labels: [Int8]
    /// Series ids of the series written, by kind (a localizer is `.other`).
    public let seriesIDs: [SeriesKind: Int]

    let seed: UInt64
    let anatomy: SpineAnatomy
    let quirks: StudyQuirks
    /// Each series is one Enhanced MR file (frames in acquisition order) instead of one file per slice.
    let enhanced: Bool
    /// Acquisition plans of the series written, in series-number order.
    let plans: [SeriesPlan]
    /// Which disc level each axial slice belongs to.
    let axialStacks: [Int]
    /// Study date and time, patient details and field strength (fixed per seed, never the clock).
    let date: String, time: String, birthDate: String, sex: String, age: Int, fieldStrength: Double

    /// Every series a study may have, in SeriesNumber order (localizer first).
    static let seriesOrder: [SeriesKind] = [.other, .sagittalT1, .sagittalT2, .axialT2]
    /// SeriesNumber of a kind, fixed whatever else the study holds (also keys its noise stream).
    static func seriesNumber(_ kind: SeriesKind) -> Int { seriesOrder.firstIndex(of: kind)! + 1 }

    /// Which series each condition's label points are given on (RSNA's convention).
    static let seriesOfCondition: [SeriesKind] = [.sagittalT2, .sagittalT1, .sagittalT1, .axialT2, .axialT2]

    /// Study `index` of a cohort made with `options`, with the given (cohort-unique) id.
    init(index: Int, studyID: Int, options: SynthOptions) {
        var rng = SynthRandom(seed: options.seed, 1, UInt64(index))
        self.index = index
        self.studyID = studyID
        seed = options.seed
        labels = (0..<RSNA.labelColumns.count).map { column in
            Int8(rng.pick(weights: options.labels.weights[column / RSNA.levels.count]))
        }
        // Variety draws from its own stream, so a cohort without it is the one made before it existed.
        var varietyRng = SynthRandom(seed: options.seed, 7, UInt64(index))
        let anatomy = SpineAnatomy(rng: &rng, labels: labels, variety: options.variety.draw(&varietyRng))
        self.anatomy = anatomy
        // Quirks draw from their own stream, so a study renders the same pixels with and without them.
        var quirkRng = SynthRandom(seed: options.seed, 6, UInt64(index))
        var quirks = options.quirks ? StudyQuirks.forStudy(index: index, rng: &quirkRng) : StudyQuirks()
        if options.transferSyntax != .explicitLittleEndian {
            for kind in SeriesKind.allCases where quirks.syntax[kind] == nil { quirks.syntax[kind] = options.transferSyntax }
        }
        self.quirks = quirks
        enhanced = options.enhanced

        let year = rng.integer(in: 2008...2023)
        date = String(format: "%04d%02d%02d", year, rng.integer(in: 1...12), rng.integer(in: 1...28))
        time = String(format: "%02d%02d%02d", rng.integer(in: 7...18), rng.integer(in: 0...59), rng.integer(in: 0...59))
        age = rng.integer(in: 25...84)
        birthDate = String(format: "%04d%02d%02d", year - age, rng.integer(in: 1...12), rng.integer(in: 1...28))
        sex = rng.next() % 2 == 0 ? "F" : "M"
        fieldStrength = rng.next() % 3 == 0 ? 3.0 : 1.5

        let t2Contrast: SynthContrast = rng.next() % 4 == 0 ? .stir : .t2
        let t1 = SeriesPlan.sagittal(.sagittalT1, contrast: .t1, anatomy: anatomy, matrix: options.sagittalMatrix,
                                     sliceCounts: options.sagittalSlices, rng: &rng)
        let t2 = SeriesPlan.sagittal(.sagittalT2, contrast: t2Contrast, anatomy: anatomy, matrix: options.sagittalMatrix,
                                     sliceCounts: options.sagittalSlices, rng: &rng)
        let axial = SeriesPlan.axial(anatomy: anatomy, matrix: options.axialMatrix,
                                     slicesPerStack: options.axialSlicesPerStack, rng: &rng)
        var plans: [SeriesPlan] = []
        if quirks.localizer { plans.append(SeriesPlan.localizer(anatomy: anatomy, matrix: max(64, options.axialMatrix / 2))) }
        plans += [t1, t2, axial.plan].filter { $0.kind != quirks.missing }
        self.plans = plans
        axialStacks = axial.stackOfSlice

        // Ids for every possible series in a fixed order, so leaving one out changes no other.
        var ids: [SeriesKind: Int] = [:]
        for kind in PhantomStudy.seriesOrder {
            var id: Int
            repeat { id = rng.integer(in: 1_000_000...4_280_999_999) } while ids.values.contains(id)
            ids[kind] = id
        }
        seriesIDs = ids.filter { kind, _ in plans.contains { $0.kind == kind } }
    }

    /// train.csv's 25 cells for this study (empty where quirks blank them).
    public var trainCells: [String] {
        labels.enumerated().map { i, cls in quirks.emptyCells.contains(i) ? "" : RSNA.severities[Int(cls)] }
    }

    /// Whether train_series_descriptions.csv lists a series of this kind (a localizer is on disk only).
    func isDescribed(_ kind: SeriesKind) -> Bool { kind != .other && seriesIDs[kind] != nil }

    /// InstanceNumbers of `plan`'s slices in acquisition order: 1...n, or a fixed shuffle with quirks.
    func instanceNumbers(_ plan: SeriesPlan) -> [Int] {
        var numbers = Array(1...plan.slices.count)
        guard quirks.shuffledInstances else { return numbers }
        var rng = SynthRandom(seed: seed, 2, UInt64(index), UInt64(PhantomStudy.seriesNumber(plan.kind)))
        for i in stride(from: numbers.count - 1, to: 0, by: -1) {
            numbers.swapAt(i, rng.integer(in: 0...i))
        }
        return numbers
    }

    /// The label points this study's train_label_coordinates.csv rows give (non-empty cells whose series exists).
    public var labelCoordinates: [SynthLabelPoint] {
        var rows: [SynthLabelPoint] = []
        for (c, kind) in PhantomStudy.seriesOfCondition.enumerated() {
            guard let plan = plans.first(where: { $0.kind == kind }), let seriesID = seriesIDs[kind] else { continue }
            let numbers = instanceNumbers(plan)
            for level in 0..<RSNA.levels.count where !quirks.emptyCells.contains(c * RSNA.levels.count + level) {
                let target: Vec3
                switch c {
                case 0: target = anatomy.canalCentre(level)
                case 1, 2: target = anatomy.foramenCentre(level, side: c - 1)
                default: target = anatomy.recessCentre(level, side: c - 3)
                }
                let candidates = plan.slices.indices.filter { kind != .axialT2 || axialStacks[$0] == level }
                let best = candidates.min { abs(plan.slices[$0].pixelCoordinates(of: target).distance)
                    < abs(plan.slices[$1].pixelCoordinates(of: target).distance) }!
                let at = plan.slices[best].pixelCoordinates(of: target)
                rows.append(SynthLabelPoint(studyID: studyID, seriesID: seriesID, instanceNumber: enhanced ? 1 : numbers[best],
                                            condition: RSNA.conditionTitles[c], level: RSNA.levelTitles[level],
                                            x: at.column, y: at.row, frameNumber: enhanced ? best + 1 : nil))
            }
        }
        return rows
    }
}
