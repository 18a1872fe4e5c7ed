/// A study's outcome in an ingest, the one vocabulary of the report, the progress line, the file
/// accounting and the commands that print failures (written to ingest-report.json as its raw value).
public enum StudyStatus: String, Codable, Sendable {
    /// Decoded, fused and written to the shards as a sample.
    case fused
    /// Not in the shards: decoding, fusion, encoding or the write refused it (the report's `error` says why).
    case failed
}
