import Core
import Foundation

/// The safetensors file format (Hugging Face): an 8-byte little-endian header length, a JSON header
/// mapping each name to dtype, shape and byte range, then the raw little-endian tensor bytes.
public enum SafeTensors {
    /// An error reading or writing a safetensors file, naming the file.
    public struct FormatError: Error, CustomStringConvertible {
        /// The file and what is wrong with it.
        public var path: String, message: String
        /// The file, then the problem.
        public var description: String { "\(path): \(message)" }
    }

    static let names: [DType: String] = [
        .uint8: "U8", .int8: "I8", .int16: "I16", .int32: "I32", .int64: "I64", .float16: "F16",
        .float32: "F32", .float64: "F64", .bool: "BOOL", .bfloat16: "BF16",
    ]

    /// Writes `tensors` (any device; copied to the CPU) and string `metadata` to `url`, complete-or-absent and fsynced.
    public static func write(_ tensors: [String: Tensor], metadata: [String: String] = [:], to url: URL) throws {
        var header: [String: Any] = [:]
        if !metadata.isEmpty { header["__metadata__"] = metadata }
        var payload: [[UInt8]] = []
        var offset = 0
        for name in tensors.keys.sorted() {
            let t = tensors[name]!
            guard let code = names[t.dtype] else { throw FormatError(path: url.path, message: "\(name): dtype \(t.dtype) has no safetensors code") }
            let bytes = try t.bytes()
            header[name] = ["dtype": code, "shape": t.shape, "data_offsets": [offset, offset + bytes.count]]
            payload.append(bytes)
            offset += bytes.count
        }
        var json = try JSONSerialization.data(withJSONObject: header, options: [.sortedKeys])
        // The format pads the header with spaces so that the data starts 8-byte aligned.
        while json.count % 8 != 0 { json.append(0x20) }
        var file = Data(capacity: 8 + json.count + offset)
        withUnsafeBytes(of: UInt64(json.count).littleEndian) { file.append(contentsOf: $0) }
        file.append(json)
        for p in payload { file.append(contentsOf: p) }
        try AtomicFile.write(file, to: url)
    }

    /// Reads every tensor and the string metadata of a safetensors file onto `device`.
    public static func read(_ url: URL, device: Device = .cpu) throws -> (tensors: [String: Tensor], metadata: [String: String]) {
        let fail = { (message: String) in FormatError(path: url.path, message: message) }
        let data = try Data(contentsOf: url, options: .mappedIfSafe)
        guard data.count >= 8 else { throw fail("too short for a safetensors header") }
        let n = data.prefix(8).enumerated().reduce(0) { $0 | (Int($1.element) << (8 * $1.offset)) }
        guard n > 0, 8 + n <= data.count else { throw fail("header length \(n) exceeds the file (\(data.count) bytes)") }
        guard let header = try JSONSerialization.jsonObject(with: data.subdata(in: 8..<(8 + n))) as? [String: Any] else {
            throw fail("header is not a JSON object")
        }
        let base = 8 + n
        var tensors: [String: Tensor] = [:]
        var metadata: [String: String] = [:]
        for (name, value) in header {
            if name == "__metadata__" {
                metadata = value as? [String: String] ?? [:]
                continue
            }
            guard let entry = value as? [String: Any], let code = entry["dtype"] as? String,
                  let shape = entry["shape"] as? [Int], let range = entry["data_offsets"] as? [Int], range.count == 2
            else { throw fail("\(name): malformed header entry") }
            guard let dtype = names.first(where: { $0.value == code })?.key else { throw fail("\(name): unsupported dtype \(code)") }
            guard range[0] <= range[1], base + range[1] <= data.count else { throw fail("\(name): data range \(range) beyond the file") }
            tensors[name] = try data[(data.startIndex + base + range[0])..<(data.startIndex + base + range[1])].withUnsafeBytes {
                try Tensor(bytes: $0, shape: shape, dtype: dtype, device: device)
            }
        }
        return (tensors, metadata)
    }
}
