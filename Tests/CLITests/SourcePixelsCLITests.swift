import Foundation
import TestSupport
import XCTest

/// `ingest` keeps each study's source slices (schema 2) unless told not to, `verify` checks them, `inspect` counts them,
/// and turning them off re-fuses a cached study instead of reusing its entry; `train` then says that its crops come from
/// the grid.
final class SourcePixelsCLITests: XCTestCase {
    func testIngestKeepsSourcePixelsAndNoSourcePixelsLeavesThemOut() throws {
        let root = try Fixtures.scratch()
        let cohort = root.appendingPathComponent("cohort")
        let synth = try Fixtures.run(Fixtures.fuse3d, ["synth", "--studies", "4", "--out", cohort.path, "--seed", "3"])
        XCTAssertEqual(synth.status, 0, synth.stderr)
        let shards = root.appendingPathComponent("shards"), cache = root.appendingPathComponent("cache")
        let ingest = try Fixtures.run(Fixtures.fuse3d, ["ingest", cohort.path, "--out", shards.path, "--size", "32", "--cache", cache.path])
        XCTAssertEqual(ingest.status, 0, ingest.stderr + ingest.stdout)
        let verify = try Fixtures.run(Fixtures.fuse3d, ["verify", shards.path])
        XCTAssertEqual(verify.status, 0, verify.stdout + verify.stderr)
        let inspect = try Fixtures.run(Fixtures.fuse3d, ["inspect", shards.path])
        XCTAssertEqual(inspect.status, 0, inspect.stderr)
        XCTAssertTrue(inspect.stdout.contains("schema_version 2"), inspect.stdout)
        XCTAssertTrue(inspect.stdout.contains("source pixels: "), inspect.stdout)

        // Every present channel has slices; each slice's pixels lie in [0, 1] and some reach both ends.
        let check = """
        import sys, glob, json, numpy as np, h5py, hdf5plugin
        f = h5py.File(sorted(glob.glob(sys.argv[1] + "/shard-*.h5"))[0], "r")
        rows, p = f["source_slices"][:], f["source_pixels"]
        out = {"rows": len(rows), "length": int(p.shape[0]), "stored": int(p.id.get_storage_size()),
               "parameter": json.loads(f.attrs["parameters"])["fusion.source_pixels"], "schema": int(f.attrs["schema_version"])}
        if len(rows):
            values = np.concatenate([p[o:o + r * c] for (_, _, r, c, o) in rows]).astype(np.float32)
            out["min"], out["max"] = float(values.min()), float(values.max())
            out["channels"] = sorted({int(r[1]) for r in rows if f["present"][int(r[0]), int(r[1])]})
            out["absent_channel_rows"] = int(sum(1 for r in rows if not f["present"][int(r[0]), int(r[1])]))
        print(json.dumps(out))
        """
        func describe(_ folder: URL) throws -> [String: Any] {
            let r = try Fixtures.python(check, [folder.path])
            XCTAssertEqual(r.status, 0, r.stderr)
            return try XCTUnwrap(JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any])
        }
        let kept = try describe(shards)
        XCTAssertEqual(kept["schema"] as? Int, 2)
        XCTAssertEqual(kept["parameter"] as? String, "true")
        XCTAssertGreaterThan(kept["rows"] as? Int ?? 0, 20)
        XCTAssertEqual(kept["min"] as? Double, 0)
        XCTAssertEqual(kept["max"] as? Double, 1)
        XCTAssertEqual(kept["channels"] as? [Int], [0, 1, 2])
        XCTAssertEqual(kept["absent_channel_rows"] as? Int, 0)
        print("source pixels of 4 phantom studies: \(kept["rows"]!) slices, \(kept["stored"]!) bytes stored")

        // The same cache, source pixels off: the key differs, so the studies are fused again, without them.
        let off = try Fixtures.run(Fixtures.fuse3d, ["ingest", cohort.path, "--out", shards.path, "--size", "32", "--cache", cache.path,
                                                     "--no-source-pixels"])
        XCTAssertEqual(off.status, 0, off.stderr + off.stdout)
        let without = try describe(shards)
        XCTAssertEqual(without["rows"] as? Int, 0)
        XCTAssertEqual(without["length"] as? Int, 0)
        XCTAssertEqual(without["parameter"] as? String, "false")
        XCTAssertEqual(try Fixtures.run(Fixtures.fuse3d, ["verify", shards.path]).status, 0)

        // Training the default model (the recesses from the slices) on them says that their crops come from the grid.
        let cfg = root.appendingPathComponent("train.yaml")
        try "width: 0.25\nbatch_size: 2\nfolds: 2\nepochs: 1\n".write(to: cfg, atomically: true, encoding: .utf8)
        let train = try Fixtures.run(Fixtures.fuse3d, ["train", shards.path, "--out", root.appendingPathComponent("run").path,
                                                       "--config", cfg.path, "--fold", "0", "--stop-after-steps", "1"])
        XCTAssertEqual(train.status, 3, train.stderr + train.stdout)
        XCTAssertTrue(train.stdout.contains("note: 1 of 1 shard(s) hold no source slices"), train.stdout)
    }
}
