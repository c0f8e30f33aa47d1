//! MapReduce on distributed places (dissertation section 4.3.3, Racket's
//! `racket/place/distributed/map-reduce`), patterned after Hadoop.
//!
//! [`make_map_reduce_workers`] starts a worker place on each of a list of nodes and links the
//! workers to each other directly (a [`Comm`](places_core::Comm) over TCP, one hop between any two). A
//! [`map_reduce`] call then makes this program the controller: it hands each map task to a
//! free worker, which maps it (a `#[procedure(mapper)]`), sorts and coalesces the mapper's
//! output by key (`[("house",1),("car",1),("house",1)]` becomes `[("car",[1]),("house",[1,1])]`),
//! and reduces it (a `#[procedure(reducer)]`), keeping the result. When every task is mapped,
//! workers that hold results merge them pairwise, worker to worker (the data never passes
//! through this program), until one holds everything; its list is the call's result, and the
//! optional outputer (a `#[procedure]`) is called on it here.
//!
//! A worker that dies (its process ends, its node is lost) loses the tasks it mapped and the
//! results merged into it: those tasks are mapped again on the workers that are left (map
//! tasks are pure). When no worker is left the call fails with an error naming the task and
//! the node that ran it last; it never hangs.
//!
//! # Examples
//!
//! ```no_run
//! use places::rmpi::map_reduce::{make_map_reduce_workers, map_reduce, MapReduceConfig};
//!
//! #[places::procedure(mapper)]
//! fn mapper(lines: Vec<(usize, String)>) -> Vec<(String, u64)> {
//!     lines
//!         .iter()
//!         .flat_map(|(_, l)| l.split_whitespace().map(|w| (w.to_owned(), 1)))
//!         .collect()
//! }
//!
//! #[places::procedure(reducer)]
//! fn reducer(kvs: Vec<(String, Vec<u64>)>) -> Vec<(String, Vec<u64>)> {
//!     kvs.into_iter().map(|(k, v)| (k, vec![v.iter().sum()])).collect()
//! }
//!
//! #[places::main]
//! fn main() {
//!     let mut workers = make_map_reduce_workers(&MapReduceConfig::local(2)).unwrap();
//!     let tasks = vec![vec![(0, "a b a".to_string())], vec![(1, "b c".to_string())]];
//!     let out = map_reduce::<_, _, _, _, ()>(
//!         &mut workers,
//!         tasks,
//!         &places::proc_addr!(mapper),
//!         &places::proc_addr!(reducer),
//!         None,
//!     )
//!     .unwrap();
//!     assert_eq!(out.pairs[0], ("a".to_string(), vec![2]));
//! }
//! ```

use std::collections::{HashMap, VecDeque};
use std::time::Duration;

use places_core::{
    codec, lookup_procedure, KvOps, Message, PlaceChannel, ProcAddr, ProcError, ProcedureKind, Tag,
};
use places_net::mesh::MeshInvitation;
use places_net::{create_place_node, NetError, NodeOptions, RemoteNode, RemotePlace};
use serde::{Deserialize, Serialize};

/// Where the workers run: one worker per `(host, port)` (`"localhost"` for a local node; port
/// 0 for any), started with the given node options.
#[derive(Debug, Clone)]
pub struct MapReduceConfig {
    hosts: Vec<(String, u16)>,
    options: NodeOptions,
}

impl MapReduceConfig {
    /// A worker on each `(host, port)` (the seed's `(list (list "host2" 6430) ...)`).
    pub fn new<H: Into<String>>(hosts: impl IntoIterator<Item = (H, u16)>) -> Self {
        Self {
            hosts: hosts.into_iter().map(|(h, p)| (h.into(), p)).collect(),
            options: NodeOptions::new(),
        }
    }

    /// `n` workers on local nodes.
    pub fn local(n: usize) -> Self {
        Self::new((0..n).map(|_| ("localhost", 0)))
    }

    /// How the nodes are started and reached (ssh settings, executable, heartbeat, ...); each
    /// host's port is set from its entry.
    pub fn node_options(mut self, opts: NodeOptions) -> Self {
        self.options = opts;
        self
    }
}

/// Why MapReduce failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MapReduceError {
    /// A procedure address is unknown, of other types, or of another kind (checked before any
    /// work is sent).
    #[error(transparent)]
    Procedure(#[from] ProcError),
    /// A worker's node could not be started or its place could not start or join the others.
    #[error("could not start MapReduce worker {worker} on {host}: {reason}")]
    Start {
        /// The worker's index in the config.
        worker: usize,
        /// Its host.
        host: String,
        /// What went wrong.
        reason: String,
    },
    /// Every worker is gone and work is left.
    #[error("map task {task} cannot run: no MapReduce worker is left (the last one, on node {node}, ended: {reason})")]
    NoWorkers {
        /// A task that did not complete.
        task: usize,
        /// The node of the last worker that ran it, or was lost.
        node: String,
        /// Why that worker ended.
        reason: String,
    },
    /// A mapper or reducer failed (panicked, or got input it could not decode) on a worker
    /// that is still alive: rerunning a pure task would fail again.
    #[error("map task {task} failed on node {node}: {reason}")]
    Task {
        /// The task.
        task: usize,
        /// The worker's node.
        node: String,
        /// What the worker reported.
        reason: String,
    },
    /// The tasks or the result could not be encoded or decoded.
    #[error("MapReduce: {0}")]
    Codec(#[from] places_core::CodecError),
}

/// What the controller tells a worker.
#[derive(Serialize, Deserialize)]
#[doc(hidden)]
pub enum Command {
    /// The worker's place in the worker group.
    Join(MeshInvitation),
    /// Map task `task` of job `job`, then reduce and keep it with what the job holds.
    Map {
        job: u64,
        task: usize,
        mapper: (String, String),
        reducer: (String, String),
        input: Vec<u8>,
    },
    /// Send what job `job` holds to worker `to` (and keep it until `Forget`).
    Send { job: u64, to: usize },
    /// Take in what worker `from` sends for job `job` and merge it with what is held here.
    Merge {
        job: u64,
        from: usize,
        reducer: (String, String),
    },
    /// Hand over what job `job` holds (and forget it).
    Take { job: u64 },
    /// Forget what job `job` holds.
    Forget { job: u64 },
}

/// What a worker answers.
#[derive(Serialize, Deserialize)]
#[doc(hidden)]
pub enum Reply {
    Ready,
    Mapped {
        task: usize,
    },
    Sent,
    Merged,
    Data(Vec<u8>),
    /// A procedure failed here (the worker is fine).
    TaskFailed(String),
    /// A merge could not take in its partner's data (the partner is gone).
    MergeFailed(String),
}

type WorkerPlace = RemotePlace<Command, Reply>;

struct Worker {
    node: RemoteNode,
    place: WorkerPlace,
    alive: bool,
}

/// The worker group [`make_map_reduce_workers`] starts; [`map_reduce`] runs jobs on it. Its
/// nodes end when it is dropped.
pub struct MapReduceWorkers {
    workers: Vec<Worker>,
    next_job: u64,
}

impl MapReduceWorkers {
    /// How many workers are still alive.
    pub fn alive(&self) -> usize {
        self.workers.iter().filter(|w| w.alive).count()
    }

    /// The node of worker `i` (for its name, pid or status).
    pub fn node(&self, i: usize) -> Option<&RemoteNode> {
        self.workers.get(i).map(|w| &w.node)
    }
}

impl std::fmt::Debug for MapReduceWorkers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MapReduceWorkers")
            .field("workers", &self.workers.len())
            .field("alive", &self.alive())
            .finish()
    }
}

/// The tag a job's merges travel under between workers.
fn job_tag(job: u64) -> Tag {
    Tag::user((job % (1 << 31)) as u32)
}

/// A worker: joins the worker group, then runs the controller's commands one at a time.
#[places_macros::place(crate = ::places_core)]
pub fn map_reduce_worker(ch: PlaceChannel<Reply, Command>) {
    let Ok(Command::Join(invitation)) = ch.get() else {
        return;
    };
    let Ok(comm) = invitation.join() else {
        return;
    };
    if ch.put(Reply::Ready).is_err() {
        return;
    }
    let mut held: HashMap<u64, Vec<u8>> = HashMap::new();
    while let Ok(cmd) = ch.get() {
        let reply = match cmd {
            Command::Join(_) => Reply::TaskFailed("joined twice".into()),
            Command::Map {
                job,
                task,
                mapper,
                reducer,
                input,
            } => match run_task(&mapper, &reducer, &input, held.remove(&job)) {
                Ok(data) => {
                    held.insert(job, data);
                    Reply::Mapped { task }
                }
                Err(e) => Reply::TaskFailed(e),
            },
            Command::Send { job, to } => {
                let data = held.get(&job).cloned().unwrap_or_default();
                match comm.send_tagged(to, job_tag(job), data) {
                    Ok(()) => Reply::Sent,
                    Err(e) => Reply::MergeFailed(e.to_string()),
                }
            }
            Command::Merge { job, from, reducer } => {
                match comm.recv_tagged::<Vec<u8>>(from, job_tag(job)) {
                    Err(e) => Reply::MergeFailed(e.to_string()),
                    Ok(theirs) => match merge(&reducer, held.remove(&job), &theirs) {
                        Ok(data) => {
                            held.insert(job, data);
                            Reply::Merged
                        }
                        Err(e) => Reply::TaskFailed(e),
                    },
                }
            }
            Command::Take { job } => Reply::Data(held.remove(&job).unwrap_or_default()),
            Command::Forget { job } => {
                held.remove(&job);
                continue;
            }
        };
        if ch.put(reply).is_err() {
            return;
        }
    }
}

fn reducer_ops(reducer: &(String, String)) -> Result<(KvFn, MergeFn), String> {
    match lookup_procedure(&reducer.0, &reducer.1).map(|e| e.kv()) {
        Some(KvOps::Reducer { reduce, merge }) => Ok((reduce, merge)),
        _ => Err(format!("no reducer `{}::{}` here", reducer.0, reducer.1)),
    }
}

type KvFn = places_core::EncodedCall;
type MergeFn = places_core::EncodedMerge;

/// Maps, sorts, coalesces and reduces one task, and merges it with what the job held.
fn run_task(
    mapper: &(String, String),
    reducer: &(String, String),
    input: &[u8],
    held: Option<Vec<u8>>,
) -> Result<Vec<u8>, String> {
    let Some(KvOps::Mapper { map_sorted }) = lookup_procedure(&mapper.0, &mapper.1).map(|e| e.kv())
    else {
        return Err(format!("no mapper `{}::{}` here", mapper.0, mapper.1));
    };
    let (reduce, merge_fn) = reducer_ops(reducer)?;
    caught(|| {
        let mapped = map_sorted(input).map_err(|e| e.to_string())?;
        let reduced = reduce(&mapped).map_err(|e| e.to_string())?;
        match held {
            None => Ok(reduced),
            Some(before) => merge_fn(&before, &reduced).map_err(|e| e.to_string()),
        }
    })
}

fn merge(
    reducer: &(String, String),
    held: Option<Vec<u8>>,
    theirs: &[u8],
) -> Result<Vec<u8>, String> {
    let (_, merge_fn) = reducer_ops(reducer)?;
    match held {
        None => Ok(theirs.to_vec()),
        Some(mine) => caught(|| merge_fn(&mine, theirs).map_err(|e| e.to_string())),
    }
}

/// Runs `f`, turning a panic of the user's procedure into its message.
fn caught(f: impl FnOnce() -> Result<Vec<u8>, String>) -> Result<Vec<u8>, String> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).unwrap_or_else(|p| {
        Err(format!(
            "panicked: {}",
            places_core::__private::panic_message(&*p)
        ))
    })
}

/// Starts a worker on each node of `config` and links the workers to each other directly
/// (the seed's `make-map-reduce-workers`).
///
/// # Errors
///
/// [`MapReduceError::Start`] naming the worker and host that could not start or join; the
/// workers already started end.
pub fn make_map_reduce_workers(
    config: &MapReduceConfig,
) -> Result<MapReduceWorkers, MapReduceError> {
    let start_err = |worker: usize, reason: String| MapReduceError::Start {
        worker,
        host: config
            .hosts
            .get(worker)
            .map(|h| h.0.clone())
            .unwrap_or_default(),
        reason,
    };
    let started = start_linked(
        config,
        module_path!(),
        "map_reduce_worker",
        Command::Join,
        |r: &Reply| matches!(r, Reply::Ready),
    )
    .map_err(|(i, reason)| start_err(i, reason))?;
    let workers = started
        .into_iter()
        .map(|(node, place)| Worker {
            node,
            place,
            alive: true,
        })
        .collect();
    Ok(MapReduceWorkers {
        workers,
        next_job: 0,
    })
}

/// The address of a mapper: `#[procedure(mapper)] fn(Vec<(K1, V1)>) -> Vec<(K2, V2)>`.
pub type Mapper<K1, V1, K2, V2> = ProcAddr<Vec<(K1, V1)>, Vec<(K2, V2)>>;
/// The address of a reducer: `#[procedure(reducer)] fn(Vec<(K, Vec<V>)>) -> Vec<(K, Vec<V>)>`.
pub type Reducer<K, V> = ProcAddr<Vec<(K, Vec<V>)>, Vec<(K, Vec<V>)>>;
/// The address of an outputer: `#[procedure] fn(Vec<(K, Vec<V>)>) -> R`.
pub type Outputer<K, V, R> = ProcAddr<Vec<(K, Vec<V>)>, R>;

/// A member started by [`start_linked`]: its node and its place.
pub(crate) type Linked<C, R> = (RemoteNode, RemotePlace<C, R>);

/// Starts the place `module::entry` on a node per host of `config`, sends each its invitation
/// (`join`) to a group linking them all directly, and waits for each to say it is `ready`.
/// On an error, the index of the member that failed and why.
pub(crate) fn start_linked<C: Message, R: Message>(
    config: &MapReduceConfig,
    module: &str,
    entry: &str,
    join: impl Fn(MeshInvitation) -> C,
    ready: impl Fn(&R) -> bool,
) -> Result<Vec<Linked<C, R>>, (usize, String)> {
    if config.hosts.is_empty() {
        return Err((0, "the config names no host".into()));
    }
    let mut members = Vec::with_capacity(config.hosts.len());
    for (i, (host, port)) in config.hosts.iter().enumerate() {
        let node = create_place_node(host, config.options.clone().listen_port(*port))
            .map_err(|e| (i, e.to_string()))?;
        let place: RemotePlace<C, R> = node
            .dynamic_place(module, entry)
            .map_err(|e: NetError| (i, e.to_string()))?;
        members.push((node, place));
    }
    let (invitations, rendezvous) =
        places_net::mesh::invitations(members.len()).map_err(|e| (0, e.to_string()))?;
    for (i, ((_, place), inv)) in members.iter().zip(invitations).enumerate() {
        place.put(join(inv)).map_err(|e| (i, e.to_string()))?;
    }
    rendezvous
        .exchange()
        .map_err(|i| (i, "the member did not join the group".to_owned()))?;
    for (i, (_, place)) in members.iter().enumerate() {
        match place.channel().get_timeout(places_net::mesh::FORM_TIMEOUT) {
            Ok(r) if ready(&r) => {}
            _ => return Err((i, "the member did not link to the others".into())),
        }
    }
    Ok(members)
}

/// What [`map_reduce`] returns: the reduced key-value list, sorted by key, and what the
/// outputer returned (if one was given).
#[derive(Debug, Clone, PartialEq)]
pub struct MapReduced<K, V, R> {
    /// Every key with its reduced values, sorted by key.
    pub pairs: Vec<(K, Vec<V>)>,
    /// The outputer's result.
    pub output: Option<R>,
}

/// What a busy worker is doing.
#[derive(Debug, Clone, Copy)]
enum Busy {
    Map(usize),
    /// Sending its data to the worker at index `.0`.
    Send(usize),
    /// Taking in the data of the worker at index `.0`.
    Merge(usize),
    Take,
}

/// Runs one MapReduce job on `workers` (the seed's `map-reduce`): every task (a list of
/// key-value pairs, such as `[(0, "/tmp/w0")]`) is mapped by `mapper` on a free worker, its
/// output sorted and coalesced by key and reduced by `reducer` there; the workers' results are
/// then merged pairwise, worker to worker, and `outputer`, if given, is called here on the
/// result.
///
/// # Errors
///
/// [`MapReduceError::Procedure`] before anything is sent when an address is unknown, of other
/// types or of another kind; [`MapReduceError::NoWorkers`] when every worker is gone with work
/// left; [`MapReduceError::Task`] when a mapper or reducer fails on a live worker.
pub fn map_reduce<K1, V1, K2, V2, R>(
    workers: &mut MapReduceWorkers,
    tasks: Vec<Vec<(K1, V1)>>,
    mapper: &Mapper<K1, V1, K2, V2>,
    reducer: &Reducer<K2, V2>,
    outputer: Option<&Outputer<K2, V2, R>>,
) -> Result<MapReduced<K2, V2, R>, MapReduceError>
where
    (K1, V1): Message,
    K2: Message + Ord + Clone,
    V2: Message + Clone,
    R: Message,
{
    mapper.check_kind(ProcedureKind::Mapper)?;
    reducer.check_kind(ProcedureKind::Reducer)?;
    if let Some(o) = outputer {
        o.check()?;
    }
    let job = workers.next_job;
    workers.next_job += 1;
    let inputs: Vec<Vec<u8>> = tasks.iter().map(codec::encode).collect::<Result<_, _>>()?;
    let name = |a: &str, b: &str| (a.to_owned(), b.to_owned());
    let mapper_key = name(mapper.module(), mapper.name());
    let reducer_key = name(reducer.module(), reducer.name());
    let data = run_job(workers, job, &inputs, &mapper_key, &reducer_key)?;
    let pairs: Vec<(K2, Vec<V2>)> = if data.is_empty() {
        Vec::new()
    } else {
        codec::decode(&data)?
    };
    let output = match outputer {
        Some(o) => Some(o.call(pairs.clone())?),
        None => None,
    };
    Ok(MapReduced { pairs, output })
}

/// The controller's loop: the encoded result of job `job` (empty for no tasks).
fn run_job(
    workers: &mut MapReduceWorkers,
    job: u64,
    inputs: &[Vec<u8>],
    mapper: &(String, String),
    reducer: &(String, String),
) -> Result<Vec<u8>, MapReduceError> {
    let n = workers.workers.len();
    let mut pending: VecDeque<usize> = (0..inputs.len()).collect();
    let mut holds: Vec<Vec<usize>> = vec![Vec::new(); n];
    let mut busy: Vec<Option<Busy>> = vec![None; n];
    // The last worker that ended, and why: for the error when none is left.
    let mut last_loss: Option<(String, String)> = None;
    let mut result: Option<Vec<u8>> = None;
    loop {
        if let Some(r) = result.take() {
            return Ok(r);
        }
        let alive: Vec<usize> = (0..n).filter(|&i| workers.workers[i].alive).collect();
        if alive.is_empty() {
            let task = pending
                .front()
                .copied()
                .or_else(|| holds.iter().flatten().next().copied())
                .unwrap_or(0);
            let (node, reason) = last_loss.unwrap_or_default();
            return Err(MapReduceError::NoWorkers { task, node, reason });
        }
        // Hand out map tasks to idle workers.
        for &w in &alive {
            if busy[w].is_none() {
                let Some(task) = pending.pop_front() else {
                    break;
                };
                let cmd = Command::Map {
                    job,
                    task,
                    mapper: mapper.clone(),
                    reducer: reducer.clone(),
                    input: inputs[task].clone(),
                };
                if !put_or_lose(workers, w, cmd, &mut holds, &mut pending, &mut last_loss) {
                    pending.push_front(task);
                    continue;
                }
                busy[w] = Some(Busy::Map(task));
            }
        }
        if busy.iter().all(Option::is_none) {
            // With nothing in flight, what dead workers held is lost for sure (a dead sender's
            // tasks wait for its receiver's answer only while that merge runs).
            let lost: Vec<usize> = (0..n)
                .filter(|&w| !workers.workers[w].alive)
                .flat_map(|w| std::mem::take(&mut holds[w]))
                .collect();
            if !lost.is_empty() {
                pending.extend(lost);
                continue;
            }
            let holders: Vec<usize> = alive
                .iter()
                .copied()
                .filter(|&w| !holds[w].is_empty())
                .collect();
            match holders.as_slice() {
                _ if !pending.is_empty() => {}
                [] if inputs.is_empty() => return Ok(Vec::new()),
                [] => {}
                [one] => {
                    let take = Command::Take { job };
                    if put_or_lose(
                        workers,
                        *one,
                        take,
                        &mut holds,
                        &mut pending,
                        &mut last_loss,
                    ) {
                        busy[*one] = Some(Busy::Take);
                    }
                }
                many => {
                    for pair in many.chunks_exact(2) {
                        let (into, from) = (pair[0], pair[1]);
                        let merge = Command::Merge {
                            job,
                            from,
                            reducer: reducer.clone(),
                        };
                        if !put_or_lose(
                            workers,
                            into,
                            merge,
                            &mut holds,
                            &mut pending,
                            &mut last_loss,
                        ) {
                            continue;
                        }
                        busy[into] = Some(Busy::Merge(from));
                        let send = Command::Send { job, to: into };
                        if put_or_lose(
                            workers,
                            from,
                            send,
                            &mut holds,
                            &mut pending,
                            &mut last_loss,
                        ) {
                            busy[from] = Some(Busy::Send(into));
                        }
                    }
                }
            }
        }
        // Wait for the next reply of a busy worker (or notice that one is gone).
        let waiting: Vec<usize> = (0..n).filter(|&w| busy[w].is_some()).collect();
        if waiting.is_empty() {
            continue;
        }
        let (w, reply) = {
            let mut sel = places_core::Select::new();
            for &w in &waiting {
                sel.recv(workers.workers[w].place.channel());
            }
            let Ok(ev) = sel.select_timeout(Duration::from_secs(1)) else {
                continue;
            };
            let w = waiting[ev.index()];
            (w, ev.recv(workers.workers[w].place.channel()))
        };
        let node = workers.workers[w].node.name().to_owned();
        let state = busy[w].take();
        let reply = match reply {
            Ok(r) => r,
            Err(e) => {
                let reason = workers.workers[w]
                    .node
                    .lost_reason()
                    .unwrap_or_else(|| e.to_string());
                if let Some(Busy::Map(task)) = state {
                    pending.push_back(task);
                }
                // A sender that may have sent: its receiver's answer says whether its tasks
                // arrived (then they moved) or must be mapped again.
                let keep = matches!(state, Some(Busy::Send(into)) if workers.workers[into].alive);
                lose(
                    workers,
                    w,
                    &reason,
                    keep,
                    &mut holds,
                    &mut pending,
                    &mut last_loss,
                );
                continue;
            }
        };
        match (state, reply) {
            (Some(Busy::Map(_)), Reply::Mapped { task }) => holds[w].push(task),
            (Some(Busy::Map(task)), Reply::TaskFailed(reason)) => {
                return Err(MapReduceError::Task { task, node, reason });
            }
            // Sent, or the receiver is gone (which its own loss says).
            (Some(Busy::Send(_)), Reply::Sent | Reply::MergeFailed(_)) => {}
            (Some(Busy::Merge(from)), Reply::Merged) => {
                let moved = std::mem::take(&mut holds[from]);
                holds[w].extend(moved);
                if workers.workers[from].alive {
                    let _ = workers.workers[from].place.put(Command::Forget { job });
                }
            }
            (Some(Busy::Merge(from)), Reply::MergeFailed(_)) => {
                // The sender is gone before its data arrived: its tasks are mapped again,
                // and this worker keeps its own.
                if !workers.workers[from].alive {
                    pending.extend(holds[from].drain(..));
                } else {
                    busy[w] = None;
                }
            }
            (Some(Busy::Merge(_)), Reply::TaskFailed(reason)) => {
                let task = holds[w].first().copied().unwrap_or(0);
                return Err(MapReduceError::Task { task, node, reason });
            }
            (Some(Busy::Take), Reply::Data(d)) => result = Some(d),
            (state, _) => {
                return Err(MapReduceError::Task {
                    task: 0,
                    node,
                    reason: format!("an answer that does not fit what it was doing ({state:?})"),
                });
            }
        }
    }
}

/// Sends `cmd` to worker `w`; a worker that cannot be sent it is lost. Whether it was sent.
fn put_or_lose(
    workers: &mut MapReduceWorkers,
    w: usize,
    cmd: Command,
    holds: &mut [Vec<usize>],
    pending: &mut VecDeque<usize>,
    last_loss: &mut Option<(String, String)>,
) -> bool {
    if workers.workers[w].place.put(cmd).is_ok() {
        return true;
    }
    let reason = "it could not be sent a command";
    lose(workers, w, reason, false, holds, pending, last_loss);
    false
}

/// Marks worker `w` gone (for `reason`): the tasks it held are mapped again, unless `keep`
/// (a sender whose receiver decides).
fn lose(
    workers: &mut MapReduceWorkers,
    w: usize,
    reason: &str,
    keep: bool,
    holds: &mut [Vec<usize>],
    pending: &mut VecDeque<usize>,
    last_loss: &mut Option<(String, String)>,
) {
    let worker = &mut workers.workers[w];
    *last_loss = Some((worker.node.name().to_owned(), reason.to_owned()));
    worker.alive = false;
    worker.place.kill();
    if !keep {
        pending.extend(holds[w].drain(..));
    }
}
