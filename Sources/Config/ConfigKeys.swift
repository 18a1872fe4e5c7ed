import Foundation

/// One key of a configuration, written once: its name, what it sets and allows (for --help), how the strict reader
/// reads it into the value (checking it) and how the resolved YAML writes it back. The training configuration and
/// the pipeline definition each keep one table of these.
public struct ConfigKey<Value>: Sendable {
    /// The key's name in its section.
    public let name: String
    /// What it sets and which values it takes.
    public let help: String
    /// Reads the key from `section` into `value`; an absent key leaves the value as it is.
    public let read: @Sendable (ConfigSection, inout Value) throws -> Void
    /// The key's resolved YAML lines (unindented; none to leave it out).
    public let write: @Sendable (Value) -> [String]

    /// A key read and written by the closures given.
    public init(name: String, help: String, read: @escaping @Sendable (ConfigSection, inout Value) throws -> Void,
                write: @escaping @Sendable (Value) -> [String]) {
        self.name = name
        self.help = help
        self.read = read
        self.write = write
    }
}

/// A configuration's keys in the order the resolved YAML lists them: keys, and sections of keys.
public enum ConfigEntry<Value>: Sendable {
    /// A key at this level.
    case key(ConfigKey<Value>)
    /// A mapping of keys, with what it is about (for --help).
    case section(String, help: String, [ConfigKey<Value>])
}

extension ConfigKey {
    /// A whole number of at least `low`.
    public static func int(_ name: String, _ path: WritableKeyPath<Value, Int> & Sendable, min low: Int, _ help: String) -> ConfigKey {
        ConfigKey(name: name, help: "\(help) [whole number ≥ \(low)]",
                  read: { s, v in if let x = try s.int(name, min: low) { v[keyPath: path] = x } },
                  write: { v in ["\(name): \(v[keyPath: path])"] })
    }

    /// A whole number in `range`.
    public static func int(_ name: String, _ path: WritableKeyPath<Value, Int> & Sendable, in range: ClosedRange<Int>, _ help: String) -> ConfigKey {
        ConfigKey(name: name, help: "\(help) [whole number from \(range.lowerBound) to \(range.upperBound)]",
                  read: { s, v in if let x = try s.int(name, in: range) { v[keyPath: path] = x } },
                  write: { v in ["\(name): \(v[keyPath: path])"] })
    }

    /// An optional whole number in `range`; nil leaves the key out.
    public static func int(_ name: String, _ path: WritableKeyPath<Value, Int?> & Sendable, in range: ClosedRange<Int>, _ help: String) -> ConfigKey {
        ConfigKey(name: name, help: "\(help) [whole number from \(range.lowerBound) to \(range.upperBound)]",
                  read: { s, v in if let x = try s.int(name, in: range) { v[keyPath: path] = x } },
                  write: { v in v[keyPath: path].map { ["\(name): \($0)"] } ?? [] })
    }

    /// A number within the bounds given (each optional).
    public static func double(_ name: String, _ path: WritableKeyPath<Value, Double> & Sendable, min low: Double? = nil, max high: Double? = nil,
                              above: Double? = nil, below: Double? = nil, _ help: String) -> ConfigKey {
        func text(_ x: Double) -> String { String(format: "%g", x) }
        let bounds = [low.map { "≥ \(text($0))" }, above.map { "> \(text($0))" }, high.map { "≤ \(text($0))" },
                      below.map { "< \(text($0))" }].compactMap { $0 }
        return ConfigKey(name: name, help: "\(help) [number\(bounds.isEmpty ? "" : " " + bounds.joined(separator: ", "))]",
                         read: { s, v in if let x = try s.double(name, min: low, max: high, above: above, below: below) { v[keyPath: path] = x } },
                         write: { v in ["\(name): \(yamlNumber(v[keyPath: path]))"] })
    }

    /// true or false.
    public static func bool(_ name: String, _ path: WritableKeyPath<Value, Bool> & Sendable, _ help: String) -> ConfigKey {
        ConfigKey(name: name, help: "\(help) [true or false]",
                  read: { s, v in if let x = try s.bool(name) { v[keyPath: path] = x } },
                  write: { v in ["\(name): \(v[keyPath: path])"] })
    }

    /// A single value of text.
    public static func string(_ name: String, _ path: WritableKeyPath<Value, String> & Sendable, _ help: String) -> ConfigKey {
        ConfigKey(name: name, help: "\(help) [text]",
                  read: { s, v in if let x = try s.string(name) { v[keyPath: path] = x } },
                  write: { v in ["\(name): \(yamlString(v[keyPath: path]))"] })
    }
}

extension Array {
    /// Reads every key of `entries` from `root` into `value`, each section checked for unknown keys, then the root.
    public func read<Value>(_ root: ConfigSection, into value: inout Value) throws where Element == ConfigEntry<Value> {
        for entry in self {
            switch entry {
            case .key(let key): try key.read(root, &value)
            case .section(let name, _, let keys):
                guard let section = try root.section(name) else { continue }
                for key in keys { try key.read(section, &value) }
                try section.finish()
            }
        }
        try root.finish()
    }

    /// The resolved YAML lines of `value`, sections' keys indented under their names.
    public func yaml<Value>(_ value: Value) -> [String] where Element == ConfigEntry<Value> {
        flatMap { entry -> [String] in
            switch entry {
            case .key(let key): return key.write(value)
            case .section(let name, _, let keys): return ["\(name):"] + keys.flatMap { $0.write(value) }.map { "  " + $0 }
            }
        }
    }

    /// One line per key ("section.key: what it sets (values)"), for --help.
    public func help<Value>() -> [String] where Element == ConfigEntry<Value> {
        flatMap { entry -> [String] in
            switch entry {
            case .key(let key): return ["\(key.name): \(key.help)"]
            case .section(let name, let help, let keys): return ["\(name): \(help)"] + keys.map { "  \(name).\($0.name): \($0.help)" }
            }
        }
    }
}

/// A number as the resolved YAML writes it: whole numbers with one decimal ("16.0"), the rest as Swift prints them.
public func yamlNumber(_ x: Double) -> String { x == x.rounded() && abs(x) < 1e15 ? String(format: "%.1f", x) : "\(x)" }

/// A list of whole numbers in YAML's flow style ("[8, 10, 10]").
public func yamlList(_ values: [Int]) -> String { "[\(values.map(String.init).joined(separator: ", "))]" }

/// Text as a YAML scalar that reads back as the same text: plain when that is safe ("demo.yaml"), else double-quoted
/// with JSON's escapes, which a YAML double-quoted scalar reads the same ("my pipeline: v2", "null", "").
public func yamlString(_ s: String) -> String {
    let safe = CharacterSet(charactersIn: "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_./-")
    let plain = s.unicodeScalars.allSatisfy(safe.contains) && s.first.map { $0.isLetter || $0.isNumber || $0 == "_" } == true
        && !["null", "~"].contains(s.lowercased())
    if plain { return s }
    return String(decoding: (try? JSONEncoder().encode(s)) ?? Data("\"\"".utf8), as: UTF8.self)
}
