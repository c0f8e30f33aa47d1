//! Channel ends that travel on: a node hands the relays of an end over to the node the end goes
//! to next, so that the two talk directly and the node in between relays nothing.
//!
//! Off by default: a node started with `NodeOptions::hand_off_channel_ends(true)` takes part.
//! Such a node X that sends a channel end over a link bridges it (relay threads, as for every
//! end that crosses a link) and gives it a *ticket*: the address it listens on, a random token
//! and the window the holder may send within. The holder P (often the program that
//! started X) may use the end, or send it on to Y. When it sends it on, it first asks X to
//! give the end up (`Handoff` on the channel, behind everything P sent on it):
//!
//! ```text
//! P -> X   Handoff(token)        X's relays stop at a message boundary (behind P's messages)
//! X -> P   HandedOff             behind every message X sent on the channel
//! P -> Y   the ticket            instead of a bridged id (only if nothing from X waits at P)
//! Y -> X   Claim(token) on a fresh id of a direct link Y made to X
//!          X's relays go on with that id: X and Y talk in one hop
//! ```
//!
//! If messages from X wait at P (they would have to come back), if X does not answer within
//! [`HANDOFF_TIMEOUT`], or if the message carrying the ticket does not go out, P sends
//! `Resume(token)` and X's relays go on as before (P bridges the end as usual, or closes it). A
//! released end that nobody claims within [`CLAIM_TIMEOUT`] is closed. Ends of bounded pairs are
//! not handed off (their credit is kept where the pair is), nor ends sent by a `try_put`.
//!
//! Known limits (why it is off by default): Y claims when its consumer decodes the message, so a
//! consumer that takes it more than [`CLAIM_TIMEOUT`] after X gave the end up finds it closed;
//! and a Y that cannot reach X at the ticket's address (another host, for a node listening on
//! loopback) or log in there loses the end (the message fails to decode, X closes the end after
//! the timeout). Pushing the end to Y when P sends it on, rather than having Y pull it, would
//! remove both.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::{Control, Endpoint, LinkRef, Window};

/// How long the holder waits for the end's node to give it up.
pub const HANDOFF_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a node keeps an end it gave up for its next holder to claim.
pub const CLAIM_TIMEOUT: Duration = Duration::from_secs(60);

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// What the network layer provides for direct links: where this process can be reached (a
/// node's address, if it is one), and how to reach another node.
pub struct DirectLinks {
    /// The address other nodes reach this process at, if it listens.
    pub reachable_at: fn() -> Option<String>,
    /// A link to the node at an address (made once, then shared).
    pub connect: fn(&str) -> Result<LinkRef, String>,
}

static DIRECT: OnceLock<DirectLinks> = OnceLock::new();

/// Installs the network layer's direct links (the first call wins).
pub fn set_direct_links(links: DirectLinks) {
    let _ = DIRECT.set(links);
}

/// Where the holder of an end can take it over directly.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub(crate) struct Ticket {
    pub(crate) addr: String,
    pub(crate) token: u64,
    /// The window the holder may send within.
    pub(crate) bytes: u64,
    pub(crate) messages: u64,
}

/// Where a bridged end's relays are in a handoff.
enum Phase {
    Bridged,
    /// Asked to give up the end: the incoming relay stopped behind the holder's messages; the
    /// outgoing one stops at its next message boundary.
    Releasing {
        out_parked: bool,
    },
    /// Both relays wait for a claim (or a resume); `old` is the endpoint they used.
    Released {
        since: Instant,
        old: Arc<Endpoint>,
    },
    /// Claimed: both relays go on with this endpoint.
    Moved(Arc<Endpoint>),
    /// Given up for good: the relays end.
    Ended,
}

/// What a parked relay is told to do.
pub(crate) enum Next {
    /// Go on with the same endpoint.
    Resume,
    /// Go on with this one.
    Move(Arc<Endpoint>),
    /// End.
    End,
}

/// One bridged end that may be handed off.
pub(crate) struct Entry {
    token: u64,
    /// The window the ticket promised the holder: the claimed endpoint receives within it.
    window: Window,
    phase: Mutex<Phase>,
    changed: Condvar,
    /// How many relays follow the new endpoint once moved (both must see it).
    moved_seen: Mutex<u8>,
    /// The incoming relay asked the outgoing one to stop (a unit on their stop channel).
    pause: std::sync::atomic::AtomicBool,
    /// The holder gave the handoff up before the incoming relay reached it.
    cancelled: std::sync::atomic::AtomicBool,
}

fn entries() -> &'static Mutex<HashMap<u64, Arc<Entry>>> {
    static ENTRIES: OnceLock<Mutex<HashMap<u64, Arc<Entry>>>> = OnceLock::new();
    ENTRIES.get_or_init(|| Mutex::new(HashMap::new()))
}

/// A ticket for an end bridged with `window` (the window its holder may send within), and the
/// entry its relays follow; `None` when this process cannot be reached directly.
pub(crate) fn issue(window: Window) -> Option<(Ticket, Arc<Entry>)> {
    let addr = (DIRECT.get()?.reachable_at)()?;
    let mut token = [0u8; 8];
    getrandom::fill(&mut token).ok()?;
    let token = u64::from_le_bytes(token);
    let entry = Arc::new(Entry {
        token,
        window,
        phase: Mutex::new(Phase::Bridged),
        changed: Condvar::new(),
        moved_seen: Mutex::new(0),
        pause: std::sync::atomic::AtomicBool::new(false),
        cancelled: std::sync::atomic::AtomicBool::new(false),
    });
    lock(entries()).insert(token, entry.clone());
    Some((
        Ticket {
            addr,
            token,
            bytes: window.bytes,
            messages: window.messages,
        },
        entry,
    ))
}

impl Entry {
    pub(crate) fn token(&self) -> u64 {
        self.token
    }

    /// The relays ended (the channel closed): the ticket is void.
    pub(crate) fn retire(&self) {
        *lock(&self.phase) = Phase::Ended;
        self.changed.notify_all();
        lock(entries()).remove(&self.token);
    }

    /// The incoming relay read the holder's `Handoff` (everything the holder sent before it has
    /// been passed on): asks the outgoing relay to stop, waits for it, tells the holder
    /// (`HandedOff` on `mirror`), and waits for what comes next.
    pub(crate) fn release_in(
        &self,
        mirror: &Arc<Endpoint>,
        wake_out: &crossbeam_channel::Sender<()>,
    ) -> Next {
        {
            let mut ph = lock(&self.phase);
            // A `Resume` that came before this relay got here: the holder gave up.
            if self.cancelled.swap(false, Ordering::AcqRel) || !matches!(*ph, Phase::Bridged) {
                return Next::Resume;
            }
            *ph = Phase::Releasing { out_parked: false };
        }
        self.pause.store(true, Ordering::Release);
        let _ = wake_out.try_send(());
        let deadline = Instant::now() + HANDOFF_TIMEOUT;
        let mut ph = lock(&self.phase);
        loop {
            match &*ph {
                Phase::Releasing { out_parked: true } => break,
                Phase::Releasing { .. } => {}
                _ => return self.next_locked(ph),
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                // The outgoing relay never reached a message boundary (waiting for credit
                // from the holder, say): stay as before.
                *ph = Phase::Bridged;
                self.changed.notify_all();
                return Next::Resume;
            }
            ph = self
                .changed
                .wait_timeout(ph, left)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
        *ph = Phase::Released {
            since: Instant::now(),
            old: mirror.clone(),
        };
        self.changed.notify_all();
        // Behind every message the outgoing relay wrote.
        mirror.link().send_control(mirror.id(), Control::HandedOff);
        self.next_locked(ph)
    }

    /// The outgoing relay stopped waiting for messages: if a handoff is under way it parks
    /// until the handoff is decided; `None` when there is none (the relay ends as usual).
    pub(crate) fn park_out(&self) -> Option<Next> {
        if !self.pause.swap(false, Ordering::AcqRel) {
            return None;
        }
        let mut ph = lock(&self.phase);
        match &mut *ph {
            Phase::Releasing { out_parked } => *out_parked = true,
            // The handoff was given up meanwhile.
            _ => return Some(Next::Resume),
        }
        self.changed.notify_all();
        Some(self.next_locked(ph))
    }

    /// Waits (holding the phase) until the handoff is decided.
    fn next_locked(&self, mut ph: MutexGuard<'_, Phase>) -> Next {
        loop {
            match &*ph {
                Phase::Bridged => return Next::Resume,
                Phase::Ended => return Next::End,
                Phase::Moved(ep) => {
                    let ep = ep.clone();
                    let mut seen = lock(&self.moved_seen);
                    *seen += 1;
                    if *seen == 2 {
                        // Both relays follow the new endpoint; the ticket is used up.
                        lock(entries()).remove(&self.token);
                    }
                    return Next::Move(ep);
                }
                Phase::Released { since, .. } if since.elapsed() >= CLAIM_TIMEOUT => {
                    tracing::warn!(
                        target: "places",
                        "a channel end given up for another node was not claimed within {CLAIM_TIMEOUT:?}: it closes"
                    );
                    *ph = Phase::Ended;
                    self.changed.notify_all();
                    lock(entries()).remove(&self.token);
                    return Next::End;
                }
                _ => {}
            }
            ph = self
                .changed
                .wait_timeout(ph, Duration::from_secs(1))
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }
}

/// The holder's `Resume(token)`: relays of a handoff that did not happen go on.
pub(crate) fn resume(token: u64) {
    let Some(entry) = lock(entries()).get(&token).cloned() else {
        return;
    };
    let mut ph = lock(&entry.phase);
    match *ph {
        Phase::Releasing { .. } | Phase::Released { .. } => {
            *ph = Phase::Bridged;
            entry.changed.notify_all();
        }
        // The incoming relay has not reached the handoff yet: it will find it given up.
        Phase::Bridged => entry.cancelled.store(true, Ordering::Release),
        _ => {}
    }
}

/// A `Claim(token)` on channel `id` of `link`: the end's relays go on with a new endpoint
/// there. `Err` with the reason to give the claimant when there is nothing to claim. Runs on
/// the event loop: never waits.
pub(crate) fn claim(link: &LinkRef, id: u64, token: u64) -> Result<(), String> {
    let entry = lock(entries()).get(&token).cloned();
    let Some(entry) = entry else {
        return Err(
            "no channel end to take over with this ticket (it closed, or was taken)".into(),
        );
    };
    let mut ph = lock(&entry.phase);
    let Phase::Released { old, .. } = &*ph else {
        return Err("the channel end was not given up for this claim".into());
    };
    // The holder forgets its side once the ticket is out; so does this one.
    old.discard();
    let ep = Endpoint::new(link.clone(), id, entry.window, link.peer_settings().window);
    ep.set_no_relief();
    link.table().register(ep.clone());
    *ph = Phase::Moved(ep);
    entry.changed.notify_all();
    Ok(())
}

/// The holder side: asks the node behind `endpoint` (which came with `ticket`) to give the end
/// up. `true` when it did and nothing it sent waits here: the ticket may go on to the next
/// holder, and `endpoint` is to be forgotten once it does. `false`: the end stays bridged as
/// before (a `Resume` was sent where needed).
pub(crate) fn hand_off(endpoint: &Endpoint, ticket: &Ticket) -> bool {
    if !endpoint.queue().is_empty() || endpoint.peer_has_closed() {
        return false;
    }
    endpoint.reset_handed_off();
    let link = endpoint.link();
    link.send_control(endpoint.id(), Control::Handoff(ticket.token));
    let given_up = endpoint.wait_handed_off(HANDOFF_TIMEOUT);
    if given_up && endpoint.queue().is_empty() && !endpoint.peer_has_closed() {
        return true;
    }
    link.send_control(endpoint.id(), Control::Resume(ticket.token));
    false
}

/// The next holder's side: reaches the node of `ticket` directly and claims the end there; the
/// endpoint the end's channel uses from now on.
pub(crate) fn take_over(ticket: &Ticket) -> Result<Arc<Endpoint>, String> {
    let direct = DIRECT
        .get()
        .ok_or("this process cannot make direct links (no network layer)")?;
    let link = (direct.connect)(&ticket.addr).map_err(|e| {
        format!(
            "could not reach node {} for a channel end: {e}",
            ticket.addr
        )
    })?;
    let id = link.next_id();
    let ep = Endpoint::new(
        link.clone(),
        id,
        link.settings().window,
        Window::new(ticket.bytes, ticket.messages),
    );
    link.table().register(ep.clone());
    // Before anything this end sends: a link writes control frames ahead of later messages.
    link.send_control(id, Control::Claim(ticket.token));
    Ok(ep)
}
