import Foundation

/// The bytes a cache key is the SHA-256 of: any `Encodable` value as a pre-order walk of its tree, each node its
/// depth, kind, key (in a keyed container) and value (integers and floating-point bit patterns little endian,
/// strings with their UTF-8 length). A pre-order walk with depths names one tree only, so two values give the same
/// bytes only when every key, value and nesting is the same. About ten times cheaper than `JSONEncoder` (issue 20:
/// the keys of an unchanged archive are computed on every run), and exact: no float is rounded to text.
///
/// Keyed containers keep the order in which a value encodes its keys, which is fixed for a type; a `Dictionary`'s
/// order is not (hashing is seeded per process), so the key material holds none (tests compare keys made by
/// different processes).
struct KeyMaterialEncoder: Encoder {
    final class Sink {
        var bytes: [UInt8] = []

        init() { bytes.reserveCapacity(1 << 14) }

        func integer<T: FixedWidthInteger>(_ value: T) {
            withUnsafeBytes(of: value.littleEndian) { bytes.append(contentsOf: $0) }
        }

        func string(_ value: String) {
            var value = value
            value.withUTF8 { utf8 in
                integer(UInt32(utf8.count))
                bytes.append(contentsOf: utf8)
            }
        }

        /// A node: its depth, its kind and, inside a keyed container, its key.
        func node(_ depth: Int, _ kind: Kind, key: CodingKey?) {
            integer(UInt16(truncatingIfNeeded: depth))
            bytes.append(kind.rawValue)
            if let key { string(key.stringValue) }
        }

        /// A value of any type: the primitives' bytes, else a nested node whose children are one level deeper.
        func value<T: Encodable>(_ value: T, depth: Int, key: CodingKey?) throws {
            // Metatype comparisons, not `as?` casts: a cast of a generic value asks the runtime for protocol
            // conformances (bridging) and cost ~2/3 of the key's time.
            let type = T.self
            if type == String.self { node(depth, .string, key: key); string(unsafeBitCast(value, to: String.self)) }
            else if type == Double.self { node(depth, .double, key: key); integer(unsafeBitCast(value, to: Double.self).bitPattern) }
            else if type == Int.self { node(depth, .int, key: key); integer(Int64(unsafeBitCast(value, to: Int.self))) }
            else if type == Float.self { node(depth, .float, key: key); integer(unsafeBitCast(value, to: Float.self).bitPattern) }
            else if type == Int64.self { node(depth, .int, key: key); integer(unsafeBitCast(value, to: Int64.self)) }
            else if type == Bool.self { node(depth, .bool, key: key); bytes.append(unsafeBitCast(value, to: Bool.self) ? 1 : 0) }
            else if type == Int8.self { node(depth, .int, key: key); integer(Int64(unsafeBitCast(value, to: Int8.self))) }
            else if type == UInt8.self { node(depth, .uint, key: key); integer(UInt64(unsafeBitCast(value, to: UInt8.self))) }
            else if type == UInt64.self { node(depth, .uint, key: key); integer(unsafeBitCast(value, to: UInt64.self)) }
            else {
                node(depth, .nested, key: key)
                try value.encode(to: KeyMaterialEncoder(sink: self, depth: depth + 1))
            }
        }
    }

    enum Kind: UInt8 {
        case nested = 1, string, double, float, int, uint, bool, null
    }

    let sink: Sink
    let depth: Int
    var codingPath: [CodingKey] { [] }
    var userInfo: [CodingUserInfoKey: Any] { [:] }

    /// The key material of `value`.
    static func encode<T: Encodable>(_ value: T) throws -> [UInt8] {
        let sink = Sink()
        try value.encode(to: KeyMaterialEncoder(sink: sink, depth: 0))
        return sink.bytes
    }

    func container<Key: CodingKey>(keyedBy type: Key.Type) -> KeyedEncodingContainer<Key> {
        KeyedEncodingContainer(Keyed<Key>(sink: sink, depth: depth))
    }

    func unkeyedContainer() -> UnkeyedEncodingContainer { Unkeyed(sink: sink, depth: depth) }

    func singleValueContainer() -> SingleValueEncodingContainer { Unkeyed(sink: sink, depth: depth) }

    struct Keyed<Key: CodingKey>: KeyedEncodingContainerProtocol {
        let sink: Sink
        let depth: Int
        var codingPath: [CodingKey] { [] }

        mutating func encodeNil(forKey key: Key) throws { sink.node(depth, .null, key: key) }
        mutating func encode<T: Encodable>(_ value: T, forKey key: Key) throws { try sink.value(value, depth: depth, key: key) }
        mutating func nestedContainer<NestedKey: CodingKey>(keyedBy keyType: NestedKey.Type,
                                                            forKey key: Key) -> KeyedEncodingContainer<NestedKey> {
            sink.node(depth, .nested, key: key)
            return KeyedEncodingContainer(Keyed<NestedKey>(sink: sink, depth: depth + 1))
        }
        mutating func nestedUnkeyedContainer(forKey key: Key) -> UnkeyedEncodingContainer {
            sink.node(depth, .nested, key: key)
            return Unkeyed(sink: sink, depth: depth + 1)
        }
        mutating func superEncoder() -> Encoder {
            sink.node(depth, .nested, key: nil)
            return KeyMaterialEncoder(sink: sink, depth: depth + 1)
        }
        mutating func superEncoder(forKey key: Key) -> Encoder {
            sink.node(depth, .nested, key: key)
            return KeyMaterialEncoder(sink: sink, depth: depth + 1)
        }
    }

    /// Unkeyed and single-value containers: values in order, without keys.
    struct Unkeyed: UnkeyedEncodingContainer, SingleValueEncodingContainer {
        let sink: Sink
        let depth: Int
        var codingPath: [CodingKey] { [] }
        var count = 0

        init(sink: Sink, depth: Int) {
            self.sink = sink
            self.depth = depth
        }

        mutating func encodeNil() throws {
            sink.node(depth, .null, key: nil)
            count += 1
        }
        mutating func encode<T: Encodable>(_ value: T) throws {
            try sink.value(value, depth: depth, key: nil)
            count += 1
        }
        mutating func nestedContainer<NestedKey: CodingKey>(keyedBy keyType: NestedKey.Type) -> KeyedEncodingContainer<NestedKey> {
            sink.node(depth, .nested, key: nil)
            count += 1
            return KeyedEncodingContainer(Keyed<NestedKey>(sink: sink, depth: depth + 1))
        }
        mutating func nestedUnkeyedContainer() -> UnkeyedEncodingContainer {
            sink.node(depth, .nested, key: nil)
            count += 1
            return Unkeyed(sink: sink, depth: depth + 1)
        }
        mutating func superEncoder() -> Encoder {
            sink.node(depth, .nested, key: nil)
            count += 1
            return KeyMaterialEncoder(sink: sink, depth: depth + 1)
        }
    }
}
