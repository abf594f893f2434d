// A build script makes Cargo resolve this crate's build-dependencies, which
// carry the same features to build scripts and proc-macros.
fn main() {}
