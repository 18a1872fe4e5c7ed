import Foundation

extension Catalog {
    /// What `fuse3d scan` prints by default, a few lines at any archive size: the studies, the series by kind (fused and
    /// left out), the transfer syntaxes, the fate of the files and the problems (the first few named; `report()` lists
    /// every study, series and problem).
    public func summary(problemsNamed: Int = 5) -> String {
        var out = "archive \(root) (\(mode == "rsna" ? "RSNA layout: series named by train_series_descriptions.csv" : "series classified from DICOM tags"))\n"
        let series = studies.flatMap(\.series)
        out += "\(studies.count) studies, \(series.count) series, \(imageCount) image files holding \(frameCount) frames\n"
        out += "series by kind:\n"
        for kind in SeriesKind.allCases {
            let ofKind = series.filter { $0.kind == kind }
            guard !ofKind.isEmpty else { continue }
            let fused = ofKind.filter { $0.ignoredBecause == nil }.count
            let missing = kind == .other ? 0 : studies.filter { $0.primarySeries(kind) == nil }.count
            out += "  \(kind.rawValue): \(ofKind.count) (\(fused) to fuse, \(ofKind.count - fused) left out)"
                + (missing > 0 ? "; \(missing) stud\(missing == 1 ? "y" : "ies") without one to fuse" : "") + "\n"
        }
        var bySyntax: [String: (series: Int, files: Int)] = [:]
        for s in series {
            for name in s.transferSyntaxes { bySyntax[name, default: (0, 0)].series += 1; bySyntax[name, default: (0, 0)].files += s.fileCount }
        }
        out += "transfer syntaxes:\n"
        for (name, n) in bySyntax.sorted(by: { ($1.value.files, $0.key) < ($0.value.files, $1.key) }) {
            out += "  \(name): \(n.series) series (\(n.files) files)\n"
        }
        out += "\(accounting.summaryLine) (used: tables read and images of the series to fuse)\n"
        out += "\(problems.count) problem(s), \(warnings.count) warning(s)\(problems.isEmpty ? "" : "; the first:")\n"
        for p in problems.prefix(problemsNamed) { out += "  \(p.path): \(p.reason)\n" }
        if problems.count > problemsNamed { out += "  … \(problems.count - problemsNamed) more (--verbose lists every study, series and problem; --json the catalog)\n" }
        return out
    }

    /// A human-readable listing: studies, their series (kind, stacks, slices, plane, spacing, field of
    /// view) and every problem found.
    public func report() -> String {
        var out = "archive \(root) (\(mode == "rsna" ? "RSNA layout: series named by train_series_descriptions.csv" : "series classified from DICOM tags"))\n"
        out += "\(studies.count) studies, \(imageCount) image files holding \(frameCount) frames, \(fileCount) files read, \(problems.count) problems, \(warnings.count) warnings\n"
        out += "\(accounting.summaryLine) (used: tables read and images of the series to fuse)\n"
        for study in studies {
            out += "\nstudy \(study.studyID)\n"
            for note in study.notes { out += "  note: \(note)\n" }
            for s in study.series {
                let stackSlices = s.stacks.map { String($0.slices.count) }.joined(separator: "+")
                let spacing = s.stacks.map(\.spacing).sorted().dropFirst(s.stacks.count / 2).first ?? 0
                out += String(format: "  %-18@ %-22@ %@, %d stack%@ (%@ slices), %.2f×%.2f mm, slices %.1f mm apart, FOV %.0f×%.0f mm\n",
                              s.kind.rawValue as NSString, "series \(s.seriesID)" as NSString, s.plane.rawValue as NSString,
                              s.stacks.count, (s.stacks.count == 1 ? "" : "s") as NSString, stackSlices as NSString,
                              s.pixelSpacing[0], s.pixelSpacing[1], spacing, s.fieldOfView[0], s.fieldOfView[1])
                out += "      \(s.description.isEmpty ? "(no description)" : "\"\(s.description)\""): \(s.kindReason); "
                    + "\(s.sopClasses.joined(separator: " + ")), \(s.frameCount) frames in \(s.fileCount) file\(s.fileCount == 1 ? "" : "s")\n"
                if let why = s.ignoredBecause { out += "      ignored (\(s.fileCount) files): \(why)\n" }
                for note in s.notes { out += "      note: \(note)\n" }
            }
            let missing = SeriesKind.allCases.filter { $0 != .other && study.primarySeries($0) == nil }
            if !missing.isEmpty { out += "  missing: \(missing.map(\.rawValue).joined(separator: ", "))\n" }
        }
        if !warnings.isEmpty {
            out += "\nwarnings (files read all the same):\n"
            for w in warnings { out += "  \(w.path): \(w.reason)\n" }
        }
        if !accounting.ignoredFiles.isEmpty {
            out += "\nfiles ignored:\n"
            for f in accounting.ignoredFiles { out += "  \(f.path): \(f.reason)\n" }
        }
        if !problems.isEmpty {
            out += "\nproblems:\n"
            for p in problems { out += "  \(p.path): \(p.reason)\n" }
        }
        return out
    }
}
