import Foundation
import Yams

/// A configuration file that cannot be used: the file, the line, the dotted key and what is wrong, written as
/// compilers write theirs (`train.yaml:7: optimizer.lr: expected a number > 0, got "abc"`).
public struct ConfigError: Error, CustomStringConvertible, Equatable, Sendable {
    /// The file (or "command line").
    public var path: String
    /// The line (from 1) of the key or value concerned; nil when the problem is the whole file.
    public var line: Int?
    /// The dotted key path (`optimizer.lr`); nil when the problem is not one key's.
    public var key: String?
    /// What is wrong, and what is allowed.
    public var message: String

    /// An error about `path`, at `line` and `key` when known.
    public init(path: String, line: Int? = nil, key: String? = nil, message: String) {
        self.path = path
        self.line = line
        self.key = key
        self.message = message
    }

    /// "path:line: key: message" (the line and key when known).
    public var description: String {
        "\(path)\(line.map { ":\($0)" } ?? ""): \(key.map { "\($0): " } ?? "")\(message)"
    }
}

/// One YAML mapping of a configuration file, read strictly. Every key read is ticked off and `finish()` rejects the
/// rest, naming the keys that were read as the allowed ones; a key given twice is an error. A value that is absent or
/// null (`lr:`, `lr: ~`) reads as nil, so the caller keeps its default. Numbers are decimal (`1_000` allowed), quoted
/// or not; booleans are true/false, yes/no or on/off. Every error names the file, the line and the dotted key.
public final class ConfigSection {
    /// The file, as errors name it.
    public let path: String
    /// The dotted key of this mapping ("" at the top level).
    public let key: String
    private let node: Node
    private let entries: [(name: String, key: Node, value: Node)]
    private var read: [String] = []

    /// The top-level mapping of YAML `text`; nil when the text holds no document or only null.
    public static func root(_ text: String, path: String) throws -> ConfigSection? {
        let node: Node?
        do { node = try Yams.compose(yaml: text) } catch { throw invalidYAML(error, path: path) }
        guard let node, !isNull(node) else { return nil }
        return try ConfigSection(node, key: "", path: path)
    }

    /// The text of the file at `path`; an unreadable file is an error naming it.
    public static func text(ofFile path: String) throws -> String {
        do { return try String(contentsOfFile: path, encoding: .utf8) } catch {
            throw ConfigError(path: path, message: "cannot read: \(error.localizedDescription)")
        }
    }

    private init(_ node: Node, key: String, path: String) throws {
        self.node = node
        self.key = key
        self.path = path
        guard let mapping = node.mapping else {
            throw ConfigError(path: path, line: node.mark?.line, key: key.isEmpty ? nil : key,
                              message: "expected a mapping of keys, got \(Self.describe(node))")
        }
        var first: [String: Int] = [:]
        var entries: [(name: String, key: Node, value: Node)] = []
        for (k, v) in mapping {
            let name = k.scalar?.string ?? "\(k)"
            if let line = first[name] {
                throw ConfigError(path: path, line: k.mark?.line, key: Self.join(key, name),
                                  message: "given twice (first on line \(line))")
            }
            first[name] = k.mark?.line ?? 0
            entries.append((name, k, v))
        }
        self.entries = entries
    }

    /// The dotted key of `name` in this mapping.
    public func full(_ name: String) -> String { Self.join(key, name) }

    /// An error about `name` at its line (this mapping's line when the key is absent).
    public func error(_ name: String, _ message: String) -> ConfigError {
        let line = entries.first { $0.name == name }?.key.mark?.line ?? node.mark?.line
        return ConfigError(path: path, line: line, key: full(name), message: message)
    }

    /// The value of `name`, ticked off as read; nil when absent or null.
    public func value(_ name: String) -> Node? {
        if !read.contains(name) { read.append(name) }
        guard let v = entries.first(where: { $0.name == name })?.value, !Self.isNull(v) else { return nil }
        return v
    }

    /// A nested mapping (nil when absent or null).
    public func section(_ name: String) throws -> ConfigSection? {
        guard let v = value(name) else { return nil }
        return try ConfigSection(v, key: full(name), path: path)
    }

    /// A single value as text, one of `choices` when given.
    public func string(_ name: String, oneOf choices: [String]? = nil) throws -> String? {
        guard let v = value(name) else { return nil }
        guard let s = v.scalar?.string else { throw error(name, "expected \(choices.map(Self.oneOf) ?? "a single value"), got \(Self.describe(v))") }
        if let choices, !choices.contains(s) { throw error(name, "expected \(Self.oneOf(choices)), got \(Self.describe(v))") }
        return s
    }

    /// true/false, yes/no or on/off.
    public func bool(_ name: String) throws -> Bool? {
        guard let v = value(name) else { return nil }
        guard let s = v.scalar?.string, let b = Self.bool(s) else { throw error(name, "expected true or false, got \(Self.describe(v))") }
        return b
    }

    /// A whole number in `range`.
    public func int(_ name: String, in range: ClosedRange<Int>) throws -> Int? {
        guard let v = value(name) else { return nil }
        let allowed = "a whole number " + (range.upperBound == Int.max ? "≥ \(range.lowerBound)" : "from \(range.lowerBound) to \(range.upperBound)")
        guard let s = v.scalar?.string, let i = Int(s.replacingOccurrences(of: "_", with: "")) else {
            throw error(name, "expected \(allowed), got \(Self.describe(v))")
        }
        guard range.contains(i) else { throw error(name, "expected \(allowed), got \(s)") }
        return i
    }

    /// A whole number of at least `low`.
    public func int(_ name: String, min low: Int) throws -> Int? { try int(name, in: low...Int.max) }

    /// A finite number within the bounds given (`min`/`max` inclusive, `above`/`below` exclusive).
    public func double(_ name: String, min low: Double? = nil, max high: Double? = nil, above: Double? = nil, below: Double? = nil) throws -> Double? {
        guard let v = value(name) else { return nil }
        let bounds = [low.map { "≥ \(Self.text($0))" }, above.map { "> \(Self.text($0))" }, high.map { "≤ \(Self.text($0))" },
                      below.map { "< \(Self.text($0))" }].compactMap { $0 }
        let allowed = "a number" + (bounds.isEmpty ? "" : " " + bounds.joined(separator: " and "))
        guard let s = v.scalar?.string, let x = Self.number(s) else { throw error(name, "expected \(allowed), got \(Self.describe(v))") }
        if let low, x < low { throw error(name, "expected \(allowed), got \(s)") }
        if let high, x > high { throw error(name, "expected \(allowed), got \(s)") }
        if let above, x <= above { throw error(name, "expected \(allowed), got \(s)") }
        if let below, x >= below { throw error(name, "expected \(allowed), got \(s)") }
        return x
    }

    /// A list of finite numbers, of `count` items when given.
    public func doubles(_ name: String, count: Int? = nil) throws -> [Double]? {
        guard let v = value(name) else { return nil }
        let allowed = "a list of \(count.map { "\($0) " } ?? "")numbers"
        guard let items = v.sequence else { throw error(name, "expected \(allowed), got \(Self.describe(v))") }
        if let count, items.count != count { throw error(name, "expected \(allowed), got \(items.count)") }
        return try items.map { item in
            guard let s = item.scalar?.string, let x = Self.number(s) else {
                throw ConfigError(path: path, line: item.mark?.line, key: full(name), message: "expected \(allowed), got \(Self.describe(item)) in it")
            }
            return x
        }
    }

    /// A list of distinct names, each one of `choices`.
    public func strings(_ name: String, oneOf choices: [String]) throws -> [String]? {
        guard let v = value(name) else { return nil }
        let allowed = "a list of distinct names from \(choices.joined(separator: ", "))"
        guard let items = v.sequence else { throw error(name, "expected \(allowed), got \(Self.describe(v))") }
        var names: [String] = []
        for item in items {
            guard let s = item.scalar?.string, choices.contains(s), !names.contains(s) else {
                throw ConfigError(path: path, line: item.mark?.line, key: full(name), message: "expected \(allowed), got \(Self.describe(item)) in it")
            }
            names.append(s)
        }
        return names
    }

    /// Rejects every key of this mapping that was not read, at its line, naming the keys that were.
    public func finish() throws {
        for e in entries where !read.contains(e.name) {
            throw ConfigError(path: path, line: e.key.mark?.line, key: full(e.name),
                              message: "unknown key; allowed keys\(key.isEmpty ? "" : " under \(key)"): \(read.joined(separator: ", "))")
        }
    }

    private static func join(_ key: String, _ name: String) -> String { key.isEmpty ? name : "\(key).\(name)" }

    private static func isNull(_ node: Node) -> Bool {
        guard let s = node.scalar, s.style == .plain || s.style == .any else { return false }
        return ["", "~", "null", "Null", "NULL"].contains(s.string)
    }

    private static func bool(_ s: String) -> Bool? {
        switch s.lowercased() {
        case "true", "yes", "on": return true
        case "false", "no", "off": return false
        default: return nil
        }
    }

    private static func number(_ s: String) -> Double? {
        guard let x = Double(s.replacingOccurrences(of: "_", with: "")), x.isFinite else { return nil }
        return x
    }

    /// A number as a person writes it: 2, not 2.0.
    private static func text(_ x: Double) -> String { x == x.rounded() && abs(x) < 1e15 ? String(Int(x)) : "\(x)" }

    private static func oneOf(_ choices: [String]) -> String { "one of \(choices.joined(separator: ", "))" }

    /// What a node holds, for "got …": a scalar's text in quotes, or its kind.
    private static func describe(_ node: Node) -> String {
        if let s = node.scalar { return "\"\(s.string)\"" }
        return node.mapping != nil ? "a mapping" : "a list"
    }

    /// A Yams error as "path:line: not valid YAML: problem".
    private static func invalidYAML(_ error: Swift.Error, path: String) -> ConfigError {
        if let e = error as? YamlError {
            switch e {
            case .scanner(_, let problem, let mark, _), .parser(_, let problem, let mark, _), .composer(_, let problem, let mark, _):
                return ConfigError(path: path, line: mark.line, message: "not valid YAML: \(problem)")
            default: break
            }
        }
        return ConfigError(path: path, message: "not valid YAML: \(error)")
    }
}
