import Core
import Foundation

/// Predicted points as a person draws them: one CSV row per study, condition and level with the point in patient space
/// (LPS mm) and, when the DICOM archive is at hand, the series that condition is read on (RSNA's convention: the spinal
/// canal on Sagittal T2/STIR, the foramina on Sagittal T1, the recesses on Axial T2), its slice nearest to the point
/// and the pixel there, as train_label_coordinates.csv gives them.
public enum KeypointsTable {
    /// The header, in this order.
    public static let header = "study_id,condition,level,x,y,z,series_id,instance_number,pixel_x,pixel_y"

    /// The series kind each condition (`RSNA.conditions` order) is read on.
    public static let seriesOfCondition: [SeriesKind] = [.sagittalT2, .sagittalT1, .sagittalT1, .axialT2, .axialT2]

    /// The CSV of `points` (study id → 25 × (x, y, z) patient mm, label-column order); with `catalog` and the archive's
    /// `root`, each row also names the nearest slice and its pixel (empty where the study or series is not there).
    public static func csv(points: [Int64: [Double]], catalog: Catalog? = nil, root: String? = nil) -> String {
        let studies = Dictionary((catalog?.studies ?? []).map { (StudyFusion.sampleID($0), $0) }, uniquingKeysWith: { a, _ in a })
        var lines = [header]
        for (id, p) in points.sorted(by: { $0.key < $1.key }) {
            for column in 0..<RSNA.labelColumns.count {
                let condition = column / RSNA.levels.count, level = column % RSNA.levels.count
                let point = Vec3(p[3 * column], p[3 * column + 1], p[3 * column + 2])
                var slice = ",,,"
                if let study = studies[id], let root, let series = study.primarySeries(seriesOfCondition[condition]),
                   let at = series.nearestSlice(to: point, root: root) {
                    slice = "\(series.seriesID),\(at.instanceNumber),\(format(at.column)),\(format(at.row))"
                }
                lines.append("\(id),\(RSNA.conditionTitles[condition]),\(RSNA.levelTitles[level]),\(format(point.x)),\(format(point.y)),\(format(point.z)),\(slice)")
            }
        }
        return lines.joined(separator: "\n") + "\n"
    }

    static func format(_ v: Double) -> String { String(format: "%.2f", v) }
}

extension CatalogSeries {
    /// The image of this series nearest to `point` (distance along its stack's normal) and the point's pixel there
    /// (row, column: fractional, pixel centres at integers); nil when the image's header cannot be read.
    public func nearestSlice(to point: Vec3, root: String) -> (instanceNumber: Int, row: Double, column: Double, distance: Double)? {
        var best: (image: CatalogImage, distance: Double)?
        for stack in stacks {
            for image in stack.images {
                let d = (point - image.position).dot(stack.normal)
                if best.map({ abs(d) < abs($0.distance) }) ?? true { best = (image, d) }
            }
        }
        guard let best, let header = try? DicomReader.readHeader(root + "/" + best.image.path),
              case .success(let geometry) = header.geometry(frame: best.image.frame) else { return nil }
        let at = geometry.pixelCoordinates(of: point)
        return (best.image.instanceNumber ?? 0, at.row, at.column, at.distance)
    }
}
