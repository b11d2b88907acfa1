//! SVG plots of the results, written next to BENCHMARKS.md.

use std::path::Path;

use plotters::prelude::*;

use crate::{Comp, Results, Scale, percentile};

/// Writes every plot the results allow.
pub fn all(dir: &Path, r: &Results) -> anyhow::Result<()> {
    if !r.latency.is_empty() {
        latency(&dir.join("latency.svg"), r)?;
    }
    for (comp, file) in [(Comp::Nop, "ready.svg"), (Comp::Pg, "ready-pg.svg")] {
        let runs: Vec<&Scale> = r.scale.iter().filter(|s| s.comp == comp).collect();
        if !runs.is_empty() {
            ready_curves(&dir.join(file), comp, &runs)?;
        }
    }
    Ok(())
}

const COLORS: [RGBColor; 6] = [BLUE, RED, GREEN, MAGENTA, CYAN, BLACK];

/// Claim -> Secret latency: the cumulative distribution per composition.
fn latency(path: &Path, r: &Results) -> anyhow::Result<()> {
    let root = SVGBackend::new(path, (800, 450)).into_drawing_area();
    root.fill(&WHITE)?;
    let max = r
        .latency
        .iter()
        .map(|l| percentile(&l.ms, 99.0))
        .fold(1.0_f64, f64::max)
        * 1.1;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            "claim -> connection Secret latency (CDF)",
            ("sans-serif", 20),
        )
        .margin(15)
        .x_label_area_size(40)
        .y_label_area_size(50)
        .build_cartesian_2d(0.0..max, 0.0..100.0)?;
    chart
        .configure_mesh()
        .x_desc("milliseconds")
        .y_desc("% of claims")
        .draw()?;
    for (i, l) in r.latency.iter().enumerate() {
        let n = l.ms.len() as f64;
        let color = COLORS[i % COLORS.len()];
        chart
            .draw_series(LineSeries::new(
                l.ms.iter()
                    .enumerate()
                    .map(|(k, ms)| (ms.min(max), (k + 1) as f64 * 100.0 / n)),
                color.stroke_width(2),
            ))?
            .label(l.composition.clone())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color));
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .position(SeriesLabelPosition::LowerRight)
        .draw()?;
    root.present()?;
    Ok(())
}

/// Claims Ready over time after applying N at once, per system and N.
fn ready_curves(path: &Path, comp: Comp, runs: &[&Scale]) -> anyhow::Result<()> {
    let root = SVGBackend::new(path, (800, 450)).into_drawing_area();
    root.fill(&WHITE)?;
    let max_t = runs
        .iter()
        .filter_map(|s| s.ready_curve.last().copied())
        .fold(1.0_f64, f64::max)
        * 1.05;
    let max_n = runs.iter().map(|s| s.claims).max().unwrap_or(1) as f64 * 1.05;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            format!("claims Ready after applying N at once: {}", comp.title()),
            ("sans-serif", 20),
        )
        .margin(15)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(0.0..max_t, 0.0..max_n)?;
    chart
        .configure_mesh()
        .x_desc("seconds since the first apply")
        .y_desc("claims Ready")
        .draw()?;
    for (i, s) in runs.iter().enumerate() {
        let color = COLORS[i % COLORS.len()];
        chart
            .draw_series(LineSeries::new(
                s.ready_curve
                    .iter()
                    .enumerate()
                    .map(|(k, t)| (*t, (k + 1) as f64)),
                color.stroke_width(2),
            ))?
            .label(format!("{} x {}", s.system, s.claims))
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color));
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .position(SeriesLabelPosition::LowerRight)
        .draw()?;
    root.present()?;
    Ok(())
}
