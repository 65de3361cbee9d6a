//! Compiles the protocol definitions in `proto/` into prost types, with a pure-Rust
//! protobuf compiler (no system `protoc`).

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let files = [
        "proto/prometheus/remote.proto",
        "proto/prometheus/write_v2.proto",
        "proto/loki/push.proto",
        "proto/google/pprof/profile.proto",
        "proto/pyroscope/push.proto",
        "proto/pyroscope/querier.proto",
    ];
    for file in files {
        println!("cargo:rerun-if-changed={file}");
    }
    let descriptors = protox::compile(files, ["proto"])?;
    prost_build::Config::new().compile_fds(descriptors)?;
    Ok(())
}
