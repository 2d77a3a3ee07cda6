//! The closed-loop evaluation's self-contained HTML report: a row per run (success rate, time
//! to success, interventions, chunk latency, host time), the goal's distance over each
//! episode for every run with the success radius marked, and each episode's first and last
//! camera views (the first run's). Plots are inline SVG; frames are inline PNG.

use std::fmt::Write;

use base64::Engine;
use brainstem_runtime::models::image::RgbImage;
use brainstem_runtime::offline::sim::report::{RunSummary, SimReport, SimRun};
use plotters::style::{Color, RGBAColor, BLACK};

use crate::bench_report::LINE_COLOURS;
use crate::eval_html::{escape, lines};

const STYLE: &str =
    "body{font-family:sans-serif;margin:2em;color:#222;max-width:1200px}table{border-collapse:collapse;margin:1em 0}\
td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}td:first-child{text-align:left}\
.frames{display:flex;flex-wrap:wrap;gap:12px}.frames figure{margin:0}.frames img{width:128px;image-rendering:pixelated}\
figcaption{font-size:12px}";

pub fn render(report: &SimReport) -> String {
    let mut html = String::new();
    let _ = write!(
        html,
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>brainstem eval sim: {}</title><style>{STYLE}</style></head><body>",
        escape(&report.task)
    );
    let _ = write!(
        html,
        "<h1>brainstem eval sim</h1><p>Task <b>{}</b> (\"{}\"), policy <b>{}</b>: episodes on seeds from {}, at most {} s each, success within {} m.</p>",
        escape(&report.task),
        escape(&report.instruction),
        escape(&report.policy),
        report.first_seed,
        report.seconds_limit,
        report.success_radius
    );
    summary_table(&mut html, &report.runs);
    for (i, run) in report.runs.iter().enumerate() {
        let colour = LINE_COLOURS[i % LINE_COLOURS.len()].to_rgba();
        html.push_str(&distance_plot(run, colour, report));
    }
    if let Some(run) = report
        .runs
        .iter()
        .find(|r| r.episodes.iter().any(|e| !e.frames.is_empty()))
    {
        frames_section(&mut html, run);
    }
    html.push_str("</body></html>");
    html
}

fn summary_table(html: &mut String, runs: &[SimRun]) {
    html.push_str("<table><tr><th>run</th><th>success</th><th>median time to success</th><th>interventions</th><th>chunk p50</th><th>chunk p99</th><th>host time</th></tr>");
    for run in runs {
        let cells: String = summary_cells(&run.summary)
            .iter()
            .map(|c| format!("<td>{c}</td>"))
            .collect();
        let _ = write!(html, "<tr><td>{}</td>{cells}</tr>", escape(&run.name));
    }
    html.push_str("</table><p>Chunk latency: on the virtual clock (the placement's chip profile) for brainstem, the host's wall clock for lerobot. Host time: the whole evaluation on this machine, simulator included.</p>");
}

/// A run's summary as the table's cells: successes, median time to success, interventions,
/// chunk p50 and p99, host time.
pub(crate) fn summary_cells(s: &RunSummary) -> [String; 6] {
    let ms = |v: Option<f64>| v.map_or("-".into(), |v| format!("{v:.2} ms"));
    [
        format!("{}/{} ({:.0}%)", s.successes, s.episodes, 100.0 * s.success_rate),
        s.median_seconds_to_success.map_or("-".into(), |t| format!("{t:.2} s")),
        s.interventions.to_string(),
        ms(s.chunk_p50_ms),
        ms(s.chunk_p99_ms),
        format!("{:.1} s", s.wall_seconds),
    ]
}

/// Each episode's distance to the goal (one line each) with the success radius in black.
fn distance_plot(run: &SimRun, colour: RGBAColor, report: &SimReport) -> String {
    let dt = 1.0 / report.control_rate_hz;
    let mut series: Vec<(Vec<(f64, f64)>, RGBAColor)> = run
        .episodes
        .iter()
        .map(|e| {
            let line = e
                .distances
                .iter()
                .enumerate()
                .map(|(i, &d)| (i as f64 * dt, d))
                .collect();
            (line, colour.mix(0.5))
        })
        .collect();
    let end = series
        .iter()
        .flat_map(|(l, _)| l.last())
        .map(|p| p.0)
        .fold(0.0, f64::max);
    series.push((
        vec![(0.0, report.success_radius), (end, report.success_radius)],
        BLACK.to_rgba(),
    ));
    let title = format!("{}: distance to the goal (m) over time (s)", run.name);
    lines(&title, (800, 280), &series).unwrap_or_else(|e| format!("<p>(plot failed: {})</p>", escape(&e.to_string())))
}

fn frames_section(html: &mut String, run: &SimRun) {
    let _ = write!(
        html,
        "<h2>Camera views, {}: first and last of each episode</h2><div class=\"frames\">",
        escape(&run.name)
    );
    for episode in &run.episodes {
        let outcome = match episode.seconds_to_success {
            Some(t) => format!("reached in {t:.2} s"),
            None => format!("missed, {:.3} m short", episode.final_distance),
        };
        let images: String = episode
            .frames
            .iter()
            .filter_map(png_data_url)
            .map(|url| format!("<img src=\"{url}\">"))
            .collect();
        let _ = write!(
            html,
            "<figure>{images}<figcaption>seed {}: {outcome}</figcaption></figure>",
            episode.seed
        );
    }
    html.push_str("</div>");
}

fn png_data_url(image: &RgbImage) -> Option<String> {
    let buffer = image::RgbImage::from_raw(image.width(), image.height(), image.pixels().to_vec())?;
    let mut png = std::io::Cursor::new(Vec::new());
    buffer.write_to(&mut png, image::ImageFormat::Png).ok()?;
    Some(format!(
        "data:image/png;base64,{}",
        base64::engine::general_purpose::STANDARD.encode(png.into_inner())
    ))
}
