//! The demo's trace: for every HTTP request the registry answered, the request line, its
//! status and time, then the driver calls it caused (attributed through the registry's
//! `request` span and the host's `ks3_driver::call` events), printed when the request ends.
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Metadata, Subscriber};
use tracing_subscriber::layer::{Context, Layer};
use tracing_subscriber::registry::LookupSpan;

use super::{compact, say, time};

/// What the demo counts over the whole run.
#[derive(Default)]
pub struct Totals {
    pub requests: AtomicU64,
    pub calls: AtomicU64,
}

pub struct DemoTrace {
    totals: Arc<Totals>,
}

impl DemoTrace {
    pub fn new(totals: Arc<Totals>) -> DemoTrace {
        DemoTrace { totals }
    }
}

/// One registry request, kept in its span's extensions.
struct RequestRecord {
    method: String,
    path: String,
    status: Option<u64>,
    started: Instant,
    calls: Vec<Call>,
}

/// One driver call, or a run of identical ones (a writer's 1 MiB writes).
struct Call {
    what: String,
    took: Duration,
    /// `ok`, `not-found` or `error`.
    outcome: String,
    times: u32,
}

#[derive(Default)]
struct Fields {
    method: Option<String>,
    path: Option<String>,
    status: Option<u64>,
    call: Option<String>,
    micros: Option<u64>,
    outcome: Option<String>,
}

impl Visit for Fields {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        let v = format!("{value:?}");
        match field.name() {
            "method" => self.method = Some(v),
            "path" => self.path = Some(v),
            _ => {}
        }
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        match field.name() {
            "call" => self.call = Some(value.to_string()),
            "outcome" => self.outcome = Some(value.to_string()),
            "method" => self.method = Some(value.to_string()),
            "path" => self.path = Some(value.to_string()),
            _ => {}
        }
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        match field.name() {
            "status" => self.status = Some(value),
            "micros" => self.micros = Some(value),
            _ => {}
        }
    }
}

fn is_request_span(meta: &Metadata<'_>) -> bool {
    meta.target() == "ks3_registry::request" && meta.name() == "request"
}

impl<S> Layer<S> for DemoTrace
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn enabled(&self, meta: &Metadata<'_>, _: Context<'_, S>) -> bool {
        meta.target() == "ks3_driver::call" || meta.target() == "ks3_registry::request"
    }

    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        if !is_request_span(attrs.metadata()) {
            return;
        }
        let mut f = Fields::default();
        attrs.record(&mut f);
        if let Some(span) = ctx.span(id) {
            span.extensions_mut().insert(RequestRecord {
                method: f.method.unwrap_or_default(),
                path: f.path.unwrap_or_default(),
                status: None,
                started: Instant::now(),
                calls: Vec::new(),
            });
        }
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        let mut f = Fields::default();
        values.record(&mut f);
        if let (Some(status), Some(span)) = (f.status, ctx.span(id)) {
            if let Some(r) = span.extensions_mut().get_mut::<RequestRecord>() {
                r.status = Some(status);
            }
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        if event.metadata().target() != "ks3_driver::call" {
            return;
        }
        let mut f = Fields::default();
        event.record(&mut f);
        let Some(what) = f.call else { return };
        self.totals.calls.fetch_add(1, Ordering::Relaxed);
        let Some(scope) = ctx.event_scope(event) else {
            return;
        };
        for span in scope {
            if !is_request_span(span.metadata()) {
                continue;
            }
            let mut ext = span.extensions_mut();
            let Some(r) = ext.get_mut::<RequestRecord>() else {
                return;
            };
            let took = Duration::from_micros(f.micros.unwrap_or(0));
            let outcome = f.outcome.unwrap_or_default();
            match r.calls.last_mut() {
                Some(last) if last.what == what && last.outcome == outcome => {
                    last.times += 1;
                    last.took += took;
                }
                _ => r.calls.push(Call {
                    what,
                    took,
                    outcome,
                    times: 1,
                }),
            }
            return;
        }
    }

    fn on_close(&self, id: Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(&id) else { return };
        let Some(r) = span.extensions_mut().remove::<RequestRecord>() else {
            return;
        };
        self.totals.requests.fetch_add(1, Ordering::Relaxed);
        // The client's API-version probe before each request touches no storage.
        if r.path == "/v2/" && r.calls.is_empty() {
            return;
        }
        say!("{}", render(&r));
    }
}

fn render(r: &RequestRecord) -> String {
    let status = r.status.map_or("?".to_string(), |s| s.to_string());
    let mut out = format!(
        "  {} {} → {status}  {}",
        r.method,
        compact(&r.path),
        time(r.started.elapsed())
    );
    for c in &r.calls {
        let (op, path) = c.what.split_once(' ').unwrap_or((c.what.as_str(), ""));
        let times = if c.times > 1 {
            format!(" ×{}", c.times)
        } else {
            String::new()
        };
        let outcome = match c.outcome.as_str() {
            "ok" => "",
            "not-found" => "  (not found)",
            _ => "  (error)",
        };
        let _ = write!(
            out,
            "\n      {:<56} {:>9}{outcome}",
            format!("{op}{times} {}", super::shown_paths(path)),
            time(c.took)
        );
    }
    out
}
