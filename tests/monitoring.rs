//! The example Prometheus alerting rules (`examples/monitoring/weir-alerts.yml`)
//! pass their unit tests (`weir-alerts.test.yml`, series shaped like Weir's
//! `/metrics`) under the real `promtool`.
//!
//! promtool is `$WEIR_PROMTOOL` (`bash scripts/test.sh` sets it after
//! `scripts/ensure-promtool.sh` fetched it), else `promtool` on the PATH.

use std::path::Path;
use std::process::Command;

fn promtool() -> String {
    std::env::var("WEIR_PROMTOOL").unwrap_or_else(|_| "promtool".to_owned())
}

#[test]
fn the_example_alerting_rules_pass_their_promtool_tests() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/monitoring");
    let out = Command::new(promtool())
        .args(["test", "rules", "weir-alerts.test.yml"])
        .current_dir(&dir)
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "cannot run {} ({e}): run `bash scripts/ensure-promtool.sh` and set WEIR_PROMTOOL, \
                 or use `bash scripts/test.sh`",
                promtool()
            )
        });
    assert!(
        out.status.success(),
        "promtool test rules failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
