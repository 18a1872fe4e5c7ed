import Foundation

/// Builds a `Catalog` from an archive folder: header-only reads of every file, grouping by Study and
/// Series Instance UID, stack splitting by orientation and position, series classification.
public enum CatalogScanner {
    /// Files the scanner reads as metadata, not images.
    static let metadataNames: Set<String> = [
        "train.csv", "train_series_descriptions.csv", "train_label_coordinates.csv",
        "test_series_descriptions.csv", "sample_submission.csv",
    ]

    /// Slices whose normals differ by more than this angle belong to different stacks.
    static let maxStackAngleDegrees = 1.0

    /// Scans `root`. With `decode`, every image's pixel data is decoded too (and thrown away), so that
    /// files whose pixels are broken show up as problems. `progress(done, total)` reports files read.
    public static func scan(root: String, decode: Bool = false, progress: ((Int, Int) -> Void)? = nil) -> Catalog {
        let rootPath = (root as NSString).standardizingPath
        let descriptions = RSNASeriesDescriptions.load(root: rootPath)
        let walker = FileWalker(root: rootPath) { path in
            metadataNames.contains((path as NSString).lastPathComponent)
        }
        var problems = walker.problems.map { CatalogProblem(path: relative($0.path, to: rootPath), reason: $0.reason) }
        if let err = descriptions.error { problems.append(CatalogProblem(path: "train_series_descriptions.csv", reason: err)) }

        let files = walker.files
        var results = [Result<DicomHeader, GDCMError>?](repeating: nil, count: files.count)
        let chunk = 64
        let chunks = (files.count + chunk - 1) / chunk
        let lock = NSLock()
        var done = 0
        results.withUnsafeMutableBufferPointer { out in
            DispatchQueue.concurrentPerform(iterations: chunks) { c in
                for i in (c * chunk)..<min(files.count, (c + 1) * chunk) {
                    do {
                        out[i] = .success(decode ? try DicomReader.readImage(files[i]).header : try DicomReader.readHeader(files[i]))
                    } catch let e as GDCMError {
                        out[i] = .failure(e)
                    } catch {
                        out[i] = .failure(GDCMError(path: files[i], message: "\(error)"))
                    }
                }
                lock.lock(); done += min(chunk, files.count - c * chunk); let d = done; lock.unlock()
                progress?(d, files.count)
            }
        }

        // Group usable images by study and series UID.
        var groups: [String: [String: [DicomHeader]]] = [:]
        var studyOrder: [String] = []
        var imageCount = 0
        var warnings: [CatalogProblem] = []
        for (i, r) in results.enumerated() {
            switch r! {
            case .failure(let e):
                problems.append(CatalogProblem(path: relative(files[i], to: rootPath), reason: e.message))
            case .success(let h):
                for w in h.warnings {
                    warnings.append(CatalogProblem(path: relative(files[i], to: rootPath), reason: w))
                }
                if h.isNonImage {
                    problems.append(CatalogProblem(path: relative(files[i], to: rootPath),
                                                   reason: DicomProblem.nonImage("SOP class \(h.sopClassUID) (\(h.modality))").description))
                    continue
                }
                if h.samplesPerPixel != 1 {
                    problems.append(CatalogProblem(path: relative(files[i], to: rootPath),
                                                   reason: "colour image (\(h.photometricInterpretation)) where a greyscale image is needed"))
                    continue
                }
                if case .failure(let p) = h.geometry() {
                    problems.append(CatalogProblem(path: relative(files[i], to: rootPath), reason: p.description))
                    continue
                }
                imageCount += 1
                if groups[h.studyInstanceUID] == nil { studyOrder.append(h.studyInstanceUID) }
                groups[h.studyInstanceUID, default: [:]][h.seriesInstanceUID, default: []].append(h)
            }
        }

        var studies: [CatalogStudy] = []
        for studyUID in studyOrder {
            let seriesGroups = groups[studyUID]!
            var series: [CatalogSeries] = []
            var studyID = studyUID
            for (seriesUID, headers) in seriesGroups {
                let (ids, s) = makeSeries(seriesUID: seriesUID, headers: headers, root: rootPath, descriptions: descriptions)
                if let ids { studyID = ids.study }
                series.append(s)
            }
            series.sort { ($0.kind.channel ?? 9, $0.seriesID) < ($1.kind.channel ?? 9, $1.seriesID) }
            studies.append(CatalogStudy(studyID: studyID, studyInstanceUID: studyUID, series: series))
        }
        studies.sort { numericOrder($0.studyID, $1.studyID) }
        problems.sort { $0.path < $1.path }
        return Catalog(mode: descriptions.isEmpty ? "tags" : "rsna", root: rootPath, fileCount: files.count,
                       imageCount: imageCount, studies: studies, problems: problems, warnings: warnings)
    }

    /// Orders ids numerically when both are integers (RSNA ids), else lexically.
    static func numericOrder(_ a: String, _ b: String) -> Bool {
        if let x = Int64(a), let y = Int64(b) { return x < y }
        return a < b
    }

    static func relative(_ path: String, to root: String) -> String {
        if path == root { return (path as NSString).lastPathComponent }
        let prefix = root.hasSuffix("/") ? root : root + "/"
        return path.hasPrefix(prefix) ? String(path.dropFirst(prefix.count)) : path
    }

    /// RSNA ids from a path `…/{study_id}/{series_id}/{file}`.
    static func folderIDs(_ relativePath: String) -> (study: String, series: String)? {
        let parts = relativePath.split(separator: "/").map(String.init)
        guard parts.count >= 3 else { return nil }
        return (parts[parts.count - 3], parts[parts.count - 2])
    }

    static func makeSeries(seriesUID: String, headers: [DicomHeader], root: String,
                           descriptions: RSNASeriesDescriptions) -> ((study: String, series: String)?, CatalogSeries) {
        let first = headers[0]
        let rel = relative(first.path, to: root)
        let ids = folderIDs(rel)
        var notes: [String] = []

        // Every frame becomes a slice candidate; drop duplicate SOP instances and duplicate positions.
        var seenUIDs = Set<String>()
        var frames: [(image: CatalogImage, geometry: SliceGeometry)] = []
        for h in headers.sorted(by: { $0.path < $1.path }) {
            guard seenUIDs.insert(h.sopInstanceUID).inserted else {
                notes.append("duplicate SOP Instance UID \(h.sopInstanceUID): \(relative(h.path, to: root)) dropped")
                continue
            }
            for f in 0..<max(h.framePositions.count, 1) {
                guard case .success(let g) = h.geometry(frame: f) else { continue }
                frames.append((CatalogImage(path: relative(h.path, to: root), frame: f, sopInstanceUID: h.sopInstanceUID,
                                            instanceNumber: h.instanceNumber, position: g.position), g))
            }
        }
        let stacks = splitStacks(frames, notes: &notes)
        let planes = Set(stacks.map(\.plane))
        let plane: Plane = planes.count == 1 ? planes.first! : (planes.isEmpty ? .unknown : .mixed)

        let kind: SeriesKind
        let reason: String
        if let ids, let d = descriptions.kind(study: ids.study, series: ids.series) {
            kind = d; reason = "train_series_descriptions.csv"
        } else {
            let decision = SeriesClassifier.classify(description: first.seriesDescription, plane: plane, echoTime: first.echoTime,
                                                     repetitionTime: first.repetitionTime, inversionTime: first.inversionTime,
                                                     imageType: first.imageType, sliceCount: frames.count)
            kind = decision.kind; reason = decision.reason
        }
        let sp = first.pixelSpacing ?? (0, 0)
        let series = CatalogSeries(
            seriesID: descriptions.isEmpty || ids == nil ? seriesUID : ids!.series,
            seriesInstanceUID: seriesUID, description: first.seriesDescription, kind: kind, kindReason: reason,
            plane: plane, stacks: stacks, rows: first.rows, columns: first.columns, pixelSpacing: [sp.row, sp.column],
            sliceThickness: first.sliceThickness,
            fieldOfView: [Double(first.rows) * sp.row, Double(first.columns) * sp.column],
            echoTime: first.echoTime, repetitionTime: first.repetitionTime, inversionTime: first.inversionTime, notes: notes)
        return (descriptions.isEmpty ? nil : ids, series)
    }

    /// Groups slices into stacks: same orientation (within `maxStackAngleDegrees`), ordered along the
    /// normal, split where a gap exceeds twice the stack's median spacing; duplicate positions dropped.
    static func splitStacks(_ frames: [(image: CatalogImage, geometry: SliceGeometry)], notes: inout [String]) -> [CatalogStack] {
        let cosLimit = cos(maxStackAngleDegrees * .pi / 180)
        var clusters: [[(image: CatalogImage, geometry: SliceGeometry)]] = []
        for f in frames {
            if let i = clusters.firstIndex(where: { c in
                let a = c[0].geometry
                return a.normal.dot(f.geometry.normal) > cosLimit && a.rowDirection.dot(f.geometry.rowDirection) > cosLimit
            }) {
                clusters[i].append(f)
            } else {
                clusters.append([f])
            }
        }
        var stacks: [CatalogStack] = []
        for cluster in clusters {
            let normal = cluster[0].geometry.normal
            var sorted = cluster.sorted { ($0.image.position.dot(normal), $0.image.path) < ($1.image.position.dot(normal), $1.image.path) }
            var unique: [(image: CatalogImage, geometry: SliceGeometry)] = []
            for s in sorted {
                if let last = unique.last, (s.image.position - last.image.position).length < 0.01 {
                    notes.append("duplicate position \(s.image.position): \(s.image.path) dropped (kept \(last.image.path))")
                    continue
                }
                unique.append(s)
            }
            sorted = unique
            let offsets = sorted.map { $0.image.position.dot(normal) }
            let gaps = zip(offsets.dropFirst(), offsets).map { $0 - $1 }
            let median = gaps.isEmpty ? 0 : gaps.sorted()[gaps.count / 2]
            var current: [CatalogImage] = []
            func close() {
                guard !current.isEmpty else { return }
                let o = current.map { $0.position.dot(normal) }
                let g = zip(o.dropFirst(), o).map { $0 - $1 }.sorted()
                let spacing = g.isEmpty ? (sorted.first?.geometry.thickness ?? 0) : g[g.count / 2]
                stacks.append(CatalogStack(normal: normal, plane: Plane.of(normal: normal), spacing: spacing, images: current))
                current = []
            }
            for (i, s) in sorted.enumerated() {
                if i > 0, median > 0, gaps[i - 1] > 2 * median { close() }
                current.append(s.image)
            }
            close()
        }
        return stacks.sorted { ($0.images.first?.position.z ?? 0) > ($1.images.first?.position.z ?? 0) }
    }
}

/// The RSNA `train_series_descriptions.csv` (study_id, series_id, series_description).
struct RSNASeriesDescriptions {
    private var kinds: [String: SeriesKind] = [:]
    var error: String?
    var isEmpty: Bool { kinds.isEmpty }

    func kind(study: String, series: String) -> SeriesKind? { kinds["\(study)/\(series)"] }

    /// Loads the CSV from `root` (or an absent, empty table when there is none).
    static func load(root: String) -> RSNASeriesDescriptions {
        var table = RSNASeriesDescriptions()
        for name in ["train_series_descriptions.csv", "test_series_descriptions.csv"] {
            let path = root + "/" + name
            guard FileManager.default.fileExists(atPath: path) else { continue }
            do {
                let rows = try CSVTable.read(path)
                guard let s = rows.column("study_id"), let r = rows.column("series_id"), let d = rows.column("series_description") else {
                    table.error = "\(name): needs the columns study_id, series_id, series_description"
                    continue
                }
                for row in rows.rows where row.count > max(s, r, d) {
                    let kind = SeriesKind(rawValue: row[d]) ?? .other
                    table.kinds["\(row[s])/\(row[r])"] = kind
                }
            } catch {
                table.error = "\(name): \(error)"
            }
        }
        return table
    }
}
