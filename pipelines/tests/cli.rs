//! The line monitor binary takes `weir run`'s run options beside its own.

use std::process::Command;

#[test]
fn the_binary_offers_its_own_options_and_the_run_options() {
    let out = Command::new(env!("CARGO_BIN_EXE_line_monitor"))
        .arg("--help")
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "--help failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    for flag in [
        "--parquet-dir",
        "--rules",
        "--replay",
        "--out",
        "--bounded",
        "--start-at",
        "--checkpoint-dir",
    ] {
        assert!(help.contains(flag), "{flag} missing from:\n{help}");
    }
}
