//! Strangers that trickle bytes (a TLS record header, then a byte every 2 s) into a forming
//! member's port are dropped after the handshake limit (10 s), with TLS as without, so 64 of
//! them cannot keep a real member out.
use std::io::Write;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use places::net::mesh::{form_with_tls, MeshListener};
use places::{Cookie, Tls};

const LOOPBACK: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

fn handshake_threads() -> usize {
    std::fs::read_dir("/proc/self/task")
        .unwrap()
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
        .filter(|c| c.starts_with("places-mesh-han"))
        .count()
}

fn late_member_joins(tls: Option<Tls>) -> Result<(), String> {
    let secret = Cookie::random().unwrap();
    let l0 = MeshListener::bind(LOOPBACK).unwrap();
    let l1 = MeshListener::bind(LOOPBACK).unwrap();
    let addrs: Vec<SocketAddr> = vec![l0.addr(), l1.addr()];
    let stop = Arc::new(AtomicBool::new(false));
    let (s0, a0, t0) = (secret.clone(), addrs.clone(), tls.clone());
    let m0 = thread::spawn(move || {
        form_with_tls(0, &s0, l0, &a0, Duration::from_secs(45), t0.as_ref()).map(|_| ())
    });
    thread::sleep(Duration::from_millis(200));
    // 64 strangers: a TLS record header claiming 16 KiB, then a byte every 2 s.
    for _ in 0..64 {
        let (to, stop) = (addrs[0], stop.clone());
        thread::spawn(move || {
            let Ok(mut s) = TcpStream::connect(to) else {
                return;
            };
            let _ = s.write_all(&[0x16, 0x03, 0x01, 0x40, 0x00]);
            while !stop.load(Ordering::Relaxed) {
                thread::sleep(Duration::from_secs(2));
                if s.write_all(&[0]).is_err() {
                    return;
                }
            }
        });
    }
    thread::sleep(Duration::from_secs(13));
    eprintln!(
        "tls={}: {} handshake threads alive 13 s after the strangers came (limit 10 s)",
        tls.is_some(),
        handshake_threads()
    );
    let t = Instant::now();
    let r1 = form_with_tls(
        1,
        &secret,
        l1,
        &addrs,
        Duration::from_secs(10),
        tls.as_ref(),
    )
    .map(|_| ())
    .map_err(|e| e.to_string());
    eprintln!(
        "tls={}: member 1 after {:?}: {r1:?}",
        tls.is_some(),
        t.elapsed()
    );
    stop.store(true, Ordering::Relaxed);
    let _ = m0.join();
    r1
}

#[test]
fn plain_late_member_joins() {
    late_member_joins(None).unwrap();
}

#[test]
fn tls_late_member_joins() {
    late_member_joins(Some(Tls::generate().unwrap())).unwrap();
}
