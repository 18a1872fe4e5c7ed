import Foundation
@testable import Ingest
import XCTest

/// `CSVTable`, the one reader of the RSNA tables: what spreadsheets and editors write reads the same as a plain file,
/// and what it refuses is named with its file, line and column.
final class CSVTableTests: XCTestCase {
    /// The cells of `columns` in every record, found by name.
    private func values(_ t: CSVTable, _ columns: [String]) -> [[String]] {
        let idx = columns.map { t.column($0)! }
        return t.records.map { r in idx.map { r.cells[$0] } }
    }

    func testSpreadsheetVariantsReadAsThePlainFile() {
        let plain = CSVTable.parse("study_id,series_id,series_description\n4242,101,Sagittal T2/STIR\n4242,202,Axial T2\n", name: "d.csv")
        // BOM, CRLF, every cell quoted, columns reordered and upper-cased, spaces around names and cells, an extra
        // column holding a comma and a line break, a blank line and a line of empty cells (Excel's padding).
        let variant = CSVTable.parse("\u{FEFF}\"Series_Description \",\"notes\", \"STUDY_ID\",\"series_id\"\r\n"
            + "\" Sagittal T2/STIR \",\"a, b\r\nand c\",\" 4242\", \"101\" \r\n\r\n,,,\r\n"
            + "\"Axial T2\",\"\",\"4242\",\"202\"\r\n", name: "d.csv")
        let columns = ["study_id", "series_id", "series_description"]
        XCTAssertEqual(values(variant, columns), values(plain, columns))
        XCTAssertEqual(values(plain, columns), [["4242", "101", "Sagittal T2/STIR"], ["4242", "202", "Axial T2"]])
        XCTAssertEqual(variant.header, ["Series_Description", "notes", "STUDY_ID", "series_id"])
        XCTAssertEqual(variant.records.map { $0.cells[1] }, ["a, b\nand c", ""])
        // Lines are the file's: the embedded line break moves the second record to line 6.
        XCTAssertEqual(variant.records.map(\.line), [2, 6])
        XCTAssertEqual(variant.problems, [])
        // Old Mac line ends (lone CR) and the UTF-8 BOM through the byte decoder.
        let bytes = Data([0xEF, 0xBB, 0xBF]) + Data("study_id,series_id,series_description\r4242,101,Sagittal T2/STIR\r4242,202,Axial T2\r".utf8)
        XCTAssertEqual(values(CSVTable.parse(CSVTable.decode(bytes)), columns), values(plain, columns))
    }

    func testRefusedRecordsAreNamedWithTheirLineAndColumn() {
        let t = CSVTable.parse("a,b,c\n1,\"two\nlines\",3\n4,5\n6,7,8,9\n10,11,12,,\n13,\"open,14\n15,16,17\n", name: "t.csv")
        // Line 2 holds a record spanning lines 2–3; line 4 lacks a cell; line 5 has a fourth non-empty cell; line 6 has
        // empty cells beyond the header (harmless); line 7 opens a quote that never closes.
        XCTAssertEqual(t.records.map(\.line), [2, 6])
        XCTAssertEqual(t.records.map(\.cells), [["1", "two\nlines", "3"], ["10", "11", "12"]])
        XCTAssertEqual(t.problems.map(\.line), [7, 4, 5])
        XCTAssertEqual(t.problems.map(\.column), [2, nil, 4])
        XCTAssertEqual(t.problems.map(\.path), ["t.csv", "t.csv", "t.csv"])
        XCTAssertTrue(t.problems[0].reason.hasPrefix("line 7, column 2: a quoted cell opened here is never closed"), t.problems[0].reason)
        XCTAssertTrue(t.problems[1].reason.hasPrefix("line 4: 2 cells under 3 columns"), t.problems[1].reason)
        XCTAssertTrue(t.problems[2].reason.hasPrefix("line 5, column 4: a cell beyond the header's 3 columns ('9'"), t.problems[2].reason)
        XCTAssertEqual(t.refused.map(\.line), [4, 5])
        // A name given twice is found by neither column.
        let twice = CSVTable.parse("x,X\n1,2\n", name: "t.csv")
        XCTAssertNil(twice.column("x"))
        XCTAssertEqual(twice.problems.map(\.column), [2])
        XCTAssertEqual(twice.missing(["x", "y"]).reason, "line 1: needs the columns x, y; cannot find x, y (the header reads 'x', 'X')")
    }

    func testIDsAreWholeNumbersInTheirCanonicalForm() {
        XCTAssertEqual(RSNAID.canonical("4003253"), "4003253")
        XCTAssertEqual(RSNAID.canonical("4003253.0"), "4003253")
        XCTAssertEqual(RSNAID.canonical("004003253"), "4003253")
        XCTAssertNil(RSNAID.canonical("4.00325E+06"))
        XCTAssertNil(RSNAID.canonical("abc"))
        XCTAssertNil(RSNAID.canonical(""))
        XCTAssertNil(RSNAID.canonical("4003253.5"))
        XCTAssertEqual(RSNAID.folderKey("1.2.840.1"), "1.2.840.1")
        XCTAssertEqual(RSNASeriesDescriptions.kind(description: "  sagittal   t2/stir "), .sagittalT2)
        XCTAssertNil(RSNASeriesDescriptions.kind(description: "Sagittal T2"))
        XCTAssertEqual(LabelCoordinate.labelIndex(condition: " left neural foraminal narrowing", level: "l5 / s1"), 9)
    }
}

extension CSVTableTests {
    func testSampleSubmissionGivesItsStudiesAndNamesBadRowIDs() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("fuse3d-sample-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let path = dir.appendingPathComponent("sample_submission.csv").path
        let text = "\u{FEFF}\"normal_mild\",\"ROW_ID\",moderate,severe\r\n0.33,\" 44036939_spinal_canal_stenosis_l1_l2 \",0.33,0.33\r\n"
            + "0.33,44036939_Left_Neural_Foraminal_Narrowing_L5_S1,0.33,0.33\r\n0.33,4003253_spinal_canal_stenosis_l1_l2,0.33,0.33\r\n"
            + "0.33,4003253_spinal_l1,0.33,0.33\r\n"
        try Data(text.utf8).write(to: URL(fileURLWithPath: path))
        let read = SampleSubmission.read(path)
        XCTAssertEqual(read.studies, ["44036939", "4003253"])
        XCTAssertEqual(read.problems.map(\.line), [5])
        XCTAssertEqual(read.problems.map(\.column), [2])
        XCTAssertTrue(read.problems[0].reason.hasPrefix("line 5, column 2 (ROW_ID): '4003253_spinal_l1' is not a row id"), read.problems[0].reason)
    }
}
