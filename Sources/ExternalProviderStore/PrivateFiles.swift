import ExternalProviderCore
import Foundation

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Why a directory or file that holds keys is not trusted. Each case says what to do, in one line, and
/// none carries the file's contents.
public enum UnsafePath: Error, Equatable, CustomStringConvertible {
    case missing(String)
    case notDirectory(String)
    case notRegularFile(String)
    case symbolicLink(String)
    case foreignOwner(String, owner: UInt32)
    case openToOthers(String, mode: UInt32, fix: String)
    case unreadable(String, reason: String)

    public var description: String {
        switch self {
        case .missing(let path):
            "\(path) does not exist"
        case .notDirectory(let path):
            "\(path) is not a directory"
        case .notRegularFile(let path):
            "\(path) is not a regular file; remove it or point the server elsewhere"
        case .symbolicLink(let path):
            "\(path) is a symbolic link, which is not followed here; replace it with the file itself"
        case .foreignOwner(let path, let owner):
            "\(path) belongs to user \(owner), not to this user (\(geteuid())), who could not trust what it holds; use a path of your own"
        case .openToOthers(let path, let mode, let fix):
            "\(path) is open to other users (mode \(String(mode & 0o7777, radix: 8))); run \(fix)"
        case .unreadable(let path, let reason):
            "cannot read \(path): \(reason)"
        }
    }
}

/// Checks and reads of the paths that hold keys. The data dir must be its owner's alone; inside it,
/// nothing is followed through a symbolic link, since a link is how another user would redirect a file.
public enum PrivatePath {
    /// The data dir: owned by the effective user, with no group or other permission bits.
    public static func checkDirectory(_ path: String) throws(UnsafePath) {
        var info = stat()
        guard stat(path, &info) == 0 else { throw .missing(path) }
        guard info.st_mode & S_IFMT == S_IFDIR else { throw .notDirectory(path) }
        try checkOwnerAndMode(path, info, allowedGroupOtherBits: 0, fix: "chmod 700 \(path)")
    }

    /// A file inside the data dir, if it exists: a regular file (not a link), owned by the effective
    /// user, with no group or other permission bits.
    public static func checkFileIfPresent(_ path: String) throws(UnsafePath) {
        var info = stat()
        guard lstat(path, &info) == 0 else { return }
        guard info.st_mode & S_IFMT != S_IFLNK else { throw .symbolicLink(path) }
        guard info.st_mode & S_IFMT == S_IFREG else { throw .notRegularFile(path) }
        try checkOwnerAndMode(path, info, allowedGroupOtherBits: 0, fix: "chmod 600 \(path)")
    }

    /// How a secret file is opened: a file inside the data dir is never followed through a link and must
    /// be the owner's alone; a key file named on the command line may be a link (a mounted secret often
    /// is) and may belong to root, but no one else may read or write it.
    public enum Trust: Sendable {
        case insideDataDirectory
        case namedByOperator
    }

    /// Reads a secret file whole, checking the opened file itself (so no swap between check and read).
    public static func readSecret(_ path: String, as trust: Trust) throws(UnsafePath) -> String {
        let flags = O_RDONLY | O_CLOEXEC | (trust == .insideDataDirectory ? O_NOFOLLOW : 0)
        let descriptor = open(path, flags)
        guard descriptor >= 0 else {
            if errno == ELOOP { throw .symbolicLink(path) }
            throw .unreadable(path, reason: String(cString: strerror(errno)))
        }
        defer { close(descriptor) }
        var info = stat()
        guard fstat(descriptor, &info) == 0 else { throw .unreadable(path, reason: String(cString: strerror(errno))) }
        guard info.st_mode & S_IFMT == S_IFREG else { throw .notRegularFile(path) }
        switch trust {
        case .insideDataDirectory:
            try checkOwnerAndMode(path, info, allowedGroupOtherBits: 0, fix: "chmod 600 \(path)")
        case .namedByOperator:
            // Group or other execute bits grant nothing on a key file; read and write bits do.
            try checkOwnerAndMode(path, info, allowedGroupOtherBits: 0o011, fix: "chmod 600 \(path)", rootMayOwn: true)
        }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 4096)
        while true {
            let count = chunk.withUnsafeMutableBytes { read(descriptor, $0.baseAddress, $0.count) }
            if count < 0 {
                if errno == EINTR { continue }
                throw .unreadable(path, reason: String(cString: strerror(errno)))
            }
            if count == 0 { break }
            bytes.append(contentsOf: chunk[0..<count])
            // A master key is 44 characters; anything this long is not one.
            if bytes.count > 64 * 1024 { throw .unreadable(path, reason: "it is far too large to be a key file") }
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    private static func checkOwnerAndMode(
        _ path: String, _ info: stat, allowedGroupOtherBits: mode_t, fix: String, rootMayOwn: Bool = false
    ) throws(UnsafePath) {
        let owner = info.st_uid
        guard owner == geteuid() || (rootMayOwn && owner == 0) else { throw .foreignOwner(path, owner: owner) }
        let loose = info.st_mode & 0o077 & ~allowedGroupOtherBits
        guard loose == 0 else { throw .openToOthers(path, mode: UInt32(info.st_mode), fix: fix) }
    }
}

/// An exclusive `flock` on a file in the data dir, held while the dir is set up or changed, so that two
/// processes starting at once (two servers, a server and `apps list`) never both make a master key, a
/// store or a default application.
public final class DirectoryLock {
    public static let fileName = "lock"

    private let descriptor: Int32

    private init(descriptor: Int32) {
        self.descriptor = descriptor
    }

    /// Waits until the lock is ours. It polls rather than blocks in `flock`: a blocked thread of the
    /// concurrency pool could be the one the lock's holder needs to finish.
    public static func acquire(directory: String) async throws -> DirectoryLock {
        let path = (directory as NSString).appendingPathComponent(fileName)
        let descriptor = open(path, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0o600)
        guard descriptor >= 0 else {
            if errno == ELOOP { throw UnsafePath.symbolicLink(path) }
            throw UnsafePath.unreadable(path, reason: String(cString: strerror(errno)))
        }
        let lock = DirectoryLock(descriptor: descriptor)
        while flock(descriptor, LOCK_EX | LOCK_NB) != 0 {
            guard errno == EWOULDBLOCK || errno == EINTR else {
                throw UnsafePath.unreadable(path, reason: "cannot lock it: \(String(cString: strerror(errno)))")
            }
            try await Task.sleep(for: .milliseconds(5))
        }
        return lock
    }

    deinit {
        close(descriptor)
    }
}

/// Files that hold secrets: written whole or not at all, readable by the owner only.
public enum SecretFile {
    public static func writeAtomically(_ contents: String, to path: String) throws {
        let temporary = try writeTemporary(contents, beside: path)
        try rename(temporary, over: path)
    }

    /// Writes `contents` to `path` only if nothing is there yet, atomically: `link(2)` never replaces an
    /// existing file, so of two processes making the same file, one wins and the other reads the winner's.
    /// Returns false if the file already existed.
    public static func createExclusively(_ contents: String, at path: String) throws -> Bool {
        let temporary = try writeTemporary(contents, beside: path)
        defer { unlink(temporary) }
        guard link(temporary, path) == 0 else {
            if errno == EEXIST { return false }
            throw Fault(.store, "cannot create \(path): \(String(cString: strerror(errno)))")
        }
        syncDirectory(of: path)
        return true
    }

    /// `rename(2)` then an fsync of the directory, so the new name survives a crash.
    public static func rename(_ source: String, over destination: String) throws {
        guard Foundation.rename(source, destination) == 0 else {
            throw Fault(.store, "cannot rename \(source) to \(destination): \(String(cString: strerror(errno)))")
        }
        syncDirectory(of: destination)
    }

    private static func writeTemporary(_ contents: String, beside path: String) throws -> String {
        let temporary = path + ".tmp-\(getpid())"
        unlink(temporary)
        let descriptor = open(temporary, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o600)
        guard descriptor >= 0 else { throw Fault(.store, "cannot create \(temporary): \(String(cString: strerror(errno)))") }
        let bytes = Array(contents.utf8)
        let written = bytes.withUnsafeBytes { write(descriptor, $0.baseAddress, $0.count) }
        let synced = fsync(descriptor)
        close(descriptor)
        guard written == bytes.count, synced == 0 else {
            unlink(temporary)
            throw Fault(.store, "cannot write \(temporary): \(String(cString: strerror(errno)))")
        }
        return temporary
    }

    private static func syncDirectory(of path: String) {
        let directory = open((path as NSString).deletingLastPathComponent, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if directory >= 0 {
            fsync(directory)
            close(directory)
        }
    }
}
