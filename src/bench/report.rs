//! What `wgpu-llm bench all` keeps and compares: figures measured `repeat` times (median, spread, a noisy
//! flag), each against its ceiling where it has one; the report as JSON and as Markdown tables; and
//! `bench compare A.json B.json` over two reports.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// A figure whose spread ((max − min) / median over the runs) exceeds this is flagged as noisy.
pub const NOISY: f64 = 0.10;

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Figure {
    pub section: String,
    pub name: String,
    pub unit: String,
    /// Whether a larger value is better (rates) or worse (times, counts, bytes).
    pub higher_is_better: bool,
    pub runs: Vec<f64>,
    pub median: f64,
    /// (max − min) / median over the runs (0 for one run).
    pub spread: f64,
    pub noisy: bool,
    /// The ceiling this figure is measured against (a figure of the "ceilings" section) and the median as a
    /// percentage of it.
    pub ceiling: Option<String>,
    pub percent_of_ceiling: Option<f64>,
}

/// One kernel on the roofline: arithmetic intensity (FLOP per byte moved) and achieved GFLOP/s.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RooflinePoint {
    pub name: String,
    pub intensity: f64,
    pub gflops: f64,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Report {
    pub adapter: String,
    pub driver: String,
    pub backend: String,
    pub commit: String,
    /// UTC, ISO 8601.
    pub date: String,
    pub quick: bool,
    pub repeat: usize,
    pub figures: Vec<Figure>,
    pub roofline: Vec<RooflinePoint>,
    /// GPU time by op of one decode step and of one 256-token prefill (µs, dispatches), of the model run
    /// named in `profiled`.
    pub profiled: String,
    pub decode_profile: Vec<(String, f64, usize)>,
    pub prefill_profile: Vec<(String, f64, usize)>,
}

/// Figures gathered over the repeats, keyed by (section, name) in first-seen order.
#[derive(Default)]
pub struct Collector {
    order: Vec<(String, String)>,
    figures: BTreeMap<(String, String), Figure>,
}

impl Collector {
    pub fn add(&mut self, section: &str, name: &str, unit: &str, higher_is_better: bool, value: f64) {
        let key = (section.to_string(), name.to_string());
        if !self.figures.contains_key(&key) {
            self.order.push(key.clone());
        }
        let f = self.figures.entry(key).or_insert_with(|| Figure {
            section: section.into(),
            name: name.into(),
            unit: unit.into(),
            higher_is_better,
            runs: vec![],
            median: 0.0,
            spread: 0.0,
            noisy: false,
            ceiling: None,
            percent_of_ceiling: None,
        });
        f.runs.push(value);
    }

    /// Medians and spreads; `ceiling_of(figure)` names the ceiling figure (section "ceilings") of each.
    pub fn finish(self, ceiling_of: &dyn Fn(&Figure) -> Option<String>) -> Vec<Figure> {
        let mut figures: Vec<Figure> = self.order.iter().map(|k| self.figures[k].clone()).collect();
        for f in &mut figures {
            let mut v = f.runs.clone();
            v.sort_by(f64::total_cmp);
            f.median = median(&v);
            let (lo, hi) = (v.first().copied().unwrap_or(0.0), v.last().copied().unwrap_or(0.0));
            f.spread = if f.median.abs() > 0.0 { (hi - lo) / f.median.abs() } else { 0.0 };
            f.noisy = f.spread > NOISY;
        }
        let medians: BTreeMap<String, f64> =
            figures.iter().filter(|f| f.section == "ceilings").map(|f| (f.name.clone(), f.median)).collect();
        for f in &mut figures {
            if let Some(c) = ceiling_of(f).filter(|c| medians.get(c).is_some_and(|m| *m > 0.0)) {
                f.percent_of_ceiling = Some(100.0 * f.median / medians[&c]);
                f.ceiling = Some(c);
            }
        }
        figures
    }
}

/// The median of `v` (sorted or not; the mean of the middle two for an even count).
pub fn median(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => 0.0,
        n if n % 2 == 1 => v[n / 2],
        n => 0.5 * (v[n / 2 - 1] + v[n / 2]),
    }
}

/// A number for tables: three significant digits, thousands separated.
pub fn num(x: f64) -> String {
    if !x.is_finite() {
        return format!("{x}");
    }
    let a = x.abs();
    let s = if a >= 1000.0 {
        let whole = format!("{:.0}", a);
        let mut out = String::new();
        for (i, c) in whole.chars().enumerate() {
            if i > 0 && (whole.len() - i) % 3 == 0 {
                out.push(',');
            }
            out.push(c);
        }
        out
    } else if a >= 100.0 {
        format!("{a:.0}")
    } else if a >= 10.0 {
        format!("{a:.1}")
    } else if a >= 1.0 {
        format!("{a:.2}")
    } else if a == 0.0 {
        "0".into()
    } else {
        format!("{a:.3}")
    };
    if x < 0.0 {
        format!("-{s}")
    } else {
        s
    }
}

impl Report {
    /// The tables, one per section, with the run's header and the charts (when written beside it).
    pub fn markdown(&self, charts: &[&str]) -> String {
        let mut md = format!(
            "# wgpu-llm bench all\n\n{} ({}, {}), commit {}, {}; {} run{} per figure{}.\n",
            self.adapter,
            self.driver,
            self.backend,
            self.commit,
            self.date,
            self.repeat,
            if self.repeat == 1 { "" } else { "s" },
            if self.quick { ", quick subset" } else { "" }
        );
        md += &format!(
            "Each figure is the median of its runs; spread is (max − min) / median, and figures above {:.0}% are \
             flagged noisy. % of ceiling compares a figure with the ceiling measured in the same run.\n",
            NOISY * 100.0
        );
        let mut sections: Vec<&str> = vec![];
        for f in &self.figures {
            if !sections.contains(&f.section.as_str()) {
                sections.push(&f.section);
            }
        }
        for s in sections {
            md += &format!("\n## {s}\n\n| figure | median | unit | spread | % of ceiling |\n|---|---|---|---|---|\n");
            for f in self.figures.iter().filter(|f| f.section == s) {
                let of = match (&f.ceiling, f.percent_of_ceiling) {
                    (Some(c), Some(p)) => format!("{p:.1}% of {c}"),
                    _ => String::new(),
                };
                let noisy = if f.noisy { " (noisy)" } else { "" };
                md += &format!(
                    "| {} | {} | {} | {:.1}%{noisy} | {of} |\n",
                    f.name,
                    num(f.median),
                    f.unit,
                    100.0 * f.spread
                );
            }
        }
        for (what, p) in [("one decode step", &self.decode_profile), ("one 256-token prefill", &self.prefill_profile)] {
            if p.is_empty() {
                continue;
            }
            md += &format!(
                "\n## GPU time of {what} by op ({})\n\n| op | ms | dispatches |\n|---|---|---|\n",
                self.profiled
            );
            for (op, us, n) in p.iter().take(12) {
                md += &format!("| {op} | {:.2} | {n} |\n", us / 1e3);
            }
        }
        if !charts.is_empty() {
            md += "\n## Charts\n\n";
            for c in charts {
                md += &format!("![{c}]({c})\n\n");
            }
        }
        md
    }
}

/// One figure of two reports side by side.
#[derive(Clone, Debug, Serialize)]
pub struct Comparison {
    pub section: String,
    pub name: String,
    pub unit: String,
    pub a: Option<f64>,
    pub b: Option<f64>,
    /// b / a.
    pub ratio: Option<f64>,
    /// Whether |b − a| exceeds both runs' spreads (each relative spread times its own median).
    pub significant: bool,
    /// "better", "worse" or "same" (within the spreads), by the figure's direction; "only in A/B".
    pub verdict: String,
}

pub fn read(path: &std::path::Path) -> Result<Report> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| Error::Format { file: path.display().to_string(), detail: format!("cannot read: {e}") })?;
    serde_json::from_str(&text).map_err(|e| Error::Format {
        file: path.display().to_string(),
        detail: format!("not a bench all report (bench.json): {e}"),
    })
}

/// Every figure of A and B, in A's order then B's new ones.
pub fn compare(a: &Report, b: &Report) -> Vec<Comparison> {
    let key = |f: &Figure| (f.section.clone(), f.name.clone());
    let in_b: BTreeMap<(String, String), &Figure> = b.figures.iter().map(|f| (key(f), f)).collect();
    let in_a: BTreeMap<(String, String), &Figure> = a.figures.iter().map(|f| (key(f), f)).collect();
    let mut out = vec![];
    for fa in &a.figures {
        let fb = in_b.get(&key(fa)).copied();
        out.push(pair(Some(fa), fb));
    }
    for fb in b.figures.iter().filter(|f| !in_a.contains_key(&key(f))) {
        out.push(pair(None, Some(fb)));
    }
    out
}

fn pair(a: Option<&Figure>, b: Option<&Figure>) -> Comparison {
    let f = a.or(b).expect("one side");
    let (va, vb) = (a.map(|f| f.median), b.map(|f| f.median));
    let (ratio, significant, verdict) = match (a, b) {
        (Some(x), Some(y)) => {
            let ratio = (x.median != 0.0).then(|| y.median / x.median);
            let diff = (y.median - x.median).abs();
            let significant = diff > x.spread * x.median.abs() && diff > y.spread * y.median.abs() && diff > 0.0;
            let up = y.median > x.median;
            let verdict = match (significant, up == f.higher_is_better) {
                (false, _) => "same",
                (true, true) => "better",
                (true, false) => "worse",
            };
            (ratio, significant, verdict.to_string())
        }
        (Some(_), None) => (None, false, "only in A".into()),
        _ => (None, false, "only in B".into()),
    };
    Comparison {
        section: f.section.clone(),
        name: f.name.clone(),
        unit: f.unit.clone(),
        a: va,
        b: vb,
        ratio,
        significant,
        verdict,
    }
}

/// `bench compare`'s table.
pub fn compare_markdown(a: &Report, b: &Report, rows: &[Comparison]) -> String {
    let mut md = format!(
        "A: {} {} ({}, {})\nB: {} {} ({}, {})\n\n| section | figure | A | B | unit | B/A | verdict |\n|---|---|---|---|---|---|---|\n",
        a.adapter, a.commit, a.date, a.driver, b.adapter, b.commit, b.date, b.driver
    );
    let opt = |x: Option<f64>| x.map(num).unwrap_or_else(|| "—".into());
    for r in rows {
        md += &format!(
            "| {} | {} | {} | {} | {} | {} | {} |\n",
            r.section,
            r.name,
            opt(r.a),
            opt(r.b),
            r.unit,
            r.ratio.map(|x| format!("{x:.3}")).unwrap_or_else(|| "—".into()),
            r.verdict
        );
    }
    md
}
