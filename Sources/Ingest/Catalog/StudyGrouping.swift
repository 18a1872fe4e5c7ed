import Foundation

/// The one rule that says which files form a study and a series, so that two studies never share a
/// sample id and the answer is the same on every run, whatever the number of workers:
/// - RSNA layout: the folder is the study (`train_images/{study_id}/`) and the series (`{series_id}/`),
///   whatever UIDs the files carry. A folder holding several Study Instance UIDs (a merged or re-sent
///   export) is one study, and one UID under several folders is several studies; both are noted on
///   each study concerned. A series' UIDs are the ones most of its files carry, ties to the smallest; which UID
///   is the study's own, and so which series may be fused, is `CatalogScanner.ownStudyUID`'s rule.
/// - Any other tree: the Study Instance UID is the study and the Series Instance UID the series,
///   wherever the files lie; a study whose files lie under several top folders is noted.
/// Groups come out in sorted key order, and the files of a series in path order.
struct StudyGrouping {
    /// One series: its id (folder or UID), its UID, the Study Instance UID most of its files carry, its files' headers
    /// (path order) and notes.
    struct Series {
        var id: String
        var seriesInstanceUID: String
        var studyInstanceUID: String
        var headers: [DicomHeader]
        var notes: [String]
    }

    /// One study: its id (folder or UID), its UID, its files' UIDs (most frequent first), its series (by id) and notes.
    struct Study {
        var id: String
        var studyInstanceUID: String
        var fileUIDs: [String]
        var series: [Series]
        var notes: [String]
    }

    /// Group by folder (RSNA layout) rather than by UID.
    let rsna: Bool
    /// study key → series key → (relative path, header).
    private var files: [String: [String: [(path: String, header: DicomHeader)]]] = [:]

    /// An empty grouping under the rule for this layout.
    init(rsna: Bool) { self.rsna = rsna }

    /// Adds a usable image at `relativePath` (inside `train_images/{study}/{series}/` in the RSNA layout).
    mutating func add(_ h: DicomHeader, relativePath: String) {
        let key = rsna ? CatalogScanner.rsnaIDs(relativePath).map { ($0.study, $0.series) } : nil
        files[key?.0 ?? h.studyInstanceUID, default: [:]][key?.1 ?? h.seriesInstanceUID, default: []]
            .append((relativePath, h))
    }

    /// Where each Study Instance UID of the grouped files lies: RSNA study folders, or the top folders of a tags archive.
    /// A scan that groups its files batch by batch (`CatalogScan`) merges these to write `placementNotes`.
    var placesOfUID: [String: Set<String>] {
        var places: [String: Set<String>] = [:]
        for (studyKey, series) in files {
            for (_, members) in series {
                for m in members {
                    places[m.header.studyInstanceUID, default: []].insert(rsna ? studyKey : Self.topFolder(m.path))
                }
            }
        }
        return places
    }

    /// The studies in sorted key order, each with its series in sorted key order and the Study Instance UIDs of its
    /// files (most frequent first).
    var studies: [Study] {
        files.keys.sorted().map { studyKey in
            let seriesGroups = files[studyKey]!
            var notes: [String] = []
            let series = seriesGroups.keys.sorted().map { seriesKey -> Series in
                let members = seriesGroups[seriesKey]!.sorted { $0.path < $1.path }
                let uids = Self.counts(members.map(\.header.seriesInstanceUID))
                var seriesNotes: [String] = []
                if uids.count > 1 {
                    seriesNotes.append("folder holds \(uids.count) Series Instance UIDs (\(uids.map { "\($0.value) (\($0.count) files)" }.joined(separator: ", "))); the folder is the series (RSNA layout)")
                }
                return Series(id: seriesKey, seriesInstanceUID: uids[0].value,
                              studyInstanceUID: Self.counts(members.map(\.header.studyInstanceUID))[0].value,
                              headers: members.map(\.header), notes: seriesNotes)
            }
            let all = seriesGroups.values.flatMap { $0 }
            let studyUIDs = Self.counts(all.map(\.header.studyInstanceUID))
            if rsna && studyUIDs.count > 1 {
                let described = studyUIDs.map { uid in
                    let ids = series.filter { s in s.headers.contains { $0.studyInstanceUID == uid.value } }.map(\.id)
                    return "\(uid.value): series \(ids.joined(separator: ", "))"
                }
                notes.append("study folder holds \(studyUIDs.count) Study Instance UIDs (\(described.joined(separator: "; "))); the folder is the study (RSNA layout); only the series of its own UID are fused")
            }
            return Study(id: studyKey, studyInstanceUID: studyUIDs[0].value, fileUIDs: studyUIDs.map(\.value), series: series, notes: notes)
        }
    }

    /// The notes of a study whose files' UIDs (`uids`) also lie elsewhere (`places`: every scanned file's, merged).
    static func placementNotes(studyKey: String, uids: [String], places: [String: Set<String>], rsna: Bool) -> [String] {
        uids.compactMap { uid in
            let elsewhere = places[uid, default: []].subtracting(rsna ? [studyKey] : []).sorted()
            if rsna && !elsewhere.isEmpty {
                return "Study Instance UID \(uid) is also under study folder(s) \(elsewhere.joined(separator: ", ")); each folder is its own study (RSNA layout)"
            } else if !rsna && elsewhere.count > 1 {
                return "its files lie under \(elsewhere.count) folders (\(elsewhere.joined(separator: ", "))); one Study Instance UID is one study"
            }
            return nil
        }
    }

    /// Distinct values with their counts, most frequent first, ties by value.
    static func counts(_ values: [String]) -> [(value: String, count: Int)] {
        Dictionary(grouping: values, by: { $0 }).map { ($0.key, $0.value.count) }
            .sorted { ($1.1, $0.0) < ($0.1, $1.0) }
    }

    /// The first folder of a relative path ("." for a file at the root).
    private static func topFolder(_ path: String) -> String {
        let parts = path.split(separator: "/")
        return parts.count > 1 ? String(parts[0]) : "."
    }
}
