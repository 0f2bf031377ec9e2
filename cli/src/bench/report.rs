//! The benchmark's table.
use std::fmt::Write;

/// What a row must reach, judged on the component's figure.
#[derive(Debug, Clone, Copy)]
pub enum Target {
    None,
    /// component / native ≥ this.
    RatioAtLeast(f64),
    /// component ≤ this.
    AtMost(f64),
    /// component ≤ factor × another figure of the component (named).
    AtMostTimes(f64, f64, &'static str),
}

pub struct Row {
    name: String,
    component: Option<f64>,
    native: Option<f64>,
    sdk: Option<f64>,
    /// The plain-HTTP client's figure (see `limit.rs`), where there is one.
    limit: Option<f64>,
    target: Target,
}

impl Row {
    /// Higher is better (MiB/s, ops/s).
    pub fn rate(name: &str, c: f64, n: f64, sdk: Option<f64>, target: Target) -> Row {
        Row {
            name: name.to_string(),
            component: Some(c),
            native: Some(n),
            sdk,
            limit: None,
            target,
        }
    }

    /// The same transfer by a plain HTTP client: the row's physical limit.
    pub fn with_limit(mut self, limit: Option<f64>) -> Row {
        self.limit = limit;
        self
    }

    /// Lower is better (µs, ms, MiB).
    pub fn latency(name: &str, c: f64, n: f64, sdk: Option<f64>, target: Target) -> Row {
        Self::rate(name, c, n, sdk, target)
    }

    /// A count that may be unknown (no local server to ask).
    pub fn count(name: &str, c: Option<f64>, n: Option<f64>, target: Target) -> Row {
        Row {
            name: name.to_string(),
            component: c,
            native: n,
            sdk: None,
            limit: None,
            target,
        }
    }

    fn target_cell(&self) -> String {
        let verdict = |ok: bool| if ok { "met" } else { "MISSED" };
        match (self.target, self.component, self.native) {
            (Target::None, ..) => String::new(),
            (Target::RatioAtLeast(x), Some(c), Some(n)) if n > 0.0 => {
                format!("≥ {x}× native: {}", verdict(c / n >= x))
            }
            (Target::AtMost(v), Some(c), _) => format!("≤ {}: {}", num(v), verdict(c <= v)),
            (Target::AtMostTimes(x, of, name), Some(c), _) => {
                format!("≤ {x}× {name} ({}): {}", num(x * of), verdict(c <= x * of))
            }
            _ => "n/a".to_string(),
        }
    }
}

fn num(v: f64) -> String {
    let a = v.abs();
    if a >= 100.0 {
        format!("{v:.0}")
    } else if a >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

fn cell(v: Option<f64>) -> String {
    v.map_or_else(|| "n/a".to_string(), num)
}

/// A Markdown table, with a line on the setup above it.
pub fn table(rows: &[Row], chunk: u64, local: bool, sdk: bool) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "ks3-driver bench — server: {}; chunksize {} MiB; ks3sdk column: {}",
        if local {
            "ks3-local (memory, child process)"
        } else {
            "configured endpoint"
        },
        chunk >> 20,
        if sdk { "ks3sdk (Python)" } else { "not run" }
    );
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "| measurement | component | native | component/native | ks3sdk | plain HTTP | component/plain | target |"
    );
    let _ = writeln!(out, "|---|---:|---:|---:|---:|---:|---:|---|");
    for r in rows {
        let ratio = match (r.component, r.native) {
            (Some(c), Some(n)) if n > 0.0 => format!("{c_n:.2}", c_n = c / n),
            _ => "n/a".to_string(),
        };
        let sdk = r.sdk.map_or_else(String::new, num);
        let limit = r.limit.map_or_else(String::new, num);
        let to_limit = match (r.component, r.limit) {
            (Some(c), Some(l)) if l > 0.0 => format!("{:.2}", c / l),
            _ => String::new(),
        };
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} | {} |",
            r.name,
            cell(r.component),
            cell(r.native),
            ratio,
            sdk,
            limit,
            to_limit,
            r.target_cell()
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_factor_of_another_figure_is_judged_against_that_figure() {
        let target = Target::AtMostTimes(2.0, 8.0, "cached");
        let met = Row::latency("first", 16.0, 1.0, None, target);
        assert_eq!(met.target_cell(), "≤ 2× cached (16.0): met");
        let missed = Row::latency("first", 16.5, 1.0, None, target);
        assert_eq!(missed.target_cell(), "≤ 2× cached (16.0): MISSED");
    }
}
