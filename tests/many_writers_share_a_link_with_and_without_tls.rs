//! Many writers on one node link, large fragmented messages in both directions at once, plain and
//! over TLS: every message comes back intact.
use std::sync::Arc;
use std::time::{Duration, Instant};

use places::prelude::*;
use places::{create_place_node, NodeOptions, RemotePlace, Tls};

places::node_test_entry!();

/// Echoes every buffer.
#[place]
pub fn echo(ch: PlaceChannel<Vec<u8>>) {
    while let Ok(v) = ch.get() {
        if ch.put(v).is_err() {
            return;
        }
    }
}

fn pattern(t: usize, k: usize, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (i.wrapping_mul(31) ^ t ^ (k << 3)) as u8)
        .collect()
}

fn stress(tls: bool) -> Duration {
    let mut o = NodeOptions::for_this_test_binary();
    if tls {
        o = o.tls(Tls::generate().unwrap());
    }
    let node = create_place_node("localhost", o).unwrap();
    assert_eq!(node.encrypted(), tls);
    let t0 = Instant::now();
    std::thread::scope(|s| {
        for t in 0..4usize {
            let node = &node;
            s.spawn(move || {
                let p: Arc<RemotePlace<Vec<u8>>> =
                    Arc::new(node.dynamic_place(module_path!(), "echo").unwrap());
                let n = 12;
                let len = |k: usize| {
                    if k % 3 == 2 {
                        100
                    } else {
                        (3 << 20) + k * 4099
                    }
                };
                let q = p.clone();
                let reader = std::thread::spawn(move || {
                    for k in 0..n {
                        let got = q.get_timeout(Duration::from_secs(60)).unwrap();
                        assert!(got == pattern(t, k, len(k)), "thread {t} message {k}");
                    }
                });
                for k in 0..n {
                    p.put(pattern(t, k, len(k))).unwrap();
                }
                reader.join().unwrap();
            });
        }
    });
    t0.elapsed()
}

#[test]
fn both_ways_many_writers() {
    let p = stress(false);
    let s = stress(true);
    eprintln!("plain {p:?}, TLS {s:?}");
}
