import Config
import Foundation

/// One key of a configuration, written once: its name, what it sets and allows (for --help), how the strict reader
/// reads it into the value (checking it) and how the resolved YAML writes it back.
struct ConfigKey<Value>: Sendable {
    /// The key's name in its section.
    let name: String
    /// What it sets and which values it takes.
    let help: String
    /// Reads the key from `section` into `value`; an absent key leaves the value as it is.
    let read: @Sendable (ConfigSection, inout Value) throws -> Void
    /// The key's resolved YAML lines (unindented; none to leave it out).
    let write: @Sendable (Value) -> [String]
}

/// A configuration's keys in the order the resolved YAML lists them: keys, and sections of keys.
enum ConfigEntry<Value>: Sendable {
    case key(ConfigKey<Value>)
    case section(String, help: String, [ConfigKey<Value>])
}

extension ConfigKey {
    /// A whole number of at least `low`.
    static func int(_ name: String, _ path: WritableKeyPath<Value, Int> & Sendable, min low: Int, _ help: String) -> ConfigKey {
        ConfigKey(name: name, help: "\(help) [whole number ≥ \(low)]",
                  read: { s, v in if let x = try s.int(name, min: low) { v[keyPath: path] = x } },
                  write: { v in ["\(name): \(v[keyPath: path])"] })
    }

    /// A number within the bounds given (each optional).
    static func double(_ name: String, _ path: WritableKeyPath<Value, Double> & Sendable, min low: Double? = nil, max high: Double? = nil,
                       above: Double? = nil, below: Double? = nil, _ help: String) -> ConfigKey {
        func text(_ x: Double) -> String { String(format: "%g", x) }
        let bounds = [low.map { "≥ \(text($0))" }, above.map { "> \(text($0))" }, high.map { "≤ \(text($0))" },
                      below.map { "< \(text($0))" }].compactMap { $0 }
        return ConfigKey(name: name, help: "\(help) [number\(bounds.isEmpty ? "" : " " + bounds.joined(separator: ", "))]",
                         read: { s, v in if let x = try s.double(name, min: low, max: high, above: above, below: below) { v[keyPath: path] = x } },
                         write: { v in ["\(name): \(yamlNumber(v[keyPath: path]))"] })
    }

    /// true or false.
    static func bool(_ name: String, _ path: WritableKeyPath<Value, Bool> & Sendable, _ help: String) -> ConfigKey {
        ConfigKey(name: name, help: "\(help) [true or false]",
                  read: { s, v in if let x = try s.bool(name) { v[keyPath: path] = x } },
                  write: { v in ["\(name): \(v[keyPath: path])"] })
    }

    /// A box size in voxels [D, H, W]; nil leaves the key out.
    static func voxelSize(_ name: String, _ path: WritableKeyPath<Value, [Int]?> & Sendable, _ help: String) -> ConfigKey {
        ConfigKey(name: name, help: "\(help) [three whole numbers D, H, W]",
                  read: { s, v in if let x = try s.voxelSize(name) { v[keyPath: path] = x } },
                  write: { v in v[keyPath: path].map { ["\(name): \(yamlList($0))"] } ?? [] })
    }
}

extension Array {
    /// Reads every key of `entries` from `root` into `value`, each section checked for unknown keys, then the root.
    func read<Value>(_ root: ConfigSection, into value: inout Value) throws where Element == ConfigEntry<Value> {
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
    func yaml<Value>(_ value: Value) -> [String] where Element == ConfigEntry<Value> {
        flatMap { entry -> [String] in
            switch entry {
            case .key(let key): return key.write(value)
            case .section(let name, _, let keys): return ["\(name):"] + keys.flatMap { $0.write(value) }.map { "  " + $0 }
            }
        }
    }

    /// One line per key ("section.key: what it sets (values)"), for --help.
    func help<Value>() -> [String] where Element == ConfigEntry<Value> {
        flatMap { entry -> [String] in
            switch entry {
            case .key(let key): return ["\(key.name): \(key.help)"]
            case .section(let name, let help, let keys): return ["\(name): \(help)"] + keys.map { "  \(name).\($0.name): \($0.help)" }
            }
        }
    }
}

/// A number as the resolved YAML writes it: whole numbers with one decimal ("16.0"), the rest as Swift prints them.
func yamlNumber(_ x: Double) -> String { x == x.rounded() && abs(x) < 1e15 ? String(format: "%.1f", x) : "\(x)" }

/// A list of whole numbers in YAML's flow style ("[8, 10, 10]").
func yamlList(_ values: [Int]) -> String { "[\(values.map(String.init).joined(separator: ", "))]" }

extension ConfigSection {
    /// A box size in voxels: three whole numbers [D, H, W], each at least 1.
    func voxelSize(_ name: String) throws -> [Int]? {
        guard let size = try doubles(name) else { return nil }
        guard size.count == 3, size.allSatisfy({ $0 >= 1 && $0 == $0.rounded() && $0 < 1e6 }) else {
            throw error(name, "expected three whole numbers of voxels [D, H, W], got \(size.map { "\($0)" })")
        }
        return size.map { Int($0) }
    }
}
