// swift-tools-version:6.0
import PackageDescription

let package = Package(
    name: "external-provider",
    // macOS 15: `Synchronization.Mutex` is there from 15 on.
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "external-provider", targets: ["external-provider"]),
        // A typed client for Swift apps: the spec's generated client behind a small facade. It needs
        // only the generated code, Core and an HTTP client, never the server's GRDB or Hummingbird.
        .library(name: "ExternalProviderClient", targets: ["ExternalProviderClient"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-nio-extras", from: "1.35.2"),
        .package(url: "https://github.com/apple/swift-nio-ssl", from: "2.37.6"),
        .package(url: "https://github.com/apple/swift-http-types", from: "1.8.0"),
        .package(url: "https://github.com/apple/swift-crypto", from: "4.5.2"),
        .package(url: "https://github.com/swift-server/async-http-client", from: "1.37.0"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
        .package(url: "https://github.com/apple/swift-openapi-generator", from: "1.14.3"),
        .package(url: "https://github.com/apple/swift-openapi-runtime", from: "1.13.4"),
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.1"),
        .package(url: "https://github.com/hummingbird-project/swift-openapi-hummingbird", from: "2.1.0"),
        .package(url: "https://github.com/groue/GRDB.swift", from: "7.10.0"),
        .package(url: "https://github.com/vapor/postgres-nio", from: "1.33.2"),
        .package(url: "https://github.com/apple/swift-metrics", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
        .package(url: "https://github.com/swift-server/swift-openapi-async-http-client", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-configuration", from: "1.4.0"),
    ],
    targets: [
        .target(
            name: "ExternalProviderAPI",
            dependencies: [
                .product(name: "OpenAPIRuntime", package: "swift-openapi-runtime"),
            ],
            resources: [.copy("openapi.yaml")],
            // The generator writes `package import`; the resource accessor's plain import must not clash with it.
            swiftSettings: [.enableUpcomingFeature("InternalImportsByDefault")],
            plugins: [.plugin(name: "OpenAPIGenerator", package: "swift-openapi-generator")]
        ),
        // The domain, with no I/O: the providers as data, the operations, the write use case.
        .target(name: "ExternalProviderCore"),
        .target(
            name: "ExternalProviderClient",
            dependencies: [
                "ExternalProviderAPI",
                "ExternalProviderCore",
                .product(name: "OpenAPIRuntime", package: "swift-openapi-runtime"),
                .product(name: "OpenAPIAsyncHTTPClient", package: "swift-openapi-async-http-client"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
            ]
        ),
        .target(name: "CProcessShims"),
        // What every store shares: the master key and the sealed format, application ids, the health
        // columns, account changes as rows, the files that hold keys.
        .target(
            name: "ExternalProviderStore",
            dependencies: [
                "ExternalProviderCore",
                .product(name: "Crypto", package: "swift-crypto"),
            ]
        ),
        .target(
            name: "ExternalProviderSQLite",
            dependencies: [
                "ExternalProviderCore",
                "ExternalProviderStore",
                .product(name: "GRDB", package: "GRDB.swift"),
            ]
        ),
        .target(
            name: "ExternalProviderPostgres",
            dependencies: [
                "ExternalProviderCore",
                "ExternalProviderStore",
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
            ]
        ),
        // What every command does before its work: read its settings, find and open its store.
        .target(
            name: "ExternalProviderSetup",
            dependencies: [
                "CProcessShims",
                "ExternalProviderCore",
                "ExternalProviderStore",
                "ExternalProviderSQLite",
                "ExternalProviderPostgres",
                .product(name: "Configuration", package: "swift-configuration"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        .target(
            name: "ExternalProviderServer",
            dependencies: [
                "ExternalProviderAPI",
                "ExternalProviderCore",
                "ExternalProviderStore",
                "ExternalProviderSetup",
                "CProcessShims",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "OpenAPIHummingbird", package: "swift-openapi-hummingbird"),
                .product(name: "OpenAPIRuntime", package: "swift-openapi-runtime"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "NIOHTTPTypes", package: "swift-nio-extras"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "CoreMetrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
            ]
        ),
        .executableTarget(
            name: "external-provider",
            dependencies: [
                "ExternalProviderClient",
                "ExternalProviderServer",
                "ExternalProviderSetup",
                "ExternalProviderStore",
                "ExternalProviderCore",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ],
            plugins: ["BuildVersion"]
        ),
        // Writes the version and the commit the command line was built from, for `--version`.
        .plugin(name: "BuildVersion", capability: .buildTool()),

        // Test helpers the test targets share: temporary directories, a store of each kind, a
        // configurable verifier.
        .target(
            name: "ExternalProviderTestSupport",
            dependencies: [
                "ExternalProviderCore",
                "ExternalProviderStore",
                "ExternalProviderSQLite",
                "ExternalProviderPostgres",
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdTesting", package: "hummingbird"),
            ],
            path: "Tests/ExternalProviderTestSupport"
        ),
        .testTarget(name: "ExternalProviderCoreTests", dependencies: ["ExternalProviderCore"]),
        .testTarget(
            name: "ExternalProviderStoreTests",
            dependencies: [
                "ExternalProviderStore",
                "ExternalProviderCore",
                "ExternalProviderSQLite",
                "ExternalProviderPostgres",
                "ExternalProviderTestSupport",
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "GRDB", package: "GRDB.swift"),
            ]
        ),
        .testTarget(
            name: "ExternalProviderSQLiteTests",
            dependencies: [
                "ExternalProviderSQLite",
                "ExternalProviderStore",
                "ExternalProviderCore",
                "ExternalProviderTestSupport",
                .product(name: "GRDB", package: "GRDB.swift"),
            ]
        ),
        .testTarget(
            name: "ExternalProviderPostgresTests",
            dependencies: [
                "ExternalProviderPostgres",
                "ExternalProviderStore",
                "ExternalProviderCore",
                "ExternalProviderTestSupport",
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .testTarget(
            name: "ExternalProviderSetupTests",
            dependencies: [
                "ExternalProviderSetup",
                "ExternalProviderSQLite",
                "ExternalProviderStore",
                "ExternalProviderCore",
                "ExternalProviderTestSupport",
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .testTarget(
            name: "ExternalProviderServerTests",
            dependencies: [
                "ExternalProviderServer",
                "ExternalProviderSetup",
                "ExternalProviderAPI",
                "ExternalProviderCore",
                "ExternalProviderStore",
                "ExternalProviderSQLite",
                "ExternalProviderTestSupport",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdTesting", package: "hummingbird"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "OpenAPIRuntime", package: "swift-openapi-runtime"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        .testTarget(
            name: "ExternalProviderClientTests",
            dependencies: [
                "ExternalProviderClient",
                "ExternalProviderServer",
                "ExternalProviderSetup",
                "ExternalProviderCore",
                "ExternalProviderTestSupport",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdTesting", package: "hummingbird"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "OpenAPIRuntime", package: "swift-openapi-runtime"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
    ]
)
