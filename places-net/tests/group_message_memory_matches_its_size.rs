//! A large message a group member receives takes about its size in memory, plain and over TLS
//! (a body that grew by doubling could take twice the queue limit).
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::thread;
use std::time::Duration;

use places::net::mesh::{form_with_tls, MeshListener};
use places::{Cookie, Tls};

fn cap(tls: Option<Tls>, len: usize) -> usize {
    let secret = Cookie::random().unwrap();
    let ls: Vec<MeshListener> = (0..2)
        .map(|_| MeshListener::bind(IpAddr::V4(Ipv4Addr::LOCALHOST)).unwrap())
        .collect();
    let addrs: Vec<SocketAddr> = ls.iter().map(MeshListener::addr).collect();
    let mut hs = Vec::new();
    for (rank, l) in ls.into_iter().enumerate() {
        let (secret, addrs, tls) = (secret.clone(), addrs.clone(), tls.clone());
        hs.push(thread::spawn(move || {
            let cg = form_with_tls(
                rank,
                &secret,
                l,
                &addrs,
                Duration::from_secs(30),
                tls.as_ref(),
            )
            .unwrap();
            let c = if rank == 0 {
                cg.send(1, vec![5u8; len]).unwrap();
                0
            } else {
                let v: Vec<u8> = cg.recv(0).unwrap();
                assert_eq!(v.len(), len);
                v.capacity()
            };
            cg.barrier();
            c
        }));
    }
    hs.into_iter().map(|h| h.join().unwrap()).sum()
}

#[test]
fn a_received_message_takes_its_size() {
    let len = (8 << 20) + 2;
    let (plain, tls) = (cap(None, len), cap(Some(Tls::generate().unwrap()), len));
    eprintln!("{len} bytes received: capacity plain {plain}, TLS {tls}");
    for c in [plain, tls] {
        assert!(
            c >= len && c <= len + (64 << 10),
            "capacity {c} for {len} bytes"
        );
    }
}
