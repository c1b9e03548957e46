//! Why the gateway could not start (or a command failed), as written to stderr: the plain line,
//! or, when the log format is JSON, one JSON log line shaped like the gateway's others
//! (`timestamp`, `level` `ERROR`, `message`, `target`), so that log shipping which expects one
//! JSON object per line gets the reason too.
//!
//! Written straight to stderr, not through `tracing`: `RUST_LOG` filters log lines, and a filter
//! must never hide why the gateway is not running.

use std::fmt::Display;
use std::io::Write;
use std::time::SystemTime;

use crate::config::LogFormat;

/// The `target` of these lines: the one `tracing` gives events of the `clever-gateway` binary.
pub const TARGET: &str = "clever_gateway";

/// The format a failure is written in, the same choice as the log lines': the command line's
/// `--log-format`, else the file's `log_format` once the file has been read (`None` before
/// that, or when it could not be read), else human.
pub fn format_for(flag: Option<LogFormat>, file: Option<LogFormat>) -> LogFormat {
    flag.or(file).unwrap_or_default()
}

/// What is written for `message` at `now`, newline included: in human format the message as it
/// is; in JSON one object on one line (a newline in the message is escaped, never written).
pub fn render(format: LogFormat, message: &str, now: SystemTime) -> String {
    match format {
        LogFormat::Human => format!("{message}\n"),
        LogFormat::Json => format!(
            "{{\"timestamp\":{},\"level\":\"ERROR\",\"message\":{},\"target\":{}}}\n",
            json_string(&humantime::format_rfc3339_micros(now).to_string()),
            json_string(message),
            json_string(TARGET),
        ),
    }
}

fn json_string(s: &str) -> String {
    serde_json::Value::from(s).to_string()
}

/// Writes `message` to stderr in `format`, in one write (so it is not interleaved with a line
/// from another thread).
pub fn report(format: LogFormat, message: impl Display) {
    let text = render(format, &message.to_string(), SystemTime::now());
    // Nothing better to do when stderr itself is gone.
    let _ = std::io::stderr().lock().write_all(text.as_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};
    use std::time::{Duration, UNIX_EPOCH};

    const LISTEN: &str =
        "clever-gateway: cannot listen on 127.0.0.1:8080: Address already in use (os error 98)";

    #[test]
    fn format_for_flag_wins_over_file() {
        use LogFormat::{Human, Json};
        assert_eq!(format_for(Some(Json), Some(Human)), Json);
        assert_eq!(format_for(Some(Human), Some(Json)), Human);
        assert_eq!(format_for(Some(Json), None), Json);
    }

    #[test]
    fn format_for_file_without_flag_then_human() {
        use LogFormat::{Human, Json};
        assert_eq!(format_for(None, Some(Json)), Json);
        assert_eq!(format_for(None, Some(Human)), Human);
        // Before the file is read (a config error): human unless the flag says json.
        assert_eq!(format_for(None, None), Human);
    }

    #[test]
    fn render_human_is_the_plain_line() {
        assert_eq!(
            render(LogFormat::Human, LISTEN, SystemTime::now()),
            format!("{LISTEN}\n")
        );
    }

    #[test]
    fn render_json_is_one_error_object_with_the_same_message() {
        let now = UNIX_EPOCH + Duration::from_micros(1_700_000_000_123_456);
        let line = render(LogFormat::Json, LISTEN, now);
        assert!(
            line.ends_with('\n') && line.lines().count() == 1,
            "{line:?}"
        );
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(
            v,
            serde_json::json!({
                "timestamp": "2023-11-14T22:13:20.123456Z",
                "level": "ERROR",
                "message": LISTEN,
                "target": "clever_gateway",
            })
        );
    }

    #[test]
    fn render_json_escapes_newlines_quotes_and_control_characters() {
        let message = "gw.toml:3:1: unknown key \"colour\"\nsecond line\t\u{1b}[31m\\";
        let line = render(LogFormat::Json, message, SystemTime::now());
        assert_eq!(line.lines().count(), 1, "{line:?}");
        assert!(!line.contains('\u{1b}'), "{line:?}");
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["message"], message);
    }

    /// Side by side with a line the gateway's JSON logging writes for `tracing::error!` (set up
    /// as `init_logging` in main.rs does): the same fields and values, apart from the time.
    #[test]
    fn render_json_has_the_fields_of_the_gateways_json_log_lines() {
        #[derive(Clone, Default)]
        struct Buf(Arc<Mutex<Vec<u8>>>);
        impl Write for Buf {
            fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
                self.0.lock().unwrap().extend_from_slice(b);
                Ok(b.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let buf = Buf::default();
        let writer = buf.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || writer.clone())
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_span_list(false)
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            tracing::error!(target: "clever_gateway", "{}", LISTEN);
        });
        let logged = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
        let mut logged: serde_json::Value = serde_json::from_str(&logged).unwrap();
        let mut ours: serde_json::Value =
            serde_json::from_str(&render(LogFormat::Json, LISTEN, SystemTime::now())).unwrap();
        for v in [&mut logged, &mut ours] {
            let t = v["timestamp"].take();
            let t = t.as_str().unwrap();
            assert!(humantime::parse_rfc3339(t).is_ok(), "{t}");
        }
        assert_eq!(ours, logged);
    }
}
