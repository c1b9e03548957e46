//! The human log format: tracing-subscriber's default ("full") format, with the access line
//! (one per request) written without its general machinery.
//!
//! The default formatter writes every field through `write!` with a style painted around its
//! name even when colours are off; on the access line that was about a tenth of the
//! instructions of a whole proxied request. `HumanFormat` writes that line itself, byte for
//! byte as the default formatter does (a test holds them side by side), and hands every other
//! event, and every event on a terminal (colours), to the default formatter.

use std::fmt::{self, Write as _};

use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::fmt::format::{Format, Full, Writer};
use tracing_subscriber::fmt::time::FormatTime;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

/// The target of the one-line-per-request access log.
pub const ACCESS_TARGET: &str = "access";

/// A duration as a log field: milliseconds with two decimals, a number (so JSON logs can be
/// queried numerically), as the access line and each call to Clever write it.
pub fn millis(d: std::time::Duration) -> f64 {
    (d.as_secs_f64() * 100_000.0).round() / 100.0
}

/// tracing-subscriber's default event format, faster on the access line (see the module docs).
#[derive(Debug)]
pub struct HumanFormat {
    full: Format<Full, Rfc3339Micros>,
}

impl Default for HumanFormat {
    fn default() -> Self {
        HumanFormat {
            full: Format::default().with_timer(Rfc3339Micros),
        }
    }
}

/// The time as tracing-subscriber's `SystemTime` timer writes it (RFC 3339 UTC with
/// microseconds, `2026-11-22T23:00:13.123456Z`), through humantime, which fills one buffer
/// instead of formatting each of the seven parts with `write!`: a third of the access line's
/// cost before.
#[derive(Debug, Clone, Copy, Default)]
pub struct Rfc3339Micros;

impl FormatTime for Rfc3339Micros {
    fn format_time(&self, w: &mut Writer<'_>) -> fmt::Result {
        write!(
            w,
            "{}",
            humantime::format_rfc3339_micros(std::time::SystemTime::now())
        )
    }
}

impl<S, N> FormatEvent<S, N> for HumanFormat
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let meta = event.metadata();
        if writer.has_ansi_escapes()
            || meta.target() != ACCESS_TARGET
            || ctx.event_scope().is_some()
        {
            return self.full.format_event(ctx, writer, event);
        }
        // As `Format<Full, _>` writes it without colours, spans, thread names or file names.
        Rfc3339Micros.format_time(&mut writer)?;
        writer.write_char(' ')?;
        writer.write_str(level_str(meta.level()))?;
        writer.write_char(' ')?;
        writer.write_str(meta.target())?;
        writer.write_str(": ")?;
        let mut fields = PlainFields {
            writer: &mut writer,
            first: true,
            result: Ok(()),
        };
        event.record(&mut fields);
        fields.result?;
        writer.write_char('\n')
    }
}

/// The level as the default format writes it without colours (padded to five characters).
fn level_str(level: &Level) -> &'static str {
    match *level {
        Level::TRACE => "TRACE",
        Level::DEBUG => "DEBUG",
        Level::INFO => " INFO",
        Level::WARN => " WARN",
        Level::ERROR => "ERROR",
    }
}

/// The fields as tracing-subscriber's `DefaultVisitor` writes them without colours: separated
/// by a space, the message as it is, every other field `name=value` with the value's `Debug`.
struct PlainFields<'a, 'w> {
    writer: &'a mut Writer<'w>,
    first: bool,
    result: fmt::Result,
}

impl PlainFields<'_, '_> {
    /// Writes the separator and `name=` (nothing for the message); false when already failed.
    fn start(&mut self, field: &Field) -> bool {
        if self.result.is_err() {
            return false;
        }
        let name = field.name();
        if name.starts_with("log.") {
            // Log metadata, handled by the default format's normalisation (never on this line).
            return false;
        }
        if !self.first {
            self.result = self.writer.write_char(' ');
        }
        self.first = false;
        if name != "message" {
            let name = name.strip_prefix("r#").unwrap_or(name);
            self.result = self
                .result
                .and_then(|()| self.writer.write_str(name))
                .and_then(|()| self.writer.write_char('='));
        }
        self.result.is_ok()
    }
}

impl Visit for PlainFields<'_, '_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            return self.record_debug(field, &format_args!("{value}"));
        }
        if !self.start(field) {
            return;
        }
        // `Debug` of a str writes printable ASCII other than `"` and `\` as it is.
        let plain = value
            .bytes()
            .all(|b| (0x20..0x7f).contains(&b) && b != b'"' && b != b'\\');
        self.result = if plain {
            self.writer
                .write_char('"')
                .and_then(|()| self.writer.write_str(value))
                .and_then(|()| self.writer.write_char('"'))
        } else {
            write!(self.writer, "{value:?}")
        };
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        if !self.start(field) {
            return;
        }
        let mut buf = [0u8; 20];
        let mut i = buf.len();
        let mut v = value;
        loop {
            i -= 1;
            buf[i] = b'0' + (v % 10) as u8;
            v /= 10;
            if v == 0 {
                break;
            }
        }
        self.result = self
            .writer
            .write_str(std::str::from_utf8(&buf[i..]).unwrap_or_default());
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if !self.start(field) {
            return;
        }
        self.result = if field.name() == "message" && self.writer.sanitizes_ansi_escapes() {
            write!(Escaping(self.writer), "{value:?}")
        } else {
            write!(self.writer, "{value:?}")
        };
    }
}

/// Writes through, escaping terminal control characters as the default format does in
/// messages (its `EscapeGuard`).
struct Escaping<'a, 'w>(&'a mut Writer<'w>);

impl fmt::Write for Escaping<'_, '_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let risky = |c: char| {
            matches!(
                c,
                '\x1b' | '\x07' | '\x08' | '\x0c' | '\x7f' | '\u{80}'..='\u{9f}'
            )
        };
        if !s.contains(risky) {
            return self.0.write_str(s);
        }
        for c in s.chars() {
            match c {
                '\x1b' => self.0.write_str("\\x1b")?,
                '\x07' => self.0.write_str("\\x07")?,
                '\x08' => self.0.write_str("\\x08")?,
                '\x0c' => self.0.write_str("\\x0c")?,
                '\x7f' => self.0.write_str("\\x7f")?,
                '\u{80}'..='\u{9f}' => write!(self.0, "\\u{{{:x}}}", c as u32)?,
                c => self.0.write_char(c)?,
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};
    use tracing_subscriber::fmt::MakeWriter;

    #[derive(Clone, Default)]
    struct Buf(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Buf {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl<'a> MakeWriter<'a> for Buf {
        type Writer = Buf;
        fn make_writer(&'a self) -> Buf {
            self.clone()
        }
    }

    impl Buf {
        fn take(&self) -> String {
            String::from_utf8(std::mem::take(&mut *self.0.lock().unwrap())).unwrap()
        }
    }

    /// Emits the access line (as `proxy::GatewayProxy::logging` does) and a few other events.
    fn emit(upstream: &str, path: &str, user_id: &str, ms: f64, error: Option<&str>) {
        tracing::info!(
            target: "access",
            request_id = %"Xq2-_9aZ01bcDEfg",
            upstream,
            method = %http::Method::GET,
            path = %path,
            status = 200u16,
            duration_ms = ms,
            user_id,
            error,
            "request"
        );
        tracing::warn!(request_id = %"rid", why = "a reason", "request refused");
        tracing::info!(target: "access", "no fields");
        tracing::info!(target: "access", esc = "\x1b[31m", "esc \x1b[31m red\u{85} \x07");
    }

    /// Everything after the timestamp, per line.
    fn after_time(out: &str) -> Vec<String> {
        out.lines()
            .map(|l| {
                let (time, rest) = l.split_once(' ').unwrap();
                assert!(time.ends_with('Z') && time.len() >= 20, "{l}");
                rest.to_string()
            })
            .collect()
    }

    #[test]
    fn access_line_written_as_the_default_format_writes_it() {
        let cases: &[(&str, &str, &str, f64, Option<&str>)] = &[
            ("app", "/app/page", "-", 0.42, None),
            (
                "gradebook",
                "/",
                "5fc43758db087d0be186c29d",
                12.0,
                Some("ConnectTimedout"),
            ),
            ("we\"ird\\name", "/a%20b", "üser\tid", 1e-7, Some("x\ny")),
            ("-", "/x", "", 123456.78, Some("")),
        ];
        for &(upstream, path, user_id, ms, error) in cases {
            let (ours, theirs) = (Buf::default(), Buf::default());
            let sub = tracing_subscriber::fmt()
                .with_writer(ours.clone())
                .with_ansi(false)
                .event_format(HumanFormat::default())
                .finish();
            tracing::subscriber::with_default(sub, || emit(upstream, path, user_id, ms, error));
            let sub = tracing_subscriber::fmt()
                .with_writer(theirs.clone())
                .with_ansi(false)
                .finish();
            tracing::subscriber::with_default(sub, || emit(upstream, path, user_id, ms, error));
            let (ours, theirs) = (ours.take(), theirs.take());
            assert_eq!(after_time(&ours), after_time(&theirs), "\n{ours}\n{theirs}");
            assert_eq!(ours.lines().count(), 4, "{ours}");
        }
    }

    /// One line's timestamp as `timer` writes it.
    fn time_from(timer: impl FormatTime) -> String {
        let mut s = String::new();
        timer.format_time(&mut Writer::new(&mut s)).unwrap();
        s
    }

    #[test]
    fn time_written_as_the_default_timer_writes_it() {
        use tracing_subscriber::fmt::time::SystemTime;
        let shape = |t: &str| {
            let b = t.as_bytes();
            b.len() == 27
                && b.iter().enumerate().all(|(i, c)| match i {
                    4 | 7 => *c == b'-',
                    10 => *c == b'T',
                    13 | 16 => *c == b':',
                    19 => *c == b'.',
                    26 => *c == b'Z',
                    _ => c.is_ascii_digit(),
                })
        };
        let (theirs, ours) = (time_from(SystemTime), time_from(Rfc3339Micros));
        assert!(shape(&theirs), "{theirs}");
        assert!(shape(&ours), "{ours}");
        let (a, b) = (
            humantime::parse_rfc3339(&theirs).unwrap(),
            humantime::parse_rfc3339(&ours).unwrap(),
        );
        let apart = b.duration_since(a).unwrap_or_default();
        assert!(apart < std::time::Duration::from_secs(1), "{theirs} {ours}");
    }

    #[test]
    fn level_strings_match_the_default_format() {
        for level in [
            Level::TRACE,
            Level::DEBUG,
            Level::INFO,
            Level::WARN,
            Level::ERROR,
        ] {
            assert_eq!(level_str(&level), format!("{:>5}", level.as_str()));
        }
    }
}
