//! How `brainstem bench` shows what it found: a terminal table per configuration with the
//! best placement for each budget, a CSV row per point, an SVG plot of VLA latency and power
//! against the TOPS budget (a line per configuration and placement), and the measured mode's
//! prediction-beside-measurement table.

use std::path::Path;

use brainstem_runtime::compute::chip::ChipProfile;
use brainstem_runtime::simulate::sweep::SweepPoint;
use brainstem_runtime::telemetry::TelemetryReport;
use plotters::element::DynElement;
use plotters::prelude::*;

use crate::eval_html::escape;

pub fn print_points(points: &[SweepPoint], family: &ChipProfile) {
    println!(
        "chips: {} family ({} int8 TOPS, {:.0} GB/s, {:.0} W idle at its own size; scaled to each share)",
        family.name, family.int8_tops, family.memory_gbps, family.idle_watts
    );
    let width = points.iter().map(|p| p.label.len()).max().unwrap_or(0).max(6);
    println!(
        "{:<width$} {:<15} {:>6} {:>19} {:>17} {:>8} {:>8} {:>17} {:>6} {:>5} {:>8} {:>8} {:>9} {:>18}",
        "config",
        "placement",
        "TOPS",
        "VLA chunk p50/p99",
        "1st action p50/99",
        "chunk/s",
        "plan/s",
        "plan p50/p99 ms",
        "misses",
        "stops",
        "avg W",
        "peak W",
        "J/chunk",
        "TOPS use per chip"
    );
    for p in points {
        let utilisation: Vec<String> = p
            .tops_utilisation
            .iter()
            .map(|u| format!("{:.1}%", 100.0 * u))
            .collect();
        println!(
            "{:<width$} {:<15} {:>6} {:>9.2}/{:<9.2} {:>8.2}/{:<8.2} {:>8.2} {:>8.2} {:>8.1}/{:<8.1} {:>6} {:>5} {:>8.1} {:>8.1} {:>9.3} {:>18}",
            p.label,
            p.placement,
            p.budget_tops,
            p.vla_chunk_p50_ms,
            p.vla_chunk_p99_ms,
            p.first_action_p50_ms,
            p.first_action_p99_ms,
            p.chunk_rate_hz,
            p.replan_rate_hz,
            p.plan_p50_ms,
            p.plan_p99_ms,
            p.deadline_misses,
            p.safety_stops,
            p.average_watts,
            p.peak_watts,
            p.joules_per_chunk,
            utilisation.join(" ")
        );
    }
    print_best(points);
}

/// For each configuration and budget: the placement with the highest control rate (ties go
/// to the lower VLA p99, then the lower power) among those whose brain keeps at least half
/// the replanning rate the best of them reaches (strict priority lets a VLA that runs back
/// to back starve a brain on its chip).
fn print_best(points: &[SweepPoint]) {
    let mut keys: Vec<(&str, f64)> = Vec::new();
    for p in points {
        if !keys.contains(&(p.label.as_str(), p.budget_tops)) {
            keys.push((p.label.as_str(), p.budget_tops));
        }
    }
    println!("\nbest placement for the control rate (with the brain still replanning):");
    for (label, tops) in keys {
        let candidates: Vec<&SweepPoint> = points
            .iter()
            .filter(|p| p.label == label && p.budget_tops == tops)
            .collect();
        let replanning = candidates.iter().map(|p| p.replan_rate_hz).fold(0.0, f64::max);
        let best = candidates
            .into_iter()
            .filter(|p| p.replan_rate_hz >= 0.5 * replanning)
            .max_by(|a, b| {
                a.chunk_rate_hz
                    .total_cmp(&b.chunk_rate_hz)
                    .then(b.vla_chunk_p99_ms.total_cmp(&a.vla_chunk_p99_ms))
                    .then(b.average_watts.total_cmp(&a.average_watts))
            });
        if let Some(p) = best {
            println!(
                "  {label} at {tops} TOPS: {} ({:.2} chunks/s, VLA p99 {:.2} ms, {:.2} plans/s, {:.1} W)",
                p.placement, p.chunk_rate_hz, p.vla_chunk_p99_ms, p.replan_rate_hz, p.average_watts
            );
        }
    }
}

pub fn write_csv(path: &Path, points: &[SweepPoint]) -> anyhow::Result<()> {
    let mut text = String::from(
        "config,placement,budget_tops,chip,seconds,vla_chunk_p50_ms,vla_chunk_p99_ms,first_action_p50_ms,\
         first_action_p99_ms,plan_p50_ms,plan_p99_ms,vision_p50_ms,chunk_rate_hz,replan_rate_hz,\
         deadline_misses,safety_stops,average_watts,peak_watts,joules_per_chunk,picojoules_per_op,tops_utilisation\n",
    );
    for p in points {
        let utilisation: Vec<String> = p.tops_utilisation.iter().map(|u| format!("{u:.6}")).collect();
        text.push_str(&format!(
            "\"{}\",{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},\"{}\"\n",
            p.label.replace('"', "'"),
            p.placement,
            p.budget_tops,
            p.chip,
            p.seconds,
            p.vla_chunk_p50_ms,
            p.vla_chunk_p99_ms,
            p.first_action_p50_ms,
            p.first_action_p99_ms,
            p.plan_p50_ms,
            p.plan_p99_ms,
            p.vision_p50_ms,
            p.chunk_rate_hz,
            p.replan_rate_hz,
            p.deadline_misses,
            p.safety_stops,
            p.average_watts,
            p.peak_watts,
            p.joules_per_chunk,
            p.picojoules_per_op,
            utilisation.join(" ")
        ));
    }
    std::fs::write(path, text)?;
    Ok(())
}

/// One line per configuration and placement, through its points in budget order.
fn series(points: &[SweepPoint], value: impl Fn(&SweepPoint) -> f64) -> Vec<(String, Vec<(f64, f64)>)> {
    let mut out: Vec<(String, Vec<(f64, f64)>)> = Vec::new();
    for p in points {
        let name = format!("{}, {} placement", p.label, p.placement);
        let xy = (p.budget_tops, value(p));
        match out.iter_mut().find(|(n, _)| *n == name) {
            Some((_, line)) => line.push(xy),
            None => out.push((name, vec![xy])),
        }
    }
    for (_, line) in &mut out {
        line.sort_by(|a, b| a.0.total_cmp(&b.0));
        line.retain(|(_, y)| y.is_finite());
    }
    out
}

/// Strong, distinct colours (matplotlib's tab10), readable on white.
pub(crate) const LINE_COLOURS: [RGBColor; 10] = [
    RGBColor(31, 119, 180),
    RGBColor(214, 39, 40),
    RGBColor(44, 160, 44),
    RGBColor(255, 127, 14),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
];

/// One panel (latency falls with the budget and power rises, so the caller puts the legend
/// where the lines are not); every line has its own colour and marker shape, the markers hollow, so a line
/// drawn over another leaves the other's markers in sight.
fn draw_panel<B: DrawingBackend>(
    area: &DrawingArea<B, plotters::coord::Shift>,
    title: &str,
    y_label: &str,
    lines: &[(String, Vec<(f64, f64)>)],
    legend: SeriesLabelPosition,
) -> anyhow::Result<()>
where
    B::ErrorType: 'static,
{
    let all = lines.iter().flat_map(|(_, l)| l.iter());
    let (x_max, y_max) = all.fold((1.0f64, 1e-9f64), |(x, y), &(px, py)| (x.max(px), y.max(py)));
    let mut chart = ChartBuilder::on(area)
        .caption(title, ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(60)
        .build_cartesian_2d(0.0..x_max * 1.05, 0.0..y_max * 1.1)?;
    chart
        .configure_mesh()
        .x_desc("the robot's int8 budget (TOPS)")
        .y_desc(y_label)
        .draw()?;
    for (i, (name, line)) in lines.iter().enumerate() {
        let color = LINE_COLOURS[i % LINE_COLOURS.len()].to_rgba();
        let marker = move |xy: (i32, i32)| -> DynElement<'static, B, (i32, i32)> { shape(i, xy, color) };
        chart
            .draw_series(LineSeries::new(line.iter().copied(), color.stroke_width(2)))?
            .label(name.clone())
            .legend(move |(x, y)| {
                EmptyElement::at((x, y)) + PathElement::new([(-8, 0), (8, 0)], color.stroke_width(2)) + marker((0, 0))
            });
        chart.draw_series(line.iter().map(|&xy| EmptyElement::at(xy) + shape(i, (0, 0), color)))?;
    }
    chart
        .configure_series_labels()
        .position(legend)
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()?;
    Ok(())
}

pub fn write_svg(path: &Path, points: &[SweepPoint]) -> anyhow::Result<()> {
    draw_sweep(&SVGBackend::new(path, PLOT_SIZE).into_drawing_area(), points)
}

const PLOT_SIZE: (u32, u32) = (1100, 900);

/// The page a person opens: the plots inline and a row per point, self-contained.
pub fn render_html(points: &[SweepPoint], family: &ChipProfile) -> anyhow::Result<String> {
    let mut svg = String::new();
    draw_sweep(
        &SVGBackend::with_string(&mut svg, PLOT_SIZE).into_drawing_area(),
        points,
    )?;
    let mut html = format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>brainstem bench</title><style>{STYLE}</style></head><body>\
         <h1>brainstem bench</h1><p>Simulated on the virtual clock: each chip a <b>{}</b> ({} int8 TOPS, {:.0} GB/s at its own size) scaled to its share of the robot's budget; host-side work on {}.</p>{svg}\
         <table><tr><th>configuration</th><th>placement</th><th>TOPS</th><th>VLA chunk p50 / p99 ms</th><th>first action ms</th><th>chunks/s</th><th>plans/s</th><th>plan p50 ms</th><th>vision p50 ms</th><th>W avg / peak</th><th>J per chunk</th></tr>",
        escape(&family.name),
        family.int8_tops,
        family.memory_gbps,
        family.host_cpu.as_ref().map_or("the chips".into(), |cpu| escape(&cpu.name)),
    );
    for p in points {
        html.push_str(&format!(
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{:.1} / {:.1}</td><td>{:.1}</td><td>{:.2}</td><td>{:.2}</td><td>{:.1}</td><td>{:.1}</td><td>{:.1} / {:.1}</td><td>{:.1}</td></tr>",
            escape(&p.label), p.placement, p.budget_tops, p.vla_chunk_p50_ms, p.vla_chunk_p99_ms,
            p.first_action_p50_ms, p.chunk_rate_hz, p.replan_rate_hz, p.plan_p50_ms, p.vision_p50_ms,
            p.average_watts, p.peak_watts, p.joules_per_chunk
        ));
    }
    html.push_str("</table></body></html>");
    Ok(html)
}

const STYLE: &str = "body{font-family:sans-serif;margin:2em;max-width:1200px}table{border-collapse:collapse;font-size:13px}td,th{border:1px solid #ccc;padding:3px 6px;text-align:right}td:first-child,td:nth-child(2){text-align:left}";

/// Chunk latency and power against the budget, one line per configuration and placement.
fn draw_sweep<B: DrawingBackend>(
    root: &DrawingArea<B, plotters::coord::Shift>,
    points: &[SweepPoint],
) -> anyhow::Result<()>
where
    B::ErrorType: 'static,
{
    root.fill(&WHITE)?;
    let (top, bottom) = root.split_vertically(450);
    draw_panel(
        &top,
        "VLA chunk latency, p99",
        "VLA chunk p99 (ms)",
        &series(points, |p| p.vla_chunk_p99_ms),
        SeriesLabelPosition::UpperRight,
    )?;
    draw_panel(
        &bottom,
        "Average power of every chip",
        "average power (W)",
        &series(points, |p| p.average_watts),
        SeriesLabelPosition::UpperLeft,
    )?;
    root.present()?;
    Ok(())
}

/// Each stage's p50 as measured and as the host profiles predict it.
pub fn print_fidelity(predicted: &TelemetryReport, measured: &TelemetryReport) {
    println!("\nstage              measured p50 ms   predicted p50 ms   predicted / measured");
    let ran = |report: &TelemetryReport, name: &str| {
        report
            .stages
            .iter()
            .find(|s| s.name == name && s.count > 0)
            .map(|s| s.p50_ms)
    };
    for m in measured.stages.iter().filter(|s| s.count > 0) {
        match ran(predicted, &m.name) {
            Some(p) => println!("{:<18} {:>15.2} {:>18.2} {:>22.2}", m.name, m.p50_ms, p, p / m.p50_ms),
            None => println!("{:<18} {:>15.2} {:>18} {:>22}", m.name, m.p50_ms, "never ran", "-"),
        }
    }
}

/// The `i`th line's marker at `at` (relative to its point): a hollow circle, triangle,
/// square or diamond, larger for earlier lines so that coinciding points all show.
fn shape<B: DrawingBackend>(i: usize, at: (i32, i32), color: RGBAColor) -> DynElement<'static, B, (i32, i32)> {
    let size = 7 - (i / 4).min(3) as i32;
    let style = color.stroke_width(2);
    let (x, y) = at;
    match i % 4 {
        0 => Circle::new(at, size, style).into_dyn(),
        1 => PathElement::new(
            vec![(x, y - size), (x + size, y + size), (x - size, y + size), (x, y - size)],
            style,
        )
        .into_dyn(),
        2 => Rectangle::new([(x - size, y - size), (x + size, y + size)], style).into_dyn(),
        _ => PathElement::new(
            vec![
                (x, y - size),
                (x + size, y),
                (x, y + size),
                (x - size, y),
                (x, y - size),
            ],
            style,
        )
        .into_dyn(),
    }
}
