import ArgumentParser
import Foundation
import Ingest
import Report
import Shards

/// `fuse3d inspect`: summary of a shard folder, pictures and NIfTI of one sample.
struct Inspect: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Summarize shards (samples, shape, compression, labels, channel statistics) and export one sample as PNG or NIfTI.",
        discussion: """
        PATH is a shard folder (with manifest.json) or one shard file. --png draws one sample: the three channels
        (rows) × sagittal, coronal and axial planes through the spine (columns), keypoints marked. --nifti writes it
        as NIfTI-1 with its RAS affine (opens in 3D Slicer and ITK-SNAP on the right anatomy). --html writes a page
        to check an ingest by eye: the summary, the label distribution and a gallery of samples.

        Example:
          fuse3d inspect demo-out/shards
          fuse3d inspect demo-out/shards --html shards.html
          fuse3d inspect demo-out/shards --study 4003253 --png sample.png --nifti sample.nii
        """)

    @Argument(help: "A shard folder or a shard-NNNNN.h5 file.")
    var path: String

    @Option(help: "Which sample to export: its index across the folder's shards (default 0).")
    var sample: Int?

    @Option(help: "Which sample to export: its study id.")
    var study: Int64?

    @Option(help: "Write a picture of the sample to this PNG file.")
    var png: String?

    @Option(help: "Write the sample as NIfTI-1 (.nii) to this file.")
    var nifti: String?

    @Option(help: "Write an HTML page (summary, label bars, a gallery of samples) to this file.")
    var html: String?

    @Option(help: "Samples drawn in the --html gallery.")
    var galleryLimit = 48

    @Flag(help: "Print the summary as JSON.")
    var json = false

    func validate() throws {
        guard FileManager.default.fileExists(atPath: path) else { throw ValidationError("'\(path)' does not exist.") }
        if sample != nil && study != nil { throw ValidationError("Give --sample or --study, not both.") }
        if let sample, sample < 0 { throw ValidationError("--sample must be 0 or more.") }
    }

    func run() throws {
        let shards = try ShardSet(path: path)
        if png != nil || nifti != nil || sample != nil || study != nil {
            let (s, where_) = try shards.find(index: sample, study: study)
            if let png {
                try SamplePicture.write(s, to: URL(fileURLWithPath: png))
                print("wrote \(png) (study \(s.studyID), \(where_))")
            }
            if let nifti {
                try NIfTI.write(s, to: URL(fileURLWithPath: nifti))
                print("wrote \(nifti) (study \(s.studyID), \(where_))")
            }
            if png == nil && nifti == nil {
                print(SampleDescription.text(s, location: where_))
            }
            return
        }
        guard let dataset = shards.dataset else {
            let r = shards.file!
            print("\(r.url.lastPathComponent): schema_version \(r.schemaVersion), \(r.sampleCount) samples of shape \(r.shape), studies \(r.studyIDs.map(String.init).joined(separator: ", "))")
            return
        }
        let summary = try ShardSummary.compute(directory: dataset.directory)
        if let html {
            try ShardGallery.write(summary: summary, dataset: dataset, to: URL(fileURLWithPath: html), limit: galleryLimit)
            print("wrote \(html) (\(min(galleryLimit, dataset.count)) of \(dataset.count) samples drawn)")
            return
        }
        if json {
            print(String(decoding: try summary.json(), as: UTF8.self))
        } else {
            print(summary.text, terminator: summary.text.hasSuffix("\n") ? "" : "\n")
        }
    }
}
