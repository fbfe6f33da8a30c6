//! The report: one row per workload and metric with every implementation's figure, printed as
//! a table of ratios (ours / peer) and written as JSON.

use std::fmt::Write as _;
use std::path::Path;

/// One measured figure for each implementation (`None`: the peer does not speak the wire).
#[derive(Clone, Debug)]
pub struct Row {
    pub workload: String,
    pub metric: String,
    pub higher_is_better: bool,
    pub ours: Option<f64>,
    pub tonic: Option<f64>,
    pub connectrpc: Option<f64>,
    pub bare: Option<f64>,
}

impl Row {
    /// `ours / peer`.
    pub fn ratio(&self, peer: Option<f64>) -> Option<f64> {
        match (self.ours, peer) {
            (Some(ours), Some(peer)) if peer > 0.0 && ours.is_finite() && peer.is_finite() => {
                Some(ours / peer)
            }
            _ => None,
        }
    }
}

fn fmt_ratio(r: Option<f64>) -> String {
    r.map_or_else(|| "-".into(), |r| format!("{r:.2}"))
}

fn fmt_value(v: Option<f64>) -> String {
    match v {
        None => "-".into(),
        Some(v) if v.abs() >= 1000.0 => format!("{v:.0}"),
        Some(v) => format!("{v:.1}"),
    }
}

/// The ratio table.
pub fn table(rows: &[Row]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<34} {:<22} {:>4} {:>10} {:>9} {:>9} {:>9}",
        "workload", "metric", "best", "ours", "us/tonic", "us/crpc", "us/bare"
    );
    let mut last = String::new();
    for row in rows {
        if row.workload != last && !last.is_empty() {
            out.push('\n');
        }
        last.clone_from(&row.workload);
        let _ = writeln!(
            out,
            "{:<34} {:<22} {:>4} {:>10} {:>9} {:>9} {:>9}",
            row.workload,
            row.metric,
            if row.higher_is_better { "high" } else { "low" },
            fmt_value(row.ours),
            fmt_ratio(row.ratio(row.tonic)),
            fmt_ratio(row.ratio(row.connectrpc)),
            fmt_ratio(row.ratio(row.bare)),
        );
    }
    out
}

fn json_number(v: Option<f64>) -> String {
    match v {
        Some(v) if v.is_finite() => format!("{v:.4}"),
        _ => "null".into(),
    }
}

/// The JSON report: `[{"workload", "metric", "ours", "tonic", "connectrpc", "bare", …}]`, with
/// the ratios alongside the figures.
pub fn json(rows: &[Row]) -> String {
    let items: Vec<String> = rows
        .iter()
        .map(|row| {
            format!(
                "  {{\"workload\": {}, \"metric\": {}, \"higher_is_better\": {}, \"ours\": {}, \
                 \"tonic\": {}, \"connectrpc\": {}, \"bare\": {}, \"ours_over_tonic\": {}, \
                 \"ours_over_connectrpc\": {}, \"ours_over_bare\": {}}}",
                serde_json::Value::from(row.workload.as_str()),
                serde_json::Value::from(row.metric.as_str()),
                row.higher_is_better,
                json_number(row.ours),
                json_number(row.tonic),
                json_number(row.connectrpc),
                json_number(row.bare),
                json_number(row.ratio(row.tonic)),
                json_number(row.ratio(row.connectrpc)),
                json_number(row.ratio(row.bare)),
            )
        })
        .collect();
    format!("[\n{}\n]\n", items.join(",\n"))
}

/// Writes the JSON report, creating its directory.
pub fn write_json(rows: &[Row], path: &Path) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(path, json(rows))
}

/// One target of the issue, evaluated from the rows.
pub struct Target {
    pub what: &'static str,
    pub workload: &'static str,
    pub metric: String,
    pub peer: &'static str,
    pub at_least: Option<f64>,
    pub at_most: Option<f64>,
    /// An absolute bound instead of a ratio: ours <= peer + this.
    pub at_most_plus: Option<f64>,
}

/// Evaluates targets against rows; returns printable lines.
pub fn targets(rows: &[Row], targets: &[Target]) -> String {
    let mut out = String::new();
    for t in targets {
        let row = rows
            .iter()
            .find(|r| r.workload == t.workload && r.metric == t.metric);
        let peer = |r: &Row| match t.peer {
            "tonic" => r.tonic,
            "connectrpc" => r.connectrpc,
            _ => r.bare,
        };
        if let Some(plus) = t.at_most_plus {
            let values = row.and_then(|r| Some((r.ours?, peer(r)?)));
            let met = values.is_some_and(|(ours, theirs)| ours <= theirs + plus);
            let shown = values.map_or("-".to_string(), |(ours, theirs)| {
                format!("{ours:.1} vs {theirs:.1}")
            });
            let _ = writeln!(
                out,
                "{:<5} {:<48} {:<30} {:<20} us vs {:<7} = {shown} (want <= {}{plus:+.0})",
                if met { "MET" } else { "NOT" },
                t.what,
                t.workload,
                t.metric,
                t.peer,
                t.peer,
            );
            continue;
        }
        let ratio = row.and_then(|r| r.ratio(peer(r)));
        let met = ratio.is_some_and(|r| {
            t.at_least.is_none_or(|min| r >= min) && t.at_most.is_none_or(|max| r <= max)
        });
        let bound = match (t.at_least, t.at_most) {
            (Some(min), _) => format!(">= {min:.2}"),
            (_, Some(max)) => format!("<= {max:.2}"),
            _ => String::new(),
        };
        let _ = writeln!(
            out,
            "{:<5} {:<48} {:<30} {:<20} us/{:<10} = {:>5} (want {bound})",
            if met { "MET" } else { "NOT" },
            t.what,
            t.workload,
            t.metric,
            t.peer,
            fmt_ratio(ratio),
        );
    }
    out
}
