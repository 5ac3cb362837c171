//! Benchmark driver for `bench/context.sh`: snapshot SRC into DST (copy + hash + verify), print timings.

use std::os::fd::AsFd;
use std::time::Instant;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (Some(src), Some(dst)) = (args.get(1), args.get(2)) else {
        eprintln!("usage: snapshot_bench SRC DST");
        std::process::exit(2);
    };
    let open = |p: &str| std::fs::File::open(p).unwrap_or_else(|e| panic!("open {p}: {e}"));
    let (src, dst) = (open(src), open(dst));
    let t = Instant::now();
    match nucleus::context::snapshot::snapshot(src.as_fd(), dst.as_fd()) {
        Ok((manifest, stats)) => {
            let (files, dirs, symlinks, bytes) = manifest.totals();
            println!(
                "{{\"total_s\":{:.3},\"walk_s\":{:.3},\"copy_hash_s\":{:.3},\"verify_s\":{:.3},\"threads\":{},\
                 \"files\":{files},\"dirs\":{dirs},\"symlinks\":{symlinks},\"bytes\":{bytes},\"root_hash\":\"{}\"}}",
                t.elapsed().as_secs_f64(),
                stats.walk.as_secs_f64(),
                stats.copy.as_secs_f64(),
                stats.verify.as_secs_f64(),
                stats.threads,
                manifest.root_hash()
            );
        }
        Err(e) => {
            eprintln!("snapshot failed: {e}");
            std::process::exit(1);
        }
    }
}
