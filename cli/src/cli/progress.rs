//! A one-line progress display on stderr (bytes, rate, ETA) for long transfers, drawn by
//! indicatif; shown only when stderr is a terminal. `KS3_DRIVER_PROGRESS=always|never`
//! overrides the detection (`always` is for tests and for `script`-style logging: indicatif
//! itself hides its bars when stderr is not a terminal, so `always` draws through a plain
//! stderr writer).
use std::io::{IsTerminal, Write};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle, TermLike};

/// Transfers smaller than this get no progress display.
pub const THRESHOLD: u64 = 8 << 20;
/// Redraws per second.
const REFRESH_HZ: u8 = 8;

/// Whether progress should be drawn on stderr.
pub fn enabled() -> bool {
    forced().unwrap_or_else(|| std::io::stderr().is_terminal())
}

fn forced() -> Option<bool> {
    match std::env::var("KS3_DRIVER_PROGRESS").as_deref() {
        Ok("always") => Some(true),
        Ok("never") => Some(false),
        _ => None,
    }
}

pub struct Progress {
    bar: ProgressBar,
    label: String,
}

impl Progress {
    /// A display for `label`, when enabled and the transfer is large (or of unknown size).
    pub fn start(label: &str, total: Option<u64>) -> Option<Progress> {
        if !enabled() || total.is_some_and(|t| t < THRESHOLD) {
            return None;
        }
        let target = if forced() == Some(true) && !std::io::stderr().is_terminal() {
            ProgressDrawTarget::term_like_with_hz(Box::new(PlainStderr), REFRESH_HZ)
        } else {
            ProgressDrawTarget::stderr_with_hz(REFRESH_HZ)
        };
        let bar = ProgressBar::with_draw_target(total, target);
        bar.set_style(style(total.is_some()));
        bar.set_message(label.to_string());
        Some(Progress {
            bar,
            label: label.to_string(),
        })
    }

    /// `n` more bytes moved.
    pub fn add(&mut self, n: u64) {
        self.bar.inc(n);
    }

    /// Redraw (for a transfer whose progress cannot be observed, such as a server-side copy):
    /// a spinner with the elapsed time.
    pub fn tick(&mut self) {
        if self.bar.position() == 0 {
            self.bar.set_style(style(false));
        }
        self.bar.tick();
    }

    /// Marks the whole `total` done (for server-side work).
    pub fn complete(&mut self) {
        if let Some(t) = self.bar.length() {
            self.bar.set_position(t);
        }
    }

    /// Clears the line and prints a last summary line.
    pub fn finish(self) {
        let elapsed = self.bar.elapsed().as_secs_f64().max(1e-3);
        let done = self.bar.position();
        self.bar.finish_and_clear();
        let rate = done as f64 / elapsed;
        let _ = writeln!(
            std::io::stderr().lock(),
            "{}: {} in {:.1} s ({}/s)",
            self.label,
            human(done),
            elapsed,
            human(rate as u64)
        );
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
        self.bar.finish_and_clear();
    }
}

const BAR_TEMPLATE: &str = "{msg} [{bar:24}] {percent:>3}% {binary_bytes} / {binary_total_bytes} {binary_bytes_per_sec} ETA {eta}";
const SPINNER_TEMPLATE: &str =
    "{msg} {spinner} {binary_bytes} {binary_bytes_per_sec} {elapsed} elapsed";

/// A bar with percentage, bytes, rate and ETA for a known size; a spinner with bytes, rate
/// and elapsed time otherwise (or while a server-side copy runs).
fn style(known_total: bool) -> ProgressStyle {
    let template = if known_total {
        BAR_TEMPLATE
    } else {
        SPINNER_TEMPLATE
    };
    // The templates are constants; a failure here is a bug caught by the tests below.
    ProgressStyle::with_template(template)
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("#>-")
}

/// stderr as indicatif's terminal when it is not one (`KS3_DRIVER_PROGRESS=always`): each
/// redraw is `\r`, clear to end of line, the line.
#[derive(Debug)]
struct PlainStderr;

impl TermLike for PlainStderr {
    fn width(&self) -> u16 {
        120
    }
    fn move_cursor_up(&self, _n: usize) -> std::io::Result<()> {
        Ok(())
    }
    fn move_cursor_down(&self, _n: usize) -> std::io::Result<()> {
        Ok(())
    }
    fn move_cursor_right(&self, _n: usize) -> std::io::Result<()> {
        Ok(())
    }
    fn move_cursor_left(&self, _n: usize) -> std::io::Result<()> {
        Ok(())
    }
    fn write_line(&self, s: &str) -> std::io::Result<()> {
        write!(std::io::stderr().lock(), "\r\x1b[2K{s}")
    }
    fn write_str(&self, s: &str) -> std::io::Result<()> {
        write!(std::io::stderr().lock(), "{s}")
    }
    fn clear_line(&self) -> std::io::Result<()> {
        write!(std::io::stderr().lock(), "\r\x1b[2K")
    }
    fn flush(&self) -> std::io::Result<()> {
        std::io::stderr().lock().flush()
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
    fn human_sizes() {
        assert_eq!(human(0), "0 B");
        assert_eq!(human(1023), "1023 B");
        assert_eq!(human(1536), "1.5 KiB");
        assert_eq!(human(104 << 20), "104.0 MiB");
    }

    #[test]
    fn both_templates_are_valid() {
        // style() falls back to indicatif's default on a bad template; refuse that here.
        for template in [BAR_TEMPLATE, SPINNER_TEMPLATE] {
            assert!(ProgressStyle::with_template(template).is_ok(), "{template}");
        }
    }
}
