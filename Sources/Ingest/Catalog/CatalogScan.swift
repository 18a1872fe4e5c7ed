import Core
import Foundation
import Synchronization

/// One scan of an archive, step by step (`CatalogScanner.scan` runs them in order):
/// 1. `sortFiles`: tables read, files outside the RSNA layout, hidden files, and the candidate images;
/// 2.–4. `readStudies`, in batches of whole studies (only one batch's headers are held at a time):
///    2. every candidate's header (or whole decode) on all cores, recorded in the header index as it is read;
///    3. `group`: usable images into studies and series by the one grouping rule (`StudyGrouping`),
///       every other file skipped with its reason;
///    4. `makeStudies`: stacks, classification and the choice of series to fuse, study by study;
/// 5. `catalog`: the fate of every file, and the catalog itself.
struct CatalogScan {
    let root: String
    let descriptions: RSNASeriesDescriptions
    /// "study/series" (canonical ids) of every series train_label_coordinates.csv names (its problems are reported by
    /// `RSNATables`, which reads it for the labels): the series carrying a study's label coordinates win a choice.
    let labelled: Set<String>
    let walker: FileWalker
    /// The RSNA layout (train_series_descriptions.csv at the root) groups by folder; otherwise by UID.
    /// A series-descriptions table that cannot be used still makes the layout RSNA's (its problems are named): the
    /// folders keep naming the studies, so train.csv's rows still find them.
    var rsna: Bool { descriptions.isPresent }

    private(set) var problems: [CatalogProblem] = []
    private(set) var skipped: [CatalogProblem] = []
    private(set) var ignoredFiles: [CatalogProblem] = []
    private(set) var warnings: [CatalogProblem] = []
    private(set) var tablesUsed = 0
    /// Files read as DICOM (absolute paths, walk order).
    private(set) var candidates: [String] = []
    private(set) var imageFiles = 0
    private(set) var imageFrames = 0
    /// What step 5 needs of the studies made so far.
    private(set) var tally = StudyTally()

    /// Walks `root` and reads the RSNA series descriptions if there are any.
    init(root: String) {
        self.root = (root as NSString).standardizingPath
        descriptions = RSNASeriesDescriptions.load(root: self.root)
        labelled = descriptions.isPresent ? RSNATables.seriesWithCoordinates(root: self.root) : []
        walker = FileWalker(root: self.root)
        problems = walker.problems.map { CatalogProblem(path: relative($0.path), reason: $0.reason) }
        skipped = walker.problems.filter(\.isFile).map { CatalogProblem(path: relative($0.path), reason: $0.reason) }
        problems += descriptions.problems
        ignoredFiles = walker.hidden.map {
            CatalogProblem(path: relative($0), reason: "hidden (its name or a folder's above starts with a dot); not read")
        }
    }

    /// The path relative to the archive root.
    func relative(_ path: String) -> String { CatalogScanner.relative(path, to: root) }

    /// Step 1: tables first, then (in RSNA mode) files outside train_images/{study}/{series}/: neither is
    /// read as an image; every other file is a candidate.
    mutating func sortFiles() {
        for path in walker.files {
            let rel = relative(path)
            let name = String(CatalogScanner.fileName(rel))
            if CatalogScanner.metadataNames.contains(name) {
                if rel == name && CatalogScanner.tablesRead.contains(name) {
                    tablesUsed += 1
                } else {
                    ignoredFiles.append(CatalogProblem(path: rel, reason: rel == name ? "RSNA table ingest does not read (predict checks its row ids)"
                                                                                         : "RSNA table outside the archive root; not read"))
                }
            } else if rsna && CatalogScanner.rsnaIDs(rel) == nil {
                let outside = CatalogProblem(path: rel, reason: "outside the RSNA layout train_images/{study_id}/{series_id}/; not read")
                problems.append(outside)
                skipped.append(outside)
            } else {
                candidates.append(path)
            }
        }
    }

    /// What steps 2–4 read, in counts: the headers themselves are held one batch at a time.
    struct HeaderReading {
        /// Candidates whose header was read (parsed) in this scan.
        var read = 0
        /// Candidates whose header came from the earlier index (stat unchanged).
        var fromIndex = 0
        /// Candidates this scan recorded in its index (every one that could be stat'ed and read).
        var recorded = 0
        /// Of `recorded`, entries read in this scan rather than taken from the earlier index.
        var recordedAnew = 0
        /// True when this scan's index holds exactly the earlier index's entries (every one reused, none new, none
        /// dropped): the file on disk needs no rewrite (its older scan time only makes fewer entries trusted, never a
        /// wrong one).
        var sameAsEarlier = false
        /// False when the index could not be written as the scan went (the next run reads every header again).
        var indexWritten = true
    }

    /// Candidates per batch of steps 2–4. A batch holds whole studies (RSNA layout: a study is a folder); outside that
    /// layout a study may span the tree, so the archive is one batch.
    static let batchFiles = 1024

    /// Steps 2–4, batch by batch, so that a batch's headers are all the scan holds of them (memory flat in the number of
    /// files): each candidate's header (with `decode`, its pixels too, thrown away), read on all cores; the
    /// usable images grouped (step 3) into studies (step 4); each header recorded in `index` as it is read. A candidate
    /// whose stat `earlier` recorded (and trusts) is not read: its recorded header is used. With `pool`, the decode runs
    /// in its supervised workers after the header scan (a crashing decoder costs its file). Studies come out by id.
    mutating func readStudies(decode: Bool, earlier: HeaderIndex? = nil, pool: DecoderPool? = nil,
                              index: HeaderIndex.FileWriter? = nil, progress: (@Sendable (Int, Int) -> Void)?) -> ([CatalogStudy], HeaderReading) {
        let (studies, _, reading) = try! readStudies(decode: decode, earlier: earlier, pool: pool, index: index, spill: nil, progress: progress)
        return (studies, reading)
    }

    /// `readStudies`, each study written to `spill` as soon as it is made (nil: kept in memory): the studies come back
    /// as the spill's entries, and what step 5 needs of them is tallied on the way (`tally`). Throws only for the spill.
    mutating func readStudies(decode: Bool, earlier: HeaderIndex?, pool: DecoderPool?, index: HeaderIndex.FileWriter?,
                              spill: StudySpill?, progress: (@Sendable (Int, Int) -> Void)?)
        throws -> (studies: [CatalogStudy], spilled: [StudySpill.Entry], reading: HeaderReading) {
        var reading = HeaderReading()
        var studies: [CatalogStudy] = []
        var spilled: [StudySpill.Entry] = []
        var fileUIDs: [String: [String]] = [:]
        var places: [String: Set<String>] = [:]
        var index = index
        let done = Mutex(0), decoded = Mutex(0)
        for batch in batches() {
            var results = readEachHeader(batch, decode: decode && pool == nil, earlier: earlier, pool: pool, reading: &reading, index: &index,
                                         done: done, progress: progress)
            if decode, let pool { decodeInWorkers(batch, &results, pool: pool, done: decoded, progress: progress) }
            let grouping = group(batch, results)
            places.merge(grouping.placesOfUID) { $0.union($1) }
            for (study, uids) in makeStudies(grouping) {
                tally.add(study)
                if let spill { spilled.append(try spill.append(study)) } else { studies.append(study) }
                fileUIDs[study.studyID] = uids
            }
        }
        func notes(_ id: String) -> [String] {
            StudyGrouping.placementNotes(studyKey: id, uids: fileUIDs[id] ?? [], places: places, rsna: rsna)
        }
        for i in studies.indices { studies[i].notes += notes(studies[i].studyID) }
        for i in spilled.indices { spilled[i].laterNotes = notes(spilled[i].studyID) }
        if index == nil { reading.indexWritten = false }
        reading.sameAsEarlier = earlier != nil && reading.recordedAnew == 0 && reading.recorded == earlier!.count
        return (studies.sorted { CatalogScanner.numericOrder($0.studyID, $1.studyID) },
                spilled.sorted { CatalogScanner.numericOrder($0.studyID, $1.studyID) }, reading)
    }

    /// What step 5 needs of the studies, tallied as each is made (so that spilled studies need not be read again).
    struct StudyTally {
        var ignoredSeries: [IgnoredSeries] = []
        /// Files left out one by one (duplicates of another file of their series).
        var ignoredFiles: [CatalogProblem] = []
        /// Image files of the series to fuse.
        var toFuse = 0
        /// Study id → its series' folder keys (RSNA layout), to find the description rows that name no folder.
        var seriesOfStudy: [String: Set<String>] = [:]

        mutating func add(_ study: CatalogStudy) {
            for s in study.series {
                if let reason = s.ignoredBecause {
                    ignoredSeries.append(IgnoredSeries(studyID: study.studyID, seriesID: s.seriesID, kind: s.kind,
                                                       files: s.fileCount, reason: reason))
                } else {
                    toFuse += s.imageFiles.count
                    ignoredFiles += s.droppedFiles.map { CatalogProblem(path: $0, reason: "duplicate of another file of series \(s.seriesID)") }
                }
            }
            seriesOfStudy[study.studyID, default: []].formUnion(study.series.map { RSNAID.folderKey($0.seriesID) })
        }
    }

    /// The candidates (indices, walk order within a study) in batches of whole studies of about `batchFiles`.
    private func batches() -> [[Int]] {
        guard rsna else { return [Array(candidates.indices)] }
        var byStudy: [String: [Int]] = [:]
        for i in candidates.indices { byStudy[CatalogScanner.rsnaIDs(relative(candidates[i]))?.study ?? "", default: []].append(i) }
        var batches: [[Int]] = [[]]
        for key in byStudy.keys.sorted() {
            if batches[batches.count - 1].count >= Self.batchFiles { batches.append([]) }
            batches[batches.count - 1] += byStudy[key]!
        }
        return batches
    }

    /// The decode of `batch`'s readable files in `pool`'s workers; a file whose decode fails becomes that failure.
    private func decodeInWorkers(_ batch: [Int], _ results: inout [Result<DicomHeader, GDCMError>], pool: DecoderPool,
                                 done: borrowing Mutex<Int>, progress: (@Sendable (Int, Int) -> Void)?) {
        let files = batch.map { candidates[$0] }
        let readable = files.indices.filter { if case .success = results[$0] { return true } else { return false } }
        let chunk = 32
        let chunks = (readable.count + chunk - 1) / chunk
        var reasons = [String?](repeating: nil, count: readable.count)
        let total = candidates.count
        reasons.withUnsafeMutableBufferPointer { out in
            nonisolated(unsafe) let out = out
            DispatchQueue.concurrentPerform(iterations: chunks) { c in
                let part = Array(readable[(c * chunk)..<min(readable.count, (c + 1) * chunk)])
                for (k, reason) in pool.check(files: part.map { files[$0] }).enumerated() { out[c * chunk + k] = reason }
                let d = done.withLock { $0 += part.count; return $0 }
                progress?(d, total)
            }
        }
        for (k, i) in readable.enumerated() {
            if let reason = reasons[k] { results[i] = .failure(GDCMError(path: files[i], message: reason)) }
        }
    }

    /// Step 2 for one batch: its headers in batch order; each one read (not reused) or reused is counted in `reading`
    /// and recorded in `index` (which is dropped, and the scan goes on, when it cannot be written).
    private func readEachHeader(_ batch: [Int], decode: Bool, earlier: HeaderIndex?, pool: DecoderPool?, reading: inout HeaderReading,
                                index: inout HeaderIndex.FileWriter?, done: borrowing Mutex<Int>,
                                progress: (@Sendable (Int, Int) -> Void)?) -> [Result<DicomHeader, GDCMError>] {
        let files = batch.map { candidates[$0] }
        let total = candidates.count
        var results = [Result<DicomHeader, GDCMError>?](repeating: nil, count: files.count)
        var entries = [HeaderIndex.Entry?](repeating: nil, count: files.count)
        var reused = [Bool](repeating: false, count: files.count)
        let chunk = 64
        let chunks = (files.count + chunk - 1) / chunk
        let root = root
        results.withUnsafeMutableBufferPointer { out in
            entries.withUnsafeMutableBufferPointer { recorded in
                reused.withUnsafeMutableBufferPointer { fromIndex in
                    // Each chunk's thread writes only its own files' slots.
                    nonisolated(unsafe) let out = out, recorded = recorded, fromIndex = fromIndex
                    DispatchQueue.concurrentPerform(iterations: chunks) { c in
                        var toRead: [(index: Int, stat: FileIdentity?)] = []
                        for i in (c * chunk)..<min(files.count, (c + 1) * chunk) {
                            // The stat comes before the read: a file changed after it shows another stat next time.
                            let stat = FileIdentity(path: files[i])
                            let rel = CatalogScanner.relative(files[i], to: root)
                            if let stat, let entry = earlier?.trusted(rel, stat: stat), let known = entry.result(path: files[i]) {
                                out[i] = known
                                recorded[i] = entry
                                fromIndex[i] = true
                                continue
                            }
                            toRead.append((i, stat))
                        }
                        // In the decode workers when there are some (GDCM's parser meets every file, damaged or not).
                        let read = pool?.readHeaders(files: toRead.map { files[$0.index] }) ?? toRead.map { Self.read(files[$0.index], decode: decode) }
                        for (k, (i, stat)) in toRead.enumerated() {
                            out[i] = read[k]
                            // A file that could not be read is not recorded: its error may be passing (I/O, too many
                            // open files), and a recorded one would stay until the file changed.
                            if let stat, case .success(let h) = read[k] {
                                recorded[i] = HeaderIndex.Entry(stat: stat, header: HeaderSummary(h))
                            }
                        }
                        let d = done.withLock { $0 += min(chunk, files.count - c * chunk); return $0 }
                        progress?(d, total)
                    }
                }
            }
        }
        let fromIndex = reused.filter { $0 }.count
        reading.fromIndex += fromIndex
        reading.read += files.count - fromIndex
        let kept = entries.indices.compactMap { i in entries[i].map { (path: relative(files[i]), entry: $0) } }
        reading.recorded += kept.count
        reading.recordedAnew += entries.indices.filter { entries[$0] != nil && !reused[$0] }.count
        do { try index?.append(kept) } catch {
            index?.discard()
            index = nil
        }
        return results.map { $0! }
    }

    private static func read(_ file: String, decode: Bool) -> Result<DicomHeader, GDCMError> {
        do {
            return .success(decode ? try DicomReader.readImage(file).header : try DicomReader.readHeader(file))
        } catch let e as GDCMError {
            return .failure(e)
        } catch {
            return .failure(GDCMError(path: file, message: "\(error)"))
        }
    }

    /// Step 3 for one batch: usable images into the grouping; unreadable and unusable files skipped with their reason.
    mutating func group(_ batch: [Int], _ results: [Result<DicomHeader, GDCMError>]) -> StudyGrouping {
        var grouping = StudyGrouping(rsna: rsna)
        for (k, r) in results.enumerated() {
            let rel = relative(candidates[batch[k]])
            switch r {
            case .failure(let e):
                problems.append(CatalogProblem(path: rel, reason: e.message))
                skipped.append(CatalogProblem(path: rel, reason: e.message))
            case .success(let h):
                for w in h.warnings { warnings.append(CatalogProblem(path: rel, reason: w)) }
                if let p = h.headerProblem {
                    problems.append(CatalogProblem(path: rel, reason: p.description))
                    skipped.append(CatalogProblem(path: rel, reason: p.description))
                    continue
                }
                imageFiles += 1
                imageFrames += max(h.framePositions.count, 1)
                grouping.add(h, relativePath: rel)
            }
        }
        return grouping
    }

    /// Step 4 for one batch: each group's series (visited in sorted key order), their selection and order, with the
    /// Study Instance UIDs of the study's files (most frequent first). A series of another study's UID is a problem of
    /// the scan.
    mutating func makeStudies(_ grouping: StudyGrouping) -> [(CatalogStudy, [String])] {
        var studies: [(CatalogStudy, [String])] = []
        let (root, rsna, descriptions, labelledSeries) = (root, rsna, descriptions, labelled)
        for group in grouping.studies {
            var series = group.series.map { s in
                CatalogScanner.makeSeries(seriesID: s.id, seriesUID: s.seriesInstanceUID, studyUID: s.studyInstanceUID, headers: s.headers,
                                          root: root, descriptions: descriptions, rsnaStudy: rsna ? group.id : nil, notes: s.notes)
            }
            let study = RSNAID.folderKey(group.id)
            let listed = { (id: String) in rsna && descriptions.kind(study: group.id, series: id) != nil }
            let labelled = { (id: String) in labelledSeries.contains("\(study)/\(RSNAID.folderKey(id))") }
            let own = CatalogScanner.ownStudyUID(studyID: group.id, series: series, listed: listed)
            let folder = { (s: CatalogSeries) in
                rsna ? "train_images/\(group.id)/\(s.seriesID)" : ((s.imageFiles.first ?? s.seriesID) as NSString).deletingLastPathComponent
            }
            problems += CatalogScanner.selectSeries(&series, studyUID: own, folder: folder, listed: listed, labelled: labelled)
            series.sort { ($0.kind.channel ?? 9, $0.seriesID) < ($1.kind.channel ?? 9, $1.seriesID) }
            studies.append((CatalogStudy(studyID: group.id, studyInstanceUID: own, series: series, notes: group.notes), group.fileUIDs))
        }
        return studies
    }

    /// Step 5: the fate of every file (tables, skipped, ignored series and files, images to fuse) and the catalog, from
    /// the studies' tally (`studies`: the studies kept in memory, none when they were spilled).
    func catalog(_ studies: [CatalogStudy]) -> Catalog {
        let ignoredSeries = tally.ignoredSeries
        let ignored = ignoredFiles + tally.ignoredFiles
        let toFuse = tally.toFuse
        var problems = self.problems
        if rsna {
            // Rows naming a study or series with no folder: named, as every label table's are.
            let series = tally.seriesOfStudy
            let studyOf = Dictionary(series.keys.map { (RSNAID.folderKey($0), $0) }, uniquingKeysWith: { a, b in CatalogScanner.numericOrder(a, b) ? a : b })
            for row in descriptions.rows {
                let folder = studyOf[row.study] ?? row.study
                if let known = series[folder], known.contains(row.series) { continue }
                let study = series[folder] == nil ? "study \(row.study)" : "study \(row.study) series \(row.series)"
                let path = series[folder] == nil ? "train_images/\(folder)" : "train_images/\(folder)/\(row.series)"
                // A folder whose files are all unreadable is named by those files' own problems.
                guard !FileManager.default.fileExists(atPath: root + "/" + path) else { continue }
                problems.append(CatalogProblem(path: row.file, reason: "line \(row.line): \(study): no folder \(path); the row is not used",
                                               line: row.line))
            }
        }
        let accounting = FileAccounting(
            filesFound: walker.files.count + walker.hidden.count + walker.problems.filter(\.isFile).count,
            filesUsed: tablesUsed + toFuse, filesSkipped: skipped.count,
            filesIgnored: ignored.count + ignoredSeries.reduce(0) { $0 + $1.files },
            skipped: skipped.sorted { $0.path < $1.path }, ignoredSeries: ignoredSeries,
            ignoredFiles: ignored.sorted { $0.path < $1.path })
        return Catalog(mode: rsna ? "rsna" : "tags", root: root, fileCount: candidates.count, imageCount: imageFiles,
                       frameCount: imageFrames, studies: studies,
                       problems: problems.sorted { ($0.path, $0.line ?? 0) < ($1.path, $1.line ?? 0) },
                       warnings: warnings, accounting: accounting)
    }
}
