//! A one-line progress display on stderr (bytes, rate, ETA) for long transfers; shown only
//! when stderr is a terminal. `KS3_DRIVER_PROGRESS=always|never` overrides the detection
//! (`always` is for tests and for `script`-style logging).
use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

/// Transfers smaller than this get no progress display.
pub const THRESHOLD: u64 = 8 << 20;
/// Redraw at most this often.
const REDRAW: Duration = Duration::from_millis(120);
const BAR: usize = 24;

/// Whether progress should be drawn on stderr.
pub fn enabled() -> bool {
    match std::env::var("KS3_DRIVER_PROGRESS").as_deref() {
        Ok("always") => true,
        Ok("never") => false,
        _ => std::io::stderr().is_terminal(),
    }
}

pub struct Progress {
    label: String,
    total: Option<u64>,
    done: u64,
    started: Instant,
    last_draw: Option<Instant>,
    spin: usize,
}

impl Progress {
    /// A display for `label`, when enabled and the transfer is large (or of unknown size).
    pub fn start(label: &str, total: Option<u64>) -> Option<Progress> {
        if !enabled() || total.is_some_and(|t| t < THRESHOLD) {
            return None;
        }
        Some(Progress {
            label: label.to_string(),
            total,
            done: 0,
            started: Instant::now(),
            last_draw: None,
            spin: 0,
        })
    }

    /// `n` more bytes moved.
    pub fn add(&mut self, n: u64) {
        self.done = self.done.saturating_add(n);
        self.draw(false);
    }

    /// Redraw (for a transfer whose progress cannot be observed, such as a server-side copy).
    pub fn tick(&mut self) {
        self.spin = self.spin.wrapping_add(1);
        self.draw(true);
    }

    /// Marks the whole `total` done (for server-side work).
    pub fn complete(&mut self) {
        if let Some(t) = self.total {
            self.done = t;
        }
    }

    fn draw(&mut self, force: bool) {
        let now = Instant::now();
        if !force
            && self
                .last_draw
                .is_some_and(|t| now.duration_since(t) < REDRAW)
        {
            return;
        }
        self.last_draw = Some(now);
        let line = self.render(now);
        let mut err = std::io::stderr().lock();
        let _ = write!(err, "\r\x1b[2K{line}");
        let _ = err.flush();
    }

    fn render(&self, now: Instant) -> String {
        let elapsed = now.duration_since(self.started).as_secs_f64().max(1e-3);
        let rate = self.done as f64 / elapsed;
        match self.total {
            Some(total) if self.spin == 0 => {
                let total = total.max(self.done);
                let frac = (self.done as f64 / total.max(1) as f64).clamp(0.0, 1.0);
                let filled = (frac * BAR as f64).round() as usize;
                let eta = if rate > 0.0 && self.done < total {
                    clock((total - self.done) as f64 / rate)
                } else {
                    "--:--".to_string()
                };
                format!(
                    "{} [{}{}] {:>5.1}% {} / {} {}/s ETA {eta}",
                    self.label,
                    "#".repeat(filled),
                    "-".repeat(BAR - filled),
                    frac * 100.0,
                    human(self.done),
                    human(total),
                    human(rate as u64),
                )
            }
            _ => {
                const SPIN: [char; 4] = ['|', '/', '-', '\\'];
                let what = match self.total {
                    Some(t) => format!("{} ", human(t)),
                    None => format!("{} {}/s ", human(self.done), human(rate as u64)),
                };
                format!(
                    "{} {} {what}{} elapsed",
                    self.label,
                    SPIN[self.spin % SPIN.len()],
                    clock(elapsed)
                )
            }
        }
    }

    /// Clears the line and prints a last summary line.
    pub fn finish(self) {
        let elapsed = self.started.elapsed().as_secs_f64().max(1e-3);
        let rate = self.done as f64 / elapsed;
        let mut err = std::io::stderr().lock();
        let _ = writeln!(
            err,
            "\r\x1b[2K{}: {} in {:.1} s ({}/s)",
            self.label,
            human(self.done),
            elapsed,
            human(rate as u64)
        );
        let _ = err.flush();
    }

    /// Ends the display: a summary line on success, a cleared line after an error.
    pub fn end(self, succeeded: bool) {
        if succeeded {
            self.finish()
        } else {
            self.abandon()
        }
    }

    /// Clears the line (after an error).
    pub fn abandon(self) {
        let mut err = std::io::stderr().lock();
        let _ = write!(err, "\r\x1b[2K");
        let _ = err.flush();
    }
}

fn clock(secs: f64) -> String {
    let s = if secs.is_finite() {
        secs.round().clamp(0.0, 359_999.0) as u64
    } else {
        0
    };
    if s >= 3600 {
        format!("{}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
    } else {
        format!("{}:{:02}", s / 60, s % 60)
    }
}

/// `12.3 MiB`.
pub fn human(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = bytes as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{bytes} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn human_sizes_and_clock() {
        assert_eq!(human(0), "0 B");
        assert_eq!(human(1023), "1023 B");
        assert_eq!(human(1536), "1.5 KiB");
        assert_eq!(human(104 << 20), "104.0 MiB");
        assert_eq!(clock(0.0), "0:00");
        assert_eq!(clock(61.4), "1:01");
        assert_eq!(clock(3725.0), "1:02:05");
        assert_eq!(clock(f64::INFINITY), "0:00");
    }

    #[test]
    fn render_known_and_unknown_totals() {
        let mut p = Progress {
            label: "put /x".into(),
            total: Some(100 << 20),
            done: 50 << 20,
            started: Instant::now() - Duration::from_secs(2),
            last_draw: None,
            spin: 0,
        };
        let line = p.render(Instant::now());
        assert!(line.contains("50.0%"), "{line}");
        assert!(line.contains("ETA"), "{line}");
        p.total = None;
        p.spin = 1;
        let line = p.render(Instant::now());
        assert!(line.contains("elapsed"), "{line}");
    }
}
