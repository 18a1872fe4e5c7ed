import Foundation

/// The physical ranges a value read from a file must lie in before any arithmetic uses it (issue 32). A value outside
/// them is a damaged or crafted header, never an MR scanner's: the file (or the frame) is skipped with its reason.
/// Named once here; `DicomHeader.headerProblem`, `geometry(frame:)` and the decode check against them.
public enum ValueLimits {
    /// Pixel Spacing, each of its two values: 1 µm to 50 mm.
    public static let pixelSpacing: ClosedRange<Double> = 0.001...50
    /// Image Position (Patient), each coordinate: within ±10 m of the scanner's origin (mm).
    public static let position: ClosedRange<Double> = -10_000...10_000
    /// Slice Thickness and Spacing Between Slices: up to 500 mm (0 reads as absent).
    public static let thickness: ClosedRange<Double> = 0...500
    /// Rescale Slope, its magnitude: 10⁻⁶ to 10⁶ (a stored value times it stays a finite float).
    public static let rescaleSlopeMagnitude: ClosedRange<Double> = 1e-6...1e6
    /// Rescale Intercept: within ±10⁷.
    public static let rescaleIntercept: ClosedRange<Double> = -1e7...1e7
    /// Bits Allocated: 1 to 32.
    public static let bitsAllocated: ClosedRange<Int> = 1...32
    /// How far each Image Orientation (Patient) vector's length may be from 1, and their dot product from 0.
    public static let orientationTolerance = 0.01

    /// Why a rescale is refused; nil when it is usable.
    static func rescaleProblem(slope: Double, intercept: Double) -> String? {
        guard slope.isFinite, intercept.isFinite else {
            return "RescaleSlope \(slope) / RescaleIntercept \(intercept) is not a finite number"
        }
        guard rescaleSlopeMagnitude.contains(abs(slope)) else {
            return "RescaleSlope \(slope) is outside ±\(rescaleSlopeMagnitude.lowerBound) to ±\(rescaleSlopeMagnitude.upperBound)"
        }
        guard rescaleIntercept.contains(intercept) else {
            return "RescaleIntercept \(intercept) is outside ±\(rescaleIntercept.upperBound)"
        }
        return nil
    }

    /// Why a thickness or spacing between slices is refused; nil when it is usable or absent.
    static func thicknessProblem(_ name: String, _ value: Double?) -> String? {
        guard let value else { return nil }
        return value.isFinite && thickness.contains(value) ? nil : "\(name) \(value) mm is outside 0 to \(thickness.upperBound) mm"
    }
}

extension Double {
    /// `Int(self)` for a value that may be NaN, infinite or beyond Int's range: nil there instead of a trap.
    @inlinable
    public var checkedInt: Int? {
        guard isFinite, self > -9.2e18, self < 9.2e18 else { return nil }
        return Int(self)
    }
}
