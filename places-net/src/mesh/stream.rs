//! The socket of one direct link: plain TCP, or TCP carrying TLS (when the cluster uses it,
//! [`use_cluster_tls`](crate::use_cluster_tls)).
//!
//! Non-blocking like the plain socket: a read or write that cannot move now says
//! `WouldBlock`. With TLS, plaintext may wait in the session after the socket is drained
//! ([`buffered`](MeshStream::buffered)), and ciphertext a full socket did not take waits there
//! until [`flush`](MeshStream::flush) sends it.

use std::io::{self, IoSlice, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::os::fd::{AsRawFd, RawFd};

/// A direct link's socket.
pub(crate) struct MeshStream {
    tcp: TcpStream,
    tls: Option<Box<rustls::Connection>>,
}

fn tls_error(e: rustls::Error) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("TLS: {e}"))
}

impl MeshStream {
    pub(crate) fn plain(tcp: TcpStream) -> Self {
        MeshStream { tcp, tls: None }
    }

    pub(crate) fn tls(tcp: TcpStream, session: rustls::Connection) -> Self {
        MeshStream {
            tcp,
            tls: Some(Box::new(session)),
        }
    }

    pub(crate) fn tcp(&self) -> &TcpStream {
        &self.tcp
    }

    pub(crate) fn is_tls(&self) -> bool {
        self.tls.is_some()
    }

    /// Whether plaintext waits in the TLS session (a read finds it without the socket).
    pub(crate) fn buffered(&mut self) -> bool {
        self.tls.as_mut().is_some_and(|s| {
            s.process_new_packets()
                .map(|st| st.plaintext_bytes_to_read() > 0)
                .unwrap_or(true)
        })
    }

    /// Sends waiting ciphertext; `WouldBlock` if some is left.
    pub(crate) fn flush(&mut self) -> io::Result<()> {
        if let Some(s) = &mut self.tls {
            while s.wants_write() {
                s.write_tls(&mut &self.tcp)?;
            }
        }
        Ok(())
    }

    /// Reads plaintext, as a non-blocking socket's `read` (`Ok(0)` at the end of the stream).
    pub(crate) fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let Some(s) = &mut self.tls else {
            return (&self.tcp).read(buf);
        };
        loop {
            match s.reader().read(buf) {
                Ok(n) => return Ok(n),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Err(e),
            }
            if s.read_tls(&mut &self.tcp)? == 0 {
                return Ok(0);
            }
            let processed = s.process_new_packets().map_err(tls_error);
            // Alerts and key updates to answer: sent now if the socket takes them, else with
            // the next write.
            while s.wants_write() {
                if s.write_tls(&mut &self.tcp).is_err() {
                    break;
                }
            }
            processed?;
        }
    }

    /// Writes some of `bufs`, as a non-blocking socket's `write_vectored`. With TLS, what it
    /// takes may still wait in the session: [`flush`](Self::flush) until it has gone.
    pub(crate) fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        let Some(s) = &mut self.tls else {
            return (&self.tcp).write_vectored(bufs);
        };
        while s.wants_write() {
            s.write_tls(&mut &self.tcp)?;
        }
        let taken = crate::tls::take_plaintext(s, bufs)?;
        while s.wants_write() {
            match s.write_tls(&mut &self.tcp) {
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) => return Err(e),
            }
        }
        Ok(taken)
    }

    /// Closes the sending half (with TLS, after a close notification, if the socket takes it).
    pub(crate) fn shutdown_write(&mut self) {
        if let Some(s) = &mut self.tls {
            s.send_close_notify();
            let _ = self.flush();
        }
        let _ = self.tcp.shutdown(Shutdown::Write);
    }
}

/// Blocking use, for the handshakes (on a socket in blocking mode, with timeouts).
impl Read for MeshStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        MeshStream::read(self, buf)
    }
}

impl Write for MeshStream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.write_vectored(&[IoSlice::new(buf)])?;
        MeshStream::flush(self)?;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        MeshStream::flush(self)
    }
}

impl MeshStream {
    /// Runs the TLS handshake of a fresh link, in blocking mode (the socket's timeouts bound
    /// it): `tls` as the client when `connecting`, else as the server.
    pub(crate) fn secure(
        tcp: TcpStream,
        tls: Option<&crate::tls::Tls>,
        connecting: bool,
        until: std::time::Instant,
    ) -> io::Result<MeshStream> {
        let Some(tls) = tls else {
            return Ok(MeshStream::plain(tcp));
        };
        let other = |e: crate::error::NetError| io::Error::other(e.to_string());
        let mut session: rustls::Connection = if connecting {
            tls.client_connection().map_err(other)?.into()
        } else {
            rustls::ServerConnection::new(tls.server_config())
                .map_err(tls_error)?
                .into()
        };
        let mut tcp = tcp;
        while session.is_handshaking() {
            // However slowly the peer's bytes come, the handshake ends by `until`.
            let left = until.saturating_duration_since(std::time::Instant::now());
            if left.is_zero() {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "the TLS handshake did not finish in time",
                ));
            }
            tcp.set_read_timeout(Some(left))?;
            tcp.set_write_timeout(Some(left))?;
            // One read or write at a time (not `complete_io`, which goes on reading as long as
            // bytes trickle in), so that the deadline is looked at between them.
            let step = if session.wants_write() {
                session.write_tls(&mut tcp).map(|_| ())
            } else {
                match session.read_tls(&mut tcp) {
                    Ok(0) => Err(io::ErrorKind::UnexpectedEof.into()),
                    Ok(_) => session.process_new_packets().map(|_| ()).map_err(|e| {
                        // The alert that says why goes out if it can.
                        while session.wants_write() {
                            if session.write_tls(&mut tcp).is_err() {
                                break;
                            }
                        }
                        tls_error(e)
                    }),
                    Err(e) => Err(e),
                }
            };
            step.map_err(|e| {
                io::Error::new(
                    if e.kind() == io::ErrorKind::WouldBlock {
                        io::ErrorKind::TimedOut
                    } else {
                        e.kind()
                    },
                    format!("the TLS handshake failed: {e}"),
                )
            })?;
        }
        // What the handshake's last flight left to send (the client's Finished, say).
        while session.wants_write() {
            session.write_tls(&mut tcp)?;
        }
        Ok(MeshStream::tls(tcp, session))
    }
}

impl AsRawFd for MeshStream {
    fn as_raw_fd(&self) -> RawFd {
        self.tcp.as_raw_fd()
    }
}
