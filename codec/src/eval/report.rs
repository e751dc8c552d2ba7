//! Writing evaluation results: a CSV of every point, a markdown summary with BD-rates and
//! bits per pixel at fixed PSNRs, and an R–D plot (SVG, one panel per clip).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use plotters::element::DashedPathElement;
use plotters::prelude::*;

use super::bdrate::{bd_rate, frontier, rate_at_psnr};
use super::EvalRow;

/// PSNRs at which the summary reports bits per pixel.
pub const TARGET_PSNRS: [f64; 3] = [32.0, 36.0, 40.0];

/// Writes `rows` as CSV.
pub fn write_csv(rows: &[EvalRow], path: &Path) -> std::io::Result<()> {
    let mut out = String::from(
        "clip,codec,setting,bpp,psnr_rgb,ms_ssim,encode_s,decode_s,bytes,model_bytes\n",
    );
    for r in rows {
        let _ = writeln!(
            out,
            "{},{},{},{:.5},{:.3},{:.5},{:.3},{:.3},{},{}",
            r.clip,
            r.codec,
            r.setting,
            r.bpp,
            r.psnr_rgb,
            r.ms_ssim,
            r.encode_s,
            r.decode_s,
            r.bytes,
            r.model_bytes
        );
    }
    std::fs::write(path, out)
}

/// One codec's (bpp, PSNR) points on one clip, in setting order.
type Curve = (String, Vec<(f64, f64)>);

/// Rows grouped by clip, then codec.
fn curves(rows: &[EvalRow]) -> BTreeMap<String, Vec<Curve>> {
    let mut by_clip: BTreeMap<String, Vec<Curve>> = BTreeMap::new();
    for r in rows {
        let codecs = by_clip.entry(r.clip.clone()).or_default();
        match codecs.iter_mut().find(|(c, _)| c == &r.codec) {
            Some((_, pts)) => pts.push((r.bpp, r.psnr_rgb)),
            None => codecs.push((r.codec.clone(), vec![(r.bpp, r.psnr_rgb)])),
        }
    }
    by_clip
}

fn fmt_opt(v: Option<f64>, digits: usize) -> String {
    v.filter(|x| x.is_finite())
        .map_or("–".into(), |x| format!("{x:.digits$}"))
}

/// The markdown summary: per clip, each codec's BD-rate against `reference` and its bits per
/// pixel at the target PSNRs (interpolated between measured points, never extrapolated), both
/// on each codec's [`frontier`]; the settings left out as dominated are listed under the table.
pub fn summary_markdown(rows: &[EvalRow], reference: &str) -> String {
    let mut md = String::new();
    for (clip, codecs) in curves(rows) {
        let frontiers: Vec<Curve> = codecs.into_iter().map(|(c, p)| (c, frontier(&p))).collect();
        let frontier_of = |codec: &str| {
            let curve = frontiers.iter().find(|(c, _)| c == codec);
            &curve.expect("every row's codec has a curve").1
        };
        let _ = writeln!(md, "### {clip}\n");
        let _ = write!(md, "| codec | BD-rate vs {reference} |");
        for p in TARGET_PSNRS {
            let _ = write!(md, " bpp @ {p:.0} dB |");
        }
        let _ = writeln!(md, " model bytes |");
        let _ = writeln!(md, "|---|---|{}---|", "---|".repeat(TARGET_PSNRS.len()));
        let reference_curve = frontiers
            .iter()
            .find(|(c, _)| c == reference)
            .map(|(_, p)| p);
        for (codec, points) in &frontiers {
            let bd = if codec == reference {
                "(reference)".to_string()
            } else {
                match reference_curve.and_then(|r| bd_rate(r, points)) {
                    Some(v) => format!("{v:+.1} %"),
                    None => "n/a".to_string(),
                }
            };
            let _ = write!(md, "| {codec} | {bd} |");
            for p in TARGET_PSNRS {
                let _ = write!(md, " {} |", fmt_opt(rate_at_psnr(points, p), 3));
            }
            let sizes: Vec<u64> = rows
                .iter()
                .filter(|r| r.clip == clip && &r.codec == codec)
                .map(|r| r.model_bytes)
                .collect();
            let (least, most) = (sizes.iter().min(), sizes.iter().max());
            let model = match (least, most) {
                (Some(a), Some(b)) if a != b => format!("{a}–{b}"),
                (Some(a), _) => a.to_string(),
                _ => "0".to_string(),
            };
            let _ = writeln!(md, " {model} |");
        }
        let dominated: Vec<String> = rows
            .iter()
            .filter(|r| r.clip == clip)
            .filter(|r| !frontier_of(&r.codec).contains(&(r.bpp, r.psnr_rgb)))
            .map(|r| {
                format!(
                    "{} {} ({:.3} bpp, {:.2} dB)",
                    r.codec, r.setting, r.bpp, r.psnr_rgb
                )
            })
            .collect();
        if !dominated.is_empty() {
            let _ = writeln!(
                md,
                "\nLeft out of the BD-rates and rates above as dominated (another setting of the \
                 same codec has fewer bits and a higher PSNR): {}.",
                dominated.join("; ")
            );
        }
        let _ = writeln!(md);
    }
    md
}

/// Each series' colour, stable across panels: hues spread evenly over the series, so no two
/// share one however many there are.
fn colour(i: usize, of: usize) -> HSLColor {
    HSLColor(i as f64 / of.max(1) as f64, 0.75, 0.42)
}

/// How a family of codecs is drawn: the learned codec solid and bold, the PCA baselines
/// dotted, classic codecs dashed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Family {
    Learned,
    Pca,
    Classic,
}

impl Family {
    fn of(codec: &str) -> Self {
        if codec.starts_with("learned") {
            Family::Learned
        } else if codec.starts_with("pca") {
            Family::Pca
        } else {
            Family::Classic
        }
    }

    /// Stroke width, and (dash, gap) in pixels for a broken line.
    fn line(self) -> (u32, Option<(u32, u32)>) {
        match self {
            Family::Learned => (3, None),
            Family::Pca => (2, Some((2, 4))),
            Family::Classic => (2, Some((8, 5))),
        }
    }
}

/// Writes the R–D plot: bits per pixel against RGB PSNR, one panel per clip.
pub fn write_plot(rows: &[EvalRow], path: &Path) -> Result<(), Box<dyn std::error::Error>> {
    let by_clip = curves(rows);
    let mut all_codecs: Vec<String> = Vec::new();
    for r in rows {
        if !all_codecs.contains(&r.codec) {
            all_codecs.push(r.codec.clone());
        }
    }
    let panels = by_clip.len().max(1);
    let root = SVGBackend::new(path, (520 * panels as u32, 420)).into_drawing_area();
    root.fill(&WHITE)?;
    for (area, (clip, codecs)) in root.split_evenly((1, panels)).iter().zip(&by_clip) {
        let pts = codecs
            .iter()
            .flat_map(|(_, p)| p.iter())
            .filter(|p| p.1.is_finite());
        let (min_bpp, max_bpp, lo, hi) = pts.fold(
            (f64::INFINITY, 0.1f64, f64::INFINITY, f64::NEG_INFINITY),
            |(mn, mx, lo, hi), &(b, p)| (mn.min(b), mx.max(b), lo.min(p), hi.max(p)),
        );
        let x_max = max_bpp.min(8.0) * 1.1;
        let x_min = min_bpp.clamp(0.001, x_max / 10.0) * 0.9;
        let mut chart = ChartBuilder::on(area)
            .caption(clip, ("sans-serif", 18))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(50)
            .build_cartesian_2d(
                (x_min..x_max).log_scale(),
                (lo.max(20.0) - 1.0).floor()..(hi.min(60.0) + 1.0).ceil(),
            )?;
        chart
            .configure_mesh()
            .x_desc("bits per pixel (file size, log scale)")
            .y_desc("RGB PSNR (dB)")
            .draw()?;
        for (codec, points) in codecs {
            let index = all_codecs.iter().position(|n| n == codec).unwrap_or(0);
            let c = colour(index, all_codecs.len());
            let mut sorted: Vec<(f64, f64)> = points
                .iter()
                .copied()
                .filter(|p| p.0 >= x_min && p.0 <= x_max && p.1.is_finite())
                .collect();
            sorted.sort_by(|a, b| a.0.total_cmp(&b.0));
            let (width, dashes) = Family::of(codec).line();
            let style = c.stroke_width(width);
            let series = match dashes {
                None => chart.draw_series(LineSeries::new(sorted.clone(), style))?,
                Some((dash, gap)) => {
                    chart.draw_series(DashedLineSeries::new(sorted.clone(), dash, gap, style))?
                }
            };
            series
                .label(codec.as_str())
                .legend(move |(x, y)| match dashes {
                    None => PathElement::new(vec![(x, y), (x + 24, y)], style).into_dyn(),
                    Some((dash, gap)) => {
                        DashedPathElement::new(vec![(x, y), (x + 24, y)], dash, gap, style)
                            .into_dyn()
                    }
                });
            chart.draw_series(sorted.iter().map(|&p| Circle::new(p, 3, c.filled())))?;
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::LowerRight)
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .draw()?;
    }
    root.present()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(setting: &str, psnr: f64, bpp: f64, model_bytes: u64) -> EvalRow {
        EvalRow {
            clip: "clip".into(),
            codec: "learned".into(),
            setting: setting.into(),
            bpp,
            psnr_rgb: psnr,
            ms_ssim: 0.9,
            encode_s: 0.0,
            decode_s: 0.0,
            bytes: 1,
            model_bytes,
        }
    }

    #[test]
    fn the_summary_shows_the_range_of_model_sizes() {
        let same = [row("q1", 30.0, 0.1, 7), row("q2", 33.0, 0.2, 7)];
        assert!(summary_markdown(&same, "jpeg").contains("| 7 |"));
        let mixed = [row("q1", 30.0, 0.1, 7), row("q2", 33.0, 0.2, 9)];
        assert!(summary_markdown(&mixed, "jpeg").contains("| 7–9 |"));
    }

    #[test]
    fn a_dominated_setting_is_named_and_left_out_of_the_bd_rate() {
        let mut rows = vec![
            row("q1", 29.0, 0.20, 7),
            row("q1+d64", 35.0, 0.15, 7),
            row("q1+d30", 38.0, 0.30, 7),
            row("q1+d20", 40.0, 0.45, 7),
            row("q1+d10", 43.0, 0.70, 7),
        ];
        for (psnr, bpp) in [(33.0, 0.2), (36.0, 0.35), (39.0, 0.6), (42.0, 1.0)] {
            rows.push(EvalRow {
                codec: "jpeg".into(),
                ..row("q", psnr, bpp, 0)
            });
        }
        let md = summary_markdown(&rows, "jpeg");
        assert!(md.contains("as dominated"), "{md}");
        assert!(md.contains("learned q1 (0.200 bpp, 29.00 dB)"), "{md}");
        assert!(!md.contains("learned q1+d64 ("), "{md}");
        let learned = md.lines().find(|l| l.starts_with("| learned |")).unwrap();
        assert!(!learned.contains("n/a"), "{learned}");
    }
}
