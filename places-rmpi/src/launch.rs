//! Starting an RMPI program on nodes: the seed's `rmpi-build-default-config`, `rmpi-launch`,
//! `rmpi-init` and `rmpi-finish`.
//!
//! The program that launches names one config per rank: the host and port of the node the rank
//! runs on, the name of its place and its rank, and, when they differ from the defaults, the
//! executable, the entry (module and function) and the arguments. [`rmpi_launch`] starts the
//! nodes (one per config; configs that give the same host and non-zero port share one), starts
//! each rank's place on its node under its name, introduces the ranks to each other so that
//! each links to every other directly (node to node: the launching program relays nothing),
//! hands each its arguments, and waits until every rank called [`rmpi_finish`]. It returns rank
//! 0's value.
//!
//! A rank's entry is a `#[place]` function taking an [`RmpiChannel`]; it calls [`rmpi_init`]
//! first and [`rmpi_finish`] last.
//!
//! # Examples
//!
//! ```no_run
//! use places::place;
//! use places::rmpi::{
//!     op, rmpi_build_default_config, rmpi_finish, rmpi_init, rmpi_launch, Collectives,
//!     RmpiChannel, RmpiNodeConfig,
//! };
//!
//! /// Each rank adds its rank and the launch's argument; all agree on the sum.
//! #[place]
//! pub fn sum_place(ch: RmpiChannel<u64, u64>) {
//!     let (comm, base, tc) = rmpi_init(ch).expect("joined the group");
//!     let total = comm.allreduce(op::sum, base + comm.id() as u64).unwrap();
//!     rmpi_finish(comm, tc, total).unwrap();
//! }
//!
//! #[places::main]
//! fn main() -> Result<(), places::rmpi::RmpiError> {
//!     let configs: Vec<RmpiNodeConfig<u64>> = (0..4)
//!         .map(|r| RmpiNodeConfig::new("localhost", 0, format!("sum_{r}"), r))
//!         .collect();
//!     let total: u64 = rmpi_launch(
//!         &rmpi_build_default_config(module_path!(), "sum_place", 10u64),
//!         &configs,
//!     )?;
//!     assert_eq!(total, 4 * 10 + 6);
//!     Ok(())
//! }
//! ```

use std::cell::RefCell;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Once;

use places_core::{Comm, ForkJoinError, Message, PlaceChannel};
use places_net::mesh::MeshInvitation;
use places_net::{
    kill_members, run_group, spawn_node_at, GroupMember, MemberFailure, NodeOptions, PlaceOptions,
    RemoteNode,
};

use crate::RmpiError;

/// What a rank's place receives and sends: its invitation to the group and its arguments `A`,
/// then the value `R` it finishes with. Write it as the parameter of the rank's `#[place]`
/// function.
pub type RmpiChannel<A, R = ()> = PlaceChannel<Result<R, MemberFailure>, (MeshInvitation, A)>;

/// The defaults of an RMPI launch (the seed's `rmpi-build-default-config`): the entry every
/// rank runs, its arguments, the executable of the nodes, and how to start them.
#[derive(Debug, Clone)]
pub struct RmpiConfig<A> {
    module: String,
    func: String,
    args: A,
    executable: Option<PathBuf>,
    node_options: NodeOptions,
}

/// The defaults for [`rmpi_launch`]: every rank runs the `#[place]` function `func` of module
/// `module` (write `module_path!()` for the calling module) with arguments `args` (Racket's
/// `#:mpi-module`, `#:mpi-func` and `#:mpi-args`), on nodes that are this executable (Racket's
/// `#:racket-path` and `#:distributed-launch-path`; change it with
/// [`executable`](RmpiConfig::executable)).
pub fn rmpi_build_default_config<A>(
    module: impl Into<String>,
    func: impl Into<String>,
    args: A,
) -> RmpiConfig<A> {
    RmpiConfig {
        module: module.into(),
        func: func.into(),
        args,
        executable: None,
        node_options: NodeOptions::new(),
    }
}

impl<A> RmpiConfig<A> {
    /// The program the nodes run (default: this executable). It must be a build of the same
    /// program, so that it knows the entry.
    pub fn executable(mut self, path: impl Into<PathBuf>) -> Self {
        self.executable = Some(path.into());
        self
    }

    /// How the nodes are started and reached (ssh settings, listen address, heartbeat, ...);
    /// the port comes from each rank's config.
    pub fn node_options(mut self, opts: NodeOptions) -> Self {
        self.node_options = opts;
        self
    }
}

/// One rank of an RMPI launch (an element of the seed's config list): the host and port of its
/// node, the name of its place, its rank, and optional overrides of the defaults.
///
/// Port 0 starts a node of its own on any free port; configs that give the same host and the
/// same non-zero port run on one node.
#[derive(Debug, Clone)]
pub struct RmpiNodeConfig<A> {
    host: String,
    port: u16,
    name: String,
    rank: usize,
    module: Option<String>,
    func: Option<String>,
    args: Option<A>,
    executable: Option<PathBuf>,
}

impl<A> RmpiNodeConfig<A> {
    /// Rank `rank`, in a place named `name` on a node at `host:port`.
    pub fn new(host: impl Into<String>, port: u16, name: impl Into<String>, rank: usize) -> Self {
        Self {
            host: host.into(),
            port,
            name: name.into(),
            rank,
            module: None,
            func: None,
            args: None,
            executable: None,
        }
    }

    /// This rank's entry module instead of the default's.
    pub fn module(mut self, module: impl Into<String>) -> Self {
        self.module = Some(module.into());
        self
    }

    /// This rank's entry function instead of the default's.
    pub fn func(mut self, func: impl Into<String>) -> Self {
        self.func = Some(func.into());
        self
    }

    /// This rank's arguments instead of the default's.
    pub fn args(mut self, args: A) -> Self {
        self.args = Some(args);
        self
    }

    /// This rank's node executable instead of the default's.
    pub fn executable(mut self, path: impl Into<PathBuf>) -> Self {
        self.executable = Some(path.into());
        self
    }

    /// The rank.
    pub fn rank(&self) -> usize {
        self.rank
    }
}

/// Launches an RMPI program and returns rank 0's [`rmpi_finish`] value (the seed's
/// `rmpi-launch`). See the [module documentation](self).
///
/// # Errors
///
/// [`RmpiError::Config`] when the ranks are not exactly `0..configs.len()`;
/// [`RmpiError::Node`] when a node cannot be started; [`RmpiError::Rank`] naming the first rank
/// that failed (its place could not start or join, it panicked, it ended without
/// `rmpi_finish`, or its node was lost). Every rank still running is then killed and every node
/// ends: nothing is left behind.
pub fn rmpi_launch<A, R>(
    default: &RmpiConfig<A>,
    configs: &[RmpiNodeConfig<A>],
) -> Result<R, RmpiError>
where
    A: Message + Clone,
    R: Message,
{
    let mut all = rmpi_launch_all(default, configs)?;
    Ok(all.swap_remove(0))
}

/// [`rmpi_launch`], returning every rank's `rmpi_finish` value in rank order.
///
/// # Errors
///
/// As [`rmpi_launch`].
pub fn rmpi_launch_all<A, R>(
    default: &RmpiConfig<A>,
    configs: &[RmpiNodeConfig<A>],
) -> Result<Vec<R>, RmpiError>
where
    A: Message + Clone,
    R: Message,
{
    let by_rank = check_ranks(configs)?;
    // One node per config, except configs that name one host and non-zero port.
    let mut node_of_config: Vec<usize> = Vec::with_capacity(configs.len());
    let mut shared: HashMap<(String, u16), (usize, Option<PathBuf>, &str)> = HashMap::new();
    let mut starts: Vec<(String, NodeOptions)> = Vec::new();
    for c in configs {
        let exe = c.executable.clone().or_else(|| default.executable.clone());
        let key = (c.host.clone(), c.port);
        if c.port != 0 {
            if let Some((i, their_exe, their_name)) = shared.get(&key) {
                if *their_exe != exe {
                    return Err(RmpiError::Config(format!(
                        "{:?} and {their_name:?} share the node at {}:{} but name different executables",
                        c.name, c.host, c.port
                    )));
                }
                node_of_config.push(*i);
                continue;
            }
            shared.insert(key, (starts.len(), exe.clone(), &c.name));
        }
        node_of_config.push(starts.len());
        let mut opts = default.node_options.clone().listen_port(c.port);
        if let Some(exe) = exe {
            opts = opts.exe(exe);
        }
        starts.push((c.host.clone(), opts));
    }
    let pending: Vec<_> = starts
        .iter()
        .map(|(host, opts)| spawn_node_at(host, opts.clone()))
        .collect();
    let mut nodes: Vec<RemoteNode> = Vec::with_capacity(pending.len());
    let mut first_error = None;
    for (p, (host, _)) in pending.into_iter().zip(&starts) {
        match p.join() {
            Ok(n) => nodes.push(n),
            Err(source) => {
                first_error.get_or_insert(RmpiError::Node {
                    host: host.clone(),
                    source,
                });
            }
        }
    }
    if let Some(e) = first_error {
        return Err(e);
    }
    let mut members: Vec<GroupMember<A, R>> = Vec::with_capacity(configs.len());
    let mut names = Vec::with_capacity(configs.len());
    let mut args = Vec::with_capacity(configs.len());
    for (rank, &at) in by_rank.iter().enumerate() {
        let c = &configs[at];
        let node = &nodes[node_of_config[at]];
        let module = c.module.as_deref().unwrap_or(&default.module);
        let func = c.func.as_deref().unwrap_or(&default.func);
        let place =
            node.dynamic_place_with(module, func, PlaceOptions::new().named(c.name.clone()));
        match place {
            Ok(p) => members.push(p),
            Err(e) => {
                kill_members(&members);
                return Err(RmpiError::Rank {
                    rank,
                    node: node.name().to_owned(),
                    reason: format!(
                        "could not start place {:?} running {module}::{func}: {e}",
                        c.name
                    ),
                });
            }
        }
        names.push(node.name().to_owned());
        args.push(c.args.clone().unwrap_or_else(|| default.args.clone()));
    }
    run_group(members, &names, args).map_err(|e| match e {
        ForkJoinError::Panicked {
            rank,
            message,
            also_failed,
        } => RmpiError::Rank {
            rank,
            node: names[rank].clone(),
            reason: if also_failed.is_empty() {
                format!("panicked: {message}")
            } else {
                let list: Vec<String> = also_failed.iter().map(usize::to_string).collect();
                format!(
                    "panicked: {message} (then ranks {} failed too)",
                    list.join(", ")
                )
            },
        },
        ForkJoinError::Node { rank, node, reason } => RmpiError::Rank { rank, node, reason },
        other => RmpiError::Config(other.to_string()),
    })
}

/// Where rank `r`'s config is, for every rank; the ranks must be exactly `0..configs.len()`.
fn check_ranks<A>(configs: &[RmpiNodeConfig<A>]) -> Result<Vec<usize>, RmpiError> {
    if configs.is_empty() {
        return Err(RmpiError::Config(
            "an RMPI launch needs at least one rank".into(),
        ));
    }
    let n = configs.len();
    let mut at: Vec<Option<usize>> = vec![None; n];
    for (i, c) in configs.iter().enumerate() {
        if c.rank >= n {
            return Err(RmpiError::Config(format!(
                "config {i} ({:?}) has rank {}, but {n} configs number the ranks 0 to {}",
                c.name,
                c.rank,
                n - 1
            )));
        }
        if let Some(j) = at[c.rank] {
            return Err(RmpiError::Config(format!(
                "configs {j} ({:?}) and {i} ({:?}) both have rank {}",
                configs[j].name, c.name, c.rank
            )));
        }
        at[c.rank] = Some(i);
    }
    Ok(at.into_iter().flatten().collect())
}

/// A rank's channel to the program that launched it, after [`rmpi_init`] (the seed's
/// `named-place-typed-channel%` that `rmpi-init` returns): [`rmpi_finish`] reports on it.
///
/// A rank that panics before it finishes reports the panic's message on it as it unwinds, so
/// that `rmpi_launch` names the rank and says why. The message comes from a panic hook that
/// [`rmpi_init`] installs once (it runs the hook that was there before); a program that sets a
/// hook of its own after `rmpi_init` still gets its rank named, with "(no message)".
pub struct RmpiTypedChannel<A: Message, R: Message> {
    ch: Option<RmpiChannel<A, R>>,
    rank: usize,
}

impl<A: Message, R: Message> std::fmt::Debug for RmpiTypedChannel<A, R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RmpiTypedChannel")
            .field("rank", &self.rank)
            .finish_non_exhaustive()
    }
}

impl<A: Message, R: Message> Drop for RmpiTypedChannel<A, R> {
    fn drop(&mut self) {
        let Some(ch) = self.ch.take() else { return };
        if !std::thread::panicking() {
            return;
        }
        let message = LAST_PANIC
            .with(|m| m.borrow_mut().take())
            .unwrap_or_else(|| "(no message)".to_owned());
        let _ = ch.put(Err(MemberFailure::Panicked(message)));
    }
}

thread_local! {
    /// The message of the panic this thread is unwinding from, for the report of a rank.
    static LAST_PANIC: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// Keeps each thread's last panic message (then runs the hook that was there before), so that
/// a rank that panics can report why.
fn keep_panic_messages() {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let message = if let Some(s) = info.payload().downcast_ref::<&str>() {
                (*s).to_owned()
            } else if let Some(s) = info.payload().downcast_ref::<String>() {
                s.clone()
            } else {
                "a panic without a message".to_owned()
            };
            let at = info
                .location()
                .map(|l| format!(" at {}:{}", l.file(), l.line()))
                .unwrap_or_default();
            LAST_PANIC.with(|m| *m.borrow_mut() = Some(format!("{message}{at}")));
            previous(info);
        }));
    });
}

/// Joins the group a rank was launched into (the seed's `rmpi-init`): returns the rank's
/// communicator, its arguments, and the channel [`rmpi_finish`] reports on.
///
/// # Errors
///
/// [`RmpiError::Init`] when the launching program is gone before it sent the invitation, or the
/// rank cannot link to the others (the launcher hears why, too).
pub fn rmpi_init<A, R>(
    ch: RmpiChannel<A, R>,
) -> Result<(Comm, A, RmpiTypedChannel<A, R>), RmpiError>
where
    A: Message,
    R: Message,
{
    keep_panic_messages();
    LAST_PANIC.with(|m| m.borrow_mut().take());
    let (invitation, args) = ch
        .get()
        .map_err(|e| RmpiError::Init(format!("no invitation from the launching program: {e}")))?;
    let rank = invitation.rank();
    match invitation.join() {
        Ok(comm) => Ok((comm, args, RmpiTypedChannel { ch: Some(ch), rank })),
        Err(e) => {
            let _ = ch.put(Err(MemberFailure::Join(e.to_string())));
            Err(RmpiError::Init(format!(
                "rank {rank} could not join the group: {e}"
            )))
        }
    }
}

/// Ends a rank's part (the seed's `rmpi-finish`): reports `value` to [`rmpi_launch`], which
/// returns rank 0's once every rank finished, then closes the rank's links.
///
/// # Errors
///
/// [`RmpiError::Init`] when the launching program is gone.
pub fn rmpi_finish<A, R>(
    comm: Comm,
    mut tc: RmpiTypedChannel<A, R>,
    value: R,
) -> Result<(), RmpiError>
where
    A: Message,
    R: Message,
{
    let ch = tc.ch.take();
    let sent = match &ch {
        Some(ch) => ch.put(Ok(value)),
        None => Ok(()),
    };
    // Reported before the links close: a rank that fails because this one is gone reports
    // after it.
    drop(comm);
    sent.map_err(|e| {
        RmpiError::Init(format!(
            "rank {} could not report to the launching program: {e}",
            tc.rank
        ))
    })
}
