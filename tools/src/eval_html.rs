//! The evaluation's self-contained HTML report: summary and per-joint tables, stage latency
//! with its histogram, failures, parity, a row per episode, and for the first episodes the
//! commanded trajectory beside the recorded one for every joint and the error over time.
//! Plots are inline SVG drawn with plotters; the page loads nothing.

use std::fmt::Write;

use brainstem_runtime::offline::eval::report::{EpisodeResult, EvalReport, JointSummary, Parity, CHUNKS_COMPLETED};
use plotters::prelude::*;

/// Episodes drawn joint by joint; the rest are in the tables.
const PLOTTED_EPISODES: usize = 4;

pub fn render(report: &EvalReport, parity: Option<&Parity>) -> String {
    let summary = report.summary();
    let mut html = String::new();
    let _ = write!(
        html,
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>brainstem eval: {}</title><style>{STYLE}</style></head><body>",
        escape(&report.config)
    );
    let _ = write!(
        html,
        "<h1>brainstem eval</h1><p><b>{}</b> (LeRobotDataset {}, {} fps) with <b>{}</b>: {} episodes evaluated, {} failed, {} frames, {:.2} episodes/s.</p>",
        escape(&report.dataset),
        escape(&report.codebase_version),
        report.fps,
        escape(&report.config),
        summary.episodes,
        summary.failed,
        summary.frames,
        summary.episodes_per_second
    );
    let _ = write!(
        html,
        "<p>All joints: MAE {:.4}, RMSE {:.4}, MAE/std {}. RMS jerk {:.1} commanded, {:.1} recorded. Model stage failures: {}.</p>",
        summary.mae,
        summary.rmse,
        optional(summary.mae_normalized),
        summary.jerk_rms_predicted,
        summary.jerk_rms_recorded,
        summary.stage_failures
    );
    html.push_str("<h2>Error per joint</h2>");
    html.push_str(&joint_table(&summary.joints));
    stages_section(&mut html, report, &summary);
    if !report.failures.is_empty() {
        html.push_str("<h2>Episodes that could not be evaluated</h2><ul>");
        for failure in &report.failures {
            let _ = write!(html, "<li>episode {}: {}</li>", failure.episode, escape(&failure.error));
        }
        html.push_str("</ul>");
    }
    if let Some(parity) = parity {
        let _ = write!(
            html,
            "<h2>Parity: {} against {}</h2><p>{} episodes; MAE {:.5}, max {:.5}.</p>",
            escape(&parity.b),
            escape(&parity.a),
            parity.episodes,
            parity.mae,
            parity.max_abs
        );
        html.push_str(&joint_table(&parity.joints));
    }
    episodes_section(&mut html, report);
    html.push_str("</body></html>");
    html
}

const STYLE: &str = "body{font-family:sans-serif;margin:2em;color:#222}table{border-collapse:collapse;margin:1em 0}\
td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}th{background:#f2f2f2}td:first-child{text-align:left}\
.grid{display:flex;flex-wrap:wrap;gap:4px}";

fn joint_table(joints: &[JointSummary]) -> String {
    let mut html = String::from(
        "<table><tr><th>joint</th><th>MAE</th><th>RMSE</th><th>max</th><th>MAE/std</th><th>RMSE/std</th></tr>",
    );
    for j in joints {
        let _ = write!(
            html,
            "<tr><td>{}</td><td>{:.4}</td><td>{:.4}</td><td>{:.4}</td><td>{}</td><td>{}</td></tr>",
            escape(&j.joint),
            j.mae,
            j.rmse,
            j.max_abs,
            optional(j.mae_normalized),
            optional(j.rmse_normalized)
        );
    }
    html.push_str("</table>");
    html
}

fn stages_section(html: &mut String, report: &EvalReport, summary: &brainstem_runtime::offline::eval::report::Summary) {
    html.push_str("<h2>Latency on the virtual clock</h2><table><tr><th>stage</th><th>calls</th><th>p50 ms</th><th>p99 ms</th><th>max ms</th><th>deadline misses</th></tr>");
    for s in &summary.stages {
        let _ = write!(
            html,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            s.stage,
            s.count,
            optional(s.p50_ms),
            optional(s.p99_ms),
            optional(s.max_ms),
            s.deadline_misses
        );
    }
    html.push_str("</table>");
    let mut buckets: Vec<(f64, u64)> = Vec::new();
    for episode in &report.episodes {
        if let Some(latency) = episode.latency.get("vla_chunk") {
            buckets.extend_from_slice(&latency.buckets);
        }
    }
    if !buckets.is_empty() {
        html.push_str(&histogram("VLA chunk latency", "ms", &buckets).unwrap_or_else(plot_error));
    }
    let interventions: Vec<String> = summary
        .interventions
        .iter()
        .filter(|(name, _)| *name != CHUNKS_COMPLETED)
        .map(|(name, count)| format!("{name} {count}"))
        .collect();
    let _ = write!(
        html,
        "<p>Safety interventions (joint-ticks or stops): {}. Chunks completed: {}.</p>",
        interventions.join(", "),
        summary.interventions.get(CHUNKS_COMPLETED).copied().unwrap_or(0)
    );
}

fn episodes_section(html: &mut String, report: &EvalReport) {
    html.push_str("<h2>Episodes</h2><table><tr><th>episode</th><th>task</th><th>frames</th><th>MAE</th><th>RMS jerk commanded</th><th>recorded</th><th>interventions</th><th>stage failures</th><th>seconds</th></tr>");
    for e in &report.episodes {
        let _ = write!(
            html,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{:.4}</td><td>{:.1}</td><td>{:.1}</td><td>{}</td><td>{}</td><td>{:.2}</td></tr>",
            e.episode,
            escape(&e.task),
            e.timestamps.len(),
            e.mae(),
            e.jerk_predicted.rms(),
            e.jerk_recorded.rms(),
            e.interventions_total(),
            e.stage_failures.len(),
            e.wall_seconds
        );
    }
    html.push_str("</table>");
    for episode in report.episodes.iter().take(PLOTTED_EPISODES) {
        let _ = write!(
            html,
            "<h3>Episode {}: {}</h3><p>Commanded (blue) and recorded (orange) per joint.</p><div class=\"grid\">",
            episode.episode,
            escape(&episode.task)
        );
        for (j, name) in report.joints.iter().enumerate() {
            html.push_str(&joint_plot(episode, j, name).unwrap_or_else(plot_error));
        }
        html.push_str("</div>");
        html.push_str(&error_plot(episode).unwrap_or_else(plot_error));
    }
}

pub(crate) type Plot = Result<String, Box<dyn std::error::Error>>;

fn joint_plot(episode: &EpisodeResult, joint: usize, name: &str) -> Plot {
    let line = |rows: &[Vec<f64>]| -> Vec<(f64, f64)> {
        episode
            .timestamps
            .iter()
            .zip(rows)
            .map(|(&t, row)| (t, row[joint]))
            .collect()
    };
    lines(
        name,
        (260, 170),
        &[
            (line(&episode.predicted), BLUE.to_rgba()),
            (line(&episode.recorded), RGBColor(230, 120, 20).to_rgba()),
        ],
    )
}

fn error_plot(episode: &EpisodeResult) -> Plot {
    let mean_error: Vec<(f64, f64)> = episode
        .timestamps
        .iter()
        .zip(episode.predicted.iter().zip(&episode.recorded))
        .map(|(&t, (p, r))| {
            let sum: f64 = p.iter().zip(r).map(|(a, b)| (a - b).abs()).sum();
            (t, sum / p.len().max(1) as f64)
        })
        .collect();
    lines(
        "mean |commanded - recorded| over the joints",
        (800, 220),
        &[(mean_error, RED.to_rgba())],
    )
}

/// A line per (points, colour).
pub(crate) fn lines(title: &str, size: (u32, u32), series: &[(Vec<(f64, f64)>, RGBAColor)]) -> Plot {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, size).into_drawing_area();
        root.fill(&WHITE)?;
        let points = || {
            series
                .iter()
                .flat_map(|(line, _)| line.iter())
                .filter(|(_, y)| y.is_finite())
        };
        let (x0, x1) = points().fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), p| (a.min(p.0), b.max(p.0)));
        let (y0, y1) = points().fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), p| (a.min(p.1), b.max(p.1)));
        let pad = ((y1 - y0) * 0.1).max(1e-6);
        let x1 = if x1 > x0 { x1 } else { x0 + 1.0 };
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 13))
            .margin(6)
            .x_label_area_size(22)
            .y_label_area_size(44)
            .build_cartesian_2d(x0..x1, (y0 - pad)..(y1 + pad))?;
        chart
            .configure_mesh()
            .x_labels(5)
            .y_labels(5)
            .x_desc("s")
            .label_style(("sans-serif", 10))
            .draw()?;
        for (line, color) in series {
            chart.draw_series(LineSeries::new(line.iter().copied(), color.stroke_width(2)))?;
        }
        root.present()?;
    }
    Ok(svg)
}

fn histogram(title: &str, unit: &str, buckets: &[(f64, u64)]) -> Plot {
    let (mut lo, mut hi) = buckets
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &(v, _)| {
            (a.min(v), b.max(v))
        });
    if hi - lo < 1e-3 * hi.abs().max(1.0) {
        // Every call took (almost) the same time: a tenth either side.
        (lo, hi) = (0.9 * lo, 1.1 * hi.max(1e-3));
    }
    let bins = 30usize;
    let width = ((hi - lo) / bins as f64).max(1e-6);
    let mut counts = vec![0u64; bins];
    for &(value, count) in buckets {
        counts[(((value - lo) / width) as usize).min(bins - 1)] += count;
    }
    let top = counts.iter().copied().max().unwrap_or(1).max(1);
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (800, 260)).into_drawing_area();
        root.fill(&WHITE)?;
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 14))
            .margin(8)
            .x_label_area_size(30)
            .y_label_area_size(50)
            .build_cartesian_2d(lo..lo + width * bins as f64, 0u64..top + top / 10 + 1)?;
        chart
            .configure_mesh()
            .x_desc(unit)
            .y_desc("calls")
            .x_label_formatter(&|v| format!("{v:.2}"))
            .label_style(("sans-serif", 10))
            .draw()?;
        chart.draw_series(counts.iter().enumerate().map(|(i, &count)| {
            let x = lo + width * i as f64;
            Rectangle::new([(x, 0), (x + width, count)], BLUE.mix(0.6).filled())
        }))?;
        root.present()?;
    }
    Ok(svg)
}

fn plot_error(error: Box<dyn std::error::Error>) -> String {
    format!("<p>(plot failed: {})</p>", escape(&error.to_string()))
}

fn optional(value: Option<f64>) -> String {
    value.map_or("-".into(), |v| format!("{v:.4}"))
}

pub(crate) fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}
