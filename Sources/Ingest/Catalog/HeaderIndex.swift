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
    /// Entries held in memory, by path relative to the archive (an index being built, or set by hand in tests).
    var entries: [String: Entry]
    /// The entries of an index read from disk, where they stay (issue 27: 153,800 entries held decoded took a warm
    /// re-run's resident set to 510 MB): where each one lies in the file, read back when the scan asks for it.
    private var stored: StoredEntries?

    /// An empty index of `root`, of a scan beginning now.
    init(root: String, scannedAt: Int64) {
        self.root = root
        self.scannedAt = scannedAt
        entries = [:]
    }

    /// Entries in memory and on disk.
    var count: Int { entries.count + (stored?.count ?? 0) }

    /// The paths of every entry (for tests; reads every stored entry's path).
    var paths: [String] { Array(entries.keys) + (stored?.paths() ?? []) }

    /// The index at `url` if it is whole, of this layout and of `root`; nil otherwise (never an error). The file is read in
    /// blocks, to check its checksum and then to find each entry (every entry parsed); the entries stay on disk.
    static func load(from url: URL, root: String) -> HeaderIndex? {
        guard let stored = StoredEntries(url: url, root: root) else { return nil }
        var index = HeaderIndex(root: root, scannedAt: stored.scannedAt)
        index.stored = stored
        return index
    }

    /// The entry of a file of stat `now` when it can be trusted; nil when the file must be read.
    func trusted(_ relativePath: String, stat now: FileIdentity) -> Entry? {
        guard let entry = entries[relativePath] ?? stored?.entry(relativePath), entry.stat == now,
              !now.isRacy(recordedAt: scannedAt) else { return nil }
        return entry
    }

    /// The entries of an index file: the file open, and each entry's place by the XXH64 of its path (a path whose hash
    /// another shares is looked up by its own path: both are read and compared).
    final class StoredEntries: @unchecked Sendable {
        let scannedAt: Int64
        let count: Int
        private let fd: Int32
        /// XXH64 of the path → (offset, length) of the entry (its path first) in the file.
        private var places: [UInt64: (offset: Int, length: Int)] = [:]
        /// Paths whose hash another path shares, with their places.
        private var collided: [String: (offset: Int, length: Int)] = [:]

        init?(url: URL, root: String) {
            let fd = open(url.path, O_RDONLY | O_CLOEXEC)
            guard fd >= 0 else { return nil }
            self.fd = fd
            var st = stat()
            guard fstat(fd, &st) == 0 else { close(fd); return nil }
            let size = Int(st.st_size)
            let magic = HeaderIndex.magic
            guard size >= magic.count + 16 else { close(fd); return nil }
            // The body (all but the 16 hex digits of its checksum) is read in blocks twice: hashed first, so that no
            // byte of a damaged index reaches the entries' parser (as when the index was read whole), then parsed.
            let bodyEnd = size - 16
            /// Block `offset..<offset + n` of the file; nil when it cannot be read whole.
            func block(at offset: Int, _ n: Int) -> [UInt8]? {
                var block = [UInt8](repeating: 0, count: n)
                return block.withUnsafeMutableBytes({ pread(fd, $0.baseAddress!, n, off_t(offset)) }) == n ? block : nil
            }
            var hash = XXH64.Stream()
            var hashed = 0
            while hashed < bodyEnd {
                guard let b = block(at: hashed, min(1 << 22, bodyEnd - hashed)) else { close(fd); return nil }
                b.withUnsafeBytes { hash.update($0) }
                hashed += b.count
            }
            guard let digits = block(at: bodyEnd, 16), hash.hex() == String(decoding: digits, as: UTF8.self) else { close(fd); return nil }
            var buffer: [UInt8] = [], bufferStart = 0, fileOffset = 0
            /// Reads the next block of the body onto the buffer, dropping the bytes before `keep`; false at the end.
            func more(keeping keep: Int) -> Bool {
                guard fileOffset < bodyEnd, let block = block(at: fileOffset, min(1 << 22, bodyEnd - fileOffset)) else { return false }
                let n = block.count
                buffer.removeFirst(keep)
                bufferStart += keep
                buffer += block
                fileOffset += n
                return true
            }
            var scanned: Int64 = 0, n = 0, parsed = 0
            do {
                guard more(keeping: 0), buffer.count >= magic.count, Data(buffer.prefix(magic.count)) == magic else { throw Damaged() }
                var position = magic.count
                /// Parses with `body` from `position`, reading more of the file while the buffer holds too little.
                func parse<T>(_ body: (inout ByteReader) throws -> T) throws -> T {
                    while true {
                        var r = ByteReader(buffer)
                        r.offset = position - bufferStart
                        do {
                            let value = try body(&r)
                            position = bufferStart + r.offset
                            return value
                        } catch is ByteReader.Truncated {
                            guard more(keeping: position - bufferStart) else { throw Damaged() }
                        }
                    }
                }
                guard try parse({ try $0.string() }) == root else { throw Damaged() }
                scanned = Int64(try parse { try $0.int() })
                n = try parse { try $0.count() }
                for _ in 0..<n {
                    let start = position
                    let path = try parse { try Self.entry(&$0).path }
                    let place = (offset: start, length: position - start)
                    let key = Self.key(path)
                    if places[key] == nil && collided[path] == nil {
                        places[key] = place
                    } else {
                        collided[path] = place
                    }
                    parsed += 1
                }
                // Every byte of the body is an entry's.
                guard position == bodyEnd else { throw Damaged() }
            } catch {
                close(fd)
                return nil
            }
            scannedAt = scanned
            count = parsed
        }

        deinit { close(fd) }

        /// The file is not an index this run can use.
        private struct Damaged: Error {}

        private static func key(_ path: String) -> UInt64 {
            var path = path
            return path.withUTF8 { XXH64.hash(UnsafeRawBufferPointer($0)) }
        }

        /// The entry of `path`, read from the file; nil when there is none (or it cannot be read).
        func entry(_ path: String) -> Entry? {
            if let place = collided[path], let (p, e) = read(place), p == path { return e }
            guard let place = places[Self.key(path)], let (p, e) = read(place), p == path else { return nil }
            return e
        }

        /// Every entry's path (reads the whole file again; tests only).
        func paths() -> [String] {
            (Array(places.values) + Array(collided.values)).compactMap { read($0)?.0 }
        }

        private func read(_ place: (offset: Int, length: Int)) -> (String, Entry)? {
            var bytes = [UInt8](repeating: 0, count: place.length)
            guard bytes.withUnsafeMutableBytes({ pread(fd, $0.baseAddress!, place.length, off_t(place.offset)) }) == place.length else { return nil }
            var r = ByteReader(bytes)
            return try? Self.entry(&r)
        }

        /// One entry as `FileWriter.append` writes it: the path, the stat, the header.
        private static func entry(_ r: inout ByteReader) throws -> (path: String, entry: Entry) {
            let path = try r.string()
            let stat = FileIdentity(size: Int64(try r.int()), mtimeNanoseconds: Int64(try r.int()), inode: try r.u64())
            return (path, Entry(stat: stat, header: try HeaderSummary(reading: &r)))
        }
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
