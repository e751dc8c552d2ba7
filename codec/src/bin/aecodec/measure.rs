//! `aecodec eval` and `aecodec bench`.

use std::io::Write;
use std::path::{Path, PathBuf};

use aecodec::learned::LatentStep;
use aecodec::registry::ModelStore;
use anyhow::{bail, Context, Result};
use indicatif::{ProgressBar, ProgressStyle};

use crate::*;

/// What `aecodec eval` runs: the codecs and the settings of the learned ones.
pub(crate) struct EvalSettings {
    pub codecs: Vec<String>,
    pub pca_models: Vec<PathBuf>,
    pub learned_models: Vec<PathBuf>,
    pub detail_steps: Vec<f32>,
    pub latent_steps: Vec<f32>,
    /// Where the learned models' encoder puts the learned picture.
    pub policy: aecodec::coders::BasePolicy,
    /// Gradient steps of latent refinement per intra frame (`encode --effort`).
    pub effort: u16,
}

pub(crate) fn eval(
    clips: Vec<PathBuf>,
    out: &Path,
    frames: usize,
    settings: EvalSettings,
    reference: &str,
) -> Result<()> {
    let EvalSettings {
        codecs,
        pca_models,
        learned_models,
        detail_steps,
        latent_steps,
        policy,
        effort,
    } = settings;
    if let Some(s) = latent_steps
        .iter()
        .find(|s| !aecodec::registry::LATENT_STEPS.contains(*s))
    {
        bail!(
            "--latent-steps takes steps from {} to {}, got {s}",
            aecodec::registry::LATENT_STEPS.start(),
            aecodec::registry::LATENT_STEPS.end()
        );
    }
    let mut latent_steps: Vec<LatentStep> = latent_steps
        .iter()
        .filter_map(|&s| LatentStep::nearest(f64::from(s)))
        .collect();
    latent_steps.dedup();
    use aecodec::eval::{report, run, EvalConfig};
    let detail_steps: Vec<f32> = detail_steps.into_iter().filter(|&s| s != 0.0).collect();
    for &s in &detail_steps {
        aecodec::registry::check_detail_step(s).context("--detail-steps")?;
    }
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let work = tempfile::Builder::new()
        .prefix(".aecodec-eval-")
        .tempdir_in(out)?;
    // Only the models the chosen codecs need must exist.
    let wants_pca = codecs
        .iter()
        .any(|c| c.starts_with("pca") && !c.ends_with("-title"));
    let wants_learned = codecs.iter().any(|c| c.starts_with("learned"));
    let models = pca_models
        .into_iter()
        .filter(|p| wants_pca && p.exists())
        .chain(
            learned_models
                .into_iter()
                .filter(|p| wants_learned && p.exists()),
        )
        .collect();
    let config = EvalConfig {
        clips,
        frames,
        codecs,
        models,
        work_dir: work.path().to_path_buf(),
        detail_steps,
        latent_steps,
        policy,
        effort,
    };
    let bar = ProgressBar::no_length();
    bar.set_style(ProgressStyle::with_template(
        "evaluating [{elapsed_precise}] {pos} points {msg}",
    )?);
    let rows = run(&config, |r| {
        bar.set_message(format!(
            "{} {} {}: {:.3} bpp, {:.2} dB",
            r.clip, r.codec, r.setting, r.bpp, r.psnr_rgb
        ));
        bar.inc(1);
    })?;
    bar.finish_and_clear();
    report::write_csv(&rows, &out.join("results.csv"))?;
    let summary = report::summary_markdown(&rows, reference);
    std::fs::write(out.join("summary.md"), &summary)?;
    report::write_plot(&rows, &out.join("rd.svg"))
        .map_err(|e| anyhow::anyhow!("writing the plot: {e}"))?;
    outln!("{summary}");
    eprintln!(
        "wrote {0}/results.csv, {0}/summary.md and {0}/rd.svg",
        out.display()
    );
    Ok(())
}

pub(crate) fn bench(
    input: Option<PathBuf>,
    models: &[PathBuf],
    runs: usize,
    json: bool,
) -> Result<()> {
    let work = tempfile::tempdir()?;
    let input = match input {
        Some(p) => p,
        None => {
            let sample = Path::new("samples/bikes.mp4");
            if !sample.exists() {
                bail!("no file given and samples/bikes.mp4 is not here; run from the repository or pass an .aez");
            }
            let out = work.path().join("sample.aez");
            let spec =
                aecodec::registry::builtin::level(aecodec::registry::builtin::DEFAULT_QUALITY)?;
            encode(
                sample,
                &out,
                &EncodePlan::Fixed(Box::new(spec)),
                &EncodeOptions::default(),
            )?;
            out
        }
    };
    let store = ModelStore::with_files(models)?;
    let r = aecodec::bench::bench_file(&input, &store, runs, work.path())?;
    if json {
        outln!("{}", serde_json::to_string_pretty(&r)?);
        return Ok(());
    }
    let opt =
        |v: Option<f64>, unit: &str| v.map_or("n/a".to_string(), |v| format!("{v:.1} {unit}"));
    outln!(
        "file            {} ({} bytes, {}x{}, {} frames)",
        r.file,
        r.file_bytes,
        r.width,
        r.height,
        r.frames
    );
    outln!("runs, threads   {} (median), {}", r.runs, r.threads);
    outln!("container       {:.1} frames/s", r.container_fps);
    outln!("entropy decode  {:.1} frames/s", r.entropy_fps);
    outln!("synthesis       {:.1} frames/s", r.synthesis_fps);
    outln!("total           {:.1} frames/s", r.total_fps);
    outln!(
        "x264 (FFmpeg)   {} on the same frames",
        opt(r.x264_decode_fps, "frames/s")
    );
    outln!("peak memory     {}", opt(r.peak_memory_mib, "MiB"));
    Ok(())
}
