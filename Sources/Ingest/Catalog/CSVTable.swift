import Foundation

/// The one CSV reader of the RSNA tables (train.csv, train_series_descriptions.csv, train_label_coordinates.csv,
/// test_series_descriptions.csv, sample_submission.csv), tolerant of what Excel, pandas, R and text editors write,
/// and loud about what it cannot read:
/// - RFC 4180: quoted cells with doubled quotes, embedded commas and line breaks; CRLF, LF or lone CR line ends;
/// - a UTF-8 byte-order mark is dropped (Excel's "CSV UTF-8"); UTF-16 with a byte-order mark is decoded; bytes that
///   are not UTF-8 are read as Windows-1252 (the tables' values are ASCII, so nothing that matters changes);
/// - every cell and header name is trimmed of spaces and tabs (also before an opening and after a closing quote);
///   blank lines and lines of empty cells are skipped;
/// - columns are found by header name, trimmed and case-insensitive, in any order; extra columns are ignored;
/// - refused, each named with the file, the line where its record starts (line breaks inside quoted cells count)
///   and the column: a record with fewer cells than the header or non-empty cells beyond it (a missing or extra
///   comma would shift every later cell into another column), a quoted cell never closed, a header name given twice.
public struct CSVTable: Sendable {
    /// One record after the header: the physical line (1-based) where it starts, and its trimmed cells.
    public struct Record: Sendable, Equatable {
        /// The line of the file where the record starts (line breaks inside quoted cells count).
        public var line: Int
        /// The cells, trimmed; as many as the header has names (empty cells beyond it are dropped).
        public var cells: [String]
    }

    /// The file's name in messages (a path relative to the archive, e.g. "train.csv").
    public var name: String
    /// Column names from the first record, trimmed, without a byte-order mark.
    public var header: [String]
    /// The records after the header that were read.
    public var records: [Record]
    /// What the reader refused (records, unclosed quotes, names given twice), each with its file, line and column.
    public var problems: [CatalogProblem]
    /// The records refused for their number of cells (named in `problems`), as read, so a table can say whose they were.
    public var refused: [Record] = []

    /// The records' cells.
    public var rows: [[String]] { records.map(\.cells) }

    /// The index of a header column, found by name (trimmed, case-insensitive); nil when absent or given twice.
    public func column(_ name: String) -> Int? {
        let key = Self.key(name)
        let found = header.indices.filter { Self.key(header[$0]) == key }
        return found.count == 1 ? found[0] : nil
    }

    /// The indices of `names` in order; nil when one cannot be found (`missing(names)` says which).
    public func columns(_ names: [String]) -> [Int]? {
        let found = names.compactMap { column($0) }
        return found.count == names.count ? found : nil
    }

    /// The problem of a header without some of `names`: which cannot be found, and the header as read.
    public func missing(_ names: [String]) -> CatalogProblem {
        let absent = names.filter { column($0) == nil }
        let shown = header.map { "'\($0)'" }.joined(separator: ", ")
        return CatalogProblem(path: name, reason: "line 1: needs the column\(names.count == 1 ? "" : "s") "
            + "\(names.joined(separator: ", ")); cannot find \(absent.joined(separator: ", ")) (the header reads \(shown.isEmpty ? "nothing" : shown))",
            line: 1)
    }

    /// A problem with one cell: "line L, column C (name): what".
    public func problem(_ record: Record, _ column: Int, _ what: String) -> CatalogProblem {
        CatalogProblem(path: name, reason: "line \(record.line), column \(column + 1) (\(header[column])): \(what)",
                       line: record.line, column: column + 1)
    }

    /// A problem with a whole record: "line L: what".
    public func problem(_ record: Record, _ what: String) -> CatalogProblem {
        CatalogProblem(path: name, reason: "line \(record.line): \(what)", line: record.line)
    }

    /// Reads and parses a CSV file; the first record is the header. `name` names it in problems (default: its file name).
    public static func read(_ path: String, name: String? = nil) throws -> CSVTable {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw GDCMError(path: path, message: "cannot read CSV file")
        }
        return parse(decode(data), name: name ?? (path as NSString).lastPathComponent)
    }

    /// The text of a CSV file's bytes: UTF-8 without its byte-order mark, UTF-16 after its mark, else Windows-1252.
    public static func decode(_ data: Data) -> String {
        let bytes = [UInt8](data.prefix(3))
        if bytes.starts(with: [0xEF, 0xBB, 0xBF]) { return String(decoding: data.dropFirst(3), as: UTF8.self) }
        if bytes.starts(with: [0xFF, 0xFE]) || bytes.starts(with: [0xFE, 0xFF]) {
            if let s = String(data: data, encoding: .utf16) { return s.hasPrefix("\u{FEFF}") ? String(s.dropFirst()) : s }
        }
        if let s = String(data: data, encoding: .utf8) { return s }
        return String(data: data, encoding: .windowsCP1252) ?? String(decoding: data, as: UTF8.self)
    }

    /// Parses CSV text; the first record is the header. `name` names the file in problems.
    public static func parse(_ text: String, name: String = "CSV") -> CSVTable {
        var raw: [(line: Int, cells: [String])] = []
        var problems: [CatalogProblem] = []
        var field = String.UnicodeScalarView(), record: [String] = []
        // quoted: inside quotes; closed: a quoted cell's closing quote was met (spaces after it are dropped).
        var quoted = false, closed = false
        var line = 1, recordLine = 1, quoteLine = 1, quoteColumn = 1
        var scalars = text.unicodeScalars[...]
        if scalars.first == "\u{FEFF}" { scalars = scalars.dropFirst() }
        func endField() {
            record.append(trim(String(field)))
            field = String.UnicodeScalarView()
            closed = false
        }
        func endRecord() {
            endField()
            if record.contains(where: { !$0.isEmpty }) { raw.append((recordLine, record)) }
            record = []
        }
        var i = scalars.startIndex
        while i < scalars.endIndex {
            let c = scalars[i]
            i = scalars.index(after: i)
            if quoted {
                if c == "\"" {
                    if i < scalars.endIndex && scalars[i] == "\"" {
                        field.append("\"")
                        i = scalars.index(after: i)
                    } else {
                        quoted = false
                        closed = true
                    }
                } else if c == "\r" {
                    // A line break inside a quoted cell is kept as "\n" and counted.
                    if i < scalars.endIndex && scalars[i] == "\n" { i = scalars.index(after: i) }
                    field.append("\n")
                    line += 1
                } else {
                    if c == "\n" { line += 1 }
                    field.append(c)
                }
                continue
            }
            switch c {
            case "\"" where !closed && String(field).allSatisfy({ $0 == " " || $0 == "\t" }):
                field = String.UnicodeScalarView()
                quoted = true
                quoteLine = line
                quoteColumn = record.count + 1
            case ",":
                endField()
            case "\r", "\n":
                if c == "\r" && i < scalars.endIndex && scalars[i] == "\n" { i = scalars.index(after: i) }
                endRecord()
                line += 1
                recordLine = line
            default:
                // Text after a closing quote, or a quote inside an unquoted cell, is kept as it is (as Python's csv does).
                if closed && (c == " " || c == "\t") { continue }
                field.append(c)
            }
        }
        if quoted {
            problems.append(CatalogProblem(
                path: name, reason: "line \(quoteLine), column \(quoteColumn): a quoted cell opened here is never closed; "
                    + "the rest of the file from line \(recordLine) is not read", line: quoteLine, column: quoteColumn))
            record = []
            field = String.UnicodeScalarView()
        } else if !field.isEmpty || !record.isEmpty {
            endRecord()
        }

        guard let first = raw.first else { return CSVTable(name: name, header: [], records: [], problems: problems) }
        var header = first.cells
        while header.last == "" { header.removeLast() }  // Excel pads rows with empty cells
        var seen: [String: Int] = [:]
        for (n, h) in header.enumerated() where !h.isEmpty {
            if let earlier = seen[key(h)] {
                problems.append(CatalogProblem(path: name, reason: "line \(first.line), column \(n + 1): the column '\(h)' is "
                    + "also column \(earlier + 1); neither is read", line: first.line, column: n + 1))
            } else {
                seen[key(h)] = n
            }
        }
        var records: [Record] = [], refused: [Record] = []
        records.reserveCapacity(raw.count - 1)
        for (recordLine, cells) in raw.dropFirst() {
            if cells.count < header.count {
                problems.append(CatalogProblem(path: name, reason: "line \(recordLine): \(cells.count) cells under \(header.count) "
                    + "columns (a comma missing would shift the cells after it); the row is not read", line: recordLine))
                refused.append(Record(line: recordLine, cells: cells))
            } else if let extra = cells.indices.dropFirst(header.count).first(where: { !cells[$0].isEmpty }) {
                problems.append(CatalogProblem(path: name, reason: "line \(recordLine), column \(extra + 1): a cell beyond the "
                    + "header's \(header.count) columns ('\(cells[extra])'; an extra comma would shift the cells after it); the row is not read",
                    line: recordLine, column: extra + 1))
                refused.append(Record(line: recordLine, cells: cells))
            } else {
                records.append(Record(line: recordLine, cells: Array(cells.prefix(header.count))))
            }
        }
        return CSVTable(name: name, header: header, records: records, problems: problems, refused: refused)
    }

    /// A header name as columns are looked up: trimmed, lowercased.
    static func key(_ name: String) -> String { trim(name).lowercased() }

    /// Spaces, tabs and a stray byte-order mark trimmed from both ends.
    static func trim(_ s: String) -> String {
        s.trimmingCharacters(in: CharacterSet(charactersIn: " \t\u{FEFF}\u{A0}"))
    }
}

/// RSNA ids as the tables write them.
public enum RSNAID {
    /// The canonical form of an id cell: its digits without leading zeros ("004003253" and pandas' "4003253.0" →
    /// "4003253"); nil when the cell is not a whole number that fits 63 bits.
    public static func canonical(_ cell: String) -> String? {
        var s = Substring(cell)
        if let dot = s.firstIndex(of: "."), s[s.index(after: dot)...].allSatisfy({ $0 == "0" }) { s = s[..<dot] }
        guard !s.isEmpty, s.allSatisfy({ $0.isASCII && $0.isNumber }), let n = Int64(s) else { return nil }
        return String(n)
    }

    /// A folder name's canonical form when it is a number, else the name itself.
    public static func folderKey(_ name: String) -> String { canonical(name) ?? name }
}
