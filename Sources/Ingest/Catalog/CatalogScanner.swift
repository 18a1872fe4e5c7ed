import Foundation

/// Builds a `Catalog` from an archive folder: header-only reads of every file, grouping into studies and
/// series (`StudyGrouping`), stack splitting by orientation and position, series classification.
public enum CatalogScanner {
    /// Files the scanner reads as metadata, not images.
    public static let metadataNames: Set<String> = [
        "train.csv", "train_series_descriptions.csv", "train_label_coordinates.csv",
        "test_series_descriptions.csv", "sample_submission.csv",
    ]

    /// Slices whose normals differ by more than this angle belong to different stacks.
    static let maxStackAngleDegrees = 1.0

    /// RSNA tables ingest reads when they sit at the archive root (sample_submission.csv is only for predict).
    static let tablesRead: Set<String> = [
        "train.csv", "train_series_descriptions.csv", "train_label_coordinates.csv", "test_series_descriptions.csv",
    ]

    /// Folders of the RSNA layout that hold `{study_id}/{series_id}/{file}`.
    static let rsnaImageFolders: Set<String> = ["train_images", "test_images"]

    /// Fewer slices than this cannot make a stack worth fusing; such a series is ignored.
    static let minimumSlices = 3

    /// Images of one stack closer than this (mm) lie at one position: one slice, or a re-acquisition of it.
    public static let samePositionMillimetres = 0.01

    /// Scans `root`. With `decode`, every image's pixel data is decoded too (and thrown away), so that
    /// files whose pixels are broken show up as problems. `progress(done, total)` reports files read.
    ///
    /// Every regular file under `root` gets a fate (`Catalog.accounting`): a table read, a file skipped
    /// for a problem its header shows (or its decode, with `decode`), a file of an ignored series or
    /// a duplicate, or an image of a series to fuse.
    public static func scan(root: String, decode: Bool = false, isolation: DecoderIsolation = .none,
                            progress: (@Sendable (Int, Int) -> Void)? = nil) -> Catalog {
        var scan = CatalogScan(root: root)
        scan.sortFiles()
        let (studies, _) = scan.readStudies(decode: decode, pool: DecoderPool(isolation), progress: progress)
        return scan.catalog(studies)
    }

    /// A header-only scan of `root` that reuses the headers `earlier` recorded for files whose stat is unchanged
    /// (see `HeaderIndex`) and records each header in `index` as it is read; the catalog is the one `scan(root:)` makes.
    /// Also returns how many headers were read and reused, and whether `index` was written to the end.
    static func scan(root: String, reusing earlier: HeaderIndex?, index: HeaderIndex.FileWriter? = nil, pool: DecoderPool? = nil,
                     progress: (@Sendable (Int, Int) -> Void)? = nil) -> (catalog: Catalog, headers: CatalogScan.HeaderReading) {
        var scan = CatalogScan(root: root)
        scan.sortFiles()
        let (studies, reading) = scan.readStudies(decode: false, earlier: earlier, pool: pool, index: index, progress: progress)
        return (scan.catalog(studies), reading)
    }

    /// The ingest's scan: `scan(root:reusing:index:pool:progress:)` with each study written to `spill` as it is made
    /// (memory flat in the number of files); the catalog holds no studies, `spilled` says where each lies, by id.
    static func scan(root: String, reusing earlier: HeaderIndex?, index: HeaderIndex.FileWriter?, pool: DecoderPool?, spill: StudySpill,
                     progress: (@Sendable (Int, Int) -> Void)? = nil)
        throws -> (catalog: Catalog, spilled: [StudySpill.Entry], headers: CatalogScan.HeaderReading) {
        var scan = CatalogScan(root: root)
        scan.sortFiles()
        let (_, spilled, reading) = try scan.readStudies(decode: false, earlier: earlier, pool: pool, index: index, spill: spill, progress: progress)
        return (scan.catalog([]), spilled, reading)
    }

    /// The study's own Study Instance UID, by one rule, first that decides:
    /// 1. the UID of the series train_series_descriptions.csv lists for the study (most of them, if they disagree);
    /// 2. the UID written as the study's id (Kaggle's files carry the study_id as their Study Instance UID);
    /// 3. the UID most of its series carry, then most of its files, then the smallest.
    static func ownStudyUID(studyID: String, series: [CatalogSeries], listed: (String) -> Bool) -> String {
        let listedUIDs = series.filter { listed($0.seriesID) }.map(\.studyInstanceUID)
        if !listedUIDs.isEmpty { return StudyGrouping.counts(listedUIDs)[0].value }
        let uids = Set(series.map(\.studyInstanceUID))
        if let named = uids.first(where: { RSNAID.canonical($0) != nil && RSNAID.canonical($0) == RSNAID.canonical(studyID) }) { return named }
        let bySeries = Dictionary(grouping: series, by: \.studyInstanceUID)
        return bySeries.max { a, b in
            (a.value.count, a.value.reduce(0) { $0 + $1.fileCount }, b.key) < (b.value.count, b.value.reduce(0) { $0 + $1.fileCount }, a.key)
        }?.key ?? ""
    }

    /// Decides which series of a study are fused, writing the reason on each one that is not (data-schema.md,
    /// "Choosing a study's series"):
    /// - a series whose Study Instance UID is not the study's own (`ownStudyUID`) is never fused: it is another
    ///   study's series filed in this folder, and a problem naming both UIDs (returned, one per such series);
    /// - series of no fused kind are ignored with their classification reason;
    /// - a series of a fused kind with fewer than `minimumSlices` slices is ignored;
    /// - every Axial T2 series is fused (a study often has one per block of levels);
    /// - of several Sagittal T1 (or Sagittal T2/STIR) series, one is fused: a series train_series_descriptions.csv
    ///   lists for the study wins over one classified from its tags; then one carrying the study's label coordinates
    ///   wins; then the one covering most of the spine (the largest superior–inferior extent, then the most slices,
    ///   then the smallest series id).
    /// `listed` and `labelled` say whether a series id is listed for the study, and carries its label coordinates.
    static func selectSeries(_ series: inout [CatalogSeries], studyUID: String, folder: (CatalogSeries) -> String,
                             listed: (String) -> Bool = { _ in false }, labelled: (String) -> Bool = { _ in false }) -> [CatalogProblem] {
        var problems: [CatalogProblem] = []
        for i in series.indices {
            if series[i].studyInstanceUID != studyUID {
                let s = series[i]
                series[i].ignoredBecause = "another study's series: its Study Instance UID \(s.studyInstanceUID) is not the study's own "
                    + "(\(studyUID)); never fused"
                problems.append(CatalogProblem(path: folder(s), reason: "series \(s.seriesID) (\(s.kind.rawValue), \(s.fileCount) files) carries "
                    + "Study Instance UID \(s.studyInstanceUID), not the study's own \(studyUID): another study's series filed here; not fused"
                    + (labelled(s.seriesID) ? ", although label coordinates name it" : "")))
            } else if series[i].kind.channel == nil {
                series[i].ignoredBecause = "\(series[i].kind.rawValue): \(series[i].kindReason)"
            } else if series[i].sliceCount < minimumSlices {
                series[i].ignoredBecause = "too few slices (\(series[i].sliceCount); at least \(minimumSlices) are needed)"
            }
        }
        for kind in [SeriesKind.sagittalT1, .sagittalT2] {
            let candidates = series.indices.filter { series[$0].kind == kind && series[$0].ignoredBecause == nil }
            guard candidates.count > 1 else { continue }
            func rank(_ s: CatalogSeries) -> (Bool, Bool, Double, Int) {
                (listed(s.seriesID), labelled(s.seriesID), (s.superiorInferiorExtent * 10).rounded(), s.sliceCount)
            }
            let chosen = candidates.max { a, b in
                let x = series[a], y = series[b]
                let rx = rank(x), ry = rank(y)
                return (rx.0 ? 1 : 0, rx.1 ? 1 : 0, rx.2, rx.3, y.seriesID) < (ry.0 ? 1 : 0, ry.1 ? 1 : 0, ry.2, ry.3, x.seriesID)
            }!
            let w = series[chosen]
            for i in candidates where i != chosen {
                let s = series[i]
                if listed(w.seriesID) && !listed(s.seriesID) {
                    series[i].ignoredBecause = "a second \(kind.rawValue) series: train_series_descriptions.csv lists \(w.seriesID) for this "
                        + "study and not this one (a listed series wins over one classified from its tags)"
                } else if labelled(w.seriesID) && !labelled(s.seriesID) {
                    series[i].ignoredBecause = "a second \(kind.rawValue) series: \(w.seriesID) carries the study's label coordinates and this one "
                        + "does not"
                } else {
                    series[i].ignoredBecause = String(
                        format: "a second %@ series: %@ covers more of the spine (%.0f mm superior–inferior, %d slices, against %.0f mm, %d slices)",
                        kind.rawValue, w.seriesID, w.superiorInferiorExtent, w.sliceCount, s.superiorInferiorExtent, s.sliceCount)
                }
            }
        }
        return problems
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

    /// RSNA ids from a path `train_images/{study_id}/{series_id}/{file}` (or test_images); nil elsewhere.
    static func rsnaIDs(_ relativePath: String) -> (study: String, series: String)? {
        // On the UTF-8 bytes ('/' is one byte and never inside another character's): splitting by Character costs
        // grapheme breaking, ~40,000 instructions a path (issue 20's warm profile).
        let parts = relativePath.utf8.split(separator: UInt8(ascii: "/"), maxSplits: 4)
        guard parts.count == 4, let folder = String(parts[0]), rsnaImageFolders.contains(folder),
              let study = String(parts[1]), let series = String(parts[2]) else { return nil }
        return (study, series)
    }

    /// The last component of a path without trailing slash ("a/b/c.dcm" → "c.dcm"), without NSString's bridging.
    static func fileName(_ path: String) -> Substring {
        guard let slash = path.utf8.lastIndex(of: UInt8(ascii: "/")) else { return path[...] }
        return path[path.utf8.index(after: slash)...]
    }

    /// One series from its files' headers (path order): stacks from every frame, the plane, the kind (the
    /// RSNA table's for `rsnaStudy`'s folder, else the tags'), the matrix and spacing of its first frame.
    static func makeSeries(seriesID: String, seriesUID: String, studyUID: String, headers: [DicomHeader], root: String,
                           descriptions: RSNASeriesDescriptions, rsnaStudy: String?, notes groupingNotes: [String]) -> CatalogSeries {
        let first = headers[0]
        var notes = groupingNotes

        // Every frame becomes a slice candidate; drop duplicate SOP instances (files at one position stay: see `splitStacks`).
        var seenUIDs = Set<String>()
        var frames: [(image: CatalogImage, geometry: SliceGeometry)] = []
        for h in headers {
            guard seenUIDs.insert(h.sopInstanceUID).inserted else {
                notes.append("duplicate SOP Instance UID \(h.sopInstanceUID): \(relative(h.path, to: root)) dropped")
                continue
            }
            for f in 0..<max(h.framePositions.count, 1) {
                guard case .success(let g) = h.geometry(frame: f) else { continue }
                frames.append((CatalogImage(path: relative(h.path, to: root), frame: f, sopInstanceUID: h.sopInstanceUID,
                                            instanceNumber: h.instanceNumber, position: g.position,
                                            stackID: f < h.frameGroups.count ? h.frameGroups[f].stackID : nil), g))
            }
        }
        let stacks = splitStacks(frames, notes: &notes)
        let inStacks = Set(stacks.flatMap { $0.images.map(\.path) })
        let dropped = Set(headers.map { relative($0.path, to: root) }).subtracting(inStacks).sorted()
        var lowest = Double.infinity, highest = -Double.infinity
        for (_, g) in frames {
            for (r, c) in [(0.0, 0.0), (0.0, Double(g.columns)), (Double(g.rows), 0.0), (Double(g.rows), Double(g.columns))] {
                let z = g.patientPosition(row: r, column: c).z
                lowest = min(lowest, z); highest = max(highest, z)
            }
        }
        let planes = Set(stacks.map(\.plane))
        let plane: Plane = planes.count == 1 ? planes.first! : (planes.isEmpty ? .unknown : .mixed)

        let kind: SeriesKind
        let reason: String
        if let rsnaStudy, let d = descriptions.kind(study: rsnaStudy, series: seriesID) {
            kind = d; reason = "train_series_descriptions.csv"
        } else {
            let decision = SeriesClassifier.classify(description: first.seriesDescription, plane: plane, echoTime: first.echoTime,
                                                     repetitionTime: first.repetitionTime, inversionTime: first.inversionTime,
                                                     imageType: first.imageType, sliceCount: frames.count)
            kind = decision.kind; reason = decision.reason
        }
        // The series' matrix, spacing and thickness are its first frame's (an enhanced file keeps them in its functional groups).
        let g0 = frames.first?.geometry
        let sp = g0.map { ($0.rowSpacing, $0.columnSpacing) } ?? first.pixelSpacing ?? (0, 0)
        let rows = g0?.rows ?? first.rows, columns = g0?.columns ?? first.columns
        return CatalogSeries(
            seriesID: seriesID, seriesInstanceUID: seriesUID, studyInstanceUID: studyUID, description: first.seriesDescription,
            sopClasses: Array(Set(headers.map(\.sopClassName))).sorted(),
            transferSyntaxes: Array(Set(headers.map { TransferSyntax.name(of: $0.transferSyntaxUID) })).sorted(), frameCount: frames.count,
            kind: kind, kindReason: reason,
            plane: plane, stacks: stacks, rows: rows, columns: columns, pixelSpacing: [sp.0, sp.1],
            sliceThickness: g0.map(\.thickness) ?? first.sliceThickness,
            fieldOfView: [Double(rows) * sp.0, Double(columns) * sp.1],
            echoTime: first.echoTime, repetitionTime: first.repetitionTime, inversionTime: first.inversionTime, notes: notes,
            droppedFiles: dropped, superiorInferiorExtent: highest >= lowest ? highest - lowest : 0, ignoredBecause: nil)
    }

    /// Groups slices into stacks: same orientation (within `maxStackAngleDegrees`) and the same StackID
    /// (enhanced files' Frame Content; none for classic files), ordered along the normal, split where a gap
    /// exceeds twice the stack's median spacing. Files at one position (within `samePositionMillimetres`) stay
    /// together, in path order, as one slice of the stack (`CatalogStack.slices`): whether they are one image or a
    /// re-acquisition is known only from their pixels, when they are decoded (`SeriesLoader`).
    static func splitStacks(_ frames: [(image: CatalogImage, geometry: SliceGeometry)], notes: inout [String]) -> [CatalogStack] {
        let cosLimit = cos(maxStackAngleDegrees * .pi / 180)
        var clusters: [[(image: CatalogImage, geometry: SliceGeometry)]] = []
        for f in frames {
            if let i = clusters.firstIndex(where: { c in
                let a = c[0].geometry
                return a.normal.dot(f.geometry.normal) > cosLimit && a.rowDirection.dot(f.geometry.rowDirection) > cosLimit
                    && c[0].image.stackID == f.image.stackID
            }) {
                clusters[i].append(f)
            } else {
                clusters.append([f])
            }
        }
        var stacks: [CatalogStack] = []
        for cluster in clusters {
            let normal = cluster[0].geometry.normal
            let sorted = cluster.sorted { ($0.image.position.dot(normal), $0.image.path) < ($1.image.position.dot(normal), $1.image.path) }
            // One group per position: its first image (in path order) stands for it in the gap rule.
            var positions: [[(image: CatalogImage, geometry: SliceGeometry)]] = []
            for s in sorted {
                if let lead = positions.last?.first, (s.image.position - lead.image.position).length < samePositionMillimetres {
                    positions[positions.count - 1].append(s)
                } else {
                    positions.append([s])
                }
            }
            for group in positions where group.count > 1 {
                notes.append("\(group.count) files at position \(group[0].image.position): \(group.map(\.image.path).joined(separator: ", ")) "
                    + "(one slice if their pixels are the same, else a re-acquisition: see the study's problems)")
            }
            let offsets = positions.map { $0[0].image.position.dot(normal) }
            let gaps = zip(offsets.dropFirst(), offsets).map { $0 - $1 }
            let median = gaps.isEmpty ? 0 : gaps.sorted()[gaps.count / 2]
            var current: [CatalogImage] = []
            var currentOffsets: [Double] = []
            func close() {
                guard !current.isEmpty else { return }
                let g = zip(currentOffsets.dropFirst(), currentOffsets).map { $0 - $1 }.sorted()
                let spacing = g.isEmpty ? (sorted.first?.geometry.thickness ?? 0) : g[g.count / 2]
                stacks.append(CatalogStack(normal: normal, plane: Plane.of(normal: normal), spacing: spacing, images: current))
                current = []
                currentOffsets = []
            }
            for (i, group) in positions.enumerated() {
                if i > 0, median > 0, gaps[i - 1] > 2 * median { close() }
                current += group.map(\.image)
                currentOffsets.append(offsets[i])
            }
            close()
        }
        return stacks.sorted { ($0.images.first?.position.z ?? 0) > ($1.images.first?.position.z ?? 0) }
    }
}

/// The RSNA `train_series_descriptions.csv` and `test_series_descriptions.csv` (study_id, series_id,
/// series_description), read by `CSVTable`. Descriptions are matched trimmed and in any case ("sagittal t1 ");
/// a description that is none of the three kinds, an id that is not a number, or two rows for one series that
/// disagree is a named problem (file, line, column), and that series is classified from its tags instead.
struct RSNASeriesDescriptions {
    /// One row read: the series it describes and where.
    struct Row {
        var study: String, series: String, file: String, line: Int
    }
    private var kinds: [String: SeriesKind] = [:]
    /// The rows read (for the catalog's check that their studies and series exist).
    private(set) var rows: [Row] = []
    /// Problems of the tables, each with its file, line and column.
    var problems: [CatalogProblem] = []
    /// True when one of the two tables is at the root (the archive is in the RSNA layout), even if it is unusable.
    var isPresent = false
    var isEmpty: Bool { kinds.isEmpty }

    func kind(study: String, series: String) -> SeriesKind? {
        kinds["\(RSNAID.folderKey(study))/\(RSNAID.folderKey(series))"]
    }

    /// The kind a description names: "Sagittal T1", "Sagittal T2/STIR", "Axial T2" in any case, spaces around
    /// them or doubled inside harmless; nil for anything else.
    static func kind(description: String) -> SeriesKind? {
        let key = description.lowercased().split(separator: " ").joined(separator: " ")
        return [SeriesKind.sagittalT1, .sagittalT2, .axialT2].first { $0.rawValue.lowercased() == key }
    }

    /// Loads the tables from `root` (or an absent, empty table when there is none).
    static func load(root: String) -> RSNASeriesDescriptions {
        var table = RSNASeriesDescriptions()
        var lineOf: [String: (file: String, line: Int, kind: SeriesKind)] = [:]
        var disagreeing: Set<String> = []
        for name in ["train_series_descriptions.csv", "test_series_descriptions.csv"] {
            let path = root + "/" + name
            guard FileManager.default.fileExists(atPath: path) else { continue }
            table.isPresent = true
            let csv: CSVTable
            do { csv = try CSVTable.read(path, name: name) } catch {
                table.problems.append(CatalogProblem(path: name, reason: "\(error); every series is classified from its tags"))
                continue
            }
            table.problems += csv.problems
            let needed = ["study_id", "series_id", "series_description"]
            guard let c = csv.columns(needed) else {
                var p = csv.missing(needed)
                p.reason += "; every series is classified from its tags"
                table.problems.append(p)
                continue
            }
            for record in csv.records {
                let cells = record.cells
                guard let study = RSNAID.canonical(cells[c[0]]) else {
                    table.problems.append(csv.problem(record, c[0], "'\(cells[c[0]])' is not a study id (a whole number); the row is not read"))
                    continue
                }
                guard let series = RSNAID.canonical(cells[c[1]]) else {
                    table.problems.append(csv.problem(record, c[1], "'\(cells[c[1]])' is not a series id (a whole number); the row is not read"))
                    continue
                }
                table.rows.append(Row(study: study, series: series, file: name, line: record.line))
                guard let kind = kind(description: cells[c[2]]) else {
                    table.problems.append(csv.problem(record, c[2], "unknown series description '\(cells[c[2]])' (not "
                        + "\([SeriesKind.sagittalT1, .sagittalT2, .axialT2].map(\.rawValue).joined(separator: ", "))); the series is classified from its tags"))
                    continue
                }
                let key = "\(study)/\(series)"
                if let earlier = lineOf[key] {
                    if earlier.kind != kind && !disagreeing.contains(key) {
                        table.problems.append(csv.problem(record, c[2], "series \(series) of study \(study) is '\(earlier.kind.rawValue)' on "
                            + "\(earlier.file) line \(earlier.line); neither row is used, the series is classified from its tags"))
                        disagreeing.insert(key)
                    }
                    continue
                }
                lineOf[key] = (name, record.line, kind)
                table.kinds[key] = kind
            }
        }
        for key in disagreeing { table.kinds[key] = nil }
        return table
    }
}
