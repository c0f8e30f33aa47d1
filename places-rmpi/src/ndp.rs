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
//!     let remote = ndp_get_node().map(|n| (ndp_send_work(&n, &places::proc_addr!(qsort), &gt).unwrap(), n));
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
use std::collections::VecDeque;
use std::marker::PhantomData;
use std::time::Duration;

use places_core::{
    codec, lookup_procedure, ChannelError, Comm, Message, PlaceChannel, ProcAddr, ProcError, Tag,
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

// Inputs and results are bytes from `codec::encode_with_raw` and travel as messages of their
// own, `Vec<u8>`s on the raw path: written from their memory and taken as the receive buffer,
// never through serde. Each header below says what bytes follow it.

// The program's input and result travel between the program and the worker that runs it, on
// the worker's data channel, not through the coordinator.

/// What the program tells the members: each its invitation at the start, each worker its data
/// channel, and the coordinator the runs.
#[derive(Serialize, Deserialize)]
#[doc(hidden)]
pub enum NdpCommand {
    Join(MeshInvitation),
    /// A worker's end of the channel that carries the program's inputs and results.
    Data(PlaceChannel<Vec<u8>, Vec<u8>>),
    /// Run a procedure; the coordinator answers which worker takes the input.
    Run {
        module: String,
        name: String,
    },
}

/// What a member's place answers the program.
#[derive(Serialize, Deserialize)]
#[doc(hidden)]
pub enum NdpReply {
    Ready,
    /// The worker whose data channel takes the run's input.
    Assigned(usize),
    /// A run ended; when it succeeded, its result follows on the worker's data channel.
    Done(Result<(), String>),
}

/// Messages to the coordinator.
#[derive(Serialize, Deserialize)]
enum ToCoordinator {
    GetNode,
    ReturnNode(usize),
    /// The program's run ended on this worker; when it succeeded, the result follows on the
    /// worker's data channel.
    Result(Result<(), String>),
}

/// Work for a worker. Its input follows from `reply_to` (tag [`INPUT`]), or, for the
/// program's run (`None`), on the worker's data channel.
#[derive(Serialize, Deserialize)]
struct Work {
    module: String,
    name: String,
    reply_to: Option<usize>,
}

const TO_COORDINATOR: Tag = Tag::user(1);
const GRANT: Tag = Tag::user(2);
const WORK: Tag = Tag::user(3);
/// A worker's `Result<(), String>` to the member that sent it work; bytes follow when `Ok`.
const RESULT: Tag = Tag::user(4);
/// The input bytes after a [`Work`].
const INPUT: Tag = Tag::user(5);
/// The result bytes after an `Ok` [`RESULT`].
const OUTPUT: Tag = Tag::user(6);

thread_local! {
    /// The worker's group while one of its procedures runs.
    static CURRENT: RefCell<Option<Comm>> = const { RefCell::new(None) };
}

fn with_group<T>(f: impl FnOnce(&Comm) -> T) -> T {
    CURRENT.with(|c| {
        let c = c.borrow();
        let comm = c
            .as_ref()
            .expect("the ndp_* functions are called inside a procedure an NDP group runs");
        f(comm)
    })
}

/// A worker of the group, lent by [`ndp_get_node`].
#[derive(Debug)]
#[must_use = "a node is given back with ndp_return_node"]
pub struct NdpNode(usize);

impl NdpNode {
    /// The worker's rank in the group.
    pub fn rank(&self) -> usize {
        self.0
    }
}

/// Work sent to a worker, whose result [`ndp_get_result`] collects.
#[derive(Debug)]
#[must_use = "the result is collected with ndp_get_result"]
pub struct NdpWork<O> {
    from: usize,
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
        granted.map(NdpNode)
    })
}

/// Sends `input` to `node`, which runs the procedure at `addr` on it.
///
/// # Errors
///
/// [`RmpiError::Init`] for an address that is not registered with these types, and
/// [`RmpiError::Comm`] when the worker is gone.
pub fn ndp_send_work<I: Message, O: Message>(
    node: &NdpNode,
    addr: &ProcAddr<I, O>,
    input: &I,
) -> Result<NdpWork<O>, RmpiError> {
    addr.check().map_err(|e| RmpiError::Init(e.to_string()))?;
    let input = codec::encode_with_raw(input).map_err(|e| RmpiError::Init(e.to_string()))?;
    with_group(|comm| {
        let work = Work {
            module: addr.module().to_owned(),
            name: addr.name().to_owned(),
            reply_to: Some(comm.id()),
        };
        comm.send_tagged(node.0, WORK, work)?;
        comm.send_tagged(node.0, INPUT, input)?;
        Ok(NdpWork {
            from: node.0,
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
    let bytes: Vec<u8> = with_group(|comm| {
        let head: Result<(), String> = comm.recv_tagged(work.from, RESULT)?;
        head.map_err(RmpiError::Init)?;
        Ok::<_, RmpiError>(comm.recv_tagged(work.from, OUTPUT)?)
    })?;
    codec::decode_with_raw(&bytes).map_err(|e| RmpiError::Init(e.to_string()))
}

/// Gives `node` back to the group.
///
/// # Panics
///
/// Outside a procedure an NDP group runs, or when the coordinator is gone.
pub fn ndp_return_node(node: NdpNode) {
    with_group(|comm| {
        comm.send_tagged(0, TO_COORDINATOR, ToCoordinator::ReturnNode(node.0))
            .expect("the NDP coordinator is there");
    });
}

/// Runs the procedure `module::name` on encoded input, with the group lent to the ndp_*
/// functions; a panic becomes its message.
fn run_procedure(
    comm: Comm,
    module: &str,
    name: &str,
    input: &[u8],
) -> (Comm, Result<Vec<u8>, String>) {
    let Some(entry) = lookup_procedure(module, name) else {
        return (comm, Err(format!("no procedure `{module}::{name}` here")));
    };
    CURRENT.with(|c| *c.borrow_mut() = Some(comm));
    let out = std::panic::catch_unwind(|| entry.call_encoded(input));
    let comm = CURRENT
        .with(|c| c.borrow_mut().take())
        .unwrap_or_else(|| unreachable!("the group was lent for the call"));
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

/// The coordinator: hands out free workers, and assigns the program's runs to one.
fn coordinate(comm: &Comm, ch: &PlaceChannel<NdpReply, NdpCommand>) {
    let n = comm.cnt();
    let mut free: VecDeque<usize> = (1..n).collect();
    let mut requests: Vec<_> = (1..n)
        .map(|r| comm.irecv_tagged::<ToCoordinator>(r, TO_COORDINATOR))
        .collect();
    let mut nap = 0u32;
    loop {
        let mut idle = true;
        match ch.try_get() {
            Ok(NdpCommand::Run { module, name }) => {
                idle = false;
                let reply = match free.pop_front() {
                    Some(w) => {
                        let work = Work {
                            module,
                            name,
                            reply_to: None,
                        };
                        match comm.send_tagged(w, WORK, work) {
                            Ok(()) => NdpReply::Assigned(w),
                            Err(e) => NdpReply::Done(Err(e.to_string())),
                        }
                    }
                    None => NdpReply::Done(Err("every worker is busy".into())),
                };
                if ch.put(reply).is_err() {
                    return;
                }
            }
            Ok(NdpCommand::Join(_) | NdpCommand::Data(_)) => {}
            Err(ChannelError::Empty) => {}
            Err(_) => return,
        }
        for (i, request) in requests.iter_mut().enumerate() {
            let rank = i + 1;
            match request.test() {
                Ok(false) => continue,
                Ok(true) => {}
                // A worker gone: the program's run (if any) fails on its data channel.
                Err(_) => continue,
            }
            idle = false;
            let done = std::mem::replace(
                request,
                comm.irecv_tagged::<ToCoordinator>(rank, TO_COORDINATOR),
            );
            match done.wait() {
                Ok(ToCoordinator::GetNode) => {
                    let _ = comm.send_tagged(rank, GRANT, free.pop_front());
                }
                Ok(ToCoordinator::ReturnNode(w)) => free.push_back(w),
                Ok(ToCoordinator::Result(r)) => {
                    free.push_back(rank);
                    if ch.put(NdpReply::Done(r)).is_err() {
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
        rest(&mut nap);
    }
}

/// A worker: waits for work from any member, runs it, and answers whoever sent it (the
/// program's runs on `data`).
fn work(mut comm: Comm, data: &PlaceChannel<Vec<u8>, Vec<u8>>) {
    let mut live: Vec<usize> = (0..comm.cnt()).filter(|&r| r != comm.id()).collect();
    loop {
        let Some((from, w)) = next_work(&comm, &mut live) else {
            return;
        };
        let input = match w.reply_to {
            Some(_) => comm
                .recv_tagged::<Vec<u8>>(from, INPUT)
                .map_err(|e| e.to_string()),
            None => data.get().map_err(|e| e.to_string()),
        };
        let input = match input {
            Ok(input) => input,
            // The program is gone: the group is over.
            Err(_) if w.reply_to.is_none() => return,
            // The member that sent the work is gone: nobody waits for its result.
            Err(_) => continue,
        };
        let (back, out) = run_procedure(comm, &w.module, &w.name, &input);
        drop(input);
        comm = back;
        let (head, bytes) = match out {
            Ok(bytes) => (Ok(()), Some(bytes)),
            Err(e) => (Err(e), None),
        };
        match w.reply_to {
            Some(to) => {
                // The member that sent the work may be gone; the group goes on.
                let _ = comm
                    .send_tagged(to, RESULT, head)
                    .and_then(|()| match bytes {
                        Some(b) => comm.send_tagged(to, OUTPUT, b),
                        None => Ok(()),
                    });
            }
            None => {
                // The coordinator first (it tells the program to read), then the bytes: a put
                // that waits for the program's read cannot hold up the news.
                if comm
                    .send_tagged(0, TO_COORDINATOR, ToCoordinator::Result(head))
                    .is_err()
                {
                    return;
                }
                if let Some(b) = bytes {
                    if data.put(b).is_err() {
                        return;
                    }
                }
            }
        }
    }
}

/// The group [`make_ndp_group`] starts: member 0 coordinates, the others work. Its nodes end
/// when it is dropped.
pub struct NdpGroup {
    members: Vec<crate::map_reduce::Linked<NdpCommand, NdpReply>>,
    /// The program's ends of the workers' data channels (index 0, the coordinator's, unused).
    data: Vec<PlaceChannel<Vec<u8>, Vec<u8>>>,
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
    Ok(NdpGroup { members, data })
}

impl NdpGroup {
    /// Runs the procedure at `addr` on `input` on a free worker of the group, which may hand
    /// parts of it to other workers, and returns its result (the seed's `ndp-qsort` stub).
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
        let input = codec::encode_with_raw(&input)?;
        let coordinator = self.members[0].1.channel();
        let gone = |e: ChannelError| NdpError::Work(format!("the coordinator is gone: {e}"));
        let out_of_turn = || NdpError::Work("the coordinator answered out of turn".into());
        coordinator
            .put(NdpCommand::Run {
                module: addr.module().to_owned(),
                name: addr.name().to_owned(),
            })
            .map_err(gone)?;
        let w = match coordinator.get().map_err(gone)? {
            NdpReply::Assigned(w) if (1..self.data.len()).contains(&w) => w,
            NdpReply::Done(Err(e)) => return Err(NdpError::Work(e)),
            _ => return Err(out_of_turn()),
        };
        let worker_gone =
            |e: ChannelError| NdpError::Work(format!("worker {w} ({}) is gone: {e}", self.node(w)));
        let data = &self.data[w];
        data.put(input).map_err(worker_gone)?;
        // The coordinator says when the run ended; the worker's end failing says it died.
        let mut result: Option<Vec<u8>> = None;
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
            return match event.recv(coordinator).map_err(gone)? {
                NdpReply::Done(Ok(())) => {
                    let bytes = match result {
                        Some(b) => b,
                        None => data.get().map_err(worker_gone)?,
                    };
                    Ok(codec::decode_with_raw(&bytes)?)
                }
                NdpReply::Done(Err(e)) => Err(NdpError::Work(e)),
                _ => Err(out_of_turn()),
            };
        }
    }

    /// The name of member `i`'s node.
    fn node(&self, i: usize) -> String {
        self.members[i].0.name().to_owned()
    }
}
