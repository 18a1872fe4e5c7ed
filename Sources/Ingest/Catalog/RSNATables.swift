import Foundation
import Shards

/// The label tables of an RSNA-layout archive: `train.csv` and `train_label_coordinates.csv`.
public struct RSNATables: Sendable {
    /// Per study id: 25 classes (0, 1, 2; −1 empty) in `RSNA.labelColumns` order.
    public var labels: [String: [Int8]] = [:]
    /// Per study id: the label coordinate rows.
    public var coordinates: [String: [LabelCoordinate]] = [:]
    /// Problems met while reading the tables (file: reason).
    public var problems: [CatalogProblem] = []

    /// Empty tables: no labels, no coordinates, no problems.
    public init() {}

    /// Labels of a study, or all −1 when train.csv has no row for it.
    public func labels(for study: String) -> [Int8] { labels[study] ?? Array(repeating: -1, count: 25) }

    /// Reads whichever of the two tables exist under `root`.
    public static func load(root: String) -> RSNATables {
        var t = RSNATables()
        let train = root + "/train.csv"
        if FileManager.default.fileExists(atPath: train) {
            do {
                let csv = try CSVTable.read(train)
                guard let sid = csv.column("study_id") else {
                    t.problems.append(CatalogProblem(path: "train.csv", reason: "no study_id column"))
                    return t
                }
                let columns = RSNA.labelColumns.map { csv.column($0) }
                let absent = zip(RSNA.labelColumns, columns).filter { $0.1 == nil }.map(\.0)
                if !absent.isEmpty {
                    t.problems.append(CatalogProblem(path: "train.csv", reason: "missing label columns: \(absent.joined(separator: ", "))"))
                }
                for (n, row) in csv.rows.enumerated() where row.count > sid {
                    var classes = [Int8](repeating: -1, count: 25)
                    for (i, c) in columns.enumerated() {
                        guard let c, c < row.count else { continue }
                        let cell = row[c]
                        classes[i] = RSNA.severityClass(cell)
                        if classes[i] < 0 && !cell.trimmingCharacters(in: .whitespaces).isEmpty {
                            t.problems.append(CatalogProblem(path: "train.csv", reason: "row \(n + 2): unknown severity '\(cell)' in \(RSNA.labelColumns[i])"))
                        }
                    }
                    t.labels[row[sid]] = classes
                }
            } catch {
                t.problems.append(CatalogProblem(path: "train.csv", reason: "\(error)"))
            }
        }
        let coords = root + "/train_label_coordinates.csv"
        if FileManager.default.fileExists(atPath: coords) {
            do {
                let csv = try CSVTable.read(coords)
                let need = ["study_id", "series_id", "instance_number", "condition", "level", "x", "y"]
                let idx = need.map { csv.column($0) }
                guard idx.allSatisfy({ $0 != nil }) else {
                    t.problems.append(CatalogProblem(path: "train_label_coordinates.csv", reason: "needs the columns \(need.joined(separator: ", "))"))
                    return t
                }
                let i = idx.map { $0! }
                // Optional: the frame of a multi-frame file (1-based); empty for single-frame files.
                let frameColumn = csv.column(LabelCoordinate.frameColumn)
                // A table has a few distinct (condition, level) pairs in many rows: each is mapped once.
                var labelOf: [String: Int?] = [:]
                for (n, row) in csv.rows.enumerated() where row.count > i.max()! {
                    let frameCell = frameColumn.flatMap { $0 < row.count ? row[$0].trimmingCharacters(in: .whitespaces) : nil } ?? ""
                    let frame = frameCell.isEmpty ? nil : Int(frameCell)
                    let pair = row[i[3]] + "\u{0}" + row[i[4]]
                    let mapped = labelOf[pair] ?? {
                        let index = LabelCoordinate.labelIndex(condition: row[i[3]], level: row[i[4]])
                        labelOf[pair] = index
                        return index
                    }()
                    guard let label = mapped,
                          let instance = Int(row[i[2]]), let x = Double(row[i[5]]), let y = Double(row[i[6]]),
                          frameCell.isEmpty || (frame ?? 0) >= 1 else {
                        t.problems.append(CatalogProblem(path: "train_label_coordinates.csv", reason: "row \(n + 2): cannot read \(row)"))
                        continue
                    }
                    t.coordinates[row[i[0]], default: []].append(
                        LabelCoordinate(seriesID: row[i[1]], instanceNumber: instance, labelIndex: label, x: x, y: y, frameNumber: frame))
                }
            } catch {
                t.problems.append(CatalogProblem(path: "train_label_coordinates.csv", reason: "\(error)"))
            }
        }
        return t
    }
}

extension LabelCoordinate {
    /// The optional column of train_label_coordinates.csv naming the frame of a multi-frame file (data-schema.md).
    public static let frameColumn = "frame_number"

    /// The label column of a condition and level as Kaggle spells them ("Spinal Canal Stenosis", "L1/L2").
    public static func labelIndex(condition: String, level: String) -> Int? {
        let c = condition.lowercased().replacingOccurrences(of: " ", with: "_")
        let l = level.lowercased().replacingOccurrences(of: "/", with: "_")
        return RSNA.labelColumns.firstIndex(of: "\(c)_\(l)")
    }
}
