//! Criterion benchmarks for modular live in `benches/benches/`; this library holds what several
//! of them share.

use std::future::Future;
use std::pin::Pin;
use std::time::Instant;

/// One operation measured by [`interleaved`]: a name and a closure producing one run of it.
pub type Op<'a> = (
    &'static str,
    Box<dyn Fn() -> Pin<Box<dyn Future<Output = ()> + 'a>> + 'a>,
);

/// Runs `ours` and `raw` in alternating blocks of `per_block` operations, `cycles` times, and
/// prints the median time per operation of each and their ratio (`ours / raw`).
///
/// Criterion measures two functions one after the other, so load from other processes that
/// changes in between skews their ratio; alternating blocks cancels that drift. Skipped under
/// `--test` and `--list`.
pub async fn interleaved<'a>(
    group: &str,
    ours: Op<'a>,
    raw: Op<'a>,
    cycles: usize,
    per_block: usize,
) {
    if std::env::args().any(|arg| arg == "--test" || arg == "--list") {
        return;
    }
    let mut times: [Vec<f64>; 2] = [Vec::new(), Vec::new()];
    for _ in 0..cycles {
        for (i, (_, op)) in [&ours, &raw].into_iter().enumerate() {
            let started = Instant::now();
            for _ in 0..per_block {
                op().await;
            }
            times[i].push(started.elapsed().as_secs_f64() * 1e9 / per_block as f64);
        }
    }
    let [a, b] = times.map(|mut t| {
        t.sort_by(f64::total_cmp);
        t[t.len() / 2]
    });
    println!(
        "{group}/interleaved: {} median {a:.1} ns/op, {} median {b:.1} ns/op, ratio {:.3}x",
        ours.0,
        raw.0,
        a / b
    );
}
