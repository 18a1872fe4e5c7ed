import Foundation

/// Decodes the files of a catalogued series into a `SeriesVolume` ready to fuse: each slice keeps
/// its own geometry; a file that fails to decode is reported and left out, never fatal.
public enum SeriesLoader {
    /// Loads `series` from the archive at `root`; returns the volume and the problems met.
    public static func load(_ series: CatalogSeries, root: String) -> (SeriesVolume, [CatalogProblem]) {
        var problems: [CatalogProblem] = []
        var decoded: [String: DicomImage] = [:]
        var stacks: [Stack] = []
        for stack in series.stacks {
            var slices: [Slice] = []
            for image in stack.images {
                let path = root + "/" + image.path
                let file: DicomImage
                if let cached = decoded[image.path] {
                    file = cached
                } else {
                    do {
                        file = try DicomReader.readImage(path)
                    } catch let e as GDCMError {
                        problems.append(CatalogProblem(path: image.path, reason: e.message))
                        continue
                    } catch {
                        problems.append(CatalogProblem(path: image.path, reason: "\(error)"))
                        continue
                    }
                    if file.header.numberOfFrames > 1 { decoded[image.path] = file }
                }
                guard case .success(let g) = file.header.geometry(frame: image.frame) else {
                    problems.append(CatalogProblem(path: image.path, reason: "geometry changed since the scan"))
                    continue
                }
                slices.append(Slice(geometry: g, pixels: file.frame(image.frame), instanceNumber: image.instanceNumber ?? 0,
                                    sopInstanceUID: image.sopInstanceUID, source: image.path))
            }
            if !slices.isEmpty { stacks.append(Stack(slices: slices)) }
        }
        return (SeriesVolume(seriesID: series.seriesID, kind: series.kind, stacks: stacks), problems)
    }
}
