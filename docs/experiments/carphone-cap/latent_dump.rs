use aecodec::learned::{frame_to_map, LearnedModel};
use aecodec::video::VideoReader;
use std::io::Write;
fn main() {
    let a: Vec<String> = std::env::args().collect();
    let m = LearnedModel::from_bytes(&std::fs::read(&a[1]).unwrap()).unwrap();
    let mut r = VideoReader::open(std::path::Path::new(&a[2])).unwrap();
    let n: usize = a[4].parse().unwrap();
    let mut out = std::fs::File::create(&a[3]).unwrap();
    let mut k = 0;
    while let Some(f) = r.next_frame().unwrap() {
        if k == n { break; }
        k += 1;
        let w = (f.width as usize / 16) * 16; let h = (f.height as usize / 16) * 16;
        let mut c = aecodec::RgbFrame { width: w as u32, height: h as u32, data: vec![0; w*h*3] };
        for y in 0..h { c.data[y*w*3..(y+1)*w*3].copy_from_slice(&f.data[y*f.width as usize*3..][..w*3]); }
        let mut y = m.analyze(&c);
        y.data.iter_mut().for_each(|v| *v = v.round());
        let xh = m.synthesize_map(y.clone());
        let x = frame_to_map(&c);
        for buf in [&y.data, &x.data, &xh.data] {
            let bytes: Vec<u8> = buf.iter().flat_map(|v| v.to_le_bytes()).collect();
            out.write_all(&bytes).unwrap();
        }
    }
    eprintln!("{k} frames");
}
