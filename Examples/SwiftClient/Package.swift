// swift-tools-version:6.0
// A tiny app that uses the Swift client, built against this checkout (CI builds it). Outside this
// repository, depend on it by URL instead:
//     .package(url: "https://github.com/<owner>/external-provider", from: "<version>")
import Foundation
import PackageDescription

// SwiftPM names a path dependency after its directory, and a checkout may have any name.
let checkout = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../..").standardizedFileURL

let package = Package(
    name: "swift-client-example",
    platforms: [.macOS(.v15)],
    dependencies: [
        .package(path: "../.."),
    ],
    targets: [
        .executableTarget(
            name: "store-my-key",
            dependencies: [.product(name: "ExternalProviderClient", package: checkout.lastPathComponent.lowercased())]
        ),
    ]
)
