import Foundation

/// The header index's binary encoding: little-endian fixed-width integers, strings as a length and UTF-8, an
/// optional as a presence byte. JSON was 1.1 KB and ~0.1 ms to decode per file, as much as GDCM's own header read;
/// this is about a third of the size and reads without a parser.
struct IndexWriter {
    private(set) var bytes: [UInt8] = []

    mutating func u64(_ v: UInt64) { withUnsafeBytes(of: v.littleEndian) { bytes.append(contentsOf: $0) } }
    mutating func int(_ v: Int) { u64(UInt64(bitPattern: Int64(v))) }
    mutating func bool(_ v: Bool) { bytes.append(v ? 1 : 0) }
    mutating func string(_ s: String) { int(s.utf8.count); bytes.append(contentsOf: s.utf8) }
    mutating func u64s(_ v: [UInt64]) { int(v.count); v.forEach { u64($0) } }
    mutating func optional<T>(_ v: T?, _ write: (inout IndexWriter, T) -> Void) {
        bool(v != nil)
        if let v { write(&self, v) }
    }
}

/// Reads what `IndexWriter` wrote; throws on any length or count that runs past the end (a damaged index).
struct IndexReader {
    struct Damaged: Error {}
    let bytes: [UInt8]
    var offset = 0

    init(_ bytes: [UInt8]) { self.bytes = bytes }

    var atEnd: Bool { offset == bytes.count }

    mutating func u64() throws -> UInt64 {
        guard offset + 8 <= bytes.count else { throw Damaged() }
        var v: UInt64 = 0
        for k in 0..<8 { v |= UInt64(bytes[offset + k]) << (8 * k) }
        offset += 8
        return v
    }
    mutating func int() throws -> Int { Int(truncatingIfNeeded: Int64(bitPattern: try u64())) }
    mutating func count() throws -> Int {
        let n = try int()
        guard n >= 0, n <= bytes.count - offset else { throw Damaged() }
        return n
    }
    mutating func bool() throws -> Bool {
        guard offset < bytes.count, bytes[offset] <= 1 else { throw Damaged() }
        offset += 1
        return bytes[offset - 1] == 1
    }
    mutating func string() throws -> String {
        let n = try count()
        defer { offset += n }
        return String(decoding: bytes[offset..<offset + n], as: UTF8.self)
    }
    mutating func u64s() throws -> [UInt64] {
        let n = try count()
        return try (0..<n).map { _ in try u64() }
    }
    mutating func optional<T>(_ read: (inout IndexReader) throws -> T) throws -> T? {
        try bool() ? try read(&self) : nil
    }
}
