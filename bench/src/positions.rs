//! `omnicast-bench positions`: what sealing event ids costs (paid once per event, whatever the
//! recipients): a sealed id against the readable one it replaces, and opening one (paid per
//! `since` a client sends). Medians of 5 runs of a million each.

use std::hint::black_box;
use std::time::Instant;

use omnicast::runtime::position::Position;
use omnicast::runtime::server::PositionKey;

const N: u64 = 1_000_000;

fn per_op(mut f: impl FnMut(u64)) -> f64 {
    let mut runs: Vec<f64> = (0..5)
        .map(|_| {
            let started = Instant::now();
            for i in 0..N {
                f(i);
            }
            started.elapsed().as_nanos() as f64 / N as f64
        })
        .collect();
    runs.sort_by(f64::total_cmp);
    runs[2]
}

pub fn run() {
    let key = PositionKey::derive(b"a bench secret of some length");
    let mut position = Position {
        namespace: "orders".into(),
        epoch: "k3v9q2mf".into(),
        offset: 0,
    };
    let readable = per_op(|i| {
        position.offset = i;
        black_box(position.to_string());
    });
    let sealed = per_op(|i| {
        position.offset = i;
        black_box(key.seal(&position));
    });
    let id = key.seal(&position);
    let opened = per_op(|_| {
        black_box(key.open(black_box(&id)).unwrap());
    });
    println!("readable id (orders.k3v9q2mf.<offset>): {readable:.0} ns per event");
    println!("sealed id   (orders.k3v9q2mf.<seal>):   {sealed:.0} ns per event");
    println!("opening a sealed id (a client's since): {opened:.0} ns");
}
