import AsyncHTTPClient
import ExternalProviderAPI
import ExternalProviderCore
import ExternalProviderSetup
import ExternalProviderStore
import ExternalProviderTestSupport
import Foundation
import Glibc
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Logging
import NIOCore
import NIOPosix
import Synchronization
import Testing

@testable import ExternalProviderSQLite
@testable import ExternalProviderServer

/// Answers anything with a plain-text HTTP line, so a TLS client's handshake fails.
private final class PlainAnswer: ChannelInboundHandler, Sendable {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        context.writeAndFlush(wrapOutboundOut(ByteBuffer(string: "HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n")), promise: nil)
        context.close(promise: nil)
    }
}

@Suite("Failures to reach OpenAI are sorted by the error's type, from real sockets")
struct UpstreamFailureTests {
    func failure(calling url: String) async throws -> UpstreamFailure {
        // AHC retries a failed connection until the connect timeout, then throws the last error.
        // The read timeout and the deadline are far from the connect timeout, so that a test run on
        // busy cores cannot take one for the other.
        let client = HTTPClient(
            eventLoopGroupProvider: .singleton,
            configuration: .init(redirectConfiguration: .disallow, timeout: .init(connect: .seconds(1), read: .seconds(60))))
        defer { _ = client.shutdown() }
        do {
            _ = try await client.execute(HTTPClientRequest(url: url), timeout: .seconds(120))
        } catch {
            return UpstreamFailure(error)
        }
        Issue.record("\(url) answered")
        return .other("none")
    }

    @Test("a closed port is a refused connection")
    func refused() async throws {
        let channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton).bind(host: "127.0.0.1", port: 0).get()
        let port = try #require(channel.localAddress?.port)
        try await channel.close()
        #expect(try await failure(calling: "http://127.0.0.1:\(port)/v1/models") == .connectionRefused)
    }

    @Test("a server that does not speak TLS fails the TLS connection")
    func tls() async throws {
        let channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .childChannelInitializer { channel in channel.eventLoop.makeCompletedFuture { try channel.pipeline.syncOperations.addHandler(PlainAnswer()) } }
            .bind(host: "127.0.0.1", port: 0).get()
        let port = try #require(channel.localAddress?.port)
        #expect(try await failure(calling: "https://127.0.0.1:\(port)/v1/models") == .tls)
        try await channel.close()
    }

    @Test("a listener whose queue is full never completes the connection: the connect timeout")
    func connectTimeout() async throws {
        let listener = try StuffedListener()
        defer { listener.close() }
        let started = ContinuousClock.now
        #expect(try await failure(calling: "http://127.0.0.1:\(listener.port)/v1/models") == .connectTimedOut)
        // The connect timeout (1 s), not the read timeout (60 s) or the deadline (120 s). The bound is
        // loose because the whole suite shares two cores: this run once took 4.06 s for the 1 s timeout.
        #expect(ContinuousClock.now - started < .seconds(30))
    }

    @Test("a name that does not resolve is unreachable")
    func unresolvable() async throws {
        #expect(try await failure(calling: "http://external-provider-test.invalid/v1/models") == .unreachable)
    }

    @Test("the reasons name what failed and nothing of the request")
    func reasons() {
        #expect(UpstreamFailure.connectionRefused.reason(.openAI) == "the connection to OpenAI was refused")
        #expect(UpstreamFailure.tls.reason(.anthropic) == "the TLS connection to Anthropic failed")
        #expect(ProviderClient.outcome(for: HTTPClientError.connectTimeout, provider: .gemini) == .timedOut)
        #expect(ProviderClient.outcome(for: HTTPClientError.readTimeout, provider: .openAI) == .timedOut)
    }
}

/// A loopback listener that never accepts, its queue filled at once: the kernel then drops every new
/// connection's SYN, so a connect waits until its timeout, as with a host that does not answer.
struct StuffedListener {
    let port: Int
    private let descriptors: [Int32]

    init() throws {
        let listener = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { address in
                Glibc.bind(listener, address, length) == 0 && listen(listener, 0) == 0 && getsockname(listener, address, &length) == 0
            }
        }
        guard listener >= 0, bound else { throw IOError(errnoCode: errno, reason: "listen") }
        port = Int(UInt16(bigEndian: address.sin_port))
        var fillers: [Int32] = []
        for _ in 0..<3 {
            let filler = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0)
            _ = withUnsafePointer(to: &address) { pointer in
                pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(filler, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
            }
            fillers.append(filler)
        }
        descriptors = [listener] + fillers
    }

    func close() {
        for descriptor in descriptors { Glibc.close(descriptor) }
    }
}
