package import Foundation

/// The OpenAPI document this target is generated from, served at `GET /openapi.yaml`.
package enum OpenAPIDocument {
    package static func yaml() throws -> Data {
        guard let url = Bundle.module.url(forResource: "openapi", withExtension: "yaml") else {
            throw CocoaError(.fileNoSuchFile)
        }
        return try Data(contentsOf: url)
    }
}
