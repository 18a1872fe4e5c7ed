/// FNV-1a 64 of a string's UTF-8 bytes: the same number on every machine, run and Swift version (unlike
/// `Hashable`), for everything that derives a lasting id or a partition from a name.
public enum StableHash {
    /// FNV-1a 64 of `text`'s UTF-8 bytes.
    public static func fnv1a64(_ text: String) -> UInt64 {
        var h: UInt64 = 0xcbf2_9ce4_8422_2325
        for b in text.utf8 { h = (h ^ UInt64(b)) &* 0x100_0000_01b3 }
        return h
    }
}
