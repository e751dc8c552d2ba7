use aecodec::learned::LearnedModel;
fn main() {
    let a: Vec<String> = std::env::args().collect();
    let bytes = std::fs::read(&a[1]).unwrap();
    let g: f32 = a[3].parse().unwrap();
    let m = LearnedModel::from_bytes(&bytes).unwrap();
    let arch = m.info.arch;
    let mut w = m.weights.clone();
    let lat = arch.latent_channels as usize;
    let scale_rows = |w: &mut aecodec::learned::LearnedWeights, name: &str, f: f32| {
        let mut v = w.get(name).to_vec();
        let per = v.len() / lat;
        for x in v.iter_mut().take(lat * per) { *x *= f; }
        w.insert(name.into(), v);
    };
    scale_rows(&mut w, "g_a.3.weight", g);
    scale_rows(&mut w, "g_a.3.bias", g);
    let scale_in = |w: &mut aecodec::learned::LearnedWeights, name: &str, f: f32| {
        let mut v = w.get(name).to_vec();
        let k = 9;
        let outs = v.len() / (lat * k);
        for o in 0..outs { for c in 0..lat { for j in 0..k { v[(o * lat + c) * k + j] *= f; } } }
        w.insert(name.into(), v);
    };
    scale_in(&mut w, "h_a.0.weight", 1.0 / g);
    scale_in(&mut w, "g_s.0.weight", 1.0 / g);
    let mut b = w.get("h_s.2.bias").to_vec();
    for x in b.iter_mut() { *x += g.ln(); }
    w.insert("h_s.2.bias".into(), b);
    let mut info = m.info.clone();
    info.quality = a[4].parse().unwrap();
    std::fs::write(&a[2], LearnedModel::file_bytes_for(&info, &w)).unwrap();
}
