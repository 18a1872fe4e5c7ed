import Foundation
import Ingest

/// One series as a scanner would acquire it: every slice's geometry, its contrast and protocol tags.
struct SeriesPlan: Sendable {
    /// The kind it stands for; a localizer is `.other`.
    var kind: SeriesKind
    /// SeriesDescription as written in the files.
    var description: String
    var contrast: SynthContrast
    /// Slices in acquisition order (InstanceNumber order unless quirks shuffle it).
    var slices: [SliceGeometry]
    /// SpacingBetweenSlices (mm, centre to centre).
    var spacing: Double
    /// Protocol tags: TR, TE, optional TI (ms), echo train length, ScanningSequence, ImageType.
    var repetitionTime: Double, echoTime: Double, inversionTime: Double?
    var echoTrainLength: Int
    var scanningSequence: String
    var imageType: String

    /// A sagittal stack: rows run head→feet, columns anterior→posterior, slices from patient right to left.
    static func sagittal(_ kind: SeriesKind, contrast: SynthContrast, anatomy: SpineAnatomy,
                         matrix: Int, sliceCounts: ClosedRange<Int>, rng: inout SynthRandom) -> SeriesPlan {
        let count = rng.integer(in: sliceCounts)
        let thickness = (rng.uniform(3.0...4.0) * 2).rounded() / 2
        let spacing = thickness + (rng.uniform(0.3...0.8) * 10).rounded() / 10
        let fov = (rng.uniform(250...310)).rounded()
        let pixel = fov / Double(matrix)
        let centre = anatomy.point(s: -12 + rng.uniform(-6...6), u: 22 + rng.uniform(-6...6), x: 0) - anatomy.fieldOfViewShift
        let rowDirection = Vec3(0, 1, 0), columnDirection = Vec3(0, 0, -1)
        // Slice count / 2 sits within half a millimetre of the midline (as a technologist would
        // place it), so the canal is always on a slice whatever the count's parity.
        let shift = rng.uniform(-0.5...0.5)
        let slices = (0..<count).map { k -> SliceGeometry in
            let offset = Double(k - count / 2) * spacing + shift
            let c = centre + Vec3(offset, 0, 0)
            return SliceGeometry(position: corner(c, rowDirection, columnDirection, pixel, matrix),
                                 rowDirection: rowDirection, columnDirection: columnDirection,
                                 rowSpacing: pixel, columnSpacing: pixel, rows: matrix, columns: matrix, thickness: thickness)
        }
        switch contrast {
        case .t1:
            return SeriesPlan(kind: kind, description: kind.rawValue, contrast: contrast, slices: slices, spacing: spacing,
                              repetitionTime: rng.uniform(450...700).rounded(), echoTime: rng.uniform(8...12).rounded(),
                              inversionTime: nil, echoTrainLength: 3, scanningSequence: "SE", imageType: "ORIGINAL\\PRIMARY\\M\\ND")
        case .t2:
            return SeriesPlan(kind: kind, description: kind.rawValue, contrast: contrast, slices: slices, spacing: spacing,
                              repetitionTime: rng.uniform(2800...4500).rounded(), echoTime: rng.uniform(85...115).rounded(),
                              inversionTime: nil, echoTrainLength: 17, scanningSequence: "SE", imageType: "ORIGINAL\\PRIMARY\\M\\ND")
        case .stir:
            return SeriesPlan(kind: kind, description: kind.rawValue, contrast: contrast, slices: slices, spacing: spacing,
                              repetitionTime: rng.uniform(3500...5000).rounded(), echoTime: rng.uniform(40...60).rounded(),
                              inversionTime: rng.uniform(150...220).rounded(), echoTrainLength: 13, scanningSequence: "IR\\SE",
                              imageType: "ORIGINAL\\PRIMARY\\M\\ND")
        }
    }

    /// Axial T2 as one oblique stack per disc level (L1/L2 … L5/S1), each tilted to the disc and
    /// centred on it so one slice runs through the disc's mid-plane; all in one series, superior first.
    static func axial(anatomy: SpineAnatomy, matrix: Int, slicesPerStack: ClosedRange<Int>,
                      rng: inout SynthRandom) -> (plan: SeriesPlan, stackOfSlice: [Int]) {
        let perStack = rng.integer(in: slicesPerStack)
        let thickness = (rng.uniform(3.0...4.0) * 2).rounded() / 2
        let spacing = thickness + (rng.uniform(0.0...0.5) * 10).rounded() / 10
        let fov = (rng.uniform(170...210)).rounded()
        let pixel = fov / Double(matrix)
        let rowDirection = Vec3(1, 0, 0)
        var slices: [SliceGeometry] = [], stackOfSlice: [Int] = []
        for level in 0..<5 {
            let normal = anatomy.disc(level).axis
            let columnDirection = normal.cross(rowDirection).normalized
            let s = anatomy.discS(level)
            let centre = anatomy.point(s: s, u: 14 + rng.uniform(-4...4), x: rng.uniform(-3...3))
            let middle = perStack / 2
            for k in 0..<perStack {
                let c = centre + (Double(middle - k) * spacing) * normal
                slices.append(SliceGeometry(position: corner(c, rowDirection, columnDirection, pixel, matrix),
                                            rowDirection: rowDirection, columnDirection: columnDirection,
                                            rowSpacing: pixel, columnSpacing: pixel, rows: matrix, columns: matrix,
                                            thickness: thickness))
                stackOfSlice.append(level)
            }
        }
        let plan = SeriesPlan(kind: .axialT2, description: SeriesKind.axialT2.rawValue, contrast: .t2, slices: slices,
                              spacing: spacing, repetitionTime: rng.uniform(3000...5000).rounded(),
                              echoTime: rng.uniform(90...110).rounded(), inversionTime: nil, echoTrainLength: 15,
                              scanningSequence: "SE", imageType: "ORIGINAL\\PRIMARY\\M\\ND")
        return (plan, stackOfSlice)
    }

    /// A three-plane localizer (sagittal, coronal, axial through the spine), large field, coarse matrix.
    static func localizer(anatomy: SpineAnatomy, matrix: Int) -> SeriesPlan {
        let centre = anatomy.point(s: 0, u: 10, x: 0)
        let pixel = 400 / Double(matrix)
        let planes: [(Vec3, Vec3)] = [(Vec3(0, 1, 0), Vec3(0, 0, -1)), (Vec3(1, 0, 0), Vec3(0, 0, -1)), (Vec3(1, 0, 0), Vec3(0, 1, 0))]
        let slices = planes.map { row, column in
            SliceGeometry(position: corner(centre, row, column, pixel, matrix), rowDirection: row, columnDirection: column,
                          rowSpacing: pixel, columnSpacing: pixel, rows: matrix, columns: matrix, thickness: 8)
        }
        return SeriesPlan(kind: .other, description: "3-Plane Localizer", contrast: .t1, slices: slices, spacing: 0,
                          repetitionTime: 8, echoTime: 4, inversionTime: nil, echoTrainLength: 1, scanningSequence: "GR",
                          imageType: "ORIGINAL\\PRIMARY\\LOCALIZER")
    }

    /// ImagePositionPatient of a square `matrix` image of pixel size `pixel` centred at `centre`.
    private static func corner(_ centre: Vec3, _ row: Vec3, _ column: Vec3, _ pixel: Double, _ matrix: Int) -> Vec3 {
        let half = Double(matrix - 1) / 2 * pixel
        return centre - half * row - half * column
    }
}
