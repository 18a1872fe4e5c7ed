import Core
import Foundation
import Shards
#if canImport(Glibc)
import Glibc
#endif

/// Where a study's decode and fusion run (issue 32). GDCM, OpenJPEG, libjpeg and CharLS are C and C++ with long
/// histories of out-of-bounds writes; fuse3d checks every header and codestream before they see it, and in
/// `.processes` it also runs them in supervised child processes (`fuse3d decode-worker`), as browsers run their
/// codecs: a decoder that dies by a signal, or runs past its time limit, costs the file it was reading, never the run.
public enum DecoderIsolation: Sendable {
    /// In this process (library callers and tests that fuse in-process).
    case none
    /// In child processes started from `executable` (the fuse3d binary itself), each with the time limits given.
    case processes(executable: String, limits: DecoderLimits)

    /// The fuse3d binary running now, as `.processes` with the default limits.
    public static var thisExecutable: DecoderIsolation {
        .processes(executable: "/proc/self/exe", limits: DecoderLimits())
    }
}

/// How long a decode worker may work without a word before it is taken for hung and killed.
public struct DecoderLimits: Sendable {
    /// Seconds one file's decode may take: the largest file fuse3d reads (2^28 pixels, 1024 JPEG 2000 frames of 512²)
    /// takes ~25 s on one core here, so twice that on a loaded machine still passes.
    public var fileSeconds: Double = 60
    /// Seconds a study's fusion and compression may take once its files are decoded.
    public var fusionSeconds: Double = 900

    /// The defaults.
    public init(fileSeconds: Double = 60, fusionSeconds: Double = 900) {
        self.fileSeconds = fileSeconds
        self.fusionSeconds = fusionSeconds
    }
}

/// The tags of the messages between the ingest and its decode workers.
enum WorkerMessage {
    /// Parent → child: a `WorkerRequest` (JSON).
    static let request: UInt8 = 0x51  // "Q"
    /// Child → parent: the path (relative to the archive) of the file it starts to decode.
    static let file: UInt8 = 0x46  // "F"
    /// Child → parent: every file is decoded; fusion and compression start.
    static let fusing: UInt8 = 0x55  // "U"
    /// Child → parent: a decode check's outcome for the file last named: empty when it decoded, else the reason.
    static let checked: UInt8 = 0x43  // "C"
    /// Child → parent: the header of the file last named: 1 and its `HeaderSummary` bytes, or 0 and why it is unreadable.
    static let header: UInt8 = 0x48  // "H"
    /// Child → parent: the study's report and sample (a cache entry's bytes), or the end of a decode check.
    static let result: UInt8 = 0x52  // "R"
}

/// One piece of work for a decode worker.
struct WorkerRequest: Codable {
    /// A study to decode, fuse and compress; nil for a decode check of `files`.
    var study: CatalogStudy?
    var root: String
    var labels: [Int8] = []
    var coordinates: [LabelCoordinate] = []
    var fusion: FusionParameters?
    var zstdLevel: Int = 0
    /// Whether the study's loops stay on the worker's thread (`StudyParallelism.isSerial` in the ingest).
    var serial = false
    /// Files (absolute paths) to decode and throw away (`scan --decode`), or whose headers to read (`headers`).
    var files: [String] = []
    /// Read the headers of `files` (the scan) instead of decoding them.
    var headers = false
    /// Header answers written together (1: each as soon as it is read, so that a worker's death names its file).
    var batch = 1
}

/// The supervised decode workers of one run: at most as many as the run's workers, each reused study after study.
public final class DecoderPool: @unchecked Sendable {
    let executable: String
    let limits: DecoderLimits
    private let lock = NSLock()
    private var idle: [WorkerProcess] = []

    /// A pool starting `executable decode-worker`; nil for `.none`.
    public init?(_ isolation: DecoderIsolation) {
        guard case .processes(let executable, let limits) = isolation else { return nil }
        self.executable = executable
        self.limits = limits
    }

    deinit {
        for worker in idle { worker.finish() }
    }

    private func acquire() throws -> WorkerProcess {
        if let worker = lock.withLock({ idle.popLast() }) { return worker }
        return try WorkerProcess(executable: executable, arguments: ["decode-worker"])
    }

    private func release(_ worker: WorkerProcess) { lock.withLock { idle.append(worker) } }

    /// How a study's run in a worker ended.
    enum StudyOutcome {
        case done(StudyCache.CachedStudy)
        /// The worker died or hung; `file` is the one it was decoding (nil: while fusing), `reason` says how.
        case crashed(file: String?, reason: String)
    }

    /// Decodes, fuses and compresses `request.study` in a worker.
    func fuse(_ request: WorkerRequest) -> StudyOutcome {
        let worker: WorkerProcess
        do { worker = try acquire() } catch { return .crashed(file: nil, reason: "\(error)") }
        guard let payload = try? JSONEncoder().encode(request), worker.send(tag: WorkerMessage.request, Array(payload)) else {
            return died(worker, file: nil, stage: "starting")
        }
        var file: String?
        var limit = limits.fileSeconds
        while true {
            switch worker.next(within: limit) {
            case .event(WorkerMessage.file, let path):
                file = String(decoding: path, as: UTF8.self)
                limit = limits.fileSeconds
            case .event(WorkerMessage.fusing, _):
                file = nil
                limit = limits.fusionSeconds
            case .event(WorkerMessage.result, let bytes):
                release(worker)
                do {
                    return .done(try CacheEntry.fromWire(bytes))
                } catch {
                    return .crashed(file: nil, reason: "a decode worker sent a damaged result (\(error))")
                }
            case .event(let tag, _):
                return .crashed(file: file, reason: "a decode worker sent an unknown message (\(tag))")
            case .timedOut:
                let seconds = Int(file == nil ? limits.fusionSeconds : limits.fileSeconds)
                return .crashed(file: file, reason: file == nil ? "fusion ran past its time limit (\(seconds) s)"
                                                                : "decoder ran past its time limit (\(seconds) s)")
            case .died:
                return died(worker, file: file, stage: file == nil ? "fusion" : "decoder")
            }
        }
    }

    /// Decodes each of `files` in workers and throws the pixels away (`scan --decode`): nil where a file decoded,
    /// else why not. A file whose decoder crashes or hangs is named so; the rest go on in a new worker.
    public func check(files: [String]) -> [String?] {
        eachFile(files, headers: false).map {
            switch $0 {
            case .done(let reason): return reason.isEmpty ? nil : String(decoding: reason, as: UTF8.self)
            case .failed(let reason): return reason
            }
        }
    }

    /// Each file's header, read in workers (the scan): GDCM's parser meets every file of an archive, damaged or not.
    func readHeaders(files: [String]) -> [Result<DicomHeader, GDCMError>] {
        zip(files, eachFile(files, headers: true)).map { path, outcome in
            switch outcome {
            case .failed(let reason): return .failure(GDCMError(path: path, message: reason))
            case .done(let bytes):
                var r = ByteReader(Array(bytes.dropFirst()))
                guard bytes.first == 1 else { return .failure(GDCMError(path: path, message: String(decoding: bytes.dropFirst(), as: UTF8.self))) }
                guard let summary = try? HeaderSummary(reading: &r), let header = summary.header(path: path) else {
                    return .failure(GDCMError(path: path, message: "a header worker sent a damaged header"))
                }
                return .success(header)
            }
        }
    }

    /// What a worker said of one file: its answer's bytes, or why there is none (it crashed or hung on it).
    private enum FileOutcome {
        case done([UInt8])
        case failed(String)
    }

    /// Sends `files` to workers in order; a worker that dies or hangs costs the file it was on, and the rest go to a new one.
    private func eachFile(_ files: [String], headers: Bool) -> [FileOutcome] {
        var outcome = [FileOutcome](repeating: .failed("not read"), count: files.count)
        let stage = headers ? "header reader" : "decoder"
        var next = 0
        // Headers are answered 32 at a time; a worker that dies or hangs with answers unsent leaves the file unknown,
        // so the rest go again one answer at a time, and the file it dies on then is the one named.
        var batch = headers ? 32 : 1
        while next < files.count {
            let worker: WorkerProcess
            do { worker = try acquire() } catch {
                for i in next..<files.count { outcome[i] = .failed("\(error)") }
                return outcome
            }
            let request = WorkerRequest(root: "", files: Array(files[next...]), headers: headers, batch: batch)
            guard let payload = try? JSONEncoder().encode(request), worker.send(tag: WorkerMessage.request, Array(payload)) else {
                outcome[next] = .failed(crashReason(worker, stage: stage))
                next += 1
                continue
            }
            var finished = false
            while !finished {
                switch worker.next(within: limits.fileSeconds) {
                case .event(WorkerMessage.file, _):
                    continue
                case .event(WorkerMessage.checked, let bytes), .event(WorkerMessage.header, let bytes):
                    if next < files.count { outcome[next] = .done(bytes) }
                    next += 1
                case .event(WorkerMessage.result, _):
                    release(worker)
                    finished = true
                case .event:
                    outcome[next] = .failed("a \(stage) worker sent an unknown message")
                    next += 1
                    finished = true
                case .timedOut where batch > 1, .died where batch > 1:
                    batch = 1
                    finished = true
                case .timedOut:
                    outcome[next] = .failed("\(stage) ran past its time limit (\(Int(limits.fileSeconds)) s)")
                    next += 1
                    finished = true
                case .died:
                    outcome[next] = .failed(crashReason(worker, stage: stage))
                    next += 1
                    finished = true
                }
            }
        }
        return outcome
    }

    private func died(_ worker: WorkerProcess, file: String?, stage: String) -> StudyOutcome {
        .crashed(file: file, reason: crashReason(worker, stage: stage))
    }

    /// "decoder crashed (SIGSEGV): <its last words>" for a worker that died.
    private func crashReason(_ worker: WorkerProcess, stage: String) -> String {
        let how: String
        switch worker.next(within: 5) {
        case .died(let signal?, _): how = WorkerProcess.signalName(signal)
        case .died(nil, let status): how = "exit status \(status)"
        default: how = "stopped answering"
        }
        let words = worker.stderrTail
        return "\(stage) crashed (\(how))" + (words.isEmpty ? "" : ": \(words)")
    }
}

/// Files whose decoder crashed or hung in a run of this output folder (`OUT/.decoder-crashes.json`): the next run
/// leaves them out from the start instead of crashing on them again. An entry holds while the file's size and
/// modification time are unchanged (a replaced file is tried again); deleting the file forgets them all.
public final class DecoderCrashes: @unchecked Sendable {
    /// The file's name in the output folder.
    public static let fileName = ".decoder-crashes.json"

    struct Entry: Codable, Equatable {
        var path: String
        var size: Int64
        var mtimeNanoseconds: Int64
        var reason: String
    }

    private let url: URL
    private let root: String
    private let lock = NSLock()
    private var entries: [String: Entry] = [:]

    /// The crashes recorded in `output` that still hold for the files under `root`.
    public init(output: URL, root: String) {
        url = output.appendingPathComponent(Self.fileName)
        self.root = root
        if let data = try? Data(contentsOf: url), let list = try? JSONDecoder().decode([Entry].self, from: data) {
            for entry in list where FileIdentity(path: root + "/" + entry.path).map({ $0.size == entry.size && $0.mtimeNanoseconds == entry.mtimeNanoseconds }) ?? false {
                entries[entry.path] = entry
            }
        }
    }

    /// The report's reason for a file left out this way.
    static func reason(_ how: String) -> String {
        "\(how) while reading this file; the study was fused without it (remembered in \(fileName): later runs leave it out)"
    }

    /// `study` without the files known to crash, and the problems that name them.
    func leavingOut(_ study: CatalogStudy) -> (CatalogStudy, [CatalogProblem]) {
        let known = lock.withLock { entries }
        guard !known.isEmpty else { return (study, []) }
        let paths = Set(study.series.flatMap { $0.stacks.flatMap { $0.images.map(\.path) } }).filter { known[$0] != nil }
        guard !paths.isEmpty else { return (study, []) }
        return (study.leavingOut(paths), paths.sorted().map { CatalogProblem(path: $0, reason: Self.reason(known[$0]!.reason)) })
    }

    /// Records `path` (relative to the archive) as crashing its decoder; written at once, so a run killed later still
    /// remembers it. A failed write only means the next run meets the crash again (in a worker).
    func remember(_ path: String, how: String) {
        guard let stamp = FileIdentity(path: root + "/" + path) else { return }
        let list: [Entry] = lock.withLock {
            entries[path] = Entry(path: path, size: stamp.size, mtimeNanoseconds: stamp.mtimeNanoseconds, reason: how)
            return entries.values.sorted { $0.path < $1.path }
        }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        if let data = try? encoder.encode(list) { try? AtomicFile.write(data, to: url) }
    }

}

extension CatalogStudy {
    /// The study without the images of `paths` (stacks and series left empty stay, with no images).
    func leavingOut(_ paths: Set<String>) -> CatalogStudy {
        var copy = self
        for s in copy.series.indices {
            for k in copy.series[s].stacks.indices {
                copy.series[s].stacks[k].images.removeAll { paths.contains($0.path) }
            }
            copy.series[s].stacks.removeAll { $0.images.isEmpty }
        }
        return copy
    }
}

/// The child's side: `fuse3d decode-worker` reads requests from its standard input until it closes, and answers each
/// on its standard output (which nothing else may write to: it is moved aside before any work starts).
public enum DecodeWorkerServer {
    /// Serves requests until the parent closes the pipe. Test hook: FUSE3D_DECODER_FAULT=crash:TEXT or hang:TEXT makes
    /// the worker die by SIGSEGV, or hang, on a file whose path contains TEXT (the suite's containment tests).
    public static func serve() -> Int32 {
        limitAddressSpace()
        let channel = dup(1)
        let null = open("/dev/null", O_WRONLY)
        if null >= 0 { dup2(null, 1); close(null) }
        let fault = ProcessInfo.processInfo.environment["FUSE3D_DECODER_FAULT"].map(Fault.init)
        while let (tag, payload) = WorkerProcess.readMessage(0) {
            guard tag == WorkerMessage.request, let request = try? JSONDecoder().decode(WorkerRequest.self, from: Data(payload)) else {
                return 2
            }
            let said: (UInt8, [UInt8]) -> Void = { tag, bytes in
                var frame = WorkerProcess.frame(tag: tag, bytes)
                if !frame.withUnsafeMutableBytes({ WorkerProcess.writeAll(channel, $0) }) { exit(3) }
            }
            if let study = request.study, let fusion = request.fusion {
                StudyParallelism.configure(workers: request.serial ? ProcessInfo.processInfo.activeProcessorCount : 1)
                let fused = StudyFusion.fuse(study: study, root: request.root, labels: request.labels,
                                             coordinates: request.coordinates, fuser: Fuser(parameters: fusion),
                                             willDecode: { path in said(WorkerMessage.file, Array(path.utf8)); fault?.apply(path) },
                                             willFuse: { said(WorkerMessage.fusing, []) })
                var report = fused.1
                var encoded: EncodedSample?
                if let sample = fused.0 {
                    do { encoded = try EncodedSample(encoding: sample, zstdLevel: request.zstdLevel) } catch {
                        report.status = .failed
                        report.error = "\(error)"
                    }
                }
                guard let parts = try? CacheEntry.wireParts(.init(report: report, sample: encoded)) else { return 4 }
                if !WorkerProcess.writeMessage(channel, tag: WorkerMessage.result, parts: parts) { exit(3) }
            } else if request.headers {
                // Answers go out `batch` at a time (a header takes ~0.1 ms: one write and one wake-up a file cost as
                // much again); with one a time the supervisor knows the file a dead worker was on from the answers' order.
                var pending: [UInt8] = []
                for (k, file) in request.files.enumerated() {
                    fault?.apply(file, header: true)
                    var w = ByteWriter()
                    do {
                        let header = try DicomReader.readHeader(file)
                        w.bool(true)
                        HeaderSummary(header).write(to: &w)
                        pending += WorkerProcess.frame(tag: WorkerMessage.header, w.bytes)
                    } catch {
                        pending += WorkerProcess.frame(tag: WorkerMessage.header, [0] + Array(((error as? GDCMError)?.message ?? "\(error)").utf8))
                    }
                    if (k + 1) % max(request.batch, 1) == 0 {
                        if !pending.withUnsafeMutableBytes({ WorkerProcess.writeAll(channel, $0) }) { exit(3) }
                        pending.removeAll(keepingCapacity: true)
                    }
                }
                pending += WorkerProcess.frame(tag: WorkerMessage.result, [])
                if !pending.withUnsafeMutableBytes({ WorkerProcess.writeAll(channel, $0) }) { exit(3) }
            } else {
                for file in request.files {
                    said(WorkerMessage.file, Array(file.utf8))
                    fault?.apply(file)
                    var reason = ""
                    do { _ = try DicomReader.readImage(file) } catch let e as GDCMError { reason = e.message } catch { reason = "\(error)" }
                    said(WorkerMessage.checked, Array(reason.utf8))
                }
                said(WorkerMessage.result, [])
            }
        }
        return 0
    }

    /// A worker's address space: at most 8 GiB (or less, as the ingest's own limit says). A damaged deflated data set
    /// made GDCM allocate without bound (7.8 GB resident after 20 s); with the limit its allocation fails, GDCM throws,
    /// and the file is skipped with that reason, or the worker dies and the supervisor names the file. The largest file
    /// fuse3d decodes (2^28 pixels) needs ~1.5 GiB.
    static let addressSpaceLimit: UInt64 = 8 << 30

    private static func limitAddressSpace() {
        var limit = rlimit()
        guard getrlimit(__rlimit_resource_t(RLIMIT_AS.rawValue), &limit) == 0 else { return }
        if UInt64(limit.rlim_cur) > addressSpaceLimit {  // RLIM_INFINITY is the largest value
            limit.rlim_cur = rlim_t(addressSpaceLimit)
            _ = setrlimit(__rlimit_resource_t(RLIMIT_AS.rawValue), &limit)
        }
    }

    /// The test hook's fault: `crash:TEXT`, `hang:TEXT` (while decoding), `crash-header:TEXT` (while reading headers).
    struct Fault {
        var crash: Bool
        var header: Bool
        var text: String
        init(_ spec: String) {
            crash = spec.hasPrefix("crash")
            header = spec.hasPrefix("crash-header:")
            text = String(spec.drop { $0 != ":" }.dropFirst())
        }
        func apply(_ path: String, header reading: Bool = false) {
            guard !text.isEmpty, path.contains(text), reading == header else { return }
            if crash { raise(SIGSEGV) }
            while true { sleep(60) }
        }
    }
}
