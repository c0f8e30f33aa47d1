//! The channels of one link, by id: where each arriving frame goes, and the bookkeeping of
//! closes (see the rules in the [module docs](super)).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use super::handoff::is_token;
use super::{Control, Endpoint, Incoming, LinkRef, Window};

enum Slot {
    Open(Arc<Endpoint>),
    /// Registered when the message carrying it arrived, not claimed by a decode yet.
    Pending(Arc<Endpoint>),
    /// Closed here, the peer's `Close` not arrived yet: data still in flight is dropped quietly.
    Closed,
}

#[derive(Default)]
struct State {
    slots: HashMap<u64, Slot>,
    lost: Option<String>,
}

/// The channels of one link by id. The network layer hands it every frame that concerns a
/// channel; endpoints register, claim and close themselves in it.
#[derive(Default)]
pub struct ChannelTable {
    state: Mutex<State>,
}

/// What became of a message handed to [`ChannelTable::complete`].
#[derive(Debug, PartialEq, Eq)]
pub enum Delivery {
    /// Queued for its channel's consumer.
    Queued,
    /// Its channel closed meanwhile: dropped (closing the channels it carried).
    DroppedClosed,
}

/// Closes ids this side never registered (the channels inside a message it drops), and the
/// ends handed over for the tokens among them.
fn close_all(link: &LinkRef, ids: &[u64]) {
    for &c in ids {
        if is_token(c) {
            super::handoff::abandon(c);
        } else {
            link.send_control(c, Control::Close);
        }
    }
}

impl ChannelTable {
    /// An empty table.
    pub fn new() -> Self {
        Self::default()
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Registers `endpoint` under its id. On a lost link it is closed at once instead.
    pub fn register(&self, endpoint: Arc<Endpoint>) {
        let mut st = self.state();
        if let Some(reason) = st.lost.clone() {
            drop(st);
            endpoint.lose(&reason);
            return;
        }
        st.slots.insert(endpoint.id(), Slot::Open(endpoint));
    }

    /// Whether `id` is in use (open, pending or closed) on this link.
    pub fn is_known(&self, id: u64) -> bool {
        self.state().slots.contains_key(&id)
    }

    /// How many ids are in use, tombstones included.
    pub fn len(&self) -> usize {
        self.state().slots.len()
    }

    /// Whether no id is in use.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Claims the pending endpoint of a channel that arrived inside a message; `None` if `id` is
    /// not pending (never carried, or claimed already).
    pub(crate) fn claim(&self, id: u64) -> Option<Arc<Endpoint>> {
        let ep = self.claim_moving(id)?;
        ep.let_queue_end();
        Some(ep)
    }

    /// Claims a pending endpoint that is to get a successor (see
    /// [`Endpoint::set_successor`]): its queue stays open if its peer closes meanwhile.
    pub(crate) fn claim_moving(&self, id: u64) -> Option<Arc<Endpoint>> {
        let mut st = self.state();
        let ep = match st.slots.get(&id) {
            Some(Slot::Pending(ep)) => ep.clone(),
            _ => return None,
        };
        ep.keep_queue_open();
        st.slots.insert(id, Slot::Open(ep.clone()));
        Some(ep)
    }

    /// A carried channel that will never be claimed: closes it if it is still pending.
    pub(crate) fn abandon(&self, id: u64) {
        if is_token(id) {
            return super::handoff::abandon(id);
        }
        let ep = match self.state().slots.get(&id) {
            Some(Slot::Pending(ep)) => ep.clone(),
            _ => return,
        };
        Endpoint::close_soon(ep);
    }

    /// Forgets `endpoint`'s id altogether (see `Endpoint::discard`).
    pub(crate) fn forget(&self, endpoint: &Endpoint) {
        let mut st = self.state();
        if let Some(Slot::Open(e) | Slot::Pending(e)) = st.slots.get(&endpoint.id()) {
            if std::ptr::eq(&**e, endpoint) {
                st.slots.remove(&endpoint.id());
            }
        }
    }

    /// `endpoint` was closed here: remember the id until the peer's `Close` (or forget it when
    /// that came first), and tell the peer.
    pub(crate) fn local_close(&self, endpoint: &Endpoint) {
        let id = endpoint.id();
        let lost = {
            let mut st = self.state();
            let ours = match st.slots.get(&id) {
                Some(Slot::Open(e) | Slot::Pending(e)) => std::ptr::eq(&**e, endpoint),
                _ => false,
            };
            if ours {
                if endpoint.peer_has_closed() {
                    st.slots.remove(&id);
                } else {
                    st.slots.insert(id, Slot::Closed);
                }
            }
            st.lost.is_some()
        };
        if !lost {
            endpoint.link().send_control(id, Control::Close);
        }
    }

    /// The first frame of a message (of `len` body bytes) arrived on channel `id`: registers the
    /// channel ends it carries as pending and counts it against the channel's credit. Returns the
    /// message, to be filled with its body and handed to [`complete`](Self::complete) (dropping
    /// it instead closes the channels it carries), or `None` when it is dropped: its channel is
    /// closed here (quietly), or it was refused (the sender is told why with an `Error` frame).
    /// Never waits.
    pub fn begin(
        &self,
        link: &LinkRef,
        id: u64,
        encoding: u8,
        carried: Vec<u64>,
        len: u64,
    ) -> Option<Incoming> {
        enum Target {
            Endpoint(Arc<Endpoint>),
            Closed,
            Unknown,
            Reused(u64),
        }
        let target = {
            let mut st = self.state();
            if st.lost.is_some() {
                return None;
            }
            match st.slots.get(&id) {
                Some(Slot::Open(ep) | Slot::Pending(ep)) => {
                    let ep = ep.clone();
                    let reused = carried.iter().enumerate().find(|(i, c)| {
                        !is_token(**c)
                            && (st.slots.contains_key(c) || **c == id || carried[..*i].contains(c))
                    });
                    match reused {
                        Some((_, &c)) => Target::Reused(c),
                        None => {
                            for &c in carried.iter().filter(|c| !is_token(**c)) {
                                let pending = Endpoint::new(
                                    link.clone(),
                                    c,
                                    link.settings().window,
                                    Window::DEFAULT,
                                );
                                st.slots.insert(c, Slot::Pending(pending));
                            }
                            Target::Endpoint(ep)
                        }
                    }
                }
                Some(Slot::Closed) => Target::Closed,
                None => Target::Unknown,
            }
        };
        match target {
            Target::Endpoint(ep) => {
                // Ends handed over for the message wait for it (outside the table's lock).
                for &c in carried.iter().filter(|c| is_token(**c)) {
                    super::handoff::expect(c);
                }
                // From here the carried ids are registered: dropping the message closes them.
                let charge = super::charge(len as usize, carried.len());
                let msg = Incoming::new(
                    ep.clone(),
                    encoding,
                    carried,
                    crate::codec::Body::for_encoding(encoding),
                    charge,
                );
                match ep.arrive(charge) {
                    Ok(()) => Some(msg),
                    Err(reason) => {
                        link.send_control(id, Control::Error(reason));
                        None
                    }
                }
            }
            Target::Closed => {
                close_all(link, &carried);
                None
            }
            Target::Unknown => {
                link.send_control(id, Control::Error(format!("no channel {id} is open there")));
                link.send_control(id, Control::Close);
                close_all(link, &carried);
                None
            }
            Target::Reused(c) => {
                let reason = format!("the message carries channel {c}, an id already in use");
                link.send_control(id, Control::Error(reason));
                close_all(link, &carried);
                None
            }
        }
    }

    /// A message begun with [`begin`](Self::begin) is whole: queues it for its channel's
    /// consumer (or drops it, if the channel closed meanwhile).
    pub fn complete(&self, msg: Incoming) -> Delivery {
        let ep = msg.from.clone();
        match ep.push(msg) {
            Ok(()) => Delivery::Queued,
            Err(_dropped) => Delivery::DroppedClosed,
        }
    }

    /// Refuses a message on channel `id` that never became whole (it was over a limit, or its
    /// fragments came out of order): tells the sender why and closes the channels it carried.
    pub fn refuse(&self, link: &LinkRef, id: u64, carried: &[u64], reason: String) {
        link.send_control(id, Control::Error(reason));
        close_all(link, carried);
    }

    /// The peer's `Close` for channel `id`.
    pub fn peer_close(&self, id: u64) {
        let ep = {
            let mut st = self.state();
            match st.slots.get(&id) {
                Some(Slot::Pending(ep)) => {
                    // Its message may make it a channel that goes on another way (see
                    // `Endpoint::set_successor`): what arrived stays takeable until it is
                    // claimed.
                    ep.keep_queue_open();
                    ep.mark_peer_closed();
                    ep.clone()
                }
                Some(Slot::Open(ep)) => {
                    ep.mark_peer_closed();
                    ep.clone()
                }
                Some(Slot::Closed) => {
                    st.slots.remove(&id);
                    return;
                }
                None => return,
            }
        };
        ep.peer_close();
    }

    /// The peer's `Credit` for channel `id`.
    pub fn credit(&self, id: u64, bytes: u64, messages: u64) {
        if let Some(ep) = self.open(id) {
            ep.credit(bytes, messages);
        }
    }

    /// The peer's `Handoff` for channel `id`: queued behind its earlier messages, for the
    /// relay of the end (see [`handoff`](super::handoff)).
    pub fn handoff(&self, id: u64, token: u64, attempt: u64, to: String) {
        if let Some(ep) = self.open(id) {
            ep.push_handoff(token, attempt, to);
        }
    }

    /// The peer's answer to a handoff on channel `id`: `HandedOff` (`Ok`) or `Kept` (`Err`).
    pub fn handed_off(&self, id: u64, attempt: u64, outcome: Result<(), String>) {
        if let Some(ep) = self.open(id) {
            ep.set_handed_off(attempt, outcome);
        }
    }

    /// The peer's `Resume(token)` (on `link`, the link of the end's holder).
    pub fn resume(&self, link: &LinkRef, token: u64) {
        super::handoff::resume(link, token);
    }

    /// The peer's `Commit(token)` (on `link`, the link of the end's holder).
    pub fn commit(&self, link: &LinkRef, token: u64) {
        super::handoff::commit(link, token);
    }

    /// The peer's `Adopt(token)` on a fresh channel `id`: it pushed an end here for a message
    /// that will name the token. Answered on `id`: `HandedOff` when kept, `Kept` with the
    /// reason and a close when refused (an error when the id is in use). Never waits.
    pub fn adopt(&self, link: &LinkRef, id: u64, token: u64) {
        if self.is_known(id) {
            link.send_control(id, Control::Error(format!("channel {id} is in use")));
            return;
        }
        super::handoff::adopt(link, id, token);
    }

    /// The peer's `Repoint` for channel `id` (an end this side holds, bridged by the peer):
    /// the peer's end goes on to the node at `to`; this side links to it directly (see
    /// [`handoff`](super::handoff)). Never waits.
    pub fn repoint(&self, link: &LinkRef, id: u64, token: u64, attempt: u64, to: String) {
        match self.open(id) {
            Some(ep) => super::handoff::repoint(ep, token, attempt, to),
            None => link.send_control(
                id,
                Control::Kept {
                    attempt,
                    why: format!("no channel {id} is open there"),
                },
            ),
        }
    }

    /// The peer's `Moved` for channel `id`: it sends nothing more on it, and still takes what
    /// comes.
    pub fn peer_moved(&self, id: u64) {
        let ep = match self.state().slots.get(&id) {
            Some(Slot::Pending(ep)) => {
                // As for a close: its message may give it a successor.
                ep.keep_queue_open();
                ep.clone()
            }
            Some(Slot::Open(ep)) => ep.clone(),
            _ => return,
        };
        ep.peer_moved();
    }

    /// The peer's `Error` for channel `id`: it dropped a message this side sent.
    pub fn error(&self, id: u64, reason: String) {
        if let Some(ep) = self.open(id) {
            ep.set_error(reason);
        }
    }

    fn open(&self, id: u64) -> Option<Arc<Endpoint>> {
        match self.state().slots.get(&id) {
            Some(Slot::Open(ep) | Slot::Pending(ep)) => Some(ep.clone()),
            _ => None,
        }
    }

    /// The link is gone: every endpoint on it ends with `reason`; later registrations too.
    pub fn lose(&self, reason: &str) {
        let slots: Vec<Slot> = {
            let mut st = self.state();
            if st.lost.is_none() {
                st.lost = Some(reason.to_owned());
            }
            st.slots.drain().map(|(_, s)| s).collect()
        };
        for slot in slots {
            if let Slot::Open(ep) | Slot::Pending(ep) = slot {
                ep.lose(reason);
            }
        }
    }

    /// Why the link is gone, if it is.
    pub fn lost(&self) -> Option<String> {
        self.state().lost.clone()
    }
}
