import Foundation
import Shards

/// Decodes the files of a catalogued series into a `SeriesVolume` ready to fuse: each slice keeps
/// its own geometry; a file that fails to decode is reported and left out, never fatal.
public enum SeriesLoader {
    /// Loads every series of `study` that is fused (`CatalogStudy.seriesToFuse`: all Axial T2 series,
    /// one of each sagittal kind). Returns the volumes, per channel name the series ids fused into it
    /// (comma-separated) or "missing", and the files that could not be decoded. `willDecode` hears each file's path
    /// (relative to the archive) before its decode starts (a decode worker tells its supervisor).
    public static func loadStudy(_ study: CatalogStudy, root: String, willDecode: ((String) -> Void)? = nil)
        -> (volumes: [SeriesVolume], channels: [String: String], problems: [CatalogProblem]) {
        var volumes: [SeriesVolume] = []
        var problems: [CatalogProblem] = []
        var channels: [String: String] = [:]
        for kind in [SeriesKind.sagittalT1, .sagittalT2, .axialT2] {
            var ids: [String] = []
            for series in study.seriesToFuse(kind) {
                let (volume, p) = load(series, root: root, willDecode: willDecode)
                problems += p
                guard !volume.stacks.isEmpty else { continue }
                ids.append(series.seriesID)
                volumes.append(volume)
            }
            channels[Channels.names[kind.channel!]] = ids.isEmpty ? "missing" : ids.joined(separator: ", ")
        }
        return (volumes, channels, problems)
    }


    /// Loads `series` from the archive at `root`; returns the volume and the problems met.
    ///
    /// Files at one position (`CatalogStack.slices`) are decoded in path order. One whose pixels (and pixel spacing)
    /// are those of the first decoded file is the same image: one slice, whose label rows its instance number also
    /// resolves. One whose pixels differ is a re-acquisition: the first decoded file (path order) is fused, the other
    /// is a problem of the study, and its geometry still places the label rows naming it (data-schema.md).
    public static func load(_ series: CatalogSeries, root: String, willDecode: ((String) -> Void)? = nil) -> (SeriesVolume, [CatalogProblem]) {
        var problems: [CatalogProblem] = []
        var decoded: [String: DicomImage] = [:]
        func read(_ image: CatalogImage) -> Slice? {
            let file: DicomImage
            if let cached = decoded[image.path] {
                file = cached
            } else {
                willDecode?(image.path)
                do {
                    file = try DicomReader.readImage(root + "/" + image.path)
                } catch let e as GDCMError {
                    problems.append(CatalogProblem(path: image.path, reason: e.message))
                    return nil
                } catch {
                    problems.append(CatalogProblem(path: image.path, reason: "\(error)"))
                    return nil
                }
                if file.header.numberOfFrames > 1 { decoded[image.path] = file }
            }
            guard case .success(let g) = file.header.geometry(frame: image.frame) else {
                problems.append(CatalogProblem(path: image.path, reason: "geometry changed since the scan"))
                return nil
            }
            return Slice(geometry: g, pixels: file.frame(image.frame), instanceNumber: image.instanceNumber ?? 0,
                         sopInstanceUID: image.sopInstanceUID, source: image.path,
                         frameNumber: file.header.isMultiFrame ? image.frame + 1 : nil)
        }
        var stacks: [Stack] = []
        var reacquisitions: [Slice] = []
        for stack in series.stacks {
            var slices: [Slice] = []
            for position in stack.slices {
                var kept: Slice?
                for image in position {
                    guard let slice = read(image) else { continue }
                    guard var first = kept else { kept = slice; continue }
                    if slice.pixels == first.pixels && slice.geometry.rowSpacing == first.geometry.rowSpacing
                        && slice.geometry.columnSpacing == first.geometry.columnSpacing {
                        if slice.instanceNumber != first.instanceNumber { first.sameImageInstanceNumbers.append(slice.instanceNumber) }
                        kept = first
                    } else {
                        problems.append(CatalogProblem(path: image.path, reason: "a re-acquisition: at the position of \(first.source) with "
                            + "other pixels; \(first.source) is fused (the first file in path order), this file's label rows are placed "
                            + "on its own geometry"))
                        var geometryOnly = slice
                        geometryOnly.pixels = []
                        reacquisitions.append(geometryOnly)
                    }
                }
                if let kept { slices.append(kept) }
            }
            if !slices.isEmpty { stacks.append(Stack(slices: slices)) }
        }
        var volume = SeriesVolume(seriesID: series.seriesID, kind: series.kind, stacks: stacks)
        volume.reacquisitions = reacquisitions
        return (volume, problems)
    }
}
