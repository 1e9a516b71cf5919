import HTTPTypes
import Logging
import NIOCore
import NIOHTTPTypes
import Synchronization

/// How many connections may be open at once. Any local process can connect, and each connection holds a
/// descriptor: past the cap, a new connection is closed as it arrives rather than starve the server.
public final class ConnectionLimit: Sendable {
    public let maximum: Int
    private let open = Atomic<Int>(0)

    public init(maximum: Int) {
        self.maximum = maximum
    }

    fileprivate func acquire() -> Bool {
        let (_, now) = open.add(1, ordering: .relaxed)
        if now <= maximum { return true }
        open.subtract(1, ordering: .relaxed)
        return false
    }

    fileprivate func release() {
        open.subtract(1, ordering: .relaxed)
    }
}

/// The pipeline's guards for one connection, after HTTP decoding:
/// - it counts the connection against `ConnectionLimit`, and closes it if the server is full;
/// - a request's head and body must arrive within `requestTimeout` of its start (of the connection, for
///   the first request), or the connection is closed: a client that trickles a body, one byte at a time,
///   no longer holds it open forever. The time the server itself takes to answer does not count;
/// - an answer marked `Connection: close` (one given without reading the body) closes the connection once
///   it is sent, instead of reading on through a body nobody wants.
final class ConnectionGuardHandler: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPRequestPart
    typealias InboundOut = HTTPRequestPart
    typealias OutboundIn = HTTPResponsePart
    typealias OutboundOut = HTTPResponsePart

    /// After an early answer, how long the client has to read it before the connection is dropped. The
    /// write side is shut first, so the client gets the whole answer and then end of file, not a reset.
    static let lingerAfterEarlyAnswer = TimeAmount.seconds(2)

    private let limit: ConnectionLimit
    private let requestTimeout: TimeAmount
    private let logger: Logger
    private var counted = false
    /// When the request being read began; `nil` between requests.
    private var requestStarted: NIODeadline?
    /// One timer per connection, not per request: scheduling and cancelling one for every request cost
    /// a few percent of a small request. When it fires it closes an overdue request's connection, or sets
    /// itself for the current request's deadline.
    private var timer: Scheduled<Void>?
    private var closeAfterResponse = false
    /// Whether this connection's client is still there, for work done on its behalf.
    let presence = ClientPresence()

    init(limit: ConnectionLimit, requestTimeout: TimeAmount, logger: Logger) {
        self.limit = limit
        self.requestTimeout = requestTimeout
        self.logger = logger
    }

    func handlerAdded(context: ChannelHandlerContext) {
        if context.channel.isActive { start(context) }
    }

    func channelActive(context: ChannelHandlerContext) {
        start(context)
        context.fireChannelActive()
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        disarm()
        releaseSlot()
        presence.markGone()
    }

    func channelInactive(context: ChannelHandlerContext) {
        disarm()
        releaseSlot()
        presence.markGone()
        context.fireChannelInactive()
    }

    /// The server allows half-closure, so a client that closes its socket shows first as its input closing:
    /// nothing more can arrive, and whoever waits on its behalf (the relay, for an upstream answer) may stop.
    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let event = event as? ChannelEvent, event == .inputClosed { presence.markGone() }
        context.fireUserInboundEventTriggered(event)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head: begin(context)
        case .body: break
        case .end: requestStarted = nil
        }
        context.fireChannelRead(data)
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        switch unwrapOutboundIn(data) {
        case .head(let head):
            if head.headerFields[.connection]?.lowercased() == "close" { closeAfterResponse = true }
            context.write(data, promise: promise)
        case .body:
            context.write(data, promise: promise)
        case .end:
            guard closeAfterResponse else {
                context.write(data, promise: promise)
                return
            }
            requestStarted = nil
            let loop = context.eventLoop.assumeIsolated()
            context.writeAndFlush(data).assumeIsolated().whenComplete { result in
                promise?.completeWith(result)
                context.close(mode: .output, promise: nil)
                loop.scheduleTask(in: Self.lingerAfterEarlyAnswer) { context.close(promise: nil) }
            }
        }
    }

    private func start(_ context: ChannelHandlerContext) {
        guard !counted else { return }
        guard limit.acquire() else {
            logger.debug("closed a connection: the server already has --max-connections open", metadata: ["max_connections": "\(limit.maximum)"])
            context.close(promise: nil)
            return
        }
        counted = true
        begin(context)
    }

    private func releaseSlot() {
        guard counted else { return }
        counted = false
        limit.release()
    }

    /// A request begins: at the connection's start for the first, at its head for later ones. One that
    /// began already (the first request's head) keeps its start.
    private func begin(_ context: ChannelHandlerContext) {
        if requestStarted == nil { requestStarted = .now() }
        if timer == nil { setTimer(context) }
    }

    private func setTimer(_ context: ChannelHandlerContext) {
        guard let started = requestStarted else { return }
        timer = context.eventLoop.assumeIsolated().scheduleTask(deadline: started + requestTimeout) { [self] in
            timer = nil
            guard let started = requestStarted else { return }
            if NIODeadline.now() >= started + requestTimeout {
                logger.debug("closed a connection whose request did not arrive within --request-timeout")
                context.close(promise: nil)
            } else {
                setTimer(context)
            }
        }
    }

    private func disarm() {
        timer?.cancel()
        timer = nil
        requestStarted = nil
    }
}

/// Whether the client of one connection is still there. It is gone once it closed its side of the
/// connection, or the connection closed; nothing it asked for is worth finishing then.
final class ClientPresence: Sendable {
    private struct State {
        var gone = false
        var waiters: [Int: CheckedContinuation<Void, Never>] = [:]
        var nextWaiter = 0
    }

    private let state = Mutex(State())

    var isGone: Bool { state.withLock { $0.gone } }

    func markGone() {
        let waiters = state.withLock { state in
            state.gone = true
            defer { state.waiters = [:] }
            return state.waiters.values
        }
        for waiter in waiters { waiter.resume() }
    }

    /// Returns once the client is gone, or once the calling task is cancelled.
    func untilGone() async {
        let id = state.withLock { state in
            defer { state.nextWaiter += 1 }
            return state.nextWaiter
        }
        await withTaskCancellationHandler {
            await withCheckedContinuation { continuation in
                let resumeNow = state.withLock { state in
                    guard !state.gone, !Task.isCancelled else { return true }
                    state.waiters[id] = continuation
                    return false
                }
                if resumeNow { continuation.resume() }
            }
        } onCancel: {
            state.withLock { $0.waiters.removeValue(forKey: id) }?.resume()
        }
    }

    /// The presence of the client on `channel`, kept by its `ConnectionGuardHandler`; `nil` on a channel
    /// without one (the router tests' in-memory channel).
    static func of(_ channel: any Channel) async -> ClientPresence? {
        try? await channel.eventLoop.submit {
            try channel.pipeline.syncOperations.handler(type: ConnectionGuardHandler.self).presence
        }.get()
    }
}
