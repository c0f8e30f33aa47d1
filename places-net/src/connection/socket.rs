//! The socket under a connection: plain TCP, or TCP carrying TLS.
//!
//! Both offer what the reader and the outbox need: non-blocking reads and writes that say
//! `WouldBlock` when nothing can move now, and readiness to wait for. The socket is registered
//! with the event loop for writability only; reading has a registration of its own
//! ([`Reads`], on a second handle of the socket) that the reading task drops while threads that
//! wait for messages read the socket themselves, so that bytes arriving then wake nobody else
//! (see [`direct`](super::direct)). With TLS, one rustls session (behind a lock, held for one
//! record's worth of work) serves the reader and every writing thread: a write encrypts what it
//! is given and sends what the socket takes; ciphertext the socket did not take stays in the
//! session, goes out before anything written later, and is flushed by a task of the event loop
//! if no later write comes.

use std::io::{self, IoSlice, Read, Write};
use std::net::TcpStream;
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use bytes::BufMut;
use tokio::io::unix::AsyncFd;
use tokio::io::Interest;

/// A connection's socket.
pub(crate) struct Socket {
    /// The socket (non-blocking), registered for writability only.
    tcp: AsyncFd<TcpStream>,
    tls: Option<TlsState>,
}

/// The event loop's registration for reading a socket, on a second handle of it.
pub(crate) struct Reads {
    fd: AsyncFd<TcpStream>,
}

impl Reads {
    /// Waits until the socket may have bytes to read.
    pub(crate) async fn readable(&self) -> io::Result<()> {
        let mut ready = self.fd.readable().await?;
        // Whoever reads next reads until `WouldBlock`; readiness that comes after this is kept.
        ready.clear_ready();
        Ok(())
    }

    /// Drops the registration (the event loop no longer hears of the socket's bytes), keeping
    /// the handle for a registration later.
    pub(crate) fn unregister(self) -> TcpStream {
        self.fd.into_inner()
    }
}

struct TlsState {
    session: Mutex<rustls::Connection>,
    /// A task is flushing ciphertext that a write left behind.
    flushing: AtomicBool,
    runtime: tokio::runtime::Handle,
}

/// The TCP socket as rustls's reader and writer: its non-blocking calls.
struct Raw<'a>(&'a AsyncFd<TcpStream>);

impl Read for Raw<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let mut s = self.0.get_ref();
        s.read(buf)
    }
}

impl Write for Raw<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.write_vectored(&[IoSlice::new(buf)])
    }
    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        write_vectored(self.0, bufs)
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Writes some of `bufs` without blocking, as `tokio::net::TcpStream::try_write_vectored`: a
/// write that would block clears the socket's writability, so that a wait for it waits for
/// the socket to drain.
fn write_vectored(tcp: &AsyncFd<TcpStream>, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
    tcp.try_io(Interest::WRITABLE, |t| {
        let mut t = t;
        t.write_vectored(bufs)
    })
}

/// Registers `tcp` with the event loop (whose context this must be called in) for `interest`.
fn register(tcp: TcpStream, interest: Interest) -> io::Result<AsyncFd<TcpStream>> {
    // SAFETY: a `TcpStream` owns its descriptor: it stays open, and the same, for as long as
    // the stream lives, which is as long as the `AsyncFd` that owns it.
    unsafe { AsyncFd::register_with_interest(tcp, interest) }.map_err(|e| e.into_parts().1)
}

/// Reads what the socket has into the room `buf` has (`Ok(0)` at the end of the stream).
fn read_buf<B: BufMut>(tcp: &TcpStream, buf: &mut B) -> io::Result<usize> {
    let room = buf.chunk_mut();
    // SAFETY: `recv` writes at most `room.len()` bytes into the room the buffer gave, which
    // stays valid for the call; `advance_mut` then counts only the bytes it wrote.
    let n = unsafe {
        libc::recv(
            tcp.as_raw_fd(),
            room.as_mut_ptr().cast(),
            room.len(),
            libc::MSG_DONTWAIT,
        )
    };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    let n = n as usize;
    // SAFETY: the first `n` bytes of the room were written by `recv` above.
    unsafe { buf.advance_mut(n) };
    Ok(n)
}

fn lock(m: &Mutex<rustls::Connection>) -> MutexGuard<'_, rustls::Connection> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

fn tls_error(e: rustls::Error) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("TLS: {e}"))
}

impl Socket {
    /// A plain TCP socket (made non-blocking); must be called inside the event loop's context.
    pub(crate) fn plain(tcp: TcpStream) -> io::Result<Socket> {
        tcp.set_nonblocking(true)?;
        Ok(Socket {
            tcp: register(tcp, Interest::WRITABLE)?,
            tls: None,
        })
    }

    /// A socket whose TLS session (handshake done) is `session`; must be called inside the
    /// event loop's context.
    pub(crate) fn tls(
        tcp: TcpStream,
        session: rustls::Connection,
        runtime: tokio::runtime::Handle,
    ) -> io::Result<Socket> {
        tcp.set_nonblocking(true)?;
        Ok(Socket {
            tcp: register(tcp, Interest::WRITABLE)?,
            tls: Some(TlsState {
                session: Mutex::new(session),
                flushing: AtomicBool::new(false),
                runtime,
            }),
        })
    }

    /// Whether the socket carries TLS.
    pub(crate) fn is_tls(&self) -> bool {
        self.tls.is_some()
    }

    /// A second handle of the socket, for [`register_reads`](Self::register_reads).
    pub(crate) fn second_handle(&self) -> io::Result<TcpStream> {
        self.tcp.get_ref().try_clone()
    }

    /// Registers `handle` (see [`second_handle`](Self::second_handle)) with the event loop for
    /// reading; must be called inside the event loop's context.
    pub(crate) fn register_reads(handle: TcpStream) -> io::Result<Reads> {
        Ok(Reads {
            fd: register(handle, Interest::READABLE)?,
        })
    }

    /// Whether a TLS session holds plaintext already read from the socket (which no readiness
    /// of the socket announces).
    pub(crate) fn holds_plaintext(&self) -> bool {
        let Some(t) = &self.tls else { return false };
        lock(&t.session)
            .process_new_packets()
            .map(|st| st.plaintext_bytes_to_read() > 0)
            .unwrap_or(true)
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
                if me.writable().await.is_err() {
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
            return write_vectored(&self.tcp, bufs);
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
            return read_buf(self.tcp.get_ref(), buf);
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

    /// Waits until a write may take something.
    pub(crate) async fn writable(&self) -> io::Result<()> {
        // A write that would block clears the readiness (see `write_vectored`).
        self.tcp.writable().await.map(drop)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;
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
        let rt = crate::event_loop::runtime().unwrap();
        let _in = rt.enter();
        (
            Arc::new(Socket::tls(c, session.into(), rt.handle().clone()).unwrap()),
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
