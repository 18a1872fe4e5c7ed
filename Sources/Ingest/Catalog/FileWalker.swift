import Foundation

/// Walks a folder tree: follows symbolic links to folders once, reports loops and unreadable
/// entries instead of following them forever, and yields regular files in a stable (sorted) order.
/// Hidden entries (names starting with a dot, such as .DS_Store, ._* or .git/) are walked too, but their
/// regular files (and every file below a hidden folder) go to `hidden`, so that they can be accounted for
/// as ignored rather than read.
struct FileWalker {
    struct Problem {
        var path: String
        var reason: String
        /// True for a regular file that cannot be read (a file found, and skipped), false for links and folders.
        var isFile = false
    }

    private(set) var files: [String] = []
    /// Regular files with a hidden name or below a hidden folder (not read).
    private(set) var hidden: [String] = []
    private(set) var problems: [Problem] = []
    private var visited = Set<[UInt64]>()

    /// Walks `root` (a folder or a single file).
    init(root: String) {
        walk(root, depth: 0, hiddenAbove: false)
    }

    private mutating func walk(_ path: String, depth: Int, hiddenAbove: Bool) {
        var st = stat()
        guard stat(path, &st) == 0 else {
            var lst = stat()
            let dangling = lstat(path, &lst) == 0 && (lst.st_mode & S_IFMT) == S_IFLNK
            problems.append(Problem(path: path, reason: dangling ? "broken symbolic link" : "cannot stat: \(String(cString: strerror(errno)))"))
            return
        }
        switch st.st_mode & S_IFMT {
        case S_IFDIR:
            let key = [UInt64(st.st_dev), UInt64(st.st_ino)]
            guard !visited.contains(key) else {
                problems.append(Problem(path: path, reason: "symbolic link loop: this folder was already walked"))
                return
            }
            guard depth < 64 else {
                problems.append(Problem(path: path, reason: "folder nested deeper than 64 levels; not walked"))
                return
            }
            visited.insert(key)
            guard let dir = opendir(path) else {
                problems.append(Problem(path: path, reason: "cannot read folder: \(String(cString: strerror(errno)))"))
                return
            }
            var names: [String] = []
            while let entry = readdir(dir) {
                let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                    String(cString: raw.bindMemory(to: CChar.self).baseAddress!)
                }
                if name == "." || name == ".." { continue }
                names.append(name)
            }
            closedir(dir)
            for name in names.sorted() {
                let child = path.hasSuffix("/") ? path + name : path + "/" + name
                walk(child, depth: depth + 1, hiddenAbove: hiddenAbove || name.hasPrefix("."))
            }
        case S_IFREG:
            if access(path, R_OK) != 0 {
                problems.append(Problem(path: path, reason: "file is not readable", isFile: true))
            } else if hiddenAbove || CatalogScanner.fileName(path).hasPrefix(".") {
                hidden.append(path)
            } else {
                files.append(path)
            }
        default:
            problems.append(Problem(path: path, reason: "not a regular file or folder; skipped"))
        }
    }
}
