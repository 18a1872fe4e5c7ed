import Foundation

/// How much a cohort's spines differ from study to study beyond the phantom's built-in spread, in the units a
/// radiologist uses: each study draws every amount uniformly in ±the given value, from its own random stream
/// (so a cohort made with `.none` is byte for byte what it was before variety existed).
///
/// Why: a localizer is only needed, and only tested, when the levels move between studies as in real patients:
/// spines sit at different heights in the field of view, tilt, curve more or less and differ in size.
public struct SpineVariety: Sendable, Equatable {
    /// Field-of-view placement: the spine's displacement in the sagittal field of view, superior–inferior and
    /// anterior–posterior (cm).
    public var shiftCentimetres: Double
    /// Tilt of the whole spine in the sagittal plane (degrees).
    public var tiltDegrees: Double
    /// Lordosis: change of the L1–S1 curve's angle (degrees).
    public var lordosisDegrees: Double
    /// Size of the vertebrae and discs, so also the level heights (percent).
    public var sizePercent: Double

    /// Variety of the given amounts (each ≥ 0).
    public init(shiftCentimetres: Double = 0, tiltDegrees: Double = 0, lordosisDegrees: Double = 0, sizePercent: Double = 0) {
        self.shiftCentimetres = shiftCentimetres
        self.tiltDegrees = tiltDegrees
        self.lordosisDegrees = lordosisDegrees
        self.sizePercent = sizePercent
    }

    /// The phantom's own spread only (levels move about 1.4 voxels of a 64³ grid between studies).
    public static let none = SpineVariety()
    /// What the demo uses: spines shifted up to ±1.5 cm, tilted ±10°, curved ±10° and sized ±8 %.
    public static let demo = SpineVariety(shiftCentimetres: 1.5, tiltDegrees: 10, lordosisDegrees: 10, sizePercent: 8)

    /// One study's draw.
    struct Draw: Sendable {
        /// Displacement of the spine in the sagittal field of view (mm): superior (+z) and posterior (+y).
        var shiftZ = 0.0, shiftY = 0.0
        /// Sagittal tilt (radians), lordosis change (radians), size factor.
        var tilt = 0.0, lordosis = 0.0, size = 1.0
    }

    /// Draws one study's amounts from its own stream; the zero variety draws nothing and gives the identity.
    func draw(_ rng: inout SynthRandom) -> Draw {
        guard self != .none else { return Draw() }
        let radians = Double.pi / 180
        func spread(_ amount: Double, _ rng: inout SynthRandom) -> Double { amount > 0 ? rng.uniform(-amount...amount) : 0 }
        return Draw(shiftZ: 10 * spread(shiftCentimetres, &rng), shiftY: 10 * spread(shiftCentimetres, &rng),
                    tilt: radians * spread(tiltDegrees, &rng), lordosis: radians * spread(lordosisDegrees, &rng),
                    size: 1 + spread(sizePercent, &rng) / 100)
    }
}
