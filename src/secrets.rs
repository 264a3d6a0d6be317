//! Secrets in pipeline files: a Kafka client property written as
//! `"${NAME}"` takes the value of the environment variable `NAME`. Every
//! such value is remembered here, and the `weir` binary's log and error
//! output, `weir check`, `/metrics` and the status page replace it with
//! `***`, so a secret never appears in any of them, even where librdkafka
//! quotes it. A value is also remembered in the forms it takes once escaped
//! for JSON (once or twice: a JSON log line of a message that quotes JSON)
//! or by Rust's `{:?}`, since that is how log lines and messages quote it.

use std::io::Write;
use std::sync::{Mutex, OnceLock};

fn registry() -> &'static Mutex<Vec<String>> {
    static SECRETS: OnceLock<Mutex<Vec<String>>> = OnceLock::new();
    SECRETS.get_or_init(Mutex::default)
}

/// The variable name of a `${NAME}` reference, if `text` is one.
pub fn reference(text: &str) -> Option<&str> {
    let name = text.strip_prefix("${")?.strip_suffix('}')?;
    (!name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'))
        .then_some(name)
}

/// Reads the secret in environment variable `name` and remembers it, so
/// that output hides it.
pub fn from_env(name: &str) -> Option<String> {
    let value = std::env::var(name).ok()?;
    remember(&value);
    Some(value)
}

/// Remembers `value` as a secret, with its escaped forms.
pub fn remember(value: &str) {
    if value.is_empty() {
        return;
    }
    let json = |s: &str| {
        let quoted = serde_json::to_string(s).expect("a string serializes");
        quoted[1..quoted.len() - 1].to_owned()
    };
    let debug = |s: &str| {
        let quoted = format!("{s:?}");
        quoted[1..quoted.len() - 1].to_owned()
    };
    let forms = [
        value.to_owned(),
        json(value),
        json(&json(value)),
        debug(value),
        json(&debug(value)),
    ];
    let mut secrets = registry().lock().unwrap_or_else(|e| e.into_inner());
    for form in forms {
        if !secrets.contains(&form) {
            secrets.push(form);
        }
    }
    // The longest first: a form may contain a shorter one.
    secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
}

/// `text` with every remembered secret replaced by `***`.
pub fn redact(text: &str) -> String {
    let secrets = registry().lock().unwrap_or_else(|e| e.into_inner());
    let mut out = text.to_owned();
    for secret in secrets.iter() {
        out = out.replace(secret.as_str(), "***");
    }
    out
}

/// A writer to standard error that hides remembered secrets; for the log
/// subscriber (`tracing_subscriber::fmt().with_writer(secrets::stderr)`).
pub fn stderr() -> RedactingWriter {
    RedactingWriter
}

/// See [`stderr`].
#[derive(Debug)]
pub struct RedactingWriter;

impl Write for RedactingWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let text = String::from_utf8_lossy(buf);
        std::io::stderr().write_all(redact(&text).as_bytes())?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_and_redaction() {
        assert_eq!(reference("${KAFKA_PASSWORD}"), Some("KAFKA_PASSWORD"));
        assert_eq!(reference("$KAFKA_PASSWORD"), None);
        assert_eq!(reference("${}"), None);
        assert_eq!(reference("pre-${X}"), None);
        std::env::set_var("WEIR_SECRETS_UNIT_TEST", "hunter2-xyz");
        assert_eq!(
            from_env("WEIR_SECRETS_UNIT_TEST").as_deref(),
            Some("hunter2-xyz")
        );
        assert_eq!(
            redact("Invalid value \"hunter2-xyz\" for sasl.password"),
            "Invalid value \"***\" for sasl.password"
        );
    }

    #[test]
    fn escaped_forms_of_a_secret_are_hidden_too() {
        let secret = r#"pa"ss\w0rd-9e1"#;
        remember(secret);
        let message = format!("Invalid value \"{secret}\"");
        let once = serde_json::to_string(&message).unwrap();
        let twice = serde_json::to_string(&once).unwrap();
        let debug = format!("{message:?}");
        for text in [&message, &once, &twice, &debug] {
            let hidden = redact(text);
            assert!(hidden.contains("***"), "{text} -> {hidden}");
            assert!(!hidden.contains("pa"), "{text} -> {hidden}");
        }
    }
}
