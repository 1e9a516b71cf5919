// The shims are inline in include/CProcessShims.h; SwiftPM needs one source file.
