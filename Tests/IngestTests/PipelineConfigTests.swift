import Foundation
@testable import Ingest
import Shards
import TestSupport
import XCTest

/// Pipeline files are read strictly, coded in their own form, and recorded in full in the shards.
final class PipelineConfigTests: XCTestCase {
    private func rejected(_ yaml: String, file: StaticString = #filePath, line: UInt = #line) -> String {
        do {
            _ = try PipelineConfig.parse(yaml, path: "p.yaml")
            XCTFail("accepted:\n\(yaml)", file: file, line: line)
            return ""
        } catch {
            XCTAssertTrue(error is PipelineError, "\(error)", file: file, line: line)
            return "\(error)"
        }
    }

    func testUnknownKeysWrongTypesAndRangesNameTheFileKeyAndLine() {
        XCTAssertEqual(rejected("name: x\nbogus_key: 3\n"),
                       "p.yaml:2: bogus_key: unknown key; allowed keys: name, fusion, shards")
        XCTAssertEqual(rejected("fusion:\n  size: 64\n  anti_alias: false\n"),
                       "p.yaml:3: fusion.anti_alias: unknown key; allowed keys under fusion: size, box, percentiles, isotropic, gap_factor, antialias, source_pixels")
        XCTAssertEqual(rejected("fusion:\n  size: big\n"), "p.yaml:2: fusion.size: expected a whole number from 8 to 512, got \"big\"")
        XCTAssertEqual(rejected("fusion:\n  size: 1\n"), "p.yaml:2: fusion.size: expected a whole number from 8 to 512, got 1")
        XCTAssertEqual(rejected("fusion:\n  antialias: maybe\n"), "p.yaml:2: fusion.antialias: expected true or false, got \"maybe\"")
        XCTAssertEqual(rejected("shards:\n  zstd_level: 30\n"), "p.yaml:2: shards.zstd_level: expected a whole number from 1 to 22, got 30")
        XCTAssertTrue(rejected("fusion:\n  box: everything\n").hasPrefix("p.yaml:2: fusion.box: expected sagittal-fov, union"))
        XCTAssertTrue(rejected("fusion:\n  percentiles: [99, 1]\n").hasPrefix("p.yaml:2: fusion.percentiles: expected [low, high] with 0 ≤ low < high ≤ 100, got [99.0, 1.0]"))
        XCTAssertEqual(rejected("fusion:\n  percentiles: 5\n"), "p.yaml:2: fusion.percentiles: expected a list of 2 numbers, got \"5\"")
        XCTAssertEqual(rejected("fusion: 64\n"), "p.yaml:1: fusion: expected a mapping of keys, got \"64\"")
        XCTAssertEqual(rejected("fusion:\n  size: 32\n  size: 64\n"), "p.yaml:3: fusion.size: given twice (first on line 2)")
        XCTAssertTrue(rejected("fusion: [unclosed\n").hasPrefix("p.yaml:2: not valid YAML"), rejected("fusion: [unclosed\n"))
    }

    func testEveryFusionParameterIsSettable() throws {
        let c = try PipelineConfig.parse("""
        name: strict
        fusion:
          size: 48
          box: fixed:120
          percentiles: [1, 99]
          isotropic: false
          gap_factor: 2
          antialias: false
          source_pixels: false
        shards:
          samples_per_shard: 4
          target_shard_bytes: 5000
          zstd_level: 5
        """, path: "strict.yaml")
        XCTAssertEqual(c, PipelineConfig(name: "strict", fusion: FusionParameters(size: 48, box: .fixed(millimetres: 120), lowPercentile: 1,
                                                                              highPercentile: 99, isotropic: false, gapFactor: 2, antialias: false,
                                                                                 sourcePixels: false),
                                         samplesPerShard: 4, targetShardBytes: 5000, zstdLevel: 5))
        XCTAssertEqual(c.attributes["fusion.antialias"], "false")
        XCTAssertEqual(c.attributes["fusion.source_pixels"], "false")
        XCTAssertEqual(c.attributes["fusion.box"], "fixed:120.0")
        for name in ["demo.yaml", "rsna-lumbar.yaml"] {
            let p = try PipelineConfig.load(Fixtures.repoRoot.appendingPathComponent("pipelines/\(name)").path)
            XCTAssertTrue(p.fusion.antialias, name)
        }
    }

    func testJSONUsesThePipelineFilesKeysAndValues() throws {
        let c = try PipelineConfig.parse("name: j\nfusion:\n  box: union\n  antialias: false\n", path: "j.yaml")
        let enc = JSONEncoder()
        enc.outputFormatting = [.sortedKeys]
        let json = String(decoding: try enc.encode(c), as: UTF8.self)
        XCTAssertEqual(json, """
        {"fusion":{"antialias":false,"box":"union","gap_factor":1.5,"isotropic":true,"percentiles":[0.5,99.5],"size":128,"source_pixels":true},\
        "name":"j","shards":{"target_shard_bytes":1000000000,"zstd_level":1}}
        """)
        XCTAssertEqual(try JSONDecoder().decode(PipelineConfig.self, from: Data(json.utf8)), c)
    }

    func testAntialiasIsRecordedInTheShardsAndTheManifest() throws {
        let root = try CatalogTests.makeArchive(rsna: true)
        let pipeline = try PipelineConfig.parse("fusion:\n  size: 16\n  antialias: false\n", path: "noaa.yaml")
        let out = try Fixtures.scratch().appendingPathComponent("shards")
        let report = try IngestRunner.run(IngestOptions(archive: root.path, output: out, pipeline: pipeline, workers: 1)).report
        XCTAssertEqual(report.summary.fused, 1)
        XCTAssertEqual(report.pipeline.fusion.antialias, false)
        let manifest = try Manifest.load(from: out)
        XCTAssertEqual(manifest.parameters["fusion.antialias"], "false")
        let r = try Fixtures.python("""
        import sys, glob, json, h5py, hdf5plugin
        f = h5py.File(sorted(glob.glob(sys.argv[1] + "/shard-*.h5"))[0], "r")
        p = f.attrs["parameters"]
        p = json.loads(p.decode() if isinstance(p, bytes) else p)
        print(p["fusion.antialias"], p["pipeline"])
        """, [out.path])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertEqual(r.stdout, "false noaa.yaml\n")
    }

    /// The key table writes YAML that reads back to the same pipeline, defaults and optional keys included.
    func testTheResolvedYAMLReadsBackToTheSamePipeline() throws {
        let c = PipelineConfig(name: "my pipeline: v2", fusion: FusionParameters(size: 48, box: .referenceSeries("123"), lowPercentile: 1,
                                                                                 highPercentile: 99.5, isotropic: false, gapFactor: 2, antialias: false,
                                                                                 sourcePixels: false),
                               samplesPerShard: 4, targetShardBytes: 5000, zstdLevel: 5)
        XCTAssertEqual(c.yaml, """
        # fuse3d pipeline (resolved)
        name: "my pipeline: v2"
        fusion:
          size: 48
          box: "reference:123"
          percentiles: [1.0, 99.5]
          isotropic: false
          gap_factor: 2.0
          antialias: false
          source_pixels: false
        shards:
          samples_per_shard: 4
          target_shard_bytes: 5000
          zstd_level: 5

        """)
        XCTAssertEqual(try PipelineConfig.parse(c.yaml, path: "r.yaml"), c)
        let defaults = PipelineConfig(name: "demo.yaml")
        XCTAssertFalse(defaults.yaml.contains("samples_per_shard"), "an unset optional key is left out")
        XCTAssertEqual(try PipelineConfig.parse(defaults.yaml, path: "other.yaml"), defaults)
        for name in ["demo.yaml", "rsna-lumbar.yaml"] {
            let p = try PipelineConfig.load(Fixtures.repoRoot.appendingPathComponent("pipelines/\(name)").path)
            XCTAssertEqual(try PipelineConfig.parse(p.yaml, path: name), p, name)
        }
    }

    /// --help, the strict reader and the JSON coding name the same keys, in the same order, from one table.
    func testTheKeyTableIsTheOneListOfKeys() throws {
        XCTAssertEqual(PipelineConfig.keyHelp.map { String($0.prefix { $0 != ":" }).trimmingCharacters(in: .whitespaces) }, [
            "name", "fusion", "fusion.size", "fusion.box", "fusion.percentiles", "fusion.isotropic", "fusion.gap_factor",
            "fusion.antialias", "fusion.source_pixels", "shards", "shards.samples_per_shard", "shards.target_shard_bytes", "shards.zstd_level",
        ])
        XCTAssertEqual(PipelineConfig.keyHelp[2], "  fusion.size: voxels per axis [whole number from 8 to 512]")
        let json = try JSONSerialization.jsonObject(with: JSONEncoder().encode(PipelineConfig(samplesPerShard: 3))) as? [String: Any]
        XCTAssertEqual(Set(json?.keys.map { $0 } ?? []), ["name", "fusion", "shards"])
        XCTAssertEqual(Set((json?["fusion"] as? [String: Any])?.keys.map { $0 } ?? []),
                       ["size", "box", "percentiles", "isotropic", "gap_factor", "antialias", "source_pixels"])
        XCTAssertEqual(Set((json?["shards"] as? [String: Any])?.keys.map { $0 } ?? []),
                       ["samples_per_shard", "target_shard_bytes", "zstd_level"])
    }
}
