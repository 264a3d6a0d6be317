//! A secret referenced as `"${NAME}"` in a pipeline file reaches the Kafka
//! client, and appears in no output: not in `weir check`, not in the logs
//! (at debug level, human or JSON), not in error messages, even where
//! librdkafka quotes it, and even when JSON or `{:?}` escape it.

use std::process::Command;

/// A plain secret, and one with characters JSON and `{:?}` escape.
const SECRETS: [&str; 2] = ["s3cr3t-4f9a-b7", r#"s3"cr\3t-4f9a-b7"#];

/// Every form `secret` may be printed in: as is, escaped once or twice.
fn forms(secret: &str) -> Vec<String> {
    let once = serde_json::to_string(secret).unwrap();
    let twice = serde_json::to_string(&once).unwrap();
    vec![
        secret.to_owned(),
        once.trim_matches('"').to_owned(),
        twice.trim_matches('"').to_owned(),
        "4f9a-b7".to_owned(),
    ]
}

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
[storage.properties]
aws_secret_access_key = "${WEIR_TEST_SECRET}"
[sinks.parquet]
path = "out"
"#,
    )
    .unwrap();
    let p = pipeline.to_str().unwrap();

    for secret in SECRETS {
        for format in ["human", "json"] {
            let shown = |out: &str| forms(secret).into_iter().find(|f| out.contains(f.as_str()));
            let (ok, out) = weir(&["check", p, "--log-format", format], Some(secret));
            assert!(ok, "weir check passes:\n{out}");
            assert_eq!(shown(&out), None, "weir check shows the secret:\n{out}");

            let args = ["run", p, "--bounded", "--quiet", "--log-format", format];
            let (ok, out) = weir(&args, Some(secret));
            assert!(!ok, "the client refuses the mechanism:\n{out}");
            assert!(
                out.contains("***"),
                "the client quoted the (hidden) secret:\n{out}"
            );
            assert_eq!(
                shown(&out),
                None,
                "the run ({format} logs) shows the secret:\n{out}"
            );
        }
    }

    let (ok, out) = weir(&["check", p], None);
    assert!(!ok);
    assert!(
        out.contains("environment variable WEIR_TEST_SECRET is not set"),
        "a missing variable is a config error:\n{out}"
    );
}
