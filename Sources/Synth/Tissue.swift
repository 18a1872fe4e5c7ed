/// The tissue classes the phantom is built from.
enum Tissue: Int, CaseIterable {
    case air, fat, muscle, viscera, vessel, marrow, cortex, nucleus, annulus, csf, cord, root, ligament, bone
}

/// An MR contrast: how bright each tissue is, on a 0...1 scale before gain and noise.
enum SynthContrast: Sendable {
    /// T1-weighted spin echo: fat and marrow bright, CSF dark.
    case t1
    /// T2-weighted fast spin echo: CSF and disc nuclei bright, fat fairly bright.
    case t2
    /// Short-tau inversion recovery: like T2 but fat suppressed (dark).
    case stir

    /// Relative signal of each tissue, indexed by `Tissue.rawValue` (a disc nucleus is scaled by
    /// its hydration separately). Built on each access: read it once per image.
    var signals: [Float] {
        //              air  fat   musc  visc  vess  marr  cort  nucl  annu  csf   cord  root  lig   bone
        switch self {
        case .t1: return [0.0, 0.95, 0.35, 0.40, 0.05, 0.72, 0.08, 0.38, 0.30, 0.12, 0.45, 0.40, 0.10, 0.42]
        case .t2: return [0.0, 0.72, 0.25, 0.35, 0.04, 0.45, 0.06, 0.85, 0.18, 1.00, 0.45, 0.30, 0.08, 0.28]
        case .stir: return [0.0, 0.07, 0.26, 0.35, 0.04, 0.20, 0.05, 0.80, 0.18, 1.00, 0.45, 0.30, 0.07, 0.14]
        }
    }
}
