//! Members of a group sending each other large messages at the same time, plain and over TLS:
//! 16 MiB each way between two, an 8 MiB all-to-all among four, small messages behind each large
//! one; everything arrives intact and in order, and nobody blocks.
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::thread;
use std::time::{Duration, Instant};

use places::net::mesh::{form_with_tls, MeshListener};
use places::{Cookie, Tls};

const LOOPBACK: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

fn run(tls: Option<Tls>, cnt: usize, len: usize, rounds: usize) -> Duration {
    let secret = Cookie::random().unwrap();
    let ls: Vec<MeshListener> = (0..cnt)
        .map(|_| MeshListener::bind(LOOPBACK).unwrap())
        .collect();
    let addrs: Vec<SocketAddr> = ls.iter().map(MeshListener::addr).collect();
    let t = Instant::now();
    let ms: Vec<_> = ls
        .into_iter()
        .enumerate()
        .map(|(rank, l)| {
            let (secret, addrs, tls) = (secret.clone(), addrs.clone(), tls.clone());
            thread::spawn(move || {
                let cg = form_with_tls(
                    rank,
                    &secret,
                    l,
                    &addrs,
                    Duration::from_secs(30),
                    tls.as_ref(),
                )
                .unwrap();
                for r in 0..rounds {
                    for to in (0..cnt).filter(|&t| t != rank) {
                        let v: Vec<u8> = (0..len).map(|i| (i + r + rank * 7) as u8).collect();
                        cg.send(to, v).unwrap();
                        // and a few small ones right behind it
                        for k in 0..10u32 {
                            cg.send(to, vec![k as u8; 100]).unwrap();
                        }
                    }
                    for from in (0..cnt).filter(|&f| f != rank) {
                        let got: Vec<u8> = cg.recv(from).unwrap();
                        assert_eq!(got.len(), len);
                        assert!(
                            got.iter()
                                .enumerate()
                                .all(|(i, &b)| b == (i + r + from * 7) as u8),
                            "round {r} from {from}"
                        );
                        for k in 0..10u32 {
                            let s: Vec<u8> = cg.recv(from).unwrap();
                            assert_eq!(s, vec![k as u8; 100]);
                        }
                    }
                }
                cg.barrier();
            })
        })
        .collect();
    for m in ms {
        m.join().unwrap();
    }
    t.elapsed()
}

#[test]
fn two_members_16mib_each_way() {
    let p = run(None, 2, 16 << 20, 3);
    let s = run(Some(Tls::generate().unwrap()), 2, 16 << 20, 3);
    eprintln!("2 members, 3 rounds of 16 MiB each way: plain {p:?}, TLS {s:?}");
}

#[test]
fn four_members_8mib_all_to_all() {
    let p = run(None, 4, 8 << 20, 2);
    let s = run(Some(Tls::generate().unwrap()), 4, 8 << 20, 2);
    eprintln!("4 members, 2 rounds all-to-all 8 MiB: plain {p:?}, TLS {s:?}");
}
