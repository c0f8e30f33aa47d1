//! The writing side of a connection.
//!
//! Threads that put a message write its frames themselves (no hand-off to another thread on the
//! way out), one frame per *turn*; turns are handed out in the order they were asked for, so a
//! large message, written fragment by fragment, lets every other sender in between. Control frames
//! (pings and pongs, closes, credits, errors, spawn answers) never wait: they are queued, and
//! whoever has the turn writes them before its own frame; when nobody has it, the one who queued
//! them writes them at once without blocking, and hands what the socket would not take to a task
//! of the event loop. So the event loop never waits for a writer, and a ping waits behind at most
//! one fragment.

use std::io::{self, IoSlice};
use std::net::{Shutdown, TcpStream};

use super::socket::Socket;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};

struct State {
    /// Encoded control frames waiting to be written, in order.
    control: Vec<u8>,
    /// Someone is writing (a thread with its turn, or a control flush).
    busy: bool,
    /// The next turn to hand out, and the turn being served.
    next: u64,
    serving: u64,
    /// Why the connection is gone, once it is.
    failed: Option<String>,
    /// Bytes of answers to the peer (pongs, errors) queued since the queue was last empty.
    replies: usize,
}

/// A connection's writer (see the module docs).
pub(crate) struct Outbox {
    stream: Arc<Socket>,
    runtime: tokio::runtime::Handle,
    /// The same socket, to shut it down without waiting for a writer that is stuck.
    closer: TcpStream,
    state: Mutex<State>,
    turn: Condvar,
    failed_flag: AtomicBool,
}

impl Outbox {
    pub(crate) fn new(
        stream: Arc<Socket>,
        runtime: tokio::runtime::Handle,
        closer: TcpStream,
    ) -> Arc<Outbox> {
        Arc::new(Outbox {
            stream,
            runtime,
            closer,
            state: Mutex::new(State {
                control: Vec::new(),
                busy: false,
                next: 0,
                serving: 0,
                failed: None,
                replies: 0,
            }),
            turn: Condvar::new(),
            failed_flag: AtomicBool::new(false),
        })
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Why the connection is gone, if it is.
    pub(crate) fn failed(&self) -> Option<String> {
        if !self.failed_flag.load(Ordering::Acquire) {
            return None;
        }
        self.state().failed.clone()
    }

    /// Ends the connection: the first reason given is kept; writers and waiters fail, and the
    /// socket is shut so that the reader sees the end.
    pub(crate) fn fail(&self, reason: &str) {
        {
            let mut st = self.state();
            if st.failed.is_none() {
                st.failed = Some(reason.to_owned());
            }
            st.control.clear();
            self.failed_flag.store(true, Ordering::Release);
            self.turn.notify_all();
        }
        let _ = self.closer.shutdown(Shutdown::Both);
    }

    /// Writes one frame, given in pieces (header, head, body), on this thread: waits for its
    /// turn, then for the socket.
    pub(crate) fn write_frame(&self, parts: &[&[u8]]) -> Result<(), String> {
        let mut st = self.state();
        if let Some(r) = &st.failed {
            return Err(r.clone());
        }
        let me = st.next;
        st.next += 1;
        while st.busy || st.serving != me {
            if let Some(r) = &st.failed {
                let r = r.clone();
                drop(st);
                self.pass_turn(me);
                return Err(r);
            }
            st = self.turn.wait(st).unwrap_or_else(PoisonError::into_inner);
        }
        st.busy = true;
        let control = std::mem::take(&mut st.control);
        drop(st);
        let mut bufs: Vec<IoSlice<'_>> = Vec::with_capacity(parts.len() + 1);
        if !control.is_empty() {
            bufs.push(IoSlice::new(&control));
        }
        bufs.extend(parts.iter().map(|p| IoSlice::new(p)));
        let mut result = write_all_blocking(&self.stream, &self.runtime, &mut bufs);
        // Control frames queued meanwhile go out before the turn passes on.
        let mut st = self.state();
        while result.is_ok() && !st.control.is_empty() && st.failed.is_none() {
            let more = std::mem::take(&mut st.control);
            drop(st);
            result = write_all_blocking(&self.stream, &self.runtime, &mut [IoSlice::new(&more)]);
            st = self.state();
        }
        st.busy = false;
        st.serving = st.serving.max(me + 1);
        self.turn.notify_all();
        drop(st);
        result.map_err(|e| {
            let why = format!("write failed: {e}");
            self.fail(&why);
            // The first reason recorded (a missed heartbeat that shut the socket, say) says
            // more than the broken pipe it caused.
            self.failed().unwrap_or(why)
        })
    }

    /// A turn given up by a writer that stopped waiting: the next one may go.
    fn pass_turn(&self, me: u64) {
        let mut st = self.state();
        if st.serving == me {
            st.serving += 1;
        }
        self.turn.notify_all();
    }

    /// How many bytes of frames wait to be written.
    pub(crate) fn backlog(&self) -> usize {
        self.state().control.len()
    }

    /// How many bytes of answers to the peer (pongs, errors) were queued since the queue was
    /// last empty: a peer that asks for answers and does not read them makes this grow.
    pub(crate) fn unread_replies(&self) -> usize {
        self.state().replies
    }

    /// Queues an answer to something the peer sent (see [`unread_replies`](Self::unread_replies)).
    pub(crate) fn reply(self: &Arc<Self>, frame: &[u8]) {
        self.state().replies += frame.len();
        self.control(frame);
    }

    /// Queues an encoded control frame; never waits (see the module docs).
    pub(crate) fn control(self: &Arc<Self>, frame: &[u8]) {
        let _ = self.queue(frame, false);
    }

    /// Queues an encoded frame behind those already queued; never waits. When nobody writes,
    /// the queue is written at once by this thread (without blocking: what the socket does not
    /// take goes to the event loop), or, with `defer`, by the event loop, so that frames queued
    /// meanwhile go out together in one write.
    pub(crate) fn queue(self: &Arc<Self>, frame: &[u8], defer: bool) -> Result<(), String> {
        let mut st = self.state();
        if let Some(r) = &st.failed {
            return Err(r.clone());
        }
        st.control.extend_from_slice(frame);
        // Someone has the turn or waits for it: they write it before their own frame.
        if st.busy || st.serving != st.next {
            return Ok(());
        }
        st.busy = true;
        let pending = std::mem::take(&mut st.control);
        drop(st);
        if defer {
            let me = self.clone();
            self.runtime
                .spawn(async move { me.flush_later(pending).await });
        } else {
            self.flush(pending);
        }
        Ok(())
    }

    /// Writes control frames without blocking while it has the writer's role; what the socket
    /// does not take goes to a task of the event loop, which gives the role back when done.
    fn flush(self: &Arc<Self>, mut pending: Vec<u8>) {
        loop {
            let mut done = 0;
            while done < pending.len() {
                match self.stream.try_write(&pending[done..]) {
                    Ok(0) => {
                        self.release();
                        return self.fail("write failed: the socket took nothing");
                    }
                    Ok(n) => done += n,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                        pending.drain(..done);
                        let me = self.clone();
                        self.runtime
                            .spawn(async move { me.flush_later(pending).await });
                        return;
                    }
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => {
                        self.release();
                        return self.fail(&format!("write failed: {e}"));
                    }
                }
            }
            match self.next_batch() {
                Some(more) => pending = more,
                None => return,
            }
        }
    }

    async fn flush_later(self: Arc<Self>, mut pending: Vec<u8>) {
        loop {
            let mut done = 0;
            while done < pending.len() {
                if let Err(e) = self.stream.writable().await {
                    self.release();
                    return self.fail(&format!("write failed: {e}"));
                }
                match self.stream.try_write(&pending[done..]) {
                    Ok(0) => {
                        self.release();
                        return self.fail("write failed: the socket took nothing");
                    }
                    Ok(n) => done += n,
                    Err(e)
                        if matches!(
                            e.kind(),
                            io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
                        ) => {}
                    Err(e) => {
                        self.release();
                        return self.fail(&format!("write failed: {e}"));
                    }
                }
            }
            match self.next_batch() {
                Some(more) => pending = more,
                None => return,
            }
        }
    }

    /// After a batch went out: what was queued meanwhile, or (when nothing was) gives the
    /// writer's role back.
    fn next_batch(&self) -> Option<Vec<u8>> {
        let mut st = self.state();
        if st.control.is_empty() || st.failed.is_some() {
            st.replies = 0;
            st.busy = false;
            self.turn.notify_all();
            return None;
        }
        Some(std::mem::take(&mut st.control))
    }

    /// Gives the writer's role back after a write failed.
    fn release(&self) {
        let mut st = self.state();
        st.busy = false;
        self.turn.notify_all();
    }
}

/// Writes all of `bufs` on a socket of the event loop, from any thread: non-blocking writes,
/// and a wait for writability when the socket is full.
fn write_all_blocking(
    stream: &Arc<Socket>,
    runtime: &tokio::runtime::Handle,
    bufs: &mut [IoSlice<'_>],
) -> io::Result<()> {
    let mut parts: &mut [IoSlice<'_>] = bufs;
    IoSlice::advance_slices(&mut parts, 0);
    while !parts.is_empty() {
        match stream.try_write_vectored(parts) {
            Ok(0) => return Err(io::Error::from(io::ErrorKind::WriteZero)),
            Ok(n) => IoSlice::advance_slices(&mut parts, n),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => wait_writable(stream, runtime)?,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Waits until `stream` can take more bytes, from whatever thread this is.
fn wait_writable(stream: &Arc<Socket>, runtime: &tokio::runtime::Handle) -> io::Result<()> {
    use tokio::runtime::{Handle, RuntimeFlavor};
    match Handle::try_current().map(|h| h.runtime_flavor()) {
        // A plain thread (a place): block on the event loop's readiness.
        Err(_) => runtime.block_on(stream.writable()),
        // A worker of a multi-threaded runtime (a user's async code): step out of it first.
        Ok(RuntimeFlavor::MultiThread) => {
            tokio::task::block_in_place(|| runtime.block_on(stream.writable()))
        }
        // Inside someone's single-threaded runtime, where blocking on another is not allowed:
        // retry shortly.
        Ok(_) => {
            std::thread::sleep(std::time::Duration::from_micros(200));
            Ok(())
        }
    }
}
