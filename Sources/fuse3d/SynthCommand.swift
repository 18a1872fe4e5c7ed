import ArgumentParser
import Core
import Foundation
import Ingest
import Synth

/// `fuse3d synth`: writes a phantom lumbar-MRI cohort in the RSNA 2024 layout.
struct Synth: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Write a phantom lumbar-spine MRI cohort (real DICOM, RSNA 2024 layout and CSVs).",
        discussion: """
        Each study has Sagittal T1, Sagittal T2/STIR and Axial T2 (one oblique stack per disc) rendered \
        from a spine whose canal, foramina and recesses are narrowed by its labels. The same seed and options \
        write the same bytes.

        Spines differ between studies as patients do with --spine-shift (cm), --spine-tilt and --lordosis \
        (degrees) and --spine-size (percent); the demo uses 1.5 cm, 10°, 10° and 8 %.

        Examples:
          fuse3d synth --studies 8 --out /tmp/cohort --seed 7 --quirks --spine-shift 1.5 --spine-tilt 10 --lordosis 10 --spine-size 8
          fuse3d synth --studies 2 --out /tmp/enhanced --enhanced
          fuse3d synth --studies 2000 --out /data/rsna-size --sagittal-matrix 384 --axial-matrix 320 --axial-slices 7-9
        """)

    @Option(help: "The number of studies to write.")
    var studies: Int = 8

    @Option(help: "Output folder (train_images/ and the three CSVs go here).")
    var out: String

    @Option(help: "The seed every random choice of the cohort derives from.")
    var seed: UInt64 = 0

    @Flag(help: "Add real-archive irregularities: shuffled instance numbers, missing series, a localizer, JPEG 2000 / JPEG-LS / RLE files, a truncated file, a non-DICOM file, empty label cells.")
    var quirks = false

    @Option(help: "Relative weights of Normal/Mild, Moderate and Severe for every condition, e.g. 1,1,1 (default: close to the competition's).")
    var labelWeights: String?

    @Option(help: "Rows (and columns) of the sagittal images.")
    var sagittalMatrix = 256

    @Option(help: "Rows (and columns) of the axial images.")
    var axialMatrix = 192

    @Option(help: "Slices in each axial disc stack, as a range drawn from per stack (the RSNA 2024 archive's ~75 files a study need 7-9).")
    var axialSlices = "3-5"

    @Option(help: "The transfer syntax of every file: explicit-le, jpeg2000, jpeg-ls, rle or jpeg-lossless (with --quirks, some series keep their own).")
    var transferSyntax = "explicit-le"

    @Option(help: "Field-of-view placement: each spine is displaced up to ± this many centimetres superior-inferior and anterior-posterior in the sagittal field of view.")
    var spineShift: Double = 0

    @Option(help: "Each spine is tilted up to ± this many degrees in the sagittal plane.")
    var spineTilt: Double = 0

    @Option(help: "Each spine's lordosis (the L1-S1 curve) changes by up to ± this many degrees.")
    var lordosis: Double = 0

    @Option(help: "Each spine's vertebrae and discs (so its level heights) are up to ± this many percent larger or smaller.")
    var spineSize: Double = 0

    @Flag(help: "Write each series as one Enhanced MR Image Storage file (per-frame geometry and pixel value transformation in functional groups; train_label_coordinates.csv gains frame_number).")
    var enhanced = false

    func validate() throws {
        guard [spineShift, spineTilt, lordosis, spineSize].allSatisfy({ $0 >= 0 && $0.isFinite }) else {
            throw ValidationError("--spine-shift, --spine-tilt, --lordosis and --spine-size take amounts of 0 or more (cm, degrees, degrees, percent).")
        }
        guard spineShift <= 5, spineTilt <= 30, lordosis <= 30, spineSize <= 30 else {
            throw ValidationError("Keep the spine inside the field of view: --spine-shift at most 5 cm, --spine-tilt and --lordosis at most 30 degrees, --spine-size at most 30 percent.")
        }
        guard SynthTransferSyntax(name: transferSyntax) != nil else {
            throw ValidationError("--transfer-syntax takes one of \(SynthTransferSyntax.allCases.map(\.name).joined(separator: ", ")).")
        }
        guard parseRange(axialSlices) != nil else { throw ValidationError("--axial-slices takes a range of slice counts from 2 to 64, e.g. 3-5.") }
        guard studies > 0 else { throw ValidationError("--studies must be at least 1.") }
        guard sagittalMatrix >= 32, axialMatrix >= 32 else { throw ValidationError("Matrix sizes must be at least 32.") }
        if let labelWeights { _ = try parseWeights(labelWeights) }
    }

    /// "A-B" (or "A") as a range of slice counts within 2...64.
    private func parseRange(_ text: String) -> ClosedRange<Int>? {
        let parts = text.split(separator: "-", omittingEmptySubsequences: false).map { Int($0.trimmingCharacters(in: .whitespaces)) }
        guard (1...2).contains(parts.count), let low = parts.first!, let high = parts.last!, 2 <= low, low <= high, high <= 64 else { return nil }
        return low...high
    }

    private func parseWeights(_ text: String) throws -> [Double] {
        let w = text.split(separator: ",").compactMap { Double($0.trimmingCharacters(in: .whitespaces)) }
        guard w.count == 3, w.allSatisfy({ $0 >= 0 }), w.reduce(0, +) > 0 else {
            throw ValidationError("--label-weights takes three non-negative numbers, e.g. 1,1,1.")
        }
        return w
    }

    func run() throws {
        var options = SynthOptions(studies: studies, seed: seed, quirks: quirks,
                                   sagittalMatrix: sagittalMatrix, axialMatrix: axialMatrix,
                                   transferSyntax: SynthTransferSyntax(name: transferSyntax)!,
                                   variety: SpineVariety(shiftCentimetres: spineShift, tiltDegrees: spineTilt,
                                                         lordosisDegrees: lordosis, sizePercent: spineSize))
        options.enhanced = enhanced
        options.axialSlicesPerStack = parseRange(axialSlices)!
        if let labelWeights { options.labels = LabelDistribution(all: try parseWeights(labelWeights)) }
        // In a log, one line per study.
        let line = ProgressLine(plainInterval: 0)
        let summary = try SynthCohort.write(options, to: URL(fileURLWithPath: out)) { p in line.show(p.description) }
        line.finish()
        print("wrote \(summary.studies.count) studies, \(summary.files) files, "
              + String(format: "%.1f MB", Double(summary.bytes) / 1e6) + " to \(out)")
    }
}
