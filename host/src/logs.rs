//! Where log lines go. Human lines as tracing formats them; JSON lines (the
//! container's default) also carry Cloud Logging's `severity`, which is how
//! Cloud Run's log explorer knows a warning from an info line: it does not read
//! tracing's `level`, so without it every line shows with no severity.

use std::io::{self, Write};

use tracing::{Level, Metadata};
use tracing_subscriber::fmt::MakeWriter;

use crate::cli::LogFormat;

/// Install the global subscriber: `RUST_LOG` filters (default `info`), to stdout.
pub fn init(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let logs = tracing_subscriber::fmt().with_env_filter(filter);
    match format {
        LogFormat::Human => logs.init(),
        LogFormat::Json => logs
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_writer(WithSeverity(io::stdout))
            .init(),
    }
}

/// Cloud Logging's name for a tracing level.
fn severity(level: &Level) -> &'static str {
    match *level {
        Level::ERROR => "ERROR",
        Level::WARN => "WARNING",
        Level::INFO => "INFO",
        _ => "DEBUG",
    }
}

/// A [`MakeWriter`] that opens each JSON event with `"severity":"…",`. The
/// formatter writes an event as one buffer starting with `{`, through a writer
/// made for that event, so the field goes in without parsing anything.
pub struct WithSeverity<M>(pub M);

impl<'a, M: MakeWriter<'a>> MakeWriter<'a> for WithSeverity<M> {
    type Writer = SeverityWriter<M::Writer>;

    fn make_writer(&'a self) -> Self::Writer {
        SeverityWriter {
            severity: None,
            inner: self.0.make_writer(),
        }
    }

    fn make_writer_for(&'a self, meta: &Metadata<'_>) -> Self::Writer {
        SeverityWriter {
            severity: Some(severity(meta.level())),
            inner: self.0.make_writer_for(meta),
        }
    }
}

/// The writer of one event (see [`WithSeverity`]).
pub struct SeverityWriter<W> {
    /// Still to insert, before the event's first byte.
    severity: Option<&'static str>,
    inner: W,
}

impl<W: Write> Write for SeverityWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match (self.severity.take(), buf.split_first()) {
            (Some(severity), Some((b'{', rest))) => {
                // One write for the whole line keeps lines whole when threads log at once.
                let mut line = Vec::with_capacity(buf.len() + 24);
                line.extend_from_slice(b"{\"severity\":\"");
                line.extend_from_slice(severity.as_bytes());
                line.extend_from_slice(b"\",");
                line.extend_from_slice(rest);
                self.inner.write_all(&line)?;
                Ok(buf.len())
            }
            _ => self.inner.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    /// Collects what the subscriber writes.
    #[derive(Clone, Default)]
    struct Sink(Arc<Mutex<Vec<u8>>>);

    impl Write for Sink {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0
                .lock()
                .map_err(|_| io::Error::other("poisoned"))?
                .extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn json_lines_carry_cloud_loggings_severity_beside_the_level() {
        let sink = Sink::default();
        let out = sink.clone();
        let subscriber = tracing_subscriber::fmt()
            .json()
            .flatten_event(true)
            .with_max_level(Level::DEBUG)
            .with_writer(WithSeverity(move || out.clone()))
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            tracing::error!(product = "BTC-USD", "bad");
            tracing::warn!("careful");
            tracing::info!(n = 3, "fine");
            tracing::debug!("detail");
        });
        let text = String::from_utf8(sink.0.lock().unwrap().clone()).unwrap();
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
            .collect();
        let got: Vec<(&str, &str, &str)> = lines
            .iter()
            .map(|l| {
                (
                    l["severity"].as_str().unwrap_or("-"),
                    l["level"].as_str().unwrap_or("-"),
                    l["message"].as_str().unwrap_or("-"),
                )
            })
            .collect();
        assert_eq!(
            got,
            [
                ("ERROR", "ERROR", "bad"),
                ("WARNING", "WARN", "careful"),
                ("INFO", "INFO", "fine"),
                ("DEBUG", "DEBUG", "detail")
            ]
        );
        assert_eq!(lines[0]["product"], "BTC-USD");
        assert_eq!(lines[2]["n"], 3);
    }
}
