//! How `brainstem bench` shows what it found: a terminal table per configuration with the
//! best placement for each budget, a CSV row per point, an SVG plot of VLA latency and power
//! against the TOPS budget (a line per configuration and placement), and the measured mode's
//! prediction-beside-measurement table.

use std::path::Path;

use brainstem_runtime::compute::chip::ChipProfile;
use brainstem_runtime::simulate::sweep::SweepPoint;
use brainstem_runtime::telemetry::TelemetryReport;
use plotters::prelude::*;

pub fn print_points(points: &[SweepPoint], family: &ChipProfile) {
    println!(
        "chips: {} family ({} int8 TOPS, {} GB/s, {} W idle at its own size; scaled to each share)",
        family.name, family.int8_tops, family.memory_gbps, family.idle_watts
    );
    println!(
        "{:<18} {:<15} {:>6} {:>19} {:>17} {:>8} {:>8} {:>17} {:>6} {:>5} {:>8} {:>8} {:>9} {:>18}",
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
            "{:<18} {:<15} {:>6} {:>9.2}/{:<9.2} {:>8.2}/{:<8.2} {:>8.2} {:>8.2} {:>8.1}/{:<8.1} {:>6} {:>5} {:>8.1} {:>8.1} {:>9.3} {:>18}",
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
        let name = format!("{} {}", p.label, p.placement);
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

fn draw_panel(
    area: &DrawingArea<SVGBackend<'_>, plotters::coord::Shift>,
    title: &str,
    y_label: &str,
    lines: &[(String, Vec<(f64, f64)>)],
) -> anyhow::Result<()> {
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
        .x_desc("robot int8 TOPS budget")
        .y_desc(y_label)
        .draw()?;
    for (i, (name, line)) in lines.iter().enumerate() {
        let color = Palette99::pick(i).to_rgba();
        chart
            .draw_series(LineSeries::new(line.iter().copied(), color.stroke_width(2)))?
            .label(name.clone())
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 16, y)], color.stroke_width(2)));
        chart.draw_series(line.iter().map(|&xy| Circle::new(xy, 3, color.filled())))?;
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()?;
    Ok(())
}

pub fn write_svg(path: &Path, points: &[SweepPoint]) -> anyhow::Result<()> {
    let root = SVGBackend::new(path, (1100, 900)).into_drawing_area();
    root.fill(&WHITE)?;
    let (top, bottom) = root.split_vertically(450);
    draw_panel(
        &top,
        "VLA chunk latency, p99",
        "ms",
        &series(points, |p| p.vla_chunk_p99_ms),
    )?;
    draw_panel(
        &bottom,
        "Average power of every chip",
        "W",
        &series(points, |p| p.average_watts),
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
