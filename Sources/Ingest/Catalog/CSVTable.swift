import Foundation

/// A small RFC 4180 CSV reader (quoted fields, doubled quotes, CRLF) for the RSNA metadata files.
public struct CSVTable: Sendable {
    /// Column names from the first record, whitespace-trimmed.
    public var header: [String]
    /// The records after the header, fields as read (rows may be shorter or longer than the header).
    public var rows: [[String]]

    /// Index of a header column.
    public func column(_ name: String) -> Int? { header.firstIndex(of: name) }

    /// Reads and parses a CSV file; the first row is the header.
    public static func read(_ path: String) throws -> CSVTable {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw GDCMError(path: path, message: "cannot read CSV file")
        }
        return parse(String(decoding: data, as: UTF8.self))
    }

    /// Parses CSV text; the first row is the header.
    public static func parse(_ text: String) -> CSVTable {
        var records: [[String]] = []
        var field = "", record: [String] = []
        var quoted = false, wasQuoted = false
        var it = text.unicodeScalars.makeIterator()
        var pending: Unicode.Scalar? = nil
        func endRecord() {
            record.append(field); field = ""
            if !(record.count == 1 && record[0].isEmpty && !wasQuoted) { records.append(record) }
            record = []; wasQuoted = false
        }
        while let c = pending ?? it.next() {
            pending = nil
            if quoted {
                if c == "\"" {
                    if let n = it.next() {
                        if n == "\"" { field.unicodeScalars.append("\"") } else { quoted = false; pending = n }
                    } else { quoted = false }
                } else { field.unicodeScalars.append(c) }
                continue
            }
            switch c {
            case "\"": quoted = true; wasQuoted = true
            case ",": record.append(field); field = ""
            case "\r": continue
            case "\n": endRecord()
            default: field.unicodeScalars.append(c)
            }
        }
        if !field.isEmpty || !record.isEmpty { endRecord() }
        let header = records.first?.map { $0.trimmingCharacters(in: .whitespaces) } ?? []
        return CSVTable(header: header, rows: Array(records.dropFirst()))
    }
}
