//! The raw TCP baseline shared by the network benches: a blocking-socket echo on loopback.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

/// An echo server on loopback for `chunk`-byte messages (one thread per connection).
pub fn echo_server(chunk: usize) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    std::thread::spawn(move || {
        for s in listener.incoming() {
            let Ok(mut s) = s else { continue };
            let _ = s.set_nodelay(true);
            std::thread::spawn(move || {
                let mut buf = vec![0u8; chunk];
                while s.read_exact(&mut buf).is_ok() {
                    if s.write_all(&buf).is_err() {
                        return;
                    }
                }
            });
        }
    });
    addr
}

/// The mean time of `n` round trips of a `chunk`-byte message to the echo server at `addr`.
pub fn round_trips(addr: SocketAddr, chunk: usize, n: u32) -> Duration {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_nodelay(true).expect("nodelay");
    let mut buf = vec![7u8; chunk];
    s.write_all(&buf).expect("warm up");
    s.read_exact(&mut buf).expect("warm up");
    let start = Instant::now();
    for _ in 0..n {
        s.write_all(&buf).expect("write");
        s.read_exact(&mut buf).expect("read");
    }
    start.elapsed() / n
}
