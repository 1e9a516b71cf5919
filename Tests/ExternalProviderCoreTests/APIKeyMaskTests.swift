import ExternalProviderCore
import Testing

@Suite("Masking a key for responses")
struct APIKeyMaskTests {
    @Test("a key of 20 or more characters keeps its first 3 and last 4")
    func longKey() {
        #expect(APIKeyMask.mask("sk-proj-abcdefghijklmnopWxyz") == "sk-...Wxyz")
        #expect(APIKeyMask.mask(String(repeating: "a", count: 16) + "Wxyz") == "aaa...Wxyz")
    }

    @Test("a key shorter than 20 characters is shown as four stars", arguments: ["", "a", "sk-abc", String(repeating: "x", count: 19)])
    func shortKey(key: String) {
        #expect(APIKeyMask.mask(key) == "****")
    }
}
