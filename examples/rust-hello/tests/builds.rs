//! Makes `cargo test --workspace` build the `rust-hello` binary, which the nimbus integration
//! tests deploy as a process function (they find it beside their own executable).

#[test]
fn the_handler_binary_is_built() {
    let exe = std::path::Path::new(env!("CARGO_BIN_EXE_rust-hello"));
    assert!(exe.is_file(), "{} was not built", exe.display());
}
