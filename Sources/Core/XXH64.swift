/// XXH64 (Yann Collet's xxHash, 64-bit, seed 0): the ingest cache's checksums and the shard writer's
/// fingerprints. Not cryptographic: it tells changed or damaged bytes apart at several GB/s, where SHA-256
/// here runs at a few hundred MB/s. Equal to libxxhash's XXH64 (tested).
public enum XXH64 {
    private static let p1: UInt64 = 0x9E37_79B1_85EB_CA87
    private static let p2: UInt64 = 0xC2B2_AE3D_27D4_EB4F
    private static let p3: UInt64 = 0x1656_67B1_9E37_79F9
    private static let p4: UInt64 = 0x85EB_CA77_C2B2_AE63
    private static let p5: UInt64 = 0x27D4_EB2F_1656_67C5

    @inline(__always) private static func rotl(_ x: UInt64, _ r: UInt64) -> UInt64 { (x << r) | (x >> (64 - r)) }
    @inline(__always) private static func round(_ acc: UInt64, _ input: UInt64) -> UInt64 {
        rotl(acc &+ input &* p2, 31) &* p1
    }
    @inline(__always) private static func merge(_ acc: UInt64, _ v: UInt64) -> UInt64 {
        (acc ^ round(0, v)) &* p1 &+ p4
    }

    /// The hash of `bytes`.
    public static func hash(_ bytes: UnsafeRawBufferPointer) -> UInt64 {
        let n = bytes.count
        var h: UInt64 = p5
        let whole = n / 32 * 32
        if n >= 32 {
            var v = (p1 &+ p2, p2, UInt64(0), 0 &- p1)
            stripes(&v, UnsafeRawBufferPointer(rebasing: bytes[0..<whole]))
            h = converge(v)
        }
        return finish(h &+ UInt64(n), tail: UnsafeRawBufferPointer(rebasing: bytes[whole...]))
    }

    /// Runs the four lanes over `bytes`, whose length is a multiple of 32.
    @inline(__always) private static func stripes(_ v: inout (UInt64, UInt64, UInt64, UInt64), _ bytes: UnsafeRawBufferPointer) {
        func u64(_ at: Int) -> UInt64 { UInt64(littleEndian: bytes.loadUnaligned(fromByteOffset: at, as: UInt64.self)) }
        var (v1, v2, v3, v4) = v
        var i = 0
        while i + 32 <= bytes.count {
            v1 = round(v1, u64(i)); v2 = round(v2, u64(i + 8))
            v3 = round(v3, u64(i + 16)); v4 = round(v4, u64(i + 24))
            i += 32
        }
        v = (v1, v2, v3, v4)
    }

    @inline(__always) private static func converge(_ v: (UInt64, UInt64, UInt64, UInt64)) -> UInt64 {
        let h = rotl(v.0, 1) &+ rotl(v.1, 7) &+ rotl(v.2, 12) &+ rotl(v.3, 18)
        return merge(merge(merge(merge(h, v.0), v.1), v.2), v.3)
    }

    /// The last fewer than 32 bytes and the avalanche, from `h` (the lanes' or p5, plus the length).
    @inline(__always) private static func finish(_ start: UInt64, tail bytes: UnsafeRawBufferPointer) -> UInt64 {
        let n = bytes.count
        var h = start
        var i = 0
        while i + 8 <= n {
            h = rotl(h ^ round(0, UInt64(littleEndian: bytes.loadUnaligned(fromByteOffset: i, as: UInt64.self))), 27) &* p1 &+ p4
            i += 8
        }
        if i + 4 <= n {
            h = rotl(h ^ (UInt64(UInt32(littleEndian: bytes.loadUnaligned(fromByteOffset: i, as: UInt32.self))) &* p1), 23) &* p2 &+ p3
            i += 4
        }
        while i < n {
            h = rotl(h ^ (UInt64(bytes[i]) &* p5), 11) &* p1
            i += 1
        }
        h ^= h >> 33; h = h &* p2
        h ^= h >> 29; h = h &* p3
        h ^= h >> 32
        return h
    }

    /// XXH64 of bytes fed in pieces: `digest` equals `hash` of their concatenation, whatever the pieces.
    public struct Stream: Sendable {
        private var lanes = (p1 &+ p2, p2, UInt64(0), 0 &- p1)
        private var total = 0
        /// Bytes not yet in a whole 32-byte stripe (fewer than 32).
        private var pending = (UInt64(0), UInt64(0), UInt64(0), UInt64(0))
        private var pendingCount = 0

        public init() {}

        public mutating func update(_ bytes: UnsafeRawBufferPointer) {
            total += bytes.count
            var offset = 0
            if pendingCount > 0 || bytes.count < 32 {
                let take = min(32 - pendingCount, bytes.count)
                withUnsafeMutableBytes(of: &pending) { buffer in
                    buffer.baseAddress!.advanced(by: pendingCount).copyMemory(from: bytes.baseAddress!, byteCount: take)
                }
                pendingCount += take
                offset = take
                guard pendingCount == 32 else { return }
                withUnsafeBytes(of: pending) { XXH64.stripes(&lanes, $0) }
                pendingCount = 0
            }
            let whole = (bytes.count - offset) / 32 * 32
            XXH64.stripes(&lanes, UnsafeRawBufferPointer(rebasing: bytes[offset..<(offset + whole)]))
            offset += whole
            if offset < bytes.count {
                pendingCount = bytes.count - offset
                withUnsafeMutableBytes(of: &pending) { buffer in
                    buffer.baseAddress!.copyMemory(from: bytes.baseAddress! + offset, byteCount: pendingCount)
                }
            }
        }

        /// The hash of everything fed so far.
        public func digest() -> UInt64 {
            let start = total >= 32 ? XXH64.converge(lanes) : p5
            return withUnsafeBytes(of: pending) {
                XXH64.finish(start &+ UInt64(total), tail: UnsafeRawBufferPointer(rebasing: $0[0..<pendingCount]))
            }
        }

        /// `digest()` as 16 lowercase hex digits.
        public func hex() -> String { XXH64.hex(digest()) }
    }

    /// The hash as 16 lowercase hex digits.
    public static func hex(_ bytes: UnsafeRawBufferPointer) -> String { hex(hash(bytes)) }

    /// `value` as 16 lowercase hex digits.
    static func hex(_ value: UInt64) -> String {
        let hex = String(value, radix: 16)
        return String(repeating: "0", count: 16 - hex.count) + hex
    }
}
