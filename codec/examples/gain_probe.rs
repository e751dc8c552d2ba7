//! Writes a copy of a learned model with a gain folded into its weights: the latent is scaled
//! by G before rounding, by 1/G where it is read, and the predicted scales follow. The same
//! network with a finer quantizer (docs/experiments/carphone-cap, probe 1).
//!
//! `cargo run --release -p aecodec --example gain_probe -- MODEL OUT GAIN QUALITY`

use aecodec::learned::{LearnedModel, LearnedWeights};
use anyhow::{bail, Context, Result};

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [model, out, gain, quality] = args.as_slice() else {
        bail!("usage: gain_probe MODEL OUT GAIN QUALITY");
    };
    let gain: f32 = gain.parse().context("GAIN")?;
    let model = LearnedModel::from_bytes(&std::fs::read(model).context("reading MODEL")?)?;
    let mut w = model.weights.clone();
    let arch = model.info.arch;
    // The latent's rows of the last analysis layer, weights and bias.
    let latent = arch.latent_layer();
    scale(&mut w, &latent.weight_name(), |_| gain);
    scale(&mut w, &latent.bias_name(), |_| gain);
    // The layers that read the latent (all their inputs are its channels).
    for layer in [&arch.hyper_analysis()[0], &arch.synthesis()[0]] {
        scale(&mut w, &layer.weight_name(), |_| 1.0 / gain);
    }
    // Log-scales shift by ln G.
    let log_scale = arch.log_scale_layer().bias_name();
    let shifted: Vec<f32> = w.get(&log_scale).iter().map(|b| b + gain.ln()).collect();
    w.insert(log_scale, shifted);
    let mut info = model.info.clone();
    info.quality = quality.parse().context("QUALITY")?;
    std::fs::write(out, LearnedModel::file_bytes_for(&info, &w)).context("writing OUT")?;
    Ok(())
}

/// Multiplies each value of tensor `name` by `factor(index)`.
fn scale(w: &mut LearnedWeights, name: &str, factor: impl Fn(usize) -> f32) {
    let values = w
        .get(name)
        .iter()
        .enumerate()
        .map(|(i, v)| v * factor(i))
        .collect();
    w.insert(name.into(), values);
}
