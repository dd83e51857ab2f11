//! Decompression of CloudTrail's gzip files: trailwatch's reader (`event::gunzip`: libdeflate
//! on a whole single-member file, streaming flate2 otherwise) against streaming flate2 with
//! the zlib-rs backend (what every file went through before), on the files of an archive.
//!
//! `INFLATE_DIR=target/bench-archive-1250000 cargo bench --bench inflate` (default: that
//! directory; generate it with `scripts/bench` or `scripts/gen_archive.py`). Files are read
//! into memory first; each decoder then inflates all of them, three rounds, single-threaded.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::Instant;

fn gz_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            gz_files(&p, out);
        } else if p.to_string_lossy().ends_with(".json.gz") {
            out.push(p);
        }
    }
}

fn main() {
    let dir =
        std::env::var("INFLATE_DIR").unwrap_or_else(|_| "target/bench-archive-1250000".into());
    let mut paths = Vec::new();
    gz_files(Path::new(&dir), &mut paths);
    paths.sort();
    if paths.is_empty() {
        eprintln!("inflate: no .json.gz files under {dir} (set INFLATE_DIR; see scripts/bench)");
        return;
    }
    let files: Vec<Vec<u8>> = paths.iter().map(|p| std::fs::read(p).unwrap()).collect();
    let compressed: usize = files.iter().map(Vec::len).sum();
    println!(
        "inflate: {} files, {:.0} MB gzip, under {dir}",
        files.len(),
        compressed as f64 / 1e6
    );
    for round in 1..=3 {
        let t = Instant::now();
        let mut a = 0usize;
        for f in &files {
            let mut out = Vec::with_capacity(f.len() * 8);
            flate2::read::MultiGzDecoder::new(&f[..])
                .read_to_end(&mut out)
                .unwrap();
            a += out.len();
        }
        let stream = t.elapsed().as_secs_f64();
        let t = Instant::now();
        let mut b = 0usize;
        for f in &files {
            b += trailwatch::event::gunzip(f).unwrap().len();
        }
        let whole = t.elapsed().as_secs_f64();
        assert_eq!(a, b, "both decoders give the same bytes");
        let mb = a as f64 / 1e6;
        println!(
            "round {round}: {mb:.0} MB of JSON; flate2/zlib-rs streaming {stream:.2} s ({:.0} MB/s); trailwatch gunzip {whole:.2} s ({:.0} MB/s); {:.2}x",
            mb / stream,
            mb / whole,
            stream / whole
        );
    }
}
