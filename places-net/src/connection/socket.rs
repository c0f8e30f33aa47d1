//! The socket under a connection: plain TCP, or TCP carrying TLS.
//!
//! Both offer what the reader and the outbox use of a tokio socket: non-blocking reads and
//! writes that say `WouldBlock` when nothing can move now, and readiness to wait for. With TLS,
//! one rustls session (behind a lock, held for one record's worth of work) serves the reading
//! task and every writing thread: a write encrypts what it is given and sends what the socket
//! takes; ciphertext the socket did not take stays in the session, goes out before anything
//! written later, and is flushed by a task of the event loop if no later write comes.

use std::io::{self, IoSlice, Read, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use bytes::BufMut;

/// A connection's socket.
pub(crate) struct Socket {
    tcp: tokio::net::TcpStream,
    tls: Option<TlsState>,
}

struct TlsState {
    session: Mutex<rustls::Connection>,
    /// A task is flushing ciphertext that a write left behind.
    flushing: AtomicBool,
    runtime: tokio::runtime::Handle,
}

/// The TCP socket as rustls's reader and writer: its non-blocking calls.
struct Raw<'a>(&'a tokio::net::TcpStream);

impl Read for Raw<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.try_read(buf)
    }
}

impl Write for Raw<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.try_write(buf)
    }
    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        self.0.try_write_vectored(bufs)
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

fn lock(m: &Mutex<rustls::Connection>) -> MutexGuard<'_, rustls::Connection> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

fn tls_error(e: rustls::Error) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("TLS: {e}"))
}

impl Socket {
    /// A plain TCP socket.
    pub(crate) fn plain(tcp: tokio::net::TcpStream) -> Socket {
        Socket { tcp, tls: None }
    }

    /// A socket whose TLS session (handshake done) is `session`.
    pub(crate) fn tls(
        tcp: tokio::net::TcpStream,
        session: rustls::Connection,
        runtime: tokio::runtime::Handle,
    ) -> Socket {
        Socket {
            tcp,
            tls: Some(TlsState {
                session: Mutex::new(session),
                flushing: AtomicBool::new(false),
                runtime,
            }),
        }
    }

    /// Whether the socket carries TLS.
    pub(crate) fn is_tls(&self) -> bool {
        self.tls.is_some()
    }

    /// Sends ciphertext the session holds; `WouldBlock` if some is left.
    fn flush_tls(&self, session: &mut rustls::Connection) -> io::Result<()> {
        while session.wants_write() {
            session.write_tls(&mut Raw(&self.tcp))?;
        }
        Ok(())
    }

    /// After a write or a read made ciphertext the socket did not take: a task sends it when the
    /// socket can take it (unless one already does, or a later write will).
    fn flush_later(self: &Arc<Self>, t: &TlsState) {
        if t.flushing.swap(true, Ordering::AcqRel) {
            return;
        }
        let me = self.clone();
        t.runtime.spawn(async move {
            let Some(t) = me.tls.as_ref() else { return };
            let flushed = loop {
                if me.tcp.writable().await.is_err() {
                    break false;
                }
                let mut s = lock(&t.session);
                match me.flush_tls(&mut s) {
                    Ok(()) => break true,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                    // The link is broken: what is left will never go (the connection fails
                    // through its own reads and writes).
                    Err(_) => break false,
                }
            };
            t.flushing.store(false, Ordering::Release);
            // A write that came in between may have left ciphertext and seen the flag set.
            if flushed && lock(&t.session).wants_write() {
                me.flush_later(t);
            }
        });
    }

    /// Writes some of `buf`, as `TcpStream::try_write`.
    pub(crate) fn try_write(self: &Arc<Self>, buf: &[u8]) -> io::Result<usize> {
        self.try_write_vectored(&[IoSlice::new(buf)])
    }

    /// Writes some of `bufs`, as `TcpStream::try_write_vectored`.
    pub(crate) fn try_write_vectored(self: &Arc<Self>, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        let Some(t) = &self.tls else {
            return self.tcp.try_write_vectored(bufs);
        };
        let mut s = lock(&t.session);
        // What earlier writes left goes first; until it has gone, nothing new is taken.
        self.flush_tls(&mut s)?;
        let taken = crate::tls::take_plaintext(&mut s, bufs)?;
        match self.flush_tls(&mut s) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                drop(s);
                self.flush_later(t);
            }
            Err(e) => return Err(e),
        }
        Ok(taken)
    }

    /// Reads into `buf`, as `TcpStream::try_read_buf` (`Ok(0)` at the end of the stream).
    pub(crate) fn try_read_buf<B: BufMut>(self: &Arc<Self>, buf: &mut B) -> io::Result<usize> {
        let Some(t) = &self.tls else {
            return self.tcp.try_read_buf(buf);
        };
        let mut plain = [0u8; 16 << 10];
        let mut s = lock(&t.session);
        loop {
            let room = buf.remaining_mut().min(plain.len());
            match s.reader().read(&mut plain[..room]) {
                Ok(n) => {
                    buf.put_slice(&plain[..n]);
                    return Ok(n);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Err(e),
            }
            if s.read_tls(&mut Raw(&self.tcp))? == 0 {
                return Ok(0);
            }
            let processed = s.process_new_packets().map_err(tls_error);
            // Alerts, key updates and tickets are ciphertext to send.
            if s.wants_write() {
                match self.flush_tls(&mut s) {
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                        drop(s);
                        self.flush_later(t);
                        s = lock(&t.session);
                    }
                    _ => {}
                }
            }
            processed?;
        }
    }

    /// Waits until a read may find something.
    pub(crate) async fn readable(&self) -> io::Result<()> {
        if let Some(t) = &self.tls {
            let buffered = lock(&t.session)
                .process_new_packets()
                .map(|st| st.plaintext_bytes_to_read() > 0)
                .unwrap_or(true);
            if buffered {
                return Ok(());
            }
        }
        self.tcp.readable().await
    }

    /// Waits until a write may take something.
    pub(crate) async fn writable(&self) -> io::Result<()> {
        self.tcp.writable().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{TcpListener, TcpStream};
    use std::time::{Duration, Instant};

    fn cpu_seconds() -> f64 {
        let mut r: libc::rusage = unsafe { std::mem::zeroed() };
        unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut r) };
        let t = |v: libc::timeval| v.tv_sec as f64 + v.tv_usec as f64 / 1e6;
        t(r.ru_utime) + t(r.ru_stime)
    }

    /// A TLS pair over loopback: the client as a Socket of the event loop, the server's raw
    /// TCP stream and its session (handshake done on blocking sockets).
    pub(super) fn tls_pair() -> (Arc<Socket>, TcpStream, rustls::ServerConnection) {
        let tls = crate::tls::Tls::generate().unwrap();
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let server_tls = tls.clone();
        let server = std::thread::spawn(move || {
            let (mut s, _) = l.accept().unwrap();
            let mut conn = rustls::ServerConnection::new(server_tls.server_config()).unwrap();
            while conn.is_handshaking() {
                conn.complete_io(&mut s).unwrap();
            }
            while conn.wants_write() {
                conn.write_tls(&mut s).unwrap();
            }
            (s, conn)
        });
        let mut c = TcpStream::connect(addr).unwrap();
        let mut session = tls.client_connection().unwrap();
        while session.is_handshaking() {
            session.complete_io(&mut c).unwrap();
        }
        let (s, sconn) = server.join().unwrap();
        let sock = socket2::SockRef::from(&c);
        let _ = sock.set_send_buffer_size(16 << 10);
        c.set_nonblocking(true).unwrap();
        let rt = crate::event_loop::runtime().unwrap();
        let _in = rt.enter();
        let tcp = tokio::net::TcpStream::from_std(c).unwrap();
        (
            Arc::new(Socket::tls(tcp, session.into(), rt.handle().clone())),
            s,
            sconn,
        )
    }

    /// Ciphertext left in the session when the link breaks: the flush task must end, not
    /// spawn itself again forever (a spinning event loop, and a socket never closed).
    #[test]
    fn a_flush_left_by_a_broken_link_ends() {
        let (sock, server, _sconn) = tls_pair();
        let buf = vec![7u8; 64 << 10];
        // Write until the socket is full (the server reads nothing) and ciphertext is left.
        let mut wrote = 0usize;
        loop {
            match sock.try_write(&buf) {
                Ok(n) => wrote += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) => panic!("{e}"),
            }
        }
        assert!(lock(&sock.tls.as_ref().unwrap().session).wants_write());
        eprintln!("wrote {wrote} bytes of plaintext before the socket filled");
        // The peer resets the connection.
        socket2::SockRef::from(&server)
            .set_linger(Some(Duration::ZERO))
            .unwrap();
        drop(server);
        std::thread::sleep(Duration::from_millis(300));
        let weak = Arc::downgrade(&sock);
        drop(sock);
        let (cpu0, t0) = (cpu_seconds(), Instant::now());
        std::thread::sleep(Duration::from_secs(2));
        let cpu = cpu_seconds() - cpu0;
        eprintln!(
            "after the reset: {cpu:.2} s of CPU in {:.2} s; the socket is {}",
            t0.elapsed().as_secs_f64(),
            if weak.upgrade().is_some() {
                "still alive"
            } else {
                "freed"
            }
        );
        // (The CPU figure is printed, not checked: other tests share the process.)
        assert!(
            weak.upgrade().is_none(),
            "the socket is kept alive by flush tasks"
        );
    }
}
