import Foundation

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Reads a secret: from the terminal without echo, or from standard input when that is not a terminal.
enum SecretInput {
    /// The terminal's settings while echo is off, to put back if the user interrupts.
    nonisolated(unsafe) private static var savedTerminal: termios?

    static func read(prompt: String) -> String {
        guard isatty(STDIN_FILENO) == 1 else {
            let data = FileHandle.standardInput.readDataToEndOfFile()
            let text = String(decoding: data, as: UTF8.self)
            return text.split(whereSeparator: \.isNewline).first.map { $0.trimmingCharacters(in: .whitespaces) } ?? ""
        }
        FileHandle.standardError.write(Data(prompt.utf8))
        var original = termios()
        guard tcgetattr(STDIN_FILENO, &original) == 0 else { exitWith(.failure, "cannot read the terminal's settings") }
        var silent = original
        silent.c_lflag &= ~tcflag_t(ECHO)
        savedTerminal = original
        // Interrupted while echo is off: put the terminal back before leaving.
        signal(SIGINT) { _ in
            if var saved = SecretInput.savedTerminal { tcsetattr(STDIN_FILENO, TCSANOW, &saved) }
            _exit(130)
        }
        tcsetattr(STDIN_FILENO, TCSAFLUSH, &silent)
        let line = readLine(strippingNewline: true) ?? ""
        tcsetattr(STDIN_FILENO, TCSANOW, &original)
        signal(SIGINT, SIG_DFL)
        savedTerminal = nil
        FileHandle.standardError.write(Data("\n".utf8))
        return line.trimmingCharacters(in: .whitespaces)
    }
}
