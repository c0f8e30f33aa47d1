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

/// Plaintext a TLS write takes at a time (four records).
const TLS_CHUNK: usize = 64 << 10;

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
            loop {
                if me.tcp.writable().await.is_err() {
                    break;
                }
                let mut s = lock(&t.session);
                match me.flush_tls(&mut s) {
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                    _ => break,
                }
            }
            t.flushing.store(false, Ordering::Release);
            // A write that came in between may have left ciphertext and seen the flag set.
            let left = lock(&t.session).wants_write();
            if left {
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
        let mut taken = 0;
        for b in bufs {
            if taken >= TLS_CHUNK {
                break;
            }
            let n = s.writer().write(&b[..b.len().min(TLS_CHUNK - taken)])?;
            taken += n;
            if n < b.len() {
                break;
            }
        }
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
