import Core
import Foundation
import Ingest
@testable import Synth
import TestSupport
import XCTest

/// The study cache trusts `StudyCache.fusionCodeVersion` to change whenever decoding or fusion changes what a
/// study fuses to: this pins the fused bytes of one phantom study (real DICOM files, decoded by GDCM, fused at
/// 32³) to that version, so a change to fusion cannot ship with an unchanged cache key.
final class FusionCodeVersionTests: XCTestCase {
    /// SHA-256 of the phantom study's fused sample per fusion code version. When this test fails because the
    /// fused bytes changed on purpose, bump `StudyCache.fusionCodeVersion` and add the new version's digest here.
    static let golden: [String: String] = [
        "fusion-1": "23be977ff8a1e1a8853c042f3ecd0a801887c0079396055c4e5fbb0083b02982",
        // fusion-2 (Enhanced MR reading, keypoints placed only without doubt): classic files fuse to the same bytes.
        "fusion-2": "23be977ff8a1e1a8853c042f3ecd0a801887c0079396055c4e5fbb0083b02982",
        // fusion-3 (a sample also carries its source slices, schema 2): the grid and its arrays are the same bytes.
        "fusion-3": "23be977ff8a1e1a8853c042f3ecd0a801887c0079396055c4e5fbb0083b02982",
    ]

    func testThePhantomStudysFusedBytesArePinnedToTheFusionCodeVersion() throws {
        let out = try Fixtures.scratch().appendingPathComponent("cohort")
        _ = try SynthCohort.write(SynthOptions(studies: 1, seed: 17, sagittalMatrix: 64, axialMatrix: 48), to: out)
        let catalog = CatalogScanner.scan(root: out.path)
        let tables = RSNATables.load(root: catalog.root)
        let study = try XCTUnwrap(catalog.studies.first)
        var parameters = FusionParameters()
        parameters.size = 32
        let (sample, report) = StudyFusion.fuse(study: study, root: catalog.root, labels: tables.labels(for: study.studyID),
                                                coordinates: tables.coordinates[study.studyID] ?? [], fuser: Fuser(parameters: parameters))
        let fused = try XCTUnwrap(sample, report.error ?? "")
        XCTAssertEqual(fused.present, [1, 1, 1])
        XCTAssertGreaterThan(fused.keypoints.filter(\.isFinite).count, 30)

        var hash = SHA256()
        fused.volume.withUnsafeBytes { hash.update($0) }
        for array in [fused.affine.withUnsafeBytes { Data($0) }, fused.keypoints.withUnsafeBytes { Data($0) },
                      fused.norm.withUnsafeBytes { Data($0) }, Data(fused.present), fused.labels.withUnsafeBytes { Data($0) },
                      Data(fused.shape.map(String.init).joined(separator: ",").utf8)] {
            hash.update(array)
        }
        let digest = hash.finalizeHex()

        // The version is part of the key: a bumped version misses every entry made before it (and recomputes).
        func key(_ version: String) -> String {
            StudyCache.key(study: study, root: catalog.root, sampleID: fused.studyID, labels: fused.labels, coordinates: [],
                           fusion: parameters, zstdLevel: 3, version: version).hex
        }
        XCTAssertEqual(key(StudyCache.fusionCodeVersion), key(StudyCache.fusionCodeVersion))
        XCTAssertNotEqual(key(StudyCache.fusionCodeVersion), key(StudyCache.fusionCodeVersion + "-next"))
        let version = StudyCache.fusionCodeVersion
        XCTAssertEqual(digest, Self.golden[version],
                       "the phantom study now fuses to \(digest) under \(version): if fusion changed on purpose, bump "
                       + "StudyCache.fusionCodeVersion and pin the new digest in FusionCodeVersionTests.golden")
    }
}
