import Core
import Foundation

/// What a scan learnt of each file's header, keyed by the file's stat, so that a re-run reads no header of an
/// unchanged file (`OUT/.headers.index`, written by `fuse3d ingest` after its scan).
///
/// A file's entry is trusted when its path (relative to the archive), size, mtime (ns) and inode are those the
/// entry recorded, and its mtime is more than a second older than the scan that recorded it: a file rewritten
/// within the file system's timestamp granularity of being stat'ed could keep its mtime (the "racy" case git
/// guards against), so such a file is read again. Any other file is read (which verifies it by content) and its
/// entry replaced. What no stat can see: a file rewritten in place with the same size, mtime and inode (`touch -r`
/// after the write); then the old header is used, and the study cache (which digests every file whose stat
/// changed, and checks the digest of racy ones) cannot see it either. `--overwrite` reads every header again.
///
/// The index holds no fused data and no digest: the study cache's key is made from the catalog (which the headers
/// make, bit for bit the same from the index) and the files' sizes, and its entries verify the files' contents
/// themselves. Layout: magic and version line, the entries (`ByteWriter`'s encoding), then the XXH64 (16 hex
/// digits) of everything before it; an index that is missing, damaged, of another version or of another archive
/// root is ignored (and rewritten).
struct HeaderIndex {
    /// The index's name in the output folder.
    static let fileName = ".headers.index"
    /// The layout's first line; a new layout gets a new version, and an index of any other is ignored.
    static let magic = Data("F3DHEADERS3\n".utf8)

    /// One file that was read: its stat when it was read, and its header. Files that could not be read have no
    /// entry (their error may be passing), so every run reads them again.
    struct Entry {
        var stat: FileIdentity
        var header: HeaderSummary

        /// What reading the file at `path` gave; nil for a damaged entry (the file is read again).
        func result(path: String) -> Result<DicomHeader, GDCMError>? {
            header.header(path: path).map { .success($0) }
        }
    }

    /// The archive root the entries' paths are relative to.
    var root: String
    /// When the scan that recorded the entries began (ns since 1970).
    var scannedAt: Int64
    /// By path relative to the archive.
    var entries: [String: Entry]

    /// An empty index of `root`, of a scan beginning now.
    init(root: String, scannedAt: Int64) {
        self.root = root
        self.scannedAt = scannedAt
        entries = [:]
    }

    /// The index at `url` if it is whole, of this layout and of `root`; nil otherwise (never an error).
    static func load(from url: URL, root: String) -> HeaderIndex? {
        guard let data = try? Data(contentsOf: url, options: .alwaysMapped),
              data.count >= magic.count + 16, data.prefix(magic.count) == magic else { return nil }
        let body = data.prefix(data.count - 16)
        guard body.withUnsafeBytes({ XXH64.hex($0) }) == String(decoding: data.suffix(16), as: UTF8.self) else { return nil }
        var r = ByteReader([UInt8](body.dropFirst(magic.count)))
        do {
            guard try r.string() == root else { return nil }
            var index = HeaderIndex(root: root, scannedAt: Int64(try r.int()))
            let n = try r.count()
            index.entries.reserveCapacity(n)
            for _ in 0..<n {
                let path = try r.string()
                let stat = FileIdentity(size: Int64(try r.int()), mtimeNanoseconds: Int64(try r.int()), inode: try r.u64())
                index.entries[path] = Entry(stat: stat, header: try HeaderSummary(reading: &r))
            }
            return r.atEnd ? index : nil
        } catch {
            return nil
        }
    }

    /// The entry of a file of stat `now` when it can be trusted; nil when the file must be read.
    func trusted(_ relativePath: String, stat now: FileIdentity) -> Entry? {
        guard let entry = entries[relativePath], entry.stat == now, !now.isRacy(recordedAt: scannedAt) else { return nil }
        return entry
    }

    /// Writes an index as the scan records its entries, batch by batch (`CatalogScan`), so that no entry stays in memory
    /// once its batch is scanned: to `NAME.partial`, then the entry count (known at the end) in its place, the XXH64 of
    /// the whole read back in blocks, fsync and rename (`commit`). The entries are in the order the scan reads the files
    /// (the walk's: names sorted in each folder), so the same scan writes the same bytes.
    final class FileWriter {
        private let url: URL, partial: URL
        private let handle: FileHandle
        private let countOffset: UInt64
        /// Entries written so far.
        private(set) var count = 0

        /// Starts the index of `root`, of a scan that began at `scannedAt`, at `url`.
        init(url: URL, root: String, scannedAt: Int64) throws {
            self.url = url
            partial = AtomicFile.partial(for: url)
            guard FileManager.default.createFile(atPath: partial.path, contents: nil) else {
                throw FileError(path: partial.path, "cannot create the header index")
            }
            handle = try FileHandle(forUpdating: partial)
            var w = ByteWriter()
            w.string(root)
            w.int(Int(scannedAt))
            countOffset = UInt64(magic.count + w.bytes.count)
            w.int(0)
            try handle.write(contentsOf: magic + Data(w.bytes))
        }

        /// Appends `entries` (path relative to the archive, entry) in their order.
        func append(_ entries: [(path: String, entry: Entry)]) throws {
            var w = ByteWriter()
            for (path, entry) in entries {
                w.string(path)
                w.int(Int(entry.stat.size))
                w.int(Int(entry.stat.mtimeNanoseconds))
                w.u64(entry.stat.inode)
                entry.header.write(to: &w)
            }
            try handle.write(contentsOf: w.bytes)
            count += entries.count
        }

        /// Writes the count and the checksum, and puts the index in place.
        func commit() throws {
            var w = ByteWriter()
            w.int(count)
            try handle.seek(toOffset: countOffset)
            try handle.write(contentsOf: w.bytes)
            try handle.seek(toOffset: 0)
            var hash = XXH64.Stream()
            while let block = try handle.read(upToCount: 1 << 20), !block.isEmpty {
                block.withUnsafeBytes { hash.update($0) }
            }
            try handle.write(contentsOf: Data(hash.hex().utf8))
            try handle.close()
            try AtomicFile.commit(partial, to: url)
        }

        /// Leaves the index at `url` as it is (the partial file is removed).
        func discard() {
            try? handle.close()
            try? FileManager.default.removeItem(at: partial)
        }
    }
}
