//! Puts that cross a link, and channel ends passed on to another node inside messages.
//!
//! An end sent to another node stays here, *bridged*: a fresh id on the link (announced in the
//! message's head) with two relay threads, one taking what arrives on the id and putting it where
//! the end's own `put`s went, one taking what the end's peer sends and putting it on the id. The
//! relays start only once the message carrying the end is out (so the peer learns of the id
//! before any of its traffic), and close the id if it never goes out. For a local, unbounded end
//! the threads that use its peer do the relays' work themselves whenever they can (see
//! [`splice`](super::splice)); the relay threads then only wait for credit, park for handoffs
//! and close.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use super::handoff::{Entry, Next, Ticket};
use super::incoming::{with_decoding, with_encoding, EncodeScope};
use super::splice::{Ended, InPump, OutPump, Woken};
use super::{encoding_for, Control, Endpoint, Item, LinkRef, Window};
use crate::channel::{remote_channel, wait_item, PlaceChannel, Rx, Tx, Waited};
use crate::codec;
use crate::context;
use crate::error::ChannelError;
use crate::message::Message;
use crossbeam_channel::Receiver;

/// What the two ends of a bounded pair share: each end's hook, run when that end takes a
/// message (set when the *other* end is passed on to another node, so that its remote producer
/// gets credit back only as messages are taken here).
pub(crate) struct PairHook {
    capacity: usize,
    on_take: [OnceLock<Box<dyn Fn() + Send + Sync>>; 2],
}

impl PairHook {
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            capacity,
            on_take: [OnceLock::new(), OnceLock::new()],
        }
    }

    /// End `end` took a message.
    #[inline]
    pub(crate) fn taken(&self, end: usize) {
        if let Some(f) = self.on_take[end].get() {
            f();
        }
    }
}

/// The remote `put` of an end on `endpoint`: waits for credit (or, with `block` false, gives the
/// value back), encodes, checks the receiver's size limit and writes. A value that was not
/// encoded yet comes back with the error.
pub(crate) fn put_remote<S: Message>(
    endpoint: &Arc<Endpoint>,
    value: S,
    block: bool,
) -> Result<(), (Option<S>, ChannelError)> {
    put_remote_with(endpoint, value, block, block)
}

/// The outcome of [`put_now`].
pub(crate) enum Now<S> {
    /// Sent, or failed: as [`put_remote`] says.
    Done(Result<(), (Option<S>, ChannelError)>),
    /// Encoded, but the connection could not take it without waiting: [`Pending::send`]
    /// writes it.
    Later(Pending<S>),
    /// Carries a channel end (bridging or handing it off may wait): not encoded.
    Ends(S),
}

/// A message encoded for an endpoint (its credit taken), not written yet.
pub(crate) struct Pending<S> {
    value: S,
    encoding: u8,
    owned: Option<Vec<u8>>,
    scope: Option<EncodeScope>,
}

impl<S: Message> Pending<S> {
    /// Writes the message (waiting for the connection as long as it takes).
    pub(crate) fn send(self, endpoint: &Arc<Endpoint>) -> Result<(), ChannelError> {
        let order = endpoint.order();
        let body: &[u8] = match (&self.owned, codec::raw_view(&self.value)) {
            (Some(b), _) => b,
            (None, Some((_, raw))) => raw,
            (None, None) => unreachable!("a value without a raw view was encoded"),
        };
        let carried: &[u64] = self.scope.as_ref().map_or(&[], |s| &s.carried);
        let written = write_out::<S>(endpoint, self.encoding, carried, body, false);
        let sent = written.unwrap_or_else(|| unreachable!("a blocking write always happens"));
        if let Some(scope) = self.scope {
            open_gates(scope, sent.is_ok());
        }
        drop(order);
        sent
    }
}

/// Takes an earlier drop report, writes (with `now`, only if the connection takes it without
/// waiting: `None` when it does not, and nothing is written) and reports: the write's error,
/// or the earlier drop once the write succeeded.
fn write_out<S>(
    endpoint: &Arc<Endpoint>,
    encoding: u8,
    carried: &[u64],
    body: &[u8],
    now: bool,
) -> Option<Result<(), ChannelError>> {
    // Taken before the write: once this message is out, its own drop report may come back
    // before this call returns (a waiting thread reads the connection), and it belongs to the
    // caller's next operation, not to this put.
    let earlier = endpoint.take_error(std::any::type_name::<S>());
    let link = endpoint.link();
    let sent = if now {
        link.send_message_now(endpoint.id(), encoding, carried, body)
    } else {
        Some(link.send_message(endpoint.id(), encoding, carried, body))
    };
    let put_back = |earlier: Option<ChannelError>| {
        if let Some(ChannelError::Dropped { reason, .. }) = earlier {
            endpoint.put_back_error(reason);
        }
    };
    match sent {
        None => {
            put_back(earlier);
            None
        }
        Some(Err(e)) => {
            put_back(earlier);
            Some(Err(e))
        }
        // An earlier message of this end was dropped by the receiver: this one went out, and
        // the caller learns of the earlier one now.
        Some(Ok(())) => Some(earlier.map_or(Ok(()), Err)),
    }
}

/// A put that waits for nothing (for the thread that passes a relay's values on, see
/// [`splice`](super::splice)): no credit gives the value back; a value that carries a channel
/// end that may be handed off comes back unencoded; one the connection cannot take without
/// waiting comes back encoded.
pub(crate) fn put_now<S: Message>(endpoint: &Arc<Endpoint>, value: S) -> Now<S> {
    put_remote_body(endpoint, value, false, false, true).unwrap_or_else(|e| Now::Done(Err(e)))
}

/// [`put_remote`], where `may_wait` says whether a channel end inside the value may wait to be
/// handed off directly (a relay that does not wait for credit still may).
pub(crate) fn put_remote_with<S: Message>(
    endpoint: &Arc<Endpoint>,
    value: S,
    block: bool,
    may_wait: bool,
) -> Result<(), (Option<S>, ChannelError)> {
    match put_remote_body(endpoint, value, block, may_wait, false)? {
        Now::Done(r) => r,
        Now::Later(_) | Now::Ends(_) => unreachable!("only a put that waits for nothing defers"),
    }
}

fn put_remote_body<S: Message>(
    endpoint: &Arc<Endpoint>,
    value: S,
    block: bool,
    may_wait: bool,
    now: bool,
) -> Result<Now<S>, (Option<S>, ChannelError)> {
    // A channel that went on another way sends there (see `Endpoint::set_successor`).
    let endpoint = endpoint.sends_to();
    if let Some(e) = endpoint.send_closed() {
        return Err((Some(value), e));
    }
    let order = if block {
        endpoint.order()
    } else {
        match endpoint.try_order() {
            Some(g) => g,
            None => return Err((Some(value), ChannelError::Full)),
        }
    };
    // It moved while this put waited for the order (the move takes it).
    if !Arc::ptr_eq(endpoint.sends_to(), endpoint) {
        drop(order);
        return put_remote_body(endpoint, value, block, may_wait, now);
    }
    let interrupted = || context::is_killed().then_some(ChannelError::Closed);
    match endpoint.wait_credit(block, interrupted) {
        Ok(true) => {}
        Ok(false) => return Err((Some(value), ChannelError::Full)),
        Err(e) => {
            drop(order);
            if context::is_killed() {
                return context::killed()
                    .map(|()| Now::Done(Ok(())))
                    .map_err(|e| (None, e));
            }
            return Err((Some(value), e));
        }
    }
    let link = endpoint.link();
    let (encoding, owned, scope) = match codec::raw_view(&value) {
        Some((encoding, _)) => (encoding, None, None),
        None => {
            let scope = EncodeScope {
                link: link.clone(),
                carried: Vec::new(),
                gates: Vec::new(),
                on_sent: Vec::new(),
                may_wait,
                defer_ends: now,
                deferred: false,
            };
            let (encoded, scope) = encoding_for(scope, || codec::encode_body(&value));
            match encoded {
                Ok((encoding, body)) => (encoding, Some(body), Some(scope)),
                Err(_) if scope.deferred => {
                    // A channel end inside: the caller's relay thread sends it (nothing was
                    // bridged yet).
                    open_gates(scope, false);
                    return Ok(Now::Ends(value));
                }
                Err(e) => {
                    open_gates(scope, false);
                    return Err((None, ChannelError::Unsendable(e.to_string())));
                }
            }
        }
    };
    let body: &[u8] = match (&owned, codec::raw_view(&value)) {
        (Some(b), _) => b,
        (None, Some((_, raw))) => raw,
        (None, None) => unreachable!("a value without a raw view was encoded"),
    };
    let carried_count = scope.as_ref().map_or(0, |s| s.carried.len());
    let max = link.peer_settings().max_message;
    let refusal = if carried_count > super::MAX_CARRIED {
        Some(format!(
            "a `{}` carrying {carried_count} channel ends (a message carries at most {})",
            std::any::type_name::<S>(),
            super::MAX_CARRIED
        ))
    } else if body.len() as u64 > max {
        Some(format!(
            "a `{}` of {} encoded bytes exceeds the largest message node `{}` accepts ({max} bytes)",
            std::any::type_name::<S>(),
            body.len(),
            link.peer()
        ))
    } else {
        None
    };
    if let Some(why) = refusal {
        if let Some(scope) = scope {
            open_gates(scope, false);
        }
        return Err((None, ChannelError::Unsendable(why)));
    }
    endpoint.reserve(super::charge(body.len(), carried_count));
    let carried: &[u64] = scope.as_ref().map_or(&[], |s| &s.carried);
    let Some(sent) = write_out::<S>(endpoint, encoding, carried, body, now) else {
        drop(order);
        return Ok(Now::Later(Pending {
            value,
            encoding,
            owned,
            scope,
        }));
    };
    if let Some(scope) = scope {
        open_gates(scope, sent.is_ok());
    }
    drop(order);
    Ok(Now::Done(sent.map_err(|e| (None, e))))
}

fn open_gates(mut scope: EncodeScope, sent: bool) {
    for gate in std::mem::take(&mut scope.gates) {
        let _ = gate.send(sent);
    }
    for f in std::mem::take(&mut scope.on_sent) {
        f(sent);
    }
}

/// The route of the message being decoded on this thread: the endpoint it came on.
pub(crate) fn decoding_route() -> Option<Arc<Endpoint>> {
    with_decoding(|s| s.from.clone())
}

/// A place channel on the wire.
#[derive(serde::Serialize, serde::Deserialize)]
enum WireEnd {
    /// Bridged by the sender: its id on the link, the window its new holder may send within,
    /// and where the new holder may take it over directly when it sends it on.
    Here {
        id: u64,
        bytes: u64,
        messages: u64,
        ticket: Option<Ticket>,
    },
    /// Handed off by the sender (see [`handoff`](super::handoff)): pushed here by its node,
    /// under the ticket's token (which the message names among the ends it carries).
    At(Ticket),
    /// Bridged by the sender as `Here` (without a ticket), for what was sent before; the
    /// channel goes on on the channel the peer's node opened here under `token` (which the
    /// message names too).
    Moving {
        id: u64,
        bytes: u64,
        messages: u64,
        token: u64,
    },
}

/// On the wire a place channel is its id on the link and the window its new holder may send
/// within; the end itself stays here, bridged (see the module docs), or, for an end that came
/// with a ticket from a third node, it is pushed to the new holder by that node, under the
/// ticket's token. Outside a places transport (plain serde) encoding a channel is an error.
impl<S: Message, R: Message> serde::Serialize for PlaceChannel<S, R> {
    fn serialize<Z: serde::Serializer>(&self, serializer: Z) -> Result<Z::Ok, Z::Error> {
        let Some(link) = with_encoding(|s| s.link.clone()) else {
            return Err(serde::ser::Error::custom(
                "a place channel can only be encoded by a places transport (sending it to another node)",
            ));
        };
        if with_encoding(|s| {
            s.deferred = s.defer_ends;
            s.deferred
        }) == Some(true)
        {
            return Err(serde::ser::Error::custom(
                "a channel end inside: the message goes out from its relay thread",
            ));
        }
        if let Some(ticket) = try_hand_off(self, &link) {
            with_encoding(|s| s.carried.push(ticket.token));
            return WireEnd::At(ticket).serialize(serializer);
        }
        if let Some((token, mirror)) = try_repoint(self, &link) {
            // The node behind `mirror` sends on the channel it opened at the new holder once
            // this message is out (`Commit`), or forgets it (`Resume`); meanwhile, and for
            // what it sent before, the end is bridged here. Both bridges let their directions
            // end one by one (`Moved`) rather than close at the first end.
            mirror.set_moving_bridge(true);
            with_encoding(|s| {
                s.carried.push(token);
                s.on_sent.push(Box::new(move |sent| {
                    let decision = if sent {
                        Control::Commit(token)
                    } else {
                        super::handoff::repoint_given_up(&mirror);
                        Control::Resume(token)
                    };
                    mirror.link().send_control(mirror.id(), decision);
                }))
            });
            let (id, window, _) =
                bridge_with(self, &link, false).map_err(serde::ser::Error::custom)?;
            return WireEnd::Moving {
                id,
                bytes: window.bytes,
                messages: window.messages,
                token,
            }
            .serialize(serializer);
        }
        let (id, window, ticket) = bridge(self, &link).map_err(serde::ser::Error::custom)?;
        WireEnd::Here {
            id,
            bytes: window.bytes,
            messages: window.messages,
            ticket,
        }
        .serialize(serializer)
    }
}

/// An end that came with a ticket, going on to another link whose peer listens at an address
/// this process knows: asks its node to push it there (see [`handoff`](super::handoff)); the
/// ticket for the new holder when it did. Once the message carrying the ticket is out this end
/// is forgotten here and its node told to go on (`Commit`); if it does not go out, the node is
/// told to go on as before (`Resume`) and this end closes with the message.
fn try_hand_off<S: Message, R: Message>(
    end: &PlaceChannel<S, R>,
    link: &LinkRef,
) -> Option<Ticket> {
    let Rx::Remote {
        endpoint, stashed, ..
    } = end.rx()
    else {
        return None;
    };
    let ticket = endpoint.ticket.get()?.clone();
    let same_link = super::handoff::same_link(endpoint.link(), link);
    let may_wait = with_encoding(|s| s.may_wait).unwrap_or(false);
    if same_link
        || !may_wait
        || endpoint.is_moving()
        || end.bound().is_some()
        || stashed.load(std::sync::atomic::Ordering::Acquire)
    {
        return None;
    }
    let to = link.peer_listens_at()?;
    if !super::handoff::hand_off(endpoint, &ticket, &to) {
        return None;
    }
    // The channel is the new holder's now: this end's drop must not close it.
    end.set_forwarded();
    let (ep, token) = (endpoint.clone(), ticket.token);
    with_encoding(|s| {
        s.on_sent.push(Box::new(move |sent| {
            if sent {
                ep.link().send_control(ep.id(), Control::Commit(token));
                ep.discard();
            } else {
                ep.link().send_control(ep.id(), Control::Resume(token));
                ep.close();
            }
        }))
    });
    Some(ticket)
}

/// The receiving side of `Serialize`: claims the channel's pending endpoint on the link the
/// message came on, or takes the end its node pushed here for the ticket's token.
impl<'de, S: Message, R: Message> serde::Deserialize<'de> for PlaceChannel<S, R> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let outside = || {
            serde::de::Error::custom(
                "a place channel cannot be decoded from bytes outside a places transport",
            )
        };
        let (id, bytes, messages, ticket) = match WireEnd::deserialize(deserializer)? {
            WireEnd::Here {
                id,
                bytes,
                messages,
                ticket,
            } => (id, bytes, messages, ticket),
            WireEnd::At(ticket) => {
                let carried = with_decoding(|s| {
                    let here = s.carried.contains(&ticket.token);
                    s.carried.retain(|c| *c != ticket.token);
                    here
                });
                return match carried {
                    None => Err(outside()),
                    Some(false) => Err(serde::de::Error::custom(
                        "the message names a handed-over channel end it does not carry",
                    )),
                    Some(true) => super::handoff::take(&ticket)
                        .map(remote_channel)
                        .map_err(serde::de::Error::custom),
                };
            }
            WireEnd::Moving {
                id,
                bytes,
                messages,
                token,
            } => {
                return take_moving(id, Window::new(bytes, messages), token)
                    .map(remote_channel)
                    .map_err(serde::de::Error::custom)
            }
        };
        let claimed = with_decoding(|s| {
            if !s.carried.contains(&id) {
                return None;
            }
            s.carried.retain(|c| *c != id);
            s.from.link().table().claim(id)
        });
        match claimed {
            None => Err(outside()),
            Some(None) => Err(serde::de::Error::custom(format!(
                "the message names channel {id}, which it does not carry"
            ))),
            Some(Some(endpoint)) => {
                endpoint.set_send_window(Window::new(bytes, messages));
                if let Some(t) = ticket {
                    let _ = endpoint.ticket.set(t);
                }
                Ok(remote_channel(endpoint))
            }
        }
    }
}

/// The receiving side of a [`WireEnd::Moving`]: the channel bridged by the sender (`id`, with
/// the window this side may send within), going on on the channel adopted here for `token`.
fn take_moving(id: u64, window: Window, token: u64) -> Result<Arc<Endpoint>, String> {
    let claimed = with_decoding(|s| {
        if !s.carried.contains(&id) || !s.carried.contains(&token) {
            return None;
        }
        s.carried.retain(|c| *c != id && *c != token);
        s.from.link().table().claim_moving(id)
    });
    let endpoint = match claimed {
        None => {
            return Err(
                "a place channel cannot be decoded from bytes outside a places transport".into(),
            )
        }
        Some(None) => {
            super::handoff::abandon(token);
            return Err(format!(
                "the message names channel {id}, which it does not carry"
            ));
        }
        Some(Some(endpoint)) => endpoint,
    };
    endpoint.set_send_window(window);
    let next = match super::handoff::take_adopted(token) {
        Ok(next) => next,
        Err(why) => {
            endpoint.let_queue_end();
            endpoint.close();
            return Err(why);
        }
    };
    // Its node announced what it takes on that link.
    next.set_send_window(next.link().peer_settings().window);
    endpoint.set_successor(next);
    // Nothing more goes the old way: its bridge lets that direction end.
    endpoint.link().send_control(endpoint.id(), Control::Moved);
    Ok(endpoint)
}

/// A local end going to the node behind `link`, whose peer is bridged here to a third node
/// (the relays pass its messages on): asks that node to link to the new holder directly (see
/// [`handoff::repoint_bridge`](super::handoff::repoint_bridge)). The token and the bridge's
/// endpoint when it did.
fn try_repoint<S: Message, R: Message>(
    end: &PlaceChannel<S, R>,
    link: &LinkRef,
) -> Option<(u64, Arc<Endpoint>)> {
    let (Tx::Local { peer_waker, .. }, Rx::Local { waker, .. }) = (end.tx(), end.rx()) else {
        return None;
    };
    let may_wait = with_encoding(|s| s.may_wait).unwrap_or(false);
    // A sender kept apart from either end (`sender()`) still sends the old way, which would
    // never end.
    if end.bound().is_some()
        || !may_wait
        || peer_waker.has_kept_senders()
        || waker.has_kept_senders()
    {
        return None;
    }
    let mirror = peer_waker.forward_endpoint()?;
    if super::handoff::same_link(mirror.link(), link) {
        return None;
    }
    let to = link.peer_listens_at()?;
    let token = super::handoff::repoint_bridge(&mirror, &to)?;
    Some((token, mirror))
}

/// Bridges `end` to a fresh id on `link` (see the module docs); returns the id, the window
/// the far holder may send within, and (when this process can be reached directly) the ticket
/// that lets a later holder take the end over.
fn bridge<S: Message, R: Message>(
    end: &PlaceChannel<S, R>,
    link: &LinkRef,
) -> Result<(u64, Window, Option<Ticket>), String> {
    bridge_with(end, link, true)
}

/// [`bridge`], with a ticket only when `ticketed` (without one, the bridge is of an end whose
/// peer's node links to the new holder directly: it lets its directions end one by one).
fn bridge_with<S: Message, R: Message>(
    end: &PlaceChannel<S, R>,
    link: &LinkRef,
    ticketed: bool,
) -> Result<(u64, Window, Option<Ticket>), String> {
    let id = link.next_id();
    let receive = match end.bound() {
        // The far producer may have as many messages outstanding as the pair holds.
        Some((hook, _)) => Window::new(link.settings().window.bytes, hook.capacity as u64),
        None => link.settings().window,
    };
    let mirror_ep = Endpoint::new(link.clone(), id, receive, link.peer_settings().window);
    mirror_ep.set_moving_bridge(!ticketed);
    link.table().register(mirror_ep.clone());
    let (gate_tx, gate_rx) = crossbeam_channel::bounded::<bool>(1);
    let (gate2_tx, gate2_rx) = crossbeam_channel::bounded::<bool>(1);
    with_encoding(|s| {
        s.carried.push(id);
        s.gates.push(gate_tx);
        s.gates.push(gate2_tx);
    });
    // A bounded pair keeps its credit where the pair is: no handoff.
    let issued = match end.bound() {
        None if ticketed => super::handoff::issue(&mirror_ep, receive),
        _ => None,
    };
    let (ticket, entry) = match issued {
        Some((t, e)) => {
            mirror_ep
                .accepts_handoff
                .store(true, std::sync::atomic::Ordering::Release);
            (Some(t), Some(e))
        }
        None => (None, None),
    };
    relay(end, mirror_ep, Some((gate_rx, gate2_rx)), entry)?;
    Ok((id, receive, ticket))
}

/// Joins `end` to `mirror_ep`, an id on a link whose far side acts as `end` from now on: what
/// arrives on the id goes where `end`'s own `put`s went, and what `end`'s peer sends goes out on
/// the id, until either side ends (then both are closed). With `gates`, the relays start only
/// when the gates say `true` (the message carrying the end went out), and close everything when
/// they say `false`. With `handoff`, the relays may move to another link on the way (see
/// [`handoff`](super::handoff)).
pub(crate) fn relay<S: Message, R: Message>(
    end: &PlaceChannel<S, R>,
    mirror_ep: Arc<Endpoint>,
    gates: Option<(Receiver<bool>, Receiver<bool>)>,
    handoff: Option<Arc<Entry>>,
) -> Result<(), String> {
    let id = mirror_ep.id();
    let bound = end.bound().cloned();
    if bound.is_some() {
        mirror_ep.set_manual_credit();
    }
    // What the far holder sends arrives as `S` and goes where this end's puts went; what this
    // end's peer sends (`R`) goes out.
    let mirror: Arc<PlaceChannel<R, S>> = Arc::new(remote_channel(mirror_ep.clone()));
    // The relays close the endpoint themselves (or a handoff forgets it).
    mirror.set_forwarded();
    if matches!(end.tx(), Tx::Remote { .. }) {
        // The relays close that channel when they end; this end's drop must not.
        end.set_forwarded();
    }
    let sizes: Option<Arc<Mutex<VecDeque<u64>>>> = bound.as_ref().map(|(hook, me)| {
        let sizes = Arc::new(Mutex::new(VecDeque::new()));
        let (q, ep) = (sizes.clone(), mirror_ep.clone());
        // The peer taking a message gives its credit back to the far producer.
        let _ = hook.on_take[1 - me].set(Box::new(move || {
            let len = q
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .pop_front()
                .unwrap_or(0);
            ep.release(len);
        }));
        sizes
    });
    // With gates, a message carries the end: if it never goes out, the peer never hears of
    // the id.
    let gated = gates.is_some();
    let (gate_in, gate_out) = match gates {
        Some((a, b)) => (Some(a), Some(b)),
        None => (None, None),
    };
    mirror_ep.set_no_relief();
    let open = |gate: Option<Receiver<bool>>| gate.is_none_or(|g| g.recv() == Ok(true));

    // Dropped by the incoming relay when it ends; a unit sent on it asks the outgoing relay
    // to stop at its next message boundary, for a handoff.
    let (stop_tx, stop_rx) = crossbeam_channel::bounded::<()>(1);
    let (done_tx, done_rx) = crossbeam_channel::bounded::<()>(0);
    let tx = end.tx().duplicate();
    let sender = Reporter::of(end.rx());
    let handoff_in = handoff.clone();
    // The peer of a local end pulls what arrives itself while its `get` polls (see
    // [`splice`](super::splice)); a bounded pair keeps its relay thread, which counts credit.
    let in_pump = match (end.tx(), &bound) {
        (Tx::Local { peer_waker, .. }, None) => Some((
            Arc::new(InPump::<S, R>::new(mirror_ep.clone(), end.tx().duplicate())),
            peer_waker.clone(),
        )),
        _ => None,
    };
    {
        let mirror_ep = mirror_ep.clone();
        std::thread::Builder::new()
            .name(format!("places relay in {id}"))
            .spawn(move || {
                if open(gate_in) {
                    let last = match &in_pump {
                        Some((pump, direction)) => {
                            drop(mirror_ep);
                            pull_in(pump, direction, &sender, handoff_in.as_deref(), &stop_tx)
                        }
                        None => relay_in::<S, R>(
                            mirror_ep,
                            &tx,
                            sizes.as_deref(),
                            &sender,
                            handoff_in.as_deref(),
                            &stop_tx,
                        ),
                    };
                    if let Some(h) = &handoff_in {
                        h.retire();
                    }
                    if last.has_peer_moved() {
                        // The far holder sends nothing more this way (its messages go to the
                        // end's peer directly now) and still takes what the peer sent before:
                        // this direction ends, and the other goes on until its queue ends
                        // (then it closes the endpoint).
                        if let Some((pump, direction)) = &in_pump {
                            direction.clear_pull();
                            if let Some(t) = pump.lock().tx.take() {
                                t.close();
                            }
                        }
                        tx.close();
                        let _ = done_rx.recv();
                        drop(stop_tx);
                        last.close();
                        return;
                    }
                    // Ended by the loss of the link: a local peer's `get` and `put` say so,
                    // naming the node, rather than finding the channel merely closed.
                    if let e @ ChannelError::Lost(_) = last.closed_error() {
                        if let Tx::Local { peer_waker, .. } = &tx {
                            peer_waker.set_lost(e.clone());
                        }
                        sender.set_lost(e);
                    }
                    last.close();
                } else if gated {
                    if let Some(h) = &handoff_in {
                        h.retire();
                    }
                    mirror_ep.discard();
                }
                // The outgoing relay lets go of the end's queue first: once the peer sees the
                // close, its puts fail as they would on a local channel.
                drop(stop_tx);
                let _ = done_rx.recv();
                if let Some((pump, direction)) = in_pump {
                    direction.clear_pull();
                    if let Some(t) = pump.lock().tx.take() {
                        t.close();
                    }
                }
                tx.close();
            })
            .map_err(|e| format!("could not start a channel relay: {e}"))?;
    }
    let sender_out = Reporter::of(end.rx());
    // A local end's peer passes its values on itself (see [`splice`](super::splice)); a
    // bounded pair keeps its relay thread, whose blocking puts are its back-pressure.
    let pump = match (end.rx(), &bound) {
        (Rx::Local { rx, waker, own }, None) => {
            waker.set_bridge(Some(mirror_ep.clone()));
            Some((
                Arc::new(OutPump::<R>::new(rx.clone(), mirror_ep.clone(), waker)),
                (waker.clone(), own.clone()),
            ))
        }
        _ => None,
    };
    let view = PlaceChannel::<S, R>::from_parts(end.tx().duplicate(), rx_view(end.rx()), bound);
    view.set_forwarded();
    std::thread::Builder::new()
        .name(format!("places relay out {id}"))
        .spawn(move || {
            if !open(gate_out) {
                if let Some((_, (direction, _))) = &pump {
                    direction.set_bridge(None);
                }
            } else if let Some((pump, (direction, own))) = pump {
                drop(mirror);
                // Holds a sender of the other direction, which must end when its relay does.
                drop(view);
                pump_out(
                    &pump,
                    &direction,
                    &own,
                    &stop_rx,
                    handoff.as_deref(),
                    &sender_out,
                );
                // The queue's receiver goes before the incoming relay closes the end's peer:
                // a `put` that finds the channel closed then fails, as on a local channel.
                drop(pump);
                drop(done_tx);
                return;
            } else {
                let (mut mirror, mut mirror_ep) = (mirror, mirror_ep);
                loop {
                    match view.get_until(None, Some(&stop_rx)) {
                        Ok(v) => match mirror.put(v) {
                            Ok(()) => {}
                            // One message that cannot cross (too large for the far node, say),
                            // or an earlier one the far holder dropped: its sender hears of it,
                            // and the channel goes on.
                            Err(
                                ChannelError::Unsendable(reason)
                                | ChannelError::Dropped { reason, .. },
                            ) => {
                                sender_out.report(reason);
                            }
                            Err(e @ ChannelError::Lost(_)) => {
                                sender_out.set_lost(e);
                                break;
                            }
                            Err(_) => break,
                        },
                        // Asked to stop for a handoff, or the end (of either side).
                        Err(_) => match handoff.as_ref().and_then(|h| h.park_out()) {
                            Some(Next::Resume) => {}
                            Some(Next::Move(ep)) => {
                                let m = remote_channel(ep.clone());
                                m.set_forwarded();
                                mirror = Arc::new(m);
                                mirror_ep = ep;
                            }
                            Some(Next::End) | None => break,
                        },
                    }
                }
                mirror_ep.close();
            }
            drop(view);
            drop(done_tx);
        })
        .map_err(|e| format!("could not start a channel relay: {e}"))?;
    Ok(())
}

/// The outgoing relay of a local end (see [`splice`](super::splice)): the end's peer passes its
/// values on itself, and this thread steps in for what that cannot do without waiting, parks
/// for a handoff, and closes the endpoint when either side ends.
fn pump_out<R: Message>(
    pump: &Arc<OutPump<R>>,
    direction: &Arc<crate::channel::Direction>,
    own: &crate::channel::OwnPass<R>,
    stop: &Receiver<()>,
    handoff: Option<&Entry>,
    sender: &Reporter,
) {
    /// Run however the relay ends (a panic too): no sender passes values on any more, the
    /// queue is let go (so the end's `put`s fail), and the endpoint closes.
    struct Done<'a, R: Message>(
        &'a OutPump<R>,
        &'a crate::channel::Direction,
        &'a crate::channel::OwnPass<R>,
    );
    impl<R: Message> Drop for Done<'_, R> {
        fn drop(&mut self) {
            self.2.put(None);
            self.1.clear_forward();
            self.1.set_bridge(None);
            self.0.end();
            let endpoint = self.0.endpoint();
            if endpoint.is_moving_bridge() && !std::thread::panicking() {
                // The end's peer went on to another node, which the far holder now talks to
                // directly: nothing more goes this way, and what the far holder sent before it
                // knew is still passed on (the incoming relay closes the endpoint after).
                endpoint.link().send_control(endpoint.id(), Control::Moved);
            } else {
                endpoint.close();
            }
        }
    }
    direction.set_forward(pump.clone());
    own.put(Some(pump.clone()));
    let _done = Done(pump, direction, own);
    loop {
        let failed = match pump.run() {
            Ok(()) => match pump.wait(stop) {
                Woken::Look => continue,
                Woken::Stop => None,
            },
            Err(Ended::Queue) => None,
            Err(Ended::Failed(e)) => Some(e),
        };
        if let Some(e) = failed {
            if let e @ ChannelError::Lost(_) = e {
                sender.set_lost(e);
            }
            break;
        }
        // Asked to stop for a handoff, or the end (of either side). Held still meanwhile, so
        // that no sender passes a value on to the old endpoint.
        let go_on = pump.hold(|| match handoff.and_then(Entry::park_out) {
            Some(Next::Resume) => (true, None),
            Some(Next::Move(ep)) => (true, Some(ep)),
            Some(Next::End) | None => (false, None),
        });
        if !go_on {
            break;
        }
    }
}

/// The incoming relay of a local end (see [`splice`](super::splice)): what arrives on the
/// endpoint goes on to the end's peer, moved by this thread when the peer does not pull it
/// itself; notices and handoffs are this thread's alone. Returns the endpoint it ended on.
fn pull_in<S: Message, R: Message>(
    pump: &Arc<InPump<S, R>>,
    direction: &Arc<crate::channel::Direction>,
    sender: &Reporter,
    handoff: Option<&Entry>,
    wake_out: &crossbeam_channel::Sender<()>,
) -> Arc<Endpoint> {
    /// Run if the relay unwinds: no `get` pulls any more, and the end's peer sees the close.
    struct Unwound<'a, S: Message, R: Message>(&'a InPump<S, R>, &'a crate::channel::Direction);
    impl<S: Message, R: Message> Drop for Unwound<'_, S, R> {
        fn drop(&mut self) {
            if std::thread::panicking() {
                self.1.clear_pull();
                if let Some(tx) = self.0.lock().tx.take() {
                    tx.close();
                }
            }
        }
    }
    direction.set_pull(pump.clone());
    let _unwound = Unwound(pump, direction);
    let mut st = pump.lock();
    loop {
        pump.watch();
        loop {
            let from = st.mirror.endpoint().expect("a remote view").clone();
            if st.ended {
                return from;
            }
            let item = match st.front.take() {
                Some(item) => item,
                None => match from.queue().try_recv() {
                    Ok(item) => item,
                    // Nothing more will come (the queue may not say so while a route into the
                    // same queue lives).
                    Err(crossbeam_channel::TryRecvError::Empty)
                        if from.arrivals_stopped() && from.queue().is_empty() =>
                    {
                        return from
                    }
                    Err(crossbeam_channel::TryRecvError::Empty) => break,
                    Err(crossbeam_channel::TryRecvError::Disconnected) => return from,
                },
            };
            match item {
                Item::Message(_) => {
                    if !InPump::pass(&mut st, item) {
                        return from;
                    }
                }
                // The far holder dropped a message the other relay sent it: its sender hears.
                Item::Notice => {
                    if let Some(Err(ChannelError::Dropped { reason, .. })) =
                        st.mirror.take_item(Item::Notice)
                    {
                        sender.report(reason);
                    }
                }
                Item::Handoff { token, attempt, to } => {
                    from.handoff_taken();
                    // Everything the holder sent before it has been passed on.
                    match handoff.filter(|h| h.token() == token) {
                        Some(h) => match h.release_in(&from, wake_out, attempt, &to) {
                            Next::Resume => {}
                            Next::Move(ep) => pump.moved(&mut st, ep),
                            Next::End => return from,
                        },
                        None => tracing::warn!(
                            target: "places",
                            "a handoff of channel {} with an unknown ticket: ignored",
                            from.id()
                        ),
                    }
                }
            }
        }
        let from = st.mirror.endpoint().expect("a remote view").clone();
        drop(st);
        // A poller that found the lock taken left what it saw for this thread.
        std::sync::atomic::fence(std::sync::atomic::Ordering::SeqCst);
        if !from.has_news() {
            pump.wait();
        }
        st = pump.lock();
    }
}

/// The far holder's messages, on to where the end's own `put`s go, in order, until either side
/// ends; returns the endpoint it ended on (a handoff moves it to another). For a bounded pair,
/// the size of each message is kept for the credit its taking returns.
fn relay_in<S: Message, R: Message>(
    mut mirror_ep: Arc<Endpoint>,
    tx: &Tx<S>,
    sizes: Option<&Mutex<VecDeque<u64>>>,
    sender: &Reporter,
    handoff: Option<&Entry>,
    wake_out: &crossbeam_channel::Sender<()>,
) -> Arc<Endpoint> {
    let view = super::splice::view::<S, R>;
    let mut mirror = view(&mirror_ep);
    loop {
        let item = match wait_item(mirror_ep.queue(), None, None, true) {
            Ok(Waited::Got(item)) => item,
            _ => return mirror_ep,
        };
        let charge = match &item {
            Item::Message(m) => Some(m.charge),
            Item::Notice => None,
            Item::Handoff { token, attempt, to } => {
                mirror_ep.handoff_taken();
                // Everything the holder sent before it has been passed on.
                match handoff.filter(|h| h.token() == *token) {
                    Some(h) => match h.release_in(&mirror_ep, wake_out, *attempt, to) {
                        Next::Resume => {}
                        Next::Move(ep) => {
                            mirror = view(&ep);
                            mirror_ep = ep;
                        }
                        Next::End => return mirror_ep,
                    },
                    None => tracing::warn!(
                        target: "places",
                        "a handoff of channel {} with an unknown ticket: ignored",
                        mirror_ep.id()
                    ),
                }
                continue;
            }
        };
        match (mirror.take_item(item), charge) {
            (Some(Ok(v)), Some(charge)) => {
                if let Some(q) = sizes {
                    q.lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .push_back(charge);
                }
                match tx.put(v) {
                    Ok(()) => {}
                    // Cannot go on to where this end's puts go (too large for that node, say):
                    // the far holder's next put or get says so, and the channel goes on.
                    Err(ChannelError::Unsendable(reason)) => {
                        // Not sent: nobody will take it, so its credit comes back now.
                        if let Some(q) = sizes {
                            q.lock().unwrap_or_else(PoisonError::into_inner).pop_back();
                            mirror_ep.release(charge);
                        }
                        mirror_ep
                            .link()
                            .send_control(mirror_ep.id(), Control::Error(reason));
                    }
                    // Sent, but an earlier one was dropped further on.
                    Err(ChannelError::Dropped { reason, .. }) => {
                        mirror_ep
                            .link()
                            .send_control(mirror_ep.id(), Control::Error(reason));
                    }
                    Err(_) => return mirror_ep,
                }
            }
            // A message that did not decode (its sender was told) will never be taken by the
            // peer: on a bounded end its credit comes back now.
            (None, Some(charge)) if sizes.is_some() => mirror_ep.release(charge),
            // The far holder dropped a message the other relay sent it: its sender hears of it.
            (Some(Err(ChannelError::Dropped { reason, .. })), None) => sender.report(reason),
            _ => {}
        }
    }
}

/// Who sent the messages an end receives, to be told when one of them is dropped on the way
/// on: a local end through the pair's shared state, a remote one with an error on its link.
enum Reporter {
    Local(Arc<crate::channel::Direction>),
    Remote(Arc<Endpoint>),
}

impl Reporter {
    fn of<R>(rx: &Rx<R>) -> Reporter {
        match rx {
            Rx::Local { waker, .. } => {
                // The sending end's `get` watches for faults from now on.
                waker.set_relayed();
                Reporter::Local(waker.clone())
            }
            Rx::Remote { endpoint, .. } => Reporter::Remote(endpoint.clone()),
        }
    }

    /// The relay ended with its link lost: a local sender's `put` says so from now on.
    fn set_lost(&self, error: ChannelError) {
        if let Reporter::Local(direction) = self {
            direction.set_lost(error);
        }
    }

    fn report(&self, reason: String) {
        tracing::warn!(target: "places", "a relayed message was dropped: {reason}");
        match self {
            Reporter::Local(direction) => direction.set_fault(reason),
            Reporter::Remote(endpoint) => endpoint
                .link()
                .send_control(endpoint.id(), Control::Error(reason)),
        }
    }
}

/// A second receiving view of an end's queue, for its outgoing relay.
fn rx_view<R: Message>(rx: &Rx<R>) -> Rx<R> {
    match rx {
        Rx::Local { rx, waker, own } => Rx::Local {
            rx: rx.clone(),
            waker: waker.clone(),
            own: own.clone(),
        },
        Rx::Remote {
            endpoint, decode, ..
        } => Rx::Remote {
            endpoint: endpoint.clone(),
            decode: *decode,
            stash: Mutex::new(None),
            stashed: std::sync::atomic::AtomicBool::new(false),
        },
    }
}
