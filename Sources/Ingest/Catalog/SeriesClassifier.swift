import Foundation

/// The plane a series was acquired in, from its slice normal's dominant patient axis.
public enum Plane: String, Codable, Sendable {
    case sagittal, coronal, axial, mixed, unknown

    /// The plane whose normal is closest to `normal` (LPS: x → sagittal, y → coronal, z → axial).
    public static func of(normal n: Vec3) -> Plane {
        let ax = abs(n.x), ay = abs(n.y), az = abs(n.z)
        if ax == 0 && ay == 0 && az == 0 { return .unknown }
        if ax >= ay && ax >= az { return .sagittal }
        return ay >= az ? .coronal : .axial
    }
}

/// Decides a series' kind from its DICOM tags when no RSNA series-descriptions CSV names it:
/// localizers and derived images first, then orientation, then contrast (description keywords,
/// then echo, repetition and inversion times).
public enum SeriesClassifier {
    /// The decision and the evidence it rests on.
    public struct Decision: Equatable, Sendable {
        /// The kind decided on (`.other` for localizers, derived images and unclear contrast).
        public var kind: SeriesKind
        /// The evidence in words, e.g. "description says T1" or the TE/TR that decided it.
        public var reason: String
    }

    /// Classifies one series from its description, plane, timing, image type and slice count.
    public static func classify(description: String, plane: Plane, echoTime: Double?, repetitionTime: Double?,
                                inversionTime: Double?, imageType: String, sliceCount: Int) -> Decision {
        let d = description.lowercased()
        let tokens = Set(d.split(whereSeparator: { !$0.isLetter && !$0.isNumber }).map(String.init))
        let localizerWords = ["localizer", "localiser", "scout", "survey", "loc", "3plane", "tri", "pilot"]
        let type = imageType.uppercased()
        if type.contains("LOCALIZER") || localizerWords.contains(where: tokens.contains) || d.contains("3-plane") {
            return Decision(kind: .other, reason: "localizer (image type or description)")
        }
        if type.hasPrefix("DERIVED") || tokens.contains("mpr") || tokens.contains("reformat") {
            return Decision(kind: .other, reason: "derived image (image type or description)")
        }
        if plane == .mixed {
            return Decision(kind: .other, reason: "slices in several planes (a localizer or survey)")
        }
        if sliceCount < 3 {
            return Decision(kind: .other, reason: "only \(sliceCount) slice(s)")
        }
        let contrast: String
        let because: String
        if tokens.contains("stir") || d.contains("tirm") || tokens.contains("t2") || d.contains("t2w") || d.contains("t2_") {
            contrast = "t2"; because = "description says T2/STIR"
        } else if tokens.contains("t1") || d.contains("t1w") || d.contains("t1_") {
            contrast = "t1"; because = "description says T1"
        } else if let ti = inversionTime, ti > 80, ti < 300 {
            contrast = "t2"; because = String(format: "short inversion time %.0f ms (STIR)", ti)
        } else if let te = echoTime, let tr = repetitionTime {
            if te >= 60 && tr >= 1500 {
                contrast = "t2"; because = String(format: "TE %.0f ms, TR %.0f ms (T2-weighted)", te, tr)
            } else if te <= 30 && tr <= 1000 {
                contrast = "t1"; because = String(format: "TE %.0f ms, TR %.0f ms (T1-weighted)", te, tr)
            } else {
                return Decision(kind: .other, reason: String(format: "TE %.0f ms, TR %.0f ms: neither T1- nor T2-weighted", te, tr))
            }
        } else {
            return Decision(kind: .other, reason: "no description keyword and no echo/repetition time")
        }
        switch (plane, contrast) {
        case (.sagittal, "t1"): return Decision(kind: .sagittalT1, reason: "sagittal; \(because)")
        case (.sagittal, "t2"): return Decision(kind: .sagittalT2, reason: "sagittal; \(because)")
        case (.axial, "t2"): return Decision(kind: .axialT2, reason: "axial; \(because)")
        default: return Decision(kind: .other, reason: "\(plane.rawValue) \(contrast.uppercased()) is not one of the fused series")
        }
    }
}
