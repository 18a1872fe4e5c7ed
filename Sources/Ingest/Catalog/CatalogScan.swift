import Foundation

/// One scan of an archive, step by step (`CatalogScanner.scan` runs them in order):
/// 1. `sortFiles`: tables read, files outside the RSNA layout, hidden files, and the candidate images;
/// 2. `readHeaders`: every candidate's header (or whole decode) on all cores;
/// 3. `group`: usable images into studies and series by the one grouping rule (`StudyGrouping`),
///    every other file skipped with its reason;
/// 4. `makeStudies`: stacks, classification and the choice of series to fuse, study by study;
/// 5. `catalog`: the fate of every file, and the catalog itself.
struct CatalogScan {
    let root: String
    let descriptions: RSNASeriesDescriptions
    let walker: FileWalker
    /// The RSNA layout (train_series_descriptions.csv at the root) groups by folder; otherwise by UID.
    var rsna: Bool { !descriptions.isEmpty }

    private(set) var problems: [CatalogProblem] = []
    private(set) var skipped: [CatalogProblem] = []
    private(set) var ignoredFiles: [CatalogProblem] = []
    private(set) var warnings: [CatalogProblem] = []
    private(set) var tablesUsed = 0
    /// Files read as DICOM (absolute paths, walk order).
    private(set) var candidates: [String] = []
    private(set) var imageFiles = 0
    private(set) var imageFrames = 0

    /// Walks `root` and reads the RSNA series descriptions if there are any.
    init(root: String) {
        self.root = (root as NSString).standardizingPath
        descriptions = RSNASeriesDescriptions.load(root: self.root)
        walker = FileWalker(root: self.root)
        problems = walker.problems.map { CatalogProblem(path: relative($0.path), reason: $0.reason) }
        skipped = walker.problems.filter(\.isFile).map { CatalogProblem(path: relative($0.path), reason: $0.reason) }
        if let err = descriptions.error { problems.append(CatalogProblem(path: "train_series_descriptions.csv", reason: err)) }
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
            let name = (rel as NSString).lastPathComponent
            if CatalogScanner.metadataNames.contains(name) {
                if rel == name && CatalogScanner.tablesRead.contains(name) {
                    tablesUsed += 1
                } else {
                    ignoredFiles.append(CatalogProblem(path: rel, reason: rel == name ? "RSNA table fuse3d does not read"
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

    /// Step 2: every candidate's header (with `decode`, its pixels too, thrown away), in candidate order.
    func readHeaders(decode: Bool, progress: ((Int, Int) -> Void)?) -> [Result<DicomHeader, GDCMError>] {
        let files = candidates
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
        return results.map { $0! }
    }

    /// Step 3: usable images into the grouping; unreadable and unusable files skipped with their reason.
    mutating func group(_ results: [Result<DicomHeader, GDCMError>]) -> StudyGrouping {
        var grouping = StudyGrouping(rsna: rsna)
        for (i, r) in results.enumerated() {
            let rel = relative(candidates[i])
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

    /// Step 4: each group's series (visited in sorted key order), their selection and order; studies by id.
    func makeStudies(_ grouping: StudyGrouping) -> [CatalogStudy] {
        var studies: [CatalogStudy] = []
        for group in grouping.studies {
            var series = group.series.map { s in
                CatalogScanner.makeSeries(seriesID: s.id, seriesUID: s.seriesInstanceUID, headers: s.headers, root: root,
                                          descriptions: descriptions, rsnaStudy: rsna ? group.id : nil, notes: s.notes)
            }
            CatalogScanner.selectSeries(&series)
            series.sort { ($0.kind.channel ?? 9, $0.seriesID) < ($1.kind.channel ?? 9, $1.seriesID) }
            studies.append(CatalogStudy(studyID: group.id, studyInstanceUID: group.studyInstanceUID, series: series,
                                        notes: group.notes))
        }
        return studies.sorted { CatalogScanner.numericOrder($0.studyID, $1.studyID) }
    }

    /// Step 5: the fate of every file (tables, skipped, ignored series and files, images to fuse) and the catalog.
    func catalog(_ studies: [CatalogStudy]) -> Catalog {
        var ignoredSeries: [IgnoredSeries] = []
        var ignored = ignoredFiles
        var toFuse = 0
        for study in studies {
            for s in study.series {
                if let reason = s.ignoredBecause {
                    ignoredSeries.append(IgnoredSeries(studyID: study.studyID, seriesID: s.seriesID, kind: s.kind,
                                                       files: s.fileCount, reason: reason))
                } else {
                    toFuse += s.imageFiles.count
                    ignored += s.droppedFiles.map { CatalogProblem(path: $0, reason: "duplicate of another file of series \(s.seriesID)") }
                }
            }
        }
        let accounting = FileAccounting(
            filesFound: walker.files.count + walker.hidden.count + walker.problems.filter(\.isFile).count,
            filesUsed: tablesUsed + toFuse, filesSkipped: skipped.count,
            filesIgnored: ignored.count + ignoredSeries.reduce(0) { $0 + $1.files },
            skipped: skipped.sorted { $0.path < $1.path }, ignoredSeries: ignoredSeries,
            ignoredFiles: ignored.sorted { $0.path < $1.path })
        return Catalog(mode: rsna ? "rsna" : "tags", root: root, fileCount: candidates.count, imageCount: imageFiles,
                       frameCount: imageFrames, studies: studies, problems: problems.sorted { $0.path < $1.path },
                       warnings: warnings, accounting: accounting)
    }
}
