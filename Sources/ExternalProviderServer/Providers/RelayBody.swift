import Hummingbird
import NIOCore
import Synchronization

/// A relayed request's body as it goes upstream. It is read ahead up to `replayable` bytes first: a body
/// that ends within that (a chat request's JSON, nearly always) goes as one buffer, which can be sent
/// again if the first connection turns out closed; a longer one (a file upload) streams on from what was
/// read.
enum OutgoingBody: Sendable {
    case none
    case complete(ByteBuffer)
    case streaming(RelayUpload)

    /// Bytes read ahead before the request goes out.
    static let replayable = 256 * 1024

    /// `readAhead`: more than `replayable` when the body must be read whole to be checked (`PolicyGate`);
    /// a body read past `replayable` then holds one of `largeBodies` until `release`.
    static func read(_ request: Request, limit: Int, readAhead: Int = replayable, largeBodies: LargeBodySlots) async throws -> OutgoingBody {
        let declared = request.headers[.contentLength].flatMap(Int.init)
        if let declared, declared > limit { throw RelayUpload.TooLarge() }
        guard (declared ?? 0) > 0 || (declared == nil && request.headers[.transferEncoding] != nil) else { return .none }
        let reader = RelayUpload.Reader(request.body)
        var buffer = ByteBuffer()
        var holdsSlot = false
        do {
            while let chunk = try await next(of: reader) {
                guard buffer.readableBytes + chunk.readableBytes <= limit else { throw RelayUpload.TooLarge() }
                var chunk = chunk
                buffer.writeBuffer(&chunk)
                if buffer.readableBytes > readAhead {
                    if holdsSlot { largeBodies.give() }
                    return .streaming(RelayUpload(first: buffer, rest: reader, limit: limit))
                }
                if !holdsSlot, buffer.readableBytes > replayable {
                    guard largeBodies.take() else { throw LargeBodySlots.Busy() }
                    holdsSlot = true
                }
            }
        } catch {
            if holdsSlot { largeBodies.give() }
            throw error
        }
        return .complete(buffer)
    }

    /// Gives back the slot a body read whole past `replayable` holds, once it has gone upstream.
    func release(_ largeBodies: LargeBodySlots) {
        if case .complete(let buffer) = self, buffer.readableBytes > Self.replayable { largeBodies.give() }
    }

    private static func next(of reader: RelayUpload.Reader) async throws(RequestBodyIncomplete) -> ByteBuffer? {
        do {
            return try await reader.next()
        } catch {
            throw RequestBodyIncomplete()
        }
    }

    /// The whole body, if it was read whole: what a check of its content reads.
    var whole: [UInt8]? {
        switch self {
        case .none: []
        case .complete(let buffer): Array(buffer.readableBytesView)
        case .streaming: nil
        }
    }

    /// Whether the body can go out again on another connection: it was read whole, or none of it has been
    /// taken yet.
    var canBeSentAgain: Bool {
        switch self {
        case .none, .complete: true
        case .streaming(let upload): !upload.started
        }
    }

    /// Once the relay's answer is complete, nothing here reads the request's body any more.
    func close() async {
        if case .streaming(let upload) = self { await upload.close() }
    }
}

/// The client stopped sending its body half way (it closed the connection).
struct RequestBodyIncomplete: Error {}

/// The rest of a long request body on its way upstream, after the part read ahead. It ends with
/// `TooLarge` once it passes the limit, so a body of no declared length (chunked) cannot stream on
/// without bound. And it can be closed: an upstream may answer before it has read the whole body, and
/// once the relay has answered, the server reads what is left of the body itself. Two readers of one
/// body at once would break it, so `close()` waits for a read in flight, and reads after it end the
/// stream without touching the body.
final class RelayUpload: AsyncSequence, Sendable {
    typealias Element = ByteBuffer
    struct TooLarge: Error {}

    private struct State {
        var first: ByteBuffer?
        var started = false
        var reading = false
        var closed = false
        var seen: Int
        var closers: [CheckedContinuation<Void, Never>] = []
    }

    /// The request body's iterator, read by one reader at a time, which `State.reading` ensures.
    final class Reader: @unchecked Sendable {
        private var iterator: RequestBody.AsyncIterator
        init(_ body: RequestBody) { iterator = body.makeAsyncIterator() }
        func next() async throws -> ByteBuffer? { try await iterator.next() }
    }

    private let rest: Reader
    private let limit: Int
    private let state: Mutex<State>

    init(first: ByteBuffer, rest: Reader, limit: Int) {
        self.rest = rest
        self.limit = limit
        state = Mutex(State(first: first, seen: first.readableBytes))
    }

    /// Whether the upstream request has taken any of the body yet.
    var started: Bool { state.withLock { $0.started } }

    func read() async throws -> ByteBuffer? {
        enum Next { case closed, first(ByteBuffer), rest }
        let next: Next = state.withLock { state in
            guard !state.closed else { return .closed }
            state.started = true
            if let first = state.first {
                state.first = nil
                return .first(first)
            }
            state.reading = true
            return .rest
        }
        switch next {
        case .closed: return nil
        case .first(let buffer): return buffer
        case .rest: break
        }
        let chunk: ByteBuffer?
        do {
            chunk = try await rest.next()
        } catch {
            finishRead(adding: 0)
            throw error
        }
        guard finishRead(adding: chunk?.readableBytes ?? 0) <= limit else { throw TooLarge() }
        return chunk
    }

    /// After this returns, nothing here reads the body again.
    func close() async {
        await withCheckedContinuation { continuation in
            let now = state.withLock { state in
                state.closed = true
                guard state.reading else { return true }
                state.closers.append(continuation)
                return false
            }
            if now { continuation.resume() }
        }
    }

    @discardableResult
    private func finishRead(adding count: Int) -> Int {
        let (seen, closers) = state.withLock { state in
            state.reading = false
            state.seen += count
            defer { state.closers = [] }
            return (state.seen, state.closers)
        }
        for closer in closers { closer.resume() }
        return seen
    }

    struct AsyncIterator: AsyncIteratorProtocol {
        let upload: RelayUpload
        mutating func next() async throws -> ByteBuffer? { try await upload.read() }
    }

    func makeAsyncIterator() -> AsyncIterator { AsyncIterator(upload: self) }
}

/// Bodies read ahead past `OutgoingBody.replayable` held at once. Each may be up to
/// `PolicyGate.modelReadLimit`: without a bound, as many connections as are allowed could each hold one.
/// A request that would be one too many is answered 503, to be sent again.
final class LargeBodySlots: Sendable {
    struct Busy: Error {}

    let limit: Int
    private let held = Mutex(0)

    init(limit: Int = 32) {
        self.limit = limit
    }

    func take() -> Bool {
        held.withLock { held in
            guard held < limit else { return false }
            held += 1
            return true
        }
    }

    func give() {
        held.withLock { $0 -= 1 }
    }
}
