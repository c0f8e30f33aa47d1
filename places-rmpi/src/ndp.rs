//! Nested data parallelism on distributed places (dissertation section 4.3.4), built on the
//! RMPI layer: a group of places on nodes, linked directly, in which member 0 coordinates and
//! the others work. A procedure running on a worker (a `#[procedure]`) asks the coordinator
//! for a free worker with [`ndp_get_node`], hands it part of its problem with [`ndp_send_work`]
//! (a procedure address and its input), solves the rest itself, collects the part with
//! [`ndp_get_result`] and gives the worker back with [`ndp_return_node`]; when no worker is
//! free it solves the part itself, as the dissertation's `ndp-parallel-qsort` does.
//!
//! # Examples
//!
//! ```no_run
//! use places::rmpi::ndp::{make_ndp_group, ndp_get_node, ndp_get_result, ndp_return_node, ndp_send_work};
//! use places::rmpi::map_reduce::MapReduceConfig;
//!
//! #[places::procedure]
//! fn qsort(v: Vec<i64>) -> Vec<i64> {
//!     if v.len() < 2 {
//!         return v;
//!     }
//!     let pivot = v[v.len() / 2];
//!     let lt: Vec<i64> = v.iter().copied().filter(|&x| x < pivot).collect();
//!     let eq: Vec<i64> = v.iter().copied().filter(|&x| x == pivot).collect();
//!     let gt: Vec<i64> = v.iter().copied().filter(|&x| x > pivot).collect();
//!     // The greater part goes to a free worker, or stays here.
//!     let (remote, gt) = match ndp_get_node() {
//!         Some(n) => (Some((ndp_send_work(&n, &places::proc_addr!(qsort), gt).unwrap(), n)), vec![]),
//!         None => (None, gt),
//!     };
//!     let mut out = qsort(lt);
//!     out.extend(eq);
//!     match remote {
//!         Some((work, node)) => {
//!             out.extend(ndp_get_result(work).unwrap());
//!             ndp_return_node(node);
//!         }
//!         None => out.extend(qsort(gt)),
//!     }
//!     out
//! }
//!
//! #[places::main]
//! fn main() {
//!     let group = make_ndp_group(&MapReduceConfig::local(3)).unwrap();
//!     let sorted = group.run(&places::proc_addr!(qsort), vec![9128, 3, 7, 46, 5, 10]).unwrap();
//!     assert_eq!(sorted, [3, 5, 7, 10, 46, 9128]);
//! }
//! ```

use std::cell::RefCell;
use std::collections::{HashMap, VecDeque};
use std::marker::PhantomData;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use places_core::codec::Packed;
use places_core::{
    lookup_procedure, ChannelError, Comm, Message, PlaceChannel, ProcAddr, ProcError, Tag,
};
use places_net::mesh::MeshInvitation;
use serde::{Deserialize, Serialize};

use crate::map_reduce::{start_linked, MapReduceConfig};
use crate::{Collectives, RmpiError};

/// Why an NDP group could not start or run.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NdpError {
    /// The procedure address is unknown or of other types (checked before anything is sent).
    #[error(transparent)]
    Procedure(#[from] ProcError),
    /// A member could not start or join the group (a group needs a coordinator and at least
    /// one worker: two hosts).
    #[error("could not start NDP member {member}: {reason}")]
    Start {
        /// The member's index in the config.
        member: usize,
        /// What went wrong.
        reason: String,
    },
    /// The work failed: a procedure panicked, or a member is gone.
    #[error("NDP work failed: {0}")]
    Work(String),
    /// A value could not be encoded or decoded.
    #[error(transparent)]
    Codec(#[from] places_core::CodecError),
}

// Inputs and results are `Packed` values and travel as messages of their own: a numeric
// vector is written from its own memory and taken from the receive buffer, never through
// serde. Each header below says what follows it. The program's input and result travel
// between the program and the worker that runs it, on the worker's data channel, not through
// the coordinator.
//
// The coordinator keeps who is free. A worker is taken by a program's run or lent by
// `ndp_get_node` for one work. It says when it starts work from a member (`Started`) and when
// it finished it (`Idle`, or `Result` for a program's run); a worker lent and never sent work
// is free when given back, when its procedure ends, or when the member it was lent to dies.
// So a procedure that panics or a member that dies with workers on loan loses none of them.
// Runs and works carry ids: a run never takes another run's reply, and results collected out
// of order are kept until asked for; results nobody will collect are dropped.

/// What the program tells the members: each its invitation at the start, each worker its data
/// channel, and the coordinator the runs.
#[derive(Serialize, Deserialize)]
#[doc(hidden)]
pub enum NdpCommand {
    Join(MeshInvitation),
    /// A worker's end of the channel that carries the program's inputs and results.
    Data(PlaceChannel<Packed, Packed>),
    /// Run a procedure; the coordinator answers which worker takes the input.
    Run {
        run: u64,
        module: String,
        name: String,
    },
}

/// What a member's place answers the program.
#[derive(Serialize, Deserialize)]
#[doc(hidden)]
pub enum NdpReply {
    Ready,
    /// The worker whose data channel takes run `run`'s input.
    Assigned {
        run: u64,
        worker: usize,
    },
    /// Run `run` ended; when it succeeded, its result is on the worker's data channel.
    Done {
        run: u64,
        result: Result<(), String>,
    },
}

/// Messages to the coordinator.
#[derive(Serialize, Deserialize)]
enum ToCoordinator {
    GetNode,
    /// A worker lent to this one and never sent work.
    ReturnNode(usize),
    /// This worker took work from worker `from`.
    Started {
        from: usize,
    },
    /// This worker finished work for another worker.
    Idle,
    /// This worker finished the program's run `run`; when it succeeded, the result was put on
    /// the worker's data channel before this.
    Result {
        run: u64,
        result: Result<(), String>,
    },
}

/// Work for a worker: its input follows from `reply_to` (tag [`INPUT`]), or, for the
/// program's run `id` (`reply_to` `None`), on the worker's data channel.
#[derive(Serialize, Deserialize)]
struct Work {
    id: u64,
    module: String,
    name: String,
    reply_to: Option<usize>,
}

const TO_COORDINATOR: Tag = Tag::user(1);
const GRANT: Tag = Tag::user(2);
const WORK: Tag = Tag::user(3);
/// A worker's `(work id, Result<(), String>)` to the member that sent it work; the bytes
/// follow (tag [`OUTPUT`]) when `Ok`.
const RESULT: Tag = Tag::user(4);
/// The input bytes after a [`Work`].
const INPUT: Tag = Tag::user(5);
/// The result bytes after an `Ok` [`RESULT`].
const OUTPUT: Tag = Tag::user(6);

thread_local! {
    /// The worker's group while one of its procedures runs.
    static CURRENT: RefCell<Option<Comm>> = const { RefCell::new(None) };
    /// The workers lent to the running procedure that it has not sent work yet.
    static UNSENT: RefCell<Vec<usize>> = const { RefCell::new(Vec::new()) };
    /// Results that arrived before the running procedure asked for them, by sender and work
    /// id (a worker lent twice answers in the order it was sent work, not in the order its
    /// results are collected).
    static EARLY: RefCell<HashMap<(usize, u64), Outcome>> = RefCell::new(HashMap::new());
}

/// What a work came to: its result, or why it failed.
type Outcome = Result<Packed, String>;

/// Ids of the works this process sends, unique within it.
static NEXT_WORK: AtomicU64 = AtomicU64::new(1);

fn with_group<T>(f: impl FnOnce(&Comm) -> T) -> T {
    CURRENT.with(|c| {
        let c = c.borrow();
        let comm = c
            .as_ref()
            .expect("the ndp_* functions are called inside a procedure an NDP group runs");
        f(comm)
    })
}

/// A worker of the group, lent by [`ndp_get_node`] for one work: once it has answered, it is
/// free for others (get it again for more).
#[derive(Debug)]
#[must_use = "a node is given back with ndp_return_node"]
pub struct NdpNode {
    rank: usize,
    sent: std::cell::Cell<bool>,
}

impl NdpNode {
    /// The worker's rank in the group.
    pub fn rank(&self) -> usize {
        self.rank
    }
}

/// Work sent to a worker, whose result [`ndp_get_result`] collects.
#[derive(Debug)]
#[must_use = "the result is collected with ndp_get_result"]
pub struct NdpWork<O> {
    from: usize,
    id: u64,
    _out: PhantomData<fn() -> O>,
}

/// A free worker of the group, or `None` when all are busy (then solve the part here).
///
/// # Panics
///
/// Outside a procedure an NDP group runs, or when the coordinator is gone.
pub fn ndp_get_node() -> Option<NdpNode> {
    with_group(|comm| {
        comm.send_tagged(0, TO_COORDINATOR, ToCoordinator::GetNode)
            .expect("the NDP coordinator is there");
        let granted: Option<usize> = comm.recv_tagged(0, GRANT).expect("the coordinator answers");
        if let Some(w) = granted {
            UNSENT.with(|u| u.borrow_mut().push(w));
        }
        granted.map(|rank| NdpNode {
            rank,
            sent: std::cell::Cell::new(false),
        })
    })
}

/// Sends `input` to `node`, which runs the procedure at `addr` on it. A node lent takes one
/// work: after its answer it may be lent to others.
///
/// # Errors
///
/// [`RmpiError::Init`] for an address that is not registered with these types, or a node
/// that was sent work already, and [`RmpiError::Comm`] when the worker is gone.
pub fn ndp_send_work<I: Message, O: Message>(
    node: &NdpNode,
    addr: &ProcAddr<I, O>,
    input: I,
) -> Result<NdpWork<O>, RmpiError> {
    addr.check().map_err(|e| RmpiError::Init(e.to_string()))?;
    if node.sent.replace(true) {
        return Err(RmpiError::Init(format!(
            "worker {} was sent work on this loan already: get a node again with ndp_get_node",
            node.rank
        )));
    }
    let input = Packed::pack(input).map_err(|e| RmpiError::Init(e.to_string()))?;
    with_group(|comm| {
        let work = Work {
            id: NEXT_WORK.fetch_add(1, Ordering::Relaxed),
            module: addr.module().to_owned(),
            name: addr.name().to_owned(),
            reply_to: Some(comm.id()),
        };
        let id = work.id;
        comm.send_tagged(node.rank, WORK, work)?;
        // From here the worker says itself when it is free again.
        UNSENT.with(|u| u.borrow_mut().retain(|&w| w != node.rank));
        comm.send_tagged(node.rank, INPUT, input)?;
        Ok(NdpWork {
            from: node.rank,
            id,
            _out: PhantomData,
        })
    })
}

/// Waits for the result of `work`.
///
/// # Errors
///
/// [`RmpiError::Comm`] when the worker is gone, [`RmpiError::Init`] when the procedure failed
/// there.
pub fn ndp_get_result<O: Message>(work: NdpWork<O>) -> Result<O, RmpiError> {
    let early = EARLY.with(|e| e.borrow_mut().remove(&(work.from, work.id)));
    let packed: Packed = match early {
        Some(got) => got.map_err(RmpiError::Init)?,
        None => with_group(|comm| loop {
            let (id, head): (u64, Result<(), String>) = comm.recv_tagged(work.from, RESULT)?;
            let packed = match head {
                Ok(()) => Ok(comm.recv_tagged::<Packed>(work.from, OUTPUT)?),
                Err(e) => Err(e),
            };
            if id == work.id {
                break packed.map_err(RmpiError::Init);
            }
            EARLY.with(|e| e.borrow_mut().insert((work.from, id), packed));
        })?,
    };
    packed.unpack().map_err(|e| RmpiError::Init(e.to_string()))
}

/// Gives `node` back to the group. (A worker that was sent work is free again once it has
/// answered, given back or not; one that was not is free from here.)
///
/// # Panics
///
/// Outside a procedure an NDP group runs, or when the coordinator is gone.
pub fn ndp_return_node(node: NdpNode) {
    let unsent = UNSENT.with(|u| {
        let mut u = u.borrow_mut();
        let had = u.contains(&node.rank);
        u.retain(|&w| w != node.rank);
        had
    });
    if unsent {
        with_group(|comm| {
            comm.send_tagged(0, TO_COORDINATOR, ToCoordinator::ReturnNode(node.rank))
                .expect("the NDP coordinator is there");
        });
    }
}

/// Runs the procedure `module::name` on packed input, with the group lent to the ndp_*
/// functions; a panic becomes its message. Workers lent to it and never sent work are given
/// back.
fn run_procedure(
    comm: Comm,
    module: &str,
    name: &str,
    input: Packed,
) -> (Comm, Result<Packed, String>) {
    let Some(entry) = lookup_procedure(module, name) else {
        return (comm, Err(format!("no procedure `{module}::{name}` here")));
    };
    CURRENT.with(|c| *c.borrow_mut() = Some(comm));
    let out = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| entry.call_packed(input)));
    let comm = CURRENT
        .with(|c| c.borrow_mut().take())
        .unwrap_or_else(|| unreachable!("the group was lent for the call"));
    for w in UNSENT.with(|u| std::mem::take(&mut *u.borrow_mut())) {
        let _ = comm.send_tagged(0, TO_COORDINATOR, ToCoordinator::ReturnNode(w));
    }
    // Results of work the procedure sent and never collected are nobody's now (ids are never
    // reused; one that comes later is dropped while this worker waits for work, or kept in
    // `EARLY` until the procedure then running ends).
    EARLY.with(|e| e.borrow_mut().clear());
    let out = match out {
        Ok(Ok(bytes)) => Ok(bytes),
        Ok(Err(e)) => Err(e.to_string()),
        Err(p) => Err(format!(
            "`{module}::{name}` panicked: {}",
            places_core::__private::panic_message(&*p)
        )),
    };
    (comm, out)
}

/// A member of an NDP group: member 0 coordinates, the others work.
#[places_macros::place(crate = ::places_core)]
pub fn ndp_member(ch: PlaceChannel<NdpReply, NdpCommand>) {
    let Ok(NdpCommand::Join(invitation)) = ch.get() else {
        return;
    };
    let Ok(comm) = invitation.join() else {
        return;
    };
    if ch.put(NdpReply::Ready).is_err() {
        return;
    }
    if comm.id() == 0 {
        coordinate(&comm, &ch);
    } else if let Ok(NdpCommand::Data(data)) = ch.get() {
        work(comm, &data);
    }
}

/// The coordinator's view of the workers. A worker is free when it is alive, lent to nobody,
/// has no work it started and not finished, and no program run.
struct Workers {
    free: VecDeque<usize>,
    is_free: Vec<bool>,
    dead: Vec<bool>,
    /// The member each worker is lent to and has not started work from yet.
    lent: Vec<Option<usize>>,
    /// Works each worker started for other workers and has not finished.
    works: Vec<u32>,
    /// The program's run each worker has, if any.
    runs: Vec<Option<u64>>,
}

impl Workers {
    fn new(n: usize) -> Self {
        Self {
            free: (1..n).collect(),
            is_free: (0..n).map(|r| r > 0).collect(),
            dead: vec![false; n],
            lent: vec![None; n],
            works: vec![0; n],
            runs: vec![None; n],
        }
    }

    /// Lends a free worker to `to` (`0`: the program's run, kept in `runs`).
    fn take(&mut self, to: usize) -> Option<usize> {
        let w = self.free.pop_front()?;
        self.is_free[w] = false;
        if to > 0 {
            self.lent[w] = Some(to);
        }
        Some(w)
    }

    /// Puts `w` on the free list, or takes it off, as its state says.
    fn settle(&mut self, w: usize) {
        if w == 0 || w >= self.dead.len() {
            return;
        }
        let free =
            !self.dead[w] && self.lent[w].is_none() && self.works[w] == 0 && self.runs[w].is_none();
        if free && !self.is_free[w] {
            self.is_free[w] = true;
            self.free.push_back(w);
        } else if !free && self.is_free[w] {
            self.is_free[w] = false;
            self.free.retain(|&f| f != w);
        }
    }

    /// `w` started work from `from`.
    fn started(&mut self, w: usize, from: usize) {
        self.works[w] += 1;
        if self.lent[w] == Some(from) {
            self.lent[w] = None;
        }
        self.settle(w);
    }

    /// `w` finished a work for another worker.
    fn finished(&mut self, w: usize) {
        self.works[w] = self.works[w].saturating_sub(1);
        self.settle(w);
    }

    /// `by` gives back `w`, lent and never sent work.
    fn returned(&mut self, w: usize, by: usize) {
        if w < self.lent.len() && self.lent[w] == Some(by) {
            self.lent[w] = None;
            self.settle(w);
        }
    }

    /// Worker `w` is gone: never lent again, and what was lent to it and never sent work is
    /// free again; its run, if any, is returned.
    fn bury(&mut self, w: usize) -> Option<u64> {
        self.dead[w] = true;
        self.settle(w);
        for v in 1..self.lent.len() {
            if self.lent[v] == Some(w) {
                self.lent[v] = None;
                self.settle(v);
            }
        }
        self.runs[w].take()
    }
}

/// The coordinator: lends free workers, and assigns the program's runs to one.
fn coordinate(comm: &Comm, ch: &PlaceChannel<NdpReply, NdpCommand>) {
    let n = comm.cnt();
    let mut workers = Workers::new(n);
    let mut requests: Vec<_> = (1..n)
        .map(|r| Some(comm.irecv_tagged::<ToCoordinator>(r, TO_COORDINATOR)))
        .collect();
    let mut nap = 0u32;
    loop {
        let mut idle = true;
        match ch.try_get() {
            Ok(NdpCommand::Run { run, module, name }) => {
                idle = false;
                let reply = match workers.take(0) {
                    Some(w) => {
                        let work = Work {
                            id: run,
                            module,
                            name,
                            reply_to: None,
                        };
                        match comm.send_tagged(w, WORK, work) {
                            Ok(()) => {
                                workers.runs[w] = Some(run);
                                workers.settle(w);
                                NdpReply::Assigned { run, worker: w }
                            }
                            Err(e) => {
                                workers.bury(w);
                                NdpReply::Done {
                                    run,
                                    result: Err(format!("worker {w} is gone: {e}")),
                                }
                            }
                        }
                    }
                    None => NdpReply::Done {
                        run,
                        result: Err("every worker is busy".into()),
                    },
                };
                if ch.put(reply).is_err() {
                    return;
                }
            }
            Ok(NdpCommand::Join(_) | NdpCommand::Data(_)) => {}
            Err(ChannelError::Empty) => {}
            Err(_) => return,
        }
        for (i, slot) in requests.iter_mut().enumerate() {
            let rank = i + 1;
            let Some(request) = slot else { continue };
            match request.test() {
                Ok(false) => continue,
                Ok(true) => {}
                Err(e) => {
                    *slot = None;
                    if let Some(run) = workers.bury(rank) {
                        let result = Err(format!("worker {rank} is gone: {e}"));
                        if ch.put(NdpReply::Done { run, result }).is_err() {
                            return;
                        }
                    }
                    continue;
                }
            }
            idle = false;
            let done = std::mem::replace(
                request,
                comm.irecv_tagged::<ToCoordinator>(rank, TO_COORDINATOR),
            );
            match done.wait() {
                Ok(ToCoordinator::GetNode) => {
                    let granted = workers.take(rank);
                    if comm.send_tagged(rank, GRANT, granted).is_err() {
                        if let Some(w) = granted {
                            workers.returned(w, rank);
                        }
                    }
                }
                Ok(ToCoordinator::ReturnNode(w)) => workers.returned(w, rank),
                Ok(ToCoordinator::Started { from }) => workers.started(rank, from),
                Ok(ToCoordinator::Idle) => workers.finished(rank),
                Ok(ToCoordinator::Result { run, result }) => {
                    workers.runs[rank] = None;
                    workers.settle(rank);
                    if ch.put(NdpReply::Done { run, result }).is_err() {
                        return;
                    }
                }
                Err(_) => {}
            }
        }
        if idle {
            rest(&mut nap);
        } else {
            nap = 0;
        }
    }
}

/// Between two idle rounds of polling: yields at first, then sleeps for growing times (at
/// most a millisecond).
fn rest(nap: &mut u32) {
    *nap = nap.saturating_add(1);
    if *nap > 64 {
        std::thread::sleep(Duration::from_micros(u64::from((*nap).min(1000))));
    } else {
        std::thread::yield_now();
    }
}

/// The next work sent to this worker by a member of `live`, which loses the members seen
/// gone; `None` when the coordinator is gone (the group is over).
fn next_work(comm: &Comm, live: &mut Vec<usize>) -> Option<(usize, Work)> {
    let mut requests: Vec<_> = live
        .iter()
        .map(|&r| comm.irecv_tagged::<Work>(r, WORK))
        .collect();
    let mut nap = 0;
    loop {
        let mut i = 0;
        while i < requests.len() {
            match requests[i].test() {
                Ok(true) => {
                    let from = live[i];
                    return requests.swap_remove(i).wait().ok().map(|w| (from, w));
                }
                Ok(false) => i += 1,
                Err(_) if live[i] == 0 => return None,
                // Another worker gone: this one still serves the rest.
                Err(_) => {
                    drop(requests.swap_remove(i));
                    live.swap_remove(i);
                }
            }
        }
        // Between procedures every result that comes is of work nobody collects any more
        // (its procedure ended): dropped, so that none piles up.
        for &r in live.iter() {
            while let Ok(Some(_)) = comm.try_recv_tagged::<(u64, Result<(), String>)>(r, RESULT) {}
            while let Ok(Some(_)) = comm.try_recv_tagged::<Packed>(r, OUTPUT) {}
        }
        rest(&mut nap);
    }
}

/// A worker: waits for work from any member, runs it, and answers whoever sent it (the
/// program's runs on `data`); then tells the coordinator it is free.
fn work(mut comm: Comm, data: &PlaceChannel<Packed, Packed>) {
    let mut live: Vec<usize> = (0..comm.cnt()).filter(|&r| r != comm.id()).collect();
    loop {
        let Some((from, w)) = next_work(&comm, &mut live) else {
            return;
        };
        if w.reply_to.is_some()
            && comm
                .send_tagged(0, TO_COORDINATOR, ToCoordinator::Started { from })
                .is_err()
        {
            return;
        }
        let input = match w.reply_to {
            Some(_) => comm
                .recv_tagged::<Packed>(from, INPUT)
                .map_err(|e| e.to_string()),
            None => data.get().map_err(|e| e.to_string()),
        };
        let out = match input {
            Ok(input) => {
                let (back, out) = run_procedure(comm, &w.module, &w.name, input);
                comm = back;
                out
            }
            Err(e) => Err(format!("the input did not arrive: {e}")),
        };
        let told = match w.reply_to {
            Some(to) => {
                // The member that sent the work may be gone; the group goes on.
                let (head, packed) = match out {
                    Ok(p) => (Ok(()), Some(p)),
                    Err(e) => (Err(e), None),
                };
                let _ = comm
                    .send_tagged(to, RESULT, (w.id, head))
                    .and_then(|()| match packed {
                        Some(p) => comm.send_tagged(to, OUTPUT, p),
                        None => Ok(()),
                    });
                comm.send_tagged(0, TO_COORDINATOR, ToCoordinator::Idle)
            }
            None => {
                // The bytes first: the program reads them while it waits for the news.
                let result = match out {
                    Ok(p) => data
                        .put(p)
                        .map_err(|e| format!("the result could not be sent: {e}")),
                    Err(e) => Err(e),
                };
                comm.send_tagged(
                    0,
                    TO_COORDINATOR,
                    ToCoordinator::Result { run: w.id, result },
                )
            }
        };
        if told.is_err() {
            // The coordinator is gone: the group is over.
            return;
        }
    }
}

/// The group [`make_ndp_group`] starts: member 0 coordinates, the others work. Its nodes end
/// when it is dropped.
pub struct NdpGroup {
    members: Vec<crate::map_reduce::Linked<NdpCommand, NdpReply>>,
    /// The program's ends of the workers' data channels (index 0, the coordinator's, unused).
    data: Vec<PlaceChannel<Packed, Packed>>,
    /// The id of the last run; held for the whole of a run, so that runs from several
    /// threads take turns.
    runs: Mutex<u64>,
}

impl std::fmt::Debug for NdpGroup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NdpGroup")
            .field("members", &self.members.len())
            .finish()
    }
}

/// Starts an NDP group on the nodes of `config` (the seed's `make-ndp-group`): the first is
/// the coordinator, the others are workers, all linked directly.
///
/// # Errors
///
/// [`NdpError::Start`] naming the member that could not start, or when `config` has fewer
/// than two hosts.
pub fn make_ndp_group(config: &MapReduceConfig) -> Result<NdpGroup, NdpError> {
    let members = start_linked(
        config,
        module_path!(),
        "ndp_member",
        NdpCommand::Join,
        |r: &NdpReply| matches!(r, NdpReply::Ready),
    )
    .map_err(|(member, reason)| NdpError::Start { member, reason })?;
    if members.len() < 2 {
        return Err(NdpError::Start {
            member: 0,
            reason: "an NDP group needs a coordinator and at least one worker (two hosts)".into(),
        });
    }
    let mut data = Vec::with_capacity(members.len());
    for (i, (_, place)) in members.iter().enumerate() {
        let (ours, theirs) = places_core::place_channel();
        if i > 0 {
            place
                .put(NdpCommand::Data(theirs))
                .map_err(|e| NdpError::Start {
                    member: i,
                    reason: format!("its data channel: {e}"),
                })?;
        }
        data.push(ours);
    }
    Ok(NdpGroup {
        members,
        data,
        runs: Mutex::new(0),
    })
}

impl NdpGroup {
    /// Runs the procedure at `addr` on `input` on a free worker of the group, which may hand
    /// parts of it to other workers, and returns its result (the seed's `ndp-qsort` stub).
    /// Runs from several threads take turns.
    ///
    /// # Errors
    ///
    /// [`NdpError::Procedure`] before anything is sent for a wrong address or types;
    /// [`NdpError::Work`] when the procedure fails or a member is gone.
    pub fn run<I: Message, O: Message>(
        &self,
        addr: &ProcAddr<I, O>,
        input: I,
    ) -> Result<O, NdpError> {
        addr.check()?;
        let input = Packed::pack(input)?;
        // Refused before the run begins: a worker waits for the input of the run it is given.
        let limit = self.members[1..]
            .iter()
            .map(|(node, _)| node.max_message())
            .min()
            .unwrap_or(u64::MAX);
        if input.len() as u64 > limit {
            return Err(NdpError::Work(format!(
                "the input is {} encoded bytes, over the {limit} the workers' nodes accept",
                input.len()
            )));
        }
        let mut last = self.runs.lock().unwrap_or_else(|p| p.into_inner());
        *last += 1;
        let run = *last;
        let coordinator = self.members[0].1.channel();
        let gone = |e: ChannelError| NdpError::Work(format!("the coordinator is gone: {e}"));
        coordinator
            .put(NdpCommand::Run {
                run,
                module: addr.module().to_owned(),
                name: addr.name().to_owned(),
            })
            .map_err(gone)?;
        // Replies about earlier runs (one that failed before its news came) are dropped.
        let w = loop {
            match coordinator.get().map_err(gone)? {
                NdpReply::Assigned { run: r, worker } if r == run => break worker,
                NdpReply::Done { run: r, result } if r == run => {
                    let e = result
                        .err()
                        .unwrap_or_else(|| "done before it began".into());
                    return Err(NdpError::Work(e));
                }
                _ => {}
            }
        };
        let Some(data) = self.data.get(w).filter(|_| w > 0) else {
            return Err(NdpError::Work(format!(
                "the coordinator named no worker ({w})"
            )));
        };
        let worker_gone =
            |e: ChannelError| NdpError::Work(format!("worker {w} ({}) is gone: {e}", self.node(w)));
        data.put(input).map_err(worker_gone)?;
        // The coordinator says when the run ended (and when the worker died); the worker's
        // data channel failing says so too.
        let mut result: Option<Packed> = None;
        loop {
            let mut select = places_core::Select::new();
            let news = select.recv(coordinator);
            let bytes = (result.is_none()).then(|| select.recv(data));
            let event = select.select();
            if Some(event.index()) == bytes {
                result = Some(event.recv(data).map_err(worker_gone)?);
                continue;
            }
            debug_assert_eq!(event.index(), news);
            match event.recv(coordinator).map_err(gone)? {
                NdpReply::Done {
                    run: r,
                    result: Ok(()),
                } if r == run => {
                    let packed = match result {
                        Some(p) => p,
                        None => data.get().map_err(worker_gone)?,
                    };
                    return Ok(packed.unpack()?);
                }
                NdpReply::Done {
                    run: r,
                    result: Err(e),
                } if r == run => return Err(NdpError::Work(e)),
                _ => {}
            }
        }
    }

    /// The name of member `i`'s node.
    fn node(&self, i: usize) -> String {
        self.members[i].0.name().to_owned()
    }
}
