import Core
import Foundation
import Ingest

extension PhantomStudy {
    /// MR Image Storage.
    static let mrImageStorage = SOPClass.mrImage
    /// Enhanced MR Image Storage (`--enhanced`: one file per series).
    static let enhancedMRImageStorage = SOPClass.enhancedMRImage

    /// Renders every series and writes `{imagesRoot}/{study_id}/{series_id}/{instance}.dcm`, plus the
    /// study's file-level quirks. Returns the number of files and bytes written.
    func write(to imagesRoot: URL) throws -> (files: Int, bytes: Int) {
        let fm = FileManager.default
        let studyDir = imagesRoot.appendingPathComponent(String(studyID))
        var rng = SynthRandom(seed: seed, 3, UInt64(index))
        let frameOfReference = rng.uid()
        var files = 0, bytes = 0
        for plan in plans {
            let slot = UInt64(PhantomStudy.seriesNumber(plan.kind))
            let seriesID = seriesIDs[plan.kind]!
            let seriesDir = studyDir.appendingPathComponent(String(seriesID))
            try fm.createDirectory(at: seriesDir, withIntermediateDirectories: true)
            var seriesRng = SynthRandom(seed: seed, 4, UInt64(index), slot)
            let renderer = SliceRenderer(rng: &seriesRng)
            let numbers = instanceNumbers(plan)
            let syntax = quirks.syntax[plan.kind] ?? .explicitLittleEndian
            if enhanced {
                let path = seriesDir.appendingPathComponent("1.dcm").path
                try writeEnhanced(plan, seriesID: seriesID, slot: slot, renderer: renderer, to: path, syntax: syntax,
                                  frameOfReference: frameOfReference)
                files += 1
                bytes += (try fm.attributesOfItem(atPath: path)[.size] as? Int) ?? 0
                continue
            }
            for (k, geometry) in plan.slices.enumerated() {
                var noiseRng = SynthRandom(seed: seed, 5, UInt64(index), slot, UInt64(k))
                let pixels = renderer.render(geometry, anatomy: anatomy, contrast: plan.contrast, rng: &noiseRng)
                let builder = try DICOMBuilder()
                try setTags(builder, plan: plan, seriesID: seriesID, instance: numbers[k],
                            geometry: geometry, frameOfReference: frameOfReference, renderer: renderer)
                try builder.setImage(pixels, geometry: geometry, bitsStored: 12)
                let path = seriesDir.appendingPathComponent("\(numbers[k]).dcm").path
                try builder.write(to: path, syntax: syntax)
                files += 1
                bytes += (try fm.attributesOfItem(atPath: path)[.size] as? Int) ?? 0
            }
        }
        try writeFileQuirks(studyDir)
        return (files, bytes)
    }

    /// The series as one Enhanced MR Image Storage file: the same pixels, values and geometry as its
    /// single-frame files, frame k being slice k in acquisition order. Its functional groups exercise
    /// both places a reader must look: Plane Position and Frame Content (StackID: the axial disc
    /// stack) per frame; Plane Orientation per frame where the stacks differ (axial), shared otherwise;
    /// Pixel Measures shared; the Pixel Value Transformation shared (Sagittal T1: stored = 2 × (value + 16))
    /// or per frame (stored = m × (value + b) with m and b changing from frame to frame).
    private func writeEnhanced(_ plan: SeriesPlan, seriesID: Int, slot: UInt64, renderer: SliceRenderer, to path: String,
                               syntax: SynthTransferSyntax, frameOfReference: String) throws {
        let builder = try DICOMBuilder()
        try setTags(builder, plan: plan, seriesID: seriesID, instance: 1, geometry: plan.slices[0],
                    frameOfReference: frameOfReference, renderer: renderer, sopClass: PhantomStudy.enhancedMRImageStorage)
        var shared: DICOMBuilder.SharedGroups = [.pixelMeasures]
        if plan.kind != .axialT2 && plan.kind != .other { shared.insert(.orientation) }
        if plan.kind == .sagittalT1 || plan.kind == .other { shared.insert(.transformation) }
        var inStack: [Int: Int] = [:]
        for (k, geometry) in plan.slices.enumerated() {
            var noiseRng = SynthRandom(seed: seed, 5, UInt64(index), slot, UInt64(k))
            let values = renderer.render(geometry, anatomy: anatomy, contrast: plan.contrast, rng: &noiseRng)
            let (multiplier, offset) = plan.kind == .other ? (1, 0) : shared.contains(.transformation) ? (2, 16) : ([2, 4][k % 2], 4 * (k % 5))
            let stored = values.map { UInt16((Int($0) + offset) * multiplier) }
            let stack = plan.kind == .axialT2 ? axialStacks[k] + 1 : 1
            inStack[stack, default: 0] += 1
            try builder.addFrame(stored, geometry: geometry, bitsStored: 16, slope: 1 / Double(multiplier),
                                 intercept: -Double(offset) + 0, stackID: stack, inStackPosition: inStack[stack]!)
        }
        try builder.writeEnhanced(to: path, syntax: syntax, shared: shared)
    }

    /// The patient, study, series, equipment, frame-of-reference, image and MR modules of one file.
    private func setTags(_ b: DICOMBuilder, plan: SeriesPlan, seriesID: Int, instance: Int,
                         geometry: SliceGeometry, frameOfReference: String, renderer: SliceRenderer,
                         sopClass: String = PhantomStudy.mrImageStorage) throws {
        let ds = PhantomStudy.decimal
        // SOP common
        try b.set(0x0008, 0x0005, "CS", "ISO_IR 100")
        try b.set(0x0008, 0x0008, "CS", plan.imageType)
        try b.set(0x0008, 0x0016, "UI", sopClass)
        try b.set(0x0008, 0x0018, "UI", "\(studyID).\(seriesID).\(instance)")
        // General study and series; dates come from the seed, never the clock.
        try b.set(0x0008, 0x0020, "DA", date)
        try b.set(0x0008, 0x0021, "DA", date)
        try b.set(0x0008, 0x0023, "DA", date)
        try b.set(0x0008, 0x0030, "TM", time)
        try b.set(0x0008, 0x0031, "TM", time)
        try b.set(0x0008, 0x0033, "TM", time)
        try b.set(0x0008, 0x0050, "SH", "")
        try b.set(0x0008, 0x0060, "CS", "MR")
        try b.set(0x0008, 0x0070, "LO", "Fuse3D")
        try b.set(0x0008, 0x0090, "PN", "")
        try b.set(0x0008, 0x103E, "LO", plan.description)
        try b.set(0x0008, 0x1090, "LO", "Phantom lumbar spine")
        // Patient
        try b.set(0x0010, 0x0010, "PN", "Phantom^\(studyID)")
        try b.set(0x0010, 0x0020, "LO", String(studyID))
        try b.set(0x0010, 0x0030, "DA", birthDate)
        try b.set(0x0010, 0x0040, "CS", sex)
        try b.set(0x0010, 0x1010, "AS", String(format: "%03dY", age))
        // MR image and acquisition
        try b.set(0x0018, 0x0015, "CS", "LSPINE")
        try b.set(0x0018, 0x0020, "CS", plan.scanningSequence)
        try b.set(0x0018, 0x0021, "CS", "SK\\SP")
        try b.set(0x0018, 0x0023, "CS", "2D")
        try b.set(0x0018, 0x0050, "DS", ds(geometry.thickness))
        try b.set(0x0018, 0x0080, "DS", ds(plan.repetitionTime))
        try b.set(0x0018, 0x0081, "DS", ds(plan.echoTime))
        if let ti = plan.inversionTime { try b.set(0x0018, 0x0082, "DS", ds(ti)) }
        try b.set(0x0018, 0x0087, "DS", ds(fieldStrength))
        if plan.spacing > 0 { try b.set(0x0018, 0x0088, "DS", ds(plan.spacing)) }
        try b.set(0x0018, 0x0091, "IS", String(plan.echoTrainLength))
        try b.set(0x0018, 0x5100, "CS", "HFS")
        // Study, series and instance identity (Kaggle's files use the integer ids as UIDs).
        try b.set(0x0020, 0x000D, "UI", String(studyID))
        try b.set(0x0020, 0x000E, "UI", String(seriesID))
        try b.set(0x0020, 0x0010, "SH", String(studyID % 100_000))
        try b.set(0x0020, 0x0011, "IS", String(PhantomStudy.seriesNumber(plan.kind)))
        try b.set(0x0020, 0x0012, "IS", "1")
        try b.set(0x0020, 0x0013, "IS", String(instance))
        try b.set(0x0020, 0x0052, "UI", frameOfReference)
        try b.set(0x0020, 0x1040, "LO", "")
        try b.set(0x0020, 0x1041, "DS", ds(geometry.normalOffset))
        // Display
        try b.set(0x0028, 0x1050, "DS", ds((renderer.gain * 0.5).rounded()))
        try b.set(0x0028, 0x1051, "DS", ds(renderer.gain.rounded()))
    }

    /// A DICOM decimal string (at most 16 characters).
    static func decimal(_ v: Double) -> String {
        let s = String(format: "%.6f", v).replacingOccurrences(of: "0+$", with: "", options: .regularExpression)
        let trimmed = s.hasSuffix(".") ? String(s.dropLast()) : s
        return trimmed == "-0" ? "0" : String(trimmed.prefix(16))
    }

    /// A truncated image and a stray non-DICOM file, where this study's quirks ask for them.
    private func writeFileQuirks(_ studyDir: URL) throws {
        guard let plan = plans.first(where: { $0.kind != .other }), let seriesID = seriesIDs[plan.kind] else { return }
        let seriesDir = studyDir.appendingPathComponent(String(seriesID))
        // An enhanced series is one file: cutting it would lose the whole series, not an edge slice.
        if quirks.truncatedFile && !enhanced {
            // The first acquired slice is an edge slice (lateral sagittal or the top of the L1/L2 stack): no label names it.
            let path = seriesDir.appendingPathComponent("\(instanceNumbers(plan)[0]).dcm")
            let data = try Data(contentsOf: path)
            try AtomicFile.write(data.prefix(data.count / 2), to: path)
        }
        if quirks.strayFile {
            let note = "Phantom scanner export log for study \(studyID). Not a DICOM file.\n"
            try AtomicFile.write(Data(note.utf8), to: seriesDir.appendingPathComponent("export_log.txt"))
        }
    }
}
