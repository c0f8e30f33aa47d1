//! A group's direct links with TLS (`mesh::form_with_tls`): members on loopback, member 0
//! reached by the others through a relay that keeps what passes. With TLS, a ring and an
//! all-to-all of large messages arrive intact and the relay sees none of their bytes; without
//! (the control) it sees them. A member without TLS cannot join a group that has it.

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use places::net::mesh::{form_with_tls, MeshListener};
use places::{Comm, Cookie, Tag, Tls};

const LOOPBACK: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);
const MARKER: &[u8] = b"GROUP-PLAINTEXT-9c2e";

/// A relay to `target` for every connection it accepts; keeps what passes both ways.
fn relay(target: SocketAddr) -> (SocketAddr, Arc<Mutex<Vec<u8>>>) {
    let l = TcpListener::bind((LOOPBACK, 0)).unwrap();
    let addr = l.local_addr().unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let kept = seen.clone();
    thread::spawn(move || {
        for client in l.incoming().take(16) {
            let Ok(client) = client else { continue };
            let Ok(node) = TcpStream::connect(target) else {
                continue;
            };
            for (mut from, mut to) in [
                (client.try_clone().unwrap(), node.try_clone().unwrap()),
                (node, client),
            ] {
                let kept = kept.clone();
                thread::spawn(move || {
                    let mut buf = vec![0u8; 64 << 10];
                    loop {
                        let n = match from.read(&mut buf) {
                            Ok(0) | Err(_) => break,
                            Ok(n) => n,
                        };
                        kept.lock().unwrap().extend_from_slice(&buf[..n]);
                        if to.write_all(&buf[..n]).is_err() {
                            break;
                        }
                    }
                    let _ = to.shutdown(std::net::Shutdown::Write);
                });
            }
        }
    });
    (addr, seen)
}

/// The block member `from` sends member `to`: the marker, repeated to `len` bytes, and a
/// trailer naming both.
fn block(from: usize, to: usize, len: usize) -> Vec<u8> {
    let mut v: Vec<u8> = MARKER.iter().copied().cycle().take(len).collect();
    v.extend_from_slice(&[from as u8, to as u8]);
    v
}

/// A ring and an all-to-all of `len`-byte blocks; returns the bytes received.
fn exchange(cg: Comm, len: usize) -> usize {
    let (id, cnt) = (cg.id(), cg.cnt());
    cg.send((id + 1) % cnt, block(id, (id + 1) % cnt, len))
        .unwrap();
    let prev = (id + cnt - 1) % cnt;
    let got: Vec<u8> = cg.recv(prev).unwrap();
    assert_eq!(got, block(prev, id, len), "ring, member {id}");
    let mut total = got.len();
    for to in (0..cnt).filter(|&to| to != id) {
        cg.send_tagged(to, Tag::user(1), block(id, to, len))
            .unwrap();
    }
    for from in (0..cnt).filter(|&from| from != id) {
        let got: Vec<u8> = cg.recv_tagged(from, Tag::user(1)).unwrap();
        assert_eq!(
            got,
            block(from, id, len),
            "all-to-all, member {id} from {from}"
        );
        total += got.len();
    }
    cg.barrier();
    total
}

/// A group of three whose members 1 and 2 reach member 0 through a relay; returns what the
/// members received and what the relay saw.
fn group_through_relay(tls: Option<Tls>, len: usize) -> (usize, Vec<u8>) {
    let secret = Cookie::random().unwrap();
    let listeners: Vec<MeshListener> = (0..3)
        .map(|_| MeshListener::bind(LOOPBACK).unwrap())
        .collect();
    let mut addrs: Vec<SocketAddr> = listeners.iter().map(MeshListener::addr).collect();
    let (via, seen) = relay(addrs[0]);
    addrs[0] = via;
    let members: Vec<_> = listeners
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
                exchange(cg, len)
            })
        })
        .collect();
    let got = members.into_iter().map(|m| m.join().unwrap()).sum();
    // The members have closed their links; the relay's last bytes are in.
    let seen = seen.lock().unwrap().clone();
    (got, seen)
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

#[test]
fn with_tls_a_relay_sees_none_of_a_groups_messages() {
    let len = 3 << 20;
    let (got, seen) = group_through_relay(Some(Tls::generate().unwrap()), len);
    // Each member receives one ring block and two all-to-all blocks.
    assert_eq!(got, 3 * 3 * (len + 2));
    // Through the relay (every link to member 0): two ring blocks (2 -> 0, 0 -> 1) and four
    // of the all-to-all.
    assert!(
        seen.len() > 6 * len,
        "the relay passed {} bytes",
        seen.len()
    );
    assert!(!contains(&seen, MARKER), "the relay read a block");
}

#[test]
fn without_tls_the_relay_sees_them() {
    let (got, seen) = group_through_relay(None, 1 << 16);
    assert_eq!(got, 3 * 3 * ((1 << 16) + 2));
    assert!(contains(&seen, MARKER));
}

#[test]
fn a_member_without_tls_cannot_join_a_group_with_it() {
    let secret = Cookie::random().unwrap();
    let l0 = MeshListener::bind(LOOPBACK).unwrap();
    let l1 = MeshListener::bind(LOOPBACK).unwrap();
    let addrs = vec![l0.addr(), l1.addr()];
    let tls = Tls::generate().unwrap();
    let limit = Duration::from_secs(4);
    let (s0, a0) = (secret.clone(), addrs.clone());
    let member0 =
        thread::spawn(move || form_with_tls(0, &s0, l0, &a0, limit, Some(&tls)).map(|_| ()));
    let err = form_with_tls(1, &secret, l1, &addrs, limit, None).unwrap_err();
    assert!(err.to_string().contains("member 1"), "{err}");
    let err0 = member0.join().unwrap().unwrap_err();
    assert!(err0.to_string().contains("did not connect"), "{err0}");
}
