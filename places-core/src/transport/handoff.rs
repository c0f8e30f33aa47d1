//! Channel ends that travel on: a node hands the relays of an end over to the node the end goes
//! to next, so that the two talk directly and the holder in between relays nothing.
//!
//! A node X that sends a channel end over a link bridges it (relay threads, as for every end
//! that crosses a link) and gives it a *ticket*: a random token and the window the holder may
//! send within. The holder P (often the program that started X) may use the end, or send it on
//! to a node Y whose address it knows (it connected to Y). When it sends it on, it first asks X
//! to push the end to Y (`Handoff` on the channel, behind everything P sent on it):
//!
//! ```text
//! P -> X   Handoff(token, attempt, Y's address)   X's relays stop at a message boundary
//! X -> Y   Adopt(token) on a fresh id of a direct link X made to Y
//! Y -> X   HandedOff(token)          Y keeps that id for the message that will name the token
//!                                    (or Kept(token, why) and a close: Y refuses it)
//! X -> P   HandedOff(attempt)        behind every message X sent on the channel
//! P -> Y   the ticket                instead of a bridged id (only if nothing from X waits at P)
//! P -> X   Commit(token)             once that message is out: X's relays go on with the id
//!                                    on the direct link, and X and Y talk in one hop
//! ```
//!
//! The end is at Y before the message that names it is sent, and it stays there however long
//! P takes to send the message and Y's consumer to decode it: X waits for P's `Commit` (or
//! `Resume`) as long as P is there, and Y keeps the adopted id as long as X keeps it open. The
//! message names the token among the channel ends it carries, so Y closes the adopted id if
//! the message is dropped undecoded, as it closes carried ids. Y keeps the ticket: when Y
//! sends the end on, X pushes it on again, from the direct link.
//!
//! If X cannot reach Y, log in there, or Y refuses the end, X says so (`Kept`) and P bridges
//! the end as usual. If messages from X wait at P (they would have to come back), if X does not
//! answer within [`HANDOFF_TIMEOUT`], or if the message carrying the ticket does not go out
//! (its encoding fails or panics, or the link breaks), P sends `Resume(token)`: X closes the id
//! it opened at Y and its relays go on as before. If P dies meanwhile, X closes the end, as a
//! relay does. Ends of bounded pairs are not handed off (their credit is kept where the pair
//! is), nor ends sent by a `try_put`, nor ends sent to a process whose address the holder does
//! not know (it did not connect to it).
//!
//! # Repoints: a pair made by the bridging side
//!
//! The other way round, P made the pair, sent one end to X (bridged here, X holds a remote end
//! of it) and now sends the other end `b` to Y. X's end cannot be pushed: it has no relays. So
//! X links to Y itself, and the channel's path moves under the ends while P's bridges carry
//! what was on its way:
//!
//! ```text
//! P -> X   Repoint(token, attempt, Y's address)  on the bridge's id
//! X -> Y   Adopt(token) on a fresh id j of a direct link X made to Y; Y -> X  HandedOff
//! X -> P   HandedOff(attempt)              (or Kept(attempt, why): P bridges b as usual)
//! P -> Y   b as Moving { id k, token }     b is bridged on k (without a ticket) as well
//! P -> X   Commit(token)                   once that message is out (Resume if it is not)
//! X        sends on j from now on, and Moved (a half-close) on the old id
//! Y        decoding b: sends on j at once, and Moved on k
//! P        each bridge's direction ends on its far side's Moved (the incoming relay stops,
//!          its queue ends), and the other direction, once its queue has ended, sends Moved
//!          instead of a close; the last one closes the id
//! ```
//!
//! X and Y each hold what comes on j until the old way has brought everything (its peer sent
//! `Moved` or closed), then queue it behind (see `Endpoint::set_successor`): no message is
//! lost or overtaken, in either direction. If the old way's link is lost before that, the
//! channel fails with the loss (what was on its way may be lost with the node). A repoint
//! needs both nodes to hand ends over (`DirectLinks::enabled`), X to reach Y, and an unbounded
//! pair sent by a `put`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::endpoint::Candidate;
use super::{Control, Endpoint, LinkRef, Window};

/// How long the holder waits for the end's node to push the end on (and that node, half as
/// long, for the next holder to take it).
pub const HANDOFF_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a node keeps an adopted end after the end's node closed it, for a message naming
/// it that may still be on its way; an adopted end no message came for at all closes after
/// ten times as long.
pub const CLAIM_TIMEOUT: Duration = Duration::from_secs(60);

/// The environment variable that shortens [`HANDOFF_TIMEOUT`] and [`CLAIM_TIMEOUT`] (to the
/// milliseconds it holds), for tests of what happens after them.
pub const TIMEOUTS_ENV: &str = "PLACES_HANDOFF_TIMEOUT_MS";

fn timeout(default: Duration) -> Duration {
    static SET: OnceLock<Option<Duration>> = OnceLock::new();
    let set = SET.get_or_init(|| {
        std::env::var(TIMEOUTS_ENV)
            .ok()
            .and_then(|v| v.parse().ok())
            .map(Duration::from_millis)
    });
    set.unwrap_or(default)
}

/// The tokens of tickets have this bit set: in the list of channel ends a message carries, an
/// entry with it names a handed-off end by its token (channel ids never reach it).
pub(crate) const TOKEN_BIT: u64 = 1 << 63;

/// Whether an entry of a message's carried list is a ticket's token rather than an id.
pub(crate) fn is_token(carried: u64) -> bool {
    carried & TOKEN_BIT != 0
}

/// The most adopted ends a process keeps for which no message has come yet, per link they
/// came on (one peer cannot take another's room).
const MAX_UNEXPECTED: usize = 4096;

/// The most tokens a process keeps marks for (ends adopted, messages expected or dropped):
/// tokens that peers merely name beyond it are not remembered.
const MAX_MARKS: usize = 2 * MAX_UNEXPECTED;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// What the network layer provides for direct links.
pub struct DirectLinks {
    /// Whether this process hands the ends it bridges over (issues tickets for them).
    pub enabled: fn() -> bool,
    /// The address this process listens at, if it does (to name it in errors).
    pub listens_at: fn() -> Option<String>,
    /// A link to the node at an address (made once, then shared).
    pub connect: fn(&str) -> Result<LinkRef, String>,
}

static DIRECT: OnceLock<DirectLinks> = OnceLock::new();

/// Installs the network layer's direct links (the first call wins).
pub fn set_direct_links(links: DirectLinks) {
    let _ = DIRECT.set(links);
}

/// What lets the holder of an end have it pushed on to another node.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub(crate) struct Ticket {
    /// The end's node, for errors.
    pub(crate) node: String,
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
    /// Pushed on: `new` is the id opened at the next holder; both relays wait for the holder's
    /// commit (or resume); `old` is the endpoint they used.
    Released {
        old: Arc<Endpoint>,
        new: Arc<Endpoint>,
    },
    /// Committed: both relays go on with this endpoint.
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
    /// The window the ticket promised the holder: the pushed endpoint receives within it.
    window: Window,
    phase: Mutex<Phase>,
    changed: Condvar,
    /// How many relays follow the new endpoint once moved (both must see it).
    moved_seen: Mutex<u8>,
    /// The incoming relay asked the outgoing one to stop (a unit on their stop channel).
    pause: AtomicBool,
    /// The holder gave the handoff up before the incoming relay reached it.
    cancelled: AtomicBool,
    /// The endpoint the end's holder reaches the relays through (its link is the one commits
    /// and resumes are taken from).
    holder: Mutex<Arc<Endpoint>>,
}

/// Whether two links are the same connection.
pub(crate) fn same_link(a: &LinkRef, b: &LinkRef) -> bool {
    std::ptr::eq(Arc::as_ptr(a).cast::<u8>(), Arc::as_ptr(b).cast::<u8>())
}

fn entries() -> &'static Mutex<HashMap<u64, Arc<Entry>>> {
    static ENTRIES: OnceLock<Mutex<HashMap<u64, Arc<Entry>>>> = OnceLock::new();
    ENTRIES.get_or_init(|| Mutex::new(HashMap::new()))
}

fn random() -> Option<u64> {
    let mut b = [0u8; 8];
    getrandom::fill(&mut b).ok()?;
    Some(u64::from_le_bytes(b))
}

/// A ticket for an end bridged on `mirror` with `window` (the window its holder may send
/// within), and the entry its relays follow; `None` when this process does not hand ends over.
pub(crate) fn issue(mirror: &Arc<Endpoint>, window: Window) -> Option<(Ticket, Arc<Entry>)> {
    let link = mirror.link();
    let direct = DIRECT.get()?;
    if !(direct.enabled)() {
        return None;
    }
    let token = random()? | TOKEN_BIT;
    let entry = Arc::new(Entry {
        token,
        window,
        phase: Mutex::new(Phase::Bridged),
        changed: Condvar::new(),
        moved_seen: Mutex::new(0),
        pause: AtomicBool::new(false),
        cancelled: AtomicBool::new(false),
        holder: Mutex::new(mirror.clone()),
    });
    lock(entries()).insert(token, entry.clone());
    Some((
        Ticket {
            node: match (direct.listens_at)() {
                Some(addr) => format!("node {addr}"),
                None => format!("a program connected to node {}", link.peer()),
            },
            token,
            bytes: window.bytes,
            messages: window.messages,
        },
        entry,
    ))
}

/// Whether `addr` names this host whichever host reads it: a loopback address (IPv4-mapped
/// too, or `localhost`) or the wildcard address.
fn is_loopback(addr: &str) -> bool {
    use std::net::ToSocketAddrs;
    match addr.to_socket_addrs() {
        Ok(mut all) => all.next().is_some_and(|a| {
            let ip = a.ip().to_canonical();
            ip.is_loopback() || ip.is_unspecified()
        }),
        Err(_) => false,
    }
}

impl Entry {
    pub(crate) fn token(&self) -> u64 {
        self.token
    }

    /// The relays ended (the channel closed): the ticket is void.
    pub(crate) fn retire(&self) {
        let was = std::mem::replace(&mut *lock(&self.phase), Phase::Ended);
        if let Phase::Released { new, .. } = was {
            new.close();
        }
        self.changed.notify_all();
        lock(entries()).remove(&self.token);
    }

    /// The incoming relay read the holder's `Handoff` (everything the holder sent before it has
    /// been passed on): asks the outgoing relay to stop, waits for it, pushes the end to the
    /// node at `to`, tells the holder (`HandedOff` or `Kept` on `mirror`), and waits for what
    /// comes next.
    pub(crate) fn release_in(
        &self,
        mirror: &Arc<Endpoint>,
        wake_out: &crossbeam_channel::Sender<()>,
        attempt: u64,
        to: &str,
    ) -> Next {
        let kept = |why: String| {
            tracing::debug!(target: "places", "a channel end stays relayed: {why}");
            mirror
                .link()
                .send_control(mirror.id(), Control::Kept { attempt, why });
            Next::Resume
        };
        {
            let mut ph = lock(&self.phase);
            // A `Resume` that came before this relay got here: the holder gave up.
            if self.cancelled.swap(false, Ordering::AcqRel) {
                return Next::Resume;
            }
            // Just moved by the last handoff: the outgoing relay is about to follow.
            let deadline = Instant::now() + timeout(HANDOFF_TIMEOUT) / 2;
            while matches!(*ph, Phase::Moved(_)) && Instant::now() < deadline {
                ph = self
                    .changed
                    .wait_timeout(ph, Duration::from_millis(100))
                    .unwrap_or_else(PoisonError::into_inner)
                    .0;
            }
            if !matches!(*ph, Phase::Bridged) {
                drop(ph);
                return kept("another handoff of the end is under way".into());
            }
            *ph = Phase::Releasing { out_parked: false };
        }
        self.pause.store(true, Ordering::Release);
        let _ = wake_out.try_send(());
        let deadline = Instant::now() + timeout(HANDOFF_TIMEOUT);
        {
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
                    drop(ph);
                    return kept("the end's relay did not stop in time".into());
                }
                ph = self
                    .changed
                    .wait_timeout(ph, left)
                    .unwrap_or_else(PoisonError::into_inner)
                    .0;
            }
        }
        // Both relays are parked; the holder waits. Connecting may take a while: a `Resume`
        // meanwhile puts the phase back to `Bridged`.
        let pushed = self.push_to(mirror, to);
        let mut ph = lock(&self.phase);
        if !matches!(*ph, Phase::Releasing { out_parked: true }) {
            if let Ok(new) = pushed {
                new.close();
            }
            return self.next_locked(ph);
        }
        match pushed {
            Err(why) => {
                *ph = Phase::Bridged;
                self.changed.notify_all();
                drop(ph);
                kept(why)
            }
            Ok(new) => {
                *ph = Phase::Released {
                    old: mirror.clone(),
                    new,
                };
                self.changed.notify_all();
                // Behind every message the outgoing relay wrote.
                mirror
                    .link()
                    .send_control(mirror.id(), Control::HandedOff { attempt });
                self.next_locked(ph)
            }
        }
    }

    /// Opens an id for the end at the node at `to`, on a direct link, and has that node keep
    /// it for the ticket (`Adopt`, answered before the holder is told anything).
    fn push_to(&self, mirror: &Arc<Endpoint>, to: &str) -> Result<Arc<Endpoint>, String> {
        open_at(mirror.link(), to, self.token, Some(self.window))
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
                        // Both relays follow the new endpoint: its holder may hand the end on
                        // again, with the same ticket.
                        *seen = 0;
                        *ph = Phase::Bridged;
                        self.changed.notify_all();
                    }
                    return Next::Move(ep);
                }
                // The holder is gone before it committed: the end closes, as a relay's would.
                Phase::Released { old, new }
                    if old.peer_has_closed() || old.link().lost().is_some() =>
                {
                    tracing::debug!(
                        target: "places",
                        "the holder of a channel end being handed over is gone: it closes"
                    );
                    new.close();
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

/// Opens an id on a direct link to the node at `to` (reached from a process that talks to the
/// holder over `via`) and has that node keep it for `token` (`Adopt`, answered before this
/// returns). With `relay_window` the id belongs to relays (they receive within that window
/// and may hand it on); without, to a remote end (the link's own windows).
fn open_at(
    via: &LinkRef,
    to: &str,
    token: u64,
    relay_window: Option<Window>,
) -> Result<Arc<Endpoint>, String> {
    let direct = DIRECT
        .get()
        .ok_or("this process cannot make direct links (no network layer)")?;
    // A loopback address names a process of the holder's host: this one only if the holder
    // is on this host too.
    if is_loopback(to) && !via.over_loopback() {
        return Err(format!(
            "the next holder's address {to} is a loopback address of another host"
        ));
    }
    let link = (direct.connect)(to).map_err(|e| format!("could not reach {to}: {e}"))?;
    let id = link.next_id();
    let receive = relay_window.unwrap_or(link.settings().window);
    let ep = Endpoint::new(link.clone(), id, receive, link.peer_settings().window);
    if relay_window.is_some() {
        ep.set_no_relief();
        ep.accepts_handoff.store(true, Ordering::Release);
    }
    link.table().register(ep.clone());
    ep.reset_handed_off(token);
    // Before anything sent on it: a link writes control frames ahead of later messages.
    link.send_control(id, Control::Adopt(token));
    // The next holder has the end before the holder sends the message that names it.
    match ep.wait_handed_off(timeout(HANDOFF_TIMEOUT) / 2) {
        Some(Ok(())) => Ok(ep),
        Some(Err(why)) => {
            ep.close();
            Err(format!("{to} refused the end: {why}"))
        }
        None => {
            ep.close();
            Err(format!("{to} did not take the end in time"))
        }
    }
}

/// The repoints under way here, by token: the channel of the remote end, and where the
/// bridging side's decision goes.
type Repoints = HashMap<u64, (std::sync::Weak<Endpoint>, crossbeam_channel::Sender<bool>)>;

fn repoints() -> &'static Mutex<Repoints> {
    static REPOINTS: OnceLock<Mutex<Repoints>> = OnceLock::new();
    REPOINTS.get_or_init(|| Mutex::new(HashMap::new()))
}

/// The most repoints a process works on at once (each has a thread, and connects): a peer
/// that asks for more is told no.
const MAX_REPOINTS: usize = 64;

/// The bridging side's `Repoint` on `endpoint` (a remote end's channel here): opens a channel
/// for `token` at the node at `to` (where the bridging side sends the end's peer), answers
/// (`HandedOff` or `Kept`), and, once the bridging side commits, sends on the new channel and
/// takes what comes there after what comes on this one (see [`Endpoint::set_successor`]).
/// Never waits: the work is done on a thread of its own (one per channel at a time, and at
/// most [`MAX_REPOINTS`] in all).
pub(crate) fn repoint(endpoint: Arc<Endpoint>, token: u64, attempt: u64, to: String) {
    let kept = move |ep: &Endpoint, why: String| {
        tracing::debug!(target: "places", "a channel stays relayed: {why}");
        ep.link()
            .send_control(ep.id(), Control::Kept { attempt, why });
    };
    if !DIRECT.get().is_some_and(|d| (d.enabled)()) {
        return kept(
            &endpoint,
            "this node does not hand channel ends over".into(),
        );
    }
    // Only the channel of an end held here, unbounded, not moving already, and not being
    // handed on by this side.
    if !is_token(token)
        || endpoint.is_relay_or_bounded()
        || endpoint.is_moving()
        || endpoint.handoff_under_way()
        || endpoint.is_closed()
        || endpoint.peer_has_closed()
    {
        return kept(&endpoint, "this channel cannot go on another way".into());
    }
    if !endpoint.begin_repoint() {
        return kept(&endpoint, "a repoint of this channel is under way".into());
    }
    // Registered before anything is answered: a decision that comes early is kept.
    let (decide, decision) = crossbeam_channel::bounded(1);
    {
        let mut r = lock(repoints());
        r.retain(|_, (e, _)| e.strong_count() > 0);
        if r.len() >= MAX_REPOINTS || r.contains_key(&token) {
            drop(r);
            endpoint.end_repoint();
            return kept(&endpoint, "too many repoints are under way here".into());
        }
        r.insert(token, (Arc::downgrade(&endpoint), decide));
    }
    let spawned = std::thread::Builder::new()
        .name(format!("places repoint {}", endpoint.id()))
        .spawn({
            let endpoint = endpoint.clone();
            move || {
                run_repoint(&endpoint, token, attempt, &to, &decision, kept);
                lock(repoints()).remove(&token);
                endpoint.end_repoint();
            }
        });
    if let Err(e) = spawned {
        lock(repoints()).remove(&token);
        endpoint.end_repoint();
        kept(&endpoint, format!("could not start a thread: {e}"));
    }
}

/// The thread of one repoint at the remote end's side (see [`repoint`]).
fn run_repoint(
    endpoint: &Arc<Endpoint>,
    token: u64,
    attempt: u64,
    to: &str,
    decision: &crossbeam_channel::Receiver<bool>,
    kept: impl Fn(&Endpoint, String),
) {
    let next = match open_at(endpoint.link(), to, token, None) {
        Ok(next) => next,
        Err(why) => return kept(endpoint, why),
    };
    // The bridging side gave up before the channel was open (its wait is bounded too).
    if let Ok(false) = decision.try_recv() {
        return next.close();
    }
    if !endpoint.set_candidate(Candidate {
        token,
        next: next.clone(),
        committed: false,
    }) {
        next.close();
        return kept(endpoint, "the channel ended or moved meanwhile".into());
    }
    endpoint
        .link()
        .send_control(endpoint.id(), Control::HandedOff { attempt });
    // However long the bridging side takes to send the message naming the token, as long as
    // it and the channel are there.
    let commit = loop {
        match decision.recv_timeout(Duration::from_secs(1)) {
            Ok(d) => break d,
            Err(crossbeam_channel::RecvTimeoutError::Timeout)
                if !endpoint.is_closed()
                    && !endpoint.peer_has_closed()
                    && endpoint.link().lost().is_none() => {}
            Err(_) => break false,
        }
    };
    match (commit, endpoint.take_candidate(token)) {
        (true, Some(next)) => {
            // No message of this end is half written meanwhile, and every later one goes the
            // new way.
            let _order = endpoint.order();
            endpoint.set_successor(next);
            endpoint.link().send_control(endpoint.id(), Control::Moved);
        }
        (false, Some(next)) => next.close(),
        (_, None) => {}
    }
}

/// The bridging side's decision (`Commit` or `Resume`) on a repoint under `token`, if one is
/// under way for a channel on `from`. Never waits.
fn decide_repoint(from: &LinkRef, token: u64, commit: bool) {
    let r = lock(repoints());
    let Some((ep, decide)) = r.get(&token) else {
        return;
    };
    let Some(ep) = ep.upgrade() else {
        return;
    };
    if !same_link(ep.link(), from) {
        return;
    }
    if commit {
        ep.commit_candidate(token);
    }
    let _ = decide.try_send(commit);
}

/// The bridging side of a local end's peer, sending that end to the node at `to`: asks the
/// node behind `mirror` (where the bridge's far end is held) to open a channel there directly
/// (`Repoint`). The token to name in the message carrying the end when the node did; the
/// bridging side then commits (or resumes) once the message is out (or not). `None`: the end
/// is bridged as before.
pub(crate) fn repoint_bridge(mirror: &Endpoint, to: &str) -> Option<u64> {
    let direct = DIRECT.get()?;
    if !(direct.enabled)() {
        return None;
    }
    // A bridge with a ticket, not being handed on: from now on its holder's handoffs are not
    // taken.
    if !mirror.accepts_handoff.swap(false, Ordering::AcqRel) {
        return None;
    }
    if !mirror.begin_repoint() {
        mirror.accepts_handoff.store(true, Ordering::Release);
        return None;
    }
    let give_up = || {
        repoint_given_up(mirror);
        None
    };
    if mirror.handoff_pending() || mirror.peer_has_closed() || mirror.is_closed() {
        return give_up();
    }
    let (Some(attempt), Some(token)) = (random(), random()) else {
        return give_up();
    };
    let token = token | TOKEN_BIT;
    mirror.reset_handed_off(attempt);
    let link = mirror.link();
    link.send_control(
        mirror.id(),
        Control::Repoint {
            token,
            attempt,
            to: to.to_owned(),
        },
    );
    match mirror.wait_answer(timeout(HANDOFF_TIMEOUT), false) {
        Some(Ok(())) if !mirror.peer_has_closed() => Some(token),
        Some(Err(why)) => {
            tracing::debug!(target: "places", "a channel end is relayed: {why}");
            give_up()
        }
        _ => {
            link.send_control(mirror.id(), Control::Resume(token));
            give_up()
        }
    }
}

/// The bridging side's repoint on `mirror` did not happen: its holder may hand the end on
/// again, and the bridge closes as usual.
pub(crate) fn repoint_given_up(mirror: &Endpoint) {
    mirror.set_moving_bridge(false);
    mirror.end_repoint();
    mirror.accepts_handoff.store(true, Ordering::Release);
}

/// The next holder's side of a repoint, decoding a message naming `token`: the channel its
/// peer's holder opened here for it.
pub(crate) fn take_adopted(token: u64) -> Result<Arc<Endpoint>, String> {
    let taken = {
        let mut by = lock(&adoptions().by_token);
        match by.get(&token) {
            Some(Adopted { ep: Some(_), .. }) => by.remove(&token).and_then(|a| a.ep),
            _ => None,
        }
    };
    taken.ok_or_else(|| {
        abandon(token);
        "the direct channel for this channel end is not here (it was given up, or never opened)"
            .to_owned()
    })
}

/// The holder's `Resume(token)` on `from`: relays of a handoff that did not happen go on.
pub(crate) fn resume(from: &LinkRef, token: u64) {
    let Some(entry) = lock(entries()).get(&token).cloned() else {
        return decide_repoint(from, token, false);
    };
    let mut ph = lock(&entry.phase);
    // Only from the holder (or, for a handoff it asked for behind a commit not here yet, the
    // next holder).
    let from_holder = same_link(lock(&entry.holder).link(), from);
    match &*ph {
        Phase::Releasing { .. } if from_holder => {
            *ph = Phase::Bridged;
            entry.changed.notify_all();
        }
        Phase::Released { new, .. } if from_holder => {
            new.close();
            *ph = Phase::Bridged;
            entry.changed.notify_all();
        }
        // The next holder gave up a handoff that waits behind the commit of this one.
        Phase::Released { new, .. } if same_link(new.link(), from) => {
            entry.cancelled.store(true, Ordering::Release);
        }
        // The incoming relay has not reached the handoff yet (or the relays are still
        // following the last move): it will find it given up.
        Phase::Bridged | Phase::Moved(_) if from_holder => {
            entry.cancelled.store(true, Ordering::Release)
        }
        _ => {}
    }
}

/// The holder's `Commit(token)` on `from`: the message with the ticket went out to the next
/// holder, so the relays go on with the id opened there. Never waits.
pub(crate) fn commit(from: &LinkRef, token: u64) {
    let Some(entry) = lock(entries()).get(&token).cloned() else {
        return decide_repoint(from, token, true);
    };
    let mut ph = lock(&entry.phase);
    let Phase::Released { new, old } = &*ph else {
        return;
    };
    // Only from the holder.
    if !same_link(old.link(), from) {
        return;
    }
    // The holder forgets its side once the ticket is out; so does this one.
    old.discard();
    *lock(&entry.holder) = new.clone();
    *ph = Phase::Moved(new.clone());
    entry.changed.notify_all();
}

/// The holder side: asks the node behind `endpoint` (which came with `ticket`) to push the end
/// on to the node at `to`. `true` when it did and nothing it sent waits here: the ticket may go
/// on to the next holder, and the holder commits (or resumes) once the message is out (or
/// not). `false`: the end stays bridged as before (a `Resume` was sent where needed).
pub(crate) fn hand_off(endpoint: &Endpoint, ticket: &Ticket, to: &str) -> bool {
    if !endpoint.queue().is_empty() || endpoint.peer_has_closed() {
        return false;
    }
    let Some(attempt) = random() else {
        return false;
    };
    endpoint.reset_handed_off(attempt);
    let link = endpoint.link();
    link.send_control(
        endpoint.id(),
        Control::Handoff {
            token: ticket.token,
            attempt,
            to: to.to_owned(),
        },
    );
    match endpoint.wait_handed_off(timeout(HANDOFF_TIMEOUT)) {
        Some(Ok(())) if endpoint.queue().is_empty() && !endpoint.peer_has_closed() => true,
        // The end's node could not push it on: it stays as it was.
        Some(Err(why)) => {
            tracing::debug!(target: "places", "a channel end is relayed: {why}");
            false
        }
        _ => {
            link.send_control(endpoint.id(), Control::Resume(ticket.token));
            false
        }
    }
}

/// An end pushed here, by token.
struct Adopted {
    /// The id its node opened here (`None` until its `Adopt` comes).
    ep: Option<Arc<Endpoint>>,
    /// A message naming the token arrived (it is kept until that message is decoded or
    /// dropped).
    expected: bool,
    /// The message naming it was dropped: an `Adopt` that comes later is refused.
    doomed: bool,
    since: Instant,
    /// The link the `Adopt` came on (its address, to count each peer's adoptions).
    link: usize,
    /// When the end's node closed the adopted id (it is kept a while after, for its message).
    closed_since: Option<Instant>,
}

fn link_key(link: &LinkRef) -> usize {
    Arc::as_ptr(link).cast::<u8>() as usize
}

impl Adopted {
    /// A mark for a token, with nothing known of it yet (`link`: where its `Adopt` came, if
    /// it did).
    fn new(link: usize) -> Self {
        Adopted {
            ep: None,
            expected: false,
            doomed: false,
            since: Instant::now(),
            link,
            closed_since: None,
        }
    }
}

struct Adoptions {
    by_token: Mutex<HashMap<u64, Adopted>>,
}

fn adoptions() -> &'static Adoptions {
    static ADOPTIONS: OnceLock<Adoptions> = OnceLock::new();
    ADOPTIONS.get_or_init(|| {
        // Ends adopted for a message that never comes close after a while.
        let _ = std::thread::Builder::new()
            .name("places handoff sweeper".into())
            .spawn(|| loop {
                std::thread::sleep(Duration::from_secs(1));
                sweep();
            });
        Adoptions {
            by_token: Mutex::new(HashMap::new()),
        }
    })
}

/// Closes the adopted ends no message came for, and forgets the marks of the rest that aged.
fn sweep() {
    let limit = timeout(CLAIM_TIMEOUT);
    let mut stale = Vec::new();
    lock(&adoptions().by_token).retain(|_, a| {
        let keep = match &a.ep {
            // Waits for its message's consumer, however long it takes.
            Some(_) if a.expected => true,
            // Waits for its message while its node keeps it open (its holder is sending the
            // message), and a while after (the message may be on its way), but not for ever.
            Some(ep) => {
                let closed_for = ep
                    .peer_has_closed()
                    .then(|| a.closed_since.get_or_insert_with(Instant::now).elapsed());
                // (No bound while it is open: the end's node closes it when the holder goes,
                // and the room for such ends is bounded by count.)
                closed_for.is_none_or(|t| t < limit)
            }
            None => a.since.elapsed() < limit,
        };
        if !keep {
            stale.extend(a.ep.take());
        }
        keep
    });
    for ep in stale {
        ep.close();
    }
}

/// The peer's `Adopt(token)` on a fresh id `id` of `link`: an end pushed here for a message
/// that names the token. Answers it (`HandedOff` when kept; `Kept` with the reason and a close
/// when refused). Never waits.
pub(crate) fn adopt(link: &LinkRef, id: u64, token: u64) {
    let refuse = |why: String| {
        link.send_control(
            id,
            Control::Kept {
                attempt: token,
                why,
            },
        );
        link.send_control(id, Control::Close);
    };
    if !is_token(token) {
        return refuse("not a channel end's token".into());
    }
    let ad = adoptions();
    let key = link_key(link);
    {
        let by = lock(&ad.by_token);
        match by.get(&token) {
            Some(a) if a.doomed => {
                return refuse("the message that carried this channel end was dropped".into())
            }
            Some(a) if a.ep.is_some() => return refuse("this channel end came already".into()),
            _ => {}
        }
        let waiting_all = by
            .values()
            .filter(|a| a.ep.is_some() && !a.expected)
            .count();
        let waiting = by
            .values()
            .filter(|a| a.ep.is_some() && !a.expected && a.link == key)
            .count();
        if waiting >= MAX_UNEXPECTED || waiting_all >= MAX_MARKS {
            return refuse(format!(
                "{waiting} channel ends wait here for their messages already"
            ));
        }
    }
    // Registered outside the adoptions' lock (a table's lock is taken before it elsewhere);
    // the send window is the ticket's, set when the message is decoded.
    let ep = Endpoint::new(link.clone(), id, link.settings().window, Window::DEFAULT);
    link.table().register(ep.clone());
    let mut by = lock(&ad.by_token);
    let a = by.entry(token).or_insert_with(|| Adopted::new(key));
    if a.doomed || a.ep.is_some() {
        drop(by);
        link.send_control(
            id,
            Control::Kept {
                attempt: token,
                why: "the channel end was given up meanwhile".into(),
            },
        );
        Endpoint::close_soon(ep);
        return;
    }
    a.ep = Some(ep);
    a.link = key;
    a.since = Instant::now();
    drop(by);
    link.send_control(id, Control::HandedOff { attempt: token });
}

/// A message naming `token` arrived: the end adopted for it waits for that message's decode
/// (or drop), however long it takes. Never waits.
pub(crate) fn expect(token: u64) {
    let ad = adoptions();
    let mut by = lock(&ad.by_token);
    if let Some(a) = mark(&mut by, token) {
        a.expected = true;
    }
}

/// The entry for `token`, made if there is room.
fn mark(by: &mut HashMap<u64, Adopted>, token: u64) -> Option<&mut Adopted> {
    if !by.contains_key(&token) && by.len() >= MAX_MARKS {
        return None;
    }
    Some(by.entry(token).or_insert_with(|| Adopted::new(0)))
}

/// The message naming `token` is dropped without being decoded: the end pushed for it closes
/// (now, or when its `Adopt` comes). Never waits.
pub(crate) fn abandon(token: u64) {
    let ad = adoptions();
    let ep = {
        let mut by = lock(&ad.by_token);
        let Some(a) = mark(&mut by, token) else {
            return;
        };
        a.doomed = true;
        a.expected = false;
        a.since = Instant::now();
        a.ep.take()
    };
    if let Some(ep) = ep {
        Endpoint::close_soon(ep);
    }
}

/// The next holder's side, decoding a message with `ticket`: the end its node pushed here
/// (always before the message was sent: never waited for).
pub(crate) fn take(ticket: &Ticket) -> Result<Arc<Endpoint>, String> {
    let taken = {
        let mut by = lock(&adoptions().by_token);
        match by.get(&ticket.token) {
            Some(Adopted { ep: Some(_), .. }) => by.remove(&ticket.token).and_then(|a| a.ep),
            _ => None,
        }
    };
    match taken {
        Some(ep) => {
            ep.set_send_window(Window::new(ticket.bytes, ticket.messages));
            // Sent on again, the end may be pushed on again by its node.
            let _ = ep.ticket.set(ticket.clone());
            Ok(ep)
        }
        None => {
            abandon(ticket.token);
            Err(format!(
                "the channel end from {} is not here (it was given up, or never pushed)",
                ticket.node
            ))
        }
    }
}
