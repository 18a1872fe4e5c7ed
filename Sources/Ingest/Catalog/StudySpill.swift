import Foundation

/// The catalog's studies on disk between the scan and their fusion (issue 27): an ingest of the RSNA train set holds
/// ~147,000 files' `CatalogImage`s (path, SOP Instance UID, position), which kept in memory for the whole run grew the
/// resident set with the archive. The scan appends each study as it is made, keeping an `Entry` (its ids and where it
/// lies); a worker reads its study back when it takes it.
///
/// The file is an anonymous temporary file in the output folder (created and unlinked at once), so nothing is left
/// behind however the run ends, and it never shares a name with anything. Appends come from one thread (the scan);
/// reads (`pread`) from any.
public final class StudySpill: @unchecked Sendable {
    /// Where one study lies in the spill, and what the run needs of it without reading it.
    public struct Entry: Sendable {
        /// The study id (RSNA folder name or Study Instance UID).
        public var studyID: String
        /// The study's own Study Instance UID.
        public var studyInstanceUID: String
        /// Notes added after the study was spilled (where its UIDs also lie); appended to its notes when it is read.
        public var laterNotes: [String] = []
        fileprivate var offset: Int64
        fileprivate var length: Int
    }

    private let fd: Int32
    private var end: Int64 = 0
    private let encoder = JSONEncoder()

    /// An empty spill in `directory` (a file with no name: unlinked as soon as it is open).
    public init(directory: URL) throws {
        var template = Array(directory.appendingPathComponent(".studies.spill.XXXXXX").path.utf8CString)
        let fd = template.withUnsafeMutableBufferPointer { mkstemp($0.baseAddress!) }
        guard fd >= 0 else { throw StudySpillError("cannot create a temporary file in \(directory.path): \(String(cString: strerror(errno)))") }
        unlink(String(cString: template))
        // Not inherited by the decode workers this process starts.
        _ = fcntl(fd, F_SETFD, FD_CLOEXEC)
        self.fd = fd
        encoder.nonConformingFloatEncodingStrategy = .convertToString(positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
    }

    deinit { close(fd) }

    /// Writes `study` at the end of the spill.
    public func append(_ study: CatalogStudy) throws -> Entry {
        let data = try encoder.encode(study)
        try data.withUnsafeBytes { raw in
            var done = 0
            while done < raw.count {
                let n = pwrite(fd, raw.baseAddress! + done, raw.count - done, off_t(end) + off_t(done))
                if n < 0 && errno == EINTR { continue }
                guard n > 0 else { throw StudySpillError("cannot write the study spill: \(String(cString: strerror(errno)))") }
                done += n
            }
        }
        defer { end += Int64(data.count) }
        return Entry(studyID: study.studyID, studyInstanceUID: study.studyInstanceUID, offset: end, length: data.count)
    }

    /// The study `entry` names, with its later notes.
    public func load(_ entry: Entry) throws -> CatalogStudy {
        var data = Data(count: entry.length)
        try data.withUnsafeMutableBytes { raw in
            var done = 0
            while done < raw.count {
                let n = pread(fd, raw.baseAddress! + done, raw.count - done, off_t(entry.offset) + off_t(done))
                if n < 0 && errno == EINTR { continue }
                guard n > 0 else { throw StudySpillError("cannot read study \(entry.studyID) back from the study spill") }
                done += n
            }
        }
        let decoder = JSONDecoder()
        decoder.nonConformingFloatDecodingStrategy = .convertFromString(positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
        var study = try decoder.decode(CatalogStudy.self, from: data)
        study.notes += entry.laterNotes
        return study
    }
}

/// The study spill could not be written or read (disk full, I/O error): the run stops, naming it.
public struct StudySpillError: Error, CustomStringConvertible {
    public var description: String
    init(_ description: String) { self.description = description }
}
