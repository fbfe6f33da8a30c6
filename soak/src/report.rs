//! The soak report: the figures, the targets, and which targets were missed.

use serde_json::{Value, json};

use crate::Plan;
use crate::load::Outcome;

/// Most RSS growth allowed over the second half of the load.
const MAX_RSS_GROWTH: f64 = 0.05;

pub struct Report {
    json: Value,
    failures: Vec<String>,
    lines: Vec<String>,
}

impl Report {
    pub fn new(plan: Plan, outcome: &Outcome, stopped_cleanly: bool) -> Report {
        let mut failures = Vec::new();
        let mut latencies = outcome.latencies_us.clone();
        latencies.sort_unstable();
        let percentile = |p: f64| -> u32 {
            if latencies.is_empty() {
                return 0;
            }
            let index = ((latencies.len() as f64 - 1.0) * p).round() as usize;
            latencies[index]
        };
        let load_seconds = (outcome.load_ended - outcome.load_started).as_secs_f64();
        let calls = outcome.unary_ok + outcome.intended_errors;
        let unexpected: u64 = outcome.errors.values().sum();
        if unexpected > 0 {
            failures.push(format!("{unexpected} unexpected errors"));
        }
        if calls != plan.unary_calls {
            failures.push(format!("{calls} of {} unary calls ended", plan.unary_calls));
        }
        if outcome.streams_ok != plan.streams {
            failures.push(format!(
                "{} of {} streams succeeded",
                outcome.streams_ok, plan.streams
            ));
        }
        if outcome.idle_connections != plan.idle_connections {
            failures.push(format!(
                "{} of {} idle connections opened",
                outcome.idle_connections, plan.idle_connections
            ));
        }

        // RSS over the second half of the load.
        let mid = outcome.load_started + (outcome.load_ended - outcome.load_started) / 2;
        let in_second_half: Vec<_> = outcome
            .samples
            .iter()
            .filter(|s| s.at >= mid && s.at <= outcome.load_ended)
            .collect();
        let growth = match (in_second_half.first(), in_second_half.last()) {
            (Some(first), Some(last)) if first.rss > 0 => {
                (last.rss as f64 - first.rss as f64) / first.rss as f64
            }
            _ => 0.0,
        };
        if growth >= MAX_RSS_GROWTH {
            failures.push(format!(
                "RSS grew {:.1} % over the second half",
                growth * 100.0
            ));
        }
        let peak_rss = outcome.samples.iter().map(|s| s.rss).max().unwrap_or(0);
        let peak_fds = outcome.samples.iter().map(|s| s.fds).max().unwrap_or(0);
        let baseline_fds = outcome.baseline.map_or(0, |s| s.fds);
        let final_fds = outcome.after_close.map_or(0, |s| s.fds);
        if final_fds > baseline_fds {
            failures.push(format!(
                "{final_fds} descriptors open after the clients closed (baseline {baseline_fds})"
            ));
        }
        if !stopped_cleanly {
            failures.push("the server did not stop gracefully on SIGTERM".into());
        }

        let json = json!({
            "mode": plan.mode,
            "unary_calls": calls,
            "unary_ok": outcome.unary_ok,
            "intended_errors": outcome.intended_errors,
            "streams": outcome.streams_ok,
            "stream_messages": outcome.stream_messages,
            "idle_connections": outcome.idle_connections,
            "errors_by_code": outcome.errors,
            "load_seconds": load_seconds,
            "calls_per_second": calls as f64 / load_seconds.max(f64::EPSILON),
            "latency_us": {
                "p50": percentile(0.50),
                "p99": percentile(0.99),
                "p999": percentile(0.999),
                "max": latencies.last().copied().unwrap_or(0),
            },
            "rss_bytes": {
                "baseline": outcome.baseline.map_or(0, |s| s.rss),
                "peak": peak_rss,
                "final": outcome.after_close.map_or(0, |s| s.rss),
                "second_half_growth": growth,
            },
            "fds": {
                "baseline": baseline_fds,
                "peak": peak_fds,
                "after_clients_closed": final_fds,
            },
            "graceful_shutdown": stopped_cleanly,
            "samples": outcome.samples.iter().map(|s| json!({
                "at_ms": s.at.as_millis() as u64,
                "rss": s.rss,
                "fds": s.fds,
            })).collect::<Vec<_>>(),
            "targets_missed": failures,
        });
        let mib = |b: u64| b as f64 / (1024.0 * 1024.0);
        let lines = vec![
            format!(
                "soak ({}): {calls} unary calls ({} intended errors), {} streams ({} messages), {} idle connections, {load_seconds:.1} s of load ({:.0} calls/s)",
                plan.mode,
                outcome.intended_errors,
                outcome.streams_ok,
                outcome.stream_messages,
                outcome.idle_connections,
                calls as f64 / load_seconds.max(f64::EPSILON)
            ),
            format!(
                "latency p50 {} us, p99 {} us, p99.9 {} us",
                percentile(0.50),
                percentile(0.99),
                percentile(0.999)
            ),
            format!(
                "server RSS baseline {:.1} MiB, peak {:.1} MiB, final {:.1} MiB, growth over the second half {:+.2} %",
                mib(outcome.baseline.map_or(0, |s| s.rss)),
                mib(peak_rss),
                mib(outcome.after_close.map_or(0, |s| s.rss)),
                growth * 100.0
            ),
            format!(
                "server descriptors baseline {baseline_fds}, peak {peak_fds}, after the clients closed {final_fds}"
            ),
            format!("unexpected errors: {unexpected} {:?}", outcome.errors),
            format!("graceful shutdown on SIGTERM: {stopped_cleanly}"),
        ];
        Report {
            json,
            failures,
            lines,
        }
    }

    pub fn to_json(&self) -> Value {
        self.json.clone()
    }

    pub fn failures(&self) -> &[String] {
        &self.failures
    }

    pub fn print(&self) {
        for line in &self.lines {
            println!("{line}");
        }
        if self.failures.is_empty() {
            println!("soak targets met");
        } else {
            println!("soak targets missed: {}", self.failures.join("; "));
        }
    }
}
