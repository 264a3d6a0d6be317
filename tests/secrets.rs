//! A secret referenced as `"${NAME}"` in a pipeline file reaches the Kafka
//! client, and appears in no output: not in `weir check`, not in the logs
//! (at debug level), not in error messages, even where librdkafka quotes it.

use std::process::Command;

const SECRET: &str = "s3cr3t-4f9a-b7";

fn weir(args: &[&str], secret: Option<&str>) -> (bool, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_weir"));
    cmd.args(args)
        .env("RUST_LOG", "debug")
        .env_remove("WEIR_TEST_SECRET");
    if let Some(secret) = secret {
        cmd.env("WEIR_TEST_SECRET", secret);
    }
    let out = cmd.output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[test]
fn a_secret_from_the_environment_reaches_the_client_and_no_output() {
    let dir = tempfile::tempdir().unwrap();
    let pipeline = dir.path().join("p.toml");
    // librdkafka rejects a SASL mechanism it does not know and quotes the
    // value it was given: that quote is the proof the secret reached it.
    std::fs::write(
        &pipeline,
        r#"
name = "secured"
[source]
brokers = "127.0.0.1:1"
topic = "readings"
properties = { "security.protocol" = "sasl_plaintext", "sasl.mechanism" = "${WEIR_TEST_SECRET}", "sasl.username" = "weir", "sasl.password" = "${WEIR_TEST_SECRET}" }
[sinks.parquet]
path = "out"
"#,
    )
    .unwrap();
    let p = pipeline.to_str().unwrap();

    let (ok, out) = weir(&["check", p], Some(SECRET));
    assert!(ok, "weir check passes:\n{out}");
    assert!(!out.contains(SECRET), "weir check shows the secret:\n{out}");

    let (ok, out) = weir(&["run", p, "--bounded", "--quiet"], Some(SECRET));
    assert!(!ok, "the client refuses the mechanism:\n{out}");
    assert!(
        out.contains("***"),
        "the client quoted the (hidden) secret:\n{out}"
    );
    assert!(!out.contains(SECRET), "the run shows the secret:\n{out}");

    let (ok, out) = weir(&["check", p], None);
    assert!(!ok);
    assert!(
        out.contains("environment variable WEIR_TEST_SECRET is not set"),
        "a missing variable is a config error:\n{out}"
    );
}
