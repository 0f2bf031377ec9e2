//! `log.formatter: json`: one JSON object per line — `time` (RFC 3339, UTC), `level`,
//! `target`, `msg`, the fields of every span the event is in (the registry's `request`
//! span: `request_id`, `method`, `path`, `status`), the event's own fields, and the
//! operator's `log.fields`. Like every other line, it never carries a query string or a
//! credential: the libraries put none in their events.
use std::io::Write;
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{Map, Value};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Subscriber};
use tracing_subscriber::layer::{Context, Layer};
use tracing_subscriber::registry::LookupSpan;

/// Where lines go.
pub type MakeWriter = Box<dyn Fn() -> Box<dyn Write> + Send + Sync>;

/// The JSON lines layer.
pub struct JsonLines {
    fields: Vec<(String, String)>,
    out: Mutex<MakeWriter>,
}

impl JsonLines {
    pub fn new<W: Write + 'static>(
        fields: Vec<(String, String)>,
        make: Box<dyn Fn() -> W + Send + Sync>,
    ) -> JsonLines {
        JsonLines {
            fields,
            out: Mutex::new(Box::new(move || Box::new(make()) as Box<dyn Write>)),
        }
    }
}

/// A span's fields, kept in its extensions.
struct SpanFields(Map<String, Value>);

struct Collect<'a>(&'a mut Map<String, Value>);

impl Visit for Collect<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().into(), Value::from(value));
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.0.insert(field.name().into(), Value::from(value));
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.0.insert(field.name().into(), Value::from(value));
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.0.insert(field.name().into(), Value::from(value));
    }
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0
            .insert(field.name().into(), Value::from(format!("{value:?}")));
    }
}

impl<S> Layer<S> for JsonLines
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let mut m = Map::new();
        attrs.record(&mut Collect(&mut m));
        if let Some(span) = ctx.span(id) {
            span.extensions_mut().insert(SpanFields(m));
        }
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        if let Some(span) = ctx.span(id) {
            let mut ext = span.extensions_mut();
            if let Some(SpanFields(m)) = ext.get_mut::<SpanFields>() {
                values.record(&mut Collect(m));
            }
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let mut line = Map::new();
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos() as i128)
            .unwrap_or(0);
        line.insert("time".into(), Value::from(ks3_proto::date::iso8601(now)));
        line.insert(
            "level".into(),
            Value::from(event.metadata().level().as_str().to_ascii_lowercase()),
        );
        line.insert("target".into(), Value::from(event.metadata().target()));
        if let Some(scope) = ctx.event_scope(event) {
            for span in scope.from_root() {
                if let Some(SpanFields(m)) = span.extensions().get::<SpanFields>() {
                    for (k, v) in m {
                        line.insert(k.clone(), v.clone());
                    }
                }
            }
        }
        let mut own = Map::new();
        event.record(&mut Collect(&mut own));
        if let Some(msg) = own.remove("message") {
            line.insert("msg".into(), msg);
        }
        line.extend(own);
        for (k, v) in &self.fields {
            line.insert(k.clone(), Value::from(v.as_str()));
        }
        let Ok(mut text) = serde_json::to_string(&Value::Object(line)) else {
            return;
        };
        text.push('\n');
        let make = self.out.lock().unwrap_or_else(|p| p.into_inner());
        // A closed stderr loses the line, nothing else.
        let _ = make().write_all(text.as_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use tracing_subscriber::layer::SubscriberExt;

    #[derive(Clone, Default)]
    struct Sink(Arc<Mutex<Vec<u8>>>);

    impl Write for Sink {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn one_object_per_line_with_span_and_operator_fields() {
        let sink = Sink::default();
        let s2 = sink.clone();
        let layer = JsonLines::new(
            vec![("service".into(), "registry".into())],
            Box::new(move || s2.clone()),
        );
        let subscriber = tracing_subscriber::registry().with(layer);
        tracing::subscriber::with_default(subscriber, || {
            let span = tracing::info_span!(
                "request",
                request_id = "abc",
                method = "GET",
                status = tracing::field::Empty
            );
            span.record("status", 200u64);
            span.in_scope(
                || tracing::info!(target: "ks3_registry::request", micros = 42u64, "done"),
            );
        });
        let text = String::from_utf8(sink.0.lock().unwrap().clone()).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 1, "{text}");
        let v: Value = serde_json::from_str(lines[0]).expect("one JSON object");
        assert_eq!(v["level"], "info");
        assert_eq!(v["target"], "ks3_registry::request");
        assert_eq!(v["msg"], "done");
        assert_eq!(v["request_id"], "abc");
        assert_eq!(v["status"], 200);
        assert_eq!(v["micros"], 42);
        assert_eq!(v["service"], "registry");
        assert!(v["time"].as_str().unwrap().ends_with('Z'));
    }
}
