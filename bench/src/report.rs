//! The benchmark's table.
use std::fmt::Write;

/// What a row must reach, judged on the component's figure.
#[derive(Debug, Clone, Copy)]
pub enum Target {
    None,
    /// component / native ≥ this.
    RatioAtLeast(f64),
    /// component / plain HTTP ≥ this (rates).
    LimitRatioAtLeast(f64),
    /// component / ks3sdk ≥ this (rates).
    SdkRatioAtLeast(f64),
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
    /// Further targets of the same row (see [`Row::and`]).
    more: Vec<Target>,
    /// A rate (MiB/s, ops/s) rather than a latency or a count.
    higher_is_better: bool,
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
            more: Vec::new(),
            higher_is_better: true,
        }
    }

    /// One more target for the row; the cell lists each verdict.
    pub fn and(mut self, target: Target) -> Row {
        self.more.push(target);
        self
    }

    /// The same transfer by a plain HTTP client: the row's physical limit.
    pub fn with_limit(mut self, limit: Option<f64>) -> Row {
        self.limit = limit;
        self
    }

    /// Lower is better (µs, ms, MiB).
    pub fn latency(name: &str, c: f64, n: f64, sdk: Option<f64>, target: Target) -> Row {
        Row {
            higher_is_better: false,
            ..Self::rate(name, c, n, sdk, target)
        }
    }

    /// A whole process's time (ours, curl's), or unknown: curl's goes in the plain-HTTP
    /// column, and the target is at most `x` times it.
    pub fn against_curl(name: &str, times: Option<(f64, f64)>, x: f64) -> Row {
        Row {
            name: name.to_string(),
            component: times.map(|t| t.0),
            native: None,
            sdk: None,
            limit: times.map(|t| t.1),
            target: Target::AtMostTimes(x, times.map_or(f64::NAN, |t| t.1), "curl"),
            more: Vec::new(),
            higher_is_better: false,
        }
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
            more: Vec::new(),
            higher_is_better: false,
        }
    }

    fn target_cell(&self) -> String {
        std::iter::once(self.target)
            .chain(self.more.iter().copied())
            .map(|t| self.verdict(t))
            .filter(|v| !v.is_empty())
            .collect::<Vec<_>>()
            .join("; ")
    }

    fn verdict(&self, target: Target) -> String {
        let verdict = |ok: bool| if ok { "met" } else { "MISSED" };
        let ratio = |of: Option<f64>| match (self.component, of) {
            (Some(c), Some(o)) if o > 0.0 => Some(c / o),
            _ => None,
        };
        match (target, self.component) {
            (Target::None, _) => String::new(),
            (Target::RatioAtLeast(x), _) => match ratio(self.native) {
                Some(r) => format!("≥ {x}× native: {}", verdict(r >= x)),
                None => format!("≥ {x}× native: n/a"),
            },
            (Target::LimitRatioAtLeast(x), _) => match ratio(self.limit) {
                Some(r) => format!("≥ {x}× plain: {}", verdict(r >= x)),
                None => format!("≥ {x}× plain: n/a"),
            },
            (Target::SdkRatioAtLeast(x), _) => match ratio(self.sdk) {
                Some(r) => format!("≥ {x}× ks3sdk: {}", verdict(r >= x)),
                None => format!("≥ {x}× ks3sdk: n/a"),
            },
            (Target::AtMost(v), Some(c)) => format!("≤ {}: {}", num(v), verdict(c <= v)),
            (Target::AtMostTimes(x, of, name), Some(c)) => {
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
        "| measurement | component | native | component/native | ks3sdk | component/ks3sdk | plain HTTP | component/plain | target |"
    );
    let _ = writeln!(out, "|---|---:|---:|---:|---:|---:|---:|---:|---|");
    for r in rows {
        let ratio = match (r.component, r.native) {
            (Some(c), Some(n)) if n > 0.0 => format!("{c_n:.2}", c_n = c / n),
            _ => "n/a".to_string(),
        };
        let sdk = r.sdk.map_or_else(String::new, num);
        // Only for rates: a latency's ratio to the SDK's would read the other way round.
        let to_sdk = match (r.component, r.sdk) {
            (Some(c), Some(s)) if s > 0.0 && r.higher_is_better => format!("{:.2}", c / s),
            _ => String::new(),
        };
        let limit = r.limit.map_or_else(String::new, num);
        let to_limit = match (r.component, r.limit) {
            (Some(c), Some(l)) if l > 0.0 => format!("{:.2}", c / l),
            _ => String::new(),
        };
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            r.name,
            cell(r.component),
            cell(r.native),
            ratio,
            sdk,
            to_sdk,
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

    #[test]
    fn every_target_of_a_row_is_judged_and_a_missing_figure_is_not_a_pass() {
        let row = |sdk| {
            Row::rate("write", 450.0, 470.0, sdk, Target::RatioAtLeast(0.9))
                .with_limit(Some(420.0))
                .and(Target::LimitRatioAtLeast(0.9))
                .and(Target::SdkRatioAtLeast(2.0))
        };
        assert_eq!(
            row(Some(230.0)).target_cell(),
            "≥ 0.9× native: met; ≥ 0.9× plain: met; ≥ 2× ks3sdk: MISSED"
        );
        assert_eq!(
            row(None).target_cell(),
            "≥ 0.9× native: met; ≥ 0.9× plain: met; ≥ 2× ks3sdk: n/a"
        );
        let t = table(&[row(Some(150.0))], 10 << 20, true, true);
        assert!(t.contains("| 150 | 3.00 | 420 | 1.07 |"), "{t}");
        // A latency has no ratio to the SDK's (it would read the other way round).
        let lat = table(
            &[Row::latency("p50", 130.0, 90.0, Some(650.0), Target::None)],
            1,
            true,
            true,
        );
        assert!(lat.contains("| 650 |  |  |  |"), "{lat}");
    }
}
