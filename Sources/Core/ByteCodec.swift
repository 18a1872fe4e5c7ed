/// The project's little-endian binary encoding, for records read back by this program only (the header index, the
/// study cache's file stamps): fixed-width integers little endian, `int` as 64 bits, strings as a 64-bit length and
/// UTF-8, an optional as a presence byte. JSON was about three times the size and as slow to decode as the header
/// reads it replaced.
public struct ByteWriter: Sendable {
    /// The bytes written so far.
    public private(set) var bytes: [UInt8] = []

    /// An empty writer.
    public init() {}

    /// `v` in its width, little endian.
    public mutating func integer<T: FixedWidthInteger>(_ v: T) { withUnsafeBytes(of: v.littleEndian) { bytes.append(contentsOf: $0) } }
    /// Bytes as they are, without a length.
    public mutating func raw<S: Sequence>(_ s: S) where S.Element == UInt8 { bytes.append(contentsOf: s) }
    /// A UInt64.
    public mutating func u64(_ v: UInt64) { integer(v) }
    /// An Int as 64 bits.
    public mutating func int(_ v: Int) { integer(Int64(v)) }
    /// One byte, 0 or 1.
    public mutating func bool(_ v: Bool) { bytes.append(v ? 1 : 0) }
    /// The UTF-8 length as `int`, then the UTF-8.
    public mutating func string(_ s: String) { int(s.utf8.count); bytes.append(contentsOf: s.utf8) }
    /// The count as `int`, then each value.
    public mutating func u64s(_ v: [UInt64]) { int(v.count); v.forEach { u64($0) } }
    /// A presence byte, then the value through `write` when present.
    public mutating func optional<T>(_ v: T?, _ write: (inout ByteWriter, T) -> Void) {
        bool(v != nil)
        if let v { write(&self, v) }
    }
}

/// Reads what `ByteWriter` wrote; throws `Truncated` on any length or count that runs past the end or a flag
/// that is not 0 or 1 (damaged bytes), never traps.
public struct ByteReader: Sendable {
    /// The bytes do not hold what was asked for.
    public struct Truncated: Error, Sendable {}
    /// All the bytes.
    public let bytes: [UInt8]
    /// Where the next read starts.
    public var offset = 0

    /// A reader from the first of `bytes`.
    public init(_ bytes: [UInt8]) { self.bytes = bytes }

    /// Whether every byte was read.
    public var atEnd: Bool { offset == bytes.count }

    /// An integer of `T`'s width, little endian.
    public mutating func integer<T: FixedWidthInteger>(_: T.Type) throws -> T {
        let width = MemoryLayout<T>.size
        guard bytes.count - offset >= width else { throw Truncated() }
        var v = T.zero
        for k in 0..<width { v |= T(truncatingIfNeeded: bytes[offset + k]) << (8 * k) }
        offset += width
        return v
    }
    /// `count` bytes as they are.
    public mutating func raw(_ count: Int) throws -> ArraySlice<UInt8> {
        guard count >= 0, count <= bytes.count - offset else { throw Truncated() }
        defer { offset += count }
        return bytes[offset..<offset + count]
    }
    /// A UInt64.
    public mutating func u64() throws -> UInt64 { try integer(UInt64.self) }
    /// An `int`.
    public mutating func int() throws -> Int { Int(truncatingIfNeeded: try integer(Int64.self)) }
    /// An `int` that counts bytes or items still to come: at least 0 and no more than the bytes left.
    public mutating func count() throws -> Int {
        let n = try int()
        guard n >= 0, n <= bytes.count - offset else { throw Truncated() }
        return n
    }
    /// A byte that must be 0 or 1.
    public mutating func bool() throws -> Bool {
        guard offset < bytes.count, bytes[offset] <= 1 else { throw Truncated() }
        offset += 1
        return bytes[offset - 1] == 1
    }
    /// A `string`.
    public mutating func string() throws -> String { String(decoding: try raw(try count()), as: UTF8.self) }
    /// A `u64s`.
    public mutating func u64s() throws -> [UInt64] {
        let n = try count()
        return try (0..<n).map { _ in try u64() }
    }
    /// An `optional`.
    public mutating func optional<T>(_ read: (inout ByteReader) throws -> T) throws -> T? {
        try bool() ? try read(&self) : nil
    }
}
