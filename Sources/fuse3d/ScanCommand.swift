import ArgumentParser
import Core
import Foundation
import Ingest

/// `fuse3d scan`: list an archive's studies, series and problems.
struct Scan: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "List the studies, series (type, stacks, slices, spacing, field of view) and problems of a DICOM archive.",
        discussion: """
        Reads headers only, unless --decode is given; headers and pixels are read in supervised worker processes, so a \
        file that crashes or hangs GDCM is listed as that file's problem and the scan goes on. In the RSNA layout (train_series_descriptions.csv at the \
        root) the CSV names the series and only files under train_images/{study_id}/{series_id}/ are read; \
        otherwise every file is read and series are classified from their tags. Every file gets a fate: used \
        (a table read, or an image of a series to fuse), skipped (with the problem its header shows, such as \
        absurd dimensions, pixel data shorter than the image, missing geometry, colour or a non-image object) \
        or ignored (a localizer, a derived or unfused series, too few slices, a second sagittal series of the \
        same kind, a duplicate). Each series shows its SOP classes and its frames apart from its files: Enhanced MR \
        files (one file, many frames) are read frame by frame through their functional groups. In the RSNA layout the \
        folder is the study: a folder holding a second Study Instance UID, or a UID under two folders, is noted on the \
        study, and a series of another study's UID is never fused (a problem naming both UIDs). It prints a summary \
        (studies, series by kind, transfer syntaxes, the fate of the files, the first problems); --verbose lists every \
        study, series and problem, --json prints the whole catalog. The exit status is 0 when the scan finishes; \
        problems are listed, not fatal.

        Example:
          fuse3d scan /data/rsna-2024-lumbar-spine --json > catalog.json
        """)

    @Argument(help: "The archive folder: the RSNA layout, or any tree of DICOM files.")
    var archive: String

    @Flag(help: "Also decode every image's pixel data, so that broken pixel data is listed as a problem too (in supervised worker processes: a decoder that crashes or hangs is listed as that file's problem).")
    var decode = false

    @Option(help: "Seconds a header read or decode may spend on one file before it is taken for hung, killed, and the file listed")
    var decoderTimeLimit: Double = DecoderLimits().fileSeconds

    @Flag(help: "Print the catalog as JSON instead of text.")
    var json = false

    @Flag(name: .shortAndLong, help: "List every study and series and every problem, not only the summary.")
    var verbose = false

    func validate() throws {
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: archive, isDirectory: &isDir), isDir.boolValue else {
            throw ValidationError("'\(archive)' is not a folder: give the archive's root folder.")
        }
        if !(decoderTimeLimit > 0) { throw ValidationError("--decoder-time-limit must be a number of seconds > 0.") }
    }

    func run() throws {
        let progress = CountProgress(label: "scan", unit: "files")
        let catalog = CatalogScanner.scan(root: archive, decode: decode,
                                          isolation: .processes(executable: "/proc/self/exe", limits: DecoderLimits(fileSeconds: decoderTimeLimit))) { done, total in progress.update(done, total) }
        progress.finish()
        if json {
            let enc = JSONEncoder()
            enc.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
            // A damaged header's NaN or infinite value is text in the listing, not the end of it.
            enc.nonConformingFloatEncodingStrategy = .convertToString(positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
            print(String(decoding: try enc.encode(catalog), as: UTF8.self))
        } else {
            print(verbose ? catalog.report() : catalog.summary(), terminator: "")
        }
    }
}
