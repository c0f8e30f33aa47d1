//! Waiting on several events at once: Racket's `sync` and `handle-evt`.

use std::rc::Rc;
use std::time::{Duration, Instant};

use crossbeam_channel::Receiver;

use crate::channel::{Direction, PlaceChannel, Rx, Tx};
use crate::context::{self, Never, PlaceContext};
use crate::error::ChannelError;
use crate::place::DeadEvt;
use crate::transport::Item;

/// Waits until one of several events is ready: a message on a place channel, the end of a place,
/// or a timeout. The [`sync!`](crate::sync) macro is the convenient form; `Select` is the builder
/// for lists only known at run time.
///
/// Register each event and keep its index; [`select`](Self::select) blocks until one is ready and
/// returns it as a [`SelectedEvent`], which must then be completed with the same channel or event
/// (`recv` or `dead`). When several events are ready at once, one is picked at random, so no
/// channel can starve the others (Racket's fair choice).
///
/// Inside a place, a select also ends the place at once if it is [killed](crate::Place::kill).
///
/// # Examples
///
/// A server loop over a run-time list of channels:
///
/// ```
/// use places::{place_channel, PlaceChannel, Select};
///
/// let pairs: Vec<_> = (0..3).map(|_| place_channel::<u32, u32>()).collect();
/// let (mine, theirs): (Vec<PlaceChannel<u32>>, Vec<PlaceChannel<u32>>) = pairs.into_iter().unzip();
/// theirs[2].put(7).unwrap();
///
/// let mut sel = Select::new();
/// for ch in &mine {
///     sel.recv(ch);
/// }
/// let ev = sel.select();
/// let i = ev.index();
/// assert_eq!((i, ev.recv(&mine[i]).unwrap()), (2, 7));
/// ```
pub struct Select<'a> {
    handles: Vec<Handle<'a>>,
    /// The place context of the thread that made the select, for the kill signal.
    ctx: Option<Rc<PlaceContext>>,
}

impl Default for Select<'_> {
    fn default() -> Self {
        Self::new()
    }
}

/// Something a crossbeam select can wait on.
trait Registrable {
    fn register<'s>(&'s self, sel: &mut crossbeam_channel::Select<'s>) -> usize;
}

impl<T> Registrable for Receiver<T> {
    fn register<'s>(&'s self, sel: &mut crossbeam_channel::Select<'s>) -> usize {
        sel.recv(self)
    }
}

/// One registered event.
enum Handle<'a> {
    /// Completed by the caller, with `SelectedEvent::recv` or `dead`.
    Plain(&'a dyn Registrable),
    /// A local channel, which is also ready when a message its end put was dropped on the way
    /// to where its peer went (another node): `recv` then reports that drop.
    Local {
        rx: &'a dyn Registrable,
        faults: &'a Direction,
        /// Takes the recorded fault as the error that reports it (naming the message type).
        take_fault: Box<dyn Fn() -> Option<ChannelError> + 'a>,
    },
    /// A channel fed from another node: its message is taken and decoded by the select itself
    /// (an undecodable one is dropped and the select goes on waiting), and kept for `recv`.
    Remote {
        queue: &'a Receiver<Item>,
        take: Box<dyn Fn(Item) -> bool + 'a>,
    },
}

impl<'a> Select<'a> {
    /// An empty select.
    pub fn new() -> Self {
        Self {
            handles: Vec::new(),
            ctx: context::current(),
        }
    }

    /// Adds "a message is ready on `ch`" and returns the event's index.
    pub fn recv<S, R>(&mut self, ch: &'a PlaceChannel<S, R>) -> usize {
        self.handles.push(match ch.rx() {
            Rx::Local { rx, .. } => match ch.tx() {
                Tx::Local { peer_waker, .. } => Handle::Local {
                    rx,
                    faults: peer_waker,
                    take_fault: Box::new(move || ch.local_fault()),
                },
                Tx::Remote { .. } => Handle::Plain(rx),
            },
            Rx::Remote { endpoint, .. } => Handle::Remote {
                queue: endpoint.queue(),
                take: Box::new(move |item| match ch.take_item(item) {
                    Some(done) => {
                        ch.stash(done);
                        true
                    }
                    None => false,
                }),
            },
        });
        self.handles.len() - 1
    }

    /// Adds "the place of `evt` has ended" and returns the event's index.
    pub fn dead(&mut self, evt: &'a DeadEvt) -> usize {
        self.handles.push(Handle::Plain(evt.receiver()));
        self.handles.len() - 1
    }

    /// Blocks until an event is ready.
    ///
    /// # Panics
    ///
    /// If no event was added: such a select could never return.
    pub fn select(&mut self) -> SelectedEvent<'_> {
        assert!(
            !self.handles.is_empty(),
            "select on no events would block forever"
        );
        match self.run(None) {
            Some(ev) => ev,
            None => unreachable!("a select without a deadline always selects"),
        }
    }

    /// Blocks until an event is ready or `timeout` has passed. A zero timeout polls.
    ///
    /// # Errors
    ///
    /// [`ChannelError::Timeout`] when nothing became ready in time.
    pub fn select_timeout(&mut self, timeout: Duration) -> Result<SelectedEvent<'_>, ChannelError> {
        let deadline = Instant::now().checked_add(timeout);
        self.run(deadline).ok_or(ChannelError::Timeout(timeout))
    }

    /// The event of the first local end with a recorded fault, which it takes (so that the
    /// event's `recv` reports it whatever happens to the end meanwhile), if any.
    fn faulted(&self) -> Option<SelectedEvent<'_>> {
        self.handles
            .iter()
            .enumerate()
            .find_map(|(index, h)| match h {
                Handle::Local {
                    faults, take_fault, ..
                } => take_fault().map(|e| SelectedEvent::fault(index, faults, e)),
                _ => None,
            })
    }

    fn run(&self, deadline: Option<Instant>) -> Option<SelectedEvent<'_>> {
        // In a destructor running while the place unwinds, a second unwind would abort: there
        // the kill signal is not watched.
        let watch_kill = !std::thread::panicking();
        if let Some(ctx) = self.ctx.as_ref().filter(|_| watch_kill) {
            if ctx.killed.load(std::sync::atomic::Ordering::Relaxed) {
                context::unwind_killed();
            }
        }
        loop {
            if let Some(ev) = self.faulted() {
                return Some(ev);
            }
            let mut sel = crossbeam_channel::Select::new();
            // What each registered operation stands for: its handle, and whether it is the
            // fault notice of a local end rather than the end's queue.
            let mut ops: Vec<(usize, Option<&Receiver<()>>)> = Vec::new();
            for (i, h) in self.handles.iter().enumerate() {
                match h {
                    Handle::Plain(r) => {
                        r.register(&mut sel);
                        ops.push((i, None));
                    }
                    Handle::Local { rx, faults, .. } => {
                        rx.register(&mut sel);
                        ops.push((i, None));
                        // Watched even before the end's peer is relayed: it may be relayed
                        // (and a message dropped) while this select waits.
                        let notice = faults.notice();
                        sel.recv(notice);
                        ops.push((i, Some(notice)));
                    }
                    Handle::Remote { queue, .. } => {
                        sel.recv(queue);
                        ops.push((i, None));
                    }
                }
            }
            // A fault recorded while the notices were being made is seen now.
            std::sync::atomic::fence(std::sync::atomic::Ordering::SeqCst);
            if let Some(ev) = self.faulted() {
                return Some(ev);
            }
            let kill: Option<(usize, &Receiver<Never>)> = self
                .ctx
                .as_deref()
                .filter(|_| watch_kill)
                .map(|c| (sel.recv(&c.kill), &c.kill));
            let op = match deadline {
                None => sel.select(),
                Some(d) => sel.select_deadline(d).ok()?,
            };
            if let Some((i, rx)) = kill {
                if op.index() == i {
                    let _ = op.recv(rx);
                    context::unwind_killed();
                }
            }
            let (index, notice) = ops[op.index()];
            if let Some(notice) = notice {
                let _ = op.recv(notice);
                // A notice whose fault was reported elsewhere meanwhile selects nothing.
                if let Some(ev) = self.faulted() {
                    return Some(ev);
                }
                continue;
            }
            match &self.handles[index] {
                Handle::Plain(_) | Handle::Local { .. } => {
                    return Some(SelectedEvent {
                        index,
                        op: Some(op),
                        fault: None,
                    })
                }
                Handle::Remote { queue, take } => {
                    let taken = match op.recv(queue) {
                        Ok(item) => take(item),
                        // The channel ended: `recv` on it reports how.
                        Err(_) => true,
                    };
                    if taken {
                        return Some(SelectedEvent {
                            index,
                            op: None,
                            fault: None,
                        });
                    }
                }
            }
        }
    }
}

/// The event a [`Select`] picked; complete it with the channel or event it was registered with.
/// What the select took for it (a remote channel's message, a local end's drop report) is lost
/// if it is dropped instead.
#[must_use = "a selected message must be taken with `recv`"]
pub struct SelectedEvent<'a> {
    index: usize,
    /// The operation to complete, for local channels and dead events (a remote channel's message
    /// was taken by the select already).
    op: Option<crossbeam_channel::SelectedOperation<'a>>,
    /// For a local end selected because a message it put was dropped on the way to its peer:
    /// that report (taken by the select), and the address of the end's direction, to check
    /// that `recv` is given the same end.
    fault: Option<(ChannelError, usize)>,
}

impl<'a> SelectedEvent<'a> {
    fn fault(index: usize, faults: &Direction, error: ChannelError) -> SelectedEvent<'a> {
        SelectedEvent {
            index,
            op: None,
            fault: Some((error, std::ptr::from_ref(faults) as usize)),
        }
    }
    /// The index [`Select::recv`] or [`Select::dead`] returned for this event.
    pub fn index(&self) -> usize {
        self.index
    }

    /// Takes the message from the selected channel.
    ///
    /// # Errors
    ///
    /// [`ChannelError::Closed`] if the channel became ready because its peer is gone
    /// ([`ChannelError::Lost`] for a peer on a node that is gone); [`ChannelError::Dropped`] if
    /// it became ready because a message this end put was dropped on the way to its peer (on
    /// another node), as its next `get` would report.
    ///
    /// # Panics
    ///
    /// If `ch` is not the channel registered under this event's index.
    pub fn recv<S, R>(self, ch: &PlaceChannel<S, R>) -> Result<R, ChannelError> {
        if let Some((error, at)) = self.fault {
            // Selected for a message of this end that was dropped on the way to its peer.
            match ch.tx() {
                Tx::Local { peer_waker, .. }
                    if std::ptr::from_ref::<Direction>(peer_waker) as usize == at =>
                {
                    return Err(error)
                }
                _ => panic!("SelectedEvent::recv with a channel that was not the one selected"),
            }
        }
        match (self.op, ch.rx()) {
            (Some(op), Rx::Local { rx, .. }) => {
                let v = op.recv(rx).map_err(|_| ch.local_closed())?;
                ch.after_local_take();
                Ok(v)
            }
            (None, Rx::Remote { endpoint, .. }) => match ch.take_stash() {
                Some(done) => done,
                None => Err(endpoint.closed_error()),
            },
            _ => panic!("SelectedEvent::recv with a channel that was not the one selected"),
        }
    }

    /// Completes a place-dead event and returns the place's completion value.
    ///
    /// # Panics
    ///
    /// If `evt` is not the event registered under this event's index.
    pub fn dead(self, evt: &DeadEvt) -> i32 {
        match self.op {
            Some(op) => {
                let _ = op.recv(evt.receiver());
            }
            None => panic!("SelectedEvent::dead with an event that was not the one selected"),
        }
        evt.completion().unwrap_or(1)
    }
}

/// Waits for the first of several events and runs its arm (Racket's `sync` with `handle-evt`).
///
/// Arms, in any order, separated by commas:
/// - `recv(channel) -> pattern => body`: a message (`Result<R, ChannelError>`; `Err(Closed)` when
///   the peer is gone) is ready on a [`PlaceChannel`] or [`Place`](crate::Place);
/// - `dead(dead_evt) -> pattern => body`: a place has ended; the pattern binds its completion value;
/// - `timeout(duration) => body`: nothing else became ready in time (at most one such arm).
///
/// Bodies run inline, not in closures, so they may borrow the same locals mutably, `return`,
/// `break` and use `?`. When several events are ready, one is picked at random.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use places::{place_channel, sync};
///
/// let (a, a_peer) = place_channel::<u32, u32>();
/// let (b, b_peer) = place_channel::<u32, String>();
/// b_peer.put("from b".to_string()).unwrap();
/// # let _ = (&a_peer, &a);
///
/// let mut log = Vec::new();
/// sync! {
///     recv(a) -> msg => log.push(format!("a: {msg:?}")),
///     recv(b) -> msg => log.push(format!("b: {}", msg.unwrap())),
///     timeout(Duration::from_secs(5)) => log.push("nothing".to_string()),
/// }
/// assert_eq!(log, ["b: from b"]);
/// ```
#[macro_export]
macro_rules! sync {
    // Munch one arm at a time into `[(kind, handle-binding, expr, pat, body) ...]`, taking the
    // timeout arm aside. Each step makes its own `__places_evt` binding; macro hygiene keeps the
    // bindings of different steps apart.
    (@arms [$($done:tt)*] [$($to:tt)*] recv($ch:expr) -> $p:pat => $body:block $(, $($rest:tt)*)?) => {
        $crate::sync!(@arms [$($done)* (recv __places_evt ($ch) ($p) $body)] [$($to)*] $($($rest)*)?)
    };
    (@arms [$($done:tt)*] [$($to:tt)*] recv($ch:expr) -> $p:pat => $body:expr $(, $($rest:tt)*)?) => {
        $crate::sync!(@arms [$($done)* (recv __places_evt ($ch) ($p) { $body })] [$($to)*] $($($rest)*)?)
    };
    (@arms [$($done:tt)*] [$($to:tt)*] dead($evt:expr) -> $p:pat => $body:block $(, $($rest:tt)*)?) => {
        $crate::sync!(@arms [$($done)* (dead __places_evt ($evt) ($p) $body)] [$($to)*] $($($rest)*)?)
    };
    (@arms [$($done:tt)*] [$($to:tt)*] dead($evt:expr) -> $p:pat => $body:expr $(, $($rest:tt)*)?) => {
        $crate::sync!(@arms [$($done)* (dead __places_evt ($evt) ($p) { $body })] [$($to)*] $($($rest)*)?)
    };
    (@arms [$($done:tt)*] [] timeout($d:expr) => $body:block $(, $($rest:tt)*)?) => {
        $crate::sync!(@arms [$($done)*] [($d) $body] $($($rest)*)?)
    };
    (@arms [$($done:tt)*] [] timeout($d:expr) => $body:expr $(, $($rest:tt)*)?) => {
        $crate::sync!(@arms [$($done)*] [($d) { $body }] $($($rest)*)?)
    };
    (@arms [$($done:tt)*] [$($to:tt)+] timeout $($rest:tt)*) => {
        ::core::compile_error!("`sync!` takes at most one `timeout(..)` arm")
    };
    (@arms [] [$($to:tt)*]) => {
        ::core::compile_error!("`sync!` needs at least one `recv(channel) -> msg => ..` or `dead(evt) -> code => ..` arm")
    };
    (@arms [$(($kind:ident $h:ident ($e:expr) ($p:pat) $body:block))+] [$($to:tt)*]) => {{
        $( let $h = &$e; )+
        let mut __places_select = $crate::Select::new();
        $crate::sync!(@register __places_select [] $(($kind $h))+);
        $crate::sync!(@wait __places_select [$($to)*] $(($kind $h ($p) $body))+)
    }};
    (@arms [$($done:tt)*] [$($to:tt)*] $($bad:tt)+) => {
        ::core::compile_error!(::core::concat!(
            "expected `recv(channel) -> msg => ..`, `dead(evt) -> code => ..` or `timeout(duration) => ..`, found `",
            ::core::stringify!($($bad)+), "`"
        ))
    };
    // Registration in arm order: the n-th arm gets index n.
    (@register $sel:ident [$($i:tt)*] ($kind:ident $h:ident) $($rest:tt)*) => {
        $sel.$kind($h);
        $crate::sync!(@register $sel [$($i)* _] $($rest)*)
    };
    (@register $sel:ident [$($i:tt)*]) => {};
    (@wait $sel:ident [] $($arm:tt)+) => {{
        let __places_op = $sel.select();
        $crate::sync!(@dispatch __places_op 0usize; $($arm)+)
    }};
    (@wait $sel:ident [($d:expr) $tbody:block] $($arm:tt)+) => {{
        // Bound to a local so the selected event (which borrows the select) is dropped before the
        // select itself, whatever the edition's rules for temporaries in tail expressions.
        let __places_out = match $sel.select_timeout($d) {
            ::core::result::Result::Ok(__places_op) => $crate::sync!(@dispatch __places_op 0usize; $($arm)+),
            ::core::result::Result::Err(_) => $tbody,
        };
        __places_out
    }};
    (@dispatch $op:ident $n:expr; ($kind:ident $h:ident ($p:pat) $body:block) $($rest:tt)+) => {
        if $op.index() == $n {
            let $p = $op.$kind($h);
            $body
        } else {
            $crate::sync!(@dispatch $op $n + 1usize; $($rest)+)
        }
    };
    (@dispatch $op:ident $n:expr; ($kind:ident $h:ident ($p:pat) $body:block)) => {{
        let $p = $op.$kind($h);
        $body
    }};
    ($($arms:tt)+) => {
        $crate::sync!(@arms [] [] $($arms)+)
    };
}
